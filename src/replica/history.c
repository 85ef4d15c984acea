/*
 * Each origin's signed history, kept as ops are applied (src/oplog/history.c
 * says how it hashes). The replica holds, per origin, the hash stream at
 * the seq it has committed (built from the log the first time it is
 * needed, at most a segment's ops). A write transaction takes the streams
 * it extends out of that cache (no copy: a commit of one op must not pay
 * for one) and puts them back at commit; an abort drops them, and they are
 * built again from the log when next needed. Of our own origin's, a copy
 * of the stream as it was before the last write transaction is kept too:
 * a peer that syncs after each of our commits holds our history there,
 * and the fork check compares at that seq. A commit stores the segments
 * that filled up and the signature points and keys a page brought.
 *
 * Signing happens where ops leave (a page served), never per commit: the
 * hash costs a few tens of nanoseconds per op, a signature about 25 us.
 */
#include "replica_int.h"

/* ---- The replica's streams ----------------------------------------------- */

static cvg__history *
cached(const cvg_replica *r, uint32_t idx)
{
    return idx < r->nhist ? r->hist[idx] : NULL;
}

static bool
cache_room(cvg_replica *r, uint32_t idx)
{
    if (idx >= r->nhist) {
        void *arr = r->hist;
        size_t cap = r->nhist;
        if (cvg__grow(&arr, &cap, idx + 1, sizeof *r->hist) != CVG_OK) {
            return false; /* a cache: without it, the stream is built again */
        }
        r->hist = arr;
        memset(r->hist + r->nhist, 0, (cap - r->nhist) * sizeof *r->hist);
        r->nhist = cap;
    }
    return true;
}

static void
cache_put(cvg_replica *r, uint32_t idx, const cvg__history *h)
{
    if (!cache_room(r, idx)) {
        return;
    }
    if (r->hist[idx] == NULL) {
        r->hist[idx] = cvg__alloc(sizeof *h);
        if (r->hist[idx] == NULL) {
            return;
        }
    }
    *r->hist[idx] = *h;
}

void
cvg__replica_history_free(cvg_replica *r)
{
    for (size_t i = 0; i < r->nhist; i++) {
        cvg__free(r->hist[i]);
    }
    cvg__free(r->hist);
    r->hist = NULL;
    r->nhist = 0;
    cvg__free(r->self_before);
    r->self_before = NULL;
}

/* ---- The transaction's streams by origin ---------------------------------- */

/* Ids are random: their first bytes are already a good hash. */
static size_t
stream_slot(const cvg__txn_history *x, const cvg_replica_id *origin)
{
    uint64_t h;
    memcpy(&h, origin->bytes, sizeof h);
    size_t mask = x->nslots - 1;
    size_t i = (size_t)h & mask;
    while (x->slots[i] != 0 &&
           !cvg__id_eq(&x->streams[x->slots[i] - 1].h->origin, origin)) {
        i = (i + 1) & mask;
    }
    return i;
}

/* The index of @p origin's stream in @p x, or x->n. */
static size_t
stream_find(const cvg__txn_history *x, const cvg_replica_id *origin)
{
    if (x->nslots == 0) {
        return x->n;
    }
    uint32_t v = x->slots[stream_slot(x, origin)];
    return v == 0 ? x->n : v - 1;
}

/* Index stream x->n - 1, just added; CVG_ENOMEM changes nothing. */
static int
stream_index(cvg__txn_history *x)
{
    if (x->n * 2 > x->nslots) {
        size_t nslots = x->nslots ? x->nslots * 2 : 16;
        uint32_t *slots = cvg__calloc(nslots, sizeof *slots);
        if (slots == NULL) {
            return CVG_ENOMEM;
        }
        cvg__free(x->slots);
        x->slots = slots;
        x->nslots = nslots;
        for (size_t i = 0; i + 1 < x->n; i++) {
            x->slots[stream_slot(x, &x->streams[i].h->origin)] =
                (uint32_t)(i + 1);
        }
    }
    x->slots[stream_slot(x, &x->streams[x->n - 1].h->origin)] = (uint32_t)x->n;
    return CVG_OK;
}

