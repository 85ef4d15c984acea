/*
 * What sync keeps per replica in memory, and the commit hook that stores
 * it. What a session learns of its peer once its last page is in (the peer
 * acknowledged our ops, the session ended well, the pull cursor moved past
 * ops we already had) changes no data, so it is not worth a durable commit
 * of its own: it rides along with the next write transaction of the
 * replica, whoever makes it, or is written when the replica is flushed or
 * closed. Reads of the sync status see it at once. A crash may lose it, and
 * then the status lags until the next session, which learns it again; data
 * is never at stake. Refused ops are the exception (status.c stores them at
 * once). A page's new pull position is staged for the page's own commit:
 * stored with it or not at all.
 */
#include "sync_int.h"

static cvg__peer_deferred *
find(const cvg__sync_state *st, const cvg_replica_id *peer)
{
    for (size_t i = 0; st != NULL && i < st->n_deferred; i++) {
        if (cvg__id_cmp(&st->deferred[i].peer, peer) == 0) {
            return &st->deferred[i];
        }
    }
    return NULL;
}

static int
defer(cvg__sync_state *st, const cvg_replica_id *peer,
      const cvg__peer_change *ch, const uint64_t *cursor)
{
    cvg__peer_deferred *d = find(st, peer);
    if (d == NULL) {
        void *arr = st->deferred;
        int rc = cvg__grow(&arr, &st->cap_deferred, st->n_deferred + 1,
                           sizeof *st->deferred);
        st->deferred = arr;
        if (rc != CVG_OK) {
            return rc;
        }
        d = &st->deferred[st->n_deferred++];
        memset(d, 0, sizeof *d);
        d->peer = *peer;
    }
    cvg__peer_change_merge(&d->ch, ch);
    d->has_ch = true;
    if (cursor != NULL) {
        d->has_cursor = true;
        d->cursor = *cursor;
    }
    return CVG_OK;
}

/* ---- The hook ------------------------------------------------------------ */

static bool
hook_pending(void *ctx)
{
    const cvg__sync_state *st = ctx;
    return st->n_deferred > 0;
}

static int
apply_one(cvg__store *s, cvg__store_txn *t, const cvg__peer_deferred *d)
{
    int rc = CVG_OK;
    if (d->has_ch || d->has_cursor) {
        rc = cvg__peer_change_apply(s, t, &d->peer, &d->ch,
                                    d->has_cursor ? &d->cursor : NULL);
    }
    if (rc == CVG_OK && d->has_mem) {
        rc = cvg__peer_mem_put(s, t, &d->peer, (cvg_bytes){d->mem, d->mem_len});
    }
    return rc;
}

static void
free_mems(cvg__sync_state *st)
{
    for (size_t i = 0; i < st->n_deferred; i++) {
        cvg__free(st->deferred[i].mem);
        st->deferred[i].mem = NULL;
    }
}

static int
hook_write(void *ctx, cvg__store *s, cvg__store_txn *t)
{
    cvg__sync_state *st = ctx;
    for (size_t i = 0; i < st->n_deferred; i++) {
        int rc = apply_one(s, t, &st->deferred[i]);
        if (rc != CVG_OK) {
            return rc;
        }
    }
    /* What waited comes first: the staged change is newer. */
    return st->staged ? apply_one(s, t, &st->stage) : CVG_OK;
}

static void
hook_committed(void *ctx)
{
    cvg__sync_state *st = ctx;
    free_mems(st);
    st->n_deferred = 0;
    st->staged = false;
}

static void
hook_ended(void *ctx, bool empty)
{
    cvg__sync_state *st = ctx;
    if (st->staged && empty) {
        /* A page of ops we all had: its news waits for the next commit.
         * Best effort: without memory it is learned again next time. */
        (void)defer(st, &st->stage.peer, &st->stage.ch,
                    st->stage.has_cursor ? &st->stage.cursor : NULL);
    }
    st->staged = false;
}

static void
hook_destroy(void *ctx)
{
    cvg__sync_state *st = ctx;
    free_mems(st);
    cvg__free(st->active);
    cvg__free(st->deferred);
    cvg__free(st);
}

int
cvg__sync_state_of(cvg_replica *r, cvg__sync_state **out)
{
    *out = cvg__replica_hook_ctx(r);
    if (*out != NULL) {
        return CVG_OK;
    }
    cvg__sync_state *st = cvg__calloc(1, sizeof *st);
    if (st == NULL) {
        return CVG_ENOMEM;
    }
    st->r = r;
    cvg__commit_hook h = {hook_pending, hook_write,   hook_committed,
                          hook_ended,   hook_destroy, st};
    int rc = cvg__replica_hook_set(r, &h);
    if (rc != CVG_OK) {
        cvg__free(st);
        return rc;
    }
    *out = st;
    return CVG_OK;
}

cvg__sync_state *
cvg__sync_state_find(const cvg_replica *r)
{
    return cvg__replica_hook_ctx(r);
}

/* ---- What sessions and status calls use ---------------------------------- */

