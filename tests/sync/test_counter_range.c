/*
 * Counters whose merged sum leaves int64, across real replicas and syncs.
 * Three replicas each make adds their own checks accept; the merged sums
 * pass INT64_MAX or INT64_MIN. The replicas meet through cvg_sync_local in
 * every order of the three pairs, and after every sync each replica must
 * read exactly what the ops it holds add up to: the value when it fits, or
 * CVG_EOVERFLOW with *out on the side the exact sum lies. The oracle is
 * that exact sum, computed in 128 bits from which replicas' adds each one
 * holds. Reopening from disk must read the same.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "converge.h"

#include "testutil.h"

#define OK(call) cr_assert_eq((call), CVG_OK, "%s", #call)
#define NREP 3
#define MAXADDS 3

__extension__ typedef __int128 i128;

static const cvg_key QTY = {"stock", "widget", "qty"};

typedef struct scenario {
    const char *name;
    int64_t adds[NREP][MAXADDS]; /* 0 ends a replica's list */
} scenario;

static const scenario SCENARIOS[] = {
    {"above", {{INT64_MAX}, {1}, {5}}},
    {"below", {{INT64_MIN}, {-1}, {-INT64_MAX}}},
    /* Pairs leave the range on both sides; all three come back into it. */
    {"back_in_range", {{INT64_MAX}, {INT64_MAX}, {INT64_MIN}}},
    /* Several adds per replica, each part staying in range. */
    {"several", {{INT64_MAX / 2, INT64_MAX / 2, 1}, {INT64_MAX / 2, 3}, {-7}}},
};

/* The three pairs, and the six orders to sync them in. */
static const int PAIRS[3][2] = {{0, 1}, {1, 2}, {0, 2}};
static const int ORDERS[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                 {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};

typedef struct world {
    char dirs[NREP][512];
    cvg_replica *r[NREP];
    bool has[NREP][NREP]; /* has[i][j]: replica i holds j's adds */
    const scenario *sc;
} world;

static cvg_replica *
open_dir(const char *dir)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = CVG_RELAXED;
    cvg_replica *r = NULL;
    OK(cvg_replica_open(dir, &o, &r));
    return r;
}

static i128
exact(const world *w, int i)
{
    i128 v = 0;
    for (int j = 0; j < NREP; j++) {
        for (int k = 0; w->has[i][j] && k < MAXADDS; k++) {
            v += w->sc->adds[j][k];
        }
    }
    return v;
}

static void
check_reads(const world *w, const char *when)
{
    for (int i = 0; i < NREP; i++) {
        i128 want = exact(w, i);
        cvg_txn *t;
        OK(cvg_txn_begin(w->r[i], CVG_TXN_READ_ONLY, &t));
        int64_t got = 12345;
        int rc = cvg_counter_get(t, &QTY, &got);
        cvg_txn_abort(t);
        if (want > INT64_MAX) {
            cr_assert_eq(rc, CVG_EOVERFLOW, "%s %s: replica %d: %s",
                         w->sc->name, when, i, cvg_errname(rc));
            cr_assert_eq(got, INT64_MAX, "%s %s: replica %d", w->sc->name, when,
                         i);
        } else if (want < INT64_MIN) {
            cr_assert_eq(rc, CVG_EOVERFLOW, "%s %s: replica %d: %s",
                         w->sc->name, when, i, cvg_errname(rc));
            cr_assert_eq(got, INT64_MIN, "%s %s: replica %d", w->sc->name, when,
                         i);
        } else {
            cr_assert_eq(rc, CVG_OK, "%s %s: replica %d: %s", w->sc->name, when,
                         i, cvg_errname(rc));
            cr_assert_eq(got, (int64_t)want, "%s %s: replica %d: %lld",
                         w->sc->name, when, i, (long long)got);
        }
    }
}

static void
sync_pair(world *w, int a, int b)
{
    OK(cvg_sync_local(w->r[a], w->r[b], NULL));
    for (int j = 0; j < NREP; j++) {
        bool either = w->has[a][j] || w->has[b][j];
        w->has[a][j] = w->has[b][j] = either;
    }
}

