/* Failure injection: every allocation of a write transaction, of opening a
 * replica, of reads and of applying remote ops is failed in turn, and a full
 * LMDB map is hit on purpose. Whatever fails, the call reports it
 * (CVG_ENOMEM or CVG_EFULL), nothing half-done is stored, nothing leaks
 * (run under ASan) and the replica keeps working. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checks.h"
#include "common.h"
#include "digest.h"
#include "replica/replica_int.h"
#include "testutil.h"

#define MAX_STEPS 20000ul /* no workload here needs this many allocations */

/* The run under test, for messages. */
static unsigned long cur_n;

/* ---- Helpers ------------------------------------------------------------- */

/* Whether the failure armed with cvg__alloc_fail_after(n) was used up: if it
 * is still pending, one of the next n allocations fails. Disarms. */
static bool
fault_consumed(unsigned long n)
{
    bool pending = false;
    for (unsigned long i = 0; i < n && !pending; i++) {
        void *p = cvg__alloc(1);
        if (p == NULL) {
            pending = true;
        }
        cvg__free(p);
    }
    cvg__alloc_fail_after(0);
    return !pending;
}

static cvg_replica *
open_dir(const char *dir)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = CVG_RELAXED; /* many replicas: keep fsync out of it */
    cvg_replica *r = NULL;
    int rc = cvg_replica_open(dir, &o, &r);
    cr_assert_eq(rc, CVG_OK, "open %s: %s", dir, cvg_errname(rc));
    return r;
}

static const cvg_key CNT = {"shop", "apples", "qty"};
static const cvg_key CNT2 = {"shop", "apples", "sold"};
static const cvg_key REG = {"shop", "apples", "name"};
static const cvg_key REG2 = {"shop", "apples", "story"};
static const cvg_key MVR = {"shop", "apples", "notes"};
static const cvg_key SET = {"shop", "apples", "tags"};
static const cvg_key PEAR_C = {"shop", "pears", "qty"};
static const cvg_key PEAR_R = {"shop", "pears", "name"};
static const cvg_key PEAR_S = {"shop", "pears", "tags"};
static const cvg_key PLUM_C = {"shop", "plums", "qty"};

/* What is committed before each faulty run. */
static void
seed(cvg_replica *r)
{
    cvg_txn *t;
    cr_assert_eq(cvg_txn_begin(r, 0, &t), CVG_OK);
    cvg_value name = cvg_value_string("Gala");
    cvg_value red = cvg_value_string("red"), green = cvg_value_string("green");
    cr_assert_eq(cvg_counter_add(t, &CNT, 10, NULL), CVG_OK);
    cr_assert_eq(cvg_register_set(t, &REG, &name, NULL), CVG_OK);
    cr_assert_eq(cvg_mvregister_set(t, &MVR, &name, NULL), CVG_OK);
    cr_assert_eq(cvg_set_add(t, &SET, &red, NULL), CVG_OK);
    cr_assert_eq(cvg_set_add(t, &SET, &green, NULL), CVG_OK);
    cr_assert_eq(cvg_counter_add(t, &PEAR_C, 4, NULL), CVG_OK);
    cr_assert_eq(cvg_register_set(t, &PEAR_R, &name, NULL), CVG_OK);
    cr_assert_eq(cvg_set_add(t, &PEAR_S, &green, NULL), CVG_OK);
    cr_assert_eq(cvg_txn_commit(t), CVG_OK);
}

#define WORKLOAD_OPS 13 /* ops the workload writes */

