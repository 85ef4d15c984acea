/*
 * An in-memory link between two sessions that misbehaves on purpose: it
 * drops, duplicates, delays, reorders and cuts messages, from a seeded
 * PRNG, and can be partitioned. It drives sessions only through their
 * public functions, exactly as an app's transport would, and it is built
 * as a library of its own on the public API alone (converge/testing.h):
 * so it allocates with the C library, not the core's allocator.
 * cvg_link_sync() is the whole sync most tests want: two sessions opened,
 * run over the link, and closed, with how each ended.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "converge/testing.h"

#define DEFAULT_DELAY_STEPS 8u
#define DEFAULT_QUEUE_MAX 256u

/* A message in flight: the link's own copy, because a session's output is
 * a view valid only until the session's next call. */
typedef struct flight {
    uint8_t *p;
    size_t len;
    unsigned wait; /* deliveries still to pass before it may be delivered */
} flight;

/* One direction, oldest first. The array is allocated once, at
 * cvg_link_new(), so a full queue is a fixed limit and not an allocation
 * failure. */
typedef struct queue {
    flight *m;
    size_t n;
} queue;

struct cvg_link {
    cvg_link_options o;
    uint64_t rng;
    bool down;
    queue q[2]; /* q[0]: a -> b, q[1]: b -> a */
    cvg_link_stats stats;
};

/* splitmix64: tiny, and good enough to pick faults; every fault is a pure
 * function of the seed and the order and sizes of the messages. */
