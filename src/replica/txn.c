/*
 * Transactions. A write transaction holds LMDB's write lock from begin to
 * commit, but keeps what it changes in memory: the decoded state of each
 * touched record in a cache, and new ops in encoded blocks. Commit writes
 * them once, so a thousand increments of one counter cost one state write.
 * Because everything written is still in memory at commit, a full map is
 * handled by aborting, growing the map and writing it all again.
 *
 * This file writes the cache (txn_cache.c) and the blocks (txn_log.c) into
 * the store transaction, and begins, commits and aborts; the commit also
 * stores what the floor above keeps through the commit hook (hook.c).
 */
#include "../oplog/op_lookup.h"
#include "types.h"

/* ---- Writing to LMDB ----------------------------------------------------- */

static int
put_entry(cvg_txn *t, cvg__entry *e)
{
    if (!e->present) {
        return cvg__state_del(&t->r->store, t->mt, e->key, e->klen);
    }
    const cvg__type_ops *ty = cvg__type_ops_of(e->type);
    if (ty == NULL) {
        return CVG_EINVAL;
    }
    t->vbuf.len = 0;
    int rc = ty->encode(e, &t->r->origins, &t->vbuf);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg_bytes v = {t->vbuf.p, t->vbuf.len};
    return cvg__state_put(&t->r->store, t->mt, e->key, e->klen, v);
}

/* Write what is dirty (all: what is modified) and the unstored blocks. */
static int write_meta(cvg_txn *t);

static int
write_out(cvg_txn *t, bool all)
{
    for (size_t i = 0; i < t->nlist; i++) {
        cvg__entry *e = t->list[i];
        if (e->type == 0 || !(all ? e->modified : e->dirty)) {
            continue;
        }
        int rc = put_entry(t, e);
        if (rc != CVG_OK) {
            return rc;
        }
        e->dirty = false;
    }
    int rc = cvg__block_run_close(&t->run);
    for (size_t i = 0; rc == CVG_OK && i < t->nblocks; i++) {
        cvg__pending_block *b = &t->blocks[i];
        if (b->stored && !all) {
            continue;
        }
        cvg_bytes bytes = {b->bytes.p, b->bytes.len};
        if (b->replaces_lsn != 0) {
            rc = cvg__log_drop_last(&t->r->store, t->mt, b->replaces_lsn,
                                    &b->origin, b->replaces_seq);
        }
        if (rc == CVG_OK) {
            rc = cvg__log_append(&t->r->store, t->mt, b->last_lsn, &b->origin,
                                 b->last_seq, bytes);
        }
        b->stored = rc == CVG_OK;
    }
    return rc;
}

/* The map filled: the store grows it and has us write everything again
 * into a new transaction (commit.c). Cursors of the old one are gone. */
static int
rewrite_out(void *ctx, cvg__store_txn *mt)
{
    cvg_txn *t = ctx;
    t->mt = mt;
    return write_out(t, true);
}

static int
rewrite_all(void *ctx, cvg__store_txn *mt)
{
    int rc = rewrite_out(ctx, mt);
    return rc == CVG_OK ? write_meta(ctx) : rc;
}

static void
drop_state_cursor(cvg_txn *t)
{
    cvg__state_cursor_close(&t->state_cur);
    t->epoch++; /* cursors of the old LMDB transaction are gone */
}

static cvg__rewrite
rewriter(cvg_txn *t, int (*fn)(void *, cvg__store_txn *))
{
    cvg__rewrite rw = {fn, t, t->start_gen, t->r->readers > 0};
    return rw;
}

static int
regrow(cvg_txn *t)
{
    drop_state_cursor(t);
    cvg__rewrite rw = rewriter(t, rewrite_out);
    return cvg__store_regrow(&t->r->store, &t->mt, &rw);
}

int
cvg__txn_flush(cvg_txn *t)
{
    if (t->failed) {
        return t->failed;
    }
    int rc = write_out(t, false);
    if (rc == CVG_EFULL) {
        rc = regrow(t);
    }
    if (rc != CVG_OK) {
        t->failed = rc;
    }
    return rc;
}

/* ---- Begin, commit, abort ------------------------------------------------ */

