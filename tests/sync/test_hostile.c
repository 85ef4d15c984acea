/*
 * Hostile peers on the sans-IO protocol. For each class of bad message (bad
 * bytes, bad ops, messages out of turn) a valid message is built with the
 * wire encoder and the op block writer, mutated (many times, from a seed,
 * where the class allows), and fed to a session at the right point of the
 * protocol. Each must give its exact error code, end the session with an
 * ERROR for the peer, and leave the replica as it was: the same state
 * digest, version vector, and bytes in the log, dots, state and origins
 * databases. A clean sync with an honest peer must work afterwards.
 *
 * Nothing here depends on the bytes of an op block: blocks come from the
 * block writer, and mutations either go through decoded ops or accept any
 * of the codes a corrupted block may give. Replay a seed with
 * CVG_TEST_SEED=N.
 */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>
#include <lmdb.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checks.h"
#include "replica/replica_int.h"
#include "sync/wire.h"
#include "testutil.h"

#define NOW_MS 1700000000000ull
#define S_OPS 41u /* ops of the source replica S */

static uint64_t g_now = NOW_MS;

static uint64_t
fixed_clock(void *ctx)
{
    return *(const uint64_t *)ctx;
}

/* ---- Replicas -------------------------------------------------------------*/

typedef struct world {
    char base[512];
    cvg_replica *s; /* the source: its ops reach V before the attacks */
    cvg_replica *v; /* the victim */
    cvg_replica *h; /* an honest peer V has not met yet */
    cvg_replica_id sid, vid, hid;
    cvg_replica_id mid; /* the attacker: no replica, only messages */
    uint64_t seed;
    uint64_t rng;
} world;

/* ---- Identities ---------------------------------------------------------------
 * Every peer must prove its key (PROVE over the victim's challenge), so the
 * attacker has a key of its own, and a test that plays an honest replica
 * uses that replica's key, read from its key file. */
typedef struct keyed {
    cvg_replica_id id;
    uint8_t pk[CVG_PUBLIC_KEY_BYTES];
    uint8_t sk[CVG_SECRET_KEY_BYTES];
} keyed;

static keyed g_keys[64];
static size_t g_nkeys;

/* What the attacker sent of each origin (Signed pages, below). */
typedef struct sent_history {
    cvg_replica_id origin;
    cvg__history h;
} sent_history;

static sent_history g_hist[4096]; /* the stream after each op sent */
static size_t g_nhist;
static bool g_no_auto_sign; /* a test that sets the points itself */
static bool g_refuse_ahead; /* replicas opened with refuse_clock_ahead */

static uint8_t g_victim_nonce[CVG__NONCE_BYTES]; /* from its last HELLO */
static const uint8_t g_attacker_nonce[CVG__NONCE_BYTES] = {0xa7, 0x11};

static void
key_add(const uint8_t *sk)
{
    cr_assert_lt(g_nkeys, 64);
    keyed *k = &g_keys[g_nkeys++];
    memcpy(k->sk, sk, sizeof k->sk);
    memcpy(k->pk, sk + 32, sizeof k->pk); /* Ed25519: seed, then pk */
    cvg_identity_origin(k->pk, &k->id);
}

static void
key_read(const char *dir)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/identity.key", dir);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    uint8_t sk[CVG_SECRET_KEY_BYTES];
    cr_assert_eq(fread(sk, 1, sizeof sk, f), sizeof sk);
    fclose(f);
    key_add(sk);
}

/* Another peer, with a key of its own. */
static cvg_replica_id
fresh_peer(void)
{
    uint8_t pk[CVG_PUBLIC_KEY_BYTES], sk[CVG_SECRET_KEY_BYTES];
    cr_assert_eq(cvg_identity_generate(pk, sk), CVG_OK);
    key_add(sk);
    return g_keys[g_nkeys - 1].id;
}

/* The key of @p id; the attacker's for an id nobody holds. */
static const keyed *
key_of(const cvg_replica_id *id)
{
    for (size_t i = 0; i < g_nkeys; i++) {
        if (cvg__id_cmp(&g_keys[i].id, id) == 0) {
            return &g_keys[i];
        }
    }
    return &g_keys[0];
}

static cvg_replica *
open_in(const world *w, const char *leaf)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", w->base, leaf);
    mkdir(path, 0700);
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = CVG_RELAXED; /* thousands of failed sessions commit */
    o.map_size = 1u << 22;
    o.clock = fixed_clock;
    o.clock_ctx = &g_now;
    o.refuse_clock_ahead = g_refuse_ahead;
    cvg_replica *r = NULL;
    int rc = cvg_replica_open(path, &o, &r);
    cr_assert_eq(rc, CVG_OK, "open %s: %s", path, cvg_errname(rc));
    return r;
}

static cvg_txn *
wtxn(cvg_replica *r)
{
    cvg_txn *t;
    cr_assert_eq(cvg_txn_begin(r, 0, &t), CVG_OK);
    return t;
}

static void
commit(cvg_txn *t)
{
    int rc = cvg_txn_commit(t);
    cr_assert_eq(rc, CVG_OK, "commit: %s", cvg_errname(rc));
}

#define OK(call) cr_assert_eq((call), CVG_OK, "%s", #call)

static const cvg_key QTY = {"shop", "apples", "qty"};
static const cvg_key NAME = {"shop", "apples", "name"};
static const cvg_key NOTES = {"shop", "apples", "notes"};
static const cvg_key TAGS = {"shop", "apples", "tags"};
static const cvg_key OLD_N = {"shop", "old", "n"};
static const cvg_key OLD_X = {"shop", "old", "x"};

/* The seqs of S's ops of each kind (see write_source). */
enum {
    S_COUNTER = 1,
    S_REGISTER = 2,
    S_MVREGISTER = 3,
    S_SET_ADD = 4,
    S_REGISTER_OVER = 6, /* replaces seq 2: observes it */
    S_SET_REMOVE = 7,    /* removes the tag of seq 4 */
    S_DELETE = 11        /* deletes shop/old, with a counter part */
};

/* S's ops: one of every kind, then a run of 30 increments. */
static void
write_source(cvg_replica *r)
{
    cvg_value red = cvg_value_string("red");
    cvg_txn *t = wtxn(r);
    OK(cvg_counter_add(t, &QTY, 5, NULL));
    OK(cvg_register_set(t, &NAME, &(cvg_value){CVG_VALUE_INT, {.integer = 7}},
                        NULL));
    cvg_value a = cvg_value_string("a");
    OK(cvg_mvregister_set(t, &NOTES, &a, NULL));
    OK(cvg_set_add(t, &TAGS, &red, NULL));
    cvg_value green = cvg_value_string("green");
    OK(cvg_set_add(t, &TAGS, &green, NULL));
    commit(t);
    t = wtxn(r);
    cvg_value pear = cvg_value_string("pear");
    OK(cvg_register_set(t, &NAME, &pear, NULL));
    OK(cvg_set_remove(t, &TAGS, &red, NULL));
    OK(cvg_counter_add(t, &QTY, 3, NULL));
    commit(t);
    t = wtxn(r);
    OK(cvg_counter_add(t, &OLD_N, 2, NULL));
    cvg_value x = cvg_value_double(2.5);
    OK(cvg_register_set(t, &OLD_X, &x, NULL));
    commit(t);
    t = wtxn(r);
    cvg_key old = {"shop", "old", NULL};
    OK(cvg_record_delete(t, &old, NULL));
    commit(t);
    t = wtxn(r);
    for (int i = 0; i < 30; i++) {
        char f[16];
        snprintf(f, sizeof f, "f%d", i % 7);
        cvg_key k = {"bulk", "k", f};
        OK(cvg_counter_add(t, &k, i + 1, NULL));
    }
    commit(t);
    cr_assert_eq(cvg_test_op_count(r), S_OPS);
}

static void
world_open(world *w, const char *name, uint64_t seed)
{
    memset(w, 0, sizeof *w);
    snprintf(w->base, sizeof w->base, "%s", cvg_test_dir(name));
    w->seed = cvg_test_seed(seed);
    w->rng = w->seed;
    w->s = open_in(w, "s");
    w->v = open_in(w, "v");
    w->h = open_in(w, "h");
    cvg_replica_id_get(w->s, &w->sid);
    cvg_replica_id_get(w->v, &w->vid);
    cvg_replica_id_get(w->h, &w->hid);
    g_nkeys = 0;
    g_nhist = 0;
    g_no_auto_sign = false;
    uint8_t pk[CVG_PUBLIC_KEY_BYTES], sk[CVG_SECRET_KEY_BYTES];
    OK(cvg_identity_generate(pk, sk));
    key_add(sk); /* the attacker's: g_keys[0] */
    w->mid = g_keys[0].id;
    const char *leaves[] = {"s", "v", "h"};
    for (int i = 0; i < 3; i++) {
        char dir[1100];
        snprintf(dir, sizeof dir, "%s/%s", w->base, leaves[i]);
        key_read(dir);
    }
    write_source(w->s);
    /* V has all of S's ops, and three of its own. */
    int rc = cvg_sync_local(w->v, w->s, NULL);
    cr_assert_eq(rc, CVG_OK, "sync: %s", cvg_errname(rc));
    cvg_txn *t = wtxn(w->v);
    cvg_key k = {"shop", "v", "c"};
    for (int i = 0; i < 3; i++) {
        OK(cvg_counter_add(t, &k, 1, NULL));
    }
    commit(t);
    /* H's ops: what the final honest sync brings. */
    t = wtxn(w->h);
    cvg_value h1 = cvg_value_string("h1");
    cvg_key hk = {"h", "k", "f"}, hc = {"h", "k", "c"};
    OK(cvg_register_set(t, &hk, &h1, NULL));
    OK(cvg_counter_add(t, &hc, 4, NULL));
    OK(cvg_counter_add(t, &hc, 5, NULL));
    commit(t);
}

/* After the attacks: an honest peer syncs with V, and both converge. */
static void
world_close(world *w)
{
    cvg_session_stats st;
    int rc = cvg_sync_local(w->v, w->h, &st);
    cr_expect_eq(rc, CVG_OK,
                 "seed %llu: honest sync after the attacks: %s "
                 "(%s)",
                 (unsigned long long)w->seed, cvg_errname(rc),
                 cvg_replica_errmsg(w->v));
    (void)st;
    /* V has H's ops, whether they came now or in an attack's control. */
    cvg_txn *t;
    OK(cvg_txn_begin(w->v, CVG_TXN_READ_ONLY, &t));
    cvg_dot vv[16];
    size_t n;
    OK(cvg_txn_version_vector(t, vv, 16, &n));
    cvg_txn_abort(t);
    uint64_t hseq = 0;
    for (size_t i = 0; i < n && i < 16; i++) {
        hseq = cvg__id_cmp(&vv[i].origin, &w->hid) == 0 ? vv[i].seq : hseq;
    }
    cr_expect_eq(hseq, 3, "V has H's ops");
    char *dv = cvg_test_state(w->v), *dh = cvg_test_state(w->h);
    cr_expect_str_eq(dv, dh, "V and H converge");
    free(dv);
    free(dh);
    cvg_replica_close(w->s);
    cvg_replica_close(w->v);
    cvg_replica_close(w->h);
}

/* ---- What must not change -------------------------------------------------*/

typedef struct snap {
    char *digest;
    cvg_dot vv[16];
    size_t vv_n;
    cvg__buf raw; /* every key and value of log, dots, state, origins */
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
        cr_assert_eq(cvg__buf_append(b, lens, sizeof lens), CVG_OK);
        cr_assert_eq(cvg__buf_append(b, k.mv_data, k.mv_size), CVG_OK);
        cr_assert_eq(cvg__buf_append(b, v.mv_data, v.mv_size), CVG_OK);
        mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    cr_assert_eq(mrc, MDB_NOTFOUND);
    mdb_cursor_close(c);
    cr_assert_eq(cvg__buf_append(b, "|", 1), CVG_OK);
}

static void
snap_take(cvg_replica *r, snap *s, bool with_digest)
{
    memset(s, 0, sizeof *s);
    if (with_digest) {
        s->digest = cvg_test_state(r);
    }
    cvg_txn *t;
    cr_assert_eq(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t), CVG_OK);
    OK(cvg_txn_version_vector(t, s->vv, 16, &s->vv_n));
    cr_assert_leq(s->vv_n, 16);
    raw_db(&s->raw, t->mt, r->store.log);
    raw_db(&s->raw, t->mt, r->store.dots);
    raw_db(&s->raw, t->mt, r->store.state);
    raw_db(&s->raw, t->mt, r->store.origins);
    cvg_txn_abort(t);
}

static void
snap_free(snap *s)
{
    free(s->digest);
    cvg__buf_free(&s->raw);
}

/* The replica is as in @p before: raw databases and version vector always,
 * the state digest when @p before has one. */
static void
snap_expect_same(cvg_replica *r, const snap *before, const char *what)
{
    snap now;
    snap_take(r, &now, before->digest != NULL);
    cr_assert_eq(now.vv_n, before->vv_n, "%s: version vector changed", what);
    for (size_t i = 0; i < now.vv_n; i++) {
        cr_assert_eq(now.vv[i].seq, before->vv[i].seq,
                     "%s: version vector entry %zu changed", what, i);
        cr_assert(memcmp(&now.vv[i].origin, &before->vv[i].origin, 16) == 0);
    }
    cr_assert(now.raw.len == before->raw.len &&
                  memcmp(now.raw.p, before->raw.p, now.raw.len) == 0,
              "%s: the log, dots, state or origins changed", what);
    if (before->digest != NULL) {
        cr_assert_str_eq(now.digest, before->digest, "%s: state changed", what);
    }
    snap_free(&now);
}

/* ---- Messages ---------------------------------------------------------------*/

