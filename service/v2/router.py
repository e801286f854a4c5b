"""The Open Inference Protocol (KServe v2): tritonclient, perf_analyzer and KServe work unchanged.

Health, server and model metadata, and Triton's extensions: model configuration
(`/config`), statistics (`/stats`), the model repository (service/v2/repository.py)
and inference with JSON or binary tensors (service/v2/infer.py). The models are the
views of service/v2/views.py over the one engine. Errors answer the protocol's
{"error": "..."} (service/errors.py does that).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from core.triton_config import PLATFORM
from service.engine import TensorInfo
from service.state import ServiceState, StateDep
from service.v2 import infer, repository
from service.v2.config import view_config
from service.v2.views import ModelView, all_views, find_view, is_available

router = APIRouter(prefix="/v2", tags=["v2 (KServe)"])
# Included by the app beside this one, not inside it: a nested router's routes would
# carry only their own part of the path, and the metrics label routes by their path.
ROUTERS = (router, infer.router, repository.router)

SERVER_NAME = "alexnet-serving"
EXTENSIONS = [
    "binary_tensor_data",
    "classification",
    "model_configuration",
    "model_repository",
    "statistics",
]
NOT_READY: dict[int | str, dict[str, Any]] = {503: {"description": "not ready"}}


def _ready(state: ServiceState) -> bool:
    return state.ready and not state.draining


@router.get("")
async def server_metadata(request: Request) -> dict[str, Any]:
    """Server name, version and the protocol extensions it speaks."""
    return {"name": SERVER_NAME, "version": request.app.version, "extensions": EXTENSIONS}


@router.get("/health/live")
async def server_live() -> dict[str, bool]:
    """200 while the process answers."""
    return {"live": True}


@router.get("/health/ready", responses=NOT_READY)
async def server_ready(state: StateDep) -> JSONResponse:
    """200 once the model is loaded and warmed up; 503 before that and while draining."""
    ready = _ready(state)
    return JSONResponse({"ready": ready}, status_code=200 if ready else 503)


def _tensor_metadata(tensor: TensorInfo) -> dict[str, Any]:
    return {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}


# Before /models/{name}, which would take "stats" for a model's name.
@router.get("/models/stats")
async def all_statistics(state: StateDep) -> dict[str, Any]:
    """Triton's inference statistics of every model view."""
    return _statistics(state, all_views(state))


@router.get("/models/{name}")
@router.get("/models/{name}/versions/{version}")
async def model_metadata(state: StateDep, name: str, version: str | None = None) -> dict[str, Any]:
    """Name, versions, platform, the input and the outputs this view lists."""
    view = find_view(state, name, version)
    return {
        "name": view.name,
        "versions": [view.version],
        "platform": PLATFORM,
        "inputs": [_tensor_metadata(tensor) for tensor in view.inputs],
        "outputs": [_tensor_metadata(tensor) for tensor in view.outputs],
    }


@router.get("/models/{name}/ready", responses=NOT_READY)
@router.get("/models/{name}/versions/{version}/ready", responses=NOT_READY)
async def model_ready(state: StateDep, name: str, version: str | None = None) -> JSONResponse:
    """200 when the model can take requests; 503 while it loads, drains or is unloaded."""
    view = find_view(state, name, version)
    ready = _ready(state) and is_available(state, view)
    return JSONResponse({"name": view.name, "ready": ready}, status_code=200 if ready else 503)


@router.get("/models/{name}/config")
@router.get("/models/{name}/versions/{version}/config")
async def model_config(state: StateDep, name: str, version: str | None = None) -> dict[str, Any]:
    """Triton's model configuration (what `alexnet export --triton` writes as config.pbtxt)."""
    return view_config(find_view(state, name, version), state.settings)


@router.get("/models/{name}/stats")
@router.get("/models/{name}/versions/{version}/stats")
async def model_statistics(
    state: StateDep, name: str, version: str | None = None
) -> dict[str, Any]:
    """Triton's inference statistics of one model view (counts, integer nanoseconds)."""
    return _statistics(state, [find_view(state, name, version)])


def _statistics(state: ServiceState, views: list[ModelView]) -> dict[str, Any]:
    return {"model_stats": [state.statistics.of(v.key).to_json(v.name, v.version) for v in views]}
