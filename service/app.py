"""The app factory: `create_app(settings)` wires routers, errors, metrics and the model's life."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from service.artifacts import load_artifacts
from service.batcher import DynamicBatcher
from service.engine import Engine
from service.errors import install_error_handlers
from service.explainer import Explainer
from service.limits import install_limits
from service.metrics import Metrics, MetricsMiddleware
from service.numerics.convolution import ConvolutionEngine
from service.numerics.pooling import PoolingEngine
from service.openapi_docs import document_errors
from service.request_context import RequestIdMiddleware
from service.routers import (
    channels,
    convolve,
    demos,
    explain,
    health,
    inspect,
    model_info,
    page,
    predict,
    weights,
)
from service.routers.page import STATIC_DIR
from service.security import configured_key, install_security
from service.settings import Settings
from service.state import Filters, ServiceState
from service.traffic import InFlightMiddleware
from service.v2 import router as v2

log = logging.getLogger("service.app")


def load_engine(settings: Settings) -> Engine:
    """Check the artifacts and open the model; raises ArtifactError with one clear line."""
    artifacts = load_artifacts(settings.artifacts, settings.precision)
    return Engine(
        artifacts,
        provider=settings.provider,
        intra_op_threads=settings.intra_op_threads,
        spin_wait=settings.spin_wait,
    )


async def start_model(state: ServiceState) -> None:
    """Load (unless preloaded), warm up, start the batcher, then declare readiness."""
    settings = state.settings
    if state.engine is None:
        state.engine = await asyncio.to_thread(load_engine, settings)
    engine = state.engine
    await asyncio.to_thread(engine.warm_up, settings.max_batch_size)
    state.filters = Filters(ConvolutionEngine(engine.providers), PoolingEngine(engine.providers))
    state.batcher = DynamicBatcher(
        engine.run,
        max_batch_size=settings.max_batch_size,
        max_wait_s=settings.max_batch_wait_ms / 1000,
        max_queue=settings.max_queue,
        background_batch_size=settings.background_batch_size,
        observe=state.metrics.observe_batch,
        callers_in_flight=lambda: state.in_flight.count,
    )
    state.batcher.start()
    state.explainer = Explainer(engine.artifacts, engine.providers, settings.intra_op_threads)
    state.metrics.model.info(
        {
            "name": engine.artifacts.manifest.name,
            "version": engine.artifacts.manifest.version,
            "provider": engine.provider,
            "precision": engine.artifacts.precision,
        }
    )
    state.ready = True
    log.info("ready: %s on %s", engine.artifacts.model_path.name, engine.provider)


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
        v2.router,
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
