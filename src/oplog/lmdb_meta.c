/*
 * LMDB's data file read by hand, before LMDB maps it.
 *
 * Why: LMDB trusts its file. A page past the end of a truncated file is a
 * SIGBUS at the first read through the map, and a zeroed or garbage page
 * trips an assertion (abort) or sends mdb_put through wild offsets. So the
 * store checks the file at open (cvg__lmdb_check_file), with pread, and
 * refuses it with CVG_ECORRUPT instead:
 *
 *   1. Both meta pages (pages 0 and 1): the meta flag, LMDB's magic, data
 *      version 1 and one plausible page size. LMDB itself refuses a file
 *      with either one bad, so that is refused too, saying which.
 *   2. The newest meta (the higher txnid, as LMDB picks): its last page
 *      and the roots of the free-page tree and the main tree are page
 *      numbers of the file (2 to last_pg, or the empty tree).
 *   3. The length: every page up to last_pg must be in the file. Only
 *      pages LMDB never wrote may be missing at the end (pages a
 *      transaction allocated and freed again, which it records as free and
 *      never writes): when the file is short, the free-page tree is walked
 *      and every missing page must be in it. A longer file is fine
 *      (another process may be growing it; the relaxed mode sizes the file
 *      to the map).
 *   4. The root pages of the free-page tree and of the main tree, every
 *      page of the main tree (it holds only the named databases: one page
 *      in practice, at most WALK_MAX) and the root page of every named
 *      database: cvg__lmdb_page_check().
 *
 * What is not checked here: pages below the roots. A zeroed or garbage
 * page deeper in a tree is met only when LMDB reads it; a walk of every
 * page with cvg__lmdb_page_check() is the job of a full check.
 *
 * Another process may commit while this reads: its meta write is seen
 * torn at worst, which fails a check here but would not in a moment; so a
 * failed check is read again a few times before it is believed.
 */
#define _POSIX_C_SOURCE 200809L
#include "lmdb_meta.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "converge.h"

#include "lmdb_layout.h"

/* Pages of the main tree walked at most (it holds ~10 records). */
#define WALK_MAX 64
/* Reads of a file that fails a check before the failure is believed. */
#define TRIES 3

/* Say what is wrong in why (never NULL here) and fail. */
#define BAD(...) (snprintf(why, whylen, __VA_ARGS__), CVG_ECORRUPT)

static bool
pgno_ok(uint64_t pgno, uint64_t last_pg)
{
    return pgno >= 2 && pgno <= last_pg;
}