/* One step of the workload; read steps check what they read. */
static int
step(cvg_txn *t, int i)
{
    static char story[300];
    memset(story, 's', sizeof story - 1);
    cvg_value fuji = cvg_value_string("Fuji");
    cvg_value longv = cvg_value_string(story);
    cvg_value blue = cvg_value_string("blue");
    cvg_value red = cvg_value_string("red");
    cvg_value green = cvg_value_string("green");
    cvg_value n7 = cvg_value_int(7);
    switch (i) {
    case 0:
        return cvg_counter_add(t, &CNT, 3, NULL);
    case 1:
        return cvg_counter_add(t, &CNT2, -2, NULL);
    case 2:
        return cvg_register_set(t, &REG, &fuji, NULL);
    case 3:
        return cvg_register_set(t, &REG2, &longv, NULL);
    case 4:
        return cvg_mvregister_set(t, &MVR, &n7, NULL);
    case 5:
        return cvg_set_add(t, &SET, &blue, NULL);
    case 6:
        return cvg_set_add(t, &SET, &red, NULL);
    case 7:
        return cvg_set_remove(t, &SET, &green, NULL);
    case 8: {
        int64_t v = 0;
        int rc = cvg_counter_get(t, &CNT, &v);
        if (rc == CVG_OK) {
            cr_assert_eq(v, 13, "n=%lu: counter reads %lld", cur_n,
                         (long long)v);
        }
        return rc;
    }
    case 9: {
        /* A cursor flushes the cache into LMDB. */
        cvg_set_cursor *c;
        int rc = cvg_set_cursor_open(t, &SET, &c);
        int n = 0;
        cvg_value e;
        while (rc == CVG_OK && (rc = cvg_set_cursor_next(c, &e)) == CVG_OK) {
            n++;
        }
        cvg_set_cursor_close(c);
        if (rc == CVG_DONE) {
            cr_assert_eq(n, 2, "red and blue");
            rc = CVG_OK;
        }
        return rc;
    }
    case 10:
        return cvg_counter_add(t, &PEAR_C, 1, NULL);
    case 11:
        return cvg_set_add(t, &PEAR_S, &blue, NULL);
    case 12:
        return cvg_record_delete(t, &PEAR_C, NULL);
    case 13:
        /* A new record after the delete. */
        return cvg_counter_add(t, &PLUM_C, 9, NULL);
    case 14: {
        cvg_log_cursor *c;
        int rc = cvg_log_cursor_open(t, 1, &c);
        cvg_op op;
        int n = 0;
        while (rc == CVG_OK && (rc = cvg_log_cursor_next(c, &op)) == CVG_OK) {
            n++;
        }
        cvg_log_cursor_close(c);
        if (rc == CVG_DONE) {
            cr_assert_eq(n, 8 + 12, "the seed's and the 12 before");
            rc = CVG_OK;
        }
        return rc;
    }
    default:
        return cvg_register_set(t, &REG, &blue, NULL);
    }
}

#define WORKLOAD_STEPS 16

/* Begin, every step, commit. With @p retry, a step that fails is tried once
 * more (the injected failure is used up): a failure that left the txn
 * usable must have changed nothing, so the end state is the same. */
static int
workload(cvg_replica *r, bool retry)
{
    cvg_txn *t = NULL;
    int rc = cvg_txn_begin(r, 0, &t);
    if (rc != CVG_OK && retry) {
        cr_assert_eq(rc, CVG_ENOMEM, "begin: %s", cvg_errname(rc));
        cr_assert_null(t);
        rc = cvg_txn_begin(r, 0, &t);
    }
    if (rc != CVG_OK) {
        cr_assert_null(t);
        return rc;
    }
    for (int i = 0; i < WORKLOAD_STEPS; i++) {
        rc = step(t, i);
        if (rc != CVG_OK && retry) {
            cr_assert_eq(rc, CVG_ENOMEM, "n=%lu step %d: %s", cur_n, i,
                         cvg_errname(rc));
            rc = step(t, i);
            cr_assert(rc == CVG_OK || rc == CVG_ENOMEM,
                      "n=%lu step %d retried: %s", cur_n, i, cvg_errname(rc));
        }
        if (rc != CVG_OK) {
            cvg_txn_abort(t);
            return rc;
        }
    }
    return cvg_txn_commit(t);
}

typedef struct expect {
    char *d0;    /* digest before the workload */
    uint64_t n0; /* ops before */
    char *d1;    /* digest after it */
    uint64_t n1;
} expect;

static void
reference(expect *x)
{
    cvg_replica *r = open_dir(cvg_test_dir("fault-ref"));
    seed(r);
    x->d0 = cvg_test_state(r);
    x->n0 = cvg_test_op_count(r);
    cr_assert_eq(workload(r, false), CVG_OK);
    x->d1 = cvg_test_state(r);
    x->n1 = cvg_test_op_count(r);
    cr_assert_eq(x->n1, x->n0 + WORKLOAD_OPS);
    cr_assert_str_neq(x->d0, x->d1);
    cvg_replica_close(r);
}

static void
fault_loop(bool retry)
{
    expect x;
    reference(&x);
    unsigned long n;
    unsigned long failures = 0, swallowed = 0;
    for (n = 1; n < MAX_STEPS; n++) {
        /* One name for every run: cvg_test_dir() starts it afresh. */
        cvg_replica *r = open_dir(cvg_test_dir("fault-run"));
        seed(r);

        cur_n = n;
        cvg__alloc_fail_after(n);
        int rc = workload(r, retry);
        bool consumed = fault_consumed(n);

        char *d = cvg_test_state(r);
        uint64_t ops = cvg_test_op_count(r);
        if (rc == CVG_OK) {
            cr_assert_str_eq(d, x.d1,
                             "n=%lu: a successful run stored the "
                             "wrong state",
                             n);
            cr_assert_eq(ops, x.n1, "n=%lu", n);
            swallowed += consumed;
        } else {
            cr_assert_eq(rc, CVG_ENOMEM, "n=%lu: %s (%s)", n, cvg_errname(rc),
                         cvg_replica_errmsg(r));
            cr_assert(consumed, "n=%lu: failed without an injected failure", n);
            cr_assert_str_eq(d, x.d0, "n=%lu: a failed run changed the state",
                             n);
            cr_assert_eq(ops, x.n0, "n=%lu: a failed run logged ops", n);
            failures++;
            /* The replica still works: the same run, without faults. */
            cr_assert_eq(workload(r, false), CVG_OK, "n=%lu: after failure", n);
            char *d2 = cvg_test_state(r);
            cr_assert_str_eq(d2, x.d1, "n=%lu: after failure", n);
            cr_assert_eq(cvg_test_op_count(r), x.n1);
            free(d2);
        }
        free(d);
        cvg_replica_close(r);
        if (rc == CVG_OK && !consumed) {
            break; /* every allocation of the run was failed once */
        }
    }
    cr_assert_lt(n, MAX_STEPS, "the loop never ended");
    cr_expect_gt(failures, 10, "only %lu failing runs", failures);
    cr_log_info(
        "retry=%d: %lu allocations, %lu failing runs, %lu failures "
        "absorbed",
        retry, n - 1, failures, swallowed);
    free(x.d0);
    free(x.d1);
}

