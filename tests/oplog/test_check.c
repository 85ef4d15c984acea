/* The full check (cvg_replica_check, `converge check`), and the
 * corruption suite it gates.
 *
 * A source replica holds every type, ops of two origins, values on
 * overflow pages and trees several pages deep. The check passes on it (and
 * on it as format 1), and finds each kind of damage put in by hand: a
 * flipped value byte, a zeroed page deep in a tree, a truncated file, a
 * dots entry or an origin seq that disagrees with the log.
 *
 * Then seeded mutations of copies (truncations, zeroed pages, flipped bytes
 * in the data and lock files): each copy is checked in a child process
 * under a time limit, and what the check passes is read whole, written and
 * synced to a new peer. No child may die by a signal or hang, and none
 * that the check passed may read a value other than the source's, or hand
 * a peer anything else. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <fcntl.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "converge.h"

#include "digest.h"
#include "oplog/checksum.h"
#include "raw_record.h"
#include "testutil.h"

#define OK(x) cr_assert_eq((x), CVG_OK, "%s", #x)

#define REGISTERS 600 /* in commits of 50: trees a few pages deep */
#define BIG 12        /* values of 5,000 bytes: overflow pages */
#define BIG_LEN 5000
#define MUTATIONS 240

static const char marker[] = "check-test-marker-value-0123456789";

static char src_dir[512];
static char *src_digest;

static cvg_key
key(const char *c, const char *k, const char *f)
{
    cvg_key out = {.collection = c, .key = k, .field = f};
    return out;
}

static void
write_source(cvg_replica *r, cvg_replica *other)
{
    char name[32];
    cvg_txn *t;
    for (int i = 0; i < REGISTERS; i++) {
        if (i % 50 == 0) {
            OK(cvg_txn_begin(r, 0, &t));
        }
        snprintf(name, sizeof name, "k%05d", i);
        cvg_key k = key("regs", name, "v");
        cvg_value v = cvg_value_int(i * 7);
        OK(cvg_register_set(t, &k, &v, NULL));
        if (i % 50 == 49) {
            OK(cvg_txn_commit(t));
        }
    }
    static char big[BIG_LEN + 1];
    OK(cvg_txn_begin(r, 0, &t));
    for (int i = 0; i < BIG; i++) {
        memset(big, 'a' + i, BIG_LEN);
        snprintf(name, sizeof name, "big%02d", i);
        cvg_key k = key("docs", name, "body");
        cvg_value v = cvg_value_string(big);
        OK(cvg_register_set(t, &k, &v, NULL));
    }
    cvg_key k = key("docs", "m", "title");
    cvg_value v = cvg_value_string(marker);
    OK(cvg_register_set(t, &k, &v, NULL));
    OK(cvg_txn_commit(t));

    /* The other origin: counters, a set, a multi-value register. */
    OK(cvg_txn_begin(other, 0, &t));
    k = key("stock", "apples", "count");
    OK(cvg_counter_add(t, &k, 40, NULL));
    OK(cvg_counter_add(t, &k, -3, NULL));
    k = key("tags", "t", "set");
    for (int i = 0; i < 30; i++) {
        snprintf(name, sizeof name, "tag-%d", i);
        cvg_value e = cvg_value_string(name);
        OK(cvg_set_add(t, &k, &e, NULL));
    }
    cvg_value e = cvg_value_string("tag-3");
    OK(cvg_set_remove(t, &k, &e, NULL));
    k = key("notes", "n", "text");
    v = cvg_value_string("from the other");
    OK(cvg_mvregister_set(t, &k, &v, NULL));
    k = key("gone", "g", "x");
    v = cvg_value_int(1);
    OK(cvg_register_set(t, &k, &v, NULL));
    OK(cvg_txn_commit(t));
    OK(cvg_txn_begin(other, 0, &t));
    k = key("gone", "g", "");
    OK(cvg_record_delete(t, &k, NULL));
    OK(cvg_txn_commit(t));
    OK(cvg_sync_local(r, other, NULL));
}

