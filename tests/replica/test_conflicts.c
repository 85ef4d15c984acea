/* Conflict strategies and events: two replicas write the same register
 * while apart, then sync. Each strategy picks the same winner on both, and
 * the replica that meets the concurrent write reports it. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "converge.h"

#include "testutil.h"

typedef struct events {
    int n;
    cvg_conflict last;
    int64_t local, remote, resolved;
    cvg_value_kind resolved_kind;
    char field[8];
    int64_t first_resolved; /* of the first event */
} events;

static void
on_conflict(void *ctx, const cvg_conflict *c)
{
    events *e = ctx;
    e->n++;
    e->last = *c;
    if (e->n == 1) {
        e->first_resolved = c->resolved.as.integer;
    }
    e->local = c->local.as.integer;
    e->remote = c->remote.as.integer;
    e->resolved = c->resolved.as.integer;
    e->resolved_kind = c->resolved.kind;
    snprintf(e->field, sizeof e->field, "%.*s", (int)c->field.len,
             (const char *)c->field.data);
}

static uint64_t
clock_of(void *ctx)
{
    return *(uint64_t *)ctx;
}

/* The resolver of the tests: the largest value. */
static int
take_max(void *ctx, const cvg_key *key, const cvg_value *v, size_t n,
         cvg_value *out)
{
    (void)ctx;
    (void)key;
    *out = v[0];
    for (size_t i = 1; i < n; i++) {
        if (v[i].as.integer > out->as.integer) {
            *out = v[i];
        }
    }
    return 0;
}

typedef struct pair {
    cvg_replica *r[2];
    uint64_t now[2];
    events ev[2];
    cvg_replica_id id[2];
} pair;

/* Open two replicas (the first is "the server") with @p pol for
 * collection "c" (pol may be NULL). The server id is only known after
 * open, so PRIORITY policies are filled in on a second open. */
static void
open_pair(pair *p, const char *name, cvg_strategy strategy, bool wins,
          bool with_resolver)
{
    memset(p, 0, sizeof *p);
    char dirs[2][512];
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < 2; i++) {
            char n[64];
            snprintf(n, sizeof n, "%s-%d", name, i);
            if (pass == 0) {
                snprintf(dirs[i], sizeof dirs[i], "%s", cvg_test_dir(n));
            }
            cvg_collection_policy pol = {
                .collection = "c",
                .strategy = strategy,
                .priority_origin = p->id[0],
                .priority_wins = wins,
                .resolver = with_resolver ? take_max : NULL,
            };
            cvg_replica_options o;
            cvg_replica_options_init(&o);
            o.durability = CVG_RELAXED;
            o.policies = &pol;
            o.n_policies = 1;
            /* The first pass did not know the server's id yet. */
            o.replace_policies = pass == 1;
            o.on_conflict = on_conflict;
            o.conflict_ctx = &p->ev[i];
            o.clock = clock_of;
            o.clock_ctx = &p->now[i];
            p->now[i] = 1700000000000ull;
            cvg_replica_close(p->r[i]);
            cr_assert_eq(cvg_replica_open(dirs[i], &o, &p->r[i]), CVG_OK);
            cvg_replica_id_get(p->r[i], &p->id[i]);
        }
    }
}

static void
write_int(cvg_replica *r, cvg_type type, int64_t v)
{
    cvg_key k = {"c", "k", "f"};
    cvg_value val = cvg_value_int(v);
    cvg_txn *t;
    cr_assert_eq(cvg_txn_begin(r, 0, &t), CVG_OK);
    int rc = type == CVG_TYPE_REGISTER ? cvg_register_set(t, &k, &val, NULL)
                                       : cvg_mvregister_set(t, &k, &val, NULL);
    cr_assert_eq(rc, CVG_OK);
    cr_assert_eq(cvg_txn_commit(t), CVG_OK);
}

static int64_t
read_reg(cvg_replica *r)
{
    cvg_key k = {"c", "k", "f"};
    cvg_txn *t;
    cvg_value v;
    cr_assert_eq(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t), CVG_OK);
    cr_assert_eq(cvg_register_get(t, &k, &v), CVG_OK);
    cvg_txn_abort(t);
    return v.as.integer;
}

static size_t
mv_count(cvg_replica *r, int64_t *first)
{
    cvg_key k = {"c", "k", "f"};
    cvg_txn *t;
    cvg_value v[8];
    size_t n = 0;
    cr_assert_eq(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t), CVG_OK);
    cr_assert_eq(cvg_mvregister_get(t, &k, v, NULL, 8, &n), CVG_OK);
    *first = v[0].as.integer;
    cvg_txn_abort(t);
    return n;
}

