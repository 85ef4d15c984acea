/*
 * The secure channel of channel.h: a Noise XX handshake, then framed,
 * fragmented application messages, all sans-IO.
 *
 * Input is a small state machine over frames: two header bytes give the
 * length, checked at once (a handshake frame over its longest possible
 * size, or a transport frame too short for tag and flag, is refused before
 * its body arrives); the body is read where it lies in the caller's bytes
 * when it is whole there, else gathered in a frame buffer (64 KiB, taken
 * for that frame and freed after it, so an idle channel holds a few KiB),
 * so feeding one byte at a time costs a copy and nothing else. Handshake
 * frames go to cvg__noise_read() and answer with the next handshake
 * message; transport frames are decrypted straight into the reassembly
 * buffer, after the message's part so far, and the flag byte at their end
 * says whether the message is complete. The size a message would reach is
 * checked against the cap from the frame's length, before decrypting, so
 * a peer cannot make us hold more than the cap plus one frame.
 *
 * A BUSY answer (channel.h) is the one frame shorter than any Noise
 * message that is taken: only by an initiator awaiting message 1, only
 * of exactly its length, checked at the header like the others; its
 * magic is checked once its body is in (another is a damaged message 1).
 *
 * Output is one buffer of whole frames. A send reserves the room for all
 * its frames first, so it queues the whole message or nothing, and
 * encrypts each fragment in place (libsodium's AEAD allows it; its own
 * tests encrypt in place).
 *
 * What is wiped: the handshake state as soon as it is split (noise.c), the
 * transport keys and the handshake hash on failure and at destroy, and the
 * reassembly buffer (plaintext) before it is freed, grown or shrunk.
 */
#include "channel.h"

#include <sodium.h>

#define TAGLEN CVG__NOISE_TAG_BYTES

/* The last byte of a transport plaintext. */
enum { FLAG_MORE = 0, FLAG_END = 1, FLAG_CLOSE = 2 };

/* ---- Buffers ------------------------------------------------------------- */

/* A buffer larger than this is freed once its content is handed out if
 * that content used less than a quarter of it: one 16 MiB message does
 * not stay in memory for the session, and a run of large messages does
 * not pay for fresh pages each time (that made 1 MiB messages 3.5 times
 * slower per byte than 64 KiB ones). */
#define KEEP_MAX ((size_t)1 << 20)

static bool
oversized(const cvg__buf *b)
{
    return b->cap > KEEP_MAX && b->len < b->cap / 4;
}

static void
msg_free(cvg__buf *b)
{
    if (b->p != NULL) {
        sodium_memzero(b->p, b->cap);
        cvg__free(b->p);
    }
    memset(b, 0, sizeof *b);
}

/* Room for @p extra more bytes, growing by doubling but never past
 * @p limit unless asked to. Not cvg__buf_reserve(): realloc would leave
 * copies of the plaintext behind in freed memory. */
static int
msg_reserve(cvg__buf *b, size_t extra, size_t limit)
{
    if (extra <= b->cap - b->len) {
        return CVG_OK;
    }
    size_t cap = CVG__MAX(b->cap * 2, (size_t)4096);
    cap = CVG__MAX(CVG__MIN(cap, limit), b->len + extra);
    uint8_t *p = cvg__alloc(cap);
    if (p == NULL) {
        return CVG_ENOMEM;
    }
    if (b->len > 0) {
        memcpy(p, b->p, b->len);
    }
    size_t len = b->len;
    msg_free(b);
    b->p = p;
    b->len = len;
    b->cap = cap;
    return CVG_OK;
}

/* The message the last feed handed out is no longer needed at the next
 * feed; a send may still be using it (an echo), so only feed calls this. */
static void
release_msg(cvg__channel *ch)
{
    if (ch->delivered) {
        ch->delivered = false;
        if (oversized(&ch->msg)) {
            msg_free(&ch->msg);
        }
        ch->msg.len = 0;
    }
}

