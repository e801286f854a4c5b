"""The PyTorch half: AlexNet's architecture, data, training and export to ONNX."""
