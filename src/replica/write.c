/*
 * The write calls of the public API. Each validates its arguments and the
 * field's type before anything changes, stamps a new op with the next dot
 * and a clock tick, applies it through the shared pipeline and adds it to the
 * transaction's log block. A validation error leaves the transaction as it
 * was; a failure after the state changed (out of memory) makes the
 * transaction fail as a whole, so no half-applied op can be committed.
 */
#include "replica_int.h"

static int
begin_write(cvg_txn *t)
{
    if (t == NULL) {
        return CVG_EINVAL;
    }
    if (!t->write) {
        return cvg__replica_fail(t->r, CVG_EREADONLY,
                                 "write in a read-only transaction");
    }
    if (t->failed) {
        return cvg__replica_fail(t->r, t->failed,
                                 "the transaction failed earlier (%s); "
                                 "abort it",
                                 cvg_strerror(t->failed));
    }
    if (t->n_ops >= CVG_TXN_OPS_MAX) {
        return cvg__replica_fail(t->r, CVG_ELIMIT,
                                 "more than %u ops in one transaction",
                                 CVG_TXN_OPS_MAX);
    }
    return CVG_OK;
}

static cvg_bytes
str_bytes(const char *s)
{
    cvg_bytes b = {(const uint8_t *)s, s ? strlen(s) : 0};
    return b;
}

/* Validate @p key and build its prefix in t->kbuf; *plen gets its length. */
int
cvg__key_prefix(cvg_txn *t, const cvg_key *key, bool with_field, uint32_t *plen)
{
    if (key == NULL || key->collection == NULL || key->key == NULL ||
        (with_field && key->field == NULL)) {
        return cvg__replica_fail(t->r, CVG_EINVAL, "NULL key or name");
    }
    cvg_bytes *nm = t->names;
    nm[0] = str_bytes(key->collection);
    nm[1] = str_bytes(key->key);
    nm[2] = with_field ? str_bytes(key->field) : str_bytes(NULL);
    if (with_field && nm[2].len == 0) {
        return cvg__replica_fail(t->r, CVG_EINVAL, "empty field name");
    }
    int rc = cvg__txn_prefix_cstr(t, nm[0], nm[1], nm[2]);
    if (rc == CVG_EINVAL) {
        return cvg__replica_fail(t->r, rc, "empty collection or key name");
    }
    if (rc == CVG_ETOOBIG) {
        return cvg__replica_fail(t->r, rc,
                                 "collection, key and field are longer than "
                                 "%d bytes together",
                                 CVG_NAME_MAX);
    }
    *plen = (uint32_t)t->kbuf.len;
    return rc;
}

/* CVG_ETYPE if the field holds a live value of another type than @p type. */
static int
check_type(cvg_txn *t, const cvg_key *key, uint32_t plen, cvg_type type)
{
    bool clash;
    int rc = cvg__txn_type_clash(t, plen, (uint8_t)type, &clash);
    if (rc != CVG_OK) {
        return cvg__replica_fail(t->r, rc, "cannot read field '%s'",
                                 key->field);
    }
    if (clash) {
        return cvg__replica_fail(t->r, CVG_ETYPE,
                                 "%s/%s/%s holds another CRDT type",
                                 key->collection, key->key, key->field);
    }
    return CVG_OK;
}

static int
check_value(cvg_txn *t, const cvg_value *v)
{
    if (v == NULL) {
        return cvg__replica_fail(t->r, CVG_EINVAL, "NULL value");
    }
    int rc = cvg__value_check(v);
    if (rc == CVG_ETOOBIG) {
        return cvg__replica_fail(t->r, rc, "value longer than %u bytes",
                                 CVG_VALUE_MAX);
    }
    if (rc != CVG_OK) {
        return cvg__replica_fail(t->r, rc, "malformed value");
    }
    return CVG_OK;
}

/* Fill in a local op's dot, clock and names: those of the key that
 * cvg__key_prefix() checked last, with the lengths it measured. */
