#!/usr/bin/env bash
# compute-sanitizer over chosen GPU test functions, on the lent GPU machine (docs/benchmarks.md); run
# by tools/device/gpu_suite.sh as an extra script. Each argument pair of SANITIZE is
# "tool binary function[:tag]", separated by ';', e.g.
#   SANITIZE='memcheck test_gpu_ops select_long_rows;racecheck test_gpu_gptq bf16_layer_joins_bit_for_bit'
set -u
san=$(command -v compute-sanitizer || find /usr/local /opt -name compute-sanitizer -type f 2>/dev/null | head -1)
[ -n "$san" ] || { echo "compute-sanitizer not found"; exit 1; }
IFS=';' read -ra jobs <<<"${SANITIZE:-}"
for job in "${jobs[@]}"; do
  read -r tool bin fn <<<"$job"
  echo "=== $tool $bin $fn"
  # API errors are not reported: the decode graph's refused updates (then instantiated anew) are by design.
  timeout 240 "$san" --tool "$tool" --report-api-errors no --error-exitcode 9 ".device/bin/$bin" "$fn" 2>&1 | grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Totals|FAIL|Error|error" | head -8
  echo "rc=${PIPESTATUS[0]}"
done
