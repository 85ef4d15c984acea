/* The hybrid logical clock at the replica level, with a test clock in place
 * of the wall clock: local ops get strictly increasing times whatever the
 * wall clock does within the bound, the high-water mark survives a restart,
 * a burst never wraps the logical counter, a clock found past the bound
 * resumes from the wall, and remote ops however far ahead are taken without
 * dragging the receiver's clock past its bound. Last, the jump and return:
 * three replicas, one whose wall clock ran a year ahead for a while, synced
 * in random schedules. */
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
#define YEAR (365 * 24 * HOUR)

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
    /* A bound of two hours: every step back below stays within it. */
    cvg_replica *r = open_clocked(path, &c, 2 * HOUR);
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
    r = open_clocked(path, &c, 2 * HOUR);
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

static int64_t
reg_int(cvg_replica *r, const cvg_key *k)
{
    cvg_txn *t;
    cr_assert_eq(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t), CVG_OK);
    cvg_value v;
    int rc = cvg_register_get(t, k, &v);
    cr_assert_eq(rc, CVG_OK, "read %s: %s", k->field, cvg_errname(rc));
    cr_assert_eq(v.kind, CVG_VALUE_INT);
    int64_t x = v.as.integer;
    cvg_txn_abort(t);
    return x;
}

static int64_t
counter(cvg_replica *r)
{
    cvg_txn *t;
    cr_assert_eq(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t), CVG_OK);
    int64_t x = 0;
    cr_assert_eq(cvg_counter_get(t, &CNT, &x), CVG_OK);
    cvg_txn_abort(t);
    return x;
}

/* One committed write: @p k = @p v, and the counter + 1. */
static void
put(cvg_replica *r, const cvg_key *k, int64_t v)
{
    cvg_txn *t = wtxn(r);
    cvg_value x = cvg_value_int(v);
    cr_assert_eq(cvg_register_set(t, k, &x, NULL), CVG_OK);
    cr_assert_eq(cvg_counter_add(t, &CNT, 1, NULL), CVG_OK);
    commit_ok(t);
}

/* The wall clock a year ahead, then right again: the stored clock stays a
 * year ahead until the next write, which resumes from the wall (in the same
 * process or after a restart), and the replica's own later write wins over
 * its earlier one though its stamp is lower. A peer takes it all. */
Test(clock, a_clock_past_the_bound_resumes_from_the_wall)
{
    char adir[4200], bdir[4200];
    snprintf(adir, sizeof adir, "%s", cvg_test_dir("resume-a"));
    snprintf(bdir, sizeof bdir, "%s", cvg_test_dir("resume-b"));
    test_clock ca = {T0 + YEAR, 0}, cb = {T0, 0};
    cvg_replica *a = open_clocked(adir, &ca, 0);
    put(a, &REG, 1);
    cr_expect_eq(stats(a).hlc, ((T0 + YEAR) << 16) + 1, "two ticks");
    /* Fixed while running. */
    ca.now = T0;
    put(a, &REG, 2);
    cr_expect_eq(stats(a).hlc, (T0 << 16) + 1, "resumed from the wall");
    /* Ahead again, then fixed across a restart. */
    ca.now = T0 + YEAR + 5;
    put(a, &REG, 3);
    cvg_replica_close(a);
    ca.now = T0 + 10;
    a = open_clocked(adir, &ca, 0);
    cr_expect_eq(stats(a).hlc, ((T0 + YEAR + 5) << 16) + 1,
                 "the stored clock, until the next write");
    put(a, &REG, 4);
    cr_expect_eq(stats(a).hlc, ((T0 + 10) << 16) + 1);
    size_t n;
    uint64_t *h = log_hlcs(a, &n);
    cr_assert_eq(n, 8);
    cr_expect_eq(h[2], T0 << 16);
    cr_expect_eq(h[6], (T0 + 10) << 16);
    free(h);
    cr_expect_eq(reg_int(a, &REG), 4,
                 "the last write wins, not the latest "
                 "stamp");

    cvg_replica *b = open_clocked(bdir, &cb, 0);
    uint64_t next = 1;
    pull(b, a, &next);
    cr_expect_eq(next, 9, "every op taken");
    cr_expect_eq(reg_int(b, &REG), 4);
    cr_expect_eq(counter(b), 4);
    cr_expect_leq(cvg_hlc_millis(stats(b).hlc), T0 + MINUTE,
                  "B's clock held at its bound");
    char *da = cvg_test_state(a), *db = cvg_test_state(b);
    cr_expect_str_eq(da, db);
    free(da);
    free(db);
    cvg_replica_close(a);
    cvg_replica_close(b);
}

