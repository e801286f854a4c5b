"""Run the service with uvicorn: check the model first, so a bad artifact is one clear line."""

from __future__ import annotations

import math
import sys
from types import FrameType
from typing import Any

import uvicorn
from pydantic import ValidationError
from pydantic_settings import SettingsError

from service.app import create_app, load_engine
from service.artifacts import ArtifactError
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


def refuse(reason: str) -> int:
    """Print why the service cannot start as one line on stderr (no traceback); exit status 2."""
    print(f"alexnet serve: cannot start: {' '.join(reason.split())}", file=sys.stderr)
    return 2


def _setting_error(error: Any) -> str:
    names = ".".join(str(part) for part in error["loc"])
    return f"setting {names} (ALEXNET_{names.upper()}): {error['msg']}"


def serve(**overrides: Any) -> int:
    """Serve until stopped; returns the exit status (2 when the model cannot be loaded)."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        return refuse("; ".join(_setting_error(error) for error in exc.errors()))
    except SettingsError as exc:  # e.g. a list setting that is not JSON
        return refuse(f"{exc} (list settings such as ALEXNET_CORS_ORIGINS are JSON lists)")
    log_config = configure_logging(settings.log_level, settings.log_json)
    try:
        engine = load_engine(settings)
    except ArtifactError as exc:
        return refuse(str(exc))
    except Exception as exc:  # a manifest malformed in a way the checks did not foresee
        return refuse(
            f"the artifacts in {settings.artifacts} are malformed ({type(exc).__name__}: {exc})"
        )
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
