/*
 * The background syncer: rounds of cvg_net_sync() on a thread of its own,
 * built on the public API alone (converge.h, converge/net.h).
 *
 * How it works. The thread waits for the next round, runs it, and works
 * out when the next one is due:
 *
 *   wait     until the due time, a notify's debounce (only while online:
 *            a notify must not cut a backoff short), sync_now, or stop.
 *   probe    only after a failure (or at the start): a plain non-blocking
 *            TCP connect to the server, without the replica's lock, so
 *            that a server that is down or unreachable never makes the
 *            app's writes wait (CONNECTING).
 *   round    cvg_net_sync() with the lock held (SYNCING); it is bounded
 *            by the net options' timeouts.
 *   after    SYNCED: the next round an interval on. OFFLINE (CVG_EIO,
 *            CVG_EBUSY) or ERROR (anything else): a backoff that doubles
 *            from backoff_min_ms to backoff_max_ms, drawn with jitter.
 *
 * Requests from other threads (notify, sync_now, stop) are flags under a
 * mutex; a byte in a pipe wakes the thread, whether it waits between
 * rounds or in the probe's poll(), so stop is prompt except during a
 * round, which cannot be cut short from outside.
 *
 * The replica's lock is a plain mutex the app also takes around its own
 * transactions (a handle is used by one thread at a time). The status
 * callback runs without it, so it may take the lock itself.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "converge/net.h"

#define HOST_MAX 1025 /* NI_MAXHOST, which _XOPEN_SOURCE hides */

struct cvg_syncer {
    cvg_replica *r;
    cvg_syncer_options o; /* url points at url below */
    char *url;
    char host[HOST_MAX];
    char port[6];
    uint8_t server_key[CVG_PUBLIC_KEY_BYTES];
    pthread_t th;
    pthread_mutex_t lock; /* the replica's: held by rounds and by the app */
    pthread_mutex_t mu;   /* the requests below */
    bool stop;
    bool now;
    uint64_t notify_at; /* when a notified round is due; 0: none asked */
    int wake[2];        /* a byte in wake[0]: look at the requests */
    /* The thread's own. */
    bool online; /* the last round succeeded */
    uint32_t failures;
    char msg[256];
};

/* The syncer whose thread this is, so that stop() from its own status
 * callback can refuse to wait for itself. */
static _Thread_local const cvg_syncer *running;

static uint64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void
ring(cvg_syncer *s)
{
    /* Non-blocking: a full pipe already holds a wake-up. */
    ssize_t n = write(s->wake[1], "", 1);
    (void)n;
}

static void
drain(cvg_syncer *s)
{
    char buf[64];
    while (read(s->wake[0], buf, sizeof buf) > 0) {
    }
}

static bool
stop_asked(cvg_syncer *s)
{
    pthread_mutex_lock(&s->mu);
    bool stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

/* Sleep up to @p ms, or until rung. */
static void
doze(cvg_syncer *s, uint64_t ms)
{
    struct pollfd p = {s->wake[0], POLLIN, 0};
    if (poll(&p, 1, ms > INT_MAX ? INT_MAX : (int)ms) > 0) {
        drain(s);
    }
}

/* Wait until a round is due (@p next, or sooner if asked): false if the
 * syncer was stopped. */
static bool
wait_round(cvg_syncer *s, uint64_t next)
{
    for (;;) {
        pthread_mutex_lock(&s->mu);
        bool stop = s->stop;
        uint64_t t = now_ms(), due = next;
        if (s->now) {
            due = t;
        } else if (s->notify_at != 0 && s->online && s->notify_at < due) {
            due = s->notify_at;
        }
        bool go = !stop && t >= due;
        if (go) {
            /* This round carries every commit notified so far. */
            s->now = false;
            s->notify_at = 0;
        }
        pthread_mutex_unlock(&s->mu);
        if (stop || go) {
            return go;
        }
        doze(s, due - t);
    }
}

/* Connect to one address within @p deadline: 0 or an errno value. */
static int
connect_one(cvg_syncer *s, const struct addrinfo *a, uint64_t deadline,
            bool *stopped)
{
    int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) {
        return errno;
    }
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int err = 0;
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
        /* EINTR: a non-blocking connect goes on in the background. */
        err = errno == EINTR ? EINPROGRESS : errno;
    }
    while (err == EINPROGRESS) {
        uint64_t t = now_ms();
        if (t >= deadline) {
            err = ETIMEDOUT;
            break;
        }
        struct pollfd p[2] = {{fd, POLLOUT, 0}, {s->wake[0], POLLIN, 0}};
        uint64_t left = deadline - t;
        if (poll(p, 2, left > INT_MAX ? INT_MAX : (int)left) < 0) {
            if (errno != EINTR) {
                err = errno;
            }
            continue;
        }
        if ((p[1].revents & POLLIN) != 0) {
            drain(s);
            if (stop_asked(s)) {
                *stopped = true;
                break;
            }
        }
        if (p[0].revents != 0) {
            socklen_t len = sizeof err;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
                err = errno;
            }
        }
    }
    close(fd);
    return err;
}

