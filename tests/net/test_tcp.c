/*
 * Sync over TCP on loopback: a server on its own thread with a replica,
 * clients syncing through cvg_net_sync(). Convergence of three clients
 * over IPv4 and IPv6, a wrong pin, an allow list, a closed port, garbage
 * bytes that must cost the server one connection only, and the timeouts
 * of both ends against a peer that says nothing. Every wait
 * is bounded by the connections' timeouts and the server's stop.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

/* A server on @p host, a free port; false if the address cannot be
 * bound (a machine without IPv6). */
static bool
start(server_box *b, const char *host, const cvg_server_options *o)
{
    b->r = open_dir("server");
    char addr[64];
    snprintf(addr, sizeof addr, "%s:0", host);
    return start_at(b, addr, o) == CVG_OK;
}

static void
three_clients(const char *host)
{
    server_box b;
    if (!start(&b, host, NULL)) {
        cvg_replica_close(b.r);
        cr_skip_test("cannot listen on %s", host);
    }
    char url[96];
    url_at(&b, host, url, sizeof url);
    cvg_replica *c[3];
    char name[16];
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "client%d", i);
        c[i] = open_dir(name);
        add(c[i], "shared", i + 1);
        add(c[i], name, 10 * (i + 1));
    }
    /* Twice round: the first gives the server everything, the second
     * gives every client the others' ops. */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 3; i++) {
            cvg_session_stats st;
            int rc = cvg_net_sync(c[i], url, NULL, &st);
            cr_assert_eq(rc, CVG_OK, "round %d client %d: %s (%s)", round, i,
                         cvg_errname(rc), cvg_replica_errmsg(c[i]));
        }
    }
    stop(&b);
    char *want = cvg_test_state(b.r);
    cr_assert_eq(get(b.r, "shared"), 6);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(get(c[i], "shared"), 6);
        cr_assert_eq(get(c[i], "client2"), 30);
        char *got = cvg_test_state(c[i]);
        cr_assert_str_eq(got, want, "client %d differs", i);
        free(got);
        cvg_replica_close(c[i]);
    }
    free(want);
    cvg_replica_close(b.r);
}

Test(tcp, three_clients_converge_ipv4, .timeout = 60)
{
    three_clients("127.0.0.1");
}

Test(tcp, three_clients_converge_ipv6, .timeout = 60)
{
    three_clients("[::1]");
}

Test(tcp, wrong_pin_fails_and_changes_nothing, .timeout = 60)
{
    server_box b;
    cr_assert(start(&b, "127.0.0.1", NULL));
    add(b.r, "s", 1);
    cvg_replica *c = open_dir("client");
    add(c, "c", 2);
    uint8_t other[CVG_PUBLIC_KEY_BYTES], sk[CVG_SECRET_KEY_BYTES];
    OK(cvg_identity_generate(other, sk));
    cvg_net_options o;
    cvg_net_options_init(&o);
    o.server_key = other;
    char url[96];
    url_of(&b, url, sizeof url);
    int rc = cvg_net_sync(c, url, &o, NULL);
    cr_assert_eq(rc, CVG_EKEY, "%s", cvg_errname(rc));
    cr_assert_eq(get(c, "s"), 0);

    /* The right key passes. */
    uint8_t pk[CVG_PUBLIC_KEY_BYTES];
    OK(cvg_replica_public_key(b.r, pk));
    o.server_key = pk;
    OK(cvg_net_sync(c, url, &o, NULL));
    stop(&b);
    cr_assert_eq(get(c, "s"), 1);
    cr_assert_eq(get(b.r, "c"), 2);
    cvg_replica_close(c);
    cvg_replica_close(b.r);
}

