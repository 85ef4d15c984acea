/*
 * Version 3 of the op block format: a new dictionary entry may name the key
 * after the last entry's (TARGET_NEXT_KEY, block_key_next) in one byte.
 * The rule itself, hand-made blocks that use it and break it, what the
 * writer makes of numbered and unnumbered keys, and version 2's references
 * read as they were.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oplog/block_format.h"

/* ---- The rule ------------------------------------------------------------ */

static void
expect_next(const char *key, const char *want)
{
    uint8_t out[CVG_NAME_MAX + 1];
    size_t n = block_key_next((const uint8_t *)key, strlen(key), out);
    if (want == NULL) {
        cr_expect_eq(n, 0, "'%s' has no next key", key);
        return;
    }
    cr_expect_eq(n, strlen(want), "after '%s'", key);
    cr_expect(n == strlen(want) && memcmp(out, want, n) == 0,
              "after '%s': '%.*s', not '%s'", key, (int)n, (char *)out, want);
}

Test(block_v3, the_next_key_counts_on_the_trailing_number)
{
    expect_next("item-1041", "item-1042");
    expect_next("k9", "k10");
    expect_next("k99", "k100");
    expect_next("k0099", "k0100");
    expect_next("k0", "k1");
    expect_next("7", "8");
    expect_next("9", "10");
    expect_next("a1b2", "a1b3");
    expect_next("v1.9", "v1.10");
    /* No trailing digit: no next. */
    expect_next("k", NULL);
    expect_next("k1a", NULL);
    expect_next("", NULL);
    /* The longest key with all nines: one byte longer, which the reader's
     * entry check then refuses. */
    char nines[CVG_NAME_MAX + 1];
    memset(nines, '9', CVG_NAME_MAX);
    nines[CVG_NAME_MAX] = '\0';
    uint8_t out[CVG_NAME_MAX + 1];
    cr_expect_eq(block_key_next((const uint8_t *)nines, CVG_NAME_MAX, out),
                 CVG_NAME_MAX + 1);
    cr_expect_eq(out[0], '1');
    cr_expect_eq(out[CVG_NAME_MAX], '0');
    cr_expect_eq(block_key_next((const uint8_t *)nines, CVG_NAME_MAX + 1, out),
                 0, "past CVG_NAME_MAX");
}

/* ---- Hand-made blocks ---------------------------------------------------- */

/* Decode a block whose header says version @p version, @p count ops by
 * origin 0xa0.. from seq 1 at time 5, then @p body; the keys read, joined
 * by '|', into @p keys (may be NULL). */
static int
decode_hand_made(unsigned version, uint64_t count, const uint8_t *body,
                 size_t body_len, char *keys, size_t keys_cap)
{
    uint8_t *p = malloc(32 + body_len);
    size_t n = 0;
    p[n++] = (uint8_t)version;
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
    cvg__block_reader r = {0};
    size_t used = 0;
    if (keys != NULL) {
        keys[0] = '\0';
    }
    int rc = cvg__block_open(&r, p, n + body_len);
    if (rc == CVG_OK) {
        cvg__op op;
        while ((rc = cvg__block_next(&r, &op)) == CVG_OK) {
            if (keys != NULL) {
                used += (size_t)snprintf(
                    keys + used, keys_cap - used, "%s%.*s", used > 0 ? "|" : "",
                    (int)op.pub.key.len, (const char *)op.pub.key.data);
                cr_assert_lt(used, keys_cap);
            }
        }
    }
    cvg__block_reader_destroy(&r);
    free(p);
    return rc;
}

#define BODY(...) \
    ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

/* The first op: a counter add of 1 on a new entry of three names (t = 2)
 * "c", the key given, "f". */
#define FIRST(...) \
    0x01, 0x02, 0x00, 0xa1, 'c', 0x00, __VA_ARGS__, 0x00, 0xa1, 'f', 0x01

