/*
 * Names a peer chose to collide cost what random names do. Before the
 * tables were keyed (src/hash.h), the transaction cache and the block
 * writer's name dictionary hashed names with an unkeyed FNV-1a, and the
 * origin table used an id's first 8 bytes: a peer could craft names that
 * all share one probe chain, so every lookup walked all the others.
 *
 * The crafted sets are multicollisions of those old functions: FNV-1a
 * taken mod 2^k depends only on the state mod 2^k, so two blocks that
 * bring one state to the same value mod 2^k can be swapped anywhere after
 * it, and n stages of such pairs give 2^n names with one hash mod 2^k. The
 * cache's pairs (mod 2^45, which covers its final mix and tables up to
 * 2^16 slots) were found once with Floyd's cycle finding and are listed
 * here; the dictionary's (mod 2^16, its tables have no mix) are found at
 * run time. Each test first checks that its names do collide under the old
 * function, then times them against random names of the same length, in
 * the same process, on CPU time, with a generous bound: the cache through
 * writes and a sync to another replica, the dictionary and the origin
 * table directly (the log cuts blocks at 4096 ops, which caps a chain
 * there; a block may name up to CVG__DICT_MAX, 2^15 here). Under the old
 * functions (Debug build) the crafted names took 2.9 s to write against
 * 0.07 s and 1.6 s to sync against 0.09 s; the block 2.9 s against
 * 0.02 s; the origin table 2.7 s against 0.003 s.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "oplog/oplog_int.h"
#include "testutil.h"

#define OK(call) cr_assert_eq((call), CVG_OK, "%s", #call)

#define NAMES 16000      /* for the cache and the origins */
#define DICT_NAMES 32768 /* the dictionary's probes are cheaper: more */
#define STAGES 14        /* 2^14 = 16384 >= NAMES */
#define DICT_STAGES 15   /* 2^15 = DICT_NAMES */
#define FNV_BASIS 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static double
cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t
fnv(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * FNV_PRIME;
    }
    return h;
}

/* The old hash of the transaction cache, over a state key. */
static uint64_t
old_cache_hash(const uint8_t *p, size_t n)
{
    uint64_t h = fnv(FNV_BASIS, p, n);
    h ^= h >> 29;
    return h ? h : 1;
}

/* The old hash of the block writer's dictionary: each name after its
 * length as 8 little-endian bytes. */
static uint64_t
old_names_hash(const char *c, const char *k, const char *f)
{
    const char *nm[3] = {c, k, f};
    uint64_t h = FNV_BASIS;
    for (int i = 0; i < 3; i++) {
        uint64_t n = strlen(nm[i]);
        for (int b = 0; b < 8; b++) {
            uint8_t x = (uint8_t)(n >> (8 * b));
            h = fnv(h, &x, 1);
        }
        h = fnv(h, (const uint8_t *)nm[i], n);
    }
    return h;
}

/* Pairs of 6-byte blocks after "c\0k": swapping the blocks of a stage
 * leaves the old cache hash's state unchanged mod 2^45. */
