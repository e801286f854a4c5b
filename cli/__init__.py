"""`alexnet`, the command line: the top of the import graph, wiring model, service and bench."""
