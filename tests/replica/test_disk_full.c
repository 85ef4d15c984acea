/* A full disk, and several processes growing one map at once.
 *
 * The disk-full tests mount a small tmpfs (4 MiB; they need root, and skip
 * saying so otherwise) and write until a commit fails, in both durability
 * modes, with the map growing and with a fixed one, in one process and in
 * four at once. The failure must be CVG_ENOSPC with a message naming the
 * directory, not a full map; no process may die by a signal (the relaxed
 * mode's writable map used to fault with SIGBUS on a hole of the file);
 * and once space is freed (a bigger remount, or a filler file deleted) every
 * acknowledged write must be there and writing must work again.
 *
 * The growth race needs no root: four relaxed writers grow a small map at
 * once, on the tests' own file system, for a few rounds (LMDB resized the
 * file to each process's own map, shrinking it under the others). */
#define _GNU_SOURCE /* MNT_DETACH */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "converge.h"

#include "testutil.h"

#define VALUE_LEN 1000   /* bytes of each value */
#define PER_COMMIT 4     /* registers set by each commit */
#define MAX_COMMITS 4000 /* far more than 4 MiB holds */
#define WRITERS 4
#define BUSY_RETRIES 200 /* CVG_EBUSY: another process grew the map */
#define CHILD_SECONDS 120

static char mnt[512];
static bool mounted;

static void
unmount(void)
{
    if (mounted) {
        umount2(mnt, MNT_DETACH);
        mounted = false;
    }
}

/* A tmpfs of @p size at a fresh directory, or skip the test. */
static void
mount_small(const char *size)
{
    snprintf(mnt, sizeof mnt, "%s", cvg_test_dir("disk-full"));
    if (geteuid() != 0) {
        cr_skip_test("needs root to mount a small tmpfs (a disk to fill)");
    }
    char opt[64];
    snprintf(opt, sizeof opt, "size=%s,mode=0700", size);
    if (mount("tmpfs", mnt, "tmpfs", 0, opt) != 0) {
        cr_skip_test("cannot mount a tmpfs at %s: %s", mnt, strerror(errno));
    }
    mounted = true;
}

static void
remount(const char *size)
{
    char opt[64];
    snprintf(opt, sizeof opt, "size=%s", size);
    cr_assert_eq(mount("tmpfs", mnt, "tmpfs", MS_REMOUNT, opt), 0,
                 "remount: %s", strerror(errno));
}

static void
value_of(int w, int i, int j, char *buf)
{
    int n = snprintf(buf, VALUE_LEN + 1, "%d/%d/%d:", w, i, j);
    memset(buf + n, 'a' + (w + i + j) % 26, (size_t)(VALUE_LEN - n));
    buf[VALUE_LEN] = '\0';
}

static void
key_of(int w, int i, int j, char *buf, size_t n, cvg_key *k)
{
    snprintf(buf, n, "w%d-%d-%d", w, i, j);
    k->collection = "c";
    k->key = buf;
    k->field = "f";
}

/* Commit @p i of writer @p w: PER_COMMIT registers. */
static int
write_commit(cvg_replica *r, int w, int i)
{
    cvg_txn *t;
    int rc = cvg_txn_begin(r, 0, &t);
    if (rc != CVG_OK) {
        return rc;
    }
    char name[64], val[VALUE_LEN + 1];
    for (int j = 0; j < PER_COMMIT && rc == CVG_OK; j++) {
        cvg_key k;
        key_of(w, i, j, name, sizeof name, &k);
        value_of(w, i, j, val);
        cvg_value v = cvg_value_string(val);
        rc = cvg_register_set(t, &k, &v, NULL);
    }
    return rc == CVG_OK ? cvg_txn_commit(t) : (cvg_txn_abort(t), rc);
}

/* Writer @p w's first @p n commits are all there. */
static void
expect_written(cvg_replica *r, int w, int n)
{
    cvg_txn *t;
    cr_assert_eq(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t), CVG_OK);
    char name[64], val[VALUE_LEN + 1];
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < PER_COMMIT; j++) {
            cvg_key k;
            cvg_value v;
            key_of(w, i, j, name, sizeof name, &k);
            value_of(w, i, j, val);
            int rc = cvg_register_get(t, &k, &v);
            cr_assert_eq(rc, CVG_OK, "writer %d commit %d of %d: %s", w, i, n,
                         cvg_errname(rc));
            cr_assert(v.as.bytes.len == VALUE_LEN &&
                          memcmp(v.as.bytes.data, val, VALUE_LEN) == 0,
                      "writer %d commit %d: wrong value", w, i);
        }
    }
    cvg_txn_abort(t);
}

static cvg_replica *
open_replica(const char *dir, cvg_durability d, size_t map, size_t max,
             int *rc_out)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = d;
    o.map_size = map;
    o.map_size_max = max;
    cvg_replica *r = NULL;
    *rc_out = cvg_replica_open(dir, &o, &r);
    return r;
}

