/*
 * The LMDB environment of one replica: opening and creating it, the named
 * databases, transactions that adopt a map grown elsewhere, growing the map,
 * meta records and the origin table. LMDB's codes are translated here and
 * never reach a caller.
 *
 * Before LMDB maps the data file, the store opens it itself and checks it
 * (lmdb_meta.c): a truncated or damaged file is CVG_ECORRUPT, not a SIGBUS
 * or an abort inside LMDB.
 *
 * Neither mode maps the file writable (MDB_WRITEMAP): a page of a shared
 * writable map with no disk block behind it faults (SIGBUS) when the disk
 * is full, and with it LMDB sizes the file to each process's map with
 * ftruncate, shrinking it under another process whose map is larger.
 * Through write() a full disk is an error code (CVG_ENOSPC). The lock file
 * is a shared map in any case: its blocks are allocated before LMDB
 * touches it.
 *
 * Every open holds a shared flock() on lock.mdb until it closes, taken
 * before the data file is opened, so that a compaction (which replaces
 * the data file, store_compact.c) runs only while no handle is open, and
 * an open that comes during one waits for it.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checksum.h"
#include "lmdb_meta.h"
#include "oplog_int.h"

_Static_assert(sizeof(MDB_dbi) == sizeof(unsigned int),
               "the store keeps database handles as unsigned int");

#define DEFAULT_MAP_SIZE ((size_t)64 << 20)
#define DEFAULT_MAP_MAX ((size_t)16 << 30)
/* Adoptions of a map grown elsewhere at one begin before CVG_EBUSY. */
#define RESIZE_TRIES 64

int
cvg__mdb_err(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return CVG_OK;
    case MDB_NOTFOUND:
        return CVG_ENOTFOUND;
    case MDB_MAP_FULL:
    case MDB_TXN_FULL:
    case MDB_PAGE_FULL:
        return CVG_EFULL;
    case ENOSPC:
    case EDQUOT:
        return CVG_ENOSPC;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_BAD_DBI:
    case MDB_INCOMPATIBLE:
        return CVG_ECORRUPT;
    case MDB_VERSION_MISMATCH:
        return CVG_EVERSION;
    case MDB_READERS_FULL:
    case MDB_DBS_FULL:
    case MDB_TLS_FULL:
    case MDB_CURSOR_FULL:
        return CVG_ELIMIT;
    case MDB_MAP_RESIZED: /* grown elsewhere, again and again: retry */
        return CVG_EBUSY;
    case MDB_BAD_TXN:
    case MDB_BAD_RSLOT:
    case MDB_BAD_VALSIZE:
        return CVG_EMISUSE;
    case ENOMEM:
        return CVG_ENOMEM;
    case EACCES:
    case EPERM:
    case EROFS:
        return CVG_EACCES;
    case ENOENT:
        return CVG_ENOTFOUND;
    case EINVAL:
        return CVG_EINVAL;
    case EBUSY:
    case EAGAIN:
        return CVG_EBUSY;
    default:
        return CVG_EIO;
    }
}

static int
open_dbs(cvg__store *s, cvg__store_txn *t, unsigned flags)
{
    static const char *names[] = {"meta",    "log",   "dots", "state",
                                  "origins", "peers", "queue"};
    MDB_dbi *dbis[] = {&s->meta,    &s->log,   &s->dots, &s->state,
                       &s->origins, &s->peers, &s->queue};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int rc = mdb_dbi_open(t, names[i], flags, dbis[i]);
        if (rc != MDB_SUCCESS) {
            return rc;
        }
    }
    /* Added in 0.2: a read-only open of a replica made before has none
     * (and nothing signed to read); a writable open creates it. */
    int rc = mdb_dbi_open(t, "history", flags, &s->history);
    s->has_history = rc == MDB_SUCCESS;
    if (rc != MDB_SUCCESS &&
        !(rc == MDB_NOTFOUND && (flags & MDB_CREATE) == 0)) {
        return rc;
    }
    /* Added in format 4, the same way (journal.c). */
    rc = mdb_dbi_open(t, "journal", flags, &s->journal);
    s->has_journal = rc == MDB_SUCCESS;
    return rc == MDB_NOTFOUND && (flags & MDB_CREATE) == 0 ? MDB_SUCCESS : rc;
}

/* The directory: made if missing and allowed, refused if it is not one,
 * and, when nothing may be created, it must already hold a replica. */
