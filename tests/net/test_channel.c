/*
 * The secure channel: two channels talk through in-memory byte streams,
 * fed in random chunks (down to one byte at a time). Handshakes with and
 * without pinning and with payloads; messages of 0, 1, 65,535, 65,536 and
 * 1 MiB + 1 bytes and the fragment boundaries; the cap on both sides; a
 * flipped bit in any handshake or transport frame, replayed and reordered
 * frames, garbage before the handshake, bytes after a close: each kills
 * the receiving channel with its code, after which it outputs nothing and
 * holds no key; truncated input only waits; destroy leaves zeros. A
 * BUSY answer in place of handshake message 1, whole or a byte at a
 * time: CVG_EAGAIN with its wait, capped; the same bytes to a responder,
 * after the handshake, or of another length or magic: a bad frame.
 */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "net/channel.h"
#include "testutil.h"

/* ---- Helpers ----------------------------------------------------------- */

typedef struct peer {
    cvg__channel *ch;
    uint8_t sk[32], pk[32];
    uint8_t **msgs; /* what it received, in order */
    size_t *lens;
    size_t n;
} peer;

static bool
all_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        if (b[i] != 0) {
            return false;
        }
    }
    return true;
}

static void
peer_keys(peer *p)
{
    memset(p, 0, sizeof *p);
    randombytes_buf(p->sk, sizeof p->sk);
    crypto_scalarmult_base(p->pk, p->sk);
}

static void
peer_start(peer *p, const cvg__channel_options *o)
{
    p->ch = calloc(1, sizeof *p->ch);
    cr_assert_not_null(p->ch);
    cr_assert_eq(cvg__channel_init(p->ch, o), CVG_OK);
}

static void
options_of(cvg__channel_options *o, const peer *p, bool initiator,
           const uint8_t *pin)
{
    memset(o, 0, sizeof *o);
    o->initiator = initiator;
    o->static_key = p->sk;
    o->pinned = pin;
}

/* An initiator @p a and a responder @p b, @p b pinned by @p a if asked. */
static void
pair_start(peer *a, peer *b, bool pin_a, bool pin_b)
{
    cvg__channel_options o;
    peer_keys(a);
    peer_keys(b);
    options_of(&o, a, true, pin_a ? b->pk : NULL);
    peer_start(a, &o);
    options_of(&o, b, false, pin_b ? a->pk : NULL);
    peer_start(b, &o);
}

static void
peer_end(peer *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->msgs[i]);
    }
    free(p->msgs);
    free(p->lens);
    cvg__channel_destroy(p->ch);
    free(p->ch);
    p->ch = NULL;
    p->msgs = NULL;
    p->lens = NULL;
    p->n = 0;
}

static void
record(peer *p, cvg_bytes m)
{
    p->msgs = realloc(p->msgs, (p->n + 1) * sizeof *p->msgs);
    p->lens = realloc(p->lens, (p->n + 1) * sizeof *p->lens);
    p->msgs[p->n] = malloc(m.len + 1);
    if (m.len > 0) {
        memcpy(p->msgs[p->n], m.data, m.len);
    }
    p->lens[p->n++] = m.len;
}

/* Feed @p len bytes to @p p in chunks of 1 to @p max bytes (0: all at
 * once); the first negative code, or CVG_OK. */
static int
feed_chunks(peer *p, const uint8_t *data, size_t len, uint64_t *rng, size_t max)
{
    size_t pos = 0;
    while (pos < len) {
        size_t chunk = max ? 1 + (size_t)cvg_test_below(rng, max) : len;
        chunk = CVG__MIN(chunk, len - pos);
        size_t off = 0;
        while (off < chunk) {
            size_t used;
            cvg_bytes m;
            int rc = cvg__channel_feed(p->ch, data + pos + off, chunk - off,
                                       &used, &m);
            off += used;
            if (rc < 0) {
                return rc;
            }
            if (rc == CVG_OK) {
                record(p, m);
            } else {
                cr_assert_eq(off, chunk, "CVG_DONE consumed everything");
            }
        }
        pos += chunk;
    }
    return CVG_OK;
}

/* Move output both ways until neither side has any; the first negative
 * code, or CVG_OK. */
static int
pump(peer *a, peer *b, uint64_t *rng, size_t max)
{
    for (;;) {
        bool moved = false;
        peer *src[2] = {a, b}, *dst[2] = {b, a};
        for (int d = 0; d < 2; d++) {
            cvg_bytes out;
            int rc = cvg__channel_output(src[d]->ch, &out);
            if (rc < 0) {
                return rc;
            }
            if (rc == CVG_OK) {
                moved = true;
                rc = feed_chunks(dst[d], out.data, out.len, rng, max);
                if (rc < 0) {
                    return rc;
                }
            }
        }
        if (!moved) {
            return CVG_OK;
        }
    }
}

/* The output of @p p, copied (NULL and 0 when there is none). */
static uint8_t *
take(peer *p, size_t *len)
{
    cvg_bytes out;
    int rc = cvg__channel_output(p->ch, &out);
    cr_assert(rc == CVG_OK || rc == CVG_DONE, "output: %d", rc);
    *len = out.len;
    if (rc == CVG_DONE) {
        return NULL;
    }
    uint8_t *copy = malloc(out.len);
    memcpy(copy, out.data, out.len);
    return copy;
}

static int
feed_all(peer *p, const uint8_t *data, size_t len)
{
    uint64_t rng = 0;
    return feed_chunks(p, data, len, &rng, 0);
}

