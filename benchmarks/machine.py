"""What the figures were measured on: CPU, its int8 and bf16 instructions, memory, GPU, versions."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess

from core.cpu import DESCRIPTIONS, cpu_flags, cpu_model, int8_isa

BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # best first


def bf16_instructions(flags: frozenset[str]) -> str:
    """The bf16 instructions present (onnxruntime's CPU provider has no bf16 Conv/Gemm)."""
    present = [flag for flag in BF16_FLAGS if flag in flags]
    return ", ".join(present) if present else "none"


def machine(provider: str, client: str) -> dict[str, str]:
    """What the figures were measured on."""
    import onnxruntime
    import psutil

    flags = cpu_flags()
    isa = int8_isa(flags)
    facts = {
        "CPU": cpu_model(),
        "cores": f"{os.cpu_count()} logical, {psutil.cpu_count(logical=False)} physical",
        "memory": f"{psutil.virtual_memory().total / 2**30:.0f} GiB",
        "int8 dot-product instructions": f"{DESCRIPTIONS[isa]} (`{isa}`)",
        "bf16 instructions": bf16_instructions(flags),
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
