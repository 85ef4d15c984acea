/*
 * Conflict strategies. A register keeps every write no later write replaced
 * (see crdt/register.c), so a strategy is only a rule for which sibling a read
 * returns: every replica with the same ops and the same rules returns the
 * same value, and changing a collection's strategy needs no migration.
 */
#include "replica_int.h"

int
cvg__policies_copy(cvg_replica *r, const cvg_replica_options *o)
{
    if (o->n_policies == 0) {
        return CVG_OK;
    }
    if (o->policies == NULL || o->n_policies > 4096) {
        return CVG_EINVAL;
    }
    r->policies = cvg__calloc(o->n_policies, sizeof *r->policies);
    if (r->policies == NULL) {
        return CVG_ENOMEM;
    }
    for (size_t i = 0; i < o->n_policies; i++) {
        const cvg_collection_policy *p = &o->policies[i];
        if (p->collection == NULL || p->collection[0] == '\0' ||
            (unsigned)p->strategy > CVG_STRATEGY_RESOLVER) {
            return CVG_EINVAL;
        }
        size_t len = strlen(p->collection);
        char *name = cvg__alloc(len + 1);
        if (name == NULL) {
            return CVG_ENOMEM;
        }
        memcpy(name, p->collection, len + 1);
        r->policies[i].collection = name;
        r->policies[i].len = len;
        r->policies[i].p = *p;
        r->policies[i].p.collection = name;
        r->n_policies = i + 1;
    }
    return CVG_OK;
}

void
cvg__policies_free(cvg_replica *r)
{
    for (size_t i = 0; i < r->n_policies; i++) {
        cvg__free(r->policies[i].collection);
    }
    cvg__free(r->policies);
    r->policies = NULL;
    r->n_policies = 0;
}

const cvg_collection_policy *
cvg__policy_for(const cvg_replica *r, cvg_bytes coll)
{
    /* Apps have a handful of collections: a scan beats a hash here. */
    for (size_t i = 0; i < r->n_policies; i++) {
        const cvg__policy *p = &r->policies[i];
        if (p->len == coll.len &&
            memcmp(p->collection, coll.data, p->len) == 0) {
            return &p->p;
        }
    }
    return NULL;
}

/* 1 if @p s is of the ranked replica's side that wins, else 0. */
static int
rank(const cvg_collection_policy *p, const cvg__sibling *s)
{
    bool ranked = cvg__id_cmp(&s->dot.origin, &p->priority_origin) == 0;
    return ranked == p->priority_wins;
}

const cvg__sibling *
cvg__winner(const cvg_replica *r, cvg_bytes coll, const cvg__reg *reg)
{
    const cvg_collection_policy *p = cvg__policy_for(r, coll);
    if (p == NULL || p->strategy != CVG_STRATEGY_PRIORITY) {
        return cvg__reg_winner(reg);
    }
    const cvg__sibling *best = NULL;
    for (size_t i = 0; i < reg->n; i++) {
        const cvg__sibling *s = &reg->s[i];
        if (best == NULL || rank(p, s) > rank(p, best)) {
            best = s;
            continue;
        }
        if (rank(p, s) < rank(p, best)) {
            continue;
        }
        /* Equal rank: LWW, the order every read uses. */
        if (cvg__sibling_lww_cmp(s, best) > 0) {
            best = s;
        }
    }
    return best;
}

void
cvg__conflicts_free(cvg__conflict_rec *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cvg__free(c[i].names);
        cvg__value_free(&c[i].local);
        cvg__value_free(&c[i].remote);
        cvg__value_free(&c[i].resolved);
    }
    cvg__free(c);
}
