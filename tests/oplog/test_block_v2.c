/*
 * Version 2 of the op block format: head flags, runs and prefix-coded
 * names. What the writer makes of typical workloads, and hand-made blocks
 * that break each rule of the format (block_format.h).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oplog/block_format.h"

static cvg_replica_id
id_of(uint8_t b)
{
    cvg_replica_id id;
    for (int i = 0; i < 16; i++) {
        id.bytes[i] = (uint8_t)(b + i);
    }
    return id;
}

static int
decode_all(const uint8_t *p, size_t n, size_t *ops_out)
{
    cvg__block_reader r = {0};
    size_t ops = 0;
    int rc = cvg__block_open(&r, p, n);
    if (rc == CVG_OK) {
        cvg__op op;
        while ((rc = cvg__block_next(&r, &op)) == CVG_OK) {
            ops++;
        }
    }
    cvg__block_reader_destroy(&r);
    if (ops_out != NULL) {
        *ops_out = ops;
    }
    return rc;
}

/* A hand-made block: a version 2 header for @p count ops by origin 0xa0..
 * from seq 1 at time 5, then @p body. */
static int
decode_v2(uint64_t count, const uint8_t *body, size_t body_len)
{
    uint8_t *p = malloc(32 + body_len);
    size_t n = 0;
    p[n++] = 0x02;
    p[n++] = 0xc4;
    p[n++] = 0x10;
    for (int i = 0; i < 16; i++) {
        p[n++] = (uint8_t)(0xa0 + i);
    }
    p[n++] = 0x01;
    cr_assert_lt(count, 128);
    p[n++] = (uint8_t)count;
    p[n++] = 0x05;
    memcpy(p + n, body, body_len);
    int rc = decode_all(p, n + body_len, NULL);
    free(p);
    return rc;
}

#define BODY(...) \
    ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

/* The first op: counter add on new entry ("c", "k", "f"), delta 1. */
#define FIRST \
    0x01, 0x01, 0x00, 0xa1, 'c', 0x00, 0xa1, 'k', 0x00, 0xa1, 'f', 0x01

Test(block_v2, hand_made_valid_blocks_decode)
{
    cr_expect_eq(decode_v2(1, BODY(FIRST)), CVG_DONE);
    /* A run: two more increments, same target, ticking clock. */
    cr_expect_eq(decode_v2(3, BODY(FIRST, 0x59, 0x01, 0x01, 0x01)), CVG_DONE);
    /* The first op may head a run too: then each op has a time item. */
    cr_expect_eq(
        decode_v2(2, BODY(0x41, 0x01, 0x01, 0x00, 0xa1, 'c', 0x00, 0xa1, 'k',
                          0x00, 0xa1, 'f', 0x01, 0x02, 0x01)),
        CVG_DONE);
    /* A key-only new entry after the first. */
    cr_expect_eq(decode_v2(2, BODY(FIRST, 0x11, 0x00, 0x01, 0xa1, '2', 0x01)),
                 CVG_DONE);
    /* An old entry by reference (t = 2 is entry 0). */
    cr_expect_eq(decode_v2(2, BODY(FIRST, 0x11, 0x02, 0x01)), CVG_DONE);
}

