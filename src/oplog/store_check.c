/*
 * A full check of a replica's store (converge check), in two steps.
 *
 * cvg__store_check_file() runs before LMDB opens the file: every page of
 * the newest snapshot is read by hand and checked (lmdb_walk.c), because
 * LMDB would abort or fault on a damaged page the checks at open do not
 * reach. A failure is read again a few times, since a commit of another
 * process meanwhile can look like damage for a moment.
 *
 * cvg__store_check() then runs in one read transaction, which pins the
 * snapshot it reads (walked again by hand first if a commit came between),
 * and reads every record through LMDB:
 *   - every record of every table has its checksum (checksum.h);
 *   - every log block decodes whole; lsns run from 1 without a hole up to
 *     the meta record "lsn"; each origin's seqs run from 1 without a hole;
 *   - the dots index has one entry per block, pointing at that block;
 *   - the origin table decodes and its version vector is exactly the last
 *     seq of each origin in the log;
 *   - every state record's key is well formed and its record decodes, and
 *     every write it keeps is an op of the log of the right kind on that
 *     field: a register's siblings (with the op's value and time), a set
 *     element's tags (adds of that element), a counter's last add per
 *     origin.
 * What it does not prove: that each state record is the merge of exactly
 * the log's ops on it (a counter's sums; that no write is missing). A
 * replica that fails is rebuilt from its peers (docs/architecture.md).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "checksum.h"
#include "lmdb_meta.h"
#include "op_lookup.h"
#include "oplog_int.h"

/* Reads of a file that fails before the failure is believed. */
#define TRIES 3

typedef struct checker {
    cvg__store *s;
    MDB_txn *t;
    cvg_check_report *out;
    cvg__origins origins;
    cvg__vv origin_vv;       /* the origin table's version vector */
    cvg__vv log_vv;          /* the last seq of each origin in the log */
    cvg__op_lookup lookup;   /* the op under a dot the state keeps */
    struct kept_write *kept; /* writes the state keeps, to look up */
    size_t nkept, capkept;
    cvg__buf scratch;
} checker;

static int check_kept(checker *c);

static int bad(checker *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
bad(checker *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->out->problem, sizeof c->out->problem, fmt, ap);
    va_end(ap);
    return CVG_ECORRUPT;
}

/* Walk the snapshot @p txnid (0: the newest) of the file open as @p fd. */
static int
walk(int fd, uint64_t txnid, cvg_check_report *out)
{
    cvg__lmdb_walk w;
    int rc =
        cvg__lmdb_walk_file(fd, txnid, &w, out->problem, sizeof out->problem);
    out->pages = w.branch_pages + w.leaf_pages + w.overflow_pages;
    out->snapshot = w.txnid;
    return rc;
}

int
cvg__store_check_file(const char *dir, cvg_check_report *out)
{
    memset(out, 0, sizeof *out);
    char file[4096];
    if ((size_t)snprintf(file, sizeof file, "%s/data.mdb", dir) >=
        sizeof file) {
        snprintf(out->problem, sizeof out->problem, "path too long");
        return CVG_EINVAL;
    }
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(out->problem, sizeof out->problem,
                 "cannot open the data file: %s", strerror(e));
        return e == ENOENT ? CVG_ENOTFOUND : cvg__mdb_err(e);
    }
    int rc = CVG_OK;
    for (int i = 0; i < TRIES; i++) {
        rc = walk(fd, 0, out);
        if (rc != CVG_ECORRUPT) {
            break;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    close(fd);
    return rc;
}

/* How a walk through the checksummed gets ended: MDB_NOTFOUND at its end,
 * or a record of table @p name that fails its checksum, or another LMDB
 * error. */
static int
walk_end(checker *c, int mrc, const char *name)
{
    if (mrc == MDB_NOTFOUND) {
        return CVG_OK;
    }
    if (mrc == MDB_CORRUPTED) {
        return bad(c, "a record of table %s fails its checksum", name);
    }
    return cvg__mdb_err(mrc);
}

/* Every record of table @p db has its checksum: for the tables no later
 * walk reads (the others are read through the checksummed gets). */
static int
check_table(checker *c, MDB_dbi db, const char *name)
{
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(c->t, db, &cur);
    if (mrc != MDB_SUCCESS) {
        return cvg__mdb_err(mrc);
    }
    int rc = CVG_OK;
    uint64_t i = 0;
    MDB_val k, v;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == MDB_SUCCESS;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT), i++) {
        c->out->records++;
        if (c->s->checksummed && !cvg__ck_exempt(c->s, db, &k) &&
            !cvg__ck_open(&k, &v)) {
            rc = bad(c, "record %llu of table %s fails its checksum",
                     (unsigned long long)i, name);
            break;
        }
    }
    mdb_cursor_close(cur);
    if (rc == CVG_OK && mrc != MDB_NOTFOUND) {
        rc = cvg__mdb_err(mrc);
    }
    return rc;
}