/* The bytes the last output handed out count as sent once the caller
 * calls again to produce or take more. */
static void
release_out(cvg__channel *ch)
{
    if (ch->out_taken) {
        ch->out_taken = false;
        if (oversized(&ch->out)) {
            cvg__buf_free(&ch->out);
        }
        ch->out.len = 0;
    }
}

/* ---- Life and death ---------------------------------------------------- */

static int
fail(cvg__channel *ch, int rc)
{
    cvg__noise_hs_wipe(&ch->hs);
    cvg__noise_transport_wipe(&ch->t);
    msg_free(&ch->msg);
    cvg__buf_free(&ch->out);
    cvg__free(ch->frame);
    ch->frame = NULL;
    ch->delivered = ch->out_taken = false;
    ch->state = CVG__CHANNEL_FAILED;
    ch->error = rc;
    return rc;
}

/* The code for a call on a dead channel. */
static int
dead(const cvg__channel *ch)
{
    return ch->error != CVG_OK ? ch->error : CVG_EMISUSE;
}

void
cvg__channel_destroy(cvg__channel *ch)
{
    if (ch == NULL) {
        return;
    }
    msg_free(&ch->msg);
    cvg__buf_free(&ch->out);
    cvg__free(ch->frame);
    sodium_memzero(ch, sizeof *ch);
}

/* ---- Handshake --------------------------------------------------------- */

/* Which side writes XX message @p i: the initiator the even ones. */
static bool
writes(const cvg__channel *ch, size_t i)
{
    return (i % 2 == 0) == ch->initiator;
}

static void
put_length(uint8_t *p, size_t len)
{
    p[0] = (uint8_t)(len >> 8);
    p[1] = (uint8_t)len;
}

static int
write_handshake(cvg__channel *ch)
{
    size_t i = ch->hs_msg, n;
    int rc = cvg__buf_reserve(&ch->out, 2 + CVG__CHANNEL_HS_FRAME_MAX);
    if (rc != CVG_OK) {
        return rc;
    }
    uint8_t *f = ch->out.p + ch->out.len;
    rc = cvg__noise_write(&ch->hs, ch->payload[i], ch->payload_len[i], f + 2,
                          CVG__CHANNEL_HS_FRAME_MAX, &n);
    if (rc != CVG_OK) {
        return rc;
    }
    put_length(f, n);
    ch->out.len += 2 + n;
    ch->hs_msg++;
    return CVG_OK;
}

/* The peer's static key, once known, must be the pinned one. Checked as
 * soon as the message carrying it is read: the initiator then never sends
 * its own (message 2) to the wrong responder. */
static int
check_pin(const cvg__channel *ch)
{
    const uint8_t *rs = cvg__noise_remote_static(&ch->hs);
    if (ch->has_pin && rs != NULL &&
        sodium_memcmp(rs, ch->pin, sizeof ch->pin) != 0) {
        return CVG_EKEY;
    }
    return CVG_OK;
}

/* Write our next message if it is our turn; split when all are done. */
static int
advance_handshake(cvg__channel *ch)
{
    int rc = CVG_OK;
    if (cvg__noise_turn_of(&ch->hs) == CVG__NOISE_WRITE) {
        rc = write_handshake(ch);
    }
    if (rc == CVG_OK && cvg__noise_turn_of(&ch->hs) == CVG__NOISE_SPLIT) {
        rc = cvg__noise_split(&ch->hs, &ch->t);
        if (rc == CVG_OK) {
            ch->state = CVG__CHANNEL_OPEN;
        }
    }
    return rc;
}

static int
read_handshake(cvg__channel *ch, const uint8_t *body, size_t len)
{
    size_t i = ch->hs_msg, got;
    int rc = cvg__noise_read(&ch->hs, body, len, ch->payload[i],
                             CVG__CHANNEL_PAYLOAD_MAX, &got);
    if (rc == CVG_ETOOBIG) {
        rc = CVG_EPROTO; /* a payload over the channel's limit */
    }
    if (rc != CVG_OK) {
        return rc;
    }
    ch->payload_len[i] = got;
    ch->hs_msg++;
    rc = check_pin(ch);
    return rc != CVG_OK ? rc : advance_handshake(ch);
}

