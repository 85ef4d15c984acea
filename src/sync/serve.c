/*
 * Serving the peer: pages of our log. A PULL asks for ops from a cursor in
 * our log; the answer is an OPS page of the ops from there on, in log
 * order, without those the peer's HELLO says it has, in blocks of
 * consecutive ops of one origin, up to the page limits of both sides. A
 * pusher instead sends its own ops the peer lacks, unasked, in PUSH pages.
 *
 * Every page carries, for each origin in it, that origin's signature over
 * its history at the origin's last seq in the page (a point): we sign for
 * our own origins on the spot, and for others we relay the points they
 * came with. So a page of relayed ops may end only where every origin in
 * it ends at a point we hold: the walk remembers the last such place (a
 * cut) and, when a page must end elsewhere, goes back to it. Points come
 * with every page we take in, and a page is one transaction, so in our
 * log every origin is at a point after each page taken in: cuts are as
 * frequent as the pages that brought the ops.
 *
 * Each origin's seqs in a page are one run (the peer lacks everything of
 * it past what its HELLO said, and our log holds an origin's ops in seq
 * order); they are kept (ack.c) to check the peer's ACK against.
 */
#include <stdio.h>

#include "session_int.h"

/* A page of our log for the peer: ops from a cursor on, in log order,
 * without those the peer said it has, in blocks of consecutive ops of one
 * origin. */
/* An origin in the page being built. */
typedef struct track {
    cvg_replica_id origin;
    bool ours;           /* we sign its points */
    uint64_t next_point; /* its first stored point at or after the last
                          * seq asked about (0: not asked, UINT64_MAX: none) */
    uint64_t first;      /* its first seq in the page (0: none yet) */
    uint64_t last;       /* its last seq in the page */
    uint64_t cut_last;   /* ... at the cut */
    bool clean;          /* a point covers last */
} track;

/* The last place where every origin in the page ended at a point. */
typedef struct page_cut {
    size_t bytes_len;
    size_t nblocks;
    uint64_t next;
    uint64_t n;
    uint64_t own_max;
} page_cut;

typedef struct page {
    cvg__buf bytes; /* the blocks, back to back */
    size_t *ends;   /* end offset of each block */
    size_t nblocks;
    size_t capblocks;
    cvg__block_run run;
    track *tracks;
    size_t ntracks, captracks, last_track;
    size_t unclean; /* origins whose last seq no point covers */
    page_cut cut;
    cvg__point *points; /* what the page carries, once finished */
    size_t npoints, cappoints;
} page;

static int
page_keep_block(void *ctx, const cvg__block_run *run, cvg_bytes b)
{
    (void)run;
    page *p = ctx;
    void *arr = p->ends;
    int rc = cvg__grow(&arr, &p->capblocks, p->nblocks + 1, sizeof *p->ends);
    p->ends = arr;
    if (rc == CVG_OK) {
        rc = cvg__buf_append(&p->bytes, b.data, b.len);
    }
    if (rc == CVG_OK) {
        p->ends[p->nblocks++] = p->bytes.len;
    }
    return rc;
}

static void
page_init(page *p)
{
    memset(p, 0, sizeof *p);
    p->run.max_ops = 4096;
    p->run.max_bytes = SIZE_MAX; /* the page limit is checked by the caller */
    p->run.done = page_keep_block;
    p->run.ctx = p;
}

static void
page_destroy(page *p)
{
    cvg__buf_free(&p->bytes);
    cvg__free(p->ends);
    cvg__free(p->tracks);
    cvg__free(p->points);
    cvg__block_run_destroy(&p->run);
}

static int
find_track(page *p, cvg_txn *t, const cvg_replica_id *origin, track **out)
{
    if (p->last_track < p->ntracks &&
        cvg__id_eq(&p->tracks[p->last_track].origin, origin)) {
        *out = &p->tracks[p->last_track];
        return CVG_OK;
    }
    for (size_t i = 0; i < p->ntracks; i++) {
        if (cvg__id_cmp(&p->tracks[i].origin, origin) == 0) {
            p->last_track = i;
            *out = &p->tracks[i];
            return CVG_OK;
        }
    }
    void *arr = p->tracks;
    int rc = cvg__grow(&arr, &p->captracks, p->ntracks + 1, sizeof *p->tracks);
    p->tracks = arr;
    if (rc != CVG_OK) {
        return rc;
    }
    track *tr = &p->tracks[p->ntracks];
    memset(tr, 0, sizeof *tr);
    tr->origin = *origin;
    tr->ours = cvg__txn_signs_for(t, origin);
    tr->clean = true;
    p->last_track = p->ntracks++;
    *out = tr;
    return CVG_OK;
}