static int
stamp(cvg_txn *t, cvg_op_kind kind, cvg__op *op)
{
    cvg__op_clear(op);
    cvg_replica *r = t->r;
    uint64_t clock = t->clock, hlc;
    int rc = cvg__hlc_tick(&clock, r->opts.clock(r->opts.clock_ctx),
                           r->opts.max_clock_ahead_ms, &hlc);
    if (rc != CVG_OK) {
        return cvg__replica_fail(r, rc,
                                 "the hybrid logical clock is "
                                 "exhausted or the wall clock is "
                                 "out of range");
    }
    op->pub.kind = kind;
    op->pub.hlc = hlc;
    op->pub.dot.origin = r->id;
    op->pub.dot.seq = cvg__vv_get(&t->vv, &r->id) + 1;
    op->pub.collection = t->names[0];
    op->pub.key = t->names[1];
    op->pub.field = t->names[2];
    return CVG_OK;
}

/* Apply and log a stamped op, to entry @p e found by the caller (NULL: a
 * record delete, which targets every entry of a record). */
static int
submit(cvg_txn *t, cvg__op *op, cvg__entry *e, cvg_dot *dot_out)
{
    bool conflict;
    int rc = e != NULL ? cvg__apply_entry(t, e, op, &conflict)
                       : cvg__apply(t, op, &conflict);
    if (rc != CVG_OK) {
        return cvg__replica_fail(t->r, rc, "cannot apply the op: %s",
                                 cvg_strerror(rc));
    }
    op->pub.lsn = t->next_lsn;
    rc = cvg__txn_log(t, op);
    if (rc == CVG_OK) {
        /* Before the version vector moves: a record delete's observed
         * dots may be that vector itself. */
        rc = cvg__txn_history_add(t, op);
    }
    if (rc == CVG_OK) {
        rc = cvg__txn_vv_raise(t, &op->pub.dot.origin, op->pub.dot.seq);
    }
    if (rc != CVG_OK) {
        /* The state changed but the op is not logged: never commit that. */
        t->failed = rc;
        return cvg__replica_fail(t->r, rc, "cannot log the op: %s",
                                 cvg_strerror(rc));
    }
    t->clock = op->pub.hlc;
    if (dot_out != NULL) {
        *dot_out = op->pub.dot;
    }
    return CVG_OK;
}

static void
zero_dot(cvg_dot *d)
{
    if (d != NULL) {
        memset(d, 0, sizeof *d);
    }
}

int
cvg_counter_add(cvg_txn *t, const cvg_key *key, int64_t delta, cvg_dot *dot_out)
{
    zero_dot(dot_out);
    uint32_t plen;
    int rc = begin_write(t);
    if (rc == CVG_OK && delta == 0) {
        rc = cvg__replica_fail(t->r, CVG_EINVAL, "a delta of 0");
    }
    if (rc == CVG_OK) {
        rc = cvg__key_prefix(t, key, true, &plen);
    }
    if (rc == CVG_OK) {
        rc = check_type(t, key, plen, CVG_TYPE_COUNTER);
    }
    cvg__entry *e = NULL;
    if (rc == CVG_OK) {
        t->kbuf.p[plen] = CVG_TYPE_COUNTER;
        rc = cvg__txn_entry(t, plen + 1, plen, CVG_TYPE_COUNTER, &e);
    }
    /* Both the value and this replica's own part must stay in int64: a
     * part that never leaves the range is what keeps every replica's exact
     * value right (crdt/counter.c). */
    if (rc == CVG_OK && e->present &&
        cvg__counter_check_add(&e->u.c, &t->r->id, delta) != CVG_OK) {
        rc = cvg__replica_fail(t->r, CVG_EOVERFLOW,
                               "counter would leave the int64 range");
    }
    cvg__op op;
    if (rc == CVG_OK) {
        rc = stamp(t, CVG_OP_COUNTER_ADD, &op);
    }
    if (rc == CVG_OK) {
        op.pub.delta = delta;
        rc = submit(t, &op, e, dot_out);
    }
    return rc;
}

