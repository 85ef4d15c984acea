/*
 * Writing op blocks (the format is described in block_format.h). The writer
 * appends ops to w->out as they come and, at finish, moves them up to put
 * the header (at most 46 bytes) in front: the header's count and first time
 * are only known then. An op that continues the previous op's run only
 * bumps the run's count, which sits right after the run's head byte; a
 * counter add that repeats the run's head (same delta, time + 1) writes
 * nothing else.
 */
#include "../hash.h"
#include "block_format.h"

/* The writer's private state: the name dictionary (with an open-addressing
 * index over it), the origin dictionary, and the open run. */
typedef struct writer_dict {
    block_name *names;
    size_t n_names;
    size_t cap_names;
    cvg__buf arena;  /* the names' bytes, as the reader will hold them */
    size_t whole;    /* the entries' names in full, summed */
    uint32_t *slots; /* open addressing over names: index + 1, 0 = empty */
    size_t nslots;
    cvg__origins origins; /* index 0 is the block's origin */
    size_t head_off;      /* the last head byte written */
    unsigned head;        /* its value, without HEAD_RUN */
    uint64_t run;         /* ops that followed it in its run */
    bool repeat;          /* they repeat it (R = 1, block_format.h) */
    int64_t run_delta;    /* its delta, when it is a counter add */
    size_t prev_target;
    size_t header_len; /* of the finished block's header */
    bool begun;
    bool finished;
} writer_dict;

/* The smallest msgpack encoding of a non-negative integer, as msgpack-c
 * writes it and the reader requires. */
static size_t
uint_put(uint8_t *p, uint64_t v)
{
    if (v <= 0x7f) {
        p[0] = (uint8_t)v;
        return 1;
    }
    size_t n;
    if (v <= 0xff) {
        p[0] = 0xcc;
        n = 1;
    } else if (v <= 0xffff) {
        p[0] = 0xcd;
        n = 2;
    } else if (v <= 0xffffffffu) {
        p[0] = 0xce;
        n = 4;
    } else {
        p[0] = 0xcf;
        n = 8;
    }
    for (size_t i = 0; i < n; i++) {
        p[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    }
    return 1 + n;
}

static cvg_bytes
name_of(const writer_dict *d, const block_name *e, int k)
{
    cvg_bytes b = {d->arena.p + e->off[k], e->len[k]};
    return b;
}

static uint64_t
names_hash(const cvg_bytes *nm)
{
    /* Keyed (hash.h): the names are a peer's choice. Joined with NULs,
     * which no name holds, so ("ab", "c") and ("a", "bc") differ. */
    uint8_t buf[CVG_NAME_MAX + 3];
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        if (nm[i].len > 0) {
            memcpy(buf + n, nm[i].data, nm[i].len);
            n += nm[i].len;
        }
        buf[n++] = 0;
    }
    return cvg__hash(buf, n);
}

static bool
bytes_eq(cvg_bytes a, cvg_bytes b)
{
    /* b may be an op's name not yet checked: a NULL with a length. */
    return a.len == b.len &&
           (a.len == 0 ||
            (b.data != NULL && memcmp(a.data, b.data, a.len) == 0));
}

/* Whether entry @p e holds names @p nm. */
static bool
same_names(const writer_dict *d, const block_name *e, const cvg_bytes *nm)
{
    for (int k = 0; k < 3; k++) {
        if (!bytes_eq(name_of(d, e, k), nm[k])) {
            return false;
        }
    }
    return true;
}

/* The slot of names @p nm (hash @p h), or the empty slot where they go. */
static size_t
names_probe(const writer_dict *d, const cvg_bytes *nm, uint64_t h)
{
    size_t mask = d->nslots - 1;
    size_t i = (size_t)h & mask;
    for (; d->slots[i] != 0; i = (i + 1) & mask) {
        const block_name *e = &d->names[d->slots[i] - 1];
        if (e->hash == h && same_names(d, e, nm)) {
            break;
        }
    }
    return i;
}

/* Room for one more name: array capacity, arena bytes, and a table at most
 * half full afterwards. Done before writing an op, so that committing the
 * new entry after the op is packed cannot fail. */
