/*
 * The background syncer against a real server on 127.0.0.1 (a thread
 * running cvg_server_run(), as in test_tcp.c). A recorder keeps every
 * status event with its time, and the tests wait on it. The syncer keeps
 * a live session: a notified write reaches the server after the
 * debounce, one not notified at the next interval, a write on the server
 * or on another client reaches this one without polling, a server that
 * goes away gives OFFLINE with growing backoffs and nothing is lost when
 * it comes back, a busy server's retry-after is kept, stop() is prompt while offline and while the handshake
 * waits on a silent server, and apps writing under the syncers' locks end
 * converged. Every wait is bounded in count and time.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "converge.h"
#include "converge/net.h"

#include "checks.h"
#include "testutil.h"

#define OK(call) cr_assert_eq((call), CVG_OK, "%s", #call)

/* ---- A server on a thread ------------------------------------------------ */

typedef struct server_box {
    cvg_replica *r;
    cvg_server *srv;
    pthread_t th;
    uint16_t port;
} server_box;

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

static void *
serve(void *arg)
{
    server_box *b = arg;
    return (void *)(intptr_t)cvg_server_run(b->srv);
}

/* Serve b->r on 127.0.0.1:@p port (0: a free one). */
static void
serve_on(server_box *b, uint16_t port)
{
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)port);
    int rc = cvg_server_open(b->r, addr, NULL, &b->srv);
    cr_assert_eq(rc, CVG_OK, "listen on %s: %s (%s)", addr, cvg_errname(rc),
                 cvg_replica_errmsg(b->r));
    b->port = cvg_server_port(b->srv);
    cr_assert_eq(pthread_create(&b->th, NULL, serve, b), 0);
}

static void
start(server_box *b)
{
    b->r = open_dir("server");
    serve_on(b, 0);
}

static void
stop_server(server_box *b)
{
    cvg_server_stop(b->srv);
    void *ret;
    cr_assert_eq(pthread_join(b->th, &ret), 0);
    cr_assert_eq((intptr_t)ret, CVG_OK);
    cvg_server_close(b->srv);
    b->srv = NULL;
}

static void
url_of(uint16_t port, char *out, size_t cap)
{
    snprintf(out, cap, "tcp://127.0.0.1:%u", (unsigned)port);
}

/* ---- Replica helpers: rc, not asserts, so threads may call them ---------- */

static int
add(cvg_replica *r, const char *key, int64_t n)
{
    cvg_txn *t;
    int rc = cvg_txn_begin(r, 0, &t);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg_key k = {"c", key, "n"};
    rc = cvg_counter_add(t, &k, n, NULL);
    if (rc != CVG_OK) {
        cvg_txn_abort(t);
        return rc;
    }
    return cvg_txn_commit(t);
}

static int64_t
get(cvg_replica *r, const char *key)
{
    cvg_txn *t;
    if (cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t) != CVG_OK) {
        return -1;
    }
    cvg_key k = {"c", key, "n"};
    int64_t v = 0;
    int rc = cvg_counter_get(t, &k, &v);
    cvg_txn_abort(t);
    return rc == CVG_OK || rc == CVG_ENOTFOUND ? v : -1;
}

static int64_t
get_locked(cvg_syncer *s, cvg_replica *r, const char *key)
{
    cvg_syncer_lock(s);
    int64_t v = get(r, key);
    cvg_syncer_unlock(s);
    return v;
}

static int
add_locked(cvg_syncer *s, cvg_replica *r, const char *key, int64_t n)
{
    cvg_syncer_lock(s);
    int rc = add(r, key, n);
    cvg_syncer_unlock(s);
    return rc;
}

static uint64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Poll @p key of @p r (under the lock) every 10 ms until it reads @p want
 * or @p ms pass; the last value read. */
static int64_t
await_value(cvg_syncer *s, cvg_replica *r, const char *key, int64_t want,
            uint32_t ms)
{
    int64_t v = get_locked(s, r, key);
    for (uint32_t i = 0; i < ms / 10 && v != want; i++) {
        usleep(10 * 1000);
        v = get_locked(s, r, key);
    }
    return v;
}

/* ---- The recorder of status events --------------------------------------- */

#define REC_MAX 1024

