/*
 * State records in LMDB: the merged state of each field (or set element),
 * under keys "collection NUL key NUL field NUL type [element hash]". Keys
 * sort so that every record of a key, and every field of a record, is one
 * range; the cursor below walks such ranges.
 */
#include <lmdb.h>

#include "checksum.h"
#include "oplog_int.h"

static cvg_bytes
view(const MDB_val *v)
{
    cvg_bytes b = {v->mv_data, v->mv_size};
    return b;
}

int
cvg__state_get(cvg__store *s, cvg__store_txn *t, const uint8_t *key,
               size_t klen, cvg_bytes *out)
{
    MDB_val k = {klen, (void *)key}, v;
    int rc = cvg__ck_get(s, t, s->state, &k, &v);
    if (rc != MDB_SUCCESS) {
        out->data = NULL;
        out->len = 0;
        return cvg__mdb_err(rc);
    }
    *out = view(&v);
    return CVG_OK;
}

int
cvg__state_put(cvg__store *s, cvg__store_txn *t, const uint8_t *key,
               size_t klen, cvg_bytes value)
{
    MDB_val k = {klen, (void *)key}, v = {value.len, (void *)value.data};
    return cvg__mdb_err(cvg__ck_put(s, t, s->state, &k, &v, 0));
}

int
cvg__state_del(cvg__store *s, cvg__store_txn *t, const uint8_t *key,
               size_t klen)
{
    MDB_val k = {klen, (void *)key};
    int rc = mdb_del(t, s->state, &k, NULL);
    return rc == MDB_NOTFOUND ? CVG_OK : cvg__mdb_err(rc);
}

int
cvg__state_cursor_open(cvg__store *s, cvg__store_txn *t, cvg__state_cursor *c)
{
    c->c = NULL;
    MDB_cursor *mc;
    int rc = mdb_cursor_open(t, s->state, &mc);
    if (rc != MDB_SUCCESS) {
        return cvg__mdb_err(rc);
    }
    c->c = mc;
    c->s = s;
    return CVG_OK;
}

static int
got(int rc, const MDB_val *k, const MDB_val *v, cvg_bytes *ko, cvg_bytes *vo)
{
    if (rc == MDB_NOTFOUND) {
        return CVG_DONE;
    }
    if (rc != MDB_SUCCESS) {
        return cvg__mdb_err(rc);
    }
    *ko = view(k);
    *vo = view(v);
    return CVG_OK;
}

int
cvg__state_cursor_seek(cvg__state_cursor *c, const uint8_t *key, size_t klen,
                       cvg_bytes *k, cvg_bytes *v)
{
    MDB_val mk = {klen, (void *)key}, mv;
    /* LMDB refuses an empty key: walking everything starts at the first. */
    int rc = cvg__ck_cursor_get(c->s, c->c, &mk, &mv,
                                klen ? MDB_SET_RANGE : MDB_FIRST);
    return got(rc, &mk, &mv, k, v);
}

int
cvg__state_cursor_next(cvg__state_cursor *c, cvg_bytes *k, cvg_bytes *v)
{
    MDB_val mk, mv;
    int rc = cvg__ck_cursor_get(c->s, c->c, &mk, &mv, MDB_NEXT);
    return got(rc, &mk, &mv, k, v);
}

void
cvg__state_cursor_close(cvg__state_cursor *c)
{
    if (c->c != NULL) {
        mdb_cursor_close(c->c);
        c->c = NULL;
    }
}
