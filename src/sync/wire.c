/*
 * The sync protocol's messages as bytes: msgpack-c packs them into our own
 * buffer, and the bounded reader of src/oplog/mpack.c reads them back, so a
 * hostile peer can neither make us read past its bytes nor allocate more
 * than a small multiple of them.
 *
 * A message is a flat run of msgpack items, never a nested array or map, so
 * the decoding depth is bounded by construction. Each line is one item or a
 * run of them; n is a count followed by that many entries:
 *
 *   all      version (uint)  type (uint)  then the type's fields
 *   HELLO    id (bin 16)  public key (bin 32)  inc (bin, 0 or 16)
 *            challenge (bin 32)  log end (uint64)  flags (uint32)
 *            flags: 1 the sender will pull, 2 it will push its own ops,
 *            4 it asks for a live session;
 *            id = cvg__identity_derive(public key, inc)
 *   VV       at (uint64)  base (uint64, at most at)  total (uint64)
 *            digest (bin 32)  more (bool)
 *            n  n x (origin (bin 16), seq, head (bin 16))
 *            the sender's vector at its lsn at: whole if base is 0, else
 *            the entries changed since its vector at lsn base; total and
 *            digest are the whole vector's, n <= total; a vector of more
 *            than one message has more set on all but its last, and its
 *            entries are sorted across them (vv_sync.c)
 *   VV_WANT  nothing: send your vector whole
 *   PROVE    signature (bin 64) over the peer's challenge (session.c)
 *   PULL     cursor (uint64)  max_ops (uint32)  max_bytes (uint32)
 *   OPS      next_cursor (uint64)  has_more (bool)  n  n x block (bin)
 *            points
 *   PUSH     has_more (bool)  n  n x block (bin): the sender's own ops
 *            points
 *   points   n  n x (origin (bin 16), seq, signature (bin 64),
 *            public key (bin, 0 or 32), inc (bin, 0 or 16; 0 without key))
 *   FORK     origin (bin 16)  seq  digest (bin 32)  signature (bin 64)
 *            want (uint64: a seq, or 0)
 *   ACK      has_more (bool: the page acknowledged said more follow)
 *            n  n x (origin (bin 16), lo, hi, result (int32))
 *            result: 0 the ops lo..hi were taken, 1 they were here
 *            already, or a negative CVG_E... code they were refused with;
 *            sorted by origin, then lo, lo <= hi, none overlapping, and an
 *            origin's neighbouring ranges of one result are one range
 *   ERROR    code (negative int32)  text (str, at most CVG__MSG_TEXT_MAX)
 *
 * Every integer is in its smallest form and the reader accepts no other,
 * so a message decodes one way only and re-encodes to the same bytes.
 */
#include "wire.h"

#include "../oplog/mpack.h"

/* The smallest encoding of one entry of each list: a count is checked
 * against the bytes left divided by this before anything is allocated. */
#define BLOCK_MIN 3u     /* bin 8 header (2), at least one byte */
#define RANGE_MIN 21u    /* bin 16 (18), lo, hi, result (1 each) */
#define VV_ENTRY_MIN 37u /* bin 16, seq (1), bin 16 */
#define POINT_MIN 89u    /* bin 16, seq (1), bin 64 (66), 2 empty bins */

/* ---- Checks -------------------------------------------------------------- */

/* The encoder refuses whatever the decoder would refuse, so that a message
 * we send is never one the peer must reject as malformed. */

static bool
type_known(uint64_t t)
{
    return t >= CVG__MSG_HELLO && t <= CVG__MSG_VV_WANT;
}

static bool
code_ok(int64_t code)
{
    /* An error code is one of the negative CVG_E... values; 0 or a positive
     * number would report success as a failure. */
    return code < 0 && code >= INT32_MIN;
}

