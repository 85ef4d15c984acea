/*
 * The fault-injecting proxy (proxy.h). One thread polls every socket:
 * the wake-up pipe, a listener per lane, and both sockets of each
 * connection. A connection is two flows, client to upstream and back,
 * each a buffer of BUF_CAP bytes: a flow's source is polled for input
 * only while its buffer has room, its destination for output only while
 * the buffer holds bytes the plan lets go now, so a slow side slows the
 * other instead of growing a buffer.
 *
 * The plan acts at write time, on the count of bytes a flow has passed:
 * a cut closes both sockets (with a reset if planned) once the flow has
 * passed its offset; a stall holds the flow from its offset until its
 * time is up; a delay holds bytes that came into an empty buffer for the
 * delay, and with a chunk size each write of the flow's first
 * TRICKLE_BYTES passes at most that many bytes and holds the rest for
 * another delay (a trickle, which splits frames across reads). A source's end is passed on once its buffer is empty:
 * then both sockets close, as a peer's close ends the connection for
 * both sides of it.
 */
#define _GNU_SOURCE
#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_CAP 16384
#define CONNS_MAX 64
#define TICK_MS 20 /* the longest poll: stop is checked at least this often */
/* A trickle splits only a flow's first bytes (the handshake and the first
 * messages): a page trickled whole would take minutes, each piece keeping
 * the peer's idle clock from running out. */
#define TRICKLE_BYTES 4096

enum { C2S = 0, S2C = 1 };

typedef struct plan {
    int cut_dir; /* C2S, S2C or -1 */
    uint64_t cut_at;
    bool reset;
    int stall_dir; /* C2S, S2C or -1 */
    uint64_t stall_at;
    uint32_t stall_ms;
    uint32_t delay_ms; /* 0: none */
    uint32_t chunk;    /* most bytes a write passes; 0: all it can */
} plan;

typedef struct flow {
    uint8_t buf[BUF_CAP];
    size_t len;
    uint64_t passed;
    int64_t release_ms;  /* nothing leaves before */
    int64_t stall_until; /* 0: the stall has not begun */
    bool stall_done;
    bool eof; /* the source ended */
} flow;

typedef struct conn {
    bool used;
    bool connecting;
    int fd[2]; /* [C2S] the client's socket (the source of f[C2S]),
                  [S2C] the upstream's (the source of f[S2C]) */
    plan p;
    flow f[2];
} conn;

struct cvg_proxy {
    int lanes;
    int lfd[CVG_PROXY_LANES_MAX];
    uint16_t port[CVG_PROXY_LANES_MAX];
    uint64_t lane_conns[CVG_PROXY_LANES_MAX]; /* the loop's only */
    uint64_t seed;
    uint32_t timeout_ms;
    atomic_uint upstream;
    atomic_bool faults;
    atomic_bool stop;
    int wake[2];
    pthread_t th;
    conn *conns; /* CONNS_MAX */
    atomic_uint open;
    _Atomic uint64_t n_conns, n_refused, n_cuts, n_stalls, n_delayed, n_bytes;
};

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* splitmix64, as the tests' cvg_test_rand(). */
static uint64_t
mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t
below(uint64_t *s, uint64_t n)
{
    return n ? mix(s) % n : 0;
}

/* Where in a flow a fault strikes: often in the handshake and the first
 * messages, often in a page, sometimes deep in a large one or past the
 * end (a clean pass). */
static uint64_t
offset(uint64_t *s)
{
    switch (below(s, 4)) {
    case 0:
        return below(s, 160);
    case 1:
        return below(s, 4096);
    case 2:
        return below(s, 65536);
    default:
        return below(s, 1u << 21);
    }
}

