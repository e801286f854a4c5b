"""Run the service with uvicorn: load the model first, so a bad artifact stops start-up at once."""

from __future__ import annotations

import math
from types import FrameType

import uvicorn

from service.app import create_app
from service.lifecycle import load_engine
from service.logging_setup import configure_logging
from service.settings import Settings
from service.state import ServiceState


class DrainingServer(uvicorn.Server):
    """uvicorn, but readiness turns false the moment SIGTERM or SIGINT arrives.

    uvicorn then stops accepting connections, lets requests in flight finish (at
    most `shutdown_timeout_s`) and only then runs the app's shutdown.
    """

    def __init__(self, config: uvicorn.Config, state: ServiceState) -> None:
        super().__init__(config)
        self.service_state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.service_state.draining = True
        super().handle_exit(sig, frame)


def serve(settings: Settings) -> int:
    """Serve until stopped; returns the exit status (1 if the server could not start).

    A model that cannot be loaded raises ArtifactError (the command line prints its
    one line) before a port is opened.
    """
    log_config = configure_logging(settings.log_level, settings.log_json)
    engine = load_engine(settings)
    app = create_app(settings, engine=engine)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=log_config,
        access_log=False,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout_s),
    )
    server = DrainingServer(config, app.state.service)
    server.run()
    return 0 if server.started else 1