static void
make_source(void)
{
    snprintf(src_dir, sizeof src_dir, "%s", cvg_test_dir("check-src"));
    char other_dir[512];
    snprintf(other_dir, sizeof other_dir, "%s", cvg_test_dir("check-other"));
    cvg_replica *r, *o;
    OK(cvg_replica_open(src_dir, NULL, &r));
    OK(cvg_replica_open(other_dir, NULL, &o));
    write_source(r, o);
    OK(cvg_test_digest(r, &src_digest));
    cvg_replica_close(o);
    cvg_replica_close(r);
}

static void
copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    cr_assert_not_null(in, "open %s", from);
    FILE *out = fopen(to, "wb");
    cr_assert_not_null(out, "create %s", to);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
        cr_assert_eq(fwrite(buf, 1, n, out), n);
    }
    fclose(in);
    cr_assert_eq(fclose(out), 0);
}

/* A fresh copy of the source replica, lock file included. */
static void
copy_replica(const char *dir)
{
    char a[700], b[700];
    const char *files[] = {"data.mdb", "identity.key", "lock.mdb"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(a, sizeof a, "%s/%s", src_dir, files[i]);
        snprintf(b, sizeof b, "%s/%s", dir, files[i]);
        copy_file(a, b);
    }
}

static int
check(const char *dir, cvg_check_report *rep)
{
    return cvg_replica_check(dir, rep);
}

Test(check, a_sound_replica_passes)
{
    make_source();
    cvg_check_report rep;
    int rc = check(src_dir, &rep);
    cr_assert_eq(rc, CVG_OK, "%s: %s", cvg_errname(rc), rep.problem);
    cr_expect_str_eq(rep.problem, "");
    cr_expect_gt(rep.pages, 10);
    cr_expect_gt(rep.records, REGISTERS);
    /* 600 + 13 sets, 2 adds, 30 adds, 1 remove, 2 sets, 1 delete. */
    cr_expect_eq(rep.log_ops, REGISTERS + BIG + 1 + 2 + 30 + 1 + 2 + 1);
    cr_expect_gt(rep.log_blocks, 0);
    cr_expect_geq(rep.state_records, REGISTERS + BIG);
    cr_expect_eq(rep.origins, 2);
    /* The same replica as format 1, without checksums. */
    cvg_test_make_format_1(src_dir);
    rc = check(src_dir, &rep);
    cr_expect_eq(rc, CVG_OK, "format 1: %s: %s", cvg_errname(rc), rep.problem);
    /* Not by path while this process holds it open: through the handle. */
    cvg_replica *r;
    OK(cvg_replica_open(src_dir, NULL, &r));
    cr_expect_eq(check(src_dir, &rep), CVG_EBUSY);
    cvg_check_report by_handle;
    rc = cvg_replica_verify(r, &by_handle);
    cr_expect_eq(rc, CVG_OK, "%s: %s", cvg_errname(rc), by_handle.problem);
    cr_expect_gt(by_handle.pages, 10);
    cr_expect_eq(by_handle.log_ops, REGISTERS + BIG + 1 + 2 + 30 + 1 + 2 + 1);
    cvg_txn *t;
    OK(cvg_txn_begin(r, 0, &t));
    cr_expect_eq(cvg_replica_verify(r, &by_handle), CVG_EBUSY);
    cvg_txn_abort(t);
    cr_expect_eq(cvg_replica_verify(NULL, &by_handle), CVG_EINVAL);
    cr_expect_eq(cvg_replica_verify(r, NULL), CVG_EINVAL);
    cvg_replica_close(r);
    cr_expect_eq(check("/nonexistent/replica", &rep), CVG_ENOTFOUND);
    cr_expect_eq(cvg_replica_check(src_dir, NULL), CVG_EINVAL);
}

/* Run the check in a child (a crash must not take the test with it); its
 * code, and the problem it found through @p problem. */
static int
check_in_child(const char *dir, char *problem, size_t len)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        close(fds[0]);
        alarm(60);
        cvg_check_report rep;
        int rc = check(dir, &rep);
        ssize_t w = write(fds[1], rep.problem, strlen(rep.problem));
        (void)w;
        _exit(-rc);
    }
    close(fds[1]);
    ssize_t n = read(fds[0], problem, len - 1);
    problem[n > 0 ? n : 0] = '\0';
    close(fds[0]);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(!WIFSIGNALED(status), "the check died by signal %d",
              WTERMSIG(status));
    return -WEXITSTATUS(status);
}

