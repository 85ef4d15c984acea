/*
 * The forgery matrix: a relay in the middle of an honest sync changes the
 * page it passes on, and the victim must refuse it whole, with its code,
 * its state, version vector and raw databases unchanged.
 *
 * C is an honest origin; R holds C's ops (with C's signature points) and
 * serves them; V pulls from R and has nothing of C yet. Every case runs the
 * real sessions of R and V, and edits R's first OPS page on its way: ops
 * made up under C's next seq, old ops altered (time, target, payload,
 * observed dots), signatures truncated, flipped, dropped, swapped, made by
 * another key or moved onto other content. The unedited page, and one with
 * its points merely listed in another order, are taken.
 */
#include <criterion/criterion.h>
#include <lmdb.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checks.h"
#include "replica/replica_int.h"
#include "sync/wire.h"
#include "testutil.h"

#define OK(call) cr_assert_eq((call), CVG_OK, "%s", #call)

static cvg_replica *
open_dir(const char *name, char *path_out, size_t cap)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = CVG_RELAXED;
    cvg_replica *r = NULL;
    const char *path = cvg_test_dir(name);
    if (path_out != NULL) {
        snprintf(path_out, cap, "%s", path);
    }
    OK(cvg_replica_open(path, &o, &r));
    return r;
}

/* Ops of every kind by @p r, in a few transactions. */
static void
write_history(cvg_replica *r, const char *coll)
{
    cvg_txn *t;
    cvg_key qty = {coll, "a", "qty"}, name = {coll, "a", "name"},
            tags = {coll, "a", "tags"}, other = {coll, "b", "qty"};
    cvg_value v1 = cvg_value_string("one"), v2 = cvg_value_string("two");
    cvg_value e = cvg_value_int(7);
    OK(cvg_txn_begin(r, 0, &t));
    OK(cvg_counter_add(t, &qty, 5, NULL));
    OK(cvg_register_set(t, &name, &v1, NULL));
    OK(cvg_set_add(t, &tags, &e, NULL));
    OK(cvg_counter_add(t, &other, 2, NULL));
    OK(cvg_txn_commit(t));
    OK(cvg_txn_begin(r, 0, &t));
    OK(cvg_register_set(t, &name, &v2, NULL)); /* observes v1's dot */
    OK(cvg_set_remove(t, &tags, &e, NULL));    /* observes the add */
    OK(cvg_counter_add(t, &qty, -1, NULL));
    OK(cvg_txn_commit(t));
    OK(cvg_txn_begin(r, 0, &t));
    cvg_key note = {coll, "d", "note"}, rec = {coll, "d", NULL};
    OK(cvg_register_set(t, &note, &v1, NULL));
    OK(cvg_record_delete(t, &rec, NULL));
    OK(cvg_txn_commit(t));
}

/* ---- What must not change -------------------------------------------------*/

typedef struct snap {
    char *digest;
    cvg__buf raw;
} snap;

static void
raw_db(cvg__buf *b, MDB_txn *mt, MDB_dbi db)
{
    MDB_cursor *c;
    cr_assert_eq(mdb_cursor_open(mt, db, &c), MDB_SUCCESS);
    MDB_val k, v;
    int mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (mrc == MDB_SUCCESS) {
        size_t lens[2] = {k.mv_size, v.mv_size};
        OK(cvg__buf_append(b, lens, sizeof lens));
        OK(cvg__buf_append(b, k.mv_data, k.mv_size));
        OK(cvg__buf_append(b, v.mv_data, v.mv_size));
        mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    cr_assert_eq(mrc, MDB_NOTFOUND);
    mdb_cursor_close(c);
}

static void
snap_take(cvg_replica *r, snap *s)
{
    memset(s, 0, sizeof *s);
    s->digest = cvg_test_state(r);
    cvg_txn *t;
    OK(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t));
    cvg_dot vv[16];
    size_t n;
    OK(cvg_txn_version_vector(t, vv, 16, &n));
    OK(cvg__buf_append(&s->raw, vv, n * sizeof *vv));
    unsigned dbs[] = {r->store.log, r->store.dots, r->store.state,
                      r->store.origins, r->store.history};
    for (size_t i = 0; i < sizeof dbs / sizeof *dbs; i++) {
        raw_db(&s->raw, t->mt, dbs[i]);
    }
    cvg_txn_abort(t);
}

