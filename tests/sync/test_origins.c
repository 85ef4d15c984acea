/*
 * Many origins, and version vectors that travel as deltas (protocol 5 on).
 *
 * Origins are made synthetically: one op each, applied straight into both
 * replicas' logs with cvg__txn_apply_remote() (nothing relays them, so
 * they need no signatures), so a replica of 70,000 origins takes a second
 * or so to build. Then:
 *   - a replica with more than 65,536 origins syncs whole vectors (they
 *     take several VV messages) and deletes a record, whose delete carries
 *     all of them, and the delete reaches the peer;
 *   - an incremental sync between peers that know 10,000 origins costs
 *     about the bytes of one between peers that know 10;
 *   - a side that forgot its peer (cvg_sync_peer_forget) gets the peer's
 *     whole vector through VV_WANT, and they converge;
 *   - a delta altered in flight (an entry added, the digest kept) is not
 *     taken: VV_WANT, the whole vector, and the ops the lie would have
 *     kept from the peer do reach it.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "converge.h"

#include "replica/replica_int.h"
#include "sync/wire.h"
#include "testutil.h"

#define OK(call)                                                      \
    do {                                                              \
        int rc_ = (call);                                             \
        cr_assert_eq(rc_, CVG_OK, "%s: %s", #call, cvg_errname(rc_)); \
    } while (0)

static const uint64_t NOW_MS = 1700000000000ull;

static uint64_t
clock_of(void *ctx)
{
    (void)ctx;
    return NOW_MS;
}

static cvg_replica *
open_replica(const char *name)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = CVG_RELAXED;
    o.clock = clock_of;
    cvg_replica *r;
    OK(cvg_replica_open(cvg_test_dir(name), &o, &r));
    return r;
}

/* @p n origin ids from @p seed, sorted (so that counter parts append). */
static cvg_replica_id *
make_ids(size_t n, uint64_t seed)
{
    cvg_replica_id *ids = calloc(n, sizeof *ids);
    cr_assert_not_null(ids);
    uint64_t st = seed;
    for (size_t i = 0; i < n; i++) {
        uint64_t a = cvg_test_rand(&st), b = cvg_test_rand(&st);
        memcpy(ids[i].bytes, &a, 8);
        memcpy(ids[i].bytes + 8, &b, 8);
    }
    qsort(ids, n, sizeof *ids, cvg__dot_cmp_v); /* the id comes first */
    return ids;
}

/* One counter add of each of @p ids (seq 1) into @p r, to the counter
 * (@p collection, "x", "n"), in transactions of 20,000. */
static void
add_origins(cvg_replica *r, const cvg_replica_id *ids, size_t n,
            const char *collection)
{
    for (size_t done = 0; done < n;) {
        cvg_txn *t;
        OK(cvg_txn_begin(r, 0, &t));
        size_t end = done + 20000 < n ? done + 20000 : n;
        for (; done < end; done++) {
            cvg__op op;
            memset(&op, 0, sizeof op);
            op.pub.kind = CVG_OP_COUNTER_ADD;
            op.pub.dot.origin = ids[done];
            op.pub.dot.seq = 1;
            op.pub.hlc = ((NOW_MS - 60000) << 16) + done;
            op.pub.collection =
                (cvg_bytes){(const uint8_t *)collection, strlen(collection)};
            op.pub.key = (cvg_bytes){(const uint8_t *)"x", 1};
            op.pub.field = (cvg_bytes){(const uint8_t *)"n", 1};
            op.pub.delta = 1;
            bool conflict;
            OK(cvg__txn_apply_remote(t, &op, &conflict));
        }
        OK(cvg_txn_commit(t));
    }
}

static int64_t
counter_of(cvg_replica *r, const char *c, const char *k, const char *f)
{
    cvg_txn *t;
    OK(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t));
    cvg_key key = {c, k, f};
    int64_t v = 0;
    int rc = cvg_counter_get(t, &key, &v);
    cvg_txn_abort(t);
    cr_assert(rc == CVG_OK || rc == CVG_ENOTFOUND, "%s", cvg_errname(rc));
    return rc == CVG_OK ? v : INT64_MIN;
}

static void
add(cvg_replica *r, const char *c, const char *k, int64_t d)
{
    cvg_txn *t;
    OK(cvg_txn_begin(r, 0, &t));
    cvg_key key = {c, k, "n"};
    OK(cvg_counter_add(t, &key, d, NULL));
    OK(cvg_txn_commit(t));
}

static uint64_t
vv_size(cvg_replica *r)
{
    cvg_txn *t;
    OK(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t));
    uint64_t n = cvg__txn_vv(t)->n;
    cvg_txn_abort(t);
    return n;
}