static void
expect_open(peer *a, peer *b)
{
    cr_assert_eq(cvg__channel_state_of(a->ch), CVG__CHANNEL_OPEN);
    cr_assert_eq(cvg__channel_state_of(b->ch), CVG__CHANNEL_OPEN);
    uint8_t ha[64], hb[64], rs[32];
    cr_assert_eq(cvg__channel_handshake_hash(a->ch, ha), CVG_OK);
    cr_assert_eq(cvg__channel_handshake_hash(b->ch, hb), CVG_OK);
    cr_expect_eq(memcmp(ha, hb, 64), 0, "one handshake hash");
    cr_assert_eq(cvg__channel_remote_static(a->ch, rs), CVG_OK);
    cr_expect_eq(memcmp(rs, b->pk, 32), 0);
    cr_assert_eq(cvg__channel_remote_static(b->ch, rs), CVG_OK);
    cr_expect_eq(memcmp(rs, a->pk, 32), 0);
}

static void
open_pair(peer *a, peer *b)
{
    uint64_t rng = 1;
    pair_start(a, b, false, false);
    cr_assert_eq(pump(a, b, &rng, 0), CVG_OK);
    expect_open(a, b);
}

/* A dead channel: its code again from every call, no output, no key. */
static void
expect_dead(peer *p, int code)
{
    cvg__channel *ch = p->ch;
    cvg_bytes v;
    size_t used;
    uint8_t byte = 0, buf[64];
    cr_assert_eq(cvg__channel_state_of(ch), CVG__CHANNEL_FAILED);
    cr_expect_eq(cvg__channel_error(ch), code, "error %d, want %d",
                 cvg__channel_error(ch), code);
    cr_expect_eq(cvg__channel_feed(ch, &byte, 1, &used, &v), code);
    cr_expect_eq(cvg__channel_output(ch, &v), code);
    cr_expect_eq(v.len, 0);
    cr_expect_eq(cvg__channel_send(ch, "x", 1), code);
    cr_expect_eq(cvg__channel_close(ch), code);
    cr_expect_eq(cvg__channel_handshake_hash(ch, buf), CVG_EMISUSE);
    cr_expect(all_zero(&ch->t, sizeof ch->t), "transport keys wiped");
    cr_expect(all_zero(&ch->hs, sizeof ch->hs), "handshake state wiped");
    cr_expect(ch->msg.p == NULL && ch->out.p == NULL, "buffers freed");
}

static uint8_t *
pattern_bytes(size_t len, uint64_t seed)
{
    uint8_t *p = malloc(len + 1);
    for (size_t i = 0; i < len; i++) {
        p[i] = (uint8_t)cvg_test_rand(&seed);
    }
    return p;
}

/* ---- Handshake ------------------------------------------------------- */

Test(channel, handshake_with_payloads_and_states)
{
    peer a, b;
    cvg__channel_options o;
    uint64_t rng = 7;
    peer_keys(&a);
    peer_keys(&b);
    options_of(&o, &a, true, NULL);
    o.payload[0] = (cvg_bytes){(const uint8_t *)"clear", 5};
    o.payload[2] = (cvg_bytes){(const uint8_t *)"initiator id", 12};
    peer_start(&a, &o);
    options_of(&o, &b, false, NULL);
    o.payload[1] = (cvg_bytes){(const uint8_t *)"responder id", 12};
    peer_start(&b, &o);

    uint8_t buf[64];
    cr_expect_eq(cvg__channel_state_of(a.ch), CVG__CHANNEL_WAITING);
    cr_expect_eq(cvg__channel_state_of(b.ch), CVG__CHANNEL_WAITING);
    cr_expect_eq(cvg__channel_handshake_hash(a.ch, buf), CVG_EMISUSE);
    cr_expect_eq(cvg__channel_remote_static(b.ch, buf), CVG_EMISUSE);
    cr_expect_eq(cvg__channel_send(a.ch, "early", 5), CVG_EMISUSE);
    cr_expect_eq(cvg__channel_close(a.ch), CVG_EMISUSE);

    cr_assert_eq(pump(&a, &b, &rng, 0), CVG_OK);
    expect_open(&a, &b);
    cvg_bytes p;
    cr_assert_eq(cvg__channel_peer_payload(b.ch, 0, &p), CVG_OK);
    cr_expect(p.len == 5 && memcmp(p.data, "clear", 5) == 0);
    cr_assert_eq(cvg__channel_peer_payload(b.ch, 2, &p), CVG_OK);
    cr_expect(p.len == 12 && memcmp(p.data, "initiator id", 12) == 0);
    cr_assert_eq(cvg__channel_peer_payload(a.ch, 1, &p), CVG_OK);
    cr_expect(p.len == 12 && memcmp(p.data, "responder id", 12) == 0);
    cr_expect_eq(cvg__channel_peer_payload(a.ch, 0, &p), CVG_ENOTFOUND,
                 "its own");
    cr_expect_eq(cvg__channel_peer_payload(b.ch, 1, &p), CVG_ENOTFOUND);
    cr_expect_eq(cvg__channel_peer_payload(b.ch, 3, &p), CVG_EINVAL);
    peer_end(&a);
    peer_end(&b);
}

