"""`alexnet bench`: its options are `BenchConfig`'s fields."""

from __future__ import annotations

import inspect

from benchmarks.options import BenchConfig


class Bench(BenchConfig):
    __doc__ = inspect.cleandoc(BenchConfig.__doc__ or "")

    def cli_cmd(self) -> None:
        from benchmarks.bench import run_benchmark

        status = run_benchmark(self)
        if status:
            raise SystemExit(status)
