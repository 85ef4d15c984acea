/*
 * A connection: bytes from the socket go to the channel, whole messages
 * from the channel to the session, the session's messages back through
 * the channel to the socket. Every step is non-blocking and runs on the
 * loop's thread.
 *
 * Keys: the channel's static X25519 key is made fresh for each connection
 * (crypto_box_keypair) and wiped once the channel holds it. It identifies
 * nothing: the peer's identity is proven by the session, whose HELLO
 * carries the replica's Ed25519 key and whose PROVE signs the channel's
 * handshake hash (passed as the session's channel_binding), so a proof
 * made for one connection is worthless on another.
 *
 * Ending: a side whose session is done (or failed, after its ERROR is
 * queued) sends the channel's authenticated close. A clean end is both
 * closes exchanged and every byte written; a connection cut before, a
 * channel error or a timeout (the handshake's, then each wait's) ends it
 * at once. Only whole application messages reach the session, so a cut
 * never leaves half a page applied.
 */
#define _XOPEN_SOURCE 700
#include "tcp.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct write_req {
    uv_write_t req;
    cvg__conn *c;
    size_t len;
    uint8_t data[];
} write_req;

static void pump(cvg__conn *c);
static void resume(cvg__conn *c);

/* The replica's lock, for a connection that shares it (a syncer's). */
static void
lock(cvg__conn *c)
{
    if (c->o.lock != NULL) {
        c->o.lock(c->o.user);
    }
}

static void
unlock(cvg__conn *c)
{
    if (c->o.unlock != NULL) {
        c->o.unlock(c->o.user);
    }
}

/* After a callback's work, outside the lock: tell the owner. */
static void
after_turn(cvg__conn *c)
{
    if (c->committed) {
        c->committed = false;
        if (c->o.on_commit != NULL) {
            c->o.on_commit(c);
        }
    }
    if (c->o.on_turn != NULL) {
        c->o.on_turn(c);
    }
}

static void
handle_closed(uv_handle_t *h)
{
    cvg__conn *c = h->data;
    if (--c->handles == 0 && c->o.on_closed != NULL) {
        c->o.on_closed(c);
    }
}

static void
close_now(cvg__conn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    if (c->s != NULL) {
        cvg_session_stats_get(c->s, &c->stats, sizeof c->stats);
    }
    uv_close((uv_handle_t *)&c->tcp, handle_closed);
    uv_close((uv_handle_t *)&c->timer, handle_closed);
    uv_close((uv_handle_t *)&c->ping, handle_closed);
}

static void
fail(cvg__conn *c, int rc, const char *why)
{
    if (c->rc == CVG_OK) {
        c->rc = rc;
        if (c->s == NULL || cvg_session_error(c->s) == CVG_OK) {
            cvg__sync_fail(c->r, rc, "%s", why);
        }
    }
}

void
cvg__conn_abort(cvg__conn *c, int rc, const char *why)
{
    fail(c, rc, why);
    close_now(c);
}

int
cvg__conn_result(const cvg__conn *c)
{
    int src = c->s != NULL ? cvg_session_error(c->s) : CVG_OK;
    return src != CVG_OK ? src : c->rc;
}

/* Close once everything queued is written (and, for a clean end, the peer
 * has closed too). */
static void
maybe_end(cvg__conn *c)
{
    if (c->ending && c->queued == 0 &&
        (!c->wait_peer || cvg__channel_peer_closed(&c->ch))) {
        close_now(c);
    }
}

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base != NULL ? suggested : 0;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf);

