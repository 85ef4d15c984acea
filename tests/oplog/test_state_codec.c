/*
 * State records and canonical value bytes: counters, registers and set
 * elements round trip through local origin indexes; decoding deep-copies
 * (elements excepted); truncated, padded, reordered, newer or hostile
 * records are refused and leave the output empty.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "oplog/oplog_int.h"
#include "testutil.h"

/* ---- Helpers ----------------------------------------------------------- */

static int
id_cmp_qsort(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

/* @p n random ids, sorted, and an origin table that knows them in random
 * order (so index order and id order differ). */
static cvg_replica_id *
sorted_ids(size_t n, uint64_t seed)
{
    cvg_replica_id *ids = calloc(n ? n : 1, sizeof *ids);
    uint64_t rng = seed;
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < 16; k += 8) {
            uint64_t r = cvg_test_rand(&rng);
            memcpy(ids[i].bytes + k, &r, 8);
        }
    }
    qsort(ids, n, sizeof *ids, id_cmp_qsort);
    return ids;
}

static uint64_t
dbits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static bool
value_eq(const cvg_value *a, const cvg_value *b)
{
    if (a->kind != b->kind) {
        return false;
    }
    switch (a->kind) {
    case CVG_VALUE_NIL:
        return true;
    case CVG_VALUE_BOOL:
        return a->as.boolean == b->as.boolean;
    case CVG_VALUE_INT:
        return a->as.integer == b->as.integer;
    case CVG_VALUE_DOUBLE:
        return dbits(a->as.real) == dbits(b->as.real);
    case CVG_VALUE_STRING:
    case CVG_VALUE_BYTES:
        return a->as.bytes.len == b->as.bytes.len &&
               (a->as.bytes.len == 0 ||
                memcmp(a->as.bytes.data, b->as.bytes.data, a->as.bytes.len) ==
                    0);
    }
    return false;
}

/* A private heap copy of @p b, so ASan catches reads past its end and a
 * decoder that keeps pointers into it after it is freed. */
static uint8_t *
dup(const cvg__buf *b)
{
    uint8_t *p = malloc(b->len ? b->len : 1);
    cr_assert_not_null(p);
    memcpy(p, b->p, b->len);
    return p;
}

static void
expect_bytes(const cvg_value *v, const uint8_t *want, size_t n)
{
    cvg__buf b = {0};
    cr_assert_eq(cvg__value_encode(v, &b), CVG_OK);
    cr_expect_eq(b.len, n, "kind %d: %zu bytes, want %zu", v->kind, b.len, n);
    cr_expect(b.len == n && memcmp(b.p, want, n) == 0, "kind %d bytes",
              v->kind);
    /* The same value again: the same bytes, appended. */
    cr_assert_eq(cvg__value_encode(v, &b), CVG_OK);
    cr_expect(b.len == 2 * n && memcmp(b.p + n, want, n) == 0);
    cvg__buf_free(&b);
}

#define EXPECT_BYTES(v, ...)                           \
    expect_bytes(&(v), (const uint8_t[]){__VA_ARGS__}, \
                 sizeof((const uint8_t[]){__VA_ARGS__}))

/* ---- Canonical value bytes -------------------------------------------- */

