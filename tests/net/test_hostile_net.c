/*
 * Hostile clients against a running cvg_server on 127.0.0.1: raw clients
 * (tests/support/net_raw.h: a blocking socket driving the channel and a
 * session by hand) send what no honest client sends. For each: the
 * connection ends (at once, or at the handshake timeout), the server
 * stays up, an honest client syncs next to it and after it, and the
 * process's peak resident set grows by a bounded amount. Every loop is
 * bounded in count, every wait by a socket timeout or a deadline.
 *
 * Garbage and bad frames before and after the handshake, a 4 GB length
 * prefix (as frame header, as a message streamed past the channel's cap,
 * as a msgpack length), a handshake trickled a byte at a time, a frame
 * trickled after the handshake, 1,000
 * connections against max_clients, keys off the allow list, a client that
 * asks for pages and never reads them, replayed, reordered and misdirected
 * frames. (test_tcp.c has the single garbage connection, the silent
 * client, the plain allow list and max_clients of 1.)
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "harness.h"
#include "net_raw.h"
#include "sync/wire.h"

#define MIB (1024.0 * 1024.0)

/* Under AddressSanitizer freed blocks wait in quarantine and every block
 * has redzones, so the resident set says nothing of the server's bounds:
 * they are printed, not checked. */
#if defined(__SANITIZE_ADDRESS__)
#define MEMORY_CHECKED false
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEMORY_CHECKED false
#endif
#endif
#ifndef MEMORY_CHECKED
#define MEMORY_CHECKED true
#endif
#define RAW_TIMEOUT_MS 5000

/* A fresh client with one op of its own syncs, and the server has it. */
static void
honest(server_box *b, const char *name)
{
    cvg_replica *c = open_dir(name);
    add(c, name, 7);
    char url[64];
    url_of(b, url, sizeof url);
    int rc = cvg_net_sync(c, url, NULL, NULL);
    cr_assert_eq(rc, CVG_OK, "%s: %s (%s)", name, cvg_errname(rc),
                 cvg_replica_errmsg(c));
    cvg_replica_close(c);
}

static void
finish(server_box *b, const char *const *names, size_t n)
{
    stop(b);
    for (size_t i = 0; i < n; i++) {
        cr_expect_eq(get(b->r, names[i]), 7, "%s", names[i]);
    }
    cvg_replica_close(b->r);
}

static cvg_raw *
raw(server_box *b)
{
    cvg_raw *c = cvg_raw_connect(cvg_server_port(b->srv), RAW_TIMEOUT_MS);
    cr_assert_not_null(c);
    return c;
}

/* Handshake and proofs done: the server's session waits for our PULL. */
static cvg_raw *
proven(server_box *b, cvg_replica *me)
{
    cvg_raw *c = raw(b);
    OK(cvg_raw_handshake(c));
    OK(cvg_raw_prove(c, me));
    return c;
}

static void
expect_closed(cvg_raw *c, int ms, const char *what)
{
    double t0 = now_s();
    cr_expect(cvg_raw_wait_closed(c, ms), "%s: still open after %d ms", what,
              ms);
    cr_log_info("%s: closed after %.3f s", what, now_s() - t0);
    cvg_raw_free(c);
}

static void
expect_growth_below(size_t peak0, double mib, const char *what)
{
    double grew = (double)(cvg_raw_peak_rss_bytes() - peak0) / MIB;
    cr_log_info("%s: peak RSS grew %.1f MiB", what, grew);
    if (MEMORY_CHECKED) {
        cr_expect_lt(grew, mib, "%s: peak RSS grew %.1f MiB", what, grew);
    }
}

/* In place: the server's thread holds a pointer to @p b. */
static void
server_with(server_box *b, uint32_t handshake_ms, uint32_t idle_ms)
{
    cvg_server_options o;
    cvg_server_options_init(&o);
    o.handshake_timeout_ms = handshake_ms;
    o.idle_timeout_ms = idle_ms;
    start_on(b, NULL, &o);
}