Test(block_v3, next_keys_decode)
{
    char keys[256];
    /* "k9", then t = 0 twice: "k10", "k11"; each op TICK with delta 1. */
    cr_expect_eq(decode_hand_made(3, 3,
                                  BODY(FIRST(0xa2, 'k', '9'), 0x11, 0x00, 0x01,
                                       0x11, 0x00, 0x01),
                                  keys, sizeof keys),
                 CVG_DONE);
    cr_expect_str_eq(keys, "k9|k10|k11");
    /* Entries by reference after next keys: t = 3 is entry 0, t = 4
     * entry 1. */
    cr_expect_eq(decode_hand_made(3, 4,
                                  BODY(FIRST(0xa2, 'k', '9'), 0x11, 0x00, 0x01,
                                       0x11, 0x03, 0x01, 0x11, 0x04, 0x01),
                                  keys, sizeof keys),
                 CVG_DONE);
    cr_expect_str_eq(keys, "k9|k10|k9|k10");
    /* A key-only entry (t = 1) and three names (t = 2) as in version 2,
     * one higher. */
    cr_expect_eq(
        decode_hand_made(
            3, 3,
            BODY(FIRST(0xa2, 'k', '9'), 0x11, 0x01, 0x01, 0xa1, 'x', 0x01, 0x11,
                 0x02, 0x00, 0xa1, 'd', 0x00, 0xa1, 'y', 0x00, 0xa1, 'f', 0x01),
            keys, sizeof keys),
        CVG_DONE);
    cr_expect_str_eq(keys, "k9|kx|y");
}

Test(block_v3, broken_next_keys_are_corrupt)
{
    /* A next key with no entry before it. */
    cr_expect_eq(decode_hand_made(3, 1, BODY(0x01, 0x00, 0x01), NULL, 0),
                 CVG_ECORRUPT);
    /* After a key that does not end in a digit. */
    cr_expect_eq(decode_hand_made(
                     3, 2, BODY(FIRST(0xa1, 'k'), 0x11, 0x00, 0x01), NULL, 0),
                 CVG_ECORRUPT);
    /* A reference past the dictionary: t = 4 with one entry. */
    cr_expect_eq(
        decode_hand_made(3, 2, BODY(FIRST(0xa2, 'k', '9'), 0x11, 0x04, 0x01),
                         NULL, 0),
        CVG_ECORRUPT);
    cr_expect_eq(
        decode_hand_made(3, 2, BODY(FIRST(0xa2, 'k', '9'), 0x11, 0x03, 0x01),
                         NULL, 0),
        CVG_DONE);
}

/* A version 2 block keeps its own references: t = 0 is a key-only entry
 * (not a next key), t = 2 entry 0, and t = 3 with one entry is past the
 * dictionary. */
Test(block_v3, version_2_references_read_as_they_were)
{
    char keys[256];
    cr_expect_eq(decode_hand_made(2, 2,
                                  BODY(0x01, 0x01, 0x00, 0xa1, 'c', 0x00, 0xa2,
                                       'k', '9', 0x00, 0xa1, 'f', 0x01, 0x11,
                                       0x00, 0x01, 0xa1, 'x', 0x01),
                                  keys, sizeof keys),
                 CVG_DONE);
    cr_expect_str_eq(keys, "k9|kx");
    cr_expect_eq(
        decode_hand_made(2, 2,
                         BODY(0x01, 0x01, 0x00, 0xa1, 'c', 0x00, 0xa2, 'k', '9',
                              0x00, 0xa1, 'f', 0x01, 0x11, 0x02, 0x01),
                         keys, sizeof keys),
        CVG_DONE);
    cr_expect_str_eq(keys, "k9|k9");
    cr_expect_eq(
        decode_hand_made(2, 2,
                         BODY(0x01, 0x01, 0x00, 0xa1, 'c', 0x00, 0xa2, 'k', '9',
                              0x00, 0xa1, 'f', 0x01, 0x11, 0x03, 0x01),
                         NULL, 0),
        CVG_ECORRUPT);
}

/* ---- What the writer makes of it ----------------------------------------- */

/* Encode register sets of value i on keys "item-%05zu" (@p padded) or
 * "k%zu" of i * @p step (in
 * collection "stock", field "name", clocks ticking by one), decode, compare
 * every key; the block's size. */
