/*
 * The signed history's hash: a stream built op by op must give the digest
 * a stream rebuilt from the log gives (at every seq, across segment
 * boundaries, whatever the transactions were), and every field of an op
 * must change it.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "replica/replica_int.h"
#include "testutil.h"

#define OK(call) cr_assert_eq((call), CVG_OK, "%s", #call)

static cvg_replica *
open_dir(const char *name)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = CVG_RELAXED;
    cvg_replica *r = NULL;
    OK(cvg_replica_open(cvg_test_dir(name), &o, &r));
    return r;
}

/* @p n register sets in transactions of @p per ops. */
static void
write_ops(cvg_replica *r, int n, int per)
{
    for (int i = 0; i < n; i += per) {
        cvg_txn *t;
        OK(cvg_txn_begin(r, 0, &t));
        for (int j = 0; j < per && i + j < n; j++) {
            char key[16];
            snprintf(key, sizeof key, "k%d", (i + j) % 37);
            cvg_key k = {"c", key, "f"};
            cvg_value v = cvg_value_int(i + j);
            OK(cvg_register_set(t, &k, &v, NULL));
        }
        OK(cvg_txn_commit(t));
    }
}

static void
digest_both(cvg_replica *r, uint64_t seq, uint8_t cached[32], uint8_t built[32])
{
    cvg_replica_id id;
    cvg_replica_id_get(r, &id);
    cvg_txn *t;
    OK(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t));
    OK(cvg__txn_history_digest(t, &id, seq, cached));
    cvg__history h;
    OK(cvg__history_build(&r->store, t->mt, &id, seq, &h));
    cvg__history_digest(&h, built);
    cvg_txn_abort(t);
}

Test(history, built_and_kept_streams_agree_across_segments)
{
    const int sizes[] = {1, 7, 1000, 1500};
    const uint64_t S = CVG__HISTORY_SEGMENT;
    const uint64_t ends[] = {1,         S - 1, S,         S + 1,
                             2 * S - 1, 2 * S, 2 * S + 1, 2 * S + 500};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        for (size_t e = 0; e < sizeof ends / sizeof *ends; e++) {
            if (sizes[s] < 1000 && ends[e] > S + 1) {
                continue; /* a commit per op: keep it short */
            }
            char name[64];
            snprintf(name, sizeof name, "history-%d-%llu", sizes[s],
                     (unsigned long long)ends[e]);
            cvg_replica *r = open_dir(name);
            write_ops(r, (int)ends[e], sizes[s]);
            uint8_t a[32], b[32];
            digest_both(r, ends[e], a, b);
            cr_expect(memcmp(a, b, 32) == 0, "%s: kept != built", name);
            cvg_replica_close(r);
        }
    }
}

Test(history, the_digest_does_not_depend_on_transactions)
{
    /* The ops of a few big transactions, hashed one by one as they come
     * from the log, and rebuilt from the chain record: one digest. */
    cvg_replica *r1 = open_dir("history-group");
    write_ops(r1, 2 * CVG__HISTORY_SEGMENT + 100, 1000);
    cvg_replica_id id;
    cvg_replica_id_get(r1, &id);
    cvg_txn *t;
    OK(cvg_txn_begin(r1, CVG_TXN_READ_ONLY, &t));
    cvg__log_iter it;
    OK(cvg__log_iter_open_origin(&r1->store, t->mt, &id, 1, &it));
    static const uint8_t zero[32];
    cvg__history one, many;
    cvg__history_begin(&one, &id, 0, zero);
    cvg__buf scratch = {0};
    cvg__op op;
    cvg__history_seal seal;
    while (cvg__log_iter_next(&it, &op) == CVG_OK) {
        OK(cvg__history_add(&one, &op, &scratch, &seal));
    }
    cvg__log_iter_close(&it);
    uint8_t d1[32], d2[32];
    cvg__history_digest(&one, d1);
    OK(cvg__history_build(&r1->store, t->mt, &id,
                          2 * CVG__HISTORY_SEGMENT + 100, &many));
    cvg__history_digest(&many, d2);
    cr_expect(memcmp(d1, d2, 32) == 0);
    cvg_txn_abort(t);
    cvg__buf_free(&scratch);
    cvg_replica_close(r1);
}

