"""The hand-written ONNX backward pass against torch.autograd, layer by layer.

Each variant's seeded model and explain graph are built once for the module; the
small hand-made architectures isolate max-pool routing and the LRN backward.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from core.errors import UserFacingError
from core.preprocess import PreprocessSpec, preprocess_image
from model.architecture import (
    Architecture,
    LayerSpec,
    build_architecture,
    paper_alexnet,
)
from model.gradient_parity import (
    GRADIENT_TOLERANCE,
    check_explain_parity,
    check_gradient_parity,
    choice_layers,
    differing_choices,
    one_hot,
    torch_gradients,
)
from model.network import AlexNet
from model.onnx_backward import (
    build_explain_model,
    build_gradient_model,
    explainable_layers,
    gradient_output,
)
from model.onnx_graph import build_onnx_model
from tests.support import DESIGN_LAYERS

# `camera` (grey, flat sky) has near-ties that onnxruntime and torch may break apart.
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera")
NUM_CLASSES = 1000
# Per image, which class to explain: ranked 2nd, 500th, last, ... (never the top-1).
RANKS = (1, 499, NUM_CLASSES - 1, 1, 499)


@dataclass
class Seeded:
    """A seeded, untrained variant with real photos preprocessed for it."""

    model: AlexNet
    weights: dict[str, np.ndarray]
    batch: np.ndarray


@dataclass
class Explained:
    """A seeded variant, its explain graph and, per photo, a class that is not the top-1."""

    seeded: Seeded
    graph: onnx.ModelProto
    classes: list[int]

    @property
    def model(self) -> AlexNet:
        return self.seeded.model

    @property
    def batch(self) -> np.ndarray:
        return self.seeded.batch


def _weights(model: AlexNet) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def _session(graph: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def seeded(photo_arrays: dict[str, np.ndarray]) -> Callable[[str], Seeded]:
    """Each variant's model, built once for the module when first asked for."""
    cache: dict[str, Seeded] = {}

    def get(variant: str) -> Seeded:
        if variant not in cache:
            arch = build_architecture(variant, NUM_CLASSES)
            torch.manual_seed(0)
            model = AlexNet(arch).eval()
            spec = PreprocessSpec.for_input(arch.input_size)
            batch = np.stack(
                [
                    preprocess_image(Image.fromarray(photo_arrays[n]).convert("RGB"), spec)
                    for n in PHOTOS
                ]
            )
            cache[variant] = Seeded(model, _weights(model), batch)
        return cache[variant]

    return get


@pytest.fixture(scope="module", params=["paper", "torchvision"])
def explained(request: pytest.FixtureRequest, seeded: Callable[[str], Seeded]) -> Explained:
    variant = seeded(request.param)
    with torch.no_grad():
        ranking = variant.model(torch.from_numpy(variant.batch)).argsort(1, descending=True)
    classes = [int(ranking[i, rank]) for i, rank in enumerate(RANKS)]
    graph = build_explain_model(variant.model.arch, variant.weights)
    return Explained(variant, graph, classes)


def test_every_layer_matches_autograd_on_real_photos(explained: Explained) -> None:
    arch = explained.model.arch
    expected_layers = [
        name for name in DESIGN_LAYERS if name in arch.layer_names and not name.startswith("fc")
    ]
    assert explainable_layers(arch) == expected_layers
    with torch.no_grad():
        top1 = explained.model(torch.from_numpy(explained.batch)).argmax(1).tolist()
    assert all(c != t for c, t in zip(explained.classes, top1, strict=True))

    report = check_explain_parity(
        explained.model, explained.graph, explained.batch, explained.classes
    )
    assert list(report.layers) == expected_layers
    names = arch.layer_names
    for layer, parity in report.layers.items():
        assert parity.gradient_max_abs > 0, layer  # a real, non-vanishing gradient
        assert parity.gradient_max_rel_diff <= GRADIENT_TOLERANCE, layer
        assert parity.activation_max_abs_diff < 1e-4, layer
        # Where no ReLU or pool above the layer chose otherwise than torch's own forward,
        # torch.autograd with its own choices agrees as well.
        above = names[names.index(layer) + 1 :]
        if not any(report.differing_choices.get(name, 0) for name in above):
            assert parity.own_choices_max_rel_diff <= GRADIENT_TOLERANCE, layer


