/* Records the seed corpus of fuzz_session: real sessions between the
 * fuzzed replica (a fresh copy of session_template.c's) and honest peers,
 * written in fuzz_session's input format (an options byte, then what the
 * peer sent, each message with a 2-byte length). Because the fuzzed
 * replica's id, clock and state are the same in every run, replaying a
 * file makes it answer exactly as it did here.
 *
 * Usage: fuzz_session_seeds DIR   (writes DIR/<scenario> files)
 * Rerun it, and commit the result, when the template or the protocol
 * changes; stale seeds still fuzz, but reach less. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session_template.h"
#include "sync/wire.h"

static fuzz_snapshot snap_local, snap_third;

/* An input under construction. */
typedef struct input {
    uint8_t *p;
    size_t len;
    size_t cap;
} input;

static void
put(input *in, const void *data, size_t len)
{
    if (in->len + len > in->cap) {
        in->cap = (in->len + len) * 2;
        in->p = realloc(in->p, in->cap);
        if (in->p == NULL) {
            fuzz_fail("out of memory");
        }
    }
    memcpy(in->p + in->len, data, len);
    in->len += len;
}

static void
put_msg(input *in, const uint8_t *msg, size_t len)
{
    if (len > 0xFFFF) {
        fuzz_fail("a %zu-byte message does not fit the seed format", len);
    }
    uint8_t hdr[2] = {(uint8_t)(len >> 8), (uint8_t)len};
    put(in, hdr, 2);
    put(in, msg, len);
}

/* The peer's messages of one session, kept apart so a scenario can
 * rearrange them. */
typedef struct recording {
    input msgs[256];
    size_t n;
} recording;

static void
recording_free(recording *rec)
{
    for (size_t i = 0; i < rec->n; i++) {
        free(rec->msgs[i].p);
    }
    memset(rec, 0, sizeof *rec);
}

/* Run a session between @p local (with the options of @p optbyte) and
 * @p peer, carrying messages both ways until both are quiet or the local
 * side fails (fuzz_session would open a new session then), and record
 * what the peer sent. With @p dup, every peer message arrives twice, as
 * over a transport that repeats. Stops after @p max_msgs peer messages
 * (0: no limit), as if the connection were cut. */
static void
record(cvg_replica *local, cvg_replica *peer, uint8_t optbyte,
       const cvg_session_options *peer_opts, bool dup, size_t max_msgs,
       recording *rec)
{
    cvg_session_options o;
    session_options_from(optbyte, &o);
    cvg_session *a, *b;
    fuzz_ids_from(SESSION_CHALLENGE_SEED); /* as fuzz_session opens it */
    if (cvg_session_open(local, &o, &a) != CVG_OK ||
        cvg_session_open(peer, peer_opts, &b) != CVG_OK) {
        fuzz_fail("cannot open the sessions");
    }
    bool moved = true;
    while (moved && cvg_session_error(a) == CVG_OK) {
        moved = false;
        cvg_bytes m;
        while (cvg_session_output(a, &m) == CVG_OK) {
            moved = true;
            /* Errors show in cvg_session_error(). */
            int rc = cvg_session_input(b, m.data, m.len);
            (void)rc;
        }
        while (cvg_session_error(a) == CVG_OK &&
               (max_msgs == 0 || rec->n < max_msgs) &&
               cvg_session_output(b, &m) == CVG_OK) {
            moved = true;
            for (int i = 0; i < (dup ? 2 : 1); i++) {
                if (rec->n == sizeof rec->msgs / sizeof rec->msgs[0]) {
                    fuzz_fail("too many messages for one seed");
                }
                input *slot = &rec->msgs[rec->n++];
                memset(slot, 0, sizeof *slot);
                put(slot, m.data, m.len);
                int rc = cvg_session_input(a, m.data, m.len);
                (void)rc;
            }
        }
    }
    cvg_session_close(a);
    cvg_session_close(b);
}

static void
append_recording(input *in, const recording *rec)
{
    for (size_t i = 0; i < rec->n; i++) {
        put_msg(in, rec->msgs[i].p, rec->msgs[i].len);
    }
}

static void
write_seed(const char *dir, const char *name, const input *in)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(in->p, 1, in->len, f) != in->len ||
        fclose(f) != 0) {
        fuzz_fail("cannot write %s", path);
    }
    printf("%-28s %6zu bytes\n", name, in->len);
}

/* A fresh copy of the fuzzed replica. */
static cvg_replica *
open_local(void)
{
    fuzz_now_ms = SESSION_NOW_MS;
    fuzz_snapshot_put("local", &snap_local);
    return fuzz_open("local", SESSION_ID_LOCAL);
}

/* A peer that relays the third replica's ops and wrote its own: writes of
 * every type, some concurrent with the local replica's, and @p extra
 * counter adds in transactions of their own (for several pages). */
