/*
 * Register state and values: replacing what the writer saw, keeping
 * concurrent siblings, the LWW winner, record deletes, deep copies, the
 * value order and checks, and failure atomicity of set and copy.
 */
#include <criterion/criterion.h>
#include <math.h>

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

static cvg_value
str(const char *s)
{
    cvg_value v = {CVG_VALUE_STRING, {0}};
    v.as.bytes.data = (const uint8_t *)s;
    v.as.bytes.len = strlen(s);
    return v;
}

static cvg_value
bytes(const void *p, size_t n)
{
    cvg_value v = {CVG_VALUE_BYTES, {0}};
    v.as.bytes.data = p;
    v.as.bytes.len = n;
    return v;
}

static cvg_replica_id
mkid(unsigned char tag)
{
    return mkdot(tag, 0).origin;
}

static bool
reg_equal(const cvg__reg *a, const cvg__reg *b)
{
    if (a->n != b->n) {
        return false;
    }
    for (size_t i = 0; i < a->n; i++) {
        if (cvg__dot_cmp(&a->s[i].dot, &b->s[i].dot) != 0 ||
            a->s[i].hlc != b->s[i].hlc ||
            cvg__value_cmp(&a->s[i].value, &b->s[i].value) != 0) {
            return false;
        }
    }
    return true;
}

static bool
sorted(const cvg__reg *r)
{
    for (size_t i = 1; i < r->n; i++) {
        if (cvg__dot_cmp(&r->s[i - 1].dot, &r->s[i].dot) >= 0) {
            return false;
        }
    }
    return true;
}

static void
set(cvg__reg *r, cvg_dot d, uint64_t hlc, cvg_value v, const cvg_dot *obs,
    size_t n, bool *conflict)
{
    cr_assert_eq(cvg__reg_set(r, &d, hlc, &v, obs, n, conflict), CVG_OK);
}

/* ---- Registers ---------------------------------------------------------- */

Test(reg, first_set_has_no_conflict)
{
    cvg__reg r = {0};
    bool conflict = true;
    cr_expect_null(cvg__reg_winner(&r));
    set(&r, mkdot(1, 1), 100, cvg_value_int(7), NULL, 0, &conflict);
    cr_expect_not(conflict);
    cr_assert_eq(r.n, 1);
    cr_expect_eq(r.s[0].value.as.integer, 7);
    cr_expect_eq(cvg__reg_winner(&r), &r.s[0]);
    cvg__reg_destroy(&r);
    cvg__reg_destroy(&r);
    cvg__reg_destroy(NULL);
}

Test(reg, set_replaces_what_the_writer_saw)
{
    cvg__reg r = {0};
    bool conflict;
    set(&r, mkdot(1, 1), 100, str("a"), NULL, 0, &conflict);
    cvg_dot seen = mkdot(1, 1);
    set(&r, mkdot(2, 1), 200, str("bb"), &seen, 1, &conflict);
    cr_expect_not(conflict);
    cr_assert_eq(r.n, 1);
    cvg_dot want = mkdot(2, 1);
    cr_expect_eq(cvg__dot_cmp(&r.s[0].dot, &want), 0);
    cr_expect_eq(r.s[0].value.as.bytes.len, 2);
    cr_expect_eq(memcmp(r.s[0].value.as.bytes.data, "bb", 2), 0);
    cvg__reg_destroy(&r);
}

Test(reg, concurrent_sets_keep_siblings_and_conflict)
{
    cvg__reg r = {0};
    bool conflict;
    /* Both writers saw only (1,1). */
    set(&r, mkdot(1, 1), 100, str("base"), NULL, 0, &conflict);
    cvg_dot base = mkdot(1, 1);
    set(&r, mkdot(3, 1), 300, str("three"), &base, 1, &conflict);
    cr_expect_not(conflict);
    set(&r, mkdot(2, 1), 500, str("two"), &base, 1, &conflict);
    cr_expect(conflict, "(3,1) was not seen by (2,1)'s writer");
    cr_assert_eq(r.n, 2);
    cr_expect(sorted(&r));
    const cvg__sibling *w = cvg__reg_winner(&r);
    cr_assert_not_null(w);
    cr_expect_eq(w->dot.origin.bytes[0], 2, "higher hlc wins");

    /* A write that saw both siblings resolves the conflict. */
    cvg_dot both[3] = {mkdot(3, 1), mkdot(9, 9), mkdot(2, 1)};
    set(&r, mkdot(1, 2), 600, cvg_value_bool(true), both, 3, &conflict);
    cr_expect_not(conflict);
    cr_assert_eq(r.n, 1);
    cr_expect_eq(r.s[0].value.kind, CVG_VALUE_BOOL);
    cvg__reg_destroy(&r);
}

