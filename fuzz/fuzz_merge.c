/* libFuzzer target: the merged state must not depend on the order in which
 * ops arrive.
 *
 * The input is a recipe, not ops: every byte sequence is a valid one, so
 * the fuzzer spends its time on schedules rather than on the codec (which
 * fuzz_op_decode covers). Three replicas (fixed ids, one fixed clock)
 * take steps; each step reads a byte b and, by (b / 3) % 9, makes replica
 * b % 3:
 *   0 add a counter      (then a key byte and a delta byte)
 *   1 set a register     (then a key byte and a value byte)
 *   2 set a mvregister   (key, value)
 *   3 add to a set       (key, value)
 *   4 remove from a set  (key, value; nothing if absent)
 *   5 delete a record    (key; nothing if empty)
 *   6, 7 sync both ways with the next or the one after
 *   8 move the shared clock on by a byte's worth of ms
 * A write whose byte has the high bit set stays in an open transaction
 * with the next writes of that replica (a batch; several writes to one
 * field, deletes after writes); anything else commits first. A key byte
 * picks one of 2 collections x 3 keys x 3 fields, a value byte one of a
 * few small values of each kind, so writes meet often.
 *
 * Then every op of the three logs is collected and:
 *   - encoded alone as a block, which must decode to the same op;
 *   - applied to two fresh replicas in two different causal orders drawn
 *     from the input (ops whose dependencies are missing wait; the batches
 *     committed at random points);
 * and the three replicas are synced with each other. All five states
 * (every record, and the version vector) must be equal. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "replica/replica_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_REPLICAS 3
#define MAX_STEPS 64 /* keeps one input a few ms */

/* Id seeds of the writers and of the two replicas that apply the ops. */
static const uint64_t writer_ids[N_REPLICAS] = {101, 102, 103};
static const char *const writer_names[N_REPLICAS] = {"w0", "w1", "w2"};

typedef struct recipe {
    const uint8_t *p;
    const uint8_t *end;
} recipe;

static uint8_t
next_byte(recipe *r)
{
    return r->p < r->end ? *r->p++ : 0;
}

static void
pick_key(uint8_t b, char names[3][8], cvg_key *k)
{
    snprintf(names[0], 8, "c%u", (unsigned)(b / 9) % 2);
    snprintf(names[1], 8, "k%u", (unsigned)b % 3);
    snprintf(names[2], 8, "f%u", (unsigned)(b / 3) % 3);
    k->collection = names[0];
    k->key = names[1];
    k->field = names[2];
}

static cvg_value
pick_value(uint8_t b, char *buf)
{
    unsigned small = b >> 3; /* 0..31 */
    switch (b % 6) {
    case 0:
        return cvg_value_nil();
    case 1:
        return cvg_value_bool(small & 1);
    case 2:
        return cvg_value_int((int64_t)small - 16);
    case 3:
        return cvg_value_double((double)small * 0.25);
    case 4:
        buf[0] = (char)('a' + small % 4);
        buf[1] = '\0';
        return cvg_value_string(buf);
    default:
        buf[0] = (char)(small % 4);
        return cvg_value_bytes(buf, 1);
    }
}

static void
commit(cvg_txn **t)
{
    if (*t != NULL) {
        int rc = cvg_txn_commit(*t);
        *t = NULL;
        if (rc != CVG_OK) {
            fuzz_fail("commit: %s", cvg_errname(rc));
        }
    }
}

/* One write step. Refusals a caller must expect (another type in the
 * field, nothing to remove or delete) are fine; anything else is not. */
static void
write_step(cvg_replica *r, cvg_txn **t, unsigned act, uint8_t flags, recipe *in)
{
    if (*t == NULL) {
        int rc = cvg_txn_begin(r, 0, t);
        if (rc != CVG_OK) {
            fuzz_fail("begin: %s", cvg_errname(rc));
        }
    }
    char names[3][8], buf[2];
    cvg_key k;
    pick_key(next_byte(in), names, &k);
    int rc;
    if (act == 0) {
        int8_t d = (int8_t)next_byte(in);
        rc = cvg_counter_add(*t, &k, d ? d : 1, NULL);
    } else if (act == 5) {
        rc = cvg_record_delete(*t, &k, NULL);
    } else {
        cvg_value v = pick_value(next_byte(in), buf);
        rc = act == 1   ? cvg_register_set(*t, &k, &v, NULL)
             : act == 2 ? cvg_mvregister_set(*t, &k, &v, NULL)
             : act == 3 ? cvg_set_add(*t, &k, &v, NULL)
                        : cvg_set_remove(*t, &k, &v, NULL);
    }
    if (rc != CVG_OK && rc != CVG_ETYPE && rc != CVG_ENOTFOUND) {
        fuzz_fail("write %u: %s", act, cvg_errname(rc));
    }
    if (!(flags & 0x80)) {
        commit(t);
    }
}

