#!/usr/bin/env bash
# Runs on the lent GPU machine (docs/benchmarks.md says how it is used), from the repository root,
# after tools/prepare_device_carry.sh packed .devpack/device.tar.xz here:
#   bash tools/device/gpu_suite.sh [EXTRA_SCRIPT...]
# Unpacks the binaries, runs every gpu test (test_gpu_ops also under the limits of a 99 KB sm_86
# card), then each EXTRA_SCRIPT (benchmarks), each with a time limit. Logs go to $OUT/logs.tar.gz
# (one file: the device tool brings back at most eight) and a summary to stdout.
# QUIRE_SUITE_TESTS=0 skips the tests (a second call that only benchmarks).
set -u
root=$PWD
tar -xJf .devpack/device.tar.xz
cublas=$(dirname "$(find /usr /opt -name 'libcublas.so.13*' 2>/dev/null | head -1)")
export LD_LIBRARY_PATH=$root/.device/lib:$cublas QT_PLUGIN_PATH=$root/.device/plugins QT_QPA_PLATFORM=offscreen
mkdir -p /work/main/build/app && ln -sfn "$root/.device/models" /work/main/build/tiny-models  # the paths baked into the tests
# test_gpu_memory_plan runs `quire model-info` (never over a quire built on the machine itself).
[ -e /work/main/build/app/quire ] || ln -s "$root/.device/bin/quire" /work/main/build/app/quire
[ -e /work/main/tests/data ] || { mkdir -p /work/main/tests && ln -s "$root/tests/data" /work/main/tests/data; }
logs=${OUT:-/tmp/out}/logs
mkdir -p "$logs"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$logs/device.txt"
run() {  # name limit_s command...
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" >"$logs/$name.txt" 2>&1
    local rc=$?
    printf '%-40s rc=%-3s %4ss  %s\n' "$name" "$rc" $((SECONDS - t0)) "$(grep -E 'Totals:|FAIL!' "$logs/$name.txt" | head -3 | tr '\n' ' ')"
}
if [ "${QUIRE_SUITE_TESTS:-1}" = 1 ]; then  # QUIRE_SUITE_TESTS=0: only the extra scripts
  for t in .device/bin/test_gpu_*; do run "$(basename "$t")" 300 "$t"; done
  QUIRE_GPU_SMEM_LIMIT_KB=99 QUIRE_GPU_ARCH_LIMIT=86 run test_gpu_ops-99kb-sm86 300 .device/bin/test_gpu_ops
fi
for extra in "$@"; do run "$(basename "$extra" .sh)" 500 bash "$extra"; done
(cd "$(dirname "$logs")" && tar -czf logs.tar.gz logs && rm -rf logs)
