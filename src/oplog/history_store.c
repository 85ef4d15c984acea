/*
 * The history database: what the signed history of each origin needs
 * kept (history.c says how the history hashes). One LMDB database, its
 * records told apart by a first byte:
 *   'c' origin (16) segment (u64 BE) -> the digest at the segment's end
 *   'p' origin (16) seq (u64 BE)     -> the origin's signature at seq
 *   'k' origin (16)                  -> public key (32) + extra bytes
 *   'f' origin (16)                  -> two signed heads that disagree
 * Big-endian numbers keep an origin's records in seq order, so the next
 * signature point after a seq is one range seek.
 */
#include <lmdb.h>

#include "checksum.h"
#include "oplog_int.h"

#define FORK_BYTES (8 + 2 * (8 + CVG__DIGEST_BYTES + CVG__SIG_BYTES))

static size_t
make_key(uint8_t kb[25], char tag, const cvg_replica_id *origin, uint64_t n,
         bool with_n)
{
    kb[0] = (uint8_t)tag;
    memcpy(kb + 1, origin->bytes, 16);
    if (!with_n) {
        return 17;
    }
    cvg__put_be64(kb + 17, n);
    return 25;
}

static int
get(cvg__store *s, cvg__store_txn *t, const uint8_t *kb, size_t klen,
    cvg_bytes *out)
{
    if (!s->has_history) {
        return CVG_ENOTFOUND;
    }
    MDB_val k = {klen, (void *)kb}, v;
    int rc = cvg__ck_get(s, t, s->history, &k, &v);
    if (rc != MDB_SUCCESS) {
        return cvg__mdb_err(rc);
    }
    out->data = v.mv_data;
    out->len = v.mv_size;
    return CVG_OK;
}

/* A record of exactly @p len bytes, copied to @p out. */
static int
get_fixed(cvg__store *s, cvg__store_txn *t, const uint8_t *kb, size_t klen,
          void *out, size_t len)
{
    cvg_bytes v = {NULL, 0};
    int rc = get(s, t, kb, klen, &v);
    if (rc == CVG_OK && v.len != len) {
        rc = CVG_ECORRUPT;
    }
    if (rc == CVG_OK) {
        memcpy(out, v.data, len);
    }
    return rc;
}

static int
put(cvg__store *s, cvg__store_txn *t, const uint8_t *kb, size_t klen,
    const void *val, size_t vlen)
{
    if (!s->has_history) {
        return CVG_EREADONLY;
    }
    MDB_val k = {klen, (void *)kb}, v = {vlen, (void *)val};
    return cvg__mdb_err(cvg__ck_put(s, t, s->history, &k, &v, 0));
}

int
cvg__chain_get(cvg__store *s, cvg__store_txn *t, const cvg_replica_id *origin,
               uint64_t seg, uint8_t out[CVG__DIGEST_BYTES])
{
    uint8_t kb[25];
    return get_fixed(s, t, kb, make_key(kb, 'c', origin, seg, true), out,
                     CVG__DIGEST_BYTES);
}

int
cvg__chain_put(cvg__store *s, cvg__store_txn *t, const cvg_replica_id *origin,
               uint64_t seg, const uint8_t digest[CVG__DIGEST_BYTES])
{
    uint8_t kb[25];
    return put(s, t, kb, make_key(kb, 'c', origin, seg, true), digest,
               CVG__DIGEST_BYTES);
}

int
cvg__point_get(cvg__store *s, cvg__store_txn *t, const cvg_replica_id *origin,
               uint64_t seq, uint8_t sig[CVG__SIG_BYTES])
{
    uint8_t kb[25];
    return get_fixed(s, t, kb, make_key(kb, 'p', origin, seq, true), sig,
                     CVG__SIG_BYTES);
}

int
cvg__point_put(cvg__store *s, cvg__store_txn *t, const cvg_replica_id *origin,
               uint64_t seq, const uint8_t sig[CVG__SIG_BYTES])
{
    uint8_t kb[25];
    return put(s, t, kb, make_key(kb, 'p', origin, seq, true), sig,
               CVG__SIG_BYTES);
}

int
cvg__point_next(cvg__store *s, cvg__store_txn *t, const cvg_replica_id *origin,
                uint64_t from, uint64_t *seq_out)
{
    if (!s->has_history) {
        return CVG_ENOTFOUND;
    }
    uint8_t kb[25];
    MDB_cursor *c;
    int mrc = mdb_cursor_open(t, s->history, &c);
    if (mrc != MDB_SUCCESS) {
        return cvg__mdb_err(mrc);
    }
    MDB_val k = {make_key(kb, 'p', origin, from, true), kb}, v;
    mrc = cvg__ck_cursor_get(s, c, &k, &v, MDB_SET_RANGE);
    int rc = cvg__mdb_err(mrc);
    if (rc == CVG_OK) {
        const uint8_t *p = k.mv_data;
        if (k.mv_size != 25 || p[0] != 'p' ||
            memcmp(p + 1, origin->bytes, 16)) {
            rc = CVG_ENOTFOUND; /* past this origin's points */
        } else {
            *seq_out = cvg__get_be64(p + 17);
        }
    }
    mdb_cursor_close(c);
    return rc;
}

