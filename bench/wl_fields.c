/*
 * delete_fields_10k / delete_fields_100k: the delete of one record of n
 * counter fields (collection "bench", key "wide", fields "f<i>", each
 * added to once), on its writer and on a receiver. Untimed setup: replica
 * r0 writes the fields in commits of 10,000 and syncs them to r1. Timed:
 * the delete on r0 (begin, cvg_record_delete, commit), then the sync that
 * carries it to r1, apart: writer_ms and receiver_ms. `seconds` is their
 * sum and `ops` is 1 (the delete). Checked: every field is gone on both
 * replicas and the delete is the only op the sync moved.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"

static void
field_key(uint64_t i, char *buf, size_t n, cvg_key *k)
{
    snprintf(buf, n, "f%07llu", (unsigned long long)i);
    k->collection = "bench";
    k->key = "wide";
    k->field = buf;
}

static void
expect_gone(const bench_ctx *ctx, cvg_replica *r, uint64_t n)
{
    cvg_txn *t = NULL;
    bench_check(ctx, cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t), r,
                "cvg_txn_begin(read)");
    for (uint64_t i = 0; i < n; i++) {
        char f[24];
        cvg_key k;
        field_key(i, f, sizeof f, &k);
        int64_t v = 0;
        int rc = cvg_counter_get(t, &k, &v);
        if (rc != CVG_ENOTFOUND) {
            bench_die(ctx, "field %s survived the delete (%s)", f,
                      cvg_errname(rc));
        }
    }
    cvg_txn_abort(t);
}

void
wl_fields(const bench_ctx *ctx, bench_run *out)
{
    char *d0 = bench_subdir(ctx, 0), *d1 = bench_subdir(ctx, 1);
    cvg_replica *w = bench_open(ctx, d0, CVG_DURABLE);
    cvg_replica *r = bench_open(ctx, d1, CVG_DURABLE);
    const uint64_t batch = 10000;
    for (uint64_t i = 0; i < ctx->n; i += batch) {
        cvg_txn *t = NULL;
        bench_check(ctx, cvg_txn_begin(w, 0, &t), w, "cvg_txn_begin");
        for (uint64_t j = i; j < i + batch && j < ctx->n; j++) {
            char f[24];
            cvg_key k;
            field_key(j, f, sizeof f, &k);
            bench_check(ctx, cvg_counter_add(t, &k, 1, NULL), w,
                        "cvg_counter_add");
        }
        bench_check(ctx, cvg_txn_commit(t), w, "cvg_txn_commit");
    }
    cvg_session_stats st;
    bench_check(ctx, cvg_sync_local(w, r, &st), w, "cvg_sync_local(setup)");

    double c0 = bench_cpu_now();
    double t0 = bench_now();
    cvg_txn *t = NULL;
    bench_check(ctx, cvg_txn_begin(w, 0, &t), w, "cvg_txn_begin");
    cvg_key rec = {"bench", "wide", "any"};
    bench_check(ctx, cvg_record_delete(t, &rec, NULL), w, "cvg_record_delete");
    bench_check(ctx, cvg_txn_commit(t), w, "cvg_txn_commit");
    double t1 = bench_now();
    bench_check(ctx, cvg_sync_local(w, r, &st), w, "cvg_sync_local");
    double t2 = bench_now();
    out->seconds = t2 - t0;
    out->cpu_seconds = bench_cpu_now() - c0;
    out->ops = 1;
    if (st.ops_sent != 1 || st.ops_received != 0) {
        bench_die(ctx,
                  "the sync moved %llu ops out and %llu in, not the "
                  "delete alone",
                  (unsigned long long)st.ops_sent,
                  (unsigned long long)st.ops_received);
    }
    bench_extra_add(out, "fields", (double)ctx->n, true);
    bench_extra_add(out, "writer_ms", (t1 - t0) * 1e3, false);
    bench_extra_add(out, "receiver_ms", (t2 - t1) * 1e3, false);
    bench_extra_add(out, "sync_bytes", (double)st.bytes_sent, true);

    expect_gone(ctx, w, ctx->n);
    expect_gone(ctx, r, ctx->n);
    bench_measure(ctx, w, d0, out);
    if (out->log_ops != ctx->n + 1) {
        bench_die(ctx, "the log holds %llu ops, expected %llu",
                  (unsigned long long)out->log_ops,
                  (unsigned long long)ctx->n + 1);
    }
    cvg_replica_close(w);
    cvg_replica_close(r);
    free(d0);
    free(d1);
}
