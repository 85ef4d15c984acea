/*
 * The sync status of this replica's own ops relative to each peer, computed
 * from the peer records (src/oplog/peer_store.c) and what waits in memory
 * for the next commit (deferred.c): our ops are seqs 1..N of our
 * origin, so committed, syncing and pending are ranges; only refused ops
 * have records of their own. The record also gives who the peer is and
 * where it was last seen (its key, address and last contact).
 */
#include <stddef.h>

#include "sync_int.h"

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
    cvg__store *s = cvg__replica_store(cvg_txn_replica(t));
    *rc_out =
        cvg__failed_list(s, cvg__txn_store_txn(t), peer, above, out, cap, &n);
    return n;
}

static int status_fill(cvg_replica *r, const cvg_replica_id *peer,
                       cvg_sync_status *out);

int
cvg_sync_status_get(cvg_replica *r, const cvg_replica_id *peer,
                    cvg_sync_status *out, size_t size)
{
    /* The caller's struct may be older (smaller) than ours: it gets the
     * fields it knows, down to the struct of 0.2.0, which ends at
     * last_error. A newer (larger) one gets zeros past ours. */
    if (r == NULL || peer == NULL || out == NULL ||
        size < offsetof(cvg_sync_status, key)) {
        return CVG_EINVAL;
    }
    cvg_sync_status full;
    int rc = status_fill(r, peer, &full);
    memset(out, 0, size);
    if (rc == CVG_OK) {
        memcpy(out, &full, CVG__MIN(size, sizeof full));
    }
    return rc;
}

static int
status_fill(cvg_replica *r, const cvg_replica_id *peer, cvg_sync_status *out)
{
    memset(out, 0, sizeof *out);
    cvg_txn *t;
    int rc = begin_read(r, &t);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg__peer_rec p;
    rc = cvg__peer_get(cvg__replica_store(r), cvg__txn_store_txn(t), peer, &p,
                       NULL);
    cvg__peer_overlay(r, peer, &p);
    uint64_t mine = cvg__vv_get(cvg__txn_vv(t), cvg__replica_self(r));
    uint64_t failed = 0;
    if (rc == CVG_OK) {
        failed = count_failed(t, peer, p.acked, NULL, 0, &rc);
    }
    cvg_txn_abort(t);
    if (rc == CVG_ECORRUPT) {
        char hex[33];
        cvg_replica_id_hex(peer, hex);
        return cvg__replica_fail(r, rc, "the record of peer %s is damaged",
                                 hex);
    }
    if (rc != CVG_OK) {
        return rc;
    }
    bool active = cvg__peer_active(r, peer);
    uint64_t acked = CVG__MIN(p.acked, mine);
    uint64_t sent = CVG__MIN(CVG__MAX(p.sent, acked), mine);
    out->committed = acked;
    out->failed = CVG__MIN(failed, mine - acked);
    /* Sent but unconfirmed ops are in flight only while a session is; a
     * refused one, though sent, is failed. */
    out->syncing =
        active ? sent - acked - CVG__MIN(out->failed, sent - acked) : 0;
    out->pending = mine - acked - out->failed - out->syncing;
    out->last_sync_ms = p.last_ok_ms;
    out->last_attempt_ms = p.last_attempt_ms;
    out->last_error = p.last_error;
    out->has_key = p.has_key;
    memcpy(out->key, p.key, sizeof out->key);
    memcpy(out->address, p.addr, sizeof out->address);
    out->last_contact_ms = p.last_contact_ms;
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
    cvg__store *s = cvg__replica_store(r);
    cvg__store_txn *mt = cvg__txn_store_txn(t);
    rc = cvg__peers_list(s, mt, out, cap, &n);
    /* Peers met since the last commit. */
    const cvg__sync_state *st = cvg__sync_state_find(r);
    for (size_t i = 0; rc == CVG_OK && st != NULL && i < st->n_deferred; i++) {
        const cvg_replica_id *id = &st->deferred[i].peer;
        cvg__peer_rec p;
        bool known;
        rc = cvg__peer_get(s, mt, id, &p, &known);
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
cvg_sync_failed(cvg_replica *r, const cvg_replica_id *peer, cvg_failed_op *out,
                size_t cap, size_t *count_out)
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
    rc = cvg__peer_get(cvg__replica_store(r), cvg__txn_store_txn(t), peer, &p,
                       NULL);
    cvg__peer_overlay(r, peer, &p);
    if (rc == CVG_OK) {
        *count_out = count_failed(t, peer, p.acked, out, cap, &rc);
    }
    cvg_txn_abort(t);
    return rc;
}

/* Forget the peer's refused ops and offer them again. */
static int
retry_write(void *ctx, cvg__store *s, cvg__store_txn *mt)
{
    const cvg_replica_id *peer = ctx;
    cvg__peer_rec p;
    int rc = cvg__peer_get(s, mt, peer, &p, NULL);
    if (rc == CVG_OK) {
        rc = cvg__failed_clear(s, mt, peer, UINT64_MAX);
    }
    if (rc == CVG_OK && p.sent > p.acked) {
        p.sent = p.acked; /* offered again, so pending, not syncing */
        rc = cvg__peer_put(s, mt, peer, &p);
    }
    return rc;
}

int
cvg_sync_retry_failed(cvg_replica *r, const cvg_replica_id *peer)
{
    if (r == NULL || peer == NULL) {
        return CVG_EINVAL;
    }
    /* What waited for a commit is stored with it (the replica's write). */
    cvg_replica_id id = *peer;
    return cvg__replica_write(r, retry_write, &id);
}

static int
forget_write(void *ctx, cvg__store *s, cvg__store_txn *mt)
{
    return cvg__peer_forget(s, mt, ctx);
}

int
cvg_sync_peer_forget(cvg_replica *r, const cvg_replica_id *peer)
{
    if (r == NULL || peer == NULL) {
        return CVG_EINVAL;
    }
    if (cvg__peer_active(r, peer)) {
        return cvg__replica_fail(r, CVG_EBUSY,
                                 "a session with that peer is open");
    }
    /* What waits for a commit goes first, so it cannot bring the record
     * back; the rest is stored with this commit. */
    cvg__peer_drop_deferred(r, peer);
    cvg_replica_id id = *peer;
    return cvg__replica_write(r, forget_write, &id);
}
