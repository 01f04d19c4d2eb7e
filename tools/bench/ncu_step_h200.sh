#!/usr/bin/env bash
# Each kernel of a decode step alone under ncu (tools/bench/ncu_step_table.py makes the table): the
# real 9B configuration with random weights, INT4 under --gpu-memory 24, at NCU_LENGTH tokens
# (default 1048576). Run by tools/device/gpu_suite.sh as an extra script (binaries in .device/bin).
set -u
length=${NCU_LENGTH:-1048576}
ncu=$(command -v ncu || ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
[ -n "$ncu" ] || { echo "no ncu on this machine"; exit 1; }
csv=${OUT:-/tmp}/ncu_step.csv
"$ncu" --profile-from-start off --graph-profiling node --metrics gpu__time_duration.sum --csv --print-units base --log-file "$csv" \
  .device/bin/quire-bench tests/data/real_config_int4 --random --lengths "$length" --decode 4 --gpu-memory 24 --profile-range | grep -E "^\| [0-9]"
python3 tools/bench/ncu_step_table.py "$csv" --steps 2
