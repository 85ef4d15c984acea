/*
 * What a block's name dictionary may name (block_format.h): its entries'
 * whole names at most NAMES_WHOLE_PER_BYTE times the block's bytes, for
 * blocks from peers. A hand-made block that names a 400-byte collection
 * again under each new key (9 bytes an op, 406 bytes of names) is refused
 * from a peer and still read from a log; the writer, given such ops,
 * writes blocks within the bound that a peer reads back name for name;
 * ordinary names keep their prefix coding; and between two replicas such
 * records sync, with the receiver's data file in proportion to the bytes
 * that came.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "converge.h"

#include "oplog/block_format.h"
#include "testutil.h"

#define OK(call) cr_assert_eq((call), CVG_OK, "%s", #call)

#define LONG_COLL 400
#define OPS 2000

typedef struct bytes_out {
    uint8_t b[1 << 16];
    size_t n;
} bytes_out;

static void
put(bytes_out *o, const void *p, size_t n)
{
    cr_assert(o->n + n <= sizeof o->b);
    memcpy(o->b + o->n, p, n);
    o->n += n;
}

static void
put1(bytes_out *o, uint8_t v)
{
    put(o, &v, 1);
}

static void
fixstr(bytes_out *o, const char *s)
{
    size_t n = strlen(s);
    cr_assert(n < 32);
    put1(o, (uint8_t)(0xa0 | n));
    put(o, s, n);
}

static cvg_replica_id
origin(void)
{
    cvg_replica_id id;
    memset(id.bytes, 0x42, sizeof id.bytes);
    return id;
}

static void
long_collection(char *out)
{
    memset(out, 'a', LONG_COLL);
    out[LONG_COLL] = 0;
}

/* A version 2 block of OPS counter adds to (LONG_COLL a's, "k0000" ...,
 * "f"): the first op names all three whole, the others only their key's
 * last 4 bytes against the entry before (TARGET_NEW_KEY). */
static void
hostile_block(bytes_out *o)
{
    o->n = 0;
    cvg_replica_id id = origin();
    put1(o, BLOCK_VERSION);
    put1(o, 0xc4); /* bin 8 */
    put1(o, 16);
    put(o, id.bytes, 16);
    put1(o, 1);    /* first seq */
    put1(o, 0xcd); /* count, uint 16 */
    put1(o, (uint8_t)(OPS >> 8));
    put1(o, (uint8_t)OPS);
    put1(o, 1); /* time of op 1 */
    for (unsigned i = 0; i < OPS; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%04u", i);
        if (i == 0) {
            put1(o, CVG_OP_COUNTER_ADD);
            put1(o, TARGET_NEW_ALL);
            put1(o, 0);    /* shares nothing */
            put1(o, 0xda); /* str 16 */
            put1(o, (uint8_t)(LONG_COLL >> 8));
            put1(o, (uint8_t)LONG_COLL);
            for (int j = 0; j < LONG_COLL; j++) {
                put1(o, 'a');
            }
            put1(o, 0);
            fixstr(o, key);
            put1(o, 0);
            fixstr(o, "f");
        } else {
            put1(o, CVG_OP_COUNTER_ADD | HEAD_TICK);
            put1(o, TARGET_NEW_KEY);
            put1(o, 1); /* "k" shared */
            fixstr(o, key + 1);
        }
        put1(o, 1); /* delta */
    }
}

/* Ops read from @p b until an error: how many, and that error. */
static unsigned
read_all(const bytes_out *b, bool received, int *rc_out)
{
    cvg__block_reader rd;
    memset(&rd, 0, sizeof rd);
    int rc = received ? cvg__block_open_received(&rd, b->b, b->n)
                      : cvg__block_open(&rd, b->b, b->n);
    unsigned n = 0;
    cvg__op op;
    while (rc == CVG_OK && (rc = cvg__block_next(&rd, &op)) == CVG_OK) {
        n++;
    }
    cvg__block_reader_destroy(&rd);
    *rc_out = rc;
    return n;
}

Test(block_names, a_block_naming_far_more_than_it_weighs_is_refused_from_a_peer)
{
    static bytes_out b;
    hostile_block(&b);
    size_t whole = (size_t)OPS * (LONG_COLL + 5 + 1);
    cr_log_info("hand-made block: %zu bytes naming %zu (%.0fx)", b.n, whole,
                (double)whole / (double)b.n);
    cr_assert_gt(whole, 16 * b.n, "the block must name more than it may");

    int rc;
    unsigned n = read_all(&b, false, &rc);
    cr_expect_eq(rc, CVG_DONE, "%s", cvg_errname(rc)); /* a log reads it */
    cr_expect_eq(n, OPS);

    n = read_all(&b, true, &rc);
    cr_expect_eq(rc, CVG_ECORRUPT, "%s", cvg_errname(rc));
    cr_expect_lt(n, 16, "refused only after %u ops", n);
}

