/*
 * Conflicts met by ops from peers: register writes that meet concurrent
 * ones. apply.c keeps a record of each (with copies of its names and
 * values) while a page is applied; here the collection's strategy settles
 * them inside the page's own transaction, so a resolver's value is written
 * back as an op that commits with the page (one durable commit, and no
 * moment where the siblings are stored without their resolution); their
 * events fire once that commit is durable.
 */
#include "replica_int.h"

void
cvg__txn_collect_conflicts(cvg_txn *t)
{
    t->collect_conflicts = true;
}

static cvg_key
rec_key(const cvg__conflict_rec *c)
{
    cvg_key k = {c->names, c->names + c->clen + 1,
                 c->names + c->clen + c->klen + 2};
    return k;
}

static bool
all_equal(const cvg_value *v, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        if (cvg__value_cmp(&v[0], &v[i]) != 0) {
            return false;
        }
    }
    return true;
}

/* The register's values, into @p vals (on the heap when it holds more
 * than @p cap): however many siblings it has, the resolver sees them all. */
static int
read_siblings(cvg_txn *t, const cvg_key *key, cvg_value *stack, size_t cap,
              cvg_value **vals, size_t *n)
{
    *vals = stack;
    int rc = cvg_mvregister_get(t, key, stack, NULL, cap, n);
    if (rc != CVG_OK || *n <= cap) {
        return rc;
    }
    cvg_value *heap = cvg__calloc(*n, sizeof *heap);
    if (heap == NULL) {
        return CVG_ENOMEM;
    }
    size_t got;
    rc = cvg_mvregister_get(t, key, heap, NULL, *n, &got);
    if (rc != CVG_OK || got != *n) {
        cvg__free(heap);
        return rc != CVG_OK ? rc : CVG_ECORRUPT;
    }
    *vals = heap;
    return CVG_OK;
}

/* Resolve one multi-value conflict with the app's resolver, writing the
 * merged value back as an op that replaces the siblings. */
static int
resolve_one(cvg_txn *t, const cvg_collection_policy *p, cvg__conflict_rec *c)
{
    cvg_key key = rec_key(c);
    cvg_value stack[16], *vals;
    size_t n = 0;
    int rc = read_siblings(t, &key, stack, 16, &vals, &n);
    /* Resolved meanwhile, or all equal (resolving equal values on two
     * replicas would only make new siblings, forever). */
    if (rc != CVG_OK || n < 2 || all_equal(vals, n)) {
        if (vals != stack) {
            cvg__free(vals);
        }
        return rc == CVG_ENOTFOUND ? CVG_OK : rc;
    }
    cvg_value out = cvg_value_nil(), copy;
    int keep = p->resolver(p->resolver_ctx, &key, vals, n, &out);
    rc = keep != 0 ? CVG_OK : cvg__value_copy(&copy, &out);
    if (vals != stack) {
        cvg__free(vals); /* out may view them: copied first */
    }
    if (keep != 0 || rc != CVG_OK) {
        return rc; /* the app keeps the siblings */
    }
    rc = cvg_mvregister_set(t, &key, &copy, NULL);
    if (rc == CVG_OK) {
        cvg__value_free(&c->resolved);
        c->resolved = copy;
        c->siblings = 1;
    } else {
        cvg__value_free(&copy);
    }
    return rc;
}

/* For a multi-value register no resolver settled: what a read shows first
 * under the collection's strategy, and how many values it holds. */
static int
describe_siblings(cvg_txn *t, cvg__conflict_rec *c)
{
    if (c->type != CVG_TYPE_MVREGISTER || c->siblings != 0) {
        return CVG_OK;
    }
    uint32_t plen;
    cvg_key key = rec_key(c);
    int rc = cvg__key_prefix(t, &key, true, &plen);
    cvg__entry *e = NULL;
    if (rc == CVG_OK) {
        t->kbuf.p[plen] = CVG_TYPE_MVREGISTER;
        rc = cvg__txn_entry(t, plen + 1, plen, CVG_TYPE_MVREGISTER, &e);
    }
    if (rc != CVG_OK || !e->present) {
        return rc;
    }
    cvg_bytes coll = {(const uint8_t *)c->names, c->clen};
    const cvg__sibling *w = cvg__winner(t->r, coll, &e->u.r);
    c->siblings = (uint32_t)e->u.r.n;
    return w != NULL ? cvg__value_copy(&c->resolved, &w->value) : CVG_OK;
}

int
cvg__txn_settle_conflicts(cvg_txn *t, cvg__conflicts *out)
{
    cvg_replica *r = t->r;
    out->recs = NULL;
    out->n = 0;
    int rc = CVG_OK;
    for (size_t i = 0; rc == CVG_OK && i < t->nconflicts; i++) {
        cvg__conflict_rec *c = &t->conflicts[i];
        cvg_bytes coll = {(const uint8_t *)c->names, c->clen};
        const cvg_collection_policy *p = cvg__policy_for(r, coll);
        if (c->type == CVG_TYPE_MVREGISTER && p != NULL &&
            p->strategy == CVG_STRATEGY_RESOLVER && p->resolver != NULL) {
            rc = resolve_one(t, p, c);
        }
    }
    for (size_t i = 0; rc == CVG_OK && i < t->nconflicts; i++) {
        rc = describe_siblings(t, &t->conflicts[i]);
    }
    if (rc != CVG_OK) {
        return rc;
    }
    /* The records outlive the transaction: their events fire after it. */
    out->recs = t->conflicts;
    out->n = t->nconflicts;
    t->conflicts = NULL;
    t->nconflicts = t->capconflicts = 0;
    return CVG_OK;
}

void
cvg__conflicts_notify(cvg_replica *r, const cvg__conflicts *cs)
{
    for (size_t i = 0; r->opts.on_conflict != NULL && i < cs->n; i++) {
        const cvg__conflict_rec *c = &cs->recs[i];
        cvg_bytes coll = {(const uint8_t *)c->names, c->clen};
        const cvg_collection_policy *p = cvg__policy_for(r, coll);
        cvg_conflict ev = {
            .collection = coll,
            .key = {(const uint8_t *)c->names + c->clen + 1, c->klen},
            .field = {(const uint8_t *)c->names + c->clen + c->klen + 2,
                      c->flen},
            .type = c->type,
            .local = c->local,
            .remote = c->remote,
            .resolved = c->resolved,
            .strategy = p ? p->strategy : CVG_STRATEGY_LWW,
            .remote_dot = c->dot,
            .siblings = c->siblings,
        };
        r->opts.on_conflict(r->opts.conflict_ctx, &ev);
    }
}

void
cvg__conflicts_release(cvg__conflicts *c)
{
    cvg__conflicts_free(c->recs, c->n);
    c->recs = NULL;
    c->n = 0;
}
