/*
 * The signed history of an origin: a running BLAKE2b hash over its ops in
 * seq order, each op in a canonical encoding of its own (below), so the
 * hash does not depend on how ops were grouped into blocks or pages. An
 * origin signs the digest of its history at a seq (a "signature point");
 * any replica that holds the ops up to that seq can check the signature.
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
 * Fixed-width integers (big-endian), names with a 2-byte length, values in
 * their canonical msgpack form (which delimits itself), lists with a 4-byte
 * count. Everything an op means is in it, nothing of how it was stored. */

static int
put_u8(cvg__buf *b, uint8_t v)
{
    return cvg__buf_append(b, &v, 1);
}

static int
put_u64(cvg__buf *b, uint64_t v)
{
    uint8_t x[8];
    cvg__put_be64(x, v);
    return cvg__buf_append(b, x, sizeof x);
}

static int
put_u32(cvg__buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8),
                    (uint8_t)v};
    return cvg__buf_append(b, x, sizeof x);
}

static int
put_name(cvg__buf *b, cvg_bytes n)
{
    if (n.len > 0xffff) {
        return CVG_EINVAL;
    }
    uint8_t x[2] = {(uint8_t)(n.len >> 8), (uint8_t)n.len};
    int rc = cvg__buf_append(b, x, sizeof x);
    return rc == CVG_OK && n.len ? cvg__buf_append(b, n.data, n.len) : rc;
}

static int
put_dots(cvg__buf *b, const cvg_dot *d, size_t n)
{
    int rc = n > UINT32_MAX ? CVG_EINVAL : put_u32(b, (uint32_t)n);
    for (size_t i = 0; rc == CVG_OK && i < n; i++) {
        rc = cvg__buf_append(b, d[i].origin.bytes, sizeof d[i].origin.bytes);
        if (rc == CVG_OK) {
            rc = put_u64(b, d[i].seq);
        }
    }
    return rc;
}

static int
put_counters(cvg__buf *b, const cvg__op *op)
{
    int rc = put_u32(b, (uint32_t)op->n_counters);
    for (size_t i = 0; rc == CVG_OK && i < op->n_counters; i++) {
        const cvg__delete_counter *dc = &op->counters[i];
        rc = put_name(b, dc->field);
        if (rc == CVG_OK) {
            rc = put_u32(b, (uint32_t)dc->n);
        }
        for (size_t j = 0; rc == CVG_OK && j < dc->n; j++) {
            const cvg__counter_part *p = &dc->parts[j];
            rc = cvg__buf_append(b, p->origin.bytes, sizeof p->origin.bytes);
            if (rc == CVG_OK) {
                rc = put_u64(b, p->seq);
            }
            if (rc == CVG_OK) {
                rc = put_u64(b, (uint64_t)p->sum);
            }
        }
    }
    return rc;
}

int
cvg__op_canon(const cvg__op *op, cvg__buf *out)
{
    const cvg_op *p = &op->pub;
    int rc = put_u8(out, (uint8_t)p->kind);
    if (rc == CVG_OK) {
        rc = put_u64(out, p->hlc);
    }
    if (rc == CVG_OK) {
        rc = put_name(out, p->collection);
    }
    if (rc == CVG_OK) {
        rc = put_name(out, p->key);
    }
    if (rc == CVG_OK) {
        rc = put_name(out, p->field);
    }
    if (rc != CVG_OK) {
        return rc;
    }
    switch (p->kind) {
    case CVG_OP_COUNTER_ADD:
        return put_u64(out, (uint64_t)p->delta);
    case CVG_OP_REGISTER_SET:
    case CVG_OP_MVREGISTER_SET:
    case CVG_OP_SET_ADD:
    case CVG_OP_SET_REMOVE:
        rc = cvg__value_encode(&p->value, out);
        return rc == CVG_OK ? put_dots(out, p->observed, p->observed_count)
                            : rc;
    case CVG_OP_RECORD_DELETE:
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
    if (cvg__id_cmp(&op->pub.dot.origin, &h->origin) != 0 ||
        op->pub.dot.seq != h->seq + 1) {
        return CVG_EINVAL;
    }
    scratch->len = 0;
    int rc = cvg__op_canon(op, scratch);
    if (rc != CVG_OK) {
        return rc;
    }
    if (h->in_seg == CVG__HISTORY_SEGMENT) {
        /* The segment is full: its digest starts the next one. (A stream
         * begun at a segment's start has hashed nothing of it yet.) */
        seal->sealed = true;
        seal->seg = h->seq / CVG__HISTORY_SEGMENT - 1;
        cvg__history_digest(h, seal->digest);
        cvg__history_begin(h, &h->origin, seal->seg + 1, seal->digest);
    }
    crypto_generichash_update(&h->st, scratch->p, scratch->len);
    h->seq++;
    h->in_seg++;
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
