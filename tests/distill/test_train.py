import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from support.distill_fixtures import TINY_STUDENT, tiny_config, write_images

from distill.curves import read_metrics
from distill.data import DataError, make_pool, to_tensor_batch, write_atomically
from distill.models import build, describe
from distill.train import (
    DEAD_AFTER,
    TrainConfig,
    TrainingError,
    average_decay_at,
    load_checkpoint,
    model_from_checkpoint,
    teacher_targets,
    train,
    uses_bf16,
)

REPO = Path(__file__).resolve().parents[2]


def pool_l1(model, cfg) -> float:
    pool = make_pool(cfg.train_dir, cfg.pool, cfg.crop, cfg.seed, cfg.mix, cfg.cache)
    with torch.no_grad():
        return F.l1_loss(model(to_tensor_batch(pool.degraded)), to_tensor_batch(pool.clean)).item()


def test_cache_writes_go_through_a_temporary_of_this_process(tmp_path):
    seen = []

    def write(tmp):
        seen.append(tmp)
        np.savez(tmp, x=np.arange(3))

    target = tmp_path / "cache" / "pool-abc.npz"
    write_atomically(target, write)
    # a name no other process uses, kept as .npz (np.savez would append it otherwise)
    assert seen[0].parent == target.parent and str(os.getpid()) in seen[0].name
    assert seen[0].suffix == ".npz" and seen[0] != target
    with np.load(target) as z:
        assert list(z["x"]) == [0, 1, 2]
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary left


def test_average_decay_warms_up_to_the_configured_value():
    cfg = TrainConfig(average_decay=0.999)
    decays = [average_decay_at(cfg, step) for step in (0, 10, 100, 1000, 100_000)]
    assert decays[0] < 0.2 and decays == sorted(decays) and decays[-1] == 0.999
    assert average_decay_at(cfg, 2000) < 0.996  # a 2000-step run averages ~200 steps, not ~1000


@pytest.mark.slow
def test_teacher_training_lowers_the_loss_in_fp32_and_in_bf16(tmp_path):
    trained = {}
    for precision in ("fp32", "bf16"):
        cfg = tiny_config(tmp_path, steps=100, precision=precision, out=str(tmp_path / precision))
        last = train(cfg)
        ckpt = load_checkpoint(last)
        assert ckpt["step"] == 100 and ckpt["config"]["precision"] == precision
        untrained = pool_l1(torch.nn.Identity(), cfg)  # untrained nets are the identity
        trained[precision] = model_from_checkpoint(last)
        assert pool_l1(trained[precision], cfg) < 0.97 * untrained
        rows = read_metrics(Path(cfg.out) / "metrics.jsonl")
        assert any("val_psnr" in r for r in rows) and (Path(cfg.out) / "curves.png").stat().st_size > 0
    # The same seed and batches: only bf16 arithmetic makes the weights differ (autocast did run).
    fp32, bf16 = (trained[p].state_dict()["head.weight"] for p in ("fp32", "bf16"))
    assert not torch.equal(fp32, bf16) and torch.allclose(fp32, bf16, atol=0.05)


def test_auto_precision_is_bf16_on_gpus_and_on_cpus_with_amx(monkeypatch):
    monkeypatch.setattr("distill.train.cpu_flags", lambda: {"avx2", "avx512_bf16"})
    assert not uses_bf16("auto", "cpu") and uses_bf16("auto", "cuda:0") and uses_bf16("bf16", "cpu")
    monkeypatch.setattr("distill.train.cpu_flags", lambda: {"avx2", "amx_tile", "amx_bf16"})
    assert uses_bf16("auto", "cpu") and not uses_bf16("fp32", "cpu")
    with pytest.raises(TrainingError, match="--precision fp16 is not one of"):
        uses_bf16("fp16", "cpu")


