"""podman-compose as a user runs it: the CPU override serving, the `train` profile exporting.

These run the compose files themselves (not flags translated from them), so they also check
what the translation cannot: the named volumes, the restart policy and the confinement
compose gives the container, and that docker-compose.yml alone insists on a GPU.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import httpx

from benchmarks.serverproc import free_port
from container import compose
from container.checks.harness import CheckFailed, expect, post
from container.podman import Podman

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
    port = free_port()
    env = {**podman.env, "ALEXNET_IMAGE": image, "ALEXNET_PUBLISH_PORT": str(port)}
    project = compose.Project(f"alexnetcheck{os.getpid()}", env)

    def run_compose(
        *args: str, cpu: bool = True, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = project.run(*args, cpu=cpu)
        if check and done.returncode != 0:
            raise CheckFailed(
                f"podman-compose {' '.join(args)}: {done.returncode}\n{done.stdout}\n{done.stderr}"
            )
        return done

    volume = f"{project.name}_artifacts"
    lines: list[str] = []
    try:
        podman("volume", "create", volume)
        podman.run_once(
            image,
            "cp",
            "-a",
            "/src/.",
            "/models/",
            options=[
                "--user",
                "0",
                "--volume",
                f"{volume}:/models",
                "--volume",
                f"{artifacts}:/src:ro",
            ],
        )
        run_compose("up", "--detach", "alexnet")
        names = podman(
            "ps",
            "--filter",
            f"label=io.podman.compose.project={project.name}",
            "--format",
            "{{.Names}}",
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
        result = post(url, "/v1/predict", {"image": ("a.jpg", photo)}).json()
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
    env = {**podman.env, "ALEXNET_TRAIN_IMAGE": train_image}
    project = compose.Project(f"alexnettrain{os.getpid()}", env)
    short = (
        "alexnet train --dataset shapes --epochs 1 --max-minutes 1 --out /work/checkpoints"
        " && alexnet export --checkpoint /work/checkpoints/best.pt --out /models"
    )
    try:
        done = project.run(
            "--profile", "train", "run", "--rm", "train", "sh", "-c", short, timeout=900
        )
        said = done.stdout + done.stderr
        expect(done.returncode == 0, f"compose train: exit {done.returncode}\n{said[-3000:]}")
        listing = podman.run_once(
            train_image,
            "ls",
            "/models",
            options=["--volume", f"{project.name}_artifacts:/models:ro"],
        ).stdout.split()
        expect({"alexnet.onnx", "manifest.json"} <= set(listing), f"the volume holds {listing}")
    finally:
        project.run("--profile", "train", "down", "--volumes")
        for volume in ("artifacts", "checkpoints"):
            podman("volume", "rm", "--force", f"{project.name}_{volume}", check=False)
    wrote = [line for line in said.splitlines() if line.startswith(("epoch", "wrote"))]
    return [
        "compose --profile train run train (1 epoch): " + "; ".join(wrote)[:400],
        f"  the artifacts volume holds {sorted(listing)}",
    ]
