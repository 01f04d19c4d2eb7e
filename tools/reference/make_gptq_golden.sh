#!/usr/bin/env bash
# Golden fixtures for the GPTQ tiny models (docs/quantization.md §7), made by the PyTorch reference on a
# machine with torch (the GPU machine): tests/data/golden/<model>/, which test_golden then checks.
#
#   tools/reference/make_gptq_golden.sh [MODELS_DIR (build/tiny-models)] [OUT (tests/data/golden)]
#
# The tiny models must be built first (cmake --build build builds them all). test_gptq runs first: it
# checks the reference's dequantization (tools/reference/gptq.py) against the C++ tool's, bit for bit,
# so fixtures are never made from a reference that reads the layout differently.
set -euo pipefail
cd "$(dirname "$0")/../.."
models_dir=${1:-build/tiny-models}
out=${2:-tests/data/golden}
models=(tiny-a-gptq4-sala tiny-a-gptq4-asym tiny-a-gptq8-act tiny-a-gptq8-asym tiny-a-gptq4-mixed)
for m in "${models[@]}"; do
  if [[ ! -f "$models_dir/$m/config.json" ]]; then
    echo "make_gptq_golden: $models_dir/$m is missing; build the tiny models first" >&2
    exit 1
  fi
done
build_dir=$(dirname "$models_dir")
ctest --test-dir "$build_dir" -R '^test_gptq$' --output-on-failure
python3 tools/reference/make_golden.py --models-dir "$models_dir" --out "$out" --commit "$(git rev-parse HEAD)" "${models[@]}"
echo "make_gptq_golden: fixtures in $out for: ${models[*]}"
