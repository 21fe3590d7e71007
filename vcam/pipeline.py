"""Pipeline: camera source -> sharpener -> temporal filter -> sink, with per-stage timings.

The loop runs on the caller's thread and polls its stop event between frames (reads time out
after 0.1 s), so a stop request ends it well within a second. The Pipeline owns its source and
sink: `close()` releases the camera and the device, so a second start right after works. Frames
are converted to I420 on arrival (vcam/frames.py) and stay I420 to the sink.

Timings, in ms per published frame, kept in a ring buffer for percentiles:
  capture  — hand-off: from "frame captured and pipeline free" to "pipeline has the frame",
             converted to I420;
  pre/infer/post — the sharpener's own split; temporal; publish — the sink's send;
  e2e      — from the frame's capture time to the end of publish (what a viewer sees as lag).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

import numpy as np

from vcam import tiers
from vcam.camera import Source, SourceEnded, check_request, open_source, reopen
from vcam.errors import VcamError
from vcam.frames import to_i420
from vcam.options import StartOptions
from vcam.sharpener import OnnxSharpener, Sharpener
from vcam.sinks import Sink, VirtualCamSink, open_sink
from vcam.supervised import SupervisedSource
from vcam.temporal import TemporalFilter

log = logging.getLogger(__name__)
T = TypeVar("T")

STAGES = ("capture", "pre", "infer", "post", "temporal", "publish", "e2e")
READ_TIMEOUT_S = 0.1


class StageTimes:
    """The last `capacity` frames' stage times (ms), one row per frame in STAGES order."""

    def __init__(self, capacity: int = 512) -> None:
        self._rows = np.zeros((capacity, len(STAGES)))
        self.count = 0

    def add(self, row: list[float]) -> None:
        self._rows[self.count % len(self._rows)] = row
        self.count += 1

    def clear(self) -> None:
        self.count = 0

    def percentiles(self, qs: tuple[int, ...] = (50, 95, 99), last: int | None = None) -> dict[str, dict[str, float]]:
        """{stage: {"p50": ms, ...}} over the kept frames, or the `last` n of them; zeros before
        the first frame."""
        n = min(self.count, len(self._rows), self.count if last is None else last)
        rows = self._rows[(self.count - 1 - np.arange(n)) % len(self._rows)]
        if not len(rows):
            rows = np.zeros((1, len(STAGES)))
        values = np.percentile(rows, qs, axis=0)
        return {stage: {f"p{q}": float(values[i, s]) for i, q in enumerate(qs)} for s, stage in enumerate(STAGES)}


# Called after every published frame with (time, frames dropped so far); returns a sharpener to
# continue with instead (a lighter model tier) or None.
Replace = Callable[[float, int], "Sharpener | None"]


