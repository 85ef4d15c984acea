/*
 * Push: a client sends its own ops unasked (PUSH) and pulls the rest; the
 * server keeps no position in the client's log. Checked against plain
 * pulls: the same state on both sides, the status of the client's ops, the
 * messages that moved, and convergence over a faulty link.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "converge.h"
#include "converge/testing.h"

#include "checks.h"
#include "digest.h"
#include "sync/push_hold.h"
#include "sync/wire.h"
#include "testutil.h"

#define OK(call) cr_assert_eq((call), CVG_OK, "%s", #call)

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

/* @p n writes of every kind by @p r, on keys shared by all replicas. */
static void
write_some(cvg_replica *r, int n, uint64_t *rng)
{
    cvg_txn *t;
    OK(cvg_txn_begin(r, 0, &t));
    for (int i = 0; i < n; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%llu",
                 (unsigned long long)cvg_test_below(rng, 20));
        cvg_key qty = {"stock", key, "qty"};
        cvg_key name = {"stock", key, "name"};
        cvg_key tags = {"stock", key, "tags"};
        cvg_value v = cvg_value_int((int64_t)cvg_test_below(rng, 1000));
        switch (cvg_test_below(rng, 3)) {
        case 0:
            OK(cvg_counter_add(t, &qty, 1 + (int64_t)cvg_test_below(rng, 5),
                               NULL));
            break;
        case 1:
            OK(cvg_register_set(t, &name, &v, NULL));
            break;
        default:
            OK(cvg_set_add(t, &tags, &v, NULL));
            break;
        }
    }
    OK(cvg_txn_commit(t));
}

typedef struct counts {
    unsigned hello, pull, ops, push, ack, error;
} counts;

/* Carry messages both ways until both sides are quiet; count their types
 * (the second byte of a message, after the version). */
static void
pump(cvg_session *a, cvg_session *b, counts *ca, counts *cb)
{
    for (;;) {
        bool moved = false;
        cvg_session *from[2] = {a, b}, *to[2] = {b, a};
        counts *c[2] = {ca, cb};
        for (int side = 0; side < 2; side++) {
            cvg_bytes m;
            int rc;
            while ((rc = cvg_session_output(from[side], &m)) == CVG_OK) {
                moved = true;
                cr_assert_gt(m.len, 1);
                switch (m.data[1]) {
                case 1:
                    c[side]->hello++;
                    break;
                case 2:
                    c[side]->pull++;
                    break;
                case 3:
                    c[side]->ops++;
                    break;
                case 4:
                    c[side]->push++;
                    break;
                case 5:
                    c[side]->ack++;
                    break;
                default:
                    c[side]->error++;
                    break;
                }
                int in = cvg_session_input(to[side], m.data, m.len);
                cr_assert_eq(in, CVG_OK, "input: %s", cvg_errname(in));
            }
            cr_assert_eq(rc, CVG_DONE);
        }
        if (!moved) {
            return;
        }
    }
}

static void
expect_same_state(cvg_replica *a, cvg_replica *b)
{
    char *da = cvg_test_state(a), *db = cvg_test_state(b);
    cr_expect_str_eq(da, db);
    free(da);
    free(db);
}

