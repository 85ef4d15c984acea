#!/usr/bin/env bash
# Race check: build with ThreadSanitizer (clang if present, else gcc; Debug,
# in build-tsan/, or $CVG_BUILD_DIR) and run the thread scenarios, then the
# command-line test and the fuzz corpus replay, which drive the rest of the
# library under the same instrumentation. Fails on any TSan report.
#
# The scenarios run as a plain program (tests/replica/threads_main.c), not
# through Criterion: Criterion's sandbox maps its arena at random addresses
# in ranges TSan reserves, so Criterion programs abort at start under TSan.
# The library starts no threads but the syncer's, which the command-line
# test drives (converge connect); the scenarios' threads are the callers'.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${CVG_BUILD_DIR:-build-tsan}

scripts/setup.sh
cc=${CC:-}
if [ -z "$cc" ]; then
  cc=$(command -v clang || command -v gcc)
fi

CC=$cc cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug \
  -DCVG_SANITIZE=thread -DCVG_BUILD_BENCH=OFF -DCVG_BUILD_EXAMPLES=OFF \
  >/dev/null
# Only what runs here: Criterion programs cannot start under TSan.
replays=$(cmake --build "$build" --target help | grep -o 'replay_[a-z_]*' |
  sort -u)
cmake --build "$build" -j 2 --target threads_main syncer_main converge \
  cli_write_nan cli_write_ahead $replays \
  >/dev/null

# halt_on_error: the first report fails the step (exit code 66).
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 suppressions=$root/tests/tsan.supp"
tmp=$root/$build/tsan-tmp
rm -rf "$tmp"
mkdir -p "$tmp"
export CVG_TEST_TMP=$tmp

echo "== tsan: thread scenarios (5 runs: schedules differ)"
for i in 1 2 3 4 5; do
  "$build/tests/threads_main" >"$tmp/threads.out" 2>&1 || {
    cat "$tmp/threads.out" >&2
    echo "tsan: FAILED (run $i of the thread scenarios)" >&2
    exit 1
  }
done
cat "$tmp/threads.out"

echo "== tsan: the syncer's threads"
"$build/tests/syncer_main"

echo "== tsan: command line"
bash tests/cli/test_cli.sh "$build/converge" "$build/tests/cli_write_nan" \
  "$build/tests/cli_write_ahead"

echo "== tsan: fuzz corpus replay"
for r in $replays; do
  "$build/fuzz/$r" "fuzz/corpus/${r#replay_}" >/dev/null
done

rm -rf "$tmp"
echo "tsan: no reports"
