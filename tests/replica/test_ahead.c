/*
 * The meta record "ahead" (format 5): a commit of local ops stores the
 * replica's own seq there, in the meta page every commit writes, and
 * leaves its record in the origin table behind. These tests read the
 * records behind the library's back to see that the table is left alone,
 * that the vector and the next dot after a reopen are still right, that a
 * peer's seq still reaches the table, and that a damaged record is
 * refused rather than read as a lower seq (which would hand out a seq
 * twice).
 */
#include <criterion/criterion.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "converge.h"

#include "common.h"
#include "raw_record.h"
#include "testutil.h"

#define OK(x) cr_assert_eq((x), CVG_OK, "%s: %s", #x, cvg_errname(x))

static cvg_replica *
open_dir(const char *dir)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = CVG_RELAXED;
    cvg_replica *r = NULL;
    int rc = cvg_replica_open(dir, &o, &r);
    cr_assert_eq(rc, CVG_OK, "open %s: %s", dir, cvg_errname(rc));
    return r;
}

/* One commit of one increment; the op's dot. */
static cvg_dot
add_one(cvg_replica *r, const char *field)
{
    cvg_txn *t;
    OK(cvg_txn_begin(r, 0, &t));
    cvg_key k = {"c", "k", field};
    cvg_dot d;
    OK(cvg_counter_add(t, &k, 1, &d));
    OK(cvg_txn_commit(t));
    return d;
}

/* The seq stored for origin @p id: in the origin table, and in "ahead"
 * (UINT64_MAX when it names another origin or is missing). */
typedef struct stored {
    uint64_t table, ahead;
} stored;

static stored
peek(const char *dir, const cvg_replica_id *id)
{
    stored out = {UINT64_MAX, UINT64_MAX};
    MDB_env *env;
    cr_assert_eq(mdb_env_create(&env), MDB_SUCCESS);
    mdb_env_set_maxdbs(env, 16);
    cr_assert_eq(mdb_env_open(env, dir, MDB_RDONLY, 0600), MDB_SUCCESS);
    MDB_txn *t;
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &t), MDB_SUCCESS);
    MDB_dbi origins, meta;
    cr_assert_eq(mdb_dbi_open(t, "origins", 0, &origins), MDB_SUCCESS);
    cr_assert_eq(mdb_dbi_open(t, "meta", 0, &meta), MDB_SUCCESS);
    MDB_cursor *c;
    cr_assert_eq(mdb_cursor_open(t, origins, &c), MDB_SUCCESS);
    MDB_val k, v;
    uint32_t idx = UINT32_MAX;
    for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        cr_assert_geq(v.mv_size, 24);
        if (memcmp(v.mv_data, id->bytes, 16) == 0) {
            idx = cvg__get_be32(k.mv_data);
            out.table = cvg__get_be64((const uint8_t *)v.mv_data + 16);
        }
    }
    mdb_cursor_close(c);
    k.mv_size = 5;
    k.mv_data = "ahead";
    if (mdb_get(t, meta, &k, &v) == MDB_SUCCESS) {
        cr_assert_geq(v.mv_size, 12);
        if (cvg__get_be32(v.mv_data) == idx) {
            out.ahead = cvg__get_be64((const uint8_t *)v.mv_data + 4);
        }
    }
    mdb_txn_abort(t);
    mdb_env_close(env);
    return out;
}

static uint64_t
vv_seq(cvg_replica *r, const cvg_replica_id *id)
{
    cvg_txn *t;
    OK(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t));
    cvg_dot vv[8];
    size_t n = 0;
    OK(cvg_txn_version_vector(t, vv, 8, &n));
    cvg_txn_abort(t);
    for (size_t i = 0; i < n; i++) {
        if (memcmp(&vv[i].origin, id, sizeof *id) == 0) {
            return vv[i].seq;
        }
    }
    return 0;
}

static void
expect_sound(const char *dir)
{
    cvg_check_report rep;
    int rc = cvg_replica_check(dir, &rep);
    cr_expect_eq(rc, CVG_OK, "%s: %s", cvg_errname(rc), rep.problem);
}

