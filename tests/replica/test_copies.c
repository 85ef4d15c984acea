/*
 * Copies and restored backups take a new origin for their writes, so a
 * copy and its original never make two different ops under one seq: the
 * `cp -r` sequence converges on LWW with every sync succeeding, a restored
 * older backup learns its own later ops back without a refusal, and a
 * reopen or a rename keeps the origin.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "converge.h"

#include "testutil.h"

static uint64_t fake_now = 1700000000000ull;

static uint64_t
test_clock(void *ctx)
{
    (void)ctx;
    return fake_now;
}

static cvg_replica *
open_dir(const char *dir)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = CVG_RELAXED;
    o.clock = test_clock;
    cvg_replica *r = NULL;
    int rc = cvg_replica_open(dir, &o, &r);
    cr_assert_eq(rc, CVG_OK, "open %s: %s", dir, cvg_replica_errmsg(NULL));
    return r;
}

static void
set(cvg_replica *r, const char *value)
{
    fake_now += 1000;
    cvg_txn *t;
    cr_assert_eq(cvg_txn_begin(r, 0, &t), CVG_OK);
    cvg_key k = {"c", "k", "f"};
    cvg_value v = cvg_value_string(value);
    cr_assert_eq(cvg_register_set(t, &k, &v, NULL), CVG_OK);
    cr_assert_eq(cvg_txn_commit(t), CVG_OK);
}

static void
expect_value(cvg_replica *r, const char *want)
{
    cvg_txn *t;
    cr_assert_eq(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t), CVG_OK);
    cvg_key k = {"c", "k", "f"};
    cvg_value v;
    cr_assert_eq(cvg_register_get(t, &k, &v), CVG_OK);
    cr_expect_eq(v.kind, CVG_VALUE_STRING);
    cr_expect(v.as.bytes.len == strlen(want) &&
                  memcmp(v.as.bytes.data, want, v.as.bytes.len) == 0,
              "want %s, got %.*s", want, (int)v.as.bytes.len,
              (const char *)v.as.bytes.data);
    cvg_txn_abort(t);
}

static void
sync_ok(cvg_replica *a, cvg_replica *b)
{
    int rc = cvg_sync_local(a, b, NULL);
    cr_assert_eq(rc, CVG_OK, "sync: %s (%s / %s)", cvg_errname(rc),
                 cvg_replica_errmsg(a), cvg_replica_errmsg(b));
}

static void
copy_dir(const char *from, const char *to)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", to, from, to);
    cr_assert_eq(system(cmd), 0);
}

static void
sub(char *out, size_t len, const char *base, const char *name)
{
    snprintf(out, len, "%s/%s", base, name);
}

static void
expect_no_fork(cvg_replica *r)
{
    size_t n = 99;
    cr_assert_eq(cvg_replica_forks(r, NULL, 0, &n), CVG_OK);
    cr_expect_eq(n, 0, "no fork reported");
}

static size_t
previous(cvg_replica *r, cvg_dot *out)
{
    size_t n = 99;
    cr_assert_eq(cvg_replica_previous_origins(r, out, 4, &n), CVG_OK);
    return n;
}

/* The full check finds nothing wrong in what copies leave. */
static void
expect_sound(const char *dir)
{
    cvg_check_report rep;
    int rc = cvg_replica_check(dir, &rep);
    cr_expect_eq(rc, CVG_OK, "%s fails the check: %s: %s", dir, cvg_errname(rc),
                 rep.problem);
}

Test(copies, a_reopen_and_a_rename_keep_the_origin)
{
    char base[512], a[600], moved[600];
    snprintf(base, sizeof base, "%s", cvg_test_dir("copies-keep"));
    sub(a, sizeof a, base, "A");
    sub(moved, sizeof moved, base, "moved");
    cvg_replica *r = open_dir(a);
    set(r, "one");
    cvg_replica_id id, again;
    cvg_replica_id_get(r, &id);
    cvg_replica_close(r);
    r = open_dir(a);
    cvg_replica_id_get(r, &again);
    cr_expect_eq(memcmp(&id, &again, sizeof id), 0);
    cvg_dot prev[4];
    cr_expect_eq(previous(r, prev), 0);
    cvg_replica_close(r);
    cr_assert_eq(rename(a, moved), 0);
    r = open_dir(moved);
    cvg_replica_id_get(r, &again);
    cr_expect_eq(memcmp(&id, &again, sizeof id), 0, "a rename is no copy");
    cr_expect_eq(previous(r, prev), 0);
    cvg_replica_close(r);
}