/* ---- Init ------------------------------------------------------------------ */

static int
check_options(const cvg__channel_options *o)
{
    if (o->static_key == NULL || o->max_message > CVG__CHANNEL_MESSAGE_LIMIT) {
        return CVG_EINVAL;
    }
    for (size_t i = 0; i < CVG__CHANNEL_HS_MSGS; i++) {
        const cvg_bytes *p = &o->payload[i];
        if ((p->len > 0 && p->data == NULL) ||
            (p->len > 0 && (i % 2 == 0) != o->initiator)) {
            return CVG_EINVAL;
        }
        if (p->len > CVG__CHANNEL_PAYLOAD_MAX) {
            return CVG_ETOOBIG;
        }
    }
    return CVG_OK;
}

static void
copy_options(cvg__channel *ch, const cvg__channel_options *o)
{
    ch->initiator = o->initiator;
    ch->max_message =
        o->max_message ? o->max_message : (size_t)CVG__CHANNEL_MESSAGE_MAX;
    if (o->pinned != NULL) {
        memcpy(ch->pin, o->pinned, sizeof ch->pin);
        ch->has_pin = true;
    }
    for (size_t i = 0; i < CVG__CHANNEL_HS_MSGS; i++) {
        if (o->payload[i].len > 0) {
            memcpy(ch->payload[i], o->payload[i].data, o->payload[i].len);
        }
        ch->payload_len[i] = o->payload[i].len;
    }
}

int
cvg__channel_init(cvg__channel *ch, const cvg__channel_options *o)
{
    if (ch == NULL) {
        return CVG_EINVAL;
    }
    memset(ch, 0, sizeof *ch);
    ch->error = CVG_EINVAL;
    if (o == NULL) {
        return CVG_EINVAL;
    }
    int rc = check_options(o);
    if (rc != CVG_OK) {
        return fail(ch, rc);
    }
    copy_options(ch, o);
    static const char prologue[] = CVG__CHANNEL_PROLOGUE;
    cvg__noise_config cfg = {
        .prologue = (const uint8_t *)prologue,
        .prologue_len = sizeof prologue - 1,
        .s = o->static_key,
    };
    rc = cvg__noise_init(&ch->hs, CVG__CHANNEL_PROTOCOL, o->initiator, &cfg);
    if (rc == CVG_OK && o->ephemeral != NULL) {
        rc = cvg__noise_fix_ephemeral(&ch->hs, o->ephemeral);
    }
    if (rc != CVG_OK) {
        return fail(ch, rc);
    }
    ch->state = CVG__CHANNEL_WAITING;
    ch->error = CVG_OK;
    rc = advance_handshake(ch); /* the initiator's first message */
    return rc != CVG_OK ? fail(ch, rc) : CVG_OK;
}

/* ---- Transport in -------------------------------------------------------- */

static int
read_transport(cvg__channel *ch, const uint8_t *body, size_t len,
               bool *delivered)
{
    cvg__buf *m = &ch->msg;
    size_t frag = len - TAGLEN - 1, n;
    if (frag > ch->max_message - m->len) {
        return CVG_ETOOBIG;
    }
    /* The flag byte lands after the fragment: the cap plus one. */
    int rc = msg_reserve(m, frag + 1, ch->max_message + 1);
    if (rc != CVG_OK) {
        return rc;
    }
    rc = cvg__noise_decrypt(&ch->t.rx, body, len, m->p + m->len, frag + 1, &n);
    if (rc != CVG_OK) {
        return rc;
    }
    ch->frames_in++;
    uint8_t flag = m->p[m->len + frag];
    m->p[m->len + frag] = 0;
    switch (flag) {
    case FLAG_MORE:
        m->len += frag;
        return CVG_OK;
    case FLAG_END:
        m->len += frag;
        *delivered = true;
        return CVG_OK;
    case FLAG_CLOSE:
        /* A close carries nothing and ends no message half-way. */
        if (frag != 0 || m->len != 0) {
            return CVG_EPROTO;
        }
        ch->peer_closed = true;
        return CVG_OK;
    }
    return CVG_EPROTO;
}