static size_t
encode_keys(bool padded, size_t n, size_t step)
{
    cvg_replica_id me;
    memset(me.bytes, 0x42, sizeof me.bytes);
    char(*keys)[32] = calloc(n, 32);
    cvg__op *ops = calloc(n, sizeof *ops);
    cvg__block_writer w = {0};
    cr_assert_eq(cvg__block_begin(&w, &me, 1), CVG_OK);
    for (size_t i = 0; i < n; i++) {
        if (padded) {
            snprintf(keys[i], 32, "item-%05zu", i * step);
        } else {
            snprintf(keys[i], 32, "k%zu", i * step);
        }
        cvg__op *op = &ops[i];
        op->pub.dot.origin = me;
        op->pub.dot.seq = i + 1;
        op->pub.hlc = 0x10000 + i;
        op->pub.kind = CVG_OP_REGISTER_SET;
        op->pub.collection = (cvg_bytes){(const uint8_t *)"stock", 5};
        op->pub.key = (cvg_bytes){(const uint8_t *)keys[i], strlen(keys[i])};
        op->pub.field = (cvg_bytes){(const uint8_t *)"name", 4};
        op->pub.value = cvg_value_int((int64_t)i);
        cr_assert_eq(cvg__block_add(&w, op), CVG_OK, "op %zu", i);
    }
    cvg_bytes b;
    cr_assert_eq(cvg__block_finish(&w, &b), CVG_OK);
    cr_assert_eq(b.data[0], BLOCK_VERSION);
    cvg__block_reader r = {0};
    cr_assert_eq(cvg__block_open_received(&r, b.data, b.len), CVG_OK);
    cvg__op op;
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(cvg__block_next(&r, &op), CVG_OK, "op %zu", i);
        cr_assert(op.pub.key.len == ops[i].pub.key.len &&
                      memcmp(op.pub.key.data, keys[i], op.pub.key.len) == 0,
                  "op %zu: '%.*s', not '%s'", i, (int)op.pub.key.len,
                  (const char *)op.pub.key.data, keys[i]);
        cr_assert_eq(op.pub.value.as.integer, (int64_t)i);
    }
    cr_assert_eq(cvg__block_next(&r, &op), CVG_DONE);
    cvg__block_reader_destroy(&r);
    size_t len = b.len;
    cvg__block_writer_destroy(&w);
    free(keys);
    free(ops);
    return len;
}

Test(block_v3, numbered_keys_cost_a_byte_of_name_each)
{
    enum { N = 1000 };
    /* head, t, and a 1-3 byte value: at most 5 bytes an op. */
    size_t len = encode_keys(true, N, 1);
    cr_expect_lt(len, N * 5, "%zu bytes for %d ops", len, N);
    /* Keys without leading zeros cross 9 -> 10 -> 100 the same way. */
    len = encode_keys(false, N, 1);
    cr_expect_lt(len, N * 5, "%zu bytes for %d ops", len, N);
    /* Keys counting by two are not next keys: prefix-coded as before
     * (head, t, p, a 2-byte rest, the value). */
    len = encode_keys(true, N, 2);
    cr_expect_gt(len, N * 6, "%zu bytes for %d ops", len, N);
}

/* ---- Random runs ---------------------------------------------------------- */

static uint64_t
rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Random blocks of register sets whose keys mostly count on from the last
 * (through nines and leading zeros), and sometimes jump, lose their number
 * or change collection or field: every key must read back as written, from
 * a block a peer could send (the whole-names bound on). */
