#!/usr/bin/env bash
# The GPU check, from a repo checkout on a host with an NVIDIA GPU, in under 8 minutes:
#   1. a venv (build/gpu-venv) that keeps the host's own CUDA torch if it has one, with the
#      project, onnxruntime-gpu (CUDA 13 build; its [cuda,cudnn] extras bring the libraries)
#      and the test tools;
#   2. the demo model trained on the GPU (shapes, 1.5-minute budget) and exported with fp16;
#   3. the test suite's GPU tests (tests/service/test_gpu.py, marker `gpu`);
#   4. benchmarks/gpu_bench.py: raw tensors over v2 and JPEGs over /v1/predict, CUDA and
#      TensorRT providers, fp32 and fp16, batches up to 256 -> benchmarks/results/gpu.md.
#
#   benchmarks/gpu_check.sh                 # a GPU host with pip access
#   benchmarks/gpu_check.sh --wheels DIR    # offline: every wheel in DIR (setuptools too)
#   benchmarks/gpu_check.sh --tensorrt      # also pip-install TensorRT 10 (from pypi.nvidia.com)
#   benchmarks/gpu_check.sh --dry-run       # any machine: CPU provider, tiny sizes, the
#                                           # current python, report in build/gpu-check/
#
# TensorRT: onnxruntime-gpu 1.31 loads libnvinfer.so.10 (TensorRT 10). PyPI's tensorrt-cu13
# packages are stubs that download the real wheels from pypi.nvidia.com during install; the
# last 10.x is 10.16.1.11 (11.x has libnvinfer.so.11, which onnxruntime 1.31 does not load).
# Without those libraries the TensorRT rows say so and nothing else is measured for them.
set -euo pipefail

DRY_RUN=0 WHEELS="" TENSORRT=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --wheels) WHEELS=$2; shift ;;
    --tensorrt) TENSORRT=1 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

cd "$(dirname "$0")/.."
WORK=build/gpu-check
mkdir -p "$WORK"
BUDGET_S=${GPU_CHECK_BUDGET_S:-480}
step() { printf '\n== %s (%d s so far)\n' "$1" "$SECONDS"; }

if [ "$DRY_RUN" = 1 ]; then
  PY=${PYTHON:-python3}
  OUT=$WORK/gpu-dry-run.md
  TRAIN=(--epochs 1 --per-class 4 --max-minutes 0.5 --device cpu)
else
  step "venv and packages"
  VENV=${GPU_VENV:-build/gpu-venv}
  [ -x "$VENV/bin/python" ] || "${PYTHON:-python3}" -m venv --system-site-packages "$VENV"
  PY=$VENV/bin/python
  PIP=("$PY" -m pip install -q)
  [ -n "$WHEELS" ] && PIP+=(--no-index --find-links "$WHEELS")
  # The host's CUDA torch (if any) stays: pip only adds what is missing.
  "$PY" -c 'import torch' 2>/dev/null || "${PIP[@]}" 'torch>=2.2'
  "${PIP[@]}" -e '.[train]' 'onnxruntime-gpu[cuda,cudnn]>=1.20' \
    'pytest>=8' 'pytest-timeout>=2.3' 'httpx>=0.27' 'scikit-image>=0.22' 'psutil>=5.9'
  if [ "$TENSORRT" = 1 ]; then
    "${PIP[@]}" --extra-index-url https://pypi.nvidia.com 'tensorrt-cu13-libs==10.16.1.11' \
      || echo "TensorRT 10 did not install; its rows will be skipped"
  fi
  OUT=benchmarks/results/gpu.md
  TRAIN=(--max-minutes 1.5 --device auto)
fi

# TensorRT from pip lives in site-packages/tensorrt_libs: put it on the loader's path.
TRT_LIBS=$("$PY" -c 'import tensorrt_libs, os; print(os.path.dirname(tensorrt_libs.__file__))' 2>/dev/null || true)
[ -n "$TRT_LIBS" ] && export LD_LIBRARY_PATH="$TRT_LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# TensorRT builds an engine per session and shape range (tens of seconds each): keep them on
# disk so the server reuses what the in-process run built (onnxruntime's documented variables).
export ORT_TENSORRT_ENGINE_CACHE_ENABLE=1 ORT_TENSORRT_CACHE_PATH="$PWD/$WORK/tensorrt-cache"
export ORT_TENSORRT_TIMING_CACHE_ENABLE=1
"$PY" -c 'import onnxruntime as o; print("onnxruntime", o.__version__, o.get_available_providers())'

step "demo model: train and export (fp16)"
ALEXNET=("$PY" -m cli.main)
"${ALEXNET[@]}" train --dataset shapes --out "$WORK/checkpoints" "${TRAIN[@]}"
"${ALEXNET[@]}" export --checkpoint "$WORK/checkpoints/best.pt" --out "$WORK/artifacts" \
  --fp16 --no-explain

step "GPU tests"
set +e
"$PY" -m pytest -q -p no:cacheprovider -m gpu tests/service/test_gpu.py 2>&1 | tee "$WORK/tests.log"
TESTS_STATUS=${PIPESTATUS[0]}
set -e
SUMMARY=$(tail -n 1 "$WORK/tests.log")
echo "pytest exit status $TESTS_STATUS"

step "benchmark"
LEFT=$((BUDGET_S - SECONDS))
BENCH=(--artifacts "$WORK/artifacts" --out "$OUT" --budget-s "$LEFT" --tests "$SUMMARY (exit $TESTS_STATUS)")
[ "$DRY_RUN" = 1 ] && BENCH+=(--dry-run)
"$PY" -m benchmarks.gpu_bench "${BENCH[@]}"
step "done"
exit "$TESTS_STATUS"