static void
set_reading(cvg__conn *c, bool on)
{
    if (c->closing || on == c->reading) {
        return;
    }
    c->reading = on;
    if (on) {
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    } else {
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
}

static void
on_timeout(uv_timer_t *t)
{
    cvg__conn *c = t->data;
    lock(c);
    cvg__conn_abort(c, CVG_EIO,
                    c->s == NULL ? "the channel's handshake timed out"
                                 : "the peer was silent past the timeout");
    unlock(c);
    after_turn(c);
}

static void flush(cvg__conn *c);

/* Nothing sent for keepalive_ms: an empty message, which the peer's
 * connection answers and never hands to its session. */
static void
on_ping(uv_timer_t *t)
{
    cvg__conn *c = t->data;
    if (!c->closing && !c->ending && c->s != NULL &&
        cvg__channel_send(&c->ch, NULL, 0) == CVG_OK) {
        flush(c);
    }
}

static void
arm_timer(cvg__conn *c)
{
    uint32_t ms =
        c->s == NULL ? c->o.handshake_timeout_ms : c->o.idle_timeout_ms;
    uv_timer_start(&c->timer, on_timeout, ms, 0);
}

static void
on_written(uv_write_t *req, int status)
{
    write_req *w = (write_req *)req;
    cvg__conn *c = w->c;
    c->queued -= w->len;
    free(w);
    if (c->closing) {
        return;
    }
    lock(c);
    if (status < 0) {
        cvg__conn_abort(c, CVG_EIO, uv_strerror(status));
    } else {
        if (c->queued <= CVG__TCP_WRITE_HIGH / 2 &&
            (!c->ending || c->wait_peer)) {
            resume(c);
        }
        if (!c->closing) {
            maybe_end(c);
        }
    }
    unlock(c);
    after_turn(c);
}

/* Hand the channel's pending bytes to the socket (copied: the channel's
 * view lasts only until its next call). */
static void
flush(cvg__conn *c)
{
    cvg_bytes out;
    while (!c->closing && cvg__channel_output(&c->ch, &out) == CVG_OK) {
        write_req *w = malloc(sizeof *w + out.len);
        if (w == NULL) {
            cvg__conn_abort(c, CVG_ENOMEM, "no memory to send");
            return;
        }
        memcpy(w->data, out.data, out.len);
        w->c = c;
        w->len = out.len;
        uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)out.len);
        int e = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
        if (e < 0) {
            free(w);
            cvg__conn_abort(c, CVG_EIO, uv_strerror(e));
            return;
        }
        c->queued += out.len;
        if (c->o.keepalive_ms > 0 && c->o.initiator) {
            uv_timer_start(&c->ping, on_ping, c->o.keepalive_ms, 0);
        }
    }
    if (c->queued > CVG__TCP_WRITE_HIGH) {
        set_reading(c, false);
    }
}

/* Send the channel's close and stop taking input; @p wait_peer for a
 * clean end, where the peer's close is awaited too. */
static void
end(cvg__conn *c, bool wait_peer)
{
    if (!c->ending) {
        c->ending = true;
        c->wait_peer = wait_peer;
        if (cvg__channel_state_of(&c->ch) == CVG__CHANNEL_OPEN) {
            (void)cvg__channel_close(&c->ch);
        }
    }
    flush(c);
    maybe_end(c);
}

static bool
peer_allowed(cvg__conn *c, const cvg_replica_id *peer)
{
    if (c->o.pin != NULL) {
        return memcmp(peer, c->o.pin, sizeof *peer) == 0;
    }
    if (c->o.allow_count == 0) {
        return true;
    }
    for (size_t i = 0; i < c->o.allow_count; i++) {
        if (memcmp(peer, &c->o.allow[i], sizeof *peer) == 0) {
            return true;
        }
    }
    return false;
}

/* The peer's id, once its HELLO is in, must pass the pin or the allow
 * list before the session says anything more. */
static bool
check_peer(cvg__conn *c)
{
    if (c->checked || c->s == NULL) {
        return true;
    }
    cvg_session_stats st;
    cvg_session_stats_get(c->s, &st, sizeof st);
    static const cvg_replica_id zero;
    if (memcmp(&st.peer, &zero, sizeof zero) == 0) {
        return true;
    }
    c->checked = true;
    if (peer_allowed(c, &st.peer)) {
        return true;
    }
    if (c->o.pin != NULL) {
        fail(c, CVG_EKEY, "the server's key is not the pinned one");
    } else {
        fail(c, CVG_EACCES, "the peer's key is not on the allow list");
    }
    end(c, false);
    return false;
}

static void
open_session(cvg__conn *c)
{
    uint8_t hash[64];
    if (cvg__channel_handshake_hash(&c->ch, hash) != CVG_OK) {
        cvg__conn_abort(c, CVG_EIO, "no handshake hash");
        return;
    }
    cvg_session_options so = c->o.session;
    so.version = CVG_SESSION_OPTIONS_VERSION;
    so.channel_binding = (cvg_bytes){hash, sizeof hash};
    int rc = cvg_session_open(c->r, &so, &c->s);
    if (rc != CVG_OK) {
        cvg__conn_abort(c, rc, "cannot open the session");
        return;
    }
    /* The far end of the socket, for the peer's record (kept once it has
     * proved its key), whichever side connected. */
    struct sockaddr_storage sa;
    int salen = sizeof sa;
    char ip[INET6_ADDRSTRLEN], addr[CVG_SYNC_ADDRESS_MAX];
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &salen) == 0 &&
        uv_ip_name((struct sockaddr *)&sa, ip, sizeof ip) == 0) {
        bool v6 = sa.ss_family == AF_INET6;
        snprintf(addr, sizeof addr, v6 ? "[%s]:%u" : "%s:%u", ip,
                 (unsigned)ntohs(v6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                    : ((struct sockaddr_in *)&sa)->sin_port));
        cvg__session_set_address(c->s, addr);
    }
    arm_timer(c);
}

