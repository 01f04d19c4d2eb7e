#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Peak memory of `quire quantize` on the real 9B configuration (tests/data/real_config, random
# weights; the GPU machine: 16 cores, 64 GiB of disk). Three runs, each under /usr/bin/time -v:
#   1. RTN 4-bit of the whole 9B folder (19 GB in, ~5.6 GB out);
#   2. GPTQ 4-bit with 512 calibration tokens of a 9B-wide model cut to 2 layers (1 sparse, 1 Lightning):
#      the same per-layer matrices as the 9B (down_proj's Gram matrix is 16384^2 floats), in minutes
#      instead of the hours a CPU GPTQ of all 32 layers takes;
#   3. the same with --desc-act.
# It prints one line per run (wall time, peak RSS) and fails when a peak reaches 4 GiB.
#
#   bash tools/bench/quantize_9b.sh [WORK]     (QUIRE=build/app/quire, TOKENIZER_FROM=build/tiny-models/tiny-a,
#                                               RUNS="rtn gptq gptq-act" to pick runs: each fits a 10-minute call)
# The model folders are made once (tools/bench/make_random_model.py, via replay_1m_session.make_model,
# which needs numpy, torch and safetensors) and kept in WORK for later runs; WORK may be the work
# folder of tools/bench/replay_1m_session.py, whose 9B model is then reused.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-/tmp/quantize-9b}
quire=${QUIRE:-build/app/quire}
tiny=${TOKENIZER_FROM:-build/tiny-models/tiny-a}
runs=${RUNS:-rtn gptq gptq-act}
limit_kb=$((4 * 1024 * 1024))
mkdir -p "$work"

# The 9B folder (real config, the tiny tokenizer's special-token ids), and its 2-layer cut.
python3 - "$work" "$tiny" <<'PY'
import json, os, shutil, subprocess, sys
sys.path.insert(0, "tools/bench")
from replay_1m_session import make_model, HERE
work, tiny = sys.argv[1], sys.argv[2]
model = make_model(work, tiny)
cut = os.path.join(work, "model-2layers")
if not os.path.exists(os.path.join(cut, "model.safetensors.index.json")):
    with open(os.path.join(work, "config.json")) as f:
        c = json.load(f)
    c["num_hidden_layers"] = 2
    c["mixer_types"] = ["minicpm4", "lightning-attn"]
    cfg = os.path.join(work, "config-2layers.json")
    with open(cfg, "w") as f:
        json.dump(c, f, indent=1)
    subprocess.run([sys.executable, os.path.join(HERE, "make_random_model.py"), cut, "--config", cfg], check=True)
    for name in os.listdir(model):
        if not name.endswith(".safetensors") and name not in ("config.json", "model.safetensors.index.json"):
            shutil.copy(os.path.join(model, name), cut)
PY

status=0
measure() {  # NAME OUT-FOLDER ARGS...
  local name=$1 out=$2
  shift 2
  local log="$work/$name.time"
  /usr/bin/time -v "$quire" quantize "$@" "$out" --force >"$work/$name.out" 2>"$log"
  local rss wall
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log")
  echo "$name: wall $wall, peak RSS $((rss / 1024)) MiB ($(tail -2 "$work/$name.out" | head -1))"
  if [ "$rss" -ge "$limit_kb" ]; then
    echo "$name: peak RSS $rss KB reaches 4 GiB" >&2
    status=1
  fi
  rm -rf "$out"
}
calib=docs/model.md
for run in $runs; do
  case $run in
    rtn) measure rtn4-9b "$work/out-rtn4" "$work/model" --bits 4 ;;
    gptq) measure gptq4-9b-2layers "$work/out-gptq4" "$work/model-2layers" --bits 4 --method gptq --calibration "$calib" \
      --calibration-tokens 512 ;;
    gptq-act) measure gptq4-desc-act-9b-2layers "$work/out-gptq4a" "$work/model-2layers" --bits 4 --method gptq --desc-act \
      --calibration "$calib" --calibration-tokens 512 ;;
    *) echo "unknown run '$run' (rtn, gptq, gptq-act)" >&2; exit 2 ;;
  esac
done
exit $status
