/*
 * BUSY: a server at max_clients answers the next client with a BUSY frame
 * carrying its retry-after, before any handshake, and closes. Over real
 * TCP on 127.0.0.1: the bytes on the wire (a client that sends nothing
 * still gets them, then the server's end); cvg_net_sync() fails with
 * CVG_EAGAIN at once, not at its timeout, naming the url and the
 * server's retry-after; the dial keeps the wait after it is finished;
 * version 1 options get the default; a place that frees is served; a
 * server that stops with answers under way stops at once. A fake server
 * sends a huge retry-after and a zero one: the client caps the first and
 * still reports the second as busy. Every wait is bounded (socket
 * timeouts, the tests' timeouts, loops of bounded count).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "harness.h"
#include "net/tcp.h"
#include "net_raw.h"

#define RAW_TIMEOUT_MS 5000

/* A server of max_clients 1 whose place is held by a client through its
 * handshake (so the server surely took it), idle after. */
static cvg_raw *
full_server(server_box *b, cvg_server_options *so)
{
    so->max_clients = 1;
    so->handshake_timeout_ms = 30000;
    so->idle_timeout_ms = 30000;
    start_on(b, NULL, so);
    cvg_raw *held = cvg_raw_connect(cvg_server_port(b->srv), RAW_TIMEOUT_MS);
    cr_assert_not_null(held);
    OK(cvg_raw_handshake(held));
    return held;
}

static int
plain_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct timeval tv = {.tv_sec = RAW_TIMEOUT_MS / 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Everything the peer sends until its end (at most @p cap bytes, each
 * read bounded by SO_RCVTIMEO): the count, or -1 if it did not end. */
static ssize_t
read_to_end(int fd, uint8_t *buf, size_t cap)
{
    size_t have = 0;
    for (int i = 0; i < 100; i++) {
        ssize_t n = read(fd, buf + have, cap - have);
        if (n == 0) {
            return (ssize_t)have;
        }
        if (n < 0) {
            return -1;
        }
        have += (size_t)n;
        if (have == cap) {
            return -1;
        }
    }
    return -1;
}

static void
expect_busy_message(cvg_replica *c, const char *url, unsigned ms)
{
    char want[160];
    snprintf(want, sizeof want, "%s is busy: retry after %u ms", url, ms);
    cr_expect_str_eq(cvg_replica_errmsg(c), want);
}

Test(busy, the_answer_on_the_wire, .timeout = 60)
{
    cvg_server_options so;
    cvg_server_options_init(&so);
    so.busy_retry_ms = 0x01020304;
    server_box b;
    cvg_raw *held = full_server(&b, &so);
    /* Not a byte of handshake from us: the answer comes all the same,
     * then the server's end. */
    int fd = plain_connect(cvg_server_port(b.srv));
    uint8_t buf[64];
    ssize_t n = read_to_end(fd, buf, sizeof buf);
    static const uint8_t want[] = {0, 8, 'B', 'U', 'S', 'Y', 1, 2, 3, 4};
    cr_assert_eq(n, (ssize_t)sizeof want, "read %zd bytes", n);
    cr_expect_eq(memcmp(buf, want, sizeof want), 0);
    close(fd);
    /* With a first handshake message sent, the same answer: the server
     * drains it, so its close does not reset the connection. */
    cvg_raw *c = cvg_raw_connect(cvg_server_port(b.srv), RAW_TIMEOUT_MS);
    cr_assert_not_null(c);
    cr_expect_eq(cvg_raw_handshake(c), CVG_EAGAIN);
    cvg_raw_free(c);
    cvg_raw_free(held);
    stop(&b);
    cvg_replica_close(b.r);
}

Test(busy, a_sync_is_told_at_once_and_served_once_a_place_frees, .timeout = 60)
{
    cvg_server_options so;
    cvg_server_options_init(&so);
    so.busy_retry_ms = 4321;
    server_box b;
    cvg_raw *held = full_server(&b, &so);
    cvg_replica *c = open_dir("client");
    add(c, "c", 5);
    char url[96];
    url_of(&b, url, sizeof url);
    cvg_net_options o;
    cvg_net_options_init(&o);
    o.timeout_ms = 8000;
    double t0 = now_s();
    int rc = cvg_net_sync(c, url, &o, NULL);
    double took = now_s() - t0;
    cr_assert_eq(rc, CVG_EAGAIN, "%s (%s)", cvg_errname(rc),
                 cvg_replica_errmsg(c));
    cr_expect_lt(took, 2.0, "told after %.2f s", took);
    expect_busy_message(c, url, 4321);

    /* The dial itself keeps the wait after it is finished. */
    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    cvg__dial d;
    memset(&d, 0, sizeof d);
    OK(cvg__dial_start(&d, &loop, c, url, &o));
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_expect_eq(cvg__dial_finish(&d, NULL), CVG_EAGAIN);
    cr_expect_eq(d.retry_after_ms, 4321);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);

    /* Free the place: the server sees the close, then serves us. */
    cvg_raw_free(held);
    for (int i = 0; i < 100 && rc != CVG_OK; i++) {
        usleep(20 * 1000);
        rc = cvg_net_sync(c, url, &o, NULL);
        cr_assert(rc == CVG_OK || rc == CVG_EAGAIN, "%s (%s)", cvg_errname(rc),
                  cvg_replica_errmsg(c));
    }
    cr_assert_eq(rc, CVG_OK, "%s", cvg_errname(rc));
    stop(&b);
    cr_expect_eq(get(b.r, "c"), 5, "the data arrived");
    cvg_replica_close(c);
    cvg_replica_close(b.r);
}

