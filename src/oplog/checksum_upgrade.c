/*
 * The upgrade of a replica of format 1, whose records have no checksum, to
 * format 2 (checksum.h): one write transaction rewrites every record of
 * every table with its checksum and then the format record, so a crash
 * leaves the replica in one format or the other, never between. The walk
 * copies each key and value out of the map before writing it back, since
 * the put may move the page it was read from.
 */
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#include "checksum.h"

static int
upgrade_table(cvg__store *s, MDB_txn *t, MDB_dbi db)
{
    MDB_cursor *c;
    int mrc = mdb_cursor_open(t, db, &c);
    if (mrc != MDB_SUCCESS) {
        return cvg__mdb_err(mrc);
    }
    cvg__buf kb = {0}, vb = {0};
    MDB_val k, v;
    int rc = CVG_OK;
    for (mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST); mrc == MDB_SUCCESS;
         mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (cvg__ck_exempt(s, db, &k)) {
            continue;
        }
        kb.len = vb.len = 0;
        rc = cvg__buf_append(&kb, k.mv_data, k.mv_size);
        if (rc == CVG_OK) {
            rc = cvg__buf_append(&vb, v.mv_data, v.mv_size);
        }
        if (rc != CVG_OK) {
            break;
        }
        MDB_val kc = {kb.len, kb.p}, vc = {vb.len, vb.p};
        mrc = cvg__ck_put(s, t, db, &kc, &vc, 0);
        /* Back where we were: the put may have split the page. */
        if (mrc == MDB_SUCCESS) {
            mrc = mdb_cursor_get(c, &kc, &v, MDB_SET);
        }
        if (mrc != MDB_SUCCESS) {
            break;
        }
    }
    mdb_cursor_close(c);
    cvg__buf_free(&kb);
    cvg__buf_free(&vb);
    if (rc != CVG_OK) {
        return rc;
    }
    return mrc == MDB_NOTFOUND ? CVG_OK : cvg__mdb_err(mrc);
}

static int
upgrade(void *ctx, cvg__store_txn *t)
{
    cvg__store *s = ctx;
    uint64_t format = 0;
    int rc = cvg__meta_get_u64(s, t, "format", &format);
    if (rc != CVG_OK || format != 1) {
        return rc; /* another process upgraded it first */
    }
    /* Puts write checksums while the tables are rewritten; the store
     * reads without them again until the commit lands, since a full map
     * makes the commit path read "gen" of a new transaction, still of
     * format 1, before it calls this again. */
    s->checksummed = true;
    MDB_dbi dbs[] = {s->meta,    s->log,   s->dots,  s->state,
                     s->origins, s->peers, s->queue, s->history};
    size_t n = sizeof dbs / sizeof dbs[0] - (s->has_history ? 0 : 1);
    for (size_t i = 0; rc == CVG_OK && i < n; i++) {
        rc = upgrade_table(s, t, dbs[i]);
    }
    s->checksummed = false;
    if (rc == CVG_OK) {
        rc = cvg__meta_put_u64(s, t, "format", 2);
    }
    return rc;
}

int
cvg__ck_upgrade(cvg__store *s)
{
    int rc = cvg__store_write(s, false, upgrade, s);
    /* Until the upgrade commits, the records on disk have no checksum. */
    s->checksummed = rc == CVG_OK;
    return rc;
}
