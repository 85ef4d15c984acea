/*
 * The operation log: blocks of ops keyed by the lsn of their last op, a dots
 * index to find any op by (origin, seq), and an iterator that walks ops in
 * log order from any lsn. Log order is causal order: a block is appended
 * only after everything its ops depend on.
 */
#include <lmdb.h>

#include "checksum.h"
#include "oplog_int.h"

/* A block's keys: its last lsn in the log, its origin and last seq in
 * the dots index. */
static void
block_keys(uint64_t last_lsn, const cvg_replica_id *origin, uint64_t last_seq,
           uint8_t lk[8], uint8_t dk[24])
{
    cvg__put_be64(lk, last_lsn);
    memcpy(dk, origin->bytes, 16);
    cvg__put_be64(dk + 16, last_seq);
}

int
cvg__log_append(cvg__store *s, cvg__store_txn *t, uint64_t last_lsn,
                const cvg_replica_id *origin, uint64_t last_seq,
                cvg_bytes block)
{
    uint8_t lk[8], dk[24];
    block_keys(last_lsn, origin, last_seq, lk, dk);
    MDB_val k = {8, lk}, v = {block.len, (void *)block.data};
    /* lsns only grow, so APPEND skips the search and keeps pages full. */
    int rc = cvg__ck_put(s, t, s->log, &k, &v, MDB_APPEND);
    if (rc == MDB_KEYEXIST) {
        return CVG_ECORRUPT; /* an lsn at or below the last one */
    }
    if (rc != MDB_SUCCESS) {
        return cvg__mdb_err(rc);
    }
    MDB_val dkv = {24, dk}, dv = {8, lk};
    return cvg__mdb_err(cvg__ck_put(s, t, s->dots, &dkv, &dv, 0));
}

bool
cvg__log_last_is(cvg__store *s, cvg__store_txn *t, uint64_t last_lsn,
                 cvg_bytes block)
{
    MDB_cursor *c;
    if (mdb_cursor_open(t, s->log, &c) != MDB_SUCCESS) {
        return false;
    }
    /* Compared with what this handle wrote, not trusted: the checksum
     * need not be worked out (a commit of one op would hash the block
     * twice), and a record that matches is replaced in this transaction
     * anyway. */
    MDB_val k, v;
    size_t ck = s->checksummed ? CVG__CK_BYTES : 0;
    bool same = mdb_cursor_get(c, &k, &v, MDB_LAST) == MDB_SUCCESS &&
                k.mv_size == 8 && cvg__get_be64(k.mv_data) == last_lsn &&
                v.mv_size == block.len + ck &&
                memcmp(v.mv_data, block.data, block.len) == 0;
    mdb_cursor_close(c);
    return same;
}

int
cvg__log_drop_last(cvg__store *s, cvg__store_txn *t, uint64_t last_lsn,
                   const cvg_replica_id *origin, uint64_t last_seq)
{
    uint8_t lk[8], dk[24];
    block_keys(last_lsn, origin, last_seq, lk, dk);
    MDB_val k = {8, lk}, dkv = {24, dk};
    int rc = mdb_del(t, s->log, &k, NULL);
    if (rc == MDB_SUCCESS) {
        rc = mdb_del(t, s->dots, &dkv, NULL);
    }
    return rc == MDB_NOTFOUND ? CVG_ECORRUPT : cvg__mdb_err(rc);
}

/* Position rd on the block at the cursor, whose key is its last lsn. */
static int
load_block(cvg__log_iter *it, MDB_val *k, MDB_val *v)
{
    if (k->mv_size != 8) {
        return CVG_ECORRUPT;
    }
    cvg__block_reader_destroy(&it->rd);
    it->open = false;
    int rc = cvg__block_open(&it->rd, v->mv_data, v->mv_size);
    if (rc != CVG_OK) {
        return rc;
    }
    uint64_t last = cvg__get_be64(k->mv_data);
    if (it->rd.count == 0 || it->rd.count > last) {
        return CVG_ECORRUPT;
    }
    it->next_lsn = last - it->rd.count + 1;
    it->last_lsn = last;
    it->skipped = false;
    it->open = true;
    return CVG_OK;
}

