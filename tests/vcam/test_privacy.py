"""What vcam leaves behind: no telemetry, no file it was not asked to replace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vcam.cli import app


def _telemetry_files(home: Path, **env: str) -> list[Path]:
    """Run a real ONNX Runtime session in a fresh process with `home` as its home folder."""
    environ = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    environ |= {"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")} | env
    code = "import vcam.sharpener, sys; vcam.sharpener.OnnxSharpener(sys.argv[1])"
    model = Path(__file__).resolve().parents[2] / "weights" / "student-fast.onnx"
    subprocess.run([sys.executable, "-c", code, str(model)], env=environ, check=True, timeout=60)
    return list(home.rglob("onnxruntime.db"))


@pytest.mark.slow
def test_onnx_runtime_writes_no_telemetry_unless_asked(tmp_path: Path) -> None:
    opted_in = _telemetry_files(tmp_path / "in", ORT_DISABLE_TELEMETRY="0")
    if not opted_in:
        pytest.skip("this onnxruntime writes no telemetry database on this platform")
    assert _telemetry_files(tmp_path / "default") == []


def test_a_recording_never_replaces_its_source_or_an_unnamed_file(clip: Path, identity_model: Path) -> None:
    runner = CliRunner()
    before = clip.read_bytes()
    same = runner.invoke(app, ["start", "--model", str(identity_model), "--source", str(clip), "--sink", str(clip)])
    assert same.exit_code == 2 and "is the source file" in same.stderr
    again = runner.invoke(
        app, ["start", "--model", str(identity_model), "--source", str(clip), "--sink", str(clip), "--overwrite"]
    )
    assert again.exit_code == 2  # not even with --overwrite
    assert clip.read_bytes() == before
    other = clip.with_name("kept.avi")
    other.write_bytes(b"the user's own file")
    args = ["start", "--model", str(identity_model), "--source", str(clip), "--sink", str(other), "--frames", "3"]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2 and "allow overwrite" in refused.stderr.strip().splitlines()[0]
    assert other.read_bytes() == b"the user's own file"
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0
    assert other.stat().st_size > 1000  # now a recording


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_a_killed_recording_is_still_playable(
    textured_clip: Path, identity_model: Path, tmp_path: Path, suffix: str
) -> None:
    import signal
    import time

    import cv2

    out = tmp_path / f"recording{suffix}"
    args = [
        "start",
        "--model",
        identity_model,
        "--source",
        textured_clip,
        "--sink",
        out,
        "--width",
        "320",
        "--height",
        "240",
    ]
    proc = subprocess.Popen([sys.executable, "-m", "vcam", *map(str, args)], stderr=subprocess.DEVNULL)
    # Several MP4 fragments (5 frames each) in, so the kill may cut the last one short, not the first.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and (not out.exists() or out.stat().st_size < 200_000):
        time.sleep(0.1)
    assert proc.poll() is None, "vcam start ended before it could be killed"
    proc.send_signal(signal.SIGKILL)  # no clean close: no index, no trailer written
    proc.wait(timeout=10)
    capture = cv2.VideoCapture(str(out))
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames >= 5
