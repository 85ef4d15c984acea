/*
 * Sync workloads: two or three replicas of this process exchange ops
 * through sync sessions that the bench drives itself (the in-memory path
 * of cvg_sync_local, spelled out), so that every byte put on the "wire"
 * is counted.
 *
 *   sync_full_1m         a fresh replica pulls n counter increments
 *   sync_conflict_3x10k  three replicas set the same n registers, then a
 *                        full mesh of sessions
 *   sync_incremental_1k  the next sync after n new ops on a replica of
 *                        100 * n ops that was synced before
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench.h"

#define SYNC_BATCH 1000u
#define CONFLICT_REPLICAS 3u
#define NAME_LEN 24

/* ---- Driving two sessions -------------------------------------------------*/

/* What one session pair did. */
typedef struct sync_result {
    double seconds;     /* wall clock, session open to close */
    double cpu_seconds; /* user + system CPU of the same span */
    uint64_t bytes_ab;  /* message bytes carried from a to b */
    uint64_t bytes_ba;  /* and from b to a */
    uint64_t messages;  /* messages carried, both ways */
    cvg_session_stats sa, sb;
} sync_result;

static void
session_failed(const bench_ctx *ctx, const char *what, int rc,
               const cvg_session *s, cvg_replica *r)
{
    bench_die(ctx, "%s failed: %s (%s); session error %s: %s", what,
              cvg_errname(rc), cvg_strerror(rc),
              cvg_errname(cvg_session_error(s)), cvg_replica_errmsg(r));
}

/* Move every message @p from has to say into @p to. Returns the bytes
 * moved; counts the messages into *messages. */
static uint64_t
carry(const bench_ctx *ctx, cvg_session *from, cvg_replica *rfrom,
      cvg_session *to, cvg_replica *rto, uint64_t *messages)
{
    uint64_t bytes = 0;
    for (;;) {
        cvg_bytes msg;
        int rc = cvg_session_output(from, &msg);
        if (rc == CVG_DONE) {
            return bytes;
        }
        if (rc != CVG_OK) {
            session_failed(ctx, "cvg_session_output", rc, from, rfrom);
        }
        bytes += msg.len;
        (*messages)++;
        rc = cvg_session_input(to, msg.data, msg.len);
        if (rc != CVG_OK) {
            session_failed(ctx, "cvg_session_input", rc, to, rto);
        }
    }
}

/* Sync @p a and @p b both ways: one session per replica, messages carried
 * between them until both are quiet. Dies unless both sessions end done
 * and the bytes carried match what the sessions say they sent. */
static void
sync_pair(const bench_ctx *ctx, cvg_replica *a, cvg_replica *b,
          sync_result *res)
{
    memset(res, 0, sizeof *res);
    cvg_session *sa = NULL, *sb = NULL;
    double c0 = bench_cpu_now();
    double t0 = bench_now();
    int rc = cvg_session_open(a, NULL, &sa);
    bench_check(ctx, rc, a, "cvg_session_open(a)");
    rc = cvg_session_open(b, NULL, &sb);
    bench_check(ctx, rc, b, "cvg_session_open(b)");
    for (;;) {
        uint64_t ab = carry(ctx, sa, a, sb, b, &res->messages);
        uint64_t ba = carry(ctx, sb, b, sa, a, &res->messages);
        res->bytes_ab += ab;
        res->bytes_ba += ba;
        if (ab == 0 && ba == 0) {
            break;
        }
    }
    bool done = cvg_session_done(sa) && cvg_session_done(sb);
    cvg_session_stats_get(sa, &res->sa, sizeof res->sa);
    cvg_session_stats_get(sb, &res->sb, sizeof res->sb);
    cvg_session_close(sa);
    cvg_session_close(sb);
    res->seconds = bench_now() - t0;
    res->cpu_seconds = bench_cpu_now() - c0;

    if (!done) {
        bench_die(ctx, "the sessions went quiet before both were done");
    }
    if (res->sa.bytes_sent != res->bytes_ab ||
        res->sb.bytes_sent != res->bytes_ba ||
        res->sa.bytes_received != res->bytes_ba ||
        res->sb.bytes_received != res->bytes_ab) {
        bench_die(ctx,
                  "bytes carried a->b %llu, b->a %llu, but the sessions "
                  "count sent %llu/%llu, received %llu/%llu",
                  (unsigned long long)res->bytes_ab,
                  (unsigned long long)res->bytes_ba,
                  (unsigned long long)res->sa.bytes_sent,
                  (unsigned long long)res->sb.bytes_sent,
                  (unsigned long long)res->sa.bytes_received,
                  (unsigned long long)res->sb.bytes_received);
    }
}

