"""manifest.json: the contract between `alexnet export` (writes it) and the service (reads it).

One pydantic model, `Manifest`, is both the writer's and the reader's definition:
export builds one and dumps it, the service validates the file against it. An unknown,
missing or mistyped field is refused with one line naming it, so nothing downstream
ever meets a manifest it did not expect. `read_artifacts` also checks every listed
file against its sha256.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.cpu import Int8Isa
from core.errors import ArtifactError, one_line
from core.preprocess import PreprocessSpec

FORMAT: Final = "alexnet-manifest/1"
MANIFEST_FILE = "manifest.json"
# The graph's tensor names: the input, then `logits`, then every layer by its own name.
INPUT_NAME = "input"
LOGITS_NAME = "logits"

Precision = Literal["fp32", "int8", "fp16"]
LayerType = Literal["conv", "maxpool", "lrn", "fc"]
Count = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(ge=1)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class Strict(BaseModel):
    """Unknown fields are errors, not silently ignored; instances are read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ArtifactFile(Strict):
    """A file of the artifacts folder, checked against its sha256 before it is used."""

    path: str = Field(pattern=r"^[\w.-]+$", description="file name inside the artifacts folder")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: Count


class QuantizedWeights(Strict):
    type: Literal["int8"] = "int8"
    per_channel: bool
    bits: Literal[7, 8] = Field(
        description="7: the range onnxruntime keeps for CPUs without VNNI (reduce_range)"
    )


class QuantizedActivations(Strict):
    type: Literal["uint8"] = "uint8"
    calibration: Literal["MinMax"] = "MinMax"
    images: Positive = Field(description="calibration images")


class Quantization(Strict):
    """How the int8 file was made, and for which CPU (`core.cpu`).

    An 8-bit-weight model served on a CPU without VNNI needs onnxruntime's exact u8u8
    path (`session.x64quantprecision=1`): the service adds it at load. Manifests
    written before this record existed have 7-bit weights.
    """

    format: Literal["QDQ"] = "QDQ"
    weights: QuantizedWeights
    activations: QuantizedActivations
    fp32_nodes: list[str] = Field(description="nodes of the fp32 graph left unquantised")
    lrn_window_sum: Literal["conv", "matmul"] = Field(
        description="`matmul`: LRN's window sums run as MatMul over channels (bit-identical "
        "logits; no layout change around them in the int8 graph)"
    )
    target_isa: Int8Isa = Field(description="the int8 instructions the recipe was chosen for")
    onnxruntime: str = Field(description="version that quantised it")


class ModelFile(ArtifactFile):
    """One .onnx file of the export and what was measured of it."""

    # fp32: the largest |onnxruntime - PyTorch| per output on the verification images.
    max_abs_diff_vs_pytorch: dict[str, float] | None = None
    # int8 / fp16: share of held-out images whose top-1 class matches the fp32 model's.
    top1_agreement: Fraction | None = None
    # int8 only; absent in manifests from before it was recorded (7-bit weights then).
    quantization: Quantization | None = None


class InputTensor(Strict):
    name: str
    shape: tuple[Positive, Positive, Positive] = Field(description="C, H, W (no batch axis)")
    dtype: Literal["float32"]


class Layer(Strict):
    """One row of the layer table: shapes, costs and the receptive field of a layer."""

    name: str
    type: LayerType
    kernel: Count
    stride: Count
    padding: Count
    groups: Positive
    in_channels: Positive
    channels: Positive
    output_shape: list[Positive] = Field(description="without the batch axis")
    parameters: Count
    multiply_adds: Count
    receptive_field: Positive = Field(description="side of the input square one unit sees")
    jump: Positive = Field(description="input pixels between neighbouring units")


class Training(Strict):
    """Where the weights came from: the run's facts and last results (all optional)."""

    dataset: str
    weights: str | None = None  # a torchvision state dict's file name
    variant: str | None = None
    classes: Count | None = None
    num_train: Count | None = None
    num_val: Count | None = None
    skipped_images: Count | None = None
    seed: int | None = None
    optimizer: str | None = None
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    batch_size: Count | None = None
    device: str | None = None
    epochs: Count | None = None
    train_loss: float | None = None
    train_accuracy: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    best_val_accuracy: float | None = None
    best_val_loss: float | None = None
    best_epoch: Count | None = None
    seconds: float | None = None
    stopped_by_time_budget: bool | None = None


class GradientCheck(Strict):
    """One layer of the explain graph against torch.autograd on the verification images."""

    activation_max_abs_diff: float
    gradient_max_abs_diff: float = Field(description="on onnxruntime's ReLU and pool choices")
    gradient_max_rel_diff: float = Field(description="the same / max |torch gradient|")
    gradient_max_abs: float = Field(description="max |torch gradient|: is it vanishing?")
    own_choices_max_rel_diff: float = Field(description="with torch's own choices")


def gradient_output(layer: str) -> str:
    """The explain graph's output holding the gradient with respect to `layer`'s activation."""
    return f"{layer}_gradient"


class ExplainGraph(ArtifactFile):
    """The Grad-CAM graph: exact gradients of the logits with respect to every layer.

    Inputs `input` (as the model's) and `class_weights` (N, classes); outputs `logits`
    and, for each layer L of `layers`, `L` (its activation) and `L_gradient`, the
    gradient of sum_c class_weights[c] * logits[c] with respect to that activation.
    """

    weights_from: str | None = Field(
        None, description="the model file whose weights the graph reads (none: its own)"
    )
    class_weights_input: str = "class_weights"
    layers: list[str] = Field(min_length=1)
    gradient_vs_pytorch: dict[str, GradientCheck]
    choices_differing_from_pytorch: dict[str, Count] = Field(
        description="ReLU units or max-pool windows where PyTorch's own forward chose "
        "otherwise (near-ties within float32 round-off)"
    )


