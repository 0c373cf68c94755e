#!/usr/bin/env bash
# One command for a GPU host: tests, benchmarks, AdaIN bandwidth, profiles, headline (bench/README.md).
# Runs from the checkout as it is: no install, the checkout first on PYTHONPATH. Arguments go to
# `python -m bench.gpu_run` (--part, --out, --dry-run, --time-limit, --bench-files, --fresh).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" -m bench.gpu_run "$@"
