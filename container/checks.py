"""The serving image, run as docker-compose.yml runs it, checked against the venv's own server.

Every check returns lines for the log and raises CheckFailed with the evidence when the
image does not do what the project promises.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.serverproc import free_port, started_server
from container import compose
from container.podman import Podman, PodmanError

MODEL_PORT = 8000  # the image's ALEXNET_PORT and EXPOSE
TOLERANCE = 1e-5
REFUSAL = "alexnet serve: cannot start: "


class CheckFailed(AssertionError):
    """The image broke a promise; the message says which and shows the evidence."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


@dataclass
class Container:
    podman: Podman
    name: str
    url: str

    def logs(self) -> str:
        return self.podman.logs(self.name)


def readable_copy(artifacts: Path, target: Path) -> Path:
    """The artifacts, hard-linked (or copied) into a folder uid 10001 can read.

    The container's user is not the host's: a folder made by mkdtemp (0700) or a private
    umask would hide the model from it. `chmod -R a+rX artifacts` does the same for a user.
    """
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for path in artifacts.iterdir():
        if path.is_file():
            try:
                os.link(path, target / path.name)
            except OSError:
                shutil.copy2(path, target / path.name)
            (target / path.name).chmod(0o644)
    target.chmod(0o755)
    for parent in target.parents:
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o005)
    return target


def corrupt_checksum_copy(artifacts: Path, target: Path) -> Path:
    """The artifacts with the manifest's sha256 of alexnet.onnx off by one digit."""
    folder = readable_copy(artifacts, target)
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    entry = next(e for e in manifest["files"].values() if e["path"] == "alexnet.onnx")
    entry["sha256"] = ("1" if entry["sha256"][0] != "1" else "2") + entry["sha256"][1:]
    manifest_path.unlink()  # a hard link: the original must not change
    manifest_path.write_text(json.dumps(manifest, indent=2))
    manifest_path.chmod(0o644)
    return folder


@contextmanager
def serving(
    podman: Podman,
    image: str,
    service: dict[str, Any],
    artifacts: Path | None,
    name: str,
    wait: bool = True,
) -> Iterator[Container]:
    """The image run with the compose service's flags, on a loopback port; removed after."""
    port = free_port()
    args = ["run", "--detach", "--name", name, "--publish", f"127.0.0.1:{port}:{MODEL_PORT}"]
    args += compose.run_flags(service)
    if artifacts is not None:
        args += ["--volume", f"{artifacts}:/models:ro"]
    podman.remove(name)
    podman(*args, image)
    try:
        container = Container(podman, name, f"http://127.0.0.1:{port}")
        if wait:
            podman.wait_healthy(name)
        yield container
    finally:
        podman.remove(name)


# --- inside the image --------------------------------------------------------------------

PROBE = r"""
import glob, importlib.util, json, os, shutil, subprocess, sys
site = "/opt/venv/lib/python3.11/site-packages"
def missing_libraries(path):
    out = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
    return sorted({line.split()[0] for line in out.splitlines() if "not found" in line})
report = {
    "uid": os.getuid(), "gid": os.getgid(),
    "python": sys.executable,
    "torch": importlib.util.find_spec("torch") is not None,
    "pip_on_path": shutil.which("pip") or shutil.which("pip3"),
    "pip_packages": sorted(glob.glob("/usr/**/site-packages/pip", recursive=True)
                           + glob.glob("/usr/lib/python3/dist-packages/pip")
                           + glob.glob("/opt/**/site-packages/pip", recursive=True)),
    "torch_packages": sorted(glob.glob("/usr/**/site-packages/torch", recursive=True)
                             + glob.glob("/opt/**/site-packages/torch", recursive=True)),
    "compilers": {t: shutil.which(t) for t in ("cc", "gcc", "g++", "c++", "clang", "ld", "as",
                                               "make") if shutil.which(t)},
    "base_pythons_with_pip": [p for p in sorted(set(glob.glob("/usr/local/bin/python3*")
                                                    + glob.glob("/usr/bin/python3*")))
                              if os.access(p, os.X_OK) and not p.endswith("-config")
                              and subprocess.run([p, "-c", "import pip"],
                                                 capture_output=True).returncode == 0],
}
import onnxruntime as ort
report["onnxruntime"] = ort.__version__
report["providers"] = ort.get_available_providers()
capi = os.path.dirname(ort.__file__) + "/capi"
cuda = glob.glob(capi + "/libonnxruntime_providers_cuda.so")
report["cuda_provider_missing"] = missing_libraries(cuda[0]) if cuda else None
cudnn = glob.glob(site + "/nvidia/cudnn/lib/libcudnn.so.*")
report["cudnn_missing"] = missing_libraries(cudnn[0]) if cudnn else None
print(json.dumps(report))
"""