def test_gradient_is_linear_in_the_class_weights(explained: Explained) -> None:
    # Any class_weights, not just one-hot: d(sum_c w_c logit_c) = sum_c w_c d logit_c.
    rng = np.random.default_rng(1)
    weights = rng.normal(size=(len(explained.batch), NUM_CLASSES)).astype(np.float32)
    layers, choosers = ["conv1", "pool3"], choice_layers(explained.model.arch)
    names = [gradient_output(layer) for layer in layers] + choosers
    feeds = {"input": explained.batch, "class_weights": weights}
    got = dict(zip(names, _session(explained.graph).run(names, feeds), strict=True))
    # torch.autograd on the linear piece onnxruntime's forward values chose.
    choices = {name: got[name] for name in choosers}
    reference = torch_gradients(explained.model, explained.batch, layers, weights, choices)
    for layer in layers:
        expected = reference.gradients[layer]
        relative = np.abs(got[gradient_output(layer)] - expected).max() / np.abs(expected).max()
        assert relative <= GRADIENT_TOLERANCE, layer


def test_explain_graph_starts_with_the_forward_models_nodes(explained: Explained) -> None:
    forward = build_onnx_model(explained.model.arch, explained.seeded.weights)
    n = len(forward.graph.node)
    assert [x.SerializeToString() for x in explained.graph.graph.node[:n]] == [
        x.SerializeToString() for x in forward.graph.node
    ]
    # The weights are the forward model's, each stored once.
    forward_weights = {i.name for i in forward.graph.initializer}
    explain_weights = [i.name for i in explained.graph.graph.initializer]
    assert len(explain_weights) == len(set(explain_weights))
    assert forward_weights <= set(explain_weights)
    extra = [i for i in explained.graph.graph.initializer if i.name not in forward_weights]
    assert sum(onnx.numpy_helper.to_array(i).size for i in extra) < 10


@pytest.mark.parametrize("target", [None, "pool1"], ids=["default-conv5", "pool1"])
def test_single_target_graph(target: str | None, seeded: Callable[[str], Seeded]) -> None:
    paper = seeded("paper")
    arch = paper.model.arch
    graph = (
        build_gradient_model(arch, paper.weights)
        if target is None
        else build_gradient_model(arch, paper.weights, target)
    )
    layer = target or "conv5"
    assert [o.name for o in graph.graph.output] == ["logits", "activation", "gradient"]
    assert [i.name for i in graph.graph.input] == ["input", "class_weights"]
    parity = check_gradient_parity(paper.model, graph, paper.batch, layer, [3, 7, 999, 0, 1])
    assert parity.layer == layer and parity.gradient_max_abs > 0
    assert parity.gradient_max_rel_diff <= GRADIENT_TOLERANCE
    with pytest.raises(ValueError, match="explains"):
        check_gradient_parity(paper.model, graph, paper.batch, "conv1", [0] * len(PHOTOS))
    with pytest.raises(ValueError, match="one class per image"):
        check_gradient_parity(paper.model, graph, paper.batch, layer, [3, 7])


def test_only_conv_pool_and_norm_layers_can_be_explained() -> None:
    arch = paper_alexnet(10)
    weights = _weights(AlexNet(arch))
    with pytest.raises(ValueError, match="cannot explain layer 'fc6'"):
        build_gradient_model(arch, weights, "fc6")


# --- small hand-made architectures -------------------------------------------------


def _tiny(size: int, layers: tuple[LayerSpec, ...]) -> Architecture:
    return Architecture(variant="tiny", input_size=size, layers=layers)


def _pool_then_fc() -> Architecture:
    # A 1x1 conv copying the red channel, one 3x3/2 pool (5x5 -> 2x2), four logits.
    return _tiny(
        5,
        (
            LayerSpec("conv1", "conv", out=1, kernel=1, relu=True),
            LayerSpec("pool1", "maxpool", kernel=3, stride=2),
            LayerSpec("fc8", "fc", out=4),
        ),
    )


def _pool_model() -> AlexNet:
    model = AlexNet(_pool_then_fc()).eval()
    model.load_state_dict(
        {
            "layers.conv1.weight": torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1),
            "layers.conv1.bias": torch.zeros(1),
            "layers.fc8.weight": torch.eye(4),  # logit i = pooled output i
            "layers.fc8.bias": torch.zeros(4),
        }
    )
    return model


