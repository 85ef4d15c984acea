/*
 * The PN-counter state: per-origin parts, an exact value that agrees in every
 * order and reports a sum outside int64, part sums that wrap alike in every
 * order, the local overflow check (value and own part), record deletes that
 * remove exactly what the deleter saw, and failure atomicity of add and
 * delete.
 */
#include <criterion/criterion.h>

#include "crdt/crdt_int.h"
#include "testutil.h"

static cvg_dot
mkdot(unsigned char tag, uint64_t seq)
{
    cvg_dot d;
    memset(&d, 0, sizeof d);
    d.origin.bytes[0] = tag;
    d.seq = seq;
    return d;
}

/* The value, which must be in range. */
static int64_t
val(const cvg__counter *c)
{
    int64_t v = 42;
    cr_assert_eq(cvg__counter_value(c, &v), CVG_OK);
    return v;
}

static bool
counter_equal(const cvg__counter *a, const cvg__counter *b)
{
    if (a->n != b->n) {
        return false;
    }
    for (size_t i = 0; i < a->n; i++) {
        const cvg__counter_part *x = &a->parts[i];
        const cvg__counter_part *y = &b->parts[i];
        if (cvg__id_cmp(&x->origin, &y->origin) != 0 || x->seq != y->seq ||
            x->sum != y->sum || x->floor_seq != y->floor_seq ||
            x->floor_sum != y->floor_sum) {
            return false;
        }
    }
    return true;
}

static void
copy_counter(cvg__counter *dst, const cvg__counter *src)
{
    dst->parts = calloc(src->n ? src->n : 1, sizeof src->parts[0]);
    cr_assert_not_null(dst->parts);
    if (src->n > 0) {
        memcpy(dst->parts, src->parts, src->n * sizeof src->parts[0]);
    }
    dst->n = dst->cap = src->n;
}

Test(counter, empty_is_zero_and_dead)
{
    cvg__counter c = {0};
    cr_expect_eq(val(&c), 0);
    cr_expect_not(cvg__counter_live(&c));
    cvg_dot d = mkdot(1, 1);
    cr_expect_eq(cvg__counter_check_add(&c, &d.origin, INT64_MAX), CVG_OK);
    cr_expect_eq(cvg__counter_check_add(&c, &d.origin, INT64_MIN), CVG_OK);
    cvg__counter_destroy(&c);
    cvg__counter_destroy(NULL);
}

Test(counter, adds_sum_per_origin_sorted)
{
    cvg__counter c = {0};
    cvg_dot d;
    d = mkdot(3, 1);
    cr_assert_eq(cvg__counter_add(&c, &d, 5), CVG_OK);
    d = mkdot(1, 1);
    cr_assert_eq(cvg__counter_add(&c, &d, -2), CVG_OK);
    d = mkdot(3, 2);
    cr_assert_eq(cvg__counter_add(&c, &d, 10), CVG_OK);
    d = mkdot(2, 7);
    cr_assert_eq(cvg__counter_add(&c, &d, 1), CVG_OK);
    cr_assert_eq(c.n, 3);
    cr_expect_eq(c.parts[0].origin.bytes[0], 1);
    cr_expect_eq(c.parts[1].origin.bytes[0], 2);
    cr_expect_eq(c.parts[2].origin.bytes[0], 3);
    cr_expect_eq(c.parts[2].sum, 15);
    cr_expect_eq(c.parts[2].seq, 2);
    cr_expect_eq(c.parts[1].seq, 7);
    cr_expect_eq(val(&c), 14);
    cr_expect(cvg__counter_live(&c));
    cvg__counter_destroy(&c);
}

Test(counter, duplicate_add_is_ignored)
{
    cvg__counter c = {0};
    cvg_dot d = mkdot(1, 4);
    cr_assert_eq(cvg__counter_add(&c, &d, 5), CVG_OK);
    cr_assert_eq(cvg__counter_add(&c, &d, 5), CVG_OK);
    cr_expect_eq(val(&c), 5);
    cvg__counter_destroy(&c);
}

