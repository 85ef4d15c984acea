/*
 * Network workloads: a cvg_server on a thread of this process, on
 * 127.0.0.1, and clients over loopback TCP with the encrypted channel.
 *
 *   net_sync_1m      a fresh replica pulls n counter increments from the
 *                    server with cvg_net_sync, against cvg_sync_local of
 *                    the same replicas in the same run; the bytes on the
 *                    wire are counted by a relay in a second, untimed sync
 *   net_handshakes   n syncs of empty replicas (connect, Noise XX, HELLO
 *                    and PROVE, an empty pull each way, the closes): one
 *                    client, then two client threads
 *   net_idle_1k      n clients that complete the handshake and the proofs
 *                    and stay idle: the server's resident set grows by
 *                    idle_bytes_per_conn each. The clients run in a child
 *                    process (raw clients of tests/support/net_raw.c, the
 *                    one part of the bench below the public API), so only
 *                    the server's memory is in this process.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "converge/net.h"

#include "bench.h"
#include "net_raw.h"

/* ---- A server on a thread ------------------------------------------------ */

typedef struct server {
    cvg_server *srv;
    pthread_t th;
    int rc;
    char url[64];
} server;

static void *
serve(void *arg)
{
    server *s = arg;
    s->rc = cvg_server_run(s->srv);
    return NULL;
}

static void
server_start(const bench_ctx *ctx, server *s, cvg_replica *r,
             const cvg_server_options *o)
{
    bench_check(ctx, cvg_server_open(r, "127.0.0.1:0", o, &s->srv), r,
                "cvg_server_open");
    snprintf(s->url, sizeof s->url, "tcp://127.0.0.1:%u",
             (unsigned)cvg_server_port(s->srv));
    if (pthread_create(&s->th, NULL, serve, s) != 0) {
        bench_die(ctx, "pthread_create failed");
    }
}

static void
server_stop(const bench_ctx *ctx, server *s)
{
    cvg_server_stop(s->srv);
    pthread_join(s->th, NULL);
    cvg_server_close(s->srv);
    if (s->rc != CVG_OK) {
        bench_die(ctx, "cvg_server_run: %s", cvg_errname(s->rc));
    }
}

/* ---- A relay that counts the bytes --------------------------------------- */

/* One connection through 127.0.0.1:port to the server's port, each way
 * counted, ended by each side's EOF; every wait bounded by 10 s. */
typedef struct relay {
    int lfd;
    uint16_t port, target;
    uint64_t up, down; /* client to server, server to client */
    bool failed;
    pthread_t th;
} relay;

static bool
write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) {
            if (w < 0 && errno == EINTR) {
                continue;
            }
            return false;
        }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static void *
relay_run(void *arg)
{
    relay *rl = arg;
    static uint8_t buf[1 << 16];
    int a = accept(rl->lfd, NULL, NULL);
    int b = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET,
                             .sin_port = htons(rl->target),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (a < 0 || b < 0 || connect(b, (struct sockaddr *)&to, sizeof to)) {
        rl->failed = true;
    }
    struct pollfd p[2] = {{.fd = a, .events = POLLIN},
                          {.fd = b, .events = POLLIN}};
    int open = 2;
    while (!rl->failed && open > 0) {
        if (poll(p, 2, 10000) <= 0) {
            rl->failed = errno != EINTR;
            continue;
        }
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || p[i].revents == 0) {
                continue;
            }
            int other = i == 0 ? b : a;
            ssize_t n = read(p[i].fd, buf, sizeof buf);
            if (n > 0) {
                *(i == 0 ? &rl->up : &rl->down) += (uint64_t)n;
                rl->failed = !write_all(other, buf, (size_t)n);
            } else {
                shutdown(other, SHUT_WR);
                p[i].fd = -1;
                open--;
            }
        }
    }
    close(a);
    close(b);
    return NULL;
}