int
cvg_txn_begin(cvg_replica *r, unsigned flags, cvg_txn **out)
{
    if (out == NULL) {
        return CVG_EINVAL;
    }
    *out = NULL;
    if (r == NULL || (flags & ~CVG_TXN_READ_ONLY) != 0) {
        return CVG_EINVAL;
    }
    bool write = !(flags & CVG_TXN_READ_ONLY);
    if (write && r->opts.read_only) {
        return cvg__replica_fail(r, CVG_EREADONLY,
                                 "the replica was opened read-only");
    }
    if (write && r->writer != NULL) {
        return cvg__replica_fail(r, CVG_EBUSY,
                                 "a write transaction is already open");
    }
    cvg_txn *t = cvg__calloc(1, sizeof *t);
    if (t == NULL) {
        return CVG_ENOMEM;
    }
    t->r = r;
    t->write = write;
    int rc = cvg__store_begin(&r->store, write, &t->mt);
    /* The writer of this process already has the newest state; otherwise
     * adopt what other processes committed. */
    if (rc == CVG_OK && (write || r->writer == NULL)) {
        rc = cvg__replica_refresh(r, t->mt);
    }
    /* A writer changes a copy of its own; a reader shares the replica's
     * (no pass over the vector per transaction). */
    if (rc == CVG_OK && write) {
        rc = cvg__vv_copy(&t->vv, &r->vv);
        /* Its digest, if the replica keeps one, follows at commit from the
         * origins that moved: not two hashes per op. */
        t->vv.summed = false;
    }
    if (rc != CVG_OK) {
        cvg__store_abort(t->mt);
        cvg__vv_destroy(&t->vv);
        cvg__free(t);
        return cvg__replica_fail(r, rc, "cannot begin a transaction");
    }
    t->start_gen = r->gen;
    t->clock = r->clock;
    t->next_lsn = r->last_lsn + 1;
    t->origins_at_begin = r->origins.n;
    if (write) {
        r->writer = t;
        t->vvp = &t->vv;
    } else {
        r->readers++;
        t->vvp = &r->vv;
        t->next_sharer = r->vv_sharers;
        r->vv_sharers = t;
    }
    *out = t;
    return CVG_OK;
}

/* Take @p t off the list of readers that share the replica's vector. */
static void
unshare(cvg_txn *t)
{
    for (cvg_txn **p = &t->r->vv_sharers; *p != NULL; p = &(*p)->next_sharer) {
        if (*p == t) {
            *p = t->next_sharer;
            break;
        }
    }
    t->next_sharer = NULL;
}

int
cvg__replica_vv_detach(cvg_replica *r)
{
    /* Every copy first, so that a failure leaves every reader as it was. */
    for (cvg_txn *t = r->vv_sharers; t != NULL; t = t->next_sharer) {
        if (cvg__vv_copy(&t->vv, &r->vv) != CVG_OK) {
            return CVG_ENOMEM;
        }
    }
    while (r->vv_sharers != NULL) {
        cvg_txn *t = r->vv_sharers;
        r->vv_sharers = t->next_sharer;
        t->next_sharer = NULL;
        t->vvp = &t->vv;
    }
    return CVG_OK;
}

int
cvg__txn_vv_raise(cvg_txn *t, const cvg_replica_id *origin, uint64_t seq)
{
    if (t->nmoved == 0 || !cvg__id_eq(&t->moved[t->nmoved - 1], origin)) {
        void *a = t->moved;
        int rc = cvg__grow(&a, &t->capmoved, t->nmoved + 1, sizeof *t->moved);
        t->moved = a;
        if (rc != CVG_OK) {
            return rc;
        }
        t->moved[t->nmoved++] = *origin;
    }
    return cvg__vv_set(&t->vv, origin, seq);
}

static void
txn_free(cvg_txn *t)
{
    cvg_replica *r = t->r;
    if (!t->write && t->vvp == &r->vv) {
        unshare(t);
    }
    cvg__free(t->moved);
    cvg__state_cursor_close(&t->state_cur);
    cvg__store_abort(t->mt);
    if (t->write) {
        r->writer = NULL;
    } else if (r->readers > 0) {
        r->readers--;
    }
    cvg__txn_cache_clear(t);
    cvg__block_run_destroy(&t->run);
    for (size_t i = 0; i < t->nblocks; i++) {
        cvg__buf_free(&t->blocks[i].bytes);
    }
    cvg__free(t->blocks);
    cvg__buf_free(&t->kbuf);
    cvg__buf_free(&t->vbuf);
    cvg__vv_destroy(&t->vv);
    cvg__conflicts_free(t->conflicts, t->nconflicts);
    cvg__txn_history_free(t);
    cvg__op_lookup_destroy(t->dups);
    cvg__free(t->dups);
    cvg__free(t);
}

