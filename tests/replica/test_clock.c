/* The hybrid logical clock at the replica level, with a test clock in place
 * of the wall clock: local ops get strictly increasing times whatever the
 * wall clock does, the high-water mark survives a restart, a burst never
 * wraps the logical counter, and remote ops too far ahead are refused until
 * the local clock catches up. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checks.h"
#include "digest.h"
#include "replica/replica_int.h"
#include "testutil.h"

#define T0 UINT64_C(1700000000000) /* 2023-11-14, in ms */
#define MINUTE UINT64_C(60000)
#define HOUR (60 * MINUTE)

typedef struct test_clock {
    uint64_t now;
    uint64_t reads;
} test_clock;

static uint64_t
read_clock(void *ctx)
{
    test_clock *c = ctx;
    c->reads++;
    return c->now;
}

static cvg_replica *
open_clocked(const char *dir, test_clock *c, uint64_t max_ahead)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = CVG_RELAXED;
    o.clock = read_clock;
    o.clock_ctx = c;
    if (max_ahead != 0) {
        o.max_clock_ahead_ms = max_ahead; /* else the default */
    }
    cvg_replica *r = NULL;
    int rc = cvg_replica_open(dir, &o, &r);
    cr_assert_eq(rc, CVG_OK, "open %s: %s", dir, cvg_errname(rc));
    return r;
}

static cvg_txn *
wtxn(cvg_replica *r)
{
    cvg_txn *t = NULL;
    int rc = cvg_txn_begin(r, 0, &t);
    cr_assert_eq(rc, CVG_OK, "begin: %s", cvg_errname(rc));
    return t;
}

static void
commit_ok(cvg_txn *t)
{
    int rc = cvg_txn_commit(t);
    cr_assert_eq(rc, CVG_OK, "commit: %s", cvg_errname(rc));
}

static cvg_replica_stats
stats(cvg_replica *r)
{
    cvg_replica_stats st;
    int rc = cvg_replica_stats_get(r, &st, sizeof st);
    cr_assert_eq(rc, CVG_OK, "stats: %s", cvg_errname(rc));
    return st;
}

/* The hlc of every op of @p r's log, in log order; *n gets the count. */
static uint64_t *
log_hlcs(cvg_replica *r, size_t *n)
{
    cvg_txn *t;
    cr_assert_eq(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t), CVG_OK);
    cvg_log_cursor *c;
    cr_assert_eq(cvg_log_cursor_open(t, 1, &c), CVG_OK);
    size_t cap = 1024, cnt = 0;
    uint64_t *h = malloc(cap * sizeof *h);
    cr_assert_not_null(h);
    cvg_op op;
    int rc;
    while ((rc = cvg_log_cursor_next(c, &op)) == CVG_OK) {
        if (cnt == cap) {
            cap *= 2;
            h = realloc(h, cap * sizeof *h);
            cr_assert_not_null(h);
        }
        cr_assert_eq(op.lsn, cnt + 1);
        h[cnt++] = op.hlc;
    }
    cr_assert_eq(rc, CVG_DONE, "log walk: %s", cvg_errname(rc));
    cvg_log_cursor_close(c);
    cvg_txn_abort(t);
    *n = cnt;
    return h;
}

static void
assert_strictly_increasing(const uint64_t *h, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        cr_assert_gt(h[i], h[i - 1],
                     "op %zu: hlc %llu (%llu ms + %u) not after %llu "
                     "(%llu ms + %u)",
                     i + 1, (unsigned long long)h[i],
                     (unsigned long long)cvg_hlc_millis(h[i]),
                     cvg_hlc_logical(h[i]), (unsigned long long)h[i - 1],
                     (unsigned long long)cvg_hlc_millis(h[i - 1]),
                     cvg_hlc_logical(h[i - 1]));
    }
}

static const cvg_key CNT = {"clock", "rec", "n"};
static const cvg_key REG = {"clock", "rec", "name"};

/* ---- Local ops ----------------------------------------------------------- */

