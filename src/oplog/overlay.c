/*
 * The state overlay (overlay.h): a hash table of keys for lookups, an
 * array in key order for walks, and per key its values by transaction id.
 * Every call that may fail reserves what it needs before it changes
 * anything, so CVG_ENOMEM leaves the overlay as it was.
 */
#include "overlay.h"

#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "../hash.h"

void
cvg__ov_init(cvg__overlay *ov)
{
    memset(ov, 0, sizeof *ov);
}

static void
node_free(cvg__ov_node *nd)
{
    for (uint32_t i = 0; i < nd->nv; i++) {
        cvg__free(nd->v[i].val);
    }
    cvg__free(nd->v);
    cvg__free(nd);
}

void
cvg__ov_destroy(cvg__overlay *ov)
{
    for (size_t i = 0; i < ov->nsorted; i++) {
        node_free(ov->sorted[i]);
    }
    for (size_t i = 0; i < ov->nfresh; i++) {
        node_free(ov->fresh[i]);
    }
    cvg__free(ov->slots);
    cvg__free(ov->fslots);
    cvg__free(ov->fcount);
    cvg__free(ov->sorted);
    cvg__free(ov->fresh);
    cvg__free(ov->pending);
    memset(ov, 0, sizeof *ov);
}

int
cvg__ov_key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0) {
        return c;
    }
    return (alen > blen) - (alen < blen);
}

static cvg__ov_node **
slot_of(cvg__overlay *ov, const uint8_t *key, uint32_t klen, uint64_t h)
{
    size_t mask = ov->nslots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        cvg__ov_node *nd = ov->slots[i];
        if (nd == NULL || (nd->hash == h && nd->klen == klen &&
                           memcmp(nd->key, key, klen) == 0)) {
            return &ov->slots[i];
        }
    }
}

cvg__ov_node *
cvg__ov_find(cvg__overlay *ov, const uint8_t *key, uint32_t klen)
{
    if (ov->n == 0) {
        return NULL;
    }
    return *slot_of(ov, key, klen, cvg__hash(key, klen));
}

static cvg__ov_node **
field_slot(cvg__ov_node **slots, size_t nslots, const uint8_t *p, uint32_t plen,
           uint64_t h)
{
    size_t mask = nslots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        cvg__ov_node *nd = slots[i];
        if (nd == NULL || (nd->plen == plen && memcmp(nd->key, p, plen) == 0)) {
            return &slots[i];
        }
    }
}

unsigned
cvg__ov_field_nodes(const cvg__overlay *ov, const uint8_t *prefix,
                    uint32_t plen, const cvg__ov_node **one)
{
    *one = NULL;
    if (ov->nfields == 0) {
        return 0;
    }
    cvg__ov_node **s = field_slot(ov->fslots, ov->nfslots, prefix, plen,
                                  cvg__hash(prefix, plen));
    if (*s == NULL) {
        return 0;
    }
    if (ov->fcount[s - ov->fslots] > 1) {
        return 2;
    }
    *one = *s;
    return 1;
}

/* Count @p nd in its field, making it the field's node if the field has
 * none; the table has room. */
static void
field_add(cvg__overlay *ov, cvg__ov_node *nd)
{
    if (nd->plen == 0) {
        return;
    }
    cvg__ov_node **s = field_slot(ov->fslots, ov->nfslots, nd->key, nd->plen,
                                  cvg__hash(nd->key, nd->plen));
    size_t i = (size_t)(s - ov->fslots);
    if (*s == NULL) {
        *s = nd;
        ov->fcount[i] = 0;
        ov->nfields++;
    }
    ov->fcount[i]++;
}

