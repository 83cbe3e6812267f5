#!/usr/bin/env bash
# GPU figures in one run (issue 24): the loss, a LoRA training step and generation, side by
# side; docs/performance.md ("GPU figures") says what each figure means.
#   bash benchmarks/gpu/run.sh              # at most 8 minutes on one H100 / H200
#   bash benchmarks/gpu/run.sh --quick      # at most 3 minutes
#   bash benchmarks/gpu/run.sh --cpu-dry-run   # tiny shapes on the CPU, every code path (CI)
# Needs only python3 with torch, transformers, peft and accelerate (the GPU machine's image);
# the project is not installed. Liger-Kernel and Cut Cross-Entropy come from the wheels that
# benchmarks/gpu/fetch_wheels.sh put in benchmarks/gpu/wheels/ (no network needed here): each is
# installed into a temporary folder on PYTHONPATH; a missing one makes its rows say "skipped".
# Results: $GPU_BENCH_OUT/results.json (default gpu_bench_out/).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
WHEELS=benchmarks/gpu/wheels
SITE=$(mktemp -d "${TMPDIR:-/tmp}/gpu-bench-site.XXXXXX")
trap 'rm -rf "$SITE"' EXIT
shopt -s nullglob
wheels=("$WHEELS"/*.whl)
if [ ${#wheels[@]} -eq 0 ]; then
  echo "[gpu-bench] no wheels in $WHEELS (benchmarks/gpu/fetch_wheels.sh fetches them): Liger / CCE rows will say skipped"
fi
for whl in "${wheels[@]}"; do  # one at a time: a broken wheel costs only its own rows
  if ! "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$whl"; then
    echo "[gpu-bench] could not install $whl: its rows will say skipped" >&2
  fi
done
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
"$PY" benchmarks/gpu/bench.py "$@"
