/*
 * The server: a listening socket on a loop of its own, one connection per
 * client, and the connections it makes to peers (cvg_server_connect()),
 * all on the thread in cvg_server_run(), so the replica is never used by
 * two threads. cvg_server_stop() only wakes the loop (uv_async_send is
 * safe from any thread and from signal handlers); the loop then closes the
 * listener and returns once the last connection ends.
 *
 * Live: sessions are opened live, so a client or peer that asks for it
 * stays connected. A page that commits here marks the server dirty; once
 * per turn of the loop (a check handle, after the loop's I/O) every live
 * session is refreshed, so each commit reaches every connected replica
 * and a burst of commits in one turn costs one refresh each.
 *
 * Commits by another process on the same replica are not notified: a
 * timer marks the server dirty once a second, so they reach live sessions
 * within that.
 *
 * Peers: each cvg_server_connect() keeps one outgoing live connection,
 * made again after it ends, with a backoff that doubles from 500 ms to
 * 30 s (jitter: half to all of it), or longer if the peer answered BUSY
 * with a longer retry-after.
 *
 * Over the limit: a client past max_clients is accepted only to be
 * answered BUSY (channel.h: one 10-byte frame with the retry-after, in
 * place of the handshake, so no key is made or used for it) and closed.
 * The close waits for the write, then for the client to close its end
 * (we shut down ours and drain what it sent, so that closing with its
 * first message unread does not reset the connection and lose the
 * answer), at most BUSY_LINGER_MS: a client that never reads or never
 * closes holds nothing longer. At most BUSY_MAX answers are under way at
 * once; past that a connection is closed at once, as cut.
 */
#define _XOPEN_SOURCE 700
#include <netdb.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "tcp.h"

typedef struct dialer dialer;
typedef struct busy_conn busy_conn;

/* The longest a BUSY answer's connection stays open, and how many may be
 * open at once. */
#define BUSY_LINGER_MS 1000u
#define BUSY_MAX 256u
#define BUSY_RETRY_DEFAULT_MS 5000u

#define CVG__SERVER_POLL_MS 1000u

struct cvg_server {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t wake;
    uv_check_t sweep;
    uv_async_t notify;  /* cvg_server_notify() */
    uv_timer_t poll;    /* a look at the log now and then: other writers */
    bool dirty;         /* a page committed this turn, or the app's */
    dialer *dialers;    /* cvg_server_connect() */
    cvg_replica *r;
    cvg_server_options o;
    cvg_replica_id *allow; /* origins of o.allow */
    cvg__conn_options co;
    cvg__conn *conns;
    uint32_t n_conns;
    busy_conn *busy; /* BUSY answers under way */
    uint32_t n_busy;
    uint16_t port;
    bool ran;
    bool stopped;
    atomic_flag stop_sent; /* one wake-up only: later stops do nothing */
};

void
cvg_server_options_init(cvg_server_options *o)
{
    if (o != NULL) {
        memset(o, 0, sizeof *o);
        o->version = CVG_SERVER_OPTIONS_VERSION;
        o->max_clients = 64;
        o->handshake_timeout_ms = CVG__TCP_TIMEOUT_MS;
        o->idle_timeout_ms = 60000;
        cvg_session_options_init(&o->session);
        o->busy_retry_ms = BUSY_RETRY_DEFAULT_MS;
    }
}

/* An outgoing connection to a peer, kept up. */
struct dialer {
    cvg_server *s;
    char host[NI_MAXHOST];
    char port[6];
    cvg_replica_id pin;
    bool has_pin;
    cvg__conn_options co;
    cvg__conn *c;
    uv_connect_t req;
    uv_timer_t retry;
    uint32_t failures;
    dialer *next;
};

static void
conn_committed(cvg__conn *c)
{
    cvg_server *s = c->o.user;
    s->dirty = true;
}

static void
dialer_committed(cvg__conn *c)
{
    dialer *d = c->o.user;
    d->s->dirty = true;
}

static void
server_lock(void *user)
{
    (void)cvg_replica_lock(((cvg_server *)user)->r);
}

static void
server_unlock(void *user)
{
    cvg_replica_unlock(((cvg_server *)user)->r);
}

static void
dialer_lock(void *user)
{
    server_lock(((dialer *)user)->s);
}

static void
dialer_unlock(void *user)
{
    server_unlock(((dialer *)user)->s);
}

static void
on_notify(uv_async_t *a)
{
    cvg_server *s = a->data;
    s->dirty = true;
}