Test(hostile_net, garbage_before_the_handshake, .timeout = 60)
{
    server_box b;
    server_with(&b, 1500, 30000);
    size_t peak0 = cvg_raw_peak_rss_bytes();
    enum { N = 24 };
    cvg_raw *c[N];
    uint64_t rng = cvg_test_seed(0x6a7b);
    static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    for (int i = 0; i < N; i++) {
        c[i] = raw(&b);
        uint8_t junk[4096];
        size_t len = 1 + cvg_test_below(&rng, sizeof junk);
        for (size_t j = 0; j < len; j++) {
            junk[j] = (uint8_t)cvg_test_rand(&rng);
        }
        if (i == 0) {
            len = sizeof http - 1;
            memcpy(junk, http, len);
        } else if (i == 1) {
            memset(junk, 0, len); /* a zero length: under any frame */
        }
        /* A reset by the server mid-write is fine too. */
        (void)cvg_raw_write(c[i], junk, len);
    }
    /* Each ends at once (a bad length or key) or, where the bytes make a
     * first message (any 32 bytes are a key) and then stop, at the
     * handshake timeout: never later. */
    honest(&b, "honest0");
    for (int i = 0; i < N; i++) {
        expect_closed(c[i], 4000, "garbage");
    }
    expect_growth_below(peak0, 16, "garbage");
    honest(&b, "honest1");
    static const char *const names[] = {"honest0", "honest1"};
    finish(&b, names, 2);
}

Test(hostile_net, garbage_after_the_handshake_ends_that_connection,
     .timeout = 60)
{
    server_box b;
    server_with(&b, 10000, 30000);
    cvg_replica *me = open_dir("me");
    uint8_t junk[66];
    for (size_t i = 0; i < sizeof junk; i++) {
        junk[i] = (uint8_t)(i * 37 + 11);
    }
    /* A frame of the right shape that does not decrypt. */
    cvg_raw *c = raw(&b);
    OK(cvg_raw_handshake(c));
    junk[0] = 0;
    junk[1] = 64;
    cr_assert_eq(cvg_raw_write(c, junk, sizeof junk), 0);
    expect_closed(c, 2000, "bad frame after the handshake");

    /* After the proofs: a frame with one bit flipped. */
    c = proven(&b, me);
    cvg_bytes pull;
    OK(cvg_raw_held(c, &pull));
    uint8_t *f;
    size_t flen;
    OK(cvg_raw_seal(c, pull.data, pull.len, &f, &flen));
    f[flen - 1] ^= 0x10;
    cr_assert_eq(cvg_raw_write(c, f, flen), 0);
    free(f);
    expect_closed(c, 2000, "flipped bit");

    /* Authentic frames whose message is not a session message: the
     * session fails and the server ends the connection. */
    c = proven(&b, me);
    OK(cvg_raw_send(c, junk, sizeof junk));
    expect_closed(c, 2000, "garbage message");
    honest(&b, "honest");
    cvg_replica_close(me);
    static const char *const names[] = {"honest"};
    finish(&b, names, 1);
}

Test(hostile_net, a_4gb_length_prefix, .timeout = 60)
{
    server_box b;
    server_with(&b, 10000, 30000);
    cvg_replica *me = open_dir("me");
    size_t peak0 = cvg_raw_peak_rss_bytes();
    static const uint8_t four_gb[] = {0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4};

    /* As a handshake frame's length: refused from its first two bytes. */
    cvg_raw *c = raw(&b);
    cr_assert_eq(cvg_raw_write(c, four_gb, sizeof four_gb), 0);
    expect_closed(c, 1000, "4 GB prefix before the handshake");

    /* As a transport frame's: the longest frame, 65,535 bytes, which
     * does not decrypt. */
    c = raw(&b);
    OK(cvg_raw_handshake(c));
    uint8_t *big = calloc(1, 65537);
    cr_assert_not_null(big);
    memcpy(big, four_gb, 4);
    (void)cvg_raw_write(c, big, 65537);
    expect_closed(c, 2000, "4 GB prefix after the handshake");

    /* As an application message: authentic fragments, none the last,
     * refused once they pass the channel's 16 MiB cap. */
    c = proven(&b, me);
    size_t sent = 0;
    int wrc = 0;
    for (int i = 0; i < 1000 && wrc == 0; i++) { /* at most 62 MiB */
        size_t flen;
        OK(cvg_raw_fragment(c, big + 2, 65000, false, big, &flen));
        wrc = cvg_raw_write(c, big, flen);
        sent += flen;
    }
    cr_expect_lt(sent, (size_t)40 << 20, "wrote %zu bytes", sent);
    expect_closed(c, 2000, "a message past the cap");

    /* As a msgpack bin32 length inside a session message. */
    c = proven(&b, me);
    static const uint8_t msg[] = {0x01, 0x03, 0xc6, 0xff, 0xff, 0xff, 0xff};
    OK(cvg_raw_send(c, msg, sizeof msg));
    expect_closed(c, 2000, "a 4 GB bin in a message");
    free(big);
    /* The cap, 16 MiB, and while the reassembly buffer doubles to it the
     * 8 MiB it is copied from; glibc keeps some of the smaller ones. */
    expect_growth_below(peak0, 40, "4 GB prefix");
    honest(&b, "honest");
    cvg_replica_close(me);
    static const char *const names[] = {"honest"};
    finish(&b, names, 1);
}

