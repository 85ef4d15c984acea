/*
 * The transaction's log blocks. Its new ops are encoded into blocks as
 * they are made (a run of one origin's consecutive seqs each), and the
 * finished blocks wait in memory for the commit, which appends them to the
 * log with the state. A block that came from a peer with only new ops is
 * kept as its bytes instead (cvg__txn_keep_begin).
 *
 * Small commits extend the log's last block. The handle keeps the writer
 * of the last block it appended (r->tail). When a transaction's first op
 * continues that block (the same origin, the next seq and lsn), the log
 * still ends in it (cvg__log_last_is: no other process appended since)
 * and it is small, the run takes the writer up again and goes on adding
 * to it; the commit replaces the block with the longer one. Without this
 * every commit of one op stored a block header, a log key and a dots
 * entry (about 110 bytes) beside its op's 5 to 10; a thousand commits of
 * a thousand increments stored 1,000 blocks where 250 do. Only small
 * blocks are taken up (TAIL_BYTES_MAX): a commit rewrites the whole block,
 * and one that no longer fits in a leaf page would be written to overflow
 * pages of its own at every commit.
 */
#include "types.h"

#define BLOCK_OPS_MAX 4096    /* ops per log block */
#define BLOCK_BYTES_MAX 65536 /* bytes per log block, roughly */
#define TAIL_BYTES_MAX 512    /* the largest last block taken up again */

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
    /* Only the run's first block can extend the log's last one. */
    pb->replaces_lsn = t->extends_lsn;
    pb->replaces_seq = t->extends_seq;
    t->extends_lsn = 0;
    t->nblocks++;
    t->run_last = t->nblocks;
    return CVG_OK;
}

/* Whether @p w holds a finished block that @p d continues, small enough to
 * take up again. */
static bool
continues_tail(const cvg__block_writer *w, const cvg_dot *d)
{
    return w->count > 0 && w->count < BLOCK_OPS_MAX &&
           w->out.len <= TAIL_BYTES_MAX && cvg__block_next_is(w, d);
}

/* Before the transaction's first op: take up the log's last block if the
 * op continues it. Nothing here fails the op; at worst it begins a block
 * of its own, as it would have. */
static void
take_up_tail(cvg_txn *t, const cvg__op *op)
{
    cvg_replica *r = t->r;
    t->extend_tried = true;
    if (!r->tail_valid) {
        return;
    }
    /* From here the tail is this transaction's or nobody's: an abort
     * leaves the writer changed, and a commit keeps a new tail. */
    r->tail_valid = false;
    cvg_bytes last = {r->tail.out.p, r->tail.out.len};
    if (!continues_tail(&r->tail, &op->pub.dot) ||
        t->next_lsn != r->tail_lsn + 1 ||
        !cvg__log_last_is(&r->store, t->mt, r->tail_lsn, last)) {
        return;
    }
    cvg__block_writer w = t->run.w;
    t->run.w = r->tail;
    r->tail = w;
    if (cvg__block_reopen(&t->run.w) != CVG_OK) {
        r->tail = t->run.w;
        t->run.w = w;
        return;
    }
    t->run.open = true;
    t->extends_lsn = r->tail_lsn;
    t->extends_seq = t->run.w.first_seq + t->run.w.count - 1;
}

void
cvg__txn_log_committed(cvg_txn *t)
{
    /* The run's writer still holds the last block it finished. Keep it if
     * that block is the log's last one now (no kept block came after it),
     * and it is the block as stored. */
    if (t->run_last == 0 || t->run_last != t->nblocks || t->run.open) {
        return;
    }
    const cvg__pending_block *pb = &t->blocks[t->nblocks - 1];
    const cvg__block_writer *w = &t->run.w;
    if (w->out.len > TAIL_BYTES_MAX || w->out.len != pb->bytes.len ||
        memcmp(w->out.p, pb->bytes.p, pb->bytes.len) != 0) {
        return;
    }
    cvg_replica *r = t->r;
    cvg__block_writer old = r->tail;
    r->tail = t->run.w;
    t->run.w = old; /* freed with the transaction, or reused */
    r->tail_lsn = pb->last_lsn;
    r->tail_valid = true;
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
    if (!t->extend_tried && !t->run.open && t->nblocks == 0) {
        take_up_tail(t, op);
    }
    int rc = cvg__block_run_add(&t->run, op);
    if (rc != CVG_OK) {
        return rc;
    }
    t->next_lsn++;
    t->n_ops++;
    return CVG_OK;
}