static void
run(const scenario *sc, int order)
{
    world w;
    memset(&w, 0, sizeof w);
    w.sc = sc;
    for (int i = 0; i < NREP; i++) {
        char name[96];
        snprintf(name, sizeof name, "range_%s_%d_%d", sc->name, order, i);
        snprintf(w.dirs[i], sizeof w.dirs[i], "%s", cvg_test_dir(name));
        w.r[i] = open_dir(w.dirs[i]);
        w.has[i][i] = true;
        cvg_txn *t;
        OK(cvg_txn_begin(w.r[i], 0, &t));
        for (int k = 0; k < MAXADDS && sc->adds[i][k] != 0; k++) {
            OK(cvg_counter_add(t, &QTY, sc->adds[i][k], NULL));
        }
        OK(cvg_txn_commit(t));
    }
    check_reads(&w, "before any sync");
    for (int s = 0; s < 3; s++) {
        const int *p = PAIRS[ORDERS[order][s]];
        sync_pair(&w, p[0], p[1]);
        char when[64];
        snprintf(when, sizeof when, "order %d, after sync %d", order, s);
        check_reads(&w, when);
    }
    /* One more round: everyone holds everything. */
    for (int s = 0; s < 3; s++) {
        sync_pair(&w, PAIRS[s][0], PAIRS[s][1]);
    }
    for (int i = 0; i < NREP; i++) {
        for (int j = 0; j < NREP; j++) {
            cr_assert(w.has[i][j]);
        }
    }
    check_reads(&w, "converged");
    for (int i = 0; i < NREP; i++) {
        cvg_replica_close(w.r[i]);
        w.r[i] = open_dir(w.dirs[i]);
    }
    check_reads(&w, "reopened");
    for (int i = 0; i < NREP; i++) {
        cvg_replica_close(w.r[i]);
    }
}

Test(counter_range, merged_sums_past_either_end_read_the_same_everywhere)
{
    for (size_t s = 0; s < sizeof SCENARIOS / sizeof *SCENARIOS; s++) {
        for (int order = 0; order < 6; order++) {
            run(&SCENARIOS[s], order);
        }
    }
}

/* A replica holding an out-of-range sum may add what brings it back, and
 * the result reaches the others; an add that keeps it out is refused. */
Test(counter_range, a_local_add_brings_a_merged_sum_back)
{
    cvg_replica *a = open_dir(cvg_test_dir("range_back_a"));
    cvg_replica *b = open_dir(cvg_test_dir("range_back_b"));
    cvg_txn *t;
    OK(cvg_txn_begin(a, 0, &t));
    OK(cvg_counter_add(t, &QTY, INT64_MAX, NULL));
    cr_assert_eq(cvg_counter_add(t, &QTY, 1, NULL), CVG_EOVERFLOW);
    OK(cvg_txn_commit(t));
    OK(cvg_txn_begin(b, 0, &t));
    OK(cvg_counter_add(t, &QTY, 10, NULL));
    OK(cvg_txn_commit(t));
    OK(cvg_sync_local(a, b, NULL));

    int64_t v = 0;
    OK(cvg_txn_begin(b, 0, &t));
    cr_assert_eq(cvg_counter_get(t, &QTY, &v), CVG_EOVERFLOW);
    cr_assert_eq(v, INT64_MAX);
    /* Still above after the add: refused, and nothing changes. */
    cr_assert_eq(cvg_counter_add(t, &QTY, -5, NULL), CVG_EOVERFLOW);
    OK(cvg_counter_add(t, &QTY, -20, NULL));
    OK(cvg_counter_get(t, &QTY, &v));
    cr_assert_eq(v, INT64_MAX - 10);
    OK(cvg_txn_commit(t));
    OK(cvg_sync_local(a, b, NULL));

    OK(cvg_txn_begin(a, CVG_TXN_READ_ONLY, &t));
    OK(cvg_counter_get(t, &QTY, &v));
    cvg_txn_abort(t);
    cr_assert_eq(v, INT64_MAX - 10);
    cvg_replica_close(a);
    cvg_replica_close(b);
}
