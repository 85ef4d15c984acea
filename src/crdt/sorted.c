/*
 * Sorted arrays, the shape of every CRDT state here (parts by origin,
 * siblings and tags by dot, version vectors by origin): one binary search
 * and one copy for all of them.
 */
#include "crdt_int.h"

int
cvg__id_cmp_v(const void *a, const void *b)
{
    return cvg__id_cmp(a, b);
}

int
cvg__dot_cmp_v(const void *a, const void *b)
{
    return cvg__dot_cmp(a, b);
}

size_t
cvg__search(const void *base, size_t n, size_t size, const void *key,
            int (*cmp)(const void *elem, const void *key), bool *found)
{
    const uint8_t *p = base;
    size_t lo = 0;
    size_t hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp(p + mid * size, key);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = false;
    return lo;
}

int
cvg__array_assign(void **arr, size_t *n, size_t *cap, const void *src,
                  size_t count, size_t size)
{
    if (*arr == src) {
        return CVG_OK;
    }
    int rc = cvg__grow(arr, cap, count, size);
    if (rc != CVG_OK) {
        return rc;
    }
    if (count > 0) {
        memcpy(*arr, src, count * size);
    }
    *n = count;
    return CVG_OK;
}
