/*
 * The transaction's log blocks. Its new ops are encoded into blocks as
 * they are made (a run of one origin's consecutive seqs each), and the
 * finished blocks wait in memory for the commit, which appends them to the
 * log with the state. A block that came from a peer with only new ops is
 * kept as its bytes instead (cvg__txn_keep_begin).
 */
#include "types.h"

#define BLOCK_OPS_MAX 4096    /* ops per log block */
#define BLOCK_BYTES_MAX 65536 /* bytes per log block, roughly */

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
