# Two commands on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARTIFACTS ?= artifacts
PORT ?= 8000
HOST ?= 127.0.0.1

.PHONY: install system-deps lint test test-fast serve demo-model bench clean \
	container-deps image-check perf-analyzer

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

test: install system-deps container-deps perf-analyzer lint
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
	rm -rf $(VENV) $(PERF_VENV) checkpoints test-artifacts .pytest_cache .mypy_cache .ruff_cache

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

# perf_analyzer, Triton's load generator (tests/service/test_perf_analyzer.py, `python -m
# benchmarks.perf_analyzer`), in a venv of its own, run through scripts/perf-analyzer.
# - tritonclient==2.51.0: the last release whose bin/perf_analyzer runs on glibc 2.36
#   (Debian 12); 2.52-2.60 and perf-analyzer 2.58+ need glibc 2.38 (pip then picks the empty
#   perf-analyzer 0.1.0 stub), 2.61+ ship no binary. Its own venv: the tests pin 2.73.
# - nvidia-cuda-runtime-cu12==12.9.79: libcudart.so.12 is a DT_NEEDED library of the binary
#   even over HTTP; 9 MB, no GPU or driver needed.
# - libb64.so.0d from Debian's libb64-0d: installed as root, else unpacked into the venv.
# Where none of it can be installed, this says so and the perf_analyzer test is skipped.
PERF_VENV := .venv-perf
perf-analyzer:
	@if ! scripts/perf-analyzer --version >/dev/null 2>&1; then \
	  { ldconfig -p | grep -q libb64.so.0d \
	    || { [ "$$(id -u)" = 0 ] && apt-get update -qq \
	         && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libb64-0d >/dev/null; } \
	    || ( mkdir -p $(PERF_VENV)/deb && cd $(PERF_VENV)/deb && apt-get download libb64-0d \
	         && dpkg-deb -x libb64-0d_*.deb . ); } \
	  && { test -x $(PERF_VENV)/bin/pip || $(PYTHON) -m venv $(PERF_VENV); } \
	  && $(PERF_VENV)/bin/pip install --quiet tritonclient==2.51.0 nvidia-cuda-runtime-cu12==12.9.79 \
	  && scripts/perf-analyzer --version \
	  || echo "perf_analyzer could not be installed: its test will be skipped"; \
	fi

# The GPU check on an NVIDIA host (README, "GPU check"); GPU_CHECK_ARGS=--dry-run anywhere.
.PHONY: gpu-check
gpu-check:
	benchmarks/gpu_check.sh $(GPU_CHECK_ARGS)
