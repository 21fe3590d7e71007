"""Sinks: where the sharpened frames go — the SharpCam virtual camera, a preview window, a file
or nowhere. Adding one is a `Sink` subclass here and an entry in `SINKS` (or `FILE_SINKS`).

Sinks take the pipeline's I420 frames (vcam/frames.py) and are opened for one frame size, even in
both directions; a frame of another size (the camera changed mode) is scaled to it, because
video-call apps do not expect a camera's format to change under them. Windows/macOS: the virtual
camera is pyvirtualcam's OBS backend (apps list it as "OBS Virtual Camera").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyvirtualcam

from vcam import v4l2loopback
from vcam.errors import DeviceError
from vcam.frames import size, to_bgr, to_i420
from vcam.v4l2loopback import LABEL, MODPROBE, PERMANENT


class Sink(ABC):
    """Base of all sinks: context manager around `send` and `close`."""

    @abstractmethod
    def send(self, frame: np.ndarray, source: np.ndarray | None = None) -> None:
        """Publish `frame`; `source` is the camera frame it was made from (both I420)."""

    def close(self) -> None:  # noqa: B027 — a sink with nothing to release need not override it
        """Release the device or file; safe to call twice."""

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fit(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """The I420 `frame` at exactly width x height (both even)."""
    if size(frame) == (width, height):
        return frame
    return to_i420(cv2.resize(to_bgr(frame), (width, height), interpolation=cv2.INTER_AREA))


def _even(n: int) -> int:
    return max(2, n - n % 2)


class VirtualCamSink(Sink):
    """The SharpCam virtual camera through pyvirtualcam.

    Frames go out as they come: the source is paced already, and holding a frame to a schedule
    of the sink's own would lock the pipeline into running a frame behind the camera. Only a
    burst is spread: a frame that follows the previous one by less than half a period waits
    until half a period has passed.

    pyvirtualcam only *prints* write errors on Linux, so a device that disappears (module
    unloaded, node removed) would fail silently: every `check_interval` seconds we stat the
    device node and raise DeviceError when it is gone or was replaced.
    """

    def __init__(
        self,
        width: int,
        height: int,
        fps: float,
        device: str | None = None,
        *,
        backend: str | None = None,
        root: Path = Path("/"),
        check_interval: float = 1.0,
    ) -> None:
        linux = platform.system() == "Linux"
        if device is None and linux:
            device = v4l2loopback.find_device(LABEL, root)
            if device is None:
                raise DeviceError(f"no v4l2loopback device labelled {LABEL} — create it with: {MODPROBE} ({PERMANENT})")
        self.width, self.height = _even(width), _even(height)
        backend = backend or ("v4l2loopback" if linux else "obs")
        loopback = backend == "v4l2loopback" and device is not None
        if loopback and device is not None:
            v4l2loopback.revive_if_stuck(device)
        try:
            self._cam = pyvirtualcam.Camera(
                self.width, self.height, fps, fmt=pyvirtualcam.PixelFormat.I420, device=device, backend=backend
            )
        except Exception as exc:  # pyvirtualcam raises RuntimeError/KeyError with backend text
            raise _open_error(device, exc) from exc
        self.device: str = self._cam.device
        # Closed after the camera: what lets the next writer (the next `vcam start`) in.
        self._streamer = v4l2loopback.start_output_stream(self.device) if loopback else None
        self._period = 1.0 / fps
        self._last_sent = -1.0
        self._check_interval = check_interval
        self._next_check = 0.0
        self._node = self._identity() if os.path.isabs(self.device) else None

    def _identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.device)
        except OSError:
            return None
        return st.st_ino, st.st_rdev

    def send(self, frame: np.ndarray, source: np.ndarray | None = None) -> None:
        now = time.perf_counter()
        if self._node is not None and now >= self._next_check:
            self._next_check = now + self._check_interval
            if self._identity() != self._node:
                raise DeviceError(
                    f"virtual camera {self.device} disappeared (v4l2loopback "
                    f"unloaded?) — recreate it with: {MODPROBE}, then restart vcam"
                )
        gap = now - self._last_sent
        if gap < self._period / 2:
            time.sleep(self._period / 2 - gap)
        self._last_sent = time.perf_counter()
        self._cam.send(_fit(frame, self.width, self.height))

    def close(self) -> None:
        self._cam.close()
        if self._streamer is not None:
            os.close(self._streamer)
            self._streamer = None


def _open_error(device: str | None, exc: Exception) -> DeviceError:
    """pyvirtualcam reports "'backend' backend: reason"; keep the reason, add the fix."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = text.split(" backend: ", 1)[-1]
    low = text.lower()
    name = device or "OBS Virtual Camera"
    if "permission" in low:
        return DeviceError(
            f"no permission to write {name} — run: sudo usermod -aG video $USER, then log out and in again"
        )
    if "busy" in low or "not a video output" in low or "could not be configured" in low:
        return DeviceError(
            f"virtual camera {name} is busy — another program (another `vcam "
            "start`, OBS) is already sending to it; stop it or choose another device"
        )
    if "does not exist" in low:
        return DeviceError(
            f"virtual camera {name} does not exist — create it with: {MODPROBE} "
            "(with no device named, vcam finds it by its label)"
        )
    if "not a v4l2" in low or "could not be queried" in low:
        return DeviceError(
            f"{name} is not a v4l2loopback device — create one with: {MODPROBE} "
            "(with no device named, vcam finds it by its label)"
        )
    if platform.system() != "Linux":
        return DeviceError(
            f"cannot open the OBS Virtual Camera ({text}) — install OBS Studio and start its virtual camera once"
        )
    return DeviceError(f"cannot open virtual camera {name} ({text}) — check it with `vcam doctor`")