/* Another process may commit to the replica (a CLI write beside the
 * server): no notify tells us, so once a second every live session looks
 * at the log (one read transaction each when nothing is new). */
static void
on_poll(uv_timer_t *t)
{
    cvg_server *s = t->data;
    s->dirty = true;
}

static void
on_sweep(uv_check_t *h)
{
    cvg_server *s = h->data;
    if (!s->dirty) {
        return;
    }
    s->dirty = false;
    server_lock(s);
    for (cvg__conn *c = s->conns; c != NULL; c = c->next) {
        cvg__conn_refresh(c);
    }
    for (dialer *d = s->dialers; d != NULL; d = d->next) {
        if (d->c != NULL) {
            cvg__conn_refresh(d->c);
        }
    }
    server_unlock(s);
}

static void
conn_closed(cvg__conn *c)
{
    cvg_server *s = c->o.user;
    for (cvg__conn **p = &s->conns; *p != NULL; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    s->n_conns--;
    cvg__conn_free(c);
}

static void
refused_closed(uv_handle_t *h)
{
    free(h);
}

/* ---- BUSY answers ---------------------------------------------------------- */

struct busy_conn {
    uv_tcp_t tcp;
    uv_timer_t linger;
    uv_write_t write;
    uv_shutdown_t shutdown;
    cvg_server *s;
    int handles;
    bool closing;
    uint8_t frame[CVG__CHANNEL_BUSY_FRAME];
    uint8_t sink[256]; /* what the client sends, read and dropped */
    busy_conn *next;
};

static void
busy_handle_closed(uv_handle_t *h)
{
    busy_conn *b = h->data;
    if (--b->handles > 0) {
        return;
    }
    cvg_server *s = b->s;
    for (busy_conn **p = &s->busy; *p != NULL; p = &(*p)->next) {
        if (*p == b) {
            *p = b->next;
            break;
        }
    }
    s->n_busy--;
    free(b);
}

/* Pending write and shutdown requests are cancelled by the close, their
 * callbacks run before the handle's: b is freed after them. */
static void
busy_close(busy_conn *b)
{
    if (!b->closing) {
        b->closing = true;
        uv_close((uv_handle_t *)&b->tcp, busy_handle_closed);
        uv_close((uv_handle_t *)&b->linger, busy_handle_closed);
    }
}

static void
busy_linger_over(uv_timer_t *t)
{
    busy_close(t->data);
}

static void
busy_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    busy_conn *b = h->data;
    *buf = uv_buf_init((char *)b->sink, sizeof b->sink);
}

/* The client's bytes are dropped; its end (or an error) ends ours. */
static void
busy_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    if (n < 0) {
        busy_close(st->data);
    }
}

static void
busy_shut(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status; /* the read or the timer ends it */
}

static void
busy_written(uv_write_t *req, int status)
{
    busy_conn *b = req->data;
    if (b->closing) {
        return;
    }
    if (status < 0 ||
        uv_shutdown(&b->shutdown, (uv_stream_t *)&b->tcp, busy_shut) != 0) {
        busy_close(b);
    }
}

/* Over the limit: answer BUSY rather than cut the connection, so the
 * client learns at once, and when to come back. False if no answer could
 * be started (then the caller closes the connection as cut). */
static bool
answer_busy(cvg_server *s, uv_stream_t *l)
{
    if (s->n_busy >= BUSY_MAX) {
        return false;
    }
    busy_conn *b = calloc(1, sizeof *b);
    if (b == NULL) {
        return false;
    }
    b->s = s;
    uv_tcp_init(&s->loop, &b->tcp);
    uv_timer_init(&s->loop, &b->linger);
    b->tcp.data = b->linger.data = b->write.data = b->shutdown.data = b;
    b->handles = 2;
    b->next = s->busy;
    s->busy = b;
    s->n_busy++;
    uv_timer_start(&b->linger, busy_linger_over, BUSY_LINGER_MS, 0);
    if (uv_accept(l, (uv_stream_t *)&b->tcp) != 0) {
        busy_close(b);
        return true; /* nothing to answer: the accept took nothing */
    }
    cvg__channel_busy_frame(b->frame, s->o.busy_retry_ms);
    uv_buf_t buf = uv_buf_init((char *)b->frame, sizeof b->frame);
    if (uv_write(&b->write, (uv_stream_t *)&b->tcp, &buf, 1, busy_written) !=
            0 ||
        uv_read_start((uv_stream_t *)&b->tcp, busy_alloc, busy_read) != 0) {
        busy_close(b);
    }
    return true;
}

