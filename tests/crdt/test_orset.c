/*
 * The tags of an observed-remove set element: sorted and duplicate-free,
 * removes drop only what their writer saw (so a concurrent add wins),
 * record deletes drop what the version vector covers, and failure
 * atomicity of add and copy.
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

static bool
tags_equal(const cvg__tags *a, const cvg__tags *b)
{
    if (a->n != b->n) {
        return false;
    }
    for (size_t i = 0; i < a->n; i++) {
        if (cvg__dot_cmp(&a->d[i], &b->d[i]) != 0) {
            return false;
        }
    }
    return true;
}

static bool
well_formed(const cvg__tags *t)
{
    for (size_t i = 1; i < t->n; i++) {
        if (cvg__dot_cmp(&t->d[i - 1], &t->d[i]) >= 0) {
            return false;
        }
    }
    return t->n <= t->cap;
}

static void
add(cvg__tags *t, cvg_dot d)
{
    cr_assert_eq(cvg__tags_add(t, &d), CVG_OK);
}

Test(tags, add_keeps_sorted_without_duplicates)
{
    cvg__tags t = {0};
    add(&t, mkdot(2, 5));
    add(&t, mkdot(1, 9));
    add(&t, mkdot(2, 1));
    add(&t, mkdot(1, 9));
    add(&t, mkdot(3, 1));
    add(&t, mkdot(2, 5));
    cr_assert_eq(t.n, 4);
    cr_expect(well_formed(&t));
    cvg_dot want[4] = {mkdot(1, 9), mkdot(2, 1), mkdot(2, 5), mkdot(3, 1)};
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(cvg__dot_cmp(&t.d[i], &want[i]), 0, "tag %d", i);
    }
    cvg__tags_destroy(&t);
    cvg__tags_destroy(&t);
    cvg__tags_destroy(NULL);
}

Test(tags, remove_drops_only_observed)
{
    cvg__tags t = {0};
    add(&t, mkdot(1, 1));
    add(&t, mkdot(1, 2));
    add(&t, mkdot(2, 1));
    /* Unsorted, with a dot that is not there. */
    cvg_dot obs[3] = {mkdot(2, 1), mkdot(7, 7), mkdot(1, 1)};
    cvg__tags_remove(&t, obs, 3);
    cr_assert_eq(t.n, 1);
    cvg_dot left = mkdot(1, 2);
    cr_expect_eq(cvg__dot_cmp(&t.d[0], &left), 0);
    cvg__tags_remove(&t, NULL, 0);
    cr_expect_eq(t.n, 1);
    cvg__tags_destroy(&t);
}

Test(tags, add_concurrent_with_remove_wins)
{
    /* A adds x (a1) and B learns of it. Then, concurrently, B removes x
     * (seeing a1) and A adds x again (a2). Either delivery order on a
     * third replica keeps x, tagged a2 alone. */
    cvg_dot a1 = mkdot(0xA, 1);
    cvg_dot a2 = mkdot(0xA, 2);
    cvg_dot seen[1] = {a1};
    for (int order = 0; order < 2; order++) {
        cvg__tags t = {0};
        add(&t, a1);
        if (order == 0) {
            cvg__tags_remove(&t, seen, 1);
            add(&t, a2);
        } else {
            add(&t, a2);
            cvg__tags_remove(&t, seen, 1);
        }
        cr_assert_eq(t.n, 1, "order %d: x survives", order);
        cr_expect_eq(cvg__dot_cmp(&t.d[0], &a2), 0);
        cvg__tags_destroy(&t);
    }
}

Test(tags, remove_that_saw_every_tag_empties)
{
    cvg__tags t = {0};
    for (uint64_t s = 1; s <= 6; s++) {
        add(&t, mkdot((unsigned char)(s % 3), s));
    }
    cvg__tags seen = {0};
    cr_assert_eq(cvg__tags_copy(&seen, &t), CVG_OK);
    cvg__tags_remove(&t, seen.d, seen.n);
    cr_expect_eq(t.n, 0);
    cvg__tags_destroy(&seen);
    cvg__tags_destroy(&t);
}

