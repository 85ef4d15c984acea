/*
 * Convergence over the whole stack (codec, LMDB, apply): random writes on
 * several replicas, exchanged through their logs in random partial batches,
 * with restarts. Once everyone has everything, every replica holds the same
 * state, equal to an oracle replica fed every op once in creation order
 * (a causal order), and every counter that no delete touched equals the sum
 * of its deltas. Replay one seed with CVG_TEST_SEED=N.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checks.h"
#include "digest.h"
#include "replica/replica_int.h"
#include "testutil.h"
#include "workload.h"

#define MAXR 5

typedef struct world {
    int n;
    char dirs[MAXR + 1][512];
    cvg_replica *r[MAXR + 1];    /* [MAXR] is the oracle */
    uint64_t cursor[MAXR][MAXR]; /* next lsn of j's log that i reads */
    cvg_test_workload wl;
    uint64_t seed;
} world;

static cvg_replica *
reopen(world *w, int i)
{
    cvg_test_reopen_fast(w->dirs[i], &w->r[i], w->seed);
    return w->r[i];
}

/* Apply up to @p limit ops of @p from's log (from @p cursor on) to @p to. */
static uint64_t
pull(world *w, cvg_replica *to, cvg_replica *from, uint64_t cursor,
     uint64_t limit)
{
    cvg_txn *src, *dst;
    cr_assert_eq(cvg_txn_begin(from, CVG_TXN_READ_ONLY, &src), CVG_OK);
    cr_assert_eq(cvg_txn_begin(to, 0, &dst), CVG_OK);
    cvg__log_iter it;
    cr_assert_eq(cvg__log_iter_open(&from->store, src->mt, cursor, &it),
                 CVG_OK);
    cvg__op op;
    int rc;
    uint64_t n = 0;
    while (n < limit && (rc = cvg__log_iter_next(&it, &op)) == CVG_OK) {
        bool conflict;
        int arc = cvg__txn_apply_remote(dst, &op, &conflict);
        cr_assert(arc == CVG_OK || arc == CVG_DONE,
                  "seed %llu: apply lsn %llu: %s (%s); replay with "
                  "CVG_TEST_SEED=%llu",
                  (unsigned long long)w->seed, (unsigned long long)op.pub.lsn,
                  cvg_errname(arc), cvg_replica_errmsg(to),
                  (unsigned long long)w->seed);
        cursor = op.pub.lsn + 1;
        n++;
    }
    cvg__log_iter_close(&it);
    cvg_txn_abort(src);
    cr_assert_eq(cvg_txn_commit(dst), CVG_OK);
    return cursor;
}

static void
sync_pair(world *w, int i, int j, uint64_t limit)
{
    w->cursor[i][j] = pull(w, w->r[i], w->r[j], w->cursor[i][j], limit);
}

