/* Crash safety: a child process commits durable transactions and reports
 * each one on a pipe as soon as its commit returns; the parent kills it with
 * SIGKILL at a random moment (often inside a commit) and checks that every
 * acknowledged write survived, that the log is a gap-free prefix, and that
 * the replica keeps working. A second test kills readers that hold read
 * transactions, far more of them than LMDB has reader slots, and checks that
 * reopening clears their slots so nothing fills up or hangs.
 *
 * The children never return into Criterion: they leave with _exit() or die
 * by SIGKILL, so no Criterion (or sanitizer) teardown runs in them. No
 * replica is open in the parent while it forks (converge.h forbids it). */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "digest.h"
#include "replica/replica_int.h"
#include "testutil.h"

#define DEFAULT_RUNS 100
#define MAX_ACKS 50      /* kill after 1..MAX_ACKS acknowledged commits */
#define READER_KILLS 200 /* more than LMDB's 126 reader slots */
#define READER_TXNS 2    /* read transactions each reader holds */
#define PIPE_TIMEOUT_MS 30000

/* The child's transaction: ops 3k-2, 3k-1, 3k of the log are txn k. */
static const cvg_key HITS = {"crash", "k", "hits"}; /* counter, +1 */
static const cvg_key LAST = {"crash", "k", "last"}; /* register: seq */
static const cvg_key SEEN = {"crash", "k", "seen"}; /* set: add seq */

/* The reader test: a writer child and the parent count on two keys. */
static const cvg_key WCOUNT = {"crash", "w", "n"};
static const cvg_key PCOUNT = {"crash", "p", "n"};

/* "run 3 seed 0x...: replay with ..." for every assertion of a run. */
static char ctx[512];

/* ---- Children: these never return ---------------------------------------- */

/* A child's way out on an error: say why on stderr, then _exit() so no
 * Criterion or atexit handler of the test process runs here. */
static _Noreturn void
child_fail(const char *what, int rc, int code)
{
    fprintf(stderr, "crash child %ld: %s: %s\n", (long)getpid(), what,
            cvg_errname(rc));
    _exit(code);
}

/* Commit txns forever, acknowledging each on @p ack_fd after its commit
 * returned: the dot seq of the txn's counter add. */
static _Noreturn void
writer_child(const char *dir, int ack_fd)
{
    cvg_replica *r = NULL;
    int rc = cvg_replica_open(dir, NULL, &r);
    if (rc != CVG_OK) {
        child_fail("open", rc, 10);
    }
    /* A checkpoint of the state written behind the log every few commits
     * (src/oplog/journal.c), most spread over three commits, some in one
     * when values pile up: the kills land in all of them. */
    r->store.ov_max_values = 8;
    r->store.ckpt_slices = 3;
    r->store.direct_max = 0;
    for (;;) {
        cvg_txn *t = NULL;
        cvg_dot d;
        rc = cvg_txn_begin(r, 0, &t);
        if (rc != CVG_OK) {
            child_fail("begin", rc, 11);
        }
        rc = cvg_counter_add(t, &HITS, 1, &d);
        if (rc != CVG_OK) {
            child_fail("counter add", rc, 12);
        }
        cvg_value v = cvg_value_int((int64_t)d.seq);
        rc = cvg_register_set(t, &LAST, &v, NULL);
        if (rc != CVG_OK) {
            child_fail("register set", rc, 13);
        }
        rc = cvg_set_add(t, &SEEN, &v, NULL);
        if (rc != CVG_OK) {
            child_fail("set add", rc, 14);
        }
        rc = cvg_txn_commit(t);
        if (rc != CVG_OK) {
            child_fail("commit", rc, 15);
        }
        /* 8 bytes: one atomic pipe write, so the parent never sees half. */
        uint64_t seq = d.seq;
        if (write(ack_fd, &seq, sizeof seq) != (ssize_t)sizeof seq) {
            _exit(16);
        }
    }
}