static cvg__msg
msg_of(cvg__msg_type type)
{
    cvg__msg m;
    memset(&m, 0, sizeof m);
    m.type = type;
    m.version = CVG_PROTOCOL_VERSION;
    return m;
}

/* ---- Signed pages ------------------------------------------------------------
 * A page must carry, per origin, the origin's signature over its history.
 * The attacker keeps the history of each origin it sends ops of (from seq
 * 1, as it sent them) and signs with the key it holds for that origin (its
 * own for ids nobody holds), so a page is refused for what the test puts
 * in it, not for a missing signature. */

/* The stream of @p id after its op @p seq (seq 0: before its first). */
static const cvg__history *
history_at(const cvg_replica_id *id, uint64_t seq)
{
    static cvg__history start;
    static const uint8_t zero[CVG__DIGEST_BYTES];
    for (size_t i = 0; i < g_nhist; i++) {
        if (g_hist[i].h.seq == seq && cvg__id_cmp(&g_hist[i].origin, id) == 0) {
            return &g_hist[i].h;
        }
    }
    if (seq != 0) {
        return NULL;
    }
    cvg__history_begin(&start, id, 0, zero);
    return &start;
}

/* Hash @p op after what was sent of its origin, once. */
static const cvg__history *
history_add(const cvg__op *op, cvg__buf *scratch)
{
    const cvg__history *h = history_at(&op->pub.dot.origin, op->pub.dot.seq);
    if (h != NULL) {
        return h; /* sent before: the same op, the tests assume */
    }
    const cvg__history *prev =
        history_at(&op->pub.dot.origin, op->pub.dot.seq - 1);
    if (prev == NULL) {
        return NULL; /* a gap: nothing to sign */
    }
    cr_assert_lt(g_nhist, 4096);
    sent_history *x = &g_hist[g_nhist];
    x->origin = op->pub.dot.origin;
    x->h = *prev;
    cvg__history_seal seal;
    if (cvg__history_add(&x->h, op, scratch, &seal) != CVG_OK) {
        return NULL;
    }
    g_nhist++;
    return &x->h;
}

static void
point_sign(cvg__point *p, const cvg__history *h)
{
    uint8_t d[CVG__DIGEST_BYTES], msg[CVG__POINT_MSG_BYTES];
    const keyed *k = key_of(&h->origin);
    memset(p, 0, sizeof *p);
    p->origin = h->origin;
    p->seq = h->seq;
    cvg__history_digest(h, d);
    cvg__history_message(&h->origin, h->seq, d, msg);
    crypto_sign_detached(p->sig, NULL, msg, sizeof msg, k->sk);
    p->has_key = true;
    memcpy(p->pk, k->pk, sizeof p->pk);
}

/* Points for the ops of @p m that extend what was sent of their origins. */
static size_t
sign_page(const cvg__msg *m, cvg__point *pts, size_t cap)
{
    size_t n = 0;
    cvg__buf scratch = {0};
    for (size_t i = 0; i < m->n_blocks; i++) {
        cvg__block_reader rd;
        memset(&rd, 0, sizeof rd);
        if (cvg__block_open(&rd, m->blocks[i].data, m->blocks[i].len) ==
            CVG_OK) {
            cvg__op op;
            while (cvg__block_next(&rd, &op) == CVG_OK) {
                const cvg__history *h = history_add(&op, &scratch);
                if (h == NULL) {
                    continue;
                }
                size_t j = 0;
                while (j < n && cvg__id_cmp(&pts[j].origin, &h->origin) != 0) {
                    j++;
                }
                if (j == n && n < cap) {
                    n++;
                }
                if (j < cap) {
                    point_sign(&pts[j], h);
                }
            }
        }
        cvg__block_reader_destroy(&rd);
    }
    cvg__buf_free(&scratch);
    return n;
}

static void
encode(const cvg__msg *m0, cvg__buf *b)
{
    /* A HELLO carries the key of the id it claims (the attacker's when
     * nobody holds that id) and the attacker's challenge. */
    cvg__msg mm = *m0;
    const cvg__msg *m = &mm;
    if (mm.type == CVG__MSG_HELLO && mm.pk == NULL) {
        mm.pk = key_of(&mm.id)->pk;
        mm.nonce = g_attacker_nonce;
        mm.log_end = (uint64_t)1 << 40;
    }
    static uint8_t zero_heads[(CVG__MSG_VV_MAX + 1) * CVG__HEAD_BYTES];
    if (mm.type == CVG__MSG_VV && mm.heads == NULL) {
        mm.heads = zero_heads; /* heads that match nobody's history */
    }
    /* A VV is the attacker's whole vector, with its count and digest. */
    static uint8_t vv_digest[CVG__VV_DIGEST_BYTES];
    if (mm.type == CVG__MSG_VV && mm.vv_digest == NULL) {
        cvg__vv_digest(mm.vv, mm.vv_n, vv_digest);
        mm.vv_digest = vv_digest;
        mm.vv_total = mm.vv_n;
        mm.vv_at = (uint64_t)1 << 40;
    }
    static cvg__point pts[64];
    if ((mm.type == CVG__MSG_OPS || mm.type == CVG__MSG_PUSH) &&
        mm.n_points == 0 && !g_no_auto_sign) {
        mm.n_points = sign_page(&mm, pts, 64);
        mm.points = pts;
    }
    b->len = 0;
    int rc = cvg__msg_encode(m, b);
    cr_assert_eq(rc, CVG_OK, "encode: %s", cvg_errname(rc));
}

static void
hello_msg(cvg__buf *b, const cvg_replica_id *id, uint32_t flags)
{
    cvg__msg m = msg_of(CVG__MSG_HELLO);
    m.id = *id;
    m.flags = flags;
    encode(&m, b);
}

/* The attacker's whole version vector: @p n entries. */
static void
vv_msg(cvg__buf *b, const cvg_dot *vv, size_t n)
{
    cvg__msg m = msg_of(CVG__MSG_VV);
    m.vv = vv;
    m.vv_n = n;
    encode(&m, b);
}

/* The proof that @p id holds its key, over the victim's last challenge. */
static void
prove_msg(cvg__buf *b, const cvg_replica_id *id)
{
    static const char domain[] = "converge session proof v1";
    uint8_t msg[sizeof domain - 1 + 2 * CVG__NONCE_BYTES + 16], sig[64];
    size_t n = 0;
    memcpy(msg, domain, sizeof domain - 1);
    n += sizeof domain - 1;
    memcpy(msg + n, g_victim_nonce, CVG__NONCE_BYTES);
    n += CVG__NONCE_BYTES;
    memcpy(msg + n, g_attacker_nonce, CVG__NONCE_BYTES);
    n += CVG__NONCE_BYTES;
    memcpy(msg + n, id->bytes, 16);
    n += 16;
    crypto_sign_detached(sig, NULL, msg, n, key_of(id)->sk);
    cvg__msg m = msg_of(CVG__MSG_PROVE);
    m.sig = sig;
    encode(&m, b);
}

/* HELLO from @p id, then its proof. */
static void
hello_proven(cvg_session *s, const cvg_replica_id *id, uint32_t flags)
{
    cvg__buf b = {0};
    hello_msg(&b, id, flags);
    int rc = cvg_session_input(s, b.p, b.len);
    cr_assert_eq(rc, CVG_OK, "HELLO: %s", cvg_errname(rc));
    prove_msg(&b, id);
    rc = cvg_session_input(s, b.p, b.len);
    cr_assert_eq(rc, CVG_OK, "PROVE: %s", cvg_errname(rc));
    vv_msg(&b, NULL, 0);
    rc = cvg_session_input(s, b.p, b.len);
    cr_assert_eq(rc, CVG_OK, "VV: %s", cvg_errname(rc));
    cvg__buf_free(&b);
}

static void
pull_msg(cvg__buf *b, uint64_t cursor, uint32_t max_ops, uint32_t max_bytes)
{
    cvg__msg m = msg_of(CVG__MSG_PULL);
    m.cursor = cursor;
    m.max_ops = max_ops;
    m.max_bytes = max_bytes;
    encode(&m, b);
}

static void
ack_msg(cvg__buf *b)
{
    cvg__msg m = msg_of(CVG__MSG_ACK);
    encode(&m, b);
}

/* A page of blocks built by the block writer. */
#define PAGE_BLOCKS_MAX 8192u

typedef struct page {
    cvg__buf bytes;
    size_t ends[PAGE_BLOCKS_MAX];
    size_t n;
    uint64_t ops;
    cvg__block_run run;
} page;

static int
page_keep(void *ctx, const cvg__block_run *run, cvg_bytes b)
{
    (void)run;
    page *p = ctx;
    cr_assert_lt(p->n, PAGE_BLOCKS_MAX);
    int rc = cvg__buf_append(&p->bytes, b.data, b.len);
    p->ends[p->n++] = p->bytes.len;
    return rc;
}

static void
page_init(page *p)
{
    memset(p, 0, sizeof *p);
    p->run.max_ops = 4096;
    p->run.max_bytes = SIZE_MAX;
    p->run.done = page_keep;
    p->run.ctx = p;
}

static void
page_add(page *p, const cvg__op *op)
{
    int rc = cvg__block_run_add(&p->run, op);
    cr_assert_eq(rc, CVG_OK, "block writer: %s", cvg_errname(rc));
    p->ops++;
}

/* Finish the open block: the next op starts a block of its own. */
static void
page_cut(page *p)
{
    cr_assert_eq(cvg__block_run_close(&p->run), CVG_OK);
}

static cvg_bytes
page_block(const page *p, size_t i)
{
    size_t start = i ? p->ends[i - 1] : 0;
    cvg_bytes b = {p->bytes.p + start, p->ends[i] - start};
    return b;
}

static void
page_free(page *p)
{
    cvg__buf_free(&p->bytes);
    cvg__block_run_destroy(&p->run);
}

/* The OPS message of @p p's blocks (in the order of @p order, if not NULL,
 * else as built). */
static void
ops_msg_order(cvg__buf *b, page *p, const size_t *order, uint64_t next,
              bool more)
{
    page_cut(p);
    static cvg_bytes blocks[PAGE_BLOCKS_MAX];
    for (size_t i = 0; i < p->n; i++) {
        blocks[i] = page_block(p, order ? order[i] : i);
    }
    cvg__msg m = msg_of(CVG__MSG_OPS);
    m.blocks = p->n ? blocks : NULL;
    m.n_blocks = p->n;
    m.next_cursor = next;
    m.has_more = more;
    encode(&m, b);
}

static void
ops_msg(cvg__buf *b, page *p, uint64_t next)
{
    ops_msg_order(b, p, NULL, next, false);
}

/* Change a copy of an op on its way into a page. */
typedef void (*op_edit)(cvg__op *op, void *ctx);

/* Ops of @p src's log whose origin is @p origin, seq lo..hi, each through
 * @p edit if not NULL. */
static void
page_from_log(cvg_replica *src, const cvg_replica_id *origin, uint64_t lo,
              uint64_t hi, op_edit edit, void *ctx, page *p)
{
    cvg_txn *t;
    cr_assert_eq(cvg_txn_begin(src, CVG_TXN_READ_ONLY, &t), CVG_OK);
    cvg__log_iter it;
    OK(cvg__log_iter_open(&src->store, t->mt, 1, &it));
    cvg__op op;
    int rc;
    while ((rc = cvg__log_iter_next(&it, &op)) == CVG_OK) {
        const cvg_dot *d = &op.pub.dot;
        if (cvg__id_cmp(&d->origin, origin) != 0 || d->seq < lo ||
            d->seq > hi) {
            continue;
        }
        if (edit != NULL) {
            edit(&op, ctx);
        }
        page_add(p, &op);
    }
    cr_assert_eq(rc, CVG_DONE);
    cvg__log_iter_close(&it);
    cvg_txn_abort(t);
}

/* An op of the attacker M (or any origin), made up here. */
static cvg__op
made_op(const cvg_replica_id *origin, uint64_t seq, cvg_op_kind kind)
{
    cvg__op op;
    memset(&op, 0, sizeof op);
    op.pub.dot.origin = *origin;
    op.pub.dot.seq = seq;
    op.pub.hlc = (NOW_MS << 16) + seq;
    op.pub.kind = kind;
    op.pub.collection = (cvg_bytes){(const uint8_t *)"m", 1};
    op.pub.key = (cvg_bytes){(const uint8_t *)"k", 1};
    op.pub.field = (cvg_bytes){(const uint8_t *)"f", 1};
    op.pub.value = cvg_value_int((int64_t)seq);
    if (kind == CVG_OP_COUNTER_ADD) {
        op.pub.value = cvg_value_nil();
        op.pub.delta = 1;
    }
    return op;
}

static uint64_t page_ops(const uint8_t *msg, size_t len, bool *more);

/* ---- A session under attack ----------------------------------------------*/

typedef struct victim {
    cvg_replica *r;
    cvg_session *s;
    uint64_t pull_cursor; /* of its PULL, when it pulls */
    uint32_t max_ops;
} victim;

/* Read every message the session has to say; *code_out gets the code of
 * an ERROR among them (else CVG_OK), and *last the type of the last. */
static void
drain(cvg_session *s, int *code_out, cvg__msg_type *last, cvg__msg *pull)
{
    cvg__msg_scratch sc = {0};
    if (code_out != NULL) {
        *code_out = CVG_OK;
    }
    cvg_bytes out;
    while (cvg_session_output(s, &out) == CVG_OK) {
        cvg__msg m;
        int rc = cvg__msg_decode(out.data, out.len, &m, &sc);
        cr_assert_eq(rc, CVG_OK, "the session sent a malformed message");
        if (m.type == CVG__MSG_ERROR && code_out != NULL) {
            *code_out = m.code;
            cr_assert_gt(m.text.len, 0, "an ERROR says why");
        }
        if (m.type == CVG__MSG_PULL && pull != NULL) {
            *pull = m;
        }
        if (m.type == CVG__MSG_HELLO) {
            memcpy(g_victim_nonce, m.nonce, CVG__NONCE_BYTES);
        }
        if (last != NULL) {
            *last = m.type;
        }
    }
    cvg__msg_scratch_destroy(&sc);
}

