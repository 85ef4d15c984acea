/*
 * Reading op blocks (the format is described in block_format.h), versions
 * 1 to 4. The reader is our own bounded parser (mpack.c): it never reads
 * past the given bytes, validates every byte it accepts, and grows its
 * arrays only after a count has been checked against the bytes left.
 */
#include "block_format.h"

/* Every array here grows only after a count has been checked against the
 * bytes left (each item needs at least one byte), and the name arena is
 * bounded by block_names_fit(), so hostile input cannot make the reader
 * allocate more than a fixed multiple of its own size. */
typedef struct reader_scratch {
    block_name *names;
    size_t n_names;
    size_t cap_names;
    cvg__buf arena;
    size_t whole;         /* the entries' names in full, summed */
    bool received;        /* from a peer: whole is bounded (block_format.h) */
    cvg__origins origins; /* index 0 is the block's origin */
    cvg_dot *dots;
    size_t cap_dots;
    cvg__delete_counter *counters;
    size_t cap_counters;
    cvg__counter_part *parts;
    size_t cap_parts;
    unsigned version;
    const uint8_t *start; /* the block's first byte */
    size_t prev_target;
    unsigned run_head; /* the head the ops of the open run share */
    uint64_t run_left; /* ops of the run still to come */
    bool run_repeat;   /* they repeat its head op (version 4, R = 1) */
    int64_t run_delta; /* the delta of the last counter add read whole */
    int state; /* CVG_OK while readable; else the error that stopped it */
} reader_scratch;

/* cvg__grow through a void * temporary, as the array types differ. */
#define GROW(arr, cap, need, rc)                               \
    do {                                                       \
        void *tmp_ = (arr);                                    \
        (rc) = cvg__grow(&tmp_, (cap), (need), sizeof *(arr)); \
        (arr) = tmp_;                                          \
    } while (0)

/* The smallest op: one byte (a counter increment in a run). */
#define OP_MIN_BYTES 1u

static int
block_open(cvg__block_reader *r, const uint8_t *data, size_t len, bool received)
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
    s->arena.len = 0;
    s->whole = 0;
    s->received = received;
    s->run_left = 0;
    s->prev_target = 0;
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
    /* Each op takes a byte at least, or 1/OPS_PER_BYTE of one in a block
     * with repeats: a small block from a peer never stands for many ops. */
    uint64_t left = cvg__mp_left(&m);
    uint64_t most = version >= 4 ? left * OPS_PER_BYTE : left / OP_MIN_BYTES;
    if (first_seq == 0 || count > most ||
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
    s->version = (unsigned)version;
    s->start = data;
    r->p = m.p;
    r->end = m.end;
    r->origin = origin;
    r->first_seq = first_seq;
    r->count = count;
    r->hlc = hlc;
    s->state = CVG_OK;
    return CVG_OK;
}

int
cvg__block_open(cvg__block_reader *r, const uint8_t *data, size_t len)
{
    return block_open(r, data, len, false);
}

