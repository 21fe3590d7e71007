"""On demand: run the camera and the model only while some app reads the SharpCam device.

Readers are counted the way that works on every v4l2loopback version: the processes other than
this one that hold the device open (/proc/*/fd). Scanning is cheap but not free, so it runs when
inotify says somebody opened or closed the node, and once every few seconds as a fallback.
Hysteresis keeps apps that open the device only to list it (some do so every few seconds) from
starting the camera: a reader must still hold it `GRACE_S` after opening, and the camera is
released only after `LINGER_S` without one.
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

GRACE_S = 0.1  # an opener still there after this is a reader, not an enumeration
LINGER_S = 5.0  # no reader for this long: release the camera
RESCAN_S = (10.0, 2.0)  # idle scans at least this often with inotify, and without it

_IN_OPEN, _IN_CLOSE_WRITE, _IN_CLOSE_NOWRITE = 0x20, 0x08, 0x10
_IN_NONBLOCK, _IN_CLOEXEC = 0o4000, 0o2000000


def holders(device: str | Path) -> set[int]:
    """PIDs of the processes other than this one that hold `device` open."""
    target = os.path.realpath(device)
    own = os.getpid()
    found = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            fds = os.scandir(f"/proc/{entry.name}/fd")
        except OSError:  # gone, or another user's
            continue
        with fds:
            for fd in fds:
                try:
                    if os.readlink(fd.path) == target:
                        found.add(int(entry.name))
                        break
                except OSError:
                    continue
    return found


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
        self.readers: set[int] = set()
        self.active = True  # the camera is open when the watch starts
        self._target = target
        self._stop = threading.Event()
        self._opens = _Opens(device)
        self._thread = threading.Thread(target=self._run, name="vcam-demand", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last_reader = time.monotonic()
        try:
            while not self._stop.is_set():
                idle_rescan = RESCAN_S[0] if self._opens.watching else RESCAN_S[1]
                event = self._opens.wait(1.0 if self.active else idle_rescan, self._stop)
                if event and not self.active:
                    self._stop.wait(GRACE_S)  # an enumeration has closed the device by now
                self.readers = holders(self.device)
                now = time.monotonic()
                if self.readers:
                    last_reader = now
                    if not self.active:
                        self.active = True
                        log.info("reader(s) %s opened %s", sorted(self.readers), self.device)
                        self._target.set_demand(True)
                elif self.active and now - last_reader >= LINGER_S:
                    self.active = False
                    self._target.set_demand(False)
        finally:
            self._opens.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