/* ---- BUSY ------------------------------------------------------------------ */

/* The one point where a BUSY answer may come: instead of message 1. */
static bool
busy_possible(const cvg__channel *ch)
{
    return ch->initiator && ch->state == CVG__CHANNEL_WAITING &&
           ch->hs_msg == 1;
}

void
cvg__channel_busy_frame(uint8_t out[CVG__CHANNEL_BUSY_FRAME],
                        uint32_t retry_after_ms)
{
    put_length(out, CVG__CHANNEL_BUSY_BODY);
    memcpy(out + 2, CVG__CHANNEL_BUSY_MAGIC, 4);
    out[6] = (uint8_t)(retry_after_ms >> 24);
    out[7] = (uint8_t)(retry_after_ms >> 16);
    out[8] = (uint8_t)(retry_after_ms >> 8);
    out[9] = (uint8_t)retry_after_ms;
}

static int
read_busy(cvg__channel *ch, const uint8_t *body)
{
    if (memcmp(body, CVG__CHANNEL_BUSY_MAGIC, 4) != 0) {
        return CVG_ECORRUPT; /* too short to be message 1 */
    }
    uint32_t ms = (uint32_t)body[4] << 24 | (uint32_t)body[5] << 16 |
                  (uint32_t)body[6] << 8 | (uint32_t)body[7];
    /* Unauthenticated: a forged one may delay us this long, no more. */
    ch->retry_after_ms =
        CVG__MAX(CVG__MIN(ms, CVG__CHANNEL_BUSY_RETRY_MAX), 1u);
    return CVG_EAGAIN;
}

uint32_t
cvg__channel_retry_after(const cvg__channel *ch)
{
    return ch != NULL && ch->state == CVG__CHANNEL_FAILED &&
                   ch->error == CVG_EAGAIN
               ? ch->retry_after_ms
               : 0;
}

/* ---- Frames in ------------------------------------------------------------- */

/* A frame's length, as soon as its header is in. */
static int
check_length(const cvg__channel *ch, size_t len)
{
    if (len == CVG__CHANNEL_BUSY_BODY && busy_possible(ch)) {
        return CVG_OK;
    }
    if (len < TAGLEN + 1) {
        return CVG_ECORRUPT; /* no Noise message of ours is this short */
    }
    if (ch->state == CVG__CHANNEL_WAITING && len > CVG__CHANNEL_HS_FRAME_MAX) {
        return CVG_EPROTO;
    }
    return CVG_OK;
}

static int
end_frame(cvg__channel *ch, const uint8_t *body, size_t len, bool *delivered)
{
    ch->head_len = 0;
    ch->frame_have = 0;
    if (len == CVG__CHANNEL_BUSY_BODY && busy_possible(ch)) {
        return read_busy(ch, body);
    }
    if (ch->state == CVG__CHANNEL_WAITING) {
        return read_handshake(ch, body, len);
    }
    return read_transport(ch, body, len, delivered);
}

/* Take what @p in offers of the current frame: header bytes, or body
 * bytes; a whole frame is processed. */
