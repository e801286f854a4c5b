"""Tiny onnxruntime graphs for the numerics, built on demand and cached per attribute set.

ONNX Conv and pooling take strides and window sizes as attributes, not inputs, so
one graph serves every image and kernel size but not every stride: a small LRU
cache keeps one session per attribute set (creating one costs ~10 ms, running a
3x3 convolution on a megapixel image ~2 ms per channel).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

import onnx
import onnxruntime as ort

from core.onnx_tools import make_model
from core.runtime import CPU, TENSORRT, open_session, session_options

# TensorRT would build a new engine (seconds) for every new image or kernel shape;
# CUDA runs dynamic shapes as they come, so the numerics never ask for TensorRT.
_SKIPPED_PROVIDERS = frozenset({TENSORRT})


def serialised_model(
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    name: str,
) -> bytes:
    """A checked, serialised ONNX model of one small graph."""
    return make_model(nodes, inputs, outputs, name).SerializeToString()


def usable_providers(providers: Sequence[str]) -> list[str]:
    """The providers to ask for, in order, always ending with the CPU."""
    kept = [p for p in providers if p not in _SKIPPED_PROVIDERS and p != CPU]
    return [*kept, CPU]


class SessionCache:
    """One InferenceSession per key, least recently used dropped first; safe across threads."""

    def __init__(
        self,
        build: Callable[[Hashable], bytes],
        providers: Sequence[str],
        *,
        intra_op_threads: int = 0,
        capacity: int = 8,
    ) -> None:
        self._build = build
        self._providers = usable_providers(providers)
        # Idle threads must not spin: these sessions share the cores with the model's.
        self._options = session_options(intra_op_threads)
        self._capacity = capacity
        self._sessions: OrderedDict[Hashable, ort.InferenceSession] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def providers(self) -> list[str]:
        """The providers sessions are created with (after any fallback to the CPU)."""
        return list(self._providers)

    def get(self, key: Hashable) -> ort.InferenceSession:
        """The session for `key`, created on first use."""
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                session = self._create(self._build(key))
                self._sessions[key] = session
                if len(self._sessions) > self._capacity:
                    self._sessions.popitem(last=False)
            else:
                self._sessions.move_to_end(key)
            return session

    def _create(self, model: bytes) -> ort.InferenceSession:
        session = open_session(model, self._providers, self._options)
        if session.get_providers()[0] == CPU and self._providers[0] != CPU:
            # A GPU provider failed to start (open_session logged why): the CPU from now on.
            self._providers = [CPU]
        return session
