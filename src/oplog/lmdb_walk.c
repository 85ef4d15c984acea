/*
 * Every page of one snapshot of LMDB's data file, read by hand (pread) and
 * checked before LMDB is asked to read any of it: the job of a full check
 * (converge check), where the checks at open (lmdb_meta.c) stop at the
 * roots.
 *
 * From the snapshot's meta page, a depth-first walk goes down the free-page
 * tree, the main tree and, from the main tree's records, the tree of every
 * named database. Each page is checked with cvg__lmdb_page_check() (its
 * number, kind, bounds, nodes and the page numbers they hold); a page
 * reached twice (a cycle, or two trees sharing a page) or a tree deeper
 * than LMDB's cursors can follow is damage too; overflow runs are checked
 * at their first page and every page of the run is marked as reached.
 * Keys must be in LMDB's order: ascending within a page, and within the
 * bounds the branch above gives (a branch's key i is the least of child i,
 * and every key of child i is below key i + 1), since a lookup searches by
 * those bounds and would miss a record a cursor still finds. What is not
 * checked: that the free-page lists name exactly the pages no tree
 * reaches.
 *
 * A snapshot is stable only while a read transaction pins it: called with
 * the id of such a transaction, the walk reads the meta page of that id.
 * Called with 0 (nothing pinned yet: the check runs before LMDB may read
 * anything) it walks the newest and a commit of another process meanwhile
 * may make it fail; the caller reads again to be sure.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>

#include "converge.h"

#include "lmdb_layout.h"
#include "lmdb_meta.h"

/* CURSOR_STACK of mdb.c: deeper trees LMDB cannot walk. */
#define DEPTH_MAX 32
/* The longest key LMDB stores (mdb_env_get_maxkeysize). */
#define KEY_MAX 511

/* A bound on the keys of a subtree: none, or a key. */
typedef struct bound {
    uint16_t len;
    bool set;
    uint8_t key[KEY_MAX];
} bound;

typedef struct walker {
    int fd;
    uint64_t size;
    uint32_t psize;
    uint64_t last_pg;
    uint8_t *page;
    uint8_t *seen; /* a bit per page number */
    struct frame {
        uint64_t pgno;
        uint8_t tree; /* TREE_... */
        uint8_t depth;
        bound lo; /* every key >= lo */
        bound hi; /* every key < hi */
    } * stack;
    size_t sp, cap;
    cvg__lmdb_walk *out;
    char *why;
    size_t whylen;
} walker;

enum { TREE_FREE, TREE_MAIN, TREE_DB };
static const char *tree_names[] = {"the free-page tree", "the main tree",
                                   "a database"};

#define BAD(...) (snprintf(w->why, w->whylen, __VA_ARGS__), CVG_ECORRUPT)

/* LMDB's order: the free-page tree's keys are native integers
 * (MDB_INTEGERKEY), every other table's bytes (memcmp, then length). */
static int
key_cmp(int tree, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    if (tree == TREE_FREE && alen == 8 && blen == 8) {
        uint64_t x = rd64(a), y = rd64(b);
        return x < y ? -1 : x > y;
    }
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c != 0 ? c : alen < blen ? -1 : alen > blen;
}

static void
bound_set(bound *b, const uint8_t *key, size_t len)
{
    b->set = true;
    b->len = (uint16_t)len;
    memcpy(b->key, key, len);
}

static int
push(walker *w, uint64_t pgno, int tree, unsigned depth, const bound *lo,
     const bound *hi)
{
    if (depth > DEPTH_MAX) {
        return BAD(
            "the data file is damaged: %s is deeper than %d pages at "
            "page %llu",
            tree_names[tree], DEPTH_MAX, (unsigned long long)pgno);
    }
    if (w->sp == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        void *p = realloc(w->stack, cap * sizeof *w->stack);
        if (p == NULL) {
            return CVG_ENOMEM;
        }
        w->stack = p;
        w->cap = cap;
    }
    w->stack[w->sp].pgno = pgno;
    w->stack[w->sp].tree = (uint8_t)tree;
    w->stack[w->sp].depth = (uint8_t)depth;
    w->stack[w->sp].lo.set = false;
    w->stack[w->sp].hi.set = false;
    if (lo != NULL && lo->set) {
        bound_set(&w->stack[w->sp].lo, lo->key, lo->len);
    }
    if (hi != NULL && hi->set) {
        bound_set(&w->stack[w->sp].hi, hi->key, hi->len);
    }
    w->sp++;
    return CVG_OK;
}

/* Mark pages [pgno, pgno + n) reached; damage if one was already. */
static int
reach(walker *w, uint64_t pgno, uint64_t n, int tree)
{
    for (uint64_t p = pgno; p < pgno + n; p++) {
        if (w->seen[p / 8] & (1u << (p % 8))) {
            return BAD(
                "the data file is damaged: page %llu is reached twice "
                "(in %s)",
                (unsigned long long)p, tree_names[tree]);
        }
        w->seen[p / 8] |= (uint8_t)(1u << (p % 8));
    }
    return CVG_OK;
}

