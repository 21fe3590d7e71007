"""The pipeline's frame format: I420, the YUV 4:2:0 that virtual cameras carry.

A camera frame (BGR, as OpenCV decodes it) is converted once on arrival; from there the
sharpener, the temporal stage and the SharpCam device all work on I420:

* every pyvirtualcam backend takes I420 without a colour conversion (it is v4l2loopback's
  format; the OBS backends repack it into NV12 or UYVY), where BGR costs them one conversion
  (two on macOS), so a BGR pipeline paid for the conversion at the end anyway;
* the student changes only luma, so its output is Y + residual, with U and V passed through;
* every per-pixel stage after the model touches 1.5 bytes per pixel instead of BGR's 3.

Layout: OpenCV's `COLOR_BGR2YUV_I420`, one uint8 array of (3H/2) x W: the H x W Y plane, then
the (H/2) x (W/2) U and V planes, each stored flat. BT.601 limited range (Y 16..235), the
coefficients libyuv uses too. I420 needs an even width and height, so a frame with an odd one
loses its last row or column (the virtual camera's format is even anyway).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from vcam.errors import VcamError

Y_BLACK, Y_RANGE = 16, 219  # limited-range luma: Y = 16 + 219 * gray / 255


def size(frame: np.ndarray) -> tuple[int, int]:
    """(width, height) of an I420 frame; a clear error for anything else."""
    rows, width = frame.shape[:2] if frame.ndim == 2 else (0, 0)
    height = rows * 2 // 3
    if frame.dtype != np.uint8 or height < 2 or rows != height * 3 // 2 or height % 2 or width % 2:
        raise VcamError(f"expected an I420 frame (uint8, 3H/2 x W with even W and H), got {frame.dtype} {frame.shape}")
    return width, height


def planes(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Y (H x W), U and V ((H/2) x (W/2)) planes of an I420 frame, as writable views."""
    width, height = size(frame)
    flat = frame.reshape(-1)
    area, quarter = width * height, width * height // 4
    chroma = (height // 2, width // 2)
    return (frame[:height], flat[area : area + quarter].reshape(chroma), flat[area + quarter :].reshape(chroma))


def on_luma(fn: Callable[[np.ndarray], np.ndarray], frame: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """`fn` (plane -> plane) applied to the Y plane of an I420 frame, U and V copied: how a
    single-plane sharpener (the classical baselines) works on video, as the student does.
    Written into `out` when it has the shape."""
    height = size(frame)[1]
    if out is None or out.shape != frame.shape:
        out = np.empty_like(frame)
    out[:height] = fn(frame[:height])
    out[height:] = frame[height:]
    return out


def to_i420(bgr: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """A BGR frame as I420, cropped to even size; written into `out` when it has the shape."""
    h, w = bgr.shape[0] // 2 * 2, bgr.shape[1] // 2 * 2
    if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8 or h < 2 or w < 2:
        raise VcamError(f"expected an HxWx3 uint8 BGR frame of at least 2x2, got {bgr.dtype} {bgr.shape}")
    if out is None or out.shape != (h * 3 // 2, w):
        out = np.empty((h * 3 // 2, w), np.uint8)
    cv2.cvtColor(bgr[:h, :w], cv2.COLOR_BGR2YUV_I420, dst=out)
    return out


def to_bgr(frame: np.ndarray) -> np.ndarray:
    """An I420 frame as a new BGR array (for the preview window, video files and tests)."""
    size(frame)
    return cv2.cvtColor(frame, cv2.COLOR_YUV2BGR_I420)
