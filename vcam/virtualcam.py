"""Sinks: where the sharpened frames go — the SharpCam virtual camera, a preview window, a file.

Every sink has the same small interface: `send(frame, source=None)` with I420 frames (the
pipeline's format, vcam/frames.py), `close()`, and it is a context manager. Sinks are opened for
one frame size, even in both directions; a frame of another size (the camera changed mode) is
scaled to it, because video-call apps do not expect a camera's format to change under them.
The virtual camera takes the I420 frames as they are; the window and file sinks convert to BGR.

Linux: the virtual camera is a v4l2loopback device. We find ours by its card label `SharpCam`
in `/sys/class/video4linux/*/name` (as OBS does with its own label), so the device number does
not matter. Windows/macOS: pyvirtualcam's OBS backend; apps list that device as
"OBS Virtual Camera" (install OBS Studio once, which ships the driver).

v4l2loopback up to 0.12.7 (the version of Debian 12 and Ubuntu 22.04/24.04) has a restart bug
with exclusive_caps=1: a writer that uses write(), as pyvirtualcam does, is never registered as
the writer, so when it closes the device stops announcing itself as an output, and every later
writer is refused ("not a video output device") until the module is reloaded. The driver does
announce it again when an opener that called VIDIOC_STREAMON on the output closes. So the sink
holds such an opener while it writes and closes it last, and a device already left stuck that way
(announcing neither capture nor output, so nobody is writing to it) is revived with one first.
tests/e2e shows both against the real driver.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import struct
import time
from abc import ABC, abstractmethod
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyvirtualcam

from vcam.errors import DeviceError
from vcam.frames import size, to_bgr, to_i420

LABEL = "SharpCam"
MODPROBE = f"sudo modprobe v4l2loopback devices=1 card_label={LABEL} exclusive_caps=1"
PERMANENT = (
    "to keep it after reboot: echo v4l2loopback | sudo tee "
    "/etc/modules-load.d/v4l2loopback.conf and echo 'options v4l2loopback devices=1 "
    f"card_label={LABEL} exclusive_caps=1' | sudo tee /etc/modprobe.d/v4l2loopback.conf"
)
SYSFS_CLASS = "sys/class/video4linux"


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


def list_loopback_devices(root: Path = Path("/")) -> list[tuple[str, str]]:
    """(device path, card label) of every v4l2loopback device, sorted by device number."""
    found = []
    for entry in (root / SYSFS_CLASS).glob("video*"):
        if "/virtual/" not in os.path.realpath(entry):  # cameras sit under their bus instead
            continue
        try:
            label = (entry / "name").read_text().strip()
        except OSError:
            continue
        found.append((int(entry.name.removeprefix("video")), str(root / "dev" / entry.name), label))
    return [(device, label) for _, device, label in sorted(found)]


def find_device(label: str = LABEL, root: Path = Path("/")) -> str | None:
    """The /dev/videoN path of the v4l2loopback device whose card label is `label`."""
    return next((device for device, name in list_loopback_devices(root) if name == label), None)


def _creation_order(root: Path) -> list[str]:
    """Loopback device paths in the order the module created them: the numbers given in its
    video_nr parameter when all were given (video_nr=20,10 creates video20 first), else
    ascending, the order in which it hands out free numbers."""
    devices = [path for path, _ in list_loopback_devices(root)]
    try:
        text = (root / "sys/module/v4l2loopback/parameters/video_nr").read_text()
        numbers = [int(v) for v in text.strip().split(",")][: len(devices)]
    except (OSError, ValueError):
        return devices
    named = [str(root / "dev" / f"video{n}") for n in numbers]
    return named if min(numbers, default=-1) >= 0 and sorted(named) == sorted(devices) else devices


def exclusive_caps(device: str, root: Path = Path("/")) -> bool | None:
    """Whether `device` was created with exclusive_caps=1 (Chrome/Meet only list it then).

    The module parameter is a list in device creation order; None when it cannot be read.
    """
    try:
        values = (root / "sys/module/v4l2loopback/parameters/exclusive_caps").read_text()
    except OSError:
        return None
    devices = _creation_order(root)
    flags = values.strip().split(",")
    if device not in devices or devices.index(device) >= len(flags):
        return None
    return flags[devices.index(device)].strip() in ("Y", "1")


_VIDIOC_QUERYCAP = 0x80685600  # _IOR('V', 0, struct v4l2_capability): 104 bytes
_VIDIOC_STREAMON = 0x40045612  # _IOW('V', 18, int)
_CAP_VIDEO_CAPTURE, _CAP_VIDEO_OUTPUT, _CAP_DEVICE_CAPS = 0x1, 0x2, 0x80000000
_BUF_TYPE_VIDEO_OUTPUT = 2


def _device_caps(device: str) -> int | None:
    """The capabilities `device` announces right now, None when it cannot be asked."""
    import fcntl  # Unix only, like v4l2loopback

    try:
        fd = os.open(device, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = bytearray(104)
        fcntl.ioctl(fd, _VIDIOC_QUERYCAP, info)
    except OSError:
        return None
    finally:
        os.close(fd)
    capabilities, device_caps = struct.unpack_from("<II", info, 84)
    return device_caps if capabilities & _CAP_DEVICE_CAPS else capabilities


def _start_output_stream(device: str) -> int | None:
    """An fd of `device` on which VIDIOC_STREAMON(output) was called, or None if it cannot be
    opened. v4l2loopback counts this opener as a writer even when the call fails (it marks the
    opener first; a stuck device has no format to stream), which is all that matters here."""
    import fcntl

    try:
        fd = os.open(device, os.O_RDWR | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        fcntl.ioctl(fd, _VIDIOC_STREAMON, struct.pack("i", _BUF_TYPE_VIDEO_OUTPUT))
    except OSError:
        pass
    return fd


def _revive_if_stuck(device: str) -> None:
    """Make a device that an earlier writer left announcing neither capture nor output (the
    v4l2loopback restart bug in the module docstring) an output again."""
    caps = _device_caps(device)
    if caps is None or caps & (_CAP_VIDEO_CAPTURE | _CAP_VIDEO_OUTPUT):
        return
    fd = _start_output_stream(device)
    if fd is not None:
        os.close(fd)


class VirtualCamSink(Sink):
    """The SharpCam virtual camera through pyvirtualcam, paced to at most `fps`.

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
            device = find_device(LABEL, root)
            if device is None:
                raise DeviceError(f"no v4l2loopback device labelled {LABEL} — create it with: {MODPROBE} ({PERMANENT})")
        self.width, self.height = _even(width), _even(height)
        backend = backend or ("v4l2loopback" if linux else "obs")
        v4l2loopback = backend == "v4l2loopback" and device is not None
        if v4l2loopback and device is not None:
            _revive_if_stuck(device)
        try:
            self._cam = pyvirtualcam.Camera(
                self.width, self.height, fps, fmt=pyvirtualcam.PixelFormat.I420, device=device, backend=backend
            )
        except Exception as exc:  # pyvirtualcam raises RuntimeError/KeyError with backend text
            raise _open_error(device, exc) from exc
        self.device: str = self._cam.device
        # Closed after the camera: what lets the next writer (the next `vcam start`) in.
        self._streamer = _start_output_stream(self.device) if v4l2loopback else None
        self._period = 1.0 / fps
        self._next_due = 0.0
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
        if now < self._next_due - self._period / 4:  # a little early is camera jitter: send
            time.sleep(self._next_due - now)
            now = self._next_due
        self._next_due = max(self._next_due, now) + self._period
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
            "start`, OBS) is already sending to it; stop it or pass --device"
        )
    if "does not exist" in low:
        return DeviceError(
            f"virtual camera {name} does not exist — create it with: {MODPROBE} "
            "(without --device, vcam finds it by its label)"
        )
    if "not a v4l2" in low or "could not be queried" in low:
        return DeviceError(
            f"{name} is not a v4l2loopback device — create one with: {MODPROBE} "
            "(without --device, vcam finds it by its label)"
        )
    if platform.system() != "Linux":
        return DeviceError(
            f"cannot open the OBS Virtual Camera ({text}) — install OBS Studio and start its virtual camera once"
        )
    return DeviceError(f"cannot open virtual camera {name} ({text}) — check it with `vcam doctor`")