static int
feed_step(cvg__channel *ch, const uint8_t *in, size_t len, size_t *used,
          bool *delivered)
{
    if (ch->peer_closed) {
        return CVG_EPROTO; /* nothing may follow a close */
    }
    if (ch->head_len < 2) {
        size_t n = CVG__MIN(2 - ch->head_len, len);
        memcpy(ch->head + ch->head_len, in, n);
        ch->head_len += n;
        *used = n;
        if (ch->head_len < 2) {
            return CVG_OK;
        }
        ch->frame_len = (size_t)ch->head[0] << 8 | ch->head[1];
        return check_length(ch, ch->frame_len);
    }
    size_t need = ch->frame_len - ch->frame_have;
    if (ch->frame_have == 0 && len >= need) {
        *used = need; /* whole in the caller's bytes: read it there */
        return end_frame(ch, in, need, delivered);
    }
    if (ch->frame == NULL) {
        ch->frame = cvg__alloc(CVG__NOISE_MSG_MAX);
        if (ch->frame == NULL) {
            return CVG_ENOMEM;
        }
    }
    size_t n = CVG__MIN(need, len);
    memcpy(ch->frame + ch->frame_have, in, n);
    ch->frame_have += n;
    *used = n;
    if (ch->frame_have < ch->frame_len) {
        return CVG_OK;
    }
    int rc = end_frame(ch, ch->frame, ch->frame_len, delivered);
    /* Freed with each frame it gathered, so an idle channel holds none. */
    cvg__free(ch->frame);
    ch->frame = NULL;
    return rc;
}

int
cvg__channel_feed(cvg__channel *ch, const void *in, size_t len, size_t *used,
                  cvg_bytes *msg)
{
    if (ch == NULL || used == NULL || msg == NULL || (in == NULL && len > 0)) {
        return CVG_EINVAL;
    }
    *used = 0;
    msg->data = NULL;
    msg->len = 0;
    if (ch->state == CVG__CHANNEL_FAILED) {
        return dead(ch);
    }
    release_msg(ch);
    release_out(ch);
    const uint8_t *p = in;
    size_t pos = 0;
    bool delivered = false;
    while (pos < len && !delivered) {
        size_t n = 0;
        int rc = feed_step(ch, p + pos, len - pos, &n, &delivered);
        pos += n;
        if (rc != CVG_OK) {
            *used = pos;
            return fail(ch, rc);
        }
    }
    *used = pos;
    if (!delivered) {
        return CVG_DONE;
    }
    ch->delivered = true;
    msg->data = ch->msg.p;
    msg->len = ch->msg.len;
    return CVG_OK;
}

/* ---- Transport out ------------------------------------------------------- */

int
cvg__channel_output(cvg__channel *ch, cvg_bytes *out)
{
    if (ch == NULL || out == NULL) {
        return CVG_EINVAL;
    }
    out->data = NULL;
    out->len = 0;
    if (ch->state == CVG__CHANNEL_FAILED) {
        return dead(ch);
    }
    release_out(ch);
    if (ch->out.len == 0) {
        return CVG_DONE;
    }
    ch->out_taken = true;
    out->data = ch->out.p;
    out->len = ch->out.len;
    return CVG_OK;
}

/* One transport frame, in room reserved by the caller: the fragment and
 * its flag are copied where the ciphertext goes and encrypted in place. */
static int
put_frame(cvg__channel *ch, const uint8_t *frag, size_t n, uint8_t flag)
{
    uint8_t *f = ch->out.p + ch->out.len;
    size_t body = n + 1 + TAGLEN, clen;
    put_length(f, body);
    if (n > 0) {
        memcpy(f + 2, frag, n);
    }
    f[2 + n] = flag;
    int rc = cvg__noise_encrypt(&ch->t.tx, f + 2, n + 1, f + 2, body, &clen);
    if (rc != CVG_OK) {
        return rc;
    }
    ch->out.len += 2 + body;
    return CVG_OK;
}

static int
check_sendable(const cvg__channel *ch)
{
    if (ch->state == CVG__CHANNEL_FAILED) {
        return dead(ch);
    }
    if (ch->state != CVG__CHANNEL_OPEN || ch->sent_close) {
        return CVG_EMISUSE;
    }
    return CVG_OK;
}

