/*
 * Copies and restored backups. Ops are numbered per origin, so two
 * directories writing under one origin would make two different ops with
 * one seq: a fork, which no merge can undo and which version vectors hide
 * (both sides claim the same seqs). So a replica remembers where it lives:
 * the meta record "home" holds the device and inode of its directory and
 * the inode of its data file, with their birth times (cvg__store_home). A
 * writable open that finds
 * itself elsewhere (cp -r, a backup restored, a data file written over)
 * is a copy: it keeps everything it holds, but writes from then on under a
 * new origin, derived from the same key and 16 random bytes (meta "inc"),
 * and records the origin it leaves with the last seq written under it
 * (meta "prev", shown by cvg_replica_previous_origins() and `converge
 * status`). The original stays where it was and keeps its origin; a rename
 * keeps the inodes and changes nothing. A replica made before this record
 * existed takes its home at its first writable open.
 */
#include <sodium.h>

#include "replica_int.h"

#define PREV_ENTRY 24 /* origin (16) + last seq (u64 BE) */

typedef struct home_ctx {
    cvg_replica *r;
    uint8_t here[CVG__HOME_BYTES];
    uint8_t inc[CVG__INC_MAX];
    cvg_replica_id new_id;
    bool moved; /* out: the replica took new_id */
} home_ctx;

/* Record the origin we leave, after those left before. */
static int
append_prev(cvg__store *s, cvg__store_txn *mt, const cvg_replica_id *old,
            uint64_t seq)
{
    cvg_bytes prev = {NULL, 0};
    int rc = cvg__meta_get(s, mt, "prev", &prev);
    if (rc != CVG_OK && rc != CVG_ENOTFOUND) {
        return rc;
    }
    if (prev.len % PREV_ENTRY != 0) {
        return CVG_ECORRUPT;
    }
    cvg__buf b = {0};
    uint8_t e[PREV_ENTRY];
    memcpy(e, old->bytes, 16);
    cvg__put_be64(e + 16, seq);
    rc = cvg__buf_append(&b, prev.data, prev.len);
    if (rc == CVG_OK) {
        rc = cvg__buf_append(&b, e, sizeof e);
    }
    if (rc == CVG_OK) {
        cvg_bytes v = {b.p, b.len};
        rc = cvg__meta_put(s, mt, "prev", v);
    }
    cvg__buf_free(&b);
    return rc;
}

static int
check_home(void *vctx, cvg__store_txn *mt)
{
    home_ctx *c = vctx;
    cvg_replica *r = c->r;
    cvg__store *s = &r->store;
    c->moved = false;
    cvg_bytes home;
    cvg_bytes here = {c->here, sizeof c->here};
    int rc = cvg__meta_get(s, mt, "home", &home);
    if (rc == CVG_ENOTFOUND) {
        return cvg__meta_put(s, mt, "home", here);
    }
    if (rc != CVG_OK) {
        return rc;
    }
    if (home.len == sizeof c->here &&
        memcmp(home.data, c->here, sizeof c->here) == 0) {
        return CVG_OK;
    }
    /* A copy: a new origin for what it writes from now on. Both origins
     * are of our key: we sign for either (history.c). */
    rc = append_prev(s, mt, &r->id, cvg__vv_get(&r->vv, &r->id));
    if (rc == CVG_OK && r->has_pk) {
        rc = cvg__key_put(s, mt, &r->id, r->pk, r->inc, (uint8_t)r->inc_len);
    }
    if (rc == CVG_OK && r->has_pk) {
        rc = cvg__key_put(s, mt, &c->new_id, r->pk, c->inc, sizeof c->inc);
    }
    if (rc == CVG_OK) {
        rc = cvg__meta_put_id(s, mt, &c->new_id);
    }
    if (rc == CVG_OK) {
        cvg_bytes inc = {c->inc, sizeof c->inc};
        rc = cvg__meta_put(s, mt, "inc", inc);
    }
    if (rc == CVG_OK) {
        rc = cvg__meta_put(s, mt, "home", here);
    }
    if (rc == CVG_OK) {
        rc = cvg__origins_put(s, mt, (uint32_t)r->origins.n, &c->new_id, 0);
    }
    if (rc == CVG_OK) {
        rc = cvg__meta_put_u64(s, mt, "gen", r->gen + 1);
    }
    c->moved = rc == CVG_OK;
    return rc;
}