/* Whether a point of ours will cover seq @p seq of @p tr's origin. */
static int
covered(cvg_session *s, cvg_txn *t, track *tr, uint64_t seq, bool *out)
{
    if (tr->ours) {
        *out = true;
        return CVG_OK;
    }
    if (tr->next_point < seq) {
        uint64_t at;
        int rc = cvg__point_next(cvg__replica_store(s->r),
                                 cvg__txn_store_txn(t), &tr->origin, seq, &at);
        if (rc != CVG_OK && rc != CVG_ENOTFOUND) {
            return rc;
        }
        tr->next_point = rc == CVG_OK ? at : UINT64_MAX;
    }
    *out = tr->next_point == seq;
    return CVG_OK;
}

/* The page is whole up to here: remember the place. */
static int
take_cut(page *p, uint64_t next, uint64_t n, uint64_t own_max)
{
    int rc = cvg__block_run_close(&p->run);
    if (rc != CVG_OK) {
        return rc;
    }
    p->cut.bytes_len = p->bytes.len;
    p->cut.nblocks = p->nblocks;
    p->cut.next = next;
    p->cut.n = n;
    p->cut.own_max = own_max;
    for (size_t i = 0; i < p->ntracks; i++) {
        p->tracks[i].cut_last = p->tracks[i].last;
    }
    return CVG_OK;
}

/* Add @p op to the page, keeping the cut. */
static int
page_add(cvg_session *s, page *p, cvg_txn *t, const cvg__op *op, uint64_t n,
         uint64_t own_max)
{
    track *tr;
    bool clean;
    int rc = find_track(p, t, &op->pub.dot.origin, &tr);
    if (rc == CVG_OK) {
        rc = covered(s, t, tr, op->pub.dot.seq, &clean);
    }
    if (rc == CVG_OK && p->unclean == 0 && !clean) {
        rc = take_cut(p, op->pub.lsn, n, own_max);
    }
    if (rc == CVG_OK) {
        rc = cvg__block_run_add(&p->run, op);
    }
    if (rc != CVG_OK) {
        return rc;
    }
    if (tr->last == 0) {
        tr->first = op->pub.dot.seq;
    }
    tr->last = op->pub.dot.seq;
    if (tr->clean != clean) {
        p->unclean += clean ? (size_t)-1 : 1;
        tr->clean = clean;
    }
    return CVG_OK;
}

/* The page ends where no point covers it: go back to the cut. */
static void
page_back_to_cut(page *p)
{
    cvg__block_run_destroy(&p->run); /* the open block, past the cut */
    p->bytes.len = p->cut.bytes_len;
    p->nblocks = p->cut.nblocks;
    for (size_t i = 0; i < p->ntracks; i++) {
        p->tracks[i].last = p->tracks[i].cut_last;
    }
    p->unclean = 0; /* an origin with no op before the cut has last 0 */
}

/* The points the page carries: one per origin in it, at its last seq, with
 * the key of an origin the peer had nothing of. */
static int
page_points(cvg_session *s, cvg_txn *t, page *p)
{
    p->npoints = 0;
    for (size_t i = 0; i < p->ntracks; i++) {
        const track *tr = &p->tracks[i];
        uint64_t had = cvg__peer_vv_get(&s->peer_vv, &tr->origin);
        if (tr->last <= had) {
            continue;
        }
        void *arr = p->points;
        int rc =
            cvg__grow(&arr, &p->cappoints, p->npoints + 1, sizeof *p->points);
        p->points = arr;
        if (rc == CVG_OK) {
            rc = cvg__txn_point(t, &tr->origin, tr->last, had == 0,
                                &p->points[p->npoints]);
        }
        if (rc != CVG_OK) {
            char hex[33];
            cvg_replica_id_hex(&tr->origin, hex);
            snprintf(s->why, sizeof s->why,
                     "no signature of origin %s at seq %llu to send with its "
                     "ops: %s",
                     hex, (unsigned long long)tr->last, cvg_strerror(rc));
            return rc == CVG_ENOTFOUND ? CVG_ECORRUPT : rc;
        }
        p->npoints++;
    }
    return CVG_OK;
}

/* Finish @p p's open block and queue its blocks as one OPS or PUSH message;
 * @p p is emptied for the next page. */