static int
names_reserve(writer_dict *d, const cvg_bytes *nm)
{
    void *names = d->names;
    int rc = cvg__grow(&names, &d->cap_names, d->n_names + 1, sizeof *d->names);
    d->names = names;
    if (rc == CVG_OK) {
        rc = cvg__buf_reserve(&d->arena, nm[0].len + nm[1].len + nm[2].len);
    }
    if (rc != CVG_OK) {
        return rc;
    }
    if ((d->n_names + 1) * 2 <= d->nslots) {
        return CVG_OK;
    }
    size_t nslots = d->nslots ? d->nslots * 2 : 64;
    uint32_t *slots = cvg__calloc(nslots, sizeof *slots);
    if (slots == NULL) {
        return CVG_ENOMEM;
    }
    for (size_t k = 0; k < d->n_names; k++) {
        size_t i = (size_t)d->names[k].hash & (nslots - 1);
        while (slots[i] != 0) {
            i = (i + 1) & (nslots - 1);
        }
        slots[i] = (uint32_t)(k + 1);
    }
    cvg__free(d->slots);
    d->slots = slots;
    d->nslots = nslots;
    return CVG_OK;
}

int
cvg__block_begin(cvg__block_writer *w, const cvg_replica_id *origin,
                 uint64_t first_seq)
{
    /* @p w is zeroed or was used before: its buffers are reused. */
    writer_dict *d = w->dict;
    if (d == NULL) {
        d = cvg__calloc(1, sizeof *d);
        if (d == NULL) {
            return CVG_ENOMEM;
        }
        w->dict = d;
    }
    d->begun = false;
    d->finished = false;
    d->n_names = 0;
    d->arena.len = 0;
    d->whole = 0;
    d->run = 0;
    d->repeat = false;
    if (d->nslots > 0) {
        memset(d->slots, 0, d->nslots * sizeof *d->slots);
    }
    cvg__origins_truncate(&d->origins, 0);
    w->out.len = 0;
    w->count = 0;
    w->first_hlc = 0;
    w->prev_hlc = 0;
    w->first_seq = 0;
    memset(&w->origin, 0, sizeof w->origin);
    if (first_seq == 0) {
        return CVG_EINVAL;
    }
    uint32_t idx;
    bool added;
    int rc = cvg__origins_index(&d->origins, origin, &idx, &added);
    if (rc != CVG_OK) {
        return rc;
    }
    w->origin = *origin;
    w->first_seq = first_seq;
    d->begun = true;
    return CVG_OK;
}

/* Names: collection and key non-empty, field non-empty unless
 * @p empty_field, no NUL, at most CVG_NAME_MAX together. */
static int
check_names(cvg_bytes c, cvg_bytes k, cvg_bytes f, bool empty_field)
{
    const cvg_bytes all[3] = {c, k, f};
    for (int i = 0; i < 3; i++) {
        if (all[i].len > 0 && all[i].data == NULL) {
            return CVG_EINVAL;
        }
        if (all[i].len > CVG_NAME_MAX) {
            return CVG_ETOOBIG;
        }
        if (block_has_nul(all[i])) {
            return CVG_EINVAL;
        }
    }
    if (c.len == 0 || k.len == 0 || (f.len == 0) != empty_field) {
        return CVG_EINVAL;
    }
    if (c.len + k.len + f.len > CVG_NAME_MAX) {
        return CVG_ETOOBIG;
    }
    return CVG_OK;
}

/* Dots: seq > 0; with @p sorted, strictly increasing origins (a version
 * vector: one entry per origin). */
static int
check_dots(const cvg_dot *dots, size_t n, bool sorted)
{
    if (n > 0 && dots == NULL) {
        return CVG_EINVAL;
    }
    if (n > CVG__OBSERVED_MAX) {
        return CVG_ELIMIT;
    }
    for (size_t i = 0; i < n; i++) {
        if (dots[i].seq == 0) {
            return CVG_EINVAL;
        }
        if (sorted && i > 0 &&
            block_id_cmp(&dots[i - 1].origin, &dots[i].origin) >= 0) {
            return CVG_EINVAL;
        }
    }
    return CVG_OK;
}

/* Everything the reader would reject is refused here, so that the writer
 * never produces a block that does not decode. */
