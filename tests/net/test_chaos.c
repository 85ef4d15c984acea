/*
 * Convergence under faults, end to end: the real `converge serve` binary
 * as a child process, clients syncing with cvg_net_sync() through a
 * fault-injecting proxy (support/proxy.h), the server SIGKILLed in the
 * middle of syncs and restarted on its directory, clients closed and
 * reopened, for many seeds within a wall-time budget.
 *
 * One seed: 1 to 16 clients, each a thread with a replica of its own and
 * a proxy lane of its own, run 8 to 24 rounds of random transactions
 * (counters, LWW registers, observed-remove sets, on a few shared keys
 * so that writes meet, and now and then a register of a few hundred KB,
 * so that some syncs move several pages), sometimes a close and reopen
 * of the replica, and a sync, with a short timeout (300 to 1000 ms) that
 * the proxy's stalls fall either side of. Syncs may fail then, but only
 * with CVG_EIO or CVG_EPEER (every code returned is also checked against
 * the header's docs by api_codes_documented); a failed one is followed by
 * a short backoff. After each commit
 * a client reads its own new ops back from its log (their dots, clocks
 * and what they observed) and checks they are what it wrote; after each
 * sync that returns CVG_OK it records its own origin's seq as
 * acknowledged.
 *
 * The main thread kills the server once the proxy has passed a random
 * number of bytes since the last start (so syncs are under way), then,
 * with the server down, opens its directory read-only and checks that
 * for every client it holds at least the acknowledged seq (and nothing
 * the client did not commit); then restarts it and points the proxy at
 * its new port. Once the clients are done: one more kill and check, then
 * faults off, two clean rounds of syncs (the first takes every op to the
 * server, the second brings them all back), a clean stop of the server
 * (SIGTERM, exit 0), and every replica, the server's included, must
 * equal the oracle: the state computed from every op the clients
 * committed, by the CRDT rules (counters are exact sums, so an op applied
 * twice shows; a register holds its LWW winner among the writes no later
 * write replaced; a set element is in while one of its adds is not
 * observed by a remove), hold exactly the ops committed, and have the
 * server's digest.
 *
 * Bounds: CVG_CHAOS_SECONDS of wall time (default 60: a slow build, as
 * under sanitizers, runs fewer seeds), at most CVG_CHAOS_SEEDS seeds
 * (default 1000); CVG_TEST_SEED=N runs seed N alone; CVG_CHAOS_VERBOSE
 * prints a line per seed. Every failure names its seed. A seed replays
 * its draws (sizes, each client's writes, each connection's fault, the
 * kill points in bytes), not the threads' timing, so a replay is the
 * same plan, not always the same run.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checks.h"
#include "digest.h"
#include "harness.h"
#include "proxy.h"

extern char **environ;

#define MAX_CLIENTS 16
#define NKEYS 3
#define NELEMS 4
#define TXN_OPS_MAX 4

/* ---- What the clients wrote ---------------------------------------------- */

/* Where the ops go: a counter, a register of small ints, a set of small
 * ints, and a register of large strings (a few hundred KB each, so that a
 * sync after a few of them moves several pages of the 1 MiB limit). */
enum { P_COUNTER, P_REGISTER, P_SET, P_BLOB, NPLACES };
static const char *const place_coll[NPLACES] = {"c", "r", "s", "b"};
static const char *const place_field[NPLACES] = {"n", "v", "tags", "v"};
static const char *const key_name[NKEYS] = {"k0", "k1", "k2"};

typedef struct wrote {
    cvg_op_kind kind;
    int place;
    int key;
    int64_t arg; /* delta, value, element, or the blob's number */
    uint64_t seq, hlc;
    cvg_dot *obs; /* what the op replaced or removed */
    size_t nobs;
} wrote;

#define BLOB_MAX (64 * 1024 + 400 * 1024)

/* Blob @p n: its length and bytes follow from its number, so a reader
 * checks every byte. @p out has room for BLOB_MAX. */
static cvg_value
blob(int64_t n, uint8_t *out)
{
    size_t len = 64 * 1024 + (size_t)((uint64_t)n * 7919u % (400 * 1024));
    uint64_t x = (uint64_t)n;
    for (size_t i = 0; i < len; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        out[i] = (uint8_t)(x >> 56);
    }
    return cvg_value_bytes(out, len);
}

static bool
value_is(const cvg_value *v, const wrote *w, uint8_t *scratch)
{
    if (w->place != P_BLOB) {
        return v->kind == CVG_VALUE_INT && v->as.integer == w->arg;
    }
    cvg_value b = blob(w->arg, scratch);
    return v->kind == CVG_VALUE_BYTES && v->as.bytes.len == b.as.bytes.len &&
           memcmp(v->as.bytes.data, b.as.bytes.data, b.as.bytes.len) == 0;
}

/* ---- A client ------------------------------------------------------------ */

