/*
 * The PN-counter in the replica: its state record and its one op kind,
 * counter.add. The merge rules are crdt/counter.c's; this file only binds
 * them to cache entries (types.h).
 */
#include "types.h"

static void
destroy(cvg__entry *e)
{
    cvg__counter_destroy(&e->u.c);
}

static bool
live(const cvg__entry *e)
{
    return e->present && cvg__counter_live(&e->u.c);
}

static int
decode(cvg__entry *e, const cvg__origins *o, cvg_bytes v)
{
    return cvg__state_decode_counter(v.data, v.len, o, &e->u.c);
}

static int
encode(const cvg__entry *e, cvg__origins *o, cvg__buf *out)
{
    return cvg__state_encode_counter(&e->u.c, o, out);
}

/* A delete removes the contributions its writer saw; later ones stay. */
static int
erase(cvg__entry *e, const cvg__vv *seen, const cvg__delete_counter *dc)
{
    (void)seen;
    return dc != NULL ? cvg__counter_delete(&e->u.c, dc->parts, dc->n) : CVG_OK;
}

static int
apply_add(cvg_txn *t, cvg__entry *e, const cvg__op *op, bool *conflict)
{
    (void)t;
    (void)conflict;
    int rc = cvg__counter_add(&e->u.c, &op->pub.dot, op->pub.delta);
    if (rc == CVG_OK) {
        e->present = true;
    }
    return rc;
}

const cvg__type_ops cvg__counter_type = {
    CVG_TYPE_COUNTER, destroy, live, decode, encode, erase,
};

const cvg__kind_ops cvg__counter_add_kind = {
    CVG_OP_COUNTER_ADD,
    CVG_TYPE_COUNTER,
    false,
    apply_add,
};
