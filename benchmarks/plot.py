"""The report's plot: throughput and p99 latency against concurrency."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmarks.report import Results


def plot(r: Results, path: Path) -> None:
    """Throughput and p99 latency against concurrency, with the limit as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = [lv.load.concurrency for lv in r.levels]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(levels, [lv.load.throughput for lv in r.levels], "o-", label="service")
    left.axhline(r.limit.throughput, color="grey", linestyle="--", label="in-process limit")
    left.set(xscale="log", xlabel="concurrency", ylabel="images / s", title="throughput")
    left.set_xticks(levels, [str(c) for c in levels])
    left.legend()
    right.plot(levels, [lv.load.p99_ms for lv in r.levels], "o-", color="tab:red")
    right.set(xscale="log", xlabel="concurrency", ylabel="ms", title="p99 latency")
    right.set_xticks(levels, [str(c) for c in levels])
    figure.suptitle(f"{r.name}: {r.machine.get('provider', '')}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
