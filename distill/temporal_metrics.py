"""Temporal metrics for the moving-average stage (vcam/temporal.py): flicker where nothing moves,
PSNR where something does, on a synthetic sequence whose ground truth is known. Numpy only, so
the runtime's tests and benchmarks/temporal.py use it without PyTorch.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from vcam.frames import to_i420


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
