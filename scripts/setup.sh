#!/usr/bin/env bash
# Make (or refresh) the virtual environment .venv with landmarklib and its test tools.
# Usage: bash scripts/setup.sh      (then: source .venv/bin/activate)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch 2.14.1 / torchvision 0.29.1 are the newest releases pyproject.toml allows.
.venv/bin/python -m pip install --quiet -e ".[dev]"
