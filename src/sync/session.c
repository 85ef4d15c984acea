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
 */
#include <stddef.h>
#include <stdio.h>

#include "../replica/replica_int.h"
#include "wire.h"

#define HELLO_PULLS 1u  /* flag: this side will pull */
#define HELLO_PUSHES 2u /* flag: this side will push its own ops */

/* Most ops in a PUSH page: the receiver never asked for a size, so both
 * sides hold to this one (the default page size). */
#define PUSH_PAGE_OPS 65536u

struct cvg_session {
    cvg_replica *r;
    cvg_session_options opts;
    int error;
    bool got_hello;
    bool peer_pulls;
    bool pulling;    /* a PULL of ours is unanswered */
    bool pulled;     /* we sent a PULL: pages may come */
    uint64_t pull_cursor; /* where our last PULL starts */
    bool pull_done;  /* we have all the peer had when it answered */
    bool served;     /* the peer has pulled all we have */
    bool ended;      /* the END or ERROR event was given */
    /* Status learned but not yet stored: it rides on the next page commit,
     * or, when the session ends, waits for the replica's next commit
     * (sync_deferred.c), instead of a durable commit (an fsync) each time
     * something is learned. */
    cvg__peer_change change;
    bool change_dirty;
    bool acked_all;  /* the peer confirmed our last page */
    /* Push (cvg_session_options.push): our own ops go unasked. */
    bool peer_pushes;    /* the peer's HELLO said it pushes */
    bool push_in_done;   /* its last PUSH page is committed here */
    bool pushed;         /* our PUSH pages are queued */
    uint64_t push_own_max; /* the highest seq of ours in them */
    bool push_acked;     /* the peer confirmed them */
    cvg__vv peer_vv;
    cvg_session_stats stats;
    /* Pages we served: where each ended in our log, and the highest seq of
     * our own ops in it, to learn what the peer has when it pulls again. */
    struct served_page {
        uint64_t next_cursor;
        uint64_t own_max;
    } *pages;
    size_t npages;
    size_t cappages;
    /* Outgoing messages, oldest first; out[0 .. out_head) were given out. */
    cvg__buf *out;
    size_t nout;
    size_t capout;
    size_t out_head;
    cvg__msg_scratch scratch;
    char why[256];   /* the detail of a refused page, for the ERROR */
};

void
cvg_session_options_init(cvg_session_options *o)
{
    memset(o, 0, sizeof *o);
    o->version = CVG_SESSION_OPTIONS_VERSION;
    o->page_ops = 65536;
    o->page_bytes = 1u << 20;
}

static int
enqueue(cvg_session *s, const cvg__msg *m)
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

static uint64_t
now_ms(const cvg_session *s)
{
    return s->r->opts.clock(s->r->opts.clock_ctx);
}

static void
event(cvg_session *s, cvg_sync_event_kind kind, int error)
{
    cvg_replica *r = s->r;
    if (r->opts.on_sync != NULL) {
        cvg_sync_event e = {kind, s->stats.peer, s->stats, error};
        r->opts.on_sync(r->opts.sync_ctx, &e);
    }
}

static void
set_active(cvg_session *s, bool on)
{
    cvg_replica *r = s->r;
    for (size_t i = 0; i < r->n_active; i++) {
        if (cvg__id_cmp(&r->active[i], &s->stats.peer) == 0) {
            if (!on) {
                r->active[i] = r->active[--r->n_active];
            }
            return;
        }
    }
    void *arr = r->active;
    if (on && cvg__grow(&arr, &r->cap_active, r->n_active + 1,
                        sizeof *r->active) == CVG_OK) {
        r->active = arr;
        r->active[r->n_active++] = s->stats.peer;
    }
}

/* Record what we learned of the peer, to be stored with the next commit. */
static void
note_peer(cvg_session *s, const cvg__peer_change *ch)
{
    cvg__peer_change *c = &s->change;
    c->acked = CVG__MAX(c->acked, ch->acked);
    c->sent = CVG__MAX(c->sent, ch->sent);
    c->attempt_ms = ch->attempt_ms ? ch->attempt_ms : c->attempt_ms;
    c->ok_ms = ch->ok_ms ? ch->ok_ms : c->ok_ms;
    c->error = ch->error ? ch->error : c->error;
    c->fail_code = ch->fail_code ? ch->fail_code : c->fail_code;
    s->change_dirty = true;
}

