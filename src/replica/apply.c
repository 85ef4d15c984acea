/*
 * The apply pipeline: one validated op, local or from a peer, changes the
 * cached state of the records it targets. Local writes and sync share it, so
 * a replica computes the same state from the same ops whoever made them.
 */
#include <sodium.h>

#include "replica_int.h"

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
    if (type == CVG_TYPE_SET) {
        rc = elem_key(t, plen, elem, &klen);
        if (rc != CVG_OK) {
            return rc;
        }
    } else {
        t->kbuf.p[plen] = type;
    }
    return cvg__txn_entry(t, klen, plen, type, out);
}

static int
apply_set_add(cvg__entry *e, const cvg__op *op)
{
    if (!e->present || e->u.s.tags.n == 0) {
        /* A new element, or one whose every tag was removed: keep our own
         * copy of the value (the op's is a view). */
        cvg_value copy;
        int rc = cvg__value_copy(&copy, &op->pub.value);
        if (rc != CVG_OK) {
            return rc;
        }
        rc = cvg__tags_add(&e->u.s.tags, &op->pub.dot);
        if (rc != CVG_OK) {
            cvg__value_free(&copy);
            return rc;
        }
        cvg__value_free(&e->u.s.elem);
        e->u.s.elem = copy;
        e->present = true;
        return CVG_OK;
    }
    return cvg__tags_add(&e->u.s.tags, &op->pub.dot);
}

/* Keep a conflict for its event. Best effort: without memory the event is
 * lost, never the op. @p before is taken over. */
static void
record_conflict(cvg_txn *t, const cvg__op *op, cvg_type type,
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
    if (c->names == NULL ||
        cvg__value_copy(&c->remote, &p->value) != CVG_OK) {
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

/* The counter parts a delete observed for field @p name, or NULL. */
static const cvg__delete_counter *
find_counter(const cvg__op *op, const uint8_t *name, size_t len)
{
    for (size_t i = 0; i < op->n_counters; i++) {
        const cvg__delete_counter *c = &op->counters[i];
        if (c->field.len == len && memcmp(c->field.data, name, len) == 0) {
            return c;
        }
    }
    return NULL;
}

int
cvg__record_entries(cvg_txn *t, uint32_t rplen, cvg__entry ***out,
                    size_t *n)
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
    const cvg__vv seen = {(cvg_dot *)op->pub.observed, op->pub.observed_count,
                          0};
    for (size_t i = 0; rc == CVG_OK && i < n; i++) {
        cvg__entry *e = es[i];
        if (!e->present) {
            continue;
        }
        switch (e->type) {
        case CVG_TYPE_COUNTER: {
            const cvg__delete_counter *dc =
                find_counter(op, e->key + rplen, e->plen - rplen - 1);
            if (dc != NULL) {
                rc = cvg__counter_delete(&e->u.c, dc->parts, dc->n);
            }
            break;
        }
        case CVG_TYPE_REGISTER:
        case CVG_TYPE_MVREGISTER:
            cvg__reg_delete(&e->u.r, &seen);
            e->present = e->u.r.n > 0;
            break;
        case CVG_TYPE_SET:
            cvg__tags_delete(&e->u.s.tags, &seen);
            e->present = e->u.s.tags.n > 0;
            break;
        default:
            rc = CVG_ECORRUPT;
        }
        if (rc == CVG_OK) {
            cvg__txn_touch(t, e);
        }
    }
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
    cvg__entry *e;
    switch (p->kind) {
    case CVG_OP_COUNTER_ADD:
        rc = typed_entry(t, plen, CVG_TYPE_COUNTER, NULL, &e);
        if (rc == CVG_OK) {
            rc = cvg__counter_add(&e->u.c, &p->dot, p->delta);
        }
        break;
    case CVG_OP_REGISTER_SET:
    case CVG_OP_MVREGISTER_SET: {
        uint8_t type = p->kind == CVG_OP_REGISTER_SET ? CVG_TYPE_REGISTER
                                                      : CVG_TYPE_MVREGISTER;
        rc = typed_entry(t, plen, type, NULL, &e);
        cvg_value before = cvg_value_nil();
        if (rc == CVG_OK && t->collect_conflicts && e->present) {
            rc = cvg__value_copy(&before,
                                 &cvg__winner(t->r, p->collection, &e->u.r)
                                      ->value);
        }
        if (rc == CVG_OK) {
            rc = cvg__reg_set(&e->u.r, &p->dot, p->hlc, &p->value,
                              p->observed, p->observed_count, conflict);
        }
        if (rc == CVG_OK && *conflict && t->collect_conflicts) {
            record_conflict(t, op, (cvg_type)type, e, &before);
        }
        cvg__value_free(&before);
        break;
    }
    case CVG_OP_SET_ADD:
        rc = typed_entry(t, plen, CVG_TYPE_SET, &p->value, &e);
        if (rc == CVG_OK) {
            rc = apply_set_add(e, op);
        }
        break;
    case CVG_OP_SET_REMOVE:
        rc = typed_entry(t, plen, CVG_TYPE_SET, &p->value, &e);
        if (rc == CVG_OK && e->present) {
            cvg__tags_remove(&e->u.s.tags, p->observed, p->observed_count);
        }
        break;
    case CVG_OP_RECORD_DELETE:
        return apply_delete(t, op, plen);
    default:
        return CVG_EINVAL;
    }
    if (rc != CVG_OK) {
        return rc; /* the crdt functions changed nothing */
    }
    if (p->kind != CVG_OP_SET_REMOVE) {
        e->present = true;
    } else if (e->present && e->u.s.tags.n == 0) {
        e->present = false;
    }
    cvg__txn_touch(t, e);
    return CVG_OK;
}