/* Add 1 to @p key in one durable txn; what the reader test's writers do. */
static int
count_once(cvg_replica *r, const cvg_key *key)
{
    cvg_txn *t = NULL;
    int rc = cvg_txn_begin(r, 0, &t);
    if (rc != CVG_OK) {
        return rc;
    }
    rc = cvg_counter_add(t, key, 1, NULL);
    if (rc != CVG_OK) {
        cvg_txn_abort(t);
        return rc;
    }
    return cvg_txn_commit(t);
}

/* Keep the replica open and commit small txns until killed, pausing a
 * little between them so the parent's writer gets the lock too. Being open
 * all along, it stops LMDB from resetting the reader table, as the first
 * process to open an environment does: stale slots must be cleared by
 * reader checks, not by that reset. Leaves when @p parent is gone. */
static _Noreturn void
busy_writer_child(const char *dir, pid_t parent)
{
    cvg_replica *r = NULL;
    int rc = cvg_replica_open(dir, NULL, &r);
    if (rc != CVG_OK) {
        child_fail("open", rc, 20);
    }
    while (getppid() == parent) {
        rc = count_once(r, &WCOUNT);
        if (rc != CVG_OK) {
            child_fail("writer commit", rc, 21);
        }
        cvg_test_sleep_us(500);
    }
    _exit(0); /* the test process is gone: do not outlive it */
}

/* Hold READER_TXNS read transactions (one reader slot each) until killed.
 * Writes 'R' on @p ready_fd once they are open. Leaves when @p parent, the
 * test process, is gone (say, a failed assertion ended it). */
static _Noreturn void
reader_child(const char *dir, int ready_fd, pid_t parent)
{
    cvg_replica *r = NULL;
    int rc = cvg_replica_open(dir, NULL, &r);
    if (rc != CVG_OK) {
        child_fail("reader open", rc, 30);
    }
    for (int i = 0; i < READER_TXNS; i++) {
        cvg_txn *t = NULL;
        rc = cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t);
        if (rc != CVG_OK) {
            child_fail("reader begin", rc, 31);
        }
        int64_t v = 0;
        rc = cvg_counter_get(t, &PCOUNT, &v);
        if (rc != CVG_OK) {
            child_fail("reader get", rc, 32);
        }
    }
    char c = 'R';
    if (write(ready_fd, &c, 1) != 1) {
        _exit(33);
    }
    while (getppid() == parent) {
        cvg_test_sleep_us(100000);
    }
    _exit(0); /* the test process is gone: do not outlive it */
}

/* ---- Parent-side checks -------------------------------------------------- */

static bool
bytes_is(cvg_bytes b, const char *s)
{
    size_t n = strlen(s);
    return b.len == n && memcmp(b.data, s, n) == 0;
}

static bool
key_is(const cvg_op *op, const cvg_key *k)
{
    return bytes_is(op->collection, k->collection) &&
           bytes_is(op->key, k->key) && bytes_is(op->field, k->field);
}

static cvg_replica *
reopen(const char *dir)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    cvg_replica *r = NULL;
    int rc = cvg_replica_open(dir, &o, &r);
    cr_assert_eq(rc, CVG_OK, "%s: reopen after the kill: %s (%s)", ctx,
                 cvg_errname(rc), cvg_replica_errmsg(NULL));
    return r;
}

static void
check_digest(cvg_replica *r)
{
    char *text = NULL;
    int rc = cvg_test_digest(r, &text);
    free(text);
    cr_assert_eq(rc, CVG_OK, "%s: state walk: %s", ctx, cvg_errname(rc));
}

