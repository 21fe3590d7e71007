import numpy as np
import pytest
from skimage.metrics import structural_similarity

from distill.metrics import psnr, psnr_y, ssim


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    a = (rng.random((40, 53, 3)) * 255).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    return a, b


def test_ssim_matches_scikit_image_gaussian_convention(pair):
    a, b = pair
    ref = structural_similarity(
        a, b, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert ssim(a, b) == pytest.approx(ref, abs=1e-6)
    assert ssim(a, a) == pytest.approx(1.0)


def test_psnr_known_value():
    a = np.zeros((8, 8, 3), np.uint8)
    b = a + 10
    assert psnr(a, b) == pytest.approx(10 * np.log10(255**2 / 100))
    assert psnr(a, a) == float("inf")


def test_psnr_y_ignores_pure_chroma_shifts():
    a = np.full((8, 8, 3), 128, np.uint8)
    b = a.copy()
    # +Δ on B and a luma-neutral compensation on G/R changes chroma far more than luma.
    b[..., 0] += 20
    b[..., 1] -= 4
    assert psnr_y(a, b) > psnr(a, b) + 10


def test_shape_mismatch_is_an_error(pair):
    with pytest.raises(ValueError, match="shape"):
        psnr(pair[0], pair[1][:-1])
