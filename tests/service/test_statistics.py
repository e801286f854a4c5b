"""summarise and top_channels against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from service.numerics import statistics
from service.numerics.errors import InvalidArgument
from service.numerics.statistics import summarise, top_channels


def expected_summary(array: np.ndarray) -> dict[str, float]:
    values = np.asarray(array, dtype=np.float64)
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
        "sparsity": float(np.mean(values == 0)),
    }


def assert_summary(actual: dict[str, float], expected: dict[str, float]) -> None:
    assert set(actual) == {"mean", "std", "min", "max", "sparsity"}
    assert all(type(value) is float for value in actual.values())
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def relu_like(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Float32 activations after ReLU: about half exact zeros."""
    return np.maximum(np.random.default_rng(seed).standard_normal(shape), 0).astype(np.float32)


def test_summary_of_a_relu_activation() -> None:
    activation = relu_like((96, 55, 55))
    summary = summarise(activation)
    assert_summary(summary, expected_summary(activation))
    assert 0.45 < summary["sparsity"] < 0.55


def test_summary_merges_chunks_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statistics, "_CHUNK", 7)  # many uneven chunks, one short at the end
    values = np.random.default_rng(1).standard_normal(1000) * 3 + 1e4  # big mean, small spread
    values[::9] = 0.0
    assert_summary(summarise(values), expected_summary(values))


def test_summary_of_views_ints_and_single_values() -> None:
    grid = np.arange(60, dtype=np.float32).reshape(6, 10)
    assert_summary(summarise(grid.T[::2]), expected_summary(grid.T[::2]))
    assert_summary(summarise(np.array([0, 0, 3, 5])), expected_summary(np.array([0, 0, 3, 5])))
    assert summarise(np.float32(2.5)) == {
        "mean": 2.5,
        "std": 0.0,
        "min": 2.5,
        "max": 2.5,
        "sparsity": 0.0,
    }


def test_summary_of_nothing_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="empty"):
        summarise(np.zeros((3, 0)))


def test_top_channels_rank_by_mean() -> None:
    activation = np.zeros((5, 2, 2), np.float32)
    activation[3] = 4.0
    activation[1] = [[1.0, 3.0], [0.0, 0.0]]  # mean 1
    activation[4] = 1.0  # ties with channel 1: the lower index first
    activation[0] = -1.0
    assert top_channels(activation, 3) == [
        {"channel": 3, "mean": 4.0},
        {"channel": 1, "mean": 1.0},
        {"channel": 4, "mean": 1.0},
    ]
    ranked = top_channels(activation, 10)
    assert [entry["channel"] for entry in ranked] == [3, 1, 4, 2, 0]
    assert top_channels(activation, 0) == []


def test_top_channels_of_a_vector_and_against_numpy() -> None:
    vector = np.array([0.5, 2.0, -1.0, 7.0], np.float32)
    assert top_channels(vector, 2) == [{"channel": 3, "mean": 7.0}, {"channel": 1, "mean": 2.0}]
    activation = relu_like((64, 6, 6), seed=2)
    means = activation.astype(np.float64).mean(axis=(1, 2))
    top = top_channels(activation, 5)
    assert [entry["channel"] for entry in top] == list(np.argsort(-means)[:5])
    assert [entry["mean"] for entry in top] == pytest.approx(sorted(means, reverse=True)[:5])
    assert all(type(entry["channel"]) is int and type(entry["mean"]) is float for entry in top)


@pytest.mark.parametrize(("shape", "k"), [((2, 3), 1), ((2, 3, 4, 5), 1), ((0,), 1), ((3,), -1)])
def test_top_channels_rejects_bad_input(shape: tuple[int, ...], k: int) -> None:
    with pytest.raises(InvalidArgument):
        top_channels(np.ones(shape), k)