/* The version vector holds one origin, this replica, at @p last. */
static void
check_vv(cvg_replica *r, uint64_t last)
{
    cvg_replica_id id;
    cvg_replica_id_get(r, &id);
    cvg_txn *t = NULL;
    cr_assert_eq(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t), CVG_OK, "%s", ctx);
    cvg_dot vv[4];
    size_t n = 0;
    cr_assert_eq(cvg_txn_version_vector(t, vv, 4, &n), CVG_OK, "%s", ctx);
    cvg_txn_abort(t);
    if (last == 0) {
        cr_assert_eq(n, 0, "%s: empty log, yet %zu vv entries", ctx, n);
        return;
    }
    cr_assert_eq(n, 1, "%s: %zu vv entries, want 1", ctx, n);
    cr_assert(memcmp(&vv[0].origin, &id, sizeof id) == 0,
              "%s: vv origin is not this replica", ctx);
    cr_assert_eq(vv[0].seq, last, "%s: vv seq %" PRIu64 ", last lsn %" PRIu64,
                 ctx, vv[0].seq, last);
    cvg_replica_stats st;
    cr_assert_eq(cvg_replica_stats_get(r, &st, sizeof st), CVG_OK, "%s", ctx);
    cr_assert_eq(st.last_lsn, last,
                 "%s: stats last_lsn %" PRIu64 ", log ends at %" PRIu64, ctx,
                 st.last_lsn, last);
}

/* Walk the child's log: txn k is lsn/seq 3k-2 (counter +1), 3k-1 (register
 * := 3k-2), 3k (set add 3k-2), all from this replica. Returns the number of
 * ops; fails at the first hole, foreign op or undecodable record. */
static uint64_t
check_txn_log(cvg_replica *r)
{
    cvg_replica_id id;
    cvg_replica_id_get(r, &id);
    cvg_txn *t = NULL;
    cr_assert_eq(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t), CVG_OK, "%s", ctx);
    cvg_log_cursor *c = NULL;
    cr_assert_eq(cvg_log_cursor_open(t, 1, &c), CVG_OK, "%s", ctx);
    cvg_op op;
    uint64_t n = 0;
    int rc;
    while ((rc = cvg_log_cursor_next(c, &op)) == CVG_OK) {
        n++;
        uint64_t first = n - (n - 1) % 3; /* the txn's counter-add seq */
        cr_assert_eq(op.lsn, n,
                     "%s: lsn %" PRIu64 " where %" PRIu64
                     " belongs: a hole in the log",
                     ctx, op.lsn, n);
        cr_assert_eq(op.dot.seq, n, "%s: lsn %" PRIu64 " has seq %" PRIu64, ctx,
                     n, op.dot.seq);
        cr_assert(memcmp(&op.dot.origin, &id, sizeof id) == 0,
                  "%s: lsn %" PRIu64 " from a foreign origin", ctx, n);
        switch ((n - 1) % 3) {
        case 0:
            cr_assert(op.kind == CVG_OP_COUNTER_ADD && key_is(&op, &HITS) &&
                          op.delta == 1,
                      "%s: lsn %" PRIu64 " is not the counter add", ctx, n);
            break;
        case 1:
            cr_assert(op.kind == CVG_OP_REGISTER_SET && key_is(&op, &LAST) &&
                          op.value.kind == CVG_VALUE_INT &&
                          op.value.as.integer == (int64_t)first,
                      "%s: lsn %" PRIu64 " is not the register set", ctx, n);
            break;
        default:
            cr_assert(op.kind == CVG_OP_SET_ADD && key_is(&op, &SEEN) &&
                          op.value.kind == CVG_VALUE_INT &&
                          op.value.as.integer == (int64_t)first,
                      "%s: lsn %" PRIu64 " is not the set add", ctx, n);
        }
    }
    cvg_log_cursor_close(c);
    cvg_txn_abort(t);
    cr_assert_eq(rc, CVG_DONE, "%s: log walk stopped at lsn %" PRIu64 ": %s",
                 ctx, n + 1, cvg_errname(rc));
    cr_assert_eq(n % 3, 0, "%s: %" PRIu64 " ops: a txn was cut apart", ctx, n);
    return n;
}