typedef struct client {
    int id;
    uint64_t seed;
    uint64_t rng;     /* the writes, reopens and sync timeouts */
    uint64_t rng_net; /* the backoffs, drawn only after failures */
    char dir[512];
    char url[64];
    cvg_replica *r;
    cvg_replica_id origin;
    uint32_t timeout_ms;
    int rounds;
    double deadline;
    uint64_t next_lsn;
    uint64_t blobs;   /* blobs written */
    uint8_t *scratch; /* BLOB_MAX bytes */
    wrote *ops;
    size_t nops, cap;
    _Atomic uint64_t committed; /* own seq in the log */
    _Atomic uint64_t acked;     /* own seq at the last sync that said OK */
    uint64_t syncs_ok, syncs_failed, reopens, eio, epeer;
    int bad_rc; /* the first code outside the expected set, or a failure */
    char why[300];
    atomic_bool done;
} client;

static void
note(client *c, int rc, const char *what)
{
    if (c->bad_rc == CVG_OK) {
        c->bad_rc = rc != CVG_OK ? rc : CVG_EMISUSE;
        snprintf(c->why, sizeof c->why, "client %d: %s: %s (%s)", c->id, what,
                 cvg_errname(rc), c->r ? cvg_replica_errmsg(c->r) : "");
    }
}

static int
open_client(client *c)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = CVG_RELAXED; /* clients are closed, never killed */
    o.map_size = 1 << 20;
    cvg_replica_close(c->r);
    c->r = NULL;
    int rc = cvg_replica_open(c->dir, &o, &c->r);
    if (rc != CVG_OK) {
        c->r = NULL;
        note(c, rc, "open");
    }
    return rc;
}

static bool
dot_is(const cvg_dot *d, const cvg_replica_id *origin, uint64_t seq)
{
    return d->seq == seq && memcmp(&d->origin, origin, sizeof *origin) == 0;
}

static uint64_t
vv_seq(cvg_txn *t, const cvg_replica_id *origin)
{
    cvg_dot vv[MAX_CLIENTS + 4];
    size_t n = 0;
    if (cvg_txn_version_vector(t, vv, MAX_CLIENTS + 4, &n) != CVG_OK) {
        return UINT64_MAX;
    }
    for (size_t i = 0; i < n && i < MAX_CLIENTS + 4; i++) {
        if (memcmp(&vv[i].origin, origin, sizeof *origin) == 0) {
            return vv[i].seq;
        }
    }
    return 0;
}

static bool
bytes_are(cvg_bytes b, const char *s)
{
    return b.len == strlen(s) && memcmp(b.data, s, b.len) == 0;
}

/* Read the ops of our origin the log gained since the last look (remote
 * ops are skipped): they must be @p want, in order, with the seqs after
 * the last; keep their dots, clocks and what they observed. */
static int
take_own_ops(client *c, const wrote *want, size_t nwant)
{
    cvg_txn *t;
    int rc = cvg_txn_begin(c->r, CVG_TXN_READ_ONLY, &t);
    cvg_log_cursor *cur = NULL;
    if (rc == CVG_OK) {
        rc = cvg_log_cursor_open(t, c->next_lsn, &cur);
    }
    size_t got = 0;
    uint64_t seq = atomic_load(&c->committed);
    cvg_op op;
    while (rc == CVG_OK && (rc = cvg_log_cursor_next(cur, &op)) == CVG_OK) {
        c->next_lsn = op.lsn + 1;
        if (memcmp(&op.dot.origin, &c->origin, sizeof c->origin) != 0) {
            continue;
        }
        const wrote *w = got < nwant ? &want[got] : NULL;
        bool same = w != NULL && op.kind == w->kind && op.dot.seq == seq + 1 &&
                    bytes_are(op.collection, place_coll[w->place]) &&
                    bytes_are(op.key, key_name[w->key]) &&
                    bytes_are(op.field, place_field[w->place]) &&
                    (w->kind == CVG_OP_COUNTER_ADD
                         ? op.delta == w->arg
                         : value_is(&op.value, w, c->scratch));
        if (!same) {
            snprintf(c->why, sizeof c->why,
                     "client %d: own op %zu of %zu (seq %llu, kind %d) is not "
                     "the one written",
                     c->id, got, nwant, (unsigned long long)op.dot.seq,
                     (int)op.kind);
            c->bad_rc = CVG_ECORRUPT;
            rc = CVG_ECORRUPT;
            break;
        }
        if (c->nops == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 256;
            c->ops = realloc(c->ops, c->cap * sizeof *c->ops);
        }
        wrote *keep = &c->ops[c->nops++];
        *keep = *w;
        keep->seq = op.dot.seq;
        keep->hlc = op.hlc;
        keep->nobs = op.observed_count;
        keep->obs = NULL;
        if (op.observed_count > 0) {
            keep->obs = malloc(op.observed_count * sizeof *keep->obs);
            memcpy(keep->obs, op.observed,
                   op.observed_count * sizeof *keep->obs);
        }
        seq = op.dot.seq;
        got++;
    }
    rc = rc == CVG_DONE ? CVG_OK : rc;
    cvg_log_cursor_close(cur);
    if (rc == CVG_OK && got != nwant) {
        snprintf(c->why, sizeof c->why,
                 "client %d: %zu own ops in the log after a commit of %zu",
                 c->id, got, nwant);
        c->bad_rc = rc = CVG_ECORRUPT;
    }
    if (rc == CVG_OK && vv_seq(t, &c->origin) != seq) {
        snprintf(c->why, sizeof c->why,
                 "client %d: own seq %llu in the version vector, %llu in the "
                 "log",
                 c->id, (unsigned long long)vv_seq(t, &c->origin),
                 (unsigned long long)seq);
        c->bad_rc = rc = CVG_ECORRUPT;
    }
    if (t != NULL) {
        cvg_txn_abort(t);
    }
    if (rc == CVG_OK) {
        atomic_store(&c->committed, seq);
    } else if (c->bad_rc == CVG_OK) {
        note(c, rc, "reading the log back");
    }
    return rc;
}