Test(reg, existing_dot_is_a_noop)
{
    cvg__reg r = {0};
    bool conflict;
    set(&r, mkdot(1, 1), 100, str("x"), NULL, 0, &conflict);
    set(&r, mkdot(2, 1), 100, str("y"), NULL, 0, &conflict);
    cr_expect(conflict);
    /* Re-applying (2,1), even claiming to replace (1,1), changes nothing. */
    cvg_dot obs = mkdot(1, 1);
    set(&r, mkdot(2, 1), 999, str("z"), &obs, 1, &conflict);
    cr_expect_not(conflict);
    cr_assert_eq(r.n, 2);
    cr_expect_eq(r.s[1].hlc, 100);
    cr_expect_eq(r.s[1].value.as.bytes.data[0], 'y');
    cvg__reg_destroy(&r);
}

Test(reg, winner_breaks_ties_by_origin_then_seq)
{
    cvg__reg r = {0};
    set(&r, mkdot(5, 1), 1000, cvg_value_int(1), NULL, 0, NULL);
    set(&r, mkdot(7, 1), 1000, cvg_value_int(2), NULL, 0, NULL);
    set(&r, mkdot(6, 9), 1000, cvg_value_int(3), NULL, 0, NULL);
    cr_expect_eq(cvg__reg_winner(&r)->value.as.integer, 2);
    set(&r, mkdot(7, 2), 1000, cvg_value_int(4), NULL, 0, NULL);
    cr_expect_eq(cvg__reg_winner(&r)->value.as.integer, 4, "same origin: seq");
    set(&r, mkdot(1, 1), 1001, cvg_value_int(5), NULL, 0, NULL);
    cr_expect_eq(cvg__reg_winner(&r)->value.as.integer, 5, "hlc first");
    cvg__reg_destroy(&r);
}

Test(reg, delete_drops_covered_siblings)
{
    cvg__reg r = {0};
    set(&r, mkdot(1, 3), 10, str("one"), NULL, 0, NULL);
    set(&r, mkdot(2, 4), 20, str("two"), NULL, 0, NULL);
    set(&r, mkdot(3, 1), 30, str("three"), NULL, 0, NULL);
    cvg__vv vv = {0};
    cvg_replica_id o1 = mkid(1);
    cvg_replica_id o2 = mkid(2);
    cvg_replica_id o3 = mkid(3);
    cr_assert_eq(cvg__vv_set(&vv, &o1, 3), CVG_OK);
    cr_assert_eq(cvg__vv_set(&vv, &o2, 3), CVG_OK);
    cvg__reg_delete(&r, &vv);
    cr_assert_eq(r.n, 2, "(1,3) covered; (2,4) and (3,1) not");
    cr_expect_eq(r.s[0].dot.origin.bytes[0], 2);
    cr_expect_eq(r.s[1].dot.origin.bytes[0], 3);
    cr_assert_eq(cvg__vv_set(&vv, &o2, 4), CVG_OK);
    cr_assert_eq(cvg__vv_set(&vv, &o3, 1), CVG_OK);
    cvg__reg_delete(&r, &vv);
    cr_expect_eq(r.n, 0);
    cr_expect_null(cvg__reg_winner(&r));
    cvg__vv_destroy(&vv);
    cvg__reg_destroy(&r);
}

Test(reg, copy_is_deep)
{
    char buf[8] = "mutable";
    cvg__reg r = {0};
    set(&r, mkdot(1, 1), 10, str(buf), NULL, 0, NULL);
    cr_expect_neq((const void *)r.s[0].value.as.bytes.data, (void *)buf,
                  "the set copies the value");
    set(&r, mkdot(2, 1), 20, cvg_value_double(2.5), NULL, 0, NULL);
    set(&r, mkdot(3, 1), 30, bytes("", 0), NULL, 0, NULL);
    cvg__reg c = {0};
    /* An existing destination is replaced, not leaked. */
    set(&c, mkdot(9, 9), 1, str("old"), NULL, 0, NULL);
    cr_assert_eq(cvg__reg_copy(&c, &r), CVG_OK);
    cr_expect(reg_equal(&c, &r));
    cr_expect_neq(c.s[0].value.as.bytes.data, r.s[0].value.as.bytes.data);
    buf[0] = 'X';
    cvg__reg_destroy(&r);
    cr_assert_eq(c.n, 3);
    cr_expect_eq(memcmp(c.s[0].value.as.bytes.data, "mutable", 7), 0);
    cr_assert_eq(cvg__reg_copy(&c, &c), CVG_OK);
    cr_expect_eq(c.n, 3);
    cvg__reg_destroy(&c);
}