/* A session of @p r that has said HELLO to the attacker @p peer and got
 * its HELLO: with @p peer_pulls the attacker will pull; unless
 * opts->no_pull, the victim's PULL is out. */
static void
victim_start(victim *v, cvg_replica *r, const cvg_session_options *o,
             const cvg_replica_id *peer, bool peer_pulls)
{
    memset(v, 0, sizeof *v);
    v->r = r;
    OK(cvg_session_open(r, o, &v->s));
    drain(v->s, NULL, NULL, NULL); /* its HELLO */
    hello_proven(v->s, peer, peer_pulls ? 1 : 0);
    cvg__msg pull;
    memset(&pull, 0, sizeof pull);
    drain(v->s, NULL, NULL, &pull);
    if (o == NULL || !o->no_pull) {
        cr_assert_eq(pull.type, CVG__MSG_PULL, "the victim pulls");
        v->pull_cursor = pull.cursor;
        v->max_ops = pull.max_ops;
    }
}

/* A victim session of @p r that has said HELLO and heard nothing yet. */
static void
victim_open(victim *v, cvg_replica *r)
{
    memset(v, 0, sizeof *v);
    v->r = r;
    OK(cvg_session_open(r, NULL, &v->s));
    drain(v->s, NULL, NULL, NULL);
}

static void
victim_end(victim *v)
{
    cvg_session_close(v->s);
    v->s = NULL;
}

/* Feed @p msg; the session must end with @p code, tell the peer, refuse
 * anything more, and leave the replica as in @p before. */
static void
expect_refused(victim *v, const uint8_t *msg, size_t len, int code,
               const snap *before, const char *what)
{
    int rc = cvg_session_input(v->s, msg, len);
    cr_assert_eq(rc, code, "%s: %s (%s), expected %s", what, cvg_errname(rc),
                 cvg_replica_errmsg(v->r), cvg_errname(code));
    cr_assert_eq(cvg_session_error(v->s), code, "%s", what);
    cr_assert(!cvg_session_done(v->s), "%s: a failed session is not done",
              what);
    int sent;
    drain(v->s, &sent, NULL, NULL);
    cr_assert_eq(sent, code, "%s: the peer is told %s, not %s", what,
                 cvg_errname(code), cvg_errname(sent));
    cr_assert(strlen(cvg_replica_errmsg(v->r)) > 0);
    /* Ended: more input gets the same error and changes nothing. */
    cr_assert_eq(cvg_session_input(v->s, msg, len), code, "%s", what);
    snap_expect_same(v->r, before, what);
}

/* Feed @p msg to a fresh victim session of @p r at the point where it waits
 * for a page, and expect @p code. */
static void
page_refused(world *w, cvg_replica *r, const cvg__buf *msg, int code,
             const snap *before, const char *what)
{
    victim v;
    victim_start(&v, r, NULL, &w->mid, false);
    expect_refused(&v, msg->p, msg->len, code, before, what);
    victim_end(&v);
}

/* ---- Bytes: length, version, type, truncation, trailing bytes --------------*/

/* One valid message of each type, for a session in the state that takes
 * it: HELLO and PULL for a fresh one, OPS for one that pulls, ACK for one
 * that served a page. */
typedef enum stage { AT_HELLO, AT_PULL, AT_OPS, AT_ACK, AT_ERROR } stage;

static void
sample_msg(world *w, stage st, cvg__buf *b)
{
    if (st == AT_HELLO) {
        cvg__msg m = msg_of(CVG__MSG_HELLO);
        m.id = w->mid;
        m.flags = 1;
        encode(&m, b);
    } else if (st == AT_PULL) {
        pull_msg(b, 1, 100, 1u << 16);
    } else if (st == AT_OPS) {
        page p;
        page_init(&p);
        page_from_log(w->s, &w->sid, 1, S_OPS, NULL, NULL, &p);
        ops_msg(b, &p, 1 + S_OPS);
        page_free(&p);
    } else if (st == AT_ACK) {
        /* What V served (S's 41 ops, its own 3): all had, all taken. */
        cvg__ack_range g[2] = {{w->sid, 1, S_OPS, CVG__ACK_DUPLICATE},
                               {w->vid, 1, 3, CVG__ACK_TAKEN}};
        if (cvg__id_cmp(&w->sid, &w->vid) > 0) {
            cvg__ack_range t = g[0];
            g[0] = g[1];
            g[1] = t;
        }
        cvg__msg m = msg_of(CVG__MSG_ACK);
        m.ranges = g;
        m.n_ranges = 2;
        encode(&m, b);
    } else {
        cvg__msg m = msg_of(CVG__MSG_ERROR);
        m.code = CVG_EGAP;
        m.text = (cvg_bytes){(const uint8_t *)"gap", 3};
        encode(&m, b);
    }
}

/* A victim session of V ready for a message of stage @p st. */
static void
victim_at(world *w, victim *v, stage st)
{
    bool serve = st == AT_PULL || st == AT_ACK;
    if (st == AT_HELLO) {
        memset(v, 0, sizeof *v);
        v->r = w->v;
        OK(cvg_session_open(w->v, NULL, &v->s));
        drain(v->s, NULL, NULL, NULL);
        return;
    }
    cvg_session_options o;
    cvg_session_options_init(&o);
    o.no_pull = serve;
    victim_start(v, w->v, &o, &w->mid, serve);
    if (st == AT_ACK) {
        cvg__buf b = {0};
        pull_msg(&b, 1, 0, 0);
        OK(cvg_session_input(v->s, b.p, b.len));
        drain(v->s, NULL, NULL, NULL);
        cvg__buf_free(&b);
    }
}

static const char *stage_names[] = {"HELLO", "PULL", "OPS", "ACK", "ERROR"};

Test(hostile, truncated_messages_at_every_length)
{
    world w;
    world_open(&w, "hostile-trunc", 1);
    snap before;
    snap_take(w.v, &before, true);
    for (stage st = AT_HELLO; st <= AT_ERROR; st++) {
        cvg__buf b = {0};
        sample_msg(&w, st, &b);
        for (size_t len = 0; len < b.len; len++) {
            char what[64];
            snprintf(what, sizeof what, "%s cut at %zu of %zu", stage_names[st],
                     len, b.len);
            victim v;
            victim_at(&w, &v, st);
            expect_refused(&v, len ? b.p : NULL, len, CVG_ECORRUPT, &before,
                           what);
            victim_end(&v);
        }
        cvg__buf_free(&b);
    }
    snap_expect_same(w.v, &before, "after all cuts");
    snap_free(&before);
    world_close(&w);
}

Test(hostile, trailing_bytes_after_a_message)
{
    world w;
    world_open(&w, "hostile-trail", 2);
    snap before;
    snap_take(w.v, &before, true);
    for (stage st = AT_HELLO; st <= AT_ERROR; st++) {
        for (int k = 0; k < 40; k++) {
            cvg__buf b = {0};
            sample_msg(&w, st, &b);
            size_t extra = 1 + cvg_test_below(&w.rng, 16);
            for (size_t i = 0; i < extra; i++) {
                uint8_t byte = (uint8_t)cvg_test_rand(&w.rng);
                cr_assert_eq(cvg__buf_append(&b, &byte, 1), CVG_OK);
            }
            char what[80];
            snprintf(what, sizeof what, "%s + %zu bytes (seed %llu)",
                     stage_names[st], extra, (unsigned long long)w.seed);
            victim v;
            victim_at(&w, &v, st);
            expect_refused(&v, b.p, b.len, CVG_ECORRUPT, &before, what);
            victim_end(&v);
            cvg__buf_free(&b);
        }
    }
    snap_free(&before);
    world_close(&w);
}

/* Replace the first item of @p b (the version: a positive fixint) with
 * @p item. */
static void
set_first_item(cvg__buf *b, const uint8_t *item, size_t n)
{
    cr_assert_lt(b->p[0], 0x80, "the version is a positive fixint");
    cvg__buf out = {0};
    cr_assert_eq(cvg__buf_append(&out, item, n), CVG_OK);
    cr_assert_eq(cvg__buf_append(&out, b->p + 1, b->len - 1), CVG_OK);
    cvg__buf_free(b);
    *b = out;
}

Test(hostile, bad_protocol_versions)
{
    world w;
    world_open(&w, "hostile-version", 3);
    snap before;
    snap_take(w.v, &before, true);
    static const struct {
        uint8_t item[5];
        size_t n;
        int code;
    } cases[] = {
        {{0x00}, 1, CVG_ECORRUPT},       /* version 0 */
        {{0xc0}, 1, CVG_ECORRUPT},       /* nil */
        {{0xcc, 0x09}, 2, CVG_ECORRUPT}, /* 9, not smallest */
        {{0xff}, 1, CVG_ECORRUPT},       /* -1 */
        {{0x04}, 1, CVG_EVERSION},       /* version 4, unsigned */
        {{0x08}, 1, CVG_EVERSION},       /* the last version */
        {{0x0a}, 1, CVG_EVERSION},       /* the next version */
        {{0x7f}, 1, CVG_EVERSION},
        {{0xcc, 0x80}, 2, CVG_EVERSION}, /* 128 */
        {{0xce, 0xff, 0xff, 0xff, 0xff}, 5, CVG_EVERSION},
    };
    for (stage st = AT_HELLO; st <= AT_ERROR; st++) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            cvg__buf b = {0};
            sample_msg(&w, st, &b);
            set_first_item(&b, cases[i].item, cases[i].n);
            char what[64];
            snprintf(what, sizeof what, "%s with version case %zu",
                     stage_names[st], i);
            victim v;
            victim_at(&w, &v, st);
            expect_refused(&v, b.p, b.len, cases[i].code, &before, what);
            victim_end(&v);
            cvg__buf_free(&b);
        }
    }
    snap_free(&before);
    world_close(&w);
}

Test(hostile, unknown_or_unused_message_types)
{
    world w;
    world_open(&w, "hostile-type", 4);
    snap before;
    snap_take(w.v, &before, true);
    /* The type is the second item; an unknown one is malformed. */
    const uint8_t types[] = {0x00, 0x07, 0x08, 0x7f, 0xc0};
    for (stage st = AT_HELLO; st <= AT_ERROR; st++) {
        for (size_t i = 0; i < sizeof types; i++) {
            cvg__buf b = {0};
            sample_msg(&w, st, &b);
            cr_assert_lt(b.p[1], 0x80);
            b.p[1] = types[i];
            char what[64];
            snprintf(what, sizeof what, "%s as type 0x%02x", stage_names[st],
                     types[i]);
            victim v;
            victim_at(&w, &v, st);
            expect_refused(&v, b.p, b.len, CVG_ECORRUPT, &before, what);
            victim_end(&v);
            cvg__buf_free(&b);
        }
    }
    /* A PUSH from a peer whose HELLO did not say it pushes. */
    page p;
    page_init(&p);
    page_from_log(w.s, &w.sid, 1, 5, NULL, NULL, &p);
    page_cut(&p);
    cvg_bytes blk = page_block(&p, 0);
    cvg__msg m = msg_of(CVG__MSG_PUSH);
    m.blocks = &blk;
    m.n_blocks = 1;
    cvg__buf b = {0};
    encode(&m, &b);
    for (stage st = AT_PULL; st <= AT_ACK; st++) {
        victim v;
        victim_at(&w, &v, st);
        expect_refused(&v, b.p, b.len, CVG_EPROTO, &before, "PUSH");
        victim_end(&v);
    }
    cvg__buf_free(&b);
    page_free(&p);
    snap_free(&before);
    world_close(&w);
}

/* A push carries the pusher's own ops only: one with ops of another
 * origin (here the source's, relayed by the attacker) is refused, even
 * when the receiver has them; the same ops pushed by their origin are
 * duplicates, taken silently and acknowledged. */
Test(hostile, pushes_of_ops_of_another_origin)
{
    world w;
    world_open(&w, "hostile-push", 5);
    snap before;
    snap_take(w.v, &before, true);
    page p;
    page_init(&p);
    page_from_log(w.s, &w.sid, 1, 5, NULL, NULL, &p);
    page_cut(&p);
    cvg_bytes blk = page_block(&p, 0);
    cvg__msg m = msg_of(CVG__MSG_PUSH);
    m.blocks = &blk;
    m.n_blocks = 1;
    cvg__buf b = {0};
    encode(&m, &b);
    for (int honest = 0; honest < 2; honest++) {
        victim v;
        victim_open(&v, w.v);
        hello_proven(v.s, honest ? &w.sid : &w.mid, 2 /* pushes */);
        cvg__msg none;
        memset(&none, 0, sizeof none);
        drain(v.s, NULL, NULL, &none);
        cr_expect_neq(none.type, CVG__MSG_PULL, "no pull from a pusher");
        if (honest) {
            OK(cvg_session_input(v.s, b.p, b.len));
            cvg_session_stats st;
            cvg_session_stats_get(v.s, &st, sizeof st);
            cr_expect_eq(st.ops_duplicate, 5);
            cr_expect(cvg_session_done(v.s));
            snap_expect_same(w.v, &before, "an honest push of known ops");
        } else {
            expect_refused(&v, b.p, b.len, CVG_EPROTO, &before,
                           "a PUSH of another origin's ops");
        }
        victim_end(&v);
    }
    cvg__buf_free(&b);
    page_free(&p);
    snap_free(&before);
    world_close(&w);
}

