"""Builds the e2e guest's initramfs: a static busybox, init.sh as /init, and the kernel modules
that mounting the root needs, numbered in load order. Also copies v4l2loopback.ko for the guest.

usage: python initramfs.py --kver KVER --v4l2loopback KO --out INITRAMFS --module-out KO_COPY

The module list is derived from the kernel's own modules.dep (what modprobe would load), so it
follows the installed Debian kernel instead of a hard-coded list; modules built into the kernel
are skipped. The archive is written in the kernel's "newc" cpio format by hand (no cpio tool
needed) and left uncompressed (nothing to decompress slowly under emulation).
"""

from __future__ import annotations

import argparse
import lzma
import shutil
import stat
from pathlib import Path

HERE = Path(__file__).resolve().parent

# What init.sh needs before the chroot; v4l2loopback itself is loaded by guest.py, which loads
# it several times with different parameters.
BOOT_MODULES = ["virtio_pci", "9pnet_virtio", "9p", "overlay", "videodev"]


def _norm(name: str) -> str:
    return name.replace("-", "_")


def _module_name(path: str) -> str:
    return _norm(Path(path).name.split(".ko")[0])


def load_order(moddir: Path, wanted: list[str]) -> list[Path]:
    """Files of `wanted` and their dependencies, each after its dependencies (as modprobe)."""
    deps: dict[str, tuple[str, list[str]]] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        target, _, rest = line.partition(":")
        deps[_module_name(target)] = (target, rest.split())
    builtin = (
        {_module_name(line) for line in (moddir / "modules.builtin").read_text().splitlines()}
        if (moddir / "modules.builtin").exists()
        else set()
    )
    order: list[str] = []
    for name in map(_norm, wanted):
        if name not in deps:
            if name in builtin:
                continue
            raise SystemExit(f"initramfs: module {name} is neither in {moddir}/modules.dep nor built into the kernel")
        target, requires = deps[name]
        for path in [*reversed(requires), target]:  # modules.dep lists the deepest last
            if path not in order:
                order.append(path)
    return [moddir / path for path in order]


def module_bytes(path: Path) -> bytes:
    """The module's ELF, decompressed if the distribution ships it compressed (busybox insmod
    cannot decompress)."""
    data = path.read_bytes()
    if path.name.endswith(".ko"):
        return data
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(data)
    raise SystemExit(f"initramfs: cannot decompress {path} (only .ko and .ko.xz are handled)")


class Cpio:
    """A minimal writer of the 'newc' cpio format that the kernel unpacks as initramfs."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)):
        encoded = name.encode() + b"\0"
        fields = [self._ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0]
        self._ino += 1
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self._parts += [header, encoded, b"\0" * (-(len(header) + len(encoded)) % 4), data, b"\0" * (-len(data) % 4)]

    def directory(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def char_device(self, name: str, major: int, minor: int) -> None:
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def write(self, path: Path) -> None:
        self._entry("TRAILER!!!", 0)
        path.write_bytes(b"".join(self._parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kver", required=True, help="kernel version (a /lib/modules folder)")
    parser.add_argument("--v4l2loopback", required=True, type=Path, help="the built module")
    parser.add_argument("--out", required=True, type=Path, help="initramfs to write")
    parser.add_argument(
        "--module-out", required=True, type=Path, help="where to put the (decompressed) v4l2loopback.ko for the guest"
    )
    parser.add_argument("--busybox", default=shutil.which("busybox") or "/bin/busybox")
    args = parser.parse_args()

    modules = load_order(Path("/lib/modules") / args.kver, BOOT_MODULES)
    archive = Cpio()
    for folder in ("bin", "dev", "proc", "sys", "modules"):
        archive.directory(folder)
    archive.char_device("dev/console", 5, 1)  # init's stdio before devtmpfs is mounted
    archive.file("bin/busybox", Path(args.busybox).read_bytes(), 0o755)
    archive.file("init", (HERE / "init.sh").read_bytes(), 0o755)
    for i, module in enumerate(modules):
        archive.file(f"modules/{i:02d}-{_module_name(module.name)}.ko", module_bytes(module))
    archive.write(args.out)
    args.module_out.write_bytes(module_bytes(args.v4l2loopback))
    print(f"initramfs: {len(modules)} modules ({', '.join(_module_name(m.name) for m in modules)})")


if __name__ == "__main__":
    main()
