"""The benchmark's report: a Markdown table with every figure next to its target, and a plot."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.explain_load import ExplainLatency, MixedLoad
from benchmarks.limit import Convolution, Limit, LogitsOnly, ModelAlone
from benchmarks.loadgen import LoadResult
from benchmarks.precision import precision_costs
from benchmarks.probes import ActivationsVsPredict
from benchmarks.scrape import REQUESTS, Histogram, batch_sizes
from benchmarks.serverproc import Usage
from benchmarks.targets import targets

MIB = 2**20


@dataclass
class SerialReference:
    """Decode + batch-1 inference one image at a time in the bench's process (no HTTP)."""

    p50_ms: float  # the median of the bursts' medians
    p99_ms: float  # the median of the bursts' p99s
    images: int
    bursts: int


@dataclass
class Level:
    """One concurrency level: the client's view, the server's resources and its histograms."""

    load: LoadResult
    usage: Usage | None
    histograms: dict[str, Histogram]
    window_s: float  # wall time between the two /metrics scrapes around the load
    bursts: int = 1  # separate runs of the load generator merged into this level
    load_average: float = math.nan  # the machine's 1-minute load average after it (max of bursts)

    def mean_ms(self, name: str) -> float:
        histogram = self.histograms.get(name)
        return histogram.mean * 1000 if histogram else math.nan

    @property
    def mean_batch(self) -> float:
        histogram = self.histograms.get("alexnet_batch_size")
        return histogram.mean if histogram else math.nan

    @property
    def images(self) -> float:
        histogram = self.histograms.get("alexnet_batch_size")
        return histogram.total if histogram else math.nan

    @property
    def inference_busy(self) -> float:
        """Fraction of the level's wall time the inference thread spent in onnxruntime."""
        histogram = self.histograms.get("alexnet_inference_seconds")
        return histogram.total / self.window_s if histogram and self.window_s else math.nan

    @property
    def cpu_ms_per_image(self) -> float:
        if self.usage is None or not self.images:
            return math.nan
        return self.usage.cpu_s / self.images * 1000

    @property
    def decode_cpu_ms(self) -> float:
        """The server's decode + preprocess thread CPU per image (its own histogram)."""
        histogram = self.histograms.get("alexnet_decode_cpu_seconds")
        return histogram.mean * 1000 if histogram and histogram.count else math.nan

    @property
    def batches(self) -> str:
        histogram = self.histograms.get("alexnet_batch_size")
        return batch_sizes(histogram) if histogram else "n/a"


@dataclass
class Results:
    """Everything one run measured."""

    name: str
    machine: dict[str, str]
    limit: Limit
    levels: list[Level]
    logits_only: LogitsOnly
    convolution: Convolution
    compare_at: int
    convolve_endpoint_ms: float | None = None
    activations: ActivationsVsPredict | None = None
    batching_on: Level | None = None  # the main server, in bursts paired with batching off
    batching_off: Level | None = None
    variant: str = "int8"
    variant_baseline: Level | None = None  # the main server, in bursts paired with the variant
    variant_level: Level | None = None
    variant_agreement: float | None = None
    # Concurrency 1 in bursts alternating with the in-process one-at-a-time reference.
    one_paired: Level | None = None
    serial: SerialReference | None = None
    # The main server at compare_at, in bursts alternating with the limit's pipelined runs.
    limit_service: Level | None = None
    # Both models alone (onnxruntime), alternated, at batch 1 and near the service's batches.
    model_alone: list[ModelAlone] = field(default_factory=list)
    # Both pipelines in process at this batch (img/s, CPU ms per image), in bursts
    # alternating with the two servers' (variant_baseline, variant_level).
    variant_inprocess_batch: int = 0
    variant_inprocess: dict[str, tuple[float, float]] = field(default_factory=dict)
    # Explanations (when the artifacts have them): latency at concurrency 1, and
    # predictions beside a client that explains all the time, in alternating bursts.
    explain_latency: ExplainLatency | None = None
    beside_explanations: MixedLoad | None = None
    peak_rss: int = 0
    notes: list[str] = field(default_factory=list)

    def level(self, concurrency: int) -> Level | None:
        return next((lv for lv in self.levels if lv.load.concurrency == concurrency), None)