/* One transaction of 1 to 4 ops on the shared keys; 1 in 8 aborted. One
 * op in 50 is a blob. */
static int
random_txn(client *c)
{
    cvg_txn *t;
    int rc = cvg_txn_begin(c->r, 0, &t);
    if (rc != CVG_OK) {
        note(c, rc, "begin");
        return rc;
    }
    wrote want[TXN_OPS_MAX];
    size_t nwant = 0;
    int nops = 1 + (int)cvg_test_below(&c->rng, TXN_OPS_MAX);
    for (int k = 0; k < nops && rc == CVG_OK; k++) {
        int key = (int)cvg_test_below(&c->rng, NKEYS);
        wrote w = {.key = key};
        uint64_t what = cvg_test_below(&c->rng, 50);
        if (what == 0) {
            w.kind = CVG_OP_REGISTER_SET;
            w.place = P_BLOB;
            w.arg = (int64_t)(((uint64_t)c->id + 1) << 32 | ++c->blobs);
        } else if (what < 17) {
            w.kind = CVG_OP_COUNTER_ADD;
            w.place = P_COUNTER;
            w.arg = (int64_t)cvg_test_below(&c->rng, 21) - 10;
            w.arg = w.arg ? w.arg : 7;
        } else if (what < 33) {
            w.kind = CVG_OP_REGISTER_SET;
            w.place = P_REGISTER;
            w.arg = (int64_t)cvg_test_below(&c->rng, 6);
        } else {
            w.kind = what < 42 ? CVG_OP_SET_ADD : CVG_OP_SET_REMOVE;
            w.place = P_SET;
            w.arg = (int64_t)cvg_test_below(&c->rng, NELEMS);
        }
        cvg_key ck = {place_coll[w.place], key_name[key], place_field[w.place]};
        cvg_value v =
            w.place == P_BLOB ? blob(w.arg, c->scratch) : cvg_value_int(w.arg);
        switch (w.kind) {
        case CVG_OP_COUNTER_ADD:
            rc = cvg_counter_add(t, &ck, w.arg, NULL);
            break;
        case CVG_OP_REGISTER_SET:
            rc = cvg_register_set(t, &ck, &v, NULL);
            break;
        case CVG_OP_SET_ADD:
            rc = cvg_set_add(t, &ck, &v, NULL);
            break;
        default:
            rc = cvg_set_remove(t, &ck, &v, NULL);
            if (rc == CVG_ENOTFOUND) { /* not in the set here: no op */
                rc = CVG_OK;
                continue;
            }
        }
        want[nwant++] = w;
    }
    if (rc != CVG_OK) {
        note(c, rc, "write");
        cvg_txn_abort(t);
        return rc;
    }
    if (cvg_test_below(&c->rng, 8) == 0) {
        cvg_txn_abort(t); /* and none of it happened */
        return CVG_OK;
    }
    rc = cvg_txn_commit(t);
    if (rc != CVG_OK) {
        note(c, rc, "commit");
        return rc;
    }
    return take_own_ops(c, want, nwant);
}

static int
sync_once(client *c, uint32_t timeout_ms)
{
    cvg_net_options o;
    cvg_net_options_init(&o);
    o.timeout_ms = timeout_ms;
    /* Our own seq cannot move during the sync (only this thread writes
     * here): what it says OK to is what we had before it. */
    uint64_t own = atomic_load(&c->committed);
    int rc = cvg_net_sync(c->r, c->url, &o, NULL);
    if (rc == CVG_OK) {
        atomic_store(&c->acked, own);
    }
    return rc;
}

