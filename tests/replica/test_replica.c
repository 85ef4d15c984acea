/* The replica API end to end: writes, reads, transactions, persistence,
 * cursors and every error path of the public calls. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "converge.h"

#include "testutil.h"

static cvg_replica *
open_at(const char *dir)
{
    cvg_replica *r = NULL;
    int rc = cvg_replica_open(dir, NULL, &r);
    cr_assert_eq(rc, CVG_OK, "open: %s", cvg_errname(rc));
    return r;
}

static cvg_txn *
wtxn(cvg_replica *r)
{
    cvg_txn *t = NULL;
    cr_assert_eq(cvg_txn_begin(r, 0, &t), CVG_OK);
    return t;
}

static cvg_txn *
rtxn(cvg_replica *r)
{
    cvg_txn *t = NULL;
    cr_assert_eq(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t), CVG_OK);
    return t;
}

static int64_t
counter(cvg_replica *r, const cvg_key *k)
{
    cvg_txn *t = rtxn(r);
    int64_t v = -999;
    int rc = cvg_counter_get(t, k, &v);
    cvg_txn_abort(t);
    return rc == CVG_OK ? v : -999;
}

static const cvg_key APPLES = {"stock", "apples", "qty"};
static const cvg_key PEARS = {"stock", "pears", "qty"};
static const cvg_key NAME = {"stock", "apples", "name"};
static const cvg_key TAGS = {"stock", "apples", "tags"};
static const cvg_key NOTE = {"stock", "apples", "note"};

Test(replica, counter_adds_persist_across_reopen)
{
    const char *dir = cvg_test_dir("counter");
    cvg_replica *r = open_at(dir);
    cvg_txn *t = wtxn(r);
    for (int i = 0; i < 1000; i++) {
        cr_assert_eq(cvg_counter_add(t, &APPLES, 2, NULL), CVG_OK);
    }
    cr_assert_eq(cvg_counter_add(t, &PEARS, -5, NULL), CVG_OK);
    int64_t inside = 0;
    cr_assert_eq(cvg_counter_get(t, &APPLES, &inside), CVG_OK);
    cr_expect_eq(inside, 2000, "a txn reads its own writes");
    cr_assert_eq(cvg_txn_commit(t), CVG_OK);
    cvg_replica_id id1, id2;
    cvg_replica_id_get(r, &id1);
    cvg_replica_close(r);

    r = open_at(dir);
    cvg_replica_id_get(r, &id2);
    cr_expect(memcmp(&id1, &id2, sizeof id1) == 0, "id survives reopen");
    cr_expect_eq(counter(r, &APPLES), 2000);
    cr_expect_eq(counter(r, &PEARS), -5);
    cvg_replica_stats st;
    cr_assert_eq(cvg_replica_stats_get(r, &st, sizeof st), CVG_OK);
    cr_expect_eq(st.op_count, 1001);
    cvg_replica_close(r);
}

Test(replica, abort_leaves_nothing)
{
    cvg_replica *r = open_at(cvg_test_dir("abort"));
    cvg_txn *t = wtxn(r);
    cr_assert_eq(cvg_counter_add(t, &APPLES, 7, NULL), CVG_OK);
    cr_assert_eq(cvg_txn_commit(t), CVG_OK);
    t = wtxn(r);
    cr_assert_eq(cvg_counter_add(t, &APPLES, 100, NULL), CVG_OK);
    cvg_value v = cvg_value_string("Golden");
    cr_assert_eq(cvg_register_set(t, &NAME, &v, NULL), CVG_OK);
    cvg_txn_abort(t);
    cr_expect_eq(counter(r, &APPLES), 7);
    t = rtxn(r);
    cvg_value out;
    cr_expect_eq(cvg_register_get(t, &NAME, &out), CVG_ENOTFOUND);
    size_t n = 0;
    cvg_dot vv[4];
    cr_assert_eq(cvg_txn_version_vector(t, vv, 4, &n), CVG_OK);
    cr_expect_eq(n, 1);
    cr_expect_eq(vv[0].seq, 1, "the aborted ops took no seqs");
    cvg_txn_abort(t);
    /* The next op gets seq 2. */
    t = wtxn(r);
    cvg_dot d;
    cr_assert_eq(cvg_counter_add(t, &APPLES, 1, &d), CVG_OK);
    cr_expect_eq(d.seq, 2);
    cr_assert_eq(cvg_txn_commit(t), CVG_OK);
    cvg_replica_close(r);
}

