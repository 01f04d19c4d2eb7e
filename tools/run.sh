#!/usr/bin/env bash
# Quick start, command 1: install what is missing, build, and run Quire's main job: read the demo
# library (resources/demo) once and answer questions from its saved state on the command line, then
# open the window on the same library when there is a display. Uses the model configured with
# `quire config model DIR` in that data folder, or the bundled tiny demo model (random weights: the
# pipeline is real, the answers are not meaningful).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/build.sh
quire=./build/app/quire
data=${QUIRE_DEMO_DATA:-build/demo-data}
echo
echo "== Quire demo: data in $data =="
if ! "$quire" library show demo --data-dir "$data" >/dev/null 2>&1; then
  "$quire" library create demo --data-dir "$data"
  "$quire" add demo resources/demo/the-keeper-of-the-light.txt resources/demo/wordcount --data-dir "$data"
fi
"$quire" library show demo --data-dir "$data"
echo
echo "== First question (reads the library, then saves its state) =="
"$quire" ask demo "What happened on the night of 2 November?" --no-think --max-tokens 48 --data-dir "$data"
echo
echo "== A second question in a new process (starts from the saved state) =="
"$quire" ask demo "What does wordcount print?" --no-think --max-tokens 48 --data-dir "$data"
echo
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  echo "== Opening the Quire window =="
  exec ./build/ui/quire-desktop --data-dir "$data"
else
  echo "No display here, so the window (./build/ui/quire-desktop) was not opened;"
  echo "tools/screenshots.sh shows it under Xvfb (pictures in docs/screenshots/)."
fi
