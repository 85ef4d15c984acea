/*
 * The two registers in the replica, LWW and multi-value: both keep the
 * siblings no later write replaced (crdt/register.c), and differ only in
 * what a read returns (policy.c). Their op kinds also record conflicts for
 * the events when a peer's write meets a concurrent one.
 */
#include "types.h"

static void
destroy(cvg__entry *e)
{
    cvg__reg_destroy(&e->u.r);
}

static bool
live(const cvg__entry *e)
{
    return e->present && e->u.r.n > 0;
}

static int
decode(cvg__entry *e, const cvg__origins *o, cvg_bytes v)
{
    return cvg__state_decode_reg(v.data, v.len, o, &e->u.r);
}

static int
encode(const cvg__entry *e, cvg__origins *o, cvg__buf *out)
{
    return cvg__state_encode_reg(&e->u.r, o, out);
}

static int
erase(cvg__entry *e, const cvg__vv *seen, const cvg__delete_counter *dc)
{
    (void)dc;
    cvg__reg_delete(&e->u.r, seen);
    e->present = e->u.r.n > 0;
    return CVG_OK;
}

static int
apply_set(cvg_txn *t, cvg__entry *e, const cvg__op *op, bool *conflict)
{
    const cvg_op *p = &op->pub;
    cvg_value before = cvg_value_nil();
    int rc = CVG_OK;
    if (t->collect_conflicts && e->present) {
        rc = cvg__value_copy(&before,
                             &cvg__winner(t->r, p->collection, &e->u.r)->value);
    }
    if (rc == CVG_OK) {
        rc = cvg__reg_set(&e->u.r, &p->dot, p->hlc, &p->value, p->observed,
                          p->observed_count, conflict);
    }
    if (rc == CVG_OK) {
        e->present = true;
        if (*conflict && t->collect_conflicts) {
            cvg__conflict_record(t, op, (cvg_type)e->type, e, &before);
        }
    }
    cvg__value_free(&before);
    return rc;
}

const cvg__type_ops cvg__register_type = {
    CVG_TYPE_REGISTER, destroy, live, decode, encode, erase,
};

const cvg__type_ops cvg__mvregister_type = {
    CVG_TYPE_MVREGISTER, destroy, live, decode, encode, erase,
};

const cvg__kind_ops cvg__register_set_kind = {
    CVG_OP_REGISTER_SET,
    CVG_TYPE_REGISTER,
    false,
    apply_set,
};

const cvg__kind_ops cvg__mvregister_set_kind = {
    CVG_OP_MVREGISTER_SET,
    CVG_TYPE_MVREGISTER,
    false,
    apply_set,
};