static int
check_dir(const char *path, const cvg_replica_options *o, char *err,
          size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno != ENOENT || o->no_create || o->read_only) {
            snprintf(err, errlen, "cannot open replica directory '%s'", path);
            return errno == ENOENT ? CVG_ENOTFOUND : cvg__mdb_err(errno);
        }
        /* EEXIST: another thread created it meanwhile. */
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create replica directory '%s'", path);
            return cvg__mdb_err(errno);
        }
    } else if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "'%s' is not a directory", path);
        return CVG_EINVAL;
    } else if (o->no_create || o->read_only) {
        /* An existing directory is not yet a replica: without its data
         * file, opening would create one. */
        char file[4096];
        snprintf(file, sizeof file, "%s/data.mdb", path);
        if (stat(file, &st) != 0) {
            snprintf(err, errlen, "no replica in '%s'", path);
            return CVG_ENOTFOUND;
        }
    }
    return CVG_OK;
}

/* One handle per directory per process, known by device and inode, so
 * another path to it is caught too. */
static int
claim_dir(cvg__store *s, const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "cannot open replica directory '%s'", path);
        return cvg__mdb_err(errno);
    }
    int rc = cvg__store_claim(st.st_dev, st.st_ino);
    if (rc == CVG_EBUSY) {
        snprintf(err, errlen,
                 "replica '%s' is already open in this process: share that "
                 "handle",
                 path);
    }
    if (rc != CVG_OK) {
        return rc;
    }
    s->claimed = true;
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    return CVG_OK;
}

/* The bytes LMDB makes lock.mdb for 126 readers: 125 reader slots of 64
 * bytes and the 192-byte header. */
#define LOCK_FILE_BYTES 8192

/* Give the file's first @p bytes disk blocks. CVG_ENOSPC on a full disk;
 * a file system that cannot allocate ahead (EOPNOTSUPP even in glibc's
 * fallback) is let be. */
static int
allocate(int fd, uint64_t bytes)
{
    int rc = posix_fallocate(fd, 0, (off_t)bytes);
    if (rc == 0 || rc == EOPNOTSUPP || rc == EINVAL) {
        return CVG_OK;
    }
    return cvg__mdb_err(rc);
}

static int
no_space(cvg__store *s, uint64_t bytes)
{
    if (s->err != NULL && s->errlen > 0) {
        snprintf(s->err, s->errlen,
                 "no space left on the device holding '%s' (for the lock "
                 "file's %llu bytes)",
                 s->path, (unsigned long long)bytes);
    }
    return CVG_ENOSPC;
}

/* Set the map to @p want bytes (0: as another process left it), with no
 * transaction of this process open. */
static int
resize_map(cvg__store *s, size_t want)
{
    int rc = cvg__mdb_err(mdb_env_set_mapsize(s->env, want));
    MDB_envinfo info;
    if (mdb_env_info(s->env, &info) == MDB_SUCCESS) {
        s->map_size = info.me_mapsize;
    }
    return rc;
}

/* Hold a shared flock() on lock.mdb (see the top), waiting while a
 * compaction holds it. A read-only open that can neither open nor make
 * the file goes on without (then LMDB cannot open either, and says so). */
static int
hold_open_lock(cvg__store *s, const char *path, const cvg_replica_options *o,
               char *err, size_t errlen)
{
    char file[4096];
    snprintf(file, sizeof file, "%s/lock.mdb", path);
    s->lock_fd = open(file, O_RDONLY | O_CLOEXEC);
    if (s->lock_fd < 0 && errno == ENOENT) {
        s->lock_fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    }
    if (s->lock_fd < 0) {
        int e = errno;
        if (o->read_only) {
            return CVG_OK;
        }
        if (e == ENOSPC) {
            return no_space(s, LOCK_FILE_BYTES);
        }
        snprintf(err, errlen, "cannot open '%s': %s", file, strerror(e));
        return cvg__mdb_err(e);
    }
    int rc;
    do {
        rc = flock(s->lock_fd, LOCK_SH);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        int e = errno;
        snprintf(err, errlen, "cannot lock '%s': %s", file, strerror(e));
        return cvg__mdb_err(e);
    }
    return CVG_OK;
}

