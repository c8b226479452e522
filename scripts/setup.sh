#!/usr/bin/env bash
# Make (or refresh) the virtual environment .venv with landmarklib, its test tools and the
# optional web app (Gradio). Browser tests use Debian's chromium and chromedriver, installed
# here when apt-get is available and they are missing.
# Usage: bash scripts/setup.sh      (then: source .venv/bin/activate)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch 2.14.1 / torchvision 0.29.1 are the newest releases pyproject.toml allows.
.venv/bin/python -m pip install --quiet -e ".[dev,web]"
if ! command -v chromedriver >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
