#!/usr/bin/env bash
# One command for a GPU host, the headline first, within one 600-s call (bench/README.md):
#   bash bench/gpu_run.sh --out DIR        (--dry-run: tiny sizes on the CPU, CI)
# Runs from the checkout as it is: no install, the checkout first on PYTHONPATH. Arguments go to
# `python -m bench.gpu_run` (--out, --dry-run, --time-limit, --part, --work).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" -m bench.gpu_run "$@"
