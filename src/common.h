/*
 * What every module of src/ shares: allocation (one place to hook or fail
 * it), a growable byte buffer, and small helpers. Sits below crdt, oplog and
 * replica; includes no third-party header.
 */
#ifndef CVG_COMMON_H
#define CVG_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "converge.h"

/* All allocation in src/ goes through these, so tests can fail the Nth
 * allocation and check that nothing was written. */
void *cvg__alloc(size_t size);
void *cvg__calloc(size_t n, size_t size);
void *cvg__realloc(void *ptr, size_t size);
void cvg__free(void *ptr);

/* Fault injection for tests: the Nth allocation from now on the calling
 * thread fails (1 = the next one); 0 turns it off. Not API; declared here
 * for white-box tests. */
void cvg__alloc_fail_after(unsigned long n);

/* Grow *arr (of *cap elements of @p size) to hold at least @p need. */
int cvg__grow(void **arr, size_t *cap, size_t need, size_t size);

/* A growable byte buffer. */
typedef struct cvg__buf {
    uint8_t *p;
    size_t len;
    size_t cap;
} cvg__buf;

int cvg__buf_reserve(cvg__buf *b, size_t extra);
int cvg__buf_append(cvg__buf *b, const void *data, size_t n);
void cvg__buf_free(cvg__buf *b);

/* Big-endian stores and loads, spelled out byte by byte: compilers turn
 * this form into one load or store and a byte swap at -O2 (a loop they
 * unroll only at -O3), and these run for every key and id compared. */
static inline void
cvg__put_be64(uint8_t *p, uint64_t v)
{
    p[0] = (uint8_t)(v >> 56);
    p[1] = (uint8_t)(v >> 48);
    p[2] = (uint8_t)(v >> 40);
    p[3] = (uint8_t)(v >> 32);
    p[4] = (uint8_t)(v >> 24);
    p[5] = (uint8_t)(v >> 16);
    p[6] = (uint8_t)(v >> 8);
    p[7] = (uint8_t)v;
}

static inline uint64_t
cvg__get_be64(const uint8_t *p)
{
    return ((uint64_t)p[0] << 56) | ((uint64_t)p[1] << 48) |
           ((uint64_t)p[2] << 40) | ((uint64_t)p[3] << 32) |
           ((uint64_t)p[4] << 24) | ((uint64_t)p[5] << 16) |
           ((uint64_t)p[6] << 8) | (uint64_t)p[7];
}

static inline void
cvg__put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline uint32_t
cvg__get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/* memcmp's order of two 16-byte strings (ids), as -1, 0 or 1, in two
 * loads each: this runs several times for every op. */
static inline int
cvg__cmp16(const uint8_t *a, const uint8_t *b)
{
    uint64_t x = cvg__get_be64(a), y = cvg__get_be64(b);
    if (x == y) {
        x = cvg__get_be64(a + 8);
        y = cvg__get_be64(b + 8);
    }
    return (x > y) - (x < y);
}

#define CVG__MIN(a, b) ((a) < (b) ? (a) : (b))
#define CVG__MAX(a, b) ((a) > (b) ? (a) : (b))

#endif /* CVG_COMMON_H */