static void
snap_expect_same(cvg_replica *r, const snap *before, const char *what)
{
    snap now;
    snap_take(r, &now);
    cr_expect(now.raw.len == before->raw.len &&
                  memcmp(now.raw.p, before->raw.p, now.raw.len) == 0,
              "%s: the version vector, log, dots, state, origins or "
              "history changed",
              what);
    cr_expect_str_eq(now.digest, before->digest, "%s: state changed", what);
    free(now.digest);
    cvg__buf_free(&now.raw);
}

/* ---- The relay in the middle --------------------------------------------- */

typedef struct world {
    cvg_replica *c, *r, *v;
    cvg_replica_id cid;
    cvg_replica_id rid;
    uint8_t csk[CVG_SECRET_KEY_BYTES]; /* C's key, for cases that re-sign */
    uint8_t rsk[CVG_SECRET_KEY_BYTES]; /* R's */
} world;

static void
read_key(const char *dir, uint8_t *sk)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/identity.key", dir);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fread(sk, 1, CVG_SECRET_KEY_BYTES, f), CVG_SECRET_KEY_BYTES);
    fclose(f);
}

static void
world_open(world *w, const char *name)
{
    char dir[256], cdir[4096], rdir[4096];
    snprintf(dir, sizeof dir, "%s-c", name);
    w->c = open_dir(dir, cdir, sizeof cdir);
    snprintf(dir, sizeof dir, "%s-r", name);
    w->r = open_dir(dir, rdir, sizeof rdir);
    snprintf(dir, sizeof dir, "%s-v", name);
    w->v = open_dir(dir, NULL, 0);
    cvg_replica_id_get(w->c, &w->cid);
    cvg_replica_id_get(w->r, &w->rid);
    write_history(w->c, "c");
    write_history(w->r, "r");
    OK(cvg_sync_local(w->c, w->r, NULL));
    /* R's log ends with an op of its own, after C's. */
    cvg_txn *t;
    cvg_key last = {"r", "last", "n"};
    OK(cvg_txn_begin(w->r, 0, &t));
    OK(cvg_counter_add(t, &last, 1, NULL));
    OK(cvg_txn_commit(t));
    read_key(cdir, w->csk);
    read_key(rdir, w->rsk);
}

static void
world_close(world *w)
{
    cvg_replica_close(w->c);
    cvg_replica_close(w->r);
    cvg_replica_close(w->v);
}

/* An edit of the page: decoded blocks as ops, and the points. */
typedef struct page_edit {
    cvg__op ops[64];
    size_t n;
    cvg__point points[8];
    size_t npoints;
    _Alignas(8) uint8_t arena[8192]; /* copies of what the ops point into */
    size_t used;
} page_edit;

typedef void (*edit_fn)(world *w, page_edit *e);

static const uint8_t *
keep(page_edit *e, const void *p, size_t n)
{
    e->used = (e->used + 7) & ~(size_t)7; /* dots are read as structs */
    cr_assert_leq(e->used + n, sizeof e->arena);
    uint8_t *q = e->arena + e->used;
    if (n) {
        memcpy(q, p, n);
    }
    e->used += n;
    return q;
}

static void
page_decode(const cvg__msg *m, page_edit *e)
{
    memset(e, 0, sizeof *e);
    for (size_t i = 0; i < m->n_blocks; i++) {
        cvg__block_reader rd;
        memset(&rd, 0, sizeof rd);
        OK(cvg__block_open(&rd, m->blocks[i].data, m->blocks[i].len));
        cvg__op op;
        int rc;
        while ((rc = cvg__block_next(&rd, &op)) == CVG_OK) {
            cr_assert_lt(e->n, 64);
            cvg__op *o = &e->ops[e->n++];
            *o = op;
            o->pub.collection.data =
                keep(e, op.pub.collection.data, op.pub.collection.len);
            o->pub.key.data = keep(e, op.pub.key.data, op.pub.key.len);
            o->pub.field.data = keep(e, op.pub.field.data, op.pub.field.len);
            o->pub.observed = (const cvg_dot *)keep(
                e, op.pub.observed, op.pub.observed_count * sizeof(cvg_dot));
            if (op.pub.value.kind == CVG_VALUE_STRING ||
                op.pub.value.kind == CVG_VALUE_BYTES) {
                o->pub.value.as.bytes.data = keep(e, op.pub.value.as.bytes.data,
                                                  op.pub.value.as.bytes.len);
            }
            cr_assert_eq(op.n_counters, 0, "no counter parts in these ops");
        }
        cr_assert_eq(rc, CVG_DONE);
        cvg__block_reader_destroy(&rd);
    }
    cr_assert_leq(m->n_points, 8);
    memcpy(e->points, m->points, m->n_points * sizeof *m->points);
    e->npoints = m->n_points;
}