int
cvg__lmdb_page_check(const uint8_t *page, uint32_t psize, uint64_t pgno,
                     uint64_t last_pg, char *why, size_t whylen)
{
    uint64_t own = rd64(page);
    unsigned flags = rd16(page + 10) & ~(P_DIRTY | P_KEEP);
    if (own != pgno) {
        return BAD("page %llu says it is page %llu", (unsigned long long)pgno,
                   (unsigned long long)own);
    }
    if (flags == P_OVERFLOW) {
        uint32_t pages = rd32(page + 12);
        if (pages == 0 || pages > last_pg || pgno + pages - 1 > last_pg) {
            return BAD("overflow page %llu spans %llu pages, past the end",
                       (unsigned long long)pgno, (unsigned long long)pages);
        }
        return CVG_OK;
    }
    if (flags != P_BRANCH && flags != P_LEAF && flags != (P_LEAF | P_LEAF2)) {
        return BAD("page %llu has kind 0x%llx, not a tree page",
                   (unsigned long long)pgno, (unsigned long long)flags);
    }
    unsigned lower = rd16(page + 12), upper = rd16(page + 14);
    if (lower < CVG__LMDB_PAGEHDR || (lower - CVG__LMDB_PAGEHDR) % 2 != 0 ||
        upper > psize || lower > upper) {
        return BAD("page %llu has free space bounds out of it",
                   (unsigned long long)pgno);
    }
    unsigned n = (lower - CVG__LMDB_PAGEHDR) / 2;
    if (flags & P_LEAF2) {
        return CVG_OK; /* packed fixed-size keys: no nodes to follow */
    }
    if (flags == P_BRANCH && n == 0) {
        return BAD("branch page %llu has no children",
                   (unsigned long long)pgno);
    }
    for (unsigned i = 0; i < n; i++) {
        unsigned off = rd16(page + CVG__LMDB_PAGEHDR + 2 * i);
        if (off < upper || off > psize - NODESIZE) {
            return BAD("page %llu: node %llu lies outside it",
                       (unsigned long long)pgno, (unsigned long long)i);
        }
        const uint8_t *node = page + off;
        unsigned lo = rd16(node), hi = rd16(node + 2);
        unsigned nflags = rd16(node + 4), ksize = rd16(node + 6);
        size_t end = (size_t)off + NODESIZE + ksize;
        if (end > psize) {
            return BAD("page %llu: key of node %llu runs past it",
                       (unsigned long long)pgno, (unsigned long long)i);
        }
        if (flags == P_BRANCH) {
            uint64_t child =
                lo | ((uint64_t)hi << 16) | ((uint64_t)nflags << 32);
            if (!pgno_ok(child, last_pg)) {
                return BAD(
                    "branch page %llu points to page %llu, not one of "
                    "the file's",
                    (unsigned long long)pgno, (unsigned long long)child);
            }
            continue;
        }
        size_t dsize = lo | ((size_t)hi << 16);
        if (nflags & F_BIGDATA) {
            if (end + 8 > psize || !pgno_ok(rd64(page + end), last_pg)) {
                return BAD("page %llu: node %llu points to no overflow page",
                           (unsigned long long)pgno, (unsigned long long)i);
            }
            continue;
        }
        if (end + dsize > psize) {
            return BAD("page %llu: data of node %llu runs past it",
                       (unsigned long long)pgno, (unsigned long long)i);
        }
        if (nflags & F_SUBDATA) {
            uint64_t root = dsize == DB_SIZE ? rd64(page + end + DB_ROOT) : 0;
            if (root != CVG__LMDB_NOPAGE && !pgno_ok(root, last_pg)) {
                return BAD("page %llu: database record %llu has no valid root",
                           (unsigned long long)pgno, (unsigned long long)i);
            }
        } else if ((nflags & ~(F_DUPDATA)) != 0) {
            return BAD("page %llu: node %llu has unknown flags",
                       (unsigned long long)pgno, (unsigned long long)i);
        }
    }
    return CVG_OK;
}

typedef struct reader {
    int fd;
    uint64_t size; /* bytes of the file, at the start of the check */
    uint32_t psize;
    uint64_t last_pg;
    uint8_t *page; /* psize bytes */
    char *why;
    size_t whylen;
} reader;

/* Read page @p pgno into r->page and check it. */
static int
load(reader *r, uint64_t pgno, const char *what)
{
    uint64_t off = pgno * r->psize;
    if (off + r->psize > r->size) {
        if (r->why != NULL) {
            snprintf(r->why, r->whylen,
                     "the data file is truncated: %s page %llu lies past its "
                     "end (%llu bytes)",
                     what, (unsigned long long)pgno,
                     (unsigned long long)r->size);
        }
        return CVG_ECORRUPT;
    }
    ssize_t got = read_at(r->fd, r->page, r->psize, off);
    if (got < 0) {
        if (r->why != NULL) {
            snprintf(r->why, r->whylen, "cannot read the data file: %s",
                     strerror(errno));
        }
        return CVG_EIO;
    }
    if ((size_t)got < r->psize) {
        if (r->why != NULL) {
            snprintf(r->why, r->whylen,
                     "the data file is truncated: it ends inside page %llu",
                     (unsigned long long)pgno);
        }
        return CVG_ECORRUPT;
    }
    char sub[160];
    int rc = cvg__lmdb_page_check(r->page, r->psize, pgno, r->last_pg, sub,
                                  sizeof sub);
    if (rc != CVG_OK && r->why != NULL) {
        snprintf(r->why, r->whylen, "the data file is damaged: %s (%s)", sub,
                 what);
    }
    return rc;
}

