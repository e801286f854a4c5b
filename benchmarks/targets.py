"""Every target of the performance issue, next to what this run measured."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmarks.report import Results


def targets(r: Results) -> list[tuple[str, str, str, bool | None]]:
    """(what, measured, target, met) for every target of the issue."""
    rows: list[tuple[str, str, str, bool | None]] = []
    at = r.level(r.compare_at)
    c = r.compare_at
    if at is not None:
        ratio = at.load.throughput / r.limit.throughput
        rows.append(
            (
                f"predict throughput at concurrency {c} / in-process limit",
                f"{ratio:.2f}x ({at.load.throughput:.1f} vs {r.limit.throughput:.1f} img/s)",
                ">= 0.85x",
                ratio >= 0.85,
            )
        )
        b = r.limit.in_flight_batch
        matched = r.limit.pipelined_by_batch[b][0]
        rows.append(
            (
                f"predict throughput at concurrency {c} / in-process pipeline with as many "
                f"images in flight (batch {b}, {2 * b} images: like for like)",
                f"{at.load.throughput / matched:.2f}x ({at.load.throughput:.1f} vs "
                f"{matched:.1f} img/s)",
                ">= 0.85x",
                at.load.throughput / matched >= 0.85,
            )
        )
    on = r.batching_on or at
    if on is not None and r.batching_off is not None:
        ratio = on.load.throughput / r.batching_off.load.throughput
        rows.append(
            (
                f"dynamic batching / batching off (max batch 1), concurrency {c}, paired bursts",
                f"{ratio:.2f}x ({on.load.throughput:.1f} vs "
                f"{r.batching_off.load.throughput:.1f} img/s)",
                ">= 1.4x",
                ratio >= 1.4,
            )
        )
    one, ref = r.one_paired, r.serial
    if one is not None and ref is not None:
        rows.append(
            (
                "p99 latency at concurrency 1 / p99 of decode + onnxruntime batch 1 in process "
                "(same images, one at a time), paired bursts",
                f"{one.load.p99_ms / ref.p99_ms:.2f}x ({one.load.p99_ms:.1f} vs "
                f"{ref.p99_ms:.1f} ms; p50 {one.load.p50_ms:.1f} vs "
                f"{ref.p50_ms:.1f} ms, {one.load.p50_ms / ref.p50_ms:.2f}x)",
                "<= 1.15x",
                one.load.p99_ms <= 1.15 * ref.p99_ms,
            )
        )
    lo = r.logits_only
    rows.append(
        (
            f"`logits` from the multi-output model vs a logits-only export, plain onnxruntime "
            f"(batch {lo.batch_size})",
            f"{lo.cost:+.1%} ({lo.multi_ms:.1f} vs {lo.single_ms:.1f} ms)",
            "<= +3%",
            lo.cost <= 0.03,
        )
    )
    rows.append(
        (
            f"`logits` via the service's Engine vs a logits-only export (batch {lo.batch_size})",
            f"{lo.engine_cost:+.1%} ({lo.engine_ms:.1f} vs {lo.single_ms:.1f} ms)",
            "<= +3%",
            lo.engine_cost <= 0.03,
        )
    )
    if r.activations is not None:
        a = r.activations
        rows.append(
            (
                "/v1/activations (all layers, npz) / /v1/predict, concurrency 1",
                f"{a.ratio:.2f}x ({a.activations_ms:.1f} vs {a.predict_ms:.1f} ms)",
                "<= 2.5x",
                a.ratio <= 2.5,
            )
        )
    cv = r.convolution
    shape = "x".join(map(str, cv.shape))
    rows.append(
        (
            f"3x3 convolution of a {shape} image: ConvolutionEngine / scipy convolve2d",
            f"{cv.engine_ms / cv.scipy_ms:.2f}x ({cv.engine_ms:.1f} vs {cv.scipy_ms:.1f} ms)",
            "<= 1x (faster than scipy)",
            cv.engine_ms <= cv.scipy_ms,
        )
    )
    if r.convolve_endpoint_ms is not None:
        ms = r.convolve_endpoint_ms
        rows.append(
            (
                "POST /v1/convolve (same image, npy answer) / scipy convolve2d alone",
                f"{ms / cv.scipy_ms:.2f}x ({ms:.1f} vs {cv.scipy_ms:.1f} ms)",
                "<= 1x (HTTP round trip beats local scipy)",
                ms <= cv.scipy_ms,
            )
        )
    base = r.variant_baseline or at
    if base is not None and r.variant_level is not None:
        ratio = r.variant_level.load.throughput / base.load.throughput
        target = 1.8 if r.variant == "int8" else 1.0
        rows.append(
            (
                f"{r.variant} / fp32 throughput, concurrency {c}, paired bursts",
                f"{ratio:.2f}x ({r.variant_level.load.throughput:.1f} vs "
                f"{base.load.throughput:.1f} img/s)",
                f">= {target:g}x" + (" (set for AVX-512 VNNI)" if r.variant == "int8" else ""),
                ratio >= target,
            )
        )
    if r.variant_agreement is not None:
        rows.append(
            (
                f"{r.variant} top-1 agreement with fp32 (manifest)",
                f"{r.variant_agreement:.1%}",
                ">= 99%",
                r.variant_agreement >= 0.99,
            )
        )
    return rows
