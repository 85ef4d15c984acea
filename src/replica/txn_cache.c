/*
 * The transaction's cache of state records. A write transaction keeps the
 * decoded state of every record it touches here, so that a thousand
 * increments of one counter decode and encode its record once. Entries are
 * found by open addressing over their state keys, with a memo of the last
 * few for runs of writes to one field; a type mask entry per field (keyed
 * by the field's prefix alone) says which types live there, so type checks
 * rarely need to look at the store. Reads of the store go through oplog's
 * state functions; what the cache holds reaches the store at a flush or
 * the commit (txn.c). The names in a key come from peers too, so the hash
 * is keyed (hash.h): crafted names cannot pile up in one probe chain.
 */
#include "../hash.h"
#include "types.h"

/* ---- The cache ----------------------------------------------------------- */

static uint64_t
hash_bytes(const uint8_t *p, size_t n)
{
    /* Keyed: the names in a key are a peer's choice (hash.h). */
    return cvg__hash(p, n);
}

static void
entry_free(cvg__entry *e)
{
    const cvg__type_ops *ty = cvg__type_ops_of(e->type);
    if (ty != NULL) { /* a type mask entry (type 0) holds no state */
        ty->destroy(e);
    }
    cvg__free(e->key);
    cvg__free(e);
}

static cvg__entry **
find_slot(cvg_txn *t, const uint8_t *key, uint32_t klen, uint64_t h)
{
    size_t mask = t->nslots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        cvg__entry *e = t->slots[i];
        if (e == NULL || (e->hash == h && e->klen == klen &&
                          memcmp(e->key, key, klen) == 0)) {
            return &t->slots[i];
        }
    }
}

static int
cache_grow(cvg_txn *t)
{
    /* Most transactions touch a few keys: a small table to begin with
     * (256 slots were 2 KB to zero at every one-op commit). */
    size_t n = t->nslots ? t->nslots * 2 : 16;
    cvg__entry **s = cvg__calloc(n, sizeof *s);
    if (s == NULL) {
        return CVG_ENOMEM;
    }
    cvg__entry **old = t->slots;
    t->slots = s;
    t->nslots = n;
    for (size_t i = 0; i < t->nlist; i++) {
        cvg__entry *e = t->list[i];
        *find_slot(t, e->key, e->klen, e->hash) = e;
    }
    cvg__free(old);
    return CVG_OK;
}

/* A cached entry for key, or NULL. */
static cvg__entry *
cache_get(cvg_txn *t, const uint8_t *key, uint32_t klen, uint64_t h)
{
    if (t->nslots == 0) {
        return NULL;
    }
    return *find_slot(t, key, klen, h);
}

static cvg__entry *
memo_get(cvg_txn *t, const uint8_t *key, uint32_t klen)
{
    for (size_t i = 0; i < sizeof t->memo / sizeof t->memo[0]; i++) {
        cvg__entry *e = t->memo[i];
        if (e != NULL && e->klen == klen && memcmp(e->key, key, klen) == 0) {
            return e;
        }
    }
    return NULL;
}

static void
memo_put(cvg_txn *t, cvg__entry *e)
{
    t->memo[t->memo_next++ % (sizeof t->memo / sizeof t->memo[0])] = e;
}

static void
memo_clear(cvg_txn *t)
{
    memset(t->memo, 0, sizeof t->memo);
}

/* A new, empty entry (not present) for key. */
static int
cache_add(cvg_txn *t, const uint8_t *key, uint32_t klen, uint32_t plen,
          uint64_t h, uint8_t type, cvg__entry **out)
{
    if ((t->nlist + 1) * 2 > t->nslots) {
        int rc = cache_grow(t);
        if (rc != CVG_OK) {
            return rc;
        }
    }
    void *list = t->list;
    int rc = cvg__grow(&list, &t->caplist, t->nlist + 1, sizeof *t->list);
    t->list = list;
    if (rc != CVG_OK) {
        return rc;
    }
    cvg__entry *e = cvg__calloc(1, sizeof *e);
    uint8_t *k = cvg__alloc(klen);
    if (e == NULL || k == NULL) {
        cvg__free(e);
        cvg__free(k);
        return CVG_ENOMEM;
    }
    memcpy(k, key, klen);
    e->key = k;
    e->klen = klen;
    e->plen = plen;
    e->hash = h;
    e->type = type;
    *find_slot(t, key, klen, h) = e;
    t->list[t->nlist++] = e;
    *out = e;
    return CVG_OK;
}

/* Forget the entry added last (its record failed to load), so that a later
 * call loads it again instead of taking it for absent. */
static void
cache_drop_last(cvg_txn *t)
{
    cvg__entry *e = t->list[--t->nlist];
    memo_clear(t);
    memset(t->slots, 0, t->nslots * sizeof *t->slots);
    for (size_t i = 0; i < t->nlist; i++) {
        cvg__entry *x = t->list[i];
        *find_slot(t, x->key, x->klen, x->hash) = x;
    }
    entry_free(e);
}

