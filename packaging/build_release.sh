#!/usr/bin/env bash
# Release build: GPU code for every supported architecture (QUIRE_RELEASE_CUDA_ARCHITECTURES in
# cmake/cuda.cmake: sm_80, 86, 89, 90, 100, 120 and PTX of the newest), then the .deb and the
# self-extracting installer, then the check that the executables carry exactly that list.
# CI and development builds keep one architecture (tools/build.sh); only this script lists all.
#   build_release.sh [BUILD_DIR]      (default: build-release beside the sources)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build-release}
if ! command -v nvcc >/dev/null 2>&1 && [ ! -x /usr/local/cuda/bin/nvcc ]; then
  echo "build_release: nvcc not found; a release package needs the CUDA Toolkit (13.0 or newer)" >&2
  exit 1
fi
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DQUIRE_CUDA_ARCHITECTURES=release
cmake --build "$build" --parallel "$(nproc)"
# --no-tests=error: a build without CUDA has no such test, and must not pass for a release.
ctest --test-dir "$build" -R '^cuda_architectures$' --no-tests=error --output-on-failure
(cd "$build" && cpack -G DEB)
cmake --build "$build" --target installer
ls -l "$build"/quire_*_amd64.deb "$build"/quire-*-linux-x86_64.run