void
cvg_txn_abort(cvg_txn *t)
{
    if (t == NULL || t->grouped) {
        return;
    }
    if (t->write) {
        /* Origins first seen in this transaction were never stored. */
        cvg__origins_truncate(&t->r->origins, t->origins_at_begin);
        cvg__hook_ended(t->r, false);
    }
    txn_free(t);
}

static int
put_origin(cvg_txn *t, uint32_t idx, const cvg_replica_id *id)
{
    return cvg__origins_put(&t->r->store, t->mt, idx, id,
                            cvg__vv_get(&t->vv, id));
}

/* The replica's own seq goes to the meta record "ahead" (oplog_int.h),
 * which is in a page the commit writes anyway, instead of to the origin
 * table: a commit of local ops then leaves that table's pages alone. The
 * origin "ahead" named before, if another, gets its record in the table
 * first, with its seq from the vector. */
static int
write_ahead(cvg_txn *t)
{
    cvg_replica *r = t->r;
    t->ahead = r->ahead;
    uint32_t idx;
    if (cvg__vv_get(&t->vv, &r->id) == cvg__vv_get(&r->vv, &r->id) ||
        cvg__origins_find(&r->origins, &r->id, &idx) != CVG_OK ||
        idx >= t->origins_at_begin) {
        return CVG_OK; /* not moved, or new: the table has it below */
    }
    int rc = cvg__origins_put_ahead(&r->store, t->mt, idx,
                                    cvg__vv_get(&t->vv, &r->id));
    if (rc == CVG_OK && r->ahead.set && !cvg__id_eq(&r->ahead.id, &r->id)) {
        uint32_t was;
        rc = cvg__origins_find(&r->origins, &r->ahead.id, &was);
        rc = rc == CVG_OK ? put_origin(t, was, &r->ahead.id) : CVG_ECORRUPT;
    }
    if (rc == CVG_OK) {
        t->ahead.set = true;
        t->ahead.id = r->id;
    }
    return rc;
}

/* Meta and origin records: the VV entries that changed, new origins, the
 * clock, the last lsn and the generation. */
static int
write_meta(cvg_txn *t)
{
    cvg_replica *r = t->r;
    int rc = write_ahead(t);
    if (rc != CVG_OK) {
        return rc;
    }
    bool own_ahead = t->ahead.set && cvg__id_eq(&t->ahead.id, &r->id);
    /* The seqs that moved, each once: the commit costs what it changed,
     * however many origins there are. New origins: below. */
    if (t->nmoved > 1) {
        qsort(t->moved, t->nmoved, sizeof *t->moved, cvg__id_cmp_v);
    }
    for (size_t k = 0; k < t->nmoved; k++) {
        const cvg_replica_id *id = &t->moved[k];
        uint32_t idx;
        if ((k > 0 && cvg__id_eq(&t->moved[k - 1], id)) ||
            (own_ahead && cvg__id_eq(id, &r->id)) ||
            cvg__origins_find(&r->origins, id, &idx) != CVG_OK ||
            idx >= t->origins_at_begin) {
            continue;
        }
        rc = put_origin(t, idx, id);
        if (rc != CVG_OK) {
            return rc;
        }
    }
    for (size_t i = t->origins_at_begin; i < r->origins.n; i++) {
        rc = put_origin(t, (uint32_t)i, &r->origins.ids[i]);
        if (rc != CVG_OK) {
            return rc;
        }
    }
    rc = cvg__txn_history_write(t);
    if (rc != CVG_OK) {
        return rc;
    }
    /* The floor above stores what waited for a commit (sync's records). */
    rc = cvg__hook_write(r, t->mt);
    if (rc != CVG_OK) {
        return rc;
    }
    rc = cvg__meta_put_u64(&r->store, t->mt, "hlc", t->clock);
    if (rc == CVG_OK) {
        rc = cvg__meta_put_u64(&r->store, t->mt, "lsn", t->next_lsn - 1);
    }
    if (rc == CVG_OK) {
        rc = cvg__meta_put_u64(&r->store, t->mt, "gen", t->start_gen + 1);
    }
    return rc;
}

/* The digest of the vector @p t commits, from the replica's (the vector
 * it began from): each origin that moved, once (write_meta sorted them). */
