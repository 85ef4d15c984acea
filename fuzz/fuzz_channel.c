/* libFuzzer target: any bytes as what the peer of a secure channel sends.
 * The first byte picks the channel under test and the cutting of the
 * rest (fuzz_channel.h): a responder fed the bytes as if from an
 * initiator, or an initiator, its first message sent, fed them as if from
 * a responder; pinned or not; fed whole or in chunks of 1 to 63 bytes.
 * Keys, the ephemeral ones too, are fixed, so the seed corpus' real
 * transcripts (recorded by fuzz_channel_seeds) get through the handshake
 * and deliver messages, and their mutations reach the transport code.
 * Each message delivered is sent back, the channel's output is taken
 * after each feed, and an open channel is closed at the end.
 *
 * Checked (abort): a feed consumes at most what it is given, and all of
 * it unless a message completes; a message is within the cap; an error
 * leaves the channel FAILED with that code, answering it to every later
 * call with no output and no key left. */
#include "fuzz_channel.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_channel: %s\n", what);
        abort();
    }
}

/* The keys: arbitrary constants; what matters is that they never change
 * (the seeds were recorded with them). */
static void
fixed_key(uint8_t *k, uint8_t v)
{
    memset(k, v, CVG__NOISE_KEY_BYTES);
    k[0] ^= 0x5a;
}

void
fuzz_channel_options(cvg__channel_options *o, bool initiator, bool pin)
{
    static uint8_t s_i[32], s_r[32], e_i[32], e_r[32], pub_i[32], pub_r[32];
    static bool made;
    if (!made) {
        if (sodium_init() < 0) {
            abort();
        }
        fixed_key(s_i, 0x11);
        fixed_key(s_r, 0x22);
        fixed_key(e_i, 0x33);
        fixed_key(e_r, 0x44);
        crypto_scalarmult_base(pub_i, s_i);
        crypto_scalarmult_base(pub_r, s_r);
        made = true;
    }
    memset(o, 0, sizeof *o);
    o->initiator = initiator;
    o->static_key = initiator ? s_i : s_r;
    o->ephemeral = initiator ? e_i : e_r;
    o->pinned = pin ? (initiator ? pub_r : pub_i) : NULL;
    o->max_message = FUZZ_CHANNEL_CAP;
    if (initiator) {
        o->payload[0] = (cvg_bytes){(const uint8_t *)"hello", 5};
        o->payload[2] = (cvg_bytes){(const uint8_t *)"initiator", 9};
    } else {
        o->payload[1] = (cvg_bytes){(const uint8_t *)"responder", 9};
    }
}

/* A dead channel keeps its code and holds nothing. */
static void
check_dead(cvg__channel *ch, int rc)
{
    cvg_bytes v;
    size_t used;
    uint8_t byte = 0;
    static const uint8_t zero[sizeof(cvg__noise_transport)];
    check(cvg__channel_state_of(ch) == CVG__CHANNEL_FAILED, "not failed");
    check(cvg__channel_error(ch) == rc, "error changed");
    check(cvg__channel_feed(ch, &byte, 1, &used, &v) == rc, "feed after");
    check(cvg__channel_output(ch, &v) == rc && v.len == 0, "output after");
    check(cvg__channel_send(ch, "x", 1) == rc, "send after");
    check(memcmp(&ch->t, zero, sizeof zero) == 0, "keys left");
}

static void
drain(cvg__channel *ch)
{
    cvg_bytes out;
    int rc = cvg__channel_output(ch, &out);
    check(rc == CVG_OK || rc == CVG_DONE || rc < 0, "output code");
    check(rc != CVG_OK || out.len > 0, "empty output");
}

/* Feed one chunk; false once the channel is dead. */
static bool
feed_chunk(cvg__channel *ch, const uint8_t *p, size_t len, size_t *delivered)
{
    size_t off = 0;
    while (off < len) {
        size_t used = SIZE_MAX;
        cvg_bytes m;
        int rc = cvg__channel_feed(ch, p + off, len - off, &used, &m);
        check(used <= len - off, "used too much");
        off += used;
        if (rc < 0) {
            check_dead(ch, rc);
            return false;
        }
        if (rc == CVG_DONE) {
            check(off == len && m.len == 0, "done early");
        } else {
            check(rc == CVG_OK && used > 0, "feed code");
            check(m.len <= FUZZ_CHANNEL_CAP, "over the cap");
            (*delivered)++;
            rc = cvg__channel_send(ch, m.data, m.len);
            check(rc == CVG_OK || rc == CVG_EMISUSE, "echo");
        }
        drain(ch);
    }
    return true;
}

void
fuzz_channel_run(const uint8_t *data, size_t size, size_t *delivered,
                 cvg__channel_state *state)
{
    static cvg__channel ch; /* 70 KiB: not on the stack */
    cvg__channel_options o;
    *delivered = 0;
    *state = CVG__CHANNEL_FAILED;
    if (size == 0) {
        return;
    }
    uint8_t mode = data[0];
    size_t chunk = mode >> FUZZ_CHANNEL_CHUNK_SHIFT;
    data++;
    size--;
    fuzz_channel_options(&o, (mode & FUZZ_CHANNEL_INITIATOR) != 0,
                         (mode & FUZZ_CHANNEL_PIN) != 0);
    check(cvg__channel_init(&ch, &o) == CVG_OK, "init");
    drain(&ch); /* the initiator's first message */
    size_t pos = 0;
    while (pos < size) {
        size_t n = chunk == 0 ? size - pos : CVG__MIN(chunk, size - pos);
        if (!feed_chunk(&ch, data + pos, n, delivered)) {
            break;
        }
        pos += n;
    }
    *state = cvg__channel_state_of(&ch);
    if (*state == CVG__CHANNEL_OPEN && !ch.sent_close) {
        int rc = cvg__channel_close(&ch);
        check(rc == CVG_OK, "close");
        drain(&ch);
    }
    cvg__channel_destroy(&ch);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t delivered;
    cvg__channel_state state;
    fuzz_channel_run(data, size, &delivered, &state);
    return 0;
}