/* cvg_sync_local, and the bytes both ways. */
static uint64_t
sync_bytes(cvg_replica *a, cvg_replica *b)
{
    cvg_session_stats st;
    int rc = cvg_sync_local(a, b, &st);
    cr_assert_eq(rc, CVG_OK, "sync: %s (%s | %s)", cvg_errname(rc),
                 cvg_replica_errmsg(a), cvg_replica_errmsg(b));
    return st.bytes_sent + st.bytes_received;
}

Test(origins, more_than_65536_origins_sync_and_delete, .timeout = 120)
{
    const size_t n = 70000;
    cvg_replica *a = open_replica("origins-many-a");
    cvg_replica *b = open_replica("origins-many-b");
    cvg_replica_id *ids = make_ids(n, 0x0a11);
    add_origins(a, ids, n, "syn");
    add_origins(b, ids, n, "syn");
    cr_assert_eq(vv_size(a), n);
    /* Whole vectors of 70,000 entries: several VV messages each way. */
    add(a, "r", "x", 5);
    uint64_t full = sync_bytes(a, b);
    cr_expect_gt(full, 2 * n * 37, "two whole vectors went: %llu bytes",
                 (unsigned long long)full);
    cr_assert_eq(counter_of(b, "r", "x", "n"), 5);
    /* A delete carries A's whole vector (70,001 dots), and B takes it. */
    cvg_txn *t;
    OK(cvg_txn_begin(a, 0, &t));
    cvg_key rec = {"syn", "x", "n"};
    cr_assert_eq(counter_of(a, "syn", "x", "n"), (int64_t)n);
    OK(cvg_record_delete(t, &rec, NULL));
    OK(cvg_txn_commit(t));
    cr_assert_eq(counter_of(a, "syn", "x", "n"), INT64_MIN);
    (void)sync_bytes(a, b);
    cr_expect_eq(counter_of(b, "syn", "x", "n"), INT64_MIN,
                 "the delete reached B");
    /* And the next sync moves only what changed. */
    add(b, "r", "x", 1);
    uint64_t inc = sync_bytes(a, b);
    cr_expect_lt(inc, 4096, "incremental: %llu bytes", (unsigned long long)inc);
    cr_assert_eq(counter_of(a, "r", "x", "n"), 6);
    free(ids);
    cvg_replica_close(a);
    cvg_replica_close(b);
}

/* Two replicas that share @p n synthetic origins and have synced once. */
static void
pair_with_origins(size_t n, const char *name, cvg_replica **a, cvg_replica **b)
{
    char na[64], nb[64];
    snprintf(na, sizeof na, "%s-a", name);
    snprintf(nb, sizeof nb, "%s-b", name);
    *a = open_replica(na);
    *b = open_replica(nb);
    cvg_replica_id *ids = make_ids(n, n);
    add_origins(*a, ids, n, "syn");
    add_origins(*b, ids, n, "syn");
    free(ids);
    add(*a, "r", "a", 1);
    add(*b, "r", "b", 1);
    (void)sync_bytes(*a, *b);
}

/* The bytes of a sync after a push of one op, past the first sync. */
static uint64_t
incremental_bytes(size_t n, const char *name)
{
    cvg_replica *a, *b;
    pair_with_origins(n, name, &a, &b);
    add(a, "r", "a", 1);
    (void)sync_bytes(a, b); /* memory now holds the vectors after the first */
    add(a, "r", "a", 1);
    uint64_t bytes = sync_bytes(a, b);
    cr_assert_eq(counter_of(b, "r", "a", "n"), 3);
    /* Nothing new: the vectors go as empty deltas. */
    uint64_t idle = sync_bytes(a, b);
    cr_expect_lt(idle, bytes, "an idle sync costs less");
    cvg_replica_close(a);
    cvg_replica_close(b);
    return bytes;
}

Test(origins, incremental_sync_bytes_do_not_grow_with_origins, .timeout = 60)
{
    uint64_t small = incremental_bytes(10, "origins-inc-10");
    uint64_t big = incremental_bytes(10000, "origins-inc-10k");
    fprintf(stderr,
            "incremental sync: %llu bytes at 10 origins, %llu at "
            "10,000\n",
            (unsigned long long)small, (unsigned long long)big);
    cr_expect_lt(big, 2 * small + 256,
                 "%llu bytes at 10,000 origins, %llu at 10",
                 (unsigned long long)big, (unsigned long long)small);
}

