/*
 * converge_bench: the driver. Runs the workloads of the table below, each
 * R times on a fresh replica directory under a scratch directory, and
 * prints one JSON line per workload on stdout (progress goes to stderr),
 * then one line of the performance targets beside their figures
 * (targets.c).
 *
 *   converge_bench [--quick | --full] [--only NAME]... [--runs R]
 *                  [--dir DIR] [--list]
 *
 * Every workload checks its result and the bench exits 1 on the first
 * wrong one, so it never reports a figure for a broken run.
 */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * The table. peak_rss_kb is getrusage()'s ru_maxrss: a process-wide
 * high-water mark that never goes down, so each line reports the largest
 * resident size of the process so far, not of that workload alone. The
 * workloads are therefore ordered roughly from the largest footprint to the
 * smallest (the mapped LMDB pages a workload touches count as resident);
 * run one with --only to get its own peak.
 *
 * reopen_1m reopens the replica the last run of counter_1m kept (or builds
 * one, untimed, when run without counter_1m), so it comes after it; each of
 * its runs is one open. check_1m checks that replica whole.
 */
static const bench_workload workloads[] = {
    /* name, fn, full n, quick n, full runs, quick runs, keep_as,
     * journal_state */
    {"register_200k", wl_register, 200000, 20000, 5, 3, NULL, false},
    {"sync_conflict_3x10k", wl_sync_conflict, 10000, 1000, 5, 3, NULL, false},
    {"set_100k", wl_set, 100000, 10000, 5, 3, NULL, false},
    {"register_200k_journal", wl_register, 200000, 20000, 5, 3, NULL, true},
    {"set_100k_journal", wl_set, 100000, 10000, 5, 3, NULL, true},
    {"counter_1m_spread_journal", wl_counter_spread, 1000000, 100000, 5, 3,
     NULL, true},
    {"sync_full_1m", wl_sync_full, 1000000, 100000, 5, 3, NULL, false},
    {"counter_1m_spread", wl_counter_spread, 1000000, 100000, 5, 3, NULL,
     false},
    {"counter_1m", wl_counter, 1000000, 100000, 5, 3, BENCH_COUNTER_KEPT,
     false},
    {"reopen_1m", wl_reopen, 1000000, 100000, 11, 5, NULL, false},
    {"check_1m", wl_check, 1000000, 100000, 5, 3, NULL, false},
    {"sync_incremental_1k", wl_sync_incremental, 1000, 100, 11, 5, NULL, false},
    {"sync_origins_100k", wl_origins_sync, 100000, 10000, 3, 1, NULL, false},
    {"sync_incremental_origins_10k", wl_origins_incremental, 10000, 2000, 3, 1,
     NULL, false},
    {"single_op_durable", wl_single_durable, 10000, 500, 5, 1, NULL, false},
    {"single_op_relaxed", wl_single_relaxed, 10000, 2000, 5, 3, NULL, false},
    {"lmdb_single_durable", wl_lmdb_durable, 10000, 500, 5, 1, NULL, false},
    {"writers_32_durable", wl_writers, 6400, 320, 3, 1, NULL, false},
    {"lmdb_single_relaxed", wl_lmdb_relaxed, 10000, 2000, 5, 3, NULL, false},
    {"relaxed_batch_1k", wl_relaxed_batch, 1000000, 100000, 5, 3, NULL, false},
    {"net_sync_1m", wl_net_sync, 1000000, 100000, 5, 3, NULL, false},
    {"net_handshakes", wl_net_handshakes, 2000, 200, 3, 3, NULL, false},
    {"net_idle_1k", wl_net_idle, 1000, 100, 3, 1, NULL, false},
    {"net_live_32", wl_net_live, 32, 8, 3, 1, NULL, false},
    {"net_live_128", wl_net_live, 128, 16, 3, 1, NULL, false},
    {"net_live_128_relaxed", wl_net_live_relaxed, 128, 16, 3, 1, NULL, false},
    {"net_live_512", wl_net_live, 512, 16, 1, 1, NULL, false},
    {"delete_fields_10k", wl_fields, 10000, 1000, 5, 1, NULL, false},
    {"delete_fields_100k", wl_fields, 100000, 10000, 5, 1, NULL, false},
};
#define NWORKLOADS (sizeof workloads / sizeof workloads[0])

