# Two commands on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARTIFACTS ?= artifacts
PORT ?= 8000
HOST ?= 127.0.0.1

.PHONY: install system-deps lint test test-fast serve demo-model bench clean \
	container-deps image-check

$(STAMP): pyproject.toml constraints/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints/dev.txt torch==2.13.0
	$(BIN)/pip install --quiet -c constraints/dev.txt -e '.[train,dev]'
	touch $@

install: $(STAMP)

# Chromium (browser tests) and wrk (benchmarks) come from Debian's packages.
system-deps:
	@if ! command -v chromium >/dev/null || ! command -v wrk >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium wrk >/dev/null; \
	  else echo "chromium/wrk missing and not root: browser tests and wrk benchmarks will be skipped"; fi; \
	fi

lint: install
	$(BIN)/ruff check core model service benchmarks cli container scripts tests
	$(BIN)/ruff format --check core model service benchmarks cli container scripts tests
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

test: install system-deps container-deps lint
	$(BIN)/pytest

test-fast: install
	$(BIN)/pytest -m "not slow and not browser"

$(ARTIFACTS)/manifest.json: | $(STAMP)
	$(BIN)/alexnet train --dataset shapes --out checkpoints
	$(BIN)/alexnet export --checkpoint checkpoints/best.pt --out $(ARTIFACTS) --int8

demo-model: $(ARTIFACTS)/manifest.json

serve: install demo-model
	$(BIN)/alexnet serve --artifacts $(ARTIFACTS) --host $(HOST) --port $(PORT)

bench: install demo-model system-deps
	$(BIN)/alexnet bench --artifacts $(ARTIFACTS)

clean:
	rm -rf $(VENV) checkpoints test-artifacts .pytest_cache .mypy_cache .ruff_cache

# Podman and what it needs on a Debian host (tests/container/, `make image-check`): podman,
# buildah, runc (crun refuses hybrid cgroups) and debootstrap (the stand-in base image) from
# Debian's packages, podman-compose (1.1+ reads compose's !reset) in a venv of its own.
CONTAINER_TOOLS := build/container-tools
container-deps:
	@if ! command -v podman >/dev/null || ! command -v runc >/dev/null \
	    || ! command -v debootstrap >/dev/null || ! command -v buildah >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      podman buildah runc debootstrap >/dev/null; \
	  else echo "podman/buildah/runc/debootstrap missing and not root: container tests will be skipped"; fi; \
	fi
	@test -x $(CONTAINER_TOOLS)/bin/podman-compose || { \
	  $(PYTHON) -m venv $(CONTAINER_TOOLS) && \
	  $(CONTAINER_TOOLS)/bin/pip install --quiet podman-compose==1.6.0; }

# Build the GPU serving image on a stand-in base and check it by running it (README,
# "Container check"). IMAGE_CHECK_ARGS="--variant cpu" or "--variant gpu --variant cpu --train".
IMAGE_CHECK_ARGS ?= --variant gpu
image-check: install container-deps
	$(BIN)/python -m container $(IMAGE_CHECK_ARGS)
