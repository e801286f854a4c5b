"""The export's gradient graph (alexnet.explain.onnx) as the service runs it.

onnxruntime has no backpropagation, so the export wrote the backward pass as ONNX
nodes (model/onnx_backward.py), checked against torch.autograd: inputs the image
and per-class weights, outputs every explainable layer's activation and the
gradient of the weighted logits with respect to it. The graph reads its weights
from inside alexnet.onnx. Its session is opened on first use, with onnxruntime's
weight prepacking off: prepacking would copy the fc weights a second time (about
about 460 MB more resident memory for the paper model, measured), and reading them in
place costs no measurable time at batch 1.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from core.manifest import INPUT_NAME, LOGITS_NAME, ExplainGraph, gradient_output
from core.runtime import open_session, session_options
from service.artifacts import ModelArtifacts
from service.errors import BadInput, NotFound


@dataclass(frozen=True)
class LayerGradient:
    """One image's activation of a layer, the gradient there, and its logits."""

    activation: np.ndarray  # (C, H, W)
    gradient: np.ndarray  # (C, H, W): d(sum_c w_c logit_c) / d activation
    logits: np.ndarray  # (classes,)


class Explainer:
    """Runs the gradient graph; call `layer_gradient` on the inference thread."""

    def __init__(self, artifacts: ModelArtifacts, providers: list[str], threads: int = 0) -> None:
        self._artifacts = artifacts
        self._providers = providers
        self._threads = threads
        self._session: ort.InferenceSession | None = None
        self._lock = threading.Lock()

    @property
    def graph(self) -> ExplainGraph:
        explain = self._artifacts.manifest.explain
        if explain is None:
            raise NotFound(
                "these artifacts have no gradient graph (alexnet.explain.onnx): re-export the "
                f"model with `alexnet export --out {self._artifacts.folder}` for Grad-CAM"
            )
        return explain

    def check_layer(self, layer: str) -> None:
        if layer not in self.graph.layers:
            raise BadInput(
                f"Grad-CAM is offered for {', '.join(self.graph.layers)}; not for {layer!r}"
            )

    def layer_gradient(
        self, image: np.ndarray, class_weights: np.ndarray, layer: str
    ) -> LayerGradient:
        """For one (3, H, W) image and (classes,) weights: `layer`'s activation and gradient."""
        session = self._open()
        names = [layer, gradient_output(layer), LOGITS_NAME]
        feeds = {
            INPUT_NAME: image[None].astype(np.float32, copy=False),
            self.graph.class_weights_input: class_weights[None].astype(np.float32, copy=False),
        }
        activation, gradient, logits = session.run(names, feeds)
        return LayerGradient(activation[0], gradient[0], logits[0])

    def _open(self) -> ort.InferenceSession:
        with self._lock:
            if self._session is None:
                options = session_options(self._threads)
                options.add_session_config_entry("session.disable_prepacking", "1")
                path = self._artifacts.folder / self.graph.path
                self._session = open_session(path, self._providers, options)
            return self._session
