"""Load and check the artifacts folder: the manifest, the ONNX files and their checksums."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.manifest_io import sha256_file
from model.preprocess import PreprocessSpec


class ArtifactError(RuntimeError):
    """The artifacts folder is unusable; the message is the one line start-up prints."""


@dataclass(frozen=True)
class ModelArtifacts:
    """A checked manifest and the path of the model file to serve."""

    folder: Path
    manifest: dict[str, Any]
    model_path: Path
    precision: str

    @property
    def labels(self) -> list[str]:
        return list(self.manifest["labels"])

    @property
    def layer_names(self) -> list[str]:
        return [layer["name"] for layer in self.manifest["layers"]]

    @property
    def preprocess(self) -> PreprocessSpec:
        return PreprocessSpec.from_dict(self.manifest["preprocess"])

    @property
    def input_shape(self) -> list[int]:
        return list(self.manifest["input"]["shape"])


REQUIRED_KEYS = ("name", "version", "files", "input", "preprocess", "labels", "layers")


def load_artifacts(folder: Path, precision: str = "fp32") -> ModelArtifacts:
    """Read manifest.json, check every listed file's sha256, pick the precision's file."""
    manifest_path = folder / "manifest.json"
    if not folder.is_dir():
        raise ArtifactError(f"artifacts folder {folder} does not exist; run `alexnet export`")
    if not manifest_path.is_file():
        raise ArtifactError(f"{manifest_path} is missing; run `alexnet export --out {folder}`")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{manifest_path} is not valid JSON: {exc}") from None
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        raise ArtifactError(f"{manifest_path} lacks {', '.join(missing)}")
    files = manifest["files"]
    if precision not in files:
        raise ArtifactError(
            f"precision {precision} asked for, but the manifest offers only "
            f"{', '.join(sorted(files))}; export with --{precision}"
        )
    for variant, entry in files.items():
        path = folder / entry["path"]
        if not path.is_file():
            raise ArtifactError(f"{path} ({variant}) listed in the manifest is missing")
        if sha256_file(path) != entry["sha256"]:
            raise ArtifactError(
                f"{path} does not match its sha256 in the manifest; "
                "the file is corrupt or from another export"
            )
    if len(manifest["labels"]) != manifest.get("num_classes", len(manifest["labels"])):
        raise ArtifactError(f"{manifest_path}: labels and num_classes disagree")
    return ModelArtifacts(folder, manifest, folder / files[precision]["path"], precision)
