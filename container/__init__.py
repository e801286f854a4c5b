"""Build the project's images with podman and check them by running them (`make image-check`).

Tooling for the repository, not part of the wheel: podman.py drives podman on this host,
images.py builds the stand-in base and the Dockerfile's targets, checks/ runs and probes
the serving image (one module per kind of check), __main__.py is the command line.
tests/container/ runs the same checks on the CPU-only serving image in `make test`.
"""
