#!/usr/bin/env bash
# Installs the official `openai` client library for Node into tests/node/node_modules from the npm
# registry, exactly as package-lock.json pins it. test_serve runs this before driving `quire serve`
# with it; it does nothing when that version is already installed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
want="$(node -e "console.log(require('$here/package-lock.json').packages['node_modules/openai'].version)")"
have="$(node -e "try{console.log(require('$here/node_modules/openai/package.json').version)}catch(e){console.log('')}")"
if [ "$want" != "$have" ]; then
  npm ci --prefix "$here" --no-audit --no-fund --loglevel=error
fi
