/*
 * The one place src/ allocates. Plain libc underneath; a countdown lets
 * fault tests fail the Nth allocation to prove every error path is clean.
 */
#include <stdlib.h>

#include "common.h"

/* Per thread: the library never sets it, only fault tests do, and they
 * mean "the Nth allocation of the code I call next". A process-wide
 * counter would be a data race as soon as another thread allocates (every
 * allocation decrements it once armed), and would fail that thread's
 * allocation instead of the one under test. */
static _Thread_local unsigned long fail_countdown;

void
cvg__alloc_fail_after(unsigned long n)
{
    fail_countdown = n;
}

static int
should_fail(void)
{
    if (fail_countdown == 0) {
        return 0;
    }
    return --fail_countdown == 0;
}

void *
cvg__alloc(size_t size)
{
    if (should_fail()) {
        return NULL;
    }
    return malloc(size ? size : 1);
}

void *
cvg__calloc(size_t n, size_t size)
{
    if (should_fail()) {
        return NULL;
    }
    return calloc(n ? n : 1, size ? size : 1);
}

void *
cvg__realloc(void *ptr, size_t size)
{
    if (should_fail()) {
        return NULL;
    }
    return realloc(ptr, size ? size : 1);
}

void
cvg__free(void *ptr)
{
    free(ptr);
}

int
cvg__grow(void **arr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) {
        return CVG_OK;
    }
    size_t ncap = *cap ? *cap : 4;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / size) {
            return CVG_ENOMEM;
        }
        ncap *= 2;
    }
    void *p = cvg__realloc(*arr, ncap * size);
    if (p == NULL) {
        return CVG_ENOMEM;
    }
    *arr = p;
    *cap = ncap;
    return CVG_OK;
}

int
cvg__buf_reserve(cvg__buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len) {
        return CVG_ENOMEM;
    }
    void *p = b->p;
    int rc = cvg__grow(&p, &b->cap, b->len + extra, 1);
    b->p = p;
    return rc;
}

int
cvg__buf_append(cvg__buf *b, const void *data, size_t n)
{
    int rc = cvg__buf_reserve(b, n);
    if (rc != CVG_OK) {
        return rc;
    }
    if (n > 0) {
        memcpy(b->p + b->len, data, n);
    }
    b->len += n;
    return CVG_OK;
}

void
cvg__buf_free(cvg__buf *b)
{
    cvg__free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}
