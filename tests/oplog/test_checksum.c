/* Records with checksums (src/oplog/checksum.h): a replica of every type
 * is written, then
 * - its checksums are stripped and its format set back to 1, as a replica
 *   made before them: a read-only open reads it as it is, a writable open
 *   upgrades it, and both read the same values as before;
 * - a byte of a stored value is flipped where it sits in the data file:
 *   the read is CVG_ECORRUPT, never the damaged value, and a sync does not
 *   carry the damage to a peer. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "converge.h"

#include "common.h"
#include "digest.h"
#include "oplog/checksum.h"
#include "raw_record.h"
#include "testutil.h"

#define OK(x) cr_assert_eq((x), CVG_OK, "%s", #x)

/* A value found once in the state and once in the log, easy to find in
 * the file. */
static const char marker[] = "checksum-test-marker-value-0123456789";

static cvg_key
key(const char *k, const char *f)
{
    cvg_key out = {.collection = "c", .key = k, .field = f};
    return out;
}

static void
write_every_type(cvg_replica *r)
{
    cvg_txn *t;
    OK(cvg_txn_begin(r, 0, &t));
    cvg_key k = key("n", "count");
    OK(cvg_counter_add(t, &k, 41, NULL));
    OK(cvg_counter_add(t, &k, 1, NULL));
    k = key("s", "tags");
    cvg_value e = cvg_value_string("red");
    OK(cvg_set_add(t, &k, &e, NULL));
    e = cvg_value_string("blue");
    OK(cvg_set_add(t, &k, &e, NULL));
    OK(cvg_set_remove(t, &k, &e, NULL));
    k = key("m", "title");
    cvg_value v = cvg_value_string("draft");
    OK(cvg_mvregister_set(t, &k, &v, NULL));
    k = key("gone", "x");
    v = cvg_value_int(7);
    OK(cvg_register_set(t, &k, &v, NULL));
    OK(cvg_txn_commit(t));
    OK(cvg_txn_begin(r, 0, &t));
    k = key("gone", "");
    OK(cvg_record_delete(t, &k, NULL));
    k = key("r", "name");
    v = cvg_value_string(marker);
    OK(cvg_register_set(t, &k, &v, NULL));
    OK(cvg_txn_commit(t));
}

static char *
digest_of(cvg_replica *r)
{
    char *d;
    OK(cvg_test_digest(r, &d));
    return d;
}

/* The format record, and how many records (but it) have a right
 * checksum and how many do not. */
static uint64_t
survey(const char *dir, size_t *right, size_t *wrong)
{
    MDB_env *env;
    cr_assert_eq(mdb_env_create(&env), MDB_SUCCESS);
    mdb_env_set_maxdbs(env, 16);
    cr_assert_eq(mdb_env_open(env, dir, MDB_RDONLY, 0600), MDB_SUCCESS);
    MDB_txn *t;
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &t), MDB_SUCCESS);
    *right = *wrong = 0;
    uint64_t format = 0;
    for (size_t i = 0; i < CVG_TEST_NTABLES; i++) {
        MDB_dbi db;
        cr_assert_eq(mdb_dbi_open(t, cvg_test_tables[i], 0, &db), MDB_SUCCESS);
        MDB_cursor *c;
        cr_assert_eq(mdb_cursor_open(t, db, &c), MDB_SUCCESS);
        MDB_val k, v;
        for (int mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST); mrc == MDB_SUCCESS;
             mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
            if (cvg_test_is_format(&k)) {
                cr_assert_eq(v.mv_size, 8);
                format = cvg__get_be64(v.mv_data);
            } else if (cvg__ck_open(&k, &v)) {
                (*right)++;
            } else {
                (*wrong)++;
            }
        }
        mdb_cursor_close(c);
    }
    mdb_txn_abort(t);
    mdb_env_close(env);
    return format;
}

Test(checksum, every_record_of_a_new_replica_has_one)
{
    const char *dir = cvg_test_dir("ck-new");
    cvg_replica *r;
    OK(cvg_replica_open(dir, NULL, &r));
    write_every_type(r);
    cvg_replica_close(r);
    size_t right, wrong;
    cr_expect_eq(survey(dir, &right, &wrong), CVG_FORMAT_VERSION);
    cr_expect_eq(CVG_FORMAT_VERSION, 5);
    cr_expect_gt(right, 10);
    cr_expect_eq(wrong, 0);
}

