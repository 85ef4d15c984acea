/*
 * The read calls and cursors of the public API. Point reads go through the
 * transaction's cache, so a write transaction reads its own writes at no
 * cost. Cursors walk LMDB; in a write transaction they flush the cache first,
 * and any later write makes them fail with CVG_EMISUSE instead of walking
 * pages that changed under them.
 */
#include "types.h"

/* The checks every read starts with. Each read zeroes its out-param
 * before this, so that no error, a failed transaction's included, leaves
 * the caller's pointer unset (closing an unset cursor would free garbage). */
static int
begin_read(cvg_txn *t, const void *out)
{
    if (t == NULL || out == NULL) {
        return CVG_EINVAL;
    }
    if (t->failed) {
        return cvg__replica_fail(t->r, t->failed,
                                 "the transaction failed earlier (%s)",
                                 cvg_strerror(t->failed));
    }
    return CVG_OK;
}

/* Nothing of @p type at the field: CVG_ETYPE if another type lives there,
 * else CVG_ENOTFOUND. */
static int
absent(cvg_txn *t, uint32_t plen, cvg_type type)
{
    bool clash;
    int rc = cvg__txn_type_clash(t, plen, (uint8_t)type, &clash);
    if (rc != CVG_OK) {
        return rc;
    }
    return clash ? CVG_ETYPE : CVG_ENOTFOUND;
}

/* The cached entry of @p type for @p key; CVG_ENOTFOUND/CVG_ETYPE if it has
 * no live state. */
static int
read_entry(cvg_txn *t, const cvg_key *key, cvg_type type, cvg__entry **out)
{
    uint32_t plen;
    int rc = cvg__key_prefix(t, key, true, &plen);
    if (rc != CVG_OK) {
        return rc;
    }
    t->kbuf.p[plen] = (uint8_t)type;
    rc = cvg__txn_entry(t, plen + 1, plen, (uint8_t)type, out);
    if (rc == CVG_OK && !cvg__entry_live(*out)) {
        rc = absent(t, plen, type);
    }
    return rc;
}

int
cvg_counter_get(cvg_txn *t, const cvg_key *key, int64_t *out)
{
    if (out != NULL) {
        *out = 0;
    }
    int rc = begin_read(t, out);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg__entry *e;
    rc = read_entry(t, key, CVG_TYPE_COUNTER, &e);
    if (rc == CVG_OK && cvg__counter_value(&e->u.c, out) != CVG_OK) {
        rc = cvg__replica_fail(t->r, CVG_EOVERFLOW,
                               *out > 0 ? "counter value is above INT64_MAX"
                                        : "counter value is below INT64_MIN");
    }
    return rc;
}

int
cvg_register_get(cvg_txn *t, const cvg_key *key, cvg_value *out)
{
    if (out != NULL) {
        *out = cvg_value_nil();
    }
    int rc = begin_read(t, out);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg__entry *e;
    rc = read_entry(t, key, CVG_TYPE_REGISTER, &e);
    if (rc == CVG_OK) {
        cvg_bytes coll = {(const uint8_t *)key->collection,
                          strlen(key->collection)};
        *out = cvg__winner(t->r, coll, &e->u.r)->value;
    }
    return rc;
}

int
cvg_mvregister_get(cvg_txn *t, const cvg_key *key, cvg_value *out,
                   cvg_dot *dots, size_t cap, size_t *count_out)
{
    if (count_out != NULL) {
        *count_out = 0;
    }
    int rc = begin_read(t, count_out);
    if (rc != CVG_OK) {
        return rc;
    }
    if (cap > 0 && out == NULL) {
        return CVG_EINVAL;
    }
    cvg__entry *e;
    rc = read_entry(t, key, CVG_TYPE_MVREGISTER, &e);
    if (rc != CVG_OK) {
        return rc;
    }
    for (size_t i = 0; i < e->u.r.n && i < cap; i++) {
        out[i] = e->u.r.s[i].value;
        if (dots != NULL) {
            dots[i] = e->u.r.s[i].dot;
        }
    }
    *count_out = e->u.r.n;
    return CVG_OK;
}

