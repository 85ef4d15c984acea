/*
 * The demo's network scene: a server replica serves on a free loopback
 * port (cvg_server_run on a thread of its own, which owns that replica
 * while it runs), two tills change the same stock and price while apart,
 * then each syncs with it over TCP (cvg_net_sync: a Noise channel, and
 * each side proves its key over the channel's handshake hash), twice, so
 * that each gets the other's ops through the server. All three then hold
 * the same values. Last, both tills keep a live connection (a background
 * syncer each): a sale on one reaches the other through the server
 * without anyone polling it, and the demo prints how long it took.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "converge/net.h"

#include "cli.h"

enum { SERVER, TILL_A, TILL_B, N_REPLICAS };

static const char *const names[N_REPLICAS] = {"net-server", "net-till-a",
                                              "net-till-b"};

/* The server thread; its code waits for the join. */
typedef struct server_thread {
    cvg_server *srv;
    int rc;
} server_thread;

static void *
serve(void *arg)
{
    server_thread *st = arg;
    st->rc = cvg_server_run(st->srv);
    return NULL;
}

static int
till_work(cvg_replica *till, int64_t sold, double price)
{
    cvg_txn *t;
    int rc = cvg_txn_begin(till, 0, &t);
    if (rc != CVG_OK) {
        return rc;
    }
    rc = demo_inc(t, "stock/sku-9/qty", -sold);
    if (rc == CVG_OK) {
        rc = demo_op(t, CVG_OP_REGISTER_SET, "products/sku-9/price",
                     cvg_value_double(price));
    }
    return demo_end(t, rc);
}

static int
net_sync(cvg_replica *till, int i, const char *url)
{
    cvg_session_stats st;
    int rc = cvg_net_sync(till, url, NULL, &st);
    if (rc != CVG_OK) {
        fprintf(stderr, "converge: demo: %s: %s\n", names[i],
                cvg_replica_errmsg(till));
        return rc;
    }
    printf(
        "  sync %s <-> %s  %llu ops in, %llu ops out, %llu bytes of "
        "messages\n",
        names[i], url, (unsigned long long)st.ops_received,
        (unsigned long long)st.ops_sent,
        (unsigned long long)(st.bytes_sent + st.bytes_received));
    return CVG_OK;
}

/* Sync both tills twice, then show what each holds. */
static int
tour(cvg_replica **r, const char *url)
{
    int rc = CVG_OK;
    for (int round = 0; rc == CVG_OK && round < 2; round++) {
        for (int i = TILL_A; rc == CVG_OK && i <= TILL_B; i++) {
            rc = net_sync(r[i], i, url);
        }
    }
    static const char *const paths[] = {"stock/sku-9/qty",
                                        "products/sku-9/price"};
    static const cvg_type types[] = {CVG_TYPE_COUNTER, CVG_TYPE_REGISTER};
    for (int i = TILL_A; rc == CVG_OK && i <= TILL_B; i++) {
        printf("  %s:\n", names[i]);
        rc = demo_show_committed(r[i], paths, types, 2);
    }
    return rc;
}

static double
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The stock till @p r holds, read under its syncer's lock. */
static int
stock_of(cvg_syncer *s, cvg_replica *r, int64_t *out)
{
    cvg_syncer_lock(s);
    cvg_txn *t;
    int rc = cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t);
    if (rc == CVG_OK) {
        cvg_key k = {"stock", "sku-9", "qty"};
        rc = cvg_counter_get(t, &k, out);
        cvg_txn_abort(t);
    }
    cvg_syncer_unlock(s);
    return rc;
}