/* The merged state agrees with @p txns committed txns. */
static void
check_txn_state(cvg_replica *r, uint64_t txns)
{
    cvg_txn *t = NULL;
    cr_assert_eq(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t), CVG_OK, "%s", ctx);
    int64_t hits = 0;
    int rc = cvg_counter_get(t, &HITS, &hits);
    cvg_value last;
    int lrc = cvg_register_get(t, &LAST, &last);
    if (txns == 0) {
        cr_assert(rc == CVG_ENOTFOUND && lrc == CVG_ENOTFOUND,
                  "%s: empty log but state exists", ctx);
        cvg_txn_abort(t);
        return;
    }
    cr_assert_eq(rc, CVG_OK, "%s: counter: %s", ctx, cvg_errname(rc));
    cr_assert_eq(hits, (int64_t)txns,
                 "%s: counter %" PRId64 " after %" PRIu64 " committed txns",
                 ctx, hits, txns);
    cr_assert_eq(lrc, CVG_OK, "%s: register: %s", ctx, cvg_errname(lrc));
    cr_assert(last.kind == CVG_VALUE_INT &&
                  last.as.integer == (int64_t)(3 * txns - 2),
              "%s: register is not the last txn's seq %" PRIu64, ctx,
              3 * txns - 2);
    cvg_set_cursor *c = NULL;
    cr_assert_eq(cvg_set_cursor_open(t, &SEEN, &c), CVG_OK, "%s", ctx);
    cvg_value e;
    uint64_t n = 0;
    while ((rc = cvg_set_cursor_next(c, &e)) == CVG_OK) {
        n++;
        cr_assert(e.kind == CVG_VALUE_INT && e.as.integer >= 1 &&
                      (uint64_t)e.as.integer <= 3 * txns - 2 &&
                      e.as.integer % 3 == 1,
                  "%s: stray set element", ctx);
    }
    cvg_set_cursor_close(c);
    cvg_txn_abort(t);
    cr_assert_eq(rc, CVG_DONE, "%s: set walk: %s", ctx, cvg_errname(rc));
    cr_assert_eq(n, txns, "%s: set has %" PRIu64 " elements, want %" PRIu64,
                 ctx, n, txns);
}

/* Every acknowledged seq is in the set. */
static void
check_acked(cvg_replica *r, uint64_t acks)
{
    cvg_txn *t = NULL;
    cr_assert_eq(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t), CVG_OK, "%s", ctx);
    for (uint64_t k = 0; k < acks; k++) {
        cvg_value v = cvg_value_int((int64_t)(3 * k + 1));
        bool in = false;
        int rc = cvg_set_contains(t, &SEEN, &v, &in);
        cr_assert(rc == CVG_OK && in,
                  "%s: acknowledged seq %" PRIu64 " is lost", ctx, 3 * k + 1);
    }
    cvg_txn_abort(t);
}

/* ---- Test 1: acknowledged writes survive SIGKILL ------------------------- */

