/*
 * writers_32_durable: 32 threads share one replica (behind one mutex, as
 * a replica is used by one thread at a time) and each commits single
 * counter adds durably, n in all. The figure for a group commit to beat:
 * today each commit is its own sync, so the rate is the single writer's
 * (single_op_durable) at best. Extra: threads, and per_writer_commits_per_s
 * (the rate each thread saw).
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdlib.h>

#include "bench.h"

#define WRITERS 32

typedef struct shared {
    const bench_ctx *ctx;
    cvg_replica *r;
    pthread_mutex_t mu;
    uint64_t per_thread;
} shared;

static void *
writer(void *arg)
{
    shared *s = arg;
    cvg_key k = {"bench", "writers", "n"};
    for (uint64_t i = 0; i < s->per_thread; i++) {
        pthread_mutex_lock(&s->mu);
        cvg_txn *t = NULL;
        bench_check(s->ctx, cvg_txn_begin(s->r, 0, &t), s->r, "cvg_txn_begin");
        bench_check(s->ctx, cvg_counter_add(t, &k, 1, NULL), s->r,
                    "cvg_counter_add");
        bench_check(s->ctx, cvg_txn_commit(t), s->r, "cvg_txn_commit");
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

void
wl_writers(const bench_ctx *ctx, bench_run *out)
{
    shared s = {.ctx = ctx, .per_thread = ctx->n / WRITERS};
    if (s.per_thread == 0) {
        s.per_thread = 1;
    }
    s.r = bench_open(ctx, ctx->rundir, CVG_DURABLE);
    pthread_mutex_init(&s.mu, NULL);
    pthread_t th[WRITERS];
    double c0 = bench_cpu_now();
    double start = bench_now();
    for (int i = 0; i < WRITERS; i++) {
        if (pthread_create(&th[i], NULL, writer, &s) != 0) {
            bench_die(ctx, "pthread_create failed");
        }
    }
    for (int i = 0; i < WRITERS; i++) {
        pthread_join(th[i], NULL);
    }
    out->seconds = bench_now() - start;
    out->cpu_seconds = bench_cpu_now() - c0;
    out->ops = s.per_thread * WRITERS;
    pthread_mutex_destroy(&s.mu);

    cvg_txn *t = NULL;
    bench_check(ctx, cvg_txn_begin(s.r, CVG_TXN_READ_ONLY, &t), s.r,
                "cvg_txn_begin(read)");
    cvg_key k = {"bench", "writers", "n"};
    int64_t v = 0;
    bench_check(ctx, cvg_counter_get(t, &k, &v), s.r, "cvg_counter_get");
    cvg_txn_abort(t);
    if (v != (int64_t)out->ops) {
        bench_die(ctx, "counter is %lld, expected %llu", (long long)v,
                  (unsigned long long)out->ops);
    }
    bench_measure(ctx, s.r, ctx->rundir, out);
    bench_expect_log(ctx, out);
    cvg_replica_close(s.r);
    bench_extra_add(out, "threads", WRITERS, true);
    bench_extra_add(out, "per_writer_commits_per_s",
                    (double)s.per_thread / out->seconds, false);
}