Test(clock, local_ops_increase_when_the_wall_clock_goes_back)
{
    const char *dir = cvg_test_dir("clock-back");
    char path[4200];
    snprintf(path, sizeof path, "%s", dir);
    test_clock c = {T0, 0};
    cvg_replica *r = open_clocked(path, &c, 0);
    cvg_txn *t = wtxn(r);
    /* The wall clock, forwards, backwards, forwards, far back. */
    const int64_t steps[] = {0,  -5000,          10, -100000, 0, 7,
                             -1, -(int64_t)HOUR, 3};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        c.now = (uint64_t)((int64_t)T0 + steps[i]);
        cr_assert_eq(cvg_counter_add(t, &CNT, 1, NULL), CVG_OK);
    }
    commit_ok(t);
    cr_expect_gt(c.reads, 0, "the replica reads the test clock");
    /* Another txn, the wall still behind. */
    c.now = T0 - 1;
    t = wtxn(r);
    cvg_value v = cvg_value_string("x");
    cr_assert_eq(cvg_register_set(t, &REG, &v, NULL), CVG_OK);
    cr_assert_eq(cvg_counter_add(t, &CNT, 1, NULL), CVG_OK);
    commit_ok(t);

    size_t n;
    uint64_t *h = log_hlcs(r, &n);
    cr_assert_eq(n, 11);
    assert_strictly_increasing(h, n);
    cr_expect_eq(h[0], T0 << 16, "the first op takes the wall time");
    cr_expect_eq(h[2], (T0 + 10) << 16, "a wall clock ahead is taken");
    cr_expect_eq(cvg_hlc_millis(h[10]), T0 + 10,
                 "behind the high-water mark, only the counter moves");
    uint64_t top = h[n - 1];
    cr_expect_eq(stats(r).hlc, top, "the replica's clock is the last op's");
    free(h);
    cvg_replica_close(r);

    /* Reopen with the wall an hour behind: the mark was persisted. */
    c.now = T0 - HOUR;
    r = open_clocked(path, &c, 0);
    cr_expect_eq(stats(r).hlc, top, "the clock survives a restart");
    t = wtxn(r);
    cr_assert_eq(cvg_counter_add(t, &CNT, 1, NULL), CVG_OK);
    commit_ok(t);
    h = log_hlcs(r, &n);
    cr_assert_eq(n, 12);
    assert_strictly_increasing(h, n);
    cr_expect_eq(h[11], top + 1);
    free(h);
    cvg_replica_close(r);
}

Test(clock, an_aborted_txn_does_not_move_the_clock)
{
    test_clock c = {T0 + 500, 0};
    cvg_replica *r = open_clocked(cvg_test_dir("clock-abort"), &c, 0);
    cvg_txn *t = wtxn(r);
    cr_assert_eq(cvg_counter_add(t, &CNT, 1, NULL), CVG_OK);
    cvg_txn_abort(t);
    cr_expect_eq(stats(r).hlc, 0, "nothing committed, no clock");
    c.now = T0;
    t = wtxn(r);
    cr_assert_eq(cvg_counter_add(t, &CNT, 1, NULL), CVG_OK);
    commit_ok(t);
    size_t n;
    uint64_t *h = log_hlcs(r, &n);
    cr_assert_eq(n, 1);
    cr_expect_eq(h[0], T0 << 16);
    free(h);
    cvg_replica_close(r);
}