/* The plan of the @p k-th connection of @p lane. */
static void
draw(cvg_proxy *p, int lane, uint64_t k, plan *pl)
{
    memset(pl, 0, sizeof *pl);
    pl->cut_dir = -1;
    pl->stall_dir = -1;
    if (!atomic_load(&p->faults)) {
        return;
    }
    uint64_t s = p->seed ^ ((uint64_t)(lane + 1) * 0xD1B54A32D192ED03ull) ^
                 ((k + 1) * 0xC2B2AE3D27D4EB4Full);
    (void)mix(&s);
    uint32_t t = p->timeout_ms;
    uint64_t what = below(&s, 10);
    if (what >= 3 && what <= 5) {
        pl->cut_dir = (int)below(&s, 2);
        pl->cut_at = offset(&s);
        pl->reset = below(&s, 2) == 0;
    } else if (what == 6 || what == 7) {
        pl->stall_dir = (int)below(&s, 2);
        pl->stall_at = offset(&s);
        /* Shorter than the timeout (the sync goes on) or longer (the
         * client gives up). */
        pl->stall_ms = below(&s, 2) == 0
                           ? t / 4 + (uint32_t)below(&s, t / 2 + 1)
                           : t + t / 4 + (uint32_t)below(&s, t + 1);
    } else if (what >= 8) {
        pl->delay_ms = 1 + (uint32_t)below(&s, 10);
        pl->chunk = below(&s, 2) == 0 ? 16 + (uint32_t)below(&s, 497) : 0;
        if (what == 9) {
            pl->cut_dir = (int)below(&s, 2);
            pl->cut_at = offset(&s);
            pl->reset = below(&s, 2) == 0;
        }
    }
}

static void
close_fd(int fd, bool reset)
{
    if (fd < 0) {
        return;
    }
    if (reset) {
        struct linger l = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    close(fd);
}

static void
conn_close(cvg_proxy *p, conn *c, bool reset)
{
    close_fd(c->fd[C2S], reset);
    close_fd(c->fd[S2C], reset);
    c->used = false;
    atomic_fetch_sub(&p->open, 1);
}

static void
no_delay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void
accept_one(cvg_proxy *p, int lane)
{
    int fd = accept4(p->lfd[lane], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        return;
    }
    atomic_fetch_add(&p->n_conns, 1);
    conn *c = NULL;
    for (int i = 0; i < CONNS_MAX && c == NULL; i++) {
        c = p->conns[i].used ? NULL : &p->conns[i];
    }
    uint16_t up = (uint16_t)atomic_load(&p->upstream);
    int sfd = -1;
    if (c != NULL && up != 0) {
        sfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    }
    if (sfd < 0) {
        atomic_fetch_add(&p->n_refused, 1);
        close(fd);
        return;
    }
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(up);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int e = connect(sfd, (struct sockaddr *)&a, sizeof a);
    if (e < 0 && errno != EINPROGRESS) {
        atomic_fetch_add(&p->n_refused, 1);
        close(sfd);
        close(fd);
        return;
    }
    no_delay(fd);
    no_delay(sfd);
    memset(c, 0, sizeof *c);
    c->used = true;
    c->connecting = e < 0;
    c->fd[C2S] = fd;
    c->fd[S2C] = sfd;
    draw(p, lane, p->lane_conns[lane]++, &c->p);
    if (c->p.delay_ms > 0) {
        atomic_fetch_add(&p->n_delayed, 1);
    }
    atomic_fetch_add(&p->open, 1);
}

/* When flow @p d may next write: now, or the time it waits for. Starts
 * the stall once the flow reaches its offset. */
static int64_t
ready_at(cvg_proxy *p, conn *c, int d, int64_t now)
{
    flow *f = &c->f[d];
    if (f->release_ms > now) {
        return f->release_ms;
    }
    if (c->p.stall_dir == d && !f->stall_done && f->passed >= c->p.stall_at) {
        if (f->stall_until == 0) {
            f->stall_until = now + c->p.stall_ms;
            atomic_fetch_add(&p->n_stalls, 1);
        }
        if (now < f->stall_until) {
            return f->stall_until;
        }
        f->stall_done = true;
    }
    return now;
}

/* Pass what flow @p d may pass now. False if the connection closed. */
static bool
write_flow(cvg_proxy *p, conn *c, int d, int64_t now)
{
    flow *f = &c->f[d];
    const plan *pl = &c->p;
    if (pl->cut_dir == d && f->passed >= pl->cut_at) {
        atomic_fetch_add(&p->n_cuts, 1);
        conn_close(p, c, pl->reset);
        return false;
    }
    size_t n = f->len;
    if (pl->cut_dir == d && pl->cut_at - f->passed < n) {
        n = (size_t)(pl->cut_at - f->passed);
    }
    if (pl->stall_dir == d && !f->stall_done && f->passed < pl->stall_at &&
        pl->stall_at - f->passed < n) {
        n = (size_t)(pl->stall_at - f->passed);
    }
    bool trickle = pl->chunk > 0 && f->passed < TRICKLE_BYTES;
    if (trickle && n > pl->chunk) {
        n = pl->chunk;
    }
    ssize_t w = send(c->fd[1 - d], f->buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            return true;
        }
        conn_close(p, c, false);
        return false;
    }
    memmove(f->buf, f->buf + w, f->len - (size_t)w);
    f->len -= (size_t)w;
    f->passed += (uint64_t)w;
    atomic_fetch_add(&p->n_bytes, (uint64_t)w);
    if (pl->delay_ms > 0 && trickle) {
        f->release_ms = now + pl->delay_ms; /* the next piece waits */
    }
    if (pl->cut_dir == d && f->passed >= pl->cut_at) {
        atomic_fetch_add(&p->n_cuts, 1);
        conn_close(p, c, pl->reset);
        return false;
    }
    return true;
}

