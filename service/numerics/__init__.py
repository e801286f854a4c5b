"""Pure numerics behind /v1/convolve and /v1/pool: no HTTP, no torch, no scipy.

- `kernels`: named preset kernels and `parse_kernel`, the validator of user kernels.
- `convolution`: `ConvolutionEngine` (onnxruntime Conv, exactly scipy's convolve2d/correlate2d).
- `pooling`: `PoolingEngine` (onnxruntime MaxPool/AveragePool over valid windows).
- `efficiency`: stored floats and float operations of convolution vs dense vs sparse matrix.
- `statistics`: summaries, top channels and PNG pictures of arrays.
- `geometry`: padding and output-shape arithmetic shared by the above.
- `errors`: `InvalidArgument` and `InvalidKernel`, both `ValueError`s with a message for users.
"""
