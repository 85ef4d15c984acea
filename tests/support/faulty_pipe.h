/* Run a sync session between two replicas over an in-memory link that
 * drops, duplicates, reorders, delays and cuts messages, from a seed. */
#ifndef CVG_FAULTY_PIPE_H
#define CVG_FAULTY_PIPE_H

#include <stdint.h>

#include "converge.h"

typedef struct cvg_test_faults {
    unsigned drop_pct;      /* a message is lost */
    unsigned dup_pct;       /* a message arrives twice */
    unsigned reorder_pct;   /* a later message overtakes it */
    unsigned cut_pct;       /* only a prefix arrives */
    unsigned max_steps;     /* deliveries before the link goes down */
} cvg_test_faults;

typedef struct cvg_test_link_stats {
    unsigned delivered, dropped, duplicated, reordered, cut;
    int error_a, error_b; /* how each session ended (CVG_OK if clean) */
    bool done;            /* both sessions reported done */
} cvg_test_link_stats;

/* One session each side, run until both are quiet, the step budget is
 * spent, or a side fails. Never fails the test itself: the faults are
 * allowed to break the session; the caller checks the replicas. */
void cvg_test_faulty_sync(cvg_replica *a, cvg_replica *b, uint64_t *rng,
                          const cvg_test_faults *f, cvg_test_link_stats *st);

#endif
