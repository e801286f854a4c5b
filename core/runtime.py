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
from pathlib import Path

import numpy as np
import onnxruntime as ort

log = logging.getLogger("core.runtime")

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
GPU_PROVIDERS = (TENSORRT, CUDA)
PREFERENCES = {"auto": GPU_PROVIDERS, "tensorrt": GPU_PROVIDERS, "cuda": (CUDA,), "cpu": ()}

ModelSource = Path | bytes


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


def session_options(threads: int = 0, *, spin_wait: bool = False) -> ort.SessionOptions:
    """The options of every session: all graph optimisations, one inter-op thread.

    Idle intra-op threads do not spin by default: on 2 cores spinning took CPU from
    decoding and HTTP (concurrency 16: 4-7% fewer images/s; concurrency 1: a longer tail).
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin_wait else "0")
    options.log_severity_level = 3  # errors only: a failed GPU attempt is reported by us
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


def cpu_session(model: ModelSource) -> ort.InferenceSession:
    """A CPU session with default threads: export checks must not depend on a GPU."""
    return open_session(model, [CPU], session_options())


def run_all(session: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every output of the session by name."""
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))