/* ---- The scratch directory ------------------------------------------------
 * Removed at exit, also on SIGHUP/SIGINT/SIGPIPE/SIGTERM: the handler only unlinks the
 * files a replica directory holds (data.mdb, lock.mdb) and removes the
 * directories, from paths prepared beforehand (async-signal-safe calls). */

static char *g_root; /* malloc'd; NULL until made */
static char g_sig_root[4096];
static char g_sig_dirs[2][4096]; /* the current run dir, the replica kept
                                    for reopen_1m */

static void
sig_rm_dir(const char *dir)
{
    static const char *const files[] = {"/data.mdb", "/lock.mdb"};
    char buf[4096 + 16];
    size_t n = strlen(dir);
    if (n == 0 || n >= 4096) {
        return;
    }
    for (size_t f = 0; f < 2; f++) {
        memcpy(buf, dir, n);
        size_t m = strlen(files[f]);
        memcpy(buf + n, files[f], m + 1);
        unlink(buf);
    }
    rmdir(dir);
}

/* The replica subdirectories a run directory may hold (bench_subdir). */
static void
sig_rm_subdirs(const char *dir)
{
    char buf[4096 + 8];
    size_t n = strlen(dir);
    if (n == 0 || n >= 4096) {
        return;
    }
    memcpy(buf, dir, n);
    for (unsigned i = 0; i < BENCH_SUBDIRS && i < 10; i++) {
        buf[n] = '/';
        buf[n + 1] = 'r';
        buf[n + 2] = (char)('0' + i);
        buf[n + 3] = '\0';
        sig_rm_dir(buf);
    }
}

static void
on_signal(int sig)
{
    sig_rm_subdirs(g_sig_dirs[0]);
    sig_rm_dir(g_sig_dirs[0]);
    sig_rm_dir(g_sig_dirs[1]);
    rmdir(g_sig_root);
    _exit(128 + sig);
}

static void
sig_set(char *slot, const char *path)
{
    slot[0] = '\0';
    if (path != NULL && strlen(path) < 4096) {
        memcpy(slot, path, strlen(path) + 1);
    }
}

static void
cleanup(void)
{
    if (g_root != NULL) {
        if (bench_rm_rf(g_root) != 0) {
            fprintf(stderr, "bench: could not remove %s\n", g_root);
        }
        free(g_root);
        g_root = NULL;
    }
}

static void
make_root(const char *base)
{
    char *tmpl = bench_path(base, "converge-bench.XXXXXX");
    if (mkdtemp(tmpl) == NULL) {
        bench_die(NULL, "mkdtemp(%s): %s", tmpl, strerror(errno));
    }
    g_root = tmpl;
    sig_set(g_sig_root, g_root);
    char *kept = bench_path(g_root, BENCH_COUNTER_KEPT);
    sig_set(g_sig_dirs[1], kept);
    free(kept);
    atexit(cleanup);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL); /* e.g. piped into head */
    sigaction(SIGTERM, &sa, NULL);
}

/* ---- Aggregation --------------------------------------------------------- */

