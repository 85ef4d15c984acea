/*
 * Many origins: what a sync costs when the replicas know n origins.
 *
 * The origins are synthetic, as in tests/sync/test_origins.c: one counter
 * add of each, applied straight into both replicas' logs with the internal
 * cvg__txn_apply_remote() (untimed; nothing relays those ops, so they need
 * no signatures). This is, with net_idle_1k's raw clients, the bench's only
 * use of internals: the public API can only make ops of the replica's own
 * origin.
 *
 * sync_origins_100k: n origins (100,000; quick 10,000) on both replicas.
 * Timed: the first sync (whole vectors both ways, in VV messages of 16,384
 * entries), a record delete (its op carries A's whole vector) and the sync
 * that takes it to B, then a sync after one new op.
 *
 * sync_incremental_origins_10k: peers that know n origins (10,000; quick
 * 2,000) and peers that know 10, each pair synced twice first so both
 * remember the other's vector; then 20 rounds of one new op on A and a
 * sync, timed one by one. Gives the median ms and the bytes of such a sync
 * at n origins and at 10; protocol 5 makes them nearly equal.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "bench.h"
#include "replica/replica_int.h"

static uint64_t
wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* One counter add of each of @p n origins (ids from @p seed, sorted) into
 * @p r, on ("syn", "x", "n"). */
static void
add_origins(const bench_ctx *ctx, cvg_replica *r, size_t n, uint64_t seed)
{
    cvg_replica_id *ids = calloc(n ? n : 1, sizeof *ids);
    if (ids == NULL) {
        bench_die(ctx, "out of memory");
    }
    uint64_t st = seed;
    for (size_t i = 0; i < n; i++) {
        uint64_t a = bench_rand(&st), b = bench_rand(&st);
        memcpy(ids[i].bytes, &a, 8);
        memcpy(ids[i].bytes + 8, &b, 8);
    }
    qsort(ids, n, sizeof *ids, cvg__dot_cmp_v);
    uint64_t hlc0 = (wall_ms() - 60000) << 16;
    for (size_t done = 0; done < n;) {
        cvg_txn *t;
        bench_check(ctx, cvg_txn_begin(r, 0, &t), r, "cvg_txn_begin");
        size_t end = done + 20000 < n ? done + 20000 : n;
        for (; done < end; done++) {
            cvg__op op;
            memset(&op, 0, sizeof op);
            op.pub.kind = CVG_OP_COUNTER_ADD;
            op.pub.dot.origin = ids[done];
            op.pub.dot.seq = 1;
            op.pub.hlc = hlc0 + done;
            op.pub.collection = (cvg_bytes){(const uint8_t *)"syn", 3};
            op.pub.key = (cvg_bytes){(const uint8_t *)"x", 1};
            op.pub.field = (cvg_bytes){(const uint8_t *)"n", 1};
            op.pub.delta = 1;
            bool conflict;
            bench_check(ctx, cvg__txn_apply_remote(t, &op, &conflict), r,
                        "apply a synthetic origin's op");
        }
        bench_check(ctx, cvg_txn_commit(t), r, "cvg_txn_commit");
    }
    free(ids);
}

static void
add_one(const bench_ctx *ctx, cvg_replica *r, const char *key)
{
    cvg_txn *t;
    cvg_key k = {"r", key, "n"};
    bench_check(ctx, cvg_txn_begin(r, 0, &t), r, "cvg_txn_begin");
    bench_check(ctx, cvg_counter_add(t, &k, 1, NULL), r, "cvg_counter_add");
    bench_check(ctx, cvg_txn_commit(t), r, "cvg_txn_commit");
}

/* One timed cvg_sync_local: seconds, and the bytes both ways. */
static double
timed_sync(const bench_ctx *ctx, cvg_replica *a, cvg_replica *b,
           uint64_t *bytes)
{
    cvg_session_stats st;
    double t0 = bench_now();
    bench_check(ctx, cvg_sync_local(a, b, &st), a, "cvg_sync_local");
    double s = bench_now() - t0;
    if (bytes != NULL) {
        *bytes = st.bytes_sent + st.bytes_received;
    }
    return s;
}

static int64_t
counter(const bench_ctx *ctx, cvg_replica *r, const char *c, const char *k)
{
    cvg_txn *t;
    cvg_key key = {c, k, "n"};
    int64_t v = 0;
    bench_check(ctx, cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t), r,
                "cvg_txn_begin");
    int rc = cvg_counter_get(t, &key, &v);
    cvg_txn_abort(t);
    if (rc == CVG_ENOTFOUND) {
        return -1;
    }
    bench_check(ctx, rc, r, "cvg_counter_get");
    return v;
}