int
cvg__block_open_received(cvg__block_reader *r, const uint8_t *data, size_t len)
{
    return block_open(r, data, len, true);
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
        if (s->origins.n >= CVG__BLOCK_ORIGINS_MAX ||
            cvg__mp_id(m, &id) != CVG_OK) {
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
    out->seq = ref == 0 ? op_seq - block_unzigzag(v) : v;
    return out->seq == 0 ? CVG_ECORRUPT : CVG_OK;
}

/* n, then n dots into s->dots (nothing with @p nodots); @p vv requires
 * strictly increasing origins. */
static int
read_dots(reader_scratch *s, cvg__mp *m, uint64_t op_seq, bool vv, bool nodots,
          cvg_op *out)
{
    size_t n = 0;
    /* A dot takes at least 2 bytes: reference and seq. */
    if (!nodots && cvg__mp_count(m, CVG__OBSERVED_MAX, 2, &n) != CVG_OK) {
        return CVG_ECORRUPT;
    }
    if (!nodots && n == 0 && s->version > BLOCK_VERSION_1) {
        return CVG_ECORRUPT; /* NODOTS is the one way to say none */
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
            block_id_cmp(&s->dots[i - 1].origin, &s->dots[i].origin) >= 0) {
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
    if (cvg__mp_count(m, CVG__DELETE_FIELDS_MAX, 3, &n) != CVG_OK) {
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
            dc->field.len == 0 || block_has_nul(dc->field) ||
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
            if (j > 0 && block_id_cmp(&pt[-1].origin, &pt->origin) >= 0) {
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

/* ---- Targets ---------------------------------------------------------- */

/* Append @p p bytes of the last entry's name @p k and then @p rest to the
 * arena, as name @p k of @p e: if the block so far may name that many
 * bytes (block_names_fit). */
static int
append_name(reader_scratch *s, const cvg__mp *m, size_t last_off, size_t p,
            cvg_bytes rest, int k, block_name *e)
{
    size_t add = p + rest.len;
    if (!block_names_fit(s->arena.len + add, (size_t)(m->p - s->start))) {
        return CVG_ECORRUPT;
    }
    int rc = cvg__buf_reserve(&s->arena, add);
    if (rc != CVG_OK) {
        return rc;
    }
    e->off[k] = s->arena.len;
    e->len[k] = add;
    if (p > 0) {
        memcpy(s->arena.p + s->arena.len, s->arena.p + last_off, p);
    }
    if (rest.len > 0) {
        memcpy(s->arena.p + s->arena.len + p, rest.data, rest.len);
    }
    s->arena.len += add;
    return CVG_OK;
}

/* Name @p k of a new entry: p bytes shared with the last entry's (@p last,
 * NULL for none), then the rest. One equal to the last entry's shares its
 * bytes, as the writer assumes. */
static int
read_name(reader_scratch *s, cvg__mp *m, const block_name *last, int k,
          block_name *e)
{
    size_t last_len = last != NULL ? last->len[k] : 0;
    size_t last_off = last != NULL ? last->off[k] : 0;
    uint64_t p;
    cvg_bytes rest;
    if (cvg__mp_uint(m, last_len, &p) != CVG_OK ||
        cvg__mp_str(m, CVG_NAME_MAX, &rest) != CVG_OK ||
        p + rest.len > CVG_NAME_MAX || block_has_nul(rest)) {
        return CVG_ECORRUPT;
    }
    if (p == last_len && rest.len == 0) {
        e->off[k] = last_off;
        e->len[k] = last_len;
        return CVG_OK;
    }
    return append_name(s, m, last_off, (size_t)p, rest, k, e);
}

/* A key that shares p bytes with the last entry's key, then the rest. */
static int
read_key_delta(reader_scratch *s, cvg__mp *m, const block_name *last,
               block_name *e)
{
    uint64_t p;
    cvg_bytes rest;
    if (cvg__mp_uint(m, last->len[1], &p) != CVG_OK ||
        cvg__mp_str(m, CVG_NAME_MAX, &rest) != CVG_OK ||
        p + rest.len > CVG_NAME_MAX || block_has_nul(rest)) {
        return CVG_ECORRUPT;
    }
    return append_name(s, m, last->off[1], (size_t)p, rest, 1, e);
}

/* The key after the last entry's (block_key_next); nothing to read. */
static int
read_next_key(reader_scratch *s, const cvg__mp *m, const block_name *last,
              block_name *e)
{
    /* Made apart from the arena, which may move as the key is added. */
    uint8_t next[CVG_NAME_MAX + 1];
    size_t n = block_key_next(s->arena.p + last->off[1], last->len[1], next);
    if (n == 0) {
        return CVG_ECORRUPT;
    }
    return append_name(s, m, 0, 0, (cvg_bytes){next, n}, 1, e);
}

/* A new entry's names are valid: collection and key non-empty, and all
 * three within CVG_NAME_MAX together. */
static bool
entry_valid(const block_name *e)
{
    return e->len[0] > 0 && e->len[1] > 0 &&
           e->len[0] + e->len[1] + e->len[2] <= CVG_NAME_MAX;
}

/* Read a new dictionary entry (version 1: three names whole; later
 * versions: @p how is TARGET_NEXT_KEY, TARGET_NEW_KEY or TARGET_NEW_ALL). */
static int
read_entry(reader_scratch *s, cvg__mp *m, uint64_t how)
{
    if (s->n_names >= CVG__DICT_MAX) {
        return CVG_ECORRUPT;
    }
    /* An entry took at least 2 bytes of the block: growth is bounded. */
    int rc;
    GROW(s->names, &s->cap_names, s->n_names + 1, rc);
    if (rc != CVG_OK) {
        return rc;
    }
    block_name *e = &s->names[s->n_names];
    const block_name *last = s->n_names > 0 ? e - 1 : NULL;
    memset(e, 0, sizeof *e);
    if (s->version == BLOCK_VERSION_1) {
        for (int k = 0; k < 3 && rc == CVG_OK; k++) {
            cvg_bytes nm;
            if (cvg__mp_str(m, CVG_NAME_MAX, &nm) != CVG_OK ||
                block_has_nul(nm)) {
                return CVG_ECORRUPT;
            }
            rc = append_name(s, m, 0, 0, nm, k, e);
        }
    } else if (how == TARGET_NEW_KEY || how == TARGET_NEXT_KEY) {
        /* The last entry's collection and field, and a key of its own. */
        if (last == NULL) {
            return CVG_ECORRUPT;
        }
        for (int k = 0; k < 3; k += 2) {
            e->off[k] = last->off[k];
            e->len[k] = last->len[k];
        }
        rc = how == TARGET_NEXT_KEY ? read_next_key(s, m, last, e)
                                    : read_key_delta(s, m, last, e);
    } else {
        for (int k = 0; k < 3 && rc == CVG_OK; k++) {
            rc = read_name(s, m, last, k, e);
        }
    }
    if (rc != CVG_OK) {
        return rc;
    }
    if (!entry_valid(e)) {
        return CVG_ECORRUPT;
    }
    s->whole += e->len[0] + e->len[1] + e->len[2];
    if (s->received &&
        !block_whole_names_fit(s->whole, (size_t)(m->p - s->start))) {
        return CVG_ECORRUPT;
    }
    s->n_names++;
    return CVG_OK;
}

/* The target reference, adding a dictionary entry if it is new. */
static int
read_target(reader_scratch *s, cvg__mp *m, size_t *out)
{
    uint64_t ref;
    if (s->version == BLOCK_VERSION_1) {
        if (cvg__mp_uint(m, s->n_names, &ref) != CVG_OK) {
            return CVG_ECORRUPT;
        }
        if (ref < s->n_names) {
            *out = (size_t)ref;
            return CVG_OK;
        }
    } else {
        /* Version 2's references are version 3's less one. */
        uint64_t v2 = s->version == BLOCK_VERSION_2 ? 1 : 0;
        if (cvg__mp_uint(m, s->n_names + TARGET_OLD_BASE - 1 - v2, &ref) !=
            CVG_OK) {
            return CVG_ECORRUPT;
        }
        ref += v2;
        if (ref >= TARGET_OLD_BASE) {
            *out = (size_t)(ref - TARGET_OLD_BASE);
            return CVG_OK;
        }
    }
    int rc = read_entry(s, m, ref);
    *out = s->n_names - 1;
    return rc;
}

/* ---- Ops ----------------------------------------------------------------- */

/* The op's head: from the run it continues (*cont), or read (version 1:
 * the kind alone, no flags). */
static int
read_head(cvg__block_reader *r, reader_scratch *s, cvg__mp *m, unsigned *head,
          bool *cont)
{
    uint64_t h;
    *cont = false;
    if (s->version == BLOCK_VERSION_1) {
        if (cvg__mp_uint(m, CVG_OP_RECORD_DELETE, &h) != CVG_OK) {
            return CVG_ECORRUPT;
        }
        *head = (unsigned)h;
        return CVG_OK;
    }
    if (s->run_left > 0) {
        s->run_left--;
        *head = s->run_head | HEAD_SAME;
        *cont = true;
        return CVG_OK;
    }
    if (cvg__mp_uint(m, HEAD_MAX, &h) != CVG_OK) {
        return CVG_ECORRUPT;
    }
    *head = (unsigned)h;
    s->run_repeat = false;
    if (h & HEAD_RUN) {
        /* Version 4 counts 2c + R; older versions c. */
        bool v4 = s->version >= 4;
        uint64_t left = r->count - r->index - 1, c;
        if (cvg__mp_uint(m, v4 ? 2 * left + 1 : left, &c) != CVG_OK) {
            return CVG_ECORRUPT;
        }
        s->run_repeat = v4 && (c & 1);
        c = v4 ? c >> 1 : c;
        if (c == 0) {
            return CVG_ECORRUPT;
        }
        s->run_left = c;
        s->run_head = (unsigned)h & ~HEAD_RUN;
        *head = s->run_head;
    }
    unsigned kind = *head & HEAD_KIND;
    if ((r->index == 0 && (*head & (HEAD_SAME | HEAD_TICK))) ||
        ((*head & HEAD_NODOTS) && !kind_has_dots(kind)) ||
        (s->run_repeat &&
         (kind != CVG_OP_COUNTER_ADD || !(*head & HEAD_TICK)))) {
        return CVG_ECORRUPT; /* a repeat is of ticking counter adds only */
    }
    return CVG_OK;
}

static int
read_op(cvg__block_reader *r, reader_scratch *s, cvg__op *out)
{
    cvg__mp m = {r->p, r->end};
    cvg_op *p = &out->pub;
    uint64_t seq = r->first_seq + r->index;
    unsigned head;
    bool cont;
    int rc = read_head(r, s, &m, &head, &cont);
    if (rc != CVG_OK) {
        return rc;
    }
    unsigned kind = head & HEAD_KIND;
    if (kind_payload(kind) == PAYLOAD_NONE) {
        return CVG_ECORRUPT;
    }
    size_t target = s->prev_target;
    if (!(head & HEAD_SAME)) {
        rc = read_target(s, &m, &target);
        if (rc != CVG_OK) {
            return rc;
        }
    }
    const block_name *nv = &s->names[target];
    bool del = kind == CVG_OP_RECORD_DELETE;
    if ((nv->len[2] == 0) != del) {
        return CVG_ECORRUPT; /* only a record delete has no field */
    }
    uint64_t hlc = r->hlc;
    if (head & HEAD_TICK) {
        hlc += 1;
    } else if (r->index > 0) {
        uint64_t z;
        if (cvg__mp_uint(&m, UINT64_MAX, &z) != CVG_OK) {
            return CVG_ECORRUPT;
        }
        hlc += block_unzigzag(z); /* wraps: hostile times may go backwards */
    }
    p->dot.origin = r->origin;
    p->dot.seq = seq;
    p->hlc = hlc;
    p->kind = (cvg_op_kind)kind;
    cvg_bytes *names[3] = {&p->collection, &p->key, &p->field};
    for (int k = 0; k < 3; k++) {
        names[k]->data = nv->len[k] > 0 ? s->arena.p + nv->off[k] : NULL;
        names[k]->len = nv->len[k];
    }
    bool nodots = (head & HEAD_NODOTS) != 0;
    switch (kind_payload(p->kind)) {
    case PAYLOAD_DELTA:
        if (cont && s->run_repeat) {
            p->delta = s->run_delta; /* the run's head op's */
            break;
        }
        if (cvg__mp_int(&m, &p->delta) != CVG_OK || p->delta == 0) {
            return CVG_ECORRUPT;
        }
        s->run_delta = p->delta;
        break;
    case PAYLOAD_VALUE:
        if (cvg__mp_value(&m, &p->value) != CVG_OK) {
            return CVG_ECORRUPT;
        }
        break;
    case PAYLOAD_VALUE_DOTS:
        if (cvg__mp_value(&m, &p->value) != CVG_OK) {
            return CVG_ECORRUPT;
        }
        rc = read_dots(s, &m, seq, false, nodots, p);
        if (rc != CVG_OK) {
            return rc;
        }
        break;
    case PAYLOAD_DELETE:
        rc = read_dots(s, &m, seq, true, nodots, p);
        if (rc != CVG_OK) {
            return rc;
        }
        rc = read_counters(s, &m, seq, out);
        if (rc != CVG_OK) {
            return rc;
        }
        break;
    case PAYLOAD_NONE:
        return CVG_ECORRUPT;
    }
    s->prev_target = target;
    r->p = m.p;
    r->hlc = hlc;
    return CVG_OK;
}

bool
cvg__block_is_current(const cvg__block_reader *r)
{
    const reader_scratch *s = r->scratch;
    return s != NULL && s->version == BLOCK_VERSION;
}

int
cvg__block_next(cvg__block_reader *r, cvg__op *out)
{
    cvg__op_clear(out);
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
        cvg__op_clear(out);
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
        cvg__buf_free(&s->arena);
        cvg__origins_destroy(&s->origins);
        cvg__free(s->dots);
        cvg__free(s->counters);
        cvg__free(s->parts);
        cvg__free(s);
    }
    memset(r, 0, sizeof *r);
}
