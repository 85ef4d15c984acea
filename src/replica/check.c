/*
 * cvg_replica_check(): the full check of a replica directory (see
 * store_check.c for what it reads). The pages are walked by hand before the
 * replica is opened, since the open itself reads pages through LMDB; only
 * then is it opened read-only and its records checked in one transaction.
 *
 * cvg_replica_verify(): the same on a replica this process holds open. Its
 * open read pages through LMDB already; the walk of the snapshot the check
 * pins still comes before any record is read.
 */
#include <stdio.h>
#include <string.h>

#include "replica_int.h"

int
cvg_replica_check(const char *path, cvg_check_report *out)
{
    if (out == NULL) {
        return CVG_EINVAL;
    }
    memset(out, 0, sizeof *out);
    if (path == NULL) {
        snprintf(out->problem, sizeof out->problem, "NULL path");
        return CVG_EINVAL;
    }
    int rc = cvg__store_check_file(path, out);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.read_only = true;
    cvg_replica *r;
    rc = cvg_replica_open(path, &o, &r);
    if (rc != CVG_OK) {
        snprintf(out->problem, sizeof out->problem, "%s",
                 cvg_replica_errmsg(NULL));
        return rc;
    }
    /* Keep the walk's counts: the store check walks again only if a
     * commit came between. */
    rc = cvg__store_check(&r->store, out);
    cvg_replica_close(r);
    return rc;
}

int
cvg_replica_verify(cvg_replica *r, cvg_check_report *out)
{
    if (out == NULL) {
        return CVG_EINVAL;
    }
    memset(out, 0, sizeof *out);
    if (r == NULL) {
        snprintf(out->problem, sizeof out->problem, "NULL replica");
        return CVG_EINVAL;
    }
    if (r->writer != NULL) {
        snprintf(out->problem, sizeof out->problem,
                 "a write transaction is open on this handle");
        return CVG_EBUSY;
    }
    /* No snapshot walked yet: the check walks the one it pins. */
    return cvg__store_check(&r->store, out);
}
