"""`vcam bench`: latency of the real pipeline, per stage, against classic sharpeners.

Every measurement runs the real `Pipeline` (reader thread with its newest-frame slot, OnnxSharpener,
TemporalFilter, a NullSink) on frames rendered in memory (a synthetic scene, or a video decoded
up front) and handed out at the target fps like a camera would, so the numbers are the
pipeline's, not a video decoder's (a real camera's MJPG decoding adds CPU on top). Unsharp mask
and CAS are put in the model's place for the same frames in the same run, which keeps the
ratios fair on a machine whose load changes over time; like the student, they sharpen the Y
plane of the pipeline's I420 frames. CPU utilisation is process CPU time over
wall time (100 % = one core busy).
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from vcam.baselines import BaselineSharpener, cas, unsharp_mask
from vcam.camera import MAX_PIXELS, CameraSource, check_request
from vcam.cpu import cpu_info
from vcam.errors import VcamError
from vcam.options import DEFAULTS
from vcam.pipeline import STAGES, Pipeline
from vcam.sharpener import OnnxSharpener, Sharpener
from vcam.sinks import NullSink
from vcam.temporal import TemporalFilter

NAMED_SIZES = {"480p": (854, 480), "720p": (1280, 720), "1080p": (1920, 1080)}
WARMUP_FRAMES = 5
LOOP_FRAMES = 48  # frames of a source file kept in memory; the bench loops over them


def parse_sizes(text: str) -> list[tuple[str, int, int]]:
    """'480p,720p,64x48' -> [(label, width, height), ...]."""
    sizes = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        if item in NAMED_SIZES:
            sizes.append((item, *NAMED_SIZES[item]))
            continue
        try:
            w, h = (int(v) for v in item.lower().split("x"))
        except ValueError:
            w = h = 0
        if w < 2 or h < 2:
            raise VcamError(f"bad size {item!r} in sizes — use 480p, 720p, 1080p or WxH like 640x360")
        if w * h > MAX_PIXELS:
            raise VcamError(f"size {item!r} in sizes is larger than 8K — use 480p, 720p, 1080p or WxH up to 7680x4320")
        sizes.append((item, w, h))
    if not sizes:
        raise VcamError("sizes is empty — use e.g. 480p,720p,1080p")
    return sizes


def synthetic_scene(width: int, height: int) -> Callable[[int], np.ndarray]:
    """Frame i of a textured scene panning slowly with a bright block crossing it: detail for
    the sharpener, moving and static parts for the temporal filter, no file needed."""
    rng = np.random.default_rng(0)
    texture = cv2.resize(
        rng.integers(0, 256, (height // 8 + 8, width // 8 + 8, 3), np.uint8),
        (width + 64, height + 64),
        interpolation=cv2.INTER_CUBIC,
    )
    block = max(2, width // 6)

    def frame_at(i: int) -> np.ndarray:
        pan = abs(i % 64 - 32)  # back and forth: no jump that would look like a scene cut
        frame = texture[32 : 32 + height, pan : pan + width].copy()
        x = (i * 4) % max(1, width - block)
        cv2.rectangle(frame, (x, height // 3), (x + block, 2 * height // 3), (230, 230, 230), -1)
        return frame

    return frame_at


def recorded_scene(recording: list[np.ndarray], width: int, height: int) -> Callable[[int], np.ndarray]:
    """Frame i of a looping recording, scaled to width x height."""
    return lambda i: cv2.resize(recording[i % len(recording)], (width, height), interpolation=cv2.INTER_AREA)


def file_frames(path: str, count: int = LOOP_FRAMES) -> list[np.ndarray]:
    """The first `count` frames of a video at its own size, decoded before anything is timed."""
    if not Path(path).is_file():
        raise VcamError(f"source {path} not found — use 'synthetic' or an existing video file")
    capture = cv2.VideoCapture(path)
    frames: list[np.ndarray] = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    if not frames:
        raise VcamError(f"source {path} cannot be decoded — use 'synthetic' or a video OpenCV can read")
    return frames


class _SceneCapture:
    """A camera stand-in for CameraSource: delivers a fresh frame of a scene on every read."""

    def __init__(self, frame_at: Callable[[int], np.ndarray]) -> None:
        self._frame_at = frame_at
        self._i = 0

    def read(self) -> tuple[bool, np.ndarray]:
        self._i += 1
        return True, self._frame_at(self._i)

    def set(self, prop: int, value: float) -> bool:
        return False

    def release(self) -> None:
        pass


@dataclass
class Result:
    """One (size, method) measurement; stage values are {"p50","p95","p99"} in ms."""

    size: str
    width: int
    height: int
    method: str
    frames: int
    stages: dict[str, dict[str, float]]
    fps: float
    max_fps: float
    cpu_percent: float
    dropped: int
    non_inference_p50_ms: float = field(init=False)

    def __post_init__(self) -> None:
        self.non_inference_p50_ms = sum(self.stages[s]["p50"] for s in STAGES if s not in ("infer", "e2e"))


def _measure(
    scene: Callable[[int], np.ndarray], sharpen: Sharpener, fps: float, count: int, ema: float
) -> tuple[dict, float, float, float, int]:
    source = CameraSource(_SceneCapture(scene), "bench scene", fps=fps, paced=True)
    temporal = TemporalFilter(ema)
    with Pipeline(source, sharpen, temporal, NullSink(), history=count, status_interval=None) as pipeline:
        pipeline.run(max_frames=WARMUP_FRAMES)
        pipeline.times.clear()
        dropped0 = source.frames_dropped
        wall0, cpu0 = time.perf_counter(), time.process_time()
        pipeline.run(max_frames=count)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        stages = pipeline.times.percentiles()
    busy_ms = sum(stages[s]["p50"] for s in STAGES if s != "e2e")  # what one frame occupies
    return (stages, count / wall, 1e3 / max(busy_ms, 1e-6), 100.0 * cpu / wall, source.frames_dropped - dropped0)


def run_bench(
    model: str | Path,
    sizes: list[tuple[str, int, int]],
    frames: int = 100,
    source: str = "synthetic",
    fps: float = 30.0,
    provider: str | None = None,
    ema: float = DEFAULTS.ema,
) -> dict:
    """Measure the model and both baselines at every size; returns a JSON-ready report."""
    if frames < 1:
        raise VcamError(f"frames must be at least 1 (got {frames})")
    check_request(None, None, fps)
    sharpener = OnnxSharpener(model, provider)
    methods: dict[str, Sharpener] = {
        "model": sharpener,
        "unsharp": BaselineSharpener(unsharp_mask),
        "cas": BaselineSharpener(cas),
    }
    recording = None if source == "synthetic" else file_frames(source)
    results, ratios = [], {}
    for label, w, h in sizes:
        scene = synthetic_scene(w, h) if recording is None else recorded_scene(recording, w, h)
        e2e = {}
        for method, sharpen in methods.items():
            stages, out_fps, max_fps, cpu, dropped = _measure(scene, sharpen, fps, frames, ema)
            results.append(Result(label, w, h, method, frames, stages, out_fps, max_fps, cpu, dropped))
            e2e[method] = stages["e2e"]["p50"]
        ratios[label] = {"model/unsharp": e2e["model"] / e2e["unsharp"], "model/cas": e2e["model"] / e2e["cas"]}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None  # other jobs skew timings
    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": {
            "cpu": cpu_info().as_dict(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_1m_at_end": load,
            "onnxruntime": ort.__version__,
            "opencv": cv2.__version__,
        },
        "model": {
            "path": str(model),
            "providers": sharpener.providers,
            **{k: v for k, v in sharpener.metadata.items() if k.startswith("vcam.")},
        },
        "source": source,
        "target_fps": fps,
        "frames": frames,
        "warmup_frames": WARMUP_FRAMES,
        "results": [asdict(r) for r in results],
        "ratios_e2e_p50": ratios,
    }


def format_report(report: dict) -> str:
    """A Markdown table a human reads in a terminal and `benchmarks/` keeps."""
    model, machine = report["model"], report["machine"]
    load = machine["load_average_1m_at_end"]
    cpu = machine["cpu"]
    lines = [
        f"CPU: {cpu['name']}.",
        "",
        f"vcam bench, {report['date']}: model {model.get('vcam.name', Path(model['path']).name)} "
        f"({model['path']}, {', '.join(model['providers'])}); source {report['source']}, "
        f"{report['frames']} frames per row after {report['warmup_frames']} warm-up, "
        f"target {report['target_fps']:g} fps; {machine['cpus']} CPUs"
        + (f" (load average {load:.1f})" if load is not None else "")
        + f", onnxruntime {machine['onnxruntime']}",
        "",
        "ms per frame, p50 / p95 / p99; non-inf = capture+pre+post+temporal+publish (p50); "
        "CPU = process CPU time / wall time (100% = one core)",
        "",
        "| size | method | " + " | ".join(STAGES) + " | non-inf | fps | max fps | CPU | dropped |",
        "|---" * (len(STAGES) + 7) + "|",
    ]
    for r in report["results"]:
        cells = [" / ".join(f"{r['stages'][s][q]:.2f}" for q in ("p50", "p95", "p99")) for s in STAGES]
        lines.append(
            f"| {r['size']} | {r['method']} | "
            + " | ".join(cells)
            + f" | {r['non_inference_p50_ms']:.2f} | {r['fps']:.1f} | {r['max_fps']:.0f}"
            f" | {r['cpu_percent']:.0f}% | {r['dropped']} |"
        )
    lines += ["", "| size | e2e p50 model / unsharp | e2e p50 model / CAS |", "|---|---|---|"]
    for size, ratio in report["ratios_e2e_p50"].items():
        lines.append(f"| {size} | {ratio['model/unsharp']:.2f}x | {ratio['model/cas']:.2f}x |")
    return "\n".join(lines)


def check_report_path(path: str | Path) -> None:
    """Before the bench runs: a report goes into an existing folder, never over a folder."""
    path = Path(path)
    if path.is_dir():
        raise VcamError(f"out {path} is a folder — name a file in it, e.g. {path / 'bench.md'}")
    if not path.parent.is_dir():
        raise VcamError(f"out {path}: the folder {path.parent} does not exist — create it or name another")


def write_report(report: dict, path: str | Path) -> Path:
    """`.json` gets the machine-readable report, anything else the Markdown table."""
    path = Path(path)
    text = json.dumps(report, indent=2) if path.suffix == ".json" else format_report(report)
    path.write_text(text + "\n")
    return path
