/*
 * Sync messages: every type round trips field by field with edge values and
 * re-encodes to the same bytes, random messages from a seed do too; the
 * bytes of the layout stay fixed; truncated, padded, bit-flipped, hostile
 * and random inputs are refused without a crash or a large allocation; and
 * a failed allocation leaves the scratch and the output buffer usable.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "sync/wire.h"
#include "testutil.h"

/* ---- Helpers ----------------------------------------------------------- */

/* The protocol version as the first byte of the fixed messages below. */
#define PV 0x09
_Static_assert(PV == CVG_PROTOCOL_VERSION,
               "the fixed bytes are of another "
               "version: update them");

/* Ids that sort by @p k: big-endian k, then a filler. */
static cvg_replica_id
mkid(uint64_t k)
{
    cvg_replica_id id;
    cvg__put_be64(id.bytes, k);
    memset(id.bytes + 8, 0x5a, 8);
    return id;
}

static cvg__msg
msg_of(cvg__msg_type type)
{
    cvg__msg m;
    memset(&m, 0, sizeof m);
    m.type = type;
    m.version = CVG_PROTOCOL_VERSION;
    /* Fixed bytes for the fields HELLO and PROVE must carry; the layout
     * tests below count them (HELLO_ID_BYTES). */
    static const uint8_t key[64] = {0x5a};
    m.pk = key;
    m.nonce = key + 32;
    m.sig = key;
    /* History heads for up to the most entries a VV may hold, and its
     * digest. */
    static uint8_t heads[(CVG__MSG_VV_MAX + 1) * CVG__HEAD_BYTES];
    m.heads = heads;
    m.vv_digest = key;
    m.fork.seq = 1;
    m.fork_head = key;
    return m;
}

/* What HELLO holds between its id and its flags: public key (bin 32),
 * inc (an empty bin), challenge (bin 32), log end 0 (one byte). */
#define HELLO_ID_BYTES (34 + 2 + 34 + 1)

