"""What the CPU offers onnxruntime's int8 kernels, read from /proc/cpuinfo.

MLAS (onnxruntime's kernels) multiplies uint8 activations by int8 weights. With VNNI
(`vpdpbusd`) the products are summed straight into 32 bits. Without it, on AVX2, they
go through `vpmaddubsw`, whose 16-bit pair sums saturate once two products of 8-bit
weights add up past 32767; 7-bit weights (`reduce_range`) cannot overflow there. So
the export picks 8- or 7-bit weights from this classification and the service checks
it again at load (an 8-bit model on a CPU without VNNI needs onnxruntime's exact but
slower u8u8 path, `session.x64quantprecision`).

/proc/cpuinfo's `flags` are what the kernel exposes after the hypervisor and the OS
have masked what they do not enable (AVX-512 state off in XCR0 removes the flags), and
containers see the host's. Python has no cpuid of its own; no /proc/cpuinfo (not
Linux) or no x86-64 is classified "other", which counts as no VNNI.
"""

from __future__ import annotations

import contextlib
import platform
from pathlib import Path
from typing import Final, Literal, get_args

Int8Isa = Literal["amx", "avx512_vnni", "avx_vnni", "avx2", "other"]
INT8_ISAS: Final[tuple[Int8Isa, ...]] = get_args(Int8Isa)  # best first
# The classes whose u8 x s8 dot products accumulate in 32 bits: 8-bit weights are safe.
VNNI_CLASS: Final[frozenset[Int8Isa]] = frozenset({"amx", "avx512_vnni", "avx_vnni"})
DESCRIPTIONS: Final[dict[Int8Isa, str]] = {
    "amx": "AMX-INT8 (and AVX-512 VNNI)",
    "avx512_vnni": "AVX-512 VNNI",
    "avx_vnni": "AVX-VNNI",
    "avx2": "AVX2 without VNNI (u8 x s8 pairs summed in 16 bits)",
    "other": "no x86 int8 dot-product instructions known to this classification",
}
X86_64 = ("x86_64", "amd64")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The first `flags` line of /proc/cpuinfo (every core lists the same); empty if none."""
    with contextlib.suppress(OSError, UnicodeDecodeError):
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's marketing name, or the platform's idea of it."""
    with contextlib.suppress(OSError, UnicodeDecodeError):
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def int8_isa(flags: frozenset[str] | set[str] | None = None, machine: str | None = None) -> Int8Isa:
    """The best int8 dot-product instructions onnxruntime can use here, best first."""
    if not is_x86_64(machine):
        return "other"
    flags = cpu_flags() if flags is None else flags
    if {"amx_int8", "amx_tile"} <= flags:
        return "amx"
    if {"avx512_vnni", "avx512bw"} <= flags:
        return "avx512_vnni"
    if "avx_vnni" in flags:
        return "avx_vnni"
    if "avx2" in flags:
        return "avx2"
    return "other"


def is_x86_64(machine: str | None = None) -> bool:
    return (machine if machine is not None else platform.machine()).lower() in X86_64


def has_vnni(isa: Int8Isa) -> bool:
    """True where u8 x s8 products are summed in 32 bits (8-bit weights cannot saturate)."""
    return isa in VNNI_CLASS
