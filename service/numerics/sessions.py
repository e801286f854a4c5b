"""Tiny onnxruntime graphs for the numerics, built on demand and cached per attribute set.

ONNX Conv and pooling take strides and window sizes as attributes, not inputs, so
one graph serves every image and kernel size but not every stride: a small LRU
cache keeps one session per attribute set (creating one costs ~10 ms, running a
3x3 convolution on a megapixel image ~2 ms per channel).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

import onnx
import onnxruntime as ort
from onnx import helper

log = logging.getLogger("service.numerics")

OPSET = 17
CPU = "CPUExecutionProvider"
# TensorRT would build a new engine (seconds) for every new image or kernel shape;
# CUDA runs dynamic shapes as they come, so the numerics never ask for TensorRT.
_SKIPPED_PROVIDERS = frozenset({"TensorrtExecutionProvider"})


def make_model(
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    name: str,
) -> bytes:
    """A checked, serialised ONNX model of one small graph."""
    graph = helper.make_graph(nodes, name, inputs, outputs)
    model = helper.make_model(
        graph, producer_name="alexnet-serving", opset_imports=[helper.make_opsetid("", OPSET)]
    )
    model.ir_version = 8  # readable by every onnxruntime release since 1.14
    onnx.checker.check_model(model)
    return model.SerializeToString()


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
        self._options = ort.SessionOptions()
        self._options.inter_op_num_threads = 1
        if intra_op_threads:
            self._options.intra_op_num_threads = intra_op_threads
        # Idle threads must not spin: these sessions share the cores with the model's.
        self._options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Warnings only say that shape-computing nodes run on the CPU beside a GPU.
        self._options.log_severity_level = 3
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
        try:
            return ort.InferenceSession(model, self._options, providers=self._providers)
        except Exception as exc:
            if self._providers == [CPU]:
                raise
            # Never fail a request for lack of a GPU: from now on, the CPU only.
            log.warning(
                "numerics session failed on %s (%s); using the CPU",
                self._providers[0],
                str(exc).splitlines()[0] if str(exc) else exc,
            )
            self._providers = [CPU]
            return ort.InferenceSession(model, self._options, providers=self._providers)
