/*
 * Compaction: a copy of the data file without its free pages, put in its
 * place. LMDB never shrinks its file: pages freed by copy-on-write are
 * reused, not returned, so a replica whose records were rewritten many
 * times holds a file well above what its trees use.
 *
 * How it runs, holding what keeps everyone else out:
 *   1. this process must not have the replica open (store_registry.c);
 *   2. an exclusive flock() on lock.mdb, taken without waiting: every open
 *      holds a shared one for as long as it is open (cvg__store_open), so
 *      this fails (CVG_EBUSY) while any handle of any process is open, and
 *      an open that comes while it is held waits until the compaction is
 *      over (LMDB's own locks on that file are fcntl() locks, which flock()
 *      does not meet);
 *   3. the page walk of `converge check` (store_check.c), so LMDB never
 *      reads a damaged page here;
 *   4. LMDB's compacting copy (mdb_env_copyfd2 with MDB_CP_COMPACT, which
 *      writes each tree's pages in order and no free ones) into
 *      data.mdb.compact, synced, its meta pages checked as an open checks
 *      them;
 *   5. rename() over data.mdb, and a sync of the directory.
 * A crash before the rename leaves the old file whole (and a stale copy,
 * which nothing opens and the next compaction replaces); after it, the
 * copy is whole on disk. Records are copied as they are, checksums and
 * all (a checksum covers a record's key and value, not where it lies).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lmdb_meta.h"
#include "oplog_int.h"

/* Say why in @p out: @p what, then @p detail if any. */
static int
fail(cvg_compact_report *out, int rc, const char *what, const char *detail)
{
    bool both = what[0] != '\0' && detail != NULL;
    snprintf(out->problem, sizeof out->problem, "%s%s%s", what,
             both ? ": " : "", detail != NULL ? detail : "");
    return rc;
}

static int
errno_code(int e)
{
    return e == ENOSPC || e == EDQUOT ? CVG_ENOSPC : cvg__mdb_err(e);
}

/* Whether the file at @p fd is as an open would take it. */
static int
check_copy(int fd, cvg_compact_report *out)
{
    cvg__lmdb_meta m;
    bool empty = false;
    char why[200];
    int rc = cvg__lmdb_check_file(fd, &m, &empty, why, sizeof why);
    if (rc == CVG_OK && empty) {
        return fail(out, CVG_EIO, "", "the copy came out empty");
    }
    return rc == CVG_OK ? CVG_OK
                        : fail(out, rc, "the copy does not check", why);
}

/* Steps 3 to 5, with the lock held. */
static int
copy_and_replace(const char *dir, cvg_compact_report *out)
{
    char data[4096], tmp[4096];
    snprintf(data, sizeof data, "%s/data.mdb", dir);
    snprintf(tmp, sizeof tmp, "%s/data.mdb.compact", dir);
    struct stat st;
    if (stat(data, &st) != 0) {
        int e = errno;
        return fail(out, e == ENOENT ? CVG_ENOTFOUND : errno_code(e),
                    "cannot open the data file", strerror(e));
    }
    out->bytes_before = (uint64_t)st.st_size;
    cvg_check_report walk;
    int rc = cvg__store_check_file(dir, &walk);
    if (rc != CVG_OK) {
        return fail(out, rc, "", walk.problem);
    }
    out->live_pages = walk.pages;

    MDB_env *env = NULL;
    rc = cvg__mdb_err(mdb_env_create(&env));
    if (rc == CVG_OK) {
        size_t map = (size_t)st.st_size;
        rc = cvg__mdb_err(mdb_env_set_mapsize(env, map > 0 ? map : 1));
    }
    if (rc == CVG_OK) {
        rc = cvg__mdb_err(mdb_env_open(
            env, dir, MDB_RDONLY | MDB_NOTLS | MDB_NORDAHEAD, 0600));
    }
    if (rc != CVG_OK) {
        if (env != NULL) {
            mdb_env_close(env);
        }
        return fail(out, rc, "cannot open the data file", cvg_strerror(rc));
    }
    (void)unlink(tmp); /* a copy left by a compaction that died */
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        mdb_env_close(env);
        return fail(out, errno_code(e), "cannot create the copy", strerror(e));
    }
    int mrc = mdb_env_copyfd2(env, fd, MDB_CP_COMPACT);
    mdb_env_close(env);
    rc = cvg__mdb_err(mrc);
    if (rc != CVG_OK) {
        fail(out, rc, "the copy failed", cvg_strerror(rc));
    } else if (fsync(fd) != 0) {
        rc = fail(out, errno_code(errno), "cannot sync the copy",
                  strerror(errno));
    } else {
        rc = check_copy(fd, out);
    }
    if (rc == CVG_OK && fstat(fd, &st) == 0) {
        out->bytes_after = (uint64_t)st.st_size;
    }
    close(fd);
    if (rc == CVG_OK && rename(tmp, data) != 0) {
        rc = fail(out, errno_code(errno), "cannot put the copy in place",
                  strerror(errno));
    }
    if (rc != CVG_OK) {
        (void)unlink(tmp); /* the data file is as it was */
        return rc;
    }
    /* The rename is on disk only once the directory is. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        rc = fail(out, errno_code(errno),
                  "the copy is in place but the directory cannot be synced: "
                  "",
                  strerror(errno));
    }
    if (dfd >= 0) {
        close(dfd);
    }
    return rc;
}

int
cvg__store_compact(const char *dir, cvg_compact_report *out)
{
    memset(out, 0, sizeof *out);
    char lock[4096];
    if ((size_t)snprintf(lock, sizeof lock, "%s/lock.mdb", dir) >=
        sizeof lock - 16) {
        return fail(out, CVG_EINVAL, "", "path too long");
    }
    struct stat st;
    if (stat(dir, &st) != 0) {
        int e = errno;
        return fail(out, e == ENOENT ? CVG_ENOTFOUND : errno_code(e),
                    "cannot open the replica directory", strerror(e));
    }
    int rc = cvg__store_claim(st.st_dev, st.st_ino);
    if (rc != CVG_OK) {
        return fail(out, rc, "",
                    rc == CVG_EBUSY ? "this process has the replica open"
                                    : "out of memory");
    }
    int fd = open(lock, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        cvg__store_release(st.st_dev, st.st_ino);
        return fail(out, e == ENOENT ? CVG_ENOTFOUND : errno_code(e),
                    "cannot open the lock file", strerror(e));
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        rc = e == EWOULDBLOCK ? fail(out, CVG_EBUSY, "",
                                     "another handle has the replica open")
                              : fail(out, errno_code(e),
                                     "cannot lock the replica", strerror(e));
    } else {
        rc = copy_and_replace(dir, out);
    }
    close(fd); /* and with it the lock */
    cvg__store_release(st.st_dev, st.st_ino);
    return rc;
}
