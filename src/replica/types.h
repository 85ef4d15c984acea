/*
 * The CRDT types as the replica floor dispatches them: one row per type
 * (what the transaction cache needs of a record's state) and one row per
 * op kind (which type it writes and how it applies). A new type is its
 * crdt/ file, its type_<name>.c here with its rows, one line in each table
 * of types.c, and its payload shape in oplog/block_format.h.
 */
#ifndef CVG_TYPES_H
#define CVG_TYPES_H

#include "replica_int.h"

typedef struct cvg__type_ops {
    cvg_type type;
    void (*destroy)(cvg__entry *e);
    /* Whether the state holds anything a read shows. */
    bool (*live)(const cvg__entry *e);
    /* The state from a stored record (copies what it keeps), and back. */
    int (*decode)(cvg__entry *e, const cvg__origins *o, cvg_bytes v);
    int (*encode)(const cvg__entry *e, cvg__origins *o, cvg__buf *out);
    /* A record delete whose writer had seen @p seen (and, for a counter
     * field, the contributions @p dc, NULL if none of this field). */
    int (*erase)(cvg__entry *e, const cvg__vv *seen,
                 const cvg__delete_counter *dc);
} cvg__type_ops;

typedef struct cvg__kind_ops {
    cvg_op_kind kind;
    uint8_t type;        /* the type of the record it writes */
    bool keyed_by_value; /* one record per element (sets) */
    /* Apply @p op to the entry (its type's; present or not). On error
     * nothing changed. */
    int (*apply)(cvg_txn *t, cvg__entry *e, const cvg__op *op, bool *conflict);
} cvg__kind_ops;

/* A record delete's counter parts ordered by field, for lookups in
 * O(log fields): a record of many counter fields is deleted in
 * O(fields log fields), not O(fields^2) (apply.c). Equal fields (a
 * hostile op may repeat one) keep their op order and a lookup finds the
 * first, as a scan of the op would. The writer's ops come sorted already
 * (a record's fields in key order), and then the op's own array serves. */
typedef struct cvg__counter_index {
    const cvg__delete_counter *sorted;    /* the op's own, if sorted */
    const cvg__delete_counter **by_field; /* else pointers, sorted */
    size_t n;
} cvg__counter_index;

/* CVG_OK or CVG_ENOMEM (then nothing to free). */
int cvg__counter_index_build(cvg__counter_index *ix, const cvg__op *op);
/* The first counter of @p field, or NULL. */
const cvg__delete_counter *cvg__counter_index_find(const cvg__counter_index *ix,
                                                   cvg_bytes field);
void cvg__counter_index_free(cvg__counter_index *ix);

/* NULL for a type or kind this version does not have. */
const cvg__type_ops *cvg__type_ops_of(unsigned type);
const cvg__kind_ops *cvg__kind_ops_of(unsigned kind);

/* The rows, one file per type. */
extern const cvg__type_ops cvg__counter_type;
extern const cvg__type_ops cvg__register_type;
extern const cvg__type_ops cvg__mvregister_type;
extern const cvg__type_ops cvg__set_type;
extern const cvg__kind_ops cvg__counter_add_kind;
extern const cvg__kind_ops cvg__register_set_kind;
extern const cvg__kind_ops cvg__mvregister_set_kind;
extern const cvg__kind_ops cvg__set_add_kind;
extern const cvg__kind_ops cvg__set_remove_kind;

/* A register write from a peer met a concurrent one (apply.c). */
void cvg__conflict_record(cvg_txn *t, const cvg__op *op, cvg_type type,
                          const cvg__entry *e, cvg_value *before);

#endif
