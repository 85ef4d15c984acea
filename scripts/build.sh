#!/usr/bin/env bash
# Configure and build into build/ (or $CVG_BUILD_DIR). Extra arguments go to
# cmake's configure step, e.g. -DCVG_SANITIZE='address;undefined'.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${CVG_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE="${CVG_BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null
cmake --build "$build" -j "$(nproc)"
