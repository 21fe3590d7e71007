"""Temporal stage: a motion-aware moving average that removes frame-to-frame flicker without ghosting.

Sharpening amplifies sensor noise, and a small CNN adds its own frame-to-frame wobble; both
read as flicker in a static scene. Averaging over time removes it, but only where nothing moves,
so each pixel's history weight is driven by how much the *raw camera input* changed. Frames are
I420 (vcam/frames.py), whose U and V planes are already at half resolution:

    X(t)  = the camera frame at half resolution: Y scaled by a 2x2 mean (INTER_AREA, which
            halves the noise), U and V as they are
    d(t)  = box3x3(2 |ΔY| + (|ΔU| + |ΔV|) / 4)     per-pixel change, in half levels of Y;
                                                    colour-only motion counts too
    n(t)  = median of d(t), clamped to [MIN_NOISE_LEVELS, MAX_NOISE_LEVELS] (1 to 16 levels)
            and smoothed over frames: the camera's noise level (most of a video-call frame is
            static)
    w(t)  = smoothing * (1 - clamp((d - n) / max(2n, MIN_WIDTH_LEVELS), 0, 1)) ** 2
            for U and V as it is; for Y each weight covers the 2x2 pixels of its chroma
            sample, the granularity U and V have anyway
    out(t) = w * out(t-1) + (1 - w) * sharp(t)

A change within the noise (d <= n) is averaged with full weight; one above 3n takes the current
frame outright: no trails. This is FFmpeg hqdn3d's difference-driven weighting with its scale set
by the measured noise instead of a constant, so it holds from clean to noisy cameras. Motion is
measured on the input, not on the sharpened frame, because the model's own flicker is what is
being removed and must not count as motion. The whole output is smoothed, not only the model's
residual: smoothing the residual alone leaves the camera's own noise flickering.
benchmarks/temporal.md measures flicker and ghosting against other filters.

State resets (out = sharp) on a resolution change and on a scene cut (mean d above
SCENE_CUT_LEVELS: a camera switch, the light turned on), where history is meaningless.

The blend works on uint8 state laid out as an I420 frame (four passes over 1.5 bytes per pixel;
float state would triple the memory traffic): out = round(h*w) + round(s*(1-w)), w in 255ths.
Neither product can fall on a rounding tie (255 is odd), so where history equals the new frame
the roundings cancel exactly and the state cannot drift.
"""

from __future__ import annotations

import cv2
import numpy as np

from vcam.errors import VcamError
from vcam.frames import planes, size
from vcam.options import check

# d is in half levels of Y (see the module docstring); the constants below are in d's units.
CHROMA_WEIGHT = 0.25  # |ΔU| and |ΔV| count an eighth of a Y level each
MIN_NOISE_LEVELS = 2.0  # a near-noiseless camera still averages changes of one level
MIN_WIDTH_LEVELS = 8.0  # ... and tolerates small changes
MAX_NOISE_LEVELS = 32.0  # caps the damage when more than half of the frame moves
NOISE_SMOOTHING = 0.9  # per-frame EMA of the noise estimate, so weights do not pump
SCENE_CUT_LEVELS = 50.0  # mean d above which the frame is a new scene (two unrelated
# Set5/Set14 images: 120 in the median; noise of std 12: 14)
MEDIAN_ROW_STEP = 4  # rows of the motion map sampled for the noise median
_LEVELS = np.arange(256, dtype=np.float32)


