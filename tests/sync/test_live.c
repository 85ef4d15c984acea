/*
 * Live sessions, sans-IO: a hub and its clients keep their sessions open
 * while everyone writes; each writer refreshes its sessions after a
 * commit (the hub after every message it takes, as a server does), and
 * nothing else moves ops: no new session, no poll. Messages wait in a
 * queue per direction and are delivered in a random order of links, and
 * links are cut at random (both ends closed, what was in flight dropped)
 * and opened again. At the end, once every queue is empty, every replica
 * equals an oracle that synced with each of them by plain sessions, and
 * every counter holds the sum of its deltas. Replay one seed with
 * CVG_TEST_SEED=N.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "converge.h"

#include "checks.h"
#include "digest.h"
#include "sync/wire.h"
#include "testutil.h"
#include "workload.h"

#define OK(call) cr_assert_eq((call), CVG_OK, "%s", #call)
#define MAXC 4

/* A queue of messages in one direction. */
typedef struct queue {
    cvg_bytes *m;
    size_t n, cap, head;
} queue;

typedef struct link {
    cvg_session *hub; /* the hub's end */
    cvg_session *cl;  /* the client's end */
    queue to_hub, to_cl;
    bool push; /* the client pushes its own ops */
    bool up;
} link;

typedef struct world {
    uint64_t seed;
    cvg_test_workload wl;
    int n; /* clients */
    cvg_replica *hub, *cl[MAXC], *oracle;
    link l[MAXC];
} world;

static void
q_push(queue *q, cvg_bytes b)
{
    if (q->n == q->cap) {
        q->cap = q->cap ? 2 * q->cap : 16;
        q->m = realloc(q->m, q->cap * sizeof *q->m);
        cr_assert(q->m != NULL);
    }
    uint8_t *p = malloc(b.len ? b.len : 1);
    cr_assert(p != NULL);
    memcpy(p, b.data, b.len);
    q->m[q->n++] = (cvg_bytes){p, b.len};
}

static void
q_clear(queue *q)
{
    for (size_t i = q->head; i < q->n; i++) {
        free((void *)q->m[i].data);
    }
    free(q->m);
    memset(q, 0, sizeof *q);
}

static bool
q_empty(const queue *q)
{
    return q->head == q->n;
}

/* Move what @p s has to say into @p q. */
static void
drain(cvg_session *s, queue *q)
{
    cvg_bytes m;
    while (cvg_session_output(s, &m) == CVG_OK) {
        q_push(q, m);
    }
}

static void
fail_seed(const world *w, const char *what, int rc, cvg_replica *r)
{
    cr_assert_fail("seed %llu: %s: %s (%s); replay with CVG_TEST_SEED=%llu",
                   (unsigned long long)w->seed, what, cvg_errname(rc),
                   cvg_replica_errmsg(r), (unsigned long long)w->seed);
}

static void
link_up(world *w, int i)
{
    link *l = &w->l[i];
    cvg_session_options o;
    cvg_session_options_init(&o);
    o.live = true;
    o.page_ops = 1 + (uint32_t)cvg_test_below(&w->wl.rng, 8); /* many pages */
    OK(cvg_session_open(w->hub, &o, &l->hub));
    o.push = l->push;
    OK(cvg_session_open(w->cl[i], &o, &l->cl));
    l->up = true;
    drain(l->hub, &l->to_cl);
    drain(l->cl, &l->to_hub);
}

static void
link_down(world *w, int i)
{
    link *l = &w->l[i];
    cvg_session_close(l->hub);
    cvg_session_close(l->cl);
    l->hub = l->cl = NULL;
    q_clear(&l->to_hub);
    q_clear(&l->to_cl);
    l->up = false;
}

/* The hub committed, or may have: every session of it offers what is new. */
static void
hub_refresh(world *w)
{
    for (int i = 0; i < w->n; i++) {
        link *l = &w->l[i];
        if (l->up) {
            int rc = cvg_session_refresh(l->hub);
            if (rc != CVG_OK) {
                fail_seed(w, "hub refresh", rc, w->hub);
            }
            drain(l->hub, &l->to_cl);
        }
    }
}