def _check_x11_display() -> None:
    """OpenCV's window is an X11 one (XWayland on Wayland desktops): fail in one line unless the
    display named by DISPLAY accepts a connection."""
    fix = "use a FILE.mp4 or the null sink, or run it in your desktop session"
    display = os.environ.get("DISPLAY")
    if not display:
        wayland = " (Wayland alone: OpenCV's window needs XWayland)" if os.environ.get("WAYLAND_DISPLAY") else ""
        raise DeviceError(f"the window sink needs an X11 display and DISPLAY is not set{wayland} — {fix}")
    try:
        x11 = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
    except OSError:
        return  # no libX11 to ask: let OpenCV try
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    handle = x11.XOpenDisplay(display.encode())
    if not handle:
        raise DeviceError(f"the window sink cannot open the display DISPLAY={display} — {fix}")
    x11.XCloseDisplay(handle)


class WindowSink(Sink):
    """A preview window: left half the camera, right half SharpCam, so the effect is visible."""

    TITLE = "SharpCam preview (left: camera, right: SharpCam) - Ctrl+C to stop"

    def __init__(self) -> None:
        if platform.system() == "Linux":
            _check_x11_display()  # before OpenCV's Qt, which aborts the process without one
        self._open = False

    def send(self, frame: np.ndarray, source: np.ndarray | None = None) -> None:
        view = to_bgr(frame)
        if source is not None:
            half = view.shape[1] // 2
            view[:, :half] = to_bgr(_fit(source, *size(frame)))[:, :half]
            cv2.line(view, (half, 0), (half, view.shape[0]), (255, 255, 255), 1)
        try:
            cv2.imshow(self.TITLE, view)
            cv2.waitKey(1)  # pumps the window's events; without it nothing is drawn
        except cv2.error as exc:
            raise DeviceError(
                f"cannot open a preview window ({str(exc).strip()}) — use a FILE.mp4 or the null sink"
            ) from exc
        self._open = True

    def close(self) -> None:
        if self._open:
            cv2.destroyWindow(self.TITLE)
            self._open = False