static bool
bytes_eq(cvg_bytes a, cvg_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

static bool
id_eq(const cvg_replica_id *a, const cvg_replica_id *b)
{
    return memcmp(a->bytes, b->bytes, 16) == 0;
}

/* The fields @p want's type carries are equal in @p got. */
static void
expect_msg_eq(const cvg__msg *got, const cvg__msg *want)
{
    cr_expect_eq(got->type, want->type, "type %d != %d", got->type, want->type);
    cr_expect_eq(got->version, want->version);
    if (got->type != want->type) {
        return;
    }
    switch (want->type) {
    case CVG__MSG_PROVE:
        cr_expect_eq(memcmp(got->sig, want->sig, CVG__SIG_BYTES), 0);
        break;
    case CVG__MSG_FORK:
        cr_expect(id_eq(&got->fork.origin, &want->fork.origin), "fork id");
        cr_expect_eq(got->fork.seq, want->fork.seq);
        cr_expect_eq(got->fork_want, want->fork_want);
        cr_expect_eq(memcmp(got->fork.sig, want->fork.sig, CVG__SIG_BYTES), 0);
        cr_expect_eq(memcmp(got->fork_head, want->fork_head, CVG__DIGEST_BYTES),
                     0);
        break;
    case CVG__MSG_HELLO:
        cr_expect(id_eq(&got->id, &want->id), "hello id");
        cr_expect_eq(memcmp(got->pk, want->pk, CVG_PUBLIC_KEY_BYTES), 0);
        cr_expect_eq(memcmp(got->nonce, want->nonce, CVG__NONCE_BYTES), 0);
        cr_expect(bytes_eq(got->inc, want->inc), "hello inc");
        cr_expect_eq(got->log_end, want->log_end);
        cr_expect_eq(got->flags, want->flags);
        break;
    case CVG__MSG_VV:
        cr_expect_eq(got->vv_at, want->vv_at);
        cr_expect_eq(got->vv_base, want->vv_base);
        cr_expect_eq(got->vv_total, want->vv_total);
        cr_expect_eq(got->has_more, want->has_more);
        cr_expect_eq(
            memcmp(got->vv_digest, want->vv_digest, CVG__VV_DIGEST_BYTES), 0);
        cr_expect_eq(got->vv_n, want->vv_n, "vv_n %zu != %zu", got->vv_n,
                     want->vv_n);
        for (size_t i = 0; i < want->vv_n && i < got->vv_n; i++) {
            cr_expect(id_eq(&got->vv[i].origin, &want->vv[i].origin),
                      "vv[%zu] origin", i);
            cr_expect_eq(got->vv[i].seq, want->vv[i].seq, "vv[%zu] seq", i);
            cr_expect_eq(
                memcmp(got->heads + i * CVG__HEAD_BYTES,
                       want->heads + i * CVG__HEAD_BYTES, CVG__HEAD_BYTES),
                0, "vv[%zu] head", i);
        }
        break;
    case CVG__MSG_HAVE:
        cr_expect_eq(got->log_end, want->log_end);
        cr_expect_eq(got->token, want->token);
        break;
    case CVG__MSG_VV_WANT:
        break;
    case CVG__MSG_PULL:
        cr_expect_eq(got->cursor, want->cursor);
        cr_expect_eq(got->max_ops, want->max_ops);
        cr_expect_eq(got->max_bytes, want->max_bytes);
        break;
    case CVG__MSG_OPS:
    case CVG__MSG_PUSH:
        if (want->type == CVG__MSG_OPS) {
            cr_expect_eq(got->next_cursor, want->next_cursor);
            cr_expect_eq(got->has_more, want->has_more);
        }
        cr_expect_eq(got->n_blocks, want->n_blocks, "n_blocks %zu != %zu",
                     got->n_blocks, want->n_blocks);
        for (size_t i = 0; i < want->n_blocks && i < got->n_blocks; i++) {
            cr_expect(bytes_eq(got->blocks[i], want->blocks[i]), "block %zu",
                      i);
        }
        cr_expect_eq(got->n_points, want->n_points);
        for (size_t i = 0; i < want->n_points && i < got->n_points; i++) {
            const cvg__point *a = &got->points[i], *b = &want->points[i];
            cr_expect(id_eq(&a->origin, &b->origin), "point %zu origin", i);
            cr_expect_eq(a->seq, b->seq);
            cr_expect_eq(memcmp(a->sig, b->sig, CVG__SIG_BYTES), 0);
            cr_expect_eq(a->has_key, b->has_key);
            cr_expect_eq(a->inc_len, b->inc_len);
            if (b->has_key) {
                cr_expect_eq(memcmp(a->pk, b->pk, 32), 0);
            }
        }
        break;
    case CVG__MSG_ACK:
        cr_expect_eq(got->has_more, want->has_more);
        cr_expect_eq(got->token, want->token);
        cr_expect_eq(got->n_ranges, want->n_ranges);
        for (size_t i = 0; i < want->n_ranges && i < got->n_ranges; i++) {
            const cvg__ack_range *a = &got->ranges[i], *b = &want->ranges[i];
            cr_expect(id_eq(&a->origin, &b->origin), "range %zu origin", i);
            cr_expect_eq(a->lo, b->lo, "range %zu lo", i);
            cr_expect_eq(a->hi, b->hi, "range %zu hi", i);
            cr_expect_eq(a->result, b->result, "range %zu result", i);
        }
        break;
    case CVG__MSG_ERROR:
        cr_expect_eq(got->code, want->code);
        cr_expect(bytes_eq(got->text, want->text), "error text");
        break;
    }
}

/* Encode @p m into @p b (emptied first). */
static void
encode_ok(const cvg__msg *m, cvg__buf *b)
{
    b->len = 0;
    int rc = cvg__msg_encode(m, b);
    cr_assert_eq(rc, CVG_OK, "encode: %s", cvg_errname(rc));
}

/* Decode @p m's encoding, compare, and re-encode to the same bytes. */
static void
roundtrip(const cvg__msg *m)
{
    cvg__buf b = {0}, b2 = {0};
    cvg__msg_scratch s = {0};
    cvg__msg got;
    encode_ok(m, &b);
    int rc = cvg__msg_decode(b.p, b.len, &got, &s);
    cr_assert_eq(rc, CVG_OK, "decode: %s", cvg_errname(rc));
    expect_msg_eq(&got, m);
    encode_ok(&got, &b2);
    cr_expect(b.len == b2.len && memcmp(b.p, b2.p, b.len) == 0,
              "re-encoding differs");
    cvg__buf_free(&b);
    cvg__buf_free(&b2);
    cvg__msg_scratch_destroy(&s);
}

/* Decode hostile bytes with a fresh scratch. An accepted input must be the
 * canonical encoding of what it decoded to, and no input may make the
 * decoder allocate more than a small multiple of its length. */
static int
decode_any(const uint8_t *p, size_t len)
{
    cvg__msg_scratch s = {0};
    cvg__msg m;
    int rc = cvg__msg_decode(p, len, &m, &s);
    cr_assert(rc == CVG_OK || rc == CVG_ECORRUPT || rc == CVG_EVERSION,
              "unexpected %s", cvg_errname(rc));
    size_t bound = 8 + 2 * len;
    cr_assert(
        s.vv_cap <= bound && s.blocks_cap <= bound && s.ranges_cap <= bound,
        "scratch grew past the input (%zu bytes)", len);
    if (rc == CVG_OK) {
        cvg__buf b = {0};
        encode_ok(&m, &b);
        cr_assert(b.len == len && memcmp(b.p, p, len) == 0,
                  "accepted a non-canonical encoding");
        cvg__buf_free(&b);
    } else if (rc == CVG_EVERSION) {
        cr_assert_neq(m.version, CVG_PROTOCOL_VERSION);
    }
    cvg__msg_scratch_destroy(&s);
    return rc;
}

/* One message of each type with some content, shared by several tests.
 * Arrays are static: the messages point into them. */
#define SAMPLE_N 8
static cvg_dot sample_vv[3];
static cvg_bytes sample_blocks[3];
static uint8_t sample_block_bytes[300];
static cvg__ack_range sample_ranges[3];

static cvg__msg
sample(int i)
{
    for (int k = 0; k < 3; k++) {
        sample_vv[k].origin = mkid((uint64_t)k * 1000 + 1);
        sample_vv[k].seq = (uint64_t)1 << (k * 20);
    }
    /* Here already, then taken, of one origin; a refusal of another. */
    sample_ranges[0] = (cvg__ack_range){mkid(75), 300, 301, CVG__ACK_DUPLICATE};
    sample_ranges[1] =
        (cvg__ack_range){mkid(75), 302, (uint64_t)1 << 40, CVG__ACK_TAKEN};
    sample_ranges[2] = (cvg__ack_range){mkid(77), 7, 7, -200000};
    for (int k = 0; k < 3; k++) {
    }
    for (size_t k = 0; k < sizeof sample_block_bytes; k++) {
        sample_block_bytes[k] = (uint8_t)(k * 31 + 7);
    }
    /* Blocks in the bin 8 and bin 16 forms. */
    const size_t lens[3] = {1, 40, 259};
    for (int k = 0; k < 3; k++) {
        sample_blocks[k].data = sample_block_bytes + k;
        sample_blocks[k].len = lens[k];
    }
    cvg__msg m;
    switch (i) {
    case 0:
        m = msg_of(CVG__MSG_VV);
        m.vv_at = 1000;
        m.vv_base = 7;
        m.vv_total = 3;
        m.vv = sample_vv;
        m.vv_n = 3;
        return m;
    case 1:
        m = msg_of(CVG__MSG_PULL);
        m.cursor = 123456789;
        m.max_ops = 65536;
        m.max_bytes = 1u << 20;
        return m;
    case 2:
        m = msg_of(CVG__MSG_OPS);
        m.next_cursor = 1u << 31;
        m.has_more = true;
        m.blocks = sample_blocks;
        m.n_blocks = 3;
        return m;
    case 3:
        m = msg_of(CVG__MSG_PUSH);
        m.blocks = sample_blocks;
        m.n_blocks = 3;
        return m;
    case 4:
        m = msg_of(CVG__MSG_ACK);
        m.has_more = true;
        m.ranges = sample_ranges;
        m.n_ranges = 3;
        return m;
    case 5:
        m = msg_of(CVG__MSG_ERROR);
        m.code = CVG_EVERSION;
        m.text.data = (const uint8_t *)"the peer speaks a newer protocol";
        m.text.len = strlen((const char *)m.text.data);
        return m;
    case 6:
        m = msg_of(CVG__MSG_HAVE);
        m.log_end = (uint64_t)1 << 40;
        m.token = UINT64_MAX;
        return m;
    default:
        m = msg_of(CVG__MSG_HELLO);
        m.id = mkid(0xabcdef);
        m.flags = 1;
        return m;
    }
}

/* ---- Round trips ------------------------------------------------------- */

Test(wire, hello_round_trips)
{
    cvg__msg m = msg_of(CVG__MSG_HELLO);
    m.id = mkid(42);
    roundtrip(&m);
    m.flags = UINT32_MAX;
    m.log_end = UINT64_MAX;
    roundtrip(&m);
}

Test(wire, vv_round_trips)
{
    cvg__msg m = msg_of(CVG__MSG_VV);
    roundtrip(&m); /* empty */
    m = msg_of(CVG__MSG_VV_WANT);
    roundtrip(&m);
    m = msg_of(CVG__MSG_VV);
    m.vv_at = UINT64_MAX;
    m.vv_base = UINT64_MAX;
    m.vv_total = UINT64_MAX;
    m.has_more = true;

    static cvg_dot vv[1000];
    for (size_t i = 0; i < 1000; i++) {
        vv[i].origin = mkid(i * 3 + 1);
        /* Seqs of every integer width, up to the largest. */
        vv[i].seq = i == 999 ? UINT64_MAX : ((uint64_t)1 << (i % 64)) + i;
    }
    m.vv = vv;
    m.vv_n = 1000;
    roundtrip(&m);
    m.vv_base = 0;
    m.vv_at = 0;
    m.vv_total = 1;
    m.has_more = false;
    m.vv_n = 1;
    roundtrip(&m);
}

Test(wire, pull_round_trips_edge_cursors)
{
    const uint64_t cursors[] = {
        0,         1,     127,   128,        255,
        256,       65535, 65536, UINT32_MAX, (uint64_t)UINT32_MAX + 1,
        UINT64_MAX};
    const uint32_t limits[] = {0, 1, 300, UINT32_MAX};
    for (size_t i = 0; i < sizeof cursors / sizeof *cursors; i++) {
        for (size_t j = 0; j < 4; j++) {
            cvg__msg m = msg_of(CVG__MSG_PULL);
            m.cursor = cursors[i];
            m.max_ops = limits[j];
            m.max_bytes = limits[3 - j];
            roundtrip(&m);
        }
    }
}

Test(wire, ops_and_push_round_trip_blocks)
{
    /* Many blocks, of sizes at each bin form's edges. */
    const size_t sizes[] = {1, 2, 255, 256, 65535, 65536, 70000};
    size_t nb = 2000;
    cvg_bytes *blocks = calloc(nb, sizeof *blocks);
    uint8_t *bytes = malloc(70000);
    cr_assert(blocks && bytes);
    for (size_t i = 0; i < 70000; i++) {
        bytes[i] = (uint8_t)(i ^ (i >> 8));
    }
    for (size_t i = 0; i < nb; i++) {
        blocks[i].data = bytes + (i % 13);
        blocks[i].len = i < 7 ? sizes[i] : 1 + i % 50;
        if (blocks[i].len + (i % 13) > 70000) {
            blocks[i].data = bytes;
        }
    }
    for (int t = 0; t < 2; t++) {
        cvg__msg m = msg_of(t ? CVG__MSG_PUSH : CVG__MSG_OPS);
        m.has_more = !t;
        m.next_cursor = t ? 0 : UINT64_MAX;
        roundtrip(&m); /* no blocks */
        m.blocks = blocks;
        m.n_blocks = nb;
        roundtrip(&m);
        m.n_blocks = 1;
        m.blocks = blocks + 50; /* one block of 1 byte */
        cr_assert_eq(m.blocks[0].len, 1);
        roundtrip(&m);
    }
    free(blocks);
    free(bytes);
}

Test(wire, ops_round_trips_one_mib_block)
{
    size_t n = (size_t)1 << 20;
    uint8_t *bytes = malloc(n);
    cr_assert(bytes);
    uint64_t st = 5;
    for (size_t i = 0; i < n; i++) {
        bytes[i] = (uint8_t)cvg_test_rand(&st);
    }
    cvg_bytes blk = {bytes, n};
    cvg__msg m = msg_of(CVG__MSG_OPS);
    m.blocks = &blk;
    m.n_blocks = 1;
    m.next_cursor = 77;
    roundtrip(&m);
    free(bytes);
}

Test(wire, blocks_at_the_cap_round_trip)
{
    static cvg_bytes blocks[CVG__MSG_BLOCKS_MAX];
    static const uint8_t one = 9;
    for (size_t i = 0; i < CVG__MSG_BLOCKS_MAX; i++) {
        blocks[i].data = &one;
        blocks[i].len = 1;
    }
    cvg__msg m = msg_of(CVG__MSG_PUSH);
    m.blocks = blocks;
    m.n_blocks = CVG__MSG_BLOCKS_MAX;
    roundtrip(&m);
    m.n_blocks++;
    cvg__buf b = {0};
    cr_expect_eq(cvg__msg_encode(&m, &b), CVG_EINVAL);
    cvg__buf_free(&b);
}

Test(wire, ack_round_trips_ranges)
{
    cvg__msg m = msg_of(CVG__MSG_ACK);
    roundtrip(&m); /* no ranges, the last page */
    m.has_more = true;
    roundtrip(&m);
    /* Results of every kind and integer form, seqs at the edges of each
     * form: per origin, ranges that touch (of other results) or not. */
    const int32_t results[] = {CVG__ACK_TAKEN,
                               CVG__ACK_DUPLICATE,
                               -1,
                               -31,
                               -32,
                               -33,
                               -128,
                               -129,
                               -32768,
                               -32769,
                               INT32_MIN,
                               CVG_ECLOCK};
    const uint64_t edges[] = {1,          127,           128,   255,
                              256,        65535,         65536, UINT32_MAX,
                              1ull << 32, UINT64_MAX - 1};
    static cvg__ack_range g[700];
    size_t n = 0;
    for (uint64_t o = 0; o < 50; o++) {
        uint64_t seq = edges[o % 10];
        for (int k = 0; k < 12 && seq < UINT64_MAX; k++) {
            g[n].origin = mkid(o);
            g[n].lo = seq;
            g[n].hi = k % 3 == 0 ? seq : seq + (seq & 0xff) + 1;
            if (g[n].hi < g[n].lo) {
                g[n].hi = UINT64_MAX;
            }
            g[n].result = results[(o + (uint64_t)k) % 12];
            /* Touching the one before only with another result. */
            if (k > 0 && g[n].result == g[n - 1].result) {
                g[n].result = g[n].result == CVG__ACK_TAKEN ? CVG__ACK_DUPLICATE
                                                            : CVG__ACK_TAKEN;
            }
            seq = g[n].hi >= UINT64_MAX - 2 ? UINT64_MAX
                                            : g[n].hi + 1 + (uint64_t)(k % 2);
            n++;
        }
    }
    g[n++] = (cvg__ack_range){mkid(99), 1, UINT64_MAX, CVG__ACK_DUPLICATE};
    m.ranges = g;
    m.n_ranges = n;
    roundtrip(&m);
}

/* The cap on ranges: at it, fine; one over, refused both ways. */
Test(wire, ack_ranges_at_the_cap_round_trip)
{
    size_t n = CVG__MSG_RANGES_MAX;
    cvg__ack_range *g = calloc(n + 1, sizeof *g);
    cr_assert(g);
    for (size_t i = 0; i <= n; i++) {
        g[i] = (cvg__ack_range){mkid(i / 2), 1 + (i % 2), 1 + (i % 2),
                                (int32_t)(i % 2)};
    }
    cvg__msg m = msg_of(CVG__MSG_ACK);
    m.ranges = g;
    m.n_ranges = n;
    roundtrip(&m);
    m.n_ranges = n + 1;
    cvg__buf b = {0};
    cr_expect_eq(cvg__msg_encode(&m, &b), CVG_EINVAL);
    cr_expect_eq(b.len, 0);
    /* The same bytes with one range more and its count. */
    m.n_ranges = n;
    encode_ok(&m, &b);
    uint8_t count[5] = {0xce};
    cvg__put_be32(count + 1, (uint32_t)n);
    cr_assert_eq(memcmp(b.p + 4, count, 5), 0, "the count at the cap");
    cvg__buf c = {0};
    cr_assert_eq(cvg__buf_append(&c, b.p, b.len), CVG_OK);
    c.p[4 + 4] = 0x01; /* n + 1 */
    cvg__msg one = msg_of(CVG__MSG_ACK);
    one.ranges = &g[n];
    one.n_ranges = 1;
    g[n] = (cvg__ack_range){mkid(n), 1, 1, CVG__ACK_TAKEN};
    cvg__buf tail = {0};
    encode_ok(&one, &tail);
    cr_assert_eq(cvg__buf_append(&c, tail.p + 5, tail.len - 5), CVG_OK);
    cr_expect_eq(decode_any(c.p, c.len), CVG_ECORRUPT);
    /* ... and without the cap it would be a valid message. */
    cvg__msg_scratch sc = {0};
    cvg__msg got;
    c.p[4 + 4] = 0x00;
    c.len -= tail.len - 5;
    cr_expect_eq(cvg__msg_decode(c.p, c.len, &got, &sc), CVG_OK);
    cvg__msg_scratch_destroy(&sc);
    cvg__buf_free(&b);
    cvg__buf_free(&c);
    cvg__buf_free(&tail);
    free(g);
}

Test(wire, error_round_trips_texts)
{
    static char text[CVG__MSG_TEXT_MAX];
    for (size_t i = 0; i < sizeof text; i++) {
        text[i] = (char)('a' + i % 26);
    }
    const size_t lens[] = {0, 1, 31, 32, 255, 256, CVG__MSG_TEXT_MAX};
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        cvg__msg m = msg_of(CVG__MSG_ERROR);
        m.code = i % 2 ? CVG_ECORRUPT : INT32_MIN;
        m.text.data = lens[i] ? (const uint8_t *)text : NULL;
        m.text.len = lens[i];
        roundtrip(&m);
    }
}

