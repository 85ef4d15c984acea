/*
 * A sync session with one peer, sans-IO: messages in, messages out. Each
 * side says HELLO (its id and version vector), then pulls the other's log
 * page by page from the position stored for that peer. A page is a causally
 * closed prefix of the sender's log (ops the puller already has are left
 * out), and it is applied in one transaction together with the new
 * position, so a session cut at any point leaves both replicas valid and
 * the next one resumes where this one stopped. A side may push its own ops
 * instead (cvg_session_options.push): PUSH pages, unasked, right after the
 * peer's HELLO, which the peer then does not pull.
 *
 * This file holds the session's life: open and close, the queue of
 * outgoing messages, the dispatch of incoming ones to the file of their job
 * (session_int.h lists them), and the end of a session, well or badly.
 */
#include <stddef.h>
#include <stdio.h>

#include "session_int.h"

void
cvg_session_options_init(cvg_session_options *o)
{
    memset(o, 0, sizeof *o);
    o->version = CVG_SESSION_OPTIONS_VERSION;
    o->page_ops = 65536;
    o->page_bytes = 1u << 20;
}

int
cvg__session_enqueue(cvg_session *s, const cvg__msg *m)
{
    void *arr = s->out;
    int rc = cvg__grow(&arr, &s->capout, s->nout + 1, sizeof *s->out);
    s->out = arr;
    if (rc != CVG_OK) {
        return rc;
    }
    cvg__buf *b = &s->out[s->nout];
    memset(b, 0, sizeof *b);
    rc = cvg__msg_encode(m, b);
    if (rc != CVG_OK) {
        cvg__buf_free(b);
        return rc;
    }
    s->stats.bytes_sent += b->len;
    s->nout++;
    return CVG_OK;
}

void
cvg__session_event(cvg_session *s, cvg_sync_event_kind kind, int error)
{
    const cvg_replica_options *o = cvg__replica_opts(s->r);
    if (o->on_sync != NULL) {
        cvg_sync_event e = {kind, s->stats.peer, s->stats, error, s->fork_dot};
        o->on_sync(o->sync_ctx, &e);
    }
}

/* Record what we learned of the peer, to be stored with the next commit. */
void
cvg__session_note(cvg_session *s, const cvg__peer_change *ch)
{
    cvg__peer_change_merge(&s->change, ch);
    s->change_dirty = true;
}

/* Hand what is pending to the replica (the session ends): it is stored
 * with the next commit. Best effort: the sync status may lag after a
 * crash; the data never does. */
void
cvg__session_store_peer(cvg_session *s)
{
    /* Only what a peer that proved its key told us: anyone may claim an
     * id in a HELLO. */
    if (s->proven && s->change_dirty) {
        (void)cvg__peer_update(s->r, &s->stats.peer, &s->change);
    }
    cvg__session_store_vv(s);
    memset(&s->change, 0, sizeof s->change);
    s->change_dirty = false;
}

/* Once both directions are complete: remember it, and tell the app. */
static void
check_end(cvg_session *s)
{
    if (s->ended || !cvg_session_done(s)) {
        return;
    }
    s->ended = true;
    /* What the peer has of ours was noted with each of its ACKs. */
    cvg__peer_change ch = {.ok_ms = cvg__replica_now_ms(s->r)};
    cvg__session_note(s, &ch);
    cvg__session_store_peer(s);
    cvg__peer_set_active(s->r, &s->stats.peer, false);
    cvg__session_event(s, CVG_SYNC_EVENT_END, CVG_OK);
}

/* End the session with @p rc, telling the peer why. */
int
cvg__session_fail(cvg_session *s, int rc, const char *why)
{
    if (s->error == CVG_OK) {
        s->error = rc;
        cvg__msg m;
        memset(&m, 0, sizeof m);
        m.type = CVG__MSG_ERROR;
        m.version = CVG_PROTOCOL_VERSION;
        m.code = rc;
        m.text.data = (const uint8_t *)why;
        m.text.len = strlen(why);
        (void)cvg__session_enqueue(
            s, &m); /* best effort: the error stands anyway */
        cvg__peer_change ch = {.error = rc};
        cvg__session_note(s, &ch);
        cvg__session_store_peer(s);
        cvg__replica_fail(s->r, rc, "sync: %s", why);
        if (!s->ended) {
            s->ended = true;
            cvg__peer_set_active(s->r, &s->stats.peer, false);
            cvg__session_event(s, CVG_SYNC_EVENT_ERROR, rc);
        }
    }
    return rc;
}

int
cvg_session_open(cvg_replica *r, const cvg_session_options *opts,
                 cvg_session **out)
{
    if (out == NULL) {
        return CVG_EINVAL;
    }
    *out = NULL;
    cvg_session_options defaults;
    if (opts == NULL) {
        cvg_session_options_init(&defaults);
        opts = &defaults;
    }
    if (r == NULL || opts->version == 0 ||
        opts->version > CVG_SESSION_OPTIONS_VERSION) {
        return CVG_EINVAL;
    }
    cvg_session *s = cvg__calloc(1, sizeof *s);
    if (s == NULL) {
        return CVG_ENOMEM;
    }
    s->r = r;
    /* A caller built against version 1 has a shorter struct. */
    memcpy(&s->opts, opts,
           opts->version >= 4   ? sizeof s->opts
           : opts->version >= 3 ? offsetof(cvg_session_options, live)
           : opts->version >= 2 ? offsetof(cvg_session_options, channel_binding)
                                : offsetof(cvg_session_options, push));
    cvg_bytes cb = s->opts.channel_binding;
    if (cb.len > BINDING_MAX || (cb.len > 0 && cb.data == NULL)) {
        cvg__free(s);
        return CVG_EINVAL;
    }
    if (cb.len > 0) {
        memcpy(s->binding, cb.data, cb.len);
    }
    s->binding_len = cb.len;
    s->opts.channel_binding.data = NULL; /* borrowed: not kept */
    s->opts.version = CVG_SESSION_OPTIONS_VERSION;
    if (s->opts.page_ops == 0) {
        s->opts.page_ops = 65536;
    }
    if (s->opts.page_bytes == 0) {
        s->opts.page_bytes = 1u << 20;
    }
    s->pull_done = opts->no_pull;

    int rc = cvg__session_send_hello(s);
    if (rc != CVG_OK) {
        cvg_session_close(s);
        return rc;
    }
    *out = s;
    return CVG_OK;
}

