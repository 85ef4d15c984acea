/*
 * The PN-counter state: one part per origin with the running sum of its
 * deltas and the floor a record delete set. The value is the sum over the
 * parts of (sum - floor_sum), taken in a 128-bit accumulator: every term
 * fits in 65 bits, so the total is exact whatever the order of the parts or
 * of the ops that built them, and a total outside int64 is reported as
 * CVG_EOVERFLOW by the reader instead of wrapping. A total that comes back
 * into range reads normally.
 *
 * Each part's own sum is an int64. A local add is refused when it would
 * take either the value or this replica's own part out of range, so a
 * correct replica never sends an add that overflows its part. An add from a
 * peer that does (a hostile or damaged replica) is applied modulo 2^64: an
 * origin's adds reach every replica in the same seq order and modular
 * addition is exact on the bits, so every replica keeps the same part and
 * reads the same value.
 */
#include "crdt_int.h"

/* Index of @p key in the state, or where it would be inserted. */
static size_t
find(const cvg__counter *x, const cvg_replica_id *key, bool *found)
{
    return cvg__id_search(x->parts, x->n, sizeof x->parts[0], key, found);
}

/* Insert a zeroed part for @p origin at @p i; the caller has grown the
 * array, so this cannot fail. */
static cvg__counter_part *
insert(cvg__counter *c, size_t i, const cvg_replica_id *origin)
{
    memmove(&c->parts[i + 1], &c->parts[i], (c->n - i) * sizeof c->parts[0]);
    cvg__counter_part *p = &c->parts[i];
    memset(p, 0, sizeof *p);
    p->origin = *origin;
    c->n++;
    return p;
}

static int
reserve(cvg__counter *c, size_t need)
{
    void *p = c->parts;
    int rc = cvg__grow(&p, &c->cap, need, sizeof c->parts[0]);
    c->parts = p;
    return rc;
}

/* Two's-complement wrapping addition without signed-overflow UB (only a
 * peer's add that breaks the local rule can need it); the conversion back to
 * int64_t is modular on every compiler we support. */
static int64_t
wrap_add(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a + (uint64_t)b);
}

/* An add whose seq is not above the part's seq was already applied (the
 * caller delivers each origin's ops in seq order), so it is ignored: this
 * makes a duplicate delivery harmless instead of double counting. */
int
cvg__counter_add(cvg__counter *c, const cvg_dot *dot, int64_t delta)
{
    bool found;
    size_t i = find(c, &dot->origin, &found);
    if (found) {
        cvg__counter_part *p = &c->parts[i];
        if (dot->seq <= p->seq) {
            return CVG_OK;
        }
        p->sum = wrap_add(p->sum, delta);
        p->seq = dot->seq;
        return CVG_OK;
    }
    int rc = reserve(c, c->n + 1);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg__counter_part *p = insert(c, i, &dot->origin);
    p->sum = delta;
    p->seq = dot->seq;
    return CVG_OK;
}

cvg__i128
cvg__counter_total(const cvg__counter *c)
{
    /* At most SIZE_MAX parts of magnitude below 2^64 each: far inside the
     * 127 bits of the accumulator, so no term or partial sum can wrap. */
    cvg__i128 v = 0;
    for (size_t i = 0; i < c->n; i++) {
        v += (cvg__i128)c->parts[i].sum - (cvg__i128)c->parts[i].floor_sum;
    }
    return v;
}

int
cvg__counter_value(const cvg__counter *c, int64_t *out)
{
    cvg__i128 v = cvg__counter_total(c);
    if (v > INT64_MAX) {
        *out = INT64_MAX;
        return CVG_EOVERFLOW;
    }
    if (v < INT64_MIN) {
        *out = INT64_MIN;
        return CVG_EOVERFLOW;
    }
    *out = (int64_t)v;
    return CVG_OK;
}

int
cvg__counter_check_add(const cvg__counter *c, const cvg_replica_id *origin,
                       int64_t delta)
{
    cvg__i128 v = cvg__counter_total(c) + delta;
    if (v > INT64_MAX || v < INT64_MIN) {
        return CVG_EOVERFLOW;
    }
    bool found;
    size_t i = find(c, origin, &found);
    int64_t r;
    if (found && __builtin_add_overflow(c->parts[i].sum, delta, &r)) {
        return CVG_EOVERFLOW;
    }
    return CVG_OK;
}

bool
cvg__counter_live(const cvg__counter *c)
{
    for (size_t i = 0; i < c->n; i++) {
        if (c->parts[i].seq > c->parts[i].floor_seq) {
            return true;
        }
    }
    return false;
}

int
cvg__counter_delete(cvg__counter *c, const cvg__counter_part *observed,
                    size_t n)
{
    /* Count the origins that need a new part (an upper bound if observed
     * repeats an origin) and grow once, before any floor moves: a failure
     * leaves the counter as it was. A part with seq 0 observed nothing and
     * never raises a floor, so it needs no room. */
    size_t missing = 0;
    for (size_t k = 0; k < n; k++) {
        bool found;
        if (observed[k].seq > 0) {
            (void)find(c, &observed[k].origin, &found);
            missing += !found;
        }
    }
    if (missing > 0) {
        if (missing > SIZE_MAX - c->n) {
            return CVG_ENOMEM;
        }
        int rc = reserve(c, c->n + missing);
        if (rc != CVG_OK) {
            return rc;
        }
    }
    for (size_t k = 0; k < n; k++) {
        const cvg__counter_part *o = &observed[k];
        if (o->seq == 0) {
            continue;
        }
        bool found;
        size_t i = find(c, &o->origin, &found);
        /* Under causal delivery the observed adds are already here, so the
         * part exists; creating one keeps the state right regardless. */
        cvg__counter_part *p = found ? &c->parts[i] : insert(c, i, &o->origin);
        if (o->seq > p->floor_seq) {
            p->floor_seq = o->seq;
            p->floor_sum = o->sum;
        }
    }
    return CVG_OK;
}

void
cvg__counter_destroy(cvg__counter *c)
{
    if (c == NULL) {
        return;
    }
    cvg__free(c->parts);
    c->parts = NULL;
    c->n = c->cap = 0;
}
