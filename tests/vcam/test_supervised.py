"""A camera that goes silent and comes back, and one released on demand: the supervised source
keeps handing out pictures (dimmed stand-ins while the camera is away) and takes the camera back.
The webcam is a stand-in (this machine has none) that can be unplugged and plugged back."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from vcam.camera import CameraSource
from vcam.errors import SourceError
from vcam.supervised import SupervisedSource


class PluggableWebcam:
    """A 30 fps camera of flat grey frames that can be unplugged (reads fail, opening fails)."""

    def __init__(self) -> None:
        self.plugged = threading.Event()
        self.plugged.set()
        self.opened = 0
        self.released = 0

    def open(self) -> CameraSource:
        if not self.plugged.is_set():
            raise SourceError("no camera at 0")
        self.opened += 1
        return CameraSource(self, "camera 0", fps=30, paced=True, timeout=0.3)

    def read(self) -> tuple[bool, np.ndarray | None]:
        if not self.plugged.is_set():
            return False, None
        return True, np.full((48, 64, 3), 200, np.uint8)

    def set(self, prop: int, value: float) -> bool:
        return False

    def release(self) -> None:
        self.released += 1


def next_frame(source: SupervisedSource, deadline_s: float = 5.0) -> tuple[np.ndarray, bool]:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        item = source.read(0.1)
        if item is not None:
            return item[0], source.live
    pytest.fail("no frame within the deadline")


def test_an_unplugged_camera_is_stood_in_for_and_taken_back_when_it_returns() -> None:
    webcam = PluggableWebcam()
    with SupervisedSource(webcam.open, webcam.open()) as source:
        frame, live = next_frame(source)
        assert live and frame.mean() == 200
        webcam.plugged.clear()
        stand_ins = 0
        while stand_ins < 5:  # frames keep coming: the last picture, dimmed, with a note
            frame, live = next_frame(source)
            if not live:
                stand_ins += 1
                assert 40 < frame.mean() < 100 and frame.max() > 200  # dimmed, the note is bright
        assert source.state == "reconnecting"
        webcam.plugged.set()
        back = time.monotonic()
        while not next_frame(source)[1]:
            pass
        assert time.monotonic() - back < 2.0
        assert source.state == "live" and webcam.opened == 2 and webcam.released == 1


def test_released_on_demand_then_taken_again() -> None:
    webcam = PluggableWebcam()
    with SupervisedSource(webcam.open, webcam.open()) as source:
        next_frame(source)
        source.set_demand(False)
        assert webcam.released == 1 and source.state == "idle"
        first, live = next_frame(source)
        assert not live
        t = time.monotonic()
        next_frame(source)
        assert time.monotonic() - t > 0.8  # idle pictures come once a second
        source.set_demand(True)
        t = time.monotonic()
        while not next_frame(source)[1]:
            pass
        assert time.monotonic() - t < 1.0 and webcam.opened == 2
        assert source.frames_read > 0


def test_the_pipeline_publishes_stand_ins_without_the_model_and_keeps_running(sharpen_model) -> None:
    from vcam.pipeline import Pipeline
    from vcam.sharpener import OnnxSharpener
    from vcam.sinks import Sink
    from vcam.temporal import TemporalFilter

    class Pairs(Sink):
        def __init__(self) -> None:
            self.unchanged: list[bool] = []

        def send(self, frame: np.ndarray, source: np.ndarray | None = None) -> None:
            self.unchanged.append(bool(np.array_equal(frame, source)))

    webcam = PluggableWebcam()
    sink = Pairs()
    source = SupervisedSource(webcam.open, webcam.open())
    with Pipeline(source, OnnxSharpener(sharpen_model), TemporalFilter(0.0), sink, status_interval=None) as pipeline:
        pipeline.run(max_frames=3)
        webcam.plugged.clear()
        pipeline.run(max_frames=15)  # spans the 0.3 s of silence and the stand-ins after it
    assert sink.unchanged[:3] == [False] * 3  # the model's frames
    assert sink.unchanged[-5:] == [True] * 5  # stand-ins, published as they are
