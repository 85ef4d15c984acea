/*
 * src/crdt: the pure semantics. Hybrid logical clock, dots, version vectors,
 * values, and the state of each CRDT type with the functions that apply an op
 * to it. No I/O, no LMDB, no msgpack: states and ops in, states out. The
 * caller (src/oplog, src/replica) guarantees causal delivery: an op is applied
 * once, after every op its origin had applied before it.
 */
#ifndef CVG_CRDT_INT_H
#define CVG_CRDT_INT_H

#include <stdbool.h>

#include "../common.h"

/* ---- Hybrid logical clock ---------------------------------------------- */
/* A time is 48 bits of wall milliseconds and 16 bits of logical counter in
 * one uint64, so comparing times is comparing integers. When the counter is
 * full the carry moves into the milliseconds: the clock runs at most a few
 * ms ahead under a burst of more than 65,536 events in one ms, and never
 * wraps. */

/* Time for a local event: max(now << 16, *clock + 1), or the wall time
 * alone when *clock is more than max_ahead_ms ahead of now_ms (the wall
 * clock was wrong and came back). CVG_ECLOCK when the clock is exhausted
 * (UINT64_MAX, within the bound) or now_ms does not fit 48 bits. */
int cvg__hlc_tick(uint64_t *clock, uint64_t now_ms, uint64_t max_ahead_ms,
                  uint64_t *out);

/* Take a remote time into *clock: *clock = max(*clock, min(remote,
 * (now_ms + max_ahead_ms) << 16)). Any remote time is taken (the op keeps
 * its stamp); true when its wall part is more than max_ahead_ms ahead of
 * now_ms, so the clock was held at the bound instead of following it. */
bool cvg__hlc_receive(uint64_t *clock, uint64_t remote, uint64_t now_ms,
                      uint64_t max_ahead_ms);

/* ---- Ids, dots, version vectors ------------------------------------------ */

/* Ids in the order of their bytes. */
static inline int
cvg__id_cmp(const cvg_replica_id *a, const cvg_replica_id *b)
{
    return cvg__cmp16(a->bytes, b->bytes);
}
/* Whether two ids are equal: two loads and compares, for the paths that
 * run for every op (no call, no byte loop). */
static inline bool
cvg__id_eq(const cvg_replica_id *a, const cvg_replica_id *b)
{
    uint64_t a0, a1, b0, b1;
    memcpy(&a0, a->bytes, 8);
    memcpy(&a1, a->bytes + 8, 8);
    memcpy(&b0, b->bytes, 8);
    memcpy(&b1, b->bytes + 8, 8);
    return ((a0 ^ b0) | (a1 ^ b1)) == 0;
}
/* By origin id, then seq. */
int cvg__dot_cmp(const cvg_dot *a, const cvg_dot *b);

/* The digest of a version vector (vv_sum.c): the sum, mod 2^256, of a
 * BLAKE2b-256 of each entry, so that it follows a change of one
 * entry in two hashes instead of a pass over the vector. */
#define CVG__VV_SUM_BYTES 32u
typedef struct cvg__vv_sum {
    uint64_t w[4]; /* limbs, least significant first */
} cvg__vv_sum;

/* Sorted by origin id; one entry per origin; seq > 0. A vector whose sum
 * is on (cvg__vv_sum_on) keeps it up to date through every change. */
typedef struct cvg__vv {
    cvg_dot *e;
    size_t n;
    size_t cap;
    bool summed;
    cvg__vv_sum sum;
} cvg__vv;

/* Add (@p sign > 0) or take away the hash of the entry (@p origin, @p seq)
 * to @p s; seq 0 (no entry) changes nothing. */
void cvg__vv_sum_entry(cvg__vv_sum *s, const cvg_replica_id *origin,
                       uint64_t seq, int sign);
/* The sum of @p n entries. */
void cvg__vv_sum_of(const cvg_dot *e, size_t n, cvg__vv_sum *out);
/* Turn @p vv's sum on: one pass over it, then kept as it changes. */
void cvg__vv_sum_on(cvg__vv *vv);
void cvg__vv_sum_bytes(const cvg__vv_sum *s, uint8_t out[CVG__VV_SUM_BYTES]);

