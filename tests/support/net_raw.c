/*
 * The raw client (net_raw.h): blocking socket calls, each bounded by the
 * socket's timeouts, around the sans-IO channel. Bytes read are kept in
 * one buffer and fed to the channel until it gives a whole message; what
 * the channel queues (handshake messages, sealed frames) is written at
 * once, or handed to the caller by cvg_raw_seal().
 */
#define _GNU_SOURCE
#include "net_raw.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/channel.h"

#define RAW_HELD_MAX 8

struct cvg_raw {
    int fd;
    bool ch_live;
    cvg__channel ch;
    cvg_session *s;
    uint8_t *held[RAW_HELD_MAX];
    size_t held_len[RAW_HELD_MAX];
    size_t nheld, held_next;
    size_t rpos, rlen;
    uint8_t rbuf[1 << 16];
};

cvg_raw *
cvg_raw_connect(uint16_t port, int timeout_ms)
{
    cvg_raw *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return NULL;
    }
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0) {
        free(c);
        return NULL;
    }
    struct timeval tv = {.tv_sec = timeout_ms / 1000,
                         .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(c->fd);
        free(c);
        return NULL;
    }
    return c;
}

int
cvg_raw_fd(const cvg_raw *c)
{
    return c->fd;
}

int
cvg_raw_write(cvg_raw *c, const void *p, size_t len)
{
    const uint8_t *b = p;
    while (len > 0) {
        ssize_t n = send(c->fd, b, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        b += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Write what the channel has queued. */
static int
flush(cvg_raw *c)
{
    cvg_bytes out;
    int rc;
    while ((rc = cvg__channel_output(&c->ch, &out)) == CVG_OK) {
        if (cvg_raw_write(c, out.data, out.len) != 0) {
            return CVG_EIO;
        }
    }
    return rc == CVG_DONE ? CVG_OK : rc;
}

static int
read_more(cvg_raw *c)
{
    ssize_t n;
    do {
        n = read(c->fd, c->rbuf, sizeof c->rbuf);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        return CVG_EIO;
    }
    c->rpos = 0;
    c->rlen = (size_t)n;
    return CVG_OK;
}

/* Feed what is buffered: CVG_OK with a message, CVG_DONE when all of it
 * went in without completing one, or the channel's error. */
static int
feed_buffered(cvg_raw *c, cvg_bytes *msg)
{
    size_t used = 0;
    int rc = cvg__channel_feed(&c->ch, c->rbuf + c->rpos, c->rlen - c->rpos,
                               &used, msg);
    if (rc == CVG_OK) {
        c->rpos += used;
    } else if (rc == CVG_DONE) {
        c->rpos = c->rlen;
    }
    return rc;
}

int
cvg_raw_handshake(cvg_raw *c)
{
    uint8_t pk[crypto_box_PUBLICKEYBYTES], sk[crypto_box_SECRETKEYBYTES];
    if (sodium_init() < 0 || crypto_box_keypair(pk, sk) != 0) {
        return CVG_EIO;
    }
    cvg__channel_options o;
    memset(&o, 0, sizeof o);
    o.initiator = true;
    o.static_key = sk;
    int rc = cvg__channel_init(&c->ch, &o);
    sodium_memzero(sk, sizeof sk);
    if (rc != CVG_OK) {
        return rc;
    }
    c->ch_live = true;
    rc = flush(c);
    while (rc == CVG_OK &&
           cvg__channel_state_of(&c->ch) == CVG__CHANNEL_WAITING) {
        rc = read_more(c);
        if (rc == CVG_OK) {
            cvg_bytes msg;
            rc = feed_buffered(c, &msg);
            /* No message can come before the handshake's end. */
            rc = rc == CVG_DONE ? flush(c) : (rc == CVG_OK ? CVG_EPROTO : rc);
        }
    }
    if (rc == CVG_OK && cvg__channel_state_of(&c->ch) != CVG__CHANNEL_OPEN) {
        rc = cvg__channel_error(&c->ch);
    }
    return rc;
}

int
cvg_raw_seal(cvg_raw *c, const void *msg, size_t len, uint8_t **out,
             size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    int rc = cvg__channel_send(&c->ch, msg, len);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg_bytes b;
    rc = cvg__channel_output(&c->ch, &b);
    if (rc != CVG_OK) {
        return rc;
    }
    *out = malloc(b.len);
    if (*out == NULL) {
        return CVG_ENOMEM;
    }
    memcpy(*out, b.data, b.len);
    *out_len = b.len;
    return CVG_OK;
}

int
cvg_raw_fragment(cvg_raw *c, const void *frag, size_t len, bool last,
                 uint8_t *out, size_t *out_len)
{
    if (len > CVG__CHANNEL_FRAGMENT_MAX ||
        cvg__channel_state_of(&c->ch) != CVG__CHANNEL_OPEN) {
        return CVG_EINVAL;
    }
    size_t body = len + 1 + CVG__NOISE_TAG_BYTES, clen;
    out[0] = (uint8_t)(body >> 8);
    out[1] = (uint8_t)body;
    if (len > 0) {
        memcpy(out + 2, frag, len);
    }
    out[2 + len] = last ? 1 : 0; /* the channel's flags: end, more */
    int rc =
        cvg__noise_encrypt(&c->ch.t.tx, out + 2, len + 1, out + 2, body, &clen);
    *out_len = 2 + body;
    return rc;
}

int
cvg_raw_send(cvg_raw *c, const void *msg, size_t len)
{
    int rc = cvg__channel_send(&c->ch, msg, len);
    return rc == CVG_OK ? flush(c) : rc;
}

int
cvg_raw_recv(cvg_raw *c, cvg_bytes *msg)
{
    for (;;) {
        if (c->rpos < c->rlen) {
            int rc = feed_buffered(c, msg);
            if (rc != CVG_DONE) {
                return rc;
            }
        }
        int rc = read_more(c);
        if (rc != CVG_OK) {
            return rc;
        }
    }
}

/* Take the session's next message: CVG_OK (a view), CVG_DONE, an error. */
static int
session_next(cvg_raw *c, cvg_bytes *m)
{
    return cvg_session_output(c->s, m);
}

int
cvg_raw_prove(cvg_raw *c, cvg_replica *r)
{
    uint8_t hash[64];
    int rc = cvg__channel_handshake_hash(&c->ch, hash);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg_session_options so;
    cvg_session_options_init(&so);
    so.channel_binding = (cvg_bytes){hash, sizeof hash};
    rc = cvg_session_open(r, &so, &c->s);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg_bytes m;
    if ((rc = session_next(c, &m)) != CVG_OK ||
        (rc = cvg_raw_send(c, m.data, m.len)) != CVG_OK) {
        return rc; /* our HELLO */
    }
    /* The server's HELLO; then our PROVE, holding the rest back. */
    if ((rc = cvg_raw_recv(c, &m)) != CVG_OK ||
        (rc = cvg_session_input(c->s, m.data, m.len)) != CVG_OK ||
        (rc = session_next(c, &m)) != CVG_OK ||
        (rc = cvg_raw_send(c, m.data, m.len)) != CVG_OK) {
        return rc;
    }
    while (session_next(c, &m) == CVG_OK && c->nheld < RAW_HELD_MAX) {
        c->held[c->nheld] = malloc(m.len ? m.len : 1);
        if (c->held[c->nheld] == NULL) {
            return CVG_ENOMEM;
        }
        memcpy(c->held[c->nheld], m.data, m.len);
        c->held_len[c->nheld++] = m.len;
    }
    /* The server's PROVE. */
    if ((rc = cvg_raw_recv(c, &m)) != CVG_OK) {
        return rc;
    }
    return cvg_session_input(c->s, m.data, m.len);
}

int
cvg_raw_held(cvg_raw *c, cvg_bytes *msg)
{
    if (c->held_next >= c->nheld) {
        return CVG_DONE;
    }
    msg->data = c->held[c->held_next];
    msg->len = c->held_len[c->held_next];
    c->held_next++;
    return CVG_OK;
}

cvg_session *
cvg_raw_session(cvg_raw *c)
{
    return c->s;
}

int
cvg_raw_close(cvg_raw *c)
{
    int rc = cvg__channel_close(&c->ch);
    return rc == CVG_OK ? flush(c) : rc;
}

static double
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

bool
cvg_raw_wait_closed(cvg_raw *c, int ms)
{
    double end = now_ms() + ms;
    for (;;) {
        double left = end - now_ms();
        if (left <= 0) {
            return false;
        }
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int n = poll(&p, 1, (int)left + 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            continue; /* the clock decides */
        }
        ssize_t got = read(c->fd, c->rbuf, sizeof c->rbuf);
        if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) {
            return true;
        }
    }
}

static void
release(cvg_raw *c)
{
    cvg_session_close(c->s);
    c->s = NULL;
    if (c->ch_live) {
        cvg__channel_destroy(&c->ch);
        c->ch_live = false;
    }
    for (size_t i = 0; i < c->nheld; i++) {
        free(c->held[i]);
    }
    c->nheld = 0;
}

int
cvg_raw_detach(cvg_raw *c)
{
    int fd = c->fd;
    release(c);
    free(c);
    return fd;
}

void
cvg_raw_free(cvg_raw *c)
{
    if (c != NULL) {
        close(cvg_raw_detach(c));
    }
}

size_t
cvg_raw_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, rss = 0;
    if (f != NULL) {
        if (fscanf(f, "%lu %lu", &size, &rss) != 2) {
            rss = 0;
        }
        fclose(f);
    }
    return (size_t)rss * (size_t)sysconf(_SC_PAGESIZE);
}

size_t
cvg_raw_peak_rss_bytes(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) {
        return 0;
    }
    return (size_t)ru.ru_maxrss * 1024; /* KiB on Linux */
}
