#!/usr/bin/env bash
# Quick start, part one: install what is missing, build, run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh >/dev/null
exec build/converge demo "$@"
