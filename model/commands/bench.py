"""`alexnet bench`: measure the service against the raw onnxruntime limit."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="benchmark the service against raw onnxruntime",
        description="Start the service (or target --url), drive it with real JPEG photos at "
        "several concurrency levels, measure the in-process limit in the same run, and write "
        "a Markdown report and a plot under benchmarks/results/.",
    )
    from benchmarks.options import add_arguments

    add_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from benchmarks.bench import run_benchmark

    return run_benchmark(args)