static int
check_vv(const cvg_dot *vv, size_t n)
{
    if (n > CVG__MSG_VV_MAX || (n > 0 && vv == NULL)) {
        return CVG_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (vv[i].seq == 0) {
            return CVG_EINVAL;
        }
        /* Strictly increasing: one entry per origin, in one order only. */
        if (i > 0 && cvg__id_cmp(&vv[i - 1].origin, &vv[i].origin) >= 0) {
            return CVG_EINVAL;
        }
    }
    return CVG_OK;
}

static int
check_blocks(const cvg_bytes *blocks, size_t n)
{
    if (n > CVG__MSG_BLOCKS_MAX || (n > 0 && blocks == NULL)) {
        return CVG_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        /* msgpack-c would silently truncate a bin length past 32 bits. */
        if (blocks[i].len == 0 || blocks[i].data == NULL ||
            (uint64_t)blocks[i].len > UINT32_MAX) {
            return CVG_EINVAL;
        }
    }
    return CVG_OK;
}

static int
check_points(const cvg__point *p, size_t n)
{
    if (n > CVG__MSG_POINTS_MAX || (n > 0 && p == NULL)) {
        return CVG_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (p[i].seq == 0 || p[i].inc_len > CVG__INC_MAX ||
            (p[i].inc_len != 0 && p[i].inc_len != CVG__INC_MAX) ||
            (!p[i].has_key && p[i].inc_len != 0)) {
            return CVG_EINVAL;
        }
    }
    return CVG_OK;
}

static bool
result_ok(int64_t result)
{
    return result == CVG__ACK_TAKEN || result == CVG__ACK_DUPLICATE ||
           code_ok(result);
}

/* Range @p r after @p prev (NULL for the first) in an ACK: in order, not
 * overlapping, and not one that should have been merged into @p prev, so
 * that a set of results has one encoding only. */
static bool
range_ok(const cvg__ack_range *prev, const cvg__ack_range *r)
{
    if (r->lo == 0 || r->lo > r->hi || !result_ok(r->result)) {
        return false;
    }
    if (prev == NULL) {
        return true;
    }
    int c = cvg__id_cmp(&prev->origin, &r->origin);
    if (c != 0) {
        return c < 0;
    }
    return r->lo > prev->hi &&
           (r->lo - 1 > prev->hi || r->result != prev->result);
}

static int
check_ranges(const cvg__ack_range *ranges, size_t n)
{
    if (n > CVG__MSG_RANGES_MAX || (n > 0 && ranges == NULL)) {
        return CVG_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!range_ok(i > 0 ? &ranges[i - 1] : NULL, &ranges[i])) {
            return CVG_EINVAL;
        }
    }
    return CVG_OK;
}

static int
check_msg(const cvg__msg *m)
{
    if (m->version != CVG_PROTOCOL_VERSION || !type_known((uint64_t)m->type)) {
        return CVG_EINVAL;
    }
    switch (m->type) {
    case CVG__MSG_HELLO:
        if (m->pk == NULL || m->nonce == NULL || m->inc.len > CVG__INC_MAX ||
            (m->inc.len > 0 && m->inc.data == NULL)) {
            return CVG_EINVAL;
        }
        return CVG_OK;
    case CVG__MSG_VV:
        if ((m->vv_n > 0 && m->heads == NULL) || m->vv_digest == NULL ||
            m->vv_base > m->vv_at || m->vv_n > m->vv_total) {
            return CVG_EINVAL;
        }
        return check_vv(m->vv, m->vv_n);
    case CVG__MSG_VV_WANT:
        return CVG_OK;
    case CVG__MSG_PROVE:
        return m->sig != NULL ? CVG_OK : CVG_EINVAL;
    case CVG__MSG_PULL:
    case CVG__MSG_HAVE:
        return CVG_OK;
    case CVG__MSG_OPS:
    case CVG__MSG_PUSH:
        return check_blocks(m->blocks, m->n_blocks) == CVG_OK
                   ? check_points(m->points, m->n_points)
                   : CVG_EINVAL;
    case CVG__MSG_FORK:
        return m->fork.seq > 0 && m->fork_head != NULL ? CVG_OK : CVG_EINVAL;
    case CVG__MSG_ACK:
        return check_ranges(m->ranges, m->n_ranges);
    case CVG__MSG_ERROR:
        if (!code_ok(m->code) || m->text.len > CVG__MSG_TEXT_MAX ||
            (m->text.len > 0 && m->text.data == NULL)) {
            return CVG_EINVAL;
        }
        return CVG_OK;
    }
    return CVG_EINVAL;
}

