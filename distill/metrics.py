"""PSNR and SSIM exactly as restoration papers report them, on uint8 images.

SSIM follows Wang et al. (2004) with the conventions of scikit-image's
``structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=255)``: an 11×11 Gaussian window (σ 1.5, truncated at 3.5σ), K1 0.01, K2 0.03,
averaged over the channels and over the pixels whose window lies inside the image.
"""

from __future__ import annotations

import cv2
import numpy as np

_BGR_TO_Y = np.array([24.966, 128.553, 65.481]) / 255  # ITU-R BT.601 on 0..255, + 16 offset


def _check(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (all channels)."""
    _check(a, b)
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def y_channel(img: np.ndarray) -> np.ndarray:
    """BT.601 luma of a BGR uint8 image on the 16..235 scale (MATLAB's rgb2ycbcr, as SR papers)."""
    return img.astype(np.float64) @ _BGR_TO_Y + 16.0


def psnr_y(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB on the luma channel only."""
    _check(a, b)
    mse = np.mean((y_channel(a) - y_channel(b)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two uint8 images (per channel, then averaged)."""
    _check(a, b)
    x = a.astype(np.float64).reshape(a.shape[0], a.shape[1], -1)
    y = b.astype(np.float64).reshape(b.shape[0], b.shape[1], -1)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    r = 5  # skimage: int(3.5 * 1.5 + 0.5)

    def blur(img: np.ndarray) -> np.ndarray:
        out = cv2.GaussianBlur(img, (2 * r + 1, 2 * r + 1), 1.5, borderType=cv2.BORDER_REFLECT)
        return out.reshape(img.shape)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s[r:-r, r:-r].mean())