/* Take what the source of flow @p d has. False if the connection closed. */
static bool
read_flow(cvg_proxy *p, conn *c, int d, int64_t now)
{
    flow *f = &c->f[d];
    ssize_t r = recv(c->fd[d], f->buf + f->len, BUF_CAP - f->len, MSG_DONTWAIT);
    if (r > 0) {
        if (f->len == 0 && c->p.delay_ms > 0) {
            f->release_ms = now + c->p.delay_ms;
        }
        f->len += (size_t)r;
    } else if (r == 0) {
        f->eof = true;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        conn_close(p, c, false);
        return false;
    }
    return true;
}

static bool
connected(cvg_proxy *p, conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd[S2C], SOL_SOCKET, SO_ERROR, &err, &len) < 0 ||
        err != 0) {
        atomic_fetch_add(&p->n_refused, 1);
        conn_close(p, c, false);
        return false;
    }
    c->connecting = false;
    return true;
}

/* Handle the poll results of connection @p c: @p rev[side] for its two
 * sockets. */
static void
serve_conn(cvg_proxy *p, conn *c, const short rev[2])
{
    int64_t now = now_ms();
    if (c->connecting) {
        if (rev[S2C] == 0 || !connected(p, c)) {
            if (c->used && (rev[C2S] & (POLLIN | POLLHUP | POLLERR))) {
                (void)read_flow(p, c, C2S, now);
            }
            return;
        }
    }
    for (int side = 0; side < 2 && c->used; side++) {
        if ((rev[side] & (POLLIN | POLLHUP | POLLERR)) && !c->f[side].eof &&
            c->f[side].len < BUF_CAP && !read_flow(p, c, side, now)) {
            return;
        }
    }
    /* Write whatever may go, whether or not the poll asked: a read may
     * just have filled a buffer whose destination is writable. */
    for (int d = 0; d < 2 && c->used; d++) {
        if (c->f[d].len > 0 && ready_at(p, c, d, now) <= now &&
            !write_flow(p, c, d, now)) {
            return;
        }
    }
    for (int d = 0; d < 2 && c->used; d++) {
        if (c->f[d].eof && c->f[d].len == 0) {
            conn_close(p, c, false);
        }
    }
}

static void *
run(void *arg)
{
    cvg_proxy *p = arg;
    enum { NFDS = 1 + CVG_PROXY_LANES_MAX + 2 * CONNS_MAX };
    struct pollfd pf[NFDS];
    int who[NFDS]; /* -1 the pipe, -2 - lane a listener, 2 * i + side */
    while (!atomic_load(&p->stop)) {
        int n = 0;
        pf[n] = (struct pollfd){p->wake[0], POLLIN, 0};
        who[n++] = -1;
        for (int l = 0; l < p->lanes; l++) {
            pf[n] = (struct pollfd){p->lfd[l], POLLIN, 0};
            who[n++] = -2 - l;
        }
        int64_t now = now_ms();
        int64_t wait = TICK_MS;
        for (int i = 0; i < CONNS_MAX; i++) {
            conn *c = &p->conns[i];
            if (!c->used) {
                continue;
            }
            for (int side = 0; side < 2; side++) {
                short ev = 0;
                if (side == S2C && c->connecting) {
                    ev = POLLOUT;
                } else {
                    if (!c->f[side].eof && c->f[side].len < BUF_CAP) {
                        ev |= POLLIN;
                    }
                    int d = 1 - side; /* the flow this socket receives */
                    if (c->f[d].len > 0 && !c->connecting) {
                        int64_t at = ready_at(p, c, d, now);
                        if (at <= now) {
                            ev |= POLLOUT;
                        } else if (at - now < wait) {
                            wait = at - now;
                        }
                    }
                }
                pf[n] = (struct pollfd){c->fd[side], ev, 0};
                who[n++] = 2 * i + side;
            }
        }
        int r = poll(pf, (nfds_t)n, (int)(wait > 0 ? wait : 1));
        if (r < 0 && errno != EINTR) {
            break;
        }
        short rev[CONNS_MAX][2];
        memset(rev, 0, sizeof rev);
        for (int k = 0; k < n; k++) {
            if (who[k] == -1) {
                if (pf[k].revents) {
                    char b[64];
                    (void)!read(p->wake[0], b, sizeof b);
                }
            } else if (who[k] <= -2) {
                if (pf[k].revents & POLLIN) {
                    accept_one(p, -2 - who[k]);
                }
            } else {
                rev[who[k] / 2][who[k] % 2] = pf[k].revents;
            }
        }
        /* Every open connection, so that timed holds end on time. A
         * connection accepted just now has no results yet: harmless. */
        for (int i = 0; i < CONNS_MAX; i++) {
            if (p->conns[i].used) {
                serve_conn(p, &p->conns[i], rev[i]);
            }
        }
    }
    for (int i = 0; i < CONNS_MAX; i++) {
        if (p->conns[i].used) {
            conn_close(p, &p->conns[i], false);
        }
    }
    return NULL;
}

