/*
 * State written behind the log (src/oplog/journal.c): what commits leave
 * in the journal and the overlay must read as if it were in the state
 * table, for every transaction's snapshot, across checkpoints, crashes
 * (no close), other processes and the full check. The bound that makes
 * a commit checkpoint is made small here (the store's ov_max_values), so
 * that checkpoints come every few commits.
 */
#include <criterion/criterion.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checks.h"
#include "raw_record.h"
#include "replica/replica_int.h"
#include "testutil.h"

/* Commits of at most this many keys new to the overlay go straight to the
 * state table (journal.c); 0 here by default, so the journal is used. */
static size_t direct_max = 0;
/* A checkpoint is spread over this many commits (journal.c); 3 here by
 * default, so that most checkpoints are spread. */
static size_t slices = 3;

#define OK(x)                                                            \
    do {                                                                 \
        int ok_rc_ = (x);                                                \
        cr_assert_eq(ok_rc_, CVG_OK, "%s: %s", #x, cvg_errname(ok_rc_)); \
    } while (0)
#define NKEYS 24

static cvg_replica *
open_at(const char *dir, size_t ov_max)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = CVG_RELAXED;
    o.map_size = 4 << 20; /* small: growing it is on the path too */
    cvg_replica *r = NULL;
    int rc = cvg_replica_open(dir, &o, &r);
    cr_assert_eq(rc, CVG_OK, "open %s: %s", dir, cvg_replica_errmsg(NULL));
    r->store.ov_max_values = ov_max;
    r->store.direct_max = direct_max;
    r->store.ckpt_slices = slices;
    return r;
}

static cvg_key
reg_key(int i)
{
    static char names[NKEYS][16];
    snprintf(names[i], sizeof names[i], "k%02d", i);
    cvg_key k = {"j", names[i], "v"};
    return k;
}

/* The oracle: each register's value, or -1 for none. */
typedef struct model {
    int64_t v[NKEYS];
} model;

static void
model_init(model *m)
{
    for (int i = 0; i < NKEYS; i++) {
        m->v[i] = -1;
    }
}

/* One write to key i: a value, or (val < 0) a delete of its record. */
static int
write_one(cvg_txn *t, int i, int64_t val, model *m)
{
    cvg_key k = reg_key(i);
    int rc;
    if (val >= 0) {
        cvg_value v = cvg_value_int(val);
        rc = cvg_register_set(t, &k, &v, NULL);
    } else {
        rc = cvg_record_delete(t, &k, NULL);
        if (rc == CVG_ENOTFOUND && m->v[i] < 0) {
            return CVG_OK; /* nothing to delete, as the model says */
        }
    }
    if (rc == CVG_OK) {
        m->v[i] = val;
    }
    return rc;
}

static void
expect_model(cvg_txn *t, const model *m, const char *ctx)
{
    for (int i = 0; i < NKEYS; i++) {
        cvg_key k = reg_key(i);
        cvg_value v;
        int rc = cvg_register_get(t, &k, &v);
        if (m->v[i] < 0) {
            cr_assert_eq(rc, CVG_ENOTFOUND, "%s: key %d: %s, want none", ctx, i,
                         cvg_errname(rc));
        } else {
            cr_assert_eq(rc, CVG_OK, "%s: key %d: %s", ctx, i, cvg_errname(rc));
            cr_assert_eq(v.as.integer, m->v[i], "%s: key %d: %lld, want %lld",
                         ctx, i, (long long)v.as.integer, (long long)m->v[i]);
        }
    }
}

static void
expect_replica(cvg_replica *r, const model *m, const char *ctx)
{
    cvg_txn *t;
    OK(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t));
    expect_model(t, m, ctx);
    cvg_txn_abort(t);
}

/* A commit of @p n random writes, applied to @p m if it commits. No
 * assertion: children of the tests call it too. */
static int
try_commit(cvg_replica *r, model *m, uint64_t *rng, int n)
{
    model next = *m;
    cvg_txn *t;
    int rc = cvg_txn_begin(r, 0, &t);
    for (int j = 0; rc == CVG_OK && j < n; j++) {
        int i = (int)cvg_test_below(rng, NKEYS);
        int64_t val = cvg_test_below(rng, 5) == 0
                          ? -1
                          : (int64_t)cvg_test_below(rng, 1000000);
        rc = write_one(t, i, val, &next);
    }
    if (rc != CVG_OK) {
        cvg_txn_abort(t);
        return rc;
    }
    rc = cvg_txn_commit(t);
    if (rc == CVG_OK) {
        *m = next;
    }
    return rc;
}