static cvg_replica *
open_peer(unsigned extra)
{
    fuzz_snapshot_put("third", &snap_third);
    fuzz_remove("peer");
    cvg_replica *third = fuzz_open("third", SESSION_ID_THIRD);
    cvg_replica *peer = fuzz_open("peer", SESSION_ID_PEER);
    fuzz_sync(peer, third);
    cvg_replica_close(third);
    fuzz_write_every_type(peer, "peer");
    for (unsigned i = 0; i < extra; i++) {
        cvg_txn *t;
        cvg_key k = {"c", i % 2 ? "local-1" : "peer-1", "n"};
        if (cvg_txn_begin(peer, 0, &t) != CVG_OK ||
            cvg_counter_add(t, &k, (int64_t)i + 1, NULL) != CVG_OK ||
            cvg_txn_commit(t) != CVG_OK) {
            fuzz_fail("cannot write the peer's counters");
        }
    }
    return peer;
}

/* A peer whose writes are larger and odder: a long string, sets of every
 * value kind, a deleted record with counters of two origins. */
static void
write_odd_values(cvg_replica *peer)
{
    static char big[1500];
    memset(big, 'v', sizeof big - 1);
    cvg_txn *t;
    cvg_key reg = {"odd", "values", "big"}, set = {"odd", "values", "kinds"};
    cvg_key del = {"c", "local-1", "n"}, mv = {"c", "shared", "mv"};
    cvg_value vals[] = {cvg_value_nil(),          cvg_value_bool(false),
                        cvg_value_int(INT64_MIN), cvg_value_double(-0.0),
                        cvg_value_string(""),     cvg_value_bytes("\0", 1)};
    cvg_value v_big = cvg_value_string(big), v_mv = cvg_value_int(99);
    int rc = cvg_txn_begin(peer, 0, &t);
    rc = rc ? rc : cvg_register_set(t, &reg, &v_big, NULL);
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        rc = rc ? rc : cvg_set_add(t, &set, &vals[i], NULL);
    }
    rc = rc ? rc : cvg_set_remove(t, &set, &vals[2], NULL);
    rc = rc ? rc : cvg_mvregister_set(t, &mv, &v_mv, NULL);
    rc = rc ? rc : cvg_record_delete(t, &del, NULL);
    rc = rc ? rc : cvg_txn_commit(t);
    if (rc != CVG_OK) {
        fuzz_fail("cannot write odd values: %s", cvg_errname(rc));
    }
}

/* One session with a peer made by @p make, recorded as a seed. */
static void
one_session(const char *dir, const char *name, uint8_t optbyte, unsigned extra,
            bool dup, const cvg_session_options *peer_opts)
{
    cvg_replica *local = open_local();
    cvg_replica *peer = open_peer(extra);
    recording rec = {0};
    record(local, peer, optbyte, peer_opts, dup, 0, &rec);
    input in = {0};
    put(&in, &optbyte, 1);
    append_recording(&in, &rec);
    write_seed(dir, name, &in);
    free(in.p);
    recording_free(&rec);
    cvg_replica_close(peer);
    cvg_replica_close(local);
}

