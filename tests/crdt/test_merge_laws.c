/*
 * Merge laws, checked as properties over random schedules. 3-5 simulated
 * replicas make ops against their own state (so what each op observed is
 * realistic) and exchange them causally; then all ops are delivered to
 * fresh states in many random causal orders. Every order must give the
 * same state (commutativity), that state must match an oracle computed
 * from the ops alone, and re-applying a present dot must change nothing.
 * A failure names its seed: rerun with CVG_TEST_SEED=<seed> to replay it.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "crdt/crdt_int.h"
#include "testutil.h"

#define MAX_REPLICAS 5
#define MAX_OPS 64
#define NELEM 3
#define NSEEDS 300
#define NORDERS 8
#define MAX_AHEAD_MS 60000

enum type { T_COUNTER, T_REG, T_TAGS };

enum kind {
    OP_COUNTER_ADD,
    OP_COUNTER_DELETE,
    OP_REG_SET,
    OP_TAGS_ADD,
    OP_TAGS_REMOVE,
    OP_RECORD_DELETE /* registers and tags: the deleter's version vector */
};

typedef struct op {
    enum kind kind;
    cvg_dot dot;
    uint64_t hlc;
    int64_t delta;
    int elem;
    cvg_value value; /* owned (cvg__value_copy) */
    cvg_dot *obs;    /* set: siblings seen; remove: tags seen */
    size_t n_obs;
    cvg__counter_part *parts; /* counter delete: the parts seen */
    size_t n_parts;
    cvg__vv vv;            /* record delete */
    cvg__vv deps;          /* the origin's VV when it made the op */
    int dep[MAX_REPLICAS]; /* deps as the ops they end at */
    int ndep;
} op;

typedef struct state {
    cvg__counter c;
    cvg__reg r;
    cvg__tags t[NELEM];
} state;

typedef struct replica {
    cvg_replica_id id;
    uint64_t seq;
    uint64_t clock;
    uint64_t skew;
    cvg__vv vv;
    bool applied[MAX_OPS];
    state st;
} replica;

typedef struct sim {
    enum type type;
    uint64_t seed;
    uint64_t rng;
    bool no_deletes;
    int nrep;
    replica rep[MAX_REPLICAS];
    op ops[MAX_OPS];
    int nops;
    int by_seq[MAX_REPLICAS][MAX_OPS]; /* replica, seq - 1 -> op index */
    uint64_t step;
} sim;

/* Across all seeds of one test: evidence that the interesting cases
 * happened, so a passing run means something. */
static struct {
    unsigned conflicts;
    unsigned concurrent_add_survived;
    unsigned partial_deletes;
    unsigned counter_out_of_range;
    unsigned lww_ties;
} seen;

/* Every failure message starts with the seed and how to replay it. */
#define SEED_FMT "seed %llu (replay with CVG_TEST_SEED=%llu)"
#define SEED_ARGS(s) \
    (unsigned long long)(s)->seed, (unsigned long long)(s)->seed

/* ---- States ---------------------------------------------------------------
 */

static void
state_destroy(state *st)
{
    cvg__counter_destroy(&st->c);
    cvg__reg_destroy(&st->r);
    for (int e = 0; e < NELEM; e++) {
        cvg__tags_destroy(&st->t[e]);
    }
}

static bool
counter_equal(const cvg__counter *a, const cvg__counter *b)
{
    if (a->n != b->n) {
        return false;
    }
    for (size_t i = 0; i < a->n; i++) {
        const cvg__counter_part *x = &a->parts[i];
        const cvg__counter_part *y = &b->parts[i];
        if (cvg__id_cmp(&x->origin, &y->origin) != 0 || x->seq != y->seq ||
            x->sum != y->sum || x->floor_seq != y->floor_seq ||
            x->floor_sum != y->floor_sum) {
            return false;
        }
    }
    return true;
}

static bool
reg_equal(const cvg__reg *a, const cvg__reg *b)
{
    if (a->n != b->n) {
        return false;
    }
    for (size_t i = 0; i < a->n; i++) {
        if (cvg__dot_cmp(&a->s[i].dot, &b->s[i].dot) != 0 ||
            a->s[i].hlc != b->s[i].hlc ||
            cvg__value_cmp(&a->s[i].value, &b->s[i].value) != 0) {
            return false;
        }
    }
    return true;
}