typedef struct rec_event {
    uint64_t at;
    cvg_syncer_event e;
    char msg[256];
} rec_event;

typedef struct recorder {
    pthread_mutex_t mu;
    rec_event ev[REC_MAX];
    int n;
    /* For the callback that calls stop on its own syncer. */
    _Atomic(cvg_syncer *) self;
    atomic_int stops_returned;
} recorder;

static void
rec_init(recorder *rc)
{
    memset(rc, 0, sizeof *rc);
    pthread_mutex_init(&rc->mu, NULL);
}

static void
on_status(void *ctx, const cvg_syncer_event *e)
{
    recorder *rc = ctx;
    pthread_mutex_lock(&rc->mu);
    if (rc->n < REC_MAX) {
        rec_event *r = &rc->ev[rc->n++];
        r->at = now_ms();
        r->e = *e;
        snprintf(r->msg, sizeof r->msg, "%s", e->message);
        r->e.message = r->msg;
    }
    pthread_mutex_unlock(&rc->mu);
}

static int
rec_count(recorder *rc)
{
    pthread_mutex_lock(&rc->mu);
    int n = rc->n;
    pthread_mutex_unlock(&rc->mu);
    return n;
}

static rec_event
rec_get(recorder *rc, int i)
{
    pthread_mutex_lock(&rc->mu);
    rec_event r = rc->ev[i];
    pthread_mutex_unlock(&rc->mu);
    r.e.message = r.msg;
    return r;
}

/* The index of the first event at or after @p from in @p state, waiting
 * up to @p ms for it; -1 if none came. */
static int
rec_await(recorder *rc, int from, cvg_syncer_state state, uint32_t ms)
{
    for (uint32_t i = 0; i <= ms / 5; i++) {
        pthread_mutex_lock(&rc->mu);
        for (int j = from; j < rc->n; j++) {
            if (rc->ev[j].e.state == state) {
                pthread_mutex_unlock(&rc->mu);
                return j;
            }
        }
        pthread_mutex_unlock(&rc->mu);
        usleep(5 * 1000);
    }
    return -1;
}

static void
syncer_opts(cvg_syncer_options *o, const char *url, recorder *rc)
{
    cvg_syncer_options_init(o);
    o->url = url;
    o->on_status = on_status;
    o->ctx = rc;
}

/* ---- The tests -------------------------------------------------------------*/

Test(syncer, a_notified_write_reaches_the_server_after_the_debounce,
     .timeout = 60)
{
    server_box b;
    start(&b);
    cvg_replica *c = open_dir("client");
    char url[64];
    url_of(b.port, url, sizeof url);
    recorder rec;
    rec_init(&rec);
    cvg_syncer_options o;
    syncer_opts(&o, url, &rec);
    o.interval_ms = 30000; /* only the notify can push the write */
    o.debounce_ms = 100;
    cvg_syncer *s;
    OK(cvg_syncer_start(c, &o, &s));
    int first = rec_await(&rec, 0, CVG_SYNCER_SYNCED, 5000);
    cr_assert_geq(first, 0, "never caught up");
    cr_assert_eq(rec_get(&rec, 0).e.state, CVG_SYNCER_CONNECTING);

    OK(add_locked(s, c, "x", 7));
    uint64_t t0 = now_ms();
    cvg_syncer_notify(s);
    cvg_syncer_notify(s); /* a burst: one round */
    int syncing = rec_await(&rec, first + 1, CVG_SYNCER_SYNCING, 5000);
    cr_assert_geq(syncing, 0, "the notify pushed nothing");
    uint64_t waited = rec_get(&rec, syncing).at - t0;
    cr_assert_geq(waited, 95, "pushed after %llu ms, before the debounce",
                  (unsigned long long)waited);
    cr_assert_lt(waited, 3000, "pushed only after %llu ms",
                 (unsigned long long)waited);
    int synced = rec_await(&rec, syncing, CVG_SYNCER_SYNCED, 5000);
    cr_assert_geq(synced, 0);
    rec_event e = rec_get(&rec, synced);
    cr_assert_eq(e.e.ops_sent, 1, "sent %llu ops",
                 (unsigned long long)e.e.ops_sent);
    cr_assert_eq(e.e.next_ms, 30000);
    /* One push for the two notifies, and no echo of it: nothing follows
     * (the server does not offer our own ops back). */
    usleep(300 * 1000);
    cr_assert_eq(rec_count(&rec), synced + 1);

    /* Stop while waiting out the interval: at once. */
    uint64_t t1 = now_ms();
    cvg_syncer_stop(s);
    cr_assert_lt(now_ms() - t1, 500);
    stop_server(&b);
    cr_assert_eq(get(b.r, "x"), 7);
    cvg_replica_close(c);
    cvg_replica_close(b.r);
}