/* A client that trickles its first message a byte at a time keeps
 * sending, but the handshake's clock runs from the connection, not from
 * its last byte. */
Test(hostile_net, a_trickled_handshake_ends_at_the_handshake_timeout,
     .timeout = 60)
{
    server_box b;
    server_with(&b, 800, 30000);
    cvg_raw *c = raw(&b);
    /* Any 34 bytes with the length 32 are a first message. */
    uint8_t m0[34] = {0, 32};
    double t0 = now_s();
    bool cut = false;
    for (size_t i = 0; i < sizeof m0 && !cut; i++) {
        cut = cvg_raw_write(c, m0 + i, 1) != 0;
        if (i == 2) {
            honest(&b, "honest0");
        }
        usleep(100 * 1000);
        cut = cut || cvg_raw_wait_closed(c, 1);
    }
    double waited = now_s() - t0;
    cr_expect(cut || cvg_raw_wait_closed(c, 2000), "still open");
    cr_expect_lt(waited, 2.5, "the trickle went on for %.2f s", waited);
    cvg_raw_free(c);
    honest(&b, "honest1");
    static const char *const names[] = {"honest0", "honest1"};
    finish(&b, names, 2);
}

/* After the handshake and the proofs, a client sends its PULL's frame a
 * byte every 100 ms: every read is input, but no frame completes, so the
 * idle clock (600 ms here) is not restarted and the server cuts it. */
Test(hostile_net, a_frame_trickled_after_the_handshake_meets_the_idle_timeout,
     .timeout = 60)
{
    server_box b;
    server_with(&b, 10000, 600);
    cvg_replica *me = open_dir("me");
    cvg_raw *c = proven(&b, me);
    cvg_bytes pull;
    OK(cvg_raw_held(c, &pull));
    uint8_t *f;
    size_t flen;
    OK(cvg_raw_seal(c, pull.data, pull.len, &f, &flen));
    double t0 = now_s();
    bool cut = false;
    /* 40 bytes at 100 ms: 4 s if the trickle kept the connection up. */
    for (size_t i = 0; i + 1 < flen && i < 40 && !cut; i++) {
        cut = cvg_raw_write(c, f + i, 1) != 0;
        if (i == 2) {
            honest(&b, "honest0");
        }
        usleep(100 * 1000);
        cut = cut || cvg_raw_wait_closed(c, 1);
    }
    free(f);
    double waited = now_s() - t0;
    cr_expect(cut || cvg_raw_wait_closed(c, 2000), "still open");
    cr_expect_lt(waited, 2.0, "the trickle went on for %.2f s", waited);
    cvg_raw_free(c);
    honest(&b, "honest1");
    cvg_replica_close(me);
    static const char *const names[] = {"honest0", "honest1"};
    finish(&b, names, 2);
}

static void
raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* 1,000 clients connect, prove themselves and stay idle: the first
 * max_clients (the default, 64) are served, every later one is turned
 * away at once (BUSY, or cut past the BUSY answers under way), an honest client is refused while the places are taken and
 * syncs once they are free. */
