/*
 * The background syncer: one live connection to a server, kept up from a
 * thread of its own, while the app goes on writing.
 *
 * How it works. The thread runs a libuv loop holding the connection (a
 * cvg__dial, client.c), three timers and a wake-up:
 *
 *   dial       resolve the url (without the replica's lock) and connect
 *              (CONNECTING). The session is opened live, so once both
 *              sides are caught up it stays open.
 *   turns      the connection takes the replica's lock for each turn of
 *              its work (a message in, a page out), never while it waits
 *              for the network, so the app waits at most one turn. After
 *              each turn the syncer looks at the session: caught up is
 *              SYNCED, anything else SYNCING, each reported when it
 *              changes. What the server commits arrives by itself (the
 *              server tells every live session, and we pull).
 *   debounce   a cvg_syncer_notify() starts a timer of debounce_ms; when
 *              it fires the session offers what was committed here (one
 *              push for a whole burst of commits).
 *   interval   every interval_ms the session offers what is new anyway,
 *              so commits the app did not notify go out too.
 *   retry      a connection that ends (cut, refused, timed out, refused by
 *              the server) is OFFLINE or ERROR, and the next dial waits a
 *              backoff that doubles from backoff_min_ms to backoff_max_ms,
 *              drawn with jitter; a notify does not cut it short, a
 *              sync_now does. A server that answered BUSY is not dialled
 *              again before the retry-after it gave (capped: the answer
 *              comes before the channel proves anything).
 *
 * Requests from other threads (notify, sync_now, stop) are flags under a
 * mutex and a uv_async_send(); the loop acts on them. Stop ends a session
 * at a page boundary (a connection still in its handshake is cut: it
 * holds nothing), closes the handles, and the loop returns.
 *
 * The replica's lock is the replica's own (cvg_replica_lock()), which the
 * app also takes around its own use of the replica (a handle is used by
 * one thread at a time) and group commits take around each group. The
 * status callback runs without it, so it may take the lock itself.
 */
#define _XOPEN_SOURCE 700
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcp.h"

struct cvg_syncer {
    cvg_replica *r;
    cvg_syncer_options o; /* url points at url below */
    char *url;
    char host[NI_MAXHOST];
    char port[6];
    uint8_t server_key[CVG_PUBLIC_KEY_BYTES];
    pthread_t th;
    pthread_mutex_t mu;   /* the requests below */
    bool stop;
    bool now;
    bool notified;
    bool closed; /* the wake-up handle is closing: send nothing to it */
    /* The loop's own. */
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t retry, debounce, interval;
    cvg__dial d;
    bool dialing;           /* d holds a connection (or its attempt) */
    bool stopping;          /* the loop is winding down */
    bool reported;          /* a state was reported for the session open now */
    bool was_done;          /* ... and it was SYNCED */
    bool synced;            /* this connection reached SYNCED once */
    cvg_session_stats base; /* the session's counts at the last SYNCED */
    uint32_t failures;
    char msg[256];
};

/* The syncer whose thread this is, so that stop() from its own status
 * callback can refuse to wait for itself. */
static _Thread_local const cvg_syncer *running;

static void
replica_lock(void *user)
{
    (void)cvg_replica_lock(((cvg_syncer *)user)->r);
}

static void
replica_unlock(void *user)
{
    cvg_replica_unlock(((cvg_syncer *)user)->r);
}

static void
emit(cvg_syncer *s, cvg_syncer_state state, int rc, const char *msg,
     const cvg_session_stats *st, uint32_t next_ms)
{
    if (s->o.on_status == NULL) {
        return;
    }
    cvg_syncer_event e;
    memset(&e, 0, sizeof e);
    e.state = state;
    e.rc = rc;
    e.message = msg != NULL ? msg : "";
    if (st != NULL) {
        e.ops_received = st->ops_received - s->base.ops_received;
        e.ops_sent = st->ops_sent - s->base.ops_sent;
    }
    e.failures = s->failures;
    e.next_ms = next_ms;
    s->o.on_status(s->o.ctx, &e);
}

/* The wait after the latest of s->failures failed connections in a
 * row. */
