/*
 * The journal: state records written behind the log. A random write costs
 * a leaf of the state table per field, and 1,000 of them in one commit
 * dirty hundreds of pages; so a commit does not write its state records
 * into the state table. It writes them, in one record of the table
 * "journal" under its own LMDB transaction id, as a run of (key, value or
 * deletion), and keeps them in the handle's overlay (overlay.h). Reads see
 * the overlay over the state table (state_store.c). When the overlay grows
 * past a bound, the next few commits each also write a slice of its keys,
 * in key order, into the state table, and the last of them makes the
 * first one's id the checkpoint (meta "journal") and deletes the journal
 * records up to it (checkpoint_slice() says why that is enough). Every
 * step is inside LMDB transactions, so a crash anywhere leaves a state
 * table and a journal that together equal the log, and an open finds the
 * journal to load. Commits whose keys the overlay holds nothing of, when
 * they are few or lie together in the table, write the table directly.
 *
 * Views. Read transactions of this handle may be open from before a
 * commit, and other processes commit too, so the overlay keeps every value
 * with the id of the transaction that wrote it, and each open transaction
 * (a view, registered at its begin) sees the values with lo < id <= hi:
 * lo the checkpoint of its snapshot (the state table holds everything up
 * to it), hi the id of its snapshot's last commit with state records (a
 * writer's: the next, its own, so it sees its own writes and nobody else
 * does). A begin loads the journal records its
 * snapshot has and the handle has not; records another process folded
 * into a checkpoint since are at or below the new lo, so not needed. When
 * no open view can see a value any more it is freed (prune).
 *
 * A writer's values go into the overlay as it writes, under its id, and
 * are listed as pending: its commit turns them into its journal record;
 * its abort drops them.
 */
#include <lmdb.h>
#include <stdio.h>
#include <string.h>

#include "checksum.h"
#include "oplog_int.h"

#define DELETED 0xFFFFFFFFu
/* A commit's record goes in parts of about this many bytes, keyed by its
 * id and the part's number: parts fit in a page, so the journal is plain
 * leaf pages, which LMDB reuses one by one after a checkpoint frees them
 * (a large value would need a run of free pages in a row, and LMDB grows
 * the file when it finds none). */
#define PART_BYTES 1800
#define KEY_BYTES 12

static void
part_key(uint64_t id, uint32_t part, uint8_t out[KEY_BYTES])
{
    cvg__put_be64(out, id);
    cvg__put_be32(out + 8, part);
}

static cvg__view *
find_view(cvg__store *s, const cvg__store_txn *t)
{
    for (size_t i = 0; i < s->nviews; i++) {
        if (s->views[i].t == t) {
            return &s->views[i];
        }
    }
    return NULL;
}

const cvg__view *
cvg__journal_view(cvg__store *s, const cvg__store_txn *t)
{
    return s->has_journal ? find_view(s, t) : NULL;
}

/* Free what no open view sees: values at or below every view's lo. */
static void
prune(cvg__store *s)
{
    uint64_t upto = s->ckpt;
    for (size_t i = 0; i < s->nviews; i++) {
        if (s->views[i].lo < upto) {
            upto = s->views[i].lo;
        }
    }
    if (upto > s->pruned) {
        cvg__ov_prune(&s->ov, upto);
        s->pruned = upto;
    }
}

/* CVG_ECORRUPT, said in the store's message: @p what is damaged. */
static int
damaged(cvg__store *s, const char *what)
{
    if (s->err != NULL && s->errlen > 0) {
        snprintf(s->err, s->errlen,
                 "%s: %s is damaged (converge check tells how far)",
                 s->path ? s->path : "replica", what);
    }
    return CVG_ECORRUPT;
}

