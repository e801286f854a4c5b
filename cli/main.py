"""`alexnet`: one command-line tool with the subcommands train, export, serve and bench.

Each subcommand's options are the fields of the configuration it runs with
(`TrainConfig`, `ExportConfig`, the service's `Settings`, `BenchConfig`), turned
into --flags by pydantic-settings with each field's description as its help, so
the command line cannot drift from what it configures. Heavy modules (torch, the
service) are imported only when a subcommand runs: `alexnet serve` works in the
serving image, which carries no torch, and `--help` is quick.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import CliApp, CliSettingsSource, CliSubCommand, SettingsError

from cli.bench import Bench
from cli.export import Export
from cli.serve import Serve
from cli.train import Train
from core.errors import UserFacingError, dotted, one_line


class Alexnet(BaseModel):
    """Train, export and serve a paper-faithful AlexNet over ONNX Runtime."""

    train: CliSubCommand[Train] = Field(
        description="train AlexNet (default: the procedural shapes set, ~5 minutes on a CPU)"
    )
    export: CliSubCommand[Export] = Field(
        description="export a trained model to ONNX with every layer as an output"
    )
    serve: CliSubCommand[Serve] = Field(description="serve the exported model over HTTP")
    bench: CliSubCommand[Bench] = Field(description="benchmark the service against raw onnxruntime")

    def cli_cmd(self) -> None:
        CliApp.run_subcommand(self)


def _options(command: str, error: ValidationError) -> str:
    """A validation error as one line, naming each option (and variable, for serve)."""

    def option(loc: Sequence[int | str]) -> str:
        field = dotted(loc[1:] if loc[:1] == (command,) else loc)
        if not field:
            return ""
        flag = f"--{field.replace('_', '-')}"
        return f"setting {field} ({flag}, ALEXNET_{field.upper()})" if command == "serve" else flag

    message = one_line(error, option)
    if "error parsing value" in message:  # an ALEXNET_* variable pydantic could not decode
        message += " (list settings such as ALEXNET_CORS_ORIGINS are JSON lists)"
    return message


def _fail(command: str, message: str) -> int:
    # The service words its refusals "cannot start"; the other commands "error".
    kind = "cannot start" if command == "serve" else "error"
    print(f"alexnet {command}: {kind}: {' '.join(message.split())}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2: a one-line error on stderr)."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = next((arg for arg in args if not arg.startswith("-")), "alexnet")
    source: CliSettingsSource[Alexnet] = CliSettingsSource(
        Alexnet,  # type: ignore[arg-type]  # a plain model works: it only dispatches
        cli_prog_name="alexnet",
        cli_kebab_case=True,
        cli_implicit_flags=True,
        cli_hide_none_type=True,
        cli_avoid_json=True,
    )
    if command == "serve" and any(arg.startswith(("--api-key", "--api_key")) for arg in args):
        # Hidden from --help, but pydantic-settings would still take it: refuse it here.
        return _fail(
            command,
            "the API key is read from ALEXNET_API_KEY only: a command line "
            "is visible to every user of the machine",
        )
    try:
        CliApp.run(Alexnet, cli_args=args, cli_settings_source=source)
    except KeyboardInterrupt:
        return 130
    except ValidationError as exc:
        return _fail(command, _options(command, exc))
    except SettingsError as exc:  # e.g. a list-valued ALEXNET_* variable that is not JSON
        return _fail(command, f"{exc} (list settings such as ALEXNET_CORS_ORIGINS are JSON lists)")
    except UserFacingError as exc:
        return _fail(command, str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
