/*
 * Threads (the scenarios are in support/threads_cases.c, shared with the
 * plain driver threads_main.c that scripts/tsan.sh runs): replicas of
 * different threads are independent; replicas behind mutexes sync across
 * threads; one replica shared under a mutex loses no write; a read
 * transaction moves between threads; fault injection is per thread;
 * group commits (support/threads_group.c) keep every call whole.
 */
#include <criterion/criterion.h>

#include "converge.h"

#include "threads_cases.h"

static void
run(cvg_test_threads_fn *fn)
{
    cvg_test_failure f;
    int rc = fn(&f);
    cr_expect_eq(rc, CVG_OK, "%s: %s", f.what, cvg_errname(rc));
}

Test(threads, replicas_of_different_threads_are_independent)
{
    run(cvg_test_threads_own_pairs);
}

Test(threads, a_ring_of_replicas_behind_one_mutex_each)
{
    run(cvg_test_threads_ring);
}

Test(threads, one_replica_shared_under_a_mutex_loses_nothing)
{
    run(cvg_test_threads_shared);
}

Test(threads, a_read_txn_moves_between_threads)
{
    run(cvg_test_threads_read_handoff);
}

Test(threads, fault_injection_is_per_thread)
{
    run(cvg_test_threads_fault_injection);
}

Test(threads, group_commits_keep_every_call_whole, .timeout = 120)
{
    run(cvg_test_threads_group);
}
