import json

import numpy as np
import onnx
import pytest
import torch

from distill.evaluate import evaluate, speed, to_markdown
from distill.export import export_onnx, onnx_session, quantize_int8, run_onnx, slim_checkpoint
from distill.metrics import psnr
from distill.train import model_from_checkpoint, train
from distill_fixtures import TINY_STUDENT, tiny_config
from vcam.sharpen import Sharpener


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    teacher = train(tiny_config(tmp, steps=30, out=str(tmp / "teacher")))
    student = train(tiny_config(tmp, kind="student", model=dict(TINY_STUDENT), steps=30, out=str(tmp / "student"), teacher=str(teacher)))
    return tmp, teacher, student


def test_student_export_follows_the_contract_and_matches_pytorch(checkpoints, tmp_path):
    _, _, student = checkpoints
    path = tmp_path / "student.onnx"
    result = export_onnx(student, path, "tiny-student", {"training": {"steps": 30}})
    assert result["max_abs_diff"] < 1e-4
    proto = onnx.load(str(path))
    ops = [n.op_type for n in proto.graph.node]
    assert "SpaceToDepth" in ops and "DepthToSpace" in ops and "Transpose" not in ops
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["vcam.size_multiple"] == "4" and meta["vcam.name"] == "tiny-student"
    assert json.loads(meta["vcam.architecture"])["kind"] == "student"
    assert json.loads(meta["vcam.training"]) == {"steps": 30}
    assert proto.opset_import[0].version >= 17
    # The runtime accepts it as is, at an odd frame size.
    frame = (np.random.default_rng(0).random((45, 67, 3)) * 255).astype(np.uint8)
    assert Sharpener(path)(frame).shape == frame.shape


def test_teacher_exports_to_the_same_contract(checkpoints, tmp_path):
    _, teacher, _ = checkpoints
    path = tmp_path / "teacher.onnx"
    assert export_onnx(teacher, path, "tiny-teacher")["max_abs_diff"] < 1e-4
    session = onnx_session(path)
    assert session.get_inputs()[0].name == "input"
    assert session.get_modelmeta().custom_metadata_map["vcam.size_multiple"] == "8"


def test_int8_runs_and_stays_close(checkpoints, tmp_path):
    tmp, _, student = checkpoints
    fp32, int8 = tmp_path / "s.onnx", tmp_path / "s8.onnx"
    export_onnx(student, fp32, "tiny")
    rng = np.random.default_rng(1)
    calib = [(rng.random((32, 40, 3)) * 255).astype(np.uint8) for _ in range(4)]
    quantize_int8(fp32, int8, calib)
    ops = {n.op_type for n in onnx.load(str(int8)).graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    img = calib[0]
    a, b = run_onnx(onnx_session(fp32), img, 4), run_onnx(onnx_session(int8), img, 4)
    assert psnr(a, b) > 35
    assert onnx_session(int8).get_modelmeta().custom_metadata_map["vcam.quantization"].startswith("int8")


def test_quality_report_has_the_reference_table(checkpoints, tmp_path):
    tmp, teacher, student = checkpoints
    export_onnx(teacher, tmp_path / "t.onnx", "t")
    export_onnx(student, tmp_path / "s.onnx", "s")
    report = evaluate(tmp / "val", {"teacher": tmp_path / "t.onnx", "student": tmp_path / "s.onnx"})
    methods = report["methods"]
    assert list(methods) == ["degraded input", "unsharp mask", "CAS", "teacher", "student"]
    for row in methods.values():
        assert 5 < row["psnr"] < 60 and 0 < row["ssim"] <= 1
    assert set(report["vs_teacher"]) == {"student"}
    md = to_markdown(report)
    assert "| student |" in md and "student vs teacher" in md


def test_speed_table_times_each_model_and_the_baselines(checkpoints, tmp_path):
    _, _, student = checkpoints
    export_onnx(student, tmp_path / "s.onnx", "s")
    rows = speed({"student": tmp_path / "s.onnx"}, frames=2)
    assert list(rows) == ["student", "unsharp mask", "CAS"]
    for row in rows.values():
        assert 0 < row["infer_p50"] <= row["e2e_p50"] <= row["e2e_p95"]
    md = to_markdown({"val_dir": "v", "images": 1, "methods": {"degraded input": {"psnr": 20, "psnr_y": 21, "ssim": 0.5}},
                      "vs_teacher": {}, "speed": rows})
    assert "| student |" in md.split("Speed")[1]


def test_slim_checkpoint_is_smaller_and_gives_the_same_network(tmp_path):
    last = train(tiny_config(tmp_path, steps=10, ema=0.9))
    slim = tmp_path / "teacher.pt"
    slim_checkpoint(last, slim)
    assert slim.stat().st_size < last.stat().st_size / 2
    x = torch.rand(1, 3, 32, 40)
    with torch.no_grad():
        ema = model_from_checkpoint(last)(x)
        assert torch.equal(model_from_checkpoint(slim)(x), ema)
        slim_checkpoint(last, slim, use_ema=False)
        raw = model_from_checkpoint(last, use_ema=False)(x)
        assert torch.equal(model_from_checkpoint(slim)(x), raw)
        assert not torch.equal(raw, ema)  # the raw weights are really another network