static bool
tags_equal(const cvg__tags *a, const cvg__tags *b)
{
    if (a->n != b->n) {
        return false;
    }
    for (size_t i = 0; i < a->n; i++) {
        if (cvg__dot_cmp(&a->d[i], &b->d[i]) != 0) {
            return false;
        }
    }
    return true;
}

static bool
state_equal(const state *a, const state *b)
{
    if (!counter_equal(&a->c, &b->c) || !reg_equal(&a->r, &b->r)) {
        return false;
    }
    for (int e = 0; e < NELEM; e++) {
        if (!tags_equal(&a->t[e], &b->t[e])) {
            return false;
        }
    }
    return true;
}

static bool
dots_sorted_unique(const cvg_dot *d, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        if (cvg__dot_cmp(&d[i - 1], &d[i]) >= 0) {
            return false;
        }
    }
    return true;
}

/* ---- Applying ops ------------------------------------------------------- */

static bool
in_obs(const op *o, const cvg_dot *d)
{
    for (size_t i = 0; i < o->n_obs; i++) {
        if (cvg__dot_cmp(&o->obs[i], d) == 0) {
            return true;
        }
    }
    return false;
}

/* Apply @p o to @p st; for a set, check the conflict flag against its
 * meaning: a sibling is left that the writer had not seen, i.e. one
 * concurrent with the write. */
static void
apply(const sim *s, state *st, const op *o)
{
    switch (o->kind) {
    case OP_COUNTER_ADD:
        cr_assert_eq(cvg__counter_add(&st->c, &o->dot, o->delta), CVG_OK);
        break;
    case OP_COUNTER_DELETE:
        cr_assert_eq(cvg__counter_delete(&st->c, o->parts, o->n_parts), CVG_OK);
        break;
    case OP_REG_SET: {
        bool expect = false;
        for (size_t i = 0; i < st->r.n; i++) {
            if (!cvg__vv_contains(&o->deps, &st->r.s[i].dot)) {
                expect = true;
            }
        }
        bool conflict = !expect;
        cr_assert_eq(cvg__reg_set(&st->r, &o->dot, o->hlc, &o->value, o->obs,
                                  o->n_obs, &conflict),
                     CVG_OK);
        cr_assert_eq(conflict, expect, SEED_FMT ": conflict flag",
                     SEED_ARGS(s));
        seen.conflicts += conflict;
        cr_assert(st->r.n > 0);
        break;
    }
    case OP_TAGS_ADD:
        cr_assert_eq(cvg__tags_add(&st->t[o->elem], &o->dot), CVG_OK);
        break;
    case OP_TAGS_REMOVE:
        cvg__tags_remove(&st->t[o->elem], o->obs, o->n_obs);
        break;
    case OP_RECORD_DELETE:
        cvg__reg_delete(&st->r, &o->vv);
        for (int e = 0; e < NELEM; e++) {
            cvg__tags_delete(&st->t[e], &o->vv);
        }
        break;
    }
}

/* Ready on a replica that has applied @p applied: not applied yet, and
 * every op its origin had applied is here. An origin's VV entry (o, n) is
 * covered exactly when o's op n is, since each origin's ops arrive in seq
 * order; and the op's own origin is among its deps, so that order holds. */
static bool
ready(const op *o, int i, const bool *applied)
{
    if (applied[i]) {
        return false;
    }
    for (int k = 0; k < o->ndep; k++) {
        if (!applied[o->dep[k]]) {
            return false;
        }
    }
    return true;
}

static void
mark_applied(cvg__vv *vv, const op *o)
{
    cr_assert_eq(cvg__vv_get(vv, &o->dot.origin) + 1, o->dot.seq);
    cr_assert_eq(cvg__vv_set(vv, &o->dot.origin, o->dot.seq), CVG_OK);
}

/* A random op that is ready after @p applied; -1 if none. */
static int
pick_ready(sim *s, const bool *applied)
{
    int cand[MAX_OPS];
    int n = 0;
    for (int i = 0; i < s->nops; i++) {
        if (ready(&s->ops[i], i, applied)) {
            cand[n++] = i;
        }
    }
    return n == 0 ? -1 : cand[cvg_test_below(&s->rng, (uint64_t)n)];
}

static uint64_t
now_ms(const sim *s, const replica *r)
{
    /* Slow wall clocks, slightly apart: many ops share a millisecond, so
     * equal times and logical counters both occur. */
    return 1000 + s->step / 4 + r->skew;
}

