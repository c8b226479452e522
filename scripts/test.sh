#!/usr/bin/env bash
# Set up .venv, then lint (ruff), run the library tests and every notebook (nbval) on the tiny
# subset.
# Usage: bash scripts/test.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export LANDMARKLIB_TINY=1 MPLBACKEND=agg
export LANDMARKLIB_CACHE="${LANDMARKLIB_CACHE:-$(mktemp -d)}"
.venv/bin/ruff check .
.venv/bin/python -m pytest tests notebooks --nbval-lax "$@"