/* One fork, kill and check; returns the txns the child committed. */
static uint64_t
crash_run(int run, uint64_t seed, uint64_t *acks_total)
{
    snprintf(ctx, sizeof ctx,
             "run %d seed 0x%016" PRIx64 " (replay: CVG_TEST_SEED=0x%016" PRIx64
             " CVG_TEST_CRASH_RUNS=1 replica_test_crash --filter crash/soak)",
             run, seed, seed);
    uint64_t rng = seed;
    /* Mostly: wait for 1..MAX_ACKS acks, then kill within 2 ms, which
     * usually lands inside a commit. Sometimes: kill at a random time from
     * the fork, which can land while the child creates the replica. */
    bool by_time = cvg_test_below(&rng, 8) == 0;
    uint64_t want = 1 + cvg_test_below(&rng, MAX_ACKS);
    uint64_t delay_us =
        by_time ? cvg_test_below(&rng, 30000) : cvg_test_below(&rng, 2000);

    char dir[4096];
    snprintf(dir, sizeof dir, "%s", cvg_test_dir("crash"));
    int p[2];
    cr_assert_eq(pipe(p), 0, "%s: pipe: %s", ctx, strerror(errno));
    fflush(NULL); /* nothing buffered may be written twice */
    pid_t pid = fork();
    cr_assert_neq(pid, -1, "%s: fork: %s", ctx, strerror(errno));
    if (pid == 0) {
        close(p[0]);
        writer_child(dir, p[1]);
    }
    close(p[1]);

    uint64_t acks = 0, seq;
    int rrc = 1;
    if (!by_time) {
        while (acks < want && (rrc = cvg_test_read_full(
                                   p[0], &seq, 8, PIPE_TIMEOUT_MS)) == 1) {
            cr_assert_eq(seq, 3 * acks + 1,
                         "%s: ack %" PRIu64 " is seq %" PRIu64, ctx, acks, seq);
            acks++;
        }
    }
    if (rrc == 1) {
        cvg_test_sleep_us(delay_us);
    }
    kill(pid, SIGKILL);
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid, "%s: waitpid", ctx);
    cr_assert(rrc != -1, "%s: no ack from the child for %d ms", ctx,
              PIPE_TIMEOUT_MS);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
              "%s: the child ended on its own (exit %d): see its stderr", ctx,
              WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    /* The child may have acknowledged more before it died. */
    while ((rrc = cvg_test_read_full(p[0], &seq, 8, PIPE_TIMEOUT_MS)) == 1) {
        cr_assert_eq(seq, 3 * acks + 1, "%s: ack %" PRIu64 " is seq %" PRIu64,
                     ctx, acks, seq);
        acks++;
    }
    close(p[0]);
    cr_assert_eq(rrc, 0, "%s: torn ack on the pipe", ctx);
    *acks_total += acks;

    cvg_replica *r = reopen(dir);
    uint64_t n = check_txn_log(r);
    uint64_t txns = n / 3;
    /* At most one txn can be committed but not acknowledged: the kill can
     * fall between its commit and its ack. */
    cr_assert(txns >= acks,
              "%s: %" PRIu64 " txns acknowledged, %" PRIu64
              " in the log: acknowledged writes lost",
              ctx, acks, txns);
    cr_assert(txns <= acks + 1,
              "%s: %" PRIu64 " txns in the log, only %" PRIu64 " acknowledged",
              ctx, txns, acks);
    check_txn_state(r, txns);
    check_acked(r, acks);
    check_vv(r, n);
    check_digest(r);

    /* It keeps working: one more txn commits, and survives a reopen. */
    cvg_txn *t = NULL;
    cvg_dot d;
    cr_assert_eq(cvg_txn_begin(r, 0, &t), CVG_OK, "%s", ctx);
    cr_assert_eq(cvg_counter_add(t, &HITS, 1, &d), CVG_OK, "%s", ctx);
    cr_assert_eq(d.seq, n + 1, "%s: new op got seq %" PRIu64 " after %" PRIu64,
                 ctx, d.seq, n);
    cvg_value v = cvg_value_int((int64_t)d.seq);
    cr_assert_eq(cvg_register_set(t, &LAST, &v, NULL), CVG_OK, "%s", ctx);
    cr_assert_eq(cvg_set_add(t, &SEEN, &v, NULL), CVG_OK, "%s", ctx);
    int rc = cvg_txn_commit(t);
    cr_assert_eq(rc, CVG_OK, "%s: commit after the crash: %s", ctx,
                 cvg_errname(rc));
    cvg_replica_close(r);

    r = reopen(dir);
    cr_assert_eq(check_txn_log(r), n + 3, "%s: the new txn is not in the log",
                 ctx);
    check_txn_state(r, txns + 1);
    check_vv(r, n + 3);
    check_digest(r);
    cvg_replica_close(r);
    return txns;
}