/* An op a year ahead is taken, not refused; the receiver's clock stops at
 * its bound, so its own later write comes after it only causally: it
 * replaces the value it saw (the sibling it names), which is what makes it
 * win everywhere. A write made concurrently, without having seen the far
 * op, loses to it: that is the stamp order, the same on every replica. */
Test(clock, a_remote_op_far_ahead_is_taken_without_dragging_the_clock)
{
    char adir[4200], bdir[4200], cdir[4200];
    snprintf(adir, sizeof adir, "%s", cvg_test_dir("far-a"));
    snprintf(bdir, sizeof bdir, "%s", cvg_test_dir("far-b"));
    snprintf(cdir, sizeof cdir, "%s", cvg_test_dir("far-c"));
    test_clock ca = {T0 + YEAR, 0}, cb = {T0, 0}, cc = {T0, 0};
    cvg_replica *a = open_clocked(adir, &ca, 0);
    cvg_replica *b = open_clocked(bdir, &cb, 0);
    cvg_replica *c = open_clocked(cdir, &cc, 0);
    put(a, &REG, 1);
    put(c, &REG, 30); /* concurrent with A's, later in real time */
    uint64_t b_a = 1, a_b = 1, c_a = 1, c_b = 1, b_c = 1, a_c = 1;
    pull(b, a, &b_a);
    cr_expect_eq(b_a, 3);
    cr_expect_eq(reg_int(b, &REG), 1);
    cr_expect_eq(stats(b).hlc, (T0 + MINUTE) << 16, "held at the bound");
    /* Same after a restart of B: nothing was refused, nothing is waiting. */
    cvg_replica_close(b);
    b = open_clocked(bdir, &cb, 0);
    pull(b, a, &b_a);
    cr_expect_eq(b_a, 3);

    put(b, &REG, 20); /* B saw A's value: it replaces it */
    cr_expect_eq(stats(b).hlc, ((T0 + MINUTE) << 16) + 2, "two ticks");
    cr_expect_eq(reg_int(b, &REG), 20);
    pull(c, a, &c_a);
    cr_expect_eq(reg_int(c, &REG), 1,
                 "A's far stamp beats C's concurrent "
                 "write");
    pull(c, b, &c_b);
    cr_expect_eq(reg_int(c, &REG), 20,
                 "B's write replaced A's, not C's, "
                 "and is later than C's");
    cr_expect_lt(cvg_hlc_millis(stats(c).hlc), T0 + MINUTE + 1);
    pull(b, c, &b_c);
    pull(a, b, &a_b);
    pull(a, c, &a_c);
    char *da = cvg_test_state(a), *db = cvg_test_state(b),
         *dc = cvg_test_state(c);
    cr_expect_str_eq(da, db);
    cr_expect_str_eq(db, dc);
    free(da);
    free(db);
    free(dc);
    cr_expect_eq(reg_int(a, &REG), 20);
    cr_expect_eq(counter(a), 3);
    cvg_replica_close(a);
    cvg_replica_close(b);
    cvg_replica_close(c);
}

