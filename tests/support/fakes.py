"""Faithful stand-ins for what this machine lacks: a v4l2loopback device (`MemoryBackend`, a
pyvirtualcam backend) and the sysfs tree the driver and cameras create (`FakeSysfs`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyvirtualcam
from pyvirtualcam.util import encode_fourcc


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