static void
digest_of(const cvg__op *op, uint8_t out[32])
{
    static const uint8_t zero[32];
    cvg__history h;
    cvg__history_begin(&h, &op->pub.dot.origin, 0, zero);
    cvg__buf scratch = {0};
    cvg__history_seal seal;
    OK(cvg__history_add(&h, op, &scratch, &seal));
    cvg__buf_free(&scratch);
    cvg__history_digest(&h, out);
}

Test(history, every_field_of_an_op_changes_the_digest)
{
    cvg_dot seen = {{{1}}, 4};
    cvg__op base;
    memset(&base, 0, sizeof base);
    base.pub.dot.seq = 1;
    base.pub.hlc = 1000;
    base.pub.kind = CVG_OP_REGISTER_SET;
    base.pub.collection = (cvg_bytes){(const uint8_t *)"c", 1};
    base.pub.key = (cvg_bytes){(const uint8_t *)"k", 1};
    base.pub.field = (cvg_bytes){(const uint8_t *)"f", 1};
    base.pub.value = cvg_value_int(5);
    base.pub.observed = &seen;
    base.pub.observed_count = 1;
    uint8_t d0[32], d[32];
    digest_of(&base, d0);
    cvg__op v[8];
    for (int i = 0; i < 8; i++) {
        v[i] = base;
    }
    v[0].pub.hlc++;
    v[1].pub.kind = CVG_OP_MVREGISTER_SET;
    v[2].pub.collection = (cvg_bytes){(const uint8_t *)"d", 1};
    v[3].pub.key = (cvg_bytes){(const uint8_t *)"kk", 2};
    v[4].pub.field = (cvg_bytes){(const uint8_t *)"", 0};
    v[5].pub.value = cvg_value_int(6);
    v[6].pub.observed_count = 0;
    static cvg_dot other = {{{1}}, 5};
    v[7].pub.observed = &other;
    for (int i = 0; i < 8; i++) {
        digest_of(&v[i], d);
        cr_expect(memcmp(d, d0, 32) != 0, "change %d", i);
    }
    /* Moving bytes between names is a change too. */
    cvg__op m = base;
    m.pub.collection = (cvg_bytes){(const uint8_t *)"ck", 2};
    m.pub.key = (cvg_bytes){(const uint8_t *)"", 0};
    digest_of(&m, d);
    cr_expect(memcmp(d, d0, 32) != 0);
}

/* The second op's target is left out when it is the first's: a second op
 * on another target must still give another digest, and so must a time
 * that differs only as a delta. */
static void
digest_of_two(const cvg__op *a, const cvg__op *b, uint8_t out[32])
{
    static const uint8_t zero[32];
    cvg__history h;
    cvg__history_begin(&h, &a->pub.dot.origin, 0, zero);
    cvg__buf scratch = {0};
    cvg__history_seal seal;
    OK(cvg__history_add(&h, a, &scratch, &seal));
    OK(cvg__history_add(&h, b, &scratch, &seal));
    cvg__buf_free(&scratch);
    cvg__history_digest(&h, out);
}

Test(history, a_run_on_one_target_is_told_from_two_targets)
{
    cvg__op a;
    memset(&a, 0, sizeof a);
    a.pub.dot.seq = 1;
    a.pub.hlc = 1000;
    a.pub.kind = CVG_OP_COUNTER_ADD;
    a.pub.collection = (cvg_bytes){(const uint8_t *)"c", 1};
    a.pub.key = (cvg_bytes){(const uint8_t *)"k", 1};
    a.pub.field = (cvg_bytes){(const uint8_t *)"f", 1};
    a.pub.delta = 1;
    cvg__op b = a;
    b.pub.dot.seq = 2;
    b.pub.hlc = 1001;
    uint8_t same[32], d[32];
    digest_of_two(&a, &b, same);
    cvg__op b2 = b;
    b2.pub.key = (cvg_bytes){(const uint8_t *)"j", 1};
    digest_of_two(&a, &b2, d);
    cr_expect(memcmp(d, same, 32) != 0, "another target");
    b2 = b;
    b2.pub.hlc = 1002;
    digest_of_two(&a, &b2, d);
    cr_expect(memcmp(d, same, 32) != 0, "another time");
    b2 = b;
    b2.pub.delta = -1;
    digest_of_two(&a, &b2, d);
    cr_expect(memcmp(d, same, 32) != 0, "another delta");
    /* The same ops twice: the same digest (nothing but the ops counts). */
    digest_of_two(&a, &b, d);
    cr_expect(memcmp(d, same, 32) == 0);
}
