"""`alexnet serve`: run the HTTP service over an exported model (no torch needed)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve the exported model over HTTP",
        description="Serve the exported model over HTTP (REST /v1, KServe v2, /metrics, the "
        "web page). Every option is also a setting: ALEXNET_ARTIFACTS, ALEXNET_HOST, "
        "ALEXNET_PORT; options win over the environment.",
    )
    parser.add_argument(
        "--artifacts",
        help="folder with alexnet.onnx and manifest.json "
        "(default: $ALEXNET_ARTIFACTS or ./artifacts)",
    )
    parser.add_argument("--host", help="address to bind (default: $ALEXNET_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind (default: $ALEXNET_PORT or 8000)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from service.main import serve

    overrides = {
        key: value
        for key in ("artifacts", "host", "port")
        if (value := getattr(args, key)) is not None
    }
    return serve(**overrides)