uint64_t cvg__vv_get(const cvg__vv *vv, const cvg_replica_id *origin);
int cvg__vv_set(cvg__vv *vv, const cvg_replica_id *origin, uint64_t seq);
/* Whether the op @p d is covered: d->seq <= vv[d->origin]. */
bool cvg__vv_contains(const cvg__vv *vv, const cvg_dot *d);
/* Pointwise max into @p a. */
int cvg__vv_merge(cvg__vv *a, const cvg__vv *b);
int cvg__vv_copy(cvg__vv *dst, const cvg__vv *src);
void cvg__vv_destroy(cvg__vv *vv);

typedef enum cvg__order {
    CVG__EQUAL = 0,
    CVG__BEFORE = 1,    /* a < b: b has seen all of a and more */
    CVG__AFTER = 2,     /* a > b */
    CVG__CONCURRENT = 3 /* each has ops the other lacks */
} cvg__order;
cvg__order cvg__vv_compare(const cvg__vv *a, const cvg__vv *b);

/* ---- Sorted arrays --------------------------------------------------------
 * Every state here is an array sorted by a key at the start of each
 * element (an origin id or a dot). */

/* Index of the element equal to @p key by @p cmp (element, key), or where
 * it would be inserted; *found says which. */
size_t cvg__search(const void *base, size_t n, size_t size, const void *key,
                   int (*cmp)(const void *elem, const void *key), bool *found);
/* cvg__id_cmp and cvg__dot_cmp on an element whose key comes first. */
int cvg__id_cmp_v(const void *a, const void *b);
int cvg__dot_cmp_v(const void *a, const void *b);

/* cvg__search for elements keyed by an origin id, with the compare
 * inlined: version vectors and counter parts are searched several times
 * for every op, and a call through a pointer per step cost more than the
 * compare. */
static inline size_t
cvg__id_search(const void *base, size_t n, size_t size,
               const cvg_replica_id *key, bool *found)
{
    const uint8_t *p = base;
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cvg__cmp16(p + mid * size, key->bytes);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = false;
    return lo;
}
/* Make *arr (of *n elements, *cap allocated) a copy of @p src; on failure
 * it is left as it was. */
int cvg__array_assign(void **arr, size_t *n, size_t *cap, const void *src,
                      size_t count, size_t size);

/* ---- Values -------------------------------------------------------------- */

/* CVG_OK for a well-formed value: known kind, len <= CVG_VALUE_MAX, data
 * non-NULL when len > 0; else CVG_EINVAL or CVG_ETOOBIG. */
int cvg__value_check(const cvg_value *v);
/* A total order: by kind, then content (doubles by their IEEE bits as a
 * total order, so NaN is ordered too), bytes by memcmp then length. */
int cvg__value_cmp(const cvg_value *a, const cvg_value *b);
/* Deep copy: STRING/BYTES data is allocated (free with cvg__value_free). */
int cvg__value_copy(cvg_value *dst, const cvg_value *src);
void cvg__value_free(cvg_value *v);

/* ---- PN-counter ---------------------------------------------------------- */
/* The state keeps one part per origin: the sum of that origin's deltas and
 * the seq of its last add, plus the floor a record delete set: the part of
 * the sum (up to floor_seq) that a deleter had observed. The value is the sum
 * over origins of (sum - floor_sum), computed exactly in 128 bits so that
 * every order of the same ops gives the same result; a value outside int64
 * reads as CVG_EOVERFLOW. A part's sum is an int64: local adds keep it in
 * range, and a peer's add that leaves it wraps modulo 2^64 (the same bits on
 * every replica, see counter.c). */
__extension__ typedef __int128 cvg__i128;

typedef struct cvg__counter_part {
    cvg_replica_id origin;
    uint64_t seq;       /* seq of the last add from origin applied */
    int64_t sum;        /* all of origin's deltas */
    uint64_t floor_seq; /* a delete observed origin's adds up to this seq */
    int64_t floor_sum;  /* ... which summed to this */
} cvg__counter_part;