Test(tcp, wrong_pin_leaves_server_unchanged, .timeout = 60)
{
    server_box b;
    cr_assert(start(&b, "127.0.0.1", NULL));
    cvg_replica *c = open_dir("client");
    add(c, "c", 2);
    uint8_t other[CVG_PUBLIC_KEY_BYTES], sk[CVG_SECRET_KEY_BYTES];
    OK(cvg_identity_generate(other, sk));
    cvg_net_options o;
    cvg_net_options_init(&o);
    o.server_key = other;
    char url[96];
    url_of(&b, url, sizeof url);
    cr_assert_eq(cvg_net_sync(c, url, &o, NULL), CVG_EKEY);
    stop(&b);
    cr_assert_eq(get(b.r, "c"), 0);
    cr_assert_eq(cvg_test_op_count(b.r), 0);
    cvg_replica_close(c);
    cvg_replica_close(b.r);
}

Test(tcp, allow_list_refuses_unlisted, .timeout = 60)
{
    cvg_replica *good = open_dir("good");
    cvg_replica *bad = open_dir("bad");
    add(good, "g", 1);
    add(bad, "b", 1);
    uint8_t keys[1][32];
    OK(cvg_replica_public_key(good, keys[0]));
    cvg_server_options so;
    cvg_server_options_init(&so);
    so.allow = (const uint8_t(*)[32])keys;
    so.allow_count = 1;
    server_box b;
    cr_assert(start(&b, "127.0.0.1", &so));
    char url[96];
    url_of(&b, url, sizeof url);
    int rc = cvg_net_sync(bad, url, NULL, NULL);
    cr_assert_eq(rc, CVG_EPEER, "%s (%s)", cvg_errname(rc),
                 cvg_replica_errmsg(bad));
    OK(cvg_net_sync(good, url, NULL, NULL));
    stop(&b);
    cr_assert_eq(get(b.r, "g"), 1);
    cr_assert_eq(get(b.r, "b"), 0);
    cvg_replica_close(good);
    cvg_replica_close(bad);
    cvg_replica_close(b.r);
}

Test(tcp, closed_port_fails_fast, .timeout = 30)
{
    /* A port just bound and released: nothing listens there. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    cvg_replica *c = open_dir("client");
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%u",
             (unsigned)ntohs(a.sin_port));
    int rc = cvg_net_sync(c, url, NULL, NULL);
    cr_assert_eq(rc, CVG_EIO, "%s", cvg_errname(rc));
    cr_assert(strstr(cvg_replica_errmsg(c), "connect") != NULL, "%s",
              cvg_replica_errmsg(c));
    cr_assert_eq(cvg_net_sync(c, "http://x:1", NULL, NULL), CVG_EINVAL);
    cr_assert_eq(cvg_net_sync(c, "tcp://::1:80", NULL, NULL), CVG_EINVAL);
    cr_assert_eq(cvg_net_sync(NULL, url, NULL, NULL), CVG_EINVAL);
    cvg_replica_close(c);
}

Test(tcp, garbage_costs_one_connection, .timeout = 60)
{
    server_box b;
    cr_assert(start(&b, "127.0.0.1", NULL));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(cvg_server_port(b.srv)),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    /* A frame header of 0x0001 and a byte: no handshake message. */
    uint8_t junk[64];
    memset(junk, 0xA5, sizeof junk);
    junk[0] = 0;
    junk[1] = 1;
    cr_assert_eq(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    /* The server hangs up: read returns 0 (or an error), bounded by the
     * test's timeout and the server's handshake clock. */
    uint8_t buf[256];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
    }
    cr_assert_leq(n, 0);
    close(fd);

    cvg_replica *c = open_dir("client");
    add(c, "c", 3);
    char url[96];
    url_of(&b, url, sizeof url);
    OK(cvg_net_sync(c, url, NULL, NULL));
    stop(&b);
    cr_assert_eq(get(b.r, "c"), 3);
    cvg_replica_close(c);
    cvg_replica_close(b.r);
}

