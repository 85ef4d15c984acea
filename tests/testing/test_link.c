/*
 * The in-memory link with faults (cvg_link_*): a clean link completes a
 * session and the replicas converge; each fault alone, at high rates over
 * many seeds, may break sessions but never the replicas, and a following
 * clean run converges; a partition delivers nothing; a seed replays the same
 * faults; bad options are refused; cvg_link_sync() reports both sessions
 * and drops what earlier ones left; failed allocations never crash. Replay
 * one seed with CVG_TEST_SEED=N; CVG_TEST_SEEDS=N sweeps N seeds (soak).
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "converge/testing.h"

#include "checks.h"
#include "common.h"
#include "digest.h"
#include "testutil.h"
#include "workload.h"

#define T0 1700000000000ull /* a fixed start for the test clocks */
#define BUDGET 100000u      /* deliveries: far more than any run here needs */

/* A wall clock that moves 1 ms per read, so that two pairs fed the same
 * calls see the same times (and send the same bytes). */
static uint64_t
tick_clock(void *ctx)
{
    uint64_t *t = ctx;
    return (*t)++;
}

typedef struct pair {
    cvg_replica *r[2];
    uint64_t clock[2];
    cvg_test_workload wl;
} pair;

static void
pair_open(pair *p, const char *name, uint64_t seed)
{
    memset(p, 0, sizeof *p);
    p->wl.seed = seed;
    p->wl.rng = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int i = 0; i < 2; i++) {
        char sub[128];
        snprintf(sub, sizeof sub, "%s-%d", name, i);
        p->clock[i] = T0;
        cvg_replica_options o;
        cvg_replica_options_init(&o);
        o.durability = CVG_RELAXED; /* crash safety is tested elsewhere */
        o.map_size = 1 << 20;       /* small maps open fast; they grow */
        o.clock = tick_clock;
        o.clock_ctx = &p->clock[i];
        int rc = cvg_replica_open(cvg_test_dir(sub), &o, &p->r[i]);
        cr_assert_eq(rc, CVG_OK, "open %s: %s", sub, cvg_errname(rc));
    }
}

static void
pair_close(pair *p)
{
    cvg_replica_close(p->r[0]);
    cvg_replica_close(p->r[1]);
}

static void
pair_write(pair *p, int txns)
{
    for (int k = 0; k < txns; k++) {
        cvg_test_random_txn(&p->wl, p->r[cvg_test_below(&p->wl.rng, 2)]);
    }
}

/* Small pages, so that one session is many messages for faults to hit. */
static void
open_sessions(pair *p, cvg_session **sa, cvg_session **sb)
{
    cvg_session_options so;
    cvg_session_options_init(&so);
    so.page_ops = 2;
    int rc = cvg_session_open(p->r[0], &so, sa);
    cr_assert_eq(rc, CVG_OK, "session a: %s", cvg_errname(rc));
    rc = cvg_session_open(p->r[1], &so, sb);
    cr_assert_eq(rc, CVG_OK, "session b: %s", cvg_errname(rc));
}

/* One session pair over @p l; returns what cvg_link_run() said. */
static int
run_once(pair *p, cvg_link *l, unsigned max_steps)
{
    cvg_session *sa, *sb;
    open_sessions(p, &sa, &sb);
    int rc = cvg_link_run(l, sa, sb, max_steps);
    cvg_session_close(sa);
    cvg_session_close(sb);
    return rc;
}

/* A fault-free link completes a session, and afterwards both replicas hold
 * the same state. */