class FileSink(Sink):
    """A video file to inspect the result offline. A killed process must not take the recording
    with it: .mp4 is fragmented H.264 (a fragment per keyframe, at least one a second, each
    written out as it closes; a plain MP4 is unreadable until its index is written at the end),
    .avi is MJPG (each frame a chunk of its own)."""

    def __init__(self, path: str | Path, width: int, height: int, fps: float) -> None:
        self.path = Path(path)
        self.width, self.height = _even(width), _even(height)
        self.frames_written = 0
        self._writer: cv2.VideoWriter | None = None
        self._mp4: Any = None
        failed = DeviceError(f"cannot write video file {self.path} — check the folder exists and is writable")
        if not self.path.parent.is_dir() or not os.access(self.path.parent, os.W_OK):
            raise failed
        if self.path.suffix.lower() == ".avi":
            self._writer = cv2.VideoWriter(
                str(self.path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (self.width, self.height)
            )
            if not self._writer.isOpened():
                raise failed
            return
        import av

        rate = Fraction(fps).limit_denominator(1001)
        try:
            self._mp4 = av.open(
                str(self.path),
                "w",
                format="mp4",
                options={"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"},
            )
        except (OSError, av.FFmpegError):
            raise failed from None
        self._stream = self._mp4.add_stream("libx264", rate=rate)
        self._stream.width, self._stream.height, self._stream.pix_fmt = self.width, self.height, "yuv420p"
        self._stream.options = {"preset": "veryfast", "tune": "zerolatency", "crf": "20", "g": str(max(1, round(fps)))}

    def send(self, frame: np.ndarray, source: np.ndarray | None = None) -> None:
        fitted = _fit(frame, self.width, self.height)
        if self._writer is not None:
            self._writer.write(to_bgr(fitted))
        else:
            import av

            picture = av.VideoFrame.from_ndarray(fitted, format="yuv420p")
            picture.pts = self.frames_written
            for packet in self._stream.encode(picture):
                self._mp4.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
        elif self._mp4 is not None:
            for packet in self._stream.encode(None):
                self._mp4.mux(packet)
            self._mp4.close()
            self._mp4 = None


class NullSink(Sink):
    """Discards frames: for benchmarks and for checking a source and model without a device."""

    def __init__(self) -> None:
        self.frames_sent = 0

    def send(self, frame: np.ndarray, source: np.ndarray | None = None) -> None:
        self.frames_sent += 1


# name -> opener(width, height, fps, device, **options); a spec that is none of these names a
# file, recorded by the sink its suffix picks.
SINKS: dict[str, Callable[..., Sink]] = {
    "virtualcam": VirtualCamSink,
    "window": lambda width, height, fps, device, **_: WindowSink(),
    "null": lambda width, height, fps, device, **_: NullSink(),
}
FILE_SINKS: dict[str, Callable[[str, int, int, float], Sink]] = {".mp4": FileSink, ".avi": FileSink}


def open_sink(
    spec: str,
    width: int,
    height: int,
    fps: float,
    device: str | None = None,
    overwrite: bool = False,
    **options: Any,
) -> Sink:
    """A sink of `SINKS` by name, or a recording for a path with a suffix of `FILE_SINKS` (an
    existing file only with `overwrite`: a recording never replaces a file the user did not name
    twice). `options` are the virtual camera's (its pyvirtualcam backend, in tests); others ignore them."""
    if spec in SINKS:
        return SINKS[spec](width, height, fps, device, **options)
    suffix = Path(spec).suffix.lower()
    if suffix in FILE_SINKS:
        if Path(spec).exists() and not overwrite:
            raise DeviceError(f"sink {spec} exists — allow overwrite to replace it, or name another file")
        return FILE_SINKS[suffix](spec, width, height, fps)
    files = "/".join(FILE_SINKS)
    raise DeviceError(f"unknown sink {spec!r} — use {', '.join(SINKS)} or a FILE{files}")