/* Write @p nops counter adds to (@p coll, key prefix + i, "f") into one
 * block; returns its size, and checks that a peer reads every op back
 * with its names. */
static size_t
write_and_read_back(const char *coll, const char *prefix, unsigned nops)
{
    cvg__block_writer w;
    memset(&w, 0, sizeof w);
    cvg_replica_id id = origin();
    OK(cvg__block_begin(&w, &id, 1));
    static char keys[OPS][32];
    for (unsigned i = 0; i < nops; i++) {
        snprintf(keys[i], sizeof keys[i], "%s%04u", prefix, i);
        cvg__op op;
        memset(&op, 0, sizeof op);
        op.pub.dot.origin = id;
        op.pub.dot.seq = 1 + i;
        op.pub.hlc = 100 + i;
        op.pub.kind = CVG_OP_COUNTER_ADD;
        op.pub.collection = (cvg_bytes){(const uint8_t *)coll, strlen(coll)};
        op.pub.key = (cvg_bytes){(const uint8_t *)keys[i], strlen(keys[i])};
        op.pub.field = (cvg_bytes){(const uint8_t *)"f", 1};
        op.pub.delta = 1;
        OK(cvg__block_add(&w, &op));
    }
    cvg_bytes out;
    OK(cvg__block_finish(&w, &out));
    size_t len = out.len;

    cvg__block_reader rd;
    memset(&rd, 0, sizeof rd);
    OK(cvg__block_open_received(&rd, out.data, out.len));
    cvg__op op;
    unsigned n = 0;
    int rc;
    while ((rc = cvg__block_next(&rd, &op)) == CVG_OK) {
        cr_assert_lt(n, nops);
        cr_assert_eq(op.pub.collection.len, strlen(coll));
        cr_assert(memcmp(op.pub.collection.data, coll, strlen(coll)) == 0);
        cr_assert_eq(op.pub.key.len, strlen(keys[n]));
        cr_assert(memcmp(op.pub.key.data, keys[n], strlen(keys[n])) == 0);
        n++;
    }
    cr_expect_eq(rc, CVG_DONE, "%s after %u ops", cvg_errname(rc), n);
    cr_expect_eq(n, nops);
    cvg__block_reader_destroy(&rd);
    cvg__block_writer_destroy(&w);
    return len;
}

Test(block_names, the_writer_stays_within_the_bound_and_a_peer_reads_it)
{
    static char coll[LONG_COLL + 1];
    long_collection(coll);
    size_t len = write_and_read_back(coll, "k", OPS);
    size_t whole = (size_t)OPS * (LONG_COLL + 5 + 1);
    cr_log_info("writer: %zu bytes naming %zu", len, whole);
    cr_expect_geq(len * NAMES_WHOLE_PER_BYTE, whole);

    /* Ordinary names still cost a few bytes an op. */
    len = write_and_read_back("orders", "order-", OPS);
    cr_log_info("short names: %zu bytes for %u ops", len, OPS);
    cr_expect_lt(len, (size_t)OPS * 8);
}

static cvg_replica *
open_dir(const char *name)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = CVG_RELAXED;
    cvg_replica *r = NULL;
    OK(cvg_replica_open(cvg_test_dir(name), &o, &r));
    return r;
}

static uint64_t
file_bytes(cvg_replica *r)
{
    cvg_replica_stats st;
    OK(cvg_replica_stats_get(r, &st, sizeof st));
    return st.file_bytes;
}

Test(block_names, records_with_long_shared_names_sync_in_proportion)
{
    static char coll[LONG_COLL + 1];
    long_collection(coll);
    cvg_replica *a = open_dir("names-a");
    cvg_replica *b = open_dir("names-b");
    cvg_txn *t;
    OK(cvg_txn_begin(a, 0, &t));
    for (unsigned i = 0; i < 20000; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%05u", i);
        cvg_key k = {coll, key, "f"};
        OK(cvg_counter_add(t, &k, 1, NULL));
    }
    OK(cvg_txn_commit(t));
    uint64_t before = file_bytes(b);
    cvg_session_stats st;
    OK(cvg_sync_local(a, b, &st));
    uint64_t grew = file_bytes(b) - before;
    cr_log_info("%llu bytes came, the data file grew %llu (%.1fx)",
                (unsigned long long)st.bytes_sent, (unsigned long long)grew,
                (double)grew / (double)st.bytes_sent);
    cr_expect_eq(st.ops_sent, 20000);
    cr_expect_leq(grew, 8 * st.bytes_sent);
    cvg_key last = {coll, "k19999", "f"};
    OK(cvg_txn_begin(b, CVG_TXN_READ_ONLY, &t));
    int64_t v = 0;
    OK(cvg_counter_get(t, &last, &v));
    cr_expect_eq(v, 1);
    cvg_txn_abort(t);
    cvg_replica_close(a);
    cvg_replica_close(b);
}