Test(clock, receiving_moves_the_clock_up_to_the_bound)
{
    char adir[4200], bdir[4200];
    snprintf(adir, sizeof adir, "%s", cvg_test_dir("limit-a"));
    snprintf(bdir, sizeof bdir, "%s", cvg_test_dir("limit-b"));
    const uint64_t AHEAD = 5000;
    test_clock ca = {T0 + AHEAD, 0}, cb = {T0, 0};
    cvg_replica *a = open_clocked(adir, &ca, 0);
    cvg_replica *b = open_clocked(bdir, &cb, AHEAD);

    /* Op 1 exactly at the bound, op 2 one ms past it, op 3 an hour. */
    cvg_txn *t = wtxn(a);
    cr_assert_eq(cvg_counter_add(t, &CNT, 1, NULL), CVG_OK);
    ca.now++;
    cr_assert_eq(cvg_counter_add(t, &CNT, 1, NULL), CVG_OK);
    ca.now = T0 + HOUR;
    cr_assert_eq(cvg_counter_add(t, &CNT, 1, NULL), CVG_OK);
    commit_ok(t);

    uint64_t next = 1;
    t = wtxn(b);
    cr_expect_eq(apply_from(t, a, &next), CVG_OK);
    cr_expect_eq(next, 4, "all taken");
    /* B's next local op comes after what it received within its bound,
     * though its wall clock is 5 s behind. */
    cr_assert_eq(cvg_counter_add(t, &CNT, 1, NULL), CVG_OK);
    commit_ok(t);
    cr_expect_eq(stats(b).hlc, ((T0 + AHEAD) << 16) + 1);

    /* Restarted, wall clock an hour back: past the bound, so B resumes
     * from the wall. */
    cvg_replica_close(b);
    cb.now = T0 - HOUR;
    b = open_clocked(bdir, &cb, AHEAD);
    t = wtxn(b);
    cr_assert_eq(cvg_counter_add(t, &CNT, 1, NULL), CVG_OK);
    commit_ok(t);
    size_t n;
    uint64_t *h = log_hlcs(b, &n);
    cr_assert_eq(n, 5);
    cr_expect_eq(h[0], (T0 + AHEAD) << 16, "A's ops keep their times");
    cr_expect_eq(h[1], (T0 + AHEAD + 1) << 16);
    cr_expect_eq(h[2], (T0 + HOUR) << 16);
    cr_expect_eq(h[3], ((T0 + AHEAD) << 16) + 1);
    cr_expect_eq(h[4], (T0 - HOUR) << 16);
    free(h);
    cr_expect_eq(counter(b), 5);
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
    ca.now += 2;
    cr_assert_eq(cvg_counter_add(t, &CNT, 1, NULL), CVG_OK);
    commit_ok(t);
    uint64_t next = 1;
    t = wtxn(b);
    cr_expect_eq(apply_from(t, a, &next), CVG_OK);
    cr_expect_eq(next, 3);
    commit_ok(t);
    cr_expect_eq(stats(b).hlc, (T0 + MINUTE) << 16);
    cvg_replica_close(a);
    cvg_replica_close(b);
}

/* The opt-in strict rule: an op past the bound is refused with CVG_ECLOCK,
 * nothing changes, and the same op is taken once the wall clock is there. */
Test(clock, refuse_clock_ahead_refuses_until_the_clock_catches_up)
{
    char adir[4200], bdir[4200];
    snprintf(adir, sizeof adir, "%s", cvg_test_dir("strict-a"));
    snprintf(bdir, sizeof bdir, "%s", cvg_test_dir("strict-b"));
    test_clock ca = {T0 + 10 * MINUTE, 0}, cb = {T0, 0};
    cvg_replica *a = open_clocked(adir, &ca, 0);
    put(a, &REG, 1);
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    cr_expect(!o.refuse_clock_ahead, "off by default");
    o.durability = CVG_RELAXED;
    o.clock = read_clock;
    o.clock_ctx = &cb;
    o.refuse_clock_ahead = true;
    cvg_replica *b = NULL;
    cr_assert_eq(cvg_replica_open(bdir, &o, &b), CVG_OK);
    char *b0 = cvg_test_state(b);
    uint64_t next = 1;
    cvg_txn *t = wtxn(b);
    cr_expect_eq(apply_from(t, a, &next), CVG_ECLOCK);
    cr_expect_eq(next, 1, "nothing applied");
    cr_expect(strstr(cvg_replica_errmsg(b), "ahead") != NULL, "errmsg: %s",
              cvg_replica_errmsg(b));
    commit_ok(t);
    char *b1 = cvg_test_state(b);
    cr_expect_str_eq(b1, b0);
    cr_expect_eq(stats(b).hlc, 0, "the refused time did not move the clock");
    free(b0);
    free(b1);
    cb.now = T0 + 9 * MINUTE;
    pull(b, a, &next);
    cr_expect_eq(next, 3);
    cr_expect_eq(reg_int(b, &REG), 1);
    cvg_replica_close(a);
    cvg_replica_close(b);
}

