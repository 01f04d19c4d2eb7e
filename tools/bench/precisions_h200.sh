#!/usr/bin/env bash
# The issue-13 table on the lent GPU machine, one run (docs/benchmarks.md): bf16, INT8 and INT4 of the
# real 9B configuration with random weights, prefill and decode at 8K / 128K / 1M, the INT ones under a
# 24 GiB budget. Run by tools/device/gpu_suite.sh as an extra script (binaries in .device/bin).
# Each 1M row is its own process: a budgeted series cannot grow one sequence from 128K to 1M in place.
set -u
bench=.device/bin/quire-bench
mkdir -p /tmp/qst
for p in "" _int8 _int4; do
  budget=()
  [ -n "$p" ] && budget=(--gpu-memory 24)
  echo "=== real_config$p: 8K, 128K"
  "$bench" "tests/data/real_config$p" --random --lengths 8192,131072 --decode 32 "${budget[@]}"
  echo "=== real_config$p: 1M (with where the decode step's time goes: --ablate)"
  QUIRE_CUDA_GRAPH_TIMING=1 "$bench" "tests/data/real_config$p" --random --lengths 1048576 --decode 16 --ablate "${budget[@]}"
done