/* ---- The digest of a version vector --------------------------------------- */

void
cvg__vv_digest(const cvg_dot *vv, size_t n, uint8_t out[CVG__VV_DIGEST_BYTES])
{
    cvg__vv_sum sum;
    cvg__vv_sum_of(vv, n, &sum);
    cvg__vv_sum_bytes(&sum, out);
}

/* ---- Encoder ------------------------------------------------------------- */

static int
pack_dot(msgpack_packer *pk, const cvg_dot *d)
{
    CVG__MP_TRY(msgpack_pack_bin_with_body(pk, d->origin.bytes, 16));
    CVG__MP_TRY(msgpack_pack_uint64(pk, d->seq));
    return CVG_OK;
}

static int
pack_blocks(msgpack_packer *pk, const cvg_bytes *blocks, size_t n)
{
    CVG__MP_TRY(msgpack_pack_uint64(pk, n));
    for (size_t i = 0; i < n; i++) {
        CVG__MP_TRY(
            msgpack_pack_bin_with_body(pk, blocks[i].data, blocks[i].len));
    }
    return CVG_OK;
}

static int
pack_points(msgpack_packer *pk, const cvg__point *p, size_t n)
{
    CVG__MP_TRY(msgpack_pack_uint64(pk, n));
    for (size_t i = 0; i < n; i++) {
        CVG__MP_TRY(msgpack_pack_bin_with_body(pk, p[i].origin.bytes, 16));
        CVG__MP_TRY(msgpack_pack_uint64(pk, p[i].seq));
        CVG__MP_TRY(msgpack_pack_bin_with_body(pk, p[i].sig, CVG__SIG_BYTES));
        CVG__MP_TRY(
            msgpack_pack_bin_with_body(pk, p[i].pk, p[i].has_key ? 32 : 0));
        CVG__MP_TRY(msgpack_pack_bin_with_body(pk, p[i].inc, p[i].inc_len));
    }
    return CVG_OK;
}

