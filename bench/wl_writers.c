/*
 * writers_32_durable: 32 threads share one replica and each commits single
 * counter adds durably through cvg_replica_write(), n in all: the calls
 * made while a group commits share the next commit and its sync (group
 * commit), so the rate can pass the single writer's (single_op_durable).
 * Extra: threads, and per_writer_commits_per_s (the rate each thread saw).
 * A failed call dies with its message, read under the replica's lock.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdlib.h>

#include "bench.h"

#define WRITERS 32

typedef struct shared {
    const bench_ctx *ctx;
    cvg_replica *r;
    uint64_t per_thread;
} shared;

static int
add_one(cvg_txn *t, void *ctx)
{
    (void)ctx;
    cvg_key k = {"bench", "writers", "n"};
    return cvg_counter_add(t, &k, 1, NULL);
}

static void *
writer(void *arg)
{
    shared *s = arg;
    for (uint64_t i = 0; i < s->per_thread; i++) {
        int rc = cvg_replica_write(s->r, add_one, NULL);
        if (rc != CVG_OK) {
            (void)cvg_replica_lock(s->r);
            bench_check(s->ctx, rc, s->r, "cvg_replica_write");
        }
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
