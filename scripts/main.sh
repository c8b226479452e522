#!/usr/bin/env bash
# The main job on a fresh machine: set up .venv, get the data, train (the training file .pt,
# its deployment file .onnx and its memory .memory.npz: the training photos' embeddings, the
# temperature, the "I don't know" threshold), evaluate the deployment file on the test split,
# write its 8-bit file, and tag photos.
#
#   bash scripts/main.sh                                   # transfer learning (EfficientNet-Lite0)
#   KIND=scratch bash scripts/main.sh                      # the CNN from scratch
#   LANDMARK_DATA=/path/to/landmark_images bash scripts/main.sh   # use a copy you already have
#
# Without $LANDMARK_DATA (or LANDMARKLIB_TINY=1) the dataset is downloaded into the cache folder.
set -euo pipefail
cd "$(dirname "$0")/.."
KIND="${KIND:-transfer}"   # transfer or scratch
bash scripts/setup.sh
landmarklib=.venv/bin/landmarklib
if [ -z "${LANDMARK_DATA:-}" ] && [ -z "${LANDMARKLIB_TINY:-}" ]; then
    "$landmarklib" download
fi
"$landmarklib" check
model="runs/${KIND}_model"
if [ "$KIND" = scratch ]; then
    "$landmarklib" train scratch --out "$model.pt" --checkpoint runs/scratch.ckpt
else
    "$landmarklib" train transfer --out "$model.pt"
fi
"$landmarklib" evaluate --model "$model.onnx"
# The 8-bit file (MODEL.int8.onnx, a quarter of the size, faster): calibrated on training
# photos, its test accuracy measured and printed.
"$landmarklib" quantize "$model.onnx"
"$landmarklib" predict --model "$model.onnx" -k 3 landmarklib/tiny/test/16.Eiffel_Tower \
    landmarklib/tiny/test/09.Golden_Gate_Bridge
# Tag a folder of photos as a photo library would be: --dry-run writes no sidecar next to the
# dataset's photos, only the report and the map.
"$landmarklib" tag --model "$model.onnx" --dry-run --quiet --report runs/tag_report.csv \
    --map runs/tag_map.html landmarklib/tiny/test