/* The offset of a block's bytes in a message, and of its bin header. */
static size_t
block_at(const cvg__buf *msg, cvg_bytes blk, size_t *hdr)
{
    const uint8_t *at = memmem(msg->p, msg->len, blk.data, blk.len);
    cr_assert_not_null(at);
    size_t off = (size_t)(at - msg->p);
    /* bin 8, bin 16 or bin 32: the header before the bytes. */
    *hdr = off >= 2 && msg->p[off - 2] == 0xc4   ? off - 2
           : off >= 3 && msg->p[off - 3] == 0xc5 ? off - 3
                                                 : off - 5;
    cr_assert(msg->p[*hdr] >= 0xc4 && msg->p[*hdr] <= 0xc6);
    return off;
}

Test(hostile, bad_lengths)
{
    world w;
    world_open(&w, "hostile-length", 5);
    snap before;
    snap_take(w.v, &before, true);
    /* HELLO: the id is bin 16 right after version and type. */
    for (int len = 0; len < 40; len++) {
        if (len == 16) {
            continue;
        }
        cvg__buf b = {0};
        sample_msg(&w, AT_HELLO, &b);
        cr_assert(b.p[2] == 0xc4 && b.p[3] == 16);
        b.p[3] = (uint8_t)len;
        victim v;
        victim_at(&w, &v, AT_HELLO);
        expect_refused(&v, b.p, b.len, CVG_ECORRUPT, &before, "HELLO id");
        victim_end(&v);
        cvg__buf_free(&b);
    }
    /* OPS: the length of a block, longer or shorter than the block. */
    page p;
    page_init(&p);
    page_from_log(w.s, &w.sid, 1, 11, NULL, NULL, &p);
    cvg__buf b = {0};
    ops_msg(&b, &p, 1 + 11);
    size_t hdr, off = block_at(&b, page_block(&p, 0), &hdr);
    size_t width = off - hdr - 1;
    cr_assert_eq(width, 1, "a block of less than 256 bytes: bin 8");
    for (int k = 0; k < 200; k++) {
        cvg__buf m = {0};
        cr_assert_eq(cvg__buf_append(&m, b.p, b.len), CVG_OK);
        uint8_t len = (uint8_t)cvg_test_rand(&w.rng);
        if (len == b.p[off - 1]) {
            len ^= 1;
        }
        m.p[off - 1] = len;
        char what[64];
        snprintf(what, sizeof what, "block length %u for %u (seed %llu)", len,
                 b.p[off - 1], (unsigned long long)w.seed);
        page_refused(&w, w.v, &m, CVG_ECORRUPT, &before, what);
        cvg__buf_free(&m);
    }
    cvg__buf_free(&b);
    page_free(&p);
    snap_free(&before);
    world_close(&w);
}

/* ---- Over the limits --------------------------------------------------------*/

Test(hostile, counts_and_sizes_over_the_limits)
{
    world w;
    world_open(&w, "hostile-limits", 6);
    snap before;
    snap_take(w.v, &before, true);
    /* A VV of CVG__MSG_VV_MAX entries is fine; one more is refused. */
    size_t n = CVG__MSG_VV_MAX;
    cvg_dot *vv = calloc(n + 1, sizeof *vv);
    cr_assert_not_null(vv);
    for (size_t i = 0; i <= n; i++) {
        cvg__put_be64(vv[i].origin.bytes, i + 1);
        vv[i].seq = 1;
    }
    cvg__buf ok = {0}, b = {0}, hello = {0};
    vv_msg(&ok, vv, n);
    hello_msg(&hello, &w.mid, 0);
    /* The same bytes with count n + 1 and one more entry. */
    cr_assert_eq(n, 65536u);
    const uint8_t *at = memmem(ok.p, 120, "\xce\x00\x01\x00\x00", 5);
    cr_assert_not_null(at, "the total in its uint32 form");
    at = memmem(at + 5, 120, "\xce\x00\x01\x00\x00", 5);
    cr_assert_not_null(at, "the count in its uint32 form");
    size_t pos = (size_t)(at - ok.p);
    cr_assert_eq(cvg__buf_append(&b, ok.p, ok.len), CVG_OK);
    b.p[pos + 4] = 1; /* 65537 */
    uint8_t extra[19] = {0xc4, 16};
    cvg__put_be64(extra + 2, n + 1);
    extra[18] = 1;
    cr_assert_eq(cvg__buf_append(&b, extra, sizeof extra), CVG_OK);
    victim v;
    victim_at(&w, &v, AT_HELLO);
    OK(cvg_session_input(v.s, hello.p, hello.len));
    OK(cvg_session_input(v.s, ok.p, ok.len)); /* the control */
    victim_end(&v);
    victim_at(&w, &v, AT_HELLO);
    OK(cvg_session_input(v.s, hello.p, hello.len));
    expect_refused(&v, b.p, b.len, CVG_ECORRUPT, &before, "65537 vv entries");
    victim_end(&v);
    /* A count that the bytes cannot hold. */
    b.len = 0;
    cr_assert_eq(cvg__buf_append(&b, ok.p, pos), CVG_OK);
    cr_assert_eq(cvg__buf_append(&b, "\xce\x7f\xff\xff\xff", 5), CVG_OK);
    victim_at(&w, &v, AT_HELLO);
    OK(cvg_session_input(v.s, hello.p, hello.len));
    expect_refused(&v, b.p, b.len, CVG_ECORRUPT, &before, "2^31 vv entries");
    victim_end(&v);
    free(vv);
    cvg__buf_free(&ok);
    cvg__buf_free(&hello);

    /* An ERROR text over CVG__MSG_TEXT_MAX. */
    b.len = 0;
    const uint8_t long_err[] = {
        CVG_PROTOCOL_VERSION, CVG__MSG_ERROR, 0xf3, 0xda, 0x04, 0x01};
    cr_assert_eq(cvg__buf_append(&b, long_err, sizeof long_err), CVG_OK);
    for (int i = 0; i <= (int)CVG__MSG_TEXT_MAX; i++) {
        cr_assert_eq(cvg__buf_append(&b, "x", 1), CVG_OK);
    }
    victim_at(&w, &v, AT_OPS);
    expect_refused(&v, b.p, b.len, CVG_ECORRUPT, &before, "long ERROR text");
    victim_end(&v);

    /* An OPS message claiming more blocks than CVG__MSG_BLOCKS_MAX. */
    cvg__msg om = msg_of(CVG__MSG_OPS);
    om.next_cursor = 1;
    encode(&om, &b);
    cr_assert_eq(b.p[b.len - 2], 0x00, "zero blocks");
    cr_assert_eq(b.p[b.len - 1], 0x00, "zero points last");
    b.len -= 2;
    cr_assert_eq(cvg__buf_append(&b, "\xce\x00\x01\x00\x01", 5), CVG_OK);
    for (uint32_t i = 0; i <= CVG__MSG_BLOCKS_MAX; i++) {
        cr_assert_eq(cvg__buf_append(&b, "\xc4\x01\x01", 3), CVG_OK);
    }
    cr_assert_eq(cvg__buf_append(&b, "\x00", 1), CVG_OK);
    page_refused(&w, w.v, &b, CVG_ECORRUPT, &before, "65537 blocks");

    /* A page with more ops than a PULL may get. A relay ends pages only
     * where its origins signed, so a page may run past the PULL's limit,
     * but never past CVG__PAGE_OPS_HARD of it. */
    cvg_session_options o;
    cvg_session_options_init(&o);
    o.page_ops = 8;
    g_no_auto_sign = true; /* refused before any signature is looked at */
    page p;
    page_init(&p);
    uint64_t k = CVG__PAGE_OPS_HARD(8) + 1;
    for (uint64_t seq = 1; seq <= k; seq++) {
        cvg__op op = made_op(&w.mid, seq, CVG_OP_COUNTER_ADD);
        page_add(&p, &op);
    }
    victim_start(&v, w.v, &o, &w.mid, false);
    cr_assert_eq(v.max_ops, 8);
    ops_msg(&b, &p, v.pull_cursor + k);
    expect_refused(&v, b.p, b.len, CVG_ELIMIT, &before, "a long page");
    victim_end(&v);
    page_free(&p);
    cvg__buf_free(&b);
    snap_free(&before);
    world_close(&w);
}

/* ---- Bit flips and cut blocks -------------------------------------------------*/

static const int block_codes[] = {CVG_ECORRUPT, CVG_EVERSION, CVG_EEQUIVOCAL,
                                  CVG_EGAP, CVG_EPROTO};

static bool
one_of(int rc, const int *codes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (rc == codes[i]) {
            return true;
        }
    }
    return false;
}

/* Feed a mutated page of ops V has. Refused with one of block_codes, or
 * accepted only as what it was: every op a duplicate of the stored one. */
static int
feed_mutant(world *w, const cvg__buf *m, uint64_t n_ops, const snap *before,
            const char *what)
{
    victim v;
    victim_start(&v, w->v, NULL, &w->mid, false);
    int rc = cvg_session_input(v.s, m->p, m->len);
    if (rc == CVG_OK) {
        cvg_session_stats st;
        cvg_session_stats_get(v.s, &st, sizeof st);
        cr_assert_eq(st.ops_received, 0, "%s: applied %llu ops", what,
                     (unsigned long long)st.ops_received);
        cr_assert_eq(st.ops_duplicate, n_ops, "%s", what);
        /* The page moved V's cursor for this peer: the next mutant comes
         * from a new one, whose pulls start at 1 again. */
        w->mid.bytes[15]++;
    } else {
        cr_assert(one_of(rc, block_codes, 5), "%s: %s (%s)", what,
                  cvg_errname(rc), cvg_replica_errmsg(w->v));
        cr_assert_eq(cvg_session_error(v.s), rc);
        int sent;
        drain(v.s, &sent, NULL, NULL);
        cr_assert_eq(sent, rc, "%s: ERROR sent", what);
    }
    victim_end(&v);
    snap_expect_same(w->v, before, what);
    return rc;
}

Test(hostile, bit_flips_in_a_page_of_known_ops, .timeout = 600)
{
    world w;
    world_open(&w, "hostile-flip", 7);
    snap full, before;
    snap_take(w.v, &full, true);
    snap_take(w.v, &before, false); /* per mutant: raw bytes and vector */
    /* Ops 2..41 of S, all at V: a flipped origin or first seq cannot turn
     * them into ops V would take as new (seq 1 of an origin, or 42). */
    page p;
    page_init(&p);
    page_from_log(w.s, &w.sid, 2, S_OPS, NULL, NULL, &p);
    cvg__buf b = {0};
    /* Each session pulls from the cursor the last accepted page left. */
    victim v;
    victim_start(&v, w.v, NULL, &w.mid, false);
    uint64_t cursor = v.pull_cursor;
    victim_end(&v);
    ops_msg(&b, &p, cursor + p.ops);
    size_t hdr, off = block_at(&b, page_block(&p, 0), &hdr);
    size_t end = off + page_block(&p, 0).len;
    unsigned refused = 0, total = 0;
    for (size_t bit = 0; bit < end * 8; bit++) {
        size_t byte = bit / 8;
        if (byte < hdr) {
            continue; /* the header: next cursor and has_more may change */
        }
        cvg__buf m = {0};
        cr_assert_eq(cvg__buf_append(&m, b.p, b.len), CVG_OK);
        m.p[byte] ^= (uint8_t)(1u << (bit % 8));
        char what[64];
        snprintf(what, sizeof what, "bit %zu of %zu", bit, b.len * 8);
        refused += feed_mutant(&w, &m, p.ops, &before, what) != CVG_OK;
        total++;
        cvg__buf_free(&m);
    }
    cr_expect_gt(refused, total * 9 / 10, "only %u of %u flips refused",
                 refused, total);
    /* Random multi-byte damage from the seed. */
    for (int k = 0; k < 300; k++) {
        cvg__buf m = {0};
        cr_assert_eq(cvg__buf_append(&m, b.p, b.len), CVG_OK);
        int hits = 1 + (int)cvg_test_below(&w.rng, 4);
        for (int i = 0; i < hits; i++) {
            size_t at = off + cvg_test_below(&w.rng, end - off);
            m.p[at] = (uint8_t)cvg_test_rand(&w.rng);
        }
        char what[64];
        snprintf(what, sizeof what, "random damage %d (seed %llu)", k,
                 (unsigned long long)w.seed);
        feed_mutant(&w, &m, p.ops, &before, what);
        cvg__buf_free(&m);
    }
    cvg__buf_free(&b);
    page_free(&p);
    snap_expect_same(w.v, &full, "after all mutants");
    snap_free(&before);
    snap_free(&full);
    world_close(&w);
}

Test(hostile, blocks_cut_short_or_padded_inside_a_valid_message)
{
    world w;
    world_open(&w, "hostile-cut-block", 8);
    snap before;
    snap_take(w.v, &before, true);
    /* New ops for V (from H), so a cut block is not all duplicates. */
    page p;
    page_init(&p);
    page_from_log(w.h, &w.hid, 1, 3, NULL, NULL, &p);
    page_cut(&p);
    cvg_bytes whole = page_block(&p, 0);
    cvg__buf b = {0};
    for (size_t len = 1; len <= whole.len; len++) {
        cvg_bytes blk = {whole.data, len};
        uint8_t pad[4] = {0};
        cvg__buf padded = {0};
        if (len == whole.len) {
            /* The whole block with bytes after it. */
            cr_assert_eq(cvg__buf_append(&padded, whole.data, whole.len),
                         CVG_OK);
            cr_assert_eq(cvg__buf_append(&padded, pad, sizeof pad), CVG_OK);
            blk.data = padded.p;
            blk.len = padded.len;
        }
        cvg__msg m = msg_of(CVG__MSG_OPS);
        m.blocks = &blk;
        m.n_blocks = 1;
        m.next_cursor = 100;
        encode(&m, &b);
        char what[64];
        snprintf(what, sizeof what, "block cut at %zu of %zu", len, whole.len);
        page_refused(&w, w.v, &b, CVG_ECORRUPT, &before, what);
        cvg__buf_free(&padded);
    }
    /* A block in a newer encoding: its version comes first. */
    cvg__buf nb = {0};
    cr_assert_eq(cvg__buf_append(&nb, whole.data, whole.len), CVG_OK);
    cr_assert_lt(nb.p[0], 0x7f, "the block version is a positive fixint");
    const uint8_t current = nb.p[0];
    for (unsigned ver = current + 1u; ver < 0x80; ver += 9) {
        nb.p[0] = (uint8_t)ver;
        cvg_bytes blk = {nb.p, nb.len};
        cvg__msg m = msg_of(CVG__MSG_OPS);
        m.blocks = &blk;
        m.n_blocks = 1;
        m.next_cursor = 100;
        encode(&m, &b);
        page_refused(&w, w.v, &b, CVG_EVERSION, &before, "newer block");
    }
    cvg__buf_free(&nb);
    cvg__buf_free(&b);
    page_free(&p);
    snap_free(&before);
    world_close(&w);
}