void
cvg__txn_cache_clear(cvg_txn *t)
{
    memo_clear(t);
    for (size_t i = 0; i < t->nlist; i++) {
        entry_free(t->list[i]);
    }
    cvg__free(t->list);
    cvg__free(t->slots);
    t->list = NULL;
    t->slots = NULL;
    t->nlist = t->caplist = t->nslots = 0;
}

bool
cvg__entry_live(const cvg__entry *e)
{
    const cvg__type_ops *ty = cvg__type_ops_of(e->type);
    return ty != NULL && ty->live(e);
}

/* Decode a stored record into a fresh entry's state. */
static int
entry_decode(cvg_txn *t, cvg__entry *e, cvg_bytes v)
{
    const cvg__type_ops *ty = cvg__type_ops_of(e->type);
    int rc = ty != NULL ? ty->decode(e, &t->r->origins, v) : CVG_ECORRUPT;
    if (rc == CVG_OK) {
        e->present = true;
    }
    return rc;
}

static bool
has_nul(cvg_bytes b)
{
    return b.data != NULL && b.len > 0 && memchr(b.data, 0, b.len) != NULL;
}

int
cvg__txn_prefix(cvg_txn *t, cvg_bytes coll, cvg_bytes key, cvg_bytes field)
{
    if (has_nul(coll) || has_nul(key) || has_nul(field)) {
        return CVG_EINVAL;
    }
    return cvg__txn_prefix_cstr(t, coll, key, field);
}

int
cvg__txn_prefix_cstr(cvg_txn *t, cvg_bytes coll, cvg_bytes key, cvg_bytes field)
{
    if (coll.len == 0 || key.len == 0 || coll.data == NULL ||
        key.data == NULL || (field.len > 0 && field.data == NULL)) {
        return CVG_EINVAL;
    }
    if (coll.len + key.len + field.len > CVG_NAME_MAX) {
        return CVG_ETOOBIG;
    }
    /* Room for the prefix, a type byte and an element hash. */
    t->kbuf.len = 0;
    int rc = cvg__buf_reserve(&t->kbuf, coll.len + key.len + field.len + 20);
    if (rc != CVG_OK) {
        return rc;
    }
    uint8_t *p = t->kbuf.p;
    memcpy(p, coll.data, coll.len);
    p += coll.len;
    *p++ = 0;
    memcpy(p, key.data, key.len);
    p += key.len;
    *p++ = 0;
    if (field.len) {
        memcpy(p, field.data, field.len);
        p += field.len;
        *p++ = 0;
    }
    t->kbuf.len = (size_t)(p - t->kbuf.p);
    return CVG_OK;
}

static int
state_cursor(cvg_txn *t)
{
    if (t->state_cur.c != NULL) {
        return CVG_OK;
    }
    return cvg__state_cursor_open(&t->r->store, t->mt, &t->state_cur);
}

int
cvg__txn_entry(cvg_txn *t, uint32_t klen, uint32_t plen, uint8_t type,
               cvg__entry **out)
{
    const uint8_t *key = t->kbuf.p;
    cvg__entry *e = memo_get(t, key, klen);
    if (e != NULL) {
        *out = e;
        return CVG_OK;
    }
    uint64_t h = hash_bytes(key, klen);
    e = cache_get(t, key, klen, h);
    if (e != NULL) {
        memo_put(t, e);
        *out = e;
        return CVG_OK;
    }
    int rc = cache_add(t, key, klen, plen, h, type, &e);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg_bytes v;
    rc = cvg__state_get(&t->r->store, t->mt, e->key, klen, &v);
    if (rc == CVG_OK) {
        rc = entry_decode(t, e, v);
    } else if (rc == CVG_ENOTFOUND) {
        rc = CVG_OK;
    }
    if (rc != CVG_OK) {
        cache_drop_last(t);
        return rc;
    }
    *out = e;
    return CVG_OK;
}

/* Scan LMDB for the live types of the field at prefix t->kbuf[0..plen),
 * caching the records found on the way (their state is usually needed
 * next). Only called while no cached entry of the field is modified, or
 * after a flush, so LMDB tells the truth. */
