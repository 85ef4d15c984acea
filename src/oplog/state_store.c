/*
 * State records: the merged state of each field (or set element), under
 * keys "collection NUL key NUL field NUL type [element hash]". Keys sort so
 * that every record of a key, and every field of a record, is one range;
 * the cursor below walks such ranges.
 *
 * A record lives in LMDB's state table, or, written since the last
 * checkpoint, in the handle's overlay (journal.c): a read looks at the
 * overlay's value visible to its transaction first, then at the table; a
 * write goes to the overlay, under the writer's id; the cursor merges the
 * two in key order, the overlay's value (or deletion) hiding the table's.
 * A store without a journal (a read-only open of an older replica) is the
 * table alone.
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
    const cvg__view *w = s->ov.n ? cvg__journal_view(s, t) : NULL;
    cvg__ov_node *nd = w ? cvg__ov_find(&s->ov, key, (uint32_t)klen) : NULL;
    const cvg__ov_version *ov = nd ? cvg__ov_visible(nd, w->lo, w->hi) : NULL;
    if (ov != NULL) {
        out->data = ov->val;
        out->len = ov->len;
        return ov->val != NULL ? CVG_OK : CVG_ENOTFOUND;
    }
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

static int
overlay_put(cvg__store *s, const cvg__view *w, const uint8_t *key, size_t klen,
            cvg_bytes value, bool del)
{
    if (klen == 0 || klen > CVG__STATE_KEY_MAX || value.len > UINT32_MAX - 1) {
        return CVG_EINVAL;
    }
    return cvg__ov_put(&s->ov, key, (uint32_t)klen,
                       cvg__state_field_len(key, klen), w->hi, value.data,
                       (uint32_t)value.len, del);
}

/* Whether a write of @p key goes to the overlay: the writer journals, or
 * the overlay holds values of the key that the write must follow. */
static bool
to_overlay(cvg__store *s, const cvg__view *w, const uint8_t *key, size_t klen)
{
    if (w == NULL || !w->write) {
        return false;
    }
    if (s->direct_max != SIZE_MAX) {
        return true;
    }
    const cvg__ov_node *nd =
        s->ov.n ? cvg__ov_find(&s->ov, key, (uint32_t)klen) : NULL;
    return nd != NULL && nd->nv > 0;
}

int
cvg__state_table_write(cvg__store *s, cvg__store_txn *t, const uint8_t *key,
                       size_t klen, const uint8_t *val, size_t len)
{
    MDB_val k = {klen, (void *)key};
    if (val == NULL) {
        int rc = mdb_del(t, s->state, &k, NULL);
        return rc == MDB_NOTFOUND ? CVG_OK : cvg__mdb_err(rc);
    }
    MDB_val v = {len, (void *)val};
    return cvg__mdb_err(cvg__ck_put(s, t, s->state, &k, &v, 0));
}

int
cvg__state_put(cvg__store *s, cvg__store_txn *t, const uint8_t *key,
               size_t klen, cvg_bytes value)
{
    const cvg__view *w = cvg__journal_view(s, t);
    if (to_overlay(s, w, key, klen)) {
        return overlay_put(s, w, key, klen, value, false);
    }
    /* A value of no bytes still has a pointer: NULL would delete. */
    const uint8_t *val = value.data ? value.data : (const uint8_t *)"";
    return cvg__state_table_write(s, t, key, klen, val, value.len);
}

int
cvg__state_del(cvg__store *s, cvg__store_txn *t, const uint8_t *key,
               size_t klen)
{
    const cvg__view *w = cvg__journal_view(s, t);
    if (to_overlay(s, w, key, klen)) {
        cvg_bytes none = {NULL, 0};
        return overlay_put(s, w, key, klen, none, true);
    }
    return cvg__state_table_write(s, t, key, klen, NULL, 0);
}

int
cvg__state_cursor_open(cvg__store *s, cvg__store_txn *t, cvg__state_cursor *c)
{
    memset(c, 0, sizeof *c);
    MDB_cursor *mc;
    int rc = mdb_cursor_open(t, s->state, &mc);
    if (rc != MDB_SUCCESS) {
        return cvg__mdb_err(rc);
    }
    c->c = mc;
    c->s = s;
    const cvg__view *w = cvg__journal_view(s, t);
    if (w != NULL) {
        c->lo = w->lo;
        c->hi = w->hi;
    }
    return CVG_OK;
}

/* LMDB's order of keys: bytes, then the shorter first. */
static int
key_cmp(cvg_bytes a, const uint8_t *b, size_t blen)
{
    size_t n = a.len < blen ? a.len : blen;
    int c = n ? memcmp(a.data, b, n) : 0;
    if (c != 0) {
        return c;
    }
    return (a.len > blen) - (a.len < blen);
}

/* Move the table's side to its next record. */
static int
lm_step(cvg__state_cursor *c, MDB_cursor_op op, MDB_val *mk)
{
    MDB_val mv;
    int rc = cvg__ck_cursor_get(c->s, c->c, mk, &mv, op);
    c->lm_has = rc == MDB_SUCCESS;
    if (rc == MDB_SUCCESS) {
        c->lk = view(mk);
        c->lv = view(&mv);
        return CVG_OK;
    }
    return rc == MDB_NOTFOUND ? CVG_OK : cvg__mdb_err(rc);
}

