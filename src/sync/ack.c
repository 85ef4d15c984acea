/*
 * ACK both ways: every page (OPS or PUSH) is answered, once committed, by
 * an ACK that says what became of its ops, as seq ranges per origin: taken
 * here, or here already. A refused page is answered by an ACK naming the
 * one op that was refused and its code, then the ERROR that ends the
 * session; nothing of that page is kept, so its other ops are neither.
 *
 * Receiving a page, the results of its ops are noted as runs while it is
 * applied (blocks are runs of one origin, so there are few), then sorted
 * and merged into the ACK's canonical form before the page commits: a page
 * whose results would not fit an ACK is refused whole.
 *
 * Sending pages, each origin's seqs in them are kept as ranges, and the
 * peer's ACK must claim nothing outside them (CVG_EPROTO, with nothing of
 * it recorded). Then our own ops it confirms (taken or here already) count
 * as committed there as far as they run on from what it had, and our op it
 * refused is recorded as failed with its code (stored at once, see
 * deferred.c). ACKs are matched to pages by their ranges, not by their
 * order, so a repeated one changes nothing more.
 *
 * The ACK of a push round's last page carries a random token, which the
 * pusher's HAVE before its next round carries back (live.c): so each
 * round, and the commit of its last page, costs the pusher a round trip.
 */
#include <stdio.h>
#include <stdlib.h>

#include "session_int.h"

/* ---- Ranges --------------------------------------------------------------- */