/* Hand what is pending to the replica (the session ends): it is stored
 * with the next commit. Best effort: the sync status may lag after a
 * crash; the data never does. */
static void
store_peer(cvg_session *s)
{
    if (s->got_hello && s->change_dirty) {
        (void)cvg__peer_update(s->r, &s->stats.peer, &s->change);
    }
    memset(&s->change, 0, sizeof s->change);
    s->change_dirty = false;
}

/* The highest own seq in pages the peer has confirmed by pulling from
 * @p cursor on (or, with UINT64_MAX, by acknowledging the last page). */
static uint64_t
confirmed(const cvg_session *s, uint64_t cursor)
{
    uint64_t best = 0;
    for (size_t i = 0; i < s->npages; i++) {
        if (s->pages[i].next_cursor <= cursor) {
            best = CVG__MAX(best, s->pages[i].own_max);
        }
    }
    return best;
}

/* Once both directions are complete: remember it, and tell the app. */
static void
check_end(cvg_session *s)
{
    if (s->ended || !cvg_session_done(s)) {
        return;
    }
    s->ended = true;
    cvg__peer_change ch = {.ok_ms = now_ms(s)};
    if (s->acked_all || !s->peer_pulls) {
        ch.acked = confirmed(s, UINT64_MAX);
    }
    if (s->push_acked) {
        ch.acked = CVG__MAX(ch.acked, s->push_own_max);
    }
    note_peer(s, &ch);
    store_peer(s);
    set_active(s, false);
    event(s, CVG_SYNC_EVENT_END, CVG_OK);
}

/* End the session with @p rc, telling the peer why. */
static int
fail(cvg_session *s, int rc, const char *why)
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
        (void)enqueue(s, &m); /* best effort: the error stands anyway */
        cvg__peer_change ch = {.error = rc};
        note_peer(s, &ch);
        store_peer(s);
        cvg__replica_fail(s->r, rc, "sync: %s", why);
        if (!s->ended) {
            s->ended = true;
            set_active(s, false);
            event(s, CVG_SYNC_EVENT_ERROR, rc);
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
           opts->version >= 2 ? sizeof s->opts
                              : offsetof(cvg_session_options, push));
    s->opts.version = CVG_SESSION_OPTIONS_VERSION;
    if (s->opts.page_ops == 0) {
        s->opts.page_ops = 65536;
    }
    if (s->opts.page_bytes == 0) {
        s->opts.page_bytes = 1u << 20;
    }
    s->pull_done = opts->no_pull;

    /* HELLO carries the committed version vector. */
    cvg_txn *t;
    int rc = cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t);
    if (rc == CVG_OK) {
        cvg__msg m;
        memset(&m, 0, sizeof m);
        m.type = CVG__MSG_HELLO;
        m.version = CVG_PROTOCOL_VERSION;
        m.id = r->id;
        m.vv = t->vv.e;
        m.vv_n = t->vv.n;
        m.flags = (s->opts.no_pull ? 0 : HELLO_PULLS) |
                  (s->opts.push ? HELLO_PUSHES : 0);
        rc = enqueue(s, &m);
        cvg_txn_abort(t);
    }
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
        store_peer(s);
        set_active(s, false);
    }
    cvg__free(s->pages);
    for (size_t i = 0; i < s->nout; i++) {
        cvg__buf_free(&s->out[i]);
    }
    cvg__free(s->out);
    cvg__vv_destroy(&s->peer_vv);
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
    return s != NULL && s->error == CVG_OK && s->got_hello && s->pull_done &&
           (s->acked_all || !s->peer_pulls) &&
           (s->push_acked || !s->opts.push);
}

int
cvg_session_error(const cvg_session *s)
{
    return s ? s->error : CVG_EINVAL;
}

void
cvg_session_stats_get(const cvg_session *s, cvg_session_stats *out)
{
    if (s != NULL && out != NULL) {
        *out = s->stats;
    }
}

