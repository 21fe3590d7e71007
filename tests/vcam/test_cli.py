"""The `vcam` command: through typer's CliRunner, and as real subprocesses for the exit path a
user sees (python -m vcam, SIGTERM/SIGINT while running)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from support import onnx_models
from typer.testing import CliRunner

from vcam.cli import app
from vcam.doctor import run_checks
from vcam.v4l2loopback import find_device

runner = CliRunner()


def vcam(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_start_runs_a_clip_to_the_null_sink(clip: Path, sharpen_model: Path) -> None:
    result = vcam("start", "--model", sharpen_model, "--source", clip, "--sink", "null", "--frames", 5)
    assert result.exit_code == 0, result.output
    assert "stopped after 5 frames" in result.stderr


def test_odd_width_works_end_to_end(textured_clip: Path, sharpen_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    result = vcam(
        "start",
        "--model",
        sharpen_model,
        "--source",
        textured_clip,
        "--sink",
        out,
        "--width",
        641,
        "--height",
        481,
        "--frames",
        3,
    )
    assert result.exit_code == 0, result.output
    ok, frame = cv2.VideoCapture(str(out)).read()
    assert ok and frame.shape == (480, 640, 3)


def test_version() -> None:
    result = vcam("--version")
    assert result.exit_code == 0 and result.stdout.startswith("vcam ")


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda p: p / "missing.onnx", "model file not found"),
        (lambda p: (p / "text.onnx").write_text("hello") and p / "text.onnx", "not a readable ONNX"),
        (lambda p: onnx_models.make_wrong_input_name_model(p / "m.onnx"), "named 'input'"),
        (lambda p: onnx_models.make_int_input_model(p / "m.onnx"), "expected tensor(float)"),
        (lambda p: onnx_models.make_wrong_rank_model(p / "m.onnx"), "expected [1,3,H,W]"),
        (lambda p: onnx_models.make_static_shape_model(p / "m.onnx"), "dynamic H and W"),
        (lambda p: onnx_models.make_wrong_channels_model(p / "m.onnx"), "expected 3 (RGB)"),
        (lambda p: onnx_models.make_wrong_output_rank_model(p / "m.onnx"), "output 'output' has"),
    ],
)
def test_bad_models_are_one_line(make, fragment: str, clip: Path, tmp_path: Path) -> None:
    model = make(tmp_path)
    assert_one_line_error(vcam("start", "--model", model, "--source", clip, "--sink", "null"), fragment)


@pytest.mark.parametrize(
    "extra, fragments",
    [
        (["--source", "0"], ["no camera at 0", "video file as the source"]),
        (["--source", "/dev/video5"], ["no camera at /dev/video5"]),
        (["--source", "missing.mp4"], ["video file missing.mp4 not found"]),
        (["--strength", "3"], ["strength must be between 0 and 1"]),
        (["--provider", "quantum"], ["unknown provider 'quantum'", "cpu", "[--provider]"]),
        (["--width", "abc"], ["Invalid value for '--width'"]),
        (["--sink", "speakers"], ["unknown sink 'speakers'"]),
        (["--sink", "virtualcam", "--device", "/dev/video99"], ["/dev/video99 does not exist"]),
        (["--log-level", "loud"], ["unknown log_level 'loud'", "[--log-level]"]),
    ],
)
def test_bad_input_is_one_line(extra: list[str], fragments: list[str], clip: Path, identity_model: Path) -> None:
    if "/dev/video5" in extra and os.path.exists("/dev/video5"):
        pytest.skip("this machine has a /dev/video5")
    args = ["start", "--model", identity_model, "--source", clip, "--sink", "null", *extra]
    assert_one_line_error(vcam(*args), *fragments)


def test_undecodable_video_is_one_line(tmp_path: Path, identity_model: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 4096)
    assert_one_line_error(vcam("start", "--model", identity_model, "--source", junk), "cannot be decoded")


def test_missing_sharpcam_device_is_one_line_with_the_fix(clip: Path, identity_model: Path) -> None:
    if sys.platform != "linux" or find_device() is not None:
        pytest.skip("needs Linux without a SharpCam device")
    result = vcam("start", "--model", identity_model, "--source", clip)
    assert_one_line_error(result, "sudo modprobe v4l2loopback devices=1 card_label=SharpCam exclusive_caps=1")


@pytest.mark.slow
def test_bench_json_parses(identity_model: Path) -> None:
    result = vcam("bench", "--model", identity_model, "--frames", 5, "--sizes", "64x48", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [r["method"] for r in report["results"]] == ["model", "unsharp", "cas"]
    assert report["results"][0]["frames"] == 5
    assert set(report["results"][0]["stages"]["e2e"]) == {"p50", "p95", "p99"}
    assert report["ratios_e2e_p50"]["64x48"]["model/cas"] > 0
    assert report["machine"]["cpu"]["isa"] and report["machine"]["cpu"]["model"]


@pytest.mark.slow
def test_bench_table_and_out_file(identity_model: Path, clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.md"
    result = vcam("bench", "--model", identity_model, "--frames", 3, "--sizes", "32x24", "--source", clip, "--out", out)
    assert result.exit_code == 0, result.output
    assert "| 32x24 | cas |" in result.stdout
    assert result.stdout.startswith("CPU: ")  # a speed table names its machine first
    assert out.read_text().strip() == result.stdout.strip()


def test_bench_bad_size_is_one_line(identity_model: Path) -> None:
    assert_one_line_error(vcam("bench", "--model", identity_model, "--sizes", "720"), "bad size '720'")


def test_devices_lists_what_exists() -> None:
    result = vcam("devices")
    assert result.exit_code == 0, result.output
    assert "cameras (--source):" in result.stdout


def test_doctor_prints_a_fix_for_each_failure(identity_model: Path) -> None:
    result = vcam("doctor", "--model", identity_model, "--source", "9")
    lines = result.stdout.strip().splitlines()
    assert result.exit_code == 1
    assert any(line.startswith("✓ model loads") for line in lines)
    assert any(line.startswith("✗ camera 9") and "video file as the source" in line for line in lines)


def test_doctor_all_green_on_a_complete_setup(fake_sysfs, identity_model: Path, clip: Path) -> None:
    if sys.platform != "linux":
        pytest.skip("the v4l2loopback checks are Linux-only")
    fake_sysfs.add(10, "SharpCam")
    fake_sysfs.load_module("Y")
    checks = run_checks(identity_model, str(clip), fake_sysfs.root)
    assert [c.name for c in checks if not c.ok] == []
    names = " / ".join(c.name for c in checks)
    for part in (
        "v4l2loopback module loaded",
        "SharpCam device present",
        "exclusive_caps=1",
        "writable",
        "model loads",
    ):
        assert part in names


def run_vcam(*args: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "vcam", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.slow
def test_python_m_vcam_start_runs_and_exits_zero(clip: Path, identity_model: Path) -> None:
    proc = run_vcam("start", "--model", identity_model, "--source", clip, "--sink", "null", "--frames", 5)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped after 5 frames" in err


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_a_running_start_cleanly(sig: int, clip: Path, identity_model: Path) -> None:
    proc = run_vcam("start", "--model", identity_model, "--source", clip, "--sink", "null")
    for line in proc.stderr:  # the pipeline is running once it logged its wiring
        if "-> null" in line:
            break
    else:
        pytest.fail(f"vcam start did not come up (rc {proc.wait()})")
    sent = time.monotonic()
    proc.send_signal(sig)
    assert proc.wait(timeout=10) == 0
    stopped_after = time.monotonic() - sent
    assert stopped_after < 3.0  # 1 s target; slack for this loaded 2-core machine
    assert "Traceback" not in proc.stderr.read()


@pytest.mark.slow
def test_start_without_a_model_runs_the_tier_chosen_for_this_cpu(clip: Path) -> None:
    proc = run_vcam("start", "--source", clip, "--sink", "null", "--frames", 5)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    chosen = next(line for line in err.splitlines() if "model tier " in line)
    assert any(f"model tier {tier}: " in chosen for tier in ("fast", "default", "hq"))
    assert "fps" in chosen and "budget" in chosen  # says why
    assert "stopped after 5 frames" in err


def test_start_with_a_tier_and_a_model_is_one_line(clip: Path, identity_model: Path) -> None:
    assert_one_line_error(
        vcam("start", "--model", identity_model, "--tier", "fast", "--source", clip),
        "model and tier both choose the model",
    )
    assert_one_line_error(vcam("start", "--tier", "huge", "--source", clip), "unknown tier 'huge'")


def test_doctor_reports_the_tier_it_would_run(clip: Path) -> None:
    checks = run_checks(None, str(clip))
    tier = next(c for c in checks if c.name.startswith("model tier"))
    assert tier.ok and tier.detail.split()[0] in ("fast", "default", "hq")
    assert next(c for c in checks if c.name.startswith("model loads")).ok


@pytest.mark.parametrize(
    "options, fragment",
    [
        (["--fps", "nan"], "fps must be a positive number"),
        (["--fps", "inf"], "fps must be a positive number"),
        (["--fps", "0"], "fps must be a positive number"),
        (["--width", "100000", "--height", "100000"], "more than 8K"),
        (["--width", "1"], "at least 2"),
        (["--frames", "-1"], "frames must be at least 1 (got -1) [--frames]"),
        (["--strength", "abc"], "strength"),
    ],
)
def test_start_refuses_bad_options_in_one_line_and_writes_nothing(
    options: list[str], fragment: str, clip: Path, identity_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "recording.avi"
    result = vcam("start", "--model", identity_model, "--source", clip, "--sink", out, *options)
    assert_one_line_error(result, fragment)
    assert not out.exists()


def test_bench_checks_its_out_path_before_measuring(identity_model: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "bench.md"
    assert_one_line_error(vcam("bench", "--model", identity_model, "--out", missing), "does not exist")
    assert not missing.parent.exists()  # not created behind the user's back
    assert_one_line_error(vcam("bench", "--model", identity_model, "--out", tmp_path), "is a folder")


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.1, 0.3, 0.6])
def test_ctrl_c_at_any_moment_of_startup_prints_no_traceback(delay: float, clip: Path, identity_model: Path) -> None:
    proc = run_vcam("start", "--model", identity_model, "--source", clip, "--sink", "null")
    time.sleep(delay)  # while Python imports typer, numpy, OpenCV, ONNX Runtime ...
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    finally:  # a hung vcam would hold the control socket and fail every later test that starts one
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # CPython's own start-up (importing `site`, or runpy finding the package: frozen frames only),
    # before vcam's `main` could install its handler; a loaded machine stretches it to 0.1 s.
    frames = re.findall(r'File "([^"]+)"', err)
    if "init_import_site" in err or (frames and all(f.startswith("<frozen") for f in frames)):
        pytest.skip("the signal came while the interpreter was still starting up (a loaded machine)")
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    # 130: vcam's own handler; -SIGINT: the signal came before the interpreter had set up any
    # (a loaded machine); 0: it came after the run ended
    assert proc.returncode in (0, 130, -signal.SIGINT), err