/* The server writes first (an older clock), the client later. */
static void
concurrent_writes(pair *p, cvg_type type)
{
    p->now[0] += 10;
    write_int(p->r[0], type, 100);
    p->now[1] += 20;
    write_int(p->r[1], type, 200);
    cr_assert_eq(cvg_sync_local(p->r[0], p->r[1], NULL), CVG_OK);
}

/* What conflicts leave (resolved values written as ops included) passes
 * the full check. */
static void
expect_sound(cvg_replica *r)
{
    cvg_check_report rep;
    int rc = cvg_replica_verify(r, &rep);
    cr_expect_eq(rc, CVG_OK, "the full check: %s: %s", cvg_errname(rc),
                 rep.problem);
}

Test(conflicts, lww_later_write_wins_and_is_reported)
{
    pair p;
    open_pair(&p, "lww", CVG_STRATEGY_LWW, false, false);
    concurrent_writes(&p, CVG_TYPE_REGISTER);
    cr_expect_eq(read_reg(p.r[0]), 200);
    cr_expect_eq(read_reg(p.r[1]), 200);
    /* Both sides met the other's write; each reports it. */
    cr_assert_eq(p.ev[0].n, 1);
    cr_expect_eq(p.ev[0].local, 100);
    cr_expect_eq(p.ev[0].remote, 200);
    cr_expect_eq(p.ev[0].resolved, 200);
    cr_expect_eq(p.ev[0].last.strategy, CVG_STRATEGY_LWW);
    cr_expect_eq(p.ev[0].last.type, CVG_TYPE_REGISTER);
    cr_expect_str_eq(p.ev[0].field, "f");
    cr_assert_eq(p.ev[1].n, 1);
    cr_expect_eq(p.ev[1].local, 200);
    cr_expect_eq(p.ev[1].remote, 100);
    cr_expect_eq(p.ev[1].resolved, 200);
    /* A later write that saw both replaces them: no more conflict. */
    write_int(p.r[1], CVG_TYPE_REGISTER, 300);
    cr_assert_eq(cvg_sync_local(p.r[0], p.r[1], NULL), CVG_OK);
    cr_expect_eq(read_reg(p.r[0]), 300);
    cr_expect_eq(p.ev[0].n, 1);
    cvg_replica_close(p.r[0]);
    cvg_replica_close(p.r[1]);
}

Test(conflicts, server_wins_over_a_later_client_write)
{
    pair p;
    open_pair(&p, "srvwins", CVG_STRATEGY_PRIORITY, true, false);
    concurrent_writes(&p, CVG_TYPE_REGISTER);
    cr_expect_eq(read_reg(p.r[0]), 100);
    cr_expect_eq(read_reg(p.r[1]), 100);
    cr_expect_eq(p.ev[1].resolved, 100);
    cr_expect_eq(p.ev[1].last.strategy, CVG_STRATEGY_PRIORITY);
    cvg_replica_close(p.r[0]);
    cvg_replica_close(p.r[1]);
}

Test(conflicts, client_wins_over_a_later_server_write)
{
    pair p;
    open_pair(&p, "cliwins", CVG_STRATEGY_PRIORITY, false, false);
    /* Now the server writes later: it still loses. */
    p.now[1] += 10;
    write_int(p.r[1], CVG_TYPE_REGISTER, 200);
    p.now[0] += 20;
    write_int(p.r[0], CVG_TYPE_REGISTER, 100);
    cr_assert_eq(cvg_sync_local(p.r[0], p.r[1], NULL), CVG_OK);
    cr_expect_eq(read_reg(p.r[0]), 200);
    cr_expect_eq(read_reg(p.r[1]), 200);
    cvg_replica_close(p.r[0]);
    cvg_replica_close(p.r[1]);
}

Test(conflicts, resolver_merges_siblings_everywhere)
{
    pair p;
    open_pair(&p, "resolve", CVG_STRATEGY_RESOLVER, false, true);
    p.now[0] += 10;
    write_int(p.r[0], CVG_TYPE_MVREGISTER, 700);
    p.now[1] += 20;
    write_int(p.r[1], CVG_TYPE_MVREGISTER, 5);
    cr_assert_eq(cvg_sync_local(p.r[0], p.r[1], NULL), CVG_OK);
    /* The resolved value was written as an op; one more sync spreads it. */
    cr_assert_eq(cvg_sync_local(p.r[0], p.r[1], NULL), CVG_OK);
    int64_t v0, v1;
    size_t n0 = mv_count(p.r[0], &v0), n1 = mv_count(p.r[1], &v1);
    cr_expect(v0 == 700 && v1 == 700, "resolved to %lld and %lld",
              (long long)v0, (long long)v1);
    cr_expect(n0 <= 2 && n1 <= 2);
    cr_expect_eq(n0, n1);
    cr_expect_geq(p.ev[0].n + p.ev[1].n, 1);
    /* Both sides may resolve at once; their two equal answers then stay
     * side by side (resolving equal values again would never end). */
    cr_expect_eq(p.ev[0].first_resolved, 700,
                 "events %d %d, resolved %lld %lld kinds %d %d", p.ev[0].n,
                 p.ev[1].n, (long long)p.ev[0].resolved,
                 (long long)p.ev[1].resolved, p.ev[0].resolved_kind,
                 p.ev[1].resolved_kind);
    expect_sound(p.r[0]);
    expect_sound(p.r[1]);
    cvg_replica_close(p.r[0]);
    cvg_replica_close(p.r[1]);
}