static void
random_commit(cvg_replica *r, model *m, uint64_t *rng, int n)
{
    OK(try_commit(r, m, rng, n));
}

/* For a child: whether @p r reads as @p m, without assertions. */
static bool
matches(cvg_replica *r, const model *m)
{
    cvg_txn *t;
    if (cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t) != CVG_OK) {
        return false;
    }
    bool same = true;
    for (int i = 0; same && i < NKEYS; i++) {
        cvg_key k = reg_key(i);
        cvg_value v;
        int rc = cvg_register_get(t, &k, &v);
        same = m->v[i] < 0 ? rc == CVG_ENOTFOUND
                           : rc == CVG_OK && v.as.integer == m->v[i];
    }
    cvg_txn_abort(t);
    return same;
}

static cvg_replica *
child_open(const char *dir, size_t ov_max)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = CVG_RELAXED;
    cvg_replica *r = NULL;
    if (cvg_replica_open(dir, &o, &r) != CVG_OK) {
        _exit(2);
    }
    r->store.ov_max_values = ov_max;
    r->store.direct_max = direct_max;
    r->store.ckpt_slices = slices;
    return r;
}

Test(journal, a_reader_keeps_its_snapshot_across_commits_and_checkpoints)
{
    const char *dir = cvg_test_dir("journal-snap");
    cvg_replica *r = open_at(dir, 6);
    model m;
    model_init(&m);
    uint64_t rng = cvg_test_seed(11);
    random_commit(r, &m, &rng, 10);

    enum { READERS = 5 };
    cvg_txn *rd[READERS];
    model seen[READERS];
    for (int k = 0; k < READERS; k++) {
        OK(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &rd[k]));
        seen[k] = m;
        /* Commits of 3 keys: journal records, and a checkpoint when the
         * overlay passes 6 keys. */
        for (int c = 0; c < 4; c++) {
            random_commit(r, &m, &rng, 3);
        }
        for (int j = 0; j <= k; j++) {
            char ctx[64];
            snprintf(ctx, sizeof ctx, "reader %d after %d rounds", j, k);
            expect_model(rd[j], &seen[j], ctx);
        }
    }
    cr_expect_gt(r->store.ckpt, 0, "checkpoints were made");
    for (int k = 0; k < READERS; k++) {
        cvg_txn_abort(rd[k]);
    }
    expect_replica(r, &m, "the newest");
    cvg_replica_close(r);
    r = open_at(dir, 6);
    expect_replica(r, &m, "reopened");
    cvg_replica_close(r);
}

/* A child that writes @p commits random commits from @p seed and ends
 * without closing the replica, so the journal stays as it is. */