/* Fill a file in the mount until the disk is full; its path. */
static const char *
fill_disk(void)
{
    static char path[600];
    snprintf(path, sizeof path, "%s/filler", mnt);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    static char chunk[4096];
    for (int i = 0; i < 1 << 20; i++) { /* at most 4 GiB: bounded */
        if (write(fd, chunk, sizeof chunk) != (ssize_t)sizeof chunk) {
            break;
        }
    }
    close(fd);
    return path;
}

/* One process: write until a commit fails; that is @p want; free space;
 * everything acknowledged is there and writing works again. */
static void
fill_one(cvg_durability d, size_t map, size_t max, bool filler, int want)
{
    mount_small("4m");
    char dir[600];
    snprintf(dir, sizeof dir, "%s/r", mnt);
    int rc;
    cvg_replica *r = open_replica(dir, d, map, max, &rc);
    cr_assert_eq(rc, CVG_OK, "open: %s: %s", cvg_errname(rc),
                 cvg_replica_errmsg(NULL));
    int acked = 0;
    for (; filler && acked < 20; acked++) { /* some before it fills */
        cr_assert_eq(write_commit(r, 0, acked), CVG_OK);
    }
    const char *fill = filler ? fill_disk() : NULL;
    for (; acked < MAX_COMMITS; acked++) {
        rc = write_commit(r, 0, acked);
        if (rc != CVG_OK) {
            break;
        }
    }
    cr_assert_eq(rc, want, "after %d commits: %s (%s), wanted %s", acked,
                 cvg_errname(rc), cvg_replica_errmsg(r), cvg_errname(want));
    cr_assert_gt(acked, 0);
    if (want == CVG_ENOSPC) {
        const char *msg = cvg_replica_errmsg(r);
        cr_expect(strstr(msg, "no space left") != NULL, "%s", msg);
        cr_expect(strstr(msg, dir) != NULL, "%s", msg);
        cr_expect(strstr(msg, "map full") == NULL, "%s", msg);
    }
    /* Still full: it fails again, cleanly. */
    cr_expect_eq(write_commit(r, 0, acked), want);
    if (fill != NULL) {
        cr_assert_eq(unlink(fill), 0);
    } else {
        remount("64m");
    }
    if (want == CVG_ENOSPC) {
        cr_assert_eq(write_commit(r, 0, acked), CVG_OK, "%s",
                     cvg_replica_errmsg(r));
        acked++;
    }
    expect_written(r, 0, acked);
    cvg_replica_close(r);
    r = open_replica(dir, d, map, max, &rc);
    cr_assert_eq(rc, CVG_OK, "reopen: %s", cvg_replica_errmsg(NULL));
    expect_written(r, 0, acked);
    cvg_replica_close(r);
}

Test(disk_full, durable_growing_map, .fini = unmount)
{
    fill_one(CVG_DURABLE, 64 << 10, 64 << 20, false, CVG_ENOSPC);
}

Test(disk_full, durable_fixed_map, .fini = unmount)
{
    fill_one(CVG_DURABLE, 64 << 20, 64 << 20, false, CVG_ENOSPC);
}

Test(disk_full, relaxed_growing_map, .fini = unmount)
{
    fill_one(CVG_RELAXED, 64 << 10, 64 << 20, false, CVG_ENOSPC);
}

Test(disk_full, relaxed_fixed_map, .fini = unmount)
{
    fill_one(CVG_RELAXED, 64 << 20, 64 << 20, false, CVG_ENOSPC);
}

/* The disk filled by another file after the open, freed by deleting it. */
Test(disk_full, relaxed_filled_by_another_file, .fini = unmount)
{
    fill_one(CVG_RELAXED, 1 << 20, 64 << 20, true, CVG_ENOSPC);
}

/* ---- Several processes -------------------------------------------------- */

/* In a child: writer @p w commits until an error (or @p limit), telling
 * each acknowledged commit on @p fd; exits with the error negated, or 0. */
static void
child_writer(const char *dir, cvg_durability d, size_t map, size_t max, int w,
             int limit, int fd)
{
    alarm(CHILD_SECONDS); /* a hang ends by a signal, which fails the test */
    int rc;
    cvg_replica *r = open_replica(dir, d, map, max, &rc);
    for (int tries = 0; rc == CVG_EBUSY && tries < BUSY_RETRIES; tries++) {
        r = open_replica(dir, d, map, max, &rc);
    }
    if (rc != CVG_OK) {
        fprintf(stderr, "writer %d: open: %s\n", w, cvg_replica_errmsg(NULL));
        _exit(-rc);
    }
    int i = 0, busy = 0;
    while (i < limit) {
        rc = write_commit(r, w, i);
        if (rc == CVG_EBUSY && ++busy < BUSY_RETRIES) {
            continue; /* another process grew the map meanwhile: again */
        }
        if (rc != CVG_OK) {
            break;
        }
        busy = 0;
        i++;
        if (write(fd, &i, sizeof i) != (ssize_t)sizeof i) {
            _exit(99);
        }
    }
    if (rc != CVG_OK && rc != CVG_ENOSPC) {
        fprintf(stderr, "writer %d: commit %d: %s\n", w, i,
                cvg_replica_errmsg(r));
    }
    cvg_replica_close(r);
    _exit(rc == CVG_OK ? 0 : -rc);
}

