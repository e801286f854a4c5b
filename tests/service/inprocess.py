"""The app under uvicorn in a thread of the test process, around the real engine held on cue.

The only way to make "queued behind a slow batch", "inference failed" and "SIGTERM
while a request is in flight" happen exactly when a test wants them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
import uvicorn

from service.app import create_app
from service.artifacts import load_artifacts
from service.engine import Engine
from service.main import DrainingServer
from service.settings import Settings
from service.state import ServiceState
from tests.support import free_port


class ControlledEngine:
    """The real Engine, except that inference can be held at a gate or made to fail once."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail_next = False
        self.batches: list[int] = []
        self.image_means: list[list[float]] = []  # per batch, each image's mean: which ran when

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def run(self, batch: np.ndarray, outputs: Sequence[str] = ("logits",)) -> dict[str, Any]:
        self.entered.set()
        assert self.gate.wait(timeout=60), "test gate never opened"
        self.batches.append(len(batch))
        self.image_means.append([float(image.mean()) for image in batch])
        if self.fail_next:
            self.fail_next = False
            # A genuine onnxruntime error: the graph takes float32, this is float64.
            self._engine.run(batch.astype(np.float64), outputs)
        return self._engine.run(batch, outputs)


def open_engine(artifacts: Path) -> Engine:
    """The real engine on one CPU thread, opened in this process."""
    return Engine(load_artifacts(artifacts), provider="cpu", intra_op_threads=1)


@contextmanager
def serve_in_thread(
    engine: Engine, **settings: Any
) -> Iterator[tuple[str, ServiceState, ControlledEngine, DrainingServer]]:
    """The app under uvicorn on a loopback port, in a thread of this process."""
    controlled = ControlledEngine(engine)
    options = {"provider": "cpu", "max_batch_size": 1, "max_batch_wait_ms": 0, **settings}
    app = create_app(Settings(**options), engine=cast(Engine, controlled))
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, ws="none"
    )
    server = DrainingServer(config, app.state.service)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "in-process server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", app.state.service, controlled, server
    finally:
        controlled.gate.set()
        server.should_exit = True
        thread.join(timeout=30)


def in_thread(fn: Any) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def target() -> None:
        box["result"] = fn()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


def raw_predict(url: str, image: bytes) -> bytes:
    """A complete POST /v1/predict as bytes, for a client that will vanish after sending it."""
    request = httpx.Request("POST", f"{url}/v1/predict", files={"image": ("x.jpg", image)})
    body = request.read()
    head = f"POST /v1/predict HTTP/1.1\r\nHost: {request.url.netloc.decode()}\r\n"
    head += "".join(
        f"{k.decode()}: {v.decode()}\r\n" for k, v in request.headers.raw if k.lower() != b"host"
    )
    return head.encode() + b"\r\n" + body


def wait_for(condition: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)