static int
check_op(const cvg__op *op, bool names_known)
{
    const cvg_op *p = &op->pub;
    bool del = p->kind == CVG_OP_RECORD_DELETE;
    if (kind_payload(p->kind) == PAYLOAD_NONE) {
        return CVG_EINVAL;
    }
    /* Names equal to the op before's passed these checks already; only
     * whether the kind wants a field is left to see. */
    int rc = names_known ? ((p->field.len == 0) != del ? CVG_EINVAL : CVG_OK)
                         : check_names(p->collection, p->key, p->field, del);
    if (rc != CVG_OK) {
        return rc;
    }
    bool has_value = p->kind != CVG_OP_COUNTER_ADD && !del;
    bool has_observed = p->kind == CVG_OP_REGISTER_SET ||
                        p->kind == CVG_OP_MVREGISTER_SET ||
                        p->kind == CVG_OP_SET_REMOVE || del;
    if (has_value) {
        rc = cvg__value_check(&p->value);
        if (rc != CVG_OK) {
            return rc;
        }
    }
    /* A payload the kind does not carry would be lost silently. */
    if (!has_observed && p->observed_count != 0) {
        return CVG_EINVAL;
    }
    if (!del && op->n_counters != 0) {
        return CVG_EINVAL;
    }
    if (p->kind == CVG_OP_COUNTER_ADD && p->delta == 0) {
        return CVG_EINVAL;
    }
    rc = check_dots(p->observed, p->observed_count, del);
    if (rc != CVG_OK || !del) {
        return rc;
    }
    if (op->n_counters > 0 && op->counters == NULL) {
        return CVG_EINVAL;
    }
    if (op->n_counters > CVG__DELETE_FIELDS_MAX) {
        return CVG_ELIMIT;
    }
    for (size_t i = 0; i < op->n_counters; i++) {
        const cvg__delete_counter *dc = &op->counters[i];
        rc = check_names(p->collection, p->key, dc->field, false);
        if (rc != CVG_OK) {
            return rc;
        }
        if (dc->n > 0 && dc->parts == NULL) {
            return CVG_EINVAL;
        }
        if (dc->n > CVG__OBSERVED_MAX) {
            return CVG_ELIMIT;
        }
        for (size_t j = 0; j < dc->n; j++) {
            if (dc->parts[j].seq == 0) {
                return CVG_EINVAL;
            }
            if (j > 0 && block_id_cmp(&dc->parts[j - 1].origin,
                                      &dc->parts[j].origin) >= 0) {
                return CVG_EINVAL;
            }
        }
    }
    return CVG_OK;
}

/* One dot: the origin reference (adding the origin inline if new to the
 * block), then the seq, relative to @p op_seq for the block's origin. */
static int
pack_dot(msgpack_packer *pk, writer_dict *d, const cvg_replica_id *origin,
         uint64_t seq, uint64_t op_seq)
{
    uint32_t idx;
    bool added;
    int rc = cvg__origins_index(&d->origins, origin, &idx, &added);
    if (rc != CVG_OK) {
        return rc;
    }
    if (d->origins.n > CVG__BLOCK_ORIGINS_MAX) {
        return CVG_ELIMIT; /* the caller rolls the origins back */
    }
    CVG__MP_TRY(msgpack_pack_uint32(pk, idx));
    if (added) {
        CVG__MP_TRY(msgpack_pack_bin_with_body(pk, origin->bytes, 16));
    }
    if (idx == 0) {
        CVG__MP_TRY(msgpack_pack_uint64(pk, block_zigzag(op_seq - seq)));
    } else {
        CVG__MP_TRY(msgpack_pack_uint64(pk, seq));
    }
    return CVG_OK;
}

/* The count and the dots; nothing at all for none (the head says NODOTS). */
static int
pack_dots(msgpack_packer *pk, writer_dict *d, const cvg_dot *dots, size_t n,
          uint64_t op_seq)
{
    if (n == 0) {
        return CVG_OK;
    }
    CVG__MP_TRY(msgpack_pack_uint64(pk, n));
    for (size_t i = 0; i < n; i++) {
        int rc = pack_dot(pk, d, &dots[i].origin, dots[i].seq, op_seq);
        if (rc != CVG_OK) {
            return rc;
        }
    }
    return CVG_OK;
}

