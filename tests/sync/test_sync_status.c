/* The sync queue and status relative to a server: pending, committed and
 * failed ops, kept across restarts; retrying; the sync events. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "converge.h"

#include "sync/sync_int.h"
#include "testutil.h"

/* Peer changes that wait in memory for the replica's next commit. */
static size_t
n_deferred(const cvg_replica *r)
{
    const cvg__sync_state *st = cvg__sync_state_find(r);
    return st != NULL ? st->n_deferred : 0;
}

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

/* A till and a server in directories named after @p name, both opened at
 * the same fixed time. */
static void
open_pair(side *till, side *server, const char *name)
{
    side *sides[2] = {till, server};
    const char *leaf[2] = {"till", "srv"};
    for (int i = 0; i < 2; i++) {
        char dir[64];
        memset(sides[i], 0, sizeof *sides[i]);
        sides[i]->now = 1700000000000ull;
        snprintf(dir, sizeof dir, "%s-%s", name, leaf[i]);
        snprintf(sides[i]->dir, sizeof sides[i]->dir, "%s", cvg_test_dir(dir));
        open_side(sides[i]);
    }
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
    cr_assert_eq(cvg_sync_status_get(till->r, &sid, &st, sizeof st), CVG_OK);
    return st;
}

Test(sync_status, pending_committed_failed_and_retry)
{
    side till, server;
    open_pair(&till, &server, "st");

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

/* Walk the queue for @p server: the seqs into @p seqs, the states into
 * @p states, the codes into @p codes; the count. Checks that each op is
 * the till's own, in seq order. */
static size_t
walk_queue(side *till, side *server, uint64_t *seqs, int *states, int *codes,
           size_t cap)
{
    cvg_replica_id sid, tid;
    cvg_replica_id_get(server->r, &sid);
    cvg_replica_id_get(till->r, &tid);
    cvg_txn *t;
    cr_assert_eq(cvg_txn_begin(till->r, CVG_TXN_READ_ONLY, &t), CVG_OK);
    cvg_queue_cursor *c;
    cr_assert_eq(cvg_sync_queue_open(t, &sid, &c), CVG_OK);
    size_t n = 0;
    cvg_queued_op q;
    int rc;
    while ((rc = cvg_sync_queue_next(c, &q)) == CVG_OK) {
        cr_assert_lt(n, cap);
        cr_expect(memcmp(&q.op.dot.origin, &tid, sizeof tid) == 0);
        cr_expect(n == 0 || q.op.dot.seq == seqs[n - 1] + 1);
        cr_expect_eq(q.op.kind, CVG_OP_COUNTER_ADD);
        cr_expect_eq(q.op.delta, -1);
        seqs[n] = q.op.dot.seq;
        states[n] = (int)q.state;
        codes[n] = q.code;
        n++;
    }
    cr_expect_eq(rc, CVG_DONE);
    cvg_sync_queue_close(c);
    cvg_txn_abort(t);
    return n;
}

Test(sync_status, the_queue_op_by_op)
{
    side till, server;
    open_pair(&till, &server, "q");
    uint64_t seqs[16];
    int states[16], codes[16];

    /* Never synced: every op is pending. */
    sell(&till, 3);
    cr_assert_eq(walk_queue(&till, &server, seqs, states, codes, 16), 3);
    cr_expect_eq(seqs[0], 1);
    cr_expect_eq(states[2], CVG_OP_PENDING);

    /* Synced: nothing queued, though the server's own ops are in the log. */
    sell(&server, 4);
    cr_assert_eq(cvg_sync_local(till.r, server.r, NULL), CVG_OK);
    cr_expect_eq(walk_queue(&till, &server, seqs, states, codes, 16), 0);

    /* New sales after the server's ops: only they are queued. */
    sell(&till, 2);
    cr_assert_eq(walk_queue(&till, &server, seqs, states, codes, 16), 2);
    cr_expect_eq(seqs[0], 4);
    cr_expect_eq(seqs[1], 5);

    /* Refused with a clock far ahead: failed, with the code. */
    till.now += 10 * 60 * 1000;
    sell(&till, 1);
    cr_expect_neq(cvg_sync_local(till.r, server.r, NULL), CVG_OK);
    size_t n = walk_queue(&till, &server, seqs, states, codes, 16);
    cr_assert_eq(n, 3);
    for (size_t i = 0; i < n; i++) {
        cr_expect_eq(states[i], CVG_OP_FAILED, "op %zu", i);
        cr_expect_eq(codes[i], CVG_ECLOCK, "op %zu", i);
    }

    /* The walk agrees with the counts. */
    cvg_sync_status st = status(&till, &server);
    cr_expect_eq(st.failed + st.pending + st.syncing, n);

    /* A write in the transaction ends the walk. */
    cvg_replica_id sid;
    cvg_replica_id_get(server.r, &sid);
    cvg_txn *t;
    cr_assert_eq(cvg_txn_begin(till.r, 0, &t), CVG_OK);
    cvg_queue_cursor *c;
    cr_assert_eq(cvg_sync_queue_open(t, &sid, &c), CVG_OK);
    cvg_key k = {"stock", "sku-2", "qty"};
    cr_assert_eq(cvg_counter_add(t, &k, 1, NULL), CVG_OK);
    cvg_queued_op q;
    cr_expect_eq(cvg_sync_queue_next(c, &q), CVG_EMISUSE);
    cvg_sync_queue_close(c);
    cvg_txn_abort(t);
    cr_expect_eq(cvg_sync_queue_open(NULL, &sid, &c), CVG_EINVAL);
    cr_expect_null(c);

    cvg_replica_close(till.r);
    cvg_replica_close(server.r);
}

/* What a session learns of its peer waits in memory for the next commit
 * (or close): reads see it at once; a crash before then loses only that,
 * and the next session learns it again. */
Test(sync_status, status_waits_for_the_next_commit)
{
    side till, server;
    open_pair(&till, &server, "w");
    sell(&till, 3);
    /* The child opens its own handles (LMDB's are not to be used across
     * fork()), syncs, reads the status, and dies without closing. */
    cvg_replica_close(till.r);
    cvg_replica_close(server.r);
    till.r = server.r = NULL;
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        open_side(&till);
        open_side(&server);
        int ok = cvg_sync_local(till.r, server.r, NULL) == CVG_OK;
        cvg_replica_id sid;
        cvg_replica_id_get(server.r, &sid);
        cvg_sync_status st;
        ok = ok &&
             cvg_sync_status_get(till.r, &sid, &st, sizeof st) == CVG_OK &&
             st.committed == 3 && st.state == CVG_SYNC_SYNCED &&
             n_deferred(till.r) == 1;
        _exit(ok ? 0 : 1);
    }
    int wst;
    cr_assert_eq(waitpid(pid, &wst, 0), pid);
    cr_assert(WIFEXITED(wst) && WEXITSTATUS(wst) == 0,
              "the child did not see the status at once");

    /* The server's page commit was durable: it has the ops. The till's
     * status was never stored. */
    open_side(&till);
    open_side(&server);
    cvg_key k = {"stock", "sku-1", "qty"};
    cvg_txn *t;
    int64_t qty = 0;
    cr_assert_eq(cvg_txn_begin(server.r, CVG_TXN_READ_ONLY, &t), CVG_OK);
    cr_assert_eq(cvg_counter_get(t, &k, &qty), CVG_OK);
    cvg_txn_abort(t);
    cr_expect_eq(qty, -3);
    cvg_sync_status st = status(&till, &server);
    cr_expect_eq(st.committed, 0);
    cr_expect_eq(st.pending, 3);

    /* The next session learns it again, moving no ops; it waits in
     * memory, and the next write commits it along. */
    cvg_session_stats ss;
    cr_assert_eq(cvg_sync_local(till.r, server.r, &ss), CVG_OK);
    cr_expect_eq(ss.ops_received + ss.ops_sent, 0);
    st = status(&till, &server);
    cr_expect_eq(st.committed, 3);
    cr_expect_eq(st.state, CVG_SYNC_SYNCED);
    cr_expect_eq(n_deferred(till.r), 1);
    sell(&till, 1);
    cr_expect_eq(n_deferred(till.r), 0, "not stored with the write");
    cvg_replica_close(till.r);
    cvg_replica_close(server.r);
}