static int
pack_msg(msgpack_packer *pk, const cvg__msg *m)
{
    int rc;
    /* msgpack-c writes every integer in its smallest form. */
    CVG__MP_TRY(msgpack_pack_uint32(pk, m->version));
    CVG__MP_TRY(msgpack_pack_uint32(pk, (uint32_t)m->type));
    switch (m->type) {
    case CVG__MSG_HELLO:
        CVG__MP_TRY(msgpack_pack_bin_with_body(pk, m->id.bytes, 16));
        CVG__MP_TRY(
            msgpack_pack_bin_with_body(pk, m->pk, CVG_PUBLIC_KEY_BYTES));
        CVG__MP_TRY(msgpack_pack_bin(pk, m->inc.len));
        if (m->inc.len > 0) {
            CVG__MP_TRY(msgpack_pack_bin_body(pk, m->inc.data, m->inc.len));
        }
        CVG__MP_TRY(msgpack_pack_bin_with_body(pk, m->nonce, CVG__NONCE_BYTES));
        CVG__MP_TRY(msgpack_pack_uint64(pk, m->log_end));
        CVG__MP_TRY(msgpack_pack_uint32(pk, m->flags));
        return CVG_OK;
    case CVG__MSG_VV:
        CVG__MP_TRY(msgpack_pack_uint64(pk, m->vv_at));
        CVG__MP_TRY(msgpack_pack_uint64(pk, m->vv_base));
        CVG__MP_TRY(msgpack_pack_uint64(pk, m->vv_total));
        CVG__MP_TRY(
            msgpack_pack_bin_with_body(pk, m->vv_digest, CVG__VV_DIGEST_BYTES));
        CVG__MP_TRY(m->has_more ? msgpack_pack_true(pk)
                                : msgpack_pack_false(pk));
        CVG__MP_TRY(msgpack_pack_uint64(pk, m->vv_n));
        for (size_t i = 0; i < m->vv_n; i++) {
            rc = pack_dot(pk, &m->vv[i]);
            if (rc != CVG_OK) {
                return rc;
            }
            CVG__MP_TRY(msgpack_pack_bin_with_body(
                pk, m->heads + i * CVG__HEAD_BYTES, CVG__HEAD_BYTES));
        }
        return CVG_OK;
    case CVG__MSG_FORK:
        CVG__MP_TRY(msgpack_pack_bin_with_body(pk, m->fork.origin.bytes, 16));
        CVG__MP_TRY(msgpack_pack_uint64(pk, m->fork.seq));
        CVG__MP_TRY(
            msgpack_pack_bin_with_body(pk, m->fork_head, CVG__DIGEST_BYTES));
        CVG__MP_TRY(
            msgpack_pack_bin_with_body(pk, m->fork.sig, CVG__SIG_BYTES));
        CVG__MP_TRY(msgpack_pack_uint64(pk, m->fork_want));
        return CVG_OK;
    case CVG__MSG_PROVE:
        return msgpack_pack_bin_with_body(pk, m->sig, CVG__SIG_BYTES) == 0
                   ? CVG_OK
                   : CVG_ENOMEM;
    case CVG__MSG_HAVE:
        CVG__MP_TRY(msgpack_pack_uint64(pk, m->log_end));
        CVG__MP_TRY(msgpack_pack_uint64(pk, m->token));
        return CVG_OK;
    case CVG__MSG_VV_WANT:
        return CVG_OK;
    case CVG__MSG_PULL:
        CVG__MP_TRY(msgpack_pack_uint64(pk, m->cursor));
        CVG__MP_TRY(msgpack_pack_uint32(pk, m->max_ops));
        CVG__MP_TRY(msgpack_pack_uint32(pk, m->max_bytes));
        return CVG_OK;
    case CVG__MSG_OPS:
        CVG__MP_TRY(msgpack_pack_uint64(pk, m->next_cursor));
        CVG__MP_TRY(m->has_more ? msgpack_pack_true(pk)
                                : msgpack_pack_false(pk));
        rc = pack_blocks(pk, m->blocks, m->n_blocks);
        return rc == CVG_OK ? pack_points(pk, m->points, m->n_points) : rc;
    case CVG__MSG_PUSH:
        CVG__MP_TRY(m->has_more ? msgpack_pack_true(pk)
                                : msgpack_pack_false(pk));
        rc = pack_blocks(pk, m->blocks, m->n_blocks);
        return rc == CVG_OK ? pack_points(pk, m->points, m->n_points) : rc;
    case CVG__MSG_ACK:
        CVG__MP_TRY(m->has_more ? msgpack_pack_true(pk)
                                : msgpack_pack_false(pk));
        CVG__MP_TRY(msgpack_pack_uint64(pk, m->token));
        CVG__MP_TRY(msgpack_pack_uint64(pk, m->n_ranges));
        for (size_t i = 0; i < m->n_ranges; i++) {
            const cvg__ack_range *g = &m->ranges[i];
            CVG__MP_TRY(msgpack_pack_bin_with_body(pk, g->origin.bytes, 16));
            CVG__MP_TRY(msgpack_pack_uint64(pk, g->lo));
            CVG__MP_TRY(msgpack_pack_uint64(pk, g->hi));
            CVG__MP_TRY(msgpack_pack_int64(pk, g->result));
        }
        return CVG_OK;
    case CVG__MSG_ERROR:
        CVG__MP_TRY(msgpack_pack_int64(pk, m->code));
        CVG__MP_TRY(msgpack_pack_str(pk, m->text.len));
        if (m->text.len > 0) {
            CVG__MP_TRY(msgpack_pack_str_body(pk, m->text.data, m->text.len));
        }
        return CVG_OK;
    }
    return CVG_EINVAL; /* check_msg() let no other type through */
}

