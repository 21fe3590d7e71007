"""Model tiers: each name is a shipped file, the automatic choice is the largest that fits the
frame budget as measured on this machine (cached), and a run steps down when frames drop."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from vcam.camera import CameraSource
from vcam.errors import VcamError
from vcam.pipeline import Pipeline
from vcam.sharpener import OnnxSharpener
from vcam.sinks import NullSink
from vcam.temporal import TemporalFilter
from vcam.tiers import TIERS, StepDown, choose, cost, measure, tier_path


def test_every_tier_is_a_shipped_int8_model_of_rising_quality() -> None:
    """Ordered by what they give, validation PSNR: what each costs on a CPU is the calibration's
    to measure (weights and MACs do not order them: a half-resolution student costs more time
    per MAC than a quarter-resolution one)."""
    scores = [json.loads(OnnxSharpener(tier_path(t)).metadata["vcam.validation"])["psnr"] for t in TIERS]
    assert scores == sorted(scores) and len(set(scores)) == len(TIERS)
    for tier in TIERS:
        assert OnnxSharpener(tier_path(tier)).metadata["vcam.io"] == "luma8"


def test_a_named_tier_is_taken_as_it_is(tmp_path: Path) -> None:
    choice = choose(64, 48, 30, tier="fast", cache=tmp_path / "c.json")
    assert choice.tier == "fast" and choice.path == tier_path("fast") and "chosen by name" in choice.reason
    assert not (tmp_path / "c.json").exists()  # nothing to calibrate


def test_an_unknown_tier_names_the_known_ones() -> None:
    with pytest.raises(VcamError, match="unknown tier 'huge' — use one of fast, default, hq"):
        tier_path("huge")


def test_the_choice_is_the_largest_tier_that_fits_and_is_measured_once(tmp_path: Path) -> None:
    cache = tmp_path / "calibration.json"
    assert choose(64, 48, 30, cache=cache).tier == "hq"  # every tier keeps up with a thumbnail
    assert len(json.loads(cache.read_text())) == 1  # the first that fitted ends the search
    hopeless = choose(64, 48, 1e6, cache=cache)  # a microsecond per frame: nothing fits
    assert hopeless.tier == "fast" and "does not fit" in hopeless.reason
    known = json.loads(cache.read_text())
    assert len(known) == 1 + len(TIERS)  # costs are kept per rate: hq at 30 fps stays
    assert all(v["wall_ms"] > 0 and v["cpu_ms"] > 0 for v in known.values())
    choose(64, 48, 1e6, cache=cache)
    assert json.loads(cache.read_text()) == known  # cached: not measured again


def test_costs_are_kept_per_model_frame_size_and_rate(tmp_path: Path, sharpen_model: Path) -> None:
    cache = tmp_path / "calibration.json"
    small = cost(sharpen_model, 64, 48, 30, cache=cache)
    large = cost(sharpen_model, 320, 240, 30, cache=cache)
    cost(sharpen_model, 320, 240, 15, cache=cache)
    assert len(json.loads(cache.read_text())) == 3
    assert large.wall_ms > small.wall_ms  # 25x the pixels


def test_calibration_calls_the_model_once_per_frame_period(sharpen_model: Path) -> None:
    """Paced like a camera, so the CPU ONNX Runtime's workers spend between frames is counted."""
    start = time.perf_counter()
    measured = measure(sharpen_model, 64, 48, fps=20, runs=4)
    assert time.perf_counter() - start >= 4 / 20
    assert measured.wall_ms < 1000 / 20 and measured.cpu_ms > 0


def test_step_down_after_whole_seconds_of_drops() -> None:
    watch = StepDown("hq", seconds=3)
    assert watch.update(0.0, 0) is None
    assert [watch.update(t, 2 * t) for t in (1.0, 2.0, 3.0)] == [None, None, "default"]
    assert watch.update(4.0, 6) is None  # a quiet second starts the count again
    assert [watch.update(t, 10 * t) for t in (5.0, 6.0, 7.0)] == [None, None, "fast"]
    assert all(watch.update(t, 100 * t) is None for t in np.arange(8.0, 20.0))  # nothing lighter


class TexturedWebcam:
    def read(self) -> tuple[bool, np.ndarray]:
        return True, np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8)

    def set(self, prop: int, value: float) -> bool:
        return False

    def release(self) -> None:
        pass


def test_pipeline_continues_with_the_replacement_sharpener(sharpen_model: Path, identity_model: Path) -> None:
    first, second = OnnxSharpener(sharpen_model), OnnxSharpener(identity_model)
    assert second.timings["infer"] == 0
    calls: list[int] = []

    def replace(now: float, dropped: int) -> OnnxSharpener | None:
        calls.append(dropped)
        return second if len(calls) == 3 else None

    source = CameraSource(TexturedWebcam(), "webcam", fps=200, paced=True)
    with Pipeline(source, first, TemporalFilter(0.0), NullSink(), status_interval=None, replace=replace) as pipeline:
        assert pipeline.run(max_frames=6) == 6
        assert pipeline.sharpener is second and len(calls) == 6
    assert second.timings["infer"] > 0  # it ran the frames after the swap
