/*
 * The tables of types and op kinds (types.h). Indexed by their numbers,
 * which are part of the disk and wire formats and never change.
 */
#include "types.h"

static const cvg__type_ops *const types[] = {
    [CVG_TYPE_COUNTER] = &cvg__counter_type,
    [CVG_TYPE_REGISTER] = &cvg__register_type,
    [CVG_TYPE_MVREGISTER] = &cvg__mvregister_type,
    [CVG_TYPE_SET] = &cvg__set_type,
};

static const cvg__kind_ops *const kinds[] = {
    [CVG_OP_COUNTER_ADD] = &cvg__counter_add_kind,
    [CVG_OP_REGISTER_SET] = &cvg__register_set_kind,
    [CVG_OP_MVREGISTER_SET] = &cvg__mvregister_set_kind,
    [CVG_OP_SET_ADD] = &cvg__set_add_kind,
    [CVG_OP_SET_REMOVE] = &cvg__set_remove_kind,
    /* CVG_OP_RECORD_DELETE targets a record, not a field of one type:
     * apply.c handles it through every type's erase(). */
};

const cvg__type_ops *
cvg__type_ops_of(unsigned type)
{
    return type < sizeof types / sizeof types[0] ? types[type] : NULL;
}

const cvg__kind_ops *
cvg__kind_ops_of(unsigned kind)
{
    return kind < sizeof kinds / sizeof kinds[0] ? kinds[kind] : NULL;
}
