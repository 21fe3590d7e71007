"""Soak: the whole live path for many frames, to show it does not grow or slow down over a day.

`open_pipeline` itself runs — a looping video file as the camera, the supervised source, the
chosen model, the temporal filter and the virtual-camera sink — with pyvirtualcam writing to an
in-memory device that discards frames (the one stand-in: a soak must not need v4l2loopback).
Memory is the process's resident set after warm-up and at the end; latency is compared between
the first and the last `window` frames, per stage, beside a fixed reference workload timed just
before each window: these 2-core VMs change speed over minutes, and the reference tells a host
that slowed down from a pipeline that did.
"""

from __future__ import annotations

import subprocess
import sys
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
    stages_p95_first_ms: dict[str, float]
    stages_p95_last_ms: dict[str, float]
    reference_first_ms: float  # the fixed workload before the first window ...
    reference_last_ms: float  # ... and before the last
    p95_change_for_host_speed: float  # p95_change with the reference's own change divided out
    dropped: int  # while the pipeline ran (not while the reference workload did)
    wall_s: float
    cpu_percent: float


REFERENCE = """
import time, numpy as np
from vcam.baselines import cas
plane = np.random.default_rng(0).integers(0, 256, (720, 1280), np.uint8)
times = []
for _ in range(40):
    t = time.perf_counter(); cas(plane); times.append((time.perf_counter() - t) * 1e3)
print(float(np.median(times)))
"""


def reference_ms() -> float:
    """Median time of a fixed CPU workload (CAS on a 720p plane): the host's speed right now. In
    a process of its own, so its allocations do not count in the soak's memory."""
    done = subprocess.run([sys.executable, "-c", REFERENCE], capture_output=True, text=True, check=True)
    return float(done.stdout)


def _while_counting(pipeline: Any, fn: Any) -> tuple[float, int]:
    """fn()'s value and the camera frames dropped meanwhile (nobody reads them then)."""
    before = pipeline.source.frames_dropped
    value = fn()
    return value, pipeline.source.frames_dropped - before


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
            ref_first, paused = _while_counting(pipeline, reference_ms)
            pipeline.times = StageTimes(window)
            pipeline.run(max_frames=window)
            first = {k: v["p95"] for k, v in pipeline.times.percentiles((95,)).items()}
            pipeline.run(max_frames=frames - 2 * window)
            ref_last, paused_too = _while_counting(pipeline, reference_ms)
            paused += paused_too
            pipeline.times = StageTimes(window)
            pipeline.run(max_frames=window)
            last = {k: v["p95"] for k, v in pipeline.times.percentiles((95,)).items()}
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            rss1 = process.memory_info().rss
            dropped = pipeline.source.frames_dropped - dropped0 - paused
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
        e2e_p95_first_ms=round(first["e2e"], 2),
        e2e_p95_last_ms=round(last["e2e"], 2),
        p95_change=round(last["e2e"] / first["e2e"] - 1, 3),
        stages_p95_first_ms={k: round(v, 2) for k, v in first.items()},
        stages_p95_last_ms={k: round(v, 2) for k, v in last.items()},
        reference_first_ms=round(ref_first, 2),
        reference_last_ms=round(ref_last, 2),
        p95_change_for_host_speed=round((last["e2e"] / first["e2e"]) / (ref_last / ref_first) - 1, 3),
        dropped=dropped,
        wall_s=round(wall, 1),
        cpu_percent=round(100 * cpu / wall, 1),
    )