Test(clock, a_frozen_clock_never_wraps, .timeout = 300)
{
    const char *dir = cvg_test_dir("clock-frozen");
    char path[4200];
    snprintf(path, sizeof path, "%s", dir);
    test_clock c = {T0, 0};
    cvg_replica *r = open_clocked(path, &c, 0);
    const size_t N = 70000;
    cvg_txn *t = wtxn(r);
    for (size_t i = 0; i < N; i++) {
        cvg_key k = CNT;
        k.field = (i % 3 == 0) ? "a" : (i % 3 == 1) ? "b" : "c";
        int rc = cvg_counter_add(t, &k, 1, NULL);
        cr_assert_eq(rc, CVG_OK, "op %zu: %s", i, cvg_errname(rc));
    }
    commit_ok(t);
    size_t n;
    uint64_t *h = log_hlcs(r, &n);
    cr_assert_eq(n, N);
    assert_strictly_increasing(h, n);
    for (size_t i = 0; i < n; i++) {
        /* One tick each, carrying from the counter into the millis. */
        cr_assert_eq(h[i], (T0 << 16) + i, "op %zu", i + 1);
        cr_assert_geq(cvg_hlc_millis(h[i]), T0);
        cr_assert_leq(cvg_hlc_millis(h[i]), T0 + 1);
    }
    cr_expect_eq(cvg_hlc_millis(h[65535]), T0);
    cr_expect_eq(cvg_hlc_logical(h[65535]), 65535);
    cr_expect_eq(cvg_hlc_millis(h[65536]), T0 + 1, "the carry");
    cr_expect_eq(cvg_hlc_logical(h[65536]), 0);
    cr_expect_eq(cvg_hlc_millis(h[N - 1]), T0 + 1);
    cr_expect_eq(cvg_hlc_logical(h[N - 1]), (uint16_t)(N - 1 - 65536));
    uint64_t top = h[N - 1];
    free(h);
    cvg_replica_close(r);

    /* Still frozen after a restart: the next op continues from the top. */
    r = open_clocked(path, &c, 0);
    t = wtxn(r);
    cvg_dot d;
    cr_assert_eq(cvg_counter_add(t, &CNT, 1, &d), CVG_OK);
    cr_expect_eq(d.seq, N + 1);
    commit_ok(t);
    cr_expect_eq(stats(r).hlc, top + 1);
    cvg_replica_close(r);
}

Test(clock, a_wall_clock_past_48_bits_is_refused)
{
    test_clock c = {T0, 0};
    cvg_replica *r = open_clocked(cvg_test_dir("clock-48"), &c, 0);
    cvg_txn *t = wtxn(r);
    cr_assert_eq(cvg_counter_add(t, &CNT, 1, NULL), CVG_OK);
    c.now = UINT64_C(1) << 48;
    cvg_dot d;
    memset(&d, 0xAB, sizeof d);
    cr_expect_eq(cvg_counter_add(t, &CNT, 1, &d), CVG_ECLOCK);
    cr_expect_eq(d.seq, 0, "zeroed dot");
    cvg_value v = cvg_value_int(1);
    cr_expect_eq(cvg_register_set(t, &REG, &v, NULL), CVG_ECLOCK);
    /* The txn stays usable once the clock is sane again. */
    c.now = T0 + 1;
    cr_expect_eq(cvg_counter_add(t, &CNT, 1, &d), CVG_OK);
    cr_expect_eq(d.seq, 2, "the refused ops took no seq");
    commit_ok(t);
    size_t n;
    uint64_t *h = log_hlcs(r, &n);
    cr_assert_eq(n, 2);
    cr_expect_eq(h[1], (T0 + 1) << 16);
    cvg_txn *rt;
    cr_assert_eq(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &rt), CVG_OK);
    int64_t cv;
    cr_expect_eq(cvg_counter_get(rt, &CNT, &cv), CVG_OK);
    cr_expect_eq(cv, 2);
    cvg_value out;
    cr_expect_eq(cvg_register_get(rt, &REG, &out), CVG_ENOTFOUND);
    cvg_txn_abort(rt);
    free(h);
    cvg_replica_close(r);
}

/* ---- Remote ops ---------------------------------------------------------- */

/* Apply @p from's ops from lsn *next on to @p dst, stopping at the first
 * error, which is returned; *next moves past what was applied. */
static int
apply_from(cvg_txn *dst, cvg_replica *from, uint64_t *next)
{
    cvg_txn *src;
    cr_assert_eq(cvg_txn_begin(from, CVG_TXN_READ_ONLY, &src), CVG_OK);
    cvg__log_iter it;
    cr_assert_eq(cvg__log_iter_open(&from->store, src->mt, *next, &it), CVG_OK);
    cvg__op op;
    int rc;
    while ((rc = cvg__log_iter_next(&it, &op)) == CVG_OK) {
        bool conflict;
        rc = cvg__txn_apply_remote(dst, &op, &conflict);
        if (rc != CVG_OK && rc != CVG_DONE) {
            break;
        }
        *next = op.pub.lsn + 1;
    }
    cvg__log_iter_close(&it);
    cvg_txn_abort(src);
    return rc == CVG_DONE ? CVG_OK : rc;
}

