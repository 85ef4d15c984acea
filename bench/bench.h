/*
 * converge_bench: shared types of the driver (bench.c), the helpers
 * (util.c) and the workloads (wl_*.c). Only the public API is used, but
 * for the raw clients of net_idle_1k (wl_net.c) and the synthetic origins
 * of wl_origins.c.
 */
#ifndef CVG_BENCH_H
#define CVG_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "converge.h"

/* Every replica the bench opens starts with a 1 GiB map, so that map growth
 * (a close-free remap inside commit) does not show up in the figures. */
#define BENCH_MAP_SIZE ((size_t)1 << 30)

#define BENCH_EXTRA_MAX 16

/* A workload-specific figure, printed as "name": value. */
typedef struct bench_extra {
    const char *name;
    double value;
    bool integer; /* print without decimals */
} bench_extra;

/* What one run of a workload measured. */
typedef struct bench_run {
    double seconds;          /* the timed part of the run, wall clock */
    double cpu_seconds;      /* user + system CPU time of the timed part */
    uint64_t ops;            /* ops (or opens, for reopen_1m) timed */
    uint64_t log_ops;        /* ops in the replica's log at the end */
    uint64_t file_bytes;     /* cvg_replica_stats.file_bytes (pages in use) */
    uint64_t data_mdb_bytes; /* stat() size of data.mdb */
    bench_extra extra[BENCH_EXTRA_MAX];
    size_t nextra;
    double *lat_us; /* per-commit latencies in µs, malloc'd, or
                                NULL; the driver pools them over runs */
    size_t nlat;
} bench_run;

/* What a workload is told. */
typedef struct bench_ctx {
    const char *name;   /* the workload's name, for messages */
    const char *root;   /* the scratch directory */
    const char *rundir; /* a fresh, not yet existing replica directory */
    uint64_t n;         /* the size: ops (or, for reopen_1m, the size of the
                           replica to reopen) */
    unsigned run;       /* 0-based run index */
    bool full;
    bool journal_state; /* open replicas with journal_state */
} bench_ctx;

typedef void (*bench_fn)(const bench_ctx *ctx, bench_run *out);

typedef struct bench_workload {
    const char *name;
    bench_fn fn;
    uint64_t full_n, quick_n;
    unsigned full_runs, quick_runs;
    /* If not NULL: the last run's replica is kept as root/keep_as (for a
     * later workload) instead of being removed. Only BENCH_COUNTER_KEPT is
     * cleaned up on a signal. */
    const char *keep_as;
    bool journal_state; /* the workload's replicas write state behind a
                           journal (cvg_replica_options.journal_state) */
} bench_workload;

/* ---- util.c ---------------------------------------------------------------*/

/* Monotonic seconds. */
double bench_now(void);
/* User + system CPU seconds of the process so far. */
double bench_cpu_now(void);
/* ru_maxrss in KiB: the process-wide high-water mark. */
long bench_peak_rss_kb(void);

/* Print "bench: NAME: message" to stderr and exit(1) (the scratch directory
 * is removed by the atexit handler). */
void bench_die(const bench_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));
/* Die unless rc is CVG_OK, naming the call and the replica's message. */
void bench_check(const bench_ctx *ctx, int rc, cvg_replica *r,
                 const char *what);

/* Options with BENCH_MAP_SIZE and the given durability. */
void bench_options(cvg_replica_options *o, cvg_durability d);
/* Open (creating) the replica at @p path; dies on failure. */
cvg_replica *bench_open(const bench_ctx *ctx, const char *path,
                        cvg_durability d);
/* Fill out->log_ops, file_bytes and data_mdb_bytes from replica @p r
 * living in @p path. */
void bench_measure(const bench_ctx *ctx, cvg_replica *r, const char *path,
                   bench_run *out);
/* Die unless the log holds exactly out->ops ops (call after
 * bench_measure in workloads that write every op they time). */
