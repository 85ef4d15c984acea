/*
 * `converge queue DIR [PEER_HEX] [--retry] [--ops] [--json]`: where this
 * replica's own ops stand with a peer (or with each): the counts, the ops
 * the peer refused and why, and the seqs still to send, as ranges (a
 * refused op sits among them: the ops of its page before and after it were
 * not kept). --retry offers the refused ops again at the next sync, once
 * their cause (say, a clock far ahead) is fixed. --ops lists every queued
 * op with its state.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* A run of pending seqs. */
typedef struct seq_range {
    uint64_t first, last;
} seq_range;

/* One peer's queue, read in full before anything is printed. */
typedef struct queue {
    cli_peer peer;
    cvg_failed_op *failed; /* oldest first; free() */
    size_t n_failed;
    seq_range *pending; /* oldest first; free() */
    size_t n_pending;
    uint64_t retried; /* ops made pending again by --retry */
} queue;

/* The failed ops, asked for twice: once for the count, once to fill; ask
 * again if another process added some in between. */
static int
read_failed(cvg_replica *r, const cvg_replica_id *peer, cvg_failed_op **out,
            size_t *n)
{
    cvg_failed_op *ops = NULL;
    size_t cap = 0;
    for (;;) {
        size_t count;
        int rc = cvg_sync_failed(r, peer, ops, cap, &count);
        if (rc != CVG_OK) {
            free(ops);
            return rc;
        }
        if (count <= cap) {
            *out = ops;
            *n = count;
            return CVG_OK;
        }
        free(ops);
        cap = count;
        ops = calloc(cap, sizeof *ops);
        if (ops == NULL) {
            return CVG_ENOMEM;
        }
    }
}

/* The pending seqs as ranges, from a walk of the queue: it costs what is
 * queued. */
static int
read_pending(cvg_replica *r, const cvg_replica_id *peer, queue *q)
{
    cvg_txn *t;
    int rc = cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg_queue_cursor *c;
    rc = cvg_sync_queue_open(t, peer, &c);
    size_t cap = 0;
    cvg_queued_op op;
    while (rc == CVG_OK && (rc = cvg_sync_queue_next(c, &op)) == CVG_OK) {
        uint64_t seq = op.op.dot.seq;
        if (op.state != CVG_OP_PENDING) {
            continue;
        }
        if (q->n_pending > 0 && q->pending[q->n_pending - 1].last + 1 == seq) {
            q->pending[q->n_pending - 1].last = seq;
            continue;
        }
        if (q->n_pending == cap) {
            cap = cap ? 2 * cap : 4;
            seq_range *p = realloc(q->pending, cap * sizeof *p);
            if (p == NULL) {
                rc = CVG_ENOMEM;
                break;
            }
            q->pending = p;
        }
        q->pending[q->n_pending++] = (seq_range){seq, seq};
    }
    if (c != NULL) {
        cvg_sync_queue_close(c);
    }
    cvg_txn_abort(t);
    return rc == CVG_DONE ? CVG_OK : rc;
}

/* Retry if asked, then read the failed ops and the status as they are now.
 * What the retry makes pending again is what was failed or in flight before
 * it; counting that, rather than the growth of `pending`, keeps ops written
 * meanwhile by another process out of the figure. */
static int
load(cvg_replica *r, bool retry, queue *q)
{
    if (retry) {
        uint64_t before = q->peer.status.failed + q->peer.status.syncing;
        int rc = cvg_sync_retry_failed(r, &q->peer.id);
        if (rc != CVG_OK) {
            return rc;
        }
        q->retried = before;
        rc = cvg_sync_status_get(r, &q->peer.id, &q->peer.status,
                                 sizeof q->peer.status);
        if (rc != CVG_OK) {
            return rc;
        }
    }
    int rc = read_failed(r, &q->peer.id, &q->failed, &q->n_failed);
    return rc == CVG_OK ? read_pending(r, &q->peer.id, q) : rc;
}

static const char *
op_state_name(cvg_op_sync_state s)
{
    switch (s) {
    case CVG_OP_PENDING:
        return "pending";
    case CVG_OP_SYNCING:
        return "syncing";
    case CVG_OP_FAILED:
        return "failed";
    }
    return "?";
}

