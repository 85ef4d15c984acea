/* Every error path of the public API: NULL arguments, bad options, missing
 * and foreign directories, names and values over the limits, writes where
 * writes are not allowed, type clashes, counter overflow, missing data,
 * cursors invalidated by writes, and the error tables. Each failing call
 * must change nothing: the state digest and the op count are checked. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "converge.h"

#include "checks.h"
#include "common.h"
#include "digest.h"
#include "testutil.h"

/* ---- Helpers ------------------------------------------------------------- */

static cvg_replica *
open_at(const char *dir)
{
    cvg_replica *r = NULL;
    int rc = cvg_replica_open(dir, NULL, &r);
    cr_assert_eq(rc, CVG_OK, "open %s: %s", dir, cvg_errname(rc));
    cr_assert_not_null(r);
    return r;
}

static cvg_txn *
wtxn(cvg_replica *r)
{
    cvg_txn *t = NULL;
    int rc = cvg_txn_begin(r, 0, &t);
    cr_assert_eq(rc, CVG_OK, "begin write: %s", cvg_errname(rc));
    return t;
}

static cvg_txn *
rtxn(cvg_replica *r)
{
    cvg_txn *t = NULL;
    int rc = cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t);
    cr_assert_eq(rc, CVG_OK, "begin read: %s", cvg_errname(rc));
    return t;
}

static bool
dot_is_zero(const cvg_dot *d)
{
    static const cvg_dot zero;
    return memcmp(d, &zero, sizeof zero) == 0;
}

static void
commit_ok(cvg_txn *t)
{
    int rc = cvg_txn_commit(t);
    cr_assert_eq(rc, CVG_OK, "commit: %s", cvg_errname(rc));
}

static const cvg_key CNT = {"shop", "apples", "qty"};
static const cvg_key REG = {"shop", "apples", "name"};
static const cvg_key MVR = {"shop", "apples", "notes"};
static const cvg_key SET = {"shop", "apples", "tags"};

/* One record with a field of every type, committed. */
static void
seed_four(cvg_replica *r)
{
    cvg_txn *t = wtxn(r);
    cvg_value v = cvg_value_string("Gala");
    cvg_value e = cvg_value_string("red");
    cr_assert_eq(cvg_counter_add(t, &CNT, 5, NULL), CVG_OK);
    cr_assert_eq(cvg_register_set(t, &REG, &v, NULL), CVG_OK);
    cr_assert_eq(cvg_mvregister_set(t, &MVR, &v, NULL), CVG_OK);
    cr_assert_eq(cvg_set_add(t, &SET, &e, NULL), CVG_OK);
    commit_ok(t);
}

/* ---- NULL arguments ------------------------------------------------------ */

Test(errors, null_arguments_on_replica_and_txn_calls)
{
    const char *dir = cvg_test_dir("null-replica");
    cvg_replica *r = (cvg_replica *)0x1;
    cr_expect_eq(cvg_replica_open(NULL, NULL, &r), CVG_EINVAL);
    cr_expect_null(r, "*out is NULL on error");
    cr_expect_eq(cvg_replica_open(dir, NULL, NULL), CVG_EINVAL);
    r = (cvg_replica *)0x1;
    cr_expect_eq(cvg_replica_open("", NULL, &r), CVG_EINVAL);
    cr_expect_null(r);
    cr_expect_eq(cvg_replica_flush(NULL), CVG_EINVAL);
    cvg_replica_stats st;
    cr_expect_eq(cvg_replica_stats_get(NULL, &st, sizeof st), CVG_EINVAL);
    cr_expect_not_null(cvg_replica_errmsg(NULL));

    r = open_at(dir);
    cr_expect_eq(cvg_replica_stats_get(r, NULL, sizeof st), CVG_EINVAL);
    cr_expect_eq(cvg_replica_stats_get(r, &st, sizeof st - 1), CVG_EINVAL,
                 "a struct smaller than the first release's");
    cvg_txn *t = (cvg_txn *)0x1;
    cr_expect_eq(cvg_txn_begin(NULL, 0, &t), CVG_EINVAL);
    cr_expect_null(t);
    cr_expect_eq(cvg_txn_begin(r, 0, NULL), CVG_EINVAL);
    cr_expect_eq(cvg_txn_begin(r, CVG_TXN_READ_ONLY, NULL), CVG_EINVAL);
    t = (cvg_txn *)0x1;
    cr_expect_eq(cvg_txn_begin(r, 0x80u, &t), CVG_EINVAL, "unknown flag");
    cr_expect_null(t);
    cr_expect_eq(cvg_txn_commit(NULL), CVG_EINVAL);
    cr_expect_null(cvg_txn_replica(NULL));

    /* None of the refused begins left a writer behind. */
    t = wtxn(r);
    cr_expect_eq(cvg_txn_replica(t), r);
    size_t n = 99;
    cvg_dot vv[2];
    cr_expect_eq(cvg_txn_version_vector(NULL, vv, 2, &n), CVG_EINVAL);
    cr_expect_eq(cvg_txn_version_vector(t, vv, 2, NULL), CVG_EINVAL);
    cr_expect_eq(cvg_txn_version_vector(t, NULL, 2, &n), CVG_EINVAL);
    cr_expect_eq(cvg_txn_version_vector(t, NULL, 0, &n), CVG_OK);
    cvg_txn_abort(t);
    cvg_replica_close(r);
}

Test(errors, null_arguments_on_writes)
{
    cvg_replica *r = open_at(cvg_test_dir("null-writes"));
    seed_four(r);
    char *before = cvg_test_state(r);
    uint64_t ops = cvg_test_op_count(r);
    cvg_txn *t = wtxn(r);
    cvg_value v = cvg_value_int(1);
    cvg_dot d;
    const cvg_key no_coll = {NULL, "apples", "qty"};
    const cvg_key no_key = {"shop", NULL, "qty"};
    const cvg_key no_field = {"shop", "apples", NULL};

    memset(&d, 0xAB, sizeof d);
    cr_expect_eq(cvg_counter_add(NULL, &CNT, 1, &d), CVG_EINVAL);
    cr_expect(dot_is_zero(&d), "dot zeroed on error");
    cr_expect_eq(cvg_counter_add(t, NULL, 1, NULL), CVG_EINVAL);
    cr_expect_eq(cvg_counter_add(t, &no_coll, 1, NULL), CVG_EINVAL);
    cr_expect_eq(cvg_counter_add(t, &no_key, 1, NULL), CVG_EINVAL);
    cr_expect_eq(cvg_counter_add(t, &no_field, 1, NULL), CVG_EINVAL);

    int (*regs[2])(cvg_txn *, const cvg_key *, const cvg_value *, cvg_dot *) = {
        cvg_register_set, cvg_mvregister_set};
    const cvg_key *regkeys[2] = {&REG, &MVR};
    for (int i = 0; i < 2; i++) {
        memset(&d, 0xAB, sizeof d);
        cr_expect_eq(regs[i](NULL, regkeys[i], &v, &d), CVG_EINVAL);
        cr_expect(dot_is_zero(&d));
        cr_expect_eq(regs[i](t, NULL, &v, NULL), CVG_EINVAL);
        cr_expect_eq(regs[i](t, regkeys[i], NULL, NULL), CVG_EINVAL);
        cr_expect_eq(regs[i](t, &no_coll, &v, NULL), CVG_EINVAL);
        cr_expect_eq(regs[i](t, &no_key, &v, NULL), CVG_EINVAL);
        cr_expect_eq(regs[i](t, &no_field, &v, NULL), CVG_EINVAL);
    }

    int (*sets[2])(cvg_txn *, const cvg_key *, const cvg_value *, cvg_dot *) = {
        cvg_set_add, cvg_set_remove};
    cvg_value red = cvg_value_string("red");
    for (int i = 0; i < 2; i++) {
        memset(&d, 0xAB, sizeof d);
        cr_expect_eq(sets[i](NULL, &SET, &red, &d), CVG_EINVAL);
        cr_expect(dot_is_zero(&d));
        cr_expect_eq(sets[i](t, NULL, &red, NULL), CVG_EINVAL);
        cr_expect_eq(sets[i](t, &SET, NULL, NULL), CVG_EINVAL);
        cr_expect_eq(sets[i](t, &no_coll, &red, NULL), CVG_EINVAL);
        cr_expect_eq(sets[i](t, &no_key, &red, NULL), CVG_EINVAL);
        cr_expect_eq(sets[i](t, &no_field, &red, NULL), CVG_EINVAL);
    }

    memset(&d, 0xAB, sizeof d);
    cr_expect_eq(cvg_record_delete(NULL, &CNT, &d), CVG_EINVAL);
    cr_expect(dot_is_zero(&d));
    cr_expect_eq(cvg_record_delete(t, NULL, NULL), CVG_EINVAL);
    cr_expect_eq(cvg_record_delete(t, &no_coll, NULL), CVG_EINVAL);
    cr_expect_eq(cvg_record_delete(t, &no_key, NULL), CVG_EINVAL);
    commit_ok(t); /* nothing to store */

    char *after = cvg_test_state(r);
    cr_expect_str_eq(after, before);
    cr_expect_eq(cvg_test_op_count(r), ops);
    free(before);
    free(after);
    cvg_replica_close(r);
}