static void
on_connection(uv_stream_t *l, int status)
{
    cvg_server *s = l->data;
    if (status < 0 || s->stopped) {
        return;
    }
    if (s->n_conns >= s->o.max_clients) {
        if (answer_busy(s, l)) {
            return;
        }
        /* Too many answers under way (or no memory): accept only to
         * close at once, so the client learns now rather than at its
         * timeout. */
        uv_tcp_t *t = malloc(sizeof *t);
        if (t != NULL) {
            uv_tcp_init(&s->loop, t);
            (void)uv_accept(l, (uv_stream_t *)t);
            uv_close((uv_handle_t *)t, refused_closed);
        }
        return;
    }
    cvg__conn *c = cvg__conn_new(&s->loop, s->r, &s->co);
    if (c == NULL) {
        return;
    }
    c->next = s->conns;
    s->conns = c;
    s->n_conns++;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
        server_lock(s);
        cvg__conn_abort(c, CVG_EIO, "accept failed");
        server_unlock(s);
        return;
    }
    cvg__conn_start(c);
}

static void
on_wake(uv_async_t *a)
{
    cvg_server *s = a->data;
    if (!s->stopped) {
        s->stopped = true;
        server_lock(s);
        uv_close((uv_handle_t *)&s->listener, NULL);
        uv_close((uv_handle_t *)&s->wake, NULL);
        uv_close((uv_handle_t *)&s->sweep, NULL);
        uv_close((uv_handle_t *)&s->notify, NULL);
        uv_close((uv_handle_t *)&s->poll, NULL);
        for (busy_conn *b = s->busy; b != NULL; b = b->next) {
            busy_close(b);
        }
        for (dialer *d = s->dialers; d != NULL; d = d->next) {
            uv_close((uv_handle_t *)&d->retry, NULL);
            if (d->c != NULL) {
                cvg__conn_finish(d->c);
            }
        }
        /* Sessions under way end once done: live ones at once if they
         * are caught up, else at the end of the pages under way. */
        for (cvg__conn *c = s->conns; c != NULL; c = c->next) {
            cvg__conn_finish(c);
        }
        server_unlock(s);
    }
}

/* ---- Peers --------------------------------------------------------------- */

static void dial(dialer *d);

static void
on_retry(uv_timer_t *t)
{
    dial(t->data);
}

static void
dialer_closed(cvg__conn *c)
{
    dialer *d = c->o.user;
    bool ok = cvg__conn_result(c) == CVG_OK && c->s != NULL;
    uint32_t busy_ms = c->retry_after_ms;
    cvg__conn_free(c);
    d->c = NULL;
    if (d->s->stopped) {
        return;
    }
    d->failures = ok ? 0 : d->failures + 1;
    uint64_t b = 500;
    for (uint32_t i = 1; i < d->failures && b < 30000; i++) {
        b *= 2;
    }
    uint32_t cap = (uint32_t)(b < 30000 ? b : 30000);
    uint32_t wait = cap / 2 + randombytes_uniform(cap - cap / 2 + 1);
    if (busy_ms > wait) {
        wait = busy_ms; /* the peer answered BUSY (capped) */
    }
    uv_timer_start(&d->retry, on_retry, wait, 0);
}

static void
dialer_connected(uv_connect_t *req, int status)
{
    dialer *d = req->data;
    if (status == UV_ECANCELED || d->c == NULL) {
        return;
    }
    if (status < 0) {
        server_lock(d->s);
        cvg__conn_abort(d->c, CVG_EIO, "connect failed");
        server_unlock(d->s);
        return;
    }
    cvg__conn_start(d->c);
}

static void
dial(dialer *d)
{
    cvg_server *s = d->s;
    if (s->stopped || d->c != NULL) {
        return;
    }
    struct addrinfo *ai;
    server_lock(s);
    int rc = cvg__net_resolve(&s->loop, s->r, d->host, d->port, false, &ai);
    if (rc != CVG_OK) {
        server_unlock(s);
        uv_timer_start(&d->retry, on_retry, 30000, 0);
        return;
    }
    d->c = cvg__conn_new(&s->loop, s->r, &d->co);
    if (d->c != NULL) {
        d->req.data = d;
        if (uv_tcp_connect(&d->req, &d->c->tcp, ai->ai_addr, dialer_connected) <
            0) {
            cvg__conn_abort(d->c, CVG_EIO, "connect failed");
        }
    } else {
        uv_timer_start(&d->retry, on_retry, 30000, 0);
    }
    server_unlock(s);
    uv_freeaddrinfo(ai);
}

