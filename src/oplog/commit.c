/*
 * The one commit path. Every write transaction of the library ends in
 * cvg__store_commit() or cvg__store_write(), so that a full map, a full disk
 * and every LMDB code are met in one place.
 *
 * How a full map is handled: LMDB cannot grow a map while a transaction of
 * this process is open, and a transaction that hit MDB_MAP_FULL can only be
 * aborted. Writers therefore keep everything they write in memory until the
 * commit has succeeded (the replica's transaction cache, the deferred peer
 * records), and when the map fills the store abandons the transaction,
 * doubles the map (up to map_size_max), begins again and asks the writer to
 * write it all again (cvg__rewrite). That is only sound if nobody committed
 * in between, since the writer's data was read from the old snapshot: the
 * commit generation in meta tells, and a changed one is CVG_EBUSY (retry).
 *
 * A full disk is not a full map: LMDB's write() of a page (both modes
 * write through write(), see store.c) fails with ENOSPC, which is
 * CVG_ENOSPC and final; growing the map would not help.
 * LMDB turns a short write() into EIO ("filesystem full?"), so an I/O
 * error with the directory's file system all but full is that too.
 * The transaction is aborted whole, so what was committed before stays.
 */
#define _POSIX_C_SOURCE 200809L
#include <lmdb.h>
#include <stdio.h>
#include <sys/statvfs.h>

#include "oplog_int.h"

static int
fail(cvg__store *s, int rc, const char *msg)
{
    if (s->err != NULL && s->errlen > 0) {
        snprintf(s->err, s->errlen, "%s", msg);
    }
    return rc;
}

/* Below this many free bytes an I/O error is taken for a full disk: a
 * short write leaves less than the write that fell short. */
#define NEARLY_FULL ((uint64_t)1 << 20)

static int
classify(cvg__store *s, int rc)
{
    struct statvfs v;
    if (rc == CVG_EIO && s->path != NULL && statvfs(s->path, &v) == 0 &&
        (uint64_t)v.f_bavail * v.f_frsize < NEARLY_FULL) {
        return CVG_ENOSPC;
    }
    return rc;
}

/* A full disk met by LMDB's writes, said with the directory. */
static int
no_space(cvg__store *s)
{
    if (s->err != NULL && s->errlen > 0) {
        snprintf(s->err, s->errlen,
                 "no space left on the device holding '%s': nothing of this "
                 "transaction was stored",
                 s->path != NULL ? s->path : "?");
    }
    return CVG_ENOSPC;
}

int
cvg__store_regrow(cvg__store *s, cvg__store_txn **t, const cvg__rewrite *rw)
{
    for (;;) {
        cvg__store_abort(*t);
        *t = NULL;
        if (rw->readers_open) {
            char msg[160];
            snprintf(msg, sizeof msg,
                     "map full (%zu bytes) and read transactions are open, "
                     "so it cannot grow",
                     s->map_size);
            return fail(s, CVG_EFULL, msg);
        }
        int rc = cvg__store_grow(s);
        if (rc != CVG_OK) {
            char msg[160];
            snprintf(msg, sizeof msg,
                     "map full at its limit of %zu bytes (map_size_max)",
                     s->map_size);
            return fail(s, rc, msg);
        }
        rc = cvg__store_begin(s, true, t);
        if (rc != CVG_OK) {
            return fail(s, rc, "cannot begin a write transaction");
        }
        uint64_t gen = 0;
        rc = cvg__meta_get_u64(s, *t, "gen", &gen);
        if (rc == CVG_OK && gen != rw->gen) {
            rc = fail(s, CVG_EBUSY,
                      "another process wrote while the map grew; retry the "
                      "transaction");
        }
        if (rc == CVG_OK) {
            rc = rw->fn(rw->ctx, *t);
        }
        if (rc == CVG_OK) {
            return CVG_OK;
        }
        if (rc != CVG_EFULL) {
            cvg__store_abort(*t);
            *t = NULL;
            rc = classify(s, rc);
            return rc == CVG_ENOSPC ? no_space(s) : rc;
        }
    }
}

int
cvg__store_commit(cvg__store *s, cvg__store_txn **t, int rc,
                  const cvg__rewrite *rw)
{
    for (;;) {
        if (rc == CVG_OK) {
            /* The state records of the commit: its journal record, or a
             * checkpoint (journal.c). */
            rc = cvg__journal_seal(s, *t);
        }
        if (rc == CVG_OK) {
            cvg__store_txn *done = *t;
            rc = cvg__mdb_err(mdb_txn_commit(done));
            *t = NULL; /* committed or not, LMDB freed it */
            cvg__journal_end(s, done, rc == CVG_OK);
            if (rc == CVG_OK) {
                return CVG_OK;
            }
        }
        if (rc != CVG_EFULL || rw == NULL) {
            cvg__store_abort(*t);
            *t = NULL;
            rc = classify(s, rc);
            return rc == CVG_ENOSPC ? no_space(s) : rc;
        }
        rc = cvg__store_regrow(s, t, rw); /* CVG_EFULL from it is final */
        if (rc != CVG_OK) {
            return rc;
        }
    }
}

int
cvg__store_write(cvg__store *s, bool readers_open,
                 int (*fn)(void *ctx, cvg__store_txn *t), void *ctx)
{
    cvg__store_txn *t;
    int rc = cvg__store_begin(s, true, &t);
    if (rc != CVG_OK) {
        return rc;
    }
    uint64_t gen = 0;
    rc = cvg__meta_get_u64(s, t, "gen", &gen);
    if (rc == CVG_ENOTFOUND) {
        rc = CVG_OK; /* a replica being created has no generation yet */
    }
    if (rc == CVG_OK) {
        rc = fn(ctx, t);
    }
    /* What fn wrote is in its caller's memory still: it can write it
     * again. */
    cvg__rewrite rw = {fn, ctx, gen, readers_open};
    return cvg__store_commit(s, &t, rc, &rw);
}