static int
scan_field(cvg_txn *t, uint32_t plen, uint8_t *mask)
{
    *mask = 0;
    int rc = state_cursor(t);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg_bytes k, v;
    /* The prefix bytes are copied: loading entries reuses nothing of kbuf,
     * but keep our own copy for the comparisons anyway. */
    uint8_t prefix[CVG_NAME_MAX + 8];
    memcpy(prefix, t->kbuf.p, plen);
    int src = cvg__state_cursor_seek_in(&t->state_cur, prefix, plen, prefix,
                                        plen, &k, &v);
    while (src == CVG_OK) {
        if (k.len <= plen || memcmp(k.data, prefix, plen) != 0) {
            break;
        }
        uint8_t type = k.data[plen];
        if (cvg__type_ops_of(type) == NULL) {
            return CVG_ECORRUPT;
        }
        if (type == CVG_TYPE_SET) {
            *mask |= (uint8_t)(1u << type); /* element records are live */
        } else {
            uint64_t h = hash_bytes(k.data, k.len);
            cvg__entry *e = cache_get(t, k.data, (uint32_t)k.len, h);
            if (e == NULL) {
                rc = cache_add(t, k.data, (uint32_t)k.len, plen, h, type, &e);
                if (rc == CVG_OK) {
                    rc = entry_decode(t, e, v);
                    if (rc != CVG_OK) {
                        cache_drop_last(t);
                    }
                }
                if (rc != CVG_OK) {
                    return rc;
                }
            }
            if (cvg__entry_live(e)) {
                *mask |= (uint8_t)(1u << type);
            }
        }
        /* Skip the rest of this type (a set's elements). */
        uint8_t next[CVG_NAME_MAX + 8];
        memcpy(next, prefix, plen);
        next[plen] = (uint8_t)(type + 1);
        src = cvg__state_cursor_seek_in(&t->state_cur, next, plen + 1, prefix,
                                        plen, &k, &v);
    }
    if (src != CVG_OK && src != CVG_DONE) {
        return src;
    }
    /* Loading entries may have reused kbuf's storage: restore the prefix. */
    memcpy(t->kbuf.p, prefix, plen);
    return CVG_OK;
}

/* The type mask entry of the field at prefix t->kbuf[0..plen): NULL if
 * none is cached. */
static cvg__entry *
mask_get(cvg_txn *t, const uint8_t *prefix, uint32_t plen)
{
    cvg__entry *m = memo_get(t, prefix, plen);
    if (m == NULL) {
        m = cache_get(t, prefix, plen, hash_bytes(prefix, plen));
        if (m != NULL) {
            memo_put(t, m);
        }
    }
    return m;
}

int
cvg__txn_mask_entry(cvg_txn *t, uint32_t plen, cvg__entry **out)
{
    cvg__entry *m = mask_get(t, t->kbuf.p, plen);
    int rc = CVG_OK;
    if (m == NULL) {
        rc = cache_add(t, t->kbuf.p, plen, plen, hash_bytes(t->kbuf.p, plen), 0,
                       &m);
    }
    *out = m;
    return rc;
}

/* Whether a field of live types @p mask refuses a value of @p type: it
 * holds something, and none of that type. */
static bool
clashes(uint8_t mask, uint8_t type)
{
    return mask != 0 && !(mask & (1u << type));
}

int
cvg__txn_type_clash(cvg_txn *t, uint32_t plen, uint8_t type, bool *clash)
{
    cvg__entry *m = mask_get(t, t->kbuf.p, plen);
    if (m != NULL && m->mask_valid) {
        /* A set whose element died may or may not hold others: when the
         * answer is the same either way (the common case: more writes to
         * that set), it is known without looking. */
        bool lo = clashes(m->mask & (uint8_t)~m->unsure, type);
        bool hi = clashes(m->mask | m->unsure, type);
        if (lo == hi) {
            *clash = lo;
            return CVG_OK;
        }
    }
    /* No mask entry means no write of this transaction touched the field
     * (every write makes one), so LMDB is exact. Otherwise a write did:
     * flush first. */
    int rc = CVG_OK;
    if (m != NULL) {
        uint8_t prefix[CVG_NAME_MAX + 8];
        memcpy(prefix, t->kbuf.p, plen);
        rc = cvg__txn_flush(t);
        memcpy(t->kbuf.p, prefix, plen);
    }
    uint8_t mask = 0;
    if (rc == CVG_OK) {
        rc = scan_field(t, plen, &mask);
    }
    if (rc == CVG_OK && m == NULL) {
        rc = cvg__txn_mask_entry(t, plen, &m);
    }
    if (rc != CVG_OK) {
        return rc;
    }
    m->mask = mask;
    m->unsure = 0;
    m->mask_valid = true;
    *clash = clashes(mask, type);
    return CVG_OK;
}

void
cvg__txn_touch(cvg_txn *t, cvg__entry *e)
{
    e->modified = true;
    e->dirty = true;
    t->wgen++;
    /* Keep the field's type mask exact: a type with one record per field
     * is live exactly when that record is. A set has a record per element,
     * so when one dies the set bit becomes unsure (other elements may
     * live), to be settled by a scan only if an answer depends on it. */
    cvg__entry *m = mask_get(t, e->key, e->plen);
    if (m == NULL || !m->mask_valid) {
        return; /* recomputed on demand */
    }
    uint8_t bit = (uint8_t)(1u << e->type);
    if (cvg__entry_live(e)) {
        m->mask |= bit;
        m->unsure &= (uint8_t)~bit;
    } else if (e->type != CVG_TYPE_SET) {
        m->mask &= (uint8_t)~bit;
    } else if (m->mask & bit) {
        m->unsure |= bit;
    }
}
