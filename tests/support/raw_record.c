/* See raw_record.h: one LMDB write transaction per record. */
#include "raw_record.h"

#include <criterion/criterion.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
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

const char *const cvg_test_tables[CVG_TEST_NTABLES] = {
    "meta",  "log",   "dots",    "state",  "origins",
    "peers", "queue", "history", "journal"};

bool
cvg_test_is_format(const MDB_val *k)
{
    return k->mv_size == 6 && memcmp(k->mv_data, "format", 6) == 0;
}

void
cvg_test_make_format_1(const char *dir)
{
    MDB_env *env;
    cr_assert_eq(mdb_env_create(&env), MDB_SUCCESS);
    mdb_env_set_maxdbs(env, 16);
    /* Room for the copies of every page the rewrite makes. */
    cr_assert_eq(mdb_env_set_mapsize(env, (size_t)256 << 20), MDB_SUCCESS);
    cr_assert_eq(mdb_env_open(env, dir, 0, 0600), MDB_SUCCESS);
    MDB_txn *t;
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &t), MDB_SUCCESS);
    size_t stripped = 0;
    for (size_t i = 0; i < CVG_TEST_NTABLES; i++) {
        MDB_dbi db;
        cr_assert_eq(mdb_dbi_open(t, cvg_test_tables[i], 0, &db), MDB_SUCCESS);
        MDB_cursor *c;
        cr_assert_eq(mdb_cursor_open(t, db, &c), MDB_SUCCESS);
        MDB_val k, v;
        int mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
        while (mrc == MDB_SUCCESS) {
            if (!cvg_test_is_format(&k)) {
                cr_assert(cvg__ck_open(&k, &v),
                          "%s: a record without its "
                          "checksum",
                          cvg_test_tables[i]);
                cvg__buf kb = {0}, vb = {0};
                cr_assert_eq(cvg__buf_append(&kb, k.mv_data, k.mv_size),
                             CVG_OK);
                cr_assert_eq(cvg__buf_append(&vb, v.mv_data, v.mv_size),
                             CVG_OK);
                MDB_val kc = {kb.len, kb.p}, vc = {vb.len, vb.p};
                cr_assert_eq(mdb_cursor_put(c, &kc, &vc, MDB_CURRENT),
                             MDB_SUCCESS);
                stripped++;
                cvg__buf_free(&kb);
                cvg__buf_free(&vb);
            }
            mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
        }
        cr_assert_eq(mrc, MDB_NOTFOUND);
        mdb_cursor_close(c);
    }
    cr_assert_gt(stripped, 0);
    MDB_dbi meta;
    cr_assert_eq(mdb_dbi_open(t, "meta", 0, &meta), MDB_SUCCESS);
    uint8_t one[8] = {0, 0, 0, 0, 0, 0, 0, 1};
    MDB_val k = {6, "format"}, v = {8, one};
    cr_assert_eq(mdb_put(t, meta, &k, &v, 0), MDB_SUCCESS);
    cr_assert_eq(mdb_txn_commit(t), MDB_SUCCESS);
    mdb_env_close(env);
}