/* Read page @p pgno into w->page and check it. */
static int
load(walker *w, uint64_t pgno, int tree)
{
    uint64_t off = pgno * w->psize;
    if (off + w->psize > w->size) {
        return BAD(
            "the data file is truncated: page %llu of %s lies past its "
            "end (%llu bytes)",
            (unsigned long long)pgno, tree_names[tree],
            (unsigned long long)w->size);
    }
    ssize_t got = read_at(w->fd, w->page, w->psize, off);
    if (got < 0) {
        snprintf(w->why, w->whylen, "cannot read the data file: %s",
                 strerror(errno));
        return CVG_EIO;
    }
    if ((size_t)got < w->psize) {
        return BAD("the data file is truncated: it ends inside page %llu",
                   (unsigned long long)pgno);
    }
    char sub[160];
    if (cvg__lmdb_page_check(w->page, w->psize, pgno, w->last_pg, sub,
                             sizeof sub) != CVG_OK) {
        return BAD("the data file is damaged: %s (in %s)", sub,
                   tree_names[tree]);
    }
    return CVG_OK;
}

/* A run of overflow pages a leaf points to. */
static int
overflow(walker *w, uint64_t pgno, int tree)
{
    int rc = load(w, pgno, tree);
    if (rc != CVG_OK) {
        return rc;
    }
    if ((rd16(w->page + 10) & P_OVERFLOW) == 0) {
        return BAD(
            "the data file is damaged: page %llu should start an "
            "overflow run (in %s)",
            (unsigned long long)pgno, tree_names[tree]);
    }
    uint32_t pages = rd32(w->page + 12);
    w->out->overflow_pages += pages;
    return reach(w, pgno, pages, tree);
}

/* The page on top of the stack: check it, mark it, push what it holds. */
static int
visit(walker *w, const struct frame *fp)
{
    /* A copy: pushing children may move the stack. */
    struct frame f = *fp;
    int rc = reach(w, f.pgno, 1, f.tree);
    if (rc == CVG_OK) {
        rc = load(w, f.pgno, f.tree);
    }
    if (rc != CVG_OK) {
        return rc;
    }
    unsigned kind = rd16(w->page + 10) & (P_BRANCH | P_LEAF | P_OVERFLOW);
    if (kind == P_OVERFLOW) {
        return BAD(
            "the data file is damaged: page %llu of %s is an overflow "
            "page where a tree page belongs",
            (unsigned long long)f.pgno, tree_names[f.tree]);
    }
    if (rd16(w->page + 10) & P_LEAF2) {
        return BAD(
            "the data file is damaged: page %llu of %s has packed "
            "keys, which no table here uses",
            (unsigned long long)f.pgno, tree_names[f.tree]);
    }
    unsigned n = (rd16(w->page + 12) - CVG__LMDB_PAGEHDR) / 2;
    if (kind == P_BRANCH) {
        w->out->branch_pages++;
    } else {
        w->out->leaf_pages++;
    }
    /* Overflow runs are read after the loop: reading one reuses w->page. */
    uint64_t *runs = NULL;
    size_t nruns = 0;
    const uint8_t *prev = NULL;
    size_t prev_len = 0;
    for (unsigned i = 0; i < n && rc == CVG_OK; i++) {
        const uint8_t *node =
            w->page + rd16(w->page + CVG__LMDB_PAGEHDR + 2 * i);
        unsigned lo = rd16(node), hi = rd16(node + 2);
        unsigned fl = rd16(node + 4), ks = rd16(node + 6);
        const uint8_t *data = node + NODESIZE + ks;
        const uint8_t *key = node + NODESIZE;
        /* A branch's first key is not one (its bound is the parent's). */
        bool has_key = kind == P_LEAF || i > 0;
        if (has_key && ks > KEY_MAX) {
            rc =
                BAD("the data file is damaged: page %llu of %s has a key "
                    "of %u bytes",
                    (unsigned long long)f.pgno, tree_names[f.tree], ks);
            break;
        }
        if (has_key &&
            ((prev != NULL && key_cmp(f.tree, prev, prev_len, key, ks) >= 0) ||
             (f.lo.set && key_cmp(f.tree, key, ks, f.lo.key, f.lo.len) < 0) ||
             (f.hi.set && key_cmp(f.tree, key, ks, f.hi.key, f.hi.len) >= 0))) {
            rc =
                BAD("the data file is damaged: the keys of page %llu of %s "
                    "are out of order",
                    (unsigned long long)f.pgno, tree_names[f.tree]);
            break;
        }
        if (has_key) {
            prev = key;
            prev_len = ks;
        }
        if (kind == P_BRANCH) {
            /* Child i holds keys from key i (or the parent's bound) to
             * key i + 1 (or the parent's bound). */
            bound clo, chi;
            clo = i > 0 ? (bound){0} : f.lo;
            if (i > 0) {
                bound_set(&clo, key, ks);
            }
            chi = f.hi;
            if (i + 1 < n) {
                const uint8_t *next =
                    w->page + rd16(w->page + CVG__LMDB_PAGEHDR + 2 * (i + 1));
                unsigned nks = rd16(next + 6);
                if (nks > KEY_MAX) {
                    rc = BAD(
                        "the data file is damaged: page %llu of %s has "
                        "a key of %u bytes",
                        (unsigned long long)f.pgno, tree_names[f.tree], nks);
                    break;
                }
                bound_set(&chi, next + NODESIZE, nks);
            }
            rc = push(w, lo | ((uint64_t)hi << 16) | ((uint64_t)fl << 32),
                      f.tree, f.depth + 1u, &clo, &chi);
        } else if (fl & F_BIGDATA) {
            if (runs == NULL) {
                runs = malloc(n * sizeof *runs);
                if (runs == NULL) {
                    rc = CVG_ENOMEM;
                    break;
                }
            }
            runs[nruns++] = rd64(data);
        } else if (fl & (F_SUBDATA | F_DUPDATA)) {
            if (f.tree != TREE_MAIN || !(fl & F_SUBDATA) || (fl & F_DUPDATA)) {
                rc =
                    BAD("the data file is damaged: page %llu of %s holds "
                        "sorted duplicates, which no table here uses",
                        (unsigned long long)f.pgno, tree_names[f.tree]);
                break;
            }
            w->out->databases++;
            uint64_t root = rd64(data + DB_ROOT);
            if (root != CVG__LMDB_NOPAGE) {
                rc = push(w, root, TREE_DB, 1, NULL, NULL);
            }
        }
    }
    for (size_t i = 0; i < nruns && rc == CVG_OK; i++) {
        rc = overflow(w, runs[i], f.tree);
    }
    free(runs);
    return rc;
}

