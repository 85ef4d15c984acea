/* A truncated or damaged data file: LMDB maps it and trusts it, so a page
 * past the end was a SIGBUS and a zeroed page an abort. The store checks
 * the file at open (src/oplog/lmdb_meta.c). Here copies of one replica are
 * truncated to many sizes, or have a root page zeroed, and each of open,
 * stats (status), get and write runs in a child process: it must end with
 * CVG_ECORRUPT (or, where only free pages were cut off, succeed with every
 * value intact), and never by a signal. The page validator the checks use
 * is also fed garbage and broken copies of real pages. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "converge.h"

#include "oplog/lmdb_meta.h"
#include "testutil.h"

#define SETS 40      /* small commits, as `converge set` makes */
#define BIG_SETS 30  /* and some larger values, so the trees have depth */
#define BIG_LEN 1500 /* bytes of each larger value */
#define ALL_OK 100   /* a child's exit: everything ran and read right */

enum op { OP_OPEN, OP_STATS, OP_GET, OP_WRITE, OP_COUNT };
static const char *op_names[] = {"open", "stats", "get", "write"};

static char src_dir[512];

static void
key_of(int i, char *buf, size_t n, cvg_key *k)
{
    snprintf(buf, n, "k%d", i);
    k->collection = "c";
    k->key = buf;
    k->field = "f";
}

static void
big_value(int i, char *buf)
{
    memset(buf, 'a' + i % 26, BIG_LEN);
    buf[BIG_LEN] = '\0';
}

/* The replica every copy is made from. */
static void
make_source(void)
{
    snprintf(src_dir, sizeof src_dir, "%s", cvg_test_dir("damaged-src"));
    cvg_replica *r;
    cr_assert_eq(cvg_replica_open(src_dir, NULL, &r), CVG_OK);
    char name[32], big[BIG_LEN + 1];
    for (int i = 0; i < SETS + BIG_SETS; i++) {
        cvg_txn *t;
        cvg_key k;
        key_of(i, name, sizeof name, &k);
        cr_assert_eq(cvg_txn_begin(r, 0, &t), CVG_OK);
        cvg_value v = cvg_value_int(i);
        if (i >= SETS) {
            big_value(i, big);
            v = cvg_value_string(big);
        }
        cr_assert_eq(cvg_register_set(t, &k, &v, NULL), CVG_OK);
        cr_assert_eq(cvg_txn_commit(t), CVG_OK);
    }
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

/* A fresh copy of the source replica in @p dir. */
static void
copy_replica(const char *dir)
{
    char a[700], b[700];
    const char *files[] = {"data.mdb", "identity.key"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(a, sizeof a, "%s/%s", src_dir, files[i]);
        snprintf(b, sizeof b, "%s/%s", dir, files[i]);
        copy_file(a, b);
    }
    snprintf(b, sizeof b, "%s/lock.mdb", dir);
    unlink(b);
}

static off_t
data_size(const char *dir)
{
    char p[700];
    struct stat st;
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    cr_assert_eq(stat(p, &st), 0);
    return st.st_size;
}

/* In the child: run @p op; ALL_OK, or the code negated. */
static int
child_op(const char *dir, enum op op)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.read_only = op == OP_STATS || op == OP_GET;
    o.no_create = true;
    cvg_replica *r;
    int rc = cvg_replica_open(dir, &o, &r);
    if (rc != CVG_OK) {
        return -rc;
    }
    if (op == OP_STATS) {
        cvg_replica_stats st;
        rc = cvg_replica_stats_get(r, &st, sizeof st);
        if (rc == CVG_OK && st.last_lsn != SETS + BIG_SETS) {
            rc = CVG_EINVAL; /* wrong figures: not a pass */
        }
    } else if (op == OP_GET) {
        cvg_txn *t;
        rc = cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t);
        char name[32], big[BIG_LEN + 1];
        for (int i = 0; rc == CVG_OK && i < SETS + BIG_SETS; i++) {
            cvg_key k;
            cvg_value v;
            key_of(i, name, sizeof name, &k);
            rc = cvg_register_get(t, &k, &v);
            if (rc != CVG_OK) {
                break;
            }
            if (i < SETS) {
                rc = v.kind == CVG_VALUE_INT && v.as.integer == i ? CVG_OK
                                                                  : CVG_EINVAL;
            } else {
                big_value(i, big);
                rc = v.kind == CVG_VALUE_STRING && v.as.bytes.len == BIG_LEN &&
                             memcmp(v.as.bytes.data, big, BIG_LEN) == 0
                         ? CVG_OK
                         : CVG_EINVAL;
            }
        }
        if (t != NULL) {
            cvg_txn_abort(t);
        }
    } else if (op == OP_WRITE) {
        cvg_txn *t;
        rc = cvg_txn_begin(r, 0, &t);
        if (rc == CVG_OK) {
            cvg_key k = {"c", "new", "f"};
            cvg_value v = cvg_value_int(7);
            rc = cvg_register_set(t, &k, &v, NULL);
            rc = rc == CVG_OK ? cvg_txn_commit(t) : (cvg_txn_abort(t), rc);
        }
    }
    cvg_replica_close(r);
    return rc == CVG_OK ? ALL_OK : -rc;
}

