/*
 * cvg_net_sync(): one blocking sync with a server, on a loop of its own so
 * that it shares nothing with other threads. Each address the name
 * resolves to is tried in turn until one connects.
 *
 * A server over its limit answers BUSY (channel.h) instead of its
 * handshake: the sync fails with CVG_EAGAIN, and the dial keeps the
 * retry-after (capped) for a caller that schedules its next try. The
 * other addresses are not tried: a server that answers is the one.
 */
#define _XOPEN_SOURCE 700
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcp.h"

bool
cvg__net_split(const char *s, char *host, size_t host_cap, char *port)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':') {
            return false;
        }
        h = s + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL) {
            return false; /* a bare IPv6 address needs brackets */
        }
        hl = (size_t)(colon - s);
    }
    const char *p = colon + 1;
    size_t pl = strlen(p);
    if (hl == 0 || hl >= host_cap || pl == 0 || pl > 5 ||
        strspn(p, "0123456789") != pl || atoi(p) > 65535) {
        return false;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, p, pl + 1);
    return true;
}

int
cvg__net_resolve(uv_loop_t *loop, cvg_replica *r, const char *host,
                 const char *port, bool passive, struct addrinfo **out)
{
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    uv_getaddrinfo_t req;
    /* No callback: resolved on this thread, before the loop runs. */
    int e = uv_getaddrinfo(loop, &req, NULL, host, port, &hints);
    if (e < 0) {
        return cvg__sync_fail(r, CVG_EIO, "cannot resolve %s: %s", host,
                              uv_strerror(e));
    }
    *out = req.addrinfo;
    return CVG_OK;
}

typedef cvg__dial client;

static void try_next(client *cl);

/* The replica's lock, for a dial that shares its replica (a syncer's). */
static void
dial_lock(client *cl)
{
    if (cl->co.lock != NULL) {
        cl->co.lock(cl->co.user);
    }
}

static void
dial_unlock(client *cl)
{
    if (cl->co.unlock != NULL) {
        cl->co.unlock(cl->co.user);
    }
}

static void
on_connected(uv_connect_t *req, int status)
{
    client *cl = req->data;
    if (status == UV_ECANCELED) {
        return; /* the handshake's clock ran out first */
    }
    dial_lock(cl);
    if (status < 0) {
        cl->last_err = status;
        cvg__conn_abort(cl->c, CVG_EIO, "connect failed");
        /* on_closed tries the next address */
    } else {
        cvg__conn_start(cl->c);
    }
    dial_unlock(cl);
}

static void
on_closed(cvg__conn *c)
{
    client *cl = c->o.dial;
    /* A refused connection goes on to the next address; anything later
     * is the end. */
    if (c->s == NULL && cl->last_err != 0 && cl->next != NULL) {
        cvg__conn_free(c);
        cl->c = NULL;
        try_next(cl);
    } else if (cl->on_end != NULL) {
        cl->on_end(cl);
    }
}

static void
try_next(client *cl)
{
    struct addrinfo *a = cl->next;
    cl->next = a->ai_next;
    cl->last_err = 0;
    cl->c = cvg__conn_new(cl->loop, cl->r, &cl->co);
    if (cl->c == NULL) {
        if (cl->on_end != NULL) {
            cl->on_end(cl);
        }
        return;
    }
    cl->req.data = cl;
    int e = uv_tcp_connect(&cl->req, &cl->c->tcp, a->ai_addr, on_connected);
    if (e < 0) {
        cl->last_err = e;
        dial_lock(cl);
        cvg__conn_abort(cl->c, CVG_EIO, "connect failed");
        dial_unlock(cl);
    }
}

void
cvg_net_options_init(cvg_net_options *o)
{
    if (o != NULL) {
        memset(o, 0, sizeof *o);
        o->version = CVG_NET_OPTIONS_VERSION;
        o->timeout_ms = CVG__TCP_TIMEOUT_MS;
        cvg_session_options_init(&o->session);
    }
}