/* Every queued op, oldest first, as text lines or JSON objects. */
static int
print_ops(FILE *f, cvg_replica *r, const cvg_replica_id *peer, bool json)
{
    cvg_txn *t;
    int rc = cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg_queue_cursor *c;
    rc = cvg_sync_queue_open(t, peer, &c);
    if (rc == CVG_OK) {
        cvg_queued_op q;
        size_t n = 0;
        fputs(json ? ",\"queued_ops\":[" : "queued ops\n", f);
        while ((rc = cvg_sync_queue_next(c, &q)) == CVG_OK) {
            if (json) {
                fprintf(f, "%s{\"state\":\"%s\",\"code\":", n > 0 ? "," : "",
                        op_state_name(q.state));
                if (q.code != CVG_OK) {
                    fprintf(f, "\"%s\"", cvg_errname(q.code));
                } else {
                    fputs("null", f);
                }
                fputs(",\"op\":", f);
                cli_json_op(f, &q.op);
                fputc('}', f);
            } else {
                fprintf(f, "  %-8s", op_state_name(q.state));
                cli_print_op_line(f, &q.op);
            }
            n++;
        }
        if (json) {
            fputc(']', f);
        } else if (n == 0) {
            fputs("  none\n", f);
        }
        cvg_sync_queue_close(c);
    }
    cvg_txn_abort(t);
    return rc == CVG_DONE ? CVG_OK : rc;
}

static void
print_text(FILE *f, const queue *q, bool retry)
{
    cli_print_peer(f, "", &q->peer);
    if (q->n_failed == 0) {
        fputs("failed ops    none\n", f);
    } else {
        fputs("failed ops\n", f);
    }
    for (size_t i = 0; i < q->n_failed; i++) {
        fprintf(f, "  %" PRIu64 "  %s  %s\n", q->failed[i].seq,
                cvg_errname(q->failed[i].code),
                cvg_strerror(q->failed[i].code));
    }
    fputs("pending seqs  ", f);
    for (size_t i = 0; i < q->n_pending; i++) {
        fprintf(f, "%s%" PRIu64 "..%" PRIu64, i > 0 ? ", " : "",
                q->pending[i].first, q->pending[i].last);
    }
    fputs(q->n_pending == 0 ? "none\n" : "\n", f);
    if (retry) {
        fprintf(f, "retried       %" PRIu64 " op(s) pending again\n",
                q->retried);
    }
}

static void
print_json(FILE *f, const queue *q, bool retry)
{
    fputc('{', f);
    cli_json_peer(f, &q->peer);
    fputs(",\"failed_ops\":[", f);
    for (size_t i = 0; i < q->n_failed; i++) {
        const cvg_failed_op *op = &q->failed[i];
        fprintf(f, "%s{\"seq\":%" PRIu64 ",\"code\":\"%s\",\"message\":",
                i > 0 ? "," : "", op->seq, cvg_errname(op->code));
        const char *msg = cvg_strerror(op->code);
        cli_json_string(f, (const uint8_t *)msg, strlen(msg));
        fputc('}', f);
    }
    fputc(']', f);
    /* The first and last pending seqs, and the runs between. */
    if (q->n_pending == 0) {
        fputs(",\"pending_seqs\":null", f);
    } else {
        fprintf(
            f, ",\"pending_seqs\":{\"first\":%" PRIu64 ",\"last\":%" PRIu64 "}",
            q->pending[0].first, q->pending[q->n_pending - 1].last);
    }
    fputs(",\"pending_ranges\":[", f);
    for (size_t i = 0; i < q->n_pending; i++) {
        fprintf(f, "%s{\"first\":%" PRIu64 ",\"last\":%" PRIu64 "}",
                i > 0 ? "," : "", q->pending[i].first, q->pending[i].last);
    }
    fputc(']', f);
    if (retry) {
        fprintf(f, ",\"retried\":%" PRIu64, q->retried);
    }
}

