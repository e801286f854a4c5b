"""Run the service with uvicorn: check the model first, so a bad artifact is one clear line."""

from __future__ import annotations

import logging
import sys
from typing import Any

import uvicorn

from service.app import create_app, load_engine
from service.artifacts import ArtifactError
from service.logging_setup import configure_logging
from service.settings import Settings

log = logging.getLogger("service.main")


def serve(**overrides: Any) -> int:
    """Serve until stopped; returns the exit status (2 when the artifacts are unusable)."""
    settings = Settings(**overrides)
    log_config = configure_logging(settings.log_level, settings.log_json)
    try:
        engine = load_engine(settings)
    except ArtifactError as exc:
        log.error("cannot start: %s", exc)
        print(f"alexnet serve: cannot start: {exc}", file=sys.stderr)
        return 2
    app = create_app(settings, engine=engine)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=log_config,
        access_log=False,
        timeout_graceful_shutdown=30,
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1