/* Decode journal record @p id into the overlay. */
static int
load_record(cvg__store *s, uint64_t id, const uint8_t *p, size_t n)
{
    const uint8_t *end = p + n;
    while (p < end) {
        if ((size_t)(end - p) < 2) {
            return CVG_ECORRUPT;
        }
        uint32_t klen = (uint32_t)p[0] << 8 | p[1];
        p += 2;
        if (klen == 0 || klen > CVG__STATE_KEY_MAX ||
            (size_t)(end - p) < (size_t)klen + 4) {
            return CVG_ECORRUPT;
        }
        const uint8_t *key = p;
        p += klen;
        uint32_t vlen = cvg__get_be32(p);
        p += 4;
        bool del = vlen == DELETED;
        if (!del && (size_t)(end - p) < vlen) {
            return CVG_ECORRUPT;
        }
        int rc = cvg__ov_put(&s->ov, key, klen, cvg__state_field_len(key, klen),
                             id, p, del ? 0 : vlen, del);
        if (rc != CVG_OK) {
            return rc;
        }
        p += del ? 0 : vlen;
    }
    return CVG_OK;
}

/* Load the records in (from, upto] of snapshot @p t. */
static int
load(cvg__store *s, cvg__store_txn *t, uint64_t from, uint64_t upto)
{
    MDB_cursor *c;
    int mrc = mdb_cursor_open(t, s->journal, &c);
    if (mrc != MDB_SUCCESS) {
        return cvg__mdb_err(mrc);
    }
    uint8_t kb[KEY_BYTES];
    part_key(from + 1, 0, kb);
    MDB_val k = {KEY_BYTES, kb}, v;
    int rc = CVG_OK;
    for (mrc = cvg__ck_cursor_get(s, c, &k, &v, MDB_SET_RANGE);
         mrc == MDB_SUCCESS; mrc = cvg__ck_cursor_get(s, c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != KEY_BYTES) {
            rc = CVG_ECORRUPT;
            break;
        }
        uint64_t id = cvg__get_be64(k.mv_data);
        if (id > upto) {
            break;
        }
        rc = load_record(s, id, v.mv_data, v.mv_size);
        if (rc != CVG_OK) {
            break;
        }
    }
    mdb_cursor_close(c);
    if (rc == CVG_OK && mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND) {
        rc = cvg__mdb_err(mrc);
    }
    return rc == CVG_ECORRUPT ? damaged(s, "a journal record") : rc;
}

/* Meta "journal": the id of the last commit that wrote state records,
 * then the checkpoint's, 16 bytes. Ids are the journal's own, not LMDB's
 * transaction ids, which a compacting copy starts again from 1. */
static int
read_pos(cvg__store *s, cvg__store_txn *t, uint64_t *last, uint64_t *ckpt)
{
    *last = *ckpt = 0;
    cvg_bytes b;
    int rc = cvg__meta_get(s, t, "journal", &b);
    if (rc == CVG_ENOTFOUND) {
        return CVG_OK;
    }
    if (rc == CVG_OK && b.len != 16) {
        rc = CVG_ECORRUPT;
    }
    if (rc == CVG_OK) {
        *last = cvg__get_be64(b.data);
        *ckpt = cvg__get_be64(b.data + 8);
        if (*ckpt > *last) {
            rc = CVG_ECORRUPT;
        }
    }
    return rc == CVG_ECORRUPT ? damaged(s, "the journal's meta record") : rc;
}

static int
write_pos(cvg__store *s, cvg__store_txn *t, uint64_t last, uint64_t ckpt)
{
    uint8_t b[16];
    cvg__put_be64(b, last);
    cvg__put_be64(b + 8, ckpt);
    cvg_bytes v = {b, sizeof b};
    return cvg__meta_put(s, t, "journal", v);
}