Test(syncer, a_write_on_the_server_reaches_the_client_without_polling,
     .timeout = 60)
{
    server_box b;
    start(&b);
    char url[64];
    url_of(b.port, url, sizeof url);
    cvg_replica *c = open_dir("client");
    cvg_replica *w = open_dir("writer");
    recorder rec;
    rec_init(&rec);
    cvg_syncer_options o;
    syncer_opts(&o, url, &rec);
    o.interval_ms = 60000; /* no interval falls in the test */
    cvg_syncer *s;
    OK(cvg_syncer_start(c, &o, &s));
    cr_assert_geq(rec_await(&rec, 0, CVG_SYNCER_SYNCED, 5000), 0);

    /* Another client's write reaches the server, and from there ours at
     * once: the server tells our live session. */
    OK(add(w, "y", 5));
    int from = rec_count(&rec); /* it may arrive before net_sync returns */
    uint64_t t0 = now_ms();
    OK(cvg_net_sync(w, url, NULL, NULL));
    cr_assert_eq(await_value(s, c, "y", 5, 3000), 5);
    cr_assert_lt(now_ms() - t0, 3000);
    /* The catch-up that applied it reports it (after it gave the lock
     * back: the event may come a moment after the value). */
    int got = -1;
    for (int i = from, tries = 0; got < 0 && i >= 0 && tries < 50; tries++) {
        i = rec_await(&rec, i, CVG_SYNCER_SYNCED, 2000);
        if (i >= 0 && rec_get(&rec, i).e.ops_received == 1) {
            got = i;
        } else if (i >= 0) {
            i++;
        }
    }
    cr_assert_geq(got, 0, "no SYNCED reported the op");
    cvg_syncer_stop(s);
    stop_server(&b);
    cvg_replica_close(w);
    cvg_replica_close(c);
    cvg_replica_close(b.r);
}

Test(syncer, a_write_not_notified_goes_out_at_the_interval, .timeout = 60)
{
    server_box b;
    start(&b);
    cvg_replica *c = open_dir("client");
    char url[64];
    url_of(b.port, url, sizeof url);
    recorder rec;
    rec_init(&rec);
    cvg_syncer_options o;
    syncer_opts(&o, url, &rec);
    o.interval_ms = 300;
    cvg_syncer *s;
    OK(cvg_syncer_start(c, &o, &s));
    int first = rec_await(&rec, 0, CVG_SYNCER_SYNCED, 5000);
    cr_assert_geq(first, 0);
    uint64_t t0 = now_ms();
    OK(add_locked(s, c, "quiet", 3)); /* no notify */
    int synced = -1;
    for (int i = first + 1, tries = 0; synced < 0 && i >= 0 && tries < 20;
         tries++) {
        i = rec_await(&rec, i, CVG_SYNCER_SYNCED, 5000);
        if (i >= 0 && rec_get(&rec, i).e.ops_sent == 1) {
            synced = i;
        } else if (i >= 0) {
            i++;
        }
    }
    cr_assert_geq(synced, 0, "the write never went out");
    uint64_t took = rec_get(&rec, synced).at - t0;
    cr_assert_lt(took, 3000, "out after %llu ms", (unsigned long long)took);
    cvg_syncer_stop(s);
    /* Stopped while caught up: OFFLINE with no error. */
    rec_event last = rec_get(&rec, rec_count(&rec) - 1);
    cr_assert_eq(last.e.state, CVG_SYNCER_OFFLINE);
    cr_assert_eq(last.e.rc, CVG_OK, "%s", cvg_errname(last.e.rc));
    stop_server(&b);
    cr_assert_eq(get(b.r, "quiet"), 3);
    cvg_replica_close(c);
    cvg_replica_close(b.r);
}

