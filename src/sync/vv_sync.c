/*
 * Version vectors between peers (protocol 5 on; 6 for the digest): each
 * side sends only what the other does not already know of its vector, and
 * what a delta costs either side is the size of the delta, not of the
 * vector.
 *
 * A replica's vector at an lsn L of its own log is a function of L: the log
 * only grows, and an origin's ops sit in it in seq order. So the entries
 * that changed since L are those of the origins in the log's blocks after
 * L, which a walk of block headers finds (no op is decoded). Once the
 * peer's HELLO says who it is, a side sends its vector at its log's end as
 * VV messages: whole (base 0), or, when the peer took one of its vectors
 * before (at lsn `sent_end`, remembered per peer), as the entries changed
 * since that one. Either way with the count and the digest of the whole
 * vector, and split into messages of VV_PAGE entries, so that no number of
 * origins is too many. The digest is a sum of one hash per entry
 * (src/crdt/vv_sum.c), which the replica keeps up to date as it commits,
 * so sending it costs nothing per origin.
 *
 * The receiver checks a delta against its memory of the peer without
 * rebuilding the vector: the memory holds the peer's count and digest, and
 * each entry that comes replaces, in both, the one the memory had for its
 * origin (looked up: the memory's differences, else our own vector at the
 * memory's my_at, which is ours now but for the origins of our blocks
 * since). If count and digest then match, the peer's vector is taken as
 * ours now plus the few places it differs (peer_vv.h). Memory that is
 * lost, stale, damaged or simply another than the sender assumed gives
 * another digest; the receiver then sends VV_WANT (once) and the sender
 * its vector whole (once). So a wrong memory on either side costs a whole
 * vector, never a wrong one. A whole vector whose digest does not match is
 * the sender's error: CVG_EPROTO.
 *
 * What a side remembers of a peer (the peer store, key id + 'v'), once the
 * peer proved its key, big-endian:
 *   0   u8 version (2)
 *   1   u64 sent_end  the lsn of our vector the peer took last (0: none)
 *   9   u64 peer_at   the peer's vector we hold is the one at its lsn
 *                     peer_at (0: none), and it is
 *   17  u64 my_at     our own vector at our lsn my_at, but for the
 *                     differences below
 *   25  u64 count     the number of entries of the peer's vector,
 *   33  32 bytes      and its digest (cvg__vv_sum_bytes)
 *   65  u32 n         n differences, sorted by origin:
 *   69  n x (origin (16), u64 seq)   seq 0: the peer had none of it
 * Holding the peer's vector as a difference from our own keeps the memory
 * of a peer small (peers that sync often differ in few origins) however
 * many origins there are; one that differs in more than MEM_ENTRIES_MAX
 * is not remembered, and its next vector comes whole. The record is read
 * as hostile bytes: one that does not check is no memory.
 *
 * Nothing of a vector that is coming is kept but what this side needs: the
 * entries of origins it has (for the pages it serves and the fork checks),
 * its own origin's (a peer claiming more of our ops than we made stops the
 * session), and up to MEM_ENTRIES_MAX others (for the memory). So however
 * many entries a hostile peer sends, what it costs here is bounded by our
 * own vector; its heads, likewise, are kept only for origins we have.
 *
 * Forks: heads come with the entries sent, so a delta carries the heads of
 * what changed. An origin the peer did not change since we last compared
 * its head, and that we did not change either, was compared then; one we
 * got further in since is compared by the peer, whose delta-less entry we
 * do not see, when our delta reaches it, or else shows when its ops travel
 * (their signature points are checked against the receiver's history).
 */
#include <stdio.h>

#include "session_int.h"

#define VV_PAGE 16384u             /* entries per VV message (about 600 KB) */
#define SCAN_SPANS_MAX (1u << 20)  /* log blocks walked to find what changed */
#define MEM_ENTRIES_MAX (1u << 14) /* differences remembered per peer */
#define MEM_VERSION 2
#define MEM_HEAD 69

