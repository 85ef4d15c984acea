/*
 * The layout of LMDB's data file as liblmdb 0.9 writes it on 64-bit hosts
 * (mdb.c: MDB_page, MDB_meta, MDB_db, MDB_node), for the code that reads
 * the file by hand (lmdb_meta.c at open, lmdb_walk.c for a full check),
 * and the unaligned reads and the pread loop they share.
 */
#ifndef CVG_LMDB_LAYOUT_H
#define CVG_LMDB_LAYOUT_H

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define MAGIC 0xBEEFC0DEu
#define DATA_VERSION 1u
#define P_BRANCH 0x01u
#define P_LEAF 0x02u
#define P_OVERFLOW 0x04u
#define P_META 0x08u
#define P_DIRTY 0x10u
#define P_LEAF2 0x20u
#define P_KEEP 0x8000u
#define F_BIGDATA 0x01u
#define F_SUBDATA 0x02u
#define F_DUPDATA 0x04u
#define NODESIZE 8u
#define DB_SIZE 48u  /* sizeof(MDB_db) */
#define DB_ROOT 40u  /* offsetof(MDB_db, md_root) */
#define META_END 152 /* page header + sizeof(MDB_meta) */
#define PSIZE_MIN 512u
#define PSIZE_MAX 0x8000u /* MAX_PAGESIZE without MDB_DEVEL */

static inline uint16_t
rd16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline uint32_t
rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline uint64_t
rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Read exactly @p n bytes at @p off: n, fewer at the end of the file, or
 * -1 with errno. */
static inline ssize_t
read_at(int fd, void *buf, size_t n, uint64_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r =
            pread(fd, (uint8_t *)buf + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            return -1;
        }
        if (r == 0) {
            break;
        }
        got += (size_t)r;
    }
    return (ssize_t)got;
}

#endif
