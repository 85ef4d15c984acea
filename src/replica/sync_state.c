/*
 * What a replica remembers of each peer, durably: where our pulls from it
 * stand, and how far its copy of our own ops goes (acknowledged, sent). The
 * sync status and queue are computed from that, not stored per op: our ops
 * are seqs 1..N of our origin, so "pending" is a range. Refused ops are the
 * exception, kept one record each in the queue database until they are
 * retried or the peer has them.
 */
#include "replica_int.h"

#define REC_SIZE 48

static void
rec_encode(const cvg__peer_rec *p, uint8_t b[REC_SIZE])
{
    cvg__put_be64(b, p->cursor);
    cvg__put_be64(b + 8, p->acked);
    cvg__put_be64(b + 16, p->sent);
    cvg__put_be64(b + 24, p->last_ok_ms);
    cvg__put_be64(b + 32, p->last_attempt_ms);
    cvg__put_be64(b + 40, (uint64_t)(int64_t)p->last_error);
}

int
cvg__peer_get(cvg__store *s, MDB_txn *mt, const cvg_replica_id *peer,
              cvg__peer_rec *out)
{
    memset(out, 0, sizeof *out);
    out->cursor = 1;
    MDB_val k = {16, (void *)peer->bytes}, v;
    int mrc = mdb_get(mt, s->peers, &k, &v);
    if (mrc == MDB_NOTFOUND) {
        return CVG_OK;
    }
    if (mrc != MDB_SUCCESS) {
        return cvg__mdb_err(mrc);
    }
    if (v.mv_size != REC_SIZE) {
        return CVG_ECORRUPT;
    }
    const uint8_t *b = v.mv_data;
    out->cursor = cvg__get_be64(b);
    out->acked = cvg__get_be64(b + 8);
    out->sent = cvg__get_be64(b + 16);
    out->last_ok_ms = cvg__get_be64(b + 24);
    out->last_attempt_ms = cvg__get_be64(b + 32);
    out->last_error = (int)(int64_t)cvg__get_be64(b + 40);
    return CVG_OK;
}

int
cvg__peer_put(cvg__store *s, MDB_txn *mt, const cvg_replica_id *peer,
              const cvg__peer_rec *p)
{
    uint8_t b[REC_SIZE];
    rec_encode(p, b);
    MDB_val k = {16, (void *)peer->bytes}, v = {REC_SIZE, b};
    return cvg__mdb_err(mdb_put(mt, s->peers, &k, &v, 0));
}

/* Delete the failed records of @p peer with seq <= @p upto (all: UINT64_MAX). */
static int
clear_failed(cvg__store *s, MDB_txn *mt, const cvg_replica_id *peer,
             uint64_t upto)
{
    MDB_cursor *c;
    int rc = cvg__mdb_err(mdb_cursor_open(mt, s->queue, &c));
    if (rc != CVG_OK) {
        return rc;
    }
    uint8_t kb[24];
    memcpy(kb, peer->bytes, 16);
    cvg__put_be64(kb + 16, 0);
    int mrc;
    /* Seek again after each delete: where a cursor stands after deleting
     * the last record is not something to rely on. */
    for (;;) {
        MDB_val k = {24, kb}, v;
        mrc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        if (mrc != MDB_SUCCESS || k.mv_size != 24 ||
            memcmp(k.mv_data, peer->bytes, 16) != 0 ||
            cvg__get_be64((const uint8_t *)k.mv_data + 16) > upto) {
            break;
        }
        mrc = mdb_cursor_del(c, 0);
        if (mrc != MDB_SUCCESS) {
            break;
        }
    }
    mdb_cursor_close(c);
    return mrc == MDB_SUCCESS || mrc == MDB_NOTFOUND ? CVG_OK
                                                     : cvg__mdb_err(mrc);
}

void
cvg__peer_rec_merge(cvg__peer_rec *p, const cvg__peer_change *ch,
                    const uint64_t *cursor)
{
    if (cursor != NULL) {
        p->cursor = *cursor;
    }
    p->acked = CVG__MAX(p->acked, ch->acked);
    p->sent = CVG__MAX(p->sent, CVG__MAX(ch->sent, p->acked));
    if (ch->attempt_ms) {
        p->last_attempt_ms = ch->attempt_ms;
    }
    if (ch->ok_ms) {
        p->last_ok_ms = ch->ok_ms;
        p->last_error = CVG_OK;
    }
    if (ch->error) {
        p->last_error = ch->error;
    }
}