/* One log block, whose key says its last lsn is @p last: it decodes whole,
 * follows the block before it, and its origin's seqs follow on. */
static int
check_block(checker *c, uint64_t last, const MDB_val *v, uint64_t *prev_lsn)
{
    cvg__block_reader rd;
    memset(&rd, 0, sizeof rd);
    int rc = cvg__block_open(&rd, v->mv_data, v->mv_size);
    if (rc != CVG_OK) {
        cvg__block_reader_destroy(&rd);
        return rc == CVG_ECORRUPT
                   ? bad(c, "the log block ending at lsn %llu does not decode",
                         (unsigned long long)last)
                   : rc;
    }
    uint64_t ops = 0;
    cvg__op op;
    while ((rc = cvg__block_next(&rd, &op)) == CVG_OK) {
        ops++;
    }
    if (rc != CVG_DONE) {
        cvg__block_reader_destroy(&rd);
        return rc == CVG_ECORRUPT
                   ? bad(c,
                         "op %llu of the log block ending at lsn %llu does "
                         "not decode",
                         (unsigned long long)ops, (unsigned long long)last)
                   : rc;
    }
    c->out->log_blocks++;
    c->out->log_ops += ops;
    rc = CVG_OK;
    if (ops == 0 || ops != rd.count || last < ops || last - ops != *prev_lsn) {
        rc = bad(c,
                 "the log has a hole or an overlap before lsn %llu (the "
                 "block before ends at %llu)",
                 (unsigned long long)last, (unsigned long long)*prev_lsn);
    } else if (cvg__vv_get(&c->log_vv, &rd.origin) + 1 != rd.first_seq) {
        rc = bad(c,
                 "the ops of an origin skip from seq %llu to %llu in the "
                 "log, at lsn %llu",
                 (unsigned long long)cvg__vv_get(&c->log_vv, &rd.origin),
                 (unsigned long long)rd.first_seq, (unsigned long long)last);
    } else {
        rc = cvg__vv_set(&c->log_vv, &rd.origin, rd.first_seq + ops - 1);
    }
    *prev_lsn = last;
    cvg__block_reader_destroy(&rd);
    return rc;
}

static int
check_log(checker *c)
{
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(c->t, c->s->log, &cur);
    if (mrc != MDB_SUCCESS) {
        return cvg__mdb_err(mrc);
    }
    int rc = CVG_OK;
    uint64_t prev = 0;
    MDB_val k, v;
    for (mrc = cvg__ck_cursor_get(c->s, cur, &k, &v, MDB_FIRST);
         mrc == MDB_SUCCESS && rc == CVG_OK;
         mrc = cvg__ck_cursor_get(c->s, cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 8) {
            rc = bad(c, "a log key is %zu bytes, not 8", k.mv_size);
            break;
        }
        c->out->records++;
        rc = check_block(c, cvg__get_be64(k.mv_data), &v, &prev);
    }
    mdb_cursor_close(cur);
    if (rc == CVG_OK) {
        rc = walk_end(c, mrc, "log");
    }
    if (rc != CVG_OK) {
        return rc;
    }
    uint64_t lsn = 0;
    rc = cvg__meta_get_u64(c->s, c->t, "lsn", &lsn);
    if (rc == CVG_OK && lsn != prev) {
        rc = bad(c, "the log ends at lsn %llu but the replica says %llu",
                 (unsigned long long)prev, (unsigned long long)lsn);
    }
    return rc;
}