int
cvg__msg_encode(const cvg__msg *m, cvg__buf *out)
{
    if (m == NULL || out == NULL) {
        return CVG_EINVAL;
    }
    /* Everything is checked before the first byte goes out, so a refused
     * message leaves no partial encoding behind. */
    int rc = check_msg(m);
    if (rc != CVG_OK) {
        return rc;
    }
    size_t mark = out->len;
    msgpack_packer pk;
    cvg__mp_packer_init(&pk, out);
    rc = pack_msg(&pk, m);
    if (rc != CVG_OK) {
        out->len = mark; /* a failed append keeps what was there */
    }
    return rc;
}

/* ---- Decoder ------------------------------------------------------------- */

/* cvg__grow through a void * temporary, as the array types differ. On
 * failure the array and its capacity stay as they were, so the scratch is
 * still good for the next decode. */
#define GROW(arr, cap, need, rc)                               \
    do {                                                       \
        void *tmp_ = (arr);                                    \
        (rc) = cvg__grow(&tmp_, (cap), (need), sizeof *(arr)); \
        (arr) = tmp_;                                          \
    } while (0)

/* A msgpack bool, and nothing else: an int 0 or 1 would make a second
 * encoding of the same message. */
static int
read_bool(cvg__mp *r, bool *out)
{
    if (cvg__mp_left(r) == 0 || (r->p[0] != 0xc2 && r->p[0] != 0xc3)) {
        return CVG_ECORRUPT;
    }
    *out = r->p[0] == 0xc3;
    r->p++;
    return CVG_OK;
}

static int
read_code(cvg__mp *r, int32_t *out)
{
    int64_t c;
    if (cvg__mp_int(r, &c) != CVG_OK || !code_ok(c)) {
        return CVG_ECORRUPT;
    }
    *out = (int32_t)c;
    return CVG_OK;
}

static int
read_dot(cvg__mp *r, cvg_dot *out)
{
    if (cvg__mp_id(r, &out->origin) != CVG_OK ||
        cvg__mp_uint(r, UINT64_MAX, &out->seq) != CVG_OK || out->seq == 0) {
        return CVG_ECORRUPT;
    }
    return CVG_OK;
}

static int
read_hello(cvg__mp *r, cvg__msg *m)
{
    uint64_t flags;
    cvg_bytes pk, nonce;
    if (cvg__mp_id(r, &m->id) != CVG_OK ||
        cvg__mp_bin(r, CVG_PUBLIC_KEY_BYTES, &pk) != CVG_OK ||
        pk.len != CVG_PUBLIC_KEY_BYTES ||
        cvg__mp_bin(r, CVG__INC_MAX, &m->inc) != CVG_OK ||
        (m->inc.len != 0 && m->inc.len != CVG__INC_MAX) ||
        cvg__mp_bin(r, CVG__NONCE_BYTES, &nonce) != CVG_OK ||
        nonce.len != CVG__NONCE_BYTES ||
        cvg__mp_uint(r, UINT64_MAX, &m->log_end) != CVG_OK ||
        cvg__mp_uint(r, UINT32_MAX, &flags) != CVG_OK) {
        return CVG_ECORRUPT;
    }
    m->pk = pk.data;
    m->nonce = nonce.data;
    m->flags = (uint32_t)flags;
    return CVG_OK;
}

