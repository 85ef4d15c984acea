/*
 * Helpers of the bench: time, memory, replica setup and measurement,
 * scratch directories, a PRNG and quantiles.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

double
bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double
bench_cpu_now(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) {
        return 0.0;
    }
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

long
bench_peak_rss_kb(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) {
        return -1;
    }
    return ru.ru_maxrss; /* KiB on Linux */
}

void
bench_die(const bench_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "bench: %s: ", ctx != NULL ? ctx->name : "driver");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

void
bench_check(const bench_ctx *ctx, int rc, cvg_replica *r, const char *what)
{
    if (rc != CVG_OK) {
        bench_die(ctx, "%s failed: %s (%s): %s", what, cvg_errname(rc),
                  cvg_strerror(rc), cvg_replica_errmsg(r));
    }
}

void
bench_options(cvg_replica_options *o, cvg_durability d)
{
    cvg_replica_options_init(o);
    o->map_size = BENCH_MAP_SIZE;
    if (o->map_size_max < o->map_size) {
        o->map_size_max = o->map_size;
    }
    o->durability = d;
}

cvg_replica *
bench_open(const bench_ctx *ctx, const char *path, cvg_durability d)
{
    cvg_replica_options o;
    bench_options(&o, d);
    o.journal_state = ctx->journal_state;
    cvg_replica *r = NULL;
    int rc = cvg_replica_open(path, &o, &r);
    if (rc != CVG_OK) {
        bench_die(ctx, "cvg_replica_open(%s) failed: %s (%s)", path,
                  cvg_errname(rc), cvg_strerror(rc));
    }
    return r;
}

void
bench_measure(const bench_ctx *ctx, cvg_replica *r, const char *path,
              bench_run *out)
{
    cvg_replica_stats st;
    bench_check(ctx, cvg_replica_stats_get(r, &st, sizeof st), r,
                "cvg_replica_stats_get");
    out->log_ops = st.op_count;
    out->file_bytes = st.file_bytes;
    char *data = bench_path(path, "data.mdb");
    struct stat sb;
    if (stat(data, &sb) != 0) {
        bench_die(ctx, "stat(%s): %s", data, strerror(errno));
    }
    out->data_mdb_bytes = (uint64_t)sb.st_size;
    free(data);
}

void
bench_expect_log(const bench_ctx *ctx, const bench_run *out)
{
    if (out->log_ops != out->ops) {
        bench_die(ctx, "the log holds %llu ops, expected %llu",
                  (unsigned long long)out->log_ops,
                  (unsigned long long)out->ops);
    }
}

void
bench_extra_add(bench_run *out, const char *name, double value, bool integer)
{
    if (out->nextra < BENCH_EXTRA_MAX) {
        out->extra[out->nextra].name = name;
        out->extra[out->nextra].value = value;
        out->extra[out->nextra].integer = integer;
        out->nextra++;
    }
}

char *
bench_path(const char *root, const char *name)
{
    size_t n = strlen(root) + 1 + strlen(name) + 1;
    char *p = malloc(n);
    if (p == NULL) {
        bench_die(NULL, "out of memory");
    }
    snprintf(p, n, "%s/%s", root, name);
    return p;
}

char *
bench_subdir(const bench_ctx *ctx, unsigned i)
{
    if (i >= BENCH_SUBDIRS) {
        bench_die(ctx, "subdirectory %u out of range", i);
    }
    if (mkdir(ctx->rundir, 0777) != 0 && errno != EEXIST) {
        bench_die(ctx, "mkdir(%s): %s", ctx->rundir, strerror(errno));
    }
    char leaf[16];
    snprintf(leaf, sizeof leaf, "r%u", i);
    return bench_path(ctx->rundir, leaf);
}

int
bench_rm_rf(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0) {
        return errno == ENOENT ? 0 : -1;
    }
    if (!S_ISDIR(sb.st_mode)) {
        return unlink(path);
    }
    DIR *d = opendir(path);
    if (d == NULL) {
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        char *sub = bench_path(path, e->d_name);
        if (bench_rm_rf(sub) != 0) {
            rc = -1;
        }
        free(sub);
    }
    closedir(d);
    if (rmdir(path) != 0) {
        rc = -1;
    }
    return rc;
}

uint64_t
bench_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double
bench_quantile(double *v, size_t n, double q)
{
    if (n == 0) {
        return 0.0;
    }
    qsort(v, n, sizeof *v, cmp_double);
    /* Nearest rank: the smallest value with at least q of the samples at
     * or below it. */
    double rank = q * (double)n;
    size_t k = (size_t)rank;
    if ((double)k < rank) {
        k++;
    }
    if (k == 0) {
        k = 1;
    }
    if (k > n) {
        k = n;
    }
    return v[k - 1];
}

void
bench_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}