/* The stream of @p origin at @p seq as @p t sees it: the transaction's own
 * copy, the replica's, or one built from the log. */
static int
stream_at(cvg_txn *t, const cvg_replica_id *origin, uint64_t seq,
          cvg__history *out)
{
    cvg_replica *r = t->r;
    cvg__txn_history *x = &t->hist;
    size_t i = stream_find(x, origin);
    if (i < x->n && x->streams[i].h->seq == seq) {
        *out = *x->streams[i].h;
        return CVG_OK;
    }
    uint32_t idx;
    bool known = cvg__origins_find(&r->origins, origin, &idx) == CVG_OK;
    const cvg__history *c = known ? cached(r, idx) : NULL;
    if (c != NULL && c->seq == seq && cvg__id_cmp(&c->origin, origin) == 0) {
        *out = *c;
        return CVG_OK;
    }
    c = r->self_before;
    if (c != NULL && c->seq == seq && cvg__id_eq(&c->origin, origin)) {
        *out = *c;
        return CVG_OK;
    }
    int rc = cvg__history_build(&r->store, t->mt, origin, seq, out);
    if (rc == CVG_OK && known && seq == cvg__vv_get(&r->vv, origin)) {
        cache_put(r, idx, out); /* what is committed: keep it */
    }
    return rc;
}

int
cvg__txn_history_digest(cvg_txn *t, const cvg_replica_id *origin, uint64_t seq,
                        uint8_t out[CVG__DIGEST_BYTES])
{
    cvg__history h;
    int rc = stream_at(t, origin, seq, &h);
    if (rc == CVG_OK) {
        cvg__history_digest(&h, out);
    }
    return rc;
}

/* ---- A transaction's streams ------------------------------------------- */

/* A copy of our stream at @p h's seq, before a transaction extends it (a
 * cache: without room for it, the fork check builds it from the log). */
static void
keep_self_before(cvg_replica *r, const cvg__history *h)
{
    if (r->self_before == NULL) {
        r->self_before = cvg__alloc(sizeof *h);
    }
    if (r->self_before != NULL) {
        *r->self_before = *h;
    }
}

/* The transaction's stream of @p origin, taken from the cache (or built,
 * at what is committed) the first time. */
static int
txn_stream(cvg_txn *t, const cvg_replica_id *origin, cvg__history **out)
{
    cvg__txn_history *x = &t->hist;
    if (x->last < x->n && cvg__id_eq(&x->streams[x->last].h->origin, origin)) {
        *out = x->streams[x->last].h;
        return CVG_OK;
    }
    size_t at = stream_find(x, origin);
    if (at < x->n) {
        x->last = at;
        *out = x->streams[at].h;
        return CVG_OK;
    }
    void *arr = x->streams;
    int rc = cvg__grow(&arr, &x->cap, x->n + 1, sizeof *x->streams);
    x->streams = arr;
    if (rc != CVG_OK) {
        return rc;
    }
    cvg_replica *r = t->r;
    uint64_t seq = cvg__vv_get(&r->vv, origin);
    uint32_t idx;
    cvg__history *h = NULL;
    if (cvg__origins_find(&r->origins, origin, &idx) == CVG_OK) {
        h = cached(r, idx);
        if (h != NULL && h->seq == seq &&
            cvg__id_cmp(&h->origin, origin) == 0) {
            r->hist[idx] = NULL; /* ours until commit */
            if (cvg__id_eq(origin, &r->id)) {
                keep_self_before(r, h);
            }
        } else {
            h = NULL;
        }
    }
    if (h == NULL) {
        h = cvg__alloc(sizeof *h);
        if (h == NULL) {
            return CVG_ENOMEM;
        }
        rc = cvg__history_build(&r->store, t->mt, origin, seq, h);
        if (rc != CVG_OK) {
            cvg__free(h);
            return rc;
        }
    }
    x->streams[x->n].h = h;
    x->n++;
    rc = stream_index(x);
    if (rc != CVG_OK) {
        x->n--;
        cvg__free(h); /* built again when needed */
        return rc;
    }
    x->last = x->n - 1;
    *out = h;
    return CVG_OK;
}

