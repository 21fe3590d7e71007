from pathlib import Path

from vcam.cpu import CpuInfo, cpu_flags, cpu_info, isa_class


def test_isa_class_is_the_most_capable_int8_instruction_set():
    assert isa_class({"sse4_2", "avx2"}, "x86_64") == "AVX2"
    assert isa_class({"avx2", "avx_vnni"}, "x86_64") == "AVX-VNNI"
    assert isa_class({"avx2", "avx512f", "avx512_vnni", "avx_vnni"}, "x86_64") == "AVX-512 VNNI"
    assert isa_class({"avx512_vnni", "amx_int8", "amx_tile"}, "x86_64") == "AMX"
    assert isa_class({"sse4_2", "avx"}, "x86_64") == "x86-64 without AVX2"
    assert isa_class(set(), "arm64") == "arm64"
    assert CpuInfo("x", "AVX-512 VNNI", 2).slug == "avx-512-vnni"


def test_cpu_info_reads_model_and_flags(tmp_path: Path):
    text = (
        "processor\t: 0\ncpu family\t: 25\nmodel\t\t: 80\nmodel name\t: AMD Ryzen 7 5800U\n"
        "flags\t\t: fpu sse2 avx avx2 fma\n\n"
        "processor\t: 1\nmodel name\t: AMD Ryzen 7 5800U\nflags\t\t: fpu sse2 avx avx2 fma\n"
    )
    (tmp_path / "cpuinfo").write_text(text)
    info = cpu_info(tmp_path / "cpuinfo")
    assert info.model == "AMD Ryzen 7 5800U"
    if info.isa not in ("arm64", "aarch64"):  # the flags only count on x86
        assert info.isa == "AVX2"
    assert info.generation == "family 25 model 80"
    assert info.describe().startswith("AMD Ryzen 7 5800U (family 25 model 80; ") and info.cores >= 1
    assert cpu_flags(tmp_path / "cpuinfo") == {"fpu", "sse2", "avx", "avx2", "fma"}


def test_cpu_info_without_proc_still_names_something(tmp_path: Path):
    info = cpu_info(tmp_path / "missing")
    assert info.model and info.isa
    assert cpu_flags(tmp_path / "missing") == set()
