"""Temporal stage: a motion-aware EMA that removes frame-to-frame flicker without ghosting.

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
    w(t)  = strength * (1 - clamp((d - n) / max(2n, MIN_WIDTH_LEVELS), 0, 1)) ** 2
            for U and V as it is; for Y each weight covers the 2x2 pixels of its chroma
            sample, the granularity U and V have anyway
    out(t) = w * out(t-1) + (1 - w) * sharp(t)

A change within the noise (d <= n) is averaged with full strength; one above 3n takes the
current frame outright: no trails. This is FFmpeg hqdn3d's difference-driven weighting,
w(d) = (1 - d/255)^gamma, with the scale set by the measured noise instead of a constant. In
the design sweep on `synthetic_sequence` a fixed 16-level threshold removed 58 % of the flicker
at noise 8 but only 47 % at noise 12, and widening it to 24 levels cost up to 1.1 dB on moving
content; the noise-scaled ramp removes 83-85 % at noise 3..12 and loses at most 0.03 dB there.
Two choices in d came from the same sweep (noise 3..12, 1..6 px/frame, two scenes). Half
levels: Y at half resolution barely moves under noise 3, and in whole levels the median sat at
its floor of 1, where flicker fell by only 77 %. Chroma at an eighth: Y alone missed slow motion
of coloured texture (0.3 dB lost at noise 3); at a quarter or a half the chroma noise raised n
instead (0.2-0.4 dB lost at noise 12).
Y weights at the chroma samples' 2x2 granularity instead of upsampled bilinearly: 0.05 against
0.30 ms at 720p, flicker removed the same (83-84 %), moving-content PSNR up to 0.14 dB lower
than with bilinear weights (benchmarks/temporal.md: no row below -0.02 dB against no EMA).
Motion is measured on the input, not on the sharpened frame, because the model's own flicker
must not count as motion: it is what is being removed.

The whole output is smoothed, not only the model residual (sharp - in): smoothing the residual
alone leaves the camera's own noise flickering at full strength (benchmarks/temporal.md:
behind an unsharp mask it removes about 40 % of the flicker instead of about 85 %).

State resets (out = sharp) on a resolution change and on a scene cut (mean d above
SCENE_CUT_LEVELS: a camera switch, the light turned on), where history is meaningless.

Cost: the weights are laid out as an I420 frame, so the blend is four passes over 1.5 bytes
per pixel: out = round(h*w) + round(s*(1-w)), with w in 255ths (multiply, invert w, multiply,
add), the state kept in uint8: a float32 state would triple the memory traffic, and OpenCV has
no faster per-pixel blend (`cv2.blendLinear` measured 3x slower). Neither product can fall on a
rounding tie (s*w/255 is never a half-integer, 255 being odd), so round(s*(1-w)) =
s - round(s*w): the output is the same as rounding h*w and subtracting the rounded s*w, and
where history equals the new frame the two roundings cancel exactly, so the state cannot drift.
The dead band rounding leaves, about 0.5/(1-w) levels, is below visibility. The noise median
is found by binary search over the levels it is clamped to (count-above-threshold passes over
the half-resolution map, on every fourth row), which costs less than a 256-bin histogram.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from vcam.errors import VcamError
from vcam.frames import planes, size, to_i420

DEFAULT_STRENGTH = 0.85  # static pixels average over ~1/(1-0.85) ≈ 7 frames
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
        return np.rint(255 * self.strength * (1 - np.clip(ramp, 0, 1)) ** 2).astype(np.uint8)

    def __call__(self, frame_in: np.ndarray, frame_sharp: np.ndarray) -> np.ndarray:
        size(frame_in)
        if frame_sharp.shape != frame_in.shape or frame_sharp.dtype != np.uint8:
            raise VcamError(
                f"temporal filter needs two I420 frames of one size, got "
                f"{frame_in.dtype} {frame_in.shape} and "
                f"{frame_sharp.dtype} {frame_sharp.shape}"
            )
        if self.strength == 0.0:
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


def _as_float(frames: Sequence[np.ndarray]) -> np.ndarray:
    return np.stack(frames).astype(np.float32)


def flicker(outputs: Sequence[np.ndarray], truths: Sequence[np.ndarray]) -> float:
    """Mean |Δout - Δgt| (0..255 levels) over samples whose ground truth did not change.

    Δ is the frame-to-frame difference; on static truth Δgt = 0, so this is how much the output
    moves where nothing should: noise and model wobble, plus any trail decaying after motion.
    A sample is one array element: a Y, U or V value of an I420 frame.
    """
    out, gt = _as_float(outputs), _as_float(truths)
    d_out, d_gt = np.diff(out, axis=0), np.diff(gt, axis=0)
    return float(np.abs(d_out - d_gt)[d_gt == 0].mean())


def moving_psnr(outputs: Sequence[np.ndarray], truths: Sequence[np.ndarray]) -> float:
    """PSNR (dB) against ground truth over samples whose ground truth changed since the
    previous frame: trails and ghosts of moving content lower it."""
    out, gt = _as_float(outputs)[1:], _as_float(truths)
    moving = np.diff(gt, axis=0) != 0
    mse = float(((out - gt[1:]) ** 2)[moving].mean())
    return 10.0 * np.log10(255.0**2 / mse)


def _texture(rng: np.random.Generator, h: int, w: int, sigma: float) -> np.ndarray:
    noise = rng.uniform(0, 255, (h, w, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), sigma)
    smooth = (smooth - smooth.min()) / max(float(np.ptp(smooth)), 1e-6)
    return smooth * 200 + 28


def synthetic_sequence(
    frames: int = 30,
    height: int = 96,
    width: int = 128,
    noise: float = 8.0,
    speed: tuple[int, int] = (2, 1),
    seed: int = 0,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(noisy frames, ground truth frames), I420: a still textured scene in which a textured
    patch translates by `speed` (dx, dy) pixels per frame, re-noised with fresh Gaussian noise
    (std `noise` levels per RGB channel, as a camera sensor adds it) every frame — the
    reference sequence for `flicker` and `moving_psnr`."""
    rng = np.random.default_rng(seed)
    background = _texture(rng, height, width, 1.5)
    ph, pw = height // 3, width // 4
    patch = _texture(rng, ph, pw, 1.0)
    noisy, truth = [], []
    for t in range(frames):
        y = (height // 4 + speed[1] * t) % (height - ph)
        x = (width // 8 + speed[0] * t) % (width - pw)
        gt = background.copy()
        gt[y : y + ph, x : x + pw] = patch
        truth.append(to_i420(np.rint(gt).astype(np.uint8)))
        noisy.append(to_i420(np.clip(np.rint(gt + rng.normal(0, noise, gt.shape)), 0, 255).astype(np.uint8)))
    return noisy, truth
