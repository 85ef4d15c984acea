/* Helpers shared by the tests: fresh directories, seeds, a small PRNG. */
#ifndef CVG_TESTUTIL_H
#define CVG_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* A new empty directory for one test (Criterion runs each test in its own
 * process; LMDB forbids opening one environment twice in a process). The
 * path is static storage, valid until the next call. */
const char *cvg_test_dir(const char *name);

/* The seed for a randomized test: $CVG_TEST_SEED if set, else @p dflt. */
uint64_t cvg_test_seed(uint64_t dflt);

/* Sleep @p us microseconds, resuming after signals. */
void cvg_test_sleep_us(uint64_t us);

/* Read exactly @p n bytes from @p fd (a child's pipe), waiting at most
 * @p timeout_ms for each chunk. Returns 1 when read, 0 at end of file
 * before the first byte, -1 on a timeout, a short read at end of file, or
 * an error. */
int cvg_test_read_full(int fd, void *buf, size_t n, int timeout_ms);

/* splitmix64: small, fast, good enough to drive random schedules. */
static inline uint64_t
cvg_test_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n). */
static inline uint64_t
cvg_test_below(uint64_t *state, uint64_t n)
{
    return n ? cvg_test_rand(state) % n : 0;
}

#endif