static const uint8_t cache_pairs[STAGES][2][6] = {
    {{0x64, 0x39, 0x59, 0xf5, 0xc8, 0x03},
     {0x11, 0x9b, 0xd1, 0xac, 0xf5, 0x1c}},
    {{0x62, 0x88, 0x22, 0x25, 0xd2, 0x0d},
     {0xae, 0x8c, 0x2e, 0x3c, 0x3a, 0x1c}},
    {{0xe5, 0x1d, 0xb7, 0xd9, 0xe9, 0x1a},
     {0x65, 0xa2, 0x48, 0x16, 0x51, 0x0b}},
    {{0x37, 0x6a, 0x41, 0xbb, 0xcb, 0x1c},
     {0x85, 0x6a, 0x4e, 0xb0, 0xb8, 0x1d}},
    {{0xcc, 0x3c, 0xe7, 0xca, 0x8e, 0x0e},
     {0xc0, 0xd7, 0xcf, 0xfd, 0xbf, 0x11}},
    {{0x77, 0x06, 0x4e, 0x4f, 0x99, 0x12},
     {0xc9, 0x5b, 0x75, 0x04, 0xdf, 0x0d}},
    {{0x29, 0x36, 0xae, 0xff, 0x9f, 0x02},
     {0xb5, 0xfc, 0x5c, 0x0b, 0xf0, 0x0b}},
    {{0x54, 0xab, 0x92, 0x88, 0x13, 0x05},
     {0x50, 0x4a, 0xb8, 0x3f, 0x04, 0x1c}},
    {{0x46, 0x81, 0x62, 0xab, 0xba, 0x0f},
     {0x8d, 0x60, 0xde, 0xfb, 0xa6, 0x03}},
    {{0x97, 0x94, 0x04, 0x6b, 0xe6, 0x0f},
     {0x3f, 0x6b, 0x37, 0x33, 0x35, 0x20}},
    {{0x41, 0x35, 0xdc, 0xfa, 0x63, 0x1c},
     {0x2a, 0x72, 0xe1, 0x8e, 0x0d, 0x1f}},
    {{0x13, 0x01, 0xae, 0x4f, 0xfb, 0x1a},
     {0x93, 0xb4, 0x63, 0x80, 0x4f, 0x0b}},
    {{0xb6, 0x30, 0xad, 0xf3, 0x57, 0x02},
     {0x56, 0xb2, 0x04, 0xb5, 0x05, 0x0f}},
    {{0x21, 0x93, 0xd0, 0x52, 0xdc, 0x20},
     {0x26, 0x32, 0x28, 0x53, 0xe3, 0x18}},
};

#define CACHE_KEY_LEN (1 + STAGES * 6)
#define DICT_KEY_LEN (1 + DICT_STAGES * 2)
#define KEY_MAX CACHE_KEY_LEN

typedef struct name_set {
    unsigned n;
    char keys[DICT_NAMES][KEY_MAX + 1];
} name_set;

/* Key i of the crafted cache set: "k", then stage s's block (i >> s) & 1. */
static void
cache_key(unsigned i, char *out)
{
    out[0] = 'k';
    for (int s = 0; s < STAGES; s++) {
        memcpy(out + 1 + 6 * s, cache_pairs[s][(i >> s) & 1], 6);
    }
    out[CACHE_KEY_LEN] = 0;
}

/* Pairs of 2-byte blocks that collide in the dictionary's old hash mod
 * 2^16, found by birthday search stage by stage. */
static void
dict_pairs(uint8_t pairs[DICT_STAGES][2][2])
{
    uint8_t pre[8 + 1 + 8 + 1];
    memset(pre, 0, sizeof pre);
    pre[0] = 1; /* strlen("c") */
    pre[8] = 'c';
    pre[9] = DICT_KEY_LEN;
    pre[17] = 'k';
    uint64_t h = fnv(FNV_BASIS, pre, sizeof pre);
    static uint16_t seen[1u << 16]; /* state mod 2^16 -> block + 1 */
    for (int s = 0; s < DICT_STAGES; s++) {
        memset(seen, 0, sizeof seen);
        bool found = false;
        for (unsigned b = 0; b < 255 * 255 && !found; b++) {
            uint8_t blk[2] = {(uint8_t)(1 + b % 255), (uint8_t)(1 + b / 255)};
            uint16_t at = (uint16_t)fnv(h, blk, 2);
            if (seen[at] != 0) {
                unsigned o = seen[at] - 1u;
                pairs[s][0][0] = (uint8_t)(1 + o % 255);
                pairs[s][0][1] = (uint8_t)(1 + o / 255);
                memcpy(pairs[s][1], blk, 2);
                h = fnv(h, blk, 2);
                found = true;
            } else {
                seen[at] = (uint16_t)(b + 1);
            }
        }
        cr_assert(found, "no 16-bit collision at stage %d", s);
    }
}

static void
dict_key(uint8_t pairs[DICT_STAGES][2][2], unsigned i, char *out)
{
    out[0] = 'k';
    for (int s = 0; s < DICT_STAGES; s++) {
        memcpy(out + 1 + 2 * s, pairs[s][(i >> s) & 1], 2);
    }
    out[DICT_KEY_LEN] = 0;
}

