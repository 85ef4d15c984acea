/*
 * The peer's version vector, as a session holds it: our own vector at the
 * moment the peer's was taken, the entries where the peer's differs, and
 * what the peer has shown since (the ops it sent us). Peers that sync
 * often differ in few origins, so taking a peer's vector costs a copy of
 * ours and a few entries, not a merge of two vectors entry by entry.
 */
#ifndef CVG_PEER_VV_H
#define CVG_PEER_VV_H

#include "sync_int.h"

typedef struct cvg__peer_vv {
    cvg__vv base;  /* ours when the peer's vector was taken */
    cvg_dot *diff; /* sorted by origin: the peer's seq where it differs
                       from base (0: the peer has none of that origin) */
    size_t ndiff;
    cvg__vv shown; /* the highest seq of each origin the peer sent since */
} cvg__peer_vv;

/* The peer's seq of @p origin (0 before its vector is taken). */
uint64_t cvg__peer_vv_get(const cvg__peer_vv *p, const cvg_replica_id *origin);
bool cvg__peer_vv_contains(const cvg__peer_vv *p, const cvg_dot *d);
/* The peer showed it has @p d (it sent us that op). */
int cvg__peer_vv_show(cvg__peer_vv *p, const cvg_dot *d);
/* Take the peer's vector: @p base and @p diff (sorted, as above) become
 * @p p's; what it showed stays. */
void cvg__peer_vv_take(cvg__peer_vv *p, cvg__vv *base, cvg_dot *diff,
                       size_t ndiff);
/* Whether the peer has every op of @p ours: one walk of @p ours. */
bool cvg__peer_vv_has_all(const cvg__peer_vv *p, const cvg__vv *ours);
void cvg__peer_vv_destroy(cvg__peer_vv *p);

#endif /* CVG_PEER_VV_H */
