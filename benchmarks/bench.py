"""`alexnet bench`: the service under load against the in-process limit, in one run.

Order: in-process figures first (the limit, logits-only cost, convolution vs scipy)
while no server runs; then the service with its settings through every concurrency
level, the single-request probes, and, when the bench started the server itself,
the same service with batching off and the int8 (CPU) or fp16 (GPU) variant.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks import limit as inproc
from benchmarks import probes
from benchmarks.bf16_probe import probe as bf16_probe
from benchmarks.bf16_probe import summary as bf16_summary
from benchmarks.bursts import drive, paired_limit, paired_with_serial
from benchmarks.corpus import build_corpus, large_rgb_jpeg, multipart
from benchmarks.explain_load import explain_latency, predictions_beside_explanations
from benchmarks.loadgen import choose_client, run_load
from benchmarks.machine import machine
from benchmarks.options import BenchConfig
from benchmarks.report import Results, write
from benchmarks.scrape import settle
from benchmarks.serverproc import Server, Watch, started_server
from benchmarks.variants import compare_variants


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