/* ---- Allocation failures ------------------------------------------------- */

Test(fault, every_allocation_of_a_write_txn_fails_cleanly, .timeout = 600)
{
    fault_loop(false);
}

Test(fault, a_write_that_failed_cleanly_can_be_retried, .timeout = 600)
{
    fault_loop(true);
}

/* The smallest case of the retry test: loading a stored counter fails for
 * lack of memory. The add reports CVG_ENOMEM and the txn stays usable, so
 * the caller retries; the stored value must still count. */
Test(fault, enomem_while_loading_a_stored_record_loses_nothing)
{
    unsigned long n;
    for (n = 1; n < MAX_STEPS; n++) {
        /* One name for every run: cvg_test_dir() starts it afresh. */
        cvg_replica *r = open_dir(cvg_test_dir("load-run"));
        seed(r); /* CNT = 10 */
        cvg_txn *t;
        cr_assert_eq(cvg_txn_begin(r, 0, &t), CVG_OK);
        cvg__alloc_fail_after(n);
        int rc = cvg_counter_add(t, &CNT, 3, NULL);
        bool consumed = fault_consumed(n);
        int64_t want = 13;
        if (rc != CVG_OK) {
            cr_assert_eq(rc, CVG_ENOMEM, "n=%lu: %s", n, cvg_errname(rc));
            int64_t v = -1;
            int grc = cvg_counter_get(t, &CNT, &v);
            cr_expect(grc == CVG_ENOMEM || (grc == CVG_OK && v == 10),
                      "n=%lu: after the failed add the counter reads %s, %lld "
                      "(want 10)",
                      n, cvg_errname(grc), (long long)v);
            if (grc != CVG_ENOMEM) {
                /* The txn says it is usable: retry the add. */
                cr_assert_eq(cvg_counter_add(t, &CNT, 3, NULL), CVG_OK);
                cr_assert_eq(cvg_txn_commit(t), CVG_OK);
            } else {
                cvg_txn_abort(t);
                want = 10;
            }
        } else {
            cr_assert_eq(cvg_txn_commit(t), CVG_OK);
        }
        cvg_txn *rt;
        cr_assert_eq(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &rt), CVG_OK);
        int64_t v = -1;
        cr_assert_eq(cvg_counter_get(rt, &CNT, &v), CVG_OK);
        cr_expect_eq(v, want, "n=%lu: committed counter is %lld, want %lld", n,
                     (long long)v, (long long)want);
        cvg_txn_abort(rt);
        cvg_replica_close(r);
        if (rc == CVG_OK && !consumed) {
            break;
        }
    }
    cr_assert_lt(n, MAX_STEPS);
}

/* The same for reads: a read that failed for lack of memory must not make
 * the next read of the same field say it is missing. */
Test(fault, enomem_in_a_read_does_not_hide_the_field)
{
    cvg_replica *r = open_dir(cvg_test_dir("read-load"));
    seed(r);
    unsigned long n;
    for (n = 1; n < MAX_STEPS; n++) {
        cvg_txn *t;
        cr_assert_eq(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t), CVG_OK);
        cvg__alloc_fail_after(n);
        cvg_value out;
        int rc = cvg_register_get(t, &REG, &out);
        bool consumed = fault_consumed(n);
        cr_assert(rc == CVG_OK || rc == CVG_ENOMEM, "n=%lu: %s", n,
                  cvg_errname(rc));
        int rc2 = cvg_register_get(t, &REG, &out);
        cr_expect(rc2 == CVG_OK || rc2 == CVG_ENOMEM,
                  "n=%lu: after %s, the register reads %s", n, cvg_errname(rc),
                  cvg_errname(rc2));
        cvg_txn_abort(t);
        if (rc == CVG_OK && !consumed) {
            break;
        }
    }
    cr_assert_lt(n, MAX_STEPS);
    cvg_replica_close(r);
}

