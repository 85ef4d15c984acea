/*
 * Transactions. A write transaction holds LMDB's write lock from begin to
 * commit, but keeps what it changes in memory: the decoded state of each
 * touched record in a cache, and new ops in encoded blocks. Commit writes
 * them once, so a thousand increments of one counter cost one state write.
 * Because everything written is still in memory at commit, a full map is
 * handled by aborting, growing the map and writing it all again.
 */
#include "../oplog/op_lookup.h"
#include "types.h"

#define BLOCK_OPS_MAX 4096    /* ops per log block */
#define BLOCK_BYTES_MAX 65536 /* bytes per log block, roughly */

/* ---- The cache ----------------------------------------------------------- */

static uint64_t
hash_bytes(const uint8_t *p, size_t n)
{
    /* FNV-1a with a final mix: keys are short and this is on the hot path. */
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 0x100000001b3ull;
    }
    h ^= h >> 29;
    return h ? h : 1;
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
    size_t n = t->nslots ? t->nslots * 2 : 256;
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

static void
cache_clear(cvg_txn *t)
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

int
cvg__txn_prefix(cvg_txn *t, cvg_bytes coll, cvg_bytes key, cvg_bytes field)
{
    if (coll.len == 0 || key.len == 0 || coll.data == NULL ||
        key.data == NULL || (field.len > 0 && field.data == NULL)) {
        return CVG_EINVAL;
    }
    if (coll.len + key.len + field.len > CVG_NAME_MAX) {
        return CVG_ETOOBIG;
    }
    if (memchr(coll.data, 0, coll.len) || memchr(key.data, 0, key.len) ||
        (field.len && memchr(field.data, 0, field.len))) {
        return CVG_EINVAL;
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
    int src = cvg__state_cursor_seek(&t->state_cur, prefix, plen, &k, &v);
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
        src = cvg__state_cursor_seek(&t->state_cur, next, plen + 1, &k, &v);
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

/* ---- The log blocks ------------------------------------------------------ */

/* A finished log block waits in memory for the commit. */
static int
finished_block(void *ctx, const cvg__block_run *run, cvg_bytes b)
{
    cvg_txn *t = ctx;
    void *arr = t->blocks;
    int rc = cvg__grow(&arr, &t->capblocks, t->nblocks + 1, sizeof *t->blocks);
    t->blocks = arr;
    if (rc != CVG_OK) {
        return rc;
    }
    cvg__pending_block *pb = &t->blocks[t->nblocks];
    memset(pb, 0, sizeof *pb);
    rc = cvg__buf_append(&pb->bytes, b.data, b.len);
    if (rc != CVG_OK) {
        cvg__buf_free(&pb->bytes);
        return rc;
    }
    pb->last_lsn = t->next_lsn - 1;
    pb->origin = run->w.origin;
    pb->last_seq = run->w.first_seq + run->w.count - 1;
    t->nblocks++;
    return CVG_OK;
}

bool
cvg__txn_keep_begin(cvg_txn *t, const cvg__block_reader *rd, cvg_bytes block)
{
    /* The kept block's lsns follow what is logged so far: close the block
     * being built first. If that fails, the ops are logged one by one. */
    if (t->keeping || t->failed || !cvg__block_is_current(rd) ||
        rd->count == 0 || rd->count > BLOCK_OPS_MAX ||
        block.len > 4 * BLOCK_BYTES_MAX ||
        rd->first_seq != cvg__vv_get(&t->vv, &rd->origin) + 1 ||
        cvg__block_run_close(&t->run) != CVG_OK) {
        return false;
    }
    t->keeping = true;
    t->keep = block;
    t->keep_origin = rd->origin;
    t->keep_last_seq = rd->first_seq + rd->count - 1;
    t->keep_left = rd->count;
    return true;
}

int
cvg__txn_keep_end(cvg_txn *t)
{
    t->keeping = false;
    if (t->failed) {
        return t->failed;
    }
    if (t->keep_left != 0) {
        /* Fewer ops applied than the block holds: the block decoded short
         * of its count, which the reader refuses; never store it. */
        return t->failed = CVG_ECORRUPT;
    }
    void *arr = t->blocks;
    int rc = cvg__grow(&arr, &t->capblocks, t->nblocks + 1, sizeof *t->blocks);
    t->blocks = arr;
    cvg__pending_block *pb = rc == CVG_OK ? &t->blocks[t->nblocks] : NULL;
    if (pb != NULL) {
        memset(pb, 0, sizeof *pb);
        rc = cvg__buf_append(&pb->bytes, t->keep.data, t->keep.len);
    }
    if (rc != CVG_OK) {
        if (pb != NULL) {
            cvg__buf_free(&pb->bytes);
        }
        /* The ops are applied but have no log: never commit that. */
        return t->failed = rc;
    }
    pb->last_lsn = t->next_lsn - 1;
    pb->origin = t->keep_origin;
    pb->last_seq = t->keep_last_seq;
    t->nblocks++;
    return CVG_OK;
}

int
cvg__txn_log(cvg_txn *t, const cvg__op *op)
{
    if (t->run.done == NULL) {
        t->run.max_ops = BLOCK_OPS_MAX;
        t->run.max_bytes = BLOCK_BYTES_MAX;
        t->run.done = finished_block;
        t->run.ctx = t;
    }
    int rc = cvg__block_run_add(&t->run, op);
    if (rc != CVG_OK) {
        return rc;
    }
    t->next_lsn++;
    t->n_ops++;
    return CVG_OK;
}

/* ---- Writing to LMDB ----------------------------------------------------- */

static int
put_entry(cvg_txn *t, cvg__entry *e)
{
    if (!e->present) {
        return cvg__state_del(&t->r->store, t->mt, e->key, e->klen);
    }
    const cvg__type_ops *ty = cvg__type_ops_of(e->type);
    if (ty == NULL) {
        return CVG_EINVAL;
    }
    t->vbuf.len = 0;
    int rc = ty->encode(e, &t->r->origins, &t->vbuf);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg_bytes v = {t->vbuf.p, t->vbuf.len};
    return cvg__state_put(&t->r->store, t->mt, e->key, e->klen, v);
}

/* Write what is dirty (all: what is modified) and the unstored blocks. */
static int write_meta(cvg_txn *t);

static int
write_out(cvg_txn *t, bool all)
{
    for (size_t i = 0; i < t->nlist; i++) {
        cvg__entry *e = t->list[i];
        if (e->type == 0 || !(all ? e->modified : e->dirty)) {
            continue;
        }
        int rc = put_entry(t, e);
        if (rc != CVG_OK) {
            return rc;
        }
        e->dirty = false;
    }
    int rc = cvg__block_run_close(&t->run);
    for (size_t i = 0; rc == CVG_OK && i < t->nblocks; i++) {
        cvg__pending_block *b = &t->blocks[i];
        if (b->stored && !all) {
            continue;
        }
        cvg_bytes bytes = {b->bytes.p, b->bytes.len};
        rc = cvg__log_append(&t->r->store, t->mt, b->last_lsn, &b->origin,
                             b->last_seq, bytes);
        b->stored = rc == CVG_OK;
    }
    return rc;
}

/* The map filled: the store grows it and has us write everything again
 * into a new transaction (commit.c). Cursors of the old one are gone. */
static int
rewrite_out(void *ctx, cvg__store_txn *mt)
{
    cvg_txn *t = ctx;
    t->mt = mt;
    return write_out(t, true);
}

static int
rewrite_all(void *ctx, cvg__store_txn *mt)
{
    int rc = rewrite_out(ctx, mt);
    return rc == CVG_OK ? write_meta(ctx) : rc;
}

static void
drop_state_cursor(cvg_txn *t)
{
    cvg__state_cursor_close(&t->state_cur);
    t->epoch++; /* cursors of the old LMDB transaction are gone */
}

static cvg__rewrite
rewriter(cvg_txn *t, int (*fn)(void *, cvg__store_txn *))
{
    cvg__rewrite rw = {fn, t, t->start_gen, t->r->readers > 0};
    return rw;
}

static int
regrow(cvg_txn *t)
{
    drop_state_cursor(t);
    cvg__rewrite rw = rewriter(t, rewrite_out);
    return cvg__store_regrow(&t->r->store, &t->mt, &rw);
}

int
cvg__txn_flush(cvg_txn *t)
{
    if (t->failed) {
        return t->failed;
    }
    int rc = write_out(t, false);
    if (rc == CVG_EFULL) {
        rc = regrow(t);
    }
    if (rc != CVG_OK) {
        t->failed = rc;
    }
    return rc;
}

/* ---- Begin, commit, abort ------------------------------------------------ */

int
cvg_txn_begin(cvg_replica *r, unsigned flags, cvg_txn **out)
{
    if (out == NULL) {
        return CVG_EINVAL;
    }
    *out = NULL;
    if (r == NULL || (flags & ~CVG_TXN_READ_ONLY) != 0) {
        return CVG_EINVAL;
    }
    bool write = !(flags & CVG_TXN_READ_ONLY);
    if (write && r->opts.read_only) {
        return cvg__replica_fail(r, CVG_EREADONLY,
                                 "the replica was opened read-only");
    }
    if (write && r->writer != NULL) {
        return cvg__replica_fail(r, CVG_EBUSY,
                                 "a write transaction is already open");
    }
    cvg_txn *t = cvg__calloc(1, sizeof *t);
    if (t == NULL) {
        return CVG_ENOMEM;
    }
    t->r = r;
    t->write = write;
    int rc = cvg__store_begin(&r->store, write, &t->mt);
    /* The writer of this process already has the newest state; otherwise
     * adopt what other processes committed. */
    if (rc == CVG_OK && (write || r->writer == NULL)) {
        rc = cvg__replica_refresh(r, t->mt);
    }
    if (rc == CVG_OK) {
        rc = cvg__vv_copy(&t->vv, &r->vv);
    }
    if (rc != CVG_OK) {
        cvg__store_abort(t->mt);
        cvg__vv_destroy(&t->vv);
        cvg__free(t);
        return cvg__replica_fail(r, rc, "cannot begin a transaction");
    }
    t->start_gen = r->gen;
    t->clock = r->clock;
    t->next_lsn = r->last_lsn + 1;
    t->origins_at_begin = r->origins.n;
    if (write) {
        r->writer = t;
    } else {
        r->readers++;
    }
    *out = t;
    return CVG_OK;
}

static void
txn_free(cvg_txn *t)
{
    cvg_replica *r = t->r;
    cvg__state_cursor_close(&t->state_cur);
    cvg__store_abort(t->mt);
    if (t->write) {
        r->writer = NULL;
    } else if (r->readers > 0) {
        r->readers--;
    }
    cache_clear(t);
    cvg__block_run_destroy(&t->run);
    for (size_t i = 0; i < t->nblocks; i++) {
        cvg__buf_free(&t->blocks[i].bytes);
    }
    cvg__free(t->blocks);
    cvg__buf_free(&t->kbuf);
    cvg__buf_free(&t->vbuf);
    cvg__vv_destroy(&t->vv);
    cvg__conflicts_free(t->conflicts, t->nconflicts);
    cvg__op_lookup_destroy(t->dups);
    cvg__free(t->dups);
    cvg__free(t);
}

void
cvg_txn_abort(cvg_txn *t)
{
    if (t == NULL) {
        return;
    }
    if (t->write) {
        /* Origins first seen in this transaction were never stored. */
        cvg__origins_truncate(&t->r->origins, t->origins_at_begin);
        cvg__hook_ended(t->r, false);
    }
    txn_free(t);
}

/* Meta and origin records: the VV entries that changed, new origins, the
 * clock, the last lsn and the generation. */
static int
write_meta(cvg_txn *t)
{
    cvg_replica *r = t->r;
    for (size_t i = 0; i < r->origins.n; i++) {
        const cvg_replica_id *id = &r->origins.ids[i];
        uint64_t seq = cvg__vv_get(&t->vv, id);
        if (i < t->origins_at_begin && seq == cvg__vv_get(&r->vv, id)) {
            continue;
        }
        int rc = cvg__origins_put(&r->store, t->mt, (uint32_t)i, id, seq);
        if (rc != CVG_OK) {
            return rc;
        }
    }
    /* The floor above stores what waited for a commit (sync's records). */
    int rc = cvg__hook_write(r, t->mt);
    if (rc != CVG_OK) {
        return rc;
    }
    rc = cvg__meta_put_u64(&r->store, t->mt, "hlc", t->clock);
    if (rc == CVG_OK) {
        rc = cvg__meta_put_u64(&r->store, t->mt, "lsn", t->next_lsn - 1);
    }
    if (rc == CVG_OK) {
        rc = cvg__meta_put_u64(&r->store, t->mt, "gen", t->start_gen + 1);
    }
    return rc;
}

int
cvg_txn_commit(cvg_txn *t)
{
    if (t == NULL) {
        return CVG_EINVAL;
    }
    cvg_replica *r = t->r;
    if (!t->write) {
        txn_free(t);
        return CVG_OK;
    }
    int rc = t->failed;
    if (rc == CVG_OK && t->n_ops == 0) {
        /* Nothing to store but, perhaps, what the hook was told for this
         * commit (news of a peer, with a page of ops we all had): that
         * waits for the next commit. */
        cvg__origins_truncate(&r->origins, t->origins_at_begin);
        cvg__hook_ended(r, true);
        txn_free(t);
        return CVG_OK;
    }
    if (rc == CVG_OK) {
        rc = write_out(t, false);
        if (rc == CVG_OK) {
            rc = write_meta(t);
        }
        drop_state_cursor(t);
        cvg__rewrite rw = rewriter(t, rewrite_all);
        rc = cvg__store_commit(&r->store, &t->mt, rc, &rw);
    }
    if (rc != CVG_OK) {
        if (rc != CVG_EFULL && rc != CVG_EBUSY) {
            cvg__replica_fail(r, rc, "commit failed: %s", cvg_strerror(rc));
        }
        cvg_txn_abort(t);
        return rc;
    }
    /* Publish what is now committed. */
    cvg__hook_committed(r);
    cvg__vv tmp = r->vv;
    r->vv = t->vv;
    t->vv = tmp;
    r->clock = t->clock;
    r->last_lsn = t->next_lsn - 1;
    r->gen = t->start_gen + 1;
    txn_free(t);
    return CVG_OK;
}

/* ---- What the floor above sees (replica.h) ----------------------------- */

cvg__store_txn *
cvg__txn_store_txn(cvg_txn *t)
{
    return t->mt;
}

const cvg__vv *
cvg__txn_vv(const cvg_txn *t)
{
    return &t->vv;
}

uint64_t
cvg__txn_next_lsn(const cvg_txn *t)
{
    return t->next_lsn;
}

bool
cvg__txn_writable(const cvg_txn *t)
{
    return t->write;
}

int
cvg__txn_failed(const cvg_txn *t)
{
    return t->failed;
}

cvg__txn_stamp
cvg__txn_stamp_get(const cvg_txn *t)
{
    cvg__txn_stamp s = {t->wgen, t->epoch};
    return s;
}

bool
cvg__txn_stamp_valid(const cvg_txn *t, cvg__txn_stamp s)
{
    return t->wgen == s.wgen && t->epoch == s.epoch;
}

cvg_replica *
cvg_txn_replica(cvg_txn *t)
{
    return t ? t->r : NULL;
}

int
cvg_txn_version_vector(cvg_txn *t, cvg_dot *out, size_t cap, size_t *count_out)
{
    if (t == NULL || count_out == NULL || (cap > 0 && out == NULL)) {
        return CVG_EINVAL;
    }
    size_t n = t->vv.n;
    for (size_t i = 0; i < n && i < cap; i++) {
        out[i] = t->vv.e[i];
    }
    *count_out = n;
    return CVG_OK;
}