static void
crash_runs(int runs)
{
    uint64_t base = cvg_test_seed(0xC0DEC4A5u);
    cr_log_info("crash: %d runs from seed 0x%016" PRIx64
                " (replay one with CVG_TEST_SEED)",
                runs, base);
    uint64_t acks = 0;
    int early = 0;
    for (int i = 0; i < runs; i++) {
        if (crash_run(i, base + (uint64_t)i, &acks) == 0) {
            early++;
        }
    }
    cr_log_info("crash: %d kills (%d before the first commit), %" PRIu64
                " acknowledged txns, none lost",
                runs, early, acks);
}

/* Runs from $CVG_TEST_CRASH_RUNS, or 0 if unset. */
static int
soak_runs(void)
{
    const char *s = getenv("CVG_TEST_CRASH_RUNS");
    return s != NULL && s[0] != '\0' ? atoi(s) : 0;
}

Test(crash, acked_writes_survive_sigkill, .timeout = 300)
{
    crash_runs(DEFAULT_RUNS);
}

/* CVG_TEST_CRASH_RUNS=5000 replica_test_crash --filter crash/soak */
Test(crash, soak)
{
    int runs = soak_runs();
    if (runs <= 0) {
        cr_skip_test("set CVG_TEST_CRASH_RUNS=N to soak");
    }
    crash_runs(runs);
}

/* ---- Test 2: killed readers do not leak reader slots --------------------- */

/* mdb_reader_list() gives one line per reader slot in use, pid first. */
typedef struct slot_count {
    pid_t keep[2]; /* live processes whose slots are fine */
    int stale;
} slot_count;

static int
count_slot(const char *msg, void *arg)
{
    slot_count *sc = arg;
    char *end;
    long pid = strtol(msg, &end, 10);
    if (end != msg && pid > 0 && pid != sc->keep[0] && pid != sc->keep[1]) {
        sc->stale++;
    }
    return 0;
}

static void
counter_at(cvg_replica *r, const cvg_key *k, int64_t *out)
{
    cvg_txn *t = NULL;
    int rc = cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t);
    cr_assert_eq(rc, CVG_OK, "%s: read txn: %s", ctx, cvg_errname(rc));
    rc = cvg_counter_get(t, k, out);
    cvg_txn_abort(t);
    cr_assert(rc == CVG_OK || rc == CVG_ENOTFOUND, "%s: counter: %s", ctx,
              cvg_errname(rc));
}