typedef struct vv_mem {
    uint64_t sent_end;
    uint64_t peer_at;
    uint64_t my_at;
    uint64_t count;  /* entries of the peer's vector */
    cvg__vv_sum sum; /* and its digest */
    cvg_dot *d;
    size_t n;
} vv_mem;

struct cvg__vv_in {
    vv_mem old;   /* as stored when the peer's HELLO came */
    vv_mem fresh; /* to store: the vector just taken */
    bool have_fresh;
    /* The vector coming: its header, as its first message gave it. */
    bool active;
    bool skipping; /* a delta we cannot use: wait for its end, then WANT */
    uint64_t at, base, total;
    uint8_t digest[CVG__VV_DIGEST_BYTES];
    /* Ours, at our lsn my_at, when it started; for a delta, our origins
     * whose ops run past the memory's my_at, with the first seq there. */
    cvg__vv mine;
    size_t imine; /* a whole vector's walk of mine, in step with it */
    uint64_t my_at;
    cvg_dot *moved;
    size_t nmoved;
    /* The coming vector's digest and count so far, and its last origin. */
    cvg__vv_sum sum;
    uint64_t count;
    bool has_last;
    cvg_replica_id last;
    /* What is kept of its entries (see the top): ours, our own origin's,
     * and up to MEM_ENTRIES_MAX others (nunk of them). */
    cvg_dot *got;
    size_t ngot, capgot, nunk;
    bool unk_over;
    cvg_dot *hat;
    uint8_t *heads;
    size_t nheads, caphat, capheads;
};

/* ---- Memory bytes -------------------------------------------------------- */

static void
mem_clear(vv_mem *m)
{
    cvg__free(m->d);
    memset(m, 0, sizeof *m);
}

/* @p b into @p m; CVG_ECORRUPT (and @p m empty) for bytes that do not
 * check. */
static int
mem_decode(cvg_bytes b, vv_mem *m)
{
    memset(m, 0, sizeof *m);
    if (b.len < MEM_HEAD || b.data[0] != MEM_VERSION) {
        return CVG_ECORRUPT;
    }
    const uint8_t *p = b.data;
    uint64_t n = cvg__get_be32(p + 65);
    if (n > MEM_ENTRIES_MAX || b.len != MEM_HEAD + 24 * n) {
        return CVG_ECORRUPT;
    }
    uint64_t peer_at = cvg__get_be64(p + 9), my_at = cvg__get_be64(p + 17);
    if (peer_at == 0 && (my_at != 0 || n != 0)) {
        return CVG_ECORRUPT;
    }
    cvg_dot *d = NULL;
    if (n > 0) {
        d = cvg__alloc(n * sizeof *d);
        if (d == NULL) {
            return CVG_ENOMEM;
        }
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(d[i].origin.bytes, p + MEM_HEAD + 24 * i, 16);
        d[i].seq = cvg__get_be64(p + MEM_HEAD + 24 * i + 16);
        if (i > 0 && cvg__id_cmp(&d[i - 1].origin, &d[i].origin) >= 0) {
            cvg__free(d);
            return CVG_ECORRUPT;
        }
    }
    m->sent_end = cvg__get_be64(p + 1);
    m->peer_at = peer_at;
    m->my_at = my_at;
    m->count = cvg__get_be64(p + 25);
    for (int i = 0; i < 4; i++) {
        m->sum.w[i] = cvg__get_be64(p + 33 + 8 * i);
    }
    m->d = d;
    m->n = n;
    return CVG_OK;
}

