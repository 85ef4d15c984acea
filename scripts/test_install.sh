#!/usr/bin/env bash
# Install the built library into a temporary prefix and build two tiny
# programs against it, one of them with the testing library, each twice:
# through find_package(converge) and through pkg-config (the testing one
# also through converge::testing_static). Then check what the libraries
# export: no cvg_link in libconverge, all of it in libconverge-testing.
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
# The static one must not need the installed shared libraries.
"$tmp/cm/installed_faulty_static" "$tmp/f1s"

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
# The core library carries no test harness, shared or static, and the
# testing library exports the whole link API.
lib=$(ls -d "$tmp/prefix"/lib*/ | head -n 1)
for f in "$lib/libconverge.so" "$lib/libconverge.a"; do
  if nm "$f" 2>/dev/null | grep -q cvg_link; then
    echo "install: $(basename "$f") holds a cvg_link symbol" >&2
    exit 1
  fi
done
[ -f "$lib/libconverge-testing.a" ] || { echo "install: no libconverge-testing.a" >&2; exit 1; }
for fn in options_init new free set_down clear run stats_get sync; do
  if ! nm -D --defined-only "$lib/libconverge-testing.so" | grep -qw "cvg_link_$fn"; then
    echo "install: libconverge-testing.so does not export cvg_link_$fn" >&2
    exit 1
  fi
done
[ -f "$tmp/prefix/include/converge/testing.h" ] || { echo "install: no converge/testing.h" >&2; exit 1; }
echo "install: 5 programs passed, 0 failed"