Test(errors, null_arguments_on_reads_and_cursors)
{
    cvg_replica *r = open_at(cvg_test_dir("null-reads"));
    seed_four(r);
    cvg_txn *t = rtxn(r);
    const cvg_key no_field = {"shop", "apples", NULL};
    const cvg_key no_coll = {NULL, "apples", "qty"};

    int64_t c = 7;
    cr_expect_eq(cvg_counter_get(NULL, &CNT, &c), CVG_EINVAL);
    cr_expect_eq(cvg_counter_get(t, NULL, &c), CVG_EINVAL);
    cr_expect_eq(cvg_counter_get(t, &no_field, &c), CVG_EINVAL);
    cr_expect_eq(cvg_counter_get(t, &no_coll, &c), CVG_EINVAL);
    cr_expect_eq(cvg_counter_get(t, &CNT, NULL), CVG_EINVAL);

    cvg_value v;
    cr_expect_eq(cvg_register_get(NULL, &REG, &v), CVG_EINVAL);
    cr_expect_eq(cvg_register_get(t, NULL, &v), CVG_EINVAL);
    cr_expect_eq(cvg_register_get(t, &no_field, &v), CVG_EINVAL);
    cr_expect_eq(cvg_register_get(t, &REG, NULL), CVG_EINVAL);

    cvg_value vs[2];
    size_t n = 5;
    cr_expect_eq(cvg_mvregister_get(NULL, &MVR, vs, NULL, 2, &n), CVG_EINVAL);
    cr_expect_eq(cvg_mvregister_get(t, NULL, vs, NULL, 2, &n), CVG_EINVAL);
    cr_expect_eq(cvg_mvregister_get(t, &MVR, vs, NULL, 2, NULL), CVG_EINVAL);
    cr_expect_eq(cvg_mvregister_get(t, &MVR, NULL, NULL, 2, &n), CVG_EINVAL,
                 "cap > 0 with no array");
    cr_expect_eq(cvg_mvregister_get(t, &MVR, NULL, NULL, 0, &n), CVG_OK,
                 "cap 0 only counts");
    cr_expect_eq(n, 1);

    bool in = true;
    cvg_value red = cvg_value_string("red");
    cr_expect_eq(cvg_set_contains(NULL, &SET, &red, &in), CVG_EINVAL);
    cr_expect_eq(cvg_set_contains(t, NULL, &red, &in), CVG_EINVAL);
    cr_expect_eq(cvg_set_contains(t, &SET, NULL, &in), CVG_EINVAL);
    cr_expect_eq(cvg_set_contains(t, &SET, &red, NULL), CVG_EINVAL);

    cvg_set_cursor *sc = (cvg_set_cursor *)0x1;
    cr_expect_eq(cvg_set_cursor_open(NULL, &SET, &sc), CVG_EINVAL);
    cr_expect_eq(cvg_set_cursor_open(t, NULL, &sc), CVG_EINVAL);
    cr_expect_null(sc, "*out is NULL on error");
    cr_expect_eq(cvg_set_cursor_open(t, &no_field, &sc), CVG_EINVAL);
    cr_expect_eq(cvg_set_cursor_open(t, &SET, NULL), CVG_EINVAL);
    cr_assert_eq(cvg_set_cursor_open(t, &SET, &sc), CVG_OK);
    cr_expect_eq(cvg_set_cursor_next(NULL, &v), CVG_EINVAL);
    cr_expect_eq(cvg_set_cursor_next(sc, NULL), CVG_EINVAL);
    cr_expect_eq(cvg_set_cursor_next(sc, &v), CVG_OK, "still usable");
    cvg_set_cursor_close(sc);

    cvg_field_cursor *fc = (cvg_field_cursor *)0x1;
    const cvg_key rec = {"shop", "apples", NULL};
    const cvg_key rec_no_key = {"shop", NULL, NULL};
    cr_expect_eq(cvg_field_cursor_open(NULL, &rec, &fc), CVG_EINVAL);
    cr_expect_eq(cvg_field_cursor_open(t, NULL, &fc), CVG_EINVAL);
    cr_expect_null(fc);
    cr_expect_eq(cvg_field_cursor_open(t, &rec_no_key, &fc), CVG_EINVAL);
    cr_expect_eq(cvg_field_cursor_open(t, &rec, NULL), CVG_EINVAL);
    cr_assert_eq(cvg_field_cursor_open(t, &rec, &fc), CVG_OK);
    cvg_bytes fb;
    cvg_type ty;
    cr_expect_eq(cvg_field_cursor_next(NULL, &fb, &ty), CVG_EINVAL);
    cr_expect_eq(cvg_field_cursor_next(fc, NULL, &ty), CVG_EINVAL);
    cr_expect_eq(cvg_field_cursor_next(fc, &fb, NULL), CVG_EINVAL);
    cr_expect_eq(cvg_field_cursor_next(fc, &fb, &ty), CVG_OK);
    cvg_field_cursor_close(fc);

    cvg_key_cursor *kc = (cvg_key_cursor *)0x1;
    cr_expect_eq(cvg_key_cursor_open(NULL, NULL, &kc), CVG_EINVAL);
    cr_expect_eq(cvg_key_cursor_open(t, NULL, NULL), CVG_EINVAL);
    cr_expect_eq(cvg_key_cursor_open(t, "shop", NULL), CVG_EINVAL);
    cr_assert_eq(cvg_key_cursor_open(t, NULL, &kc), CVG_OK,
                 "NULL collection walks everything");
    cvg_bytes cb, kb;
    cr_expect_eq(cvg_key_cursor_next(NULL, &cb, &kb), CVG_EINVAL);
    cr_expect_eq(cvg_key_cursor_next(kc, NULL, &kb), CVG_EINVAL);
    cr_expect_eq(cvg_key_cursor_next(kc, &cb, NULL), CVG_EINVAL);
    cr_expect_eq(cvg_key_cursor_next(kc, &cb, &kb), CVG_OK);
    cvg_key_cursor_close(kc);

    cvg_log_cursor *lc = (cvg_log_cursor *)0x1;
    cr_expect_eq(cvg_log_cursor_open(NULL, 1, &lc), CVG_EINVAL);
    cr_expect_eq(cvg_log_cursor_open(t, 1, NULL), CVG_EINVAL);
    cr_assert_eq(cvg_log_cursor_open(t, 1, &lc), CVG_OK);
    cvg_op op;
    cr_expect_eq(cvg_log_cursor_next(NULL, &op), CVG_EINVAL);
    cr_expect_eq(cvg_log_cursor_next(lc, NULL), CVG_EINVAL);
    cr_expect_eq(cvg_log_cursor_next(lc, &op), CVG_OK);
    cvg_log_cursor_close(lc);

    cvg_txn_abort(t);
    cvg_replica_close(r);
}

Test(errors, destructors_accept_null)
{
    cvg_replica_close(NULL);
    cvg_txn_abort(NULL);
    cvg_set_cursor_close(NULL);
    cvg_field_cursor_close(NULL);
    cvg_key_cursor_close(NULL);
    cvg_log_cursor_close(NULL);
    cr_expect_not_null(cvg_replica_errmsg(NULL));
}

/* ---- Opening ------------------------------------------------------------- */

Test(errors, open_rejects_bad_options)
{
    const char *dir = cvg_test_dir("bad-options");
    cvg_replica_options o;
    cvg_replica *r;

    cvg_replica_options_init(&o);
    o.version = 0;
    r = (cvg_replica *)0x1;
    cr_expect_eq(cvg_replica_open(dir, &o, &r), CVG_EINVAL);
    cr_expect_null(r);

    cvg_replica_options_init(&o);
    o.version = CVG_OPTIONS_VERSION + 1;
    r = (cvg_replica *)0x1;
    cr_expect_eq(cvg_replica_open(dir, &o, &r), CVG_EINVAL);
    cr_expect_null(r);

    cvg_replica_options_init(&o);
    o.durability = (cvg_durability)7;
    r = (cvg_replica *)0x1;
    cr_expect_eq(cvg_replica_open(dir, &o, &r), CVG_EINVAL);
    cr_expect_null(r);

    /* Refused options created nothing. */
    struct stat st;
    char file[4200];
    snprintf(file, sizeof file, "%s/data.mdb", dir);
    cr_expect_neq(stat(file, &st), 0, "no data file after bad options");

    /* The defaults are fine. */
    cvg_replica_options_init(&o);
    cr_expect_eq(o.version, CVG_OPTIONS_VERSION);
    cr_assert_eq(cvg_replica_open(dir, &o, &r), CVG_OK);
    cvg_replica_close(r);
}