/* Random keys of @p len bytes: "k", then bytes 1..255. */
static void
random_keys(name_set *ns, unsigned n, size_t len, uint64_t seed)
{
    uint64_t rng = seed;
    ns->n = n;
    for (unsigned i = 0; i < n; i++) {
        ns->keys[i][0] = 'k';
        for (size_t j = 1; j < len; j++) {
            ns->keys[i][j] = (char)(1 + cvg_test_below(&rng, 255));
        }
        ns->keys[i][len] = 0;
    }
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

/* CPU seconds to write a register under every key of @p ns in one
 * transaction, and to sync them to a fresh replica. */
static void
write_and_sync(const name_set *ns, const char *tag, double *write_s,
               double *sync_s)
{
    char name[64];
    snprintf(name, sizeof name, "%s-w", tag);
    cvg_replica *w = open_dir(name);
    snprintf(name, sizeof name, "%s-r", tag);
    cvg_replica *r = open_dir(name);
    double t0 = cpu_seconds();
    cvg_txn *t;
    OK(cvg_txn_begin(w, 0, &t));
    for (unsigned i = 0; i < ns->n; i++) {
        cvg_key k = {"c", ns->keys[i], "f"};
        cvg_value v = cvg_value_int((int64_t)i);
        OK(cvg_register_set(t, &k, &v, NULL));
    }
    OK(cvg_txn_commit(t));
    double t1 = cpu_seconds();
    cvg_session_stats st;
    OK(cvg_sync_local(w, r, &st));
    double t2 = cpu_seconds();
    cr_assert_eq(st.ops_received + st.ops_sent, ns->n);
    /* The receiver holds every register. */
    OK(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t));
    for (unsigned i = 0; i < ns->n; i += 997) {
        cvg_key k = {"c", ns->keys[i], "f"};
        cvg_value v;
        OK(cvg_register_get(t, &k, &v));
        cr_assert_eq(v.kind, CVG_VALUE_INT);
        cr_assert_eq(v.as.integer, (int64_t)i);
    }
    cvg_txn_abort(t);
    cvg_replica_close(w);
    cvg_replica_close(r);
    *write_s = t1 - t0;
    *sync_s = t2 - t1;
}

static void
expect_close(const char *what, double crafted, double random)
{
    cr_log_info("%s: crafted %.3f s, random %.3f s", what, crafted, random);
    /* Generous: the shared machine's noise, never a probe chain. */
    cr_expect(crafted <= 3 * random + 0.1,
              "%s: crafted names took %.3f s, random ones %.3f s", what,
              crafted, random);
}

static void
compare(name_set *crafted, size_t len, const char *tag)
{
    static name_set random;
    random_keys(&random, crafted->n, len, 0x5eed);
    char a[32], b[32];
    snprintf(a, sizeof a, "%s-crafted", tag);
    snprintf(b, sizeof b, "%s-random", tag);
    /* Random first, so a warm-up favours the crafted run if anything. */
    double rw, rs, cw, cs;
    write_and_sync(&random, b, &rw, &rs);
    write_and_sync(crafted, a, &cw, &cs);
    expect_close("writes", cw, rw);
    expect_close("sync", cs, rs);
}

Test(keyed_hash, names_crafted_against_the_cache_cost_what_random_ones_do,
     .timeout = 120)
{
    static name_set crafted;
    uint8_t sk[2 + CACHE_KEY_LEN + 4];
    uint64_t first = 0;
    crafted.n = NAMES;
    for (unsigned i = 0; i < NAMES; i++) {
        cache_key(i, crafted.keys[i]);
        /* Its state key: c NUL key NUL f NUL type. */
        sk[0] = 'c';
        sk[1] = 0;
        memcpy(sk + 2, crafted.keys[i], CACHE_KEY_LEN);
        memcpy(sk + 2 + CACHE_KEY_LEN, "\0f\0", 3);
        sk[2 + CACHE_KEY_LEN + 3] = CVG_TYPE_REGISTER;
        uint64_t h = old_cache_hash(sk, sizeof sk) & 0xffff;
        if (i == 0) {
            first = h;
        }
        cr_assert_eq(h, first, "key %u does not collide", i);
    }
    compare(&crafted, CACHE_KEY_LEN, "cache");
}