static uint64_t
next_rand(cvg_link *l)
{
    uint64_t z = (l->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform enough in [0, n); the modulo bias is irrelevant at these sizes. */
static uint64_t
below(cvg_link *l, uint64_t n)
{
    return n ? next_rand(l) % n : 0;
}

/* A fault rate of 0 draws nothing, so a fault-free link consumes the PRNG
 * only to pick directions, and turning one fault on does not shift where
 * the others would have struck more than it must. */
static bool
roll(cvg_link *l, unsigned pct)
{
    return pct > 0 && below(l, 100) < pct;
}

void
cvg_link_options_init(cvg_link_options *o)
{
    if (o == NULL) {
        return;
    }
    memset(o, 0, sizeof *o);
    o->version = CVG_LINK_OPTIONS_VERSION;
    o->max_delay_steps = DEFAULT_DELAY_STEPS;
    o->queue_max = DEFAULT_QUEUE_MAX;
}

int
cvg_link_new(const cvg_link_options *o, cvg_link **out)
{
    if (out == NULL) {
        return CVG_EINVAL;
    }
    *out = NULL;
    cvg_link_options defaults;
    if (o == NULL) {
        cvg_link_options_init(&defaults);
        o = &defaults;
    }
    if (o->version == 0 || o->version > CVG_LINK_OPTIONS_VERSION ||
        o->drop_pct > 100 || o->dup_pct > 100 || o->reorder_pct > 100 ||
        o->delay_pct > 100 || o->cut_pct > 100) {
        return CVG_EINVAL;
    }
    cvg_link *l = calloc(1, sizeof *l);
    if (l == NULL) {
        return CVG_ENOMEM;
    }
    l->o = *o;
    if (l->o.max_delay_steps == 0) {
        l->o.max_delay_steps = DEFAULT_DELAY_STEPS;
    }
    if (l->o.queue_max == 0) {
        l->o.queue_max = DEFAULT_QUEUE_MAX;
    }
    l->rng = o->seed;
    /* Both directions in one block: one allocation to fail, not two. */
    flight *m = calloc(l->o.queue_max, 2 * sizeof *m);
    if (m == NULL) {
        free(l);
        return CVG_ENOMEM;
    }
    l->q[0].m = m;
    l->q[1].m = m + l->o.queue_max;
    *out = l;
    return CVG_OK;
}

/* Lose every message in flight; counted, so that the stats always add up
 * (sent = delivered + dropped + in flight). */
static void
drop_all(cvg_link *l)
{
    for (int d = 0; d < 2; d++) {
        queue *q = &l->q[d];
        for (size_t i = 0; i < q->n; i++) {
            free(q->m[i].p);
        }
        l->stats.dropped += q->n;
        q->n = 0;
    }
}

void
cvg_link_free(cvg_link *l)
{
    if (l == NULL) {
        return;
    }
    drop_all(l);
    free(l->q[0].m); /* the block of both queues */
    free(l);
}

void
cvg_link_set_down(cvg_link *l, bool down)
{
    if (l != NULL) {
        l->down = down;
    }
}

void
cvg_link_clear(cvg_link *l)
{
    if (l != NULL) {
        drop_all(l);
    }
}

void
cvg_link_stats_get(const cvg_link *l, cvg_link_stats *out, size_t size)
{
    /* A caller's older (smaller) struct gets the fields it knows. */
    if (l != NULL && out != NULL && size >= sizeof(cvg_link_stats)) {
        memset(out, 0, size);
        memcpy(out, &l->stats, sizeof l->stats);
    }
}

/* Queue a copy of @p msg in direction @p d, if there is room. */
static int
push(cvg_link *l, int d, cvg_bytes msg, unsigned wait)
{
    queue *q = &l->q[d];
    if (q->n == l->o.queue_max) {
        l->stats.dropped++; /* a full router queue drops, it does not block */
        return CVG_OK;
    }
    /* Allocate at least one byte so that an empty message still has a
     * pointer distinct from NULL to hand to cvg_session_input(). */
    uint8_t *p = malloc(msg.len ? msg.len : 1);
    if (p == NULL) {
        l->stats.dropped++;
        return CVG_ENOMEM;
    }
    if (msg.len > 0) {
        memcpy(p, msg.data, msg.len);
    }
    q->m[q->n].p = p;
    q->m[q->n].len = msg.len;
    q->m[q->n].wait = wait;
    q->n++;
    return CVG_OK;
}

/* Take everything session @p s has to say into direction @p d, deciding
 * each message's fate at send time: lost, held back, sent twice. */
static int
send_all(cvg_link *l, cvg_session *s, int d)
{
    cvg_bytes msg;
    while (cvg_session_output(s, &msg) == CVG_OK) {
        /* A partition loses without drawing, so that how long a link was
         * down does not change the faults after it heals. */
        if (l->down || roll(l, l->o.drop_pct)) {
            l->stats.dropped++;
            continue;
        }
        unsigned wait = 0;
        if (roll(l, l->o.delay_pct)) {
            wait = 1 + (unsigned)below(l, l->o.max_delay_steps);
            l->stats.delayed++;
        }
        bool twice = roll(l, l->o.dup_pct);
        int rc = push(l, d, msg, wait);
        if (rc != CVG_OK) {
            return rc;
        }
        if (twice) {
            /* The copy rides right behind the original, as a retransmit
             * that was not needed would; like any message, it is dropped
             * if the queue is full. */
            l->stats.duplicated++;
            rc = push(l, d, msg, wait);
            if (rc != CVG_OK) {
                return rc;
            }
        }
    }
    return CVG_OK;
}

static size_t
count_ready(const queue *q)
{
    size_t k = 0;
    for (size_t i = 0; i < q->n; i++) {
        k += q->m[i].wait == 0;
    }
    return k;
}

/* Time passes by deliveries: each one brings every held message one step
 * closer. When only held messages remain, skip ahead to the first of them,
 * so that a delay postpones a message but never strands it. */
static void
tick(cvg_link *l, unsigned by)
{
    for (int d = 0; d < 2; d++) {
        queue *q = &l->q[d];
        for (size_t i = 0; i < q->n; i++) {
            q->m[i].wait = q->m[i].wait > by ? q->m[i].wait - by : 0;
        }
    }
}

static unsigned
min_wait(const cvg_link *l)
{
    unsigned w = UINT_MAX;
    for (int d = 0; d < 2; d++) {
        const queue *q = &l->q[d];
        for (size_t i = 0; i < q->n; i++) {
            w = w < q->m[i].wait ? w : q->m[i].wait;
        }
    }
    return w;
}

/* Deliver one message (the queues are not both empty). Returns what the
 * receiving session said. */
static int
deliver_one(cvg_link *l, cvg_session *s[2])
{
    size_t ready[2] = {count_ready(&l->q[0]), count_ready(&l->q[1])};
    if (ready[0] + ready[1] == 0) {
        tick(l, min_wait(l));
        ready[0] = count_ready(&l->q[0]);
        ready[1] = count_ready(&l->q[1]);
    }
    int d = ready[0] == 0 ? 1 : ready[1] == 0 ? 0 : (int)below(l, 2);
    queue *q = &l->q[d];

    /* The k-th ready message, oldest first; a reorder skips the oldest. */
    size_t k = 0;
    if (ready[d] > 1 && roll(l, l->o.reorder_pct)) {
        k = 1 + (size_t)below(l, ready[d] - 1);
        l->stats.reordered++;
    }
    size_t i = 0;
    for (;; i++) {
        if (q->m[i].wait == 0) {
            if (k == 0) {
                break;
            }
            k--;
        }
    }
    flight m = q->m[i];
    memmove(q->m + i, q->m + i + 1, (q->n - i - 1) * sizeof *q->m);
    q->n--;

    size_t len = m.len;
    if (len > 0 && roll(l, l->o.cut_pct)) {
        len = (size_t)below(l, len);
        l->stats.cut++;
    }
    tick(l, 1);
    l->stats.delivered++;
    l->stats.bytes += len;
    int rc = cvg_session_input(s[1 - d], m.p, len);
    free(m.p);
    return rc;
}

int
cvg_link_run(cvg_link *l, cvg_session *a, cvg_session *b, unsigned max_steps)
{
    if (l == NULL || a == NULL || b == NULL || a == b) {
        return CVG_EINVAL;
    }
    cvg_session *s[2] = {a, b};
    int first = CVG_OK;
    unsigned steps = 0;
    for (;;) {
        for (int d = 0; d < 2; d++) {
            int rc = send_all(l, s[d], d);
            if (rc != CVG_OK) {
                return rc;
            }
        }
        if (l->down) {
            drop_all(l);
        }
        /* Both finished: anything left is a late duplicate that closed
         * sessions would never read, and feeding it could only break
         * sessions that succeeded. */
        if (cvg_session_done(a) && cvg_session_done(b)) {
            drop_all(l);
            break;
        }
        if (l->q[0].n == 0 && l->q[1].n == 0) {
            break;
        }
        if (steps == max_steps) {
            break;
        }
        steps++;
        /* Keep carrying after an error: the failing side's ERROR must
         * reach the other, which records why its ops were refused. */
        int rc = deliver_one(l, s);
        first = first == CVG_OK ? rc : first;
    }
    if (first != CVG_OK) {
        return first;
    }
    if (cvg_session_error(a) != CVG_OK) {
        return cvg_session_error(a);
    }
    if (cvg_session_error(b) != CVG_OK) {
        return cvg_session_error(b);
    }
    return cvg_session_done(a) && cvg_session_done(b) ? CVG_OK : CVG_DONE;
}

int
cvg_link_sync(cvg_link *l, cvg_replica *a, cvg_replica *b, unsigned max_steps,
              cvg_link_result *out)
{
    if (out != NULL) {
        memset(out, 0, sizeof *out);
    }
    if (l == NULL || a == NULL || b == NULL || a == b) {
        return CVG_EINVAL;
    }
    cvg_session *sa = NULL, *sb = NULL;
    int rc = cvg_session_open(a, NULL, &sa);
    if (rc == CVG_OK) {
        rc = cvg_session_open(b, NULL, &sb);
    }
    if (rc != CVG_OK) {
        cvg_session_close(sa);
        return rc;
    }
    /* Late messages of earlier sessions would reach these ones. */
    cvg_link_clear(l);
    rc = cvg_link_run(l, sa, sb, max_steps);
    bool done = cvg_session_done(sa) && cvg_session_done(sb);
    if (out != NULL) {
        out->error_a = cvg_session_error(sa);
        out->error_b = cvg_session_error(sb);
        out->done = done;
        cvg_session_stats_get(sa, &out->stats_a, sizeof out->stats_a);
        cvg_session_stats_get(sb, &out->stats_b, sizeof out->stats_b);
    }
    cvg_session_close(sa);
    cvg_session_close(sb);
    return rc == CVG_ENOMEM ? rc : done ? CVG_OK : CVG_DONE;
}