static int
send_pull(cvg_session *s)
{
    cvg_txn *t;
    int rc = cvg_txn_begin(s->r, CVG_TXN_READ_ONLY, &t);
    cvg__peer_rec rec;
    rec.cursor = 1;
    if (rc == CVG_OK) {
        rc = cvg__peer_get(&s->r->store, t->mt, &s->stats.peer, &rec, NULL);
        cvg_txn_abort(t);
    }
    uint64_t cursor = rec.cursor;
    if (rc != CVG_OK) {
        return fail(s, rc, "cannot read the sync position");
    }
    cvg__msg m;
    memset(&m, 0, sizeof m);
    m.type = CVG__MSG_PULL;
    m.version = CVG_PROTOCOL_VERSION;
    m.cursor = cursor;
    m.max_ops = s->opts.page_ops;
    m.max_bytes = s->opts.page_bytes;
    rc = enqueue(s, &m);
    if (rc != CVG_OK) {
        return fail(s, rc, "cannot queue a pull");
    }
    s->pulling = true;
    s->pulled = true;
    s->pull_cursor = cursor ? cursor : 1;
    return CVG_OK;
}

static int push_own_ops(cvg_session *s);

static int
on_hello(cvg_session *s, const cvg__msg *m)
{
    if (s->got_hello) {
        /* A transport that repeats a message is no reason to give up. */
        if (cvg__id_cmp(&m->id, &s->stats.peer) == 0) {
            return CVG_OK;
        }
        return fail(s, CVG_EPROTO, "a HELLO from a second peer");
    }
    if (cvg__id_cmp(&m->id, &s->r->id) == 0) {
        return fail(s, CVG_EINVAL, "the peer is this replica");
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
            return fail(s, rc, "out of memory");
        }
    }
    /* A peer with more of our ops than we made: this replica was restored
     * from an older copy (its next ops would reuse seqs the world already
     * knows, with other content), or the peer lies. Either way, stop. */
    uint64_t claimed = cvg__vv_get(&s->peer_vv, &s->r->id);
    if (claimed > 0) {
        cvg_txn *t;
        int rc = cvg_txn_begin(s->r, CVG_TXN_READ_ONLY, &t);
        if (rc != CVG_OK) {
            return fail(s, rc, "cannot read the version vector");
        }
        uint64_t mine = cvg__vv_get(&t->vv, &s->r->id);
        cvg_txn_abort(t);
        if (claimed > mine) {
            snprintf(s->why, sizeof s->why,
                     "the peer has this replica's ops up to seq %llu, but it "
                     "made only %llu: restored from an older copy?",
                     (unsigned long long)claimed, (unsigned long long)mine);
            return fail(s, CVG_EFORGED, s->why);
        }
    }
    /* What the peer has of ours is committed there. */
    cvg__peer_change ch = {.acked = cvg__vv_get(&s->peer_vv, &s->r->id),
                           .attempt_ms = now_ms(s)};
    note_peer(s, &ch);
    set_active(s, true);
    event(s, CVG_SYNC_EVENT_START, CVG_OK);
    if (s->opts.push) {
        int rc = push_own_ops(s);
        if (rc != CVG_OK) {
            return rc;
        }
    }
    return s->opts.no_pull || s->peer_pushes ? CVG_OK : send_pull(s);
}

/* A page of our log for the peer: ops from a cursor on, in log order,
 * without those the peer said it has, in blocks of consecutive ops of one
 * origin. */
typedef struct page {
    cvg__buf bytes;      /* the blocks, back to back */
    size_t *ends;        /* end offset of each block */
    size_t nblocks;
    size_t capblocks;
    cvg__block_run run;
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
    cvg__block_run_destroy(&p->run);
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
        rc = enqueue(s, &m);
    }
    cvg__free(blocks);
    if (rc == CVG_OK) {
        s->stats.pages_sent++;
        p->bytes.len = 0;
        p->nblocks = 0;
    }
    return rc;
}