Test(wire, samples_round_trip)
{
    for (int i = 0; i < SAMPLE_N; i++) {
        cvg__msg m = sample(i);
        roundtrip(&m);
    }
}

/* A random valid message; arrays live in the caller's storage. */
static cvg__msg
random_msg(uint64_t *st, cvg_dot *vv, cvg_bytes *blocks, uint8_t *pool,
           size_t pool_len, cvg__ack_range *errs, size_t max_n)
{
    /* Integers biased towards the edges of each msgpack form. */
#define RU64()                                      \
    (cvg_test_below(st, 4) == 0 ? cvg_test_rand(st) \
                                : cvg_test_rand(st) >> cvg_test_below(st, 64))
    cvg__msg m = msg_of((cvg__msg_type)(1 + cvg_test_below(st, 11)));
    size_t n = cvg_test_below(st, max_n + 1);
    static cvg__point points[64];
    switch (m.type) {
    case CVG__MSG_PROVE:
        break;
    case CVG__MSG_FORK:
        m.fork.origin = mkid(cvg_test_rand(st));
        m.fork.seq = RU64() | 1;
        m.fork_want = RU64();
        memcpy(m.fork.sig, pool, CVG__SIG_BYTES);
        m.fork_head = pool + 64;
        break;
    case CVG__MSG_HELLO:
        m.id = mkid(cvg_test_rand(st));
        m.log_end = RU64();
        if (cvg_test_below(st, 2) == 0) {
            m.inc.data = pool;
            m.inc.len = CVG__INC_MAX;
        }
        m.flags = (uint32_t)RU64();
        break;
    case CVG__MSG_VV_WANT:
        break;
    case CVG__MSG_VV: {
        m.vv_at = RU64();
        m.vv_base = cvg_test_below(st, 3) == 0 ? 0 : RU64() % (m.vv_at / 2 + 1);
        m.vv_total = n + (cvg_test_below(st, 2) ? 0 : RU64() / 2);
        m.has_more = cvg_test_below(st, 2) != 0;
        m.vv_digest = pool + 200;
        uint64_t k = cvg_test_below(st, 1000);
        for (size_t i = 0; i < n; i++) {
            k += 1 + cvg_test_below(st, 3);
            vv[i].origin = mkid(k);
            /* A random tail: order is decided by the first bytes. */
            vv[i].origin.bytes[15] = (uint8_t)cvg_test_rand(st);
            vv[i].seq = RU64();
            if (vv[i].seq == 0) {
                vv[i].seq = 1;
            }
        }
        m.vv = vv;
        m.vv_n = n;
        break;
    }
    case CVG__MSG_HAVE:
        m.log_end = RU64();
        m.token = RU64();
        break;
    case CVG__MSG_PULL:
        m.cursor = RU64();
        m.max_ops = (uint32_t)RU64();
        m.max_bytes = (uint32_t)RU64();
        break;
    case CVG__MSG_OPS:
    case CVG__MSG_PUSH:
        if (m.type == CVG__MSG_OPS) {
            m.next_cursor = RU64();
            m.has_more = cvg_test_below(st, 2) != 0;
        }
        for (size_t i = 0; i < n; i++) {
            size_t len = 1 + cvg_test_below(
                                 st, cvg_test_below(st, 2) ? 40 : pool_len - 1);
            blocks[i].data = pool + cvg_test_below(st, pool_len - len + 1);
            blocks[i].len = len;
        }
        m.blocks = blocks;
        m.n_blocks = n;
        m.n_points = cvg_test_below(st, 4);
        for (size_t i = 0; i < m.n_points; i++) {
            cvg__point *p = &points[i];
            memset(p, 0, sizeof *p);
            p->origin = mkid(cvg_test_rand(st));
            p->seq = RU64() | 1;
            memcpy(p->sig, pool + i, CVG__SIG_BYTES);
            p->has_key = cvg_test_below(st, 2) != 0;
            if (p->has_key) {
                memcpy(p->pk, pool + 100 + i, 32);
                p->inc_len = cvg_test_below(st, 2) ? CVG__INC_MAX : 0;
            }
        }
        m.points = points;
        break;
    case CVG__MSG_ACK: {
        /* Valid ranges: origins in order, seqs rising within one, and
         * neighbours of one result apart. */
        m.has_more = cvg_test_below(st, 2) != 0;
        uint64_t k = cvg_test_below(st, 1000), seq = 0;
        size_t got = 0;
        for (size_t i = 0; i < n; i++) {
            if (i == 0 || seq >= UINT64_MAX - 2 || cvg_test_below(st, 3) == 0) {
                k += 1 + cvg_test_below(st, 3);
                seq = 0;
            }
            cvg__ack_range *g = &errs[got];
            g->origin = mkid(k);
            uint64_t room = UINT64_MAX - 2 - seq;
            g->lo = seq + 1 + cvg_test_below(st, 2);
            uint64_t len = RU64() % (room / 2 + 1);
            g->hi = g->lo + len;
            uint64_t r = cvg_test_below(st, 3);
            g->result = r < 2 ? (int32_t)r : -(int32_t)(RU64() & INT32_MAX) - 1;
            if (got > 0 &&
                cvg__id_cmp(&errs[got - 1].origin, &g->origin) == 0 &&
                errs[got - 1].hi + 1 == g->lo &&
                errs[got - 1].result == g->result) {
                g->lo++; /* apart */
                if (g->lo > g->hi) {
                    g->hi = g->lo;
                }
            }
            seq = g->hi;
            got++;
        }
        m.ranges = errs;
        m.n_ranges = got;
        m.token = RU64();
        break;
    }
    case CVG__MSG_ERROR: {
        m.code = -(int32_t)(RU64() & INT32_MAX) - 1;
        size_t len = cvg_test_below(st, CVG__MSG_TEXT_MAX + 1);
        m.text.data = len ? pool + cvg_test_below(st, pool_len - len) : NULL;
        m.text.len = len;
        break;
    }
    }
#undef RU64
    return m;
}

