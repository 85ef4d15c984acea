/*
 * Peer records: what a replica remembers of each peer, durably. A record
 * says where our pulls from the peer stand (the first lsn of its log we
 * lack) and how far its copy of our own ops goes (acknowledged, sent); the
 * sync status and queue are computed from that, not stored per op, because
 * our ops are seqs 1..N of our origin and "pending" is a range. Refused ops
 * are the exception: one record each in the queue database, keyed by peer
 * and seq, until they are retried or the peer has them. A record also
 * says who the peer is and where it was: the key it proved, its last
 * contact and the address it was last seen at.
 *
 * The record, big-endian:
 *   0   u64 cursor, u64 acked, u64 sent, u64 last_ok_ms,
 *       u64 last_attempt_ms, i64 last_error              (48 bytes)
 *   48  u8 flags (bit 0: a key follows; no other bit is used)
 *   49  32 bytes: the key, zeros without one
 *   81  u64 last_contact_ms
 *   89  u8 n, then n bytes: the address, printable ASCII, no NUL
 * Records of 48 bytes, written before the peer's key and address were
 * kept, read as such with those empty. The rest is read as hostile bytes:
 * the length must be exactly what n says, n at most
 * CVG_SYNC_ADDRESS_MAX - 1, the address printable and the unused flags
 * zero, or the record is CVG_ECORRUPT. (A library from before this
 * format reads any record longer than 48 bytes as damaged.)
 */
#include <lmdb.h>

#include "checksum.h"
#include "oplog_int.h"

#define REC_V1_SIZE 48
#define REC_FIXED 90 /* the longer record without its address */
#define REC_MAX (REC_FIXED + CVG_SYNC_ADDRESS_MAX - 1)
#define FLAG_KEY 1u

bool
cvg__peer_addr_ok(const char *s, size_t len)
{
    if (len == 0 || len >= CVG_SYNC_ADDRESS_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e) {
            return false; /* no NUL, no control byte, nothing past ASCII */
        }
    }
    return true;
}

/* The record's bytes into @p b; its length. */
static size_t
rec_encode(const cvg__peer_rec *p, uint8_t b[REC_MAX])
{
    cvg__put_be64(b, p->cursor);
    cvg__put_be64(b + 8, p->acked);
    cvg__put_be64(b + 16, p->sent);
    cvg__put_be64(b + 24, p->last_ok_ms);
    cvg__put_be64(b + 32, p->last_attempt_ms);
    cvg__put_be64(b + 40, (uint64_t)(int64_t)p->last_error);
    b[48] = p->has_key ? FLAG_KEY : 0;
    if (p->has_key) {
        memcpy(b + 49, p->key, CVG_PUBLIC_KEY_BYTES);
    } else {
        memset(b + 49, 0, CVG_PUBLIC_KEY_BYTES);
    }
    cvg__put_be64(b + 81, p->last_contact_ms);
    /* Only what the checks let in reaches a record; anything else would
     * make it unreadable, so it is left out. */
    const char *nul = memchr(p->addr, '\0', sizeof p->addr);
    size_t n = nul != NULL ? (size_t)(nul - p->addr) : 0;
    if (!cvg__peer_addr_ok(p->addr, n)) {
        n = 0;
    }
    b[89] = (uint8_t)n;
    memcpy(b + REC_FIXED, p->addr, n);
    return REC_FIXED + n;
}

/* The fields after the first 48 bytes of a longer record. */
static int
rec_decode_who(const uint8_t *b, size_t len, cvg__peer_rec *out)
{
    if (len < REC_FIXED || (b[48] & ~FLAG_KEY) != 0) {
        return CVG_ECORRUPT;
    }
    size_t n = b[89];
    if (len != REC_FIXED + n || n >= sizeof out->addr ||
        (n > 0 && !cvg__peer_addr_ok((const char *)b + REC_FIXED, n))) {
        return CVG_ECORRUPT;
    }
    out->has_key = (b[48] & FLAG_KEY) != 0;
    if (out->has_key) {
        memcpy(out->key, b + 49, CVG_PUBLIC_KEY_BYTES);
    }
    out->last_contact_ms = cvg__get_be64(b + 81);
    memcpy(out->addr, b + REC_FIXED, n);
    out->addr[n] = '\0';
    return CVG_OK;
}