static int
page_enqueue(cvg_session *s, page *p, cvg__msg_type type, uint64_t next,
             bool more)
{
    int rc = cvg__block_run_close(&p->run);
    cvg_bytes *blocks = NULL;
    if (rc == CVG_OK && p->nblocks > 0) {
        blocks = cvg__alloc(p->nblocks * sizeof *blocks);
        rc = blocks ? CVG_OK : CVG_ENOMEM;
    }
    for (size_t i = 0; rc == CVG_OK && i < p->nblocks; i++) {
        size_t start = i ? p->ends[i - 1] : 0;
        blocks[i].data = p->bytes.p + start;
        blocks[i].len = p->ends[i] - start;
    }
    if (rc == CVG_OK) {
        cvg__msg m;
        memset(&m, 0, sizeof m);
        m.type = type;
        m.version = CVG_PROTOCOL_VERSION;
        m.blocks = blocks;
        m.n_blocks = p->nblocks;
        m.next_cursor = next;
        m.has_more = more;
        m.points = p->points;
        m.n_points = p->npoints;
        rc = cvg__session_enqueue(s, &m);
    }
    cvg__free(blocks);
    /* What the page carries, to check the peer's ACK against. */
    for (size_t i = 0; rc == CVG_OK && i < p->ntracks; i++) {
        const track *tr = &p->tracks[i];
        if (tr->last > 0) {
            rc = cvg__session_sent_add(s, &tr->origin, tr->first, tr->last);
        }
    }
    cvg__session_sent_done(s);
    if (rc == CVG_OK) {
        s->stats.pages_sent++;
        p->bytes.len = 0;
        p->nblocks = 0;
        p->npoints = 0;
        for (size_t i = 0; i < p->ntracks; i++) {
            p->tracks[i].last = 0;
        }
    }
    return rc;
}

/* What a walk of our log for one page found. */
typedef struct page_walk {
    uint64_t max_ops;
    uint64_t max_bytes;
    uint64_t next;    /* the lsn after the last op looked at */
    uint64_t n;       /* ops in the page */
    uint64_t own_max; /* the highest seq of our own ops walked over */
    bool more;        /* ops are left after the page */
} page_walk;

/* Fill @p p with our ops from @p it on that the peer lacks, until the
 * page limits or the end of the log. */
static int
walk_log(cvg_session *s, cvg_txn *t, cvg__log_iter *it, page *p, page_walk *w)
{
    const cvg_replica_id *self = cvg__replica_self(s->r);
    cvg__op op;
    int rc = CVG_OK;
    /* Past the limits, a page goes on to the next cut, but not far. */
    uint64_t hard_ops = CVG__PAGE_OPS_HARD(w->max_ops);
    uint64_t hard_bytes = CVG__PAGE_BYTES_HARD(w->max_bytes);
    for (;;) {
        size_t open_len = p->run.open ? p->run.w.out.len : 0;
        bool full =
            w->n >= w->max_ops || p->bytes.len + open_len >= w->max_bytes;
        bool too_full =
            w->n >= hard_ops || p->bytes.len + open_len >= hard_bytes;
        if (full && (p->unclean == 0 || too_full)) {
            /* Full: is anything left, up to the end our HELLO gave? */
            cvg__log_span span;
            rc = cvg__log_iter_span(it, &span);
            w->more = rc == CVG_OK && span.first_lsn <= s->log_end;
            return rc == CVG_OK || rc == CVG_DONE ? CVG_OK : rc;
        }
        /* Whole blocks the peer has are skipped by their header: a peer
         * that relays our ops back would otherwise cost a decode of each. */
        cvg__log_span span;
        rc = cvg__log_iter_span(it, &span);
        if (rc != CVG_OK) {
            break;
        }
        if (span.first_lsn > s->log_end) {
            /* Written since our HELLO, which told the peer where our log
             * ends: the next session serves it. */
            rc = CVG_DONE;
            break;
        }
        if (span.last_seq <= cvg__peer_vv_get(&s->peer_vv, &span.origin)) {
            if (cvg__id_cmp(&span.origin, self) == 0) {
                w->own_max = CVG__MAX(w->own_max, span.last_seq);
            }
            w->next = span.last_lsn + 1;
            cvg__log_iter_skip_span(it);
            continue;
        }
        rc = cvg__log_iter_next(it, &op);
        if (rc != CVG_OK) {
            break;
        }
        w->next = op.pub.lsn + 1;
        if (cvg__id_cmp(&op.pub.dot.origin, self) == 0) {
            w->own_max = CVG__MAX(w->own_max, op.pub.dot.seq);
        }
        if (cvg__peer_vv_contains(&s->peer_vv, &op.pub.dot)) {
            continue; /* the peer said it has this one */
        }
        rc = page_add(s, p, t, &op, w->n, w->own_max);
        if (rc != CVG_OK) {
            break;
        }
        w->n++;
    }
    return rc == CVG_DONE ? CVG_OK : rc;
}

