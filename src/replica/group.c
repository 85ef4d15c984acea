/*
 * Group commit: writes of many threads share one commit, and in durable
 * mode one sync to disk, so that N threads committing single ops are not
 * N syncs in a row.
 *
 * How it works. Each cvg_replica_write() call is a member on the stack of
 * its thread, queued under the group mutex, with a condition of its own
 * (waking only the threads whose calls are done, not every waiter, keeps
 * 32 threads from all waking at each commit). When no group is being
 * committed, the caller becomes the leader: it takes the queue (up to
 * GROUP_MAX members), takes the replica's lock, runs every member's
 * function in one write transaction, commits it, and hands each member
 * the result. The calls that arrive while a leader commits wait in the
 * queue, and the next of them to wake leads them all as the next group;
 * so the slower the sync, the larger the groups; when a leader is done,
 * it wakes the head of the queue to lead next. The leader begins and
 * commits the LMDB transaction on its own thread, as LMDB's writer lock
 * requires.
 *
 * A member whose function fails must leave nothing behind, but its writes
 * are mixed with the others' in the transaction's cache. The group is then
 * aborted and run again without it (its function gets its own code back);
 * a function may therefore run more than once, and only what it did
 * through the transaction counts. A member that fails with CVG_ELIMIT
 * because the group as a whole grew past a transaction's ops is not at
 * fault: the members before it are committed as a group of their own and
 * it heads the next one.
 *
 * The replica's lock (cvg_replica_lock()) is the one mutex every user of
 * the handle takes: the leader around each group, the background syncer
 * around each turn, the app around its own transactions. The lock keeps
 * a mark of the thread that holds it, which turns the calls that would
 * wait for themselves (a write, or a second lock, from inside a group or
 * a locked section) into CVG_EBUSY.
 */
#include "replica_int.h"

/* Members committed together at most. Past some dozens the sync no longer
 * dominates the group's time, and a bound keeps a failing member's reruns
 * (at most one per member) and the leader's stack array small. */
#define GROUP_MAX 128

/* A byte per thread, whose address names the thread: the replica's lock
 * keeps its holder's (cvg__group.owner). Only the holder writes the mark,
 * so a thread reads its own address there exactly when it holds the lock;
 * there is no list to fill, whatever number of replicas a thread locks. */
static _Thread_local char this_thread;

static bool
held_here(cvg_replica *r)
{
    return atomic_load_explicit(&r->group.owner, memory_order_relaxed) ==
           &this_thread;
}

int
cvg__group_init(cvg_replica *r)
{
    cvg__group *g = &r->group;
    if (pthread_mutex_init(&g->lock, NULL) != 0) {
        return CVG_ENOMEM;
    }
    if (pthread_mutex_init(&g->mu, NULL) != 0) {
        pthread_mutex_destroy(&g->lock);
        return CVG_ENOMEM;
    }
    g->ready = true;
    return CVG_OK;
}

void
cvg__group_destroy(cvg_replica *r)
{
    cvg__group *g = &r->group;
    if (g->ready) {
        pthread_mutex_destroy(&g->mu);
        pthread_mutex_destroy(&g->lock);
        g->ready = false;
    }
}

int
cvg_replica_lock(cvg_replica *r)
{
    if (r == NULL) {
        return CVG_EINVAL;
    }
    if (held_here(r)) {
        return CVG_EBUSY; /* not recursive: it would wait for itself */
    }
    pthread_mutex_lock(&r->group.lock);
    atomic_store_explicit(&r->group.owner, &this_thread, memory_order_relaxed);
    return CVG_OK;
}

void
cvg_replica_unlock(cvg_replica *r)
{
    if (r != NULL && held_here(r)) {
        atomic_store_explicit(&r->group.owner, NULL, memory_order_relaxed);
        pthread_mutex_unlock(&r->group.lock);
    }
}

static void
settle(cvg__group_member **m, size_t n, int rc)
{
    for (size_t i = 0; i < n; i++) {
        m[i]->rc = rc;
    }
}

/* Run members m[0..n) (a working copy: failed members are taken out of it)
 * in as few commits as their results allow; each member's rc is set. */
static void
run_group(cvg_replica *r, cvg__group_member **m, size_t n, uint64_t *commits)
{
    while (n > 0) {
        cvg_txn *t = NULL;
        int rc = cvg_txn_begin(r, 0, &t);
        if (rc != CVG_OK) {
            settle(m, n, rc);
            return;
        }
        t->grouped = true;
        size_t i = 0;
        for (; i < n; i++) {
            rc = m[i]->fn(t, m[i]->ctx);
            if (rc == CVG_OK) {
                rc = cvg__txn_failed(t); /* it failed the whole transaction */
            }
            if (rc != CVG_OK) {
                break;
            }
        }
        t->grouped = false;
        if (i == n) {
            settle(m, n, cvg_txn_commit(t));
            (*commits)++;
            return;
        }
        cvg_txn_abort(t);
        if (rc == CVG_ELIMIT && i > 0) {
            /* Too many ops for one transaction together, not alone. */
            run_group(r, m, i, commits);
            m += i;
            n -= i;
            continue;
        }
        m[i]->rc = rc;
        memmove(&m[i], &m[i + 1], (n - i - 1) * sizeof *m);
        n--;
    }
}

int
cvg_replica_write(cvg_replica *r, cvg_write_fn *fn, void *ctx)
{
    if (r == NULL || fn == NULL) {
        return CVG_EINVAL;
    }
    if (held_here(r)) {
        return CVG_EBUSY; /* inside a group, or under the replica's lock */
    }
    cvg__group *g = &r->group;
    cvg__group_member me = {.fn = fn, .ctx = ctx};
    if (pthread_cond_init(&me.cv, NULL) != 0) {
        return CVG_ENOMEM;
    }
    pthread_mutex_lock(&g->mu);
    if (g->tail != NULL) {
        g->tail->next = &me;
    } else {
        g->head = &me;
    }
    g->tail = &me;
    while (!me.done && g->leading) {
        pthread_cond_wait(&me.cv, &g->mu);
    }
    if (me.done) {
        pthread_mutex_unlock(&g->mu);
        pthread_cond_destroy(&me.cv);
        return me.rc;
    }
    /* Lead groups from the head of the queue until ours is committed. */
    g->leading = true;
    while (!me.done) {
        cvg__group_member *batch[GROUP_MAX], *work[GROUP_MAX];
        size_t n = 0;
        while (g->head != NULL && n < GROUP_MAX) {
            batch[n] = work[n] = g->head;
            g->head = g->head->next;
            n++;
        }
        if (g->head == NULL) {
            g->tail = NULL;
        }
        pthread_mutex_unlock(&g->mu);

        uint64_t commits = 0;
        int rc = cvg_replica_lock(r);
        if (rc == CVG_OK) {
            run_group(r, work, n, &commits);
            cvg_replica_unlock(r);
        } else {
            settle(work, n, rc);
        }

        pthread_mutex_lock(&g->mu);
        g->commits += commits;
        g->members += n;
        for (size_t i = 0; i < n; i++) {
            /* Its thread may return (and its member go) once done is set,
             * which it sees only after we let go of the mutex. */
            batch[i]->done = true;
            pthread_cond_signal(&batch[i]->cv);
        }
    }
    g->leading = false;
    if (g->head != NULL) {
        pthread_cond_signal(&g->head->cv); /* it leads the next group */
    }
    pthread_mutex_unlock(&g->mu);
    pthread_cond_destroy(&me.cv);
    return me.rc;
}