int
cvg_set_contains(cvg_txn *t, const cvg_key *key, const cvg_value *elem,
                 bool *out)
{
    if (out != NULL) {
        *out = false;
    }
    int rc = begin_read(t, out);
    if (rc != CVG_OK) {
        return rc;
    }
    if (elem == NULL || cvg__value_check(elem) != CVG_OK) {
        return CVG_EINVAL;
    }
    uint32_t plen;
    rc = cvg__key_prefix(t, key, true, &plen);
    uint8_t h[16];
    if (rc == CVG_OK) {
        rc = cvg__elem_hash(t, elem, h);
    }
    cvg__entry *e;
    if (rc == CVG_OK) {
        t->kbuf.p[plen] = CVG_TYPE_SET;
        memcpy(t->kbuf.p + plen + 1, h, 16);
        rc = cvg__txn_entry(t, plen + 17, plen, CVG_TYPE_SET, &e);
    }
    if (rc == CVG_OK) {
        *out = cvg__entry_live(e);
        if (!*out) {
            rc = absent(t, plen, CVG_TYPE_SET);
            rc = rc == CVG_ETYPE ? rc : CVG_OK;
        }
    }
    return rc;
}

/* ---- Cursors over a key prefix of the state database ------------------ */

/* The set, field and key cursors are each one walk over a key prefix. */
typedef struct prefix_walk {
    cvg_txn *t;
    cvg__state_cursor c;
    uint64_t wgen;
    uint64_t epoch;
    bool started;
    bool done;
    uint32_t plen;
    uint8_t prefix[CVG_NAME_MAX + 24];
    uint8_t seek[CVG_NAME_MAX + 24]; /* where the next call starts */
    uint32_t seeklen;
} prefix_walk;

struct cvg_set_cursor {
    prefix_walk w;
};
struct cvg_field_cursor {
    prefix_walk w;
};
struct cvg_key_cursor {
    prefix_walk w;
};

static int
walk_open(cvg_txn *t, const uint8_t *prefix, uint32_t plen, prefix_walk *w)
{
    memset(w, 0, sizeof *w);
    w->t = t;
    if (t->write) {
        int rc = cvg__txn_flush(t);
        if (rc != CVG_OK) {
            return rc;
        }
    }
    int rc = cvg__state_cursor_open(&t->r->store, t->mt, &w->c);
    if (rc != CVG_OK) {
        return rc;
    }
    memcpy(w->prefix, prefix, plen);
    w->plen = plen;
    memcpy(w->seek, prefix, plen);
    w->seeklen = plen;
    w->wgen = t->wgen;
    w->epoch = t->epoch;
    return CVG_OK;
}

/* The next state record at or after w->seek that starts with the prefix. */
static int
walk_next(prefix_walk *w, cvg_bytes *k, cvg_bytes *v)
{
    if (w->t->wgen != w->wgen || w->t->epoch != w->epoch) {
        return CVG_EMISUSE; /* the transaction wrote since the cursor opened */
    }
    if (w->done) {
        return CVG_DONE;
    }
    int rc = cvg__state_cursor_seek_in(&w->c, w->seek, w->seeklen, w->prefix,
                                       w->plen, k, v);
    if (rc == CVG_DONE ||
        (rc == CVG_OK &&
         (k->len < w->plen || memcmp(k->data, w->prefix, w->plen)))) {
        w->done = true;
        return CVG_DONE;
    }
    return rc;
}

/* Make the next walk_next() start after every key that begins with
 * @p key[0..len): the same bytes plus one, as a big number (a hash byte of
 * 0xFF carries into the byte before it). A key of all 0xFF has no successor
 * of its length: the walk is done. */
static void
walk_skip(prefix_walk *w, const uint8_t *key, uint32_t len)
{
    memcpy(w->seek, key, len);
    uint32_t i = len;
    while (i > 0 && ++w->seek[i - 1] == 0) {
        i--;
    }
    w->seeklen = i;
    if (i == 0) {
        w->done = true;
    }
}

/* A new walk on the heap (each public cursor is one): CVG_OK or an error
 * with nothing allocated. */
static int
walk_new(cvg_txn *t, const uint8_t *prefix, uint32_t plen, void **out)
{
    prefix_walk *w = cvg__calloc(1, sizeof *w);
    if (w == NULL) {
        return CVG_ENOMEM;
    }
    int rc = walk_open(t, prefix, plen, w);
    if (rc != CVG_OK) {
        cvg__free(w);
        return rc;
    }
    *out = w;
    return CVG_OK;
}

static void
walk_close(prefix_walk *w)
{
    /* A cursor of a replaced LMDB transaction was freed with it. */
    if (w->t->epoch == w->epoch) {
        cvg__state_cursor_close(&w->c);
    }
    w->c.c = NULL;
}

/* Close and free a cursor; accepts NULL. */
static void
walk_free(prefix_walk *w)
{
    if (w != NULL) {
        walk_close(w);
        cvg__free(w);
    }
}

