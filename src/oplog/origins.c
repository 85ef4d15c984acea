/*
 * The origin table: every replica id this replica has seen, numbered from 0
 * in the order first seen, so state records store a small index instead of
 * 16 bytes. An open-addressing hash finds an id's index; the codec reuses the
 * table for the per-block origin dictionaries.
 */
#include "../hash.h"
#include "oplog_int.h"

/* Indexes are stored in the slots as index + 1 in a uint32_t (0 = empty). */
#define ORIGINS_MAX (UINT32_MAX - 1u)

/* Keyed (hash.h): a peer chooses the ids it sends, and ids equal in the
 * bytes an unkeyed hash reads would share one probe chain. */
static size_t
id_hash(const cvg_replica_id *id)
{
    return (size_t)cvg__hash(id->bytes, sizeof id->bytes);
}

/* The slot holding @p id, or the empty slot where it would go. nslots is a
 * power of two and the table is at most half full, so the probe ends. */
static size_t
probe(const cvg_replica_id *ids, const uint32_t *slots, size_t nslots,
      const cvg_replica_id *id)
{
    size_t mask = nslots - 1;
    size_t i = id_hash(id) & mask;
    while (slots[i] != 0) {
        if (memcmp(ids[slots[i] - 1].bytes, id->bytes, 16) == 0) {
            break;
        }
        i = (i + 1) & mask;
    }
    return i;
}

/* Fill @p slots (zeroed, @p nslots of them) with the first @p n ids. */
static void
fill_slots(const cvg_replica_id *ids, size_t n, uint32_t *slots, size_t nslots)
{
    for (size_t k = 0; k < n; k++) {
        slots[probe(ids, slots, nslots, &ids[k])] = (uint32_t)(k + 1);
    }
}

int
cvg__origins_find(const cvg__origins *o, const cvg_replica_id *id,
                  uint32_t *idx_out)
{
    *idx_out = 0;
    if (o->nslots == 0) {
        return CVG_ENOTFOUND;
    }
    /* Index 0 is the replica itself (or a block's own origin), which most
     * lookups ask for: 16 bytes compared instead of a keyed hash. */
    if (o->n > 0 && memcmp(o->ids[0].bytes, id->bytes, 16) == 0) {
        return CVG_OK;
    }
    size_t i = probe(o->ids, o->slots, o->nslots, id);
    if (o->slots[i] == 0) {
        return CVG_ENOTFOUND;
    }
    *idx_out = o->slots[i] - 1;
    return CVG_OK;
}

int
cvg__origins_index(cvg__origins *o, const cvg_replica_id *id, uint32_t *idx_out,
                   bool *added)
{
    *added = false;
    if (cvg__origins_find(o, id, idx_out) == CVG_OK) {
        return CVG_OK;
    }
    if (o->n >= ORIGINS_MAX) {
        return CVG_ELIMIT;
    }
    /* Make room for everything first, so that a failure changes nothing. */
    void *ids = o->ids;
    int rc = cvg__grow(&ids, &o->cap, o->n + 1, sizeof *o->ids);
    o->ids = ids;
    if (rc != CVG_OK) {
        return rc;
    }
    /* Keep the load at or below one half: probes stay short. */
    if ((o->n + 1) * 2 > o->nslots) {
        size_t nslots = o->nslots ? o->nslots * 2 : 16;
        uint32_t *slots = cvg__calloc(nslots, sizeof *slots);
        if (slots == NULL) {
            return CVG_ENOMEM;
        }
        fill_slots(o->ids, o->n, slots, nslots);
        cvg__free(o->slots);
        o->slots = slots;
        o->nslots = nslots;
    }
    o->ids[o->n] = *id;
    o->slots[probe(o->ids, o->slots, o->nslots, id)] = (uint32_t)(o->n + 1);
    *idx_out = (uint32_t)o->n;
    o->n++;
    *added = true;
    return CVG_OK;
}

const cvg_replica_id *
cvg__origins_id(const cvg__origins *o, uint32_t idx)
{
    if (idx >= o->n) {
        return NULL;
    }
    return &o->ids[idx];
}

void
cvg__origins_truncate(cvg__origins *o, size_t n)
{
    if (n >= o->n) {
        return;
    }
    o->n = n;
    /* Deleting from a linear-probing table would break the probe chains of
     * the ids that remain; rebuilding in place needs no allocation, so it
     * cannot fail. */
    if (o->nslots > 0) {
        memset(o->slots, 0, o->nslots * sizeof *o->slots);
        fill_slots(o->ids, o->n, o->slots, o->nslots);
    }
}

void
cvg__origins_destroy(cvg__origins *o)
{
    if (o == NULL) {
        return;
    }
    cvg__free(o->ids);
    cvg__free(o->slots);
    memset(o, 0, sizeof *o);
}
