/*
 * Live propagation: n clients, each a replica of its own with a
 * background syncer (a live connection), connected to one server on a
 * thread of this process, on 127.0.0.1.
 *
 * Client i (1 <= i < n) adds 1 to its own counter field "live/w<i>/n" at
 * a steady rate (BENCH_LIVE_RATE ops/s each, 100 by default), one op per
 * commit, under its syncer's lock, then notifies the syncer (debounce
 * 5 ms); client 0 writes too and is the observer. One writer thread
 * drives every client, ticking every 10 ms and writing what each is due,
 * so when the machine cannot keep the pace the rate reached is printed,
 * not the one asked. The writer stamps each op's commit time
 * (CLOCK_MONOTONIC) before it commits; the observer thread reads every
 * writer's field on client 0 every 2 ms, and each op that arrived since
 * its last look gives one latency sample, from its commit on client i to
 * the look that saw it on client 0 (so up to 2 ms of each is the look's
 * own period). After the write window (BENCH_LIVE_SECONDS, 10 s full,
 * 1 s quick), a drain of at most 10 s waits for the stragglers; what
 * never arrived is counted.
 *
 * Clients are relaxed (each stands for a device with its own disk; on
 * one machine, n durable clients would measure this disk n times over).
 * The server is durable, as a server is, except in net_live_128_relaxed:
 * each pushed page is one durable commit on the server (count them with
 * `strace -f -c -e trace=fdatasync`; the API has no commit counter).
 *
 * Printed: ops (written), seconds (the write window), write_ops_per_s,
 * server_ops_per_s (ops the server took in the window), missing (never arrived at the observer), and the latencies (median,
 * p99, max) of the driver.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "converge/net.h"

#include "bench.h"

typedef struct live_client {
    cvg_replica *r;
    cvg_syncer *s;
    char key[24];
    uint64_t written;           /* by the writer thread */
    _Atomic uint64_t *stamp_ns; /* commit time of op k, k < cap */
    uint64_t seen;              /* by the observer, on client 0 */
    atomic_bool synced;         /* caught up once */
} live_client;

typedef struct live {
    const bench_ctx *ctx;
    live_client *c;
    size_t n;
    size_t cap; /* stamps per client */
    double rate;
    atomic_bool writing, observing;
    double *lat_us;
    size_t nlat, lat_cap;
    uint64_t arrived;
} live;

static uint64_t
mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
nap_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static double
env_number(const char *name, double dflt)
{
    const char *v = getenv(name);
    double d = v != NULL ? strtod(v, NULL) : 0;
    return d > 0 ? d : dflt;
}

static void
on_status(void *ctx, const cvg_syncer_event *e)
{
    live_client *c = ctx;
    if (e->state == CVG_SYNCER_SYNCED) {
        atomic_store(&c->synced, true);
    }
}

static int
add_one(live_client *c)
{
    cvg_txn *t;
    int rc = cvg_txn_begin(c->r, 0, &t);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg_key k = {"live", c->key, "n"};
    rc = cvg_counter_add(t, &k, 1, NULL);
    return rc == CVG_OK ? cvg_txn_commit(t) : (cvg_txn_abort(t), rc);
}

/* Every 10 ms, each client writes the ops it is due by now. */
static void *
writer(void *arg)
{
    live *L = arg;
    uint64_t t0 = mono_ns();
    while (atomic_load(&L->writing)) {
        double due_f = (double)(mono_ns() - t0) / 1e9 * L->rate;
        uint64_t due = (uint64_t)due_f;
        for (size_t i = 0; i < L->n && atomic_load(&L->writing); i++) {
            live_client *c = &L->c[i];
            bool wrote = false;
            while (c->written < due && c->written < L->cap) {
                atomic_store(&c->stamp_ns[c->written], mono_ns());
                cvg_syncer_lock(c->s);
                int rc = add_one(c);
                cvg_syncer_unlock(c->s);
                if (rc != CVG_OK) {
                    bench_die(L->ctx, "client %zu: write: %s", i,
                              cvg_errname(rc));
                }
                c->written++;
                wrote = true;
            }
            if (wrote) {
                cvg_syncer_notify(c->s);
            }
        }
        nap_us(10000);
    }
    return NULL;
}

