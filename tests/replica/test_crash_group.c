/* Crash safety of group commits: a child process runs THREADS threads that
 * each commit calls of cvg_replica_write() durably, acknowledging each on
 * a pipe once the call returned; the parent kills the child with SIGKILL
 * at a random moment (usually inside a group's commit) and checks, after a
 * reopen, that every acknowledged call is stored whole, that each thread's
 * calls are a prefix of what it made (a thread's calls commit in order),
 * that the log has no hole, and that the replica keeps working.
 *
 * A call adds 1 to a counter and an element naming it (thread, number) to
 * a set: two ops, so the counter equals the set's size when every call is
 * whole, and the log holds twice as many ops.
 *
 * The child never returns into Criterion: it dies by SIGKILL or leaves by
 * _exit(). No replica is open in the parent while it forks. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "converge.h"

#include "digest.h"
#include "replica/replica_int.h"
#include "testutil.h"

#define RUNS 30
#define THREADS 8
#define CALLS_MAX 1000000 /* a thread's call numbers stay below this */
#define MAX_ACKS 300
#define PIPE_TIMEOUT_MS 30000

static const cvg_key CALLS = {"crash", "g", "calls"};
static const cvg_key SEEN = {"crash", "g", "seen"};

static char ctx[256];

/* ---- The child ----------------------------------------------------------- */

typedef struct child_thread {
    cvg_replica *r;
    int who;
    int ack_fd;
} child_thread;

typedef struct one_call {
    int64_t element;
} one_call;

static int
do_call(cvg_txn *t, void *arg)
{
    one_call *c = arg;
    cvg_value e = cvg_value_int(c->element);
    int rc = cvg_counter_add(t, &CALLS, 1, NULL);
    return rc == CVG_OK ? cvg_set_add(t, &SEEN, &e, NULL) : rc;
}

static void *
child_run(void *arg)
{
    child_thread *ct = arg;
    for (int64_t k = 0; k < CALLS_MAX; k++) {
        one_call c = {(int64_t)ct->who * CALLS_MAX + k};
        int rc = cvg_replica_write(ct->r, do_call, &c);
        if (rc != CVG_OK) {
            fprintf(stderr, "crash child: call: %s\n", cvg_errname(rc));
            _exit(12);
        }
        /* 8 bytes: one atomic pipe write, never torn or interleaved. */
        if (write(ct->ack_fd, &c.element, 8) != 8) {
            _exit(13);
        }
    }
    _exit(14);
}

static _Noreturn void
writer_child(const char *dir, int ack_fd)
{
    cvg_replica *r = NULL;
    int rc = cvg_replica_open(dir, NULL, &r); /* durable */
    if (rc != CVG_OK) {
        fprintf(stderr, "crash child: open: %s\n", cvg_errname(rc));
        _exit(10);
    }
    /* A checkpoint of the state written behind the log every few groups
     * (src/oplog/journal.c): the kills land in journal records and in
     * checkpoints. */
    r->store.ov_max_values = 40;
    r->store.direct_max = CVG__DIRECT_MAX; /* as journal_state sets */
    static child_thread ct[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        ct[i] = (child_thread){r, i, ack_fd};
        if (pthread_create(&th[i], NULL, child_run, &ct[i]) != 0) {
            _exit(11);
        }
    }
    for (;;) {
        pause();
    }
}

/* ---- The parent ---------------------------------------------------------- */

typedef struct acked {
    int64_t next[THREADS]; /* each thread's acknowledged calls: 0..next-1 */
    uint64_t total;
} acked;

static void
take_ack(acked *a, int64_t e)
{
    cr_assert(e >= 0 && e / CALLS_MAX < THREADS, "%s: ack of %" PRId64, ctx, e);
    int who = (int)(e / CALLS_MAX);
    cr_assert_eq(e % CALLS_MAX, a->next[who],
                 "%s: thread %d acknowledged call %" PRId64 " after %" PRId64,
                 ctx, who, e % CALLS_MAX, a->next[who]);
    a->next[who]++;
    a->total++;
}

