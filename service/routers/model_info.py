"""GET /v1/model: the manifest, plus where the model runs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.state import StateDep

router = APIRouter(prefix="/v1", tags=["model"])


@router.get("/model")
async def model_info(state: StateDep) -> dict[str, Any]:
    """Labels, input, preprocessing, the layer table and the execution provider in use."""
    engine = state.require_engine()
    manifest = engine.artifacts.manifest.model_dump(mode="json", exclude_none=True)
    return {
        **manifest,
        "files": {
            k: {"path": v["path"], "sha256": v["sha256"]} for k, v in manifest["files"].items()
        },
        "precision": engine.artifacts.precision,
        "provider": engine.provider,
        # The CPU's int8 instructions (core.cpu) and the session config they called for.
        "cpu": {"int8_isa": engine.cpu_isa, "session_config": engine.session_config},
        "batching": {
            "max_batch_size": state.settings.max_batch_size,
            "max_batch_wait_ms": state.settings.max_batch_wait_ms,
        },
        "limits": {
            "max_upload_bytes": state.settings.max_upload_bytes,
            "max_pixels": state.settings.max_pixels,
            "max_files": state.settings.max_files,
            "max_kernel_size": state.settings.max_kernel_size,
            "max_pool_size": state.settings.max_pool_size,
        },
    }