Test(syncer, a_commit_on_one_client_reaches_another_without_polling,
     .timeout = 60)
{
    server_box b;
    start(&b);
    char url[64];
    url_of(b.port, url, sizeof url);
    cvg_replica *c[2] = {open_dir("a"), open_dir("b")};
    recorder rec[2];
    cvg_syncer *s[2];
    for (int i = 0; i < 2; i++) {
        rec_init(&rec[i]);
        cvg_syncer_options o;
        syncer_opts(&o, url, &rec[i]);
        o.interval_ms = 60000; /* no interval falls in the test */
        o.debounce_ms = 5;
        OK(cvg_syncer_start(c[i], &o, &s[i]));
        cr_assert_geq(rec_await(&rec[i], 0, CVG_SYNCER_SYNCED, 5000), 0);
    }
    /* Back and forth, each write answered by the other client's. */
    for (int k = 1; k <= 5; k++) {
        int from = k % 2, to = 1 - from;
        OK(add_locked(s[from], c[from], "ping", 1));
        cvg_syncer_notify(s[from]);
        cr_assert_eq(await_value(s[to], c[to], "ping", k, 3000), k,
                     "write %d never reached client %d", k, to);
    }
    for (int i = 0; i < 2; i++) {
        cvg_syncer_stop(s[i]);
        cr_assert_eq(rec_await(&rec[i], 0, CVG_SYNCER_ERROR, 0), -1);
    }
    stop_server(&b);
    cr_assert_eq(get(b.r, "ping"), 5);
    for (int i = 0; i < 2; i++) {
        cvg_replica_close(c[i]);
    }
    cvg_replica_close(b.r);
}

Test(syncer, a_lost_server_backs_off_then_syncs_again_losing_nothing,
     .timeout = 60)
{
    server_box b;
    start(&b);
    uint16_t port = b.port;
    char url[64];
    url_of(port, url, sizeof url);
    cvg_replica *c = open_dir("client");
    recorder rec;
    rec_init(&rec);
    cvg_syncer_options o;
    syncer_opts(&o, url, &rec);
    o.interval_ms = 100;
    o.backoff_min_ms = 20;
    o.backoff_max_ms = 160;
    o.debounce_ms = 1;
    cvg_syncer *s;
    OK(cvg_syncer_start(c, &o, &s));
    cr_assert_geq(rec_await(&rec, 0, CVG_SYNCER_SYNCED, 5000), 0);

    /* The live connection ends with the server: OFFLINE at once. */
    int down = rec_count(&rec);
    stop_server(&b);
    /* Writes go on while the server is away, notified during the first
     * backoff (which the notifies must not cut short); the server's too. */
    cr_assert_geq(rec_await(&rec, down, CVG_SYNCER_OFFLINE, 5000), 0);
    for (int i = 0; i < 3; i++) {
        OK(add_locked(s, c, "offline", 1));
        cvg_syncer_notify(s);
    }
    OK(add(b.r, "server", 4));

    /* Eight failed rounds: 20, 40, 80, 160 ms backoffs, then the cap. */
    enum { FAILS = 8 };
    int idx[FAILS];
    int from = down;
    for (int k = 0; k < FAILS; k++) {
        idx[k] = rec_await(&rec, from, CVG_SYNCER_OFFLINE, 5000);
        cr_assert_geq(idx[k], 0, "failure %d never came", k + 1);
        from = idx[k] + 1;
    }
    cr_assert_eq(rec_await(&rec, down, CVG_SYNCER_ERROR, 0), -1);
    uint32_t prev = 0;
    for (int k = 0; k < FAILS; k++) {
        rec_event e = rec_get(&rec, idx[k]);
        cr_assert_eq(e.e.rc, CVG_EIO, "failure %d: %s", k + 1,
                     cvg_errname(e.e.rc));
        cr_assert(strstr(e.msg, "connect") != NULL, "failure %d: '%s'", k + 1,
                  e.msg);
        cr_assert_eq(e.e.failures, (uint32_t)k + 1);
        uint32_t base = 20u << k;
        if (base > 160) {
            base = 160;
        }
        /* Half jitter: in [base/2, base], so non-decreasing to the cap. */
        cr_assert(e.e.next_ms >= base / 2 && e.e.next_ms <= base,
                  "failure %d: waits %u ms, backoff %u", k + 1, e.e.next_ms,
                  base);
        if (base < 160) {
            cr_assert_geq(e.e.next_ms, prev, "failure %d: %u after %u", k + 1,
                          e.e.next_ms, prev);
        }
        prev = e.e.next_ms;
        /* The wait is kept: the next round begins no sooner (a notify
         * does not cut a backoff short), and not much later. */
        int next = rec_await(&rec, idx[k] + 1, CVG_SYNCER_CONNECTING, 5000);
        cr_assert_eq(next, idx[k] + 1, "failure %d: no round next", k + 1);
        rec_event n = rec_get(&rec, next);
        uint64_t gap = n.at - e.at;
        cr_assert(gap + 2 >= e.e.next_ms && gap <= e.e.next_ms + 500,
                  "failure %d: next round after %llu ms, not %u", k + 1,
                  (unsigned long long)gap, e.e.next_ms);
    }

    /* The server comes back on its port: synced again, nothing lost. */
    int back = rec_count(&rec);
    serve_on(&b, port);
    cr_assert_eq(b.port, port);
    int synced = rec_await(&rec, back, CVG_SYNCER_SYNCED, 5000);
    cr_assert_geq(synced, 0, "no round after the server came back");
    cr_assert_eq(rec_get(&rec, synced).e.failures, 0);
    cr_assert_eq(await_value(s, c, "server", 4, 3000), 4);
    cvg_syncer_stop(s);
    stop_server(&b);
    cr_assert_eq(get(b.r, "offline"), 3);
    char *want = cvg_test_state(b.r);
    char *have = cvg_test_state(c);
    cr_assert_str_eq(have, want);
    free(want);
    free(have);
    cvg_replica_close(c);
    cvg_replica_close(b.r);
}