static void
clean_run_converges(pair *p, const char *what)
{
    cvg_link *l;
    cr_assert_eq(cvg_link_new(NULL, &l), CVG_OK);
    int rc = run_once(p, l, BUDGET);
    cr_assert_eq(rc, CVG_OK,
                 "seed %llu, %s: the clean run gave %s; replay with "
                 "CVG_TEST_SEED=%llu",
                 (unsigned long long)p->wl.seed, what, cvg_errname(rc),
                 (unsigned long long)p->wl.seed);
    cvg_link_stats st;
    cvg_link_stats_get(l, &st, sizeof st);
    uint64_t faults =
        st.dropped + st.duplicated + st.reordered + st.delayed + st.cut;
    cr_expect_eq(faults, 0, "a clean link made faults");
    cvg_link_free(l);

    char *d0, *d1;
    cr_assert_eq(cvg_test_digest(p->r[0], &d0), CVG_OK);
    cr_assert_eq(cvg_test_digest(p->r[1], &d1), CVG_OK);
    cr_assert_str_eq(d0, d1, "seed %llu, %s: the replicas differ",
                     (unsigned long long)p->wl.seed, what);
    free(d0);
    free(d1);
    cvg_test_check_counters(&p->wl, p->r[0]);
    cvg_test_check_counters(&p->wl, p->r[1]);
}

/* ---- Clean link ---------------------------------------------------------- */

Test(link, clean_link_completes_and_converges)
{
    pair p;
    pair_open(&p, "clean", cvg_test_seed(11));
    pair_write(&p, 30);
    cvg_link *l;
    cr_assert_eq(cvg_link_new(NULL, &l), CVG_OK);
    cr_assert_eq(run_once(&p, l, BUDGET), CVG_OK);
    cvg_link_stats st;
    cvg_link_stats_get(l, &st, sizeof st);
    cr_expect_gt(st.delivered, 4, "HELLOs, pulls, pages and acks");
    cr_expect_gt(st.bytes, 0);
    cr_expect_eq(st.dropped, 0);
    cvg_link_free(l);
    clean_run_converges(&p, "clean");
    pair_close(&p);
}

/* ---- Each fault alone ---------------------------------------------------- */

/* How many seeds a sweep runs: 1 when replaying $CVG_TEST_SEED, else
 * $CVG_TEST_SEEDS (a soak) or @p dflt. */
static unsigned
seed_count(unsigned dflt)
{
    const char *one = getenv("CVG_TEST_SEED");
    if (one != NULL && one[0] != '\0') {
        return 1;
    }
    const char *n = getenv("CVG_TEST_SEEDS");
    return n != NULL && n[0] != '\0' ? (unsigned)strtoul(n, NULL, 10) : dflt;
}

typedef enum fault { DROP, DUP, REORDER, DELAY, CUT, NFAULTS } fault;

static const char *fault_names[NFAULTS] = {"drop", "dup", "reorder", "delay",
                                           "cut"};

static uint64_t
fault_count(const cvg_link_stats *st, fault f)
{
    switch (f) {
    case DROP:
        return st->dropped;
    case DUP:
        return st->duplicated;
    case REORDER:
        return st->reordered;
    case DELAY:
        return st->delayed;
    default:
        return st->cut;
    }
}

static void
one_fault(fault f, unsigned pct)
{
    pair p;
    char name[32];
    snprintf(name, sizeof name, "fault-%s", fault_names[f]);
    uint64_t base = cvg_test_seed(1);
    pair_open(&p, name, base);
    unsigned seeds = seed_count(60);
    unsigned broken = 0;
    uint64_t hits = 0;
    for (unsigned k = 0; k < seeds; k++) {
        uint64_t seed = base + k;
        p.wl.seed = seed; /* for the messages; the workload rng runs on */
        pair_write(&p, 1 + (int)cvg_test_below(&p.wl.rng, 6));

        cvg_link_options o;
        cvg_link_options_init(&o);
        o.seed = seed;
        unsigned *rate[NFAULTS] = {&o.drop_pct, &o.dup_pct, &o.reorder_pct,
                                   &o.delay_pct, &o.cut_pct};
        *rate[f] = pct;
        cvg_link *l;
        cr_assert_eq(cvg_link_new(&o, &l), CVG_OK);
        int rc = run_once(&p, l, BUDGET);
        /* Anything but a misuse of the link or a crash is allowed: the
         * fault may lose a message (DONE) or end a session with an error. */
        cr_assert(rc == CVG_OK || rc == CVG_DONE ||
                      (rc < 0 && rc != CVG_EINVAL && rc != CVG_ENOMEM),
                  "seed %llu, %s: run gave %s", (unsigned long long)seed,
                  fault_names[f], cvg_errname(rc));
        broken += rc != CVG_OK;
        cvg_link_stats st;
        cvg_link_stats_get(l, &st, sizeof st);
        hits += fault_count(&st, f);
        cvg_link_free(l);

        clean_run_converges(&p, fault_names[f]);
    }
    cr_log_info("%s at %u%%: %u of %u sessions broken, %llu faults",
                fault_names[f], pct, broken, seeds, (unsigned long long)hits);
    if (seeds > 1) { /* one replayed seed may well see no fault */
        cr_expect_gt(hits, 0, "the %s fault never struck", fault_names[f]);
    }
    pair_close(&p);
}

