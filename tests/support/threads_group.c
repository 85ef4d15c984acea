/*
 * Group commit under threads (cvg_replica_write()), against an oracle.
 *
 * Each schedule starts writers that each make CALLS calls. A call adds a
 * few random deltas to its writer's counter, one to a shared count of
 * calls, and an element naming the call to a shared set; one call in five
 * then writes a register over its own counter, which fails with CVG_ETYPE
 * and must take the whole call with it. Writer 0 also makes some of its
 * writes as plain transactions under cvg_replica_lock(), between the
 * groups. A reader takes the lock over and over while they run and checks
 * that every call it sees is whole (the count of calls equals the set's
 * size) and that nothing goes back. At the end each counter must equal
 * the oracle's sum of its writer's calls that succeeded, the set must hold
 * exactly their elements, and the log exactly their ops.
 *
 * Schedules differ by seed: deltas, which calls fail, and pauses between
 * calls, so that groups form in many sizes. The first schedule is durable.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "converge.h"

#include "testutil.h"
#include "threads_cases.h"

#define WRITERS 6
#define CALLS 30
#define SCHEDULES 4
#define READS_MAX 5000 /* the reader stops by itself */

static const cvg_key CALLS_KEY = {"group", "all", "calls"};
static const cvg_key SEEN_KEY = {"group", "all", "seen"};

typedef struct call {
    int who, k;
    int64_t deltas[4];
    int n;
    bool bad;
    int runs;
} call;

typedef struct writer {
    cvg_replica *r;
    int who;
    uint64_t rng;
    int64_t expected;  /* the oracle: the sum of the good calls' deltas */
    uint64_t good_ops; /* ops of the good calls */
    int good;
    bool bad[CALLS];
    cvg_test_failure f;
} writer;

typedef struct reader {
    cvg_replica *r;
    atomic_bool *stop;
    cvg_test_failure f;
} reader;

static int wfail(cvg_test_failure *f, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
wfail(cvg_test_failure *f, int rc, const char *fmt, ...)
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

static void
counter_key(int who, char *buf, size_t len, cvg_key *out)
{
    snprintf(buf, len, "w%d", who);
    cvg_key k = {"group", buf, "n"};
    *out = k;
}

static void
element_name(int who, int k, char *buf, size_t len)
{
    snprintf(buf, len, "w%d-c%d", who, k);
}

/* The call's writes; the ones that fail end with a type clash. */
static int
do_call(cvg_txn *t, void *ctx)
{
    call *c = ctx;
    c->runs++;
    char kbuf[16], ebuf[32];
    cvg_key k;
    counter_key(c->who, kbuf, sizeof kbuf, &k);
    element_name(c->who, c->k, ebuf, sizeof ebuf);
    cvg_value e = cvg_value_string(ebuf);
    int rc = CVG_OK;
    for (int i = 0; rc == CVG_OK && i < c->n; i++) {
        rc = cvg_counter_add(t, &k, c->deltas[i], NULL);
    }
    if (rc == CVG_OK) {
        rc = cvg_counter_add(t, &CALLS_KEY, 1, NULL);
    }
    if (rc == CVG_OK) {
        rc = cvg_set_add(t, &SEEN_KEY, &e, NULL);
    }
    if (rc == CVG_OK && c->bad) {
        cvg_value v = cvg_value_int(1);
        rc = cvg_register_set(t, &k, &v, NULL); /* CVG_ETYPE */
    }
    return rc;
}

/* Writer 0's plain transactions: the same call, under the lock. */
static int
locked_call(cvg_replica *r, call *c)
{
    int rc = cvg_replica_lock(r);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg_txn *t;
    rc = cvg_txn_begin(r, 0, &t);
    if (rc == CVG_OK) {
        rc = do_call(t, c);
        rc = rc == CVG_OK ? cvg_txn_commit(t) : (cvg_txn_abort(t), rc);
    }
    cvg_replica_unlock(r);
    return rc;
}

static void
pause_us(uint64_t us)
{
    struct timespec ts = {0, (long)(us * 1000)};
    nanosleep(&ts, NULL);
}

static void *
write_run(void *arg)
{
    writer *w = arg;
    for (int k = 0; k < CALLS && w->f.rc == CVG_OK; k++) {
        call c = {.who = w->who, .k = k};
        c.n = 1 + (int)cvg_test_below(&w->rng, 4);
        for (int i = 0; i < c.n; i++) {
            c.deltas[i] = 1 + (int64_t)cvg_test_below(&w->rng, 9);
        }
        c.bad = cvg_test_below(&w->rng, 5) == 0;
        bool plain = w->who == 0 && cvg_test_below(&w->rng, 4) == 0;
        int rc = plain ? locked_call(w->r, &c)
                       : cvg_replica_write(w->r, do_call, &c);
        int want = c.bad ? CVG_ETYPE : CVG_OK;
        if (rc != want || c.runs < 1) {
            wfail(&w->f, rc == CVG_OK ? CVG_ECORRUPT : rc,
                  "call %d (%s, %s) returned %s after %d runs", k,
                  plain ? "plain" : "grouped", c.bad ? "bad" : "good",
                  cvg_errname(rc), c.runs);
            break;
        }
        w->bad[k] = c.bad;
        if (!c.bad) {
            w->good++;
            w->good_ops += (uint64_t)c.n + 2;
            for (int i = 0; i < c.n; i++) {
                w->expected += c.deltas[i];
            }
        }
        uint64_t p = cvg_test_below(&w->rng, 4);
        if (p > 0) {
            pause_us(p * 50);
        }
    }
    return NULL;
}

/* The reader: under the lock, every call it sees is whole, and the count
 * never goes back. */
static void *
read_run(void *arg)
{
    reader *rd = arg;
    int64_t last = 0;
    for (int i = 0; i < READS_MAX && !atomic_load(rd->stop); i++) {
        int rc = cvg_replica_lock(rd->r);
        int64_t calls = 0, seen = 0;
        if (rc == CVG_OK) {
            rc = cvg_test_read_counter_set(rd->r, &CALLS_KEY, &SEEN_KEY, &calls,
                                           &seen);
            cvg_replica_unlock(rd->r);
        }
        if (rc != CVG_OK) {
            wfail(&rd->f, rc, "read %d", i);
            break;
        }
        if (calls != seen || calls < last) {
            wfail(&rd->f, CVG_ECORRUPT,
                  "read %d: %lld calls counted, %lld in the set, %lld before",
                  i, (long long)calls, (long long)seen, (long long)last);
            break;
        }
        last = calls;
        pause_us(100);
    }
    return NULL;
}

/* After the join: the oracle against the replica. */
static int
check_end(cvg_replica *r, writer *w, cvg_test_failure *f)
{
    cvg_txn *t;
    int rc = cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t);
    if (rc != CVG_OK) {
        return wfail(f, rc, "final read");
    }
    int good = 0;
    uint64_t ops = 0;
    for (int i = 0; rc == CVG_OK && i < WRITERS; i++) {
        char kbuf[16], ebuf[32];
        cvg_key k;
        counter_key(i, kbuf, sizeof kbuf, &k);
        int64_t v = 0;
        rc = cvg_counter_get(t, &k, &v);
        if (rc == CVG_ENOTFOUND) {
            rc = CVG_OK;
        }
        if (rc == CVG_OK && v != w[i].expected) {
            rc = wfail(f, CVG_ECORRUPT, "writer %d: counter %lld, oracle %lld",
                       i, (long long)v, (long long)w[i].expected);
        }
        for (int k2 = 0; rc == CVG_OK && k2 < CALLS; k2++) {
            element_name(i, k2, ebuf, sizeof ebuf);
            cvg_value e = cvg_value_string(ebuf);
            bool in = false;
            rc = cvg_set_contains(t, &SEEN_KEY, &e, &in);
            if (rc == CVG_OK && in == w[i].bad[k2]) {
                rc = wfail(f, CVG_ECORRUPT, "element %s is %s", ebuf,
                           in ? "in, from a call that failed" : "missing");
            }
        }
        good += w[i].good;
        ops += w[i].good_ops;
    }
    int64_t calls = 0;
    if (rc == CVG_OK) {
        rc = cvg_counter_get(t, &CALLS_KEY, &calls);
    }
    cvg_txn_abort(t);
    if (rc == CVG_OK && calls != good) {
        rc = wfail(f, CVG_ECORRUPT, "%lld calls counted, %d succeeded",
                   (long long)calls, good);
    }
    cvg_replica_stats st;
    if (rc == CVG_OK) {
        rc = cvg_replica_stats_get(r, &st, sizeof st);
    }
    if (rc == CVG_OK && st.op_count != ops) {
        rc = wfail(f, CVG_ECORRUPT, "%llu ops in the log, the calls made %llu",
                   (unsigned long long)st.op_count, (unsigned long long)ops);
    }
    return rc;
}