/* Everything, or the first error met listing queued ops (--ops). */
static int
print_all(FILE *f, cvg_replica *r, const queue *qs, size_t n, const cli_opts *o)
{
    int rc = CVG_OK;
    if (o->json) {
        cvg_replica_id id;
        char hex[33];
        cvg_replica_id_get(r, &id);
        cvg_replica_id_hex(&id, hex);
        fprintf(f, "{\"replica\":\"%s\",\"peers\":[", hex);
        for (size_t i = 0; i < n && rc == CVG_OK; i++) {
            fputs(i > 0 ? "," : "", f);
            print_json(f, &qs[i], o->retry);
            if (o->ops) {
                rc = print_ops(f, r, &qs[i].peer.id, true);
            }
            fputc('}', f);
        }
        fputs("]}\n", f);
        return rc;
    }
    if (n == 0) {
        fputs("sync: no peers yet\n", f);
    }
    for (size_t i = 0; i < n && rc == CVG_OK; i++) {
        fputs(i > 0 ? "\n" : "", f);
        print_text(f, &qs[i], o->retry);
        if (o->ops) {
            rc = print_ops(f, r, &qs[i].peer.id, false);
        }
    }
    return rc;
}

/* A peer id that is well formed but unknown here is a runtime error, not a
 * usage one: the same id may be right for another replica. */
static int
no_such_peer(const char *cmd, const char *dir, cvg_replica *r,
             const cvg_replica_id *want)
{
    char hex[33];
    cvg_replica_id self;
    cvg_replica_id_hex(want, hex);
    cvg_replica_id_get(r, &self);
    if (memcmp(self.bytes, want->bytes, sizeof self.bytes) == 0) {
        fprintf(stderr, "converge: %s: %s is this replica's own id\n", cmd,
                hex);
    } else {
        fprintf(stderr,
                "converge: %s: %s has never synced with peer %s (see its "
                "peers with: converge status %s)\n",
                cmd, dir, hex, dir);
    }
    return CLI_EXIT_ERR;
}

/* The queues of @p want (NULL: every peer), loaded and printed. */
static int
run(const char *cmd, const char *dir, cvg_replica *r,
    const cvg_replica_id *want, const cli_opts *o)
{
    cli_peer *peers;
    size_t n;
    int rc = cli_sync_read(r, &peers, &n);
    if (rc != CVG_OK) {
        return cli_fail(cmd, rc, r);
    }
    size_t first = 0;
    if (want != NULL) {
        const cli_peer *p = cli_sync_find(peers, n, want);
        if (p == NULL) {
            free(peers);
            return no_such_peer(cmd, dir, r, want);
        }
        first = (size_t)(p - peers);
        n = 1;
    }
    queue *qs = calloc(n + 1, sizeof *qs);
    if (qs == NULL) {
        free(peers);
        return cli_fail(cmd, CVG_ENOMEM, NULL);
    }
    for (size_t i = 0; rc == CVG_OK && i < n; i++) {
        qs[i].peer = peers[first + i];
        rc = load(r, o->retry, &qs[i]);
    }
    int code = CLI_EXIT_OK;
    if (rc != CVG_OK) {
        code = cli_fail(cmd, rc, r);
    } else {
        rc = print_all(stdout, r, qs, n, o);
        code = rc == CVG_OK ? CLI_EXIT_OK : cli_fail(cmd, rc, r);
    }
    for (size_t i = 0; i < n; i++) {
        free(qs[i].failed);
        free(qs[i].pending);
    }
    free(qs);
    free(peers);
    return code;
}

int
cmd_queue(int argc, char **argv)
{
    cli_opts o;
    char *pos[2];
    int n;
    unsigned allowed = CLI_OPT_JSON | CLI_OPT_RETRY | CLI_OPT_OPS;
    int code = cli_parse_opts(argc, argv, allowed, &o, pos, 2, &n);
    if (code != CLI_EXIT_OK) {
        return code;
    }
    if (n < 1) {
        return cli_usage(argv[0], "expected DIR [PEER_HEX]");
    }
    cvg_replica_id peer;
    if (n == 2 && !cli_parse_replica_id(pos[1], &peer)) {
        return cli_usage(argv[0],
                         "PEER_HEX: '%s' is not a replica id (32 hex digits)",
                         pos[1]);
    }
    cvg_replica *r;
    /* --retry writes the queue; otherwise a read-only open is enough. */
    code = cli_open(argv[0], pos[0], o.retry ? CLI_WRITE : CLI_READ, &r);
    if (code != CLI_EXIT_OK) {
        return code;
    }
    code = run(argv[0], pos[0], r, n == 2 ? &peer : NULL, &o);
    cvg_replica_close(r);
    return code;
}