/* Deliver the oldest message of one direction of link @p i. */
static bool
deliver(world *w, int i, bool to_hub)
{
    link *l = &w->l[i];
    queue *q = to_hub ? &l->to_hub : &l->to_cl;
    if (!l->up || q_empty(q)) {
        return false;
    }
    cvg_bytes m = q->m[q->head++];
    cvg_session *s = to_hub ? l->hub : l->cl;
    int rc = cvg_session_input(s, m.data, m.len);
    free((void *)m.data);
    if (rc != CVG_OK) {
        fail_seed(w, to_hub ? "the hub's input" : "a client's input", rc,
                  to_hub ? w->hub : w->cl[i]);
    }
    if (to_hub) {
        drain(l->hub, &l->to_cl);
        hub_refresh(w);
    } else {
        drain(l->cl, &l->to_hub);
    }
    return true;
}

static void
client_write(world *w, int i)
{
    cvg_test_random_txn(&w->wl, w->cl[i]);
    link *l = &w->l[i];
    if (l->up) {
        int rc = cvg_session_refresh(l->cl);
        if (rc != CVG_OK) {
            fail_seed(w, "client refresh", rc, w->cl[i]);
        }
        drain(l->cl, &l->to_hub);
    }
}

static bool
deliver_any(world *w)
{
    /* A random start, then the first link with something to deliver. */
    int k = (int)cvg_test_below(&w->wl.rng, (uint64_t)(2 * w->n));
    for (int j = 0; j < 2 * w->n; j++) {
        int x = (k + j) % (2 * w->n);
        if (deliver(w, x / 2, x % 2 == 0)) {
            return true;
        }
    }
    return false;
}

static void
expect_same(const world *w, cvg_replica *r, const char *d0, const char *who)
{
    char *d;
    OK(cvg_test_digest(r, &d));
    cr_assert_str_eq(d, d0,
                     "seed %llu: %s differs from the oracle; replay with "
                     "CVG_TEST_SEED=%llu",
                     (unsigned long long)w->seed, who,
                     (unsigned long long)w->seed);
    free(d);
}

static void
run_seed(uint64_t seed)
{
    world w;
    memset(&w, 0, sizeof w);
    w.seed = seed;
    w.wl.seed = seed;
    w.wl.rng = seed;
    uint64_t *rng = &w.wl.rng;
    w.n = 2 + (int)cvg_test_below(rng, MAXC - 1);
    char name[64];
    snprintf(name, sizeof name, "live-%llu-hub", (unsigned long long)seed);
    cvg_test_reopen_fast(cvg_test_dir(name), &w.hub, seed);
    snprintf(name, sizeof name, "live-%llu-oracle", (unsigned long long)seed);
    cvg_test_reopen_fast(cvg_test_dir(name), &w.oracle, seed);
    for (int i = 0; i < w.n; i++) {
        snprintf(name, sizeof name, "live-%llu-%d", (unsigned long long)seed,
                 i);
        cvg_test_reopen_fast(cvg_test_dir(name), &w.cl[i], seed);
        w.l[i].push = cvg_test_below(rng, 2) == 0;
        link_up(&w, i);
    }
    int steps = 60 + (int)cvg_test_below(rng, 120);
    for (int s = 0; s < steps; s++) {
        uint64_t what = cvg_test_below(rng, 20);
        int i = (int)cvg_test_below(rng, (uint64_t)w.n);
        if (what < 6) {
            client_write(&w, i);
        } else if (what < 7) {
            cvg_test_random_txn(&w.wl, w.hub);
            hub_refresh(&w);
        } else if (what < 8) {
            /* A cut: in-flight messages are lost; a new connection. */
            link_down(&w, i);
            link_up(&w, i);
        } else {
            (void)deliver_any(&w);
        }
    }
    /* Quiet down: deliver until every queue is empty, with one last write
     * on each client, which must reach everyone through the live sessions
     * alone. */
    for (int i = 0; i < w.n; i++) {
        client_write(&w, i);
    }
    size_t moved = 0;
    while (deliver_any(&w)) {
        cr_assert(++moved < 20000, "seed %llu: the sessions never quiet",
                  (unsigned long long)seed);
    }
    for (int i = 0; i < w.n; i++) {
        cr_assert(cvg_session_live(w.l[i].hub) && cvg_session_live(w.l[i].cl),
                  "seed %llu: link %d is not live", (unsigned long long)seed,
                  i);
        cr_assert(cvg_session_done(w.l[i].hub) && cvg_session_done(w.l[i].cl),
                  "seed %llu: link %d is quiet but not done",
                  (unsigned long long)seed, i);
    }
    /* The oracle: plain sessions with the hub and every client. */
    OK(cvg_sync_local(w.oracle, w.hub, NULL));
    for (int i = 0; i < w.n; i++) {
        OK(cvg_sync_local(w.oracle, w.cl[i], NULL));
    }
    char *d0;
    OK(cvg_test_digest(w.oracle, &d0));
    expect_same(&w, w.hub, d0, "the hub");
    for (int i = 0; i < w.n; i++) {
        char who[32];
        snprintf(who, sizeof who, "client %d", i);
        expect_same(&w, w.cl[i], d0, who);
    }
    free(d0);
    cvg_test_check_counters(&w.wl, w.oracle);
    for (int i = 0; i < w.n; i++) {
        link_down(&w, i);
        cvg_replica_close(w.cl[i]);
    }
    cvg_replica_close(w.hub);
    cvg_replica_close(w.oracle);
}