Test(replica, registers_sets_and_types)
{
    cvg_replica *r = open_at(cvg_test_dir("types"));
    cvg_txn *t = wtxn(r);
    cvg_value a = cvg_value_string("Gala"), b = cvg_value_string("Fuji");
    cr_assert_eq(cvg_register_set(t, &NAME, &a, NULL), CVG_OK);
    cr_assert_eq(cvg_register_set(t, &NAME, &b, NULL), CVG_OK);
    cvg_value e1 = cvg_value_string("red"), e2 = cvg_value_int(42);
    cr_assert_eq(cvg_set_add(t, &TAGS, &e1, NULL), CVG_OK);
    cr_assert_eq(cvg_set_add(t, &TAGS, &e2, NULL), CVG_OK);
    cr_assert_eq(cvg_set_remove(t, &TAGS, &e2, NULL), CVG_OK);
    cr_expect_eq(cvg_set_remove(t, &TAGS, &e2, NULL), CVG_ENOTFOUND);
    /* Wrong types write nothing. */
    cr_expect_eq(cvg_counter_add(t, &NAME, 1, NULL), CVG_ETYPE);
    cr_expect_eq(cvg_set_add(t, &NAME, &a, NULL), CVG_ETYPE);
    cr_expect_eq(cvg_register_set(t, &TAGS, &a, NULL), CVG_ETYPE);
    cr_assert_eq(cvg_txn_commit(t), CVG_OK);

    t = rtxn(r);
    cvg_value out;
    cr_assert_eq(cvg_register_get(t, &NAME, &out), CVG_OK);
    cr_expect_eq(out.kind, CVG_VALUE_STRING);
    cr_expect(out.as.bytes.len == 4 && !memcmp(out.as.bytes.data, "Fuji", 4));
    bool in = false;
    cr_assert_eq(cvg_set_contains(t, &TAGS, &e1, &in), CVG_OK);
    cr_expect(in);
    cr_assert_eq(cvg_set_contains(t, &TAGS, &e2, &in), CVG_OK);
    cr_expect(!in);
    int64_t c;
    cr_expect_eq(cvg_counter_get(t, &NAME, &c), CVG_ETYPE);
    cr_expect_eq(cvg_counter_get(t, &NOTE, &c), CVG_ENOTFOUND);
    cvg_set_cursor *sc;
    cr_assert_eq(cvg_set_cursor_open(t, &TAGS, &sc), CVG_OK);
    int count = 0;
    cvg_value ev;
    int rc;
    while ((rc = cvg_set_cursor_next(sc, &ev)) == CVG_OK) {
        count++;
        cr_expect_eq(ev.kind, CVG_VALUE_STRING);
    }
    cr_expect_eq(rc, CVG_DONE);
    cr_expect_eq(count, 1);
    cvg_set_cursor_close(sc);
    cvg_txn_abort(t);
    cvg_replica_close(r);
}