int
cvg__journal_begin(cvg__store *s, cvg__store_txn *t, bool write)
{
    if (!s->has_journal) {
        return CVG_OK;
    }
    void *a = s->views;
    int rc = cvg__grow(&a, &s->capviews, s->nviews + 1, sizeof *s->views);
    s->views = a;
    if (rc != CVG_OK) {
        return rc;
    }
    uint64_t committed, lo;
    rc = read_pos(s, t, &committed, &lo);
    if (rc != CVG_OK) {
        return rc;
    }
    if (write && committed == UINT64_MAX) {
        return CVG_ELIMIT;
    }
    if (write && s->ov.pending_id != 0) {
        cvg__ov_drop_pending(&s->ov); /* never ended: cannot happen */
    }
    /* A writer's own id is the next. */
    uint64_t id = write ? committed + 1 : committed;
    if (committed > s->loaded) {
        rc = load(s, t, s->loaded > lo ? s->loaded : lo, committed);
        if (rc != CVG_OK) {
            return rc;
        }
        s->loaded = committed;
    }
    cvg__view w = {t, lo, id, write, false, false, CVG__SLICE_NONE};
    s->views[s->nviews++] = w;
    if (write) {
        s->ov.pending_id = id;
    }
    if (lo > s->ckpt) {
        s->ckpt = lo;
        prune(s);
    }
    return CVG_OK;
}

/* A writer that wrote a slice committed: where the next one starts. */
static void
slice_committed(cvg__store *s, const cvg__view *w)
{
    if (w->slice == CVG__SLICE_FIRST) {
        s->cycle_start = w->hi;
    }
    if (w->slice == CVG__SLICE_FIRST || w->slice == CVG__SLICE_NEXT) {
        cvg__buf b = s->cycle_resume;
        s->cycle_resume = s->cycle_next;
        s->cycle_next = b;
    } else if (w->slice == CVG__SLICE_LAST) {
        s->cycle_start = 0;
    }
}

void
cvg__journal_end(cvg__store *s, const cvg__store_txn *t, bool committed)
{
    cvg__view *w = find_view(s, t);
    if (w == NULL) {
        return;
    }
    if (w->write) {
        if (w->direct) {
            /* Its records are in the state table, where every later
             * snapshot reads them, and of keys the overlay had nothing of:
             * the overlay keeps none of it, committed or not. */
            cvg__ov_drop_pending(&s->ov);
        } else if (committed) {
            cvg__ov_keep_pending(&s->ov);
            /* Its record is in, and every one before it was loaded at its
             * begin. (One that wrote none left the id to the next.) */
            if (w->sealed) {
                s->loaded = w->hi;
            }
            if (w->lo > s->ckpt) {
                s->ckpt = w->lo; /* it made a checkpoint */
            }
            slice_committed(s, w);
        } else {
            cvg__ov_drop_pending(&s->ov);
        }
    }
    *w = s->views[--s->nviews];
    prune(s);
    /* Keys left with no value (direct commits, aborts) are freed in one
     * pass once they are many. */
    if (s->ov.empty > 1024 && s->ov.empty * 2 > s->ov.n) {
        cvg__ov_prune(&s->ov, 0);
    }
}

static int
put_part(cvg__store *s, cvg__store_txn *t, uint64_t id, uint32_t part,
         cvg__buf *b)
{
    uint8_t kb[KEY_BYTES];
    part_key(id, part, kb);
    MDB_val k = {KEY_BYTES, kb}, v = {b->len, b->p};
    b->len = 0;
    return cvg__mdb_err(cvg__ck_put(s, t, s->journal, &k, &v, MDB_APPEND));
}

