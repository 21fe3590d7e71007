"""v4l2loopback, the Linux driver behind the SharpCam device: finding it, asking it, working
around its bugs. Shared by the virtual-camera sink, the camera source, `vcam doctor` and
`vcam devices`.

Our device is found by its card label `SharpCam` in /sys/class/video4linux/*/name (as OBS does
with its own), so its number does not matter.

Up to 0.12.7 (Debian 12, Ubuntu 22.04/24.04) the driver has a restart bug with exclusive_caps=1:
a writer that uses write(), as pyvirtualcam does, is never registered as the writer, so when it
closes the device stops announcing itself as an output and every later writer is refused ("not
a video output device") until the module is reloaded. The driver announces it again when an
opener that called VIDIOC_STREAMON on the output closes, so the sink holds such an opener while
it writes and closes it last, and a device already stuck (announcing neither capture nor
output) is revived with one first. tests/e2e shows both against the real driver.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator
from pathlib import Path

LABEL = "SharpCam"
MODPROBE = f"sudo modprobe v4l2loopback devices=1 card_label={LABEL} exclusive_caps=1"
BOOT_COMMANDS = (  # load the module with our device at every boot
    "echo v4l2loopback | sudo tee /etc/modules-load.d/v4l2loopback.conf",
    f"echo 'options v4l2loopback devices=1 card_label={LABEL} exclusive_caps=1' | "
    "sudo tee /etc/modprobe.d/v4l2loopback.conf",
)
PERMANENT = "to keep it after reboot: " + " and ".join(BOOT_COMMANDS)
SYSFS_CLASS = "sys/class/video4linux"


def is_virtual(index: int, root: Path = Path("/")) -> bool:
    """Whether /dev/video<index> is a loopback device: those live under /sys/devices/virtual,
    cameras under their bus."""
    return "/virtual/" in os.path.realpath(root / SYSFS_CLASS / f"video{index}")


def list_loopback_devices(root: Path = Path("/")) -> list[tuple[str, str]]:
    """(device path, card label) of every v4l2loopback device, sorted by device number."""
    found = []
    for entry in (root / SYSFS_CLASS).glob("video*"):
        if "/virtual/" not in os.path.realpath(entry):  # cameras sit under their bus instead
            continue
        try:
            label = (entry / "name").read_text().strip()
        except OSError:
            continue
        found.append((int(entry.name.removeprefix("video")), str(root / "dev" / entry.name), label))
    return [(device, label) for _, device, label in sorted(found)]


def find_device(label: str = LABEL, root: Path = Path("/")) -> str | None:
    """The /dev/videoN path of the v4l2loopback device whose card label is `label`."""
    return next((device for device, name in list_loopback_devices(root) if name == label), None)


def creation_order(root: Path) -> list[str]:
    """Loopback device paths in the order the module created them: the numbers given in its
    video_nr parameter when all were given (video_nr=20,10 creates video20 first), else
    ascending, the order in which it hands out free numbers."""
    devices = [path for path, _ in list_loopback_devices(root)]
    try:
        text = (root / "sys/module/v4l2loopback/parameters/video_nr").read_text()
        numbers = [int(v) for v in text.strip().split(",")][: len(devices)]
    except (OSError, ValueError):
        return devices
    named = [str(root / "dev" / f"video{n}") for n in numbers]
    return named if min(numbers, default=-1) >= 0 and sorted(named) == sorted(devices) else devices


def exclusive_caps(device: str, root: Path = Path("/")) -> bool | None:
    """Whether `device` was created with exclusive_caps=1 (Chrome/Meet only list it then).

    The module parameter is a list in device creation order; None when it cannot be read.
    """
    try:
        values = (root / "sys/module/v4l2loopback/parameters/exclusive_caps").read_text()
    except OSError:
        return None
    devices = creation_order(root)
    flags = values.strip().split(",")
    if device not in devices or devices.index(device) >= len(flags):
        return None
    return flags[devices.index(device)].strip() in ("Y", "1")


VIDIOC_QUERYCAP = 0x80685600  # _IOR('V', 0, struct v4l2_capability): 104 bytes
VIDIOC_ENUM_FMT = 0xC0405602  # _IOWR('V', 2, struct v4l2_fmtdesc): 64 bytes
VIDIOC_STREAMON = 0x40045612  # _IOW('V', 18, int)
CAP_VIDEO_CAPTURE, CAP_VIDEO_OUTPUT, CAP_DEVICE_CAPS = 0x1, 0x2, 0x80000000
BUF_TYPE_VIDEO_CAPTURE, BUF_TYPE_VIDEO_OUTPUT = 1, 2
DRIVER_NAME = b"v4l2 loopback"  # VIDIOC_QUERYCAP's driver field (0.12 and 0.15 alike)


@contextlib.contextmanager
def _asked(device: str) -> Iterator[tuple[int, bytes] | None]:
    """`device` opened read-only and its VIDIOC_QUERYCAP answer (struct v4l2_capability) as
    (fd, answer); None when it cannot be opened or asked."""
    import fcntl  # Unix only, like v4l2loopback

    try:
        fd = os.open(device, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        fd = -1
    answer = None
    try:
        if fd >= 0:
            info = bytearray(104)
            try:
                fcntl.ioctl(fd, VIDIOC_QUERYCAP, info)
                answer = fd, bytes(info)
            except OSError:
                pass
        yield answer
    finally:
        if fd >= 0:
            os.close(fd)


def device_caps(device: str) -> int | None:
    """The capabilities `device` announces right now, None when it cannot be asked."""
    with _asked(device) as asked:
        if asked is None:
            return None
        capabilities, caps = struct.unpack_from("<II", asked[1], 84)
    return caps if capabilities & CAP_DEVICE_CAPS else capabilities


def is_unfed(device: str) -> bool:
    """Whether `device` is a v4l2loopback device that no app feeds: nobody holds its format.

    A reader must not open such a device: in 0.15 the first opener sets the format, so a reader
    that came first makes the writer that follows write in the reader's format, and the reader
    gets garbage or one stale frame for ever (tests/e2e's hot-plug, which runs 0.12 and 0.15).
    The capture formats it offers tell: 0.12 offers none until a writer has started; 0.15 none
    while no writer streams with exclusive_caps=1, and with exclusive_caps=0 every format until an
    opener (the writer, or another reader) fixes one, then that one only. False whenever it
    cannot be told (not a loopback device, no access), so that opening the camera reports what
    is wrong."""
    import fcntl

    with _asked(device) as asked:
        # The struct's first 16 bytes: the driver's name, NUL-terminated.
        if asked is None or asked[1][:16].split(b"\0")[0] != DRIVER_NAME:
            return False
        offered = 0
        for index in range(2):
            desc = bytearray(struct.pack("<II", index, BUF_TYPE_VIDEO_CAPTURE) + bytes(56))
            try:
                fcntl.ioctl(asked[0], VIDIOC_ENUM_FMT, desc)
            except OSError:
                break
            offered += 1
    return offered != 1


def start_output_stream(device: str) -> int | None:
    """An fd of `device` on which VIDIOC_STREAMON(output) was called, or None if it cannot be
    opened. v4l2loopback counts this opener as a writer even when the call fails (it marks the
    opener first; a stuck device has no format to stream), which is all that matters here."""
    import fcntl

    try:
        fd = os.open(device, os.O_RDWR | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        fcntl.ioctl(fd, VIDIOC_STREAMON, struct.pack("i", BUF_TYPE_VIDEO_OUTPUT))
    except OSError:
        pass
    return fd


def revive_if_stuck(device: str) -> None:
    """Make a device that an earlier writer left announcing neither capture nor output (the
    restart bug in the module docstring) an output again."""
    caps = device_caps(device)
    if caps is None or caps & (CAP_VIDEO_CAPTURE | CAP_VIDEO_OUTPUT):
        return
    fd = start_output_stream(device)
    if fd is not None:
        os.close(fd)
