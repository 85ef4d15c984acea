/*
 * set_100k: n adds of distinct int elements 0..n-1 into one set field, then
 * removal of the even ones, in commits of 1,000. A set cursor then checks
 * that exactly the odd elements remain.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>

#include "bench.h"

#define SET_BATCH 1000u

/* Add (remove == false) or remove elements first, first + step, ... for
 * count elements, in commits of SET_BATCH. */
static void
set_phase(const bench_ctx *ctx, cvg_replica *r, const cvg_key *k, bool remove,
          uint64_t first, uint64_t step, uint64_t count)
{
    uint64_t j = 0;
    while (j < count) {
        cvg_txn *t = NULL;
        bench_check(ctx, cvg_txn_begin(r, 0, &t), r, "cvg_txn_begin");
        for (unsigned b = 0; b < SET_BATCH && j < count; b++, j++) {
            cvg_value e = cvg_value_int((int64_t)(first + j * step));
            if (remove) {
                bench_check(ctx, cvg_set_remove(t, k, &e, NULL), r,
                            "cvg_set_remove");
            } else {
                bench_check(ctx, cvg_set_add(t, k, &e, NULL), r, "cvg_set_add");
            }
        }
        bench_check(ctx, cvg_txn_commit(t), r, "cvg_txn_commit");
    }
}

void
wl_set(const bench_ctx *ctx, bench_run *out)
{
    uint64_t n = ctx->n;
    uint64_t nremove = (n + 1) / 2; /* the even elements 0, 2, 4, ... */
    cvg_key k = {"s", "k", "members"};
    cvg_replica *r = bench_open(ctx, ctx->rundir, CVG_DURABLE);

    double c0 = bench_cpu_now();
    double t0 = bench_now();
    set_phase(ctx, r, &k, false, 0, 1, n);
    double t1 = bench_now();
    set_phase(ctx, r, &k, true, 0, 2, nremove);
    double t2 = bench_now();
    out->cpu_seconds = bench_cpu_now() - c0;

    /* Walk the set: exactly the odd elements below n, each once. */
    uint8_t *seen = calloc((size_t)n, 1);
    if (seen == NULL) {
        bench_die(ctx, "out of memory");
    }
    cvg_txn *t = NULL;
    bench_check(ctx, cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t), r,
                "cvg_txn_begin(read)");
    cvg_set_cursor *c = NULL;
    bench_check(ctx, cvg_set_cursor_open(t, &k, &c), r, "cvg_set_cursor_open");
    uint64_t count = 0;
    for (;;) {
        cvg_value v;
        int rc = cvg_set_cursor_next(c, &v);
        if (rc == CVG_DONE) {
            break;
        }
        bench_check(ctx, rc, r, "cvg_set_cursor_next");
        if (v.kind != CVG_VALUE_INT || v.as.integer < 0 ||
            (uint64_t)v.as.integer >= n || v.as.integer % 2 == 0) {
            bench_die(ctx, "unexpected element (kind %d, %lld) in the set",
                      (int)v.kind, (long long)v.as.integer);
        }
        if (seen[v.as.integer]) {
            bench_die(ctx,
                      "the set cursor returned element %lld twice (after "
                      "%llu elements)",
                      (long long)v.as.integer, (unsigned long long)count);
        }
        seen[v.as.integer] = 1;
        count++;
    }
    cvg_set_cursor_close(c);
    cvg_txn_abort(t);
    double t3 = bench_now();
    free(seen);
    if (count != n - nremove) {
        bench_die(ctx, "the set holds %llu elements, expected %llu",
                  (unsigned long long)count, (unsigned long long)(n - nremove));
    }

    out->seconds = t2 - t0;
    out->ops = n + nremove;
    bench_measure(ctx, r, ctx->rundir, out);
    bench_expect_log(ctx, out);
    cvg_replica_close(r);

    bench_extra_add(out, "add_ops_per_s", (double)n / (t1 - t0), false);
    bench_extra_add(out, "remove_ops_per_s", (double)nremove / (t2 - t1),
                    false);
    bench_extra_add(out, "scan_elems_per_s", (double)count / (t3 - t2), false);
    bench_extra_add(out, "final_elements", (double)count, true);
}
