/*
 * The performance targets, printed beside the figures they judge.
 *
 * Every figure report() prints is also kept here (bench_figure_keep), by
 * workload and name. After the last workload, bench_targets_print() prints
 * one more JSON line, {"name":"targets",...}, with one object per target:
 * the figure, the target, and "met", "short", or "not run" when a workload
 * it needs was not in this run (--only). The targets are for the full
 * sizes: in quick mode the figures are printed but not judged. A target relative to another
 * workload's figure (durable single ops against raw LMDB's, 32 writers
 * against one) is worked out from both, as measured in this run.
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"

typedef struct kept_figure {
    char workload[40];
    char name[40];
    double value;
} kept_figure;

#define FIGURES_MAX 1024
static kept_figure g_figures[FIGURES_MAX];
static size_t g_nfigures;

void
bench_figure_keep(const char *workload, const char *name, double value)
{
    if (g_nfigures == FIGURES_MAX) {
        return; /* far more than the table prints */
    }
    kept_figure *f = &g_figures[g_nfigures++];
    snprintf(f->workload, sizeof f->workload, "%s", workload);
    snprintf(f->name, sizeof f->name, "%s", name);
    f->value = value;
}

static bool
figure(const char *workload, const char *name, double *out)
{
    for (size_t i = g_nfigures; i-- > 0;) {
        if (strcmp(g_figures[i].workload, workload) == 0 &&
            strcmp(g_figures[i].name, name) == 0) {
            *out = g_figures[i].value;
            return true;
        }
    }
    return false;
}

/* A target: workload.name compared with a bound, which is @p bound times
 * base.base_name when base is set, else @p bound. */
typedef struct target {
    const char *label;
    const char *workload, *name;
    bool at_most; /* else at least */
    double bound;
    const char *base, *base_name;
} target;

static const target targets[] = {
    {"register overwrites, durable, commits of 1,000 (ops/s)", "register_200k",
     "overwrite_ops_per_s", false, 500000, NULL, NULL},
    {"register overwrites, durable, commits of 1,000, journal_state (ops/s)",
     "register_200k_journal", "overwrite_ops_per_s", false, 500000, NULL, NULL},
    {"OR-set adds and removes, durable, commits of 1,000 (ops/s)", "set_100k",
     "ops_per_s", false, 600000, NULL, NULL},
    {"OR-set adds and removes, durable, commits of 1,000, journal_state "
     "(ops/s)",
     "set_100k_journal", "ops_per_s", false, 600000, NULL, NULL},
    {"counter increments, durable, commits of 1,000 (ops/s)", "counter_1m",
     "ops_per_s", false, 3e6, NULL, NULL},
    {"counter increments, relaxed, commits of 1,000 (ops/s)",
     "relaxed_batch_1k", "ops_per_s", false, 7e6, NULL, NULL},
    {"single-op commits, durable: median latency at most 1.5x raw LMDB's "
     "(us)",
     "single_op_durable", "median_latency_us", true, 1.5, "lmdb_single_durable",
     "median_latency_us"},
    {"single-op commits, relaxed (commits/s)", "single_op_relaxed", "ops_per_s",
     false, 700000, NULL, NULL},
    {"32 durable writers: at least 10x one writer (commits/s)",
     "writers_32_durable", "ops_per_s", false, 10, "single_op_durable",
     "ops_per_s"},
    {"bytes on disk per register op, both phases", "register_200k",
     "bytes_per_op", true, 24, NULL, NULL},
    /* Loro 1.17's snapshot of the same 1M increments in commits of 1,000:
     * 53,302 bytes (bench/peers/loro_counter_bytes.mjs). */
    {"1M counter increments stored, commits of 1,000: at most 2x Loro's "
     "snapshot (bytes)",
     "counter_1m", "file_bytes", true, 2 * 53302.0, NULL, NULL},
    {"file per live pages, before any compaction", "register_200k",
     "file_per_live_pages", true, 1.5, NULL, NULL},
    {"bytes exchanged, 3 replicas x 10,000 conflicting keys",
     "sync_conflict_3x10k", "wire_bytes", true, 380000, NULL, NULL},
};

void
bench_targets_print(bool full)
{
    printf("{\"name\":\"targets\",\"targets\":[");
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        const target *t = &targets[i];
        double v = 0, base = 1;
        bool have = figure(t->workload, t->name, &v) &&
                    (t->base == NULL || figure(t->base, t->base_name, &base));
        double bound = t->bound * base;
        const char *verdict = !have   ? "not run"
                              : !full ? "quick sizes: not judged"
                              : (t->at_most ? v <= bound : v >= bound)
                                  ? "met"
                                  : "short";
        printf("%s{\"target\":\"%s\",\"figure\":\"%s.%s\"", i > 0 ? "," : "",
               t->label, t->workload, t->name);
        if (have) {
            printf(",\"measured\":%.6g,\"bound\":\"%s %.6g\"", v,
                   t->at_most ? "<=" : ">=", bound);
        }
        printf(",\"verdict\":\"%s\"}", verdict);
    }
    printf("]}\n");
    fflush(stdout);
}
