#!/usr/bin/env bash
# Prepares .device/ (git-ignored) for running the gpu tests and the benchmark on the lent GPU
# machine, which has CUDA, cuBLAS and PyTorch but not Qt or this distribution's sentencepiece: the
# test binaries built here (sm_90) travel with the shared libraries they need (~55 MB, under the
# 64 MB the device tool carries, once packed), plus the tiny models. .devpack/device.tar.xz holds
# it all (~20 MB). On the device, with carry [".devpack"]:
#   tar -xJf .devpack/device.tar.xz
#   C=$(dirname "$(find /usr /opt -name 'libcublas.so.13*' | head -1)")
#   export LD_LIBRARY_PATH=$PWD/.device/lib:$C
#   mkdir -p /work/main/build && ln -sfn $PWD/.device/models /work/main/build/tiny-models  # the baked-in path
#   .device/bin/test_gpu_ops; .device/bin/test_gpu_engine; compute-sanitizer .device/bin/test_gpu_ops
#   QUIRE_CUDA_PROFILE=1 .device/bin/quire-bench tests/data/real_config --random --lengths 8192,131072,1048576
#   QT_PLUGIN_PATH=$PWD/.device/plugins python3 tools/bench/replay_1m_session.py --quire .device/bin/quire \
#       --tokenizer-from .device/models/tiny-a --work /tmp/replay
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .device
mkdir -p .device/bin .device/lib .device/models
# build/tools/quire-bench-NAME: other builds to compare against this one (tools/bench/ab_h200.sh).
for b in build/tests/test_gpu_* build/tools/quire-bench build/tools/quire-bench-* build/app/quire; do
  [ -f "$b" ] && [ -x "$b" ] && cp "$b" .device/bin/
done
strip --strip-debug .device/bin/*
# Everything but glibc, the C++ runtime and CUDA's own libraries, which the device has.
for b in .device/bin/*; do
  ldd "$b" | awk '/=> \// {print $3}'
done | sort -u | grep -vE 'libc\.so|libm\.so|libstdc\+\+|libgcc_s|libpthread|libdl\.so|librt\.so|ld-linux|libcublas' |
  while read -r lib; do cp -L "$lib" .device/lib/; done
cp -r build/tiny-models/tiny-a build/tiny-models/tiny-g16 build/tiny-models/tiny-a-gptq* .device/models/
# Qt's SQLite driver, for `quire` itself (QT_PLUGIN_PATH=$PWD/.device/plugins on the device).
mkdir -p .device/plugins/sqldrivers
cp "$(qtpaths6 --query QT_INSTALL_PLUGINS 2>/dev/null || echo /usr/lib/x86_64-linux-gnu/qt6/plugins)"/sqldrivers/libqsqlite.so .device/plugins/sqldrivers/
mkdir -p .devpack
tar -cJf .devpack/device.tar.xz .device
du -sh .device .devpack/device.tar.xz