static double
median(double *v, size_t n)
{
    if (n == 0) {
        return 0.0;
    }
    bench_quantile(v, n, 0.5); /* sorts */
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

static const char *g_reporting; /* the workload report() prints */

static void
print_number(const char *name, double v, bool integer)
{
    bench_figure_keep(g_reporting, name, v);
    if (integer) {
        printf(",\"%s\":%.0f", name, v);
    } else {
        printf(",\"%s\":%.6g", name, v);
    }
}

static void
report(const bench_workload *w, bool full, bench_run *runs, unsigned nruns)
{
    double *v = malloc(nruns * sizeof *v);
    if (v == NULL) {
        bench_die(NULL, "out of memory");
    }
    for (unsigned i = 0; i < nruns; i++) {
        v[i] = runs[i].seconds;
    }
    double secs = median(v, nruns);
    double smin = v[0], smax = v[nruns - 1];
    for (unsigned i = 0; i < nruns; i++) {
        v[i] = (double)runs[i].file_bytes;
    }
    double file_bytes = median(v, nruns);
    for (unsigned i = 0; i < nruns; i++) {
        v[i] = (double)runs[i].data_mdb_bytes;
    }
    double mdb_bytes = median(v, nruns);
    for (unsigned i = 0; i < nruns; i++) {
        v[i] = runs[i].cpu_seconds;
    }
    double cpu = median(v, nruns);
    double ops = (double)runs[0].ops;
    double log_ops = (double)runs[0].log_ops;

    g_reporting = w->name;
    printf("{\"name\":\"%s\",\"mode\":\"%s\"", w->name,
           full ? "full" : "quick");
    print_number("ops", ops, true);
    print_number("seconds", secs, false);
    print_number("ops_per_s", secs > 0 ? ops / secs : 0, false);
    print_number("bytes_per_op", log_ops > 0 ? file_bytes / log_ops : 0, false);
    print_number("peak_rss_kb", (double)bench_peak_rss_kb(), true);
    print_number("runs", nruns, true);
    print_number("min_seconds", smin, false);
    print_number("max_seconds", smax, false);
    print_number("cpu_seconds", cpu, false);
    print_number("log_ops", log_ops, true);
    print_number("file_bytes", file_bytes, true);
    print_number("data_mdb_bytes", mdb_bytes, true);

    /* Workload figures: the median of each over the runs. */
    for (size_t e = 0; e < runs[0].nextra; e++) {
        for (unsigned i = 0; i < nruns; i++) {
            v[i] = runs[i].extra[e].value;
        }
        print_number(runs[0].extra[e].name, median(v, nruns),
                     runs[0].extra[e].integer);
    }
    free(v);

    /* Latencies: pooled over all runs. */
    size_t nlat = 0;
    for (unsigned i = 0; i < nruns; i++) {
        nlat += runs[i].nlat;
    }
    if (nlat > 0) {
        double *lat = malloc(nlat * sizeof *lat);
        if (lat == NULL) {
            bench_die(NULL, "out of memory");
        }
        size_t at = 0;
        for (unsigned i = 0; i < nruns; i++) {
            if (runs[i].nlat > 0) {
                memcpy(lat + at, runs[i].lat_us, runs[i].nlat * sizeof *lat);
                at += runs[i].nlat;
            }
        }
        print_number("median_latency_us", bench_quantile(lat, nlat, 0.5),
                     false);
        print_number("p99_latency_us", bench_quantile(lat, nlat, 0.99), false);
        print_number("max_latency_us", lat[nlat - 1], false);
        print_number("latency_samples", (double)nlat, true);
        free(lat);
    }
    printf("}\n");
    fflush(stdout);
}

/* ---- Running ------------------------------------------------------------- */

static void
run_workload(const bench_workload *w, bool full, unsigned runs_override)
{
    unsigned nruns =
        runs_override ? runs_override : (full ? w->full_runs : w->quick_runs);
    uint64_t n = full ? w->full_n : w->quick_n;
    bench_run *runs = calloc(nruns, sizeof *runs);
    if (runs == NULL) {
        bench_die(NULL, "out of memory");
    }
    char *kept = w->keep_as != NULL ? bench_path(g_root, w->keep_as) : NULL;

    for (unsigned k = 0; k < nruns; k++) {
        char leaf[128];
        snprintf(leaf, sizeof leaf, "%s.run%u", w->name, k);
        char *rundir = bench_path(g_root, leaf);
        sig_set(g_sig_dirs[0], rundir);
        bench_ctx ctx = {w->name, g_root, rundir, n, k, full, w->journal_state};
        fprintf(stderr, "bench: %s: run %u/%u, n = %llu ...", w->name, k + 1,
                nruns, (unsigned long long)n);
        fflush(stderr);
        w->fn(&ctx, &runs[k]);
        fprintf(stderr, " %.3f s\n", runs[k].seconds);
        if (kept != NULL && k + 1 == nruns) {
            if (bench_rm_rf(kept) != 0 || rename(rundir, kept) != 0) {
                bench_die(&ctx, "cannot keep %s as %s: %s", rundir, kept,
                          strerror(errno));
            }
        } else if (bench_rm_rf(rundir) != 0) {
            bench_die(&ctx, "cannot remove %s: %s", rundir, strerror(errno));
        }
        sig_set(g_sig_dirs[0], NULL);
        free(rundir);
    }
    report(w, full, runs, nruns);
    for (unsigned k = 0; k < nruns; k++) {
        free(runs[k].lat_us);
    }
    free(runs);
    free(kept);
}

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: converge_bench [--quick | --full] [--only NAME]...\n"
            "                      [--runs R] [--dir DIR] [--list]\n"
            "  --quick     small sizes, 1-5 runs each (the default)\n"
            "  --full      full sizes, 5 runs each (reopen_1m: 11 opens)\n"
            "  --only NAME run only this workload (repeatable)\n"
            "  --runs R    runs per workload instead of the mode's\n"
            "  --dir DIR   make the scratch directory under DIR "
            "(default /tmp);\n"
            "              it is removed at exit\n"
            "  --list      list the workloads and exit\n");
}

