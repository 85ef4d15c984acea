#include "workload.h"

#include <criterion/criterion.h>
#include <string.h>

#include "testutil.h"

static const char *colls[CVG_WL_COLLS] = {"till", "shelf"};
static const char *keys[CVG_WL_KEYS] = {"apples", "pears"};

static void
random_op(cvg_test_workload *w, cvg_txn *t)
{
    int c = (int)cvg_test_below(&w->rng, CVG_WL_COLLS);
    int k = (int)cvg_test_below(&w->rng, CVG_WL_KEYS);
    cvg_key key = {colls[c], keys[k], NULL};
    cvg_value v = cvg_value_int((int64_t)cvg_test_below(&w->rng, 3));
    int rc;
    switch (cvg_test_below(&w->rng, 10)) {
    case 0:
    case 1:
    case 2: {
        key.field = "qty";
        int64_t d = (int64_t)cvg_test_below(&w->rng, 9) - 4;
        d = d ? d : 1;
        rc = cvg_counter_add(t, &key, d, NULL);
        if (rc == CVG_OK) {
            w->pending[c][k] += d;
        }
        break;
    }
    case 3:
    case 4:
        key.field = "price";
        rc = cvg_register_set(t, &key, &v, NULL);
        break;
    case 5:
        key.field = "notes";
        rc = cvg_mvregister_set(t, &key, &v, NULL);
        break;
    case 6:
    case 7:
        key.field = "tags";
        rc = cvg_set_add(t, &key, &v, NULL);
        break;
    case 8:
        key.field = "tags";
        rc = cvg_set_remove(t, &key, &v, NULL);
        rc = rc == CVG_ENOTFOUND ? CVG_OK : rc;
        break;
    default:
        /* Rare, so that most counters keep an exact expected sum. */
        if (cvg_test_below(&w->rng, 3) != 0) {
            return;
        }
        rc = cvg_record_delete(t, &key, NULL);
        if (rc == CVG_OK) {
            w->deleted[c][k] = true;
        }
        rc = rc == CVG_ENOTFOUND ? CVG_OK : rc;
    }
    cr_assert_eq(rc, CVG_OK,
                 "seed %llu: write failed: %s (replay with "
                 "CVG_TEST_SEED=%llu)",
                 (unsigned long long)w->seed, cvg_errname(rc),
                 (unsigned long long)w->seed);
}

void
cvg_test_random_txn(cvg_test_workload *w, cvg_replica *r)
{
    cvg_txn *t;
    cr_assert_eq(cvg_txn_begin(r, 0, &t), CVG_OK);
    int nops = 1 + (int)cvg_test_below(&w->rng, 4);
    for (int k = 0; k < nops; k++) {
        random_op(w, t);
    }
    if (cvg_test_below(&w->rng, 8) == 0) {
        cvg_txn_abort(t); /* and the ops never happened */
    } else {
        cr_assert_eq(cvg_txn_commit(t), CVG_OK);
        for (int c = 0; c < CVG_WL_COLLS; c++) {
            for (int k = 0; k < CVG_WL_KEYS; k++) {
                w->sums[c][k] += w->pending[c][k];
            }
        }
    }
    memset(w->pending, 0, sizeof w->pending);
}

void
cvg_test_check_counters(const cvg_test_workload *w, cvg_replica *r)
{
    cvg_txn *t;
    cr_assert_eq(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t), CVG_OK);
    for (int c = 0; c < CVG_WL_COLLS; c++) {
        for (int k = 0; k < CVG_WL_KEYS; k++) {
            if (w->deleted[c][k]) {
                continue;
            }
            cvg_key key = {colls[c], keys[k], "qty"};
            int64_t v = 0;
            int rc = cvg_counter_get(t, &key, &v);
            cr_assert(
                rc == CVG_OK || (rc == CVG_ENOTFOUND && w->sums[c][k] == 0),
                "seed %llu: counter %s/%s: %s", (unsigned long long)w->seed,
                colls[c], keys[k], cvg_errname(rc));
            cr_assert_eq(v, w->sums[c][k],
                         "seed %llu: counter %s/%s is %lld, expected %lld",
                         (unsigned long long)w->seed, colls[c], keys[k],
                         (long long)v, (long long)w->sums[c][k]);
        }
    }
    cvg_txn_abort(t);
}
