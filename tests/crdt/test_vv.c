/*
 * Replica ids, dots and version vectors: ordering, the sorted one-entry-
 * per-origin invariant, merge laws (commutative, associative, idempotent)
 * and comparison against a dense oracle, failure atomicity, and the digest
 * a vector keeps up to date as it changes.
 */
#include <criterion/criterion.h>

#include "crdt/crdt_int.h"
#include "testutil.h"

#define NIDS 8

static cvg_replica_id
mkid(unsigned char tag)
{
    cvg_replica_id id;
    memset(&id, 0, sizeof id);
    id.bytes[0] = tag;
    id.bytes[15] = (unsigned char)(0xFF - tag);
    return id;
}

static cvg_dot
mkdot(unsigned char tag, uint64_t seq)
{
    cvg_dot d = {mkid(tag), seq};
    return d;
}

/* The invariant: sorted strictly by origin, every seq > 0. */
static bool
well_formed(const cvg__vv *vv)
{
    for (size_t i = 0; i < vv->n; i++) {
        if (vv->e[i].seq == 0) {
            return false;
        }
        if (i > 0 && cvg__id_cmp(&vv->e[i - 1].origin, &vv->e[i].origin) >= 0) {
            return false;
        }
    }
    return vv->n <= vv->cap;
}

static bool
vv_equal(const cvg__vv *a, const cvg__vv *b)
{
    if (a->n != b->n) {
        return false;
    }
    for (size_t i = 0; i < a->n; i++) {
        if (cvg__dot_cmp(&a->e[i], &b->e[i]) != 0) {
            return false;
        }
    }
    return true;
}

/* A random vector over NIDS origins, and its dense form. */
static void
random_vv(uint64_t *rng, cvg__vv *vv, uint64_t dense[NIDS])
{
    for (int k = 0; k < NIDS; k++) {
        dense[k] = cvg_test_below(rng, 3) == 0 ? 0 : cvg_test_below(rng, 6);
    }
    /* Insert in a scrambled order to exercise sorted insertion. */
    int start = (int)cvg_test_below(rng, NIDS);
    for (int j = 0; j < NIDS; j++) {
        int k = (start + j * 3) % NIDS;
        cvg_replica_id id = mkid((unsigned char)(k * 17 + 1));
        cr_assert_eq(cvg__vv_set(vv, &id, dense[k]), CVG_OK);
    }
}

Test(vv, id_and_dot_order)
{
    cvg_replica_id a = mkid(1);
    cvg_replica_id b = mkid(2);
    cr_expect_lt(cvg__id_cmp(&a, &b), 0);
    cr_expect_gt(cvg__id_cmp(&b, &a), 0);
    cr_expect_eq(cvg__id_cmp(&a, &a), 0);
    /* Byte order, not host integer order. */
    cvg_replica_id c = mkid(0);
    c.bytes[15] = 0xFF;
    cvg_replica_id d = mkid(0);
    d.bytes[0] = 0;
    d.bytes[1] = 1;
    cr_expect_lt(cvg__id_cmp(&c, &d), 0);

    cvg_dot a1 = mkdot(1, 1);
    cvg_dot a9 = mkdot(1, 9);
    cvg_dot b1 = mkdot(2, 1);
    cr_expect_lt(cvg__dot_cmp(&a1, &a9), 0);
    cr_expect_lt(cvg__dot_cmp(&a9, &b1), 0, "origin first, then seq");
    cr_expect_eq(cvg__dot_cmp(&a9, &a9), 0);
    cvg_dot big = mkdot(1, UINT64_MAX);
    cr_expect_gt(cvg__dot_cmp(&big, &a1), 0);
}