static int
on_pull(cvg_session *s, const cvg__msg *m)
{
    if (!s->got_hello) {
        return fail(s, CVG_EPROTO, "PULL before HELLO");
    }
    if (s->opts.no_serve) {
        return fail(s, CVG_EACCES, "this replica does not serve pulls");
    }
    if (s->opts.push) {
        return fail(s, CVG_EPROTO, "a PULL from a peer told we push");
    }
    /* Pulling from here on confirms the pages that ended before. */
    uint64_t own_max = confirmed(s, m->cursor);
    if (own_max > 0) {
        cvg__peer_change ch = {.acked = own_max};
        note_peer(s, &ch);
    }
    /* A page is built in memory: whatever the peer asks (0 is "no
     * limit"), it is no larger than our own page limits. */
    uint64_t max_ops = m->max_ops ? m->max_ops : UINT64_MAX;
    uint64_t max_bytes = m->max_bytes ? m->max_bytes : UINT64_MAX;
    max_ops = CVG__MIN(max_ops, s->opts.page_ops);
    max_bytes = CVG__MIN(max_bytes, s->opts.page_bytes);
    cvg_txn *t;
    int rc = cvg_txn_begin(s->r, CVG_TXN_READ_ONLY, &t);
    if (rc != CVG_OK) {
        return fail(s, rc, "cannot read the log");
    }
    if (m->cursor > t->next_lsn) {
        /* A position we never reached: the peer's is forged, or this
         * replica was restored from an older copy and would hand out
         * those lsns again for other ops, which the peer would skip. */
        uint64_t end = t->next_lsn;
        cvg_txn_abort(t);
        snprintf(s->why, sizeof s->why,
                 "PULL from lsn %llu, past the end of this log (%llu)",
                 (unsigned long long)m->cursor, (unsigned long long)end - 1);
        return fail(s, CVG_EPROTO, s->why);
    }
    page p;
    page_init(&p);
    cvg__log_iter it;
    rc = cvg__log_iter_open(&s->r->store, t->mt, m->cursor, &it);
    uint64_t next = m->cursor ? m->cursor : 1, n = 0;
    cvg__op op;
    bool more = false;
    while (rc == CVG_OK) {
        size_t open_len = p.run.open ? p.run.w.out.len : 0;
        if (n >= max_ops || p.bytes.len + open_len >= max_bytes) {
            more = true; /* told below whether anything is left */
            break;
        }
        /* Whole blocks the peer has are skipped by their header: a peer
         * that relays our ops back would otherwise cost a decode of each. */
        cvg__log_span span;
        rc = cvg__log_iter_span(&it, &span);
        if (rc != CVG_OK) {
            break;
        }
        if (span.last_seq <= cvg__vv_get(&s->peer_vv, &span.origin)) {
            if (cvg__id_cmp(&span.origin, &s->r->id) == 0) {
                own_max = CVG__MAX(own_max, span.last_seq);
            }
            next = span.last_lsn + 1;
            cvg__log_iter_skip_span(&it);
            continue;
        }
        rc = cvg__log_iter_next(&it, &op);
        if (rc != CVG_OK) {
            break;
        }
        next = op.pub.lsn + 1;
        if (cvg__id_cmp(&op.pub.dot.origin, &s->r->id) == 0) {
            own_max = CVG__MAX(own_max, op.pub.dot.seq);
        }
        if (cvg__vv_contains(&s->peer_vv, &op.pub.dot)) {
            continue; /* the peer said it has this one */
        }
        rc = cvg__block_run_add(&p.run, &op);
        n++;
    }
    if (more) {
        rc = cvg__log_iter_next(&it, &op);
        more = rc == CVG_OK;
        rc = rc == CVG_OK || rc == CVG_DONE ? CVG_OK : rc;
    } else if (rc == CVG_DONE) {
        rc = CVG_OK;
    }
    cvg__log_iter_close(&it);
    cvg_txn_abort(t);
    if (rc == CVG_OK) {
        rc = page_enqueue(s, &p, CVG__MSG_OPS, next, more);
    }
    page_destroy(&p);
    if (rc != CVG_OK) {
        return fail(s, rc, "cannot build a page of ops");
    }
    s->stats.ops_sent += n;
    void *arr = s->pages;
    if (cvg__grow(&arr, &s->cappages, s->npages + 1, sizeof *s->pages) ==
        CVG_OK) {
        s->pages = arr;
        s->pages[s->npages].next_cursor = next;
        s->pages[s->npages].own_max = own_max;
        s->npages++;
    }
    cvg__peer_change ch = {.sent = own_max};
    note_peer(s, &ch);
    if (!more) {
        s->served = true;
    }
    return CVG_OK;
}