static int
collect_block(void *ctx, const cvg__block_run *run, cvg_bytes b)
{
    (void)run;
    cvg__buf *out = ctx;
    uint32_t len = (uint32_t)b.len;
    int rc = cvg__buf_append(out, &len, sizeof len);
    return rc == CVG_OK ? cvg__buf_append(out, b.data, b.len) : rc;
}

/* The page again, from the edit, as R would have sent it. */
static void
page_encode(const cvg__msg *m0, const page_edit *e, cvg__buf *out)
{
    cvg__buf blocks = {0};
    cvg__block_run run;
    memset(&run, 0, sizeof run);
    run.max_ops = 4096;
    run.max_bytes = SIZE_MAX;
    run.done = collect_block;
    run.ctx = &blocks;
    for (size_t i = 0; i < e->n; i++) {
        OK(cvg__block_run_add(&run, &e->ops[i]));
    }
    OK(cvg__block_run_close(&run));
    cvg__block_run_destroy(&run);
    cvg_bytes bv[64];
    size_t nb = 0;
    for (size_t off = 0; off < blocks.len; nb++) {
        uint32_t len;
        memcpy(&len, blocks.p + off, sizeof len);
        bv[nb].data = blocks.p + off + sizeof len;
        bv[nb].len = len;
        off += sizeof len + len;
    }
    cvg__msg m = *m0;
    m.blocks = bv;
    m.n_blocks = nb;
    m.points = e->points;
    m.n_points = e->npoints;
    out->len = 0;
    OK(cvg__msg_encode(&m, out));
    cvg__buf_free(&blocks);
}

/* Sync R -> V, with @p edit applied to R's first page of ops. V's answer
 * to that page is returned; the sync goes on to its end if it is CVG_OK. */
static int
relay_sync(world *w, edit_fn edit)
{
    cvg_session_options ro;
    cvg_session_options_init(&ro);
    ro.no_pull = true; /* R only serves */
    cvg_session *sr, *sv;
    OK(cvg_session_open(w->r, &ro, &sr));
    OK(cvg_session_open(w->v, NULL, &sv));
    int page_rc = CVG_OK;
    bool edited = false;
    cvg__msg_scratch sc = {0};
    cvg__buf b = {0};
    for (int round = 0; round < 1000; round++) {
        bool moved = false;
        cvg_bytes m;
        while (cvg_session_output(sr, &m) == CVG_OK) {
            moved = true;
            cvg__msg msg;
            const uint8_t *p = m.data;
            size_t n = m.len;
            if (!edited && edit != NULL &&
                cvg__msg_decode(m.data, m.len, &msg, &sc) == CVG_OK &&
                msg.type == CVG__MSG_OPS && msg.n_blocks > 0) {
                page_edit e;
                page_decode(&msg, &e);
                edit(w, &e);
                page_encode(&msg, &e, &b);
                p = b.p;
                n = b.len;
                edited = true;
                page_rc = cvg_session_input(sv, p, n);
                continue;
            }
            int rc = cvg_session_input(sv, p, n);
            if (rc != CVG_OK && page_rc == CVG_OK) {
                page_rc = rc;
            }
        }
        while (cvg_session_output(sv, &m) == CVG_OK) {
            moved = true;
            (void)cvg_session_input(sr, m.data, m.len);
        }
        if (!moved || page_rc != CVG_OK) {
            break;
        }
    }
    cvg__msg_scratch_destroy(&sc);
    cvg__buf_free(&b);
    if (page_rc == CVG_OK) {
        cr_expect(cvg_session_done(sv), "the sync finished");
    }
    cvg_session_close(sr);
    cvg_session_close(sv);
    return page_rc;
}