/* Room in the field table for one more field (at most half full). */
static int
fields_reserve(cvg__overlay *ov)
{
    if ((ov->nfields + 1) * 2 <= ov->nfslots) {
        return CVG_OK;
    }
    size_t n = ov->nfslots ? ov->nfslots * 2 : 1024;
    cvg__ov_node **s = cvg__calloc(n, sizeof *s);
    uint32_t *count = cvg__calloc(n, sizeof *count);
    if (s == NULL || count == NULL) {
        cvg__free(s);
        cvg__free(count);
        return CVG_ENOMEM;
    }
    cvg__ov_node **old = ov->fslots;
    uint32_t *oldcount = ov->fcount;
    size_t nold = ov->nfslots;
    ov->fslots = s;
    ov->fcount = count;
    ov->nfslots = n;
    ov->nfields = 0;
    for (size_t i = 0; i < nold; i++) {
        if (old[i] != NULL) {
            cvg__ov_node **to =
                field_slot(s, n, old[i]->key, old[i]->plen,
                           cvg__hash(old[i]->key, old[i]->plen));
            *to = old[i];
            count[to - s] = oldcount[i];
            ov->nfields++;
        }
    }
    cvg__free(old);
    cvg__free(oldcount);
    return CVG_OK;
}

static void
rehash(cvg__overlay *ov)
{
    memset(ov->slots, 0, ov->nslots * sizeof *ov->slots);
    for (size_t i = 0; i < ov->nsorted; i++) {
        cvg__ov_node *nd = ov->sorted[i];
        *slot_of(ov, nd->key, nd->klen, nd->hash) = nd;
    }
    for (size_t i = 0; i < ov->nfresh; i++) {
        cvg__ov_node *nd = ov->fresh[i];
        *slot_of(ov, nd->key, nd->klen, nd->hash) = nd;
    }
}

/* Room in the table for one more node (at most half full). */
static int
table_reserve(cvg__overlay *ov)
{
    if ((ov->n + 1) * 2 <= ov->nslots) {
        return CVG_OK;
    }
    size_t n = ov->nslots ? ov->nslots * 2 : 1024;
    cvg__ov_node **s = cvg__calloc(n, sizeof *s);
    if (s == NULL) {
        return CVG_ENOMEM;
    }
    cvg__free(ov->slots);
    ov->slots = s;
    ov->nslots = n;
    rehash(ov);
    return CVG_OK;
}

const cvg__ov_version *
cvg__ov_visible(const cvg__ov_node *nd, uint64_t lo, uint64_t hi)
{
    for (uint32_t i = nd->nv; i-- > 0;) {
        uint64_t id = nd->v[i].id;
        if (id <= lo) {
            return NULL;
        }
        if (id <= hi) {
            return &nd->v[i];
        }
    }
    return NULL;
}