Test(replica, record_delete_then_rewrite)
{
    cvg_replica *r = open_at(cvg_test_dir("delete"));
    cvg_txn *t = wtxn(r);
    cvg_value a = cvg_value_string("Gala"), e = cvg_value_int(1);
    cr_assert_eq(cvg_counter_add(t, &APPLES, 5, NULL), CVG_OK);
    cr_assert_eq(cvg_register_set(t, &NAME, &a, NULL), CVG_OK);
    cr_assert_eq(cvg_set_add(t, &TAGS, &e, NULL), CVG_OK);
    cr_assert_eq(cvg_counter_add(t, &PEARS, 3, NULL), CVG_OK);
    cr_assert_eq(cvg_txn_commit(t), CVG_OK);

    t = wtxn(r);
    cr_assert_eq(cvg_record_delete(t, &APPLES, NULL), CVG_OK);
    int64_t v;
    cr_expect_eq(cvg_counter_get(t, &APPLES, &v), CVG_ENOTFOUND);
    cr_expect_eq(cvg_record_delete(t, &APPLES, NULL), CVG_ENOTFOUND);
    /* A deleted counter field can take another type. */
    cr_expect_eq(cvg_register_set(t, &APPLES, &a, NULL), CVG_OK);
    cr_assert_eq(cvg_txn_commit(t), CVG_OK);

    t = rtxn(r);
    cvg_value out;
    cr_expect_eq(cvg_register_get(t, &NAME, &out), CVG_ENOTFOUND);
    cr_expect_eq(cvg_register_get(t, &APPLES, &out), CVG_OK);
    cr_expect_eq(cvg_counter_get(t, &PEARS, &v), CVG_OK);
    cr_expect_eq(v, 3, "another record is untouched");
    cvg_field_cursor *fc;
    cvg_key rec = {"stock", "apples", NULL};
    cr_assert_eq(cvg_field_cursor_open(t, &rec, &fc), CVG_OK);
    cvg_bytes f;
    cvg_type ty;
    cr_assert_eq(cvg_field_cursor_next(fc, &f, &ty), CVG_OK);
    cr_expect(f.len == 3 && !memcmp(f.data, "qty", 3));
    cr_expect_eq(ty, CVG_TYPE_REGISTER);
    cr_expect_eq(cvg_field_cursor_next(fc, &f, &ty), CVG_DONE);
    cvg_field_cursor_close(fc);

    cvg_key_cursor *kc;
    cr_assert_eq(cvg_key_cursor_open(t, "stock", &kc), CVG_OK);
    cvg_bytes cb, kb;
    int n = 0;
    while (cvg_key_cursor_next(kc, &cb, &kb) == CVG_OK) {
        n++;
    }
    cr_expect_eq(n, 2);
    cvg_key_cursor_close(kc);
    cvg_txn_abort(t);
    cvg_replica_close(r);
}

Test(replica, log_cursor_walks_every_op_in_order)
{
    cvg_replica *r = open_at(cvg_test_dir("log"));
    for (int c = 0; c < 3; c++) {
        cvg_txn *t = wtxn(r);
        for (int i = 0; i < 5000; i++) {
            cr_assert_eq(cvg_counter_add(t, &APPLES, 1, NULL), CVG_OK);
        }
        cvg_value v = cvg_value_int(c);
        cr_assert_eq(cvg_register_set(t, &NAME, &v, NULL), CVG_OK);
        cr_assert_eq(cvg_txn_commit(t), CVG_OK);
    }
    cvg_txn *t = rtxn(r);
    cvg_log_cursor *lc;
    cr_assert_eq(cvg_log_cursor_open(t, 4000, &lc), CVG_OK);
    cvg_op op;
    uint64_t expect = 4000, last_hlc = 0;
    int rc;
    while ((rc = cvg_log_cursor_next(lc, &op)) == CVG_OK) {
        cr_assert_eq(op.lsn, expect);
        cr_assert_eq(op.dot.seq, expect, "one origin: seq == lsn");
        cr_assert_gt(op.hlc, last_hlc);
        last_hlc = op.hlc;
        expect++;
    }
    cr_expect_eq(rc, CVG_DONE);
    cr_expect_eq(expect, 15004);
    cvg_log_cursor_close(lc);
    cvg_txn_abort(t);
    cvg_replica_close(r);
}

Test(replica, open_failure_detail_reaches_the_caller)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.no_create = true;
    cvg_replica *r = (cvg_replica *)1;
    char path[600];
    snprintf(path, sizeof path, "%s/missing", cvg_test_dir("openerr"));
    cr_expect_eq(cvg_replica_open(path, &o, &r), CVG_ENOTFOUND);
    cr_expect_null(r);
    const char *why = cvg_replica_errmsg(NULL);
    cr_expect(strstr(why, "missing") != NULL, "detail: '%s'", why);
}

