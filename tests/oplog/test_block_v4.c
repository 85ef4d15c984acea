/*
 * Version 4 of the op block format: a run may repeat its head op (R = 1),
 * so that a commit's increments of one counter cost a few bytes in all,
 * and a block holds at most OPS_PER_BYTE ops per byte after its header.
 * What the writer makes of runs of increments, random mixes of ops read
 * back op for op (from a peer, with every bound on), and hand-made blocks
 * that use repeats and break their rules.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "oplog/block_format.h"
#include "testutil.h"

static cvg_replica_id
origin_of(uint8_t b)
{
    cvg_replica_id id;
    memset(id.bytes, b, sizeof id.bytes);
    return id;
}

static cvg_bytes
name(const char *s)
{
    return (cvg_bytes){(const uint8_t *)s, strlen(s)};
}

/* A counter add of @p delta to c/k/@p field at @p hlc, seq @p seq. */
static cvg__op
add_op(const cvg_replica_id *me, uint64_t seq, uint64_t hlc, const char *field,
       int64_t delta)
{
    cvg__op op;
    memset(&op, 0, sizeof op);
    op.pub.dot.origin = *me;
    op.pub.dot.seq = seq;
    op.pub.hlc = hlc;
    op.pub.kind = CVG_OP_COUNTER_ADD;
    op.pub.collection = name("c");
    op.pub.key = name("k");
    op.pub.field = name(field);
    op.pub.delta = delta;
    op.pub.value = cvg_value_nil();
    return op;
}

/* Write @p n ops into one block (into @p w, which keeps the bytes). */
static cvg_bytes
write_block(cvg__block_writer *w, const cvg__op *ops, size_t n)
{
    cr_assert_eq(
        cvg__block_begin(w, &ops[0].pub.dot.origin, ops[0].pub.dot.seq),
        CVG_OK);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(cvg__block_add(w, &ops[i]), CVG_OK, "op %zu", i);
    }
    cvg_bytes b;
    cr_assert_eq(cvg__block_finish(w, &b), CVG_OK);
    cr_assert_eq(b.data[0], BLOCK_VERSION);
    return b;
}

/* Read @p b as a peer's block and compare every op with @p ops. */
static void
expect_reads_as(cvg_bytes b, const cvg__op *ops, size_t n)
{
    cvg__block_reader r = {0};
    cr_assert_eq(cvg__block_open_received(&r, b.data, b.len), CVG_OK);
    cr_assert_eq(r.count, n);
    cvg__op op;
    for (size_t i = 0; i < n; i++) {
        const cvg_op *want = &ops[i].pub;
        cr_assert_eq(cvg__block_next(&r, &op), CVG_OK, "op %zu", i);
        cr_assert_eq(op.pub.kind, want->kind, "op %zu", i);
        cr_assert_eq(op.pub.dot.seq, want->dot.seq, "op %zu", i);
        cr_assert_eq(op.pub.hlc, want->hlc, "op %zu", i);
        cr_assert(op.pub.field.len == want->field.len &&
                      memcmp(op.pub.field.data, want->field.data,
                             want->field.len) == 0,
                  "op %zu: field", i);
        if (want->kind == CVG_OP_COUNTER_ADD) {
            cr_assert_eq(op.pub.delta, want->delta, "op %zu", i);
        } else {
            cr_assert_eq(op.pub.value.as.integer, want->value.as.integer,
                         "op %zu", i);
        }
    }
    cr_assert_eq(cvg__block_next(&r, &op), CVG_DONE);
    cvg__block_reader_destroy(&r);
}

/* The bytes after the header: 1 + 18 bytes of version and origin, then
 * first seq, count and time, each in its smallest msgpack form. */
static size_t
body_bytes(cvg_bytes b)
{
    cvg__block_reader r = {0};
    cr_assert_eq(cvg__block_open(&r, b.data, b.len), CVG_OK);
    size_t body = (size_t)(r.end - r.p);
    cvg__block_reader_destroy(&r);
    return body;
}

Test(block_v4, a_commit_of_increments_costs_a_few_bytes)
{
    enum { N = 1000 };
    cvg_replica_id me = origin_of(0x31);
    static cvg__op ops[N];
    for (size_t i = 0; i < N; i++) {
        ops[i] = add_op(&me, 1 + i, 0x10000 + i, "n", 1);
    }
    cvg__block_writer w = {0};
    cvg_bytes b = write_block(&w, ops, N);
    /* A header, the first op with its names, then one run: head, count,
     * delta. Version 3 took a byte an op. */
    cr_expect_leq(b.len, 48, "%zu bytes", b.len);
    expect_reads_as(b, ops, N);
    cvg__block_writer_destroy(&w);
}