static void
crash_child(const char *dir, size_t ov_max, uint64_t seed, int commits)
{
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        cvg_replica *r = child_open(dir, ov_max);
        model m;
        model_init(&m);
        uint64_t rng = seed;
        for (int c = 0; c < commits; c++) {
            if (try_commit(r, &m, &rng, 1 + (int)cvg_test_below(&rng, 8)) !=
                CVG_OK) {
                _exit(3);
            }
        }
        _exit(0); /* no close: no checkpoint at the end */
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child failed (%d)",
              WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

Test(journal, commits_left_in_the_journal_read_back_after_a_crash)
{
    /* No checkpoint at all, then one every few commits, then with small
     * commits going to the state table directly. */
    size_t bounds[] = {100000, 5, 5};
    for (int b = 0; b < 3; b++) {
        direct_max = b == 2 ? 4 : 0;
        char name[32];
        snprintf(name, sizeof name, "journal-crash-%d", b);
        const char *d = cvg_test_dir(name);
        char dir[512];
        snprintf(dir, sizeof dir, "%s", d);
        uint64_t seed = cvg_test_seed(21 + (uint64_t)b);
        crash_child(dir, bounds[b], seed, 60);
        /* The same writes again, into the oracle alone. */
        model m;
        model_init(&m);
        uint64_t rng = seed;
        for (int c = 0; c < 60; c++) {
            int n = 1 + (int)cvg_test_below(&rng, 8);
            for (int j = 0; j < n; j++) {
                int i = (int)cvg_test_below(&rng, NKEYS);
                int64_t val = cvg_test_below(&rng, 5) == 0
                                  ? -1
                                  : (int64_t)cvg_test_below(&rng, 1000000);
                m.v[i] = val;
            }
        }
        cvg_check_report chk;
        int rc = cvg_replica_check(dir, &chk);
        cr_expect_eq(rc, CVG_OK, "check with a journal: %s", chk.problem);
        cvg_replica *r = open_at(dir, bounds[b]);
        if (b == 0) {
            cr_expect_gt(r->store.ov.n, 0, "the journal was loaded");
        }
        expect_replica(r, &m, name);
        /* It writes on. */
        random_commit(r, &m, &rng, 5);
        expect_replica(r, &m, "after more writes");
        cvg_replica_close(r);
        r = open_at(dir, bounds[b]);
        cr_expect_eq(r->store.ov.n, 0, "the close made a checkpoint");
        expect_replica(r, &m, "after a close");
        cvg_replica_close(r);
    }
}

/* An open that refuses the replica (here: of a newer format) leaves its
 * journal as it is: the close of that handle writes no checkpoint. */
Test(journal, a_refused_open_leaves_the_journal_alone)
{
    const char *d = cvg_test_dir("journal-refused");
    char dir[512];
    snprintf(dir, sizeof dir, "%s", d);
    crash_child(dir, 100000, cvg_test_seed(41), 20);
    uint8_t newer[8], now[8];
    cvg__put_be64(newer, CVG_FORMAT_VERSION + 1);
    cvg__put_be64(now, CVG_FORMAT_VERSION);
    cvg_test_raw_put(dir, "meta", "format", 6, newer, 8, false);
    cvg_replica *r = NULL;
    cr_assert_eq(cvg_replica_open(dir, NULL, &r), CVG_EVERSION);
    cvg_test_raw_put(dir, "meta", "format", 6, now, 8, false);
    r = open_at(dir, 100000);
    cr_expect_gt(r->store.ov.n, 0, "the journal is still there");
    cvg_replica_close(r);
}

/* Two processes on one directory take turns: each turn one commit of
 * random writes, with the oracle passed along on pipes; each checks the
 * other's writes first. */
Test(journal, two_processes_taking_turns_see_each_others_writes)
{
    const char *dir = cvg_test_dir("journal-two");
    cvg_replica *made = open_at(dir, 4);
    cvg_replica_close(made);
    int to_child[2], to_parent[2];
    cr_assert_eq(pipe(to_child), 0);
    cr_assert_eq(pipe(to_parent), 0);
    enum { TURNS = 40 };
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    model m;
    model_init(&m);
    if (pid == 0) {
        /* The child: odd turns. It asserts nothing; a mismatch is its
         * exit code, and its end closes the pipe the parent waits on. */
        close(to_child[1]);
        close(to_parent[0]);
        cvg_replica *r = child_open(dir, 4);
        /* It does not journal (journal_state off), but must journal the
         * keys the parent's journal holds. */
        r->store.direct_max = SIZE_MAX;
        uint64_t rng = cvg_test_seed(31);
        for (int turn = 1; turn < TURNS; turn += 2) {
            if (cvg_test_read_full(to_child[0], &m, sizeof m, 30000) != 1) {
                _exit(4);
            }
            if (!matches(r, &m)) {
                _exit(5);
            }
            if (try_commit(r, &m, &rng, 1 + (int)cvg_test_below(&rng, 6)) !=
                    CVG_OK ||
                write(to_parent[1], &m, sizeof m) != (ssize_t)sizeof m) {
                _exit(6);
            }
        }
        cvg_replica_close(r);
        _exit(0);
    }
    close(to_child[0]);
    close(to_parent[1]);
    int in = to_parent[0], out = to_child[1];
    cvg_replica *r = open_at(dir, 4);
    uint64_t rng = cvg_test_seed(32);
    for (int turn = 0; turn < TURNS; turn += 2) {
        if (turn > 0) {
            cr_assert_eq(cvg_test_read_full(in, &m, sizeof m, 30000), 1,
                         "turn %d: no word from the child", turn);
            char ctx[64];
            snprintf(ctx, sizeof ctx, "turn %d", turn);
            expect_replica(r, &m, ctx);
        }
        random_commit(r, &m, &rng, 1 + (int)cvg_test_below(&rng, 6));
        cr_assert_eq(write(out, &m, sizeof m), (ssize_t)sizeof m);
    }
    /* The child's last turn, then its exit. */
    cr_assert_eq(cvg_test_read_full(in, &m, sizeof m, 30000), 1,
                 "no word from the child after its last turn");
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "the child failed (exit %d: 5 is a mismatch)",
              WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    expect_replica(r, &m, "at the end");
    cvg_replica_close(r);
    r = open_at(dir, 4);
    expect_replica(r, &m, "reopened");
    cvg_replica_close(r);
}

/* One commit of register sets to "j/r<i>/v" for the i in [from, to) that
 * @p pick takes. */
static void
commit_range(cvg_replica *r, int from, int to, bool (*pick)(int))
{
    cvg_txn *t;
    OK(cvg_txn_begin(r, 0, &t));
    for (int i = from; i < to; i++) {
        if (!pick(i)) {
            continue;
        }
        char key[16];
        snprintf(key, sizeof key, "r%04d", i);
        cvg_key k = {"j", key, "v"};
        cvg_value v = cvg_value_int(i);
        OK(cvg_register_set(t, &k, &v, NULL));
    }
    OK(cvg_txn_commit(t));
}

static bool
every_key(int i)
{
    (void)i;
    return true;
}

static bool
every_tenth(int i)
{
    return i % 10 == 0;
}

static bool
but_every_tenth(int i)
{
    return i % 10 != 0;
}

/* With the option, a large commit of keys spread over the state table
 * journals; one whose keys lie together there (new keys in order, keys
 * next to each other) writes the table, as do small commits and every
 * commit without the option. */
Test(journal, the_option_decides_whether_large_commits_journal)
{
    for (int on = 0; on < 2; on++) {
        char name[32];
        snprintf(name, sizeof name, "journal-option-%d", on);
        cvg_replica_options o;
        cvg_replica_options_init(&o);
        cr_expect(!o.journal_state, "off by default");
        o.durability = CVG_RELAXED;
        o.journal_state = on;
        cvg_replica *r;
        OK(cvg_replica_open(cvg_test_dir(name), &o, &r));
        commit_range(r, 0, 2000, every_key);
        cr_expect_eq(r->store.ov.n - r->store.ov.empty, 0,
                     "2,000 new keys in order: the table");
        commit_range(r, 0, 2000, every_tenth);
        size_t held = r->store.ov.n - r->store.ov.empty;
        if (on) {
            cr_expect_eq(held, 200, "every tenth: %zu keys waiting", held);
        } else {
            cr_expect_eq(held, 0, "written to the state table");
        }
        size_t before = r->store.ov.n - r->store.ov.empty;
        commit_range(r, 1000, 1100, but_every_tenth);
        cr_expect_eq(r->store.ov.n - r->store.ov.empty, before,
                     "90 keys next to each other: the table");
        /* Small commits of keys the journal lacks go to the table. */
        cvg_txn *t;
        OK(cvg_txn_begin(r, 0, &t));
        cvg_key k = {"j", "small", "v"};
        cvg_value v = cvg_value_int(1);
        OK(cvg_register_set(t, &k, &v, NULL));
        OK(cvg_txn_commit(t));
        cr_expect_eq(r->store.ov.n - r->store.ov.empty, before);
        cvg_txn *rd;
        OK(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &rd));
        for (int i = 0; i < 2000; i++) {
            char key[16];
            snprintf(key, sizeof key, "r%04d", i);
            cvg_key rk = {"j", key, "v"};
            OK(cvg_register_get(rd, &rk, &v));
            cr_assert_eq(v.as.integer, i);
        }
        cvg_txn_abort(rd);
        cvg_replica_close(r);
    }
}