Test(vv, set_get_and_remove)
{
    cvg__vv vv = {0};
    cvg_replica_id a = mkid(1);
    cvg_replica_id b = mkid(2);
    cvg_replica_id c = mkid(3);
    cr_expect_eq(cvg__vv_get(&vv, &a), 0);
    cr_assert_eq(cvg__vv_set(&vv, &c, 5), CVG_OK);
    cr_assert_eq(cvg__vv_set(&vv, &a, 7), CVG_OK);
    cr_assert_eq(cvg__vv_set(&vv, &b, 1), CVG_OK);
    cr_assert_eq(vv.n, 3);
    cr_expect(well_formed(&vv));
    cr_expect_eq(cvg__vv_get(&vv, &a), 7);
    cr_expect_eq(cvg__vv_get(&vv, &b), 1);
    cr_expect_eq(cvg__vv_get(&vv, &c), 5);

    /* Overwrite, also downwards: set is an assignment, not a max. */
    cr_assert_eq(cvg__vv_set(&vv, &a, 3), CVG_OK);
    cr_expect_eq(cvg__vv_get(&vv, &a), 3);
    cr_expect_eq(vv.n, 3);

    /* Seq 0 removes the entry; setting 0 for a missing origin is a no-op. */
    cr_assert_eq(cvg__vv_set(&vv, &b, 0), CVG_OK);
    cr_expect_eq(vv.n, 2);
    cr_expect_eq(cvg__vv_get(&vv, &b), 0);
    cr_assert_eq(cvg__vv_set(&vv, &b, 0), CVG_OK);
    cr_expect_eq(vv.n, 2);
    cr_expect(well_formed(&vv));

    cvg_dot d = mkdot(1, 3);
    cr_expect(cvg__vv_contains(&vv, &d));
    d.seq = 4;
    cr_expect_not(cvg__vv_contains(&vv, &d));
    d = mkdot(2, 1);
    cr_expect_not(cvg__vv_contains(&vv, &d));

    cvg__vv_destroy(&vv);
    cr_expect_eq(vv.e, NULL);
    cr_expect_eq(vv.n, 0);
    cvg__vv_destroy(&vv);
    cvg__vv_destroy(NULL);
}

Test(vv, compare_cases)
{
    cvg__vv a = {0};
    cvg__vv b = {0};
    cvg_replica_id x = mkid(1);
    cvg_replica_id y = mkid(2);
    cr_expect_eq(cvg__vv_compare(&a, &b), CVG__EQUAL);
    cr_assert_eq(cvg__vv_set(&b, &x, 1), CVG_OK);
    cr_expect_eq(cvg__vv_compare(&a, &b), CVG__BEFORE);
    cr_expect_eq(cvg__vv_compare(&b, &a), CVG__AFTER);
    cr_assert_eq(cvg__vv_set(&a, &y, 1), CVG_OK);
    cr_expect_eq(cvg__vv_compare(&a, &b), CVG__CONCURRENT);
    cr_assert_eq(cvg__vv_set(&a, &x, 1), CVG_OK);
    cr_expect_eq(cvg__vv_compare(&a, &b), CVG__AFTER);
    cr_assert_eq(cvg__vv_set(&b, &y, 1), CVG_OK);
    cr_expect_eq(cvg__vv_compare(&a, &b), CVG__EQUAL);
    cr_assert_eq(cvg__vv_set(&b, &x, 4), CVG_OK);
    cr_assert_eq(cvg__vv_set(&a, &y, 4), CVG_OK);
    cr_expect_eq(cvg__vv_compare(&a, &b), CVG__CONCURRENT);
    cvg__vv_destroy(&a);
    cvg__vv_destroy(&b);
}

static cvg__order
dense_compare(const uint64_t a[NIDS], const uint64_t b[NIDS])
{
    bool am = false;
    bool bm = false;
    for (int k = 0; k < NIDS; k++) {
        am |= a[k] > b[k];
        bm |= b[k] > a[k];
    }
    if (am && bm) {
        return CVG__CONCURRENT;
    }
    return am ? CVG__AFTER : bm ? CVG__BEFORE : CVG__EQUAL;
}

