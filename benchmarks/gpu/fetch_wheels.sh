#!/usr/bin/env bash
# Fetch the wheels of benchmarks/gpu/wheels.txt into benchmarks/gpu/wheels/ (git-ignored) for
# the GPU machine, which has no network: Python 3.12, x86-64, torch and triton already there.
# Carry the folder with the run (device tool: carry ["benchmarks/gpu/wheels"]); at most 40 MiB.
set -euo pipefail
HERE=$(dirname "$0")
PY=${PYTHON:-python3}
LIMIT_MIB=40
mkdir -p "$HERE/wheels"
grep -Ev '^[[:space:]]*(#|$)' "$HERE/wheels.txt" | xargs "$PY" -m pip download --only-binary=:all: --no-deps \
  --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$HERE/wheels"
ls -l "$HERE/wheels"
bytes=$(du -cb "$HERE"/wheels/*.whl | tail -1 | cut -f1)
echo "total: $bytes bytes ($(awk "BEGIN { printf \"%.2f\", $bytes / 1048576 }") MiB; limit $LIMIT_MIB MiB)"
if [ "$bytes" -gt $((LIMIT_MIB * 1048576)) ]; then
  echo "wheels exceed $LIMIT_MIB MiB" >&2
  exit 1
fi
