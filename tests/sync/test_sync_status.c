/* The sync queue and status relative to a server: pending, committed and
 * failed ops, kept across restarts; retrying; the sync events; and what
 * the server's ACKs say of each page (taken, here already, refused). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "converge.h"

#include "sync/sync_int.h"
#include "sync/wire.h"
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
    o.refuse_clock_ahead = true; /* the refusals below: clocks ahead */
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

    /* The till's clock runs ten minutes ahead: the server refuses the
     * page with its new ops, naming the first op ahead (seq 8). It is
     * failed, with the reason, durably; the others of the page (6 and 7,
     * fine, and 9, which the server never looked at) were not kept, and
     * are pending. */
    till.now += 10 * 60 * 1000;
    sell(&till, 2);
    cr_expect_neq(cvg_sync_local(till.r, server.r, NULL), CVG_OK);
    open_side(&till);
    st = status(&till, &server);
    cr_expect_eq(st.state, CVG_SYNC_ERROR);
    cr_expect_eq(st.failed, 1, "failed %llu", (unsigned long long)st.failed);
    cr_expect_eq(st.pending, 3);
    cr_expect_eq(st.committed, 5);
    cvg_replica_id sid;
    cvg_replica_id_get(server.r, &sid);
    cvg_failed_op f[8];
    size_t nf = 0;
    cr_assert_eq(cvg_sync_failed(till.r, &sid, f, 8, &nf), CVG_OK);
    cr_expect_eq(nf, 1);
    cr_expect_eq(f[0].seq, 8);
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

    /* Refused with a clock far ahead: failed, with the code; the ops
     * before it in the refused page were not kept, and are pending. */
    till.now += 10 * 60 * 1000;
    sell(&till, 1);
    cr_expect_neq(cvg_sync_local(till.r, server.r, NULL), CVG_OK);
    size_t n = walk_queue(&till, &server, seqs, states, codes, 16);
    cr_assert_eq(n, 3);
    for (size_t i = 0; i < n; i++) {
        cr_expect_eq(states[i], i < 2 ? CVG_OP_PENDING : CVG_OP_FAILED,
                     "op %zu", i);
        cr_expect_eq(codes[i], i < 2 ? CVG_OK : CVG_ECLOCK, "op %zu", i);
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

/* ---- What the ACKs say ------------------------------------------------------
 * The server answers each page of the till's with an ACK of seq ranges:
 * taken, here already, or the op refused. */

/* The ACKs @p from sent, decoded, in order. */
typedef struct acks_seen {
    cvg__ack_range ranges[16];
    size_t n;      /* ranges, over all ACKs */
    size_t n_acks; /* ACK messages */
    int error;     /* the code of an ERROR it sent, or CVG_OK */
    bool ack_before_error;
} acks_seen;

static void
note_msg(acks_seen *seen, cvg_bytes m)
{
    cvg__msg_scratch sc = {0};
    cvg__msg msg;
    cr_assert_eq(cvg__msg_decode(m.data, m.len, &msg, &sc), CVG_OK);
    if (msg.type == CVG__MSG_ACK) {
        seen->n_acks++;
        seen->ack_before_error = seen->error == CVG_OK;
        for (size_t i = 0; i < msg.n_ranges && seen->n < 16; i++) {
            seen->ranges[seen->n++] = msg.ranges[i];
        }
    } else if (msg.type == CVG__MSG_ERROR) {
        seen->error = msg.code;
    }
    cvg__msg_scratch_destroy(&sc);
}

/* Carry messages both ways until both are quiet (errors are for the
 * caller to see in cvg_session_error()); what @p b sends is noted. */
static void
carry(cvg_session *a, cvg_session *b, acks_seen *seen)
{
    for (int round = 0; round < 1000; round++) {
        bool moved = false;
        cvg_bytes m;
        while (cvg_session_output(a, &m) == CVG_OK) {
            moved = true;
            (void)cvg_session_input(b, m.data, m.len);
        }
        while (cvg_session_output(b, &m) == CVG_OK) {
            moved = true;
            note_msg(seen, m);
            (void)cvg_session_input(a, m.data, m.len);
        }
        if (!moved) {
            return;
        }
    }
    cr_assert_fail("the sessions never went quiet");
}

/* Only the HELLOs, each way. */
static void
hellos(cvg_session *a, cvg_session *b)
{
    cvg_bytes ha, hb;
    cr_assert_eq(cvg_session_output(a, &ha), CVG_OK);
    cr_assert_eq(cvg_session_output(b, &hb), CVG_OK);
    cr_assert_eq(cvg_session_input(b, ha.data, ha.len), CVG_OK);
    cr_assert_eq(cvg_session_input(a, hb.data, hb.len), CVG_OK);
}

/* The till's ops 1..10 reach the server through another replica while a
 * session with the till is open, after the server's HELLO said it had none:
 * the till's page brings 1..15, and the server's ACK says which it had.
 * The same whether the till pushes or the server pulls. */
Test(sync_status, ops_the_server_had_are_acknowledged_as_duplicates)
{
    for (int push = 0; push < 2; push++) {
        side till, server, other;
        char name[32];
        snprintf(name, sizeof name, "dup%d", push);
        open_pair(&till, &server, name);
        snprintf(name, sizeof name, "dup%d-other", push);
        memset(&other, 0, sizeof other);
        other.now = till.now;
        snprintf(other.dir, sizeof other.dir, "%s", cvg_test_dir(name));
        open_side(&other);
        sell(&till, 10);
        cr_assert_eq(cvg_sync_local(till.r, other.r, NULL), CVG_OK);
        sell(&till, 5);

        cvg_session_options o;
        cvg_session_options_init(&o);
        o.push = push;
        cvg_session *st, *ss;
        cr_assert_eq(cvg_session_open(till.r, &o, &st), CVG_OK);
        cr_assert_eq(cvg_session_open(server.r, NULL, &ss), CVG_OK);
        hellos(st, ss);
        cr_assert_eq(cvg_sync_local(server.r, other.r, NULL), CVG_OK);
        acks_seen seen = {0};
        carry(st, ss, &seen);
        cr_assert(cvg_session_done(st) && cvg_session_done(ss), "push %d",
                  push);

        cvg_replica_id tid;
        cvg_replica_id_get(till.r, &tid);
        cr_assert_eq(seen.n, 2, "push %d: %zu ranges", push, seen.n);
        cr_expect(memcmp(&seen.ranges[0].origin, &tid, sizeof tid) == 0);
        cr_expect(seen.ranges[0].lo == 1 && seen.ranges[0].hi == 10 &&
                      seen.ranges[0].result == CVG__ACK_DUPLICATE,
                  "push %d: had 1..10", push);
        cr_expect(seen.ranges[1].lo == 11 && seen.ranges[1].hi == 15 &&
                      seen.ranges[1].result == CVG__ACK_TAKEN,
                  "push %d: took 11..15", push);
        cvg_session_acks ak;
        cvg_session_acks_get(st, &ak, sizeof ak);
        cr_expect(ak.taken == 5 && ak.duplicate == 10 && ak.refused == 0,
                  "push %d: %llu taken, %llu duplicates", push,
                  (unsigned long long)ak.taken,
                  (unsigned long long)ak.duplicate);
        cvg_session_stats ss_st;
        cvg_session_stats_get(ss, &ss_st, sizeof ss_st);
        cr_expect_eq(ss_st.ops_duplicate, 10);
        cr_expect_eq(ss_st.ops_received, 5);
        cvg_session_close(st);
        cvg_session_close(ss);

        /* Both kinds count as committed there. */
        cvg_sync_status s1 = status(&till, &server);
        cr_expect_eq(s1.committed, 15);
        cr_expect_eq(s1.pending + s1.failed + s1.syncing, 0);
        cr_expect_eq(s1.state, CVG_SYNC_SYNCED);
        cvg_replica_close(till.r);
        cvg_replica_close(server.r);
        cvg_replica_close(other.r);
    }
}

/* The till pushes pages of 3 ops; the first op of its third page is ten
 * minutes ahead of the server's clock. The server keeps the first two
 * pages, answers the third with an ACK naming that op and its code, then
 * an ERROR. On the till, the two pages' ops are committed, the op is
 * failed with its code, and the ops after it wait; once the server's
 * clock is right, a retry offers it again and everything goes. */
Test(sync_status, a_refused_op_is_failed_with_its_code_then_retried)
{
    side till, server;
    open_pair(&till, &server, "refused");
    sell(&till, 6);
    till.now += 10 * 60 * 1000;
    sell(&till, 3);
    cvg_session_options o;
    cvg_session_options_init(&o);
    o.push = true;
    o.page_ops = 3;
    cvg_session *st, *ss;
    cr_assert_eq(cvg_session_open(till.r, &o, &st), CVG_OK);
    cr_assert_eq(cvg_session_open(server.r, NULL, &ss), CVG_OK);
    acks_seen seen = {0};
    carry(st, ss, &seen);
    cr_expect_eq(cvg_session_error(ss), CVG_ECLOCK);
    cr_expect_eq(cvg_session_error(st), CVG_EPEER);
    cr_expect_eq(seen.error, CVG_ECLOCK);
    cr_expect(seen.ack_before_error && seen.n_acks == 3,
              "two ACKs of pages, one of the refusal before the ERROR");
    cvg_replica_id tid;
    cvg_replica_id_get(till.r, &tid);
    cr_assert_eq(seen.n, 3);
    cr_expect(seen.ranges[0].lo == 1 && seen.ranges[0].hi == 3 &&
              seen.ranges[0].result == CVG__ACK_TAKEN);
    cr_expect(seen.ranges[1].lo == 4 && seen.ranges[1].hi == 6 &&
              seen.ranges[1].result == CVG__ACK_TAKEN);
    cr_expect(seen.ranges[2].lo == 7 && seen.ranges[2].hi == 7 &&
              seen.ranges[2].result == CVG_ECLOCK);
    cr_expect(memcmp(&seen.ranges[2].origin, &tid, sizeof tid) == 0);
    cvg_session_acks ak;
    cvg_session_acks_get(st, &ak, sizeof ak);
    cr_expect(ak.taken == 6 && ak.duplicate == 0 && ak.refused == 1);
    cvg_session_close(st);
    cvg_session_close(ss);

    /* Durably: across a reopen. */
    open_side(&till);
    cvg_sync_status s1 = status(&till, &server);
    cr_expect_eq(s1.state, CVG_SYNC_ERROR);
    cr_expect_eq(s1.committed, 6);
    cr_expect_eq(s1.failed, 1);
    cr_expect_eq(s1.pending, 2);
    cr_expect_eq(s1.syncing, 0);
    cvg_replica_id sid;
    cvg_replica_id_get(server.r, &sid);
    cvg_failed_op f[4];
    size_t nf = 0;
    cr_assert_eq(cvg_sync_failed(till.r, &sid, f, 4, &nf), CVG_OK);
    cr_assert_eq(nf, 1);
    cr_expect(f[0].seq == 7 && f[0].code == CVG_ECLOCK);
    uint64_t seqs[16];
    int states[16], codes[16];
    size_t n = walk_queue(&till, &server, seqs, states, codes, 16);
    cr_assert_eq(n, 3);
    cr_expect(seqs[0] == 7 && states[0] == CVG_OP_FAILED &&
              codes[0] == CVG_ECLOCK);
    cr_expect(states[1] == CVG_OP_PENDING && states[2] == CVG_OP_PENDING);
    /* The server kept the two pages it took. */
    cvg_key k = {"stock", "sku-1", "qty"};
    cvg_txn *t;
    int64_t qty = 0;
    cr_assert_eq(cvg_txn_begin(server.r, CVG_TXN_READ_ONLY, &t), CVG_OK);
    cr_assert_eq(cvg_counter_get(t, &k, &qty), CVG_OK);
    cvg_txn_abort(t);
    cr_expect_eq(qty, -6);

    /* The server's clock is right again; the retry offers it anew. */
    server.now = till.now;
    cr_assert_eq(cvg_sync_retry_failed(till.r, &sid), CVG_OK);
    s1 = status(&till, &server);
    cr_expect(s1.failed == 0 && s1.pending == 3);
    cr_assert_eq(cvg_session_open(till.r, &o, &st), CVG_OK);
    cr_assert_eq(cvg_session_open(server.r, NULL, &ss), CVG_OK);
    memset(&seen, 0, sizeof seen);
    carry(st, ss, &seen);
    cr_assert(cvg_session_done(st) && cvg_session_done(ss));
    cr_expect(seen.n == 1 && seen.ranges[0].lo == 7 && seen.ranges[0].hi == 9 &&
                  seen.ranges[0].result == CVG__ACK_TAKEN,
              "%zu ranges", seen.n);
    cvg_session_close(st);
    cvg_session_close(ss);
    s1 = status(&till, &server);
    cr_expect_eq(s1.state, CVG_SYNC_SYNCED);
    cr_expect_eq(s1.committed, 9);
    cr_expect_eq(s1.pending + s1.failed + s1.syncing, 0);
    cr_expect_eq(walk_queue(&till, &server, seqs, states, codes, 16), 0);
    cvg_replica_close(till.r);
    cvg_replica_close(server.r);
}