Test(counter, wrapping_sums_agree_in_every_order)
{
    /* Each origin's two adds take its own part sum out of int64, which a
     * correct replica refuses locally but a peer breaking that rule can
     * send: the part wraps modulo 2^64, and the value must be the same
     * every time. Each origin's two adds keep their order (causal
     * delivery); the schedules interleave the origins in all six ways. */
    const int64_t deltas[3][2] = {
        {0, 0}, {INT64_MAX, INT64_MAX}, {INT64_MIN, -5}};
    const unsigned char sched[6][4] = {{1, 1, 2, 2}, {2, 2, 1, 1},
                                       {1, 2, 1, 2}, {2, 1, 2, 1},
                                       {1, 2, 2, 1}, {2, 1, 1, 2}};
    int64_t first = 0;
    for (int p = 0; p < 6; p++) {
        cvg__counter c = {0};
        uint64_t seq[3] = {0, 0, 0};
        for (int k = 0; k < 4; k++) {
            unsigned char o = sched[p][k];
            int64_t delta = deltas[o][seq[o]];
            cvg_dot d = mkdot(o, ++seq[o]);
            cr_assert_eq(cvg__counter_add(&c, &d, delta), CVG_OK);
        }
        int64_t v = val(&c);
        if (p == 0) {
            first = v;
        }
        cr_expect_eq(v, first, "schedule %d", p);
        cvg__counter_destroy(&c);
    }
    /* Parts MAX + MAX == -2 and MIN - 5 == MAX - 4 (wrapped), so the exact
     * total of the parts is MAX - 6. */
    cr_expect_eq(first, INT64_MAX - 6);
}

Test(counter, check_add_detects_overflow)
{
    cvg__counter c = {0};
    cvg_dot d = mkdot(1, 1);
    const cvg_replica_id o1 = d.origin;
    const cvg_replica_id o4 = mkdot(4, 1).origin;
    cr_assert_eq(cvg__counter_add(&c, &d, INT64_MAX - 1), CVG_OK);
    cr_expect_eq(cvg__counter_check_add(&c, &o1, 1), CVG_OK);
    cr_expect_eq(cvg__counter_check_add(&c, &o1, 2), CVG_EOVERFLOW);
    cr_expect_eq(cvg__counter_check_add(&c, &o1, INT64_MIN), CVG_OK);
    d = mkdot(2, 1);
    cr_assert_eq(cvg__counter_add(&c, &d, INT64_MIN), CVG_OK);
    cr_expect_eq(val(&c), -2);
    d = mkdot(3, 1);
    cr_assert_eq(cvg__counter_add(&c, &d, INT64_MIN + 2), CVG_OK);
    cr_expect_eq(val(&c), INT64_MIN);
    cr_expect_eq(cvg__counter_check_add(&c, &o4, -1), CVG_EOVERFLOW);
    cr_expect_eq(cvg__counter_check_add(&c, &o4, INT64_MAX), CVG_OK);
    /* The value would be -1, but origin 1's own part would leave int64. */
    cr_expect_eq(cvg__counter_check_add(&c, &o1, INT64_MAX), CVG_EOVERFLOW);
    cvg__counter_destroy(&c);
}

Test(counter, value_outside_int64_is_reported_exactly)
{
    /* INT64_MAX from one origin and 1 from another: the exact sum is
     * INT64_MAX + 1, reported (saturated) instead of wrapping to INT64_MIN;
     * a later -2 brings it back to INT64_MAX - 1. */
    cvg__counter c = {0};
    cvg_dot d = mkdot(1, 1);
    cr_assert_eq(cvg__counter_add(&c, &d, INT64_MAX), CVG_OK);
    d = mkdot(2, 1);
    cr_assert_eq(cvg__counter_add(&c, &d, 1), CVG_OK);
    int64_t v = 0;
    cr_expect_eq(cvg__counter_value(&c, &v), CVG_EOVERFLOW);
    cr_expect_eq(v, INT64_MAX);
    cr_expect(cvg__counter_total(&c) == (cvg__i128)INT64_MAX + 1);
    /* A local add that lands back in range is allowed; one that stays out
     * is not. */
    cr_expect_eq(cvg__counter_check_add(&c, &d.origin, 1), CVG_EOVERFLOW);
    cr_expect_eq(cvg__counter_check_add(&c, &d.origin, -1), CVG_OK);
    d = mkdot(2, 2);
    cr_assert_eq(cvg__counter_add(&c, &d, -2), CVG_OK);
    cr_expect_eq(val(&c), INT64_MAX - 1);
    /* And below: three origins of INT64_MIN, one of INT64_MAX. */
    cvg__counter m = {0};
    for (unsigned char o = 1; o <= 3; o++) {
        d = mkdot(o, 1);
        cr_assert_eq(cvg__counter_add(&m, &d, INT64_MIN), CVG_OK);
    }
    cr_expect_eq(cvg__counter_value(&m, &v), CVG_EOVERFLOW);
    cr_expect_eq(v, INT64_MIN);
    cr_expect(cvg__counter_total(&m) == 3 * (cvg__i128)INT64_MIN);
    /* A delete that saw two of them leaves one: back in range. */
    cvg__counter_part seen[2] = {{mkdot(1, 1).origin, 1, INT64_MIN, 0, 0},
                                 {mkdot(2, 1).origin, 1, INT64_MIN, 0, 0}};
    cr_assert_eq(cvg__counter_delete(&m, seen, 2), CVG_OK);
    cr_expect_eq(val(&m), INT64_MIN);
    cvg__counter_destroy(&m);
    cvg__counter_destroy(&c);
}