int
cvg__txn_history_add(cvg_txn *t, const cvg__op *op)
{
    cvg__history *h;
    int rc = txn_stream(t, &op->pub.dot.origin, &h);
    cvg__history_seal seal;
    if (rc == CVG_OK) {
        rc = cvg__history_add(h, op, &t->hist.canon, &seal);
        rc = rc == CVG_EINVAL ? CVG_ECORRUPT : rc;
    }
    if (rc == CVG_OK && seal.sealed) {
        cvg__txn_history *x = &t->hist;
        void *arr = x->seals;
        rc = cvg__grow(&arr, &x->capseals, x->nseals + 1, sizeof *x->seals);
        x->seals = arr;
        if (rc == CVG_OK) {
            x->seals[x->nseals].origin = op->pub.dot.origin;
            x->seals[x->nseals].seal = seal;
            x->nseals++;
        }
    }
    return rc;
}

int
cvg__txn_history_write(cvg_txn *t)
{
    cvg_replica *r = t->r;
    cvg__txn_history *x = &t->hist;
    int rc = CVG_OK;
    for (size_t i = 0; rc == CVG_OK && i < x->nseals; i++) {
        rc = cvg__chain_put(&r->store, t->mt, &x->seals[i].origin,
                            x->seals[i].seal.seg, x->seals[i].seal.digest);
    }
    for (size_t i = 0; rc == CVG_OK && i < x->npoints; i++) {
        const cvg__point *p = &x->points[i];
        rc = cvg__point_put(&r->store, t->mt, &p->origin, p->seq, p->sig);
        if (rc == CVG_OK && p->has_key) {
            rc = cvg__key_put(&r->store, t->mt, &p->origin, p->pk, p->inc,
                              p->inc_len);
        }
    }
    if (rc == CVG_OK && !r->self_key_stored && r->has_pk) {
        /* Our own key, so that origins we leave (a copy) stay ours. */
        rc = cvg__key_put(&r->store, t->mt, &r->id, r->pk, r->inc,
                          (uint8_t)r->inc_len);
    }
    return rc;
}

void
cvg__txn_history_publish(cvg_txn *t)
{
    cvg_replica *r = t->r;
    cvg__txn_history *x = &t->hist;
    for (size_t i = 0; i < x->n; i++) {
        uint32_t idx;
        cvg__history *h = x->streams[i].h;
        if (cvg__origins_find(&r->origins, &h->origin, &idx) == CVG_OK &&
            cache_room(r, idx)) {
            cvg__free(r->hist[idx]);
            r->hist[idx] = h;
            x->streams[i].h = NULL;
        }
    }
    if (r->has_pk) {
        r->self_key_stored = true;
    }
}

void
cvg__txn_history_free(cvg_txn *t)
{
    cvg__txn_history *x = &t->hist;
    for (size_t i = 0; i < x->n; i++) {
        cvg__free(x->streams[i].h); /* aborted: built again when needed */
    }
    cvg__free(x->streams);
    cvg__free(x->slots);
    cvg__free(x->seals);
    cvg__free(x->points);
    cvg__buf_free(&x->canon);
    memset(x, 0, sizeof *x);
}

/* ---- Keys and signatures ------------------------------------------------- */

int
cvg__txn_origin_key(cvg_txn *t, const cvg_replica_id *origin, uint8_t pk[32],
                    uint8_t inc[CVG__INC_MAX], uint8_t *inc_len)
{
    cvg_replica *r = t->r;
    if (r->has_pk && cvg__id_cmp(origin, &r->id) == 0) {
        memcpy(pk, r->pk, 32);
        memcpy(inc, r->inc, r->inc_len);
        *inc_len = (uint8_t)r->inc_len;
        return CVG_OK;
    }
    cvg__txn_history *x = &t->hist;
    for (size_t i = 0; i < x->npoints; i++) {
        if (x->points[i].has_key &&
            cvg__id_cmp(&x->points[i].origin, origin) == 0) {
            memcpy(pk, x->points[i].pk, 32);
            memcpy(inc, x->points[i].inc, x->points[i].inc_len);
            *inc_len = x->points[i].inc_len;
            return CVG_OK;
        }
    }
    return cvg__key_get(&r->store, t->mt, origin, pk, inc, inc_len);
}

