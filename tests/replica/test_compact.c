/*
 * Compaction (cvg_replica_compact, `converge compact`): a replica whose
 * records were rewritten many times gives its free pages back and keeps
 * everything else (state, log, what a new peer gets); it is refused while
 * any handle of any process has the replica open, and an open waits while
 * it runs; a damaged file is refused and left as it was; a copy left by a
 * compaction that died is neither opened nor in the way.
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "converge.h"

#include "checks.h"
#include "testutil.h"

#define OK(x) cr_assert_eq((x), CVG_OK, "%s", #x)

#define KEYS 1500
#define ROUNDS 6
#define PER_TXN 100

static cvg_replica *
open_at(const char *dir)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = CVG_RELAXED;
    cvg_replica *r = NULL;
    int rc = cvg_replica_open(dir, &o, &r);
    cr_assert_eq(rc, CVG_OK, "open %s: %s", dir, cvg_replica_errmsg(NULL));
    return r;
}

/* Registers written ROUNDS times over, a counter and a set with removes:
 * every round frees about the pages the one before wrote. */
static void
churn(cvg_replica *r)
{
    char name[32], val[96];
    for (int round = 0; round < ROUNDS; round++) {
        cvg_txn *t = NULL;
        for (int i = 0; i < KEYS; i++) {
            if (i % PER_TXN == 0) {
                if (t != NULL) {
                    OK(cvg_txn_commit(t));
                }
                OK(cvg_txn_begin(r, 0, &t));
            }
            snprintf(name, sizeof name, "key-%05d", i);
            snprintf(val, sizeof val, "round %d of key %d, padded %040d", round,
                     i, i);
            cvg_key k = {"c", name, "v"};
            cvg_value v = cvg_value_string(val);
            OK(cvg_register_set(t, &k, &v, NULL));
            cvg_key n = {"c", "total", "n"};
            OK(cvg_counter_add(t, &n, 1, NULL));
            cvg_key s = {"c", "tags", "set"};
            cvg_value e = cvg_value_int(i);
            OK(round % 2 ? cvg_set_remove(t, &s, &e, NULL)
                         : cvg_set_add(t, &s, &e, NULL));
        }
        OK(cvg_txn_commit(t));
    }
}

static off_t
file_size(const char *dir)
{
    char path[600];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    return st.st_size;
}

/* The whole data file, to show it unchanged. */
static char *
file_bytes(const char *dir, size_t *len)
{
    char path[600];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    FILE *f = fopen(path, "rb");
    cr_assert(f != NULL);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc(*len ? *len : 1);
    cr_assert(p != NULL);
    cr_assert_eq(fread(p, 1, *len, f), *len);
    fclose(f);
    return p;
}

Test(compact, free_pages_go_back_and_everything_else_stays)
{
    char dir[512], peer_dir[512];
    snprintf(dir, sizeof dir, "%s", cvg_test_dir("compact-src"));
    snprintf(peer_dir, sizeof peer_dir, "%s", cvg_test_dir("compact-peer"));
    cvg_replica *r = open_at(dir);
    churn(r);
    char *before = cvg_test_state(r);
    uint64_t ops = cvg_test_op_count(r);
    cvg_replica_close(r);
    off_t size_before = file_size(dir);

    cvg_compact_report rep;
    OK(cvg_replica_compact(dir, &rep));
    cr_expect_str_empty(rep.problem);
    cr_expect_eq(rep.bytes_before, (uint64_t)size_before);
    cr_expect_eq(rep.bytes_after, (uint64_t)file_size(dir));
    /* What the trees use, their pages and the two meta pages. */
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    cr_expect_leq(rep.bytes_after, (rep.live_pages + 2) * page,
                  "%llu bytes for %llu live pages",
                  (unsigned long long)rep.bytes_after,
                  (unsigned long long)rep.live_pages);
    cr_expect_geq(rep.bytes_after, rep.live_pages * page);
    cr_expect_lt(rep.bytes_after, rep.bytes_before,
                 "%llu bytes from %llu: the churn freed pages",
                 (unsigned long long)rep.bytes_after,
                 (unsigned long long)rep.bytes_before);

    cvg_check_report chk;
    int rc = cvg_replica_check(dir, &chk);
    cr_expect_eq(rc, CVG_OK, "%s", chk.problem);
    r = open_at(dir);
    char *after = cvg_test_state(r);
    cr_expect_str_eq(after, before);
    cr_expect_eq(cvg_test_op_count(r), ops);
    /* It writes on, and a new peer gets all of it. */
    cvg_txn *t;
    OK(cvg_txn_begin(r, 0, &t));
    cvg_key n = {"c", "total", "n"};
    OK(cvg_counter_add(t, &n, 5, NULL));
    OK(cvg_txn_commit(t));
    cvg_replica *peer = open_at(peer_dir);
    OK(cvg_sync_local(r, peer, NULL));
    char *mine = cvg_test_state(r), *theirs = cvg_test_state(peer);
    cr_expect_str_eq(theirs, mine);
    cr_expect_eq(cvg_test_op_count(peer), ops + 1);
    free(mine);
    free(theirs);
    free(after);
    free(before);
    cvg_replica_close(peer);
    cvg_replica_close(r);
}

