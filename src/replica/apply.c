/*
 * The apply pipeline: one validated op, local or from a peer, changes the
 * cached state of the records it targets. Local writes and sync share it, so
 * a replica computes the same state from the same ops whoever made them.
 */
#include <sodium.h>
#include <stdlib.h>

#include "types.h"

int
cvg__elem_hash(cvg_txn *t, const cvg_value *v, uint8_t out[16])
{
    t->vbuf.len = 0;
    int rc = cvg__value_encode(v, &t->vbuf);
    if (rc != CVG_OK) {
        return rc;
    }
    /* A keyed-free BLAKE2b of the canonical encoding: any element, however
     * long, gets a fixed-size LMDB key, and every replica orders a set's
     * elements the same way. */
    crypto_generichash(out, 16, t->vbuf.p, t->vbuf.len, NULL, 0);
    return CVG_OK;
}

/* Put the state key of a set element after the prefix in t->kbuf. */
static int
elem_key(cvg_txn *t, uint32_t plen, const cvg_value *elem, uint32_t *klen)
{
    uint8_t h[16];
    int rc = cvg__elem_hash(t, elem, h);
    if (rc != CVG_OK) {
        return rc;
    }
    t->kbuf.p[plen] = CVG_TYPE_SET;
    memcpy(t->kbuf.p + plen + 1, h, 16);
    *klen = plen + 17;
    return CVG_OK;
}

/* The entry of type @p type at the prefix in t->kbuf, with its field's mask
 * entry made first. */
static int
typed_entry(cvg_txn *t, uint32_t plen, uint8_t type, const cvg_value *elem,
            cvg__entry **out)
{
    cvg__entry *m;
    int rc = cvg__txn_mask_entry(t, plen, &m);
    if (rc != CVG_OK) {
        return rc;
    }
    uint32_t klen = plen + 1;
    if (elem != NULL) {
        rc = elem_key(t, plen, elem, &klen);
        if (rc != CVG_OK) {
            return rc;
        }
    } else {
        t->kbuf.p[plen] = type;
    }
    return cvg__txn_entry(t, klen, plen, type, out);
}

/* Keep a conflict for its event. Best effort: without memory the event is
 * lost, never the op. @p before is taken over. */
void
cvg__conflict_record(cvg_txn *t, const cvg__op *op, cvg_type type,
                     const cvg__entry *e, cvg_value *before)
{
    const cvg_op *p = &op->pub;
    void *arr = t->conflicts;
    if (cvg__grow(&arr, &t->capconflicts, t->nconflicts + 1,
                  sizeof *t->conflicts) != CVG_OK) {
        return;
    }
    t->conflicts = arr;
    cvg__conflict_rec *c = &t->conflicts[t->nconflicts];
    memset(c, 0, sizeof *c);
    size_t n = p->collection.len + p->key.len + p->field.len + 3;
    c->names = cvg__alloc(n);
    if (c->names == NULL || cvg__value_copy(&c->remote, &p->value) != CVG_OK) {
        cvg__free(c->names);
        return;
    }
    char *w = c->names;
    memcpy(w, p->collection.data, p->collection.len);
    w += p->collection.len;
    *w++ = 0;
    memcpy(w, p->key.data, p->key.len);
    w += p->key.len;
    *w++ = 0;
    memcpy(w, p->field.data, p->field.len);
    w[p->field.len] = 0;
    c->clen = p->collection.len;
    c->klen = p->key.len;
    c->flen = p->field.len;
    c->type = type;
    c->dot = p->dot;
    c->local = *before;
    *before = cvg_value_nil();
    c->siblings = type == CVG_TYPE_REGISTER ? 1 : 0;
    /* A multi-value register is described once the page is settled
     * (conflicts.c): a resolver may yet replace its siblings. */
    if (type == CVG_TYPE_REGISTER) {
        const cvg__sibling *w2 = cvg__winner(t->r, p->collection, &e->u.r);
        if (w2 == NULL || cvg__value_copy(&c->resolved, &w2->value) != 0) {
            c->resolved = cvg_value_nil();
        }
    }
    t->nconflicts++;
}