Test(block_v4, a_long_run_keeps_to_its_ops_per_byte)
{
    enum { N = 4096 };
    cvg_replica_id me = origin_of(0x32);
    static cvg__op ops[N];
    for (size_t i = 0; i < N; i++) {
        ops[i] = add_op(&me, 1 + i, 0x10000 + i, "n", 1);
    }
    cvg__block_writer w = {0};
    cvg_bytes b = write_block(&w, ops, N);
    size_t body = body_bytes(b);
    cr_expect_leq(N, body * OPS_PER_BYTE, "%d ops in %zu bytes", N, body);
    /* ... and no more bytes than that bound asks, give or take a run. */
    cr_expect_leq(body, N / OPS_PER_BYTE + 24, "%zu bytes", body);
    expect_reads_as(b, ops, N);
    cvg__block_writer_destroy(&w);
}

/* Random mixes: increments of a few deltas on a few fields, the clock
 * ticking, standing still or jumping, and register sets between them.
 * Every op must read back as written, from a peer. */
Test(block_v4, random_mixes_of_repeats_read_back)
{
    enum { BLOCKS = 300, MAXOPS = 600 };
    static const char *const fields[] = {"n", "m", "views"};
    static const int64_t deltas[] = {1, 1, 1, 1, 2, -1, 1000000007};
    uint64_t seed = cvg_test_seed(0x5eed4004u);
    cvg_replica_id me = origin_of(0x33);
    static cvg__op ops[MAXOPS];
    size_t repeats_seen = 0;
    for (int blk = 0; blk < BLOCKS; blk++) {
        size_t n = 1 + cvg_test_rand(&seed) % MAXOPS;
        uint64_t hlc = 0x20000, run_field = 0;
        int64_t run_delta = 1;
        for (size_t i = 0; i < n; i++) {
            uint64_t r = cvg_test_rand(&seed);
            /* Mostly long runs of one field and delta, as apps make. */
            if (r % 97 == 0) {
                run_field = (r >> 8) % 3;
            }
            if (r % 89 == 0) {
                run_delta = deltas[(r >> 12) % 7];
            }
            hlc += r % 101 == 0 ? (r >> 16) % 100000 : r % 103 == 0 ? 0 : 1;
            ops[i] = add_op(&me, 1 + i, hlc, fields[run_field], run_delta);
            if (r % 151 == 0) {
                ops[i].pub.kind = CVG_OP_REGISTER_SET;
                ops[i].pub.delta = 0;
                ops[i].pub.value = cvg_value_int((int64_t)(r >> 20));
            }
        }
        cvg__block_writer w = {0};
        cvg_bytes b = write_block(&w, ops, n);
        repeats_seen += b.len < n ? 1 : 0;
        cr_assert_leq(n, body_bytes(b) * OPS_PER_BYTE, "block %d", blk);
        expect_reads_as(b, ops, n);
        cvg__block_writer_destroy(&w);
    }
    cr_expect_gt(repeats_seen, BLOCKS / 2, "repeats were written");
}

/* ---- Hand-made blocks ---------------------------------------------------- */

/* The header of a hand-made block: version, origin, first seq, count (one
 * byte), first time. */
#define HEAD_BYTES 22u

/* Write a block of @p version with @p count ops by origin 0xa0.. from seq
 * 1 at time 5, then @p body, to @p p (HEAD_BYTES + @p body_len bytes);
 * returns its length. */
static size_t
hand_made(uint8_t *p, unsigned version, unsigned count, const uint8_t *body,
          size_t body_len)
{
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
    return n + body_len;
}

/* Open a block of @p version with @p count ops by origin 0xa0.. from seq 1
 * at time 5, then @p body, and read it all: the first error, CVG_DONE when
 * it all reads. The deltas and times read go to @p deltas and @p hlcs
 * (each may be NULL; at most @p count). */
static int
read_hand_made(unsigned version, unsigned count, const uint8_t *body,
               size_t body_len, int64_t *deltas, uint64_t *hlcs)
{
    uint8_t *p = malloc(HEAD_BYTES + body_len);
    size_t n = hand_made(p, version, count, body, body_len);
    cvg__block_reader r = {0};
    int rc = cvg__block_open_received(&r, p, n);
    cvg__op op;
    for (size_t i = 0; rc == CVG_OK; i++) {
        rc = cvg__block_next(&r, &op);
        if (rc == CVG_OK && deltas != NULL) {
            deltas[i] = op.pub.delta;
        }
        if (rc == CVG_OK && hlcs != NULL) {
            hlcs[i] = op.pub.hlc;
        }
    }
    cvg__block_reader_destroy(&r);
    free(p);
    return rc;
}

#define BODY(...) \
    ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

/* The first op: a counter add of 1 on a new entry of three names (t = 2)
 * "c", "k", "f". */
