/* See raw_record.h: one LMDB write transaction per record. */
#include "raw_record.h"

#include <criterion/criterion.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oplog/checksum.h"

void
cvg_test_raw_put(const char *dir, const char *table, const void *k, size_t klen,
                 const void *v, size_t vlen, bool checksummed)
{
    MDB_env *env;
    cr_assert_eq(mdb_env_create(&env), MDB_SUCCESS);
    mdb_env_set_maxdbs(env, 16);
    cr_assert_eq(mdb_env_open(env, dir, 0, 0600), MDB_SUCCESS);
    MDB_txn *t;
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &t), MDB_SUCCESS);
    MDB_dbi db;
    cr_assert_eq(mdb_dbi_open(t, table, 0, &db), MDB_SUCCESS);
    MDB_val mk = {klen, (void *)k};
    if (v == NULL) {
        cr_assert_eq(mdb_del(t, db, &mk, NULL), MDB_SUCCESS);
    } else {
        uint8_t *buf = malloc(vlen + CVG__CK_BYTES);
        cr_assert_not_null(buf);
        if (vlen > 0) {
            memcpy(buf, v, vlen);
        }
        size_t n = vlen;
        if (checksummed) {
            cvg__ck_make(&mk, buf, vlen, buf + vlen);
            n += CVG__CK_BYTES;
        }
        MDB_val mv = {n, buf};
        cr_assert_eq(mdb_put(t, db, &mk, &mv, 0), MDB_SUCCESS);
        free(buf);
    }
    cr_assert_eq(mdb_txn_commit(t), MDB_SUCCESS);
    mdb_env_close(env);
}