/* What every value write checks first: the transaction, the value, the
 * names and the field's type. The field prefix is left in t->kbuf. */
static int
value_write_begin(cvg_txn *t, const cvg_key *key, const cvg_value *value,
                  cvg_type type, uint32_t *plen)
{
    int rc = begin_write(t);
    if (rc == CVG_OK) {
        rc = check_value(t, value);
    }
    if (rc == CVG_OK) {
        rc = cvg__key_prefix(t, key, true, plen);
    }
    if (rc == CVG_OK) {
        rc = check_type(t, key, *plen, type);
    }
    return rc;
}

/* Stamp and submit a value op that replaces the @p nseen dots in @p seen
 * (an allocated copy, freed here: applying the op changes what they were
 * copied from). */
static int
value_write_end(cvg_txn *t, cvg__entry *e, cvg_op_kind kind,
                const cvg_value *value, cvg_dot *seen, size_t nseen,
                cvg_dot *dot_out)
{
    cvg__op op;
    int rc = stamp(t, kind, &op);
    if (rc == CVG_OK) {
        op.pub.value = *value;
        op.pub.observed = seen;
        op.pub.observed_count = nseen;
        rc = submit(t, &op, e, dot_out);
    }
    cvg__free(seen);
    return rc;
}

/* A copy of @p n dots, or NULL (n == 0, or out of memory: *rc says). */
static cvg_dot *
copy_dots(const void *src, size_t n, size_t stride, int *rc)
{
    if (n == 0) {
        return NULL;
    }
    cvg_dot *d = cvg__alloc(n * sizeof *d);
    if (d == NULL) {
        *rc = CVG_ENOMEM;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(&d[i], (const uint8_t *)src + i * stride, sizeof *d);
    }
    return d;
}

/* A register write replaces the siblings this replica has seen. */
static int
reg_write(cvg_txn *t, const cvg_key *key, const cvg_value *value, cvg_type type,
          cvg_dot *dot_out)
{
    zero_dot(dot_out);
    uint32_t plen;
    int rc = value_write_begin(t, key, value, type, &plen);
    cvg__entry *e = NULL;
    if (rc == CVG_OK) {
        t->kbuf.p[plen] = (uint8_t)type;
        rc = cvg__txn_entry(t, plen + 1, plen, (uint8_t)type, &e);
    }
    if (rc != CVG_OK) {
        return rc;
    }
    /* A sibling starts with its dot, so the siblings are a strided array
     * of dots. */
    size_t nseen = e->present ? e->u.r.n : 0;
    cvg_dot *seen = copy_dots(e->u.r.s, nseen, sizeof e->u.r.s[0], &rc);
    if (rc != CVG_OK) {
        return rc;
    }
    return value_write_end(
        t, e,
        type == CVG_TYPE_REGISTER ? CVG_OP_REGISTER_SET : CVG_OP_MVREGISTER_SET,
        value, seen, nseen, dot_out);
}

int
cvg_register_set(cvg_txn *t, const cvg_key *key, const cvg_value *value,
                 cvg_dot *dot_out)
{
    return reg_write(t, key, value, CVG_TYPE_REGISTER, dot_out);
}

int
cvg_mvregister_set(cvg_txn *t, const cvg_key *key, const cvg_value *value,
                   cvg_dot *dot_out)
{
    return reg_write(t, key, value, CVG_TYPE_MVREGISTER, dot_out);
}

/* Set add and remove. A remove carries the element's tags as this replica
 * sees them: only those are removed anywhere. */