Test(block_v2, broken_rules_are_corrupt)
{
    /* SAME or TICK on the first op: there is no previous op. */
    cr_expect_eq(decode_v2(1, BODY(0x09, 0x01)), CVG_ECORRUPT);
    cr_expect_eq(decode_v2(1, BODY(0x11, 0x01, 0x00, 0xa1, 'c', 0x00, 0xa1, 'k',
                                   0x00, 0xa1, 'f', 0x01)),
                 CVG_ECORRUPT);
    /* NODOTS on a kind without dots. */
    cr_expect_eq(decode_v2(1, BODY(0x21, 0x01, 0x00, 0xa1, 'c', 0x00, 0xa1, 'k',
                                   0x00, 0xa1, 'f', 0x01)),
                 CVG_ECORRUPT);
    /* A head beyond one byte, kinds 0 and 7. */
    cr_expect_eq(decode_v2(1, BODY(0xcc, 0x81, 0x01)), CVG_ECORRUPT);
    cr_expect_eq(decode_v2(1, BODY(0x00, 0x01, 0x00, 0xa1, 'c', 0x00, 0xa1, 'k',
                                   0x00, 0xa1, 'f', 0x01)),
                 CVG_ECORRUPT);
    cr_expect_eq(decode_v2(1, BODY(0x07, 0x01, 0x00, 0xa1, 'c', 0x00, 0xa1, 'k',
                                   0x00, 0xa1, 'f', 0x01)),
                 CVG_ECORRUPT);
    /* A run of 0 more, and a run longer than the block. */
    cr_expect_eq(decode_v2(2, BODY(FIRST, 0x59, 0x00, 0x01)), CVG_ECORRUPT);
    cr_expect_eq(decode_v2(3, BODY(FIRST, 0x59, 0x02, 0x01, 0x01)),
                 CVG_ECORRUPT);
    /* A register set whose dot count is 0: NODOTS is the only form. */
    cr_expect_eq(decode_v2(1, BODY(0x02, 0x01, 0x00, 0xa1, 'c', 0x00, 0xa1, 'k',
                                   0x00, 0xa1, 'f', 0x01, 0x00)),
                 CVG_ECORRUPT);
    cr_expect_eq(decode_v2(1, BODY(0x22, 0x01, 0x00, 0xa1, 'c', 0x00, 0xa1, 'k',
                                   0x00, 0xa1, 'f', 0x01)),
                 CVG_DONE);
    /* A key-only entry with no entry before it. */
    cr_expect_eq(decode_v2(1, BODY(0x01, 0x00, 0x00, 0xa1, 'k', 0x01)),
                 CVG_ECORRUPT);
    /* A prefix longer than the last entry's name. */
    cr_expect_eq(decode_v2(2, BODY(FIRST, 0x11, 0x00, 0x02, 0xa1, '2', 0x01)),
                 CVG_ECORRUPT);
    /* A reference past the dictionary (t = 3 with one entry). */
    cr_expect_eq(decode_v2(2, BODY(FIRST, 0x11, 0x03, 0x01)), CVG_ECORRUPT);
    /* A collection left empty, a NUL in a name. */
    cr_expect_eq(decode_v2(1, BODY(0x01, 0x01, 0x00, 0xa0, 0x00, 0xa1, 'k',
                                   0x00, 0xa1, 'f', 0x01)),
                 CVG_ECORRUPT);
    cr_expect_eq(decode_v2(1, BODY(0x01, 0x01, 0x00, 0xa1, 'c', 0x00, 0xa2, 'k',
                                   0x00, 0x00, 0xa1, 'f', 0x01)),
                 CVG_ECORRUPT);
}

/* Prefix coding lets 7 bytes name a 440-byte key: a block of such entries
 * is refused once its names pass 16 times its bytes (plus 64 KiB), rather
 * than growing the reader's memory 60-fold. */
Test(block_v2, name_bombs_are_refused)
{
    enum { KEY = 440, OPS = 1000 };
    size_t cap = 64 + KEY + OPS * 8;
    uint8_t *p = malloc(cap);
    size_t n = 0;
    p[n++] = 0x02;
    p[n++] = 0xc4;
    p[n++] = 0x10;
    for (int i = 0; i < 16; i++) {
        p[n++] = (uint8_t)(0xa0 + i);
    }
    p[n++] = 0x01;
    p[n++] = 0xcd; /* count */
    p[n++] = OPS >> 8;
    p[n++] = OPS & 0xff;
    p[n++] = 0x05;
    /* First op: counter add on ("c", 440 x 'k', "f"). */
    const uint8_t first[] = {0x01, 0x01, 0x00,     0xa1,      'c',
                             0x00, 0xda, KEY >> 8, KEY & 0xff};
    memcpy(p + n, first, sizeof first);
    n += sizeof first;
    memset(p + n, 'k', KEY);
    n += KEY;
    const uint8_t tail[] = {0x00, 0xa1, 'f', 0x01};
    memcpy(p + n, tail, sizeof tail);
    n += sizeof tail;
    /* Then: new entry, key-only, all 440 bytes shared, nothing added. */
    for (int i = 1; i < OPS; i++) {
        const uint8_t op[] = {0x11,       0x00, 0xcd, KEY >> 8,
                              KEY & 0xff, 0xa0, 0x01};
        memcpy(p + n, op, sizeof op);
        n += sizeof op;
    }
    cr_assert_leq(n, cap);
    size_t read = 0;
    cr_expect_eq(decode_all(p, n, &read), CVG_ECORRUPT);
    /* Refused near the bound: 64 KiB of slack lets about 160 entries by. */
    cr_expect_gt(read, 100);
    cr_expect_lt(read, 400);
    free(p);
}

