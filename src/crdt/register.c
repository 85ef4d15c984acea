/*
 * The register state shared by LWW and multi-value registers: the writes no
 * later write has replaced, sorted by dot. A set replaces what its writer
 * saw; a record delete drops what the deleter's version vector covers.
 */
#include "crdt_int.h"

/* Index of @p key in the state, or where it would be inserted. */
static size_t
find(const cvg__reg *x, const cvg_dot *key, bool *found)
{
    return cvg__search(x->s, x->n, sizeof x->s[0], key, cvg__dot_cmp_v, found);
}

/* Linear: @p observed may be unsorted, and it is short (the siblings one
 * writer saw). */
static bool
observed_has(const cvg_dot *observed, size_t n, const cvg_dot *dot)
{
    for (size_t k = 0; k < n; k++) {
        if (cvg__dot_cmp(&observed[k], dot) == 0) {
            return true;
        }
    }
    return false;
}

int
cvg__reg_set(cvg__reg *r, const cvg_dot *dot, uint64_t hlc,
             const cvg_value *value, const cvg_dot *observed, size_t n_observed,
             bool *conflict)
{
    bool found;
    if (conflict != NULL) {
        *conflict = false;
    }
    (void)find(r, dot, &found);
    if (found) {
        return CVG_OK;
    }
    /* Allocate everything first (the copy, room for one more sibling):
     * after this point nothing can fail, so a failure leaves r as it
     * was. */
    cvg_value copy;
    int rc = cvg__value_copy(&copy, value);
    if (rc != CVG_OK) {
        return rc;
    }
    void *p = r->s;
    rc = cvg__grow(&p, &r->cap, r->n + 1, sizeof r->s[0]);
    r->s = p;
    if (rc != CVG_OK) {
        cvg__value_free(&copy);
        return rc;
    }
    size_t kept = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (observed_has(observed, n_observed, &r->s[i].dot)) {
            cvg__value_free(&r->s[i].value);
        } else {
            r->s[kept++] = r->s[i];
        }
    }
    r->n = kept;
    /* Whatever the writer had not seen is a concurrent write. */
    if (conflict != NULL) {
        *conflict = kept > 0;
    }
    size_t at = find(r, dot, &found);
    memmove(&r->s[at + 1], &r->s[at], (r->n - at) * sizeof r->s[0]);
    r->s[at].dot = *dot;
    r->s[at].hlc = hlc;
    r->s[at].value = copy;
    r->n++;
    return CVG_OK;
}

void
cvg__reg_delete(cvg__reg *r, const cvg__vv *observed)
{
    size_t kept = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (cvg__vv_contains(observed, &r->s[i].dot)) {
            cvg__value_free(&r->s[i].value);
        } else {
            r->s[kept++] = r->s[i];
        }
    }
    r->n = kept;
}

/* The LWW order: hlc, then origin id, then seq. Dots are unique, so two
 * distinct siblings never tie and every replica picks the same one. */
int
cvg__sibling_lww_cmp(const cvg__sibling *a, const cvg__sibling *b)
{
    if (a->hlc != b->hlc) {
        return a->hlc > b->hlc ? 1 : -1;
    }
    int c = cvg__id_cmp(&a->dot.origin, &b->dot.origin);
    if (c != 0) {
        return c;
    }
    return (a->dot.seq > b->dot.seq) - (a->dot.seq < b->dot.seq);
}

const cvg__sibling *
cvg__reg_winner(const cvg__reg *r)
{
    const cvg__sibling *w = NULL;
    for (size_t i = 0; i < r->n; i++) {
        if (w == NULL || cvg__sibling_lww_cmp(&r->s[i], w) > 0) {
            w = &r->s[i];
        }
    }
    return w;
}

/* dst must be a valid state (zero-initialized counts); its old siblings are
 * released only once the copy has fully succeeded. */
int
cvg__reg_copy(cvg__reg *dst, const cvg__reg *src)
{
    if (dst == src) {
        return CVG_OK;
    }
    cvg__reg tmp = {NULL, 0, 0};
    if (src->n > 0) {
        tmp.s = cvg__calloc(src->n, sizeof tmp.s[0]);
        if (tmp.s == NULL) {
            return CVG_ENOMEM;
        }
        tmp.cap = src->n;
    }
    for (size_t i = 0; i < src->n; i++) {
        int rc = cvg__value_copy(&tmp.s[i].value, &src->s[i].value);
        if (rc != CVG_OK) {
            cvg__reg_destroy(&tmp);
            return rc;
        }
        tmp.s[i].dot = src->s[i].dot;
        tmp.s[i].hlc = src->s[i].hlc;
        tmp.n++;
    }
    cvg__reg_destroy(dst);
    *dst = tmp;
    return CVG_OK;
}

void
cvg__reg_destroy(cvg__reg *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->n; i++) {
        cvg__value_free(&r->s[i].value);
    }
    cvg__free(r->s);
    r->s = NULL;
    r->n = r->cap = 0;
}