Test(checksum, a_replica_of_format_1_is_read_and_upgraded)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s", cvg_test_dir("ck-v1"));
    cvg_replica *r;
    OK(cvg_replica_open(dir, NULL, &r));
    write_every_type(r);
    char *before = digest_of(r);
    cvg_replica_close(r);
    cvg_test_make_format_1(dir);
    size_t right, wrong;
    cr_assert_eq(survey(dir, &right, &wrong), 1);
    cr_assert_gt(wrong, 10);

    /* Read-only: read as it is, nothing written. */
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.read_only = true;
    OK(cvg_replica_open(dir, &o, &r));
    char *ro = digest_of(r);
    cr_expect_str_eq(ro, before);
    cvg_replica_close(r);
    cr_expect_eq(survey(dir, &right, &wrong), 1);

    /* Writable: upgraded, the same values, and it writes on. */
    OK(cvg_replica_open(dir, NULL, &r));
    char *rw = digest_of(r);
    cr_expect_str_eq(rw, before);
    cvg_txn *t;
    OK(cvg_txn_begin(r, 0, &t));
    cvg_key k = key("n", "count");
    OK(cvg_counter_add(t, &k, 1, NULL));
    OK(cvg_txn_commit(t));
    cvg_replica_close(r);
    cr_expect_eq(survey(dir, &right, &wrong), CVG_FORMAT_VERSION);
    cr_expect_gt(right, 10);
    cr_expect_eq(wrong, 0);

    OK(cvg_replica_open(dir, NULL, &r));
    OK(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t));
    int64_t n = 0;
    OK(cvg_counter_get(t, &k, &n));
    cr_expect_eq(n, 43);
    cvg_txn_abort(t);
    cvg_replica_close(r);
    free(before);
    free(ro);
    free(rw);
}

/* Flip one byte of every copy of the marker in the data file (the state
 * record, the log block, and any free page that still holds one). */
static size_t
damage_marker(const char *dir)
{
    char path[600];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n);
    cr_assert_not_null(buf);
    cr_assert_eq(pread(fd, buf, n, 0), (ssize_t)n);
    size_t len = strlen(marker), hits = 0;
    for (size_t i = 0; i + len <= n; i++) {
        if (memcmp(buf + i, marker, len) == 0) {
            buf[i + len / 2] ^= 0x20; /* a letter changes case */
            hits++;
        }
    }
    cr_assert_eq(pwrite(fd, buf, n, 0), (ssize_t)n);
    close(fd);
    free(buf);
    return hits;
}

Test(checksum, a_damaged_value_is_corrupt_and_goes_nowhere)
{
    char dir[512], peer_dir[512];
    snprintf(dir, sizeof dir, "%s", cvg_test_dir("ck-damaged"));
    snprintf(peer_dir, sizeof peer_dir, "%s", cvg_test_dir("ck-peer"));
    cvg_replica *r;
    OK(cvg_replica_open(dir, NULL, &r));
    write_every_type(r);
    cvg_replica_close(r);
    cr_assert_geq(damage_marker(dir), 2, "the marker is in state and log");

    OK(cvg_replica_open(dir, NULL, &r));
    cvg_txn *t;
    OK(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t));
    cvg_key k = key("r", "name");
    cvg_value v;
    cr_expect_eq(cvg_register_get(t, &k, &v), CVG_ECORRUPT);
    cr_expect(strstr(cvg_replica_errmsg(r), "checksum") != NULL, "%s",
              cvg_replica_errmsg(r));
    /* What is not damaged still reads. */
    k = key("n", "count");
    int64_t n = 0;
    OK(cvg_counter_get(t, &k, &n));
    cr_expect_eq(n, 42);
    cvg_txn_abort(t);

    /* A peer asks for everything: the damaged block is not served. */
    cvg_replica *p;
    OK(cvg_replica_open(peer_dir, NULL, &p));
    cr_expect_eq(cvg_sync_local(r, p, NULL), CVG_ECORRUPT);
    OK(cvg_txn_begin(p, CVG_TXN_READ_ONLY, &t));
    k = key("r", "name");
    cr_expect_eq(cvg_register_get(t, &k, &v), CVG_ENOTFOUND);
    cvg_txn_abort(t);
    cvg_replica_close(p);
    cvg_replica_close(r);
}

