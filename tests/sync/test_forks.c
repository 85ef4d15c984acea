/*
 * Forks: one key that signs two histories of its origin (a cloned key: two
 * replicas made with the same secret key). Wherever the two histories
 * meet, the HELLO heads differ; the replica that holds at least as much
 * keeps the two signed heads as proof, reports a FORK event and refuses
 * the origin's ops from then on. Honest copies (cp -r, a restored backup)
 * take a new origin and never fork: tests/replica/test_copies.c.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "converge.h"

#include "checks.h"
#include "testutil.h"

#define OK(call) cr_assert_eq((call), CVG_OK, "%s", #call)

typedef struct seen {
    unsigned forks;
    cvg_dot fork;
} seen;

static void
on_sync(void *ctx, const cvg_sync_event *e)
{
    seen *s = ctx;
    if (e->kind == CVG_SYNC_EVENT_FORK) {
        s->forks++;
        s->fork = e->fork;
    }
}

static cvg_replica *
open_dir(const char *name, const uint8_t *sk, seen *events)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = CVG_RELAXED;
    o.secret_key = sk;
    o.on_sync = events ? on_sync : NULL;
    o.sync_ctx = events;
    cvg_replica *r = NULL;
    OK(cvg_replica_open(cvg_test_dir(name), &o, &r));
    return r;
}

/* @p n register sets, in transactions of up to 500. */
static void
write_n(cvg_replica *r, int n, const char *value)
{
    for (int i = 0; i < n; i += 500) {
        cvg_txn *t;
        OK(cvg_txn_begin(r, 0, &t));
        for (int j = i; j < n && j < i + 500; j++) {
            char key[16];
            snprintf(key, sizeof key, "k%d", j % 300);
            cvg_key k = {"c", key, "f"};
            cvg_value v = cvg_value_string(value);
            OK(cvg_register_set(t, &k, &v, NULL));
        }
        OK(cvg_txn_commit(t));
    }
}

static size_t
forks_of(cvg_replica *r, cvg_fork *out)
{
    size_t n = 99;
    OK(cvg_replica_forks(r, out, 4, &n));
    return n;
}

/* Two replicas with one key: one origin, two histories. */
typedef struct clones {
    uint8_t pk[CVG_PUBLIC_KEY_BYTES], sk[CVG_SECRET_KEY_BYTES];
    cvg_replica *x1, *x2, *a, *b;
    cvg_replica_id xid;
    seen ea, eb;
} clones;

static void
clones_open(clones *c, const char *name, int n1, int n2)
{
    memset(c, 0, sizeof *c);
    OK(cvg_identity_generate(c->pk, c->sk));
    char dir[128];
    snprintf(dir, sizeof dir, "%s-x1", name);
    c->x1 = open_dir(dir, c->sk, NULL);
    snprintf(dir, sizeof dir, "%s-x2", name);
    c->x2 = open_dir(dir, c->sk, NULL);
    snprintf(dir, sizeof dir, "%s-a", name);
    c->a = open_dir(dir, NULL, &c->ea);
    snprintf(dir, sizeof dir, "%s-b", name);
    c->b = open_dir(dir, NULL, &c->eb);
    cvg_replica_id id2;
    cvg_replica_id_get(c->x1, &c->xid);
    cvg_replica_id_get(c->x2, &id2);
    cr_assert(memcmp(&c->xid, &id2, sizeof id2) == 0, "one origin");
    write_n(c->x1, n1, "first history");
    write_n(c->x2, n2, "second history");
    OK(cvg_sync_local(c->x1, c->a, NULL));
    OK(cvg_sync_local(c->x2, c->b, NULL));
}

static void
clones_close(clones *c)
{
    cvg_replica_close(c->x1);
    cvg_replica_close(c->x2);
    cvg_replica_close(c->a);
    cvg_replica_close(c->b);
}

