/* Asserting shortcuts the replica tests share: each fails the test with
 * the error's name instead of returning it. */
#ifndef CVG_CHECKS_H
#define CVG_CHECKS_H

#include <stdint.h>

#include "converge.h"

/* The canonical text of the whole state (free with free()). */
char *cvg_test_state(cvg_replica *r);
/* The number of ops in the log. */
uint64_t cvg_test_op_count(cvg_replica *r);
/* Close *r if open and open @p dir again, relaxed and with a small map:
 * the convergence tests open replicas thousands of times. */
void cvg_test_reopen_fast(const char *dir, cvg_replica **r, uint64_t seed);

#endif