static void
run_recipe(cvg_replica **w, recipe *in)
{
    cvg_txn *open[N_REPLICAS] = {NULL};
    for (int step = 0; step < MAX_STEPS && in->p < in->end; step++) {
        uint8_t b = next_byte(in);
        unsigned who = b % 3, act = (b / 3) % 9;
        if (act <= 5) {
            for (unsigned i = 0; i < N_REPLICAS; i++) {
                if (i != who) {
                    commit(&open[i]);
                }
            }
            write_step(w[who], &open[who], act, b, in);
            continue;
        }
        for (unsigned i = 0; i < N_REPLICAS; i++) {
            commit(&open[i]);
        }
        if (act == 8) {
            fuzz_now_ms += next_byte(in);
        } else {
            fuzz_sync(w[who], w[(who + act - 5) % 3]);
        }
    }
    for (unsigned i = 0; i < N_REPLICAS; i++) {
        commit(&open[i]);
    }
}

/* ---- Collecting ops ------------------------------------------------------ */

/* Every op of the three logs once, each encoded alone as a block. */
typedef struct op_set {
    cvg__buf *blocks;
    size_t n;
    size_t cap;
    cvg__vv have; /* per origin, the last seq collected */
} op_set;

static bool
same_bytes(cvg_bytes a, cvg_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

/* Encoding a valid op and decoding it again must give the same op. */
static void
check_same_op(const cvg__op *a, const cvg__op *b)
{
    const cvg_op *x = &a->pub, *y = &b->pub;
    bool same = x->kind == y->kind && x->hlc == y->hlc &&
                cvg__dot_cmp(&x->dot, &y->dot) == 0 &&
                same_bytes(x->collection, y->collection) &&
                same_bytes(x->key, y->key) && same_bytes(x->field, y->field) &&
                x->delta == y->delta &&
                x->observed_count == y->observed_count &&
                a->n_counters == b->n_counters;
    if (same &&
        (x->kind != CVG_OP_COUNTER_ADD && x->kind != CVG_OP_RECORD_DELETE)) {
        same = cvg__value_cmp(&x->value, &y->value) == 0;
    }
    for (size_t i = 0; same && i < x->observed_count; i++) {
        same = cvg__dot_cmp(&x->observed[i], &y->observed[i]) == 0;
    }
    for (size_t i = 0; same && i < a->n_counters; i++) {
        const cvg__delete_counter *c = &a->counters[i], *d = &b->counters[i];
        same = same_bytes(c->field, d->field) && c->n == d->n;
        for (size_t j = 0; same && j < c->n; j++) {
            same = cvg__id_cmp(&c->parts[j].origin, &d->parts[j].origin) == 0 &&
                   c->parts[j].seq == d->parts[j].seq &&
                   c->parts[j].sum == d->parts[j].sum;
        }
    }
    if (!same) {
        fuzz_fail("op (seq %" PRIu64
                  ", kind %d) changed in an encode and "
                  "decode",
                  x->dot.seq, (int)x->kind);
    }
}

static void
collect_op(op_set *s, const cvg__op *op)
{
    const cvg_dot *d = &op->pub.dot;
    uint64_t have = cvg__vv_get(&s->have, &d->origin);
    if (d->seq <= have) {
        return; /* collected from another log */
    }
    if (d->seq != have + 1) {
        fuzz_fail("a log skips from seq %" PRIu64 " to %" PRIu64, have, d->seq);
    }
    void *arr = s->blocks;
    if (cvg__grow(&arr, &s->cap, s->n + 1, sizeof *s->blocks) != CVG_OK ||
        cvg__vv_set(&s->have, &d->origin, d->seq) != CVG_OK) {
        fuzz_fail("out of memory");
    }
    s->blocks = arr;
    cvg__block_writer w;
    memset(&w, 0, sizeof w);
    cvg_bytes enc;
    if (cvg__block_begin(&w, &d->origin, d->seq) != CVG_OK ||
        cvg__block_add(&w, op) != CVG_OK ||
        cvg__block_finish(&w, &enc) != CVG_OK) {
        fuzz_fail("a valid op does not encode");
    }
    cvg__buf *b = &s->blocks[s->n++];
    memset(b, 0, sizeof *b);
    if (cvg__buf_append(b, enc.data, enc.len) != CVG_OK) {
        fuzz_fail("out of memory");
    }
    cvg__block_writer_destroy(&w);

    cvg__block_reader rd;
    memset(&rd, 0, sizeof rd);
    cvg__op again;
    if (cvg__block_open(&rd, b->p, b->len) != CVG_OK ||
        cvg__block_next(&rd, &again) != CVG_OK) {
        fuzz_fail("an encoded op does not decode");
    }
    check_same_op(op, &again);
    if (cvg__block_next(&rd, &again) != CVG_DONE) {
        fuzz_fail("a block of one op holds more");
    }
    cvg__block_reader_destroy(&rd);
}

static void
collect(cvg_replica *r, op_set *s)
{
    cvg_txn *t;
    if (cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t) != CVG_OK) {
        fuzz_fail("read txn");
    }
    cvg__log_iter it;
    int rc = cvg__log_iter_open(&r->store, t->mt, 1, &it);
    cvg__op op;
    while (rc == CVG_OK && (rc = cvg__log_iter_next(&it, &op)) == CVG_OK) {
        collect_op(s, &op);
    }
    if (rc != CVG_DONE) {
        fuzz_fail("reading the log: %s", cvg_errname(rc));
    }
    cvg__log_iter_close(&it);
    cvg_txn_abort(t);
}

