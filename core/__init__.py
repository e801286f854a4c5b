"""The torch-free core that model/ and service/ share: the artifact contract and its tools.

`manifest` is the contract between export and serving (a pydantic model read and
written by both), `preprocess` turns images into input tensors the same way
everywhere, `onnx_tools` builds small graphs and `ort` opens onnxruntime sessions.
Nothing here imports torch or another package of this project.
"""
