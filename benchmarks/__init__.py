"""Benchmarks: the service against the raw onnxruntime limit, with reports under results/."""