/* The meta page of transaction @p txnid, or the newest when 0. */
static int
pick_meta(walker *w, uint64_t txnid, cvg__lmdb_meta *m)
{
    cvg__lmdb_meta newest;
    bool empty;
    int rc = cvg__lmdb_check_file(w->fd, &newest, &empty, w->why, w->whylen);
    if (rc != CVG_OK) {
        return rc;
    }
    if (empty) {
        return BAD("the data file is empty");
    }
    if (txnid == 0 || newest.txnid == txnid) {
        *m = newest;
        return CVG_OK;
    }
    /* The other meta page: the older snapshot. */
    uint8_t buf[META_END];
    for (uint64_t i = 0; i < 2; i++) {
        if (read_at(w->fd, buf, sizeof buf, i * newest.psize) !=
            (ssize_t)sizeof buf) {
            break;
        }
        if (rd64(buf + 144) == txnid) {
            m->psize = newest.psize;
            m->free_root = rd64(buf + 80);
            m->main_root = rd64(buf + 128);
            m->last_pg = rd64(buf + 136);
            m->txnid = txnid;
            if (m->last_pg > newest.last_pg) {
                return BAD(
                    "the data file is damaged: an older meta page "
                    "reaches past the newest");
            }
            return CVG_OK;
        }
    }
    snprintf(w->why, w->whylen,
             "the snapshot to check is no longer in the data file");
    return CVG_EBUSY;
}

int
cvg__lmdb_walk_file(int fd, uint64_t txnid, cvg__lmdb_walk *out, char *why,
                    size_t whylen)
{
    char scratch[8];
    if (why == NULL || whylen == 0) {
        why = scratch;
        whylen = sizeof scratch;
    }
    memset(out, 0, sizeof *out);
    walker w = {.fd = fd, .out = out, .why = why, .whylen = whylen};
    cvg__lmdb_meta m;
    int rc = pick_meta(&w, txnid, &m);
    if (rc != CVG_OK) {
        return rc;
    }
    off_t end = lseek(fd, 0, SEEK_END);
    if (end < 0) {
        snprintf(why, whylen, "cannot size the data file: %s", strerror(errno));
        return CVG_EIO;
    }
    w.size = (uint64_t)end;
    w.psize = m.psize;
    w.last_pg = m.last_pg;
    out->txnid = m.txnid;
    out->last_pg = m.last_pg;
    w.page = malloc(m.psize);
    w.seen = calloc((size_t)(m.last_pg / 8 + 1), 1);
    if (w.page == NULL || w.seen == NULL) {
        rc = CVG_ENOMEM;
    }
    if (rc == CVG_OK && m.free_root != CVG__LMDB_NOPAGE) {
        rc = push(&w, m.free_root, TREE_FREE, 1, NULL, NULL);
    }
    if (rc == CVG_OK && m.main_root != CVG__LMDB_NOPAGE) {
        rc = push(&w, m.main_root, TREE_MAIN, 1, NULL, NULL);
    }
    while (rc == CVG_OK && w.sp > 0) {
        w.sp--;
        rc = visit(&w, &w.stack[w.sp]);
    }
    free(w.page);
    free(w.seen);
    free(w.stack);
    return rc;
}