Test(crash, killed_readers_free_their_slots, .timeout = 120)
{
    snprintf(ctx, sizeof ctx, "reader kills");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", cvg_test_dir("crash-readers"));
    cvg_replica *r = reopen(dir);
    int64_t parent_txns = 0;
    cr_assert_eq(count_once(r, &PCOUNT), CVG_OK);
    parent_txns++;
    cvg_replica_close(r);

    fflush(NULL);
    pid_t self = getpid();
    pid_t writer = fork();
    cr_assert_neq(writer, -1, "fork: %s", strerror(errno));
    if (writer == 0) {
        busy_writer_child(dir, self);
    }

    for (int i = 0; i < READER_KILLS; i++) {
        snprintf(ctx, sizeof ctx, "reader kill %d of %d", i + 1, READER_KILLS);
        int p[2];
        cr_assert_eq(pipe(p), 0, "%s: pipe: %s", ctx, strerror(errno));
        fflush(NULL);
        pid_t pid = fork();
        cr_assert_neq(pid, -1, "%s: fork: %s", ctx, strerror(errno));
        if (pid == 0) {
            close(p[0]);
            reader_child(dir, p[1], self);
        }
        close(p[1]);
        char c = 0;
        int rrc = cvg_test_read_full(p[0], &c, 1, PIPE_TIMEOUT_MS);
        close(p[0]);
        kill(pid, SIGKILL);
        int st = 0;
        cr_assert_eq(waitpid(pid, &st, 0), pid, "%s: waitpid", ctx);
        cr_assert(rrc == 1 && c == 'R',
                  "%s: the reader did not get its read txns (exit %d): see "
                  "its stderr",
                  ctx, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "%s", ctx);
        cr_assert_eq(waitpid(writer, &st, WNOHANG), 0,
                     "%s: the busy writer died (exit %d): see its stderr", ctx,
                     WIFEXITED(st) ? WEXITSTATUS(st) : -1);

        /* Reopening runs the reader check: the dead reader's slots are free
         * again, and reads and commits go through. */
        r = reopen(dir);
        if (i == 0) {
            /* The count sees a slot in use: our own read txn's. */
            cvg_txn *t = NULL;
            cr_assert_eq(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t), CVG_OK);
            slot_count own = {{writer, writer}, 0};
            mdb_reader_list(r->store.env, count_slot, &own);
            cvg_txn_abort(t);
            cr_assert_eq(own.stale, 1, "reader list: %d slots, want 1",
                         own.stale);
        }
        slot_count sc = {{getpid(), writer}, 0};
        mdb_reader_list(r->store.env, count_slot, &sc);
        cr_assert_eq(sc.stale, 0,
                     "%s: %d reader slots of dead processes "
                     "after reopen",
                     ctx, sc.stale);
        int commits = i % 50 == 49 ? 50 : 2;
        for (int k = 0; k < commits; k++) {
            int rc = count_once(r, &PCOUNT);
            cr_assert_eq(rc, CVG_OK, "%s: commit %d: %s (%s)", ctx, k,
                         cvg_errname(rc), cvg_replica_errmsg(r));
            parent_txns++;
        }
        int64_t v = 0;
        counter_at(r, &PCOUNT, &v);
        cr_assert_eq(v, parent_txns, "%s", ctx);
        cvg_replica_close(r);
    }

    /* The busy writer dies too, likely inside a commit holding LMDB's
     * write lock: the next writer must not hang on it. */
    snprintf(ctx, sizeof ctx, "after killing the busy writer");
    kill(writer, SIGKILL);
    int st = 0;
    cr_assert_eq(waitpid(writer, &st, 0), writer);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
              "the busy writer ended on its own (exit %d)",
              WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    r = reopen(dir);
    for (int k = 0; k < 100; k++) {
        int rc = count_once(r, &PCOUNT);
        cr_assert_eq(rc, CVG_OK, "%s: commit %d: %s", ctx, k, cvg_errname(rc));
        parent_txns++;
    }
    cvg_replica_close(r);

    /* One origin (both processes are this replica), a gap-free log of +1s
     * that adds up to the two counters. */
    r = reopen(dir);
    int64_t pv = 0, wv = 0;
    counter_at(r, &PCOUNT, &pv);
    counter_at(r, &WCOUNT, &wv);
    cr_expect_eq(pv, parent_txns);
    cr_expect_gt(wv, 0, "the busy writer never committed");
    cvg_txn *t = NULL;
    cr_assert_eq(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t), CVG_OK);
    cvg_log_cursor *c = NULL;
    cr_assert_eq(cvg_log_cursor_open(t, 1, &c), CVG_OK);
    cvg_op op;
    uint64_t n = 0;
    int64_t pn = 0, wn = 0;
    int rc;
    while ((rc = cvg_log_cursor_next(c, &op)) == CVG_OK) {
        n++;
        cr_assert(op.lsn == n && op.dot.seq == n, "%s: hole at lsn %" PRIu64,
                  ctx, n);
        cr_assert(op.kind == CVG_OP_COUNTER_ADD && op.delta == 1, "%s", ctx);
        if (key_is(&op, &PCOUNT)) {
            pn++;
        } else if (key_is(&op, &WCOUNT)) {
            wn++;
        } else {
            cr_assert_fail("%s: lsn %" PRIu64 " has a stray key", ctx, n);
        }
    }
    cvg_log_cursor_close(c);
    cvg_txn_abort(t);
    cr_assert_eq(rc, CVG_DONE, "%s: log walk: %s", ctx, cvg_errname(rc));
    cr_expect_eq(pn, pv);
    cr_expect_eq(wn, wv);
    check_vv(r, n);
    check_digest(r);
    cvg_replica_close(r);
}