int
cvg_server_connect(cvg_server *s, const char *url, const uint8_t *peer_key)
{
    if (s == NULL || url == NULL) {
        return CVG_EINVAL;
    }
    if (s->ran) {
        return CVG_EMISUSE;
    }
    dialer *d = calloc(1, sizeof *d);
    if (d == NULL) {
        return CVG_ENOMEM;
    }
    if (strncmp(url, "tcp://", 6) != 0 ||
        !cvg__net_split(url + 6, d->host, sizeof d->host, d->port)) {
        free(d);
        return cvg__sync_fail(s->r, CVG_EINVAL, "'%s' is not tcp://HOST:PORT",
                              url);
    }
    d->s = s;
    d->co = s->co;
    d->co.initiator = true;
    d->co.on_closed = dialer_closed;
    d->co.on_commit = dialer_committed;
    d->co.keepalive_ms = CVG__TCP_KEEPALIVE_MS;
    d->co.user = d;
    d->co.lock = dialer_lock;
    d->co.unlock = dialer_unlock;
    d->co.allow = NULL;
    d->co.allow_count = 0;
    if (peer_key != NULL) {
        cvg_identity_origin(peer_key, &d->pin);
        d->has_pin = true;
        d->co.pin = &d->pin;
    }
    uv_timer_init(&s->loop, &d->retry);
    d->retry.data = d;
    d->next = s->dialers;
    s->dialers = d;
    return CVG_OK;
}

static int
bind_listen(cvg_server *s, const char *listen)
{
    char host[NI_MAXHOST], port[6];
    if (!cvg__net_split(listen, host, sizeof host, port)) {
        return cvg__sync_fail(s->r, CVG_EINVAL, "'%s' is not HOST:PORT",
                              listen);
    }
    struct addrinfo *ai;
    int rc = cvg__net_resolve(&s->loop, s->r, host, port, true, &ai);
    if (rc != CVG_OK) {
        return rc;
    }
    int e = uv_tcp_bind(&s->listener, ai->ai_addr, 0);
    uv_freeaddrinfo(ai);
    if (e == 0) {
        e = uv_listen((uv_stream_t *)&s->listener, 128, on_connection);
    }
    if (e != 0) {
        return cvg__sync_fail(s->r, CVG_EIO, "cannot listen on %s: %s", listen,
                              uv_strerror(e));
    }
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len);
    s->port =
        ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                       : ((struct sockaddr_in *)&ss)->sin_port);
    return CVG_OK;
}

/* The part of the options a version 1 caller has: the fields before
 * busy_retry_ms. */
#define SERVER_OPTIONS_V1_SIZE offsetof(cvg_server_options, busy_retry_ms)

static int
copy_options(cvg_server *s, const cvg_server_options *o)
{
    memset(&s->o, 0, sizeof s->o);
    memcpy(&s->o, o, o->version == 1 ? SERVER_OPTIONS_V1_SIZE : sizeof s->o);
    s->o.version = CVG_SERVER_OPTIONS_VERSION;
    if (s->o.busy_retry_ms == 0) {
        s->o.busy_retry_ms = BUSY_RETRY_DEFAULT_MS;
    }
    if (s->o.max_clients == 0) {
        s->o.max_clients = 64;
    }
    if (s->o.session.version == 0) {
        cvg_session_options_init(&s->o.session);
    }
    if (o->allow != NULL && o->allow_count > 0) {
        s->allow = calloc(o->allow_count, sizeof *s->allow);
        if (s->allow == NULL) {
            return CVG_ENOMEM;
        }
        for (size_t i = 0; i < o->allow_count; i++) {
            cvg_identity_origin(o->allow[i], &s->allow[i]);
        }
    } else {
        s->o.allow_count = 0;
    }
    s->o.allow = NULL; /* not kept: the origins are */
    s->co.initiator = false;
    s->co.session = s->o.session;
    s->co.handshake_timeout_ms = s->o.handshake_timeout_ms;
    s->co.idle_timeout_ms = s->o.idle_timeout_ms ? s->o.idle_timeout_ms : 60000;
    s->co.allow = s->allow;
    s->co.allow_count = s->o.allow_count;
    s->co.session.version = CVG_SESSION_OPTIONS_VERSION;
    s->co.session.live = true; /* for clients that ask */
    s->co.on_closed = conn_closed;
    s->co.on_commit = conn_committed;
    s->co.lock = server_lock;
    s->co.unlock = server_unlock;
    s->co.user = s;
    return CVG_OK;
}

