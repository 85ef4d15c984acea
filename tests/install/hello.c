/* Built against an installed converge: open a replica, count, read back. */
#include <converge.h>
#include <stdio.h>

int
main(int argc, char **argv)
{
    if (argc < 2 || cvg_version_number() != CVG_VERSION_NUMBER) {
        return 2;
    }
    cvg_replica *r;
    cvg_txn *t;
    cvg_key k = {"stock", "sku-1", "qty"};
    int64_t v = 0;
    if (cvg_replica_open(argv[1], NULL, &r) != CVG_OK) {
        return 1;
    }
    int rc = cvg_txn_begin(r, 0, &t);
    if (rc == CVG_OK) {
        rc = cvg_counter_add(t, &k, 3, NULL);
        rc = rc == CVG_OK ? cvg_txn_commit(t) : (cvg_txn_abort(t), rc);
    }
    if (rc == CVG_OK && (rc = cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t)) == 0) {
        rc = cvg_counter_get(t, &k, &v);
        cvg_txn_abort(t);
    }
    cvg_replica_close(r);
    printf("installed converge %s: qty = %lld\n", cvg_version_string(),
           (long long)v);
    return rc == CVG_OK && v == 3 ? 0 : 1;
}