Test(syncer, a_busy_server_is_offline_and_its_retry_after_kept, .timeout = 60)
{
    server_box b;
    b.r = open_dir("server");
    cvg_server_options so;
    cvg_server_options_init(&so);
    so.max_clients = 1;
    so.busy_retry_ms = 700;
    int rc = cvg_server_open(b.r, "127.0.0.1:0", &so, &b.srv);
    cr_assert_eq(rc, CVG_OK, "%s", cvg_replica_errmsg(b.r));
    b.port = cvg_server_port(b.srv);
    cr_assert_eq(pthread_create(&b.th, NULL, serve, &b), 0);
    char url[64];
    url_of(b.port, url, sizeof url);
    /* One client fills the server's only place. */
    cvg_replica *first = open_dir("first");
    recorder r1;
    rec_init(&r1);
    cvg_syncer_options o;
    syncer_opts(&o, url, &r1);
    cvg_syncer *s1;
    OK(cvg_syncer_start(first, &o, &s1));
    cr_assert_geq(rec_await(&r1, 0, CVG_SYNCER_SYNCED, 5000), 0);

    cvg_replica *c = open_dir("client");
    OK(add(c, "late", 2));
    recorder rec;
    rec_init(&rec);
    syncer_opts(&o, url, &rec);
    o.backoff_min_ms = 20; /* far below the server's retry-after */
    o.backoff_max_ms = 40;
    cvg_syncer *s;
    OK(cvg_syncer_start(c, &o, &s));
    int off = rec_await(&rec, 0, CVG_SYNCER_OFFLINE, 5000);
    cr_assert_geq(off, 0);
    rec_event e = rec_get(&rec, off);
    cr_assert_eq(e.e.rc, CVG_EAGAIN, "%s: %s", cvg_errname(e.e.rc), e.msg);
    cr_assert(strstr(e.msg, "700 ms") != NULL, "'%s'", e.msg);
    cr_assert_geq(e.e.next_ms, 700, "waits %u ms", e.e.next_ms);
    int next = rec_await(&rec, off + 1, CVG_SYNCER_CONNECTING, 5000);
    cr_assert_geq(next, 0);
    cr_assert_geq(rec_get(&rec, next).at - e.at, 690, "came back early");

    /* The place frees: the next try syncs. */
    cvg_syncer_stop(s1);
    int synced = rec_await(&rec, off, CVG_SYNCER_SYNCED, 10000);
    cr_assert_geq(synced, 0, "never synced once the place was free");
    cvg_syncer_stop(s);
    stop_server(&b);
    cr_assert_eq(get(b.r, "late"), 2);
    cvg_replica_close(first);
    cvg_replica_close(c);
    cvg_replica_close(b.r);
}