static void
run_seed(uint64_t seed)
{
    world w;
    memset(&w, 0, sizeof w);
    w.seed = seed;
    w.wl.seed = seed;
    w.wl.rng = seed;
    uint64_t *rng = &w.wl.rng;
    w.n = 3 + (int)cvg_test_below(rng, MAXR - 2);
    for (int i = 0; i <= MAXR; i++) {
        char name[64];
        snprintf(name, sizeof name, "conv-%llu-%d", (unsigned long long)seed,
                 i);
        snprintf(w.dirs[i], sizeof w.dirs[i], "%s", cvg_test_dir(name));
        reopen(&w, i);
        for (int j = 0; j < MAXR; j++) {
            if (i < MAXR) {
                w.cursor[i][j] = 1;
            }
        }
    }
    int steps = 20 + (int)cvg_test_below(rng, 30);
    for (int s = 0; s < steps; s++) {
        int i = (int)cvg_test_below(rng, (uint64_t)w.n);
        uint64_t what = cvg_test_below(rng, 10);
        if (what < 5) {
            cvg_test_random_txn(&w.wl, w.r[i]);
        } else if (what < 9) {
            int j = (int)cvg_test_below(rng, (uint64_t)w.n);
            if (j != i) {
                sync_pair(&w, i, j, 1 + cvg_test_below(rng, 6));
            }
        } else {
            reopen(&w, i);
        }
    }
    /* Everyone gets everything: two full rounds of the mesh. */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < w.n; i++) {
            for (int j = 0; j < w.n; j++) {
                if (i != j) {
                    sync_pair(&w, i, j, UINT64_MAX);
                }
            }
        }
    }
    /* The oracle applies every op once, in replica 0's log order (causal,
     * and by now it holds every op). */
    pull(&w, w.r[MAXR], w.r[0], 1, UINT64_MAX);

    char *d0;
    cr_assert_eq(cvg_test_digest(w.r[0], &d0), CVG_OK);
    for (int i = 1; i < w.n; i++) {
        char *di;
        cr_assert_eq(cvg_test_digest(w.r[i], &di), CVG_OK);
        cr_assert_str_eq(di, d0,
                         "seed %llu: replica %d differs from replica 0; "
                         "replay with CVG_TEST_SEED=%llu",
                         (unsigned long long)seed, i, (unsigned long long)seed);
        free(di);
    }
    char *dor;
    cr_assert_eq(cvg_test_digest(w.r[MAXR], &dor), CVG_OK);
    cr_assert_str_eq(dor, d0, "seed %llu: differs from the oracle",
                     (unsigned long long)seed);
    free(dor);
    free(d0);
    cvg_test_check_counters(&w.wl, w.r[0]);
    for (int i = 0; i <= MAXR; i++) {
        cvg_replica_close(w.r[i]);
    }
    /* Whatever a schedule leaves is sound to the full check. */
    for (int i = 0; i < w.n; i++) {
        cvg_check_report rep;
        int rc = cvg_replica_check(w.dirs[i], &rep);
        cr_assert_eq(rc, CVG_OK, "seed %llu: replica %d fails the check: %s",
                     (unsigned long long)seed, i, rep.problem);
    }
}

Test(converge, random_schedules_converge_to_the_oracle, .timeout = 600)
{
    const char *env = getenv("CVG_TEST_SEED");
    if (env != NULL && env[0] != '\0') {
        run_seed(cvg_test_seed(0));
        return;
    }
    const char *count = getenv("CVG_TEST_SEEDS");
    uint64_t n = count ? strtoull(count, NULL, 10) : 60;
    for (uint64_t s = 1; s <= n; s++) {
        run_seed(s);
    }
}

/* Two replicas, one element: each adds it while apart, one removes it
 * before hearing of the other's add. The unseen add wins everywhere. */
Test(converge, concurrent_add_survives_remove)
{
    world w;
    memset(&w, 0, sizeof w);
    for (int i = 0; i < 2; i++) {
        char name[32];
        snprintf(name, sizeof name, "addwins-%d", i);
        snprintf(w.dirs[i], sizeof w.dirs[i], "%s", cvg_test_dir(name));
        reopen(&w, i);
        w.cursor[i][0] = w.cursor[i][1] = 1;
    }
    cvg_key k = {"shelf", "plums", "tags"};
    cvg_value x = cvg_value_string("ripe");
    for (int i = 0; i < 2; i++) {
        cvg_txn *t;
        cr_assert_eq(cvg_txn_begin(w.r[i], 0, &t), CVG_OK);
        cr_assert_eq(cvg_set_add(t, &k, &x, NULL), CVG_OK);
        if (i == 0) {
            cr_assert_eq(cvg_set_remove(t, &k, &x, NULL), CVG_OK);
        }
        cr_assert_eq(cvg_txn_commit(t), CVG_OK);
    }
    sync_pair(&w, 0, 1, UINT64_MAX);
    sync_pair(&w, 1, 0, UINT64_MAX);
    for (int i = 0; i < 2; i++) {
        cvg_txn *t;
        bool in = false;
        cr_assert_eq(cvg_txn_begin(w.r[i], CVG_TXN_READ_ONLY, &t), CVG_OK);
        cr_assert_eq(cvg_set_contains(t, &k, &x, &in), CVG_OK);
        cr_expect(in, "replica %d lost the concurrent add", i);
        cvg_txn_abort(t);
        cvg_replica_close(w.r[i]);
    }
}
