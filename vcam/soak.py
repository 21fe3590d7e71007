"""Soak: the whole live path for many frames, to show it does not grow or slow down over a day.

`open_pipeline` itself runs — a looping video file as the camera, the supervised source, the
chosen model, the temporal filter and the virtual-camera sink — with pyvirtualcam writing to an
in-memory device that discards frames (the one stand-in: a soak must not need v4l2loopback).
Memory is the process's resident set after warm-up and at the end; latency is compared between
the first and the last `window` frames.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyvirtualcam

from vcam.cpu import cpu_info
from vcam.options import StartOptions
from vcam.pipeline import StageTimes, open_pipeline

BACKEND = "sharpcam-soak"


class DiscardingCamera:
    """A pyvirtualcam backend that takes I420 frames of the opened size and drops them."""

    def __init__(self, *, width: int, height: int, fps: float, fourcc: int, device: str | None, **_: Any) -> None:
        self._device, self._size, self._fourcc = device or "soak", height * 3 // 2 * width, fourcc
        self.frames = 0

    def send(self, frame: np.ndarray) -> None:
        if frame.size != self._size:
            raise RuntimeError(f"frame of {frame.size} bytes, expected {self._size}")
        self.frames += 1

    def close(self) -> None:
        pass

    def device(self) -> str:
        return self._device

    def native_fourcc(self) -> int:
        return self._fourcc


@dataclass
class SoakResult:
    frames: int
    width: int
    height: int
    model: str
    cpu: str
    rss_after_warmup_mb: float
    rss_end_mb: float
    rss_growth_mb: float
    e2e_p95_first_ms: float
    e2e_p95_last_ms: float
    p95_change: float  # last / first - 1
    dropped: int
    wall_s: float
    cpu_percent: float


def run_soak(clip: Path, frames: int = 10_000, window: int = 1_000, warmup: int = 300, **options: Any) -> SoakResult:
    """`frames` frames of `clip` (looped) through the live pipeline built from StartOptions(**options)."""
    pyvirtualcam.register_backend(BACKEND, DiscardingCamera)
    process = psutil.Process()
    with tempfile.TemporaryDirectory() as folder:
        device = Path(folder) / "video-soak"
        device.touch()  # the sink checks the node stays the same one
        start = StartOptions(source=str(clip), sink="virtualcam", device=str(device), **options)
        with open_pipeline(start, status_interval=None, backend=BACKEND) as pipeline:
            pipeline.run(max_frames=warmup)
            rss0 = process.memory_info().rss
            dropped0 = pipeline.source.frames_dropped
            wall0, cpu0 = time.perf_counter(), time.process_time()
            pipeline.times = StageTimes(window)
            pipeline.run(max_frames=window)
            first = pipeline.times.percentiles((95,))["e2e"]["p95"]
            pipeline.run(max_frames=frames - 2 * window)
            pipeline.times = StageTimes(window)
            pipeline.run(max_frames=window)
            last = pipeline.times.percentiles((95,))["e2e"]["p95"]
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            rss1 = process.memory_info().rss
            dropped = pipeline.source.frames_dropped - dropped0
            model = getattr(pipeline.sharpener, "path", Path("?")).name
            width, height = pipeline.source.size
    mb = 1 << 20
    return SoakResult(
        frames=frames,
        width=width,
        height=height,
        model=model,
        cpu=cpu_info().describe(),
        rss_after_warmup_mb=round(rss0 / mb, 1),
        rss_end_mb=round(rss1 / mb, 1),
        rss_growth_mb=round((rss1 - rss0) / mb, 2),
        e2e_p95_first_ms=round(first, 2),
        e2e_p95_last_ms=round(last, 2),
        p95_change=round(last / first - 1, 3),
        dropped=dropped,
        wall_s=round(wall, 1),
        cpu_percent=round(100 * cpu / wall, 1),
    )