static int
set_write(cvg_txn *t, const cvg_key *key, const cvg_value *elem, bool add,
          cvg_dot *dot_out)
{
    zero_dot(dot_out);
    uint32_t plen;
    int rc = value_write_begin(t, key, elem, CVG_TYPE_SET, &plen);
    cvg_dot *seen = NULL;
    size_t nseen = 0;
    cvg__entry *e = NULL;
    /* The element's entry, by its hash: computed once, for the check and
     * the apply alike. */
    if (rc == CVG_OK) {
        uint8_t h[16];
        rc = cvg__elem_hash(t, elem, h);
        if (rc == CVG_OK) {
            t->kbuf.p[plen] = CVG_TYPE_SET;
            memcpy(t->kbuf.p + plen + 1, h, 16);
            rc = cvg__txn_entry(t, plen + 17, plen, CVG_TYPE_SET, &e);
        }
    }
    if (rc == CVG_OK && !add) {
        if (!e->present || e->u.s.tags.n == 0) {
            rc = cvg__replica_fail(t->r, CVG_ENOTFOUND,
                                   "element not in the set");
        }
        if (rc == CVG_OK) {
            nseen = e->u.s.tags.n;
            seen = copy_dots(e->u.s.tags.d, nseen, sizeof *seen, &rc);
        }
    }
    if (rc != CVG_OK) {
        return rc;
    }
    return value_write_end(t, e, add ? CVG_OP_SET_ADD : CVG_OP_SET_REMOVE, elem,
                           seen, nseen, dot_out);
}

int
cvg_set_add(cvg_txn *t, const cvg_key *key, const cvg_value *elem,
            cvg_dot *dot_out)
{
    return set_write(t, key, elem, true, dot_out);
}

int
cvg_set_remove(cvg_txn *t, const cvg_key *key, const cvg_value *elem,
               cvg_dot *dot_out)
{
    return set_write(t, key, elem, false, dot_out);
}

/* A record delete carries the deleter's version vector (what it had seen of
 * every register and set) and, per counter field, its counter parts. */
int
cvg_record_delete(cvg_txn *t, const cvg_key *key, cvg_dot *dot_out)
{
    zero_dot(dot_out);
    uint32_t rplen;
    int rc = begin_write(t);
    if (rc == CVG_OK) {
        rc = cvg__key_prefix(t, key, false, &rplen);
    }
    cvg__entry **es = NULL;
    size_t n = 0;
    if (rc == CVG_OK) {
        rc = cvg__record_entries(t, rplen, &es, &n);
    }
    cvg__delete_counter *dcs = NULL;
    size_t ndc = 0;
    bool live = false;
    for (size_t i = 0; rc == CVG_OK && i < n; i++) {
        live = live || cvg__entry_live(es[i]);
    }
    if (rc == CVG_OK && !live) {
        rc = cvg__replica_fail(t->r, CVG_ENOTFOUND, "no record %s/%s",
                               key->collection, key->key);
    }
    if (rc == CVG_OK) {
        dcs = cvg__calloc(n, sizeof *dcs);
        rc = dcs ? CVG_OK : CVG_ENOMEM;
    }
    /* Copy the parts: applying the delete changes the entries they are
     * read from. */
    for (size_t i = 0; rc == CVG_OK && i < n; i++) {
        cvg__entry *e = es[i];
        if (e->type != CVG_TYPE_COUNTER || !e->present || e->u.c.n == 0) {
            continue;
        }
        cvg__counter_part *parts = cvg__alloc(e->u.c.n * sizeof *parts);
        if (parts == NULL) {
            rc = CVG_ENOMEM;
            break;
        }
        memcpy(parts, e->u.c.parts, e->u.c.n * sizeof *parts);
        dcs[ndc].field.data = e->key + rplen;
        dcs[ndc].field.len = e->plen - rplen - 1;
        dcs[ndc].parts = parts;
        dcs[ndc].n = e->u.c.n;
        ndc++;
    }
    cvg__op op;
    if (rc == CVG_OK) {
        rc = stamp(t, CVG_OP_RECORD_DELETE, &op);
    }
    if (rc == CVG_OK) {
        op.pub.observed = t->vv.e;
        op.pub.observed_count = t->vv.n;
        op.counters = dcs;
        op.n_counters = ndc;
        rc = submit(t, &op, NULL, dot_out);
    }
    for (size_t i = 0; i < ndc; i++) {
        cvg__free((void *)dcs[i].parts);
    }
    cvg__free(dcs);
    cvg__free(es);
    return rc;
}
