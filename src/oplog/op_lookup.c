/*
 * A stored op by its dot, for telling a duplicate from an equivocation.
 *
 * Why not a hash per dot: the log stores a counter increment in about 4
 * bytes, and a content hash would add 8 to 16 to every op on disk. The log
 * already holds each op itself, and the dots index finds its block with one
 * range seek, so the op a peer sends again is compared with the op as
 * stored. Only a duplicate pays: a block decode, shared by every duplicate
 * of that block that follows in seq order (the cursor below). One that
 * goes back in the block is compared with a fingerprint of the stored op
 * instead, from one decode of the whole block kept with the cursor, so
 * duplicates in any order cost about one decode of each stored op.
 */
#include "op_lookup.h"

#include <lmdb.h>

#include "checksum.h"

/* Whether the block in @p l holds @p dot. */
static bool
holds(const cvg__op_lookup *l, const cvg_dot *dot)
{
    const cvg__block_reader *rd = &l->rd;
    return l->open && cvg__id_cmp(&rd->origin, &dot->origin) == 0 &&
           dot->seq >= rd->first_seq && dot->seq - rd->first_seq < rd->count;
}

/* Copy the block that holds @p dot into @p l and open it. */
static int
load(cvg__op_lookup *l, cvg__store *s, cvg__store_txn *t, const cvg_dot *dot)
{
    l->open = false;
    l->printed = false;
    MDB_cursor *c;
    int rc = cvg__mdb_err(mdb_cursor_open(t, s->dots, &c));
    if (rc != CVG_OK) {
        return rc;
    }
    uint8_t kb[24];
    memcpy(kb, dot->origin.bytes, 16);
    cvg__put_be64(kb + 16, dot->seq);
    MDB_val k = {24, kb}, v, block;
    /* The first block of this origin whose last seq is >= dot->seq. */
    int mrc = cvg__ck_cursor_get(s, c, &k, &v, MDB_SET_RANGE);
    if (mrc == MDB_NOTFOUND ||
        (mrc == MDB_SUCCESS &&
         (k.mv_size != 24 || memcmp(k.mv_data, dot->origin.bytes, 16) != 0))) {
        rc = CVG_ENOTFOUND;
    } else if (mrc != MDB_SUCCESS) {
        rc = cvg__mdb_err(mrc);
    } else if (v.mv_size != 8) {
        rc = CVG_ECORRUPT;
    } else {
        MDB_val lk = {8, v.mv_data};
        mrc = cvg__ck_get(s, t, s->log, &lk, &block);
        /* The index points at a block the log lacks: the store is broken. */
        rc = mrc == MDB_NOTFOUND ? CVG_ECORRUPT : cvg__mdb_err(mrc);
    }
    uint64_t last_seq =
        rc == CVG_OK ? cvg__get_be64((uint8_t *)k.mv_data + 16) : 0;
    if (rc == CVG_OK) {
        l->block.len = 0;
        rc = cvg__buf_append(&l->block, block.mv_data, block.mv_size);
    }
    mdb_cursor_close(c);
    if (rc != CVG_OK) {
        return rc;
    }
    rc = cvg__block_open(&l->rd, l->block.p, l->block.len);
    if (rc != CVG_OK) {
        return rc;
    }
    const cvg__block_reader *rd = &l->rd;
    if (cvg__id_cmp(&rd->origin, &dot->origin) != 0 || rd->count == 0 ||
        rd->first_seq + rd->count - 1 != last_seq) {
        return CVG_ECORRUPT; /* the block is not the one indexed */
    }
    if (rd->first_seq > dot->seq) {
        return CVG_ENOTFOUND; /* between two blocks: never stored */
    }
    l->open = true;
    return CVG_OK;
}