Test(ahead, local_commits_leave_the_origin_table_alone)
{
    const char *dir = cvg_test_dir("ahead-local");
    cvg_replica *r = open_dir(dir);
    cvg_replica_id id;
    cvg_replica_id_get(r, &id);
    for (int i = 0; i < 5; i++) {
        cr_expect_eq(add_one(r, i % 2 ? "a" : "b").seq, (uint64_t)i + 1);
    }
    cvg_replica_close(r);

    stored s = peek(dir, &id);
    cr_expect_eq(s.table, 0, "the table keeps the seq it was made with");
    cr_expect_eq(s.ahead, 5, "\"ahead\" holds the seq: %llu",
                 (unsigned long long)s.ahead);
    expect_sound(dir);

    /* Reopened, the vector is the log's and the next op takes seq 6. */
    r = open_dir(dir);
    cr_expect_eq(vv_seq(r, &id), 5);
    cr_expect_eq(add_one(r, "a").seq, 6);
    cvg_replica_close(r);
    expect_sound(dir);
}

Test(ahead, a_peers_seq_reaches_the_table_and_its_own_stays_ahead)
{
    char a_dir[512], b_dir[512];
    snprintf(a_dir, sizeof a_dir, "%s", cvg_test_dir("ahead-a"));
    snprintf(b_dir, sizeof b_dir, "%s", cvg_test_dir("ahead-b"));
    cvg_replica *a = open_dir(a_dir), *b = open_dir(b_dir);
    cvg_replica_id aid, bid;
    cvg_replica_id_get(a, &aid);
    cvg_replica_id_get(b, &bid);
    for (int i = 0; i < 3; i++) {
        (void)add_one(b, "n");
    }
    (void)add_one(a, "n");
    (void)add_one(a, "n");
    OK(cvg_sync_local(a, b, NULL));
    cvg_replica_close(a);
    cvg_replica_close(b);

    stored sa = peek(a_dir, &aid), sb = peek(a_dir, &bid);
    cr_expect_eq(sa.ahead, 2);
    cr_expect_eq(sb.table, 3, "the peer's seq is in the table");
    stored ba = peek(b_dir, &aid), bb = peek(b_dir, &bid);
    cr_expect_eq(ba.table, 2);
    cr_expect_eq(bb.ahead, 3);
    expect_sound(a_dir);
    expect_sound(b_dir);

    a = open_dir(a_dir);
    cr_expect_eq(vv_seq(a, &aid), 2);
    cr_expect_eq(vv_seq(a, &bid), 3);
    cr_expect_eq(add_one(a, "n").seq, 3);
    cvg_txn *t;
    OK(cvg_txn_begin(a, CVG_TXN_READ_ONLY, &t));
    cvg_key k = {"c", "k", "n"};
    int64_t n = 0;
    OK(cvg_counter_get(t, &k, &n));
    cr_expect_eq(n, 6);
    cvg_txn_abort(t);
    cvg_replica_close(a);
}

/* Each damage, written with a valid checksum so the record's own checks
 * are what refuse it. */
Test(ahead, a_damaged_ahead_record_is_refused)
{
    const char *dir = cvg_test_dir("ahead-damaged");
    cvg_replica *r = open_dir(dir);
    (void)add_one(r, "a");
    cvg_replica_close(r);

    const uint8_t no_origin[12] = {0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 1};
    const uint8_t short_rec[11] = {0};
    const struct {
        const void *v;
        size_t len;
    } bad[] = {{no_origin, sizeof no_origin}, {short_rec, sizeof short_rec}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cvg_test_raw_put(dir, "meta", "ahead", 5, bad[i].v, bad[i].len, true);
        r = (cvg_replica *)0x1;
        cr_expect_eq(cvg_replica_open(dir, NULL, &r), CVG_ECORRUPT,
                     "damage %zu", i);
        cr_expect_null(r);
        cvg_check_report rep;
        cr_expect_eq(cvg_replica_check(dir, &rep), CVG_ECORRUPT);
        cr_expect(rep.problem[0] != '\0');
    }
    /* Put right again (origin 0 at seq 1), it opens with its op. */
    const uint8_t right[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    cvg_test_raw_put(dir, "meta", "ahead", 5, right, sizeof right, true);
    r = open_dir(dir);
    cr_expect_eq(add_one(r, "a").seq, 2);
    cvg_replica_close(r);
    expect_sound(dir);
}