/* Whether the server accepts a TCP connection, without the replica: its
 * addresses in turn, within one timeout. */
static int
probe(cvg_syncer *s, bool *stopped)
{
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    int e = getaddrinfo(s->host, s->port, &hints, &ai);
    if (e != 0) {
        snprintf(s->msg, sizeof s->msg, "cannot resolve %.200s: %s", s->host,
                 gai_strerror(e));
        return CVG_EIO;
    }
    uint32_t timeout = s->o.net.timeout_ms ? s->o.net.timeout_ms : 10000;
    uint64_t deadline = now_ms() + timeout;
    int err = ECONNREFUSED;
    for (struct addrinfo *a = ai; a != NULL && !*stopped; a = a->ai_next) {
        err = connect_one(s, a, deadline, stopped);
        if (err == 0) {
            break;
        }
    }
    freeaddrinfo(ai);
    if (err != 0) {
        snprintf(s->msg, sizeof s->msg, "cannot connect to %.200s: %s", s->url,
                 strerror(err));
        return CVG_EIO;
    }
    return CVG_OK;
}

static void
emit(cvg_syncer *s, cvg_syncer_state state, int rc, const cvg_session_stats *st,
     uint32_t next_ms)
{
    if (s->o.on_status == NULL) {
        return;
    }
    cvg_syncer_event e;
    memset(&e, 0, sizeof e);
    e.state = state;
    e.rc = rc;
    e.message = rc != CVG_OK ? s->msg : "";
    if (st != NULL) {
        e.ops_received = st->ops_received;
        e.ops_sent = st->ops_sent;
    }
    e.failures = s->failures;
    e.next_ms = next_ms;
    s->o.on_status(s->o.ctx, &e);
}

/* The wait after the latest of s->failures failed rounds in a row. */
static uint32_t
backoff(const cvg_syncer *s)
{
    uint64_t b = s->o.backoff_min_ms;
    for (uint32_t i = 1; i < s->failures && b < s->o.backoff_max_ms; i++) {
        b *= 2;
    }
    uint32_t cap =
        (uint32_t)(b < s->o.backoff_max_ms ? b : s->o.backoff_max_ms);
    switch (s->o.jitter) {
    case CVG_SYNCER_JITTER_HALF:
        /* In [cap/2, cap]: delays still grow until the cap. */
        return cap / 2 + randombytes_uniform(cap - cap / 2 + 1);
    case CVG_SYNCER_JITTER_FULL:
        return randombytes_uniform(cap < UINT32_MAX ? cap + 1 : cap);
    default:
        return cap;
    }
}

/* One round; returns when the next one is due. */
static uint64_t
round_once(cvg_syncer *s, bool *stopped)
{
    int rc = CVG_OK;
    cvg_session_stats st;
    memset(&st, 0, sizeof st);
    s->msg[0] = '\0';
    if (!s->online) {
        emit(s, CVG_SYNCER_CONNECTING, CVG_OK, NULL, 0);
        rc = probe(s, stopped);
        if (*stopped) {
            return 0;
        }
    }
    if (rc == CVG_OK) {
        emit(s, CVG_SYNCER_SYNCING, CVG_OK, NULL, 0);
        pthread_mutex_lock(&s->lock);
        rc = cvg_net_sync(s->r, s->url, &s->o.net, &st);
        if (rc != CVG_OK) {
            /* The message belongs to the replica, and so to the lock. */
            snprintf(s->msg, sizeof s->msg, "%s", cvg_replica_errmsg(s->r));
        }
        pthread_mutex_unlock(&s->lock);
    }
    uint32_t wait;
    if (rc == CVG_OK) {
        s->online = true;
        s->failures = 0;
        wait = s->o.interval_ms;
        emit(s, CVG_SYNCER_SYNCED, rc, &st, wait);
    } else {
        s->online = false;
        if (s->failures < UINT32_MAX) {
            s->failures++;
        }
        wait = backoff(s);
        emit(s,
             rc == CVG_EIO || rc == CVG_EBUSY ? CVG_SYNCER_OFFLINE
                                              : CVG_SYNCER_ERROR,
             rc, NULL, wait);
    }
    /* Counted from after the callback: the wait is at least next_ms. */
    return now_ms() + wait;
}

static void *
run(void *arg)
{
    cvg_syncer *s = arg;
    running = s;
    uint64_t next = 0; /* the first round at once */
    bool stopped = false;
    while (!stopped && wait_round(s, next)) {
        next = round_once(s, &stopped);
    }
    return NULL;
}

void
cvg_syncer_options_init(cvg_syncer_options *o)
{
    if (o != NULL) {
        memset(o, 0, sizeof *o);
        o->version = CVG_SYNCER_OPTIONS_VERSION;
        cvg_net_options_init(&o->net);
        o->interval_ms = 10000;
        o->debounce_ms = 200;
        o->backoff_min_ms = 500;
        o->backoff_max_ms = 30000;
        o->jitter = CVG_SYNCER_JITTER_HALF;
    }
}