/* A failure after an op changed the state makes the txn fail as a whole:
 * every later call says so, commit reports it and frees the txn, and the
 * next txn works. */
Test(fault, a_failed_txn_commits_nothing_and_frees_itself, .timeout = 300)
{
    expect x;
    reference(&x);
    unsigned long sticky = 0;
    for (unsigned long n = 1; n < MAX_STEPS; n++) {
        /* One name for every run: cvg_test_dir() starts it afresh. */
        cvg_replica *r = open_dir(cvg_test_dir("sticky-run"));
        seed(r);
        cvg_txn *t;
        cr_assert_eq(cvg_txn_begin(r, 0, &t), CVG_OK);
        cvg__alloc_fail_after(n);
        int rc = CVG_OK, i;
        for (i = 0; i < WORKLOAD_STEPS && rc == CVG_OK; i++) {
            rc = step(t, i);
        }
        bool consumed = fault_consumed(n);
        if (rc == CVG_OK) {
            cvg_txn_abort(t);
            cvg_replica_close(r);
            if (!consumed) {
                break;
            }
            continue;
        }
        int failed_step = i - 1;
        cr_assert_eq(rc, CVG_ENOMEM, "n=%lu step %d: %s", n, failed_step,
                     cvg_errname(rc));
        /* Sticky if a harmless op now fails too. */
        int64_t v;
        int again = cvg_counter_get(t, &CNT, &v);
        if (again == CVG_OK) {
            /* Not sticky: the txn is usable, so the failed step wrote
             * nothing; commit what came before it. */
            cr_assert_eq(cvg_txn_commit(t), CVG_OK);
        } else {
            sticky++;
            cr_assert_eq(again, CVG_ENOMEM,
                         "n=%lu: after step %d failed, a read gives %s (%s)", n,
                         failed_step, cvg_errname(again),
                         cvg_replica_errmsg(r));
            cvg_value one = cvg_value_int(1);
            cr_expect_eq(cvg_counter_add(t, &CNT, 1, NULL), CVG_ENOMEM);
            cr_expect_eq(cvg_set_add(t, &SET, &one, NULL), CVG_ENOMEM);
            cr_expect_eq(cvg_txn_commit(t), CVG_ENOMEM, "n=%lu", n);
            char *d = cvg_test_state(r);
            cr_assert_str_eq(d, x.d0, "n=%lu", n);
            cr_assert_eq(cvg_test_op_count(r), x.n0, "n=%lu", n);
            free(d);
        }
        /* The writer slot is free again. */
        cr_assert_eq(cvg_txn_begin(r, 0, &t), CVG_OK, "n=%lu", n);
        cr_assert_eq(cvg_counter_add(t, &PLUM_C, 1, NULL), CVG_OK);
        cr_assert_eq(cvg_txn_commit(t), CVG_OK);
        cvg_replica_close(r);
    }
    cr_expect_gt(sticky, 0, "no failure made the txn fail as a whole");
    cr_log_info("%lu runs failed the txn as a whole", sticky);
    free(x.d0);
    free(x.d1);
}

Test(fault, opening_under_allocation_failure)
{
    /* A new replica, then an existing one with two origins' worth of
     * meta. */
    for (int existing = 0; existing < 2; existing++) {
        const char *dir = cvg_test_dir(existing ? "open-old" : "open-new");
        char path[4200];
        snprintf(path, sizeof path, "%s", dir);
        if (existing) {
            cvg_replica *r = open_dir(path);
            seed(r);
            cvg_replica_close(r);
        }
        unsigned long n;
        for (n = 1; n < MAX_STEPS; n++) {
            cvg_replica_options o;
            cvg_replica_options_init(&o);
            cvg_replica *r = (cvg_replica *)0x1;
            cvg__alloc_fail_after(n);
            int rc = cvg_replica_open(path, &o, &r);
            bool consumed = fault_consumed(n);
            if (rc != CVG_OK) {
                cr_assert_eq(rc, CVG_ENOMEM, "n=%lu: %s", n, cvg_errname(rc));
                cr_assert_null(r);
                continue;
            }
            cr_assert_not_null(r);
            /* What opened is usable. */
            cvg_txn *t;
            cr_assert_eq(cvg_txn_begin(r, 0, &t), CVG_OK);
            cr_assert_eq(cvg_counter_add(t, &PLUM_C, 1, NULL), CVG_OK);
            cr_assert_eq(cvg_txn_commit(t), CVG_OK);
            cvg_replica_close(r);
            if (!consumed) {
                break;
            }
        }
        cr_assert_lt(n, MAX_STEPS);
    }
}