int
cvg__home_check(cvg_replica *r)
{
    if (r->opts.read_only) {
        return CVG_OK; /* it writes nothing, so it cannot fork */
    }
    home_ctx c = {.r = r};
    int rc = cvg__store_home(&r->store, c.here);
    if (rc != CVG_OK) {
        return cvg__replica_fail(r, rc, "cannot stat the replica's files");
    }
    /* The common case, at home, costs a read, not a write transaction. */
    cvg__store_txn *rt;
    rc = cvg__store_begin(&r->store, false, &rt);
    if (rc != CVG_OK) {
        return cvg__replica_fail(r, rc, "cannot begin a transaction");
    }
    cvg_bytes home;
    bool at_home = cvg__meta_get(&r->store, rt, "home", &home) == CVG_OK &&
                   home.len == sizeof c.here &&
                   memcmp(home.data, c.here, sizeof c.here) == 0;
    cvg__store_abort(rt);
    if (at_home) {
        return CVG_OK;
    }
    randombytes_buf(c.inc, sizeof c.inc);
    if (r->has_pk) {
        cvg__identity_derive(r->pk, c.inc, sizeof c.inc, &c.new_id);
    } else {
        randombytes_buf(c.new_id.bytes, sizeof c.new_id.bytes); /* 0.1 */
    }
    rc = cvg__store_write(&r->store, false, check_home, &c);
    if (rc != CVG_OK) {
        return cvg__replica_fail(r, rc,
                                 "cannot record where the replica "
                                 "lives");
    }
    if (!c.moved) {
        return CVG_OK;
    }
    r->id = c.new_id;
    memcpy(r->inc, c.inc, sizeof r->inc);
    r->inc_len = sizeof r->inc;
    r->gen = UINT64_MAX; /* reload the origins: ours is new */
    cvg__store_txn *mt;
    rc = cvg__store_begin(&r->store, false, &mt);
    if (rc == CVG_OK) {
        rc = cvg__replica_refresh(r, mt);
        cvg__store_abort(mt);
    }
    return rc;
}

int
cvg_replica_previous_origins(cvg_replica *r, cvg_dot *out, size_t cap,
                             size_t *count_out)
{
    if (count_out != NULL) {
        *count_out = 0;
    }
    if (r == NULL || count_out == NULL || (out == NULL && cap > 0)) {
        return CVG_EINVAL;
    }
    cvg__store_txn *mt;
    int rc = cvg__store_begin(&r->store, false, &mt);
    if (rc != CVG_OK) {
        return cvg__replica_fail(r, rc, "cannot begin a read transaction");
    }
    cvg_bytes prev = {NULL, 0};
    rc = cvg__meta_get(&r->store, mt, "prev", &prev);
    if (rc == CVG_ENOTFOUND) {
        rc = CVG_OK;
    } else if (rc == CVG_OK && prev.len % PREV_ENTRY != 0) {
        rc = cvg__replica_fail(r, CVG_ECORRUPT,
                               "the record of previous origins is damaged");
    }
    if (rc == CVG_OK) {
        size_t n = prev.len / PREV_ENTRY;
        for (size_t i = 0; i < n && i < cap; i++) {
            memcpy(out[i].origin.bytes, prev.data + i * PREV_ENTRY, 16);
            out[i].seq = cvg__get_be64(prev.data + i * PREV_ENTRY + 16);
        }
        *count_out = n;
    }
    cvg__store_abort(mt);
    return rc;
}