Test(hostile_net, a_thousand_idle_connections_and_max_clients, .timeout = 120)
{
    raise_fd_limit();
    server_box b;
    start_on(&b, NULL, NULL);
    cvg_replica *me = open_dir("me");
    enum { N = 1000, MAX = 64 };
    int *fds = calloc(N, sizeof *fds);
    cr_assert_not_null(fds);
    size_t served = 0, refused = 0;
    size_t rss0 = cvg_raw_rss_bytes();
    double t0 = now_s();
    for (int i = 0; i < N; i++) {
        cvg_raw *c = raw(&b);
        double t1 = now_s();
        if (cvg_raw_handshake(c) == CVG_OK && cvg_raw_prove(c, me) == CVG_OK) {
            served++;
        } else {
            refused++;
            cr_expect_lt(now_s() - t1, 1.0, "connection %d refused late", i);
        }
        fds[i] = cvg_raw_detach(c);
    }
    size_t rss1 = cvg_raw_rss_bytes();
    cr_log_info(
        "%d connections in %.2f s: %zu served, %zu refused; RSS "
        "grew %.1f KiB per served connection",
        N, now_s() - t0, served, refused,
        (double)(rss1 - rss0) / 1024.0 / (double)(served ? served : 1));
    cr_expect_eq(served, MAX);
    cr_expect_eq(refused, N - MAX);
    /* Server and test in one process: ours are freed, only fds stay. An
     * idle channel holds no frame buffer (it held 64 KiB inline). */
    cr_expect(!MEMORY_CHECKED || (double)(rss1 - rss0) / MAX < 40.0 * 1024,
              "%.1f KiB per idle connection",
              (double)(rss1 - rss0) / 1024.0 / MAX);

    /* Full: an honest client is turned away at once: answered BUSY, or,
     * while the server has as many BUSY answers under way as it allows
     * (these clients never close), cut. */
    cvg_replica *h = open_dir("honest");
    add(h, "honest", 7);
    char url[64];
    url_of(&b, url, sizeof url);
    double t1 = now_s();
    int rc = cvg_net_sync(h, url, NULL, NULL);
    cr_expect(rc == CVG_EAGAIN || rc == CVG_EIO, "%s", cvg_errname(rc));
    cr_expect_lt(now_s() - t1, 1.0, "the honest client refused late");
    for (int i = 0; i < N; i++) {
        close(fds[i]);
    }
    free(fds);
    for (int i = 0; i < 200 && rc != CVG_OK; i++) {
        usleep(10 * 1000);
        rc = cvg_net_sync(h, url, NULL, NULL);
    }
    cr_expect_eq(rc, CVG_OK, "%s", cvg_errname(rc));
    cvg_replica_close(h);
    cvg_replica_close(me);
    static const char *const names[] = {"honest"};
    finish(&b, names, 1);
}

Test(hostile_net, keys_off_the_allow_list_get_nothing, .timeout = 60)
{
    cvg_replica *good = open_dir("honest");
    cvg_replica *bad = open_dir("bad");
    add(bad, "bad", 1);
    uint8_t keys[1][32];
    OK(cvg_replica_public_key(good, keys[0]));
    cvg_server_options o;
    cvg_server_options_init(&o);
    o.allow = (const uint8_t(*)[32])keys;
    o.allow_count = 1;
    server_box b;
    cvg_replica *sr = open_dir("server");
    add(sr, "secret", 5);
    start_on(&b, sr, &o);
    size_t peak0 = cvg_raw_peak_rss_bytes();
    for (int i = 0; i < 50; i++) {
        /* The server's HELLO comes, then the close: no PROVE, no page. */
        cvg_raw *c = raw(&b);
        OK(cvg_raw_handshake(c));
        int rc = cvg_raw_prove(c, bad);
        cr_expect_neq(rc, CVG_OK, "try %d: the server proved itself", i);
        cvg_bytes m;
        while (cvg_raw_held(c, &m) == CVG_OK) {
            (void)cvg_raw_send(c, m.data, m.len);
        }
        expect_closed(c, 2000, "unlisted");
    }
    char url[64];
    url_of(&b, url, sizeof url);
    cr_expect_eq(cvg_net_sync(bad, url, NULL, NULL), CVG_EPEER);
    expect_growth_below(peak0, 8, "unlisted");
    add(good, "honest", 7);
    OK(cvg_net_sync(good, url, NULL, NULL));
    cr_expect_eq(get(bad, "secret"), 0);
    cr_expect_eq(get(good, "secret"), 5);
    cvg_replica_close(good);
    cvg_replica_close(bad);
    stop(&b);
    cr_expect_eq(get(b.r, "bad"), 0);
    cr_expect_eq(get(b.r, "honest"), 7);
    cvg_replica_close(b.r);
}

