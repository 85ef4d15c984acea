/*
 * Live sessions: a session both sides opened with
 * cvg_session_options.live outlives being done. Whenever the app commits
 * (and says so with cvg_session_refresh()), the new ops flow the way the
 * session already carries ops:
 *   - to a peer that pulls from us: HAVE with our log's new end, after
 *     which the peer pulls from its position as usual (on HAVE, or at the
 *     end of the pull under way), and pages are served up to that end;
 *   - from a pusher (cvg_session_options.push): HAVE, then PUSH pages of
 *     the own ops the peer lacks, acknowledged as usual; a refresh while a
 *     push waits for its ACK goes out after that ACK. That HAVE carries
 *     back the random token of the ACK of the last push (ack.c), which
 *     the peer checks: a new round of pushes, and the commit of its last
 *     page, costs the pusher a round trip, as each pulled page costs the
 *     server one (it waits for the PULL).
 * So a page still never runs past a log end its sender announced, and a
 * HAVE is the only announcement a live session adds. Each time both sides
 * are caught up again the session is done for now: what it learned of the
 * peer is handed over (stored with the next commit) and END fires.
 */
#include "session_int.h"

void
cvg__session_reopen(cvg_session *s)
{
    if (s->ended) {
        s->ended = false;
        cvg__peer_set_active(s->r, &s->stats.peer, true);
    }
}

static int
send_have(cvg_session *s)
{
    cvg__msg m;
    memset(&m, 0, sizeof m);
    m.type = CVG__MSG_HAVE;
    m.version = CVG_PROTOCOL_VERSION;
    m.log_end = s->log_end;
    m.token = s->opts.push ? s->peer_token : 0;
    int rc = cvg__session_enqueue(s, &m);
    return rc == CVG_OK ? CVG_OK
                        : cvg__session_fail(s, rc, "cannot queue a HAVE");
}

/* Our log's end and our own origin's last seq, as committed now, and
 * whether the peer has every op we hold (what it announced and sent us
 * covers our version vector). The vectors are compared only when the log
 * moved past what we announced: a compare costs a pass over every origin,
 * and most refreshes find nothing new. */
static int
read_ends(cvg_session *s, uint64_t *log_end, uint64_t *own, bool *peer_has_all)
{
    cvg_txn *t;
    int rc = cvg_txn_begin(s->r, CVG_TXN_READ_ONLY, &t);
    if (rc != CVG_OK) {
        return cvg__session_fail(s, rc, "cannot read the log");
    }
    *log_end = cvg__txn_next_lsn(t) - 1;
    if (*log_end <= s->log_end) {
        cvg_txn_abort(t);
        return CVG_OK;
    }
    const cvg__vv *vv = cvg__txn_vv(t);
    *own = cvg__vv_get(vv, cvg__replica_self(s->r));
    *peer_has_all = cvg__peer_vv_has_all(&s->peer_vv, vv);
    cvg_txn_abort(t);
    return CVG_OK;
}

/* Push what is new of our own, now: HAVE, then the PUSH pages. */
int
cvg__session_push_more(cvg_session *s)
{
    s->push_again = false;
    int rc = send_have(s);
    if (rc == CVG_OK) {
        s->push_acked = false;
        cvg__session_reopen(s);
        rc = cvg__session_push_own(s);
    }
    return rc;
}

int
cvg_session_refresh(cvg_session *s)
{
    if (s == NULL) {
        return CVG_EINVAL;
    }
    if (s->error != CVG_OK) {
        return s->error;
    }
    if (!s->got_hello || !s->vv_ok) {
        /* Live or not is known from the peer's HELLO, and what it has from
         * its VV: look again then. */
        s->refresh_wanted = s->opts.live;
        return CVG_OK;
    }
    if (!s->live) {
        return CVG_OK;
    }
    uint64_t log_end = 0, own = 0;
    bool peer_has_all = false;
    int rc = read_ends(s, &log_end, &own, &peer_has_all);
    if (rc != CVG_OK || log_end <= s->log_end) {
        return rc;
    }
    if (peer_has_all) {
        /* What the log gained came from the peer itself (a page it sent
         * us): announcing it would only make the peer pull an empty page.
         * The end stays as announced; the next HAVE carries it. */
        return CVG_OK;
    }
    s->log_end = log_end;
    if (s->peer_pulls) {
        rc = send_have(s);
        if (rc != CVG_OK) {
            return rc;
        }
        /* Done again only once the peer has pulled and confirmed it. */
        s->served = false;
        s->acked_all = false;
        cvg__session_reopen(s);
    }
    if (s->opts.push && own > s->push_own_max) {
        if (s->pushed && !s->push_acked) {
            s->push_again = true; /* after the ACK of the push under way */
        } else {
            rc = cvg__session_push_more(s);
        }
    }
    return rc;
}

int
cvg__session_after_hello(cvg_session *s)
{
    if (s->live && s->refresh_wanted) {
        s->refresh_wanted = false;
        return cvg_session_refresh(s);
    }
    return CVG_OK;
}

int
cvg__session_on_have(cvg_session *s, const cvg__msg *m)
{
    if (!s->got_hello) {
        return cvg__session_fail(s, CVG_EPROTO, "HAVE before HELLO");
    }
    if (!s->live) {
        return cvg__session_fail(s, CVG_EPROTO,
                                 "a HAVE in a session that is not live");
    }
    if (!s->proven) {
        return cvg__session_fail(s, CVG_EPROTO,
                                 "a HAVE before the peer proved its identity");
    }
    if (m->log_end < s->peer_log_end) {
        return cvg__session_fail(s, CVG_EPROTO,
                                 "a HAVE with a log end before the one the "
                                 "peer announced already");
    }
    s->peer_log_end = m->log_end;
    if (s->peer_pushes) {
        /* Pushes follow: the session takes PUSH pages again, once the
         * pusher shows it read the ACK of its last round (its token). A
         * round's last page is a commit here, so without this a peer that
         * never reads could make us commit per few bytes it sends. */
        if (s->push_in_done &&
            sodium_memcmp(&m->token, &s->push_token, sizeof m->token) != 0) {
            return cvg__session_fail(s, CVG_EPROTO,
                                     "a push began before the peer read the "
                                     "acknowledgement of its last one");
        }
        if (s->push_in_done) {
            s->push_in_done = false;
            s->pull_done = false;
            cvg__session_reopen(s);
        }
        return CVG_OK;
    }
    if (!s->opts.no_pull && s->pull_done && !s->pulling) {
        s->pull_done = false;
        cvg__session_reopen(s);
        return cvg__session_send_pull(s);
    }
    /* A pull under way: the peer sent this HAVE before it took our PULL
     * (it answers in order), so its answer already runs to the new end. */
    return CVG_OK;
}

bool
cvg_session_live(const cvg_session *s)
{
    return s != NULL && s->live;
}
