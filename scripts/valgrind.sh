#!/usr/bin/env bash
# Memory check: build without sanitizers (Debug, in build-valgrind/, or
# $CVG_BUILD_DIR) and run a reduced suite under valgrind memcheck: open and
# close, reads and writes of every type, cursors, syncs (cvg_sync_local and
# links with faults), conflict strategies, threads, malformed input and
# failed allocations, the fuzz corpus and a handful of `converge` commands.
# Fails on any memcheck error and on any byte definitely or indirectly lost.
#
# Criterion runs each test in a child process that it starts by exec, so
# valgrind follows children (--trace-children) and writes one log per
# process; a child's errors do not reach Criterion's verdict, so this script
# reads every log itself. Tests run one at a time (--jobs 1).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${CVG_BUILD_DIR:-build-valgrind}

scripts/setup.sh
if ! command -v valgrind >/dev/null 2>&1; then
  echo "valgrind: installing valgrind" >&2
  if [ "$(id -u)" -eq 0 ]; then
    sudo=()
  elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
  else
    echo "valgrind: valgrind is missing and we are not root; install it" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends valgrind >&2
fi

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DCVG_SANITIZE= \
  -DCVG_BUILD_BENCH=OFF -DCVG_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" -j 2 >/dev/null

logs=$root/$build/valgrind-logs
tmp=$root/$build/valgrind-tmp
rm -rf "$logs" "$tmp"
mkdir -p "$logs" "$tmp"

vg=(valgrind --tool=memcheck --trace-children=yes --track-fds=yes
    --leak-check=full --show-leak-kinds=definite,indirect
    --errors-for-leak-kinds=definite,indirect --error-exitcode=99
    --num-callers=30 --suppressions="$root/tests/valgrind.supp")

# Small seed counts: valgrind runs code 20 to 50 times slower.
export CVG_TEST_TMP=$tmp CVG_TEST_SEEDS=2

failed=0

# suite PROGRAM FILTER: one Criterion program, the tests matching FILTER.
suite() {
  local prog=$1 filter=$2
  local start=$SECONDS
  if ! "${vg[@]}" --log-file="$logs/$prog.%p.log" \
      "$build/tests/$prog" --jobs 1 --short-filename --filter "$filter" \
      >"$logs/$prog.out" 2>&1; then
    echo "FAIL $prog: tests failed:" >&2
    grep -E '\[(FAIL|----)\]|Crashing: [1-9]' "$logs/$prog.out" >&2 || true
    failed=1
  fi
  echo "  $prog ($((SECONDS - start))s)"
}

echo "== valgrind: tests"
suite replica_test_replica '*'
suite sync_test_sync '*'
suite sync_test_converge '*'
suite testing_test_link '*/@(clean_link_completes_and_converges|all_faults_then_clean_run_converges|partition_delivers_nothing_then_heals|bad_options_are_refused|allocation_failures_never_crash)'
suite replica_test_conflicts '*'
suite sync_test_sync_status '*'
suite replica_test_threads '*'
suite replica_test_fault '*/@(every_allocation_of_a_write_txn_fails_cleanly|a_write_that_failed_cleanly_can_be_retried|a_failed_txn_commits_nothing_and_frees_itself|opening_under_allocation_failure|reads_under_allocation_failure|remote_apply_under_allocation_failure|map_full_then_grown)'
suite replica_test_errors '*/@(null_arguments_on_reads_and_cursors|open_refuses_a_newer_format|open_on_garbage_data_file_fails|open_read_only_on_a_foreign_lmdb_env_is_corrupt|bad_values|second_write_txn_is_busy|type_clash_within_one_txn|cursors_fail_after_a_write_in_their_txn)'
suite sync_test_wire '*/@(random_messages_round_trip|truncation_at_every_offset_is_corrupt|hostile_length_prefixes_in_every_position|huge_counts_are_refused_before_allocating|random_bytes_never_crash|decoder_survives_allocation_failure)'
suite oplog_test_codec '*/@(every_op_and_value_kind_round_trips|hostile_lengths_and_counts_are_corrupt|truncation_at_every_offset_is_corrupt|wrong_types_and_bad_semantics_are_corrupt)'
suite oplog_test_state_codec '*/@(hostile_and_malformed_records|truncation_at_every_offset_is_corrupt|out_of_memory_while_decoding_leaves_nothing)'
suite oplog_test_checksum '*'
suite oplog_test_check '*/@(a_sound_replica_passes|each_kind_of_damage_is_found)'
suite sync_test_vv_mesh '*'
suite replica_test_reader_vv '*'
suite replica_test_compact '*'

