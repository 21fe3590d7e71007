"""Sinks: the SharpCam virtual camera through pyvirtualcam itself (with `MemoryBackend` standing
in for the v4l2loopback device) and its label lookup on a `FakeSysfs` tree."""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import pyvirtualcam

from vcam import v4l2loopback
from vcam.errors import DeviceError
from vcam.frames import to_i420
from vcam.sinks import FileSink, NullSink, VirtualCamSink, open_sink
from vcam.v4l2loopback import exclusive_caps, find_device, list_loopback_devices


def noise(width: int, height: int, seed: int = 0) -> np.ndarray:
    """An I420 frame of random pixels, cropped to even size like the pipeline's frames."""
    return to_i420(np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8))


def test_loopback_devices_are_found_by_label_and_cameras_ignored(fake_sysfs) -> None:
    fake_sysfs.add(0, "SharpCam", loopback=False)  # a real camera that happens to share the name
    fake_sysfs.add(4, "OBS Virtual Camera")
    sharpcam = fake_sysfs.add(10, "SharpCam")
    assert [label for _, label in list_loopback_devices(fake_sysfs.root)] == ["OBS Virtual Camera", "SharpCam"]
    assert find_device("SharpCam", fake_sysfs.root) == sharpcam
    assert find_device("Nope", fake_sysfs.root) is None


def test_exclusive_caps_is_read_for_the_device_in_creation_order(fake_sysfs) -> None:
    obs = fake_sysfs.add(4, "OBS Virtual Camera")
    sharpcam = fake_sysfs.add(10, "SharpCam")
    fake_sysfs.load_module("N,Y,N,N")
    assert exclusive_caps(obs, fake_sysfs.root) is False
    assert exclusive_caps(sharpcam, fake_sysfs.root) is True


def test_exclusive_caps_follows_video_nr_when_devices_were_numbered_out_of_order(fake_sysfs) -> None:
    sharpcam = fake_sysfs.add(10, "SharpCam")
    other = fake_sysfs.add(20, "Other")
    fake_sysfs.load_module("N,Y,N,N", video_nr="20,10,-1,-1")  # modprobe ... video_nr=20,10
    assert exclusive_caps(other, fake_sysfs.root) is False
    assert exclusive_caps(sharpcam, fake_sysfs.root) is True


def test_missing_sharpcam_device_gives_the_modprobe_fix(fake_sysfs, memory_backend) -> None:
    fake_sysfs.add(4, "OBS Virtual Camera")
    with pytest.raises(DeviceError) as info:
        VirtualCamSink(64, 48, 30, backend="memory", root=fake_sysfs.root)
    message = str(info.value)
    assert "sudo modprobe v4l2loopback devices=1 card_label=SharpCam exclusive_caps=1" in message
    assert "/etc/modules-load.d/v4l2loopback.conf" in message
    assert "/etc/modprobe.d/v4l2loopback.conf" in message
    assert "\n" not in message


def test_frames_reach_the_sharpcam_device_as_i420_with_even_size(fake_sysfs, memory_backend) -> None:
    device = fake_sysfs.add(10, "SharpCam")
    frame = noise(641, 481)
    assert frame.shape == (720, 640)
    with VirtualCamSink(641, 481, 1000, backend="memory", root=fake_sysfs.root) as sink:
        assert sink.device == device and (sink.width, sink.height) == (640, 480)
        sink.send(frame)
        sink.send(frame)
    sent = memory_backend.frames[device]
    assert len(sent) == 2
    np.testing.assert_array_equal(sent[0], frame)  # as it is: no conversion on the way


def test_device_option_overrides_the_label_lookup(fake_sysfs, memory_backend) -> None:
    fake_sysfs.add(10, "SharpCam")
    other = fake_sysfs.add(11, "Elsewhere")
    with VirtualCamSink(64, 48, 1000, other, backend="memory", root=fake_sysfs.root) as sink:
        sink.send(noise(64, 48))
    assert len(memory_backend.frames[other]) == 1


def test_a_new_camera_mode_is_scaled_to_the_device_format(fake_sysfs, memory_backend) -> None:
    device = fake_sysfs.add(10, "SharpCam")
    x = np.linspace(0, 255, 128, dtype=np.float32)
    large = to_i420(np.dstack([np.tile(x, (96, 1))] * 3).astype(np.uint8))  # a grey ramp
    with VirtualCamSink(64, 48, 1000, backend="memory", root=fake_sysfs.root) as sink:
        sink.send(large)
    sent = memory_backend.frames[device][0]
    assert sent.shape == (72, 64)
    expected = cv2.resize(large[:96], (64, 48), interpolation=cv2.INTER_AREA)
    assert np.abs(sent[:48].astype(int) - expected).max() <= 1  # the same ramp, scaled


