"""The service measured in bursts: one level of load, and bursts alternated with another server
or with the same work in process, so load from elsewhere on the machine hits both alike."""

from __future__ import annotations

import functools
import operator
import os
import statistics
import time
from typing import TYPE_CHECKING

import numpy as np

from benchmarks import limit as inproc
from benchmarks.corpus import Multipart
from benchmarks.loadgen import LoadResult, run_load
from benchmarks.report import Level, SerialReference
from benchmarks.scrape import diff, scrape, settle
from benchmarks.serverproc import Server, Usage, Watch

if TYPE_CHECKING:
    from service.engine import Engine
    from service.settings import Settings


def drive(
    server: Server,
    watch: Watch,
    client: str,
    bodies: list[Multipart],
    concurrency: int,
    seconds: float,
) -> Level:
    """One level of load, bracketed by /metrics scrapes and the process watch."""
    before, opened = scrape(server.url), time.perf_counter()
    with watch.measure() as usage:
        load = run_load(client, f"{server.url}/v1/predict", bodies, concurrency, seconds)
    histograms = diff(scrape(server.url), before)
    window = time.perf_counter() - opened
    level = Level(
        load, usage[0] if server.pid else None, histograms, window, load_average=os.getloadavg()[0]
    )
    # Requests still in flight when the client stopped must not count towards the next level.
    settle(server.url, quiet_s=max(0.5, 2 * level.mean_ms("alexnet_inference_seconds") / 1000))
    print(
        f"  concurrency {concurrency:>3}: {load.throughput:6.1f} img/s, p50 {load.p50_ms:7.1f} "
        f"p99 {load.p99_ms:7.1f} ms, mean batch {level.mean_batch:.1f}, errors {load.errors}",
        flush=True,
    )
    return level


def merge(levels: list[Level]) -> Level:
    """Bursts against one server as one level: totals summed, percentiles the bursts' median."""
    loads = [level.load for level in levels]
    load = LoadResult(
        concurrency=loads[0].concurrency,
        requests=sum(x.requests for x in loads),
        errors=sum(x.errors for x in loads),
        duration_s=sum(x.duration_s for x in loads),
        p50_ms=statistics.median(x.p50_ms for x in loads),
        p90_ms=statistics.median(x.p90_ms for x in loads),
        p99_ms=statistics.median(x.p99_ms for x in loads),
        client_cpu_s=sum(x.client_cpu_s for x in loads),
        client=loads[0].client,
    )
    usages = [level.usage for level in levels if level.usage is not None]
    usage = (
        Usage(
            sum(u.wall_s for u in usages),
            sum(u.cpu_s for u in usages),
            max(u.peak_rss for u in usages),
        )
        if usages
        else None
    )
    names = set.intersection(*(set(level.histograms) for level in levels))
    histograms = {
        name: functools.reduce(operator.add, (level.histograms[name] for level in levels))
        for name in names
    }
    return Level(
        load,
        usage,
        histograms,
        sum(level.window_s for level in levels),
        len(levels),
        max(level.load_average for level in levels),
    )


def paired(
    first: tuple[Server, Watch],
    second: tuple[Server, Watch],
    client: str,
    bodies: list[Multipart],
    concurrency: int,
    seconds: float,
    rounds: int,
) -> tuple[Level, Level]:
    """Both servers in alternating bursts, so load from elsewhere on the machine hits both alike."""
    one: list[Level] = []
    two: list[Level] = []
    for _ in range(rounds):
        one.append(drive(*first, client, bodies, concurrency, seconds / rounds))
        two.append(drive(*second, client, bodies, concurrency, seconds / rounds))
    return merge(one), merge(two)


def paired_with_serial(
    engine: Engine,
    settings: Settings,
    blobs: list[bytes],
    main: tuple[Server, Watch],
    client: str,
    bodies: list[Multipart],
    seconds: float,
    rounds: int,
) -> tuple[Level, SerialReference]:
    """Concurrency 1 against the same images decoded and run one at a time in this process.

    In alternating bursts: latency tails drift with whatever else the machine runs, and
    a reference measured minutes earlier would count that drift as serving overhead.
    """
    print("concurrency 1, in alternating bursts with the same work in process ...", flush=True)
    decode = inproc.decoder(settings, engine)
    levels, p50s, p99s, images = [], [], [], 0
    for _ in range(rounds):
        times = inproc.serial_latencies(engine, decode, blobs, seconds / rounds) * 1000
        p50s.append(float(np.median(times)))
        p99s.append(float(np.percentile(times, 99)))
        images += len(times)
        print(f"  in process:       p50 {p50s[-1]:7.1f} p99 {p99s[-1]:7.1f} ms", flush=True)
        levels.append(drive(*main, client, bodies, 1, seconds / rounds))
    reference = SerialReference(
        statistics.median(p50s), statistics.median(p99s), images=images, bursts=rounds
    )
    return merge(levels), reference


def paired_limit(
    engine: Engine,
    settings: Settings,
    blobs: list[bytes],
    main: tuple[Server, Watch],
    client: str,
    bodies: list[Multipart],
    concurrency: int,
    seconds: float,
    limit: inproc.Limit,
) -> Level:
    """The limit's pipelined runs again, in bursts alternating with the service's.

    Measured alone before the service, the limit met whatever else the machine ran then
    (issue 17: a starved limit made the service look 1.59x faster than it). The figures
    measured here replace the pipelined ones in `limit`; returns the service's bursts.
    """
    sizes = sorted({limit.batch_size, limit.in_flight_batch}, reverse=True)
    rounds = max(2, min(4, round(seconds / 3)))
    burst_s = max(seconds / rounds, 0.5)
    print(f"concurrency {concurrency} and the in-process limit in alternating bursts ...")
    bursts: dict[int, list[inproc.Burst]] = {size: [] for size in sizes}
    levels = []
    for index in range(rounds):
        steps: list[int | None] = [None, *sizes]
        for step in steps if index % 2 == 0 else steps[::-1]:
            if step is None:
                levels.append(drive(*main, client, bodies, concurrency, burst_s))
            else:
                bursts[step].append(inproc.pipelined_burst(engine, blobs, step, settings, burst_s))
    for size, taken in bursts.items():
        limit.pipelined_by_batch[size] = inproc.merge_bursts(taken)
        rate, cpu = limit.pipelined_by_batch[size]
        print(f"  limit, batch {size}: {rate:.1f} img/s, {cpu:.1f} ms CPU per image", flush=True)
    limit.throughput, limit.cpu_ms_per_image = limit.pipelined_by_batch[limit.batch_size]
    limit.paired_bursts = rounds
    return merge(levels)