Test(conflicts, without_a_resolver_siblings_stay)
{
    pair p;
    open_pair(&p, "siblings", CVG_STRATEGY_RESOLVER, false, false);
    concurrent_writes(&p, CVG_TYPE_MVREGISTER);
    int64_t first;
    cr_expect_eq(mv_count(p.r[0], &first), 2);
    cr_expect_eq(mv_count(p.r[1], &first), 2);
    /* The event says what a read shows first now, and that both values
     * stay. */
    cr_assert_geq(p.ev[0].n, 1);
    cr_expect_eq(p.ev[0].resolved_kind, CVG_VALUE_INT);
    cr_expect_eq(p.ev[0].last.siblings, 2);
    int64_t seen[2];
    size_t n = 0;
    cvg_txn *t;
    cvg_value vals[2];
    cr_assert_eq(cvg_txn_begin(p.r[0], CVG_TXN_READ_ONLY, &t), CVG_OK);
    cvg_key k = {"c", "k", "f"};
    cr_assert_eq(cvg_mvregister_get(t, &k, vals, NULL, 2, &n), CVG_OK);
    seen[0] = vals[0].as.integer;
    seen[1] = vals[1].as.integer;
    cvg_txn_abort(t);
    cr_expect(p.ev[0].resolved == seen[0] || p.ev[0].resolved == seen[1],
              "resolved %lld is not one of the siblings",
              (long long)p.ev[0].resolved);
    cvg_replica_close(p.r[0]);
    cvg_replica_close(p.r[1]);
}

/* The resolver of the wide test: counts how many siblings it was given. */
static size_t widest;

static int
take_max_counting(void *ctx, const cvg_key *key, const cvg_value *v, size_t n,
                  cvg_value *out)
{
    widest = n > widest ? n : widest;
    return take_max(ctx, key, v, n, out);
}

/* 70 replicas write one register concurrently; a relay without a resolver
 * gathers all 70 siblings, then hands them to a hub in one page. The hub's
 * resolver sees every one of them (it once saw none past 64, silently),
 * and one value is left, the largest, on the hub and the relay alike. */
Test(conflicts, the_resolver_sees_every_sibling, .timeout = 120)
{
    enum { WRITERS = 70 };
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = CVG_RELAXED;
    cvg_replica *relay, *hub;
    cr_assert_eq(cvg_replica_open(cvg_test_dir("wide-relay"), &o, &relay),
                 CVG_OK);
    for (int i = 0; i < WRITERS; i++) {
        char name[32];
        snprintf(name, sizeof name, "wide-%d", i);
        cvg_replica *w;
        cr_assert_eq(cvg_replica_open(cvg_test_dir(name), &o, &w), CVG_OK);
        write_int(w, CVG_TYPE_MVREGISTER, 1000 + i);
        cr_assert_eq(cvg_sync_local(w, relay, NULL), CVG_OK);
        cvg_replica_close(w);
    }
    int64_t first;
    cr_assert_eq(mv_count(relay, &first), WRITERS);
    cvg_collection_policy pol = {.collection = "c",
                                 .strategy = CVG_STRATEGY_RESOLVER,
                                 .resolver = take_max_counting};
    o.policies = &pol;
    o.n_policies = 1;
    cr_assert_eq(cvg_replica_open(cvg_test_dir("wide-hub"), &o, &hub), CVG_OK);
    /* The hub writes too, so that the relay's values conflict with it. */
    write_int(hub, CVG_TYPE_MVREGISTER, 1);
    widest = 0;
    cr_assert_eq(cvg_sync_local(hub, relay, NULL), CVG_OK);
    cr_expect_eq(widest, WRITERS + 1, "the resolver saw %zu siblings", widest);
    cr_expect_eq(mv_count(hub, &first), 1);
    cr_expect_eq(first, 1000 + WRITERS - 1);
    cr_assert_eq(cvg_sync_local(hub, relay, NULL), CVG_OK);
    cr_expect_eq(mv_count(relay, &first), 1);
    cr_expect_eq(first, 1000 + WRITERS - 1);
    expect_sound(hub);
    expect_sound(relay);
    cvg_replica_close(hub);
    cvg_replica_close(relay);
}