/* What the replica holds against what was acknowledged. */
static void
check_replica(cvg_replica *r, const acked *a)
{
    cvg_txn *t = NULL;
    cr_assert_eq(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t), CVG_OK, "%s", ctx);
    int64_t calls = 0;
    int rc = cvg_counter_get(t, &CALLS, &calls);
    cr_assert(rc == CVG_OK || (rc == CVG_ENOTFOUND && a->total == 0),
              "%s: counter: %s", ctx, cvg_errname(rc));
    /* Each thread's stored calls: a prefix that holds the acked ones, and
     * at most one more (its call in flight when the kill came). */
    int64_t stored = 0;
    for (int who = 0; who < THREADS; who++) {
        int64_t k = 0;
        for (;; k++) {
            cvg_value e = cvg_value_int((int64_t)who * CALLS_MAX + k);
            bool in = false;
            rc = cvg_set_contains(t, &SEEN, &e, &in);
            cr_assert_eq(rc, CVG_OK, "%s: %s", ctx, cvg_errname(rc));
            if (!in) {
                break;
            }
        }
        cr_assert(k >= a->next[who],
                  "%s: thread %d: %" PRId64 " calls acknowledged, %" PRId64
                  " stored: acknowledged writes lost",
                  ctx, who, a->next[who], k);
        cr_assert(k <= a->next[who] + 1,
                  "%s: thread %d: %" PRId64 " stored, %" PRId64 " acknowledged",
                  ctx, who, k, a->next[who]);
        stored += k;
    }
    cvg_set_cursor *c = NULL;
    cr_assert_eq(cvg_set_cursor_open(t, &SEEN, &c), CVG_OK, "%s", ctx);
    cvg_value v;
    int64_t n = 0;
    while ((rc = cvg_set_cursor_next(c, &v)) == CVG_OK) {
        n++;
    }
    cvg_set_cursor_close(c);
    cr_assert_eq(rc, CVG_DONE, "%s", ctx);
    cr_assert_eq(n, stored, "%s: %" PRId64 " elements, %" PRId64 " in prefixes",
                 ctx, n, stored);
    cr_assert_eq(calls, stored, "%s: %" PRId64 " counted, %" PRId64 " stored",
                 ctx, calls, stored);
    /* The log: 2 ops a call, lsn 1.. without a hole. */
    cvg_log_cursor *lc = NULL;
    cr_assert_eq(cvg_log_cursor_open(t, 1, &lc), CVG_OK, "%s", ctx);
    cvg_op op;
    uint64_t lsn = 0;
    while ((rc = cvg_log_cursor_next(lc, &op)) == CVG_OK) {
        lsn++;
        cr_assert_eq(op.lsn, lsn, "%s: a hole before lsn %" PRIu64, ctx,
                     op.lsn);
    }
    cvg_log_cursor_close(lc);
    cvg_txn_abort(t);
    cr_assert_eq(rc, CVG_DONE, "%s: log walk: %s", ctx, cvg_errname(rc));
    cr_assert_eq(lsn, 2 * (uint64_t)stored,
                 "%s: %" PRIu64 " ops for %" PRId64 " calls", ctx, lsn, stored);
    char *text = NULL;
    rc = cvg_test_digest(r, &text);
    free(text);
    cr_assert_eq(rc, CVG_OK, "%s: state walk: %s", ctx, cvg_errname(rc));
}

static uint64_t
crash_run(int run, uint64_t seed)
{
    snprintf(ctx, sizeof ctx, "run %d (replay: CVG_TEST_SEED=0x%016" PRIx64 ")",
             run, seed);
    uint64_t rng = seed;
    uint64_t want = 1 + cvg_test_below(&rng, MAX_ACKS);
    uint64_t delay_us = cvg_test_below(&rng, 3000);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", cvg_test_dir("crash-group"));
    int p[2];
    cr_assert_eq(pipe(p), 0, "%s: pipe: %s", ctx, strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1, "%s: fork: %s", ctx, strerror(errno));
    if (pid == 0) {
        close(p[0]);
        writer_child(dir, p[1]);
    }
    close(p[1]);
    acked a;
    memset(&a, 0, sizeof a);
    int64_t e;
    int rrc = 1;
    while (a.total < want &&
           (rrc = cvg_test_read_full(p[0], &e, 8, PIPE_TIMEOUT_MS)) == 1) {
        take_ack(&a, e);
    }
    if (rrc == 1) {
        cvg_test_sleep_us(delay_us);
    }
    kill(pid, SIGKILL);
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid, "%s: waitpid", ctx);
    cr_assert(rrc != -1, "%s: no ack for %d ms", ctx, PIPE_TIMEOUT_MS);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
              "%s: the child ended on its own (exit %d): see its stderr", ctx,
              WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    while ((rrc = cvg_test_read_full(p[0], &e, 8, PIPE_TIMEOUT_MS)) == 1) {
        take_ack(&a, e);
    }
    close(p[0]);
    cr_assert_eq(rrc, 0, "%s: torn ack on the pipe", ctx);

    cvg_replica *r = NULL;
    int rc = cvg_replica_open(dir, NULL, &r);
    cr_assert_eq(rc, CVG_OK, "%s: reopen: %s (%s)", ctx, cvg_errname(rc),
                 cvg_replica_errmsg(NULL));
    check_replica(r, &a);
    /* It keeps working. */
    one_call c = {(int64_t)CALLS_MAX - 1};
    rc = cvg_replica_write(r, do_call, &c);
    cr_assert_eq(rc, CVG_OK, "%s: a call after the crash: %s", ctx,
                 cvg_errname(rc));
    cvg_replica_close(r);
    return a.total;
}

Test(crash_group, acked_calls_survive_sigkill_inside_group_commits,
     .timeout = 300)
{
    uint64_t base = cvg_test_seed(0x6C0FFEE5u);
    uint64_t acks = 0;
    for (int i = 0; i < RUNS; i++) {
        acks += crash_run(i, base + (uint64_t)i);
    }
    cr_log_info("crash_group: %d kills, %" PRIu64
                " acknowledged calls, none lost",
                RUNS, acks);
}
