"""Small onnxruntime helpers for export-time checks (always the CPU provider)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from model.onnx_graph import INPUT_NAME


def cpu_session(model: bytes | Path) -> ort.InferenceSession:
    """A CPU session: export checks must not depend on (or warn about) a GPU."""
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, providers=["CPUExecutionProvider"])


def run_all(session: ort.InferenceSession, batch: np.ndarray) -> dict[str, np.ndarray]:
    """Every output of the session by name."""
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, {INPUT_NAME: batch}), strict=True))