/* Each dots entry points at the block it names; one per block. */
static int
check_dots(checker *c)
{
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(c->t, c->s->dots, &cur);
    if (mrc != MDB_SUCCESS) {
        return cvg__mdb_err(mrc);
    }
    int rc = CVG_OK;
    uint64_t n = 0;
    MDB_val k, v;
    for (mrc = cvg__ck_cursor_get(c->s, cur, &k, &v, MDB_FIRST);
         mrc == MDB_SUCCESS && rc == CVG_OK;
         mrc = cvg__ck_cursor_get(c->s, cur, &k, &v, MDB_NEXT)) {
        n++;
        c->out->records++;
        if (k.mv_size != 24 || v.mv_size != 8) {
            rc = bad(c, "a dots entry has the wrong size");
            break;
        }
        MDB_val lk = {8, v.mv_data}, block;
        int grc = cvg__ck_get(c->s, c->t, c->s->log, &lk, &block);
        if (grc == MDB_NOTFOUND) {
            rc = bad(c,
                     "a dots entry points at lsn %llu, which ends no "
                     "block",
                     (unsigned long long)cvg__get_be64(v.mv_data));
            break;
        }
        if (grc != MDB_SUCCESS) {
            rc = cvg__mdb_err(grc);
            break;
        }
        cvg__block_reader rd;
        memset(&rd, 0, sizeof rd);
        rc = cvg__block_open(&rd, block.mv_data, block.mv_size);
        uint64_t last_seq = cvg__get_be64((const uint8_t *)k.mv_data + 16);
        if (rc == CVG_OK && (memcmp(rd.origin.bytes, k.mv_data, 16) != 0 ||
                             rd.first_seq + rd.count - 1 != last_seq)) {
            rc = bad(c,
                     "a dots entry names another block than the one it "
                     "points at");
        }
        cvg__block_reader_destroy(&rd);
    }
    mdb_cursor_close(cur);
    if (rc == CVG_OK) {
        rc = walk_end(c, mrc, "dots");
    }
    if (rc == CVG_OK && n != c->out->log_blocks) {
        rc = bad(c, "the dots index has %llu entries for %llu log blocks",
                 (unsigned long long)n, (unsigned long long)c->out->log_blocks);
    }
    return rc;
}

/* The origin table's version vector is the log's. */
static int
check_origins(checker *c)
{
    int rc = cvg__origins_load(c->s, c->t, &c->origins, &c->origin_vv, NULL);
    if (rc == CVG_ECORRUPT) {
        return bad(c,
                   "the origin table (or the meta record 'ahead') is "
                   "damaged");
    }
    if (rc != CVG_OK) {
        return rc;
    }
    c->out->origins = c->origins.n;
    c->out->records += c->origins.n;
    bool same = c->origin_vv.n == c->log_vv.n;
    for (size_t i = 0; same && i < c->log_vv.n; i++) {
        same = cvg__vv_get(&c->origin_vv, &c->log_vv.e[i].origin) ==
               c->log_vv.e[i].seq;
    }
    return same ? CVG_OK
                : bad(c,
                      "the version vector is not the log's (%zu origins "
                      "with ops in the log, %zu in the vector)",
                      c->log_vv.n, c->origin_vv.n);
}

/* The field a state record is of, from its key. */
typedef struct target {
    cvg_bytes collection, key, field;
} target;

/* What a state record says of one write it keeps, to be compared with
 * the op under its dot in the log: in state order the dots are scattered
 * over the log, and looking each up at once would decode its block from
 * the start every time (seconds for 200,000 registers). So they are
 * gathered, sorted by dot, and looked up in log order, reading on through
 * each block; a fingerprint stands for what is compared. */