static uint8_t *
read_all(const char *path, size_t *n)
{
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0);
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    *n = (size_t)st.st_size;
    uint8_t *buf = malloc(*n + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(pread(fd, buf, *n, 0), (ssize_t)*n);
    close(fd);
    return buf;
}

static void
write_all(const char *path, const uint8_t *buf, size_t n)
{
    int fd = open(path, O_WRONLY | O_TRUNC);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pwrite(fd, buf, n, 0), (ssize_t)n);
    close(fd);
}

/* Another process commits while the check reads: the check must never
 * take a commit under way for damage (it walks the snapshot it pins). */
Test(check, a_writer_meanwhile_is_not_damage, .timeout = 120)
{
    make_source();
    pid_t writer = fork();
    cr_assert_neq(writer, -1);
    if (writer == 0) {
        cvg_replica *r;
        if (cvg_replica_open(src_dir, NULL, &r) != CVG_OK) {
            _exit(1);
        }
        char name[32];
        /* Bounded: 1,500 commits, both small and large, growing the tree. */
        for (int i = 0; i < 1500; i++) {
            cvg_txn *t;
            if (cvg_txn_begin(r, 0, &t) != CVG_OK) {
                _exit(2);
            }
            for (int j = 0; j < 1 + i % 40; j++) {
                snprintf(name, sizeof name, "w%05d-%d", i, j);
                cvg_key k = key("writes", name, "v");
                cvg_value v = cvg_value_int(i);
                if (cvg_register_set(t, &k, &v, NULL) != CVG_OK) {
                    _exit(3);
                }
            }
            if (cvg_txn_commit(t) != CVG_OK) {
                _exit(4);
            }
        }
        cvg_replica_close(r);
        _exit(0);
    }
    int checks = 0, status = 0;
    pid_t done = 0;
    while (done == 0 && checks < 2000) {
        cvg_check_report rep;
        int rc = cvg_replica_check(src_dir, &rep);
        cr_assert_eq(rc, CVG_OK, "check %d during writes: %s: %s", checks,
                     cvg_errname(rc), rep.problem);
        checks++;
        done = waitpid(writer, &status, WNOHANG);
    }
    if (done == 0) {
        cr_assert_eq(waitpid(writer, &status, 0), writer);
    }
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "the writer failed: %d", status);
    cr_log_info("%d checks while the writer committed", checks);
    cr_expect_gt(checks, 1);
}

/* ---- The corruption suite ------------------------------------------------*/

enum {
    CHILD_REFUSED = 10,  /* the check found damage */
    CHILD_SOUND = 11,    /* passed, and everything read and synced right */
    CHILD_ERRORED = 12,  /* passed, but a later call gave an error code */
    CHILD_WRONG = 13,    /* passed, and a value read or synced was wrong */
    CHILD_UNCHECKED = 14 /* the check could not run (not damage) */
};

static int
child_run(const char *dir, const char *peer_dir)
{
    alarm(60);
    cvg_check_report rep;
    int rc = cvg_replica_check(dir, &rep);
    bool passed = rc == CVG_OK;
    if (rc != CVG_OK && rc != CVG_ECORRUPT) {
        return CHILD_UNCHECKED;
    }
    /* A replica the check refuses may still make LMDB abort where a
     * damaged page lies (docs/architecture.md): the check is the gate. */
    if (!passed) {
        return CHILD_REFUSED;
    }
    cvg_replica *r;
    char *d = NULL;
    rc = cvg_replica_open(dir, NULL, &r);
    if (rc == CVG_OK) {
        rc = cvg_test_digest(r, &d);
        if (rc == CVG_OK && strcmp(d, src_digest) != 0) {
            return CHILD_WRONG;
        }
        cvg_txn *t;
        if (cvg_txn_begin(r, 0, &t) == CVG_OK) {
            cvg_key k = key("stock", "apples", "count");
            int wrc = cvg_counter_add(t, &k, 1, NULL);
            if (wrc == CVG_OK) {
                wrc = cvg_txn_commit(t);
            } else {
                cvg_txn_abort(t);
            }
            rc = rc == CVG_OK ? wrc : rc;
        }
        cvg_replica *p;
        if (cvg_replica_open(peer_dir, NULL, &p) == CVG_OK) {
            int src = cvg_sync_local(r, p, NULL);
            char *a = NULL, *b = NULL;
            if (src == CVG_OK && cvg_test_digest(r, &a) == CVG_OK &&
                cvg_test_digest(p, &b) == CVG_OK && strcmp(a, b) != 0) {
                return CHILD_WRONG;
            }
            free(a);
            free(b);
            rc = rc == CVG_OK ? src : rc;
            cvg_replica_close(p);
        }
        cvg_replica_close(r);
    }
    free(d);
    return rc == CVG_OK ? CHILD_SOUND : CHILD_ERRORED;
}