static uint64_t
wire_bytes(const sync_result *res)
{
    return res->bytes_ab + res->bytes_ba;
}

/* Die unless the session pair moved exactly @p to_b ops into b and @p to_a
 * ops into a, without duplicates. */
static void
expect_moved(const bench_ctx *ctx, const sync_result *res, uint64_t to_b,
             uint64_t to_a)
{
    if (res->sb.ops_received != to_b || res->sa.ops_received != to_a ||
        res->sa.ops_sent != to_b || res->sb.ops_sent != to_a ||
        res->sa.ops_duplicate != 0 || res->sb.ops_duplicate != 0) {
        bench_die(ctx,
                  "expected %llu ops a->b and %llu b->a; a sent %llu, "
                  "received %llu (%llu duplicate); b sent %llu, received "
                  "%llu (%llu duplicate)",
                  (unsigned long long)to_b, (unsigned long long)to_a,
                  (unsigned long long)res->sa.ops_sent,
                  (unsigned long long)res->sa.ops_received,
                  (unsigned long long)res->sa.ops_duplicate,
                  (unsigned long long)res->sb.ops_sent,
                  (unsigned long long)res->sb.ops_received,
                  (unsigned long long)res->sb.ops_duplicate);
    }
}

static uint64_t
op_count(const bench_ctx *ctx, cvg_replica *r)
{
    cvg_replica_stats st;
    bench_check(ctx, cvg_replica_stats_get(r, &st, sizeof st), r,
                "cvg_replica_stats_get");
    return st.op_count;
}

static void
expect_op_count(const bench_ctx *ctx, cvg_replica *r, const char *which,
                uint64_t want)
{
    uint64_t got = op_count(ctx, r);
    if (got != want) {
        bench_die(ctx, "replica %s holds %llu ops, expected %llu", which,
                  (unsigned long long)got, (unsigned long long)want);
    }
}

/* ---- sync_full_1m -------------------------------------------------------- */

/*
 * Setup (untimed): replica A gets n counter increments on one field in
 * commits of SYNC_BATCH, with CVG_RELAXED commits and one
 * cvg_replica_flush() at the end, to keep the setup short. A is then
 * reopened with the default durability for the syncs.
 *
 * Timed: a fresh durable replica B syncs with A. Then, apart, a fresh
 * relaxed replica B' syncs with A (the relaxed_* figures).
 */
