/*
 * Finding a stored op by its dot, and comparing two ops field by field: how
 * a replica tells an honest duplicate (the same op again) from an
 * equivocation (another op under a dot it already has) without storing a
 * hash per op.
 */
#ifndef CVG_OP_LOOKUP_H
#define CVG_OP_LOOKUP_H

#include "oplog_int.h"

#define CVG__OP_PRINT_BYTES 16u

/* A cursor over the one block it last found, with a copy of that block's
 * bytes. A page of duplicates comes in seq order, so looking up the next
 * dot of the same block reads on from the last op instead of decoding the
 * block again from its start: a run of duplicates costs one decode of each
 * op, not one of each block per op. Zero it before first use. */
typedef struct cvg__op_lookup {
    cvg__buf block;       /* the block's bytes (LMDB's may move on a write) */
    cvg__block_reader rd; /* over block; rd.index ops were read */
    bool open;            /* rd is over block */
    cvg__op op;           /* the last op read (views into block and rd) */
    /* Fingerprints of every op of the block, made by one decode of it the
     * first time a lookup goes back in it (cvg__op_lookup_same). */
    uint8_t (*prints)[CVG__OP_PRINT_BYTES];
    size_t capprints;
    bool printed;
    cvg__buf scratch;
} cvg__op_lookup;

/* The stored op @p dot, through the dots index of the log in @p t. *out
 * points into @p l, valid until the next call on @p l. CVG_ENOTFOUND if
 * the log has no such op; CVG_ECORRUPT, CVG_ENOMEM, or an LMDB error. */
int cvg__op_lookup_find(cvg__op_lookup *l, cvg__store *s, cvg__store_txn *t,
                        const cvg_dot *dot, const cvg__op **out);
/* Whether @p op is the same as the stored op under its dot: *diff NULL if
 * so, else the first field that differs (as cvg__op_diff). Dots looked up
 * in seq order read on through the block; one before the last read is
 * checked against a fingerprint of each op of its block, made by one
 * decode, so duplicates in any order cost about one decode of each op. */
int cvg__op_lookup_same(cvg__op_lookup *l, cvg__store *s, cvg__store_txn *t,
                        const cvg__op *op, const char **diff);
void cvg__op_lookup_destroy(cvg__op_lookup *l);

/* Whether @p a and @p b are the same op: dot, time, kind, target, payload
 * and observed dots, in the order their writer gave them (an op travels as
 * decoded and encoded again, which keeps that order). NULL if equal, else
 * the name of the first field that differs. */
const char *cvg__op_diff(const cvg__op *a, const cvg__op *b);

#endif