Test(fault, reads_under_allocation_failure, .timeout = 300)
{
    cvg_replica *r = open_dir(cvg_test_dir("fault-reads"));
    seed(r);
    char *d0 = cvg_test_state(r);
    unsigned long n;
    for (n = 1; n < MAX_STEPS; n++) {
        cvg__alloc_fail_after(n);
        char *d = NULL;
        int rc = cvg_test_digest(r, &d);
        bool consumed = fault_consumed(n);
        if (rc == CVG_OK) {
            cr_assert_str_eq(d, d0, "n=%lu", n);
        } else {
            cr_assert_eq(rc, CVG_ENOMEM, "n=%lu: %s", n, cvg_errname(rc));
        }
        free(d);
        /* Nothing is left open: a write txn can start. */
        cvg_txn *t;
        cr_assert_eq(cvg_txn_begin(r, 0, &t), CVG_OK, "n=%lu", n);
        cvg_txn_abort(t);
        if (rc == CVG_OK && !consumed) {
            break;
        }
    }
    cr_assert_lt(n, MAX_STEPS);
    free(d0);
    cvg_replica_close(r);
}

/* Ops of replica A applied to B through the remote path, with every
 * allocation failed in turn. */
static int
pull_all(cvg_replica *to, cvg_replica *from)
{
    cvg_txn *src = NULL, *dst = NULL;
    int rc = cvg_txn_begin(from, CVG_TXN_READ_ONLY, &src);
    if (rc != CVG_OK) {
        return rc;
    }
    rc = cvg_txn_begin(to, 0, &dst);
    cvg__log_iter it;
    memset(&it, 0, sizeof it);
    bool it_open = false;
    if (rc == CVG_OK) {
        rc = cvg__log_iter_open(&from->store, src->mt, 1, &it);
        it_open = true;
    }
    cvg__op op;
    while (rc == CVG_OK && (rc = cvg__log_iter_next(&it, &op)) == CVG_OK) {
        bool conflict;
        rc = cvg__txn_apply_remote(dst, &op, &conflict);
        rc = rc == CVG_DONE ? CVG_OK : rc;
    }
    if (it_open) {
        cvg__log_iter_close(&it);
    }
    cvg_txn_abort(src);
    if (rc == CVG_DONE) {
        return cvg_txn_commit(dst);
    }
    cvg_txn_abort(dst);
    return rc;
}

Test(fault, remote_apply_under_allocation_failure, .timeout = 600)
{
    /* The reference: B after pulling everything of A. */
    char adir[4200];
    snprintf(adir, sizeof adir, "%s", cvg_test_dir("remote-a"));
    cvg_replica *a = open_dir(adir);
    seed(a);
    cr_assert_eq(workload(a, false), CVG_OK);
    uint64_t na = cvg_test_op_count(a);
    char *dref = NULL;
    unsigned long n;
    for (n = 0; n < MAX_STEPS; n++) {
        /* One name for every run: cvg_test_dir() starts it afresh. */
        cvg_replica *b = open_dir(cvg_test_dir("remote-b"));
        /* B has something of its own, with the same names. */
        cvg_txn *t;
        cr_assert_eq(cvg_txn_begin(b, 0, &t), CVG_OK);
        cr_assert_eq(cvg_counter_add(t, &PLUM_C, 2, NULL), CVG_OK);
        cr_assert_eq(cvg_txn_commit(t), CVG_OK);
        if (n == 0) {
            /* The reference run, without faults. */
            cr_assert_eq(pull_all(b, a), CVG_OK);
            dref = cvg_test_state(b);
            cvg_replica_close(b);
            continue;
        }
        char *db0 = cvg_test_state(b);
        cvg_replica_stats st0;
        cr_assert_eq(cvg_replica_stats_get(b, &st0, sizeof st0), CVG_OK);

        cvg__alloc_fail_after(n);
        int rc = pull_all(b, a);
        bool consumed = fault_consumed(n);
        cvg_replica_stats st;
        cr_assert_eq(cvg_replica_stats_get(b, &st, sizeof st), CVG_OK);
        char *db = cvg_test_state(b);
        if (rc != CVG_OK) {
            cr_assert_eq(rc, CVG_ENOMEM, "n=%lu: %s (%s)", n, cvg_errname(rc),
                         cvg_replica_errmsg(b));
            cr_assert_str_eq(db, db0, "n=%lu", n);
            cr_assert_eq(st.op_count, st0.op_count, "n=%lu", n);
            cr_assert_eq(st.origins, st0.origins,
                         "n=%lu: an aborted pull left an origin", n);
            /* Pull again without faults. */
            cr_assert_eq(pull_all(b, a), CVG_OK, "n=%lu", n);
            free(db);
            db = cvg_test_state(b);
            cr_assert_str_eq(db, dref, "n=%lu: after a clean pull", n);
            cr_assert_eq(cvg_test_op_count(b), st0.op_count + na);
        } else {
            cr_assert_str_eq(db, dref, "n=%lu", n);
            cr_assert_eq(st.op_count, st0.op_count + na, "n=%lu", n);
            cr_assert_eq(st.origins, 2);
        }
        free(db);
        free(db0);
        cvg_replica_close(b);
        if (rc == CVG_OK && !consumed) {
            break;
        }
    }
    cr_assert_lt(n, MAX_STEPS);
    cr_log_info("remote apply: %lu allocations", n - 1);
    free(dref);
    cvg_replica_close(a);
}

