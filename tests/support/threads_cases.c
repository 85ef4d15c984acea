/*
 * Scenarios with threads. The library starts none, and a replica is used by
 * one thread at a time; these check what that promise rests on, under
 * ThreadSanitizer too. Workers never call a test framework: each keeps its
 * first failure, and the scenario reports it after the join.
 */
#define _POSIX_C_SOURCE 200809L
#include "threads_cases.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "converge.h"
#include "converge/testing.h"

#include "common.h"
#include "digest.h"
#include "testutil.h"

#define NTHREADS 4
#define ROUNDS 24

static const cvg_key COUNT = {"stock", "item", "qty"};
static const cvg_key NAME = {"stock", "item", "name"};
static const cvg_key NOTE = {"stock", "item", "note"};
static const cvg_key TAGS = {"stock", "item", "tags"};

static int fail(cvg_test_failure *f, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Keep the first failure only: later ones are usually its consequences. */
static int
fail(cvg_test_failure *f, int rc, const char *fmt, ...)
{
    if (f->rc == CVG_OK) {
        f->rc = rc;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(f->what, sizeof f->what, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* A worker's failure becomes the scenario's, named after the worker. */
static void
adopt(cvg_test_failure *f, const cvg_test_failure *w, int id)
{
    if (w->rc != CVG_OK) {
        fail(f, w->rc, "thread %d: %s", id, w->what);
    }
}

static int
open_replica(const char *dir, cvg_replica **out)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = CVG_RELAXED; /* speed: crash safety is tested elsewhere */
    o.map_size = 1 << 20;       /* small maps open fast; they grow */
    return cvg_replica_open(dir, &o, out);
}

/* A fresh directory per replica, made on the calling thread
 * (cvg_test_dir() returns static storage). */
static void
make_dir(char *out, size_t len, const char *scenario, int i, int j)
{
    char name[64];
    snprintf(name, sizeof name, "%s-%d-%d", scenario, i, j);
    snprintf(out, len, "%s", cvg_test_dir(name));
}

/* One write transaction: an increment, a register, a multi-value register
 * and a set element named after the writer and the round. */
static int
write_round(cvg_replica *r, int who, int round, cvg_test_failure *f)
{
    cvg_txn *t;
    int rc = cvg_txn_begin(r, 0, &t);
    if (rc != CVG_OK) {
        return fail(f, rc, "write begin, round %d", round);
    }
    char tag[32];
    snprintf(tag, sizeof tag, "w%d-r%d", who, round);
    cvg_value name = cvg_value_int(who * 1000 + round);
    cvg_value note = cvg_value_string(tag);
    rc = cvg_counter_add(t, &COUNT, 1, NULL);
    if (rc == CVG_OK) {
        rc = cvg_register_set(t, &NAME, &name, NULL);
    }
    if (rc == CVG_OK) {
        rc = cvg_mvregister_set(t, &NOTE, &note, NULL);
    }
    if (rc == CVG_OK) {
        rc = cvg_set_add(t, &TAGS, &note, NULL);
    }
    if (rc != CVG_OK) {
        cvg_txn_abort(t);
        return fail(f, rc, "write, round %d", round);
    }
    rc = cvg_txn_commit(t);
    return rc == CVG_OK ? rc : fail(f, rc, "commit, round %d", round);
}

int
cvg_test_read_counter_set(cvg_replica *r, const cvg_key *counter,
                          const cvg_key *set, int64_t *count, int64_t *elems)
{
    *count = *elems = 0;
    cvg_txn *t;
    int rc = cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t);
    if (rc != CVG_OK) {
        return rc;
    }
    rc = cvg_counter_get(t, counter, count);
    if (rc == CVG_ENOTFOUND) {
        rc = CVG_OK;
    }
    cvg_set_cursor *c = NULL;
    if (rc == CVG_OK) {
        rc = cvg_set_cursor_open(t, set, &c);
    }
    cvg_value v;
    while (rc == CVG_OK && (rc = cvg_set_cursor_next(c, &v)) == CVG_OK) {
        ++*elems;
    }
    cvg_set_cursor_close(c);
    cvg_txn_abort(t);
    return rc == CVG_DONE || rc == CVG_ENOTFOUND ? CVG_OK : rc;
}

/* The counter and the number of tags, in one read transaction. */
static int
read_totals(cvg_replica *r, int64_t *count, int64_t *tags)
{
    return cvg_test_read_counter_set(r, &COUNT, &TAGS, count, tags);
}

/* A sync over a link that drops, duplicates, reorders and cuts: it may
 * break the session, never the replicas. */
static void
faulty_sync(cvg_replica *a, cvg_replica *b, uint64_t *rng)
{
    cvg_link_options o;
    cvg_link_options_init(&o);
    o.seed = cvg_test_rand(rng);
    o.drop_pct = 10;
    o.dup_pct = 10;
    o.reorder_pct = 10;
    o.cut_pct = 5;
    cvg_link *l;
    if (cvg_link_new(&o, &l) == CVG_OK) {
        /* CVG_DONE (a broken session) is what faults are for. */
        int rc = cvg_link_sync(l, a, b, 40, NULL);
        (void)rc;
        cvg_link_free(l);
    }
}

/* Both replicas hold the same state, with all @p writes rounds in it. */
static int
check_converged(cvg_replica *a, cvg_replica *b, int64_t writes,
                cvg_test_failure *f)
{
    char *da = NULL, *db = NULL;
    int rc = cvg_test_digest(a, &da);
    if (rc == CVG_OK) {
        rc = cvg_test_digest(b, &db);
    }
    if (rc != CVG_OK) {
        fail(f, rc, "digest");
    } else if (strcmp(da, db) != 0) {
        rc = fail(f, CVG_ECORRUPT, "the replicas differ");
    }
    free(da);
    free(db);
    if (rc != CVG_OK) {
        return rc;
    }
    int64_t count, tags;
    rc = read_totals(a, &count, &tags);
    if (rc != CVG_OK) {
        return fail(f, rc, "read the totals");
    }
    if (count != writes || tags != writes) {
        return fail(f, CVG_ECORRUPT,
                    "a write was lost: counter %lld, set %lld, wanted %lld",
                    (long long)count, (long long)tags, (long long)writes);
    }
    return CVG_OK;
}

/* ---- Replicas owned by one thread each ----------------------------------- */

typedef struct own_pair {
    int id;
    char dirs[2][512];
    cvg_replica *r[2];
    cvg_test_failure f;
} own_pair;

static void *
own_pair_run(void *arg)
{
    own_pair *p = arg;
    uint64_t rng = 0x5EED0000u + (uint64_t)p->id;
    for (int i = 0; i < 2; i++) {
        int rc = open_replica(p->dirs[i], &p->r[i]);
        if (rc != CVG_OK) {
            fail(&p->f, rc, "open %s", p->dirs[i]);
            return NULL;
        }
    }
    for (int k = 0; k < ROUNDS; k++) {
        cvg_replica *w = p->r[k % 2];
        if (write_round(w, p->id, k, &p->f) != CVG_OK) {
            return NULL;
        }
        int64_t count, tags;
        int rc = read_totals(w, &count, &tags);
        if (rc != CVG_OK || count > k + 1 || tags > k + 1) {
            fail(&p->f, rc ? rc : CVG_ECORRUPT, "read, round %d", k);
            return NULL;
        }
        if (k % 3 == 1) {
            rc = cvg_sync_local(p->r[0], p->r[1], NULL);
            if (rc != CVG_OK) {
                fail(&p->f, rc, "sync, round %d", k);
                return NULL;
            }
        } else if (k % 3 == 2) {
            faulty_sync(p->r[0], p->r[1], &rng);
        }
    }
    int rc = cvg_sync_local(p->r[0], p->r[1], NULL);
    if (rc != CVG_OK) {
        fail(&p->f, rc, "the last sync");
    }
    return NULL;
}

int
cvg_test_threads_own_pairs(cvg_test_failure *f)
{
    own_pair pairs[NTHREADS];
    pthread_t th[NTHREADS];
    memset(pairs, 0, sizeof pairs);
    memset(f, 0, sizeof *f);
    for (int t = 0; t < NTHREADS; t++) {
        pairs[t].id = t;
        for (int i = 0; i < 2; i++) {
            make_dir(pairs[t].dirs[i], sizeof pairs[t].dirs[i], "own", t, i);
        }
    }
    /* Each thread opens its replicas itself: opening runs concurrently. */
    int started = 0;
    for (; started < NTHREADS; started++) {
        if (pthread_create(&th[started], NULL, own_pair_run, &pairs[started]) !=
            0) {
            fail(f, CVG_ELIMIT, "cannot start a thread");
            break;
        }
    }
    for (int t = 0; t < started; t++) {
        pthread_join(th[t], NULL);
    }
    for (int t = 0; t < NTHREADS; t++) {
        adopt(f, &pairs[t].f, t);
        if (f->rc == CVG_OK) {
            check_converged(pairs[t].r[0], pairs[t].r[1], ROUNDS, f);
        }
        cvg_replica_close(pairs[t].r[0]);
        cvg_replica_close(pairs[t].r[1]);
    }
    return f->rc;
}

/* ---- A ring of replicas, each behind its own mutex ----------------------- */

typedef struct ring {
    cvg_replica *r[NTHREADS];
    pthread_mutex_t lock[NTHREADS];
} ring;

typedef struct ring_worker {
    ring *ring;
    int id;
    cvg_test_failure f;
} ring_worker;

static void *
ring_run(void *arg)
{
    ring_worker *w = arg;
    ring *g = w->ring;
    int me = w->id;
    uint64_t rng = 0x7100u + (uint64_t)me;
    for (int k = 0; k < ROUNDS; k++) {
        pthread_mutex_lock(&g->lock[me]);
        int rc = write_round(g->r[me], me, k, &w->f);
        pthread_mutex_unlock(&g->lock[me]);
        if (rc != CVG_OK) {
            return NULL;
        }
        /* A peer owned by another thread. Locks are taken in index order,
         * so two threads that pick each other cannot deadlock. */
        int peer = (me + 1 + k % (NTHREADS - 1)) % NTHREADS;
        int lo = me < peer ? me : peer, hi = me < peer ? peer : me;
        pthread_mutex_lock(&g->lock[lo]);
        pthread_mutex_lock(&g->lock[hi]);
        if (k % 2 == 0) {
            rc = cvg_sync_local(g->r[me], g->r[peer], NULL);
        } else {
            faulty_sync(g->r[me], g->r[peer], &rng);
        }
        pthread_mutex_unlock(&g->lock[hi]);
        pthread_mutex_unlock(&g->lock[lo]);
        if (rc != CVG_OK) {
            fail(&w->f, rc, "sync %d<->%d, round %d", me, peer, k);
            return NULL;
        }
    }
    return NULL;
}

int
cvg_test_threads_ring(cvg_test_failure *f)
{
    ring g;
    ring_worker w[NTHREADS];
    pthread_t th[NTHREADS];
    memset(&g, 0, sizeof g);
    memset(w, 0, sizeof w);
    memset(f, 0, sizeof *f);
    for (int i = 0; i < NTHREADS; i++) {
        char dir[512];
        make_dir(dir, sizeof dir, "ring", i, 0);
        int rc = open_replica(dir, &g.r[i]);
        if (rc != CVG_OK) {
            fail(f, rc, "open %s", dir);
        }
        pthread_mutex_init(&g.lock[i], NULL);
    }
    int started = 0;
    for (; f->rc == CVG_OK && started < NTHREADS; started++) {
        w[started].ring = &g;
        w[started].id = started;
        if (pthread_create(&th[started], NULL, ring_run, &w[started]) != 0) {
            fail(f, CVG_ELIMIT, "cannot start a thread");
            break;
        }
    }
    for (int t = 0; t < started; t++) {
        pthread_join(th[t], NULL);
        adopt(f, &w[t].f, t);
    }
    /* Heal: a star through replica 0, twice, then everyone is equal. */
    for (int pass = 0; f->rc == CVG_OK && pass < 2; pass++) {
        for (int i = 1; i < NTHREADS; i++) {
            int rc = cvg_sync_local(g.r[0], g.r[i], NULL);
            if (rc != CVG_OK) {
                fail(f, rc, "heal 0<->%d", i);
            }
        }
    }
    for (int i = 1; f->rc == CVG_OK && i < NTHREADS; i++) {
        check_converged(g.r[0], g.r[i], NTHREADS * ROUNDS, f);
    }
    for (int i = 0; i < NTHREADS; i++) {
        cvg_replica_close(g.r[i]);
        pthread_mutex_destroy(&g.lock[i]);
    }
    return f->rc;
}

/* ---- One replica shared by threads under one mutex ----------------------- */

typedef struct shared {
    cvg_replica *r;
    pthread_mutex_t lock;
    cvg_replica *mirror; /* only thread 0 syncs with it */
} shared;

typedef struct shared_worker {
    shared *s;
    int id;
    cvg_test_failure f;
} shared_worker;

static void *
shared_run(void *arg)
{
    shared_worker *w = arg;
    shared *s = w->s;
    int64_t seen = 0;
    for (int k = 0; k < ROUNDS; k++) {
        /* Every transaction, reads too, holds the mutex: the handle's
         * state (clock, version vector, open writer) belongs to one thread
         * at a time. */
        pthread_mutex_lock(&s->lock);
        int rc = write_round(s->r, w->id, k, &w->f);
        pthread_mutex_unlock(&s->lock);
        if (rc != CVG_OK) {
            return NULL;
        }
        int64_t count, tags;
        pthread_mutex_lock(&s->lock);
        rc = read_totals(s->r, &count, &tags);
        pthread_mutex_unlock(&s->lock);
        if (rc != CVG_OK) {
            fail(&w->f, rc, "read, round %d", k);
            return NULL;
        }
        /* This thread's own increments are in, and nothing goes back. */
        if (count < seen || count < k + 1 || tags != count) {
            fail(&w->f, CVG_ECORRUPT, "read %lld after %lld, round %d",
                 (long long)count, (long long)seen, k);
            return NULL;
        }
        seen = count;
        if (w->id == 0 && k % 4 == 3) {
            pthread_mutex_lock(&s->lock);
            rc = cvg_sync_local(s->r, s->mirror, NULL);
            pthread_mutex_unlock(&s->lock);
            if (rc != CVG_OK) {
                fail(&w->f, rc, "sync with the mirror, round %d", k);
                return NULL;
            }
        }
    }
    return NULL;
}

int
cvg_test_threads_shared(cvg_test_failure *f)
{
    shared s;
    shared_worker w[NTHREADS];
    pthread_t th[NTHREADS];
    memset(&s, 0, sizeof s);
    memset(w, 0, sizeof w);
    memset(f, 0, sizeof *f);
    char dir[512];
    make_dir(dir, sizeof dir, "shared", 0, 0);
    int rc = open_replica(dir, &s.r);
    if (rc == CVG_OK) {
        make_dir(dir, sizeof dir, "shared", 0, 1);
        rc = open_replica(dir, &s.mirror);
    }
    if (rc != CVG_OK) {
        fail(f, rc, "open %s", dir);
    }
    pthread_mutex_init(&s.lock, NULL);
    int started = 0;
    for (; f->rc == CVG_OK && started < NTHREADS; started++) {
        w[started].s = &s;
        w[started].id = started;
        if (pthread_create(&th[started], NULL, shared_run, &w[started]) != 0) {
            fail(f, CVG_ELIMIT, "cannot start a thread");
            break;
        }
    }
    for (int t = 0; t < started; t++) {
        pthread_join(th[t], NULL);
        adopt(f, &w[t].f, t);
    }
    if (f->rc == CVG_OK) {
        /* 4 ops a round, each a dot of the shared replica: none lost. */
        cvg_replica_stats st;
        rc = cvg_replica_stats_get(s.r, &st, sizeof st);
        if (rc != CVG_OK) {
            fail(f, rc, "stats");
        } else if (st.op_count != (uint64_t)NTHREADS * ROUNDS * 4) {
            fail(f, CVG_ECORRUPT, "%llu ops in the log, wanted %d",
                 (unsigned long long)st.op_count, NTHREADS * ROUNDS * 4);
        }
    }
    if (f->rc == CVG_OK) {
        rc = cvg_sync_local(s.r, s.mirror, NULL);
        if (rc != CVG_OK) {
            fail(f, rc, "the last sync with the mirror");
        }
    }
    if (f->rc == CVG_OK) {
        check_converged(s.r, s.mirror, NTHREADS * ROUNDS, f);
    }
    cvg_replica_close(s.mirror);
    cvg_replica_close(s.r);
    pthread_mutex_destroy(&s.lock);
    return f->rc;
}

/* ---- A read transaction moves between threads ---------------------------- */

typedef struct handoff {
    cvg_txn *txn;
    int64_t count;
    int rc;
} handoff;

static void *
read_elsewhere(void *arg)
{
    handoff *h = arg;
    h->rc = cvg_counter_get(h->txn, &COUNT, &h->count);
    return NULL;
}

static void *
end_elsewhere(void *arg)
{
    handoff *h = arg;
    cvg_txn_abort(h->txn);
    return NULL;
}

/* Read transactions do not pin a thread (MDB_NOTLS): begun here, read in
 * a second thread, ended in a third; the snapshot ignores a later commit.
 * Write transactions may not move: LMDB's writer lock is a mutex that only
 * the thread that took it can release. */
int
cvg_test_threads_read_handoff(cvg_test_failure *f)
{
    memset(f, 0, sizeof *f);
    char dir[512];
    make_dir(dir, sizeof dir, "handoff", 0, 0);
    cvg_replica *r = NULL;
    int rc = open_replica(dir, &r);
    if (rc != CVG_OK) {
        return fail(f, rc, "open %s", dir);
    }
    handoff h = {0};
    pthread_t th;
    if (write_round(r, 0, 0, f) != CVG_OK) {
        goto out;
    }
    rc = cvg_txn_begin(r, CVG_TXN_READ_ONLY, &h.txn);
    if (rc != CVG_OK) {
        fail(f, rc, "read begin");
        goto out;
    }
    if (write_round(r, 0, 1, f) == CVG_OK &&
        pthread_create(&th, NULL, read_elsewhere, &h) == 0) {
        pthread_join(th, NULL);
        if (h.rc != CVG_OK) {
            fail(f, h.rc, "read in another thread");
        } else if (h.count != 1) {
            fail(f, CVG_ECORRUPT, "the snapshot saw a later commit");
        }
    }
    if (pthread_create(&th, NULL, end_elsewhere, &h) == 0) {
        pthread_join(th, NULL);
    } else {
        cvg_txn_abort(h.txn);
    }
    int64_t count, tags;
    rc = read_totals(r, &count, &tags);
    if (rc != CVG_OK) {
        fail(f, rc, "read after the handoff");
    } else if (count != 2) {
        fail(f, CVG_ECORRUPT, "counter %lld after two writes",
             (long long)count);
    }
out:
    cvg_replica_close(r);
    return f->rc;
}

/* ---- Fault injection is per thread --------------------------------------- */

typedef struct armer {
    int fired;  /* times the armed allocation failed, as it should */
    int stolen; /* times it did not: another thread used it up */
} armer;

static void *
arm_and_allocate(void *arg)
{
    armer *a = arg;
    for (int k = 0; k < 200 * ROUNDS; k++) {
        cvg__alloc_fail_after(1);
        void *p = cvg__alloc(16);
        cvg__alloc_fail_after(0);
        if (p == NULL) {
            a->fired++;
        } else {
            a->stolen++;
            cvg__free(p);
        }
    }
    return NULL;
}

/* A fault test's countdown belongs to its thread: armed in one thread, it
 * fails that thread's next allocation and never another's, so a replica
 * busy in another thread meanwhile loses no write. */
int
cvg_test_threads_fault_injection(cvg_test_failure *f)
{
    memset(f, 0, sizeof *f);
    char dir[512];
    make_dir(dir, sizeof dir, "faults", 0, 0);
    cvg_replica *r = NULL;
    int rc = open_replica(dir, &r);
    if (rc != CVG_OK) {
        return fail(f, rc, "open %s", dir);
    }
    armer a = {0};
    pthread_t th;
    if (pthread_create(&th, NULL, arm_and_allocate, &a) != 0) {
        cvg_replica_close(r);
        return fail(f, CVG_ELIMIT, "cannot start a thread");
    }
    for (int k = 0; k < ROUNDS * 4 && f->rc == CVG_OK; k++) {
        write_round(r, 0, k, f);
    }
    pthread_join(th, NULL);
    if (f->rc == CVG_OK && a.stolen != 0) {
        fail(f, CVG_ENOMEM, "%d armed allocations of %d did not fail", a.stolen,
             a.stolen + a.fired);
    }
    cvg_replica_close(r);
    return f->rc;
}