echo "== valgrind: fuzz corpus replay"
for prog in "$build"/fuzz/replay_*; do
  r=$(basename "$prog")
  start=$SECONDS
  if ! "${vg[@]}" --log-file="$logs/$r.%p.log" "$prog" \
      "fuzz/corpus/${r#replay_}" >"$logs/$r.out" 2>&1; then
    echo "FAIL $r" >&2
    failed=1
  fi
  echo "  $r ($((SECONDS - start))s)"
done

echo "== valgrind: converge commands"
cli=$tmp/cli
mkdir -p "$cli"
n=0
# run CODE ARGS...: one command under valgrind; its exit code must be CODE.
run() {
  local want=$1 code=0
  shift
  n=$((n + 1))
  "${vg[@]}" --log-file="$logs/cli-$n.%p.log" "$build/converge" "$@" \
    >"$logs/cli-$n.out" 2>&1 || code=$?
  if [ "$code" -ne "$want" ]; then
    echo "FAIL converge $*: exit $code, wanted $want" >&2
    failed=1
  fi
}
start=$SECONDS
run 0 init "$cli/a"
run 0 init "$cli/b"
run 0 inc "$cli/a" stock sku qty 5
run 0 set "$cli/a" stock sku name s:Pear
run 0 mvset "$cli/a" stock sku note 2.5
run 0 add "$cli/a" stock sku tags red
run 0 add "$cli/b" stock sku tags x:00ff
run 0 remove "$cli/a" stock sku tags red
run 0 sync "$cli/a" "$cli/b"
run 0 get "$cli/b" stock sku --json
run 0 keys "$cli/b" --json
run 0 log "$cli/a" --json
run 0 status "$cli/a" --json
run 0 check "$cli/a" --json
run 0 compact "$cli/a" --json
run 0 check "$cli/a"
run 0 queue "$cli/a"
run 0 del "$cli/b" stock sku
run 3 get "$cli/b" stock sku qty
run 2 inc "$cli/a" stock sku qty 1x
run 3 get "$cli/none" stock sku qty
run 0 demo "$cli/demo"
echo "  $n commands ($((SECONDS - start))s)"

echo "== valgrind: reading the logs"
# Each log is NAME.PID.log and names its parent; a test's own children
# (grandchildren of Criterion's runner) may die on purpose with replicas
# open, so the open-file check skips them.
declare -A parent
for log in "$logs"/*.log; do
  pid=${log%.log}
  parent[${pid##*.}]=$(sed -n 's/^==[0-9]*== Parent PID: //p' "$log")
done
nlogs=0
for log in "$logs"/*.log; do
  nlogs=$((nlogs + 1))
  # Every process ends with a summary; a missing one means it was lost.
  if ! grep -q "ERROR SUMMARY: 0 errors" "$log"; then
    echo "FAIL: memcheck errors or leaks in $log:" >&2
    sed -n '/Command:/p;/ERROR SUMMARY/p' "$log" >&2
    grep -E '^==[0-9]+== (Invalid|Conditional|Use of|Syscall|Mismatched|Source and destination|[0-9,]+ bytes in)' "$log" | head -20 >&2 || true
    failed=1
  fi
  # A replica left open at exit keeps its LMDB files open.
  pid=${log%.log}
  up=${parent[${pid##*.}]}
  if [ -n "$up" ] && [ -n "${parent[$up]:-}" ] &&
     [ -n "${parent[${parent[$up]}]:-}" ]; then
    continue
  fi
  if grep -E 'Open file descriptor [0-9]+: .*\.mdb( \(deleted\))?$' "$log" >&2; then
    echo "FAIL: an LMDB file was left open in $log" >&2
    failed=1
  fi
done
echo "  $nlogs processes checked"

if [ "$failed" -ne 0 ]; then
  echo "valgrind: FAILED (logs in $logs)" >&2
  exit 1
fi
rm -rf "$tmp"
echo "valgrind: no errors, nothing lost"
