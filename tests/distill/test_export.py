import json

import cv2
import numpy as np
import onnx
import pytest
import torch
from support.distill_fixtures import TINY_STUDENT, tiny_config

from distill.data import to_tensor_batch
from distill.evaluate import evaluate, speed, to_markdown
from distill.export import (
    export_onnx,
    int16_overflows,
    luma_residual_module,
    onnx_session,
    quantize_luma8,
    run_facts,
    slim_checkpoint,
    unshuffled_conv,
)
from distill.metrics import psnr
from distill.models import RepConv, Student, StudentConfig, describe
from distill.qat import QatConfig, QuantizedStudent, activation_ranges, finetune, unfold
from distill.train import AVERAGED_KEY, TrainConfig, TrainingError, load_checkpoint, model_from_checkpoint, train
from vcam.sharpener import OnnxSharpener


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    teacher = train(tiny_config(tmp, steps=30, out=str(tmp / "teacher")))
    student = train(
        tiny_config(
            tmp, kind="student", model=dict(TINY_STUDENT), steps=30, out=str(tmp / "student"), teacher=str(teacher)
        )
    )
    return tmp, teacher, student


@pytest.mark.slow
def test_student_export_follows_the_contract_and_matches_pytorch(checkpoints, tmp_path):
    _, _, student = checkpoints
    path = tmp_path / "student.onnx"
    result = export_onnx(student, path, "tiny-student", 3, {"training": {"steps": 30}})
    assert result["max_abs_diff"] < 1e-4
    proto = onnx.load(str(path))
    ops = [n.op_type for n in proto.graph.node]
    assert "SpaceToDepth" in ops and "DepthToSpace" in ops and "Transpose" not in ops
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["vcam.size_multiple"] == "4" and meta["vcam.name"] == "tiny-student" and meta["vcam.version"] == "3"
    assert json.loads(meta["vcam.architecture"])["kind"] == "student"
    assert json.loads(meta["vcam.training"]) == {"steps": 30}
    assert proto.opset_import[0].version >= 17
    # The runtime accepts it as is, at an odd frame size.
    frame = (np.random.default_rng(0).random((45, 67, 3)) * 255).astype(np.uint8)
    assert OnnxSharpener(path)(frame).shape == frame.shape


@pytest.mark.slow
def test_export_records_the_runs_own_training_and_validation_facts(checkpoints, tmp_path):
    tmp, _, student = checkpoints
    path = tmp_path / "student.onnx"
    export_onnx(student, path, "tiny-student", 1, {"hardware": "test machine"})
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    training = json.loads(meta["vcam.training"])
    assert training["steps"] == 30 and training["teacher"] is True and training["w_kd"] == 1.0
    assert training["train_dir"] == str(tmp / "train") and training["minutes"] >= 0
    assert training["mix"] == TrainConfig().mix  # which degradations it learned: a fine-tune may change them
    last = [
        json.loads(row) for row in (student.parent / "metrics.jsonl").read_text().splitlines() if "val_psnr" in row
    ][-1]
    validation = json.loads(meta["vcam.validation"])
    assert validation["step"] == last["step"] == 30 and validation["set"] == str(tmp / "val")
    assert validation["psnr"] == round(last["val_psnr"], 3)
    assert meta["vcam.hardware"] == "test machine"


@pytest.mark.slow
def test_a_best_checkpoint_records_its_own_validation_not_the_later_steps(checkpoints, tmp_path):
    _, _, student = checkpoints
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.pt").write_bytes(student.read_bytes())  # step 30
    later = {"step": 40, "time": 9.0, "val_psnr": 99.0, "input_psnr": 20.0}
    metrics = (student.parent / "metrics.jsonl").read_text() + json.dumps(later) + "\n"
    (run / "metrics.jsonl").write_text(metrics)
    validation = run_facts(run / "best.pt")["validation"]
    assert validation["step"] == 30 and validation["psnr"] != 99.0


