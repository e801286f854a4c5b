"""`alexnet bench`: the service under load against the in-process limit, in one run.

Order: in-process figures first (the limit, logits-only cost, convolution vs scipy)
while no server runs; then the service with its settings through every concurrency
level, the single-request probes, and, when the bench started the server itself,
the same service with batching off and the int8 (CPU) or fp16 (GPU) variant.
"""

from __future__ import annotations

import contextlib
import functools
import json
import operator
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchmarks import limit as inproc
from benchmarks import probes
from benchmarks.bf16_probe import probe as bf16_probe
from benchmarks.bf16_probe import summary as bf16_summary
from benchmarks.corpus import Multipart, build_corpus, large_rgb_jpeg, multipart
from benchmarks.explain_load import explain_latency, predictions_beside_explanations
from benchmarks.loadgen import LoadResult, choose_client, run_load
from benchmarks.machine import machine
from benchmarks.options import BenchConfig
from benchmarks.report import Level, Results, SerialReference, write
from benchmarks.scrape import diff, scrape, settle
from benchmarks.serverproc import Server, Usage, Watch, started_server
from core.runtime import CPU

if TYPE_CHECKING:
    from core.manifest import Precision
    from service.engine import Engine
    from service.settings import Settings

InProcess = tuple["Engine", "Settings", list[bytes]]  # the limit's engine, settings and images


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


@contextlib.contextmanager
def service(config: BenchConfig, log: Path, **settings: str) -> Iterator[Server]:
    """The --url server as it is, or a fresh `alexnet serve` with these settings."""
    if config.url:
        yield Server(config.url.rstrip("/"))
        return
    with started_server(config.artifacts, log, **{**config.service_settings, **settings}) as server:
        yield server