/* ---- A full map ---------------------------------------------------------- */

/* 64 KiB (16 pages) holds a new replica but not one commit of fill_txn():
 * every commit copies a page of each of the five B-trees it touches. */
#define SMALL_MAP ((size_t)256 << 10)

static cvg_replica *
open_sized(const char *dir, size_t map, size_t max)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = CVG_RELAXED;
    o.map_size = map;
    o.map_size_max = max;
    cvg_replica *r = NULL;
    int rc = cvg_replica_open(dir, &o, &r);
    cr_assert_eq(rc, CVG_OK, "open %s: %s (map %zu)", dir, cvg_errname(rc),
                 map);
    return r;
}

/* Transaction @p i of the filling workload: 16 new 256-byte registers. */
static int
fill_txn(cvg_replica *r, int i)
{
    cvg_txn *t;
    int rc = cvg_txn_begin(r, 0, &t);
    if (rc != CVG_OK) {
        return rc;
    }
    char val[257];
    memset(val, 'a' + i % 26, 256);
    val[256] = '\0';
    cvg_value v = cvg_value_string(val);
    for (int j = 0; j < 16 && rc == CVG_OK; j++) {
        char key[32];
        snprintf(key, sizeof key, "k%05d-%02d", i, j);
        cvg_key k = {"fill", key, "v"};
        rc = cvg_register_set(t, &k, &v, NULL);
    }
    if (rc != CVG_OK) {
        cvg_txn_abort(t);
        return rc;
    }
    return cvg_txn_commit(t);
}

Test(fault, map_full_then_grown, .timeout = 60)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", cvg_test_dir("map-full"));
    cvg_replica *r = open_sized(dir, SMALL_MAP, SMALL_MAP);
    char *last = cvg_test_state(r);
    uint64_t last_ops = cvg_test_op_count(r);
    int i, rc = CVG_OK;
    for (i = 0; i < 10000; i++) {
        rc = fill_txn(r, i);
        if (rc != CVG_OK) {
            break;
        }
        free(last);
        last = cvg_test_state(r);
        last_ops = cvg_test_op_count(r);
        cr_assert_eq(last_ops, (uint64_t)(i + 1) * 16);
    }
    cr_assert_eq(rc, CVG_EFULL, "after %d txns: %s", i, cvg_errname(rc));
    cr_assert_gt(i, 0, "not even one txn fitted");
    cr_log_info("a %zu-byte map took %d txns (%llu ops)", SMALL_MAP, i,
                (unsigned long long)last_ops);
    cvg_replica_stats st;
    cr_assert_eq(cvg_replica_stats_get(r, &st, sizeof st), CVG_OK);
    cr_expect_eq(st.map_bytes, SMALL_MAP, "the map did not grow");
    cr_expect_eq(st.op_count, last_ops, "the failed commit logged nothing");
    char *now = cvg_test_state(r);
    cr_expect_str_eq(now, last, "the failed commit changed the state");
    free(now);
    /* Reads still work. */
    cvg_txn *t;
    cr_assert_eq(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t), CVG_OK);
    cvg_key k0 = {"fill", "k00000-00", "v"};
    cvg_value out;
    cr_expect_eq(cvg_register_get(t, &k0, &out), CVG_OK);
    cr_expect_eq(out.as.bytes.len, 256);
    cvg_txn_abort(t);
    /* A small commit succeeds or fails cleanly. */
    cr_assert_eq(cvg_txn_begin(r, 0, &t), CVG_OK, "the writer slot is free");
    cr_assert_eq(cvg_counter_add(t, &CNT, 1, NULL), CVG_OK);
    rc = cvg_txn_commit(t);
    cr_assert(rc == CVG_OK || rc == CVG_EFULL, "small commit: %s",
              cvg_errname(rc));
    if (rc == CVG_OK) {
        cr_expect_eq(cvg_test_op_count(r), last_ops + 1);
        free(last);
        last = cvg_test_state(r);
        last_ops++;
    } else {
        now = cvg_test_state(r);
        cr_expect_str_eq(now, last);
        free(now);
        cr_expect_eq(cvg_test_op_count(r), last_ops);
    }
    /* Again: the full replica keeps refusing the big txn the same way. */
    cr_expect_eq(fill_txn(r, i), CVG_EFULL);
    cr_expect_eq(cvg_test_op_count(r), last_ops);
    cvg_replica_close(r);

    /* Reopened with room to grow, the refused txn now commits. */
    r = open_sized(dir, SMALL_MAP, (size_t)64 << 20);
    now = cvg_test_state(r);
    cr_expect_str_eq(now, last, "the state survived reopening");
    free(now);
    for (int j = 0; j < 4; j++) {
        rc = fill_txn(r, i + j);
        cr_assert_eq(rc, CVG_OK, "txn %d after growing: %s (%s)", i + j,
                     cvg_errname(rc), cvg_replica_errmsg(r));
    }
    cr_assert_eq(cvg_replica_stats_get(r, &st, sizeof st), CVG_OK);
    cr_expect_gt(st.map_bytes, SMALL_MAP, "the map grew");
    cr_expect_eq(st.op_count, last_ops + 4 * 16);
    cr_log_info("grown map: %llu bytes", (unsigned long long)st.map_bytes);
    cvg_replica_close(r);

    /* A fresh replica with the same small start and room to grow runs the
     * whole workload and more. */
    r = open_sized(cvg_test_dir("map-grows"), SMALL_MAP, (size_t)64 << 20);
    int total = i + 20;
    for (int j = 0; j < total; j++) {
        rc = fill_txn(r, j);
        cr_assert_eq(rc, CVG_OK, "txn %d: %s (%s)", j, cvg_errname(rc),
                     cvg_replica_errmsg(r));
    }
    cr_assert_eq(cvg_replica_stats_get(r, &st, sizeof st), CVG_OK);
    cr_expect_gt(st.map_bytes, SMALL_MAP);
    cr_expect_leq(st.map_bytes, (size_t)64 << 20);
    cr_expect_eq(st.op_count, (uint64_t)total * 16);
    cr_log_info("map grew from %zu to %llu bytes over %d txns", SMALL_MAP,
                (unsigned long long)st.map_bytes, total);
    free(last);
    cvg_replica_close(r);
}

