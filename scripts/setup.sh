#!/usr/bin/env bash
# Make (or refresh) the virtual environment .venv with landmarklib, its test tools and the
# optional web app (Gradio). The Debian packages the tests use (below) are installed here when
# apt-get is available and they are missing.
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
# Debian packages the tests use: Chromium and its driver (the apps and the tagging map in a real
# browser), ExifTool (the second reader of the XMP sidecars), Leaflet and jQuery (the map, offline).
packages="chromium chromium-driver libimage-exiftool-perl libjs-leaflet libjs-jquery"
if command -v apt-get >/dev/null && command -v dpkg-query >/dev/null && [ "$(id -u)" = 0 ]; then
    missing=""
    for package in $packages; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" \
            || missing="$missing $package"
    done
    if [ -n "$missing" ]; then
        apt-get update -qq
        # shellcheck disable=SC2086 # one word per package
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    fi
fi