static void *
run_client(void *arg)
{
    client *c = arg;
    for (int round = 0; round < c->rounds && now_s() < c->deadline; round++) {
        int txns = (int)cvg_test_below(&c->rng, 3);
        for (int i = 0; i < txns; i++) {
            if (random_txn(c) != CVG_OK) {
                goto out;
            }
        }
        if (cvg_test_below(&c->rng, 6) == 0) {
            c->reopens++;
            if (open_client(c) != CVG_OK) {
                goto out;
            }
        }
        int rc = sync_once(c, c->timeout_ms);
        if (rc == CVG_OK) {
            c->syncs_ok++;
        } else {
            c->syncs_failed++;
            c->eio += rc == CVG_EIO;
            c->epeer += rc == CVG_EPEER;
            if (rc != CVG_EIO && rc != CVG_EPEER) {
                note(c, rc, "sync");
                goto out;
            }
            /* A short backoff, as a syncer's: a server being restarted
             * would otherwise take every round. */
            usleep((useconds_t)(20 + cvg_test_below(&c->rng_net, 100)) * 1000);
        }
    }
out:
    atomic_store(&c->done, true);
    return NULL;
}

/* ---- The server, a child process ----------------------------------------- */

typedef struct server_proc {
    const char *bin;
    char dir[512];
    char log[600];
    pid_t pid;
    uint16_t port;
    uint64_t seed;
} server_proc;

static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *s = calloc(1, 8192);
    if (f != NULL && s != NULL) {
        size_t n = fread(s, 1, 8191, f);
        s[n] = '\0';
    }
    if (f != NULL) {
        fclose(f);
    }
    return s;
}

/* Start `converge serve DIR --listen 127.0.0.1:0` and read the port it
 * took from its first line (stderr, to a file). Forked, not spawned, for
 * the parent-death signal: a failed assertion ends this process at once,
 * and the server must not outlive it. Between fork and exec, only
 * async-signal-safe calls (the clients' threads may hold locks). */
static void
server_start(server_proc *s)
{
    char *argv[] = {(char *)s->bin, "serve",       s->dir,
                    "--listen",     "127.0.0.1:0", NULL};
    pid_t parent = getpid();
    /* The last start's line must be gone before we look for this one's. */
    cr_assert(unlink(s->log) == 0 || errno == ENOENT);
    s->pid = fork();
    cr_assert_neq(s->pid, -1, "seed %llu: fork: %s",
                  (unsigned long long)s->seed, strerror(errno));
    if (s->pid == 0) {
        int null = open("/dev/null", O_RDWR);
        int log = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (null < 0 || log < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 ||
            dup2(log, 2) < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 ||
            getppid() != parent) {
            _exit(127);
        }
        for (int fd = 3; fd < 4096; fd++) { /* none of the test's files */
            close(fd);
        }
        execve(s->bin, argv, environ);
        _exit(127);
    }
    s->port = 0;
    double until = now_s() + 30; /* a sanitized binary starts slowly */
    while (s->port == 0) {
        char *text = slurp(s->log);
        const char *at = strstr(text, " on 127.0.0.1:");
        if (at != NULL && strchr(at, ';') != NULL) {
            s->port = (uint16_t)atoi(at + strlen(" on 127.0.0.1:"));
        }
        int status;
        bool gone = s->port == 0 && waitpid(s->pid, &status, WNOHANG) == s->pid;
        cr_assert(!gone && now_s() < until,
                  "seed %llu: the server did not start: %s",
                  (unsigned long long)s->seed, text);
        free(text);
        if (s->port == 0) {
            usleep(2000);
        }
    }
}

/* The server must be alive whenever the test did not kill it. */
static void
server_alive(const server_proc *s)
{
    int status;
    if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
        char *text = slurp(s->log);
        cr_assert_fail("seed %llu: the server ended by itself (status %d): %s",
                       (unsigned long long)s->seed, status, text);
    }
}

static void
server_kill(server_proc *s)
{
    server_alive(s);
    cr_assert_eq(kill(s->pid, SIGKILL), 0);
    int status;
    cr_assert_eq(waitpid(s->pid, &status, 0), s->pid);
    s->pid = 0;
}

/* SIGTERM, once every client has ended its last sync cleanly: the server
 * has no session left to wait for (a session that outlived its client
 * would hold it up to its idle timeout, 60 s), so it closes the replica
 * and exits 0 (under LeakSanitizer, not 0 if it leaked) at once: within
 * STOP_S, which leaves a slow build room. */
#define STOP_S 10

static void
server_stop(server_proc *s)
{
    cr_assert_eq(kill(s->pid, SIGTERM), 0);
    int status = 0;
    double t0 = now_s();
    pid_t w;
    while ((w = waitpid(s->pid, &status, WNOHANG)) == 0 &&
           now_s() < t0 + STOP_S) {
        usleep(2000);
    }
    if (w == 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, &status, 0);
    }
    char *text = slurp(s->log);
    cr_assert(w == s->pid,
              "seed %llu: the server still ran %d s after SIGTERM: a session "
              "outlived its client: %s",
              (unsigned long long)s->seed, STOP_S, text);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "seed %llu: the server did not stop cleanly (status %d): %s",
              (unsigned long long)s->seed, status, text);
    free(text);
    s->pid = 0;
}

