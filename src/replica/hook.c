/*
 * The commit hook: how the floor above (sync) has its own records stored
 * with the replica's commits without the replica knowing what they are.
 * What sync learns of a peer changes no data, so it is not worth a durable
 * commit of its own: it waits in sync's memory and the hook writes it into
 * the next commit, whoever makes it. cvg__replica_store_hook() and
 * cvg__replica_write() are the commits of its own it gets when it cannot
 * wait (close, cvg_replica_flush, refused ops, a retry).
 */
#include "replica_int.h"

int
cvg__replica_hook_set(cvg_replica *r, const cvg__commit_hook *h)
{
    if (r->has_hook) {
        return CVG_EMISUSE;
    }
    r->hook = *h;
    r->has_hook = true;
    return CVG_OK;
}

void *
cvg__replica_hook_ctx(const cvg_replica *r)
{
    return r->has_hook ? r->hook.ctx : NULL;
}

int
cvg__hook_write(cvg_replica *r, cvg__store_txn *mt)
{
    if (!r->has_hook || r->hook.write == NULL) {
        return CVG_OK;
    }
    return r->hook.write(r->hook.ctx, &r->store, mt);
}

void
cvg__hook_committed(cvg_replica *r)
{
    if (r->has_hook && r->hook.committed != NULL) {
        r->hook.committed(r->hook.ctx);
    }
}

void
cvg__hook_ended(cvg_replica *r, bool empty)
{
    if (r->has_hook && r->hook.ended != NULL) {
        r->hook.ended(r->hook.ctx, empty);
    }
}

typedef struct own_write {
    cvg_replica *r;
    int (*fn)(void *ctx, cvg__store *s, cvg__store_txn *t);
    void *ctx;
} own_write;

static int
write_own(void *ctx, cvg__store_txn *mt)
{
    own_write *w = ctx;
    int rc = cvg__hook_write(w->r, mt);
    if (rc == CVG_OK && w->fn != NULL) {
        rc = w->fn(w->ctx, &w->r->store, mt);
    }
    return rc;
}

int
cvg__replica_write(cvg_replica *r,
                   int (*fn)(void *ctx, cvg__store *s, cvg__store_txn *t),
                   void *ctx)
{
    if (r->opts.read_only) {
        return cvg__replica_fail(r, CVG_EREADONLY,
                                 "the replica was opened read-only");
    }
    if (r->writer != NULL) {
        return cvg__replica_fail(r, CVG_EBUSY,
                                 "a write transaction is already open");
    }
    own_write w = {r, fn, ctx};
    int rc = cvg__store_write(&r->store, r->readers > 0, write_own, &w);
    if (rc == CVG_OK) {
        cvg__hook_committed(r);
    }
    return rc;
}

int
cvg__replica_store_hook(cvg_replica *r)
{
    if (!r->has_hook || r->opts.read_only || r->writer != NULL ||
        !r->hook.pending(r->hook.ctx)) {
        return CVG_OK; /* nothing to store, or that commit will */
    }
    return cvg__replica_write(r, NULL, NULL);
}

void
cvg__hook_close(cvg_replica *r)
{
    if (!r->has_hook) {
        return;
    }
    /* Best effort: what waited is learned again at the next session. */
    (void)cvg__replica_store_hook(r);
    if (r->hook.destroy != NULL) {
        r->hook.destroy(r->hook.ctx);
    }
    r->has_hook = false;
}
