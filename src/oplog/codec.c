/*
 * Op blocks: a run of ops of one origin with consecutive seqs, as one flat
 * sequence of msgpack items (no nested arrays or maps, so decoding depth is
 * bounded by construction). The writer packs with msgpack-c; the reader is
 * our own bounded parser (mpack.c) that validates every byte it accepts.
 *
 * Layout, each line a msgpack item (or a run of them):
 *
 *   header   version (1)  origin (bin 16)  first_seq  count  hlc of op 1
 *   op       kind  target  [hlc delta]  payload...
 *
 *   target   index into the block's name dictionary; the index equal to the
 *            dictionary's size adds an entry, whose collection, key and field
 *            (str, str, str) follow inline.
 *   hlc      absent for the first op (its time is in the header); for the
 *            others the zigzag-encoded wrapping difference from the previous
 *            op's time (small and positive for honest local ops).
 *   payload  counter add       delta (int)
 *            register set,     value, n, n dots
 *            mvregister set
 *            set add           value
 *            set remove        value, n, n dots
 *            record delete     n, n dots (the deleter's version vector,
 *                              strictly sorted by origin id), m, then m
 *                              times: field (str), k, k times: dot, sum (int)
 *   dot      origin reference, seq. The reference indexes the block's origin
 *            dictionary, where 0 is the block's own origin; the index equal
 *            to the dictionary's size adds the origin (bin 16) inline. A dot
 *            of the block's own origin stores zigzag(op seq - seq), usually
 *            one byte (the dot just before this op); others store seq.
 *
 * The writer appends ops to w->out as they come and, at finish, moves them
 * up to put the header (at most 46 bytes) in front: the header's count and
 * first time are only known then.
 */
#include "mpack.h"

#define BLOCK_VERSION 1u

/* The smallest encoding of an op: kind, target, one-byte payload. Used to
 * reject a header count the bytes cannot hold before reading any op. */
#define OP_MIN_BYTES 3u

/* ---- Shared helpers ------------------------------------------------------ */

static uint64_t
zigzag(uint64_t d)
{
    /* d holds a two's complement int64; the sign goes to bit 0. */
    return (d << 1) ^ (0 - (d >> 63));
}

static uint64_t
unzigzag(uint64_t z)
{
    return (z >> 1) ^ (0 - (z & 1));
}

static bool
has_nul(cvg_bytes b)
{
    return b.len > 0 && memchr(b.data, 0, b.len) != NULL;
}

static int
id_cmp(const cvg_replica_id *a, const cvg_replica_id *b)
{
    return memcmp(a->bytes, b->bytes, 16);
}

/* ---- Writer -------------------------------------------------------------- */

/* A name dictionary entry: where its three strings lie in w->out. Offsets,
 * not pointers, because w->out moves as it grows. */
typedef struct name_ref {
    size_t off[3];
    size_t len[3];
    uint64_t hash;
} name_ref;

typedef struct writer_dict {
    name_ref *names;
    size_t n_names;
    size_t cap_names;
    uint32_t *slots; /* open addressing over names: index + 1, 0 = empty */
    size_t nslots;
    cvg__origins origins; /* index 0 is the block's origin */
    bool begun;
    bool finished;
} writer_dict;

static uint64_t
names_hash(const cvg_bytes *nm)
{
    /* FNV-1a over the three names, each preceded by its length so that
     * ("ab", "c") and ("a", "bc") differ. */
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < 3; i++) {
        uint64_t n = nm[i].len;
        for (int b = 0; b < 8; b++) {
            h = (h ^ ((n >> (8 * b)) & 0xff)) * 0x100000001b3ull;
        }
        for (size_t j = 0; j < nm[i].len; j++) {
            h = (h ^ nm[i].data[j]) * 0x100000001b3ull;
        }
    }
    return h;
}

