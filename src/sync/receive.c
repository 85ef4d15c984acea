/*
 * Receiving the peer's pages. We PULL from the position stored for the
 * peer; each OPS page is applied in one transaction with the new
 * position, so a page is kept whole or not at all; then an ACK tells the
 * peer what became of its ops (ack.c). PUSH pages that say more follow
 * are held and applied together, up to the hold's limits, in one
 * transaction with one ACK (push_hold.h). A page refused for one of its ops
 * gets an ACK naming that op and the code, then the ERROR that ends the
 * session. The peer's ERROR is handled here too.
 */
#include <stdio.h>

#include "session_int.h"

int
cvg__session_send_pull(cvg_session *s)
{
    cvg_txn *t;
    int rc = cvg_txn_begin(s->r, CVG_TXN_READ_ONLY, &t);
    cvg__peer_rec rec;
    rec.cursor = 1;
    if (rc == CVG_OK) {
        rc = cvg__peer_get(cvg__replica_store(s->r), cvg__txn_store_txn(t),
                           &s->stats.peer, &rec, NULL);
        cvg_txn_abort(t);
    }
    /* A page of ops all here already commits nothing: its position waits
     * for the next commit, and counts from now. */
    if (rc == CVG_OK) {
        cvg__peer_overlay(s->r, &s->stats.peer, &rec);
    }
    uint64_t cursor = rec.cursor;
    if (rc != CVG_OK) {
        return cvg__session_fail(s, rc, "cannot read the sync position");
    }
    /* A position past the end of the peer's log: its log is not the one we
     * pulled from (a restored copy of it). Start over: blocks we have are
     * skipped by the version vector. */
    if (cursor > s->peer_log_end + 1) {
        cursor = 1;
    }
    cvg__msg m;
    memset(&m, 0, sizeof m);
    m.type = CVG__MSG_PULL;
    m.version = CVG_PROTOCOL_VERSION;
    m.cursor = cursor;
    m.max_ops = s->opts.page_ops;
    m.max_bytes = s->opts.page_bytes;
    rc = cvg__session_enqueue(s, &m);
    if (rc != CVG_OK) {
        return cvg__session_fail(s, rc, "cannot queue a pull");
    }
    s->pulling = true;
    s->pulled = true;
    s->pull_cursor = cursor ? cursor : 1;
    return CVG_OK;
}

/* Whether the page's next cursor fits the PULL it answers: the n ops it
 * holds sit at distinct lsns from our cursor on, and a page with more to
 * come moves on (else a peer could keep us pulling forever). */
static int
check_next_cursor(cvg_session *s, const cvg__msg *m, uint64_t n)
{
    uint64_t from = s->pull_cursor, next = m->next_cursor;
    if (next < from || next - from < n || (m->has_more && next == from)) {
        snprintf(s->why, sizeof s->why,
                 "a page of %llu ops from lsn %llu with next cursor %llu%s",
                 (unsigned long long)n, (unsigned long long)from,
                 (unsigned long long)next, m->has_more ? " and more" : "");
        return CVG_EPROTO;
    }
    /* Pages stop where the peer's HELLO said its log ends: a cursor past
     * that would make our next pull skip ops it has yet to write. */
    if (next > s->peer_log_end + 1) {
        snprintf(s->why, sizeof s->why,
                 "a page with next cursor %llu, past the end of the peer's "
                 "log (%llu)",
                 (unsigned long long)next, (unsigned long long)s->peer_log_end);
        return CVG_EPROTO;
    }
    return CVG_OK;
}

/* What applying a page's ops counted. */
typedef struct page_count {
    uint64_t limit; /* most ops the page may hold */
    uint64_t got;
    uint64_t dup;
    uint64_t conflicts;
    bool detailed; /* the replica's message says which op failed */
    bool refused;  /* ... and the ACK names it: */
    cvg_dot refused_dot;
} page_count;