def _conv1_gradient(model: AlexNet, plane: np.ndarray, class_weights: np.ndarray) -> np.ndarray:
    image = np.zeros((1, 3, *plane.shape), np.float32)
    image[0, 0] = plane
    graph = build_gradient_model(model.arch, _weights(model), "conv1")
    got = _session(graph).run(["gradient"], {"input": image, "class_weights": class_weights})[0]
    expected = torch_gradients(model, image, ["conv1"], class_weights).gradients
    np.testing.assert_array_equal(got, expected["conv1"])  # torch routes the same way
    return got[0, 0]


def test_reference_takes_the_given_choices_at_a_near_tie() -> None:
    # Two elements of window (0, 0) one float32 step apart: torch's own forward takes
    # the larger; an implementation whose round-off ranked them the other way routes
    # the gradient to the other, and the reference must follow it when told.
    model = _pool_model()
    image = np.zeros((1, 3, 5, 5), np.float32)
    image[0, 0, 0, 0], image[0, 0, 0, 1] = 5.0, np.nextafter(np.float32(5.0), np.float32(6))
    class_weights = np.array([[1.0, 0.0, 0.0, 0.0]], np.float32)
    own = torch_gradients(model, image, ["conv1"], class_weights)
    assert own.gradients["conv1"][0, 0, 0, 1] == 1.0
    theirs = own.activations["conv1"].copy()
    theirs[0, 0, 0, 0] += 1e-6  # the other element wins in "their" forward values
    same = torch_gradients(model, image, ["conv1"], class_weights, {"conv1": theirs})
    assert same.gradients["conv1"][0, 0, 0, 0] == 1.0
    assert same.gradients["conv1"].sum() == 1.0
    assert differing_choices(model.arch, {"conv1": theirs}, own.activations) == {
        "conv1": 0,
        "pool1": 1,
    }


def test_maxpool_adds_the_gradients_of_windows_sharing_a_max() -> None:
    plane = np.ones((5, 5), np.float32)
    plane[1, 2] = 9.0  # the max of windows (0, 0) and (0, 1), which overlap in column 2
    plane[3, 0] = 8.0  # window (1, 0) alone
    plane[4, 4] = 7.0  # window (1, 1) alone
    # Pooled outputs (row-major) are logits 0..3; weigh them 1, 10, 100, 1000.
    class_weights = np.array([[1.0, 10.0, 100.0, 1000.0]], np.float32)
    expected = np.zeros((5, 5), np.float32)
    expected[1, 2], expected[3, 0], expected[4, 4] = 11.0, 100.0, 1000.0
    np.testing.assert_array_equal(_conv1_gradient(_pool_model(), plane, class_weights), expected)


def test_maxpool_ties_go_to_the_first_maximum_like_torch() -> None:
    # An all-zero map (a dead ReLU region): every window's elements tie. Both
    # onnxruntime and torch pick the first in row-major order, so the centre element,
    # first of window (1, 1) only, gets that window's gradient alone.
    plane = np.zeros((5, 5), np.float32)
    class_weights = np.array([[1.0, 10.0, 100.0, 1000.0]], np.float32)
    expected = np.zeros((5, 5), np.float32)
    expected[0, 0], expected[0, 2], expected[2, 0], expected[2, 2] = 1.0, 10.0, 100.0, 1000.0
    np.testing.assert_array_equal(_conv1_gradient(_pool_model(), plane, class_weights), expected)


PAPER_LRN = next(layer for layer in paper_alexnet(10).layers if layer.kind == "lrn")