def inside_image(podman: Podman, image: str, variant: str) -> list[str]:
    """No torch, pip or compiler; uid 10001; onnxruntime's providers as the variant promises."""
    inspected = podman.inspect(image, kind="image")
    config = inspected["Config"]
    expect(config.get("User") == "10001:10001", f"image user is {config.get('User')!r}")
    expect(config.get("Cmd") == ["alexnet", "serve"], f"CMD is {config.get('Cmd')}")
    # podman keeps HEALTHCHECK beside Config (Docker's format; the OCI one has no such field).
    health = (inspected.get("Healthcheck") or config.get("Healthcheck") or {}).get("Test", [])
    expect("/health/ready" in " ".join(health), f"no HEALTHCHECK on /health/ready: {health}")
    expect(not config.get("Volumes"), f"VOLUME in the image: {config.get('Volumes')}")
    done = podman("run", "--rm", "--no-healthcheck", "--entrypoint", "python", image, "-c", PROBE)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    expect((report["uid"], report["gid"]) == (10001, 10001), f"runs as {report['uid']}")
    expect(not report["torch"] and not report["torch_packages"], f"torch: {report}")
    expect(not report["pip_on_path"] and not report["pip_packages"], f"pip: {report}")
    expect(not report["base_pythons_with_pip"], f"pip importable: {report}")
    expect(not report["compilers"], f"compilers: {report['compilers']}")
    lines = [
        f"image {image}: user {config['User']}, CMD {config['Cmd']}, HEALTHCHECK {health[:2]}...",
        f"  inside: uid/gid {report['uid']}/{report['gid']}; torch: none; pip: none (no module, "
        f"no command, base python cannot import it); compilers: none",
        f"  onnxruntime {report['onnxruntime']}: providers {report['providers']}",
    ]
    if variant == "gpu":
        expect("CUDAExecutionProvider" in report["providers"], "no CUDA provider in the build")
        # libcuda.so.1 is the driver: the NVIDIA Container Toolkit mounts it at run time.
        for key in ("cuda_provider_missing", "cudnn_missing"):
            found = report[key]
            expect(found is not None and set(found) <= {"libcuda.so.1"}, f"{key}: {found}")
        lines.append(
            "  CUDA provider and cuDNN: every library resolves through ld.so.conf except "
            "libcuda.so.1 (the driver, mounted by the NVIDIA Container Toolkit)"
        )
    else:
        # The plain wheel also lists AzureExecutionProvider (remote endpoints, unused here).
        gpu = {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(report["providers"])
        expect("CPUExecutionProvider" in report["providers"] and not gpu, f"{report['providers']}")
    return lines


# --- the same requests to the container and to the venv's server --------------------------


def _post(url: str, path: str, files: Any, data: dict[str, str] | None = None) -> httpx.Response:
    response = httpx.post(url + path, files=files, data=data, timeout=120)
    if response.status_code != 200:
        raise CheckFailed(f"POST {path} at {url}: {response.status_code} {response.text[:300]}")
    return response


def _close(name: str, got: Any, want: Any) -> float:
    got_array, want_array = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    expect(
        got_array.shape == want_array.shape,
        f"{name}: shape {got_array.shape} != {want_array.shape}",
    )
    diff = float(np.max(np.abs(got_array - want_array))) if got_array.size else 0.0
    expect(diff <= TOLERANCE, f"{name}: differs by {diff:.3g} (> {TOLERANCE:g})")
    return diff


def _requests(photos: dict[str, bytes]) -> list[tuple[str, str, Any, dict[str, str]]]:
    """What both servers are asked: (name, path, files, form fields)."""
    first, second = sorted(photos)[:2]
    gray = next((n for n in sorted(photos) if n == "camera"), first)
    return [
        (
            "predict",
            "/v1/predict",
            [
                ("image", (f"{first}.jpg", photos[first], "image/jpeg")),
                ("image", (f"{second}.jpg", photos[second], "image/jpeg")),
            ],
            {"top_k": "5"},
        ),
        (
            "activations",
            "/v1/activations",
            {"image": ("a.jpg", photos[first])},
            {"layers": "conv1,norm2,pool3,fc8", "format": "json"},
        ),
        (
            "activations-npz",
            "/v1/activations",
            {"image": ("a.jpg", photos[second])},
            {"layers": "conv5,fc7", "format": "npz"},
        ),
        (
            "convolve",
            "/v1/convolve",
            {"image": ("g.jpg", photos[gray])},
            {"preset": "sobel_x", "mode": "convolution", "padding": "same", "format": "npy"},
        ),
        (
            "convolve-json",
            "/v1/convolve",
            {"image": ("g.jpg", photos[gray])},
            {"kernel": "[[1, -1]]", "mode": "cross_correlation", "format": "json"},
        ),
    ]


def _v2_body() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    tensor = rng.standard_normal((2, 3, 227, 227), dtype=np.float32)
    return {
        "id": "image-check",
        "inputs": [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": list(tensor.shape),
                "data": tensor.ravel().tolist(),
            }
        ],
        "outputs": [{"name": "logits"}, {"name": "fc7"}],
    }


