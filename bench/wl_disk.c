/*
 * relaxed_batch_1k: n counter increments on one field in commits of 1,000,
 * with CVG_RELAXED commits, the relaxed counterpart of counter_1m. Its
 * open is timed apart (open_ms), and allocated_bytes is what the data file
 * takes on disk afterwards: what a relaxed mode that allocates its map's
 * blocks would cost (docs/architecture.md, Damaged and full disks).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <sys/stat.h>

#include "bench.h"

#define BATCH 1000

void
wl_relaxed_batch(const bench_ctx *ctx, bench_run *out)
{
    double t0 = bench_now();
    cvg_replica *r = bench_open(ctx, ctx->rundir, CVG_RELAXED);
    double open_ms = (bench_now() - t0) * 1e3;
    cvg_key k = {"bench", "batch", "n"};

    double c0 = bench_cpu_now();
    double start = bench_now();
    for (uint64_t i = 0; i < ctx->n; i += BATCH) {
        cvg_txn *t = NULL;
        bench_check(ctx, cvg_txn_begin(r, 0, &t), r, "cvg_txn_begin");
        for (uint64_t j = i; j < i + BATCH && j < ctx->n; j++) {
            bench_check(ctx, cvg_counter_add(t, &k, 1, NULL), r,
                        "cvg_counter_add");
        }
        bench_check(ctx, cvg_txn_commit(t), r, "cvg_txn_commit");
    }
    out->seconds = bench_now() - start;
    out->cpu_seconds = bench_cpu_now() - c0;
    out->ops = ctx->n;

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
    bench_extra_add(out, "open_ms", open_ms, false);
    char *data = bench_path(ctx->rundir, "data.mdb");
    struct stat sb;
    if (stat(data, &sb) == 0) {
        bench_extra_add(out, "allocated_bytes", (double)sb.st_blocks * 512,
                        true);
    }
    free(data);
    bench_measure(ctx, r, ctx->rundir, out);
    bench_expect_log(ctx, out);
    cvg_replica_close(r);
}