Test(vv, random_set_merge_compare_match_oracle)
{
    uint64_t base = cvg_test_seed(0x77AA);
    for (uint64_t s = 0; s < 500; s++) {
        uint64_t seed = base + s;
        uint64_t rng = seed;
        uint64_t da[NIDS];
        uint64_t db[NIDS];
        cvg__vv a = {0};
        cvg__vv b = {0};
        random_vv(&rng, &a, da);
        random_vv(&rng, &b, db);
        cr_assert(well_formed(&a) && well_formed(&b),
                  "replay with CVG_TEST_SEED=%llu", (unsigned long long)seed);
        for (int k = 0; k < NIDS; k++) {
            cvg_replica_id id = mkid((unsigned char)(k * 17 + 1));
            cr_assert_eq(cvg__vv_get(&a, &id), da[k],
                         "replay with CVG_TEST_SEED=%llu",
                         (unsigned long long)seed);
        }
        cr_assert_eq(cvg__vv_compare(&a, &b), dense_compare(da, db),
                     "compare; replay with CVG_TEST_SEED=%llu",
                     (unsigned long long)seed);

        cvg__vv m = {0};
        cr_assert_eq(cvg__vv_copy(&m, &a), CVG_OK);
        cr_assert(vv_equal(&m, &a));
        cr_assert_eq(cvg__vv_merge(&m, &b), CVG_OK);
        cr_assert(well_formed(&m));
        for (int k = 0; k < NIDS; k++) {
            cvg_replica_id id = mkid((unsigned char)(k * 17 + 1));
            cr_assert_eq(cvg__vv_get(&m, &id), CVG__MAX(da[k], db[k]),
                         "merge is pointwise max; replay with "
                         "CVG_TEST_SEED=%llu",
                         (unsigned long long)seed);
        }
        cvg__order ma = cvg__vv_compare(&a, &m);
        cr_assert(ma == CVG__EQUAL || ma == CVG__BEFORE,
                  "a <= merge(a, b); replay with CVG_TEST_SEED=%llu",
                  (unsigned long long)seed);
        cvg__vv_destroy(&a);
        cvg__vv_destroy(&b);
        cvg__vv_destroy(&m);
    }
}

static bool
sum_is_fresh(const cvg__vv *vv)
{
    cvg__vv_sum want;
    cvg__vv_sum_of(vv->e, vv->n, &want);
    return vv->summed && memcmp(&want, &vv->sum, sizeof want) == 0;
}

/* A vector whose sum is on keeps it equal to the sum computed afresh
 * through every set, removal, merge and copy; the sum depends on the
 * entries alone (not the order they came in), and two vectors that differ
 * in one entry differ in their sums. */
Test(vv, a_kept_sum_follows_every_change)
{
    uint64_t base = cvg_test_seed(0x5A5A);
    for (uint64_t s = 0; s < 300; s++) {
        uint64_t seed = base + s;
        uint64_t rng = seed;
        uint64_t da[NIDS], db[NIDS];
        cvg__vv a = {0}, b = {0};
        cvg__vv_sum_on(&a);
        random_vv(&rng, &a, da);
        cr_assert(sum_is_fresh(&a), "sets; replay with CVG_TEST_SEED=%llu",
                  (unsigned long long)seed);
        random_vv(&rng, &b, db);
        cvg__vv c = {0};
        cr_assert_eq(cvg__vv_copy(&c, &a), CVG_OK);
        cr_assert(sum_is_fresh(&c), "a copy keeps the sum");
        cr_assert_eq(cvg__vv_merge(&a, &b), CVG_OK);
        cr_assert(sum_is_fresh(&a), "merge; replay with CVG_TEST_SEED=%llu",
                  (unsigned long long)seed);
        /* The same entries set in another order: the same sum. */
        cvg__vv d = {0};
        for (size_t i = a.n; i > 0; i--) {
            cr_assert_eq(cvg__vv_set(&d, &a.e[i - 1].origin, a.e[i - 1].seq),
                         CVG_OK);
        }
        cvg__vv_sum_on(&d);
        cr_assert_eq(memcmp(&d.sum, &a.sum, sizeof d.sum), 0);
        /* One entry moved, then removed: another sum each time. */
        cvg_replica_id id =
            mkid((unsigned char)(cvg_test_below(&rng, NIDS) * 17 + 1));
        uint64_t was = cvg__vv_get(&a, &id);
        cvg__vv_sum before = a.sum;
        cr_assert_eq(cvg__vv_set(&a, &id, was + 1), CVG_OK);
        cr_assert(sum_is_fresh(&a));
        cr_assert_neq(memcmp(&before, &a.sum, sizeof before), 0);
        cr_assert_eq(cvg__vv_set(&a, &id, 0), CVG_OK);
        cr_assert(sum_is_fresh(&a), "removal; replay with CVG_TEST_SEED=%llu",
                  (unsigned long long)seed);
        cr_assert_eq(cvg__vv_set(&a, &id, was), CVG_OK);
        cr_assert_eq(memcmp(&before, &a.sum, sizeof before), 0,
                     "back to the same entries, back to the same sum");
        cvg__vv_destroy(&a);
        cvg__vv_destroy(&b);
        cvg__vv_destroy(&c);
        cvg__vv_destroy(&d);
    }
    /* The empty vector sums to zero. */
    cvg__vv_sum z, zero = {{0, 0, 0, 0}};
    cvg__vv_sum_of(NULL, 0, &z);
    cr_assert_eq(memcmp(&z, &zero, sizeof z), 0);
}

