/*
 * A read transaction's version vector is its snapshot's: readers share the
 * replica's vector instead of copying it, and get a copy of their own only
 * when it is about to change (a commit of this handle, or a refresh after
 * another process committed). Checked against an oracle that counts ops:
 * random schedules of readers begun and ended, local commits and aborts,
 * and syncs that bring a peer's ops; then a writer in another process.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "converge.h"

#include "replica/replica_int.h"
#include "sync/wire.h"
#include "testutil.h"

#define OK(call)                                                      \
    do {                                                              \
        int rc_ = (call);                                             \
        cr_assert_eq(rc_, CVG_OK, "%s: %s", #call, cvg_errname(rc_)); \
    } while (0)

static const cvg_key K = {"c", "k", "n"};

static void
add_one(cvg_replica *r, bool commit)
{
    cvg_txn *t;
    OK(cvg_txn_begin(r, 0, &t));
    OK(cvg_counter_add(t, &K, 1, NULL));
    if (commit) {
        OK(cvg_txn_commit(t));
    } else {
        cvg_txn_abort(t);
    }
}

/* @p t's vector is {a: na, b: nb} (no entry for a count of 0), and the
 * digest it reports is that vector's. */
static void
expect_vector(cvg_txn *t, const cvg_replica_id *a, uint64_t na,
              const cvg_replica_id *b, uint64_t nb, const char *what)
{
    cvg_dot out[4];
    size_t n = 0;
    OK(cvg_txn_version_vector(t, out, 4, &n));
    cr_assert_eq(n, (size_t)(na > 0) + (nb > 0), "%s: %zu entries", what, n);
    for (size_t i = 0; i < n; i++) {
        bool is_a = memcmp(&out[i].origin, a, sizeof *a) == 0;
        bool is_b = memcmp(&out[i].origin, b, sizeof *b) == 0;
        cr_assert(is_a || is_b, "%s: an origin of nobody", what);
        cr_assert_eq(out[i].seq, is_a ? na : nb, "%s: seq %llu", what,
                     (unsigned long long)out[i].seq);
    }
    uint8_t kept[CVG__VV_DIGEST_BYTES], fresh[CVG__VV_DIGEST_BYTES];
    cvg__txn_vv_sum(t, kept);
    cvg__vv_digest(out, n, fresh);
    cr_assert_eq(memcmp(kept, fresh, sizeof kept), 0, "%s: digest", what);
}

#define READERS 6

Test(reader_vv, readers_keep_their_snapshot_through_commits_and_syncs)
{
    uint64_t seed = cvg_test_seed(0x5EAD);
    for (uint64_t s = 0; s < 20; s++) {
        uint64_t rng = seed + s;
        cvg_replica *a, *b;
        OK(cvg_replica_open(cvg_test_dir("reader-vv-a"), NULL, &a));
        OK(cvg_replica_open(cvg_test_dir("reader-vv-b"), NULL, &b));
        cvg_replica_id ia, ib;
        cvg_replica_id_get(a, &ia);
        cvg_replica_id_get(b, &ib);
        uint64_t na = 0, nb = 0, nb_in_a = 0; /* the oracle */
        cvg_txn *rd[READERS] = {NULL};
        uint64_t rd_a[READERS], rd_b[READERS];
        char what[96];
        for (int step = 0; step < 60; step++) {
            int slot = (int)cvg_test_below(&rng, READERS);
            switch (cvg_test_below(&rng, 6)) {
            case 0: /* a reader begins, or ends */
                if (rd[slot] == NULL) {
                    OK(cvg_txn_begin(a, CVG_TXN_READ_ONLY, &rd[slot]));
                    rd_a[slot] = na;
                    rd_b[slot] = nb_in_a;
                } else {
                    cvg_txn_abort(rd[slot]);
                    rd[slot] = NULL;
                }
                break;
            case 1:
            case 2: /* a commits */
                add_one(a, true);
                na++;
                break;
            case 3: /* a write that is aborted changes nothing */
                add_one(a, false);
                break;
            case 4: /* b writes */
                add_one(b, true);
                nb++;
                break;
            case 5: /* b's ops reach a (a commit there), a's reach b */
                OK(cvg_sync_local(a, b, NULL));
                nb_in_a = nb;
                break;
            }
            for (int i = 0; i < READERS; i++) {
                if (rd[i] != NULL) {
                    snprintf(what, sizeof what,
                             "reader %d at step %d; replay with "
                             "CVG_TEST_SEED=%llu",
                             i, step, (unsigned long long)(seed + s));
                    expect_vector(rd[i], &ia, rd_a[i], &ib, rd_b[i], what);
                }
            }
            cvg_txn *now;
            OK(cvg_txn_begin(a, CVG_TXN_READ_ONLY, &now));
            expect_vector(now, &ia, na, &ib, nb_in_a, "a new reader");
            cvg_txn_abort(now);
        }
        for (int i = 0; i < READERS; i++) {
            cvg_txn_abort(rd[i]);
        }
        cvg_replica_close(a);
        cvg_replica_close(b);
    }
}

/* Another process commits while a reader is open here: the next reader
 * refreshes the vector from disk, and the open one keeps its own. */
Test(reader_vv, a_refresh_after_another_process_leaves_open_readers_alone)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", cvg_test_dir("reader-vv-proc"));
    int go[2], done[2];
    cr_assert_eq(pipe(go), 0);
    cr_assert_eq(pipe(done), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        /* The other process: opens once told to, commits two ops. */
        char c;
        int rc = read(go[0], &c, 1) == 1 ? CVG_OK : CVG_EIO;
        cvg_replica *r = NULL;
        if (rc == CVG_OK) {
            rc = cvg_replica_open(dir, NULL, &r);
        }
        for (int i = 0; rc == CVG_OK && i < 2; i++) {
            cvg_txn *t;
            rc = cvg_txn_begin(r, 0, &t);
            if (rc == CVG_OK) {
                rc = cvg_counter_add(t, &K, 1, NULL);
                rc = rc == CVG_OK ? cvg_txn_commit(t) : rc;
            }
        }
        cvg_replica_close(r);
        c = rc == CVG_OK ? 'D' : 'F';
        _exit(write(done[1], &c, 1) == 1 && rc == CVG_OK ? 0 : 1);
    }
    cvg_replica *r;
    OK(cvg_replica_open(dir, NULL, &r));
    cvg_replica_id id;
    cvg_replica_id_get(r, &id);
    add_one(r, true);
    cvg_txn *old;
    OK(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &old));
    expect_vector(old, &id, 1, &id, 0, "before");
    char c = 'G';
    cr_assert_eq(write(go[1], &c, 1), 1);
    cr_assert_eq(read(done[0], &c, 1), 1);
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0 && c == 'D',
              "the other process failed");
    cvg_txn *fresh;
    OK(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &fresh));
    expect_vector(fresh, &id, 3, &id, 0, "the new reader");
    expect_vector(old, &id, 1, &id, 0, "the open reader");
    cvg_txn_abort(old);
    cvg_txn_abort(fresh);
    add_one(r, true);
    OK(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &fresh));
    expect_vector(fresh, &id, 4, &id, 0, "after a commit here");
    cvg_txn_abort(fresh);
    cvg_replica_close(r);
}