/* A port just bound and released: nothing listens there. */
static uint16_t
closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

Test(syncer, stop_is_prompt_while_offline, .timeout = 30)
{
    cvg_replica *c = open_dir("client");
    char url[64];
    url_of(closed_port(), url, sizeof url);
    recorder rec;
    rec_init(&rec);
    cvg_syncer_options o;
    syncer_opts(&o, url, &rec);
    o.backoff_min_ms = 20000;
    cvg_syncer *s;
    OK(cvg_syncer_start(c, &o, &s));
    int off = rec_await(&rec, 0, CVG_SYNCER_OFFLINE, 5000);
    cr_assert_geq(off, 0);
    rec_event e = rec_get(&rec, off);
    cr_assert_eq(e.e.rc, CVG_EIO);
    cr_assert_geq(e.e.next_ms, 10000);
    /* Offline, the app's writes never wait for the network. */
    uint64_t t0 = now_ms();
    OK(add_locked(s, c, "k", 1));
    cr_assert_lt(now_ms() - t0, 500);
    t0 = now_ms();
    cvg_syncer_stop(s);
    uint64_t took = now_ms() - t0;
    cr_assert_lt(took, 500, "stop took %llu ms", (unsigned long long)took);
    cr_assert_eq(get(c, "k"), 1);
    cvg_replica_close(c);
}

Test(syncer, stop_is_prompt_while_the_handshake_waits_on_a_silent_server,
     .timeout = 30)
{
    /* A server that accepts (the kernel's backlog does) and never says a
     * word: the connection waits in its handshake. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(lfd, 8), 0);
    socklen_t len = sizeof a;
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
    cvg_replica *c = open_dir("client");
    char url[64];
    url_of(ntohs(a.sin_port), url, sizeof url);
    recorder rec;
    rec_init(&rec);
    cvg_syncer_options o;
    syncer_opts(&o, url, &rec);
    o.net.timeout_ms = 20000;
    cvg_syncer *s;
    OK(cvg_syncer_start(c, &o, &s));
    cr_assert_geq(rec_await(&rec, 0, CVG_SYNCER_CONNECTING, 5000), 0);
    usleep(200 * 1000); /* connected, the handshake under way */
    cr_assert_eq(rec_await(&rec, 0, CVG_SYNCER_SYNCING, 0), -1);
    uint64_t t0 = now_ms();
    cvg_syncer_stop(s);
    uint64_t took = now_ms() - t0;
    /* A connection that holds no session yet is cut at once. */
    cr_assert_lt(took, 1000, "stop took %llu ms", (unsigned long long)took);
    int n = rec_count(&rec);
    rec_event last = rec_get(&rec, n - 1);
    cr_assert_eq(last.e.state, CVG_SYNCER_OFFLINE);
    cr_assert_eq(last.e.rc, CVG_EIO, "%s", cvg_errname(last.e.rc));
    close(lfd);
    cvg_replica_close(c);
}