Test(forks, two_histories_at_one_seq_are_found_by_both_sides)
{
    clones c;
    clones_open(&c, "forks-equal", 3, 3);
    int rc = cvg_sync_local(c.a, c.b, NULL);
    cr_expect_eq(rc, CVG_OK, "sync: %s (%s / %s)", cvg_errname(rc),
                 cvg_replica_errmsg(c.a), cvg_replica_errmsg(c.b));
    cvg_replica *sides[2] = {c.a, c.b};
    seen *ev[2] = {&c.ea, &c.eb};
    for (int i = 0; i < 2; i++) {
        cvg_fork f[4];
        cr_assert_eq(forks_of(sides[i], f), 1, "side %d keeps the proof", i);
        cr_expect(memcmp(&f[0].origin, &c.xid, 16) == 0);
        cr_expect_eq(f[0].seq, 3);
        cr_expect_eq(f[0].our_seq, 3, "both heads signed at seq 3");
        cr_expect_eq(ev[i]->forks, 1, "side %d: one FORK event", i);
        cr_expect(memcmp(&ev[i]->fork.origin, &c.xid, 16) == 0);
    }
    /* Each keeps its own history of the origin: nothing was overwritten. */
    char *da = cvg_test_state(c.a), *db = cvg_test_state(c.b);
    cr_expect(strstr(da, "first history") && !strstr(da, "second history"));
    cr_expect(strstr(db, "second history") && !strstr(db, "first history"));
    free(da);
    free(db);
    /* From now on the forked origin's ops are refused. */
    write_n(c.x1, 5, "later");
    rc = cvg_sync_local(c.x1, c.a, NULL);
    cr_expect_eq(rc, CVG_EEQUIVOCAL, "the forked origin's new ops: %s (%s)",
                 cvg_errname(rc), cvg_replica_errmsg(c.a));
    /* A later session finds nothing new: the proof is kept once. */
    OK(cvg_sync_local(c.a, c.b, NULL));
    cvg_fork f[4];
    cr_expect_eq(forks_of(c.a, f), 1);
    clones_close(&c);
}

/* The side with the longer history sees the fork at the shorter one's seq
 * and keeps the proof; the other side refuses the longer history's ops,
 * which do not extend its own (CVG_EFORGED), and keeps what it had. */
Test(forks, a_longer_history_is_found_by_the_side_that_holds_it)
{
    clones c;
    clones_open(&c, "forks-longer", 3, 5);
    char *before = cvg_test_state(c.a);
    int rc = cvg_sync_local(c.a, c.b, NULL);
    cr_expect(rc == CVG_EFORGED || rc == CVG_EPEER, "sync: %s (%s / %s)",
              cvg_errname(rc), cvg_replica_errmsg(c.a),
              cvg_replica_errmsg(c.b));
    cvg_fork f[4];
    cr_assert_eq(forks_of(c.b, f), 1, "B holds 5 ops: it compares at 3");
    cr_expect_eq(f[0].seq, 3);
    cr_expect_eq(f[0].our_seq, 5);
    cr_expect_eq(c.eb.forks, 1);
    char *after = cvg_test_state(c.a);
    cr_expect_str_eq(after, before, "A took nothing of the other history");
    free(before);
    free(after);
    /* B refuses the first history's later ops too. */
    write_n(c.x1, 6, "later");
    OK(cvg_sync_local(c.x1, c.a, NULL));
    rc = cvg_sync_local(c.a, c.b, NULL);
    cr_expect_neq(rc, CVG_OK);
    clones_close(&c);
}

/* Without a fork, heads agree whatever each side holds, over many seeds
 * of writes and syncs in random order: no false alarm. */
Test(forks, honest_replicas_never_report_one)
{
    uint64_t seed = cvg_test_seed(77);
    uint64_t rng = seed;
    cvg_replica *r[4];
    for (int i = 0; i < 4; i++) {
        char dir[32];
        snprintf(dir, sizeof dir, "forks-honest-%d", i);
        r[i] = open_dir(dir, NULL, NULL);
    }
    for (int step = 0; step < 60; step++) {
        int i = (int)cvg_test_below(&rng, 4), j = (int)cvg_test_below(&rng, 4);
        if (cvg_test_below(&rng, 3) == 0) {
            write_n(r[i], 1 + (int)cvg_test_below(&rng, 3000), "v");
        } else if (i != j) {
            int rc = cvg_sync_local(r[i], r[j], NULL);
            cr_assert_eq(rc, CVG_OK, "seed %llu step %d: %s (%s / %s)",
                         (unsigned long long)seed, step, cvg_errname(rc),
                         cvg_replica_errmsg(r[i]), cvg_replica_errmsg(r[j]));
        }
    }
    for (int i = 0; i < 4; i++) {
        cvg_fork f[4];
        cr_expect_eq(forks_of(r[i], f), 0, "seed %llu",
                     (unsigned long long)seed);
        cvg_replica_close(r[i]);
    }
}
