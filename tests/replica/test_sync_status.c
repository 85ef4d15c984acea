/* The sync queue and status relative to a server: pending, committed and
 * failed ops, kept across restarts; retrying; the sync events. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "converge.h"
#include "testutil.h"

typedef struct side {
    cvg_replica *r;
    uint64_t now;
    char dir[512];
    int starts, ends, errors;
} side;

static uint64_t
clock_of(void *ctx)
{
    return ((side *)ctx)->now;
}

static void
on_sync(void *ctx, const cvg_sync_event *e)
{
    side *s = ctx;
    s->starts += e->kind == CVG_SYNC_EVENT_START;
    s->ends += e->kind == CVG_SYNC_EVENT_END;
    s->errors += e->kind == CVG_SYNC_EVENT_ERROR;
}

static void
open_side(side *s)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = CVG_RELAXED;
    o.clock = clock_of;
    o.clock_ctx = s;
    o.on_sync = on_sync;
    o.sync_ctx = s;
    cvg_replica_close(s->r);
    s->r = NULL;
    cr_assert_eq(cvg_replica_open(s->dir, &o, &s->r), CVG_OK);
}

static void
sell(side *s, int n)
{
    cvg_key k = {"stock", "sku-1", "qty"};
    cvg_txn *t;
    cr_assert_eq(cvg_txn_begin(s->r, 0, &t), CVG_OK);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(cvg_counter_add(t, &k, -1, NULL), CVG_OK);
    }
    cr_assert_eq(cvg_txn_commit(t), CVG_OK);
}

static cvg_sync_status
status(side *till, side *server)
{
    cvg_replica_id sid;
    cvg_replica_id_get(server->r, &sid);
    cvg_sync_status st;
    cr_assert_eq(cvg_sync_status_get(till->r, &sid, &st), CVG_OK);
    return st;
}

Test(sync_status, pending_committed_failed_and_retry)
{
    side till = {.now = 1700000000000ull}, server = {.now = 1700000000000ull};
    snprintf(till.dir, sizeof till.dir, "%s", cvg_test_dir("st-till"));
    snprintf(server.dir, sizeof server.dir, "%s", cvg_test_dir("st-srv"));
    open_side(&till);
    open_side(&server);

    sell(&till, 5);
    cvg_sync_status st = status(&till, &server);
    cr_expect_eq(st.state, CVG_SYNC_OFFLINE);
    cr_expect_eq(st.pending, 5);
    cr_expect_eq(st.committed, 0);
    cr_expect_eq(st.last_sync_ms, 0);

    cr_assert_eq(cvg_sync_local(till.r, server.r, NULL), CVG_OK);
    st = status(&till, &server);
    cr_expect_eq(st.state, CVG_SYNC_SYNCED);
    cr_expect_eq(st.pending, 0);
    cr_expect_eq(st.committed, 5);
    cr_expect_eq(st.last_sync_ms, till.now);
    cr_expect_eq(till.starts, 1);
    cr_expect_eq(till.ends, 1);

    /* Offline sales are pending, and stay so across a restart. */
    sell(&till, 2);
    open_side(&till);
    st = status(&till, &server);
    cr_expect_eq(st.state, CVG_SYNC_OFFLINE);
    cr_expect_eq(st.pending, 2);
    cr_expect_eq(st.committed, 5);

    /* The till's clock runs ten minutes ahead: the server refuses its new
     * ops, which become failed, with the reason, durably. */
    till.now += 10 * 60 * 1000;
    sell(&till, 2);
    cr_expect_neq(cvg_sync_local(till.r, server.r, NULL), CVG_OK);
    open_side(&till);
    st = status(&till, &server);
    cr_expect_eq(st.state, CVG_SYNC_ERROR);
    cr_expect_eq(st.failed, 4, "failed %llu", (unsigned long long)st.failed);
    cr_expect_eq(st.pending, 0);
    cr_expect_eq(st.committed, 5);
    cvg_replica_id sid;
    cvg_replica_id_get(server.r, &sid);
    cvg_failed_op f[8];
    size_t nf = 0;
    cr_assert_eq(cvg_sync_failed(till.r, &sid, f, 8, &nf), CVG_OK);
    cr_expect_eq(nf, 4);
    cr_expect_eq(f[0].seq, 6);
    cr_expect_eq(f[0].code, CVG_ECLOCK);

    /* Time catches up at the server; a retry syncs everything. */
    server.now = till.now;
    cr_assert_eq(cvg_sync_retry_failed(till.r, &sid), CVG_OK);
    st = status(&till, &server);
    cr_expect_eq(st.failed, 0);
    cr_expect_eq(st.pending, 4);
    cr_assert_eq(cvg_sync_local(till.r, server.r, NULL), CVG_OK);
    st = status(&till, &server);
    cr_expect_eq(st.state, CVG_SYNC_SYNCED);
    cr_expect_eq(st.committed, 9);
    cr_expect_eq(st.pending + st.failed + st.syncing, 0);

    size_t np = 0;
    cvg_replica_id peers[4];
    cr_assert_eq(cvg_sync_peers(till.r, peers, 4, &np), CVG_OK);
    cr_expect_eq(np, 1);
    cr_expect(memcmp(&peers[0], &sid, sizeof sid) == 0);
    cvg_replica_close(till.r);
    cvg_replica_close(server.r);
}