int
cvg__log_iter_open(cvg__store *s, cvg__store_txn *t, uint64_t from,
                   cvg__log_iter *it)
{
    memset(it, 0, sizeof *it);
    it->from = from ? from : 1;
    it->s = s;
    int rc = mdb_cursor_open(t, s->log, &it->cur);
    if (rc != MDB_SUCCESS) {
        it->cur = NULL;
        return cvg__mdb_err(rc);
    }
    uint8_t kb[8];
    cvg__put_be64(kb, it->from);
    MDB_val k = {8, kb}, v;
    rc = cvg__ck_cursor_get(s, it->cur, &k, &v, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND) {
        return CVG_OK; /* nothing at or after from: next gives DONE */
    }
    if (rc != MDB_SUCCESS) {
        return cvg__mdb_err(rc);
    }
    return load_block(it, &k, &v);
}

/* Load the next block once the current one is used up. */
static int
advance(cvg__log_iter *it)
{
    MDB_val k, v;
    int mrc = cvg__ck_cursor_get(it->s, it->cur, &k, &v, MDB_NEXT);
    if (mrc == MDB_NOTFOUND) {
        cvg__block_reader_destroy(&it->rd);
        it->open = false;
        return CVG_DONE;
    }
    if (mrc != MDB_SUCCESS) {
        return cvg__mdb_err(mrc);
    }
    uint64_t expect = it->last_lsn + 1;
    int rc = load_block(it, &k, &v);
    if (rc != CVG_OK) {
        return rc;
    }
    if (it->next_lsn != expect) {
        return CVG_ECORRUPT; /* a hole or an overlap in the lsns */
    }
    return CVG_OK;
}

/* Skip whole blocks of other origins than it->origin. */
static int
skip_other_origins(cvg__log_iter *it)
{
    for (;;) {
        cvg__log_span span;
        int rc = cvg__log_iter_span(it, &span);
        if (rc != CVG_OK || cvg__id_cmp(&span.origin, &it->origin) == 0) {
            return rc;
        }
        cvg__log_iter_skip_span(it);
    }
}

int
cvg__log_iter_next(cvg__log_iter *it, cvg__op *op)
{
    if (it->only) {
        int rc = skip_other_origins(it);
        if (rc != CVG_OK) {
            return rc;
        }
    }
    while (it->open) {
        int rc = it->skipped ? CVG_DONE : cvg__block_next(&it->rd, op);
        if (rc == CVG_OK) {
            op->pub.lsn = it->next_lsn++;
            if (op->pub.lsn < it->from) {
                continue;
            }
            return CVG_OK;
        }
        if (rc != CVG_DONE) {
            return rc;
        }
        rc = advance(it);
        if (rc != CVG_OK) {
            return rc;
        }
    }
    return CVG_DONE;
}

int
cvg__log_iter_span(cvg__log_iter *it, cvg__log_span *out)
{
    while (it->open && (it->skipped || it->next_lsn > it->last_lsn)) {
        if (!it->skipped) {
            /* Used up: the block must end here (no trailing bytes). */
            cvg__op op;
            int rc = cvg__block_next(&it->rd, &op);
            if (rc != CVG_DONE) {
                return rc == CVG_OK ? CVG_ECORRUPT : rc;
            }
        }
        int rc = advance(it);
        if (rc != CVG_OK) {
            return rc;
        }
    }
    if (!it->open) {
        return CVG_DONE;
    }
    /* Ops before `from` in the first block are not the caller's. */
    uint64_t first = CVG__MAX(it->next_lsn, it->from);
    if (first > it->last_lsn) {
        cvg__log_iter_skip_span(it);
        return cvg__log_iter_span(it, out);
    }
    uint64_t skip = first - (it->last_lsn - it->rd.count + 1);
    out->origin = it->rd.origin;
    out->first_seq = it->rd.first_seq + skip;
    out->last_seq = it->rd.first_seq + it->rd.count - 1;
    out->first_lsn = first;
    out->last_lsn = it->last_lsn;
    return CVG_OK;
}