static void
deliver(sim *s, replica *r, int i)
{
    const op *o = &s->ops[i];
    cr_assert(!cvg__hlc_receive(&r->clock, o->hlc, now_ms(s, r), MAX_AHEAD_MS));
    apply(s, &r->st, o);
    mark_applied(&r->vv, o);
    r->applied[i] = true;
}

/* ---- Making ops ------------------------------------------------------------
 */

static void
shuffle_dots(sim *s, cvg_dot *d, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)cvg_test_below(&s->rng, i);
        cvg_dot t = d[i - 1];
        d[i - 1] = d[j];
        d[j] = t;
    }
}

static cvg_dot *
dup_dots(const cvg_dot *d, size_t n, size_t extra)
{
    cvg_dot *p = calloc(n + extra + 1, sizeof *p);
    cr_assert_not_null(p);
    if (n > 0) {
        memcpy(p, d, n * sizeof *p);
    }
    return p;
}

static void
random_value(sim *s, cvg_value *out)
{
    static const char *words[] = {"", "a", "ab", "b", "zebra", "\xff"};
    cvg_value v;
    switch (cvg_test_below(&s->rng, 5)) {
    case 0:
        v = cvg_value_int((int64_t)cvg_test_below(&s->rng, 7) - 3);
        break;
    case 1:
        v = cvg_value_double((double)cvg_test_below(&s->rng, 5) / 2.0);
        break;
    case 2:
        v = cvg_value_bool(cvg_test_below(&s->rng, 2) != 0);
        break;
    default: {
        const char *w = words[cvg_test_below(&s->rng, 6)];
        v.kind =
            cvg_test_below(&s->rng, 2) ? CVG_VALUE_STRING : CVG_VALUE_BYTES;
        v.as.bytes.data = (const uint8_t *)w;
        v.as.bytes.len = strlen(w);
        break;
    }
    }
    cr_assert_eq(cvg__value_copy(out, &v), CVG_OK);
}

static int64_t
random_delta(sim *s)
{
    if (cvg_test_below(&s->rng, 10) == 0) {
        /* Large: running sums wrap in some orders. */
        int64_t big = (int64_t)1 << 62;
        big += (int64_t)cvg_test_below(&s->rng, 1000);
        return cvg_test_below(&s->rng, 2) ? big : -big;
    }
    int64_t d = (int64_t)cvg_test_below(&s->rng, 100) - 50;
    return d == 0 ? 1 : d;
}

static int
replica_index(const sim *s, const cvg_replica_id *id)
{
    for (int i = 0; i < s->nrep; i++) {
        if (cvg__id_cmp(&s->rep[i].id, id) == 0) {
            return i;
        }
    }
    cr_assert_fail("unknown origin");
    return -1;
}

