/*
 * register_200k: n register sets on distinct fields (collection "c", key
 * "k<i/100>", field "f<i%100>", int values), then n overwrites of random
 * existing fields, all in commits of 1,000. Then every field is read back
 * (timed apart, 1,000 reads per read transaction) and checked against the
 * last value written to it. The slowest commit of each phase is reported
 * (insert_slowest_commit_ms, overwrite_slowest_commit_ms). The replica gets
 * the full check (cvg_replica_check, timed apart: check_ms), then a compaction
 * (cvg_replica_compact, timed apart: compact_ms; compacted_bytes, and
 * file_per_live_pages: the file before it against the pages in use).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bench.h"

#define REG_BATCH 1000u
#define REG_FIELDS_PER_KEY 100u
#define NAME_LEN 24

typedef struct names {
    char *keys;   /* nkeys * NAME_LEN */
    char *fields; /* REG_FIELDS_PER_KEY * NAME_LEN */
} names;

static cvg_key
reg_key(const names *nm, uint64_t i)
{
    cvg_key k = {"c", nm->keys + (size_t)(i / REG_FIELDS_PER_KEY) * NAME_LEN,
                 nm->fields + (size_t)(i % REG_FIELDS_PER_KEY) * NAME_LEN};
    return k;
}

/* Write value vals[idx[j]] to field idx[j] (or j when idx is NULL) for j in
 * 0..n, in commits of REG_BATCH; the slowest commit's seconds in
 * @p slowest (a checkpoint of the journal lands in one). */
static void
write_phase(const bench_ctx *ctx, cvg_replica *r, const names *nm,
            const uint64_t *idx, const int64_t *vals, uint64_t n,
            double *slowest)
{
    uint64_t j = 0;
    *slowest = 0;
    while (j < n) {
        double t0 = bench_now();
        cvg_txn *t = NULL;
        bench_check(ctx, cvg_txn_begin(r, 0, &t), r, "cvg_txn_begin");
        for (unsigned b = 0; b < REG_BATCH && j < n; b++, j++) {
            uint64_t i = idx != NULL ? idx[j] : j;
            cvg_key k = reg_key(nm, i);
            cvg_value v = cvg_value_int(vals[j]);
            bench_check(ctx, cvg_register_set(t, &k, &v, NULL), r,
                        "cvg_register_set");
        }
        bench_check(ctx, cvg_txn_commit(t), r, "cvg_txn_commit");
        double took = bench_now() - t0;
        if (took > *slowest) {
            *slowest = took;
        }
    }
}

