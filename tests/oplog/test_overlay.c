/*
 * The state overlay (src/oplog/overlay.c) against an oracle: random puts
 * of values and deletions under rising ids to a few dozen keys, some as
 * the pending transaction's (then dropped or kept), prunes, and at every
 * step, for random views (lo, hi), every lookup and a walk in key order
 * compared with what the oracle's history of each key says.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "oplog/overlay.h"
#include "testutil.h"

#define KEYS 40
#define STEPS 3000
#define MAXV 64

/* The oracle: per key, its values in id order. */
typedef struct oval {
    uint64_t id;
    int val; /* -1: deleted */
} oval;

typedef struct okey {
    char name[24];
    uint32_t len;
    oval v[MAXV * 4];
    int n;
} okey;

static okey keys[KEYS];

static void
make_keys(uint64_t *rng)
{
    for (int i = 0; i < KEYS; i++) {
        /* Field-like keys "c NUL kN NUL fN NUL type", in pairs sharing a
         * field (keys 2m and 2m+1, of different types), so that key order
         * and field prefixes both matter. */
        static int r;
        if (i % 2 == 0) {
            r = (int)cvg_test_below(rng, 7);
        }
        int n = snprintf(keys[i].name, sizeof keys[i].name, "c%ck%d%cf%d%c", 0,
                         r, 0, i / 2, 0);
        keys[i].name[n] = (char)(1 + i % 3);
        keys[i].len = (uint32_t)n + 1;
        keys[i].n = 0;
    }
}

