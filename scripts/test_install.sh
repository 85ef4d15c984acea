#!/usr/bin/env bash
# Install the built library into a temporary prefix and build two tiny
# programs against it, one of them with the testing library, each twice:
# through find_package(converge) and through pkg-config.
# Usage: test_install.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null

# 1. CMake package.
cmake -S "$src/tests/install" -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm" >/dev/null
LD_LIBRARY_PATH="$tmp/prefix/lib:$tmp/prefix/lib64:${LD_LIBRARY_PATH:-}" \
  "$tmp/cm/installed_hello" "$tmp/r1"
LD_LIBRARY_PATH="$tmp/prefix/lib:$tmp/prefix/lib64:${LD_LIBRARY_PATH:-}" \
  "$tmp/cm/installed_faulty" "$tmp/f1"

# 2. pkg-config, against the shared library.
libdir=$(ls -d "$tmp/prefix"/lib*/pkgconfig | head -n 1)
export PKG_CONFIG_PATH="$libdir"
# shellcheck disable=SC2046
cc -std=c11 -o "$tmp/pc_hello" "$src/tests/install/hello.c" \
  $(pkg-config --cflags --libs converge)
LD_LIBRARY_PATH="$tmp/prefix/lib:$tmp/prefix/lib64:${LD_LIBRARY_PATH:-}" \
  "$tmp/pc_hello" "$tmp/r2"
# shellcheck disable=SC2046
cc -std=c11 -o "$tmp/pc_faulty" "$src/tests/install/faulty.c" \
  $(pkg-config --cflags --libs converge-testing)
LD_LIBRARY_PATH="$tmp/prefix/lib:$tmp/prefix/lib64:${LD_LIBRARY_PATH:-}" \
  "$tmp/pc_faulty" "$tmp/f2"
# The core library carries no test harness.
if nm -D "$(ls "$tmp/prefix"/lib*/libconverge.so | head -n 1)" | grep -q cvg_link; then
  echo "install: libconverge exports cvg_link" >&2
  exit 1
fi
echo "install: 4 passed, 0 failed"
