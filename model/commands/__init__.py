"""One module per `alexnet` subcommand: `register(subparsers)` adds it, `run(args)` runs it."""