static int
read_vv(cvg__mp *r, cvg__msg *m, cvg__msg_scratch *s)
{
    size_t n;
    cvg_bytes digest;
    if (cvg__mp_uint(r, UINT64_MAX, &m->vv_at) != CVG_OK ||
        cvg__mp_uint(r, m->vv_at, &m->vv_base) != CVG_OK ||
        cvg__mp_uint(r, UINT64_MAX, &m->vv_total) != CVG_OK ||
        cvg__mp_bin(r, CVG__VV_DIGEST_BYTES, &digest) != CVG_OK ||
        digest.len != CVG__VV_DIGEST_BYTES ||
        read_bool(r, &m->has_more) != CVG_OK ||
        cvg__mp_count(r, CVG__MSG_VV_MAX, VV_ENTRY_MIN, &n) != CVG_OK ||
        n > m->vv_total) {
        return CVG_ECORRUPT;
    }
    m->vv_digest = digest.data;
    int rc;
    GROW(s->vv, &s->vv_cap, n, rc);
    if (rc == CVG_OK) {
        GROW(s->heads, &s->heads_cap, n * CVG__HEAD_BYTES, rc);
    }
    if (rc != CVG_OK) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        cvg_bytes head;
        if (read_dot(r, &s->vv[i]) != CVG_OK ||
            cvg__mp_bin(r, CVG__HEAD_BYTES, &head) != CVG_OK ||
            head.len != CVG__HEAD_BYTES) {
            return CVG_ECORRUPT;
        }
        memcpy(s->heads + i * CVG__HEAD_BYTES, head.data, CVG__HEAD_BYTES);
        if (i > 0 && cvg__id_cmp(&s->vv[i - 1].origin, &s->vv[i].origin) >= 0) {
            return CVG_ECORRUPT; /* unsorted, or an origin twice */
        }
    }
    m->vv = n > 0 ? s->vv : NULL;
    m->heads = n > 0 ? s->heads : NULL;
    m->vv_n = n;
    return CVG_OK;
}

static int
read_pull(cvg__mp *r, cvg__msg *m)
{
    uint64_t max_ops, max_bytes;
    if (cvg__mp_uint(r, UINT64_MAX, &m->cursor) != CVG_OK ||
        cvg__mp_uint(r, UINT32_MAX, &max_ops) != CVG_OK ||
        cvg__mp_uint(r, UINT32_MAX, &max_bytes) != CVG_OK) {
        return CVG_ECORRUPT;
    }
    m->max_ops = (uint32_t)max_ops;
    m->max_bytes = (uint32_t)max_bytes;
    return CVG_OK;
}

/* n, then n blocks, delimited only: their contents are the log's business
 * (cvg__block_open checks them when they are applied). */
static int
read_blocks(cvg__mp *r, cvg__msg *m, cvg__msg_scratch *s)
{
    size_t n;
    if (cvg__mp_count(r, CVG__MSG_BLOCKS_MAX, BLOCK_MIN, &n) != CVG_OK) {
        return CVG_ECORRUPT;
    }
    int rc;
    GROW(s->blocks, &s->blocks_cap, n, rc);
    if (rc != CVG_OK) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        /* The reader bounds the length by the bytes left. */
        if (cvg__mp_bin(r, SIZE_MAX, &s->blocks[i]) != CVG_OK ||
            s->blocks[i].len == 0) {
            return CVG_ECORRUPT;
        }
    }
    m->blocks = n > 0 ? s->blocks : NULL;
    m->n_blocks = n;
    return CVG_OK;
}

/* Exactly @p len bytes of bin, copied. */
static int
read_fixed(cvg__mp *r, size_t len, uint8_t *out)
{
    cvg_bytes b;
    if (cvg__mp_bin(r, len, &b) != CVG_OK || b.len != len) {
        return CVG_ECORRUPT;
    }
    memcpy(out, b.data, len);
    return CVG_OK;
}