Test(channel, options_are_checked)
{
    peer a;
    cvg__channel_options o;
    cvg__channel ch;
    peer_keys(&a);
    options_of(&o, &a, true, NULL);
    o.static_key = NULL;
    cr_expect_eq(cvg__channel_init(&ch, &o), CVG_EINVAL);
    cr_expect_eq(cvg__channel_state_of(&ch), CVG__CHANNEL_FAILED);
    options_of(&o, &a, true, NULL);
    o.payload[1] = (cvg_bytes){(const uint8_t *)"x", 1};
    cr_expect_eq(cvg__channel_init(&ch, &o), CVG_EINVAL,
                 "message 1 is the responder's");
    options_of(&o, &a, false, NULL);
    static uint8_t big[CVG__CHANNEL_PAYLOAD_MAX + 1];
    o.payload[1] = (cvg_bytes){big, sizeof big};
    cr_expect_eq(cvg__channel_init(&ch, &o), CVG_ETOOBIG);
    o.payload[1].len = CVG__CHANNEL_PAYLOAD_MAX;
    cr_expect_eq(cvg__channel_init(&ch, &o), CVG_OK);
    cvg__channel_destroy(&ch);
    options_of(&o, &a, false, NULL);
    o.max_message = (size_t)CVG__CHANNEL_MESSAGE_LIMIT + 1;
    cr_expect_eq(cvg__channel_init(&ch, &o), CVG_EINVAL);
    cr_expect_eq(cvg__channel_init(&ch, NULL), CVG_EINVAL);
    cr_expect_eq(cvg__channel_init(NULL, &o), CVG_EINVAL);
}

Test(channel, the_largest_handshake_payloads_pass)
{
    peer a, b;
    cvg__channel_options o;
    uint64_t rng = 3;
    static uint8_t big[CVG__CHANNEL_PAYLOAD_MAX];
    memset(big, 0x42, sizeof big);
    peer_keys(&a);
    peer_keys(&b);
    options_of(&o, &a, true, NULL);
    o.payload[0] = o.payload[2] = (cvg_bytes){big, sizeof big};
    peer_start(&a, &o);
    options_of(&o, &b, false, NULL);
    o.payload[1] = (cvg_bytes){big, sizeof big};
    peer_start(&b, &o);
    cr_assert_eq(pump(&a, &b, &rng, 100), CVG_OK);
    expect_open(&a, &b);
    peer_end(&a);
    peer_end(&b);
}

Test(channel, pinning)
{
    peer a, b;
    uint64_t rng = 11;
    pair_start(&a, &b, true, true);
    cr_assert_eq(pump(&a, &b, &rng, 0), CVG_OK);
    expect_open(&a, &b);
    peer_end(&a);
    peer_end(&b);

    /* The initiator expects another responder: it stops at message 2 and
     * never sends its own static key. */
    cvg__channel_options o;
    uint8_t other[32];
    randombytes_buf(other, sizeof other);
    peer_keys(&a);
    peer_keys(&b);
    options_of(&o, &a, true, other);
    peer_start(&a, &o);
    options_of(&o, &b, false, NULL);
    peer_start(&b, &o);
    cr_expect_eq(pump(&a, &b, &rng, 0), CVG_EKEY);
    expect_dead(&a, CVG_EKEY);
    cr_expect_eq(cvg__channel_state_of(b.ch), CVG__CHANNEL_WAITING);
    peer_end(&a);
    peer_end(&b);

    /* The responder expects another initiator. */
    peer_keys(&a);
    peer_keys(&b);
    options_of(&o, &a, true, NULL);
    peer_start(&a, &o);
    options_of(&o, &b, false, other);
    peer_start(&b, &o);
    cr_expect_eq(pump(&a, &b, &rng, 0), CVG_EKEY);
    expect_dead(&b, CVG_EKEY);
    peer_end(&a);
    peer_end(&b);
}

/* ---- Messages -------------------------------------------------------- */

static void
send_ok(peer *p, const uint8_t *msg, size_t len)
{
    int rc = cvg__channel_send(p->ch, msg, len);
    cr_assert_eq(rc, CVG_OK, "send %zu bytes: %d", len, rc);
}

static void
expect_received(const peer *p, size_t i, const uint8_t *msg, size_t len)
{
    cr_assert_gt(p->n, i, "message %zu not received", i);
    cr_assert_eq(p->lens[i], len, "message %zu: %zu bytes, want %zu", i,
                 p->lens[i], len);
    cr_assert(len == 0 || memcmp(p->msgs[i], msg, len) == 0,
              "message %zu differs", i);
}

Test(channel, sizes_across_fragment_boundaries)
{
    static const size_t sizes[] = {
        0,
        1,
        CVG__CHANNEL_FRAGMENT_MAX - 1,
        CVG__CHANNEL_FRAGMENT_MAX,
        CVG__CHANNEL_FRAGMENT_MAX + 1,
        65535,
        65536,
        2 * CVG__CHANNEL_FRAGMENT_MAX,
        (1u << 20) + 1,
    };
    size_t n = sizeof sizes / sizeof sizes[0];
    peer a, b;
    uint64_t rng = 5;
    open_pair(&a, &b);
    uint8_t *msgs[sizeof sizes / sizeof sizes[0]];
    for (size_t i = 0; i < n; i++) {
        msgs[i] = pattern_bytes(sizes[i], i);
        send_ok(&a, msgs[i], sizes[i]);
        send_ok(&b, msgs[i], sizes[i]);
    }
    cr_assert_eq(pump(&a, &b, &rng, 70000), CVG_OK);
    for (size_t i = 0; i < n; i++) {
        expect_received(&b, i, msgs[i], sizes[i]);
        expect_received(&a, i, msgs[i], sizes[i]);
        free(msgs[i]);
    }
    cr_expect_eq(a.n, n);
    cr_expect_eq(b.n, n);
    /* Frames: one per full fragment, 19 bytes of overhead each. */
    size_t out_len;
    send_ok(&a, NULL, 0);
    uint8_t *out = take(&a, &out_len);
    cr_expect_eq(out_len, 2 + 1 + 16, "an empty message is one frame");
    free(out);
    uint8_t *big = pattern_bytes(65536, 9);
    send_ok(&a, big, 65536);
    out = take(&a, &out_len);
    cr_expect_eq(out_len, 65536 + 2 * 19, "65,536 bytes take two frames");
    cr_expect_eq(out[0] << 8 | out[1], 65535, "the first frame is full");
    free(out);
    free(big);
    peer_end(&a);
    peer_end(&b);
}

