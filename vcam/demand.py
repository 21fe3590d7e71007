"""On demand: run the camera and the model only while some app reads the SharpCam device.

Readers are counted the way the driver tells. v4l2loopback 0.13 and later queue a private event
(V4L2_EVENT_PRI_CLIENT_USAGE, defined only in the driver's source) when a reader starts or stops
streaming, to every opener subscribed to it: its `count` is the number of streaming readers in
0.13 and whether one streams in 0.14+, so only zero versus non-zero is read. 0.12 has no such
event (the subscription fails), and there the readers are the processes other than this one
that hold the device open (/proc/*/fd), scanned when inotify says the node was opened or closed
and every few seconds besides. Apps that open the device only to list it never stream: a new
opener wakes the camera once it maps the device (/proc/PID/maps: a streaming reader maps the
driver's buffers within milliseconds of opening), and an opener that maps nothing wakes it only
if it still holds the device `LISTING_S` later (a reader using read(), which maps nothing).
The camera is released `LINGER_S` after the last reader left.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import select
import struct
import threading
import time
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

LISTING_S = 1.0  # an opener that maps nothing and is still there after this is a reader
POLL_S = 0.02  # how often a new opener is looked at until it maps the device or leaves
LINGER_S = 5.0  # no reader for this long: release the camera
RESCAN_S = (10.0, 2.0)  # idle scans at least this often with inotify, and without it

_IN_OPEN, _IN_CLOSE_WRITE, _IN_CLOSE_NOWRITE = 0x20, 0x08, 0x10
_IN_NONBLOCK, _IN_CLOEXEC = 0o4000, 0o2000000
# V4L2 event ioctls (linux/videodev2.h) and v4l2loopback's private event (v4l2loopback.c, 0.13+)
_VIDIOC_SUBSCRIBE_EVENT = 0x4020565A  # _IOW('V', 90, struct v4l2_event_subscription): 32 bytes
_VIDIOC_DQEVENT = 0x80885659  # _IOR('V', 89, struct v4l2_event): 136 bytes on 64-bit
_EVENT_CLIENT_USAGE = 0x08000000 + 0x08E00000 + 1  # V4L2_EVENT_PRIVATE_START + offset + 1
_SUB_FL_SEND_INITIAL = 1  # the current state comes at once after subscribing


class UsageEvents:
    """v4l2loopback's reader-usage event on an fd of our own; `supported` is False where the
    driver (0.12) or the path (not a V4L2 device) has none."""

    def __init__(self, device: str | Path) -> None:
        import fcntl

        self.supported = False
        try:
            self._fd = os.open(device, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            self._fd = -1
            return
        request = struct.pack("<8I", _EVENT_CLIENT_USAGE, 0, _SUB_FL_SEND_INITIAL, 0, 0, 0, 0, 0)
        try:
            fcntl.ioctl(self._fd, _VIDIOC_SUBSCRIBE_EVENT, request)
        except OSError:
            self.close()
            return
        self.supported = True

    def wait(self, timeout: float) -> int | None:
        """The reader count of the newest event within `timeout`, or None when none came."""
        import fcntl

        ready = select.poll()
        ready.register(self._fd, select.POLLPRI)
        if not ready.poll(timeout * 1000):
            return None
        count = None
        while True:
            event = bytearray(136)
            try:
                fcntl.ioctl(self._fd, _VIDIOC_DQEVENT, event)
            except OSError:  # no more pending
                return count
            (kind,) = struct.unpack_from("<I", event, 0)
            if kind == _EVENT_CLIENT_USAGE:
                (count,) = struct.unpack_from("<I", event, 8)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def holders(device: str | Path) -> set[int]:
    """PIDs of the processes other than this one that hold `device` open."""
    target = os.path.realpath(device)
    own = os.getpid()
    return {
        int(entry.name)
        for entry in os.scandir("/proc")
        if entry.name.isdigit() and int(entry.name) != own and holds(int(entry.name), target)
    }


def holds(pid: int, target: str) -> bool:
    """Whether process `pid` holds the file at real path `target` open."""
    try:
        with os.scandir(f"/proc/{pid}/fd") as fds:
            return any(_link(fd.path) == target for fd in fds)
    except OSError:  # gone, or another user's
        return False


def maps(pid: int, target: str) -> bool:
    """Whether process `pid` has the file at real path `target` mapped into its memory."""
    suffix = b" " + os.fsencode(target) + b"\n"  # the path is the line's last field
    try:
        with open(f"/proc/{pid}/maps", "rb") as lines:
            return any(line.endswith(suffix) for line in lines)
    except OSError:  # gone, or not ours to read
        return False


def _link(path: str) -> str | None:
    """Where the symlink `path` points (an fd's file), None when it is gone."""
    try:
        return os.readlink(path)
    except OSError:
        return None


class _Opens:
    """inotify on one path's opens and closes; without inotify, `wait` just sleeps."""

    def __init__(self, path: str | Path) -> None:
        self._fd = -1
        libc_name = ctypes.util.find_library("c")
        if libc_name is None:
            return
        libc = ctypes.CDLL(libc_name, use_errno=True)
        fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            return
        mask = _IN_OPEN | _IN_CLOSE_WRITE | _IN_CLOSE_NOWRITE
        if libc.inotify_add_watch(fd, os.fsencode(path), mask) < 0:
            os.close(fd)
            return
        self._fd = fd

    @property
    def watching(self) -> bool:
        return self._fd >= 0

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        """Whether the path was opened or closed within `timeout` (events drained)."""
        if self._fd < 0:
            stop.wait(timeout)
            return False
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if not ready:
            return False
        while True:
            try:
                data = os.read(self._fd, 4096)
            except BlockingIOError:
                return True
            if len(data) < struct.calcsize("iIII"):
                return True

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class Demanded(Protocol):
    """What demand switches: SupervisedSource.set_demand."""

    def set_demand(self, wanted: bool) -> None: ...


class DemandWatch:
    """A thread that calls `target.set_demand` as readers of `device` come and go."""

    def __init__(self, device: str | Path, target: Demanded) -> None:
        self.device = str(device)
        self.readers = 0
        """Readers now, as counted by `counted_by`."""
        self.pids: set[int] = set()
        """The reading processes, where they are found through /proc (not with driver events)."""
        self._why = ""  # how the newest reader found through /proc showed that it reads
        self.active = True  # the camera is open when the watch starts
        self._last_reader = time.monotonic()
        self._target = target
        self._stop = threading.Event()
        self._events = UsageEvents(device)
        self.counted_by = "driver events" if self._events.supported else "open files"
        self._opens = _Opens(device)
        run = self._run_events if self._events.supported else self._run
        self._thread = threading.Thread(target=run, name="vcam-demand", daemon=True)
        self._thread.start()

    def _decide(self) -> None:
        """Wake the camera for a reader, release it `LINGER_S` after the last one left."""
        now = time.monotonic()
        if self.readers:
            self._last_reader = now
            if not self.active:
                self.active = True
                log.info("%d reader(s) of %s (counted by %s%s)", self.readers, self.device, self.counted_by, self._why)
                self._target.set_demand(True)
        elif self.active and now - self._last_reader >= LINGER_S:
            self.active = False
            self._target.set_demand(False)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                idle_rescan = RESCAN_S[0] if self._opens.watching else RESCAN_S[1]
                event = self._opens.wait(1.0 if self.active else idle_rescan, self._stop)
                if self.active:
                    self.pids, self._why = holders(self.device), ""
                    if event and not self.pids and not self._stop.wait(POLL_S):  # as in _settled
                        self.pids = holders(self.device)
                else:  # found by an event or by a rescan, an opener first shows that it reads
                    self.pids, self._why = self._settled()
                if self._stop.is_set():  # shutting down: wake nothing
                    break
                self.readers = len(self.pids)
                self._decide()
        finally:
            self._opens.close()

    def _settled(self) -> tuple[set[int], str]:
        """The openers once they have shown whether they read, and how: one maps the device (a
        streaming reader), or one has held it `LISTING_S` without mapping it (a reader using
        read()), or all have left (apps listing cameras). Openers that come meanwhile join."""
        target = os.path.realpath(self.device)
        seen: dict[int, float] = {}  # pid: when first seen
        looks = 2  # inotify reports an open just before its fd shows in /proc: look twice
        while True:
            if looks:
                now = time.monotonic()
                seen |= {pid: now for pid in holders(self.device) if pid not in seen}
                looks -= 1
            if not seen and not looks:
                return set(), ""
            if any(maps(pid, target) for pid in seen):
                return set(seen), "; it maps the device"
            if any(time.monotonic() - since >= LISTING_S for since in seen.values()):
                return set(seen), f"; it held the device {LISTING_S:g} s"
            if self._stop.wait(POLL_S):
                return set(), ""
            seen = {pid: since for pid, since in seen.items() if holds(pid, target)}
            if self._opens.wait(0, self._stop):  # another open (or close) meanwhile
                looks = 2
            elif not self._opens.watching:  # without inotify, only looking finds new openers
                looks = 1

    def _run_events(self) -> None:
        """Readers as the driver counts them."""
        try:
            while not self._stop.is_set():
                news = self._events.wait(0.5)
                self.readers = self.readers if news is None else news
                self._decide()
        finally:
            self._events.close()
            self._opens.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