/* The slot of names @p nm (hash @p h), or the empty slot where they go. */
static size_t
names_probe(const cvg__block_writer *w, const writer_dict *d,
            const cvg_bytes *nm, uint64_t h)
{
    size_t mask = d->nslots - 1;
    size_t i = (size_t)h & mask;
    for (; d->slots[i] != 0; i = (i + 1) & mask) {
        const name_ref *e = &d->names[d->slots[i] - 1];
        if (e->hash != h) {
            continue;
        }
        bool same = true;
        for (int k = 0; k < 3 && same; k++) {
            same = e->len[k] == nm[k].len &&
                   (nm[k].len == 0 ||
                    memcmp(w->out.p + e->off[k], nm[k].data, nm[k].len) == 0);
        }
        if (same) {
            break;
        }
    }
    return i;
}

/* Room for one more name: array capacity and a table at most half full
 * afterwards. Done before writing an op, so that committing the new entry
 * after the op is packed cannot fail. */
static int
names_reserve(writer_dict *d)
{
    void *names = d->names;
    int rc = cvg__grow(&names, &d->cap_names, d->n_names + 1, sizeof *d->names);
    d->names = names;
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
        if (has_nul(all[i])) {
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
            id_cmp(&dots[i - 1].origin, &dots[i].origin) >= 0) {
            return CVG_EINVAL;
        }
    }
    return CVG_OK;
}

/* Everything the reader would reject is refused here, so that the writer
 * never produces a block that does not decode. */
