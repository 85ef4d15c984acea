/*
 * Replica ids, dots and version vectors. A version vector is kept sorted by
 * origin id with one entry per origin and seq > 0, so lookups are binary
 * searches and merges and comparisons are linear walks. A vector with its
 * sum on (vv_sum.c) updates it with each entry that changes.
 */
#include "crdt_int.h"

int
cvg__dot_cmp(const cvg_dot *a, const cvg_dot *b)
{
    int c = cvg__id_cmp(&a->origin, &b->origin);
    if (c != 0) {
        return c;
    }
    return (a->seq > b->seq) - (a->seq < b->seq);
}

/* Index of @p key in the state, or where it would be inserted. */
static size_t
find(const cvg__vv *x, const cvg_replica_id *key, bool *found)
{
    return cvg__id_search(x->e, x->n, sizeof x->e[0], key, found);
}

uint64_t
cvg__vv_get(const cvg__vv *vv, const cvg_replica_id *origin)
{
    bool found;
    size_t i = find(vv, origin, &found);
    return found ? vv->e[i].seq : 0;
}

/* A seq of 0 means "nothing seen from origin", which is what a missing
 * entry already says: setting 0 removes the entry, so the invariant
 * seq > 0 holds and two equal vectors always have equal arrays. Removing
 * never allocates, so it cannot fail. */
int
cvg__vv_set(cvg__vv *vv, const cvg_replica_id *origin, uint64_t seq)
{
    bool found;
    size_t i = find(vv, origin, &found);
    if (found && vv->summed) {
        cvg__vv_sum_entry(&vv->sum, origin, vv->e[i].seq, -1);
        cvg__vv_sum_entry(&vv->sum, origin, seq, 1);
    }
    if (found) {
        if (seq == 0) {
            memmove(&vv->e[i], &vv->e[i + 1],
                    (vv->n - i - 1) * sizeof vv->e[0]);
            vv->n--;
        } else {
            vv->e[i].seq = seq;
        }
        return CVG_OK;
    }
    if (seq == 0) {
        return CVG_OK;
    }
    void *p = vv->e;
    int rc = cvg__grow(&p, &vv->cap, vv->n + 1, sizeof vv->e[0]);
    vv->e = p;
    if (rc != CVG_OK) {
        return rc;
    }
    memmove(&vv->e[i + 1], &vv->e[i], (vv->n - i) * sizeof vv->e[0]);
    vv->e[i].origin = *origin;
    vv->e[i].seq = seq;
    vv->n++;
    if (vv->summed) {
        cvg__vv_sum_entry(&vv->sum, origin, seq, 1);
    }
    return CVG_OK;
}

bool
cvg__vv_contains(const cvg__vv *vv, const cvg_dot *d)
{
    return d->seq <= cvg__vv_get(vv, &d->origin);
}

int
cvg__vv_merge(cvg__vv *a, const cvg__vv *b)
{
    if (a == b) {
        return CVG_OK;
    }
    /* Count the origins only b has, grow once, then merge from the back in
     * place: every allocation happens before a is touched, so a failure
     * leaves a as it was. */
    size_t extra = 0;
    size_t i = 0;
    size_t j = 0;
    while (j < b->n) {
        if (b->e[j].seq == 0) {
            j++;
            continue;
        }
        int c = i < a->n ? cvg__id_cmp(&a->e[i].origin, &b->e[j].origin) : 1;
        if (c < 0) {
            i++;
        } else if (c == 0) {
            i++;
            j++;
        } else {
            extra++;
            j++;
        }
    }
    void *p = a->e;
    int rc = cvg__grow(&p, &a->cap, a->n + extra, sizeof a->e[0]);
    a->e = p;
    if (rc != CVG_OK) {
        return rc;
    }
    size_t k = a->n + extra;
    i = a->n;
    j = b->n;
    while (j > 0) {
        const cvg_dot *bd = &b->e[j - 1];
        if (bd->seq == 0) {
            j--;
            continue;
        }
        int c = i > 0 ? cvg__id_cmp(&a->e[i - 1].origin, &bd->origin) : -1;
        if (c > 0) {
            a->e[--k] = a->e[--i];
        } else if (c == 0) {
            cvg_dot d = a->e[--i];
            if (a->summed && bd->seq > d.seq) {
                cvg__vv_sum_entry(&a->sum, &d.origin, d.seq, -1);
                cvg__vv_sum_entry(&a->sum, &d.origin, bd->seq, 1);
            }
            d.seq = CVG__MAX(d.seq, bd->seq);
            a->e[--k] = d;
            j--;
        } else {
            if (a->summed) {
                cvg__vv_sum_entry(&a->sum, &bd->origin, bd->seq, 1);
            }
            a->e[--k] = *bd;
            j--;
        }
    }
    /* What is left of a is already in place: k == i here. */
    a->n += extra;
    return CVG_OK;
}

int
cvg__vv_copy(cvg__vv *dst, const cvg__vv *src)
{
    void *p = dst->e;
    int rc = cvg__array_assign(&p, &dst->n, &dst->cap, src->e, src->n,
                               sizeof dst->e[0]);
    dst->e = p;
    dst->summed = rc == CVG_OK && src->summed;
    dst->sum = src->sum;
    return rc;
}

void
cvg__vv_destroy(cvg__vv *vv)
{
    if (vv == NULL) {
        return;
    }
    cvg__free(vv->e);
    vv->e = NULL;
    vv->n = vv->cap = 0;
    vv->summed = false;
    memset(&vv->sum, 0, sizeof vv->sum);
}

cvg__order
cvg__vv_compare(const cvg__vv *a, const cvg__vv *b)
{
    /* a_more: some origin where a is ahead; b_more: where b is ahead. A
     * missing entry counts as seq 0. */
    bool a_more = false;
    bool b_more = false;
    size_t i = 0;
    size_t j = 0;
    while (i < a->n || j < b->n) {
        int c;
        if (i == a->n) {
            c = 1;
        } else if (j == b->n) {
            c = -1;
        } else {
            c = cvg__id_cmp(&a->e[i].origin, &b->e[j].origin);
        }
        if (c < 0) {
            a_more |= a->e[i].seq > 0;
            i++;
        } else if (c > 0) {
            b_more |= b->e[j].seq > 0;
            j++;
        } else {
            a_more |= a->e[i].seq > b->e[j].seq;
            b_more |= b->e[j].seq > a->e[i].seq;
            i++;
            j++;
        }
    }
    if (a_more && b_more) {
        return CVG__CONCURRENT;
    }
    if (a_more) {
        return CVG__AFTER;
    }
    if (b_more) {
        return CVG__BEFORE;
    }
    return CVG__EQUAL;
}