Test(syncer, a_wrong_server_key_is_an_error_and_backed_off, .timeout = 30)
{
    server_box b;
    start(&b);
    char url[64];
    url_of(b.port, url, sizeof url);
    cvg_replica *c = open_dir("client");
    OK(add(c, "c", 1));
    uint8_t other[CVG_PUBLIC_KEY_BYTES], sk[CVG_SECRET_KEY_BYTES];
    OK(cvg_identity_generate(other, sk));
    recorder rec;
    rec_init(&rec);
    cvg_syncer_options o;
    syncer_opts(&o, url, &rec);
    o.net.server_key = other;
    o.backoff_min_ms = 50;
    o.jitter = CVG_SYNCER_JITTER_NONE;
    cvg_syncer *s;
    OK(cvg_syncer_start(c, &o, &s));
    memset(other, 0, sizeof other); /* copied by start */
    int e1 = rec_await(&rec, 0, CVG_SYNCER_ERROR, 5000);
    cr_assert_geq(e1, 0);
    int e2 = rec_await(&rec, e1 + 1, CVG_SYNCER_ERROR, 5000);
    cr_assert_geq(e2, 0);
    rec_event a1 = rec_get(&rec, e1), a2 = rec_get(&rec, e2);
    cr_assert_eq(a1.e.rc, CVG_EKEY, "%s", cvg_errname(a1.e.rc));
    cr_assert_eq(a1.e.next_ms, 50);
    cr_assert_eq(a2.e.next_ms, 100);
    cr_assert_gt(strlen(a1.msg), 0);
    cvg_syncer_stop(s);
    stop_server(&b);
    cr_assert_eq(get(b.r, "c"), 0);
    cvg_replica_close(c);
    cvg_replica_close(b.r);
}

typedef struct writer {
    cvg_syncer *s;
    cvg_replica *r;
    const char *own;
    int n;
    int rc;
    uint64_t done_at;
} writer;

static void *
write_many(void *arg)
{
    writer *w = arg;
    for (int i = 0; i < w->n && w->rc == CVG_OK; i++) {
        cvg_syncer_lock(w->s);
        w->rc = add(w->r, "shared", 1);
        if (w->rc == CVG_OK) {
            w->rc = add(w->r, w->own, 1);
        }
        cvg_syncer_unlock(w->s);
        cvg_syncer_notify(w->s);
        usleep(1000); /* spread the writes over many rounds */
    }
    w->done_at = now_ms();
    return NULL;
}

