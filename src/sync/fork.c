/*
 * Forks: two histories of one origin. Every VV entry carries the first
 * bytes of the digest of that origin's history at the seq the sender has
 * (its head); a VV that sends only what changed carries the heads of what
 * changed (vv_sync.c). Once the peer has proved its key, each side compares the
 * peer's heads with its own history at the same seqs, wherever it holds at
 * least as much; a head that differs means the origin's key signed two
 * histories (a cloned key, or a replica restored without its copy being
 * noticed). The side that sees it sends FORK: its own signed head of that
 * origin, and asks for the peer's at the peer's seq. A signed head that
 * checks against the origin's key but not against our history at its seq
 * is proof; it is kept (cvg_replica_forks()), reported (the FORK event,
 * `converge status`), and the origin's ops are refused from then on
 * (src/replica/history.c). A FORK whose signature does not check is a
 * forgery and ends the session.
 */
#include <stdio.h>

#include "session_int.h"

/* Differing seqs cost a history rebuild (up to a segment's ops) each:
 * this many per session at most; the rest wait for later sessions. */
#define REBUILDS_MAX 256

void
cvg__session_keep_heads(cvg_session *s, cvg_dot *at, uint8_t *heads, size_t n)
{
    cvg__free(s->peer_heads_at);
    cvg__free(s->peer_heads);
    s->peer_heads_at = at;
    s->peer_heads = heads;
    s->n_peer_heads = n;
}

/* Our signed head of @p origin at @p seq, as a FORK asking for the peer's
 * at @p want (0: an answer). */
static int
send_fork(cvg_session *s, cvg_txn *t, const cvg_replica_id *origin,
          uint64_t seq, uint64_t want)
{
    cvg__msg m;
    uint8_t d[CVG__DIGEST_BYTES];
    memset(&m, 0, sizeof m);
    int rc = cvg__txn_point(t, origin, seq, false, &m.fork);
    if (rc == CVG_OK) {
        rc = cvg__txn_history_digest(t, origin, seq, d);
    }
    if (rc == CVG_ENOTFOUND) {
        return CVG_OK; /* no signed head of ours there: nothing to show */
    }
    if (rc != CVG_OK) {
        return rc;
    }
    m.type = CVG__MSG_FORK;
    m.version = CVG_PROTOCOL_VERSION;
    m.fork_head = d;
    m.fork_want = want;
    return cvg__session_enqueue(s, &m);
}

static bool
known_fork(cvg_session *s, cvg_txn *t, const cvg_replica_id *origin)
{
    cvg__fork_rec f;
    return cvg__fork_get(cvg__replica_store(s->r), cvg__txn_store_txn(t),
                         origin, &f) == CVG_OK;
}

int
cvg__session_check_forks(cvg_session *s)
{
    cvg_txn *t;
    int rc = cvg_txn_begin(s->r, CVG_TXN_READ_ONLY, &t);
    if (rc != CVG_OK) {
        return cvg__session_fail(s, rc, "cannot read the version vector");
    }
    const cvg__vv *vv = cvg__txn_vv(t);
    unsigned rebuilds = 0;
    for (size_t i = 0; rc == CVG_OK && i < s->n_peer_heads; i++) {
        const cvg_dot *at = &s->peer_heads_at[i];
        uint64_t ours = cvg__vv_get(vv, &at->origin);
        if (ours < at->seq || (ours > at->seq && rebuilds++ >= REBUILDS_MAX)) {
            continue; /* the peer has more: it compares (or ops travel) */
        }
        if (known_fork(s, t, &at->origin)) {
            continue; /* proven before: its ops are refused already */
        }
        uint8_t d[CVG__DIGEST_BYTES];
        rc = cvg__txn_history_digest(t, &at->origin, at->seq, d);
        if (rc == CVG_OK &&
            sodium_memcmp(d, s->peer_heads + i * CVG__HEAD_BYTES,
                          CVG__HEAD_BYTES) != 0) {
            rc = send_fork(s, t, &at->origin, ours, at->seq);
        }
    }
    cvg_txn_abort(t);
    return rc == CVG_OK ? CVG_OK
                        : cvg__session_fail(s, rc, "cannot compare histories");
}

