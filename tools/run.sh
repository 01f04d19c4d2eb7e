#!/usr/bin/env bash
# Quick start, command 1: install what is missing, build, and run Quire's main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/build.sh
echo
echo "== quire model-info on the tiny demo model (build/tiny-models/tiny-a) =="
./build/app/quire model-info build/tiny-models/tiny-a