/* Many messages of random sizes both ways, the streams cut at random,
 * for several seeds: the same messages come out, in order. */
Test(channel, random_chunking)
{
    uint64_t seed = cvg_test_seed(0xC0FFEE);
    for (int round = 0; round < 8; round++) {
        peer a, b;
        uint64_t rng = seed + (uint64_t)round;
        size_t max_chunk = round == 0 ? 1 : 1 + cvg_test_below(&rng, 3000);
        pair_start(&a, &b, round % 2 == 0, round % 3 == 0);
        cr_assert_eq(pump(&a, &b, &rng, max_chunk), CVG_OK);
        expect_open(&a, &b);
        size_t n = 12;
        uint8_t *sent_a[12], *sent_b[12];
        size_t len_a[12], len_b[12];
        for (size_t i = 0; i < n; i++) {
            size_t cap = round == 0 ? 300 : 140000;
            len_a[i] = cvg_test_below(&rng, cap);
            len_b[i] = cvg_test_below(&rng, cap);
            sent_a[i] = pattern_bytes(len_a[i], rng + i);
            sent_b[i] = pattern_bytes(len_b[i], rng + 100 + i);
            send_ok(&a, sent_a[i], len_a[i]);
            send_ok(&b, sent_b[i], len_b[i]);
            if (cvg_test_below(&rng, 3) == 0) {
                cr_assert_eq(pump(&a, &b, &rng, max_chunk), CVG_OK);
            }
        }
        cr_assert_eq(pump(&a, &b, &rng, max_chunk), CVG_OK);
        cr_assert_eq(b.n, n, "round %d: %zu messages", round, b.n);
        cr_assert_eq(a.n, n);
        for (size_t i = 0; i < n; i++) {
            expect_received(&b, i, sent_a[i], len_a[i]);
            expect_received(&a, i, sent_b[i], len_b[i]);
            free(sent_a[i]);
            free(sent_b[i]);
        }
        peer_end(&a);
        peer_end(&b);
    }
}

Test(channel, a_received_message_can_be_echoed)
{
    peer a, b;
    uint64_t rng = 2;
    open_pair(&a, &b);
    uint8_t *m = pattern_bytes(3u << 20, 4); /* above KEEP_MAX */
    send_ok(&a, m, 3u << 20);
    size_t len;
    uint8_t *out = take(&a, &len);
    size_t used;
    cvg_bytes got;
    cr_assert_eq(cvg__channel_feed(b.ch, out, len, &used, &got), CVG_OK);
    cr_assert_eq(used, len);
    send_ok(&b, got.data, got.len); /* the view outlives a send */
    cr_assert_eq(pump(&a, &b, &rng, 0), CVG_OK);
    expect_received(&a, 0, m, 3u << 20);
    free(out);
    free(m);
    /* The large buffer stays while it serves large messages, and goes
     * once a small one is handed out. */
    cr_expect_geq(b.ch->msg.cap, 3u << 20);
    send_ok(&a, (const uint8_t *)"small", 5);
    out = take(&a, &len);
    cr_assert_eq(cvg__channel_feed(b.ch, out, len, &used, &got), CVG_OK);
    cr_expect_geq(b.ch->msg.cap, 3u << 20, "still in use");
    cr_assert_eq(cvg__channel_feed(b.ch, NULL, 0, &used, &got), CVG_DONE);
    cr_expect_eq(b.ch->msg.cap, 0, "freed");
    free(out);
    peer_end(&a);
    peer_end(&b);
}

Test(channel, output_is_taken_once)
{
    peer a, b;
    open_pair(&a, &b);
    cvg_bytes out;
    cr_expect_eq(cvg__channel_output(a.ch, &out), CVG_DONE);
    send_ok(&a, (const uint8_t *)"one", 3);
    send_ok(&a, (const uint8_t *)"two", 3);
    cr_assert_eq(cvg__channel_output(a.ch, &out), CVG_OK);
    cr_expect_eq(out.len, 2 * (2 + 3 + 1 + 16), "both frames at once");
    cr_expect_eq(cvg__channel_output(a.ch, &out), CVG_DONE);
    peer_end(&a);
    peer_end(&b);
}

/* ---- Caps ------------------------------------------------------------ */