def test_facts_may_not_replace_what_the_export_writes(tmp_path):
    for fact in ("name", "version", "io", "architecture"):
        with pytest.raises(TrainingError, match=f"may not set {fact}:"):
            export_onnx(tmp_path / "never-read.pt", tmp_path / "x.onnx", "x", 1, {fact: "5"})
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.slow
def test_teacher_exports_to_the_same_contract(checkpoints, tmp_path):
    _, teacher, _ = checkpoints
    path = tmp_path / "teacher.onnx"
    assert export_onnx(teacher, path, "tiny-teacher", 1)["max_abs_diff"] < 1e-4
    session = onnx_session(path)
    assert session.get_inputs()[0].name == "input"
    assert session.get_modelmeta().custom_metadata_map["vcam.size_multiple"] == "8"


def test_a_self_ensembled_teacher_exports_its_mean_over_eight_views(checkpoints, tmp_path):
    _, teacher, student = checkpoints
    plain, ensembled = tmp_path / "teacher.onnx", tmp_path / "teacher-x8.onnx"
    export_onnx(teacher, plain, "t", 1)
    assert export_onnx(teacher, ensembled, "t", 1, self_ensemble=True)["max_abs_diff"] < 1e-4
    assert onnx_session(ensembled).get_modelmeta().custom_metadata_map["vcam.self_ensemble"] == "8"
    x = np.random.default_rng(0).random((1, 3, 40, 56), dtype=np.float32)
    one, eight = (onnx_session(p).run(None, {"input": x})[0] for p in (plain, ensembled))
    assert np.abs(one - eight).max() > 1e-4  # the trained teacher is not symmetric: the views differ
    mirrored = onnx_session(ensembled).run(None, {"input": np.ascontiguousarray(x[..., ::-1])})[0]
    assert np.allclose(mirrored[..., ::-1], eight, atol=1e-5)
    with pytest.raises(TrainingError, match="for the offline teacher, not a student"):
        export_onnx(student, tmp_path / "s.onnx", "s", 1, self_ensemble=True)


@pytest.mark.slow
def test_int8_student_is_luma8_and_stays_close(checkpoints, tmp_path):
    tmp, _, student = checkpoints
    fp32, int8 = tmp_path / "s.onnx", tmp_path / "s8.onnx"
    export_onnx(student, fp32, "tiny", 1, {"training": {"steps": 30}})
    rng = np.random.default_rng(1)
    calib = [(rng.random((32, 40, 3)) * 255).astype(np.uint8) for _ in range(4)]
    quantize_luma8(student, fp32, int8, calib)
    proto = onnx.load(str(int8))
    ops = [n.op_type for n in proto.graph.node]
    # packed uint8 at both ends: no SpaceToDepth/DepthToSpace or end Quantize/Dequantize left
    assert "SpaceToDepth" not in ops and "DepthToSpace" not in ops and "QuantizeLinear" in ops
    assert ops[-1] == "QuantizeLinear"
    for end in (proto.graph.input[0], proto.graph.output[0]):
        assert end.type.tensor_type.elem_type == onnx.TensorProto.UINT8
        assert end.type.tensor_type.shape.dim[1].dim_value == 16  # 4x4 blocks of one luma
    # only the domains its nodes use: older runtimes refuse unknown opset versions of unused ones
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 17)]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["vcam.io"] == "luma8" and meta["vcam.quantization"].startswith("int8")
    # exact on every x86 kernel: no pair of uint8 x int8 products reaches past int16
    assert int16_overflows(proto) == []
    assert meta["vcam.luma8_block"] == "4"
    assert meta["vcam.name"] == "tiny" and json.loads(meta["vcam.training"]) == {"steps": 30}
    # Through the runtime, at an odd size: what the float network does, to INT8 precision.
    img = (np.random.default_rng(2).random((45, 67, 3)) * 255).astype(np.uint8)
    a, b = OnnxSharpener(fp32)(img).copy(), OnnxSharpener(int8)(img)
    assert psnr(a, b) > 35
    crop = img[:44, :64]  # and the fp32 export is the PyTorch network (at a size it takes)
    with torch.no_grad():
        ref = model_from_checkpoint(student)(to_tensor_batch(crop[None]))
    ref = np.rint(ref.clamp(0, 1)[0].permute(1, 2, 0).numpy()[..., ::-1] * 255)
    assert np.abs(ref - OnnxSharpener(fp32)(crop)).max() <= 1