int
cvg__key_get(cvg__store *s, cvg__store_txn *t, const cvg_replica_id *origin,
             uint8_t pk[32], uint8_t inc[CVG__INC_MAX], uint8_t *inc_len)
{
    uint8_t kb[25];
    cvg_bytes v = {NULL, 0};
    int rc = get(s, t, kb, make_key(kb, 'k', origin, 0, false), &v);
    if (rc == CVG_OK && (v.len < 32 || v.len > 32 + CVG__INC_MAX)) {
        rc = CVG_ECORRUPT;
    }
    if (rc == CVG_OK) {
        memcpy(pk, v.data, 32);
        *inc_len = (uint8_t)(v.len - 32);
        memcpy(inc, v.data + 32, v.len - 32);
    }
    return rc;
}

int
cvg__key_put(cvg__store *s, cvg__store_txn *t, const cvg_replica_id *origin,
             const uint8_t pk[32], const uint8_t *inc, uint8_t inc_len)
{
    uint8_t kb[25], v[32 + CVG__INC_MAX];
    if (inc_len > CVG__INC_MAX) {
        return CVG_EINVAL;
    }
    memcpy(v, pk, 32);
    if (inc_len) {
        memcpy(v + 32, inc, inc_len);
    }
    return put(s, t, kb, make_key(kb, 'k', origin, 0, false), v,
               32 + (size_t)inc_len);
}

static void
fork_encode(const cvg__fork_rec *f, uint8_t b[FORK_BYTES])
{
    cvg__put_be64(b, f->found_ms);
    cvg__put_be64(b + 8, f->seq_a);
    memcpy(b + 16, f->head_a, CVG__DIGEST_BYTES);
    memcpy(b + 48, f->sig_a, CVG__SIG_BYTES);
    cvg__put_be64(b + 112, f->seq_b);
    memcpy(b + 120, f->head_b, CVG__DIGEST_BYTES);
    memcpy(b + 152, f->sig_b, CVG__SIG_BYTES);
}

static int
fork_decode(cvg_bytes v, cvg__fork_rec *f)
{
    if (v.len != FORK_BYTES) {
        return CVG_ECORRUPT;
    }
    const uint8_t *b = v.data;
    f->found_ms = cvg__get_be64(b);
    f->seq_a = cvg__get_be64(b + 8);
    memcpy(f->head_a, b + 16, CVG__DIGEST_BYTES);
    memcpy(f->sig_a, b + 48, CVG__SIG_BYTES);
    f->seq_b = cvg__get_be64(b + 112);
    memcpy(f->head_b, b + 120, CVG__DIGEST_BYTES);
    memcpy(f->sig_b, b + 152, CVG__SIG_BYTES);
    return CVG_OK;
}

int
cvg__fork_get(cvg__store *s, cvg__store_txn *t, const cvg_replica_id *origin,
              cvg__fork_rec *out)
{
    uint8_t kb[25];
    cvg_bytes v = {NULL, 0};
    int rc = get(s, t, kb, make_key(kb, 'f', origin, 0, false), &v);
    return rc == CVG_OK ? fork_decode(v, out) : rc;
}

int
cvg__fork_put(cvg__store *s, cvg__store_txn *t, const cvg_replica_id *origin,
              const cvg__fork_rec *f)
{
    uint8_t kb[25], b[FORK_BYTES];
    fork_encode(f, b);
    return put(s, t, kb, make_key(kb, 'f', origin, 0, false), b, sizeof b);
}

int
cvg__forks_list(cvg__store *s, cvg__store_txn *t, cvg_replica_id *out,
                cvg__fork_rec *recs, size_t cap, size_t *count)
{
    *count = 0;
    if (!s->has_history) {
        return CVG_OK;
    }
    MDB_cursor *c;
    int mrc = mdb_cursor_open(t, s->history, &c);
    if (mrc != MDB_SUCCESS) {
        return cvg__mdb_err(mrc);
    }
    uint8_t tag = 'f';
    MDB_val k = {1, &tag}, v;
    int rc = CVG_OK;
    for (mrc = cvg__ck_cursor_get(s, c, &k, &v, MDB_SET_RANGE);
         mrc == MDB_SUCCESS; mrc = cvg__ck_cursor_get(s, c, &k, &v, MDB_NEXT)) {
        const uint8_t *p = k.mv_data;
        if (k.mv_size != 17 || p[0] != 'f') {
            break;
        }
        if (*count < cap) {
            memcpy(out[*count].bytes, p + 1, 16);
            if (recs != NULL) {
                cvg_bytes b = {v.mv_data, v.mv_size};
                rc = fork_decode(b, &recs[*count]);
                if (rc != CVG_OK) {
                    break;
                }
            }
        }
        (*count)++;
    }
    if (rc == CVG_OK && mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND) {
        rc = cvg__mdb_err(mrc);
    }
    mdb_cursor_close(c);
    return rc;
}