/* ---- A delete's counter parts by field (types.h) -------------------- */

static int
field_cmp(cvg_bytes a, cvg_bytes b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n > 0 ? memcmp(a.data, b.data, n) : 0;
    if (c != 0) {
        return c;
    }
    return a.len < b.len ? -1 : a.len > b.len;
}

static int
counter_ptr_cmp(const void *x, const void *y)
{
    const cvg__delete_counter *a = *(const cvg__delete_counter *const *)x;
    const cvg__delete_counter *b = *(const cvg__delete_counter *const *)y;
    int c = field_cmp(a->field, b->field);
    if (c != 0) {
        return c;
    }
    return a < b ? -1 : a > b; /* op order among equal fields */
}

static const cvg__delete_counter *
counter_at(const cvg__counter_index *ix, size_t i)
{
    return ix->sorted != NULL ? &ix->sorted[i] : ix->by_field[i];
}

int
cvg__counter_index_build(cvg__counter_index *ix, const cvg__op *op)
{
    memset(ix, 0, sizeof *ix);
    ix->n = op->n_counters;
    bool sorted = true;
    for (size_t i = 1; sorted && i < op->n_counters; i++) {
        sorted =
            field_cmp(op->counters[i - 1].field, op->counters[i].field) <= 0;
    }
    if (sorted) {
        ix->sorted = op->counters;
        return CVG_OK;
    }
    ix->by_field = cvg__calloc(op->n_counters, sizeof *ix->by_field);
    if (ix->by_field == NULL) {
        return CVG_ENOMEM;
    }
    for (size_t i = 0; i < op->n_counters; i++) {
        ix->by_field[i] = &op->counters[i];
    }
    qsort(ix->by_field, op->n_counters, sizeof *ix->by_field, counter_ptr_cmp);
    return CVG_OK;
}

const cvg__delete_counter *
cvg__counter_index_find(const cvg__counter_index *ix, cvg_bytes want)
{
    size_t lo = 0, hi = ix->n; /* the first at or after want is in [lo, hi] */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (field_cmp(counter_at(ix, mid)->field, want) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < ix->n && field_cmp(counter_at(ix, lo)->field, want) == 0) {
        return counter_at(ix, lo);
    }
    return NULL;
}

void
cvg__counter_index_free(cvg__counter_index *ix)
{
    cvg__free(ix->by_field);
    memset(ix, 0, sizeof *ix);
}

int
cvg__record_entries(cvg_txn *t, uint32_t rplen, cvg__entry ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    uint8_t prefix[CVG_NAME_MAX + 8];
    memcpy(prefix, t->kbuf.p, rplen);
    int rc = cvg__txn_flush(t); /* LMDB must hold every record we made */
    if (rc != CVG_OK) {
        return rc;
    }
    cvg__state_cursor c;
    rc = cvg__state_cursor_open(&t->r->store, t->mt, &c);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg__entry **arr = NULL;
    size_t cap = 0, cnt = 0;
    cvg_bytes k, v;
    int src = cvg__state_cursor_seek(&c, prefix, rplen, &k, &v);
    while (rc == CVG_OK && src == CVG_OK && k.len > rplen &&
           memcmp(k.data, prefix, rplen) == 0) {
        const uint8_t *kp = k.data;
        const uint8_t *nul = memchr(kp + rplen, 0, k.len - rplen);
        if (nul == NULL || (size_t)(nul - kp) + 2 > k.len) {
            rc = CVG_ECORRUPT;
            break;
        }
        uint32_t plen = (uint32_t)(nul - kp) + 1;
        uint8_t type = kp[plen];
        t->kbuf.len = 0;
        rc = cvg__buf_reserve(&t->kbuf, k.len);
        if (rc != CVG_OK) {
            break;
        }
        memcpy(t->kbuf.p, kp, k.len);
        t->kbuf.len = k.len;
        cvg__entry *m, *e = NULL;
        rc = cvg__txn_mask_entry(t, plen, &m);
        if (rc == CVG_OK) {
            memcpy(t->kbuf.p, kp, k.len);
            rc = cvg__txn_entry(t, (uint32_t)k.len, plen, type, &e);
        }
        if (rc == CVG_OK) {
            void *a = arr;
            rc = cvg__grow(&a, &cap, cnt + 1, sizeof *arr);
            arr = a;
        }
        if (rc == CVG_OK) {
            arr[cnt++] = e;
        }
        src = cvg__state_cursor_next(&c, &k, &v);
    }
    cvg__state_cursor_close(&c);
    if (rc == CVG_OK && src != CVG_OK && src != CVG_DONE) {
        rc = src;
    }
    if (rc != CVG_OK) {
        cvg__free(arr);
        return rc;
    }
    *out = arr;
    *n = cnt;
    return CVG_OK;
}