static int
mem_encode(const vv_mem *m, cvg__buf *out)
{
    out->len = 0;
    int rc = cvg__buf_reserve(out, MEM_HEAD + 24 * m->n);
    if (rc != CVG_OK) {
        return rc;
    }
    uint8_t *p = out->p;
    p[0] = MEM_VERSION;
    cvg__put_be64(p + 1, m->sent_end);
    cvg__put_be64(p + 9, m->peer_at);
    cvg__put_be64(p + 17, m->my_at);
    cvg__put_be64(p + 25, m->count);
    cvg__vv_sum_bytes(&m->sum, p + 33);
    cvg__put_be32(p + 65, (uint32_t)m->n);
    for (size_t i = 0; i < m->n; i++) {
        memcpy(p + MEM_HEAD + 24 * i, m->d[i].origin.bytes, 16);
        cvg__put_be64(p + MEM_HEAD + 24 * i + 16, m->d[i].seq);
    }
    out->len = MEM_HEAD + 24 * m->n;
    return CVG_OK;
}

/* ---- Our vector at an lsn ------------------------------------------------ */

/* The origins of our log's ops after lsn @p after, each with the first seq
 * found there, sorted by origin: CVG_ELIMIT past SCAN_SPANS_MAX blocks. */
static int
touched_since(cvg_replica *r, cvg_txn *t, uint64_t after, cvg_dot **out,
              size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    cvg__log_iter it;
    int rc = cvg__log_iter_open(cvg__replica_store(r), cvg__txn_store_txn(t),
                                after + 1, &it);
    cvg_dot *arr = NULL;
    size_t n = 0, cap = 0, spans = 0;
    while (rc == CVG_OK) {
        cvg__log_span span;
        rc = cvg__log_iter_span(&it, &span);
        if (rc != CVG_OK) {
            break;
        }
        if (++spans > SCAN_SPANS_MAX) {
            rc = CVG_ELIMIT;
            break;
        }
        void *a = arr;
        rc = cvg__grow(&a, &cap, n + 1, sizeof *arr);
        arr = a;
        if (rc == CVG_OK) {
            arr[n].origin = span.origin;
            arr[n].seq = span.first_seq;
            n++;
            cvg__log_iter_skip_span(&it);
        }
    }
    cvg__log_iter_close(&it);
    if (rc != CVG_DONE) {
        cvg__free(arr);
        return rc == CVG_OK ? CVG_ECORRUPT : rc;
    }
    if (n > 1) {
        qsort(arr, n, sizeof *arr, cvg__dot_cmp_v);
    }
    /* One per origin: its first seq after the lsn, the smallest. */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k == 0 || cvg__id_cmp(&arr[k - 1].origin, &arr[i].origin) != 0) {
            arr[k++] = arr[i];
        }
    }
    *out = arr;
    *n_out = k;
    return CVG_OK;
}

/* ---- Sending ------------------------------------------------------------- */

/* Our vector, whole or (with @p whole false and a vector the peer took)
 * as what changed, in VV messages with the heads of what they carry. */