Test(link, drops_then_clean_run_converges)
{
    one_fault(DROP, 40);
}

Test(link, duplicates_then_clean_run_converges)
{
    one_fault(DUP, 60);
}

Test(link, reorders_then_clean_run_converges)
{
    one_fault(REORDER, 60);
}

Test(link, delays_then_clean_run_converges)
{
    one_fault(DELAY, 60);
}

Test(link, cuts_then_clean_run_converges)
{
    one_fault(CUT, 40);
}

/* Everything at once, for good measure. */
Test(link, all_faults_then_clean_run_converges)
{
    pair p;
    uint64_t base = cvg_test_seed(100);
    pair_open(&p, "fault-all", base);
    unsigned seeds = seed_count(40);
    for (unsigned k = 0; k < seeds; k++) {
        p.wl.seed = base + k;
        pair_write(&p, 1 + (int)cvg_test_below(&p.wl.rng, 6));
        cvg_link_options o;
        cvg_link_options_init(&o);
        o.seed = base + k;
        o.drop_pct = 10;
        o.dup_pct = 20;
        o.reorder_pct = 20;
        o.delay_pct = 20;
        o.cut_pct = 5;
        o.max_delay_steps = 3;
        cvg_link *l;
        cr_assert_eq(cvg_link_new(&o, &l), CVG_OK);
        int rc = run_once(&p, l, BUDGET);
        cr_assert(rc == CVG_OK || rc == CVG_DONE ||
                      (rc < 0 && rc != CVG_EINVAL && rc != CVG_ENOMEM),
                  "seed %llu: run gave %s", (unsigned long long)(base + k),
                  cvg_errname(rc));
        cvg_link_free(l);
        clean_run_converges(&p, "all faults");
    }
    pair_close(&p);
}

/* ---- Partition ----------------------------------------------------------- */

Test(link, partition_delivers_nothing_then_heals)
{
    pair p;
    pair_open(&p, "partition", cvg_test_seed(5));
    pair_write(&p, 20);
    char *before0 = cvg_test_state(p.r[0]);
    char *before1 = cvg_test_state(p.r[1]);

    cvg_link *l;
    cr_assert_eq(cvg_link_new(NULL, &l), CVG_OK);
    cvg_link_set_down(l, true);
    cr_expect_eq(run_once(&p, l, BUDGET), CVG_DONE);
    cvg_link_stats st;
    cvg_link_stats_get(l, &st, sizeof st);
    cr_expect_eq(st.delivered, 0, "a message crossed a partition");
    cr_expect_eq(st.bytes, 0);
    cr_expect_eq(st.dropped, 2, "both HELLOs are lost");
    char *after0 = cvg_test_state(p.r[0]);
    char *after1 = cvg_test_state(p.r[1]);
    cr_expect_str_eq(after0, before0);
    cr_expect_str_eq(after1, before1);
    free(before0);
    free(before1);
    free(after0);
    free(after1);

    /* Messages already in flight are lost too when the link goes down. */
    cvg_session *sa, *sb;
    open_sessions(&p, &sa, &sb);
    cvg_link_set_down(l, false);
    cr_expect_eq(cvg_link_run(l, sa, sb, 0), CVG_DONE, "a budget of 0");
    cvg_link_set_down(l, true);
    cr_expect_eq(cvg_link_run(l, sa, sb, BUDGET), CVG_DONE);
    cvg_link_stats_get(l, &st, sizeof st);
    cr_expect_eq(st.delivered, 0);
    cr_expect_eq(st.dropped, 4);
    cvg_session_close(sa);
    cvg_session_close(sb);

    cvg_link_set_down(l, false);
    cr_assert_eq(run_once(&p, l, BUDGET), CVG_OK, "the healed link");
    cvg_link_free(l);
    clean_run_converges(&p, "healed");
    pair_close(&p);
}

