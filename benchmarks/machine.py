"""What the figures were measured on: CPU, its int8 instructions, memory, GPU, versions."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from pathlib import Path

INT8_FLAGS = [  # best first
    ("avx512_vnni", "AVX-512 VNNI"),
    ("avx_vnni", "AVX-VNNI"),
    ("avx512bw", "AVX-512BW"),
    ("avx2", "AVX2 (no VNNI: u8 x s8 pairs summed in 16 bits)"),
]


def int8_instructions(flags: set[str]) -> str:
    """The best that onnxruntime's int8 kernels can use: VNNI doubles their speed over AVX2."""
    return next((name for flag, name in INT8_FLAGS if flag in flags), "unknown")


def machine(provider: str, client: str) -> dict[str, str]:
    """What the figures were measured on."""
    import onnxruntime
    import psutil

    cpu, flags = platform.processor() or "unknown", set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
            if cpu != "unknown" and flags:
                break
    facts = {
        "CPU": cpu,
        "cores": f"{os.cpu_count()} logical, {psutil.cpu_count(logical=False)} physical",
        "memory": f"{psutil.virtual_memory().total / 2**30:.0f} GiB",
        "int8 dot-product instructions": int8_instructions(flags),
        "onnxruntime": onnxruntime.__version__,
        "provider": provider,
        "python": platform.python_version(),
        "load generator": client,
    }
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        gpus = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        if gpus:
            facts["GPU"] = gpus.replace("\n", "; ")
    return facts