int
main(int argc, char **argv)
{
    bool full = false;
    const char *base = "/tmp";
    unsigned runs_override = 0;
    bool selected[NWORKLOADS] = {false};
    bool any_selected = false;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--quick") == 0) {
            full = false;
        } else if (strcmp(a, "--full") == 0) {
            full = true;
        } else if (strcmp(a, "--list") == 0) {
            for (size_t w = 0; w < NWORKLOADS; w++) {
                printf("%s\n", workloads[w].name);
            }
            return 0;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (i + 1 < argc && strcmp(a, "--only") == 0) {
            const char *name = argv[++i];
            size_t w = 0;
            while (w < NWORKLOADS && strcmp(workloads[w].name, name) != 0) {
                w++;
            }
            if (w == NWORKLOADS) {
                fprintf(stderr, "bench: no workload named '%s' (--list)\n",
                        name);
                return 2;
            }
            selected[w] = true;
            any_selected = true;
        } else if (i + 1 < argc && strcmp(a, "--dir") == 0) {
            base = argv[++i];
        } else if (i + 1 < argc && strcmp(a, "--runs") == 0) {
            char *end;
            unsigned long r = strtoul(argv[++i], &end, 10);
            if (*end != '\0' || r == 0 || r > 1000) {
                fprintf(stderr, "bench: --runs wants 1..1000\n");
                return 2;
            }
            runs_override = (unsigned)r;
        } else {
            usage(stderr);
            return 2;
        }
    }

    if (cvg_version_number() != CVG_VERSION_NUMBER) {
        fprintf(stderr, "bench: library %s does not match header %s\n",
                cvg_version_string(), CVG_VERSION_STRING);
        return 1;
    }
    make_root(base);
    fprintf(stderr, "bench: converge %s, %s mode, scratch %s\n",
            cvg_version_string(), full ? "full" : "quick", g_root);

    for (size_t w = 0; w < NWORKLOADS; w++) {
        if (!any_selected || selected[w]) {
            run_workload(&workloads[w], full, runs_override);
        }
    }
    bench_targets_print(full);
    return 0;
}
