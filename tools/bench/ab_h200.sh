#!/usr/bin/env bash
# Several builds of quire-bench side by side in one run, processes interleaved: .device/bin/quire-bench
# (this tree) against every .device/bin/quire-bench-NAME (other builds put in build/tools by hand;
# tools/prepare_device_carry.sh packs them), INT4 under --gpu-memory 24 and bf16, real 9B
# configuration with random weights. Run by tools/device/gpu_suite.sh as an extra script; AB_LENGTHS
# (default 131072) and AB_REPS (default 2) choose the rows.
set -u
lengths=${AB_LENGTHS:-131072}
reps=${AB_REPS:-2}
others=(.device/bin/quire-bench-*)
[ -x "${others[0]}" ] || { echo "no .device/bin/quire-bench-NAME to compare with"; exit 1; }
for r in $(seq "$reps"); do
  for bench in "${others[@]}" .device/bin/quire-bench; do
    for cfg in real_config_int4 real_config; do
      budget=()
      [ "$cfg" = real_config_int4 ] && budget=(--gpu-memory 24)
      echo "== $(basename "$bench") $cfg (round $r)"
      "$bench" "tests/data/$cfg" --random --lengths "$lengths" --decode 32 "${budget[@]}" | grep -E "^\| [0-9]"
    done
  done
done
