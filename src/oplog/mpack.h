/*
 * Private msgpack helpers of src/oplog: a packer that appends to a cvg__buf
 * (msgpack-c does the packing) and a bounded reader of our own for the wire
 * format. The reader never reads past its end, checks every length against
 * the bytes left, and accepts only the smallest encoding of each item, which
 * is what msgpack-c writes: so an accepted encoding decodes one way only and
 * re-encodes to the same bytes. Every failure is CVG_ECORRUPT.
 */
#ifndef CVG_OPLOG_MPACK_H
#define CVG_OPLOG_MPACK_H

#include <msgpack.h>

#include "oplog_int.h"

/* ---- Packing ---------------------------------------------------------- */

/* A packer appending to @p b; a failed append makes the msgpack_pack_*
 * call return non-zero, which callers report as CVG_ENOMEM. */
void cvg__mp_packer_init(msgpack_packer *pk, cvg__buf *b);

/* Run a msgpack_pack_* call; its only failure is our buffer's. */
#define CVG__MP_TRY(call)      \
    do {                       \
        if ((call) != 0) {     \
            return CVG_ENOMEM; \
        }                      \
    } while (0)

/* Pack a value in its natural form (nil, bool, smallest int, float64, str,
 * bin). The value must have been checked (cvg__value_check). */
int cvg__mp_pack_value(msgpack_packer *pk, const cvg_value *v);

/* ---- Reading ---------------------------------------------------------- */

typedef struct cvg__mp {
    const uint8_t *p;
    const uint8_t *end;
} cvg__mp;

static inline size_t
cvg__mp_left(const cvg__mp *m)
{
    return (size_t)(m->end - m->p);
}

/* A non-negative integer no larger than @p max. */
int cvg__mp_uint(cvg__mp *m, uint64_t max, uint64_t *out);
/* Any int64. */
int cvg__mp_int(cvg__mp *m, int64_t *out);
/* A count of items that follow, each at least @p min_item bytes long: at
 * most @p max, and no more than the bytes left can hold. Check a count with
 * this before allocating for it. */
int cvg__mp_count(cvg__mp *m, uint64_t max, size_t min_item, size_t *out);
/* A str of at most @p max bytes, as a view. */
int cvg__mp_str(cvg__mp *m, size_t max, cvg_bytes *out);
/* A bin of at most @p max bytes, as a view. */
int cvg__mp_bin(cvg__mp *m, size_t max, cvg_bytes *out);
/* A bin of exactly 16 bytes. */
int cvg__mp_id(cvg__mp *m, cvg_replica_id *out);
/* A value (STRING and BYTES data view into the input). */
int cvg__mp_value(cvg__mp *m, cvg_value *out);

#endif /* CVG_OPLOG_MPACK_H */