/* A hand-made block of version 4 by @p origin from seq 1: @p count ops at
 * time 5, then @p body. */
static void
block_v4(cvg__buf *out, const cvg_replica_id *origin, uint16_t count,
         const uint8_t *body, size_t body_len)
{
    uint8_t head[3 + 16 + 5] = {0x04, 0xc4, 0x10};
    memcpy(head + 3, origin->bytes, 16);
    size_t n = 19;
    head[n++] = 0x01;
    cr_assert(count < 128 || count >= 256, "the count's smallest form");
    if (count >= 256) {
        head[n++] = 0xcd;
        head[n++] = (uint8_t)(count >> 8);
    }
    head[n++] = (uint8_t)count;
    head[n++] = 0x05;
    out->len = 0;
    cr_assert_eq(cvg__buf_append(out, head, n), CVG_OK);
    cr_assert_eq(cvg__buf_append(out, body, body_len), CVG_OK);
}

/* A byte of a block may stand for 64 ops at most, and only a ticking
 * counter add repeats: a small block cannot ask much of its reader. */
Test(hostile, blocks_standing_for_more_ops_than_they_may)
{
    world w;
    world_open(&w, "hostile-repeats", 3);
    snap before;
    snap_take(w.v, &before, true);
    /* A counter add of 1 on a new entry "c" "k" "f". */
#define FIRST_ADD \
    0x01, 0x02, 0x00, 0xa1, 'c', 0x00, 0xa1, 'k', 0x00, 0xa1, 'f', 0x01
    /* 1,100 ops in 17 bytes, every one of them well formed: the add, then
     * a repeat of 1 + 1,098 (2c + R = 2,197). */
    static const uint8_t dense[] = {FIRST_ADD, 0x59, 0xcd, 0x08, 0x95, 0x01};
    /* 3 ops: the add, then a run of 2 register sets marked as a repeat
     * (2c + R = 3), each with its value, as if the mark were not there. */
    static const uint8_t repeated_set[] = {FIRST_ADD, 0x7a, 0x03, 0xa1,
                                           'v',       0xa1, 'w'};
    /* 3 ops: the add, then a repeat of a counter add that does not tick,
     * each op with its time item. */
    static const uint8_t untimely[] = {FIRST_ADD, 0x49, 0x03, 0x02, 0x01, 0x02};
#undef FIRST_ADD
    static const struct {
        const uint8_t *body;
        size_t len;
        uint16_t count;
        const char *what;
    } cases[] = {
        {dense, sizeof dense, 1100, "1,100 ops in 17 bytes"},
        {repeated_set, sizeof repeated_set, 3, "a repeated register set"},
        {untimely, sizeof untimely, 3, "a repeat without a tick"},
    };
    cvg__buf blk = {0}, b = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        block_v4(&blk, &w.hid, cases[i].count, cases[i].body, cases[i].len);
        cvg_bytes one = {blk.p, blk.len};
        cvg__msg m = msg_of(CVG__MSG_OPS);
        m.blocks = &one;
        m.n_blocks = 1;
        m.next_cursor = 100;
        encode(&m, &b);
        page_refused(&w, w.v, &b, CVG_ECORRUPT, &before, cases[i].what);
    }
    cvg__buf_free(&blk);
    cvg__buf_free(&b);
    snap_free(&before);
    world_close(&w);
}

/* ---- Ops that may not apply ---------------------------------------------------*/

Test(hostile, dot_gaps)
{
    world w;
    world_open(&w, "hostile-gap", 9);
    snap before;
    snap_take(w.v, &before, true);
    cvg__buf b = {0};
    for (int k = 0; k < 60; k++) {
        /* The attacker's own ops from a seq past 1, or S's past its end. */
        bool own = k % 2 == 0;
        uint64_t first = own ? 2 + cvg_test_below(&w.rng, 1000000)
                             : S_OPS + 2 + cvg_test_below(&w.rng, 1000);
        page p;
        page_init(&p);
        for (uint64_t i = 0; i < 3; i++) {
            cvg__op op =
                made_op(own ? &w.mid : &w.sid, first + i, CVG_OP_COUNTER_ADD);
            page_add(&p, &op);
        }
        ops_msg(&b, &p, 1 + 3);
        char what[64];
        snprintf(what, sizeof what, "gap to seq %llu (seed %llu)",
                 (unsigned long long)first, (unsigned long long)w.seed);
        page_refused(&w, w.v, &b, CVG_EGAP, &before, what);
        page_free(&p);
    }
    /* A gap inside a page: seq 1, then 3 in the next block. */
    page p;
    page_init(&p);
    cvg__op op = made_op(&w.mid, 1, CVG_OP_COUNTER_ADD);
    page_add(&p, &op);
    page_cut(&p);
    op = made_op(&w.mid, 3, CVG_OP_COUNTER_ADD);
    page_add(&p, &op);
    ops_msg(&b, &p, 10);
    page_refused(&w, w.v, &b, CVG_EGAP, &before, "gap within a page");
    page_free(&p);
    cvg__buf_free(&b);
    snap_free(&before);
    world_close(&w);
}

Test(hostile, missing_dependencies)
{
    world w;
    world_open(&w, "hostile-deps", 10);
    snap before;
    snap_take(w.v, &before, true);
    cvg_replica_id unknown;
    memset(unknown.bytes, 0x33, 16);
    cvg__buf b = {0};
    for (int k = 0; k < 40; k++) {
        /* An op observing a dot V lacks: of S past its end, of H, or of an
         * origin nobody knows. */
        cvg_dot dep;
        int which = k % 3;
        dep.origin = which == 0 ? w.sid : which == 1 ? w.hid : unknown;
        dep.seq = (which == 0 ? S_OPS : 0) + 1 + cvg_test_below(&w.rng, 50);
        cvg_op_kind kinds[] = {CVG_OP_REGISTER_SET, CVG_OP_MVREGISTER_SET,
                               CVG_OP_SET_REMOVE, CVG_OP_RECORD_DELETE};
        cvg_op_kind kind = kinds[cvg_test_below(&w.rng, 4)];
        cvg__op op = made_op(&w.mid, 1, kind);
        op.pub.observed = &dep;
        op.pub.observed_count = 1;
        cvg__delete_counter dc;
        cvg__counter_part part;
        if (kind == CVG_OP_RECORD_DELETE) {
            op.pub.field = (cvg_bytes){NULL, 0};
            op.pub.value = cvg_value_nil();
            if (k % 2) {
                /* Only the counter part is ahead. */
                op.pub.observed_count = 0;
                memset(&part, 0, sizeof part);
                part.origin = dep.origin;
                part.seq = dep.seq;
                part.sum = 1;
                dc.field = (cvg_bytes){(const uint8_t *)"c", 1};
                dc.parts = &part;
                dc.n = 1;
                op.counters = &dc;
                op.n_counters = 1;
            }
        }
        page p;
        page_init(&p);
        page_add(&p, &op);
        ops_msg(&b, &p, 2);
        char what[80];
        snprintf(what, sizeof what, "kind %d observing seq %llu (seed %llu)",
                 (int)kind, (unsigned long long)dep.seq,
                 (unsigned long long)w.seed);
        page_refused(&w, w.v, &b, CVG_EGAP, &before, what);
        page_free(&p);
    }
    cvg__buf_free(&b);
    snap_free(&before);
    world_close(&w);
}

Test(hostile, page_out_of_causal_order)
{
    world w;
    world_open(&w, "hostile-causal", 11);
    snap before;
    snap_take(w.v, &before, true);
    /* Block 0: H's ops 1..3 (V lacks them); block 1: the attacker's op
     * replacing H's register write (H's seq 1). */
    page p;
    page_init(&p);
    page_from_log(w.h, &w.hid, 1, 3, NULL, NULL, &p);
    page_cut(&p);
    cvg_dot dep = {w.hid, 1};
    cvg__op op = made_op(&w.mid, 1, CVG_OP_REGISTER_SET);
    op.pub.collection = (cvg_bytes){(const uint8_t *)"h", 1};
    op.pub.observed = &dep;
    op.pub.observed_count = 1;
    page_add(&p, &op);
    cvg__buf b = {0};
    size_t reversed[2] = {1, 0};
    ops_msg_order(&b, &p, reversed, 1 + 4, false);
    page_refused(&w, w.v, &b, CVG_EGAP, &before, "dependent block first");
    /* The same blocks in causal order are taken. */
    victim v;
    victim_start(&v, w.v, NULL, &w.mid, false);
    ops_msg_order(&b, &p, NULL, v.pull_cursor + 4, false);
    int rc = cvg_session_input(v.s, b.p, b.len);
    cr_assert_eq(rc, CVG_OK, "causal order: %s (%s)", cvg_errname(rc),
                 cvg_replica_errmsg(w.v));
    cr_assert(cvg_session_done(v.s));
    victim_end(&v);
    page_free(&p);
    cvg__buf_free(&b);
    snap_free(&before);
    world_close(&w);
}

Test(hostile, clock_too_far_ahead)
{
    /* Refused only when the replica asks for it: by default such ops are
     * taken (tests/replica/test_clock.c). */
    g_refuse_ahead = true;
    world w;
    world_open(&w, "hostile-clock", 12);
    snap before;
    snap_take(w.v, &before, true);
    cvg__buf b = {0};
    for (int k = 0; k < 60; k++) {
        /* More than a minute (the default limit) ahead, up to the end of
         * the 48-bit millisecond range. */
        uint64_t ahead =
            60001 + cvg_test_below(&w.rng, k < 30 ? 100000 : 1ull << 40);
        uint64_t ms = NOW_MS + ahead;
        if (ms >= 1ull << 48) {
            ms = (1ull << 48) - 1;
        }
        cvg__op op = made_op(&w.mid, 1, CVG_OP_REGISTER_SET);
        op.pub.hlc = ms << 16;
        page p;
        page_init(&p);
        page_add(&p, &op);
        ops_msg(&b, &p, 2);
        char what[64];
        snprintf(what, sizeof what, "%llu ms ahead (seed %llu)",
                 (unsigned long long)ahead, (unsigned long long)w.seed);
        page_refused(&w, w.v, &b, CVG_ECLOCK, &before, what);
        page_free(&p);
    }
    cvg__buf_free(&b);
    snap_free(&before);
    world_close(&w);
}

/* ---- Equivocation ----------------------------------------------------------------*/

typedef struct edit_ctx {
    uint64_t seq; /* the op to change */
    int how;
    cvg_dot dots[8];
    cvg__delete_counter dc[4];
    cvg__counter_part parts[8];
    bool done;
} edit_ctx;

enum {
    EDIT_VALUE,
    EDIT_FIELD,
    EDIT_KEY,
    EDIT_TIME,
    EDIT_KIND,
    EDIT_DROP_OBSERVED,
    EDIT_ADD_OBSERVED,
    EDIT_OBSERVED_SEQ,
    EDIT_DELTA,
    EDIT_COUNTER_SUM,
    EDIT_VALUE_KIND,
    EDIT_N
};

static const char *edit_names[EDIT_N] = {
    "value", "field",         "key",           "time",
    "kind",  "observed dots", "observed dots", "observed dots",
    "delta", "counter parts", "value"};

/* The seq of S's op each edit changes. */
static uint64_t
edit_target(int how)
{
    switch (how) {
    case EDIT_VALUE:
    case EDIT_VALUE_KIND:
        return S_REGISTER;
    case EDIT_KIND:
        return S_MVREGISTER;
    case EDIT_DROP_OBSERVED:
    case EDIT_OBSERVED_SEQ:
        return S_REGISTER_OVER;
    case EDIT_ADD_OBSERVED:
        return S_SET_REMOVE;
    case EDIT_DELTA:
        return S_COUNTER;
    case EDIT_COUNTER_SUM:
        return S_DELETE;
    default:
        return S_SET_ADD;
    }
}