/* ---- What the writer makes of typical runs ------------------------------ */

typedef struct keyed_ops {
    cvg__op *ops;
    char (*keys)[480];
    size_t n;
} keyed_ops;

static keyed_ops
keyed(size_t n)
{
    keyed_ops k = {calloc(n, sizeof(cvg__op)), calloc(n, 480), n};
    return k;
}

static void
keyed_free(keyed_ops *k)
{
    free(k->ops);
    free(k->keys);
}

/* Encode, decode, and compare names, kinds, times and payloads; the size
 * of the block. */
static size_t
encode_and_check(const keyed_ops *k)
{
    cvg__block_writer w = {0};
    cr_assert_eq(
        cvg__block_begin(&w, &k->ops[0].pub.dot.origin, k->ops[0].pub.dot.seq),
        CVG_OK);
    for (size_t i = 0; i < k->n; i++) {
        int rc = cvg__block_add(&w, &k->ops[i]);
        cr_assert_eq(rc, CVG_OK, "op %zu: %s", i, cvg_errname(rc));
    }
    cvg_bytes b;
    cr_assert_eq(cvg__block_finish(&w, &b), CVG_OK);
    cvg__block_reader r = {0};
    cr_assert_eq(cvg__block_open(&r, b.data, b.len), CVG_OK);
    cvg__op op;
    for (size_t i = 0; i < k->n; i++) {
        cr_assert_eq(cvg__block_next(&r, &op), CVG_OK, "op %zu", i);
        const cvg_op *want = &k->ops[i].pub;
        cr_assert_eq(op.pub.kind, want->kind, "op %zu", i);
        cr_assert_eq(op.pub.hlc, want->hlc, "op %zu", i);
        cr_assert_eq(op.pub.dot.seq, want->dot.seq, "op %zu", i);
        cr_assert_eq(op.pub.key.len, want->key.len, "op %zu", i);
        cr_assert(memcmp(op.pub.key.data, want->key.data, want->key.len) == 0,
                  "op %zu key", i);
        cr_assert_eq(op.pub.collection.len, want->collection.len);
        cr_assert_eq(op.pub.field.len, want->field.len);
        cr_assert_eq(op.pub.delta, want->delta, "op %zu", i);
        cr_assert_eq(op.pub.value.kind, want->value.kind, "op %zu", i);
        cr_assert_eq(op.pub.observed_count, want->observed_count, "op %zu", i);
    }
    cr_assert_eq(cvg__block_next(&r, &op), CVG_DONE);
    cvg__block_reader_destroy(&r);
    size_t len = b.len;
    cvg__block_writer_destroy(&w);
    return len;
}

static void
set_op(keyed_ops *k, size_t i, const cvg_replica_id *me, uint64_t hlc,
       cvg_op_kind kind, const char *c, const char *f)
{
    cvg__op *op = &k->ops[i];
    memset(op, 0, sizeof *op);
    op->pub.dot.origin = *me;
    op->pub.dot.seq = i + 1;
    op->pub.hlc = hlc;
    op->pub.kind = kind;
    op->pub.collection = (cvg_bytes){(const uint8_t *)c, strlen(c)};
    op->pub.key = (cvg_bytes){(const uint8_t *)k->keys[i], strlen(k->keys[i])};
    op->pub.field = (cvg_bytes){(const uint8_t *)f, strlen(f)};
    op->pub.value = cvg_value_nil();
}