int
cvg__peer_change_apply(cvg__store *s, MDB_txn *mt, const cvg_replica_id *peer,
                       const cvg__peer_change *ch, const uint64_t *cursor)
{
    cvg__peer_rec p;
    int rc = cvg__peer_get(s, mt, peer, &p);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg__peer_rec_merge(&p, ch, cursor);
    rc = cvg__peer_put(s, mt, peer, &p);
    /* Ops the peer now has are no longer failed. */
    if (rc == CVG_OK && p.acked > 0) {
        rc = clear_failed(s, mt, peer, p.acked);
    }
    /* Refused ops: the ones sent and not acknowledged. */
    for (uint64_t seq = p.acked + 1;
         rc == CVG_OK && ch->fail_code && seq <= p.sent; seq++) {
        uint8_t kb[24], vb[4];
        memcpy(kb, peer->bytes, 16);
        cvg__put_be64(kb + 16, seq);
        cvg__put_be32(vb, (uint32_t)ch->fail_code);
        MDB_val k = {24, kb}, v = {4, vb};
        rc = cvg__mdb_err(mdb_put(mt, s->queue, &k, &v, 0));
    }
    return rc;
}

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
    MDB_cursor *c;
    *rc_out = cvg__mdb_err(mdb_cursor_open(t->mt, t->r->store.queue, &c));
    if (*rc_out != CVG_OK) {
        return 0;
    }
    uint8_t kb[24];
    memcpy(kb, peer->bytes, 16);
    cvg__put_be64(kb + 16, above + 1);
    MDB_val k = {24, kb}, v;
    uint64_t n = 0;
    int mrc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (mrc == MDB_SUCCESS && k.mv_size == 24 && v.mv_size == 4 &&
           memcmp(k.mv_data, peer->bytes, 16) == 0) {
        if (n < cap) {
            out[n].seq = cvg__get_be64((const uint8_t *)k.mv_data + 16);
            out[n].code = (int)(int32_t)cvg__get_be32(v.mv_data);
        }
        n++;
        mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND) {
        *rc_out = cvg__mdb_err(mrc);
    }
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
    rc = cvg__peer_get(&r->store, t->mt, peer, &p);
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
    MDB_cursor *c;
    rc = cvg__mdb_err(mdb_cursor_open(t->mt, r->store.peers, &c));
    size_t n = 0;
    MDB_val k, v;
    int mrc = rc == CVG_OK ? mdb_cursor_get(c, &k, &v, MDB_FIRST) : 0;
    while (rc == CVG_OK && mrc == MDB_SUCCESS) {
        if (k.mv_size == 16 && n < cap) {
            memcpy(out[n].bytes, k.mv_data, 16);
        }
        n += k.mv_size == 16;
        mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (rc == CVG_OK) {
        mdb_cursor_close(c);
        if (mrc != MDB_NOTFOUND) {
            rc = cvg__mdb_err(mrc);
        }
    }
    /* Peers met since the last commit. */
    for (size_t i = 0; rc == CVG_OK && i < r->n_deferred; i++) {
        const cvg_replica_id *id = &r->deferred[i].peer;
        MDB_val dk = {16, (void *)id->bytes}, dv;
        mrc = mdb_get(t->mt, r->store.peers, &dk, &dv);
        if (mrc == MDB_NOTFOUND) {
            if (n < cap) {
                out[n] = *id;
            }
            n++;
        } else if (mrc != MDB_SUCCESS) {
            rc = cvg__mdb_err(mrc);
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
    rc = cvg__peer_get(&r->store, t->mt, peer, &p);
    cvg__peer_overlay(r, peer, &p);
    if (rc == CVG_OK) {
        *count_out = count_failed(t, peer, p.acked, out, cap, &rc);
    }
    cvg_txn_abort(t);
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
    MDB_txn *mt;
    int rc = cvg__store_begin(&r->store, true, &mt);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg__peer_rec p;
    rc = cvg__peer_deferred_write(r, mt);
    if (rc == CVG_OK) {
        rc = cvg__peer_get(&r->store, mt, peer, &p);
    }
    if (rc == CVG_OK) {
        rc = clear_failed(&r->store, mt, peer, UINT64_MAX);
    }
    if (rc == CVG_OK && p.sent > p.acked) {
        p.sent = p.acked; /* offered again, so pending, not syncing */
        rc = cvg__peer_put(&r->store, mt, peer, &p);
    }
    if (rc == CVG_OK) {
        rc = cvg__mdb_err(mdb_txn_commit(mt));
    } else {
        mdb_txn_abort(mt);
    }
    if (rc == CVG_OK) {
        cvg__peer_deferred_clear(r);
    }
    return rc;
}