Test(vv, merge_laws)
{
    uint64_t base = cvg_test_seed(0x1A55);
    for (uint64_t s = 0; s < 300; s++) {
        uint64_t seed = base + s;
        uint64_t rng = seed;
        uint64_t d[NIDS];
        cvg__vv a = {0};
        cvg__vv b = {0};
        cvg__vv c = {0};
        random_vv(&rng, &a, d);
        random_vv(&rng, &b, d);
        random_vv(&rng, &c, d);

        /* Commutative: a + b == b + a. */
        cvg__vv ab = {0};
        cvg__vv ba = {0};
        cr_assert_eq(cvg__vv_copy(&ab, &a), CVG_OK);
        cr_assert_eq(cvg__vv_merge(&ab, &b), CVG_OK);
        cr_assert_eq(cvg__vv_copy(&ba, &b), CVG_OK);
        cr_assert_eq(cvg__vv_merge(&ba, &a), CVG_OK);
        cr_assert(vv_equal(&ab, &ba),
                  "commutativity; replay with "
                  "CVG_TEST_SEED=%llu",
                  (unsigned long long)seed);

        /* Associative: (a + b) + c == a + (b + c). */
        cvg__vv left = {0};
        cvg__vv bc = {0};
        cvg__vv right = {0};
        cr_assert_eq(cvg__vv_copy(&left, &ab), CVG_OK);
        cr_assert_eq(cvg__vv_merge(&left, &c), CVG_OK);
        cr_assert_eq(cvg__vv_copy(&bc, &b), CVG_OK);
        cr_assert_eq(cvg__vv_merge(&bc, &c), CVG_OK);
        cr_assert_eq(cvg__vv_copy(&right, &a), CVG_OK);
        cr_assert_eq(cvg__vv_merge(&right, &bc), CVG_OK);
        cr_assert(vv_equal(&left, &right),
                  "associativity; replay with "
                  "CVG_TEST_SEED=%llu",
                  (unsigned long long)seed);

        /* Idempotent: (a + b) + b == a + b, and x + x == x. */
        cvg__vv again = {0};
        cr_assert_eq(cvg__vv_copy(&again, &ab), CVG_OK);
        cr_assert_eq(cvg__vv_merge(&again, &b), CVG_OK);
        cr_assert(vv_equal(&again, &ab),
                  "idempotence; replay with "
                  "CVG_TEST_SEED=%llu",
                  (unsigned long long)seed);
        cr_assert_eq(cvg__vv_merge(&again, &again), CVG_OK);
        cr_assert(vv_equal(&again, &ab));

        cvg__vv *all[] = {&a, &b, &c, &ab, &ba, &left, &bc, &right, &again};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
            cvg__vv_destroy(all[i]);
        }
    }
}

Test(vv, merge_into_empty_and_from_empty)
{
    cvg__vv a = {0};
    cvg__vv e = {0};
    cvg_replica_id x = mkid(9);
    cr_assert_eq(cvg__vv_set(&a, &x, 3), CVG_OK);
    cr_assert_eq(cvg__vv_merge(&a, &e), CVG_OK);
    cr_expect_eq(a.n, 1);
    cr_assert_eq(cvg__vv_merge(&e, &a), CVG_OK);
    cr_expect(vv_equal(&a, &e));
    cvg__vv_destroy(&a);
    cvg__vv_destroy(&e);
}

