/*
 * The server: a listening socket on a loop of its own, one connection per
 * client, all on the thread in cvg_server_run(), so the replica is never
 * used by two threads. cvg_server_stop() only wakes the loop
 * (uv_async_send is safe from any thread and from signal handlers); the
 * loop then closes the listener and returns once the last client ends.
 */
#define _XOPEN_SOURCE 700
#include <netdb.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "tcp.h"

struct cvg_server {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t wake;
    cvg_replica *r;
    cvg_server_options o;
    cvg_replica_id *allow; /* origins of o.allow */
    cvg__conn_options co;
    cvg__conn *conns;
    uint32_t n_conns;
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
    }
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

static void
on_connection(uv_stream_t *l, int status)
{
    cvg_server *s = l->data;
    if (status < 0 || s->stopped) {
        return;
    }
    if (s->n_conns >= s->o.max_clients) {
        /* Over the limit: accept only to close at once, so the client
         * learns now rather than at its timeout. */
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
        cvg__conn_abort(c, CVG_EIO, "accept failed");
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
        uv_close((uv_handle_t *)&s->listener, NULL);
        uv_close((uv_handle_t *)&s->wake, NULL);
    }
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

static int
copy_options(cvg_server *s, const cvg_server_options *o)
{
    s->o = *o;
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
    s->co.on_closed = conn_closed;
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
        o->version != CVG_SERVER_OPTIONS_VERSION ||
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
    s->listener.data = s;
    s->wake.data = s;
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
    for (cvg__conn *c = s->conns; c != NULL; c = c->next) {
        cvg__conn_abort(c, CVG_EIO, "the server closed");
    }
    cvg__sigpipe g;
    cvg__sigpipe_block(&g);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    cvg__sigpipe_unblock(&g);
    (void)uv_loop_close(&s->loop);
    free(s->allow);
    free(s);
}