/* Random schedules: commits and aborts, readers held across them, the
 * bound changed, closes and reopens; every reader must see the oracle of
 * its begin. */
Test(journal, random_schedules_match_the_oracle)
{
    for (uint64_t seed = 1; seed <= 6; seed++) {
        char name[32];
        snprintf(name, sizeof name, "journal-random-%d", (int)seed);
        direct_max = seed % 2 ? 4 : 0;
        slices = 1 + seed % 4;
        const char *dir = cvg_test_dir(name);
        uint64_t rng = cvg_test_seed(seed * 101);
        size_t bound = 1 + cvg_test_below(&rng, 12);
        cvg_replica *r = open_at(dir, bound);
        model m;
        model_init(&m);
        enum { MAXR = 4 };
        cvg_txn *rd[MAXR] = {0};
        model seen[MAXR];
        for (int step = 0; step < 300; step++) {
            uint64_t x = cvg_test_below(&rng, 100);
            if (x < 55) {
                random_commit(r, &m, &rng, 1 + (int)cvg_test_below(&rng, 10));
            } else if (x < 65) {
                /* Written, then aborted: nothing of it stays. A record
                 * delete reads the record from the store, which first
                 * writes what the transaction holds into the overlay. */
                model scratch = m;
                cvg_txn *t;
                OK(cvg_txn_begin(r, 0, &t));
                for (int j = 0; j < 4; j++) {
                    int i = (int)cvg_test_below(&rng, NKEYS);
                    OK(write_one(t, i, (int64_t)cvg_test_below(&rng, 9) - 3,
                                 &scratch));
                }
                expect_model(t, &scratch, "inside the aborted writer");
                cvg_txn_abort(t);
            } else if (x < 80) {
                int k = (int)cvg_test_below(&rng, MAXR);
                if (rd[k] == NULL) {
                    OK(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &rd[k]));
                    seen[k] = m;
                } else {
                    char ctx[64];
                    snprintf(ctx, sizeof ctx, "seed %d step %d reader %d",
                             (int)seed, step, k);
                    expect_model(rd[k], &seen[k], ctx);
                    cvg_txn_abort(rd[k]);
                    rd[k] = NULL;
                }
            } else if (x < 85) {
                r->store.ov_max_values = 1 + cvg_test_below(&rng, 12);
                r->store.direct_max = cvg_test_below(&rng, 2) ? 4 : 0;
                r->store.ckpt_slices = 1 + cvg_test_below(&rng, 4);
            } else if (x < 90) {
                for (int k = 0; k < MAXR; k++) {
                    cvg_txn_abort(rd[k]);
                    rd[k] = NULL;
                }
                cvg_replica_close(r);
                r = open_at(dir, 1 + cvg_test_below(&rng, 12));
            }
            char ctx[64];
            snprintf(ctx, sizeof ctx, "seed %d step %d", (int)seed, step);
            expect_replica(r, &m, ctx);
        }
        for (int k = 0; k < MAXR; k++) {
            cvg_txn_abort(rd[k]);
        }
        cvg_check_report chk;
        cvg_replica_close(r);
        int rc = cvg_replica_check(dir, &chk);
        cr_expect_eq(rc, CVG_OK, "%s", chk.problem);
    }
    slices = 3;
}

