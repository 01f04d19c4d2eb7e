#!/usr/bin/env bash
# Takes the window's screenshots for docs/screenshots/ under Xvfb: light and dark, while reading a
# library and while an answer streams in (quire-desktop --screenshots runs the tour).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/screenshots}
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
xvfb-run -a -s "-screen 0 1400x900x24" ./build/ui/quire-desktop --data-dir "$data" --screenshots "$out"
ls -1 "$out"