/* A flush in the middle of a txn (a cursor opens) fills the map: the txn
 * fails as a whole and stores nothing. */
Test(fault, map_full_during_a_flush, .timeout = 60)
{
    cvg_replica *r =
        open_sized(cvg_test_dir("flush-full"), SMALL_MAP, SMALL_MAP);
    char *d0 = cvg_test_state(r);
    cvg_txn *t;
    cr_assert_eq(cvg_txn_begin(r, 0, &t), CVG_OK);
    char val[1025];
    memset(val, 'x', 1024);
    val[1024] = '\0';
    cvg_value v = cvg_value_string(val);
    int rc = CVG_OK, i;
    for (i = 0; i < 1000 && rc == CVG_OK; i++) {
        char key[32];
        snprintf(key, sizeof key, "k%04d", i);
        cvg_key k = {"fill", key, "v"};
        rc = cvg_register_set(t, &k, &v, NULL);
        if (rc == CVG_OK && i % 8 == 7) {
            cvg_key_cursor *kc;
            rc = cvg_key_cursor_open(t, "fill", &kc); /* flushes */
            cvg_key_cursor_close(kc);
        }
    }
    cr_assert_eq(rc, CVG_EFULL, "after %d writes: %s", i, cvg_errname(rc));
    /* Every later call of the txn reports the failure. */
    int64_t c;
    cr_expect_eq(cvg_counter_get(t, &CNT, &c), CVG_EFULL);
    cr_expect_eq(cvg_counter_add(t, &CNT, 1, NULL), CVG_EFULL);
    cr_expect_eq(cvg_txn_commit(t), CVG_EFULL);
    char *d = cvg_test_state(r);
    cr_expect_str_eq(d, d0);
    cr_expect_eq(cvg_test_op_count(r), 0);
    cr_assert_eq(cvg_txn_begin(r, 0, &t), CVG_OK);
    cr_assert_eq(cvg_counter_add(t, &CNT, 1, NULL), CVG_OK);
    cr_expect_eq(cvg_txn_commit(t), CVG_OK);
    cr_expect_eq(cvg_test_op_count(r), 1);
    free(d);
    free(d0);
    cvg_replica_close(r);
}

/* The map cannot grow while this process has a read txn open (LMDB forbids
 * it); the commit fails cleanly and works once the reader is gone. */