/* Replica @p r makes one op against its own state and applies it. */
static void
make_op(sim *s, replica *r)
{
    op *o = &s->ops[s->nops];
    memset(o, 0, sizeof *o);
    cr_assert_eq(cvg__vv_copy(&o->deps, &r->vv), CVG_OK);
    for (size_t k = 0; k < o->deps.n; k++) {
        int from = replica_index(s, &o->deps.e[k].origin);
        o->dep[o->ndep++] = s->by_seq[from][o->deps.e[k].seq - 1];
    }
    o->dot.origin = r->id;
    o->dot.seq = ++r->seq;
    s->by_seq[r - s->rep][o->dot.seq - 1] = s->nops;
    cr_assert_eq(cvg__hlc_tick(&r->clock, now_ms(s, r), MAX_AHEAD_MS, &o->hlc),
                 CVG_OK);
    uint64_t roll = cvg_test_below(&s->rng, 100);
    bool del = !s->no_deletes && roll < 12;
    switch (s->type) {
    case T_COUNTER:
        if (!del) {
            o->kind = OP_COUNTER_ADD;
            o->delta = random_delta(s);
            if (cvg__counter_check_add(&r->st.c, &r->id, o->delta) != CVG_OK) {
                /* The local check refuses it (the value or the replica's own
                 * part would leave int64): try a small one of either sign,
                 * which fits unless the merged value is already far out of
                 * range; then the replica deletes instead. */
                o->delta = o->delta > 0 ? -1 : 1;
                if (cvg__counter_check_add(&r->st.c, &r->id, o->delta) !=
                    CVG_OK) {
                    o->delta = -o->delta;
                    del = cvg__counter_check_add(&r->st.c, &r->id, o->delta) !=
                          CVG_OK;
                }
            }
        }
        if (del && r->st.c.n > 0) {
            o->kind = OP_COUNTER_DELETE;
            o->delta = 0;
            o->n_parts = r->st.c.n;
            o->parts = calloc(o->n_parts, sizeof *o->parts);
            cr_assert_not_null(o->parts);
            memcpy(o->parts, r->st.c.parts, o->n_parts * sizeof *o->parts);
        } else if (del) {
            o->kind = OP_COUNTER_ADD;
            o->delta = random_delta(s);
        }
        break;
    case T_REG:
        if (del) {
            o->kind = OP_RECORD_DELETE;
            cr_assert_eq(cvg__vv_copy(&o->vv, &r->vv), CVG_OK);
        } else {
            /* Observe every sibling, as the replica layer does, in a
             * scrambled order and sometimes with a dot that never
             * existed. */
            o->kind = OP_REG_SET;
            random_value(s, &o->value);
            o->n_obs = r->st.r.n;
            o->obs = calloc(o->n_obs + 2, sizeof *o->obs);
            cr_assert_not_null(o->obs);
            for (size_t i = 0; i < r->st.r.n; i++) {
                o->obs[i] = r->st.r.s[i].dot;
            }
            if (cvg_test_below(&s->rng, 5) == 0) {
                o->obs[o->n_obs].origin = r->id;
                o->obs[o->n_obs].seq = 1000000;
                o->n_obs++;
            }
            shuffle_dots(s, o->obs, o->n_obs);
        }
        break;
    case T_TAGS:
        o->elem = (int)cvg_test_below(&s->rng, NELEM);
        if (del) {
            o->kind = OP_RECORD_DELETE;
            cr_assert_eq(cvg__vv_copy(&o->vv, &r->vv), CVG_OK);
        } else if (roll < 45 && r->st.t[o->elem].n > 0) {
            o->kind = OP_TAGS_REMOVE;
            o->n_obs = r->st.t[o->elem].n;
            o->obs = dup_dots(r->st.t[o->elem].d, o->n_obs, 0);
            shuffle_dots(s, o->obs, o->n_obs);
        } else {
            o->kind = OP_TAGS_ADD;
        }
        break;
    }
    s->nops++;
    apply(s, &r->st, o);
    mark_applied(&r->vv, o);
    r->applied[s->nops - 1] = true;
}

static void
sim_init(sim *s, enum type type, uint64_t seed, bool no_deletes)
{
    memset(s, 0, sizeof *s);
    s->type = type;
    s->seed = seed;
    s->rng = seed;
    s->no_deletes = no_deletes;
    s->nrep = 3 + (int)cvg_test_below(&s->rng, 3);
    for (int i = 0; i < s->nrep; i++) {
        replica *r = &s->rep[i];
        /* Random ids, so id order is unrelated to replica order; byte 1
         * keeps them distinct. */
        for (int b = 0; b < 16; b++) {
            r->id.bytes[b] = (uint8_t)cvg_test_rand(&s->rng);
        }
        r->id.bytes[1] = (uint8_t)i;
        r->skew = cvg_test_below(&s->rng, 3);
    }
}

static void
sim_destroy(sim *s)
{
    for (int i = 0; i < s->nops; i++) {
        op *o = &s->ops[i];
        cvg__value_free(&o->value);
        free(o->obs);
        free(o->parts);
        cvg__vv_destroy(&o->vv);
        cvg__vv_destroy(&o->deps);
    }
    for (int i = 0; i < s->nrep; i++) {
        cvg__vv_destroy(&s->rep[i].vv);
        state_destroy(&s->rep[i].st);
    }
}

/* Make 20-60 ops with random exchanges between them, then let every
 * replica receive everything. */
