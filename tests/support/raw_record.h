/* Records written into a closed replica behind the library's back, the way
 * damage or an older version would leave them, but with the checksum a
 * record of the current format carries (so a test reaches the decoder that
 * must refuse what it holds). */
#ifndef CVG_TEST_RAW_RECORD_H
#define CVG_TEST_RAW_RECORD_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>

/* Put @p v (@p vlen bytes; NULL: delete the record) under key @p k of
 * table @p table ("meta", "peers", ...) of the replica in @p dir, with its
 * checksum when @p checksummed. Fails the test on any LMDB error. */
void cvg_test_raw_put(const char *dir, const char *table, const void *k,
                      size_t klen, const void *v, size_t vlen,
                      bool checksummed);

/* Every table of a replica, by LMDB name. */
#define CVG_TEST_NTABLES 9
extern const char *const cvg_test_tables[CVG_TEST_NTABLES];
/* Whether @p k is the meta record "format", the one without a checksum. */
bool cvg_test_is_format(const MDB_val *k);

/* Strip every record's checksum from the closed replica in @p dir and set
 * its format record to 1: a replica as a library before checksums made
 * it. */
void cvg_test_make_format_1(const char *dir);

#endif