/* A client asks for the server's log again and again and reads none of
 * it: the server queues at most its write bound (CVG__TCP_WRITE_HIGH, 4
 * MiB) and a page more, stops reading that client, and serves others. */
Test(hostile_net, a_client_that_never_reads, .timeout = 60)
{
    cvg_replica *sr = open_dir("server");
    /* 200,000 increments: each PULL is answered by a page of 65,536 ops
     * (about 64 KiB). */
    for (int k = 0; k < 20; k++) {
        cvg_txn *t;
        OK(cvg_txn_begin(sr, 0, &t));
        cvg_key key = {"c", "big", "n"};
        for (int i = 0; i < 10000; i++) {
            OK(cvg_counter_add(t, &key, 1, NULL));
        }
        OK(cvg_txn_commit(t));
    }
    server_box b;
    start_on(&b, sr, NULL);
    cvg_replica *me = open_dir("me");
    cvg_raw *c = proven(&b, me);
    cvg_bytes pull;
    OK(cvg_raw_held(c, &pull));
    /* 4,000 PULLs, about 50 bytes each: pages of 250 MiB in all. */
    size_t peak0 = cvg_raw_peak_rss_bytes();
    double t0 = now_s();
    int sent = 0;
    for (int i = 0; i < 4000; i++, sent++) {
        uint8_t *f;
        size_t flen;
        OK(cvg_raw_seal(c, pull.data, pull.len, &f, &flen));
        int w = cvg_raw_write(c, f, flen);
        free(f);
        if (w != 0) {
            break; /* the server stopped reading: fine */
        }
    }
    cr_log_info("%d PULLs written in %.2f s", sent, now_s() - t0);
    usleep(500 * 1000);
    honest(&b, "honest0");
    usleep(200 * 1000);
    expect_growth_below(peak0, 24, "a client that never reads");
    cvg_raw_free(c);
    honest(&b, "honest1");
    cvg_replica_close(me);
    static const char *const names[] = {"honest0", "honest1"};
    finish(&b, names, 2);
}

/* Clients that ask for pages and reset the connection while the server
 * writes them: its writes fail with EPIPE, which must end those
 * connections, not the process (SIGPIPE's default action). */
Test(hostile_net, resets_while_the_server_writes, .timeout = 60)
{
    signal(SIGPIPE, SIG_DFL);
    cvg_replica *sr = open_dir("server");
    cvg_txn *t;
    OK(cvg_txn_begin(sr, 0, &t));
    cvg_key key = {"c", "big", "n"};
    for (int i = 0; i < 100000; i++) {
        OK(cvg_counter_add(t, &key, 1, NULL));
    }
    OK(cvg_txn_commit(t));
    server_box b;
    start_on(&b, sr, NULL);
    cvg_replica *me = open_dir("me");
    for (int k = 0; k < 30; k++) {
        cvg_raw *c = proven(&b, me);
        cvg_bytes pull;
        OK(cvg_raw_held(c, &pull));
        for (int i = 0; i < 400; i++) {
            uint8_t *f;
            size_t flen;
            OK(cvg_raw_seal(c, pull.data, pull.len, &f, &flen));
            (void)cvg_raw_write(c, f, flen);
            free(f);
        }
        usleep((useconds_t)(k * 3000));
        /* Unread bytes at close: the kernel sends a reset. */
        cvg_raw_free(c);
    }
    honest(&b, "honest");
    cvg_replica_close(me);
    static const char *const names[] = {"honest"};
    finish(&b, names, 1);
}

/* A client whose last messages come in one write behind a PULL: the
 * server's answer (a page over 64 KiB) fills its queue, so it holds the
 * rest of that read and stops reading; the rest (our page, our ACK of its
 * page) ends its session, cleanly. A clean end waits for the peer's close,
 * so the server must read again: it closes once our close is in, not at
 * its idle timeout. */
