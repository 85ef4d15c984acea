/*
 * Counter workloads: counter_1m (one field), counter_1m_spread (1,000
 * fields), reopen_1m (open a counter_1m replica and read the counter) and
 * check_1m (the full check of that replica).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "bench.h"

#define COUNTER_BATCH 1000u
#define SPREAD_FIELDS 1000u

/* Field names: "n" for a single field, else "f0000", "f0001", ... */
static char *
field_names(const bench_ctx *ctx, unsigned nfields)
{
    char *names = malloc((size_t)nfields * 8);
    if (names == NULL) {
        bench_die(ctx, "out of memory");
    }
    for (unsigned i = 0; i < nfields; i++) {
        if (nfields == 1) {
            snprintf(names, 8, "n");
        } else {
            snprintf(names + (size_t)i * 8, 8, "f%04u", i % 10000u);
        }
    }
    return names;
}

double
bench_counter_fill(const bench_ctx *ctx, cvg_replica *r, uint64_t n,
                   uint64_t batch, unsigned nfields, double *cpu_out)
{
    char *names = field_names(ctx, nfields);
    cvg_key k = {"bench", "counter", names};
    double c0 = bench_cpu_now();
    double t0 = bench_now();
    uint64_t i = 0;
    while (i < n) {
        cvg_txn *t = NULL;
        bench_check(ctx, cvg_txn_begin(r, 0, &t), r, "cvg_txn_begin");
        for (uint64_t j = 0; j < batch && i < n; j++, i++) {
            k.field = names + (size_t)(i % nfields) * 8;
            bench_check(ctx, cvg_counter_add(t, &k, 1, NULL), r,
                        "cvg_counter_add");
        }
        bench_check(ctx, cvg_txn_commit(t), r, "cvg_txn_commit");
    }
    double secs = bench_now() - t0;
    if (cpu_out != NULL) {
        *cpu_out = bench_cpu_now() - c0;
    }
    free(names);
    return secs;
}

void
bench_counter_verify(const bench_ctx *ctx, cvg_replica *r, uint64_t n,
                     unsigned nfields)
{
    char *names = field_names(ctx, nfields);
    cvg_txn *t = NULL;
    bench_check(ctx, cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t), r,
                "cvg_txn_begin(read)");
    for (unsigned i = 0; i < nfields; i++) {
        cvg_key k = {"bench", "counter", names + (size_t)i * 8};
        int64_t want = (int64_t)(n / nfields + (i < n % nfields ? 1 : 0));
        int64_t got = 0;
        int rc = cvg_counter_get(t, &k, &got);
        if (!(rc == CVG_OK || (rc == CVG_ENOTFOUND && want == 0))) {
            bench_check(ctx, rc, r, "cvg_counter_get");
        }
        if (got != want) {
            bench_die(ctx, "counter %s is %lld, expected %lld", k.field,
                      (long long)got, (long long)want);
        }
    }
    cvg_txn_abort(t);
    free(names);
}

static void
counter_run(const bench_ctx *ctx, bench_run *out, unsigned nfields)
{
    cvg_replica *r = bench_open(ctx, ctx->rundir, CVG_DURABLE);
    out->seconds = bench_counter_fill(ctx, r, ctx->n, COUNTER_BATCH, nfields,
                                      &out->cpu_seconds);
    out->ops = ctx->n;
    bench_counter_verify(ctx, r, ctx->n, nfields);
    bench_measure(ctx, r, ctx->rundir, out);
    bench_expect_log(ctx, out);
    bench_extra_add(out, "fields", nfields, true);
    bench_extra_add(out, "ops_per_commit", COUNTER_BATCH, true);
    cvg_replica_close(r);
}

void
wl_counter(const bench_ctx *ctx, bench_run *out)
{
    counter_run(ctx, out, 1);
}

void
wl_counter_spread(const bench_ctx *ctx, bench_run *out)
{
    counter_run(ctx, out, SPREAD_FIELDS);
}

/* The replica counter_1m kept, or, when run without it, one made here
 * (untimed) with ctx->n increments. */
static const char *
kept_counter(const bench_ctx *ctx)
{
    static char *path;
    if (path == NULL) {
        path = bench_path(ctx->root, BENCH_COUNTER_KEPT);
        struct stat sb;
        char *data = bench_path(path, "data.mdb");
        bool have = stat(data, &sb) == 0;
        free(data);
        if (!have) {
            fprintf(stderr, " (first building a %llu-op counter replica)",
                    (unsigned long long)ctx->n);
            cvg_replica *r = bench_open(ctx, path, CVG_DURABLE);
            (void)bench_counter_fill(ctx, r, ctx->n, COUNTER_BATCH, 1, NULL);
            cvg_replica_close(r);
        }
    }
    return path;
}

/* reopen_1m: open the kept counter replica and read the counter. Each run
 * is one open. */
void
wl_reopen(const bench_ctx *ctx, bench_run *out)
{
    const char *path = kept_counter(ctx);
    cvg_replica_options o;
    bench_options(&o, CVG_DURABLE);
    o.no_create = true;
    cvg_key k = {"bench", "counter", "n"};
    int64_t value = 0;

    double c0 = bench_cpu_now();
    double t0 = bench_now();
    cvg_replica *r = NULL;
    int rc = cvg_replica_open(path, &o, &r);
    if (rc != CVG_OK) {
        bench_die(ctx, "cvg_replica_open(%s) failed: %s (%s)", path,
                  cvg_errname(rc), cvg_strerror(rc));
    }
    cvg_txn *t = NULL;
    bench_check(ctx, cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t), r,
                "cvg_txn_begin(read)");
    bench_check(ctx, cvg_counter_get(t, &k, &value), r, "cvg_counter_get");
    out->seconds = bench_now() - t0;
    out->cpu_seconds = bench_cpu_now() - c0;
    cvg_txn_abort(t);

    out->ops = 1;
    bench_measure(ctx, r, path, out);
    cvg_replica_close(r);
    if (value <= 0 || (uint64_t)value != out->log_ops) {
        bench_die(ctx, "counter is %lld but the log holds %llu ops",
                  (long long)value, (unsigned long long)out->log_ops);
    }
    bench_extra_add(out, "open_ms", out->seconds * 1e3, false);
}

/* check_1m: the full check (cvg_replica_check) of the kept counter
 * replica: every page read by hand, every record's checksum, every op of
 * the log decoded. ops_per_s is ops checked a second. */
void
wl_check(const bench_ctx *ctx, bench_run *out)
{
    const char *path = kept_counter(ctx);
    cvg_check_report rep;
    double c0 = bench_cpu_now();
    double t0 = bench_now();
    int rc = cvg_replica_check(path, &rep);
    out->seconds = bench_now() - t0;
    out->cpu_seconds = bench_cpu_now() - c0;
    if (rc != CVG_OK) {
        bench_die(ctx, "cvg_replica_check(%s) failed: %s (%s)", path,
                  cvg_errname(rc), rep.problem);
    }
    out->ops = rep.log_ops;
    bench_extra_add(out, "check_ms", out->seconds * 1e3, false);
    bench_extra_add(out, "pages", (double)rep.pages, true);
    bench_extra_add(out, "records", (double)rep.records, true);
    bench_extra_add(out, "log_blocks", (double)rep.log_blocks, true);
}