typedef struct kept_write {
    cvg_dot dot;
    uint64_t print;
    uint8_t what; /* WHAT_... */
} kept_write;

enum { WHAT_COUNTER, WHAT_REGISTER, WHAT_ELEMENT };
static const char *what_names[] = {"a counter's last add", "a register's write",
                                   "a set element's add"};

/* Writes gathered before they are looked up (about 32 MB). */
#define KEPT_MAX (1u << 20)

/* A fixed key: the print only stands in for a comparison. */
static const uint8_t print_key[crypto_shorthash_KEYBYTES] = {
    'c', 'o', 'n', 'v', 'e', 'r', 'g', 'e', ' ', 'c', 'h', 'e', 'c', 'k'};

static void
put_bytes(cvg__buf *b, cvg_bytes x, int *rc)
{
    uint8_t len[4];
    cvg__put_be32(len, (uint32_t)x.len);
    if (*rc == CVG_OK) {
        *rc = cvg__buf_append(b, len, sizeof len);
    }
    if (*rc == CVG_OK && x.len > 0) {
        *rc = cvg__buf_append(b, x.data, x.len);
    }
}

/* The print of a write: its kind and field, and its value and time when
 * given. */
static int
print_of(cvg__buf *scratch, int kind, const target *tg, const cvg_value *value,
         uint64_t hlc, uint64_t *out)
{
    scratch->len = 0;
    uint8_t head[9];
    head[0] = (uint8_t)kind;
    cvg__put_be64(head + 1, hlc);
    int rc = cvg__buf_append(scratch, head, sizeof head);
    put_bytes(scratch, tg->collection, &rc);
    put_bytes(scratch, tg->key, &rc);
    put_bytes(scratch, tg->field, &rc);
    if (rc == CVG_OK && value != NULL) {
        rc = cvg__value_encode(value, scratch);
    }
    if (rc != CVG_OK) {
        return rc;
    }
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, scratch->p, scratch->len, print_key);
    *out = cvg__get_be64(h);
    return CVG_OK;
}

/* A write the state keeps (@p d) must be an op of the log of kind @p kind
 * on the record's field; @p value and @p hlc, when given, the op's. Only
 * noted here; looked up by check_kept(). */
static int
check_write(checker *c, const cvg_dot *d, int what, int kind, const target *tg,
            const cvg_value *value, uint64_t hlc)
{
    if (d->seq == 0 || !cvg__vv_contains(&c->log_vv, d)) {
        return bad(c,
                   "a state record keeps %s (seq %llu) that is no op of "
                   "the log",
                   what_names[what], (unsigned long long)d->seq);
    }
    if (c->nkept == KEPT_MAX) {
        int rc = check_kept(c);
        if (rc != CVG_OK) {
            return rc;
        }
    }
    void *a = c->kept;
    int rc = cvg__grow(&a, &c->capkept, c->nkept + 1, sizeof *c->kept);
    c->kept = a;
    if (rc != CVG_OK) {
        return rc;
    }
    kept_write *k = &c->kept[c->nkept];
    k->dot = *d;
    k->what = (uint8_t)what;
    rc = print_of(&c->scratch, kind, tg, value, hlc, &k->print);
    if (rc == CVG_OK) {
        c->nkept++;
    }
    return rc;
}

static int
kept_cmp(const void *a, const void *b)
{
    return cvg__dot_cmp(&((const kept_write *)a)->dot,
                        &((const kept_write *)b)->dot);
}