Test(hostile_net, a_clean_end_after_held_input_reads_the_close, .timeout = 60)
{
    cvg_replica *sr = open_dir("server");
    static uint8_t big[300 * 1024];
    memset(big, 'x', sizeof big);
    cvg_txn *t;
    OK(cvg_txn_begin(sr, 0, &t));
    cvg_key key = {"b", "big", "v"};
    cvg_value v = cvg_value_bytes(big, sizeof big);
    OK(cvg_register_set(t, &key, &v, NULL));
    OK(cvg_txn_commit(t));
    cvg_server_options o;
    cvg_server_options_init(&o);
    o.idle_timeout_ms = 30000;
    server_box b;
    start_on(&b, sr, &o);
    cvg_replica *me = open_dir("me");
    cvg_raw *c = proven(&b, me);
    /* The server's version vector and PULL, and our page in answer. */
    cvg_session *s = cvg_raw_session(c);
    cvg_bytes msgs[8];
    int n = 0;
    while (n < 6 && cvg_raw_held(c, &msgs[n]) == CVG_OK) {
        n++; /* ours: the version vector and the PULL */
    }
    cr_assert_lt(n, 6);
    int got = CVG_DONE;
    for (int i = 0; i < 8 && got == CVG_DONE; i++) {
        cvg_bytes m;
        OK(cvg_raw_recv(c, &m));
        OK(cvg_session_input(s, m.data, m.len));
        got = cvg_session_output(s, &msgs[n]);
    }
    OK(got);
    n++;
    uint8_t *batch = NULL;
    size_t blen = 0;
    /* Our ACK of the page the PULL asks for, before it came: the server
     * counts it once its page is served. */
    cvg__msg ack;
    memset(&ack, 0, sizeof ack);
    ack.type = CVG__MSG_ACK;
    ack.version = CVG_PROTOCOL_VERSION;
    cvg__buf ab = {0};
    OK(cvg__msg_encode(&ack, &ab));
    msgs[n++] = (cvg_bytes){ab.p, ab.len};
    for (int i = 0; i < n; i++) {
        uint8_t *f;
        size_t flen;
        OK(cvg_raw_seal(c, msgs[i].data, msgs[i].len, &f, &flen));
        batch = realloc(batch, blen + flen);
        cr_assert_not_null(batch);
        memcpy(batch + blen, f, flen);
        blen += flen;
        free(f);
    }
    cr_assert_eq(cvg_raw_write(c, batch, blen), 0);
    free(batch);
    cvg__buf_free(&ab);
    /* Our close in a read of its own, after the server stopped reading. */
    usleep(300 * 1000);
    OK(cvg_raw_close(c));
    expect_closed(c, 5000, "a clean end after held input");
    honest(&b, "honest");
    cvg_replica_close(me);
    static const char *const names[] = {"honest"};
    finish(&b, names, 1);
}

Test(hostile_net, replayed_reordered_and_misdirected_frames, .timeout = 60)
{
    server_box b;
    server_with(&b, 10000, 30000);
    cvg_replica *me = open_dir("me");
    cvg_bytes pull;
    uint8_t *f1, *f2;
    size_t l1, l2;

    /* Replayed: the same frame twice; the first is served. */
    cvg_raw *c = proven(&b, me);
    OK(cvg_raw_held(c, &pull));
    OK(cvg_raw_seal(c, pull.data, pull.len, &f1, &l1));
    cr_assert_eq(cvg_raw_write(c, f1, l1), 0);
    cr_assert_eq(cvg_raw_write(c, f1, l1), 0);
    free(f1);
    expect_closed(c, 2000, "replayed frame");

    /* Reordered: two frames, the second first. */
    c = proven(&b, me);
    OK(cvg_raw_held(c, &pull));
    OK(cvg_raw_seal(c, pull.data, pull.len, &f1, &l1));
    OK(cvg_raw_seal(c, pull.data, pull.len, &f2, &l2));
    cr_assert_eq(cvg_raw_write(c, f2, l2), 0);
    (void)cvg_raw_write(c, f1, l1);
    free(f1);
    free(f2);
    expect_closed(c, 2000, "reordered frames");

    /* Misdirected: a frame sealed for another connection. */
    cvg_raw *a = proven(&b, me);
    c = proven(&b, me);
    OK(cvg_raw_held(a, &pull));
    OK(cvg_raw_seal(a, pull.data, pull.len, &f1, &l1));
    cr_assert_eq(cvg_raw_write(c, f1, l1), 0);
    free(f1);
    expect_closed(c, 2000, "another connection's frame");
    cvg_raw_free(a);
    honest(&b, "honest");
    cvg_replica_close(me);
    static const char *const names[] = {"honest"};
    finish(&b, names, 1);
}