Test(live, random_schedules_converge_through_live_sessions, .timeout = 600)
{
    const char *env = getenv("CVG_TEST_SEED");
    if (env != NULL && env[0] != '\0') {
        run_seed(cvg_test_seed(0));
        return;
    }
    const char *count = getenv("CVG_TEST_SEEDS");
    uint64_t n = count ? strtoull(count, NULL, 10) : 40;
    for (uint64_t s = 1; s <= n; s++) {
        run_seed(s);
    }
}

/* Two replicas with sessions in memory, carried until quiet. */
typedef struct pair {
    cvg_replica *a, *b;
    cvg_session *sa, *sb;
} pair;

static void
pump(pair *p)
{
    bool moved = true;
    while (moved) {
        moved = false;
        cvg_bytes m;
        while (cvg_session_output(p->sa, &m) == CVG_OK) {
            moved = true;
            OK(cvg_session_input(p->sb, m.data, m.len));
        }
        while (cvg_session_output(p->sb, &m) == CVG_OK) {
            moved = true;
            OK(cvg_session_input(p->sa, m.data, m.len));
        }
    }
}

static void
pair_open(pair *p, const char *name, bool live_a, bool live_b)
{
    char dir[64];
    snprintf(dir, sizeof dir, "%s-a", name);
    cvg_test_reopen_fast(cvg_test_dir(dir), &p->a, 1);
    snprintf(dir, sizeof dir, "%s-b", name);
    cvg_test_reopen_fast(cvg_test_dir(dir), &p->b, 2);
    cvg_session_options o;
    cvg_session_options_init(&o);
    o.live = live_a;
    OK(cvg_session_open(p->a, &o, &p->sa));
    o.live = live_b;
    OK(cvg_session_open(p->b, &o, &p->sb));
}

static void
pair_close(pair *p)
{
    cvg_session_close(p->sa);
    cvg_session_close(p->sb);
    cvg_replica_close(p->a);
    cvg_replica_close(p->b);
}

static int64_t
count_of(cvg_replica *r)
{
    cvg_key k = {"stock", "sku", "qty"};
    cvg_txn *t;
    int64_t v = 0;
    OK(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t));
    OK(cvg_counter_get(t, &k, &v));
    cvg_txn_abort(t);
    return v;
}

static void
add(cvg_replica *r, int64_t d)
{
    cvg_key k = {"stock", "sku", "qty"};
    cvg_txn *t;
    OK(cvg_txn_begin(r, 0, &t));
    OK(cvg_counter_add(t, &k, d, NULL));
    OK(cvg_txn_commit(t));
}