Test(push, a_client_pushes_its_ops_and_pulls_the_rest)
{
    uint64_t rng = cvg_test_seed(11);
    cvg_replica *client = open_dir("push-client");
    cvg_replica *server = open_dir("push-server");
    cvg_replica *other = open_dir("push-other");
    write_some(server, 30, &rng);
    write_some(other, 20, &rng);
    OK(cvg_sync_local(other, server, NULL));
    write_some(client, 50, &rng);

    cvg_session_options po;
    cvg_session_options_init(&po);
    po.push = true;
    po.page_ops = 7; /* several PUSH pages */
    cvg_session *sc, *ss;
    OK(cvg_session_open(client, &po, &sc));
    OK(cvg_session_open(server, NULL, &ss));
    counts cc = {0}, cs = {0};
    pump(sc, ss, &cc, &cs);
    cr_assert(cvg_session_done(sc) && cvg_session_done(ss));
    /* The client pushed 50 ops in ceil(50 / 7) pages and pulled the
     * server's 30 in pages of 7 too, but the 20 the server relays from
     * "other" came with one signature, at their last seq: they travel in
     * one page (with the server's last 2). The server only answered, and
     * never pulled. The server took the client's 8 small PUSH pages
     * together, in one commit with one ACK (src/sync/push_hold.h). */
    cr_expect_eq(cc.push, 8);
    cr_expect_eq(cc.pull, 5, "pulls %d", (int)cc.pull);
    cr_expect_eq(cs.ops, 5);
    cr_expect_eq(cs.pull, 0);
    cr_expect_eq(cs.push, 0);
    cr_expect_eq(cs.ack, 1);
    cr_expect_eq(cc.ack, 5);
    /* What each side's ACKs said of the other's pages: all taken. */
    cvg_session_acks ak;
    cvg_session_acks_get(sc, &ak, sizeof ak);
    cr_expect(ak.taken == 50 && ak.duplicate == 0 && ak.refused == 0,
              "client: %llu taken", (unsigned long long)ak.taken);
    cvg_session_acks_get(ss, &ak, sizeof ak);
    cr_expect(ak.taken == 50 && ak.duplicate == 0 && ak.refused == 0,
              "server: %llu taken", (unsigned long long)ak.taken);
    cvg_session_stats st;
    cvg_session_stats_get(ss, &st, sizeof st);
    cr_expect_eq(st.ops_received, 50);
    cr_expect_eq(st.pages_received, 8);
    cvg_session_stats_get(sc, &st, sizeof st);
    cr_expect_eq(st.ops_received, 50);
    cvg_session_close(sc);
    cvg_session_close(ss);
    expect_same_state(client, server);

    /* The client's ops are committed at the server. */
    cvg_replica_id sid;
    cvg_replica_id_get(server, &sid);
    cvg_sync_status status;
    OK(cvg_sync_status_get(client, &sid, &status, sizeof status));
    cr_expect_eq(status.committed, 50);
    cr_expect_eq(status.pending, 0);
    cr_expect_eq(status.state, CVG_SYNC_SYNCED);

    /* Again, with new ops on both sides: only they move. */
    write_some(client, 5, &rng);
    write_some(server, 4, &rng);
    OK(cvg_session_open(client, &po, &sc));
    OK(cvg_session_open(server, NULL, &ss));
    memset(&cc, 0, sizeof cc);
    memset(&cs, 0, sizeof cs);
    pump(sc, ss, &cc, &cs);
    cr_assert(cvg_session_done(sc) && cvg_session_done(ss));
    cvg_session_stats_get(ss, &st, sizeof st);
    cr_expect_eq(st.ops_received, 5);
    cr_expect_eq(st.ops_duplicate, 0);
    cvg_session_stats_get(sc, &st, sizeof st);
    cr_expect_eq(st.ops_received, 4);
    cr_expect_eq(st.ops_duplicate, 0);
    cvg_session_close(sc);
    cvg_session_close(ss);
    expect_same_state(client, server);

    /* Nothing new: one empty PUSH page, and done. */
    OK(cvg_session_open(client, &po, &sc));
    OK(cvg_session_open(server, NULL, &ss));
    memset(&cc, 0, sizeof cc);
    pump(sc, ss, &cc, &cs);
    cr_expect(cvg_session_done(sc) && cvg_session_done(ss));
    cr_expect_eq(cc.push, 1);
    cvg_session_close(sc);
    cvg_session_close(ss);

    /* The other replica gets the client's ops from the server. */
    OK(cvg_sync_local(other, server, NULL));
    expect_same_state(other, client);
    cvg_replica_close(client);
    cvg_replica_close(server);
    cvg_replica_close(other);
}