/* Pull everything new of @p from into @p to, in one txn. */
static void
pull(cvg_replica *to, cvg_replica *from, uint64_t *next)
{
    cvg_txn *t = wtxn(to);
    int rc = apply_from(t, from, next);
    cr_assert_eq(rc, CVG_OK, "pull: %s (%s)", cvg_errname(rc),
                 cvg_replica_errmsg(to));
    commit_ok(t);
}

Test(clock, a_remote_op_too_far_ahead_waits_for_the_clock)
{
    char adir[4200], bdir[4200];
    snprintf(adir, sizeof adir, "%s", cvg_test_dir("ahead-a"));
    snprintf(bdir, sizeof bdir, "%s", cvg_test_dir("ahead-b"));
    test_clock ca = {T0 + 10 * MINUTE, 0}, cb = {T0, 0};
    cvg_replica *a = open_clocked(adir, &ca, 0);
    cvg_replica *b = open_clocked(bdir, &cb, 0); /* default: one minute */

    cvg_txn *t = wtxn(a);
    cvg_value va = cvg_value_string("from A");
    cr_assert_eq(cvg_register_set(t, &REG, &va, NULL), CVG_OK);
    cr_assert_eq(cvg_counter_add(t, &CNT, 5, NULL), CVG_OK);
    commit_ok(t);
    /* B has a write of its own. */
    t = wtxn(b);
    cr_assert_eq(cvg_counter_add(t, &CNT, 2, NULL), CVG_OK);
    commit_ok(t);

    char *b0 = cvg_test_state(b);
    cvg_replica_stats sb0 = stats(b);
    uint64_t next = 1;
    t = wtxn(b);
    int rc = apply_from(t, a, &next);
    cr_expect_eq(rc, CVG_ECLOCK, "got %s", cvg_errname(rc));
    cr_expect_eq(next, 1, "nothing applied");
    cr_expect(strstr(cvg_replica_errmsg(b), "ahead") != NULL, "errmsg: %s",
              cvg_replica_errmsg(b));
    /* The refusal changed nothing, not even the txn's view. */
    int64_t cv = 0;
    cr_expect_eq(cvg_counter_get(t, &CNT, &cv), CVG_OK);
    cr_expect_eq(cv, 2);
    cvg_value out;
    cr_expect_eq(cvg_register_get(t, &REG, &out), CVG_ENOTFOUND);
    size_t nvv = 0;
    cvg_dot vv[4];
    cr_expect_eq(cvg_txn_version_vector(t, vv, 4, &nvv), CVG_OK);
    cr_expect_eq(nvv, 1, "A is not in B's version vector");
    /* The txn is still usable, and its clock was not dragged ahead. */
    cr_assert_eq(cvg_counter_add(t, &CNT, 1, NULL), CVG_OK);
    commit_ok(t);
    cvg_replica_stats sb1 = stats(b);
    cr_expect_eq(sb1.op_count, sb0.op_count + 1);
    cr_expect_eq(sb1.origins, 1, "no origin added for A");
    cr_expect_lt(cvg_hlc_millis(sb1.hlc), T0 + MINUTE,
                 "B's clock did not take A's time");
    char *b1 = cvg_test_state(b);
    cr_expect_str_neq(b1, b0);
    free(b0);

    /* Same op, same answer, also after a restart of B. */
    cvg_replica_close(b);
    b = open_clocked(bdir, &cb, 0);
    t = wtxn(b);
    cr_expect_eq(apply_from(t, a, &next), CVG_ECLOCK);
    cvg_txn_abort(t);
    char *b2 = cvg_test_state(b);
    cr_expect_str_eq(b2, b1);
    free(b1);
    free(b2);

    /* Ten minutes later on B, the op is welcome. */
    cb.now += 10 * MINUTE;
    pull(b, a, &next);
    cr_expect_eq(next, 3);
    uint64_t next_a = 1;
    pull(a, b, &next_a);
    char *da = cvg_test_state(a), *db = cvg_test_state(b);
    cr_expect_str_eq(da, db, "A and B converge");
    cr_expect(strstr(db, "from A") != NULL);
    free(da);
    free(db);
    t = wtxn(b);
    cr_expect_eq(cvg_counter_get(t, &CNT, &cv), CVG_OK);
    cr_expect_eq(cv, 8, "5 from A, 2 + 1 from B");
    cvg_txn_abort(t);
    cr_expect_eq(stats(b).origins, 2);
    cvg_replica_close(a);
    cvg_replica_close(b);
}

