/*
 * The tags of one observed-remove set element: the sorted, duplicate-free
 * dots of the adds no remove has seen. The element is present while any
 * tag is left, which is what makes a concurrent add win over a remove.
 */
#include "crdt_int.h"

/* Index of @p key in the state, or where it would be inserted. */
static size_t
find(const cvg__tags *x, const cvg_dot *key, bool *found)
{
    return cvg__search(x->d, x->n, sizeof x->d[0], key, cvg__dot_cmp_v, found);
}

int
cvg__tags_add(cvg__tags *t, const cvg_dot *dot)
{
    bool found;
    size_t i = find(t, dot, &found);
    if (found) {
        return CVG_OK;
    }
    void *p = t->d;
    int rc = cvg__grow(&p, &t->cap, t->n + 1, sizeof t->d[0]);
    t->d = p;
    if (rc != CVG_OK) {
        return rc;
    }
    memmove(&t->d[i + 1], &t->d[i], (t->n - i) * sizeof t->d[0]);
    t->d[i] = *dot;
    t->n++;
    return CVG_OK;
}

/* One binary search per observed dot: @p observed may be unsorted and may
 * name tags that are not (or no longer) here; those are skipped. */
void
cvg__tags_remove(cvg__tags *t, const cvg_dot *observed, size_t n)
{
    for (size_t k = 0; k < n && t->n > 0; k++) {
        bool found;
        size_t i = find(t, &observed[k], &found);
        if (found) {
            memmove(&t->d[i], &t->d[i + 1], (t->n - i - 1) * sizeof t->d[0]);
            t->n--;
        }
    }
}

void
cvg__tags_delete(cvg__tags *t, const cvg__vv *observed)
{
    size_t kept = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (!cvg__vv_contains(observed, &t->d[i])) {
            t->d[kept++] = t->d[i];
        }
    }
    t->n = kept;
}

/* dst must be a valid state (zero-initialized counts); its contents are
 * replaced, and left as they were on failure. */
int
cvg__tags_copy(cvg__tags *dst, const cvg__tags *src)
{
    void *p = dst->d;
    int rc = cvg__array_assign(&p, &dst->n, &dst->cap, src->d, src->n,
                               sizeof dst->d[0]);
    dst->d = p;
    return rc;
}

void
cvg__tags_destroy(cvg__tags *t)
{
    if (t == NULL) {
        return;
    }
    cvg__free(t->d);
    t->d = NULL;
    t->n = t->cap = 0;
}
