/*
 * The README's code runs: its "Testing your app's sync" block is cut out
 * of README.md at build time and made into a function of till and server
 * that returns the block's rc (extract_snippet.cmake), compiled on its own
 * with the project's warnings and only include/ on the path, as an app
 * would build it, and linked here. These tests call it on real replicas
 * and check that it does what the README says: once rc is CVG_OK the
 * replicas agree, and an error comes back in rc.
 */
#include <criterion/criterion.h>

#include "converge/testing.h"

#include "testutil.h"

/* The README's block. */
int readme_testing_snippet(cvg_replica *till, cvg_replica *server);

static const cvg_key qty = {"stock", "sku-1", "qty"};

static void
add(cvg_replica *r, int64_t n)
{
    cvg_txn *t;
    cr_assert_eq(cvg_txn_begin(r, 0, &t), CVG_OK);
    cr_assert_eq(cvg_counter_add(t, &qty, n, NULL), CVG_OK);
    cr_assert_eq(cvg_txn_commit(t), CVG_OK);
}

static int64_t
get(cvg_replica *r)
{
    cvg_txn *t;
    int64_t v = 0;
    cr_assert_eq(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t), CVG_OK);
    cr_assert_eq(cvg_counter_get(t, &qty, &v), CVG_OK);
    cvg_txn_abort(t);
    return v;
}

Test(readme, testing_snippet_syncs_over_the_bad_link)
{
    cvg_replica *till, *server;
    cr_assert_eq(cvg_replica_open(cvg_test_dir("till"), NULL, &till), CVG_OK);
    cr_assert_eq(cvg_replica_open(cvg_test_dir("server"), NULL, &server),
                 CVG_OK);
    /* Enough ops in small steps that the faults have messages to hit. */
    for (int i = 0; i < 20; i++) {
        add(till, 1);
        add(server, -2);
    }
    cr_assert_eq(readme_testing_snippet(till, server), CVG_OK);
    cr_expect_eq(get(till), -20);
    cr_expect_eq(get(server), -20);

    /* More writes after a sync: the next one carries only those. */
    add(till, 5);
    cr_assert_eq(readme_testing_snippet(till, server), CVG_OK);
    cr_expect_eq(get(server), -15);
    cvg_replica_close(till);
    cvg_replica_close(server);
}

Test(readme, testing_snippet_returns_errors)
{
    cvg_replica *r;
    cr_assert_eq(cvg_replica_open(cvg_test_dir("alone"), NULL, &r), CVG_OK);
    cr_expect_eq(readme_testing_snippet(r, r), CVG_EINVAL);
    cr_expect_eq(readme_testing_snippet(r, NULL), CVG_EINVAL);
    cvg_replica_close(r);
}