typedef struct fork_write {
    cvg_replica_id origin;
    cvg__fork_rec rec;
} fork_write;

static int
store_fork(void *ctx, cvg__store *st, cvg__store_txn *t)
{
    fork_write *w = ctx;
    return cvg__fork_put(st, t, &w->origin, &w->rec);
}

/* The proof: their signed head, and ours of the history held here (seq_b
 * 0 if we hold no signed head there). */
static int
fork_proof(cvg_txn *t, const cvg__msg *m, uint64_t ours, fork_write *w)
{
    memset(w, 0, sizeof *w);
    w->origin = m->fork.origin;
    w->rec.seq_a = m->fork.seq;
    memcpy(w->rec.head_a, m->fork_head, CVG__DIGEST_BYTES);
    memcpy(w->rec.sig_a, m->fork.sig, CVG__SIG_BYTES);
    cvg__point mine;
    int rc = cvg__txn_point(t, &m->fork.origin, ours, false, &mine);
    if (rc == CVG_OK) {
        rc = cvg__txn_history_digest(t, &m->fork.origin, ours, w->rec.head_b);
    }
    if (rc == CVG_OK) {
        w->rec.seq_b = ours;
        memcpy(w->rec.sig_b, mine.sig, CVG__SIG_BYTES);
    }
    return rc == CVG_ENOTFOUND ? CVG_OK : rc;
}

/* Store the proof and tell the app. */
static int
record_fork(cvg_session *s, fork_write *w)
{
    w->rec.found_ms = cvg__replica_now_ms(s->r);
    int rc = cvg__replica_write(s->r, store_fork, w);
    if (rc != CVG_OK) {
        return cvg__session_fail(s, rc, "cannot keep the proof of a fork");
    }
    s->fork_dot.origin = w->origin;
    s->fork_dot.seq = w->rec.seq_a;
    cvg__session_event(s, CVG_SYNC_EVENT_FORK, CVG_EEQUIVOCAL);
    return CVG_OK;
}

int
cvg__session_on_fork(cvg_session *s, const cvg__msg *m)
{
    if (!s->proven) {
        return cvg__session_fail(s, CVG_EPROTO, "FORK before PROVE");
    }
    cvg_txn *t;
    int rc = cvg_txn_begin(s->r, CVG_TXN_READ_ONLY, &t);
    if (rc != CVG_OK) {
        return cvg__session_fail(s, rc, "cannot read the version vector");
    }
    const cvg_replica_id *origin = &m->fork.origin;
    uint64_t ours = cvg__vv_get(cvg__txn_vv(t), origin);
    rc = cvg__txn_point_check(t, &m->fork, m->fork_head);
    if (rc == CVG_EFORGED && ours == 0) {
        cvg_txn_abort(t); /* an origin we know nothing of: nothing to say */
        return CVG_OK;
    }
    if (rc != CVG_OK) {
        cvg_txn_abort(t);
        return cvg__session_fail(s, rc,
                                 "a FORK whose head is not its origin's "
                                 "signature");
    }
    if (m->fork_want != 0 && m->fork_want == ours) {
        rc = send_fork(s, t, origin, ours, 0);
    }
    uint8_t d[CVG__DIGEST_BYTES];
    bool differs = false;
    if (rc == CVG_OK && ours >= m->fork.seq && !known_fork(s, t, origin)) {
        rc = cvg__txn_history_digest(t, origin, m->fork.seq, d);
        differs = rc == CVG_OK &&
                  sodium_memcmp(d, m->fork_head, CVG__DIGEST_BYTES) != 0;
    }
    fork_write w;
    if (rc == CVG_OK && differs) {
        rc = fork_proof(t, m, ours, &w);
    }
    cvg_txn_abort(t);
    if (rc != CVG_OK) {
        return cvg__session_fail(s, rc, "cannot compare histories");
    }
    return differs ? record_fork(s, &w) : CVG_OK;
}
