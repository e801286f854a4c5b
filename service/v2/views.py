"""Model views: the models this server lists, all over one engine and one batcher.

perf_analyzer (and any client generated from metadata) asks for every output a model's
metadata lists and sends the one input datatype it declares. One model cannot serve
both the explorer's "every layer" and a benchmark of encoded images, so the server
lists a few views of the same engine, which differ only in what they declare:

| view | input declared | input accepted | outputs |
| --- | --- | --- | --- |
| `{name}` | FP32 [-1, 3, H, W] | FP32, or BYTES (encoded images) | logits, every layer |
| `{name}_image` | BYTES [-1, 1] | BYTES (encoded images) | logits |
| `{name}_logits` | FP32 [-1, 3, H, W] | FP32 | logits |

Images of every view share the batches. Responses, statistics and the repository
index carry the view's own name.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.manifest import LOGITS_NAME
from core.triton_config import TensorSpec
from service.engine import Engine, TensorInfo
from service.errors import NotFound, NotReady
from service.state import ServiceState

ENCODED_IMAGES = "BYTES"
TENSOR = "FP32"


@dataclass(frozen=True)
class ViewKind:
    """One row of the table above."""

    suffix: str
    accepts: tuple[str, ...]  # input datatypes; the metadata declares the first
    every_layer: bool  # list every layer as an output, or logits alone


KINDS = (
    ViewKind("", (TENSOR, ENCODED_IMAGES), every_layer=True),
    ViewKind("_image", (ENCODED_IMAGES,), every_layer=False),
    ViewKind("_logits", (TENSOR,), every_layer=False),
)


@dataclass(frozen=True)
class ModelView:
    """A view as the current engine makes it: name, version, declared tensors."""

    name: str
    kind: ViewKind
    engine: Engine

    @property
    def version(self) -> str:
        return self.engine.artifacts.manifest.serving_version

    @property
    def key(self) -> tuple[str, str]:
        """What its statistics are kept under."""
        return self.name, self.version

    @property
    def inputs(self) -> list[TensorInfo]:
        graph_input = self.engine.inputs[0]
        if self.kind.accepts[0] == ENCODED_IMAGES:  # one encoded image per batch entry
            return [TensorInfo(graph_input.name, ENCODED_IMAGES, (-1, 1))]
        return [graph_input]

    @property
    def outputs(self) -> list[TensorInfo]:
        outputs = self.engine.outputs
        if self.kind.every_layer:
            return list(outputs)
        return [output for output in outputs if output.name == LOGITS_NAME]

    @property
    def output_names(self) -> list[str]:
        return [output.name for output in self.outputs]


def view_names(model_name: str) -> list[str]:
    return [model_name + kind.suffix for kind in KINDS]


def all_views(state: ServiceState) -> list[ModelView]:
    engine = state.require_engine()
    return [ModelView(state.settings.model_name + k.suffix, k, engine) for k in KINDS]


def find_view(state: ServiceState, name: str, version: str | None = None) -> ModelView:
    """The view called `name` (at `version`, if given); NotFound (404) otherwise."""
    view = next((v for v in all_views(state) if v.name == name), None)
    if view is None:
        served = ", ".join(view_names(state.settings.model_name))
        raise NotFound(f"unknown model '{name}'; this server serves {served}")
    if version is not None and version != view.version:
        raise NotFound(
            f"unknown version '{version}' of model '{name}'; the version served is '{view.version}'"
        )
    return view


def is_available(state: ServiceState, view: ModelView) -> bool:
    return view.name not in state.unloaded


def serving_view(state: ServiceState, name: str, version: str | None = None) -> ModelView:
    """The view, when it may take inference requests; 404 unknown, 503 unloaded."""
    view = find_view(state, name, version)
    if not is_available(state, view):
        raise NotReady(f"model '{name}' is unavailable (unloaded); load it to serve it again")
    return view


def tensor_specs(tensors: list[TensorInfo]) -> list[TensorSpec]:
    """Tensors as Triton's config describes them: dims without the batch axis."""
    return [TensorSpec(t.name, t.datatype, t.shape[1:]) for t in tensors]