/* Parse a meta page: NULL if valid, else what is wrong. */
static const char *
meta_parse(const uint8_t *p, cvg__lmdb_meta *m)
{
    if ((rd16(p + 10) & P_META) == 0) {
        return "no meta flag";
    }
    if (rd32(p + 16) != MAGIC) {
        return "no LMDB magic";
    }
    if (rd32(p + 20) != DATA_VERSION) {
        return "an unknown LMDB data version";
    }
    m->mapsize = rd64(p + 32);
    m->psize = rd32(p + 40);
    m->free_root = rd64(p + 80);
    m->main_root = rd64(p + 128);
    m->last_pg = rd64(p + 136);
    m->txnid = rd64(p + 144);
    if (m->psize < PSIZE_MIN || m->psize > PSIZE_MAX ||
        (m->psize & (m->psize - 1)) != 0) {
        return "an impossible page size";
    }
    return NULL;
}

/* Every page of the file past its end must be listed free: walk the free
 * tree and tick them off. */
static int
gap_is_free(reader *r, uint64_t root)
{
    uint64_t first = r->size / r->psize; /* first page not wholly there */
    uint64_t gap = r->last_pg + 1 - first;
    if (root == CVG__LMDB_NOPAGE || gap > ((uint64_t)1 << 24)) {
        if (r->why != NULL) {
            snprintf(r->why, r->whylen,
                     "the data file is truncated: %llu bytes, but its pages "
                     "in use reach %llu bytes",
                     (unsigned long long)r->size,
                     (unsigned long long)((r->last_pg + 1) * r->psize));
        }
        return CVG_ECORRUPT;
    }
    uint8_t *seen = calloc((size_t)gap, 1);
    uint64_t *stack = malloc(sizeof *stack * 256);
    if (seen == NULL || stack == NULL) {
        free(seen);
        free(stack);
        return CVG_ENOMEM;
    }
    size_t sp = 0, visits = 0;
    uint64_t missing = gap;
    int rc = CVG_OK;
    stack[sp++] = root;
    while (sp > 0 && rc == CVG_OK && missing > 0) {
        uint64_t pgno = stack[--sp];
        if (++visits > r->last_pg) {
            rc = CVG_ECORRUPT; /* a cycle */
            break;
        }
        rc = load(r, pgno, "a free-list");
        if (rc != CVG_OK) {
            break;
        }
        unsigned n = (rd16(r->page + 12) - CVG__LMDB_PAGEHDR) / 2;
        unsigned kind = rd16(r->page + 10) & (P_BRANCH | P_LEAF);
        /* Collect what this page points to before r->page is reused. */
        uint64_t lists[2 * 256];
        size_t nl = 0;
        for (unsigned i = 0; i < n; i++) {
            const uint8_t *node =
                r->page + rd16(r->page + CVG__LMDB_PAGEHDR + 2 * i);
            unsigned lo = rd16(node), hi = rd16(node + 2);
            unsigned fl = rd16(node + 4), ks = rd16(node + 6);
            if (kind == P_BRANCH) {
                if (sp >= 256) {
                    rc = CVG_ECORRUPT;
                    break;
                }
                stack[sp++] = lo | ((uint64_t)hi << 16) | ((uint64_t)fl << 32);
                continue;
            }
            size_t dsize = lo | ((size_t)hi << 16);
            const uint8_t *data = node + NODESIZE + ks;
            if (fl & F_BIGDATA) {
                if (nl < 2 * 256) {
                    lists[nl++] = rd64(data); /* overflow page */
                }
                continue;
            }
            /* An inline list: count, then page numbers. */
            uint64_t cnt = dsize >= 8 ? rd64(data) : 0;
            for (uint64_t j = 1; j <= cnt && (j + 1) * 8 <= dsize; j++) {
                uint64_t pg = rd64(data + 8 * j);
                if (pg >= first && pg <= r->last_pg && !seen[pg - first]) {
                    seen[pg - first] = 1;
                    missing--;
                }
            }
        }
        /* Lists too long for a node live on overflow pages. */
        for (size_t i = 0; i < nl && rc == CVG_OK && missing > 0; i++) {
            rc = load(r, lists[i], "a free-list overflow");
            if (rc != CVG_OK) {
                break;
            }
            uint64_t pages = rd32(r->page + 12);
            uint64_t bytes = pages * r->psize - CVG__LMDB_PAGEHDR;
            uint64_t cnt = rd64(r->page + CVG__LMDB_PAGEHDR);
            if (cnt > bytes / 8 - 1) {
                rc = CVG_ECORRUPT;
                break;
            }
            uint64_t *ids = malloc((size_t)cnt * 8 + 8);
            if (ids == NULL) {
                rc = CVG_ENOMEM;
                break;
            }
            ssize_t got = read_at(r->fd, ids, (size_t)cnt * 8 + 8,
                                  lists[i] * r->psize + CVG__LMDB_PAGEHDR);
            if (got != (ssize_t)(cnt * 8 + 8)) {
                rc = CVG_ECORRUPT;
            }
            for (uint64_t j = 1; rc == CVG_OK && j <= cnt; j++) {
                uint64_t pg = ids[j];
                if (pg >= first && pg <= r->last_pg && !seen[pg - first]) {
                    seen[pg - first] = 1;
                    missing--;
                }
            }
            free(ids);
        }
    }
    free(seen);
    free(stack);
    /* A page missing or damaged on the way is the truncation too. */
    if (((rc == CVG_OK && missing > 0) || rc == CVG_ECORRUPT) &&
        r->why != NULL) {
        snprintf(r->why, r->whylen,
                 "the data file is truncated: %llu bytes, but its pages in "
                 "use reach %llu bytes",
                 (unsigned long long)r->size,
                 (unsigned long long)((r->last_pg + 1) * r->psize));
    }
    return rc == CVG_OK && missing > 0 ? CVG_ECORRUPT : rc;
}