@pytest.mark.slow
def test_int8_export_of_a_teacher_is_refused(checkpoints, tmp_path):
    _, teacher, _ = checkpoints
    export_onnx(teacher, tmp_path / "t.onnx", "t", 1)
    with pytest.raises(TrainingError, match="holds a teacher; INT8 \\(luma8\\) export is for students"):
        quantize_luma8(teacher, tmp_path / "t.onnx", tmp_path / "t8.onnx", [])


@pytest.mark.slow
def test_quality_report_has_the_reference_table(checkpoints, tmp_path):
    tmp, teacher, student = checkpoints
    export_onnx(teacher, tmp_path / "t.onnx", "t", 1)
    export_onnx(student, tmp_path / "s.onnx", "s", 1)
    report = evaluate(tmp / "val", {"teacher": tmp_path / "t.onnx", "student": tmp_path / "s.onnx"})
    methods = report["methods"]
    assert list(methods) == ["degraded input", "unsharp mask", "CAS", "teacher", "student"]
    for row in methods.values():
        assert 5 < row["psnr"] < 60 and 0 < row["ssim"] <= 1
    assert set(report["vs_teacher"]) == {"student"}
    assert list(report["unseen"]) == list(methods)  # the same rows under the second family
    assert report["unseen"]["degraded input"]["psnr"] != methods["degraded input"]["psnr"]
    assert list(report["sharp"]) == list(methods)  # and as a sharp camera sends them
    assert report["sharp"]["degraded input"]["psnr"] > methods["degraded input"]["psnr"]  # no blur
    md = to_markdown(report)
    assert "| student |" in md and "| vs teacher |" in md and "unseen family" in md and "Sharp camera" in md


@pytest.mark.slow
def test_quality_report_adds_degraded_video_frames(checkpoints, tmp_path):
    import cv2

    tmp, _, student = checkpoints
    export_onnx(student, tmp_path / "s.onnx", "s", 1)
    (tmp_path / "video").mkdir()
    writer = cv2.VideoWriter(str(tmp_path / "video" / "clip.avi"), cv2.VideoWriter.fourcc(*"MJPG"), 10, (48, 40))
    rng = np.random.default_rng(0)
    for _ in range(8):
        writer.write(cv2.resize(rng.integers(0, 256, (5, 6, 3), np.uint8), (48, 40), interpolation=cv2.INTER_CUBIC))
    writer.release()
    report = evaluate(tmp / "val", {"student": tmp_path / "s.onnx"}, video_dir=tmp_path / "video")
    assert report["video"]["frames"] == 6 and list(report["video"]["methods"]) == list(report["methods"])
    assert "video frames (6)" in to_markdown(report)


@pytest.mark.slow
def test_speed_table_times_each_model_and_the_baselines(checkpoints, tmp_path):
    _, _, student = checkpoints
    export_onnx(student, tmp_path / "s.onnx", "s", 1)
    timed = speed({"student": tmp_path / "s.onnx"}, frames=2)
    assert timed["cpu"]["isa"] and timed["cpu"]["model"]  # a speed figure names its CPU
    rows = timed["methods"]
    assert list(rows) == ["student", "unsharp mask", "CAS"]
    for row in rows.values():
        assert 0 < row["infer_p50"] <= row["e2e_p50"] <= row["e2e_p95"]
    md = to_markdown(
        {
            "val_dir": "v",
            "images": 1,
            "methods": {"degraded input": {"psnr": 20, "psnr_y": 21, "ssim": 0.5}},
            "vs_teacher": {},
            "speed": timed,
        }
    )
    assert "| student |" in md.split("Speed")[1] and timed["cpu"]["isa"] in md.split("Speed")[1]


