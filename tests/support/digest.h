/* A canonical text of a replica's whole state, for comparing replicas. */
#ifndef CVG_DIGEST_H
#define CVG_DIGEST_H

#include "converge.h"

/* Allocates *out (free with free()). CVG_OK or the first error. */
int cvg_test_digest(cvg_replica *r, char **out);

#endif
