"""The app factory: `create_app(settings)` wires routers, errors, metrics and the model's life."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from service.engine import Engine
from service.errors import install_error_handlers
from service.lifecycle import start_model
from service.limits import install_limits
from service.metrics import Metrics, MetricsMiddleware
from service.openapi_docs import document_errors
from service.request_context import RequestIdMiddleware
from service.routers import (
    channels,
    convolve,
    demos,
    explain,
    health,
    inspect,
    kserve_v1,
    model_info,
    page,
    predict,
    weights,
)
from service.routers.page import STATIC_DIR
from service.security import configured_key, install_security
from service.settings import Settings
from service.state import ServiceState
from service.traffic import InFlightMiddleware
from service.v2 import router as v2


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    """The service; pass an already opened `engine` to skip loading it in the lifespan."""
    state = ServiceState(settings=settings, metrics=Metrics(), engine=engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await start_model(state)
        try:
            yield
        finally:
            state.ready, state.draining = False, True
            if state.batcher is not None:
                await state.batcher.stop()
            state.decode_pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="AlexNet serving",
        version="0.1.0",
        lifespan=lifespan,
        description="Classify images, look inside AlexNet, convolve and pool images.",
    )
    app.state.service = state
    install_error_handlers(app)
    for router in (
        health.router,
        model_info.router,
        predict.router,
        inspect.router,
        explain.router,
        convolve.router,
        demos.router,
        weights.router,
        channels.router,
        kserve_v1.router,
        *v2.ROUTERS,
        page.router,
    ):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    document_errors(app, auth=bool(configured_key(settings)))
    # Outermost last: the request id must exist before metrics and handlers run; limits
    # and security sit inside metrics, so their refusals (401, 413) are counted too.
    app.add_middleware(InFlightMiddleware, in_flight=state.in_flight)
    install_limits(app, settings)
    install_security(app, settings)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    app.add_middleware(RequestIdMiddleware)
    return app