/* The page numbers of the leaves of the `state` table (kind leaf, below
 * the root), found by their flag at page offset 10. */
static size_t
leaf_pages(const uint8_t *file, size_t n, size_t *out, size_t max)
{
    size_t found = 0;
    for (size_t pg = 2; (pg + 1) * 4096 <= n && found < max; pg++) {
        uint16_t flags;
        memcpy(&flags, file + pg * 4096 + 10, 2);
        if (flags == 0x02) {
            out[found++] = pg;
        }
    }
    return found;
}

/* The value of state record @p key (checksum stripped) in the closed
 * replica at @p dir, into @p out; its length. */
static size_t
raw_state_value(const char *dir, const char *key, size_t klen, uint8_t *out,
                size_t cap)
{
    MDB_env *env;
    cr_assert_eq(mdb_env_create(&env), MDB_SUCCESS);
    mdb_env_set_maxdbs(env, 16);
    cr_assert_eq(mdb_env_open(env, dir, MDB_RDONLY, 0600), MDB_SUCCESS);
    MDB_txn *t;
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &t), MDB_SUCCESS);
    MDB_dbi db;
    cr_assert_eq(mdb_dbi_open(t, "state", 0, &db), MDB_SUCCESS);
    MDB_val k = {klen, (void *)key}, v;
    cr_assert_eq(mdb_get(t, db, &k, &v), MDB_SUCCESS);
    cr_assert(cvg__ck_open(&k, &v));
    cr_assert_leq(v.mv_size, cap);
    memcpy(out, v.mv_data, v.mv_size);
    size_t n = v.mv_size;
    mdb_txn_abort(t);
    mdb_env_close(env);
    return n;
}

/* The key of the first dots entry of the replica in @p dir. */
static void
first_dots_key(const char *dir, uint8_t out[24])
{
    MDB_env *env;
    cr_assert_eq(mdb_env_create(&env), MDB_SUCCESS);
    mdb_env_set_maxdbs(env, 16);
    cr_assert_eq(mdb_env_open(env, dir, MDB_RDONLY, 0600), MDB_SUCCESS);
    MDB_txn *t;
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &t), MDB_SUCCESS);
    MDB_dbi db;
    cr_assert_eq(mdb_dbi_open(t, "dots", 0, &db), MDB_SUCCESS);
    MDB_cursor *c;
    cr_assert_eq(mdb_cursor_open(t, db, &c), MDB_SUCCESS);
    MDB_val k, v;
    cr_assert_eq(mdb_cursor_get(c, &k, &v, MDB_FIRST), MDB_SUCCESS);
    cr_assert_eq(k.mv_size, 24);
    memcpy(out, k.mv_data, 24);
    mdb_cursor_close(c);
    mdb_txn_abort(t);
    mdb_env_close(env);
}