Test(syncer, apps_writing_under_the_lock_while_syncing_converge, .timeout = 60)
{
    enum { N = 150 };
    server_box b;
    start(&b);
    char url[64];
    url_of(b.port, url, sizeof url);
    cvg_replica *c[2] = {open_dir("a"), open_dir("b")};
    recorder rec[2];
    cvg_syncer *s[2];
    writer w[2];
    pthread_t th[2];
    const char *own[2] = {"a", "b"};
    for (int i = 0; i < 2; i++) {
        rec_init(&rec[i]);
        cvg_syncer_options o;
        syncer_opts(&o, url, &rec[i]);
        o.interval_ms = 40;
        o.debounce_ms = 10;
        OK(cvg_syncer_start(c[i], &o, &s[i]));
        w[i] = (writer){s[i], c[i], own[i], N, CVG_OK, 0};
    }
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(pthread_create(&th[i], NULL, write_many, &w[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(pthread_join(th[i], NULL), 0);
        cr_assert_eq(w[i].rc, CVG_OK, "writer %d: %s", i, cvg_errname(w[i].rc));
    }
    for (int i = 0; i < 2; i++) {
        cvg_syncer_sync_now(s[i]);
    }
    /* Each client's rounds go on until it has the other's writes too. */
    for (int i = 0; i < 2; i++) {
        int64_t v = await_value(s[i], c[i], "shared", 2 * N, 10000);
        cr_assert_eq(v, 2 * N, "client %d has %lld", i, (long long)v);
    }
    for (int i = 0; i < 2; i++) {
        /* Rounds ran while the app wrote, not only afterwards. */
        int during = 0;
        for (int j = 0; j < rec_count(&rec[i]); j++) {
            rec_event e = rec_get(&rec[i], j);
            if (e.e.state == CVG_SYNCER_SYNCED && e.e.ops_sent > 0 &&
                e.at < w[i].done_at) {
                during++;
            }
        }
        cr_assert_geq(during, 2, "client %d: %d rounds sent during writes", i,
                      during);
        cr_assert_eq(rec_await(&rec[i], 0, CVG_SYNCER_ERROR, 0), -1);
        cvg_syncer_stop(s[i]);
    }
    stop_server(&b);
    char *want = cvg_test_state(b.r);
    cr_assert_eq(get(b.r, "shared"), 2 * N);
    cr_assert_eq(get(b.r, "a"), N);
    cr_assert_eq(get(b.r, "b"), N);
    for (int i = 0; i < 2; i++) {
        char *have = cvg_test_state(c[i]);
        cr_assert_str_eq(have, want, "client %d differs", i);
        free(have);
        cvg_replica_close(c[i]);
    }
    free(want);
    cvg_replica_close(b.r);
}

/* A callback that calls stop on its own syncer: refused, not a hang. */
static void
stop_from_callback(void *ctx, const cvg_syncer_event *e)
{
    recorder *rc = ctx;
    on_status(ctx, e);
    cvg_syncer *self = atomic_load(&rc->self);
    if (self != NULL && e->state == CVG_SYNCER_OFFLINE) {
        cvg_syncer_stop(self);
        atomic_fetch_add(&rc->stops_returned, 1);
    }
}

Test(syncer, bad_arguments_and_misuse, .timeout = 30)
{
    cvg_replica *c = open_dir("client");
    cvg_syncer_options o;
    cvg_syncer_options_init(&o);
    cr_assert_eq(o.interval_ms, 10000);
    cr_assert_eq(o.debounce_ms, 200);
    cr_assert_eq(o.backoff_min_ms, 500);
    cr_assert_eq(o.backoff_max_ms, 30000);
    cvg_syncer *s = (cvg_syncer *)&o;
    cr_assert_eq(cvg_syncer_start(c, &o, &s), CVG_EINVAL); /* no url */
    cr_assert_null(s);
    o.url = "tcp://127.0.0.1:1";
    cr_assert_eq(cvg_syncer_start(NULL, &o, &s), CVG_EINVAL);
    cr_assert_eq(cvg_syncer_start(c, NULL, &s), CVG_EINVAL);
    cr_assert_eq(cvg_syncer_start(c, &o, NULL), CVG_EINVAL);
    const char *bad[] = {"http://x:1", "tcp://::1:80",  "tcp://host",
                         "tcp://:80",  "tcp://h:99999", "tcp://[::1]80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o.url = bad[i];
        cr_assert_eq(cvg_syncer_start(c, &o, &s), CVG_EINVAL, "%s", bad[i]);
    }
    o.url = "tcp://[::1]:1";
    o.backoff_min_ms = 5000;
    o.backoff_max_ms = 1000;
    cr_assert_eq(cvg_syncer_start(c, &o, &s), CVG_EINVAL);
    cvg_syncer_options_init(&o);
    o.url = "tcp://127.0.0.1:1";
    o.jitter = (cvg_syncer_jitter)7;
    cr_assert_eq(cvg_syncer_start(c, &o, &s), CVG_EINVAL);
    o.jitter = CVG_SYNCER_JITTER_FULL;
    o.net.version = 99;
    cr_assert_eq(cvg_syncer_start(c, &o, &s), CVG_EINVAL);
    o.net.version = 0; /* the defaults */
    o.version = 0;
    cr_assert_eq(cvg_syncer_start(c, &o, &s), CVG_EINVAL);
    /* NULL everywhere does nothing. */
    cvg_syncer_notify(NULL);
    cvg_syncer_sync_now(NULL);
    cvg_syncer_lock(NULL);
    cvg_syncer_unlock(NULL);
    cvg_syncer_stop(NULL);

    /* Stop from the syncer's own callback returns without stopping it. */
    recorder rec;
    rec_init(&rec);
    syncer_opts(&o, NULL, &rec);
    char url[64];
    url_of(closed_port(), url, sizeof url);
    o.url = url;
    o.on_status = stop_from_callback;
    o.backoff_min_ms = 10;
    o.backoff_max_ms = 10;
    OK(cvg_syncer_start(c, &o, &s));
    atomic_store(&rec.self, s);
    int from = rec_await(&rec, 0, CVG_SYNCER_OFFLINE, 5000);
    cr_assert_geq(from, 0);
    for (int i = 0; i < 100 && atomic_load(&rec.stops_returned) == 0; i++) {
        usleep(10 * 1000);
    }
    cr_assert_gt(atomic_load(&rec.stops_returned), 0);
    /* Still running: more rounds come. */
    int n = rec_count(&rec);
    cr_assert_geq(rec_await(&rec, n, CVG_SYNCER_OFFLINE, 5000), 0);
    cvg_syncer_stop(s);
    cvg_replica_close(c);
}
