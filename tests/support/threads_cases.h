/* Scenarios with threads, shared by the Criterion test (test_threads.c) and
 * a plain driver (threads_main.c): Criterion's sandbox cannot start under
 * ThreadSanitizer, whose reserved address ranges leave its arena no room. */
#ifndef CVG_THREADS_CASES_H
#define CVG_THREADS_CASES_H

#include <stddef.h>
#include <stdint.h>

/* What failed first, for the report. */
typedef struct cvg_test_failure {
    int rc; /* CVG_OK if nothing failed */
    char what[240];
} cvg_test_failure;

struct cvg_replica;
struct cvg_key;

/* The value of counter @p counter and the number of elements of set
 * @p set, read in one read transaction (0 for a field not written yet). */
int cvg_test_read_counter_set(struct cvg_replica *r,
                              const struct cvg_key *counter,
                              const struct cvg_key *set, int64_t *count,
                              int64_t *elems);

/* Each runs one scenario, with its replicas in fresh directories named
 * after it, and returns CVG_OK or the first failure (also in *f). */
typedef int cvg_test_threads_fn(cvg_test_failure *f);

/* Replicas of different threads are independent: each thread opens its own
 * pair, writes, reads and syncs it, with no lock at all. */
cvg_test_threads_fn cvg_test_threads_own_pairs;
/* A ring of replicas, each behind its own mutex, synced across threads. */
cvg_test_threads_fn cvg_test_threads_ring;
/* One replica shared by threads under one mutex loses no write. */
cvg_test_threads_fn cvg_test_threads_shared;
/* A read transaction begun in one thread is read and ended in others. */
cvg_test_threads_fn cvg_test_threads_read_handoff;
/* Fault injection armed in one thread fails no other thread's allocation. */
cvg_test_threads_fn cvg_test_threads_fault_injection;
/* Group commit: threads calling cvg_replica_write() at once, some calls
 * failing, beside plain transactions and reads under cvg_replica_lock(),
 * against an oracle (threads_group.c). */
cvg_test_threads_fn cvg_test_threads_group;

#endif