void bench_expect_log(const bench_ctx *ctx, const bench_run *out);
/* Append a workload-specific figure. */
void bench_extra_add(bench_run *out, const char *name, double value,
                     bool integer);

/* Workloads with several replicas keep them in subdirectories of the run
 * directory, "r0" .. "r<BENCH_SUBDIRS - 1>" (the signal handler removes
 * those). */
#define BENCH_SUBDIRS 4u
/* Make ctx->rundir if missing and return "rundir/r<i>" (malloc'd); dies if
 * i >= BENCH_SUBDIRS. */
char *bench_subdir(const bench_ctx *ctx, unsigned i);

/* Remove @p path and everything under it; missing is fine. 0 or -1. */
int bench_rm_rf(const char *path);
/* "root/name" into a malloc'd string; dies on ENOMEM. */
char *bench_path(const char *root, const char *name);

/* Raise the soft limit on open files to the hard one (the network
 * workloads hold a socket per client); failure is ignored. */
void bench_raise_fd_limit(void);

/* A small deterministic PRNG (splitmix64). */
uint64_t bench_rand(uint64_t *state);

/* Sort @p v ascending; the value at quantile q (0..1, nearest rank). */
double bench_quantile(double *v, size_t n, double q);

/* ---- Workloads ------------------------------------------------------------*/

void wl_counter(const bench_ctx *ctx, bench_run *out);
void wl_counter_spread(const bench_ctx *ctx, bench_run *out);
void wl_reopen(const bench_ctx *ctx, bench_run *out);
void wl_check(const bench_ctx *ctx, bench_run *out);
void wl_lmdb_durable(const bench_ctx *ctx, bench_run *out);
void wl_lmdb_relaxed(const bench_ctx *ctx, bench_run *out);
void wl_register(const bench_ctx *ctx, bench_run *out);
void wl_set(const bench_ctx *ctx, bench_run *out);
void wl_single_durable(const bench_ctx *ctx, bench_run *out);
void wl_single_relaxed(const bench_ctx *ctx, bench_run *out);
void wl_writers(const bench_ctx *ctx, bench_run *out);
void wl_relaxed_batch(const bench_ctx *ctx, bench_run *out);
void wl_sync_full(const bench_ctx *ctx, bench_run *out);
void wl_sync_conflict(const bench_ctx *ctx, bench_run *out);
void wl_sync_incremental(const bench_ctx *ctx, bench_run *out);
void wl_net_sync(const bench_ctx *ctx, bench_run *out);
void wl_net_handshakes(const bench_ctx *ctx, bench_run *out);
void wl_net_idle(const bench_ctx *ctx, bench_run *out);
void wl_net_live(const bench_ctx *ctx, bench_run *out);
void wl_net_live_relaxed(const bench_ctx *ctx, bench_run *out);
void wl_fields(const bench_ctx *ctx, bench_run *out);
void wl_origins_sync(const bench_ctx *ctx, bench_run *out);
void wl_origins_incremental(const bench_ctx *ctx, bench_run *out);

/* Where counter_1m keeps its last replica for reopen_1m. */
#define BENCH_COUNTER_KEPT "counter_1m.replica"
/* Write @p n increments of 1 spread round-robin over @p nfields counter
 * fields (collection "bench", key "counter"), in commits of @p batch, into
 * replica @p r. Returns the seconds spent (begin to last commit); the CPU
 * seconds go to *cpu_out if not NULL. */
double bench_counter_fill(const bench_ctx *ctx, cvg_replica *r, uint64_t n,
                          uint64_t batch, unsigned nfields, double *cpu_out);
/* Die unless the fields hold what bench_counter_fill(n, nfields) wrote. */
void bench_counter_verify(const bench_ctx *ctx, cvg_replica *r, uint64_t n,
                          unsigned nfields);

/* targets.c: keep a figure as printed; print the targets line. */
void bench_figure_keep(const char *workload, const char *name, double value);
void bench_targets_print(bool full);

#endif /* CVG_BENCH_H */