Test(tags, delete_drops_covered)
{
    cvg__tags t = {0};
    add(&t, mkdot(1, 1));
    add(&t, mkdot(1, 4));
    add(&t, mkdot(2, 2));
    cvg__vv vv = {0};
    cvg_replica_id o1 = mkdot(1, 0).origin;
    cvg_replica_id o2 = mkdot(2, 0).origin;
    cr_assert_eq(cvg__vv_set(&vv, &o1, 3), CVG_OK);
    cr_assert_eq(cvg__vv_set(&vv, &o2, 2), CVG_OK);
    cvg__tags_delete(&t, &vv);
    cr_assert_eq(t.n, 1);
    cvg_dot left = mkdot(1, 4);
    cr_expect_eq(cvg__dot_cmp(&t.d[0], &left), 0);
    cvg__vv_destroy(&vv);
    cvg__tags_destroy(&t);
}

Test(tags, copy_replaces_destination)
{
    cvg__tags t = {0};
    add(&t, mkdot(1, 1));
    add(&t, mkdot(3, 3));
    cvg__tags c = {0};
    add(&c, mkdot(9, 9));
    cr_assert_eq(cvg__tags_copy(&c, &t), CVG_OK);
    cr_expect(tags_equal(&c, &t));
    cr_expect_neq(c.d, t.d);
    cr_assert_eq(cvg__tags_copy(&c, &c), CVG_OK);
    cr_expect(tags_equal(&c, &t));
    cvg__tags e = {0};
    cr_assert_eq(cvg__tags_copy(&c, &e), CVG_OK);
    cr_expect_eq(c.n, 0);
    cvg__tags_destroy(&c);
    cvg__tags_destroy(&t);
}

/* ---- Fault injection ---------------------------------------------------- */

/* At least @p min tags in an array exactly full, so one more must grow. */
static void
full_tags(cvg__tags *t, size_t min)
{
    for (unsigned char k = 0; t->n < min || t->n < t->cap; k++) {
        add(t, mkdot((unsigned char)(2 * k + 2), 1));
    }
    cr_assert_eq(t->n, t->cap);
}

static void
snapshot(cvg__tags *dst, const cvg__tags *src)
{
    dst->d = calloc(src->n ? src->n : 1, sizeof src->d[0]);
    cr_assert_not_null(dst->d);
    if (src->n > 0) {
        memcpy(dst->d, src->d, src->n * sizeof src->d[0]);
    }
    dst->n = dst->cap = src->n;
}

Test(tags_fault, add_is_failure_atomic)
{
    cvg__tags t = {0};
    full_tags(&t, 4);
    cvg__tags snap = {0};
    snapshot(&snap, &t);
    cvg_dot d = mkdot(3, 7);
    int failures = 0;
    for (unsigned long n = 1;; n++) {
        cvg__alloc_fail_after(n);
        int rc = cvg__tags_add(&t, &d);
        cvg__alloc_fail_after(0);
        if (rc == CVG_OK) {
            break;
        }
        cr_assert_eq(rc, CVG_ENOMEM);
        cr_assert(tags_equal(&t, &snap), "changed after failure %lu", n);
        failures++;
        cr_assert_lt(n, 100);
    }
    cr_expect_gt(failures, 0);
    cr_expect_eq(t.n, snap.n + 1);
    cr_expect(well_formed(&t));
    free(snap.d);
    cvg__tags_destroy(&t);
}

Test(tags_fault, copy_is_failure_atomic)
{
    cvg__tags t = {0};
    full_tags(&t, 5); /* more than dst's first array holds */
    cvg__tags dst = {0};
    add(&dst, mkdot(1, 1));
    cvg__tags snap = {0};
    snapshot(&snap, &dst);
    int failures = 0;
    for (unsigned long n = 1;; n++) {
        cvg__alloc_fail_after(n);
        int rc = cvg__tags_copy(&dst, &t);
        cvg__alloc_fail_after(0);
        if (rc == CVG_OK) {
            break;
        }
        cr_assert_eq(rc, CVG_ENOMEM);
        cr_assert(tags_equal(&dst, &snap), "changed after failure %lu", n);
        failures++;
        cr_assert_lt(n, 100);
    }
    cr_expect_gt(failures, 0);
    cr_expect(tags_equal(&dst, &t));
    free(snap.d);
    cvg__tags_destroy(&dst);
    cvg__tags_destroy(&t);
}
