"""Camera source: real OpenCV capture from clips the tests write; fake webcams only for what this
machine lacks (a camera that stays silent, a camera that stops)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from support.clips import frame_index

from vcam.camera import CameraSource, SourceEnded, open_file, open_source
from vcam.errors import SourceError


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


class SilentWebcam:
    """A webcam that opens but never delivers a frame (driver stuck, or taken by another app)."""

    def __init__(self) -> None:
        self.released = threading.Event()

    def read(self) -> tuple[bool, None]:
        time.sleep(0.01)
        return False, None

    def set(self, prop: int, value: float) -> bool:
        return False

    def release(self) -> None:
        self.released.set()


class UnpluggedWebcam(SilentWebcam):
    """Delivers a few frames, then nothing (unplugged mid-call)."""

    def __init__(self, frames: int) -> None:
        super().__init__()
        self.left = frames

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.left > 0:
            self.left -= 1
            return True, np.zeros((4, 6, 3), np.uint8)
        return super().read()


def test_file_source_delivers_its_frames_and_loops(make_clip) -> None:
    clip = make_clip(frames=4, fps=200)
    with open_source(str(clip)) as source:
        assert source.size == (64, 48)
        assert source.fps == 200
        seen = []
        while len(seen) < 10:
            item = source.read(1.0)
            if item is not None:
                seen.append(frame_index(item[0]))
    assert set(seen) <= {0, 1, 2, 3}
    assert source.frames_read >= 10  # more than the clip holds: it looped


def test_file_source_is_paced_at_its_own_fps(make_clip) -> None:
    clip = make_clip(frames=4, fps=20)
    start = time.perf_counter()
    with open_source(str(clip)) as source:
        time.sleep(0.3)
        elapsed = time.perf_counter() - start
        # Unpaced, a 64x48 MJPG clip decodes at thousands of fps.
        assert source.frames_read <= elapsed * 20 + 2


def test_slow_consumer_gets_the_newest_frame_and_drops_are_counted(make_clip) -> None:
    clip = make_clip(frames=6, fps=100)
    with open_source(str(clip)) as source:
        wait_until(lambda: source.frames_read >= 4)  # the consumer is "busy" meanwhile
        before = source.frames_read
        frame, _ = source.read(1.0)
        dropped = source.frames_dropped
        after = source.frames_read
        newest = {(k - 1) % 6 for k in range(before, after + 1)}
        assert frame_index(frame) in newest
        # Everything before the frame handed over was overwritten unseen.
        assert before - 1 <= dropped <= after - 1


def test_frames_carry_their_capture_time(clip: Path) -> None:
    with open_source(str(clip)) as source:
        first = source.read(1.0)
        second = source.read(1.0)
    assert first is not None and second is not None
    assert first[1] < second[1] <= time.perf_counter()


def test_file_is_resized_to_the_requested_mode(clip: Path) -> None:
    with open_source(str(clip), 641, 481) as source:
        assert source.size == (641, 481)
        frame, _ = source.read(1.0)
    assert frame.shape == (481, 641, 3)


def test_close_stops_the_reader_and_releases_the_capture() -> None:
    webcam = UnpluggedWebcam(frames=1000)
    source = CameraSource(webcam, "camera 0", fps=30)
    source.close()
    assert webcam.released.wait(1.0)
    assert not [t for t in threading.enumerate() if t.name == "vcam-source[camera 0]"]


def test_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not found") as info:
        open_source(str(tmp_path / "nope.mp4"))
    assert "as the source" in str(info.value) and "\n" not in str(info.value)


def test_undecodable_file_is_one_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    with pytest.raises(SourceError, match="cannot be decoded"):
        open_source(str(junk))


@pytest.mark.parametrize("spec", ["7", "/dev/video7"])
def test_missing_camera_points_to_a_file_source(spec: str) -> None:
    with pytest.raises(SourceError, match=f"no camera at {spec}") as info:
        open_source(spec)
    assert "video file as the source" in str(info.value)


def test_camera_that_sends_nothing_is_reported_not_waited_on() -> None:
    webcam = SilentWebcam()
    with pytest.raises(SourceError, match="camera 0 opened but sent no frames within 0.3 s"):
        CameraSource(webcam, "camera 0", fps=30, timeout=0.3)
    assert webcam.released.wait(1.0)


def test_camera_that_stops_mid_stream_raises_on_read() -> None:
    with CameraSource(UnpluggedWebcam(frames=3), "camera 0", fps=30, timeout=0.3) as source:
        with pytest.raises(SourceError, match="camera 0 sent no frame for"):
            for _ in range(100):
                source.read(0.1)


def test_sources_that_are_not_videos_say_what_they_are(tmp_path: Path) -> None:
    import cv2

    cv2.imwrite(str(tmp_path / "photo.png"), np.zeros((8, 8, 3), np.uint8))
    for spec, fragment in [
        (tmp_path, "is a folder"),
        ("/dev/null", "is not a video file"),
        (tmp_path / "photo.png", "is a still image"),
        (tmp_path / "nope.avi", "not found"),
    ]:
        with pytest.raises(SourceError, match=fragment):
            open_source(str(spec))


def test_an_offline_file_hands_over_every_frame_once_then_ends(make_clip) -> None:
    clip = make_clip(frames=6, fps=5.0)  # paced, this would take over a second
    with open_file(clip, realtime=False) as source:
        assert source.frame_count == 6
        time.sleep(0.2)  # a slow consumer loses nothing: the reader waits for it
        started = time.monotonic()
        seen = [frame_index(source.read(1.0)[0]) for _ in range(6)]
        assert time.monotonic() - started < 1.0
        with pytest.raises(SourceEnded):
            source.read(1.0)
    assert seen == [0, 1, 2, 3, 4, 5]