/* Open the data file and check it before LMDB maps it. */
static int
open_data_file(cvg__store *s, const char *path, const cvg_replica_options *o,
               char *err, size_t errlen)
{
    char file[4096];
    snprintf(file, sizeof file, "%s/data.mdb", path);
    bool created = false;
    s->fd = open(file, (o->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (s->fd < 0 && errno == ENOENT && !o->read_only) {
        s->fd = open(file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        created = s->fd >= 0;
        if (s->fd < 0 && errno == EEXIST) { /* another process made it */
            s->fd = open(file, O_RDWR | O_CLOEXEC);
        }
    }
    if (s->fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot open '%s': %s", file, strerror(e));
        return e == ENOSPC ? CVG_ENOSPC : cvg__mdb_err(e);
    }
    cvg__lmdb_meta m;
    bool empty;
    char why[256];
    int rc = cvg__lmdb_check_file(s->fd, &m, &empty, why, sizeof why);
    if (rc != CVG_OK) {
        snprintf(err, errlen, "replica '%s': %s", path, why);
        return rc;
    }
    if (empty && !created) {
        /* LMDB makes a new store in an empty file. That is right for a
         * replica being created (LMDB writes its meta pages before the
         * identity is made), not for one whose file lost everything: its
         * identity would start its sequence again. */
        struct stat st;
        snprintf(file, sizeof file, "%s/identity.key", path);
        if (o->read_only || stat(file, &st) == 0) {
            snprintf(err, errlen,
                     "replica '%s': the data file is truncated to 0 bytes",
                     path);
            return CVG_ECORRUPT;
        }
    }
    if (!o->read_only) {
        /* lock.mdb is a shared map too: its pages need blocks before
         * LMDB touches them (a reader slot on a hole would fault). */
        snprintf(file, sizeof file, "%s/lock.mdb", path);
        int lfd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (lfd < 0 && errno == ENOSPC) {
            return no_space(s, LOCK_FILE_BYTES);
        }
        if (lfd >= 0) {
            rc = allocate(lfd, LOCK_FILE_BYTES);
            close(lfd);
            if (rc == CVG_ENOSPC) {
                return no_space(s, LOCK_FILE_BYTES);
            }
        }
    }
    return CVG_OK;
}

static int
open_env(cvg__store *s, const char *path, const cvg_replica_options *o,
         char *err, size_t errlen)
{
    int rc = mdb_env_create(&s->env);
    if (rc != MDB_SUCCESS) {
        snprintf(err, errlen, "cannot create LMDB environment");
        return cvg__mdb_err(rc);
    }
    mdb_env_set_maxdbs(s->env, 12);
    /* A transaction's store, found from the transaction alone at its end
     * (cvg__store_abort). */
    mdb_env_set_userctx(s->env, s);
    mdb_env_set_maxreaders(s->env, 126);
    mdb_env_set_mapsize(s->env, s->map_size);

    /* NOTLS: a transaction handle may move between threads (and read
     * transactions do not pin a thread's slot). No NOMEMINIT: unused parts
     * of pages are zeroed, so no stale heap bytes reach the file. NOSYNC is
     * the relaxed mode: LMDB stays consistent, recent commits may be lost
     * on an OS crash (never on a process crash). */
    unsigned flags = MDB_NOTLS;
    if (o->read_only) {
        flags |= MDB_RDONLY;
    } else if (o->durability == CVG_RELAXED) {
        /* Relaxed: no sync at commit. Pages still go through write(),
         * not a writable map (MDB_WRITEMAP, measured 3.3x faster for
         * single-op commits): that faults on a full disk, and LMDB then
         * shrinks the file under other processes (see the top). */
        flags |= MDB_NOSYNC;
    }
    rc = mdb_env_open(s->env, path, flags, 0600);
    if (rc != MDB_SUCCESS) {
        int code = rc == MDB_INVALID ? CVG_ECORRUPT : cvg__mdb_err(rc);
        if (code == CVG_ENOSPC) {
            snprintf(err, errlen, "no space left on the device holding '%s'",
                     path);
        } else {
            snprintf(err, errlen, "cannot open LMDB environment in '%s': %s",
                     path, mdb_strerror(rc));
        }
        mdb_env_close(s->env);
        s->env = NULL;
        return code;
    }

    /* A process killed inside a read transaction leaves its reader slot
     * taken; clear such slots now so they neither pin old pages forever
     * nor fill the table. */
    int dead = 0;
    mdb_reader_check(s->env, &dead);

    MDB_envinfo info;
    if (mdb_env_info(s->env, &info) == MDB_SUCCESS &&
        info.me_mapsize > s->map_size) {
        s->map_size = info.me_mapsize;
    }
    return CVG_OK;
}

/* The named databases, created if allowed. */
static int
open_databases(cvg__store *s, const char *path, const cvg_replica_options *o,
               char *err, size_t errlen)
{
    int rc;
    cvg__store_txn *t;
    rc = cvg__store_begin(s, !o->read_only, &t);
    if (rc != CVG_OK) {
        snprintf(err, errlen, "cannot begin the first transaction");
        mdb_env_close(s->env);
        s->env = NULL;
        return rc;
    }
    /* Committing (also a read-only transaction) keeps the handles open for
     * the environment's life; an abort would close them. */
    int mrc = open_dbs(s, t, o->read_only ? 0 : MDB_CREATE);
    if (mrc == MDB_SUCCESS) {
        mrc = mdb_txn_commit(t); /* begun before the journal was known */
    } else {
        mdb_txn_abort(t);
    }
    if (mrc != MDB_SUCCESS) {
        snprintf(err, errlen, "'%s' does not hold a converge replica: %s", path,
                 mdb_strerror(mrc));
        mdb_env_close(s->env);
        s->env = NULL;
        return mrc == MDB_NOTFOUND ? CVG_ECORRUPT : cvg__mdb_err(mrc);
    }
    return CVG_OK;
}

int
cvg__store_open(cvg__store *s, const char *path, const cvg_replica_options *o,
                char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->ov_max_values = CVG__OV_MAX_VALUES;
    /* Without journal_state every commit writes the state table, but for
     * keys the journal already holds (another process journals), which
     * must follow their values there. */
    s->direct_max = o->journal_state ? CVG__DIRECT_MAX : SIZE_MAX;
    s->ov_max_bytes = CVG__OV_MAX_BYTES;
    s->ckpt_slices = o->journal_checkpoint_commits
                         ? o->journal_checkpoint_commits
                         : CVG__CKPT_SLICES;
    s->fd = -1;
    s->lock_fd = -1;
    s->err = err;
    s->errlen = errlen;
    s->map_size = o->map_size ? o->map_size : DEFAULT_MAP_SIZE;
    s->map_max = o->map_size_max ? o->map_size_max : DEFAULT_MAP_MAX;
    if (s->map_max < s->map_size) {
        s->map_max = s->map_size;
    }
    s->read_only = o->read_only;
    s->path = strdup(path);
    if (s->path == NULL) {
        return CVG_ENOMEM;
    }

    int rc = check_dir(path, o, err, errlen);
    if (rc == CVG_OK) {
        rc = claim_dir(s, path, err, errlen);
    }
    if (rc == CVG_OK) {
        rc = hold_open_lock(s, path, o, err, errlen);
    }
    if (rc == CVG_OK) {
        rc = open_data_file(s, path, o, err, errlen);
    }
    if (rc == CVG_OK) {
        rc = open_env(s, path, o, err, errlen);
    }
    if (rc == CVG_OK) {
        rc = open_databases(s, path, o, err, errlen);
    }
    return rc;
}

static int
checkpoint_fn(void *ctx, cvg__store_txn *t)
{
    return cvg__journal_checkpoint(ctx, t);
}

/* Leave the state table whole at close, so the next open has no journal
 * to load. Best effort: a failure leaves the journal, which is as good. */
static void
checkpoint_at_close(cvg__store *s)
{
    if (s->read_only || !s->checkpoint_at_close || !cvg__journal_pending(s) ||
        s->nviews > 0) {
        return;
    }
    (void)cvg__store_write(s, false, checkpoint_fn, s);
}

void
cvg__store_close(cvg__store *s)
{
    if (s->env != NULL) {
        checkpoint_at_close(s);
        mdb_env_close(s->env);
        s->env = NULL;
    }
    cvg__journal_free(s);
    /* A store never opened is all zeros: path tells an fd of ours. */
    if (s->path != NULL && s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    if (s->path != NULL && s->lock_fd >= 0) {
        close(s->lock_fd); /* and with it the shared lock */
        s->lock_fd = -1;
    }
    free(s->path);
    s->path = NULL;
    if (s->claimed) {
        cvg__store_release(s->dev, s->ino);
        s->claimed = false;
    }
}

int
cvg__store_begin(cvg__store *s, bool write, cvg__store_txn **out)
{
    *out = NULL;
    unsigned flags = write ? 0 : MDB_RDONLY;
    int rc = mdb_txn_begin(s->env, NULL, flags, out);
    /* Another process grew the map past ours: adopt its size. Others may
     * grow it again meanwhile, so a few times. */
    for (int i = 0; rc == MDB_MAP_RESIZED && i < RESIZE_TRIES; i++) {
        int crc = resize_map(s, 0);
        if (crc != CVG_OK) {
            return crc;
        }
        rc = mdb_txn_begin(s->env, NULL, flags, out);
    }
    if (rc == MDB_SUCCESS && !s->checksummed) {
        /* A replica of format 1: another process may have upgraded it
         * since (checksum.h), and from then on its records have a
         * checksum to check and to write. */
        MDB_val k = {6, "format"}, v;
        if (mdb_get(*out, s->meta, &k, &v) == MDB_SUCCESS && v.mv_size == 8 &&
            cvg__get_be64(v.mv_data) >= 2) {
            s->checksummed = true;
        }
    }
    if (rc == MDB_SUCCESS) {
        int jrc = cvg__journal_begin(s, *out, write);
        if (jrc != CVG_OK) {
            mdb_txn_abort(*out);
            *out = NULL;
            return jrc;
        }
    }
    return cvg__mdb_err(rc);
}

void
cvg__store_abort(cvg__store_txn *t)
{
    if (t != NULL) {
        cvg__store *s = mdb_env_get_userctx(mdb_txn_env(t));
        if (s != NULL) {
            cvg__journal_end(s, t, false);
        }
        mdb_txn_abort(t);
    }
}

int
cvg__store_flush(cvg__store *s)
{
    return cvg__mdb_err(mdb_env_sync(s->env, 1));
}

void
cvg__store_usage(cvg__store *s, uint64_t *file_bytes, uint64_t *map_bytes)
{
    MDB_envinfo info;
    MDB_stat st;
    mdb_env_info(s->env, &info);
    mdb_env_stat(s->env, &st);
    *file_bytes = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
    *map_bytes = info.me_mapsize;
}

int
cvg__store_grow(cvg__store *s)
{
    if (s->map_size >= s->map_max) {
        return CVG_EFULL;
    }
    size_t next = s->map_size > s->map_max / 2 ? s->map_max : s->map_size * 2;
    return resize_map(s, next);
}

/* The meta record "format" has no checksum: it says whether the others
 * have one, and every version must be able to read it. */
static bool
is_format(const char *name)
{
    return strcmp(name, "format") == 0;
}

int
cvg__meta_get_u64(cvg__store *s, cvg__store_txn *t, const char *name,
                  uint64_t *out)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    *out = 0;
    int rc = is_format(name) ? mdb_get(t, s->meta, &k, &v)
                             : cvg__ck_get(s, t, s->meta, &k, &v);
    if (rc != MDB_SUCCESS) {
        return cvg__mdb_err(rc);
    }
    if (v.mv_size != 8) {
        return CVG_ECORRUPT;
    }
    *out = cvg__get_be64(v.mv_data);
    return CVG_OK;
}

int
cvg__meta_put_u64(cvg__store *s, cvg__store_txn *t, const char *name,
                  uint64_t val)
{
    uint8_t b[8];
    cvg__put_be64(b, val);
    MDB_val k = {strlen(name), (void *)name}, v = {8, b};
    return cvg__mdb_err(is_format(name)
                            ? mdb_put(t, s->meta, &k, &v, 0)
                            : cvg__ck_put(s, t, s->meta, &k, &v, 0));
}

int
cvg__meta_get(cvg__store *s, cvg__store_txn *t, const char *name,
              cvg_bytes *out)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    int rc = cvg__ck_get(s, t, s->meta, &k, &v);
    if (rc != MDB_SUCCESS) {
        out->data = NULL;
        out->len = 0;
        return cvg__mdb_err(rc);
    }
    out->data = v.mv_data;
    out->len = v.mv_size;
    return CVG_OK;
}

int
cvg__meta_put(cvg__store *s, cvg__store_txn *t, const char *name, cvg_bytes v)
{
    MDB_val k = {strlen(name), (void *)name}, mv = {v.len, (void *)v.data};
    return cvg__mdb_err(cvg__ck_put(s, t, s->meta, &k, &mv, 0));
}

int
cvg__meta_get_id(cvg__store *s, cvg__store_txn *t, cvg_replica_id *out)
{
    MDB_val k = {2, "id"}, v;
    int rc = cvg__ck_get(s, t, s->meta, &k, &v);
    if (rc != MDB_SUCCESS) {
        return rc == MDB_NOTFOUND ? CVG_ECORRUPT : cvg__mdb_err(rc);
    }
    if (v.mv_size != sizeof out->bytes) {
        return CVG_ECORRUPT;
    }
    memcpy(out->bytes, v.mv_data, sizeof out->bytes);
    return CVG_OK;
}

int
cvg__meta_put_id(cvg__store *s, cvg__store_txn *t, const cvg_replica_id *id)
{
    MDB_val k = {2, "id"}, v = {sizeof id->bytes, (void *)id->bytes};
    return cvg__mdb_err(cvg__ck_put(s, t, s->meta, &k, &v, 0));
}

/* The "ahead" record: a big-endian origin index (4 bytes) and seq (8). */
#define AHEAD_BYTES 12

/* Raise the vector by the "ahead" record, if there is one. */
static int
load_ahead(cvg__store *s, cvg__store_txn *t, const cvg__origins *o, cvg__vv *vv,
           cvg__origins_ahead *ahead)
{
    cvg_bytes v;
    int rc = cvg__meta_get(s, t, "ahead", &v);
    if (rc == CVG_ENOTFOUND) {
        return CVG_OK; /* made before format 5, or no commit since */
    }
    if (rc != CVG_OK) {
        return rc;
    }
    if (v.len != AHEAD_BYTES || cvg__get_be32(v.data) >= o->n) {
        return CVG_ECORRUPT;
    }
    const cvg_replica_id *id = &o->ids[cvg__get_be32(v.data)];
    uint64_t seq = cvg__get_be64(v.data + 4);
    if (ahead != NULL) {
        ahead->set = true;
        ahead->id = *id;
    }
    return seq > cvg__vv_get(vv, id) ? cvg__vv_set(vv, id, seq) : CVG_OK;
}

int
cvg__origins_put_ahead(cvg__store *s, cvg__store_txn *t, uint32_t idx,
                       uint64_t seq)
{
    uint8_t b[AHEAD_BYTES];
    cvg__put_be32(b, idx);
    cvg__put_be64(b + 4, seq);
    cvg_bytes v = {b, sizeof b};
    return cvg__meta_put(s, t, "ahead", v);
}

int
cvg__origins_load(cvg__store *s, cvg__store_txn *t, cvg__origins *o,
                  cvg__vv *vv, cvg__origins_ahead *ahead)
{
    if (ahead != NULL) {
        ahead->set = false;
    }
    MDB_cursor *c;
    int rc = mdb_cursor_open(t, s->origins, &c);
    if (rc != MDB_SUCCESS) {
        return cvg__mdb_err(rc);
    }
    cvg__origins_truncate(o, 0);
    vv->n = 0;
    vv->summed = false; /* turned on again when a sync asks for it */
    MDB_val k, v;
    int crc = CVG_OK;
    uint32_t expect = 0;
    for (rc = cvg__ck_cursor_get(s, c, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
         rc = cvg__ck_cursor_get(s, c, &k, &v, MDB_NEXT)) {
        /* Indexes are dense from 0: a hole means a damaged table. */
        if (k.mv_size != 4 || v.mv_size != 24 ||
            cvg__get_be32(k.mv_data) != expect) {
            crc = CVG_ECORRUPT;
            break;
        }
        const cvg_replica_id *id = v.mv_data;
        uint32_t idx;
        bool added;
        crc = cvg__origins_index(o, id, &idx, &added);
        if (crc == CVG_OK && (!added || idx != expect)) {
            crc = CVG_ECORRUPT; /* the same id twice */
        }
        uint64_t seq = cvg__get_be64((const uint8_t *)v.mv_data + 16);
        if (crc == CVG_OK && seq > 0) {
            crc = cvg__vv_set(vv, id, seq);
        }
        if (crc != CVG_OK) {
            break;
        }
        expect++;
    }
    mdb_cursor_close(c);
    if (crc != CVG_OK) {
        return crc;
    }
    if (rc != MDB_NOTFOUND) {
        return cvg__mdb_err(rc);
    }
    return load_ahead(s, t, o, vv, ahead);
}

int
cvg__origins_put(cvg__store *s, cvg__store_txn *t, uint32_t idx,
                 const cvg_replica_id *id, uint64_t seq)
{
    uint8_t kb[4], vb[24];
    cvg__put_be32(kb, idx);
    memcpy(vb, id->bytes, 16);
    cvg__put_be64(vb + 16, seq);
    MDB_val k = {4, kb}, v = {24, vb};
    return cvg__mdb_err(cvg__ck_put(s, t, s->origins, &k, &v, 0));
}