/* Move the session's messages into the channel; end when it is over. */
static void
pump(cvg__conn *c)
{
    if (c->s != NULL && !c->ending && check_peer(c)) {
        cvg_bytes m;
        while (cvg_session_output(c->s, &m) == CVG_OK) {
            int rc = cvg__channel_send(&c->ch, m.data, m.len);
            if (rc != CVG_OK) {
                cvg__conn_abort(c, rc, "cannot send a session message");
                return;
            }
        }
        bool peer_closed = cvg__channel_peer_closed(&c->ch);
        if (cvg_session_error(c->s) != CVG_OK) {
            end(c, false);
        } else if (cvg_session_done(c->s) &&
                   (!cvg_session_live(c->s) || peer_closed || c->finishing)) {
            /* A live session ends when a side closes, caught up. */
            end(c, true);
        } else if (peer_closed) {
            fail(c, CVG_EPEER, "the peer closed before the sync was done");
            end(c, false);
        }
    }
    if (!c->closing) {
        flush(c);
        maybe_end(c);
    }
}

static void
deliver(cvg__conn *c, cvg_bytes msg)
{
    if (c->s == NULL || c->ending) {
        return; /* after our end, what the peer says changes nothing */
    }
    if (msg.len == 0) {
        /* A ping: the responder answers it; neither side's session sees
         * it (no session message is empty). */
        if (!c->o.initiator && cvg__channel_send(&c->ch, NULL, 0) != CVG_OK) {
            cvg__conn_abort(c, CVG_EIO, "cannot answer a ping");
        }
        return;
    }
    cvg_session_stats before;
    cvg_session_stats_get(c->s, &before, sizeof before);
    /* A failure is the session's error, acted on by pump(). */
    int rc = cvg_session_input(c->s, msg.data, msg.len);
    (void)rc;
    cvg_session_stats after;
    cvg_session_stats_get(c->s, &after, sizeof after);
    if (after.pages_received != before.pages_received) {
        c->committed = true;
    }
    /* Check each message: the first is the HELLO, and the pin or the
     * allow list must be passed before we answer it. */
    if (check_peer(c)) {
        pump(c);
    }
}

static void
feed(cvg__conn *c, const uint8_t *p, size_t len)
{
    while (!c->closing) {
        size_t used = 0;
        cvg_bytes msg;
        int rc = cvg__channel_feed(&c->ch, p, len, &used, &msg);
        if (rc == CVG_EAGAIN) {
            /* The server is over its limit: not a failure of the link,
             * and the caller may wait as asked before trying again. */
            c->retry_after_ms = cvg__channel_retry_after(&c->ch);
            cvg__conn_abort(c, CVG_EAGAIN, "the server is busy");
            return;
        }
        if (rc < 0) {
            cvg__conn_abort(c, CVG_EIO, "the channel failed (bad bytes)");
            return;
        }
        if (c->s == NULL &&
            cvg__channel_state_of(&c->ch) == CVG__CHANNEL_OPEN) {
            open_session(c);
            if (c->closing) {
                return;
            }
        }
        if (rc == CVG_DONE) {
            break;
        }
        deliver(c, msg);
        p += used;
        len -= used;
        if (c->queued >= CVG__TCP_TURN && len > 0 && !c->closing) {
            /* Each message may be answered by a page: keep the rest of
             * this read until what was queued is written, or a read of
             * small PULLs would queue a page for each, and hold the loop
             * (and every other connection) while it builds them. */
            c->held = malloc(len);
            if (c->held == NULL) {
                cvg__conn_abort(c, CVG_ENOMEM, "no memory for input");
                return;
            }
            memcpy(c->held, p, len);
            c->held_len = len;
            set_reading(c, false); /* the held bytes come first */
            break;
        }
    }
    pump(c);
}

/* The writes have drained: feed what was held back, then read again,
 * also after a clean end, which waits for the peer's close: reading that
 * stopped for a full queue or held input must start again, or the close
 * would sit unread until the idle timeout (and the connection with it). */
