"""Grad-CAM and Grad-CAM++ maps on hand-made cases, worked out on paper."""

from __future__ import annotations

import numpy as np
import pytest

from service.numerics.gradcam import (
    gradcam_map,
    gradcam_plus_plus_map,
    gradcam_plus_plus_weights,
    gradcam_weights,
    normalise_map,
)

# Two channels of a 2x2 layer.
ACTIVATION = np.array(
    [
        [[1.0, 2.0], [3.0, 4.0]],
        [[4.0, 0.0], [0.0, 1.0]],
    ],
    np.float32,
)


def test_gradcam_map_by_hand() -> None:
    gradient = np.array(
        [
            [[0.5, 0.5], [0.5, 0.5]],  # mean 0.5
            [[-2.0, 0.0], [-1.0, -1.0]],  # mean -1
        ],
        np.float32,
    )
    np.testing.assert_allclose(gradcam_weights(gradient), [0.5, -1.0])
    # 0.5 * A0 - A1 = [[0.5 - 4, 1 - 0], [1.5 - 0, 2 - 1]], then ReLU.
    np.testing.assert_array_equal(
        gradcam_map(ACTIVATION, gradient), np.array([[0.0, 1.0], [1.5, 1.0]], np.float32)
    )


def test_gradcam_map_equals_a_direct_loop() -> None:
    rng = np.random.default_rng(0)
    activation = np.maximum(rng.normal(size=(5, 4, 3)), 0).astype(np.float32)
    gradient = rng.normal(size=(5, 4, 3)).astype(np.float32)
    expected = np.zeros((4, 3))
    for i in range(4):
        for j in range(3):
            expected[i, j] = max(
                0.0, sum(gradient[k].mean() * activation[k, i, j] for k in range(5))
            )
    np.testing.assert_allclose(gradcam_map(activation, gradient), expected, rtol=1e-6)


def test_gradcam_plus_plus_weights_by_hand() -> None:
    # Channel 0: sum of A = 10. g = 1: alpha = 1 / (2 + 10) = 1/12;
    # g = 0: alpha = 0; g = -1: ReLU(g) = 0, no share; g = 2: alpha = 4 / (8 + 80) = 1/22.
    # Channel 1: sum of A = 5, g = 1 everywhere: alpha = 1 / (2 + 5) = 1/7, four times.
    gradient = np.array(
        [
            [[1.0, 0.0], [-1.0, 2.0]],
            [[1.0, 1.0], [1.0, 1.0]],
        ],
        np.float32,
    )
    weights = gradcam_plus_plus_weights(ACTIVATION, gradient)
    np.testing.assert_allclose(weights, [1 / 12 + 2 / 22, 4 / 7], rtol=1e-5)
    expected = np.maximum(weights[0] * ACTIVATION[0] + weights[1] * ACTIVATION[1], 0)
    np.testing.assert_allclose(gradcam_plus_plus_map(ACTIVATION, gradient), expected, rtol=1e-6)


def test_gradcam_plus_plus_equals_the_papers_exp_form() -> None:
    # Eq. 19 with Y = exp(S): alpha = Y'' / (2 Y'' + sum A Y'''), w = sum alpha ReLU(Y'),
    # where for a piecewise-linear network Y' = e^S g, Y'' = e^S g^2, Y''' = e^S g^3.
    rng = np.random.default_rng(1)
    activation = np.maximum(rng.normal(size=(3, 4, 4)), 0).astype(np.float32)
    gradient = rng.normal(size=(3, 4, 4)).astype(np.float32)
    score = 2.5
    exp_s, g = np.exp(score), gradient.astype(np.float64)
    paper_weights = np.zeros(3)
    for k in range(3):
        total = activation[k].sum()
        for i in range(4):
            for j in range(4):
                d1, d2, d3 = exp_s * g[k, i, j], exp_s * g[k, i, j] ** 2, exp_s * g[k, i, j] ** 3
                paper_weights[k] += d2 / (2 * d2 + total * d3) * max(d1, 0.0)
    # The paper's weights carry the factor e^S, one positive number per image.
    np.testing.assert_allclose(
        gradcam_plus_plus_weights(activation, gradient) * exp_s, paper_weights, rtol=1e-4
    )
    paper_map = np.maximum(np.tensordot(paper_weights, activation, axes=1), 0)
    np.testing.assert_allclose(
        normalise_map(gradcam_plus_plus_map(activation, gradient)),
        normalise_map(paper_map),
        atol=1e-5,
    )


def test_normalise_map() -> None:
    np.testing.assert_allclose(
        normalise_map(np.array([[1.0, 3.0], [2.0, 5.0]])), [[0, 0.5], [0.25, 1]]
    )
    np.testing.assert_array_equal(normalise_map(np.zeros((2, 2))), np.zeros((2, 2)))


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        gradcam_map(ACTIVATION, ACTIVATION[:1])
    with pytest.raises(ValueError, match="channels, height, width"):
        gradcam_map(ACTIVATION[0], ACTIVATION[0])