/* The first op of origin @p o in the page, and the last. */
static cvg__op *
first_of(page_edit *e, const cvg_replica_id *o)
{
    for (size_t i = 0; i < e->n; i++) {
        if (cvg__id_cmp(&e->ops[i].pub.dot.origin, o) == 0) {
            return &e->ops[i];
        }
    }
    cr_assert_fail("no op of the origin in the page");
    return NULL;
}

static cvg__point *
point_of(page_edit *e, const cvg_replica_id *o)
{
    for (size_t i = 0; i < e->npoints; i++) {
        if (cvg__id_cmp(&e->points[i].origin, o) == 0) {
            return &e->points[i];
        }
    }
    cr_assert_fail("no point of the origin in the page");
    return NULL;
}

/* Sign @p p again, over the digest of the page's ops of its origin (from
 * seq 1: V has none of them), with @p sk. */
static void
resign(page_edit *e, cvg__point *p, const uint8_t *sk)
{
    static const uint8_t zero[CVG__DIGEST_BYTES];
    cvg__history h;
    cvg__history_begin(&h, &p->origin, 0, zero);
    cvg__buf scratch = {0};
    for (size_t i = 0; i < e->n; i++) {
        if (cvg__id_cmp(&e->ops[i].pub.dot.origin, &p->origin) == 0) {
            cvg__history_seal seal;
            OK(cvg__history_add(&h, &e->ops[i], &scratch, &seal));
        }
    }
    cvg__buf_free(&scratch);
    uint8_t d[CVG__DIGEST_BYTES], msg[CVG__POINT_MSG_BYTES];
    cvg__history_digest(&h, d);
    p->seq = h.seq;
    cvg__history_message(&p->origin, h.seq, d, msg);
    crypto_sign_detached(p->sig, NULL, msg, sizeof msg, sk);
}

/* ---- The edits ------------------------------------------------------------*/

static void
edit_none(world *w, page_edit *e)
{
    (void)w;
    (void)e;
}

static void
edit_reorder_points(world *w, page_edit *e)
{
    (void)w;
    cr_assert_geq(e->npoints, 2, "points of C and R");
    cvg__point tmp = e->points[0];
    e->points[0] = e->points[e->npoints - 1];
    e->points[e->npoints - 1] = tmp;
}

static void resign(page_edit *e, cvg__point *p, const uint8_t *sk);
static cvg__point *point_of(page_edit *e, const cvg_replica_id *o);

/* A made-up op under C's next seq, after C's last. The page keeps its
 * count and cursor: R's own last op makes room, and R's point is signed
 * again for that (the relay is R itself here), so only C's op is wrong. */
static void
edit_new_op(world *w, page_edit *e)
{
    cr_assert(cvg__id_cmp(&e->ops[e->n - 1].pub.dot.origin, &w->rid) == 0,
              "the page ends with R's op");
    e->n--;
    resign(e, point_of(e, &w->rid), w->rsk);
    size_t last = 0;
    for (size_t i = 0; i < e->n; i++) {
        if (cvg__id_cmp(&e->ops[i].pub.dot.origin, &w->cid) == 0) {
            last = i;
        }
    }
    cr_assert_lt(e->n, 64);
    memmove(&e->ops[last + 2], &e->ops[last + 1],
            (e->n - last - 1) * sizeof *e->ops);
    e->n++;
    cvg__op *op = &e->ops[last + 1];
    memset(op, 0, sizeof *op);
    op->pub.dot.origin = w->cid;
    op->pub.dot.seq = e->ops[last].pub.dot.seq + 1;
    op->pub.hlc = e->ops[last].pub.hlc + 1;
    op->pub.kind = CVG_OP_COUNTER_ADD;
    op->pub.collection = (cvg_bytes){(const uint8_t *)"c", 1};
    op->pub.key = (cvg_bytes){(const uint8_t *)"a", 1};
    op->pub.field = (cvg_bytes){(const uint8_t *)"qty", 3};
    op->pub.delta = 1000;
}

/* The same, and C's point moved to the new op's seq. */
static void
edit_new_op_point_moved(world *w, page_edit *e)
{
    edit_new_op(w, e);
    point_of(e, &w->cid)->seq++;
}

