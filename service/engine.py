"""The inference engine: onnxruntime sessions that serve logits and every layer.

Every layer is a graph output of the exported model, and onnxruntime runs every
node of a graph on each call, whichever outputs are asked for. So the full graph
pays for the outputs `/v1/predict` never reads: on the CPU, each conv and pool
output is converted back from the blocked NCHWc layout (about 6 % of a batch of
16), and an int8 model dequantises every layer. Requests for `logits` alone run
on a second session of the same model with `logits` as its only output.

The rest of the service sees the model through `Engine.run` and the metadata
here (inputs, outputs, providers), never through an onnxruntime session.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from core.cpu import Int8Isa, int8_isa
from core.errors import ArtifactError
from core.manifest import LOGITS_NAME
from core.onnx_tools import with_outputs_only
from core.runtime import (
    CPU,
    candidate_providers,
    int8_session_config,
    open_session,
    session_options,
)
from service.artifacts import ModelArtifacts

log = logging.getLogger("service.engine")

# onnxruntime's element types ("tensor(float)") by their Open Inference Protocol names.
_DATATYPES = {
    "tensor(float)": "FP32",
    "tensor(float16)": "FP16",
    "tensor(double)": "FP64",
    "tensor(int64)": "INT64",
    "tensor(int32)": "INT32",
    "tensor(int8)": "INT8",
    "tensor(uint8)": "UINT8",
}


@dataclass(frozen=True)
class TensorInfo:
    """A graph input or output: its name, v2 datatype and shape (-1 for a dynamic axis)."""

    name: str
    datatype: str
    shape: tuple[int, ...]


def _info(node: ort.NodeArg) -> TensorInfo:
    shape = tuple(d if isinstance(d, int) and i > 0 else -1 for i, d in enumerate(node.shape))
    return TensorInfo(node.name, _DATATYPES.get(node.type, node.type), shape)


class Engine:
    """Runs batches through the model; asks onnxruntime only for the outputs wanted."""

    def __init__(
        self,
        artifacts: ModelArtifacts,
        *,
        provider: str = "auto",
        intra_op_threads: int = 0,
        spin_wait: bool = False,
        cpu_isa: Int8Isa | None = None,
    ) -> None:
        self.artifacts = artifacts
        # The CPU's int8 class (`core.cpu`; a test may impose one) and what it asks of the
        # session for the model served.
        self.cpu_isa: Int8Isa = int8_isa() if cpu_isa is None else cpu_isa
        self.session_config = _precision_config(artifacts, self.cpu_isa)
        options = session_options(intra_op_threads, spin_wait=spin_wait, config=self.session_config)
        try:
            session = open_session(artifacts.model_path, candidate_providers(provider), options)
        except Exception as exc:
            raise ArtifactError(
                f"{artifacts.model_path} cannot be loaded by onnxruntime: "
                f"{str(exc).splitlines()[0]}"
            ) from None
        self._session = session
        self.providers: list[str] = session.get_providers()
        self.provider = self.providers[0]
        self.inputs = [_info(node) for node in session.get_inputs()]
        self.outputs = [_info(node) for node in session.get_outputs()]
        self.input_name = self.inputs[0].name
        self.output_names = [output.name for output in self.outputs]
        self._check_against_manifest()
        self._use_io_binding = self.provider != CPU
        self._logits_session = self._open_logits_only(options)
        log.info(
            "model %s loaded on %s (%s, %d threads)",
            artifacts.model_path.name,
            self.provider,
            artifacts.precision,
            options.intra_op_num_threads,
        )

    def session_config_entry(self, key: str) -> str | None:
        """A config entry as onnxruntime holds it for the model's sessions (None: unset)."""
        try:
            return str(self._session.get_session_options().get_session_config_entry(key))
        except RuntimeError:  # onnxruntime's answer for a key never set
            return None

    def _check_against_manifest(self) -> None:
        manifest = self.artifacts.manifest
        graph_input = self.inputs[0]
        if graph_input.name != manifest.input.name or graph_input.shape[1:] != tuple(
            manifest.input.shape
        ):
            raise ArtifactError(
                f"the ONNX graph's input {graph_input.name} {list(graph_input.shape[1:])} "
                f"disagrees with the manifest's {manifest.input.name} {list(manifest.input.shape)}"
            )
        missing = [name for name in manifest.outputs if name not in self.output_names]
        if missing:
            raise ArtifactError(f"the ONNX graph lacks outputs the manifest lists: {missing}")
        logits = self.outputs[self.output_names.index(LOGITS_NAME)]
        if logits.shape[-1] != len(manifest.labels):
            raise ArtifactError(
                f"the ONNX graph has {logits.shape[-1]} classes, the manifest "
                f"{len(manifest.labels)} labels"
            )

    def _open_logits_only(self, options: ort.SessionOptions) -> ort.InferenceSession | None:
        """The model with `logits` as its only output; None (and a warning) if that fails."""
        try:
            # From a file, not bytes: onnxruntime keeps the bytes it is given for the
            # session's whole life (a second copy of the weights, 230 MB in fp32).
            with tempfile.TemporaryDirectory(prefix="alexnet-logits-") as folder:
                path = Path(folder) / "logits.onnx"
                path.write_bytes(with_outputs_only(self.artifacts.model_path, [LOGITS_NAME]))
                session = open_session(path, self.providers, options)
        except Exception as exc:  # an optimisation only: never a reason not to serve
            log.warning("no logits-only session (%s); predictions run the full graph", exc)
            return None
        finally:
            _return_freed_memory()
        return session

    def run(
        self, batch: np.ndarray, outputs: Sequence[str] = (LOGITS_NAME,)
    ) -> dict[str, np.ndarray]:
        """Outputs by name for an (N, 3, H, W) float32 batch."""
        names = list(outputs)
        session = self._session
        if names == [LOGITS_NAME] and self._logits_session is not None:
            session = self._logits_session
        if self._use_io_binding:
            return _run_bound(session, self.input_name, batch, names)
        values = session.run(names, {self.input_name: batch})
        return dict(zip(names, values, strict=True))

    def warm_up(self, max_batch: int) -> None:
        """Run once at batch 1 and at the largest batch so the first request pays no set-up."""
        shape = self.artifacts.input_shape
        for size in sorted({1, max_batch}):
            batch = np.zeros((size, *shape), np.float32)
            self.run(batch, self.output_names)
            self.run(batch, (LOGITS_NAME,))


