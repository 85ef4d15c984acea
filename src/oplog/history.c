/*
 * The signed history of an origin: a running BLAKE2b hash over its ops in
 * seq order, each op in a canonical encoding of its own (below), so the
 * hash does not depend on how ops were grouped into blocks or pages. An
 * origin signs the digest of its history at a seq (a "signature point");
 * any replica that holds the ops up to that seq can check the signature.
 *
 * The canonical encoding is compact, because every op pays for the bytes
 * it hashes: the time as a delta from the previous op's, and the target
 * (collection, key, field) left out when it is the previous op's. The
 * previous op is the one before in seq order within the segment, so the
 * encoding depends only on the ops, never on how they were grouped.
 *
 * The stream is cut into segments of CVG__HISTORY_SEGMENT ops. A segment's
 * hash starts from the digest at the end of the segment before, so the
 * digest at any seq needs only that one stored value (the "chain" record)
 * and the ops of its own segment: at most a segment's ops are read to find
 * the digest at an old seq, and no hash state is ever written to disk.
 *
 *   digest(m) = BLAKE2b-256(domain, origin, segment k, digest(k * S),
 *                           canon(op k*S+1), ..., canon(op m))
 *   with k = (m - 1) / S and digest(0) = 32 zero bytes.
 */
#include "oplog_int.h"

static const char HISTORY_DOMAIN[] = "converge history v1";
static const char POINT_DOMAIN[] = "converge signed head v1";

void
cvg__history_begin(cvg__history *h, const cvg_replica_id *origin, uint64_t seg,
                   const uint8_t prev[CVG__DIGEST_BYTES])
{
    uint8_t b[8];
    crypto_generichash_init(&h->st, NULL, 0, CVG__DIGEST_BYTES);
    crypto_generichash_update(&h->st, (const uint8_t *)HISTORY_DOMAIN,
                              sizeof HISTORY_DOMAIN - 1);
    crypto_generichash_update(&h->st, origin->bytes, sizeof origin->bytes);
    cvg__put_be64(b, seg);
    crypto_generichash_update(&h->st, b, sizeof b);
    crypto_generichash_update(&h->st, prev, CVG__DIGEST_BYTES);
    h->origin = *origin;
    h->seq = seg * CVG__HISTORY_SEGMENT;
    h->in_seg = 0;
    h->prev_hlc = 0;
    h->prev_len = 0;
}

void
cvg__history_digest(const cvg__history *h, uint8_t out[CVG__DIGEST_BYTES])
{
    if (h->seq == 0) {
        memset(out, 0, CVG__DIGEST_BYTES);
        return;
    }
    crypto_generichash_state st = h->st;
    crypto_generichash_final(&st, out, CVG__DIGEST_BYTES);
    sodium_memzero(&st, sizeof st);
}

/* ---- The canonical encoding of one op -------------------------------------
 * A head byte (the kind; 0x80: the previous op's target), the time as a
 * zigzag varint delta from the previous op's (0 at a segment's start),
 * the target unless it is the previous op's (three names, each with a
 * 2-byte length), then the payload: a counter's delta as a zigzag varint;
 * a value in its canonical msgpack form (which delimits itself); observed
 * dots and a delete's counter parts with 4-byte counts and fixed-width
 * integers. Everything an op means is in it, nothing of how it was stored.
 * Written with plain stores into one reservation: it runs for every op. */

#define SAME_TARGET 0x80u

static uint8_t *
put_u64(uint8_t *w, uint64_t v)
{
    cvg__put_be64(w, v);
    return w + 8;
}

static uint8_t *
put_u32(uint8_t *w, uint32_t v)
{
    w[0] = (uint8_t)(v >> 24);
    w[1] = (uint8_t)(v >> 16);
    w[2] = (uint8_t)(v >> 8);
    w[3] = (uint8_t)v;
    return w + 4;
}