class Pipeline:
    """Runs frames from `source` through `sharpener` and `temporal` into `sink`."""

    def __init__(
        self,
        source: Source,
        sharpener: Sharpener,
        temporal: Callable[[np.ndarray, np.ndarray], np.ndarray],
        sink: Sink,
        *,
        history: int = 512,
        status_interval: float | None = 5.0,
        replace: Replace | None = None,
    ) -> None:
        self.source = source
        self.sharpener = sharpener
        self.temporal = temporal
        self.sink = sink
        self.times = StageTimes(history)
        self.frames_out = 0
        self.bypass = False
        """True publishes the camera frames as they are (the before of a before/after)."""
        self.replace = replace
        """Called after every published frame: a lighter tier when frames drop (vcam/tiers.py)."""
        self.rates = Rates()
        self.started = time.monotonic()
        self._status_interval = status_interval
        self._sharpened_once = False
        self._failure_logged = False
        self._shape: tuple[int, ...] | None = None
        self._frame: np.ndarray | None = None  # the I420 conversion's buffer

    def run(self, stop: threading.Event | None = None, max_frames: int | None = None) -> int:
        """Process frames until `stop` is set, `max_frames` more were published or a file source
        ended; returns the number published by this call. Any stage failure is raised as a one-line VcamError."""
        stop = stop or threading.Event()
        published = 0
        status = _Status(self, self._status_interval)

        def running() -> bool:
            return not stop.is_set() and (max_frames is None or published < max_frames)

        while running():
            sharpener = self.sharpener
            with sharpener.calling_thread():
                while running() and self.sharpener is sharpener:
                    t_read = time.perf_counter()
                    try:
                        item = self.source.read(READ_TIMEOUT_S)
                    except SourceEnded:
                        return published
                    if item is None:
                        continue
                    t_out = self._process(*item, t_read)
                    self.rates.update(t_out, self.source.frames_read, self.frames_out, self.source.frames_dropped)
                    status.maybe_log(t_out)
                    published += 1
                    if self.replace is not None:
                        self.sharpener = self.replace(t_out, self.source.frames_dropped) or sharpener
        return published

    def _process(self, camera_frame: np.ndarray, t_capture: float, t_read: float) -> float:
        """One frame through every stage, its times recorded; returns when it was published."""
        if camera_frame.shape != self._shape:
            if self._shape is not None:
                log.info("frame size changed to %dx%d", *camera_frame.shape[1::-1])
            self._shape = camera_frame.shape
        frame = self._frame = to_i420(camera_frame, self._frame)
        t1 = time.perf_counter()
        if self.bypass or not self.source.live:  # switched off, or a stand-in for the camera
            out, split, t2 = frame, _NO_SPLIT, t1
        else:
            sharp, split = self._sharpen(frame)
            t2 = time.perf_counter()
            out = _stage("temporal", self.temporal, frame, sharp)
        t3 = time.perf_counter()
        _stage("publish", self.sink.send, out, frame)
        t4 = time.perf_counter()
        self.times.add(
            [
                (t1 - max(t_read, t_capture)) * 1e3,
                split["pre"],
                split["infer"],
                split["post"],
                (t3 - t2) * 1e3,
                (t4 - t3) * 1e3,
                (t4 - t_capture) * 1e3,
            ]
        )
        self.frames_out += 1
        return t4

    def _sharpen(self, frame: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        """The sharpened frame and its time split. A model that fails on its first frame is
        broken and stops the pipeline; one that fails later (a driver hiccup, memory) passes the
        camera frame through, logged once, so the call goes on."""
        try:
            sharp = _stage("sharpen", self.sharpener, frame)
        except VcamError as exc:
            if not self._sharpened_once:
                raise
            if not self._failure_logged:
                log.error("%s — passing camera frames through until it recovers", exc)
                self._failure_logged = True
            return frame, _NO_SPLIT
        self._sharpened_once = True
        if self._failure_logged:
            log.info("sharpening recovered")
            self._failure_logged = False
        return sharp, self.sharpener.timings

    def close(self) -> None:
        """Release the camera and the device (each even if the other fails)."""
        try:
            self.source.close()
        finally:
            self.sink.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


_NO_SPLIT = {"pre": 0.0, "infer": 0.0, "post": 0.0}


class Rates:
    """Frames per second in and out, and drops, over the last completed second."""

    def __init__(self) -> None:
        self.fps_in = self.fps_out = 0.0
        self.dropped_per_s = 0.0
        self._mark: tuple[float, int, int, int] | None = None

    def update(self, now: float, read: int, out: int, dropped: int) -> None:
        if self._mark is None:
            self._mark = (now, read, out, dropped)
            return
        t, r, o, d = self._mark
        if now - t >= 1.0:
            self.fps_in, self.fps_out = (read - r) / (now - t), (out - o) / (now - t)
            self.dropped_per_s = (dropped - d) / (now - t)
            self._mark = (now, read, out, dropped)


def _stage(name: str, fn: Callable[..., T], *args: np.ndarray) -> T:
    try:
        return fn(*args)
    except VcamError:
        raise
    except Exception as exc:  # noqa: BLE001 — a stage bug must still reach the user as one line
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise VcamError(f"{name} stage failed: {type(exc).__name__}: {text}") from exc


class _Status:
    """One log line every `interval` seconds: rates since the last line and stage medians."""

    def __init__(self, pipeline: Pipeline, interval: float | None) -> None:
        self._p = pipeline
        self._interval = interval
        self._last = (
            time.perf_counter(),
            pipeline.source.frames_read,
            pipeline.frames_out,
            pipeline.source.frames_dropped,
        )

    def maybe_log(self, now: float) -> None:
        t, read, out, dropped = self._last
        if self._interval is None or now - t < self._interval:
            return
        src = self._p.source
        self._last = (now, src.frames_read, self._p.frames_out, src.frames_dropped)
        p = self._p.times.percentiles((50,), last=self._p.frames_out - out)  # the same frames as the rates
        stages = ", ".join(f"{s} {p[s]['p50']:.1f}" for s in STAGES)
        log.info(
            "in %.1f fps, out %.1f fps, dropped %d | p50 ms: %s",
            (src.frames_read - read) / (now - t),
            (self._p.frames_out - out) / (now - t),
            src.frames_dropped - dropped,
            stages,
        )


def open_pipeline(options: StartOptions, *, status_interval: float | None = 5.0, **sink_options: Any) -> Pipeline:
    """Open every stage from `options`. A model is loaded first, so that a bad one is reported
    before the camera turns on; without one, the tier is chosen for the camera's actual frame size
    (vcam/tiers.py) and, unless a tier was named, steps down when frames drop."""
    o = options
    check_request(o.width, o.height, o.fps)
    tiers.check_choice(o.model, o.tier)
    if os.path.isfile(o.source) and os.path.exists(o.sink) and os.path.samefile(o.source, o.sink):
        raise VcamError(f"sink {o.sink} is the source file: recording would destroy it — name another file")
    provider = o.provider_choice
    sharpener = OnnxSharpener(o.model, provider, o.strength) if o.model is not None else None
    temporal = TemporalFilter(o.ema)
    first = open_source(o.source, o.width, o.height, o.fps)
    camera = SupervisedSource(lambda: reopen(o.source, first.card, o.width, o.height, o.fps), first)
    try:
        replace = None
        if sharpener is None:
            choice = tiers.choose(*camera.size, camera.fps, o.tier, provider)
            log.info("model tier %s: %s", choice.tier, choice.reason)
            sharpener = OnnxSharpener(choice.path, provider, o.strength)
            if o.tier is None:
                replace = _step_down(sharpener, choice.tier, provider)
        out = open_sink(o.sink, *camera.size, camera.fps, o.device, o.overwrite, **sink_options)
        if o.on_demand and isinstance(out, VirtualCamSink):
            camera.watch_demand(out.device)
        elif o.on_demand:
            log.warning("on_demand watches the virtual camera's readers; with sink %s the camera stays on", o.sink)
    except BaseException:
        camera.close()
        raise
    log.info("%s -> %s (%s) -> %s", camera.name, sharpener.path.name, ",".join(sharpener.providers), o.sink)
    return Pipeline(camera, sharpener, temporal, out, status_interval=status_interval, replace=replace)


def _step_down(first: OnnxSharpener, tier: str, provider: str | None) -> Replace:
    watch, current = tiers.StepDown(tier), first

    def replace(now: float, dropped: int) -> OnnxSharpener | None:
        nonlocal current
        target = watch.update(now, dropped)
        if target is None:
            return None
        log.warning("frames dropped for %d s in a row: stepping down to the %s tier", tiers.STEP_DOWN_SECONDS, target)
        current = OnnxSharpener(tiers.tier_path(target), provider, current.strength)  # a live strength stays
        return current

    return replace
