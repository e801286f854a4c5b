"""The main server against its variants: batching off, and int8 (CPU) or fp16 (GPU)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks import limit as inproc
from benchmarks.bursts import drive, merge, paired
from benchmarks.corpus import Multipart
from benchmarks.loadgen import run_load
from benchmarks.options import BenchConfig
from benchmarks.report import Results
from benchmarks.scrape import settle
from benchmarks.serverproc import Server, Watch, started_server
from core.runtime import CPU

if TYPE_CHECKING:
    from core.manifest import Precision
    from service.engine import Engine
    from service.settings import Settings

InProcess = tuple["Engine", "Settings", list[bytes]]  # the limit's engine, settings and images


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