def _f(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def _check(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "**no**")


def level_rows(r: Results) -> list[str]:
    head = (
        "| concurrency | throughput (img/s) | p50 (ms) | p90 (ms) | p99 (ms) | errors "
        "| queue wait (ms, mean) | inference (ms/batch, mean) | mean batch | batch sizes ran "
        "| inference busy | server CPU (cores) | server CPU per image (ms) "
        "| of which decode (ms) | client CPU (cores) | peak server RSS (MiB) | load average |"
    )
    lines = [head, "|" + "---|" * 17]
    extra = [
        ("paired with the in-process reference", r.one_paired),
        ("paired with the in-process limit", r.limit_service),
        ("batching on, paired", r.batching_on),
        ("batching off, paired", r.batching_off),
        ("fp32, paired", r.variant_baseline),
        (f"{r.variant}, paired", r.variant_level),
    ]
    named = [(str(lv.load.concurrency), lv) for lv in r.levels]
    named += [(f"{label}, {lv.load.concurrency}", lv) for label, lv in extra if lv is not None]
    for label, lv in named:
        u, load = lv.usage, lv.load
        lines.append(
            f"| {label} | {load.throughput:.1f} | {load.p50_ms:.1f} | {load.p90_ms:.1f} "
            f"| {load.p99_ms:.1f} | {load.errors} "
            f"| {_f(lv.mean_ms('alexnet_queue_wait_seconds'))} "
            f"| {_f(lv.mean_ms('alexnet_inference_seconds'))} | {_f(lv.mean_batch)} "
            f"| {lv.batches} | {lv.inference_busy:.0%} | {_f(u.cores if u else None, 2)} "
            f"| {_f(lv.cpu_ms_per_image)} | {_f(lv.decode_cpu_ms)} | {load.client_cores:.2f} "
            f"| {_f(u.peak_rss / MIB if u else None, 0)} | {_f(lv.load_average)} |"
        )
    return lines


def where_time_goes(r: Results) -> list[str]:
    """The figures that say where a request's time is spent, computed from this run."""
    lines = []
    at = r.limit_service or r.level(r.compare_at)
    if at is not None:
        pipelined = r.limit.pipelined_by_batch
        near = min(pipelined, key=lambda size: abs(size - at.mean_batch))
        rate, cpu_ms = pipelined[near]
        paired = " (paired bursts)" if r.limit_service is not None else ""
        lines += [
            f"- At concurrency {r.compare_at} the inference thread was in onnxruntime "
            f"{at.inference_busy:.0%} of the time (mean batch {_f(at.mean_batch)}); the oldest "
            f"image of a batch waited {_f(at.mean_ms('alexnet_queue_wait_seconds'))} ms.",
            f"- In process at batch {near} (near the service's batches){paired}: {rate:.1f} "
            f"img/s, {cpu_ms:.1f} ms of CPU per image; the server at concurrency "
            f"{r.compare_at}: {at.load.throughput:.1f} img/s, {_f(at.cpu_ms_per_image)} ms of "
            f"CPU per image. The difference, {_f(at.cpu_ms_per_image - cpu_ms)} ms per image, "
            "is what HTTP, multipart parsing, batching and JSON cost.",
            f"- Decode share at concurrency {r.compare_at}: the server's decode + preprocess "
            f"threads spent {_f(at.decode_cpu_ms)} ms of CPU per image (its "
            f"alexnet_decode_cpu_seconds histogram) of {_f(at.cpu_ms_per_image)} "
            f"({_share(at.decode_cpu_ms, at.cpu_ms_per_image)}); in process, one thread, "
            f"{_f(r.limit.decode_cpu_ms)} ms.",
        ]
    lines += latency_at_one(r)
    lim = r.limit
    lines.append(
        f"- Decode + preprocess is {lim.decode_ms:.1f} ms of one core per image; inference at "
        f"batch {lim.batch_size} is {1000 / lim.inference_only[lim.batch_size]:.1f} ms of wall "
        "time per image on all intra-op threads."
    )
    shares = r.logits_only.op_shares
    if shares:
        top = ", ".join(f"{op} {share:.0%}" for op, share in list(shares.items())[:6])
        lines.append(
            f"- onnxruntime kernel time by op type (logits-only graph, batch "
            f"{r.logits_only.batch_size}): {top}."
        )
    return lines


def _share(part: float, whole: float) -> str:
    return "n/a" if math.isnan(part) or math.isnan(whole) or not whole else f"{part / whole:.0%}"


def precision_section(r: Results) -> list[str]:
    """fp32 against the variant, stage by stage: where the model's ratio goes."""
    costs = precision_costs(r)
    if costs is None:
        return []
    v, b = r.variant, r.variant_inprocess_batch
    out = [
        "",
        f"## {v} against fp32: where the model's ratio goes",
        "",
        f"CPU per image (ms); every pair alternated in one run. Concurrency {r.compare_at}.",
        "",
        f"| stage | fp32 | {v} | fp32 / {v} |",
        "|---|---|---|---|",
    ]
    for alone in r.model_alone:
        f, q = alone.cpu_ms["fp32"], alone.cpu_ms[v]
        out.append(
            f"| onnxruntime alone, batch {alone.batch_size} (wall ms per image: "
            f"{alone.wall_ms['fp32']:.2f} vs {alone.wall_ms[v]:.2f}) | {f:.2f} | {q:.2f} "
            f"| **{f / q:.2f}x** |"
        )
    rows = [
        (f"in-process pipeline, batch {b} (decode + onnxruntime)", costs.pipeline),
        (f"the service, concurrency {r.compare_at}", costs.server),
        ("... of which decode + preprocess (the server's histogram)", costs.decode),
        (
            "... HTTP, multipart, batching, JSON (service - pipeline)",
            {n: costs.overhead(n) for n in costs.server},
        ),
    ]
    for label, values in rows:
        out.append(
            f"| {label} | {values['fp32']:.2f} | {values[v]:.2f} "
            f"| {values['fp32'] / values[v]:.2f}x |"
        )
    t = costs.throughput
    out += [
        f"| the service's throughput (img/s) | {t['fp32']:.1f} | {t[v]:.1f} "
        f"| **{t[v] / t['fp32']:.2f}x** ({v} / fp32) |",
        "",
        f"- Decode share of the server's CPU per image: fp32 "
        f"{_share(costs.decode['fp32'], costs.server['fp32'])}, {v} "
        f"{_share(costs.decode[v], costs.server[v])}.",
        f"- {v} shrinks the model, not decode + HTTP ({costs.fixed():.2f} ms per image "
        f"here, the mean of both). With each model's inference inside the pipeline (pipeline "
        f"less decode: {costs.inference('fp32'):.2f} and {costs.inference(v):.2f} ms) that "
        f"puts the service's CPU ratio at ({costs.inference('fp32'):.2f} + {costs.fixed():.2f})"
        f" / ({costs.inference(v):.2f} + {costs.fixed():.2f}) = "
        f"**{costs.estimate('fp32', v):.2f}x** (measured: "
        f"{costs.server['fp32'] / costs.server[v]:.2f}x); 2.2x would need decode + HTTP <= "
        f"{costs.fixed_allowed('fp32', v, 2.2):.2f} ms per image.",
    ]
    return out


def latency_at_one(r: Results) -> list[str]:
    """A lone request's time, from the client down to onnxruntime."""
    one = r.one_paired or r.level(1)
    if one is None:
        return []
    held = one.mean_ms(REQUESTS)
    inference = one.mean_ms("alexnet_inference_seconds")
    queued = one.mean_ms("alexnet_queue_wait_seconds")
    rest = held - inference - queued - r.limit.decode_ms
    reference = f"; in process, one at a time: {r.serial.p50_ms:.1f} ms" if r.serial else ""
    return [
        f"- At concurrency 1 (mean per request): the client waited "
        f"{one.load.duration_s / max(one.load.requests, 1) * 1000:.1f} ms, the server held the "
        f"request {_f(held)} ms: inference {_f(inference)} (hand-off to the inference thread "
        f"included), queue {_f(queued)}, decode + preprocess ~{r.limit.decode_ms:.1f} (in "
        f"process), the rest, {_f(rest)} ms, multipart parsing, hand-offs to the decode pool, "
        f"JSON and middleware. Client p50 {one.load.p50_ms:.1f} ms{reference}."
    ]


def markdown(r: Results) -> str:
    """The whole report."""
    lim = r.limit
    out = [f"# Benchmark `{r.name}`", "", "## Machine", ""]
    out += [f"- {key}: {value}" for key, value in r.machine.items()]
    out += ["", "## Targets", "", "| what | measured | target | met |", "|---|---|---|---|"]
    out += [f"| {w} | {m} | {t} | {_check(ok)} |" for w, m, t, ok in targets(r)]
    out += ["", "## Load levels (POST /v1/predict, one 640x480 JPEG per request)", ""]
    out += level_rows(r)
    out += [
        "",
        f"Peak server RSS over the whole run: {_f(r.peak_rss / MIB if r.peak_rss else None, 0)}"
        " MiB. Queue wait is the wait of the oldest image of each batch; inference is "
        "onnxruntime's time per batch (both from the server's /metrics, diffed per level). "
        "Paired rows ran in alternating bursts with the server they are compared with "
        "(percentiles: the median of the bursts').",
        "",
        "## The limit (in process, no HTTP)",
        "",
        f"- service / limit at concurrency {r.compare_at}: "
        + (
            f"{(r.limit_service or r.level(r.compare_at)).load.throughput / lim.throughput:.2f}"  # type: ignore[union-attr]
            if (r.limit_service or r.level(r.compare_at))
            else "n/a"
        ),
        f"- pipelined decode + preprocess + onnxruntime at batch {lim.batch_size}: "
        f"{lim.throughput:.1f} img/s, {lim.cpu_ms_per_image:.1f} ms of CPU per image "
        + (
            f"(in {lim.paired_bursts} bursts alternating with the service's)"
            if lim.paired_bursts
            else "(measured alone, before the service)"
        ),
        f"- decode + preprocess of one image (median): {lim.decode_ms:.1f} ms",
        f"- onnxruntime at batch 1: median {lim.raw_batch1_ms:.1f} ms, "
        f"p99 {lim.raw_batch1_p99_ms:.1f} ms",
        (
            f"- one image at a time, decode + preprocess + onnxruntime batch 1: median "
            f"{r.serial.p50_ms:.1f} ms, p99 {r.serial.p99_ms:.1f} ms ({r.serial.images} images "
            f"in {r.serial.bursts} bursts between the service's)"
            if r.serial
            else "- one image at a time: not measured (no concurrency 1 level)"
        ),
        "- pipelined by batch size (img/s, CPU ms per image): "
        + ", ".join(f"{b}: {v[0]:.1f}, {v[1]:.1f}" for b, v in lim.pipelined_by_batch.items()),
        "- inference alone by batch size (img/s): "
        + ", ".join(f"{size}: {rate:.1f}" for size, rate in lim.inference_only.items()),
        f"- convolution engine result vs scipy: max |difference| {r.convolution.max_abs_diff:.2e}",
    ]
    out += precision_section(r)
    out += ["", "## Where the time goes", "", *where_time_goes(r)]
    if r.notes:
        out += ["", "## Notes", ""] + [f"- {note}" for note in r.notes]
    return "\n".join(out) + "\n"


def write(r: Results, folder: Path) -> Path:
    """Write <name>.md, <name>.png and <name>.json (raw figures); returns the Markdown path."""
    folder.mkdir(parents=True, exist_ok=True)
    report = folder / f"{r.name}.md"
    report.write_text(markdown(r))
    from benchmarks.plot import plot  # matplotlib only when writing

    plot(r, folder / f"{r.name}.png")
    (folder / f"{r.name}.json").write_text(json.dumps(asdict(r), indent=1, default=str) + "\n")
    return report