/*
 * Push: our own ops the peer's HELLO says it lacks, in PUSH pages queued
 * at once, the last saying so. They are found like the sync queue
 * (cvg__log_iter_open_origin), so a push costs what is new. Only our
 * own ops go: the peer (a server) needs no position in our log, and what
 * we relay from others it had first.
 */
static int
push_own_ops(cvg_session *s)
{
    cvg_replica *r = s->r;
    uint64_t have = cvg__vv_get(&s->peer_vv, &r->id);
    uint64_t max_ops = CVG__MIN(s->opts.page_ops, PUSH_PAGE_OPS);
    cvg_txn *t;
    int rc = cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t);
    if (rc != CVG_OK) {
        return fail(s, rc, "cannot read the log");
    }
    page p;
    page_init(&p);
    cvg__log_iter it;
    uint64_t n = 0, own_max = have;
    rc = cvg__log_iter_open_origin(&r->store, t->mt, &r->id, have + 1, &it);
    while (rc == CVG_OK) {
        cvg__op op;
        rc = cvg__log_iter_next(&it, &op);
        if (rc == CVG_OK) {
            rc = cvg__block_run_add(&p.run, &op);
        }
        if (rc != CVG_OK) {
            break;
        }
        own_max = op.pub.dot.seq;
        size_t open_len = p.run.open ? p.run.w.out.len : 0;
        if (++n == max_ops || p.bytes.len + open_len >= s->opts.page_bytes) {
            rc = page_enqueue(s, &p, CVG__MSG_PUSH, 0, true);
            n = 0;
        }
    }
    rc = rc == CVG_DONE ? CVG_OK : rc;
    cvg__log_iter_close(&it);
    cvg_txn_abort(t);
    if (rc == CVG_OK) {
        rc = page_enqueue(s, &p, CVG__MSG_PUSH, 0, false); /* the last */
    }
    page_destroy(&p);
    if (rc != CVG_OK) {
        return fail(s, rc, "cannot build a push");
    }
    s->stats.ops_sent += own_max - have;
    s->pushed = true;
    s->push_own_max = own_max;
    cvg__peer_change ch = {.sent = own_max};
    note_peer(s, &ch);
    return CVG_OK;
}

static cvg_key
rec_key(const cvg__conflict_rec *c)
{
    cvg_key k = {c->names, c->names + c->clen + 1,
                 c->names + c->clen + c->klen + 2};
    return k;
}

static bool
all_equal(const cvg_value *v, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        if (cvg__value_cmp(&v[0], &v[i]) != 0) {
            return false;
        }
    }
    return true;
}

/* Resolve one multi-value conflict with the app's resolver, writing the
 * merged value back as an op that replaces the siblings. */
static int
resolve_one(cvg_txn *t, const cvg_collection_policy *p, cvg__conflict_rec *c)
{
    cvg_key key = rec_key(c);
    cvg_value vals[64];
    size_t n = 0;
    int rc = cvg_mvregister_get(t, &key, vals, NULL, 64, &n);
    /* Resolved meanwhile, or all equal (resolving equal values on two
     * replicas would only make new siblings, forever). */
    if (rc != CVG_OK || n < 2 || n > 64 || all_equal(vals, n)) {
        return rc == CVG_ENOTFOUND ? CVG_OK : rc;
    }
    cvg_value out = cvg_value_nil(), copy;
    if (p->resolver(p->resolver_ctx, &key, vals, n, &out) != 0) {
        return CVG_OK; /* the app keeps the siblings */
    }
    rc = cvg__value_copy(&copy, &out); /* out may view what set frees */
    if (rc == CVG_OK) {
        rc = cvg_mvregister_set(t, &key, &copy, NULL);
        if (rc == CVG_OK) {
            cvg__value_free(&c->resolved);
            c->resolved = copy;
        } else {
            cvg__value_free(&copy);
        }
    }
    return rc;
}

