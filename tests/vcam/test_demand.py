"""On demand, driven by real processes that open a file standing in for the SharpCam device
(the real driver is exercised in tests/e2e): readers are found through /proc, a streaming reader
(which maps the device) wakes the camera at once, a reader that maps nothing wakes it after the
listing time, an app that only opens the device to list it does not, and no reader lets it go."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vcam import demand
from vcam.demand import DemandWatch, UsageEvents, holders, maps

READER = """import mmap, sys, time
f = open(sys.argv[1], "rb")
if sys.argv[3] == "map":  # as a streaming reader maps the driver's buffers
    buffers = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
print("open", flush=True)
time.sleep(float(sys.argv[2]))
"""


@pytest.fixture
def reader() -> Iterator[Callable[..., subprocess.Popen]]:
    """Starts a process that opens a path (and maps it when `streaming`), keeps it open for
    `hold` seconds and exits; returns once it has opened it. Any still running at the end are
    killed."""
    started: list[subprocess.Popen] = []

    def start(path: Path, hold: float, *, streaming: bool = True) -> subprocess.Popen:
        mode = "map" if streaming else "open"
        args = [sys.executable, "-c", READER, str(path), str(hold), mode]
        started.append(subprocess.Popen(args, stdout=subprocess.PIPE, text=True))
        assert started[-1].stdout is not None and started[-1].stdout.readline().strip() == "open"
        return started[-1]

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


class Switch:
    """Records set_demand calls with their times."""

    def __init__(self) -> None:
        self.calls: list[tuple[bool, float]] = []
        self.changed = threading.Event()

    def set_demand(self, wanted: bool) -> None:
        self.calls.append((wanted, time.monotonic()))
        self.changed.set()


@pytest.fixture
def device(tmp_path: Path) -> Path:
    path = tmp_path / "video10"
    path.write_bytes(bytes(4096))  # something to map
    return path


def test_holders_are_the_other_processes_with_the_device_open(device: Path, reader) -> None:
    with open(device, "rb"):
        assert holders(device) == set()  # this process does not count
        proc = reader(device, 5, streaming=False)
        assert holders(device) == {proc.pid}
        assert not maps(proc.pid, str(device.resolve()))
        proc.kill()
        proc.wait()
    assert holders(device) == set()


def test_maps_tells_a_process_that_mapped_the_device(device: Path, reader) -> None:
    proc = reader(device, 5)
    assert maps(proc.pid, str(device.resolve()))
    assert not maps(proc.pid, str(device.resolve())[:-1])  # the path, not the end of another
    proc.kill()
    proc.wait()
    assert not maps(proc.pid, str(device.resolve()))  # gone


@pytest.fixture
def idle(device: Path, monkeypatch: pytest.MonkeyPatch):
    """A watch on `device` that has already let the camera go (nobody reads), and its switch."""
    monkeypatch.setattr(demand, "LINGER_S", 0.5)
    switch = Switch()
    watch = DemandWatch(device, switch)
    assert switch.changed.wait(3.0) and [wanted for wanted, _ in switch.calls] == [False]
    switch.changed.clear()
    yield watch, switch
    watch.close()


@pytest.mark.slow
def test_a_streaming_reader_wakes_the_camera_and_its_absence_releases_it(
    device: Path, idle, reader, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch, switch = idle
    monkeypatch.setattr(demand, "LISTING_S", 30.0)  # only its mapping can wake the camera in time
    proc = reader(device, 3)
    opened = time.monotonic()
    assert switch.changed.wait(2.0) and switch.calls[-1][0] is True
    assert switch.calls[-1][1] - opened < 0.5  # inotify, not a rescan interval
    assert watch.readers == 1 and watch.pids == {proc.pid} and watch.counted_by == "open files"
    switch.changed.clear()
    proc.wait()
    assert switch.changed.wait(3.0) and switch.calls[-1][0] is False  # released after the linger


@pytest.mark.slow
def test_a_streaming_reader_is_not_kept_waiting_by_a_slow_listing(
    device: Path, idle, reader, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch, switch = idle
    monkeypatch.setattr(demand, "LISTING_S", 30.0)
    reader(device, 10, streaming=False)  # holds the device, maps nothing, for a while
    time.sleep(0.3)  # the watch is judging that one now
    proc = reader(device, 5)
    assert switch.changed.wait(2.0) and switch.calls[-1][0] is True
    assert proc.pid in watch.pids


@pytest.mark.slow
def test_a_reader_that_maps_nothing_wakes_the_camera_after_the_listing_time(
    device: Path, idle, reader, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch, switch = idle
    monkeypatch.setattr(demand, "LISTING_S", 0.5)
    before = time.monotonic()
    proc = reader(device, 5, streaming=False)  # reads with read(): maps nothing
    assert switch.changed.wait(3.0) and switch.calls[-1][0] is True
    assert switch.calls[-1][1] - before >= 0.5  # it waited for the listing time first
    assert watch.pids == {proc.pid}


@pytest.mark.slow
def test_an_app_that_only_lists_the_device_does_not_wake_the_camera(
    device: Path, idle, reader, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, switch = idle
    code = "import sys\nfor _ in range(5): open(sys.argv[1], 'rb').close()"
    subprocess.run([sys.executable, "-c", code, str(device)], check=True)  # opens and closes at once
    monkeypatch.setattr(demand, "LISTING_S", 3.0)
    reader(device, 0.5, streaming=False).wait()  # a slow listing: holds it, maps nothing, leaves
    time.sleep(0.5)
    assert [wanted for wanted, _ in switch.calls] == [False]


@pytest.fixture
def no_inotify(monkeypatch: pytest.MonkeyPatch) -> None:
    """A C library without inotify (requested before `idle`): only rescans find openers."""
    monkeypatch.setattr(demand.ctypes.util, "find_library", lambda name: None)
    monkeypatch.setattr(demand, "RESCAN_S", (0.1, 0.1))


@pytest.mark.slow
def test_openers_found_by_a_rescan_are_judged_like_those_inotify_reports(
    device: Path, no_inotify, idle, reader, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch, switch = idle
    monkeypatch.setattr(demand, "LISTING_S", 3.0)
    reader(device, 0.6, streaming=False).wait()  # a slow listing, seen by several rescans
    time.sleep(0.3)
    assert [wanted for wanted, _ in switch.calls] == [False]
    proc = reader(device, 5)
    assert switch.changed.wait(2.0) and switch.calls[-1][0] is True
    assert watch.pids == {proc.pid}


def test_a_path_that_is_no_v4l2loopback_device_has_no_usage_events(device: Path, tmp_path: Path) -> None:
    assert UsageEvents(device).supported is False  # a file: the ioctl is refused
    assert UsageEvents(tmp_path / "missing").supported is False
