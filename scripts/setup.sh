#!/usr/bin/env bash
# Install the Debian packages converge needs, if any is missing. Safe to run
# again: it does nothing when everything is there. Needs root (or sudo).
# `setup.sh fuzz` also installs clang and libFuzzer (for scripts/fuzz.sh).
set -euo pipefail

packages=(
  gcc make cmake pkg-config          # build
  liblmdb-dev libsodium-dev libmsgpack-dev libuv1-dev  # the library
  libcriterion-dev python3           # tests
)
if [ "${1:-}" = fuzz ]; then
  packages+=(clang-14 libclang-rt-14-dev)  # libFuzzer and the sanitizers
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "setup: installing ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "setup: missing packages (${missing[*]}) and not root; install them and retry" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
