"""What a convolution saves: stored floats and float operations vs the equivalent matrices.

A convolution is a matrix product in disguise: flatten the (rows x cols) image to
a vector of `in` pixels and the result to `out` pixels, and there is an out x in
matrix doing the same. The figures compare three ways to hold and apply it.

- convolution: stores the kh*kw kernel; each output multiplies the taps that land
  inside the image and adds the products up: n multiplies + (n - 1) adds for n taps.
- dense_matrix: stores all out*in entries, zeros included; a matrix-vector product
  does in multiplies + (in - 1) adds per output, 2*out*in - out in all.
- sparse_matrix: stores only the entries the kernel can make nonzero (CSR-style;
  the integer indices are not counted, only floats) and does the same operations
  as the convolution.

Counting rules, so the numbers are exact integers a person can check:
- Only taps that fall inside the image count. With valid padding every output has
  kh*kw of them; with same or full, outputs near the border see fewer (the zero
  fill is not stored in a matrix and costs no operation), so n varies per output.
- Structure, not values: a kernel entry that happens to be 0 still counts, since the
  figures describe the operator a kernel of that shape defines.
- Channels: RGB is the same kernel applied to each channel independently, so
  float_ops multiply by the number of channels while stored_floats do not (one
  kernel, one matrix, applied `channels` times).
- Stride keeps fewer outputs (rows of the matrix); the counts follow the outputs kept.

For a 280 x 320 (rows x cols) grey image and [[1, -1]], valid: 280 x 319 outputs;
the convolution stores 2 floats and does 3 operations per output (267,960); the
dense matrix stores 89,320 * 89,600 floats; the sparse one 178,640 floats.
"""

from __future__ import annotations

from service.numerics.geometry import (
    MODES,
    PADDINGS,
    Mode,
    Padding,
    axis_pads,
    check_choice,
    check_positive,
    output_shape,
    taps_in_image,
)


def efficiency(
    input_shape: tuple[int, int],
    kernel_shape: tuple[int, int],
    *,
    padding: Padding = "valid",
    mode: Mode = "convolution",
    stride: int = 1,
    channels: int = 1,
) -> dict[str, dict[str, int]]:
    """`stored_floats` and `float_ops` for `convolution`, `dense_matrix` and `sparse_matrix`."""
    check_choice("padding", padding, PADDINGS)
    check_choice("mode", mode, MODES)
    check_positive("stride", stride)
    check_positive("channels", channels)
    for what, shape in (("image", input_shape), ("kernel", kernel_shape)):
        check_positive(f"{what} rows", shape[0])
        check_positive(f"{what} cols", shape[1])
    # Python ints from here on: exact however large the dense matrix gets.
    input_shape = (int(input_shape[0]), int(input_shape[1]))
    kernel_shape = (int(kernel_shape[0]), int(kernel_shape[1]))
    stride, channels = int(stride), int(channels)
    rows, cols = output_shape(input_shape, kernel_shape, padding, stride)
    outputs, inputs = rows * cols, input_shape[0] * input_shape[1]
    # The taps inside the image factor by axis: a window is a rows-range times a cols-range.
    nonzeros = 1
    for size, kernel, count in zip(input_shape, kernel_shape, (rows, cols), strict=True):
        before = axis_pads(size, kernel, padding, mode)[0]
        nonzeros *= taps_in_image(size, kernel, before, stride, count)
    sparse_ops = 2 * nonzeros - outputs  # per output: n multiplies and n - 1 adds
    return {
        "convolution": {
            "stored_floats": kernel_shape[0] * kernel_shape[1],
            "float_ops": channels * sparse_ops,
        },
        "dense_matrix": {
            "stored_floats": outputs * inputs,
            "float_ops": channels * (2 * inputs - 1) * outputs,
        },
        "sparse_matrix": {"stored_floats": nonzeros, "float_ops": channels * sparse_ops},
    }