void
wl_register(const bench_ctx *ctx, bench_run *out)
{
    uint64_t n = ctx->n;
    uint64_t nkeys = (n + REG_FIELDS_PER_KEY - 1) / REG_FIELDS_PER_KEY;
    names nm;
    nm.keys = malloc((size_t)nkeys * NAME_LEN);
    nm.fields = malloc((size_t)REG_FIELDS_PER_KEY * NAME_LEN);
    uint64_t *idx = calloc((size_t)n, sizeof *idx);
    int64_t *vals = calloc((size_t)n, sizeof *vals);
    int64_t *expect = malloc((size_t)n * sizeof *expect);
    if (nm.keys == NULL || nm.fields == NULL || idx == NULL || vals == NULL ||
        expect == NULL) {
        bench_die(ctx, "out of memory");
    }
    for (uint64_t i = 0; i < nkeys; i++) {
        snprintf(nm.keys + i * NAME_LEN, NAME_LEN, "k%llu",
                 (unsigned long long)i);
    }
    for (unsigned i = 0; i < REG_FIELDS_PER_KEY; i++) {
        snprintf(nm.fields + (size_t)i * NAME_LEN, NAME_LEN, "f%u", i);
    }

    /* Phase 1 values: field i gets i. Phase 2: a fixed random sequence of
     * fields, the j-th overwrite writing n + j. */
    for (uint64_t i = 0; i < n; i++) {
        vals[i] = (int64_t)i;
        expect[i] = (int64_t)i;
    }
    cvg_replica *r = bench_open(ctx, ctx->rundir, CVG_DURABLE);

    double c0 = bench_cpu_now();
    double t0 = bench_now();
    double slow_insert, slow_overwrite;
    write_phase(ctx, r, &nm, NULL, vals, n, &slow_insert);
    double t1 = bench_now();
    double c1 = bench_cpu_now();

    uint64_t seed = 42;
    for (uint64_t j = 0; j < n; j++) {
        idx[j] = bench_rand(&seed) % n;
        vals[j] = (int64_t)(n + j);
        expect[idx[j]] = vals[j];
    }
    double c2 = bench_cpu_now();
    double t2 = bench_now();
    write_phase(ctx, r, &nm, idx, vals, n, &slow_overwrite);
    double t3 = bench_now();
    double c3 = bench_cpu_now();

    /* Read back every field, REG_BATCH reads per read transaction: a
     * transaction keeps every field it has read decoded in memory until it
     * ends, so one transaction over all n fields would dominate the peak
     * RSS this workload reports. */
    cvg_txn *t = NULL;
    for (uint64_t i = 0; i < n; i++) {
        if (i % REG_BATCH == 0) {
            cvg_txn_abort(t);
            bench_check(ctx, cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t), r,
                        "cvg_txn_begin(read)");
        }
        cvg_key k = reg_key(&nm, i);
        cvg_value v;
        bench_check(ctx, cvg_register_get(t, &k, &v), r, "cvg_register_get");
        if (v.kind != CVG_VALUE_INT || v.as.integer != expect[i]) {
            bench_die(ctx, "%s/%s holds kind %d value %lld, expected %lld",
                      k.key, k.field, (int)v.kind, (long long)v.as.integer,
                      (long long)expect[i]);
        }
    }
    cvg_txn_abort(t);
    double t4 = bench_now();

    out->seconds = (t1 - t0) + (t3 - t2);
    out->cpu_seconds = (c1 - c0) + (c3 - c2);
    out->ops = 2 * n;
    bench_measure(ctx, r, ctx->rundir, out);
    bench_expect_log(ctx, out);
    cvg_replica_close(r);

    /* The full check of what it wrote (untimed in seconds). */
    cvg_check_report rep;
    double t5 = bench_now();
    int crc = cvg_replica_check(ctx->rundir, &rep);
    double t6 = bench_now();
    if (crc != CVG_OK) {
        bench_die(ctx, "cvg_replica_check: %s (%s)", cvg_errname(crc),
                  rep.problem);
    }

    bench_extra_add(out, "insert_ops_per_s", (double)n / (t1 - t0), false);
    bench_extra_add(out, "overwrite_ops_per_s", (double)n / (t3 - t2), false);
    bench_extra_add(out, "read_ops_per_s", (double)n / (t4 - t3), false);
    bench_extra_add(out, "insert_slowest_commit_ms", slow_insert * 1e3, false);
    bench_extra_add(out, "overwrite_slowest_commit_ms", slow_overwrite * 1e3,
                    false);
    bench_extra_add(out, "ops_per_commit", REG_BATCH, true);
    bench_extra_add(out, "check_ms", (t6 - t5) * 1e3, false);

    /* Then the file given its free pages back (untimed in seconds). */
    cvg_compact_report cr;
    double t7 = bench_now();
    crc = cvg_replica_compact(ctx->rundir, &cr);
    double t8 = bench_now();
    if (crc != CVG_OK) {
        bench_die(ctx, "cvg_replica_compact: %s (%s)", cvg_errname(crc),
                  cr.problem);
    }
    bench_extra_add(out, "compact_ms", (t8 - t7) * 1e3, false);
    bench_extra_add(out, "compacted_bytes", (double)cr.bytes_after, true);
    bench_extra_add(out, "compacted_bytes_per_op",
                    (double)cr.bytes_after / (double)(2 * n), false);
    bench_extra_add(out, "file_per_live_pages",
                    (double)cr.bytes_before / ((double)(cr.live_pages + 2) *
                                               (double)sysconf(_SC_PAGESIZE)),
                    false);

    free(nm.keys);
    free(nm.fields);
    free(idx);
    free(vals);
    free(expect);
}