/* WRITERS processes write at once; each must end with an exit code in
 * @p ok_codes (0 = reached @p limit; else the code negated), never by a
 * signal. Their acknowledged commits, in @p acked. */
static void
run_writers(const char *dir, cvg_durability d, size_t map, size_t max,
            int limit, int want, int acked[WRITERS])
{
    pid_t pids[WRITERS];
    int fds[WRITERS];
    for (int w = 0; w < WRITERS; w++) {
        int p[2];
        cr_assert_eq(pipe(p), 0);
        pids[w] = fork();
        cr_assert_neq(pids[w], -1);
        if (pids[w] == 0) {
            close(p[0]);
            child_writer(dir, d, map, max, w, limit, p[1]);
        }
        close(p[1]);
        fds[w] = p[0];
    }
    for (int w = 0; w < WRITERS; w++) {
        /* Read the acknowledgements as they come: a pipe holds only so
         * many. */
        acked[w] = 0;
        int n;
        while (read(fds[w], &n, sizeof n) == (ssize_t)sizeof n) {
            acked[w] = n;
        }
        close(fds[w]);
        int status;
        cr_assert_eq(waitpid(pids[w], &status, 0), pids[w]);
        cr_assert(!WIFSIGNALED(status), "writer %d died by signal %d", w,
                  WTERMSIG(status));
        cr_assert(WIFEXITED(status));
        int code = -WEXITSTATUS(status);
        cr_expect(code == want || code == 0,
                  "writer %d ended with %s after %d commits, wanted %s", w,
                  cvg_errname(code), acked[w], cvg_errname(want));
    }
}

static void
fill_many(cvg_durability d)
{
    mount_small("4m");
    char dir[600];
    snprintf(dir, sizeof dir, "%s/r", mnt);
    int rc;
    cvg_replica *r = open_replica(dir, d, 64 << 10, 64 << 20, &rc);
    cr_assert_eq(rc, CVG_OK, "%s", cvg_replica_errmsg(NULL));
    cvg_replica_close(r); /* none open in this process while it forks */
    int acked[WRITERS];
    run_writers(dir, d, 64 << 10, 64 << 20, MAX_COMMITS, CVG_ENOSPC, acked);
    remount("64m");
    r = open_replica(dir, d, 64 << 10, 64 << 20, &rc);
    cr_assert_eq(rc, CVG_OK, "%s", cvg_replica_errmsg(NULL));
    int total = 0;
    for (int w = 0; w < WRITERS; w++) {
        expect_written(r, w, acked[w]);
        total += acked[w];
    }
    cr_expect_gt(total, 0);
    cr_assert_eq(write_commit(r, WRITERS, 0), CVG_OK, "%s",
                 cvg_replica_errmsg(r));
    cvg_replica_close(r);
}

Test(disk_full, durable_writer_processes, .fini = unmount, .timeout = 300)
{
    fill_many(CVG_DURABLE);
}

Test(disk_full, relaxed_writer_processes, .fini = unmount, .timeout = 300)
{
    fill_many(CVG_RELAXED);
}

/* No disk to fill: four relaxed writers grow a 64 KiB map to a few MiB
 * together, three rounds. */
Test(map_growth, relaxed_writer_processes_grow_one_map, .timeout = 300)
{
    for (int round = 0; round < 3; round++) {
        const char *d = cvg_test_dir("map-growth");
        char dir[512];
        snprintf(dir, sizeof dir, "%s", d);
        int rc;
        cvg_replica *r =
            open_replica(dir, CVG_RELAXED, 64 << 10, 256 << 20, &rc);
        cr_assert_eq(rc, CVG_OK, "%s", cvg_replica_errmsg(NULL));
        cvg_replica_close(r);
        int acked[WRITERS];
        run_writers(dir, CVG_RELAXED, 64 << 10, 256 << 20, 300, 0, acked);
        r = open_replica(dir, CVG_RELAXED, 64 << 10, 256 << 20, &rc);
        cr_assert_eq(rc, CVG_OK, "%s", cvg_replica_errmsg(NULL));
        for (int w = 0; w < WRITERS; w++) {
            cr_expect_eq(acked[w], 300, "round %d writer %d", round, w);
            expect_written(r, w, acked[w]);
        }
        cvg_replica_close(r);
    }
}