/* A run cut short by its budget goes on where it stopped. */
Test(link, budget_stops_and_resumes)
{
    pair p;
    pair_open(&p, "budget", cvg_test_seed(6));
    pair_write(&p, 20);
    cvg_link *l;
    cr_assert_eq(cvg_link_new(NULL, &l), CVG_OK);
    cvg_session *sa, *sb;
    open_sessions(&p, &sa, &sb);
    int rc;
    unsigned calls = 0;
    while ((rc = cvg_link_run(l, sa, sb, 1)) == CVG_DONE && calls < 10000) {
        calls++;
    }
    cr_expect_eq(rc, CVG_OK);
    cvg_link_stats st;
    cvg_link_stats_get(l, &st, sizeof st);
    cr_expect_eq(calls + 1, st.delivered, "one delivery per call");
    cr_expect_eq(st.dropped, 0);
    cvg_session_close(sa);
    cvg_session_close(sb);

    /* Cut short again, then cleared: nothing stale reaches new sessions. */
    pair_write(&p, 4);
    open_sessions(&p, &sa, &sb);
    cr_expect_eq(cvg_link_run(l, sa, sb, 1), CVG_DONE);
    cvg_session_close(sa);
    cvg_session_close(sb);
    cvg_link_clear(l);
    cvg_link_stats_get(l, &st, sizeof st);
    cr_expect_gt(st.dropped, 0, "the cleared messages count as dropped");
    cr_assert_eq(run_once(&p, l, BUDGET), CVG_OK);
    cvg_link_free(l);
    clean_run_converges(&p, "budget");
    pair_close(&p);
}

/* ---- Determinism --------------------------------------------------------- */

/* Two pairs fed the same workload and the same test clocks, over links
 * with the same seed, see the same faults. */
static void
faulty_history(const char *name, uint64_t link_seed, cvg_link_stats *out)
{
    pair p;
    pair_open(&p, name, 77);
    cvg_link_options o;
    cvg_link_options_init(&o);
    o.seed = link_seed;
    o.drop_pct = 10;
    o.dup_pct = 20;
    o.reorder_pct = 20;
    o.delay_pct = 20;
    o.cut_pct = 5;
    cvg_link *l;
    cr_assert_eq(cvg_link_new(&o, &l), CVG_OK);
    for (int k = 0; k < 10; k++) {
        pair_write(&p, 3);
        int rc = run_once(&p, l, BUDGET);
        (void)rc; /* faults may break the session; the stats tell */
    }
    cvg_link_stats_get(l, out, sizeof *out);
    cvg_link_free(l);
    pair_close(&p);
}

Test(link, same_seed_same_faults)
{
    uint64_t seed = cvg_test_seed(42);
    cvg_link_stats x, y, z;
    faulty_history("det-x", seed, &x);
    faulty_history("det-y", seed, &y);
    faulty_history("det-z", seed + 1, &z);
    cr_expect_eq(x.delivered, y.delivered);
    cr_expect_eq(x.dropped, y.dropped);
    cr_expect_eq(x.duplicated, y.duplicated);
    cr_expect_eq(x.reordered, y.reordered);
    cr_expect_eq(x.delayed, y.delayed);
    cr_expect_eq(x.cut, y.cut);
    cr_expect_eq(x.bytes, y.bytes);
    cr_expect_gt(x.dropped + x.duplicated + x.reordered + x.delayed + x.cut, 0,
                 "no fault struck");
    cr_expect(memcmp(&x, &z, sizeof x) != 0,
              "another seed gave the very same faults");
}

/* ---- Bad arguments ------------------------------------------------------- */

