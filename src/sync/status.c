/*
 * The sync status of this replica's own ops relative to each peer, computed
 * from the peer records (src/oplog/peer_store.c) and what waits in memory
 * for the next commit (sync_deferred.c): our ops are seqs 1..N of our
 * origin, so committed, syncing and pending are ranges; only refused ops
 * have records of their own.
 */
#include "../replica/replica_int.h"

int
cvg__peer_update(cvg_replica *r, const cvg_replica_id *peer,
                 const cvg__peer_change *ch)
{
    if (r->opts.read_only) {
        return CVG_EREADONLY;
    }
    /* Refused ops get records of their own, which status reads count:
     * store those now, with whatever waited. Everything else waits for the
     * next commit, so that a session costs no commit of its own. */
    if (ch->fail_code == CVG_OK) {
        return cvg__peer_defer(r, peer, ch, NULL);
    }
    int rc = cvg__peer_defer(r, peer, ch, NULL);
    return rc == CVG_OK ? cvg__peer_deferred_flush(r) : rc;
}

/* ---- The public calls --------------------------------------------------- */

static int
begin_read(cvg_replica *r, cvg_txn **t)
{
    return cvg_txn_begin(r, CVG_TXN_READ_ONLY, t);
}

static uint64_t
count_failed(cvg_txn *t, const cvg_replica_id *peer, uint64_t above,
             cvg_failed_op *out, size_t cap, int *rc_out)
{
    uint64_t n = 0;
    *rc_out = cvg__failed_list(&t->r->store, t->mt, peer, above, out, cap, &n);
    return n;
}

bool
cvg__peer_active(const cvg_replica *r, const cvg_replica_id *peer)
{
    for (size_t i = 0; i < r->n_active; i++) {
        if (cvg__id_cmp(&r->active[i], peer) == 0) {
            return true;
        }
    }
    return false;
}

int
cvg_sync_status_get(cvg_replica *r, const cvg_replica_id *peer,
                    cvg_sync_status *out)
{
    if (r == NULL || peer == NULL || out == NULL) {
        return CVG_EINVAL;
    }
    memset(out, 0, sizeof *out);
    cvg_txn *t;
    int rc = begin_read(r, &t);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg__peer_rec p;
    rc = cvg__peer_get(&r->store, t->mt, peer, &p, NULL);
    cvg__peer_overlay(r, peer, &p);
    uint64_t mine = cvg__vv_get(&t->vv, &r->id);
    uint64_t failed = 0;
    if (rc == CVG_OK) {
        failed = count_failed(t, peer, p.acked, NULL, 0, &rc);
    }
    cvg_txn_abort(t);
    if (rc != CVG_OK) {
        return rc;
    }
    bool active = cvg__peer_active(r, peer);
    uint64_t acked = CVG__MIN(p.acked, mine);
    uint64_t sent = CVG__MIN(CVG__MAX(p.sent, acked), mine);
    out->committed = acked;
    out->failed = CVG__MIN(failed, mine - acked);
    /* Sent but unconfirmed ops are in flight only while a session is. */
    out->syncing = active ? sent - acked : 0;
    out->pending = mine - acked - out->failed - out->syncing;
    out->last_sync_ms = p.last_ok_ms;
    out->last_attempt_ms = p.last_attempt_ms;
    out->last_error = p.last_error;
    if (active) {
        out->state = CVG_SYNC_SYNCING;
    } else if (p.last_error != CVG_OK) {
        out->state = CVG_SYNC_ERROR;
    } else if (p.last_ok_ms != 0 && out->pending == 0 && out->failed == 0) {
        out->state = CVG_SYNC_SYNCED;
    } else {
        out->state = CVG_SYNC_OFFLINE;
    }
    return CVG_OK;
}

int
cvg_sync_peers(cvg_replica *r, cvg_replica_id *out, size_t cap,
               size_t *count_out)
{
    if (r == NULL || count_out == NULL || (cap > 0 && out == NULL)) {
        return CVG_EINVAL;
    }
    *count_out = 0;
    cvg_txn *t;
    int rc = begin_read(r, &t);
    if (rc != CVG_OK) {
        return rc;
    }
    size_t n = 0;
    rc = cvg__peers_list(&r->store, t->mt, out, cap, &n);
    /* Peers met since the last commit. */
    for (size_t i = 0; rc == CVG_OK && i < r->n_deferred; i++) {
        const cvg_replica_id *id = &r->deferred[i].peer;
        cvg__peer_rec p;
        bool known;
        rc = cvg__peer_get(&r->store, t->mt, id, &p, &known);
        if (rc == CVG_OK && !known) {
            if (n < cap) {
                out[n] = *id;
            }
            n++;
        }
    }
    cvg_txn_abort(t);
    *count_out = n;
    return rc;
}

int
cvg_sync_failed(cvg_replica *r, const cvg_replica_id *peer,
                cvg_failed_op *out, size_t cap, size_t *count_out)
{
    if (r == NULL || peer == NULL || count_out == NULL ||
        (cap > 0 && out == NULL)) {
        return CVG_EINVAL;
    }
    *count_out = 0;
    cvg_txn *t;
    int rc = begin_read(r, &t);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg__peer_rec p;
    rc = cvg__peer_get(&r->store, t->mt, peer, &p, NULL);
    cvg__peer_overlay(r, peer, &p);
    if (rc == CVG_OK) {
        *count_out = count_failed(t, peer, p.acked, out, cap, &rc);
    }
    cvg_txn_abort(t);
    return rc;
}

typedef struct retry_ctx {
    cvg_replica *r;
    cvg_replica_id peer;
} retry_ctx;

/* Forget the peer's refused ops and offer them again, with whatever
 * waited for a commit. */
static int
retry_write(void *ctx, cvg__store_txn *mt)
{
    retry_ctx *c = ctx;
    cvg__peer_rec p;
    int rc = cvg__peer_deferred_write(c->r, mt);
    if (rc == CVG_OK) {
        rc = cvg__peer_get(&c->r->store, mt, &c->peer, &p, NULL);
    }
    if (rc == CVG_OK) {
        rc = cvg__failed_clear(&c->r->store, mt, &c->peer, UINT64_MAX);
    }
    if (rc == CVG_OK && p.sent > p.acked) {
        p.sent = p.acked; /* offered again, so pending, not syncing */
        rc = cvg__peer_put(&c->r->store, mt, &c->peer, &p);
    }
    return rc;
}

int
cvg_sync_retry_failed(cvg_replica *r, const cvg_replica_id *peer)
{
    if (r == NULL || peer == NULL) {
        return CVG_EINVAL;
    }
    if (r->writer != NULL) {
        return cvg__replica_fail(r, CVG_EBUSY,
                                 "a write transaction is already open");
    }
    retry_ctx c = {r, *peer};
    int rc = cvg__store_write(&r->store, r->readers > 0, retry_write, &c);
    if (rc == CVG_OK) {
        cvg__peer_deferred_clear(r);
    }
    return rc;
}
