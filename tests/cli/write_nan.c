/* Writes a NaN and a -infinity into registers of the replica in argv[1],
 * which the command line cannot write (its VALUE parser takes only finite
 * JSON numbers), so that test_cli.sh can check how `get --json` shows
 * them. */
#include <converge.h>
#include <math.h>

int
main(int argc, char **argv)
{
    cvg_replica *r;
    cvg_txn *t;
    cvg_key k = {"v", "k", "nan"};
    cvg_value v = cvg_value_double(NAN);
    if (argc < 2 || cvg_replica_open(argv[1], NULL, &r) != CVG_OK) {
        return 1;
    }
    int rc = cvg_txn_begin(r, 0, &t);
    if (rc == CVG_OK) {
        rc = cvg_register_set(t, &k, &v, NULL);
        k.field = "inf";
        v = cvg_value_double(-INFINITY);
        rc = rc == CVG_OK ? cvg_register_set(t, &k, &v, NULL) : rc;
        rc = rc == CVG_OK ? cvg_txn_commit(t) : (cvg_txn_abort(t), rc);
    }
    cvg_replica_close(r);
    return rc == CVG_OK ? 0 : 1;
}
