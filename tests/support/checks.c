#include "checks.h"

#include <criterion/criterion.h>

#include "digest.h"

char *
cvg_test_state(cvg_replica *r)
{
    char *d = NULL;
    int rc = cvg_test_digest(r, &d);
    cr_assert_eq(rc, CVG_OK, "digest: %s", cvg_errname(rc));
    cr_assert_not_null(d);
    return d;
}

uint64_t
cvg_test_op_count(cvg_replica *r)
{
    cvg_replica_stats st;
    int rc = cvg_replica_stats_get(r, &st, sizeof st);
    cr_assert_eq(rc, CVG_OK, "stats: %s", cvg_errname(rc));
    return st.op_count;
}

void
cvg_test_reopen_fast(const char *dir, cvg_replica **r, uint64_t seed)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = CVG_RELAXED; /* speed: crash safety is tested elsewhere */
    o.map_size = 1 << 20;       /* small maps open fast; they grow */
    cvg_replica_close(*r);
    *r = NULL;
    int rc = cvg_replica_open(dir, &o, r);
    cr_assert_eq(rc, CVG_OK, "seed %llu: open %s: %s", (unsigned long long)seed,
                 dir, cvg_errname(rc));
}