@pytest.mark.slow
def test_student_alone_and_distilled_both_learn(tmp_path):
    teacher = train(tiny_config(tmp_path, steps=60, out=str(tmp_path / "teacher")))
    plain = tiny_config(
        tmp_path,
        kind="student",
        model=dict(TINY_STUDENT),
        steps=300,
        lr=1e-3,
        eval_every=1000,
        out=str(tmp_path / "plain"),
    )
    distilled = replace(plain, out=str(tmp_path / "kd"), teacher=str(teacher), w_feat=0.1)
    assert pool_l1(model_from_checkpoint(train(plain)), plain) < 0.99 * pool_l1(torch.nn.Identity(), plain)
    train(distilled)
    rows = [json.loads(line) for line in (tmp_path / "kd" / "metrics.jsonl").read_text().splitlines() if "loss" in line]
    assert {"loss_gt", "loss_kd", "loss_feat"} <= set(rows[0])
    # The distillation objective itself goes down: imitating the teacher's output and features.
    first, final = (
        (np.mean([r[k] for r in rows[:3]]) for k in ("loss_kd", "loss_feat")),
        (np.mean([r[k] for r in rows[-3:]]) for k in ("loss_kd", "loss_feat")),
    )
    for before, after in zip(first, final):
        assert after < 0.9 * before
    assert list((tmp_path / "cache").glob("teacher-*.pt")), "teacher targets are cached"