/* One look at client 0: a sample for each op arrived since the last. */
static void
look(live *L)
{
    live_client *o = &L->c[0];
    uint64_t now = mono_ns();
    cvg_syncer_lock(o->s);
    cvg_txn *t;
    int rc = cvg_txn_begin(o->r, CVG_TXN_READ_ONLY, &t);
    for (size_t i = 1; rc == CVG_OK && i < L->n; i++) {
        live_client *c = &L->c[i];
        cvg_key k = {"live", c->key, "n"};
        int64_t v = 0;
        int grc = cvg_counter_get(t, &k, &v);
        if (grc != CVG_OK && grc != CVG_ENOTFOUND) {
            rc = grc;
            break;
        }
        for (uint64_t j = c->seen; j < (uint64_t)v && j < L->cap; j++) {
            uint64_t at = atomic_load(&c->stamp_ns[j]);
            if (L->nlat < L->lat_cap && at != 0 && now > at) {
                L->lat_us[L->nlat++] = (double)(now - at) / 1e3;
            }
            L->arrived++;
        }
        if ((uint64_t)v > c->seen) {
            c->seen = (uint64_t)v;
        }
    }
    if (rc == CVG_OK) {
        cvg_txn_abort(t);
    }
    cvg_syncer_unlock(o->s);
    if (rc != CVG_OK) {
        bench_die(L->ctx, "observer: read: %s", cvg_errname(rc));
    }
}

static void *
observer(void *arg)
{
    live *L = arg;
    while (atomic_load(&L->observing)) {
        look(L);
        nap_us(2000);
    }
    return NULL;
}

static void *
serve(void *arg)
{
    return (void *)(intptr_t)cvg_server_run(arg);
}

static uint64_t
server_ops(cvg_server *srv, cvg_replica *r)
{
    cvg_replica_stats st;
    cvg_server_lock(srv);
    int rc = cvg_replica_stats_get(r, &st, sizeof st);
    cvg_server_unlock(srv);
    return rc == CVG_OK ? st.op_count : 0;
}

