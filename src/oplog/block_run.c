/*
 * Runs of ops into blocks, for the log and for pages on the wire alike: an
 * op joins the open block when it continues it (same origin, next seq) and
 * the block has room; otherwise the block is finished, handed over, and a
 * new one begins with the op.
 */
#include "oplog_int.h"

static bool
continues(const cvg__block_run *r, const cvg_dot *d)
{
    const cvg__block_writer *w = &r->w;
    return r->open && w->count < r->max_ops && w->out.len < r->max_bytes &&
           cvg__block_next_is(w, d);
}

int
cvg__block_run_close(cvg__block_run *r)
{
    if (!r->open) {
        return CVG_OK;
    }
    cvg_bytes b;
    int rc = cvg__block_finish(&r->w, &b);
    if (rc == CVG_OK) {
        rc = r->done(r->ctx, r, b);
    }
    if (rc == CVG_OK) {
        r->open = false;
    }
    return rc;
}

static int
restart(cvg__block_run *r, const cvg_dot *d)
{
    int rc = cvg__block_run_close(r);
    if (rc == CVG_OK) {
        rc = cvg__block_begin(&r->w, &d->origin, d->seq);
    }
    r->open = rc == CVG_OK;
    return rc;
}

int
cvg__block_run_add(cvg__block_run *r, const cvg__op *op)
{
    const cvg_dot *d = &op->pub.dot;
    int rc = continues(r, d) ? CVG_OK : restart(r, d);
    if (rc == CVG_OK) {
        rc = cvg__block_add(&r->w, op);
    }
    if (rc == CVG_ELIMIT && r->w.count > 0) {
        /* The block's name or origin dictionary is full: the op goes first
         * in a new block (the writer left the old one intact). */
        rc = restart(r, d);
        if (rc == CVG_OK) {
            rc = cvg__block_add(&r->w, op);
        }
    }
    return rc;
}

void
cvg__block_run_destroy(cvg__block_run *r)
{
    cvg__block_writer_destroy(&r->w);
    r->open = false;
}