int
cvg__op_lookup_find(cvg__op_lookup *l, cvg__store *s, cvg__store_txn *t,
                    const cvg_dot *dot, const cvg__op **out)
{
    *out = NULL;
    int rc = CVG_OK;
    if (!holds(l, dot)) {
        rc = load(l, s, t, dot);
        if (rc != CVG_OK) {
            return rc;
        }
    }
    /* Ops decode only in order (names and times build up along the block):
     * read on from the last op, or start over for an earlier one. */
    uint64_t want = dot->seq - l->rd.first_seq + 1; /* ops read at the end */
    if (l->rd.index > want) {
        rc = cvg__block_open(&l->rd, l->block.p, l->block.len);
    }
    while (rc == CVG_OK && l->rd.index < want) {
        rc = cvg__block_next(&l->rd, &l->op);
    }
    if (rc != CVG_OK) {
        l->open = false;
        /* The header promised more ops than the block holds. */
        return rc == CVG_DONE ? CVG_ECORRUPT : rc;
    }
    *out = &l->op;
    return CVG_OK;
}

/* ---- Fingerprints --------------------------------------------------------
 * A keyless BLAKE2b of every field cvg__op_diff compares, each with its
 * length, so two ops share a fingerprint only if they are the same op. */

static void
print_u64(crypto_generichash_state *st, uint64_t v)
{
    uint8_t b[8];
    cvg__put_be64(b, v);
    crypto_generichash_update(st, b, sizeof b);
}

static void
print_bytes(crypto_generichash_state *st, cvg_bytes b)
{
    print_u64(st, b.len);
    if (b.len > 0) {
        crypto_generichash_update(st, b.data, b.len);
    }
}

static void
print_dot(crypto_generichash_state *st, const cvg_replica_id *o, uint64_t seq)
{
    crypto_generichash_update(st, o->bytes, sizeof o->bytes);
    print_u64(st, seq);
}

static int
op_print(const cvg__op *op, cvg__buf *scratch, uint8_t out[CVG__OP_PRINT_BYTES])
{
    const cvg_op *x = &op->pub;
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, CVG__OP_PRINT_BYTES);
    print_dot(&st, &x->dot.origin, x->dot.seq);
    print_u64(&st, (uint64_t)x->kind);
    print_u64(&st, x->hlc);
    print_bytes(&st, x->collection);
    print_bytes(&st, x->key);
    print_bytes(&st, x->field);
    print_u64(&st, (uint64_t)x->delta);
    /* The value's canonical bytes: doubles by their bits, as compared. */
    scratch->len = 0;
    int rc = cvg__value_encode(&x->value, scratch);
    if (rc != CVG_OK) {
        return rc;
    }
    print_bytes(&st, (cvg_bytes){scratch->p, scratch->len});
    print_u64(&st, x->observed_count);
    for (size_t i = 0; i < x->observed_count; i++) {
        print_dot(&st, &x->observed[i].origin, x->observed[i].seq);
    }
    print_u64(&st, op->n_counters);
    for (size_t i = 0; i < op->n_counters; i++) {
        const cvg__delete_counter *c = &op->counters[i];
        print_bytes(&st, c->field);
        print_u64(&st, c->n);
        for (size_t j = 0; j < c->n; j++) {
            print_dot(&st, &c->parts[j].origin, c->parts[j].seq);
            print_u64(&st, (uint64_t)c->parts[j].sum);
        }
    }
    crypto_generichash_final(&st, out, CVG__OP_PRINT_BYTES);
    return CVG_OK;
}

/* Decode the open block once from its start, keeping each op's print. */
static int
print_block(cvg__op_lookup *l)
{
    void *arr = l->prints;
    int rc = cvg__grow(&arr, &l->capprints, l->rd.count, sizeof *l->prints);
    l->prints = arr;
    if (rc == CVG_OK) {
        rc = cvg__block_open(&l->rd, l->block.p, l->block.len);
    }
    for (uint64_t i = 0; rc == CVG_OK && i < l->rd.count; i++) {
        rc = cvg__block_next(&l->rd, &l->op);
        if (rc == CVG_OK) {
            rc = op_print(&l->op, &l->scratch, l->prints[i]);
        }
    }
    if (rc != CVG_OK) {
        l->open = false;
        return rc == CVG_DONE ? CVG_ECORRUPT : rc;
    }
    l->printed = true;
    return CVG_OK;
}