/* The main tree (its records are the named databases) and the root of
 * every named database. */
static int
walk_main(reader *r, uint64_t root)
{
    uint64_t stack[WALK_MAX], subs[WALK_MAX];
    size_t sp = 0, ns = 0, visits = 0;
    stack[sp++] = root;
    while (sp > 0) {
        uint64_t pgno = stack[--sp];
        if (++visits > WALK_MAX) {
            return CVG_OK; /* larger than any store makes: leave the rest */
        }
        int rc = load(r, pgno, "a main tree");
        if (rc != CVG_OK) {
            return rc;
        }
        unsigned n = (rd16(r->page + 12) - CVG__LMDB_PAGEHDR) / 2;
        unsigned kind = rd16(r->page + 10) & (P_BRANCH | P_LEAF);
        for (unsigned i = 0; i < n; i++) {
            const uint8_t *node =
                r->page + rd16(r->page + CVG__LMDB_PAGEHDR + 2 * i);
            unsigned lo = rd16(node), hi = rd16(node + 2);
            unsigned fl = rd16(node + 4), ks = rd16(node + 6);
            if (kind == P_BRANCH) {
                if (sp < WALK_MAX) {
                    stack[sp++] =
                        lo | ((uint64_t)hi << 16) | ((uint64_t)fl << 32);
                }
            } else if ((fl & F_SUBDATA) && ns < WALK_MAX) {
                uint64_t sub = rd64(node + NODESIZE + ks + DB_ROOT);
                if (sub != CVG__LMDB_NOPAGE) {
                    subs[ns++] = sub;
                }
            }
        }
    }
    for (size_t i = 0; i < ns; i++) {
        int rc = load(r, subs[i], "a database's root");
        if (rc != CVG_OK) {
            return rc;
        }
    }
    return CVG_OK;
}

