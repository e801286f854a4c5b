"""The options of `alexnet bench` (kept apart so --help needs no heavy imports)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class BenchConfig(BaseModel):
    """Start the service (or target --url), drive it with real JPEG photos at several
    concurrency levels, measure the in-process limit in the same run, and write a Markdown
    report and a plot under benchmarks/results/."""

    model_config = ConfigDict(extra="forbid")

    artifacts: Path = Field(Path("artifacts"), description="exported model to serve and measure")
    url: str | None = Field(None, description="benchmark a running server instead of starting one")
    concurrency: list[int] = Field(
        [1, 4, 16, 64], min_length=1, description="concurrent clients per level, e.g. 1,4,16"
    )
    duration: float = Field(15.0, gt=0, description="seconds per concurrency level")
    compare_at: int = Field(
        16,
        ge=1,
        description="concurrency of the limit, batching-off and int8/fp16 comparisons "
        "(the highest level if it is not among them)",
    )
    client: Literal["auto", "wrk", "httpx"] = Field(
        "auto",
        description="load generator: wrk (Debian's package) or an async httpx client; auto "
        "takes wrk when installed",
    )
    set: list[str] = Field(
        default_factory=list,
        description="a service setting KEY=VALUE for every server the bench starts, e.g. "
        "--set intra_op_threads=2 (repeatable; also used by the in-process limit)",
    )
    name: str = Field("cpu", description="report name: <results>/<name>.md and .png")
    results: Path = Field(Path("benchmarks/results"), description="folder for reports and plots")
    quick: bool = Field(
        False, description="a small, fast run (for tests): levels of at most 2 s, fewer repeats"
    )

    @field_validator("set")
    @classmethod
    def _pairs(cls, pairs: list[str]) -> list[str]:
        for pair in pairs:
            key, sep, _ = pair.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"--set wants KEY=VALUE, got {pair!r}")
        return pairs

    @field_validator("concurrency")
    @classmethod
    def _levels(cls, levels: list[int]) -> list[int]:
        if any(level < 1 for level in levels):
            raise ValueError("every concurrency level must be at least 1")
        return levels

    @property
    def service_settings(self) -> dict[str, str]:
        """--set pairs as settings names (upper case, without the ALEXNET_ prefix)."""
        pairs = (pair.partition("=") for pair in self.set)
        return {key.strip().upper(): value.strip() for key, _, value in pairs}
