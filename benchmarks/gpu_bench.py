"""The GPU check's benchmark: raw tensors over v2 and JPEGs over /v1/predict, per provider.

    python -m benchmarks.gpu_bench --artifacts DIR --out benchmarks/results/gpu.md
    python -m benchmarks.gpu_bench --artifacts DIR --out build/gpu-dry-run.md --dry-run

For each execution provider (CUDA, TensorRT when its libraries load) and precision (fp32,
fp16) it measures, against a fresh `alexnet serve` with batches of up to 256:
- in process: the service's `Engine.run` on one batch, by batch size (the device's limit);
- `POST /v2/models/alexnet/infer` with one binary FP32 tensor of N images, by batch size;
- `POST /v1/predict` with one 640x480 JPEG per request at concurrency 64 and 256.
`benchmarks/gpu_check.sh` runs it after installing, exporting and the GPU tests. A
`--dry-run` takes the CPU provider and tiny sizes: it checks the plumbing and writes the
report's skeleton, never a GPU figure. Configurations that would outrun `--budget-s` are
skipped and say so.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import numpy as np

from benchmarks.corpus import build_corpus, multipart
from benchmarks.loadgen import choose_client, run_load
from benchmarks.scrape import diff, scrape, settle
from benchmarks.serverproc import started_server

MAX_BATCH = 256
BATCHES = (1, 8, 32, 64, 128, 256)
PREDICT_CONCURRENCY: tuple[int, ...] = (64, 256)
TENSORRT_LIBRARIES = ("libnvinfer.so.10", "libnvonnxparser.so.10")  # onnxruntime-gpu 1.2x-1.31


@dataclass
class Config:
    provider: str  # the service's setting: cuda, tensorrt or cpu (dry run)
    precision: str
    engine_provider: str = ""  # what onnxruntime really gave the in-process engine
    server_provider: str = ""  # ... and the server, from /v1/model
    in_process: dict[int, float] = field(default_factory=dict)  # batch -> img/s
    in_process_ms: dict[int, float] = field(default_factory=dict)  # batch -> ms per batch
    v2: dict[int, tuple[float, float]] = field(default_factory=dict)  # batch -> img/s, p50 ms
    predict: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)
    # concurrency -> img/s, p50 ms, p99 ms, mean batch
    start_s: float = 0.0  # server start to ready (TensorRT builds its engines then)
    skipped: str = ""


def tensorrt_loadable() -> str:
    """'' when onnxruntime's TensorRT provider can load TensorRT, else the reason."""
    for name in TENSORRT_LIBRARIES:
        try:
            ctypes.CDLL(name)
        except OSError:
            return f"{name} does not load (TensorRT 10 is not installed or not on the library path)"
    return ""


def machine_facts() -> dict[str, str]:
    import onnxruntime as ort

    facts = {
        "python": platform.python_version(),
        "onnxruntime": f"{ort.__version__} ({', '.join(ort.get_available_providers())})",
        "CPU cores": str(os.cpu_count()),
    }
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        query = "name,memory.total,driver_version"
        gpus = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout.strip()
        facts["GPU"] = gpus.replace("\n", "; ") or "none (nvidia-smi printed nothing)"
    facts.setdefault("GPU", "none (no nvidia-smi)")
    trt = tensorrt_loadable()
    facts["TensorRT"] = trt or "loads"
    return facts


def v2_body(batch: np.ndarray) -> tuple[bytes, dict[str, str]]:
    """A binary-tensor v2 request (what tritonclient sends) for one FP32 tensor."""
    header = {
        "inputs": [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": list(batch.shape),
                "parameters": {"binary_data_size": batch.nbytes},
            }
        ],
        "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
    }
    head = json.dumps(header).encode()
    headers = {
        "Inference-Header-Content-Length": str(len(head)),
        "Content-Type": "application/octet-stream",
    }
    return head + batch.tobytes(), headers


def closed_loop(
    url: str, body: bytes, headers: dict[str, str], clients: int, seconds: float
) -> tuple[int, list[float]]:
    """`clients` threads posting `body` back to back: (requests done, latencies in ms)."""
    from concurrent.futures import ThreadPoolExecutor

    ends = time.perf_counter() + seconds

    def client() -> list[float]:
        times = []
        with httpx.Client(timeout=120) as http:
            while time.perf_counter() < ends:
                started = time.perf_counter()
                response = http.post(url, content=body, headers=headers)
                response.raise_for_status()
                times.append((time.perf_counter() - started) * 1000)
        return times

    with ThreadPoolExecutor(clients) as pool:
        latencies = [t for times in pool.map(lambda _: client(), range(clients)) for t in times]
    return len(latencies), latencies


def measure_in_process(config: Config, artifacts: Path, batches: list[int], rounds: int) -> None:
    from service.artifacts import load_artifacts
    from service.engine import Engine

    engine = Engine(load_artifacts(artifacts, config.precision), provider=config.provider)  # type: ignore[arg-type]
    config.engine_provider = engine.provider
    shape = engine.artifacts.input_shape
    for size in (1, max(batches)):  # TensorRT builds for the smallest, then widens the range
        engine.run(np.zeros((size, *shape), np.float32))
    rng = np.random.default_rng(0)
    for size in batches:
        batch = rng.standard_normal((size, *shape), dtype=np.float32)
        engine.run(batch)
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            engine.run(batch)
            times.append(time.perf_counter() - started)
        median = statistics.median(times)
        config.in_process[size] = size / median
        config.in_process_ms[size] = median * 1000