void
wl_sync_full(const bench_ctx *ctx, bench_run *out)
{
    uint64_t n = ctx->n;
    char *pa = bench_subdir(ctx, 0);
    char *pb = bench_subdir(ctx, 1);
    char *pbr = bench_subdir(ctx, 2);

    cvg_replica *a = bench_open(ctx, pa, CVG_RELAXED);
    double setup = bench_counter_fill(ctx, a, n, SYNC_BATCH, 1, NULL);
    double t0 = bench_now();
    bench_check(ctx, cvg_replica_flush(a), a, "cvg_replica_flush");
    setup += bench_now() - t0;
    cvg_replica_close(a);
    a = bench_open(ctx, pa, CVG_DURABLE);

    /* Durable B: the headline figures. */
    cvg_replica *b = bench_open(ctx, pb, CVG_DURABLE);
    sync_result res;
    sync_pair(ctx, a, b, &res);
    expect_moved(ctx, &res, n, 0);
    bench_counter_verify(ctx, b, n, 1);
    out->seconds = res.seconds;
    out->cpu_seconds = res.cpu_seconds;
    out->ops = n;
    bench_measure(ctx, b, pb, out);
    bench_expect_log(ctx, out);
    cvg_replica_close(b);

    /* Relaxed B': the same sync without an fsync per page; the final
     * cvg_replica_flush() is timed apart. */
    cvg_replica *br = bench_open(ctx, pbr, CVG_RELAXED);
    sync_result rres;
    sync_pair(ctx, a, br, &rres);
    t0 = bench_now();
    bench_check(ctx, cvg_replica_flush(br), br, "cvg_replica_flush");
    double final_sync = bench_now() - t0;
    expect_moved(ctx, &rres, n, 0);
    bench_counter_verify(ctx, br, n, 1);
    expect_op_count(ctx, br, "B'", n);
    cvg_replica_close(br);
    expect_op_count(ctx, a, "A", n);
    cvg_replica_close(a);

    bench_extra_add(out, "wire_bytes", (double)wire_bytes(&res), true);
    bench_extra_add(out, "wire_bytes_per_op",
                    (double)wire_bytes(&res) / (double)n, false);
    bench_extra_add(out, "pages", (double)res.sb.pages_received, true);
    bench_extra_add(out, "messages", (double)res.messages, true);
    bench_extra_add(out, "relaxed_ops_per_s", (double)n / rres.seconds, false);
    bench_extra_add(out, "relaxed_seconds", rres.seconds, false);
    bench_extra_add(out, "relaxed_final_sync_ms", final_sync * 1e3, false);
    bench_extra_add(out, "setup_seconds", setup, false);

    free(pa);
    free(pb);
    free(pbr);
}

/* ---- sync_conflict_3x10k ------------------------------------------------- */

/* Key i: collection "c", key "k<i>", field "v". Replica r writes the value
 * r * n + i, so every replica's value differs from the others'. */
static void
conflict_key(char *buf, uint64_t i)
{
    snprintf(buf, NAME_LEN, "k%llu", (unsigned long long)i);
}

static void
conflict_write_batch(const bench_ctx *ctx, cvg_replica *r, unsigned rep,
                     uint64_t n, uint64_t from, uint64_t to)
{
    char name[NAME_LEN];
    cvg_txn *t = NULL;
    bench_check(ctx, cvg_txn_begin(r, 0, &t), r, "cvg_txn_begin");
    for (uint64_t i = from; i < to; i++) {
        conflict_key(name, i);
        cvg_key k = {"c", name, "v"};
        cvg_value v = cvg_value_int((int64_t)((uint64_t)rep * n + i));
        bench_check(ctx, cvg_register_set(t, &k, &v, NULL), r,
                    "cvg_register_set");
    }
    bench_check(ctx, cvg_txn_commit(t), r, "cvg_txn_commit");
}

/* Read every key on every replica (SYNC_BATCH reads per read transaction);
 * die unless all replicas hold the same value, one of the values written
 * for that key. Counts the keys each replica won into won[]. */
static void
conflict_verify(const bench_ctx *ctx, cvg_replica **reps, uint64_t n,
                uint64_t *won)
{
    char name[NAME_LEN];
    cvg_txn *t[CONFLICT_REPLICAS] = {NULL};
    for (uint64_t i = 0; i < n; i++) {
        if (i % SYNC_BATCH == 0) {
            for (unsigned r = 0; r < CONFLICT_REPLICAS; r++) {
                cvg_txn_abort(t[r]);
                bench_check(ctx,
                            cvg_txn_begin(reps[r], CVG_TXN_READ_ONLY, &t[r]),
                            reps[r], "cvg_txn_begin(read)");
            }
        }
        conflict_key(name, i);
        cvg_key k = {"c", name, "v"};
        int64_t first = 0;
        for (unsigned r = 0; r < CONFLICT_REPLICAS; r++) {
            cvg_value v;
            bench_check(ctx, cvg_register_get(t[r], &k, &v), reps[r],
                        "cvg_register_get");
            if (v.kind != CVG_VALUE_INT) {
                bench_die(ctx, "replica %u: %s holds a value of kind %d", r,
                          name, (int)v.kind);
            }
            if (r == 0) {
                first = v.as.integer;
                if (first < 0 || (uint64_t)first % n != i ||
                    (uint64_t)first / n >= CONFLICT_REPLICAS) {
                    bench_die(ctx,
                              "replica 0: %s holds %lld, not a value "
                              "written to it",
                              name, (long long)first);
                }
                won[(uint64_t)first / n]++;
            } else if (v.as.integer != first) {
                bench_die(ctx, "%s: replica 0 holds %lld, replica %u %lld",
                          name, (long long)first, r, (long long)v.as.integer);
            }
        }
    }
    for (unsigned r = 0; r < CONFLICT_REPLICAS; r++) {
        cvg_txn_abort(t[r]);
    }
}

