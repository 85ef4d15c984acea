/*
 * Group commit (cvg_replica_write()): calls made while a group commits
 * share the next commit; a group too big for one transaction is split
 * where it overflows; a function cannot end its transaction or wait for
 * its own group; the replica's lock is not recursive. The random schedules
 * against an oracle are in support/threads_group.c (test_threads.c).
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "replica/replica_int.h"
#include "testutil.h"

static const cvg_key N = {"group", "k", "n"};

static cvg_replica *
open_at(const char *name, unsigned durability)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = durability;
    cvg_replica *r = NULL;
    cr_assert_eq(cvg_replica_open(cvg_test_dir(name), &o, &r), CVG_OK, "%s",
                 cvg_replica_errmsg(NULL));
    return r;
}

static int64_t
counter(cvg_replica *r, const cvg_key *k)
{
    cvg_txn *t;
    cr_assert_eq(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t), CVG_OK);
    int64_t v = 0;
    int rc = cvg_counter_get(t, k, &v);
    cr_assert(rc == CVG_OK || rc == CVG_ENOTFOUND, "%s", cvg_errname(rc));
    cvg_txn_abort(t);
    return v;
}

/* Calls waiting in the queue behind the group being committed. */
static size_t
queued(cvg_replica *r)
{
    pthread_mutex_lock(&r->group.mu);
    size_t n = 0;
    for (cvg__group_member *m = r->group.head; m != NULL; m = m->next) {
        n++;
    }
    pthread_mutex_unlock(&r->group.mu);
    return n;
}

typedef struct call {
    cvg_replica *r;
    int64_t ops;     /* counter adds of 1 */
    size_t wait_for; /* first wait until this many calls queue (10 s at most) */
    int rc;
} call;