/* Check and apply one op of a page. */
static int
apply_op(cvg_session *s, cvg_txn *t, bool push, const cvg__op *op,
         page_count *c)
{
    if (c->got + c->dup >= c->limit) {
        snprintf(s->why, sizeof s->why, "a page of more than the %lu ops %s",
                 (unsigned long)c->limit,
                 push ? "a push may hold" : "asked for");
        return CVG_ELIMIT; /* more than our PULL asked for */
    }
    if (push && cvg__id_cmp(&op->pub.dot.origin, &s->stats.peer) != 0) {
        /* A push carries the pusher's own ops only: relayed ops come by
         * pulls, from a cursor in the relay's log. */
        snprintf(s->why, sizeof s->why,
                 "a PUSH with an op (seq %llu) of another origin",
                 (unsigned long long)op->pub.dot.seq);
        return CVG_EPROTO;
    }
    bool conflict;
    int rc = cvg__txn_apply_remote(t, op, &conflict);
    if (rc == CVG_DONE) {
        c->dup++;
        rc = cvg__ack_note(s, &op->pub.dot, CVG__ACK_DUPLICATE);
    } else if (rc == CVG_OK) {
        c->got++;
        c->conflicts += conflict;
        rc = cvg__ack_note(s, &op->pub.dot, CVG__ACK_TAKEN);
    } else {
        c->detailed = true;
        if (cvg__ack_refusal(rc) && op->pub.dot.seq > 0) {
            c->refused = true;
            c->refused_dot = op->pub.dot;
        }
        return rc;
    }
    /* The peer has what it sent (a page is a causally closed prefix, so
     * with all of the origin's ops before it): what we serve it later in
     * a live session leaves these out. Only a hint for pages: were the
     * page refused after all, the peer would be sent less, and pull it
     * again from its own position in the next session. */
    const cvg_dot *d = &op->pub.dot;
    if (rc == CVG_OK) {
        rc = cvg__peer_vv_show(&s->peer_vv, d);
    }
    return rc;
}

/* Apply every op of one block of a page. A block of ops all new here is
 * logged as it came (a relay passes it on unchanged), not decoded and
 * encoded again. */
static int
apply_block(cvg_session *s, cvg_txn *t, bool push, cvg_bytes block,
            cvg__block_reader *rd, page_count *c)
{
    int rc = cvg__block_open_received(rd, block.data, block.len);
    bool kept = rc == CVG_OK && cvg__txn_keep_begin(t, rd, block);
    cvg__op op;
    while (rc == CVG_OK && (rc = cvg__block_next(rd, &op)) == CVG_OK) {
        rc = apply_op(s, t, push, &op, c);
    }
    rc = rc == CVG_DONE ? CVG_OK : rc;
    if (kept) {
        int krc = cvg__txn_keep_end(t);
        rc = rc == CVG_OK ? krc : rc;
    }
    return rc;
}

/* Why a page was refused, for the ERROR to the peer. */
static const char *
page_why(cvg_session *s, int rc, const page_count *c)
{
    if (c->detailed) {
        snprintf(s->why, sizeof s->why, "%s", cvg_replica_errmsg(s->r));
    }
    return c->detailed || rc == CVG_ELIMIT || rc == CVG_EPROTO ? s->why
           : rc == CVG_ECORRUPT ? "malformed ops in a page"
           : rc == CVG_EVERSION ? "ops in a newer block encoding"
                                : "cannot apply a page";
}

/* Settle the page's conflicts, stage its new position and commit; then
 * fire the conflict events. On error nothing of the page is kept. */
static int
commit_page(cvg_session *s, cvg_txn *t, const cvg__msg *m, const char **why)
{
    /* Conflicts are settled in the page's own transaction: a resolver's
     * value commits with the page. Their events fire after the commit. */
    cvg__conflicts cs;
    int rc = cvg__txn_settle_conflicts(t, &cs);
    if (rc != CVG_OK) {
        cvg_txn_abort(t);
        *why = "cannot write a resolved value";
        return rc;
    }
    /* The new position (and what we learned so far) is stored with the
     * page, or not at all; a push says nothing of the peer's log. */
    uint64_t cursor = m->next_cursor;
    rc = cvg__peer_stage(s->r, &s->stats.peer, &s->change,
                         m->type == CVG__MSG_PUSH ? NULL : &cursor);
    rc = rc == CVG_OK ? cvg_txn_commit(t) : (cvg_txn_abort(t), rc);
    if (rc != CVG_OK) {
        cvg__conflicts_release(&cs);
        *why = "cannot commit a page";
        return rc;
    }
    memset(&s->change, 0, sizeof s->change); /* stored with the page */
    s->change_dirty = false;
    cvg__conflicts_notify(s->r, &cs);
    cvg__conflicts_release(&cs);
    return CVG_OK;
}

/* Whether the page's blocks fit the bytes it may hold: what our PULL
 * asked for, or for a PUSH the push page size both sides hold to; a
 * larger page is refused before any of it is decoded. */