/* Live only when both sides ask: a session with one that did not is done
 * as usual, and a refresh there sends nothing. */
Test(live, both_sides_must_ask)
{
    pair p = {0};
    pair_open(&p, "ask", true, false);
    pump(&p);
    cr_expect(cvg_session_done(p.sa) && cvg_session_done(p.sb));
    cr_expect(!cvg_session_live(p.sa) && !cvg_session_live(p.sb));
    add(p.a, 5);
    OK(cvg_session_refresh(p.sa));
    cvg_bytes m;
    cr_expect_eq(cvg_session_output(p.sa, &m), CVG_DONE,
                 "a refresh in a session that is not live sends nothing");
    pair_close(&p);
}

/* A commit after the session is done reaches the peer by refresh alone,
 * each time, both ways; done turns false while it is on its way. */
Test(live, commits_after_done_flow_both_ways)
{
    pair p = {0};
    pair_open(&p, "flow", true, true);
    pump(&p);
    cr_assert(cvg_session_live(p.sa) && cvg_session_done(p.sa));
    int64_t want = 0;
    for (int i = 1; i <= 20; i++) {
        cvg_replica *w = i % 2 ? p.a : p.b;
        add(w, i);
        want += i;
        OK(cvg_session_refresh(w == p.a ? p.sa : p.sb));
        cr_expect(!cvg_session_done(w == p.a ? p.sa : p.sb),
                  "not done while the commit travels");
        pump(&p);
        cr_expect(cvg_session_done(p.sa) && cvg_session_done(p.sb));
        cr_expect_eq(count_of(p.a), want);
        cr_expect_eq(count_of(p.b), want);
    }
    /* Each side's log grew by the other's ops: a refresh announces it,
     * and the pull that follows moves no op back (the peer has them). */
    cvg_session_stats before_a, before_b, after_a, after_b;
    cvg_session_stats_get(p.sa, &before_a, sizeof before_a);
    cvg_session_stats_get(p.sb, &before_b, sizeof before_b);
    OK(cvg_session_refresh(p.sa));
    OK(cvg_session_refresh(p.sb));
    pump(&p);
    cvg_session_stats_get(p.sa, &after_a, sizeof after_a);
    cvg_session_stats_get(p.sb, &after_b, sizeof after_b);
    cr_expect_eq(after_a.ops_sent, before_a.ops_sent, "no echo from a");
    cr_expect_eq(after_b.ops_sent, before_b.ops_sent, "no echo from b");
    cr_expect_eq(before_a.ops_sent + before_b.ops_sent, 20,
                 "each op crossed once");
    /* A refresh with nothing new says nothing. */
    OK(cvg_session_refresh(p.sa));
    cvg_bytes m;
    cr_expect_eq(cvg_session_output(p.sa, &m), CVG_DONE);
    pair_close(&p);
}

/* A refresh before the peer's HELLO is kept for after it. */
Test(live, a_refresh_before_the_hello_is_not_lost)
{
    pair p = {0};
    pair_open(&p, "early", true, true);
    add(p.a, 7);
    OK(cvg_session_refresh(p.sa));
    pump(&p);
    cr_expect_eq(count_of(p.b), 7);
    pair_close(&p);
}

/* A HAVE whose log end goes back, or one in a session that is not live,
 * is refused (the peer's bytes are hostile). */
Test(live, hostile_have_is_refused)
{
    pair p = {0};
    pair_open(&p, "hostile", false, false);
    pump(&p);
    /* HAVE (type 9), our protocol version, log end 5, no token. */
    const uint8_t have[] = {CVG_PROTOCOL_VERSION, 0x09, 0x05, 0x00};
    cr_expect_eq(cvg_session_input(p.sb, have, sizeof have), CVG_EPROTO);
    pair_close(&p);
    memset(&p, 0, sizeof p);

    pair_open(&p, "back", true, true);
    add(p.a, 1);
    add(p.a, 1);
    OK(cvg_session_refresh(p.sa)); /* HAVE 2 */
    pump(&p);
    cr_assert_eq(count_of(p.b), 2);
    /* a's log ends at lsn 2 */
    const uint8_t back[] = {CVG_PROTOCOL_VERSION, 0x09, 0x01, 0x00};
    cvg_replica_stats rs;
    OK(cvg_replica_stats_get(p.a, &rs, sizeof rs));
    cr_assert_eq(rs.last_lsn, 2);
    cr_expect_eq(cvg_session_input(p.sb, back, sizeof back), CVG_EPROTO);
    pair_close(&p);
}