/*
 * Setup (untimed, durable): the three replicas each set the n keys, in
 * commits of SYNC_BATCH. The commits are interleaved and the order of the
 * replicas rotates with every batch (batch j: replica j % 3 first), so
 * that each replica writes the newest value of about a third of the keys
 * and each direction of a sync carries both winning and losing writes.
 *
 * Timed: a full mesh, (0,1), (0,2), (1,2), and that round once more.
 */
void
wl_sync_conflict(const bench_ctx *ctx, bench_run *out)
{
    uint64_t n = ctx->n;
    cvg_replica *reps[CONFLICT_REPLICAS];
    char *paths[CONFLICT_REPLICAS];
    for (unsigned r = 0; r < CONFLICT_REPLICAS; r++) {
        paths[r] = bench_subdir(ctx, r);
        reps[r] = bench_open(ctx, paths[r], CVG_DURABLE);
    }
    uint64_t batch_no = 0;
    for (uint64_t from = 0; from < n; from += SYNC_BATCH, batch_no++) {
        uint64_t to = from + SYNC_BATCH < n ? from + SYNC_BATCH : n;
        for (unsigned j = 0; j < CONFLICT_REPLICAS; j++) {
            unsigned r = (unsigned)((batch_no + j) % CONFLICT_REPLICAS);
            conflict_write_batch(ctx, reps[r], r, n, from, to);
        }
    }

    static const unsigned pairs[][2] = {{0, 1}, {0, 2}, {1, 2}};
    const size_t npairs = sizeof pairs / sizeof pairs[0];
    uint64_t bytes = 0, received = 0, duplicate = 0, conflicts = 0;
    uint64_t pages = 0, messages = 0, round2_bytes = 0;
    double secs = 0.0, cpu = 0.0;
    for (unsigned round = 0; round < 2; round++) {
        for (size_t p = 0; p < npairs; p++) {
            sync_result res;
            sync_pair(ctx, reps[pairs[p][0]], reps[pairs[p][1]], &res);
            secs += res.seconds;
            cpu += res.cpu_seconds;
            bytes += wire_bytes(&res);
            messages += res.messages;
            received += res.sa.ops_received + res.sb.ops_received;
            duplicate += res.sa.ops_duplicate + res.sb.ops_duplicate;
            conflicts += res.sa.conflicts + res.sb.conflicts;
            pages += res.sa.pages_received + res.sb.pages_received;
            if (round == 1) {
                round2_bytes += wire_bytes(&res);
            }
        }
    }

    /* Each replica had n ops and must end with all 3n. */
    for (unsigned r = 0; r < CONFLICT_REPLICAS; r++) {
        char which[16];
        snprintf(which, sizeof which, "%u", r);
        expect_op_count(ctx, reps[r], which, CONFLICT_REPLICAS * n);
    }
    uint64_t want = (uint64_t)CONFLICT_REPLICAS * (CONFLICT_REPLICAS - 1) * n;
    if (received != want) {
        bench_die(ctx, "the sessions applied %llu ops, expected %llu",
                  (unsigned long long)received, (unsigned long long)want);
    }
    uint64_t won[CONFLICT_REPLICAS] = {0};
    conflict_verify(ctx, reps, n, won);

    out->seconds = secs;
    out->cpu_seconds = cpu;
    out->ops = received;
    bench_measure(ctx, reps[0], paths[0], out);
    for (unsigned r = 0; r < CONFLICT_REPLICAS; r++) {
        cvg_replica_close(reps[r]);
        free(paths[r]);
    }

    bench_extra_add(out, "keys", (double)n, true);
    bench_extra_add(out, "wire_bytes", (double)bytes, true);
    bench_extra_add(out, "wire_bytes_per_op", (double)bytes / (double)received,
                    false);
    bench_extra_add(out, "conflicts", (double)conflicts, true);
    bench_extra_add(out, "duplicate_ops", (double)duplicate, true);
    bench_extra_add(out, "pages", (double)pages, true);
    bench_extra_add(out, "messages", (double)messages, true);
    bench_extra_add(out, "second_round_bytes", (double)round2_bytes, true);
}

