"""Liveness, readiness and the metrics scrape."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from service.state import StateDep

router = APIRouter(tags=["health"])


@router.get("/health/live")
async def live() -> dict[str, str]:
    """The process is up and answering."""
    return {"status": "live"}


@router.get("/health/ready", responses={503: {"description": "not ready"}})
async def ready(state: StateDep) -> JSONResponse:
    """200 once the model is loaded and warmed up; 503 before that and while draining."""
    if state.ready and not state.draining:
        return JSONResponse({"status": "ready", "provider": state.require_engine().provider})
    reason = "draining" if state.draining else "loading"
    return JSONResponse({"status": reason}, status_code=503)


@router.get("/metrics", include_in_schema=False)
async def metrics(state: StateDep) -> Response:
    """Prometheus text format."""
    state.metrics.queue_depth.set(state.batcher.depth if state.batcher else 0)
    body, content_type = state.metrics.exposition()
    return Response(body, media_type=content_type)
