"""`alexnet export`: a checkpoint (or torchvision weights) to ONNX plus manifest.json."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a trained model to ONNX with every layer as an output",
        description="Write OUT/alexnet.onnx (fp32, dynamic batch, input 'input', outputs "
        "'logits' then every layer by name) and OUT/manifest.json. The export is checked "
        "against PyTorch on real images and refused if any output differs.",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--checkpoint",
        type=Path,
        default=Path("checkpoints/best.pt"),
        help="checkpoint written by `alexnet train` (default: %(default)s)",
    )
    source.add_argument(
        "--torchvision-weights",
        type=Path,
        metavar="PTH",
        help="a torchvision ImageNet state dict (alexnet-owt-*.pth) on disk; "
        "exports the `torchvision` variant with the 1000 ImageNet labels",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("artifacts"),
        help="artifacts folder to write (default: %(default)s)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        help="ImageFolder of images to verify the export "
        "and calibrate int8 on (default: procedurally generated shapes)",
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="also write alexnet.int8.onnx (static quantisation, for CPUs)",
    )
    parser.add_argument(
        "--fp16", action="store_true", help="also write alexnet.fp16.onnx (for GPUs)"
    )
    parser.add_argument(
        "--triton",
        type=Path,
        metavar="DIR",
        help="also write a Triton Inference Server model repository to DIR",
    )
    parser.add_argument("--name", default="alexnet", help="model name (default: %(default)s)")
    parser.add_argument("--version", default="1", help="model version (default: %(default)s)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from model.export import ExportRequest, export

    started = time.perf_counter()
    if args.torchvision_weights:
        from model.torchvision_compat import imagenet_labels, load_torchvision_model

        model = load_torchvision_model(args.torchvision_weights)
        labels = (
            imagenet_labels()
            if model.num_classes == 1000
            else [f"class_{i}" for i in range(model.num_classes)]
        )
        training = {
            "dataset": "ImageNet (torchvision weights)",
            "weights": args.torchvision_weights.name,
        }
    else:
        from model.checkpoint import load_model

        model, checkpoint = load_model(args.checkpoint)
        labels, training = checkpoint["labels"], checkpoint.get("training", {})
    request = ExportRequest(
        model=model,
        labels=labels,
        out=args.out,
        name=args.name,
        version=args.version,
        training=training,
        data=args.data,
        int8=args.int8,
        fp16=args.fp16,
    )
    manifest = export(request)
    worst = max(manifest["files"]["fp32"]["max_abs_diff_vs_pytorch"].values())
    print(
        f"wrote {args.out}/alexnet.onnx and manifest.json ({model.arch.variant}, "
        f"{len(labels)} classes); max |onnxruntime - pytorch| = {worst:.2e}"
    )
    for variant in ("int8", "fp16"):
        if variant in manifest["files"]:
            agreement = manifest["files"][variant]["top1_agreement"]
            print(
                f"wrote {args.out}/alexnet.{variant}.onnx; top-1 agreement with fp32 "
                f"{agreement:.1%}"
            )
    if args.triton:
        from model.triton import write_triton_repository

        path = write_triton_repository(args.out / "alexnet.onnx", manifest, args.triton)
        print(f"wrote Triton model repository {path}")
    print(f"export took {time.perf_counter() - started:.1f} s")
    return 0
