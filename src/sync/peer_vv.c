/*
 * The peer's version vector as a session holds it (peer_vv.h): a lookup is
 * a binary search of the few differences, then of our vector as it was
 * when the peer's was taken, then of what the peer sent since, each one
 * O(log n); nothing is merged entry by entry.
 */
#include "peer_vv.h"

static const cvg_dot *
find_diff(const cvg__peer_vv *p, const cvg_replica_id *origin)
{
    bool found;
    size_t i =
        cvg__id_search(p->diff, p->ndiff, sizeof *p->diff, origin, &found);
    return found ? &p->diff[i] : NULL;
}

uint64_t
cvg__peer_vv_get(const cvg__peer_vv *p, const cvg_replica_id *origin)
{
    const cvg_dot *d = find_diff(p, origin);
    uint64_t had = d != NULL ? d->seq : cvg__vv_get(&p->base, origin);
    return CVG__MAX(had, cvg__vv_get(&p->shown, origin));
}

bool
cvg__peer_vv_contains(const cvg__peer_vv *p, const cvg_dot *d)
{
    return d->seq <= cvg__peer_vv_get(p, &d->origin);
}

int
cvg__peer_vv_show(cvg__peer_vv *p, const cvg_dot *d)
{
    if (d->seq <= cvg__vv_get(&p->shown, &d->origin)) {
        return CVG_OK;
    }
    return cvg__vv_set(&p->shown, &d->origin, d->seq);
}

void
cvg__peer_vv_take(cvg__peer_vv *p, cvg__vv *base, cvg_dot *diff, size_t ndiff)
{
    cvg__vv_destroy(&p->base);
    cvg__free(p->diff);
    p->base = *base;
    memset(base, 0, sizeof *base);
    p->diff = diff;
    p->ndiff = ndiff;
}

bool
cvg__peer_vv_has_all(const cvg__peer_vv *p, const cvg__vv *ours)
{
    /* base and ours are sorted alike: walk them together, and look up
     * only the differences and what the peer sent. */
    size_t j = 0;
    for (size_t i = 0; i < ours->n; i++) {
        const cvg_dot *e = &ours->e[i];
        while (j < p->base.n &&
               cvg__id_cmp(&p->base.e[j].origin, &e->origin) < 0) {
            j++;
        }
        uint64_t base =
            j < p->base.n && cvg__id_eq(&p->base.e[j].origin, &e->origin)
                ? p->base.e[j].seq
                : 0;
        if (base >= e->seq && p->ndiff == 0) {
            continue;
        }
        if (cvg__peer_vv_get(p, &e->origin) < e->seq) {
            return false;
        }
    }
    return true;
}

void
cvg__peer_vv_destroy(cvg__peer_vv *p)
{
    cvg__vv_destroy(&p->base);
    cvg__free(p->diff);
    cvg__vv_destroy(&p->shown);
    memset(p, 0, sizeof *p);
}
