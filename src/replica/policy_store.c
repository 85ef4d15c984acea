/*
 * The conflict strategies a replica keeps. A strategy decides what a read
 * returns, so two processes that open one replica with different ones (an
 * app with its strategies, the command line with none) would read other
 * values from the same state. The replica therefore stores them in a meta
 * record; an open either gives the same ones, gives none (and adopts the
 * stored ones), or replaces them on purpose (replace_policies). Resolver
 * callbacks are code and cannot be stored: an open without them keeps a
 * RESOLVER collection's siblings, which is what that strategy reads.
 *
 * The record: a version byte (1), a u32 count, then per collection, sorted
 * by name: u16 name length, the name, u8 strategy, the priority origin (16
 * bytes) and u8 priority_wins. Sorted, so that equal sets of strategies
 * encode to equal bytes, whatever order the app listed them in.
 */
#include <stdio.h>
#include <stdlib.h>

#include "replica_int.h"

#define RECORD "policies"
#define RECORD_VERSION 1u
#define POLICIES_MAX 4096u

static int
by_name(const void *a, const void *b)
{
    const cvg__policy *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->collection, y->collection, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* The canonical encoding of r's policies into @p out. */
static int
encode(cvg_replica *r, cvg__buf *out)
{
    qsort(r->policies, r->n_policies, sizeof *r->policies, by_name);
    uint8_t head[5] = {RECORD_VERSION};
    cvg__put_be32(head + 1, (uint32_t)r->n_policies);
    int rc = cvg__buf_append(out, head, sizeof head);
    for (size_t i = 0; rc == CVG_OK && i < r->n_policies; i++) {
        const cvg__policy *p = &r->policies[i];
        if (i > 0 && by_name(&r->policies[i - 1], p) == 0) {
            return CVG_EINVAL; /* one collection listed twice */
        }
        uint8_t len[2] = {(uint8_t)(p->len >> 8), (uint8_t)p->len};
        uint8_t tail[18];
        tail[0] = (uint8_t)p->p.strategy;
        memcpy(tail + 1, p->p.priority_origin.bytes, 16);
        tail[17] = p->p.priority_wins ? 1 : 0;
        if (p->len > CVG_NAME_MAX) {
            return CVG_ETOOBIG;
        }
        rc = cvg__buf_append(out, len, 2);
        if (rc == CVG_OK) {
            rc = cvg__buf_append(out, p->collection, p->len);
        }
        if (rc == CVG_OK) {
            rc = cvg__buf_append(out, tail, sizeof tail);
        }
    }
    return rc;
}

/* Adopt the stored policies @p v (hostile until checked: it is disk). */
static int
adopt(cvg_replica *r, cvg_bytes v)
{
    const uint8_t *p = v.data, *end = v.data + v.len;
    if (v.len < 5 || p[0] != RECORD_VERSION) {
        return v.len >= 1 && p[0] > RECORD_VERSION ? CVG_EVERSION
                                                   : CVG_ECORRUPT;
    }
    uint32_t n = cvg__get_be32(p + 1);
    p += 5;
    if (n > POLICIES_MAX) {
        return CVG_ECORRUPT;
    }
    r->policies = n ? cvg__calloc(n, sizeof *r->policies) : NULL;
    if (n > 0 && r->policies == NULL) {
        return CVG_ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (end - p < 2) {
            return CVG_ECORRUPT;
        }
        size_t len = (size_t)p[0] << 8 | p[1];
        p += 2;
        if (len == 0 || len > CVG_NAME_MAX || (size_t)(end - p) < len + 18 ||
            memchr(p, 0, len) != NULL || p[len] > CVG_STRATEGY_RESOLVER ||
            p[len + 17] > 1) {
            return CVG_ECORRUPT;
        }
        char *name = cvg__alloc(len + 1);
        if (name == NULL) {
            return CVG_ENOMEM;
        }
        memcpy(name, p, len);
        name[len] = '\0';
        cvg__policy *q = &r->policies[i];
        q->collection = name;
        q->len = len;
        q->p.collection = name;
        q->p.strategy = (cvg_strategy)p[len];
        memcpy(q->p.priority_origin.bytes, p + len + 1, 16);
        q->p.priority_wins = p[len + 17] != 0;
        r->n_policies = i + 1;
        p += len + 18;
    }
    return p == end ? CVG_OK : CVG_ECORRUPT;
}

static int
store(void *ctx, cvg__store_txn *mt)
{
    cvg_replica *r = ctx;
    cvg__buf b = {0};
    int rc = encode(r, &b);
    if (rc == CVG_OK) {
        cvg_bytes v = {b.p, b.len};
        rc = cvg__meta_put(&r->store, mt, RECORD, v);
    }
    cvg__buf_free(&b);
    return rc;
}

/* The name of the first collection whose strategy differs. */
static void
name_difference(cvg_replica *r, cvg_bytes stored, char *out, size_t len)
{
    cvg_replica tmp;
    memset(&tmp, 0, sizeof tmp);
    snprintf(out, len, "(the set of collections)");
    if (adopt(&tmp, stored) != CVG_OK) {
        cvg__policies_free(&tmp);
        return;
    }
    for (size_t i = 0; i < r->n_policies; i++) {
        const cvg__policy *p = &r->policies[i];
        const cvg__policy *q = NULL;
        for (size_t j = 0; j < tmp.n_policies && q == NULL; j++) {
            if (by_name(p, &tmp.policies[j]) == 0) {
                q = &tmp.policies[j];
            }
        }
        if (q == NULL || q->p.strategy != p->p.strategy ||
            q->p.priority_wins != p->p.priority_wins ||
            memcmp(&q->p.priority_origin, &p->p.priority_origin, 16) != 0) {
            snprintf(out, len, "'%s'", p->collection);
            break;
        }
    }
    cvg__policies_free(&tmp);
}

int
cvg__policies_settle(cvg_replica *r, bool replace)
{
    cvg__store_txn *mt;
    int rc = cvg__store_begin(&r->store, false, &mt);
    if (rc != CVG_OK) {
        return cvg__replica_fail(r, rc, "cannot begin a transaction");
    }
    cvg_bytes stored;
    rc = cvg__meta_get(&r->store, mt, RECORD, &stored);
    bool have = rc == CVG_OK;
    if (rc == CVG_ENOTFOUND) {
        rc = CVG_OK;
    }
    if (rc == CVG_OK && r->n_policies == 0 && have) {
        rc = adopt(r, stored);
        if (rc != CVG_OK) {
            cvg__policies_free(r);
            cvg__store_abort(mt);
            return cvg__replica_fail(r, rc,
                                     "the stored conflict strategies "
                                     "are unreadable");
        }
        cvg__store_abort(mt);
        return CVG_OK;
    }
    bool same = false;
    if (rc == CVG_OK && r->n_policies > 0 && have && !replace) {
        cvg__buf mine = {0};
        rc = encode(r, &mine);
        same = rc == CVG_OK && mine.len == stored.len &&
               memcmp(mine.p, stored.data, stored.len) == 0;
        cvg__buf_free(&mine);
        if (rc == CVG_OK && !same) {
            char which[CVG_NAME_MAX + 32];
            name_difference(r, stored, which, sizeof which);
            cvg__store_abort(mt);
            return cvg__replica_fail(
                r, CVG_EPOLICY,
                "the conflict strategy of %s differs from the one stored in "
                "the replica; open without strategies to adopt the stored "
                "ones, or set replace_policies to store these",
                which);
        }
    }
    cvg__store_abort(mt);
    if (rc != CVG_OK) {
        return cvg__replica_fail(r, rc,
                                 "cannot read the stored conflict "
                                 "strategies");
    }
    if (same || (r->n_policies == 0 && !(replace && have)) ||
        r->opts.read_only) {
        return CVG_OK; /* nothing to store, or no way to */
    }
    rc = cvg__store_write(&r->store, false, store, r);
    return rc == CVG_OK ? CVG_OK
                        : cvg__replica_fail(r, rc,
                                            "cannot store the "
                                            "conflict strategies");
}
