"""Classical sharpening baselines: unsharp mask and FidelityFX CAS."""

import cv2
import numpy as np
import pytest

from vcam.baselines import cas, unsharp_mask
from vcam.errors import VcamError


def textured(height: int = 40, width: int = 56, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return cv2.normalize(cv2.GaussianBlur(noise, (0, 0), 1.5), None, 20, 235, cv2.NORM_MINMAX)


def step_edge() -> np.ndarray:
    img = np.full((16, 32, 3), 80, np.uint8)
    img[:, 16:] = 170
    return img


def cas_reference(img: np.ndarray, sharpness: float) -> np.ndarray:
    """AMD's CasFilter (CAS_BETTER_DIAGONALS, CAS_SLOW) written pixel-literally in float64."""
    x = np.pad(img.astype(np.float64) / 255, ((1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = img.shape[:2]
    a, b, c, d, e, f, g, hh, i = (x[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    mn = np.minimum.reduce([d, e, f, b, hh])
    mn = mn + np.minimum.reduce([mn, a, c, g, i])
    mx = np.maximum.reduce([d, e, f, b, hh])
    mx = mx + np.maximum.reduce([mx, a, c, g, i])
    amp = np.sqrt(np.clip(np.minimum(mn, 2.0 - mx) / mx, 0, 1))
    weight = amp * -1.0 / (8.0 + (5.0 - 8.0) * sharpness)
    out = np.clip((b * weight + d * weight + f * weight + hh * weight + e) / (1 + 4 * weight), 0, 1)
    return np.rint(out * 255).astype(np.uint8)


@pytest.mark.parametrize("sharpness", [0.0, 0.5, 1.0])
def test_cas_matches_the_reference_shader_math(sharpness: float) -> None:
    img = textured()
    assert np.abs(cas(img, sharpness).astype(int) - cas_reference(img, sharpness)).max() <= 1


@pytest.mark.parametrize("sharpen", [cas, unsharp_mask])
def test_flat_image_is_unchanged_and_type_is_kept(sharpen) -> None:
    flat = np.full((24, 30, 3), 123, np.uint8)
    out = sharpen(flat)
    assert out.dtype == np.uint8 and out.shape == flat.shape
    assert np.array_equal(out, flat)


@pytest.mark.parametrize("sharpen", [cas, unsharp_mask])
def test_step_edge_gains_contrast(sharpen) -> None:
    out = sharpen(step_edge()).astype(int)
    assert out[:, 15].max() < 80 and out[:, 16].min() > 170  # under/overshoot on each side
    assert np.array_equal(out[:, :10], np.full((16, 10, 3), 80))  # far from the edge: untouched


@pytest.mark.parametrize("sharpen", [cas, unsharp_mask])
def test_channel_order_does_not_matter(sharpen) -> None:
    img = textured()
    assert np.array_equal(sharpen(img[..., ::-1].copy()), sharpen(img)[..., ::-1])


def test_cas_sharpness_raises_the_effect() -> None:
    img = textured().astype(int)
    soft, strong = (np.abs(cas(img.astype(np.uint8), s) - img).mean() for s in (0.0, 1.0))
    assert strong > soft > 0


def test_unsharp_mask_amount_zero_is_identity_and_amount_scales_the_effect() -> None:
    img = textured()
    assert np.array_equal(unsharp_mask(img, amount=0.0), img)
    small, large = (np.abs(unsharp_mask(img, amount=a).astype(int) - img).mean() for a in (0.5, 2.0))
    assert large > 2 * small


def test_unsharp_mask_threshold_leaves_low_contrast_noise_alone() -> None:
    rng = np.random.default_rng(3)
    noisy = (128 + rng.integers(-2, 3, (32, 32, 3))).astype(np.uint8)
    assert not np.array_equal(unsharp_mask(noisy, amount=2.0), noisy)
    assert np.array_equal(unsharp_mask(noisy, amount=2.0, threshold=6), noisy)


@pytest.mark.parametrize(
    "call",
    [
        lambda img: cas(img, sharpness=1.5),
        lambda img: unsharp_mask(img, sigma=0.0),
        lambda img: unsharp_mask(img, amount=-1.0),
    ],
)
def test_out_of_range_parameters_are_refused(call) -> None:
    with pytest.raises(VcamError):
        call(textured())