/* Compact the replica in @p dir (no free pages left) and record, as its
 * map size, the size of its pages in use and a few more: an upgrade, which
 * writes every page again, must grow the map. */
static void
shrink_map(const char *dir)
{
    char tmp[600], from[700], to[700];
    snprintf(tmp, sizeof tmp, "%s-compact", dir);
    mkdir(tmp, 0700);
    MDB_env *env;
    cr_assert_eq(mdb_env_create(&env), MDB_SUCCESS);
    mdb_env_set_maxdbs(env, 16);
    cr_assert_eq(mdb_env_open(env, dir, 0, 0600), MDB_SUCCESS);
    cr_assert_eq(mdb_env_copy2(env, tmp, MDB_CP_COMPACT), MDB_SUCCESS);
    mdb_env_close(env);
    snprintf(from, sizeof from, "%s/data.mdb", tmp);
    snprintf(to, sizeof to, "%s/data.mdb", dir);
    cr_assert_eq(rename(from, to), 0);
    snprintf(from, sizeof from, "%s/lock.mdb", dir);
    unlink(from);
    cr_assert_eq(mdb_env_create(&env), MDB_SUCCESS);
    mdb_env_set_maxdbs(env, 16);
    cr_assert_eq(mdb_env_open(env, dir, 0, 0600), MDB_SUCCESS);
    /* What is in use, and room for this commit's few pages. */
    MDB_envinfo info;
    MDB_stat st;
    mdb_env_info(env, &info);
    mdb_env_stat(env, &st);
    size_t used = ((size_t)info.me_last_pgno + 1) * st.ms_psize;
    cr_assert_eq(mdb_env_set_mapsize(env, used + 16 * st.ms_psize),
                 MDB_SUCCESS);
    MDB_txn *t;
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &t), MDB_SUCCESS);
    MDB_dbi meta;
    cr_assert_eq(mdb_dbi_open(t, "meta", 0, &meta), MDB_SUCCESS);
    uint8_t one[8] = {0, 0, 0, 0, 0, 0, 0, 1};
    MDB_val k = {6, "format"}, v = {8, one};
    cr_assert_eq(mdb_put(t, meta, &k, &v, 0), MDB_SUCCESS);
    cr_assert_eq(mdb_txn_commit(t), MDB_SUCCESS);
    mdb_env_close(env);
}

/* An upgrade that fills the map grows it and writes everything again, as
 * any commit does: the replica opens, upgraded, with its values. */
Test(checksum, an_upgrade_that_fills_the_map_grows_it)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s", cvg_test_dir("ck-grow"));
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.map_size = 64 << 10;
    cvg_replica *r;
    OK(cvg_replica_open(dir, &o, &r));
    write_every_type(r);
    /* In one transaction, so that few pages are free: the upgrade then
     * needs new ones for about every page in use. */
    char name[32], text[200];
    memset(text, 'x', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    cvg_txn *t;
    OK(cvg_txn_begin(r, 0, &t));
    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof name, "many-%d", i);
        cvg_key k = key(name, "v");
        cvg_value v = cvg_value_string(text);
        OK(cvg_register_set(t, &k, &v, NULL));
    }
    OK(cvg_txn_commit(t));
    char *before = digest_of(r);
    cvg_replica_close(r);
    cvg_test_make_format_1(dir);
    shrink_map(dir);
    size_t right, wrong;
    cr_assert_eq(survey(dir, &right, &wrong), 1);
    int rc = cvg_replica_open(dir, &o, &r);
    cr_assert_eq(rc, CVG_OK, "%s: %s", cvg_errname(rc),
                 cvg_replica_errmsg(NULL));
    char *after = digest_of(r);
    cr_expect_str_eq(after, before);
    cvg_replica_stats st;
    OK(cvg_replica_stats_get(r, &st, sizeof st));
    cvg_replica_close(r);
    cr_expect_eq(survey(dir, &right, &wrong), CVG_FORMAT_VERSION);
    cr_expect_gt(right, 2000);
    cr_expect_eq(wrong, 0);
    free(before);
    free(after);
}
