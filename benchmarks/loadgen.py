"""Closed-loop load at a fixed concurrency: Debian's `wrk` with a Lua script, or async httpx.

wrk (C, one thread) costs the machine little, which matters on a small box where
the client competes with the server for cores. Its Lua script cycles through
pre-built multipart bodies read from files. Without wrk, an asyncio httpx client
does the same, and its own CPU use is measured and reported next to the results.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

from benchmarks.corpus import Multipart

WRK_SCRIPT = r"""
local dir = os.getenv("BENCH_BODIES")
local count = tonumber(os.getenv("BENCH_COUNT"))
local out = os.getenv("BENCH_OUT")
local bodies = {}
local index = 0

function init(args)
  for i = 0, count - 1 do
    local f = assert(io.open(dir .. "/body_" .. i .. ".bin", "rb"))
    bodies[i + 1] = f:read("*a")
    f:close()
  end
  wrk.headers["Content-Type"] = os.getenv("BENCH_TYPE")
  index = math.random(count) - 1
end

function request()
  index = index % count + 1
  return wrk.format("POST", nil, nil, bodies[index])
end

function done(summary, latency, requests)
  local e = summary.errors
  local f = assert(io.open(out, "w"))
  f:write(string.format(
    '{"duration_us": %d, "requests": %d, "errors": %d, "p50": %d, "p90": %d, "p99": %d, ' ..
    '"mean": %f, "max": %d}',
    summary.duration, summary.requests, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
  f:close()
end
"""


@dataclass
class LoadResult:
    """What one level of load achieved, as the client saw it."""

    concurrency: int
    requests: int
    errors: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    client_cpu_s: float
    client: str

    @property
    def throughput(self) -> float:
        """Successful requests per second."""
        return (self.requests - self.errors) / self.duration_s if self.duration_s else 0.0

    @property
    def client_cores(self) -> float:
        return self.client_cpu_s / self.duration_s if self.duration_s else 0.0


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def choose_client(preference: str) -> str:
    """'wrk' when asked for or available (auto), else 'httpx'."""
    if preference == "wrk" and not wrk_available():
        raise RuntimeError("wrk is not installed (apt-get install wrk, or `make system-deps`)")
    if preference == "auto":
        return "wrk" if wrk_available() else "httpx"
    return preference


def run_load(
    client: str, url: str, bodies: list[Multipart], concurrency: int, duration_s: float
) -> LoadResult:
    """Keep `concurrency` requests in flight against `url` for `duration_s` seconds."""
    if client == "wrk":
        return _run_wrk(url, bodies, concurrency, duration_s)
    return asyncio.run(_run_httpx(url, bodies, concurrency, duration_s))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run_wrk(url: str, bodies: list[Multipart], concurrency: int, duration_s: float) -> LoadResult:
    types = {body.content_type for body in bodies}
    if len(types) != 1:
        raise ValueError("wrk bodies must share one multipart boundary")
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as folder:
        root = Path(folder)
        for index, body in enumerate(bodies):
            (root / f"body_{index}.bin").write_bytes(body.body)
        (root / "multipart.lua").write_text(WRK_SCRIPT)
        out = root / "result.json"
        env = {
            **os.environ,
            "BENCH_BODIES": folder,
            "BENCH_COUNT": str(len(bodies)),
            "BENCH_OUT": str(out),
            "BENCH_TYPE": types.pop(),
        }
        command = [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{max(1, round(duration_s))}s",
            "--timeout",
            "60s",
            "-s",
            str(root / "multipart.lua"),
            url,
        ]
        cpu_before = _children_cpu()  # wrk's own CPU, exact, once it has been waited for
        subprocess.run(command, env=env, check=True, capture_output=True)
        cpu = _children_cpu() - cpu_before
        data = json.loads(out.read_text())
    return LoadResult(
        concurrency=concurrency,
        requests=int(data["requests"]),
        errors=int(data["errors"]),
        duration_s=data["duration_us"] / 1e6,
        p50_ms=data["p50"] / 1000,
        p90_ms=data["p90"] / 1000,
        p99_ms=data["p99"] / 1000,
        client_cpu_s=cpu,
        client="wrk",
    )


async def _run_httpx(
    url: str, bodies: list[Multipart], concurrency: int, duration_s: float
) -> LoadResult:
    import httpx

    latencies: list[float] = []
    errors = 0
    me = psutil.Process()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:

        async def worker(offset: int, stop_at: float) -> None:
            nonlocal errors
            index = offset
            while time.perf_counter() < stop_at:
                body = bodies[index % len(bodies)]
                index += 1
                sent = time.perf_counter()
                try:
                    response = await http.post(
                        url, content=body.body, headers={"Content-Type": body.content_type}
                    )
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - sent)
                errors += not ok

        cpu = me.cpu_times()
        started = time.perf_counter()
        stop_at = started + duration_s
        await asyncio.gather(*(worker(i, stop_at) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu_after = me.cpu_times()
    ms = np.asarray(latencies or [np.nan]) * 1000
    return LoadResult(
        concurrency=concurrency,
        requests=len(latencies),
        errors=errors,
        duration_s=elapsed,
        p50_ms=float(np.percentile(ms, 50)),
        p90_ms=float(np.percentile(ms, 90)),
        p99_ms=float(np.percentile(ms, 99)),
        client_cpu_s=(cpu_after.user + cpu_after.system) - (cpu.user + cpu.system),
        client="httpx",
    )