static cvg_replica *
open_server_dir(const server_proc *s)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.read_only = true;
    cvg_replica *r = NULL;
    int rc = cvg_replica_open(s->dir, &o, &r);
    cr_assert_eq(rc, CVG_OK, "seed %llu: open the server's directory: %s (%s)",
                 (unsigned long long)s->seed, cvg_errname(rc),
                 cvg_replica_errmsg(NULL));
    return r;
}

/* With the server down: it holds every client's acknowledged ops, and
 * none a client did not commit. */
static void
check_acked(const server_proc *s, client *cl, int n, int kill_no)
{
    cvg_replica *r = open_server_dir(s);
    cvg_txn *t;
    OK(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t));
    for (int i = 0; i < n; i++) {
        uint64_t acked = atomic_load(&cl[i].acked);
        uint64_t committed = atomic_load(&cl[i].committed);
        uint64_t has = vv_seq(t, &cl[i].origin);
        cr_assert(has >= acked,
                  "seed %llu, kill %d: the server holds client %d's ops up to "
                  "seq %llu, but a sync said OK with seq %llu (replay with "
                  "CVG_TEST_SEED=%llu)",
                  (unsigned long long)s->seed, kill_no, i,
                  (unsigned long long)has, (unsigned long long)acked,
                  (unsigned long long)s->seed);
        cr_assert(has <= committed,
                  "seed %llu, kill %d: the server holds client %d's ops up to "
                  "seq %llu, past the %llu it committed",
                  (unsigned long long)s->seed, kill_no, i,
                  (unsigned long long)has, (unsigned long long)committed);
    }
    cvg_txn_abort(t);
    cvg_replica_close(r);
}

/* ---- The oracle ---------------------------------------------------------- */

typedef struct oracle {
    int64_t sum[NKEYS];
    bool counted[NKEYS];
    const wrote *reg[2][NKEYS]; /* the LWW winners: registers, blobs */
    const client *cl;           /* the writes, to explain a failure */
    int n;
    bool in_set[NKEYS][NELEMS];
    uint64_t ops;
} oracle;

static bool
observed_by(const cvg_dot *obs, size_t n, const cvg_replica_id *origin,
            uint64_t seq)
{
    for (size_t k = 0; k < n; k++) {
        if (dot_is(&obs[k], origin, seq)) {
            return true;
        }
    }
    return false;
}

/* Whether any op of @p kind in @p place, @p key (and element @p elem,
 * for a set remove; -1 for any) observed the op @p seq of @p origin. */
static bool
replaced(const client *cl, int n, cvg_op_kind kind, int place, int key,
         int64_t elem, const cvg_replica_id *origin, uint64_t seq)
{
    for (int i = 0; i < n; i++) {
        for (size_t j = 0; j < cl[i].nops; j++) {
            const wrote *w = &cl[i].ops[j];
            if (w->kind == kind && w->place == place && w->key == key &&
                (elem < 0 || w->arg == elem) &&
                observed_by(w->obs, w->nobs, origin, seq)) {
                return true;
            }
        }
    }
    return false;
}

static void
compute_oracle(const client *cl, int n, oracle *o)
{
    memset(o, 0, sizeof *o);
    o->cl = cl;
    o->n = n;
    const cvg_replica_id *win_origin[2][NKEYS] = {{NULL}};
    for (int i = 0; i < n; i++) {
        const cvg_replica_id *org = &cl[i].origin;
        o->ops += cl[i].nops;
        for (size_t j = 0; j < cl[i].nops; j++) {
            const wrote *w = &cl[i].ops[j];
            int k = w->key;
            if (w->kind == CVG_OP_COUNTER_ADD) {
                o->sum[k] += w->arg;
                o->counted[k] = true;
            } else if (w->kind == CVG_OP_REGISTER_SET) {
                /* A write no other write replaced is a sibling; the
                 * register reads the LWW one: hlc, then origin, then
                 * seq. */
                if (replaced(cl, n, CVG_OP_REGISTER_SET, w->place, k, -1, org,
                             w->seq)) {
                    continue;
                }
                int b = w->place == P_BLOB;
                const wrote *win = o->reg[b][k];
                int c = 0;
                if (win != NULL) {
                    c = w->hlc != win->hlc
                            ? (w->hlc > win->hlc ? 1 : -1)
                            : memcmp(org, win_origin[b][k], sizeof *org);
                    c = c != 0 ? c : (w->seq > win->seq ? 1 : -1);
                }
                if (win == NULL || c > 0) {
                    o->reg[b][k] = w;
                    win_origin[b][k] = org;
                }
            } else if (w->kind == CVG_OP_SET_ADD) {
                if (!replaced(cl, n, CVG_OP_SET_REMOVE, P_SET, k, w->arg, org,
                              w->seq)) {
                    o->in_set[k][w->arg] = true;
                }
            }
        }
    }
}

