/*
 * Small commits extend the log's last block (src/replica/txn_log.c): the
 * log must read back as the ops that were committed, in order, whatever
 * came between two commits: aborts (after the block was taken up), a
 * reopen (the handle forgets the block), pulls from a peer (whose ops land
 * between ours), another process appending to the same log, group
 * commits, and peers pulling from any point of an extended block.
 *
 * The oracle is the list of ops each origin committed; the log of each
 * replica, split by origin, must be a prefix of that list (all of it for
 * the replica's own origin), every lsn from 1 on, with the dots index and
 * the full check in agreement (cvg_replica_check).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "converge.h"

#include "digest.h"
#include "oplog/oplog_int.h"
#include "testutil.h"

#define OK(x)                                                            \
    do {                                                                 \
        int ok_rc_ = (x);                                                \
        cr_assert_eq(ok_rc_, CVG_OK, "%s: %s", #x, cvg_errname(ok_rc_)); \
    } while (0)

/* One op as the oracle keeps it: enough to tell it from any other. */
typedef struct op_rec {
    cvg_op_kind kind;
    int key;       /* "k<key>" in collection "t" */
    int64_t value; /* a counter's delta, a register's or an element's int */
} op_rec;

typedef struct oracle {
    op_rec *ops;
    size_t n, cap;
} oracle;

static void
oracle_add(oracle *o, op_rec r)
{
    if (o->n == o->cap) {
        o->cap = o->cap ? 2 * o->cap : 256;
        o->ops = realloc(o->ops, o->cap * sizeof *o->ops);
        cr_assert_not_null(o->ops);
    }
    o->ops[o->n++] = r;
}

static cvg_key
key_of(int k)
{
    static char names[8][8];
    snprintf(names[k], sizeof names[k], "k%d", k);
    cvg_key key = {"t", names[k], "f"};
    return key;
}

/* Field "f" of record "k<k>" has one type per key: keys 0-2 counters,
 * 3-5 registers, 6-7 sets. */
static op_rec
random_op(uint64_t *rng)
{
    op_rec r;
    r.key = (int)cvg_test_below(rng, 8);
    /* Deltas of 1 most of the time: runs of repeats are the case that
     * packs the most ops in the fewest bytes. */
    r.value = cvg_test_below(rng, 4) ? 1 : (int64_t)cvg_test_below(rng, 9) - 4;
    if (r.key < 3) {
        r.kind = CVG_OP_COUNTER_ADD;
        if (r.value == 0) {
            r.value = 7;
        }
    } else if (r.key < 6) {
        r.kind = CVG_OP_REGISTER_SET;
    } else {
        r.kind = cvg_test_below(rng, 3) ? CVG_OP_SET_ADD : CVG_OP_SET_REMOVE;
    }
    return r;
}

static int
write_op(cvg_txn *t, const op_rec *r)
{
    cvg_key k = key_of(r->key);
    cvg_value v = cvg_value_int(r->value);
    switch (r->kind) {
    case CVG_OP_COUNTER_ADD:
        return cvg_counter_add(t, &k, r->value, NULL);
    case CVG_OP_REGISTER_SET:
        return cvg_register_set(t, &k, &v, NULL);
    case CVG_OP_SET_ADD:
        return cvg_set_add(t, &k, &v, NULL);
    default:
        return cvg_set_remove(t, &k, &v, NULL);
    }
}

/* A transaction of 1 to @p max ops; committed unless @p abort. */
static void
commit_ops(cvg_replica *r, oracle *o, uint64_t *rng, int max, bool abort)
{
    int n = 1 + (int)cvg_test_below(rng, (uint64_t)max);
    cvg_txn *t;
    OK(cvg_txn_begin(r, 0, &t));
    size_t logged = 0;
    op_rec kept[64];
    for (int i = 0; i < n; i++) {
        op_rec op = random_op(rng);
        if (op.kind == CVG_OP_SET_REMOVE) {
            /* Only an element the set holds (as this transaction sees
             * it) can be removed. */
            cvg_key k = key_of(op.key);
            cvg_value v = cvg_value_int(op.value);
            bool has = false;
            OK(cvg_set_contains(t, &k, &v, &has));
            if (!has) {
                continue;
            }
        }
        OK(write_op(t, &op));
        kept[logged++] = op;
    }
    if (abort) {
        cvg_txn_abort(t);
        return;
    }
    OK(cvg_txn_commit(t));
    for (size_t i = 0; i < logged; i++) {
        oracle_add(o, kept[i]);
    }
}