static int
range_cmp(const void *a, const void *b)
{
    const cvg__ack_range *x = a, *y = b;
    int c = cvg__id_cmp(&x->origin, &y->origin);
    if (c != 0) {
        return c;
    }
    /* Taken (0) before here already (1): see normalize(). Refusals are
     * never noted, so no negative result meets these. */
    if (x->result != y->result) {
        return x->result < y->result ? -1 : 1;
    }
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static int
range_cmp_lo(const void *a, const void *b)
{
    const cvg__ack_range *x = a, *y = b;
    int c = cvg__id_cmp(&x->origin, &y->origin);
    if (c != 0) {
        return c;
    }
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Sort @p g and merge the ranges of one origin and result that overlap or
 * touch; returns the new count. */
static size_t
merge(cvg__ack_range *g, size_t n)
{
    if (n == 0) {
        return 0;
    }
    qsort(g, n, sizeof *g, range_cmp);
    size_t out = 0;
    for (size_t i = 1; i < n; i++) {
        cvg__ack_range *last = &g[out];
        if (cvg__id_eq(&last->origin, &g[i].origin) &&
            last->result == g[i].result && g[i].lo <= last->hi + 1) {
            last->hi = CVG__MAX(last->hi, g[i].hi);
        } else {
            g[++out] = g[i];
        }
    }
    return out + 1;
}

static int
push_range(cvg__ack_range **arr, size_t *n, size_t *cap,
           const cvg_replica_id *origin, uint64_t lo, uint64_t hi,
           int32_t result)
{
    void *p = *arr;
    int rc = cvg__grow(&p, cap, *n + 1, sizeof **arr);
    *arr = p;
    if (rc != CVG_OK) {
        return rc;
    }
    cvg__ack_range *g = &(*arr)[(*n)++];
    g->origin = *origin;
    g->lo = lo;
    g->hi = hi;
    g->result = result;
    return CVG_OK;
}

/* ---- Receiving a page: our ACK ------------------------------------------- */

void
cvg__ack_reset(cvg_session *s)
{
    s->nacks = 0;
}

int
cvg__ack_note(cvg_session *s, const cvg_dot *d, int32_t result)
{
    if (s->nacks > 0) {
        cvg__ack_range *last = &s->acks[s->nacks - 1];
        if (last->result == result && d->seq == last->hi + 1 &&
            cvg__id_eq(&last->origin, &d->origin)) {
            last->hi = d->seq;
            return CVG_OK;
        }
    }
    return push_range(&s->acks, &s->nacks, &s->capacks, &d->origin, d->seq,
                      d->seq, result);
}

bool
cvg__ack_refusal(int rc)
{
    /* What the op is or says, not this replica's trouble (memory, disk)
     * or damage, which the sender can do nothing about. */
    switch (rc) {
    case CVG_ECLOCK:
    case CVG_EGAP:
    case CVG_EEQUIVOCAL:
    case CVG_EFORGED:
    case CVG_ETYPE:
    case CVG_ETOOBIG:
    case CVG_EOVERFLOW:
        return true;
    default:
        return false;
    }
}

/* The results in canonical form. An op taken here is the origin's next,
 * so an origin's taken ops run on from all it had before the page: any op
 * of it found here already at or past the first taken one is a repeat,
 * within the page, of one it took, and counts as taken. */
static void
normalize(cvg_session *s)
{
    size_t n = merge(s->acks, s->nacks);
    size_t out = 0;
    for (size_t i = 0; i < n;) {
        /* One origin: its taken range (at most one) comes first. */
        size_t j = i + 1;
        while (j < n && cvg__id_eq(&s->acks[j].origin, &s->acks[i].origin)) {
            j++;
        }
        uint64_t first_taken =
            s->acks[i].result == CVG__ACK_TAKEN ? s->acks[i].lo : UINT64_MAX;
        for (size_t k = i; k < j; k++) {
            cvg__ack_range g = s->acks[k];
            if (g.result != CVG__ACK_TAKEN && g.hi >= first_taken) {
                if (g.lo >= first_taken) {
                    continue;
                }
                g.hi = first_taken - 1;
            }
            s->acks[out++] = g;
        }
        i = j;
    }
    if (out > 0) { /* an empty page has no array at all */
        qsort(s->acks, out, sizeof *s->acks, range_cmp_lo);
    }
    s->nacks = out;
}

int
cvg__ack_finish(cvg_session *s)
{
    normalize(s);
    if (s->nacks > CVG__MSG_RANGES_MAX) {
        snprintf(s->why, sizeof s->why,
                 "a page whose results take %zu ranges, more than an ACK "
                 "holds (%u)",
                 s->nacks, (unsigned)CVG__MSG_RANGES_MAX);
        return CVG_ELIMIT;
    }
    return CVG_OK;
}

static int
send_ack(cvg_session *s, bool more, uint64_t token, const cvg__ack_range *g,
         size_t n)
{
    cvg__msg ack;
    memset(&ack, 0, sizeof ack);
    ack.type = CVG__MSG_ACK;
    ack.version = CVG_PROTOCOL_VERSION;
    ack.has_more = more;
    ack.token = token;
    ack.ranges = g;
    ack.n_ranges = n;
    return cvg__session_enqueue(s, &ack);
}

int
cvg__session_send_ack(cvg_session *s, bool more)
{
    int rc = send_ack(s, more, 0, s->acks, s->nacks);
    if (rc != CVG_OK) {
        return cvg__session_fail(s, rc, "cannot queue an acknowledgement");
    }
    return CVG_OK;
}

int
cvg__session_send_push_ack(cvg_session *s, bool more)
{
    if (more) {
        return cvg__session_send_ack(s, more);
    }
    /* Unpredictable, so that only a pusher that read this ACK can send
     * it back; never 0, which a HAVE sends when it has none. */
    do {
        randombytes_buf(&s->push_token, sizeof s->push_token);
    } while (s->push_token == 0);
    int rc = send_ack(s, false, s->push_token, s->acks, s->nacks);
    if (rc != CVG_OK) {
        return cvg__session_fail(s, rc, "cannot queue an acknowledgement");
    }
    return CVG_OK;
}

void
cvg__session_send_refusal(cvg_session *s, const cvg_dot *d, int code)
{
    cvg__ack_range g = {d->origin, d->seq, d->seq, code};
    /* Best effort: the ERROR that follows ends the session anyway. */
    (void)send_ack(s, true, 0, &g, 1);
}

/* ---- Sending pages: the peer's ACK ---------------------------------------- */

int
cvg__session_sent_add(cvg_session *s, const cvg_replica_id *origin, uint64_t lo,
                      uint64_t hi)
{
    return push_range(&s->sent, &s->nsent, &s->capsent, origin, lo, hi,
                      CVG__ACK_TAKEN);
}

void
cvg__session_sent_done(cvg_session *s)
{
    /* Each origin's seqs in our pages run on from what the peer had, so
     * this stays about one range per origin. */
    s->nsent = merge(s->sent, s->nsent);
}

/* Whether our pages carried @p g's ops, all of them. */
static bool
was_sent(const cvg_session *s, const cvg__ack_range *g)
{
    size_t lo = 0, hi = s->nsent;
    while (lo < hi) { /* the first range not before g */
        size_t mid = lo + (hi - lo) / 2;
        const cvg__ack_range *x = &s->sent[mid];
        int c = cvg__id_cmp(&x->origin, &g->origin);
        if (c < 0 || (c == 0 && x->hi < g->lo)) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < s->nsent && cvg__id_eq(&s->sent[lo].origin, &g->origin) &&
           s->sent[lo].lo <= g->lo && g->hi <= s->sent[lo].hi;
}

/* The ACK is about what we sent, and a refusal comes alone. */
static int
check_ack(cvg_session *s, const cvg__msg *m)
{
    for (size_t i = 0; i < m->n_ranges; i++) {
        const cvg__ack_range *g = &m->ranges[i];
        char hex[33];
        cvg_replica_id_hex(&g->origin, hex);
        if (g->result < 0 && (m->n_ranges != 1 || g->lo != g->hi)) {
            snprintf(s->why, sizeof s->why,
                     "an ACK refusing ops %s:%llu..%llu with other results "
                     "or more than one op",
                     hex, (unsigned long long)g->lo, (unsigned long long)g->hi);
            return CVG_EPROTO;
        }
        if (!was_sent(s, g)) {
            snprintf(s->why, sizeof s->why,
                     "an ACK for ops %s:%llu..%llu, which no page of ours "
                     "carried",
                     hex, (unsigned long long)g->lo, (unsigned long long)g->hi);
            return CVG_EPROTO;
        }
    }
    return CVG_OK;
}

/* Record what the ACK says of our ops: confirmed ones move the committed
 * position as far as they run on from it, a refused one is failed. */
static void
record_ack(cvg_session *s, const cvg__msg *m)
{
    const cvg_replica_id *self = cvg__replica_self(s->r);
    /* The peer's HELLO said what it had of ours. */
    uint64_t acked =
        CVG__MAX(s->acked_own, cvg__peer_vv_get(&s->peer_vv, self));
    for (size_t i = 0; i < m->n_ranges; i++) {
        const cvg__ack_range *g = &m->ranges[i];
        uint64_t n = g->hi - g->lo + 1;
        bool own = cvg__id_eq(&g->origin, self);
        if (g->result < 0) {
            s->acks_got.refused += n;
            if (own) {
                /* Stored at once, with what waited (only from a peer that
                 * proved its key: cvg__session_store_peer). */
                cvg__peer_change ch = {.sent = g->hi,
                                       .fail_code = g->result,
                                       .fail_lo = g->lo,
                                       .fail_hi = g->hi};
                cvg__session_note(s, &ch);
                cvg__session_store_peer(s);
            }
            continue;
        }
        if (g->result == CVG__ACK_TAKEN) {
            s->acks_got.taken += n;
        } else {
            s->acks_got.duplicate += n;
        }
        /* Sorted by seq within an origin: one pass joins them. */
        if (own && g->lo <= acked + 1) {
            acked = CVG__MAX(acked, g->hi);
        }
    }
    if (acked > s->acked_own) {
        cvg__peer_change ch = {.acked = acked};
        cvg__session_note(s, &ch);
    }
    s->acked_own = acked;
}

int
cvg__session_on_ack(cvg_session *s, const cvg__msg *m)
{
    if (!s->got_hello) {
        return cvg__session_fail(s, CVG_EPROTO, "ACK before HELLO");
    }
    if (s->stats.pages_sent == 0) {
        return cvg__session_fail(s, CVG_EPROTO, "an ACK for pages never sent");
    }
    int rc = check_ack(s, m);
    if (rc != CVG_OK) {
        return cvg__session_fail(s, rc, s->why);
    }
    record_ack(s, m);
    if (m->n_ranges == 1 && m->ranges[0].result < 0) {
        return CVG_OK; /* the ERROR comes next */
    }
    if (m->has_more) {
        return cvg__session_served_acked(s); /* more pages to come */
    }
    /* The peer has our last page. A pusher does not serve pulls, so this
     * is its last PUSH: all we pushed is confirmed, unless this is a
     * repeat of the last ACK of an earlier push (live: more pushes follow
     * one that was acknowledged, and a refresh meanwhile goes out now). A
     * server's last page may be still to come when a late ACK of one since
     * superseded arrives. */
    if (s->opts.push) {
        s->peer_token = m->token; /* for the HAVE of our next push */
        if (!s->push_acked && s->acked_own >= s->push_own_max) {
            s->push_acked = true;
            return s->push_again ? cvg__session_push_more(s) : CVG_OK;
        }
    } else if (s->served) {
        s->acked_all = true;
    }
    return s->opts.push ? CVG_OK : cvg__session_served_acked(s);
}

void
cvg_session_acks_get(const cvg_session *s, cvg_session_acks *out, size_t size)
{
    /* A caller built against a later, larger struct gets zeros past
     * ours. */
    if (s != NULL && out != NULL && size >= sizeof(cvg_session_acks)) {
        memset(out, 0, size);
        memcpy(out, &s->acks_got, sizeof s->acks_got);
    }
}
