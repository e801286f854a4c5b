"""The inference engine: onnxruntime sessions that serve logits and every layer.

Every layer is a graph output of the exported model, and onnxruntime runs every
node of a graph on each call, whichever outputs are asked for. So the full graph
pays for the outputs `/v1/predict` never reads: on the CPU, each conv and pool
output is converted back from the blocked NCHWc layout (about 6 % of a batch of
16), and an int8 model dequantises every layer. Requests for `logits` alone run
on a second session of the same model with `logits` as its only output.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.artifacts import ArtifactError, ModelArtifacts
from service.providers import CPU, create_session, provider_in_use

log = logging.getLogger("service.engine")
LOGITS = "logits"

# Run in a child process: a parsed 200 MB ModelProto is not given back to the
# operating system when freed, and the server would carry it for its whole life.
_STRIP_OUTPUTS = """
import sys, onnx
model = onnx.load(sys.argv[1])
kept = [output for output in model.graph.output if output.name == "logits"]
del model.graph.output[:]
model.graph.output.extend(kept)
onnx.save(model, sys.argv[2])
"""


class Engine:
    """Runs batches through the model; asks onnxruntime only for the outputs wanted."""

    def __init__(
        self,
        artifacts: ModelArtifacts,
        *,
        provider: str = "auto",
        intra_op_threads: int = 0,
        spin_wait: bool = False,
    ) -> None:
        self.artifacts = artifacts
        threads = intra_op_threads or os.cpu_count() or 1
        self._spin_wait = spin_wait
        try:
            self.session = create_session(
                artifacts.model_path, provider, threads, spin_wait=spin_wait
            )
        except Exception as exc:
            raise ArtifactError(
                f"{artifacts.model_path} cannot be loaded by onnxruntime: "
                f"{str(exc).splitlines()[0]}"
            ) from None
        self.provider = provider_in_use(self.session)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [output.name for output in self.session.get_outputs()]
        self._check_against_manifest()
        self._use_io_binding = self.provider != CPU
        preference = "cpu" if self.provider == CPU else provider
        self._logits_session = self._open_logits_only(preference, threads)
        log.info(
            "model %s loaded on %s (%s, %d threads)",
            artifacts.model_path.name,
            self.provider,
            artifacts.precision,
            threads,
        )

    def _check_against_manifest(self) -> None:
        manifest = self.artifacts.manifest
        expected_input = manifest["input"]
        graph_input = self.session.get_inputs()[0]
        if graph_input.name != expected_input["name"] or list(graph_input.shape[1:]) != list(
            expected_input["shape"]
        ):
            raise ArtifactError(
                f"the ONNX graph's input {graph_input.name} {graph_input.shape[1:]} disagrees "
                f"with the manifest's {expected_input['name']} {expected_input['shape']}"
            )
        missing = [n for n in ["logits", *self.artifacts.layer_names] if n not in self.output_names]
        if missing:
            raise ArtifactError(f"the ONNX graph lacks outputs the manifest lists: {missing}")
        logits = self.session.get_outputs()[self.output_names.index("logits")]
        if logits.shape[-1] != len(self.artifacts.labels):
            raise ArtifactError(
                f"the ONNX graph has {logits.shape[-1]} classes, the manifest "
                f"{len(self.artifacts.labels)} labels"
            )

    def _open_logits_only(self, preference: str, threads: int) -> ort.InferenceSession | None:
        """The model with `logits` as its only output; None (and a warning) if that fails."""
        source = self.artifacts.model_path
        try:
            with tempfile.TemporaryDirectory(prefix="alexnet-logits-") as folder:
                target = Path(folder) / source.name
                subprocess.run(
                    [sys.executable, "-c", _STRIP_OUTPUTS, str(source), str(target)],
                    check=True,
                    capture_output=True,
                    timeout=600,
                )
                return create_session(target, preference, threads, spin_wait=self._spin_wait)
        except Exception as exc:  # an optimisation only: never a reason not to serve
            log.warning("no logits-only session (%s); predictions run the full graph", exc)
            return None

    def run(self, batch: np.ndarray, outputs: Sequence[str] = (LOGITS,)) -> dict[str, np.ndarray]:
        """Outputs by name for an (N, 3, H, W) float32 batch."""
        names = list(outputs)
        session = self.session
        if names == [LOGITS] and self._logits_session is not None:
            session = self._logits_session
        if self._use_io_binding:
            return self._run_bound(session, batch, names)
        values = session.run(names, {self.input_name: batch})
        return dict(zip(names, values, strict=True))

    def _run_bound(
        self, session: ort.InferenceSession, batch: np.ndarray, names: list[str]
    ) -> dict[str, np.ndarray]:
        # I/O binding copies the input to the device once and lets onnxruntime allocate
        # outputs itself, instead of the plain path's extra staging copies.
        binding = session.io_binding()
        binding.bind_cpu_input(self.input_name, np.ascontiguousarray(batch))
        for name in names:
            binding.bind_output(name, "cpu")
        session.run_with_iobinding(binding)
        return dict(zip(names, binding.copy_outputs_to_cpu(), strict=True))

    def warm_up(self, max_batch: int) -> None:
        """Run once at batch 1 and at the largest batch so the first request pays no set-up."""
        shape = self.artifacts.input_shape
        for size in sorted({1, max_batch}):
            batch = np.zeros((size, *shape), np.float32)
            self.run(batch, self.output_names)
            self.run(batch, (LOGITS,))

    @property
    def session_options(self) -> ort.SessionOptions:
        return self.session.get_session_options()
