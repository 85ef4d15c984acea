/*
 * Version vectors between peers (protocol 5): each side sends only what
 * the other does not already know of its vector.
 *
 * A replica's vector at an lsn L of its own log is a function of L: the log
 * only grows, and an origin's ops sit in it in seq order. So the entries
 * that changed since L are those of the origins in the log's blocks after
 * L, which a walk of block headers finds (no op is decoded). Once the
 * peer's HELLO says who it is, a side sends its vector at its log's end as
 * VV messages: whole (base 0), or, when the peer took one of its vectors
 * before (at lsn `sent_end`, remembered per peer), as the entries changed
 * since that one. Either way with the count and the digest
 * (cvg__vv_digest) of the whole vector, and split into messages of
 * VV_PAGE entries, so that no number of origins is too many.
 *
 * The receiver rebuilds the whole vector from its memory of the peer and
 * the delta, checks count and digest, and only then takes it. Memory that
 * is lost, stale, damaged or simply another than the sender assumed gives
 * another digest; the receiver then sends VV_WANT (once) and the sender
 * its vector whole (once). So a wrong memory on either side costs a whole
 * vector, never a wrong one. A whole vector whose digest does not match is
 * the sender's error: CVG_EPROTO.
 *
 * What a side remembers of a peer (the peer store, key id + 'v'), once the
 * peer proved its key, big-endian:
 *   0   u8 version (1)
 *   1   u64 sent_end  the lsn of our vector the peer took last (0: none)
 *   9   u64 peer_at   the peer's vector we hold is the one at its lsn
 *                     peer_at (0: none), and it is
 *   17  u64 my_at     our own vector at our lsn my_at, but for
 *   25  u32 n         n entries, sorted by origin:
 *   29  n x (origin (16), u64 seq)   seq 0: the peer had none of it
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
#define MEM_VERSION 1
#define MEM_HEAD 29

typedef struct vv_mem {
    uint64_t sent_end;
    uint64_t peer_at;
    uint64_t my_at;
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
    /* Ours, at our lsn my_at, when it started. */
    cvg_dot *mine;
    size_t nmine, imine;
    uint64_t my_at;
    /* The peer's vector we remember (a delta's base), merged as we go. */
    cvg_dot *prev;
    size_t nprev, iprev;
    cvg__vv_hash h;
    uint64_t count;
    bool has_last;
    cvg_replica_id last;
    /* What is kept of the peer's entries (see the top). */
    cvg_dot *known;
    size_t nknown, capknown;
    cvg_dot *unk;
    size_t nunk, capunk;
    bool unk_over;
    uint64_t claimed; /* the peer's seq of our own origin */
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
    uint64_t n = cvg__get_be32(p + 25);
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
    cvg__put_be32(p + 25, (uint32_t)m->n);
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

/* Our vector at lsn @p at, from @p vv (the one at the end of @p t's log):
 * an origin whose ops run past @p at had seq first-after - 1 there. */