Test(push, both_sides_push)
{
    uint64_t rng = cvg_test_seed(12);
    cvg_replica *a = open_dir("push-both-a");
    cvg_replica *b = open_dir("push-both-b");
    write_some(a, 40, &rng);
    write_some(b, 40, &rng);
    cvg_session_options po;
    cvg_session_options_init(&po);
    po.push = true;
    cvg_session *sa, *sb;
    OK(cvg_session_open(a, &po, &sa));
    OK(cvg_session_open(b, &po, &sb));
    counts ca = {0}, cb = {0};
    pump(sa, sb, &ca, &cb);
    cr_assert(cvg_session_done(sa) && cvg_session_done(sb));
    cr_expect_eq(ca.pull + cb.pull + ca.ops + cb.ops, 0);
    cvg_session_close(sa);
    cvg_session_close(sb);
    expect_same_state(a, b);
    cvg_replica_close(a);
    cvg_replica_close(b);
}

/* A session built against version 1 of the options never pushes. */
Test(push, version_1_options_do_not_push)
{
    cvg_replica *a = open_dir("push-v1-a");
    cvg_replica *b = open_dir("push-v1-b");
    uint64_t rng = 5;
    write_some(a, 3, &rng);
    cvg_session_options po;
    cvg_session_options_init(&po);
    po.version = 1;
    po.push = true; /* not part of a version 1 struct */
    cvg_session *sa, *sb;
    OK(cvg_session_open(a, &po, &sa));
    OK(cvg_session_open(b, NULL, &sb));
    counts ca = {0}, cb = {0};
    pump(sa, sb, &ca, &cb);
    cr_expect(cvg_session_done(sa) && cvg_session_done(sb));
    cr_expect_eq(ca.push, 0);
    cr_expect_eq(cb.pull, 1);
    cvg_session_close(sa);
    cvg_session_close(sb);
    cvg_replica_close(a);
    cvg_replica_close(b);
}

/* Clients that push, a server, random writes and a faulty link: once every
 * client has had a clean session, all hold the same state. */
Test(push, clients_converge_over_a_faulty_link, .timeout = 120)
{
    enum { CLIENTS = 3, ROUNDS = 12 };
    uint64_t seed = cvg_test_seed(100);
    for (uint64_t run = 0; run < 20; run++) {
        uint64_t rng = seed + run;
        char name[32];
        cvg_replica *server, *clients[CLIENTS];
        snprintf(name, sizeof name, "pf-s-%llu", (unsigned long long)run);
        server = open_dir(name);
        for (int c = 0; c < CLIENTS; c++) {
            snprintf(name, sizeof name, "pf-c%d-%llu", c,
                     (unsigned long long)run);
            clients[c] = open_dir(name);
        }
        cvg_link_options lo;
        cvg_link_options_init(&lo);
        lo.seed = rng;
        lo.drop_pct = 5;
        lo.dup_pct = 5;
        lo.cut_pct = 3;
        lo.delay_pct = 5;
        cvg_link *link;
        OK(cvg_link_new(&lo, &link));
        cvg_session_options po;
        cvg_session_options_init(&po);
        po.push = true;
        po.page_ops = 1 + (uint32_t)cvg_test_below(&rng, 10);
        for (int round = 0; round < ROUNDS; round++) {
            int c = (int)cvg_test_below(&rng, CLIENTS);
            write_some(clients[c], 1 + (int)cvg_test_below(&rng, 12), &rng);
            if (cvg_test_below(&rng, 3) == 0) {
                write_some(server, 1 + (int)cvg_test_below(&rng, 5), &rng);
            }
            cvg_session *sc, *ss;
            OK(cvg_session_open(clients[c], &po, &sc));
            OK(cvg_session_open(server, NULL, &ss));
            /* Any outcome: the faults may cut the session anywhere. */
            int lrc = cvg_link_run(link, sc, ss, 10000);
            (void)lrc;
            cvg_link_clear(link);
            cvg_session_close(sc);
            cvg_session_close(ss);
        }
        /* A clean round for everyone, twice (what the server learns from
         * a later client reaches the earlier ones in the second). */
        for (int pass = 0; pass < 2; pass++) {
            for (int c = 0; c < CLIENTS; c++) {
                cvg_session *sc, *ss;
                OK(cvg_session_open(clients[c], &po, &sc));
                OK(cvg_session_open(server, NULL, &ss));
                counts cc = {0}, cs = {0};
                pump(sc, ss, &cc, &cs);
                cr_assert(cvg_session_done(sc) && cvg_session_done(ss),
                          "run %llu client %d: not done (%s / %s); replay "
                          "with CVG_TEST_SEED=%llu",
                          (unsigned long long)run, c,
                          cvg_errname(cvg_session_error(sc)),
                          cvg_errname(cvg_session_error(ss)),
                          (unsigned long long)seed);
                cvg_session_close(sc);
                cvg_session_close(ss);
            }
        }
        for (int c = 0; c < CLIENTS; c++) {
            expect_same_state(server, clients[c]);
            cvg_replica_close(clients[c]);
        }
        cvg_replica_close(server);
        cvg_link_free(link);
    }
}

