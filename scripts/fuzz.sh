#!/usr/bin/env bash
# Fuzz every target with libFuzzer under ASan + UBSan (LeakSanitizer on),
# CVG_FUZZ_SECONDS (default 60) each, starting from a copy of the checked-in
# corpus. New inputs and findings stay in the work directory; nothing is
# added to fuzz/corpus/ (merge by hand, see the end). Exits non-zero on any
# crash, leak, timeout or out-of-memory, and says where the reproducer is.
#
#   scripts/fuzz.sh                          # 60 s per target
#   CVG_FUZZ_SECONDS=3600 scripts/fuzz.sh    # the long run
#   CVG_FUZZ_SECONDS=3600 CVG_FUZZ_JOBS=4 scripts/fuzz.sh   # 4 processes
#   CVG_FUZZ_TARGETS="session merge" scripts/fuzz.sh
#
# Other settings: CVG_FUZZ_BUILD_DIR (build-fuzz), CVG_FUZZ_WORK_DIR
# (<build dir>/fuzz-work, emptied at each run). Extra arguments go to
# cmake's configure step (they stay in that build directory's cache).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${CVG_FUZZ_SECONDS:-60}
jobs=${CVG_FUZZ_JOBS:-1}
build=${CVG_FUZZ_BUILD_DIR:-build-fuzz}
work=${CVG_FUZZ_WORK_DIR:-$build/fuzz-work}
read -r -a targets <<<"${CVG_FUZZ_TARGETS:-op_decode sync_msg session merge channel}"

# Memory limits. A single allocation above 64 MiB is a finding: the largest
# the library makes on purpose is a 1 MiB value or a 1.5 MiB array of a
# message's 65,536 dots, so more means a length taken from hostile bytes
# (5 bytes must never ask for gigabytes). The whole process may use 1 GiB:
# ASan's quarantine alone holds up to 256 MiB of freed memory, and its
# shadow and allocator caches add a few hundred more over a long run, so
# libFuzzer's usual 2 GiB default leaves a slow leak unseen for long, and
# much less would stop healthy runs (measured peak: see docs/architecture.md).
malloc_limit_mb=64
rss_limit_mb=1024
# Inputs take milliseconds; one that takes 10 s is stuck.
timeout_s=10

scripts/setup.sh fuzz

cc=$(command -v clang-14 || command -v clang)
echo "== building libFuzzer targets with $cc (ASan + UBSan) in $build"
CC=$cc cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCVG_BUILD_FUZZ=ON -DCVG_SANITIZE='address;undefined' \
  -DCVG_BUILD_TESTS=OFF -DCVG_BUILD_BENCH=OFF -DCVG_BUILD_EXAMPLES=OFF \
  "$@" >/dev/null
cmake --build "$build" -j 2 --target "${targets[@]/#/fuzz_}" >/dev/null

# Replicas the targets create go to a directory of ours on tmpfs, removed
# at the end (a crashed target cannot remove its own).
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  scratch=$(mktemp -d /dev/shm/cvg-fuzz.XXXXXX)
else
  scratch=$(mktemp -d "${TMPDIR:-/tmp}/cvg-fuzz.XXXXXX")
fi
trap 'rm -rf "$scratch"' EXIT
export CVG_FUZZ_TMP=$scratch
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

rm -rf "$work"
failed=0
summary=()
for t in "${targets[@]}"; do
  dir=$work/$t
  mkdir -p "$dir/corpus" "$dir/findings"
  cp fuzz/corpus/"$t"/* "$dir/corpus/"
  args=(-max_total_time="$seconds" -malloc_limit_mb=$malloc_limit_mb
        -rss_limit_mb=$rss_limit_mb -timeout=$timeout_s
        -artifact_prefix="$dir/findings/" -print_final_stats=1)
  if [ "$jobs" -gt 1 ]; then
    args+=(-fork="$jobs")
  fi
  echo "== fuzz_$t: ${seconds}s, log in $dir/log"
  start=$SECONDS
  rc=0
  "$build/fuzz/fuzz_$t" "${args[@]}" "$dir/corpus" >"$dir/log" 2>&1 || rc=$?
  took=$((SECONDS - start))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -n 1)
  if [ -z "$runs" ]; then  # fork mode prints no final stats
    runs=$(grep -o '^#[0-9]*' "$dir/log" | tail -n 1 | tr -d '#')
  fi
  runs=${runs:-0}
  peak=$(sed -n 's/^stat::peak_rss_mb: *//p' "$dir/log" | tail -n 1)
  findings=$(find "$dir/findings" -type f \
    \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
       -o -name 'oom-*' \) | sort)
  n=$(printf '%s' "$findings" | grep -c . || true)
  line=$(printf '%-10s %10s runs %5ss %8s exec/s %5s MB peak  %s findings' \
    "$t" "$runs" "$took" "$((runs / (took > 0 ? took : 1)))" "${peak:-?}" "$n")
  summary+=("$line")
  if [ "$rc" -ne 0 ] || [ "$n" -gt 0 ]; then
    failed=1
    echo "!! fuzz_$t failed (exit $rc); the end of its log:" >&2
    tail -n 40 "$dir/log" >&2
    for f in $findings; do
      echo "!! reproducer: $f" >&2
      echo "!!   rerun:  $build/fuzz/fuzz_$t $f" >&2
    done
  fi
done

echo "== summary (${seconds}s per target, jobs $jobs)"
printf '%s\n' "${summary[@]}"
echo "New inputs are in $work/<target>/corpus; to keep the ones that add"
echo "coverage: $build/fuzz/fuzz_<target> -merge=1 fuzz/corpus/<target> $work/<target>/corpus"
exit $failed