Test(compact, an_open_replica_is_not_compacted)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s", cvg_test_dir("compact-open"));
    cvg_replica *r = open_at(dir);
    churn(r);
    cvg_compact_report rep;
    cr_expect_eq(cvg_replica_compact(dir, &rep), CVG_EBUSY);
    cr_expect_str_neq(rep.problem, "");
    cvg_replica_close(r);

    /* Held open by another process: refused until it closes. */
    int up[2], down[2];
    cr_assert_eq(pipe(up), 0);
    cr_assert_eq(pipe(down), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        cvg_replica_options o;
        cvg_replica_options_init(&o);
        o.read_only = true;
        cvg_replica *c = NULL;
        int rc = cvg_replica_open(dir, &o, &c);
        char ok = rc == CVG_OK ? 'y' : 'n';
        (void)!write(up[1], &ok, 1);
        (void)!read(down[0], &ok, 1);
        cvg_replica_close(c);
        _exit(0);
    }
    char got = 0;
    cr_assert_eq(read(up[0], &got, 1), 1);
    cr_assert_eq(got, 'y');
    size_t len0, len1;
    char *bytes0 = file_bytes(dir, &len0);
    cr_expect_eq(cvg_replica_compact(dir, &rep), CVG_EBUSY);
    cr_expect_str_eq(rep.problem, "another handle has the replica open");
    char *bytes1 = file_bytes(dir, &len1);
    cr_expect(len0 == len1 && memcmp(bytes0, bytes1, len0) == 0,
              "the file is as it was");
    (void)!write(down[1], "x", 1);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    OK(cvg_replica_compact(dir, &rep));
    cr_expect_lt(rep.bytes_after, rep.bytes_before);
    free(bytes0);
    free(bytes1);
}

/* While a compaction holds lock.mdb, an open in another process waits;
 * it goes on once the lock is let go. */
Test(compact, an_open_waits_while_a_compaction_runs)
{
    char dir[512], lock[600];
    snprintf(dir, sizeof dir, "%s", cvg_test_dir("compact-wait"));
    cvg_replica_close(open_at(dir));
    snprintf(lock, sizeof lock, "%s/lock.mdb", dir);
    int fd = open(lock, O_RDWR);
    cr_assert_geq(fd, 0);
    cr_assert_eq(flock(fd, LOCK_EX), 0); /* as cvg_replica_compact holds */
    int up[2];
    cr_assert_eq(pipe(up), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fd); /* the child's copy of it must not hold the lock */
        cvg_replica *c = open_at(dir);
        (void)!write(up[1], "y", 1);
        cvg_replica_close(c);
        _exit(0);
    }
    struct pollfd p = {.fd = up[0], .events = POLLIN};
    cr_expect_eq(poll(&p, 1, 300), 0, "the open went on while locked");
    close(fd);
    cr_expect_eq(poll(&p, 1, 10000), 1, "the open never went on");
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

Test(compact, a_damaged_file_is_refused_and_left_as_it_was)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s", cvg_test_dir("compact-damaged"));
    cvg_replica *r = open_at(dir);
    churn(r);
    cvg_replica_close(r);
    /* Zero every other page past the meta pages: many of them are the
     * trees'. */
    char path[600];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    off_t size = file_size(dir);
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    char *zero = calloc(1, page);
    for (off_t at = 2 * (off_t)page; at < size; at += 2 * (off_t)page) {
        cr_assert_eq(pwrite(fd, zero, page, at), (ssize_t)page);
    }
    close(fd);
    free(zero);
    size_t len0, len1;
    char *bytes0 = file_bytes(dir, &len0);
    cvg_compact_report rep;
    cr_expect_eq(cvg_replica_compact(dir, &rep), CVG_ECORRUPT);
    cr_expect_str_neq(rep.problem, "");
    char *bytes1 = file_bytes(dir, &len1);
    cr_expect(len0 == len1 && memcmp(bytes0, bytes1, len0) == 0,
              "the file is as it was");
    struct stat st;
    snprintf(path, sizeof path, "%s/data.mdb.compact", dir);
    cr_expect_neq(stat(path, &st), 0, "no copy is left");
    free(bytes0);
    free(bytes1);
}

Test(compact, a_copy_left_by_a_compaction_that_died_is_not_in_the_way)
{
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s", cvg_test_dir("compact-stale"));
    cvg_replica *r = open_at(dir);
    churn(r);
    char *before = cvg_test_state(r);
    cvg_replica_close(r);
    snprintf(path, sizeof path, "%s/data.mdb.compact", dir);
    FILE *f = fopen(path, "wb");
    cr_assert(f != NULL);
    fputs("half a copy", f);
    fclose(f);
    r = open_at(dir); /* the open does not look at it */
    char *mid = cvg_test_state(r);
    cr_expect_str_eq(mid, before);
    cvg_replica_close(r);
    cvg_compact_report rep;
    OK(cvg_replica_compact(dir, &rep));
    struct stat st;
    cr_expect_neq(stat(path, &st), 0, "the stale copy is gone");
    r = open_at(dir);
    char *after = cvg_test_state(r);
    cr_expect_str_eq(after, before);
    cvg_replica_close(r);
    free(before);
    free(mid);
    free(after);
}

Test(compact, no_replica_and_bad_arguments)
{
    cvg_compact_report rep;
    cr_expect_eq(cvg_replica_compact(NULL, &rep), CVG_EINVAL);
    cr_expect_eq(cvg_replica_compact("/nonexistent/replica", &rep),
                 CVG_ENOTFOUND);
    const char *empty = cvg_test_dir("compact-none");
    cr_expect_eq(cvg_replica_compact(empty, NULL), CVG_EINVAL);
    cr_expect_eq(cvg_replica_compact(empty, &rep), CVG_ENOTFOUND);
}