static bool
same_op(const cvg_op *op, const op_rec *r)
{
    char name[8];
    snprintf(name, sizeof name, "k%d", r->key);
    if (op->kind != r->kind || op->key.len != strlen(name) ||
        memcmp(op->key.data, name, op->key.len) != 0) {
        return false;
    }
    if (r->kind == CVG_OP_COUNTER_ADD) {
        return op->delta == r->value;
    }
    return op->value.kind == CVG_VALUE_INT && op->value.as.integer == r->value;
}

/* The log of @p r from lsn 1: lsns without a hole, and each origin's ops
 * the oracle's, in order, all of them for @p self. */
static void
check_log(cvg_replica *r, const cvg_replica_id ids[2], oracle o[2], int self)
{
    cvg_txn *t;
    OK(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t));
    cvg_log_cursor *c;
    OK(cvg_log_cursor_open(t, 1, &c));
    size_t seen[2] = {0, 0};
    uint64_t lsn = 0;
    cvg_op op;
    int rc;
    while ((rc = cvg_log_cursor_next(c, &op)) == CVG_OK) {
        cr_assert_eq(op.lsn, ++lsn, "lsn %llu after %llu",
                     (unsigned long long)op.lsn, (unsigned long long)lsn - 1);
        int who = memcmp(op.dot.origin.bytes, ids[0].bytes, 16) == 0   ? 0
                  : memcmp(op.dot.origin.bytes, ids[1].bytes, 16) == 0 ? 1
                                                                       : -1;
        cr_assert_neq(who, -1, "an op of an unknown origin at lsn %llu",
                      (unsigned long long)op.lsn);
        size_t i = seen[who]++;
        cr_assert_lt(i, o[who].n, "more ops of origin %d than committed", who);
        cr_assert_eq(op.dot.seq, i + 1, "origin %d: seq %llu at op %zu", who,
                     (unsigned long long)op.dot.seq, i + 1);
        cr_assert(same_op(&op, &o[who].ops[i]),
                  "origin %d, seq %zu: not the op committed", who, i + 1);
    }
    cr_assert_eq(rc, CVG_DONE, "%s", cvg_errname(rc));
    cr_assert_eq(seen[self], o[self].n, "the log lost ops of its own origin");
    cvg_log_cursor_close(c);

    /* From any lsn, the walk starts at that op: inside an extended block
     * too, where a peer's pull position may lie. */
    for (uint64_t from = 1; from <= lsn; from += 1 + from / 8) {
        OK(cvg_log_cursor_open(t, from, &c));
        OK(cvg_log_cursor_next(c, &op));
        cr_assert_eq(op.lsn, from);
        cvg_log_cursor_close(c);
    }
    cvg_txn_abort(t);
}

static cvg_replica *
open_relaxed(const char *dir)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = CVG_RELAXED;
    cvg_replica *r = NULL;
    int rc = cvg_replica_open(dir, &o, &r);
    cr_assert_eq(rc, CVG_OK, "open %s: %s", dir, cvg_replica_errmsg(NULL));
    return r;
}

static void
check_replica(const char *dir, cvg_replica *r)
{
    cvg_check_report rep;
    int rc = cvg_replica_verify(r, &rep);
    cr_assert_eq(rc, CVG_OK, "check of %s: %s (%s)", dir, cvg_errname(rc),
                 rep.problem);
}

Test(log_tail, small_commits_share_blocks_and_read_back_as_committed)
{
    const char *dir = cvg_test_dir("tail-small");
    cvg_replica *r = open_relaxed(dir);
    cvg_replica_id ids[2];
    cvg_replica_id_get(r, &ids[0]);
    memset(&ids[1], 0xff, sizeof ids[1]);
    oracle o[2] = {{0}, {0}};
    uint64_t rng = cvg_test_seed(5);
    for (int i = 0; i < 2000; i++) {
        commit_ops(r, &o[0], &rng, 1, false);
    }
    check_log(r, ids, o, 0);
    cvg_check_report rep;
    OK(cvg_replica_verify(r, &rep));
    /* One op a commit: without extending, a block each. */
    cr_expect_lt(rep.log_blocks, o[0].n / 20, "%llu blocks for %zu ops",
                 (unsigned long long)rep.log_blocks, o[0].n);
    cvg_replica_close(r);
    free(o[0].ops);
}

/* Another process commits @p n transactions to the replica in @p dir while
 * this one holds it open; the ops it wrote are returned for the oracle
 * (they are the same origin's: it is the same replica). */
