"""Temporal stage: a motion-aware EMA that removes frame-to-frame flicker without ghosting.

Sharpening amplifies sensor noise, and a small CNN adds its own frame-to-frame wobble; both
read as flicker in a static scene. Averaging over time removes it, but only where nothing moves,
so each pixel's history weight is driven by how much the *raw camera input* changed:

    X(t)  = camera frame at half resolution (INTER_AREA, a 2x2 mean: halves the noise)
    d(t)  = box3x3(luma(|X(t) - X(t-1)|))      per-pixel change; luma of the per-channel
                                                absolute differences, so colour-only motion counts
    n(t)  = median of d(t), clamped to [1, MAX_NOISE_LEVELS] and smoothed over frames: the
            camera's noise level (most of a video-call frame is static)
    w(t)  = strength * (1 - clamp((d - n) / max(2n, MIN_WIDTH_LEVELS), 0, 1)) ** 2
            upsampled bilinearly to full resolution
    out(t) = w * out(t-1) + (1 - w) * sharp(t)

A change within the noise (d <= n) is averaged with full strength; one above 3n takes the
current frame outright: no trails. This is FFmpeg hqdn3d's difference-driven weighting,
w(d) = (1 - d/255)^gamma, with the scale set by the measured noise instead of a constant. In
the design sweep on `synthetic_sequence` a fixed 16-level threshold removed 58 % of the flicker
at noise 8 but only 47 % at noise 12, and widening it to 24 levels cost up to 1.1 dB on moving
content; the noise-scaled ramp removes 78-87 % at noise 3..12 without losing 0.1 dB there.
Motion is measured on the input, not on the sharpened frame, because the model's own flicker
must not count as motion: it is what is being removed.

The whole output is smoothed, not only the model residual (sharp - in): smoothing the residual
alone leaves the camera's own noise flickering at full strength (benchmarks/temporal.md:
behind an unsharp mask it removes about 40 % of the flicker instead of about 85 %).

State resets (out = sharp) on a resolution change and on a scene cut (mean d above
SCENE_CUT_LEVELS: a camera switch, the light turned on), where history is meaningless.

Cost: the state is kept in uint8 and blended as out = round(h*w) + round(s*(1-w)), with w in
255ths, in four full-resolution passes (multiply, invert w, multiply, add): a float32 state
would triple the memory traffic of a 720p frame, and OpenCV has no faster per-pixel blend
(`cv2.blendLinear` measured 3x slower). Neither product can fall on a rounding tie (s*w/255
is never a half-integer, 255 being odd), so round(s*(1-w)) = s - round(s*w): the output is the
same as rounding h*w and subtracting the rounded s*w, and where history equals the new frame
the two roundings cancel exactly, so the state cannot drift. The dead band rounding leaves,
about 0.5/(1-w) levels, is below visibility. The noise median is found by binary search over
the 16 levels it is clamped to (four count-above-threshold passes over the half-resolution
map, on every fourth row), which costs less than a 256-bin histogram.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from vcam.errors import VcamError

DEFAULT_STRENGTH = 0.85   # static pixels average over ~1/(1-0.85) ≈ 7 frames
MIN_WIDTH_LEVELS = 4.0    # a near-noiseless camera still tolerates small changes
MAX_NOISE_LEVELS = 16.0   # caps the damage when more than half of the frame moves
NOISE_SMOOTHING = 0.9     # per-frame EMA of the noise estimate, so weights do not pump
SCENE_CUT_LEVELS = 25.0   # mean d (0..255) above which the frame is a new scene (unrelated
                          # images differ by 30+, camera noise alone by under 10)
MEDIAN_ROW_STEP = 4       # rows of the motion map sampled for the noise median
_LEVELS = np.arange(256, dtype=np.float32)


class TemporalFilter:
    """Callable (camera frame, sharpened frame) -> smoothed frame, all BGR uint8 HxWx3.

    The returned array is a read-only view of the filter's state, valid until the next call:
    copy it before modifying or keeping it. Strength 0 returns `frame_sharp` untouched.
    """

    def __init__(self, strength: float = DEFAULT_STRENGTH) -> None:
        if not 0.0 <= strength <= 1.0:
            raise VcamError(f"--ema must be between 0 and 1 (got {strength})")
        self.strength = float(strength)
        self._shape: tuple[int, ...] | None = None

    def reset(self) -> None:
        """Forget the history: the next frame passes through unchanged."""
        self._shape = None

    def _allocate(self, shape: tuple[int, ...]) -> None:
        h, w = shape[:2]
        hh, hw = max(h // 2, 1), max(w // 2, 1)
        self._small = np.empty((hh, hw, 3), np.uint8)
        self._prev_small = np.empty_like(self._small)
        self._diff3 = np.empty_like(self._small)
        self._diff = np.empty((hh, hw), np.uint8)
        self._motion = np.empty_like(self._diff)
        self._weight_small = np.empty_like(self._diff)
        self._above = np.empty_like(self._diff[::MEDIAN_ROW_STEP])
        self._weight = np.empty((h, w), np.uint8)
        self._weight3 = np.empty((h, w, 3), np.uint8)
        self._history = np.empty_like(self._weight3)
        self._noise: float | None = None
        self._shape = shape

    def _read_only(self) -> np.ndarray:
        view = self._history.view()
        view.flags.writeable = False
        return view

    def _median_motion(self) -> float:
        """Median of the motion map, clamped to [1, MAX_NOISE_LEVELS]: the smallest level k in
        that range with at least half of the pixels <= k. Every MEDIAN_ROW_STEP-th row is
        plenty for a median (57,600 samples at 720p) and a quarter of the work."""
        rows = self._motion[::MEDIAN_ROW_STEP]
        half = rows.size / 2
        lo, hi = 1, int(MAX_NOISE_LEVELS)
        while lo < hi:
            k = (lo + hi) // 2
            cv2.compare(rows, k, cv2.CMP_GT, dst=self._above)
            if rows.size - cv2.countNonZero(self._above) >= half:
                hi = k
            else:
                lo = k + 1
        return float(lo)

    def _weights_lut(self) -> np.ndarray:
        """w(d) as a 256-entry uint8 table (255 = keep history), from this frame's noise."""
        median = self._median_motion()
        self._noise = median if self._noise is None else (
            NOISE_SMOOTHING * self._noise + (1 - NOISE_SMOOTHING) * median)
        ramp = (_LEVELS - self._noise) / max(2 * self._noise, MIN_WIDTH_LEVELS)
        return np.rint(255 * self.strength * (1 - np.clip(ramp, 0, 1)) ** 2).astype(np.uint8)

    def __call__(self, frame_in: np.ndarray, frame_sharp: np.ndarray) -> np.ndarray:
        if (frame_in.shape != frame_sharp.shape or frame_in.ndim != 3 or frame_in.shape[2] != 3
                or frame_in.dtype != np.uint8 or frame_sharp.dtype != np.uint8):
            raise VcamError(f"temporal filter needs two HxWx3 uint8 frames of one size, got "
                            f"{frame_in.dtype} {frame_in.shape} and "
                            f"{frame_sharp.dtype} {frame_sharp.shape}")
        if self.strength == 0.0:
            return frame_sharp
        fresh_state = self._shape != frame_in.shape
        if fresh_state:
            self._allocate(frame_in.shape)
        cv2.resize(frame_in, self._diff.shape[::-1], dst=self._small, interpolation=cv2.INTER_AREA)
        cv2.absdiff(self._small, self._prev_small, dst=self._diff3)
        self._small, self._prev_small = self._prev_small, self._small
        cv2.cvtColor(self._diff3, cv2.COLOR_BGR2GRAY, dst=self._diff)
        if fresh_state or cv2.mean(self._diff)[0] > SCENE_CUT_LEVELS:
            np.copyto(self._history, frame_sharp)
            return self._read_only()

        cv2.blur(self._diff, (3, 3), dst=self._motion)
        cv2.LUT(self._motion, self._weights_lut(), dst=self._weight_small)
        cv2.resize(self._weight_small, self._weight.shape[::-1], dst=self._weight,
                   interpolation=cv2.INTER_LINEAR)
        weight3 = self._weight3
        cv2.cvtColor(self._weight, cv2.COLOR_GRAY2BGR, dst=weight3)
        cv2.multiply(self._history, weight3, dst=self._history, scale=1 / 255)  # h * w
        cv2.bitwise_not(weight3, dst=weight3)                                    # 255 - w
        cv2.multiply(frame_sharp, weight3, dst=weight3, scale=1 / 255)           # s * (1 - w)
        cv2.add(self._history, weight3, dst=self._history)
        return self._read_only()


