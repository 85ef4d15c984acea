#!/usr/bin/env bash
# Quick start, part two: install what is missing, build, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh "$@"
cd "${CVG_BUILD_DIR:-build}"
ctest --output-on-failure -j "$(nproc)"
