/*
 * The origin table: indexes in order of first sight, lookups across growth,
 * ids sharing their hash bytes, truncation that really forgets, and an add
 * that fails for memory leaving the table as it was.
 */
#include <criterion/criterion.h>

#include "oplog/oplog_int.h"
#include "testutil.h"

static cvg_replica_id
rid(uint64_t *rng)
{
    cvg_replica_id id;
    for (int i = 0; i < 16; i += 8) {
        uint64_t r = cvg_test_rand(rng);
        memcpy(id.bytes + i, &r, 8);
    }
    return id;
}

/* Ids equal in the 8 bytes the hash uses: they all probe from one slot. */
static cvg_replica_id
same_hash(uint32_t n)
{
    cvg_replica_id id;
    memset(id.bytes, 0x5a, 8);
    memset(id.bytes + 8, 0, 8);
    memcpy(id.bytes + 12, &n, 4);
    return id;
}

static void
expect_found(const cvg__origins *o, const cvg_replica_id *id, uint32_t want)
{
    uint32_t idx = 12345;
    cr_expect_eq(cvg__origins_find(o, id, &idx), CVG_OK, "find %u", want);
    cr_expect_eq(idx, want);
    const cvg_replica_id *back = cvg__origins_id(o, want);
    cr_assert_not_null(back);
    cr_expect(memcmp(back->bytes, id->bytes, 16) == 0);
}

static void
expect_absent(const cvg__origins *o, const cvg_replica_id *id)
{
    uint32_t idx = 7;
    cr_expect_eq(cvg__origins_find(o, id, &idx), CVG_ENOTFOUND);
    cr_expect_eq(idx, 0u);
}

Test(origins, empty_table)
{
    cvg__origins o = {0};
    uint64_t rng = 1;
    cvg_replica_id id = rid(&rng);
    expect_absent(&o, &id);
    cr_expect_null(cvg__origins_id(&o, 0));
    cvg__origins_truncate(&o, 0);
    cvg__origins_destroy(&o);
    cvg__origins_destroy(&o);
    cvg__origins_destroy(NULL);
}

Test(origins, add_many_then_find_each)
{
    enum { N = 20000 };
    cvg__origins o = {0};
    uint64_t rng = cvg_test_seed(5);
    cvg_replica_id *ids = calloc(N, sizeof *ids);
    for (uint32_t i = 0; i < N; i++) {
        ids[i] = rid(&rng);
        uint32_t idx;
        bool added = false;
        cr_assert_eq(cvg__origins_index(&o, &ids[i], &idx, &added), CVG_OK);
        cr_expect(added);
        cr_expect_eq(idx, i);
    }
    cr_expect_eq(o.n, N);
    /* The table stays at most half full. */
    cr_expect_leq(o.n * 2, o.nslots);
    for (uint32_t i = 0; i < N; i++) {
        expect_found(&o, &ids[i], i);
        uint32_t idx;
        bool added = true;
        cr_assert_eq(cvg__origins_index(&o, &ids[i], &idx, &added), CVG_OK);
        cr_expect_not(added);
        cr_expect_eq(idx, i);
    }
    cr_expect_eq(o.n, N);
    cr_expect_null(cvg__origins_id(&o, N));
    cvg_replica_id other = rid(&rng);
    expect_absent(&o, &other);
    cvg__origins_destroy(&o);
    free(ids);
}

Test(origins, ids_sharing_hash_bytes)
{
    enum { N = 500 };
    cvg__origins o = {0};
    for (uint32_t i = 0; i < N; i++) {
        cvg_replica_id id = same_hash(i);
        uint32_t idx;
        bool added;
        cr_assert_eq(cvg__origins_index(&o, &id, &idx, &added), CVG_OK);
        cr_expect(added);
        cr_expect_eq(idx, i);
    }
    for (uint32_t i = 0; i < N; i++) {
        cvg_replica_id id = same_hash(i);
        expect_found(&o, &id, i);
    }
    /* Truncating the middle of one long probe chain keeps the rest of it
     * reachable. */
    cvg__origins_truncate(&o, N / 3);
    for (uint32_t i = 0; i < N; i++) {
        cvg_replica_id id = same_hash(i);
        if (i < N / 3) {
            expect_found(&o, &id, i);
        } else {
            expect_absent(&o, &id);
        }
    }
    cvg__origins_destroy(&o);
}

Test(origins, truncate_forgets_the_tail)
{
    enum { N = 3000, KEEP = 1234 };
    cvg__origins o = {0};
    uint64_t rng = 77;
    cvg_replica_id ids[N];
    for (uint32_t i = 0; i < N; i++) {
        ids[i] = rid(&rng);
        uint32_t idx;
        bool added;
        cr_assert_eq(cvg__origins_index(&o, &ids[i], &idx, &added), CVG_OK);
    }
    cvg__origins_truncate(&o, N + 10); /* past the end: no change */
    cr_expect_eq(o.n, N);
    cvg__origins_truncate(&o, KEEP);
    cr_expect_eq(o.n, KEEP);
    for (uint32_t i = 0; i < N; i++) {
        if (i < KEEP) {
            expect_found(&o, &ids[i], i);
        } else {
            expect_absent(&o, &ids[i]);
        }
    }
    cr_expect_null(cvg__origins_id(&o, KEEP));
    /* A forgotten id comes back with the next free index. */
    uint32_t idx;
    bool added;
    cr_assert_eq(cvg__origins_index(&o, &ids[N - 1], &idx, &added), CVG_OK);
    cr_expect(added);
    cr_expect_eq(idx, KEEP);
    expect_absent(&o, &ids[KEEP]);
    /* Down to nothing and up again. */
    cvg__origins_truncate(&o, 0);
    cr_expect_eq(o.n, 0);
    expect_absent(&o, &ids[0]);
    cr_assert_eq(cvg__origins_index(&o, &ids[5], &idx, &added), CVG_OK);
    cr_expect_eq(idx, 0);
    expect_found(&o, &ids[5], 0);
    cvg__origins_destroy(&o);
}

Test(origins, failed_add_changes_nothing)
{
    cvg__origins o = {0};
    uint64_t rng = 3;
    cvg_replica_id ids[100];
    for (int i = 0; i < 100; i++) {
        ids[i] = rid(&rng);
    }
    for (uint32_t i = 0; i < 100; i++) {
        uint32_t idx;
        bool added;
        /* Fail the first allocation of each add: only growing allocates,
         * so the add either goes in unchanged or fails cleanly. */
        cvg__alloc_fail_after(1);
        int rc = cvg__origins_index(&o, &ids[i], &idx, &added);
        cvg__alloc_fail_after(0);
        if (rc == CVG_ENOMEM) {
            cr_expect_not(added);
            cr_expect_eq(o.n, i);
            expect_absent(&o, &ids[i]);
            for (uint32_t k = 0; k < i; k++) {
                expect_found(&o, &ids[k], k);
            }
            /* The second allocation (the hash slots) may fail too. */
            cvg__alloc_fail_after(2);
            rc = cvg__origins_index(&o, &ids[i], &idx, &added);
            cvg__alloc_fail_after(0);
            if (rc == CVG_ENOMEM) {
                cr_expect_eq(o.n, i);
                expect_absent(&o, &ids[i]);
                rc = cvg__origins_index(&o, &ids[i], &idx, &added);
            }
        }
        cr_assert_eq(rc, CVG_OK);
        cr_expect_eq(idx, i);
    }
    for (uint32_t k = 0; k < 100; k++) {
        expect_found(&o, &ids[k], k);
    }
    cvg__origins_destroy(&o);
}
