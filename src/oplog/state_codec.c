/*
 * State records: the merged state of one field (a counter or a register) or
 * of one set element, as stored in LMDB, and the canonical bytes of a value.
 * Each record is a flat run of msgpack items behind one tag byte; origins
 * are written as local indexes of the replica's origin table.
 */
#include "mpack.h"

/* The tag byte: format version in the high nibble, record kind in the low.
 * A positive fixint, so one byte. */
#define STATE_VERSION 1u
#define KIND_COUNTER 1u
#define KIND_REG 2u
#define KIND_ELEM 3u
#define TAG(kind) ((uint8_t)((STATE_VERSION << 4) | (kind)))

/* Smallest encodings of one item, to check counts against the bytes left
 * before allocating: a counter part is 5 integers, a sibling 3 integers and
 * a value, a tag 2 integers. */
#define PART_MIN_BYTES 5u
#define SIBLING_MIN_BYTES 4u
#define DOT_MIN_BYTES 2u

/* ---- Encoding ------------------------------------------------------------ */

/* All encoders append to @p out; on failure out->len is restored (origins
 * already added to @p o stay: the caller's transaction truncates them if it
 * aborts). */

static int
pack_origin(msgpack_packer *pk, cvg__origins *o, const cvg_replica_id *id)
{
    uint32_t idx;
    bool added;
    int rc = cvg__origins_index(o, id, &idx, &added);
    if (rc != CVG_OK) {
        return rc;
    }
    CVG__MP_TRY(msgpack_pack_uint32(pk, idx));
    return CVG_OK;
}

static int
encode_counter(const cvg__counter *c, cvg__origins *o, msgpack_packer *pk)
{
    if (c->n > 0 && c->parts == NULL) {
        return CVG_EINVAL;
    }
    CVG__MP_TRY(msgpack_pack_uint8(pk, TAG(KIND_COUNTER)));
    CVG__MP_TRY(msgpack_pack_uint64(pk, c->n));
    for (size_t i = 0; i < c->n; i++) {
        const cvg__counter_part *p = &c->parts[i];
        /* The decoder insists on the order the counter relies on (binary
         * search by origin): never store what cannot be read back. */
        if (i > 0 && cvg__id_cmp(&p[-1].origin, &p->origin) >= 0) {
            return CVG_EINVAL;
        }
        int rc = pack_origin(pk, o, &p->origin);
        if (rc != CVG_OK) {
            return rc;
        }
        CVG__MP_TRY(msgpack_pack_uint64(pk, p->seq));
        CVG__MP_TRY(msgpack_pack_int64(pk, p->sum));
        CVG__MP_TRY(msgpack_pack_uint64(pk, p->floor_seq));
        CVG__MP_TRY(msgpack_pack_int64(pk, p->floor_sum));
    }
    return CVG_OK;
}

int
cvg__state_encode_counter(const cvg__counter *c, cvg__origins *o, cvg__buf *out)
{
    size_t mark = out->len;
    msgpack_packer pk;
    cvg__mp_packer_init(&pk, out);
    int rc = encode_counter(c, o, &pk);
    if (rc != CVG_OK) {
        out->len = mark;
    }
    return rc;
}

static int
encode_reg(const cvg__reg *r, cvg__origins *o, msgpack_packer *pk)
{
    if (r->n > 0 && r->s == NULL) {
        return CVG_EINVAL;
    }
    CVG__MP_TRY(msgpack_pack_uint8(pk, TAG(KIND_REG)));
    CVG__MP_TRY(msgpack_pack_uint64(pk, r->n));
    for (size_t i = 0; i < r->n; i++) {
        const cvg__sibling *s = &r->s[i];
        if (s->dot.seq == 0 ||
            (i > 0 && cvg__dot_cmp(&s[-1].dot, &s->dot) >= 0)) {
            return CVG_EINVAL;
        }
        int rc = cvg__value_check(&s->value);
        if (rc != CVG_OK) {
            return rc;
        }
        rc = pack_origin(pk, o, &s->dot.origin);
        if (rc != CVG_OK) {
            return rc;
        }
        CVG__MP_TRY(msgpack_pack_uint64(pk, s->dot.seq));
        CVG__MP_TRY(msgpack_pack_uint64(pk, s->hlc));
        rc = cvg__mp_pack_value(pk, &s->value);
        if (rc != CVG_OK) {
            return rc;
        }
    }
    return CVG_OK;
}

int
cvg__state_encode_reg(const cvg__reg *r, cvg__origins *o, cvg__buf *out)
{
    size_t mark = out->len;
    msgpack_packer pk;
    cvg__mp_packer_init(&pk, out);
    int rc = encode_reg(r, o, &pk);
    if (rc != CVG_OK) {
        out->len = mark;
    }
    return rc;
}