static uint32_t
backoff(const cvg_syncer *s)
{
    uint64_t b = s->o.backoff_min_ms;
    for (uint32_t i = 1; i < s->failures && b < s->o.backoff_max_ms; i++) {
        b *= 2;
    }
    uint32_t cap =
        (uint32_t)(b < s->o.backoff_max_ms ? b : s->o.backoff_max_ms);
    switch (s->o.jitter) {
    case CVG_SYNCER_JITTER_HALF:
        /* In [cap/2, cap]: delays still grow until the cap. */
        return cap / 2 + randombytes_uniform(cap - cap / 2 + 1);
    case CVG_SYNCER_JITTER_FULL:
        return randombytes_uniform(cap < UINT32_MAX ? cap + 1 : cap);
    default:
        return cap;
    }
}

/* ---- The connection -------------------------------------------------------*/

static void on_retry(uv_timer_t *t);

/* After each turn of the connection's work (without the lock): report
 * SYNCING or SYNCED when it changes. */
static void
on_turn(cvg__conn *c)
{
    cvg_syncer *s = c->o.user;
    if (c->s == NULL || c->closing || s->stopping) {
        return;
    }
    bool done = cvg_session_done(c->s);
    if (s->reported && done == s->was_done) {
        return;
    }
    s->reported = true;
    s->was_done = done;
    if (!done) {
        emit(s, CVG_SYNCER_SYNCING, CVG_OK, NULL, NULL, 0);
        return;
    }
    cvg_session_stats st;
    cvg_session_stats_get(c->s, &st, sizeof st);
    s->failures = 0;
    s->synced = true;
    emit(s, CVG_SYNCER_SYNCED, CVG_OK, NULL, &st, s->o.interval_ms);
    s->base = st;
}

/* The connection ended (or none could be made): report it and, unless
 * stopping, dial again after a backoff. */
static void
on_end(cvg__dial *d)
{
    cvg_syncer *s = d->user;
    cvg_session_stats st;
    int rc = cvg__dial_finish(d, &st);
    uint32_t retry_after = d->retry_after_ms; /* capped by the channel */
    s->dialing = false;
    uv_timer_stop(&s->debounce);
    uv_timer_stop(&s->interval);
    if (rc == CVG_OK) {
        /* Both sides were caught up and the server closed: it stops, or
         * restarts. Offline all the same, until a dial succeeds. */
        rc = CVG_EIO;
        snprintf(s->msg, sizeof s->msg, "%.200s closed the connection", s->url);
    } else if (rc == CVG_ENOMEM && d->msg[0] == '\0') {
        snprintf(s->msg, sizeof s->msg, "out of memory");
    } else {
        snprintf(s->msg, sizeof s->msg, "%s", d->msg);
    }
    if (s->stopping) {
        /* Stopped while connected and caught up: nothing failed. */
        if (s->synced && s->was_done && s->reported) {
            rc = CVG_OK;
            s->msg[0] = '\0';
        }
        emit(
            s,
            rc == CVG_OK || rc == CVG_EIO || rc == CVG_EAGAIN || rc == CVG_EBUSY
                ? CVG_SYNCER_OFFLINE
                : CVG_SYNCER_ERROR,
            rc, s->msg, NULL, 0);
        return;
    }
    if (s->failures < UINT32_MAX) {
        s->failures++;
    }
    uint32_t wait = backoff(s);
    if (rc == CVG_EAGAIN && retry_after > wait) {
        wait = retry_after; /* the server's own word on when to come back */
    }
    emit(s,
         rc == CVG_EIO || rc == CVG_EAGAIN || rc == CVG_EBUSY
             ? CVG_SYNCER_OFFLINE
             : CVG_SYNCER_ERROR,
         rc, s->msg, NULL, wait);
    if (!s->stopping) {
        /* From now, not from the loop's cached time before the
         * callback: the wait is at least next_ms. */
        uv_update_time(&s->loop);
        uv_timer_start(&s->retry, on_retry, wait, 0);
    }
}

static void
on_interval(uv_timer_t *t)
{
    cvg_syncer *s = t->data;
    if (s->dialing && s->d.c != NULL && !s->stopping) {
        replica_lock(s);
        cvg__conn_refresh(s->d.c);
        replica_unlock(s);
        on_turn(s->d.c);
    }
}

