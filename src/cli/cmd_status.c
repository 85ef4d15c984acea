/*
 * `converge status`: who the replica is, what it has seen (its version
 * vector: for each origin, the highest seq with every earlier op present),
 * how much room it takes, and, for each peer, who it is (its key), where
 * and when it was last in contact, and how far our own ops have reached
 * it (sync_view.c prints a peer).
 */
#include <inttypes.h>
#include <stdlib.h>

#include "cli.h"

/* The version vector, asked for twice: once for its size, once to fill. The
 * caller frees *out. */
static int
read_vv(cvg_replica *r, cvg_dot **out, size_t *n)
{
    *out = NULL;
    cvg_txn *txn;
    int rc = cvg_txn_begin(r, CVG_TXN_READ_ONLY, &txn);
    if (rc != CVG_OK) {
        return rc;
    }
    rc = cvg_txn_version_vector(txn, NULL, 0, n);
    if (rc == CVG_OK) {
        *out = calloc(*n + 1, sizeof **out);
        rc = *out == NULL ? CVG_ENOMEM
                          : cvg_txn_version_vector(txn, *out, *n, n);
    }
    cvg_txn_abort(txn);
    return rc;
}

/* The sync section: one block per peer this replica has synced with. */
static void
print_sync_text(FILE *f, const cli_peer *peers, size_t n)
{
    if (n == 0) {
        fputs("sync: no peers yet\n", f);
        return;
    }
    fputs("sync\n", f);
    for (size_t i = 0; i < n; i++) {
        cli_print_peer(f, "  ", &peers[i]);
    }
}

/* Origins this replica wrote under before it found itself copied or
 * restored (cvg_replica_previous_origins()). */
typedef struct prev_view {
    cvg_dot dots[16];
    size_t n;
} prev_view;

static void
print_prev_text(FILE *f, const prev_view *p)
{
    if (p->n == 0) {
        return;
    }
    fputs(
        "copied      this directory was copied or restored; it writes "
        "under a new origin, and wrote before under\n",
        f);
    for (size_t i = 0; i < p->n && i < 16; i++) {
        fputs("  ", f);
        cli_print_dot(f, &p->dots[i], false);
        fputc('\n', f);
    }
}

/* Origins whose key signed two histories (cvg_replica_forks()). */
typedef struct fork_view {
    cvg_fork forks[16];
    size_t n;
} fork_view;

static void
print_forks_text(FILE *f, const fork_view *v)
{
    if (v->n == 0) {
        return;
    }
    fputs(
        "forked      these origins signed two histories; their ops are "
        "refused from now on\n",
        f);
    for (size_t i = 0; i < v->n && i < 16; i++) {
        char hex[33];
        cvg_replica_id_hex(&v->forks[i].origin, hex);
        fprintf(f,
                "  %s other history at seq %" PRIu64 ", ours at %" PRIu64 "\n",
                hex, v->forks[i].seq, v->forks[i].our_seq);
    }
}

static void
print_forks_json(FILE *f, const fork_view *v)
{
    fputs(",\"forks\":[", f);
    for (size_t i = 0; i < v->n && i < 16; i++) {
        char hex[33];
        cvg_replica_id_hex(&v->forks[i].origin, hex);
        fprintf(f,
                "%s{\"origin\":\"%s\",\"seq\":%" PRIu64 ",\"our_seq\":%" PRIu64
                ",\"found_ms\":%" PRIu64 "}",
                i > 0 ? "," : "", hex, v->forks[i].seq, v->forks[i].our_seq,
                v->forks[i].found_ms);
    }
    fputc(']', f);
}

static void
print_text(FILE *f, const char *id, const cvg_replica_stats *s,
           const cvg_dot *vv, size_t n)
{
    fprintf(f, "replica     %s\n", id);
    fprintf(f, "ops         %" PRIu64 "\n", s->op_count);
    fprintf(f, "last lsn    %" PRIu64 "\n", s->last_lsn);
    fputs("hlc         ", f);
    cli_print_hlc(f, s->hlc);
    fprintf(f, "\nfile bytes  %" PRIu64 "\n", s->file_bytes);
    fprintf(f, "map bytes   %" PRIu64 "\n", s->map_bytes);
    fprintf(f, "origins     %zu\n", s->origins);
    fputs("version vector\n", f);
    for (size_t i = 0; i < n; i++) {
        fputs("  ", f);
        cli_print_dot(f, &vv[i], false);
        fputc('\n', f);
    }
}