/* Build the page that answers a PULL from @p cursor and queue it. */
static int
serve_page(cvg_session *s, uint64_t cursor, page_walk *w)
{
    cvg_txn *t;
    int rc = cvg_txn_begin(s->r, CVG_TXN_READ_ONLY, &t);
    if (rc != CVG_OK) {
        return cvg__session_fail(s, rc, "cannot read the log");
    }
    uint64_t next_lsn = s->log_end + 1; /* as our HELLO said */
    if (cursor > next_lsn) {
        /* A position we never reached: the peer's is forged, or this
         * replica was restored from an older copy and would hand out
         * those lsns again for other ops, which the peer would skip. */
        cvg_txn_abort(t);
        snprintf(s->why, sizeof s->why,
                 "PULL from lsn %llu, past the end of this log (%llu)",
                 (unsigned long long)cursor, (unsigned long long)next_lsn - 1);
        return cvg__session_fail(s, CVG_EPROTO, s->why);
    }
    page p;
    page_init(&p);
    cvg__log_iter it;
    rc = cvg__log_iter_open(cvg__replica_store(s->r), cvg__txn_store_txn(t),
                            cursor, &it);
    w->next = cursor ? cursor : 1;
    if (rc == CVG_OK) {
        rc = walk_log(s, t, &it, &p, w);
    }
    cvg__log_iter_close(&it);
    s->why[0] = '\0';
    if (rc == CVG_OK && p.unclean > 0) {
        /* Ended where some origin has no point: back to the last cut. */
        if (p.cut.n == 0) {
            snprintf(s->why, sizeof s->why,
                     "ops from lsn %llu on have no signature of their origin "
                     "here: they cannot be relayed",
                     (unsigned long long)p.cut.next);
            rc = CVG_ECORRUPT;
        } else {
            page_back_to_cut(&p);
            w->next = p.cut.next;
            w->n = p.cut.n;
            w->own_max = p.cut.own_max;
            w->more = true;
        }
    }
    if (rc == CVG_OK) {
        rc = cvg__block_run_close(&p.run);
    }
    if (rc == CVG_OK) {
        rc = page_points(s, t, &p);
    }
    cvg_txn_abort(t);
    if (rc == CVG_OK) {
        rc = page_enqueue(s, &p, CVG__MSG_OPS, w->next, w->more);
    }
    page_destroy(&p);
    return rc == CVG_OK ? CVG_OK
                        : cvg__session_fail(s, rc,
                                            s->why[0] ? s->why
                                                      : "cannot build a page "
                                                        "of ops");
}

/* Answer a PULL with one page. */
static int
serve_pull(cvg_session *s, uint64_t cursor, uint64_t max_ops,
           uint64_t max_bytes)
{
    page_walk w = {0};
    /* A page is built in memory: whatever the peer asks (0 is "no
     * limit"), it is no larger than our own page limits. */
    w.max_ops = CVG__MIN(max_ops ? max_ops : UINT64_MAX, s->opts.page_ops);
    w.max_bytes =
        CVG__MIN(max_bytes ? max_bytes : UINT64_MAX, s->opts.page_bytes);
    int rc = serve_page(s, cursor, &w);
    if (rc != CVG_OK) {
        return rc;
    }
    s->serve_unacked = true;
    s->served_once = true;
    s->served_cursor = cursor;
    s->served_log_end = s->log_end;
    s->stats.ops_sent += w.n;
    cvg__peer_change ch = {.sent = w.own_max};
    cvg__session_note(s, &ch);
    if (!w.more) {
        s->served = true;
    }
    return CVG_OK;
}

/* Whether a PULL asks again for what was served already: an honest
 * puller's cursor never goes back, and it pulls from the same cursor
 * again only after a HAVE moved our log's end. So this is a copy, or a
 * late one, of a PULL answered before. */
static bool
pull_is_repeat(const cvg_session *s, uint64_t cursor)
{
    if (s->pull_held && cursor == s->held_cursor) {
        return true;
    }
    return s->served_once &&
           (cursor < s->served_cursor ||
            (cursor == s->served_cursor && s->log_end == s->served_log_end));
}

