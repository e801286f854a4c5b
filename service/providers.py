"""Choose onnxruntime's execution provider: TensorRT or CUDA when a GPU really works, else CPU.

onnxruntime-gpu lists the CUDA provider even on a machine with no GPU and then
prints a wall of library-loading errors when a session asks for it. So a GPU
provider is only tried when an NVIDIA driver is present, with onnxruntime's log
quietened for the attempt, and what the session really got is what is reported.
"""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path

import onnxruntime as ort

log = logging.getLogger("service.providers")

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
CPU = "CPUExecutionProvider"


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
    available = set(ort.get_available_providers())
    if preference == "cpu" or not nvidia_driver_present():
        return [CPU]
    wanted = {"auto": GPU_PROVIDERS, "tensorrt": GPU_PROVIDERS, "cuda": ("CUDAExecutionProvider",)}[
        preference
    ]
    if hasattr(ort, "preload_dlls"):  # CUDA/cuDNN from pip wheels (onnxruntime >= 1.21)
        try:
            ort.preload_dlls()
        except Exception as exc:  # a partial CUDA install is a reason to fall back, not to die
            log.warning("could not preload CUDA libraries: %s", exc)
    return [p for p in wanted if p in available] + [CPU]


def create_session(
    model_path: Path,
    preference: str,
    intra_op_threads: int,
    *,
    spin_wait: bool = False,
) -> ort.InferenceSession:
    """A session on the best provider that actually initialises; never fails for lack of GPU."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if intra_op_threads:
        options.intra_op_num_threads = intra_op_threads
    # onnxruntime's default has idle worker threads spin for work: on 2 cores that
    # took CPU from decoding and HTTP (c=16: 4-7% fewer images/s, c=1: a longer tail).
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin_wait else "0")
    options.log_severity_level = 3  # errors only: a failed GPU attempt is reported by us
    providers = candidate_providers(preference)
    while True:
        try:
            session = ort.InferenceSession(str(model_path), options, providers=providers)
        except Exception as exc:
            if providers == [CPU]:
                raise
            log.warning("%s failed to start (%s); falling back", providers[0], exc)
            providers = providers[1:]
            continue
        return session


def provider_in_use(session: ort.InferenceSession) -> str:
    """The provider that runs the model's heavy nodes: the first one the session kept."""
    return session.get_providers()[0]