Test(errors, open_no_create_on_missing_or_empty_dir)
{
    const char *base = cvg_test_dir("no-create");
    char missing[4200], empty[4200];
    snprintf(missing, sizeof missing, "%s/missing", base);
    snprintf(empty, sizeof empty, "%s/empty", base);
    cr_assert_eq(mkdir(empty, 0700), 0);

    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.no_create = true;
    cvg_replica *r = (cvg_replica *)0x1;
    cr_expect_eq(cvg_replica_open(missing, &o, &r), CVG_ENOTFOUND);
    cr_expect_null(r);
    struct stat st;
    cr_expect_neq(stat(missing, &st), 0, "no_create created the directory");

    r = (cvg_replica *)0x1;
    cr_expect_eq(cvg_replica_open(empty, &o, &r), CVG_ENOTFOUND);
    cr_expect_null(r);
    char file[4300];
    snprintf(file, sizeof file, "%s/data.mdb", empty);
    cr_expect_neq(stat(file, &st), 0, "no_create created a data file");

    /* Read-only on a missing directory cannot create it either. */
    cvg_replica_options_init(&o);
    o.read_only = true;
    r = (cvg_replica *)0x1;
    cr_expect_eq(cvg_replica_open(missing, &o, &r), CVG_ENOTFOUND);
    cr_expect_null(r);

    /* Once created, no_create opens it. */
    r = open_at(empty);
    cvg_replica_close(r);
    cvg_replica_options_init(&o);
    o.no_create = true;
    cr_assert_eq(cvg_replica_open(empty, &o, &r), CVG_OK);
    cvg_replica_close(r);
}

Test(errors, open_on_a_regular_file_fails)
{
    const char *base = cvg_test_dir("regular-file");
    char file[4200];
    snprintf(file, sizeof file, "%s/plain", base);
    FILE *f = fopen(file, "w");
    cr_assert_not_null(f);
    fputs("not a replica\n", f);
    fclose(f);
    cvg_replica *r = (cvg_replica *)0x1;
    int rc = cvg_replica_open(file, NULL, &r);
    cr_expect_lt(rc, 0, "got %s", cvg_errname(rc));
    cr_expect_null(r);
    /* The file is untouched. */
    struct stat st;
    cr_assert_eq(stat(file, &st), 0);
    cr_expect(S_ISREG(st.st_mode));
    cr_expect_eq(st.st_size, 14);
}

/* Rewrite the meta record "format" of the replica in @p dir, behind the
 * library's back. */
static void
poke_format(const char *dir, uint64_t format)
{
    MDB_env *env;
    cr_assert_eq(mdb_env_create(&env), MDB_SUCCESS);
    mdb_env_set_maxdbs(env, 8);
    cr_assert_eq(mdb_env_open(env, dir, 0, 0600), MDB_SUCCESS);
    MDB_txn *t;
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &t), MDB_SUCCESS);
    MDB_dbi meta;
    cr_assert_eq(mdb_dbi_open(t, "meta", 0, &meta), MDB_SUCCESS);
    uint8_t b[8];
    cvg__put_be64(b, format);
    MDB_val k = {6, "format"}, v = {8, b};
    cr_assert_eq(mdb_put(t, meta, &k, &v, 0), MDB_SUCCESS);
    cr_assert_eq(mdb_txn_commit(t), MDB_SUCCESS);
    mdb_env_close(env);
}

/* The meta record "format" of the replica in @p dir, read behind the
 * library's back. */
static uint64_t
peek_format(const char *dir)
{
    MDB_env *env;
    cr_assert_eq(mdb_env_create(&env), MDB_SUCCESS);
    mdb_env_set_maxdbs(env, 8);
    cr_assert_eq(mdb_env_open(env, dir, MDB_RDONLY, 0600), MDB_SUCCESS);
    MDB_txn *t;
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &t), MDB_SUCCESS);
    MDB_dbi meta;
    cr_assert_eq(mdb_dbi_open(t, "meta", 0, &meta), MDB_SUCCESS);
    MDB_val k = {6, "format"}, v;
    cr_assert_eq(mdb_get(t, meta, &k, &v), MDB_SUCCESS);
    cr_assert_eq(v.mv_size, 8);
    uint64_t format = cvg__get_be64(v.mv_data);
    mdb_txn_abort(t);
    mdb_env_close(env);
    return format;
}

/* Formats 3, 4 and 5 only add block versions, the journal and an origin
 * stored behind the log's last block: a replica of format 2, 3 or 4 reads
 * as it is read-only, and a writable open raises its format record
 * alone. */
static void
read_and_raise(const char *dir, uint64_t old)
{
    cvg_replica *r = open_at(dir);
    seed_four(r);
    cvg_replica_close(r);
    cr_assert_eq(peek_format(dir), CVG_FORMAT_VERSION);
    poke_format(dir, old);

    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.read_only = true;
    cr_assert_eq(cvg_replica_open(dir, &o, &r), CVG_OK);
    cvg_txn *t = rtxn(r);
    int64_t c = 0;
    cr_expect_eq(cvg_counter_get(t, &CNT, &c), CVG_OK);
    cr_expect_eq(c, 5);
    cvg_txn_abort(t);
    cvg_replica_close(r);
    cr_expect_eq(peek_format(dir), old, "a read-only open writes nothing");

    r = open_at(dir);
    cr_expect_eq(peek_format(dir), CVG_FORMAT_VERSION);
    cr_assert_eq(cvg_txn_begin(r, 0, &t), CVG_OK);
    cr_expect_eq(cvg_counter_add(t, &CNT, 2, NULL), CVG_OK);
    cr_expect_eq(cvg_txn_commit(t), CVG_OK);
    t = rtxn(r);
    cr_expect_eq(cvg_counter_get(t, &CNT, &c), CVG_OK);
    cr_expect_eq(c, 7);
    cvg_txn_abort(t);
    cvg_replica_close(r);
}

Test(errors, a_replica_of_format_2_3_or_4_is_read_and_raised)
{
    read_and_raise(cvg_test_dir("format-2"), 2);
    read_and_raise(cvg_test_dir("format-3"), 3);
    read_and_raise(cvg_test_dir("format-4"), 4);
}

Test(errors, open_refuses_a_newer_format)
{
    const char *dir = cvg_test_dir("newer-format");
    cvg_replica *r = open_at(dir);
    seed_four(r);
    cvg_replica_close(r);

    poke_format(dir, CVG_FORMAT_VERSION + 1);
    r = (cvg_replica *)0x1;
    cr_expect_eq(cvg_replica_open(dir, NULL, &r), CVG_EVERSION);
    cr_expect_null(r);
    /* Read-only too. */
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.read_only = true;
    r = (cvg_replica *)0x1;
    cr_expect_eq(cvg_replica_open(dir, &o, &r), CVG_EVERSION);
    cr_expect_null(r);
    /* No handle comes back, so the detail is only the generic text. */
    cr_expect_not_null(cvg_replica_errmsg(r));
    cr_expect_str_eq(cvg_errname(CVG_EVERSION), "CVG_EVERSION");

    /* The refused open did not rewrite the record: still refused. */
    r = (cvg_replica *)0x1;
    cr_expect_eq(cvg_replica_open(dir, NULL, &r), CVG_EVERSION);
    cr_expect_null(r);

    /* A format of 0 is damage, not a version. */
    poke_format(dir, 0);
    r = (cvg_replica *)0x1;
    cr_expect_eq(cvg_replica_open(dir, NULL, &r), CVG_ECORRUPT);
    cr_expect_null(r);

    /* Back to the real format: the data is all there. */
    poke_format(dir, CVG_FORMAT_VERSION);
    r = open_at(dir);
    cvg_txn *t = rtxn(r);
    int64_t c = 0;
    cr_expect_eq(cvg_counter_get(t, &CNT, &c), CVG_OK);
    cr_expect_eq(c, 5);
    cvg_txn_abort(t);
    cvg_replica_close(r);
}

static void
write_file(const char *path, const void *data, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, data, n), (ssize_t)n);
    close(fd);
}

Test(errors, open_on_garbage_data_file_fails)
{
    const char *dir = cvg_test_dir("garbage");
    char file[4200];
    snprintf(file, sizeof file, "%s/data.mdb", dir);
    size_t n = 64 * 1024;
    uint8_t *junk = malloc(n);
    cr_assert_not_null(junk);
    uint64_t s = 12345;
    for (size_t i = 0; i < n; i++) {
        junk[i] = (uint8_t)cvg_test_rand(&s);
    }
    write_file(file, junk, n);
    cvg_replica *r = (cvg_replica *)0x1;
    int rc = cvg_replica_open(dir, NULL, &r);
    cr_expect_lt(rc, 0, "got %s", cvg_errname(rc));
    cr_expect_null(r);
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.read_only = true;
    r = (cvg_replica *)0x1;
    rc = cvg_replica_open(dir, &o, &r);
    cr_expect_lt(rc, 0, "read-only: got %s", cvg_errname(rc));
    cr_expect_null(r);

    /* A file of one repeated byte. */
    memset(junk, 0xFF, n);
    write_file(file, junk, n);
    r = (cvg_replica *)0x1;
    rc = cvg_replica_open(dir, NULL, &r);
    cr_expect_lt(rc, 0, "0xFF: got %s", cvg_errname(rc));
    cr_expect_null(r);
    free(junk);
}

