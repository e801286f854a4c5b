"""Grad-CAM and Grad-CAM++ maps from a layer's activation and gradient (numpy only).

The service uses it on what the export's gradient graph (`model.onnx_backward`)
returns. Both take one image's activation A and gradient dS/dA, each (C, H, W),
and return the (H, W) map before any upsampling or normalisation:

- Grad-CAM (Selvaraju et al. 2017): w_k = mean over positions of dS/dA_k,
  map = ReLU(sum_k w_k A_k).
- Grad-CAM++ (Chattopadhyay et al. 2018, eq. 19, in the closed form
  pytorch-grad-cam uses): with Y = exp(S) and a network that is piecewise linear
  above A (ReLU, max-pool, fc), the 2nd and 3rd derivatives of Y are exp(S) g^2
  and exp(S) g^3 with g = dS/dA, and exp(S) cancels in

      alpha_kij = g^2 / (2 g^2 + sum_ab A_kab * g^3)

  (0 where g = 0); w_k = sum_ij alpha_kij ReLU(g_kij), map = ReLU(sum_k w_k A_k).
  The factor exp(S) that the paper's w_k also carries is one positive number per
  image, so it is dropped, as in pytorch-grad-cam; normalised maps are unchanged.
"""

from __future__ import annotations

import numpy as np

# pytorch-grad-cam's guard against 0/0 where g is tiny but not 0.
PLUS_PLUS_EPSILON = 1e-6


def gradcam_weights(gradient: np.ndarray) -> np.ndarray:
    """Per channel, the mean of the gradient over positions: (C, H, W) -> (C,)."""
    _check_map_stack(gradient, "gradient")
    return gradient.astype(np.float64).mean(axis=(1, 2))


def gradcam_map(activation: np.ndarray, gradient: np.ndarray) -> np.ndarray:
    """Grad-CAM: ReLU(sum_k w_k A_k), (H, W) float32."""
    _check_pair(activation, gradient)
    return _weighted_relu(activation, gradcam_weights(gradient))


def gradcam_plus_plus_weights(activation: np.ndarray, gradient: np.ndarray) -> np.ndarray:
    """Grad-CAM++'s channel weights (eq. 19 closed form): (C, H, W) pair -> (C,)."""
    _check_pair(activation, gradient)
    g = gradient.astype(np.float64)
    g2, g3 = g * g, g * g * g
    activation_sums = activation.astype(np.float64).sum(axis=(1, 2))[:, None, None]
    alpha = g2 / (2 * g2 + activation_sums * g3 + PLUS_PLUS_EPSILON)
    alpha = np.where(g != 0, alpha, 0.0)
    return (alpha * np.maximum(g, 0.0)).sum(axis=(1, 2))


def gradcam_plus_plus_map(activation: np.ndarray, gradient: np.ndarray) -> np.ndarray:
    """Grad-CAM++: ReLU(sum_k w_k A_k) with Grad-CAM++'s weights, (H, W) float32."""
    return _weighted_relu(activation, gradcam_plus_plus_weights(activation, gradient))


def normalise_map(cam: np.ndarray) -> np.ndarray:
    """Scale a map to [0, 1] (all zeros stays all zeros), as heat maps are shown."""
    cam = cam.astype(np.float32)
    low, high = float(cam.min()), float(cam.max())
    if high <= low:
        return np.zeros_like(cam)
    return (cam - low) / (high - low)


def _weighted_relu(activation: np.ndarray, weights: np.ndarray) -> np.ndarray:
    cam = np.tensordot(weights, activation.astype(np.float64), axes=1)
    return np.maximum(cam, 0.0).astype(np.float32)


def _check_pair(activation: np.ndarray, gradient: np.ndarray) -> None:
    _check_map_stack(activation, "activation")
    if activation.shape != gradient.shape:
        raise ValueError(
            f"activation {activation.shape} and gradient {gradient.shape} differ in shape"
        )


def _check_map_stack(array: np.ndarray, what: str) -> None:
    if array.ndim != 3:
        raise ValueError(f"{what} must be (channels, height, width), got shape {array.shape}")


def upsample(cam: np.ndarray, size: int) -> np.ndarray:
    """A layer-resolution map stretched bilinearly over the (size, size) input, as Grad-CAM does."""
    from PIL import Image

    stretched = Image.fromarray(cam.astype(np.float32), mode="F").resize(
        (size, size), Image.Resampling.BILINEAR
    )
    return np.asarray(stretched, dtype=np.float32)