Test(reg, invalid_value_is_refused_unchanged)
{
    cvg__reg r = {0};
    set(&r, mkdot(1, 1), 10, str("keep"), NULL, 0, NULL);
    cvg_value bad = bytes(NULL, 3);
    cvg_dot d = mkdot(2, 1);
    cvg_dot obs = mkdot(1, 1);
    bool conflict;
    cr_expect_eq(cvg__reg_set(&r, &d, 20, &bad, &obs, 1, &conflict),
                 CVG_EINVAL);
    cvg_value big = bytes("x", (size_t)CVG_VALUE_MAX + 1);
    cr_expect_eq(cvg__reg_set(&r, &d, 20, &big, &obs, 1, &conflict),
                 CVG_ETOOBIG);
    cr_assert_eq(r.n, 1);
    cr_expect_eq(r.s[0].dot.origin.bytes[0], 1);
    cvg__reg_destroy(&r);
}

/* ---- Values ------------------------------------------------------------- */

Test(value, check)
{
    cvg_value v = cvg_value_nil();
    cr_expect_eq(cvg__value_check(&v), CVG_OK);
    cr_expect_eq(cvg__value_check(NULL), CVG_EINVAL);
    v = bytes(NULL, 0);
    cr_expect_eq(cvg__value_check(&v), CVG_OK, "empty bytes need no data");
    v = bytes(NULL, 1);
    cr_expect_eq(cvg__value_check(&v), CVG_EINVAL);
    v = bytes("x", CVG_VALUE_MAX);
    cr_expect_eq(cvg__value_check(&v), CVG_OK);
    v = bytes("x", (size_t)CVG_VALUE_MAX + 1);
    cr_expect_eq(cvg__value_check(&v), CVG_ETOOBIG);
    v = str("x");
    v.as.bytes.len = (size_t)CVG_VALUE_MAX + 1;
    cr_expect_eq(cvg__value_check(&v), CVG_ETOOBIG);
    v = cvg_value_int(1);
    v.kind = (cvg_value_kind)6;
    cr_expect_eq(cvg__value_check(&v), CVG_EINVAL);
    v.kind = (cvg_value_kind)-1;
    cr_expect_eq(cvg__value_check(&v), CVG_EINVAL);
}

static int
sign(int x)
{
    return (x > 0) - (x < 0);
}

Test(value, total_order)
{
    /* Listed in ascending order. */
    const uint8_t b0[] = {0x00};
    const uint8_t bff[] = {0xFF};
    const cvg_value v[] = {
        cvg_value_nil(),
        cvg_value_bool(false),
        cvg_value_bool(true),
        cvg_value_int(INT64_MIN),
        cvg_value_int(-1),
        cvg_value_int(0),
        cvg_value_int(INT64_MAX),
        cvg_value_double(-NAN),
        cvg_value_double(-INFINITY),
        cvg_value_double(-1.5),
        cvg_value_double(-0.0),
        cvg_value_double(0.0),
        cvg_value_double(1e-300),
        cvg_value_double(2.0),
        cvg_value_double(INFINITY),
        cvg_value_double(NAN),
        str(""),
        str("a"),
        str("ab"),
        str("b"),
        bytes(NULL, 0),
        bytes(b0, 1),
        bytes(bff, 1),
    };
    size_t n = sizeof v / sizeof v[0];
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            int want = i < j ? -1 : i > j ? 1 : 0;
            cr_expect_eq(sign(cvg__value_cmp(&v[i], &v[j])), want,
                         "cmp(v[%zu], v[%zu])", i, j);
        }
    }
    /* Equal content at different addresses. */
    char s1[] = "same";
    char s2[] = "same";
    cvg_value a = str(s1);
    cvg_value b = str(s2);
    cr_expect_eq(cvg__value_cmp(&a, &b), 0);
}