Test(errors, open_read_only_on_a_foreign_lmdb_env_is_corrupt)
{
    /* A valid LMDB environment that is not a replica. */
    const char *dir = cvg_test_dir("foreign");
    MDB_env *env;
    cr_assert_eq(mdb_env_create(&env), MDB_SUCCESS);
    cr_assert_eq(mdb_env_open(env, dir, 0, 0600), MDB_SUCCESS);
    MDB_txn *t;
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &t), MDB_SUCCESS);
    MDB_dbi dbi;
    cr_assert_eq(mdb_dbi_open(t, NULL, 0, &dbi), MDB_SUCCESS);
    MDB_val k = {5, "hello"}, v = {5, "world"};
    cr_assert_eq(mdb_put(t, dbi, &k, &v, 0), MDB_SUCCESS);
    cr_assert_eq(mdb_txn_commit(t), MDB_SUCCESS);
    mdb_env_close(env);

    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.read_only = true;
    cvg_replica *r = (cvg_replica *)0x1;
    int rc = cvg_replica_open(dir, &o, &r);
    cr_expect_eq(rc, CVG_ECORRUPT, "got %s", cvg_errname(rc));
    cr_expect_null(r);
}

/* ---- Names and values ---------------------------------------------------- */

Test(errors, empty_names_are_invalid)
{
    cvg_replica *r = open_at(cvg_test_dir("empty-names"));
    seed_four(r);
    char *before = cvg_test_state(r);
    uint64_t ops = cvg_test_op_count(r);
    cvg_txn *t = wtxn(r);
    const cvg_key bad[3] = {
        {"", "apples", "qty"}, {"shop", "", "qty"}, {"shop", "apples", ""}};
    cvg_value v = cvg_value_int(3);
    for (int i = 0; i < 3; i++) {
        cvg_dot d;
        memset(&d, 0xAB, sizeof d);
        cr_expect_eq(cvg_counter_add(t, &bad[i], 1, &d), CVG_EINVAL, "%d", i);
        cr_expect(dot_is_zero(&d));
        cr_expect_eq(cvg_register_set(t, &bad[i], &v, NULL), CVG_EINVAL);
        cr_expect_eq(cvg_mvregister_set(t, &bad[i], &v, NULL), CVG_EINVAL);
        cr_expect_eq(cvg_set_add(t, &bad[i], &v, NULL), CVG_EINVAL);
        cr_expect_eq(cvg_set_remove(t, &bad[i], &v, NULL), CVG_EINVAL);
        int64_t c;
        cvg_value out;
        bool in;
        cr_expect_eq(cvg_counter_get(t, &bad[i], &c), CVG_EINVAL);
        cr_expect_eq(cvg_register_get(t, &bad[i], &out), CVG_EINVAL);
        cr_expect_eq(cvg_set_contains(t, &bad[i], &v, &in), CVG_EINVAL);
        cvg_set_cursor *sc;
        cr_expect_eq(cvg_set_cursor_open(t, &bad[i], &sc), CVG_EINVAL);
        if (i < 2) {
            /* The field is ignored by record calls. */
            cr_expect_eq(cvg_record_delete(t, &bad[i], NULL), CVG_EINVAL);
            cvg_field_cursor *fc;
            cr_expect_eq(cvg_field_cursor_open(t, &bad[i], &fc), CVG_EINVAL);
        }
    }
    cvg_key_cursor *kc;
    cr_expect_eq(cvg_key_cursor_open(t, "", &kc), CVG_EINVAL);
    cr_expect_eq(cvg_counter_add(t, &CNT, 1, NULL), CVG_OK, "still usable");
    commit_ok(t);
    cr_expect_eq(cvg_test_op_count(r), ops + 1);
    t = rtxn(r);
    int64_t c;
    cr_expect_eq(cvg_counter_get(t, &CNT, &c), CVG_OK);
    cr_expect_eq(c, 6);
    cvg_txn_abort(t);
    free(before);
    cvg_replica_close(r);
}

/* Fill @p buf with @p n copies of @p ch and a NUL. */
static char *
name_of(char *buf, size_t n, char ch)
{
    memset(buf, ch, n);
    buf[n] = '\0';
    return buf;
}

Test(errors, names_over_the_limit_are_too_big)
{
    cvg_replica *r = open_at(cvg_test_dir("long-names"));
    seed_four(r);
    char *before = cvg_test_state(r);
    uint64_t ops = cvg_test_op_count(r);
    static char c1[CVG_NAME_MAX + 2], k1[CVG_NAME_MAX + 2],
        f1[CVG_NAME_MAX + 2];
    /* 149 + 150 + 150 = 449: one byte over. */
    cvg_key over = {name_of(c1, 149, 'c'), name_of(k1, 150, 'k'),
                    name_of(f1, 150, 'f')};
    cvg_txn *t = wtxn(r);
    cvg_value v = cvg_value_int(1);
    cvg_dot d;
    memset(&d, 0xAB, sizeof d);
    cr_expect_eq(cvg_counter_add(t, &over, 1, &d), CVG_ETOOBIG);
    cr_expect(dot_is_zero(&d));
    cr_expect_eq(cvg_register_set(t, &over, &v, NULL), CVG_ETOOBIG);
    cr_expect_eq(cvg_mvregister_set(t, &over, &v, NULL), CVG_ETOOBIG);
    cr_expect_eq(cvg_set_add(t, &over, &v, NULL), CVG_ETOOBIG);
    cr_expect_eq(cvg_set_remove(t, &over, &v, NULL), CVG_ETOOBIG);
    int64_t c;
    cr_expect_eq(cvg_counter_get(t, &over, &c), CVG_ETOOBIG);
    /* One huge name alone. */
    static char huge[CVG_NAME_MAX + 2];
    cvg_key one = {name_of(huge, CVG_NAME_MAX + 1, 'h'), "k", "f"};
    cr_expect_eq(cvg_counter_add(t, &one, 1, NULL), CVG_ETOOBIG);
    /* Record calls count collection + key only. */
    static char c2[CVG_NAME_MAX + 2], k2[CVG_NAME_MAX + 2];
    cvg_key rec_over = {name_of(c2, 200, 'c'), name_of(k2, 249, 'k'), NULL};
    cr_expect_eq(cvg_record_delete(t, &rec_over, NULL), CVG_ETOOBIG);
    cvg_field_cursor *fc;
    cr_expect_eq(cvg_field_cursor_open(t, &rec_over, &fc), CVG_ETOOBIG);
    cvg_key_cursor *kc;
    cr_expect_eq(cvg_key_cursor_open(t, huge, &kc), CVG_ETOOBIG);
    commit_ok(t);
    char *after = cvg_test_state(r);
    cr_expect_str_eq(after, before);
    cr_expect_eq(cvg_test_op_count(r), ops);
    free(before);
    free(after);
    cvg_replica_close(r);
}

Test(errors, names_of_exactly_the_limit_work)
{
    const char *dir = cvg_test_dir("max-names");
    cvg_replica *r = open_at(dir);
    static char cbuf[CVG_NAME_MAX + 1], kbuf[CVG_NAME_MAX + 1],
        fbuf[CVG_NAME_MAX + 1], fbuf2[CVG_NAME_MAX + 1],
        fbuf3[CVG_NAME_MAX + 1], fbuf4[CVG_NAME_MAX + 1];
    /* 148 + 150 + 150 = 448 = CVG_NAME_MAX. */
    name_of(cbuf, 148, 'c');
    name_of(kbuf, 150, 'k');
    cvg_key kc_ = {cbuf, kbuf, name_of(fbuf, 150, 'a')};
    cvg_key kr = {cbuf, kbuf, name_of(fbuf2, 150, 'b')};
    cvg_key km = {cbuf, kbuf, name_of(fbuf3, 150, 'c')};
    cvg_key ks = {cbuf, kbuf, name_of(fbuf4, 150, 'd')};
    cr_assert_eq(strlen(cbuf) + strlen(kbuf) + strlen(fbuf), CVG_NAME_MAX);
    cvg_txn *t = wtxn(r);
    cvg_value v = cvg_value_string("x");
    cvg_value e1 = cvg_value_string("e1"), e2 = cvg_value_int(2);
    cr_assert_eq(cvg_counter_add(t, &kc_, 3, NULL), CVG_OK);
    cr_assert_eq(cvg_register_set(t, &kr, &v, NULL), CVG_OK);
    cr_assert_eq(cvg_mvregister_set(t, &km, &v, NULL), CVG_OK);
    cr_assert_eq(cvg_set_add(t, &ks, &e1, NULL), CVG_OK);
    cr_assert_eq(cvg_set_add(t, &ks, &e2, NULL), CVG_OK);
    cr_assert_eq(cvg_set_remove(t, &ks, &e2, NULL), CVG_OK);
    commit_ok(t);
    cvg_replica_close(r);

    r = open_at(dir);
    t = rtxn(r);
    int64_t c = 0;
    cr_expect_eq(cvg_counter_get(t, &kc_, &c), CVG_OK);
    cr_expect_eq(c, 3);
    cvg_value out;
    cr_expect_eq(cvg_register_get(t, &kr, &out), CVG_OK);
    cr_expect(out.kind == CVG_VALUE_STRING && out.as.bytes.len == 1);
    bool in = false;
    cr_expect_eq(cvg_set_contains(t, &ks, &e1, &in), CVG_OK);
    cr_expect(in);
    cr_expect_eq(cvg_set_contains(t, &ks, &e2, &in), CVG_OK);
    cr_expect(!in);
    cvg_field_cursor *fc;
    cr_assert_eq(cvg_field_cursor_open(t, &kc_, &fc), CVG_OK);
    cvg_bytes fb;
    cvg_type ty;
    int nf = 0, rc;
    while ((rc = cvg_field_cursor_next(fc, &fb, &ty)) == CVG_OK) {
        cr_expect_eq(fb.len, 150);
        nf++;
    }
    cr_expect_eq(rc, CVG_DONE);
    cr_expect_eq(nf, 4);
    cvg_field_cursor_close(fc);
    cvg_set_cursor *sc;
    cr_assert_eq(cvg_set_cursor_open(t, &ks, &sc), CVG_OK);
    int ne = 0;
    while ((rc = cvg_set_cursor_next(sc, &out)) == CVG_OK) {
        ne++;
    }
    cr_expect_eq(rc, CVG_DONE);
    cr_expect_eq(ne, 1);
    cvg_set_cursor_close(sc);
    cvg_txn_abort(t);

    /* A record delete of a record with maximal names. */
    t = wtxn(r);
    cr_expect_eq(cvg_record_delete(t, &kc_, NULL), CVG_OK);
    commit_ok(t);
    t = rtxn(r);
    cr_expect_eq(cvg_counter_get(t, &kc_, &c), CVG_ENOTFOUND);
    cvg_txn_abort(t);
    cvg_replica_close(r);
}