static void
sim_run(sim *s)
{
    int target = 20 + (int)cvg_test_below(&s->rng, MAX_OPS - 20 + 1);
    while (s->nops < target) {
        s->step++;
        replica *r = &s->rep[cvg_test_below(&s->rng, (uint64_t)s->nrep)];
        if (cvg_test_below(&s->rng, 100) < 45) {
            make_op(s, r);
            continue;
        }
        /* Receive a few ops; fewer exchanges means more concurrency. */
        uint64_t k = cvg_test_below(&s->rng, 4);
        for (uint64_t j = 0; j < k; j++) {
            int i = pick_ready(s, r->applied);
            if (i < 0) {
                break;
            }
            deliver(s, r, i);
        }
    }
    for (int ri = 0; ri < s->nrep; ri++) {
        replica *r = &s->rep[ri];
        int i;
        while ((i = pick_ready(s, r->applied)) >= 0) {
            s->step++;
            deliver(s, r, i);
        }
        cr_assert_eq(cvg__vv_compare(&r->vv, &s->rep[0].vv), CVG__EQUAL,
                     SEED_FMT, SEED_ARGS(s));
    }
}

/* ---- Oracles
 * ----------------------------------------------------------------- */

static bool
covered_by_record_delete(const sim *s, const cvg_dot *d)
{
    for (int i = 0; i < s->nops; i++) {
        const op *o = &s->ops[i];
        if (o->kind == OP_RECORD_DELETE && cvg__vv_contains(&o->vv, d)) {
            return true;
        }
    }
    return false;
}

static void
check_counter_oracle(const sim *s, const cvg__counter *c)
{
    /* Exact sums: merged values may leave int64 (each replica only checks
     * its own adds against what it has seen), and must then read as
     * CVG_EOVERFLOW on the side the exact sum lies. */
    cvg__i128 want = 0;
    cvg__i128 all = 0;
    bool live = false;
    bool any_delete = false;
    for (int i = 0; i < s->nops; i++) {
        const op *a = &s->ops[i];
        if (a->kind != OP_COUNTER_ADD) {
            any_delete |= a->kind == OP_COUNTER_DELETE;
            continue;
        }
        all += a->delta;
        bool observed = false;
        for (int j = 0; j < s->nops && !observed; j++) {
            const op *d = &s->ops[j];
            for (size_t k = 0; d->kind == OP_COUNTER_DELETE && k < d->n_parts;
                 k++) {
                if (cvg__id_cmp(&d->parts[k].origin, &a->dot.origin) == 0 &&
                    d->parts[k].seq >= a->dot.seq) {
                    observed = true;
                }
            }
        }
        if (!observed) {
            want += a->delta;
            live = true;
        }
    }
    cvg__i128 value = cvg__counter_total(c);
    cr_assert(value == want,
              SEED_FMT ": value is the sum of the deltas no delete saw",
              SEED_ARGS(s));
    int64_t v64;
    int rc = cvg__counter_value(c, &v64);
    if (want > INT64_MAX || want < INT64_MIN) {
        seen.counter_out_of_range++;
        cr_assert_eq(rc, CVG_EOVERFLOW, SEED_FMT, SEED_ARGS(s));
        cr_assert_eq(v64, want > 0 ? INT64_MAX : INT64_MIN, SEED_FMT,
                     SEED_ARGS(s));
    } else {
        cr_assert_eq(rc, CVG_OK, SEED_FMT, SEED_ARGS(s));
        cr_assert(v64 == want, SEED_FMT, SEED_ARGS(s));
    }
    cr_assert_eq(cvg__counter_live(c), live, SEED_FMT, SEED_ARGS(s));
    if (!any_delete) {
        cr_assert(value == all, SEED_FMT, SEED_ARGS(s));
    } else if (live) {
        seen.partial_deletes++;
    }
    for (size_t i = 1; i < c->n; i++) {
        cr_assert_lt(cvg__id_cmp(&c->parts[i - 1].origin, &c->parts[i].origin),
                     0, SEED_FMT ": parts sorted by origin", SEED_ARGS(s));
    }
}

/* The LWW order, written out again independently of register.c. */
static bool
lww_greater(const op *a, const op *b)
{
    if (a->hlc != b->hlc) {
        return a->hlc > b->hlc;
    }
    int c = memcmp(a->dot.origin.bytes, b->dot.origin.bytes, 16);
    if (c != 0) {
        return c > 0;
    }
    return a->dot.seq > b->dot.seq;
}

