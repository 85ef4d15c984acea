/*
 * The msgpack glue of src/oplog: packing through msgpack-c into our own
 * buffer, and a bounded, allocation-free reader of the wire format. We do
 * not use msgpack-c's unpacker: it allocates from a container's declared
 * size before the elements arrive, so 5 hostile bytes can ask for 100 GB.
 */
#include "mpack.h"

/* ---- Packing ---------------------------------------------------------- */

static int
buf_write(void *data, const char *buf, size_t len)
{
    return cvg__buf_append(data, buf, len) == CVG_OK ? 0 : -1;
}

void
cvg__mp_packer_init(msgpack_packer *pk, cvg__buf *b)
{
    msgpack_packer_init(pk, b, buf_write);
}

int
cvg__mp_pack_value(msgpack_packer *pk, const cvg_value *v)
{
    int rc;
    switch (v->kind) {
    case CVG_VALUE_NIL:
        rc = msgpack_pack_nil(pk);
        break;
    case CVG_VALUE_BOOL:
        rc = v->as.boolean ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
        break;
    case CVG_VALUE_INT:
        /* msgpack-c picks the smallest form, which keeps the encoding of a
             * value canonical. */
        rc = msgpack_pack_int64(pk, v->as.integer);
        break;
    case CVG_VALUE_DOUBLE:
        /* Always float64, even when float32 would be exact: one form per
             * value, and NaN payloads survive. */
        rc = msgpack_pack_double(pk, v->as.real);
        break;
    case CVG_VALUE_STRING:
        rc = msgpack_pack_str_with_body(pk, v->as.bytes.data, v->as.bytes.len);
        break;
    case CVG_VALUE_BYTES:
        rc = msgpack_pack_bin_with_body(pk, v->as.bytes.data, v->as.bytes.len);
        break;
    default:
        return CVG_EINVAL;
    }
    return rc == 0 ? CVG_OK : CVG_ENOMEM;
}

/* ---- Reading ---------------------------------------------------------- */

/* Take @p n bytes: NULL if fewer are left. */
static const uint8_t *
take(cvg__mp *m, size_t n)
{
    if (n > cvg__mp_left(m)) {
        return NULL;
    }
    const uint8_t *q = m->p;
    m->p += n;
    return q;
}

/* A big-endian unsigned of @p n bytes (1, 2, 4 or 8). */
static int
take_be(cvg__mp *m, size_t n, uint64_t *out)
{
    const uint8_t *q = take(m, n);
    if (q == NULL) {
        return CVG_ECORRUPT;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        v = (v << 8) | q[i];
    }
    *out = v;
    return CVG_OK;
}

/* The smallest unsigned form of @p v would take this tag (as msgpack-c). */
static int
uint_tag(uint64_t v)
{
    if (v < 128) {
        return (int)v;
    }
    if (v < 256) {
        return 0xcc;
    }
    if (v < 65536) {
        return 0xcd;
    }
    if (v <= UINT32_MAX) {
        return 0xce;
    }
    return 0xcf;
}

/* The tag msgpack_pack_int64() writes for @p v. */
static int
int_tag(int64_t v)
{
    if (v >= 0) {
        return uint_tag((uint64_t)v);
    }
    if (v >= -32) {
        return (int)((uint8_t)v);
    }
    if (v >= -128) {
        return 0xd0;
    }
    if (v >= -32768) {
        return 0xd1;
    }
    if (v >= INT32_MIN) {
        return 0xd2;
    }
    return 0xd3;
}

/* Any msgpack integer, as its magnitude class: *neg tells whether the value
 * is negative (then *out holds it as int64 bits). */
static int
read_integer(cvg__mp *m, uint64_t *out, int *neg, int *tag_out)
{
    const uint8_t *q = take(m, 1);
    if (q == NULL) {
        return CVG_ECORRUPT;
    }
    int tag = q[0];
    *tag_out = tag;
    *neg = 0;
    uint64_t v;
    if (tag <= 0x7f) {
        *out = (uint64_t)tag;
        return CVG_OK;
    }
    if (tag >= 0xe0) {
        /* Negative fixint: sign-extend the byte. */
        *out = (UINT64_MAX << 8) | (uint64_t)tag;
        *neg = 1;
        return CVG_OK;
    }
    switch (tag) {
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
        return take_be(m, (size_t)1 << (tag - 0xcc), out);
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        size_t n = (size_t)1 << (tag - 0xd0);
        if (take_be(m, n, &v) != CVG_OK) {
            return CVG_ECORRUPT;
        }
        /* Sign-extend the n-byte two's complement value. */
        if (n < 8 && (v >> (n * 8 - 1)) != 0) {
            v |= UINT64_MAX << (n * 8);
        }
        *out = v;
        *neg = (v >> 63) != 0;
        return CVG_OK;
    }
    default:
        return CVG_ECORRUPT;
    }
}

int
cvg__mp_uint(cvg__mp *m, uint64_t max, uint64_t *out)
{
    uint64_t v;
    int neg, tag;
    *out = 0;
    if (read_integer(m, &v, &neg, &tag) != CVG_OK || neg ||
        tag != uint_tag(v) || v > max) {
        return CVG_ECORRUPT;
    }
    *out = v;
    return CVG_OK;
}