/* The id of the journal's first record, 0 if it is empty. */
static uint64_t
first_journal_id(cvg_replica *r)
{
    MDB_txn *t;
    cr_assert_eq(mdb_txn_begin(r->store.env, NULL, MDB_RDONLY, &t), 0);
    MDB_cursor *c;
    cr_assert_eq(mdb_cursor_open(t, r->store.journal, &c), 0);
    MDB_val k, v;
    uint64_t id = 0;
    if (mdb_cursor_get(c, &k, &v, MDB_FIRST) == 0) {
        cr_assert_geq(k.mv_size, 8);
        const uint8_t *p = k.mv_data;
        for (int i = 0; i < 8; i++) {
            id = id << 8 | p[i];
        }
    }
    mdb_cursor_close(c);
    mdb_txn_abort(t);
    return id;
}

/* One commit of keys from..from+n-1, each set to val plus its number. */
static void
commit_keys(cvg_replica *r, model *m, int from, int n, int64_t val)
{
    cvg_txn *t;
    OK(cvg_txn_begin(r, 0, &t));
    for (int i = from; i < from + n; i++) {
        OK(write_one(t, i, val + i, m));
    }
    OK(cvg_txn_commit(t));
}

/* A checkpoint spread over 4 commits: the first, past the bound, starts
 * it; the journal and the checkpoint stay as they were until the fourth,
 * which makes the first's id the checkpoint and deletes the records up to
 * it, not the ones after. Every commit, a reader held from the middle of
 * it and a child that opens the replica mid-way read the oracle. */