def _check_x11_display() -> None:
    """OpenCV's window is an X11 one (XWayland on Wayland desktops): fail in one line unless the
    display named by DISPLAY accepts a connection."""
    fix = "use --sink FILE.mp4 or --sink null, or run it in your desktop session"
    display = os.environ.get("DISPLAY")
    if not display:
        wayland = " (Wayland alone: OpenCV's window needs XWayland)" if os.environ.get("WAYLAND_DISPLAY") else ""
        raise DeviceError(f"--sink window needs an X11 display and DISPLAY is not set{wayland} — {fix}")
    try:
        x11 = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
    except OSError:
        return  # no libX11 to ask: let OpenCV try
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    handle = x11.XOpenDisplay(display.encode())
    if not handle:
        raise DeviceError(f"--sink window cannot open the display DISPLAY={display} — {fix}")
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
                f"cannot open a preview window ({str(exc).strip()}) — use --sink FILE.mp4 or --sink null"
            ) from exc
        self._open = True

    def close(self) -> None:
        if self._open:
            cv2.destroyWindow(self.TITLE)
            self._open = False


class FileSink(Sink):
    """A video file to inspect the result offline. A killed process must not take the recording
    with it: .mp4 is fragmented H.264 (a fragment a second, each written out as it closes; a
    plain MP4 is unreadable until its index is written at the end), .avi is MJPG (each frame a
    chunk of its own)."""

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


def open_sink(
    spec: str,
    width: int,
    height: int,
    fps: float,
    device: str | None = None,
    overwrite: bool = False,
    **virtualcam_options: Any,
) -> Sink:
    """'virtualcam' (default), 'window', 'null', or a path ending in .mp4/.avi (an existing
    file only with `overwrite`: a recording never replaces a file the user did not name twice)."""
    if spec == "virtualcam":
        return VirtualCamSink(width, height, fps, device, **virtualcam_options)
    if spec == "window":
        return WindowSink()
    if spec == "null":
        return NullSink()
    if Path(spec).suffix.lower() in (".mp4", ".avi"):
        if Path(spec).exists() and not overwrite:
            raise DeviceError(f"--sink {spec} exists — pass --overwrite to replace it, or name another file")
        return FileSink(spec, width, height, fps)
    raise DeviceError(f"unknown --sink {spec!r} — use virtualcam, window, null or a FILE.mp4/.avi")