static int
pack_payload(msgpack_packer *pk, writer_dict *d, const cvg__op *op)
{
    const cvg_op *p = &op->pub;
    uint64_t seq = p->dot.seq;
    int rc;
    switch (kind_payload(p->kind)) {
    case PAYLOAD_DELTA:
        CVG__MP_TRY(msgpack_pack_int64(pk, p->delta));
        return CVG_OK;
    case PAYLOAD_VALUE:
        return cvg__mp_pack_value(pk, &p->value);
    case PAYLOAD_VALUE_DOTS:
        rc = cvg__mp_pack_value(pk, &p->value);
        if (rc != CVG_OK) {
            return rc;
        }
        return pack_dots(pk, d, p->observed, p->observed_count, seq);
    case PAYLOAD_DELETE:
        rc = pack_dots(pk, d, p->observed, p->observed_count, seq);
        if (rc != CVG_OK) {
            return rc;
        }
        CVG__MP_TRY(msgpack_pack_uint64(pk, op->n_counters));
        for (size_t i = 0; i < op->n_counters; i++) {
            const cvg__delete_counter *dc = &op->counters[i];
            CVG__MP_TRY(
                msgpack_pack_str_with_body(pk, dc->field.data, dc->field.len));
            CVG__MP_TRY(msgpack_pack_uint64(pk, dc->n));
            for (size_t j = 0; j < dc->n; j++) {
                rc = pack_dot(pk, d, &dc->parts[j].origin, dc->parts[j].seq,
                              seq);
                if (rc != CVG_OK) {
                    return rc;
                }
                CVG__MP_TRY(msgpack_pack_int64(pk, dc->parts[j].sum));
            }
        }
        return CVG_OK;
    case PAYLOAD_NONE:
        break;
    }
    return CVG_EINVAL;
}

/* ---- New dictionary entries --------------------------------------------- */

/* How a new entry's names were written, which decides (for the reader as
 * for us) which of them share the last entry's bytes. */
typedef struct name_coding {
    bool key_only; /* TARGET_NEXT_KEY or TARGET_NEW_KEY */
    size_t p[3];   /* shared prefix lengths (TARGET_NEW_ALL) */
} name_coding;

static size_t
common_prefix(cvg_bytes a, cvg_bytes b)
{
    size_t n = a.len < b.len ? a.len : b.len, i = 0;
    while (i < n && a.data[i] == b.data[i]) {
        i++;
    }
    return i;
}

static void
last_names(const writer_dict *d, cvg_bytes *last)
{
    for (int k = 0; k < 3; k++) {
        last[k] = d->n_names > 0 ? name_of(d, &d->names[d->n_names - 1], k)
                                 : (cvg_bytes){NULL, 0};
    }
}

/* Whether name @p k of a new entry shares the last entry's bytes. The
 * reader applies the same rule. */
static bool
shares_last(const name_coding *c, const cvg_bytes *nm, const cvg_bytes *last,
            int k)
{
    if (c->key_only) {
        return k != 1;
    }
    return c->p[k] == last[k].len && c->p[k] == nm[k].len;
}

/* Arena bytes the new entry adds. */
static size_t
entry_growth(const writer_dict *d, const name_coding *c, const cvg_bytes *nm)
{
    cvg_bytes last[3];
    last_names(d, last);
    size_t g = 0;
    for (int k = 0; k < 3; k++) {
        g += shares_last(c, nm, last, k) ? 0 : nm[k].len;
    }
    return g;
}

/* Whether the entry just packed keeps the block within both bounds of
 * block_format.h. The header is not in w->out yet, so the block is
 * counted short: on the safe side. */
static bool
names_fit(const cvg__block_writer *w, const writer_dict *d,
          const name_coding *c, const cvg_bytes *nm)
{
    return block_names_fit(d->arena.len + entry_growth(d, c, nm), w->out.len) &&
           block_whole_names_fit(d->whole + nm[0].len + nm[1].len + nm[2].len,
                                 w->out.len);
}

/* Whether @p key is the key after @p last (block_key_next). */
static bool
is_next_key(cvg_bytes last, cvg_bytes key)
{
    uint8_t next[CVG_NAME_MAX + 1];
    if (key.len != last.len && key.len != last.len + 1) {
        return false;
    }
    size_t n = block_key_next(last.data, last.len, next);
    return n == key.len && n > 0 && memcmp(next, key.data, n) == 0;
}