Test(value, copy_and_free)
{
    char s[] = "hello";
    cvg_value src = str(s);
    cvg_value dst;
    cr_assert_eq(cvg__value_copy(&dst, &src), CVG_OK);
    cr_expect_neq((const void *)dst.as.bytes.data, (void *)s);
    s[0] = 'j';
    cr_expect_eq(memcmp(dst.as.bytes.data, "hello", 5), 0);
    cvg__value_free(&dst);
    cr_expect_eq(dst.kind, CVG_VALUE_NIL);
    cvg__value_free(&dst);
    cvg__value_free(NULL);

    cvg_value e = bytes(NULL, 0);
    cr_assert_eq(cvg__value_copy(&dst, &e), CVG_OK);
    cr_expect_eq(dst.kind, CVG_VALUE_BYTES);
    cr_expect_eq(dst.as.bytes.len, 0);
    cr_expect_eq(cvg__value_cmp(&dst, &e), 0);
    cvg__value_free(&dst);

    cvg_value d = cvg_value_double(-0.0);
    cr_assert_eq(cvg__value_copy(&dst, &d), CVG_OK);
    cr_expect_eq(cvg__value_cmp(&dst, &d), 0);
    cr_expect(signbit(dst.as.real));
    cvg__value_free(&dst);

    cvg__alloc_fail_after(1);
    cr_expect_eq(cvg__value_copy(&dst, &src), CVG_ENOMEM);
    cvg__alloc_fail_after(0);
    cr_expect_eq(dst.kind, CVG_VALUE_NIL, "zeroed on error");
}

/* ---- Fault injection ---------------------------------------------------- */

/* Four siblings with string values in an array of exactly four. */
static void
full_reg(cvg__reg *r)
{
    static const char *names[] = {"w", "x", "y", "z", "p", "q", "r", "s"};
    for (unsigned k = 0; r->n < 4 || r->n < r->cap; k++) {
        set(r, mkdot((unsigned char)(2 * k + 2), 1), 100 + k, str(names[k % 8]),
            NULL, 0, NULL);
    }
    cr_assert_eq(r->n, r->cap);
}

Test(reg_fault, set_is_failure_atomic)
{
    cvg__reg r = {0};
    full_reg(&r);
    cvg__reg snap = {0};
    cr_assert_eq(cvg__reg_copy(&snap, &r), CVG_OK);
    /* Replaces two siblings, so a half-done set would be visible. */
    cvg_dot obs[2] = {mkdot(4, 1), mkdot(2, 1)};
    cvg_dot d = mkdot(3, 1);
    cvg_value v = str("new value");
    int failures = 0;
    for (unsigned long n = 1;; n++) {
        bool conflict = false;
        cvg__alloc_fail_after(n);
        int rc = cvg__reg_set(&r, &d, 500, &v, obs, 2, &conflict);
        cvg__alloc_fail_after(0);
        if (rc == CVG_OK) {
            cr_expect(conflict);
            break;
        }
        cr_assert_eq(rc, CVG_ENOMEM);
        cr_assert(reg_equal(&r, &snap), "changed after failure %lu", n);
        failures++;
        cr_assert_lt(n, 100);
    }
    cr_expect_eq(failures, 2, "the value copy and the array growth");
    cr_expect_eq(r.n, 3);
    cr_expect(sorted(&r));
    cvg__reg_destroy(&snap);
    cvg__reg_destroy(&r);
}

Test(reg_fault, copy_is_failure_atomic)
{
    cvg__reg r = {0};
    full_reg(&r);
    cvg__reg dst = {0};
    set(&dst, mkdot(1, 1), 1, str("dst"), NULL, 0, NULL);
    cvg__reg snap = {0};
    cr_assert_eq(cvg__reg_copy(&snap, &dst), CVG_OK);
    int failures = 0;
    for (unsigned long n = 1;; n++) {
        cvg__alloc_fail_after(n);
        int rc = cvg__reg_copy(&dst, &r);
        cvg__alloc_fail_after(0);
        if (rc == CVG_OK) {
            break;
        }
        cr_assert_eq(rc, CVG_ENOMEM);
        cr_assert(reg_equal(&dst, &snap), "changed after failure %lu", n);
        failures++;
        cr_assert_lt(n, 100);
    }
    cr_expect_eq(failures, 5, "the array and four values");
    cr_expect(reg_equal(&dst, &r));
    cvg__reg_destroy(&snap);
    cvg__reg_destroy(&dst);
    cvg__reg_destroy(&r);
}