Test(counter, delete_removes_what_was_seen)
{
    cvg__counter c = {0};
    cvg_dot d;
    d = mkdot(1, 1);
    cr_assert_eq(cvg__counter_add(&c, &d, 10), CVG_OK);
    d = mkdot(2, 1);
    cr_assert_eq(cvg__counter_add(&c, &d, 7), CVG_OK);
    /* The deleter saw both parts as they are now. */
    cvg__counter seen = {0};
    copy_counter(&seen, &c);
    /* A concurrent add from origin 1 that the deleter did not see. */
    d = mkdot(1, 2);
    cr_assert_eq(cvg__counter_add(&c, &d, 3), CVG_OK);
    cr_assert_eq(cvg__counter_delete(&c, seen.parts, seen.n), CVG_OK);
    cr_expect_eq(val(&c), 3, "only the unseen add is left");
    cr_expect(cvg__counter_live(&c));
    cr_expect_eq(c.parts[0].floor_seq, 1);
    cr_expect_eq(c.parts[0].floor_sum, 10);

    /* An older delete (lower seq) does not lower the floor. */
    cvg__counter_part old = {mkdot(1, 0).origin, 0, 0, 0, 0};
    old.seq = 1;
    old.sum = 10;
    cr_assert_eq(cvg__counter_delete(&c, &old, 1), CVG_OK);
    cr_expect_eq(val(&c), 3);

    /* A delete that saw everything empties it. */
    cvg__counter all = {0};
    copy_counter(&all, &c);
    cr_assert_eq(cvg__counter_delete(&c, all.parts, all.n), CVG_OK);
    cr_expect_eq(val(&c), 0);
    cr_expect_not(cvg__counter_live(&c));
    /* Adds after the delete count again. */
    d = mkdot(2, 5);
    cr_assert_eq(cvg__counter_add(&c, &d, -4), CVG_OK);
    cr_expect_eq(val(&c), -4);
    cr_expect(cvg__counter_live(&c));
    free(seen.parts);
    free(all.parts);
    cvg__counter_destroy(&c);
}

Test(counter, delete_order_does_not_matter)
{
    /* Two deletes with different views, applied in both orders. */
    cvg__counter_part v1 = {mkdot(1, 0).origin, 2, 30, 0, 0};
    cvg__counter_part v2 = {mkdot(1, 0).origin, 3, 36, 0, 0};
    cvg__counter a = {0};
    cvg__counter b = {0};
    for (uint64_t s = 1; s <= 4; s++) {
        cvg_dot d = mkdot(1, s);
        int64_t delta = s == 1 ? 10 : s == 2 ? 20 : s == 3 ? 6 : 1;
        cr_assert_eq(cvg__counter_add(&a, &d, delta), CVG_OK);
        cr_assert_eq(cvg__counter_add(&b, &d, delta), CVG_OK);
    }
    cr_assert_eq(cvg__counter_delete(&a, &v1, 1), CVG_OK);
    cr_assert_eq(cvg__counter_delete(&a, &v2, 1), CVG_OK);
    cr_assert_eq(cvg__counter_delete(&b, &v2, 1), CVG_OK);
    cr_assert_eq(cvg__counter_delete(&b, &v1, 1), CVG_OK);
    cr_expect(counter_equal(&a, &b));
    cr_expect_eq(val(&a), 1);
    cvg__counter_destroy(&a);
    cvg__counter_destroy(&b);
}

