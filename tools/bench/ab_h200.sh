#!/usr/bin/env bash
# Two builds of quire-bench side by side in one run, processes interleaved: .device/bin/quire-bench
# (this tree) against .device/bin/quire-bench-base (a baseline build put there by hand), INT4 under
# --gpu-memory 24 and bf16, real 9B configuration with random weights. Run by tools/device/gpu_suite.sh
# as an extra script; AB_LENGTHS (default 131072) and AB_REPS (default 2) choose the rows.
set -u
lengths=${AB_LENGTHS:-131072}
reps=${AB_REPS:-2}
[ -x .device/bin/quire-bench-base ] || { echo "no .device/bin/quire-bench-base"; exit 1; }
for r in $(seq "$reps"); do
  for v in base this; do
    bench=.device/bin/quire-bench
    [ "$v" = base ] && bench=.device/bin/quire-bench-base
    for cfg in real_config_int4 real_config; do
      budget=()
      [ "$cfg" = real_config_int4 ] && budget=(--gpu-memory 24)
      echo "== $v $cfg (round $r)"
      "$bench" "tests/data/$cfg" --random --lengths "$lengths" --decode 32 "${budget[@]}" | grep -E "^\| [0-9]"
    done
  done
done