int
cvg__peer_stage(cvg_replica *r, const cvg_replica_id *peer,
                const cvg__peer_change *ch, const uint64_t *cursor)
{
    cvg__sync_state *st;
    int rc = cvg__sync_state_of(r, &st);
    if (rc != CVG_OK) {
        return rc;
    }
    memset(&st->stage, 0, sizeof st->stage);
    st->stage.peer = *peer;
    st->stage.ch = *ch;
    st->stage.has_cursor = cursor != NULL;
    st->stage.cursor = cursor ? *cursor : 0;
    st->staged = true;
    return CVG_OK;
}

int
cvg__peer_update(cvg_replica *r, const cvg_replica_id *peer,
                 const cvg__peer_change *ch)
{
    if (cvg__replica_opts(r)->read_only) {
        return CVG_EREADONLY;
    }
    cvg__sync_state *st;
    int rc = cvg__sync_state_of(r, &st);
    if (rc == CVG_OK) {
        rc = defer(st, peer, ch, NULL);
    }
    /* Refused ops get records of their own, which status reads count:
     * store those now, with whatever waited. Everything else waits for the
     * next commit, so that a session costs no commit of its own. */
    if (rc == CVG_OK && ch->fail_code != CVG_OK) {
        rc = cvg__replica_store_hook(r);
    }
    return rc;
}

void
cvg__peer_overlay(const cvg_replica *r, const cvg_replica_id *peer,
                  cvg__peer_rec *p)
{
    const cvg__peer_deferred *d = find(cvg__sync_state_find(r), peer);
    if (d != NULL) {
        cvg__peer_rec_merge(p, &d->ch, d->has_cursor ? &d->cursor : NULL);
    }
}

bool
cvg__peer_active(const cvg_replica *r, const cvg_replica_id *peer)
{
    const cvg__sync_state *st = cvg__sync_state_find(r);
    for (size_t i = 0; st != NULL && i < st->n_active; i++) {
        if (cvg__id_cmp(&st->active[i], peer) == 0) {
            return true;
        }
    }
    return false;
}

void
cvg__peer_set_active(cvg_replica *r, const cvg_replica_id *peer, bool on)
{
    cvg__sync_state *st;
    if (cvg__sync_state_of(r, &st) != CVG_OK) {
        return; /* best effort: the status says OFFLINE, not SYNCING */
    }
    for (size_t i = 0; i < st->n_active; i++) {
        if (cvg__id_cmp(&st->active[i], peer) == 0) {
            if (!on) {
                st->active[i] = st->active[--st->n_active];
            }
            return;
        }
    }
    void *arr = st->active;
    if (on && cvg__grow(&arr, &st->cap_active, st->n_active + 1,
                        sizeof *st->active) == CVG_OK) {
        st->active = arr;
        st->active[st->n_active++] = *peer;
    }
}

void
cvg__peer_drop_deferred(cvg_replica *r, const cvg_replica_id *peer)
{
    cvg__sync_state *st = cvg__sync_state_find(r);
    cvg__peer_deferred *d = find(st, peer);
    if (d != NULL) {
        cvg__free(d->mem);
        *d = st->deferred[--st->n_deferred];
    }
}

int
cvg__peer_mem_defer(cvg_replica *r, const cvg_replica_id *peer,
                    const uint8_t *mem, size_t len)
{
    if (cvg__replica_opts(r)->read_only) {
        return CVG_EREADONLY;
    }
    cvg__sync_state *st;
    int rc = cvg__sync_state_of(r, &st);
    if (rc != CVG_OK) {
        return rc;
    }
    uint8_t *copy = NULL;
    if (len > 0) {
        copy = cvg__alloc(len);
        if (copy == NULL) {
            return CVG_ENOMEM;
        }
        memcpy(copy, mem, len);
    }
    cvg__peer_deferred *d = find(st, peer);
    if (d == NULL) {
        void *arr = st->deferred;
        rc = cvg__grow(&arr, &st->cap_deferred, st->n_deferred + 1,
                       sizeof *st->deferred);
        st->deferred = arr;
        if (rc != CVG_OK) {
            cvg__free(copy);
            return rc;
        }
        d = &st->deferred[st->n_deferred++];
        memset(d, 0, sizeof *d);
        d->peer = *peer;
    }
    cvg__free(d->mem);
    d->has_mem = true;
    d->mem = copy;
    d->mem_len = len;
    return CVG_OK;
}

int
cvg__peer_mem_read(cvg_replica *r, cvg_txn *t, const cvg_replica_id *peer,
                   cvg__buf *out)
{
    out->len = 0;
    const cvg__peer_deferred *d = find(cvg__sync_state_find(r), peer);
    cvg_bytes b;
    int rc;
    if (d != NULL && d->has_mem) {
        b.data = d->mem;
        b.len = d->mem_len;
        rc = b.len > 0 ? CVG_OK : CVG_ENOTFOUND;
    } else {
        rc = cvg__peer_mem_get(cvg__replica_store(r), cvg__txn_store_txn(t),
                               peer, &b);
    }
    if (rc == CVG_OK) {
        rc = cvg__buf_append(out, b.data, b.len);
    }
    return rc;
}