def run_benchmark(config: BenchConfig) -> int:
    """Measure, write benchmarks/results/<name>.md and .png, print the service/limit ratio."""
    from core.errors import UserFacingError
    from service.artifacts import ArtifactError, load_artifacts
    from service.engine import Engine
    from service.settings import Settings

    levels = config.concurrency
    quick = config.quick
    seconds = min(config.duration, 2.0) if quick else config.duration
    rounds = 4 if quick else 15
    client = choose_client(config.client)
    corpus = build_corpus(shapes=2 if quick else 5)
    boundary = "alexnetbenchboundary7f3a"
    bodies = [multipart([upload], boundary=boundary) for upload in corpus]
    blobs = [upload.data for upload in corpus]
    env_settings = {k.lower(): v for k, v in config.service_settings.items()}
    settings = Settings.model_validate({**env_settings, "artifacts": config.artifacts})
    started = time.perf_counter()
    load_before = ", ".join(f"{x:.2f}" for x in os.getloadavg())

    compare_at = config.compare_at if config.compare_at in levels else max(levels)
    print(f"in-process limit ({settings.artifacts}) ...", flush=True)
    try:
        artifacts = load_artifacts(settings.artifacts, settings.precision)
    except ArtifactError as exc:
        raise UserFacingError(f"{exc} (pass the exported model with --artifacts)") from None
    engine = Engine(
        artifacts,
        provider=settings.provider,
        intra_op_threads=settings.intra_op_threads,
        spin_wait=settings.spin_wait,
    )
    limit = inproc.measure_limit(
        engine,
        settings,
        blobs,
        seconds=seconds if quick else 10.0,
        rounds=rounds,
        candidates=(1, 8) if quick else inproc.BATCH_CANDIDATES,
        in_flight_batch=max(1, compare_at // 2),
    )
    print(
        f"  limit {limit.throughput:.1f} img/s at batch {limit.batch_size}; batch 1 "
        f"{limit.raw_batch1_ms:.1f} ms + decode {limit.decode_ms:.1f} ms",
        flush=True,
    )
    # Quick runs time the logits-only model at batch 1: a large batch costs seconds a round.
    logits = inproc.measure_logits_only(
        engine, settings, 1 if quick else limit.batch_size, 8 if quick else 12
    )
    providers = engine.providers
    jpeg = large_rgb_jpeg(1024)
    convolution = inproc.measure_convolution(jpeg, providers, rounds)

    logs = Path(tempfile.mkdtemp(prefix="alexnet-bench-logs-"))
    print(f"service ({client}) ...", flush=True)
    with service(config, logs / "server.log") as server, Watch(server.pid) as watch:
        info = probes.model_info(server.url)
        provider = str(info.get("provider", providers[0]))
        run_load(client, f"{server.url}/v1/predict", bodies, 4, 1.0)  # warm-up, discarded
        settle(server.url, quiet_s=1.0)
        sweep = [drive(server, watch, client, bodies, c, seconds) for c in levels]
        one_paired, serial = (
            paired_with_serial(
                engine, settings, blobs, (server, watch), client, bodies, seconds, 2 if quick else 3
            )
            if 1 in levels
            else (None, None)
        )
        activations = probes.activations_vs_predict(server.url, corpus[0], rounds)
        explain, beside = None, None
        if info.get("explain"):  # artifacts exported with the gradient graph
            print("explanations: latency, and predictions beside them ...", flush=True)
            explain = explain_latency(server.url, corpus[0], 3 if quick else 8)
            beside = predictions_beside_explanations(
                server.url,
                client,
                bodies,
                corpus[0],
                4,
                seconds,
                2 if quick else 3,
                settings.background_batch_size,
            )
        endpoint_ms, _ = probes.convolve_endpoint_ms(server.url, jpeg, rounds)
        limit_service = paired_limit(
            engine, settings, blobs, (server, watch), client, bodies, compare_at, seconds, limit
        )
        results = Results(
            name=config.name,
            machine=machine(provider, client),
            limit=limit,
            levels=sweep,
            logits_only=logits,
            convolution=convolution,
            compare_at=compare_at,
            convolve_endpoint_ms=endpoint_ms,
            activations=activations,
            one_paired=one_paired,
            serial=serial,
            limit_service=limit_service,
            explain_latency=explain,
            beside_explanations=beside,
        )
        results.machine["load average before the run"] = load_before
        results.machine["bf16"] = bf16_summary(bf16_probe())
        settings_text = (
            json.dumps(config.service_settings) if config.service_settings else "defaults"
        )
        results.machine["service settings"] = settings_text
        compare_variants(
            config, results, (server, watch), (engine, settings, blobs), bodies, client, logs
        )
        results.peak_rss = watch.peak_rss
    # Other work on the machine skews every figure: say how busy it was.
    results.machine["load average after the run"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    report = write(results, config.results)
    at = results.limit_service or results.level(compare_at)
    ratio = at.load.throughput / limit.throughput if at else float("nan")
    print(f"service / limit at concurrency {compare_at}: {ratio:.2f}")
    print(f"wrote {report} in {time.perf_counter() - started:.0f} s (server logs in {logs})")
    return 0


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


def compare_variants(
    config: BenchConfig,
    results: Results,
    main: tuple[Server, Watch],
    in_process: InProcess,
    bodies: list[Multipart],
    client: str,
    logs: Path,
) -> None:
    """Batching off, then int8 (CPU) or fp16 (GPU), each paired with the main server.

    The precision comparison also times both models alone (onnxruntime, alternated) and
    both pipelines in process (decode + inference, in bursts between the servers'), so the
    report can say how much of the model's ratio survives decoding and HTTP.
    """
    at = results.compare_at
    seconds = min(config.duration, 2.0) if config.quick else config.duration
    provider = results.machine["provider"]
    variant: Precision = "int8" if provider == CPU else "fp16"
    results.variant = variant
    entry = in_process[0].artifacts.manifest.files.get(variant)
    if entry is not None:
        results.variant_agreement = entry.top1_agreement
    if config.url:
        results.notes.append(
            "--url: batching-off and precision comparisons need servers the bench starts itself"
        )
        return
    runs = [("batching off", {"MAX_BATCH_SIZE": "1"})]
    if entry is not None:
        runs.append((variant, {"PRECISION": variant}))
    else:
        results.notes.append(f"the manifest offers no {variant} model: export with --{variant}")
    rounds = 2 if config.quick else 3
    for label, overrides in runs:
        print(f"service, {label}, in alternating bursts with the service as measured ...")
        log = logs / f"server-{label.replace(' ', '-')}.log"
        merged = {**config.service_settings, **overrides}
        with started_server(config.artifacts, log, **merged) as server, Watch(server.pid) as watch:
            run_load(client, f"{server.url}/v1/predict", bodies, 4, 1.0)
            settle(server.url, quiet_s=1.0)
            if label == "batching off":
                base, level = paired(main, (server, watch), client, bodies, at, seconds, rounds)
                results.batching_on, results.batching_off = base, level
            else:
                compare_precision(
                    results, main, (server, watch), in_process, bodies, client, seconds, rounds
                )


def compare_precision(
    results: Results,
    main: tuple[Server, Watch],
    other: tuple[Server, Watch],
    in_process: InProcess,
    bodies: list[Multipart],
    client: str,
    seconds: float,
    rounds: int,
) -> None:
    """fp32 and the variant: models alone, then servers and in-process pipelines alternated."""
    from service.artifacts import load_artifacts
    from service.engine import Engine

    engine, settings, blobs = in_process
    variant = results.variant
    quick = rounds < 3
    fast = Engine(
        load_artifacts(engine.artifacts.folder, variant),  # type: ignore[arg-type]
        provider=settings.provider,
        intra_op_threads=settings.intra_op_threads,
        spin_wait=settings.spin_wait,
    )
    batch = results.limit.in_flight_batch
    engines = {"fp32": engine, variant: fast}
    print(f"{variant} and fp32 alone, alternated, batch 1 and {batch} ...", flush=True)
    results.model_alone = [
        inproc.model_alone(engines, size, 4 if quick else 8, 2.0 if quick else 8.0)
        for size in sorted({1, batch})
    ]
    print(f"{variant} and fp32: servers and in-process pipelines (batch {batch}) alternated ...")
    base, level = [], []
    bursts: dict[str, list[inproc.Burst]] = {name: [] for name in engines}
    burst_s = max(seconds / rounds, 0.5)
    for index in range(rounds):
        steps = ["fp32 server", "variant server", *engines]
        for step in steps if index % 2 == 0 else steps[::-1]:
            if step == "fp32 server":
                base.append(drive(*main, client, bodies, results.compare_at, burst_s))
            elif step == "variant server":
                level.append(drive(*other, client, bodies, results.compare_at, burst_s))
            else:
                bursts[step].append(
                    inproc.pipelined_burst(engines[step], blobs, batch, settings, burst_s)
                )
    results.variant_baseline, results.variant_level = merge(base), merge(level)
    results.variant_inprocess_batch = batch
    results.variant_inprocess = {name: inproc.merge_bursts(b) for name, b in bursts.items()}