static void
run_live(const bench_ctx *ctx, bench_run *out, cvg_durability server_d)
{
    bench_raise_fd_limit();
    live L;
    memset(&L, 0, sizeof L);
    L.ctx = ctx;
    L.n = ctx->n < 2 ? 2 : (size_t)ctx->n;
    L.rate = env_number("BENCH_LIVE_RATE", 100);
    double seconds = env_number("BENCH_LIVE_SECONDS", ctx->full ? 10 : 1);
    L.cap = (size_t)(L.rate * seconds * 1.5) + 16;
    L.lat_cap = L.cap * L.n;
    L.lat_us = malloc(L.lat_cap * sizeof *L.lat_us);
    L.c = calloc(L.n, sizeof *L.c);
    if (L.lat_us == NULL || L.c == NULL) {
        bench_die(ctx, "out of memory");
    }
    if (mkdir(ctx->rundir, 0777) != 0) {
        bench_die(ctx, "mkdir(%s) failed", ctx->rundir);
    }

    char *sdir = bench_path(ctx->rundir, "server");
    cvg_replica *sr = bench_open(ctx, sdir, server_d);
    cvg_server_options so;
    cvg_server_options_init(&so);
    so.max_clients = (uint32_t)L.n + 16;
    cvg_server *srv;
    bench_check(ctx, cvg_server_open(sr, "127.0.0.1:0", &so, &srv), sr,
                "cvg_server_open");
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%u",
             (unsigned)cvg_server_port(srv));
    pthread_t sth;
    if (pthread_create(&sth, NULL, serve, srv) != 0) {
        bench_die(ctx, "pthread_create failed");
    }

    for (size_t i = 0; i < L.n; i++) {
        live_client *c = &L.c[i];
        char leaf[32];
        snprintf(leaf, sizeof leaf, "c%zu", i);
        char *dir = bench_path(ctx->rundir, leaf);
        cvg_replica_options o;
        bench_options(&o, CVG_RELAXED);
        o.map_size = (size_t)8 << 20; /* grows if needed */
        int rc = cvg_replica_open(dir, &o, &c->r);
        free(dir);
        if (rc != CVG_OK) {
            bench_die(ctx, "client %zu: open: %s (after %zu clients)", i,
                      cvg_errname(rc), i);
        }
        snprintf(c->key, sizeof c->key, "w%zu", i);
        c->stamp_ns = calloc(L.cap, sizeof *c->stamp_ns);
        if (c->stamp_ns == NULL) {
            bench_die(ctx, "out of memory");
        }
        cvg_syncer_options yo;
        cvg_syncer_options_init(&yo);
        yo.url = url;
        yo.debounce_ms = 5;
        yo.on_status = on_status;
        yo.ctx = c;
        rc = cvg_syncer_start(c->r, &yo, &c->s);
        if (rc != CVG_OK) {
            bench_die(ctx, "client %zu: syncer: %s (after %zu clients)", i,
                      cvg_errname(rc), i);
        }
    }
    /* Every client caught up once (bounded: 60 s). */
    for (int k = 0; k < 6000; k++) {
        size_t up = 0;
        for (size_t i = 0; i < L.n; i++) {
            up += atomic_load(&L.c[i].synced);
        }
        if (up == L.n) {
            break;
        }
        if (k == 5999) {
            bench_die(ctx, "only %zu of %zu clients connected", up, L.n);
        }
        nap_us(10000);
    }

    uint64_t sops0 = server_ops(srv, sr);
    atomic_store(&L.writing, true);
    atomic_store(&L.observing, true);
    pthread_t wth, oth;
    double c0 = bench_cpu_now();
    double t0 = bench_now();
    if (pthread_create(&wth, NULL, writer, &L) != 0 ||
        pthread_create(&oth, NULL, observer, &L) != 0) {
        bench_die(ctx, "pthread_create failed");
    }
    nap_us((long)(seconds * 1e6));
    atomic_store(&L.writing, false);
    pthread_join(wth, NULL);
    double window = bench_now() - t0;
    uint64_t sops1 = server_ops(srv, sr);
    out->cpu_seconds = bench_cpu_now() - c0;

    /* Drain: at most 10 s for what is still on its way to client 0. */
    uint64_t expected = 0, written = 0;
    for (size_t i = 0; i < L.n; i++) {
        written += L.c[i].written;
        expected += i > 0 ? L.c[i].written : 0;
    }
    for (int k = 0; k < 1000; k++) {
        if (L.arrived >= expected) { /* the observer's own count */
            break;
        }
        nap_us(10000);
    }
    atomic_store(&L.observing, false);
    pthread_join(oth, NULL);
    look(&L); /* the last look, on this thread */

    for (size_t i = 0; i < L.n; i++) {
        cvg_syncer_stop(L.c[i].s);
    }
    cvg_server_stop(srv);
    void *ret;
    pthread_join(sth, &ret);
    cvg_server_close(srv);
    if ((intptr_t)ret != CVG_OK) {
        bench_die(ctx, "cvg_server_run: %s", cvg_errname((int)(intptr_t)ret));
    }
    bench_measure(ctx, sr, sdir, out);
    cvg_replica_close(sr);
    free(sdir);
    for (size_t i = 0; i < L.n; i++) {
        cvg_replica_close(L.c[i].r);
        free(L.c[i].stamp_ns);
    }
    free(L.c);

    out->seconds = window;
    out->ops = written;
    out->lat_us = L.lat_us;
    out->nlat = L.nlat;
    bench_extra_add(out, "clients", (double)L.n, true);
    bench_extra_add(out, "rate_per_client", L.rate, false);
    bench_extra_add(out, "write_ops_per_s", (double)written / window, false);
    bench_extra_add(out, "server_ops_per_s", (double)(sops1 - sops0) / window,
                    false);
    bench_extra_add(out, "missing",
                    (double)(expected > L.arrived ? expected - L.arrived : 0),
                    true);
}

void
wl_net_live(const bench_ctx *ctx, bench_run *out)
{
    run_live(ctx, out, CVG_DURABLE);
}

void
wl_net_live_relaxed(const bench_ctx *ctx, bench_run *out)
{
    run_live(ctx, out, CVG_RELAXED);
}
