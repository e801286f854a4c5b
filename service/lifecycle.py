"""The model's life: open it, warm it, start batching; later, reload it from its folder.

A reload opens, checks and warms the new model beside the one serving, off the event
loop, then swaps it in between two batches: a request runs on the engine it started
with (the batcher keeps each item with its model), so none fails because of the swap,
and a folder that does not verify leaves the old model serving. The explainer is
swapped with the engine (it opens the new folder's gradient graph on first use).
Convolution and pooling keep their sessions: they depend only on the execution
providers, which the same settings choose again.
"""

from __future__ import annotations

import asyncio
import logging

from service.artifacts import load_artifacts
from service.batcher import BatchRecord, DynamicBatcher
from service.engine import Engine
from service.explainer import Explainer
from service.numerics.convolution import ConvolutionEngine
from service.numerics.pooling import PoolingEngine
from service.settings import Settings
from service.state import Filters, ServiceState

log = logging.getLogger("service.lifecycle")


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

    def observe(record: BatchRecord) -> None:  # one measurement, two views of it
        state.metrics.observe_batch(record)
        state.statistics.record_batch(record)

    state.batcher = DynamicBatcher(
        engine.run,
        max_batch_size=settings.max_batch_size,
        max_wait_s=settings.max_batch_wait_ms / 1000,
        max_queue=settings.max_queue,
        background_batch_size=settings.background_batch_size,
        observe=observe,
        callers_in_flight=lambda: state.in_flight.count,
    )
    state.batcher.start()
    state.explainer = _explainer(engine, settings)
    _announce(state, engine)
    state.ready = True
    log.info("ready: %s on %s", engine.artifacts.model_path.name, engine.provider)


async def reload_model(state: ServiceState) -> Engine:
    """Open the artifacts folder again and swap its model in; ArtifactError leaves all as was."""
    settings = state.settings
    async with state.reloading:
        engine = await asyncio.to_thread(load_engine, settings)
        await asyncio.to_thread(engine.warm_up, settings.max_batch_size)
        # Nothing awaits from here on: requests see the old engine or the new, never a mix.
        state.engine = engine
        state.explainer = _explainer(engine, settings)
        if state.batcher is not None:
            state.batcher.run = engine.run
        _announce(state, engine)
    manifest = engine.artifacts.manifest
    log.info("reloaded %s: %s version %s", engine.artifacts.folder, manifest.name, manifest.version)
    return engine


def _explainer(engine: Engine, settings: Settings) -> Explainer:
    return Explainer(engine.artifacts, engine.providers, settings.intra_op_threads)


def _announce(state: ServiceState, engine: Engine) -> None:
    state.metrics.model.info(
        {
            "name": engine.artifacts.manifest.name,
            "version": engine.artifacts.manifest.version,
            "provider": engine.provider,
            "precision": engine.artifacts.precision,
        }
    )
