"""Size, memory and CPU time of the Grad-CAM graph next to the forward model.

    PYTHONPATH=. python -m benchmarks.explain_graph [--rounds 30] [--out benchmarks/results]

Builds a seeded paper AlexNet (1000 classes: the weights a real export carries) and
writes three layouts of forward + explain graph into a temporary folder:
- inline: `alexnet.onnx` as `alexnet export` writes it, and the all-layer explain
  graph (`model.onnx_backward.build_explain_model`) with its own copy of the weights;
- by reference: the same `alexnet.onnx`, and an explain graph whose weights point
  into it (`model.onnx_shared_weights`);
- external file: both graphs reading one `alexnet.weights` (changes the forward file);
plus single-target gradient graphs (conv5, conv1) for comparison. It reports file
sizes; the memory of a fresh process holding the forward and explain sessions
(with onnxruntime's weight prepacking on or off); batch-1 CPU times with the
service's session options, alternating the graphs round by round (medians, and
ratios to the forward model taken within each round); and, last, each layer's
difference from torch.autograd on real photos for both variants.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx.external_data_helper import set_external_data
from PIL import Image
from skimage import data as skdata

from benchmarks.explain_sessions import cpu_session
from benchmarks.machine import machine
from core.manifest import gradient_output
from core.preprocess import PreprocessSpec, preprocess_image
from model.architecture import build_architecture, paper_alexnet
from model.gradient_parity import check_explain_parity
from model.network import AlexNet
from model.onnx_backward import build_explain_model, build_gradient_model
from model.onnx_graph import build_onnx_model
from model.onnx_shared_weights import refer_to_weights_in

WEIGHTS_FILE = "alexnet.weights"
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera")


def save_sharing_weights(forward: onnx.ModelProto, explain: onnx.ModelProto, folder: Path) -> None:
    """Forward and explain graphs whose weights live once, in one external file.

    The forward model's tensors go to `alexnet.weights`; the explain graph's
    initializers of the same name (byte-identical: checked) point at the same
    offsets. The explain graph's few own constants stay inline.
    """
    forward, explain = _copy(forward), _copy(explain)
    raw = {init.name: init.raw_data for init in forward.graph.initializer}
    onnx.save_model(
        forward,
        folder / "alexnet.onnx",
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=WEIGHTS_FILE,
        size_threshold=1024,
    )
    stored = {
        init.name: {entry.key: entry.value for entry in init.external_data}
        for init in forward.graph.initializer
        if init.data_location == onnx.TensorProto.EXTERNAL
    }
    for init in explain.graph.initializer:
        if init.name in stored:
            if init.raw_data != raw[init.name]:
                raise ValueError(f"{init.name} differs between the forward and explain graphs")
            entry = stored[init.name]
            set_external_data(init, entry["location"], int(entry["offset"]), int(entry["length"]))
            init.data_location = onnx.TensorProto.EXTERNAL
            init.ClearField("raw_data")
    onnx.save_model(explain, folder / "alexnet.explain.onnx")


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def _photo(size: int) -> np.ndarray:
    image = Image.fromarray(skdata.astronaut())
    return preprocess_image(image, PreprocessSpec.for_input(size))[None]


def _sizes(folder: Path) -> dict[str, int]:
    return {path.name: path.stat().st_size for path in sorted(folder.iterdir())}


_MEMORY = """
import pathlib, sys
import numpy as np
from benchmarks.explain_sessions import cpu_session
from benchmarks.machine import machine
sessions = [cpu_session(pathlib.Path(arg[1:]), 2, prepack=arg[0] == "+") for arg in sys.argv[1:]]
for session in sessions:
    feeds = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32)
             for i in session.get_inputs()}
    session.run(None, feeds)
rollup = pathlib.Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]
print({line.split(":")[0]: int(line.split()[1]) // 1024 for line in rollup
       if line.startswith(("Rss:", "Pss_Anon:", "Pss_File:"))})
