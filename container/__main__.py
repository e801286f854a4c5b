"""`python -m container`: build the images with podman and check them by running them.

    python -m container                      # the GPU serving image (`make image-check`)
    python -m container --variant cpu        # the CPU-only one (ONNXRUNTIME=onnxruntime==...)
    python -m container --variant gpu --variant cpu --train

Needs podman, buildah, debootstrap and runc from Debian's packages and podman-compose
(`make container-deps`), root (debootstrap), and the project's venv (the reference server).
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx

from benchmarks.serverproc import serve_command, started_server
from container import checks, compose, images
from container.podman import DEFAULT_STATE, Podman, PodmanError

PHOTOS = ("astronaut", "coffee", "chelsea", "camera")
SEED_CHECKPOINT = """
import sys, torch
from pathlib import Path
from model.architecture import paper_alexnet
from model.checkpoint import checkpoint_dict, save_checkpoint
from model.network import AlexNet
torch.manual_seed(0)
labels = [f"class_{i}" for i in range(10)]
model = AlexNet(paper_alexnet(10))
save_checkpoint(Path(sys.argv[1]), checkpoint_dict(model, labels=labels, epoch=0,
                                                   training={"dataset": "none (seeded weights)"}))
"""


class Log:
    """Lines to the terminal and to the log file, with the seconds since the start."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.started = time.monotonic()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")

    def __call__(self, line: str = "") -> None:
        stamped = f"[{time.monotonic() - self.started:6.0f}s] {line}" if line else ""
        print(stamped, flush=True)
        with self.path.open("a") as out:
            out.write(stamped + "\n")


def photos() -> dict[str, bytes]:
    """Real photographs shipped with scikit-image, as JPEG files."""
    from PIL import Image
    from skimage import data

    encoded = {}
    for name in PHOTOS:
        buffer = io.BytesIO()
        Image.fromarray(getattr(data, name)()).save(buffer, format="JPEG", quality=90)
        encoded[name] = buffer.getvalue()
    return encoded


def artifacts_folder(given: Path | None, state: Path, log: Log) -> Path:
    """The folder to serve: the one given, artifacts/ when exported, else a seeded export."""
    if given is not None:
        return given
    if (images.ROOT / "artifacts" / "manifest.json").is_file():
        return images.ROOT / "artifacts"
    out = state / "seeded-artifacts"
    if not (out / "manifest.json").is_file():
        log(
            "exporting a seeded, untrained AlexNet (10 classes) with the project's `alexnet export`"
        )
        checkpoint = state / "seeded.pt"
        subprocess.run([sys.executable, "-c", SEED_CHECKPOINT, str(checkpoint)], check=True)
        alexnet = serve_command()[0]
        subprocess.run(
            [alexnet, "export", "--checkpoint", str(checkpoint), "--out", str(out), "--int8"],
            check=True,
            capture_output=True,
        )
    return out