/* CPU seconds to add a counter op under every key of @p ns to one block
 * (the log cuts its blocks at 4096 ops; a block may name up to
 * CVG__DICT_MAX, and a chain that long shows its cost plainly). */
static double
block_of(const name_set *ns)
{
    cvg__block_writer w;
    memset(&w, 0, sizeof w);
    cvg_replica_id origin;
    memset(origin.bytes, 7, sizeof origin.bytes);
    double t0 = cpu_seconds();
    OK(cvg__block_begin(&w, &origin, 1));
    for (unsigned i = 0; i < ns->n; i++) {
        cvg__op op;
        memset(&op, 0, sizeof op);
        op.pub.dot.origin = origin;
        op.pub.dot.seq = 1 + i;
        op.pub.hlc = 1000 + i;
        op.pub.kind = CVG_OP_COUNTER_ADD;
        op.pub.collection = (cvg_bytes){(const uint8_t *)"c", 1};
        op.pub.key =
            (cvg_bytes){(const uint8_t *)ns->keys[i], strlen(ns->keys[i])};
        op.pub.field = (cvg_bytes){(const uint8_t *)"f", 1};
        op.pub.delta = 1;
        OK(cvg__block_add(&w, &op));
    }
    cvg_bytes out;
    OK(cvg__block_finish(&w, &out));
    double took = cpu_seconds() - t0;
    cvg__block_writer_destroy(&w);
    return took;
}

Test(keyed_hash, names_crafted_against_the_dictionary_cost_what_random_ones_do)
{
    static name_set crafted, random;
    static uint8_t pairs[DICT_STAGES][2][2];
    dict_pairs(pairs);
    uint64_t first = 0;
    crafted.n = DICT_NAMES;
    for (unsigned i = 0; i < DICT_NAMES; i++) {
        dict_key(pairs, i, crafted.keys[i]);
        uint64_t h = old_names_hash("c", crafted.keys[i], "f") & 0xffff;
        if (i == 0) {
            first = h;
        }
        cr_assert_eq(h, first, "key %u does not collide", i);
    }
    random_keys(&random, DICT_NAMES, DICT_KEY_LEN, 0x5eed);
    double r = block_of(&random);
    double c = block_of(&crafted);
    cr_log_info("dictionary: crafted %.4f s, random %.4f s", c, r);
    cr_expect(c <= 3 * r + 0.02,
              "crafted names took %.4f s, random ones %.4f s", c, r);
}

/* Origin ids equal in the 8 bytes the old table hashed, against random
 * ones, straight into the table (a block's origin dictionary is one). */
Test(keyed_hash, origin_ids_crafted_against_the_table_cost_what_random_ones_do)
{
    static cvg_replica_id crafted[NAMES], random[NAMES];
    uint64_t rng = 0xfeed;
    for (unsigned i = 0; i < NAMES; i++) {
        memset(crafted[i].bytes, 0x5a, 8);
        memset(crafted[i].bytes + 8, 0, 8);
        memcpy(crafted[i].bytes + 12, &i, 4);
        for (int j = 0; j < 16; j += 8) {
            uint64_t x = cvg_test_rand(&rng);
            memcpy(random[i].bytes + j, &x, 8);
        }
    }
    double took[2];
    for (int pass = 0; pass < 2; pass++) {
        const cvg_replica_id *ids = pass == 0 ? random : crafted;
        cvg__origins o;
        memset(&o, 0, sizeof o);
        double t0 = cpu_seconds();
        for (int round = 0; round < 4; round++) { /* adds, then finds */
            for (unsigned i = 0; i < NAMES; i++) {
                uint32_t idx;
                bool added;
                OK(cvg__origins_index(&o, &ids[i], &idx, &added));
                cr_assert_eq(idx, i);
                cr_assert_eq(added, round == 0);
            }
        }
        took[pass] = cpu_seconds() - t0;
        cvg__origins_destroy(&o);
    }
    cr_log_info("origins: crafted %.4f s, random %.4f s", took[1], took[0]);
    cr_expect(took[1] <= 3 * took[0] + 0.02,
              "crafted ids took %.4f s, random ones %.4f s", took[1], took[0]);
}