/* This writer's journal record: each pending key with its value. */
static int
write_record(cvg__store *s, cvg__store_txn *t, const cvg__view *w)
{
    cvg__overlay *ov = &s->ov;
    cvg__buf b = {0};
    uint32_t part = 0;
    int rc = CVG_OK;
    for (size_t i = 0; rc == CVG_OK && i < ov->npending; i++) {
        const cvg__ov_node *nd = ov->pending[i];
        const cvg__ov_version *v = cvg__ov_visible(nd, w->hi - 1, w->hi);
        if (v == NULL) {
            continue;
        }
        size_t need = 2 + nd->klen + 4 + v->len;
        if (b.len > 0 && b.len + need > PART_BYTES) {
            rc = put_part(s, t, w->hi, part++, &b);
            if (rc != CVG_OK) {
                break;
            }
        }
        rc = cvg__buf_reserve(&b, need);
        if (rc != CVG_OK) {
            break;
        }
        uint8_t *p = b.p + b.len;
        p[0] = (uint8_t)(nd->klen >> 8);
        p[1] = (uint8_t)nd->klen;
        memcpy(p + 2, nd->key, nd->klen);
        p += 2 + nd->klen;
        cvg__put_be32(p, v->val ? v->len : DELETED);
        if (v->val && v->len > 0) {
            memcpy(p + 4, v->val, v->len);
        }
        b.len += 2 + nd->klen + 4 + v->len;
    }
    if (rc == CVG_OK && b.len > 0) {
        rc = put_part(s, t, w->hi, part, &b);
    }
    if (rc == CVG_OK) {
        rc = write_pos(s, t, w->hi, w->lo);
    }
    cvg__buf_free(&b);
    return rc;
}

/* Write every newest value the writer sees into the state table, in key
 * order, empty the journal, and make the writer's id the checkpoint. */
static int
checkpoint(cvg__store *s, cvg__store_txn *t, cvg__view *w)
{
    cvg__overlay *ov = &s->ov;
    cvg__ov_node *nd;
    int rc = cvg__ov_seek(ov, (const uint8_t *)"", 0, false, &nd);
    for (size_t i = 0; rc == CVG_OK && i < ov->nsorted; i++) {
        nd = ov->sorted[i];
        const cvg__ov_version *v = cvg__ov_visible(nd, w->lo, w->hi);
        if (v == NULL) {
            continue;
        }
        rc = cvg__state_table_write(s, t, nd->key, nd->klen, v->val, v->len);
    }
    if (rc == CVG_OK) {
        rc = cvg__mdb_err(mdb_drop(t, s->journal, 0));
    }
    if (rc == CVG_OK) {
        rc = write_pos(s, t, w->hi, w->hi);
    }
    if (rc == CVG_OK) {
        w->lo = w->hi; /* the state table now holds all it sees */
        w->slice = CVG__SLICE_LAST;
    }
    return rc;
}

/* Delete the journal records with ids up to @p upto: the state table holds
 * all they say. */
static int
delete_upto(cvg__store *s, cvg__store_txn *t, uint64_t upto)
{
    MDB_cursor *c;
    int mrc = mdb_cursor_open(t, s->journal, &c);
    if (mrc != MDB_SUCCESS) {
        return cvg__mdb_err(mrc);
    }
    MDB_val k, v;
    int rc = CVG_OK;
    while ((mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST)) == MDB_SUCCESS) {
        if (k.mv_size != KEY_BYTES) {
            rc = damaged(s, "a journal record");
            break;
        }
        if (cvg__get_be64(k.mv_data) > upto) {
            break;
        }
        mrc = mdb_cursor_del(c, 0);
        if (mrc != MDB_SUCCESS) {
            break;
        }
    }
    mdb_cursor_close(c);
    if (rc == CVG_OK && mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND) {
        rc = cvg__mdb_err(mrc);
    }
    return rc;
}

/*
 * A checkpoint spread over commits. Writing every newest value at once
 * rewrites most leaves of the state table in one commit: a slow commit,
 * and a file that grows by a copy of the table, since LMDB reuses the
 * pages a transaction frees only after it. So the commit that finds the
 * overlay past its bound, and the next ones, each write their journal
 * record as usual and then the next slice of the overlay's keys, in key
 * order, with the newest value each sees. Once the last slice is written,
 * every key holds in the state table at least what it had at the first
 * slice's commit (a key's value written later is in the table or still in
 * the journal, newer): that id becomes the checkpoint, and the journal
 * records up to it go. Views need nothing new: a value in the table newer
 * than a view's checkpoint is also in the overlay, where the view finds
 * it first. Only the handle knows how far its cycle has come; after a
 * crash the next cycle starts over, and another process's checkpoint past
 * its start makes it moot.
 */