/* Every write of a register, and which one @p got is. */
static void
explain_register(const oracle *o, int place, int k, const cvg_value *got,
                 uint8_t *scratch)
{
    fprintf(stderr, "register %s/%s: the replica reads kind %d len %zu\n",
            place_coll[place], key_name[k], (int)got->kind,
            got->kind == CVG_VALUE_BYTES ? got->as.bytes.len : 0);
    for (int i = 0; i < o->n; i++) {
        for (size_t j = 0; j < o->cl[i].nops; j++) {
            const wrote *w = &o->cl[i].ops[j];
            if (w->place != place || (w->key != k && place != P_BLOB)) {
                continue;
            }
            fprintf(
                stderr,
                "  key %d client %d seq %llu hlc %llu arg %llx%s%s observed:",
                w->key, i, (unsigned long long)w->seq,
                (unsigned long long)w->hlc, (unsigned long long)w->arg,
                w == o->reg[place == P_BLOB][k] ? " WINNER" : "",
                value_is(got, w, scratch) ? " READ" : "");
            for (size_t d = 0; d < w->nobs; d++) {
                int who = -1;
                for (int c = 0; c < o->n; c++) {
                    if (memcmp(&w->obs[d].origin, &o->cl[c].origin,
                               sizeof o->cl[c].origin) == 0) {
                        who = c;
                    }
                }
                fprintf(stderr, " %d:%llu", who,
                        (unsigned long long)w->obs[d].seq);
            }
            fputc('\n', stderr);
        }
    }
}

static void
check_oracle(cvg_replica *r, const oracle *o, uint64_t seed, const char *who,
             uint8_t *scratch)
{
    cvg_txn *t;
    OK(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t));
    for (int k = 0; k < NKEYS; k++) {
        cvg_key ck = {"c", key_name[k], "n"};
        int64_t v = 0;
        int rc = cvg_counter_get(t, &ck, &v);
        cr_assert(
            rc == (o->counted[k] ? CVG_OK : CVG_ENOTFOUND) && v == o->sum[k],
            "seed %llu: %s: counter %s is %lld (%s), the ops sum to "
            "%lld",
            (unsigned long long)seed, who, key_name[k], (long long)v,
            cvg_errname(rc), (long long)o->sum[k]);
        for (int b = 0; b < 2; b++) {
            const wrote *win = o->reg[b][k];
            cvg_key rk = {place_coll[b ? P_BLOB : P_REGISTER], key_name[k],
                          "v"};
            cvg_value rv = cvg_value_nil();
            rc = cvg_register_get(t, &rk, &rv);
            bool same = win != NULL
                            ? rc == CVG_OK && value_is(&rv, win, scratch)
                            : rc == CVG_ENOTFOUND;
            if (!same) {
                explain_register(o, b ? P_BLOB : P_REGISTER, k, &rv, scratch);
            }
            cr_assert(same,
                      "seed %llu: %s: register %s/%s: %s, not the winner "
                      "(%lld)",
                      (unsigned long long)seed, who, rk.collection, key_name[k],
                      cvg_errname(rc), win ? (long long)win->arg : -1LL);
        }
        cvg_key sk = {"s", key_name[k], "tags"};
        for (int e = 0; e < NELEMS; e++) {
            cvg_value ev = cvg_value_int(e);
            bool in = false;
            rc = cvg_set_contains(t, &sk, &ev, &in);
            cr_assert(
                (rc == CVG_OK || rc == CVG_ENOTFOUND) && in == o->in_set[k][e],
                "seed %llu: %s: set %s %s %d, the ops say %s",
                (unsigned long long)seed, who, key_name[k],
                in ? "has" : "lacks", e, o->in_set[k][e] ? "in" : "out");
        }
    }
    cvg_txn_abort(t);
    uint64_t ops = cvg_test_op_count(r);
    cr_assert_eq(ops, o->ops, "seed %llu: %s holds %llu ops; %llu were made",
                 (unsigned long long)seed, who, (unsigned long long)ops,
                 (unsigned long long)o->ops);
}

/* ---- One seed ------------------------------------------------------------ */

static int
remove_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    remove(path);
    return 0;
}