bool
cvg__txn_signs_for(cvg_txn *t, const cvg_replica_id *origin)
{
    cvg_replica *r = t->r;
    if (!r->has_pk || r->sk == NULL) {
        return false;
    }
    uint8_t pk[32], inc[CVG__INC_MAX], inc_len;
    return cvg__txn_origin_key(t, origin, pk, inc, &inc_len) == CVG_OK &&
           sodium_memcmp(pk, r->pk, 32) == 0;
}

int
cvg__txn_point(cvg_txn *t, const cvg_replica_id *origin, uint64_t seq,
               bool with_key, cvg__point *out)
{
    memset(out, 0, sizeof *out);
    out->origin = *origin;
    out->seq = seq;
    int rc = CVG_OK;
    if (cvg__txn_signs_for(t, origin)) {
        uint8_t d[CVG__DIGEST_BYTES], msg[CVG__POINT_MSG_BYTES];
        rc = cvg__txn_history_digest(t, origin, seq, d);
        if (rc == CVG_OK) {
            cvg__history_message(origin, seq, d, msg);
            rc = cvg__replica_sign(t->r, msg, sizeof msg, out->sig);
        }
    } else {
        rc = cvg__point_get(&t->r->store, t->mt, origin, seq, out->sig);
    }
    if (rc == CVG_OK && with_key) {
        rc = cvg__txn_origin_key(t, origin, out->pk, out->inc, &out->inc_len);
        out->has_key = rc == CVG_OK;
        rc = rc == CVG_ENOTFOUND ? CVG_OK : rc;
    }
    return rc;
}

int
cvg__txn_point_check(cvg_txn *t, const cvg__point *p,
                     const uint8_t digest[CVG__DIGEST_BYTES])
{
    uint8_t pk[32], inc[CVG__INC_MAX], inc_len;
    int rc = cvg__txn_origin_key(t, &p->origin, pk, inc, &inc_len);
    if (rc == CVG_ENOTFOUND && p->has_key) {
        cvg_replica_id id;
        cvg__identity_derive(p->pk, p->inc, p->inc_len, &id);
        if (cvg__id_cmp(&id, &p->origin) != 0) {
            return CVG_EFORGED; /* a key that is not the origin's */
        }
        memcpy(pk, p->pk, 32);
        rc = CVG_OK;
    }
    if (rc != CVG_OK) {
        return rc == CVG_ENOTFOUND ? CVG_EFORGED : rc;
    }
    uint8_t msg[CVG__POINT_MSG_BYTES];
    cvg__history_message(&p->origin, p->seq, digest, msg);
    return crypto_sign_verify_detached(p->sig, msg, sizeof msg, pk) == 0
               ? CVG_OK
               : CVG_EFORGED;
}

static int
point_order(const void *a, const void *b)
{
    const cvg__point *const *x = a, *const *y = b;
    int c = cvg__id_cmp(&(*x)->origin, &(*y)->origin);
    return c != 0 ? c : (*x < *y ? -1 : *x > *y); /* then page order */
}

