"""The service's load-time int8 guard: 8-bit weights on a CPU without VNNI get exact kernels.

A real AVX2-only host is not available here; the CPU's class is imposed on the engine
(`cpu_isa`), and what is checked is the option onnxruntime's session really holds.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.manifest import read_manifest
from core.runtime import X64_QUANT_PRECISION, int8_session_config
from service.artifacts import load_artifacts
from service.engine import Engine


@pytest.mark.parametrize(
    ("bits", "isa", "machine", "expected"),
    [
        (8, "avx2", "x86_64", {X64_QUANT_PRECISION: "1"}),
        (8, "other", "x86_64", {X64_QUANT_PRECISION: "1"}),  # SSE-only x86 saturates too
        (8, "avx512_vnni", "x86_64", {}),  # the option would only halve int8's speed
        (8, "avx_vnni", "x86_64", {}),
        (8, "amx", "x86_64", {}),
        (7, "avx2", "x86_64", {}),  # 7-bit weights cannot saturate; the option is a no-op
        (7, "avx512_vnni", "x86_64", {}),
        (8, "other", "aarch64", {}),  # ARM's dot products do not saturate
    ],
)
def test_session_config_for_weight_bits_and_cpu(
    bits: int, isa: str, machine: str, expected: dict[str, str]
) -> None:
    assert int8_session_config(bits, isa, machine) == expected  # type: ignore[arg-type]
    assert "session.qdqisint8allowed" not in int8_session_config(bits, isa, machine)  # type: ignore[arg-type]


def _with_weight_bits(source: Path, target: Path, bits: int | None) -> Path:
    """A copy of the artifacts whose manifest says the int8 weights have `bits` (None: no
    record, as written before it existed). The file itself is whatever the export made:
    only the guard's reading of the manifest is under test."""
    shutil.copytree(source, target)
    manifest = json.loads((target / "manifest.json").read_text())
    if bits is None:
        manifest["files"]["int8"].pop("quantization")
    else:
        manifest["files"]["int8"]["quantization"]["weights"]["bits"] = bits
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


@pytest.mark.parametrize(
    ("bits", "isa", "guarded"),
    [(8, "avx2", True), (8, "avx512_vnni", False), (7, "avx2", False), (None, "avx2", False)],
)
def test_engine_sets_exact_kernels_only_for_8_bit_weights_without_vnni(
    exported_artifacts: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    bits: int | None,
    isa: str,
    guarded: bool,
) -> None:
    folder = _with_weight_bits(exported_artifacts, tmp_path / "artifacts", bits)
    with caplog.at_level(logging.WARNING, logger="service.engine"):
        engine = Engine(
            load_artifacts(folder, "int8"),
            provider="cpu",
            intra_op_threads=1,
            cpu_isa=isa,  # type: ignore[arg-type]
        )
    assert engine.cpu_isa == isa
    assert engine.session_config == ({X64_QUANT_PRECISION: "1"} if guarded else {})
    assert engine.session_config_entry(X64_QUANT_PRECISION) == ("1" if guarded else None)
    assert engine.session_config_entry("session.qdqisint8allowed") is None
    assert ("exact u8u8" in caplog.text) == guarded
    # Either way it runs and answers with logits.
    logits = engine.run(np.zeros((1, 3, 227, 227), np.float32))["logits"]
    assert logits.shape == (1, 10) and np.isfinite(logits).all()


def test_fp32_is_never_guarded(exported_artifacts: Path) -> None:
    engine = Engine(
        load_artifacts(exported_artifacts), provider="cpu", intra_op_threads=1, cpu_isa="avx2"
    )
    assert engine.session_config == {}


def test_the_export_records_the_recipe_for_this_cpu(exported_artifacts: Path) -> None:
    from core.cpu import has_vnni, int8_isa

    record = read_manifest(exported_artifacts).files["int8"].quantization
    assert record is not None
    assert record.target_isa == int8_isa()
    assert record.weights.bits == (8 if has_vnni(int8_isa()) else 7)
    assert record.lrn_window_sum == "matmul"
    assert record.fp32_nodes == ["fc8", "norm1_window_sum", "norm2_window_sum"]
