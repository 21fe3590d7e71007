import cv2
import numpy as np
import pytest

from distill import degrade as D
from distill.metrics import psnr


@pytest.fixture(scope="module")
def clean():
    rng = np.random.default_rng(3)
    img = cv2.resize((rng.random((12, 12, 3)) * 255).astype(np.uint8), (96, 80), interpolation=cv2.INTER_CUBIC)
    cv2.putText(img, "Sharp", (4, 50), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2)
    return img


def test_same_seed_same_result_and_different_seeds_differ(clean):
    a = D.degrade(clean, np.random.default_rng(7))
    b = D.degrade(clean, np.random.default_rng(7))
    c = D.degrade(clean, np.random.default_rng(8))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.dtype == np.uint8 and a.shape == clean.shape


def test_benchmark_degradation_is_fixed_per_index(clean):
    assert np.array_equal(D.benchmark_degrade(clean, 3), D.benchmark_degrade(clean, 3))
    assert not np.array_equal(D.benchmark_degrade(clean, 3), D.benchmark_degrade(clean, 4))


def test_odd_sizes_survive_every_stage(clean):
    odd = clean[:45, :67]
    for seed in range(12):
        assert D.degrade(odd, np.random.default_rng(seed)).shape == odd.shape
    assert D.h264_intra(odd, 30).shape == odd.shape


def test_degradation_strength_stays_in_a_webcam_range(clean):
    scores = [psnr(D.degrade(clean, np.random.default_rng(s)), clean) for s in range(40)]
    finite = [s for s in scores if np.isfinite(s)]
    # Visibly degraded on average, never destroyed: a network can learn to undo this.
    assert 20 < np.median(finite) < 34
    assert min(finite) > 14


@pytest.mark.parametrize(
    "kernel", [D.disk_kernel(2.3), D.linear_motion_kernel(9, 0.7), D.trajectory_kernel(11, np.random.default_rng(0))]
)
def test_blur_kernels_preserve_brightness(kernel):
    assert kernel.sum() == pytest.approx(1.0, abs=1e-5)
    assert (kernel >= 0).all()


def test_each_stage_degrades(clean):
    x = clean.astype(np.float32) / 255
    rng = np.random.default_rng(0)
    for stage in (D.defocus, D.motion_blur, D.sensor_rescale, D.sensor_noise):
        y = (np.clip(stage(x, rng), 0, 1) * 255 + 0.5).astype(np.uint8)
        assert 15 < psnr(y, clean) < 45, stage.__name__
    assert psnr(D.jpeg(clean, 40), clean) < psnr(D.jpeg(clean, 90), clean)
    assert psnr(D.h264_intra(clean, 38), clean) < psnr(D.h264_intra(clean, 26), clean)


def test_the_benchmark_mix_is_the_default_and_the_wide_one_draws_wider(clean):
    benchmark = [D.degrade(clean, np.random.default_rng(s)) for s in range(8)]
    same = [D.degrade(clean, np.random.default_rng(s), D.BENCHMARK_MIX) for s in range(8)]
    wide = [D.degrade(clean, np.random.default_rng(s), D.WIDE_MIX) for s in range(8)]
    assert all(np.array_equal(a, b) for a, b in zip(benchmark, same))
    assert any(not np.array_equal(a, b) for a, b in zip(benchmark, wide))


def _sharper_than_soft(img: np.ndarray, clean: np.ndarray) -> bool:
    """Whether `img` is closer to `clean` than to a softened `clean`: no blur on the way."""
    return psnr(img, clean) > psnr(img, cv2.GaussianBlur(clean, (0, 0), 1.0))


def test_the_sharp_mix_adds_chains_without_optics(clean):
    seeds = range(40)
    sharp = [D.degrade(clean, np.random.default_rng(s), D.SHARP_MIX) for s in seeds]
    benchmark = [D.degrade(clean, np.random.default_rng(s)) for s in seeds]
    unblurred = sum(_sharper_than_soft(x, clean) for x in sharp)
    assert unblurred > sum(_sharper_than_soft(x, clean) for x in benchmark) + 5
    assert unblurred < len(seeds)  # and the benchmark's chains besides


