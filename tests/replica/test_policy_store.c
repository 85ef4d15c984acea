/*
 * The conflict strategies a replica stores: a process that opens it
 * without strategies (the command line) reads the winners the app's
 * strategies pick; one that opens it with other strategies is refused with
 * CVG_EPOLICY, unless it replaces them on purpose.
 */
#include <criterion/criterion.h>
#include <lmdb.h>
#include <stdio.h>
#include <string.h>

#include "converge.h"

#include "raw_record.h"
#include "testutil.h"

/* Each replica's wall clock: the till's runs a second ahead, so "later"
 * is certain, not a matter of which write got the later millisecond. */
static uint64_t
clock_of(void *ctx)
{
    return *(const uint64_t *)ctx;
}

static uint64_t server_ms = 1700000000000ull, till_ms = 1700000001000ull;
static uint64_t *next_clock = &server_ms;

static cvg_replica *
open_with(const char *dir, const cvg_collection_policy *pol, size_t n,
          bool replace, int expect)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.clock = clock_of;
    o.clock_ctx = next_clock;
    o.durability = CVG_RELAXED;
    o.policies = pol;
    o.n_policies = n;
    o.replace_policies = replace;
    cvg_replica *r = NULL;
    cr_assert_eq(cvg_replica_open(dir, &o, &r), expect, "open of %s", dir);
    return r;
}

static void
set_int(cvg_replica *r, const char *coll, int64_t v)
{
    cvg_key k = {coll, "k", "f"};
    cvg_value val = cvg_value_int(v);
    cvg_txn *t;
    cr_assert_eq(cvg_txn_begin(r, 0, &t), CVG_OK);
    cr_assert_eq(cvg_register_set(t, &k, &val, NULL), CVG_OK);
    cr_assert_eq(cvg_txn_commit(t), CVG_OK);
}

static int64_t
get_int(cvg_replica *r, const char *coll)
{
    cvg_key k = {coll, "k", "f"};
    cvg_value v;
    cvg_txn *t;
    cr_assert_eq(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t), CVG_OK);
    cr_assert_eq(cvg_register_get(t, &k, &v), CVG_OK);
    int64_t x = v.as.integer;
    cvg_txn_abort(t);
    return x;
}

/* A server whose writes win in "orders", and a till: both write the same
 * register concurrently (the till later), then sync. */
static void
make_conflict(const char *name, cvg_replica **srv_out, char *srv_dir,
              size_t len)
{
    char a[64], b[64];
    snprintf(a, sizeof a, "%s-srv", name);
    snprintf(b, sizeof b, "%s-till", name);
    snprintf(srv_dir, len, "%s", cvg_test_dir(a));
    char till_dir[512];
    snprintf(till_dir, sizeof till_dir, "%s", cvg_test_dir(b));
    cvg_replica *srv = open_with(srv_dir, NULL, 0, false, CVG_OK);
    cvg_replica_id sid;
    cvg_replica_id_get(srv, &sid);
    cvg_replica_close(srv);
    cvg_collection_policy pol = {.collection = "orders",
                                 .strategy = CVG_STRATEGY_PRIORITY,
                                 .priority_origin = sid,
                                 .priority_wins = true};
    srv = open_with(srv_dir, &pol, 1, false, CVG_OK);
    next_clock = &till_ms;
    cvg_replica *till = open_with(till_dir, &pol, 1, false, CVG_OK);
    next_clock = &server_ms;
    set_int(srv, "orders", 1);  /* "shipped", from the server */
    set_int(till, "orders", 2); /* "pending", later, from the till */
    cr_assert_eq(cvg_sync_local(srv, till, NULL), CVG_OK);
    cr_expect_eq(get_int(srv, "orders"), 1, "the server's write wins");
    cr_expect_eq(get_int(till, "orders"), 1);
    cvg_replica_close(till);
    *srv_out = srv;
}

Test(policy_store, an_open_without_strategies_reads_the_same_winner)
{
    char dir[512];
    cvg_replica *srv;
    make_conflict("adopt", &srv, dir, sizeof dir);
    cvg_replica_close(srv);
    /* As the command line opens it: no strategies given. LWW would pick
     * the till's later write. */
    cvg_replica *r = open_with(dir, NULL, 0, false, CVG_OK);
    cr_expect_eq(get_int(r, "orders"), 1);
    cvg_replica_close(r);
}

Test(policy_store, other_strategies_are_refused_then_replaced_on_purpose)
{
    char dir[512];
    cvg_replica *srv;
    make_conflict("refuse", &srv, dir, sizeof dir);
    cvg_replica_close(srv);
    cvg_collection_policy lww = {.collection = "orders",
                                 .strategy = CVG_STRATEGY_LWW};
    open_with(dir, &lww, 1, false, CVG_EPOLICY);
    /* Another collection added is a difference too. */
    cvg_replica *r = open_with(dir, &lww, 1, true, CVG_OK);
    cr_expect_eq(get_int(r, "orders"), 2, "LWW now: the later write");
    cvg_replica_close(r);
    r = open_with(dir, NULL, 0, false, CVG_OK);
    cr_expect_eq(get_int(r, "orders"), 2, "the replaced ones are stored");
    cvg_replica_close(r);
    r = open_with(dir, &lww, 1, false, CVG_OK);
    cvg_replica_close(r);
}

Test(policy_store, the_order_of_the_list_does_not_matter)
{
    const char *dir = cvg_test_dir("order");
    cvg_collection_policy two[2] = {
        {.collection = "a", .strategy = CVG_STRATEGY_LWW},
        {.collection = "b", .strategy = CVG_STRATEGY_RESOLVER},
    };
    cvg_replica *r = open_with(dir, two, 2, false, CVG_OK);
    cvg_replica_close(r);
    cvg_collection_policy swapped[2] = {two[1], two[0]};
    r = open_with(dir, swapped, 2, false, CVG_OK);
    cvg_replica_close(r);
    open_with(dir, two, 1, false, CVG_EPOLICY); /* "b" is missing */
    cvg_collection_policy twice[2] = {two[0], two[0]};
    open_with(dir, twice, 2, true, CVG_EINVAL);
}

/* The stored record is disk, so hostile: a damaged one is CVG_ECORRUPT
 * for an open that adopts it, and nothing crashes. */
Test(policy_store, a_damaged_record_is_corrupt)
{
    const char *d = cvg_test_dir("damaged");
    char dir[512];
    snprintf(dir, sizeof dir, "%s", d);
    cvg_collection_policy one = {.collection = "a",
                                 .strategy = CVG_STRATEGY_LWW};
    cvg_replica_close(open_with(dir, &one, 1, false, CVG_OK));
    static const uint8_t bad[][8] = {
        {1, 0, 0, 0, 1, 0, 9},       /* a name longer than the record */
        {1, 0, 0, 0, 9},             /* a count with nothing after it */
        {1, 0xff, 0xff, 0xff, 0xff}, /* a count past the limit */
        {1},                         /* truncated header */
    };
    static const size_t lens[] = {7, 5, 5, 1};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        cvg_test_raw_put(dir, "meta", "policies", 8, bad[i], lens[i], true);
        open_with(dir, NULL, 0, false, CVG_ECORRUPT);
    }
    /* A newer record format is a clear version error. */
    uint8_t newer[5] = {2, 0, 0, 0, 0};
    cvg_test_raw_put(dir, "meta", "policies", 8, newer, 5, true);
    open_with(dir, NULL, 0, false, CVG_EVERSION);
}
