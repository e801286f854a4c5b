"""Command-line options of `alexnet bench` (kept apart so --help needs no heavy imports)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--artifacts",
        type=Path,
        default=Path("artifacts"),
        help="exported model to serve and measure (default: %(default)s)",
    )
    parser.add_argument("--url", help="benchmark a running server instead of starting one")
    parser.add_argument(
        "--concurrency",
        default="1,4,16,64",
        help="comma list of concurrent clients (default: %(default)s)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=15.0,
        help="seconds per concurrency level (default: %(default)s)",
    )
    parser.add_argument(
        "--compare-at",
        type=int,
        default=16,
        help="concurrency of the limit, batching-off and int8/fp16 comparisons "
        "(default: %(default)s; the highest level if it is not among them)",
    )
    parser.add_argument(
        "--client",
        choices=("auto", "wrk", "httpx"),
        default="auto",
        help="load generator: wrk (Debian's package) or an async httpx client; "
        "auto takes wrk when installed (default: %(default)s)",
    )
    parser.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="a service setting for every server the bench starts, e.g. "
        "--set intra_op_threads=2 (repeatable; also used by the in-process limit)",
    )
    parser.add_argument(
        "--name",
        default="cpu",
        help="report name: <results>/<name>.md and .png (default: %(default)s)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=Path("benchmarks/results"),
        help="folder for reports and plots (default: %(default)s)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small, fast run (for tests): levels of at most 2 s, fewer repetitions",
    )
