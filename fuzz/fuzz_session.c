/* libFuzzer target: a sync session fed whatever a hostile or broken peer
 * might send.
 *
 * Input format:
 *   byte 0      session options (session_options_from(): page size,
 *               no_pull, no_serve, page bytes, push)
 *   then        messages, each a 2-byte big-endian length and that many
 *               bytes (a last message cut short is fed as it is). A
 *               message of length 0 closes the session and opens a new
 *               one on the same replica.
 * A session that ended with an error is replaced by a new one before the
 * next message, so one input can drive several sessions in a row.
 *
 * Every input starts from a fresh copy of one replica (session_template.c:
 * ops of every type, of its own and of a third replica) with a fixed id
 * and a fixed clock, so a crash replays from its input alone. Our side's
 * messages are drained after each message fed (the peer would read them)
 * and must decode.
 *
 * Checked, besides no crash, leak or undefined behaviour:
 *   - a message that makes the session fail leaves the replica's state
 *     as it was (unless it committed a page first, which a later step of
 *     the same message may not undo);
 *   - afterwards the replica opens again, every record reads, and its log
 *     reads to the end and matches its version vector (fuzz_digest()).
 *
 * The seed corpus (corpus/session/) holds real sessions recorded by
 * session_seeds.c; rerun it when the template or the protocol changes. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session_template.h"
#include "sync/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static fuzz_snapshot template_local;
static char *template_digest;
static int verbose;

static void
setup(void)
{
    if (template_digest != NULL) {
        return;
    }
    fuzz_init();
    verbose = getenv("CVG_FUZZ_VERBOSE") != NULL;
    session_template_build(&template_local, NULL);
    fuzz_snapshot_put("local", &template_local);
    cvg_replica *r = fuzz_open("local", SESSION_ID_LOCAL);
    template_digest = fuzz_digest(r);
    cvg_replica_close(r);
}

/* Whatever the session says must be a well-formed message. */
static void
drain(cvg_session *s, cvg__msg_scratch *scratch)
{
    cvg_bytes out;
    while (cvg_session_output(s, &out) == CVG_OK) {
        cvg__msg m;
        int rc = cvg__msg_decode(out.data, out.len, &m, scratch);
        if (rc != CVG_OK) {
            fuzz_fail("the session sent a message that does not decode: %s",
                      cvg_errname(rc));
        }
        for (size_t i = 0; i < m.n_blocks; i++) {
            cvg__block_reader rd;
            memset(&rd, 0, sizeof rd);
            cvg__op op;
            rc = cvg__block_open(&rd, m.blocks[i].data, m.blocks[i].len);
            while (rc == CVG_OK && (rc = cvg__block_next(&rd, &op)) == CVG_OK) {
            }
            cvg__block_reader_destroy(&rd);
            if (rc != CVG_DONE) {
                fuzz_fail(
                    "the session sent a block that does not decode: "
                    "%s",
                    cvg_errname(rc));
            }
        }
        if (verbose) {
            fprintf(stderr, "  out: type %d, %zu bytes\n", (int)m.type,
                    out.len);
        }
    }
}

static cvg_session *
session_new(cvg_replica *r, const cvg_session_options *o,
            cvg__msg_scratch *scratch)
{
    cvg_session *s;
    /* The session's challenge from a fixed random stream, as when the
     * seeds were recorded, so the recorded peer's proofs hold. */
    fuzz_ids_from(SESSION_CHALLENGE_SEED);
    int rc = cvg_session_open(r, o, &s);
    if (rc != CVG_OK) {
        fuzz_fail("cannot open a session: %s", cvg_errname(rc));
    }
    drain(s, scratch);
    return s;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    setup();
    fuzz_now_ms = SESSION_NOW_MS;
    fuzz_snapshot_put("local", &template_local);
    cvg_replica *r = fuzz_open("local", SESSION_ID_LOCAL);
    cvg_session_options o;
    session_options_from(data[0], &o);
    cvg__msg_scratch scratch;
    memset(&scratch, 0, sizeof scratch);
    cvg_session *s = session_new(r, &o, &scratch);

    /* The state before the next message: recomputed only after a page
     * was committed, which is rare among fuzzed messages. */
    char *before = strdup(template_digest);
    bool stale = false;
    const uint8_t *p = data + 1, *end = data + size;
    while (end - p >= 2) {
        size_t len = (size_t)p[0] << 8 | p[1];
        p += 2;
        if (len > (size_t)(end - p)) {
            len = (size_t)(end - p);
        }
        const uint8_t *msg = p;
        p += len;
        if (len == 0 || cvg_session_error(s) != CVG_OK) {
            cvg_session_close(s);
            s = session_new(r, &o, &scratch);
            if (len == 0) {
                continue;
            }
        }
        if (stale) {
            free(before);
            before = fuzz_digest(r);
            stale = false;
        }
        cvg_session_stats st0, st1;
        cvg_session_stats_get(s, &st0, sizeof st0);
        int rc = cvg_session_input(s, msg, len);
        cvg_session_stats_get(s, &st1, sizeof st1);
        bool committed = st1.pages_received != st0.pages_received;
        if (verbose) {
            fprintf(stderr, "in: %zu bytes -> %s%s (%s)\n", len,
                    cvg_errname(rc), committed ? ", page committed" : "",
                    cvg_session_done(s) ? "done" : "open");
        }
        if (rc < 0 && !committed) {
            char *after = fuzz_digest(r);
            if (strcmp(before, after) != 0) {
                fuzz_fail(
                    "a failed message (%s) changed the state:\n"
                    "before:\n%s\nafter:\n%s",
                    cvg_errname(rc), before, after);
            }
            free(after);
        }
        stale = stale || committed;
        drain(s, &scratch);
    }
    cvg_session_close(s);
    cvg__msg_scratch_destroy(&scratch);
    free(before);
    cvg_replica_close(r);

    /* Whatever happened, the replica opens and reads in full. */
    r = fuzz_open("local", SESSION_ID_LOCAL);
    free(fuzz_digest(r));
    cvg_replica_close(r);
    return 0;
}
