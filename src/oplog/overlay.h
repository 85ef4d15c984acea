/*
 * The state overlay: state records newer than the last checkpoint, kept in
 * memory per store handle (state_store.c explains the scheme). Each key
 * holds its values with the id of the LMDB transaction that wrote each, so
 * that every open transaction sees the values of its own snapshot:
 * a transaction of checkpoint lo and snapshot hi sees, for a key, the
 * newest value with lo < id <= hi, and the state table below otherwise.
 *
 * Point lookups go through a hash table; ordered walks through an array of
 * the keys in order, into which the keys added since the last walk are
 * merged when a walk needs it (a write transaction adds its keys at its
 * flushes and commit, between which its walks find the array in order).
 * Nothing here talks to LMDB.
 */
#ifndef CVG_OVERLAY_H
#define CVG_OVERLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One value of a key: NULL val is a deletion. */
typedef struct cvg__ov_version {
    uint64_t id;
    uint8_t *val;
    uint32_t len;
} cvg__ov_version;

typedef struct cvg__ov_node {
    uint32_t klen;
    uint32_t plen; /* its field's prefix (cvg__ov_put), 0 for none */
    uint32_t nv, capv;
    bool pending; /* listed in cvg__overlay.pending */
    uint64_t hash;
    cvg__ov_version *v; /* ascending id */
    uint8_t key[];      /* in the node: one cache miss less per search step */
} cvg__ov_node;

typedef struct cvg__overlay {
    cvg__ov_node **slots; /* open addressing, NULL for empty */
    size_t nslots;
    size_t n;              /* nodes */
    cvg__ov_node **sorted; /* nodes in key order ... */
    size_t nsorted, capsorted;
    cvg__ov_node **fresh; /* ... but for these, added since */
    size_t nfresh, capfresh;
    /* A node for each field prefix among the nodes, and how many nodes
     * the field has (fcount, by slot): whether the overlay holds anything
     * of a field, and which node when it is one, without a search in
     * order. */
    cvg__ov_node **fslots;
    uint32_t *fcount;
    size_t nfslots, nfields;
    /* The nodes given a value under pending_id, the id of the write
     * transaction open now (0: none): its journal record, or its undo. */
    cvg__ov_node **pending;
    size_t npending, cappending;
    uint64_t pending_id;
    size_t bytes; /* keys and values held, roughly */
    size_t versions;
    size_t empty; /* nodes left with no value (freed by a prune) */
} cvg__overlay;

void cvg__ov_init(cvg__overlay *ov);
void cvg__ov_destroy(cvg__overlay *ov);

/* Give @p key the value @p val (NULL: deleted) under @p id, replacing a
 * value of the same id. Ids come in ascending order per key. @p plen is
 * the length of the key's field prefix (0: none). A value under
 * ov->pending_id lists the node in ov->pending. CVG_ENOMEM leaves the key
 * as it was. */
int cvg__ov_put(cvg__overlay *ov, const uint8_t *key, uint32_t klen,
                uint32_t plen, uint64_t id, const uint8_t *val, uint32_t len,
                bool del);

/* How many nodes the overlay holds of the field @p prefix (capped at 2:
 * "more than one"), and in *one the node when it is one. */
unsigned cvg__ov_field_nodes(const cvg__overlay *ov, const uint8_t *prefix,
                             uint32_t plen, const cvg__ov_node **one);

/* The node of @p key, or NULL. */
cvg__ov_node *cvg__ov_find(cvg__overlay *ov, const uint8_t *key, uint32_t klen);

/* LMDB's order of keys: bytes, then the shorter first. */
int cvg__ov_key_cmp(const uint8_t *a, size_t alen, const uint8_t *b,
                    size_t blen);
/* The same for two nodes, as qsort() takes it (cvg__ov_node **). */
int cvg__ov_node_cmp(const void *a, const void *b);

/* The newest value of @p nd with lo < id <= hi, or NULL. */
const cvg__ov_version *cvg__ov_visible(const cvg__ov_node *nd, uint64_t lo,
                                       uint64_t hi);

/* The first node, in key order, whose key is >= @p key (> with @p after),
 * or NULL in *out. CVG_ENOMEM if putting the keys in order failed. */
int cvg__ov_seek(cvg__overlay *ov, const uint8_t *key, uint32_t klen,
                 bool after, cvg__ov_node **out);
/* The same as an index into ov->sorted (ov->nsorted when there is none). */
int cvg__ov_seek_at(cvg__overlay *ov, const uint8_t *key, uint32_t klen,
                    bool after, size_t *at);

/* Forget every value of ov->pending_id (its transaction did not commit)
 * and end the pending list. */
void cvg__ov_drop_pending(cvg__overlay *ov);
/* The pending transaction committed: its values stay. */
void cvg__ov_keep_pending(cvg__overlay *ov);

/* Forget the values with id <= @p upto, which no open transaction sees
 * any more, and the keys left with none. */
void cvg__ov_prune(cvg__overlay *ov, uint64_t upto);

/* Whether every pending key is new here: it has no value but the pending
 * one. */
bool cvg__ov_pending_all_new(const cvg__overlay *ov);

#endif /* CVG_OVERLAY_H */