Test(block_v3, random_runs_of_keys_read_back)
{
    enum { BLOCKS = 200, OPS = 300 };
    static const char *const colls[] = {"c", "inventory", "c2"};
    static const char *const fields[] = {"v", "count", "v1"};
    uint64_t seed = 0x9e3779b97f4a7c15u;
    cvg_replica_id me;
    memset(me.bytes, 0x5a, sizeof me.bytes);
    char(*keys)[40] = calloc(OPS, 40);
    cvg__op *ops = calloc(OPS, sizeof *ops);
    for (int b = 0; b < BLOCKS; b++) {
        cvg__block_writer w = {0};
        cr_assert_eq(cvg__block_begin(&w, &me, 1), CVG_OK);
        unsigned coll = 0, field = 0;
        for (size_t i = 0; i < OPS; i++) {
            uint64_t r = rnd(&seed);
            if (i == 0 || r % 17 == 0) {
                /* A fresh numbered key, at times with leading zeros or
                 * just below a power of ten. */
                unsigned long long n =
                    r % 3 == 0 ? 99 + (r >> 8) % 2 : (r >> 8) % 100000;
                switch ((r >> 4) % 3) {
                case 0:
                    snprintf(keys[i], 40, "k%llu", n);
                    break;
                case 1:
                    snprintf(keys[i], 40, "item-%05llu", n);
                    break;
                default:
                    snprintf(keys[i], 40, "x%llu", n);
                    break;
                }
            } else if (r % 23 == 0) {
                snprintf(keys[i], 40, "name%c", (char)('a' + r % 26));
            } else {
                uint8_t next[CVG_NAME_MAX + 1];
                size_t n = block_key_next((const uint8_t *)keys[i - 1],
                                          strlen(keys[i - 1]), next);
                if (n == 0 || n >= 40) {
                    snprintf(keys[i], 40, "k%zu", i);
                } else {
                    memcpy(keys[i], next, n);
                    keys[i][n] = '\0';
                }
            }
            if (r % 31 == 0) {
                coll = (unsigned)((r >> 12) % 3);
            }
            if (r % 37 == 0) {
                field = (unsigned)((r >> 16) % 3);
            }
            cvg__op *op = &ops[i];
            memset(op, 0, sizeof *op);
            op->pub.dot.origin = me;
            op->pub.dot.seq = i + 1;
            op->pub.hlc = 0x10000 + i * (1 + r % 2);
            op->pub.kind = CVG_OP_REGISTER_SET;
            op->pub.collection =
                (cvg_bytes){(const uint8_t *)colls[coll], strlen(colls[coll])};
            op->pub.key =
                (cvg_bytes){(const uint8_t *)keys[i], strlen(keys[i])};
            op->pub.field = (cvg_bytes){(const uint8_t *)fields[field],
                                        strlen(fields[field])};
            op->pub.value = cvg_value_int((int64_t)(r % 1000));
            cr_assert_eq(cvg__block_add(&w, op), CVG_OK, "block %d op %zu", b,
                         i);
        }
        cvg_bytes blk;
        cr_assert_eq(cvg__block_finish(&w, &blk), CVG_OK);
        cvg__block_reader rd = {0};
        cr_assert_eq(cvg__block_open_received(&rd, blk.data, blk.len), CVG_OK,
                     "block %d", b);
        cvg__op got;
        for (size_t i = 0; i < OPS; i++) {
            cr_assert_eq(cvg__block_next(&rd, &got), CVG_OK, "block %d op %zu",
                         b, i);
            const cvg_op *want = &ops[i].pub;
            cr_assert(got.pub.key.len == want->key.len &&
                          memcmp(got.pub.key.data, want->key.data,
                                 want->key.len) == 0,
                      "block %d op %zu: '%.*s', not '%s'", b, i,
                      (int)got.pub.key.len, (const char *)got.pub.key.data,
                      keys[i]);
            cr_assert(got.pub.collection.len == want->collection.len &&
                      memcmp(got.pub.collection.data, want->collection.data,
                             want->collection.len) == 0);
            cr_assert(got.pub.field.len == want->field.len &&
                          memcmp(got.pub.field.data, want->field.data,
                                 want->field.len) == 0,
                      "block %d op %zu: field", b, i);
            cr_assert_eq(got.pub.hlc, want->hlc);
            cr_assert_eq(got.pub.value.as.integer, want->value.as.integer);
        }
        cr_assert_eq(cvg__block_next(&rd, &got), CVG_DONE);
        cvg__block_reader_destroy(&rd);
        cvg__block_writer_destroy(&w);
    }
    free(keys);
    free(ops);
}