Test(clock, the_limit_is_inclusive_and_receiving_moves_the_clock)
{
    char adir[4200], bdir[4200];
    snprintf(adir, sizeof adir, "%s", cvg_test_dir("limit-a"));
    snprintf(bdir, sizeof bdir, "%s", cvg_test_dir("limit-b"));
    const uint64_t AHEAD = 5000;
    test_clock ca = {T0 + AHEAD, 0}, cb = {T0, 0};
    cvg_replica *a = open_clocked(adir, &ca, 0);
    cvg_replica *b = open_clocked(bdir, &cb, AHEAD);

    /* Op 1 exactly at the limit, op 2 one ms past it. */
    cvg_txn *t = wtxn(a);
    cr_assert_eq(cvg_counter_add(t, &CNT, 1, NULL), CVG_OK);
    ca.now++;
    cr_assert_eq(cvg_counter_add(t, &CNT, 1, NULL), CVG_OK);
    commit_ok(t);

    uint64_t next = 1;
    t = wtxn(b);
    cr_expect_eq(apply_from(t, a, &next), CVG_ECLOCK);
    cr_expect_eq(next, 2, "op 1, at the limit, applied; op 2 refused");
    /* B's next local op comes after what it received, though its wall
     * clock is 5 s behind. */
    cvg_dot d;
    cr_assert_eq(cvg_counter_add(t, &CNT, 1, &d), CVG_OK);
    commit_ok(t);
    cr_expect_eq(stats(b).hlc, ((T0 + AHEAD) << 16) + 1);
    cr_expect_eq(stats(b).op_count, 2);

    /* Restarted, wall clock an hour back: still after A's op. */
    cvg_replica_close(b);
    cb.now = T0 - HOUR;
    b = open_clocked(bdir, &cb, AHEAD);
    t = wtxn(b);
    cr_assert_eq(cvg_counter_add(t, &CNT, 1, NULL), CVG_OK);
    commit_ok(t);
    size_t n;
    uint64_t *h = log_hlcs(b, &n);
    cr_assert_eq(n, 3);
    assert_strictly_increasing(h, n);
    cr_expect_eq(h[0], (T0 + AHEAD) << 16, "A's op keeps its time");
    free(h);

    /* One ms later on B (relative to op 2), op 2 is in. */
    cb.now = T0 + 1;
    t = wtxn(b);
    cr_expect_eq(apply_from(t, a, &next), CVG_OK);
    cr_expect_eq(next, 3);
    commit_ok(t);
    cr_expect_eq(stats(b).hlc, (T0 + AHEAD + 1) << 16,
                 "the clock takes the newest time seen");
    cvg_replica_close(a);
    cvg_replica_close(b);
}

Test(clock, the_default_bound_is_one_minute)
{
    char adir[4200], bdir[4200];
    snprintf(adir, sizeof adir, "%s", cvg_test_dir("default-a"));
    snprintf(bdir, sizeof bdir, "%s", cvg_test_dir("default-b"));
    test_clock ca = {T0 + MINUTE, 0}, cb = {T0, 0};
    cvg_replica *a = open_clocked(adir, &ca, 0);
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    cr_expect_eq(o.max_clock_ahead_ms, MINUTE);
    cvg_replica *b = open_clocked(bdir, &cb, 0);
    cvg_txn *t = wtxn(a);
    cr_assert_eq(cvg_counter_add(t, &CNT, 1, NULL), CVG_OK);
    ca.now++;
    cr_assert_eq(cvg_counter_add(t, &CNT, 1, NULL), CVG_OK);
    commit_ok(t);
    uint64_t next = 1;
    t = wtxn(b);
    cr_expect_eq(apply_from(t, a, &next), CVG_ECLOCK);
    cr_expect_eq(next, 2);
    commit_ok(t);
    cvg_replica_close(a);
    cvg_replica_close(b);
}