Test(busy, version_1_options_get_the_default_wait, .timeout = 60)
{
    cvg_server_options so;
    cvg_server_options_init(&so);
    so.version = 1;
    /* Not a field of version 1: what follows the version 1 part is not
     * read. */
    so.busy_retry_ms = 777;
    server_box b;
    cvg_raw *held = full_server(&b, &so);
    cvg_replica *c = open_dir("client");
    char url[96];
    url_of(&b, url, sizeof url);
    int rc = cvg_net_sync(c, url, NULL, NULL);
    cr_assert_eq(rc, CVG_EAGAIN, "%s", cvg_errname(rc));
    expect_busy_message(c, url, 5000);
    cvg_raw_free(held);
    stop(&b);
    cvg_replica_close(c);
    cvg_replica_close(b.r);

    cvg_replica *r = open_dir("r");
    cvg_server *s = NULL;
    so.version = 3;
    cr_expect_eq(cvg_server_open(r, "127.0.0.1:0", &so, &s), CVG_EINVAL);
    so.version = 0;
    cr_expect_eq(cvg_server_open(r, "127.0.0.1:0", &so, &s), CVG_EINVAL);
    cvg_replica_close(r);
}

Test(busy, a_server_stops_at_once_with_answers_under_way, .timeout = 60)
{
    cvg_server_options so;
    cvg_server_options_init(&so);
    server_box b;
    cvg_raw *held = full_server(&b, &so);
    /* Clients that neither read nor close: each answer waits for its
     * client's end, but never past the stop. */
    enum { N = 8 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = plain_connect(cvg_server_port(b.srv));
    }
    usleep(50 * 1000); /* the server accepts and answers them */
    double t0 = now_s();
    cvg_raw_free(held);
    stop(&b);
    cr_expect_lt(now_s() - t0, 0.5, "stopped after %.2f s", now_s() - t0);
    for (int i = 0; i < N; i++) {
        close(fds[i]);
    }
    cvg_replica_close(b.r);
}

/* ---- A fake server: any BUSY frame ------------------------------------- */

typedef struct fake {
    int lfd;
    uint16_t port;
    uint8_t frame[CVG__CHANNEL_BUSY_FRAME];
    pthread_t th;
} fake;

/* Accept one client, answer it the frame, read to its end. */
static void *
fake_thread(void *arg)
{
    fake *f = arg;
    int fd = accept(f->lfd, NULL, NULL);
    if (fd >= 0) {
        struct timeval tv = {.tv_sec = RAW_TIMEOUT_MS / 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (write(fd, f->frame, sizeof f->frame) == (ssize_t)sizeof f->frame) {
            uint8_t buf[256];
            (void)read_to_end(fd, buf, sizeof buf);
        }
        close(fd);
    }
    return NULL;
}

static void
fake_start(fake *f, uint32_t ms)
{
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(f->lfd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(f->lfd, 4), 0);
    socklen_t len = sizeof a;
    getsockname(f->lfd, (struct sockaddr *)&a, &len);
    f->port = ntohs(a.sin_port);
    cvg__channel_busy_frame(f->frame, ms);
    cr_assert_eq(pthread_create(&f->th, NULL, fake_thread, f), 0);
}

static void
fake_end(fake *f)
{
    pthread_join(f->th, NULL);
    close(f->lfd);
}

static void
sync_with_fake(uint32_t sent, uint32_t honoured)
{
    fake f;
    fake_start(&f, sent);
    cvg_replica *c = open_dir("client");
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%u", (unsigned)f.port);
    int rc = cvg_net_sync(c, url, NULL, NULL);
    cr_assert_eq(rc, CVG_EAGAIN, "%s (%s)", cvg_errname(rc),
                 cvg_replica_errmsg(c));
    expect_busy_message(c, url, honoured);
    fake_end(&f);
    cvg_replica_close(c);
}

Test(busy, a_huge_wait_is_capped, .timeout = 60)
{
    sync_with_fake(UINT32_MAX, CVG__CHANNEL_BUSY_RETRY_MAX);
    sync_with_fake(CVG__CHANNEL_BUSY_RETRY_MAX + 1,
                   CVG__CHANNEL_BUSY_RETRY_MAX);
    sync_with_fake(CVG__CHANNEL_BUSY_RETRY_MAX, CVG__CHANNEL_BUSY_RETRY_MAX);
}

Test(busy, a_zero_wait_still_says_busy, .timeout = 60)
{
    sync_with_fake(0, 1);
}