Test(errors, bad_values)
{
    cvg_replica *r = open_at(cvg_test_dir("bad-values"));
    seed_four(r);
    char *before = cvg_test_state(r);
    uint64_t ops = cvg_test_op_count(r);
    size_t n = (size_t)CVG_VALUE_MAX + 1;
    uint8_t *big = calloc(1, n);
    cr_assert_not_null(big);
    cvg_value toobig = cvg_value_bytes(big, n);
    cvg_value toobig_s = toobig;
    toobig_s.kind = CVG_VALUE_STRING;
    cvg_value badkind = cvg_value_int(1);
    badkind.kind = (cvg_value_kind)99;
    cvg_value nodata = {CVG_VALUE_BYTES, {0}};
    nodata.as.bytes.len = 3; /* data NULL */

    cvg_txn *t = wtxn(r);
    int (*writes[4])(cvg_txn *, const cvg_key *, const cvg_value *,
                     cvg_dot *) = {cvg_register_set, cvg_mvregister_set,
                                   cvg_set_add, cvg_set_remove};
    const cvg_key *keys[4] = {&REG, &MVR, &SET, &SET};
    for (int i = 0; i < 4; i++) {
        cvg_dot d;
        memset(&d, 0xAB, sizeof d);
        cr_expect_eq(writes[i](t, keys[i], &toobig, &d), CVG_ETOOBIG, "%d", i);
        cr_expect(dot_is_zero(&d));
        cr_expect_eq(writes[i](t, keys[i], &toobig_s, NULL), CVG_ETOOBIG);
        cr_expect_eq(writes[i](t, keys[i], &badkind, NULL), CVG_EINVAL);
        cr_expect_eq(writes[i](t, keys[i], &nodata, NULL), CVG_EINVAL);
    }
    bool in = true;
    cr_expect_lt(cvg_set_contains(t, &SET, &badkind, &in), 0);
    cr_expect_lt(cvg_set_contains(t, &SET, &toobig, &in), 0);
    /* A delta of 0 is not an op. */
    cvg_dot d;
    memset(&d, 0xAB, sizeof d);
    cr_expect_eq(cvg_counter_add(t, &CNT, 0, &d), CVG_EINVAL);
    cr_expect(dot_is_zero(&d));
    cr_expect_eq(cvg_counter_add(t, &REG, 0, NULL), CVG_EINVAL);
    commit_ok(t);
    char *after = cvg_test_state(r);
    cr_expect_str_eq(after, before);
    cr_expect_eq(cvg_test_op_count(r), ops);
    free(after);

    /* Exactly CVG_VALUE_MAX bytes is fine, and reads back whole. */
    for (size_t i = 0; i < n; i++) {
        big[i] = (uint8_t)(i * 7);
    }
    cvg_value max = cvg_value_bytes(big, CVG_VALUE_MAX);
    t = wtxn(r);
    cr_assert_eq(cvg_register_set(t, &REG, &max, NULL), CVG_OK);
    commit_ok(t);
    t = rtxn(r);
    cvg_value out;
    cr_assert_eq(cvg_register_get(t, &REG, &out), CVG_OK);
    cr_expect_eq(out.kind, CVG_VALUE_BYTES);
    cr_expect_eq(out.as.bytes.len, CVG_VALUE_MAX);
    cr_expect(memcmp(out.as.bytes.data, big, CVG_VALUE_MAX) == 0);
    cvg_txn_abort(t);
    cr_expect_eq(cvg_test_op_count(r), ops + 1);
    free(big);
    free(before);
    cvg_replica_close(r);
}

/* ---- Where writes are not allowed ---------------------------------------- */

Test(errors, writes_in_a_read_only_txn)
{
    cvg_replica *r = open_at(cvg_test_dir("ro-txn"));
    seed_four(r);
    char *before = cvg_test_state(r);
    uint64_t ops = cvg_test_op_count(r);
    cvg_txn *t = rtxn(r);
    cvg_value v = cvg_value_string("red");
    cvg_dot d;
    memset(&d, 0xAB, sizeof d);
    cr_expect_eq(cvg_counter_add(t, &CNT, 1, &d), CVG_EREADONLY);
    cr_expect(dot_is_zero(&d));
    cr_expect_eq(cvg_register_set(t, &REG, &v, NULL), CVG_EREADONLY);
    cr_expect_eq(cvg_mvregister_set(t, &MVR, &v, NULL), CVG_EREADONLY);
    cr_expect_eq(cvg_set_add(t, &SET, &v, NULL), CVG_EREADONLY);
    cr_expect_eq(cvg_set_remove(t, &SET, &v, NULL), CVG_EREADONLY);
    cr_expect_eq(cvg_record_delete(t, &CNT, NULL), CVG_EREADONLY);
    cr_expect_not_null(cvg_replica_errmsg(r));
    cr_expect_str_neq(cvg_replica_errmsg(r), "no error");
    /* Reads still work, and committing a read txn just ends it. */
    int64_t c = 0;
    cr_expect_eq(cvg_counter_get(t, &CNT, &c), CVG_OK);
    cr_expect_eq(c, 5);
    commit_ok(t);
    char *after = cvg_test_state(r);
    cr_expect_str_eq(after, before);
    cr_expect_eq(cvg_test_op_count(r), ops);
    free(before);
    free(after);
    cvg_replica_close(r);
}

Test(errors, second_write_txn_is_busy)
{
    cvg_replica *r = open_at(cvg_test_dir("busy"));
    cvg_txn *t1 = wtxn(r);
    cvg_txn *t2 = (cvg_txn *)0x1;
    cr_expect_eq(cvg_txn_begin(r, 0, &t2), CVG_EBUSY);
    cr_expect_null(t2);
    /* Readers are not blocked by the writer. */
    cvg_txn *rt = rtxn(r);
    cr_assert_eq(cvg_counter_add(t1, &CNT, 1, NULL), CVG_OK);
    int64_t c = 42;
    cr_expect_eq(cvg_counter_get(rt, &CNT, &c), CVG_ENOTFOUND,
                 "a reader does not see an uncommitted write");
    cr_expect_eq(c, 0);
    cvg_txn_abort(rt);
    cr_expect_eq(cvg_txn_begin(r, 0, &t2), CVG_EBUSY, "still busy");
    commit_ok(t1);
    /* Free again after commit, and after abort. */
    t2 = wtxn(r);
    cvg_txn_abort(t2);
    t2 = wtxn(r);
    cr_expect_eq(cvg_counter_add(t2, &CNT, 1, NULL), CVG_OK);
    commit_ok(t2);
    cr_expect_eq(cvg_test_op_count(r), 2);
    cvg_replica_close(r);
}

Test(errors, read_only_replica_refuses_write_txns)
{
    const char *dir = cvg_test_dir("ro-replica");
    cvg_replica *r = open_at(dir);
    seed_four(r);
    char *before = cvg_test_state(r);
    cvg_replica_close(r);

    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.read_only = true;
    cr_assert_eq(cvg_replica_open(dir, &o, &r), CVG_OK);
    cvg_txn *t = (cvg_txn *)0x1;
    cr_expect_eq(cvg_txn_begin(r, 0, &t), CVG_EREADONLY);
    cr_expect_null(t);
    cr_expect_str_neq(cvg_replica_errmsg(r), "no error");
    t = rtxn(r);
    int64_t c = 0;
    cr_expect_eq(cvg_counter_get(t, &CNT, &c), CVG_OK);
    cr_expect_eq(c, 5);
    cr_expect_eq(cvg_counter_add(t, &CNT, 1, NULL), CVG_EREADONLY);
    cvg_txn_abort(t);
    char *after = cvg_test_state(r);
    cr_expect_str_eq(after, before);
    cr_expect_eq(cvg_test_op_count(r), 4);
    cvg_replica_close(r);
    free(before);
    free(after);
}

