"""Packaging: the Dockerfile and the serving image, checked without a Docker engine.

The image is checked by hadolint, by reading its stages (ENV, CMD, HEALTHCHECK, COPY) and by
running its own CMD and HEALTHCHECK outside Docker, with the image's /opt/venv played by this
virtual environment. Compose and Kubernetes: test_packaging_compose.py, test_packaging_k8s.py.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import free_port

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
DOCKERFILE = ROOT / "Dockerfile"


def tool(name: str) -> str:
    """A command-line tool from this venv or PATH, or skip the test with the reason."""
    found = shutil.which(name, path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        pytest.skip(f"{name} is not installed (it comes with `pip install -e .[dev]`)")
    return found


# --- the Dockerfile -----------------------------------------------------------------------


def dockerfile_stages(text: str) -> dict[str, list[tuple[str, str]]]:
    """Instructions per stage name, continuation lines joined and comments dropped."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in re.sub(r"\\\n(\s*#.*\n)*", " ", text).splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        keyword, _, args = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            words = args.split()
            current = [("FROM", words[0])]
            stages[words[2] if len(words) > 2 else words[0]] = current
        elif stages:
            current.append((keyword.upper(), args.strip()))
    return stages


def stage_chain(stages: dict[str, list[tuple[str, str]]], name: str) -> list[tuple[str, str]]:
    """A stage's instructions with those of the stages it is built FROM, oldest first."""
    parent = stages[name][0][1]
    return (stage_chain(stages, parent) if parent in stages else []) + stages[name][1:]


def image_config(stage: str = "") -> dict[str, Any]:
    """ENV, CMD, HEALTHCHECK, USER and RUN lines of a target (default: the last stage)."""
    stages = dockerfile_stages(DOCKERFILE.read_text())
    chain = stage_chain(stages, stage or list(stages)[-1])
    config: dict[str, Any] = {"env": {}, "run": [], "copy": []}
    for keyword, args in chain:
        if keyword == "ENV":
            config["env"].update(word.split("=", 1) for word in shlex.split(args))
        elif keyword in ("CMD", "USER"):
            config[keyword.lower()] = json.loads(args) if keyword == "CMD" else args
        elif keyword == "HEALTHCHECK":
            options, _, command = args.partition("CMD ")
            config["healthcheck"] = json.loads(command)
            config["healthcheck_options"] = dict(o.split("=") for o in options.split())
        elif keyword in ("RUN", "COPY"):
            config[keyword.lower()].append(args)
    return config


def test_hadolint_passes() -> None:
    hadolint = tool("hadolint")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "style", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The linter can fail: a careless Dockerfile is rejected.
    bad = subprocess.run(
        [hadolint, "-"],
        input="FROM python:latest\nRUN pip install x\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode != 0 and "DL3007" in bad.stdout


def test_serving_image_contract() -> None:
    config = image_config()
    assert config["cmd"] == ["alexnet", "serve"]  # exec form; options would beat the ENV
    assert config["user"] == "10001:10001"
    env = config["env"]
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert set(env["NVIDIA_DRIVER_CAPABILITIES"].split(",")) >= {"compute", "utility"}
    assert (env["ALEXNET_ARTIFACTS"], env["ALEXNET_HOST"], env["ALEXNET_PORT"]) == (
        "/models",
        "0.0.0.0",
        "8000",
    )
    assert (
        config["healthcheck"][:2] == ["python", "-c"]
        and "/health/ready" in config["healthcheck"][2]
    )
    # The serving image holds the builder's venv and nothing else from it; no torch anywhere.
    assert config["copy"] == ["--from=builder /opt/venv /opt/venv"]
    pins = dict(re.findall(r"^ARG (ONNXRUNTIME_GPU|TORCH)=(\S+)$", DOCKERFILE.read_text(), re.M))
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", pin) for pin in pins.values()) and len(pins) == 2
    builder = image_config("builder")
    assert not any("torch" in line for line in config["run"] + builder["run"])
    assert any("onnxruntime-gpu[cuda,cudnn]==${ONNXRUNTIME_GPU}" in r for r in builder["run"])
    assert "torch==${TORCH}" in " ".join(image_config("train")["run"])
    assert image_config("baked")["copy"][-1].endswith(" ${ARTIFACTS_DIR}/ /models/")


def dockerignore_excludes(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    excluded = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        body = re.escape(pattern.lstrip("!").strip("/"))
        body = body.replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        body = re.sub(r"\\\[(.*?)\\\]", r"[\1]", body).replace(r"\?", "[^/]")
        parts = path.strip("/").split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(re.fullmatch(body, prefix) for prefix in prefixes):
            excluded = not negated
    return excluded


def test_build_context_holds_what_the_dockerfile_copies() -> None:
    sources = [
        word.rstrip("/")
        for stage in ("builder", "baked")
        for args in image_config(stage)["copy"]
        if "--from=" not in args  # those copy from another stage, not the context
        for word in args.split()[:-1]
        if not word.startswith("--")
    ]
    assert "README.md" in sources and "model" in sources
    for source in sources:
        if source == "${ARTIFACTS_DIR}":
            source = "artifacts/manifest.json"  # the default, ignored by git
        else:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        assert not dockerignore_excludes(source), f"COPY {source}: excluded by .dockerignore"
    for private in (
        ".venv/bin/python",
        ".git/HEAD",
        "checkpoints/best.pt",
        "data/x.png",
        "tests/conftest.py",
        "model/__pycache__/cli.cpython-311.pyc",
        "service/__pycache__",
        ".env",
    ):
        assert dockerignore_excludes(private), private


@pytest.mark.slow
def test_image_cmd_serves_and_its_healthcheck_passes(
    exported_artifacts: Path, tmp_path: Path
) -> None:
    """The Dockerfile's CMD, ENV and HEALTHCHECK, run outside Docker on a loopback port."""
    config = image_config()
    port = free_port()
    env = {**os.environ}
    for key, value in config["env"].items():
        expanded = value.replace("$PATH", os.environ.get("PATH", ""))
        env[key] = expanded.replace("/opt/venv/bin", str(VENV_BIN))
    # The substitutions for this machine; CMD reads them from the environment.
    env.update(
        ALEXNET_ARTIFACTS=str(exported_artifacts), ALEXNET_HOST="127.0.0.1", ALEXNET_PORT=str(port)
    )
    timeout = float(config["healthcheck_options"]["--timeout"].rstrip("s"))

    def healthcheck(port: int) -> int:
        check_env = {**env, "ALEXNET_PORT": str(port)}
        return subprocess.run(
            config["healthcheck"], env=check_env, capture_output=True, timeout=timeout, check=False
        ).returncode

    assert healthcheck(free_port()) != 0  # nothing listens there: the check fails
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(config["cmd"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while healthcheck(port) != 0:
            assert process.poll() is None, f"CMD exited early:\n{log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"never healthy:\n{log_path.read_text()[-3000:]}"
            time.sleep(0.5)
        # The probe paths of the Kubernetes and KServe manifests answer too.
        for path in ("/health/live", "/health/ready", "/v2/health/live", "/v2/health/ready"):
            assert httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code == 200, path
    finally:
        process.send_signal(signal.SIGTERM)  # what `docker stop` sends
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    # Stopped within the grace period, not killed: uvicorn drains, then re-raises SIGTERM.
    assert process.returncode in (0, -signal.SIGTERM), log_path.read_text()[-3000:]


def test_serving_set_imports_without_torch() -> None:
    blocker = "import sys; sys.modules['torch'] = None\n"  # any `import torch` now fails
    serving = (
        "import service.main, service.app, core.preprocess, model.triton, cli.main\n"
        "try:\n    cli.main.main(['serve', '--help'])\nexcept SystemExit as done:\n"
        "    assert done.code == 0\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", blocker + serving],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    control = subprocess.run(
        [sys.executable, "-c", blocker + "import model.network"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "ModuleNotFoundError" in control.stderr or "ImportError" in control.stderr
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(dep.startswith("torch") for dep in project["dependencies"])
    assert any(dep.startswith("torch") for dep in project["optional-dependencies"]["train"])