static void
edit_op(cvg__op *op, void *vctx)
{
    edit_ctx *c = vctx;
    cvg_op *p = &op->pub;
    if (p->dot.seq != c->seq) {
        return;
    }
    c->done = true;
    switch (c->how) {
    case EDIT_VALUE:
        cr_assert_eq(p->value.kind, CVG_VALUE_INT);
        p->value.as.integer++;
        break;
    case EDIT_VALUE_KIND:
        p->value = cvg_value_double((double)p->value.as.integer);
        break;
    case EDIT_FIELD:
        p->field = (cvg_bytes){(const uint8_t *)"tagz", 4};
        break;
    case EDIT_KEY:
        p->key = (cvg_bytes){(const uint8_t *)"apple", 5};
        break;
    case EDIT_TIME:
        p->hlc += 1;
        break;
    case EDIT_KIND:
        cr_assert_eq(p->kind, CVG_OP_MVREGISTER_SET);
        p->kind = CVG_OP_REGISTER_SET;
        break;
    case EDIT_DROP_OBSERVED:
        cr_assert_gt(p->observed_count, 0);
        p->observed_count--;
        break;
    case EDIT_ADD_OBSERVED:
        cr_assert_lt(p->observed_count, 7);
        memcpy(c->dots, p->observed, p->observed_count * sizeof *c->dots);
        c->dots[p->observed_count].origin = op->pub.dot.origin;
        c->dots[p->observed_count].seq = 5; /* a tag that exists */
        p->observed = c->dots;
        p->observed_count++;
        break;
    case EDIT_OBSERVED_SEQ:
        cr_assert_gt(p->observed_count, 0);
        memcpy(c->dots, p->observed, p->observed_count * sizeof *c->dots);
        c->dots[0].seq = 1; /* another op that V has */
        p->observed = c->dots;
        break;
    case EDIT_DELTA:
        p->delta = -p->delta;
        break;
    case EDIT_COUNTER_SUM:
        cr_assert_eq(op->n_counters, 1);
        cr_assert_eq(op->counters[0].n, 1);
        c->dc[0] = op->counters[0];
        c->parts[0] = op->counters[0].parts[0];
        c->parts[0].sum += 1;
        c->dc[0].parts = c->parts;
        op->counters = c->dc;
        break;
    }
}

Test(hostile, equivocation_in_any_field_is_reported)
{
    world w;
    world_open(&w, "hostile-equiv", 13);
    snap before;
    snap_take(w.v, &before, true);
    char sid[33];
    cvg_replica_id_hex(&w.sid, sid);
    cvg__buf b = {0};
    for (int how = 0; how < EDIT_N; how++) {
        edit_ctx c;
        memset(&c, 0, sizeof c);
        c.how = how;
        c.seq = edit_target(how);
        /* The ops before the changed one are equal duplicates: skipped. */
        page p;
        page_init(&p);
        page_from_log(w.s, &w.sid, 1, S_OPS, edit_op, &c, &p);
        cr_assert(c.done);
        ops_msg(&b, &p, 1 + S_OPS);
        char what[64];
        snprintf(what, sizeof what, "S's op %llu with another %s",
                 (unsigned long long)c.seq, edit_names[how]);
        page_refused(&w, w.v, &b, CVG_EEQUIVOCAL, &before, what);
        char want[80];
        snprintf(want, sizeof want, "%s:%llu", sid, (unsigned long long)c.seq);
        const char *msg = cvg_replica_errmsg(w.v);
        cr_expect(strstr(msg, want) != NULL, "%s: '%s' names %s", what, msg,
                  want);
        cr_expect(strstr(msg, edit_names[how]) != NULL,
                  "%s: '%s' names the field", what, msg);
        page_free(&p);
    }
    /* V's own op, sent back changed: an equivocation in V's name. */
    char vid[33];
    cvg_replica_id_hex(&w.vid, vid);
    edit_ctx c;
    memset(&c, 0, sizeof c);
    c.how = EDIT_DELTA;
    c.seq = 2;
    page p;
    page_init(&p);
    page_from_log(w.v, &w.vid, 1, 3, edit_op, &c, &p);
    ops_msg(&b, &p, 4);
    page_refused(&w, w.v, &b, CVG_EEQUIVOCAL, &before, "V's own op changed");
    page_free(&p);
    /* A changed copy of an op that arrived earlier in the same page. */
    page_init(&p);
    page_from_log(w.h, &w.hid, 1, 3, NULL, NULL, &p);
    page_cut(&p);
    memset(&c, 0, sizeof c);
    c.how = EDIT_TIME;
    c.seq = 2;
    page_from_log(w.h, &w.hid, 1, 3, edit_op, &c, &p);
    ops_msg(&b, &p, 1 + 6);
    page_refused(&w, w.v, &b, CVG_EEQUIVOCAL, &before,
                 "a changed repeat within a page");
    page_free(&p);
    cvg__buf_free(&b);
    snap_free(&before);
    world_close(&w);
}

/* Feed @p msg to a fresh session of V with peer @p peer; it must be
 * taken, with @p got ops applied and @p dup skipped as duplicates. */
static void
page_taken(world *w, const cvg_replica_id *peer, const cvg__buf *msg,
           uint64_t got, uint64_t dup, const char *what)
{
    victim v;
    victim_start(&v, w->v, NULL, peer, false);
    int rc = cvg_session_input(v.s, msg->p, msg->len);
    cr_assert_eq(rc, CVG_OK, "%s: %s (%s)", what, cvg_errname(rc),
                 cvg_replica_errmsg(w->v));
    cvg_session_stats st;
    cvg_session_stats_get(v.s, &st, sizeof st);
    cr_expect_eq(st.ops_received, got, "%s: %llu applied", what,
                 (unsigned long long)st.ops_received);
    cr_expect_eq(st.ops_duplicate, dup, "%s: %llu duplicates", what,
                 (unsigned long long)st.ops_duplicate);
    cr_expect(cvg_session_done(v.s), "%s", what);
    victim_end(&v);
}

/* Pages of ops V has, as honest peers resend them, are taken without a
 * word: counted as duplicates, and nothing changes. */
Test(hostile, equal_duplicates_are_skipped_silently)
{
    world w;
    world_open(&w, "hostile-dups", 14);
    /* A relay: H has S's ops and serves all it has to a peer that says it
     * has nothing. Its page, bytes as they are, goes to V. */
    OK(cvg_sync_local(w.h, w.s, NULL));
    cvg_session *relay;
    OK(cvg_session_open(w.h, NULL, &relay));
    drain(relay, NULL, NULL, NULL);
    cvg__buf b = {0};
    hello_msg(&b, &w.mid, 1);
    OK(cvg_session_input(relay, b.p, b.len));
    drain(relay, NULL, NULL, NULL);
    pull_msg(&b, 1, 0, 0);
    OK(cvg_session_input(relay, b.p, b.len));
    cvg_bytes out;
    OK(cvg_session_output(relay, &out));
    cvg__buf relayed = {0};
    cr_assert_eq(cvg__buf_append(&relayed, out.data, out.len), CVG_OK);
    cvg_session_close(relay);
    bool more;
    cr_assert_eq(page_ops(relayed.p, relayed.len, &more), S_OPS + 3);
    page_taken(&w, &w.mid, &relayed, 3, S_OPS, "relayed page");
    snap before;
    snap_take(w.v, &before, true);
    /* The same page again, from another peer: all duplicates. */
    cvg_replica_id again = fresh_peer();
    page_taken(&w, &again, &relayed, 0, S_OPS + 3, "repeated page");
    snap_expect_same(w.v, &before, "repeated page");
    /* S's ops twice in one page, as the block writer makes them. */
    page p;
    page_init(&p);
    page_from_log(w.s, &w.sid, 1, S_OPS, NULL, NULL, &p);
    page_cut(&p);
    page_from_log(w.s, &w.sid, 1, S_OPS, NULL, NULL, &p);
    again = fresh_peer();
    ops_msg(&b, &p, 1 + 2 * S_OPS);
    page_taken(&w, &again, &b, 0, 2 * S_OPS, "every op twice");
    snap_expect_same(w.v, &before, "every op twice");
    page_free(&p);
    /* New ops twice in one page: applied once, the copy skipped. */
    page_init(&p);
    for (int copy = 0; copy < 2; copy++) {
        for (uint64_t seq = 1; seq <= 3; seq++) {
            cvg__op op = made_op(&w.mid, seq, CVG_OP_COUNTER_ADD);
            page_add(&p, &op);
        }
        page_cut(&p);
    }
    again = fresh_peer();
    ops_msg(&b, &p, 1 + 6);
    page_taken(&w, &again, &b, 3, 3, "new ops twice");
    page_free(&p);
    cvg__buf_free(&relayed);
    cvg__buf_free(&b);
    snap_free(&before);
    world_close(&w);
}

Test(hostile, ops_in_the_receivers_own_name)
{
    world w;
    world_open(&w, "hostile-own", 15);
    snap before;
    snap_take(w.v, &before, true);
    cvg__buf b = {0};
    /* V made ops 1..3; the next ones in its name come only from itself. */
    for (uint64_t first = 4; first < 40; first += 3) {
        page p;
        page_init(&p);
        cvg__op op = made_op(&w.vid, first, CVG_OP_COUNTER_ADD);
        page_add(&p, &op);
        ops_msg(&b, &p, 2);
        page_refused(&w, w.v, &b, CVG_EFORGED, &before, "V's name");
        page_free(&p);
    }
    /* Its real ops, sent back unchanged, are plain duplicates. */
    page p;
    page_init(&p);
    page_from_log(w.v, &w.vid, 1, 3, NULL, NULL, &p);
    victim v;
    victim_start(&v, w.v, NULL, &w.mid, false);
    ops_msg(&b, &p, v.pull_cursor + 3);
    OK(cvg_session_input(v.s, b.p, b.len));
    victim_end(&v);
    page_free(&p);
    snap_expect_same(w.v, &before, "V's ops back");
    cvg__buf_free(&b);
    snap_free(&before);
    world_close(&w);
}

/* A HELLO that says the peer has more of V's ops than V made: V was
 * restored from an older copy, or the peer lies; its next ops would reuse
 * seqs others know. The session stops before anything moves. */
Test(hostile, hellos_claiming_ops_the_receiver_never_made)
{
    world w;
    world_open(&w, "hostile-claim", 16);
    snap before;
    snap_take(w.v, &before, true);
    for (uint64_t claim = 3; claim < 6; claim++) {
        cvg_dot dot = {w.vid, claim};
        cvg__buf b = {0};
        hello_msg(&b, &w.mid, 1);
        victim v;
        victim_open(&v, w.v);
        OK(cvg_session_input(v.s, b.p, b.len));
        vv_msg(&b, &dot, 1);
        if (claim == 3) { /* V made 3: a true claim */
            OK(cvg_session_input(v.s, b.p, b.len));
        } else {
            expect_refused(&v, b.p, b.len, CVG_EFORGED, &before,
                           "a claim past V's own ops");
        }
        victim_end(&v);
        cvg__buf_free(&b);
    }
    snap_free(&before);
    world_close(&w);
}

/* ---- Messages out of turn ----------------------------------------------------------*/

Test(hostile, messages_before_hello)
{
    world w;
    world_open(&w, "hostile-early", 16);
    snap before;
    snap_take(w.v, &before, true);
    for (stage st = AT_PULL; st <= AT_ACK; st++) {
        cvg__buf b = {0};
        sample_msg(&w, st, &b);
        victim v;
        victim_at(&w, &v, AT_HELLO);
        char what[32];
        snprintf(what, sizeof what, "%s before HELLO", stage_names[st]);
        expect_refused(&v, b.p, b.len, CVG_EPROTO, &before, what);
        victim_end(&v);
        cvg__buf_free(&b);
    }
    snap_free(&before);
    world_close(&w);
}

Test(hostile, hellos_from_another_peer_or_from_itself)
{
    world w;
    world_open(&w, "hostile-hello", 17);
    snap before;
    snap_take(w.v, &before, true);
    cvg__buf b = {0};
    for (int k = 0; k < 20; k++) {
        victim v;
        victim_start(&v, w.v, NULL, &w.mid, false);
        /* The same HELLO again is a repeat, and fine. */
        hello_msg(&b, &w.mid, 0);
        OK(cvg_session_input(v.s, b.p, b.len));
        cvg_replica_id other = w.mid;
        other.bytes[cvg_test_below(&w.rng, 16)] ^=
            (uint8_t)(1 + cvg_test_below(&w.rng, 255));
        hello_msg(&b, &other, 0);
        expect_refused(&v, b.p, b.len, CVG_EPROTO, &before,
                       "HELLO of a second peer");
        victim_end(&v);
    }
    victim v;
    victim_at(&w, &v, AT_HELLO);
    hello_msg(&b, &w.vid, 0);
    expect_refused(&v, b.p, b.len, CVG_EINVAL, &before, "HELLO of itself");
    victim_end(&v);
    cvg__buf_free(&b);
    snap_free(&before);
    world_close(&w);
}

Test(hostile, pages_nobody_asked_for)
{
    world w;
    world_open(&w, "hostile-unasked", 18);
    snap before;
    snap_take(w.v, &before, true);
    cvg__buf b = {0};
    sample_msg(&w, AT_OPS, &b);
    /* A session that does not pull. */
    cvg_session_options o;
    cvg_session_options_init(&o);
    o.no_pull = true;
    victim v;
    victim_start(&v, w.v, &o, &w.mid, false);
    expect_refused(&v, b.p, b.len, CVG_EPROTO, &before, "OPS, no PULL");
    victim_end(&v);
    /* A repeat after the page was taken is fine (a link may duplicate). */
    page p;
    page_init(&p);
    page_from_log(w.h, &w.hid, 1, 3, NULL, NULL, &p);
    victim_start(&v, w.v, NULL, &w.mid, false);
    ops_msg(&b, &p, v.pull_cursor + 3);
    OK(cvg_session_input(v.s, b.p, b.len));
    OK(cvg_session_input(v.s, b.p, b.len));
    cr_assert(cvg_session_done(v.s));
    victim_end(&v);
    page_free(&p);
    cvg__buf_free(&b);
    snap_free(&before);
    world_close(&w);
}

Test(hostile, acks_for_pages_never_sent)
{
    world w;
    world_open(&w, "hostile-ack", 19);
    snap before;
    snap_take(w.v, &before, true);
    cvg__buf b = {0};
    ack_msg(&b);
    for (int serve = 0; serve < 2; serve++) {
        /* The attacker pulls (or says it will) but never did. */
        cvg_session_options o;
        cvg_session_options_init(&o);
        o.no_pull = serve;
        victim v;
        victim_start(&v, w.v, &o, &w.mid, true);
        expect_refused(&v, b.p, b.len, CVG_EPROTO, &before, "ACK, no page");
        victim_end(&v);
    }
    cvg__buf_free(&b);
    snap_free(&before);
    world_close(&w);
}

