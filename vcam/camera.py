"""Camera source: a webcam, a V4L2 device path or a looping video file, read on its own thread.

Why a reader thread with a one-frame slot: a slow model must never make the output lag behind
reality. The thread keeps pulling frames from the camera (whose driver buffer is set to 1) and
overwrites the slot; the pipeline always takes the NEWEST frame, and every frame that was
overwritten before anyone took it is counted as dropped. A video file stands in for a webcam in
demos and tests: it loops forever and is paced at its own fps, so it behaves like a camera.

OpenCV 5 cannot open V4L2 devices by path, so `/dev/videoN` is opened as index N with CAP_V4L2.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import math
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

# FFmpeg prints its own multi-line complaints about undecodable files; SourceError says it in one.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read when FFmpeg starts
# A V4L2 read waits this long (OpenCV's default: 10 s) for a camera that went silent, and the
# reader thread holds the device until it returns: a camera that comes back, or a loopback
# device's next writer, would meet our old reader still attached. Read on the first capture.
os.environ.setdefault("OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from vcam import v4l2loopback  # noqa: E402
from vcam.errors import SourceError  # noqa: E402
from vcam.options import check  # noqa: E402

log = logging.getLogger(__name__)


def check_request(width: int | None, height: int | None, fps: float) -> None:
    """Refuse a frame size or rate no camera and no pipeline can serve, before anything opens."""
    for name, value in (("fps", fps), ("width", width), ("height", height)):
        check(name, value)
    pixels = (width or 0) * (height or 0)
    if pixels > MAX_PIXELS:
        raise SourceError(
            f"{width}x{height} is {pixels / 1e6:.0f} megapixels, more than 8K "
            f"({MAX_PIXELS / 1e6:.0f}) — ask for 1920x1080 or less"
        )
    if pixels > LARGE_PIXELS:
        log.warning("%dx%d is larger than 4K: expect a few frames per second at most", width, height)


MAX_PIXELS = 7680 * 4320  # 8K: beyond it one frame takes gigabytes through the pipeline
LARGE_PIXELS = 3840 * 2160  # above 4K no laptop CPU keeps up: say so
FIRST_FRAME_TIMEOUT_S = 2.0
"""How long a source may stay silent (at start or later) before it counts as dead."""

_DEVICE_PATH = re.compile(r"^/dev/video(\d+)$")


class Capture(Protocol):
    """The part of `cv2.VideoCapture` the reader thread uses (a fake webcam implements it too)."""

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def set(self, prop: int, value: float) -> bool: ...

    def release(self) -> None: ...


class Source(Protocol):
    """What the pipeline reads frames from: a CameraSource, or one that supervises it."""

    name: str
    size: tuple[int, int]
    fps: float
    live: bool

    @property
    def frames_read(self) -> int: ...

    @property
    def frames_dropped(self) -> int: ...

    def read(self, timeout: float) -> tuple[np.ndarray, float] | None: ...

    def close(self) -> None: ...


class SourceEnded(Exception):
    """A source that does not loop (a file sharpened offline) has delivered its last frame."""


class CameraSource:
    """Hands the newest frame of `capture` to the pipeline; owns and releases the capture.

    `fps` is the nominal frame rate (a camera's reported rate, a file's own); `paced` makes the
    reader deliver no faster than that, as a camera would. `loop` rewinds a file at its end,
    `resize` scales every frame to (width, height). `every_frame` (offline files) makes the
    reader wait until the pipeline took a frame instead of replacing it, and `read` raise
    SourceEnded after the last one.
    The constructor waits for the first frame so a silent camera is reported at start.
    """

    def __init__(
        self,
        capture: Capture,
        name: str,
        *,
        fps: float,
        paced: bool = False,
        resize: tuple[int, int] | None = None,
        loop: bool = False,
        every_frame: bool = False,
        timeout: float = FIRST_FRAME_TIMEOUT_S,
    ) -> None:
        self.name = name
        self.frames_read = 0
        self.frames_dropped = 0
        self._capture = capture
        self.fps = fps
        self._paced = paced
        self._resize = resize
        self._loop = loop
        self._every_frame = every_frame
        self._ended = False
        self.frame_count: int | None = None
        """Frames in a file, as its container states them (None: a camera, or unknown)."""
        self.card: str | None = None
        """A camera's V4L2 card name (Linux), by which it is found again under another number."""
        self.live = True  # every frame is the camera's
        self._timeout = timeout
        self._cond = threading.Condition()
        self._slot: tuple[np.ndarray, float] | None = None
        self._error: SourceError | None = None
        self._last_frame_t = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"vcam-source[{name}]", daemon=True)
        self._thread.start()
        with self._cond:
            started = self._cond.wait_for(
                lambda: self._slot is not None or self._error is not None or self._ended, timeout
            )
        if not started:
            self.close()  # outside the lock: the reader may need it to finish its last frame
            raise SourceError(
                f"{name} opened but sent no frames within {timeout:g} s — it may "
                "be in use by another app (close it) or not support the requested "
                "width/height/fps"
            )
        if self._error is not None or self._slot is None:  # failed, or a file of no frames
            self.close()
            raise self._error or SourceError(f"{name} has no frames")
        self.size: tuple[int, int] = (self._slot[0].shape[1], self._slot[0].shape[0])
        """(width, height) of the frames the source actually delivers."""

    def read(self, timeout: float) -> tuple[np.ndarray, float] | None:
        """The newest frame not yet taken and its capture time (perf_counter), or None on timeout.

        Raises SourceError when the reader failed or the source has been silent for longer than
        the source timeout (camera unplugged or taken by another app).
        """
        with self._cond:
            self._cond.wait_for(lambda: self._slot is not None or self._error is not None or self._ended, timeout)
            if self._error is not None:
                raise self._error
            if self._slot is None and self._ended:
                raise SourceEnded(self.name)
            if self._slot is None:
                silent = time.perf_counter() - self._last_frame_t
                if silent > self._timeout:
                    raise SourceError(
                        f"{self.name} sent no frame for {silent:.1f} s — was it unplugged or taken by another app?"
                    )
                return None
            item, self._slot = self._slot, None
            self._cond.notify_all()  # an every-frame reader waits for the slot to empty
            return item

    def close(self) -> None:
        """Stop the reader; it releases the capture as it exits (even if a read is still stuck)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)

    def __enter__(self) -> CameraSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        next_due = time.perf_counter()
        try:
            while not self._stop.is_set():
                frame = self._grab()
                if frame is None:
                    if self._ended:
                        return
                    continue
                now = time.perf_counter()
                with self._cond:
                    if self._every_frame:
                        while self._slot is not None and not self._stop.is_set():
                            self._cond.wait(0.1)
                    if self._slot is not None:
                        self.frames_dropped += 1
                    self._slot = (frame, now)
                    self.frames_read += 1
                    self._last_frame_t = now
                    self._cond.notify_all()
                if self._paced:
                    next_due = max(next_due + 1.0 / self.fps, now)
                    self._stop.wait(next_due - time.perf_counter())
        except Exception as e:  # noqa: BLE001 — any reader failure must reach read() as one line
            error = e if isinstance(e, SourceError) else SourceError(f"{self.name} failed: {e}")
            with self._cond:
                self._error = error
                self._cond.notify_all()
        finally:
            self._capture.release()

    def _grab(self) -> np.ndarray | None:
        ok, frame = self._capture.read()
        if not ok and self._loop:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._capture.read()
            if not ok:
                raise SourceError(
                    f"{self.name} stopped decoding after a loop — re-encode it (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4)"
                )
        if not ok and self._every_frame:  # a file read to its end
            with self._cond:
                self._ended = True
                self._cond.notify_all()
            return None
        if not ok or frame is None:
            # A camera that has nothing right now: back off briefly; read() reports the silence.
            self._stop.wait(0.01)
            return None
        if self._resize is not None and (frame.shape[1], frame.shape[0]) != self._resize:
            frame = cv2.resize(frame, self._resize, interpolation=cv2.INTER_AREA)
        return frame


def open_source(
    spec: str,
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
    timeout: float = FIRST_FRAME_TIMEOUT_S,
) -> CameraSource:
    """Open `spec` — a webcam index ("0"), a device path ("/dev/video2") or a video file.

    A camera is asked for width x height at fps (it may pick its nearest mode); a file is
    resized to width x height when both are given (it stands in for a camera set to that mode).
    """
    index = _camera_index(spec)
    if index is None:
        return open_file(Path(spec), width, height, timeout)
    return _open_camera(index, spec, width, height, fps, timeout)


def list_cameras(max_index: int = 4) -> list[tuple[int, tuple[int, int]]]:
    """(index, (width, height)) of every camera that opens and delivers a frame."""
    indices = _linux_capture_indices() if sys.platform == "linux" else range(max_index)
    found = []
    for index in indices:
        try:
            with _open_camera(index, str(index), None, None, None, timeout=1.0) as source:
                found.append((index, source.size))
        except SourceError:
            continue
    return found


def _camera_index(spec: str) -> int | None:
    if spec.isdigit():
        return int(spec)
    match = _DEVICE_PATH.match(spec)
    return int(match.group(1)) if match else None


def _open_camera(
    index: int, spec: str, width: int | None, height: int | None, fps: float | None, timeout: float
) -> CameraSource:
    name = f"camera {spec}"
    if sys.platform == "linux" and v4l2loopback.is_unfed(f"/dev/video{index}"):
        raise SourceError(
            f"{name} is a virtual camera that no app is feeding right now — start the app "
            "that feeds it (OBS, a phone-camera app) or pick another camera"
        )
    backend = cv2.CAP_V4L2 if sys.platform == "linux" else cv2.CAP_ANY
    with quiet_opencv():
        capture = cv2.VideoCapture(index, backend)
    if not capture.isOpened():
        capture.release()
        raise SourceError(_no_camera_message(spec))
    capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*"MJPG"))  # ignored if not offered
    if width and height:
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
    if fps:
        capture.set(cv2.CAP_PROP_FPS, fps)
    capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
    actual_fps = capture.get(cv2.CAP_PROP_FPS)
    source = CameraSource(capture, name, fps=_sane_fps(actual_fps, fps or 30.0), timeout=timeout)
    source.card = _card_name(index)
    log.info("%s: %dx%d at %.0f fps", name, *source.size, source.fps)
    return source


def _no_camera_message(spec: str) -> str:
    if sys.platform == "linux" and not glob.glob("/dev/video*"):
        return (
            f"no camera at {spec}: this machine has no webcam at all (no /dev/video*) — "
            "use a video file as the source instead"
        )
    return (
        f"no camera at {spec} — check it is plugged in and not used by another app, "
        "list cameras with `vcam devices`, or use a video file as the source"
    )


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def open_file(
    path: Path,
    width: int | None = None,
    height: int | None = None,
    timeout: float = FIRST_FRAME_TIMEOUT_S,
    *,
    realtime: bool = True,
) -> CameraSource:
    """A video file as a source: `realtime` paces and loops it like a camera (demos, tests);
    otherwise every frame is delivered once, as fast as the pipeline takes them (offline)."""
    if path.is_dir():
        raise SourceError(f"source {path} is a folder — pass a video file in it, a webcam index (0) or a device")
    if path.exists() and not path.is_file():
        raise SourceError(f"source {path} is not a video file or a camera — pass a webcam index (0) or /dev/videoN")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise SourceError(
            f"source {path} is a still image — pass a video file or a webcam; to sharpen photos use `vcam sharpen`"
        )
    if not path.is_file():
        raise SourceError(
            f"video file {path} not found — pass a webcam index (0), a device "
            "(/dev/video0) or an existing video file as the source"
        )
    with quiet_opencv():
        capture = cv2.VideoCapture(str(path))
        ok = capture.isOpened() and capture.grab()
    if not ok:
        capture.release()
        raise SourceError(
            f"video file {path} cannot be decoded — use a video OpenCV can read "
            "(e.g. re-encode: ffmpeg -i IN -c:v libx264 OUT.mp4)"
        )
    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
    resize = (width, height) if width and height else None
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    source = CameraSource(
        capture,
        f"video file {path}",
        fps=_sane_fps(capture.get(cv2.CAP_PROP_FPS)),
        paced=realtime,
        resize=resize,
        loop=realtime,
        every_frame=not realtime,
        timeout=timeout,
    )
    source.frame_count = count if count > 0 else None
    return source


def _sane_fps(reported: float, fallback: float = 30.0) -> float:
    """Drivers and containers report 0, NaN or 1000 when they do not know their rate."""
    return reported if math.isfinite(reported) and 1 <= reported <= 240 else fallback


def reopen(spec: str, card: str | None, width: int | None, height: int | None, fps: float | None) -> CameraSource:
    """`spec` opened again after it failed; a camera that came back under another number (plugged
    into another port) is found by its card name."""
    try:
        return open_source(spec, width, height, fps)
    except SourceError:
        if card is None or _camera_index(spec) is None or sys.platform != "linux":
            raise
    for index in _linux_capture_indices():
        if _card_name(index) == card and str(index) != spec and spec != f"/dev/video{index}":
            return _open_camera(index, f"/dev/video{index}", width, height, fps, FIRST_FRAME_TIMEOUT_S)
    raise SourceError(f"camera {spec} ({card}) is not back yet")


def _card_name(index: int) -> str | None:
    try:
        return Path(f"/sys/class/video4linux/video{index}/name").read_text().strip()
    except OSError:
        return None


def _linux_capture_indices() -> list[int]:
    indices = sorted(int(m.group(1)) for p in glob.glob("/dev/video*") if (m := _DEVICE_PATH.match(p)))
    return [i for i in indices if not v4l2loopback.is_virtual(i)]


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """OpenCV's own WARN lines hidden: for a missing camera, or a `select() timeout` per second
    while one is silent, they repeat in another format what vcam says in one line."""
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(previous)