Test(fault, map_growth_waits_for_readers, .timeout = 60)
{
    cvg_replica *r =
        open_sized(cvg_test_dir("grow-readers"), SMALL_MAP, (size_t)64 << 20);
    int i;
    for (i = 0; i < 4; i++) {
        cr_assert_eq(fill_txn(r, i), CVG_OK);
    }
    cvg_txn *reader;
    cr_assert_eq(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &reader), CVG_OK);
    int rc = CVG_OK;
    uint64_t ops = cvg_test_op_count(r);
    for (; i < 10000; i++) {
        ops = cvg_test_op_count(r);
        rc = fill_txn(r, i);
        if (rc != CVG_OK) {
            break;
        }
    }
    cr_assert_eq(rc, CVG_EFULL, "%s", cvg_errname(rc));
    cr_expect_eq(cvg_test_op_count(r), ops,
                 "nothing of the refused txn stored");
    /* The reader still reads its snapshot. */
    cvg_key k0 = {"fill", "k00000-00", "v"};
    cvg_value out;
    cr_expect_eq(cvg_register_get(reader, &k0, &out), CVG_OK);
    cvg_txn_abort(reader);
    cr_assert_eq(fill_txn(r, i), CVG_OK, "after the reader ended: %s",
                 cvg_replica_errmsg(r));
    cr_expect_eq(cvg_test_op_count(r), ops + 16);
    /* With the reader gone its pages are free again: the txn fits, the
     * map growing or not. More of them grow it. */
    for (int j = 1; j <= 40; j++) {
        int frc = fill_txn(r, i + j);
        cr_assert_eq(frc, CVG_OK, "txn %d: %s (%s)", i + j, cvg_errname(frc),
                     cvg_replica_errmsg(r));
    }
    cvg_replica_stats st;
    cr_assert_eq(cvg_replica_stats_get(r, &st, sizeof st), CVG_OK);
    cr_expect_gt(st.map_bytes, SMALL_MAP);
    cr_expect_eq(st.op_count, ops + 41 * 16);
    cvg_replica_close(r);
}

/* The map grows in the middle of a write txn (a flush fills it): cursors of
 * the txn opened before fail with CVG_EMISUSE and close without touching
 * what LMDB freed (ASan checks), and the txn commits everything. */
Test(fault, cursors_opened_before_the_map_grew, .timeout = 60)
{
    cvg_replica *r =
        open_sized(cvg_test_dir("grow-cursors"), SMALL_MAP, (size_t)64 << 20);
    cvg_txn *t;
    cr_assert_eq(cvg_txn_begin(r, 0, &t), CVG_OK);
    cr_assert_eq(cvg_counter_add(t, &CNT, 1, NULL), CVG_OK);
    cvg_log_cursor *lc;
    cvg_key_cursor *kc;
    cvg_field_cursor *fc;
    cr_assert_eq(cvg_log_cursor_open(t, 1, &lc), CVG_OK);
    cr_assert_eq(cvg_key_cursor_open(t, NULL, &kc), CVG_OK);
    const cvg_key rec = {"shop", "apples", NULL};
    cr_assert_eq(cvg_field_cursor_open(t, &rec, &fc), CVG_OK);
    uint64_t epoch = t->epoch;
    char val[1025];
    memset(val, 'y', 1024);
    val[1024] = '\0';
    cvg_value v = cvg_value_string(val);
    int i, rc = CVG_OK;
    for (i = 0; i < 2000 && t->epoch == epoch; i++) {
        char key[32];
        snprintf(key, sizeof key, "k%04d", i);
        cvg_key k = {"fill", key, "v"};
        rc = cvg_register_set(t, &k, &v, NULL);
        cr_assert_eq(rc, CVG_OK, "write %d: %s", i, cvg_errname(rc));
        if (i % 8 == 7) {
            cvg_set_cursor *sc;
            rc = cvg_set_cursor_open(t, &SET, &sc); /* flushes */
            cr_assert_eq(rc, CVG_OK, "flush %d: %s (%s)", i, cvg_errname(rc),
                         cvg_replica_errmsg(r));
            cvg_set_cursor_close(sc);
        }
    }
    cr_assert_neq(t->epoch, epoch, "the map never grew");
    cvg_op op;
    cvg_bytes a, b;
    cvg_type ty;
    cr_expect_eq(cvg_log_cursor_next(lc, &op), CVG_EMISUSE);
    cr_expect_eq(cvg_key_cursor_next(kc, &a, &b), CVG_EMISUSE);
    cr_expect_eq(cvg_field_cursor_next(fc, &a, &ty), CVG_EMISUSE);
    cvg_log_cursor_close(lc);
    cvg_key_cursor_close(kc);
    cvg_field_cursor_close(fc);
    /* New cursors see everything. */
    cr_assert_eq(cvg_key_cursor_open(t, "fill", &kc), CVG_OK);
    int n = 0;
    while ((rc = cvg_key_cursor_next(kc, &a, &b)) == CVG_OK) {
        n++;
    }
    cr_expect_eq(rc, CVG_DONE);
    cr_expect_eq(n, i);
    cvg_key_cursor_close(kc);
    cr_assert_eq(cvg_txn_commit(t), CVG_OK, "%s", cvg_replica_errmsg(r));
    cr_expect_eq(cvg_test_op_count(r), (uint64_t)i + 1);
    cvg_replica_stats st;
    cr_assert_eq(cvg_replica_stats_get(r, &st, sizeof st), CVG_OK);
    cr_expect_gt(st.map_bytes, SMALL_MAP);
    cvg_replica_close(r);
}