static int
one_schedule(int s, uint64_t seed, cvg_test_failure *f)
{
    char name[32];
    snprintf(name, sizeof name, "group-%d", s);
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = s == 0 ? CVG_DURABLE : CVG_RELAXED;
    o.map_size = 1 << 20;
    cvg_replica *r;
    int rc = cvg_replica_open(cvg_test_dir(name), &o, &r);
    if (rc != CVG_OK) {
        return wfail(f, rc, "open");
    }
    writer w[WRITERS];
    pthread_t th[WRITERS + 1];
    memset(w, 0, sizeof w);
    atomic_bool stop;
    atomic_init(&stop, false);
    reader rd = {.r = r, .stop = &stop};
    int started = 0;
    bool reading = pthread_create(&th[WRITERS], NULL, read_run, &rd) == 0;
    for (; reading && started < WRITERS; started++) {
        w[started].r = r;
        w[started].who = started;
        w[started].rng = seed ^ ((uint64_t)(started + 1) << 32);
        if (pthread_create(&th[started], NULL, write_run, &w[started]) != 0) {
            break;
        }
    }
    for (int i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        if (w[i].f.rc != CVG_OK) {
            wfail(f, w[i].f.rc, "writer %d: %s", i, w[i].f.what);
        }
    }
    atomic_store(&stop, true);
    if (reading) {
        pthread_join(th[WRITERS], NULL);
        if (rd.f.rc != CVG_OK) {
            wfail(f, rd.f.rc, "reader: %s", rd.f.what);
        }
    }
    if (!reading || started < WRITERS) {
        wfail(f, CVG_ELIMIT, "cannot start a thread");
    }
    if (f->rc == CVG_OK) {
        check_end(r, w, f);
    }
    cvg_replica_close(r);
    return f->rc;
}

int
cvg_test_threads_group(cvg_test_failure *f)
{
    memset(f, 0, sizeof *f);
    uint64_t seed = cvg_test_seed(0x6a09e667f3bcc908ull);
    for (int s = 0; s < SCHEDULES && f->rc == CVG_OK; s++) {
        uint64_t sseed = seed + (uint64_t)s * 0x9E3779B97F4A7C15ull;
        if (one_schedule(s, sseed, f) != CVG_OK) {
            char what[sizeof f->what + 64];
            snprintf(what, sizeof what, "schedule %d (CVG_TEST_SEED=%llu): %s",
                     s, (unsigned long long)seed, f->what);
            snprintf(f->what, sizeof f->what, "%.*s", (int)sizeof f->what - 1,
                     what);
        }
    }
    return f->rc;
}
