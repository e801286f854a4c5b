"""The service under test: `alexnet serve` in a subprocess; a psutil watch on its CPU and memory."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_command() -> list[str]:
    """`alexnet serve` from this interpreter's environment."""
    script = Path(sys.executable).parent / "alexnet"
    if script.is_file():
        return [str(script), "serve"]
    found = shutil.which("alexnet")
    return [found, "serve"] if found else [sys.executable, "-m", "cli.main", "serve"]


@dataclass
class Server:
    """A service the benchmark drives; `pid` is None for one it did not start (--url)."""

    url: str
    pid: int | None = None
    settings: dict[str, str] = field(default_factory=dict)


def wait_ready(url: str, process: subprocess.Popen[bytes] | None, timeout_s: float = 180) -> None:
    """Poll /health/ready until 200; fail early if the process dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/health/ready", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the server at {url} was not ready within {timeout_s:g} s")


@contextmanager
def started_server(artifacts: Path, log_path: Path, **settings: str) -> Iterator[Server]:
    """Serve `artifacts` on a free loopback port; settings become ALEXNET_* variables."""
    port = free_port()
    overrides = {key.upper(): str(value) for key, value in settings.items()}
    env = {
        **os.environ,
        "ALEXNET_ARTIFACTS": str(artifacts),
        "ALEXNET_HOST": "127.0.0.1",
        "ALEXNET_PORT": str(port),
        **{f"ALEXNET_{key}": value for key, value in overrides.items()},
    }
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(serve_command(), env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield Server(url, process.pid, overrides)
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    """SIGTERM (the service drains), then SIGKILL if it has not exited in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Usage:
    """CPU seconds and peak resident memory of a process over a stretch of time."""

    wall_s: float
    cpu_s: float
    peak_rss: int

    @property
    def cores(self) -> float:
        """Average number of cores busy."""
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0


class Watch:
    """Samples a process's resident memory in the background; `measure()` brackets a stretch."""

    def __init__(self, pid: int | None, interval_s: float = 0.05) -> None:
        self.process = psutil.Process(pid) if pid is not None else None
        self.interval_s = interval_s
        self.peak_rss = 0
        self._window_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-watch", daemon=True)

    def __enter__(self) -> Watch:
        if self.process is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _sample(self) -> None:
        assert self.process is not None
        while not self._stop.is_set():
            try:
                rss = self.process.memory_info().rss
            except psutil.Error:
                return
            self.peak_rss = max(self.peak_rss, rss)
            self._window_peak = max(self._window_peak, rss)
            self._stop.wait(self.interval_s)

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the process (all threads) so far; 0 without one."""
        if self.process is None:
            return 0.0
        times = self.process.cpu_times()
        return float(times.user + times.system)

    @contextmanager
    def measure(self) -> Iterator[list[Usage]]:
        """Yields a list that holds one Usage for the block once it has ended."""
        box: list[Usage] = []
        self._window_peak = 0
        cpu, started = self.cpu_seconds(), time.perf_counter()
        yield box
        box.append(
            Usage(time.perf_counter() - started, self.cpu_seconds() - cpu, self._window_peak)
        )
