/*
 * Scalar values: validation, a total order (so that sets, siblings and
 * encodings sort the same on every replica), deep copies and their release.
 */
#include "crdt_int.h"

static bool
has_bytes(cvg_value_kind k)
{
    return k == CVG_VALUE_STRING || k == CVG_VALUE_BYTES;
}

int
cvg__value_check(const cvg_value *v)
{
    if (v == NULL) {
        return CVG_EINVAL;
    }
    switch (v->kind) {
    case CVG_VALUE_NIL:
    case CVG_VALUE_BOOL:
    case CVG_VALUE_INT:
    case CVG_VALUE_DOUBLE:
        return CVG_OK;
    case CVG_VALUE_STRING:
    case CVG_VALUE_BYTES:
        if (v->as.bytes.len > CVG_VALUE_MAX) {
            return CVG_ETOOBIG;
        }
        if (v->as.bytes.len > 0 && v->as.bytes.data == NULL) {
            return CVG_EINVAL;
        }
        return CVG_OK;
    }
    /* The kind came from outside (a decoder, a caller's struct): anything
     * not in the enum is malformed. */
    return CVG_EINVAL;
}

/* Map IEEE-754 bits to an unsigned key whose integer order is a total order
 * on doubles: negatives (sign set) reversed below positives, so -NaN <
 * -inf < ... < -0 < +0 < ... < +inf < +NaN, and NaNs ordered by payload. */
static uint64_t
double_key(double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    const uint64_t sign = (uint64_t)1 << 63;
    return (bits & sign) ? ~bits : (bits | sign);
}

#define CMP3(a, b) (((a) > (b)) - ((a) < (b)))

int
cvg__value_cmp(const cvg_value *a, const cvg_value *b)
{
    if (a->kind != b->kind) {
        return CMP3((int)a->kind, (int)b->kind);
    }
    switch (a->kind) {
    case CVG_VALUE_NIL:
        return 0;
    case CVG_VALUE_BOOL:
        return CMP3((int)a->as.boolean, (int)b->as.boolean);
    case CVG_VALUE_INT:
        return CMP3(a->as.integer, b->as.integer);
    case CVG_VALUE_DOUBLE:
        return CMP3(double_key(a->as.real), double_key(b->as.real));
    case CVG_VALUE_STRING:
    case CVG_VALUE_BYTES: {
        size_t la = a->as.bytes.len;
        size_t lb = b->as.bytes.len;
        size_t n = CVG__MIN(la, lb);
        /* memcmp with a NULL pointer is undefined even for n == 0. */
        if (n > 0) {
            int c = memcmp(a->as.bytes.data, b->as.bytes.data, n);
            if (c != 0) {
                return (c > 0) - (c < 0);
            }
        }
        return CMP3(la, lb);
    }
    }
    /* Unknown kinds of the same number compare equal: still a total order
     * (a preorder on garbage), and value_check rejects them earlier. */
    return 0;
}

/* An empty STRING or BYTES copy gets data == NULL and no allocation, so an
 * empty value can never fail to copy; value_free is safe on either. dst is
 * written, not released first: it is an output. */
int
cvg__value_copy(cvg_value *dst, const cvg_value *src)
{
    int rc = cvg__value_check(src);
    if (rc != CVG_OK) {
        *dst = cvg_value_nil();
        return rc;
    }
    cvg_value v = *src;
    if (has_bytes(src->kind)) {
        size_t len = src->as.bytes.len;
        uint8_t *p = NULL;
        if (len > 0) {
            p = cvg__alloc(len);
            if (p == NULL) {
                *dst = cvg_value_nil();
                return CVG_ENOMEM;
            }
            memcpy(p, src->as.bytes.data, len);
        }
        v.as.bytes.data = p;
        v.as.bytes.len = len;
    }
    /* Assign last: dst may be src itself. */
    *dst = v;
    return CVG_OK;
}

void
cvg__value_free(cvg_value *v)
{
    if (v == NULL) {
        return;
    }
    if (has_bytes(v->kind)) {
        /* The data was allocated by value_copy; the public struct holds it
         * as a const view, hence the cast through uintptr_t. */
        cvg__free((void *)(uintptr_t)v->as.bytes.data);
    }
    *v = cvg_value_nil();
}