static int
listen_free(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 64) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

cvg_proxy *
cvg_proxy_start(int lanes, uint16_t upstream, uint64_t seed,
                uint32_t timeout_ms)
{
    if (lanes <= 0 || lanes > CVG_PROXY_LANES_MAX) {
        return NULL;
    }
    cvg_proxy *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return NULL;
    }
    p->conns = calloc(CONNS_MAX, sizeof *p->conns);
    p->lanes = 0;
    p->seed = seed;
    p->timeout_ms = timeout_ms;
    p->wake[0] = p->wake[1] = -1;
    atomic_init(&p->upstream, upstream);
    atomic_init(&p->faults, false);
    atomic_init(&p->stop, false);
    atomic_init(&p->open, 0);
    bool ok = p->conns != NULL && pipe2(p->wake, O_NONBLOCK | O_CLOEXEC) == 0;
    for (int l = 0; ok && l < lanes; l++) {
        p->lfd[l] = listen_free(&p->port[l]);
        ok = p->lfd[l] >= 0;
        p->lanes += ok;
    }
    if (ok && pthread_create(&p->th, NULL, run, p) == 0) {
        return p;
    }
    for (int l = 0; l < p->lanes; l++) {
        close(p->lfd[l]);
    }
    if (p->wake[0] >= 0) {
        close(p->wake[0]);
        close(p->wake[1]);
    }
    free(p->conns);
    free(p);
    return NULL;
}

uint16_t
cvg_proxy_port(const cvg_proxy *p, int lane)
{
    return lane >= 0 && lane < p->lanes ? p->port[lane] : 0;
}

void
cvg_proxy_upstream(cvg_proxy *p, uint16_t port)
{
    atomic_store(&p->upstream, port);
}

void
cvg_proxy_faults(cvg_proxy *p, bool on)
{
    atomic_store(&p->faults, on);
}

uint64_t
cvg_proxy_bytes(const cvg_proxy *p)
{
    return atomic_load(&p->n_bytes);
}

unsigned
cvg_proxy_open_conns(const cvg_proxy *p)
{
    return atomic_load(&p->open);
}

void
cvg_proxy_stats_get(const cvg_proxy *p, cvg_proxy_stats *out)
{
    out->conns = atomic_load(&p->n_conns);
    out->refused = atomic_load(&p->n_refused);
    out->cuts = atomic_load(&p->n_cuts);
    out->stalls = atomic_load(&p->n_stalls);
    out->delayed = atomic_load(&p->n_delayed);
    out->bytes = atomic_load(&p->n_bytes);
}

void
cvg_proxy_stop(cvg_proxy *p)
{
    if (p == NULL) {
        return;
    }
    atomic_store(&p->stop, true);
    (void)!write(p->wake[1], "x", 1);
    pthread_join(p->th, NULL);
    for (int l = 0; l < p->lanes; l++) {
        close(p->lfd[l]);
    }
    close(p->wake[0]);
    close(p->wake[1]);
    free(p->conns);
    free(p);
}