/* ---- The jump and return, three replicas --------------------------------- */

#define NREP 3
#define NFIELDS 4

typedef struct node {
    char dir[4200];
    test_clock c;
    cvg_replica *r;
    int64_t skew; /* ms off the true time, besides A's jump */
} node;

static const cvg_key FIELDS[NFIELDS] = {{"jump", "rec", "f0"},
                                        {"jump", "rec", "f1"},
                                        {"jump", "rec", "f2"},
                                        {"jump", "rec", "f3"}};
static const cvg_key OWN = {"jump", "rec", "own"}; /* only A writes it */

/* Every replica's committed clock is within its wall + the bound, except
 * A's before its first write once its wall clock is right again. */
static void
check_clocks(node *nd, bool a_wrote_since, const char *when, uint64_t seed)
{
    for (int i = 0; i < NREP; i++) {
        if (i == 0 && !a_wrote_since) {
            continue;
        }
        uint64_t ms = cvg_hlc_millis(stats(nd[i].r).hlc);
        cr_assert_leq(ms, nd[i].c.now + MINUTE,
                      "%s: replica %d's clock %llu ms, %llu ahead of its "
                      "wall (seed %llu)",
                      when, i, (unsigned long long)ms,
                      (unsigned long long)(ms - nd[i].c.now),
                      (unsigned long long)seed);
    }
}

/* A (replica 0) writes with its wall clock a year ahead for a while, then
 * right again, and keeps writing; B and C write all along, and the three
 * pull from each other in a random schedule. Every pull must take
 * everything (nobody is cut off), B's and C's clocks never pass their wall
 * + the bound, and once all have everything they agree on every value.
 * Then writes made after seeing A's far ones win everywhere, A's own
 * included. Several schedules. */
