"""Export-time check of the ONNX gradient graphs against torch.autograd.

The graphs of `model.onnx_backward` write every layer's backward pass by hand; this
check runs them in onnxruntime and compares their activations and gradients with
what torch.autograd gives for the same images and classes, as `model.export`'s
`check_parity` does for the forward model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnx
import torch

from model.errors import UserFacingError
from model.network import AlexNet
from model.onnx_backward import (
    ACTIVATION_NAME,
    CLASS_WEIGHTS_NAME,
    EXPLAINED_LAYERS_KEY,
    GRADIENT_NAME,
    TARGET_LAYER_KEY,
    gradient_output,
)
from model.onnx_graph import INPUT_NAME, LOGITS_NAME
from model.ort import cpu_session

# The largest |onnxruntime - torch| gradient accepted, relative to the layer's largest
# |torch gradient|. Measured differences on real photos are about 2e-6 (float32
# round-off in a different summation order); a wrong routing or a wrong term is
# of the order of the gradient itself.
GRADIENT_TOLERANCE = 1e-4
# Activations as the forward check scales them: by max(1, |largest activation|).
ACTIVATION_TOLERANCE = 1e-4


@dataclass(frozen=True)
class GradientParity:
    """How far one layer's ONNX activation and gradient are from PyTorch's."""

    layer: str
    activation_max_abs_diff: float
    gradient_max_abs_diff: float
    gradient_max_rel_diff: float  # / max |torch gradient| of the layer
    gradient_max_abs: float  # max |torch gradient|, so a vanishing gradient shows

    def as_dict(self) -> dict[str, float]:
        report = asdict(self)
        del report["layer"]
        return report


def one_hot(class_index_per_image: Sequence[int], num_classes: int) -> np.ndarray:
    """The `class_weights` input that selects one class per image."""
    weights = np.zeros((len(class_index_per_image), num_classes), np.float32)
    weights[np.arange(len(class_index_per_image)), list(class_index_per_image)] = 1.0
    return weights


class TorchReference(NamedTuple):
    """What torch.autograd gives for a batch and class weights."""

    activations: dict[str, np.ndarray]
    gradients: dict[str, np.ndarray]  # d(sum class_weights * logits) / d activation
    logits: np.ndarray


def torch_gradients(
    model: AlexNet, batch: np.ndarray, layers: Sequence[str], class_weights: np.ndarray
) -> TorchReference:
    """Activations, their gradients and the logits, by PyTorch and torch.autograd."""
    model = model.eval()
    outputs = model.forward_all(torch.from_numpy(batch))
    logits = outputs[model.arch.layers[-1].name]
    score = (logits * torch.from_numpy(class_weights)).sum()
    grads = torch.autograd.grad(score, [outputs[layer] for layer in layers])
    return TorchReference(
        {layer: outputs[layer].detach().numpy() for layer in layers},
        {layer: grad.numpy() for layer, grad in zip(layers, grads, strict=True)},
        logits.detach().numpy(),
    )


def check_gradient_parity(
    model: AlexNet,
    onnx_model: onnx.ModelProto | Path,
    batch: np.ndarray,
    target_layer: str,
    class_index_per_image: Sequence[int],
) -> GradientParity:
    """Compare one target layer's activation and gradient; raise if they differ."""
    return check_explain_parity(
        model, onnx_model, batch, class_index_per_image, layers=[target_layer]
    )[target_layer]


def check_explain_parity(
    model: AlexNet,
    onnx_model: onnx.ModelProto | Path,
    batch: np.ndarray,
    class_index_per_image: Sequence[int],
    layers: Sequence[str] | None = None,
) -> dict[str, GradientParity]:
    """Compare every explained layer (default: all the graph explains); raise past tolerance."""
    session = cpu_session(
        onnx_model.SerializeToString() if isinstance(onnx_model, onnx.ModelProto) else onnx_model
    )
    outputs = _output_names(session.get_modelmeta().custom_metadata_map, layers)
    class_weights = one_hot(class_index_per_image, model.num_classes)
    expected = torch_gradients(model, batch, list(outputs), class_weights)
    names = [LOGITS_NAME, *(name for pair in outputs.values() for name in pair)]
    feeds = {INPUT_NAME: batch, CLASS_WEIGHTS_NAME: class_weights}
    got = dict(zip(names, session.run(names, feeds), strict=True))
    report = {
        layer: _compare(
            layer,
            got[activation_name],
            expected.activations[layer],
            got[gradient_name],
            expected.gradients[layer],
        )
        for layer, (activation_name, gradient_name) in outputs.items()
    }
    # The graph's own logits too: a service may rank classes from them.
    diff = float(np.max(np.abs(got[LOGITS_NAME] - expected.logits)))
    scale = max(1.0, float(np.max(np.abs(expected.logits))))
    if diff / scale > ACTIVATION_TOLERANCE:
        raise UserFacingError(
            f"the gradient graph's logits differ from PyTorch's by {diff:.3g} (scale {scale:.3g})"
        )
    return report


def _output_names(
    metadata: dict[str, str], layers: Sequence[str] | None
) -> dict[str, tuple[str, str]]:
    """Per layer to check, the graph's (activation, gradient) output names."""
    if TARGET_LAYER_KEY in metadata:
        target = metadata[TARGET_LAYER_KEY]
        if layers is not None and list(layers) != [target]:
            raise ValueError(f"this gradient graph explains {target}, not {', '.join(layers)}")
        return {target: (ACTIVATION_NAME, GRADIENT_NAME)}
    explained = metadata.get(EXPLAINED_LAYERS_KEY, "").split(",")
    missing = [layer for layer in layers or [] if layer not in explained]
    if missing:
        raise ValueError(f"this graph does not explain {', '.join(missing)}")
    return {layer: (layer, gradient_output(layer)) for layer in layers or explained}


def _compare(
    layer: str,
    activation: np.ndarray,
    expected_activation: np.ndarray,
    gradient: np.ndarray,
    expected_gradient: np.ndarray,
) -> GradientParity:
    if activation.shape != expected_activation.shape or gradient.shape != expected_gradient.shape:
        raise UserFacingError(
            f"{layer}: ONNX activation/gradient shapes {activation.shape}/{gradient.shape} "
            f"differ from PyTorch's {expected_activation.shape}"
        )
    act_diff = float(np.max(np.abs(activation - expected_activation)))
    act_scale = max(1.0, float(np.max(np.abs(expected_activation))))
    grad_diff = float(np.max(np.abs(gradient - expected_gradient)))
    grad_scale = float(np.max(np.abs(expected_gradient)))
    # A gradient that is zero everywhere in torch must be zero in ONNX as well.
    grad_rel = grad_diff / grad_scale if grad_scale > 0 else (0.0 if grad_diff == 0 else np.inf)
    if act_diff / act_scale > ACTIVATION_TOLERANCE:
        raise UserFacingError(
            f"{layer}: ONNX activation differs from PyTorch by {act_diff:.3g} "
            f"(scale {act_scale:.3g}); refusing to write a gradient graph that does not match"
        )
    if grad_rel > GRADIENT_TOLERANCE:
        raise UserFacingError(
            f"{layer}: ONNX gradient differs from torch.autograd by {grad_diff:.3g} "
            f"({grad_rel:.3g} of its largest value {grad_scale:.3g}); "
            "refusing to write a gradient graph that does not match"
        )
    return GradientParity(layer, act_diff, grad_diff, grad_rel, grad_scale)