Test(journal, a_checkpoint_spread_over_commits_ends_at_its_first_commit)
{
    const char *dir = cvg_test_dir("journal-spread");
    direct_max = 0;
    slices = 4;
    cvg_replica *r = open_at(dir, 30);
    model m;
    model_init(&m);
    commit_keys(r, &m, 0, NKEYS, 0);
    cr_assert_eq(r->store.cycle_start, 0, "24 values: under the bound");
    uint64_t first = first_journal_id(r);
    cr_assert_gt(first, 0);

    commit_keys(r, &m, 0, 8, 100); /* 32 values: the first slice */
    uint64_t start = r->store.loaded;
    cr_assert_eq(r->store.cycle_start, start, "a spread checkpoint began");
    cvg_txn *rd;
    OK(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &rd));
    model seen = m;
    for (int c = 2; c <= 3; c++) {
        commit_keys(r, &m, 3 * c, 3, 100 * c);
        cr_assert_eq(r->store.cycle_start, start, "commit %d: still under way",
                     c);
        cr_assert_eq(r->store.ckpt, 0, "commit %d: no checkpoint yet", c);
        cr_assert_eq(first_journal_id(r), first, "commit %d: journal whole", c);
        expect_replica(r, &m, "mid-way");
        expect_model(rd, &seen, "the reader from the first slice");
    }
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        /* Not the process that holds the replica open: it only inherited
         * the parent's list of open directories. */
        struct stat sb;
        if (stat(dir, &sb) != 0) {
            _exit(3);
        }
        cvg__store_release(sb.st_dev, sb.st_ino);
        cvg_replica *c = child_open(dir, 30);
        _exit(matches(c, &m) ? 0 : 1);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "a child opening mid-way reads the oracle");

    commit_keys(r, &m, 20, 3, 400); /* the fourth and last slice */
    cr_assert_eq(r->store.cycle_start, 0, "the checkpoint is made");
    cr_assert_eq(r->store.ckpt, start, "at the first slice's id");
    cr_assert_gt(first_journal_id(r), start, "records up to it are gone");
    expect_replica(r, &m, "after the last slice");
    expect_model(rd, &seen, "the reader from the first slice, after");
    cvg_txn_abort(rd);
    cvg_replica_close(r);
    cvg_check_report chk;
    int rc = cvg_replica_check(dir, &chk);
    cr_expect_eq(rc, CVG_OK, "%s", chk.problem);
    r = open_at(dir, 30);
    expect_replica(r, &m, "reopened");
    cvg_replica_close(r);
    slices = 3;
}

/* journal_checkpoint_commits: 1 checkpoints in the commit that passes the
 * bound; 2 spreads the checkpoint over that commit and the next. */
Test(journal, the_option_sets_the_commits_a_checkpoint_takes)
{
    for (uint32_t n = 1; n <= 2; n++) {
        char name[32];
        snprintf(name, sizeof name, "journal-option-%u", n);
        const char *dir = cvg_test_dir(name);
        cvg_replica_options o;
        cvg_replica_options_init(&o);
        o.durability = CVG_RELAXED;
        o.journal_state = true;
        o.journal_checkpoint_commits = n;
        cvg_replica *r = NULL;
        OK(cvg_replica_open(dir, &o, &r));
        r->store.ov_max_values = 30;
        r->store.direct_max = 0;
        model m;
        model_init(&m);
        commit_keys(r, &m, 0, NKEYS, 0);
        commit_keys(r, &m, 0, 8, 100); /* past the bound */
        uint64_t id = r->store.loaded;
        if (n == 1) {
            cr_expect_eq(r->store.ckpt, id, "one commit: checkpointed");
            cr_expect_eq(first_journal_id(r), 0, "and the journal empty");
        } else {
            cr_expect_eq(r->store.ckpt, 0, "two: not yet");
            cr_expect_eq(r->store.cycle_start, id);
            commit_keys(r, &m, 8, 4, 200);
            cr_expect_eq(r->store.ckpt, id, "two: at the second");
            cr_expect_gt(first_journal_id(r), id);
        }
        expect_replica(r, &m, name);
        cvg_replica_close(r);
    }
}