Test(clock, a_jump_and_return_cuts_nobody_off, .timeout = 120)
{
    uint64_t seed0 = cvg_test_seed(2026);
    for (uint64_t sched = 0; sched < 6; sched++) {
        uint64_t seed = seed0 + sched;
        uint64_t rng = seed;
        node nd[NREP];
        uint64_t next[NREP][NREP];
        uint64_t truth = T0;
        for (int i = 0; i < NREP; i++) {
            char name[64];
            snprintf(name, sizeof name, "jump-%llu-%d",
                     (unsigned long long)sched, i);
            snprintf(nd[i].dir, sizeof nd[i].dir, "%s", cvg_test_dir(name));
            nd[i].skew = (int64_t)cvg_test_below(&rng, 200) - 100;
            nd[i].c.now = (uint64_t)((int64_t)truth + nd[i].skew);
            nd[i].c.reads = 0;
            nd[i].r = open_clocked(nd[i].dir, &nd[i].c, 0);
            for (int j = 0; j < NREP; j++) {
                next[i][j] = 1;
            }
        }
        int64_t own_last = 0, writes = 0;
        bool a_wrote_since = true;
        const int STEPS = 90;
        for (int step = 0; step < STEPS; step++) {
            /* Steps 20..44: A's wall clock is a year ahead. */
            bool jumped = step >= 20 && step < 45;
            truth += cvg_test_below(&rng, 2000);
            for (int i = 0; i < NREP; i++) {
                nd[i].c.now = (uint64_t)((int64_t)truth + nd[i].skew) +
                              (i == 0 && jumped ? YEAR : 0);
            }
            if (step == 45) {
                a_wrote_since = false;
            }
            int who = (int)cvg_test_below(&rng, NREP);
            if (jumped && cvg_test_below(&rng, 2) == 0) {
                who = 0; /* A writes a lot while ahead */
            }
            if (cvg_test_below(&rng, 2) == 0) {
                int64_t v = ++writes * 10 + who;
                if (who == 0 && cvg_test_below(&rng, 2) == 0) {
                    put(nd[0].r, &OWN, v);
                    own_last = v;
                } else {
                    put(nd[who].r, &FIELDS[cvg_test_below(&rng, NFIELDS)], v);
                }
                if (who == 0 && step >= 45) {
                    a_wrote_since = true;
                }
            } else {
                int from = (int)cvg_test_below(&rng, NREP - 1);
                from += from >= who;
                pull(nd[who].r, nd[from].r, &next[who][from]);
            }
            check_clocks(nd, a_wrote_since || jumped || step < 20,
                         "during the schedule", seed);
        }
        if (own_last == 0) {
            put(nd[0].r, &OWN, own_last = ++writes * 10);
        }
        /* Everything everywhere: two rounds of every pull. */
        for (int round = 0; round < 2; round++) {
            for (int i = 0; i < NREP; i++) {
                for (int j = 0; j < NREP; j++) {
                    if (i != j) {
                        pull(nd[i].r, nd[j].r, &next[i][j]);
                    }
                }
            }
        }
        char *d0 = cvg_test_state(nd[0].r);
        for (int i = 1; i < NREP; i++) {
            char *di = cvg_test_state(nd[i].r);
            cr_assert_str_eq(di, d0, "replica %d differs (seed %llu)", i,
                             (unsigned long long)seed);
            free(di);
        }
        free(d0);
        for (int f = 0; f < NFIELDS; f++) {
            cvg_txn *t;
            cr_assert_eq(cvg_txn_begin(nd[0].r, CVG_TXN_READ_ONLY, &t), CVG_OK);
            cvg_value v;
            bool has = cvg_register_get(t, &FIELDS[f], &v) == CVG_OK;
            cvg_txn_abort(t);
            for (int i = 1; has && i < NREP; i++) {
                cr_assert_eq(reg_int(nd[i].r, &FIELDS[f]), v.as.integer,
                             "field %d, replica %d (seed %llu)", f, i,
                             (unsigned long long)seed);
            }
        }
        for (int i = 0; i < NREP; i++) {
            cr_assert_eq(reg_int(nd[i].r, &OWN), own_last,
                         "A's last write to its own field, on %d (seed "
                         "%llu)",
                         i, (unsigned long long)seed);
            cr_assert_eq(counter(nd[i].r), writes == 0 ? 1 : writes);
        }

        /* Writes made after seeing everything win everywhere, whatever
         * stamps the values they replace carry: B on every field, A on
         * its own. */
        for (int f = 0; f < NFIELDS; f++) {
            put(nd[1].r, &FIELDS[f], 1000000 + f);
        }
        put(nd[0].r, &OWN, 2000000);
        for (int i = 0; i < NREP; i++) {
            for (int j = 0; j < NREP; j++) {
                if (i != j) {
                    pull(nd[i].r, nd[j].r, &next[i][j]);
                }
            }
        }
        for (int i = 0; i < NREP; i++) {
            for (int f = 0; f < NFIELDS; f++) {
                cr_assert_eq(reg_int(nd[i].r, &FIELDS[f]), 1000000 + f,
                             "replica %d, field %d (seed %llu)", i, f,
                             (unsigned long long)seed);
            }
            cr_assert_eq(reg_int(nd[i].r, &OWN), 2000000);
        }
        check_clocks(nd, true, "at the end", seed);
        for (int i = 0; i < NREP; i++) {
            cvg_replica_close(nd[i].r);
        }
    }
}