static int
send_vector(cvg_session *s, bool whole)
{
    cvg_txn *t;
    int rc = cvg_txn_begin(s->r, CVG_TXN_READ_ONLY, &t);
    if (rc != CVG_OK) {
        return cvg__session_fail(s, rc, "cannot read the version vector");
    }
    const cvg__vv *vv = cvg__txn_vv(t);
    uint64_t at = cvg__txn_next_lsn(t) - 1;
    uint64_t base = whole ? 0 : s->vin->old.sent_end;
    cvg_dot *delta = NULL;
    size_t nd = 0;
    if (base > at) {
        base = 0; /* a vector we never had: this replica was restored */
    }
    if (base > 0) {
        rc = touched_since(s->r, t, base, &delta, &nd);
        if (rc == CVG_ELIMIT) {
            base = 0; /* so much changed that the whole is as cheap */
            rc = CVG_OK;
        }
        /* An origin's current seq, for each one that changed. */
        for (size_t i = 0; rc == CVG_OK && i < nd; i++) {
            delta[i].seq = cvg__vv_get(vv, &delta[i].origin);
        }
    }
    uint8_t digest[CVG__VV_DIGEST_BYTES];
    cvg__txn_vv_sum(t, digest);
    const cvg_dot *e = base > 0 ? delta : vv->e;
    size_t n = base > 0 ? nd : vv->n;
    uint8_t *heads =
        rc == CVG_OK ? cvg__alloc(VV_PAGE * CVG__HEAD_BYTES) : NULL;
    if (rc == CVG_OK && heads == NULL) {
        rc = CVG_ENOMEM;
    }
    size_t off = 0;
    do {
        size_t k = n - off < VV_PAGE ? n - off : VV_PAGE;
        for (size_t i = 0; rc == CVG_OK && i < k; i++) {
            uint8_t d[CVG__DIGEST_BYTES];
            rc = cvg__txn_history_digest(t, &e[off + i].origin, e[off + i].seq,
                                         d);
            if (rc == CVG_OK) {
                memcpy(heads + i * CVG__HEAD_BYTES, d, CVG__HEAD_BYTES);
            }
        }
        if (rc != CVG_OK) {
            break;
        }
        cvg__msg m;
        memset(&m, 0, sizeof m);
        m.type = CVG__MSG_VV;
        m.version = CVG_PROTOCOL_VERSION;
        m.vv_at = at;
        m.vv_base = base;
        m.vv_total = vv->n;
        m.vv_digest = digest;
        m.has_more = off + k < n;
        m.vv = k > 0 ? e + off : NULL;
        m.heads = k > 0 ? heads : NULL;
        m.vv_n = k;
        rc = cvg__session_enqueue(s, &m);
        off += k;
    } while (rc == CVG_OK && off < n);
    cvg__free(heads);
    cvg__free(delta);
    cvg_txn_abort(t);
    if (rc != CVG_OK) {
        return cvg__session_fail(s, rc, "cannot send the version vector");
    }
    s->vv_at = at;
    return CVG_OK;
}

int
cvg__session_send_vv(cvg_session *s)
{
    /* What we remember of this peer, now that its HELLO said who it is. */
    s->vin = cvg__calloc(1, sizeof *s->vin);
    if (s->vin == NULL) {
        return cvg__session_fail(s, CVG_ENOMEM, "out of memory");
    }
    cvg_txn *t;
    int rc = cvg_txn_begin(s->r, CVG_TXN_READ_ONLY, &t);
    if (rc != CVG_OK) {
        return cvg__session_fail(s, rc, "cannot read the peer's record");
    }
    cvg__buf b = {0};
    rc = cvg__peer_mem_read(s->r, t, &s->stats.peer, &b);
    cvg_txn_abort(t);
    if (rc == CVG_OK) {
        rc = mem_decode((cvg_bytes){b.p, b.len}, &s->vin->old);
    }
    cvg__buf_free(&b);
    if (rc == CVG_ENOMEM) {
        return cvg__session_fail(s, rc, "out of memory");
    }
    /* None, or none we can read: the vectors go whole. */
    return send_vector(s, false);
}

int
cvg__session_on_vv_want(cvg_session *s, const cvg__msg *m)
{
    (void)m;
    if (!s->got_hello) {
        return cvg__session_fail(s, CVG_EPROTO, "VV_WANT before HELLO");
    }
    if (s->vv_answered) {
        return cvg__session_fail(s, CVG_EPROTO, "a second VV_WANT");
    }
    s->vv_answered = true;
    return send_vector(s, true);
}

/* ---- Receiving ----------------------------------------------------------- */

static void
in_reset(cvg__vv_in *in)
{
    cvg__vv_destroy(&in->mine);
    cvg__free(in->moved);
    cvg__free(in->got);
    cvg__free(in->hat);
    cvg__free(in->heads);
    in->moved = in->got = in->hat = NULL;
    in->heads = NULL;
    in->nmoved = in->ngot = in->capgot = in->nunk = in->imine = 0;
    in->nheads = in->caphat = in->capheads = 0;
    in->unk_over = false;
    in->active = false;
    in->skipping = false;
    in->count = 0;
    memset(&in->sum, 0, sizeof in->sum);
    in->has_last = false;
}