/* Forgetting a peer drops what this replica believed about it (status,
 * positions, refused ops, what waited for a commit); the next sync starts
 * over from the peer's first op and ends as before, skipping what is here
 * already. */
Test(sync_status, forgetting_a_peer_starts_over)
{
    side till, server;
    open_pair(&till, &server, "forget");
    sell(&till, 5);
    sell(&server, 3);
    cr_assert_eq(cvg_sync_local(till.r, server.r, NULL), CVG_OK);
    cvg_sync_status st = status(&till, &server);
    cr_expect_eq(st.state, CVG_SYNC_SYNCED);
    cr_expect_eq(st.committed, 5);
    cvg_replica_id sid;
    cvg_replica_id_get(server.r, &sid);
    cr_assert_eq(cvg_sync_peer_forget(till.r, &sid), CVG_OK);
    st = status(&till, &server);
    cr_expect_eq(st.state, CVG_SYNC_OFFLINE);
    cr_expect_eq(st.committed, 0);
    cr_expect_eq(st.pending, 5);
    size_t n = 9;
    cr_assert_eq(cvg_sync_peers(till.r, NULL, 0, &n), CVG_OK);
    cr_expect_eq(n, 0, "the peer is no longer listed");
    /* Across a reopen too: it was stored. */
    open_side(&till);
    cr_expect_eq(status(&till, &server).committed, 0);
    cvg_session_stats ss;
    cr_assert_eq(cvg_sync_local(till.r, server.r, &ss), CVG_OK);
    cr_expect_eq(ss.ops_received, 0, "nothing new");
    cr_expect_eq(ss.ops_duplicate, 0,
                 "the server leaves out what our HELLO says we have");
    st = status(&till, &server);
    cr_expect_eq(st.state, CVG_SYNC_SYNCED);
    cr_expect_eq(st.committed, 5);
    /* Not while a session with the peer is open. */
    cvg_session *s;
    cr_assert_eq(cvg_session_open(till.r, NULL, &s), CVG_OK);
    cvg_bytes out;
    cr_assert_eq(cvg_session_output(s, &out), CVG_OK);
    cvg_session *t;
    cr_assert_eq(cvg_session_open(server.r, NULL, &t), CVG_OK);
    cvg_bytes hello;
    cr_assert_eq(cvg_session_output(t, &hello), CVG_OK);
    cr_assert_eq(cvg_session_input(s, hello.data, hello.len), CVG_OK);
    /* The server answers our HELLO with its proof: then it is in session. */
    cr_assert_eq(cvg_session_input(t, out.data, out.len), CVG_OK);
    cvg_bytes proof;
    cr_assert_eq(cvg_session_output(t, &proof), CVG_OK);
    cr_assert_eq(cvg_session_input(s, proof.data, proof.len), CVG_OK);
    cr_expect_eq(cvg_sync_peer_forget(till.r, &sid), CVG_EBUSY);
    cvg_session_close(s);
    cvg_session_close(t);
    cr_expect_eq(cvg_sync_peer_forget(till.r, &sid), CVG_OK);
    cr_expect_eq(cvg_sync_peer_forget(NULL, &sid), CVG_EINVAL);
    cvg_replica_close(till.r);
    cvg_replica_close(server.r);
}