Test(hostile, pull_cursor_past_the_end_of_the_log)
{
    world w;
    world_open(&w, "hostile-cursor", 20);
    snap before;
    snap_take(w.v, &before, true);
    uint64_t end = S_OPS + 3; /* V's last lsn */
    cvg_session_options o;
    cvg_session_options_init(&o);
    o.no_pull = true;
    cvg__buf b = {0};
    for (int k = 0; k < 40; k++) {
        uint64_t cursor =
            end + 2 + cvg_test_below(&w.rng, k < 20 ? 100 : UINT64_MAX / 2);
        victim v;
        victim_start(&v, w.v, &o, &w.mid, true);
        pull_msg(&b, cursor, 0, 0);
        char what[64];
        snprintf(what, sizeof what, "PULL from %llu (seed %llu)",
                 (unsigned long long)cursor, (unsigned long long)w.seed);
        expect_refused(&v, b.p, b.len, CVG_EPROTO, &before, what);
        victim_end(&v);
    }
    /* Right at the end: an empty last page. */
    victim v;
    victim_start(&v, w.v, &o, &w.mid, true);
    pull_msg(&b, end + 1, 0, 0);
    OK(cvg_session_input(v.s, b.p, b.len));
    victim_end(&v);
    cvg__buf_free(&b);
    snap_free(&before);
    world_close(&w);
}

/* The ops in an OPS message, and whether it says more are left. */
static uint64_t
page_ops(const uint8_t *msg, size_t len, bool *more)
{
    cvg__msg_scratch sc = {0};
    cvg__msg m;
    OK(cvg__msg_decode(msg, len, &m, &sc));
    cr_assert_eq(m.type, CVG__MSG_OPS);
    uint64_t n = 0;
    for (size_t i = 0; i < m.n_blocks; i++) {
        cvg__block_reader rd;
        memset(&rd, 0, sizeof rd);
        OK(cvg__block_open(&rd, m.blocks[i].data, m.blocks[i].len));
        n += rd.count;
        cvg__block_reader_destroy(&rd);
    }
    *more = m.has_more;
    cvg__msg_scratch_destroy(&sc);
    return n;
}

Test(hostile, pull_limits_of_zero_or_huge_are_ours_at_most)
{
    world w;
    world_open(&w, "hostile-pull-limits", 21);
    snap before;
    snap_take(w.v, &before, true);
    cvg_session_options o;
    cvg_session_options_init(&o);
    o.no_pull = true;
    o.page_ops = 8;
    const uint32_t limits[][2] = {{0, 0},          {UINT32_MAX, UINT32_MAX},
                                  {0, UINT32_MAX}, {UINT32_MAX, 0},
                                  {1, 0},          {0, 1},
                                  {8, 1u << 30}};
    cvg__buf b = {0};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        victim v;
        victim_start(&v, w.v, &o, &w.mid, true);
        pull_msg(&b, 1, limits[i][0], limits[i][1]);
        OK(cvg_session_input(v.s, b.p, b.len));
        cvg_bytes out;
        OK(cvg_session_output(v.s, &out));
        bool more;
        uint64_t n = page_ops(out.data, out.len, &more);
        /* S's 41 ops came to V in one page, with one signature at their
         * last seq: V can relay them only whole. */
        cr_expect((n >= 1 && n <= 8) || n == 41, "limits %u, %u: %llu ops",
                  limits[i][0], limits[i][1], (unsigned long long)n);
        cr_expect(more, "the log goes on");
        victim_end(&v);
    }
    cvg__buf_free(&b);
    snap_expect_same(w.v, &before, "serving");
    snap_free(&before);
    world_close(&w);
}

Test(hostile, page_cursors_that_do_not_fit_the_pull)
{
    world w;
    world_open(&w, "hostile-next", 22);
    /* First an honest-looking page that moves V's cursor for M to 50. */
    victim v;
    victim_start(&v, w.v, NULL, &w.mid, false);
    cr_assert_eq(v.pull_cursor, 1);
    page p;
    page_init(&p);
    cvg__op op = made_op(&w.mid, 1, CVG_OP_COUNTER_ADD);
    page_add(&p, &op);
    cvg__buf b = {0};
    ops_msg(&b, &p, 50);
    OK(cvg_session_input(v.s, b.p, b.len));
    victim_end(&v);
    page_free(&p);
    snap before;
    snap_take(w.v, &before, true);
    struct {
        uint64_t n;   /* ops in the page (new to V: M's 2..) */
        int64_t next; /* relative to the PULL's cursor */
        bool more;
    } cases[] = {
        {0, -1, false}, {0, -49, false}, {1, -1, false},
        {3, 2, false},  {5, 4, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        victim_start(&v, w.v, NULL, &w.mid, false);
        cr_assert_eq(v.pull_cursor, 50);
        page_init(&p);
        for (uint64_t k = 0; k < cases[i].n; k++) {
            op = made_op(&w.mid, 2 + k, CVG_OP_COUNTER_ADD);
            page_add(&p, &op);
        }
        ops_msg_order(&b, &p, NULL,
                      (uint64_t)((int64_t)v.pull_cursor + cases[i].next),
                      cases[i].more);
        char what[64];
        snprintf(what, sizeof what, "case %zu: %llu ops, next %+lld", i,
                 (unsigned long long)cases[i].n, (long long)cases[i].next);
        expect_refused(&v, b.p, b.len, CVG_EPROTO, &before, what);
        victim_end(&v);
        page_free(&p);
    }
    /* "More" with a next cursor at or behind the PULL's is what a repeat
     * of an earlier page looks like, late after the next PULL: ignored,
     * and the session still waits for its answer. */
    for (uint64_t n = 0; n < 4; n += 3) {
        victim_start(&v, w.v, NULL, &w.mid, false);
        page_init(&p);
        for (uint64_t k = 0; k < n; k++) {
            op = made_op(&w.mid, 2 + k, CVG_OP_COUNTER_ADD);
            page_add(&p, &op);
        }
        ops_msg_order(&b, &p, NULL, v.pull_cursor - (n > 0), true);
        OK(cvg_session_input(v.s, b.p, b.len));
        cr_expect_eq(cvg_session_error(v.s), CVG_OK);
        cr_expect(!cvg_session_done(v.s));
        snap_expect_same(w.v, &before, "a late repeat");
        victim_end(&v);
        page_free(&p);
    }
    cvg__buf_free(&b);
    snap_free(&before);
    world_close(&w);
}

Test(hostile, errors_with_codes_that_are_not_errors)
{
    world w;
    world_open(&w, "hostile-error-code", 23);
    snap before;
    snap_take(w.v, &before, true);
    /* version, type ERROR, code, empty text. */
    const uint8_t codes[][3] = {{0x00}, {0x01}, {0x7f}, {0xcc, 0xff}};
    const size_t lens[] = {1, 1, 1, 2};
    for (size_t i = 0; i < 4; i++) {
        cvg__buf b = {0};
        const uint8_t head[] = {CVG_PROTOCOL_VERSION, CVG__MSG_ERROR};
        cr_assert_eq(cvg__buf_append(&b, head, 2), CVG_OK);
        cr_assert_eq(cvg__buf_append(&b, codes[i], lens[i]), CVG_OK);
        cr_assert_eq(cvg__buf_append(&b, "\xa0", 1), CVG_OK);
        victim v;
        victim_at(&w, &v, AT_OPS);
        expect_refused(&v, b.p, b.len, CVG_ECORRUPT, &before, "ERROR code");
        victim_end(&v);
        cvg__buf_free(&b);
    }
    snap_free(&before);
    world_close(&w);
}

/* ---- Identities --------------------------------------------------------------
 * A peer is who its key says: its id must be derived from the key its
 * HELLO carries, and it must prove it holds that key over this session's
 * challenge before anything it says is stored or any page is taken. */

/* What V believes of peer @p id, to compare before and after. */
static cvg_sync_status
status_of(world *w, const cvg_replica_id *id)
{
    cvg_sync_status st;
    OK(cvg_sync_status_get(w->v, id, &st, sizeof st));
    return st;
}

static void
expect_status_same(const cvg_sync_status *a, const cvg_sync_status *b,
                   const char *what)
{
    cr_expect(a->state == b->state && a->committed == b->committed &&
                  a->pending == b->pending && a->failed == b->failed &&
                  a->last_sync_ms == b->last_sync_ms,
              "%s: what V believes of the peer changed", what);
}

Test(hostile, ids_not_derived_from_their_key)
{
    world w;
    world_open(&w, "hostile-id-key", 24);
    snap before;
    snap_take(w.v, &before, true);
    /* S's id with the attacker's key. */
    cvg__msg m = msg_of(CVG__MSG_HELLO);
    m.id = w.sid;
    m.pk = g_keys[0].pk;
    m.nonce = g_attacker_nonce;
    cvg__buf b = {0};
    encode(&m, &b);
    victim v;
    victim_open(&v, w.v);
    expect_refused(&v, b.p, b.len, CVG_EFORGED, &before,
                   "S's id with another key");
    victim_end(&v);
    /* The attacker's key with a copy's bytes that do not give its id. */
    static const uint8_t inc[16] = {1, 2, 3};
    m.id = w.mid;
    m.inc = (cvg_bytes){inc, sizeof inc};
    encode(&m, &b);
    victim_open(&v, w.v);
    expect_refused(&v, b.p, b.len, CVG_EFORGED, &before,
                   "an id that is not the key's with its inc");
    victim_end(&v);
    cvg__buf_free(&b);
    snap_free(&before);
    world_close(&w);
}

/* The attacker says HELLO as S, with S's public key, but cannot prove it:
 * its proofs, a page it sends with a far cursor, and its claim to hold V's
 * ops change nothing V believes of S, and V then syncs with the real S. */
Test(hostile, a_peer_claiming_another_id_cannot_prove_it)
{
    world w;
    world_open(&w, "hostile-id-claim", 25);
    snap before;
    snap_take(w.v, &before, true);
    cvg_sync_status st0 = status_of(&w, &w.sid);
    cvg_dot claim = {w.vid, 3}; /* "I hold all of V's ops" */
    cvg__msg m = msg_of(CVG__MSG_HELLO);
    m.id = w.sid;
    m.flags = 1;
    cvg__buf hello = {0}, b = {0}, claim_vv = {0};
    encode(&m, &hello);
    vv_msg(&claim_vv, &claim, 1);
    for (int attack = 0; attack < 4; attack++) {
        victim v;
        victim_open(&v, w.v);
        OK(cvg_session_input(v.s, hello.p, hello.len));
        OK(cvg_session_input(v.s, claim_vv.p, claim_vv.len));
        drain(v.s, NULL, NULL, NULL);
        const char *what = "";
        if (attack == 0) {
            /* A page with a cursor of 10^12, before any proof. */
            page p;
            page_init(&p);
            page_from_log(w.s, &w.sid, 1, 2, NULL, NULL, &p);
            ops_msg(&b, &p, 1000000000000ull);
            page_free(&p);
            expect_refused(&v, b.p, b.len, CVG_EPROTO, &before,
                           "a page before the proof");
            what = "page";
        } else {
            /* A proof signed with the attacker's key, one over another
             * challenge, and one for another id. */
            uint8_t saved[CVG__NONCE_BYTES];
            memcpy(saved, g_victim_nonce, sizeof saved);
            if (attack == 1) {
                g_keys[0].id = w.sid; /* sign as "S" with our key */
                prove_msg(&b, &w.sid);
                g_keys[0].id = w.mid;
            } else if (attack == 2) {
                g_victim_nonce[0] ^= 1; /* an old session's challenge */
                prove_msg(&b, &w.sid);
            } else {
                prove_msg(&b, &w.hid); /* H's real proof, not S's */
            }
            memcpy(g_victim_nonce, saved, sizeof saved);
            expect_refused(&v, b.p, b.len, CVG_EFORGED, &before,
                           "a proof that is not S's over this session");
            what = "proof";
        }
        victim_end(&v);
        cvg_sync_status st = status_of(&w, &w.sid);
        expect_status_same(&st0, &st, what);
    }
    cvg__buf_free(&hello);
    cvg__buf_free(&claim_vv);
    cvg__buf_free(&b);
    /* The real S: V's cursor and status for it were never touched. */
    int rc = cvg_sync_local(w.v, w.s, NULL);
    cr_expect_eq(rc, CVG_OK, "the real S: %s (%s)", cvg_errname(rc),
                 cvg_replica_errmsg(w.v));
    snap_free(&before);
    world_close(&w);
}

/* A proven peer's page may not end past the log end its HELLO gave: a
 * cursor there would make later pulls skip what it writes next. */
Test(hostile, page_cursors_past_the_peers_log_end)
{
    world w;
    world_open(&w, "hostile-log-end", 26);
    snap before;
    snap_take(w.v, &before, true);
    victim v;
    victim_open(&v, w.v);
    cvg__msg m = msg_of(CVG__MSG_HELLO);
    m.id = w.mid;
    m.pk = g_keys[0].pk;
    m.nonce = g_attacker_nonce;
    m.log_end = 10;
    cvg__buf b = {0};
    encode(&m, &b);
    OK(cvg_session_input(v.s, b.p, b.len));
    prove_msg(&b, &w.mid);
    OK(cvg_session_input(v.s, b.p, b.len));
    drain(v.s, NULL, NULL, NULL);
    page p;
    page_init(&p);
    page_from_log(w.s, &w.sid, 1, 2, NULL, NULL, &p);
    ops_msg(&b, &p, 12);
    page_free(&p);
    expect_refused(&v, b.p, b.len, CVG_EPROTO, &before,
                   "a next cursor past the peer's log end");
    victim_end(&v);
    cvg__buf_free(&b);
    snap_free(&before);
    world_close(&w);
}

/* ---- ACKs -----------------------------------------------------------------
 * The peer's ACK of our pages is checked against what they carried: one
 * claiming ops never sent is refused (CVG_EPROTO) and records nothing of
 * what it says, not even its ranges that were sent. V serves the attacker
 * a page of S's 41 ops and its own 3 (victim_at(AT_ACK)). */

static void
ack_of_ranges(cvg__buf *b, const cvg__ack_range *g, size_t n, bool more)
{
    cvg__msg m = msg_of(CVG__MSG_ACK);
    m.ranges = g;
    m.n_ranges = n;
    m.has_more = more;
    encode(&m, b);
}

/* Sort @p g by origin (the wire's order), at most 3. */
static void
sort_ranges(cvg__ack_range *g, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i;
             j > 0 && cvg__id_cmp(&g[j - 1].origin, &g[j].origin) > 0; j--) {
            cvg__ack_range t = g[j];
            g[j] = g[j - 1];
            g[j - 1] = t;
        }
    }
}