/* ---- Type errors --------------------------------------------------------- */

/* Write type @p ty at @p k. */
static int
write_as(cvg_txn *t, const cvg_key *k, cvg_type ty, cvg_dot *d)
{
    cvg_value v = cvg_value_string("v2");
    switch (ty) {
    case CVG_TYPE_COUNTER:
        return cvg_counter_add(t, k, 1, d);
    case CVG_TYPE_REGISTER:
        return cvg_register_set(t, k, &v, d);
    case CVG_TYPE_MVREGISTER:
        return cvg_mvregister_set(t, k, &v, d);
    default:
        return cvg_set_add(t, k, &v, d);
    }
}

static const cvg_key *
key_of(cvg_type ty)
{
    switch (ty) {
    case CVG_TYPE_COUNTER:
        return &CNT;
    case CVG_TYPE_REGISTER:
        return &REG;
    case CVG_TYPE_MVREGISTER:
        return &MVR;
    default:
        return &SET;
    }
}

Test(errors, type_clash_on_committed_fields_changes_nothing)
{
    cvg_replica *r = open_at(cvg_test_dir("type-committed"));
    seed_four(r);
    for (int have = CVG_TYPE_COUNTER; have <= CVG_TYPE_SET; have++) {
        for (int want = CVG_TYPE_COUNTER; want <= CVG_TYPE_SET; want++) {
            if (want == have) {
                continue;
            }
            const cvg_key *k = key_of((cvg_type)have);
            char *before = cvg_test_state(r);
            uint64_t ops = cvg_test_op_count(r);

            /* Refused, and a txn with only a refused write stores
             * nothing. */
            cvg_txn *t = wtxn(r);
            cvg_dot d;
            memset(&d, 0xAB, sizeof d);
            cr_expect_eq(write_as(t, k, (cvg_type)want, &d), CVG_ETYPE,
                         "type %d over %d", want, have);
            cr_expect(dot_is_zero(&d));
            if (want != CVG_TYPE_SET) {
                cvg_value v = cvg_value_string("v2");
                if (have != CVG_TYPE_SET) {
                    cr_expect_eq(cvg_set_remove(t, k, &v, NULL), CVG_ETYPE,
                                 "set remove over %d", have);
                }
            }
            commit_ok(t);
            char *mid = cvg_test_state(r);
            cr_expect_str_eq(mid, before, "type %d over %d", want, have);
            cr_expect_eq(cvg_test_op_count(r), ops);

            /* Refused, then a right write in the same txn commits. */
            t = wtxn(r);
            cr_expect_eq(write_as(t, k, (cvg_type)want, NULL), CVG_ETYPE);
            memset(&d, 0, sizeof d);
            cr_expect_eq(write_as(t, k, (cvg_type)have, &d), CVG_OK,
                         "the txn stays usable");
            cr_expect_eq(d.seq, ops + 1, "the refused write took no seq");
            cr_expect_eq(write_as(t, k, (cvg_type)want, NULL), CVG_ETYPE,
                         "refused after a write in the txn too");
            commit_ok(t);
            cr_expect_eq(cvg_test_op_count(r), ops + 1);
            /* The field still reads as its own type only. */
            t = rtxn(r);
            int64_t c;
            cvg_value out;
            int crc = cvg_counter_get(t, k, &c);
            int rrc = cvg_register_get(t, k, &out);
            cr_expect_eq(crc, have == CVG_TYPE_COUNTER ? CVG_OK : CVG_ETYPE);
            cr_expect_eq(rrc, have == CVG_TYPE_REGISTER ? CVG_OK : CVG_ETYPE);
            cvg_txn_abort(t);
            free(before);
            free(mid);
        }
    }
    cvg_replica_close(r);
}

/* Removing a set's elements inside a transaction leaves the field's type
 * uncertain only as far as it must: writes to the set go on without a
 * flush, another type is refused while an element lives and allowed once
 * none does, and every answer matches what a fresh transaction sees. */
Test(errors, type_after_set_removes_within_one_txn)
{
    cvg_replica *r = open_at(cvg_test_dir("type-after-removes"));
    cvg_key k = {"c", "k", "f"};
    cvg_value x = cvg_value_int(1), y = cvg_value_int(2);
    cvg_txn *t = wtxn(r);
    cr_assert_eq(cvg_set_add(t, &k, &x, NULL), CVG_OK);
    cr_assert_eq(cvg_set_add(t, &k, &y, NULL), CVG_OK);
    cr_assert_eq(cvg_set_remove(t, &k, &x, NULL), CVG_OK);
    cr_expect_eq(cvg_set_add(t, &k, &x, NULL), CVG_OK);
    cr_expect_eq(cvg_set_remove(t, &k, &x, NULL), CVG_OK);
    cr_expect_eq(cvg_counter_add(t, &k, 1, NULL), CVG_ETYPE,
                 "y is still in the set");
    cr_expect_eq(cvg_set_remove(t, &k, &y, NULL), CVG_OK);
    cr_expect_eq(cvg_counter_add(t, &k, 1, NULL), CVG_OK,
                 "the set is empty: the field holds nothing");
    cr_expect_eq(cvg_set_add(t, &k, &x, NULL), CVG_ETYPE);
    commit_ok(t);
    t = rtxn(r);
    int64_t v = 0;
    cr_expect_eq(cvg_counter_get(t, &k, &v), CVG_OK);
    cr_expect_eq(v, 1);
    bool in = true;
    cr_expect_eq(cvg_set_contains(t, &k, &y, &in), CVG_ETYPE);
    cvg_txn_abort(t);
    cvg_replica_close(r);
}

Test(errors, type_clash_within_one_txn)
{
    cvg_replica *r = open_at(cvg_test_dir("type-in-txn"));
    for (int have = CVG_TYPE_COUNTER; have <= CVG_TYPE_SET; have++) {
        cvg_key k = {"fresh", "rec", NULL};
        char field[16];
        snprintf(field, sizeof field, "f%d", have);
        k.field = field;
        cvg_txn *t = wtxn(r);
        cr_assert_eq(write_as(t, &k, (cvg_type)have, NULL), CVG_OK);
        for (int want = CVG_TYPE_COUNTER; want <= CVG_TYPE_SET; want++) {
            if (want != have) {
                cr_expect_eq(write_as(t, &k, (cvg_type)want, NULL), CVG_ETYPE,
                             "type %d over uncommitted %d", want, have);
            }
        }
        cr_expect_eq(write_as(t, &k, (cvg_type)have, NULL), CVG_OK);
        commit_ok(t);
    }
    cr_expect_eq(cvg_test_op_count(r), 8);
    /* Each field holds exactly one type. */
    cvg_txn *t = rtxn(r);
    cvg_field_cursor *fc;
    cvg_key rec = {"fresh", "rec", NULL};
    cr_assert_eq(cvg_field_cursor_open(t, &rec, &fc), CVG_OK);
    cvg_bytes fb;
    cvg_type ty;
    int n = 0, rc;
    while ((rc = cvg_field_cursor_next(fc, &fb, &ty)) == CVG_OK) {
        n++;
        cr_expect_eq((int)ty, fb.data[1] - '0', "field f%c has type %d",
                     fb.data[1], ty);
    }
    cr_expect_eq(rc, CVG_DONE);
    cr_expect_eq(n, 4);
    cvg_field_cursor_close(fc);
    cvg_txn_abort(t);
    cvg_replica_close(r);
}

/* ---- Counter overflow ---------------------------------------------------- */

Test(errors, counter_overflow_is_refused)
{
    cvg_replica *r = open_at(cvg_test_dir("overflow"));
    const cvg_key hi = {"c", "k", "hi"}, lo = {"c", "k", "lo"};
    cvg_txn *t = wtxn(r);
    cr_assert_eq(cvg_counter_add(t, &hi, INT64_MAX, NULL), CVG_OK);
    cr_assert_eq(cvg_counter_add(t, &lo, INT64_MIN, NULL), CVG_OK);
    cvg_dot d;
    memset(&d, 0xAB, sizeof d);
    cr_expect_eq(cvg_counter_add(t, &hi, 1, &d), CVG_EOVERFLOW);
    cr_expect(dot_is_zero(&d));
    cr_expect_eq(cvg_counter_add(t, &lo, -1, NULL), CVG_EOVERFLOW);
    cr_expect_eq(cvg_counter_add(t, &hi, INT64_MAX, NULL), CVG_EOVERFLOW);
    cr_expect_eq(cvg_counter_add(t, &lo, INT64_MIN, NULL), CVG_EOVERFLOW);
    int64_t v = 0;
    cr_expect_eq(cvg_counter_get(t, &hi, &v), CVG_OK);
    cr_expect_eq(v, INT64_MAX, "value unchanged in the txn");
    cr_expect_eq(cvg_counter_get(t, &lo, &v), CVG_OK);
    cr_expect_eq(v, INT64_MIN);
    commit_ok(t);
    cr_expect_eq(cvg_test_op_count(r), 2);
    char *before = cvg_test_state(r);

    /* From committed state too. */
    t = wtxn(r);
    cr_expect_eq(cvg_counter_add(t, &hi, 1, NULL), CVG_EOVERFLOW);
    cr_expect_eq(cvg_counter_add(t, &lo, -1, NULL), CVG_EOVERFLOW);
    commit_ok(t);
    char *after = cvg_test_state(r);
    cr_expect_str_eq(after, before);
    cr_expect_eq(cvg_test_op_count(r), 2);

    /* The way back in range is open. */
    t = wtxn(r);
    cr_expect_eq(cvg_counter_add(t, &hi, -1, NULL), CVG_OK);
    cr_expect_eq(cvg_counter_add(t, &hi, 1, NULL), CVG_OK);
    cr_expect_eq(cvg_counter_add(t, &lo, INT64_MAX, NULL), CVG_OK);
    commit_ok(t);
    t = rtxn(r);
    cr_expect_eq(cvg_counter_get(t, &hi, &v), CVG_OK);
    cr_expect_eq(v, INT64_MAX);
    cr_expect_eq(cvg_counter_get(t, &lo, &v), CVG_OK);
    cr_expect_eq(v, -1);
    cvg_txn_abort(t);
    cr_expect_eq(cvg_test_op_count(r), 5);
    free(before);
    free(after);
    cvg_replica_close(r);
}