static void
edit_time(world *w, page_edit *e)
{
    first_of(e, &w->cid)->pub.hlc += 1;
}

static void
edit_target(world *w, page_edit *e)
{
    first_of(e, &w->cid)->pub.key = (cvg_bytes){(const uint8_t *)"z", 1};
}

static void
edit_payload(world *w, page_edit *e)
{
    first_of(e, &w->cid)->pub.delta = 500; /* was 5 */
}

static void
edit_observed(world *w, page_edit *e)
{
    /* C's second register set observed its first: it now observes none. */
    for (size_t i = 0; i < e->n; i++) {
        cvg__op *op = &e->ops[i];
        if (cvg__id_cmp(&op->pub.dot.origin, &w->cid) == 0 &&
            op->pub.kind == CVG_OP_REGISTER_SET && op->pub.observed_count) {
            op->pub.observed_count = 0;
            return;
        }
    }
    cr_assert_fail("no register set with observed dots");
}

static void
edit_flip_sig(world *w, page_edit *e)
{
    point_of(e, &w->cid)->sig[17] ^= 0x04;
}

static void
edit_drop_point(world *w, page_edit *e)
{
    cvg__point *p = point_of(e, &w->cid);
    size_t i = (size_t)(p - e->points);
    memmove(&e->points[i], &e->points[i + 1],
            (e->npoints - i - 1) * sizeof *e->points);
    e->npoints--;
}

static void
edit_swap_sigs(world *w, page_edit *e)
{
    (void)w;
    cr_assert_geq(e->npoints, 2);
    uint8_t tmp[CVG__SIG_BYTES];
    memcpy(tmp, e->points[0].sig, sizeof tmp);
    memcpy(e->points[0].sig, e->points[1].sig, sizeof tmp);
    memcpy(e->points[1].sig, tmp, sizeof tmp);
}

/* The payload changed and re-signed by a key that is not C's, offered as
 * C's key: the key is not the origin's. */
static void
edit_other_key(world *w, page_edit *e)
{
    uint8_t pk[CVG_PUBLIC_KEY_BYTES], sk[CVG_SECRET_KEY_BYTES];
    OK(cvg_identity_generate(pk, sk));
    edit_payload(w, e);
    cvg__point *p = point_of(e, &w->cid);
    resign(e, p, sk);
    memcpy(p->pk, pk, sizeof pk);
}

/* The same without the key in the point: V cannot check it. */
static void
edit_other_key_no_key(world *w, page_edit *e)
{
    edit_other_key(w, e);
    point_of(e, &w->cid)->has_key = false;
}

/* A valid signature of C, over other content: C's point at its last seq
 * put on a page that ends one op earlier. */
static void
edit_sig_on_other_content(world *w, page_edit *e)
{
    size_t last = 0;
    for (size_t i = 0; i < e->n; i++) {
        if (cvg__id_cmp(&e->ops[i].pub.dot.origin, &w->cid) == 0) {
            last = i;
        }
    }
    /* Drop C's last op (a record delete; nothing of R's depends on it). */
    memmove(&e->ops[last], &e->ops[last + 1],
            (e->n - last - 1) * sizeof *e->ops);
    e->n--;
    point_of(e, &w->cid)->seq--;
}

/* The payload changed and re-signed with C's real key: this is what only
 * C can do, and V takes it (the control for the cases above). */
static void
edit_resigned_by_c(world *w, page_edit *e)
{
    edit_payload(w, e);
    resign(e, point_of(e, &w->cid), w->csk);
}

/* ---- The matrix ---------------------------------------------------------- */

static void
expect_refused(const char *name, edit_fn edit, int code)
{
    world w;
    world_open(&w, name);
    snap before;
    snap_take(w.v, &before);
    int rc = relay_sync(&w, edit);
    cr_expect_eq(rc, code, "%s: %s (%s), expected %s", name, cvg_errname(rc),
                 cvg_replica_errmsg(w.v), cvg_errname(code));
    snap_expect_same(w.v, &before, name);
    free(before.digest);
    cvg__buf_free(&before.raw);
    /* And the honest page still goes through afterwards. */
    OK(relay_sync(&w, NULL));
    char *dv = cvg_test_state(w.v), *dr = cvg_test_state(w.r);
    cr_expect_str_eq(dv, dr, "%s: V converges with R afterwards", name);
    free(dv);
    free(dr);
    world_close(&w);
}

