#!/usr/bin/env bash
# INT4 against bf16 decode in one run (the issue-13 ratio), real 9B configuration with random weights;
# run by tools/device/gpu_suite.sh as an extra script. INT4 under --gpu-memory 24, each 1M row its own process.
set -u
bench=.device/bin/quire-bench
"$bench" tests/data/real_config_int4 --random --lengths 8192,131072 --decode 32 --gpu-memory 24 | grep -E "^\| [0-9]|graph nodes|floor"
"$bench" tests/data/real_config_int4 --random --lengths 1048576 --decode 16 --gpu-memory 24 | grep -E "^\| [0-9]|graph nodes"
"$bench" tests/data/real_config --random --lengths 1048576 --decode 16 | grep -E "^\| [0-9]|graph nodes"