/* ---- Missing things ------------------------------------------------------ */

Test(errors, missing_records_elements_and_fields)
{
    cvg_replica *r = open_at(cvg_test_dir("missing"));
    seed_four(r);
    char *before = cvg_test_state(r);
    uint64_t ops = cvg_test_op_count(r);
    cvg_txn *t = wtxn(r);
    const cvg_key nokey = {"shop", "plums", "qty"};
    const cvg_key nocoll = {"garage", "apples", "qty"};
    cvg_dot d;
    memset(&d, 0xAB, sizeof d);
    cr_expect_eq(cvg_record_delete(t, &nokey, &d), CVG_ENOTFOUND);
    cr_expect(dot_is_zero(&d));
    cr_expect_eq(cvg_record_delete(t, &nocoll, NULL), CVG_ENOTFOUND);
    /* A prefix of an existing key is another key. */
    const cvg_key prefix = {"shop", "apple", NULL};
    cr_expect_eq(cvg_record_delete(t, &prefix, NULL), CVG_ENOTFOUND);

    cvg_value blue = cvg_value_string("blue");
    memset(&d, 0xAB, sizeof d);
    cr_expect_eq(cvg_set_remove(t, &SET, &blue, &d), CVG_ENOTFOUND,
                 "element never added");
    cr_expect(dot_is_zero(&d));
    const cvg_key noset = {"shop", "apples", "colors"};
    cr_expect_eq(cvg_set_remove(t, &noset, &blue, NULL), CVG_ENOTFOUND,
                 "set never written");
    /* An element removed earlier in this txn is missing too. */
    cvg_value red = cvg_value_string("red");
    cr_assert_eq(cvg_set_remove(t, &SET, &red, NULL), CVG_OK);
    cr_expect_eq(cvg_set_remove(t, &SET, &red, NULL), CVG_ENOTFOUND);
    cvg_txn_abort(t);

    t = rtxn(r);
    const cvg_key nofield = {"shop", "apples", "weight"};
    int64_t c = 77;
    cr_expect_eq(cvg_counter_get(t, &nofield, &c), CVG_ENOTFOUND);
    cr_expect_eq(c, 0, "zeroed");
    c = 77;
    cr_expect_eq(cvg_counter_get(t, &nokey, &c), CVG_ENOTFOUND);
    cr_expect_eq(c, 0);
    cvg_value out = cvg_value_int(77);
    cr_expect_eq(cvg_register_get(t, &nofield, &out), CVG_ENOTFOUND);
    cr_expect_eq(out.kind, CVG_VALUE_NIL, "zeroed");
    cvg_value vs[2] = {cvg_value_int(7), cvg_value_int(7)};
    size_t n = 77;
    cr_expect_eq(cvg_mvregister_get(t, &nofield, vs, NULL, 2, &n),
                 CVG_ENOTFOUND);
    cr_expect_eq(n, 0, "count zeroed");
    bool in = true;
    cr_expect_eq(cvg_set_contains(t, &nofield, &red, &in), CVG_OK,
                 "a missing set contains nothing");
    cr_expect(!in);
    in = true;
    cr_expect_eq(cvg_set_contains(t, &SET, &blue, &in), CVG_OK);
    cr_expect(!in);
    /* A missing set walks nothing. */
    cvg_set_cursor *sc;
    cr_assert_eq(cvg_set_cursor_open(t, &nofield, &sc), CVG_OK);
    cr_expect_eq(cvg_set_cursor_next(sc, &out), CVG_DONE);
    cvg_set_cursor_close(sc);
    cvg_field_cursor *fc;
    cr_assert_eq(cvg_field_cursor_open(t, &nokey, &fc), CVG_OK);
    cvg_bytes fb;
    cvg_type ty;
    cr_expect_eq(cvg_field_cursor_next(fc, &fb, &ty), CVG_DONE);
    cvg_field_cursor_close(fc);
    cvg_key_cursor *kc;
    cr_assert_eq(cvg_key_cursor_open(t, "garage", &kc), CVG_OK);
    cvg_bytes cb, kb;
    cr_expect_eq(cvg_key_cursor_next(kc, &cb, &kb), CVG_DONE);
    cvg_key_cursor_close(kc);
    cvg_log_cursor *lc;
    cr_assert_eq(cvg_log_cursor_open(t, ops + 1, &lc), CVG_OK);
    cvg_op op;
    cr_expect_eq(cvg_log_cursor_next(lc, &op), CVG_DONE, "past the end");
    cvg_log_cursor_close(lc);
    cvg_txn_abort(t);

    char *after = cvg_test_state(r);
    cr_expect_str_eq(after, before);
    cr_expect_eq(cvg_test_op_count(r), ops);
    free(before);
    free(after);
    cvg_replica_close(r);
}

/* ---- Cursors after a write ----------------------------------------------- */

Test(errors, cursors_fail_after_a_write_in_their_txn)
{
    cvg_replica *r = open_at(cvg_test_dir("cursor-misuse"));
    seed_four(r);
    cvg_value e2 = cvg_value_string("green");
    cvg_txn *t = wtxn(r);
    cr_assert_eq(cvg_set_add(t, &SET, &e2, NULL), CVG_OK);

    cvg_set_cursor *sc;
    cvg_field_cursor *fc;
    cvg_key_cursor *kc;
    cvg_log_cursor *lc;
    const cvg_key rec = {"shop", "apples", NULL};
    cr_assert_eq(cvg_set_cursor_open(t, &SET, &sc), CVG_OK);
    cr_assert_eq(cvg_field_cursor_open(t, &rec, &fc), CVG_OK);
    cr_assert_eq(cvg_key_cursor_open(t, NULL, &kc), CVG_OK);
    cr_assert_eq(cvg_log_cursor_open(t, 1, &lc), CVG_OK);
    /* Each works before the write. */
    cvg_value v;
    cvg_bytes fb, cb, kb;
    cvg_type ty;
    cvg_op op;
    cr_expect_eq(cvg_set_cursor_next(sc, &v), CVG_OK);
    cr_expect_eq(cvg_field_cursor_next(fc, &fb, &ty), CVG_OK);
    cr_expect_eq(cvg_key_cursor_next(kc, &cb, &kb), CVG_OK);
    cr_expect_eq(cvg_log_cursor_next(lc, &op), CVG_OK);
    /* Reads do not invalidate them, nor does a refused write. */
    int64_t c;
    cr_expect_eq(cvg_counter_get(t, &CNT, &c), CVG_OK);
    cr_expect_eq(cvg_counter_add(t, &REG, 1, NULL), CVG_ETYPE);
    cr_expect_eq(cvg_set_cursor_next(sc, &v), CVG_OK);
    cr_expect_eq(cvg_field_cursor_next(fc, &fb, &ty), CVG_OK);
    cr_expect_eq(cvg_log_cursor_next(lc, &op), CVG_OK);

    cr_assert_eq(cvg_counter_add(t, &CNT, 1, NULL), CVG_OK);
    cr_expect_eq(cvg_set_cursor_next(sc, &v), CVG_EMISUSE);
    cr_expect_eq(cvg_field_cursor_next(fc, &fb, &ty), CVG_EMISUSE);
    cr_expect_eq(cvg_key_cursor_next(kc, &cb, &kb), CVG_EMISUSE);
    cr_expect_eq(cvg_log_cursor_next(lc, &op), CVG_EMISUSE);
    /* And it stays so. */
    cr_expect_eq(cvg_set_cursor_next(sc, &v), CVG_EMISUSE);
    cr_expect_eq(cvg_log_cursor_next(lc, &op), CVG_EMISUSE);
    cvg_set_cursor_close(sc);
    cvg_field_cursor_close(fc);
    cvg_key_cursor_close(kc);
    cvg_log_cursor_close(lc);

    /* A cursor opened after the write sees it. */
    cr_assert_eq(cvg_log_cursor_open(t, 6, &lc), CVG_OK);
    cr_expect_eq(cvg_log_cursor_next(lc, &op), CVG_OK);
    cr_expect_eq(op.kind, CVG_OP_COUNTER_ADD);
    cr_expect_eq(cvg_log_cursor_next(lc, &op), CVG_DONE);
    cvg_log_cursor_close(lc);
    commit_ok(t);
    cr_expect_eq(cvg_test_op_count(r), 6);
    cvg_replica_close(r);
}

