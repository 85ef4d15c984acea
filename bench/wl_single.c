/*
 * single_op_durable / single_op_relaxed: one counter add per transaction,
 * each transaction (begin + add + commit) timed on its own.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>

#include "bench.h"

static void
single_run(const bench_ctx *ctx, bench_run *out, cvg_durability d)
{
    cvg_replica *r = bench_open(ctx, ctx->rundir, d);
    cvg_key k = {"bench", "single", "n"};
    double *lat = malloc((size_t)ctx->n * sizeof *lat);
    if (lat == NULL) {
        bench_die(ctx, "out of memory");
    }

    double c0 = bench_cpu_now();
    double start = bench_now();
    for (uint64_t i = 0; i < ctx->n; i++) {
        double t0 = bench_now();
        cvg_txn *t = NULL;
        bench_check(ctx, cvg_txn_begin(r, 0, &t), r, "cvg_txn_begin");
        bench_check(ctx, cvg_counter_add(t, &k, 1, NULL), r, "cvg_counter_add");
        bench_check(ctx, cvg_txn_commit(t), r, "cvg_txn_commit");
        lat[i] = (bench_now() - t0) * 1e6;
    }
    out->seconds = bench_now() - start;
    out->cpu_seconds = bench_cpu_now() - c0;
    out->ops = ctx->n;
    out->lat_us = lat;
    out->nlat = ctx->n;

    if (d == CVG_RELAXED) {
        double t0 = bench_now();
        bench_check(ctx, cvg_replica_flush(r), r, "cvg_replica_flush");
        bench_extra_add(out, "final_sync_ms", (bench_now() - t0) * 1e3, false);
    }

    cvg_txn *t = NULL;
    bench_check(ctx, cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t), r,
                "cvg_txn_begin(read)");
    int64_t v = 0;
    bench_check(ctx, cvg_counter_get(t, &k, &v), r, "cvg_counter_get");
    cvg_txn_abort(t);
    if (v != (int64_t)ctx->n) {
        bench_die(ctx, "counter is %lld, expected %llu", (long long)v,
                  (unsigned long long)ctx->n);
    }
    bench_measure(ctx, r, ctx->rundir, out);
    bench_expect_log(ctx, out);
    cvg_replica_close(r);
}

void
wl_single_durable(const bench_ctx *ctx, bench_run *out)
{
    single_run(ctx, out, CVG_DURABLE);
}

void
wl_single_relaxed(const bench_ctx *ctx, bench_run *out)
{
    single_run(ctx, out, CVG_RELAXED);
}
