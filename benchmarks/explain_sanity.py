"""Do explanations point at the object? Grad-CAM and occlusion peaks on shapes at known places.

    python -m benchmarks.explain_sanity --artifacts artifacts [--per-class 30]

Each outline class of the `shapes` set (circle, square, triangle, cross, ring) is
drawn at a known place, so its bounding box is known. For the class drawn, the peak of
the Grad-CAM map (conv5, conv4 and conv3, stretched over the crop) and the centre of the
most sensitive occlusion window (the service's defaults) either fall inside the box or not. Two
placements: as in training (large, near the centre: the box covers half the crop, so
the crop's centre is a baseline a lazy explainer would also hit) and anywhere (smaller,
anywhere in the crop: chance is the box's share of the crop). The models and
explanations are the service's own (Engine, Explainer, the numerics), in process.
Writes benchmarks/results/explain_sanity.md and .json.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.preprocess import preprocess_image
from model.data.shapes import SHAPE_CLASSES, TEXTURES, generate_image
from service.artifacts import load_artifacts
from service.classify import softmax
from service.engine import Engine
from service.explainer import Explainer
from service.numerics.gradcam import gradcam_map, upsample
from service.numerics.occlusion import OcclusionGrid, occluded_copies, sensitivity

SIZE = 256  # the drawn images' side; preprocessing resizes it to 256 and crops the centre
PATCH, STRIDE = 48, 24  # the service's occlusion defaults


def as_in_training(rng: np.random.Generator, crop: int) -> tuple[float, float, float]:
    """(x, y, radius) drawn as model/data/shapes.py draws its training images."""
    radius = float(rng.uniform(0.25, 0.36)) * SIZE
    x, y = np.clip(SIZE / 2 + rng.uniform(-0.1, 0.1, size=2) * SIZE, radius, SIZE - radius)
    return float(x), float(y), radius


def anywhere(rng: np.random.Generator, crop: int) -> tuple[float, float, float]:
    """(x, y, radius): a little smaller than in training, anywhere inside the crop."""
    radius = float(rng.uniform(0.22, 0.28)) * SIZE
    margin = (SIZE - crop) / 2
    x, y = rng.uniform(margin + radius, margin + crop - radius, size=2)
    return float(x), float(y), radius


PLACEMENTS = {"as in training": as_in_training, "anywhere": anywhere}


GRADCAM_LAYERS = ("conv5", "conv4", "conv3")
METHODS = ("occlusion", *(f"Grad-CAM {layer}" for layer in GRADCAM_LAYERS))


@dataclass
class Tally:
    images: int = 0
    correct: int = 0
    hits: Counter[str] = field(default_factory=Counter)  # by method: peaks inside the box
    hits_correct: Counter[str] = field(default_factory=Counter)  # ...of correct predictions
    centre_hits: int = 0  # a baseline that points at the crop's centre, whatever the image
    box_share: float = 0.0  # summed over images; mean = chance of a random peak

    def rate(self, hits: int, of: int) -> float:
        return hits / of if of else float("nan")


def as_json(tally: Tally) -> dict[str, object]:
    # Not dataclasses.asdict: it would rebuild each Counter from its (key, count) pairs.
    return {**vars(tally), "hits": dict(tally.hits), "hits_correct": dict(tally.hits_correct)}


def inside(point: tuple[float, float], box: tuple[float, float, float, float]) -> bool:
    y, x = point
    top, left, bottom, right = box
    return bool(top <= y < bottom and left <= x < right)


def run(engine: Engine, explainer: Explainer, placement: str, per_class: int, seed: int) -> Tally:
    loaded = engine.artifacts
    spec, labels = loaded.preprocess, loaded.labels
    crop, margin = spec.crop, (SIZE - spec.crop) // 2
    grid = OcclusionGrid(crop, PATCH, STRIDE)
    rng = np.random.default_rng(seed)
    outlines = [c for c in SHAPE_CLASSES if c not in TEXTURES and c in labels]
    tally = Tally()
    for _ in range(per_class):
        for name in outlines:
            x, y, radius = PLACEMENTS[placement](rng, crop)
            image = generate_image(SHAPE_CLASSES.index(name), rng, SIZE, place=(x, y, radius))
            tensor = preprocess_image(image, spec)
            # The shape's bounding box in crop pixels (top, left, bottom, right).
            box = (
                y - radius - margin,
                x - radius - margin,
                y + radius - margin,
                x + radius - margin,
            )
            target = labels.index(name)
            copies = np.stack([tensor, *occluded_copies(tensor, grid)])
            logits = np.concatenate(
                [engine.run(copies[i : i + 32])["logits"] for i in range(0, len(copies), 32)]
            )
            probabilities = np.array([softmax(row) for row in logits])
            correct = bool(int(np.argmax(probabilities[0])) == target)
            drops = sensitivity(probabilities[0, target], probabilities[1:, target], grid)
            row, col = np.unravel_index(int(np.argmax(drops)), drops.shape)
            window_centre = (grid.starts[row] + PATCH / 2, grid.starts[col] + PATCH / 2)
            hits = {"occlusion": inside(window_centre, box)}
            weights = np.eye(len(labels), dtype=np.float32)[target]
            for layer in GRADCAM_LAYERS:
                gradients = explainer.layer_gradient(tensor, weights, layer)
                cam = upsample(gradcam_map(gradients.activation, gradients.gradient), crop)
                peak_row, peak_col = np.unravel_index(int(np.argmax(cam)), cam.shape)
                hits[f"Grad-CAM {layer}"] = inside((float(peak_row), float(peak_col)), box)
            tally.images += 1
            tally.correct += correct
            tally.hits.update(method for method, hit in hits.items() if hit)
            tally.hits_correct.update(method for method, hit in hits.items() if hit and correct)
            tally.centre_hits += inside((crop / 2, crop / 2), box)
            tally.box_share += min(2 * radius, crop) ** 2 / crop**2
    return tally


def table(placement: str, tally: Tally) -> list[str]:
    def rates(hits: int, hits_correct: int) -> str:
        return (
            f"{tally.rate(hits, tally.images):.1%} | {tally.rate(hits_correct, tally.correct):.1%}"
        )

    return [
        f"## Shapes placed {placement}",
        "",
        "| | all images | correctly classified |",
        "| --- | ---: | ---: |",
        f"| images | {tally.images} | {tally.correct} |",
        *(
            f"| {method} peak inside the shape's box | "
            f"{rates(tally.hits[method], tally.hits_correct[method])} |"
            for method in METHODS
        ),
        f"| chance: the box's mean share of the crop | {tally.box_share / tally.images:.1%} | |",
        f"| baseline: the crop's centre is inside the box | "
        f"{tally.rate(tally.centre_hits, tally.images):.1%} | |",
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--seed", type=int, default=2012)
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    started = time.perf_counter()
    loaded = load_artifacts(args.artifacts)
    engine = Engine(loaded, provider="cpu")
    explainer = Explainer(loaded, engine.providers)
    tallies = {
        placement: run(engine, explainer, placement, args.per_class, args.seed)
        for placement in PLACEMENTS
    }
    facts: dict[str, object] = {
        "artifacts": str(args.artifacts),
        "model": f"{loaded.manifest.name} {loaded.manifest.version} ({loaded.manifest.variant})",
        "validation accuracy in training": loaded.manifest.training.val_accuracy,
        "images": f"{args.per_class} per outline class and placement, seed {args.seed}",
        "occlusion": f"{PATCH}-px patch every {STRIDE} px",
        "Grad-CAM": "the map's largest value, stretched over the crop",
        "seconds": round(time.perf_counter() - started, 1),
    }
    lines = [
        "# Do the explanations point at the object?",
        "",
        "Written by `python -m benchmarks.explain_sanity` (see its docstring for the method).",
        "",
        *(f"- {key}: {value}" for key, value in facts.items()),
        "",
    ]
    for placement, tally in tallies.items():
        lines += table(placement, tally)
    text = "\n".join(lines)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "explain_sanity.md").write_text(text)
    payload = {"tallies": {k: as_json(v) for k, v in tallies.items()}, "facts": facts}
    (args.results / "explain_sanity.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(text)


if __name__ == "__main__":
    main()