static void
remove_tree(const char *path)
{
    nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

typedef struct totals {
    uint64_t seeds, clients, syncs_ok, syncs_failed, eio, epeer, kills, reopens,
        ops;
    cvg_proxy_stats px;
} totals;

static void
run_seed(const char *bin, uint64_t seed, double budget_end, totals *tot)
{
    double t_seed = now_s();
    uint64_t rng = seed * 0x9E3779B97F4A7C15ull + 1;
    int n = 1 + (int)cvg_test_below(&rng, MAX_CLIENTS);
    uint32_t timeout_ms = 300 + (uint32_t)cvg_test_below(&rng, 701);
    int rounds = 8 + (int)cvg_test_below(&rng, 17);
    int kills_planned = 1 + (int)cvg_test_below(&rng, 3);

    server_proc sp;
    memset(&sp, 0, sizeof sp);
    sp.bin = bin;
    sp.seed = seed;
    char name[64];
    snprintf(name, sizeof name, "chaos-%llu-server", (unsigned long long)seed);
    snprintf(sp.dir, sizeof sp.dir, "%s", cvg_test_dir(name));
    snprintf(sp.log, sizeof sp.log, "%s.log", sp.dir);
    {
        cvg_replica *r = NULL; /* `serve` wants a replica that exists */
        OK(cvg_replica_open(sp.dir, NULL, &r));
        cvg_replica_close(r);
    }
    server_start(&sp);
    cvg_proxy *px = cvg_proxy_start(n, sp.port, seed, timeout_ms);
    cr_assert_not_null(px, "seed %llu: cannot start the proxy",
                       (unsigned long long)seed);
    cvg_proxy_faults(px, true);

    static client cl[MAX_CLIENTS];
    pthread_t th[MAX_CLIENTS];
    double now = now_s();
    double deadline = budget_end > now + 2 ? budget_end : now + 2;
    deadline = deadline < now + 15 ? deadline : now + 15;
    for (int i = 0; i < n; i++) {
        client *c = &cl[i];
        memset(c, 0, sizeof *c);
        c->id = i;
        c->seed = seed;
        c->rng = rng ^ (0xA5A5A5A5ull * (uint64_t)(i + 1));
        (void)cvg_test_rand(&c->rng);
        c->rng_net = c->rng ^ 0x5DEECE66Dull;
        snprintf(name, sizeof name, "chaos-%llu-c%d", (unsigned long long)seed,
                 i);
        snprintf(c->dir, sizeof c->dir, "%s", cvg_test_dir(name));
        snprintf(c->url, sizeof c->url, "tcp://127.0.0.1:%u",
                 (unsigned)cvg_proxy_port(px, i));
        c->timeout_ms = timeout_ms;
        c->rounds = rounds;
        c->deadline = deadline;
        c->next_lsn = 1;
        c->scratch = malloc(BLOB_MAX);
        cr_assert_not_null(c->scratch);
        cr_assert_eq(open_client(c), CVG_OK, "seed %llu: %s",
                     (unsigned long long)seed, c->why);
        cvg_replica_id_get(c->r, &c->origin);
    }
    for (int i = 0; i < n; i++) {
        cr_assert_eq(pthread_create(&th[i], NULL, run_client, &cl[i]), 0);
    }

    /* Kill the server once the proxy has passed a random number of bytes
     * since it started, while the clients sync. */
    int kills = 0;
    uint64_t base = cvg_proxy_bytes(px);
    uint64_t next_kill = 500 + cvg_test_below(&rng, 30000);
    for (;;) {
        bool all_done = true;
        for (int i = 0; i < n; i++) {
            all_done = all_done && atomic_load(&cl[i].done);
        }
        if (all_done) {
            break;
        }
        server_alive(&sp);
        if (kills < kills_planned && cvg_proxy_bytes(px) - base >= next_kill) {
            server_kill(&sp);
            kills++;
            check_acked(&sp, cl, n, kills);
            if (cvg_test_below(&rng, 2) == 0) { /* down a while */
                usleep((useconds_t)(cvg_test_below(&rng, 150) * 1000));
            }
            server_start(&sp);
            cvg_proxy_upstream(px, sp.port);
            base = cvg_proxy_bytes(px);
            next_kill = 500 + cvg_test_below(&rng, 30000);
        }
        usleep(1000);
    }
    for (int i = 0; i < n; i++) {
        cr_assert_eq(pthread_join(th[i], NULL), 0);
        cr_assert_eq(cl[i].bad_rc, CVG_OK,
                     "seed %llu: %s (replay with "
                     "CVG_TEST_SEED=%llu)",
                     (unsigned long long)seed, cl[i].why,
                     (unsigned long long)seed);
    }
    /* Every acknowledgement of the chaos, checked once more with all the
     * clients still. */
    server_kill(&sp);
    kills++;
    check_acked(&sp, cl, n, kills);
    server_start(&sp);
    cvg_proxy_upstream(px, sp.port);

    /* Faults off, and no connection of the chaos left open. */
    cvg_proxy_faults(px, false);
    for (double until = now_s() + 10;
         cvg_proxy_open_conns(px) > 0 && now_s() < until;) {
        usleep(2000);
    }
    cr_assert_eq(cvg_proxy_open_conns(px), 0,
                 "seed %llu: connections of the chaos still open",
                 (unsigned long long)seed);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < n; i++) {
            int rc = sync_once(&cl[i], 10000);
            if (rc != CVG_OK) {
                server_alive(&sp);
            }
            cr_assert_eq(rc, CVG_OK,
                         "seed %llu: clean round %d, client %d: %s (%s); "
                         "replay with CVG_TEST_SEED=%llu",
                         (unsigned long long)seed, round, i, cvg_errname(rc),
                         cvg_replica_errmsg(cl[i].r), (unsigned long long)seed);
        }
    }
    server_stop(&sp);
    cvg_proxy_stats px_st;
    cvg_proxy_stats_get(px, &px_st);
    cvg_proxy_stop(px);

    oracle o;
    compute_oracle(cl, n, &o);
    cvg_replica *sr = open_server_dir(&sp);
    check_oracle(sr, &o, seed, "the server", cl[0].scratch);
    char *want = cvg_test_state(sr);
    {
        cvg_txn *t;
        OK(cvg_txn_begin(sr, CVG_TXN_READ_ONLY, &t));
        for (int i = 0; i < n; i++) {
            cr_assert_eq(vv_seq(t, &cl[i].origin),
                         atomic_load(&cl[i].committed),
                         "seed %llu: the server lacks ops of client %d",
                         (unsigned long long)seed, i);
        }
        cvg_txn_abort(t);
    }
    cvg_replica_close(sr);
    for (int i = 0; i < n; i++) {
        char who[32];
        snprintf(who, sizeof who, "client %d", i);
        check_oracle(cl[i].r, &o, seed, who, cl[0].scratch);
        char *got = cvg_test_state(cl[i].r);
        cr_assert_str_eq(got, want,
                         "seed %llu: client %d differs from the "
                         "server",
                         (unsigned long long)seed, i);
        free(got);
        cvg_replica_close(cl[i].r);
        cl[i].r = NULL;
        tot->syncs_ok += cl[i].syncs_ok;
        tot->syncs_failed += cl[i].syncs_failed;
        tot->eio += cl[i].eio;
        tot->epeer += cl[i].epeer;
        tot->reopens += cl[i].reopens;
    }
    free(want);
    /* A passed seed leaves no files: a run makes hundreds of replicas. */
    remove_tree(sp.dir);
    unlink(sp.log);
    for (int i = 0; i < n; i++) {
        remove_tree(cl[i].dir);
        free(cl[i].scratch);
        for (size_t j = 0; j < cl[i].nops; j++) {
            free(cl[i].ops[j].obs);
        }
        free(cl[i].ops);
    }
    if (getenv("CVG_CHAOS_VERBOSE") != NULL) {
        fprintf(stderr, "seed %llu: %d clients, %d kills, %.1f s\n",
                (unsigned long long)seed, n, kills, now_s() - t_seed);
    }
    tot->seeds++;
    tot->clients += (uint64_t)n;
    tot->kills += (uint64_t)kills;
    tot->ops += o.ops;
    tot->px.conns += px_st.conns;
    tot->px.refused += px_st.refused;
    tot->px.cuts += px_st.cuts;
    tot->px.stalls += px_st.stalls;
    tot->px.delayed += px_st.delayed;
    tot->px.bytes += px_st.bytes;
}