static int
okey_cmp(const void *a, const void *b)
{
    const okey *x = *(okey *const *)a, *y = *(okey *const *)b;
    uint32_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->name, y->name, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* What the oracle says a view (lo, hi] sees of key k: 0 none, 1 deleted,
 * 2 a value (in *val). */
static int
oracle_sees(const okey *k, uint64_t lo, uint64_t hi, int *val)
{
    for (int i = k->n; i-- > 0;) {
        if (k->v[i].id <= lo) {
            return 0;
        }
        if (k->v[i].id <= hi) {
            *val = k->v[i].val;
            return k->v[i].val < 0 ? 1 : 2;
        }
    }
    return 0;
}

static void
oracle_put(okey *k, uint64_t id, int val)
{
    if (k->n > 0 && k->v[k->n - 1].id == id) {
        k->v[k->n - 1].val = val;
        return;
    }
    cr_assert_lt(k->n, MAXV * 4);
    k->v[k->n].id = id;
    k->v[k->n].val = val;
    k->n++;
}

static void
oracle_drop(uint64_t id)
{
    for (int i = 0; i < KEYS; i++) {
        okey *k = &keys[i];
        if (k->n > 0 && k->v[k->n - 1].id == id) {
            k->n--;
        }
    }
}

static void
oracle_prune(uint64_t upto)
{
    for (int i = 0; i < KEYS; i++) {
        okey *k = &keys[i];
        int d = 0;
        while (d < k->n && k->v[d].id <= upto) {
            d++;
        }
        memmove(k->v, k->v + d, (size_t)(k->n - d) * sizeof k->v[0]);
        k->n -= d;
    }
}

static void
check_view(cvg__overlay *ov, uint64_t lo, uint64_t hi, int step)
{
    /* Lookups. */
    for (int i = 0; i < KEYS; i++) {
        int want_val = 0;
        int want = oracle_sees(&keys[i], lo, hi, &want_val);
        cvg__ov_node *nd =
            cvg__ov_find(ov, (uint8_t *)keys[i].name, keys[i].len);
        const cvg__ov_version *v = nd ? cvg__ov_visible(nd, lo, hi) : NULL;
        int got = v == NULL ? 0 : v->val == NULL ? 1 : 2;
        cr_assert_eq(got, want, "step %d key %d view (%llu, %llu]", step, i,
                     (unsigned long long)lo, (unsigned long long)hi);
        if (got == 2) {
            int val;
            cr_assert_eq(v->len, sizeof val);
            memcpy(&val, v->val, sizeof val);
            cr_assert_eq(val, want_val, "step %d key %d", step, i);
        }
        if (keys[i].n > 0) {
            /* Its field holds it, and its partner if that has values. */
            const cvg__ov_node *one;
            unsigned nodes = cvg__ov_field_nodes(ov, (uint8_t *)keys[i].name,
                                                 keys[i].len - 1, &one);
            cr_assert_geq(nodes, 1, "step %d: key %d's field", step, i);
            if (keys[i ^ 1].n > 0) {
                cr_assert_eq(nodes, 2, "step %d: key %d's field has both", step,
                             i);
            }
            if (nodes == 1) {
                cr_assert_eq(one, nd, "step %d: key %d is its field's one",
                             step, i);
            }
        }
    }
    /* A walk in key order: every node with a value visible, in order. */
    okey *order[KEYS];
    for (int i = 0; i < KEYS; i++) {
        order[i] = &keys[i];
    }
    qsort(order, KEYS, sizeof order[0], okey_cmp);
    cvg__ov_node *nd;
    cr_assert_eq(cvg__ov_seek(ov, (const uint8_t *)"", 0, false, &nd), CVG_OK);
    for (int i = 0; i < KEYS; i++) {
        int val;
        if (oracle_sees(order[i], lo, hi, &val) == 0) {
            continue;
        }
        while (nd != NULL && cvg__ov_visible(nd, lo, hi) == NULL) {
            cr_assert_eq(cvg__ov_seek(ov, nd->key, nd->klen, true, &nd),
                         CVG_OK);
        }
        cr_assert_not_null(nd, "step %d: walk ended early", step);
        cr_assert_eq(nd->klen, order[i]->len, "step %d: walk order", step);
        cr_assert_eq(memcmp(nd->key, order[i]->name, nd->klen), 0,
                     "step %d: walk order", step);
        cr_assert_eq(cvg__ov_seek(ov, nd->key, nd->klen, true, &nd), CVG_OK);
    }
    while (nd != NULL && cvg__ov_visible(nd, lo, hi) == NULL) {
        cr_assert_eq(cvg__ov_seek(ov, nd->key, nd->klen, true, &nd), CVG_OK);
    }
    cr_assert_null(nd, "step %d: the walk found a key the oracle has not",
                   step);
}

Test(overlay, random_puts_views_drops_and_prunes_match_the_oracle)
{
    for (uint64_t seed = 1; seed <= 4; seed++) {
        uint64_t rng = cvg_test_seed(seed);
        make_keys(&rng);
        cvg__overlay ov;
        cvg__ov_init(&ov);
        uint64_t id = 1, pruned = 0;
        for (int step = 0; step < STEPS; step++) {
            uint64_t r = cvg_test_below(&rng, 100);
            if (r < 10) {
                /* A transaction: pending puts, then dropped or kept. */
                ov.pending_id = ++id;
                int n = 1 + (int)cvg_test_below(&rng, 6);
                for (int j = 0; j < n; j++) {
                    okey *k = &keys[cvg_test_below(&rng, KEYS)];
                    int val = (int)cvg_test_below(&rng, 1000);
                    bool del = cvg_test_below(&rng, 4) == 0;
                    cr_assert_eq(
                        cvg__ov_put(&ov, (uint8_t *)k->name, k->len, k->len - 1,
                                    id, (uint8_t *)&val, sizeof val, del),
                        CVG_OK);
                    oracle_put(k, id, del ? -1 : val);
                }
                if (cvg_test_below(&rng, 3) == 0) {
                    cvg__ov_drop_pending(&ov);
                    oracle_drop(id);
                } else {
                    cvg__ov_keep_pending(&ov);
                }
                cr_assert_eq(ov.npending, 0);
            } else if (r < 70) {
                /* A loaded record's value under a new id. */
                okey *k = &keys[cvg_test_below(&rng, KEYS)];
                id += cvg_test_below(&rng, 2);
                int val = (int)cvg_test_below(&rng, 1000);
                bool del = cvg_test_below(&rng, 5) == 0;
                cr_assert_eq(
                    cvg__ov_put(&ov, (uint8_t *)k->name, k->len, k->len - 1, id,
                                (uint8_t *)&val, sizeof val, del),
                    CVG_OK);
                oracle_put(k, id, del ? -1 : val);
            } else if (r < 73 && id > pruned + 2) {
                uint64_t upto = pruned + 1 + cvg_test_below(&rng, id - pruned);
                cvg__ov_prune(&ov, upto);
                oracle_prune(upto);
                pruned = upto;
            }
            uint64_t lo = pruned + cvg_test_below(&rng, id - pruned + 1);
            uint64_t hi = lo + cvg_test_below(&rng, id - lo + 2);
            check_view(&ov, lo, hi, step);
        }
        /* Pruned to the newest id: empty again. */
        cvg__ov_prune(&ov, id);
        cr_expect_eq(ov.n, 0);
        cr_expect_eq(ov.versions, 0);
        cr_expect_eq(ov.bytes, 0, "%zu bytes counted after all went", ov.bytes);
        cvg__ov_destroy(&ov);
    }
}