@pytest.mark.slow
def test_resume_continues_the_step_count(tmp_path):
    cfg = tiny_config(tmp_path, steps=10)
    train(cfg)
    resumed = train(replace(cfg, steps=25))
    assert load_checkpoint(resumed)["step"] == 25
    steps = [json.loads(line)["step"] for line in (Path(cfg.out) / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 25


@pytest.mark.slow
def test_a_checkpoint_from_before_the_students_scale_option_resumes(tmp_path):
    """Checkpoints written before `scale` existed lack the field; they hold a scale-4 student."""
    cfg = tiny_config(tmp_path, kind="student", model=dict(TINY_STUDENT), steps=5)
    last = train(cfg)
    ckpt = load_checkpoint(last)
    assert ckpt["arch"].pop("scale") == 4
    torch.save(ckpt, last)
    assert load_checkpoint(train(replace(cfg, steps=8)))["step"] == 8
    with pytest.raises(TrainingError, match="new --out"):
        train(replace(cfg, model=dict(TINY_STUDENT, scale=2, context=0), steps=10))


def test_feature_mimicry_needs_a_student_at_the_teachers_feature_resolution(tmp_path):
    cfg = tiny_config(
        tmp_path,
        kind="student",
        model=dict(TINY_STUDENT, scale=2, context=0),
        teacher=str(tmp_path / "t.pt"),
        w_feat=0.1,
    )
    with pytest.raises(TrainingError, match="scale-2 student's are at another resolution; pass --w-feat 0"):
        train(cfg)
    assert not (Path(cfg.out) / "last.pt").exists()


@pytest.mark.slow
def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    cfg = tiny_config(tmp_path, steps=5)
    train(cfg)
    with pytest.raises(TrainingError, match="new --out"):
        train(replace(cfg, kind="student", model=dict(TINY_STUDENT)))


def test_a_checkpoint_from_before_the_context_option_loads_as_it_was(tmp_path):
    """Weights-only checkpoints of earlier versions (e.g. student-fast.pt) lack `context`."""
    student = build("student", channels=8, blocks=0, scale=2, context=0)
    torch.save(
        {"arch": {"kind": "student", "channels": 8, "blocks": 0, "scale": 2}, "model": student.state_dict()},
        tmp_path / "old.pt",
    )
    loaded = model_from_checkpoint(tmp_path / "old.pt")
    assert describe(loaded)["context"] == 0
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        assert torch.equal(loaded(x), student.eval()(x))


@pytest.mark.slow
@pytest.mark.parametrize("expand", [0, 8])  # plain convolutions, or RepConv ones (the branch's 3×3 too)
@pytest.mark.parametrize("growth", [{"context": 8}, {"kernel": 5}])  # a context branch, 5×5 head and tail
def test_a_student_grows_from_its_checkpoint_with_the_same_picture(tmp_path, expand, growth):
    plain = {"channels": 8, "blocks": 0, "scale": 2, "context": 0, "expand": expand}
    cfg = tiny_config(tmp_path, kind="student", model=plain, steps=20, lr=1e-2, out=str(tmp_path / "plain"))
    before = model_from_checkpoint(train(cfg))
    grown_cfg = replace(cfg, model=plain | growth, steps=0, init=str(tmp_path / "plain" / "last.pt"))
    grown = model_from_checkpoint(train(replace(grown_cfg, out=str(tmp_path / "grown"))))
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        assert not torch.allclose(before(x), x, atol=1e-3)  # trained: not the identity it started as
        assert torch.allclose(grown(x), before(x), atol=1e-3)  # the same picture (fp16 checkpoints) until it trains
    refusal = "no or a narrower context branch or smaller kernels"
    with pytest.raises(TrainingError, match=refusal):  # only the branch and kernels grow
        train(replace(grown_cfg, model=plain | growth | {"channels": 16}, out=str(tmp_path / "wider")))
    with pytest.raises(TrainingError, match=refusal):  # and never shrink
        train(replace(cfg, init=str(tmp_path / "grown" / "last.pt"), out=str(tmp_path / "shrunk")))


@pytest.mark.slow
def test_a_teacher_deepens_from_its_checkpoint_with_the_same_picture(tmp_path):
    cfg = tiny_config(tmp_path, steps=20, lr=1e-2, average_decay=0.9, out=str(tmp_path / "shallow"))
    shallow = train(cfg)
    deep_cfg = replace(cfg, model={"width": 8, "blocks": [1, 2, 3]}, init=str(shallow))
    start = train(replace(deep_cfg, steps=0, out=str(tmp_path / "start")))
    trained = model_from_checkpoint(train(replace(deep_cfg, out=str(tmp_path / "deep"))))
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        for averaged in (True, False):  # the raw weights and their running average (what export uses)
            before = model_from_checkpoint(shallow, averaged=averaged)
            assert not torch.allclose(before(x), x, atol=1e-3)  # trained: not the identity it started as
            # the new blocks start as the identity
            assert torch.allclose(model_from_checkpoint(start, averaged=averaged)(x), before(x), atol=1e-3)
    assert trained.state_dict()["mid.2.conv2.weight"].abs().sum() > 0  # and then learn
    with pytest.raises(TrainingError, match="a teacher with fewer blocks"):  # never shallower, nor wider
        train(replace(cfg, init=str(tmp_path / "deep" / "last.pt"), out=str(tmp_path / "shallower")))
    with pytest.raises(TrainingError, match="a teacher with fewer blocks"):
        train(replace(deep_cfg, model={"width": 16, "blocks": [1, 2, 3]}, out=str(tmp_path / "wider")))


@pytest.mark.slow
def test_a_trained_context_branch_widens_and_keeps_its_picture(tmp_path):
    """The new channels start unheard, then learn: a wider hq from the shipped one's weights.
    Both the raw weights and their running average (what export uses) keep their picture."""
    narrow = {"channels": 8, "blocks": 0, "scale": 2, "context": 8, "expand": 0}
    cfg = tiny_config(
        tmp_path, kind="student", model=narrow, steps=20, lr=1e-2, average_decay=0.9, out=str(tmp_path / "narrow")
    )
    narrow_ckpt = train(cfg)
    wide_cfg = replace(cfg, model=narrow | {"context": 16}, init=str(narrow_ckpt))
    start_ckpt = train(replace(wide_cfg, steps=0, out=str(tmp_path / "start")))
    trained = model_from_checkpoint(train(replace(wide_cfg, out=str(tmp_path / "wide"))))
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        for averaged in (True, False):
            before = model_from_checkpoint(narrow_ckpt, averaged=averaged)
            assert before.state_dict()["context.out.weight"].abs().max() > 1e-3  # the branch did learn
            assert torch.allclose(model_from_checkpoint(start_ckpt, averaged=averaged)(x), before(x), atol=1e-3)
        assert not torch.allclose(trained(x), before(x), atol=1e-3)
    new_channels = trained.state_dict()["context.out.weight"][:, 8:]
    assert new_channels.abs().sum() > 0  # the widened part trains, not only the stored one
    rep = narrow | {"expand": 8}
    rep_ckpt = train(replace(cfg, model=rep, steps=0, out=str(tmp_path / "rep")))
    with pytest.raises(TrainingError, match="trained as RepConv .* cannot be widened"):
        train(replace(wide_cfg, model=rep | {"context": 16}, init=str(rep_ckpt), out=str(tmp_path / "rep16")))


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = tiny_config(tmp_path, steps=5, lr=1e-3)
    train(cfg)
    good = load_checkpoint(Path(cfg.out) / "last.pt")
    with pytest.raises(TrainingError, match="loss became"):
        train(replace(cfg, steps=60, lr=1e30, warmup=1, checkpoint_minutes=0.0))
    kept = load_checkpoint(Path(cfg.out) / "last.pt")
    assert all(torch.isfinite(v).all() for v in kept["model"].values())
    assert kept["step"] >= good["step"]


@pytest.mark.slow
def test_a_network_whose_activations_died_stops_with_what_to_do(tmp_path):
    cfg = tiny_config(tmp_path, kind="student", model=dict(TINY_STUDENT), steps=DEAD_AFTER, eval_every=DEAD_AFTER)
    train(cfg)  # a live network runs past the check
    ckpt = load_checkpoint(Path(cfg.out) / "last.pt")
    ckpt["model"]["head.bias"].fill_(-1000.0)  # no pixel can switch a head ReLU on again
    torch.save(ckpt, tmp_path / "dead.pt")
    dead = replace(cfg, init=str(tmp_path / "dead.pt"), out=str(tmp_path / "dead"), steps=2 * DEAD_AFTER)
    with pytest.raises(TrainingError, match="adds the same residual to any input.*lower --lr"):
        train(dead)


def test_bad_data_folders(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        make_pool(tmp_path / "missing", 4, 16, 0, "wide")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        make_pool(tmp_path / "empty", 4, 16, 0, "wide")
    small = write_images(tmp_path / "small", 2, size=(20, 20))
    with pytest.raises(DataError, match="smaller than 32"):
        make_pool(small, 4, 32, 0, "wide")


def test_a_pool_is_cached_by_its_images_whatever_the_folder_is_called(tmp_path, monkeypatch):
    a, b = write_images(tmp_path / "a", 2), write_images(tmp_path / "b", 2, seed=5)
    cache = tmp_path / "cache"
    first = make_pool(a, 4, 32, 0, "wide", cache)
    monkeypatch.chdir(tmp_path / "b")
    assert make_pool("../a", 4, 32, 0, "wide", cache).key == first.key  # the same folder: a cache hit
    assert len(list(cache.glob("pool-*.npz"))) == 1
    other = make_pool(b, 4, 32, 0, "wide", cache)  # same size, crop and seed, other images
    assert other.key != first.key and not np.array_equal(other.clean, first.clean)


def test_a_pool_is_keyed_by_its_degradation_mix(tmp_path):
    a = write_images(tmp_path / "a", 2)
    wide = make_pool(a, 8, 32, 0, "wide", tmp_path / "cache")
    benchmark = make_pool(a, 8, 32, 0, "benchmark", tmp_path / "cache")
    assert wide.key != benchmark.key and len(list((tmp_path / "cache").glob("pool-*.npz"))) == 2
    assert not np.array_equal(wide.degraded, benchmark.degraded)
    with pytest.raises(DataError, match="unknown degradation mix 'webp'; choose one of benchmark, wide"):
        make_pool(a, 8, 32, 0, "webp")


@pytest.mark.slow
def test_teacher_targets_are_computed_for_each_pool(tmp_path):
    """Cached teacher outputs belong to one pool: a student trained on other images with a
    pool of the same size gets the teacher's outputs for those images."""
    teacher = train(tiny_config(tmp_path, steps=5, out=str(tmp_path / "teacher")))
    cfg = tiny_config(tmp_path, kind="student", model=dict(TINY_STUDENT), steps=2, teacher=str(teacher))
    train(replace(cfg, out=str(tmp_path / "s1")))
    write_images(tmp_path / "other", 4, seed=7)
    train(replace(cfg, out=str(tmp_path / "s2"), train_dir=str(tmp_path / "other")))
    assert len(list((tmp_path / "cache").glob("teacher-*.pt"))) == 2


def test_teacher_features_are_computed_and_kept_only_for_feature_mimicry(tmp_path):
    cfg = tiny_config(tmp_path, steps=5)
    teacher = model_from_checkpoint(train(cfg)).eval()
    pool = make_pool(cfg.train_dir, 40, cfg.crop, 0, "benchmark")  # more than one batch of 32
    cache = tmp_path / "targets.pt"
    out, feat = teacher_targets(teacher, pool, cache, features=False)
    assert feat is None
    with torch.no_grad():
        expected = teacher(to_tensor_batch(pool.degraded)).clamp(0, 1).mul(255).round().to(torch.uint8)
    assert out.dtype == torch.uint8 and torch.equal(out, expected)
    out_again, feat = teacher_targets(teacher, pool, cache, features=True)  # the cache lacks them: computed
    assert torch.equal(out_again, out)
    assert feat is not None and feat.dtype == torch.float16 and len(feat) == len(pool)
    assert torch.load(cache, weights_only=True)["feat"] is not None  # and cached with the outputs
    _, cached = teacher_targets(teacher, pool, cache, features=True)
    assert cached is not None and torch.equal(cached, feat)
    out_only, unasked = teacher_targets(teacher, pool, cache, features=False)  # that cache, features left out
    assert unasked is None and torch.equal(out_only, out)


def test_corrupt_images_are_skipped_and_counted(tmp_path, caplog):
    folder = write_images(tmp_path / "mixed", 3)
    (folder / "broken.png").write_bytes(b"not a png")
    pool = make_pool(folder, 6, 32, 0, "wide")
    assert len(pool) == 6
    assert "skipped 1 unreadable" in caplog.text


def _cli(tmp_path, *extra, steps=400):
    cfg = tiny_config(tmp_path)
    return [
        "train",
        "--kind",
        "teacher",
        "--model",
        json.dumps(cfg.model),
        "--train-dir",
        cfg.train_dir,
        "--val-dir",
        cfg.val_dir,
        "--cache",
        cfg.cache,
        "--crop",
        "32",
        "--pool",
        "32",
        "--batch",
        "4",
        "--steps",
        str(steps),
        "--eval-every",
        "1000",
        "--average-decay",
        "0",
        "--threads",
        "1",
        *extra,
    ]


def _training(tmp_path, out):
    """A long `distill train` in a subprocess, returned once it has written its first metrics."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "distill", *_cli(tmp_path, "--out", str(out), steps=100000)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and not (metrics.exists() and metrics.stat().st_size > 0):
        time.sleep(0.2)
    assert metrics.exists() and metrics.stat().st_size > 0, "the run wrote no metrics within 60 s"
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_saves_a_checkpoint_that_resumes(tmp_path, sig):
    out = tmp_path / "run"
    proc = _training(tmp_path, out)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "run the same command to resume" in err
    step = load_checkpoint(out / "last.pt")["step"]
    assert step >= 10
    done = subprocess.run(
        [sys.executable, "-m", "distill", *_cli(tmp_path, "--out", str(out), steps=step + 5)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert load_checkpoint(out / "last.pt")["step"] == step + 5


@pytest.mark.slow
def test_a_sigstop_pause_is_not_counted_as_training_time(tmp_path):
    out = tmp_path / "run"
    proc = _training(tmp_path, out)
    began = time.time()
    proc.send_signal(signal.SIGSTOP)
    time.sleep(4)
    proc.send_signal(signal.SIGCONT)
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    wall = time.time() - began
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    counted = load_checkpoint(out / "last.pt")["elapsed"] - read_metrics(out / "metrics.jsonl")[0]["time"]
    # Wall time since the first row holds the 4 s pause; the hours of training must not.
    assert counted < wall - 3, (counted, wall)


@pytest.mark.slow
def test_cli_reports_bad_input_in_one_line(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "distill", "train", "--train-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error:") and "does not exist" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_torchrun_two_process_gloo(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "distill",
            *_cli(tmp_path, "--out", str(out), steps=6),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert load_checkpoint(out / "last.pt")["step"] == 6


class _RunsACommand:
    """What a malicious .pt would carry: unpickling it calls os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _distill(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "distill", *map(str, args)], capture_output=True, text=True, timeout=120
    )


def _one_line_error(r: subprocess.CompletedProcess, fragment: str) -> None:
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and fragment in lines[0], r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_a_checkpoint_is_data_never_code(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"arch": {"kind": "student"}, "model": _RunsACommand(marker)}, tmp_path / "evil.pt")
    _one_line_error(_distill("export", tmp_path / "evil.pt", tmp_path / "x.onnx"), "is not readable")
    _one_line_error(
        _distill(
            "train",
            "--kind",
            "student",
            "--teacher",
            tmp_path / "evil.pt",
            "--init",
            tmp_path / "evil.pt",
            "--out",
            tmp_path / "run",
            "--train-dir",
            tmp_path / "nope",
        ),
        "does not exist",
    )
    assert not marker.exists()
    with pytest.raises(TrainingError, match="is not readable"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()


@pytest.mark.slow
def test_export_says_in_one_line_what_is_wrong_with_its_input(tmp_path):
    torch.save({"head.weight": torch.zeros(1)}, tmp_path / "state_dict.pt")  # a checkpoint from elsewhere
    _one_line_error(_distill("export", tmp_path / "state_dict.pt", tmp_path / "x.onnx"), "not a checkpoint written by")
    torch.save({"arch": {"kind": "student", "channels": 8, "wings": 2}, "model": {}}, tmp_path / "odd.pt")
    _one_line_error(_distill("export", tmp_path / "odd.pt", tmp_path / "x.onnx"), "cannot build")
    _one_line_error(_distill("export", tmp_path / "odd.pt", tmp_path / "missing" / "x.onnx"), "does not exist")
    student = build("student", **TINY_STUDENT)
    torch.save({"arch": describe(student), "model": student.state_dict()}, tmp_path / "student.pt")
    _one_line_error(
        _distill("export", tmp_path / "student.pt", tmp_path / "x.onnx", "--self-ensemble"), "not a student"
    )


@pytest.mark.slow
def test_train_checks_its_options_before_building_the_pool(tmp_path):
    cfg = tiny_config(tmp_path)
    common = [
        "--train-dir",
        cfg.train_dir,
        "--val-dir",
        cfg.val_dir,
        "--cache",
        tmp_path / "c",
        "--out",
        tmp_path / "o",
    ]
    _one_line_error(_distill("train", "--kind", "foo", *common), "foo")
    _one_line_error(_distill("train", "--kind", "student", "--model", '{"wings": 2}', *common), "wings")
    _one_line_error(_distill("train", "--teacher", tmp_path / "none.pt", *common), "--teacher")
    _one_line_error(_distill("train", "--precision", "fp16", *common), "--precision fp16")
    assert not (tmp_path / "c").exists()  # nothing built, nothing cached


@pytest.mark.slow
def test_a_resumed_run_forgets_what_was_logged_after_its_checkpoint(tmp_path):
    cfg = tiny_config(tmp_path, steps=10)
    train(cfg)
    metrics = Path(cfg.out) / "metrics.jsonl"
    with metrics.open("a") as f:  # what a SIGKILLed run leaves: rows past its last checkpoint
        f.write(json.dumps({"step": 15, "loss": 1.0}) + "\n")
    train(replace(cfg, steps=20))
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines() if "loss" in line]
    assert steps == sorted(set(steps)) and steps[-1] == 20