class TemporalFilter:
    """Callable (camera frame, sharpened frame) -> smoothed frame, all I420 (vcam/frames.py).

    The returned array is a read-only view of the filter's state, valid until the next call:
    copy it before modifying or keeping it. `smoothing` is the weight history gets where nothing
    moves (0..1; 0 returns `frame_sharp` untouched).
    """

    def __init__(self, smoothing: float) -> None:
        self.smoothing = smoothing
        self._shape: tuple[int, ...] | None = None

    @property
    def smoothing(self) -> float:
        """History's weight where nothing moves; a new value applies from the next frame."""
        return self._smoothing

    @smoothing.setter
    def smoothing(self, value: float) -> None:
        check("ema", value)  # the option that sets it
        self._smoothing = float(value)

    def reset(self) -> None:
        """Forget the history: the next frame passes through unchanged."""
        self._shape = None

    def _allocate(self, frame: np.ndarray) -> None:
        width, height = size(frame)
        hh, hw = height // 2, width // 2
        self._small = np.empty((3 * hh, hw), np.uint8)  # half-resolution Y, then U, then V
        self._prev_small = np.empty_like(self._small)
        self._diff3 = np.empty_like(self._small)
        self._diff = np.empty((hh, hw), np.uint8)
        self._motion = np.empty_like(self._diff)
        self._above = np.empty_like(self._diff[::MEDIAN_ROW_STEP])
        self._weight = np.empty_like(frame)  # I420 layout: one weight per sample
        self._weight_pairs = np.empty((hh, hw, 2), np.uint8)  # a row of Y weights, each twice
        self._history = np.empty_like(frame)
        self._noise: float | None = None
        self._shape = frame.shape

    def _read_only(self) -> np.ndarray:
        view = self._history.view()
        view.flags.writeable = False
        return view

    def _median_motion(self) -> float:
        """Median of the motion map, clamped to [MIN_NOISE_LEVELS, MAX_NOISE_LEVELS]: the
        smallest level k in that range with at least half of the pixels <= k. Every
        MEDIAN_ROW_STEP-th row is plenty for a median (57,600 samples at 720p) and a quarter
        of the work."""
        rows = self._motion[::MEDIAN_ROW_STEP]
        half = rows.size / 2
        lo, hi = int(MIN_NOISE_LEVELS), int(MAX_NOISE_LEVELS)
        while lo < hi:
            k = (lo + hi) // 2
            cv2.threshold(rows, k, 1, cv2.THRESH_BINARY, dst=self._above)  # 1 where > k
            if rows.size - cv2.countNonZero(self._above) >= half:
                hi = k
            else:
                lo = k + 1
        return float(lo)

    def _weights_lut(self) -> np.ndarray:
        """w(d) as a 256-entry uint8 table (255 = keep history), from this frame's noise."""
        median = self._median_motion()
        self._noise = (
            median if self._noise is None else (NOISE_SMOOTHING * self._noise + (1 - NOISE_SMOOTHING) * median)
        )
        ramp = (_LEVELS - self._noise) / max(2 * self._noise, MIN_WIDTH_LEVELS)
        return np.rint(255 * self._smoothing * (1 - np.clip(ramp, 0, 1)) ** 2).astype(np.uint8)

    def __call__(self, frame_in: np.ndarray, frame_sharp: np.ndarray) -> np.ndarray:
        size(frame_in)
        if frame_sharp.shape != frame_in.shape or frame_sharp.dtype != np.uint8:
            raise VcamError(
                f"temporal filter needs two I420 frames of one size, got "
                f"{frame_in.dtype} {frame_in.shape} and "
                f"{frame_sharp.dtype} {frame_sharp.shape}"
            )
        if self._smoothing == 0.0:
            return frame_sharp
        fresh_state = self._shape != frame_in.shape
        if fresh_state:
            self._allocate(frame_in)
        y, u, v = planes(frame_in)
        hh = self._diff.shape[0]
        small = self._small
        cv2.resize(y, self._diff.shape[::-1], dst=small[:hh], interpolation=cv2.INTER_AREA)
        np.copyto(small[hh : 2 * hh], u)
        np.copyto(small[2 * hh :], v)
        cv2.absdiff(small, self._prev_small, dst=self._diff3)
        self._small, self._prev_small = self._prev_small, small
        cv2.addWeighted(
            self._diff3[hh : 2 * hh], CHROMA_WEIGHT, self._diff3[2 * hh :], CHROMA_WEIGHT, 0.0, dst=self._diff
        )
        cv2.scaleAdd(self._diff3[:hh], 2.0, self._diff, dst=self._diff)
        if fresh_state or cv2.mean(self._diff)[0] > SCENE_CUT_LEVELS:
            np.copyto(self._history, frame_sharp)
            return self._read_only()

        cv2.blur(self._diff, (3, 3), dst=self._motion)
        weight_y, weight_u, weight_v = planes(self._weight)
        cv2.LUT(self._motion, self._weights_lut(), dst=weight_u)
        np.copyto(weight_v, weight_u)
        # Y weights: each twice across (a merge), each row twice down (a broadcast copy)
        cv2.merge([weight_u, weight_u], dst=self._weight_pairs)
        rows = self._weight_pairs.reshape(weight_u.shape[0], 1, -1)
        np.copyto(weight_y.reshape(weight_u.shape[0], 2, -1), rows)
        weight = self._weight
        cv2.multiply(self._history, weight, dst=self._history, scale=1 / 255)  # h * w
        cv2.bitwise_not(weight, dst=weight)  # 255 - w
        cv2.multiply(frame_sharp, weight, dst=weight, scale=1 / 255)  # s * (1 - w)
        cv2.add(self._history, weight, dst=self._history)
        return self._read_only()