static int
encode_elem(const cvg_value *elem, const cvg__tags *t, cvg__origins *o,
            msgpack_packer *pk)
{
    if (t->n > 0 && t->d == NULL) {
        return CVG_EINVAL;
    }
    int rc = cvg__value_check(elem);
    if (rc != CVG_OK) {
        return rc;
    }
    CVG__MP_TRY(msgpack_pack_uint8(pk, TAG(KIND_ELEM)));
    rc = cvg__mp_pack_value(pk, elem);
    if (rc != CVG_OK) {
        return rc;
    }
    CVG__MP_TRY(msgpack_pack_uint64(pk, t->n));
    for (size_t i = 0; i < t->n; i++) {
        const cvg_dot *d = &t->d[i];
        if (d->seq == 0 || (i > 0 && cvg__dot_cmp(&d[-1], d) >= 0)) {
            return CVG_EINVAL;
        }
        rc = pack_origin(pk, o, &d->origin);
        if (rc != CVG_OK) {
            return rc;
        }
        CVG__MP_TRY(msgpack_pack_uint64(pk, d->seq));
    }
    return CVG_OK;
}

int
cvg__state_encode_elem(const cvg_value *elem, const cvg__tags *t,
                       cvg__origins *o, cvg__buf *out)
{
    size_t mark = out->len;
    msgpack_packer pk;
    cvg__mp_packer_init(&pk, out);
    int rc = encode_elem(elem, t, o, &pk);
    if (rc != CVG_OK) {
        out->len = mark;
    }
    return rc;
}

int
cvg__value_encode(const cvg_value *v, cvg__buf *out)
{
    int rc = cvg__value_check(v);
    if (rc != CVG_OK) {
        return rc;
    }
    size_t mark = out->len;
    msgpack_packer pk;
    cvg__mp_packer_init(&pk, out);
    rc = cvg__mp_pack_value(&pk, v);
    if (rc != CVG_OK) {
        out->len = mark;
    }
    return rc;
}

/* ---- Decoding ------------------------------------------------------------ */

/* The tag byte: CVG_EVERSION for a newer version of this kind. */
static int
read_tag(cvg__mp *m, unsigned kind)
{
    uint64_t tag;
    if (cvg__mp_uint(m, 0x7f, &tag) != CVG_OK || (tag & 0x0f) != kind) {
        return CVG_ECORRUPT;
    }
    if ((tag >> 4) > STATE_VERSION) {
        return CVG_EVERSION;
    }
    return (tag >> 4) == STATE_VERSION ? CVG_OK : CVG_ECORRUPT;
}

/* A reader over @p n bytes at @p p (NULL only when empty: an empty record
 * is malformed, and NULL + 0 is not valid C). */
static int
mp_init(cvg__mp *m, const uint8_t *p, size_t n)
{
    if (p == NULL) {
        m->p = m->end = NULL;
        return CVG_ECORRUPT;
    }
    m->p = p;
    m->end = p + n;
    return CVG_OK;
}

/* A local origin index, resolved through @p o. */
static int
read_origin(cvg__mp *m, const cvg__origins *o, cvg_replica_id *out)
{
    uint64_t idx;
    if (cvg__mp_uint(m, UINT32_MAX, &idx) != CVG_OK) {
        return CVG_ECORRUPT;
    }
    const cvg_replica_id *id = cvg__origins_id(o, (uint32_t)idx);
    if (id == NULL) {
        return CVG_ECORRUPT;
    }
    *out = *id;
    return CVG_OK;
}

static int
decode_counter(cvg__mp *m, const cvg__origins *o, cvg__counter *out)
{
    size_t n;
    int rc = read_tag(m, KIND_COUNTER);
    if (rc != CVG_OK) {
        return rc;
    }
    if (cvg__mp_count(m, SIZE_MAX, PART_MIN_BYTES, &n) != CVG_OK) {
        return CVG_ECORRUPT;
    }
    if (n == 0) {
        return CVG_OK;
    }
    out->parts = cvg__calloc(n, sizeof *out->parts);
    if (out->parts == NULL) {
        return CVG_ENOMEM;
    }
    out->cap = n;
    for (size_t i = 0; i < n; i++) {
        cvg__counter_part *p = &out->parts[i];
        if (read_origin(m, o, &p->origin) != CVG_OK ||
            cvg__mp_uint(m, UINT64_MAX, &p->seq) != CVG_OK ||
            cvg__mp_int(m, &p->sum) != CVG_OK ||
            cvg__mp_uint(m, UINT64_MAX, &p->floor_seq) != CVG_OK ||
            cvg__mp_int(m, &p->floor_sum) != CVG_OK) {
            return CVG_ECORRUPT;
        }
        if (i > 0 && cvg__id_cmp(&p[-1].origin, &p->origin) >= 0) {
            return CVG_ECORRUPT;
        }
        out->n = i + 1;
    }
    return CVG_OK;
}