int
cvg__ov_put(cvg__overlay *ov, const uint8_t *key, uint32_t klen, uint32_t plen,
            uint64_t id, const uint8_t *val, uint32_t len, bool del)
{
    uint64_t h = cvg__hash(key, klen);
    cvg__ov_node *nd = ov->n ? *slot_of(ov, key, klen, h) : NULL;
    bool is_new = nd == NULL;
    bool list = id == ov->pending_id && (is_new || !nd->pending);
    /* Everything that can fail, first. */
    if (is_new) {
        void *f = ov->fresh;
        int rc =
            cvg__grow(&f, &ov->capfresh, ov->nfresh + 1, sizeof *ov->fresh);
        ov->fresh = f;
        if (rc == CVG_OK) {
            rc = table_reserve(ov);
        }
        if (rc == CVG_OK && plen > 0) {
            rc = fields_reserve(ov);
        }
        if (rc != CVG_OK) {
            return rc;
        }
    }
    if (list) {
        void *p = ov->pending;
        int rc = cvg__grow(&p, &ov->cappending, ov->npending + 1,
                           sizeof *ov->pending);
        ov->pending = p;
        if (rc != CVG_OK) {
            return rc;
        }
    }
    uint8_t *copy = NULL;
    if (!del) {
        copy = cvg__alloc(len ? len : 1);
        if (copy == NULL) {
            return CVG_ENOMEM;
        }
        memcpy(copy, val, len);
    }
    if (is_new) {
        nd = cvg__calloc(1, sizeof *nd + klen);
        if (nd == NULL) {
            cvg__free(copy);
            return CVG_ENOMEM;
        }
        memcpy(nd->key, key, klen);
        nd->klen = klen;
        nd->plen = plen <= klen ? plen : 0;
        nd->hash = h;
    }
    /* Where the value goes: replacing one of the same id, or in order. */
    uint32_t at = nd->nv;
    while (at > 0 && nd->v[at - 1].id > id) {
        at--;
    }
    if (at > 0 && nd->v[at - 1].id == id) {
        cvg__ov_version *v = &nd->v[at - 1];
        ov->bytes -= v->len;
        cvg__free(v->val);
        v->val = copy;
        v->len = del ? 0 : len;
        ov->bytes += v->len;
    } else {
        if (nd->nv == nd->capv) {
            uint32_t cap = nd->capv ? nd->capv * 2 : 2;
            cvg__ov_version *a = cvg__realloc(nd->v, cap * sizeof *a);
            if (a == NULL) {
                cvg__free(copy);
                if (is_new) {
                    node_free(nd);
                }
                return CVG_ENOMEM;
            }
            nd->v = a;
            nd->capv = cap;
        }
        memmove(&nd->v[at + 1], &nd->v[at], (nd->nv - at) * sizeof *nd->v);
        if (nd->nv == 0 && !is_new) {
            ov->empty--;
        }
        nd->v[at].id = id;
        nd->v[at].val = copy;
        nd->v[at].len = del ? 0 : len;
        nd->nv++;
        ov->versions++;
        ov->bytes += nd->v[at].len + sizeof nd->v[at];
    }
    if (is_new) {
        *slot_of(ov, key, klen, h) = nd;
        field_add(ov, nd);
        ov->fresh[ov->nfresh++] = nd;
        ov->n++;
        ov->bytes += klen + sizeof *nd;
    }
    if (list) {
        nd->pending = true;
        ov->pending[ov->npending++] = nd;
    }
    return CVG_OK;
}

int
cvg__ov_node_cmp(const void *a, const void *b)
{
    const cvg__ov_node *x = *(cvg__ov_node *const *)a;
    const cvg__ov_node *y = *(cvg__ov_node *const *)b;
    return cvg__ov_key_cmp(x->key, x->klen, y->key, y->klen);
}

/* Merge the fresh nodes into the ordered array. */
static int
put_in_order(cvg__overlay *ov)
{
    if (ov->nfresh == 0) {
        return CVG_OK;
    }
    size_t n = ov->nsorted + ov->nfresh;
    cvg__ov_node **out = cvg__alloc(n * sizeof *out);
    if (out == NULL) {
        return CVG_ENOMEM;
    }
    qsort(ov->fresh, ov->nfresh, sizeof *ov->fresh, cvg__ov_node_cmp);
    size_t i = 0, j = 0, k = 0;
    while (i < ov->nsorted && j < ov->nfresh) {
        out[k++] = cvg__ov_node_cmp(&ov->sorted[i], &ov->fresh[j]) < 0
                       ? ov->sorted[i++]
                       : ov->fresh[j++];
    }
    while (i < ov->nsorted) {
        out[k++] = ov->sorted[i++];
    }
    while (j < ov->nfresh) {
        out[k++] = ov->fresh[j++];
    }
    cvg__free(ov->sorted);
    ov->sorted = out;
    ov->nsorted = ov->capsorted = n;
    ov->nfresh = 0;
    return CVG_OK;
}