Test(wire, random_messages_round_trip)
{
    uint64_t seed = cvg_test_seed(0x3170);
    fprintf(stderr, "wire.random_messages_round_trip: seed %llu\n",
            (unsigned long long)seed);
    uint64_t st = seed;
    enum { MAXN = 40, POOL = 3000 };
    cvg_dot vv[MAXN];
    cvg_bytes blocks[MAXN];
    cvg__ack_range errs[MAXN];
    uint8_t pool[POOL];
    for (size_t i = 0; i < POOL; i++) {
        pool[i] = (uint8_t)cvg_test_rand(&st);
    }
    /* One scratch and one buffer throughout: reuse must not leak views. */
    cvg__msg_scratch s = {0};
    cvg__buf b = {0}, b2 = {0};
    for (int iter = 0; iter < 3000; iter++) {
        cvg__msg m = random_msg(&st, vv, blocks, pool, POOL, errs, MAXN);
        encode_ok(&m, &b);
        cvg__msg got;
        int rc = cvg__msg_decode(b.p, b.len, &got, &s);
        cr_assert_eq(rc, CVG_OK, "iter %d: %s", iter, cvg_errname(rc));
        expect_msg_eq(&got, &m);
        encode_ok(&got, &b2);
        cr_assert(b.len == b2.len && memcmp(b.p, b2.p, b.len) == 0,
                  "iter %d: re-encoding differs", iter);
    }
    cvg__buf_free(&b);
    cvg__buf_free(&b2);
    cvg__msg_scratch_destroy(&s);
}

/* ---- Fixed bytes ------------------------------------------------------- */

static void
expect_bytes(const cvg__msg *m, const uint8_t *want, size_t n)
{
    cvg__buf b = {0};
    encode_ok(m, &b);
    cr_expect_eq(b.len, n, "length %zu != %zu", b.len, n);
    cr_expect(b.len == n && memcmp(b.p, want, n) == 0, "bytes differ");
    cr_expect_eq(decode_any(want, n), CVG_OK);
    cvg__buf_free(&b);
}

Test(wire, layout_bytes_are_fixed)
{
    cvg__msg m = msg_of(CVG__MSG_PULL);
    m.cursor = 1;
    m.max_bytes = 1u << 20;
    const uint8_t pull[] = {PV, 0x02, 0x01, 0x00, 0xce, 0x00, 0x10, 0x00, 0x00};
    expect_bytes(&m, pull, sizeof pull);

    m = msg_of(CVG__MSG_ERROR);
    m.code = CVG_ECORRUPT; /* -3 */
    m.text.data = (const uint8_t *)"x";
    m.text.len = 1;
    const uint8_t err[] = {PV, 0x06, 0xfd, 0xa1, 'x'};
    expect_bytes(&m, err, sizeof err);

    static const uint8_t blk[2] = {0xaa, 0xbb};
    cvg_bytes b = {blk, 2};
    m = msg_of(CVG__MSG_OPS);
    m.next_cursor = 300;
    m.has_more = true;
    m.blocks = &b;
    m.n_blocks = 1;
    const uint8_t ops[] = {PV,   0x03, 0xcd, 0x01, 0x2c, 0xc3,
                           0x01, 0xc4, 0x02, 0xaa, 0xbb, 0x00};
    expect_bytes(&m, ops, sizeof ops);

    m = msg_of(CVG__MSG_PUSH);
    const uint8_t push[] = {PV, 0x04, 0xc2, 0x00, 0x00};
    expect_bytes(&m, push, sizeof push);

    cvg__ack_range e = {mkid(0), 5, 7, -1};
    memset(e.origin.bytes, 0x11, 16);
    m = msg_of(CVG__MSG_ACK);
    m.has_more = true;
    m.ranges = &e;
    m.n_ranges = 1;
    uint8_t ack[7 + 16 + 3] = {PV, 0x05, 0xc3, 0x00, 0x01, 0xc4, 0x10};
    memset(ack + 7, 0x11, 16);
    ack[23] = 0x05;
    ack[24] = 0x07;
    ack[25] = 0xff;
    expect_bytes(&m, ack, sizeof ack);
    m.has_more = false;
    m.n_ranges = 0;
    m.token = 0x0102030405060708u; /* a push round's last: its token */
    const uint8_t last_ack[] = {PV,   0x05, 0xc2, 0xcf, 0x01, 0x02, 0x03,
                                0x04, 0x05, 0x06, 0x07, 0x08, 0x00};
    expect_bytes(&m, last_ack, sizeof last_ack);

    m = msg_of(CVG__MSG_HAVE);
    m.log_end = 5;
    m.token = 9;
    const uint8_t have[] = {PV, 0x09, 0x05, 0x09};
    expect_bytes(&m, have, sizeof have);

    cvg_dot d = {mkid(0), 7};
    memset(d.origin.bytes, 0x22, 16);
    m = msg_of(CVG__MSG_HELLO);
    memset(m.id.bytes, 0x33, 16);
    m.flags = 1;
    uint8_t hello[2 + 18 + HELLO_ID_BYTES + 1] = {PV, 0x01, 0xc4, 0x10};
    memset(hello + 4, 0x33, 16);
    uint8_t *h = hello + 20;
    *h++ = 0xc4;
    *h++ = 0x20;
    memcpy(h, m.pk, 32);
    h += 32;
    *h++ = 0xc4;
    *h++ = 0x00;
    *h++ = 0xc4;
    *h++ = 0x20;
    memcpy(h, m.nonce, 32);
    h += 32;
    *h++ = 0x00; /* log end */
    h[0] = 0x01; /* flags */
    expect_bytes(&m, hello, sizeof hello);

    m = msg_of(CVG__MSG_VV);
    m.vv_at = 9;
    m.vv_total = 1;
    m.vv = &d;
    m.vv_n = 1;
    uint8_t vv[5 + 34 + 2 + 18 + 1 + 18] = {PV,   0x0a, 0x09, 0x00,
                                            0x01, 0xc4, 0x20};
    h = vv + 7;
    memcpy(h, m.vv_digest, 32);
    h += 32;
    *h++ = 0xc2; /* no more */
    *h++ = 0x01;
    *h++ = 0xc4;
    *h++ = 0x10;
    memset(h, 0x22, 16);
    h += 16;
    *h++ = 0x07;
    *h++ = 0xc4; /* the head: the zeros msg_of() points at */
    *h++ = 0x10;
    expect_bytes(&m, vv, sizeof vv);

    m = msg_of(CVG__MSG_VV_WANT);
    const uint8_t want[] = {PV, 0x0b};
    expect_bytes(&m, want, sizeof want);
}

/* ---- Rejections -------------------------------------------------------- */

Test(wire, truncation_at_every_offset_is_corrupt)
{
    cvg__buf b = {0};
    for (int i = 0; i < SAMPLE_N; i++) {
        cvg__msg m = sample(i);
        encode_ok(&m, &b);
        for (size_t n = 0; n < b.len; n++) {
            /* A copy of the prefix alone, so ASan sees any overread. */
            uint8_t *p = malloc(n ? n : 1);
            cr_assert(p);
            memcpy(p, b.p, n);
            cr_expect_eq(decode_any(p, n), CVG_ECORRUPT,
                         "sample %d cut at %zu of %zu", i, n, b.len);
            free(p);
        }
    }
    cvg__buf_free(&b);
}

Test(wire, trailing_bytes_are_corrupt)
{
    cvg__buf b = {0};
    const uint8_t extra[] = {0x00, 0xc0, 0x01, 0xff};
    for (int i = 0; i < SAMPLE_N; i++) {
        cvg__msg m = sample(i);
        for (size_t k = 0; k < sizeof extra; k++) {
            encode_ok(&m, &b);
            cr_assert_eq(cvg__buf_append(&b, &extra[k], 1), CVG_OK);
            cr_expect_eq(decode_any(b.p, b.len), CVG_ECORRUPT,
                         "sample %d + %02x", i, extra[k]);
        }
        /* Two messages back to back are not one. */
        encode_ok(&m, &b);
        size_t n = b.len;
        cr_assert_eq(cvg__buf_reserve(&b, n), CVG_OK); /* b.p stays put */
        cr_assert_eq(cvg__buf_append(&b, b.p, n), CVG_OK);
        cr_expect_eq(decode_any(b.p, b.len), CVG_ECORRUPT);
    }
    cvg__buf_free(&b);
}

Test(wire, unknown_types_are_corrupt)
{
    const uint8_t types[][3] = {{0x00}, {0x0c}, {0x7f},      {0xcc, 0xff},
                                {0xff}, {0xc0}, {0xcc, 0x01}};
    const size_t lens[] = {1, 1, 1, 2, 1, 1, 2};
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        /* A PULL's body after the type, so only the type is wrong. */
        uint8_t msg[8] = {CVG_PROTOCOL_VERSION};
        memcpy(msg + 1, types[i], lens[i]);
        memcpy(msg + 1 + lens[i], "\x01\x00\x00", 3);
        cr_expect_eq(decode_any(msg, 4 + lens[i]), CVG_ECORRUPT, "type %zu", i);
    }
    cvg__msg m = msg_of((cvg__msg_type)12);
    cvg__buf b = {0};
    cr_expect_eq(cvg__msg_encode(&m, &b), CVG_EINVAL);
    m.type = (cvg__msg_type)0;
    cr_expect_eq(cvg__msg_encode(&m, &b), CVG_EINVAL);
    cr_expect_eq(b.len, 0);
    cvg__buf_free(&b);
}