int
cvg__op_lookup_same(cvg__op_lookup *l, cvg__store *s, cvg__store_txn *t,
                    const cvg__op *op, const char **diff)
{
    *diff = NULL;
    const cvg_dot *dot = &op->pub.dot;
    if (!holds(l, dot)) {
        int rc = load(l, s, t, dot);
        if (rc != CVG_OK) {
            return rc;
        }
    }
    uint64_t want = dot->seq - l->rd.first_seq + 1;
    if (l->rd.index > want) {
        /* Back in the block: by fingerprint, not a decode from its start
         * for each (duplicates in descending order were quadratic). */
        int rc = l->printed ? CVG_OK : print_block(l);
        uint8_t mine[CVG__OP_PRINT_BYTES];
        if (rc == CVG_OK) {
            rc = op_print(op, &l->scratch, mine);
        }
        if (rc != CVG_OK) {
            return rc;
        }
        if (sodium_memcmp(mine, l->prints[want - 1], sizeof mine) == 0) {
            return CVG_OK;
        }
        /* They differ: decode up to it once, to say where. */
    }
    const cvg__op *have;
    int rc = cvg__op_lookup_find(l, s, t, dot, &have);
    if (rc == CVG_OK) {
        *diff = cvg__op_diff(have, op);
    }
    return rc;
}

void
cvg__op_lookup_destroy(cvg__op_lookup *l)
{
    if (l == NULL) {
        return;
    }
    cvg__block_reader_destroy(&l->rd);
    cvg__buf_free(&l->block);
    cvg__buf_free(&l->scratch);
    cvg__free(l->prints);
    memset(l, 0, sizeof *l);
}

/* ---- Comparing ops ------------------------------------------------------- */

static bool
bytes_eq(cvg_bytes a, cvg_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

static bool
dots_eq(const cvg_dot *a, const cvg_dot *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i].seq != b[i].seq || cvg__id_cmp(&a[i].origin, &b[i].origin)) {
            return false;
        }
    }
    return true;
}

static bool
counters_eq(const cvg__op *a, const cvg__op *b)
{
    if (a->n_counters != b->n_counters) {
        return false;
    }
    for (size_t i = 0; i < a->n_counters; i++) {
        const cvg__delete_counter *x = &a->counters[i], *y = &b->counters[i];
        if (!bytes_eq(x->field, y->field) || x->n != y->n) {
            return false;
        }
        for (size_t j = 0; j < x->n; j++) {
            const cvg__counter_part *p = &x->parts[j], *q = &y->parts[j];
            if (p->seq != q->seq || p->sum != q->sum ||
                cvg__id_cmp(&p->origin, &q->origin) != 0) {
                return false;
            }
        }
    }
    return true;
}

const char *
cvg__op_diff(const cvg__op *a, const cvg__op *b)
{
    const cvg_op *x = &a->pub, *y = &b->pub;
    if (!dots_eq(&x->dot, &y->dot, 1)) {
        return "dot";
    }
    if (x->kind != y->kind) {
        return "kind";
    }
    if (x->hlc != y->hlc) {
        return "time";
    }
    if (!bytes_eq(x->collection, y->collection)) {
        return "collection";
    }
    if (!bytes_eq(x->key, y->key)) {
        return "key";
    }
    if (!bytes_eq(x->field, y->field)) {
        return "field";
    }
    if (x->delta != y->delta) {
        return "delta";
    }
    /* The value order tells doubles apart by their bits, so 0.0 and -0.0,
     * or two NaNs, are different values here, as their encodings are. */
    if (cvg__value_cmp(&x->value, &y->value) != 0) {
        return "value";
    }
    if (x->observed_count != y->observed_count ||
        !dots_eq(x->observed, y->observed, x->observed_count)) {
        return "observed dots";
    }
    if (!counters_eq(a, b)) {
        return "counter parts";
    }
    return NULL;
}