/* ---- sync_incremental_1k ------------------------------------------------- */

/* Fill A with @p base increments, sync a fresh B, add @p n more to A,
 * and time the next session pair into @p res. Returns with A and B open. */
static void
incremental_pair(const bench_ctx *ctx, const char *pa, const char *pb,
                 cvg_durability d, uint64_t base, uint64_t n,
                 cvg_replica **a_out, cvg_replica **b_out, sync_result *first,
                 sync_result *res)
{
    cvg_replica *a = bench_open(ctx, pa, d);
    cvg_replica *b = bench_open(ctx, pb, d);
    (void)bench_counter_fill(ctx, a, base, SYNC_BATCH, 1, NULL);
    sync_pair(ctx, a, b, first);
    expect_moved(ctx, first, base, 0);
    (void)bench_counter_fill(ctx, a, n, n, 1, NULL);
    sync_pair(ctx, a, b, res);
    expect_moved(ctx, res, n, 0);
    bench_counter_verify(ctx, b, base + n, 1);
    expect_op_count(ctx, a, "A", base + n);
    *a_out = a;
    *b_out = b;
}

/*
 * Setup (untimed, durable): A gets 100 * n counter increments in commits
 * of SYNC_BATCH; a fresh B syncs with A. Then A adds n increments in one
 * commit.
 *
 * Timed: the next session pair between A and B (both pull; only A has
 * something new). Then, apart, the same with relaxed replicas (the
 * relaxed_* figures: the cost without the page commit's fsyncs).
 */
void
wl_sync_incremental(const bench_ctx *ctx, bench_run *out)
{
    uint64_t n = ctx->n;
    uint64_t base = 100 * n;
    char *pa = bench_subdir(ctx, 0);
    char *pb = bench_subdir(ctx, 1);
    char *pra = bench_subdir(ctx, 2);
    char *prb = bench_subdir(ctx, 3);

    cvg_replica *a, *b, *ra, *rb;
    sync_result first, res, rfirst, rres;
    incremental_pair(ctx, pra, prb, CVG_RELAXED, base, n, &ra, &rb, &rfirst,
                     &rres);
    cvg_replica_close(ra);
    cvg_replica_close(rb);
    incremental_pair(ctx, pa, pb, CVG_DURABLE, base, n, &a, &b, &first, &res);

    out->seconds = res.seconds;
    out->cpu_seconds = res.cpu_seconds;
    out->ops = n;
    bench_measure(ctx, b, pb, out);
    cvg_replica_close(a);
    cvg_replica_close(b);
    if (out->log_ops != base + n) {
        bench_die(ctx, "B holds %llu ops, expected %llu",
                  (unsigned long long)out->log_ops,
                  (unsigned long long)(base + n));
    }

    bench_extra_add(out, "base_ops", (double)base, true);
    bench_extra_add(out, "wire_bytes", (double)wire_bytes(&res), true);
    bench_extra_add(out, "wire_bytes_per_op",
                    (double)wire_bytes(&res) / (double)n, false);
    bench_extra_add(out, "a_to_b_bytes", (double)res.bytes_ab, true);
    bench_extra_add(out, "b_to_a_bytes", (double)res.bytes_ba, true);
    bench_extra_add(out, "pages", (double)res.sb.pages_received, true);
    bench_extra_add(out, "messages", (double)res.messages, true);
    bench_extra_add(out, "first_sync_seconds", first.seconds, false);
    bench_extra_add(out, "relaxed_seconds", rres.seconds, false);
    bench_extra_add(out, "relaxed_cpu_seconds", rres.cpu_seconds, false);

    free(pa);
    free(pb);
    free(pra);
    free(prb);
}