static int
check_page_bytes(cvg_session *s, const cvg__msg *m, bool push)
{
    uint64_t limit =
        CVG__PAGE_BYTES_ACCEPTED(push ? PUSH_PAGE_BYTES : s->opts.page_bytes);
    uint64_t bytes = 0;
    for (size_t i = 0; i < m->n_blocks; i++) {
        bytes += m->blocks[i].len;
    }
    if (bytes > limit) {
        snprintf(s->why, sizeof s->why,
                 "a page of %llu bytes of ops, more than the %llu %s",
                 (unsigned long long)bytes, (unsigned long long)limit,
                 push ? "a push may hold" : "asked for");
        return CVG_ELIMIT;
    }
    return CVG_OK;
}

/* Apply every op of a page in one transaction, with the new position; on
 * any error nothing of the page is kept. @p pages is how many PUSH pages
 * were merged into @p m (push_hold.h); 1 for any other. */
static int
apply_page(cvg_session *s, const cvg__msg *m, uint64_t pages, bool quiet,
           const char **why)
{
    cvg_txn *t;
    int rc = cvg_txn_begin(s->r, 0, &t);
    if (rc != CVG_OK) {
        *why = "cannot begin a transaction";
        return rc;
    }
    cvg__txn_collect_conflicts(t);
    bool push = m->type == CVG__MSG_PUSH;
    page_count c = {.limit = push ? PUSH_PAGE_OPS * pages
                                  : CVG__PAGE_OPS_HARD(s->opts.page_ops)};
    rc = check_page_bytes(s, m, push);
    if (rc != CVG_OK) {
        cvg_txn_abort(t);
        *why = s->why;
        return rc;
    }
    cvg__block_reader rd;
    memset(&rd, 0, sizeof rd);
    cvg__ack_reset(s);
    for (size_t i = 0; rc == CVG_OK && i < m->n_blocks; i++) {
        rc = apply_block(s, t, push, m->blocks[i], &rd, &c);
    }
    cvg__block_reader_destroy(&rd);
    if (rc == CVG_OK && !push) {
        rc = check_next_cursor(s, m, c.got + c.dup);
    }
    if (rc == CVG_OK) {
        /* Every origin's new ops must be covered by its signature. */
        rc = cvg__txn_check_points(t, m->points, m->n_points);
        c.detailed = rc != CVG_OK;
    }
    if (rc == CVG_OK) {
        rc = cvg__ack_finish(s); /* before the commit: whole or not at all */
    }
    if (rc != CVG_OK) {
        *why = page_why(s, rc, &c);
        cvg_txn_abort(t);
        if (c.refused && !quiet) {
            cvg__session_send_refusal(s, &c.refused_dot, rc);
        }
        return rc;
    }
    rc = commit_page(s, t, m, why);
    if (rc != CVG_OK) {
        return rc;
    }
    s->stats.ops_received += c.got;
    s->stats.ops_duplicate += c.dup;
    s->stats.conflicts += c.conflicts;
    s->stats.pages_received += pages;
    return CVG_OK;
}

/* Pages are stored with what we learned of the peer: only once it has
 * proved who it is. */
static int
check_proven(cvg_session *s)
{
    return s->proven ? CVG_OK
                     : cvg__session_fail(s, CVG_EPROTO,
                                         "a page before the peer proved "
                                         "its identity");
}

int
cvg__session_on_ops(cvg_session *s, const cvg__msg *m)
{
    if (!s->pulling) {
        if (!s->pulled) {
            return cvg__session_fail(
                s, CVG_EPROTO,
                s->got_hello ? "a page nobody asked for" : "OPS before HELLO");
        }
        /* A repeated or late page: its answer was applied already. */
        return CVG_OK;
    }
    /* A repeat of an earlier page may come after our next PULL. Every
     * earlier page said "more" and ended at or before where the current
     * PULL starts, which no answer to it can do (it must move on). */
    if (m->has_more && m->next_cursor <= s->pull_cursor) {
        return CVG_OK;
    }
    int rc = check_proven(s);
    if (rc != CVG_OK) {
        return rc;
    }
    s->pulling = false;
    const char *why = "";
    rc = apply_page(s, m, 1, false, &why);
    if (rc != CVG_OK) {
        return cvg__session_fail(s, rc, why);
    }
    rc = cvg__session_send_ack(s, m->has_more);
    if (rc != CVG_OK) {
        return rc;
    }
    if (m->has_more) {
        return cvg__session_send_pull(s);
    }
    s->pull_done = true;
    return CVG_OK;
}

