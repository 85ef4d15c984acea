/*
 * lmdb_single_durable / lmdb_single_relaxed: the floor under converge's
 * single-op commits, on the same disk in the same run. Raw LMDB (the
 * library converge stores in), one environment, one database, one 8-byte
 * counter record rewritten per transaction (begin + put + commit), each
 * commit timed on its own, as single_op_* time converge's. Durable: LMDB's
 * defaults (a sync per commit). Relaxed: MDB_NOSYNC without a writable
 * map, as converge's relaxed mode opens LMDB.
 */
#define _POSIX_C_SOURCE 200809L
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench.h"

static void
lmdb_check(const bench_ctx *ctx, int rc, const char *what)
{
    if (rc != MDB_SUCCESS) {
        bench_die(ctx, "%s: %s", what, mdb_strerror(rc));
    }
}

static void
lmdb_run(const bench_ctx *ctx, bench_run *out, unsigned flags)
{
    char *dir = bench_subdir(ctx, 0);
    if (mkdir(dir, 0700) != 0) {
        bench_die(ctx, "cannot make %s", dir);
    }
    MDB_env *env;
    lmdb_check(ctx, mdb_env_create(&env), "mdb_env_create");
    lmdb_check(ctx, mdb_env_set_mapsize(env, (size_t)64 << 20),
               "mdb_env_set_mapsize");
    lmdb_check(ctx, mdb_env_open(env, dir, flags, 0600), "mdb_env_open");
    MDB_txn *t;
    MDB_dbi db;
    lmdb_check(ctx, mdb_txn_begin(env, NULL, 0, &t), "mdb_txn_begin");
    lmdb_check(ctx, mdb_dbi_open(t, NULL, 0, &db), "mdb_dbi_open");
    lmdb_check(ctx, mdb_txn_commit(t), "mdb_txn_commit");

    double *lat = malloc((size_t)ctx->n * sizeof *lat);
    if (lat == NULL) {
        bench_die(ctx, "out of memory");
    }
    double c0 = bench_cpu_now();
    double start = bench_now();
    for (uint64_t i = 0; i < ctx->n; i++) {
        double t0 = bench_now();
        uint64_t v = i + 1;
        MDB_val k = {1, "n"}, val = {sizeof v, &v};
        lmdb_check(ctx, mdb_txn_begin(env, NULL, 0, &t), "mdb_txn_begin");
        lmdb_check(ctx, mdb_put(t, db, &k, &val, 0), "mdb_put");
        lmdb_check(ctx, mdb_txn_commit(t), "mdb_txn_commit");
        lat[i] = (bench_now() - t0) * 1e6;
    }
    out->seconds = bench_now() - start;
    out->cpu_seconds = bench_cpu_now() - c0;
    out->ops = ctx->n;
    out->lat_us = lat;
    out->nlat = ctx->n;
    if (flags & MDB_NOSYNC) {
        double t0 = bench_now();
        lmdb_check(ctx, mdb_env_sync(env, 1), "mdb_env_sync");
        bench_extra_add(out, "final_sync_ms", (bench_now() - t0) * 1e3, false);
    }
    mdb_env_close(env);
    free(dir);
}

void
wl_lmdb_durable(const bench_ctx *ctx, bench_run *out)
{
    lmdb_run(ctx, out, 0);
}

void
wl_lmdb_relaxed(const bench_ctx *ctx, bench_run *out)
{
    lmdb_run(ctx, out, MDB_NOSYNC);
}