int
cvg__session_on_pull(cvg_session *s, const cvg__msg *m)
{
    if (!s->got_hello) {
        return cvg__session_fail(s, CVG_EPROTO, "PULL before HELLO");
    }
    if (s->opts.no_serve) {
        return cvg__session_fail(s, CVG_EACCES,
                                 "this replica does not serve pulls");
    }
    if (s->opts.push) {
        return cvg__session_fail(s, CVG_EPROTO,
                                 "a PULL from a peer told we push");
    }
    /* One page in flight: a 5-byte PULL costs a page of up to page_bytes,
     * so pulls are answered one per ACK, never in a burst. */
    if (pull_is_repeat(s, m->cursor)) {
        return CVG_OK;
    }
    if (s->serve_unacked) {
        if (s->pull_held) {
            return cvg__session_fail(s, CVG_EPROTO,
                                     "a PULL while two wait for the ACK of "
                                     "the page served before");
        }
        /* The next PULL came before the ACK it follows (a transport may
         * reorder): it waits for that ACK. */
        s->pull_held = true;
        s->held_cursor = m->cursor;
        s->held_max_ops = m->max_ops;
        s->held_max_bytes = m->max_bytes;
        return CVG_OK;
    }
    return serve_pull(s, m->cursor, m->max_ops, m->max_bytes);
}

int
cvg__session_served_acked(cvg_session *s)
{
    if (!s->serve_unacked) {
        return CVG_OK;
    }
    s->serve_unacked = false;
    if (!s->pull_held) {
        return CVG_OK;
    }
    s->pull_held = false;
    return serve_pull(s, s->held_cursor, s->held_max_ops, s->held_max_bytes);
}

/*
 * Push: our own ops the peer's HELLO says it lacks, in PUSH pages queued
 * at once, the last saying so. They are found like the sync queue
 * (cvg__log_iter_open_origin), so a push costs what is new. Only our
 * own ops go: the peer (a server) needs no position in our log, and what
 * we relay from others it had first.
 */
int
cvg__session_push_own(cvg_session *s)
{
    cvg_replica *r = s->r;
    const cvg_replica_id *self = cvg__replica_self(r);
    /* What the peer's HELLO said it has, or (live) what we pushed. */
    uint64_t have =
        CVG__MAX(cvg__peer_vv_get(&s->peer_vv, self), s->push_own_max);
    uint64_t max_ops = CVG__MIN(s->opts.page_ops, PUSH_PAGE_OPS);
    uint64_t max_bytes = CVG__MIN(s->opts.page_bytes, PUSH_PAGE_BYTES);
    cvg_txn *t;
    int rc = cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t);
    if (rc != CVG_OK) {
        return cvg__session_fail(s, rc, "cannot read the log");
    }
    page p;
    page_init(&p);
    cvg__log_iter it;
    uint64_t n = 0, own_max = have;
    rc = cvg__log_iter_open_origin(cvg__replica_store(r), cvg__txn_store_txn(t),
                                   self, have + 1, &it);
    while (rc == CVG_OK) {
        cvg__op op;
        rc = cvg__log_iter_next(&it, &op);
        if (rc == CVG_OK) {
            rc = page_add(s, &p, t, &op, n, own_max);
        }
        if (rc != CVG_OK) {
            break;
        }
        own_max = op.pub.dot.seq;
        size_t open_len = p.run.open ? p.run.w.out.len : 0;
        if (++n == max_ops || p.bytes.len + open_len >= max_bytes) {
            rc = cvg__block_run_close(&p.run);
            if (rc == CVG_OK) {
                rc = page_points(s, t, &p);
            }
            if (rc == CVG_OK) {
                rc = page_enqueue(s, &p, CVG__MSG_PUSH, 0, true);
            }
            n = 0;
        }
    }
    rc = rc == CVG_DONE ? CVG_OK : rc;
    cvg__log_iter_close(&it);
    if (rc == CVG_OK) {
        rc = cvg__block_run_close(&p.run);
    }
    if (rc == CVG_OK) {
        rc = page_points(s, t, &p);
    }
    cvg_txn_abort(t);
    if (rc == CVG_OK) {
        rc = page_enqueue(s, &p, CVG__MSG_PUSH, 0, false); /* the last */
    }
    page_destroy(&p);
    if (rc != CVG_OK) {
        return cvg__session_fail(s, rc, "cannot build a push");
    }
    s->stats.ops_sent += own_max - have;
    s->pushed = true;
    s->push_own_max = own_max;
    cvg__peer_change ch = {.sent = own_max};
    cvg__session_note(s, &ch);
    return CVG_OK;
}
