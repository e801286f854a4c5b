"""The artifacts folder as the service uses it: a checked manifest and the file to serve."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.errors import ArtifactError
from core.manifest import Manifest, Precision, read_manifest, verify_files
from core.preprocess import PreprocessSpec


@dataclass(frozen=True)
class ModelArtifacts:
    """A validated manifest whose files match their checksums, and the precision served."""

    folder: Path
    manifest: Manifest
    precision: Precision

    @property
    def model_path(self) -> Path:
        return self.folder / self.manifest.files[self.precision].path

    @property
    def fp32_path(self) -> Path:
        """The file with the real weights (int8 and fp16 hold quantised or half ones)."""
        return self.folder / self.manifest.files["fp32"].path

    @property
    def labels(self) -> list[str]:
        return self.manifest.labels

    @property
    def layer_names(self) -> list[str]:
        return self.manifest.layer_names

    @property
    def preprocess(self) -> PreprocessSpec:
        return self.manifest.preprocess

    @property
    def input_shape(self) -> list[int]:
        return list(self.manifest.input.shape)


def load_artifacts(folder: Path, precision: Precision = "fp32") -> ModelArtifacts:
    """Read and validate manifest.json, check every listed file's sha256."""
    manifest = read_manifest(folder)
    if precision not in manifest.files:
        raise ArtifactError(
            f"precision {precision} asked for, but the manifest offers only "
            f"{', '.join(sorted(manifest.files))}; export with --{precision}"
        )
    verify_files(folder, manifest)
    return ModelArtifacts(folder, manifest, precision)