Test(link, bad_options_are_refused)
{
    cvg_link *l = (cvg_link *)&l; /* not NULL: a failure must clear it */
    cvg_link_options o;
    for (int f = 0; f < NFAULTS; f++) {
        cvg_link_options_init(&o);
        unsigned *rate[NFAULTS] = {&o.drop_pct, &o.dup_pct, &o.reorder_pct,
                                   &o.delay_pct, &o.cut_pct};
        *rate[f] = 100;
        cr_expect_eq(cvg_link_new(&o, &l), CVG_OK, "%s 100%%", fault_names[f]);
        cvg_link_free(l);
        *rate[f] = 101;
        l = (cvg_link *)&l;
        cr_expect_eq(cvg_link_new(&o, &l), CVG_EINVAL, "%s 101%%",
                     fault_names[f]);
        cr_expect_null(l);
    }
    cvg_link_options_init(&o);
    o.version = 0;
    cr_expect_eq(cvg_link_new(&o, &l), CVG_EINVAL);
    o.version = CVG_LINK_OPTIONS_VERSION + 1;
    cr_expect_eq(cvg_link_new(&o, &l), CVG_EINVAL);
    cr_expect_eq(cvg_link_new(NULL, NULL), CVG_EINVAL);

    cr_assert_eq(cvg_link_new(NULL, &l), CVG_OK);
    pair p;
    pair_open(&p, "badargs", 1);
    cvg_session *sa, *sb;
    open_sessions(&p, &sa, &sb);
    cr_expect_eq(cvg_link_run(NULL, sa, sb, 10), CVG_EINVAL);
    cr_expect_eq(cvg_link_run(l, NULL, sb, 10), CVG_EINVAL);
    cr_expect_eq(cvg_link_run(l, sa, NULL, 10), CVG_EINVAL);
    cr_expect_eq(cvg_link_run(l, sa, sa, 10), CVG_EINVAL);
    cvg_session_close(sa);
    cvg_session_close(sb);

    /* The NULL-accepting calls. */
    cvg_link_stats st;
    memset(&st, 0xAB, sizeof st);
    cvg_link_stats_get(NULL, &st, sizeof st);
    cvg_link_stats_get(l, NULL, sizeof(cvg_link_stats));
    cvg_link_set_down(NULL, true);
    cvg_link_clear(NULL);
    cvg_link_free(NULL);
    cvg_link_options_init(NULL);
    cvg_link_free(l);
    pair_close(&p);
}

/* ---- One whole sync: cvg_link_sync() -------------------------------------- */

/* One op that is sure to be committed, outside the workload's keys. */
static void
add_one(cvg_replica *r)
{
    cvg_key k = {"link", "k", "n"};
    cvg_txn *t;
    cr_assert_eq(cvg_txn_begin(r, 0, &t), CVG_OK);
    cr_assert_eq(cvg_counter_add(t, &k, 1, NULL), CVG_OK);
    cr_assert_eq(cvg_txn_commit(t), CVG_OK);
}

/* A clean link: both sessions done, each side's stats count the other's
 * ops, and the replicas converge. */
Test(link, sync_clean_reports_both_sides)
{
    pair p;
    pair_open(&p, "sync-clean", cvg_test_seed(21));
    add_one(p.r[0]);
    add_one(p.r[1]);
    cvg_link *l;
    cr_assert_eq(cvg_link_new(NULL, &l), CVG_OK);
    cvg_link_result res;
    memset(&res, 0xAB, sizeof res);
    cr_assert_eq(cvg_link_sync(l, p.r[0], p.r[1], BUDGET, &res), CVG_OK);
    cr_expect(res.done);
    cr_expect_eq(res.error_a, CVG_OK);
    cr_expect_eq(res.error_b, CVG_OK);
    cr_expect_gt(res.stats_a.ops_received, 0, "a got b's ops");
    cr_expect_gt(res.stats_b.ops_received, 0, "b got a's ops");
    cr_expect_eq(res.stats_a.ops_sent, res.stats_b.ops_received);
    cr_expect_eq(res.stats_b.ops_sent, res.stats_a.ops_received);
    /* Nothing new is left: a second sync applies no op. */
    cr_assert_eq(cvg_link_sync(l, p.r[0], p.r[1], BUDGET, &res), CVG_OK);
    cr_expect_eq(res.stats_a.ops_received + res.stats_b.ops_received, 0);
    cvg_link_free(l);
    clean_run_converges(&p, "after cvg_link_sync");
    pair_close(&p);
}