Test(copies, a_copy_writes_under_a_new_origin_of_the_same_key)
{
    char base[512], a[600], a2[600];
    snprintf(base, sizeof base, "%s", cvg_test_dir("copies-new"));
    sub(a, sizeof a, base, "A");
    sub(a2, sizeof a2, base, "A2");
    cvg_replica *r = open_dir(a);
    set(r, "one");
    cvg_replica_id id;
    cvg_replica_id_get(r, &id);
    uint8_t pk[CVG_PUBLIC_KEY_BYTES], pk2[CVG_PUBLIC_KEY_BYTES];
    cr_assert_eq(cvg_replica_public_key(r, pk), CVG_OK);
    cvg_replica_close(r);
    copy_dir(a, a2);

    cvg_replica *c = open_dir(a2);
    cvg_replica_id cid;
    cvg_replica_id_get(c, &cid);
    cr_expect_neq(memcmp(&id, &cid, sizeof id), 0,
                  "the copy took a new "
                  "origin");
    cr_assert_eq(cvg_replica_public_key(c, pk2), CVG_OK);
    cr_expect_eq(memcmp(pk, pk2, sizeof pk), 0, "with the same key");
    cvg_dot prev[4];
    cr_assert_eq(previous(c, prev), 1);
    cr_expect_eq(memcmp(&prev[0].origin, &id, sizeof id), 0);
    cr_expect_eq(prev[0].seq, 1);
    set(c, "two");
    cvg_dot vv[4];
    size_t n;
    cvg_txn *t;
    cr_assert_eq(cvg_txn_begin(c, CVG_TXN_READ_ONLY, &t), CVG_OK);
    cr_assert_eq(cvg_txn_version_vector(t, vv, 4, &n), CVG_OK);
    cvg_txn_abort(t);
    cr_expect_eq(n, 2, "the old origin at 1 and the new one at 1");
    set(c, "three");
    cvg_replica_close(c);
    /* Reopened where it now lives, the copy keeps its new origin, and the
     * old origin's seq, which the meta record "ahead" held until the new
     * origin's first commit moved it to the origin table. */
    c = open_dir(a2);
    cvg_replica_id again;
    cvg_replica_id_get(c, &again);
    cr_expect_eq(memcmp(&cid, &again, sizeof id), 0);
    cr_assert_eq(cvg_txn_begin(c, CVG_TXN_READ_ONLY, &t), CVG_OK);
    cr_assert_eq(cvg_txn_version_vector(t, vv, 4, &n), CVG_OK);
    cvg_txn_abort(t);
    cr_assert_eq(n, 2);
    for (size_t i = 0; i < n; i++) {
        bool old = memcmp(&vv[i].origin, &id, sizeof id) == 0;
        cr_expect_eq(vv[i].seq, old ? 1u : 2u, "origin %zu at %llu", i,
                     (unsigned long long)vv[i].seq);
    }
    cvg_replica_close(c);
    expect_sound(a2);
    /* The original was not moved. */
    r = open_dir(a);
    cvg_replica_id_get(r, &again);
    cr_expect_eq(memcmp(&id, &again, sizeof id), 0);
    cr_expect_eq(previous(r, prev), 0);
    cvg_replica_close(r);
}

/* The sequence that used to fork origin A silently. */
Test(copies, cp_r_then_different_writes_converge_without_a_fork)
{
    char base[512], a[600], a2[600], s[600];
    snprintf(base, sizeof base, "%s", cvg_test_dir("copies-cpr"));
    sub(a, sizeof a, base, "A");
    sub(a2, sizeof a2, base, "A2");
    sub(s, sizeof s, base, "S");
    cvg_replica *ra = open_dir(a);
    set(ra, "one");
    cvg_replica_close(ra);
    copy_dir(a, a2);
    ra = open_dir(a);
    cvg_replica *ra2 = open_dir(a2);
    cvg_replica *rs = open_dir(s);
    set(ra, "two");
    set(ra2, "TWO-different"); /* later: wins by LWW everywhere */
    sync_ok(ra, rs);
    sync_ok(ra2, rs);
    sync_ok(ra, rs);
    sync_ok(ra, ra2);
    expect_value(rs, "TWO-different");
    expect_value(ra, "TWO-different");
    expect_value(ra2, "TWO-different");
    expect_no_fork(ra);
    expect_no_fork(ra2);
    expect_no_fork(rs);
    cvg_replica_close(ra);
    cvg_replica_close(ra2);
    cvg_replica_close(rs);
    expect_sound(a);
    expect_sound(a2);
    expect_sound(s);
}

/* A backup restored after the original wrote and synced more: the ops it
 * lacks come back from the server, and its new writes go under a new
 * origin, so nothing is refused and nothing forks. */
Test(copies, a_restored_older_backup_learns_its_later_ops_back)
{
    char base[512], a[600], bak[600], s[600];
    snprintf(base, sizeof base, "%s", cvg_test_dir("copies-restore"));
    sub(a, sizeof a, base, "A");
    sub(bak, sizeof bak, base, "backup");
    sub(s, sizeof s, base, "S");
    cvg_replica *ra = open_dir(a);
    set(ra, "one");
    cvg_replica_close(ra);
    copy_dir(a, bak);
    ra = open_dir(a);
    cvg_replica *rs = open_dir(s);
    set(ra, "two");
    set(ra, "three");
    sync_ok(ra, rs);
    cvg_replica_close(ra);
    copy_dir(bak, a); /* the device is lost; the backup comes back */
    ra = open_dir(a);
    expect_value(ra, "one");
    sync_ok(ra, rs);
    expect_value(ra, "three");
    set(ra, "four");
    sync_ok(ra, rs);
    expect_value(rs, "four");
    cvg_dot prev[4];
    cr_expect_eq(previous(ra, prev), 1);
    expect_no_fork(ra);
    expect_no_fork(rs);
    cvg_replica_close(ra);
    cvg_replica_close(rs);
    expect_sound(a);
    expect_sound(s);
}