/* Connect: resolve without the lock, then dial the addresses in turn. */
static void
dial(cvg_syncer *s)
{
    if (s->stopping || s->dialing) {
        return;
    }
    emit(s, CVG_SYNCER_CONNECTING, CVG_OK, NULL, NULL, 0);
    if (s->stopping) {
        return; /* the callback asked for a stop */
    }
    memset(&s->d, 0, sizeof s->d);
    memset(&s->base, 0, sizeof s->base);
    s->reported = s->was_done = s->synced = false;
    s->d.co.lock = replica_lock;
    s->d.co.unlock = replica_unlock;
    s->d.co.on_turn = on_turn;
    s->d.co.user = s;
    uint32_t timeout = s->o.net.timeout_ms ? s->o.net.timeout_ms : 10000;
    /* Pings within half the idle clock, so a quiet live connection is
     * never taken for a dead one. */
    s->d.co.keepalive_ms = timeout / 2 > 0 ? timeout / 2 : 1;
    s->d.co.session.version = 0;
    s->d.on_end = on_end;
    s->d.user = s;
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    int e = getaddrinfo(s->host, s->port, &hints, &ai);
    if (e != 0) {
        /* Reported as a failed connection: offline, backed off. */
        snprintf(s->d.msg, sizeof s->d.msg, "cannot resolve %.200s: %s",
                 s->host, gai_strerror(e));
        s->failures = s->failures < UINT32_MAX ? s->failures + 1 : s->failures;
        uint32_t wait = backoff(s);
        snprintf(s->msg, sizeof s->msg, "%s", s->d.msg);
        emit(s, CVG_SYNCER_OFFLINE, CVG_EIO, s->msg, NULL, wait);
        if (!s->stopping) {
            /* From now, not from the loop's cached time before the
             * callback: the wait is at least next_ms. */
            uv_update_time(&s->loop);
            uv_timer_start(&s->retry, on_retry, wait, 0);
        }
        return;
    }
    s->d.addrs = ai;
    cvg_net_options net = s->o.net;
    net.session.live = true;
    if (net.session.version == 0) {
        cvg_session_options_init(&net.session);
        net.session.live = true;
    }
    net.session.version = CVG_SESSION_OPTIONS_VERSION;
    s->dialing = true;
    int rc = cvg__dial_start(&s->d, &s->loop, s->r, s->url, &net);
    if (!s->dialing) {
        return; /* no connection could be made: on_end ran already */
    }
    if (rc != CVG_OK && s->d.c == NULL) {
        on_end(&s->d);
        return;
    }
    uv_timer_start(&s->interval, on_interval, s->o.interval_ms,
                   s->o.interval_ms);
}

static void
on_retry(uv_timer_t *t)
{
    dial(t->data);
}

static void
on_debounce(uv_timer_t *t)
{
    on_interval(t);
}

/* ---- Requests from other threads ------------------------------------------*/

static void
close_handles(cvg_syncer *s)
{
    uv_close((uv_handle_t *)&s->retry, NULL);
    uv_close((uv_handle_t *)&s->debounce, NULL);
    uv_close((uv_handle_t *)&s->interval, NULL);
    uv_close((uv_handle_t *)&s->wake, NULL);
}

static void
on_wake(uv_async_t *a)
{
    cvg_syncer *s = a->data;
    pthread_mutex_lock(&s->mu);
    bool stop = s->stop, now = s->now, notified = s->notified;
    s->now = s->notified = false;
    if (stop) {
        s->closed = true;
    }
    pthread_mutex_unlock(&s->mu);
    if (s->stopping) {
        return;
    }
    if (stop) {
        s->stopping = true;
        close_handles(s);
        if (s->dialing && s->d.c != NULL) {
            replica_lock(s);
            if (s->d.c->s == NULL) {
                /* Still connecting or in the handshake: nothing to lose. */
                cvg__conn_abort(s->d.c, CVG_EIO, "the syncer stopped");
            } else {
                /* At the end of the pages under way, or now. */
                cvg__conn_finish(s->d.c);
            }
            replica_unlock(s);
        }
        return;
    }
    if (now) {
        if (s->dialing) {
            on_interval(&s->interval);
        } else {
            uv_timer_stop(&s->retry);
            dial(s);
        }
    } else if (notified && s->dialing &&
               !uv_is_active((uv_handle_t *)&s->debounce)) {
        /* The first notify starts the window; later ones join it, so a
         * steady stream of commits still goes out every debounce_ms. */
        uv_timer_start(&s->debounce, on_debounce, s->o.debounce_ms, 0);
    }
}

static void
ask(cvg_syncer *s, bool *flag)
{
    pthread_mutex_lock(&s->mu);
    *flag = true;
    if (!s->closed) {
        (void)uv_async_send(&s->wake);
    }
    pthread_mutex_unlock(&s->mu);
}

/* ---- The thread -----------------------------------------------------------*/

static void *
run(void *arg)
{
    cvg_syncer *s = arg;
    running = s;
    cvg__sigpipe g;
    cvg__sigpipe_block(&g);
    dial(s);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    cvg__sigpipe_unblock(&g);
    return NULL;
}