Test(errors, each_kind_of_write_invalidates_cursors)
{
    cvg_replica *r = open_at(cvg_test_dir("cursor-each-write"));
    seed_four(r);
    for (int w = 0; w < 6; w++) {
        cvg_txn *t = wtxn(r);
        cvg_log_cursor *lc;
        cvg_set_cursor *sc;
        cr_assert_eq(cvg_log_cursor_open(t, 1, &lc), CVG_OK);
        cr_assert_eq(cvg_set_cursor_open(t, &SET, &sc), CVG_OK);
        cvg_value v = cvg_value_string("red");
        int rc;
        switch (w) {
        case 0:
            rc = cvg_counter_add(t, &CNT, 1, NULL);
            break;
        case 1:
            rc = cvg_register_set(t, &REG, &v, NULL);
            break;
        case 2:
            rc = cvg_mvregister_set(t, &MVR, &v, NULL);
            break;
        case 3:
            rc = cvg_set_add(t, &SET, &v, NULL);
            break;
        case 4:
            rc = cvg_set_remove(t, &SET, &v, NULL);
            break;
        default:
            rc = cvg_record_delete(t, &CNT, NULL);
        }
        cr_assert_eq(rc, CVG_OK, "write %d: %s", w, cvg_errname(rc));
        cvg_op op;
        cvg_value ev;
        cr_expect_eq(cvg_log_cursor_next(lc, &op), CVG_EMISUSE, "write %d", w);
        cr_expect_eq(cvg_set_cursor_next(sc, &ev), CVG_EMISUSE, "write %d", w);
        cvg_log_cursor_close(lc);
        cvg_set_cursor_close(sc);
        cvg_txn_abort(t);
    }
    cvg_replica_close(r);
}

/* ---- Error tables -------------------------------------------------------- */

Test(errors, every_code_has_a_distinct_name_and_text)
{
    static const int codes[] = {CVG_OK, CVG_DONE,
#define CODE(name, num, text) CVG_##name,
                                CVG_ERROR_TABLE(CODE)
#undef CODE
    };
    static const char *names[] = {"CVG_OK", "CVG_DONE",
#define NAME(name, num, text) "CVG_" #name,
                                  CVG_ERROR_TABLE(NAME)
#undef NAME
    };
    static const char *texts[] = {NULL, NULL,
#define TEXT(name, num, text) text,
                                  CVG_ERROR_TABLE(TEXT)
#undef TEXT
    };
    size_t n = sizeof codes / sizeof codes[0];
    cr_assert_geq(n, 19, "at least 17 error codes, OK and DONE");
    const int unknown[] = {-999, -1000, 2, 12345, INT32_MIN, INT32_MAX};
    const char *uname = cvg_errname(unknown[0]);
    const char *utext = cvg_strerror(unknown[0]);
    cr_assert_not_null(uname);
    cr_assert_not_null(utext);
    for (size_t u = 0; u < sizeof unknown / sizeof unknown[0]; u++) {
        cr_expect_not_null(cvg_errname(unknown[u]));
        cr_expect_not_null(cvg_strerror(unknown[u]));
        cr_expect_str_eq(cvg_errname(unknown[u]), uname);
        cr_expect_str_eq(cvg_strerror(unknown[u]), utext);
    }
    for (size_t i = 0; i < n; i++) {
        const char *ni = cvg_errname(codes[i]);
        const char *ti = cvg_strerror(codes[i]);
        cr_assert_not_null(ni, "code %d", codes[i]);
        cr_assert_not_null(ti, "code %d", codes[i]);
        cr_expect_gt(strlen(ti), 0);
        cr_expect_str_eq(ni, names[i]);
        if (texts[i] != NULL) {
            cr_expect_str_eq(ti, texts[i]);
        }
        cr_expect_str_neq(ni, uname, "code %d named like an unknown", codes[i]);
        cr_expect_str_neq(ti, utext, "code %d reads like an unknown", codes[i]);
        for (size_t j = 0; j < i; j++) {
            cr_expect_neq(codes[i], codes[j], "codes %zu and %zu equal", i, j);
            cr_expect_str_neq(ni, cvg_errname(codes[j]));
            cr_expect_str_neq(ti, cvg_strerror(codes[j]));
        }
        if (i >= 2) {
            cr_expect_lt(codes[i], 0, "errors are negative");
        }
    }
    /* Numbers never change once released. */
    cr_expect_eq(CVG_EINVAL, -1);
    cr_expect_eq(CVG_ELIMIT, -17);
}

/* ---- More documented codes ----------------------------------------------- */

Test(errors, reads_of_the_wrong_type)
{
    cvg_replica *r = open_at(cvg_test_dir("wrong-type-reads"));
    seed_four(r);
    cvg_txn *t = rtxn(r);
    int64_t c = 77;
    cr_expect_eq(cvg_counter_get(t, &REG, &c), CVG_ETYPE);
    cr_expect_eq(c, 0, "zeroed on error");
    cvg_value out = cvg_value_int(77);
    cr_expect_eq(cvg_register_get(t, &MVR, &out), CVG_ETYPE);
    cr_expect_eq(out.kind, CVG_VALUE_NIL);
    cvg_value vs[2];
    size_t n = 77;
    cr_expect_eq(cvg_mvregister_get(t, &SET, vs, NULL, 2, &n), CVG_ETYPE);
    cr_expect_eq(n, 0);
    bool in = true;
    cvg_value red = cvg_value_string("red");
    cr_expect_eq(cvg_set_contains(t, &CNT, &red, &in), CVG_ETYPE);
    cr_expect(!in);
    cvg_set_cursor *sc = (cvg_set_cursor *)0x1;
    cr_expect_eq(cvg_set_cursor_open(t, &REG, &sc), CVG_ETYPE);
    cr_expect_null(sc);
    cvg_txn_abort(t);
    cvg_replica_close(r);
}

Test(errors, null_string_is_an_empty_value)
{
    cvg_replica *r = open_at(cvg_test_dir("null-string"));
    cvg_value s = cvg_value_string(NULL);
    cvg_value b = cvg_value_bytes(NULL, 0);
    cr_expect_eq(s.kind, CVG_VALUE_STRING);
    cr_expect_eq(s.as.bytes.len, 0);
    cvg_txn *t = wtxn(r);
    cr_expect_eq(cvg_register_set(t, &REG, &s, NULL), CVG_OK);
    cr_expect_eq(cvg_set_add(t, &SET, &b, NULL), CVG_OK);
    commit_ok(t);
    t = rtxn(r);
    cvg_value out;
    cr_expect_eq(cvg_register_get(t, &REG, &out), CVG_OK);
    cr_expect_eq(out.kind, CVG_VALUE_STRING);
    cr_expect_eq(out.as.bytes.len, 0);
    bool in = false;
    cr_expect_eq(cvg_set_contains(t, &SET, &b, &in), CVG_OK);
    cr_expect(in);
    cr_expect_eq(cvg_set_contains(t, &SET, &s, &in), CVG_OK);
    cr_expect(!in, "an empty string is not empty bytes");
    cvg_txn_abort(t);
    cvg_replica_close(r);
}

Test(errors, more_than_txn_ops_max_is_a_limit, .timeout = 300)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = CVG_RELAXED;
    cvg_replica *r = NULL;
    cr_assert_eq(cvg_replica_open(cvg_test_dir("ops-max"), &o, &r), CVG_OK);
    cvg_txn *t = wtxn(r);
    for (uint32_t i = 0; i < CVG_TXN_OPS_MAX; i++) {
        int rc = cvg_counter_add(t, &CNT, 1, NULL);
        cr_assert_eq(rc, CVG_OK, "op %u: %s", i, cvg_errname(rc));
    }
    cvg_dot d;
    memset(&d, 0xAB, sizeof d);
    cr_expect_eq(cvg_counter_add(t, &CNT, 1, &d), CVG_ELIMIT);
    cr_expect(dot_is_zero(&d));
    cvg_value v = cvg_value_int(1);
    cr_expect_eq(cvg_register_set(t, &REG, &v, NULL), CVG_ELIMIT);
    cr_expect_eq(cvg_set_add(t, &SET, &v, NULL), CVG_ELIMIT);
    cr_expect_eq(cvg_record_delete(t, &CNT, NULL), CVG_ELIMIT);
    /* The txn still commits what fitted. */
    commit_ok(t);
    cr_expect_eq(cvg_test_op_count(r), CVG_TXN_OPS_MAX);
    t = rtxn(r);
    int64_t c = 0;
    cr_expect_eq(cvg_counter_get(t, &CNT, &c), CVG_OK);
    cr_expect_eq(c, (int64_t)CVG_TXN_OPS_MAX);
    cvg_txn_abort(t);
    /* A new txn starts counting again. */
    t = wtxn(r);
    cr_expect_eq(cvg_counter_add(t, &CNT, 1, NULL), CVG_OK);
    commit_ok(t);
    cvg_replica_close(r);
}
