/*
 * Applying an op that another replica made. The op must be the next of its
 * origin (a duplicate is skipped if it equals the stored op, and is an
 * equivocation if not; a gap is refused), and everything it says it had
 * seen must be here already. Its time is taken whatever it is (unless the
 * app asked for times far ahead to be refused): the local clock follows it
 * only up to a bound (crdt/hlc.c). Then it goes through
 * the same pipeline as a local write. These checks make the merged state
 * independent of the order in which ops travel, as long as each origin's
 * ops come in seq order.
 */
#include "../oplog/op_lookup.h"
#include "replica_int.h"

/* Whether every dot the op depends on is applied here. */
static bool
deps_met(const cvg__vv *vv, const cvg__op *op)
{
    const cvg_op *p = &op->pub;
    for (size_t i = 0; i < p->observed_count; i++) {
        if (!cvg__vv_contains(vv, &p->observed[i])) {
            return false;
        }
    }
    for (size_t i = 0; i < op->n_counters; i++) {
        const cvg__delete_counter *c = &op->counters[i];
        for (size_t j = 0; j < c->n; j++) {
            if (c->parts[j].seq > cvg__vv_get(vv, &c->parts[j].origin)) {
                return false;
            }
        }
    }
    return true;
}

/* An op under a dot this replica has: the same op again is skipped
 * (CVG_DONE); any other content under that dot is an equivocation. The op
 * is compared with the stored one, found through the dots index, rather
 * than with a hash kept per dot (see op_lookup.c). */
static int
check_duplicate(cvg_txn *t, const cvg__op *op)
{
    cvg_replica *r = t->r;
    const cvg_dot *d = &op->pub.dot;
    if (d->seq > cvg__vv_get(&r->vv, &d->origin)) {
        /* Applied earlier in this transaction (a page that repeats an op):
         * its block is still in memory, so write it to LMDB first. */
        int rc = cvg__txn_flush(t);
        if (rc != CVG_OK) {
            return cvg__replica_fail(r, rc, "cannot check a duplicate op");
        }
    }
    if (t->dups == NULL) {
        t->dups = cvg__calloc(1, sizeof *t->dups);
        if (t->dups == NULL) {
            return cvg__replica_fail(r, CVG_ENOMEM,
                                     "cannot check a duplicate op");
        }
    }
    const char *diff;
    int rc = cvg__op_lookup_same(t->dups, &r->store, t->mt, op, &diff);
    char origin[33];
    cvg_replica_id_hex(&d->origin, origin);
    if (rc != CVG_OK) {
        /* The version vector says the op is here: the log must have it. */
        return cvg__replica_fail(
            r, rc == CVG_ENOTFOUND ? CVG_ECORRUPT : rc,
            "op %s:%llu is counted as applied but cannot be read: %s", origin,
            (unsigned long long)d->seq, cvg_strerror(rc));
    }
    if (diff != NULL) {
        return cvg__replica_fail(r, CVG_EEQUIVOCAL,
                                 "equivocation: op %s:%llu differs from the "
                                 "stored op with that dot (%s)",
                                 origin, (unsigned long long)d->seq, diff);
    }
    return CVG_DONE; /* already here */
}

int
cvg__txn_apply_remote(cvg_txn *t, const cvg__op *op, bool *conflict)
{
    *conflict = false;
    if (t == NULL || !t->write) {
        return CVG_EMISUSE;
    }
    if (t->failed) {
        return t->failed;
    }
    cvg_replica *r = t->r;
    const cvg_dot *d = &op->pub.dot;
    uint64_t have = cvg__vv_get(&t->vv, &d->origin);
    if (t->keeping &&
        (t->keep_left == 0 || cvg__id_cmp(&d->origin, &t->keep_origin) != 0)) {
        return CVG_EMISUSE; /* not an op of the kept block */
    }
    if (d->seq == 0) {
        return cvg__replica_fail(r, CVG_ECORRUPT, "op with seq 0");
    }
    if (d->seq <= have) {
        return check_duplicate(t, op);
    }
    if (cvg__id_cmp(&d->origin, &r->id) == 0) {
        /* Nobody else makes our ops: one we lack is forged or from a
         * replica that was restored from an older copy of this one. */
        return cvg__replica_fail(r, CVG_EFORGED,
                                 "an op in this replica's name (seq %llu, "
                                 "this replica is at %llu) that it never "
                                 "made",
                                 (unsigned long long)d->seq,
                                 (unsigned long long)have);
    }
    if (d->seq != have + 1) {
        return cvg__replica_fail(
            r, CVG_EGAP, "op seq %llu of an origin at seq %llu",
            (unsigned long long)d->seq, (unsigned long long)have);
    }
    if (!deps_met(&t->vv, op)) {
        return cvg__replica_fail(r, CVG_EGAP,
                                 "op seq %llu depends on ops not yet here",
                                 (unsigned long long)d->seq);
    }
    /* Any time is taken by default: refusing one would cut its origin off
     * until the wall clock caught up, since an origin's ops go in seq
     * order. A time far ahead moves this replica's clock only up to its
     * bound. */
    uint64_t clock = t->clock;
    bool ahead =
        cvg__hlc_receive(&clock, op->pub.hlc, r->opts.clock(r->opts.clock_ctx),
                         r->opts.max_clock_ahead_ms);
    if (ahead && r->opts.refuse_clock_ahead) {
        return cvg__replica_fail(
            r, CVG_ECLOCK,
            "op time %llu ms is more than %llu ms ahead of the local "
            "clock (refuse_clock_ahead is set)",
            (unsigned long long)cvg_hlc_millis(op->pub.hlc),
            (unsigned long long)r->opts.max_clock_ahead_ms);
    }
    uint32_t idx;
    bool added;
    size_t norigins = r->origins.n;
    int rc = cvg__origins_index(&r->origins, &d->origin, &idx, &added);
    if (rc == CVG_OK) {
        rc = cvg__apply(t, op, conflict);
        if (rc != CVG_OK && added) {
            cvg__origins_truncate(&r->origins, norigins);
        }
    }
    if (rc != CVG_OK) {
        return cvg__replica_fail(r, rc, "cannot apply a remote op: %s",
                                 cvg_strerror(rc));
    }
    if (t->keeping) {
        /* Its block is logged whole, as it came (cvg__txn_keep_end). */
        t->next_lsn++;
        t->n_ops++;
        t->keep_left--;
    } else {
        rc = cvg__txn_log(t, op);
    }
    if (rc == CVG_OK) {
        rc = cvg__txn_history_add(t, op);
    }
    if (rc == CVG_OK) {
        rc = cvg__txn_vv_raise(t, &d->origin, d->seq);
    }
    if (rc != CVG_OK) {
        t->failed = rc;
        return cvg__replica_fail(r, rc, "cannot log a remote op");
    }
    t->clock = clock;
    return CVG_OK;
}