/* A partition: the sessions open and close, nothing crosses, the call says
 * CVG_DONE, and neither replica changes. After the heal, a sync gets
 * through, and late messages of the cut sessions are not carried into it. */
Test(link, sync_partitioned_is_done_without_change)
{
    pair p;
    pair_open(&p, "sync-down", cvg_test_seed(22));
    pair_write(&p, 10);
    char *before0 = cvg_test_state(p.r[0]);
    char *before1 = cvg_test_state(p.r[1]);
    cvg_link *l;
    cr_assert_eq(cvg_link_new(NULL, &l), CVG_OK);
    cvg_link_set_down(l, true);
    cvg_link_result res;
    cr_expect_eq(cvg_link_sync(l, p.r[0], p.r[1], BUDGET, &res), CVG_DONE);
    cr_expect_not(res.done);
    cr_expect_eq(res.error_a, CVG_OK, "a lost message is no session error");
    cr_expect_eq(res.error_b, CVG_OK);
    cr_expect_eq(res.stats_a.ops_received + res.stats_b.ops_received, 0);
    char *after0 = cvg_test_state(p.r[0]);
    char *after1 = cvg_test_state(p.r[1]);
    cr_expect_str_eq(after0, before0);
    cr_expect_str_eq(after1, before1);
    free(before0);
    free(before1);
    free(after0);
    free(after1);

    /* A budget of 1 leaves messages in flight; the next sync drops them
     * (counted) before it starts, so they never reach its sessions. */
    cvg_link_set_down(l, false);
    cr_expect_eq(cvg_link_sync(l, p.r[0], p.r[1], 1, NULL), CVG_DONE);
    cvg_link_stats st0, st1;
    cvg_link_stats_get(l, &st0, sizeof st0);
    cr_assert_eq(cvg_link_sync(l, p.r[0], p.r[1], BUDGET, &res), CVG_OK);
    cvg_link_stats_get(l, &st1, sizeof st1);
    cr_expect_gt(st1.dropped, st0.dropped, "the leftovers were dropped");
    cvg_link_free(l);
    clean_run_converges(&p, "after the partition");
    pair_close(&p);
}

/* Faults break some syncs, never the replicas: a result that is not done
 * is CVG_DONE, and syncing again until one is done converges. */
Test(link, sync_retried_over_faults_converges)
{
    pair p;
    pair_open(&p, "sync-faults", cvg_test_seed(23));
    pair_write(&p, 30);
    cvg_link_options o;
    cvg_link_options_init(&o);
    o.seed = p.wl.seed;
    o.drop_pct = 15;
    o.dup_pct = 15;
    o.reorder_pct = 15;
    o.cut_pct = 5;
    cvg_link *l;
    cr_assert_eq(cvg_link_new(&o, &l), CVG_OK);
    int rc = CVG_DONE;
    for (int i = 0; i < 200 && rc == CVG_DONE; i++) {
        cvg_link_result res;
        rc = cvg_link_sync(l, p.r[0], p.r[1], BUDGET, &res);
        cr_assert(rc == CVG_OK || rc == CVG_DONE, "sync %d: %s", i,
                  cvg_errname(rc));
        cr_assert_eq(res.done, rc == CVG_OK);
    }
    cr_assert_eq(rc, CVG_OK,
                 "no sync got through; replay with "
                 "CVG_TEST_SEED=%llu",
                 (unsigned long long)p.wl.seed);
    char *d0, *d1;
    cr_assert_eq(cvg_test_digest(p.r[0], &d0), CVG_OK);
    cr_assert_eq(cvg_test_digest(p.r[1], &d1), CVG_OK);
    cr_expect_str_eq(d0, d1);
    free(d0);
    free(d1);
    cvg_test_check_counters(&p.wl, p.r[0]);
    cvg_test_check_counters(&p.wl, p.r[1]);
    cvg_link_free(l);
    pair_close(&p);
}

