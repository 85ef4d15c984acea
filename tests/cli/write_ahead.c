/* Adds 1 to a counter of the replica in argv[1] with a clock ten minutes
 * ahead, as a till whose clock is wrong would, so that test_cli.sh can
 * check how `queue` shows an op the peer refused (CVG_ECLOCK). By default a
 * peer takes such an op, so the refusal comes from the second form,
 * `write_ahead --sync-strict A B`: what `converge sync A B` does, with B
 * opened with refuse_clock_ahead. Exit 0 on success, 1 on failure. */
#define _POSIX_C_SOURCE 200809L
#include <converge.h>
#include <string.h>
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

static int
sync_strict(const char *a_dir, const char *b_dir)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.no_create = true;
    cvg_replica *a = NULL, *b = NULL;
    int rc = cvg_replica_open(a_dir, &o, &a);
    o.refuse_clock_ahead = true;
    if (rc == CVG_OK) {
        rc = cvg_replica_open(b_dir, &o, &b);
    }
    if (rc == CVG_OK) {
        rc = cvg_sync_local(a, b, NULL);
    }
    cvg_replica_close(a);
    cvg_replica_close(b);
    return rc == CVG_OK ? 0 : 1;
}

int
main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--sync-strict") == 0) {
        return sync_strict(argv[2], argv[3]);
    }
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
