/*
 * Where a replica lives, as bytes to compare: the device, inode and birth
 * time of its directory, and the inode and birth time of its data file. A
 * copy (cp -r, a restored backup, a data file written over) is a new file:
 * a new inode, or, where a freed inode number was handed out again, a new
 * birth time; a rename keeps all of them. Birth times come from statx();
 * a file system without them gives 0 there, and the inodes alone decide.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <lmdb.h>
#include <sys/stat.h>

#include "oplog_int.h"

static uint64_t
birth_ns(const struct statx *x)
{
    if (!(x->stx_mask & STATX_BTIME)) {
        return 0;
    }
    return (uint64_t)x->stx_btime.tv_sec * 1000000000u + x->stx_btime.tv_nsec;
}

int
cvg__store_home(cvg__store *s, uint8_t out[CVG__HOME_BYTES])
{
    const char *dir = NULL;
    int fd = -1;
    struct statx d, f;
    unsigned mask = STATX_INO | STATX_BTIME;
    if (mdb_env_get_path(s->env, &dir) != 0 ||
        mdb_env_get_fd(s->env, &fd) != 0 ||
        statx(AT_FDCWD, dir, 0, mask, &d) != 0 ||
        statx(fd, "", AT_EMPTY_PATH, mask, &f) != 0) {
        return CVG_EIO;
    }
    cvg__put_be64(out, (uint64_t)s->dev);
    cvg__put_be64(out + 8, d.stx_ino);
    cvg__put_be64(out + 16, birth_ns(&d));
    cvg__put_be64(out + 24, f.stx_ino);
    cvg__put_be64(out + 32, birth_ns(&f));
    return CVG_OK;
}
