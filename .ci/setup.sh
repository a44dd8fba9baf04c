#!/usr/bin/env bash
# Set up medai in ./.venv. CPU build of torch by default (torch==2.13.0 from the local wheel store where present);
# users with a GPU install their own torch build first and pass --keep-torch.
#   bash .ci/setup.sh            # runtime
#   bash .ci/setup.sh --test     # + test tools, and the system services the tests use (dcmtk, Orthanc)
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_TEST=0; KEEP_TORCH=0
for a in "$@"; do
  case "$a" in
    --test) WITH_TEST=1 ;;
    --keep-torch) KEEP_TORCH=1 ;;
    *) echo "unknown option $a" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip"
if [ "$KEEP_TORCH" = 0 ] && ! .venv/bin/python -c "import torch" 2>/dev/null; then
  # pin the CPU build first so the looser range in pyproject.toml never pulls a multi-GB CUDA build
  $PIP install -q "torch==2.13.0" || $PIP install -q "torch>=2.4,<2.14" --index-url https://download.pytorch.org/whl/cpu
fi
if [ "$WITH_TEST" = 1 ]; then
  $PIP install -q -e ".[test]"
  bash .ci/services.sh || echo "warning: system services could not be installed; tests that need them will skip" >&2
else
  $PIP install -q -e .
fi