Test(state_codec, value_bytes_are_canonical_msgpack)
{
    cvg_value v;
    v = cvg_value_nil();
    EXPECT_BYTES(v, 0xc0);
    v = cvg_value_bool(false);
    EXPECT_BYTES(v, 0xc2);
    v = cvg_value_bool(true);
    EXPECT_BYTES(v, 0xc3);
    v = cvg_value_int(0);
    EXPECT_BYTES(v, 0x00);
    v = cvg_value_int(127);
    EXPECT_BYTES(v, 0x7f);
    v = cvg_value_int(128);
    EXPECT_BYTES(v, 0xcc, 0x80);
    v = cvg_value_int(65536);
    EXPECT_BYTES(v, 0xce, 0x00, 0x01, 0x00, 0x00);
    v = cvg_value_int(-1);
    EXPECT_BYTES(v, 0xff);
    v = cvg_value_int(-32);
    EXPECT_BYTES(v, 0xe0);
    v = cvg_value_int(-33);
    EXPECT_BYTES(v, 0xd0, 0xdf);
    v = cvg_value_int(INT64_MIN);
    EXPECT_BYTES(v, 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0);
    v = cvg_value_int(INT64_MAX);
    EXPECT_BYTES(v, 0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
    v = cvg_value_double(1.5);
    EXPECT_BYTES(v, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0);
    v = cvg_value_double(-0.0);
    EXPECT_BYTES(v, 0xcb, 0x80, 0, 0, 0, 0, 0, 0, 0);
    v = cvg_value_double(INFINITY);
    EXPECT_BYTES(v, 0xcb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0);
    v = cvg_value_string("");
    EXPECT_BYTES(v, 0xa0);
    v = cvg_value_string("ab");
    EXPECT_BYTES(v, 0xa2, 'a', 'b');
    v = cvg_value_bytes("", 0);
    EXPECT_BYTES(v, 0xc4, 0x00);
    v = cvg_value_bytes("ab", 2);
    EXPECT_BYTES(v, 0xc4, 0x02, 'a', 'b');

    /* A string and bytes with the same content differ. */
    static uint8_t big[300];
    memset(big, 'z', sizeof big);
    v = cvg_value_bytes(big, sizeof big);
    cvg__buf b = {0};
    cr_assert_eq(cvg__value_encode(&v, &b), CVG_OK);
    cr_expect_eq(b.len, 3 + sizeof big);
    cr_expect_eq(b.p[0], 0xc5);
    v.kind = CVG_VALUE_STRING;
    b.len = 0;
    cr_assert_eq(cvg__value_encode(&v, &b), CVG_OK);
    cr_expect_eq(b.p[0], 0xda);

    /* Bad values: an error and nothing appended. */
    b.len = 0;
    v.as.bytes.len = CVG_VALUE_MAX + 1u;
    cr_expect_eq(cvg__value_encode(&v, &b), CVG_ETOOBIG);
    v.kind = (cvg_value_kind)17;
    cr_expect_eq(cvg__value_encode(&v, &b), CVG_EINVAL);
    cr_expect_eq(b.len, 0);
    cvg__buf_free(&b);
}

/* ---- Counters ------------------------------------------------------------ */

static void
expect_counter_eq(const cvg__counter *a, const cvg__counter *b)
{
    cr_assert_eq(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        const cvg__counter_part *x = &a->parts[i], *y = &b->parts[i];
        cr_expect(memcmp(x->origin.bytes, y->origin.bytes, 16) == 0);
        cr_expect_eq(x->seq, y->seq);
        cr_expect_eq(x->sum, y->sum);
        cr_expect_eq(x->floor_seq, y->floor_seq);
        cr_expect_eq(x->floor_sum, y->floor_sum);
    }
}

static void
make_counter(cvg__counter *c, const cvg_replica_id *ids, size_t n)
{
    c->parts = calloc(n ? n : 1, sizeof *c->parts);
    c->n = c->cap = n;
    for (size_t i = 0; i < n; i++) {
        c->parts[i].origin = ids[i];
        c->parts[i].seq = i == 3 ? 0 : i * 1000 + 1;
        c->parts[i].sum = i % 2 ? INT64_MIN + (int64_t)i : (int64_t)i * 7;
        c->parts[i].floor_seq = i / 2;
        c->parts[i].floor_sum = i == 5 ? INT64_MAX : -(int64_t)i;
    }
}

Test(state_codec, counter_round_trips)
{
    enum { N = 300 };
    cvg_replica_id *ids = sorted_ids(N, 1);
    cvg__origins o = {0};
    uint32_t idx;
    bool added;
    /* The table knows the ids in reverse order: indexes 0..N-1 are not
     * the sort order. */
    for (size_t i = N; i-- > 0;) {
        cr_assert_eq(cvg__origins_index(&o, &ids[i], &idx, &added), CVG_OK);
    }
    for (size_t n = 0; n <= N; n += n < 8 ? 1 : 97) {
        cvg__counter c = {0}, d = {0};
        make_counter(&c, ids, n);
        cvg__buf b = {0};
        cr_assert_eq(cvg__state_encode_counter(&c, &o, &b), CVG_OK);
        uint8_t *p = dup(&b);
        cr_assert_eq(cvg__state_decode_counter(p, b.len, &o, &d), CVG_OK,
                     "n %zu", n);
        free(p);
        expect_counter_eq(&d, &c);
        /* Re-encoding gives the same bytes. */
        cvg__buf b2 = {0};
        cr_assert_eq(cvg__state_encode_counter(&d, &o, &b2), CVG_OK);
        cr_expect(b2.len == b.len && memcmp(b2.p, b.p, b.len) == 0);
        cvg__buf_free(&b);
        cvg__buf_free(&b2);
        cvg__counter_destroy(&c);
        cvg__counter_destroy(&d);
    }
    cr_expect_eq(o.n, N, "no new origins");
    cvg__origins_destroy(&o);
    free(ids);
}

Test(state_codec, counter_is_compact_and_adds_origins)
{
    cvg_replica_id *ids = sorted_ids(2, 2);
    cvg__origins o = {0};
    uint32_t idx;
    bool added;
    cr_assert_eq(cvg__origins_index(&o, &ids[1], &idx, &added), CVG_OK);
    cvg__counter c = {0};
    c.parts = calloc(2, sizeof *c.parts);
    c.n = c.cap = 1;
    c.parts[0].origin = ids[1];
    c.parts[0].seq = 3;
    c.parts[0].sum = 5;
    cvg__buf b = {0};
    cr_assert_eq(cvg__state_encode_counter(&c, &o, &b), CVG_OK);
    /* tag, n, origin 0, seq, sum, floor seq, floor sum: 1 byte each. */
    static const uint8_t want[] = {0x11, 0x01, 0x00, 0x03, 0x05, 0x00, 0x00};
    cr_expect_eq(b.len, sizeof want);
    cr_expect(memcmp(b.p, want, sizeof want) == 0);
    /* An origin new to the table is added. */
    c.parts[1] = c.parts[0];
    c.parts[0].origin = ids[0];
    c.n = 2;
    b.len = 0;
    cr_assert_eq(cvg__state_encode_counter(&c, &o, &b), CVG_OK);
    cr_expect_eq(o.n, 2);
    cr_expect_eq(cvg__origins_find(&o, &ids[0], &idx), CVG_OK);
    cr_expect_eq(idx, 1);
    /* Out of order parts are refused and append nothing. */
    c.parts[0].origin = ids[1];
    c.parts[1].origin = ids[0];
    size_t before = b.len;
    cr_expect_eq(cvg__state_encode_counter(&c, &o, &b), CVG_EINVAL);
    cr_expect_eq(b.len, before);
    cvg__buf_free(&b);
    cvg__counter_destroy(&c);
    cvg__origins_destroy(&o);
    free(ids);
}

/* ---- Registers ----------------------------------------------------------- */

static uint8_t bigval[CVG_VALUE_MAX];

static void
make_reg(cvg__reg *r, const cvg_replica_id *ids, size_t nids)
{
    cvg_value vals[] = {
        cvg_value_nil(),          cvg_value_bool(true),
        cvg_value_int(INT64_MIN), cvg_value_int(-5),
        cvg_value_double(NAN),    cvg_value_double(-INFINITY),
        cvg_value_string(""),     cvg_value_string("hello"),
        cvg_value_bytes("", 0),   cvg_value_bytes(bigval, CVG_VALUE_MAX),
    };
    size_t n = sizeof vals / sizeof vals[0];
    r->s = calloc(n, sizeof *r->s);
    r->n = r->cap = n;
    for (size_t i = 0; i < n; i++) {
        /* Sorted by dot: two siblings per origin, seqs rising. */
        r->s[i].dot.origin = ids[(i / 2) % nids];
        r->s[i].dot.seq = (i % 2) ? UINT64_MAX : i + 1;
        r->s[i].hlc = (uint64_t)i << 40 | 3;
        r->s[i].value = vals[i];
    }
}

static void
expect_reg_eq(const cvg__reg *a, const cvg__reg *b)
{
    cr_assert_eq(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        cr_expect(memcmp(a->s[i].dot.origin.bytes, b->s[i].dot.origin.bytes,
                         16) == 0);
        cr_expect_eq(a->s[i].dot.seq, b->s[i].dot.seq);
        cr_expect_eq(a->s[i].hlc, b->s[i].hlc);
        cr_expect(value_eq(&a->s[i].value, &b->s[i].value), "sibling %zu", i);
    }
}

Test(state_codec, register_round_trips_with_deep_copies)
{
    for (size_t i = 0; i < sizeof bigval; i++) {
        bigval[i] = (uint8_t)(i ^ (i >> 8));
    }
    cvg_replica_id *ids = sorted_ids(5, 3);
    cvg__origins o = {0};
    cvg__reg r = {0}, d = {0};
    make_reg(&r, ids, 5);
    cvg__buf b = {0};
    cr_assert_eq(cvg__state_encode_reg(&r, &o, &b), CVG_OK);
    cr_expect_eq(o.n, 5);
    uint8_t *p = dup(&b);
    cr_assert_eq(cvg__state_decode_reg(p, b.len, &o, &d), CVG_OK);
    /* The values were copied: scribbling over and freeing the record
     * changes nothing (and ASan would see a use after free). */
    memset(p, 0xee, b.len);
    free(p);
    expect_reg_eq(&d, &r);
    for (size_t i = 0; i < d.n; i++) {
        if (d.s[i].value.kind >= CVG_VALUE_STRING &&
            d.s[i].value.as.bytes.len > 0) {
            cr_expect(d.s[i].value.as.bytes.data != r.s[i].value.as.bytes.data);
        }
    }
    cvg__buf b2 = {0};
    cr_assert_eq(cvg__state_encode_reg(&d, &o, &b2), CVG_OK);
    cr_expect(b2.len == b.len && memcmp(b2.p, b.p, b.len) == 0);

    /* An empty register. */
    cvg__reg e = {0};
    b2.len = 0;
    cr_assert_eq(cvg__state_encode_reg(&e, &o, &b2), CVG_OK);
    cr_expect_eq(b2.len, 2);
    cr_assert_eq(cvg__state_decode_reg(b2.p, b2.len, &o, &e), CVG_OK);
    cr_expect_eq(e.n, 0);

    /* Out of order or seq 0 siblings are refused. */
    cvg__sibling t = r.s[0];
    r.s[0] = r.s[1];
    r.s[1] = t;
    size_t before = b2.len;
    cr_expect_eq(cvg__state_encode_reg(&r, &o, &b2), CVG_EINVAL);
    cr_expect_eq(b2.len, before);
    r.s[1] = r.s[0];
    r.s[0] = t;
    r.s[0].dot.seq = 0;
    cr_expect_eq(cvg__state_encode_reg(&r, &o, &b2), CVG_EINVAL);
    r.s[0].dot.seq = 1;
    cvg__buf_free(&b);
    cvg__buf_free(&b2);
    cvg__reg_destroy(&d);
    free(r.s); /* the values are views of static data */
    cvg__origins_destroy(&o);
    free(ids);
}

/* ---- Set elements ----------------------------------------------------------
 */

Test(state_codec, element_round_trips_as_a_view)
{
    cvg_replica_id *ids = sorted_ids(200, 4);
    cvg__origins o = {0};
    cvg__tags t = {0}, d = {0};
    t.d = calloc(400, sizeof *t.d);
    t.n = t.cap = 400;
    for (size_t i = 0; i < 400; i++) {
        t.d[i].origin = ids[i / 2];
        t.d[i].seq = (i % 2) ? (uint64_t)1 << 40 : 1 + i;
    }
    cvg_value elems[] = {cvg_value_string("apple"),  cvg_value_int(-7),
                         cvg_value_bytes("\0\1", 2), cvg_value_nil(),
                         cvg_value_double(2.5),      cvg_value_string("")};
    for (size_t k = 0; k < sizeof elems / sizeof elems[0]; k++) {
        cvg__buf b = {0};
        cr_assert_eq(cvg__state_encode_elem(&elems[k], &t, &o, &b), CVG_OK);
        uint8_t *p = dup(&b);
        cvg_value e;
        cr_assert_eq(cvg__state_decode_elem(p, b.len, &o, &e, &d), CVG_OK);
        cr_expect(value_eq(&e, &elems[k]), "elem %zu", k);
        if (e.kind == CVG_VALUE_STRING || e.kind == CVG_VALUE_BYTES) {
            if (e.as.bytes.len > 0) {
                cr_expect(e.as.bytes.data > p &&
                              e.as.bytes.data + e.as.bytes.len <= p + b.len,
                          "a view into the record");
            }
        }
        cr_assert_eq(d.n, t.n);
        for (size_t i = 0; i < t.n; i++) {
            cr_expect(cvg__dot_cmp(&d.d[i], &t.d[i]) == 0, "tag %zu", i);
        }
        /* The element's canonical bytes follow the tag byte. */
        cvg__buf v = {0};
        cr_assert_eq(cvg__value_encode(&elems[k], &v), CVG_OK);
        cr_expect(memcmp(p + 1, v.p, v.len) == 0);
        cvg__buf_free(&v);
        cvg__tags_destroy(&d);
        cvg__buf_free(&b);
        free(p);
    }
    /* Tags out of order are refused. */
    t.d[0].seq = 10;
    t.d[1].seq = 9;
    t.d[1].origin = t.d[0].origin;
    cvg__buf b = {0};
    cr_expect_eq(cvg__state_encode_elem(&elems[0], &t, &o, &b), CVG_EINVAL);
    cr_expect_eq(b.len, 0);
    cvg__buf_free(&b);
    cvg__tags_destroy(&t);
    cvg__origins_destroy(&o);
    free(ids);
}

/* ---- Damage -------------------------------------------------------------- */

enum { REC_COUNTER, REC_REG, REC_ELEM };

/* Decode @p n bytes as record kind @p kind; check the output is empty on
 * error. */
static int
decode_as(int kind, const uint8_t *p, size_t n, const cvg__origins *o)
{
    int rc;
    if (kind == REC_COUNTER) {
        cvg__counter c;
        memset(&c, 0xab, sizeof c); /* garbage in: it is an output */
        rc = cvg__state_decode_counter(p, n, o, &c);
        if (rc != CVG_OK) {
            cr_expect(c.parts == NULL && c.n == 0 && c.cap == 0);
        }
        cvg__counter_destroy(&c);
    } else if (kind == REC_REG) {
        cvg__reg r;
        memset(&r, 0xab, sizeof r);
        rc = cvg__state_decode_reg(p, n, o, &r);
        if (rc != CVG_OK) {
            cr_expect(r.s == NULL && r.n == 0 && r.cap == 0);
        }
        cvg__reg_destroy(&r);
    } else {
        cvg__tags t;
        cvg_value e;
        memset(&t, 0xab, sizeof t);
        rc = cvg__state_decode_elem(p, n, o, &e, &t);
        if (rc != CVG_OK) {
            cr_expect(t.d == NULL && t.n == 0 && t.cap == 0);
            cr_expect_eq(e.kind, CVG_VALUE_NIL);
        }
        cvg__tags_destroy(&t);
    }
    return rc;
}

/* Three encoded records, with small values. */
static void
sample_records(cvg__origins *o, cvg__buf rec[3], const cvg_replica_id *ids)
{
    cvg__counter c = {0};
    make_counter(&c, ids, 6);
    cr_assert_eq(cvg__state_encode_counter(&c, o, &rec[REC_COUNTER]), CVG_OK);
    cvg__counter_destroy(&c);
    cvg__reg r = {0};
    make_reg(&r, ids, 6);
    r.n = 9; /* leave out the CVG_VALUE_MAX sibling */
    cr_assert_eq(cvg__state_encode_reg(&r, o, &rec[REC_REG]), CVG_OK);
    free(r.s);
    cvg__tags t = {0};
    cvg_dot dots[3] = {{ids[0], 1}, {ids[0], 2}, {ids[4], 9}};
    t.d = dots;
    t.n = 3;
    cvg_value e = cvg_value_string("element");
    cr_assert_eq(cvg__state_encode_elem(&e, &t, o, &rec[REC_ELEM]), CVG_OK);
}

Test(state_codec, truncation_at_every_offset_is_corrupt)
{
    cvg_replica_id *ids = sorted_ids(6, 5);
    cvg__origins o = {0};
    cvg__buf rec[3] = {{0}};
    sample_records(&o, rec, ids);
    for (int k = 0; k < 3; k++) {
        for (size_t len = 0; len < rec[k].len; len++) {
            uint8_t *p = malloc(len ? len : 1);
            memcpy(p, rec[k].p, len);
            cr_expect_eq(decode_as(k, len ? p : NULL, len, &o), CVG_ECORRUPT,
                         "record %d prefix %zu", k, len);
            free(p);
        }
        /* Trailing bytes too. */
        uint8_t *p = malloc(rec[k].len + 1);
        memcpy(p, rec[k].p, rec[k].len);
        p[rec[k].len] = 0;
        cr_expect_eq(decode_as(k, p, rec[k].len + 1, &o), CVG_ECORRUPT);
        cr_expect_eq(decode_as(k, p, rec[k].len, &o), CVG_OK);
        free(p);
        /* Each record read as another kind. */
        cr_expect_eq(decode_as((k + 1) % 3, rec[k].p, rec[k].len, &o),
                     CVG_ECORRUPT);
        cvg__buf_free(&rec[k]);
    }
    cvg__origins_destroy(&o);
    free(ids);
}

Test(state_codec, unknown_origin_index_is_corrupt)
{
    cvg_replica_id *ids = sorted_ids(6, 6);
    cvg__origins o = {0};
    cvg__buf rec[3] = {{0}};
    sample_records(&o, rec, ids);
    cr_assert_eq(o.n, 6);
    cvg__origins fewer = {0}, none = {0};
    uint32_t idx;
    bool added;
    for (uint32_t i = 0; i < 3; i++) {
        cr_assert_eq(
            cvg__origins_index(&fewer, cvg__origins_id(&o, i), &idx, &added),
            CVG_OK);
    }
    for (int k = 0; k < 3; k++) {
        cr_expect_eq(decode_as(k, rec[k].p, rec[k].len, &o), CVG_OK);
        cr_expect_eq(decode_as(k, rec[k].p, rec[k].len, &fewer), CVG_ECORRUPT,
                     "record %d", k);
        cr_expect_eq(decode_as(k, rec[k].p, rec[k].len, &none), CVG_ECORRUPT);
        cvg__buf_free(&rec[k]);
    }
    /* The same after a truncate of the full table. */
    cvg__origins_truncate(&o, 3);
    cvg__counter c = {0};
    make_counter(&c, ids, 6);
    cvg__origins o2 = {0};
    cvg__buf b = {0};
    cr_assert_eq(cvg__state_encode_counter(&c, &o2, &b), CVG_OK);
    cvg__origins_truncate(&o2, 5);
    cr_expect_eq(decode_as(REC_COUNTER, b.p, b.len, &o2), CVG_ECORRUPT);
    cvg__buf_free(&b);
    cvg__counter_destroy(&c);
    cvg__origins_destroy(&o);
    cvg__origins_destroy(&o2);
    cvg__origins_destroy(&fewer);
    free(ids);
}

#define REC(...) \
    ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

Test(state_codec, hostile_and_malformed_records)
{
    cvg_replica_id *ids = sorted_ids(3, 7);
    cvg__origins o = {0};
    uint32_t idx;
    bool added;
    /* Index 0 = the largest id, 1 = the smallest. */
    cr_assert_eq(cvg__origins_index(&o, &ids[2], &idx, &added), CVG_OK);
    cr_assert_eq(cvg__origins_index(&o, &ids[0], &idx, &added), CVG_OK);

    /* Sanity: a well-formed counter of two parts, in id order. */
    cr_expect_eq(
        decode_as(REC_COUNTER,
                  REC(0x11, 0x02, 0x01, 1, 1, 0, 0, 0x00, 1, 1, 0, 0), &o),
        CVG_OK);
    /* Parts out of id order, or repeated. */
    cr_expect_eq(
        decode_as(REC_COUNTER,
                  REC(0x11, 0x02, 0x00, 1, 1, 0, 0, 0x01, 1, 1, 0, 0), &o),
        CVG_ECORRUPT);
    cr_expect_eq(
        decode_as(REC_COUNTER,
                  REC(0x11, 0x02, 0x01, 1, 1, 0, 0, 0x01, 2, 1, 0, 0), &o),
        CVG_ECORRUPT);
    /* Huge counts. */
    cr_expect_eq(decode_as(REC_COUNTER,
                           REC(0x11, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                               0xff, 0xff),
                           &o),
                 CVG_ECORRUPT);
    cr_expect_eq(
        decode_as(REC_REG, REC(0x12, 0xce, 0xff, 0xff, 0xff, 0xff, 0x00), &o),
        CVG_ECORRUPT);
    cr_expect_eq(
        decode_as(REC_ELEM,
                  REC(0x13, 0xc0, 0xce, 0x10, 0x00, 0x00, 0x00, 0x00, 0x01),
                  &o),
        CVG_ECORRUPT);
    cr_expect_eq(decode_as(REC_COUNTER, REC(0xdd, 0xff, 0xff, 0xff, 0xff), &o),
                 CVG_ECORRUPT);
    /* Value lengths of 2^32-1. */
    cr_expect_eq(decode_as(REC_REG,
                           REC(0x12, 0x01, 0x00, 0x01, 0x00, 0xdb, 0xff, 0xff,
                               0xff, 0xff, 'x'),
                           &o),
                 CVG_ECORRUPT);
    cr_expect_eq(
        decode_as(REC_ELEM, REC(0x13, 0xc6, 0xff, 0xff, 0xff, 0xff, 0x00), &o),
        CVG_ECORRUPT);
    /* Wrong types: an array as a value, a string as a seq, a negative
     * seq, an origin index as nil. */
    cr_expect_eq(
        decode_as(REC_REG, REC(0x12, 0x01, 0x00, 0x01, 0x00, 0x91, 0x00), &o),
        CVG_ECORRUPT);
    cr_expect_eq(
        decode_as(REC_REG, REC(0x12, 0x01, 0x00, 0xa1, '1', 0x00, 0x00), &o),
        CVG_ECORRUPT);
    cr_expect_eq(decode_as(REC_ELEM, REC(0x13, 0x00, 0x01, 0x00, 0xff), &o),
                 CVG_ECORRUPT);
    cr_expect_eq(decode_as(REC_ELEM, REC(0x13, 0x00, 0x01, 0xc0, 0x01), &o),
                 CVG_ECORRUPT);
    /* Seq 0 for a sibling or a tag. */
    cr_expect_eq(
        decode_as(REC_REG, REC(0x12, 0x01, 0x00, 0x00, 0x00, 0xc0), &o),
        CVG_ECORRUPT);
    cr_expect_eq(decode_as(REC_ELEM, REC(0x13, 0x00, 0x01, 0x00, 0x00), &o),
                 CVG_ECORRUPT);
    cr_expect_eq(decode_as(REC_ELEM, REC(0x13, 0x00, 0x01, 0x00, 0x01), &o),
                 CVG_OK);
    /* Tags: a newer version, another kind, not a tag at all. */
    cr_expect_eq(decode_as(REC_ELEM, REC(0x23, 0x00, 0x00), &o), CVG_EVERSION);
    cr_expect_eq(decode_as(REC_ELEM, REC(0x03, 0x00, 0x00), &o), CVG_ECORRUPT);
    cr_expect_eq(decode_as(REC_ELEM, REC(0x12, 0x00), &o), CVG_ECORRUPT);
    cr_expect_eq(decode_as(REC_COUNTER, REC(0xc0, 0x00), &o), CVG_ECORRUPT);
    cr_expect_eq(decode_as(REC_COUNTER, REC(0x11, 0x00), &o), CVG_OK);
    cvg__origins_destroy(&o);
    free(ids);
}

Test(state_codec, bit_flips_never_crash)
{
    cvg_replica_id *ids = sorted_ids(6, 8);
    cvg__origins o = {0};
    cvg__buf rec[3] = {{0}};
    sample_records(&o, rec, ids);
    for (int k = 0; k < 3; k++) {
        uint8_t *p = malloc(rec[k].len);
        for (size_t i = 0; i < rec[k].len; i++) {
            for (int bit = 0; bit < 8; bit++) {
                memcpy(p, rec[k].p, rec[k].len);
                p[i] ^= (uint8_t)(1u << bit);
                int rc = decode_as(k, p, rec[k].len, &o);
                cr_assert(rc == CVG_OK || rc == CVG_ECORRUPT ||
                          rc == CVG_EVERSION);
            }
        }
        free(p);
        cvg__buf_free(&rec[k]);
    }
    cvg__origins_destroy(&o);
    free(ids);
}

Test(state_codec, out_of_memory_while_decoding_leaves_nothing)
{
    cvg_replica_id *ids = sorted_ids(6, 9);
    cvg__origins o = {0};
    cvg__buf rec[3] = {{0}};
    sample_records(&o, rec, ids);
    for (int k = 0; k < 3; k++) {
        int rc = CVG_ENOMEM;
        unsigned long nth;
        for (nth = 1; rc == CVG_ENOMEM; nth++) {
            cvg__alloc_fail_after(nth);
            rc = decode_as(k, rec[k].p, rec[k].len, &o);
            cvg__alloc_fail_after(0);
            cr_assert(rc == CVG_OK || rc == CVG_ENOMEM);
        }
        cr_log_info("record %d: %lu allocations", k, nth - 1);
        cvg__buf_free(&rec[k]);
    }
    /* Encoding with memory short appends nothing. */
    cvg__counter c = {0};
    make_counter(&c, ids, 6);
    cvg__buf b = {0};
    cr_assert_eq(cvg__buf_append(&b, "x", 1), CVG_OK);
    cvg__alloc_fail_after(1);
    int rc = cvg__state_encode_counter(&c, &o, &b);
    cvg__alloc_fail_after(0);
    if (rc != CVG_OK) {
        cr_expect_eq(rc, CVG_ENOMEM);
        cr_expect_eq(b.len, 1);
    }
    cvg__buf_free(&b);
    cvg__counter_destroy(&c);
    cvg__origins_destroy(&o);
    free(ids);
}
