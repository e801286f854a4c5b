# syntax=docker/dockerfile:1.7
#
# Images of the AlexNet serving service. Targets:
#   serve (default)  the GPU serving image: the service, onnxruntime-gpu with its CUDA 13 and
#                    cuDNN 9 libraries (NVIDIA's PyPI wheels), numpy, Pillow, FastAPI, uvicorn.
#                    No torch, no compiler, no pip, no build caches. Runs on the CPU where there
#                    is no GPU.
#   baked            serve plus an artifacts folder at /models:
#                      docker build --target baked --build-arg ARTIFACTS_DIR=artifacts -t alexnet:baked .
#   train            torch (CUDA 13 build) and the project, for `alexnet train` / `alexnet export`.
#
# GPU host: NVIDIA driver >= 580 (the R580 branch is the first to run CUDA 13.x) and the NVIDIA
# Container Toolkit. Hosts on an older driver (R525 to R575, CUDA 12) build the serving image
# with --build-arg ONNXRUNTIME_GPU=1.26.0, the last onnxruntime-gpu on PyPI built for CUDA 12;
# its [cuda,cudnn] extras then pull the CUDA 12 wheels.
#
# The base is the plain Python image and the CUDA user-space libraries come as wheels (the
# extras of onnxruntime-gpu), not an nvidia/cuda base: pip resolves exactly the CUDA/cuDNN
# releases that onnxruntime build was made against, and the image holds one copy of them.
# Pin PYTHON_IMAGE by digest (python:3.11-slim-bookworm@sha256:...) for reproducible builds.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# onnxruntime-gpu 1.27 and later are built for CUDA 13, 1.26.0 and earlier for CUDA 12.
ARG ONNXRUNTIME_GPU=1.31.1
# The onnxruntime the serving image carries. Empty (the default): onnxruntime-gpu with its CUDA
# and cuDNN wheels, release ONNXRUNTIME_GPU. A requirement instead takes that build, e.g.
# `--build-arg ONNXRUNTIME=onnxruntime==1.31.1` for a CPU-only image (0.5 GB instead of 2.8 GB)
# on hosts that have no NVIDIA GPU.
ARG ONNXRUNTIME=
# The CUDA 13 build on PyPI; the same release as constraints/dev.txt pins for development.
ARG TORCH=2.13.0

# --- builder: a wheel of the project and a venv holding the serving set ------------------
FROM ${PYTHON_IMAGE} AS builder
ARG ONNXRUNTIME_GPU
ARG ONNXRUNTIME
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
# The venv gets no pip of its own: the builder's pip installs into it (--python), so the
# serving image ships no installer.
RUN python -m venv --without-pip /opt/venv
# The heaviest layer first (onnxruntime-gpu and the CUDA/cuDNN wheels), so it stays cached
# while the project's code changes. The pip cache is a BuildKit cache mount: it never
# lands in a layer.
RUN --mount=type=cache,target=/root/.cache/pip \
    pip --python /opt/venv/bin/python install "${ONNXRUNTIME:-onnxruntime-gpu[cuda,cudnn]==${ONNXRUNTIME_GPU}}"
WORKDIR /src
COPY pyproject.toml README.md ./
# The project's top-level packages, one line each (and one `!name/` line in .dockerignore).
COPY core/ core/
COPY model/ model/
COPY service/ service/
COPY benchmarks/ benchmarks/
COPY cli/ cli/
# The wheel (not the source tree) is what both images install; train.txt names it with the
# train extra for the training stage (a glob cannot carry "[train]"). The serving venv gets the
# wheel without its dependencies, then those its metadata lists, less extras and onnxruntime:
# pyproject asks for onnxruntime-gpu on Linux x86-64, and pip can neither drop one requirement
# of a wheel nor hold two builds of the one `onnxruntime` module, so ONNXRUNTIME is put there.
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --no-deps --wheel-dir /wheels . \
    && printf 'alexnet-serving[train] @ file://%s\n' /wheels/alexnet_serving-*.whl > /wheels/train.txt \
    && pip --python /opt/venv/bin/python install --no-deps /wheels/alexnet_serving-*.whl \
    && /opt/venv/bin/python -c "import importlib.metadata as m; print(*(r for r in m.requires('alexnet-serving') if 'extra ==' not in r and not r.startswith('onnxruntime')), sep='\n')" \
        > /wheels/serving.txt \
    && pip --python /opt/venv/bin/python install -r /wheels/serving.txt \
        "${ONNXRUNTIME:-onnxruntime-gpu[cuda,cudnn]==${ONNXRUNTIME_GPU}}"

