"""Pipeline end to end: clip file -> real ONNX Runtime session on a tiny model -> temporal filter
-> sink (null, file, or the SharpCam device through pyvirtualcam's `MemoryBackend`)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from support import onnx_models

from vcam.baselines import BaselineSharpener, unsharp_mask
from vcam.camera import CameraSource, open_source
from vcam.errors import ModelError, SourceError, VcamError
from vcam.frames import to_bgr, to_i420
from vcam.options import DEFAULTS, StartOptions
from vcam.pipeline import STAGES, Pipeline, open_pipeline
from vcam.sharpener import OnnxSharpener
from vcam.sinks import NullSink, VirtualCamSink
from vcam.temporal import TemporalFilter


class ModeSwitchingWebcam:
    """A webcam that changes resolution after a few frames (another app changed its mode)."""

    def __init__(self) -> None:
        self.count = 0

    def read(self) -> tuple[bool, np.ndarray]:
        self.count += 1
        size = (48, 64, 3) if self.count <= 4 else (60, 80, 3)
        return True, np.random.default_rng(self.count).integers(0, 256, size, np.uint8)

    def set(self, prop: int, value: float) -> bool:
        return False

    def release(self) -> None:
        pass


@pytest.mark.parametrize("width, height", [(641, 481), (3, 3)])  # 3x3: 2x2 once even
def test_odd_size_clip_through_model_and_temporal_to_null_sink(
    textured_clip: Path, sharpen_model: Path, width: int, height: int
) -> None:
    with open_pipeline(
        StartOptions(source=str(textured_clip), model=str(sharpen_model), sink="null", width=width, height=height),
        status_interval=None,
    ) as pipeline:
        assert pipeline.run(max_frames=5) == 5
        assert pipeline.sink.frames_sent == 5
        times = pipeline.times.percentiles()
    assert set(times) == set(STAGES)
    assert times["infer"]["p50"] > 0
    assert times["e2e"]["p50"] >= times["infer"]["p50"]


def test_odd_size_clip_to_a_video_file(textured_clip: Path, sharpen_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    with open_pipeline(
        StartOptions(source=str(textured_clip), model=str(sharpen_model), sink=str(out), width=641, height=481),
        status_interval=None,
    ) as pipeline:
        pipeline.run(max_frames=4)
    capture = cv2.VideoCapture(str(out))
    ok, frame = capture.read()
    assert ok and frame.shape == (480, 640, 3)
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 4


def test_identity_model_without_smoothing_publishes_the_camera_frame(
    textured_clip: Path, tmp_path: Path, fake_sysfs, memory_backend
) -> None:
    device = fake_sysfs.add(10, "SharpCam")
    zero = onnx_models.make_luma8_model(tmp_path / "zero.onnx", amount=0.0)  # residual 0
    with open_pipeline(
        StartOptions(source=str(textured_clip), model=str(zero), sink="virtualcam", width=641, height=481, ema=0.0),
        status_interval=None,
        backend="memory",
        root=fake_sysfs.root,
    ) as pipeline:
        pipeline.run(max_frames=3)
    capture = cv2.VideoCapture(str(textured_clip))
    clip_frames = [to_i420(cv2.resize(capture.read()[1], (641, 481), interpolation=cv2.INTER_AREA)) for _ in range(8)]
    sent = memory_backend.frames[device]
    assert len(sent) == 3
    for published in sent:
        assert any(np.array_equal(published, frame) for frame in clip_frames)


def test_sharpen_model_raises_edge_energy(textured_clip: Path, sharpen_model: Path, fake_sysfs, memory_backend) -> None:
    device = fake_sysfs.add(10, "SharpCam")
    with open_pipeline(
        StartOptions(
            source=str(textured_clip), model=str(sharpen_model), sink="virtualcam", width=96, height=64, ema=0.0
        ),
        status_interval=None,
        backend="memory",
        root=fake_sysfs.root,
    ) as pipeline:
        pipeline.run(max_frames=2)

    def edges(img: np.ndarray) -> float:
        return float(np.abs(cv2.Laplacian(img.astype(np.float32), cv2.CV_32F)).mean())

    capture = cv2.VideoCapture(str(textured_clip))
    sharpest_input = max(edges(capture.read()[1]) for _ in range(8))
    for published in memory_backend.frames[device]:
        assert edges(to_bgr(published)) > 1.1 * sharpest_input


def test_stops_within_a_second_and_a_second_start_reuses_the_device(
    clip: Path, identity_model: Path, fake_sysfs, memory_backend
) -> None:
    fake_sysfs.add(10, "SharpCam")
    options = dict(status_interval=None, backend="memory", root=fake_sysfs.root)
    for _ in range(2):  # the second start fails with "busy" unless the first released it
        with open_pipeline(
            StartOptions(source=str(clip), model=str(identity_model), sink="virtualcam"), **options
        ) as pipeline:
            stop = threading.Event()
            runner = threading.Thread(target=pipeline.run, args=(stop,))
            runner.start()
            while pipeline.frames_out < 2:
                runner.join(0.01)
                assert runner.is_alive()
            stop.set()
            runner.join(1.0)
            assert not runner.is_alive()


def test_a_camera_mode_change_flows_through(identity_model: Path, fake_sysfs, memory_backend) -> None:
    device = fake_sysfs.add(10, "SharpCam")
    source = CameraSource(ModeSwitchingWebcam(), "camera 0", fps=1000, paced=True)
    sink = VirtualCamSink(*source.size, 1000, backend="memory", root=fake_sysfs.root)
    with Pipeline(
        source, OnnxSharpener(identity_model), TemporalFilter(DEFAULTS.ema), sink, status_interval=None
    ) as pipeline:
        assert pipeline.run(max_frames=8) == 8  # frames 5.. are 80x60: temporal state resets
    assert {frame.shape for frame in memory_backend.frames[device]} == {(72, 64)}


def test_a_failing_stage_becomes_one_line(clip: Path, identity_model: Path) -> None:
    def broken_temporal(frame: np.ndarray, sharp: np.ndarray) -> np.ndarray:
        raise ValueError("boom\nsecond line")

    with Pipeline(
        open_source(str(clip)), OnnxSharpener(identity_model), broken_temporal, NullSink(), status_interval=None
    ) as pipeline:
        with pytest.raises(VcamError, match="^temporal stage failed: ValueError: boom$"):
            pipeline.run(max_frames=1)


def test_bad_model_is_reported_before_the_camera_opens(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        open_pipeline(
            StartOptions(source=str(tmp_path / "missing.avi"), model=str(tmp_path / "missing.onnx"), sink="null")
        )


def test_a_failing_sink_releases_the_camera(clip: Path, identity_model: Path, fake_sysfs, memory_backend) -> None:
    with pytest.raises(VcamError, match="no v4l2loopback device labelled SharpCam"):
        open_pipeline(
            StartOptions(source=str(clip), model=str(identity_model), sink="virtualcam"),
            backend="memory",
            root=fake_sysfs.root,
        )
    # Nothing left holding the clip or a thread: a null-sink start right after works.
    with open_pipeline(
        StartOptions(source=str(clip), model=str(identity_model), sink="null"), status_interval=None
    ) as pipeline:
        assert pipeline.run(max_frames=1) == 1


def test_missing_source_is_a_source_error(tmp_path: Path, identity_model: Path) -> None:
    with pytest.raises(SourceError, match="not found"):
        open_pipeline(StartOptions(source=str(tmp_path / "nope.avi"), model=str(identity_model), sink="null"))


@pytest.mark.parametrize("baseline, inside", [(False, 1), (True, 3)])
def test_the_loop_runs_under_the_sharpeners_thread_settings_and_sets_them_back(
    clip: Path, identity_model: Path, baseline: bool, inside: int
) -> None:
    """The ONNX sharpener runs OpenCV single-threaded beside its workers; a baseline keeps
    OpenCV's own threading."""
    seen = []

    def temporal(frame: np.ndarray, sharp: np.ndarray) -> np.ndarray:
        seen.append(cv2.getNumThreads())
        return sharp

    original = cv2.getNumThreads()
    cv2.setNumThreads(3)
    try:
        sharpener = BaselineSharpener(unsharp_mask) if baseline else OnnxSharpener(identity_model)
        with Pipeline(open_source(str(clip)), sharpener, temporal, NullSink(), status_interval=None) as pipeline:
            pipeline.run(max_frames=2)
        assert seen == [inside, inside]
        assert cv2.getNumThreads() == 3
    finally:
        cv2.setNumThreads(original)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="thread affinity is Linux-only")
def test_loop_thread_runs_on_the_sharpeners_caller_cpus_and_is_set_back(clip: Path, identity_model: Path) -> None:
    sharpener = OnnxSharpener(identity_model)
    original = os.sched_getaffinity(0)
    sharpener.caller_cpus = frozenset({min(original)})
    seen = []

    def temporal(frame: np.ndarray, sharp: np.ndarray) -> np.ndarray:
        seen.append(os.sched_getaffinity(0))
        return sharp

    with Pipeline(open_source(str(clip)), sharpener, temporal, NullSink(), status_interval=None) as pipeline:
        pipeline.run(max_frames=2)
    assert seen == [{min(original)}] * 2
    assert os.sched_getaffinity(0) == original


def test_stage_times_of_the_last_frames_only() -> None:
    from vcam.pipeline import StageTimes

    times = StageTimes(capacity=4)
    for ms in range(1, 11):  # the ring keeps 7..10
        times.add([float(ms)] * len(STAGES))
    assert times.percentiles((50,))["e2e"]["p50"] == 8.5
    assert times.percentiles((50,), last=2)["e2e"]["p50"] == 9.5  # frames 9 and 10