/* A record delete removes, in each record of (collection, key), what the
 * deleter's version vector covers; counters lose the contributions the
 * deleter saw. Writes the deleter had not seen stay. */
static int
apply_delete(cvg_txn *t, const cvg__op *op, uint32_t rplen)
{
    cvg__entry **es;
    size_t n;
    int rc = cvg__record_entries(t, rplen, &es, &n);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg__counter_index ix;
    rc = cvg__counter_index_build(&ix, op);
    if (rc != CVG_OK) {
        cvg__free(es);
        return rc; /* nothing changed yet */
    }
    const cvg__vv seen = {.e = (cvg_dot *)op->pub.observed,
                          .n = op->pub.observed_count};
    for (size_t i = 0; rc == CVG_OK && i < n; i++) {
        cvg__entry *e = es[i];
        if (!e->present) {
            continue;
        }
        const cvg__type_ops *ty = cvg__type_ops_of(e->type);
        if (ty == NULL) {
            rc = CVG_ECORRUPT;
            break;
        }
        const cvg__delete_counter *dc =
            e->type == CVG_TYPE_COUNTER
                ? cvg__counter_index_find(
                      &ix, (cvg_bytes){e->key + rplen, e->plen - rplen - 1})
                : NULL;
        rc = ty->erase(e, &seen, dc);
        if (rc == CVG_OK) {
            cvg__txn_touch(t, e);
        }
    }
    cvg__counter_index_free(&ix);
    cvg__free(es);
    if (rc != CVG_OK) {
        /* Some records changed already: the transaction cannot go on. */
        t->failed = rc;
    }
    return rc;
}

int
cvg__apply(cvg_txn *t, const cvg__op *op, bool *conflict)
{
    const cvg_op *p = &op->pub;
    *conflict = false;
    int rc = cvg__txn_prefix(t, p->collection, p->key, p->field);
    if (rc != CVG_OK) {
        return rc;
    }
    uint32_t plen = (uint32_t)t->kbuf.len;
    if (p->kind == CVG_OP_RECORD_DELETE) {
        return apply_delete(t, op, plen);
    }
    const cvg__kind_ops *k = cvg__kind_ops_of(p->kind);
    if (k == NULL) {
        return CVG_EINVAL;
    }
    cvg__entry *e;
    rc =
        typed_entry(t, plen, k->type, k->keyed_by_value ? &p->value : NULL, &e);
    return rc == CVG_OK ? cvg__apply_entry(t, e, op, conflict) : rc;
}

int
cvg__apply_entry(cvg_txn *t, cvg__entry *e, const cvg__op *op, bool *conflict)
{
    *conflict = false;
    const cvg__kind_ops *k = cvg__kind_ops_of(op->pub.kind);
    if (k == NULL || k->type != e->type) {
        return CVG_EINVAL;
    }
    int rc = k->apply(t, e, op, conflict);
    if (rc != CVG_OK) {
        return rc; /* the crdt functions changed nothing */
    }
    cvg__txn_touch(t, e);
    return CVG_OK;
}