Test(counter, delete_of_unknown_origin_creates_floor)
{
    /* Not reachable under causal delivery, but the state stays sane. */
    cvg__counter c = {0};
    cvg__counter_part p = {mkdot(9, 0).origin, 2, 5, 0, 0};
    cvg__counter_part nothing = {mkdot(8, 0).origin, 0, 0, 0, 0};
    cvg__counter_part both[2] = {p, nothing};
    cr_assert_eq(cvg__counter_delete(&c, both, 2), CVG_OK);
    cr_assert_eq(c.n, 1, "a part that observed nothing adds nothing");
    cr_expect_eq(c.parts[0].floor_seq, 2);
    cr_expect_not(cvg__counter_live(&c));
    cvg_dot d = mkdot(9, 1);
    cr_assert_eq(cvg__counter_add(&c, &d, 2), CVG_OK);
    d = mkdot(9, 2);
    cr_assert_eq(cvg__counter_add(&c, &d, 3), CVG_OK);
    cr_expect_eq(val(&c), 0);
    cr_expect_not(cvg__counter_live(&c));
    cvg__counter_destroy(&c);
}

/* ---- Fault injection ---------------------------------------------------- */

/* Four parts in an array of exactly four: a new origin must grow it. */
static void
full_counter(cvg__counter *c)
{
    for (unsigned char k = 0; c->n < 4 || c->n < c->cap; k++) {
        cvg_dot d = mkdot((unsigned char)(2 * k + 2), 1);
        cr_assert_eq(cvg__counter_add(c, &d, 100 + k), CVG_OK);
    }
    cr_assert_eq(c->n, c->cap);
}

Test(counter_fault, add_is_failure_atomic)
{
    cvg__counter c = {0};
    full_counter(&c);
    cvg__counter snap = {0};
    copy_counter(&snap, &c);
    cvg_dot d = mkdot(3, 1);
    int failures = 0;
    for (unsigned long n = 1;; n++) {
        cvg__alloc_fail_after(n);
        int rc = cvg__counter_add(&c, &d, 42);
        cvg__alloc_fail_after(0);
        if (rc == CVG_OK) {
            break;
        }
        cr_assert_eq(rc, CVG_ENOMEM);
        cr_assert(counter_equal(&c, &snap), "changed after failure %lu", n);
        failures++;
        cr_assert_lt(n, 100);
    }
    cr_expect_gt(failures, 0);
    cr_expect_eq(val(&c), val(&snap) + 42);
    free(snap.parts);
    cvg__counter_destroy(&c);

    /* The very first add allocates too. */
    cvg__counter e = {0};
    cvg__alloc_fail_after(1);
    cr_expect_eq(cvg__counter_add(&e, &d, 1), CVG_ENOMEM);
    cvg__alloc_fail_after(0);
    cr_expect_eq(e.n, 0);
    cr_expect_eq(val(&e), 0);
    cvg__counter_destroy(&e);
}

Test(counter_fault, delete_is_failure_atomic)
{
    cvg__counter c = {0};
    full_counter(&c);
    cvg__counter snap = {0};
    copy_counter(&snap, &c);
    /* Raises a known floor and creates two new parts: nothing may move
     * unless all of it can. */
    cvg__counter_part obs[3] = {
        {mkdot(2, 0).origin, 1, 100, 0, 0},
        {mkdot(5, 0).origin, 3, 9, 0, 0},
        {mkdot(1, 0).origin, 1, 1, 0, 0},
    };
    int failures = 0;
    for (unsigned long n = 1;; n++) {
        cvg__alloc_fail_after(n);
        int rc = cvg__counter_delete(&c, obs, 3);
        cvg__alloc_fail_after(0);
        if (rc == CVG_OK) {
            break;
        }
        cr_assert_eq(rc, CVG_ENOMEM);
        cr_assert(counter_equal(&c, &snap), "changed after failure %lu", n);
        failures++;
        cr_assert_lt(n, 100);
    }
    cr_expect_gt(failures, 0);
    cr_expect_eq(c.n, snap.n + 2);
    cr_expect_eq(c.parts[1].floor_seq, 1, "origin 2's floor was raised");
    free(snap.parts);
    cvg__counter_destroy(&c);
}