def _detail(img: np.ndarray) -> float:
    return float(np.abs(cv2.Laplacian(img, cv2.CV_32F)).mean())


def test_isp_sharpening_adds_halos_to_luma_and_leaves_chroma(clean):
    x = cv2.GaussianBlur(clean, (0, 0), 1.5).astype(np.float32) / 255
    for seed in range(4):
        y = D.isp_sharpening(x, np.random.default_rng(seed))
        # the same change in R, G and B: their differences (the chroma) are untouched
        assert np.allclose(y - y.mean(axis=2, keepdims=True), x - x.mean(axis=2, keepdims=True), atol=1e-5)
        assert _detail(y) > _detail(x)


def test_example_grid_layout(clean):
    grid = D.example_grid([clean, clean], variants=3, size=64)
    assert grid.shape == (2 * 68, 4 * 68, 3)


def test_unseen_family_is_fixed_per_index_and_not_the_training_chain(clean):
    from distill.unseen import unseen_degrade

    a, b = unseen_degrade(clean, 2), unseen_degrade(clean, 2)
    assert np.array_equal(a, b) and a.dtype == np.uint8 and a.shape == clean.shape
    assert not np.array_equal(a, unseen_degrade(clean, 3))
    assert not np.array_equal(a, D.benchmark_degrade(clean, 2))
    assert all(psnr(unseen_degrade(clean, i), clean) < 40 for i in range(4))  # it always degrades


def test_sharp_camera_frames_are_fixed_per_index_and_not_blurred(clean):
    a = D.sharp_camera_degrade(clean, 1)
    assert np.array_equal(a, D.sharp_camera_degrade(clean, 1)) and a.dtype == np.uint8 and a.shape == clean.shape
    assert not np.array_equal(a, D.sharp_camera_degrade(clean, 2))
    frames = [D.sharp_camera_degrade(clean, i) for i in range(6)]
    assert all(psnr(f, clean) < 60 for f in frames)  # compressed always
    # No optics: on average closer to the sharp image than to a softened one (the benchmark's
    # chains, mostly blurred, the other way round)
    soft = cv2.GaussianBlur(clean, (0, 0), 1.0)
    assert np.mean([psnr(f, clean) - psnr(f, soft) for f in frames]) > 0
    assert np.mean([psnr(b, clean) - psnr(b, soft) for b in (D.benchmark_degrade(clean, i) for i in range(6))]) < 0


def test_unseen_family_leaves_out_one_stage_and_keeps_the_other_draws(clean):
    from distill.unseen import STAGES, unseen_degrade

    full = [unseen_degrade(clean, i) for i in range(6)]
    for stage in STAGES:
        without = [unseen_degrade(clean, i, without=stage) for i in range(6)]
        assert np.array_equal(without[0], unseen_degrade(clean, 0, without=stage))  # still fixed per index
        changed = [not np.array_equal(w, f) for w, f in zip(without, full)]
        # the blur, the noise and the codec run on every image; the other two on some
        assert all(changed) if stage in ("lens blur", "noise", "WebP") else any(changed)
    # the other draws are unchanged: the chain without its codec, compressed at one of the
    # family's qualities, is the full chain exactly
    before_codec = unseen_degrade(clean, 1, without="WebP")
    encoded = [cv2.imencode(".webp", before_codec, [cv2.IMWRITE_WEBP_QUALITY, q])[1] for q in range(15, 61)]
    assert any(np.array_equal(cv2.imdecode(e, cv2.IMREAD_COLOR), full[1]) for e in encoded)
    with pytest.raises(ValueError, match="no stage 'jpeg'"):
        unseen_degrade(clean, 0, without="jpeg")
