/*
 * Checksummed records: every record the store keeps (but the meta record
 * "format") ends in an 8-byte checksum of its key and value, checked at
 * every read. LMDB checks nothing of what it maps, so a flipped byte in a
 * value would otherwise be read, merged and served to peers as if it were
 * true; with the checksum it is CVG_ECORRUPT at the read and goes nowhere.
 *
 * These wrap LMDB's get, cursor get and put one for one and keep LMDB's
 * return codes (a bad checksum is MDB_CORRUPTED, which cvg__mdb_err makes
 * CVG_ECORRUPT), so a call site changes its function name and nothing
 * else. Values read come back without their checksum.
 *
 * The checksum is SipHash-2-4 (libsodium's crypto_shorthash) under a fixed
 * key: it is for damage, not for an attacker who can write the file (such
 * an attacker could recompute any checksum whose key lives beside it; the
 * signed history is what holds against forgery). The record's key is
 * hashed first and its hash keys the value's hash, so a value found under
 * another key (a misdirected page) fails too.
 *
 * A replica of format 1 has no checksums: s->checksummed is false for it
 * and the wrappers pass records through. A writable open upgrades it in
 * one transaction (cvg__ck_upgrade).
 */
#ifndef CVG_OPLOG_CHECKSUM_H
#define CVG_OPLOG_CHECKSUM_H

#include <lmdb.h>
#include <string.h>

#include "oplog_int.h"

#define CVG__CK_BYTES 8

int cvg__ck_get(cvg__store *s, MDB_txn *t, MDB_dbi db, MDB_val *k, MDB_val *v);
int cvg__ck_cursor_get(cvg__store *s, MDB_cursor *c, MDB_val *k, MDB_val *v,
                       MDB_cursor_op op);
/* Flags 0 and MDB_APPEND only (the value is written with MDB_RESERVE). */
int cvg__ck_put(cvg__store *s, MDB_txn *t, MDB_dbi db, MDB_val *k, MDB_val *v,
                unsigned flags);

/* The checksum of value @p value (@p n bytes) stored under key @p k. */
void cvg__ck_make(const MDB_val *k, const void *value, size_t n,
                  uint8_t out[CVG__CK_BYTES]);
/* Whether @p v (a whole stored value, checksum included) is right for key
 * @p k; on true, v->mv_size drops the checksum. */
bool cvg__ck_open(const MDB_val *k, MDB_val *v);

/* Whether the record @p k of table @p db is the one without a checksum:
 * meta "format", which says whether the others have one. */
static inline bool
cvg__ck_exempt(const cvg__store *s, MDB_dbi db, const MDB_val *k)
{
    return db == s->meta && k->mv_size == 6 &&
           memcmp(k->mv_data, "format", 6) == 0;
}

#endif /* CVG_OPLOG_CHECKSUM_H */
