"""Classical sharpeners the student network is measured against, for speed (`vcam bench`) and
quality (the distillation evaluation). Both take and return uint8 images, HxWx3 in any channel
order (every channel is processed alike) or HxW (a single plane, such as the Y of an I420 frame);
`BaselineSharpener` puts one in the pipeline in the student's place.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import cv2
import numpy as np

from vcam.errors import VcamError
from vcam.frames import on_luma


def unsharp_mask(img: np.ndarray, amount: float = 1.0, sigma: float = 1.0, threshold: int = 0) -> np.ndarray:
    """out = img + amount * (img - GaussianBlur(img, sigma)), saturated to uint8.

    Pixels whose detail |img - blur| is below `threshold` levels are left untouched, the classic
    way to keep unsharp masking from amplifying flat-area noise.
    """
    if amount < 0 or sigma <= 0 or threshold < 0:
        raise VcamError(
            f"unsharp_mask needs amount >= 0, sigma > 0, threshold >= 0 (got {amount}, {sigma}, {threshold})"
        )
    blurred = cv2.GaussianBlur(img, (0, 0), sigma)
    out = cv2.addWeighted(img, 1.0 + amount, blurred, -amount, 0.0)
    if threshold > 0:
        np.copyto(out, img, where=cv2.absdiff(img, blurred) < threshold)
    return out


_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
_SQUARE = np.ones((3, 3), np.uint8)
_NEIGHBOURS = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], np.float32)


def cas(img: np.ndarray, sharpness: float = 0.5) -> np.ndarray:
    """AMD FidelityFX Contrast Adaptive Sharpening (CasFilter, no scaling, per channel).

    Per pixel e with 3x3 neighbourhood   a b c / d e f / g h i   (values in [0,1]):

        mn  = min(b,d,e,f,h) + min(a..i)        soft minimum ("better diagonals"), in [0,2]
        mx  = max(b,d,e,f,h) + max(a..i)        soft maximum, in [0,2]
        amp = sqrt(clamp(min(mn, 2 - mx) / mx, 0, 1))   headroom to the signal limits: little
                                                          sharpening where it would clip
        peak = -1 / lerp(8, 5, sharpness)       sharpness 0..1 -> -1/8..-1/5
        w   = amp * peak
        out = clamp((w * (b + d + f + h) + e) / (1 + 4 w), 0, 1)

    Borders replicate the edge pixel, like CAS's clamped texture reads. AMD's shader applies
    green's weight to all channels unless CAS_SLOW is defined; the per-channel CAS_SLOW path is
    used here because it is exact and keeps the function channel-order agnostic.
    """
    if not 0.0 <= sharpness <= 1.0:
        raise VcamError(f"cas sharpness must be between 0 and 1 (got {sharpness})")
    # Min/max are exact on uint8, so the soft extremes are computed there and summed into
    # float32 in one pass; the rest works in 0..255 units (amp is scale-free, the "2" becomes
    # 510) with in-place ops, because at 720p every float32 temporary costs about 1 ms.
    border = {"borderType": cv2.BORDER_REPLICATE}
    mn = cv2.add(cv2.erode(img, _CROSS, **border), cv2.erode(img, _SQUARE, **border), dtype=cv2.CV_32F)
    mx = cv2.add(cv2.dilate(img, _CROSS, **border), cv2.dilate(img, _SQUARE, **border), dtype=cv2.CV_32F)
    amp = np.subtract(np.float32(510), mx)
    np.minimum(amp, mn, out=amp)
    np.divide(amp, np.maximum(mx, np.float32(1e-3), out=mx), out=amp)
    np.sqrt(np.clip(amp, 0, 1, out=amp), out=amp)
    w = np.multiply(amp, np.float32(-1.0 / (8.0 + (5.0 - 8.0) * sharpness)), out=amp)
    out = cv2.filter2D(img, cv2.CV_32F, _NEIGHBOURS, **border)
    np.multiply(out, w, out=out)
    np.add(out, img, out=out)
    np.divide(out, np.multiply(w, np.float32(4), out=w) + np.float32(1), out=out)
    return np.clip(out + np.float32(0.5), 0, 255, out=out).astype(np.uint8)


class BaselineSharpener:
    """A plane sharpener as a pipeline `Sharpener` (vcam/sharpener.py): on the Y plane of I420
    frames, as the student works, U and V passed through; its whole cost is booked as "infer"."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray]) -> None:
        self._fn = fn
        self._out: np.ndarray | None = None
        self.timings = {"pre": 0.0, "infer": 0.0, "post": 0.0}

    def calling_thread(self) -> contextlib.AbstractContextManager[None]:
        """Nothing to set: no worker threads of its own, and OpenCV's default threading serves it."""
        return contextlib.nullcontext()

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        self._out = on_luma(self._fn, frame, self._out)
        self.timings["infer"] = (time.perf_counter() - t0) * 1e3
        return self._out