int
cvg__peer_get(cvg__store *s, cvg__store_txn *t, const cvg_replica_id *peer,
              cvg__peer_rec *out, bool *known)
{
    memset(out, 0, sizeof *out);
    out->cursor = 1;
    if (known != NULL) {
        *known = false;
    }
    MDB_val k = {16, (void *)peer->bytes}, v;
    int mrc = cvg__ck_get(s, t, s->peers, &k, &v);
    if (mrc == MDB_NOTFOUND) {
        return CVG_OK;
    }
    if (mrc != MDB_SUCCESS) {
        return cvg__mdb_err(mrc);
    }
    const uint8_t *b = v.mv_data;
    if (v.mv_size != REC_V1_SIZE) {
        int rc = rec_decode_who(b, v.mv_size, out);
        if (rc != CVG_OK) {
            memset(out, 0, sizeof *out);
            out->cursor = 1;
            return rc;
        }
    }
    out->cursor = cvg__get_be64(b);
    out->acked = cvg__get_be64(b + 8);
    out->sent = cvg__get_be64(b + 16);
    out->last_ok_ms = cvg__get_be64(b + 24);
    out->last_attempt_ms = cvg__get_be64(b + 32);
    out->last_error = (int)(int64_t)cvg__get_be64(b + 40);
    if (known != NULL) {
        *known = true;
    }
    return CVG_OK;
}

int
cvg__peer_put(cvg__store *s, cvg__store_txn *t, const cvg_replica_id *peer,
              const cvg__peer_rec *p)
{
    uint8_t b[REC_MAX];
    size_t n = rec_encode(p, b);
    MDB_val k = {16, (void *)peer->bytes}, v = {n, b};
    return cvg__mdb_err(cvg__ck_put(s, t, s->peers, &k, &v, 0));
}

static void
failed_key(uint8_t kb[24], const cvg_replica_id *peer, uint64_t seq)
{
    memcpy(kb, peer->bytes, 16);
    cvg__put_be64(kb + 16, seq);
}

int
cvg__failed_clear(cvg__store *s, cvg__store_txn *t, const cvg_replica_id *peer,
                  uint64_t upto)
{
    MDB_cursor *c;
    int rc = cvg__mdb_err(mdb_cursor_open(t, s->queue, &c));
    if (rc != CVG_OK) {
        return rc;
    }
    uint8_t kb[24];
    failed_key(kb, peer, 0);
    int mrc;
    /* Seek again after each delete: where a cursor stands after deleting
     * the last record is not something to rely on. */
    for (;;) {
        MDB_val k = {24, kb}, v;
        mrc = cvg__ck_cursor_get(s, c, &k, &v, MDB_SET_RANGE);
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
cvg__peer_change_merge(cvg__peer_change *into, const cvg__peer_change *ch)
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
        /* Refused ops are stored at once (cvg__peer_update), so no
         * earlier ones wait here but after a failed write: best effort. */
        into->fail_code = ch->fail_code;
        into->fail_lo = ch->fail_lo;
        into->fail_hi = ch->fail_hi;
    }
    if (ch->contact_ms) {
        into->contact_ms = ch->contact_ms;
    }
    if (ch->has_key) {
        into->has_key = true;
        memcpy(into->key, ch->key, sizeof into->key);
    }
    if (ch->addr[0] != '\0') {
        memcpy(into->addr, ch->addr, sizeof into->addr);
    }
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
    if (ch->contact_ms) {
        p->last_contact_ms = ch->contact_ms;
    }
    if (ch->has_key) {
        p->has_key = true;
        memcpy(p->key, ch->key, sizeof p->key);
    }
    if (ch->addr[0] != '\0') {
        memcpy(p->addr, ch->addr, sizeof p->addr);
    }
}

int
cvg__peer_change_apply(cvg__store *s, cvg__store_txn *t,
                       const cvg_replica_id *peer, const cvg__peer_change *ch,
                       const uint64_t *cursor)
{
    cvg__peer_rec p;
    int rc = cvg__peer_get(s, t, peer, &p, NULL);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg__peer_rec_merge(&p, ch, cursor);
    rc = cvg__peer_put(s, t, peer, &p);
    /* Ops the peer now has are no longer failed. */
    if (rc == CVG_OK && p.acked > 0) {
        rc = cvg__failed_clear(s, t, peer, p.acked);
    }
    /* Refused ops: those named, if sent and not acknowledged. */
    uint64_t hi = CVG__MIN(ch->fail_hi, p.sent);
    for (uint64_t seq = CVG__MAX(ch->fail_lo, p.acked + 1);
         rc == CVG_OK && ch->fail_code && seq <= hi; seq++) {
        uint8_t kb[24], vb[4];
        failed_key(kb, peer, seq);
        cvg__put_be32(vb, (uint32_t)ch->fail_code);
        MDB_val k = {24, kb}, v = {4, vb};
        rc = cvg__mdb_err(cvg__ck_put(s, t, s->queue, &k, &v, 0));
    }
    return rc;
}