def _precision_config(artifacts: ModelArtifacts, isa: Int8Isa) -> dict[str, str]:
    """Session config entries the served model needs on this CPU; logged when there are any."""
    if artifacts.precision != "int8":
        return {}
    quantization = artifacts.manifest.files["int8"].quantization
    # A manifest from before the record has the old recipe's 7-bit weights.
    bits = quantization.weights.bits if quantization is not None else 7
    config = int8_session_config(bits, isa)
    if config:
        log.warning(
            "%s has %d-bit weights, made for %s, and this CPU has no VNNI (%s): running "
            "onnxruntime's exact u8u8 int8 kernels (%s), about 2x slower than on a VNNI CPU",
            artifacts.model_path.name,
            bits,
            quantization.target_isa if quantization is not None else "unknown",
            isa,
            ", ".join(f"{k}={v}" for k, v in config.items()),
        )
    return config


def _run_bound(
    session: ort.InferenceSession, input_name: str, batch: np.ndarray, names: list[str]
) -> dict[str, np.ndarray]:
    # I/O binding copies the input to the device once and lets onnxruntime allocate
    # outputs itself, instead of the plain path's extra staging copies.
    binding = session.io_binding()
    binding.bind_cpu_input(input_name, np.ascontiguousarray(batch))
    for name in names:
        binding.bind_output(name, "cpu")
    session.run_with_iobinding(binding)
    return dict(zip(names, binding.copy_outputs_to_cpu(), strict=True))


def _return_freed_memory() -> None:
    """Give the heap freed by the parsed model back to the system (glibc keeps it otherwise)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)