/* A peer told that we push must not pull from us. */
Test(push, a_pull_sent_to_a_pusher_is_refused)
{
    cvg_replica *a = open_dir("push-pull-a");
    cvg_replica *b = open_dir("push-pull-b");
    cvg_session_options po;
    cvg_session_options_init(&po);
    po.push = true;
    cvg_session *sa;
    OK(cvg_session_open(a, &po, &sa));
    cvg_bytes m;
    OK(cvg_session_output(sa, &m)); /* its HELLO */
    /* B's HELLO, then a PULL from B as if it had not listened. */
    cvg_session *sb;
    OK(cvg_session_open(b, NULL, &sb));
    OK(cvg_session_output(sb, &m));
    OK(cvg_session_input(sa, m.data, m.len));
    cvg__msg pull;
    memset(&pull, 0, sizeof pull);
    pull.type = CVG__MSG_PULL;
    pull.version = CVG_PROTOCOL_VERSION;
    pull.cursor = 1;
    cvg__buf b1 = {0};
    OK(cvg__msg_encode(&pull, &b1));
    cr_expect_eq(cvg_session_input(sa, b1.p, b1.len), CVG_EPROTO);
    cr_expect_eq(cvg_session_error(sa), CVG_EPROTO);
    cvg__buf_free(&b1);
    cvg_session_close(sa);
    cvg_session_close(sb);
    cvg_replica_close(a);
    cvg_replica_close(b);
}

/* A pusher of tiny pages (one op each, as a hostile peer would send them
 * to cost a commit per page) is held to a commit per HOLD_PAGES pages or
 * HOLD_BYTES bytes: 3,001 pages are taken in 12 commits, one ACK each,
 * and every op arrives. */
Test(push, tiny_push_pages_commit_together)
{
    uint64_t rng = cvg_test_seed(5);
    cvg_replica *client = open_dir("push-tiny-client");
    cvg_replica *server = open_dir("push-tiny-server");
    write_some(client, 3000, &rng);
    cvg_session_options po;
    cvg_session_options_init(&po);
    po.push = true;
    po.page_ops = 1;
    cvg_session *sc, *ss;
    OK(cvg_session_open(client, &po, &sc));
    OK(cvg_session_open(server, NULL, &ss));
    counts cc = {0}, cs = {0};
    pump(sc, ss, &cc, &cs);
    cr_assert(cvg_session_done(sc) && cvg_session_done(ss));
    /* A page per op, and an empty last one that says so. */
    cr_expect_eq(cc.push, 3001, "%u PUSH pages", cc.push);
    cr_expect_eq(cs.ack, (3001 + CVG__HOLD_PAGES - 1) / CVG__HOLD_PAGES,
                 "%u ACKs (commits) for 3,001 pages", cs.ack);
    cvg_session_stats st;
    cvg_session_stats_get(ss, &st, sizeof st);
    cr_expect_eq(st.ops_received, 3000);
    cr_expect_eq(st.pages_received, 3001, "%llu pages",
                 (unsigned long long)st.pages_received);
    cvg_session_acks ak;
    cvg_session_acks_get(sc, &ak, sizeof ak);
    cr_expect_eq(ak.taken, 3000);
    cvg_session_close(sc);
    cvg_session_close(ss);
    expect_same_state(client, server);
    cvg_replica_close(client);
    cvg_replica_close(server);
}