/* LMDB forbids two handles on one environment in a process (its locks are
 * the process's): the second open is refused, by any path to the
 * directory, until the first handle is closed. */
Test(replica, a_second_open_in_the_process_is_refused)
{
    const char *dir = cvg_test_dir("twice");
    cvg_replica *a = NULL, *b = NULL;
    cr_assert_eq(cvg_replica_open(dir, NULL, &a), CVG_OK);
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    cr_expect_eq(cvg_replica_open(dir, &o, &b), CVG_EBUSY);
    cr_expect_null(b);
    const char *err = cvg_replica_errmsg(NULL);
    cr_expect(strstr(err, "already open in this process") != NULL, "%s", err);
    char other[1024];
    snprintf(other, sizeof other, "%s/../%s", dir, strrchr(dir, '/') + 1);
    cr_expect_eq(cvg_replica_open(other, NULL, &b), CVG_EBUSY);
    o.read_only = true;
    cr_expect_eq(cvg_replica_open(dir, &o, &b), CVG_EBUSY);
    /* The first handle still works. */
    cvg_txn *t;
    cr_assert_eq(cvg_txn_begin(a, 0, &t), CVG_OK);
    cvg_key k = {"c", "k", "f"};
    cr_assert_eq(cvg_counter_add(t, &k, 1, NULL), CVG_OK);
    cr_assert_eq(cvg_txn_commit(t), CVG_OK);
    cvg_replica_close(a);
    cr_assert_eq(cvg_replica_open(dir, NULL, &b), CVG_OK);
    cvg_replica_close(b);
}

/* Names go in as C strings, and come out of every cursor as C strings
 * too: each view is followed by a NUL. */
Test(replica, names_from_cursors_are_c_strings)
{
    cvg_replica *r = open_at(cvg_test_dir("cstrings"));
    cvg_key k = {"stock", "sku-1", "qty"};
    cvg_txn *t = wtxn(r);
    cr_assert_eq(cvg_counter_add(t, &k, 2, NULL), CVG_OK);
    cr_assert_eq(cvg_txn_commit(t), CVG_OK);
    t = rtxn(r);
    cvg_key_cursor *kc;
    cvg_bytes cb, kb;
    cr_assert_eq(cvg_key_cursor_open(t, NULL, &kc), CVG_OK);
    cr_assert_eq(cvg_key_cursor_next(kc, &cb, &kb), CVG_OK);
    cr_expect_str_eq((const char *)cb.data, "stock");
    cr_expect_str_eq((const char *)kb.data, "sku-1");
    cvg_key_cursor_close(kc);
    cvg_field_cursor *fc;
    cvg_bytes fb;
    cvg_type ty;
    cr_assert_eq(cvg_field_cursor_open(t, &k, &fc), CVG_OK);
    cr_assert_eq(cvg_field_cursor_next(fc, &fb, &ty), CVG_OK);
    cr_expect_str_eq((const char *)fb.data, "qty");
    cvg_field_cursor_close(fc);
    cvg_log_cursor *lc;
    cvg_op op;
    cr_assert_eq(cvg_log_cursor_open(t, 1, &lc), CVG_OK);
    cr_assert_eq(cvg_log_cursor_next(lc, &op), CVG_OK);
    cr_expect_str_eq((const char *)op.collection.data, "stock");
    cr_expect_str_eq((const char *)op.key.data, "sku-1");
    cr_expect_str_eq((const char *)op.field.data, "qty");
    cr_expect_eq(op.collection.len, 5);
    cvg_log_cursor_close(lc);
    cvg_replica_id peer = {{1}};
    cvg_queue_cursor *qc;
    cvg_queued_op q;
    cr_assert_eq(cvg_sync_queue_open(t, &peer, &qc), CVG_OK);
    cr_assert_eq(cvg_sync_queue_next(qc, &q), CVG_OK);
    cr_expect_str_eq((const char *)q.op.field.data, "qty");
    cvg_sync_queue_close(qc);
    cvg_txn_abort(t);
    cvg_replica_close(r);
}