void
cvg_session_close(cvg_session *s)
{
    if (s == NULL) {
        return;
    }
    if (s->got_hello) {
        cvg__session_store_peer(s);
        cvg__peer_set_active(s->r, &s->stats.peer, false);
    }
    cvg__push_hold_destroy(&s->hold);
    cvg__free(s->acks);
    cvg__free(s->sent);
    for (size_t i = 0; i < s->nout; i++) {
        cvg__buf_free(&s->out[i]);
    }
    cvg__free(s->out);
    cvg__peer_vv_destroy(&s->peer_vv);
    cvg__session_vv_free(s);
    cvg__free(s->peer_heads_at);
    cvg__free(s->peer_heads);
    cvg__msg_scratch_destroy(&s->scratch);
    cvg__free(s);
}

int
cvg_session_output(cvg_session *s, cvg_bytes *msg_out)
{
    if (s == NULL || msg_out == NULL) {
        return CVG_EINVAL;
    }
    msg_out->data = NULL;
    msg_out->len = 0;
    /* The previous message was sent: release it. */
    if (s->out_head > 0) {
        cvg__buf_free(&s->out[0]);
        memmove(s->out, s->out + 1, (s->nout - 1) * sizeof *s->out);
        s->nout--;
        s->out_head = 0;
    }
    if (s->nout == 0) {
        return CVG_DONE;
    }
    msg_out->data = s->out[0].p;
    msg_out->len = s->out[0].len;
    s->out_head = 1;
    return CVG_OK;
}

bool
cvg_session_done(const cvg_session *s)
{
    /* The peer acknowledges our last page once it is committed there. */
    return s != NULL && s->error == CVG_OK && s->got_hello && s->vv_ok &&
           s->pull_done && (s->acked_all || !s->peer_pulls) &&
           (s->push_acked || !s->opts.push);
}

int
cvg_session_error(const cvg_session *s)
{
    return s ? s->error : CVG_EINVAL;
}

void
cvg_session_stats_get(const cvg_session *s, cvg_session_stats *out, size_t size)
{
    /* A caller's older (smaller) struct gets the fields it knows. */
    if (s != NULL && out != NULL && size >= sizeof(cvg_session_stats)) {
        memset(out, 0, size);
        memcpy(out, &s->stats, sizeof s->stats);
    }
}

int
cvg_session_input(cvg_session *s, const void *msg, size_t len)
{
    if (s == NULL || (msg == NULL && len > 0)) {
        return CVG_EINVAL;
    }
    if (s->error != CVG_OK) {
        return s->error;
    }
    s->stats.bytes_received += len;
    cvg__msg m;
    int rc = cvg__msg_decode(msg, len, &m, &s->scratch);
    if (rc == CVG_EVERSION) {
        snprintf(s->why, sizeof s->why,
                 "the peer speaks sync protocol version %u, this replica "
                 "version %d",
                 m.version, CVG_PROTOCOL_VERSION);
        return cvg__session_fail(s, rc, s->why);
    }
    if (rc != CVG_OK) {
        return cvg__session_fail(s, rc, "malformed message");
    }
    if (s->proven) {
        /* A peer that proved its key is in contact; noted first, so that
         * whatever this message ends is stored with it. */
        cvg__peer_change ch = {.contact_ms = cvg__replica_now_ms(s->r)};
        cvg__session_note(s, &ch);
    }
    switch (m.type) {
    case CVG__MSG_HELLO:
        rc = cvg__session_on_hello(s, &m);
        break;
    case CVG__MSG_PULL:
        rc = cvg__session_on_pull(s, &m);
        break;
    case CVG__MSG_OPS:
        rc = cvg__session_on_ops(s, &m);
        break;
    case CVG__MSG_PUSH:
        rc = cvg__session_on_push(s, &m);
        break;
    case CVG__MSG_ACK:
        rc = cvg__session_on_ack(s, &m);
        break;
    case CVG__MSG_FORK:
        rc = cvg__session_on_fork(s, &m);
        break;
    case CVG__MSG_PROVE:
        rc = cvg__session_on_prove(s, &m);
        break;
    case CVG__MSG_HAVE:
        rc = cvg__session_on_have(s, &m);
        break;
    case CVG__MSG_VV:
        rc = cvg__session_on_vv(s, &m);
        break;
    case CVG__MSG_VV_WANT:
        rc = cvg__session_on_vv_want(s, &m);
        break;
    case CVG__MSG_ERROR:
        return cvg__session_on_error(s, &m);
    default:
        return cvg__session_fail(s, CVG_EPROTO,
                                 "a message this version does not use");
    }
    if (rc == CVG_OK) {
        check_end(s);
    }
    return rc;
}