Test(channel, the_cap_on_both_sides)
{
    peer a, b;
    cvg__channel_options o;
    uint64_t rng = 13;
    size_t cap = 100000; /* two frames */
    peer_keys(&a);
    peer_keys(&b);
    options_of(&o, &a, true, NULL);
    o.max_message = cap;
    peer_start(&a, &o);
    options_of(&o, &b, false, NULL);
    o.max_message = cap + 20000;
    peer_start(&b, &o);
    cr_assert_eq(pump(&a, &b, &rng, 0), CVG_OK);
    uint8_t *m = pattern_bytes(cap + 1, 1);
    cr_expect_eq(cvg__channel_send(a.ch, m, cap + 1), CVG_ETOOBIG);
    cr_expect_eq(cvg__channel_state_of(a.ch), CVG__CHANNEL_OPEN,
                 "a refused send leaves the channel as it was");
    cvg_bytes out;
    cr_expect_eq(cvg__channel_output(a.ch, &out), CVG_DONE);
    send_ok(&a, m, cap);
    cr_assert_eq(pump(&a, &b, &rng, 0), CVG_OK);
    expect_received(&b, 0, m, cap);
    cr_expect_leq(b.ch->msg.cap, cap + 20000 + 1,
                  "the buffer grows by doubling, but not past the cap");

    /* The responder allows more; the initiator's cap refuses it at the
     * frame that would cross it, before decrypting. */
    send_ok(&b, m, cap + 1);
    cr_expect_eq(pump(&a, &b, &rng, 0), CVG_ETOOBIG);
    expect_dead(&a, CVG_ETOOBIG);
    cr_expect_eq(a.n, 0);
    free(m);
    peer_end(&a);
    peer_end(&b);

    /* The default cap: 16 MiB. */
    open_pair(&a, &b);
    cr_expect_eq(cvg__channel_send(a.ch, "", CVG__CHANNEL_MESSAGE_MAX + 1),
                 CVG_ETOOBIG);
    peer_end(&a);
    peer_end(&b);
}

/* ---- Damage ---------------------------------------------------------- */

/* A fresh open pair and one frame from a to b ("hello world"). */
static uint8_t *
pair_and_frame(peer *a, peer *b, size_t *len)
{
    open_pair(a, b);
    send_ok(a, (const uint8_t *)"hello world", 11);
    return take(a, len);
}