static int
checkpoint_slice(cvg__store *s, cvg__store_txn *t, cvg__view *w)
{
    cvg__overlay *ov = &s->ov;
    bool first = s->cycle_start == 0;
    size_t at;
    int rc = first ? cvg__ov_seek_at(ov, (const uint8_t *)"", 0, false, &at)
                   : cvg__ov_seek_at(ov, s->cycle_resume.p,
                                     (uint32_t)s->cycle_resume.len, true, &at);
    if (rc != CVG_OK) {
        return rc;
    }
    if (first) {
        s->cycle_per = (ov->nsorted + s->ckpt_slices - 1) / s->ckpt_slices;
    }
    size_t end =
        ov->nsorted - at > s->cycle_per ? at + s->cycle_per : ov->nsorted;
    if (first && end == ov->nsorted) {
        return checkpoint(s, t, w); /* one slice: all at once */
    }
    rc = write_record(s, t, w);
    for (size_t i = at; rc == CVG_OK && i < end; i++) {
        const cvg__ov_node *nd = ov->sorted[i];
        const cvg__ov_version *v = cvg__ov_visible(nd, w->lo, w->hi);
        if (v != NULL) {
            rc =
                cvg__state_table_write(s, t, nd->key, nd->klen, v->val, v->len);
        }
    }
    if (rc != CVG_OK) {
        return rc;
    }
    if (end < ov->nsorted) {
        const cvg__ov_node *last = ov->sorted[end - 1];
        s->cycle_next.len = 0;
        rc = cvg__buf_append(&s->cycle_next, last->key, last->klen);
        if (rc == CVG_OK) {
            w->slice = first ? CVG__SLICE_FIRST : CVG__SLICE_NEXT;
        }
        return rc;
    }
    uint64_t upto = s->cycle_start > w->lo ? s->cycle_start : w->lo;
    rc = delete_upto(s, t, upto);
    if (rc == CVG_OK) {
        rc = write_pos(s, t, w->hi, upto);
    }
    if (rc == CVG_OK) {
        w->lo = upto;
        w->slice = CVG__SLICE_LAST;
    }
    return rc;
}

/* A small commit of keys the overlay holds nothing of writes them into the
 * state table itself, as it would without a journal: a few pages, and
 * nothing to load or checkpoint later. */
static int
write_direct(cvg__store *s, cvg__store_txn *t, cvg__view *w)
{
    cvg__overlay *ov = &s->ov;
    int rc = CVG_OK;
    for (size_t i = 0; rc == CVG_OK && i < ov->npending; i++) {
        cvg__ov_node *nd = ov->pending[i];
        const cvg__ov_version *v = &nd->v[0];
        rc = cvg__state_table_write(s, t, nd->key, nd->klen, v->val, v->len);
    }
    w->direct = rc == CVG_OK;
    return rc;
}

/* Pairs of keys next to each other that together_in_table() looks at,
 * and how many table keys between two make them lie apart (well under
 * the records of a leaf). */
#define TOGETHER_PAIRS 32
#define TOGETHER_GAP 8

/*
 * Whether the pending keys lie together in the state table: new keys in
 * order, many fields of one record. Writing them there dirties a few
 * leaves, and a journal record would add its own pages, a checkpoint
 * later and the overlay's CPU to what was cheap already. Judged from up
 * to TOGETHER_PAIRS pairs of keys next to each other in key order, spread
 * over the commit: they lie together when at most one pair in eight has
 * TOGETHER_GAP or more table keys between its two.
 */
