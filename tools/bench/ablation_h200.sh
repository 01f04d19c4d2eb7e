#!/usr/bin/env bash
# Where a decode step's time goes as CUDA graphs run it (quire-bench --ablate: the step with each
# category of operations left out), with the host's recording against the GPU's time
# (QUIRE_CUDA_GRAPH_TIMING=1). INT4 under --gpu-memory 24 (also with the side stream off) and bf16,
# at ABLATION_LENGTHS (default 1M). Run by tools/device/gpu_suite.sh as an extra script.
set -u
bench=.device/bin/quire-bench
export QUIRE_CUDA_GRAPH_TIMING=1
show() { grep -E "^\| [0-9]|graph nodes|graph timing|ablation|floor"; }
for len in ${ABLATION_LENGTHS:-1048576}; do
  echo "== INT4, $len"; "$bench" tests/data/real_config_int4 --random --lengths $len --decode 16 --gpu-memory 24 --ablate | show
  echo "== INT4 without the side stream, $len"
  QUIRE_CUDA_SIDE_STREAM=0 "$bench" tests/data/real_config_int4 --random --lengths $len --decode 16 --gpu-memory 24 --ablate | show
  echo "== bf16, $len"; "$bench" tests/data/real_config --random --lengths $len --decode 16 --gpu-memory 40 --ablate | show
done
