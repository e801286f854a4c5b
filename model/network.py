"""The PyTorch AlexNet, built from the layer specs in `model.architecture`."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from model.architecture import Architecture, LayerSpec, layer_table

__all__ = ["AlexNet"]


def _module_for(spec: LayerSpec, in_features: int) -> nn.Module | None:
    if spec.kind == "conv":
        return nn.Conv2d(
            in_features, spec.out, spec.kernel, spec.stride, spec.padding, groups=spec.groups
        )
    if spec.kind == "fc":
        return nn.Linear(in_features, spec.out)
    return None  # pooling and LRN have no parameters


class AlexNet(nn.Module):
    """AlexNet whose forward can return every layer's activation by name."""

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.arch = arch
        self.num_classes = arch.layers[-1].out
        rows = layer_table(arch)
        self.layers = nn.ModuleDict()
        for spec, row in zip(arch.layers, rows, strict=True):
            module = _module_for(spec, row.in_channels)
            if module is not None:
                self.layers[spec.name] = module
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He initialisation: the paper's N(0, 0.01) stalls a from-scratch run of minutes."""
        for module in self.layers.values():
            if isinstance(module, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def _apply_layer(self, spec: LayerSpec, x: torch.Tensor) -> torch.Tensor:
        if spec.kind == "conv":
            x = self.layers[spec.name](x)
        elif spec.kind == "maxpool":
            x = F.max_pool2d(x, spec.kernel, spec.stride, spec.padding)
        elif spec.kind == "lrn":
            x = F.local_response_norm(
                x, spec.lrn_size, spec.lrn_alpha_per_size, spec.lrn_beta, spec.lrn_k
            )
        else:  # fc
            x = torch.flatten(x, 1)
            if spec.dropout:
                x = F.dropout(x, spec.dropout, self.training)
            x = self.layers[spec.name](x)
        return F.relu(x) if spec.relu else x

    def forward_all(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every layer's output by name, in order; the last one is the logits."""
        outputs: dict[str, torch.Tensor] = {}
        for spec in self.arch.layers:
            x = self._apply_layer(spec, x)
            outputs[spec.name] = x
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for spec in self.arch.layers:
            x = self._apply_layer(spec, x)
        return x