Test(check, each_kind_of_damage_is_found)
{
    make_source();
    char dir[512], problem[256], path[700];
    snprintf(dir, sizeof dir, "%s", cvg_test_dir("check-damage"));
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    size_t n;

    /* A flipped byte of a value: its checksum. */
    copy_replica(dir);
    uint8_t *f = read_all(path, &n);
    size_t hits = 0;
    for (size_t i = 0; i + sizeof marker - 1 <= n; i++) {
        if (memcmp(f + i, marker, sizeof marker - 1) == 0) {
            f[i + 3] ^= 0x01;
            hits++;
        }
    }
    cr_assert_geq(hits, 1);
    write_all(path, f, n);
    free(f);
    cr_expect_eq(check_in_child(dir, problem, sizeof problem), CVG_ECORRUPT);
    cr_expect(strstr(problem, "checksum") != NULL, "%s", problem);

    /* Every leaf page zeroed in turn (free pages among them): found
     * before LMDB reads it, or not read at all. */
    copy_replica(dir);
    uint8_t *orig = read_all(path, &n);
    size_t leaves[64];
    size_t nl = leaf_pages(orig, n, leaves, 64);
    cr_assert_gt(nl, 3, "the source has several leaf pages");
    size_t found = 0;
    char peer[512];
    for (size_t i = 0; i < nl; i++) {
        uint8_t *g = malloc(n);
        cr_assert_not_null(g);
        memcpy(g, orig, n);
        memset(g + leaves[i] * 4096, 0, 4096);
        snprintf(dir, sizeof dir, "%s", cvg_test_dir("check-damage"));
        snprintf(path, sizeof path, "%s/data.mdb", dir);
        copy_replica(dir);
        write_all(path, g, n);
        free(g);
        snprintf(peer, sizeof peer, "%s", cvg_test_dir("check-peer"));
        pid_t pid = fork();
        cr_assert_neq(pid, -1);
        if (pid == 0) {
            _exit(child_run(dir, peer));
        }
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(!WIFSIGNALED(status), "page %zu zeroed: signal %d", leaves[i],
                  WTERMSIG(status));
        int code = WEXITSTATUS(status);
        cr_expect(code == CHILD_REFUSED || code == CHILD_SOUND,
                  "page %zu zeroed: exit %d", leaves[i], code);
        found += code == CHILD_REFUSED;
    }
    cr_expect_gt(found, 0, "%zu of %zu zeroed leaves found", found, nl);
    free(orig);

    /* A key changed where it sits in its leaf, out of LMDB's order: a
     * lookup would miss it while a cursor finds it. */
    snprintf(dir, sizeof dir, "%s", cvg_test_dir("check-damage"));
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    copy_replica(dir);
    f = read_all(path, &n);
    static const char skey[] = "regs\0k00301\0v\0\2";
    hits = 0;
    for (size_t i = 0; i + sizeof skey - 1 <= n; i++) {
        if (memcmp(f + i, skey, sizeof skey - 1) == 0) {
            f[i + 8] = '0'; /* k00301 -> k00001, among the k003xx */
            hits++;
        }
    }
    /* In its leaf, and maybe in free pages too: those of the journal
     * records a checkpoint wrote out (changing them changes nothing). */
    cr_assert_geq(hits, 1, "the state key is in the file");
    write_all(path, f, n);
    free(f);
    cr_expect_eq(check_in_child(dir, problem, sizeof problem), CVG_ECORRUPT);
    cr_expect(strstr(problem, "out of order") != NULL, "%s", problem);

    /* One register's state record under another's key, with a checksum
     * that fits: only the log can tell, since the record's write is an op
     * on the first field. */
    snprintf(dir, sizeof dir, "%s", cvg_test_dir("check-damage"));
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    copy_replica(dir);
    static const char from_key[] = "regs\0k00001\0v\0\2";
    static const char to_key[] = "regs\0k00002\0v\0\2";
    uint8_t moved[512];
    size_t moved_len = raw_state_value(dir, from_key, sizeof from_key - 1,
                                       moved, sizeof moved);
    cvg_test_raw_put(dir, "state", to_key, sizeof to_key - 1, moved, moved_len,
                     true);
    cr_expect_eq(check_in_child(dir, problem, sizeof problem), CVG_ECORRUPT);
    cr_expect(strstr(problem, "another field") != NULL, "%s", problem);

    /* A truncated file. */
    copy_replica(dir);
    cr_assert_eq(truncate(path, 8192 * 2), 0);
    cr_expect_eq(check_in_child(dir, problem, sizeof problem), CVG_ECORRUPT);
    cr_expect(strstr(problem, "truncated") != NULL, "%s", problem);

    /* A dots entry gone, behind the library's back. */
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.read_only = true;
    cvg_replica *r;
    OK(cvg_replica_open(src_dir, &o, &r));
    cvg_replica_id id;
    cvg_replica_id_get(r, &id);
    cvg_replica_close(r);
    copy_replica(dir);
    uint8_t dk[24];
    first_dots_key(dir, dk);
    cvg_test_raw_put(dir, "dots", dk, 24, NULL, 0, true);
    cr_expect_eq(check_in_child(dir, problem, sizeof problem), CVG_ECORRUPT);
    cr_expect(strstr(problem, "dots") != NULL, "%s", problem);

    /* An origin's seq in the table that the log does not have. */
    copy_replica(dir);
    uint8_t ok[4] = {0, 0, 0, 0}, ov[24];
    memcpy(ov, id.bytes, 16);
    memset(ov + 16, 0, 8);
    ov[22] = 0x10; /* seq 4096: past the log */
    cvg_test_raw_put(dir, "origins", ok, 4, ov, 24, true);
    cr_expect_eq(check_in_child(dir, problem, sizeof problem), CVG_ECORRUPT);
    cr_expect(strstr(problem, "version vector") != NULL, "%s", problem);
}

