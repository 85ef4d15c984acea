/*
 * The syncer's threads as a plain program, for ThreadSanitizer (which
 * Criterion programs cannot start under; see replica/threads_main.c): a
 * server thread, two clients each with a syncer, and two app threads
 * writing under the syncers' locks while the server goes away and comes
 * back on its port. Ends when both clients hold every write (bounded),
 * then checks that all three replicas agree. Prints one line; exits 1 on
 * failure.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "converge.h"
#include "converge/net.h"

#include "digest.h"
#include "testutil.h"

enum { N = 100 };

typedef struct server_box {
    cvg_replica *r;
    cvg_server *srv;
    pthread_t th;
} server_box;

typedef struct writer {
    cvg_syncer *s;
    cvg_replica *r;
    int rc;
} writer;

static void *
serve(void *arg)
{
    server_box *b = arg;
    return (void *)(intptr_t)cvg_server_run(b->srv);
}

static int
serve_on(server_box *b, unsigned port)
{
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", port);
    int rc = cvg_server_open(b->r, addr, NULL, &b->srv);
    if (rc == CVG_OK && pthread_create(&b->th, NULL, serve, b) != 0) {
        rc = CVG_ELIMIT;
    }
    return rc;
}

static void
stop_server(server_box *b)
{
    cvg_server_stop(b->srv);
    pthread_join(b->th, NULL);
    cvg_server_close(b->srv);
}

static int
add(cvg_replica *r, const char *key)
{
    cvg_txn *t;
    int rc = cvg_txn_begin(r, 0, &t);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg_key k = {"c", key, "n"};
    rc = cvg_counter_add(t, &k, 1, NULL);
    if (rc != CVG_OK) {
        cvg_txn_abort(t);
        return rc;
    }
    return cvg_txn_commit(t);
}

static int64_t
get(cvg_syncer *s, cvg_replica *r, const char *key)
{
    cvg_syncer_lock(s);
    cvg_txn *t;
    int64_t v = -1;
    if (cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t) == CVG_OK) {
        cvg_key k = {"c", key, "n"};
        v = 0;
        int rc = cvg_counter_get(t, &k, &v);
        v = rc == CVG_OK || rc == CVG_ENOTFOUND ? v : -1;
        cvg_txn_abort(t);
    }
    cvg_syncer_unlock(s);
    return v;
}

static void *
write_many(void *arg)
{
    writer *w = arg;
    for (int i = 0; i < N && w->rc == CVG_OK; i++) {
        cvg_syncer_lock(w->s);
        w->rc = add(w->r, "shared");
        cvg_syncer_unlock(w->s);
        cvg_syncer_notify(w->s);
        usleep(2000);
    }
    return NULL;
}

static cvg_replica *
open_dir(const char *name)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = CVG_RELAXED;
    cvg_replica *r = NULL;
    return cvg_replica_open(cvg_test_dir(name), &o, &r) == CVG_OK ? r : NULL;
}

static const char *
scenario(void)
{
    server_box b;
    b.r = open_dir("server");
    cvg_replica *c[2] = {open_dir("a"), open_dir("b")};
    if (b.r == NULL || c[0] == NULL || c[1] == NULL ||
        serve_on(&b, 0) != CVG_OK) {
        return "cannot open the replicas or serve";
    }
    unsigned port = cvg_server_port(b.srv);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%u", port);
    cvg_syncer *s[2];
    writer w[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        cvg_syncer_options o;
        cvg_syncer_options_init(&o);
        o.url = url;
        o.interval_ms = 20;
        o.debounce_ms = 5;
        o.backoff_min_ms = 10;
        o.backoff_max_ms = 40;
        if (cvg_syncer_start(c[i], &o, &s[i]) != CVG_OK) {
            return "cannot start a syncer";
        }
        w[i] = (writer){s[i], c[i], CVG_OK};
        pthread_create(&th[i], NULL, write_many, &w[i]);
    }
    /* Away for a while, mid-writes, then back on the same port. */
    usleep(60 * 1000);
    stop_server(&b);
    usleep(100 * 1000);
    bool serving = serve_on(&b, port) == CVG_OK;
    const char *err = serving ? NULL : "cannot serve again on the port";
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        if (w[i].rc != CVG_OK && err == NULL) {
            err = "a write failed";
        }
    }
    for (int i = 0; i < 2 && err == NULL; i++) {
        cvg_syncer_sync_now(s[i]);
        int64_t v = get(s[i], c[i], "shared");
        for (int k = 0; k < 2000 && v != 2 * N; k++) { /* 20 s at most */
            usleep(10 * 1000);
            v = get(s[i], c[i], "shared");
        }
        if (v != 2 * N) {
            err = "a client never got every write";
        }
    }
    for (int i = 0; i < 2; i++) {
        cvg_syncer_stop(s[i]);
    }
    if (serving) {
        stop_server(&b);
    }
    if (err == NULL) {
        char *want = NULL;
        int rc = cvg_test_digest(b.r, &want);
        for (int i = 0; i < 2 && err == NULL; i++) {
            char *have = NULL;
            if (rc == CVG_OK) {
                rc = cvg_test_digest(c[i], &have);
            }
            if (rc != CVG_OK || strcmp(want, have) != 0) {
                err = "a client's state differs from the server's";
            }
            free(have);
        }
        free(want);
    }
    for (int i = 0; i < 2; i++) {
        cvg_replica_close(c[i]);
    }
    cvg_replica_close(b.r);
    return err;
}

int
main(void)
{
    const char *err = scenario();
    if (err != NULL) {
        printf(
            "[FAIL] syncer::writes_under_the_lock_while_the_server_comes_"
            "and_goes: %s\n",
            err);
        return 1;
    }
    printf(
        "[PASS] syncer::writes_under_the_lock_while_the_server_comes_and_"
        "goes\n");
    return 0;
}