@pytest.mark.slow
def test_slim_checkpoint_holds_one_weight_set_of_the_same_network(tmp_path):
    last = train(tiny_config(tmp_path, steps=10, average_decay=0.9))
    slim = tmp_path / "teacher.pt"
    slim_checkpoint(last, slim)
    assert load_checkpoint(last)[AVERAGED_KEY] is not None and load_checkpoint(slim)[AVERAGED_KEY] is None
    x = torch.rand(1, 3, 32, 40)
    with torch.no_grad():
        averaged = model_from_checkpoint(last)(x)
        assert torch.equal(model_from_checkpoint(slim)(x), averaged)
        slim_checkpoint(last, slim, averaged=False)
        raw = model_from_checkpoint(last, averaged=False)(x)
        assert torch.equal(model_from_checkpoint(slim)(x), raw)
        assert not torch.equal(raw, averaged)  # the raw weights are really another network


def _conv_model(path, weight: np.ndarray) -> None:
    """One float 3x3 convolution + ReLU, [1,C,H,W] -> [1,K,H,W]."""
    from onnx import helper, numpy_helper

    k, c = weight.shape[:2]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
        "conv",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, c, 8, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, k, 8, 8])],
        [numpy_helper.from_array(weight.astype(np.float32), "w")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.mark.parametrize("reduce_range", [False, True])
def test_int16_overflow_check_reads_the_quantised_weights(tmp_path, reduce_range):
    """Full 8-bit weights saturate AVX2's pairwise int16 sums; 7-bit ones cannot. The check sees
    it from the graph alone, so it fails on a VNNI machine too, where such a model runs exactly."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    weight = np.random.default_rng(0).normal(size=(4, 3, 3, 3))
    _conv_model(tmp_path / "f.onnx", weight)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"x": np.random.default_rng(i).random((1, 3, 8, 8), np.float32)} for i in range(4)])

        def get_next(self):
            return next(self.items, None)

    quantize_static(
        str(tmp_path / "f.onnx"),
        str(tmp_path / "q.onnx"),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        reduce_range=reduce_range,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    problems = int16_overflows(onnx.load(str(tmp_path / "q.onnx")))
    if reduce_range:
        assert problems == []
    else:
        assert len(problems) == 1 and "> 32767" in problems[0]


@pytest.mark.slow
def test_qat_keeps_the_student_and_its_int8_export_close(checkpoints, tmp_path):
    """Quantisation-aware fine-tuning writes an ordinary student checkpoint whose INT8 export
    passes the overflow check and still computes the float network's picture."""
    tmp, _, student = checkpoints
    cfg = tiny_config(tmp)
    sizes = {k: getattr(cfg, k) for k in ("train_dir", "val_dir", "cache", "crop", "pool", "batch")}
    qcfg = QatConfig(**sizes, calib_dir=cfg.train_dir, steps=30, lr=1e-4, calib_images=4)
    scores = finetune(student, tmp_path / "q.pt", qcfg)
    assert set(scores) == {"float", "int8_before", "int8_after"}
    assert abs(scores["int8_after"] - scores["float"]) < 1.0  # a tiny fine-tune does not wreck it
    fp32, int8 = tmp_path / "q.onnx", tmp_path / "q8.onnx"
    meta_facts = export_onnx(tmp_path / "q.pt", fp32, "tiny-qat", 1)
    assert meta_facts["max_abs_diff"] < 1e-4
    rng = np.random.default_rng(1)
    quantize_luma8(tmp_path / "q.pt", fp32, int8, [(rng.random((32, 40, 3)) * 255).astype(np.uint8) for _ in range(4)])
    assert int16_overflows(onnx.load(str(int8))) == []
    meta = OnnxSharpener(int8).metadata
    qat = json.loads(meta["vcam.training"])["qat"]
    assert (qat["steps"], qat["crop"], qat["pool"]) == (30, cfg.crop, cfg.pool)
    img = (np.random.default_rng(2).random((45, 67, 3)) * 255).astype(np.uint8)
    assert psnr(OnnxSharpener(fp32)(img).copy(), OnnxSharpener(int8)(img)) > 35


def _smooth_image(seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    small = np.random.default_rng(seed).integers(0, 256, (h // 4, w // 4, 3), np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


@pytest.mark.slow
@pytest.mark.parametrize("blocks", [0, 1])  # exported at quarter resolution / at half resolution
def test_qat_simulates_the_int8_model_of_a_context_student(tmp_path, blocks):
    """What the fine-tune optimises is what ships: its INT8 simulation of a student with a context
    branch (every weight live) computes the exported INT8 model's picture to within rounding,
    far closer than the float network does."""
    torch.manual_seed(0)
    student = Student(StudentConfig(channels=8, blocks=blocks, scale=2, context=8))
    with torch.no_grad():
        for p in student.parameters():
            p.normal_(0, 0.1)
    checkpoint = tmp_path / "s.pt"
    torch.save({"arch": describe(student), "model": student.state_dict()}, checkpoint)
    calibration = [_smooth_image(i) for i in range(4)]
    fp32, int8 = tmp_path / "s.onnx", tmp_path / "s8.onnx"
    export_onnx(checkpoint, fp32, "context", 1)
    quantize_luma8(checkpoint, fp32, int8, calibration)

    net = model_from_checkpoint(checkpoint)
    net.fold()
    simulated = QuantizedStudent(net, activation_ranges(net, calibration))
    img = _smooth_image(9)
    with torch.no_grad():
        x = to_tensor_batch(img[None])
        as_bgr = [
            t.clamp(0, 1).mul(255).round().byte()[0].permute(1, 2, 0).numpy()[..., ::-1] for t in (simulated(x), net(x))
        ]
    shipped = OnnxSharpener(int8)(img)
    sim_db, float_db = psnr(as_bgr[0], shipped), psnr(as_bgr[1], shipped)
    assert sim_db > 55 and sim_db > float_db + 15, (sim_db, float_db)


@pytest.mark.parametrize(
    "config, stored",
    [
        (StudentConfig(channels=8, blocks=0, scale=2, context=0, expand=8), 1),  # the head's ReLU output
        (StudentConfig(channels=8, blocks=1, scale=2, context=0), 2),  # and the RepBlock's
    ],
)
def test_the_int8_simulation_refuses_an_unfolded_student(config, stored):
    student = Student(config)
    with pytest.raises(TypeError, match="fold the student first"):
        activation_ranges(student, [_smooth_image(0)])
    student.fold()
    assert len(activation_ranges(student, [_smooth_image(0)])) == stored


@pytest.mark.slow
def test_qat_fine_tunes_a_context_student(checkpoints, tmp_path):
    tmp, _, _ = checkpoints
    model = {"channels": 8, "blocks": 0, "scale": 2, "context": 8}
    cfg = tiny_config(tmp, kind="student", model=model, steps=2, out=str(tmp_path))
    sizes = {k: getattr(cfg, k) for k in ("train_dir", "val_dir", "cache", "crop", "pool", "batch")}
    source = train(cfg)
    scores = finetune(source, tmp_path / "q.pt", QatConfig(**sizes, calib_dir=cfg.train_dir, steps=5, calib_images=4))
    assert all(np.isfinite(v) for v in scores.values())
    before, after = load_checkpoint(source)["model"], load_checkpoint(tmp_path / "q.pt")["model"]
    for name in ("context.inp.weight", "context.mid.weight", "context.out.weight"):
        assert not torch.equal(before[name].float(), after[name].float()), name  # the branch learns too


@pytest.mark.slow
def test_a_half_resolution_student_exports_in_2x2_blocks_and_fine_tunes(checkpoints, tmp_path):
    """scale=2 runs through the same export, INT8 check, runtime and QAT as the shipped scale 4."""
    tmp, _, _ = checkpoints
    cfg = tiny_config(
        tmp, kind="student", model={"channels": 8, "blocks": 1, "scale": 2, "context": 0}, steps=10, out=str(tmp_path)
    )
    student = train(cfg)
    sizes = {k: getattr(cfg, k) for k in ("train_dir", "val_dir", "cache", "crop", "pool", "batch")}
    finetune(student, tmp_path / "q.pt", QatConfig(**sizes, calib_dir=cfg.train_dir, steps=5, calib_images=4))
    fp32, int8 = tmp_path / "s.onnx", tmp_path / "s8.onnx"
    assert export_onnx(tmp_path / "q.pt", fp32, "half", 1)["max_abs_diff"] < 1e-4
    rng = np.random.default_rng(1)
    quantize_luma8(tmp_path / "q.pt", fp32, int8, [(rng.random((32, 40, 3)) * 255).astype(np.uint8) for _ in range(4)])
    proto = onnx.load(str(int8))
    assert proto.graph.input[0].type.tensor_type.shape.dim[1].dim_value == 4  # 2x2 blocks of one luma
    assert proto.graph.output[0].type.tensor_type.shape.dim[1].dim_value == 4
    weights = [onnx.numpy_helper.to_array(t) for t in proto.graph.initializer if len(t.dims) == 4]
    # the 4-channel tail runs 16 wide, its real channels sliced out (ONNX Runtime is slow below 16)
    assert [w.shape[0] for w in weights].count(4) == 0 and weights[-1].shape[0] == 16 and not weights[-1][4:].any()
    assert proto.graph.node[-1].op_type == "Slice"
    assert int16_overflows(proto) == []
    meta = OnnxSharpener(int8).metadata
    assert meta["vcam.luma8_block"] == "2" and meta["vcam.size_multiple"] == "2"
    img = (np.random.default_rng(2).random((45, 67, 3)) * 255).astype(np.uint8)
    assert psnr(OnnxSharpener(fp32)(img).copy(), OnnxSharpener(int8)(img)) > 35


@pytest.mark.parametrize("kernel", [3, 5])  # a 5×5 reaches no further than the next 2×2 block either
def test_an_unshuffled_convolution_computes_the_same_at_half_the_resolution(kernel):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 5, kernel, padding=kernel // 2)
    x = torch.rand(1, 3, 12, 16)
    with torch.no_grad():
        wide = unshuffled_conv(conv, 2)
        assert (wide.in_channels, wide.out_channels, wide.kernel_size) == (12, 20, (3, 3))
        expected = torch.nn.functional.pixel_unshuffle(conv(x), 2)
        assert torch.allclose(wide(torch.nn.functional.pixel_unshuffle(x, 2)), expected, atol=1e-6)
    with pytest.raises(ValueError, match="up to 5×5"):  # 7×7 reaches two blocks away
        unshuffled_conv(torch.nn.Conv2d(3, 5, 7, padding=3), 2)


def test_a_bodyless_half_resolution_student_runs_at_quarter_resolution():
    from distill.models import Student, StudentConfig

    torch.manual_seed(0)
    student = Student(StudentConfig(channels=8, blocks=0, scale=2, context=0)).eval()
    torch.nn.init.normal_(student.tail.weight, 0, 0.1)  # a trained tail: not the zeros it starts from
    luma = luma_residual_module(student)
    assert luma.size_multiple == 4
    y = torch.rand(1, 1, 36, 52)
    with torch.no_grad():
        assert torch.allclose(luma(y), student.luma_residual(y)[0], atol=1e-5)
    with_context = Student(StudentConfig(channels=8, blocks=0, scale=2, context=8)).eval()
    torch.nn.init.normal_(with_context.tail.weight, 0, 0.1)
    assert with_context.context is not None
    torch.nn.init.normal_(with_context.context.out.weight, 0, 0.1)
    with torch.no_grad():  # the branch then reads the quarter-resolution features as they are
        assert torch.allclose(luma_residual_module(with_context)(y), with_context.luma_residual(y)[0], atol=1e-5)
    five = Student(StudentConfig(channels=8, blocks=0, scale=2, context=8, kernel=5)).eval()
    for p in five.parameters():  # trained weights everywhere, the 5×5 taps' outer ring included
        torch.nn.init.normal_(p, 0, 0.1)
    with torch.no_grad():
        assert torch.allclose(luma_residual_module(five)(y), five.luma_residual(y)[0], atol=1e-5)
    with_body = Student(StudentConfig(channels=8, blocks=1, scale=2, context=0))
    assert luma_residual_module(with_body).size_multiple == 2  # its body stays at 1/2 resolution
    wide = Student(StudentConfig(channels=24, blocks=0, scale=2, context=0))
    assert luma_residual_module(wide).size_multiple == 2  # four times its MACs would cost more than they save


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "block"),
    [
        ({"channels": 16, "blocks": 0, "scale": 2, "context": 0}, 4),  # at 1/4 resolution
        ({"channels": 8, "blocks": 0, "scale": 2, "context": 8}, 4),
        ({"channels": 8, "blocks": 1, "scale": 2, "context": 8}, 2),  # packs and unpacks features inside
        ({"channels": 8, "blocks": 0, "scale": 2, "context": 0, "expand": 8}, 4),  # folded head and tail
        ({"channels": 8, "blocks": 0, "scale": 2, "context": 0, "expand": 8, "kernel": 5}, 4),  # 5×5 ones
    ],
)
def test_a_half_resolution_student_exports_in_its_blocks(checkpoints, tmp_path, model, block):
    tmp, _, _ = checkpoints
    cfg = tiny_config(tmp, kind="student", model=model, steps=10, out=str(tmp_path))
    student = train(cfg)
    fp32, int8 = tmp_path / "s.onnx", tmp_path / "s8.onnx"
    export_onnx(student, fp32, "half", 1)
    rng = np.random.default_rng(1)
    quantize_luma8(student, fp32, int8, [(rng.random((32, 40, 3)) * 255).astype(np.uint8) for _ in range(4)])
    meta = OnnxSharpener(int8).metadata
    assert meta["vcam.luma8_block"] == str(block) and meta["vcam.size_multiple"] == "4"
    assert int16_overflows(onnx.load(str(int8))) == []
    img = (np.random.default_rng(2).random((46, 63, 3)) * 255).astype(np.uint8)  # padded to multiples of 4
    assert psnr(OnnxSharpener(fp32)(img).copy(), OnnxSharpener(int8)(img)) > 35


@pytest.mark.parametrize("kernel", [3, 5])
def test_unfold_is_the_inverse_of_fold_for_repconv_and_context(kernel):
    torch.manual_seed(0)
    student = Student(StudentConfig(channels=8, blocks=1, scale=2, context=8, expand=8, kernel=kernel))
    with torch.no_grad():
        for p in student.parameters():
            p.normal_(0, 0.1)
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        expected = student(x)
        student.fold()
        again = unfold(student)
        assert isinstance(again.head, RepConv) and torch.allclose(again(x), expected, atol=1e-5)
        again.fold()
        for name, tensor in student.state_dict().items():
            assert torch.allclose(again.state_dict()[name], tensor, atol=1e-6), name


@pytest.mark.slow
def test_unfold_is_the_inverse_of_fold(checkpoints):
    _, _, student = checkpoints
    folded = model_from_checkpoint(student)
    folded.fold()
    again = unfold(folded)
    again.fold()
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        assert torch.allclose(folded(x), again(x), atol=1e-5)
