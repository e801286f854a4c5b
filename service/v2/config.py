"""A view's Triton model configuration: core's ModelConfig from the view and the settings.

The same dict `alexnet export --triton` writes as config.pbtxt, so a client sees one
configuration whether Triton or this server serves the model; only `kind` differs,
since a running server knows where it runs.
"""

from __future__ import annotations

from typing import Any

from core.runtime import GPU_PROVIDERS
from core.triton_config import Kind, model_config
from service.settings import Settings
from service.v2.views import ModelView, tensor_specs


def view_config(view: ModelView, settings: Settings) -> dict[str, Any]:
    kind: Kind = "KIND_GPU" if view.engine.provider in GPU_PROVIDERS else "KIND_CPU"
    return model_config(
        view.name,
        tensor_specs(view.inputs),
        tensor_specs(view.outputs),
        max_batch_size=settings.max_batch_size,
        # An integer: Triton's field is uint64, and clients parse it as one.
        max_queue_delay_us=round(settings.max_batch_wait_ms * 1000),
        kind=kind,
    )