def answers(url: str, photos: dict[str, bytes]) -> dict[str, Any]:
    """Every answer of one server, decoded."""
    out: dict[str, Any] = {}
    for name, path, files, data in _requests(photos):
        response = _post(url, path, files, data)
        if name.endswith("npz"):
            with np.load(io.BytesIO(response.content)) as arrays:
                out[name] = {key: arrays[key] for key in arrays.files}
        elif name == "convolve":
            out[name] = np.load(io.BytesIO(response.content))
        else:
            out[name] = response.json()
    response = httpx.post(f"{url}/v2/models/alexnet/infer", json=_v2_body(), timeout=120)
    expect(response.status_code == 200, f"v2 infer: {response.status_code} {response.text[:300]}")
    out["v2"] = {o["name"]: np.reshape(o["data"], o["shape"]) for o in response.json()["outputs"]}
    out["model"] = httpx.get(f"{url}/v1/model", timeout=30).json()
    return out


def compare(container: dict[str, Any], venv: dict[str, Any]) -> list[str]:
    """The container's answers against the venv server's: same labels, numbers within 1e-5."""
    lines = []
    for index, (got, want) in enumerate(
        zip(container["predict"]["results"], venv["predict"]["results"], strict=True)
    ):
        got_labels = [p["label"] for p in got["predictions"]]
        want_labels = [p["label"] for p in want["predictions"]]
        expect(got_labels == want_labels, f"predict #{index}: {got_labels} != {want_labels}")
        diff = _close(
            f"predict #{index}",
            [p["probability"] for p in got["predictions"]],
            [p["probability"] for p in want["predictions"]],
        )
        top = got["predictions"][0]
        lines.append(
            f"  /v1/predict image {index}: top-1 {top['label']} p={top['probability']:.6f} in "
            f"both; top-5 labels equal; max |dp| {diff:.1e}"
        )
    worst = 0.0
    for layer, stats in venv["activations"]["layers"].items():
        got = container["activations"]["layers"][layer]
        expect(got["shape"] == stats["shape"], f"{layer} shape {got['shape']} != {stats['shape']}")
        for key in ("mean", "std", "min", "max", "sparsity"):
            worst = max(worst, _close(f"{layer}.{key}", got[key], stats[key]))
    lines.append(
        f"  /v1/activations json ({', '.join(venv['activations']['layers'])}): max |d| {worst:.1e}"
    )
    worst = max(
        _close(f"npz {key}", container["activations-npz"][key], value)
        for key, value in venv["activations-npz"].items()
    )
    lines.append(
        f"  /v1/activations npz ({', '.join(venv['activations-npz'])}): max |d| {worst:.1e}"
    )
    diff = _close("convolve npy", container["convolve"], venv["convolve"])
    lines.append(f"  /v1/convolve npy {venv['convolve'].shape}: max |d| {diff:.1e}")
    got_json, want_json = container["convolve-json"], venv["convolve-json"]
    expect(got_json["shape"] == want_json["shape"], "convolve json shape")
    expect(got_json["efficiency"] == want_json["efficiency"], "convolve efficiency figures")
    lines.append(f"  /v1/convolve json: shape {got_json['shape']}, efficiency figures equal")
    worst = max(
        _close(f"v2 {key}", container["v2"][key], value) for key, value in venv["v2"].items()
    )
    lines.append(
        f"  /v2/models/alexnet/infer FP32 [2,3,227,227] -> logits, fc7: max |d| {worst:.1e}"
    )
    return lines


