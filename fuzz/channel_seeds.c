/* Records the seed corpus of fuzz_channel: real conversations between an
 * initiator and a responder made with the target's fixed options
 * (fuzz_channel_options()), each side's incoming stream written as an
 * input of the target in the other role, whole, byte by byte or in
 * chunks, pinned or not. Every seed is then run through the target and
 * must reach the state and deliver the messages it was recorded with, so
 * a seed gone stale (other keys, payloads, framing) is reported here.
 *
 * Usage: fuzz_channel_seeds DIR   (writes DIR/<name> files)
 * Rerun it, and commit the result, when the channel's wire format or the
 * target's options change. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_channel.h"

/* A growing byte string. */
typedef struct bytes {
    uint8_t *p;
    size_t len;
} bytes;

static void
die(const char *what)
{
    fprintf(stderr, "fuzz_channel_seeds: %s\n", what);
    exit(1);
}

static void
put(bytes *b, const void *data, size_t len)
{
    b->p = realloc(b->p, b->len + len + 1);
    if (b->p == NULL) {
        die("out of memory");
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
}

/* Move @p from's output to @p to, recording it in @p rec; what @p to
 * delivers is dropped (the recording is of the wire). */
static bool
move(cvg__channel *from, cvg__channel *to, bytes *rec)
{
    cvg_bytes out, m;
    if (cvg__channel_output(from, &out) != CVG_OK) {
        return false;
    }
    put(rec, out.data, out.len);
    size_t off = 0, used;
    while (off < out.len) {
        int rc =
            cvg__channel_feed(to, out.data + off, out.len - off, &used, &m);
        if (rc < 0) {
            die("a recorded conversation failed");
        }
        off += used;
    }
    return true;
}

static void
pump(cvg__channel *i, cvg__channel *r, bytes *to_i, bytes *to_r)
{
    while (move(i, r, to_r) | move(r, i, to_i)) {
    }
}

static void
send_fill(cvg__channel *ch, size_t len, uint8_t fill)
{
    uint8_t *m = malloc(len + 1);
    memset(m, fill, len);
    if (cvg__channel_send(ch, m, len) != CVG_OK) {
        die("send");
    }
    free(m);
}

static cvg__channel ini, resp;

/* One conversation: the handshake, then @p n messages each way of the
 * sizes given (the initiator's first), then a close from both. The first
 * handshake messages alone go to *first_i and *first_r. */
static void
record(const size_t *sizes_i, const size_t *sizes_r, size_t n, bytes *to_i,
       bytes *to_r, bytes *first_r, bytes *first_i)
{
    cvg__channel_options o;
    fuzz_channel_options(&o, true, false);
    if (cvg__channel_init(&ini, &o) != CVG_OK) {
        die("init");
    }
    fuzz_channel_options(&o, false, false);
    if (cvg__channel_init(&resp, &o) != CVG_OK) {
        die("init");
    }
    move(&ini, &resp, to_r); /* message 0 */
    put(first_r, to_r->p, to_r->len);
    move(&resp, &ini, to_i); /* message 1 */
    put(first_i, to_i->p, to_i->len);
    pump(&ini, &resp, to_i, to_r);
    if (cvg__channel_state_of(&ini) != CVG__CHANNEL_OPEN ||
        cvg__channel_state_of(&resp) != CVG__CHANNEL_OPEN) {
        die("the handshake did not finish");
    }
    for (size_t k = 0; k < n; k++) {
        send_fill(&ini, sizes_i[k], (uint8_t)('a' + k));
        send_fill(&resp, sizes_r[k], (uint8_t)('A' + k));
        pump(&ini, &resp, to_i, to_r);
    }
    if (cvg__channel_close(&ini) != CVG_OK ||
        cvg__channel_close(&resp) != CVG_OK) {
        die("close");
    }
    pump(&ini, &resp, to_i, to_r);
    cvg__channel_destroy(&ini);
    cvg__channel_destroy(&resp);
}

/* Write seed @p name (mode byte, then @p stream) and check that the target
 * reaches @p want_state having delivered @p want messages. */
static void
seed(const char *dir, const char *name, uint8_t mode, const bytes *stream,
     size_t want, cvg__channel_state want_state)
{
    bytes in = {0};
    put(&in, &mode, 1);
    put(&in, stream->p, stream->len);
    size_t delivered;
    cvg__channel_state state;
    fuzz_channel_run(in.p, in.len, &delivered, &state);
    if (delivered != want || state != want_state) {
        fprintf(stderr, "%s: %zu messages, state %d\n", name, delivered,
                (int)state);
        die("a seed does not replay");
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(in.p, 1, in.len, f) != in.len || fclose(f) != 0) {
        die(path);
    }
    free(in.p);
}

static uint8_t
mode_of(bool initiator, bool pin, unsigned chunk)
{
    return (uint8_t)((initiator ? FUZZ_CHANNEL_INITIATOR : 0) |
                     (pin ? FUZZ_CHANNEL_PIN : 0) |
                     chunk << FUZZ_CHANNEL_CHUNK_SHIFT);
}

int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    const cvg__channel_state OPEN = CVG__CHANNEL_OPEN;
    const cvg__channel_state WAITING = CVG__CHANNEL_WAITING;

    /* Small messages, an empty one among them. */
    static const size_t small_i[] = {4, 0, 300}, small_r[] = {4, 17, 0};
    bytes to_i = {0}, to_r = {0}, first_r = {0}, first_i = {0};
    record(small_i, small_r, 3, &to_i, &to_r, &first_r, &first_i);
    seed(dir, "resp_whole", mode_of(false, false, 0), &to_r, 3, OPEN);
    seed(dir, "resp_bytewise", mode_of(false, false, 1), &to_r, 3, OPEN);
    seed(dir, "resp_pinned_chunks13", mode_of(false, true, 13), &to_r, 3, OPEN);
    seed(dir, "resp_first_message", mode_of(false, false, 0), &first_r, 0,
         WAITING);
    seed(dir, "init_whole", mode_of(true, false, 0), &to_i, 3, OPEN);
    seed(dir, "init_bytewise", mode_of(true, false, 1), &to_i, 3, OPEN);
    seed(dir, "init_pinned_chunks7", mode_of(true, true, 7), &to_i, 3, OPEN);
    seed(dir, "init_handshake_only", mode_of(true, false, 0), &first_i, 0,
         OPEN);

    /* A message of two frames each way. */
    static const size_t big[] = {70000};
    bytes big_i = {0}, big_r = {0}, f_r = {0}, f_i = {0};
    record(big, big, 1, &big_i, &big_r, &f_r, &f_i);
    seed(dir, "init_two_frames", mode_of(true, false, 0), &big_i, 1, OPEN);
    seed(dir, "resp_two_frames_chunks63", mode_of(false, false, 63), &big_r, 1,
         OPEN);
    /* A server's BUSY answer in place of message 1: the initiator ends
     * with CVG_EAGAIN; a responder takes it as a bad frame. */
    uint8_t busy_frame[CVG__CHANNEL_BUSY_FRAME];
    cvg__channel_busy_frame(busy_frame, 5000);
    bytes busy = {0};
    put(&busy, busy_frame, sizeof busy_frame);
    const cvg__channel_state FAILED = CVG__CHANNEL_FAILED;
    seed(dir, "init_busy", mode_of(true, false, 0), &busy, 0, FAILED);
    seed(dir, "init_busy_bytewise", mode_of(true, false, 1), &busy, 0, FAILED);
    seed(dir, "resp_busy", mode_of(false, false, 0), &busy, 0, FAILED);
    free(busy.p);
    free(to_i.p);
    free(to_r.p);
    free(first_r.p);
    free(first_i.p);
    free(big_i.p);
    free(big_r.p);
    free(f_r.p);
    free(f_i.p);
    printf("wrote 13 seeds to %s\n", dir);
    return 0;
}