int
cvg__mp_int(cvg__mp *m, int64_t *out)
{
    uint64_t v;
    int neg, tag;
    *out = 0;
    if (read_integer(m, &v, &neg, &tag) != CVG_OK) {
        return CVG_ECORRUPT;
    }
    if (!neg && v > (uint64_t)INT64_MAX) {
        return CVG_ECORRUPT;
    }
    /* Two's complement conversion without implementation-defined casts. */
    int64_t s = neg ? -(int64_t)(~v) - 1 : (int64_t)v;
    if (tag != int_tag(s)) {
        return CVG_ECORRUPT;
    }
    *out = s;
    return CVG_OK;
}

int
cvg__mp_count(cvg__mp *m, uint64_t max, size_t min_item, size_t *out)
{
    uint64_t v;
    *out = 0;
    if (cvg__mp_uint(m, max, &v) != CVG_OK) {
        return CVG_ECORRUPT;
    }
    if (min_item > 0 && v > cvg__mp_left(m) / min_item) {
        return CVG_ECORRUPT;
    }
    *out = (size_t)v;
    return CVG_OK;
}

/* The body length of a str (fixstr, str8/16/32) or bin (bin8/16/32) whose
 * tag is next; *is_str tells which. Checks the smallest-form rule. */
static int
read_raw_header(cvg__mp *m, size_t *len, int *is_str)
{
    const uint8_t *q = take(m, 1);
    if (q == NULL) {
        return CVG_ECORRUPT;
    }
    int tag = q[0];
    uint64_t n;
    if (tag >= 0xa0 && tag <= 0xbf) {
        *len = (size_t)(tag & 0x1f);
        *is_str = 1;
        return CVG_OK;
    }
    /* str8/16/32 are 0xd9..0xdb and bin8/16/32 are 0xc4..0xc6, with 1, 2
     * and 4 length bytes. Each is valid only for lengths that the smaller
     * forms cannot hold (a fixstr holds up to 31 bytes). */
    static const uint64_t min_len[3] = {0, 256, 65536};
    int k;
    if (tag >= 0xd9 && tag <= 0xdb) {
        k = tag - 0xd9;
        *is_str = 1;
    } else if (tag >= 0xc4 && tag <= 0xc6) {
        k = tag - 0xc4;
        *is_str = 0;
    } else {
        return CVG_ECORRUPT;
    }
    size_t width = (size_t)1 << k;
    uint64_t min = (k == 0 && *is_str) ? 32 : min_len[k];
    if (take_be(m, width, &n) != CVG_OK || n < min) {
        return CVG_ECORRUPT;
    }
    *len = (size_t)n;
    return CVG_OK;
}

static int
read_raw(cvg__mp *m, int want_str, size_t max, cvg_bytes *out)
{
    size_t len;
    int is_str;
    out->data = NULL;
    out->len = 0;
    if (read_raw_header(m, &len, &is_str) != CVG_OK || is_str != want_str ||
        len > max) {
        return CVG_ECORRUPT;
    }
    const uint8_t *q = take(m, len);
    if (q == NULL) {
        return CVG_ECORRUPT;
    }
    out->data = q;
    out->len = len;
    return CVG_OK;
}

int
cvg__mp_str(cvg__mp *m, size_t max, cvg_bytes *out)
{
    return read_raw(m, 1, max, out);
}

int
cvg__mp_bin(cvg__mp *m, size_t max, cvg_bytes *out)
{
    return read_raw(m, 0, max, out);
}

int
cvg__mp_id(cvg__mp *m, cvg_replica_id *out)
{
    cvg_bytes b;
    if (cvg__mp_bin(m, 16, &b) != CVG_OK || b.len != 16) {
        return CVG_ECORRUPT;
    }
    memcpy(out->bytes, b.data, 16);
    return CVG_OK;
}

int
cvg__mp_value(cvg__mp *m, cvg_value *out)
{
    *out = cvg_value_nil();
    if (cvg__mp_left(m) == 0) {
        return CVG_ECORRUPT;
    }
    int tag = m->p[0];
    if (tag == 0xc0) {
        m->p++;
        return CVG_OK;
    }
    if (tag == 0xc2 || tag == 0xc3) {
        m->p++;
        *out = cvg_value_bool(tag == 0xc3);
        return CVG_OK;
    }
    if (tag == 0xcb) {
        uint64_t bits;
        m->p++;
        if (take_be(m, 8, &bits) != CVG_OK) {
            return CVG_ECORRUPT;
        }
        double d;
        memcpy(&d, &bits, sizeof d);
        *out = cvg_value_double(d);
        return CVG_OK;
    }
    if (tag <= 0x7f || tag >= 0xe0 || (tag >= 0xcc && tag <= 0xcf) ||
        (tag >= 0xd0 && tag <= 0xd3)) {
        int64_t i;
        if (cvg__mp_int(m, &i) != CVG_OK) {
            return CVG_ECORRUPT;
        }
        *out = cvg_value_int(i);
        return CVG_OK;
    }
    cvg_bytes b;
    int is_str = (tag >= 0xa0 && tag <= 0xbf) || tag == 0xd9 || tag == 0xda ||
                 tag == 0xdb;
    if (read_raw(m, is_str, CVG_VALUE_MAX, &b) != CVG_OK) {
        return CVG_ECORRUPT;
    }
    out->kind = is_str ? CVG_VALUE_STRING : CVG_VALUE_BYTES;
    out->as.bytes = b;
    return CVG_OK;
}
