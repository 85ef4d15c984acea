/*
 * Reading LMDB's data file without LMDB (lmdb_meta.c): its two meta pages
 * and the structure of single pages, so that a truncated or damaged file
 * is refused with CVG_ECORRUPT before LMDB maps it (LMDB would fault on a
 * page past the end of the file, or abort on a zeroed page).
 *
 * The layout is liblmdb 0.9's on 64-bit hosts (pgno_t and size_t of 8
 * bytes, MDB_DATA_VERSION 1, no MDB_DEVEL), in the host's byte order.
 */
#ifndef CVG_LMDB_META_H
#define CVG_LMDB_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* md_root of an empty tree. */
#define CVG__LMDB_NOPAGE UINT64_MAX
/* The page header before the nodes' offsets. */
#define CVG__LMDB_PAGEHDR 16u

/* What one meta page says (the fields this library uses). */
typedef struct cvg__lmdb_meta {
    uint32_t psize;     /* page size of the file */
    uint64_t mapsize;   /* the map size the last writer used */
    uint64_t last_pg;   /* last page in use */
    uint64_t txnid;     /* the transaction that wrote this meta */
    uint64_t free_root; /* root of the free-page tree, or CVG__LMDB_NOPAGE */
    uint64_t main_root; /* root of the main tree (the named databases) */
} cvg__lmdb_meta;

/* The structure of one page, page @p pgno of a file whose last page in use
 * is @p last_pg: its number field, its kind (branch, leaf or overflow),
 * its free-space bounds, and for every node that it lies inside the page
 * and that a child, overflow or sub-database page number it holds is one
 * of the file's. Keys and their order are not looked at. CVG_OK, or
 * CVG_ECORRUPT with a phrase in @p why. Meta pages (0 and 1) are not
 * pages in this sense. */
int cvg__lmdb_page_check(const uint8_t *page, uint32_t psize, uint64_t pgno,
                         uint64_t last_pg, char *why, size_t whylen);

/* Check the data file open as @p fd before LMDB maps it: both meta pages
 * valid, the newest one's page numbers sane, the file long enough for
 * every page that may be read, and the root pages of the free-page tree,
 * of the main tree and of every named database sound (cvg__lmdb_page_check).
 * *empty is set for a file of no bytes (LMDB makes a new one). On success
 * *newest is the meta LMDB will use. CVG_ECORRUPT with a sentence in
 * @p why, or CVG_EIO if the file cannot be read. A file longer than the
 * meta says is fine: another process may be growing it. */
int cvg__lmdb_check_file(int fd, cvg__lmdb_meta *newest, bool *empty, char *why,
                         size_t whylen);

/* What a walk of every page found. */
typedef struct cvg__lmdb_walk {
    uint64_t txnid;   /* the snapshot walked */
    uint64_t last_pg; /* its last page in use */
    uint64_t branch_pages;
    uint64_t leaf_pages;
    uint64_t overflow_pages;
    uint64_t databases; /* named databases */
} cvg__lmdb_walk;

/* Walk every page the snapshot of transaction @p txnid reaches (0: the
 * newest), reading the file open as @p fd by hand (lmdb_walk.c): the file
 * checks of cvg__lmdb_check_file, then every page of every tree checked
 * and reached once. CVG_OK, CVG_ECORRUPT with a sentence in @p why,
 * CVG_EBUSY when the snapshot @p txnid is gone from the file (not pinned),
 * CVG_EIO, CVG_ENOMEM. */
int cvg__lmdb_walk_file(int fd, uint64_t txnid, cvg__lmdb_walk *out, char *why,
                        size_t whylen);

#endif