static void
check_reg_oracle(const sim *s, const cvg__reg *r)
{
    size_t survivors = 0;
    const op *best = NULL;
    for (int i = 0; i < s->nops; i++) {
        const op *w = &s->ops[i];
        if (w->kind != OP_REG_SET) {
            continue;
        }
        bool replaced = covered_by_record_delete(s, &w->dot);
        for (int j = 0; j < s->nops; j++) {
            const op *x = &s->ops[j];
            if (x->kind == OP_REG_SET && in_obs(x, &w->dot)) {
                replaced = true;
                /* The clock respects causality: a write is later than
                 * what it replaced. */
                cr_assert_gt(x->hlc, w->hlc, SEED_FMT, SEED_ARGS(s));
            }
        }
        if (replaced) {
            continue;
        }
        survivors++;
        bool found = false;
        for (size_t k = 0; k < r->n; k++) {
            if (cvg__dot_cmp(&r->s[k].dot, &w->dot) == 0) {
                found = true;
                cr_assert_eq(r->s[k].hlc, w->hlc, SEED_FMT, SEED_ARGS(s));
                cr_assert_eq(cvg__value_cmp(&r->s[k].value, &w->value), 0,
                             SEED_FMT, SEED_ARGS(s));
            }
        }
        cr_assert(found, SEED_FMT ": a write nobody replaced is a sibling",
                  SEED_ARGS(s));
        if (best != NULL && best->hlc == w->hlc) {
            seen.lww_ties++;
        }
        if (best == NULL || lww_greater(w, best)) {
            best = w;
        }
    }
    cr_assert_eq(r->n, survivors,
                 SEED_FMT ": siblings are exactly the survivors", SEED_ARGS(s));
    const cvg__sibling *win = cvg__reg_winner(r);
    if (best == NULL) {
        cr_assert_null(win, SEED_FMT, SEED_ARGS(s));
    } else {
        cr_assert_not_null(win, SEED_FMT, SEED_ARGS(s));
        cr_assert_eq(cvg__dot_cmp(&win->dot, &best->dot), 0,
                     SEED_FMT ": LWW winner is the max (hlc, origin, seq)",
                     SEED_ARGS(s));
    }
    for (size_t k = 1; k < r->n; k++) {
        cr_assert_lt(cvg__dot_cmp(&r->s[k - 1].dot, &r->s[k].dot), 0, SEED_FMT,
                     SEED_ARGS(s));
    }
}

static void
check_tags_oracle(const sim *s, const state *st)
{
    for (int e = 0; e < NELEM; e++) {
        const cvg__tags *t = &st->t[e];
        size_t survivors = 0;
        for (int i = 0; i < s->nops; i++) {
            const op *a = &s->ops[i];
            if (a->kind != OP_TAGS_ADD || a->elem != e) {
                continue;
            }
            bool removed = covered_by_record_delete(s, &a->dot);
            bool concurrent_remove = false;
            for (int j = 0; j < s->nops; j++) {
                const op *x = &s->ops[j];
                if (x->kind != OP_TAGS_REMOVE || x->elem != e) {
                    continue;
                }
                if (in_obs(x, &a->dot)) {
                    removed = true;
                } else if (!cvg__vv_contains(&x->deps, &a->dot)) {
                    concurrent_remove = true;
                }
            }
            bool present = false;
            for (size_t k = 0; k < t->n; k++) {
                present |= cvg__dot_cmp(&t->d[k], &a->dot) == 0;
            }
            cr_assert_eq(present, !removed,
                         SEED_FMT
                         ": elem %d: a tag stays unless a remove saw "
                         "it or a delete covered it",
                         SEED_ARGS(s), e);
            survivors += !removed;
            if (!removed && concurrent_remove) {
                seen.concurrent_add_survived++;
            }
        }
        cr_assert_eq(t->n, survivors, SEED_FMT, SEED_ARGS(s));
        cr_assert(dots_sorted_unique(t->d, t->n), SEED_FMT, SEED_ARGS(s));
    }
}

static void
check_oracle(const sim *s, const state *st)
{
    switch (s->type) {
    case T_COUNTER:
        check_counter_oracle(s, &st->c);
        break;
    case T_REG:
        check_reg_oracle(s, &st->r);
        break;
    case T_TAGS:
        check_tags_oracle(s, st);
        break;
    }
}

/* Re-applying an op whose dot is present must change nothing. (Re-applying
 * one that was replaced or removed is prevented by the caller's VV, so it is
 * not tried.) Counter adds are all tried: counter.c ignores an add whose seq
 * is not above its origin's. */
