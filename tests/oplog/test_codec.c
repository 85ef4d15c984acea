/*
 * Op blocks: every op and value kind round trips field by field and
 * re-encodes to the same bytes; random blocks from a seed do too; truncated,
 * padded, bit-flipped and hostile blocks are refused without a crash or a
 * large allocation; the format stays compact and its bytes stay fixed.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "oplog/mpack.h"
#include "oplog/oplog_int.h"
#include "testutil.h"

/* ---- Helpers ----------------------------------------------------------- */

static cvg_replica_id
mkid(uint64_t seed)
{
    cvg_replica_id id;
    uint64_t st = seed * 7919 + 1;
    for (int i = 0; i < 16; i += 8) {
        uint64_t r = cvg_test_rand(&st);
        memcpy(id.bytes + i, &r, 8);
    }
    return id;
}

static int
id_cmp_qsort(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

static cvg_bytes
B(const char *s)
{
    cvg_bytes b = {(const uint8_t *)s, strlen(s)};
    return b;
}

static uint64_t
dbits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double
bitsd(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static bool
bytes_eq(cvg_bytes a, cvg_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

static void
expect_value_eq(const cvg_value *got, const cvg_value *want, size_t i)
{
    cr_expect_eq(got->kind, want->kind, "op %zu: value kind %d != %d", i,
                 got->kind, want->kind);
    if (got->kind != want->kind) {
        return;
    }
    switch (want->kind) {
    case CVG_VALUE_NIL:
        break;
    case CVG_VALUE_BOOL:
        cr_expect_eq(got->as.boolean, want->as.boolean, "op %zu: bool", i);
        break;
    case CVG_VALUE_INT:
        cr_expect_eq(got->as.integer, want->as.integer, "op %zu: int", i);
        break;
    case CVG_VALUE_DOUBLE:
        cr_expect_eq(dbits(got->as.real), dbits(want->as.real),
                     "op %zu: double bits", i);
        break;
    case CVG_VALUE_STRING:
    case CVG_VALUE_BYTES:
        cr_expect(bytes_eq(got->as.bytes, want->as.bytes),
                  "op %zu: bytes (len %zu vs %zu)", i, got->as.bytes.len,
                  want->as.bytes.len);
        break;
    }
}

static void
expect_dots_eq(const cvg_dot *got, size_t ng, const cvg_dot *want, size_t nw,
               size_t i)
{
    cr_expect_eq(ng, nw, "op %zu: %zu dots, want %zu", i, ng, nw);
    for (size_t k = 0; k < ng && k < nw; k++) {
        cr_expect(memcmp(got[k].origin.bytes, want[k].origin.bytes, 16) == 0,
                  "op %zu dot %zu: origin", i, k);
        cr_expect_eq(got[k].seq, want[k].seq, "op %zu dot %zu: seq", i, k);
    }
}

static void
expect_op_eq(const cvg__op *got, const cvg__op *want, size_t i)
{
    const cvg_op *g = &got->pub, *w = &want->pub;
    cr_expect_eq(g->lsn, 0u);
    cr_expect(memcmp(g->dot.origin.bytes, w->dot.origin.bytes, 16) == 0,
              "op %zu: origin", i);
    cr_expect_eq(g->dot.seq, w->dot.seq, "op %zu: seq", i);
    cr_expect_eq(g->hlc, w->hlc, "op %zu: hlc %llx != %llx", i,
                 (unsigned long long)g->hlc, (unsigned long long)w->hlc);
    cr_expect_eq(g->kind, w->kind, "op %zu: kind", i);
    cr_expect(bytes_eq(g->collection, w->collection), "op %zu: coll", i);
    cr_expect(bytes_eq(g->key, w->key), "op %zu: key", i);
    cr_expect(bytes_eq(g->field, w->field), "op %zu: field", i);
    cr_expect_eq(g->delta, w->delta, "op %zu: delta", i);
    expect_value_eq(&g->value, &w->value, i);
    expect_dots_eq(g->observed, g->observed_count, w->observed,
                   w->observed_count, i);
    cr_expect_eq(got->n_counters, want->n_counters, "op %zu: counters", i);
    for (size_t c = 0; c < got->n_counters && c < want->n_counters; c++) {
        const cvg__delete_counter *x = &got->counters[c];
        const cvg__delete_counter *y = &want->counters[c];
        cr_expect(bytes_eq(x->field, y->field), "op %zu ctr %zu field", i, c);
        cr_expect_eq(x->n, y->n, "op %zu ctr %zu parts", i, c);
        for (size_t k = 0; k < x->n && k < y->n; k++) {
            cr_expect(memcmp(x->parts[k].origin.bytes, y->parts[k].origin.bytes,
                             16) == 0);
            cr_expect_eq(x->parts[k].seq, y->parts[k].seq);
            cr_expect_eq(x->parts[k].sum, y->parts[k].sum);
        }
    }
}

/* Encode @p n ops (their dots must follow from ops[0]) into @p w. */
static cvg_bytes
encode(cvg__block_writer *w, const cvg__op *ops, size_t n)
{
    cr_assert_gt(n, 0);
    cr_assert_eq(
        cvg__block_begin(w, &ops[0].pub.dot.origin, ops[0].pub.dot.seq),
        CVG_OK);
    for (size_t i = 0; i < n; i++) {
        int rc = cvg__block_add(w, &ops[i]);
        cr_assert_eq(rc, CVG_OK, "add op %zu: %s", i, cvg_errname(rc));
    }
    cvg_bytes b;
    cr_assert_eq(cvg__block_finish(w, &b), CVG_OK);
    return b;
}

/* Decode @p b expecting exactly @p want, and re-encode what was decoded:
 * the bytes must come out the same. */
static void
round_trip(cvg_bytes b, const cvg__op *want, size_t n)
{
    cvg__block_reader r = {0};
    cvg__block_writer w2 = {0};
    cr_assert_eq(cvg__block_open(&r, b.data, b.len), CVG_OK);
    cr_expect_eq(r.count, n);
    cr_assert_eq(cvg__block_begin(&w2, &r.origin, r.first_seq), CVG_OK);
    cvg__op op;
    size_t i = 0;
    int rc;
    while ((rc = cvg__block_next(&r, &op)) == CVG_OK) {
        cr_assert_lt(i, n);
        expect_op_eq(&op, &want[i], i);
        cr_assert_eq(cvg__block_add(&w2, &op), CVG_OK, "re-add op %zu", i);
        i++;
    }
    cr_expect_eq(rc, CVG_DONE, "end: %s", cvg_errname(rc));
    cr_expect_eq(i, n);
    cr_expect_eq(cvg__block_next(&r, &op), CVG_DONE, "DONE stays DONE");
    cvg_bytes b2;
    cr_assert_eq(cvg__block_finish(&w2, &b2), CVG_OK);
    cr_expect(bytes_eq(b, b2), "re-encoding differs (%zu vs %zu bytes)", b.len,
              b2.len);
    cvg__block_writer_destroy(&w2);
    cvg__block_reader_destroy(&r);
}

/* Decode @p b expecting exactly @p want (no re-encoding: for blocks of an
 * older version, which the writer no longer produces). */
static void
decode_expect(cvg_bytes b, const cvg__op *want, size_t n)
{
    cvg__block_reader r = {0};
    cr_assert_eq(cvg__block_open(&r, b.data, b.len), CVG_OK);
    cr_expect_eq(r.count, n);
    cvg__op op;
    size_t i = 0;
    int rc;
    while ((rc = cvg__block_next(&r, &op)) == CVG_OK) {
        cr_assert_lt(i, n);
        expect_op_eq(&op, &want[i], i);
        i++;
    }
    cr_expect_eq(rc, CVG_DONE, "end: %s", cvg_errname(rc));
    cr_expect_eq(i, n);
    cvg__block_reader_destroy(&r);
}

/* Decode everything; the first non-OK result. */
static int
decode_rc(const uint8_t *p, size_t n)
{
    cvg__block_reader r = {0};
    int rc = cvg__block_open(&r, p, n);
    if (rc == CVG_OK) {
        cvg__op op;
        while ((rc = cvg__block_next(&r, &op)) == CVG_OK) {
        }
    }
    cvg__block_reader_destroy(&r);
    return rc;
}

static cvg__op
base_op(const cvg_replica_id *origin, uint64_t seq, uint64_t hlc,
        cvg_op_kind kind, const char *c, const char *k, const char *f)
{
    cvg__op op;
    memset(&op, 0, sizeof op);
    op.pub.dot.origin = *origin;
    op.pub.dot.seq = seq;
    op.pub.hlc = hlc;
    op.pub.kind = kind;
    op.pub.collection = B(c);
    op.pub.key = B(k);
    op.pub.field = B(f);
    op.pub.value = cvg_value_nil();
    return op;
}

/* ---- A random op generator ---------------------------------------------- */

#define NORIGINS 40
#define NPOOL (1u << 17)

typedef struct gen {
    uint64_t rng;
    cvg_replica_id self;
    cvg_replica_id origins[NORIGINS]; /* sorted; origins[0..] include self */
    char colls[4][160];
    char keys[50][160];
    char fields[20][160];
    uint8_t *pool; /* random bytes for values */
    uint64_t hlc;
    /* Everything the ops point to, freed by gen_free. */
    void **owned;
    size_t n_owned;
    size_t cap_owned;
} gen;

static void *
gen_own(gen *g, size_t size)
{
    if (g->n_owned == g->cap_owned) {
        g->cap_owned = g->cap_owned ? g->cap_owned * 2 : 64;
        g->owned = realloc(g->owned, g->cap_owned * sizeof *g->owned);
        cr_assert_not_null(g->owned);
    }
    void *p = calloc(1, size ? size : 1);
    cr_assert_not_null(p);
    g->owned[g->n_owned++] = p;
    return p;
}

static void
gen_init(gen *g, uint64_t seed)
{
    memset(g, 0, sizeof *g);
    g->rng = seed;
    for (int i = 0; i < NORIGINS; i++) {
        g->origins[i] = mkid(seed * 1000 + (uint64_t)i);
    }
    g->self = g->origins[7];
    qsort(g->origins, NORIGINS, sizeof g->origins[0], id_cmp_qsort);
    /* Mostly short names, a few long ones (3 x 140 <= CVG_NAME_MAX). */
    for (int i = 0; i < 4; i++) {
        snprintf(g->colls[i], sizeof g->colls[i], "coll%d", i);
    }
    for (int i = 0; i < 50; i++) {
        if (i == 49) {
            memset(g->keys[i], 'k', 140);
            g->keys[i][140] = '\0';
        } else {
            snprintf(g->keys[i], sizeof g->keys[i], "key-%d", i);
        }
    }
    for (int i = 0; i < 20; i++) {
        if (i == 19) {
            memset(g->fields[i], 'f', 140);
            g->fields[i][140] = '\0';
        } else {
            snprintf(g->fields[i], sizeof g->fields[i], "f%d", i);
        }
    }
    g->pool = gen_own(g, NPOOL);
    for (size_t i = 0; i < NPOOL; i++) {
        g->pool[i] = (uint8_t)cvg_test_rand(&g->rng);
    }
    g->hlc = cvg_test_rand(&g->rng) >> 8;
}

static void
gen_free(gen *g)
{
    for (size_t i = 0; i < g->n_owned; i++) {
        free(g->owned[i]);
    }
    free(g->owned);
}

static uint64_t
gen_below(gen *g, uint64_t n)
{
    return cvg_test_below(&g->rng, n);
}

static int64_t
gen_int(gen *g)
{
    static const int64_t special[] = {
        INT64_MIN, INT64_MAX, -1,        1,         0,
        127,       128,       -32,       -33,       255,
        256,       65535,     65536,     -128,      -129,
        -32768,    -32769,    INT32_MIN, INT32_MAX, (int64_t)UINT32_MAX + 1};
    switch (gen_below(g, 4)) {
    case 0:
        return special[gen_below(g, sizeof special / sizeof special[0])];
    case 1:
        return (int64_t)gen_below(g, 200) - 100;
    case 2:
        return (int64_t)(cvg_test_rand(&g->rng) >> gen_below(g, 64));
    default:
        return (int64_t)cvg_test_rand(&g->rng);
    }
}

static cvg_value
gen_value(gen *g)
{
    size_t len;
    switch (gen_below(g, 6)) {
    case 0:
        return cvg_value_nil();
    case 1:
        return cvg_value_bool(gen_below(g, 2));
    case 2:
        return cvg_value_int(gen_int(g));
    case 3: {
        static const uint64_t special[] = {
            0x7ff8000000000000ull, 0xfff8000000000001ull, 0x7ff0000000000000ull,
            0xfff0000000000000ull, 0x8000000000000000ull, 0,
            0x7ff4000000000abcull};
        if (gen_below(g, 3) == 0) {
            return cvg_value_double(bitsd(special[gen_below(g, 7)]));
        }
        return cvg_value_double(bitsd(cvg_test_rand(&g->rng)));
    }
    default:
        switch (gen_below(g, 8)) {
        case 0:
            len = 0;
            break;
        case 1:
            len = 31 + gen_below(g, 3);
            break;
        case 2:
            len = 255 + gen_below(g, 3);
            break;
        case 3:
            len = gen_below(g, 2) ? 65535 + gen_below(g, 3) : 70000;
            break;
        default:
            len = gen_below(g, 40);
        }
        cvg_value v;
        v.kind = gen_below(g, 2) ? CVG_VALUE_STRING : CVG_VALUE_BYTES;
        v.as.bytes.data = g->pool + gen_below(g, NPOOL - len);
        v.as.bytes.len = len;
        return v;
    }
}

static const cvg_replica_id *
gen_origin(gen *g)
{
    return gen_below(g, 3) == 0 ? &g->self
                                : &g->origins[gen_below(g, NORIGINS)];
}

static uint64_t
gen_seq(gen *g, uint64_t op_seq)
{
    switch (gen_below(g, 5)) {
    case 0:
        return op_seq > 1 ? op_seq - 1 : 1;
    case 1:
        return UINT64_MAX - gen_below(g, 3);
    case 2:
        return 1 + gen_below(g, 1000);
    default:
        return 1 + (cvg_test_rand(&g->rng) >> gen_below(g, 64));
    }
}

/* n dots; @p vv: sorted by origin, one per origin. */
static cvg_dot *
gen_dots(gen *g, size_t *n_out, uint64_t op_seq, bool vv)
{
    size_t n = gen_below(g, 8) == 0 ? gen_below(g, 400) : gen_below(g, 4);
    if (vv && n > NORIGINS) {
        n = NORIGINS;
    }
    cvg_dot *d = gen_own(g, (n ? n : 1) * sizeof *d);
    if (vv) {
        /* A random subset of the sorted origins, kept in order. */
        size_t k = 0;
        for (size_t i = 0; i < NORIGINS && k < n; i++) {
            if (gen_below(g, NORIGINS) < n) {
                d[k].origin = g->origins[i];
                d[k].seq = gen_seq(g, op_seq);
                k++;
            }
        }
        n = k;
    } else {
        for (size_t i = 0; i < n; i++) {
            d[i].origin = *gen_origin(g);
            d[i].seq = gen_seq(g, op_seq);
        }
    }
    *n_out = n;
    return n ? d : NULL;
}

static void
gen_op(gen *g, cvg__op *op, uint64_t seq)
{
    cvg_op_kind kind = (cvg_op_kind)(1 + gen_below(g, 6));
    const char *f =
        kind == CVG_OP_RECORD_DELETE ? "" : g->fields[gen_below(g, 20)];
    /* Honest local times mostly rise a little; hostile ones may do
     * anything, and the delta wraps. */
    switch (gen_below(g, 6)) {
    case 0:
        g->hlc += 65536 * gen_below(g, 1000);
        break;
    case 1:
        g->hlc = cvg_test_rand(&g->rng);
        break;
    case 2:
        g->hlc -= gen_below(g, 100);
        break;
    default:
        g->hlc += 1 + gen_below(g, 3);
    }
    *op = base_op(&g->self, seq, g->hlc, kind, g->colls[gen_below(g, 4)],
                  g->keys[gen_below(g, 50)], f);
    switch (kind) {
    case CVG_OP_COUNTER_ADD:
        do {
            op->pub.delta = gen_int(g);
        } while (op->pub.delta == 0);
        break;
    case CVG_OP_SET_ADD:
        op->pub.value = gen_value(g);
        break;
    case CVG_OP_REGISTER_SET:
    case CVG_OP_MVREGISTER_SET:
    case CVG_OP_SET_REMOVE:
        op->pub.value = gen_value(g);
        op->pub.observed = gen_dots(g, &op->pub.observed_count, seq, false);
        break;
    case CVG_OP_RECORD_DELETE: {
        op->pub.observed = gen_dots(g, &op->pub.observed_count, seq, true);
        size_t nc = gen_below(g, 4);
        cvg__delete_counter *dc = gen_own(g, (nc ? nc : 1) * sizeof *dc);
        for (size_t i = 0; i < nc; i++) {
            size_t np;
            cvg_dot *dots = gen_dots(g, &np, seq, true);
            cvg__counter_part *parts =
                gen_own(g, (np ? np : 1) * sizeof *parts);
            for (size_t k = 0; k < np; k++) {
                parts[k].origin = dots[k].origin;
                parts[k].seq = dots[k].seq;
                parts[k].sum = gen_int(g);
            }
            dc[i].field = B(g->fields[gen_below(g, 19)]);
            dc[i].parts = np ? parts : NULL;
            dc[i].n = np;
        }
        op->counters = nc ? dc : NULL;
        op->n_counters = nc;
        break;
    }
    }
}

static cvg__op *
gen_block(gen *g, size_t n, uint64_t first_seq)
{
    cvg__op *ops = gen_own(g, n * sizeof *ops);
    for (size_t i = 0; i < n; i++) {
        gen_op(g, &ops[i], first_seq + i);
    }
    return ops;
}

/* ---- Round trips --------------------------------------------------------- */

Test(codec, every_op_and_value_kind_round_trips)
{
    cvg_replica_id me = mkid(1), a = mkid(2), b = mkid(3);
    static uint8_t big[CVG_VALUE_MAX];
    for (size_t i = 0; i < sizeof big; i++) {
        big[i] = (uint8_t)(i * 31 + 7);
    }
    cvg_value values[] = {
        cvg_value_nil(),
        cvg_value_bool(true),
        cvg_value_bool(false),
        cvg_value_int(0),
        cvg_value_int(-1),
        cvg_value_int(-33),
        cvg_value_int(INT64_MIN),
        cvg_value_int(INT64_MAX),
        cvg_value_int(200),
        cvg_value_double(bitsd(0x7ff8000000000001ull)), /* NaN, payload 1 */
        cvg_value_double(bitsd(0xfff8000000000000ull)), /* -NaN */
        cvg_value_double(INFINITY),
        cvg_value_double(-INFINITY),
        cvg_value_double(-0.0),
        cvg_value_double(3.25),
        cvg_value_string(""),
        cvg_value_string("hello"),
        cvg_value_bytes("", 0),
        cvg_value_bytes("\0\1\2", 3),
        cvg_value_bytes(big, CVG_VALUE_MAX),
        cvg_value_nil(), /* a CVG_VALUE_MAX string, set below */
    };
    values[20].kind = CVG_VALUE_STRING;
    values[20].as.bytes.data = big;
    values[20].as.bytes.len = CVG_VALUE_MAX;
    size_t nv = sizeof values / sizeof values[0];

    cvg__op ops[64];
    size_t n = 0;
    uint64_t seq = 5, hlc = (uint64_t)1700000000000 << 16;
    cvg_dot obs[3] = {{me, 4}, {a, 9}, {b, UINT64_MAX}};
    cvg_dot vv[2];
    vv[0].origin = id_cmp_qsort(&a, &b) < 0 ? a : b;
    vv[0].seq = 3;
    vv[1].origin = id_cmp_qsort(&a, &b) < 0 ? b : a;
    vv[1].seq = 1;

    ops[n] = base_op(&me, seq + n, hlc, CVG_OP_COUNTER_ADD, "c", "k", "n");
    ops[n].pub.delta = INT64_MIN;
    n++;
    ops[n] = base_op(&me, seq + n, hlc + 1, CVG_OP_COUNTER_ADD, "c", "k", "n");
    ops[n].pub.delta = 1;
    n++;
    for (size_t i = 0; i < nv; i++) {
        cvg_op_kind kinds[] = {CVG_OP_REGISTER_SET, CVG_OP_MVREGISTER_SET,
                               CVG_OP_SET_ADD, CVG_OP_SET_REMOVE};
        cvg_op_kind kd = kinds[i % 4];
        ops[n] = base_op(&me, seq + n, hlc + 2 + i, kd, "c", "k", "v");
        ops[n].pub.value = values[i];
        if (kd != CVG_OP_SET_ADD) {
            ops[n].pub.observed = obs;
            ops[n].pub.observed_count = i % 4;
        }
        n++;
        /* The same value under every kind too. */
        ops[n] = base_op(&me, seq + n, hlc + 2 + i, CVG_OP_SET_ADD, "c", "k2",
                         "set");
        ops[n].pub.value = values[i];
        n++;
    }
    cvg__counter_part parts[2] = {{vv[0].origin, 3, -7, 0, 0},
                                  {vv[1].origin, 1, INT64_MAX, 0, 0}};
    cvg__delete_counter dc[2] = {{B("n"), parts, 2}, {B("m"), NULL, 0}};
    ops[n] = base_op(&me, seq + n, hlc - 5, CVG_OP_RECORD_DELETE, "c", "k", "");
    ops[n].pub.observed = vv;
    ops[n].pub.observed_count = 2;
    ops[n].counters = dc;
    ops[n].n_counters = 2;
    n++;
    ops[n] = base_op(&me, seq + n, 0, CVG_OP_RECORD_DELETE, "c", "k2", "");
    n++;
    cr_assert_leq(n, 64);

    cvg__block_writer w = {0};
    cvg_bytes bytes = encode(&w, ops, n);
    round_trip(bytes, ops, n);
    cvg__block_writer_destroy(&w);
}

Test(codec, many_origins_in_observed_dots)
{
    enum { N = 3000 };
    cvg_replica_id me = mkid(99);
    cvg_dot *obs = calloc(N, sizeof *obs);
    cvg_dot *vv = calloc(N, sizeof *vv);
    cvg__counter_part *parts = calloc(N, sizeof *parts);
    cr_assert(obs && vv && parts);
    for (size_t i = 0; i < N; i++) {
        obs[i].origin = mkid(1000 + i);
        obs[i].seq = i + 1;
        vv[i] = obs[i];
    }
    qsort(vv, N, sizeof *vv, id_cmp_qsort);
    for (size_t i = 0; i < N; i++) {
        parts[i].origin = vv[i].origin;
        parts[i].seq = vv[i].seq;
        parts[i].sum = -(int64_t)i;
    }
    cvg__delete_counter dc = {B("hits"), parts, N};
    cvg__op ops[3];
    ops[0] = base_op(&me, 1, 10, CVG_OP_MVREGISTER_SET, "c", "k", "f");
    ops[0].pub.value = cvg_value_int(1);
    ops[0].pub.observed = obs;
    ops[0].pub.observed_count = N;
    ops[1] = base_op(&me, 2, 11, CVG_OP_RECORD_DELETE, "c", "k", "");
    ops[1].pub.observed = vv;
    ops[1].pub.observed_count = N;
    ops[1].counters = &dc;
    ops[1].n_counters = 1;
    ops[2] = base_op(&me, 3, 12, CVG_OP_SET_REMOVE, "c", "k", "s");
    ops[2].pub.observed = obs + N / 2;
    ops[2].pub.observed_count = N / 2;
    cvg__block_writer w = {0};
    cvg_bytes bytes = encode(&w, ops, 3);
    round_trip(bytes, ops, 3);
    /* Each origin is inlined once (18 bytes) and then referenced. */
    cr_expect_lt(bytes.len, (size_t)N * 18 + (size_t)N * 3 * 8);
    cvg__block_writer_destroy(&w);
    free(obs);
    free(vv);
    free(parts);
}

Test(codec, ten_thousand_ops_with_repeated_and_new_targets)
{
    gen g;
    gen_init(&g, cvg_test_seed(42));
    cvg__op *ops = gen_block(&g, 10000, 1);
    cvg__block_writer w = {0};
    cvg_bytes bytes = encode(&w, ops, 10000);
    round_trip(bytes, ops, 10000);
    cvg__block_writer_destroy(&w);
    gen_free(&g);
}

Test(codec, random_blocks_from_seed_round_trip)
{
    uint64_t seed = cvg_test_seed(0xC0DEC);
    cr_log_info("seed %llu (replay with CVG_TEST_SEED)",
                (unsigned long long)seed);
    uint64_t rng = seed;
    cvg__block_writer w = {0};
    for (int round = 0; round < 60; round++) {
        gen g;
        gen_init(&g, cvg_test_rand(&rng));
        size_t n = 1 + cvg_test_below(&rng, 150);
        uint64_t first = cvg_test_below(&rng, 4) == 0
                             ? UINT64_MAX - n + 1
                             : 1 + cvg_test_below(&rng, 1u << 20);
        cvg__op *ops = gen_block(&g, n, first);
        /* The writer is reused across blocks (begin again). */
        cvg_bytes bytes = encode(&w, ops, n);
        round_trip(bytes, ops, n);
        gen_free(&g);
    }
    cvg__block_writer_destroy(&w);
}

Test(codec, empty_block_decodes_to_nothing)
{
    cvg_replica_id me = mkid(5);
    cvg__block_writer w = {0};
    cvg_bytes b;
    cr_assert_eq(cvg__block_begin(&w, &me, 9), CVG_OK);
    cr_assert_eq(cvg__block_finish(&w, &b), CVG_OK);
    cr_expect_eq(decode_rc(b.data, b.len), CVG_DONE);
    cvg__block_writer_destroy(&w);
}

/* ---- The format itself --------------------------------------------------- */

Test(codec, golden_bytes_of_a_small_block)
{
    cvg_replica_id me;
    for (int i = 0; i < 16; i++) {
        me.bytes[i] = (uint8_t)(0xa0 + i);
    }
    cvg_replica_id other;
    memset(other.bytes, 0x11, 16);
    cvg_dot obs[2] = {{me, 6}, {other, 300}};
    cvg__op ops[7];
    ops[0] = base_op(&me, 7, 0x10000, CVG_OP_COUNTER_ADD, "c", "k", "f");
    ops[0].pub.delta = 1;
    ops[1] = base_op(&me, 8, 0x10001, CVG_OP_COUNTER_ADD, "c", "k", "f");
    ops[1].pub.delta = -2;
    ops[2] = base_op(&me, 9, 0x10002, CVG_OP_COUNTER_ADD, "c", "k", "f");
    ops[2].pub.delta = 3;
    ops[3] = base_op(&me, 10, 0x10000, CVG_OP_REGISTER_SET, "c", "k", "g");
    ops[3].pub.value = cvg_value_string("hi");
    ops[3].pub.observed = obs;
    ops[3].pub.observed_count = 2;
    ops[4] = base_op(&me, 11, 0x10000, CVG_OP_SET_ADD, "c", "k", "g");
    ops[4].pub.value = cvg_value_int(5);
    ops[5] = base_op(&me, 12, 0x10001, CVG_OP_REGISTER_SET, "c", "k2", "g");
    ops[5].pub.value = cvg_value_bool(true);
    ops[6] = base_op(&me, 13, 0x10002, CVG_OP_MVREGISTER_SET, "c", "k", "g");
    ops[6].pub.value = cvg_value_nil();
    static const uint8_t golden[] = {
        /* version, origin (bin 16), first_seq, count, hlc */
        0x04, 0xc4, 0x10, 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8,
        0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf, 0x07, 0x07, 0xce, 0x00, 0x01,
        0x00, 0x00,
        /* counter add; new entry, three names (p 0): "c" "k" "f"; 1 */
        0x01, 0x02, 0x00, 0xa1, 'c', 0x00, 0xa1, 'k', 0x00, 0xa1, 'f', 0x01,
        /* counter add, SAME, TICK, RUN of 1 more (2c + R = 2: 3 is not a
         * repeat of -2); -2; then 3 */
        0x59, 0x02, 0xfe, 0x03,
        /* register set; new entry, three names: "c" and "k" shared, "g";
         * hlc -2 (zigzag 3); "hi"; 2 dots: own origin 10 - 6 = 4 ->
         * zigzag 8; new origin 1 inline, seq 300 */
        0x02, 0x02, 0x01, 0xa0, 0x01, 0xa0, 0x00, 0xa1, 'g', 0x03, 0xa2, 'h',
        'i', 0x02, 0x00, 0x08, 0x01, 0xc4, 0x10, 0x11, 0x11, 0x11, 0x11, 0x11,
        0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0xcd,
        0x01, 0x2c,
        /* set add, SAME; hlc +0; 5 */
        0x0c, 0x00, 0x05,
        /* register set, TICK, NODOTS; new entry, key only: "k" + "2"
         * ("k" has no number to count on from); true */
        0x32, 0x01, 0x01, 0xa1, '2', 0xc3,
        /* mvregister set, TICK, NODOTS; entry 1 (t = 4); nil */
        0x33, 0x04, 0xc0};
    cvg__block_writer w = {0};
    cvg_bytes b = encode(&w, ops, 7);
    cr_assert_eq(b.len, sizeof golden, "len %zu", b.len);
    for (size_t i = 0; i < b.len; i++) {
        cr_expect_eq(b.data[i], golden[i], "byte %zu: %02x != %02x", i,
                     b.data[i], golden[i]);
    }
    round_trip(b, ops, 7);
    cvg__block_writer_destroy(&w);
}

/* Version 1 blocks, as replicas written before version 2 hold them, still
 * read. */
Test(codec, version_1_block_still_reads)
{
    cvg_replica_id me;
    for (int i = 0; i < 16; i++) {
        me.bytes[i] = (uint8_t)(0xa0 + i);
    }
    cvg_replica_id other;
    memset(other.bytes, 0x11, 16);
    cvg_dot obs[2] = {{me, 6}, {other, 300}};
    cvg__op ops[4];
    ops[0] = base_op(&me, 7, 0x10000, CVG_OP_COUNTER_ADD, "c", "k", "f");
    ops[0].pub.delta = 1;
    ops[1] = base_op(&me, 8, 0x10001, CVG_OP_COUNTER_ADD, "c", "k", "f");
    ops[1].pub.delta = -2;
    ops[2] = base_op(&me, 9, 0x10000, CVG_OP_REGISTER_SET, "c", "k", "g");
    ops[2].pub.value = cvg_value_string("hi");
    ops[2].pub.observed = obs;
    ops[2].pub.observed_count = 2;
    ops[3] = base_op(&me, 10, 0x10000, CVG_OP_SET_ADD, "c", "k", "g");
    ops[3].pub.value = cvg_value_int(5);
    static const uint8_t golden[] = {
        /* version, origin (bin 16), first_seq, count, hlc */
        0x01, 0xc4, 0x10, 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8,
        0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf, 0x07, 0x04, 0xce, 0x00, 0x01,
        0x00, 0x00,
        /* counter add, new target 0 "c" "k" "f", delta 1 */
        0x01, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1, 'f', 0x01,
        /* counter add, target 0, hlc +1, delta -2 */
        0x01, 0x00, 0x02, 0xfe,
        /* register set, new target 1, hlc -1, "hi", 2 dots: own origin
         * 9 - 6 = 3 -> zigzag 6; new origin 1 inline, seq 300 */
        0x02, 0x01, 0xa1, 'c', 0xa1, 'k', 0xa1, 'g', 0x01, 0xa2, 'h', 'i', 0x02,
        0x00, 0x06, 0x01, 0xc4, 0x10, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
        0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0xcd, 0x01, 0x2c,
        /* set add, target 1, hlc +0, 5 */
        0x04, 0x01, 0x00, 0x05};
    cvg_bytes b = {golden, sizeof golden};
    decode_expect(b, ops, 4);
    /* Written again, the same ops take version 4 and read back the same. */
    cvg__block_writer w = {0};
    cvg_bytes b2 = encode(&w, ops, 4);
    cr_expect_eq(b2.data[0], 0x04);
    round_trip(b2, ops, 4);
    cvg__block_writer_destroy(&w);
}

Test(codec, bytes_per_op)
{
    enum { N = 1000 };
    cvg_replica_id me = mkid(8);
    static cvg__op ops[N];
    static cvg_dot prev[N];
    uint64_t hlc = (uint64_t)1700000000000 << 16;
    cvg__block_writer w = {0};

    /* Counter increments on one field, ticking the clock in one ms. */
    for (size_t i = 0; i < N; i++) {
        ops[i] = base_op(&me, 1000 + i, hlc + i, CVG_OP_COUNTER_ADD, "users",
                         "alice", "visits");
        ops[i].pub.delta = 1;
    }
    cvg_bytes b = encode(&w, ops, N);
    double per = (double)b.len / N;
    cr_log_info("counter increments: %zu bytes, %.2f bytes/op", b.len, per);
    printf("counter increments: %zu bytes for %d ops, %.2f bytes/op\n", b.len,
           N, per);
    cr_expect_leq(b.len, 6 * N);
    round_trip(b, ops, N);

    /* The same, one op per ms: the time delta takes 5 bytes then. */
    for (size_t i = 0; i < N; i++) {
        ops[i].pub.hlc = hlc + ((uint64_t)i << 16);
    }
    b = encode(&w, ops, N);
    printf("counter increments 1/ms: %.2f bytes/op\n", (double)b.len / N);
    cr_expect_leq(b.len, 10 * N);

    /* Register sets of a small int on one field, each replacing the
     * previous write (the usual observed dot). */
    for (size_t i = 0; i < N; i++) {
        ops[i] = base_op(&me, 50000 + i, hlc + i, CVG_OP_REGISTER_SET, "users",
                         "alice", "score");
        ops[i].pub.value = cvg_value_int((int64_t)(i % 100));
        prev[i].origin = me;
        prev[i].seq = 50000 + i - 1;
        ops[i].pub.observed = &prev[i];
        ops[i].pub.observed_count = 1;
    }
    b = encode(&w, ops, N);
    per = (double)b.len / N;
    printf("register sets: %zu bytes for %d ops, %.2f bytes/op\n", b.len, N,
           per);
    cr_expect_leq(b.len, 8 * N);
    round_trip(b, ops, N);

    /* A set of a value another replica wrote last. */
    cvg_replica_id peer = mkid(9);
    for (size_t i = 0; i < N; i++) {
        prev[i].origin = peer;
        prev[i].seq = 123456 + i;
    }
    b = encode(&w, ops, N);
    printf("register sets over a peer's write: %.2f bytes/op\n",
           (double)b.len / N);
    cr_expect_leq(b.len, 12 * N);
    cvg__block_writer_destroy(&w);
}

/* ---- Hostile bytes ------------------------------------------------------- */

/* @p n random ops with small values and few dots, from seq @p first: for
 * the damage tests, which decode a block once per byte. */
static cvg__op *
small_ops(gen *g, size_t n, uint64_t first)
{
    cvg__op *ops = gen_own(g, n * sizeof *ops);
    size_t k = 0;
    while (k < n) {
        gen_op(g, &ops[k], first + k);
        const cvg_value *v = &ops[k].pub.value;
        if ((v->kind == CVG_VALUE_STRING || v->kind == CVG_VALUE_BYTES) &&
            v->as.bytes.len > 40) {
            continue;
        }
        if (ops[k].pub.observed_count > 12) {
            continue;
        }
        k++;
    }
    return ops;
}

static cvg_bytes
sample_block(cvg__block_writer *w, gen *g, size_t n)
{
    return encode(w, small_ops(g, n, 77), n);
}

static void
expect_prefixes_corrupt(cvg_bytes b, size_t stride_after)
{
    uint8_t *copy = malloc(b.len);
    cr_assert_not_null(copy);
    memcpy(copy, b.data, b.len);
    for (size_t len = 0; len < b.len;
         len += len < stride_after ? 1 : 1 + len % 997) {
        /* A fresh allocation of exactly len bytes, so ASan sees any read
         * past the end. */
        uint8_t *p = malloc(len ? len : 1);
        cr_assert_not_null(p);
        memcpy(p, copy, len);
        int rc = decode_rc(len ? p : NULL, len);
        cr_expect_eq(rc, CVG_ECORRUPT, "prefix %zu of %zu: %s", len, b.len,
                     cvg_errname(rc));
        free(p);
    }
    cr_expect_eq(decode_rc(copy, b.len), CVG_DONE);
    free(copy);
}

Test(codec, truncation_at_every_offset_is_corrupt)
{
    cvg__block_writer w = {0};
    for (uint64_t s = 1; s <= 8; s++) {
        gen g;
        gen_init(&g, s);
        expect_prefixes_corrupt(sample_block(&w, &g, 2 + s * 6), SIZE_MAX);
        gen_free(&g);
    }
    /* Blocks with long values and many dots: every prefix of the first
     * 4096 bytes, then a sample. */
    gen g;
    gen_init(&g, 99);
    expect_prefixes_corrupt(encode(&w, gen_block(&g, 60, 1), 60), 4096);
    gen_free(&g);
    cvg__block_writer_destroy(&w);
}

Test(codec, trailing_bytes_are_corrupt)
{
    cvg__block_writer w = {0};
    gen g;
    gen_init(&g, 3);
    cvg_bytes b = sample_block(&w, &g, 20);
    static const uint8_t tails[][2] = {{0x00, 0}, {0xc0, 0}, {0x01, 0x00}};
    for (size_t t = 0; t < 3; t++) {
        size_t extra = t == 2 ? 2 : 1;
        uint8_t *p = malloc(b.len + extra);
        memcpy(p, b.data, b.len);
        memcpy(p + b.len, tails[t], extra);
        cvg__block_reader r = {0};
        cr_assert_eq(cvg__block_open(&r, p, b.len + extra), CVG_OK);
        cvg__op op;
        size_t n = 0;
        int rc;
        while ((rc = cvg__block_next(&r, &op)) == CVG_OK) {
            n++;
        }
        cr_expect_eq(n, 20);
        cr_expect_eq(rc, CVG_ECORRUPT, "tail %zu: %s", t, cvg_errname(rc));
        cr_expect_eq(cvg__block_next(&r, &op), CVG_ECORRUPT, "sticky");
        cvg__block_reader_destroy(&r);
        free(p);
    }
    cvg__block_writer_destroy(&w);
    gen_free(&g);
}

Test(codec, newer_version_is_eversion)
{
    cvg__block_writer w = {0};
    gen g;
    gen_init(&g, 4);
    cvg_bytes b = sample_block(&w, &g, 5);
    uint8_t *p = malloc(b.len + 8);
    memcpy(p, b.data, b.len);
    p[0] = 0x05;
    cr_expect_eq(decode_rc(p, b.len), CVG_EVERSION);
    p[0] = 0x7f;
    cr_expect_eq(decode_rc(p, b.len), CVG_EVERSION);
    p[0] = 0x00;
    cr_expect_eq(decode_rc(p, b.len), CVG_ECORRUPT);
    /* Only the version is read: a v5 block may look like anything. */
    uint8_t v5[] = {0x05, 0xde, 0xad};
    cr_expect_eq(decode_rc(v5, sizeof v5), CVG_EVERSION);
    uint8_t vbig[] = {0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    cr_expect_eq(decode_rc(vbig, sizeof vbig), CVG_EVERSION);
    uint8_t vstr[] = {0xa1, 0x01};
    cr_expect_eq(decode_rc(vstr, sizeof vstr), CVG_ECORRUPT);
    free(p);
    cvg__block_writer_destroy(&w);
    gen_free(&g);
}

/* The header of a block of @p count ops by origin 0xa0.. from seq 1. */
static size_t
header(uint8_t *p, const uint8_t *count, size_t count_len)
{
    size_t n = 0;
    p[n++] = 0x01;
    p[n++] = 0xc4;
    p[n++] = 0x10;
    for (int i = 0; i < 16; i++) {
        p[n++] = (uint8_t)(0xa0 + i);
    }
    p[n++] = 0x01; /* first seq */
    memcpy(p + n, count, count_len);
    n += count_len;
    p[n++] = 0x05; /* hlc */
    return n;
}

static int
decode_parts(const uint8_t *count, size_t count_len, const uint8_t *body,
             size_t body_len)
{
    uint8_t buf[256];
    size_t n = header(buf, count, count_len);
    cr_assert_leq(n + body_len, sizeof buf);
    memcpy(buf + n, body, body_len);
    uint8_t *p = malloc(n + body_len);
    memcpy(p, buf, n + body_len);
    int rc = decode_rc(p, n + body_len);
    free(p);
    return rc;
}

#define ONE ((const uint8_t[]){0x01}), 1
#define BODY(...) \
    ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

Test(codec, hand_made_blocks)
{
    /* A valid one, to show the helpers build good blocks. */
    cr_expect_eq(decode_parts(ONE, BODY(0x01, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1,
                                        'f', 0x01)),
                 CVG_DONE);
    /* Record delete with empty field, no dots, no counters. */
    cr_expect_eq(decode_parts(ONE, BODY(0x06, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa0,
                                        0x00, 0x00)),
                 CVG_DONE);
}

Test(codec, hostile_lengths_and_counts_are_corrupt)
{
    /* The 5 bytes that make msgpack-c's unpacker ask for ~100 GB. */
    uint8_t dd[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    cr_expect_eq(decode_rc(dd, sizeof dd), CVG_ECORRUPT);
    uint8_t df[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    cr_expect_eq(decode_rc(df, sizeof df), CVG_ECORRUPT);
    /* Huge counts in the header. */
    cr_expect_eq(
        decode_parts(BODY(0xce, 0xff, 0xff, 0xff, 0xff),
                     BODY(0x01, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1, 'f', 0x01)),
        CVG_ECORRUPT);
    cr_expect_eq(
        decode_parts(BODY(0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
                     BODY(0x01)),
        CVG_ECORRUPT);
    /* A count within the cap but more ops than bytes. */
    cr_expect_eq(
        decode_parts(BODY(0xcd, 0x10, 0x00),
                     BODY(0x01, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1, 'f', 0x01)),
        CVG_ECORRUPT);
    /* ... refused by the open itself, before any op is read. */
    {
        uint8_t buf[64];
        size_t n = header(buf, BODY(0xcd, 0x10, 0x00));
        memcpy(buf + n,
               (const uint8_t[]){0x01, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1, 'f',
                                 0x01},
               9);
        cvg__block_reader r = {0};
        cr_expect_eq(cvg__block_open(&r, buf, n + 9), CVG_ECORRUPT);
        cvg__block_reader_destroy(&r);
    }
    /* Lengths of 2^32-1 for str, bin, array, map where an item goes. */
    cr_expect_eq(
        decode_parts(ONE, BODY(0x01, 0x00, 0xdb, 0xff, 0xff, 0xff, 0xff, 'c')),
        CVG_ECORRUPT);
    cr_expect_eq(
        decode_parts(ONE, BODY(0x04, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1, 'f',
                               0xc6, 0xff, 0xff, 0xff, 0xff, 0x00)),
        CVG_ECORRUPT);
    cr_expect_eq(
        decode_parts(ONE, BODY(0x04, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1, 'f',
                               0xdb, 0xff, 0xff, 0xff, 0xff, 0x00)),
        CVG_ECORRUPT);
    cr_expect_eq(decode_parts(ONE, BODY(0x04, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1,
                                        'f', 0xdd, 0xff, 0xff, 0xff, 0xff)),
                 CVG_ECORRUPT);
    cr_expect_eq(decode_parts(ONE, BODY(0x04, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1,
                                        'f', 0xdf, 0xff, 0xff, 0xff, 0xff)),
                 CVG_ECORRUPT);
    /* A value just over CVG_VALUE_MAX, announced but absent. */
    cr_expect_eq(decode_parts(ONE, BODY(0x04, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1,
                                        'f', 0xc6, 0x00, 0x10, 0x00, 0x01)),
                 CVG_ECORRUPT);
    /* Huge observed counts, as uint32 and uint64. */
    cr_expect_eq(
        decode_parts(ONE, BODY(0x02, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1, 'f',
                               0xc0, 0xce, 0xff, 0xff, 0xff, 0xff, 0x00, 0x01)),
        CVG_ECORRUPT);
    cr_expect_eq(
        decode_parts(ONE, BODY(0x02, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1, 'f',
                               0xc0, 0xdd, 0xff, 0xff, 0xff, 0xff)),
        CVG_ECORRUPT);
    /* Observed count within the cap, but beyond the bytes. */
    cr_expect_eq(
        decode_parts(ONE, BODY(0x02, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1, 'f',
                               0xc0, 0xcd, 0x80, 0x00, 0x00, 0x01)),
        CVG_ECORRUPT);
    /* Huge counter and parts counts in a record delete. */
    cr_expect_eq(decode_parts(ONE, BODY(0x06, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa0,
                                        0x00, 0xce, 0xff, 0xff, 0xff, 0xff)),
                 CVG_ECORRUPT);
    cr_expect_eq(
        decode_parts(ONE, BODY(0x06, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa0, 0x00,
                               0x01, 0xa1, 'n', 0xce, 0x00, 0x01, 0x00, 0x00)),
        CVG_ECORRUPT);
    /* An origin as bin of 2^32-1. */
    cr_expect_eq(
        decode_parts(ONE, BODY(0x02, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1, 'f',
                               0xc0, 0x01, 0x01, 0xc6, 0xff, 0xff, 0xff, 0xff)),
        CVG_ECORRUPT);
    uint8_t hdr_origin[] = {0x01, 0xc6, 0xff, 0xff, 0xff, 0xff};
    cr_expect_eq(decode_rc(hdr_origin, sizeof hdr_origin), CVG_ECORRUPT);
}

Test(codec, wrong_types_and_bad_semantics_are_corrupt)
{
    /* Target names: str required (bin refused), collection/key non-empty,
     * no NUL, field empty only for a record delete. */
    cr_expect_eq(decode_parts(ONE, BODY(0x01, 0x00, 0xc4, 0x01, 'c', 0xa1, 'k',
                                        0xa1, 'f', 0x01)),
                 CVG_ECORRUPT);
    cr_expect_eq(
        decode_parts(ONE, BODY(0x01, 0x00, 0xa0, 0xa1, 'k', 0xa1, 'f', 0x01)),
        CVG_ECORRUPT);
    cr_expect_eq(
        decode_parts(ONE, BODY(0x01, 0x00, 0xa1, 'c', 0xa0, 0xa1, 'f', 0x01)),
        CVG_ECORRUPT);
    cr_expect_eq(
        decode_parts(ONE, BODY(0x01, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa0, 0x01)),
        CVG_ECORRUPT);
    cr_expect_eq(decode_parts(ONE, BODY(0x01, 0x00, 0xa1, 'c', 0xa2, 'k', 0,
                                        0xa1, 'f', 0x01)),
                 CVG_ECORRUPT);
    cr_expect_eq(decode_parts(ONE, BODY(0x06, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1,
                                        'f', 0x00, 0x00)),
                 CVG_ECORRUPT);
    /* A target reference past the dictionary. */
    cr_expect_eq(decode_parts(ONE, BODY(0x01, 0x01, 0xa1, 'c', 0xa1, 'k', 0xa1,
                                        'f', 0x01)),
                 CVG_ECORRUPT);
    /* Kinds 0 and 7, a kind as nil. */
    cr_expect_eq(decode_parts(ONE, BODY(0x00, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1,
                                        'f', 0x01)),
                 CVG_ECORRUPT);
    cr_expect_eq(decode_parts(ONE, BODY(0x07, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1,
                                        'f', 0x01)),
                 CVG_ECORRUPT);
    cr_expect_eq(decode_parts(ONE, BODY(0xc0, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1,
                                        'f', 0x01)),
                 CVG_ECORRUPT);
    /* Counter delta: 0, a string, a non-minimal int, a uint64 > INT64_MAX,
     * a float. */
    cr_expect_eq(decode_parts(ONE, BODY(0x01, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1,
                                        'f', 0x00)),
                 CVG_ECORRUPT);
    cr_expect_eq(decode_parts(ONE, BODY(0x01, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1,
                                        'f', 0xa1, '1')),
                 CVG_ECORRUPT);
    cr_expect_eq(decode_parts(ONE, BODY(0x01, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1,
                                        'f', 0xcc, 0x01)),
                 CVG_ECORRUPT);
    cr_expect_eq(decode_parts(ONE, BODY(0x01, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1,
                                        'f', 0xd0, 0x05)),
                 CVG_ECORRUPT);
    cr_expect_eq(decode_parts(ONE, BODY(0x01, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1,
                                        'f', 0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0)),
                 CVG_ECORRUPT);
    cr_expect_eq(
        decode_parts(ONE, BODY(0x01, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1, 'f',
                               0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0)),
        CVG_ECORRUPT);
    /* Values: arrays, maps, ext and float32 are not values. */
    static const uint8_t notvalues[] = {0x90, 0x80, 0xd4, 0xca, 0xc1};
    for (size_t i = 0; i < sizeof notvalues; i++) {
        cr_expect_eq(
            decode_parts(ONE, BODY(0x04, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1, 'f',
                                   notvalues[i], 0, 0, 0, 0, 0)),
            CVG_ECORRUPT, "tag %02x", notvalues[i]);
    }
    /* Non-minimal str form (str8 for 1 byte). */
    cr_expect_eq(decode_parts(ONE, BODY(0x01, 0x00, 0xd9, 0x01, 'c', 0xa1, 'k',
                                        0xa1, 'f', 0x01)),
                 CVG_ECORRUPT);
    /* Dots: a peer's dot with seq 0, an origin of 15 bytes, the block's
     * own origin added again to the dictionary, an origin reference past
     * the dictionary. */
    cr_expect_eq(
        decode_parts(ONE, BODY(0x02, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1, 'f',
                               0xc0, 0x01, 0x01, 0xc4, 0x10, 1, 2, 3, 4, 5, 6,
                               7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0x00)),
        CVG_ECORRUPT);
    cr_expect_eq(
        decode_parts(ONE, BODY(0x02, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1, 'f',
                               0xc0, 0x01, 0x01, 0xc4, 0x0f, 1, 2, 3, 4, 5, 6,
                               7, 8, 9, 10, 11, 12, 13, 14, 15, 0x05)),
        CVG_ECORRUPT);
    cr_expect_eq(
        decode_parts(ONE, BODY(0x02, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1, 'f',
                               0xc0, 0x01, 0x01, 0xc4, 0x10, 0xa0, 0xa1, 0xa2,
                               0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa,
                               0xab, 0xac, 0xad, 0xae, 0xaf, 0x05)),
        CVG_ECORRUPT);
    cr_expect_eq(decode_parts(ONE, BODY(0x02, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1,
                                        'f', 0xc0, 0x01, 0x02, 0x05)),
                 CVG_ECORRUPT);
    /* Own-origin dot whose relative seq lands on 0: op seq 1 - 1. */
    cr_expect_eq(decode_parts(ONE, BODY(0x02, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1,
                                        'f', 0xc0, 0x01, 0x00, 0x02)),
                 CVG_ECORRUPT);
    /* ... while relative -1 (seq 2) is fine. */
    cr_expect_eq(decode_parts(ONE, BODY(0x02, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa1,
                                        'f', 0xc0, 0x01, 0x00, 0x01)),
                 CVG_DONE);
    /* Record delete: version vector with a repeated origin. */
    cr_expect_eq(decode_parts(ONE, BODY(0x06, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa0,
                                        0x02, 0x00, 0x01, 0x00, 0x01, 0x00)),
                 CVG_ECORRUPT);
    /* Counter field empty, or with a NUL. */
    cr_expect_eq(decode_parts(ONE, BODY(0x06, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa0,
                                        0x00, 0x01, 0xa0, 0x00)),
                 CVG_ECORRUPT);
    cr_expect_eq(decode_parts(ONE, BODY(0x06, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa0,
                                        0x00, 0x01, 0xa1, 0x00, 0x00)),
                 CVG_ECORRUPT);
    cr_expect_eq(decode_parts(ONE, BODY(0x06, 0x00, 0xa1, 'c', 0xa1, 'k', 0xa0,
                                        0x00, 0x01, 0xa1, 'n', 0x00)),
                 CVG_DONE);
    /* Header: seq 0, origin as str, count 0 with a time. */
    uint8_t h[] = {0x01, 0xc4, 0x10, 1,  2,  3,  4,  5,  6,    7,    8,
                   9,    10,   11,   12, 13, 14, 15, 16, 0x00, 0x00, 0x00};
    cr_expect_eq(decode_rc(h, sizeof h), CVG_ECORRUPT);
    h[19] = 0x01;
    cr_expect_eq(decode_rc(h, sizeof h), CVG_DONE);
    h[21] = 0x01;
    cr_expect_eq(decode_rc(h, sizeof h), CVG_ECORRUPT);
    h[21] = 0x00;
    h[1] = 0xd9;
    cr_expect_eq(decode_rc(h, sizeof h), CVG_ECORRUPT);
}

Test(codec, bit_flips_never_crash_and_what_decodes_is_valid)
{
    cvg__block_writer w = {0}, w2 = {0};
    gen g;
    gen_init(&g, 11);
    /* Keep values small: every byte gets 8 flips. */
    size_t n = 40;
    cvg_bytes b = encode(&w, small_ops(&g, n, 100), n);
    uint8_t *p = malloc(b.len);
    size_t ok = 0, done = 0;
    for (size_t i = 0; i < b.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(p, b.data, b.len);
            p[i] ^= (uint8_t)(1u << bit);
            cvg__block_reader r = {0};
            int rc = cvg__block_open(&r, p, b.len);
            if (rc == CVG_OK) {
                cr_assert_eq(cvg__block_begin(&w2, &r.origin, r.first_seq),
                             CVG_OK);
                cvg__op op;
                while ((rc = cvg__block_next(&r, &op)) == CVG_OK) {
                    /* Whatever the reader accepts, the writer accepts. */
                    int arc = cvg__block_add(&w2, &op);
                    cr_assert_eq(arc, CVG_OK, "byte %zu bit %d: %s", i, bit,
                                 cvg_errname(arc));
                    ok++;
                }
            }
            cr_assert(
                rc == CVG_DONE || rc == CVG_ECORRUPT || rc == CVG_EVERSION,
                "byte %zu bit %d: %d", i, bit, rc);
            if (rc == CVG_DONE) {
                done++;
            }
            cvg__block_reader_destroy(&r);
        }
    }
    cr_log_info("%zu bytes, %zu flips decoded fully, %zu ops read", b.len, done,
                ok);
    free(p);
    cvg__block_writer_destroy(&w);
    cvg__block_writer_destroy(&w2);
    gen_free(&g);
}

Test(codec, random_bytes_never_crash)
{
    uint64_t rng = cvg_test_seed(77);
    uint8_t buf[64];
    for (int t = 0; t < 200000; t++) {
        size_t len = cvg_test_below(&rng, sizeof buf);
        for (size_t i = 0; i < len; i++) {
            buf[i] = (uint8_t)cvg_test_rand(&rng);
        }
        /* Often a plausible header, so the op parser gets exercised. */
        if (len > 22 && cvg_test_below(&rng, 2)) {
            buf[0] = 0x01;
            buf[1] = 0xc4;
            buf[2] = 0x10;
            buf[19] = 0x01;
            buf[20] = (uint8_t)cvg_test_below(&rng, 4);
            buf[21] = 0x00;
        }
        uint8_t *p = malloc(len ? len : 1);
        memcpy(p, buf, len);
        int rc = decode_rc(p, len);
        cr_assert(rc == CVG_DONE || rc == CVG_ECORRUPT || rc == CVG_EVERSION);
        free(p);
    }
}

/* ---- The bounded msgpack reader -------------------------------------------
 */

/* Decode @p p as one int (then nothing left); CVG_ECORRUPT otherwise. */
static int
mp_int_of(const uint8_t *p, size_t n, int64_t *out)
{
    cvg__mp m = {p, p + n};
    int rc = cvg__mp_int(&m, out);
    return rc == CVG_OK && cvg__mp_left(&m) == 0 ? CVG_OK : CVG_ECORRUPT;
}

Test(codec, msgpack_reader_accepts_exactly_the_smallest_forms)
{
    static const int64_t edges[] = {0,
                                    1,
                                    127,
                                    128,
                                    255,
                                    256,
                                    65535,
                                    65536,
                                    (int64_t)UINT32_MAX,
                                    (int64_t)UINT32_MAX + 1,
                                    INT64_MAX,
                                    -1,
                                    -32,
                                    -33,
                                    -128,
                                    -129,
                                    -32768,
                                    -32769,
                                    INT32_MIN,
                                    (int64_t)INT32_MIN - 1,
                                    INT64_MIN};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        cvg__buf b = {0};
        msgpack_packer pk;
        cvg__mp_packer_init(&pk, &b);
        cr_assert_eq(msgpack_pack_int64(&pk, edges[i]), 0);
        int64_t v;
        cr_expect_eq(mp_int_of(b.p, b.len, &v), CVG_OK, "%lld",
                     (long long)edges[i]);
        cr_expect_eq(v, edges[i]);
        /* Every wider form of the same number is refused. */
        static const uint8_t wide[] = {0xcc, 0xcd, 0xce, 0xcf,
                                       0xd0, 0xd1, 0xd2, 0xd3};
        for (size_t k = 0; k < sizeof wide; k++) {
            uint8_t buf[9];
            size_t n = (size_t)1 << (wide[k] & 3);
            buf[0] = wide[k];
            for (size_t j = 0; j < n; j++) {
                buf[1 + j] = (uint8_t)((uint64_t)edges[i] >> (8 * (n - 1 - j)));
            }
            /* Only encodings of this same number, wider than what
             * msgpack-c wrote. */
            uint64_t raw = 0;
            for (size_t j = 0; j < n; j++) {
                raw = (raw << 8) | buf[1 + j];
            }
            bool is_signed = wide[k] >= 0xd0;
            if (is_signed && n < 8 && (raw >> (8 * n - 1)) != 0) {
                raw |= UINT64_MAX << (8 * n);
            }
            bool same =
                raw == (uint64_t)edges[i] && (is_signed || edges[i] >= 0);
            if (!same || 1 + n <= b.len) {
                continue;
            }
            cr_expect_eq(mp_int_of(buf, 1 + n, &v), CVG_ECORRUPT,
                         "%lld as %02x", (long long)edges[i], wide[k]);
            cvg__mp mw = {buf, buf + 1 + n};
            uint64_t uw;
            cr_expect_eq(cvg__mp_uint(&mw, UINT64_MAX, &uw), CVG_ECORRUPT,
                         "uint %lld as %02x", (long long)edges[i], wide[k]);
        }
        /* The uint reader takes the non-negative ones only. */
        cvg__mp m = {b.p, b.p + b.len};
        uint64_t u;
        cr_expect_eq(cvg__mp_uint(&m, UINT64_MAX, &u) == CVG_OK, edges[i] >= 0);
        cvg__buf_free(&b);
    }
    /* uint64 above INT64_MAX is not an int64. */
    uint8_t big[] = {0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0};
    int64_t v;
    cr_expect_eq(mp_int_of(big, sizeof big, &v), CVG_ECORRUPT);
    cvg__mp m = {big, big + sizeof big};
    uint64_t u;
    cr_expect_eq(cvg__mp_uint(&m, UINT64_MAX, &u), CVG_OK);
    cr_expect_eq(u, (uint64_t)1 << 63);
    m.p = big;
    cr_expect_eq(cvg__mp_uint(&m, (uint64_t)1 << 63, &u), CVG_OK);
    m.p = big;
    cr_expect_eq(cvg__mp_uint(&m, ((uint64_t)1 << 63) - 1, &u), CVG_ECORRUPT,
                 "above max");

    /* str and bin lengths at each form's edges: msgpack-c's form reads
     * back; the next wider form is refused. */
    static uint8_t body[70000];
    static const size_t lens[] = {0, 1, 31, 32, 255, 256, 65535, 65536, 69999};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        for (int str = 0; str < 2; str++) {
            cvg__buf b = {0};
            msgpack_packer pk;
            cvg__mp_packer_init(&pk, &b);
            if (str) {
                cr_assert_eq(msgpack_pack_str_with_body(&pk, body, lens[i]), 0);
            } else {
                cr_assert_eq(msgpack_pack_bin_with_body(&pk, body, lens[i]), 0);
            }
            cvg__mp m2 = {b.p, b.p + b.len};
            cvg_bytes out;
            int rc = str ? cvg__mp_str(&m2, SIZE_MAX, &out)
                         : cvg__mp_bin(&m2, SIZE_MAX, &out);
            cr_expect_eq(rc, CVG_OK);
            cr_expect_eq(out.len, lens[i]);
            cr_expect_eq(cvg__mp_left(&m2), 0);
            /* One byte short. */
            m2.p = b.p;
            m2.end = b.p + b.len - 1;
            if (lens[i] > 0) {
                rc = str ? cvg__mp_str(&m2, SIZE_MAX, &out)
                         : cvg__mp_bin(&m2, SIZE_MAX, &out);
                cr_expect_eq(rc, CVG_ECORRUPT);
            }
            /* Over a caller's cap. */
            m2.p = b.p;
            m2.end = b.p + b.len;
            if (lens[i] > 0) {
                rc = str ? cvg__mp_str(&m2, lens[i] - 1, &out)
                         : cvg__mp_bin(&m2, lens[i] - 1, &out);
                cr_expect_eq(rc, CVG_ECORRUPT);
            }
            /* The same length in a wider header. */
            uint8_t hdr[5 + 8];
            size_t hn;
            uint8_t tag = b.p[0];
            bool fix = str && tag >= 0xa0 && tag <= 0xbf;
            uint8_t wider = fix ? 0xd9 : (uint8_t)(tag + 1);
            if (!fix && (tag == 0xdb || tag == 0xc6)) {
                cvg__buf_free(&b);
                continue;
            }
            size_t w = fix ? 1 : (size_t)2 << (tag - (str ? 0xd9 : 0xc4));
            hdr[0] = wider;
            for (size_t j = 0; j < w; j++) {
                hdr[1 + j] = (uint8_t)(lens[i] >> (8 * (w - 1 - j)));
            }
            hn = 1 + w;
            uint8_t *q = malloc(hn + lens[i]);
            memcpy(q, hdr, hn);
            memcpy(q + hn, body, lens[i]);
            cvg__mp m3 = {q, q + hn + lens[i]};
            rc = str ? cvg__mp_str(&m3, SIZE_MAX, &out)
                     : cvg__mp_bin(&m3, SIZE_MAX, &out);
            cr_expect_eq(rc, CVG_ECORRUPT, "len %zu tag %02x", lens[i], wider);
            free(q);
            cvg__buf_free(&b);
        }
    }
    /* A bin where a str is wanted and the reverse. */
    uint8_t s1[] = {0xa1, 'x'}, b1[] = {0xc4, 0x01, 'x'};
    cvg_bytes out;
    cvg__mp m4 = {s1, s1 + 2};
    cr_expect_eq(cvg__mp_bin(&m4, 10, &out), CVG_ECORRUPT);
    cvg__mp m5 = {b1, b1 + 3};
    cr_expect_eq(cvg__mp_str(&m5, 10, &out), CVG_ECORRUPT);
}

/* ---- Writer and reader life cycle ------------------------------------------
 */

Test(codec, writer_refuses_bad_ops)
{
    cvg_replica_id me = mkid(1), peer = mkid(2);
    cvg__block_writer w = {0};
    cvg_bytes b;
    cvg__op op;
    memset(&op, 0, sizeof op);
    cr_expect_eq(cvg__block_add(&w, &op), CVG_EMISUSE, "before begin");
    cr_expect_eq(cvg__block_finish(&w, &b), CVG_EMISUSE);
    cr_expect_eq(cvg__block_begin(&w, &me, 0), CVG_EINVAL, "seq 0");
    cr_assert_eq(cvg__block_begin(&w, &me, 10), CVG_OK);

#define EXPECT_ADD(rc, ...)                    \
    do {                                       \
        int got_ = cvg__block_add(&w, &op);    \
        cr_expect_eq(got_, (rc), __VA_ARGS__); \
    } while (0)

    op = base_op(&me, 11, 1, CVG_OP_COUNTER_ADD, "c", "k", "f");
    op.pub.delta = 1;
    EXPECT_ADD(CVG_EINVAL, "wrong seq");
    op.pub.dot.seq = 10;
    op.pub.dot.origin = peer;
    EXPECT_ADD(CVG_EINVAL, "wrong origin");
    op.pub.dot.origin = me;
    op.pub.delta = 0;
    EXPECT_ADD(CVG_EINVAL, "delta 0");
    op.pub.delta = 1;
    op.pub.kind = (cvg_op_kind)7;
    EXPECT_ADD(CVG_EINVAL, "kind 7");
    op.pub.kind = CVG_OP_COUNTER_ADD;
    op.pub.key = B("");
    EXPECT_ADD(CVG_EINVAL, "empty key");
    op.pub.key = (cvg_bytes){(const uint8_t *)"a\0b", 3};
    EXPECT_ADD(CVG_EINVAL, "NUL in key");
    static char longname[CVG_NAME_MAX];
    memset(longname, 'x', sizeof longname);
    op.pub.key = (cvg_bytes){(const uint8_t *)longname, CVG_NAME_MAX - 1};
    EXPECT_ADD(CVG_ETOOBIG, "names too long");
    op.pub.key = (cvg_bytes){(const uint8_t *)longname, CVG_NAME_MAX - 2};
    cr_expect_eq(cvg__block_add(&w, &op), CVG_OK, "names at the limit");

    op = base_op(&me, 11, 1, CVG_OP_COUNTER_ADD, "c", "k", "");
    op.pub.delta = 1;
    EXPECT_ADD(CVG_EINVAL, "counter without field");
    op = base_op(&me, 11, 1, CVG_OP_RECORD_DELETE, "c", "k", "f");
    EXPECT_ADD(CVG_EINVAL, "record delete with a field");
    cvg_dot d2[2] = {{me, 1}, {peer, 1}};
    if (memcmp(&me, &peer, 16) < 0) {
        d2[0].origin = peer;
        d2[1].origin = me;
    }
    op = base_op(&me, 11, 1, CVG_OP_RECORD_DELETE, "c", "k", "");
    op.pub.observed = d2;
    op.pub.observed_count = 2;
    EXPECT_ADD(CVG_EINVAL, "unsorted version vector");
    op = base_op(&me, 11, 1, CVG_OP_COUNTER_ADD, "c", "k", "f");
    op.pub.delta = 3;
    op.pub.observed = d2;
    op.pub.observed_count = 1;
    EXPECT_ADD(CVG_EINVAL, "observed on a counter add");
    op = base_op(&me, 11, 1, CVG_OP_REGISTER_SET, "c", "k", "f");
    cvg_dot zero = {peer, 0};
    op.pub.observed = &zero;
    op.pub.observed_count = 1;
    EXPECT_ADD(CVG_EINVAL, "seq 0 observed");
    op.pub.observed_count = 0;
    op.pub.value.kind = CVG_VALUE_BYTES;
    op.pub.value.as.bytes.data = (const uint8_t *)longname;
    op.pub.value.as.bytes.len = CVG_VALUE_MAX + 1u;
    EXPECT_ADD(CVG_ETOOBIG, "value too big");
    op.pub.value.kind = (cvg_value_kind)9;
    EXPECT_ADD(CVG_EINVAL, "bad value kind");
    op.pub.value = cvg_value_int(4);
    cvg__counter_part parts[2] = {{me, 1, 1, 0, 0}, {me, 2, 1, 0, 0}};
    cvg__delete_counter dc = {B("n"), parts, 2};
    op = base_op(&me, 11, 1, CVG_OP_RECORD_DELETE, "c", "k", "");
    op.counters = &dc;
    op.n_counters = 1;
    EXPECT_ADD(CVG_EINVAL, "repeated origin in counter parts");
    dc.n = 1;
    dc.field = B("");
    EXPECT_ADD(CVG_EINVAL, "empty counter field");
    dc.field = B("n");
    op.pub.kind = CVG_OP_SET_ADD;
    op.pub.field = B("s");
    EXPECT_ADD(CVG_EINVAL, "counters on a set add");

    /* After all those refusals the block holds just the one good op. */
    cr_assert_eq(cvg__block_finish(&w, &b), CVG_OK);
    cvg__block_reader r = {0};
    cr_assert_eq(cvg__block_open(&r, b.data, b.len), CVG_OK);
    cr_expect_eq(r.count, 1);
    cr_expect_eq(cvg__block_next(&r, &op), CVG_OK);
    cr_expect_eq(op.pub.key.len, CVG_NAME_MAX - 2);
    cr_expect_eq(cvg__block_next(&r, &op), CVG_DONE);
    cvg__block_reader_destroy(&r);
    /* Finished: no more adds; finishing again gives the same bytes. */
    op = base_op(&me, 11, 1, CVG_OP_COUNTER_ADD, "c", "k", "f");
    op.pub.delta = 1;
    EXPECT_ADD(CVG_EMISUSE, "add after finish");
    cvg_bytes b2;
    cr_expect_eq(cvg__block_finish(&w, &b2), CVG_OK);
    cr_expect(b2.data == b.data && b2.len == b.len);
    cvg__block_writer_destroy(&w);
    cvg__block_writer_destroy(&w);
    cvg__block_writer_destroy(NULL);
}

Test(codec, failed_add_leaves_the_writer_unchanged)
{
    /* Fail the Nth allocation inside an add that brings new names and new
     * origins; after each failure the finished block must be exactly the
     * block without that op, and the op must then go in. */
    cvg_replica_id me = mkid(1);
    enum { NO = 300 };
    cvg_dot *obs = calloc(NO, sizeof *obs);
    for (size_t i = 0; i < NO; i++) {
        obs[i].origin = mkid(500 + i);
        obs[i].seq = i + 1;
    }
    cvg__op first = base_op(&me, 1, 100, CVG_OP_COUNTER_ADD, "c", "k", "f");
    first.pub.delta = 5;
    cvg__op big = base_op(&me, 2, 101, CVG_OP_MVREGISTER_SET, "c", "k2", "f2");
    big.pub.value = cvg_value_string("some value");
    big.pub.observed = obs;
    big.pub.observed_count = NO;

    cvg__block_writer ref = {0};
    cvg_bytes want = encode(&ref, &first, 1);

    int rc = CVG_ENOMEM;
    unsigned long nth;
    for (nth = 1; rc == CVG_ENOMEM && nth < 1000; nth++) {
        cvg__block_writer w = {0};
        cr_assert_eq(cvg__block_begin(&w, &me, 1), CVG_OK);
        cr_assert_eq(cvg__block_add(&w, &first), CVG_OK);
        cvg__alloc_fail_after(nth);
        rc = cvg__block_add(&w, &big);
        cvg__alloc_fail_after(0);
        if (rc == CVG_ENOMEM) {
            cvg_bytes got;
            cr_assert_eq(cvg__block_finish(&w, &got), CVG_OK);
            cr_expect(bytes_eq(got, want), "after failing alloc %lu", nth);
            /* Begin again and retry: the op goes in. */
            cr_assert_eq(cvg__block_begin(&w, &me, 1), CVG_OK);
            cr_assert_eq(cvg__block_add(&w, &first), CVG_OK);
            cr_assert_eq(cvg__block_add(&w, &big), CVG_OK);
        } else {
            cr_assert_eq(rc, CVG_OK);
        }
        cvg_bytes got;
        cr_assert_eq(cvg__block_finish(&w, &got), CVG_OK);
        cvg__op both[2] = {first, big};
        round_trip(got, both, 2);
        cvg__block_writer_destroy(&w);
    }
    cr_expect_gt(nth, 2, "some allocation failed");
    cvg__block_writer_destroy(&ref);
    free(obs);
}

Test(codec, names_dictionary_limit)
{
    /* CVG__DICT_MAX distinct targets fit one block; one more is
     * CVG_ELIMIT, leaving the block intact for the caller to finish. */
    cvg_replica_id me = mkid(3);
    cvg__block_writer w = {0};
    cr_assert_eq(cvg__block_begin(&w, &me, 1), CVG_OK);
    char key[32];
    cvg__op op;
    for (size_t i = 0; i <= CVG__DICT_MAX; i++) {
        snprintf(key, sizeof key, "k%zu", i);
        op = base_op(&me, 1 + i, i, CVG_OP_COUNTER_ADD, "c", key, "f");
        op.pub.delta = 1;
        int rc = cvg__block_add(&w, &op);
        if (i < CVG__DICT_MAX) {
            cr_assert_eq(rc, CVG_OK, "op %zu", i);
        } else {
            cr_assert_eq(rc, CVG_ELIMIT);
        }
    }
    /* A repeated target still fits. */
    op = base_op(&me, 1 + CVG__DICT_MAX, 0, CVG_OP_COUNTER_ADD, "c", "k7", "f");
    op.pub.delta = -1;
    cr_assert_eq(cvg__block_add(&w, &op), CVG_OK);
    cvg_bytes b;
    cr_assert_eq(cvg__block_finish(&w, &b), CVG_OK);
    cvg__block_reader r = {0};
    cr_assert_eq(cvg__block_open(&r, b.data, b.len), CVG_OK);
    size_t n = 0;
    int rc;
    while ((rc = cvg__block_next(&r, &op)) == CVG_OK) {
        if (n == CVG__DICT_MAX) {
            cr_expect(bytes_eq(op.pub.key, B("k7")));
            cr_expect_eq(op.pub.delta, -1);
        }
        n++;
    }
    cr_expect_eq(rc, CVG_DONE);
    cr_expect_eq(n, CVG__DICT_MAX + 1);
    cvg__block_reader_destroy(&r);
    cvg__block_writer_destroy(&w);
}

Test(codec, reader_life_cycle)
{
    cvg__block_reader r;
    memset(&r, 0, sizeof r);
    cvg__op op;
    /* Destroy and next on a zeroed reader. */
    cr_expect_eq(cvg__block_next(&r, &op), CVG_EMISUSE);
    cvg__block_reader_destroy(&r);
    cvg__block_reader_destroy(NULL);
    /* A failed open: next repeats the error; destroy is fine. */
    uint8_t bad[] = {0x01, 0x02};
    cr_expect_eq(cvg__block_open(&r, bad, sizeof bad), CVG_ECORRUPT);
    cr_expect_eq(cvg__block_next(&r, &op), CVG_ECORRUPT);
    cvg__block_reader_destroy(&r);
    cr_expect_eq(cvg__block_open(&r, NULL, 0), CVG_ECORRUPT);
    cvg__block_reader_destroy(&r);
    /* Reopen without destroying: the scratch is reused. */
    gen g;
    gen_init(&g, 9);
    cvg__op *ops = gen_block(&g, 30, 1);
    cvg__block_writer w = {0};
    cvg_bytes b = encode(&w, ops, 30);
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(cvg__block_open(&r, b.data, b.len), CVG_OK);
        size_t i = 0;
        while (cvg__block_next(&r, &op) == CVG_OK) {
            expect_op_eq(&op, &ops[i], i);
            i++;
        }
        cr_expect_eq(i, 30);
    }
    /* Open fails with memory short. */
    cvg__block_reader_destroy(&r);
    cvg__alloc_fail_after(1);
    cr_expect_eq(cvg__block_open(&r, b.data, b.len), CVG_ENOMEM);
    cvg__alloc_fail_after(0);
    cr_expect_eq(cvg__block_next(&r, &op), CVG_EMISUSE);
    cvg__block_reader_destroy(&r);
    /* Every allocation of a full decode may fail: the error is reported,
     * never a crash or a leak (ASan). */
    for (unsigned long nth = 1; nth < 200; nth++) {
        cvg__alloc_fail_after(nth);
        int rc = cvg__block_open(&r, b.data, b.len);
        while (rc == CVG_OK) {
            rc = cvg__block_next(&r, &op);
        }
        cvg__alloc_fail_after(0);
        cr_expect(rc == CVG_DONE || rc == CVG_ENOMEM, "%s", cvg_errname(rc));
        cvg__block_reader_destroy(&r);
    }
    cvg__block_writer_destroy(&w);
    gen_free(&g);
}