static int
check_once(int fd, cvg__lmdb_meta *newest, bool *empty, char *why,
           size_t whylen)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(why, whylen, "cannot stat the data file: %s", strerror(errno));
        return CVG_EIO;
    }
    if (st.st_size == 0) {
        *empty = true;
        return CVG_OK;
    }
    uint8_t m0[META_END], m1[META_END];
    cvg__lmdb_meta a, b;
    ssize_t got = read_at(fd, m0, sizeof m0, 0);
    if (got < 0) {
        snprintf(why, whylen, "cannot read the data file: %s", strerror(errno));
        return CVG_EIO;
    }
    if (got < (ssize_t)sizeof m0) {
        return BAD(
            "the data file is truncated: %llu bytes cannot hold LMDB's "
            "meta pages",
            (unsigned long long)st.st_size);
    }
    const char *bad0 = meta_parse(m0, &a);
    /* Meta page 1 follows page 0: at page 0's page size if it has one,
     * else at the system's. */
    uint64_t off1 = bad0 == NULL ? a.psize : (uint64_t)sysconf(_SC_PAGESIZE);
    const char *bad1 = NULL;
    got = read_at(fd, m1, sizeof m1, off1);
    if (got < 0) {
        snprintf(why, whylen, "cannot read the data file: %s", strerror(errno));
        return CVG_EIO;
    }
    if (got < (ssize_t)sizeof m1) {
        bad1 = "no bytes";
    } else {
        bad1 = meta_parse(m1, &b);
    }
    if (bad0 != NULL && bad1 != NULL) {
        snprintf(why, whylen,
                 "the data file is damaged or not LMDB's: neither meta page is "
                 "valid (page 0: %s; page 1: %s)",
                 bad0, bad1);
        return CVG_ECORRUPT;
    }
    if (bad0 != NULL || bad1 != NULL) {
        snprintf(why, whylen,
                 "the data file is damaged: meta page %d has %s, and LMDB "
                 "needs both",
                 bad0 != NULL ? 0 : 1, bad0 != NULL ? bad0 : bad1);
        return CVG_ECORRUPT;
    }
    if (a.psize != b.psize) {
        return BAD(
            "the data file is damaged: its meta pages disagree on the "
            "page size (%llu, %llu)",
            (unsigned long long)a.psize, (unsigned long long)b.psize);
    }
    /* As LMDB picks: meta 1 only if its txnid is higher. */
    *newest = a.txnid < b.txnid ? b : a;
    const cvg__lmdb_meta *m = newest;
    if (m->last_pg < 1 || m->last_pg >= UINT64_MAX / m->psize / 2) {
        return BAD(
            "the data file is damaged: its last page number %llu is "
            "impossible",
            (unsigned long long)m->last_pg);
    }
    if ((m->free_root != CVG__LMDB_NOPAGE &&
         !pgno_ok(m->free_root, m->last_pg)) ||
        (m->main_root != CVG__LMDB_NOPAGE &&
         !pgno_ok(m->main_root, m->last_pg))) {
        return BAD(
            "the data file is damaged: a root page number is past its "
            "last page %llu",
            (unsigned long long)m->last_pg);
    }
    uint8_t *page = malloc(m->psize);
    if (page == NULL) {
        return CVG_ENOMEM;
    }
    reader r = {fd,    (uint64_t)st.st_size, m->psize, m->last_pg, page, why,
                whylen};
    int rc = CVG_OK;
    if (r.size < (m->last_pg + 1) * m->psize) {
        rc = gap_is_free(&r, m->free_root);
    }
    if (rc == CVG_OK && m->free_root != CVG__LMDB_NOPAGE) {
        rc = load(&r, m->free_root, "the free list's root");
    }
    if (rc == CVG_OK && m->main_root != CVG__LMDB_NOPAGE) {
        rc = walk_main(&r, m->main_root);
    }
    free(page);
    return rc;
}

int
cvg__lmdb_check_file(int fd, cvg__lmdb_meta *newest, bool *empty, char *why,
                     size_t whylen)
{
    char scratch[8];
    if (why == NULL || whylen == 0) {
        why = scratch;
        whylen = sizeof scratch;
    }
    int rc = CVG_OK;
    for (int i = 0; i < TRIES; i++) {
        *empty = false;
        memset(newest, 0, sizeof *newest);
        rc = check_once(fd, newest, empty, why, whylen);
        if (rc != CVG_ECORRUPT) {
            break;
        }
        /* Maybe a commit of another process seen half written. */
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return rc;
}