/* Whether a stored record holds anything live: counters can be all
 * deleted; other records exist only while they hold something. */
static int
record_live(cvg_txn *t, uint8_t type, const cvg_bytes *v, bool *live)
{
    *live = true;
    if (cvg__type_ops_of(type) == NULL) {
        return CVG_ECORRUPT;
    }
    if (type != CVG_TYPE_COUNTER) {
        return CVG_OK; /* other records exist only while they hold state */
    }
    cvg__counter c;
    memset(&c, 0, sizeof c);
    int rc = cvg__state_decode_counter(v->data, v->len, &t->r->origins, &c);
    if (rc == CVG_OK) {
        *live = cvg__counter_live(&c);
    }
    cvg__counter_destroy(&c);
    return rc;
}

int
cvg_set_cursor_open(cvg_txn *t, const cvg_key *key, cvg_set_cursor **out)
{
    if (out != NULL) {
        *out = NULL;
    }
    int rc = begin_read(t, out);
    if (rc != CVG_OK) {
        return rc;
    }
    uint32_t plen;
    rc = cvg__key_prefix(t, key, true, &plen);
    if (rc != CVG_OK) {
        return rc;
    }
    bool clash;
    rc = cvg__txn_type_clash(t, plen, CVG_TYPE_SET, &clash);
    if (rc == CVG_OK && clash) {
        rc = CVG_ETYPE;
    }
    if (rc != CVG_OK) {
        return rc;
    }
    t->kbuf.p[plen] = CVG_TYPE_SET;
    return walk_new(t, t->kbuf.p, plen + 1, (void **)out);
}

int
cvg_set_cursor_next(cvg_set_cursor *c, cvg_value *out)
{
    if (c == NULL || out == NULL) {
        return CVG_EINVAL;
    }
    cvg_bytes k, v;
    int rc = walk_next(&c->w, &k, &v);
    if (rc != CVG_OK) {
        return rc;
    }
    if (k.len != c->w.plen + 16) {
        return CVG_ECORRUPT;
    }
    cvg__tags tags;
    memset(&tags, 0, sizeof tags);
    rc = cvg__state_decode_elem(v.data, v.len, &c->w.t->r->origins, out, &tags);
    cvg__tags_destroy(&tags);
    if (rc == CVG_OK) {
        walk_skip(&c->w, k.data, (uint32_t)k.len);
    }
    return rc;
}

void
cvg_set_cursor_close(cvg_set_cursor *c)
{
    walk_free(c != NULL ? &c->w : NULL);
}

int
cvg_field_cursor_open(cvg_txn *t, const cvg_key *key, cvg_field_cursor **out)
{
    if (out != NULL) {
        *out = NULL;
    }
    int rc = begin_read(t, out);
    if (rc != CVG_OK) {
        return rc;
    }
    uint32_t rplen;
    rc = cvg__key_prefix(t, key, false, &rplen);
    if (rc != CVG_OK) {
        return rc;
    }
    return walk_new(t, t->kbuf.p, rplen, (void **)out);
}

int
cvg_field_cursor_next(cvg_field_cursor *c, cvg_bytes *field_out,
                      cvg_type *type_out)
{
    if (c == NULL || field_out == NULL || type_out == NULL) {
        return CVG_EINVAL;
    }
    for (;;) {
        cvg_bytes k, v;
        int rc = walk_next(&c->w, &k, &v);
        if (rc != CVG_OK) {
            return rc;
        }
        const uint8_t *kp = k.data;
        uint32_t rplen = c->w.plen;
        const uint8_t *nul = memchr(kp + rplen, 0, k.len - rplen);
        if (nul == NULL || (size_t)(nul - kp) + 2 > k.len) {
            return CVG_ECORRUPT;
        }
        uint32_t plen = (uint32_t)(nul - kp) + 1;
        uint8_t type = kp[plen];
        bool live;
        rc = record_live(c->w.t, type, &v, &live);
        if (rc != CVG_OK) {
            return rc;
        }
        /* Skip the rest of this field's records of this type. */
        walk_skip(&c->w, kp, plen + 1);
        if (live) {
            field_out->data = kp + rplen;
            field_out->len = plen - rplen - 1;
            *type_out = (cvg_type)type;
            return CVG_OK;
        }
    }
}

void
cvg_field_cursor_close(cvg_field_cursor *c)
{
    walk_free(c != NULL ? &c->w : NULL);
}

