"""Service settings: one class, one environment prefix (`ALEXNET_`), read once and passed down.

`alexnet serve` offers every field as an option too (cli/serve.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, CliSuppress, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the service; each is also the environment variable ALEXNET_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="ALEXNET_", extra="ignore")

    artifacts: Path = Field(Path("artifacts"), description="folder with manifest.json and .onnx")
    host: str = Field("127.0.0.1", description="address to bind")
    port: int = Field(8000, ge=0, le=65535, description="port to bind")
    model_name: str = Field(
        "alexnet",
        description="model name on the v2 and KServe v1 routes (also NAME_image, NAME_logits)",
    )

    provider: Literal["auto", "tensorrt", "cuda", "cpu"] = Field(
        "auto", description="execution provider; auto takes the best one that works"
    )
    precision: Literal["fp32", "fp16", "int8"] = Field(
        "fp32", description="fp16 (GPU) or int8 (CPU) serve the variant the manifest offers"
    )
    intra_op_threads: int = Field(0, ge=0, description="onnxruntime threads; 0 = all cores")
    spin_wait: bool = Field(
        False,
        description="onnxruntime threads busy-wait between ops: lower latency on a machine "
        "with cores to spare, CPU taken from decoding and HTTP on a small one",
    )
    decode_threads: int = Field(0, ge=0, description="image decoding threads; 0 = all cores")
    fast_jpeg: bool = Field(
        True, description="decode large JPEGs with DCT scaling (same crop, slightly other pixels)"
    )

    max_batch_size: int = Field(32, ge=1, description="largest batch the batcher runs")
    max_batch_wait_ms: float = Field(
        5.0,
        ge=0,
        description="longest a request waits for others to join its batch "
        "(never while it is the only request in the server)",
    )
    max_queue: int = Field(256, ge=1, description="images waiting for inference before 503")
    background_batch_size: int = Field(
        8,
        ge=1,
        description="largest batch of explanation work (occluded copies); a prediction "
        "waits for at most one such batch",
    )
    request_timeout_s: float = Field(30.0, gt=0, description="deadline of a request (504)")
    shutdown_timeout_s: float = Field(
        25.0, ge=0, description="on SIGTERM, the longest wait for requests in flight to finish"
    )

    max_upload_bytes: int = Field(20 * 2**20, ge=1, description="bytes per uploaded file (413)")
    max_pixels: int = Field(40_000_000, ge=1, description="decoded pixels per image")
    max_files: int = Field(32, ge=1, description="images per request")
    max_kernel_size: int = Field(31, ge=1, description="largest kernel side for /v1/convolve")
    max_pool_size: int = Field(64, ge=1, description="largest window side for /v1/pool")
    max_layers: int = Field(16, ge=1, description="layers per /v1/activations request")
    max_demo_shift: int = Field(
        8, ge=1, description="largest max_shift of /v1/demo/pooling: one pooled map per step"
    )
    max_demo_pixels: int = Field(
        1024 * 1024,
        ge=1,
        description="decoded pixels of an image the demos convolve or pool as it is "
        "(kernel and image modes hold several shifted copies of it)",
    )
    max_occlusion_passes: int = Field(
        400,
        ge=2,
        description="forward passes one occlusion request may cost (windows + 1); larger "
        "grids are refused with 422",
    )
    max_v2_body_bytes: int = Field(
        64 * 2**20, ge=1, description="v2 and KServe v1 request body, decoded"
    )
    max_v2_elements: int = Field(32 * 3 * 227 * 227, ge=1, description="v2 tensor elements")

    # Not an option of `alexnet serve`: a command line is visible to every user of the host.
    api_key: CliSuppress[SecretStr | None] = Field(
        None, description="when set, a bearer token every route but health and metrics needs"
    )
    cors_origins: list[str] = Field(default_factory=list, description="CORS; empty = off")
    log_level: str = Field("info", description="debug, info, warning, error")
    log_json: bool = Field(True, description="structured JSON log lines")