/* The point of @p origin among @p by (sorted by origin), or NULL. */
static const cvg__point *
find_point(const cvg__point *const *by, size_t n, const cvg_replica_id *origin)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cvg__id_cmp(&by[mid]->origin, origin);
        if (c == 0) {
            while (mid > 0 && cvg__id_eq(&by[mid - 1]->origin, origin)) {
                mid--; /* the first in the page, as a peer would mean */
            }
            return by[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

static int check_streams(cvg_txn *t, const cvg__point *const *by, size_t n,
                         char *hex);

int
cvg__txn_check_points(cvg_txn *t, const cvg__point *pts, size_t n)
{
    char hex[33];
    /* The page's points by origin: a page of many origins costs n log n,
     * not n^2. */
    const cvg__point **by = n ? cvg__alloc(n * sizeof *by) : NULL;
    if (n > 0 && by == NULL) {
        return CVG_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        by[i] = &pts[i];
    }
    if (n > 1) {
        qsort(by, n, sizeof *by, point_order);
    }
    int rc = check_streams(t, by, n, hex);
    cvg__free(by);
    return rc;
}

static int
check_streams(cvg_txn *t, const cvg__point *const *by, size_t n, char *hex)
{
    cvg_replica *r = t->r;
    cvg__txn_history *x = &t->hist;
    for (size_t i = 0; i < x->n; i++) {
        const cvg__history *h = x->streams[i].h;
        if (cvg__id_cmp(&h->origin, &r->id) == 0 ||
            h->seq == cvg__vv_get(&r->vv, &h->origin)) {
            continue; /* our own ops (a resolver's), or nothing new */
        }
        cvg_replica_id_hex(&h->origin, hex);
        cvg__fork_rec fork;
        int frc = cvg__fork_get(&r->store, t->mt, &h->origin, &fork);
        if (frc == CVG_OK) {
            return cvg__replica_fail(
                r, CVG_EEQUIVOCAL,
                "origin %s signed two histories (a fork, found at seq %llu): "
                "its ops are refused",
                hex, (unsigned long long)fork.seq_a);
        }
        if (frc != CVG_ENOTFOUND) {
            return frc;
        }
        const cvg__point *p = find_point(by, n, &h->origin);
        if (p == NULL || p->seq != h->seq) {
            return cvg__replica_fail(
                r, CVG_EFORGED,
                "ops of origin %s up to seq %llu come without its signature",
                hex, (unsigned long long)h->seq);
        }
        uint8_t d[CVG__DIGEST_BYTES];
        cvg__history_digest(h, d);
        int rc = cvg__txn_point_check(t, p, d);
        if (rc != CVG_OK) {
            return cvg__replica_fail(
                r, rc,
                "the signature of origin %s at seq %llu does not match its "
                "ops (forged, or another history of that origin)",
                hex, (unsigned long long)h->seq);
        }
        if (cvg__txn_signs_for(t, &h->origin)) {
            continue; /* ours to sign again: nothing to keep */
        }
        void *arr = x->points;
        rc = cvg__grow(&arr, &x->cappoints, x->npoints + 1, sizeof *x->points);
        x->points = arr;
        if (rc != CVG_OK) {
            return rc;
        }
        uint8_t pk[32], inc[CVG__INC_MAX], inc_len;
        x->points[x->npoints] = *p;
        /* The key is stored with the first point of an origin only. */
        x->points[x->npoints].has_key =
            p->has_key && cvg__key_get(&r->store, t->mt, &p->origin, pk, inc,
                                       &inc_len) == CVG_ENOTFOUND;
        x->npoints++;
    }
    return CVG_OK;
}

/* ---- Forks --------------------------------------------------------------- */

int
cvg_replica_forks(cvg_replica *r, cvg_fork *out, size_t cap, size_t *count_out)
{
    if (count_out != NULL) {
        *count_out = 0;
    }
    if (r == NULL || count_out == NULL || (out == NULL && cap > 0)) {
        return CVG_EINVAL;
    }
    cvg_replica_id *ids = NULL;
    cvg__fork_rec *recs = NULL;
    if (cap > 0) {
        ids = cvg__alloc(cap * sizeof *ids);
        recs = cvg__alloc(cap * sizeof *recs);
        if (ids == NULL || recs == NULL) {
            cvg__free(ids);
            cvg__free(recs);
            return CVG_ENOMEM;
        }
    }
    cvg__store_txn *mt;
    int rc = cvg__store_begin(&r->store, false, &mt);
    size_t n = 0;
    if (rc == CVG_OK) {
        rc = cvg__forks_list(&r->store, mt, ids, recs, cap, &n);
        cvg__store_abort(mt);
    }
    for (size_t i = 0; rc == CVG_OK && i < n && i < cap; i++) {
        out[i].origin = ids[i];
        out[i].seq = recs[i].seq_a;
        out[i].our_seq = recs[i].seq_b;
        out[i].found_ms = recs[i].found_ms;
    }
    cvg__free(ids);
    cvg__free(recs);
    if (rc != CVG_OK) {
        return cvg__replica_fail(r, rc, "cannot read the forks: %s",
                                 cvg_strerror(rc));
    }
    *count_out = n;
    return CVG_OK;
}
