/*
 * Load: 32 clients against one server over TCP on 127.0.0.1, for a
 * bounded time. Each client is a thread with a replica of its own (a
 * replica handle is used by one thread at a time, so none is shared):
 * it writes random increments to a few shared counters, then syncs with
 * cvg_net_sync, again and again. The test keeps the oracle, each
 * counter's sum of every increment made, per client and then in all.
 * After two final rounds of syncs (the first takes every client's ops to
 * the server, the second brings them all back), every replica's counters
 * must equal the oracle, its log must hold exactly the ops made (none
 * lost, none applied twice), and every replica's state must be the
 * server's.
 *
 * Bounds: CVG_LOAD_SECONDS (default 20, at most 30) of writing and
 * syncing, and CVG_LOAD_SYNCS syncs per client at most (default 2000).
 * The figures (syncs, ops, rates, failures) go to stderr.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "checks.h"
#include "harness.h"

#define CLIENTS 32
#define COUNTERS 8

typedef struct client {
    int id;
    const char *url;
    cvg_replica *r;
    double deadline;
    uint64_t max_syncs;
    uint64_t rng;
    int64_t sums[COUNTERS];
    uint64_t ops, syncs, failed;
    int first_rc;
    char why[200];
} client;

static unsigned
env_uint(const char *name, unsigned dflt, unsigned max)
{
    const char *s = getenv(name);
    if (s == NULL || s[0] == '\0') {
        return dflt;
    }
    unsigned long v = strtoul(s, NULL, 10);
    return v == 0 ? dflt : (unsigned)(v > max ? max : v);
}

static int
write_some(client *c)
{
    cvg_txn *t;
    int rc = cvg_txn_begin(c->r, 0, &t);
    if (rc != CVG_OK) {
        return rc;
    }
    int n = 1 + (int)cvg_test_below(&c->rng, 4);
    int64_t delta[COUNTERS] = {0};
    for (int i = 0; i < n && rc == CVG_OK; i++) {
        unsigned k = (unsigned)cvg_test_below(&c->rng, COUNTERS);
        int64_t d = (int64_t)cvg_test_below(&c->rng, 105) - 5;
        d += d >= 0; /* -5..100, never 0 */
        char key[8] = {'k', (char)('0' + k), 0};
        cvg_key ck = {"c", key, "n"};
        rc = cvg_counter_add(t, &ck, d, NULL);
        delta[k] += d;
    }
    if (rc != CVG_OK) {
        cvg_txn_abort(t);
        return rc;
    }
    rc = cvg_txn_commit(t);
    if (rc == CVG_OK) { /* only what committed counts */
        for (int k = 0; k < COUNTERS; k++) {
            c->sums[k] += delta[k];
        }
        c->ops += (uint64_t)n;
    }
    return rc;
}

static void
note(client *c, int rc, const char *what)
{
    if (c->first_rc == CVG_OK) {
        c->first_rc = rc;
        snprintf(c->why, sizeof c->why, "%s: %s (%s)", what, cvg_errname(rc),
                 cvg_replica_errmsg(c->r));
    }
}

static void *
run_client(void *arg)
{
    client *c = arg;
    while (now_s() < c->deadline && c->syncs < c->max_syncs) {
        int rounds = 1 + (int)cvg_test_below(&c->rng, 3);
        for (int i = 0; i < rounds; i++) {
            int rc = write_some(c);
            if (rc != CVG_OK) {
                note(c, rc, "write");
                return NULL;
            }
        }
        int rc = cvg_net_sync(c->r, c->url, NULL, NULL);
        c->syncs++;
        if (rc != CVG_OK) {
            c->failed++;
            note(c, rc, "sync");
        }
    }
    return NULL;
}

static int64_t
counter(cvg_replica *r, unsigned k)
{
    char key[8] = {'k', (char)('0' + k), 0};
    return get(r, key);
}

Test(load, thirty_two_clients_lose_and_repeat_nothing, .timeout = 180)
{
    unsigned secs = env_uint("CVG_LOAD_SECONDS", 20, 30);
    unsigned max_syncs = env_uint("CVG_LOAD_SYNCS", 2000, 1000000);
    server_box b;
    start_on(&b, NULL, NULL);
    char url[64];
    url_of(&b, url, sizeof url);
    static client cl[CLIENTS];
    pthread_t th[CLIENTS];
    uint64_t seed = cvg_test_seed(0x10ad);
    double t0 = now_s();
    for (int i = 0; i < CLIENTS; i++) {
        char name[16];
        snprintf(name, sizeof name, "client%d", i);
        memset(&cl[i], 0, sizeof cl[i]);
        cl[i].id = i;
        cl[i].url = url;
        cl[i].r = open_dir(name);
        cl[i].deadline = t0 + secs;
        cl[i].max_syncs = max_syncs;
        cl[i].rng = seed * 1000 + (uint64_t)i;
    }
    for (int i = 0; i < CLIENTS; i++) {
        cr_assert_eq(pthread_create(&th[i], NULL, run_client, &cl[i]), 0);
    }
    uint64_t syncs = 0, ops = 0, failed = 0;
    int64_t want[COUNTERS] = {0};
    for (int i = 0; i < CLIENTS; i++) {
        cr_assert_eq(pthread_join(th[i], NULL), 0);
        syncs += cl[i].syncs;
        ops += cl[i].ops;
        failed += cl[i].failed;
        for (int k = 0; k < COUNTERS; k++) {
            want[k] += cl[i].sums[k];
        }
        cr_expect_eq(cl[i].first_rc, CVG_OK, "client %d: %s", i, cl[i].why);
    }
    double took = now_s() - t0;
    fprintf(stderr,
            "load: %d clients, %.1f s: %llu syncs (%.0f/s), %llu ops written "
            "(%.0f/s), %llu failed\n",
            CLIENTS, took, (unsigned long long)syncs, (double)syncs / took,
            (unsigned long long)ops, (double)ops / took,
            (unsigned long long)failed);
    cr_expect_eq(failed, 0);

    /* Everything to the server, then everything back. */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < CLIENTS; i++) {
            int rc = cvg_net_sync(cl[i].r, url, NULL, NULL);
            cr_assert_eq(rc, CVG_OK, "final round %d, client %d: %s (%s)",
                         round, i, cvg_errname(rc),
                         cvg_replica_errmsg(cl[i].r));
        }
    }
    stop(&b);
    char *state = cvg_test_state(b.r);
    for (int i = -1; i < CLIENTS; i++) {
        cvg_replica *r = i < 0 ? b.r : cl[i].r;
        for (unsigned k = 0; k < COUNTERS; k++) {
            cr_expect_eq(counter(r, k), want[k],
                         "replica %d, counter k%u: %lld, expected %lld", i, k,
                         (long long)counter(r, k), (long long)want[k]);
        }
        cr_expect_eq(cvg_test_op_count(r), ops, "replica %d: %llu ops of %llu",
                     i, (unsigned long long)cvg_test_op_count(r),
                     (unsigned long long)ops);
        if (i >= 0) {
            char *got = cvg_test_state(r);
            cr_expect_str_eq(got, state, "client %d differs", i);
            free(got);
            cvg_replica_close(r);
        }
    }
    free(state);
    cvg_replica_close(b.r);
}