static int
together_in_table(cvg__store *s, cvg__store_txn *t, bool *together)
{
    cvg__overlay *ov = &s->ov;
    size_t n = ov->npending;
    *together = false;
    /* In key order, the pending list (whose order nothing else needs)
     * also gives write_direct() its keys in order: leaves filled one
     * after another, not split in the middle. */
    cvg__ov_node **v = ov->pending;
    qsort(v, n, sizeof *v, cvg__ov_node_cmp);
    MDB_cursor *c;
    int mrc = mdb_cursor_open(t, s->state, &c);
    if (mrc != MDB_SUCCESS) {
        return cvg__mdb_err(mrc);
    }
    size_t pairs = n - 1 < TOGETHER_PAIRS ? n - 1 : TOGETHER_PAIRS;
    size_t apart = 0;
    for (size_t j = 0; j < pairs && mrc == MDB_SUCCESS; j++) {
        const cvg__ov_node *a = v[j * (n - 1) / pairs];
        const cvg__ov_node *b = v[j * (n - 1) / pairs + 1];
        MDB_val k = {a->klen, (void *)a->key}, d;
        unsigned between = 0;
        for (mrc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
             mrc == MDB_SUCCESS && between < TOGETHER_GAP &&
             cvg__ov_key_cmp(k.mv_data, k.mv_size, b->key, b->klen) < 0;
             mrc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
            between +=
                cvg__ov_key_cmp(k.mv_data, k.mv_size, a->key, a->klen) != 0;
        }
        apart += between >= TOGETHER_GAP;
        if (mrc == MDB_NOTFOUND) {
            mrc = MDB_SUCCESS; /* past the table's last key */
        }
    }
    mdb_cursor_close(c);
    if (mrc != MDB_SUCCESS) {
        return cvg__mdb_err(mrc);
    }
    *together = apart * 8 <= pairs;
    return CVG_OK;
}

int
cvg__journal_seal(cvg__store *s, cvg__store_txn *t)
{
    cvg__view *w = s->has_journal ? find_view(s, t) : NULL;
    if (w == NULL || !w->write || s->ov.npending == 0) {
        return CVG_OK;
    }
    cvg__overlay *ov = &s->ov;
    if (cvg__ov_pending_all_new(ov)) {
        if (ov->npending <= s->direct_max) {
            return write_direct(s, t, w);
        }
        /* Larger commits too, when their keys lie together. */
        bool together = false;
        int rc =
            s->direct_max > 0 ? together_in_table(s, t, &together) : CVG_OK;
        if (rc != CVG_OK) {
            return rc;
        }
        if (together) {
            return write_direct(s, t, w);
        }
    }
    if (s->cycle_start != 0 && w->lo >= s->cycle_start) {
        s->cycle_start = 0; /* another process checkpointed past it */
    }
    bool over = ov->versions > s->ov_max_values || ov->bytes > s->ov_max_bytes;
    /* Values come in faster than slices take them out: all at once. */
    bool far_over =
        ov->versions / 2 > s->ov_max_values || ov->bytes / 2 > s->ov_max_bytes;
    int rc;
    if (far_over || (over && s->ckpt_slices <= 1)) {
        rc = checkpoint(s, t, w);
    } else if (over || s->cycle_start != 0) {
        rc = checkpoint_slice(s, t, w);
    } else {
        rc = write_record(s, t, w);
    }
    w->sealed = rc == CVG_OK;
    return rc;
}

int
cvg__journal_checkpoint(cvg__store *s, cvg__store_txn *t)
{
    cvg__view *w = s->has_journal ? find_view(s, t) : NULL;
    if (w == NULL || !w->write) {
        return CVG_EINVAL;
    }
    int rc = checkpoint(s, t, w);
    w->sealed = rc == CVG_OK;
    return rc;
}

bool
cvg__journal_pending(const cvg__store *s)
{
    return s->has_journal && s->ov.n > 0;
}

void
cvg__journal_free(cvg__store *s)
{
    cvg__ov_destroy(&s->ov);
    cvg__buf_free(&s->cycle_resume);
    cvg__buf_free(&s->cycle_next);
    cvg__free(s->views);
    s->views = NULL;
    s->nviews = s->capviews = 0;
}