static int
read_points(cvg__mp *r, cvg__msg *m, cvg__msg_scratch *s)
{
    size_t n;
    if (cvg__mp_count(r, CVG__MSG_POINTS_MAX, POINT_MIN, &n) != CVG_OK) {
        return CVG_ECORRUPT;
    }
    int rc;
    GROW(s->points, &s->points_cap, n, rc);
    if (rc != CVG_OK) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        cvg__point *p = &s->points[i];
        cvg_bytes key, inc;
        memset(p, 0, sizeof *p);
        if (cvg__mp_id(r, &p->origin) != CVG_OK ||
            cvg__mp_uint(r, UINT64_MAX, &p->seq) != CVG_OK || p->seq == 0 ||
            read_fixed(r, CVG__SIG_BYTES, p->sig) != CVG_OK ||
            cvg__mp_bin(r, 32, &key) != CVG_OK ||
            (key.len != 0 && key.len != 32) ||
            cvg__mp_bin(r, CVG__INC_MAX, &inc) != CVG_OK ||
            (inc.len != 0 && (inc.len != CVG__INC_MAX || key.len == 0))) {
            return CVG_ECORRUPT;
        }
        p->has_key = key.len == 32;
        if (p->has_key) {
            memcpy(p->pk, key.data, 32);
        }
        p->inc_len = (uint8_t)inc.len;
        if (inc.len) {
            memcpy(p->inc, inc.data, inc.len);
        }
    }
    m->points = n > 0 ? s->points : NULL;
    m->n_points = n;
    return CVG_OK;
}

static int
read_fork(cvg__mp *r, cvg__msg *m)
{
    cvg_bytes head;
    if (cvg__mp_id(r, &m->fork.origin) != CVG_OK ||
        cvg__mp_uint(r, UINT64_MAX, &m->fork.seq) != CVG_OK ||
        m->fork.seq == 0 ||
        cvg__mp_bin(r, CVG__DIGEST_BYTES, &head) != CVG_OK ||
        head.len != CVG__DIGEST_BYTES ||
        read_fixed(r, CVG__SIG_BYTES, m->fork.sig) != CVG_OK ||
        cvg__mp_uint(r, UINT64_MAX, &m->fork_want) != CVG_OK) {
        return CVG_ECORRUPT;
    }
    m->fork_head = head.data;
    return CVG_OK;
}

static int
read_ack(cvg__mp *r, cvg__msg *m, cvg__msg_scratch *s)
{
    size_t n;
    if (read_bool(r, &m->has_more) != CVG_OK ||
        cvg__mp_uint(r, UINT64_MAX, &m->token) != CVG_OK ||
        cvg__mp_count(r, CVG__MSG_RANGES_MAX, RANGE_MIN, &n) != CVG_OK) {
        return CVG_ECORRUPT;
    }
    int rc;
    GROW(s->ranges, &s->ranges_cap, n, rc);
    if (rc != CVG_OK) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        cvg__ack_range *g = &s->ranges[i];
        int64_t result;
        if (cvg__mp_id(r, &g->origin) != CVG_OK ||
            cvg__mp_uint(r, UINT64_MAX, &g->lo) != CVG_OK ||
            cvg__mp_uint(r, UINT64_MAX, &g->hi) != CVG_OK ||
            cvg__mp_int(r, &result) != CVG_OK || !result_ok(result)) {
            return CVG_ECORRUPT;
        }
        g->result = (int32_t)result;
        if (!range_ok(i > 0 ? g - 1 : NULL, g)) {
            return CVG_ECORRUPT; /* empty, unsorted, overlapping, unmerged */
        }
    }
    m->ranges = n > 0 ? s->ranges : NULL;
    m->n_ranges = n;
    return CVG_OK;
}

static int
read_error(cvg__mp *r, cvg__msg *m)
{
    if (read_code(r, &m->code) != CVG_OK ||
        cvg__mp_str(r, CVG__MSG_TEXT_MAX, &m->text) != CVG_OK) {
        return CVG_ECORRUPT;
    }
    return CVG_OK;
}