int
cvg_key_cursor_open(cvg_txn *t, const char *collection, cvg_key_cursor **out)
{
    if (out != NULL) {
        *out = NULL;
    }
    int rc = begin_read(t, out);
    if (rc != CVG_OK) {
        return rc;
    }
    size_t clen = collection ? strlen(collection) : 0;
    if (collection != NULL && clen == 0) {
        return CVG_EINVAL;
    }
    if (clen > CVG_NAME_MAX) {
        return CVG_ETOOBIG;
    }
    uint8_t prefix[CVG_NAME_MAX + 1];
    if (clen > 0) {
        memcpy(prefix, collection, clen);
        prefix[clen++] = 0;
    }
    return walk_new(t, prefix, (uint32_t)clen, (void **)out);
}

int
cvg_key_cursor_next(cvg_key_cursor *c, cvg_bytes *collection_out,
                    cvg_bytes *key_out)
{
    if (c == NULL || collection_out == NULL || key_out == NULL) {
        return CVG_EINVAL;
    }
    for (;;) {
        cvg_bytes k, v;
        int rc = walk_next(&c->w, &k, &v);
        if (rc != CVG_OK) {
            return rc;
        }
        const uint8_t *kp = k.data;
        const uint8_t *n1 = memchr(kp, 0, k.len);
        const uint8_t *n2 =
            n1 ? memchr(n1 + 1, 0, k.len - (size_t)(n1 + 1 - kp)) : NULL;
        const uint8_t *n3 =
            n2 ? memchr(n2 + 1, 0, k.len - (size_t)(n2 + 1 - kp)) : NULL;
        if (n3 == NULL || (size_t)(n3 - kp) + 2 > k.len) {
            return CVG_ECORRUPT;
        }
        uint32_t plen = (uint32_t)(n3 - kp) + 1;
        bool live;
        rc = record_live(c->w.t, kp[plen], &v, &live);
        if (rc != CVG_OK) {
            return rc;
        }
        if (!live) {
            /* A deleted counter: try this record's next field or type. */
            walk_skip(&c->w, kp, plen + 1);
            continue;
        }
        collection_out->data = kp;
        collection_out->len = (size_t)(n1 - kp);
        key_out->data = n1 + 1;
        key_out->len = (size_t)(n2 - n1 - 1);
        /* Past every record of this (collection, key). */
        walk_skip(&c->w, kp, (uint32_t)(n2 - kp) + 1);
        return CVG_OK;
    }
}

void
cvg_key_cursor_close(cvg_key_cursor *c)
{
    walk_free(c != NULL ? &c->w : NULL);
}

/* ---- The log cursor ------------------------------------------------------ */

struct cvg_log_cursor {
    cvg_txn *t;
    cvg__log_iter it;
    uint64_t wgen;
    uint64_t epoch;
    cvg__buf names; /* the current op's names, NUL-terminated */
};

int
cvg_log_cursor_open(cvg_txn *t, uint64_t from, cvg_log_cursor **out)
{
    if (out != NULL) {
        *out = NULL;
    }
    int rc = begin_read(t, out);
    if (rc != CVG_OK) {
        return rc;
    }
    if (t->write) {
        rc = cvg__txn_flush(t); /* the log must hold this txn's ops */
        if (rc != CVG_OK) {
            return rc;
        }
    }
    cvg_log_cursor *c = cvg__calloc(1, sizeof *c);
    if (c == NULL) {
        return CVG_ENOMEM;
    }
    c->t = t;
    c->wgen = t->wgen;
    c->epoch = t->epoch;
    rc = cvg__log_iter_open(&t->r->store, t->mt, from, &c->it);
    if (rc != CVG_OK) {
        cvg__log_iter_close(&c->it);
        cvg__free(c);
        return rc;
    }
    *out = c;
    return CVG_OK;
}

int
cvg_log_cursor_next(cvg_log_cursor *c, cvg_op *out)
{
    if (c == NULL || out == NULL) {
        return CVG_EINVAL;
    }
    if (c->t->wgen != c->wgen || c->t->epoch != c->epoch) {
        return CVG_EMISUSE;
    }
    cvg__op op;
    int rc = cvg__log_iter_next(&c->it, &op);
    if (rc == CVG_OK) {
        *out = op.pub;
        rc = cvg__op_names_terminate(out, &c->names);
    }
    return rc;
}

void
cvg_log_cursor_close(cvg_log_cursor *c)
{
    if (c == NULL) {
        return;
    }
    if (c->t->epoch != c->epoch) {
        c->it.cur = NULL; /* freed with the old LMDB transaction */
    }
    cvg__log_iter_close(&c->it);
    cvg__buf_free(&c->names);
    cvg__free(c);
}