/* ---- Fault injection ---------------------------------------------------- */

/* A vector whose array is exactly full, so one more origin must grow it. */
static void
full_vv(cvg__vv *vv)
{
    for (unsigned char k = 0; vv->n < 4 || vv->n < vv->cap; k++) {
        cvg_replica_id id = mkid((unsigned char)(2 * k + 2));
        cr_assert_eq(cvg__vv_set(vv, &id, 10u + k), CVG_OK);
    }
    cr_assert_eq(vv->n, vv->cap);
}

Test(vv_fault, set_is_failure_atomic)
{
    cvg__vv vv = {0};
    full_vv(&vv);
    cvg__vv snap = {0};
    cr_assert_eq(cvg__vv_copy(&snap, &vv), CVG_OK);
    cvg_replica_id id = mkid(5); /* odd: a new origin, in the middle */
    int failures = 0;
    for (unsigned long n = 1;; n++) {
        cvg__alloc_fail_after(n);
        int rc = cvg__vv_set(&vv, &id, 99);
        cvg__alloc_fail_after(0);
        if (rc == CVG_OK) {
            break;
        }
        cr_assert_eq(rc, CVG_ENOMEM, "allocation %lu", n);
        cr_assert(vv_equal(&vv, &snap), "state changed after failure %lu", n);
        failures++;
        cr_assert_lt(n, 100);
    }
    cr_expect_gt(failures, 0, "the set did allocate");
    cr_expect_eq(cvg__vv_get(&vv, &id), 99);
    cr_expect_eq(vv.n, snap.n + 1);
    cr_expect(well_formed(&vv));
    cvg__vv_destroy(&vv);
    cvg__vv_destroy(&snap);
}

Test(vv_fault, merge_and_copy_are_failure_atomic)
{
    cvg__vv a = {0};
    full_vv(&a);
    cvg__vv b = {0};
    cvg_replica_id x = mkid(1);
    cvg_replica_id y = mkid(7);
    cvg_replica_id z = mkid(4); /* also in a, with a larger seq here */
    cr_assert_eq(cvg__vv_set(&b, &x, 1), CVG_OK);
    cr_assert_eq(cvg__vv_set(&b, &y, 2), CVG_OK);
    cr_assert_eq(cvg__vv_set(&b, &z, 1000), CVG_OK);
    cvg__vv snap = {0};
    cr_assert_eq(cvg__vv_copy(&snap, &a), CVG_OK);
    int failures = 0;
    for (unsigned long n = 1;; n++) {
        cvg__alloc_fail_after(n);
        int rc = cvg__vv_merge(&a, &b);
        cvg__alloc_fail_after(0);
        if (rc == CVG_OK) {
            break;
        }
        cr_assert_eq(rc, CVG_ENOMEM);
        cr_assert(vv_equal(&a, &snap), "merge changed a after failure %lu", n);
        failures++;
        cr_assert_lt(n, 100);
    }
    cr_expect_gt(failures, 0);
    cr_expect_eq(cvg__vv_get(&a, &z), 1000);
    cr_expect_eq(a.n, snap.n + 2);

    /* Copy into a smaller, existing vector. */
    cvg__vv dst = {0};
    cr_assert_eq(cvg__vv_set(&dst, &x, 5), CVG_OK);
    cvg__vv dsnap = {0};
    cr_assert_eq(cvg__vv_copy(&dsnap, &dst), CVG_OK);
    failures = 0;
    for (unsigned long n = 1;; n++) {
        cvg__alloc_fail_after(n);
        int rc = cvg__vv_copy(&dst, &a);
        cvg__alloc_fail_after(0);
        if (rc == CVG_OK) {
            break;
        }
        cr_assert_eq(rc, CVG_ENOMEM);
        cr_assert(vv_equal(&dst, &dsnap));
        failures++;
        cr_assert_lt(n, 100);
    }
    cr_expect_gt(failures, 0);
    cr_expect(vv_equal(&dst, &a));
    cvg__vv *all[] = {&a, &b, &snap, &dst, &dsnap};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        cvg__vv_destroy(all[i]);
    }
}