static int
add_ops(cvg_txn *t, void *ctx)
{
    call *c = ctx;
    for (int i = 0; c->wait_for > 0 && i < 10000; i++) {
        if (queued(c->r) >= c->wait_for) {
            break;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    int rc = CVG_OK;
    for (int64_t i = 0; rc == CVG_OK && i < c->ops; i++) {
        rc = cvg_counter_add(t, &N, 1, NULL);
    }
    return rc;
}

static void *
call_run(void *arg)
{
    call *c = arg;
    c->rc = cvg_replica_write(c->r, add_ops, c);
    return NULL;
}

/* Start the blocker (which leads the first group and waits in it until
 * the others queued), then the others, and join them all. */
static void
run_calls(call *c, size_t n)
{
    pthread_t th[16];
    cr_assert(n <= 16);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(pthread_create(&th[i], NULL, call_run, &c[i]), 0);
        if (i == 0) {
            /* The blocker leads before anyone else queues. */
            while (true) {
                pthread_mutex_lock(&c->r->group.mu);
                bool leading = c->r->group.leading;
                pthread_mutex_unlock(&c->r->group.mu);
                if (leading) {
                    break;
                }
                struct timespec ts = {0, 100000};
                nanosleep(&ts, NULL);
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
    }
}

Test(group, calls_made_while_a_group_commits_share_the_next_commit)
{
    cvg_replica *r = open_at("group-share", CVG_DURABLE);
    call c[8];
    for (size_t i = 0; i < 8; i++) {
        c[i] = (call){.r = r, .ops = (int64_t)i + 1};
    }
    c[0].wait_for = 7;
    run_calls(c, 8);
    for (size_t i = 0; i < 8; i++) {
        cr_expect_eq(c[i].rc, CVG_OK, "call %zu: %s", i, cvg_errname(c[i].rc));
    }
    /* The blocker's group, then one group of the seven that queued. */
    cr_expect_eq(r->group.commits, 2);
    cr_expect_eq(r->group.members, 8);
    cr_expect_eq(counter(r, &N), 36);
    cvg_replica_stats st;
    cr_assert_eq(cvg_replica_stats_get(r, &st, sizeof st), CVG_OK);
    cr_expect_eq(st.op_count, 36);
    cvg_replica_close(r);
}

Test(group, a_group_too_big_for_one_transaction_commits_in_parts,
     .timeout = 120)
{
    cvg_replica *r = open_at("group-split", CVG_RELAXED);
    /* Two calls that fit a transaction each but not together. */
    int64_t half = CVG_TXN_OPS_MAX / 2 + 1;
    call c[3] = {
        {.r = r, .ops = 1, .wait_for = 2},
        {.r = r, .ops = half},
        {.r = r, .ops = half},
    };
    run_calls(c, 3);
    for (size_t i = 0; i < 3; i++) {
        cr_expect_eq(c[i].rc, CVG_OK, "call %zu: %s", i, cvg_errname(c[i].rc));
    }
    cr_expect_eq(r->group.commits, 3, "%llu commits",
                 (unsigned long long)r->group.commits);
    cr_expect_eq(counter(r, &N), 1 + 2 * half);
    cvg_replica_close(r);
}

/* ---- What a function may not do -------------------------------------- */

typedef struct misuse {
    cvg_replica *r;
    int commit_rc, write_rc, lock_rc;
} misuse;

static int
noop(cvg_txn *t, void *ctx)
{
    (void)t;
    (void)ctx;
    return CVG_OK;
}

static int
try_misuse(cvg_txn *t, void *ctx)
{
    misuse *m = ctx;
    m->commit_rc = cvg_txn_commit(t);
    cvg_txn_abort(t); /* ignored: the group ends it */
    m->write_rc = cvg_replica_write(m->r, noop, NULL);
    m->lock_rc = cvg_replica_lock(m->r);
    return cvg_counter_add(t, &N, 5, NULL);
}

Test(group, a_function_cannot_end_its_transaction_or_wait_for_itself)
{
    cvg_replica *r = open_at("group-misuse", CVG_RELAXED);
    misuse m = {.r = r};
    cr_expect_eq(cvg_replica_write(r, try_misuse, &m), CVG_OK);
    cr_expect_eq(m.commit_rc, CVG_EINVAL);
    cr_expect_eq(m.write_rc, CVG_EBUSY);
    cr_expect_eq(m.lock_rc, CVG_EBUSY);
    /* The transaction lived on, and its write is committed. */
    cr_expect_eq(counter(r, &N), 5);
    cr_expect_eq(r->group.commits, 1);
    cvg_replica_close(r);
}

Test(group, the_lock_is_not_recursive_and_a_locked_thread_cannot_write)
{
    cvg_replica *r = open_at("group-lock", CVG_RELAXED);
    cr_assert_eq(cvg_replica_lock(r), CVG_OK);
    cr_expect_eq(cvg_replica_lock(r), CVG_EBUSY);
    cr_expect_eq(cvg_replica_write(r, noop, NULL), CVG_EBUSY);
    cvg_replica_unlock(r);
    cvg_replica_unlock(r); /* not held: ignored */
    cvg_replica_unlock(NULL);
    cr_expect_eq(cvg_replica_lock(NULL), CVG_EINVAL);
    cr_expect_eq(cvg_replica_write(NULL, noop, NULL), CVG_EINVAL);
    cr_expect_eq(cvg_replica_write(r, NULL, NULL), CVG_EINVAL);
    /* A call that writes nothing commits nothing. */
    cr_expect_eq(cvg_replica_write(r, noop, NULL), CVG_OK);
    cvg_replica_stats st;
    cr_assert_eq(cvg_replica_stats_get(r, &st, sizeof st), CVG_OK);
    cr_expect_eq(st.op_count, 0);
    cvg_replica_close(r);
}

static void *
unlock_from_elsewhere(void *arg)
{
    cvg_replica_unlock(arg); /* another thread holds it: ignored */
    return NULL;
}

Test(group, a_thread_may_hold_any_number_of_locks_and_only_it_unlocks)
{
    enum { N_REPLICAS = 12 };
    cvg_replica *r[N_REPLICAS];
    for (int i = 0; i < N_REPLICAS; i++) {
        char name[32];
        snprintf(name, sizeof name, "group-many-%d", i);
        r[i] = open_at(name, CVG_RELAXED);
        cr_assert_eq(cvg_replica_lock(r[i]), CVG_OK, "lock %d", i);
    }
    for (int i = 0; i < N_REPLICAS; i++) {
        cr_expect_eq(cvg_replica_lock(r[i]), CVG_EBUSY, "relock %d", i);
    }
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, unlock_from_elsewhere, r[0]), 0);
    pthread_join(th, NULL);
    cr_expect_eq(cvg_replica_lock(r[0]), CVG_EBUSY, "still held here");
    for (int i = 0; i < N_REPLICAS; i++) {
        cvg_replica_unlock(r[i]);
        cr_expect_eq(cvg_replica_write(r[i], noop, NULL), CVG_OK, "%d", i);
        cvg_replica_close(r[i]);
    }
}

Test(group, a_read_only_replica_refuses_the_call)
{
    const char *dir = cvg_test_dir("group-ro");
    cvg_replica *r = NULL;
    cr_assert_eq(cvg_replica_open(dir, NULL, &r), CVG_OK);
    cvg_replica_close(r);
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.read_only = true;
    cr_assert_eq(cvg_replica_open(dir, &o, &r), CVG_OK, "%s",
                 cvg_replica_errmsg(NULL));
    call c = {.r = r, .ops = 1};
    cr_expect_eq(cvg_replica_write(r, add_ops, &c), CVG_EREADONLY);
    cvg_replica_close(r);
}
