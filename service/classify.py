"""Logits to ranked labels: softmax and top-k, in plain numpy."""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities from one image's logits, computed in float64 for stability."""
    shifted = logits.astype(np.float64) - np.max(logits)
    exp = np.exp(shifted)
    return exp / exp.sum()


def top_k(logits: np.ndarray, labels: list[str], k: int) -> list[dict[str, object]]:
    """The k most probable classes, best first, as {label, index, probability}."""
    probabilities = softmax(logits)
    k = min(k, len(labels))
    best = np.argpartition(-probabilities, k - 1)[:k]
    best = best[np.argsort(-probabilities[best], kind="stable")]
    return [
        {"label": labels[i], "index": int(i), "probability": float(probabilities[i])} for i in best
    ]