void
wl_origins_sync(const bench_ctx *ctx, bench_run *out)
{
    size_t n = (size_t)ctx->n;
    char *pa = bench_subdir(ctx, 0), *pb = bench_subdir(ctx, 1);
    cvg_replica *a = bench_open(ctx, pa, CVG_RELAXED);
    cvg_replica *b = bench_open(ctx, pb, CVG_RELAXED);
    double t0 = bench_now();
    add_origins(ctx, a, n, 0x0a11);
    add_origins(ctx, b, n, 0x0a11);
    double build = bench_now() - t0;
    add_one(ctx, a, "a");
    uint64_t full_bytes, del_bytes, inc_bytes;
    double full = timed_sync(ctx, a, b, &full_bytes);
    if (counter(ctx, b, "r", "a") != 1) {
        bench_die(ctx, "the first sync did not reach B");
    }
    /* A delete of the counter all n origins added to. */
    cvg_txn *t;
    cvg_key rec = {"syn", "x", "n"};
    double d0 = bench_now();
    bench_check(ctx, cvg_txn_begin(a, 0, &t), a, "cvg_txn_begin");
    bench_check(ctx, cvg_record_delete(t, &rec, NULL), a, "cvg_record_delete");
    bench_check(ctx, cvg_txn_commit(t), a, "cvg_txn_commit");
    double del_commit = bench_now() - d0;
    double del = timed_sync(ctx, a, b, &del_bytes);
    if (counter(ctx, b, "syn", "x") != -1) {
        bench_die(ctx, "the delete did not reach B");
    }
    add_one(ctx, a, "a");
    double inc = timed_sync(ctx, a, b, &inc_bytes);
    if (counter(ctx, b, "r", "a") != 2) {
        bench_die(ctx, "the incremental sync did not reach B");
    }
    out->seconds = full + del + inc;
    out->cpu_seconds = 0;
    out->ops = 3;
    bench_measure(ctx, b, pb, out);
    cvg_replica_close(a);
    cvg_replica_close(b);
    bench_extra_add(out, "origins", (double)n, true);
    bench_extra_add(out, "build_seconds", build, false);
    bench_extra_add(out, "full_sync_seconds", full, false);
    bench_extra_add(out, "full_sync_bytes", (double)full_bytes, true);
    bench_extra_add(out, "delete_commit_seconds", del_commit, false);
    bench_extra_add(out, "delete_sync_seconds", del, false);
    bench_extra_add(out, "delete_sync_bytes", (double)del_bytes, true);
    bench_extra_add(out, "incremental_sync_ms", inc * 1000, false);
    bench_extra_add(out, "incremental_sync_bytes", (double)inc_bytes, true);
    free(pa);
    free(pb);
}

#define ROUNDS 20

static int
cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

/* Median ms and median bytes of ROUNDS syncs after one op, for a pair
 * that knows @p n origins (in subdirectories @p i, @p i + 1). */
static void
incremental(const bench_ctx *ctx, size_t n, unsigned i, double *ms,
            double *bytes)
{
    char *pa = bench_subdir(ctx, i), *pb = bench_subdir(ctx, i + 1);
    cvg_replica *a = bench_open(ctx, pa, CVG_RELAXED);
    cvg_replica *b = bench_open(ctx, pb, CVG_RELAXED);
    add_origins(ctx, a, n, n);
    add_origins(ctx, b, n, n);
    add_one(ctx, a, "a");
    (void)timed_sync(ctx, a, b, NULL); /* whole vectors */
    add_one(ctx, a, "a");
    (void)timed_sync(ctx, a, b, NULL); /* both remember the other's */
    double s[ROUNDS], by[ROUNDS];
    for (int k = 0; k < ROUNDS; k++) {
        add_one(ctx, a, "a");
        uint64_t nb;
        s[k] = timed_sync(ctx, a, b, &nb) * 1000;
        by[k] = (double)nb;
    }
    if (counter(ctx, b, "r", "a") != ROUNDS + 2) {
        bench_die(ctx, "the incremental syncs did not reach B");
    }
    qsort(s, ROUNDS, sizeof *s, cmp_double);
    qsort(by, ROUNDS, sizeof *by, cmp_double);
    *ms = s[ROUNDS / 2];
    *bytes = by[ROUNDS / 2];
    cvg_replica_close(a);
    cvg_replica_close(b);
    free(pa);
    free(pb);
}

void
wl_origins_incremental(const bench_ctx *ctx, bench_run *out)
{
    double ms_n, bytes_n, ms_10, bytes_10;
    incremental(ctx, 10, 2, &ms_10, &bytes_10);
    incremental(ctx, (size_t)ctx->n, 0, &ms_n, &bytes_n);
    out->seconds = ms_n / 1000;
    out->cpu_seconds = 0;
    out->ops = 1;
    bench_extra_add(out, "origins", (double)ctx->n, true);
    bench_extra_add(out, "sync_ms", ms_n, false);
    bench_extra_add(out, "sync_bytes", bytes_n, true);
    bench_extra_add(out, "sync_ms_at_10_origins", ms_10, false);
    bench_extra_add(out, "sync_bytes_at_10_origins", bytes_10, true);
}