/* ---- Applying in an order drawn from the input --------------------------- */

static uint64_t
splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Apply every op of @p s to @p r: each time, from a random place in the
 * ops not yet applied, the first one whose dependencies are here. The
 * union of causally closed logs is causally closed, so one always is. */
static void
apply_all(cvg_replica *r, const op_set *s, uint64_t seed)
{
    size_t *left = malloc((s->n ? s->n : 1) * sizeof *left);
    size_t n = s->n;
    for (size_t i = 0; i < n; i++) {
        left[i] = i;
    }
    cvg_txn *t = NULL;
    while (n > 0) {
        if (t == NULL && cvg_txn_begin(r, 0, &t) != CVG_OK) {
            fuzz_fail("begin");
        }
        size_t start = (size_t)(splitmix(&seed) % n);
        bool applied = false;
        for (size_t j = 0; j < n && !applied; j++) {
            size_t k = (start + j) % n;
            const cvg__buf *b = &s->blocks[left[k]];
            cvg__block_reader rd;
            memset(&rd, 0, sizeof rd);
            cvg__op op;
            bool conflict;
            int rc = cvg__block_open(&rd, b->p, b->len);
            rc = rc ? rc : cvg__block_next(&rd, &op);
            rc = rc ? rc : cvg__txn_apply_remote(t, &op, &conflict);
            cvg__block_reader_destroy(&rd);
            if (rc == CVG_OK) {
                left[k] = left[--n];
                applied = true;
                continue;
            }
            if (rc != CVG_EGAP) {
                fuzz_fail("applying an op: %s (%s)", cvg_errname(rc),
                          cvg_replica_errmsg(r));
            }
        }
        if (!applied) {
            fuzz_fail("none of %zu ops applies", n);
        }
        if (splitmix(&seed) % 4 == 0) {
            commit(&t);
        }
    }
    commit(&t);
    free(left);
}

static uint64_t
hash_input(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 0x100000001b3ull;
    }
    return h;
}

static cvg_replica *
fresh(const char *name, uint64_t id_seed)
{
    fuzz_remove(name);
    return fuzz_open(name, id_seed);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init();
    fuzz_now_ms = FUZZ_EPOCH_MS;
    cvg_replica *w[N_REPLICAS];
    for (unsigned i = 0; i < N_REPLICAS; i++) {
        w[i] = fresh(writer_names[i], writer_ids[i]);
    }
    recipe in = {data, data + size};
    run_recipe(w, &in);

    op_set ops;
    memset(&ops, 0, sizeof ops);
    for (unsigned i = 0; i < N_REPLICAS; i++) {
        collect(w[i], &ops);
    }
    uint64_t seed = hash_input(data, size);
    cvg_replica *x = fresh("x", 201), *y = fresh("y", 202);
    apply_all(x, &ops, seed);
    apply_all(y, &ops, ~seed);
    if (getenv("CVG_FUZZ_VERBOSE") != NULL) {
        fprintf(stderr, "%zu ops from %zu recipe bytes\n", ops.n,
                (size_t)(in.p - data));
    }

    /* The writers converge by syncing: 0 and 1 get what both have, 1 and
     * 2 everything, then 0 too. */
    fuzz_sync(w[0], w[1]);
    fuzz_sync(w[1], w[2]);
    fuzz_sync(w[0], w[1]);

    char *want = fuzz_digest(x);
    cvg_replica *all[] = {y, w[0], w[1], w[2]};
    const char *names[] = {"a second order", "w0", "w1", "w2"};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        char *got = fuzz_digest(all[i]);
        if (strcmp(want, got) != 0) {
            fuzz_fail(
                "%s differs from one order of the same ops:\n%s\n"
                "---- but:\n%s",
                names[i], want, got);
        }
        free(got);
    }
    free(want);

    for (size_t i = 0; i < ops.n; i++) {
        cvg__buf_free(&ops.blocks[i]);
    }
    cvg__free(ops.blocks);
    cvg__vv_destroy(&ops.have);
    cvg_replica_close(x);
    cvg_replica_close(y);
    for (unsigned i = 0; i < N_REPLICAS; i++) {
        cvg_replica_close(w[i]);
    }
    return 0;
}