static int
push_dot(cvg_dot **arr, size_t *n, size_t *cap, const cvg_dot *d)
{
    void *a = *arr;
    int rc = cvg__grow(&a, cap, *n + 1, sizeof **arr);
    *arr = a;
    if (rc == CVG_OK) {
        (*arr)[(*n)++] = *d;
    }
    return rc;
}

static const cvg_dot *
find_dot(const cvg_dot *arr, size_t n, const cvg_replica_id *origin)
{
    bool found;
    size_t i = cvg__id_search(arr, n, sizeof *arr, origin, &found);
    return found ? &arr[i] : NULL;
}

/* The peer's seq of @p origin in the vector we remember (a delta's base):
 * ours at the memory's my_at, but for the memory's differences. */
static uint64_t
remembered(const cvg__vv_in *in, const cvg_replica_id *origin)
{
    const cvg_dot *d = find_dot(in->old.d, in->old.n, origin);
    if (d != NULL) {
        return d->seq;
    }
    d = find_dot(in->moved, in->nmoved, origin);
    return d != NULL ? d->seq - 1 : cvg__vv_get(&in->mine, origin);
}

/* One entry of the peer's vector, whole or changed, in origin order: into
 * the digest and the count, and kept if it is of use here. */
static int
emit(cvg_session *s, const cvg_dot *d, const uint8_t *head)
{
    cvg__vv_in *in = s->vin;
    uint64_t was = in->base != 0 ? remembered(in, &d->origin) : 0;
    if (was == 0) {
        if (in->count >= in->total) {
            return CVG_EPROTO;
        }
        in->count++;
    }
    cvg__vv_sum_entry(&in->sum, &d->origin, was, -1);
    cvg__vv_sum_entry(&in->sum, &d->origin, d->seq, 1);
    /* Ours: a walk of our vector in step with a whole one (its entries
     * come in origin order), a search for the few of a delta. */
    bool ours;
    if (in->base == 0) {
        const cvg__vv *v = &in->mine;
        while (in->imine < v->n &&
               cvg__id_cmp(&v->e[in->imine].origin, &d->origin) < 0) {
            in->imine++;
        }
        ours =
            in->imine < v->n && cvg__id_eq(&v->e[in->imine].origin, &d->origin);
    } else {
        ours = cvg__vv_get(&in->mine, &d->origin) > 0;
    }
    if (!ours && !cvg__id_eq(&d->origin, cvg__replica_self(s->r))) {
        if (in->nunk >= MEM_ENTRIES_MAX) {
            in->unk_over = true; /* too many to remember: the rest is hashed */
            return CVG_OK;
        }
        in->nunk++;
    }
    int rc = push_dot(&in->got, &in->ngot, &in->capgot, d);
    if (rc == CVG_OK && ours && head != NULL) {
        rc = push_dot(&in->hat, &in->nheads, &in->caphat, d);
        if (rc == CVG_OK) {
            void *a = in->heads;
            rc = cvg__grow(&a, &in->capheads, in->nheads * CVG__HEAD_BYTES, 1);
            in->heads = a;
            if (rc != CVG_OK) {
                in->nheads--;
            } else {
                memcpy(in->heads + (in->nheads - 1) * CVG__HEAD_BYTES, head,
                       CVG__HEAD_BYTES);
            }
        }
    }
    return rc;
}

/* Ask for the whole vector (once): the delta did not fit our memory. */
static int
want_whole(cvg_session *s)
{
    in_reset(s->vin);
    if (s->vv_wanted) {
        return cvg__session_fail(s, CVG_EPROTO,
                                 "a version vector delta after VV_WANT");
    }
    s->vv_wanted = true;
    cvg__msg m;
    memset(&m, 0, sizeof m);
    m.type = CVG__MSG_VV_WANT;
    m.version = CVG_PROTOCOL_VERSION;
    int rc = cvg__session_enqueue(s, &m);
    return rc == CVG_OK ? CVG_OK : cvg__session_fail(s, rc, "out of memory");
}