void
cvg__log_iter_skip_span(cvg__log_iter *it)
{
    if (it->open) {
        it->next_lsn = it->last_lsn + 1;
        it->skipped = true;
    }
}

int
cvg__log_iter_open_origin(cvg__store *s, cvg__store_txn *t,
                          const cvg_replica_id *origin, uint64_t from_seq,
                          cvg__log_iter *it)
{
    memset(it, 0, sizeof *it);
    cvg_dot first = {*origin, from_seq};
    uint64_t lsn;
    int rc = cvg__log_find(s, t, &first, &lsn);
    if (rc == CVG_ENOTFOUND) {
        return CVG_OK; /* not open: next gives CVG_DONE */
    }
    if (rc == CVG_OK) {
        rc = cvg__log_iter_open(s, t, lsn, it);
    }
    it->only = true;
    it->origin = *origin;
    return rc;
}

void
cvg__log_iter_close(cvg__log_iter *it)
{
    cvg__block_reader_destroy(&it->rd);
    it->open = false;
    if (it->cur != NULL) {
        mdb_cursor_close(it->cur);
        it->cur = NULL;
    }
}

int
cvg__op_names_terminate(cvg_op *op, cvg__buf *buf)
{
    cvg_bytes *names[3] = {&op->collection, &op->key, &op->field};
    buf->len = 0;
    int rc = cvg__buf_reserve(
        buf, names[0]->len + names[1]->len + names[2]->len + 3);
    if (rc != CVG_OK) {
        return rc;
    }
    for (int k = 0; k < 3; k++) {
        uint8_t *at = buf->p + buf->len;
        if (names[k]->len > 0) {
            memcpy(at, names[k]->data, names[k]->len);
        }
        at[names[k]->len] = '\0';
        buf->len += names[k]->len + 1;
        names[k]->data = at;
    }
    return CVG_OK;
}

int
cvg__log_find(cvg__store *s, cvg__store_txn *t, const cvg_dot *dot,
              uint64_t *lsn_out)
{
    *lsn_out = 0;
    MDB_cursor *c;
    int rc = mdb_cursor_open(t, s->dots, &c);
    if (rc != MDB_SUCCESS) {
        return cvg__mdb_err(rc);
    }
    uint8_t kb[24];
    memcpy(kb, dot->origin.bytes, 16);
    cvg__put_be64(kb + 16, dot->seq);
    MDB_val k = {24, kb}, v;
    /* The first block of this origin whose last seq is >= dot->seq. */
    rc = cvg__ck_cursor_get(s, c, &k, &v, MDB_SET_RANGE);
    int out = CVG_ENOTFOUND;
    if (rc == MDB_SUCCESS && k.mv_size == 24 && v.mv_size == 8 &&
        memcmp(k.mv_data, dot->origin.bytes, 16) == 0) {
        uint64_t last_seq = cvg__get_be64((const uint8_t *)k.mv_data + 16);
        MDB_val lk = {8, v.mv_data}, block;
        uint64_t last_lsn = cvg__get_be64(v.mv_data);
        rc = cvg__ck_get(s, t, s->log, &lk, &block);
        if (rc == MDB_SUCCESS) {
            cvg__block_reader rd;
            memset(&rd, 0, sizeof rd);
            out = cvg__block_open(&rd, block.mv_data, block.mv_size);
            if (out == CVG_OK) {
                if (rd.first_seq > dot->seq) {
                    out = CVG_ENOTFOUND;
                } else if (last_seq - dot->seq >= last_lsn) {
                    out = CVG_ECORRUPT;
                } else {
                    *lsn_out = last_lsn - (last_seq - dot->seq);
                }
            }
            cvg__block_reader_destroy(&rd);
        } else {
            out = rc == MDB_NOTFOUND ? CVG_ECORRUPT : cvg__mdb_err(rc);
        }
    } else if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
        out = cvg__mdb_err(rc);
    }
    mdb_cursor_close(c);
    return out;
}