int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    fuzz_init();
    session_template_build(&snap_local, &snap_third);

    /* Honest peers, with each page size and mode. */
    static const struct {
        const char *name;
        uint8_t optbyte;
        unsigned extra;
        bool dup;
    } plain[] = {
        {"peer_pages8", 0, 20, false},
        {"peer_pages1", 1, 4, false},
        {"peer_pages3", 3, 12, false},
        {"peer_pages16", 4, 40, false},
        {"peer_pages65536", 7, 40, false},
        {"peer_bytes256", 32 | 5, 30, false},
        {"peer_no_pull", 8, 10, false},
        {"peer_no_serve", 16, 10, false},
        {"peer_repeats", 0, 2, true},
        {"local_pushes", 64, 10, false},
        {"local_pushes_pages1", 64 | 1, 6, false},
    };
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
        one_session(dir, plain[i].name, plain[i].optbyte, plain[i].extra,
                    plain[i].dup, NULL);
    }
    cvg_session_options refuse;
    cvg_session_options_init(&refuse);
    refuse.no_serve = true;
    one_session(dir, "peer_refuses_pulls", 0, 0, false, &refuse);
    cvg_session_options pusher;
    cvg_session_options_init(&pusher);
    pusher.push = true;
    pusher.page_ops = 4;
    one_session(dir, "peer_pushes", 0, 10, false, &pusher);

    /* A fresh, empty peer; the third replica, resuming from the position
     * stored for it; and a copy of the local replica itself. */
    static const struct {
        const char *name;
        const fuzz_snapshot *snap;
        uint64_t id;
    } peers[] = {
        {"empty_peer", NULL, SESSION_ID_PEER},
        {"third_resumes", &snap_third, SESSION_ID_THIRD},
        {"peer_is_self", &snap_local, SESSION_ID_LOCAL},
    };
    for (size_t i = 0; i < sizeof peers / sizeof peers[0]; i++) {
        cvg_replica *local = open_local();
        fuzz_remove("peer");
        if (peers[i].snap != NULL) {
            fuzz_snapshot_put("peer", peers[i].snap);
        }
        cvg_replica *peer = fuzz_open("peer", peers[i].id);
        recording rec = {0};
        record(local, peer, 0, NULL, false, 0, &rec);
        input in = {0};
        put(&in, &(uint8_t){0}, 1);
        append_recording(&in, &rec);
        write_seed(dir, peers[i].name, &in);
        free(in.p);
        recording_free(&rec);
        cvg_replica_close(peer);
        cvg_replica_close(local);
    }

    /* Larger and odder values; and ops from a clock five minutes ahead,
     * which the local replica refuses. */
    for (int ahead = 0; ahead < 2; ahead++) {
        cvg_replica *local = open_local();
        cvg_replica *peer = open_peer(0);
        fuzz_now_ms = SESSION_NOW_MS + (ahead ? 300000 : 0);
        write_odd_values(peer);
        fuzz_now_ms = SESSION_NOW_MS;
        recording rec = {0};
        record(local, peer, 0, NULL, false, 0, &rec);
        input in = {0};
        put(&in, &(uint8_t){0}, 1);
        append_recording(&in, &rec);
        write_seed(dir, ahead ? "peer_clock_ahead" : "odd_values", &in);
        free(in.p);
        recording_free(&rec);
        cvg_replica_close(peer);
        cvg_replica_close(local);
    }

    /* A peer whose clock runs ten minutes behind: it refuses the page it
     * pulls from the local replica, answering with an ACK naming the op
     * and an ERROR. */
    {
        cvg_replica *local = open_local();
        cvg_replica *peer = open_peer(0);
        uint8_t optbyte = 8; /* the local side does not pull */
        fuzz_now_ms = SESSION_NOW_MS - 600000;
        recording rec = {0};
        record(local, peer, optbyte, NULL, false, 0, &rec);
        fuzz_now_ms = SESSION_NOW_MS;
        input in = {0};
        put(&in, &optbyte, 1);
        append_recording(&in, &rec);
        write_seed(dir, "peer_refuses_page", &in);
        free(in.p);
        recording_free(&rec);
        cvg_replica_close(peer);
        cvg_replica_close(local);
    }

    /* Sessions in a row (a length-0 message between them): one cut after
     * two messages, one that resumes it, and one after the peer wrote
     * more. */
    {
        cvg_replica *local = open_local();
        cvg_replica *peer = open_peer(20);
        input in = {0};
        put(&in, &(uint8_t){0}, 1);
        recording rec = {0};
        record(local, peer, 0, NULL, false, 2, &rec);
        append_recording(&in, &rec);
        recording_free(&rec);
        put_msg(&in, NULL, 0);
        record(local, peer, 0, NULL, false, 0, &rec);
        append_recording(&in, &rec);
        recording_free(&rec);
        put_msg(&in, NULL, 0);
        write_odd_values(peer);
        record(local, peer, 0, NULL, false, 0, &rec);
        append_recording(&in, &rec);
        recording_free(&rec);
        write_seed(dir, "three_sessions", &in);
        free(in.p);
        cvg_replica_close(peer);
        cvg_replica_close(local);
    }

    /* A page that skips the one before it (HELLO, then the second page
     * as the answer to the first PULL): ops whose predecessors are
     * missing. */
    {
        cvg_replica *local = open_local();
        cvg_replica *peer = open_peer(20);
        recording rec = {0};
        record(local, peer, 0, NULL, false, 0, &rec);
        size_t first_page = rec.n;
        for (size_t i = 0; i < rec.n && first_page == rec.n; i++) {
            cvg__msg m;
            cvg__msg_scratch scratch = {0};
            if (cvg__msg_decode(rec.msgs[i].p, rec.msgs[i].len, &m, &scratch) ==
                    CVG_OK &&
                m.type == CVG__MSG_OPS) {
                first_page = i;
            }
            cvg__msg_scratch_destroy(&scratch);
        }
        if (first_page == rec.n) {
            fuzz_fail("expected a page");
        }
        input in = {0};
        put(&in, &(uint8_t){0}, 1);
        for (size_t i = 0; i < rec.n; i++) {
            if (i != first_page) {
                put_msg(&in, rec.msgs[i].p, rec.msgs[i].len);
            }
        }
        write_seed(dir, "page_skipped", &in);
        free(in.p);
        recording_free(&rec);
        cvg_replica_close(peer);
        cvg_replica_close(local);
    }
    fuzz_remove("local");
    fuzz_remove("peer");
    fuzz_remove("third");
    return 0;
}