/* "tcp://HOST:PORT" or "tcp://[V6]:PORT" into s->host and s->port, for
 * the probe; cvg_net_sync() reads the url itself. */
static bool
split_url(cvg_syncer *s, const char *url)
{
    if (strncmp(url, "tcp://", 6) != 0) {
        return false;
    }
    const char *h = url + 6, *colon;
    size_t hl;
    if (*h == '[') {
        const char *close = strchr(h, ']');
        if (close == NULL || close[1] != ':') {
            return false;
        }
        h++;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(h, ':');
        if (colon == NULL || memchr(h, ':', (size_t)(colon - h)) != NULL) {
            return false;
        }
        hl = (size_t)(colon - h);
    }
    const char *p = colon + 1;
    size_t pl = strlen(p);
    if (hl == 0 || hl >= sizeof s->host || pl == 0 || pl > 5 ||
        strspn(p, "0123456789") != pl || atoi(p) > 65535) {
        return false;
    }
    memcpy(s->host, h, hl);
    s->host[hl] = '\0';
    memcpy(s->port, p, pl + 1);
    return true;
}

static int
copy_options(cvg_syncer *s, const cvg_syncer_options *o)
{
    s->o = *o;
    if (s->o.net.version == 0) {
        cvg_net_options_init(&s->o.net);
    }
    if (s->o.net.version != CVG_NET_OPTIONS_VERSION ||
        (unsigned)s->o.jitter > CVG_SYNCER_JITTER_NONE) {
        return CVG_EINVAL;
    }
    if (o->net.server_key != NULL) {
        memcpy(s->server_key, o->net.server_key, sizeof s->server_key);
        s->o.net.server_key = s->server_key;
    }
    s->o.interval_ms = o->interval_ms ? o->interval_ms : 10000;
    s->o.debounce_ms = o->debounce_ms ? o->debounce_ms : 200;
    s->o.backoff_min_ms = o->backoff_min_ms ? o->backoff_min_ms : 500;
    s->o.backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : 30000;
    if (s->o.backoff_min_ms > s->o.backoff_max_ms) {
        return CVG_EINVAL;
    }
    if (!split_url(s, o->url)) {
        return CVG_EINVAL;
    }
    s->url = strdup(o->url);
    s->o.url = s->url;
    return s->url != NULL ? CVG_OK : CVG_ENOMEM;
}

static int
open_pipe(int fds[2])
{
    if (pipe(fds) != 0) {
        fds[0] = fds[1] = -1;
        return CVG_EIO;
    }
    for (int i = 0; i < 2; i++) {
        (void)fcntl(fds[i], F_SETFD, FD_CLOEXEC);
        (void)fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
    }
    return CVG_OK;
}

static void
destroy(cvg_syncer *s)
{
    for (int i = 0; i < 2; i++) {
        if (s->wake[i] >= 0) {
            close(s->wake[i]);
        }
    }
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->mu);
    free(s->url);
    free(s);
}

int
cvg_syncer_start(cvg_replica *r, const cvg_syncer_options *o, cvg_syncer **out)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (r == NULL || o == NULL || out == NULL ||
        o->version != CVG_SYNCER_OPTIONS_VERSION || o->url == NULL) {
        return CVG_EINVAL;
    }
    if (sodium_init() < 0) { /* for randombytes_uniform() */
        return CVG_EIO;
    }
    cvg_syncer *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return CVG_ENOMEM;
    }
    s->r = r;
    s->wake[0] = s->wake[1] = -1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->mu, NULL);
    int rc = copy_options(s, o);
    if (rc == CVG_OK) {
        rc = open_pipe(s->wake);
    }
    if (rc == CVG_OK) {
        /* The app's signals go to the app's threads, not to this one. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        if (pthread_create(&s->th, NULL, run, s) != 0) {
            rc = CVG_ELIMIT;
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    if (rc != CVG_OK) {
        destroy(s);
        return rc;
    }
    *out = s;
    return CVG_OK;
}

void
cvg_syncer_notify(cvg_syncer *s)
{
    if (s == NULL) {
        return;
    }
    pthread_mutex_lock(&s->mu);
    if (s->notify_at == 0) {
        /* The first notify starts the window; later ones join it, so a
         * steady stream of commits still syncs every debounce_ms. */
        s->notify_at = now_ms() + s->o.debounce_ms;
    }
    pthread_mutex_unlock(&s->mu);
    ring(s);
}

void
cvg_syncer_sync_now(cvg_syncer *s)
{
    if (s == NULL) {
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->now = true;
    pthread_mutex_unlock(&s->mu);
    ring(s);
}

void
cvg_syncer_lock(cvg_syncer *s)
{
    if (s != NULL) {
        pthread_mutex_lock(&s->lock);
    }
}

void
cvg_syncer_unlock(cvg_syncer *s)
{
    if (s != NULL) {
        pthread_mutex_unlock(&s->lock);
    }
}

void
cvg_syncer_stop(cvg_syncer *s)
{
    if (s == NULL || running == s) {
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_mutex_unlock(&s->mu);
    ring(s);
    pthread_join(s->th, NULL);
    destroy(s);
}
