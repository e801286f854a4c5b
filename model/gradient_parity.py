"""Export-time check of the ONNX gradient graphs against torch.autograd.

The graphs of `model.onnx_backward` write every layer's backward pass by hand; this
check runs them in onnxruntime and compares their activations and gradients with
torch.autograd for the same images and classes, as `model.export`'s `check_parity`
does for the forward model.

AlexNet is piecewise linear below its LRNs: the backward pass depends on which
ReLUs are on and which element each max-pool window takes. onnxruntime's and
torch's forward values differ by float32 round-off (~1e-6), so where two elements
of a window are that close (a near-tie, as in flat image regions) the two may take
different ones, and each gradient is then exact for its own forward pass while the
two differ at that window by the whole routed gradient (6% of conv5's largest on
skimage's `camera`, from 1 window in 46,080). So the gradient is checked against
torch.autograd taking onnxruntime's choices (the same linear piece), and each
choice is itself checked: the forward activations must match torch's to 1e-4, so
a choice that differs can only be between near-equal values. The difference from
torch's own choices and the number of choices that differ are reported too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper
from torch.nn import functional as F

from core.errors import UserFacingError
from core.manifest import INPUT_NAME, LOGITS_NAME, gradient_output
from core.runtime import cpu_session
from model.architecture import Architecture, LayerSpec
from model.network import AlexNet
from model.onnx_backward import (
    ACTIVATION_NAME,
    CLASS_WEIGHTS_NAME,
    EXPLAINED_LAYERS_KEY,
    GRADIENT_NAME,
    TARGET_LAYER_KEY,
)

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
    gradient_max_abs_diff: float  # vs torch.autograd on onnxruntime's linear piece
    gradient_max_rel_diff: float  # the same / max |torch gradient| of the layer
    gradient_max_abs: float  # max |torch gradient|, so a vanishing gradient shows
    own_choices_max_rel_diff: float  # vs torch.autograd with torch's own ReLU/pool choices

    def as_dict(self) -> dict[str, float]:
        report = asdict(self)
        del report["layer"]
        return report


@dataclass(frozen=True)
class ExplainParity:
    """Every checked layer, and where torch's own forward chose otherwise than onnxruntime."""

    layers: dict[str, GradientParity]
    # Per ReLU or max-pool layer: units or windows whose on/off state or argmax differ.
    differing_choices: dict[str, int]


class TorchReference(NamedTuple):
    """What torch.autograd gives for a batch and class weights."""

    activations: dict[str, np.ndarray]
    gradients: dict[str, np.ndarray]  # d(sum class_weights * logits) / d activation
    logits: np.ndarray


def one_hot(class_index_per_image: Sequence[int], num_classes: int) -> np.ndarray:
    """The `class_weights` input that selects one class per image."""
    weights = np.zeros((len(class_index_per_image), num_classes), np.float32)
    weights[np.arange(len(class_index_per_image)), list(class_index_per_image)] = 1.0
    return weights


def torch_gradients(
    model: AlexNet,
    batch: np.ndarray,
    layers: Sequence[str],
    class_weights: np.ndarray,
    choices: dict[str, np.ndarray] | None = None,
) -> TorchReference:
    """Activations, their gradients and the logits, by PyTorch and torch.autograd.

    `choices` maps layer names to activations computed elsewhere (onnxruntime's):
    each conv ReLU listed there keeps the units that are on there, and each max-pool
    reading a listed layer takes the elements its argmax takes there (first maximum
    in row-major order, as both onnxruntime and torch break exact ties).
    """
    model = model.eval()
    x = torch.from_numpy(batch)
    outputs: dict[str, torch.Tensor] = {}
    source = None
    for spec in model.arch.layers:
        x = _apply_layer(model, spec, x, choices or {}, source)
        outputs[spec.name] = x
        source = spec.name
    logits = outputs[model.arch.layers[-1].name]
    score = (logits * torch.from_numpy(class_weights)).sum()
    grads = torch.autograd.grad(score, [outputs[layer] for layer in layers])
    return TorchReference(
        {layer: outputs[layer].detach().numpy() for layer in layers},
        {layer: grad.numpy() for layer, grad in zip(layers, grads, strict=True)},
        logits.detach().numpy(),
    )


def _apply_layer(
    model: AlexNet,
    spec: LayerSpec,
    x: torch.Tensor,
    choices: dict[str, np.ndarray],
    source: str | None,
) -> torch.Tensor:
    if spec.kind == "conv" and spec.relu and spec.name in choices:
        on = torch.from_numpy(choices[spec.name] > 0)
        return model.layers[spec.name](x) * on
    if spec.kind == "maxpool" and source in choices:
        _, index = F.max_pool2d(
            torch.from_numpy(choices[source]),
            spec.kernel,
            spec.stride,
            spec.padding,
            return_indices=True,
        )
        return x.flatten(2).gather(2, index.flatten(2)).view(index.shape)
    return model._apply_layer(spec, x)


def choice_layers(arch: Architecture) -> list[str]:
    """Layers whose activations fix the ReLU and max-pool choices: conv outputs, pool inputs."""
    names = arch.layer_names
    pooled = {names[i - 1] for i, spec in enumerate(arch.layers) if spec.kind == "maxpool" and i}
    return [
        spec.name
        for spec in arch.layers
        if (spec.kind == "conv" and spec.relu) or spec.name in pooled
    ]