@pytest.mark.parametrize(
    "lrn",
    [
        PAPER_LRN,  # n=5, beta=0.75: the Sqrt path
        dataclasses.replace(PAPER_LRN, lrn_size=3, lrn_beta=0.6, lrn_alpha=1e-3, lrn_k=1.0),
    ],
    ids=["paper", "other-constants-pow"],
)
def test_lrn_backward_matches_autograd_on_random_inputs(lrn: LayerSpec) -> None:
    arch = _tiny(
        6,
        (
            LayerSpec("conv1", "conv", out=12, kernel=1, relu=True),
            dataclasses.replace(lrn, name="norm1"),
            LayerSpec("fc8", "fc", out=5),
        ),
    )
    torch.manual_seed(0)
    model = AlexNet(arch).eval()
    rng = np.random.default_rng(0)
    # Post-ReLU activations of a trained conv1 reach the hundreds: there the
    # normalisation term is far from negligible and its gradient term matters.
    image = (rng.normal(size=(2, 3, 6, 6)) * 200).astype(np.float32)
    class_weights = rng.normal(size=(2, 5)).astype(np.float32)
    reference = torch_gradients(model, image, ["conv1", "norm1"], class_weights)
    expected = reference.gradients
    assert reference.activations["conv1"].max() > 100
    got = _session(build_explain_model(arch, _weights(model))).run(
        ["conv1_gradient"], {"input": image, "class_weights": class_weights}
    )[0]
    scale = np.abs(expected["conv1"]).max()
    assert np.abs(got - expected["conv1"]).max() / scale < 1e-5
    # Without the cross-channel term the gradient would be plainly different.
    without_cross = _lrn_direct_term_only(model, image, class_weights, expected["norm1"])
    assert np.abs(without_cross - expected["conv1"]).max() / scale > 1e-2


def _lrn_direct_term_only(
    model: AlexNet, image: np.ndarray, class_weights: np.ndarray, grad_out: np.ndarray
) -> np.ndarray:
    """db * d^-beta alone: what a backward that forgot the window sum would give."""
    spec = model.arch.layers[1]
    a = torch_gradients(model, image, ["conv1"], class_weights).activations["conv1"]
    a = a.astype(np.float64)
    squares = np.pad(a**2, ((0, 0), (spec.lrn_size // 2,) * 2, (0, 0), (0, 0)))
    window = sum(squares[:, i : i + a.shape[1]] for i in range(spec.lrn_size))
    return grad_out / (spec.lrn_k + spec.lrn_alpha * window) ** spec.lrn_beta


@pytest.mark.parametrize("size", [8, 9], ids=["output-padding-1", "exact"])
def test_strided_grouped_conv_backward_matches_autograd(size: int) -> None:
    # AlexNet's convs above any target have stride 1; a stride-2 conv whose input size
    # is not reached by (out - 1) * stride + kernel - 2 * padding needs output padding.
    arch = _tiny(
        size,
        (
            LayerSpec("conv1", "conv", out=4, kernel=1, relu=True),
            LayerSpec("conv2", "conv", out=6, kernel=3, stride=2, padding=1, groups=2, relu=True),
            LayerSpec("fc8", "fc", out=3),
        ),
    )
    torch.manual_seed(0)
    model = AlexNet(arch).eval()
    rng = np.random.default_rng(0)
    image = rng.normal(size=(2, 3, size, size)).astype(np.float32)
    class_weights = rng.normal(size=(2, 3)).astype(np.float32)
    expected = torch_gradients(model, image, ["conv1"], class_weights).gradients
    got = _session(build_gradient_model(arch, _weights(model), "conv1")).run(
        ["gradient"], {"input": image, "class_weights": class_weights}
    )[0]
    assert got.shape == (2, 4, size, size)
    assert np.abs(got - expected["conv1"]).max() / np.abs(expected["conv1"]).max() < 1e-5


def test_a_wrong_gradient_is_refused() -> None:
    model = _pool_model()
    wrong = _weights(model)
    wrong["layers.fc8.weight"] = wrong["layers.fc8.weight"] * 1.01  # logits, not activations
    graph = build_explain_model(model.arch, wrong)
    image = np.random.default_rng(0).random((1, 3, 5, 5)).astype(np.float32)
    with pytest.raises(UserFacingError, match="gradient differs"):
        check_explain_parity(model, graph, image, [2])
    right = build_explain_model(model.arch, _weights(model))
    assert check_explain_parity(model, right, image, [2]).layers["conv1"].gradient_max_abs > 0


def test_wrong_logits_are_refused() -> None:
    model = _pool_model()
    wrong = _weights(model)
    wrong["layers.fc8.bias"] = wrong["layers.fc8.bias"] + 0.5  # no gradient depends on it
    image = np.random.default_rng(0).random((1, 3, 5, 5)).astype(np.float32)
    with pytest.raises(UserFacingError, match="logits: the gradient graph's output differs"):
        check_explain_parity(model, build_explain_model(model.arch, wrong), image, [2])


def test_one_hot_selects_a_class_per_image() -> None:
    np.testing.assert_array_equal(one_hot([2, 0], 3), [[0, 0, 1], [1, 0, 0]])
