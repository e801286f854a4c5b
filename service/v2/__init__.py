"""The Open Inference Protocol (KServe v2): the envelope's schema, the tensor codec, the routes."""