def differing_choices(
    arch: Architecture, ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]
) -> dict[str, int]:
    """Per conv ReLU and max-pool: how many units or windows choose differently."""
    counts: dict[str, int] = {}
    source = None
    for spec in arch.layers:
        if spec.kind == "conv" and spec.relu:
            counts[spec.name] = int(((ours[spec.name] > 0) != (theirs[spec.name] > 0)).sum())
        elif spec.kind == "maxpool" and source is not None:
            index_ours, index_theirs = (
                F.max_pool2d(
                    torch.from_numpy(acts[source]),
                    spec.kernel,
                    spec.stride,
                    spec.padding,
                    return_indices=True,
                )[1]
                for acts in (ours, theirs)
            )
            counts[spec.name] = int((index_ours != index_theirs).sum())
        source = spec.name
    return counts


def check_gradient_parity(
    model: AlexNet,
    onnx_model: onnx.ModelProto | Path,
    batch: np.ndarray,
    target_layer: str,
    class_index_per_image: Sequence[int],
) -> GradientParity:
    """Compare one target layer's activation and gradient; raise if they differ."""
    report = check_explain_parity(
        model, onnx_model, batch, class_index_per_image, layers=[target_layer]
    )
    return report.layers[target_layer]


def check_explain_parity(
    model: AlexNet,
    onnx_model: onnx.ModelProto | Path,
    batch: np.ndarray,
    class_index_per_image: Sequence[int],
    layers: Sequence[str] | None = None,
) -> ExplainParity:
    """Compare every explained layer (default: all the graph explains); raise past tolerance."""
    if len(class_index_per_image) != len(batch):
        raise ValueError(
            f"{len(class_index_per_image)} classes for {len(batch)} images: "
            "give one class per image"
        )
    arch = model.arch
    choosers = choice_layers(arch)
    session = _session_exposing(onnx_model, choosers)
    outputs = _output_names(session.get_modelmeta().custom_metadata_map, layers)
    class_weights = one_hot(class_index_per_image, model.num_classes)
    names = [LOGITS_NAME, *choosers, *(name for pair in outputs.values() for name in pair)]
    names = list(dict.fromkeys(names))
    feeds = {INPUT_NAME: batch, CLASS_WEIGHTS_NAME: class_weights}
    got = dict(zip(names, session.run(names, feeds), strict=True))

    wanted = list(dict.fromkeys([*outputs, *choosers]))
    own = torch_gradients(model, batch, wanted, class_weights)
    ort_choices = {name: got[name] for name in choosers}
    same = torch_gradients(model, batch, list(outputs), class_weights, ort_choices)
    report = {
        layer: _compare(
            layer,
            got[activation_name],
            own.activations[layer],
            got[gradient_name],
            same.gradients[layer],
            own.gradients[layer],
        )
        for layer, (activation_name, gradient_name) in outputs.items()
    }
    # The graph's own logits too: a service may rank classes from them.
    _check_activation(LOGITS_NAME, got[LOGITS_NAME], own.logits)
    for name in choosers:  # the activations that made the choices
        _check_activation(name, got[name], own.activations[name])
    return ExplainParity(report, differing_choices(arch, ort_choices, own.activations))


def _session_exposing(
    onnx_model: onnx.ModelProto | Path, tensors: Sequence[str]
) -> ort.InferenceSession:
    """A CPU session on the model whose outputs include `tensors` (added where missing)."""
    if isinstance(onnx_model, Path):
        session = cpu_session(onnx_model)
        if all(name in {o.name for o in session.get_outputs()} for name in tensors):
            return session  # the explain graph: what is checked is the file as written
        onnx_model = onnx.load(str(onnx_model))
    model = onnx.ModelProto()
    model.CopyFrom(onnx_model)
    present = {output.name for output in model.graph.output}
    model.graph.output.extend(
        helper.make_tensor_value_info(name, TensorProto.FLOAT, None)
        for name in tensors
        if name not in present
    )
    return cpu_session(model.SerializeToString())


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


def _check_activation(name: str, got: np.ndarray, expected: np.ndarray) -> float:
    if got.shape != expected.shape:
        raise UserFacingError(
            f"{name}: ONNX shape {got.shape} differs from PyTorch's {expected.shape}"
        )
    diff = float(np.max(np.abs(got - expected)))
    scale = max(1.0, float(np.max(np.abs(expected))))
    if diff / scale > ACTIVATION_TOLERANCE:
        raise UserFacingError(
            f"{name}: the gradient graph's output differs from PyTorch's by {diff:.3g} "
            f"(scale {scale:.3g}); refusing to write a gradient graph that does not match"
        )
    return diff


def _relative(diff: float, scale: float) -> float:
    # A gradient that is zero everywhere in torch must be zero in ONNX as well.
    return diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))


def _compare(
    layer: str,
    activation: np.ndarray,
    expected_activation: np.ndarray,
    gradient: np.ndarray,
    expected_gradient: np.ndarray,
    own_choices_gradient: np.ndarray,
) -> GradientParity:
    act_diff = _check_activation(layer, activation, expected_activation)
    if gradient.shape != expected_gradient.shape:
        raise UserFacingError(
            f"{layer}: ONNX gradient shape {gradient.shape} differs from "
            f"PyTorch's {expected_gradient.shape}"
        )
    grad_diff = float(np.max(np.abs(gradient - expected_gradient)))
    grad_scale = float(np.max(np.abs(expected_gradient)))
    grad_rel = _relative(grad_diff, grad_scale)
    own_diff = float(np.max(np.abs(gradient - own_choices_gradient)))
    own_rel = _relative(own_diff, float(np.max(np.abs(own_choices_gradient))))
    if grad_rel > GRADIENT_TOLERANCE:
        raise UserFacingError(
            f"{layer}: ONNX gradient differs from torch.autograd by {grad_diff:.3g} "
            f"({grad_rel:.3g} of its largest value {grad_scale:.3g}); "
            "refusing to write a gradient graph that does not match"
        )
    return GradientParity(layer, act_diff, grad_diff, grad_rel, grad_scale, own_rel)
