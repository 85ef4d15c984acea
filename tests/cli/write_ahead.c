/* Adds 1 to a counter of the replica in argv[1] with a clock ten minutes
 * ahead, as a till whose clock is wrong would, so that test_cli.sh can
 * check how `queue` shows an op the peer refused (CVG_ECLOCK). */
#define _POSIX_C_SOURCE 200809L
#include <converge.h>
#include <time.h>

static uint64_t
ahead(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 +
           10 * 60 * 1000;
}

int
main(int argc, char **argv)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.clock = ahead;
    cvg_replica *r;
    cvg_txn *t;
    cvg_key k = {"stock", "sku-1", "d"};
    if (argc < 2 || cvg_replica_open(argv[1], &o, &r) != CVG_OK) {
        return 1;
    }
    int rc = cvg_txn_begin(r, 0, &t);
    if (rc == CVG_OK) {
        rc = cvg_counter_add(t, &k, 1, NULL);
        rc = rc == CVG_OK ? cvg_txn_commit(t) : (cvg_txn_abort(t), rc);
    }
    cvg_replica_close(r);
    return rc == CVG_OK ? 0 : 1;
}