int
cvg__ov_seek_at(cvg__overlay *ov, const uint8_t *key, uint32_t klen, bool after,
                size_t *at)
{
    *at = 0;
    int rc = put_in_order(ov);
    if (rc != CVG_OK) {
        return rc;
    }
    size_t lo = 0, hi = ov->nsorted;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const cvg__ov_node *nd = ov->sorted[mid];
        int c = cvg__ov_key_cmp(nd->key, nd->klen, key, klen);
        if (c < 0 || (after && c == 0)) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *at = lo;
    return CVG_OK;
}

int
cvg__ov_seek(cvg__overlay *ov, const uint8_t *key, uint32_t klen, bool after,
             cvg__ov_node **out)
{
    size_t at;
    int rc = cvg__ov_seek_at(ov, key, klen, after, &at);
    *out = rc == CVG_OK && at < ov->nsorted ? ov->sorted[at] : NULL;
    return rc;
}

void
cvg__ov_drop_pending(cvg__overlay *ov)
{
    for (size_t i = 0; i < ov->npending; i++) {
        cvg__ov_node *nd = ov->pending[i];
        for (uint32_t j = nd->nv; j-- > 0;) {
            if (nd->v[j].id == ov->pending_id) {
                ov->bytes -= nd->v[j].len + sizeof nd->v[j];
                ov->versions--;
                cvg__free(nd->v[j].val);
                memmove(&nd->v[j], &nd->v[j + 1],
                        (nd->nv - j - 1) * sizeof *nd->v);
                nd->nv--;
                ov->empty += nd->nv == 0;
                break;
            }
        }
        nd->pending = false;
    }
    ov->npending = 0;
    ov->pending_id = 0;
}

bool
cvg__ov_pending_all_new(const cvg__overlay *ov)
{
    for (size_t i = 0; i < ov->npending; i++) {
        if (ov->pending[i]->nv != 1) {
            return false;
        }
    }
    return true;
}

void
cvg__ov_keep_pending(cvg__overlay *ov)
{
    for (size_t i = 0; i < ov->npending; i++) {
        ov->pending[i]->pending = false;
    }
    ov->npending = 0;
    ov->pending_id = 0;
}

/* Trim the values of @p nd up to @p upto; true if the node is to go. */
static bool
trim(cvg__overlay *ov, cvg__ov_node *nd, uint64_t upto)
{
    uint32_t k = 0;
    while (k < nd->nv && nd->v[k].id <= upto) {
        ov->bytes -= nd->v[k].len + sizeof nd->v[k];
        ov->versions--;
        cvg__free(nd->v[k].val);
        k++;
    }
    memmove(nd->v, nd->v + k, (nd->nv - k) * sizeof *nd->v);
    bool was_empty = nd->nv == 0 && k == 0;
    nd->nv -= k;
    if (nd->nv > 0 || nd->pending) {
        ov->empty += nd->nv == 0 && !was_empty;
        return false;
    }
    ov->empty -= was_empty;
    ov->bytes -= nd->klen + sizeof *nd;
    node_free(nd);
    ov->n--;
    return true;
}

void
cvg__ov_prune(cvg__overlay *ov, uint64_t upto)
{
    if (ov->n == 0) {
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < ov->nsorted; i++) {
        if (!trim(ov, ov->sorted[i], upto)) {
            ov->sorted[k++] = ov->sorted[i];
        }
    }
    ov->nsorted = k;
    k = 0;
    for (size_t i = 0; i < ov->nfresh; i++) {
        if (!trim(ov, ov->fresh[i], upto)) {
            ov->fresh[k++] = ov->fresh[i];
        }
    }
    ov->nfresh = k;
    rehash(ov);
    /* The fields' nodes again, from the nodes left. */
    if (ov->nfslots > 0) {
        memset(ov->fslots, 0, ov->nfslots * sizeof *ov->fslots);
        ov->nfields = 0;
        for (size_t i = 0; i < ov->nsorted; i++) {
            field_add(ov, ov->sorted[i]);
        }
        for (size_t i = 0; i < ov->nfresh; i++) {
            field_add(ov, ov->fresh[i]);
        }
    }
}
