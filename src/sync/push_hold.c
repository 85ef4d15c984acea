/*
 * PUSH pages held to be applied together: see push_hold.h. The blocks are
 * appended to one buffer and their lengths kept, so a merge builds views
 * into it; the pusher's signature points are folded into one as they come.
 */
#include "push_hold.h"

#include <string.h>

uint64_t
cvg__push_page_bytes(const cvg__msg *m)
{
    uint64_t n = 0;
    for (size_t i = 0; i < m->n_blocks; i++) {
        n += m->blocks[i].len;
    }
    return n;
}

bool
cvg__push_hold_fits(const cvg__push_hold *h, const cvg__msg *m)
{
    return h->pages < CVG__HOLD_PAGES &&
           h->bytes.len + cvg__push_page_bytes(m) <= CVG__HOLD_BYTES;
}

/* Fold point @p p of the pusher into the held one. */
static void
fold_point(cvg__push_hold *h, const cvg__point *p)
{
    if (!h->has_point) {
        h->point = *p;
        h->has_point = true;
        return;
    }
    if (p->seq >= h->point.seq) {
        h->point.seq = p->seq;
        memcpy(h->point.sig, p->sig, sizeof p->sig);
    }
    if (p->has_key && !h->point.has_key) {
        h->point.has_key = true;
        memcpy(h->point.pk, p->pk, sizeof p->pk);
        memcpy(h->point.inc, p->inc, sizeof p->inc);
        h->point.inc_len = p->inc_len;
    }
}

int
cvg__push_hold_add(cvg__push_hold *h, const cvg__msg *m,
                   const cvg_replica_id *pusher)
{
    void *a = h->lens;
    int rc =
        cvg__grow(&a, &h->caplens, h->nblocks + m->n_blocks, sizeof *h->lens);
    h->lens = a;
    if (rc != CVG_OK) {
        return rc;
    }
    a = h->page;
    rc = cvg__grow(&a, &h->cappage, h->pages + 1, sizeof *h->page);
    h->page = a;
    if (rc != CVG_OK) {
        return rc;
    }
    size_t len0 = h->bytes.len, n0 = h->nblocks;
    for (size_t i = 0; i < m->n_blocks; i++) {
        rc = cvg__buf_append(&h->bytes, m->blocks[i].data, m->blocks[i].len);
        if (rc != CVG_OK) {
            h->bytes.len = len0; /* as it was */
            h->nblocks = n0;
            return rc;
        }
        h->lens[h->nblocks++] = m->blocks[i].len;
    }
    struct cvg__held_page *pg = &h->page[h->pages];
    pg->first_block = n0;
    pg->n_blocks = m->n_blocks;
    pg->has_point = false;
    for (size_t i = 0; i < m->n_points; i++) {
        if (cvg__id_cmp(&m->points[i].origin, pusher) == 0) {
            fold_point(h, &m->points[i]);
            pg->point = m->points[i];
            pg->has_point = true;
        }
    }
    h->pages++;
    return CVG_OK;
}

int
cvg__push_hold_merged(cvg__push_hold *h, bool more, cvg__msg *out)
{
    void *a = h->views;
    int rc = cvg__grow(&a, &h->capviews, h->nblocks, sizeof *h->views);
    h->views = a;
    if (rc != CVG_OK) {
        return rc;
    }
    size_t off = 0;
    for (size_t i = 0; i < h->nblocks; i++) {
        h->views[i].data = h->bytes.p + off;
        h->views[i].len = h->lens[i];
        off += h->lens[i];
    }
    memset(out, 0, sizeof *out);
    out->type = CVG__MSG_PUSH;
    out->version = CVG_PROTOCOL_VERSION;
    out->has_more = more;
    out->blocks = h->nblocks > 0 ? h->views : NULL;
    out->n_blocks = h->nblocks;
    out->points = h->has_point ? &h->point : NULL;
    out->n_points = h->has_point ? 1 : 0;
    return CVG_OK;
}

void
cvg__push_hold_page(const cvg__push_hold *h, size_t i, cvg__msg *out)
{
    const struct cvg__held_page *pg = &h->page[i];
    memset(out, 0, sizeof *out);
    out->type = CVG__MSG_PUSH;
    out->version = CVG_PROTOCOL_VERSION;
    out->has_more = true;
    out->blocks = pg->n_blocks > 0 ? h->views + pg->first_block : NULL;
    out->n_blocks = pg->n_blocks;
    out->points = pg->has_point ? &pg->point : NULL;
    out->n_points = pg->has_point ? 1 : 0;
}

void
cvg__push_hold_clear(cvg__push_hold *h)
{
    h->bytes.len = 0;
    h->nblocks = 0;
    h->has_point = false;
    h->pages = 0;
}

void
cvg__push_hold_destroy(cvg__push_hold *h)
{
    cvg__buf_free(&h->bytes);
    cvg__free(h->lens);
    cvg__free(h->views);
    cvg__free(h->page);
    memset(h, 0, sizeof *h);
}