static int
read_msg(cvg__mp *r, cvg__msg *m, cvg__msg_scratch *s)
{
    uint64_t version, type;
    /* The version comes first and alone decides how the rest reads: a
     * newer peer's message is not looked at past it. */
    if (cvg__mp_uint(r, UINT32_MAX, &version) != CVG_OK || version == 0) {
        return CVG_ECORRUPT;
    }
    m->version = (uint32_t)version;
    if (version != CVG_PROTOCOL_VERSION) {
        return CVG_EVERSION; /* older ones lack the identity proof */
    }
    if (cvg__mp_uint(r, UINT64_MAX, &type) != CVG_OK || !type_known(type)) {
        return CVG_ECORRUPT;
    }
    m->type = (cvg__msg_type)type;
    int rc = CVG_ECORRUPT;
    switch (m->type) {
    case CVG__MSG_HELLO:
        rc = read_hello(r, m);
        break;
    case CVG__MSG_VV:
        rc = read_vv(r, m, s);
        break;
    case CVG__MSG_VV_WANT:
        rc = CVG_OK;
        break;
    case CVG__MSG_PULL:
        rc = read_pull(r, m);
        break;
    case CVG__MSG_HAVE:
        rc = cvg__mp_uint(r, UINT64_MAX, &m->log_end);
        if (rc == CVG_OK) {
            rc = cvg__mp_uint(r, UINT64_MAX, &m->token);
        }
        break;
    case CVG__MSG_PROVE: {
        cvg_bytes sig;
        rc = cvg__mp_bin(r, CVG__SIG_BYTES, &sig) == CVG_OK &&
                     sig.len == CVG__SIG_BYTES
                 ? CVG_OK
                 : CVG_ECORRUPT;
        m->sig = sig.data;
        break;
    }
    case CVG__MSG_OPS:
        if (cvg__mp_uint(r, UINT64_MAX, &m->next_cursor) != CVG_OK ||
            read_bool(r, &m->has_more) != CVG_OK) {
            return CVG_ECORRUPT;
        }
        rc = read_blocks(r, m, s);
        if (rc == CVG_OK) {
            rc = read_points(r, m, s);
        }
        break;
    case CVG__MSG_PUSH:
        if (read_bool(r, &m->has_more) != CVG_OK) {
            return CVG_ECORRUPT;
        }
        rc = read_blocks(r, m, s);
        if (rc == CVG_OK) {
            rc = read_points(r, m, s);
        }
        break;
    case CVG__MSG_FORK:
        rc = read_fork(r, m);
        break;
    case CVG__MSG_ACK:
        rc = read_ack(r, m, s);
        break;
    case CVG__MSG_ERROR:
        rc = read_error(r, m);
        break;
    }
    if (rc == CVG_OK && cvg__mp_left(r) != 0) {
        rc = CVG_ECORRUPT; /* one message per call: trailing bytes */
    }
    return rc;
}

int
cvg__msg_decode(const uint8_t *data, size_t len, cvg__msg *m,
                cvg__msg_scratch *s)
{
    if (m == NULL) {
        return CVG_EINVAL;
    }
    memset(m, 0, sizeof *m);
    if (s == NULL || (data == NULL && len > 0)) {
        return CVG_EINVAL;
    }
    if (len == 0) {
        return CVG_ECORRUPT; /* and data may be NULL: no pointer sums */
    }
    cvg__mp r = {data, data + len};
    int rc = read_msg(&r, m, s);
    if (rc != CVG_OK) {
        /* Nothing half-read escapes; only the version of a newer peer,
         * which the caller reports. */
        uint32_t version = m->version;
        memset(m, 0, sizeof *m);
        if (rc == CVG_EVERSION) {
            m->version = version;
        }
    }
    return rc;
}

void
cvg__msg_scratch_destroy(cvg__msg_scratch *s)
{
    if (s == NULL) {
        return;
    }
    cvg__free(s->vv);
    cvg__free(s->blocks);
    cvg__free(s->ranges);
    cvg__free(s->heads);
    cvg__free(s->points);
    memset(s, 0, sizeof *s);
}