def measure_service(
    config: Config,
    artifacts: Path,
    batches: list[int],
    seconds: float,
    levels: tuple[int, ...],
    logs: Path,
) -> None:
    settings = {
        "PROVIDER": config.provider,
        "PRECISION": config.precision,
        "MAX_BATCH_SIZE": str(max(batches)),
        "MAX_V2_ELEMENTS": str(max(batches) * 3 * 227 * 227),
        "MAX_V2_BODY_BYTES": str(max(batches) * 3 * 227 * 227 * 4 + 2**20),
        "MAX_QUEUE": str(4 * MAX_BATCH),
        "REQUEST_TIMEOUT_S": "120",
        "LOG_LEVEL": "warning",
    }
    started = time.perf_counter()
    log = logs / f"server-{config.provider}-{config.precision}.log"
    with started_server(artifacts, log, **settings) as server:
        config.start_s = time.perf_counter() - started
        config.server_provider = str(httpx.get(f"{server.url}/v1/model").json()["provider"])
        infer = f"{server.url}/v2/models/alexnet/infer"
        rng = np.random.default_rng(1)
        for size in batches:
            body, headers = v2_body(rng.standard_normal((size, 3, 227, 227), dtype=np.float32))
            closed_loop(infer, body, headers, 1, 0.2)  # first request of this size: warm
            done, latencies = closed_loop(infer, body, headers, 2, seconds)
            config.v2[size] = (done * size / seconds, statistics.median(latencies))
        bodies = [multipart([u], boundary="gpuboundary") for u in build_corpus(shapes=5)]
        client = choose_client("auto")
        run_load(client, f"{server.url}/v1/predict", bodies, 16, 1.0)
        settle(server.url)
        for concurrency in levels:
            before = scrape(server.url)
            load = run_load(client, f"{server.url}/v1/predict", bodies, concurrency, seconds)
            batches_seen = diff(scrape(server.url), before)["alexnet_batch_size"]
            settle(server.url)
            config.predict[concurrency] = (
                load.throughput,
                load.p50_ms,
                load.p99_ms,
                batches_seen.mean,
            )


def report(facts: dict[str, str], configs: list[Config], notes: list[str], dry: bool) -> str:
    title = "# GPU check" + (" (dry run: CPU provider, plumbing only)" if dry else "")
    out = [title, "", "## Machine", ""] + [f"- {k}: {v}" for k, v in facts.items()]
    out += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    for c in configs:
        out += ["", f"## {c.provider}, {c.precision}", ""]
        if c.skipped:
            out.append(f"Not measured: {c.skipped}.")
            continue
        out += [
            f"- onnxruntime provider in use: in process {c.engine_provider}, server "
            f"{c.server_provider}; server start to ready {c.start_s:.0f} s",
            "",
            "| batch | in process: Engine.run (img/s) | ms per batch "
            "| v2 binary tensor, 2 clients (img/s) | v2 p50 (ms) |",
            "|---|---|---|---|---|",
        ]
        for size in sorted(c.in_process):
            rate, p50 = c.v2.get(size, (float("nan"), float("nan")))
            out.append(
                f"| {size} | {c.in_process[size]:,.0f} | {c.in_process_ms[size]:.2f} "
                f"| {rate:,.0f} | {p50:.1f} |"
            )
        out += [
            "",
            "| /v1/predict, one JPEG per request: concurrency | img/s | p50 (ms) | p99 (ms) "
            "| mean batch |",
            "|---|---|---|---|---|",
        ]
        for concurrency, (rate, p50, p99, mean) in sorted(c.predict.items()):
            out.append(f"| {concurrency} | {rate:,.0f} | {p50:.1f} | {p99:.1f} | {mean:.1f} |")
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--budget-s", type=float, default=300.0)
    parser.add_argument("--tests", default="", help="the GPU tests' pytest summary line")
    args = parser.parse_args()
    started = time.perf_counter()
    facts = machine_facts()
    notes = [f"GPU tests (pytest -m gpu): {args.tests or 'not run'}"]
    if args.dry_run:
        providers, batches, seconds, rounds = ["cpu"], [1, 8], 1.0, 3
        levels: tuple[int, ...] = (4,)
    else:
        providers, batches, seconds, rounds = ["cuda", "tensorrt"], list(BATCHES), 4.0, 20
        levels = PREDICT_CONCURRENCY
    import onnxruntime as ort

    available = ort.get_available_providers()
    configs = []
    logs = Path(tempfile.mkdtemp(prefix="alexnet-gpu-check-"))
    for provider in providers:
        for precision in ("fp32", "fp16"):
            config = Config(provider, precision)
            configs.append(config)
            spent = time.perf_counter() - started
            if provider == "cuda" and "CUDAExecutionProvider" not in available:
                config.skipped = "onnxruntime has no CUDA provider here (onnxruntime-gpu missing)"
            elif provider == "tensorrt" and (reason := tensorrt_loadable()):
                config.skipped = f"TensorRT: {reason}"
            elif spent > args.budget_s * 0.8:
                config.skipped = f"the time budget ({args.budget_s:.0f} s) was used up"
            if config.skipped:
                print(f"{provider} {precision}: skipped ({config.skipped})", flush=True)
                continue
            print(f"{provider} {precision}: in process ...", flush=True)
            measure_in_process(config, args.artifacts, batches, rounds)
            print(f"{provider} {precision}: service ...", flush=True)
            measure_service(config, args.artifacts, batches, seconds, levels, logs)
    notes.append(f"took {time.perf_counter() - started:.0f} s; server logs in {logs}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(facts, configs, notes, args.dry_run))
    args.out.with_suffix(".json").write_text(
        json.dumps({"machine": facts, "configs": [asdict(c) for c in configs]}, indent=1) + "\n"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
