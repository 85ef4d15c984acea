/*
 * The handshake. Each side's first message is HELLO: its id, its version
 * vector (what it has of every origin), and whether it will pull and push.
 * From the peer's HELLO a session learns who it talks to, what the peer
 * lacks (so pages leave out what it has), and what the peer holds of our
 * own ops, which is committed there.
 */
#include <stdio.h>

#include "session_int.h"

/* HELLO carries the committed version vector. */
int
cvg__session_send_hello(cvg_session *s)
{
    cvg_txn *t;
    int rc = cvg_txn_begin(s->r, CVG_TXN_READ_ONLY, &t);
    if (rc == CVG_OK) {
        const cvg__vv *vv = cvg__txn_vv(t);
        cvg__msg m;
        memset(&m, 0, sizeof m);
        m.type = CVG__MSG_HELLO;
        m.version = CVG_PROTOCOL_VERSION;
        m.id = *cvg__replica_self(s->r);
        m.vv = vv->e;
        m.vv_n = vv->n;
        m.flags = (s->opts.no_pull ? 0 : HELLO_PULLS) |
                  (s->opts.push ? HELLO_PUSHES : 0);
        rc = cvg__session_enqueue(s, &m);
        cvg_txn_abort(t);
    }
    return rc;
}

int
cvg__session_on_hello(cvg_session *s, const cvg__msg *m)
{
    if (s->got_hello) {
        /* A transport that repeats a message is no reason to give up. */
        if (cvg__id_cmp(&m->id, &s->stats.peer) == 0) {
            return CVG_OK;
        }
        return cvg__session_fail(s, CVG_EPROTO, "a HELLO from a second peer");
    }
    if (cvg__id_cmp(&m->id, cvg__replica_self(s->r)) == 0) {
        return cvg__session_fail(s, CVG_EINVAL, "the peer is this replica");
    }
    s->got_hello = true;
    s->stats.peer = m->id;
    /* A peer that we push to does not pull from us, and we do not pull
     * from a peer that pushes: its pushes are all it sends us. */
    s->peer_pulls = (m->flags & HELLO_PULLS) != 0 && !s->opts.push;
    s->peer_pushes = (m->flags & HELLO_PUSHES) != 0;
    if (s->peer_pushes) {
        s->pull_done = false;
    }
    for (size_t i = 0; i < m->vv_n; i++) {
        int rc = cvg__vv_set(&s->peer_vv, &m->vv[i].origin, m->vv[i].seq);
        if (rc != CVG_OK) {
            return cvg__session_fail(s, rc, "out of memory");
        }
    }
    /* A peer with more of our ops than we made: this replica was restored
     * from an older copy (its next ops would reuse seqs the world already
     * knows, with other content), or the peer lies. Either way, stop. */
    uint64_t claimed = cvg__vv_get(&s->peer_vv, cvg__replica_self(s->r));
    if (claimed > 0) {
        cvg_txn *t;
        int rc = cvg_txn_begin(s->r, CVG_TXN_READ_ONLY, &t);
        if (rc != CVG_OK) {
            return cvg__session_fail(s, rc, "cannot read the version vector");
        }
        uint64_t mine = cvg__vv_get(cvg__txn_vv(t), cvg__replica_self(s->r));
        cvg_txn_abort(t);
        if (claimed > mine) {
            snprintf(s->why, sizeof s->why,
                     "the peer has this replica's ops up to seq %llu, but it "
                     "made only %llu: restored from an older copy?",
                     (unsigned long long)claimed, (unsigned long long)mine);
            return cvg__session_fail(s, CVG_EFORGED, s->why);
        }
    }
    /* What the peer has of ours is committed there. */
    cvg__peer_change ch = {
        .acked = cvg__vv_get(&s->peer_vv, cvg__replica_self(s->r)),
        .attempt_ms = cvg__replica_now_ms(s->r)};
    cvg__session_note(s, &ch);
    cvg__peer_set_active(s->r, &s->stats.peer, true);
    cvg__session_event(s, CVG_SYNC_EVENT_START, CVG_OK);
    if (s->opts.push) {
        int rc = cvg__session_push_own(s);
        if (rc != CVG_OK) {
            return rc;
        }
    }
    return s->opts.no_pull || s->peer_pushes ? CVG_OK
                                             : cvg__session_send_pull(s);
}