/* The object is left open: print_sync_json() adds the peers and closes it. */
static void
print_json(FILE *f, const char *id, const cvg_replica_stats *s,
           const cvg_dot *vv, size_t n)
{
    fprintf(f,
            "{\"replica\":\"%s\",\"op_count\":%" PRIu64 ",\"last_lsn\":%" PRIu64
            ",\"hlc\":%" PRIu64 ",\"file_bytes\":%" PRIu64
            ",\"map_bytes\":%" PRIu64 ",\"origins\":%zu,\"version_vector\":[",
            id, s->op_count, s->last_lsn, s->hlc, s->file_bytes, s->map_bytes,
            s->origins);
    for (size_t i = 0; i < n; i++) {
        fputs(i > 0 ? "," : "", f);
        cli_json_dot(f, &vv[i]);
    }
    fputc(']', f);
}

static void
print_prev_json(FILE *f, const prev_view *p)
{
    fputs(",\"previous_origins\":[", f);
    for (size_t i = 0; i < p->n && i < 16; i++) {
        fputs(i > 0 ? "," : "", f);
        cli_json_dot(f, &p->dots[i]);
    }
    fputc(']', f);
}

static void
print_sync_json(FILE *f, const cli_peer *peers, size_t n)
{
    fputs(",\"peers\":[", f);
    for (size_t i = 0; i < n; i++) {
        fputs(i > 0 ? ",{" : "{", f);
        cli_json_peer(f, &peers[i]);
        fputc('}', f);
    }
    fputs("]}\n", f);
}

/* Everything is read before anything is printed, so that a failed read
 * prints nothing rather than half a report. */
int
cli_print_status(FILE *f, cvg_replica *r, bool json)
{
    cvg_replica_stats stats;
    cvg_dot *vv = NULL;
    cli_peer *peers = NULL;
    size_t n_vv = 0, n_peers = 0;
    prev_view prev;
    fork_view forks;
    int rc = cvg_replica_stats_get(r, &stats, sizeof stats);
    if (rc == CVG_OK) {
        rc = cvg_replica_previous_origins(r, prev.dots, 16, &prev.n);
    }
    if (rc == CVG_OK) {
        rc = cvg_replica_forks(r, forks.forks, 16, &forks.n);
    }
    if (rc == CVG_OK) {
        rc = read_vv(r, &vv, &n_vv);
    }
    if (rc == CVG_OK) {
        rc = cli_sync_read(r, &peers, &n_peers);
    }
    if (rc == CVG_OK) {
        cvg_replica_id id;
        char hex[33];
        cvg_replica_id_get(r, &id);
        cvg_replica_id_hex(&id, hex);
        if (json) {
            print_json(f, hex, &stats, vv, n_vv);
            print_prev_json(f, &prev);
            print_forks_json(f, &forks);
            print_sync_json(f, peers, n_peers);
        } else {
            print_text(f, hex, &stats, vv, n_vv);
            print_prev_text(f, &prev);
            print_forks_text(f, &forks);
            print_sync_text(f, peers, n_peers);
        }
    }
    free(vv);
    free(peers);
    return rc;
}

int
cmd_status(int argc, char **argv)
{
    cli_opts o;
    char *dir;
    int n;
    int code = cli_parse_opts(argc, argv, CLI_OPT_JSON, &o, &dir, 1, &n);
    if (code != CLI_EXIT_OK) {
        return code;
    }
    if (n != 1) {
        return cli_usage(argv[0], "expected DIR");
    }
    cvg_replica *r;
    code = cli_open(argv[0], dir, CLI_READ, &r);
    if (code != CLI_EXIT_OK) {
        return code;
    }
    int rc = cli_print_status(stdout, r, o.json);
    if (rc != CVG_OK) {
        code = cli_fail(argv[0], rc, r);
    }
    cvg_replica_close(r);
    return code;
}