int
cvg__dial_start(cvg__dial *cl, uv_loop_t *loop, cvg_replica *r, const char *url,
                const cvg_net_options *o)
{
    char host[NI_MAXHOST], port[6];
    cl->retry_after_ms = 0;
    if (strncmp(url, "tcp://", 6) != 0 ||
        !cvg__net_split(url + 6, host, sizeof host, port)) {
        dial_lock(cl);
        int rc =
            cvg__sync_fail(r, CVG_EINVAL, "'%s' is not tcp://HOST:PORT", url);
        dial_unlock(cl);
        return rc;
    }
    cl->loop = loop;
    cl->r = r;
    cl->url = url;
    cl->co.initiator = true;
    cl->co.session = o->session;
    if (cl->co.session.version == 0) {
        cvg_session_options_init(&cl->co.session);
    }
    cl->co.handshake_timeout_ms = o->timeout_ms;
    if (cl->co.idle_timeout_ms == 0) {
        cl->co.idle_timeout_ms = o->timeout_ms;
    }
    if (o->server_key != NULL) {
        cvg_identity_origin(o->server_key, &cl->pin);
        cl->co.pin = &cl->pin;
    }
    cl->co.on_closed = on_closed;
    cl->co.dial = cl;
    if (cl->co.user == NULL) {
        cl->co.user = cl;
    }
    if (cl->addrs == NULL) {
        dial_lock(cl);
        int rc = cvg__net_resolve(loop, r, host, port, false, &cl->addrs);
        dial_unlock(cl);
        if (rc != CVG_OK) {
            return rc;
        }
    }
    cl->next = cl->addrs;
    try_next(cl);
    return cl->c == NULL ? CVG_ENOMEM : CVG_OK;
}

int
cvg__dial_finish(cvg__dial *cl, cvg_session_stats *st)
{
    int rc = CVG_ENOMEM;
    cl->msg[0] = '\0';
    if (cl->c != NULL) {
        dial_lock(cl);
        rc = cvg__conn_result(cl->c);
        if (cl->last_err != 0) {
            rc = cvg__sync_fail(cl->r, CVG_EIO, "cannot connect to %s: %s",
                                cl->url, uv_strerror(cl->last_err));
        } else if (rc == CVG_EAGAIN) {
            cl->retry_after_ms = cl->c->retry_after_ms;
            rc = cvg__sync_fail(cl->r, CVG_EAGAIN,
                                "%s is busy: retry after %u ms", cl->url,
                                (unsigned)cl->retry_after_ms);
        } else if (rc == CVG_OK &&
                   !(cl->c->s != NULL && cvg_session_done(cl->c->s))) {
            rc = cvg__sync_fail(cl->r, CVG_EIO,
                                "%s: the connection ended early", cl->url);
        }
        if (rc != CVG_OK) {
            snprintf(cl->msg, sizeof cl->msg, "%s", cvg_replica_errmsg(cl->r));
        }
        dial_unlock(cl);
        if (st != NULL) {
            *st = cl->c->stats;
        }
        cvg__conn_free(cl->c);
        cl->c = NULL;
    }
    uv_freeaddrinfo(cl->addrs);
    cl->addrs = NULL;
    return rc;
}

int
cvg_net_sync(cvg_replica *r, const char *url, const cvg_net_options *o,
             cvg_session_stats *stats_out)
{
    cvg_net_options def;
    if (o == NULL) {
        cvg_net_options_init(&def);
        o = &def;
    }
    if (stats_out != NULL) {
        memset(stats_out, 0, sizeof *stats_out);
    }
    if (r == NULL || url == NULL || o->version != CVG_NET_OPTIONS_VERSION) {
        return CVG_EINVAL;
    }
    client cl;
    memset(&cl, 0, sizeof cl);
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        return cvg__sync_fail(r, CVG_EIO, "cannot start an event loop");
    }
    cvg__sigpipe g;
    cvg__sigpipe_block(&g);
    int rc = cvg__dial_start(&cl, &loop, r, url, o);
    if (rc == CVG_OK) {
        /* Bounded: every handle closes by the connection's clock. */
        uv_run(&loop, UV_RUN_DEFAULT);
        rc = cvg__dial_finish(&cl, stats_out);
    } else {
        uv_run(&loop, UV_RUN_DEFAULT);
        (void)cvg__dial_finish(&cl, NULL);
    }
    uv_run(&loop, UV_RUN_DEFAULT); /* nothing is left; for safety */
    cvg__sigpipe_unblock(&g);
    (void)uv_loop_close(&loop);
    return rc;
}
