"""A camera source that outlives its camera: unplugged, silent, or released while nobody watches.

Video-call apps freeze or drop a camera whose frames stop, so SharpCam never stops publishing.
When the camera fails, `SupervisedSource` hands out the last picture, dimmed, with a small
"camera reconnecting" note, at the camera's rate, while a thread reopens the camera with a short
back-off (at most a second between tries, so a camera that returns is live again within about
one second plus its own start-up). On demand (vcam/demand.py) it releases the camera entirely —
the LED goes off — and hands out an "idle" picture once a second, which keeps the virtual device
open and listed by apps at almost no CPU.

Frames that are not the camera's are flagged by `live` being False; the pipeline publishes them
without running the model.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import cv2
import numpy as np

from vcam.camera import CameraSource
from vcam.demand import DemandWatch
from vcam.errors import SourceError

log = logging.getLogger(__name__)

BACKOFF_S = (0.1, 0.25, 0.5, 1.0)  # waits between reopen attempts; the last one repeats
IDLE_PERIOD_S = 1.0  # one idle picture a second keeps the device's consumers served


class SupervisedSource:
    """The source interface of CameraSource over a camera that `opener` (re)opens."""

    def __init__(self, opener: Callable[[], CameraSource], first: CameraSource) -> None:
        self._opener = opener
        self._inner: CameraSource | None = first
        self.name = first.name
        self.size = first.size
        self.fps = first.fps
        self.frame_count = first.frame_count
        self._counted = (0, 0)  # frames read and dropped by cameras already closed
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._wake = threading.Event()
        self._worker: threading.Thread | None = None
        self._state = "live"
        self._last: np.ndarray | None = None
        self._card: np.ndarray | None = None
        self._next_card = 0.0
        self.live = True
        """Whether the frame read last came from the camera."""
        self.demand: DemandWatch | None = None
        """The readers watch when the camera runs on demand (`watch_demand`)."""

    def watch_demand(self, device: str) -> None:
        """Release the camera while no app reads `device`, and take it back when one does."""
        self.demand = DemandWatch(device, self)

    @property
    def state(self) -> str:
        """live, reconnecting (the camera failed), starting (demand came back) or idle."""
        return self._state

    @property
    def frames_read(self) -> int:
        inner = self._inner
        return self._counted[0] + (inner.frames_read if inner else 0)

    @property
    def frames_dropped(self) -> int:
        inner = self._inner
        return self._counted[1] + (inner.frames_dropped if inner else 0)

    def read(self, timeout: float) -> tuple[np.ndarray, float] | None:
        with self._lock:
            inner, state = self._inner, self._state
        if inner is not None and state == "live":
            try:
                item = inner.read(timeout)
            except SourceError as exc:
                log.warning("%s — publishing the last picture while it reconnects", exc)
                self._lose("reconnecting")
                return None
            if item is not None:
                self._last, self.live = item[0], True
            return item
        return self._card_frame(timeout)

    def set_demand(self, wanted: bool) -> None:
        """Release the camera (False) or take it again (True)."""
        with self._lock:
            if not wanted and self._state != "idle":
                self._state = "idle"
                self._release()
                self._card = None
                log.info("nobody is watching SharpCam: camera released")
            elif wanted and self._state == "idle":
                self._state = "starting"
                self._card = None
                self._start_worker()
                log.info("an app is watching SharpCam: starting the camera")

    def _lose(self, state: str) -> None:
        with self._lock:
            if self._state != "live":
                return
            self._state = state
            self._release()
            self._card = None
            self._start_worker()

    def _release(self) -> None:
        """Close the camera (lock held), keeping its frame counts."""
        if self._inner is not None:
            self._counted = (self.frames_read, self.frames_dropped)
            inner, self._inner = self._inner, None
            inner.close()

    def _start_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._reopen, name="vcam-reconnect", daemon=True)
            self._worker.start()

    def _reopen(self) -> None:
        attempt = 0
        while not self._closed.is_set():
            with self._lock:
                if self._state not in ("reconnecting", "starting"):
                    return
            try:
                camera = self._opener()
            except SourceError as exc:
                if attempt == 0:
                    log.info("camera not back yet (%s); retrying", exc)
                self._closed.wait(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
                attempt += 1
                continue
            with self._lock:
                if self._state in ("reconnecting", "starting") and not self._closed.is_set():
                    self._inner, self._state = camera, "live"
                    self.size, self.fps = camera.size, camera.fps
                    log.info("%s is back (%dx%d)", camera.name, *camera.size)
                    return
            camera.close()  # demand went away, or closed, while it opened
            return

    def _card_frame(self, timeout: float) -> tuple[np.ndarray, float] | None:
        """The stand-in picture at its pace: the camera's rate while reconnecting, once a second idle."""
        period = IDLE_PERIOD_S if self._state == "idle" else 1.0 / self.fps
        wait = self._next_card - time.perf_counter()
        if wait > 0:
            self._closed.wait(min(wait, timeout))
            if time.perf_counter() < self._next_card:
                return None
        self._next_card = time.perf_counter() + period
        if self._card is None:
            self._card = stand_in(self._last, self.size, self._state)
        self.live = False
        return self._card, time.perf_counter()

    def close(self) -> None:
        if self.demand is not None:
            self.demand.close()
        self._closed.set()
        with self._lock:
            self._release()
        if self._worker is not None:
            self._worker.join(2.0)

    def __enter__(self) -> SupervisedSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


NOTES = {"reconnecting": "camera reconnecting...", "starting": "camera starting...", "idle": "SharpCam idle"}


def stand_in(last: np.ndarray | None, size: tuple[int, int], state: str) -> np.ndarray:
    """The last camera picture at a third of its brightness (grey without one) with a small note."""
    width, height = size
    if last is not None and (last.shape[1], last.shape[0]) == (width, height):
        card = cv2.convertScaleAbs(last, alpha=0.35)
    else:
        card = np.full((height, width, 3), 40, np.uint8)
    scale = max(0.4, height / 720)
    origin = (int(16 * scale), height - int(20 * scale))
    cv2.putText(card, NOTES.get(state, state), origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (230, 230, 230), 1, cv2.LINE_AA)
    return card