static int
check_op(const cvg__op *op)
{
    const cvg_op *p = &op->pub;
    bool del = p->kind == CVG_OP_RECORD_DELETE;
    if (p->kind < CVG_OP_COUNTER_ADD || p->kind > CVG_OP_RECORD_DELETE) {
        return CVG_EINVAL;
    }
    int rc = check_names(p->collection, p->key, p->field, del);
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
    if (op->n_counters > CVG__DICT_MAX) {
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
            if (j > 0 &&
                id_cmp(&dc->parts[j - 1].origin, &dc->parts[j].origin) >= 0) {
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
    if (d->origins.n > CVG__DICT_MAX) {
        return CVG_ELIMIT; /* the caller rolls the origins back */
    }
    CVG__MP_TRY(msgpack_pack_uint32(pk, idx));
    if (added) {
        CVG__MP_TRY(msgpack_pack_bin_with_body(pk, origin->bytes, 16));
    }
    if (idx == 0) {
        CVG__MP_TRY(msgpack_pack_uint64(pk, zigzag(op_seq - seq)));
    } else {
        CVG__MP_TRY(msgpack_pack_uint64(pk, seq));
    }
    return CVG_OK;
}

static int
pack_dots(msgpack_packer *pk, writer_dict *d, const cvg_dot *dots, size_t n,
          uint64_t op_seq)
{
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
pack_payload(msgpack_packer *pk, writer_dict *d, const cvg__op *op,
             uint64_t seq)
{
    const cvg_op *p = &op->pub;
    int rc;
    switch (p->kind) {
        case CVG_OP_COUNTER_ADD:
            CVG__MP_TRY(msgpack_pack_int64(pk, p->delta));
            return CVG_OK;
        case CVG_OP_SET_ADD:
            return cvg__mp_pack_value(pk, &p->value);
        case CVG_OP_REGISTER_SET:
        case CVG_OP_MVREGISTER_SET:
        case CVG_OP_SET_REMOVE:
            rc = cvg__mp_pack_value(pk, &p->value);
            if (rc != CVG_OK) {
                return rc;
            }
            return pack_dots(pk, d, p->observed, p->observed_count, seq);
        case CVG_OP_RECORD_DELETE:
            rc = pack_dots(pk, d, p->observed, p->observed_count, seq);
            if (rc != CVG_OK) {
                return rc;
            }
            CVG__MP_TRY(msgpack_pack_uint64(pk, op->n_counters));
            for (size_t i = 0; i < op->n_counters; i++) {
                const cvg__delete_counter *dc = &op->counters[i];
                CVG__MP_TRY(msgpack_pack_str_with_body(pk, dc->field.data,
                                                       dc->field.len));
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
    }
    return CVG_EINVAL;
}

/* Pack the op; *new_name tells whether the names went in inline. */
static int
pack_op(cvg__block_writer *w, writer_dict *d, const cvg__op *op,
        const cvg_bytes *nm, size_t slot, bool *new_name)
{
    const cvg_op *p = &op->pub;
    msgpack_packer pk;
    cvg__mp_packer_init(&pk, &w->out);
    CVG__MP_TRY(msgpack_pack_uint8(&pk, (uint8_t)p->kind));
    *new_name = d->slots[slot] == 0;
    if (*new_name) {
        CVG__MP_TRY(msgpack_pack_uint32(&pk, (uint32_t)d->n_names));
        name_ref *e = &d->names[d->n_names];
        for (int k = 0; k < 3; k++) {
            CVG__MP_TRY(msgpack_pack_str(&pk, nm[k].len));
            e->off[k] = w->out.len;
            e->len[k] = nm[k].len;
            CVG__MP_TRY(msgpack_pack_str_body(&pk, nm[k].data, nm[k].len));
        }
    } else {
        CVG__MP_TRY(msgpack_pack_uint32(&pk, d->slots[slot] - 1));
    }
    if (w->count > 0) {
        CVG__MP_TRY(msgpack_pack_uint64(&pk, zigzag(p->hlc - w->prev_hlc)));
    }
    return pack_payload(&pk, d, op, p->dot.seq);
}

int
cvg__block_add(cvg__block_writer *w, const cvg__op *op)
{
    writer_dict *d = w->dict;
    if (d == NULL || !d->begun || d->finished) {
        return CVG_EMISUSE;
    }
    int rc = check_op(op);
    if (rc != CVG_OK) {
        return rc;
    }
    if (id_cmp(&op->pub.dot.origin, &w->origin) != 0 ||
        w->count > UINT64_MAX - w->first_seq ||
        op->pub.dot.seq != w->first_seq + w->count) {
        return CVG_EINVAL;
    }
    if (w->count >= CVG__BLOCK_OPS_MAX) {
        return CVG_ELIMIT;
    }
    const cvg_bytes nm[3] = {op->pub.collection, op->pub.key, op->pub.field};
    uint64_t h = names_hash(nm);
    if (d->nslots == 0 || d->slots[names_probe(w, d, nm, h)] == 0) {
        if (d->n_names >= CVG__DICT_MAX) {
            return CVG_ELIMIT; /* full: finish this block, start another */
        }
        rc = names_reserve(d);
        if (rc != CVG_OK) {
            return rc;
        }
    }
    size_t slot = names_probe(w, d, nm, h);

    /* On any failure below, forget what this op wrote and added, so the
     * writer is as before the call (and the op may go in the next block). */
    size_t mark_len = w->out.len;
    size_t mark_origins = d->origins.n;
    bool new_name = false;
    rc = pack_op(w, d, op, nm, slot, &new_name);
    if (rc != CVG_OK) {
        w->out.len = mark_len;
        cvg__origins_truncate(&d->origins, mark_origins);
        return rc;
    }
    if (new_name) {
        d->names[d->n_names].hash = h;
        d->slots[slot] = (uint32_t)(d->n_names + 1);
        d->n_names++;
    }
    if (w->count == 0) {
        w->first_hlc = op->pub.hlc;
    }
    w->prev_hlc = op->pub.hlc;
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
        d->finished = true;
    }
    bytes->data = w->out.p;
    bytes->len = w->out.len;
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
        cvg__free(d->slots);
        cvg__origins_destroy(&d->origins);
        cvg__free(d);
    }
    cvg__buf_free(&w->out);
    memset(w, 0, sizeof *w);
}

/* ---- Reader -------------------------------------------------------------- */

typedef struct name_view {
    cvg_bytes n[3]; /* collection, key, field: views into the block */
} name_view;

/* Every array here grows only after a count has been checked against the
 * bytes left (each item needs at least one byte), so hostile input cannot
 * make the reader allocate more than a small multiple of its own size. */
typedef struct reader_scratch {
    name_view *names;
    size_t n_names;
    size_t cap_names;
    cvg__origins origins; /* index 0 is the block's origin */
    cvg_dot *dots;
    size_t cap_dots;
    cvg__delete_counter *counters;
    size_t cap_counters;
    cvg__counter_part *parts;
    size_t cap_parts;
    int state; /* CVG_OK while readable; else the error that stopped it */
} reader_scratch;

/* cvg__grow through a void * temporary, as the array types differ. */
#define GROW(arr, cap, need, rc)                               \
    do {                                                       \
        void *tmp_ = (arr);                                    \
        (rc) = cvg__grow(&tmp_, (cap), (need), sizeof *(arr)); \
        (arr) = tmp_;                                          \
    } while (0)

int
cvg__block_open(cvg__block_reader *r, const uint8_t *data, size_t len)
{
    /* @p r is zeroed, or was opened (or destroyed) before: its scratch is
     * reused, which keeps a log walk from allocating per block. */
    reader_scratch *s = r->scratch;
    memset(r, 0, sizeof *r);
    if (s == NULL) {
        s = cvg__calloc(1, sizeof *s);
        if (s == NULL) {
            return CVG_ENOMEM;
        }
    }
    r->scratch = s;
    s->n_names = 0;
    cvg__origins_truncate(&s->origins, 0);
    s->state = CVG_ECORRUPT;
    if (data == NULL) {
        return s->state = len > 0 ? CVG_EINVAL : CVG_ECORRUPT;
    }

    cvg__mp m = {data, data + len};
    uint64_t version, first_seq, count, hlc;
    cvg_replica_id origin;
    /* The version comes first and alone decides how the rest reads. */
    if (cvg__mp_uint(&m, UINT64_MAX, &version) != CVG_OK || version == 0) {
        return s->state = CVG_ECORRUPT;
    }
    if (version > BLOCK_VERSION) {
        return s->state = CVG_EVERSION;
    }
    if (cvg__mp_id(&m, &origin) != CVG_OK ||
        cvg__mp_uint(&m, UINT64_MAX, &first_seq) != CVG_OK ||
        cvg__mp_uint(&m, CVG__BLOCK_OPS_MAX, &count) != CVG_OK ||
        cvg__mp_uint(&m, UINT64_MAX, &hlc) != CVG_OK) {
        return s->state = CVG_ECORRUPT;
    }
    if (first_seq == 0 || count > cvg__mp_left(&m) / OP_MIN_BYTES ||
        (count > 0 && count - 1 > UINT64_MAX - first_seq) ||
        (count == 0 && hlc != 0)) {
        return s->state = CVG_ECORRUPT;
    }
    uint32_t idx;
    bool added;
    int rc = cvg__origins_index(&s->origins, &origin, &idx, &added);
    if (rc != CVG_OK) {
        return s->state = rc;
    }
    r->p = m.p;
    r->end = m.end;
    r->origin = origin;
    r->first_seq = first_seq;
    r->count = count;
    r->hlc = hlc;
    s->state = CVG_OK;
    return CVG_OK;
}

/* One dot of op @p op_seq (see the layout at the top). */
static int
read_dot(reader_scratch *s, cvg__mp *m, uint64_t op_seq, cvg_dot *out)
{
    uint64_t ref, v;
    if (cvg__mp_uint(m, s->origins.n, &ref) != CVG_OK) {
        return CVG_ECORRUPT;
    }
    if (ref == s->origins.n) {
        cvg_replica_id id;
        uint32_t idx;
        bool added;
        if (s->origins.n >= CVG__DICT_MAX || cvg__mp_id(m, &id) != CVG_OK) {
            return CVG_ECORRUPT;
        }
        int rc = cvg__origins_index(&s->origins, &id, &idx, &added);
        if (rc != CVG_OK) {
            return rc;
        }
        if (!added) {
            return CVG_ECORRUPT; /* an origin already in the dictionary */
        }
    }
    if (cvg__mp_uint(m, UINT64_MAX, &v) != CVG_OK) {
        return CVG_ECORRUPT;
    }
    out->origin = s->origins.ids[ref];
    out->seq = ref == 0 ? op_seq - unzigzag(v) : v;
    return out->seq == 0 ? CVG_ECORRUPT : CVG_OK;
}

/* n, then n dots into s->dots; @p vv requires strictly increasing origins. */
static int
read_dots(reader_scratch *s, cvg__mp *m, uint64_t op_seq, bool vv, cvg_op *out)
{
    size_t n;
    /* A dot takes at least 2 bytes: reference and seq. */
    if (cvg__mp_count(m, CVG__OBSERVED_MAX, 2, &n) != CVG_OK) {
        return CVG_ECORRUPT;
    }
    int rc;
    GROW(s->dots, &s->cap_dots, n, rc);
    if (rc != CVG_OK) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        rc = read_dot(s, m, op_seq, &s->dots[i]);
        if (rc != CVG_OK) {
            return rc;
        }
        if (vv && i > 0 &&
            id_cmp(&s->dots[i - 1].origin, &s->dots[i].origin) >= 0) {
            return CVG_ECORRUPT;
        }
    }
    out->observed = n > 0 ? s->dots : NULL;
    out->observed_count = n;
    return CVG_OK;
}

static int
read_counters(reader_scratch *s, cvg__mp *m, uint64_t op_seq, cvg__op *out)
{
    size_t n, total = 0;
    /* A counter takes at least 3 bytes: a 1-byte field, its tag, a count. */
    if (cvg__mp_count(m, CVG__DICT_MAX, 3, &n) != CVG_OK) {
        return CVG_ECORRUPT;
    }
    int rc;
    GROW(s->counters, &s->cap_counters, n, rc);
    if (rc != CVG_OK) {
        return rc;
    }
    size_t names_len = out->pub.collection.len + out->pub.key.len;
    for (size_t i = 0; i < n; i++) {
        cvg__delete_counter *dc = &s->counters[i];
        size_t k;
        if (cvg__mp_str(m, CVG_NAME_MAX, &dc->field) != CVG_OK ||
            dc->field.len == 0 || has_nul(dc->field) ||
            names_len + dc->field.len > CVG_NAME_MAX) {
            return CVG_ECORRUPT;
        }
        /* A part takes at least 3 bytes: reference, seq, sum. */
        if (cvg__mp_count(m, CVG__OBSERVED_MAX, 3, &k) != CVG_OK) {
            return CVG_ECORRUPT;
        }
        GROW(s->parts, &s->cap_parts, total + k, rc);
        if (rc != CVG_OK) {
            return rc;
        }
        for (size_t j = 0; j < k; j++) {
            cvg__counter_part *pt = &s->parts[total + j];
            cvg_dot dot;
            memset(pt, 0, sizeof *pt);
            rc = read_dot(s, m, op_seq, &dot);
            if (rc != CVG_OK) {
                return rc;
            }
            if (cvg__mp_int(m, &pt->sum) != CVG_OK) {
                return CVG_ECORRUPT;
            }
            pt->origin = dot.origin;
            pt->seq = dot.seq;
            if (j > 0 && id_cmp(&pt[-1].origin, &pt->origin) >= 0) {
                return CVG_ECORRUPT;
            }
        }
        dc->n = k;
        total += k;
    }
    /* The parts array may have moved while it grew: point into it only
     * now. */
    total = 0;
    for (size_t i = 0; i < n; i++) {
        s->counters[i].parts = s->counters[i].n > 0 ? s->parts + total : NULL;
        total += s->counters[i].n;
    }
    out->counters = n > 0 ? s->counters : NULL;
    out->n_counters = n;
    return CVG_OK;
}

/* The target reference, adding a dictionary entry if it is new. */
static int
read_target(reader_scratch *s, cvg__mp *m, const name_view **out)
{
    uint64_t ref;
    if (cvg__mp_uint(m, s->n_names, &ref) != CVG_OK) {
        return CVG_ECORRUPT;
    }
    if (ref == s->n_names) {
        name_view nv;
        if (s->n_names >= CVG__DICT_MAX) {
            return CVG_ECORRUPT;
        }
        for (int k = 0; k < 3; k++) {
            if (cvg__mp_str(m, CVG_NAME_MAX, &nv.n[k]) != CVG_OK ||
                has_nul(nv.n[k])) {
                return CVG_ECORRUPT;
            }
        }
        if (nv.n[0].len == 0 || nv.n[1].len == 0 ||
            nv.n[0].len + nv.n[1].len + nv.n[2].len > CVG_NAME_MAX) {
            return CVG_ECORRUPT;
        }
        /* An entry took at least 4 bytes of the block: growth is bounded. */
        int rc;
        GROW(s->names, &s->cap_names, s->n_names + 1, rc);
        if (rc != CVG_OK) {
            return rc;
        }
        s->names[s->n_names++] = nv;
    }
    *out = &s->names[ref];
    return CVG_OK;
}

static int
read_op(cvg__block_reader *r, reader_scratch *s, cvg__op *out)
{
    cvg__mp m = {r->p, r->end};
    cvg_op *p = &out->pub;
    uint64_t kind, seq = r->first_seq + r->index;
    const name_view *nv;
    if (cvg__mp_uint(&m, CVG_OP_RECORD_DELETE, &kind) != CVG_OK ||
        kind < CVG_OP_COUNTER_ADD) {
        return CVG_ECORRUPT;
    }
    int rc = read_target(s, &m, &nv);
    if (rc != CVG_OK) {
        return rc;
    }
    bool del = kind == CVG_OP_RECORD_DELETE;
    if ((nv->n[2].len == 0) != del) {
        return CVG_ECORRUPT; /* only a record delete has no field */
    }
    uint64_t hlc = r->hlc;
    if (r->index > 0) {
        uint64_t z;
        if (cvg__mp_uint(&m, UINT64_MAX, &z) != CVG_OK) {
            return CVG_ECORRUPT;
        }
        hlc += unzigzag(z); /* wraps: hostile times may go backwards */
    }
    p->dot.origin = r->origin;
    p->dot.seq = seq;
    p->hlc = hlc;
    p->kind = (cvg_op_kind)kind;
    p->collection = nv->n[0];
    p->key = nv->n[1];
    p->field = nv->n[2];
    switch (p->kind) {
        case CVG_OP_COUNTER_ADD:
            if (cvg__mp_int(&m, &p->delta) != CVG_OK || p->delta == 0) {
                return CVG_ECORRUPT;
            }
            break;
        case CVG_OP_SET_ADD:
            if (cvg__mp_value(&m, &p->value) != CVG_OK) {
                return CVG_ECORRUPT;
            }
            break;
        case CVG_OP_REGISTER_SET:
        case CVG_OP_MVREGISTER_SET:
        case CVG_OP_SET_REMOVE:
            if (cvg__mp_value(&m, &p->value) != CVG_OK) {
                return CVG_ECORRUPT;
            }
            rc = read_dots(s, &m, seq, false, p);
            if (rc != CVG_OK) {
                return rc;
            }
            break;
        case CVG_OP_RECORD_DELETE:
            rc = read_dots(s, &m, seq, true, p);
            if (rc != CVG_OK) {
                return rc;
            }
            rc = read_counters(s, &m, seq, out);
            if (rc != CVG_OK) {
                return rc;
            }
            break;
    }
    r->p = m.p;
    r->hlc = hlc;
    return CVG_OK;
}

int
cvg__block_next(cvg__block_reader *r, cvg__op *out)
{
    memset(out, 0, sizeof *out);
    out->pub.value = cvg_value_nil();
    reader_scratch *s = r->scratch;
    if (s == NULL || r->p == NULL) {
        /* Never opened, destroyed, or the open failed. */
        return s != NULL && s->state != CVG_OK ? s->state : CVG_EMISUSE;
    }
    if (s->state != CVG_OK) {
        return s->state; /* an error stops the reader for good */
    }
    if (r->index == r->count) {
        return r->p == r->end ? CVG_DONE : (s->state = CVG_ECORRUPT);
    }
    int rc = read_op(r, s, out);
    if (rc != CVG_OK) {
        memset(out, 0, sizeof *out);
        out->pub.value = cvg_value_nil();
        return s->state = rc;
    }
    r->index++;
    return CVG_OK;
}

void
cvg__block_reader_destroy(cvg__block_reader *r)
{
    if (r == NULL) {
        return;
    }
    reader_scratch *s = r->scratch;
    if (s != NULL) {
        cvg__free(s->names);
        cvg__origins_destroy(&s->origins);
        cvg__free(s->dots);
        cvg__free(s->counters);
        cvg__free(s->parts);
        cvg__free(s);
    }
    memset(r, 0, sizeof *r);
}