Test(hostile, acks_claiming_ops_never_sent)
{
    world w;
    world_open(&w, "hostile-ack-ranges", 28);
    snap before;
    snap_take(w.v, &before, true);
    const cvg_replica_id *v = &w.vid, *s = &w.sid;
    enum { T = CVG__ACK_TAKEN, D = CVG__ACK_DUPLICATE };
    static const struct {
        int who[3]; /* 0: V, 1: S, 2: H, 3: the attacker */
        uint64_t lo[3], hi[3];
        int32_t result[3];
        size_t n;
        const char *what;
    } cases[] = {
        {{0}, {1}, {4}, {T}, 1, "V's ops 1..4 (it sent 1..3)"},
        {{0}, {4}, {4}, {D}, 1, "V's op 4 as a duplicate"},
        {{1}, {1}, {42}, {D}, 1, "S's ops 1..42 (it sent 1..41)"},
        {{1, 0}, {1, 5}, {41, 5}, {T, T}, 2, "S's sent ops, then V's op 5"},
        {{2}, {1}, {1}, {T}, 1, "an op of H, which V never sent"},
        {{3}, {1}, {1}, {D}, 1, "an op of the attacker's own"},
        {{0}, {9}, {9}, {CVG_ECLOCK}, 1, "V's op 9 refused"},
        {{0}, {1}, {2}, {CVG_ECLOCK}, 1, "two of V's ops refused at once"},
        {{0, 0},
         {1, 2},
         {1, 2},
         {T, CVG_ECLOCK},
         2,
         "a refusal among other results"},
    };
    const cvg_replica_id *ids[4] = {v, s, &w.hid, &w.mid};
    cvg__buf b = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cvg__ack_range g[3];
        for (size_t k = 0; k < cases[i].n; k++) {
            g[k] = (cvg__ack_range){*ids[cases[i].who[k]], cases[i].lo[k],
                                    cases[i].hi[k], cases[i].result[k]};
        }
        sort_ranges(g, cases[i].n);
        ack_of_ranges(&b, g, cases[i].n, false);
        victim vic;
        victim_at(&w, &vic, AT_ACK);
        expect_refused(&vic, b.p, b.len, CVG_EPROTO, &before, cases[i].what);
        victim_end(&vic);
        /* Nothing of it is believed: none of V's ops committed or failed
         * at the attacker. */
        cvg_sync_status st = status_of(&w, &w.mid);
        cr_expect(st.committed == 0 && st.failed == 0,
                  "%s: %llu committed, %llu failed", cases[i].what,
                  (unsigned long long)st.committed,
                  (unsigned long long)st.failed);
    }

    /* Ops it confirms past a gap (2..3, not 1) move nothing: what it has
     * of ours runs from the start. */
    victim vic;
    victim_at(&w, &vic, AT_ACK);
    cvg__ack_range gap = {*v, 2, 3, T};
    ack_of_ranges(&b, &gap, 1, true);
    OK(cvg_session_input(vic.s, b.p, b.len));
    victim_end(&vic);
    cr_expect_eq(status_of(&w, &w.mid).committed, 0, "past a gap");

    /* The honest answers: ops it had, ops it took, in pieces and twice
     * (a link may repeat), then the last. */
    victim_at(&w, &vic, AT_ACK);
    cvg__ack_range g[3] = {{*s, 1, 20, D}, {*s, 21, 41, T}, {*v, 1, 2, T}};
    if (cvg__id_cmp(v, s) < 0) {
        g[0] = (cvg__ack_range){*v, 1, 2, T};
        g[1] = (cvg__ack_range){*s, 1, 20, D};
        g[2] = (cvg__ack_range){*s, 21, 41, T};
    }
    ack_of_ranges(&b, g, 3, true);
    OK(cvg_session_input(vic.s, b.p, b.len));
    OK(cvg_session_input(vic.s, b.p, b.len));
    cr_expect(!cvg_session_done(vic.s), "not the last page yet");
    cvg__ack_range last = {*v, 3, 3, D};
    ack_of_ranges(&b, &last, 1, false);
    OK(cvg_session_input(vic.s, b.p, b.len));
    cr_expect(cvg_session_done(vic.s));
    cvg_session_acks ak;
    cvg_session_acks_get(vic.s, &ak, sizeof ak);
    cr_expect_eq(ak.taken, 2 * (21 + 2), "a repeat counts again");
    cr_expect_eq(ak.duplicate, 2 * 20 + 1);
    cr_expect_eq(ak.refused, 0);
    victim_end(&vic);
    cvg_sync_status st = status_of(&w, &w.mid);
    cr_expect_eq(st.committed, 3);
    cr_expect_eq(st.failed, 0);

    /* A refusal of an op sent: recorded as failed, with its code. */
    cvg_txn *t = wtxn(w.v);
    cvg_key k = {"shop", "v", "c"};
    OK(cvg_counter_add(t, &k, 1, NULL));
    OK(cvg_counter_add(t, &k, 1, NULL));
    commit(t);
    victim_at(&w, &vic, AT_ACK);
    cvg__ack_range refused = {*v, 5, 5, CVG_EGAP};
    ack_of_ranges(&b, &refused, 1, true);
    OK(cvg_session_input(vic.s, b.p, b.len));
    cvg_session_acks_get(vic.s, &ak, sizeof ak);
    cr_expect_eq(ak.refused, 1);
    victim_end(&vic);
    cvg_failed_op f[4];
    size_t nf = 0;
    OK(cvg_sync_failed(w.v, &w.mid, f, 4, &nf));
    cr_expect(nf == 1 && f[0].seq == 5 && f[0].code == CVG_EGAP, "%zu failed",
              nf);
    st = status_of(&w, &w.mid);
    cr_expect(st.committed == 3 && st.failed == 1 && st.pending == 1,
              "%llu committed", (unsigned long long)st.committed);
    OK(cvg_sync_retry_failed(w.v, &w.mid));
    cvg__buf_free(&b);
    snap_free(&before);
    world_close(&w);
}

/* A flood of PULLs costs one page: copies of the PULL answered are
 * dropped, the next PULL waits for the ACK of that page, and one more
 * ends the session. Bytes sent and pages served are the budget. */
Test(hostile, pulls_without_acks_are_served_one_page_at_a_time)
{
    world w;
    world_open(&w, "hostile-pull-flood", 29);
    snap before;
    snap_take(w.v, &before, true);
    cvg_session_options o;
    cvg_session_options_init(&o);
    o.no_pull = true;
    o.page_ops = 8;
    victim v;
    victim_start(&v, w.v, &o, &w.mid, true);
    cvg_session_stats st0;
    cvg_session_stats_get(v.s, &st0, sizeof st0);
    cvg__buf b = {0};
    pull_msg(&b, 1, 0, 0);
    size_t page_bytes = 0, pages = 0;
    for (int k = 0; k < 2000; k++) {
        OK(cvg_session_input(v.s, b.p, b.len));
        cvg_bytes out;
        while (cvg_session_output(v.s, &out) == CVG_OK) {
            page_bytes += out.len;
            pages++;
        }
    }
    cr_assert_eq(pages, 1, "2,000 copies of a PULL: %zu pages", pages);
    cvg_session_stats st;
    cvg_session_stats_get(v.s, &st, sizeof st);
    cr_assert_eq(st.pages_sent - st0.pages_sent, 1);
    cr_assert_leq(st.bytes_sent - st0.bytes_sent, page_bytes);
    cr_assert_leq(page_bytes, 64u << 10, "one page of 41 ops: %zu bytes",
                  page_bytes);
    /* The next PULL before the ACK: it waits, nothing is served. */
    pull_msg(&b, 42, 0, 0);
    OK(cvg_session_input(v.s, b.p, b.len));
    cvg_bytes out;
    cr_assert_eq(cvg_session_output(v.s, &out), CVG_DONE, "the PULL waits");
    /* Its copy is dropped too; one more is a protocol error. */
    OK(cvg_session_input(v.s, b.p, b.len));
    cr_assert_eq(cvg_session_output(v.s, &out), CVG_DONE);
    pull_msg(&b, 43, 0, 0);
    expect_refused(&v, b.p, b.len, CVG_EPROTO, &before, "a third PULL");
    victim_end(&v);
    cvg__buf_free(&b);
    snap_free(&before);
    world_close(&w);
}

/* A page is held to the bytes the PULL asked for: past what a sender may
 * add to reach a signature point and finish an op, it is refused before
 * any of it is decoded. */
Test(hostile, pages_over_the_asked_bytes_are_refused)
{
    world w;
    world_open(&w, "hostile-page-bytes", 30);
    snap before;
    snap_take(w.v, &before, true);
    cvg_session_options o;
    cvg_session_options_init(&o);
    o.page_bytes = 4096;
    const uint64_t limit = CVG__PAGE_BYTES_ACCEPTED(4096);
    const size_t nblk = 64;
    uint8_t *junk = malloc(limit + 1);
    cr_assert_not_null(junk);
    memset(junk, 0x5a, limit + 1);
    for (int over = 0; over <= 1; over++) {
        uint64_t total = limit + (uint64_t)over;
        cvg_bytes blocks[64];
        for (size_t i = 0; i < nblk; i++) {
            uint64_t lo = total * i / nblk, hi = total * (i + 1) / nblk;
            blocks[i] = (cvg_bytes){junk + lo, hi - lo};
        }
        victim v;
        victim_start(&v, w.v, &o, &w.mid, false);
        cvg__msg m = msg_of(CVG__MSG_OPS);
        m.blocks = blocks;
        m.n_blocks = nblk;
        m.next_cursor = v.pull_cursor + 1;
        cvg__buf b = {0};
        g_no_auto_sign = true;
        encode(&m, &b);
        g_no_auto_sign = false;
        if (over) {
            expect_refused(&v, b.p, b.len, CVG_ELIMIT, &before,
                           "a page one byte over");
            cr_assert(strstr(cvg_replica_errmsg(w.v), "bytes") != NULL, "%s",
                      cvg_replica_errmsg(w.v));
        } else {
            /* At the limit the blocks are read, and are garbage. */
            int rc = cvg_session_input(v.s, b.p, b.len);
            cr_assert(rc != CVG_OK && rc != CVG_ELIMIT, "at the limit: %s",
                      cvg_errname(rc));
        }
        victim_end(&v);
        cvg__buf_free(&b);
    }
    free(junk);
    snap_expect_same(w.v, &before, "oversized pages");
    snap_free(&before);
    world_close(&w);
}

/* Each op in a block of its own (an op_edit), and one of them changed. */
typedef struct one_per_block {
    page *p;
    uint64_t change_seq; /* 0: none */
} one_per_block;

static void
cut_before_each(cvg__op *op, void *ctx)
{
    one_per_block *c = ctx;
    page_cut(c->p);
    if (op->pub.dot.seq == c->change_seq) {
        op->pub.delta += 1;
    }
}

/* Duplicates in descending seq order, one op per block, out of one large
 * stored block: each is checked against a fingerprint of the stored
 * block's ops, made once, instead of decoding the block from its start
 * for each (the square of the page's ops). Both outcomes go through the
 * fingerprints: all equal, and one op changed. */
Test(hostile, duplicates_in_descending_order_cost_one_decode)
{
    world w;
    world_open(&w, "hostile-dups-desc", 31);
    const uint64_t n = 8000;
    cvg_replica *x = open_in(&w, "x");
    cvg_txn *t = wtxn(x);
    const cvg_key k = {"shop", "desc", "qty"};
    for (uint64_t i = 0; i < n; i++) {
        OK(cvg_counter_add(t, &k, 1, NULL));
    }
    commit(t);
    cvg_replica_id xid;
    cvg_replica_id_get(x, &xid);
    OK(cvg_sync_local(w.v, x, NULL));
    snap before;
    snap_take(w.v, &before, true);
    size_t *order = malloc(n * sizeof *order);
    cr_assert_not_null(order);
    for (size_t i = 0; i < n; i++) {
        order[i] = n - 1 - i;
    }
    cvg__buf b = {0};
    g_no_auto_sign = true;
    for (int changed = 0; changed <= 1; changed++) {
        page p;
        page_init(&p);
        one_per_block c = {&p, changed ? n / 3 : 0};
        page_from_log(x, &xid, 1, n, cut_before_each, &c, &p);
        page_cut(&p);
        cr_assert_eq(p.n, n);
        ops_msg_order(&b, &p, order, 1 + n, false);
        if (changed) {
            page_refused(&w, w.v, &b, CVG_EEQUIVOCAL, &before,
                         "an op changed among descending duplicates");
        } else {
            cvg_replica_id again = fresh_peer();
            page_taken(&w, &again, &b, 0, n, "descending duplicates");
        }
        page_free(&p);
    }
    g_no_auto_sign = false;
    snap_expect_same(w.v, &before, "descending duplicates");
    free(order);
    cvg__buf_free(&b);
    snap_free(&before);
    cvg_replica_close(x);
    world_close(&w);
}
