"""The FastAPI inference service over the exported ONNX model (never imports torch)."""
