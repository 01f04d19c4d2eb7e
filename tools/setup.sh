#!/usr/bin/env bash
# Installs every Debian 12 package Quire needs to build and test. Idempotent: installs only what is
# missing (after apt-get update). Run as root. CUDA is optional: with nvcc present (/usr/local/cuda
# or PATH) the CUDA backend is built too; without it the CPU engine is built and gpu tests skip.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  qt6-base-dev qt6-base-dev-tools qt6-qpa-plugins libqt6sql6-sqlite libgl-dev
  libpoppler-cpp-dev libsentencepiece-dev sentencepiece libre2-dev
  libsqlite3-dev sqlite3
  libcpp-httplib-dev nlohmann-json3-dev curl
  clang libclang-rt-14-dev
  python3 xvfb xauth
  qpdf poppler-utils fonts-dejavu-core libpoppler-qt6-dev
  dpkg-dev file lintian debootstrap appstream desktop-file-utils
)

# Node.js and npm, for the test that drives `quire serve` with the official `openai` client
# (tests/node/install.sh fetches the library itself): Debian's, unless the machine has them already.
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages: ${missing[*]}; run this script as root to install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v nvcc >/dev/null 2>&1 && [ ! -x /usr/local/cuda/bin/nvcc ]; then
  echo "setup: note: nvcc not found; building the CPU engine only (install the CUDA Toolkit for the GPU backend)"
fi