Test(channel, a_flipped_bit_in_a_transport_frame_kills_the_channel)
{
    size_t len;
    peer a, b;
    uint8_t *frame = pair_and_frame(&a, &b, &len);
    peer_end(&a);
    peer_end(&b);
    cr_assert_eq(len, 2 + 11 + 1 + 16);
    free(frame);
    /* Every bit of the body (the header: next test). */
    for (size_t bit = 16; bit < 8 * len; bit++) {
        frame = pair_and_frame(&a, &b, &len);
        frame[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        cr_expect_eq(feed_all(&b, frame, len), CVG_ECORRUPT, "bit %zu", bit);
        cr_expect_eq(b.n, 0);
        expect_dead(&b, CVG_ECORRUPT);
        free(frame);
        peer_end(&a);
        peer_end(&b);
    }
}

Test(channel, a_damaged_length_never_delivers)
{
    for (size_t bit = 0; bit < 16; bit++) {
        size_t len;
        peer a, b;
        uint8_t *frame = pair_and_frame(&a, &b, &len);
        frame[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        /* A longer length waits for more; what comes next completes a
         * frame that fails. */
        int rc = feed_all(&b, frame, len);
        if (rc == CVG_OK) {
            cr_expect_eq(cvg__channel_state_of(b.ch), CVG__CHANNEL_OPEN);
            static uint8_t more[70000];
            rc = feed_all(&b, more, sizeof more);
        }
        cr_expect(rc == CVG_ECORRUPT, "bit %zu: %d", bit, rc);
        cr_expect_eq(b.n, 0);
        free(frame);
        peer_end(&a);
        peer_end(&b);
    }
}

/* Run the handshake until message @p which (0, 1, 2) is output, flip
 * @p bit of its body, deliver it, and go on: some side must die with
 * ECORRUPT (or EPROTO), and the two must never both be open. Damage to
 * message 0 is not seen by the responder (XX's first message is a key
 * and clear text) but by the initiator, whose message 1 from the
 * responder then fails to decrypt. (A damaged length may also just make
 * the reader wait for bytes that never come: the transport's timeout.) */
static void
damage_handshake(size_t which, size_t bit, size_t *msg_len)
{
    peer a, b;
    pair_start(&a, &b, false, false);
    for (size_t m = 0; m <= which; m++) {
        peer *src = m % 2 == 0 ? &a : &b, *dst = m % 2 == 0 ? &b : &a;
        size_t len;
        uint8_t *msg = take(src, &len);
        cr_assert_not_null(msg);
        *msg_len = len;
        if (m == which) {
            msg[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        }
        int rc = feed_all(dst, msg, len);
        free(msg);
        if (m < which) {
            cr_assert_eq(rc, CVG_OK);
            continue;
        }
        uint64_t rng = 0;
        if (rc == CVG_OK) {
            rc = pump(&a, &b, &rng, 0);
        }
        cr_expect(rc == CVG_ECORRUPT || rc == CVG_EPROTO,
                  "message %zu, bit %zu: %d", which, bit, rc);
        peer *victim =
            cvg__channel_state_of(a.ch) == CVG__CHANNEL_FAILED ? &a : &b;
        expect_dead(victim, rc);
        cr_expect(cvg__channel_state_of(a.ch) != CVG__CHANNEL_OPEN ||
                      cvg__channel_state_of(b.ch) != CVG__CHANNEL_OPEN,
                  "never both open");
    }
    peer_end(&a);
    peer_end(&b);
}

Test(channel, a_flipped_bit_in_a_handshake_frame_fails_it)
{
    for (size_t which = 0; which < 3; which++) {
        size_t len = 0;
        damage_handshake(which, 16, &len);
        for (size_t bit = 17; bit < 8 * len; bit++) {
            damage_handshake(which, bit, &len);
        }
    }
}

Test(channel, replayed_and_reordered_frames_are_refused)
{
    peer a, b;
    size_t l1, l2;
    open_pair(&a, &b);
    send_ok(&a, (const uint8_t *)"first", 5);
    uint8_t *f1 = take(&a, &l1);
    send_ok(&a, (const uint8_t *)"second", 6);
    uint8_t *f2 = take(&a, &l2);
    cr_expect_eq(feed_all(&b, f2, l2), CVG_ECORRUPT, "second before first");
    expect_dead(&b, CVG_ECORRUPT);
    peer_end(&a);
    peer_end(&b);
    free(f1);
    free(f2);

    open_pair(&a, &b);
    send_ok(&a, (const uint8_t *)"first", 5);
    f1 = take(&a, &l1);
    cr_assert_eq(feed_all(&b, f1, l1), CVG_OK);
    cr_assert_eq(b.n, 1);
    cr_expect_eq(feed_all(&b, f1, l1), CVG_ECORRUPT, "the same frame again");
    expect_dead(&b, CVG_ECORRUPT);
    free(f1);
    peer_end(&a);
    peer_end(&b);

    /* A frame of another session between the same keys. */
    peer c, d;
    open_pair(&a, &b);
    send_ok(&a, (const uint8_t *)"first", 5);
    f1 = take(&a, &l1);
    open_pair(&c, &d);
    cr_expect_eq(feed_all(&d, f1, l1), CVG_ECORRUPT);
    free(f1);
    peer_end(&a);
    peer_end(&b);
    peer_end(&c);
    peer_end(&d);
}

Test(channel, truncated_input_waits)
{
    peer a, b;
    size_t len, used;
    cvg_bytes m;
    uint8_t *frame = pair_and_frame(&a, &b, &len);
    cr_assert_eq(cvg__channel_feed(b.ch, frame, len - 1, &used, &m), CVG_DONE);
    cr_expect_eq(used, len - 1);
    cr_expect_eq(cvg__channel_state_of(b.ch), CVG__CHANNEL_OPEN);
    cr_assert_eq(cvg__channel_feed(b.ch, frame + len - 1, 1, &used, &m),
                 CVG_OK);
    cr_expect(m.len == 11 && memcmp(m.data, "hello world", 11) == 0);
    free(frame);
    peer_end(&a);
    peer_end(&b);

    /* Half a first handshake message: the responder waits, silent. */
    pair_start(&a, &b, false, false);
    frame = take(&a, &len);
    cr_assert_eq(feed_all(&b, frame, len / 2), CVG_OK);
    cr_expect_eq(cvg__channel_state_of(b.ch), CVG__CHANNEL_WAITING);
    cr_expect_null(take(&b, &used));
    free(frame);
    peer_end(&a);
    peer_end(&b);
}

Test(channel, garbage_before_the_handshake)
{
    peer a, b;
    /* A length over any handshake message (here "HT" of "HTTP/1.1"):
     * refused at the second byte. */
    pair_start(&a, &b, false, false);
    size_t used;
    cvg_bytes m;
    cr_expect_eq(cvg__channel_feed(b.ch, "HTTP/1.1 200 OK\r\n", 17, &used, &m),
                 CVG_EPROTO);
    cr_expect_eq(used, 2);
    expect_dead(&b, CVG_EPROTO);
    cr_expect_eq(feed_all(&a, (const uint8_t *)"\xff\xff", 2), CVG_EPROTO);
    peer_end(&a);
    peer_end(&b);

    /* Shorter than any message. */
    pair_start(&a, &b, false, false);
    cr_expect_eq(feed_all(&b, (const uint8_t *)"\x00\x05hello", 7),
                 CVG_ECORRUPT);
    peer_end(&a);
    peer_end(&b);

    /* Random bytes framed as handshake messages: the initiator refuses a
     * message 2 it cannot decrypt; XX's message 1 is only a key and clear
     * text, so the responder answers it, then refuses message 3. */
    uint64_t seed = 99;
    for (int i = 0; i < 50; i++) {
        uint8_t junk[2 + 200];
        size_t n = 17 + cvg_test_below(&seed, 180);
        for (size_t k = 0; k < n; k++) {
            junk[2 + k] = (uint8_t)cvg_test_rand(&seed);
        }
        junk[0] = (uint8_t)(n >> 8);
        junk[1] = (uint8_t)n;
        pair_start(&a, &b, false, false);
        cr_expect_eq(feed_all(&a, junk, n + 2), CVG_ECORRUPT);
        int rc = feed_all(&b, junk, n + 2);
        if (n < 32) {
            cr_expect_eq(rc, CVG_ECORRUPT);
        } else {
            cr_expect_eq(rc, CVG_OK);
            size_t len;
            free(take(&b, &len));
            cr_expect_eq(feed_all(&b, junk, n + 2), CVG_ECORRUPT);
        }
        peer_end(&a);
        peer_end(&b);
    }
}

/* A transport frame made by hand with @p p's send key: @p n bytes of
 * @p data and the flag byte @p flag. */
static size_t
raw_frame(peer *p, const void *data, size_t n, uint8_t flag, uint8_t *out)
{
    uint8_t plain[256];
    size_t len;
    cr_assert_lt(n, sizeof plain);
    memcpy(plain, data, n);
    plain[n] = flag;
    cr_assert_eq(
        cvg__noise_encrypt(&p->ch->t.tx, plain, n + 1, out + 2, 300, &len),
        CVG_OK);
    out[0] = (uint8_t)(len >> 8);
    out[1] = (uint8_t)len;
    return len + 2;
}

Test(channel, close_and_what_may_not_follow_it)
{
    peer a, b;
    uint64_t rng = 17;
    uint8_t f[400];
    open_pair(&a, &b);
    send_ok(&a, (const uint8_t *)"last words", 10);
    cr_assert_eq(cvg__channel_close(a.ch), CVG_OK);
    cr_expect_eq(cvg__channel_send(a.ch, "more", 4), CVG_EMISUSE);
    cr_expect_eq(cvg__channel_close(a.ch), CVG_EMISUSE);
    cr_assert_eq(pump(&a, &b, &rng, 0), CVG_OK);
    cr_expect_eq(b.n, 1);
    cr_expect(cvg__channel_peer_closed(b.ch));
    cr_expect(!cvg__channel_peer_closed(a.ch));
    /* The other way still works until b closes too. */
    send_ok(&b, (const uint8_t *)"reply", 5);
    cr_assert_eq(pump(&a, &b, &rng, 0), CVG_OK);
    cr_expect_eq(a.n, 1);
    /* A frame after the close: refused at its first byte. */
    size_t n = raw_frame(&a, "x", 1, 1, f);
    cr_expect_eq(feed_all(&b, f, n), CVG_EPROTO);
    expect_dead(&b, CVG_EPROTO);
    peer_end(&a);
    peer_end(&b);
}

/* ---- BUSY ---------------------------------------------------------------- */

/* Feed @p len bytes to @p p @p chunk at a time (0: whole): the first
 * negative code, or CVG_OK. */
static int
feed_by(peer *p, const uint8_t *data, size_t len, size_t chunk)
{
    uint64_t rng = 5;
    return feed_chunks(p, data, len, &rng, chunk);
}

Test(channel, busy_in_place_of_message_1)
{
    static const struct {
        uint32_t sent, honoured;
    } cases[] = {
        {5000, 5000},
        {1, 1},
        {0, 1}, /* still busy: 0 means no BUSY to the caller */
        {CVG__CHANNEL_BUSY_RETRY_MAX, CVG__CHANNEL_BUSY_RETRY_MAX},
        {CVG__CHANNEL_BUSY_RETRY_MAX + 1, CVG__CHANNEL_BUSY_RETRY_MAX},
        {UINT32_MAX, CVG__CHANNEL_BUSY_RETRY_MAX},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (size_t chunk = 0; chunk <= 1; chunk++) {
            peer a, b;
            pair_start(&a, &b, false, false);
            size_t len;
            free(take(&a, &len)); /* message 0, sent */
            cr_expect_eq(cvg__channel_retry_after(a.ch), 0);
            uint8_t f[CVG__CHANNEL_BUSY_FRAME];
            cvg__channel_busy_frame(f, cases[i].sent);
            cr_expect_eq(f[0], 0);
            cr_expect_eq(f[1], 8);
            cr_expect_eq(memcmp(f + 2, "BUSY", 4), 0);
            cr_expect_eq(feed_by(&a, f, sizeof f, chunk), CVG_EAGAIN,
                         "case %zu", i);
            expect_dead(&a, CVG_EAGAIN);
            cr_expect_eq(cvg__channel_retry_after(a.ch), cases[i].honoured,
                         "case %zu: %u", i,
                         (unsigned)cvg__channel_retry_after(a.ch));
            peer_end(&a);
            peer_end(&b);
        }
    }
}

Test(channel, busy_anywhere_else_is_a_bad_frame)
{
    peer a, b;
    uint8_t f[CVG__CHANNEL_BUSY_FRAME];
    cvg__channel_busy_frame(f, 5000);

    /* To a responder, before its first message. */
    pair_start(&a, &b, false, false);
    cr_expect_eq(feed_all(&b, f, sizeof f), CVG_ECORRUPT);
    expect_dead(&b, CVG_ECORRUPT);
    cr_expect_eq(cvg__channel_retry_after(b.ch), 0);
    peer_end(&a);
    peer_end(&b);

    /* After the handshake, to either side. */
    open_pair(&a, &b);
    cr_expect_eq(feed_all(&a, f, sizeof f), CVG_ECORRUPT);
    expect_dead(&a, CVG_ECORRUPT);
    cr_expect_eq(cvg__channel_retry_after(a.ch), 0);
    cr_expect_eq(feed_all(&b, f, sizeof f), CVG_ECORRUPT);
    expect_dead(&b, CVG_ECORRUPT);
    peer_end(&a);
    peer_end(&b);

    /* To an initiator awaiting message 1, but not a BUSY frame: another
     * magic, a length one off either way, or a message-1-sized frame
     * that begins like one. Each fails the handshake. */
    static const uint8_t wrong[][12] = {
        {0, 8, 'B', 'U', 'S', 'X', 0, 0, 0x13, 0x88},
        {0, 8, 'b', 'u', 's', 'y', 0, 0, 0x13, 0x88},
        {0, 7, 'B', 'U', 'S', 'Y', 0, 0, 0x13},
        {0, 9, 'B', 'U', 'S', 'Y', 0, 0, 0x13, 0x88, 0},
    };
    static const size_t wrong_len[] = {10, 10, 9, 11};
    for (size_t i = 0; i < 4; i++) {
        pair_start(&a, &b, false, false);
        size_t len;
        free(take(&a, &len));
        cr_expect_eq(feed_all(&a, wrong[i], wrong_len[i]), CVG_ECORRUPT,
                     "case %zu", i);
        expect_dead(&a, CVG_ECORRUPT);
        cr_expect_eq(cvg__channel_retry_after(a.ch), 0);
        peer_end(&a);
        peer_end(&b);
    }
    uint8_t big[2 + 96];
    memset(big, 0, sizeof big);
    big[1] = 96;
    memcpy(big + 2, f + 2, 8);
    pair_start(&a, &b, false, false);
    size_t len;
    free(take(&a, &len));
    cr_expect_eq(feed_all(&a, big, sizeof big), CVG_ECORRUPT);
    cr_expect_eq(cvg__channel_retry_after(a.ch), 0);
    peer_end(&a);
    peer_end(&b);
}

Test(channel, malformed_flags)
{
    struct {
        const char *data;
        size_t n;
        uint8_t flag;
        int rc;
    } cases[] = {
        {"", 0, 3, CVG_EPROTO},    /* unknown flag */
        {"", 0, 0xff, CVG_EPROTO}, /* unknown flag */
        {"xy", 2, 2, CVG_EPROTO},  /* a close with content */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        peer a, b;
        uint8_t f[400];
        open_pair(&a, &b);
        size_t n = raw_frame(&a, cases[i].data, cases[i].n, cases[i].flag, f);
        cr_expect_eq(feed_all(&b, f, n), cases[i].rc, "case %zu", i);
        peer_end(&a);
        peer_end(&b);
    }
    /* A close in the middle of a message. */
    peer a, b;
    uint8_t f[800];
    open_pair(&a, &b);
    size_t n = raw_frame(&a, "part", 4, 0, f);
    n += raw_frame(&a, "", 0, 2, f + n);
    cr_expect_eq(feed_all(&b, f, n), CVG_EPROTO);
    peer_end(&a);
    peer_end(&b);
}

/* ---- Limits and memory ----------------------------------------------- */

Test(channel, nonces_run_out)
{
    peer a, b;
    open_pair(&a, &b);
    a.ch->t.tx.n = UINT64_MAX - 2; /* two nonces left */
    uint8_t *m = pattern_bytes(3 * CVG__CHANNEL_FRAGMENT_MAX, 1);
    cr_expect_eq(cvg__channel_send(a.ch, m, 3 * CVG__CHANNEL_FRAGMENT_MAX),
                 CVG_ELIMIT, "three frames, two nonces");
    expect_dead(&a, CVG_ELIMIT);
    peer_end(&a);
    peer_end(&b);

    open_pair(&a, &b);
    a.ch->t.tx.n = UINT64_MAX - 2;
    b.ch->t.rx.n = UINT64_MAX - 2;
    send_ok(&a, m, 2 * CVG__CHANNEL_FRAGMENT_MAX); /* the last two */
    cr_expect_eq(a.ch->t.tx.n, UINT64_MAX);
    size_t len;
    uint8_t *out = take(&a, &len);
    cr_assert_eq(feed_all(&b, out, len), CVG_OK, "2^64-2 is still usable");
    cr_expect_eq(b.n, 1);
    free(out);
    cr_expect_eq(cvg__channel_close(a.ch), CVG_ELIMIT);
    free(m);
    peer_end(&a);
    peer_end(&b);
}

Test(channel, out_of_memory)
{
    peer a, b;
    open_pair(&a, &b);
    /* A send that cannot get its room leaves the channel as it was. */
    uint8_t *m = pattern_bytes(1u << 20, 3);
    cvg__alloc_fail_after(1);
    cr_expect_eq(cvg__channel_send(a.ch, m, 1u << 20), CVG_ENOMEM);
    cvg__alloc_fail_after(0);
    cr_expect_eq(cvg__channel_state_of(a.ch), CVG__CHANNEL_OPEN);
    send_ok(&a, m, 1u << 20);
    /* A receiver that cannot grow its reassembly buffer dies. */
    size_t len;
    uint8_t *out = take(&a, &len);
    cvg__alloc_fail_after(1);
    cr_expect_eq(feed_all(&b, out, len), CVG_ENOMEM);
    cvg__alloc_fail_after(0);
    expect_dead(&b, CVG_ENOMEM);
    free(out);
    free(m);
    peer_end(&a);
    peer_end(&b);
}

Test(channel, destroy_leaves_zeros)
{
    peer a, b;
    uint64_t rng = 29;
    open_pair(&a, &b);
    send_ok(&a, (const uint8_t *)"secret", 6);
    cr_assert_eq(pump(&a, &b, &rng, 0), CVG_OK);
    cr_assert(!all_zero(a.ch->t.tx.k, 32) && !all_zero(b.ch->t.rx.k, 32));
    cr_assert(all_zero(&a.ch->hs, sizeof a.ch->hs),
              "the handshake state is wiped once split");
    cvg__channel *ch = a.ch;
    cvg__channel_destroy(ch);
    cr_expect(all_zero(ch, sizeof *ch), "every byte of the channel");
    cvg__channel_destroy(ch); /* twice is harmless */
    cvg__channel_destroy(NULL);
    a.ch = calloc(1, sizeof *a.ch);
    peer_end(&a);
    peer_end(&b);
}
