"""The options of `alexnet export` (torch-free, so `--help` stays fast)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.cpu import Int8Isa


class ExportConfig(BaseModel):
    """Write OUT/alexnet.onnx (fp32, dynamic batch, input `input`, outputs `logits` then every
    layer by name) and OUT/manifest.json. The export is checked against PyTorch on real images
    and refused if any output differs."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: Path = Field(
        Path("checkpoints/best.pt"), description="checkpoint written by `alexnet train`"
    )
    torchvision_weights: Path | None = Field(
        None,
        description="a torchvision ImageNet state dict (alexnet-owt-*.pth) on disk, instead of "
        "a checkpoint: exports the `torchvision` variant with the 1000 ImageNet labels",
    )
    out: Path = Field(Path("artifacts"), description="artifacts folder to write")
    data: Path | None = Field(
        None,
        description="ImageFolder of images to verify the export and calibrate int8 on; "
        "unset: procedurally drawn shapes",
    )
    int8: bool = Field(False, description="also write alexnet.int8.onnx (for CPUs)")
    int8_isa: Literal["auto"] | Int8Isa = Field(
        "auto",
        description="the CPUs the int8 model is for: auto = this machine's int8 instructions; "
        "with VNNI (amx, avx512_vnni, avx_vnni) weights use 8 bits, else 7",
    )
    fp16: bool = Field(False, description="also write alexnet.fp16.onnx (for GPUs)")
    explain: bool = Field(
        True,
        description="also write alexnet.explain.onnx, the exact-gradient graph of Grad-CAM "
        "(checked against torch.autograd; it reads its weights from alexnet.onnx)",
    )
    triton: Path | None = Field(
        None, description="also write a Triton Inference Server model repository here"
    )
    patch_images: int = Field(
        256,
        ge=0,
        le=1024,
        description="images (from --data, or drawn shapes) run through the model to find each "
        "conv channel's top-activating patches, kept in channel_patches.npz (each kept image "
        "adds at most 3x227x227 bytes); 0: write none",
    )
    patch_top_k: int = Field(
        9, ge=1, le=64, description="patches per conv channel: its K most activating images"
    )
    name: str = Field("alexnet", description="model name")
    version: str = Field("1", description="model version")