/* Begin the vector whose first message is @p m: a copy of our own at this
 * moment and, for a delta, our origins that moved since the memory's
 * my_at (with the memory, the peer's vector at @p m->vv_base). CVG_DONE:
 * the memory cannot give that one. */
static int
in_start(cvg_session *s, const cvg__msg *m)
{
    cvg__vv_in *in = s->vin;
    const vv_mem *old = &in->old;
    if (m->vv_base != 0 && (old->peer_at == 0 || old->peer_at != m->vv_base)) {
        return CVG_DONE;
    }
    cvg_txn *t;
    int rc = cvg_txn_begin(s->r, CVG_TXN_READ_ONLY, &t);
    if (rc != CVG_OK) {
        return rc;
    }
    in->my_at = cvg__txn_next_lsn(t) - 1;
    rc = cvg__vv_copy(&in->mine, cvg__txn_vv(t));
    in->mine.summed = false; /* a copy to look up, not to keep summed */
    if (rc == CVG_OK && m->vv_base != 0) {
        rc = old->my_at <= in->my_at
                 ? touched_since(s->r, t, old->my_at, &in->moved, &in->nmoved)
                 : CVG_ELIMIT; /* restored from an older copy */
        if (rc == CVG_ELIMIT) {
            rc = CVG_DONE;
        }
    }
    cvg_txn_abort(t);
    if (rc != CVG_OK) {
        return rc;
    }
    in->active = true;
    in->at = m->vv_at;
    in->base = m->vv_base;
    in->total = m->vv_total;
    memcpy(in->digest, m->vv_digest, CVG__VV_DIGEST_BYTES);
    if (m->vv_base != 0) {
        in->sum = old->sum;
        in->count = old->count;
    }
    return CVG_OK;
}

/* The smallest origin at the heads of up to three sorted lists. */
static const cvg_replica_id *
least(const cvg_dot *a, const cvg_dot *b, const cvg_dot *c)
{
    const cvg_replica_id *m = NULL;
    const cvg_dot *l[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        if (l[i] != NULL && (m == NULL || cvg__id_cmp(&l[i]->origin, m) < 0)) {
            m = &l[i]->origin;
        }
    }
    return m;
}

static const cvg_dot *
head_of(const cvg_dot *arr, size_t n, size_t i)
{
    return i < n ? &arr[i] : NULL;
}

/* Where the peer's vector (just taken) differs from ours (in->mine): the
 * entries that came, the differences we remembered and our origins that
 * moved since then are the only candidates; every other origin was equal
 * in the memory and moved on neither side. For a whole vector, every one
 * of ours and of what came. */
static int
diffs_of(const cvg__vv_in *in, cvg_dot **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    bool whole = in->base == 0;
    const cvg_dot *x = whole ? in->mine.e : in->old.d;
    size_t nx = whole ? in->mine.n : in->old.n;
    const cvg_dot *y = whole ? NULL : in->moved;
    size_t ny = whole ? 0 : in->nmoved;
    size_t cap = nx + ny + in->ngot;
    cvg_dot *d = cap ? cvg__alloc(cap * sizeof *d) : NULL;
    if (cap > 0 && d == NULL) {
        return CVG_ENOMEM;
    }
    size_t i = 0, j = 0, k = 0, n = 0;
    for (;;) {
        const cvg_dot *hx = head_of(x, nx, i), *hy = head_of(y, ny, j),
                      *hg = head_of(in->got, in->ngot, k);
        const cvg_replica_id *o = least(hx, hy, hg);
        if (o == NULL) {
            break;
        }
        cvg_dot e = {.origin = *o};
        if (hg != NULL && cvg__id_eq(&hg->origin, o)) {
            e.seq = hg->seq;
        } else if (!whole) {
            e.seq = remembered(in, o);
        }
        bool in_x = hx != NULL && cvg__id_eq(&hx->origin, o);
        /* Ours: for a whole vector, x is our vector itself. */
        uint64_t s = whole ? (in_x ? hx->seq : 0) : cvg__vv_get(&in->mine, o);
        i += in_x;
        j += hy != NULL && cvg__id_eq(&hy->origin, o);
        k += hg != NULL && cvg__id_eq(&hg->origin, o);
        if (e.seq != s) {
            d[n++] = e;
        }
    }
    *out = d;
    *n_out = n;
    return CVG_OK;
}

