/*
 * Records of many fields. A record of 100,000 counter fields (past the
 * 65,536 a delete could once carry) is deleted on its writer and the
 * delete synced to another replica, each in time of the order of writing
 * the fields (a delete looked up each field's parts with a scan of the op:
 * 40,000 fields took 4.4 s on the writer and as much on every receiver).
 * The delete keeps its meaning there: an add the deleter had not seen
 * survives it. And the index a delete looks its parts up in, straight:
 * unsorted fields (the writer sends them sorted, a hostile peer need not)
 * and a repeated field, where the first wins as a scan of the op found it.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "replica/types.h"
#include "testutil.h"

#define OK(call) cr_assert_eq((call), CVG_OK, "%s", #call)

#define FIELDS 100000

static double
cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static cvg_replica *
open_dir(const char *name)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = CVG_RELAXED;
    cvg_replica *r = NULL;
    OK(cvg_replica_open(cvg_test_dir(name), &o, &r));
    return r;
}

static void
field_name(unsigned i, char *out, size_t n)
{
    snprintf(out, n, "f%06u", i);
}

/* The counter's value, or INT64_MIN when the field has none. */
static int64_t
counter(cvg_replica *r, unsigned i)
{
    char f[16];
    field_name(i, f, sizeof f);
    cvg_key k = {"c", "big", f};
    cvg_txn *t;
    OK(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t));
    int64_t v = 0;
    int rc = cvg_counter_get(t, &k, &v);
    cvg_txn_abort(t);
    cr_assert(rc == CVG_OK || rc == CVG_ENOTFOUND, "%s", cvg_errname(rc));
    return rc == CVG_OK ? v : INT64_MIN;
}

Test(fields, a_record_of_100k_counter_fields_is_deleted_and_synced,
     .timeout = 120)
{
    cvg_replica *w = open_dir("fields-w");
    cvg_replica *r = open_dir("fields-r");
    double t0 = cpu_seconds();
    cvg_txn *t;
    OK(cvg_txn_begin(w, 0, &t));
    for (unsigned i = 0; i < FIELDS; i++) {
        char f[16];
        field_name(i, f, sizeof f);
        cvg_key k = {"c", "big", f};
        OK(cvg_counter_add(t, &k, 1 + (int64_t)(i % 7), NULL));
    }
    OK(cvg_txn_commit(t));
    double t1 = cpu_seconds();
    cvg_session_stats st;
    OK(cvg_sync_local(w, r, &st));
    double t2 = cpu_seconds();
    cr_assert_eq(counter(r, FIELDS - 1), 1 + (FIELDS - 1) % 7);

    /* The receiver adds to one field before it sees the delete: that add
     * survives. */
    OK(cvg_txn_begin(r, 0, &t));
    cvg_key k7 = {"c", "big", "f000007"};
    OK(cvg_counter_add(t, &k7, 100, NULL));
    OK(cvg_txn_commit(t));

    double t3 = cpu_seconds();
    OK(cvg_txn_begin(w, 0, &t));
    cvg_key rec = {"c", "big", "x"};
    OK(cvg_record_delete(t, &rec, NULL));
    OK(cvg_txn_commit(t));
    double t4 = cpu_seconds();
    OK(cvg_sync_local(w, r, &st));
    double t5 = cpu_seconds();
    cr_assert_eq(st.ops_received + st.ops_sent, 2);

    double write = t1 - t0, first_sync = t2 - t1;
    double del = t4 - t3, del_sync = t5 - t4;
    cr_log_info("write %.2f s, sync %.2f s; delete %.2f s, its sync %.2f s",
                write, first_sync, del, del_sync);
    cr_expect(del <= 2 * write + 0.5, "delete %.2f s, writing %.2f s", del,
              write);
    cr_expect(del_sync <= 2 * first_sync + 0.5,
              "delete's sync %.2f s, the fields' %.2f s", del_sync, first_sync);

    for (unsigned i = 0; i < FIELDS; i += 9973) {
        cr_expect_eq(counter(w, i), i == 7 ? 100 : INT64_MIN, "field %u", i);
        cr_expect_eq(counter(r, i), i == 7 ? 100 : INT64_MIN, "field %u", i);
    }
    cr_expect_eq(counter(w, FIELDS - 1), INT64_MIN);
    cr_expect_eq(counter(r, FIELDS - 1), INT64_MIN);
    cvg_replica_close(w);
    cvg_replica_close(r);
}

static cvg__delete_counter
dc(const char *field, size_t n)
{
    cvg__delete_counter c;
    memset(&c, 0, sizeof c);
    c.field = (cvg_bytes){(const uint8_t *)field, strlen(field)};
    c.n = n; /* a tag to tell repeated fields apart */
    return c;
}

static void
expect_find(const cvg__counter_index *ix, const char *field, size_t tag)
{
    const cvg__delete_counter *c = cvg__counter_index_find(
        ix, (cvg_bytes){(const uint8_t *)field, strlen(field)});
    if (tag == 0) {
        cr_expect_null(c, "%s found", field);
        return;
    }
    cr_assert_not_null(c, "%s not found", field);
    cr_expect_eq(c->n, tag, "%s: the counter tagged %zu, not %zu", field, c->n,
                 tag);
}

static void
expect_all(const cvg__delete_counter *cs, size_t n)
{
    cvg__op op;
    memset(&op, 0, sizeof op);
    op.counters = cs;
    op.n_counters = n;
    cvg__counter_index ix;
    OK(cvg__counter_index_build(&ix, &op));
    expect_find(&ix, "b", 1);
    expect_find(&ix, "ab", 2);
    expect_find(&ix, "a", 3);
    expect_find(&ix, "abc", 5);
    expect_find(&ix, "", 0);
    expect_find(&ix, "aa", 0);
    expect_find(&ix, "c", 0);
    expect_find(&ix, "abcd", 0);
    cvg__counter_index_free(&ix);
}

Test(fields, a_delete_finds_each_fields_parts_in_any_order)
{
    /* Sorted (the writer's order), repeats included: the first wins. */
    const cvg__delete_counter sorted[] = {dc("a", 3),   dc("ab", 2),
                                          dc("abc", 5), dc("abc", 6),
                                          dc("b", 1),   dc("b", 4)};
    expect_all(sorted, 6);
    /* Unsorted, the repeats in another order. */
    const cvg__delete_counter mixed[] = {dc("b", 1),  dc("abc", 5),
                                         dc("ab", 2), dc("b", 4),
                                         dc("a", 3),  dc("abc", 6)};
    expect_all(mixed, 6);
    /* Empty. */
    cvg__op op;
    memset(&op, 0, sizeof op);
    cvg__counter_index ix;
    OK(cvg__counter_index_build(&ix, &op));
    expect_find(&ix, "a", 0);
    cvg__counter_index_free(&ix);
}