# --- train: torch and the project, for `alexnet train` and `alexnet export` ----------------
FROM ${PYTHON_IMAGE} AS train
ARG ONNXRUNTIME_GPU
ARG TORCH
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore \
    PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 \
    NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    HOME=/work ORT_DISABLE_TELEMETRY=1
# /work/checkpoints and /models exist, owned by the user, because compose mounts fresh named
# volumes there: Docker gives a new volume the owner of the image's folder, and root:root 755
# where there is none, which uid 10001 cannot write to.
RUN groupadd --system --gid 10001 alexnet \
    && useradd --system --uid 10001 --gid alexnet --home-dir /work --shell /usr/sbin/nologin alexnet \
    && install -d -o alexnet -g alexnet /work /work/checkpoints /models
# torch from PyPI is its CUDA 13 build; onnxruntime runs only the CPU parity check of the
# export here, so it needs no CUDA extras (torch brings the CUDA libraries anyway).
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv --without-pip /opt/venv \
    && pip --python /opt/venv/bin/python install "torch==${TORCH}" \
        "onnxruntime-gpu==${ONNXRUNTIME_GPU}" -r /wheels/train.txt
WORKDIR /work
USER 10001:10001
CMD ["alexnet", "--help"]

# --- runtime: the serving image, before any model is added -------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# Settings are ALEXNET_* variables (service/settings.py). CMD passes no options, so every
# one of them can be changed with -e at `docker run` (options would win over the variables).
# ORT_DISABLE_TELEMETRY: onnxruntime's telemetry would try to keep a device ID under $HOME,
# which a read-only root has not got, and log a warning on every start.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    ALEXNET_ARTIFACTS=/models ALEXNET_HOST=0.0.0.0 ALEXNET_PORT=8000 \
    ORT_DISABLE_TELEMETRY=1
# No pip, setuptools or wheel at run time; /models belongs to the service user so that a
# fresh named volume mounted there (compose's `train` writes into it) is writable by uid 10001.
RUN python -m pip uninstall --yes --quiet pip setuptools wheel \
    && groupadd --system --gid 10001 alexnet \
    && useradd --system --uid 10001 --gid alexnet --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin alexnet \
    && install -d -o alexnet -g alexnet /models
COPY --from=builder /opt/venv /opt/venv
# onnxruntime's CUDA provider links libcublas/libcudart/libcudnn by soname and carries no
# RPATH to the nvidia wheels; registering their lib folders with the dynamic loader finds them
# for any CUDA layout (nvidia/cu13/lib, or nvidia/<component>/lib for CUDA 12).
RUN find /opt/venv/lib -type d -path '*/site-packages/nvidia/*/lib' \
        > /etc/ld.so.conf.d/onnxruntime-cuda-wheels.conf \
    && ldconfig
# Artifacts: mount a folder at /models (docker run -v "$PWD/artifacts:/models:ro"), or build
# the `baked` target. No VOLUME instruction: it would create an anonymous volume on every run
# and hide a baked folder behind it.
USER 10001:10001
EXPOSE 8000
# Ready = model loaded and warmed (503 before). Plain Python, no curl in the image.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('ALEXNET_PORT', '8000') + '/health/ready', timeout=4)"]
CMD ["alexnet", "serve"]

# --- baked: the serving image with a model inside ------------------------------------------
FROM runtime AS baked
# A folder inside the build context (.dockerignore keeps artifacts/ in the context for this).
# Owned by the service user so it can read them whatever their mode was on the build host.
ARG ARTIFACTS_DIR=artifacts
COPY --chown=10001:10001 ${ARTIFACTS_DIR}/ /models/

# --- serve: the default target ----------------------------------------------------------------
FROM runtime AS serve