/* The peer's vector is whole and checked: take it. */
static int
in_complete(cvg_session *s)
{
    cvg__vv_in *in = s->vin;
    cvg_dot *d;
    size_t n;
    int rc = diffs_of(in, &d, &n);
    if (rc != CVG_OK) {
        return cvg__session_fail(s, rc, "out of memory");
    }
    /* What to remember: the same differences, when they are few. */
    mem_clear(&in->fresh);
    in->have_fresh = true;
    if (!in->unk_over && n <= MEM_ENTRIES_MAX) {
        in->fresh.d = n ? cvg__alloc(n * sizeof *d) : NULL;
        if (n == 0 || in->fresh.d != NULL) {
            if (n > 0) {
                memcpy(in->fresh.d, d, n * sizeof *d);
            }
            in->fresh.n = n;
            in->fresh.peer_at = in->at;
            in->fresh.my_at = in->my_at;
            in->fresh.count = in->total;
            in->fresh.sum = in->sum;
        }
    }
    cvg__peer_vv_take(&s->peer_vv, &in->mine, d, n);
    cvg__session_keep_heads(s, in->hat, in->heads, in->nheads);
    in->hat = NULL;
    in->heads = NULL;
    in_reset(in);
    s->vv_ok = true;
    /* A peer with more of our ops than we made: it lies, or this replica
     * was restored from an older copy its home check did not catch (the
     * data file written over in place). Either way, stop. */
    uint64_t claimed = cvg__peer_vv_get(&s->peer_vv, cvg__replica_self(s->r));
    if (claimed > 0) {
        cvg_txn *t;
        rc = cvg_txn_begin(s->r, CVG_TXN_READ_ONLY, &t);
        if (rc != CVG_OK) {
            return cvg__session_fail(s, rc, "cannot read the version vector");
        }
        uint64_t mine = cvg__vv_get(cvg__txn_vv(t), cvg__replica_self(s->r));
        cvg_txn_abort(t);
        if (claimed > mine) {
            in->have_fresh = false;
            snprintf(s->why, sizeof s->why,
                     "the peer has this replica's ops up to seq %llu, but it "
                     "made only %llu: restored from an older copy?",
                     (unsigned long long)claimed, (unsigned long long)mine);
            return cvg__session_fail(s, CVG_EFORGED, s->why);
        }
    }
    /* What the peer has of ours is committed there: stored once it has
     * proved its key. */
    cvg__peer_change ch = {.acked = claimed};
    cvg__session_note(s, &ch);
    if (s->opts.push) {
        rc = cvg__session_push_own(s);
        if (rc != CVG_OK) {
            return rc;
        }
    }
    if (s->proven) {
        rc = cvg__session_check_forks(s);
        if (rc != CVG_OK) {
            return rc;
        }
    }
    return cvg__session_after_hello(s);
}

