"""AlexNet as data: the one source of truth for every layer.

The PyTorch module, the ONNX graph, the layer table in the manifest (shapes,
parameters, multiply-adds, receptive fields) and the output names are all derived
from the layer specs here. Nothing in this module imports torch, so the layer
table can be computed anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.manifest import Layer

LayerKind = Literal["conv", "maxpool", "lrn", "fc"]  # the manifest's Layer.type


@dataclass(frozen=True)
class LayerSpec:
    """One inspectable layer. Conv and fc layers include their ReLU (except the last fc)."""

    name: str
    kind: LayerKind
    out: int = 0  # output channels (conv) or features (fc); 0 keeps the input's
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    groups: int = 1
    relu: bool = False
    dropout: float = 0.0  # applied to the input of an fc layer while training
    # Local response normalisation, with alpha as the paper writes it:
    # b = a / (k + alpha * sum a^2)^beta over `size` neighbouring channels.
    lrn_size: int = 0
    lrn_alpha: float = 0.0
    lrn_beta: float = 0.0
    lrn_k: float = 0.0

    @property
    def lrn_alpha_per_size(self) -> float:
        """Alpha as PyTorch's and ONNX's LRN take it: they divide it by the size."""
        return self.lrn_alpha * self.lrn_size


@dataclass(frozen=True)
class Architecture:
    """A named AlexNet variant: its input and its layer sequence."""

    variant: str
    input_size: int
    layers: tuple[LayerSpec, ...]

    @property
    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.layers]


def _conv(name: str, out: int, kernel: int, stride: int = 1, padding: int = 0, groups: int = 1):
    return LayerSpec(name, "conv", out, kernel, stride, padding, groups, relu=True)


def _pool(name: str) -> LayerSpec:
    # Overlapping pooling (section 3.4): z = 3, s = 2.
    return LayerSpec(name, "maxpool", kernel=3, stride=2)


def _lrn(name: str) -> LayerSpec:
    # Section 3.3: k = 2, n = 5, alpha = 1e-4, beta = 0.75.
    return LayerSpec(name, "lrn", lrn_size=5, lrn_alpha=1e-4, lrn_beta=0.75, lrn_k=2.0)


def _fc(name: str, out: int, *, relu: bool = True, dropout: float = 0.0) -> LayerSpec:
    return LayerSpec(name, "fc", out, relu=relu, dropout=dropout)


def paper_alexnet(num_classes: int = 1000) -> Architecture:
    """Krizhevsky et al. 2012, with the two-GPU split kept as groups=2 (60,965,224 params)."""
    return Architecture(
        variant="paper",
        # 227, not the paper's 224: only 227 gives conv1 its 55x55 output without padding.
        input_size=227,
        layers=(
            _conv("conv1", 96, 11, stride=4),
            _pool("pool1"),
            _lrn("norm1"),
            _conv("conv2", 256, 5, padding=2, groups=2),
            _pool("pool2"),
            _lrn("norm2"),
            _conv("conv3", 384, 3, padding=1),
            _conv("conv4", 384, 3, padding=1, groups=2),
            _conv("conv5", 256, 3, padding=1, groups=2),
            _pool("pool3"),
            _fc("fc6", 4096, dropout=0.5),
            _fc("fc7", 4096, dropout=0.5),
            _fc("fc8", num_classes, relu=False),
        ),
    )


def torchvision_alexnet(num_classes: int = 1000) -> Architecture:
    """torchvision's single-GPU AlexNet ("one weird trick"): 64/192/384/256/256, no LRN."""
    return Architecture(
        variant="torchvision",
        input_size=224,
        layers=(
            _conv("conv1", 64, 11, stride=4, padding=2),
            _pool("pool1"),
            _conv("conv2", 192, 5, padding=2),
            _pool("pool2"),
            _conv("conv3", 384, 3, padding=1),
            _conv("conv4", 256, 3, padding=1),
            _conv("conv5", 256, 3, padding=1),
            _pool("pool3"),
            _fc("fc6", 4096, dropout=0.5),
            _fc("fc7", 4096, dropout=0.5),
            _fc("fc8", num_classes, relu=False),
        ),
    )


VARIANTS = {"paper": paper_alexnet, "torchvision": torchvision_alexnet}


def build_architecture(variant: str, num_classes: int) -> Architecture:
    """The architecture of a named variant; a clear error for an unknown one."""
    try:
        factory = VARIANTS[variant]
    except KeyError:
        raise ValueError(f"unknown variant {variant!r}; choose one of {sorted(VARIANTS)}") from None
    return factory(num_classes)


def layer_table(arch: Architecture, in_channels: int = 3) -> list[Layer]:
    """Shapes, parameter and multiply-add counts and receptive fields, layer by layer."""
    channels, size = in_channels, arch.input_size
    field, jump = 1, 1
    rows: list[Layer] = []
    for spec in arch.layers:
        in_c = channels
        if spec.kind == "fc":
            # An fc layer is a convolution whose kernel covers its whole input.
            fan_in = channels * size * size
            field += (size - 1) * jump
            channels, size = spec.out, 1
            params = fan_in * spec.out + spec.out
            macs = fan_in * spec.out
            rows.append(
                Layer(
                    name=spec.name,
                    type="fc",
                    kernel=0,
                    stride=0,
                    padding=0,
                    groups=1,
                    in_channels=fan_in,
                    channels=channels,
                    output_shape=[channels],
                    parameters=params,
                    multiply_adds=macs,
                    receptive_field=field,
                    jump=jump,
                )
            )
            continue
        out_size = (size + 2 * spec.padding - spec.kernel) // spec.stride + 1
        if out_size < 1:
            raise ValueError(f"{spec.name}: input {size} is too small for kernel {spec.kernel}")
        if spec.kind == "conv":
            channels = spec.out
            weights_per_filter = (in_c // spec.groups) * spec.kernel * spec.kernel
            params = channels * weights_per_filter + channels
            macs = channels * out_size * out_size * weights_per_filter
        else:
            params = macs = 0
        if spec.kind != "lrn":  # LRN mixes channels, not positions
            field += (spec.kernel - 1) * jump
            jump *= spec.stride
        size = out_size
        rows.append(
            Layer(
                name=spec.name,
                type=spec.kind,
                kernel=spec.kernel,
                stride=spec.stride,
                padding=spec.padding,
                groups=spec.groups,
                in_channels=in_c,
                channels=channels,
                output_shape=[channels, size, size],
                parameters=params,
                multiply_adds=macs,
                receptive_field=field,
                jump=jump,
            )
        )
    return rows


def parameter_count(arch: Architecture) -> int:
    """Total learnable parameters, from the layer table."""
    return sum(row.parameters for row in layer_table(arch))