/* How a new entry is packed against the last one. */
typedef enum target_mode {
    TARGET_PACK_BEST,  /* the key after the last one's, if it is */
    TARGET_PACK_DELTA, /* the key's difference from the last one's */
    TARGET_PACK_WHOLE  /* three names in full */
} target_mode;

/* Pack a new entry against the last one: when the collection and field are
 * the last entry's, the key as the next one (TARGET_PACK_BEST only) or as
 * its difference from the last key; otherwise (or with TARGET_PACK_WHOLE)
 * three names, prefix-coded unless whole. */
static int
pack_new_target(msgpack_packer *pk, const writer_dict *d, const cvg_bytes *nm,
                target_mode mode, name_coding *c)
{
    cvg_bytes last[3];
    last_names(d, last);
    memset(c, 0, sizeof *c);
    bool whole = mode == TARGET_PACK_WHOLE;
    c->key_only = !whole && d->n_names > 0 && bytes_eq(nm[0], last[0]) &&
                  bytes_eq(nm[2], last[2]);
    if (c->key_only && mode == TARGET_PACK_BEST &&
        is_next_key(last[1], nm[1])) {
        CVG__MP_TRY(msgpack_pack_uint8(pk, (uint8_t)TARGET_NEXT_KEY));
        return CVG_OK;
    }
    CVG__MP_TRY(msgpack_pack_uint8(
        pk, (uint8_t)(c->key_only ? TARGET_NEW_KEY : TARGET_NEW_ALL)));
    for (int k = 0; k < 3; k++) {
        if (c->key_only && k != 1) {
            continue;
        }
        size_t p = whole ? 0 : common_prefix(nm[k], last[k]);
        c->p[k] = p;
        CVG__MP_TRY(msgpack_pack_uint64(pk, p));
        /* An empty name (a record delete's field) may have no data. */
        const uint8_t *rest = nm[k].len > p ? nm[k].data + p : NULL;
        CVG__MP_TRY(msgpack_pack_str(pk, nm[k].len - p));
        if (rest != NULL) {
            CVG__MP_TRY(msgpack_pack_str_body(pk, rest, nm[k].len - p));
        }
    }
    return CVG_OK;
}

/* Add the entry written with @p c; room was reserved (names_reserve). */
static void
add_name(writer_dict *d, const cvg_bytes *nm, uint64_t h, size_t slot,
         const name_coding *c)
{
    cvg_bytes last[3];
    last_names(d, last);
    const block_name *prev = d->n_names > 0 ? &d->names[d->n_names - 1] : NULL;
    block_name *e = &d->names[d->n_names];
    for (int k = 0; k < 3; k++) {
        if (shares_last(c, nm, last, k)) {
            e->off[k] = prev != NULL ? prev->off[k] : 0;
        } else {
            e->off[k] = d->arena.len;
            if (nm[k].len > 0) {
                memcpy(d->arena.p + d->arena.len, nm[k].data, nm[k].len);
                d->arena.len += nm[k].len;
            }
        }
        e->len[k] = nm[k].len;
    }
    e->hash = h;
    d->whole += nm[0].len + nm[1].len + nm[2].len;
    d->slots[slot] = (uint32_t)(d->n_names + 1);
    d->n_names++;
}

/* ---- Ops ----------------------------------------------------------------- */

/* Pack the op's head and target (unless it continues the run), its time
 * and payload. */
static int
pack_op(cvg__block_writer *w, writer_dict *d, const cvg__op *op,
        const cvg_bytes *nm, size_t target, bool is_new, unsigned head,
        bool extend, name_coding *coding)
{
    const cvg_op *p = &op->pub;
    msgpack_packer pk;
    cvg__mp_packer_init(&pk, &w->out);
    if (!extend) {
        CVG__MP_TRY(msgpack_pack_uint8(&pk, (uint8_t)head));
        if (is_new) {
            size_t at = w->out.len;
            int rc = CVG_OK;
            /* Each mode writes more of the names than the one before; the
             * first whose names the reader allows for the block's size
             * (names_fit) is the one. Whole names always fit. */
            for (target_mode mode = TARGET_PACK_BEST;; mode++) {
                w->out.len = at;
                rc = pack_new_target(&pk, d, nm, mode, coding);
                if (rc != CVG_OK || names_fit(w, d, coding, nm)) {
                    break;
                }
                if (mode == TARGET_PACK_WHOLE) {
                    rc = CVG_ELIMIT;
                    break;
                }
            }
            if (rc != CVG_OK) {
                return rc;
            }
        } else if (!(head & HEAD_SAME)) {
            CVG__MP_TRY(msgpack_pack_uint64(&pk, target + TARGET_OLD_BASE));
        }
    }
    if (w->count > 0 && !(head & HEAD_TICK)) {
        CVG__MP_TRY(
            msgpack_pack_uint64(&pk, block_zigzag(p->hlc - w->prev_hlc)));
    }
    return pack_payload(&pk, d, op);
}