Test(tcp, server_bad_arguments)
{
    cvg_replica *r = open_dir("r");
    cvg_server *s = NULL;
    cr_assert_eq(cvg_server_open(r, "nohostport", NULL, &s), CVG_EINVAL);
    cr_assert_eq(cvg_server_open(NULL, "127.0.0.1:0", NULL, &s), CVG_EINVAL);
    cr_assert_eq(cvg_server_run(NULL), CVG_EINVAL);
    OK(cvg_server_open(r, "127.0.0.1:0", NULL, &s));
    /* Stopped before it runs: run returns at once. */
    cvg_server_stop(s);
    OK(cvg_server_run(s));
    cr_assert_eq(cvg_server_run(s), CVG_EMISUSE);
    cvg_server_close(s);
    cvg_server_close(NULL);
    cvg_replica_close(r);
}

Test(tcp, over_max_clients_answered_busy_at_once, .timeout = 60)
{
    cvg_server_options so;
    cvg_server_options_init(&so);
    so.max_clients = 1;
    server_box b;
    cr_assert(start(&b, "127.0.0.1", &so));
    /* A client that never speaks holds the only place. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(cvg_server_port(b.srv)),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    cvg_replica *c = open_dir("client");
    char url[96];
    url_of(&b, url, sizeof url);
    int rc = cvg_net_sync(c, url, NULL, NULL);
    cr_assert_eq(rc, CVG_EAGAIN, "%s", cvg_errname(rc));
    close(fd);
    /* Once the server sees that close, the place is free again. */
    for (int i = 0; i < 100 && rc != CVG_OK; i++) {
        usleep(20 * 1000);
        rc = cvg_net_sync(c, url, NULL, NULL);
    }
    cr_assert_eq(rc, CVG_OK, "%s", cvg_errname(rc));
    stop(&b);
    cvg_replica_close(c);
    cvg_replica_close(b.r);
}

/* A client that connects and says nothing is closed once the server's
 * handshake time is up, and the server goes on serving. */
Test(tcp, a_silent_client_is_closed_after_the_handshake_timeout, .timeout = 30)
{
    cvg_server_options o;
    cvg_server_options_init(&o);
    o.handshake_timeout_ms = 300;
    server_box b;
    cr_assert(start(&b, "127.0.0.1", &o));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(cvg_server_port(b.srv)),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    double t0 = now_s();
    uint8_t buf[256];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
    }
    double waited = now_s() - t0;
    close(fd);
    cr_expect_leq(n, 0);
    cr_expect_geq(waited, 0.2, "closed after %.3f s, before its time", waited);
    cr_expect_lt(waited, 5.0, "closed only after %.3f s", waited);
    cvg_replica *c = open_dir("client");
    add(c, "c", 1);
    char url[96];
    url_of(&b, url, sizeof url);
    OK(cvg_net_sync(c, url, NULL, NULL));
    stop(&b);
    cr_expect_eq(get(b.r, "c"), 1);
    cvg_replica_close(c);
    cvg_replica_close(b.r);
}

/* A server that accepts but never answers: the client gives up with
 * CVG_EIO once its timeout is up, and its replica is unchanged. */
Test(tcp, a_silent_server_times_the_client_out, .timeout = 30)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = 0,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(lfd, 4), 0);
    socklen_t len = sizeof a;
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
    cvg_replica *c = open_dir("client");
    add(c, "c", 2);
    char url[96];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%u",
             (unsigned)ntohs(a.sin_port));
    cvg_net_options o;
    cvg_net_options_init(&o);
    o.timeout_ms = 300;
    double t0 = now_s();
    int rc = cvg_net_sync(c, url, &o, NULL);
    double waited = now_s() - t0;
    cr_expect_eq(rc, CVG_EIO, "%s", cvg_errname(rc));
    cr_expect_gt(strlen(cvg_replica_errmsg(c)), 0);
    cr_expect_geq(waited, 0.2, "gave up after %.3f s, before its time", waited);
    cr_expect_lt(waited, 5.0, "gave up only after %.3f s", waited);
    cr_expect_eq(get(c, "c"), 2);
    close(lfd);
    cvg_replica_close(c);
}