static int
vv_at(cvg_replica *r, cvg_txn *t, const cvg__vv *vv, uint64_t at, cvg_dot **out,
      size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    cvg_dot *touched;
    size_t nt;
    int rc = touched_since(r, t, at, &touched, &nt);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg_dot *res = vv->n ? cvg__alloc(vv->n * sizeof *res) : NULL;
    if (vv->n > 0 && res == NULL) {
        cvg__free(touched);
        return CVG_ENOMEM;
    }
    size_t n = 0, j = 0;
    for (size_t i = 0; i < vv->n; i++) {
        cvg_dot d = vv->e[i];
        while (j < nt && cvg__id_cmp(&touched[j].origin, &d.origin) < 0) {
            j++;
        }
        if (j < nt && cvg__id_cmp(&touched[j].origin, &d.origin) == 0) {
            d.seq = touched[j].seq - 1;
        }
        if (d.seq > 0) {
            res[n++] = d;
        }
    }
    cvg__free(touched);
    *out = res;
    *n_out = n;
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
    cvg__vv_digest(vv->e, vv->n, digest);
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
    cvg__free(in->mine);
    cvg__free(in->prev);
    cvg__free(in->known);
    cvg__free(in->unk);
    cvg__free(in->hat);
    cvg__free(in->heads);
    in->mine = in->prev = in->known = in->unk = in->hat = NULL;
    in->heads = NULL;
    in->nmine = in->imine = in->nprev = in->iprev = 0;
    in->nknown = in->capknown = in->nunk = in->capunk = 0;
    in->nheads = in->caphat = in->capheads = 0;
    in->unk_over = false;
    in->active = false;
    in->skipping = false;
    in->count = 0;
    in->has_last = false;
    in->claimed = 0;
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

/* One entry of the peer's whole vector, in order. */
static int
emit(cvg_session *s, const cvg_dot *d, const uint8_t *head)
{
    cvg__vv_in *in = s->vin;
    if (in->count >= in->total) {
        return CVG_EPROTO;
    }
    in->count++;
    cvg__vv_hash_add(&in->h, d);
    if (cvg__id_cmp(&d->origin, cvg__replica_self(s->r)) == 0) {
        in->claimed = d->seq;
    }
    while (in->imine < in->nmine &&
           cvg__id_cmp(&in->mine[in->imine].origin, &d->origin) < 0) {
        in->imine++;
    }
    bool ours = in->imine < in->nmine &&
                cvg__id_cmp(&in->mine[in->imine].origin, &d->origin) == 0;
    if (!ours) {
        if (in->nunk >= MEM_ENTRIES_MAX) {
            in->unk_over = true; /* too many to remember: the rest is hashed */
            return CVG_OK;
        }
        return push_dot(&in->unk, &in->nunk, &in->capunk, d);
    }
    int rc = push_dot(&in->known, &in->nknown, &in->capknown, d);
    if (rc == CVG_OK && head != NULL) {
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

/* Begin the vector whose first message is @p m: our own at this moment,
 * and, for a delta, the peer's at @p m->vv_base from our memory. CVG_DONE:
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
    const cvg__vv *vv = cvg__txn_vv(t);
    in->my_at = cvg__txn_next_lsn(t) - 1;
    in->nmine = vv->n;
    in->mine = vv->n ? cvg__alloc(vv->n * sizeof *in->mine) : NULL;
    if (vv->n > 0 && in->mine == NULL) {
        rc = CVG_ENOMEM;
    } else if (vv->n > 0) {
        memcpy(in->mine, vv->e, vv->n * sizeof *in->mine);
    }
    cvg_dot *ours = NULL;
    size_t nours = 0;
    if (rc == CVG_OK && m->vv_base != 0) {
        /* The peer's vector we remember: ours at my_at, but for old->d. */
        rc = old->my_at <= in->my_at
                 ? vv_at(s->r, t, vv, old->my_at, &ours, &nours)
                 : CVG_ELIMIT; /* restored from an older copy */
        if (rc == CVG_ELIMIT) {
            rc = CVG_DONE;
        }
    }
    cvg_txn_abort(t);
    if (rc == CVG_OK && m->vv_base != 0) {
        size_t cap = nours + old->n;
        in->prev = cap ? cvg__alloc(cap * sizeof *in->prev) : NULL;
        if (cap > 0 && in->prev == NULL) {
            rc = CVG_ENOMEM;
        }
        size_t i = 0, j = 0, n = 0;
        while (rc == CVG_OK && (i < nours || j < old->n)) {
            int c = i == nours ? 1
                    : j == old->n
                        ? -1
                        : cvg__id_cmp(&ours[i].origin, &old->d[j].origin);
            cvg_dot d = c < 0 ? ours[i] : old->d[j];
            i += c <= 0;
            j += c >= 0;
            if (d.seq > 0) {
                in->prev[n++] = d;
            }
        }
        in->nprev = n;
    }
    cvg__free(ours);
    if (rc != CVG_OK) {
        return rc;
    }
    in->active = true;
    in->at = m->vv_at;
    in->base = m->vv_base;
    in->total = m->vv_total;
    memcpy(in->digest, m->vv_digest, CVG__VV_DIGEST_BYTES);
    cvg__vv_hash_init(&in->h);
    return CVG_OK;
}

/* The peer's vector is whole and checked: take it. */
static int
in_complete(cvg_session *s)
{
    cvg__vv_in *in = s->vin;
    cvg__vv got = {in->known, in->nknown, in->capknown};
    int rc = cvg__vv_merge(&s->peer_vv, &got);
    if (rc != CVG_OK) {
        return cvg__session_fail(s, rc, "out of memory");
    }
    cvg__session_keep_heads(s, in->hat, in->heads, in->nheads);
    in->hat = NULL;
    in->heads = NULL;
    /* What to remember: the peer's vector as a difference from ours. */
    mem_clear(&in->fresh);
    in->have_fresh = true;
    size_t cap = in->nunk + in->nmine;
    cvg_dot *d = cap ? cvg__alloc(cap * sizeof *d) : NULL;
    if (!in->unk_over && (cap == 0 || d != NULL)) {
        size_t i = 0, j = 0, k = 0, n = 0;
        /* mine and known (a subset of mine's origins) by origin, then the
         * origins only the peer has. */
        for (; i < in->nmine; i++) {
            uint64_t theirs = 0;
            if (j < in->nknown &&
                cvg__id_cmp(&in->known[j].origin, &in->mine[i].origin) == 0) {
                theirs = in->known[j++].seq;
            }
            if (theirs != in->mine[i].seq) {
                d[n].origin = in->mine[i].origin;
                d[n++].seq = theirs;
            }
        }
        for (; k < in->nunk; k++) {
            d[n++] = in->unk[k];
        }
        if (n <= MEM_ENTRIES_MAX) {
            if (n > 1) {
                qsort(d, n, sizeof *d, cvg__dot_cmp_v);
            }
            in->fresh.peer_at = in->at;
            in->fresh.my_at = in->my_at;
            in->fresh.d = d;
            in->fresh.n = n;
            d = NULL;
        }
    }
    cvg__free(d); /* too different to remember: its next vector comes whole */
    uint64_t claimed = in->claimed;
    in_reset(in);
    s->vv_ok = true;
    /* A peer with more of our ops than we made: it lies, or this replica
     * was restored from an older copy its home check did not catch (the
     * data file written over in place). Either way, stop. */
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
    cvg__peer_change ch = {
        .acked = cvg__vv_get(&s->peer_vv, cvg__replica_self(s->r))};
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
        if (in->has_last && cvg__id_cmp(&in->last, &e->origin) >= 0) {
            return cvg__session_fail(s, CVG_EPROTO,
                                     "a version vector out of order");
        }
        in->has_last = true;
        in->last = e->origin;
        while (rc == CVG_OK && in->iprev < in->nprev &&
               cvg__id_cmp(&in->prev[in->iprev].origin, &e->origin) < 0) {
            rc = emit(s, &in->prev[in->iprev++], NULL);
        }
        if (in->iprev < in->nprev &&
            cvg__id_cmp(&in->prev[in->iprev].origin, &e->origin) == 0) {
            in->iprev++; /* changed since */
        }
        if (rc == CVG_OK) {
            rc = emit(s, e, m->heads + i * CVG__HEAD_BYTES);
        }
    }
    if (rc == CVG_OK && !m->has_more) {
        while (rc == CVG_OK && in->iprev < in->nprev) {
            rc = emit(s, &in->prev[in->iprev++], NULL);
        }
    }
    bool over = rc == CVG_EPROTO; /* more entries than the count said */
    if (rc != CVG_OK && !over) {
        return cvg__session_fail(s, rc, "out of memory");
    }
    if (m->has_more && !over) {
        return CVG_OK;
    }
    uint8_t got[CVG__VV_DIGEST_BYTES];
    cvg__vv_hash_final(&in->h, got);
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