int
cvg_server_open(cvg_replica *r, const char *listen, const cvg_server_options *o,
                cvg_server **out)
{
    cvg_server_options def;
    if (o == NULL) {
        cvg_server_options_init(&def);
        o = &def;
    }
    if (out != NULL) {
        *out = NULL;
    }
    if (r == NULL || listen == NULL || out == NULL ||
        (o->version != 1 && o->version != CVG_SERVER_OPTIONS_VERSION) ||
        (o->allow == NULL && o->allow_count > 0)) {
        return CVG_EINVAL;
    }
    cvg_server *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return CVG_ENOMEM;
    }
    s->r = r;
    atomic_flag_clear(&s->stop_sent);
    int rc = copy_options(s, o);
    if (rc != CVG_OK) {
        free(s);
        return rc;
    }
    if (uv_loop_init(&s->loop) != 0) {
        free(s->allow);
        free(s);
        return cvg__sync_fail(r, CVG_EIO, "cannot start an event loop");
    }
    uv_tcp_init(&s->loop, &s->listener);
    uv_async_init(&s->loop, &s->wake, on_wake);
    uv_check_init(&s->loop, &s->sweep);
    uv_check_start(&s->sweep, on_sweep);
    uv_async_init(&s->loop, &s->notify, on_notify);
    s->notify.data = s;
    uv_timer_init(&s->loop, &s->poll);
    s->poll.data = s;
    uv_timer_start(&s->poll, on_poll, CVG__SERVER_POLL_MS, CVG__SERVER_POLL_MS);
    s->listener.data = s;
    s->wake.data = s;
    s->sweep.data = s;
    rc = bind_listen(s, listen);
    if (rc != CVG_OK) {
        s->ran = true; /* close must not run it */
        on_wake(&s->wake);
        cvg_server_close(s);
        return rc;
    }
    *out = s;
    return CVG_OK;
}

uint16_t
cvg_server_port(const cvg_server *s)
{
    return s != NULL ? s->port : 0;
}

int
cvg_server_run(cvg_server *s)
{
    if (s == NULL) {
        return CVG_EINVAL;
    }
    if (s->ran) {
        return CVG_EMISUSE;
    }
    s->ran = true;
    cvg__sigpipe g;
    cvg__sigpipe_block(&g);
    for (dialer *d = s->dialers; d != NULL; d = d->next) {
        dial(d);
    }
    uv_run(&s->loop, UV_RUN_DEFAULT);
    cvg__sigpipe_unblock(&g);
    return CVG_OK;
}

void
cvg_server_stop(cvg_server *s)
{
    /* Lock-free, so safe in a signal handler; after the first stop the
     * async handle may be closing, and must not be sent to again. */
    if (s != NULL && !atomic_flag_test_and_set(&s->stop_sent)) {
        (void)uv_async_send(&s->wake);
    }
}

void
cvg_server_close(cvg_server *s)
{
    if (s == NULL) {
        return;
    }
    /* Not run, or stopped: close what is left and let the callbacks of
     * the closes run. */
    on_wake(&s->wake);
    server_lock(s);
    for (cvg__conn *c = s->conns; c != NULL; c = c->next) {
        cvg__conn_abort(c, CVG_EIO, "the server closed");
    }
    for (dialer *d = s->dialers; d != NULL; d = d->next) {
        if (d->c != NULL) {
            cvg__conn_abort(d->c, CVG_EIO, "the server closed");
        }
    }
    server_unlock(s);
    cvg__sigpipe g;
    cvg__sigpipe_block(&g);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    cvg__sigpipe_unblock(&g);
    (void)uv_loop_close(&s->loop);
    while (s->dialers != NULL) {
        dialer *d = s->dialers;
        s->dialers = d->next;
        free(d);
    }
    free(s->allow);
    free(s);
}

void
cvg_server_lock(cvg_server *s)
{
    if (s != NULL) {
        server_lock(s);
    }
}

void
cvg_server_unlock(cvg_server *s)
{
    if (s != NULL) {
        server_unlock(s);
    }
}

void
cvg_server_notify(cvg_server *s)
{
    if (s != NULL) {
        (void)uv_async_send(&s->notify);
    }
}
