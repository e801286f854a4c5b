"""`alexnet export`: its options are `ExportConfig`'s fields."""

from __future__ import annotations

import inspect
import time

from model.export_config import ExportConfig


class Export(ExportConfig):
    __doc__ = inspect.cleandoc(ExportConfig.__doc__ or "")

    def cli_cmd(self) -> None:
        from model.export import FILE_NAMES, export, load_source  # torch: only when exporting

        started = time.perf_counter()
        model, labels, training = load_source(self)
        manifest = export(model, labels, training, self)
        parity = manifest.files["fp32"].max_abs_diff_vs_pytorch or {}
        print(
            f"wrote {self.out}/{FILE_NAMES['fp32']} and manifest.json ({manifest.variant}, "
            f"{len(labels)} classes); max |onnxruntime - pytorch| = {max(parity.values()):.2e}"
        )
        for precision in ("int8", "fp16"):
            entry = manifest.files.get(precision)
            if entry is not None:
                q = entry.quantization
                recipe = f" ({q.weights.bits}-bit weights for {q.target_isa})" if q else ""
                print(
                    f"wrote {self.out}/{entry.path}{recipe}; top-1 agreement with fp32 "
                    f"{entry.top1_agreement:.1%}"
                )
        patches = manifest.channel_patches
        if patches is not None:
            print(
                f"wrote {self.out}/{patches.path} ({patches.bytes / 1e6:.1f} MB): top "
                f"{patches.top_k} of {patches.images} images for each conv channel, "
                f"{patches.images_kept} images kept"
            )
        if self.triton is not None:
            from model.triton import write_triton_repository

            fp32 = self.out / manifest.files["fp32"].path
            path = write_triton_repository(fp32, manifest, self.triton)
            print(f"wrote Triton model repository {path}")
        print(f"export took {time.perf_counter() - started:.1f} s")
