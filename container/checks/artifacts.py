"""The artifacts folder as the container sees it: readable by its user, or deliberately broken."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path


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