/* The op after the run's head joined the run (repeating it, for the
 * first op after the head, when @p repeat): set HEAD_RUN or bump the count
 * (2c + R) after the head byte, moving what follows if the count grew a
 * byte. The caller reserved 9 bytes. */
static void
bump_run(cvg__block_writer *w, writer_dict *d, bool repeat)
{
    uint8_t old_enc[9], new_enc[9];
    size_t at = d->head_off + 1;
    if (d->run == 0) {
        w->out.p[d->head_off] |= HEAD_RUN;
        d->repeat = repeat;
    }
    uint64_t r = d->repeat ? 1 : 0;
    size_t old_len = d->run > 0 ? uint_put(old_enc, 2 * d->run + r) : 0;
    size_t new_len = uint_put(new_enc, 2 * (d->run + 1) + r);
    if (new_len != old_len) {
        memmove(w->out.p + at + new_len, w->out.p + at + old_len,
                w->out.len - at - old_len);
        w->out.len += new_len - old_len;
    }
    memcpy(w->out.p + at, new_enc, new_len);
    d->run++;
}

int
cvg__block_add(cvg__block_writer *w, const cvg__op *op)
{
    writer_dict *d = w->dict;
    if (d == NULL || !d->begun || d->finished) {
        return CVG_EMISUSE;
    }
    const cvg_op *p = &op->pub;
    const cvg_bytes nm[3] = {p->collection, p->key, p->field};
    /* Runs of ops on one field are the common case (a thousand increments
     * of one counter): the names of the op before are compared first, and
     * only other names are checked, hashed and looked up. */
    bool same_prev =
        w->count > 0 && same_names(d, &d->names[d->prev_target], nm);
    int rc = check_op(op, same_prev);
    if (rc != CVG_OK) {
        return rc;
    }
    if (block_id_cmp(&p->dot.origin, &w->origin) != 0 ||
        w->count > UINT64_MAX - w->first_seq ||
        p->dot.seq != w->first_seq + w->count) {
        return CVG_EINVAL;
    }
    if (w->count >= CVG__BLOCK_OPS_MAX) {
        return CVG_ELIMIT;
    }
    uint64_t h = 0;
    size_t slot = 0, target;
    bool is_new = false;
    if (same_prev) {
        target = d->prev_target;
    } else {
        h = names_hash(nm);
        is_new = d->nslots == 0 || d->slots[slot = names_probe(d, nm, h)] == 0;
        if (is_new) {
            if (d->n_names >= CVG__DICT_MAX) {
                return CVG_ELIMIT; /* full: finish this block, start another */
            }
            size_t nslots = d->nslots;
            rc = names_reserve(d, nm);
            if (rc != CVG_OK) {
                return rc;
            }
            if (d->nslots != nslots) {
                slot = names_probe(d, nm, h); /* the table grew */
            }
        }
        target = is_new ? d->n_names : d->slots[slot] - 1;
    }

    unsigned head = (unsigned)p->kind;
    if (w->count > 0 && !is_new && target == d->prev_target) {
        head |= HEAD_SAME;
    }
    if (w->count > 0 && p->hlc == w->prev_hlc + 1) {
        head |= HEAD_TICK;
    }
    if (kind_has_dots(p->kind) && p->observed_count == 0) {
        head |= HEAD_NODOTS;
    }
    bool extend =
        (head & HEAD_SAME) && (head & ~HEAD_SAME) == (d->head & ~HEAD_SAME);
    /* A counter add with the delta of its run's head, a tick after the op
     * before, repeats the head and costs nothing, while the block stays
     * within OPS_PER_BYTE (else it begins a run of its own, whose byte
     * keeps the block within it). A run of repeats takes nothing else. */
    bool repeat = extend && p->kind == CVG_OP_COUNTER_ADD &&
                  (head & HEAD_TICK) && p->delta == d->run_delta &&
                  (d->run == 0 || d->repeat);
    if (repeat && w->count + 1 > (uint64_t)w->out.len * OPS_PER_BYTE) {
        repeat = extend = false;
    }
    if (extend && !repeat && d->run > 0 && d->repeat) {
        extend = false;
    }

    /* On any failure below, forget what this op wrote and added, so the
     * writer is as before the call (and the op may go in the next block). */
    size_t mark_len = w->out.len;
    size_t mark_origins = d->origins.n;
    name_coding coding;
    rc = repeat ? CVG_OK
                : pack_op(w, d, op, nm, target, is_new, head, extend, &coding);
    if (rc == CVG_OK && extend) {
        rc = cvg__buf_reserve(&w->out, 9);
    }
    if (rc != CVG_OK) {
        w->out.len = mark_len;
        cvg__origins_truncate(&d->origins, mark_origins);
        return rc;
    }
    if (extend) {
        bump_run(w, d, repeat);
    } else {
        d->head_off = mark_len;
        d->head = head;
        d->run = 0;
        d->repeat = false;
        d->run_delta = p->delta;
    }
    if (is_new) {
        add_name(d, nm, h, slot, &coding);
    }
    d->prev_target = target;
    if (w->count == 0) {
        w->first_hlc = p->hlc;
    }
    w->prev_hlc = p->hlc;
    w->count++;
    return CVG_OK;
}

