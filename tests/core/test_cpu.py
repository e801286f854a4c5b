"""The int8 ISA classification behind the export's weight bits and the service's load guard."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.cpu import INT8_ISAS, cpu_flags, cpu_model, has_vnni, int8_isa

AVX2 = {"sse4_2", "avx", "avx2", "fma"}
AVX512 = AVX2 | {"avx512f", "avx512bw", "avx512vl", "avx512dq"}


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (AVX2, "avx2"),
        (AVX512, "avx2"),  # AVX-512 without VNNI still saturates (vpmaddubsw)
        (AVX512 | {"avx512_vnni"}, "avx512_vnni"),
        (AVX512 | {"avx512_vnni", "avx_vnni", "avx512_bf16"}, "avx512_vnni"),  # this VM
        (AVX2 | {"avx_vnni"}, "avx_vnni"),  # client cores without AVX-512
        (AVX512 | {"avx512_vnni", "amx_tile", "amx_int8", "amx_bf16"}, "amx"),
        ({"amx_tile", "amx_int8"} | AVX2, "amx"),
        ({"avx512_vnni"} | AVX2, "avx2"),  # the EVEX form needs avx512bw beside it
        ({"sse4_2", "avx"}, "other"),
        (set(), "other"),
    ],
)
def test_int8_isa_from_flags(flags: set[str], expected: str) -> None:
    assert int8_isa(flags, machine="x86_64") == expected


def test_not_x86_is_other_whatever_the_flags() -> None:
    assert int8_isa(AVX512 | {"avx512_vnni"}, machine="aarch64") == "other"


def test_vnni_class_is_what_lets_8_bit_weights_through() -> None:
    assert [isa for isa in INT8_ISAS if has_vnni(isa)] == ["amx", "avx512_vnni", "avx_vnni"]


def test_flags_and_model_come_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Some Xeon\nflags\t\t: fpu avx2 avx512_vnni avx512bw\n\n"
        "processor\t: 1\nflags\t\t: fpu\n"
    )
    assert cpu_flags(cpuinfo) == {"fpu", "avx2", "avx512_vnni", "avx512bw"}
    assert cpu_model(cpuinfo) == "Some Xeon"
    assert cpu_flags(tmp_path / "missing") == frozenset()  # not Linux: no flags, "other"


def test_this_machine_is_classified() -> None:
    assert int8_isa() in INT8_ISAS