static void
mutate(const char *dir, uint64_t *rng, char *what, size_t wlen)
{
    char path[700];
    bool lock = cvg_test_below(rng, 8) == 0;
    snprintf(path, sizeof path, "%s/%s", dir, lock ? "lock.mdb" : "data.mdb");
    size_t n;
    uint8_t *f = read_all(path, &n);
    size_t pages = n / 4096;
    switch (cvg_test_below(rng, 4)) {
    case 0: { /* truncate: page-aligned or anywhere */
        size_t to = cvg_test_below(rng, 2) ? cvg_test_below(rng, pages) * 4096
                                           : cvg_test_below(rng, n);
        snprintf(what, wlen, "%s truncated to %zu", path, to);
        n = to;
        break;
    }
    case 1: { /* zero a page */
        size_t pg = cvg_test_below(rng, pages);
        memset(f + pg * 4096, 0, 4096);
        snprintf(what, wlen, "%s page %zu zeroed", path, pg);
        break;
    }
    default: { /* flip 1 to 8 bytes, in one page or anywhere */
        size_t k = 1 + cvg_test_below(rng, 8);
        size_t pg = cvg_test_below(rng, pages);
        bool one_page = cvg_test_below(rng, 2);
        for (size_t i = 0; i < k; i++) {
            size_t at = one_page ? pg * 4096 + cvg_test_below(rng, 4096)
                                 : cvg_test_below(rng, n);
            f[at] ^= (uint8_t)(1 + cvg_test_below(rng, 255));
        }
        snprintf(what, wlen, "%s: %zu bytes flipped%s (page %zu)", path, k,
                 one_page ? " in one page" : " anywhere", pg);
        break;
    }
    }
    write_all(path, f, n);
    free(f);
}

Test(check, seeded_mutations_never_crash_and_what_passes_reads_right,
     .timeout = 600)
{
    make_source();
    uint64_t rng = cvg_test_seed(0xC0FFEE);
    unsigned counts[16] = {0};
    for (int m = 0; m < MUTATIONS; m++) {
        char dir[512], peer[512], what[800];
        snprintf(dir, sizeof dir, "%s", cvg_test_dir("check-mut"));
        snprintf(peer, sizeof peer, "%s", cvg_test_dir("check-mut-peer"));
        copy_replica(dir);
        mutate(dir, &rng, what, sizeof what);
        pid_t pid = fork();
        cr_assert_neq(pid, -1);
        if (pid == 0) {
            _exit(child_run(dir, peer));
        }
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(!WIFSIGNALED(status), "mutation %d (%s): died by signal %d",
                  m, what, WTERMSIG(status));
        int code = WEXITSTATUS(status);
        cr_assert(code >= CHILD_REFUSED && code <= CHILD_UNCHECKED,
                  "mutation %d (%s): exit %d", m, what, code);
        cr_assert_neq(code, CHILD_WRONG,
                      "mutation %d (%s): the check passed a replica that "
                      "reads or syncs wrong",
                      m, what);
        counts[code]++;
    }
    cr_log_info(
        "%d mutations: %u refused by the check, %u sound, %u passed "
        "but a later call failed, %u not checkable",
        MUTATIONS, counts[CHILD_REFUSED], counts[CHILD_SOUND],
        counts[CHILD_ERRORED], counts[CHILD_UNCHECKED]);
    /* What the check passes works: no read, write or sync of it fails. */
    cr_expect_eq(counts[CHILD_ERRORED], 0);
    /* The mutations do reach what matters. */
    cr_expect_gt(counts[CHILD_REFUSED], MUTATIONS / 10);
}
