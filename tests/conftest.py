"""Fixtures of both packages' tests: small clips written with OpenCV, tiny ONNX models, and the
stand-ins of tests/support/fakes.py. Helpers the tests import live in tests/support."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import pyvirtualcam
from support.clips import STEP
from support.fakes import FakeSysfs, MemoryBackend
from support.onnx_models import make_identity_model, make_sharpen_model


def pytest_configure(config: pytest.Config) -> None:
    """Tests press Ctrl+C on the processes they start. A suite started as a background job of a
    non-interactive shell (`cmd &` in a script) inherits SIGINT ignored, and its children would
    rightly keep ignoring it; with a handler here they start with the default instead."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def make_clip(tmp_path: Path) -> Callable[..., Path]:
    """Writes a flat-grey MJPG clip; frame i has grey level i * STEP."""

    def make(frames: int = 6, fps: float = 50.0, size: tuple[int, int] = (64, 48), name: str = "clip.avi") -> Path:
        path = tmp_path / name
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, size)
        for i in range(frames):
            writer.write(np.full((size[1], size[0], 3), i * STEP, np.uint8))
        writer.release()
        return path

    return make


@pytest.fixture
def clip(make_clip: Callable[..., Path]) -> Path:
    return make_clip()


@pytest.fixture
def textured_clip(tmp_path: Path) -> Path:
    """A clip with detail (random texture) for end-to-end runs through a real model."""
    path = tmp_path / "texture.avi"
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 50.0, (96, 64))
    for _ in range(8):
        writer.write(rng.integers(0, 256, (64, 96, 3), np.uint8))
    writer.release()
    return path


@pytest.fixture
def sharpen_model(tmp_path: Path) -> Path:
    return make_sharpen_model(tmp_path / "sharpen.onnx", size_multiple=4)


@pytest.fixture
def identity_model(tmp_path: Path) -> Path:
    return make_identity_model(tmp_path / "identity.onnx")


@pytest.fixture
def memory_backend() -> type[MemoryBackend]:
    pyvirtualcam.register_backend("memory", MemoryBackend)
    MemoryBackend.frames.clear()
    MemoryBackend.in_use.clear()
    return MemoryBackend


@pytest.fixture
def fake_sysfs(tmp_path: Path) -> FakeSysfs:
    return FakeSysfs(tmp_path / "root")


@pytest.fixture(autouse=True)
def _private_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests' own cache (tier calibration), config and runtime folders: never the user's
    ~/.cache/sharpcam, ~/.config/sharpcam or the control socket of a SharpCam they run."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("XDG_CACHE_HOME", str(base / "xdg-cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(base / "xdg-config"))
    runtime = base / "xdg-runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
