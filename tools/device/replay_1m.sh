#!/usr/bin/env bash
# The 1M-token session through `quire` (tools/bench/replay_1m_session.py) on the lent GPU machine, as an
# extra script of tools/device/gpu_suite.sh (which unpacked the binaries and set the library paths):
#   QUIRE_SUITE_TESTS=0 bash tools/device/gpu_suite.sh tools/device/replay_1m.sh
set -u
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
df -h /tmp | tail -1
python3 tools/bench/replay_1m_session.py --quire .device/bin/quire --tokenizer-from .device/models/tiny-a --work /tmp/replay