Test(origins, a_side_that_forgot_its_peer_gets_the_whole_vector, .timeout = 60)
{
    const size_t n = 2000;
    cvg_replica *a, *b;
    pair_with_origins(n, "origins-forgot", &a, &b);
    add(a, "r", "a", 1);
    (void)sync_bytes(a, b);
    cvg_replica_id bid;
    cvg_replica_id_get(b, &bid);
    OK(cvg_sync_peer_forget(a, &bid));
    add(a, "r", "a", 1);
    add(b, "r", "b", 1);
    cvg_session_stats st;
    OK(cvg_sync_local(a, b, &st));
    /* B's delta fitted no memory of A's: B sent its vector whole after. */
    cr_expect_gt(st.bytes_received, n * 37, "B's whole vector: %llu bytes",
                 (unsigned long long)st.bytes_received);
    cr_expect_eq(counter_of(b, "r", "a", "n"), 3);
    cr_expect_eq(counter_of(a, "r", "b", "n"), 2);
    /* And memory again from there: small again. */
    add(a, "r", "a", 1);
    cr_expect_lt(sync_bytes(a, b), 4096);
    cr_expect_eq(counter_of(b, "r", "a", "n"), 4);
    cvg_replica_close(a);
    cvg_replica_close(b);
}

/* ---- A delta altered in flight -------------------------------------------- */

/* Carry messages between @p sa and @p sb until both are quiet; each of B's
 * VV deltas goes through @p tamper first. Counts A's VV_WANTs. */
static void
pump(cvg_session *sa, cvg_session *sb, const cvg_dot *extra, int *wants)
{
    cvg__msg_scratch sc = {0};
    cvg__buf out = {0};
    bool moved = true;
    for (int turns = 0; moved && turns < 1000; turns++) {
        moved = false;
        cvg_bytes m;
        while (cvg_session_output(sa, &m) == CVG_OK) {
            moved = true;
            cvg__msg d;
            if (cvg__msg_decode(m.data, m.len, &d, &sc) == CVG_OK &&
                d.type == CVG__MSG_VV_WANT) {
                (*wants)++;
            }
            (void)cvg_session_input(sb, m.data, m.len);
        }
        while (cvg_session_output(sb, &m) == CVG_OK) {
            moved = true;
            cvg__msg d;
            cvg_bytes send = m;
            if (cvg__msg_decode(m.data, m.len, &d, &sc) == CVG_OK &&
                d.type == CVG__MSG_VV && d.vv_base != 0) {
                /* The same delta with one more entry, the digest kept. */
                cvg_dot vv[64];
                uint8_t heads[64 * CVG__HEAD_BYTES] = {0};
                size_t k = 0;
                bool put = false;
                cr_assert_lt(d.vv_n, 63);
                for (size_t i = 0; i < d.vv_n; i++) {
                    if (!put &&
                        cvg__id_cmp(&extra->origin, &d.vv[i].origin) < 0) {
                        vv[k++] = *extra;
                        put = true;
                    }
                    vv[k++] = d.vv[i];
                }
                if (!put) {
                    vv[k++] = *extra;
                }
                d.vv = vv;
                d.vv_n = k;
                d.heads = heads;
                out.len = 0;
                OK(cvg__msg_encode(&d, &out));
                send = (cvg_bytes){out.p, out.len};
            }
            (void)cvg_session_input(sa, send.data, send.len);
        }
    }
    cvg__buf_free(&out);
    cvg__msg_scratch_destroy(&sc);
}

Test(origins, a_delta_with_a_wrong_digest_gets_the_whole_vector)
{
    cvg_replica *a = open_replica("origins-lie-a");
    cvg_replica *b = open_replica("origins-lie-b");
    cvg_replica *t = open_replica("origins-lie-t");
    /* T's first op reaches both; A and B sync (memory); T's next two reach
     * A only. */
    add(t, "t", "x", 1);
    (void)sync_bytes(t, a);
    (void)sync_bytes(t, b);
    (void)sync_bytes(a, b);
    add(t, "t", "x", 1);
    add(t, "t", "x", 1);
    (void)sync_bytes(t, a);
    add(b, "r", "b", 1);
    /* B's delta claims T's ops up to seq 3: taken, A would never send B
     * T's last two. */
    cvg_replica_id tid;
    cvg_replica_id_get(t, &tid);
    cvg_dot lie = {tid, 3};
    cvg_session *sa, *sb;
    OK(cvg_session_open(a, NULL, &sa));
    OK(cvg_session_open(b, NULL, &sb));
    int wants = 0;
    pump(sa, sb, &lie, &wants);
    cr_expect_eq(cvg_session_error(sa), CVG_OK, "%s", cvg_replica_errmsg(a));
    cr_expect_eq(cvg_session_error(sb), CVG_OK, "%s", cvg_replica_errmsg(b));
    cr_expect(cvg_session_done(sa) && cvg_session_done(sb));
    cr_expect_eq(wants, 1, "A asked for B's whole vector once");
    cvg_session_close(sa);
    cvg_session_close(sb);
    cr_expect_eq(counter_of(b, "t", "x", "n"), 3, "T's ops reached B");
    cr_expect_eq(counter_of(a, "r", "b", "n"), 1);
    cvg_replica_close(a);
    cvg_replica_close(b);
    cvg_replica_close(t);
}
