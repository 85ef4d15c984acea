/*
 * What the network tests share: a cvg_server on a thread of its own with
 * a replica in a fresh directory, counters to write and read, a clock.
 * Static functions with Criterion's asserts, for the test files of
 * tests/net/ that run servers (test_tcp.c, test_hostile_net.c,
 * test_load.c).
 */
#ifndef CVG_TEST_NET_HARNESS_H
#define CVG_TEST_NET_HARNESS_H

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "converge.h"
#include "converge/net.h"

#include "testutil.h"

#define OK(call) cr_assert_eq((call), CVG_OK, "%s", #call)

typedef struct server_box {
    cvg_replica *r;
    cvg_server *srv;
    pthread_t th;
} server_box;

static inline cvg_replica *
open_dir(const char *name)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = CVG_RELAXED;
    cvg_replica *r = NULL;
    OK(cvg_replica_open(cvg_test_dir(name), &o, &r));
    return r;
}

static inline void *
serve_thread(void *arg)
{
    server_box *b = arg;
    int rc = cvg_server_run(b->srv);
    return (void *)(intptr_t)rc;
}

/* Serve b->r on @p addr ("HOST:PORT", port 0 for a free one): the code
 * of cvg_server_open(), which a test of an address that cannot be bound
 * (no IPv6) expects. */
static inline int
start_at(server_box *b, const char *addr, const cvg_server_options *o)
{
    int rc = cvg_server_open(b->r, addr, o, &b->srv);
    if (rc != CVG_OK) {
        return rc;
    }
    cr_assert_neq(cvg_server_port(b->srv), 0);
    cr_assert_eq(pthread_create(&b->th, NULL, serve_thread, b), 0);
    return CVG_OK;
}

/* A server of @p r (opened "server" if NULL) on 127.0.0.1, a free port. */
static inline void
start_on(server_box *b, cvg_replica *r, const cvg_server_options *o)
{
    b->r = r != NULL ? r : open_dir("server");
    OK(start_at(b, "127.0.0.1:0", o));
}

/* Stop and close the server; its replica stays open. */
static inline void
stop(server_box *b)
{
    cvg_server_stop(b->srv);
    void *ret;
    cr_assert_eq(pthread_join(b->th, &ret), 0);
    cr_assert_eq((intptr_t)ret, CVG_OK);
    cvg_server_close(b->srv);
}

static inline void
url_at(const server_box *b, const char *host, char *out, size_t cap)
{
    snprintf(out, cap, "tcp://%s:%u", host, (unsigned)cvg_server_port(b->srv));
}

static inline void
url_of(const server_box *b, char *out, size_t cap)
{
    url_at(b, "127.0.0.1", out, cap);
}

static inline void
add(cvg_replica *r, const char *key, int64_t n)
{
    cvg_txn *t;
    OK(cvg_txn_begin(r, 0, &t));
    cvg_key k = {"c", key, "n"};
    OK(cvg_counter_add(t, &k, n, NULL));
    OK(cvg_txn_commit(t));
}

static inline int64_t
get(cvg_replica *r, const char *key)
{
    cvg_txn *t;
    OK(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t));
    cvg_key k = {"c", key, "n"};
    int64_t v = 0;
    int rc = cvg_counter_get(t, &k, &v);
    cr_assert(rc == CVG_OK || rc == CVG_ENOTFOUND);
    cvg_txn_abort(t);
    return v;
}

static inline double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
