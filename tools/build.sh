#!/usr/bin/env bash
# Configures and builds Quire into build/ (CI=true turns warnings into errors).
set -euo pipefail
cd "$(dirname "$0")/.."
werror=OFF
if [ "${CI:-}" = "true" ]; then werror=ON; fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQUIRE_WERROR=$werror ${QUIRE_CMAKE_ARGS:-}
cmake --build build --parallel "$(nproc)"