def test_busy_device_is_one_clear_error_and_close_frees_it(fake_sysfs, memory_backend) -> None:
    fake_sysfs.add(10, "SharpCam")
    first = VirtualCamSink(64, 48, 30, backend="memory", root=fake_sysfs.root)
    with pytest.raises(DeviceError, match="is busy") as info:
        VirtualCamSink(64, 48, 30, backend="memory", root=fake_sysfs.root)
    assert "\n" not in str(info.value)
    first.close()
    VirtualCamSink(64, 48, 30, backend="memory", root=fake_sysfs.root).close()


def test_dead_device_stops_the_sink(fake_sysfs, memory_backend) -> None:
    device = fake_sysfs.add(10, "SharpCam")
    with VirtualCamSink(64, 48, 1000, backend="memory", root=fake_sysfs.root, check_interval=0) as sink:
        sink.send(noise(64, 48))
        os.remove(device)  # module unloaded: the node goes away, writes would fail silently
        with pytest.raises(DeviceError, match="disappeared"):
            sink.send(noise(64, 48))


class Streamers:
    """Stands in for `_start_output_stream`: hands out pipe write ends, so a test can tell
    whether each one is still open, and notes how many writers the device had at the time."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.calls: list[tuple[int, int]] = []  # (writers at the call, read end of the pipe)

    def __call__(self, device: str) -> int:
        read, write = os.pipe()
        os.set_blocking(read, False)
        self.calls.append((len(self.backend.in_use), read))
        return write

    @staticmethod
    def is_open(read: int) -> bool:
        try:
            return os.read(read, 1) != b""  # b"": every write end is closed
        except BlockingIOError:
            return True


def test_restart_workaround_holds_an_output_streamer_and_closes_it_last(
    fake_sysfs, memory_backend, monkeypatch
) -> None:
    """v4l2loopback <= 0.12.7 lets the next writer in only once an opener that started the output
    stream has closed (module docstring; tests/e2e checks it against the real driver)."""
    fake_sysfs.add(10, "SharpCam")
    monkeypatch.setitem(pyvirtualcam.camera.BACKENDS, "v4l2loopback", memory_backend)
    monkeypatch.setattr(v4l2loopback, "device_caps", lambda device: v4l2loopback.CAP_VIDEO_OUTPUT)
    streamers = Streamers(memory_backend)
    monkeypatch.setattr(v4l2loopback, "start_output_stream", streamers)
    seen_at_camera_close = []
    close_camera = memory_backend.close
    monkeypatch.setattr(
        memory_backend,
        "close",
        lambda self: (seen_at_camera_close.append(Streamers.is_open(streamers.calls[0][1])), close_camera(self)),
    )

    sink = VirtualCamSink(64, 48, 30, backend="v4l2loopback", root=fake_sysfs.root)
    assert [writers for writers, _ in streamers.calls] == [1]  # opened after the camera
    sink.send(noise(64, 48))
    sink.close()
    assert seen_at_camera_close == [True]  # still open when the camera closed...
    assert not Streamers.is_open(streamers.calls[0][1])  # ...and closed right after
    sink.close()


def test_a_device_left_stuck_by_an_earlier_writer_is_revived_first(fake_sysfs, memory_backend, monkeypatch) -> None:
    fake_sysfs.add(10, "SharpCam")
    monkeypatch.setitem(pyvirtualcam.camera.BACKENDS, "v4l2loopback", memory_backend)
    stuck = 0x05200000  # what the real stuck device announces: read/write, streaming, no video
    monkeypatch.setattr(v4l2loopback, "device_caps", lambda device: stuck)
    streamers = Streamers(memory_backend)
    monkeypatch.setattr(v4l2loopback, "start_output_stream", streamers)
    with VirtualCamSink(64, 48, 30, backend="v4l2loopback", root=fake_sysfs.root):
        (before, revive), (after, hold) = streamers.calls
        assert (before, after) == (0, 1)  # revived before the camera opened, held after
        assert not Streamers.is_open(revive) and Streamers.is_open(hold)


def test_restart_workaround_helpers_give_up_quietly_on_what_is_not_a_device(tmp_path) -> None:
    plain = tmp_path / "video10"
    plain.touch()
    assert v4l2loopback.device_caps(str(plain)) is None
    assert v4l2loopback.device_caps(str(tmp_path / "missing")) is None
    assert v4l2loopback.start_output_stream(str(tmp_path / "missing")) is None
    v4l2loopback.revive_if_stuck(str(plain))  # no error, nothing to do
    # what cannot be asked is never called unfed: opening it then says what is wrong
    assert not v4l2loopback.is_unfed(str(plain))
    assert not v4l2loopback.is_unfed(str(tmp_path / "missing"))
    assert not v4l2loopback.is_unfed("/dev/null")  # a character device, but no V4L2 one


class LoopbackIoctls:
    """The driver's answers to VIDIOC_QUERYCAP and VIDIOC_ENUM_FMT(capture), as 0.12 and 0.15 give
    them (this machine has no v4l2loopback; tests/e2e asks the real one): `driver` names it and
    it offers `formats` capture formats."""

    def __init__(self, driver: bytes, formats: int) -> None:
        self.driver, self.formats = driver, formats

    def __call__(self, fd: int, request: int, arg: bytearray) -> int:
        if request == v4l2loopback.VIDIOC_QUERYCAP:
            arg[:16] = self.driver.ljust(16, b"\0")
            return 0
        if request == v4l2loopback.VIDIOC_ENUM_FMT:
            index, kind = struct.unpack_from("<II", arg)
            if kind != v4l2loopback.BUF_TYPE_VIDEO_CAPTURE or index >= self.formats:
                raise OSError(errno.EINVAL, "Invalid argument")
            return 0
        raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")


@pytest.mark.parametrize(
    ("driver", "formats", "unfed"),
    [
        (b"v4l2 loopback", 0, True),  # 0.12 before a writer started; 0.15 exclusive_caps=1 without one
        (b"v4l2 loopback", 2, True),  # 0.15 exclusive_caps=0, nobody holds the format: all of them
        (b"v4l2 loopback", 1, False),  # a writer (or another opener) fixed the format
        (b"uvcvideo", 0, False),  # a real camera is never called unfed
    ],
)
def test_an_unfed_loopback_device_is_told_by_its_capture_formats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, driver: bytes, formats: int, unfed: bool
) -> None:
    device = tmp_path / "video20"
    device.touch()
    monkeypatch.setattr(fcntl, "ioctl", LoopbackIoctls(driver, formats))
    assert v4l2loopback.is_unfed(str(device)) is unfed


def test_nonexistent_device_through_the_real_linux_backend() -> None:
    if not os.path.isdir("/sys/class") or os.path.exists("/dev/video99"):
        pytest.skip("needs Linux without /dev/video99")
    with pytest.raises(DeviceError, match="/dev/video99 does not exist"):
        VirtualCamSink(64, 48, 30, "/dev/video99")


def test_file_sink_writes_a_playable_video_with_even_size(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    with open_sink(str(path), 641, 481, 30) as sink:
        assert isinstance(sink, FileSink)
        for seed in range(3):
            sink.send(noise(641, 481, seed))
    capture = cv2.VideoCapture(str(path))
    ok, frame = capture.read()
    assert ok and frame.shape == (480, 640, 3)
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 3


def test_file_sink_in_a_missing_folder_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DeviceError, match="cannot write video file"):
        open_sink(str(tmp_path / "no" / "out.mp4"), 64, 48, 30)


def test_null_sink_counts(tmp_path: Path) -> None:
    with open_sink("null", 64, 48, 30) as sink:
        assert isinstance(sink, NullSink)
        sink.send(noise(64, 48))
    assert sink.frames_sent == 1


def test_window_without_a_display_is_one_clear_error(monkeypatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if os.name != "posix" or not os.path.isdir("/sys/class"):
        pytest.skip("the display check is Linux-only")
    with pytest.raises(DeviceError, match="needs an X11 display and DISPLAY is not set"):
        open_sink("window", 64, 48, 30)


def test_unknown_sink_lists_the_choices() -> None:
    with pytest.raises(DeviceError, match="virtualcam, window, null"):
        open_sink("speakers", 64, 48, 30)


def test_window_sink_without_a_usable_display_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import platform

    from vcam.sinks import WindowSink

    if platform.system() != "Linux":
        pytest.skip("the X11 display check is Linux-only")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    with pytest.raises(DeviceError, match="DISPLAY is not set.*Wayland"):
        WindowSink()
    monkeypatch.setenv("DISPLAY", ":987")  # no X server there
    with pytest.raises(DeviceError, match="cannot open the display DISPLAY=:987"):
        WindowSink()


def test_the_virtual_camera_sends_frames_as_they_come_and_spreads_only_bursts(fake_sysfs, memory_backend) -> None:
    device = fake_sysfs.add(10, "SharpCam")
    frame = noise(64, 48)
    with VirtualCamSink(64, 48, 20, backend="memory", root=fake_sysfs.root) as sink:
        sink.send(frame)
        time.sleep(0.04)  # 0.8 of a period after the first: no waiting
        second = time.perf_counter()
        sink.send(frame)
        assert time.perf_counter() - second < 0.01
        third = time.perf_counter()
        sink.send(frame)  # right after the last one: a burst, held to half a period (25 ms)
        done = time.perf_counter()
        assert done - second >= 0.025 and done - third < 0.045
    assert len(memory_backend.frames[device]) == 3
