"""perf_analyzer (Triton's load generator) against this server: python -m benchmarks.perf_analyzer.

Serves the artifacts given (or measures a running server, --url) and runs perf_analyzer
(`make perf-analyzer` installs it; scripts/perf-analyzer runs it) over HTTP with binary
tensors, twice: the image view with the benchmark's JPEGs as BYTES (decoded and
preprocessed by the server) and the logits view with random FP32 tensors. Each run
walks a concurrency range in count windows until perf_analyzer calls the figures
stable. Writes <out>/<name>.md with the command lines, the machine and its load
average before and after (the machine may be shared), perf_analyzer's CSV per run and
the server's own statistics over each run; the CSVs sit beside it.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import shlex
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks.corpus import build_corpus
from benchmarks.machine import machine
from benchmarks.serverproc import Server, started_server

REPO = Path(__file__).resolve().parent.parent
WRAPPER = REPO / "scripts" / "perf-analyzer"
BINARY = REPO / ".venv-perf" / "bin" / "perf_analyzer"
RESULTS = Path(__file__).resolve().parent / "results"
# Count windows and a loose stability bound: time windows with the default 10% never
# settled on a shared 2-core machine.
WINDOWS = [
    "--measurement-mode",
    "count_windows",
    "--measurement-request-count",
    "50",
    "--stability-percentage",
    "50",
    "--max-trials",
    "8",
]


def input_data(jpegs: Sequence[bytes]) -> dict[str, Any]:
    """perf_analyzer's --input-data document: one step per image for a BYTES input.

    Its `b64` is the serialized BYTES tensor, so each element carries its 4-byte
    little-endian length before the bytes (perf_analyzer's docs/input_data.md).
    """

    def step(jpeg: bytes) -> dict[str, Any]:
        serialized = struct.pack("<I", len(jpeg)) + jpeg
        return {"input": {"content": {"b64": base64.b64encode(serialized).decode()}, "shape": [1]}}

    return {"data": [step(jpeg) for jpeg in jpegs]}


def command(model: str, url: str, *options: str) -> list[str]:
    """perf_analyzer over HTTP against `url` (http://host:port)."""
    host = url.removeprefix("http://").rstrip("/")
    return [str(WRAPPER), "-m", model, "-u", host, "-i", "http", *options]


def run(arguments: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(arguments, capture_output=True, text=True, timeout=timeout_s)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def view_stats(url: str, model: str) -> dict[str, Any]:
    """The server's statistics of one model view (Triton's statistics extension)."""
    response = httpx.get(f"{url}/v2/models/{model}/stats", timeout=30)
    response.raise_for_status()
    (entry,) = response.json()["model_stats"]
    return dict(entry)


@dataclass
class Run:
    """One perf_analyzer run: what it was, its command, its answer and the server's view."""

    name: str
    model: str
    what: str
    options: list[str]
    arguments: list[str] | None = None
    returncode: int | None = None
    output: str = ""
    rows: list[dict[str, str]] | None = None
    requests: int = 0
    images: int = 0
    executions: int = 0


def measure(server: Server, runs: list[Run], out: Path, stem: str, timeout_s: float) -> None:
    for item in runs:
        csv_path = out / f"{stem}_{item.name}.csv"
        item.arguments = command(item.model, server.url, *item.options, "-f", str(csv_path))
        before = view_stats(server.url, item.model)
        print("$", shlex.join(item.arguments), flush=True)
        done = run(item.arguments, timeout_s)
        after = view_stats(server.url, item.model)
        item.returncode, item.output = done.returncode, done.stdout + done.stderr
        item.rows = read_csv(csv_path) if done.returncode == 0 and csv_path.exists() else None
        success = "success"
        item.requests = (
            after["inference_stats"][success]["count"] - before["inference_stats"][success]["count"]
        )
        item.images = after["inference_count"] - before["inference_count"]
        item.executions = after["execution_count"] - before["execution_count"]
        print(item.output[-600:] if done.returncode else f"  done: {item.requests} requests")


def _ms(row: dict[str, str], key: str) -> str:
    return f"{int(row[key]) / 1000:.1f}"


def _table(rows: list[dict[str, str]]) -> list[str]:
    lines = [
        "| concurrency | infer/s | p50 ms | p90 ms | p99 ms | server queue ms | "
        "compute input ms | compute infer ms | compute output ms |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in sorted(rows, key=lambda r: int(r["Concurrency"])):  # its CSV: by throughput
        lines.append(
            f"| {row['Concurrency']} | {float(row['Inferences/Second']):.1f} | "
            f"{_ms(row, 'p50 latency')} | {_ms(row, 'p90 latency')} | {_ms(row, 'p99 latency')} | "
            f"{_ms(row, 'Server Queue')} | {_ms(row, 'Server Compute Input')} | "
            f"{_ms(row, 'Server Compute Infer')} | {_ms(row, 'Server Compute Output')} |"
        )
    return lines


def report(
    runs: list[Run],
    facts: dict[str, str],
    loads: tuple[tuple[float, ...], tuple[float, ...]],
    server: dict[str, str],
    stem: str,
) -> str:
    before, after = (", ".join(f"{x:.2f}" for x in load) for load in loads)
    lines = [
        "# perf_analyzer against alexnet-serving",
        "",
        f"Run on {time.strftime('%Y-%m-%d %H:%M %Z')} with `python -m benchmarks.perf_analyzer "
        f"{' '.join(sys.argv[1:])}`. perf_analyzer {server.get('perf_analyzer', '?')} "
        "(tritonclient 2.51.0's binary, `make perf-analyzer`), HTTP, binary tensors.",
        "",
        "## Machine and server",
        "",
        *[f"- {key}: {value}" for key, value in {**facts, **server}.items()],
        f"- load average (1, 5, 15 min) before: {before}; after: {after}. The machine is "
        "shared with other people's work, so the figures carry their noise.",
        "",
        "Latencies are perf_analyzer's (client side, HTTP included); the server columns are "
        "averages per request from the server's statistics extension, which perf_analyzer "
        "reads before and after each window. A request's compute infer is the model time of "
        "the batch it was in, whole, however many other requests' images shared it. The two "
        "runs ran one after the other, not alternated: compare them with the load in mind.",
    ]
    for item in runs:
        shown = shlex.join(item.arguments or []).replace(f"{REPO}/", "")
        lines += ["", f"## {item.what}", "", "```sh", shown, "```", ""]
        if item.rows:
            lines += _table(item.rows)
            lines += ["", f"CSV: [{stem}_{item.name}.csv]({stem}_{item.name}.csv)."]
        else:
            lines += [f"perf_analyzer exited with {item.returncode}:", "", "```"]
            lines += [item.output.strip()[-1500:], "```"]
        if item.executions:
            lines += [
                "",
                f"The server over the whole run (warm-up and unstable windows included): "
                f"{item.requests} requests, {item.images} images in {item.executions} batches "
                f"(on average {item.images / item.executions:.2f} images per batch).",
            ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.perf_analyzer", description=__doc__)
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    parser.add_argument("--url", help="measure this running server instead of starting one")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default="perf_analyzer")
    parser.add_argument("--concurrency", default="1:4", help="perf_analyzer's range, start:end")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    args = parser.parse_args(argv)
    if not BINARY.exists():
        print("perf_analyzer is not installed: run `make perf-analyzer`", file=sys.stderr)
        return 2
    answer = run([str(WRAPPER), "--version"], 60)  # it answers on stderr
    version = (answer.stdout + answer.stderr).strip().removeprefix("Perf Analyzer Version ")
    args.out.mkdir(parents=True, exist_ok=True)
    images = [upload.data for upload in build_corpus()]
    input_path = Path(tempfile.gettempdir()) / f"{args.name}_input.json"
    input_path.write_text(json.dumps(input_data(images)))
    concurrency = ["--concurrency-range", args.concurrency]
    runs = [
        Run(
            "image",
            "alexnet_image",
            f"JPEGs as BYTES: the image view ({len(images)} photos and shapes, 640x480, "
            "quality 90; the server decodes and preprocesses them)",
            ["--input-data", str(input_path), *concurrency, *WINDOWS],
        ),
        Run(
            "logits",
            "alexnet_logits",
            "Preprocessed FP32 [1, 3, 227, 227], random: the logits view",
            [*concurrency, *WINDOWS],
        ),
    ]
    loads: list[tuple[float, ...]] = [os.getloadavg()]
    try:
        if args.url:
            server_facts = {"server": args.url}
            measure(Server(args.url), runs, args.out, args.name, args.timeout)
        else:
            log = Path(tempfile.gettempdir()) / f"{args.name}_server.log"
            print(f"server log: {log}")
            with started_server(args.artifacts, log) as server:
                server_facts = _served(server.url, args.artifacts)
                measure(server, runs, args.out, args.name, args.timeout)
    finally:
        input_path.unlink(missing_ok=True)
    loads.append(os.getloadavg())
    server_facts["perf_analyzer"] = version
    facts = machine(server_facts.get("provider", "?"), f"perf_analyzer {version}")
    text = report(runs, facts, (loads[0], loads[1]), server_facts, args.name)
    (args.out / f"{args.name}.md").write_text(text)
    print(f"wrote {args.out / args.name}.md")
    return 0 if all(item.rows for item in runs) else 1


def _served(url: str, artifacts: Path) -> dict[str, str]:
    info = httpx.get(f"{url}/v1/model", timeout=30).json()
    training = info.get("training", {})
    accuracy = training.get("best_val_accuracy") or training.get("val_accuracy")
    batching = info["batching"]
    return {
        "model": f"{artifacts} ({info['name']} version {info['version']}, {info['variant']}, "
        f"{info['precision']}, {len(info['labels'])} classes, trained on "
        f"{training.get('dataset', '?')}"
        + (f", validation accuracy {accuracy:.1%})" if accuracy is not None else ")"),
        "provider": info["provider"],
        "batching": f"max batch {batching['max_batch_size']}, "
        f"max wait {batching['max_batch_wait_ms']} ms (the defaults)",
    }


if __name__ == "__main__":
    sys.exit(main())
