"""CPU sessions as the service opens them, with prepacking optional (for the explain bench).

Its own torch-free module so a child process measuring memory imports nothing else.
"""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort


def cpu_session(path: Path, threads: int, *, prepack: bool = True) -> ort.InferenceSession:
    """service.providers' CPU session options; `prepack=False` sets session.disable_prepacking.

    onnxruntime prepacks Gemm/MatMul weights into buffers of its own; without that it
    reads them where they lie, which for an external data file is a shared file mapping.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if not prepack:
        options.add_session_config_entry("session.disable_prepacking", "1")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
