/*
 * The observed-remove set in the replica: one state record per element,
 * keyed by a hash of the element's canonical encoding, holding the element
 * and its add tags (crdt/orset.c). An element is in the set while it has a
 * tag; a remove takes away the tags its writer had seen, so a concurrent
 * add wins.
 */
#include "types.h"

static void
destroy(cvg__entry *e)
{
    cvg__value_free(&e->u.s.elem);
    cvg__tags_destroy(&e->u.s.tags);
}

static bool
live(const cvg__entry *e)
{
    return e->present && e->u.s.tags.n > 0;
}

static int
decode(cvg__entry *e, const cvg__origins *o, cvg_bytes v)
{
    cvg_value view;
    int rc = cvg__state_decode_elem(v.data, v.len, o, &view, &e->u.s.tags);
    if (rc == CVG_OK) {
        rc = cvg__value_copy(&e->u.s.elem, &view); /* view is LMDB's */
        if (rc != CVG_OK) {
            cvg__tags_destroy(&e->u.s.tags);
        }
    }
    return rc;
}

static int
encode(const cvg__entry *e, cvg__origins *o, cvg__buf *out)
{
    return cvg__state_encode_elem(&e->u.s.elem, &e->u.s.tags, o, out);
}

static int
erase(cvg__entry *e, const cvg__vv *seen, const cvg__delete_counter *dc)
{
    (void)dc;
    cvg__tags_delete(&e->u.s.tags, seen);
    e->present = e->u.s.tags.n > 0;
    return CVG_OK;
}

static int
apply_add(cvg_txn *t, cvg__entry *e, const cvg__op *op, bool *conflict)
{
    (void)t;
    (void)conflict;
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

static int
apply_remove(cvg_txn *t, cvg__entry *e, const cvg__op *op, bool *conflict)
{
    (void)t;
    (void)conflict;
    if (e->present) {
        cvg__tags_remove(&e->u.s.tags, op->pub.observed,
                         op->pub.observed_count);
        e->present = e->u.s.tags.n > 0;
    }
    return CVG_OK;
}

const cvg__type_ops cvg__set_type = {
    CVG_TYPE_SET, destroy, live, decode, encode, erase,
};

const cvg__kind_ops cvg__set_add_kind = {
    CVG_OP_SET_ADD,
    CVG_TYPE_SET,
    true,
    apply_add,
};

const cvg__kind_ops cvg__set_remove_kind = {
    CVG_OP_SET_REMOVE,
    CVG_TYPE_SET,
    true,
    apply_remove,
};
