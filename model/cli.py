"""`alexnet`: one command-line tool with the subcommands train, export, serve and bench.

Each subcommand lives in its own module under `model.commands` and imports its
heavy dependencies (torch, the service) only when it runs, so `alexnet serve`
works in the serving image, which carries no torch.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from model.commands import bench, export, serve, train
from model.errors import UserFacingError

COMMANDS = (train, export, serve, bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alexnet",
        description="Train, export and serve a paper-faithful AlexNet over ONNX Runtime.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen subcommand; its exit status is returned."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except UserFacingError as exc:
        print(f"alexnet {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