static void
child_commits(const char *dir, uint64_t seed, oracle *o)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        close(fds[0]);
        /* This process is not the one that holds the replica open: it
         * only inherited the parent's list of open directories. */
        struct stat st;
        if (stat(dir, &st) != 0) {
            _exit(4);
        }
        cvg__store_release(st.st_dev, st.st_ino);
        cvg_replica *r = NULL;
        cvg_replica_options opt;
        cvg_replica_options_init(&opt);
        opt.durability = CVG_RELAXED;
        int orc = cvg_replica_open(dir, &opt, &r);
        if (orc != CVG_OK) {
            fprintf(stderr, "child: %s: %s\n", cvg_errname(orc),
                    cvg_replica_errmsg(NULL));
            _exit(2);
        }
        uint64_t rng = seed;
        for (int c = 0; c < 3; c++) {
            op_rec op = random_op(&rng);
            op.kind = op.kind == CVG_OP_SET_REMOVE ? CVG_OP_SET_ADD : op.kind;
            cvg_txn *t;
            if (cvg_txn_begin(r, 0, &t) != CVG_OK || write_op(t, &op) ||
                cvg_txn_commit(t) != CVG_OK ||
                write(fds[1], &op, sizeof op) != (ssize_t)sizeof op) {
                _exit(3);
            }
        }
        cvg_replica_close(r);
        _exit(0);
    }
    close(fds[1]);
    op_rec op;
    while (cvg_test_read_full(fds[0], &op, sizeof op, 30000) == 1) {
        oracle_add(o, op);
    }
    close(fds[0]);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child failed (%d)",
              WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

typedef struct group_ctx {
    op_rec op;
} group_ctx;

static int
group_write(cvg_txn *t, void *arg)
{
    return write_op(t, &((group_ctx *)arg)->op);
}

Test(log_tail, random_schedules_read_back_as_committed, .timeout = 240)
{
    enum { SCHEDULES = 24, STEPS = 160 };
    uint64_t seed0 = cvg_test_seed(77);
    for (int s = 0; s < SCHEDULES; s++) {
        uint64_t rng = seed0 + (uint64_t)s * 1000003u;
        char da[512], db[512];
        snprintf(da, sizeof da, "%s", cvg_test_dir("tail-a"));
        snprintf(db, sizeof db, "%s", cvg_test_dir("tail-b"));
        cvg_replica *r[2] = {open_relaxed(da), open_relaxed(db)};
        const char *dirs[2] = {da, db};
        cvg_replica_id ids[2];
        cvg_replica_id_get(r[0], &ids[0]);
        cvg_replica_id_get(r[1], &ids[1]);
        oracle o[2] = {{0}, {0}};
        for (int step = 0; step < STEPS; step++) {
            int who = cvg_test_below(&rng, 4) == 0 ? 1 : 0;
            uint64_t what = cvg_test_below(&rng, 40);
            if (what < 26) {
                /* Mostly small commits, now and then one of many ops. */
                int max = cvg_test_below(&rng, 8) == 0 ? 60 : 3;
                commit_ops(r[who], &o[who], &rng, max, false);
            } else if (what < 30) {
                commit_ops(r[who], &o[who], &rng, 4, true);
            } else if (what < 34) {
                OK(cvg_sync_local(r[0], r[1], NULL));
            } else if (what < 36) {
                cvg_replica_close(r[who]);
                r[who] = open_relaxed(dirs[who]);
            } else if (what < 38) {
                op_rec op = random_op(&rng);
                op.kind =
                    op.kind == CVG_OP_SET_REMOVE ? CVG_OP_SET_ADD : op.kind;
                group_ctx g = {op};
                OK(cvg_replica_write(r[who], group_write, &g));
                oracle_add(&o[who], op);
            } else {
                child_commits(dirs[who], rng ^ 0x5eed, &o[who]);
            }
        }
        for (int i = 0; i < 2; i++) {
            check_log(r[i], ids, o, i);
            check_replica(dirs[i], r[i]);
        }
        OK(cvg_sync_local(r[0], r[1], NULL));
        for (int i = 0; i < 2; i++) {
            check_log(r[i], ids, o, i);
        }
        char *d0, *d1;
        OK(cvg_test_digest(r[0], &d0));
        OK(cvg_test_digest(r[1], &d1));
        cr_assert_str_eq(d0, d1, "schedule %d: the replicas differ", s);
        free(d0);
        free(d1);
        cvg_replica_close(r[0]);
        cvg_replica_close(r[1]);
        free(o[0].ops);
        free(o[1].ops);
    }
}