static void
check_idempotent(sim *s, const state *ref)
{
    state st;
    memset(&st, 0, sizeof st);
    for (int i = 0; i < s->nops; i++) {
        apply(s, &st, &s->ops[i]);
    }
    cr_assert(state_equal(&st, ref), SEED_FMT, SEED_ARGS(s));
    for (int i = 0; i < s->nops; i++) {
        const op *o = &s->ops[i];
        if (o->kind == OP_COUNTER_ADD) {
            cr_assert_eq(cvg__counter_add(&st.c, &o->dot, o->delta), CVG_OK);
        } else if (o->kind == OP_TAGS_ADD) {
            cvg__tags *t = &st.t[o->elem];
            for (size_t k = 0; k < t->n; k++) {
                if (cvg__dot_cmp(&t->d[k], &o->dot) == 0) {
                    cr_assert_eq(cvg__tags_add(t, &o->dot), CVG_OK);
                    break;
                }
            }
        } else if (o->kind == OP_REG_SET) {
            for (size_t k = 0; k < st.r.n; k++) {
                if (cvg__dot_cmp(&st.r.s[k].dot, &o->dot) == 0) {
                    /* Different time and observed list: the dot alone
                     * decides that it is a duplicate. */
                    bool conflict = true;
                    cvg_dot all[MAX_OPS];
                    for (size_t m = 0; m < st.r.n; m++) {
                        all[m] = st.r.s[m].dot;
                    }
                    cr_assert_eq(
                        cvg__reg_set(&st.r, &o->dot, o->hlc + 7, &o->value, all,
                                     st.r.n, &conflict),
                        CVG_OK);
                    cr_assert_not(conflict, SEED_FMT, SEED_ARGS(s));
                    break;
                }
            }
        }
        cr_assert(state_equal(&st, ref), SEED_FMT ": op %d twice", SEED_ARGS(s),
                  i);
    }
    state_destroy(&st);
}

static void
run_type(enum type type, uint64_t dflt_seed, bool no_deletes)
{
    uint64_t base = cvg_test_seed(dflt_seed);
    for (uint64_t k = 0; k < NSEEDS; k++) {
        sim s;
        sim_init(&s, type, base + k, no_deletes);
        sim_run(&s);
        const state *ref = &s.rep[0].st;

        /* Convergence: every replica ended with the same state. */
        for (int i = 1; i < s.nrep; i++) {
            cr_assert(state_equal(&s.rep[i].st, ref),
                      SEED_FMT ": replica %d differs from replica 0",
                      SEED_ARGS(&s), i);
        }
        check_oracle(&s, ref);

        /* Commutativity: fresh states, random causal orders. */
        for (int ord = 0; ord < NORDERS; ord++) {
            state st;
            memset(&st, 0, sizeof st);
            cvg__vv vv = {0};
            bool applied[MAX_OPS] = {false};
            for (int n = 0; n < s.nops; n++) {
                int i = pick_ready(&s, applied);
                cr_assert_geq(i, 0, SEED_FMT, SEED_ARGS(&s));
                apply(&s, &st, &s.ops[i]);
                mark_applied(&vv, &s.ops[i]);
                applied[i] = true;
            }
            cr_assert(state_equal(&st, ref),
                      SEED_FMT ": order %d gives another state", SEED_ARGS(&s),
                      ord);
            cvg__vv_destroy(&vv);
            state_destroy(&st);
        }
        check_idempotent(&s, ref);
        sim_destroy(&s);
    }
}

Test(merge_laws, counter_without_deletes_sums_all_deltas)
{
    run_type(T_COUNTER, 0xC0FFEE, true);
    cr_expect_gt(seen.counter_out_of_range, 0,
                 "a merged sum left int64 and read as CVG_EOVERFLOW");
}

Test(merge_laws, counter_with_deletes)
{
    run_type(T_COUNTER, 0xC0DE, false);
    cr_expect_gt(seen.partial_deletes, 0, "a delete left concurrent adds");
}

Test(merge_laws, register)
{
    run_type(T_REG, 0x5EED, false);
    cr_expect_gt(seen.conflicts, 0, "concurrent writes met");
    cr_expect_gt(seen.lww_ties, 0, "equal hlc: origin broke the tie");
}

Test(merge_laws, register_without_deletes)
{
    run_type(T_REG, 0xBEEF, true);
}

Test(merge_laws, tags)
{
    run_type(T_TAGS, 0x7A65, false);
    cr_expect_gt(seen.concurrent_add_survived, 0,
                 "an add concurrent with a remove survived");
}