void
cvg_syncer_options_init(cvg_syncer_options *o)
{
    if (o != NULL) {
        memset(o, 0, sizeof *o);
        o->version = CVG_SYNCER_OPTIONS_VERSION;
        cvg_net_options_init(&o->net);
        o->interval_ms = 10000;
        o->debounce_ms = 200;
        o->backoff_min_ms = 500;
        o->backoff_max_ms = 30000;
        o->jitter = CVG_SYNCER_JITTER_HALF;
    }
}

static int
copy_options(cvg_syncer *s, const cvg_syncer_options *o)
{
    s->o = *o;
    if (s->o.net.version == 0) {
        cvg_net_options_init(&s->o.net);
    }
    if (s->o.net.version != CVG_NET_OPTIONS_VERSION ||
        (unsigned)s->o.jitter > CVG_SYNCER_JITTER_NONE) {
        return CVG_EINVAL;
    }
    if (o->net.server_key != NULL) {
        memcpy(s->server_key, o->net.server_key, sizeof s->server_key);
        s->o.net.server_key = s->server_key;
    }
    s->o.interval_ms = o->interval_ms ? o->interval_ms : 10000;
    s->o.debounce_ms = o->debounce_ms ? o->debounce_ms : 200;
    s->o.backoff_min_ms = o->backoff_min_ms ? o->backoff_min_ms : 500;
    s->o.backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : 30000;
    if (s->o.backoff_min_ms > s->o.backoff_max_ms) {
        return CVG_EINVAL;
    }
    if (strncmp(o->url, "tcp://", 6) != 0 ||
        !cvg__net_split(o->url + 6, s->host, sizeof s->host, s->port)) {
        return CVG_EINVAL;
    }
    s->url = strdup(o->url);
    s->o.url = s->url;
    return s->url != NULL ? CVG_OK : CVG_ENOMEM;
}

static void
destroy(cvg_syncer *s)
{
    pthread_mutex_destroy(&s->mu);
    free(s->url);
    free(s);
}

int
cvg_syncer_start(cvg_replica *r, const cvg_syncer_options *o, cvg_syncer **out)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (r == NULL || o == NULL || out == NULL ||
        o->version != CVG_SYNCER_OPTIONS_VERSION || o->url == NULL) {
        return CVG_EINVAL;
    }
    if (sodium_init() < 0) { /* for randombytes_uniform() */
        return CVG_EIO;
    }
    cvg_syncer *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return CVG_ENOMEM;
    }
    s->r = r;
    pthread_mutex_init(&s->mu, NULL);
    int rc = copy_options(s, o);
    if (rc != CVG_OK) {
        destroy(s);
        return rc;
    }
    if (uv_loop_init(&s->loop) != 0) {
        destroy(s);
        return CVG_EIO;
    }
    uv_async_init(&s->loop, &s->wake, on_wake);
    uv_timer_init(&s->loop, &s->retry);
    uv_timer_init(&s->loop, &s->debounce);
    uv_timer_init(&s->loop, &s->interval);
    s->wake.data = s->retry.data = s->debounce.data = s->interval.data = s;
    /* The app's signals go to the app's threads, not to this one. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    if (pthread_create(&s->th, NULL, run, s) != 0) {
        rc = CVG_ELIMIT;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != CVG_OK) {
        close_handles(s);
        uv_run(&s->loop, UV_RUN_DEFAULT);
        (void)uv_loop_close(&s->loop);
        destroy(s);
        return rc;
    }
    *out = s;
    return CVG_OK;
}

void
cvg_syncer_notify(cvg_syncer *s)
{
    if (s != NULL) {
        ask(s, &s->notified);
    }
}

void
cvg_syncer_sync_now(cvg_syncer *s)
{
    if (s != NULL) {
        ask(s, &s->now);
    }
}

void
cvg_syncer_lock(cvg_syncer *s)
{
    if (s != NULL) {
        (void)cvg_replica_lock(s->r);
    }
}

void
cvg_syncer_unlock(cvg_syncer *s)
{
    if (s != NULL) {
        cvg_replica_unlock(s->r);
    }
}

void
cvg_syncer_stop(cvg_syncer *s)
{
    if (s == NULL || running == s) {
        return;
    }
    ask(s, &s->stop);
    pthread_join(s->th, NULL);
    (void)uv_loop_close(&s->loop);
    destroy(s);
}