Test(link, sync_bad_arguments)
{
    pair p;
    pair_open(&p, "sync-args", 1);
    cvg_link *l;
    cr_assert_eq(cvg_link_new(NULL, &l), CVG_OK);
    cvg_link_result res;
    memset(&res, 0xAB, sizeof res);
    cr_expect_eq(cvg_link_sync(NULL, p.r[0], p.r[1], 10, &res), CVG_EINVAL);
    cr_expect_eq(res.error_a, 0, "the result is zeroed");
    cr_expect_not(res.done);
    cr_expect_eq(cvg_link_sync(l, NULL, p.r[1], 10, NULL), CVG_EINVAL);
    cr_expect_eq(cvg_link_sync(l, p.r[0], NULL, 10, NULL), CVG_EINVAL);
    cr_expect_eq(cvg_link_sync(l, p.r[0], p.r[0], 10, NULL), CVG_EINVAL);
    cvg_link_stats st;
    cvg_link_stats_get(l, &st, sizeof st);
    cr_expect_eq(st.delivered + st.dropped, 0, "nothing was sent");
    cvg_link_free(l);
    pair_close(&p);
}

/* ---- Allocation failures ------------------------------------------------- */

/* Whether the failure armed with cvg__alloc_fail_after(n) was used up: if it
 * is still pending, one of the next n allocations fails. Disarms. */
static bool
fault_consumed(unsigned long n)
{
    bool pending = false;
    for (unsigned long i = 0; i < n && !pending; i++) {
        void *q = cvg__alloc(1);
        if (q == NULL) {
            pending = true;
        }
        cvg__free(q);
    }
    cvg__alloc_fail_after(0);
    return !pending;
}

/* Fail the Nth allocation of the library while opening two sessions and
 * running them over link @p o (the link itself, a harness, allocates with
 * malloc), for N = 1, 2, ... until the whole run goes through. Each call reports the failure (or the session it broke does);
 * nothing crashes or leaks (under ASan), and clean runs converge
 * afterwards. Returns the allocations the run took. */
static unsigned long
fail_each_allocation(pair *p, const cvg_link_options *o)
{
    cvg_session_options so;
    cvg_session_options_init(&so);
    so.page_ops = 2;
    unsigned long n;
    bool finished = false;
    for (n = 1; n < 20000 && !finished; n++) {
        pair_write(p, 1);
        cvg__alloc_fail_after(n);
        cvg_link *l = NULL;
        cvg_session *sa = NULL, *sb = NULL;
        int rc = cvg_link_new(o, &l);
        if (rc == CVG_OK) {
            rc = cvg_session_open(p->r[0], &so, &sa);
        }
        if (rc == CVG_OK) {
            rc = cvg_session_open(p->r[1], &so, &sb);
        }
        if (rc == CVG_OK) {
            rc = cvg_link_run(l, sa, sb, BUDGET);
        }
        finished = !fault_consumed(n);
        /* A session may shrug off some failures (bookkeeping it can do
         * without), and faults may break it, so any outcome but CVG_EINVAL
         * is fine here; what matters is that the replicas stay sound,
         * which the clean runs check. */
        cr_assert(rc != CVG_EINVAL, "n=%lu: %s", n, cvg_errname(rc));
        cvg_session_close(sa);
        cvg_session_close(sb);
        cvg_link_free(l);
        if (n % 16 == 0) {
            clean_run_converges(p, "after a failed allocation");
        }
    }
    cr_expect(finished, "never got through: %lu", n);
    clean_run_converges(p, "after the failed allocations");
    return n - 1;
}

Test(link, allocation_failures_never_crash, .timeout = 300)
{
    pair p;
    pair_open(&p, "oom", cvg_test_seed(9));
    /* A clean link: every step of a whole session, and every copy. */
    unsigned long clean = fail_each_allocation(&p, NULL);
    /* Faults too: duplicates are a second copy; a fixed seed, so that the
     * run fails at the same places each time. */
    cvg_link_options o;
    cvg_link_options_init(&o);
    o.seed = 3;
    o.dup_pct = 20;
    o.reorder_pct = 20;
    o.delay_pct = 20;
    o.drop_pct = 5;
    unsigned long faulty = fail_each_allocation(&p, &o);
    cr_log_info("a clean run took %lu allocations, a faulty one %lu", clean,
                faulty);
    cr_expect_gt(clean, 50, "the clean run should be a whole session");
    pair_close(&p);
}
