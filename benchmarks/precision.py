"""fp32 against int8 (or fp16) stage by stage: what each costs per image, and the bound.

The model's ratio (onnxruntime alone) shrinks on the way to the client: decode and the
HTTP path cost the same per image whichever model runs. These figures come from one
bench run's alternated measurements (`benchmarks.variants.compare_precision`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmarks.report import Results


@dataclass
class PrecisionCosts:
    """CPU per image of fp32 and the variant at each stage, and what bounds their ratio."""

    model: dict[str, float]  # onnxruntime alone near the service's batches
    pipeline: dict[str, float]  # in process: decode + onnxruntime, pipelined
    server: dict[str, float]  # the service at compare_at
    decode: dict[str, float]  # the server's decode threads
    throughput: dict[str, float]  # the service's images per second

    def overhead(self, name: str) -> float:
        """What the service adds over the in-process pipeline: HTTP, multipart, batching, JSON."""
        return self.server[name] - self.pipeline[name]

    def fixed(self) -> float:
        """Decode + overhead per image, the mean over both precisions: int8 shrinks neither."""
        names = list(self.server)
        return sum(self.decode[n] + self.overhead(n) for n in names) / len(names)

    def inference(self, name: str) -> float:
        """onnxruntime's share of the pipeline's CPU per image (the pipeline less decode)."""
        return self.pipeline[name] - self.decode[name]

    def estimate(self, slow: str, fast: str) -> float:
        """The service's CPU ratio from its parts: each model's inference plus the fixed part."""
        fixed = self.fixed()
        return (self.inference(slow) + fixed) / (self.inference(fast) + fixed)

    def fixed_allowed(self, slow: str, fast: str, ratio: float) -> float:
        """The decode + overhead per image at which the service would reach `ratio`."""
        return (self.inference(slow) - ratio * self.inference(fast)) / (ratio - 1)


def precision_costs(r: Results) -> PrecisionCosts | None:
    """The run's alternated figures for fp32 and the variant, or None if it has none."""
    base, level, variant = r.variant_baseline, r.variant_level, r.variant
    if base is None or level is None or not r.variant_inprocess or not r.model_alone:
        return None
    model = next(m for m in r.model_alone if m.batch_size == r.variant_inprocess_batch)
    levels = {"fp32": base, variant: level}
    return PrecisionCosts(
        model=dict(model.cpu_ms),
        pipeline={name: cpu for name, (_, cpu) in r.variant_inprocess.items()},
        server={name: lv.cpu_ms_per_image for name, lv in levels.items()},
        decode={name: lv.decode_cpu_ms for name, lv in levels.items()},
        throughput={name: lv.load.throughput for name, lv in levels.items()},
    )
