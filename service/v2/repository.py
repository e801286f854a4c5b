"""Triton's model repository extension over the one artifacts folder: index, load, unload.

The repository is the artifacts folder (ALEXNET_ARTIFACTS) seen as the model views of
service/v2/views.py. `load` reads the folder again (the start-up checks, checksums
included), opens and warms the model off the event loop and swaps it in
(service/lifecycle.py); every view serves the new model, and the one named becomes
READY. A folder that does not verify is a 400 with the reason, and the model loaded
before keeps serving. `unload` takes a view out of service (infer 503, ready false,
index UNAVAILABLE); the engine stays, since the other views and /v1 use it. Both
answer 200 with an empty body, as tritonclient expects, and need the API key when
one is set. Models are never uploaded: `config` and `file:` parameters are refused.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from core.errors import ArtifactError
from service.errors import BadInput, TooLarge
from service.lifecycle import reload_model
from service.state import StateDep
from service.v2.views import all_views, find_view, is_available

router = APIRouter(prefix="/v2/repository", tags=["v2 (KServe)"])

OPTIONAL_JSON: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}
MAX_BODY_BYTES = 65536
DONE: dict[int | str, dict[str, Any]] = {200: {"description": "done; the body is empty"}}


class IndexEntry(BaseModel):
    name: str
    version: str
    state: Literal["READY", "UNAVAILABLE"]
    reason: str | None = None  # only when not READY, as Triton does


@router.post(
    "/index",
    response_model=list[IndexEntry],
    response_model_exclude_none=True,
    openapi_extra=OPTIONAL_JSON,
)
async def repository_index(request: Request, state: StateDep) -> list[IndexEntry]:
    """Every model view with its version and state; `{"ready": true}` lists the READY ones."""
    body = await _json_object(request, allowed=("ready",))
    ready_only = body.get("ready", False)
    if not isinstance(ready_only, bool):
        raise BadInput(f"'ready' must be true or false, not {json.dumps(ready_only)}")
    entries = []
    for view in all_views(state):
        available = is_available(state, view)
        if available or not ready_only:
            entries.append(
                IndexEntry(
                    name=view.name,
                    version=view.version,
                    state="READY" if available else "UNAVAILABLE",
                    reason=None if available else "unloaded",
                )
            )
    return entries


@router.post(
    "/models/{name}/load",
    response_class=Response,
    responses=DONE,
    openapi_extra=OPTIONAL_JSON,
)
async def load_model(request: Request, state: StateDep, name: str) -> Response:
    """Reload the artifacts folder and serve the model named; the old one serves until then."""
    find_view(state, name)
    parameters = _parameters(await _json_object(request, allowed=("parameters",)))
    for key in parameters:
        if key == "config" or key.startswith("file:"):
            raise BadInput(
                f"load parameter '{key}' refused: this server loads its model from its "
                "artifacts folder (ALEXNET_ARTIFACTS) only; export into it, then load"
            )
        raise BadInput(f"unknown load parameter '{key}'; load takes none")
    try:
        await reload_model(state)
    except ArtifactError as exc:
        raise BadInput(
            f"model '{name}' not loaded, the model loaded before serves on: {exc}"
        ) from None
    state.unloaded.discard(name)
    return Response(status_code=200)


@router.post(
    "/models/{name}/unload",
    response_class=Response,
    responses=DONE,
    openapi_extra=OPTIONAL_JSON,
)
async def unload_model(request: Request, state: StateDep, name: str) -> Response:
    """Take the model (view) out of service until it is loaded again."""
    find_view(state, name)
    parameters = _parameters(await _json_object(request, allowed=("parameters",)))
    for key, value in parameters.items():
        if key != "unload_dependents":
            raise BadInput(f"unknown unload parameter '{key}'; unload takes unload_dependents")
        if not isinstance(value, bool):
            raise BadInput(f"'unload_dependents' must be true or false, not {json.dumps(value)}")
    state.unloaded.add(name)
    return Response(status_code=200)


async def _json_object(request: Request, allowed: tuple[str, ...]) -> dict[str, Any]:
    """The body as a JSON object; an empty body is `{}` (tritonclient sends none to index)."""
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:  # parsed on the event loop: keep it small
        raise TooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadInput(f"the body is not valid JSON: {exc.msg} at character {exc.pos}") from None
    except (ValueError, RecursionError):  # nested too deep, an integer of 4300 digits...
        raise BadInput("the body is not a JSON object this server can read") from None
    if not isinstance(body, dict):
        raise BadInput("the body must be a JSON object")
    unknown = [key for key in body if key not in allowed]
    if unknown:
        raise BadInput(
            f"unknown field {', '.join(map(repr, unknown))}; "
            f"this request takes {', '.join(allowed)}"
        )
    return body


def _parameters(body: dict[str, Any]) -> dict[str, Any]:
    parameters = body.get("parameters", {})
    if not isinstance(parameters, dict):
        raise BadInput("'parameters' must be a JSON object")
    return parameters
