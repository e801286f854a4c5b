"""onnxruntime sessions: which execution provider, with which options.

onnxruntime-gpu lists the CUDA provider even on a machine with no GPU and then
prints a wall of library-loading errors when a session asks for it. So a GPU
provider is only tried when an NVIDIA driver is present, with onnxruntime's log
quietened for the attempt, and what the session really got is what is reported.
Every session of the project (the model, the numerics' small graphs, export
checks) is opened here, so they share one set of options.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnxruntime as ort

from core.cpu import Int8Isa, has_vnni, is_x86_64

log = logging.getLogger("core.runtime")

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
GPU_PROVIDERS = (TENSORRT, CUDA)
PREFERENCES = {"auto": GPU_PROVIDERS, "tensorrt": GPU_PROVIDERS, "cuda": (CUDA,), "cpu": ()}

ModelSource = Path | bytes
# onnxruntime's exact u8 x u8 int8 kernels for x86 CPUs whose u8 x s8 ones saturate.
X64_QUANT_PRECISION = "session.x64quantprecision"


def nvidia_driver_present() -> bool:
    """True when the NVIDIA driver's user-space library loads (no driver, no GPU provider)."""
    if not Path("/proc/driver/nvidia").exists() and not Path("/dev/nvidiactl").exists():
        return False
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def candidate_providers(preference: str) -> list[str]:
    """Providers to try, best first, for a preference of auto, tensorrt, cuda or cpu."""
    if preference not in PREFERENCES:
        raise ValueError(f"unknown provider {preference!r}; choose one of {sorted(PREFERENCES)}")
    if not PREFERENCES[preference] or not nvidia_driver_present():
        return [CPU]
    if hasattr(ort, "preload_dlls"):  # CUDA/cuDNN from pip wheels (onnxruntime >= 1.21)
        try:
            ort.preload_dlls()
        except Exception as exc:  # a partial CUDA install is a reason to fall back, not to die
            log.warning("could not preload CUDA libraries: %s", exc)
    available = set(ort.get_available_providers())
    return [p for p in PREFERENCES[preference] if p in available] + [CPU]


def int8_session_config(
    weight_bits: int, isa: Int8Isa, machine: str | None = None
) -> dict[str, str]:
    """Session config entries an int8 model with `weight_bits` needs on a CPU of class `isa`.

    On x86 without VNNI onnxruntime multiplies uint8 by int8 with `vpmaddubsw`, whose
    16-bit pair sums saturate for 8-bit weights, silently. `session.x64quantprecision`
    turns such weights to uint8 and runs the exact u8u8 kernels (about 2x slower int8).
    Not set anywhere else: with 7-bit weights it changes nothing, and on a VNNI CPU it
    costs that 2x for nothing (measured, issue 17). `session.qdqisint8allowed` is never
    set: on x86 it selects an s8s8 path 6-11x slower than fp32.
    """
    if weight_bits == 8 and is_x86_64(machine) and not has_vnni(isa):
        return {X64_QUANT_PRECISION: "1"}
    return {}


def session_options(
    threads: int = 0, *, spin_wait: bool = False, config: Mapping[str, str] | None = None
) -> ort.SessionOptions:
    """The options of every session: all graph optimisations, one inter-op thread.

    Idle intra-op threads do not spin by default: on 2 cores spinning took CPU from
    decoding and HTTP (concurrency 16: 4-7% fewer images/s; concurrency 1: a longer tail).
    `config` adds session config entries (`int8_session_config`).
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin_wait else "0")
    options.log_severity_level = 3  # errors only: a failed GPU attempt is reported by us
    for key, value in (config or {}).items():
        options.add_session_config_entry(key, value)
    return options


def open_session(
    model: ModelSource, providers: list[str], options: ort.SessionOptions
) -> ort.InferenceSession:
    """A session on the first of `providers` that starts; never fails for lack of a GPU."""
    source = str(model) if isinstance(model, Path) else model
    while True:
        try:
            return ort.InferenceSession(source, options, providers=providers)
        except Exception as exc:
            if providers == [CPU]:
                raise
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.warning("%s failed to start (%s); falling back", providers[0], first_line)
            providers = providers[1:]


def create_session(
    model: ModelSource, preference: str = "auto", threads: int = 0, *, spin_wait: bool = False
) -> ort.InferenceSession:
    """A session on the best provider for `preference` that actually initialises."""
    return open_session(
        model, candidate_providers(preference), session_options(threads, spin_wait=spin_wait)
    )


def cpu_session(
    model: ModelSource, config: Mapping[str, str] | None = None
) -> ort.InferenceSession:
    """A CPU session with default threads: export checks must not depend on a GPU."""
    return open_session(model, [CPU], session_options(config=config))


def run_all(session: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every output of the session by name."""
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))