Test(wire, versions)
{
    cvg__msg_scratch s = {0};
    cvg__msg m;
    /* Version 10, version 8 (whose pages could not carry op blocks of
     * version 4), version 7 (nor of version 3), and versions 6 (whose ACK and HAVE had no token), 5
     * (whose VV digest was one BLAKE2b of the whole vector), 4 (whose
     * HELLO carried the whole vector) and 3 (whose ACK carried counts):
     * reported with the version, whatever follows. */
    const uint8_t v10[] = {0x0a, 0x02, 0x01, 0x00, 0x00};
    cr_expect_eq(cvg__msg_decode(v10, sizeof v10, &m, &s), CVG_EVERSION);
    cr_expect_eq(m.version, 10);
    cr_expect_eq(cvg__msg_decode(v10, 1, &m, &s), CVG_EVERSION);
    cr_expect_eq(m.version, 10);
    const uint8_t v8_have[] = {0x08, 0x09, 0x05, 0x00};
    cr_expect_eq(cvg__msg_decode(v8_have, sizeof v8_have, &m, &s),
                 CVG_EVERSION);
    cr_expect_eq(m.version, 8);
    const uint8_t v7_have[] = {0x07, 0x09, 0x05, 0x00};
    cr_expect_eq(cvg__msg_decode(v7_have, sizeof v7_have, &m, &s),
                 CVG_EVERSION);
    cr_expect_eq(m.version, 7);
    const uint8_t v6_have[] = {0x06, 0x09, 0x05};
    cr_expect_eq(cvg__msg_decode(v6_have, sizeof v6_have, &m, &s),
                 CVG_EVERSION);
    cr_expect_eq(m.version, 6);
    const uint8_t v5[] = {0x05, 0x02, 0x01, 0x00, 0x00};
    cr_expect_eq(cvg__msg_decode(v5, sizeof v5, &m, &s), CVG_EVERSION);
    cr_expect_eq(m.version, 5);
    const uint8_t v4[] = {0x04, 0x01, 0xc4, 0x10};
    cr_expect_eq(cvg__msg_decode(v4, sizeof v4, &m, &s), CVG_EVERSION);
    cr_expect_eq(m.version, 4);
    const uint8_t v3[] = {0x03, 0x02, 0x01, 0x00, 0x00};
    cr_expect_eq(cvg__msg_decode(v3, sizeof v3, &m, &s), CVG_EVERSION);
    cr_expect_eq(m.version, 3);
    /* A version 3 ACK, counts and all, is not read as ours. */
    const uint8_t v3_ack[] = {0x03, 0x05, 0x02, 0x00, 0x00, 0x00};
    cr_expect_eq(cvg__msg_decode(v3_ack, sizeof v3_ack, &m, &s), CVG_EVERSION);
    const uint8_t v3_junk[] = {0x0a, 0xdd, 0xff, 0xff, 0xff, 0xff};
    cr_expect_eq(cvg__msg_decode(v3_junk, sizeof v3_junk, &m, &s),
                 CVG_EVERSION);
    const uint8_t vmax[] = {0xce, 0xff, 0xff, 0xff, 0xff, 0x01};
    cr_expect_eq(cvg__msg_decode(vmax, sizeof vmax, &m, &s), CVG_EVERSION);
    cr_expect_eq(m.version, UINT32_MAX);
    /* Version 0, a version past 32 bits, a non-smallest form, or not an
     * unsigned integer: malformed. */
    const uint8_t bad[][9] = {{0x00, 0x02, 0x01, 0x00, 0x00},
                              {0xcf, 0, 0, 0, 1, 0, 0, 0, 0},
                              {0xcc, 0x01, 0x02, 0x01, 0x00, 0x00},
                              {0xd0, 0x01, 0x02, 0x01, 0x00, 0x00},
                              {0xff, 0x02, 0x01, 0x00, 0x00},
                              {0xc3, 0x02, 0x01, 0x00, 0x00}};
    const size_t bad_len[] = {5, 9, 6, 6, 5, 5};
    for (size_t i = 0; i < 6; i++) {
        cr_expect_eq(cvg__msg_decode(bad[i], bad_len[i], &m, &s), CVG_ECORRUPT,
                     "bad version %zu", i);
        cr_expect_eq(m.version, 0);
    }
    /* The encoder speaks only versions the decoder takes. */
    cvg__msg e = msg_of(CVG__MSG_PULL);
    cvg__buf b = {0};
    e.version = 0;
    cr_expect_eq(cvg__msg_encode(&e, &b), CVG_EINVAL);
    e.version = CVG_PROTOCOL_VERSION + 1;
    cr_expect_eq(cvg__msg_encode(&e, &b), CVG_EINVAL);
    cr_expect_eq(b.len, 0);
    cvg__buf_free(&b);
    cvg__msg_scratch_destroy(&s);
}

Test(wire, bad_arguments)
{
    cvg__msg_scratch s = {0};
    cvg__msg m;
    const uint8_t pull[] = {PV, 0x02, 0x01, 0x00, 0x00};
    cr_expect_eq(cvg__msg_decode(NULL, 0, &m, &s), CVG_ECORRUPT);
    cr_expect_eq(cvg__msg_decode(NULL, 3, &m, &s), CVG_EINVAL);
    cr_expect_eq(cvg__msg_decode(pull, sizeof pull, NULL, &s), CVG_EINVAL);
    cr_expect_eq(cvg__msg_decode(pull, sizeof pull, &m, NULL), CVG_EINVAL);
    cr_expect_eq(cvg__msg_decode(pull, sizeof pull, &m, &s), CVG_OK);
    cvg__buf b = {0};
    cr_expect_eq(cvg__msg_encode(NULL, &b), CVG_EINVAL);
    cr_expect_eq(cvg__msg_encode(&m, NULL), CVG_EINVAL);
    cvg__msg_scratch_destroy(&s);
    cvg__msg_scratch_destroy(&s); /* twice, and NULL, are fine */
    cvg__msg_scratch_destroy(NULL);
}

/* Put @p hdr in place of the bytes at @p off (overwrite) or before them
 * (insert) and decode. */
static void
splice_decode(const cvg__buf *b, size_t off, const uint8_t *hdr, size_t hn,
              bool insert)
{
    size_t n = insert ? b->len + hn : CVG__MAX(b->len, off + hn);
    uint8_t *p = malloc(n);
    cr_assert(p);
    memcpy(p, b->p, off);
    memcpy(p + off, hdr, hn);
    if (insert) {
        memcpy(p + off + hn, b->p + off, b->len - off);
    } else if (off + hn < b->len) {
        memcpy(p + off + hn, b->p + off + hn, b->len - off - hn);
    }
    (void)decode_any(p, n);
    free(p);
}

