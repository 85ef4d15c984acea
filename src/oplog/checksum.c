/*
 * Checksummed records (see checksum.h): value || SipHash-2-4(value) under a
 * key made of SipHash-2-4(record key), both under a fixed key. A put writes
 * in place with MDB_RESERVE, so it costs the two short hashes and the one
 * copy LMDB would make anyway; a read, the two hashes.
 */
#include "checksum.h"

#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Fixed: the checksum guards against damage, and every replica must read
 * another's file (a copy, a restored backup). */
static const uint8_t ck_key[crypto_shorthash_KEYBYTES] = {
    'c', 'o', 'n', 'v', 'e', 'r', 'g', 'e',
    ' ', 's', 'u', 'm', ' ', 'v', '0', '2'};

void
cvg__ck_make(const MDB_val *k, const void *value, size_t n,
             uint8_t out[CVG__CK_BYTES])
{
    _Static_assert(crypto_shorthash_BYTES == CVG__CK_BYTES,
                   "a checksum is one SipHash-2-4");
    _Static_assert(crypto_shorthash_KEYBYTES == 2 * crypto_shorthash_BYTES,
                   "a key hash is half a value key");
    uint8_t vk[crypto_shorthash_KEYBYTES];
    crypto_shorthash(vk, k->mv_data, k->mv_size, ck_key);
    memcpy(vk + crypto_shorthash_BYTES, ck_key + crypto_shorthash_BYTES,
           crypto_shorthash_BYTES);
    crypto_shorthash(out, value, n, vk);
}

bool
cvg__ck_open(const MDB_val *k, MDB_val *v)
{
    if (v->mv_size < CVG__CK_BYTES) {
        return false;
    }
    size_t n = v->mv_size - CVG__CK_BYTES;
    uint8_t want[CVG__CK_BYTES];
    cvg__ck_make(k, v->mv_data, n, want);
    if (sodium_memcmp(want, (const uint8_t *)v->mv_data + n, sizeof want) !=
        0) {
        return false;
    }
    v->mv_size = n;
    return true;
}

/* A read gave LMDB's @p rc: check and strip the checksum when it found a
 * record. */
static int
opened(cvg__store *s, int rc, const MDB_val *k, MDB_val *v)
{
    if (rc != MDB_SUCCESS || !s->checksummed) {
        return rc;
    }
    if (!cvg__ck_open(k, v)) {
        if (s->err != NULL && s->errlen > 0) {
            snprintf(s->err, s->errlen,
                     "%s: a stored record fails its checksum: the data "
                     "file is damaged (converge check tells how far)",
                     s->path ? s->path : "replica");
        }
        return MDB_CORRUPTED;
    }
    return MDB_SUCCESS;
}

int
cvg__ck_get(cvg__store *s, MDB_txn *t, MDB_dbi db, MDB_val *k, MDB_val *v)
{
    return opened(s, mdb_get(t, db, k, v), k, v);
}

int
cvg__ck_cursor_get(cvg__store *s, MDB_cursor *c, MDB_val *k, MDB_val *v,
                   MDB_cursor_op op)
{
    return opened(s, mdb_cursor_get(c, k, v, op), k, v);
}

int
cvg__ck_put(cvg__store *s, MDB_txn *t, MDB_dbi db, MDB_val *k, MDB_val *v,
            unsigned flags)
{
    if (!s->checksummed) {
        return mdb_put(t, db, k, v, flags);
    }
    if (v->mv_size > SIZE_MAX - CVG__CK_BYTES) {
        return MDB_BAD_VALSIZE;
    }
    /* The checksum first, from the caller's bytes, before the put changes
     * any page. */
    uint8_t sum[CVG__CK_BYTES];
    cvg__ck_make(k, v->mv_data, v->mv_size, sum);
    MDB_val r = {v->mv_size + CVG__CK_BYTES, NULL};
    int rc = mdb_put(t, db, k, &r, flags | MDB_RESERVE);
    if (rc != MDB_SUCCESS) {
        return rc;
    }
    uint8_t *p = r.mv_data;
    if (v->mv_size > 0) {
        memcpy(p, v->mv_data, v->mv_size);
    }
    memcpy(p + v->mv_size, sum, sizeof sum);
    return MDB_SUCCESS;
}