#define FIRST \
    0x01, 0x02, 0x00, 0xa1, 'c', 0x00, 0xa1, 'k', 0x00, 0xa1, 'f', 0x01

/* Counter add with SAME, TICK and RUN. */
#define ADD_RUN 0x59

Test(block_v4, hand_made_repeats_read)
{
    int64_t deltas[8];
    uint64_t hlcs[8];
    /* The first op, then a run of 1 + 3 ops of -2 (2c + R = 7). */
    cr_assert_eq(
        read_hand_made(4, 5, BODY(FIRST, ADD_RUN, 7, 0xfe), deltas, hlcs),
        CVG_DONE);
    static const int64_t want[] = {1, -2, -2, -2, -2};
    for (int i = 0; i < 5; i++) {
        cr_expect_eq(deltas[i], want[i], "op %d", i);
        cr_expect_eq(hlcs[i], 5u + (uint64_t)i, "op %d", i);
    }
    /* R = 0: the run's ops each carry their delta, as in version 3. */
    cr_assert_eq(
        read_hand_made(4, 3, BODY(FIRST, ADD_RUN, 2, 0x03, 0x04), deltas, NULL),
        CVG_DONE);
    cr_expect(deltas[1] == 3 && deltas[2] == 4);
    /* 127 ops in 16 bytes (a run of 126, 2c + R = 251): within 64 a
     * byte. */
    cr_expect_eq(read_hand_made(4, 127, BODY(FIRST, ADD_RUN, 0xcc, 251, 0x01),
                                NULL, NULL),
                 CVG_DONE);
}

Test(block_v4, broken_repeats_are_corrupt)
{
    /* A repeat of a register set (SAME, TICK, NODOTS, RUN), each op with
     * its value, as if the mark were not there: a block reads one way. */
    cr_expect_eq(
        read_hand_made(4, 3, BODY(FIRST, 0x7a, 0x03, 0xa1, 'v', 0xa1, 'w'),
                       NULL, NULL),
        CVG_ECORRUPT);
    /* A repeat without TICK, each op with its time item (+1). */
    cr_expect_eq(read_hand_made(4, 3, BODY(FIRST, 0x49, 0x03, 0x02, 0x01, 0x02),
                                NULL, NULL),
                 CVG_ECORRUPT);
    /* A run of more ops than the block has left. */
    cr_expect_eq(
        read_hand_made(4, 4, BODY(FIRST, ADD_RUN, 9, 0x01), NULL, NULL),
        CVG_ECORRUPT);
    /* A run of none (c = 0, R = 1). */
    cr_expect_eq(
        read_hand_made(4, 2, BODY(FIRST, ADD_RUN, 1, 0x01), NULL, NULL),
        CVG_ECORRUPT);
    /* Fewer ops than the header says, and more. */
    cr_expect_eq(
        read_hand_made(4, 6, BODY(FIRST, ADD_RUN, 7, 0x01), NULL, NULL),
        CVG_ECORRUPT);
    cr_expect_eq(
        read_hand_made(4, 4, BODY(FIRST, ADD_RUN, 7, 0x01), NULL, NULL),
        CVG_ECORRUPT);
    /* Version 3 has no repeats: 7 is a run of 7, past the count. */
    cr_expect_eq(
        read_hand_made(3, 5, BODY(FIRST, ADD_RUN, 7, 0x01), NULL, NULL),
        CVG_ECORRUPT);
}

/* Only the header's bounds: whether a block of @p version with @p count
 * ops and a body of @p body_len bytes opens. */
static int
open_hand_made(unsigned version, unsigned count, size_t body_len)
{
    uint8_t body[128], p[HEAD_BYTES + sizeof body];
    cr_assert_leq(body_len, sizeof body);
    memset(body, 0x01, body_len);
    size_t n = hand_made(p, version, count, body, body_len);
    cvg__block_reader r = {0};
    int rc = cvg__block_open_received(&r, p, n);
    cvg__block_reader_destroy(&r);
    return rc;
}

Test(block_v4, a_small_block_cannot_stand_for_many_ops)
{
    /* Version 4: at most 64 ops a byte after the header. */
    cr_expect_eq(open_hand_made(4, 64, 1), CVG_OK);
    cr_expect_eq(open_hand_made(4, 65, 1), CVG_ECORRUPT);
    cr_expect_eq(open_hand_made(4, 127, 1), CVG_ECORRUPT);
    cr_expect_eq(open_hand_made(4, 127, 2), CVG_OK);
    /* Version 3: at most one. */
    cr_expect_eq(open_hand_made(3, 16, 16), CVG_OK);
    cr_expect_eq(open_hand_made(3, 17, 16), CVG_ECORRUPT);
}
