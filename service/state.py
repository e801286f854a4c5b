"""What the running service holds: settings, model, batcher, metrics, worker pools."""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from service.artifacts import ModelArtifacts
from service.batcher import DynamicBatcher
from service.engine import Engine
from service.errors import NotReady
from service.explainer import Explainer
from service.metrics import Metrics
from service.numerics.convolution import ConvolutionEngine
from service.numerics.pooling import PoolingEngine
from service.settings import Settings
from service.traffic import InFlight
from service.v2.stats import InferenceStatistics


@dataclass(frozen=True)
class Filters:
    """Convolution and pooling on the model's execution provider."""

    convolution: ConvolutionEngine
    pooling: PoolingEngine


@dataclass
class ServiceState:
    """Everything a request handler may need, kept on `app.state.service`."""

    settings: Settings
    metrics: Metrics
    engine: Engine | None = None
    batcher: DynamicBatcher | None = None
    filters: Filters | None = None
    explainer: Explainer | None = None
    ready: bool = False
    draining: bool = False
    in_flight: InFlight = field(default_factory=InFlight)
    statistics: InferenceStatistics = field(default_factory=InferenceStatistics)
    unloaded: set[str] = field(default_factory=set)  # model views taken out of service
    reloading: asyncio.Lock = field(default_factory=asyncio.Lock)  # one reload at a time
    decode_pool: ThreadPoolExecutor = field(init=False)

    def __post_init__(self) -> None:
        workers = self.settings.decode_threads or os.cpu_count() or 1
        self.decode_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")

    @property
    def artifacts(self) -> ModelArtifacts:
        return self.require_engine().artifacts

    def require_engine(self) -> Engine:
        if self.engine is None:
            raise NotReady("the model is not loaded yet")
        return self.engine

    def require_filters(self) -> Filters:
        if self.filters is None:
            raise NotReady("the service is not ready yet")
        return self.filters

    def require_explainer(self) -> Explainer:
        if self.explainer is None or not self.ready:
            raise NotReady("the model is not ready yet")
        return self.explainer

    def require_batcher(self) -> DynamicBatcher:
        if self.batcher is None or not self.ready:
            raise NotReady("the model is not ready yet")
        return self.batcher


async def get_state(request: Request) -> ServiceState:
    """Async on purpose: FastAPI runs a sync dependency on a worker thread per request."""
    return request.app.state.service


StateDep = Annotated[ServiceState, Depends(get_state)]
