"""Write the Grad-CAM graph beside alexnet.onnx, refused unless it matches torch.autograd.

`write_explain_model` is what `alexnet export` calls after writing the forward
model: it builds the all-layer explain graph (`model.onnx_backward`), writes it,
checks its activations and gradients against torch.autograd on the verification
batch, and returns the manifest entry (`files["explain"]`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch

from core.manifest import ExplainGraph, GradientCheck, file_facts
from model.gradient_parity import check_explain_parity
from model.network import AlexNet
from model.onnx_backward import (
    CLASS_WEIGHTS_NAME,
    build_explain_model,
    explainable_layers,
)
from model.onnx_shared_weights import refer_to_weights_in

EXPLAIN_FILE = "alexnet.explain.onnx"


def classes_to_check(model: AlexNet, batch: np.ndarray) -> list[int]:
    """Per image, the class whose gradient is checked: the top-1, then the runner-up, in turn.

    Users ask for the top-1 most, but a gradient routed wrongly may only show for
    a class the network does not favour.
    """
    with torch.no_grad():
        ranking = model.eval()(torch.from_numpy(batch)).argsort(dim=1, descending=True)
    second = min(1, ranking.shape[1] - 1)
    return [int(ranking[i, 0 if i % 2 == 0 else second]) for i in range(len(batch))]


def write_explain_model(
    model: AlexNet, batch: np.ndarray, out: Path, *, weights_from: Path | None = None
) -> ExplainGraph:
    """Build, write and verify `alexnet.explain.onnx`; its manifest entry.

    With `weights_from` (the forward `alexnet.onnx` just written in `out`), the graph
    reads its weights from inside that file instead of carrying a second copy
    (`model.onnx_shared_weights`): about 13 KB instead of 244 MB for the paper
    model, and onnxruntime then needs both files.
    """
    if weights_from is not None and weights_from.parent.resolve() != out.resolve():
        # External data is found relative to the graph's own folder.
        raise ValueError(f"{weights_from} must be in {out}, where the explain graph goes")
    model = model.eval()
    weights = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    graph = build_explain_model(model.arch, weights)
    if weights_from is not None:
        graph = refer_to_weights_in(graph, weights_from)
    path, partial = out / EXPLAIN_FILE, out / f"{EXPLAIN_FILE}.partial"
    onnx.save_model(graph, partial)
    del graph, weights
    try:
        # Checked from the file written, so what is verified is what ships.
        parity = check_explain_parity(model, partial, batch, classes_to_check(model, batch))
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)
    layers = explainable_layers(model.arch)
    return ExplainGraph(
        **file_facts(path),
        weights_from=weights_from.name if weights_from is not None else None,
        class_weights_input=CLASS_WEIGHTS_NAME,
        layers=layers,
        gradient_vs_pytorch={
            layer: GradientCheck(**parity.layers[layer].as_dict()) for layer in layers
        },
        choices_differing_from_pytorch=parity.differing_choices,
    )
