/*
 * Changes to peer records that wait in memory for the next commit. What a
 * session learns of its peer once its last page is in (the peer
 * acknowledged our ops, the session ended well, the pull cursor moved past
 * ops we already had) changes no data, so it is not worth a durable commit
 * of its own: it rides along with the next write transaction, or is
 * written when the replica is closed or cvg_replica_sync() is called.
 * Reads of the sync status see it at once. A crash may lose it, and then
 * the status lags until the next session, which learns it again; data is
 * never at stake. Refused ops are the exception (sync_state.c stores them
 * at once).
 */
#include "../replica/replica_int.h"

static cvg__peer_deferred *
find(const cvg_replica *r, const cvg_replica_id *peer)
{
    for (size_t i = 0; i < r->n_deferred; i++) {
        if (cvg__id_cmp(&r->deferred[i].peer, peer) == 0) {
            return &r->deferred[i];
        }
    }
    return NULL;
}

/* Fold the later change @p ch into @p into, so that applying the result
 * equals applying both in turn. */
static void
merge(cvg__peer_change *into, const cvg__peer_change *ch)
{
    into->acked = CVG__MAX(into->acked, ch->acked);
    into->sent = CVG__MAX(into->sent, ch->sent);
    if (ch->attempt_ms) {
        into->attempt_ms = ch->attempt_ms;
    }
    if (ch->ok_ms) {
        into->ok_ms = ch->ok_ms;
        into->error = CVG_OK; /* a later success clears an earlier error */
    }
    if (ch->error) {
        into->error = ch->error;
    }
    if (ch->fail_code) {
        into->fail_code = ch->fail_code;
    }
}

int
cvg__peer_defer(cvg_replica *r, const cvg_replica_id *peer,
                const cvg__peer_change *ch, const uint64_t *cursor)
{
    cvg__peer_deferred *d = find(r, peer);
    if (d == NULL) {
        void *arr = r->deferred;
        int rc = cvg__grow(&arr, &r->cap_deferred, r->n_deferred + 1,
                           sizeof *r->deferred);
        r->deferred = arr;
        if (rc != CVG_OK) {
            return rc;
        }
        d = &r->deferred[r->n_deferred++];
        memset(d, 0, sizeof *d);
        d->peer = *peer;
    }
    merge(&d->ch, ch);
    if (cursor != NULL) {
        d->has_cursor = true;
        d->cursor = *cursor;
    }
    return CVG_OK;
}

void
cvg__peer_overlay(const cvg_replica *r, const cvg_replica_id *peer,
                  cvg__peer_rec *p)
{
    const cvg__peer_deferred *d = find(r, peer);
    if (d != NULL) {
        cvg__peer_rec_merge(p, &d->ch, d->has_cursor ? &d->cursor : NULL);
    }
}

int
cvg__peer_deferred_write(cvg_replica *r, cvg__store_txn *mt)
{
    for (size_t i = 0; i < r->n_deferred; i++) {
        const cvg__peer_deferred *d = &r->deferred[i];
        int rc = cvg__peer_change_apply(&r->store, mt, &d->peer, &d->ch,
                                        d->has_cursor ? &d->cursor : NULL);
        if (rc != CVG_OK) {
            return rc;
        }
    }
    return CVG_OK;
}

void
cvg__peer_deferred_clear(cvg_replica *r)
{
    r->n_deferred = 0;
}

static int
write_deferred(void *ctx, cvg__store_txn *mt)
{
    return cvg__peer_deferred_write(ctx, mt);
}

int
cvg__peer_deferred_flush(cvg_replica *r)
{
    if (r->n_deferred == 0 || r->opts.read_only) {
        return CVG_OK;
    }
    if (r->writer != NULL) {
        return CVG_OK; /* that transaction's commit will write them */
    }
    int rc = cvg__store_write(&r->store, r->readers > 0, write_deferred, r);
    if (rc == CVG_OK) {
        cvg__peer_deferred_clear(r);
    }
    return rc;
}