/* Run @p op in a child on a fresh copy cut by @p mutate; its exit code. */
static int
run_op(enum op op, void (*mutate)(const char *dir, long arg), long arg,
       const char *what)
{
    const char *d = cvg_test_dir("damaged-copy");
    char dir[512];
    snprintf(dir, sizeof dir, "%s", d);
    copy_replica(dir);
    mutate(dir, arg);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        _exit(child_op(dir, op));
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(!WIFSIGNALED(status), "%s: %s died by signal %d", what,
              op_names[op], WTERMSIG(status));
    cr_assert(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void
truncate_to(const char *dir, long size)
{
    char p[700];
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    cr_assert_eq(truncate(p, (off_t)size), 0);
}

static void
zero_page(const char *dir, long pgno)
{
    char p[700];
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    int fd = open(p, O_RDWR);
    cr_assert_geq(fd, 0);
    static char zeros[65536];
    long psize = sysconf(_SC_PAGESIZE);
    cr_assert_eq(pwrite(fd, zeros, (size_t)psize, (off_t)(pgno * psize)),
                 psize);
    close(fd);
}

static void
read_meta(const char *dir, cvg__lmdb_meta *m)
{
    char p[700], why[256];
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    int fd = open(p, O_RDONLY);
    cr_assert_geq(fd, 0);
    bool empty;
    cr_assert_eq(cvg__lmdb_check_file(fd, m, &empty, why, sizeof why), CVG_OK,
                 "%s", why);
    close(fd);
}

/* The sizes of the first report: every op is CVG_ECORRUPT. */
Test(damaged, truncated_files_are_corrupt_for_every_op)
{
    make_source();
    long size = (long)data_size(src_dir);
    long psize = sysconf(_SC_PAGESIZE);
    long sizes[] = {0, 100, psize, 2 * psize, 4 * psize, size / 2};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        for (int op = 0; op < OP_COUNT; op++) {
            char what[64];
            snprintf(what, sizeof what, "truncated to %ld", sizes[i]);
            int code = run_op((enum op)op, truncate_to, sizes[i], what);
            cr_expect_eq(code, -CVG_ECORRUPT,
                         "%s of %ld bytes (of %ld): exit %d, not CVG_ECORRUPT",
                         op_names[op], sizes[i], size, code);
        }
    }
}

/* Every size from two pages up: CVG_ECORRUPT, or, where only free pages
 * were cut off, a pass with every value read back right. */
Test(damaged, every_truncation_is_corrupt_or_harmless, .timeout = 120)
{
    make_source();
    long size = (long)data_size(src_dir);
    long psize = sysconf(_SC_PAGESIZE);
    int corrupt = 0;
    for (long cut = 2 * psize - 1; cut < size; cut += psize / 2) {
        for (int op = 0; op < OP_COUNT; op++) {
            char what[64];
            snprintf(what, sizeof what, "truncated to %ld", cut);
            int code = run_op((enum op)op, truncate_to, cut, what);
            cr_expect(code == -CVG_ECORRUPT || code == ALL_OK,
                      "%s of %ld bytes (of %ld): exit %d", op_names[op], cut,
                      size, code);
            corrupt += code == -CVG_ECORRUPT;
        }
    }
    cr_expect_gt(corrupt, 0);
}

Test(damaged, zeroed_root_pages_are_corrupt)
{
    make_source();
    cvg__lmdb_meta m;
    read_meta(src_dir, &m);
    cr_assert_neq(m.main_root, CVG__LMDB_NOPAGE);
    cr_assert_neq(m.free_root, CVG__LMDB_NOPAGE);
    long pages[] = {0, 1, (long)m.main_root, (long)m.free_root};
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
        for (int op = 0; op < OP_COUNT; op++) {
            char what[64];
            snprintf(what, sizeof what, "page %ld zeroed", pages[i]);
            int code = run_op((enum op)op, zero_page, pages[i], what);
            cr_expect_eq(code, -CVG_ECORRUPT, "%s with %s: exit %d",
                         op_names[op], what, code);
        }
    }
}

