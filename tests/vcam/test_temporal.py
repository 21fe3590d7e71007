"""Motion-aware EMA: proven on a synthetic sequence with known ground truth (I420 frames)."""

import cv2
import numpy as np
import pytest

from distill.temporal_metrics import flicker, moving_psnr, synthetic_sequence
from vcam.baselines import unsharp_mask
from vcam.errors import VcamError
from vcam.frames import on_luma, planes, to_i420
from vcam.options import DEFAULTS
from vcam.temporal import TemporalFilter


def sharpen_y(frame: np.ndarray) -> np.ndarray:
    """Unsharp masking of the Y plane: a model that amplifies the noise, as sharpeners do."""
    return on_luma(lambda y: unsharp_mask(y, amount=1.0), frame)


def run(filt: TemporalFilter, frames: list[np.ndarray], sharpen=lambda f: f) -> list[np.ndarray]:
    return [filt(frame, sharpen(frame)).copy() for frame in frames]


@pytest.mark.parametrize("sharpen", [lambda f: f, sharpen_y], ids=["identity-model", "noise-amplifying-model"])
@pytest.mark.parametrize("noise", [6.0, 10.0])
def test_flicker_halves_while_moving_content_keeps_its_psnr(sharpen, noise: float) -> None:
    noisy, truth = synthetic_sequence(frames=30, noise=noise, speed=(2, 1))
    plain = [sharpen(f) for f in noisy]
    smoothed = run(TemporalFilter(DEFAULTS.ema), noisy, sharpen)
    assert flicker(smoothed, truth) <= 0.5 * flicker(plain, truth)
    assert moving_psnr(smoothed, truth) >= moving_psnr(plain, truth) - 0.1


def test_metrics_see_flicker_and_ghosts() -> None:
    noisy, truth = synthetic_sequence(frames=6)
    assert flicker(truth, truth) == 0.0
    assert flicker(noisy, truth) > 5.0
    frozen = [truth[0]] * len(truth)  # the worst ghost: motion never shows
    assert moving_psnr(frozen, truth) < moving_psnr(noisy, truth) - 5.0


def test_smoothing_zero_passes_the_sharpened_frame_through() -> None:
    noisy, _ = synthetic_sequence(frames=4)
    filt = TemporalFilter(smoothing=0.0)
    for frame in noisy:
        sharp = sharpen_y(frame)
        assert filt(frame, sharp) is sharp


def test_output_is_uint8_of_the_input_shape_and_read_only() -> None:
    noisy, _ = synthetic_sequence(frames=3, height=46, width=62)  # not multiples of 4
    filt = TemporalFilter(DEFAULTS.ema)
    for frame in noisy:
        out = filt(frame, frame)
        assert out.dtype == np.uint8 and out.shape == frame.shape
        assert not out.flags.writeable


@pytest.mark.parametrize("height, width", [(2, 2), (2, 8), (8, 2)])
def test_the_smallest_frames_are_filtered_too(height: int, width: int) -> None:
    rng = np.random.default_rng(3)
    frames = [to_i420(rng.integers(100, 110, (height, width, 3), np.uint8)) for _ in range(3)]
    filt = TemporalFilter(DEFAULTS.ema)
    outputs = [filt(frame, frame).copy() for frame in frames]
    assert all(out.shape == frame.shape for out, frame in zip(outputs, frames))
    assert not np.array_equal(outputs[2], frames[2])  # small changes are averaged


def test_static_scene_is_smoothed_after_the_first_frame() -> None:
    noisy, _ = synthetic_sequence(frames=3)
    filt = TemporalFilter(DEFAULTS.ema)
    assert np.array_equal(filt(noisy[0], noisy[0]), noisy[0])  # nothing to average yet
    assert not np.array_equal(filt(noisy[1], noisy[1]), noisy[1])


def test_history_equal_to_the_frame_stays_equal_so_the_state_cannot_drift() -> None:
    frame = to_i420(np.random.default_rng(2).integers(0, 256, (36, 52, 3), np.uint8))
    filt = TemporalFilter(DEFAULTS.ema)
    for _ in range(10):  # static input: the full history weight, every pixel value
        assert np.array_equal(filt(frame, frame), frame)


def test_resolution_change_resets_the_history() -> None:
    small, _ = synthetic_sequence(frames=4, height=48, width=64)
    large, _ = synthetic_sequence(frames=2, height=60, width=80, seed=1)
    filt = TemporalFilter(DEFAULTS.ema)
    run(filt, small)
    assert np.array_equal(filt(large[0], large[0]), large[0])
    assert not np.array_equal(filt(large[1], large[1]), large[1])


def test_scene_cut_resets_the_history_even_where_the_frame_did_not_change() -> None:
    scene, _ = synthetic_sequence(frames=4)
    filt = TemporalFilter(DEFAULTS.ema)
    run(filt, scene[:3])
    cut = scene[3].copy()
    y = planes(cut)[0]
    y[24:] = cv2.add(y[24:], 50)  # the light goes on below the top quarter
    assert np.array_equal(filt(cut, cut), cut)  # the top quarter is not averaged either


def test_reset_forgets_the_history() -> None:
    noisy, _ = synthetic_sequence(frames=4)
    filt = TemporalFilter(DEFAULTS.ema)
    run(filt, noisy[:3])
    filt.reset()
    assert np.array_equal(filt(noisy[3], noisy[3]), noisy[3])


@pytest.mark.parametrize("strength", [-0.5, 1.5])
def test_smoothing_out_of_range_is_refused(strength: float) -> None:
    with pytest.raises(VcamError, match="ema must be between 0 and 1"):
        TemporalFilter(strength)


@pytest.mark.parametrize(
    "frame_in, frame_sharp, message",
    [
        (np.zeros((12, 8), np.uint8), np.zeros((12, 10), np.uint8), "two I420 frames of one size"),
        (np.zeros((12, 8), np.uint8), np.zeros((12, 8), np.float32), "two I420 frames of one size"),
        (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8), "expected an I420 frame"),
        (np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8), "expected an I420 frame"),
    ],
    ids=["sizes differ", "float frame", "bgr frames", "grey frames"],
)
def test_frames_that_do_not_match_are_refused(frame_in, frame_sharp, message: str) -> None:
    with pytest.raises(VcamError, match=message):
        TemporalFilter(DEFAULTS.ema)(frame_in, frame_sharp)