def parity(
    podman: Podman,
    image: str,
    service: dict[str, Any],
    artifacts: Path,
    photos: dict[str, bytes],
    log_dir: Path,
) -> list[str]:
    """The image on the CPU answers like `alexnet serve` from the venv with the same settings."""
    settings = {
        key.removeprefix("ALEXNET_").lower(): str(value)
        for key, value in service.get("environment", {}).items()
        if key not in ("ALEXNET_ARTIFACTS", "ALEXNET_HOST", "ALEXNET_PORT")
    }
    with serving(podman, image, service, artifacts, f"alexnet-check-parity-{os.getpid()}") as box:
        started = podman.inspect(box.name)["State"]
        from_container = answers(box.url, photos)
        log = box.logs()
    with started_server(artifacts, log_dir / "venv-server.log", **settings) as venv_server:
        from_venv = answers(venv_server.url, photos)
    provider = from_container["model"].get("provider")
    expect(
        provider == from_venv["model"].get("provider") == "CPUExecutionProvider",
        f"providers: container {provider}, venv {from_venv['model'].get('provider')}",
    )
    # Quietly: no warning, error, traceback or onnxruntime complaint (GPU image, no GPU).
    noisy = [
        line
        for line in log.splitlines()
        if "Traceback" in line
        or "[W:" in line
        or "[E:" in line
        or any(f'"level": "{level}"' in line for level in ("warning", "error", "critical"))
    ]
    expect(not noisy, "container log is not quiet:\n" + "\n".join(noisy))
    lines = [
        f"served {image} ({started['Status']}); provider {provider}; log has no error or traceback",
        *compare(from_container, from_venv),
    ]
    return lines


# --- refusing to start -------------------------------------------------------------------


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


# --- SIGTERM under load ------------------------------------------------------------------

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


# --- podman-compose with the CPU override -------------------------------------------------


# What the service process is allowed, read from inside the running container.
CONFINEMENT = r"""
import json, os
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
def writable(folder):
    try:
        with open(os.path.join(folder, ".probe"), "w"):
            pass
    except OSError:
        return False
    os.remove(os.path.join(folder, ".probe"))
    return True
# uid 10001 could not write to / anyway: the mount itself must be read-only.
root = [line.split()[3].split(",") for line in open("/proc/self/mounts") if line.split()[1] == "/"]
print(json.dumps({"uid": os.getuid(), "cap_eff": int(status["CapEff"], 16),
                  "no_new_privs": int(status["NoNewPrivs"]), "root_read_only": "ro" in root[-1],
                  "tmp_writable": writable("/tmp")}))
"""