"""


def _memory_mib(*sessions: tuple[Path, bool]) -> dict[str, int]:
    """Resident and proportional (anonymous, file-backed) memory in MiB of a fresh process
    holding these (model, prepack) sessions after one run each."""
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY, *(("+" if pre else "-") + str(p) for p, pre in sessions)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return ast.literal_eval(out.strip().splitlines()[-1])


def _parity() -> dict[str, dict[str, object]]:
    """Per variant and class choice, each layer's difference from torch.autograd.

    Five real photos (skimage's astronaut, chelsea, coffee, rocket, camera) with the
    project's preprocessing; classes: each image's top-1, then the classes ranked
    2nd, 500th, last, 2nd and 500th.
    """
    photos = [Image.fromarray(getattr(skdata, name)()).convert("RGB") for name in PHOTOS]
    table: dict[str, dict[str, object]] = {}
    for variant in ("paper", "torchvision"):
        arch = build_architecture(variant, 1000)
        torch.manual_seed(0)
        model = AlexNet(arch).eval()
        weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
        spec = PreprocessSpec.for_input(arch.input_size)
        batch = np.stack([preprocess_image(photo, spec) for photo in photos])
        with torch.no_grad():
            ranking = model(torch.from_numpy(batch)).argsort(1, descending=True)
        ranks = (1, 499, 999, 1, 499)
        class_choices = {
            "top-1": [int(ranking[i, 0]) for i in range(len(photos))],
            "not top-1": [int(ranking[i, rank]) for i, rank in enumerate(ranks)],
        }
        graph = build_explain_model(arch, weights)
        for label, classes in class_choices.items():
            parity = check_explain_parity(model, graph, batch, classes)
            table[f"{variant}, {label}"] = {
                "layers": {layer: p.as_dict() for layer, p in parity.layers.items()},
                "differing_choices": parity.differing_choices,
            }
    return table


def _timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (service: cores)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)

    arch = paper_alexnet(1000)
    torch.manual_seed(0)
    weights = {k: v.detach().numpy() for k, v in AlexNet(arch).state_dict().items()}
    forward = build_onnx_model(arch, weights)
    explain = build_explain_model(arch, weights)
    results: dict[str, object] = {
        "threads": args.threads,
        "rounds": args.rounds,
        "machine": machine("CPUExecutionProvider", "in-process"),
        "load average before": list(os.getloadavg()),
    }
    with tempfile.TemporaryDirectory(prefix="explain-bench-") as tmp:
        layouts = {name: Path(tmp, name) for name in ("inline", "reference", "external", "single")}
        for folder in layouts.values():
            folder.mkdir()
        inline, reference = layouts["inline"], layouts["reference"]
        onnx.save_model(forward, inline / "alexnet.onnx")
        onnx.save_model(explain, inline / "alexnet.explain.onnx")
        onnx.save_model(forward, reference / "alexnet.onnx")
        onnx.save_model(
            refer_to_weights_in(explain, reference / "alexnet.onnx"),
            reference / "alexnet.explain.onnx",
        )
        save_sharing_weights(forward, explain, layouts["external"])
        for target in ("conv5", "conv1"):
            graph = build_gradient_model(arch, weights, target)
            onnx.save_model(graph, layouts["single"] / f"alexnet.gradient.{target}.onnx")
        del explain, forward, graph
        results["bytes"] = {name: _sizes(folder) for name, folder in layouts.items()}
        results["memory_mib"] = _memory(layouts)
        results["timings_ms"] = _time_graphs(arch.input_size, layouts, args)
        results["load average after timings"] = list(os.getloadavg())
    results["parity"] = _parity()
    print(json.dumps(results, indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "explain.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _memory(layouts: dict[str, Path]) -> dict[str, dict[str, int]]:
    """A fresh process per combination of layout and prepacking (True: onnxruntime's default)."""
    forward, explain = "alexnet.onnx", "alexnet.explain.onnx"
    inline, reference, external = layouts["inline"], layouts["reference"], layouts["external"]
    return {
        "forward alone": _memory_mib((inline / forward, True)),
        "forward + explain, inline": _memory_mib(
            (inline / forward, True), (inline / explain, True)
        ),
        "forward + explain, inline, explain not prepacked": _memory_mib(
            (inline / forward, True), (inline / explain, False)
        ),
        "forward + explain, by reference": _memory_mib(
            (reference / forward, True), (reference / explain, True)
        ),
        "forward + explain, by reference, explain not prepacked": _memory_mib(
            (reference / forward, True), (reference / explain, False)
        ),
        "forward + explain, external file, neither prepacked": _memory_mib(
            (external / forward, False), (external / explain, False)
        ),
    }


def _time_graphs(
    size: int, layouts: dict[str, Path], args: argparse.Namespace
) -> dict[str, dict[str, float]]:
    photo = _photo(size)
    class_weights = np.zeros((1, 1000), np.float32)
    class_weights[0, 7] = 1.0
    threads = args.threads
    inline, reference, single = layouts["inline"], layouts["reference"], layouts["single"]
    sessions = {
        "forward": cpu_session(inline / "alexnet.onnx", threads),
        "forward, not prepacked": cpu_session(inline / "alexnet.onnx", threads, prepack=False),
        "explain": cpu_session(inline / "alexnet.explain.onnx", threads),
        "explain, not prepacked": cpu_session(
            reference / "alexnet.explain.onnx", threads, prepack=False
        ),
        "gradient conv5": cpu_session(single / "alexnet.gradient.conv5.onnx", threads),
        "gradient conv1": cpu_session(single / "alexnet.gradient.conv1.onnx", threads),
    }
    forward_outputs = [o.name for o in sessions["forward"].get_outputs()]
    explain_outputs = [o.name for o in sessions["explain"].get_outputs()]
    feeds = {"input": photo, "class_weights": class_weights}
    # The by-reference explain graph gives the inline one's numbers, up to the
    # round-off of another GEMM kernel (unpacked weights).
    inline_out = sessions["explain"].run(explain_outputs, feeds)
    shared_out = sessions["explain, not prepacked"].run(explain_outputs, feeds)
    for name, a, b in zip(explain_outputs, inline_out, shared_out, strict=True):
        relative = np.abs(a - b).max() / max(np.abs(a).max(), 1e-30)
        assert relative < 1e-4, f"{name}: {relative:.3g}"
    batch16 = np.repeat(photo, 16, axis=0)

    def run(
        name: str, outputs: list[str] | None, inputs: dict[str, np.ndarray]
    ) -> Callable[[], object]:
        return lambda: sessions[name].run(outputs, inputs)

    runs: dict[str, Callable[[], object]] = {
        "forward, all outputs": run("forward", forward_outputs, {"input": photo}),
        "forward, logits only requested": run("forward", ["logits"], {"input": photo}),
        "forward (not prepacked), all outputs": run(
            "forward, not prepacked", forward_outputs, {"input": photo}
        ),
        "explain, all outputs": run("explain", explain_outputs, feeds),
        "explain, conv5 + its gradient requested": run(
            "explain", ["logits", "conv5", gradient_output("conv5")], feeds
        ),
        "explain (by reference, not prepacked), all outputs": run(
            "explain, not prepacked", explain_outputs, feeds
        ),
        "gradient graph for conv5 only": run("gradient conv5", None, feeds),
        "gradient graph for conv1 only": run("gradient conv1", None, feeds),
        "batch 16: forward, logits only": run("forward", ["logits"], {"input": batch16}),
        "batch 16: forward (not prepacked), logits only": run(
            "forward, not prepacked", ["logits"], {"input": batch16}
        ),
    }
    for call in runs.values():  # warm-up: first runs pay allocation and kernel choice
        for _ in range(3):
            call()
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, call in runs.items():
            samples[name].append(_timed(call))
    baseline = samples["forward, all outputs"]
    # Ratios round by round: the graphs of one round ran back to back, under the same load.
    return {
        name: {
            "median": statistics.median(values),
            "min": min(values),
            "median ratio to forward (all outputs), same round": statistics.median(
                v / b for v, b in zip(values, baseline, strict=True)
            ),
        }
        for name, values in samples.items()
    }


if __name__ == "__main__":
    raise SystemExit(main())