def step(log: Log, failures: list[str], name: str, check: Callable[[], list[str]]) -> None:
    started = time.monotonic()
    try:
        lines = check()
    except (checks.CheckFailed, PodmanError, subprocess.SubprocessError) as exc:
        failures.append(f"{name}: {exc}")
        log(f"FAIL {name}: {exc}")
        return
    log(f"ok   {name} ({time.monotonic() - started:.0f} s)")
    for line in lines:
        log(f"       {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m container", description=__doc__.split("\n")[0])
    parser.add_argument("--variant", action="append", choices=images.VARIANTS)
    parser.add_argument("--train", action="store_true", help="also build the train target")
    parser.add_argument("--artifacts", type=Path, help="an exported artifacts folder")
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE, help="podman's storage")
    parser.add_argument("--rebuild-base", action="store_true")
    parser.add_argument("--log", type=Path, default=images.ROOT / "build" / "image-check.log")
    options = parser.parse_args(argv)
    variants = options.variant or ["gpu"]
    log, failures = Log(options.log), list[str]()
    build_log = options.log.with_name("image-build.log")
    build_log.write_text("")

    podman = Podman(options.state)
    version = podman("version", "--format", "{{.Client.Version}}").stdout.strip()
    log(f"podman {version}; state {options.state}; host settings {podman.settings}")
    seconds = images.build_base(podman, build_log, rebuild=options.rebuild_base)
    size = podman.image_size(images.BASE_TAG)
    how = f"built in {seconds:.0f} s" if seconds else "cached"
    log(f"base {images.BASE_TAG}: {how}, {size / 1e6:.0f} MB")
    checks.ensure_container_runs(podman, images.BASE_TAG)

    built: list[images.Built] = []
    targets = [("serve", v) for v in variants] + ([("train", "gpu")] if options.train else [])
    for target, variant in targets:
        result = images.build(podman, target, variant, build_log)
        built.append(result)
        log(f"built {result.tag} in {result.seconds:.0f} s: {result.size / 1e6:.0f} MB")

    artifacts = checks.readable_copy(
        artifacts_folder(options.artifacts, options.state, log), options.state / "run-artifacts"
    )
    corrupt = checks.corrupt_checksum_copy(artifacts, options.state / "corrupt-artifacts")
    jpegs = photos()
    # The GPU image runs as docker-compose.yml has it (ALEXNET_PROVIDER=auto, which must fall
    # back to the CPU quietly here; the GPU reservation itself cannot be met on this host), the
    # CPU image as the CPU override has it.
    services = {"gpu": compose.serving_service(cpu=False), "cpu": compose.serving_service(cpu=True)}
    log(f"artifacts {artifacts}")
    for variant in variants:
        flags = " ".join(compose.run_flags(services[variant]))
        source = "docker-compose.yml" if variant == "gpu" else "docker-compose.cpu.yml over it"
        log(f"{variant} image runs with the flags of {source}: {flags}")
    serving = [result for result in built if result.target == "serve"]
    for result in serving:
        image, service = result.tag, services[result.variant]
        for name, check in (
            ("inside the image", partial(checks.inside_image, podman, image, result.variant)),
            (
                "answers as the venv's server",
                partial(checks.parity, podman, image, service, artifacts, jpegs, options.state),
            ),
            (
                "artifacts volume missing",
                partial(checks.refusal, podman, image, service, None, "no volume", "is missing"),
            ),
            (
                "corrupt checksum",
                partial(checks.refusal, podman, image, service, corrupt, "bad sha256", "sha256"),
            ),
            (
                "SIGTERM under load",
                partial(
                    checks.sigterm_under_load, podman, image, service, artifacts, jpegs["astronaut"]
                ),
            ),
        ):
            step(log, failures, f"{result.variant}: {name}", check)
    if serving:
        # The compose run's top-1 is checked against the venv's server.
        with started_server(artifacts, options.state / "venv-server.log", provider="cpu") as server:
            files = {"image": ("a.jpg", jpegs["coffee"])}
            want = httpx.post(f"{server.url}/v1/predict", files=files, timeout=60).json()
        label = want["results"][0]["predictions"][0]["label"]
        image = serving[0].tag
        compose_check = partial(checks.compose_up, podman, image, artifacts, jpegs["coffee"], label)
        step(log, failures, "compose (CPU override)", compose_check)

    for result in built:
        if result.target == "train":
            step(
                log,
                failures,
                "train: compose train profile",
                partial(checks.compose_train, podman, result.tag),
            )

    log("sizes (uncompressed, as `podman images` shows them):")
    for result in built:
        budget = images.SIZE_BUDGET[result.budget_key]
        verdict = "ok" if result.size <= budget else "OVER BUDGET"
        mb, budget_mb = result.size / 1e6, budget / 1e6
        log(f"  {result.budget_key:10s} {mb:7.0f} MB  budget {budget_mb:.0f} MB  {verdict}")
        if result.size > budget:
            failures.append(f"{result.tag}: {result.size} bytes > budget {budget}")
    log(f"{len(failures)} failed" if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
