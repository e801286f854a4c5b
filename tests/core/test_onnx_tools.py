"""The logits-only view of a model, and the project's onnxruntime sessions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.manifest import LOGITS_NAME
from core.onnx_tools import with_outputs_only
from core.runtime import CPU, candidate_providers, cpu_session, nvidia_driver_present, run_all


def test_logits_only_view_gives_the_same_logits(exported_artifacts: Path) -> None:
    path = exported_artifacts / "alexnet.onnx"
    full, view = cpu_session(path), cpu_session(with_outputs_only(path, [LOGITS_NAME]))
    assert [o.name for o in view.get_outputs()] == [LOGITS_NAME]
    assert len(full.get_outputs()) == 14
    batch = np.random.default_rng(0).standard_normal((2, 3, 227, 227), dtype=np.float32)
    expected = run_all(full, {"input": batch})[LOGITS_NAME]
    np.testing.assert_array_equal(run_all(view, {"input": batch})[LOGITS_NAME], expected)


def test_asking_for_an_output_the_model_lacks_is_an_error(exported_artifacts: Path) -> None:
    with pytest.raises(ValueError, match="no output conv9"):
        with_outputs_only(exported_artifacts / "alexnet.onnx", ["conv9"])


@pytest.mark.skipif(nvidia_driver_present(), reason="checks the machine without a GPU")
@pytest.mark.parametrize("preference", ["auto", "cuda", "tensorrt", "cpu"])
def test_without_a_driver_every_preference_is_the_cpu(preference: str) -> None:
    assert candidate_providers(preference) == [CPU]


def test_an_unknown_preference_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown provider"):
        candidate_providers("rocm")