static void
relay_start(const bench_ctx *ctx, relay *rl, uint16_t target)
{
    memset(rl, 0, sizeof *rl);
    rl->target = target;
    rl->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (rl->lfd < 0 || bind(rl->lfd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(rl->lfd, 1) != 0 ||
        getsockname(rl->lfd, (struct sockaddr *)&a, &len) != 0 ||
        pthread_create(&rl->th, NULL, relay_run, rl) != 0) {
        bench_die(ctx, "cannot start the relay: %s", strerror(errno));
    }
    rl->port = ntohs(a.sin_port);
}

/* ---- net_sync_1m --------------------------------------------------------- */

static void
expect_pulled(const bench_ctx *ctx, cvg_replica *r, const cvg_session_stats *st,
              uint64_t n, const char *what)
{
    if (st->ops_received != n || st->ops_duplicate != 0) {
        bench_die(ctx, "%s: received %llu ops (%llu duplicate), expected %llu",
                  what, (unsigned long long)st->ops_received,
                  (unsigned long long)st->ops_duplicate, (unsigned long long)n);
    }
    bench_counter_verify(ctx, r, n, 1);
}

/*
 * Setup (untimed): replica A gets n increments on one field (relaxed,
 * then reopened durable, as in sync_full_1m). Timed: cvg_sync_local of A
 * and a fresh durable B (the local_* figures); then A serves, and a fresh
 * durable B' syncs with cvg_net_sync (seconds, ops_per_s). Untimed: a
 * third fresh replica syncs through the counting relay (tcp_bytes).
 */
void
wl_net_sync(const bench_ctx *ctx, bench_run *out)
{
    uint64_t n = ctx->n;
    char *pa = bench_subdir(ctx, 0), *pb = bench_subdir(ctx, 1);
    char *pn = bench_subdir(ctx, 2), *pr = bench_subdir(ctx, 3);
    cvg_replica *a = bench_open(ctx, pa, CVG_RELAXED);
    bench_counter_fill(ctx, a, n, 1000, 1, NULL);
    bench_check(ctx, cvg_replica_flush(a), a, "cvg_replica_flush");
    cvg_replica_close(a);
    a = bench_open(ctx, pa, CVG_DURABLE);

    cvg_replica *b = bench_open(ctx, pb, CVG_DURABLE);
    cvg_session_stats lst;
    double t0 = bench_now();
    bench_check(ctx, cvg_sync_local(b, a, &lst), b, "cvg_sync_local");
    double local = bench_now() - t0;
    expect_pulled(ctx, b, &lst, n, "cvg_sync_local");
    cvg_replica_close(b);

    server s;
    server_start(ctx, &s, a, NULL);
    cvg_replica *bn = bench_open(ctx, pn, CVG_DURABLE);
    cvg_session_stats st;
    double c0 = bench_cpu_now();
    t0 = bench_now();
    bench_check(ctx, cvg_net_sync(bn, s.url, NULL, &st), bn, "cvg_net_sync");
    out->seconds = bench_now() - t0;
    out->cpu_seconds = bench_cpu_now() - c0;
    out->ops = n;
    expect_pulled(ctx, bn, &st, n, "cvg_net_sync");
    bench_measure(ctx, bn, pn, out);
    bench_expect_log(ctx, out);
    cvg_replica_close(bn);

    relay rl;
    relay_start(ctx, &rl, (uint16_t)atoi(strrchr(s.url, ':') + 1));
    char rurl[64];
    snprintf(rurl, sizeof rurl, "tcp://127.0.0.1:%u", (unsigned)rl.port);
    cvg_replica *br = bench_open(ctx, pr, CVG_DURABLE);
    cvg_session_stats rst;
    bench_check(ctx, cvg_net_sync(br, rurl, NULL, &rst), br,
                "cvg_net_sync (relay)");
    pthread_join(rl.th, NULL);
    close(rl.lfd);
    if (rl.failed) {
        bench_die(ctx, "the relay failed");
    }
    expect_pulled(ctx, br, &rst, n, "cvg_net_sync (relay)");
    cvg_replica_close(br);
    server_stop(ctx, &s);
    cvg_replica_close(a);

    uint64_t session = st.bytes_sent + st.bytes_received;
    uint64_t tcp = rl.up + rl.down;
    bench_extra_add(out, "local_ops_per_s", (double)n / local, false);
    bench_extra_add(out, "local_seconds", local, false);
    bench_extra_add(out, "ratio_vs_local", local / out->seconds, false);
    bench_extra_add(out, "session_bytes", (double)session, true);
    bench_extra_add(out, "local_session_bytes",
                    (double)(lst.bytes_sent + lst.bytes_received), true);
    bench_extra_add(out, "tcp_bytes", (double)tcp, true);
    bench_extra_add(out, "tcp_bytes_up", (double)rl.up, true);
    bench_extra_add(out, "tcp_bytes_down", (double)rl.down, true);
    bench_extra_add(out, "tcp_bytes_per_op", (double)tcp / (double)n, false);
    free(pa);
    free(pb);
    free(pn);
    free(pr);
}

/* ---- net_handshakes ------------------------------------------------------ */

typedef struct syncer {
    const bench_ctx *ctx;
    cvg_replica *r;
    const char *url;
    uint64_t n;
    int rc;
} syncer;

static void *
sync_many(void *arg)
{
    syncer *y = arg;
    for (uint64_t i = 0; i < y->n && y->rc == CVG_OK; i++) {
        y->rc = cvg_net_sync(y->r, y->url, NULL, NULL);
    }
    return NULL;
}

/* n syncs from one thread, then n from two threads (n / 2 each), each
 * with an empty replica of its own, against an empty server: all the
 * cost of a sync but the ops. Relaxed replicas (nothing is committed). */
void
wl_net_handshakes(const bench_ctx *ctx, bench_run *out)
{
    char *ps = bench_subdir(ctx, 0);
    char *pc[2] = {bench_subdir(ctx, 1), bench_subdir(ctx, 2)};
    cvg_replica *sr = bench_open(ctx, ps, CVG_RELAXED);
    server s;
    server_start(ctx, &s, sr, NULL);
    syncer y[2];
    for (int i = 0; i < 2; i++) {
        y[i] = (syncer){ctx, bench_open(ctx, pc[i], CVG_RELAXED), s.url,
                        ctx->n / 2, CVG_OK};
    }
    /* One, warming up: the first sync stores what each side learns. */
    bench_check(ctx, cvg_net_sync(y[0].r, s.url, NULL, NULL), y[0].r,
                "cvg_net_sync");
    bench_check(ctx, cvg_net_sync(y[1].r, s.url, NULL, NULL), y[1].r,
                "cvg_net_sync");

    double c0 = bench_cpu_now();
    double t0 = bench_now();
    y[0].n = ctx->n;
    sync_many(&y[0]);
    out->seconds = bench_now() - t0;
    out->cpu_seconds = bench_cpu_now() - c0;
    bench_check(ctx, y[0].rc, y[0].r, "cvg_net_sync (sequential)");

    y[0].n = ctx->n / 2;
    pthread_t th[2];
    c0 = bench_cpu_now();
    t0 = bench_now();
    for (int i = 0; i < 2; i++) {
        if (pthread_create(&th[i], NULL, sync_many, &y[i]) != 0) {
            bench_die(ctx, "pthread_create failed");
        }
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
    }
    double two = bench_now() - t0;
    double two_cpu = bench_cpu_now() - c0;
    for (int i = 0; i < 2; i++) {
        bench_check(ctx, y[i].rc, y[i].r, "cvg_net_sync (two threads)");
    }
    server_stop(ctx, &s);
    out->ops = ctx->n;
    bench_measure(ctx, sr, ps, out);
    for (int i = 0; i < 2; i++) {
        cvg_replica_close(y[i].r);
        free(pc[i]);
    }
    cvg_replica_close(sr);
    free(ps);
    uint64_t n2 = 2 * (ctx->n / 2);
    bench_extra_add(out, "handshake_ms", out->seconds * 1e3 / (double)ctx->n,
                    false);
    bench_extra_add(out, "two_threads_per_s", (double)n2 / two, false);
    bench_extra_add(out, "two_threads_cpu_seconds", two_cpu, false);
}

/* ---- net_idle_1k --------------------------------------------------------- */

/* The child: one sync to warm the server up ('w'), then n raw clients
 * that prove themselves and stay ('r', then the seconds they took), until
 * the parent writes; then they all close. Never returns. */
static void
idle_child(const char *dir, uint16_t port, uint64_t n, int up, int down)
{
    signal(SIGPIPE, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    cvg_replica_options o;
    bench_options(&o, CVG_RELAXED);
    cvg_replica *r = NULL;
    char url[64], c = 'e';
    snprintf(url, sizeof url, "tcp://127.0.0.1:%u", (unsigned)port);
    int *fds = calloc(n, sizeof *fds);
    if (fds == NULL || cvg_replica_open(dir, &o, &r) != CVG_OK ||
        cvg_net_sync(r, url, NULL, NULL) != CVG_OK) {
        (void)!write(up, &c, 1);
        _exit(1);
    }
    c = 'w';
    (void)!write(up, &c, 1);
    double t0 = bench_now();
    for (uint64_t i = 0; i < n; i++) {
        cvg_raw *rc = cvg_raw_connect(port, 10000);
        if (rc == NULL || cvg_raw_handshake(rc) != CVG_OK ||
            cvg_raw_prove(rc, r) != CVG_OK) {
            c = 'e';
            (void)!write(up, &c, 1);
            _exit(1);
        }
        fds[i] = cvg_raw_detach(rc);
    }
    double took = bench_now() - t0;
    c = 'r';
    (void)!write(up, &c, 1);
    (void)!write(up, &took, sizeof took);
    (void)!read(down, &c, 1);
    for (uint64_t i = 0; i < n; i++) {
        close(fds[i]);
    }
    cvg_replica_close(r);
    _exit(0);
}

static char
idle_wait(const bench_ctx *ctx, int fd, char want)
{
    char c = 0;
    if (read(fd, &c, 1) != 1 || c != want) {
        bench_die(ctx, "the client process failed ('%c')", c);
    }
    return c;
}

/*
 * The child is forked before anything of this run is open. The server
 * takes n + 16 clients, with idle and handshake timeouts long enough for
 * the run. Its resident set (/proc/self/statm) is read once the child's
 * warm-up sync is done, after malloc_trim() has given back the pages
 * earlier workloads freed (else new connections reuse them unseen), and
 * again 200 ms after the n clients are in.
 */
void
wl_net_idle(const bench_ctx *ctx, bench_run *out)
{
    uint64_t n = ctx->n;
    bench_raise_fd_limit();
    char *ps = bench_subdir(ctx, 0), *pc = bench_subdir(ctx, 1);
    int up[2], down[2], port_pipe[2];
    if (pipe(up) != 0 || pipe(down) != 0 || pipe(port_pipe) != 0) {
        bench_die(ctx, "pipe: %s", strerror(errno));
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        bench_die(ctx, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        uint16_t port = 0;
        if (read(port_pipe[0], &port, sizeof port) != sizeof port) {
            _exit(1);
        }
        idle_child(pc, port, n, up[1], down[0]);
    }
    cvg_replica *sr = bench_open(ctx, ps, CVG_RELAXED);
    cvg_server_options o;
    cvg_server_options_init(&o);
    o.max_clients = (uint32_t)n + 16;
    o.idle_timeout_ms = 120000;
    o.handshake_timeout_ms = 30000;
    server s;
    server_start(ctx, &s, sr, &o);
    uint16_t port = cvg_server_port(s.srv);
    (void)!write(port_pipe[1], &port, sizeof port);
    idle_wait(ctx, up[0], 'w');
    usleep(100 * 1000);
    /* What earlier workloads freed would otherwise hide the growth. */
    malloc_trim(0);
    size_t rss0 = cvg_raw_rss_bytes();
    idle_wait(ctx, up[0], 'r');
    double took = 0;
    if (read(up[0], &took, sizeof took) != sizeof took) {
        bench_die(ctx, "the client process failed");
    }
    usleep(200 * 1000);
    size_t rss1 = cvg_raw_rss_bytes();
    (void)!write(down[1], "x", 1);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        bench_die(ctx, "the client process failed (status %d)", status);
    }
    usleep(200 * 1000);
    size_t rss2 = cvg_raw_rss_bytes();
    server_stop(ctx, &s);
    close(up[0]);
    close(up[1]);
    close(down[0]);
    close(down[1]);
    close(port_pipe[0]);
    close(port_pipe[1]);

    out->seconds = took;
    out->ops = n;
    bench_measure(ctx, sr, ps, out);
    cvg_replica_close(sr);
    free(ps);
    free(pc);
    double per = rss1 > rss0 ? (double)(rss1 - rss0) / (double)n : 0;
    bench_extra_add(out, "idle_bytes_per_conn", per, true);
    bench_extra_add(out, "idle_kib_per_conn", per / 1024.0, false);
    bench_extra_add(out, "rss_before_kb", (double)rss0 / 1024.0, true);
    bench_extra_add(out, "rss_idle_kb", (double)rss1 / 1024.0, true);
    bench_extra_add(out, "rss_after_close_kb", (double)rss2 / 1024.0, true);
}
