/*
 * The sync queue op by op: this replica's own ops that a peer does not have
 * yet, each with its state. The peer record says the peer has our seqs
 * 1..acked, so the queue is our ops above acked, walked in log order
 * (cvg__log_iter_open_origin: other origins' blocks are skipped by their
 * header). A refused op has a record in the queue database.
 */
#include "../replica/replica_int.h"

struct cvg_queue_cursor {
    cvg_txn *t;
    cvg__log_iter it;  /* our own ops above acked */
    cvg_replica_id peer;
    uint64_t sent;     /* ops up to here were offered in a page */
    bool active;       /* a session with the peer is open */
    uint64_t wgen;
    uint64_t epoch;
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
    if (t->failed) {
        return cvg__replica_fail(t->r, t->failed,
                                 "the transaction failed earlier (%s)",
                                 cvg_strerror(t->failed));
    }
    cvg_replica *r = t->r;
    int rc = t->write ? cvg__txn_flush(t) : CVG_OK;
    cvg__peer_rec p;
    if (rc == CVG_OK) {
        rc = cvg__peer_get(&r->store, t->mt, peer, &p, NULL);
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
    c->wgen = t->wgen;
    c->epoch = t->epoch;
    rc = cvg__log_iter_open_origin(&r->store, t->mt, &r->id, p.acked + 1,
                                   &c->it);
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
    return cvg__failed_get(&c->t->r->store, c->t->mt, &c->peer, seq, code);
}

int
cvg_sync_queue_next(cvg_queue_cursor *c, cvg_queued_op *out)
{
    if (c == NULL || out == NULL) {
        return CVG_EINVAL;
    }
    memset(out, 0, sizeof *out);
    if (c->t->wgen != c->wgen || c->t->epoch != c->epoch) {
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
    if (c->t->epoch != c->epoch) {
        c->it.cur = NULL; /* freed with the old LMDB transaction */
    }
    cvg__log_iter_close(&c->it);
    cvg__free(c);
}