class ChannelPatches(ArtifactFile):
    """The top-activating image patches of every conv channel (`channel_patches.npz`).

    Optional: exports before it existed, or with `--patch-images 0`, have none.
    """

    format: Literal["alexnet-channel-patches/1"]
    layers: list[str] = Field(min_length=1, description="the conv layers covered, in order")
    top_k: Positive = Field(description="patches per channel at most: its best distinct images")
    images: Positive = Field(description="images run through the network to find them")
    images_kept: Count = Field(description="distinct images some channel's patches come from")
    source: str = Field(description="where the images came from")


class Manifest(Strict):
    """Everything the service needs about an export, and nothing it must guess."""

    format: Literal["alexnet-manifest/1"] = FORMAT
    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    version: str = Field(min_length=1)
    variant: str
    opset: Positive
    files: dict[Precision, ModelFile]
    input: InputTensor
    outputs: list[str]
    preprocess: PreprocessSpec
    labels: list[str] = Field(min_length=1)
    num_classes: Positive
    parameters: Count
    layers: list[Layer] = Field(min_length=1)
    training: Training
    explain: ExplainGraph | None = None
    channel_patches: ChannelPatches | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if "fp32" not in self.files:
            raise ValueError("files has no fp32 model")
        described = [k for k, v in self.files.items() if v.quantization is not None]
        if described not in ([], ["int8"]):
            raise ValueError(f"only the int8 file has a quantization record, not {described}")
        if self.num_classes != len(self.labels):
            raise ValueError(f"{len(self.labels)} labels for num_classes {self.num_classes}")
        expected = [LOGITS_NAME, *self.layer_names]
        if self.outputs != expected:
            raise ValueError(f"outputs {self.outputs} are not {expected}")
        if self.explain is not None and not set(self.explain.layers) <= set(self.layer_names):
            raise ValueError(f"explain layers {self.explain.layers} are not all model layers")
        if self.input.shape[1:] != (self.preprocess.crop, self.preprocess.crop):
            raise ValueError(
                f"input {list(self.input.shape)} does not match the crop {self.preprocess.crop}"
            )
        if self.channel_patches is not None:
            convs = [layer.name for layer in self.layers if layer.type == "conv"]
            if not set(self.channel_patches.layers) <= set(convs):
                raise ValueError(f"channel_patches.layers must be conv layers ({convs})")
        return self

    @property
    def serving_version(self) -> str:
        """The version servers publish: `version` when it is a positive integer, else "1".

        Triton names version folders by positive integers and its URLs take `[0-9]+`;
        perf_analyzer parses the version it reads back as an integer.
        """
        return serving_version(self.version)

    @property
    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def layer(self, name: str) -> Layer | None:
        return next((layer for layer in self.layers if layer.name == name), None)

    def dumps(self) -> str:
        return self.model_dump_json(indent=2, exclude_none=True) + "\n"


def serving_version(version: str) -> str:
    """`version` as a positive integer without leading zeros ("007" -> "7"), else "1"."""
    if version.isascii() and version.isdigit() and int(version) > 0:
        return str(int(version))
    return "1"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so a large model never sits in memory twice."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_facts(path: Path) -> dict[str, Any]:
    """What the manifest records of every file it lists: name, checksum and size."""
    return {"path": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size}


def read_manifest(folder: Path) -> Manifest:
    """The folder's manifest, validated; ArtifactError (one line) for anything amiss."""
    path = folder / MANIFEST_FILE
    if not folder.is_dir():
        raise ArtifactError(f"artifacts folder {folder} does not exist; run `alexnet export`")
    if not path.is_file():
        raise ArtifactError(f"{path} is missing; run `alexnet export --out {folder}`")
    try:
        text = path.read_text()
        json.loads(text)  # a clearer message for broken JSON than pydantic's
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ArtifactError(f"{path} is not valid JSON: {exc}") from None
    try:
        return Manifest.model_validate_json(text)
    except ValidationError as exc:
        raise ArtifactError(
            f"{path} does not match this service's manifest format ({one_line(exc)}); "
            f"re-export the model with `alexnet export --out {folder}`"
        ) from None


def listed_files(manifest: Manifest) -> dict[str, ArtifactFile]:
    """Every file the manifest lists, by what it is."""
    listed: dict[str, ArtifactFile] = {str(k): v for k, v in manifest.files.items()}
    if manifest.explain is not None:
        listed["explain"] = manifest.explain
    if manifest.channel_patches is not None:
        listed["channel patches"] = manifest.channel_patches
    return listed


def verify_files(folder: Path, manifest: Manifest) -> None:
    """Every file the manifest lists exists and matches its sha256."""
    for what, entry in listed_files(manifest).items():
        path = folder / entry.path
        if not path.is_file():
            raise ArtifactError(f"{path} ({what}) listed in the manifest is missing")
        if sha256_file(path) != entry.sha256:
            raise ArtifactError(
                f"{path} does not match its sha256 in the manifest; "
                "the file is corrupt or from another export"
            )


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    """Write manifest.json atomically (a reader never sees half a file)."""
    path = folder / MANIFEST_FILE
    partial = path.with_suffix(".partial")
    partial.write_text(manifest.dumps())
    partial.replace(path)
    return path