Test(wire, hostile_length_prefixes_in_every_position)
{
    /* str32, bin32, array32, map32 with length 2^32 - 1, the 16-bit and
     * 8-bit forms at their maximum, and huge unsigned integers (counts). */
    const uint8_t hdrs[][9] = {
        {0xdd, 0xff, 0xff, 0xff, 0xff},
        {0xdf, 0xff, 0xff, 0xff, 0xff},
        {0xdb, 0xff, 0xff, 0xff, 0xff},
        {0xc6, 0xff, 0xff, 0xff, 0xff},
        {0xdc, 0xff, 0xff},
        {0xde, 0xff, 0xff},
        {0xda, 0xff, 0xff},
        {0xc5, 0xff, 0xff},
        {0xd9, 0xff},
        {0xc4, 0xff},
        {0x9f},
        {0x8f},
        {0xce, 0xff, 0xff, 0xff, 0xff},
        {0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
        {0xce, 0x00, 0x01, 0x00, 0x00},
        {0xce, 0x00, 0x01, 0x00, 0x01}};
    const size_t hlen[] = {5, 5, 5, 5, 3, 3, 3, 3, 2, 2, 1, 1, 5, 9, 5, 5};
    size_t nh = sizeof hlen / sizeof *hlen;
    cvg__buf b = {0};
    for (int i = 0; i < SAMPLE_N; i++) {
        cvg__msg m = sample(i);
        encode_ok(&m, &b);
        for (size_t off = 0; off <= b.len; off++) {
            for (size_t h = 0; h < nh; h++) {
                splice_decode(&b, off, hdrs[h], hlen[h], true);
                if (off < b.len) {
                    splice_decode(&b, off, hdrs[h], hlen[h], false);
                }
            }
        }
    }
    cvg__buf_free(&b);
}

/* The offset of the count in each sample's encoding: after the fields that
 * come before it. */
static void
expect_count_refused(int sample_i, size_t count_off, const uint8_t *count,
                     size_t cn)
{
    cvg__buf b = {0};
    cvg__msg m = sample(sample_i);
    encode_ok(&m, &b);
    cr_assert_lt(b.p[count_off], 0x10, "not a small count");
    cvg__buf c = {0};
    cr_assert_eq(cvg__buf_append(&c, b.p, count_off), CVG_OK);
    cr_assert_eq(cvg__buf_append(&c, count, cn), CVG_OK);
    cr_assert_eq(
        cvg__buf_append(&c, b.p + count_off + 1, b.len - count_off - 1),
        CVG_OK);
    cvg__msg_scratch s = {0};
    cvg__msg got;
    cr_expect_eq(cvg__msg_decode(c.p, c.len, &got, &s), CVG_ECORRUPT,
                 "sample %d", sample_i);
    /* Refused before any allocation. */
    cr_expect(s.vv == NULL && s.blocks == NULL && s.ranges == NULL);
    cvg__msg_scratch_destroy(&s);
    cvg__buf_free(&b);
    cvg__buf_free(&c);
}

Test(wire, huge_counts_are_refused_before_allocating)
{
    const uint8_t counts[][9] = {
        {0xcd, 0x10, 0x00},             /* 4096: more than the bytes */
        {0xce, 0x00, 0x01, 0x00, 0x00}, /* the caps */
        {0xce, 0x00, 0x01, 0x00, 0x01}, /* one over the caps */
        {0xce, 0xff, 0xff, 0xff, 0xff},
        {0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
        {0xdd, 0xff, 0xff, 0xff, 0xff}, /* an array header is no count */
        {0xff},                         /* nor a negative number */
    };
    const size_t cn[] = {3, 5, 5, 5, 9, 5, 1};
    /* VV: 2 + at (3) + base, total (1 each) + digest (34) + bool (1);
     * OPS: 2 + cursor (5) + bool (1); PUSH: 2 + bool (1); ACK: 2 + bool
     * (1) + token (1). */
    const int which[] = {0, 2, 3, 4};
    const size_t off[] = {42, 8, 3, 4};
    for (size_t i = 0; i < 4; i++) {
        for (size_t k = 0; k < sizeof cn / sizeof *cn; k++) {
            expect_count_refused(which[i], off[i], counts[k], cn[k]);
        }
    }
}

Test(wire, a_count_one_over_the_cap_is_refused_with_the_bytes_there)
{
    /* 65537 one-byte blocks: every byte is present, only the cap stops
     * it. */
    size_t n = CVG__MSG_BLOCKS_MAX + 1;
    cvg__buf b = {0};
    const uint8_t head[] = {PV, 0x04, 0xc2, 0xce, 0x00, 0x01, 0x00, 0x01};
    cr_assert_eq(cvg__buf_append(&b, head, sizeof head), CVG_OK);
    for (size_t i = 0; i < n; i++) {
        const uint8_t blk[] = {0xc4, 0x01, 0x00};
        cr_assert_eq(cvg__buf_append(&b, blk, 3), CVG_OK);
    }
    cr_expect_eq(decode_any(b.p, b.len), CVG_ECORRUPT);
    /* One fewer block, with the count at the cap (and no points): fine. */
    b.p[7] = 0x00;
    b.len -= 3;
    cr_assert_eq(cvg__buf_append(&b, "\x00", 1), CVG_OK);
    cr_expect_eq(decode_any(b.p, b.len), CVG_OK);
    cvg__buf_free(&b);
}

/* A VV with two entries of one-byte seqs, 115 bytes: at, base, total
 * (one byte each), the digest, more and the count take 40, then entry i's
 * bin header at 41 + 37 * i, its origin at 43 + 37 * i, its seq at
 * 59 + 37 * i and its head after. */
#define VV_AT 19 /* entry offsets below: as a HELLO's of version 4, plus */
static void
hello_two(cvg__buf *b)
{
    cvg_dot vv[2] = {{mkid(1), 5}, {mkid(2), 6}};
    cvg__msg m = msg_of(CVG__MSG_VV);
    m.vv_total = 2;
    m.vv = vv;
    m.vv_n = 2;
    encode_ok(&m, b);
    cr_assert_eq(b->len, 96 + VV_AT);
}

Test(wire, vv_must_be_sorted_unique_and_positive)
{
    cvg__buf b = {0};
    hello_two(&b);
    cr_expect_eq(decode_any(b.p, b.len), CVG_OK);
    /* Swap the origins: unsorted. */
    uint8_t tmp[16];
    memcpy(tmp, b.p + 24 + VV_AT, 16);
    memcpy(b.p + 24 + VV_AT, b.p + 61 + VV_AT, 16);
    memcpy(b.p + 61 + VV_AT, tmp, 16);
    cr_expect_eq(decode_any(b.p, b.len), CVG_ECORRUPT);
    /* The same origin twice. */
    memcpy(b.p + 24 + VV_AT, b.p + 61 + VV_AT, 16);
    cr_expect_eq(decode_any(b.p, b.len), CVG_ECORRUPT);
    /* A zero seq. */
    hello_two(&b);
    b.p[40 + VV_AT] = 0x00;
    cr_expect_eq(decode_any(b.p, b.len), CVG_ECORRUPT);
    hello_two(&b);
    b.p[59 + VV_AT] = 0x00;
    cr_expect_eq(decode_any(b.p, b.len), CVG_ECORRUPT);
    /* An origin of 15 or 17 bytes, or as a str. */
    hello_two(&b);
    b.p[23 + VV_AT] = 0x0f;
    cr_expect_eq(decode_any(b.p, b.len), CVG_ECORRUPT);
    b.p[23 + VV_AT] = 0x11;
    cr_expect_eq(decode_any(b.p, b.len), CVG_ECORRUPT);
    hello_two(&b);
    b.p[22 + VV_AT] = 0xd9;
    cr_expect_eq(decode_any(b.p, b.len), CVG_ECORRUPT);
    /* A base past at, a count past the total, more not a bool. */
    hello_two(&b);
    b.p[3] = 0x01;
    cr_expect_eq(decode_any(b.p, b.len), CVG_ECORRUPT);
    hello_two(&b);
    b.p[4] = 0x01;
    cr_expect_eq(decode_any(b.p, b.len), CVG_ECORRUPT);
    hello_two(&b);
    b.p[39] = 0x00;
    cr_expect_eq(decode_any(b.p, b.len), CVG_ECORRUPT);
    /* A seq in a larger form than needed. */
    hello_two(&b);
    b.len = 40 + VV_AT;
    const uint8_t wide[] = {0xcc, 0x05};
    cr_assert_eq(cvg__buf_append(&b, wide, 2), CVG_OK);
    cvg__buf c = {0};
    hello_two(&c);
    cr_assert_eq(cvg__buf_append(&b, c.p + 41 + VV_AT, 19), CVG_OK);
    cr_expect_eq(decode_any(b.p, b.len), CVG_ECORRUPT);
    cvg__buf_free(&c);

    /* The encoder refuses the same, writing nothing. */
    cvg_dot vv[3] = {{mkid(2), 1}, {mkid(1), 1}, {mkid(3), 1}};
    cvg__msg m = msg_of(CVG__MSG_VV);
    m.vv_total = 1u << 20;
    m.vv = vv;
    m.vv_n = 2;
    b.len = 7;
    cr_expect_eq(cvg__msg_encode(&m, &b), CVG_EINVAL);
    vv[1].origin = mkid(2);
    cr_expect_eq(cvg__msg_encode(&m, &b), CVG_EINVAL);
    vv[1].origin = mkid(3);
    vv[1].seq = 0;
    cr_expect_eq(cvg__msg_encode(&m, &b), CVG_EINVAL);
    vv[1].seq = 1;
    cr_expect_eq(cvg__msg_encode(&m, &b), CVG_OK);
    b.len = 7;
    m.vv = NULL;
    cr_expect_eq(cvg__msg_encode(&m, &b), CVG_EINVAL);
    m.vv_n = CVG__MSG_VV_MAX + 1;
    m.vv = vv;
    cr_expect_eq(cvg__msg_encode(&m, &b), CVG_EINVAL);
    m.vv_n = 2;
    m.vv_total = 1; /* fewer in the whole than here */
    cr_expect_eq(cvg__msg_encode(&m, &b), CVG_EINVAL);
    m.vv_total = 2;
    m.vv_base = 1; /* a base past at */
    cr_expect_eq(cvg__msg_encode(&m, &b), CVG_EINVAL);
    m.vv_base = 0;
    m.vv_digest = NULL;
    cr_expect_eq(cvg__msg_encode(&m, &b), CVG_EINVAL);
    cr_expect_eq(b.len, 7);
    cvg__buf_free(&b);
}

Test(wire, field_forms_are_checked)
{
    /* OPS: has_more must be a msgpack bool. */
    static const uint8_t blk[1] = {1};
    cvg_bytes one = {blk, 1};
    cvg__msg m = msg_of(CVG__MSG_OPS);
    m.blocks = &one;
    m.n_blocks = 1;
    cvg__buf b = {0};
    encode_ok(&m, &b);
    cr_assert_eq(b.p[3], 0xc2);
    b.p[3] = 0x00;
    cr_expect_eq(decode_any(b.p, b.len), CVG_ECORRUPT);
    b.p[3] = 0x01;
    cr_expect_eq(decode_any(b.p, b.len), CVG_ECORRUPT);
    b.p[3] = 0xc0;
    cr_expect_eq(decode_any(b.p, b.len), CVG_ECORRUPT);
    b.p[3] = 0xc3;
    cr_expect_eq(decode_any(b.p, b.len), CVG_OK);
    /* A block as a str, or empty. */
    b.p[5] = 0xa1;
    cr_expect_eq(decode_any(b.p, b.len), CVG_ECORRUPT);
    const uint8_t empty_block[] = {PV, 0x04, 0xc2, 0x01, 0xc4, 0x00};
    cr_expect_eq(decode_any(empty_block, 6), CVG_ECORRUPT);
    /* Enough bytes for the count check to pass: the empty one itself is
     * refused, wherever it is. */
    const uint8_t empty_first[] = {PV,   0x04, 0xc2, 0x02, 0xc4,
                                   0x00, 0xc4, 0x02, 0xaa, 0xbb};
    cr_expect_eq(decode_any(empty_first, 10), CVG_ECORRUPT);
    const uint8_t empty_last[] = {PV,   0x04, 0xc2, 0x02, 0xc4,
                                  0x02, 0xaa, 0xbb, 0xc4, 0x00};
    cr_expect_eq(decode_any(empty_last, 10), CVG_ECORRUPT);
    const uint8_t none_empty[] = {PV,   0x04, 0xc2, 0x02, 0xc4, 0x01,
                                  0xaa, 0xc4, 0x01, 0xbb, 0x00};
    cr_expect_eq(decode_any(none_empty, 11), CVG_OK);
    const uint8_t bin16_small[] = {PV,   0x04, 0xc2, 0x01,
                                   0xc5, 0x00, 0x01, 0x07};
    cr_expect_eq(decode_any(bin16_small, 8), CVG_ECORRUPT);

    /* PULL limits past 32 bits. */
    const uint8_t pull[] = {PV, 0x02, 0x00, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0, 0x00};
    cr_expect_eq(decode_any(pull, sizeof pull), CVG_ECORRUPT);
    /* HELLO flags past 32 bits. */
    cvg__msg hm = msg_of(CVG__MSG_HELLO);
    cvg__buf hb = {0};
    encode_ok(&hm, &hb);
    const size_t fl = 20 + HELLO_ID_BYTES; /* where the flags are */
    cr_assert_eq(hb.len, fl + 1);
    uint8_t hello[20 + HELLO_ID_BYTES + 9] = {0};
    memcpy(hello, hb.p, fl);
    cvg__buf_free(&hb);
    hello[fl] = 0xcf;
    hello[fl + 4] = 0x01;
    cr_expect_eq(decode_any(hello, sizeof hello), CVG_ECORRUPT);
    hello[fl + 4] = 0x00;
    hello[fl] = 0xce; /* not the smallest form either */
    cr_expect_eq(decode_any(hello, fl + 5), CVG_ECORRUPT);

    /* ACK: has_more a bool; a result 0, 1 or a negative int32. */
    uint8_t ack[] = {PV, 0x05, 0xc2, 0x00, 0x01, 0xc4, 0x10, 1,   2,
                     3,  4,    5,    6,    7,    8,    9,    10,  11,
                     12, 13,   14,   15,   16,   0x01, 0x02, 0xff};
    cr_expect_eq(decode_any(ack, sizeof ack), CVG_OK);
    ack[2] = 0x00;
    cr_expect_eq(decode_any(ack, sizeof ack), CVG_ECORRUPT);
    ack[2] = 0xc3;
    cr_expect_eq(decode_any(ack, sizeof ack), CVG_OK);
    const uint8_t results[] = {0x00, 0x01, 0xe0};
    for (size_t i = 0; i < sizeof results; i++) {
        ack[25] = results[i];
        cr_expect_eq(decode_any(ack, sizeof ack), CVG_OK, "result %zu", i);
    }
    const uint8_t bad_results[] = {0x02, 0x05, 0x7f, 0xc0, 0xc2};
    for (size_t i = 0; i < sizeof bad_results; i++) {
        ack[25] = bad_results[i];
        cr_expect_eq(decode_any(ack, sizeof ack), CVG_ECORRUPT, "result %zu",
                     i);
    }
    ack[25] = 0xff;
    /* INT32_MIN - 1, in its smallest form. */
    const uint8_t below_int32[] = {0xd3, 0xff, 0xff, 0xff, 0xff,
                                   0x7f, 0xff, 0xff, 0xff};
    cvg__buf w = {0};
    cr_assert_eq(cvg__buf_append(&w, ack, 25), CVG_OK);
    cr_assert_eq(cvg__buf_append(&w, below_int32, 9), CVG_OK);
    cr_expect_eq(decode_any(w.p, w.len), CVG_ECORRUPT);
    /* A seq in a wider form than it needs. */
    w.len = 0;
    cr_assert_eq(cvg__buf_append(&w, ack, 23), CVG_OK);
    cr_assert_eq(cvg__buf_append(&w, "\xcc\x01\x02\xff", 4), CVG_OK);
    cr_expect_eq(decode_any(w.p, w.len), CVG_ECORRUPT);
    cvg__buf_free(&w);

    /* ERROR: a negative code, a str of at most the cap. */
    const uint8_t err_ok[] = {PV, 0x06, 0xd2, 0x80, 0x00, 0x00, 0x00, 0xa0};
    cr_expect_eq(decode_any(err_ok, sizeof err_ok), CVG_OK);
    const uint8_t err_zero[] = {PV, 0x06, 0x00, 0xa0};
    cr_expect_eq(decode_any(err_zero, sizeof err_zero), CVG_ECORRUPT);
    const uint8_t err_pos[] = {PV, 0x06, 0x03, 0xa0};
    cr_expect_eq(decode_any(err_pos, sizeof err_pos), CVG_ECORRUPT);
    const uint8_t err_bin[] = {PV, 0x06, 0xff, 0xc4, 0x00};
    cr_expect_eq(decode_any(err_bin, sizeof err_bin), CVG_ECORRUPT);
    const uint8_t err_nil[] = {PV, 0x06, 0xff, 0xc0};
    cr_expect_eq(decode_any(err_nil, sizeof err_nil), CVG_ECORRUPT);
    b.len = 0;
    const uint8_t err_head[] = {PV, 0x06, 0xff, 0xda, 0x04, 0x01};
    cr_assert_eq(cvg__buf_append(&b, err_head, sizeof err_head), CVG_OK);
    for (size_t i = 0; i < CVG__MSG_TEXT_MAX + 1; i++) {
        cr_assert_eq(cvg__buf_append(&b, "t", 1), CVG_OK);
    }
    cr_expect_eq(decode_any(b.p, b.len), CVG_ECORRUPT); /* 1025 */
    b.p[5] = 0x00;
    b.len--;
    cr_expect_eq(decode_any(b.p, b.len), CVG_OK); /* 1024 */
    cvg__buf_free(&b);
}

/* An ACK of ranges (origin byte, lo, hi, result), all small. */
static void
ack_of(cvg__buf *b, const int (*g)[4], size_t n)
{
    b->len = 0;
    uint8_t head[] = {PV, 0x05, 0xc2, 0x00, (uint8_t)n};
    cr_assert_lt(n, 16);
    cr_assert_eq(cvg__buf_append(b, head, sizeof head), CVG_OK);
    for (size_t i = 0; i < n; i++) {
        uint8_t e[21] = {0xc4, 0x10};
        memset(e + 2, g[i][0], 16);
        e[18] = (uint8_t)g[i][1];
        e[19] = (uint8_t)g[i][2];
        e[20] = (uint8_t)(int8_t)g[i][3]; /* 0, 1, or -1 .. -32 */
        cr_assert_eq(cvg__buf_append(b, e, sizeof e), CVG_OK);
    }
}

/* Ranges in order, not empty, not overlapping, and merged where they can
 * be: one encoding per set of results. The encoder refuses the same. */
Test(wire, ack_ranges_must_be_well_formed)
{
    static const struct {
        int g[3][4];
        size_t n;
        bool ok;
        const char *what;
    } cases[] = {
        {{{1, 1, 3, 0}, {1, 4, 9, 1}, {2, 1, 1, -12}}, 3, true, "valid"},
        {{{1, 1, 3, 0}, {1, 5, 9, 0}}, 2, true, "apart, one result"},
        {{{1, 2, 2, 1}, {2, 1, 1, 1}}, 2, true, "another origin"},
        {{{1, 0, 3, 0}}, 1, false, "lo 0"},
        {{{1, 0, 0, 0}}, 1, false, "lo and hi 0"},
        {{{1, 4, 3, 0}}, 1, false, "lo past hi"},
        {{{1, 4, 9, 0}, {1, 1, 3, 1}}, 2, false, "unsorted seqs"},
        {{{2, 1, 3, 0}, {1, 4, 9, 0}}, 2, false, "unsorted origins"},
        {{{1, 1, 4, 0}, {1, 4, 9, 1}}, 2, false, "overlapping"},
        {{{1, 1, 9, 0}, {1, 3, 4, 1}}, 2, false, "one inside another"},
        {{{1, 1, 3, 0}, {1, 1, 3, 0}}, 2, false, "twice"},
        {{{1, 1, 3, 1}, {1, 4, 9, 1}}, 2, false, "touching, unmerged"},
        {{{1, 5, 5, -12}, {1, 6, 6, -12}}, 2, false, "refusals unmerged"},
    };
    cvg__buf b = {0};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ack_of(&b, cases[i].g, cases[i].n);
        cr_expect_eq(decode_any(b.p, b.len),
                     cases[i].ok ? CVG_OK : CVG_ECORRUPT, "%s", cases[i].what);
        cvg__ack_range g[3];
        for (size_t k = 0; k < cases[i].n; k++) {
            memset(g[k].origin.bytes, cases[i].g[k][0], 16);
            g[k].lo = (uint64_t)cases[i].g[k][1];
            g[k].hi = (uint64_t)cases[i].g[k][2];
            g[k].result = cases[i].g[k][3];
        }
        cvg__msg m = msg_of(CVG__MSG_ACK);
        m.ranges = g;
        m.n_ranges = cases[i].n;
        cvg__buf e = {0};
        cr_expect_eq(cvg__msg_encode(&m, &e), cases[i].ok ? CVG_OK : CVG_EINVAL,
                     "encode: %s", cases[i].what);
        if (cases[i].ok) {
            cr_expect(e.len == b.len && memcmp(e.p, b.p, b.len) == 0,
                      "%s: the same bytes", cases[i].what);
        }
        cvg__buf_free(&e);
    }
    cvg__buf_free(&b);
}

Test(wire, encoder_refuses_what_the_decoder_refuses)
{
    cvg__buf b = {0};
    cr_assert_eq(cvg__buf_append(&b, "keep", 4), CVG_OK);
    static const uint8_t x = 1;
    cvg_bytes blocks[2] = {{&x, 1}, {&x, 0}};
    cvg__msg m = msg_of(CVG__MSG_OPS);
    m.blocks = blocks;
    m.n_blocks = 2; /* an empty block */
    cr_expect_eq(cvg__msg_encode(&m, &b), CVG_EINVAL);
    blocks[1].len = 1;
    blocks[1].data = NULL;
    cr_expect_eq(cvg__msg_encode(&m, &b), CVG_EINVAL);
    m.type = CVG__MSG_PUSH;
    cr_expect_eq(cvg__msg_encode(&m, &b), CVG_EINVAL);
    m.blocks = NULL;
    m.n_blocks = 1;
    cr_expect_eq(cvg__msg_encode(&m, &b), CVG_EINVAL);
    if (sizeof(size_t) > 4) {
        /* A block whose length does not fit a bin32. */
        blocks[0].len = (size_t)UINT32_MAX + 1;
        m.blocks = blocks;
        cr_expect_eq(cvg__msg_encode(&m, &b), CVG_EINVAL);
    }

    cvg__ack_range rg[2] = {{mkid(1), 1, 1, -1}, {mkid(2), 1, 1, 2}};
    m = msg_of(CVG__MSG_ACK);
    m.ranges = rg;
    m.n_ranges = 2;
    cr_expect_eq(cvg__msg_encode(&m, &b), CVG_EINVAL); /* result 2 */
    rg[1].result = INT32_MAX;
    cr_expect_eq(cvg__msg_encode(&m, &b), CVG_EINVAL);
    rg[1].result = -5;
    rg[1].lo = 0;
    cr_expect_eq(cvg__msg_encode(&m, &b), CVG_EINVAL);
    rg[1].lo = 1;
    m.n_ranges = CVG__MSG_RANGES_MAX + 1;
    cr_expect_eq(cvg__msg_encode(&m, &b), CVG_EINVAL);
    m.ranges = NULL;
    m.n_ranges = 1;
    cr_expect_eq(cvg__msg_encode(&m, &b), CVG_EINVAL);

    m = msg_of(CVG__MSG_ERROR);
    m.code = 0;
    cr_expect_eq(cvg__msg_encode(&m, &b), CVG_EINVAL);
    m.code = -1;
    m.text.len = 1;
    cr_expect_eq(cvg__msg_encode(&m, &b), CVG_EINVAL); /* NULL text */
    static char big[CVG__MSG_TEXT_MAX + 1];
    m.text.data = (const uint8_t *)big;
    m.text.len = sizeof big;
    cr_expect_eq(cvg__msg_encode(&m, &b), CVG_EINVAL);

    cr_expect_eq(b.len, 4);
    cr_expect(memcmp(b.p, "keep", 4) == 0);
    /* Fields of other types are ignored, not checked. */
    m = msg_of(CVG__MSG_PULL);
    m.n_blocks = 5;
    m.vv_n = 5;
    m.code = 7;
    cr_expect_eq(cvg__msg_encode(&m, &b), CVG_OK);
    cvg__buf_free(&b);
}

Test(wire, bit_flips_never_crash)
{
    cvg__buf b = {0};
    uint8_t *p = NULL;
    size_t accepted = 0, total = 0;
    for (int i = 0; i < SAMPLE_N; i++) {
        cvg__msg m = sample(i);
        encode_ok(&m, &b);
        p = realloc(p, b.len);
        cr_assert(p);
        for (size_t k = 0; k < b.len; k++) {
            for (int bit = 0; bit < 8; bit++) {
                memcpy(p, b.p, b.len);
                p[k] ^= (uint8_t)(1u << bit);
                accepted += decode_any(p, b.len) == CVG_OK;
                total++;
            }
        }
    }
    /* Flips inside blocks, ids and texts are still valid messages. */
    cr_expect_gt(accepted, 0);
    cr_expect_lt(accepted, total);
    free(p);
    cvg__buf_free(&b);
}

Test(wire, random_bytes_never_crash)
{
    uint64_t seed = cvg_test_seed(0xb17e5);
    fprintf(stderr, "wire.random_bytes_never_crash: seed %llu\n",
            (unsigned long long)seed);
    uint64_t st = seed;
    uint8_t buf[96];
    size_t ok = 0;
    for (int iter = 0; iter < 100000; iter++) {
        size_t n = cvg_test_below(&st, sizeof buf + 1);
        for (size_t i = 0; i < n; i++) {
            /* Small bytes more often: they make plausible items. */
            uint64_t r = cvg_test_rand(&st);
            buf[i] = (uint8_t)(r % 3 == 0 ? (r >> 8) % 8 : r >> 8);
        }
        /* Half start like a message of a known type, to get past the
         * first two items. */
        if (n >= 2 && iter % 2 == 0) {
            buf[0] = CVG_PROTOCOL_VERSION;
            buf[1] = (uint8_t)(1 + cvg_test_below(&st, 6));
        }
        ok += decode_any(buf, n) == CVG_OK;
    }
    fprintf(stderr, "wire.random_bytes_never_crash: %zu accepted\n", ok);
}

/* ---- Allocation failure ------------------------------------------------ */

Test(wire, decoder_survives_allocation_failure)
{
    cvg__buf b = {0};
    for (int i = 0; i < SAMPLE_N; i++) {
        cvg__msg want = sample(i);
        encode_ok(&want, &b);
        bool failed_once = false;
        for (unsigned long n = 1;; n++) {
            cvg__msg_scratch s = {0};
            cvg__msg got;
            cvg__alloc_fail_after(n);
            int rc = cvg__msg_decode(b.p, b.len, &got, &s);
            cvg__alloc_fail_after(0);
            if (rc == CVG_OK) {
                expect_msg_eq(&got, &want);
                cvg__msg_scratch_destroy(&s);
                break;
            }
            cr_assert_eq(rc, CVG_ENOMEM, "sample %d, n %lu: %s", i, n,
                         cvg_errname(rc));
            failed_once = true;
            cr_expect_eq(got.type, 0, "failure leaves the message zeroed");
            cr_expect_eq(got.version, 0);
            /* The same scratch decodes once memory is back. */
            rc = cvg__msg_decode(b.p, b.len, &got, &s);
            cr_assert_eq(rc, CVG_OK, "after ENOMEM: %s", cvg_errname(rc));
            expect_msg_eq(&got, &want);
            cvg__msg_scratch_destroy(&s);
            cr_assert_lt(n, 100);
        }
        /* Only messages with a list (HELLO, OPS, PUSH, ACK) allocate. */
        bool has_list = i == 0 || i == 2 || i == 3 || i == 4;
        cr_expect_eq(failed_once, has_list, "sample %d", i);
    }
    /* A scratch grown once is reused without allocating. */
    cvg__msg want = sample(0), got;
    encode_ok(&want, &b);
    cvg__msg_scratch s = {0};
    cr_assert_eq(cvg__msg_decode(b.p, b.len, &got, &s), CVG_OK);
    cvg__alloc_fail_after(1);
    int rc = cvg__msg_decode(b.p, b.len, &got, &s);
    cvg__alloc_fail_after(0);
    cr_expect_eq(rc, CVG_OK);
    cvg__msg_scratch_destroy(&s);
    cvg__buf_free(&b);
}

Test(wire, encoder_survives_allocation_failure)
{
    uint8_t *big = calloc(1, 100000);
    cr_assert(big);
    cvg_bytes blocks[3] = {{big, 1}, {big, 100000}, {big, 300}};
    for (int i = 0; i <= SAMPLE_N; i++) {
        cvg__msg m;
        if (i < SAMPLE_N) {
            m = sample(i);
        } else {
            m = msg_of(CVG__MSG_OPS);
            m.blocks = blocks;
            m.n_blocks = 3;
        }
        cvg__buf want = {0};
        encode_ok(&m, &want);
        for (unsigned long n = 1;; n++) {
            cvg__buf b = {0};
            /* Something already there, and a buffer that must grow. */
            cr_assert_eq(cvg__buf_append(&b, "prefix", 6), CVG_OK);
            cvg__alloc_fail_after(n);
            int rc = cvg__msg_encode(&m, &b);
            cvg__alloc_fail_after(0);
            if (rc == CVG_OK) {
                cr_expect_eq(b.len, 6 + want.len);
                cr_expect(memcmp(b.p + 6, want.p, want.len) == 0);
                cvg__buf_free(&b);
                break;
            }
            cr_assert_eq(rc, CVG_ENOMEM, "message %d, n %lu: %s", i, n,
                         cvg_errname(rc));
            cr_expect_eq(b.len, 6, "out->len restored");
            cr_expect(memcmp(b.p, "prefix", 6) == 0);
            /* The buffer is still good to write to. */
            cr_assert_eq(cvg__msg_encode(&m, &b), CVG_OK);
            cr_expect_eq(b.len, 6 + want.len);
            cvg__buf_free(&b);
            cr_assert_lt(n, 100);
        }
        cvg__buf_free(&want);
    }
    free(big);
}