Test(forgery, honest_pages_are_taken)
{
    const struct {
        const char *name;
        edit_fn edit;
    } cases[] = {{"forge-none", edit_none},
                 {"forge-reorder", edit_reorder_points},
                 {"forge-resigned", edit_resigned_by_c}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        world w;
        world_open(&w, cases[i].name);
        int rc = relay_sync(&w, cases[i].edit);
        cr_expect_eq(rc, CVG_OK, "%s: %s (%s)", cases[i].name, cvg_errname(rc),
                     cvg_replica_errmsg(w.v));
        if (cases[i].edit != edit_resigned_by_c) {
            char *dv = cvg_test_state(w.v), *dr = cvg_test_state(w.r);
            cr_expect_str_eq(dv, dr, "%s: V has what R has", cases[i].name);
            free(dv);
            free(dr);
        }
        world_close(&w);
    }
}

Test(forgery, a_new_op_under_anothers_next_seq)
{
    expect_refused("forge-new", edit_new_op, CVG_EFORGED);
    expect_refused("forge-new-moved", edit_new_op_point_moved, CVG_EFORGED);
}

Test(forgery, an_altered_old_op)
{
    expect_refused("forge-time", edit_time, CVG_EFORGED);
    expect_refused("forge-target", edit_target, CVG_EFORGED);
    expect_refused("forge-payload", edit_payload, CVG_EFORGED);
    expect_refused("forge-observed", edit_observed, CVG_EFORGED);
}

Test(forgery, bad_signatures)
{
    expect_refused("forge-flip", edit_flip_sig, CVG_EFORGED);
    expect_refused("forge-other-key", edit_other_key, CVG_EFORGED);
    expect_refused("forge-other-key-bare", edit_other_key_no_key, CVG_EFORGED);
    expect_refused("forge-moved", edit_sig_on_other_content, CVG_EFORGED);
}

Test(forgery, a_relay_that_drops_or_swaps_signatures)
{
    expect_refused("forge-drop", edit_drop_point, CVG_EFORGED);
    expect_refused("forge-swap", edit_swap_sigs, CVG_EFORGED);
}

/* A truncated signature does not even parse: the page is malformed (and a
 * malformed message ends a session with its code, test_hostile.c), while
 * the same point with all 64 bytes does. */
Test(forgery, a_truncated_signature)
{
    cvg_replica_id origin;
    memset(origin.bytes, 0x5c, sizeof origin.bytes);
    /* OPS: next cursor 1, no more, no blocks, one point with 63 bytes of
     * signature, no key. */
    const uint8_t head[] = {
        CVG_PROTOCOL_VERSION, 0x03, 0x01, 0xc2, 0x00, 0x01, 0xc4, 0x10};
    cvg__buf b = {0};
    OK(cvg__buf_append(&b, head, sizeof head));
    OK(cvg__buf_append(&b, origin.bytes, 16));
    const uint8_t seq_sig[] = {0x01, 0xc4, 0x3f};
    OK(cvg__buf_append(&b, seq_sig, sizeof seq_sig));
    uint8_t sig[64] = {0};
    OK(cvg__buf_append(&b, sig, 63));
    OK(cvg__buf_append(&b, "\xc4\x00\xc4\x00", 4));
    cvg__msg m;
    cvg__msg_scratch sc = {0};
    cr_expect_eq(cvg__msg_decode(b.p, b.len, &m, &sc), CVG_ECORRUPT);
    /* With 64 bytes it parses. */
    b.p[sizeof head + 16 + 2] = 0x40;
    b.len -= 4;
    OK(cvg__buf_append(&b, "\x00\xc4\x00\xc4\x00", 5));
    cr_assert_eq(cvg__msg_decode(b.p, b.len, &m, &sc), CVG_OK);
    cr_expect_eq(m.n_points, 1);
    cr_expect_eq(m.points[0].seq, 1);
    cvg__msg_scratch_destroy(&sc);
    cvg__buf_free(&b);
}
