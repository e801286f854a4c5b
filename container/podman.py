"""Podman on this host: the settings it needs here, kept in one state folder, and a thin runner.

Podman reads CONTAINERS_CONF and CONTAINERS_STORAGE_CONF; pointing them at files written here
keeps every image, container and volume of the checks in the state folder (never in the
host's default storage) and carries what this kind of machine needs, found by trying:

- runc, not crun, where /sys/fs/cgroup is not a pure cgroup v2 mount: Debian 12's crun 1.8
  refuses a hybrid hierarchy whose v2 part has controllers ("cgroups in hybrid mode not
  supported"); runc runs there.
- cgroupfs and a file event log where systemd is not PID 1 (no systemd to ask).
- explicit ulimits where the process lacks CAP_SYS_RESOURCE: podman asks for
  RLIMIT_NOFILE/NPROC of 1048576 by default, which cannot be granted without it.
- overlay storage where the kernel has overlayfs (vfs copies every layer whole: a 2.8 GB
  image would take several times that on disk), vfs otherwise.

Health checks: podman schedules HEALTHCHECK with systemd timers. Without systemd nothing runs
them, so the checks run the image's own command with `podman healthcheck run`, which also
records the result as the container's health.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_STATE = Path(os.environ.get("ALEXNET_IMAGE_STATE", "/var/tmp/alexnet-image-check"))
CAP_SYS_RESOURCE = 24
# podman itself runs with this RLIMIT_NPROC on these machines; containers cannot get more.
NPROC_WITHOUT_CAP = 32768


class PodmanError(RuntimeError):
    """A podman command failed; the message holds its command line and output."""


def _mount_type(path: str) -> str:
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[1] == path:
            return fields[2]
    return ""


def _has_capability(bit: int) -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> bit & 1)
    return False


def _toml_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(json.dumps(item) for item in items) + "]"


def host_settings() -> dict[str, Any]:
    """What this host needs from podman (see the module docstring), as found now."""
    unified = _mount_type("/sys/fs/cgroup") == "cgroup2"
    systemd = Path("/run/systemd/system").is_dir()
    ulimits: list[str] = []
    if not _has_capability(CAP_SYS_RESOURCE):
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nofile = min(nofile, 1048576) if nofile != resource.RLIM_INFINITY else 1048576
        ulimits = [f"nofile={nofile}:{nofile}", f"nproc={NPROC_WITHOUT_CAP}:{NPROC_WITHOUT_CAP}"]
    overlay = "overlay" in Path("/proc/filesystems").read_text()
    return {
        "runtime": None if unified else "runc",
        "cgroup_manager": "systemd" if systemd else "cgroupfs",
        "events_logger": "journald" if systemd else "file",
        "ulimits": ulimits,
        "driver": os.environ.get("ALEXNET_STORAGE_DRIVER") or ("overlay" if overlay else "vfs"),
    }


@dataclass
class Podman:
    """podman with this host's settings and the state folder's storage."""

    state: Path = DEFAULT_STATE
    env: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if shutil.which("podman") is None:
            raise PodmanError("podman is not installed (`make container-deps` installs it)")
        self.state.mkdir(parents=True, exist_ok=True)
        self.settings = host_settings()
        storage, engine = self.state / "storage.conf", self.state / "containers.conf"
        storage.write_text(
            "[storage]\n"
            f'driver = "{self.settings["driver"]}"\n'
            f'graphroot = "{self.state / "storage"}"\n'
            f'runroot = "{self.state / "run"}"\n'
        )
        lines = ["[containers]"]
        if self.settings["ulimits"]:
            lines.append(f"default_ulimits = {_toml_list(self.settings['ulimits'])}")
        lines += [
            "[engine]",
            f'cgroup_manager = "{self.settings["cgroup_manager"]}"',
            f'events_logger = "{self.settings["events_logger"]}"',
        ]
        if self.settings["runtime"]:
            lines.append(f'runtime = "{self.settings["runtime"]}"')
        engine.write_text("\n".join(lines) + "\n")
        self.env = {
            **os.environ,
            "CONTAINERS_CONF": str(engine),
            "CONTAINERS_STORAGE_CONF": str(storage),
        }

    def __call__(
        self, *args: str, check: bool = True, timeout: float | None = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run `podman ARGS`; its output, or PodmanError when it fails and `check` is set."""
        done = subprocess.run(
            ["podman", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise PodmanError(f"podman {' '.join(args)}: exit {done.returncode}\n{done.stderr}")
        return done

    def stream(self, args: Sequence[str], log: Path, timeout: float) -> int:
        """Run a long podman command with its output going to a log file; its exit status."""
        with log.open("a") as out:
            out.write(f"$ podman {' '.join(args)}\n")
            out.flush()
            return subprocess.run(
                ["podman", *args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            ).returncode

    def run_once(
        self,
        image: str,
        entrypoint: str,
        *args: str,
        options: Sequence[str] = (),
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run one command in a throwaway container of `image` (podman run --rm)."""
        # The command is not the server, so the image's HEALTHCHECK would have nothing to probe.
        return self(
            "run",
            "--rm",
            "--no-healthcheck",
            *options,
            "--entrypoint",
            entrypoint,
            image,
            *args,
            check=check,
        )

    def exists(self, image: str) -> bool:
        return self("image", "exists", image, check=False).returncode == 0

    def inspect(self, name: str, kind: str = "container") -> dict[str, Any]:
        data = json.loads(self(kind, "inspect", name).stdout)
        return dict(data[0])

    def image_size(self, image: str) -> int:
        """Bytes of the image's layers, uncompressed (what it takes on a host's disk)."""
        return int(self("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())

    def state_of(self, container: str) -> dict[str, Any]:
        state: dict[str, Any] = self.inspect(container)["State"]
        return state

    def healthy(self, container: str) -> bool:
        """Run the container's HEALTHCHECK command once; True when it passed."""
        return self("healthcheck", "run", container, check=False, timeout=60).returncode == 0

    def wait_healthy(self, container: str, timeout_s: float = 180) -> float:
        """Seconds until the image's HEALTHCHECK passed; PodmanError if the container stops."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self.healthy(container):
                return time.monotonic() - started
            if not self.state_of(container)["Running"]:
                raise PodmanError(
                    f"{container} stopped before it was healthy:\n{self.logs(container)}"
                )
            time.sleep(1)
        raise PodmanError(f"{container} not healthy after {timeout_s:g} s:\n{self.logs(container)}")

    def logs(self, container: str) -> str:
        done = self("logs", container, check=False)
        return done.stdout + done.stderr

    def remove(self, *containers: str) -> None:
        if containers:
            self("rm", "--force", "--time", "0", *containers, check=False)


def ca_bundle_mount() -> list[str]:
    """A build-time bind of the host's CA bundle over the image's, when the host has one.

    Builds fetch from PyPI. Where the host reaches it through a TLS-inspecting proxy (as
    here), only the host's bundle trusts the proxy; the bind exists for RUN steps only and
    leaves no trace in a layer, since the base already has that file (pip >= 24.2 reads the
    system store through truststore). ALEXNET_BUILD_CA_BUNDLE= (empty) turns it off.
    """
    bundle = os.environ.get("ALEXNET_BUILD_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    if not bundle or not Path(bundle).is_file():
        return []
    return ["--volume", f"{bundle}:/etc/ssl/certs/ca-certificates.crt:ro"]
