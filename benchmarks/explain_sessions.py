"""CPU sessions as the service opens them, with prepacking optional (for the explain bench).

Its own torch-free module so a child process measuring memory imports nothing else.
"""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

from core.runtime import CPU, session_options


def cpu_session(path: Path, threads: int, *, prepack: bool = True) -> ort.InferenceSession:
    """The service's CPU session options; `prepack=False` sets session.disable_prepacking.

    onnxruntime prepacks Gemm/MatMul weights into buffers of its own; without that it
    reads them where they lie, which for an external data file is a shared file mapping.
    """
    options = session_options(threads)
    if not prepack:
        options.add_session_config_entry("session.disable_prepacking", "1")
    return ort.InferenceSession(str(path), options, providers=[CPU])