/* Apply the held PUSH pages as one page and ACK it, saying more follow if
 * @p more. If they are refused as one, apply them one by one as they came,
 * so that the pages before the refused op are kept (push_hold.h). */
static int
apply_held(cvg_session *s, bool more)
{
    cvg__push_hold *h = &s->hold;
    cvg__msg merged;
    int rc = cvg__push_hold_merged(h, more, &merged);
    if (rc != CVG_OK) {
        return cvg__session_fail(s, rc, "out of memory");
    }
    const char *why = "";
    rc = apply_page(s, &merged, h->pages, h->pages > 1, &why);
    if (rc == CVG_OK) {
        cvg__push_hold_clear(h);
        return cvg__session_send_push_ack(s, more);
    }
    for (size_t i = 0; h->pages > 1 && i < h->pages; i++) {
        cvg__msg one;
        cvg__push_hold_page(h, i, &one);
        one.has_more = i + 1 < h->pages || more;
        rc = apply_page(s, &one, 1, false, &why);
        if (rc != CVG_OK) {
            break;
        }
        rc = cvg__session_send_push_ack(s, one.has_more);
        if (rc != CVG_OK) {
            break;
        }
    }
    cvg__push_hold_clear(h);
    return rc == CVG_OK ? CVG_OK : cvg__session_fail(s, rc, why);
}

int
cvg__session_on_push(cvg_session *s, const cvg__msg *m)
{
    if (!s->got_hello) {
        return cvg__session_fail(s, CVG_EPROTO, "PUSH before HELLO");
    }
    if (!s->peer_pushes) {
        return cvg__session_fail(s, CVG_EPROTO,
                                 "a PUSH from a peer that did not say it "
                                 "pushes");
    }
    if (s->push_in_done) {
        return CVG_OK; /* a repeat of the last: applied already */
    }
    int rc = check_proven(s);
    if (rc != CVG_OK) {
        return rc;
    }
    /* Held pages and this one, up to the hold's limits, commit together
     * (push_hold.h). A page too large to hold is refused here, before it
     * is copied. */
    rc = check_page_bytes(s, m, true);
    if (rc != CVG_OK) {
        return cvg__session_fail(s, rc, s->why);
    }
    cvg__push_hold *h = &s->hold;
    if (h->pages > 0 && !cvg__push_hold_fits(h, m)) {
        rc = apply_held(s, true);
        if (rc != CVG_OK) {
            return rc;
        }
    }
    if (m->has_more && cvg__push_hold_fits(h, m)) {
        rc = cvg__push_hold_add(h, m, &s->stats.peer);
        if (rc != CVG_OK) {
            return cvg__session_fail(s, rc, "out of memory");
        }
        return h->pages < CVG__HOLD_PAGES ? CVG_OK : apply_held(s, true);
    }
    if (h->pages > 0) {
        rc = cvg__push_hold_add(h, m, &s->stats.peer);
        if (rc != CVG_OK) {
            return cvg__session_fail(s, rc, "out of memory");
        }
        rc = apply_held(s, m->has_more);
    } else {
        const char *why = "";
        rc = apply_page(s, m, 1, false, &why);
        rc = rc != CVG_OK ? cvg__session_fail(s, rc, why)
                          : cvg__session_send_push_ack(s, m->has_more);
    }
    if (rc != CVG_OK || m->has_more) {
        return rc;
    }
    s->push_in_done = true;
    s->pull_done = true;
    return CVG_OK;
}

/* The peer gave up; do not answer an error with an error. An op of ours
 * it refused was named in the ACK before (ack.c). */
int
cvg__session_on_error(cvg_session *s, const cvg__msg *m)
{
    s->error = CVG_EPEER;
    cvg__peer_change ch = {.error = CVG_EPEER};
    cvg__session_note(s, &ch);
    cvg__session_store_peer(s);
    cvg__replica_fail(s->r, CVG_EPEER, "sync: the peer ended with %s: %.*s",
                      cvg_errname(m->code), (int)m->text.len,
                      (const char *)m->text.data);
    if (!s->ended) {
        s->ended = true;
        cvg__peer_set_active(s->r, &s->stats.peer, false);
        cvg__session_event(s, CVG_SYNC_EVENT_ERROR, CVG_EPEER);
    }
    return CVG_EPEER;
}
