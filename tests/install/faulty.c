/* Built against an installed converge and its testing library: two
 * replicas write offline, sync over a link that loses and repeats
 * messages until a sync gets through, and read the same total. */
#include <converge.h>
#include <converge/testing.h>
#include <stdio.h>

static int
add(cvg_replica *r, int64_t n)
{
    cvg_key k = {"stock", "sku-1", "qty"};
    cvg_txn *t;
    int rc = cvg_txn_begin(r, 0, &t);
    if (rc == CVG_OK) {
        rc = cvg_counter_add(t, &k, n, NULL);
        rc = rc == CVG_OK ? cvg_txn_commit(t) : (cvg_txn_abort(t), rc);
    }
    return rc;
}

static int64_t
total(cvg_replica *r)
{
    cvg_key k = {"stock", "sku-1", "qty"};
    cvg_txn *t;
    int64_t v = -1;
    if (cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t) == CVG_OK) {
        if (cvg_counter_get(t, &k, &v) != CVG_OK) {
            v = -1;
        }
        cvg_txn_abort(t);
    }
    return v;
}

int
main(int argc, char **argv)
{
    char a_dir[4096], b_dir[4096];
    if (argc < 2) {
        return 2;
    }
    snprintf(a_dir, sizeof a_dir, "%s-a", argv[1]);
    snprintf(b_dir, sizeof b_dir, "%s-b", argv[1]);
    cvg_replica *a, *b;
    if (cvg_replica_open(a_dir, NULL, &a) != CVG_OK ||
        cvg_replica_open(b_dir, NULL, &b) != CVG_OK) {
        return 1;
    }
    int rc = add(a, 5);
    rc = rc == CVG_OK ? add(b, -2) : rc;
    cvg_link_options o;
    cvg_link_options_init(&o);
    o.seed = 7;
    o.drop_pct = 20;
    o.dup_pct = 20;
    cvg_link *l = NULL;
    if (rc == CVG_OK) {
        rc = cvg_link_new(&o, &l);
    }
    int tries = 0;
    while (rc == CVG_OK && tries++ < 100) {
        cvg_link_result res;
        int lrc = cvg_link_sync(l, a, b, 1000, &res);
        if (lrc == CVG_OK) {
            break;
        }
        rc = lrc == CVG_DONE ? CVG_OK : lrc; /* lost: try again */
    }
    cvg_link_free(l);
    int64_t ta = total(a), tb = total(b);
    cvg_replica_close(a);
    cvg_replica_close(b);
    printf("installed converge-testing: %lld and %lld after %d syncs\n",
           (long long)ta, (long long)tb, tries);
    return rc == CVG_OK && ta == 3 && tb == 3 ? 0 : 1;
}
