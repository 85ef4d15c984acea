/*
 * cvg_replica_compact(): the data file rewritten without its free pages.
 * The storage floor does the work (store_compact.c); no replica is opened
 * for it, since none may be open while the file is replaced.
 */
#include <stdio.h>
#include <string.h>

#include "replica_int.h"

int
cvg_replica_compact(const char *path, cvg_compact_report *out)
{
    if (out == NULL) {
        return CVG_EINVAL;
    }
    memset(out, 0, sizeof *out);
    if (path == NULL) {
        snprintf(out->problem, sizeof out->problem, "NULL path");
        return CVG_EINVAL;
    }
    return cvg__store_compact(path, out);
}