static uint8_t *
put_varint(uint8_t *w, uint64_t v)
{
    while (v >= 0x80) {
        *w++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *w++ = (uint8_t)v;
    return w;
}

static uint64_t
zigzag(uint64_t delta)
{
    int64_t d = (int64_t)delta; /* two's complement: a wrapping difference */
    return ((uint64_t)d << 1) ^ (uint64_t)(d >> 63);
}

static uint8_t *
put_name(uint8_t *w, cvg_bytes n)
{
    w[0] = (uint8_t)(n.len >> 8);
    w[1] = (uint8_t)n.len;
    if (n.len) {
        memcpy(w + 2, n.data, n.len);
    }
    return w + 2 + n.len;
}

static int
put_dots(cvg__buf *b, const cvg_dot *d, size_t n)
{
    if (n > UINT32_MAX / 24) {
        return CVG_EINVAL;
    }
    int rc = cvg__buf_reserve(b, 4 + 24 * n);
    if (rc != CVG_OK) {
        return rc;
    }
    uint8_t *w = put_u32(b->p + b->len, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        memcpy(w, d[i].origin.bytes, 16);
        w = put_u64(w + 16, d[i].seq);
    }
    b->len = (size_t)(w - b->p);
    return CVG_OK;
}

static int
put_counters(cvg__buf *b, const cvg__op *op)
{
    int rc = cvg__buf_reserve(b, 4);
    if (rc != CVG_OK) {
        return rc;
    }
    put_u32(b->p + b->len, (uint32_t)op->n_counters);
    b->len += 4;
    for (size_t i = 0; rc == CVG_OK && i < op->n_counters; i++) {
        const cvg__delete_counter *dc = &op->counters[i];
        if (dc->field.len > 0xffff || dc->n > UINT32_MAX / 32) {
            return CVG_EINVAL;
        }
        rc = cvg__buf_reserve(b, 6 + dc->field.len + 32 * dc->n);
        if (rc != CVG_OK) {
            return rc;
        }
        uint8_t *w = put_name(b->p + b->len, dc->field);
        w = put_u32(w, (uint32_t)dc->n);
        for (size_t j = 0; j < dc->n; j++) {
            const cvg__counter_part *p = &dc->parts[j];
            memcpy(w, p->origin.bytes, 16);
            w = put_u64(w + 16, p->seq);
            w = put_u64(w, (uint64_t)p->sum);
        }
        b->len = (size_t)(w - b->p);
    }
    return rc;
}

/* The canonical bytes of @p op after @p prev (NULL: the first op of a
 * segment), into @p out (emptied first). Unless *same (the target is the
 * previous op's, and was left out), its target's bytes are at *target_at
 * in @p out, *tlen of them. */
static int
op_canon(const cvg__history *prev, const cvg__op *op, cvg__buf *out,
         size_t *target_at, size_t *tlen_out, bool *same_out)
{
    const cvg_op *p = &op->pub;
    if (p->collection.len > 0xffff || p->key.len > 0xffff ||
        p->field.len > 0xffff) {
        return CVG_EINVAL;
    }
    size_t tlen = 6 + p->collection.len + p->key.len + p->field.len;
    out->len = 0;
    int rc = CVG_OK;
    if (out->cap < 1 + 10 + tlen + 10) {
        rc = cvg__buf_reserve(out, 1 + 10 + tlen + 10);
        if (rc != CVG_OK) {
            return rc;
        }
    }
    uint8_t *w = out->p;
    uint8_t *head = w++;
    w = put_varint(w, zigzag(p->hlc - (prev ? prev->prev_hlc : 0)));
    uint8_t *target = w;
    w = put_name(w, p->collection);
    w = put_name(w, p->key);
    w = put_name(w, p->field);
    bool same = prev != NULL && prev->prev_len == tlen &&
                memcmp(prev->prev_target, target, tlen) == 0;
    *head = (uint8_t)((uint8_t)p->kind | (same ? SAME_TARGET : 0));
    *target_at = (size_t)(target - out->p);
    *tlen_out = tlen;
    *same_out = same;
    if (same) {
        w = target; /* left out: the previous op's */
    }
    switch (p->kind) {
    case CVG_OP_COUNTER_ADD:
        w = put_varint(w, zigzag((uint64_t)p->delta));
        out->len = (size_t)(w - out->p);
        return CVG_OK;
    case CVG_OP_REGISTER_SET:
    case CVG_OP_MVREGISTER_SET:
    case CVG_OP_SET_ADD:
    case CVG_OP_SET_REMOVE:
        out->len = (size_t)(w - out->p);
        rc = cvg__value_encode(&p->value, out);
        return rc == CVG_OK ? put_dots(out, p->observed, p->observed_count)
                            : rc;
    case CVG_OP_RECORD_DELETE:
        out->len = (size_t)(w - out->p);
        rc = put_dots(out, p->observed, p->observed_count);
        return rc == CVG_OK ? put_counters(out, op) : rc;
    }
    return CVG_EINVAL;
}

int
cvg__history_add(cvg__history *h, const cvg__op *op, cvg__buf *scratch,
                 cvg__history_seal *seal)
{
    seal->sealed = false;
    if (!cvg__id_eq(&op->pub.dot.origin, &h->origin) ||
        op->pub.dot.seq != h->seq + 1) {
        return CVG_EINVAL;
    }
    /* A full segment: the op is the first of the next one. Nothing of @p h
     * changes before the op is encoded (the only step that can fail). */
    bool full = h->in_seg == CVG__HISTORY_SEGMENT;
    size_t target_at, tlen;
    bool same;
    int rc = op_canon(full ? NULL : h, op, scratch, &target_at, &tlen, &same);
    if (rc != CVG_OK) {
        return rc;
    }
    if (full) {
        /* Its digest starts the next one. (A stream begun at a segment's
         * start has hashed nothing of it yet.) */
        seal->sealed = true;
        seal->seg = h->seq / CVG__HISTORY_SEGMENT - 1;
        cvg__history_digest(h, seal->digest);
        cvg__history_begin(h, &h->origin, seal->seg + 1, seal->digest);
    }
    crypto_generichash_update(&h->st, scratch->p, scratch->len);
    h->seq++;
    h->in_seg++;
    h->prev_hlc = op->pub.hlc;
    if (same) {
        return CVG_OK; /* the reference stays as it is */
    }
    h->prev_len = 0;
    if (tlen <= CVG__HISTORY_TARGET_MAX) {
        memcpy(h->prev_target, scratch->p + target_at, tlen);
        h->prev_len = (uint16_t)tlen;
    }
    return CVG_OK;
}

void
cvg__history_message(const cvg_replica_id *origin, uint64_t seq,
                     const uint8_t digest[CVG__DIGEST_BYTES],
                     uint8_t out[CVG__POINT_MSG_BYTES])
{
    size_t n = sizeof POINT_DOMAIN - 1;
    memcpy(out, POINT_DOMAIN, n);
    memcpy(out + n, origin->bytes, sizeof origin->bytes);
    cvg__put_be64(out + n + 16, seq);
    memcpy(out + n + 24, digest, CVG__DIGEST_BYTES);
}

int
cvg__history_build(cvg__store *s, cvg__store_txn *t,
                   const cvg_replica_id *origin, uint64_t seq,
                   cvg__history *out)
{
    uint64_t seg = seq ? (seq - 1) / CVG__HISTORY_SEGMENT : 0;
    uint8_t prev[CVG__DIGEST_BYTES] = {0};
    if (seg > 0) {
        int rc = cvg__chain_get(s, t, origin, seg - 1, prev);
        if (rc != CVG_OK) {
            return rc == CVG_ENOTFOUND ? CVG_ECORRUPT : rc;
        }
    }
    cvg__history_begin(out, origin, seg, prev);
    if (out->seq == seq) {
        return CVG_OK;
    }
    cvg__log_iter it;
    cvg__buf scratch = {0};
    int rc = cvg__log_iter_open_origin(s, t, origin, out->seq + 1, &it);
    while (rc == CVG_OK && out->seq < seq) {
        cvg__op op;
        cvg__history_seal seal;
        rc = cvg__log_iter_next(&it, &op);
        if (rc == CVG_OK) {
            rc = cvg__history_add(out, &op, &scratch, &seal);
            rc = rc == CVG_EINVAL ? CVG_ECORRUPT : rc;
        }
    }
    cvg__log_iter_close(&it);
    cvg__buf_free(&scratch);
    /* The log ends before seq: the ops are not all here. */
    return rc == CVG_DONE ? CVG_ECORRUPT : rc;
}