/* Everything @p from has to say, into @p to; the messages are kept in
 * @p keep (at most @p cap) when it is not NULL. */
static size_t
hand_over(cvg_session *from, cvg_session *to, cvg__buf *keep, size_t cap)
{
    size_t n = 0;
    cvg_bytes m;
    while (cvg_session_output(from, &m) == CVG_OK) {
        if (keep != NULL && n < cap) {
            keep[n].len = 0;
            OK(cvg__buf_append(&keep[n], m.data, m.len));
        }
        n++;
        if (to != NULL) {
            OK(cvg_session_input(to, m.data, m.len));
        }
    }
    return n;
}

/* A new round of pushes needs the ACK of the last: the pusher's HAVE
 * carries back the token that ACK carried. A pusher that does not read
 * the ACKs (a HAVE without the token, or one replayed from an earlier
 * round) is refused, so each commit of a round's last page costs it a
 * round trip; one that reads them pushes round after round. */
Test(live, a_push_round_needs_the_ack_of_the_last)
{
    for (int how = 0; how < 3; how++) {
        char name[32];
        snprintf(name, sizeof name, "round%d", how);
        pair p = {0};
        char dir[64];
        snprintf(dir, sizeof dir, "%s-a", name);
        cvg_test_reopen_fast(cvg_test_dir(dir), &p.a, 1);
        snprintf(dir, sizeof dir, "%s-b", name);
        cvg_test_reopen_fast(cvg_test_dir(dir), &p.b, 2);
        cvg_session_options o;
        cvg_session_options_init(&o);
        o.live = true;
        o.push = true;
        OK(cvg_session_open(p.a, &o, &p.sa));
        o.push = false;
        OK(cvg_session_open(p.b, &o, &p.sb));
        pump(&p);
        cr_assert(cvg_session_done(p.sa) && cvg_session_done(p.sb));

        /* Round 1: HAVE and the PUSH page; b commits and ACKs. */
        cvg__buf kept[4] = {{0}};
        add(p.a, 1);
        OK(cvg_session_refresh(p.sa));
        cr_assert_eq(hand_over(p.sa, p.sb, kept, 4), 2, "HAVE and one PUSH");
        cr_assert_eq(count_of(p.b), 1);
        if (how == 2) {
            /* An honest pusher: it reads the ACK, then pushes again. */
            for (int i = 2; i <= 30; i++) {
                hand_over(p.sb, p.sa, NULL, 0);
                add(p.a, 1);
                OK(cvg_session_refresh(p.sa));
                hand_over(p.sa, p.sb, NULL, 0);
                cr_expect_eq(cvg_session_error(p.sb), CVG_OK);
                cr_expect_eq(count_of(p.b), i);
            }
        } else {
            /* Round 2 without reading b's ACK: no token, or the HAVE of
             * round 1 again (its token is the round before's). */
            uint8_t have[] = {CVG_PROTOCOL_VERSION, 0x09, 0x7f, 0x00};
            cvg_bytes h = how == 0 ? (cvg_bytes){have, sizeof have}
                                   : (cvg_bytes){kept[0].p, kept[0].len};
            cr_expect_eq(cvg_session_input(p.sb, h.data, h.len), CVG_EPROTO);
            cr_expect_eq(count_of(p.b), 1, "nothing more committed");
        }
        for (int i = 0; i < 4; i++) {
            cvg__buf_free(&kept[i]);
        }
        pair_close(&p);
    }
}