/* The writes gathered, each against its op in the log, in log order. */
static int
check_kept(checker *c)
{
    if (c->nkept > 1) {
        qsort(c->kept, c->nkept, sizeof *c->kept, kept_cmp);
    }
    int rc = CVG_OK;
    for (size_t i = 0; rc == CVG_OK && i < c->nkept; i++) {
        const kept_write *k = &c->kept[i];
        const cvg__op *op = NULL;
        rc = cvg__op_lookup_find(&c->lookup, c->s, c->t, &k->dot, &op);
        if (rc == CVG_ENOTFOUND) {
            rc = bad(c,
                     "a state record keeps %s (seq %llu) that is no op of "
                     "the log",
                     what_names[k->what], (unsigned long long)k->dot.seq);
            break;
        }
        if (rc != CVG_OK) {
            break;
        }
        const cvg_op *o = &op->pub;
        target tg = {o->collection, o->key, o->field};
        bool has_value = k->what != WHAT_COUNTER;
        uint64_t print;
        rc = print_of(&c->scratch, (int)o->kind, &tg,
                      has_value ? &o->value : NULL,
                      k->what == WHAT_REGISTER ? o->hlc : 0, &print);
        if (rc == CVG_OK && print != k->print) {
            rc = bad(c,
                     "a state record keeps %s (seq %llu) whose op in the "
                     "log is on another field, or of another kind, value "
                     "or time",
                     what_names[k->what], (unsigned long long)k->dot.seq);
        }
    }
    c->nkept = 0;
    return rc;
}

static int
check_record(checker *c, const MDB_val *k, const MDB_val *v)
{
    /* collection NUL key NUL field NUL type [element hash] */
    const uint8_t *p = k->mv_data;
    size_t nul = 0, i = 0, starts[3] = {0}, ends[3] = {0};
    for (; i < k->mv_size && nul < 3; i++) {
        if (p[i] == 0) {
            ends[nul] = i;
            nul++;
            if (nul < 3) {
                starts[nul] = i + 1;
            }
        }
    }
    if (nul < 3 || i >= k->mv_size) {
        return bad(c, "a state key is malformed");
    }
    target tg = {{p + starts[0], ends[0] - starts[0]},
                 {p + starts[1], ends[1] - starts[1]},
                 {p + starts[2], ends[2] - starts[2]}};
    uint8_t type = p[i];
    size_t rest = k->mv_size - i - 1;
    if (rest != (type == CVG_TYPE_SET ? 16u : 0u)) {
        return bad(c, "a state key is malformed");
    }
    int rc = CVG_OK;
    switch (type) {
    case CVG_TYPE_COUNTER: {
        cvg__counter ctr = {0};
        rc = cvg__state_decode_counter(v->mv_data, v->mv_size, &c->origins,
                                       &ctr);
        for (size_t j = 0; rc == CVG_OK && j < ctr.n; j++) {
            const cvg__counter_part *part = &ctr.parts[j];
            if (part->seq > 0) {
                cvg_dot d = {part->origin, part->seq};
                rc = check_write(c, &d, WHAT_COUNTER, CVG_OP_COUNTER_ADD, &tg,
                                 NULL, 0);
            }
            if (rc == CVG_OK &&
                part->floor_seq > cvg__vv_get(&c->log_vv, &part->origin)) {
                rc = bad(c, "a counter's floor is past the log");
            }
        }
        cvg__counter_destroy(&ctr);
        break;
    }
    case CVG_TYPE_REGISTER:
    case CVG_TYPE_MVREGISTER: {
        cvg__reg reg = {0};
        rc = cvg__state_decode_reg(v->mv_data, v->mv_size, &c->origins, &reg);
        int kind = type == CVG_TYPE_REGISTER ? CVG_OP_REGISTER_SET
                                             : CVG_OP_MVREGISTER_SET;
        for (size_t j = 0; rc == CVG_OK && j < reg.n; j++) {
            rc = check_write(c, &reg.s[j].dot, WHAT_REGISTER, kind, &tg,
                             &reg.s[j].value, reg.s[j].hlc);
        }
        cvg__reg_destroy(&reg);
        break;
    }
    case CVG_TYPE_SET: {
        cvg__tags tags = {0};
        cvg_value elem;
        rc = cvg__state_decode_elem(v->mv_data, v->mv_size, &c->origins, &elem,
                                    &tags);
        for (size_t j = 0; rc == CVG_OK && j < tags.n; j++) {
            rc = check_write(c, &tags.d[j], WHAT_ELEMENT, CVG_OP_SET_ADD, &tg,
                             &elem, 0);
        }
        cvg__tags_destroy(&tags);
        break;
    }
    default:
        return bad(c, "a state key has the unknown type %u", type);
    }
    if (rc == CVG_ECORRUPT && c->out->problem[0] == '\0') {
        rc = bad(c, "a state record does not decode");
    }
    return rc;
}