/* The open's message says what is wrong and where. */
Test(damaged, the_message_says_truncated)
{
    make_source();
    const char *d = cvg_test_dir("damaged-msg");
    char dir[512];
    snprintf(dir, sizeof dir, "%s", d);
    copy_replica(dir);
    truncate_to(dir, 4 * sysconf(_SC_PAGESIZE));
    cvg_replica *r;
    cr_assert_eq(cvg_replica_open(dir, NULL, &r), CVG_ECORRUPT);
    const char *msg = cvg_replica_errmsg(NULL);
    cr_expect(strstr(msg, "truncated") != NULL, "%s", msg);
    cr_expect(strstr(msg, dir) != NULL, "%s", msg);
}

/* The page validator: real pages pass; broken copies and garbage fail,
 * and nothing it is fed makes it read outside the page. */
Test(damaged, page_check_on_real_broken_and_random_pages)
{
    make_source();
    cvg__lmdb_meta m;
    read_meta(src_dir, &m);
    char p[700];
    snprintf(p, sizeof p, "%s/data.mdb", src_dir);
    int fd = open(p, O_RDONLY);
    cr_assert_geq(fd, 0);
    uint8_t *page = malloc(m.psize), *bad = malloc(m.psize);
    cr_assert(page != NULL && bad != NULL);
    cr_assert_eq(pread(fd, page, m.psize, (off_t)(m.main_root * m.psize)),
                 (ssize_t)m.psize);
    close(fd);
    char why[160];
    cr_assert_eq(cvg__lmdb_page_check(page, m.psize, m.main_root, m.last_pg,
                                      why, sizeof why),
                 CVG_OK, "%s", why);
    /* Its number, kind, bounds and first node offset, broken in turn. */
    size_t offs[] = {0, 10, 12, 14, 16};
    uint16_t vals[] = {0xffff, 0, 0x0200, 0xfff0, 2};
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        memcpy(bad, page, m.psize);
        memcpy(bad + offs[i], &vals[i], 2);
        cr_expect_eq(cvg__lmdb_page_check(bad, m.psize, m.main_root, m.last_pg,
                                          why, sizeof why),
                     CVG_ECORRUPT, "field at %zu", offs[i]);
    }
    /* The same page with a too-small last page: its databases' roots are
     * past it. */
    cr_expect_eq(
        cvg__lmdb_page_check(page, m.psize, m.main_root, 2, why, sizeof why),
        CVG_ECORRUPT);
    uint64_t seed = cvg_test_seed(0x5eed), st = seed;
    for (int i = 0; i < 20000; i++) {
        for (uint32_t j = 0; j < m.psize; j += 8) {
            uint64_t x = cvg_test_rand(&st);
            memcpy(bad + j, &x, 8);
        }
        if (i % 2 == 0) { /* plausible header, random nodes */
            memcpy(bad, page, CVG__LMDB_PAGEHDR);
        }
        (void)cvg__lmdb_page_check(bad, m.psize, m.main_root, m.last_pg, why,
                                   sizeof why);
    }
    free(page);
    free(bad);
}