static int
remember(cvg__state_cursor *c, cvg_bytes k)
{
    if (k.len > sizeof c->last) {
        return CVG_ECORRUPT; /* no state key is this long */
    }
    memcpy(c->last, k.data, k.len);
    c->last_len = (uint32_t)k.len;
    return CVG_OK;
}

/* The first record of the merged view at or after (or, with @p after,
 * past) @p from, the table's side being on its first record past what was
 * returned before. */
static int
pick(cvg__state_cursor *c, const uint8_t *from, size_t flen, bool after,
     cvg_bytes *k, cvg_bytes *v)
{
    cvg__overlay *ov = &c->s->ov;
    if (from == NULL) {
        from = (const uint8_t *)"";
    }
    for (;;) {
        cvg__ov_node *nd = NULL;
        const cvg__ov_version *ver = NULL;
        if (c->only != NULL) {
            /* The field's one node: it, if it is at or past from and
             * visible; none else of the field is in the overlay. */
            cvg_bytes ok = {.data = c->only->key, .len = c->only->klen};
            int o = key_cmp(ok, from, flen);
            if (o > 0 || (o == 0 && !after)) {
                nd = (cvg__ov_node *)c->only;
                ver = cvg__ov_visible(nd, c->lo, c->hi);
                nd = ver != NULL ? nd : NULL;
            }
        } else if (c->hi != 0 && ov->n > 0) {
            int rc = cvg__ov_seek(ov, from, (uint32_t)flen, after, &nd);
            while (rc == CVG_OK && nd != NULL &&
                   (ver = cvg__ov_visible(nd, c->lo, c->hi)) == NULL) {
                rc = cvg__ov_seek(ov, nd->key, nd->klen, true, &nd);
            }
            if (rc != CVG_OK) {
                return rc;
            }
        }
        if (!c->lm_has && nd == NULL) {
            return CVG_DONE;
        }
        int cmp = nd == NULL   ? -1
                  : !c->lm_has ? 1
                               : key_cmp(c->lk, nd->key, nd->klen);
        if (cmp < 0) {
            *k = c->lk;
            *v = c->lv;
            return remember(c, *k);
        }
        if (cmp == 0) {
            MDB_val mk;
            int rc = lm_step(c, MDB_NEXT, &mk); /* hidden by the overlay */
            if (rc != CVG_OK) {
                return rc;
            }
        }
        if (ver->val == NULL) {
            from = nd->key; /* deleted: on to the next key */
            flen = nd->klen;
            after = true;
            continue;
        }
        k->data = nd->key;
        k->len = nd->klen;
        v->data = ver->val;
        v->len = ver->len;
        return remember(c, *k);
    }
}

int
cvg__state_cursor_seek(cvg__state_cursor *c, const uint8_t *key, size_t klen,
                       cvg_bytes *k, cvg_bytes *v)
{
    MDB_val mk = {klen, (void *)key};
    /* LMDB refuses an empty key: walking everything starts at the first. */
    int rc = lm_step(c, klen ? MDB_SET_RANGE : MDB_FIRST, &mk);
    if (rc != CVG_OK) {
        return rc;
    }
    return pick(c, key, klen, false, k, v);
}

int
cvg__state_cursor_seek_in(cvg__state_cursor *c, const uint8_t *key, size_t klen,
                          const uint8_t *prefix, size_t plen, cvg_bytes *k,
                          cvg_bytes *v)
{
    int rc;
    const cvg__overlay *ov = &c->s->ov;
    bool table_only = ov->n == 0 || c->hi == 0;
    const cvg__ov_node *one = NULL;
    if (!table_only) {
        uint32_t fp = cvg__state_field_len(prefix, plen);
        table_only = fp > 0 && cvg__ov_field_nodes(ov, prefix, fp, &one) == 0;
    }
    if (table_only) {
        /* Nothing of the overlay under the prefix: the table's alone. */
        MDB_val mk = {klen, (void *)key};
        rc = lm_step(c, klen ? MDB_SET_RANGE : MDB_FIRST, &mk);
        if (rc == CVG_OK && !c->lm_has) {
            rc = CVG_DONE;
        }
        if (rc == CVG_OK) {
            *k = c->lk;
            *v = c->lv;
            rc = remember(c, *k);
        }
    } else {
        /* Keys under one field lie together: when the overlay holds one
         * node of the field, no other node can come first within it. */
        c->only = one;
        rc = cvg__state_cursor_seek(c, key, klen, k, v);
        c->only = NULL;
    }
    if (rc == CVG_OK && (k->len < plen || memcmp(k->data, prefix, plen) != 0)) {
        rc = CVG_DONE;
    }
    return rc;
}

int
cvg__state_cursor_next(cvg__state_cursor *c, cvg_bytes *k, cvg_bytes *v)
{
    /* The table's side past the key returned last. */
    while (c->lm_has && key_cmp(c->lk, c->last, c->last_len) <= 0) {
        MDB_val mk;
        int rc = lm_step(c, MDB_NEXT, &mk);
        if (rc != CVG_OK) {
            return rc;
        }
    }
    return pick(c, c->last, c->last_len, true, k, v);
}

void
cvg__state_cursor_close(cvg__state_cursor *c)
{
    if (c->c != NULL) {
        mdb_cursor_close(c->c);
        c->c = NULL;
    }
}