/* After a page is committed: run the resolvers (one transaction for all),
 * then tell the app about every conflict. */
static int
settle_conflicts(cvg_session *s, cvg__conflict_rec *recs, size_t n)
{
    cvg_replica *r = s->r;
    cvg_txn *t = NULL;
    int rc = CVG_OK;
    for (size_t i = 0; rc == CVG_OK && i < n; i++) {
        cvg__conflict_rec *c = &recs[i];
        cvg_bytes coll = {(const uint8_t *)c->names, c->clen};
        const cvg_collection_policy *p = cvg__policy_for(r, coll);
        if (c->type != CVG_TYPE_MVREGISTER || p == NULL ||
            p->strategy != CVG_STRATEGY_RESOLVER || p->resolver == NULL) {
            continue;
        }
        if (t == NULL) {
            rc = cvg_txn_begin(r, 0, &t);
        }
        if (rc == CVG_OK) {
            rc = resolve_one(t, p, c);
        }
    }
    if (t != NULL) {
        rc = rc == CVG_OK ? cvg_txn_commit(t) : (cvg_txn_abort(t), rc);
    }
    for (size_t i = 0; r->opts.on_conflict != NULL && i < n; i++) {
        const cvg__conflict_rec *c = &recs[i];
        cvg_bytes coll = {(const uint8_t *)c->names, c->clen};
        const cvg_collection_policy *p = cvg__policy_for(r, coll);
        cvg_conflict ev = {
            .collection = coll,
            .key = {(const uint8_t *)c->names + c->clen + 1, c->klen},
            .field = {(const uint8_t *)c->names + c->clen + c->klen + 2,
                      c->flen},
            .type = c->type,
            .local = c->local,
            .remote = c->remote,
            .resolved = c->resolved,
            .strategy = p ? p->strategy : CVG_STRATEGY_LWW,
            .remote_dot = c->dot,
        };
        r->opts.on_conflict(r->opts.conflict_ctx, &ev);
    }
    return rc;
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
    return CVG_OK;
}

/* Apply every op of a page in one transaction, with the new position; on
 * any error nothing of the page is kept. */