int
cvg__peers_list(cvg__store *s, cvg__store_txn *t, cvg_replica_id *out,
                size_t cap, size_t *count)
{
    *count = 0;
    MDB_cursor *c;
    int rc = cvg__mdb_err(mdb_cursor_open(t, s->peers, &c));
    if (rc != CVG_OK) {
        return rc;
    }
    size_t n = 0;
    MDB_val k, v;
    int mrc = cvg__ck_cursor_get(s, c, &k, &v, MDB_FIRST);
    while (mrc == MDB_SUCCESS) {
        if (k.mv_size == 16 && n < cap) {
            memcpy(out[n].bytes, k.mv_data, 16);
        }
        n += k.mv_size == 16;
        mrc = cvg__ck_cursor_get(s, c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    *count = n;
    return mrc == MDB_NOTFOUND ? CVG_OK : cvg__mdb_err(mrc);
}

int
cvg__failed_list(cvg__store *s, cvg__store_txn *t, const cvg_replica_id *peer,
                 uint64_t above, cvg_failed_op *out, size_t cap,
                 uint64_t *count)
{
    *count = 0;
    MDB_cursor *c;
    int rc = cvg__mdb_err(mdb_cursor_open(t, s->queue, &c));
    if (rc != CVG_OK) {
        return rc;
    }
    uint8_t kb[24];
    failed_key(kb, peer, above + 1);
    MDB_val k = {24, kb}, v;
    uint64_t n = 0;
    int mrc = cvg__ck_cursor_get(s, c, &k, &v, MDB_SET_RANGE);
    while (mrc == MDB_SUCCESS && k.mv_size == 24 && v.mv_size == 4 &&
           memcmp(k.mv_data, peer->bytes, 16) == 0) {
        if (n < cap) {
            out[n].seq = cvg__get_be64((const uint8_t *)k.mv_data + 16);
            out[n].code = (int)(int32_t)cvg__get_be32(v.mv_data);
        }
        n++;
        mrc = cvg__ck_cursor_get(s, c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    *count = n;
    return mrc == MDB_SUCCESS || mrc == MDB_NOTFOUND ? CVG_OK
                                                     : cvg__mdb_err(mrc);
}

int
cvg__failed_get(cvg__store *s, cvg__store_txn *t, const cvg_replica_id *peer,
                uint64_t seq, int *code)
{
    uint8_t kb[24];
    failed_key(kb, peer, seq);
    MDB_val k = {24, kb}, v;
    int mrc = cvg__ck_get(s, t, s->queue, &k, &v);
    *code = CVG_OK;
    if (mrc == MDB_NOTFOUND) {
        return CVG_OK;
    }
    if (mrc != MDB_SUCCESS) {
        return cvg__mdb_err(mrc);
    }
    if (v.mv_size != 4) {
        return CVG_ECORRUPT;
    }
    *code = (int)(int32_t)cvg__get_be32(v.mv_data);
    return CVG_OK;
}

/* ---- Memory of the peer's version vector -----------------------------------
 * Beside the record, under the peer's id and the byte 'v' (17 bytes, which
 * cvg__peers_list skips), the bytes src/sync/vv_sync.c keeps: what it needs
 * to take the peer's next vector as a delta. This file only stores them;
 * their reader checks them as hostile, and a record it cannot read only
 * costs a whole vector. */

static void
mem_key(uint8_t kb[17], const cvg_replica_id *peer)
{
    memcpy(kb, peer->bytes, 16);
    kb[16] = 'v';
}

int
cvg__peer_mem_get(cvg__store *s, cvg__store_txn *t, const cvg_replica_id *peer,
                  cvg_bytes *out)
{
    uint8_t kb[17];
    mem_key(kb, peer);
    MDB_val k = {17, kb}, v;
    out->data = NULL;
    out->len = 0;
    int mrc = cvg__ck_get(s, t, s->peers, &k, &v);
    if (mrc == MDB_NOTFOUND) {
        return CVG_ENOTFOUND;
    }
    if (mrc != MDB_SUCCESS) {
        return cvg__mdb_err(mrc);
    }
    out->data = v.mv_data;
    out->len = v.mv_size;
    return CVG_OK;
}

int
cvg__peer_mem_put(cvg__store *s, cvg__store_txn *t, const cvg_replica_id *peer,
                  cvg_bytes mem)
{
    uint8_t kb[17];
    mem_key(kb, peer);
    MDB_val k = {17, kb}, v = {mem.len, (void *)mem.data};
    if (mem.len == 0) {
        int rc = mdb_del(t, s->peers, &k, NULL);
        return rc == MDB_NOTFOUND ? CVG_OK : cvg__mdb_err(rc);
    }
    return cvg__mdb_err(cvg__ck_put(s, t, s->peers, &k, &v, 0));
}

int
cvg__peer_forget(cvg__store *s, cvg__store_txn *t, const cvg_replica_id *peer)
{
    MDB_val k = {16, (void *)peer->bytes};
    int rc = mdb_del(t, s->peers, &k, NULL);
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
        return cvg__mdb_err(rc);
    }
    rc = cvg__peer_mem_put(s, t, peer, (cvg_bytes){NULL, 0});
    if (rc != CVG_OK) {
        return rc;
    }
    return cvg__failed_clear(s, t, peer, UINT64_MAX);
}
