"""Which CPU this is, and its class for INT8 inference.

A speed figure means nothing without its machine: INT8 convolution runs on different kernels per
instruction set (AVX2's pairwise int16 sums, AVX-VNNI / AVX-512 VNNI dot products, AMX tiles),
and a laptop without VNNI is several times slower than a server with it. Benchmarks record this,
and the model tier's calibration cache is kept per CPU model.
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

# Most capable first: the class is the first whose flag the CPU has.
ISA_CLASSES = (("amx_int8", "AMX"), ("avx512_vnni", "AVX-512 VNNI"), ("avx_vnni", "AVX-VNNI"), ("avx2", "AVX2"))


@dataclass(frozen=True)
class CpuInfo:
    model: str  # "AMD Ryzen 7 5800U", as the OS names it
    isa: str  # one of ISA_CLASSES' names, "x86-64 without AVX2", or the architecture (arm64, ...)
    cores: int
    # "family 25 model 1": virtual machines often name only "AMD EPYC", for every generation
    generation: str = ""

    def describe(self) -> str:
        generation = f"{self.generation}; " if self.generation else ""
        return f"{self.model} ({generation}{self.isa}, {self.cores} CPUs)"

    @property
    def slug(self) -> str:
        """The ISA class as a file-name part: avx2, avx-vnni, avx-512-vnni, amx."""
        return self.isa.lower().replace(" ", "-")

    def as_dict(self) -> dict:
        """The fields, and `describe()` as "name" for reports read from JSON."""
        return asdict(self) | {"name": self.describe()}


def isa_class(flags: set[str], machine: str) -> str:
    if machine.lower() not in ("x86_64", "amd64", "i686", "x86"):
        return machine
    return next((name for flag, name in ISA_CLASSES if flag in flags), "x86-64 without AVX2")


def _fields(cpuinfo: str | Path) -> tuple[str, set[str], dict[str, str]]:
    """The first CPU's model name, flags and family/model ids from a /proc/cpuinfo file."""
    model, flags, ids = "", set[str](), dict[str, str]()
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
        elif key in ("cpu family", "model") and key not in ids:
            ids[key] = value.strip()
    return model, flags, ids


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags as Linux names them (`amx_bf16`, `avx2`, ...); empty elsewhere."""
    return _fields(cpuinfo)[1]


def cpu_info(cpuinfo: str | Path = "/proc/cpuinfo") -> CpuInfo:
    """The CPU from /proc/cpuinfo (Linux); elsewhere the platform's name for it, no flags."""
    model, flags, ids = _fields(cpuinfo)
    machine = platform.machine()
    generation = f"family {ids['cpu family']} model {ids['model']}" if len(ids) == 2 else ""
    return CpuInfo(
        model or platform.processor() or machine or "unknown CPU",
        isa_class(flags, machine),
        os.cpu_count() or 1,
        generation,
    )
