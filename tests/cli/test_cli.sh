#!/usr/bin/env bash
# End-to-end test of the `converge` command: runs every command against a
# replica in a temporary directory and checks outputs and exit codes.
#
#   tests/cli/test_cli.sh path/to/converge path/to/cli_write_nan \
#       path/to/cli_write_ahead
set -u

USAGE="usage: test_cli.sh path/to/converge path/to/cli_write_nan path/to/cli_write_ahead"
BIN=${1:?$USAGE}
NAN_WRITER=${2:?$USAGE}
AHEAD_WRITER=${3:?$USAGE}
# Absolute, so that checks may run from another directory.
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
NAN_WRITER=$(cd "$(dirname "$NAN_WRITER")" && pwd)/$(basename "$NAN_WRITER")
AHEAD_WRITER=$(cd "$(dirname "$AHEAD_WRITER")" && pwd)/$(basename "$AHEAD_WRITER")
TMP=$(mktemp -d "${TMPDIR:-/tmp}/converge-cli-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
R="$TMP/r"
PASS=0
FAIL=0

ok() { PASS=$((PASS + 1)); }
bad() { FAIL=$((FAIL + 1)); echo "FAIL: $*" >&2; }

# run ARGS...: runs the binary, keeping stdout, stderr and the exit code.
run() {
    "$BIN" "$@" >"$TMP/out" 2>"$TMP/err"
    CODE=$?
}

# expect NAME CODE PATTERN ARGS...: the exit code is CODE and stdout matches
# the extended regex PATTERN ("" to skip).
expect() {
    local name=$1 code=$2 pattern=$3
    shift 3
    run "$@"
    if [ "$CODE" -ne "$code" ]; then
        bad "$name: exit $CODE, wanted $code; stderr: $(cat "$TMP/err")"
    elif [ -n "$pattern" ] && ! grep -Eq -- "$pattern" "$TMP/out"; then
        bad "$name: stdout lacks /$pattern/: $(cat "$TMP/out")"
    else
        ok
    fi
}

# expect_err NAME CODE PATTERN ARGS...: as expect, matching stderr.
expect_err() {
    local name=$1 code=$2 pattern=$3
    shift 3
    run "$@"
    if [ "$CODE" -ne "$code" ]; then
        bad "$name: exit $CODE, wanted $code"
    elif ! grep -Eq -- "$pattern" "$TMP/err"; then
        bad "$name: stderr lacks /$pattern/: $(cat "$TMP/err")"
    else
        ok
    fi
}

DOT='^[0-9a-f]{32}:[0-9]+$'

# --- help and version
expect "help" 0 "inc +DIR COLL KEY FIELD" help
expect "no args" 0 "status" 
expect "help lists queue" 0 "^  queue +DIR \[PEER_HEX\]" help
expect "version" 0 "^converge [0-9]+\.[0-9]+\.[0-9]+" --version
expect_err "unknown command" 2 "unknown command" frobnicate

# --- init
expect "init prints the id" 0 '^[0-9a-f]{32}$' init "$R"
ID=$(cat "$TMP/out")
expect_err "init twice" 1 "already holds a replica" init "$R"
expect_err "write needs init" 3 "CVG_ENOTFOUND" inc "$TMP/none" c k f
[ ! -e "$TMP/none" ] && ok || bad "a failed write created a directory"
mkdir "$TMP/empty"
expect_err "no replica in a plain dir" 3 "CVG_" inc "$TMP/empty" c k f
[ -z "$(ls "$TMP/empty")" ] && ok || bad "a failed write created a replica"

# --- counters
expect "inc prints a dot" 0 "$DOT" inc "$R" stock sku-1 qty
grep -q "^$ID:1\$" "$TMP/out" && ok || bad "first dot is not $ID:1"
expect "inc by 41" 0 "$DOT" inc "$R" stock sku-1 qty 41
expect "get the sum" 0 '^42$' get "$R" stock sku-1 qty
expect "inc negative" 0 "$DOT" inc "$R" stock sku-1 qty -50
expect "get below zero" 0 '^-8$' get "$R" stock sku-1 qty
expect_err "delta 0" 2 "DELTA" inc "$R" stock sku-1 qty 0
expect_err "delta junk" 2 "DELTA" inc "$R" stock sku-1 qty 1x
expect_err "delta range" 2 "DELTA" inc "$R" stock sku-1 qty 9223372036854775808
expect_err "too few args" 2 "usage: converge inc" inc "$R" stock

# --- registers and values
expect "set string" 0 "$DOT" set "$R" p sku-1 name "Coffee beans"
expect "get string" 0 '^"Coffee beans"$' get "$R" p sku-1 name
expect "set int" 0 "$DOT" set "$R" p sku-1 n 7
expect "get int" 0 '^7$' get "$R" p sku-1 n
expect "set double" 0 "$DOT" set "$R" p sku-1 price 2.75
expect "get double" 0 '^2\.75$' get "$R" p sku-1 price
expect "overwrite" 0 "$DOT" set "$R" p sku-1 price 3.5
expect "last writer wins" 0 '^3\.5$' get "$R" p sku-1 price
expect "set bool" 0 "$DOT" set "$R" p sku-1 hot true
expect "get bool" 0 '^true$' get "$R" p sku-1 hot
expect "set null" 0 "$DOT" set "$R" p sku-1 note null
expect "get null" 0 '^null$' get "$R" p sku-1 note
expect "set s:" 0 "$DOT" set "$R" p sku-1 code s:42
expect "get forced string" 0 '^"42"$' get "$R" p sku-1 code
expect "set x:" 0 "$DOT" set "$R" p sku-1 raw x:00ff10
expect "get bytes" 0 '^x:00ff10$' get "$R" p sku-1 raw
expect_err "int range" 2 "int64 range" set "$R" p sku-1 n 99999999999999999999
expect_err "bad hex" 2 "HEX" set "$R" p sku-1 raw x:0g
expect "mvset" 0 "$DOT" mvset "$R" p sku-1 label Coffee
expect "mvset again" 0 "$DOT" mvset "$R" p sku-1 label Beans
expect "mv siblings" 0 '^"Beans"$' get "$R" p sku-1 label
[ "$(wc -l <"$TMP/out")" -eq 1 ] && ok || bad "a local mvset kept 2 siblings"

# --- type mismatch
expect_err "type mismatch" 1 "CVG_ETYPE" set "$R" stock sku-1 qty 5
expect_err "type mismatch 2" 1 "CVG_ETYPE" inc "$R" p sku-1 name

# --- sets
expect "add a" 0 "$DOT" add "$R" p sku-1 tags hot
expect "add b" 0 "$DOT" add "$R" p sku-1 tags drink
expect "add c" 0 "$DOT" add "$R" p sku-1 tags 3
expect "remove" 0 "$DOT" remove "$R" p sku-1 tags drink
expect "set has hot" 0 '^"hot"$' get "$R" p sku-1 tags
grep -q '"drink"' "$TMP/out" && bad "removed element still there" || ok
grep -q '^3$' "$TMP/out" && ok || bad "integer element missing"
expect_err "remove missing" 3 "CVG_ENOTFOUND" remove "$R" p sku-1 tags nope

# --- records, keys, JSON
expect "get record" 0 $'^tags\tset\t\\{' get "$R" p sku-1
expect "get record has name" 0 $'^name\tregister\t"Coffee beans"$' \
    get "$R" p sku-1
expect "get --json" 0 '"type":"counter","value":-8' get "$R" stock sku-1 --json
python3 -c 'import json,sys; json.load(sys.stdin)' <"$TMP/out" && ok ||
    bad "get --json is not JSON"
expect "record --json" 0 '"fields":\[' get "$R" p sku-1 --json
python3 -c 'import json, sys; assert len(json.load(sys.stdin)["fields"]) >= 8' \
    <"$TMP/out" && ok || bad "record --json is not the record"
expect "keys" 0 '^stock/sku-1$' keys "$R"
grep -q '^p/sku-1$' "$TMP/out" && ok || bad "keys lacks p/sku-1"
expect "keys of one collection" 0 '^p/sku-1$' keys "$R" p
grep -q stock "$TMP/out" && bad "keys p listed another collection" || ok

# --- delete
expect "del" 0 "$DOT" del "$R" p sku-1
expect_err "get deleted record" 3 "CVG_ENOTFOUND" get "$R" p sku-1
expect_err "get deleted field" 3 "CVG_ENOTFOUND" get "$R" p sku-1 name
expect_err "del again" 3 "CVG_ENOTFOUND" del "$R" p sku-1
expect "write after delete" 0 "$DOT" set "$R" p sku-1 name Tea
expect "it survives" 0 '^"Tea"$' get "$R" p sku-1 name

# --- log
LINE1='^1  [0-9a-f]{8}:1  [0-9]+\.[0-9]+  counter\.add +stock/sku-1/qty  \+1  '
expect "log" 0 "${LINE1}observed=0\$" log "$R"
grep -Eq 'record\.delete +p/sku-1  -  observed=[1-9]' "$TMP/out" && ok ||
    bad "log lacks the delete"
expect "log --json" 0 '"kind":"counter.add"' log "$R" --json
N=$(wc -l <"$TMP/out")
python3 -c 'import json,sys;[json.loads(l) for l in sys.stdin]' <"$TMP/out" &&
    ok || bad "log --json lines are not JSON"
python3 -c '
import json, sys
ops = [json.loads(l) for l in sys.stdin]
assert [o["lsn"] for o in ops] == list(range(1, len(ops) + 1))
raw = [o for o in ops if o.get("field") == "raw"][0]
assert raw["value"] == {"hex": "00ff10"}, raw
' <"$TMP/out" && ok || bad "log --json content"
expect "log --from" 0 '^\{"lsn":3,' log "$R" --json --from 3
[ "$(wc -l <"$TMP/out")" -eq $((N - 2)) ] && ok || bad "--from 3 skipped wrong"
expect_err "log --from 0" 2 "LSN" log "$R" --from 0
expect_err "log bad option" 2 "unknown option" log "$R" --jsn

# --- escaping: control bytes and invalid UTF-8 still give JSON lines
expect "odd string" 0 "$DOT" set "$R" odd k f $'a"b\\c\nd\x01\xff\xc3\xa9'
expect "log --json odd" 0 "" log "$R" --json
python3 -c '
import json, sys
last = [json.loads(l) for l in sys.stdin][-1]
assert last["value"] == "a\"b\\c\nd\x01\ufffd\u00e9", repr(last["value"])
' <"$TMP/out" && ok || bad "string escaping"

# --- status
expect "status" 0 "^replica +$ID$" status "$R"
OPS=$(wc -l <<<"$("$BIN" log "$R")")
grep -Eq "^ops +$OPS$" "$TMP/out" && ok || bad "status op count is not $OPS"
grep -Eq "^  $ID:$OPS$" "$TMP/out" && ok || bad "status version vector"
expect "status --json" 0 "\"op_count\":$OPS" status "$R" --json
python3 -c 'import json, sys; assert json.load(sys.stdin)["version_vector"]' \
    <"$TMP/out" && ok || bad "status --json"

# --- sync: two replicas change one counter apart, then meet
"$BIN" init "$TMP/sa" >/dev/null && "$BIN" init "$TMP/sb" >/dev/null && ok || bad "init sa sb"
"$BIN" inc "$TMP/sa" stock sku-9 qty -3 >/dev/null && ok || bad "inc sa"
"$BIN" inc "$TMP/sb" stock sku-9 qty -2 >/dev/null && ok || bad "inc sb"
expect "sync" 0 "1 ops applied" sync "$TMP/sa" "$TMP/sb"
expect "sync a" 0 '^-5$' get "$TMP/sa" stock sku-9 qty
expect "sync b" 0 '^-5$' get "$TMP/sb" stock sku-9 qty
expect "sync again moves nothing" 0 "0 ops applied" sync "$TMP/sa" "$TMP/sb"
expect_err "sync with itself" 2 "same replica" sync "$TMP/sa" "$TMP/sa"

# --- a merged counter past INT64_MAX reads as an overflow, not a wrapped value
"$BIN" inc "$TMP/sa" stock big qty 9223372036854775807 >/dev/null && ok || bad "inc max"
"$BIN" inc "$TMP/sb" stock big qty 1 >/dev/null && ok || bad "inc 1"
expect "sync past the range" 0 "1 ops applied" sync "$TMP/sa" "$TMP/sb"
expect "get an overflow" 0 '^\(overflow: above INT64_MAX\)$' get "$TMP/sb" stock big qty
expect "get an overflow --json" 0 '"value":null,"overflow":"above INT64_MAX"' \
    get "$TMP/sa" stock big --json
python3 -c 'import json,sys; json.load(sys.stdin)' <"$TMP/out" && ok ||
    bad "get --json of an overflow is not JSON"

# --- sync status and queue: where A's own ops stand with its peer B
expect "no peers yet" 0 "^sync: no peers yet$" status "$R"
expect "queue without peers" 0 "^sync: no peers yet$" queue "$R"
QA=$("$BIN" init "$TMP/qa") && QB=$("$BIN" init "$TMP/qb") && ok ||
    bad "init qa qb"
for f in a b c; do "$BIN" inc "$TMP/qa" stock sku-1 "$f" >/dev/null; done
"$BIN" set "$TMP/qb" p sku-1 name Tea >/dev/null && ok || bad "set qb"
expect "sync qa qb" 0 "3 ops sent" sync "$TMP/qa" "$TMP/qb"
# A's op count: the ops A made itself (its log also holds B's now).
OWN=$("$BIN" log "$TMP/qa" --json | python3 -c '
import json, sys
print(sum(json.loads(l)["dot"]["origin"] == sys.argv[1] for l in sys.stdin))
' "$QA")
[ "$OWN" = 3 ] && ok || bad "qa made 3 ops, log says $OWN"
expect "status lists the peer" 0 "^  peer +$QB$" status "$TMP/qa"
grep -Eq '^  state +synced$' "$TMP/out" && ok || bad "peer not synced"
grep -Eq "^  committed +$OWN$" "$TMP/out" && ok ||
    bad "committed is not $OWN: $(cat "$TMP/out")"
grep -Eq '^  pending +0$' "$TMP/out" && ok || bad "pending after sync"
grep -Eq '^  last sync +[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$' "$TMP/out" &&
    ok || bad "last sync is not an ISO-8601 time"
grep -Eq '^  last error +none$' "$TMP/out" && ok || bad "last error"
QB_KEY=$("$BIN" id "$TMP/qb" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["public_key"])')
grep -Eq "^  key +$QB_KEY$" "$TMP/out" && ok || bad "status key is not B's: $(cat "$TMP/out")"
grep -Eq '^  address +unknown$' "$TMP/out" && ok || bad "an address for a sync in one process"
grep -Eq '^  last contact +[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z \([0-9]+ s ago\)$' "$TMP/out" &&
    ok || bad "last contact is not a time and how long ago: $(cat "$TMP/out")"
# The order of a peer's block: who, where, when, then the counts.
[ "$(sed -n 's/^  \([a-z][a-z ]*[a-z]\)  .*/\1/p' "$TMP/out" | head -5 | tr '\n' ,)" = \
  "peer,key,address,last contact,state," ] && ok || bad "peer block order: $(cat "$TMP/out")"
expect "B sees A" 0 "^  committed +1$" status "$TMP/qb"
"$BIN" inc "$TMP/qa" stock sku-1 d >/dev/null && ok || bad "inc qa"
expect "queue: 1 pending" 0 '^pending +1$' queue "$TMP/qa"
grep -Eq "^pending seqs +$((OWN + 1))\.\.$((OWN + 1))$" "$TMP/out" && ok ||
    bad "pending seqs: $(cat "$TMP/out")"
grep -Eq '^state +offline$' "$TMP/out" && ok || bad "state after a write"
grep -Eq '^failed ops +none$' "$TMP/out" && ok || bad "failed ops"
expect "queue of one peer" 0 "^peer +$QB$" queue "$TMP/qa" "$QB"
expect "queue --ops lists the op" 0 \
    "^  pending +[0-9]+  [0-9a-f]+:$((OWN + 1))  .*counter\.add +stock/sku-1/d  \+1" \
    queue "$TMP/qa" "$QB" --ops
expect "queue --ops --json" 0 '"queued_ops":\[' queue "$TMP/qa" --ops --json
python3 -c '
import json, sys
q = json.load(sys.stdin)
ops = q["peers"][0]["queued_ops"]
assert [o["state"] for o in ops] == ["pending"], ops
assert ops[0]["op"]["dot"]["seq"] == int(sys.argv[1]) and ops[0]["code"] is None
' "$((OWN + 1))" <"$TMP/out" && ok || bad "queue --ops --json: $(cat "$TMP/out")"
expect "status --json peers" 0 '"peers":\[' status "$TMP/qa" --json
python3 -c '
import json, sys
s = json.load(sys.stdin)
p, = s["peers"]
assert p["peer"] == sys.argv[1] and p["state"] == "offline", p
assert (p["pending"], p["committed"], p["failed"]) == (1, 3, 0), p
assert p["last_error"] is None and p["last_sync"].endswith("Z"), p
assert p["key"] == sys.argv[2] and p["address"] is None, p
assert p["last_contact"].endswith("Z") and p["last_contact_ms"] > 0, p
' "$QB" "$QB_KEY" <"$TMP/out" && ok || bad "status --json peers: $(cat "$TMP/out")"
expect "status --json no peers" 0 '"peers":\[\]' status "$R" --json
python3 -c 'import json, sys; assert json.load(sys.stdin)["peers"] == []' \
    <"$TMP/out" && ok || bad "status --json without peers"
expect "queue --json" 0 '"pending_seqs":\{"first":4,"last":4\}' \
    queue "$TMP/qa" --json
python3 -c '
import json, sys
q = json.load(sys.stdin)
assert [p["pending"] for p in q["peers"]] == [1], q
assert q["peers"][0]["failed_ops"] == [], q
' <"$TMP/out" && ok || bad "queue --json: $(cat "$TMP/out")"
expect "queue --retry" 0 '^retried +0 op\(s\) pending again$' \
    queue "$TMP/qa" "$QB" --retry
expect_err "queue bad hex" 2 "PEER_HEX" queue "$TMP/qa" xyz
expect_err "queue short hex" 2 "32 hex digits" queue "$TMP/qa" "${QB:1}"
expect_err "queue unknown peer" 1 "never synced" queue "$TMP/qa" "$ID"
expect_err "queue own id" 1 "own id" queue "$TMP/qa" "$QA"
expect_err "queue too many" 2 "too many" queue "$TMP/qa" "$QB" "$QB"
expect_err "queue bad option" 2 "unknown option" queue "$TMP/qa" --retyr
expect "sync qa qb again" 0 "1 ops sent" sync "$TMP/qa" "$TMP/qb"
expect "forget" 0 "^forgot $QB" forget "$TMP/qa" "$QB"
expect "forgotten: never synced" 1 "" queue "$TMP/qa" "$QB"
expect_err "forget bad hex" 2 "32 hex digits" forget "$TMP/qa" xyz
expect "sync after forget" 0 "ops applied" sync "$TMP/qa" "$TMP/qb"
expect "queue empty again" 0 '^pending seqs +none$' queue "$TMP/qa"
grep -Eq '^state +synced$' "$TMP/out" && ok || bad "synced again"
# A's op 5 is fine, 6 is ten minutes ahead (7 is not: A's clock, past its
# bound, resumes from the wall). B, opened to refuse ops ahead, refuses the
# page at op 6, and keeps none of it. 6 is failed with the code; 5 and 7
# are pending around it.
"$BIN" inc "$TMP/qa" stock sku-1 d >/dev/null && ok || bad "inc qa"
"$AHEAD_WRITER" "$TMP/qa" && ok || bad "the clock-ahead writer failed"
"$BIN" inc "$TMP/qa" stock sku-1 d >/dev/null && ok || bad "inc qa"
"$AHEAD_WRITER" --sync-strict "$TMP/qa" "$TMP/qb" &&
    bad "a sync refused by the peer succeeded" || ok
expect "queue: a refused op" 0 '^  6  CVG_ECLOCK  ' queue "$TMP/qa" "$QB"
grep -Eq '^pending seqs +5\.\.5, 7\.\.7$' "$TMP/out" && ok ||
    bad "pending seqs around a refused op: $(cat "$TMP/out")"
grep -Eq '^state +error$' "$TMP/out" && ok || bad "state after a refusal"
expect "queue --json: a refused op" 0 '"pending_ranges":' \
    queue "$TMP/qa" "$QB" --json
python3 -c '
import json, sys
p, = json.load(sys.stdin)["peers"]
assert [(f["seq"], f["code"]) for f in p["failed_ops"]] == [(6, "CVG_ECLOCK")], p
assert p["pending_seqs"] == {"first": 5, "last": 7}, p
assert p["pending_ranges"] == [{"first": 5, "last": 5},
                               {"first": 7, "last": 7}], p
assert (p["pending"], p["failed"], p["committed"]) == (2, 1, 4), p
' <"$TMP/out" && ok || bad "queue --json, refused: $(cat "$TMP/out")"
expect "queue --ops: failed among pending" 0 \
    "^  failed +[0-9]+  [0-9a-f]+:6  " queue "$TMP/qa" "$QB" --ops
expect "queue --retry: the refused op" 0 '^retried +1 op\(s\) pending again$' \
    queue "$TMP/qa" "$QB" --retry
grep -Eq '^pending seqs +5\.\.7$' "$TMP/out" && ok ||
    bad "pending after a retry: $(cat "$TMP/out")"
# Opened as usual, B takes the op ahead (its clock does not follow it).
expect "sync: an op ahead is taken" 0 "3 ops sent" sync "$TMP/qa" "$TMP/qb"
expect "queue: synced" 0 '^state +synced$' queue "$TMP/qa" "$QB"

# --- demo
expect "demo" 0 "== 10\. Status ==" demo "$TMP/demo"
expect "demo converges" 0 "converged: all three replicas agree" demo "$TMP/demo2"
grep -q "counter.add" "$TMP/out" && ok || bad "demo shows no log"
grep -q "== 11\. Over the network" "$TMP/out" && ok || bad "demo has no network scene"
[ "$(grep -c 'products/sku-9/price = 2.95' "$TMP/out")" = 2 ] && ok || bad "demo's tills disagree over the network"
[ "$(grep -c 'stock/sku-9/qty = -7' "$TMP/out")" = 2 ] && ok || bad "demo's stock over the network"
expect "demo replica readable" 0 '^18$' get "$TMP/demo/till-1" stock sku-1 qty
expect_err "demo refuses to reuse" 1 "already exists" demo "$TMP/demo"
TMPDIR="$TMP" "$BIN" demo >"$TMP/out" 2>&1 && ok || bad "demo in a temp dir"
ls -d "$TMP"/converge-demo-*/till-1 >/dev/null && ok ||
    bad "demo made no temp dir"

# --- help per command, and arguments that look like options
expect "help init" 0 "^usage: converge init DIR" help init
expect "init --help" 0 "^usage: converge init DIR" init --help
[ ! -e --help ] && ok || bad "init --help made a directory"
expect "set -h" 0 "value-file" set -h
expect_err "help of nothing" 2 "no command" help frobnicate
expect_err "a dash dir" 2 "put -- before" init -x
[ ! -e -x ] && ok || bad "init -x made a directory"
( cd "$TMP" && "$BIN" init -- -dashdir >/dev/null 2>&1 ) && ok ||
    bad "init -- -dashdir"
[ -d "$TMP/-dashdir" ] && ok || bad "no -dashdir after --"
expect "negative delta" 0 "$DOT" inc "$R" n k f -3
expect "negative delta read" 0 '^-3$' get "$R" n k f
expect "dash value after --" 0 "$DOT" set "$R" n k s -- -5x
expect "dash value read" 0 '^"-5x"$' get "$R" n k s

# --- values: numbers only as JSON writes them
expect "007 is text" 0 "$DOT" set "$R" v k a 007
expect "007 reads as text" 0 '^"007"$' get "$R" v k a
expect "+5 is text" 0 "$DOT" set "$R" v k b +5
expect "+5 reads as text" 0 '^"\+5"$' get "$R" v k b
expect "-0 is text" 0 "$DOT" set "$R" v k c -- -0
expect "-0 reads as text" 0 '^"-0"$' get "$R" v k c
expect "1e3 is a double" 0 "$DOT" set "$R" v k d 1e3
expect "1e3 reads as a double" 0 '^1000\.0$' get "$R" v k d
expect ".5 is text" 0 "$DOT" set "$R" v k e .5
expect ".5 reads as text" 0 '^"\.5"$' get "$R" v k e
expect "42 is an integer" 0 "$DOT" set "$R" v k f 42
expect "42 reads as one" 0 '^42$' get "$R" v k f
expect_err "int64 overflow" 2 "int64 range" set "$R" v k g 9223372036854775808

# --- not found has its own exit code
expect_err "get missing field" 3 "CVG_ENOTFOUND" get "$R" v k nope
expect_err "get missing replica" 3 "CVG_ENOTFOUND" get "$TMP/nowhere" v k f

# --- NaN and infinity in JSON are not null
if "$NAN_WRITER" "$R"; then
    expect "nan json" 0 '"value":\{"double":"NaN"\}' get "$R" v k nan --json
    expect "-inf json" 0 '"value":\{"double":"-Infinity"\}' get "$R" v k inf --json
    expect "nan text" 0 '^nan$' get "$R" v k nan
else
    bad "the NaN writer failed"
fi

# --- a value from a file or stdin, longer than an argument may be
head -c 300000 /dev/zero | tr '\0' 'a' >"$TMP/big.txt"
expect "value-file" 0 "$DOT" set "$R" v k big --value-file "$TMP/big.txt"
run get "$R" v k big --json
python3 -c '
import json, sys
v = json.load(sys.stdin)["value"]
assert v == "a" * 300000, len(v)
' <"$TMP/out" && ok || bad "value-file read back"
printf 'x:00ff\n' | "$BIN" add "$R" v k set --value-file - >/dev/null && ok ||
    bad "value-file from stdin"
expect "stdin value read" 0 'x:00ff' get "$R" v k set
printf 'a\0b' >"$TMP/bin"
expect "bytes-file" 0 "$DOT" set "$R" v k bin --bytes-file "$TMP/bin"
expect "bytes-file read" 0 '^x:610062$' get "$R" v k bin
expect_err "value-file with a NUL" 2 "bytes-file" set "$R" v k bin --value-file "$TMP/bin"
expect_err "value-file and a value" 2 "expected" set "$R" v k bin 5 --value-file "$TMP/bin"
head -c 1048577 /dev/zero >"$TMP/huge"
expect_err "bytes-file too long" 1 "CVG_ETOOBIG" set "$R" v k huge --bytes-file "$TMP/huge"

# --- a field that holds several types shows each
"$BIN" init "$TMP/ta" >/dev/null && "$BIN" init "$TMP/tb" >/dev/null
"$BIN" inc "$TMP/ta" c k f 5 >/dev/null
"$BIN" set "$TMP/tb" c k f hello >/dev/null
"$BIN" sync "$TMP/ta" "$TMP/tb" >/dev/null
expect_err "two types warned" 0 "holds 2 types" get "$TMP/ta" c k f
grep -Eq '^counter	5$' "$TMP/out" && grep -Eq '^register	"hello"$' "$TMP/out" &&
    ok || bad "two types shown: $(cat "$TMP/out")"
run get "$TMP/ta" c k f --json
python3 -c '
import json, sys
o = json.load(sys.stdin)
assert sorted(t["type"] for t in o["types"]) == ["counter", "register"], o
' <"$TMP/out" && ok || bad "two types in json: $(cat "$TMP/out")"

# --- keys: names with '/' stay unambiguous
"$BIN" inc "$R" 'a/b' c f >/dev/null
"$BIN" inc "$R" a 'b/c' f >/dev/null
run keys "$R"
grep -Fxq 'a\/b/c' "$TMP/out" && grep -Fxq 'a/b\/c' "$TMP/out" && ok ||
    bad "keys escape the separator: $(cat "$TMP/out")"

# --- identities
expect "id" 0 '^public key  [0-9a-f]{64}$' id "$R"
grep -Eq '^origin      '"$ID"'$' "$TMP/out" && ok || bad "id's origin is init's"
expect "id --json" 0 '"public_key":"[0-9a-f]{64}"' id "$R" --json
[ "$(stat -c %a "$R/identity.key")" = 600 ] && ok || bad "identity.key mode"
expect "keygen" 0 '^public key  [0-9a-f]{64}$' keygen "$TMP/k1"
KPK=$(sed -n 's/^public key  //p' "$TMP/out")
KID=$(sed -n 's/^origin      //p' "$TMP/out")
[ "$(stat -c %a "$TMP/k1")" = 600 ] && ok || bad "keygen file mode"
expect_err "keygen never over a file" 1 "cannot write" keygen "$TMP/k1"
expect "init --key" 0 "^$KID\$" init "$TMP/withkey" --key "$TMP/k1"
[ ! -e "$TMP/withkey/identity.key" ] && ok || bad "init --key copied the key"
expect "id of init --key" 0 "^public key  $KPK\$" id "$TMP/withkey"
printf 'short' >"$TMP/badkey"
expect_err "init --key of a bad file" 1 "not a secret key" init "$TMP/withbad" --key "$TMP/badkey"

# --- a copied directory writes under a new origin: no fork, LWW everywhere
CA="$TMP/cpA"; CA2="$TMP/cpA2"; CS="$TMP/cpS"
run init "$CA"; run init "$CS"
run set "$CA" c k f one
cp -r "$CA" "$CA2"
run set "$CA" c k f two
run set "$CA2" c k f TWO-different
expect "sync the original" 0 "" sync "$CA" "$CS"
expect "sync the copy" 0 "" sync "$CA2" "$CS"
expect "sync the original again" 0 "" sync "$CA" "$CS"
expect "sync original and copy" 0 "" sync "$CA" "$CA2"
for d in "$CS" "$CA" "$CA2"; do
    expect "copy converged: $(basename "$d")" 0 '^"TWO-different"$' get "$d" c k f
done
expect "status tells of the copy" 0 '^copied ' status "$CA2"
expect "status --json lists the old origin" 0 '"previous_origins":\[\{' status "$CA2" --json
expect "the original was not copied" 0 '"previous_origins":\[\]' status "$CA" --json

# --- serve and sync over TCP on loopback: a free port (0), read back from
# the startup line; two clients converge through the server; SIGTERM ends it
NS="$TMP/netS"; N1="$TMP/net1"; N2="$TMP/net2"
run init "$NS"; run init "$N1"; run init "$N2"
run inc "$N1" c k n 2
run inc "$N2" c k n 3
timeout 60 "$BIN" serve "$NS" --listen 127.0.0.1:0 2>"$TMP/serve.err" &
SPID=$!
PORT=
for _ in $(seq 100); do
    PORT=$(sed -n 's/.* on 127\.0\.0\.1:\([0-9]*\); any key may connect$/\1/p' "$TMP/serve.err")
    [ -n "$PORT" ] && break
    sleep 0.1
done
if [ -z "$PORT" ]; then
    bad "serve printed no port: $(cat "$TMP/serve.err")"
else
    ok
    URL="tcp://127.0.0.1:$PORT"
    expect "net sync 1" 0 "ops sent" sync "$N1" "$URL"
    expect "net sync 2" 0 "ops sent" sync "$N2" "$URL"
    expect "net sync 1 again" 0 "" sync "$N1" "$URL"
    NS_KEY=$("$BIN" id "$NS" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["public_key"])')
    expect "net status: the server's key" 0 "^  key +$NS_KEY$" status "$N1"
    grep -Eq "^  address +127\.0\.0\.1:$PORT$" "$TMP/out" && ok ||
        bad "net status: not the server's address: $(cat "$TMP/out")"
    grep -Eq '^  last contact +[0-9T:.Z-]+ \([0-9] s ago\)$' "$TMP/out" && ok ||
        bad "net status: no recent contact: $(cat "$TMP/out")"
    grep -Eq '^  state +synced$' "$TMP/out" && ok || bad "net status: not synced"
    expect "net status --json" 0 '"address":"127\.0\.0\.1:' status "$N1" --json
    python3 -c '
import json, sys, time
p, = json.load(sys.stdin)["peers"]
assert p["key"] == sys.argv[1] and p["address"] == "127.0.0.1:" + sys.argv[2], p
assert abs(time.time() * 1000 - p["last_contact_ms"]) < 60000, p
assert p["state"] == "synced", p
' "$NS_KEY" "$PORT" <"$TMP/out" && ok || bad "net status --json: $(cat "$TMP/out")"
    expect "net converged 1" 0 '^5$' get "$N1" c k n
    expect "net converged 2" 0 '^5$' get "$N2" c k n
    expect_err "net sync --pin of another key" 1 "EKEY" sync "$N1" "$URL" --pin "$(printf '0%.0s' $(seq 64))"
    expect_err "net sync --pin not hex" 2 "not 64 hex" sync "$N1" "$URL" --pin xyz
fi
kill -TERM "$SPID" 2>/dev/null
wait "$SPID"
SCODE=$?
[ "$SCODE" -eq 0 ] && ok || bad "serve exit $SCODE after SIGTERM: $(cat "$TMP/serve.err")"
expect "server has both" 0 '^5$' get "$NS" c k n
# The server knows each client's key, and where it connected from.
N1_ID=$("$BIN" id "$N1" --json | python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["origin"], d["public_key"])')
expect "server status --json" 0 '"peers":\[' status "$NS" --json
python3 -c '
import json, sys
origin, key = sys.argv[1].split()
peers = json.load(sys.stdin)["peers"]
assert len(peers) == 2, peers
p, = [p for p in peers if p["peer"] == origin]
assert p["key"] == key and p["state"] == "synced", p
host, port = p["address"].rsplit(":", 1)
assert host == "127.0.0.1" and 0 < int(port) < 65536, p
assert p["last_contact_ms"] >= p["last_attempt_ms"] > 0, p
' "$N1_ID" <"$TMP/out" && ok || bad "server status --json: $(cat "$TMP/out")"
expect_err "serve needs --listen" 2 "expected DIR --listen" serve "$NS"
expect_err "serve on a bad address" 1 "EINVAL|EIO" serve "$NS" --listen nowhere
run id "$N1"
printf '# one key\n%s\n' "$(sed -n 's/^public key  //p' "$TMP/out")" >"$TMP/allow"
timeout 60 "$BIN" serve "$NS" --listen 127.0.0.1:0 --allow "$TMP/allow" 2>"$TMP/serve.err" &
SPID=$!
PORT=
for _ in $(seq 100); do
    PORT=$(sed -n 's/.* on 127\.0\.0\.1:\([0-9]*\); only the listed keys may connect$/\1/p' "$TMP/serve.err")
    [ -n "$PORT" ] && break
    sleep 0.1
done
[ -n "$PORT" ] && ok || bad "serve --allow printed no port: $(cat "$TMP/serve.err")"
expect "allowed client syncs" 0 "" sync "$N1" "tcp://127.0.0.1:$PORT"
expect_err "unlisted client refused" 1 "EPEER" sync "$N2" "tcp://127.0.0.1:$PORT"
kill -TERM "$SPID" 2>/dev/null
wait "$SPID"
SCODE=$?
[ "$SCODE" -eq 0 ] && ok || bad "serve --allow exit $SCODE after SIGTERM: $(cat "$TMP/serve.err")"

# --- serve --max-clients 1: a connection that says nothing holds the one
# place, so a sync is answered BUSY (exit 1, with the wait); once that
# connection closes, the sync goes through
timeout 60 "$BIN" serve "$NS" --listen 127.0.0.1:0 --max-clients 1 --busy-retry 1234 2>"$TMP/serve.err" &
SPID=$!
PORT=
for _ in $(seq 100); do
    PORT=$(sed -n 's/.* on 127\.0\.0\.1:\([0-9]*\); any key may connect$/\1/p' "$TMP/serve.err")
    [ -n "$PORT" ] && break
    sleep 0.1
done
if [ -z "$PORT" ]; then
    bad "serve --max-clients printed no port: $(cat "$TMP/serve.err")"
else
    ok
    exec 3<>"/dev/tcp/127.0.0.1/$PORT"
    sleep 0.3 # the server accepts it first
    expect_err "busy server: sync told to retry" 1 \
        "CVG_EAGAIN.*tcp://127\.0\.0\.1:$PORT is busy: retry after 1234 ms" \
        sync "$N2" "tcp://127.0.0.1:$PORT"
    exec 3<&-
    BCODE=1
    for _ in $(seq 50); do
        "$BIN" sync "$N2" "tcp://127.0.0.1:$PORT" >/dev/null 2>&1 && { BCODE=0; break; }
        sleep 0.1
    done
    [ "$BCODE" -eq 0 ] && ok || bad "no sync once the busy server had a free place"
fi
kill -TERM "$SPID" 2>/dev/null
wait "$SPID"
SCODE=$?
[ "$SCODE" -eq 0 ] && ok || bad "serve --max-clients exit $SCODE after SIGTERM: $(cat "$TMP/serve.err")"
expect_err "serve --max-clients 0" 2 "not a number" serve "$NS" --listen 127.0.0.1:0 --max-clients 0
expect_err "serve --busy-retry x" 2 "not a number of ms" serve "$NS" --listen 127.0.0.1:0 --busy-retry x

# --- connect: the syncer in the foreground for a bounded run (--for); a
# write on the server side made while it runs reaches the client, and the
# client's reaches the server; with the server gone, OFFLINE and exit 1
NC="$TMP/netC"
run init "$NC"
run inc "$NC" c mine n 6
timeout 60 "$BIN" serve "$NS" --listen 127.0.0.1:0 2>"$TMP/serve.err" &
SPID=$!
PORT=
for _ in $(seq 100); do
    PORT=$(sed -n 's/.* on 127\.0\.0\.1:\([0-9]*\); any key may connect$/\1/p' "$TMP/serve.err")
    [ -n "$PORT" ] && break
    sleep 0.1
done
[ -n "$PORT" ] && ok || bad "serve for connect printed no port: $(cat "$TMP/serve.err")"
timeout 30 "$BIN" connect "$NC" "tcp://127.0.0.1:$PORT" --interval 200 --for 3 \
    >"$TMP/connect.out" 2>"$TMP/connect.err" &
CPID=$!
for _ in $(seq 100); do
    grep -q ' SYNCED ' "$TMP/connect.out" && break
    sleep 0.05
done
grep -q ' SYNCED ' "$TMP/connect.out" && ok || bad "connect: no first round: $(cat "$TMP/connect.out" "$TMP/connect.err")"
run inc "$NS" c theirs n 4
wait "$CPID"
CCODE=$?
[ "$CCODE" -eq 0 ] && ok || bad "connect exit $CCODE: $(cat "$TMP/connect.out" "$TMP/connect.err")"
[ "$(grep -c ' SYNCED ops in [1-9]' "$TMP/connect.out")" -ge 2 ] && ok ||
    bad "connect: not two rounds that took ops: $(cat "$TMP/connect.out")"
grep -Eq '^[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3} CONNECTING$' "$TMP/connect.out" && ok ||
    bad "connect: no CONNECTING line: $(cat "$TMP/connect.out")"
expect "connect: the server's write reached the client" 0 '^4$' get "$NC" c theirs n
kill -TERM "$SPID" 2>/dev/null
wait "$SPID"
expect "connect: the client's write reached the server" 0 '^6$' get "$NS" c mine n
expect "connect with the server gone" 1 ' OFFLINE +CVG_EIO: cannot connect' \
    connect "$NC" "tcp://127.0.0.1:$PORT" --for 1
expect_err "connect: a bad url" 2 "not tcp://HOST:PORT" connect "$NC" http://x:1
expect_err "connect: a bad --for" 2 "is not a number of seconds" connect "$NC" "tcp://127.0.0.1:$PORT" --for 0

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