/* Room for @p frames frames holding @p len bytes in all, and nonces for
 * them: n .. n + frames - 1 must stay below 2^64-1, which is reserved. */
static int
reserve_frames(cvg__channel *ch, size_t frames, size_t len)
{
    if ((uint64_t)frames > UINT64_MAX - ch->t.tx.n) {
        return fail(ch, CVG_ELIMIT);
    }
    return cvg__buf_reserve(&ch->out, len + frames * (2 + 1 + TAGLEN));
}

int
cvg__channel_send(cvg__channel *ch, const void *msg, size_t len)
{
    if (ch == NULL || (msg == NULL && len > 0)) {
        return CVG_EINVAL;
    }
    int rc = check_sendable(ch);
    if (rc != CVG_OK) {
        return rc;
    }
    if (len > ch->max_message) {
        return CVG_ETOOBIG;
    }
    release_out(ch);
    size_t per = CVG__CHANNEL_FRAGMENT_MAX;
    size_t frames = len == 0 ? 1 : (len + per - 1) / per;
    rc = reserve_frames(ch, frames, len);
    if (rc != CVG_OK) {
        return rc;
    }
    const uint8_t *p = msg;
    for (size_t i = 0; i < frames; i++) {
        size_t n = i + 1 < frames ? per : len - i * per;
        rc = put_frame(ch, p + i * per, n,
                       i + 1 < frames ? FLAG_MORE : FLAG_END);
        if (rc != CVG_OK) {
            return fail(ch, rc);
        }
    }
    return CVG_OK;
}

int
cvg__channel_close(cvg__channel *ch)
{
    if (ch == NULL) {
        return CVG_EINVAL;
    }
    int rc = check_sendable(ch);
    if (rc != CVG_OK) {
        return rc;
    }
    release_out(ch);
    rc = reserve_frames(ch, 1, 0);
    if (rc != CVG_OK) {
        return rc;
    }
    rc = put_frame(ch, NULL, 0, FLAG_CLOSE);
    if (rc != CVG_OK) {
        return fail(ch, rc);
    }
    ch->sent_close = true;
    return CVG_OK;
}

/* ---- Queries ------------------------------------------------------------- */

cvg__channel_state
cvg__channel_state_of(const cvg__channel *ch)
{
    return ch == NULL ? CVG__CHANNEL_FAILED : ch->state;
}

int
cvg__channel_error(const cvg__channel *ch)
{
    return ch == NULL ? CVG_EINVAL : ch->error;
}

bool
cvg__channel_peer_closed(const cvg__channel *ch)
{
    return ch != NULL && ch->state == CVG__CHANNEL_OPEN && ch->peer_closed;
}

int
cvg__channel_handshake_hash(const cvg__channel *ch, uint8_t *out)
{
    if (ch == NULL || out == NULL) {
        return CVG_EINVAL;
    }
    if (ch->state != CVG__CHANNEL_OPEN) {
        return CVG_EMISUSE;
    }
    memcpy(out, ch->t.hash, sizeof ch->t.hash);
    return CVG_OK;
}

int
cvg__channel_remote_static(const cvg__channel *ch, uint8_t *out)
{
    if (ch == NULL || out == NULL) {
        return CVG_EINVAL;
    }
    if (ch->state != CVG__CHANNEL_OPEN || !ch->t.has_rs) {
        return CVG_EMISUSE;
    }
    memcpy(out, ch->t.rs, sizeof ch->t.rs);
    return CVG_OK;
}

int
cvg__channel_peer_payload(const cvg__channel *ch, size_t i, cvg_bytes *out)
{
    if (ch == NULL || out == NULL || i >= CVG__CHANNEL_HS_MSGS) {
        return CVG_EINVAL;
    }
    out->data = NULL;
    out->len = 0;
    if (writes(ch, i) || i >= ch->hs_msg) {
        return CVG_ENOTFOUND;
    }
    out->data = ch->payload[i];
    out->len = ch->payload_len[i];
    return CVG_OK;
}