Test(block_v2, a_run_of_increments_costs_a_byte_per_op)
{
    enum { N = 1000 };
    cvg_replica_id me = id_of(1);
    keyed_ops k = keyed(N);
    for (size_t i = 0; i < N; i++) {
        snprintf(k.keys[i], 480, "till-1");
        set_op(&k, i, &me, 0x10000 + i, CVG_OP_COUNTER_ADD, "stock", "qty");
        k.ops[i].pub.delta = -1;
    }
    size_t len = encode_and_check(&k);
    cr_expect_lt(len, N * 11 / 10, "%zu bytes for %d ops", len, N);
    keyed_free(&k);
}

Test(block_v2, new_keys_in_order_cost_a_few_bytes_each)
{
    enum { N = 1000 };
    cvg_replica_id me = id_of(2);
    keyed_ops k = keyed(N);
    for (size_t i = 0; i < N; i++) {
        snprintf(k.keys[i], 480, "item-%05zu", i);
        set_op(&k, i, &me, 0x10000 + i, CVG_OP_REGISTER_SET, "stock", "name");
        k.ops[i].pub.value = cvg_value_int((int64_t)i);
    }
    size_t len = encode_and_check(&k);
    /* head, t, p, a 1-2 byte rest, a 1-3 byte value */
    cr_expect_lt(len, N * 9, "%zu bytes for %d ops", len, N);
    keyed_free(&k);
}

/* Long keys sharing long prefixes would pass the bound on whole names
 * (NAMES_WHOLE_PER_BYTE): the writer writes some of them whole, and the
 * block still reads. */
Test(block_v2, long_shared_prefixes_still_read)
{
    enum { N = 2000 };
    cvg_replica_id me = id_of(3);
    keyed_ops k = keyed(N);
    for (size_t i = 0; i < N; i++) {
        memset(k.keys[i], 'p', 430);
        snprintf(k.keys[i] + 430, 50, "%05zu", i);
        set_op(&k, i, &me, 0x10000 + i, CVG_OP_COUNTER_ADD, "c", "f");
        k.ops[i].pub.delta = 1;
    }
    size_t len = encode_and_check(&k);
    /* At least a quarter of the names (the bound), and whole names only
     * as needed to stay within it: a quarter of them plus a few bytes an
     * op. */
    size_t whole = (size_t)N * (1 + 435 + 1);
    cr_expect_geq(len * NAMES_WHOLE_PER_BYTE, whole, "%zu bytes", len);
    cr_expect_lt(len, whole / NAMES_WHOLE_PER_BYTE + N * 8,
                 "%zu bytes for %d ops", len, N);
    keyed_free(&k);
}

/* Different kinds, fields and clocks mixed: runs break where they must. */
Test(block_v2, mixed_ops_round_trip)
{
    enum { N = 3000 };
    cvg_replica_id me = id_of(4);
    keyed_ops k = keyed(N);
    uint64_t hlc = 0x50000, state = 12345;
    static const char *fields[] = {"a", "b", "qty"};
    for (size_t i = 0; i < N; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t rnd = state >> 33;
        snprintf(k.keys[i], 480, "k%llu", (unsigned long long)(rnd % 7));
        hlc += (rnd & 8) ? 1 : (rnd % 5);
        bool counter = (rnd & 16) != 0;
        set_op(&k, i, &me, hlc,
               counter ? CVG_OP_COUNTER_ADD : CVG_OP_MVREGISTER_SET, "c",
               fields[rnd % 3]);
        if (counter) {
            k.ops[i].pub.delta = (rnd & 32) ? 1 : -3;
        } else {
            k.ops[i].pub.value = cvg_value_int((int64_t)(rnd % 1000));
        }
    }
    (void)encode_and_check(&k);
    keyed_free(&k);
}
