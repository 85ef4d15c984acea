/*
 * Peer to peer over TCP, with no server between: three replicas, each
 * listening (cvg_server_open) and connected to the next one in a ring
 * (cvg_server_connect), write at random while their servers run; each
 * write is made under the server's lock and announced with
 * cvg_server_notify(), and nothing else moves ops: no one-shot sync, no
 * poll. Every replica must end equal to an oracle that syncs with each of
 * them by plain sessions afterwards, and every counter holds the sum of
 * its deltas. One peer is stopped and started again midway, so the ring
 * is cut and its connections are made again. Bounded: a fixed count of
 * writes per seed, and a deadline for the ring to settle.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "digest.h"
#include "harness.h"
#include "workload.h"

#define PEERS 3

typedef struct peer {
    server_box b;
    char listen[64];
} peer;

static void
peer_start(peer *p, peer *next, bool connect)
{
    OK(cvg_server_open(p->b.r, p->listen, NULL, &p->b.srv));
    if (connect) {
        char url[96];
        snprintf(url, sizeof url, "tcp://%s", next->listen);
        uint8_t pk[CVG_PUBLIC_KEY_BYTES];
        OK(cvg_replica_public_key(next->b.r, pk));
        OK(cvg_server_connect(p->b.srv, url, pk));
    }
    cr_assert_eq(pthread_create(&p->b.th, NULL, serve_thread, &p->b), 0);
}

static char *
digest_locked(peer *p)
{
    char *d;
    cvg_server_lock(p->b.srv);
    OK(cvg_test_digest(p->b.r, &d));
    cvg_server_unlock(p->b.srv);
    return d;
}

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void
run_seed(uint64_t seed)
{
    peer p[PEERS];
    memset(p, 0, sizeof p);
    cvg_test_workload wl;
    memset(&wl, 0, sizeof wl);
    wl.seed = wl.rng = seed;
    for (int i = 0; i < PEERS; i++) {
        char name[48];
        snprintf(name, sizeof name, "mesh-%llu-%d", (unsigned long long)seed,
                 i);
        p[i].b.r = open_dir(name);
        snprintf(p[i].listen, sizeof p[i].listen, "127.0.0.1:0");
    }
    /* Ports first (each connects to the next, which must be listening). */
    for (int i = 0; i < PEERS; i++) {
        OK(cvg_server_open(p[i].b.r, p[i].listen, NULL, &p[i].b.srv));
        snprintf(p[i].listen, sizeof p[i].listen, "127.0.0.1:%u",
                 (unsigned)cvg_server_port(p[i].b.srv));
    }
    for (int i = 0; i < PEERS; i++) {
        char url[96];
        peer *next = &p[(i + 1) % PEERS];
        snprintf(url, sizeof url, "tcp://%s", next->listen);
        uint8_t pk[CVG_PUBLIC_KEY_BYTES];
        OK(cvg_replica_public_key(next->b.r, pk));
        OK(cvg_server_connect(p[i].b.srv, url, pk));
        cr_assert_eq(pthread_create(&p[i].b.th, NULL, serve_thread, &p[i].b),
                     0);
    }
    int writes = 40 + (int)cvg_test_below(&wl.rng, 40);
    int restart_at = (int)cvg_test_below(&wl.rng, (uint64_t)writes);
    int restarted = (int)cvg_test_below(&wl.rng, PEERS);
    for (int k = 0; k < writes; k++) {
        int i = (int)cvg_test_below(&wl.rng, PEERS);
        if (k == restart_at) {
            /* Cut the ring: one peer stops (its sessions end), then comes
             * back on the same port and connects again. */
            stop(&p[restarted].b);
            peer_start(&p[restarted], &p[(restarted + 1) % PEERS], true);
        }
        cvg_server_lock(p[i].b.srv);
        cvg_test_random_txn(&wl, p[i].b.r);
        cvg_server_unlock(p[i].b.srv);
        cvg_server_notify(p[i].b.srv);
        if (cvg_test_below(&wl.rng, 4) == 0) {
            sleep_ms((long)cvg_test_below(&wl.rng, 5));
        }
    }
    /* Settle: every peer holds the same state, within a deadline (the
     * backoff after the restart is at most a few seconds here). */
    double deadline = now_s() + 30;
    bool same = false;
    while (!same && now_s() < deadline) {
        char *d0 = digest_locked(&p[0]);
        same = true;
        for (int i = 1; i < PEERS && same; i++) {
            char *di = digest_locked(&p[i]);
            same = strcmp(d0, di) == 0;
            free(di);
        }
        free(d0);
        if (!same) {
            sleep_ms(20);
        }
    }
    for (int i = 0; i < PEERS; i++) {
        stop(&p[i].b);
    }
    cr_assert(same, "seed %llu: the peers did not converge in 30 s",
              (unsigned long long)seed);
    char name[48];
    snprintf(name, sizeof name, "mesh-%llu-oracle", (unsigned long long)seed);
    cvg_replica *oracle = open_dir(name);
    for (int i = 0; i < PEERS; i++) {
        OK(cvg_sync_local(oracle, p[i].b.r, NULL));
    }
    char *dor;
    OK(cvg_test_digest(oracle, &dor));
    for (int i = 0; i < PEERS; i++) {
        char *di;
        OK(cvg_test_digest(p[i].b.r, &di));
        cr_assert_str_eq(di, dor, "seed %llu: peer %d differs from the oracle",
                         (unsigned long long)seed, i);
        free(di);
        cvg_replica_close(p[i].b.r);
    }
    free(dor);
    cvg_test_check_counters(&wl, oracle);
    cvg_replica_close(oracle);
}

Test(mesh, three_peers_converge_with_no_server, .timeout = 300)
{
    const char *env = getenv("CVG_TEST_SEED");
    if (env != NULL && env[0] != '\0') {
        run_seed(cvg_test_seed(0));
        return;
    }
    for (uint64_t s = 1; s <= 5; s++) {
        run_seed(s);
    }
}