def compose_up(
    podman: Podman, image: str, artifacts: Path, photo: bytes, want_top1: str
) -> list[str]:
    """`podman-compose -f docker-compose.yml -f docker-compose.cpu.yml up -d`, as a user runs it.

    The named volume `artifacts` is filled first, as the compose `train` job would fill it.
    """
    project = f"alexnetcheck{os.getpid()}"
    port = free_port()
    env = {**podman.env, "ALEXNET_IMAGE": image, "ALEXNET_PUBLISH_PORT": str(port)}
    tool = [compose.podman_compose(), "--project-name", project]

    def run_compose(*args: str, cpu: bool = True, check: bool = True) -> Any:
        done = subprocess.run(
            [*tool, *compose.compose_files(cpu), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd=compose.ROOT,
        )
        if check and done.returncode != 0:
            raise CheckFailed(
                f"podman-compose {' '.join(args)}: {done.returncode}\n{done.stdout}\n{done.stderr}"
            )
        return done

    volume = f"{project}_artifacts"
    lines: list[str] = []
    try:
        podman("volume", "create", volume)
        podman(
            "run",
            "--rm",
            "--no-healthcheck",
            "--user",
            "0",
            "--entrypoint",
            "cp",
            "--volume",
            f"{volume}:/models",
            "--volume",
            f"{artifacts}:/src:ro",
            image,
            "-a",
            "/src/.",
            "/models/",
        )
        run_compose("up", "--detach", "alexnet")
        names = podman(
            "ps", "--filter", f"label=io.podman.compose.project={project}", "--format", "{{.Names}}"
        ).stdout.split()
        expect(len(names) == 1, f"compose started {names}")
        waited = podman.wait_healthy(names[0])
        info = podman.inspect(names[0])
        policy = info["HostConfig"].get("RestartPolicy", {})
        expect(
            (policy.get("Name"), policy.get("MaximumRetryCount")) == ("on-failure", 3),
            f"restart policy {policy}",
        )
        expect("ALEXNET_PROVIDER=cpu" in info["Config"]["Env"], "the override's provider=cpu")
        expect(not info["HostConfig"].get("Devices"), f"devices: {info['HostConfig']['Devices']}")
        inside = json.loads(podman("exec", names[0], "python", "-c", CONFINEMENT).stdout)
        expect(
            inside
            == {
                "uid": 10001,
                "cap_eff": 0,
                "no_new_privs": 1,
                "root_read_only": True,
                "tmp_writable": True,
            },
            f"inside the compose container: {inside}",
        )
        url = f"http://127.0.0.1:{port}"
        model = httpx.get(f"{url}/v1/model", timeout=30).json()
        result = _post(url, "/v1/predict", {"image": ("a.jpg", photo)}).json()
        top = result["results"][0]["predictions"][0]
        expect(top["label"] == want_top1, f"compose top-1 {top['label']} != {want_top1}")
        lines.append(
            f"podman-compose -f docker-compose.yml -f docker-compose.cpu.yml up: healthy in "
            f"{waited:.0f} s; inside: {inside}; restart on-failure:3, no devices, "
            f"ALEXNET_PROVIDER=cpu; provider {model.get('provider')}; top-1 {top['label']}"
        )
    finally:
        run_compose("down", "--volumes", check=False)
        podman("volume", "rm", "--force", volume, check=False)
    # Without the override the GPU is required: podman-compose asks for the CDI device.
    gpu = run_compose("up", "--detach", "alexnet", cpu=False, check=False)
    run_compose("down", "--volumes", cpu=False, check=False)
    podman("volume", "rm", "--force", volume, check=False)
    said = (gpu.stdout + gpu.stderr).strip().splitlines()
    refused = [line for line in said if "nvidia.com/gpu" in line]
    expect(
        bool(refused), "docker-compose.yml alone started without a GPU:\n" + "\n".join(said[-10:])
    )
    said_last = re.sub(r'"[0-9a-f]{64}"', "...", refused[-1].strip())
    lines.append(f"docker-compose.yml alone (GPU reserved) on this GPU-less host: {said_last}")
    return lines


def compose_train(podman: Podman, train_image: str) -> list[str]:
    """The compose `train` profile as a user runs it, cut to one epoch of at most a minute.

    Its fresh named volumes are written by uid 10001, and the export lands in `artifacts`.
    """
    project = f"alexnettrain{os.getpid()}"
    env = {**podman.env, "ALEXNET_TRAIN_IMAGE": train_image}
    short = (
        "alexnet train --dataset shapes --epochs 1 --max-minutes 1 --out /work/checkpoints"
        " && alexnet export --checkpoint /work/checkpoints/best.pt --out /models"
    )
    base = [compose.podman_compose(), "--project-name", project, *compose.compose_files(True)]
    try:
        done = subprocess.run(
            [*base, "--profile", "train", "run", "--rm", "train", "sh", "-c", short],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
            cwd=compose.ROOT,
        )
        said = done.stdout + done.stderr
        expect(done.returncode == 0, f"compose train: exit {done.returncode}\n{said[-3000:]}")
        listing = podman(
            "run",
            "--rm",
            "--no-healthcheck",
            "--entrypoint",
            "ls",
            "--volume",
            f"{project}_artifacts:/models:ro",
            train_image,
            "/models",
        ).stdout.split()
        expect({"alexnet.onnx", "manifest.json"} <= set(listing), f"the volume holds {listing}")
    finally:
        subprocess.run(
            [*base, "--profile", "train", "down", "--volumes"],
            env=env,
            capture_output=True,
            timeout=300,
            check=False,
            cwd=compose.ROOT,
        )
        for volume in ("artifacts", "checkpoints"):
            podman("volume", "rm", "--force", f"{project}_{volume}", check=False)
    wrote = [line for line in said.splitlines() if line.startswith(("epoch", "wrote"))]
    return [
        "compose --profile train run train (1 epoch): " + "; ".join(wrote)[:400],
        f"  the artifacts volume holds {sorted(listing)}",
    ]


def ensure_container_runs(podman: Podman, image: str) -> None:
    """PodmanError with podman's words when this host cannot run a container at all."""
    done = podman("run", "--rm", "--no-healthcheck", "--entrypoint", "true", image, check=False)
    if done.returncode != 0:
        raise PodmanError(f"podman cannot run a container here: {done.stderr.strip()[-500:]}")


__all__ = [
    "CheckFailed",
    "PodmanError",
    "compare",
    "compose_up",
    "corrupt_checksum_copy",
    "ensure_container_runs",
    "inside_image",
    "parity",
    "readable_copy",
    "refusal",
    "sigterm_under_load",
]
