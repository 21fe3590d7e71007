"""Shared fixtures: small video clips written with OpenCV, tiny ONNX models, and the two fakes
for what this machine lacks — a v4l2loopback device (`MemoryBackend`, registered with
pyvirtualcam) and its sysfs tree (`FakeSysfs`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import pyvirtualcam
from onnx_models import make_identity_model, make_sharpen_model
from pyvirtualcam.util import encode_fourcc

STEP = 30  # grey level between consecutive clip frames: survives MJPG, identifies each frame


def frame_index(frame: np.ndarray) -> int:
    """Which clip frame this is (clip frame i is a flat grey of i * STEP)."""
    return int(round(float(frame.mean()) / STEP))


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


class MemoryBackend:
    """A pyvirtualcam backend that keeps frames in memory, standing in for v4l2loopback.

    It refuses what the real device refuses, with the native backend's messages: a missing
    device node, a device already in use (exclusive writer) and any format other than I420
    (the device's native format, the one SharpCam sends; frames are kept as (3H/2) x W).
    """

    frames: dict[str, list[np.ndarray]] = {}
    in_use: set[str] = set()

    def __init__(self, *, width: int, height: int, fps: float, fourcc: int, device: str | None, **kw: object) -> None:
        if device is None or not os.path.exists(device):
            raise RuntimeError(f"Device {device} does not exist.")
        if device in self.in_use:
            raise RuntimeError(f"Virtual camera device {device} could not be configured: Device or resource busy")
        if fourcc != encode_fourcc(pyvirtualcam.PixelFormat.I420.value):
            raise RuntimeError("Unsupported image format.")
        self._device, self._shape, self._fourcc = device, (height * 3 // 2, width), fourcc
        self.in_use.add(device)
        self.frames[device] = []

    def send(self, frame: np.ndarray) -> None:
        self.frames[self._device].append(frame.reshape(self._shape).copy())

    def close(self) -> None:
        self.in_use.discard(self._device)

    def device(self) -> str:
        return self._device

    def native_fourcc(self) -> int:
        return self._fourcc


@pytest.fixture
def memory_backend() -> type[MemoryBackend]:
    pyvirtualcam.register_backend("memory", MemoryBackend)
    MemoryBackend.frames.clear()
    MemoryBackend.in_use.clear()
    return MemoryBackend


class FakeSysfs:
    """A root directory with the sysfs and /dev entries v4l2loopback and cameras create.

    Loopback devices live under sys/devices/virtual (as in the kernel), cameras under a bus;
    sys/class/video4linux/videoN links to either, and dev/videoN is a plain file for the node.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "sys/class/video4linux").mkdir(parents=True)
        (root / "dev").mkdir()

    def add(self, index: int, label: str, loopback: bool = True) -> str:
        parent = "sys/devices/virtual" if loopback else "sys/devices/pci0000:00/usb1/1-1"
        entry = self.root / parent / "video4linux" / f"video{index}"
        entry.mkdir(parents=True)
        (entry / "name").write_text(label + "\n")
        (self.root / f"sys/class/video4linux/video{index}").symlink_to(entry)
        (self.root / f"dev/video{index}").touch()
        return str(self.root / f"dev/video{index}")

    def load_module(self, exclusive_caps: str, video_nr: str = "-1,-1,-1,-1") -> None:
        params = self.root / "sys/module/v4l2loopback/parameters"
        params.mkdir(parents=True)
        (params / "exclusive_caps").write_text(exclusive_caps + "\n")
        (params / "video_nr").write_text(video_nr + "\n")


@pytest.fixture
def fake_sysfs(tmp_path: Path) -> FakeSysfs:
    return FakeSysfs(tmp_path / "root")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tier calibration cache of the tests' own, not the user's (~/.cache/sharpcam)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
