/*
 * Sync sessions between 3 to 8 replicas over a link that drops, duplicates,
 * reorders and cuts messages, with random writes and restarts in between.
 * Faults may end any session; nothing may be lost or diverge. Once every
 * pair has synced over a clean link, all replicas hold the same state, equal
 * to an oracle fed every op once in one causal order, and every counter no
 * delete touched equals the sum of its deltas. Replay one seed with
 * CVG_TEST_SEED=N; CVG_TEST_SEEDS=N runs N seeds (soak).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "converge/testing.h"

#include "checks.h"
#include "digest.h"
#include "testutil.h"
#include "workload.h"

#define MAXR 9 /* 3 to 8 replicas, and the oracle */

typedef struct net {
    int n;
    char dirs[MAXR + 1][512];
    cvg_replica *r[MAXR + 1]; /* [MAXR] is the oracle */
    cvg_test_workload wl;
} net;

static void
reopen(net *w, int i)
{
    cvg_test_reopen_fast(w->dirs[i], &w->r[i], w->wl.seed);
}

static void
clean_sync(net *w, int i, int j)
{
    cvg_session_stats st;
    int rc = cvg_sync_local(w->r[i], w->r[j], &st);
    cr_assert_eq(rc, CVG_OK,
                 "seed %llu: clean sync %d<->%d: %s (%s); replay with "
                 "CVG_TEST_SEED=%llu",
                 (unsigned long long)w->wl.seed, i, j, cvg_errname(rc),
                 cvg_replica_errmsg(w->r[i]), (unsigned long long)w->wl.seed);
}

static void
run_seed(uint64_t seed, unsigned *sessions_broken)
{
    net w;
    memset(&w, 0, sizeof w);
    w.wl.seed = seed;
    w.wl.rng = seed * 0x9E3779B97F4A7C15ull + 1;
    uint64_t *rng = &w.wl.rng;
    w.n = 3 + (int)cvg_test_below(rng, MAXR - 2);
    for (int i = 0; i <= MAXR; i++) {
        char name[64];
        snprintf(name, sizeof name, "sync-%llu-%d", (unsigned long long)seed,
                 i);
        snprintf(w.dirs[i], sizeof w.dirs[i], "%s", cvg_test_dir(name));
        reopen(&w, i);
    }
    cvg_link_options f;
    cvg_link_options_init(&f);
    f.seed = cvg_test_rand(rng);
    f.drop_pct = (unsigned)cvg_test_below(rng, 15);
    f.dup_pct = (unsigned)cvg_test_below(rng, 15);
    f.reorder_pct = (unsigned)cvg_test_below(rng, 15);
    f.cut_pct = (unsigned)cvg_test_below(rng, 10);
    unsigned max_steps = 4 + (unsigned)cvg_test_below(rng, 40);
    cvg_link *link;
    cr_assert_eq(cvg_link_new(&f, &link), CVG_OK);
    int steps = 15 + (int)cvg_test_below(rng, 30);
    for (int s = 0; s < steps; s++) {
        int i = (int)cvg_test_below(rng, (uint64_t)w.n);
        uint64_t what = cvg_test_below(rng, 10);
        if (what < 5) {
            cvg_test_random_txn(&w.wl, w.r[i]);
        } else if (what < 9) {
            int j = (int)cvg_test_below(rng, (uint64_t)w.n);
            if (j != i) {
                cvg_link_result res;
                int rc = cvg_link_sync(link, w.r[i], w.r[j], max_steps, &res);
                cr_assert(rc == CVG_OK || rc == CVG_DONE, "%s",
                          cvg_errname(rc));
                *sessions_broken += !res.done;
            }
        } else {
            reopen(&w, i); /* a restart between sessions */
        }
    }
    cvg_link_free(link);
    /* The network heals: a star through replica 0, then out again. */
    for (int i = 1; i < w.n; i++) {
        clean_sync(&w, 0, i);
    }
    for (int i = 1; i < w.n; i++) {
        clean_sync(&w, 0, i);
    }
    clean_sync(&w, MAXR, 0); /* the oracle: replica 0's log, in order */

    char *d0;
    cr_assert_eq(cvg_test_digest(w.r[0], &d0), CVG_OK);
    for (int i = 1; i <= w.n; i++) {
        int k = i == w.n ? MAXR : i;
        char *di;
        cr_assert_eq(cvg_test_digest(w.r[k], &di), CVG_OK);
        cr_assert_str_eq(di, d0,
                         "seed %llu: %s %d differs from replica 0; replay "
                         "with CVG_TEST_SEED=%llu",
                         (unsigned long long)seed,
                         k == MAXR ? "the oracle" : "replica", k,
                         (unsigned long long)seed);
        free(di);
    }
    free(d0);
    cvg_test_check_counters(&w.wl, w.r[0]);
    for (int i = 0; i <= MAXR; i++) {
        cvg_replica_close(w.r[i]);
    }
}

Test(sync, faulty_links_never_lose_or_diverge, .timeout = 900)
{
    unsigned broken = 0;
    const char *env = getenv("CVG_TEST_SEED");
    if (env != NULL && env[0] != '\0') {
        run_seed(cvg_test_seed(0), &broken);
        return;
    }
    const char *count = getenv("CVG_TEST_SEEDS");
    uint64_t n = count ? strtoull(count, NULL, 10) : 1000;
    for (uint64_t s = 1; s <= n; s++) {
        run_seed(s, &broken);
    }
    /* The faults must really have bitten, or this proves nothing. */
    cr_expect_gt(broken, n / 4, "only %u sessions were broken by faults",
                 broken);
}

/* A session resumes where the last one stopped: the second sync of an
 * unchanged pair moves no ops. */
Test(sync, resumes_without_sending_again)
{
    net w;
    memset(&w, 0, sizeof w);
    w.wl.seed = w.wl.rng = 7;
    for (int i = 0; i < 2; i++) {
        char name[32];
        snprintf(name, sizeof name, "resume-%d", i);
        snprintf(w.dirs[i], sizeof w.dirs[i], "%s", cvg_test_dir(name));
        reopen(&w, i);
    }
    for (int k = 0; k < 20; k++) {
        cvg_test_random_txn(&w.wl, w.r[k % 2]);
    }
    cvg_session_stats st;
    cr_assert_eq(cvg_sync_local(w.r[0], w.r[1], &st), CVG_OK);
    cr_expect_gt(st.ops_received + st.ops_sent, 0);
    reopen(&w, 0);
    reopen(&w, 1);
    cr_assert_eq(cvg_sync_local(w.r[0], w.r[1], &st), CVG_OK);
    cr_expect_eq(st.ops_received, 0);
    cr_expect_eq(st.ops_sent, 0, "everything was sent again");
    cvg_test_random_txn(&w.wl, w.r[1]);
    cr_assert_eq(cvg_sync_local(w.r[0], w.r[1], &st), CVG_OK);
    cr_expect_leq(st.ops_received, 4, "only the new ops move");
    cvg_replica_close(w.r[0]);
    cvg_replica_close(w.r[1]);
}