int
cvg__session_on_vv(cvg_session *s, const cvg__msg *m)
{
    if (!s->got_hello || s->vin == NULL) {
        return cvg__session_fail(s, CVG_EPROTO, "VV before HELLO");
    }
    if (s->vv_ok) {
        return cvg__session_fail(s, CVG_EPROTO,
                                 "a VV after the peer's vector was whole");
    }
    cvg__vv_in *in = s->vin;
    int rc;
    if (in->skipping) {
        if (m->vv_base == 0) {
            return cvg__session_fail(s, CVG_EPROTO, "a VV message cut short");
        }
        return m->has_more ? CVG_OK : want_whole(s);
    }
    if (!in->active) {
        if (s->vv_wanted && m->vv_base != 0) {
            return cvg__session_fail(s, CVG_EPROTO,
                                     "a version vector delta after VV_WANT");
        }
        rc = in_start(s, m);
        if (rc == CVG_DONE) {
            /* Not a vector we remember: its end, then ask for it whole. */
            in_reset(in);
            in->skipping = m->has_more;
            return m->has_more ? CVG_OK : want_whole(s);
        }
        if (rc != CVG_OK) {
            return cvg__session_fail(s, rc, "cannot rebuild the peer's vector");
        }
    } else if (m->vv_at != in->at || m->vv_base != in->base ||
               m->vv_total != in->total ||
               sodium_memcmp(m->vv_digest, in->digest, CVG__VV_DIGEST_BYTES) !=
                   0) {
        return cvg__session_fail(s, CVG_EPROTO,
                                 "the messages of a version vector disagree");
    }
    rc = CVG_OK;
    for (size_t i = 0; rc == CVG_OK && i < m->vv_n; i++) {
        const cvg_dot *e = &m->vv[i];
        if (e->seq == 0 ||
            (in->has_last && cvg__id_cmp(&in->last, &e->origin) >= 0)) {
            return cvg__session_fail(s, CVG_EPROTO,
                                     "a version vector out of order");
        }
        in->has_last = true;
        in->last = e->origin;
        rc = emit(s, e, m->heads + i * CVG__HEAD_BYTES);
    }
    bool over = rc == CVG_EPROTO; /* more entries than the count said */
    if (rc != CVG_OK && !over) {
        return cvg__session_fail(s, rc, "out of memory");
    }
    if (m->has_more && !over) {
        return CVG_OK;
    }
    uint8_t got[CVG__VV_DIGEST_BYTES];
    cvg__vv_sum_bytes(&in->sum, got);
    if (!over && in->count == in->total &&
        sodium_memcmp(got, in->digest, sizeof got) == 0) {
        return in_complete(s);
    }
    if (in->base != 0) {
        if (over && m->has_more) {
            /* The rest of this vector is of no use: wait for its end. */
            in_reset(in);
            in->skipping = true;
            return CVG_OK;
        }
        return want_whole(s); /* our memory is not the vector it assumed */
    }
    in_reset(in);
    return cvg__session_fail(s, CVG_EPROTO,
                             "the peer's version vector does not match its "
                             "count and digest");
}

/* ---- Memory -------------------------------------------------------------- */

void
cvg__session_store_vv(cvg_session *s)
{
    cvg__vv_in *in = s->vin;
    if (in == NULL || s->vv_stored || !s->proven) {
        return;
    }
    /* A session that ended well: the peer took our vector. */
    bool took = s->vv_ok && s->error == CVG_OK && cvg_session_done(s);
    if (!took && !in->have_fresh) {
        return; /* nothing new to remember */
    }
    s->vv_stored = true;
    vv_mem m = in->have_fresh ? in->fresh : in->old;
    m.sent_end = took ? s->vv_at : in->old.sent_end;
    cvg__buf b = {0};
    /* Best effort, like the rest of the peer's record: without it the
     * next vectors go whole. */
    if (mem_encode(&m, &b) == CVG_OK) {
        (void)cvg__peer_mem_defer(s->r, &s->stats.peer, b.p, b.len);
    }
    cvg__buf_free(&b);
}

void
cvg__session_vv_free(cvg_session *s)
{
    if (s->vin != NULL) {
        in_reset(s->vin);
        mem_clear(&s->vin->old);
        mem_clear(&s->vin->fresh);
        cvg__free(s->vin);
        s->vin = NULL;
    }
}