/* A fixed buffer for the header, so finishing allocates at most once. */
typedef struct head_buf {
    uint8_t b[64];
    size_t len;
} head_buf;

static int
head_write(void *data, const char *buf, size_t len)
{
    head_buf *h = data;
    if (len > sizeof h->b - h->len) {
        return -1;
    }
    memcpy(h->b + h->len, buf, len);
    h->len += len;
    return 0;
}

int
cvg__block_finish(cvg__block_writer *w, cvg_bytes *bytes)
{
    bytes->data = NULL;
    bytes->len = 0;
    writer_dict *d = w->dict;
    if (d == NULL || !d->begun) {
        return CVG_EMISUSE;
    }
    if (!d->finished) {
        head_buf h = {{0}, 0};
        msgpack_packer pk;
        msgpack_packer_init(&pk, &h, head_write);
        /* Cannot fail: 1 + 18 + 3 * 9 bytes fit the buffer. */
        if (msgpack_pack_uint8(&pk, BLOCK_VERSION) != 0 ||
            msgpack_pack_bin_with_body(&pk, w->origin.bytes, 16) != 0 ||
            msgpack_pack_uint64(&pk, w->first_seq) != 0 ||
            msgpack_pack_uint64(&pk, w->count) != 0 ||
            msgpack_pack_uint64(&pk, w->first_hlc) != 0) {
            return CVG_EINVAL;
        }
        int rc = cvg__buf_reserve(&w->out, h.len);
        if (rc != CVG_OK) {
            return rc;
        }
        if (w->out.len > 0) {
            memmove(w->out.p + h.len, w->out.p, w->out.len);
        }
        memcpy(w->out.p, h.b, h.len);
        w->out.len += h.len;
        d->header_len = h.len;
        d->finished = true;
    }
    bytes->data = w->out.p;
    bytes->len = w->out.len;
    return CVG_OK;
}

int
cvg__block_reopen(cvg__block_writer *w)
{
    writer_dict *d = w->dict;
    if (d == NULL || !d->begun || !d->finished) {
        return CVG_EMISUSE;
    }
    /* Everything but the header is as the last add left it: the open
     * run's offsets count from the first op, as before finishing. */
    memmove(w->out.p, w->out.p + d->header_len, w->out.len - d->header_len);
    w->out.len -= d->header_len;
    d->finished = false;
    return CVG_OK;
}

void
cvg__block_writer_destroy(cvg__block_writer *w)
{
    if (w == NULL) {
        return;
    }
    writer_dict *d = w->dict;
    if (d != NULL) {
        cvg__free(d->names);
        cvg__buf_free(&d->arena);
        cvg__free(d->slots);
        cvg__origins_destroy(&d->origins);
        cvg__free(d);
    }
    cvg__buf_free(&w->out);
    memset(w, 0, sizeof *w);
}