int
cvg__state_decode_counter(const uint8_t *p, size_t n, const cvg__origins *o,
                          cvg__counter *out)
{
    /* *out is an output: whatever it held is overwritten, not freed. */
    memset(out, 0, sizeof *out);
    cvg__mp m;
    int rc =
        mp_init(&m, p, n) == CVG_OK ? decode_counter(&m, o, out) : CVG_ECORRUPT;
    if (rc == CVG_OK && cvg__mp_left(&m) != 0) {
        rc = CVG_ECORRUPT; /* trailing bytes */
    }
    if (rc != CVG_OK) {
        cvg__counter_destroy(out);
        memset(out, 0, sizeof *out);
    }
    return rc;
}

static int
decode_reg(cvg__mp *m, const cvg__origins *o, cvg__reg *out)
{
    size_t n;
    int rc = read_tag(m, KIND_REG);
    if (rc != CVG_OK) {
        return rc;
    }
    if (cvg__mp_count(m, SIZE_MAX, SIBLING_MIN_BYTES, &n) != CVG_OK) {
        return CVG_ECORRUPT;
    }
    if (n == 0) {
        return CVG_OK;
    }
    out->s = cvg__calloc(n, sizeof *out->s);
    if (out->s == NULL) {
        return CVG_ENOMEM;
    }
    out->cap = n;
    for (size_t i = 0; i < n; i++) {
        cvg__sibling *s = &out->s[i];
        cvg_value v;
        if (read_origin(m, o, &s->dot.origin) != CVG_OK ||
            cvg__mp_uint(m, UINT64_MAX, &s->dot.seq) != CVG_OK ||
            cvg__mp_uint(m, UINT64_MAX, &s->hlc) != CVG_OK ||
            cvg__mp_value(m, &v) != CVG_OK || s->dot.seq == 0) {
            return CVG_ECORRUPT;
        }
        if (i > 0 && cvg__dot_cmp(&s[-1].dot, &s->dot) >= 0) {
            return CVG_ECORRUPT;
        }
        /* Copy out of the LMDB page: the state outlives the transaction's
         * next write. */
        rc = cvg__value_copy(&s->value, &v);
        if (rc != CVG_OK) {
            return rc;
        }
        out->n = i + 1;
    }
    return CVG_OK;
}

int
cvg__state_decode_reg(const uint8_t *p, size_t n, const cvg__origins *o,
                      cvg__reg *out)
{
    memset(out, 0, sizeof *out);
    cvg__mp m;
    int rc =
        mp_init(&m, p, n) == CVG_OK ? decode_reg(&m, o, out) : CVG_ECORRUPT;
    if (rc == CVG_OK && cvg__mp_left(&m) != 0) {
        rc = CVG_ECORRUPT;
    }
    if (rc != CVG_OK) {
        /* Siblings past out->n hold no value yet (calloc: nil), so
         * destroying all out->n is exact. */
        cvg__reg_destroy(out);
        memset(out, 0, sizeof *out);
    }
    return rc;
}

static int
decode_elem(cvg__mp *m, const cvg__origins *o, cvg_value *elem, cvg__tags *out)
{
    size_t n;
    int rc = read_tag(m, KIND_ELEM);
    if (rc != CVG_OK) {
        return rc;
    }
    if (cvg__mp_value(m, elem) != CVG_OK ||
        cvg__mp_count(m, SIZE_MAX, DOT_MIN_BYTES, &n) != CVG_OK) {
        return CVG_ECORRUPT;
    }
    if (n == 0) {
        return CVG_OK;
    }
    out->d = cvg__calloc(n, sizeof *out->d);
    if (out->d == NULL) {
        return CVG_ENOMEM;
    }
    out->cap = n;
    for (size_t i = 0; i < n; i++) {
        cvg_dot *d = &out->d[i];
        if (read_origin(m, o, &d->origin) != CVG_OK ||
            cvg__mp_uint(m, UINT64_MAX, &d->seq) != CVG_OK || d->seq == 0) {
            return CVG_ECORRUPT;
        }
        if (i > 0 && cvg__dot_cmp(&d[-1], d) >= 0) {
            return CVG_ECORRUPT;
        }
        out->n = i + 1;
    }
    return CVG_OK;
}

int
cvg__state_decode_elem(const uint8_t *p, size_t n, const cvg__origins *o,
                       cvg_value *elem_out, cvg__tags *out)
{
    memset(out, 0, sizeof *out);
    *elem_out = cvg_value_nil();
    cvg__mp m;
    int rc = mp_init(&m, p, n) == CVG_OK ? decode_elem(&m, o, elem_out, out)
                                         : CVG_ECORRUPT;
    if (rc == CVG_OK && cvg__mp_left(&m) != 0) {
        rc = CVG_ECORRUPT;
    }
    if (rc != CVG_OK) {
        cvg__tags_destroy(out);
        memset(out, 0, sizeof *out);
        *elem_out = cvg_value_nil();
    }
    return rc;
}
