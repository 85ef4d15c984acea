/*
 * The sync queue op by op: this replica's own ops that a peer does not have
 * yet, each with its state. The peer record says the peer has our seqs
 * 1..acked, so the queue is our ops above acked, walked in log order
 * (cvg__log_iter_open_origin: other origins' blocks are skipped by their
 * header). A refused op has a record in the queue database.
 */
#include "sync_int.h"

struct cvg_queue_cursor {
    cvg_txn *t;
    cvg__log_iter it; /* our own ops above acked */
    cvg_replica_id peer;
    uint64_t sent;        /* ops up to here were offered in a page */
    bool active;          /* a session with the peer is open */
    cvg__txn_stamp stamp; /* a write in t ends the walk */
    cvg__buf names;       /* the current op's names, NUL-terminated */
};

int
cvg_sync_queue_open(cvg_txn *t, const cvg_replica_id *peer,
                    cvg_queue_cursor **out)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (t == NULL || peer == NULL || out == NULL) {
        return CVG_EINVAL;
    }
    cvg_replica *r = cvg_txn_replica(t);
    int failed = cvg__txn_failed(t);
    if (failed) {
        return cvg__replica_fail(r, failed,
                                 "the transaction failed earlier (%s)",
                                 cvg_strerror(failed));
    }
    int rc = cvg__txn_writable(t) ? cvg__txn_flush(t) : CVG_OK;
    cvg__store *s = cvg__replica_store(r);
    cvg__peer_rec p;
    if (rc == CVG_OK) {
        rc = cvg__peer_get(s, cvg__txn_store_txn(t), peer, &p, NULL);
    }
    if (rc != CVG_OK) {
        return rc;
    }
    cvg__peer_overlay(r, peer, &p);
    cvg_queue_cursor *c = cvg__calloc(1, sizeof *c);
    if (c == NULL) {
        return CVG_ENOMEM;
    }
    c->t = t;
    c->peer = *peer;
    c->sent = p.sent;
    c->active = cvg__peer_active(r, peer);
    c->stamp = cvg__txn_stamp_get(t);
    rc = cvg__log_iter_open_origin(s, cvg__txn_store_txn(t),
                                   cvg__replica_self(r), p.acked + 1, &c->it);
    if (rc != CVG_OK) {
        cvg__log_iter_close(&c->it);
        cvg__free(c);
        return cvg__replica_fail(r, rc, "cannot read the log: %s",
                                 cvg_strerror(rc));
    }
    *out = c;
    return CVG_OK;
}

/* The code the peer refused our op @p seq with, or CVG_OK. */
static int
failed_code(cvg_queue_cursor *c, uint64_t seq, int *code)
{
    cvg__store *s = cvg__replica_store(cvg_txn_replica(c->t));
    return cvg__failed_get(s, cvg__txn_store_txn(c->t), &c->peer, seq, code);
}

int
cvg_sync_queue_next(cvg_queue_cursor *c, cvg_queued_op *out)
{
    if (c == NULL || out == NULL) {
        return CVG_EINVAL;
    }
    memset(out, 0, sizeof *out);
    if (!cvg__txn_stamp_valid(c->t, c->stamp)) {
        return CVG_EMISUSE; /* the transaction wrote or ended meanwhile */
    }
    cvg__op op;
    int rc = cvg__log_iter_next(&c->it, &op);
    int code = CVG_OK;
    if (rc == CVG_OK) {
        rc = failed_code(c, op.pub.dot.seq, &code);
    }
    if (rc != CVG_OK) {
        return rc;
    }
    out->op = op.pub;
    rc = cvg__op_names_terminate(&out->op, &c->names);
    if (rc != CVG_OK) {
        return rc;
    }
    out->code = code;
    if (code != CVG_OK) {
        out->state = CVG_OP_FAILED;
    } else if (c->active && op.pub.dot.seq <= c->sent) {
        out->state = CVG_OP_SYNCING;
    } else {
        out->state = CVG_OP_PENDING;
    }
    return CVG_OK;
}

void
cvg_sync_queue_close(cvg_queue_cursor *c)
{
    if (c == NULL) {
        return;
    }
    if (cvg__txn_stamp_get(c->t).epoch != c->stamp.epoch) {
        c->it.cur = NULL; /* freed with the old LMDB transaction */
    }
    cvg__log_iter_close(&c->it);
    cvg__buf_free(&c->names);
    cvg__free(c);
}