/* The state as reads see it: the state table under the journal's newer
 * records (journal.c), which the begin of this transaction loaded, each
 * through its checksum. */
static int
check_state(checker *c)
{
    cvg__state_cursor cur;
    int rc = cvg__state_cursor_open(c->s, c->t, &cur);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg_bytes kb, vb;
    int src;
    for (src = cvg__state_cursor_seek(&cur, NULL, 0, &kb, &vb);
         src == CVG_OK && rc == CVG_OK;
         src = cvg__state_cursor_next(&cur, &kb, &vb)) {
        c->out->state_records++;
        c->out->records++;
        MDB_val k = {kb.len, (void *)kb.data}, v = {vb.len, (void *)vb.data};
        rc = check_record(c, &k, &v);
    }
    cvg__state_cursor_close(&cur);
    if (rc == CVG_OK && src != CVG_DONE) {
        rc = src == CVG_ECORRUPT
                 ? bad(c, "a record of table %s fails its checksum", "state")
                 : src;
    }
    return rc;
}

static int
check_all(checker *c)
{
    struct {
        MDB_dbi db;
        const char *name;
    } tables[] = {{c->s->meta, "meta"},
                  {c->s->peers, "peers"},
                  {c->s->queue, "queue"},
                  {c->s->history, "history"}};
    size_t n = sizeof tables / sizeof tables[0] - (c->s->has_history ? 0 : 1);
    int rc = CVG_OK;
    for (size_t i = 0; rc == CVG_OK && i < n; i++) {
        rc = check_table(c, tables[i].db, tables[i].name);
    }
    if (rc == CVG_OK && c->s->has_journal) {
        rc = check_table(c, c->s->journal, "journal");
    }
    if (rc == CVG_OK) {
        rc = check_log(c);
    }
    if (rc == CVG_OK) {
        rc = check_dots(c);
    }
    if (rc == CVG_OK) {
        rc = check_origins(c);
    }
    if (rc == CVG_OK) {
        rc = check_state(c);
    }
    if (rc == CVG_OK) {
        rc = check_kept(c);
    }
    return rc;
}

int
cvg__store_check(cvg__store *s, cvg_check_report *out)
{
    cvg__store_txn *t = NULL;
    int rc = CVG_EBUSY;
    for (int i = 0; i < TRIES && rc == CVG_EBUSY; i++) {
        cvg__store_abort(t);
        rc = cvg__store_begin(s, false, &t);
        if (rc != CVG_OK) {
            /* A damaged journal record is met at the begin, which loads
             * them (journal.c); the store said which. */
            snprintf(out->problem, sizeof out->problem, "%s",
                     rc == CVG_ECORRUPT && s->err != NULL
                         ? s->err
                         : "cannot begin a transaction");
            return rc;
        }
        /* A commit since the walk: walk the snapshot this transaction
         * pins. Its meta page is gone from the file (CVG_EBUSY) only if
         * two more commits came between the begin and the read of it. */
        uint64_t id = mdb_txn_id(t);
        if (id != out->snapshot) {
            rc = walk(s->fd, id, out);
        }
    }
    checker c = {.s = s, .t = t, .out = out};
    if (rc == CVG_OK) {
        rc = check_all(&c);
    }
    if (rc == CVG_ECORRUPT && out->problem[0] == '\0') {
        snprintf(out->problem, sizeof out->problem, "%s",
                 s->err != NULL ? s->err : "damaged");
    }
    cvg__store_abort(t);
    cvg__origins_destroy(&c.origins);
    cvg__vv_destroy(&c.origin_vv);
    cvg__vv_destroy(&c.log_vv);
    cvg__op_lookup_destroy(&c.lookup);
    cvg__free(c.kept);
    cvg__buf_free(&c.scratch);
    return rc;
}
