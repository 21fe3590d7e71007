"""Sharpener on real ONNX Runtime sessions over tiny models built in tmp_path."""

import os
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from support import onnx_models

import vcam.tiers
from vcam.errors import ModelError, VcamError
from vcam.forms import Luma8, RgbFloat
from vcam.frames import to_bgr, to_i420
from vcam.session import thread_ids
from vcam.sharpener import OnnxSharpener
from vcam.tiers import tier_path


def textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random BGR image: edges to sharpen, no saturated pixels to hide errors."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return cv2.normalize(cv2.GaussianBlur(noise, (0, 0), 2.0), None, 30, 220, cv2.NORM_MINMAX)


def with_extremes(height: int, width: int) -> np.ndarray:
    """`textured` with near-white top and near-black bottom rows: an add must saturate there,
    not wrap."""
    frame = textured(height, width)
    frame[:8] = 250
    frame[-8:] = 4
    return frame


def run_luma8(
    tmp_path: Path, frame: np.ndarray, size_multiple: int, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(output, the luma the model saw, its residual - 128) of a luma8 model (3x the Laplacian)
    on `frame`, whose picture is height x width."""
    model = onnx_models.make_luma8_model(tmp_path / "luma8.onnx", amount=3.0, size_multiple=size_multiple)
    out = OnnxSharpener(model)(frame).copy()
    form = Luma8(height, width, size_multiple)  # what the sharpener hands the model
    if frame.ndim == 2:
        form.pre_i420(frame)
    else:
        form.pre(frame)
    (raw,) = ort.InferenceSession(str(model)).run(None, {"input": form.input})
    luma = form.input[0, 0, :height, :width].astype(int)
    residual = raw[0, 0, :height, :width].astype(int) - 128
    assert residual.min() < -10 and residual.max() > 10  # the model really changes the frame
    return out, luma, residual


def edge_energy(img: np.ndarray) -> float:
    return float(np.abs(cv2.Laplacian(img.astype(np.float32), cv2.CV_32F)).mean())


@pytest.mark.parametrize("threads", [None, 1])
@pytest.mark.parametrize("size_multiple", [1, 8])
def test_identity_model_returns_odd_sized_frame_exactly(
    tmp_path: Path, size_multiple: int, threads: int | None
) -> None:
    model = onnx_models.make_identity_model(tmp_path / "id.onnx", size_multiple=size_multiple)
    frame = np.random.default_rng(1).integers(0, 256, (481, 641, 3), dtype=np.uint8)
    out = OnnxSharpener(model, threads=threads)(frame)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert np.array_equal(out, frame)
    # the model sees exactly RGB / 255 (reflect-padded), as float32 computes it
    form = RgbFloat(481, 641, size_multiple)
    form.pre(frame)
    padded = form.input.shape[2:]
    rgb = frame[..., ::-1].transpose(2, 0, 1).astype(np.float32) * np.float32(1 / 255)
    assert np.array_equal(form.input[0, :, :481, :641], rgb)
    assert padded == (481, 641) if size_multiple == 1 else padded == (488, 648)


def test_model_sees_rgb_and_output_is_converted_back_to_bgr(tmp_path: Path) -> None:
    model = onnx_models.make_channel_gain_model(tmp_path / "red.onnx", gains=(1.0, 0.0, 0.0))
    frame = textured(48, 64)
    out = OnnxSharpener(model)(frame)
    assert np.array_equal(out[..., 2], frame[..., 2])  # red is BGR channel 2
    assert not out[..., :2].any()


def test_sharpen_model_keeps_odd_shape_and_raises_edge_energy(tmp_path: Path) -> None:
    model = onnx_models.make_sharpen_model(tmp_path / "sharp.onnx", size_multiple=4)
    frame = textured(481, 641)
    out = OnnxSharpener(model)(frame)
    assert out.shape == frame.shape
    assert edge_energy(out) > 1.5 * edge_energy(frame)


def test_out_of_range_model_output_is_clamped_per_pixel(tmp_path: Path) -> None:
    model = onnx_models.make_sharpen_model(tmp_path / "strong.onnx", amount=4.0)
    frame = textured(60, 80)
    form = RgbFloat(60, 80)
    form.pre(frame)
    (raw,) = ort.InferenceSession(str(model)).run(None, {"input": form.input})
    raw = raw[0]
    form.output[0] = raw * 1.6 - 0.3  # as an unclipped model would: below 0 and above 1
    out = form.post(frame)
    bgr = (np.clip(raw * 1.6 - 0.3, 0, 1) * 255).transpose(1, 2, 0)[..., ::-1]
    assert (bgr == 0).any() and (bgr == 255).any()
    assert np.array_equal(out, np.rint(bgr).astype(np.uint8))


def test_infinite_model_output_spoils_only_its_own_pixel(tmp_path: Path) -> None:
    model = onnx_models.make_reciprocal_model(tmp_path / "reciprocal.onnx")
    frame = textured(48, 64)
    frame[10, 20] = 0  # 1/0 = inf
    out = OnnxSharpener(model)(frame)
    others = np.ones(frame.shape[:2], bool)
    others[10, 20] = False
    assert (out[others] == 255).all()  # 1/x >= 1 saturates to white


def test_strength_blends_input_and_model_output(tmp_path: Path) -> None:
    model = onnx_models.make_sharpen_model(tmp_path / "sharp.onnx")
    frame = textured(60, 80)
    full = OnnxSharpener(model, strength=1.0)(frame).astype(int)
    half = OnnxSharpener(model, strength=0.5)(frame).astype(int)
    none = OnnxSharpener(model, strength=0.0)(frame)
    assert np.array_equal(none, frame)
    assert np.abs(full - frame).max() > 10  # the model really changes the frame
    assert np.abs(half - (full + frame) / 2).max() <= 1


@pytest.mark.parametrize("size_multiple", [1, 8])
def test_luma8_model_sees_the_frames_luma_and_its_residual_is_added_to_each_channel(
    tmp_path: Path, size_multiple: int
) -> None:
    frame = with_extremes(61, 83)
    out, luma, residual = run_luma8(tmp_path, frame, size_multiple, 61, 83)
    assert np.array_equal(luma, cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    expected = np.clip(frame.astype(int) + residual[..., None], 0, 255)
    assert (expected == 0).any() and (expected == 255).any()
    assert np.array_equal(out, expected)


def test_luma8_identity_returns_the_frame_and_strength_scales_the_residual(tmp_path: Path) -> None:
    frame = textured(50, 70)
    identity = onnx_models.make_luma8_model(tmp_path / "zero.onnx", amount=0.0)
    assert np.array_equal(OnnxSharpener(identity)(frame), frame)
    model = onnx_models.make_luma8_model(tmp_path / "luma8.onnx", amount=1.0)
    full = OnnxSharpener(model, strength=1.0)(frame).astype(int)
    half = OnnxSharpener(model, strength=0.5)(frame).astype(int)
    assert np.array_equal(OnnxSharpener(model, strength=0.0)(frame), frame)
    assert np.abs(full - frame).max() > 10 and 0 < full.min() and full.max() < 255
    assert np.abs(half - (full + frame) / 2).max() <= 1


@pytest.mark.parametrize("size_multiple", [1, 8])
def test_luma8_on_i420_adds_the_residual_to_y_and_passes_chroma_through(tmp_path: Path, size_multiple: int) -> None:
    bgr = with_extremes(62, 84)
    frame = to_i420(bgr)
    out, luma, residual = run_luma8(tmp_path, frame, size_multiple, 62, 84)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert np.abs(luma - cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)).max() <= 1  # full-range luma
    y = frame[:62].astype(int)
    expected = np.clip(np.rint(y + residual * 219 / 255), 0, 255)  # in limited-range units
    assert (expected == 255).any() and (expected == 0).any()
    assert np.abs(out[:62] - expected).max() <= 1 and (out[:62] == expected).mean() > 0.99
    assert np.array_equal(out[62:], frame[62:])  # U and V untouched


def test_luma8_on_i420_at_strength_zero_or_with_a_zero_residual_returns_the_frame(tmp_path: Path) -> None:
    frame = to_i420(textured(50, 70))
    zero = onnx_models.make_luma8_model(tmp_path / "zero.onnx", amount=0.0)
    model = onnx_models.make_luma8_model(tmp_path / "luma8.onnx", amount=1.0)
    assert np.array_equal(OnnxSharpener(zero)(frame), frame)
    assert np.array_equal(OnnxSharpener(model, strength=0.0)(frame), frame)
    full = OnnxSharpener(model)(frame).astype(int)
    half = OnnxSharpener(model, strength=0.5)(frame).astype(int)
    assert np.abs(full - frame).max() > 10
    assert np.abs(half - (full + frame) / 2).max() <= 1


def test_rgb_form_on_i420_runs_the_model_on_the_frames_colours(tmp_path: Path) -> None:
    model = onnx_models.make_channel_gain_model(tmp_path / "red.onnx", gains=(1.0, 0.0, 0.0))
    frame = to_i420(textured(48, 64))
    sharpener = OnnxSharpener(model)
    bgr = to_bgr(frame)
    only_red = bgr * np.array([0, 0, 1], np.uint8)
    assert np.array_equal(sharpener(frame), to_i420(only_red))
    assert np.array_equal(sharpener(bgr), only_red)  # one session serves both formats


@pytest.mark.parametrize("shape", [(47, 64), (48, 63), (72, 64, 2)])
def test_a_frame_that_is_neither_bgr_nor_i420_is_refused(tmp_path: Path, shape) -> None:
    model = onnx_models.make_identity_model(tmp_path / "id.onnx")
    with pytest.raises(VcamError, match="frame"):
        OnnxSharpener(model)(np.zeros(shape, np.uint8))


@pytest.mark.parametrize("strength", [1.0, 0.5])
@pytest.mark.parametrize(
    "frame",
    [with_extremes(61, 83), to_i420(with_extremes(62, 84)), to_i420(with_extremes(64, 88))],
    ids=["bgr", "i420-padded", "i420-whole-blocks"],
)
def test_a_packed_luma8_model_gives_what_the_unpacked_one_gives(tmp_path: Path, frame, strength: float) -> None:
    plain = onnx_models.make_luma8_model(tmp_path / "plain.onnx", amount=3.0, size_multiple=8)
    packed = onnx_models.make_luma8_model(tmp_path / "packed.onnx", amount=3.0, size_multiple=8, block=4)
    sharpener = OnnxSharpener(packed, strength=strength)
    out = sharpener(frame)
    assert sharpener.contract.block == 4
    assert Luma8(61, 83, 8, block=4).input.shape == (1, 16, 16, 22)  # 64x88 (padded), 4x4 blocks
    expected = OnnxSharpener(plain, strength=strength)(frame)
    assert np.abs(out.astype(int) - frame).max() > 10  # the model really changes the frame
    assert np.array_equal(out, expected)


@pytest.mark.parametrize(
    "meta, message",
    [
        ({"vcam.luma8_block": "3"}, "vcam.size_multiple=4 is not a multiple of vcam.luma8_block=3"),
        ({"vcam.luma8_block": "2"}, r"has 16 channels, expected 4 \(luma, vcam.io=luma8 in 2x2 blocks\)"),
        ({"vcam.luma8_block": "two"}, "vcam.luma8_block='two' is not a positive integer"),
    ],
)
def test_a_luma8_block_that_does_not_fit_is_refused(tmp_path: Path, meta: dict, message: str) -> None:
    path = onnx_models.make_luma8_model(tmp_path / "packed.onnx", size_multiple=4, block=4)
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {p.key: p.value for p in model.metadata_props} | meta)
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match=message):
        OnnxSharpener(path)


@pytest.mark.parametrize("strength", [-0.1, 3.0])
def test_strength_out_of_range_is_refused(tmp_path: Path, strength: float) -> None:
    model = onnx_models.make_identity_model(tmp_path / "id.onnx")
    with pytest.raises(VcamError, match="strength must be between 0 and 1"):
        OnnxSharpener(model, strength=strength)


@pytest.mark.parametrize(
    "maker, message",
    [
        (onnx_models.make_wrong_input_name_model, "model inputs are 'image', expected exactly one named 'input'"),
        (onnx_models.make_wrong_rank_model, r"input 'input' has shape \[3, 'H', 'W'\], expected \[1,3,H,W\]"),
        (onnx_models.make_int_input_model, r"input 'input' is tensor\(uint8\), expected tensor\(float\)"),
        (onnx_models.make_wrong_channels_model, "input 'input' has 4 channels, expected 3"),
        (onnx_models.make_static_shape_model, "fixed size 64x64, expected dynamic H and W"),
        (onnx_models.make_wrong_output_rank_model, r"output 'output' has shape \[3, 'H', 'W'\]"),
        (onnx_models.make_bad_size_multiple_model, "vcam.size_multiple='four' is not a positive integer"),
        (
            onnx_models.make_float_luma8_model,
            r"input 'input' is tensor\(float\), expected tensor\(uint8\) \(luma, vcam.io=luma8\)",
        ),
        (onnx_models.make_unknown_io_model, "metadata vcam.io='yuv' is not one of rgb, luma8"),
    ],
)
def test_contract_breaking_model_is_refused_in_one_line(tmp_path: Path, maker, message: str) -> None:
    model = maker(tmp_path / "broken.onnx")
    with pytest.raises(ModelError, match=message) as info:
        OnnxSharpener(model)
    assert "\n" not in str(info.value) and str(model) in str(info.value)


def test_file_that_is_not_onnx_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(b"\x00this is not a protobuf\xff" * 10)
    with pytest.raises(ModelError, match="is not a readable ONNX model") as info:
        OnnxSharpener(path)
    assert "\n" not in str(info.value)


def test_missing_model_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model file not found: .*name an existing ONNX model"):
        OnnxSharpener(tmp_path / "nope.onnx")


def test_model_that_changes_the_frame_size_fails_with_a_model_error(tmp_path: Path) -> None:
    sharpener = OnnxSharpener(onnx_models.make_downscale_model(tmp_path / "down.onnx"))
    with pytest.raises(
        ModelError,
        match=r"failed on a 64x48 input: it returns "
        r"\[1, 3, 24, 32\] for input \[1, 3, 48, 64\]; "
        r"the model must keep H and W",
    ):
        sharpener(textured(48, 64))


@pytest.mark.parametrize("name", ["cpu", "CPU", "CPUExecutionProvider"])
def test_provider_accepts_friendly_and_full_names(tmp_path: Path, name: str) -> None:
    model = onnx_models.make_identity_model(tmp_path / "id.onnx")
    assert OnnxSharpener(model, provider=name).providers == ["CPUExecutionProvider"]


def test_automatic_provider_choice_includes_cpu(tmp_path: Path) -> None:
    model = onnx_models.make_identity_model(tmp_path / "id.onnx")
    assert "CPUExecutionProvider" in OnnxSharpener(model).providers


def test_unknown_provider_lists_what_is_available(tmp_path: Path) -> None:
    model = onnx_models.make_identity_model(tmp_path / "id.onnx")
    with pytest.raises(
        ModelError,
        match=r"unknown or unavailable provider 'warp-drive'; "
        r"available here: .*cpu",
    ):
        OnnxSharpener(model, provider="warp-drive")


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="thread affinity is Linux-only")
def test_caller_cpus_avoid_every_pinned_worker_of_the_session(tmp_path: Path) -> None:
    model = onnx_models.make_identity_model(tmp_path / "id.onnx")
    before = thread_ids()
    sharpener = OnnxSharpener(model)
    workers = {tid: os.sched_getaffinity(tid) for tid in thread_ids() - before}
    allowed = os.sched_getaffinity(0)
    pinned = [cpus for cpus in workers.values() if cpus != allowed]
    if not pinned:  # a one-core machine: ORT starts no pinned worker
        assert sharpener.caller_cpus is None
        return
    assert sharpener.caller_cpus
    assert sharpener.caller_cpus <= allowed
    assert all(not (sharpener.caller_cpus & cpus) for cpus in pinned)


def test_caller_cpus_are_unset_when_workers_are_not_pinned(tmp_path: Path) -> None:
    """An explicit thread count leaves ORT's workers unpinned (one thread: no worker at all)."""
    model = onnx_models.make_identity_model(tmp_path / "id.onnx")
    assert OnnxSharpener(model, threads=1).caller_cpus is None
    assert OnnxSharpener(model, threads=2).caller_cpus is None


def test_timings_split_the_call_into_its_stages(tmp_path: Path) -> None:
    sharpener = OnnxSharpener(onnx_models.make_identity_model(tmp_path / "id.onnx"))
    frame = textured(480, 640)
    sharpener(frame)
    t0 = time.perf_counter()
    sharpener(frame)
    wall = (time.perf_counter() - t0) * 1e3
    assert set(sharpener.timings) == {"pre", "infer", "post"}
    assert all(ms > 0 for ms in sharpener.timings.values())
    assert sum(sharpener.timings.values()) <= wall


def test_output_buffer_is_reused_until_the_frame_size_changes(tmp_path: Path) -> None:
    sharpener = OnnxSharpener(onnx_models.make_identity_model(tmp_path / "id.onnx", size_multiple=4))
    first = sharpener(textured(48, 64, seed=1))
    second = sharpener(textured(48, 64, seed=2))
    assert second is first
    assert np.array_equal(second, textured(48, 64, seed=2))
    resized = sharpener(textured(50, 66))
    assert resized is not first and resized.shape == (50, 66, 3)


def test_metadata_is_read_and_missing_size_multiple_means_any_size(tmp_path: Path) -> None:
    model = onnx_models.make_identity_model(
        tmp_path / "id.onnx", size_multiple=None, metadata={"vcam.version": "1.2.3"}
    )
    sharpener = OnnxSharpener(model)
    assert sharpener.metadata["vcam.name"] == "identity"
    assert sharpener.metadata["vcam.version"] == "1.2.3"
    assert "vcam.size_multiple" not in sharpener.metadata
    assert sharpener.size_multiple == 1
    assert sharpener(textured(47, 63)).shape == (47, 63, 3)


def test_tier_paths_point_to_shipped_weights_or_say_use_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package_dirs = {"vcam.weights": tmp_path}
    monkeypatch.setattr(vcam.tiers.importlib.resources, "files", package_dirs.__getitem__)
    with pytest.raises(ModelError, match="the default tier is not installed.*name a model file"):
        tier_path("default")
    onnx_models.make_identity_model(tmp_path / "student.onnx")
    assert tier_path("default") == tmp_path / "student.onnx"


def test_models_from_an_uninstalled_source_tree_say_install_or_use_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(package: str):
        raise ModuleNotFoundError(f"No module named {package!r}")

    monkeypatch.setattr(vcam.tiers.importlib.resources, "files", not_installed)
    with pytest.raises(ModelError, match="no models are installed.*pip install.*name an ONNX model"):
        tier_path("default")


def test_providers_sharpcam_does_not_set_up_are_not_offered(tmp_path: Path) -> None:
    model = onnx_models.make_identity_model(tmp_path / "id.onnx")
    with pytest.raises(ModelError, match="unknown or unavailable provider 'azure'"):
        OnnxSharpener(model, provider="azure")