static unsigned
env_uint(const char *name, unsigned dflt, unsigned max)
{
    const char *s = getenv(name);
    if (s == NULL || s[0] == '\0') {
        return dflt;
    }
    unsigned long v = strtoul(s, NULL, 10);
    return v == 0 ? dflt : (unsigned)(v > max ? max : v);
}

Test(chaos, kills_cuts_and_stalls_lose_and_repeat_nothing, .timeout = 900)
{
#ifndef CVG_CONVERGE_BIN
    cr_skip_test("built without the converge binary");
#else
    const char *bin = CVG_CONVERGE_BIN;
    unsigned secs = env_uint("CVG_CHAOS_SECONDS", 60, 600);
    unsigned max_seeds = env_uint("CVG_CHAOS_SEEDS", 1000, 1000000);
    const char *one = getenv("CVG_TEST_SEED");
    totals tot;
    memset(&tot, 0, sizeof tot);
    double t0 = now_s();
    double end = t0 + secs;
    if (one != NULL && one[0] != '\0') {
        run_seed(bin, cvg_test_seed(1), end, &tot);
    } else {
        for (uint64_t s = 1; s <= max_seeds && (s == 1 || now_s() < end); s++) {
            run_seed(bin, s, end, &tot);
        }
    }
    fprintf(
        stderr,
        "chaos: %llu seeds, %llu clients, %.1f s: %llu ops; syncs %llu ok, "
        "%llu failed (%llu EIO, %llu EPEER); %llu server kills, %llu "
        "client reopens; proxy: %llu connections, %llu cuts, %llu stalls, "
        "%llu delayed, %llu refused, %llu bytes\n",
        (unsigned long long)tot.seeds, (unsigned long long)tot.clients,
        now_s() - t0, (unsigned long long)tot.ops,
        (unsigned long long)tot.syncs_ok, (unsigned long long)tot.syncs_failed,
        (unsigned long long)tot.eio, (unsigned long long)tot.epeer,
        (unsigned long long)tot.kills, (unsigned long long)tot.reopens,
        (unsigned long long)tot.px.conns, (unsigned long long)tot.px.cuts,
        (unsigned long long)tot.px.stalls, (unsigned long long)tot.px.delayed,
        (unsigned long long)tot.px.refused, (unsigned long long)tot.px.bytes);
    cr_assert_gt(tot.syncs_ok, 0);
#endif
}
