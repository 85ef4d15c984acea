/*
 * Inventory: the smallest useful converge program.
 *
 * Opens (or creates) a replica, changes two stock counters in one write
 * transaction, then reads them back in a read transaction. Every call's
 * return code is checked: the library never prints or aborts, so reporting
 * is the caller's job.
 *
 *   example_inventory [DIR]      (default ./inventory-replica)
 */
#include <inttypes.h>
#include <stdio.h>

#include "converge.h"

/* Print a failed call's code, its meaning and, when there is a replica
 * handle, the detail the library kept for it. Returns 1 for main(). */
static int
fail(const char *call, int rc, const cvg_replica *r)
{
    fprintf(stderr, "inventory: %s: %s: %s\n", call, cvg_errname(rc),
            cvg_strerror(rc));
    if (r != NULL) {
        fprintf(stderr, "inventory: detail: %s\n", cvg_replica_errmsg(r));
    }
    return 1;
}

/* Both changes in one transaction: a reader sees both or neither, and a
 * crash cannot keep one without the other. */
static int
update_stock(cvg_replica *r, const cvg_key *sku1, const cvg_key *sku2)
{
    cvg_txn *txn;
    int rc = cvg_txn_begin(r, 0, &txn); /* flags 0: a write transaction */
    if (rc != CVG_OK) {
        return fail("cvg_txn_begin", rc, r);
    }
    rc = cvg_counter_add(txn, sku1, -3, NULL); /* three sold */
    if (rc != CVG_OK) {
        cvg_txn_abort(txn); /* a failed write leaves the txn usable */
        return fail("cvg_counter_add sku-1", rc, r);
    }
    rc = cvg_counter_add(txn, sku2, 10, NULL); /* ten delivered */
    if (rc != CVG_OK) {
        cvg_txn_abort(txn);
        return fail("cvg_counter_add sku-2", rc, r);
    }
    /* Durable by default: when commit returns, the ops are on disk. The
     * handle is freed whether the commit succeeds or not. */
    rc = cvg_txn_commit(txn);
    if (rc != CVG_OK) {
        return fail("cvg_txn_commit", rc, r);
    }
    return 0;
}

static int
print_stock(cvg_replica *r, const cvg_key *sku1, const cvg_key *sku2)
{
    cvg_txn *txn;
    int rc = cvg_txn_begin(r, CVG_TXN_READ_ONLY, &txn);
    if (rc != CVG_OK) {
        return fail("cvg_txn_begin", rc, r);
    }
    /* One snapshot: both values come from the same committed state. */
    int64_t q1, q2;
    rc = cvg_counter_get(txn, sku1, &q1);
    if (rc == CVG_OK) {
        rc = cvg_counter_get(txn, sku2, &q2);
    }
    cvg_txn_abort(txn); /* ending a read transaction is an abort */
    if (rc != CVG_OK) {
        return fail("cvg_counter_get", rc, r);
    }
    printf("sku-1 qty: %" PRId64 "\nsku-2 qty: %" PRId64 "\n", q1, q2);
    return 0;
}

int
main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "./inventory-replica";

    cvg_replica *r;
    int rc = cvg_replica_open(dir, NULL, &r); /* NULL: default options */
    if (rc != CVG_OK) {
        /* No handle on failure, so no detail message either. */
        fprintf(stderr, "inventory: cannot open %s\n", dir);
        return fail("cvg_replica_open", rc, NULL);
    }

    /* Counters start at 0, so a first run prints -3 and 10; each run adds
     * the same deltas again. */
    const cvg_key sku1 = {"stock", "sku-1", "qty"};
    const cvg_key sku2 = {"stock", "sku-2", "qty"};
    int status = update_stock(r, &sku1, &sku2);
    if (status == 0) {
        status = print_stock(r, &sku1, &sku2);
    }
    cvg_replica_close(r);
    return status;
}