static void
keep_sum(cvg_txn *t)
{
    const cvg__vv *was = &t->r->vv;
    if (!was->summed || t->vv.summed) {
        return;
    }
    cvg__vv_sum sum = was->sum;
    for (size_t k = 0; k < t->nmoved; k++) {
        const cvg_replica_id *id = &t->moved[k];
        if (k > 0 && cvg__id_eq(&t->moved[k - 1], id)) {
            continue;
        }
        cvg__vv_sum_entry(&sum, id, cvg__vv_get(was, id), -1);
        cvg__vv_sum_entry(&sum, id, cvg__vv_get(&t->vv, id), 1);
    }
    t->vv.sum = sum;
    t->vv.summed = true;
}

int
cvg_txn_commit(cvg_txn *t)
{
    if (t == NULL || t->grouped) {
        return CVG_EINVAL; /* a group's transaction: cvg_replica_write() */
    }
    cvg_replica *r = t->r;
    if (!t->write) {
        txn_free(t);
        return CVG_OK;
    }
    int rc = t->failed;
    if (rc == CVG_OK && t->n_ops == 0) {
        /* Nothing to store but, perhaps, what the hook was told for this
         * commit (news of a peer, with a page of ops we all had): that
         * waits for the next commit. */
        cvg__origins_truncate(&r->origins, t->origins_at_begin);
        cvg__hook_ended(r, true);
        txn_free(t);
        return CVG_OK;
    }
    if (rc == CVG_OK) {
        rc = cvg__replica_vv_detach(r);
    }
    if (rc == CVG_OK) {
        rc = write_out(t, false);
        if (rc == CVG_OK) {
            rc = write_meta(t);
        }
        drop_state_cursor(t);
        cvg__rewrite rw = rewriter(t, rewrite_all);
        rc = cvg__store_commit(&r->store, &t->mt, rc, &rw);
    }
    if (rc != CVG_OK) {
        if (rc != CVG_EFULL && rc != CVG_EBUSY) {
            cvg__replica_fail(r, rc, "commit failed: %s", cvg_strerror(rc));
        }
        cvg_txn_abort(t);
        return rc;
    }
    /* Publish what is now committed. The readers that share the vector
     * got their copies before the commit, where a failure can still
     * abort it. */
    cvg__hook_committed(r);
    cvg__txn_history_publish(t);
    cvg__txn_log_committed(t);
    keep_sum(t);
    cvg__vv tmp = r->vv;
    r->vv = t->vv;
    t->vv = tmp;
    r->ahead = t->ahead;
    r->clock = t->clock;
    r->last_lsn = t->next_lsn - 1;
    r->gen = t->start_gen + 1;
    txn_free(t);
    return CVG_OK;
}

/* ---- What the floor above sees (replica.h) ----------------------------- */

cvg__store_txn *
cvg__txn_store_txn(cvg_txn *t)
{
    return t->mt;
}

const cvg__vv *
cvg__txn_vv(const cvg_txn *t)
{
    return t->vvp;
}

void
cvg__txn_vv_sum(cvg_txn *t, uint8_t out[CVG__VV_SUM_BYTES])
{
    /* On the vector itself: for a reader that shares the replica's, the
     * sum stays on there, and every commit keeps it up to date. */
    cvg__vv *vv = t->vvp == &t->vv ? &t->vv : &t->r->vv;
    cvg__vv_sum_on(vv);
    cvg__vv_sum_bytes(&vv->sum, out);
}

uint64_t
cvg__txn_next_lsn(const cvg_txn *t)
{
    return t->next_lsn;
}

bool
cvg__txn_writable(const cvg_txn *t)
{
    return t->write;
}

int
cvg__txn_failed(const cvg_txn *t)
{
    return t->failed;
}

cvg__txn_stamp
cvg__txn_stamp_get(const cvg_txn *t)
{
    cvg__txn_stamp s = {t->wgen, t->epoch};
    return s;
}

bool
cvg__txn_stamp_valid(const cvg_txn *t, cvg__txn_stamp s)
{
    return t->wgen == s.wgen && t->epoch == s.epoch;
}

cvg_replica *
cvg_txn_replica(cvg_txn *t)
{
    return t ? t->r : NULL;
}

int
cvg_txn_version_vector(cvg_txn *t, cvg_dot *out, size_t cap, size_t *count_out)
{
    if (t == NULL || count_out == NULL || (cap > 0 && out == NULL)) {
        return CVG_EINVAL;
    }
    size_t n = t->vvp->n;
    for (size_t i = 0; i < n && i < cap; i++) {
        out[i] = t->vvp->e[i];
    }
    *count_out = n;
    return CVG_OK;
}
