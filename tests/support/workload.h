/* A random workload over every type, for the convergence tests: a few
 * records and values, so replicas often write the same thing concurrently
 * (that is where merge bugs live), with the expected counter sums kept. */
#ifndef CVG_WORKLOAD_H
#define CVG_WORKLOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "converge.h"

#define CVG_WL_COLLS 2
#define CVG_WL_KEYS 2

typedef struct cvg_test_workload {
    uint64_t seed;
    uint64_t rng;
    int64_t sums[CVG_WL_COLLS][CVG_WL_KEYS];    /* committed deltas */
    int64_t pending[CVG_WL_COLLS][CVG_WL_KEYS]; /* of the open txn */
    bool deleted[CVG_WL_COLLS][CVG_WL_KEYS];    /* some delete happened */
} cvg_test_workload;

/* One transaction of 1 to 4 random ops on @p r; 1 in 8 is aborted. Fails
 * the test (with the seed) if a write fails. */
void cvg_test_random_txn(cvg_test_workload *w, cvg_replica *r);

/* Every counter no delete touched holds the sum of all its deltas. */
void cvg_test_check_counters(const cvg_test_workload *w, cvg_replica *r);

#endif
