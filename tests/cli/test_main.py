"""`alexnet`: options derived from the configurations they set, errors in one line."""

from __future__ import annotations

import re
from typing import Any

import pytest

import service.main
from benchmarks.options import BenchConfig
from cli.main import main
from model.export_config import ExportConfig
from model.train_config import TrainConfig
from service.settings import Settings


def options_in_help(capsys: pytest.CaptureFixture[str], command: str) -> set[str]:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    return set(re.findall(r"--[a-z0-9-]+", capsys.readouterr().out)) - {"--help"}


def flags(fields: dict[str, Any]) -> set[str]:
    return {f"--{name.replace('_', '-')}" for name in fields}


@pytest.mark.parametrize(
    ("command", "config"),
    [("train", TrainConfig), ("export", ExportConfig), ("bench", BenchConfig)],
)
def test_every_field_is_an_option_and_nothing_else(
    capsys: pytest.CaptureFixture[str], command: str, config: Any
) -> None:
    found = {o for o in options_in_help(capsys, command) if not o.startswith("--no-")}
    assert found == flags(config.model_fields)


def test_serve_offers_every_setting_but_the_api_key(capsys: pytest.CaptureFixture[str]) -> None:
    found = {o for o in options_in_help(capsys, "serve") if not o.startswith("--no-")}
    assert found == flags(Settings.model_fields) - {"--api-key"}


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """`alexnet serve` with the server replaced by a recorder of the settings it got."""
    seen: list[Settings] = []

    def record(settings: Settings) -> int:
        seen.append(settings)
        return 0

    monkeypatch.setattr(service.main, "serve", record)
    return seen


def test_options_win_over_the_environment(
    served: list[Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALEXNET_PORT", "9000")
    monkeypatch.setenv("ALEXNET_MAX_BATCH_SIZE", "12")
    assert main(["serve", "--port", "9100", "--no-fast-jpeg"]) == 0
    (settings,) = served
    assert (settings.port, settings.max_batch_size, settings.fast_jpeg) == (9100, 12, False)


def test_the_api_key_is_read_from_the_environment_only(
    served: list[Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALEXNET_API_KEY", "from-env")
    assert main(["serve"]) == 0
    assert served[0].api_key is not None
    assert served[0].api_key.get_secret_value() == "from-env"
    assert main(["serve", "--api-key", "on-the-command-line"]) == 2
    assert len(served) == 1


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["train", "--epochs", "0"], "alexnet train: error: --epochs: Input should be greater"),
        (["bench", "--set", "nokey"], "alexnet bench: error: --set: --set wants KEY=VALUE"),
        (["serve", "--port", "99999"], "alexnet serve: cannot start: setting port (--port, "),
    ],
)
def test_bad_values_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], served: list[Settings], args: list[str], line: str
) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(line) and "\n" not in err
    assert served == []