typedef struct cvg__counter {
    cvg__counter_part *parts; /* sorted by origin */
    size_t n;
    size_t cap;
} cvg__counter;

int cvg__counter_add(cvg__counter *c, const cvg_dot *dot, int64_t delta);
/* The exact value: the sum of every part's (sum - floor_sum). */
cvg__i128 cvg__counter_total(const cvg__counter *c);
/* The value as an int64: CVG_OK, or CVG_EOVERFLOW with *out set to
 * INT64_MAX or INT64_MIN (the side the exact value lies on). */
int cvg__counter_value(const cvg__counter *c, int64_t *out);
/* CVG_EOVERFLOW if value + delta leaves the int64 range, or if @p origin's
 * part sum + delta does (a local check made before a write, @p origin being
 * the writer; remote ops are applied with wrapping part sums). */
int cvg__counter_check_add(const cvg__counter *c, const cvg_replica_id *origin,
                           int64_t delta);
/* Whether anything is left that no delete observed. */
bool cvg__counter_live(const cvg__counter *c);
/* A record delete: @p observed are the deleter's parts (origin, seq, sum);
 * each raises that origin's floor to (seq, sum) if seq > floor_seq. */
int cvg__counter_delete(cvg__counter *c, const cvg__counter_part *observed,
                        size_t n);
void cvg__counter_destroy(cvg__counter *c);

/* ---- Registers (LWW and multi-value share one state) -------------------- */
/* The state is the set of writes that no later write has replaced: one
 * sibling normally, several after concurrent writes. A multi-value register
 * reads them all; a LWW register reads the winner, the sibling with the
 * highest (hlc, origin id, seq). Keeping the losers of a LWW register is
 * what lets a record delete remove exactly what its writer had seen. */
typedef struct cvg__sibling {
    cvg_dot dot;
    uint64_t hlc;
    cvg_value value; /* owned */
} cvg__sibling;

typedef struct cvg__reg {
    cvg__sibling *s; /* sorted by dot */
    size_t n;
    size_t cap;
} cvg__reg;

/* Apply a set: drop the siblings whose dots are in @p observed, add the new
 * one (value deep-copied). *conflict is true when a sibling the writer had
 * not seen remains beside the new one: the writes were concurrent. A dot
 * already present is a no-op. */
int cvg__reg_set(cvg__reg *r, const cvg_dot *dot, uint64_t hlc,
                 const cvg_value *value, const cvg_dot *observed,
                 size_t n_observed, bool *conflict);
/* A record delete: drop the siblings the deleter's version vector covers. */
void cvg__reg_delete(cvg__reg *r, const cvg__vv *observed);
/* The LWW order of two siblings: by hlc, then origin id, then seq (a total
 * order: distinct siblings never tie). */
int cvg__sibling_lww_cmp(const cvg__sibling *a, const cvg__sibling *b);
/* The LWW winner; NULL if empty. */
const cvg__sibling *cvg__reg_winner(const cvg__reg *r);
int cvg__reg_copy(cvg__reg *dst, const cvg__reg *src);
void cvg__reg_destroy(cvg__reg *r);

/* ---- Observed-remove set: the tags of one element ----------------------- */
/* Each add tags the element with its op's dot; a remove drops the tags its
 * writer saw. The element is in the set while any tag is left, so an add
 * concurrent with a remove wins. */
typedef struct cvg__tags {
    cvg_dot *d; /* sorted */
    size_t n;
    size_t cap;
} cvg__tags;

int cvg__tags_add(cvg__tags *t, const cvg_dot *dot);
void cvg__tags_remove(cvg__tags *t, const cvg_dot *observed, size_t n);
void cvg__tags_delete(cvg__tags *t, const cvg__vv *observed);
int cvg__tags_copy(cvg__tags *dst, const cvg__tags *src);
void cvg__tags_destroy(cvg__tags *t);

#endif /* CVG_CRDT_INT_H */
