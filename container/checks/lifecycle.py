"""The service's life cycle in the image: refusing to start on bad artifacts, stopping cleanly.

Start-up: with no artifacts volume or a wrong checksum the container prints the service's
one-line refusal, exits 2, and the compose restart policy gives up rather than looping.
Shutdown: `podman stop` (SIGTERM, then the grace period) under load answers every request
accepted before the signal in full, the way tests/service/test_lifecycle.py checks
`alexnet serve` from the venv.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from container import compose
from container.checks.harness import expect, serving
from container.podman import Podman

REFUSAL = "alexnet serve: cannot start: "


def refusal(
    podman: Podman,
    image: str,
    service: dict[str, Any],
    artifacts: Path | None,
    case: str,
    expected: str,
) -> list[str]:
    """Bad artifacts: the service's one line, exit 2, and the restart policy gives up."""
    name = f"alexnet-check-refusal-{os.getpid()}"
    with serving(podman, image, service, artifacts, name, wait=False):
        deadline = time.monotonic() + 120
        while True:
            state = podman.state_of(name)
            settled = state["Status"] == "exited" and not state.get("Restarting")
            if settled:
                time.sleep(3)  # a restart due now would show within the backoff
                state = podman.state_of(name)
                if state["Status"] == "exited":
                    break
            expect(time.monotonic() < deadline, f"{case}: still {state['Status']} after 120 s")
            time.sleep(0.5)
        restarts = int(podman.inspect(name).get("RestartCount", 0))
        log_lines = [line for line in podman.logs(name).splitlines() if line.strip()]
        health = (state.get("Health") or state.get("Healthcheck") or {}).get("Status", "")
    expect(state["ExitCode"] == 2, f"{case}: exit code {state['ExitCode']}")
    expect(
        bool(log_lines) and all(line.startswith(REFUSAL) for line in log_lines),
        f"{case}: log is not the one-line refusal:\n" + "\n".join(log_lines),
    )
    expect(len(set(log_lines)) == 1 and expected in log_lines[0], f"{case}: {log_lines[0]}")
    expect(health != "healthy", f"{case}: health {health}")
    policy = service.get("restart", "no")
    return [
        f"{case}: exit 2 after {restarts} restart(s) (restart: {policy}), then stays exited; "
        f"health {health or 'none'}; log {len(log_lines)}x: {log_lines[0]}"
    ]


Outcome = tuple[float, float, str]


def _classify(
    url: str, image: bytes, sigterm_at: list[float], stop: threading.Event
) -> list[Outcome]:
    """Post on fresh connections until refused after SIGTERM (tests/service/test_lifecycle.py)."""
    outcomes: list[Outcome] = []
    files = {"image": ("a.jpg", image)}
    with httpx.Client(timeout=60, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        while not stop.is_set():
            began = time.monotonic()
            try:
                response = client.post(f"{url}/v1/predict", files=files)
            except httpx.ConnectError:
                outcomes.append((began, time.monotonic(), "refused"))
                if sigterm_at:
                    return outcomes
                continue
            except httpx.TransportError as exc:
                outcomes.append((began, time.monotonic(), f"transport: {exc}"))
                if sigterm_at:
                    return outcomes
                continue
            if response.status_code == 200:
                complete = len(response.json()["results"][0]["predictions"]) == 5
                what = "ok" if complete else "truncated"
            else:
                what = f"{response.status_code}: {response.text[:120]}"
            outcomes.append((began, time.monotonic(), what))
    return outcomes


def sigterm_under_load(
    podman: Podman,
    image: str,
    service: dict[str, Any],
    artifacts: Path,
    photo: bytes,
    clients: int = 8,
) -> list[str]:
    """`podman stop` (SIGTERM, then the grace period) under load loses no accepted request."""
    grace = compose.seconds(service.get("stop_grace_period", "10s"))
    name = f"alexnet-check-sigterm-{os.getpid()}"
    with serving(podman, image, service, artifacts, name) as box:
        sigterm_at: list[float] = []
        stop = threading.Event()
        results: list[list[Outcome]] = [[] for _ in range(clients)]

        def client(index: int) -> None:
            results[index] = _classify(box.url, photo, sigterm_at, stop)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        time.sleep(3)
        sigterm_at.append(time.monotonic())
        podman("stop", "--time", str(grace), name, timeout=grace + 30)
        stopped_after = time.monotonic() - sigterm_at[0]
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        state, log = podman.state_of(name), box.logs()
    term = sigterm_at[0]
    outcomes = [outcome for per_client in results for outcome in per_client]
    before = [what for began, _, what in outcomes if began < term]
    drained = [what for began, ended, what in outcomes if began < term < ended]
    after = [what for began, _, what in outcomes if began >= term]
    expect(bool(before) and set(before) == {"ok"}, f"accepted before SIGTERM: {Counter(before)}")
    expect(bool(drained), "no request was in flight at SIGTERM; the check proved nothing")
    expect(set(drained) == {"ok"}, f"in flight at SIGTERM: {Counter(drained)}")
    unread = ("without sending a response", "Connection reset by peer")
    bad = [w for w in after if w not in ("ok", "refused") and not any(u in w for u in unread)]
    expect(not bad, f"started after SIGTERM: {Counter(after)}")
    # 143: the service re-raised SIGTERM after draining, and the init passed that on.
    expect(state["ExitCode"] in (0, 143), f"exit code {state['ExitCode']}")
    expect(stopped_after < grace, f"took {stopped_after:.1f} s, past the {grace} s grace period")
    expect("Traceback" not in log and "graceful shutdown exceeded" not in log, log[-3000:])
    return [
        f"SIGTERM under load ({clients} clients): {len(before)} accepted before, all answered in "
        f"full ({len(drained)} in flight at the signal); after it: {dict(Counter(after))}; "
        f"exit {state['ExitCode']} in {stopped_after:.1f} s (grace {grace} s)"
    ]
