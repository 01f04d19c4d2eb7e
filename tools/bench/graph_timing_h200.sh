#!/usr/bin/env bash
# Where a decode step's time goes with CUDA graphs (QUIRE_CUDA_GRAPH_TIMING=1): the host's recording
# of the per-layer graphs against the GPU's time inside them and between them. INT4 (under
# --gpu-memory 24) and bf16 at 128K and 1M; run by tools/device/gpu_suite.sh as an extra script.
set -u
bench=.device/bin/quire-bench
export QUIRE_CUDA_GRAPH_TIMING=1
for model in real_config_int4 real_config; do
  "$bench" tests/data/$model --random --lengths 131072 --decode 32 --gpu-memory 40 | grep -E "^\| [0-9]|graph nodes|graph timing|floor"
done
"$bench" tests/data/real_config_int4 --random --lengths 1048576 --decode 16 --gpu-memory 24 | grep -E "^\| [0-9]|graph nodes|graph timing"