static int
apply_page(cvg_session *s, const cvg__msg *m, const char **why)
{
    cvg_txn *t;
    int rc = cvg_txn_begin(s->r, 0, &t);
    if (rc != CVG_OK) {
        *why = "cannot begin a transaction";
        return rc;
    }
    t->collect_conflicts = true;
    bool push = m->type == CVG__MSG_PUSH;
    uint64_t limit = push ? PUSH_PAGE_OPS : s->opts.page_ops;
    uint64_t got = 0, dup = 0, conflicts = 0;
    bool detailed = false; /* the replica's message says which op */
    cvg__block_reader rd;
    memset(&rd, 0, sizeof rd);
    for (size_t i = 0; rc == CVG_OK && i < m->n_blocks; i++) {
        rc = cvg__block_open(&rd, m->blocks[i].data, m->blocks[i].len);
        cvg__op op;
        while (rc == CVG_OK && (rc = cvg__block_next(&rd, &op)) == CVG_OK) {
            if (got + dup >= limit) {
                rc = CVG_ELIMIT; /* more than our PULL asked for */
                snprintf(s->why, sizeof s->why,
                         "a page of more than the %lu ops %s",
                         (unsigned long)limit,
                         push ? "a push may hold" : "asked for");
                break;
            }
            if (push && cvg__id_cmp(&op.pub.dot.origin, &s->stats.peer) != 0) {
                /* A push carries the pusher's own ops only: relayed ops
                 * come by pulls, from a cursor in the relay's log. */
                rc = CVG_EPROTO;
                snprintf(s->why, sizeof s->why,
                         "a PUSH with an op (seq %llu) of another origin",
                         (unsigned long long)op.pub.dot.seq);
                break;
            }
            bool conflict;
            rc = cvg__txn_apply_remote(t, &op, &conflict);
            if (rc == CVG_DONE) {
                dup++;
                rc = CVG_OK;
            } else if (rc == CVG_OK) {
                got++;
                conflicts += conflict;
            } else {
                detailed = true;
            }
        }
        rc = rc == CVG_DONE ? CVG_OK : rc;
    }
    cvg__block_reader_destroy(&rd);
    if (rc == CVG_OK && !push) {
        rc = check_next_cursor(s, m, got + dup);
    }
    if (rc != CVG_OK) {
        if (detailed) {
            snprintf(s->why, sizeof s->why, "%s", cvg_replica_errmsg(s->r));
        }
        *why = detailed || rc == CVG_ELIMIT || rc == CVG_EPROTO
                   ? s->why
               : rc == CVG_ECORRUPT ? "malformed ops in a page"
               : rc == CVG_EVERSION ? "ops in a newer block encoding"
                                    : "cannot apply a page";
        cvg_txn_abort(t);
        return rc;
    }
    t->peer_set = true;
    t->peer = s->stats.peer;
    t->peer_cursor = m->next_cursor;
    t->peer_cursor_set = !push; /* a push says nothing of the peer's log */
    t->peer_change = s->change;
    /* The conflicts outlive the transaction: their events fire after it. */
    cvg__conflict_rec *recs = t->conflicts;
    size_t nrecs = t->nconflicts;
    t->conflicts = NULL;
    t->nconflicts = 0;
    rc = cvg_txn_commit(t);
    if (rc != CVG_OK) {
        cvg__conflicts_free(recs, nrecs);
        *why = "cannot commit a page";
        return rc;
    }
    memset(&s->change, 0, sizeof s->change); /* stored with the page */
    s->change_dirty = false;
    rc = settle_conflicts(s, recs, nrecs);
    cvg__conflicts_free(recs, nrecs);
    if (rc != CVG_OK) {
        *why = "cannot write a resolved value";
        return rc;
    }
    s->stats.ops_received += got;
    s->stats.ops_duplicate += dup;
    s->stats.conflicts += conflicts;
    s->stats.pages_received++;
    return CVG_OK;
}

/* The last page (pulled or pushed) is in: say so, so the peer knows we
 * have its ops. */
static int
send_ack(cvg_session *s)
{
    cvg__msg ack;
    memset(&ack, 0, sizeof ack);
    ack.type = CVG__MSG_ACK;
    ack.version = CVG_PROTOCOL_VERSION;
    ack.accepted = s->stats.ops_received;
    ack.duplicates = s->stats.ops_duplicate;
    ack.conflicts = s->stats.conflicts;
    int rc = enqueue(s, &ack);
    if (rc != CVG_OK) {
        return fail(s, rc, "cannot queue an acknowledgement");
    }
    return CVG_OK;
}