def _as_float(frames: Sequence[np.ndarray]) -> np.ndarray:
    return np.stack(frames).astype(np.float32)


def flicker(outputs: Sequence[np.ndarray], truths: Sequence[np.ndarray]) -> float:
    """Mean |Δout - Δgt| (0..255 levels) over pixels whose ground truth did not change.

    Δ is the frame-to-frame difference; on static truth Δgt = 0, so this is how much the output
    moves where nothing should: noise and model wobble, plus any trail decaying after motion.
    """
    out, gt = _as_float(outputs), _as_float(truths)
    d_out, d_gt = np.diff(out, axis=0), np.diff(gt, axis=0)
    static = np.all(d_gt == 0, axis=-1)
    return float(np.abs(d_out - d_gt)[static].mean())


def moving_psnr(outputs: Sequence[np.ndarray], truths: Sequence[np.ndarray]) -> float:
    """PSNR (dB) against ground truth over pixels whose ground truth changed since the previous
    frame: trails and ghosts of moving content lower it."""
    out, gt = _as_float(outputs)[1:], _as_float(truths)
    moving = np.any(np.diff(gt, axis=0) != 0, axis=-1)
    mse = float(((out - gt[1:]) ** 2)[moving].mean())
    return 10.0 * np.log10(255.0 ** 2 / mse)


def _texture(rng: np.random.Generator, h: int, w: int, sigma: float) -> np.ndarray:
    noise = rng.uniform(0, 255, (h, w, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), sigma)
    smooth = (smooth - smooth.min()) / max(float(np.ptp(smooth)), 1e-6)
    return smooth * 200 + 28


def synthetic_sequence(frames: int = 30, height: int = 96, width: int = 128, noise: float = 8.0,
                       speed: tuple[int, int] = (2, 1), seed: int = 0
                       ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(noisy frames, ground truth frames): a still textured scene in which a textured patch
    translates by `speed` (dx, dy) pixels per frame, re-noised with fresh Gaussian noise (std
    `noise` levels) every frame — the reference sequence for `flicker` and `moving_psnr`."""
    rng = np.random.default_rng(seed)
    background = _texture(rng, height, width, 1.5)
    ph, pw = height // 3, width // 4
    patch = _texture(rng, ph, pw, 1.0)
    noisy, truth = [], []
    for t in range(frames):
        y = (height // 4 + speed[1] * t) % (height - ph)
        x = (width // 8 + speed[0] * t) % (width - pw)
        gt = background.copy()
        gt[y:y + ph, x:x + pw] = patch
        truth.append(np.rint(gt).astype(np.uint8))
        noisy.append(np.clip(np.rint(gt + rng.normal(0, noise, gt.shape)), 0, 255).astype(np.uint8))
    return noisy, truth
