/*
 * The thread scenarios of test_threads.c as a plain program, for
 * ThreadSanitizer: Criterion's sandbox maps its arena at random addresses
 * that TSan keeps for itself, so Criterion programs do not start under it.
 * Prints one line per scenario; exits 1 if any failed.
 */
#include <stdio.h>

#include "converge.h"

#include "threads_cases.h"

static const struct {
    const char *name;
    cvg_test_threads_fn *fn;
} cases[] = {
    {"replicas_of_different_threads_are_independent",
     cvg_test_threads_own_pairs},
    {"a_ring_of_replicas_behind_one_mutex_each", cvg_test_threads_ring},
    {"one_replica_shared_under_a_mutex_loses_nothing", cvg_test_threads_shared},
    {"a_read_txn_moves_between_threads", cvg_test_threads_read_handoff},
    {"fault_injection_is_per_thread", cvg_test_threads_fault_injection},
    {"group_commits_keep_every_call_whole", cvg_test_threads_group},
};

int
main(void)
{
    int failed = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cvg_test_failure f;
        int rc = cases[i].fn(&f);
        if (rc == CVG_OK) {
            printf("[PASS] threads::%s\n", cases[i].name);
        } else {
            printf("[FAIL] threads::%s: %s: %s\n", cases[i].name, f.what,
                   cvg_errname(rc));
            failed++;
        }
    }
    return failed ? 1 : 0;
}