static void
resume(cvg__conn *c)
{
    if (c->held != NULL) {
        uint8_t *p = c->held;
        size_t len = c->held_len;
        c->held = NULL;
        c->held_len = 0;
        uint64_t frames = c->ch.frames_in;
        feed(c, p, len);
        free(p);
        if (c->s != NULL && !c->closing && c->ch.frames_in != frames) {
            arm_timer(c); /* as in on_read: whole frames count */
        }
    }
    if (!c->closing && c->held == NULL && (!c->ending || c->wait_peer) &&
        c->queued <= CVG__TCP_WRITE_HIGH) {
        set_reading(c, true);
    }
}

static void
on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    cvg__conn *c = st->data;
    if (n > 0 && !c->closing) {
        /* The handshake's clock runs from the connection's start, so a
         * peer trickling its handshake a byte at a time still meets it;
         * once the session is open, each whole frame restarts the idle
         * clock, and bytes that complete none do not, so a peer trickling
         * a frame (or a message, frame by frame: each holds up to 64 KiB)
         * slower than that is cut all the same. */
        uint64_t frames = c->ch_live ? c->ch.frames_in : 0;
        bool open = c->s != NULL;
        lock(c);
        feed(c, (const uint8_t *)buf->base, (size_t)n);
        unlock(c);
        if (open && !c->closing && c->ch.frames_in != frames) {
            arm_timer(c);
        }
        after_turn(c);
    } else if (n < 0 && !c->closing) {
        lock(c);
        if (c->ending && cvg__channel_peer_closed(&c->ch)) {
            close_now(c);
        } else {
            fail(c, CVG_EIO,
                 n == UV_EOF ? "the peer cut the connection"
                             : uv_strerror((int)n));
            close_now(c);
        }
        unlock(c);
        after_turn(c);
    }
    free(buf->base);
}

cvg__conn *
cvg__conn_new(uv_loop_t *loop, cvg_replica *r, const cvg__conn_options *o)
{
    cvg__conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return NULL;
    }
    c->r = r;
    c->o = *o;
    if (c->o.handshake_timeout_ms == 0) {
        c->o.handshake_timeout_ms = CVG__TCP_TIMEOUT_MS;
    }
    if (c->o.idle_timeout_ms == 0) {
        c->o.idle_timeout_ms = CVG__TCP_TIMEOUT_MS;
    }
    uv_tcp_init(loop, &c->tcp);
    uv_timer_init(loop, &c->timer);
    uv_timer_init(loop, &c->ping);
    c->tcp.data = c;
    c->timer.data = c;
    c->ping.data = c;
    c->handles = 3;
    /* Connect and accept are bounded by the handshake's clock too. */
    arm_timer(c);
    return c;
}

void
cvg__conn_start(cvg__conn *c)
{
    uint8_t pk[crypto_box_PUBLICKEYBYTES], sk[crypto_box_SECRETKEYBYTES];
    if (sodium_init() < 0 || crypto_box_keypair(pk, sk) != 0) {
        cvg__conn_abort(c, CVG_EIO, "libsodium cannot make a key");
        return;
    }
    cvg__channel_options co;
    memset(&co, 0, sizeof co);
    co.initiator = c->o.initiator;
    co.static_key = sk;
    int rc = cvg__channel_init(&c->ch, &co);
    sodium_memzero(sk, sizeof sk);
    if (rc != CVG_OK) {
        cvg__conn_abort(c, rc, "cannot start the channel");
        return;
    }
    c->ch_live = true;
    uv_tcp_nodelay(&c->tcp, 1);
    set_reading(c, true);
    flush(c);
}

void
cvg__conn_free(cvg__conn *c)
{
    if (c == NULL) {
        return;
    }
    if (c->s != NULL) {
        lock(c);
        cvg_session_close(c->s);
        unlock(c);
    }
    free(c->held);
    if (c->ch_live) {
        cvg__channel_destroy(&c->ch);
    }
    free(c);
}

void
cvg__conn_finish(cvg__conn *c)
{
    if (!c->closing) {
        c->finishing = true;
        pump(c);
    }
}

void
cvg__conn_refresh(cvg__conn *c)
{
    if (c->s != NULL && !c->ending && !c->closing && cvg_session_live(c->s)) {
        int rc = cvg_session_refresh(c->s);
        (void)rc; /* an error is the session's: pump() ends it */
        pump(c);
    }
}

void
cvg__sigpipe_block(cvg__sigpipe *g)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

void
cvg__sigpipe_unblock(const cvg__sigpipe *g)
{
    if (!sigismember(&g->old, SIGPIPE)) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        const struct timespec zero = {0, 0};
        while (sigtimedwait(&set, NULL, &zero) == SIGPIPE) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}
