"""Model tiers: the largest shipped student that keeps up with the camera on this CPU.

The same model costs several times more on a laptop without VNNI than on a server with it, so
no single default fits every machine. With no model named, `vcam start` times each shipped tier on
a frame of the requested size (once per CPU model, model file and size; the result is cached in
the user's cache folder), takes the largest whose inference fits the frame budget, and steps
down a tier while running if frames keep dropping.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import logging
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vcam.cpu import cpu_info
from vcam.errors import ModelError, VcamError
from vcam.frames import to_i420
from vcam.paths import user_cache_dir

log = logging.getLogger(__name__)

# Lightest first. The files ship in the wheel (package vcam.weights).
TIERS = {"fast": "student-fast.onnx", "default": "student.onnx", "hq": "student-hq.onnx"}
# Shares of the frame period a tier may take: inference wall time (the other stages need
# ~3 ms at 720p and the 95th percentile runs well above the median), and CPU time summed over
# ONNX Runtime's threads, their spin after each frame included (a call must leave the laptop
# room for the video app itself).
WALL_BUDGET = 0.40
CPU_BUDGET = 0.55
CALIBRATION_RUNS = 12
STEP_DOWN_SECONDS = 5  # consecutive seconds with dropped frames before a lighter tier


def tier_path(tier: str) -> Path:
    """The installed file of a tier."""
    if tier not in TIERS:
        raise VcamError(f"unknown tier {tier!r} — use one of {', '.join(TIERS)}")
    try:
        path = Path(str(importlib.resources.files("vcam.weights") / TIERS[tier]))
    except ModuleNotFoundError:  # vcam imported from a source tree that was never installed
        raise ModelError(
            "no models are installed (this vcam runs from a source tree; "
            "`pip install .` installs them); name an ONNX "
            "model"
        ) from None
    if not path.is_file():
        raise ModelError(
            f"the {tier} tier is not installed ({path} is missing); reinstall SharpCam or name a model file"
        )
    return path


def check_choice(model: object, tier: str | None) -> None:
    """model and tier both pick the model; an unknown tier fails before anything opens."""
    if model is not None and tier is not None:
        raise VcamError("model and tier both choose the model — give one of them")
    if tier is not None:
        tier_path(tier)


def cache_path() -> Path:
    return user_cache_dir() / "calibration.json"


@dataclass(frozen=True)
class Cost:
    """One tier's measured cost per frame at one size on this machine."""

    wall_ms: float  # median inference time, the sharpener's whole call
    cpu_ms: float  # process CPU time per call (all threads)

    def fits(self, fps: float) -> bool:
        period = 1000.0 / fps
        return self.wall_ms <= WALL_BUDGET * period and self.cpu_ms <= CPU_BUDGET * period


def measure(
    path: Path, width: int, height: int, fps: float, provider: str | None = None, runs: int = CALIBRATION_RUNS
) -> Cost:
    """Time the model on a textured I420 frame as the pipeline runs it: one call per frame
    period. ONNX Runtime's workers spin for a while after each call before they sleep; calls
    back to back hide that CPU time (a third of the fast tier's at 720p), paced calls count it."""
    from vcam.sharpener import OnnxSharpener  # the tier table itself needs no ONNX Runtime

    sharpener = OnnxSharpener(path, provider)
    rng = np.random.default_rng(0)
    frame = to_i420(rng.integers(0, 256, (height, width, 3), np.uint8))
    walls = []
    with sharpener.calling_thread():
        sharpener(frame)  # first call allocates
        cpu0, due = time.process_time(), time.perf_counter()
        for _ in range(runs):
            t = time.perf_counter()
            sharpener(frame)
            walls.append((time.perf_counter() - t) * 1e3)
            due += 1.0 / fps
            time.sleep(max(0.0, due - time.perf_counter()))
        cpu = (time.process_time() - cpu0) * 1e3 / runs
    return Cost(statistics.median(walls), cpu)


def _key(path: Path, width: int, height: int, fps: float, provider: str | None) -> str:
    import onnxruntime as ort

    cpu = cpu_info()
    digest = hashlib.sha1(path.read_bytes()).hexdigest()[:16]
    return (
        f"{cpu.describe()} | onnxruntime {ort.__version__} | {provider or 'auto'} | {digest} | {width}x{height}@{fps:g}"
    )


def cost(
    path: Path, width: int, height: int, fps: float, provider: str | None = None, cache: Path | None = None
) -> Cost:
    """The model's cost at this size and rate on this machine, measured once and cached."""
    cache = cache or cache_path()
    key = _key(path, width, height, fps, provider)
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if key in known:
        return Cost(known[key]["wall_ms"], known[key]["cpu_ms"])
    measured = measure(path, width, height, fps, provider)
    known[key] = {"wall_ms": measured.wall_ms, "cpu_ms": measured.cpu_ms, "date": time.strftime("%Y-%m-%d")}
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
        tmp.write_text(json.dumps(known, indent=1) + "\n")
        tmp.replace(cache)
    except OSError as exc:  # a read-only home still runs, it only calibrates every time
        log.warning("could not cache the calibration in %s (%s)", cache, exc.strerror)
    return measured


@dataclass(frozen=True)
class Choice:
    tier: str
    path: Path
    reason: str


def choose(
    width: int, height: int, fps: float, tier: str | None = None, provider: str | None = None, cache: Path | None = None
) -> Choice:
    """The tier to run: `tier` when given, else the largest that fits the frame budget."""
    if tier is not None:
        return Choice(tier, tier_path(tier), "chosen by name")
    cpu = cpu_info()
    budget = f"{WALL_BUDGET * 1000 / fps:.1f} ms and {CPU_BUDGET * 100:.0f} % of a core"
    names = list(TIERS)
    for name in reversed(names):
        c = cost(tier_path(name), width, height, fps, provider, cache)
        if c.fits(fps) or name == names[0]:
            verdict = "fits" if c.fits(fps) else "is the lightest; it does not fit"
            return Choice(
                name,
                tier_path(name),
                f"{c.wall_ms:.1f} ms and {c.cpu_ms * fps / 10:.0f} % of a core per "
                f"{width}x{height} frame at {fps:g} fps {verdict} the budget of "
                f"{budget} on {cpu.model} ({cpu.isa})",
            )
    raise AssertionError("unreachable: the lightest tier is always chosen")


def lighter(tier: str) -> str | None:
    names = list(TIERS)
    i = names.index(tier)
    return names[i - 1] if i > 0 else None


class StepDown:
    """Watches the camera's dropped-frame count; after STEP_DOWN_SECONDS whole seconds in a
    row that each dropped frames, says which lighter tier to switch to."""

    def __init__(self, tier: str, seconds: int = STEP_DOWN_SECONDS) -> None:
        self.tier = tier
        self._seconds = seconds
        self._window: tuple[float, int] | None = None  # (start, dropped count at start)
        self._streak = 0

    def update(self, now: float, dropped: int) -> str | None:
        """Feed the time and the running drop count; returns the tier to switch to, if any."""
        if self._window is None:
            self._window = (now, dropped)
            return None
        start, dropped0 = self._window
        if now - start < 1.0:
            return None
        self._streak = self._streak + 1 if dropped > dropped0 else 0
        self._window = (now, dropped)
        target = lighter(self.tier)
        if self._streak >= self._seconds and target is not None:
            self.tier, self._streak = target, 0
            return target
        return None