static int
on_ops(cvg_session *s, const cvg__msg *m)
{
    if (!s->pulling) {
        if (!s->pulled) {
            return fail(s, CVG_EPROTO, s->got_hello ? "a page nobody asked for"
                                                    : "OPS before HELLO");
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
    s->pulling = false;
    const char *why = "";
    int rc = apply_page(s, m, &why);
    if (rc != CVG_OK) {
        return fail(s, rc, why);
    }
    if (m->has_more) {
        return send_pull(s);
    }
    s->pull_done = true;
    return send_ack(s);
}

static int
on_push(cvg_session *s, const cvg__msg *m)
{
    if (!s->got_hello) {
        return fail(s, CVG_EPROTO, "PUSH before HELLO");
    }
    if (!s->peer_pushes) {
        return fail(s, CVG_EPROTO, "a PUSH from a peer that did not say it "
                                   "pushes");
    }
    if (s->push_in_done) {
        return CVG_OK; /* a repeat of the last: applied already */
    }
    const char *why = "";
    int rc = apply_page(s, m, &why);
    if (rc != CVG_OK) {
        return fail(s, rc, why);
    }
    if (m->has_more) {
        return CVG_OK;
    }
    s->push_in_done = true;
    s->pull_done = true;
    return send_ack(s);
}

static int
on_ack(cvg_session *s)
{
    if (s->opts.push) {
        /* The peer does not pull from us: this confirms our pushes. */
        if (!s->pushed) {
            return fail(s, CVG_EPROTO, "ACK before HELLO");
        }
        s->push_acked = true;
        cvg__peer_change ch = {.acked = s->push_own_max};
        note_peer(s, &ch);
        return CVG_OK;
    }
    if (s->stats.pages_sent == 0) {
        return fail(s, CVG_EPROTO, s->got_hello ? "an ACK for pages never sent"
                                                : "ACK before HELLO");
    }
    if (!s->served) {
        return CVG_OK; /* a late one from a page since superseded */
    }
    s->acked_all = true;
    cvg__peer_change ch = {.acked = confirmed(s, UINT64_MAX)};
    note_peer(s, &ch);
    return CVG_OK;
}

/* The peer gave up; do not answer an error with an error. If it refused
 * the ops we had sent (they would not apply there), they are failed. */
static int
on_error(cvg_session *s, const cvg__msg *m)
{
    s->error = CVG_EPEER;
    cvg__peer_change ch = {.error = CVG_EPEER};
    if ((s->npages > 0 || s->pushed) &&
        (m->code == CVG_EGAP || m->code == CVG_ECLOCK ||
                          m->code == CVG_ECORRUPT)) {
        ch.fail_code = m->code;
    }
    note_peer(s, &ch);
    store_peer(s);
    cvg__replica_fail(s->r, CVG_EPEER, "sync: the peer ended with %s: %.*s",
                      cvg_errname(m->code), (int)m->text.len,
                      (const char *)m->text.data);
    if (!s->ended) {
        s->ended = true;
        set_active(s, false);
        event(s, CVG_SYNC_EVENT_ERROR, CVG_EPEER);
    }
    return CVG_EPEER;
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
        return fail(s, rc, "the peer speaks a newer protocol");
    }
    if (rc != CVG_OK) {
        return fail(s, rc, "malformed message");
    }
    switch (m.type) {
    case CVG__MSG_HELLO:
        rc = on_hello(s, &m);
        break;
    case CVG__MSG_PULL:
        rc = on_pull(s, &m);
        break;
    case CVG__MSG_OPS:
        rc = on_ops(s, &m);
        break;
    case CVG__MSG_PUSH:
        rc = on_push(s, &m);
        break;
    case CVG__MSG_ACK:
        rc = on_ack(s);
        break;
    case CVG__MSG_ERROR:
        return on_error(s, &m);
    default:
        return fail(s, CVG_EPROTO, "a message this version does not use");
    }
    if (rc == CVG_OK) {
        check_end(s);
    }
    return rc;
}

int
cvg_sync_local(cvg_replica *a, cvg_replica *b, cvg_session_stats *stats_out)
{
    if (a == NULL || b == NULL || a == b) {
        return CVG_EINVAL;
    }
    cvg_session *sa = NULL, *sb = NULL;
    int rc = cvg_session_open(a, NULL, &sa);
    if (rc == CVG_OK) {
        rc = cvg_session_open(b, NULL, &sb);
    }
    /* Carry messages both ways until neither side has anything to say.
     * After an error too: the failing side's ERROR must reach the other,
     * which records why its ops were refused. */
    bool moved = rc == CVG_OK;
    while (moved) {
        moved = false;
        cvg_bytes msg;
        while (cvg_session_output(sa, &msg) == CVG_OK) {
            moved = true;
            int irc = cvg_session_input(sb, msg.data, msg.len);
            rc = rc == CVG_OK ? irc : rc;
        }
        while (cvg_session_output(sb, &msg) == CVG_OK) {
            moved = true;
            int irc = cvg_session_input(sa, msg.data, msg.len);
            rc = rc == CVG_OK ? irc : rc;
        }
    }
    if (rc == CVG_OK && !(cvg_session_done(sa) && cvg_session_done(sb))) {
        rc = CVG_EMISUSE; /* cannot happen: the protocol stalled */
    }
    if (stats_out != NULL && sa != NULL) {
        cvg_session_stats_get(sa, stats_out);
    }
    cvg_session_close(sa);
    cvg_session_close(sb);
    return rc;
}