/* Both tills connected live: till-a sells one more, till-b sees it. */
static int
live_scene(cvg_replica **r, const char *url)
{
    cvg_syncer *s[N_REPLICAS] = {NULL, NULL, NULL};
    int rc = CVG_OK;
    for (int i = TILL_A; rc == CVG_OK && i <= TILL_B; i++) {
        cvg_syncer_options o;
        cvg_syncer_options_init(&o);
        o.url = url;
        o.debounce_ms = 1;
        rc = cvg_syncer_start(r[i], &o, &s[i]);
    }
    int64_t before = 0, now = 0;
    if (rc == CVG_OK) {
        rc = stock_of(s[TILL_B], r[TILL_B], &before);
    }
    double t0 = 0, took = -1;
    if (rc == CVG_OK) {
        puts(
            "  Now each till keeps a live connection (a background syncer);\n"
            "  till-a sells one more:");
        cvg_syncer_lock(s[TILL_A]);
        t0 = mono_ms();
        rc = till_work(r[TILL_A], 1, 2.95);
        cvg_syncer_unlock(s[TILL_A]);
        cvg_syncer_notify(s[TILL_A]);
    }
    /* Bounded: five seconds at most. */
    for (int k = 0; rc == CVG_OK && k < 5000 && took < 0; k++) {
        rc = stock_of(s[TILL_B], r[TILL_B], &now);
        if (rc == CVG_OK && now == before - 1) {
            took = mono_ms() - t0;
        } else {
            struct timespec pause = {0, 1000 * 1000};
            nanosleep(&pause, NULL);
        }
    }
    for (int i = TILL_A; i <= TILL_B; i++) {
        cvg_syncer_stop(s[i]);
    }
    if (rc == CVG_OK && took < 0) {
        fprintf(stderr, "converge: demo: the sale never reached till-b\n");
        return CVG_EIO;
    }
    if (rc == CVG_OK) {
        printf(
            "  till-b holds %lld in stock %.1f ms later: the server passed\n"
            "  the sale on as it landed; till-b never asked for it.\n",
            (long long)now, took);
    }
    return rc;
}

int
demo_net_tour(const char *dir)
{
    cvg_replica *r[N_REPLICAS] = {NULL, NULL, NULL};
    int rc = CVG_OK;
    for (int i = 0; rc == CVG_OK && i < N_REPLICAS; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        rc = cvg_replica_open(path, NULL, &r[i]);
    }
    if (rc == CVG_OK) {
        puts(
            "  Apart, till-a sells 2 and sets the price to 3.10; till-b\n"
            "  sells 5 and sets it to 2.95, a little later:");
        rc = till_work(r[TILL_A], 2, 3.10);
    }
    if (rc == CVG_OK) {
        /* Later by the wall clock, so the last-writer-wins price is
         * till-b's (equal times would be settled by origin id). */
        struct timespec pause = {0, 5 * 1000 * 1000};
        nanosleep(&pause, NULL);
        rc = till_work(r[TILL_B], 5, 2.95);
    }
    cvg_server *srv = NULL;
    if (rc == CVG_OK) {
        rc = cvg_server_open(r[SERVER], "127.0.0.1:0", NULL, &srv);
    }
    pthread_t th;
    server_thread st = {srv, CVG_OK};
    bool running = false;
    if (rc == CVG_OK) {
        running = pthread_create(&th, NULL, serve, &st) == 0;
        rc = running ? CVG_OK : CVG_ENOMEM;
    }
    if (rc == CVG_OK) {
        char url[64];
        snprintf(url, sizeof url, "tcp://127.0.0.1:%u",
                 (unsigned)cvg_server_port(srv));
        printf(
            "  A server listens on %s; each till syncs with it twice,\n"
            "  over an encrypted channel where each side proves its key:\n",
            url + 6);
        rc = tour(r, url);
        if (rc == CVG_OK) {
            puts(
                "  Both tills hold -7 in stock and the later price, 2.95: the\n"
                "  same values, whatever order the syncs took.");
            rc = live_scene(r, url);
        }
    }
    if (running) {
        cvg_server_stop(srv);
        pthread_join(th, NULL);
        rc = rc == CVG_OK ? st.rc : rc;
    }
    cvg_server_close(srv);
    for (int i = 0; i < N_REPLICAS; i++) {
        cvg_replica_close(r[i]);
    }
    return rc;
}
