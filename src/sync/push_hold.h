/*
 * PUSH pages held to be applied together (push_hold.c). A pusher queues all
 * its pages at once, and each page the receiver applies is a commit (a
 * sync to disk in durable mode): a pusher of tiny pages would cost one
 * commit per few dozen bytes. So a PUSH page that says more follow is held
 * (copied: the message is the caller's) until the held pages reach
 * HOLD_BYTES or HOLD_PAGES, or the last page of the push comes; then the
 * held pages are applied as one, in one transaction, with one ACK. A push
 * thus costs a commit per HOLD_BYTES of pages at most, plus one for its
 * last page, whatever size its pages have.
 *
 * Only what a push may carry is kept: its blocks (bytes), and of its
 * signature points only the pusher's own (a push holds the pusher's ops
 * alone; any other op fails it when applied), merged into one: the highest
 * seq with its signature, and the key and extra bytes if any page carried
 * them. Pages held are never ACKed before they are committed: a session
 * that ends with pages held leaves them to the next push.
 *
 * Where the pages applied as one are refused (an op the receiver refuses,
 * say), they are applied again one by one, as they came, so the pages
 * before the refused op are kept as they would have been unheld: a
 * session that a refusal ends costs at most HOLD_PAGES commits more.
 */
#ifndef CVG_SYNC_PUSH_HOLD_H
#define CVG_SYNC_PUSH_HOLD_H

#include "wire.h"

#define CVG__HOLD_BYTES (1u << 20) /* block bytes held at most */
#define CVG__HOLD_PAGES 256u       /* pages held at most */

typedef struct cvg__push_hold {
    cvg__buf bytes; /* the held blocks, back to back */
    size_t *lens;   /* each block's length */
    size_t nblocks, caplens;
    cvg_bytes *views; /* built for a merge */
    size_t capviews;
    bool has_point;
    cvg__point point; /* the pusher's, merged */
    size_t pages;
    /* Each page as it came, for applying them one by one. */
    struct cvg__held_page {
        size_t first_block, n_blocks;
        bool has_point;
        cvg__point point; /* the pusher's */
    } * page;
    size_t cappage;
} cvg__push_hold;

/* Bytes of blocks in @p m. */
uint64_t cvg__push_page_bytes(const cvg__msg *m);
/* Whether @p m may join what @p h holds without passing its limits. */
bool cvg__push_hold_fits(const cvg__push_hold *h, const cvg__msg *m);
/* Copy @p m's blocks and the point of @p pusher into @p h. */
int cvg__push_hold_add(cvg__push_hold *h, const cvg__msg *m,
                       const cvg_replica_id *pusher);
/* The held pages as one PUSH message (saying more follow if @p more);
 * its views are valid until @p h changes. */
int cvg__push_hold_merged(cvg__push_hold *h, bool more, cvg__msg *out);
/* Held page @p i alone, as it came (saying more follow); views valid
 * until @p h changes. Call cvg__push_hold_merged() first. */
void cvg__push_hold_page(const cvg__push_hold *h, size_t i, cvg__msg *out);
/* Forget what is held; keeps the memory. */
void cvg__push_hold_clear(cvg__push_hold *h);
void cvg__push_hold_destroy(cvg__push_hold *h);

#endif
