"""Named preset kernels and `parse_kernel`, the validator of kernels users send as JSON.

Presets are written for true convolution (mode="convolution", the default), as
textbooks write them: `edge` [[1, -1]] gives each pixel minus its left neighbour
(the vertical-edge detector of Goodfellow et al., ch. 9), `sobel_x` answers
positively where brightness grows to the right and `sobel_y` where it grows
downwards. With cross_correlation those three change sign; the symmetric ones
(laplacian, gaussian, box, sharpen, identity) give the same either way.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import numpy.typing as npt

from service.numerics.errors import InvalidKernel

FLOAT32_MAX = float(np.finfo(np.float32).max)


def _preset(rows: list[list[float]], scale: float = 1.0) -> npt.NDArray[np.float32]:
    array = np.array(rows, dtype=np.float64) * scale
    frozen = array.astype(np.float32)
    frozen.setflags(write=False)  # shared by every request: nobody may change it
    return frozen


PRESETS: dict[str, npt.NDArray[np.float32]] = {
    "edge": _preset([[1, -1]]),
    "sobel_x": _preset([[1, 0, -1], [2, 0, -2], [1, 0, -1]]),
    "sobel_y": _preset([[1, 2, 1], [0, 0, 0], [-1, -2, -1]]),
    "laplacian": _preset([[0, 1, 0], [1, -4, 1], [0, 1, 0]]),
    "gaussian": _preset([[1, 2, 1], [2, 4, 2], [1, 2, 1]], 1 / 16),  # binomial, sums to 1
    "box": _preset([[1, 1, 1], [1, 1, 1], [1, 1, 1]], 1 / 9),
    "sharpen": _preset([[0, -1, 0], [-1, 5, -1], [0, -1, 0]]),
    "identity": _preset([[0, 0, 0], [0, 1, 0], [0, 0, 0]]),
}


def preset(name: str) -> npt.NDArray[np.float32]:
    """The preset kernel called `name` (read-only)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise InvalidKernel(
            f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}"
        ) from None


def _reject_constant(name: str) -> float:
    raise InvalidKernel(f"kernel values must be finite numbers, not {name}")


def _describe(value: Any) -> str:
    """A short rendering of a user's value for an error message."""
    if isinstance(value, str | bool | int | float) or value is None:
        text = json.dumps(value)
    else:
        text = f"a {type(value).__name__}"
    return text if len(text) <= 40 else text[:37] + "..."


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool | np.bool_):
        raise InvalidKernel(
            f"{where} is {_describe(value)}; kernel values must be numbers, not booleans"
        )
    if isinstance(value, list):
        raise InvalidKernel(
            f"{where} is a list; the kernel must be 2-D (a list of rows of numbers)"
        )
    if not isinstance(value, int | float | np.integer | np.floating):
        raise InvalidKernel(f"{where} is {_describe(value)}; kernel values must be numbers")
    number: int | float = value.item() if isinstance(value, np.generic) else value
    if isinstance(number, float) and not math.isfinite(number):
        raise InvalidKernel(f"{where} is {number}; kernel values must be finite")
    if abs(number) > FLOAT32_MAX:  # exact for ints of any size, so no OverflowError
        raise InvalidKernel(f"{where} is too large for float32 (at most about 3.4e38)")
    return float(number)


def parse_kernel(obj: Any, max_size: int) -> npt.NDArray[np.float32]:
    """A float32 (rows, cols) kernel from a 2-D list of numbers, or from its JSON text.

    Raises InvalidKernel, naming what is wrong, for anything but a non-empty
    rectangular list of rows of finite real numbers (not booleans, strings, NaN
    or Infinity) with at most `max_size` rows and `max_size` columns.
    """
    if isinstance(obj, str | bytes):
        # Bound the text before parsing: ~64 characters per allowed value is plenty.
        if len(obj) > 64 * max_size * max_size + 1024:
            raise InvalidKernel(
                f"the kernel text is {len(obj)} characters, too long for at "
                f"most {max_size}x{max_size} values"
            )
        try:
            obj = json.loads(obj, parse_constant=_reject_constant)
        except InvalidKernel:  # NaN or Infinity, from _reject_constant
            raise
        except json.JSONDecodeError as exc:
            raise InvalidKernel(
                f"the kernel is not valid JSON: {exc.msg} at character {exc.pos}"
            ) from None
        except (ValueError, RecursionError):  # e.g. an int of over 4300 digits
            raise InvalidKernel("the kernel is not a valid JSON list of numbers") from None
    if isinstance(obj, np.ndarray):
        obj = obj.tolist()
    if not isinstance(obj, list) or not obj:
        raise InvalidKernel("the kernel must be a non-empty list of rows, e.g. [[1, -1]]")
    if len(obj) > max_size:
        raise InvalidKernel(f"the kernel has {len(obj)} rows; at most {max_size} are allowed")
    width = len(obj[0]) if isinstance(obj[0], list) else None
    rows: list[list[float]] = []
    for r, row in enumerate(obj):
        if not isinstance(row, list):
            raise InvalidKernel(
                f"kernel row {r} is {_describe(row)}, not a list; the kernel "
                "must be 2-D, e.g. [[1, -1]]"
            )
        if not row:
            raise InvalidKernel(f"kernel row {r} is empty")
        if len(row) > max_size:
            raise InvalidKernel(
                f"kernel row {r} has {len(row)} values; at most {max_size} are allowed"
            )
        if len(row) != width:
            raise InvalidKernel(
                f"kernel row {r} has {len(row)} values but row 0 has {width}; "
                "all rows must have the same length"
            )
        rows.append([_number(value, f"kernel[{r}][{c}]") for c, value in enumerate(row)])
    return np.array(rows, dtype=np.float32)
