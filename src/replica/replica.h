/*
 * The replica floor as the floors above it (src/sync, and the network
 * transport that will sit on sync) see it. Replicas and transactions stay
 * opaque there; what those floors may do with them is this list.
 *
 * The arrow points one way. Nothing in src/replica includes anything of
 * src/sync: sync hangs its per-replica state (peer records that wait for a
 * commit, the peers in session) on the replica through the commit hook, and
 * the replica calls the hook at each commit without knowing what it holds.
 * Sync reads the log and keeps its own records (peers, refused ops) through
 * src/oplog's typed functions, inside store transactions the replica began.
 */
#ifndef CVG_REPLICA_H
#define CVG_REPLICA_H

#include "../oplog/oplog_int.h"

/* ---- The replica --------------------------------------------------------- */

cvg__store *cvg__replica_store(cvg_replica *r);
const cvg_replica_id *cvg__replica_self(const cvg_replica *r);
/* The options the replica was opened with (callbacks, clock, limits). */
const cvg_replica_options *cvg__replica_opts(const cvg_replica *r);
/* Who the replica is: its public key (NULL for a replica made by 0.1,
 * which has none) and the extra bytes its origin id is derived from with
 * it (cvg__identity_derive). */
const uint8_t *cvg__replica_pk(const cvg_replica *r);
cvg_bytes cvg__replica_inc(const cvg_replica *r);
/* Whether the replica holds its secret key (it can prove who it is). */
bool cvg__replica_has_key(const cvg_replica *r);
/* Sign @p msg with the replica's secret key: CVG_EKEY (with a message)
 * if it was opened without one. */
int cvg__replica_sign(cvg_replica *r, const uint8_t *msg, size_t len,
                      uint8_t sig[64]);
/* The origin id of public key @p pk with the extra bytes @p inc. */
void cvg__identity_derive(const uint8_t *pk, const uint8_t *inc, size_t inc_len,
                          cvg_replica_id *out);
/* The wall clock the replica uses, in ms. */
uint64_t cvg__replica_now_ms(const cvg_replica *r);
/* Set the handle's message (printf-like) and return @p rc. */
int cvg__replica_fail(cvg_replica *r, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- The commit hook -------------------------------------------------------
 * One per replica, set by the floor above the first time it needs it. Every
 * write commit of the replica calls write() inside its store transaction,
 * after the data (and again if the map grows and the commit is written
 * anew), then committed() once it is durable. A write transaction that
 * stores nothing calls ended(): with empty true when it simply had no ops
 * to store (a page of ops the replica all had), false when it was aborted
 * or failed. pending() says whether it holds anything to store. destroy()
 * runs at close, after a last store_hook. */
typedef struct cvg__commit_hook {
    bool (*pending)(void *ctx);
    int (*write)(void *ctx, cvg__store *s, cvg__store_txn *t);
    void (*committed)(void *ctx);
    void (*ended)(void *ctx, bool empty);
    void (*destroy)(void *ctx);
    void *ctx;
} cvg__commit_hook;

/* Set the hook: CVG_EMISUSE if one is set already. */
int cvg__replica_hook_set(cvg_replica *r, const cvg__commit_hook *h);
/* The hook's context, or NULL if none is set. */
void *cvg__replica_hook_ctx(const cvg_replica *r);
/* Store what the hook holds in a commit of its own, unless a write
 * transaction of this process is open (its commit will). CVG_OK on a
 * read-only replica, which stores nothing. */
int cvg__replica_store_hook(cvg_replica *r);
/* A small write of the floor above, in a transaction of its own that also
 * stores what the hook holds: @p fn may be called again on a new
 * transaction when the map grows. CVG_EBUSY if a write transaction is
 * open, CVG_EREADONLY on a read-only replica. */
int cvg__replica_write(cvg_replica *r,
                       int (*fn)(void *ctx, cvg__store *s, cvg__store_txn *t),
                       void *ctx);

/* ---- Transactions -------------------------------------------------------- */

/* The store transaction under @p t: valid until @p t ends or its next
 * write (which may replace it when the map grows; see the stamp). */
cvg__store_txn *cvg__txn_store_txn(cvg_txn *t);
/* What @p t sees: its version vector and the lsn its next op would get. */
const cvg__vv *cvg__txn_vv(const cvg_txn *t);
/* The digest of that vector (cvg__vv_sum_bytes): a pass over it the first
 * time in a process, then kept up to date by every commit. */
void cvg__txn_vv_sum(cvg_txn *t, uint8_t out[CVG__VV_SUM_BYTES]);
uint64_t cvg__txn_next_lsn(const cvg_txn *t);
bool cvg__txn_writable(const cvg_txn *t);
/* The error that failed @p t, or CVG_OK. */
int cvg__txn_failed(const cvg_txn *t);
/* Write what the transaction holds in memory to its store transaction, so
 * that a walk of the store sees it. */
int cvg__txn_flush(cvg_txn *t);

/* A cursor of the floor above stays valid while its transaction's stamp is
 * the one it took: no write and no replaced store transaction since. */
typedef struct cvg__txn_stamp {
    uint64_t wgen;
    uint64_t epoch;
} cvg__txn_stamp;

cvg__txn_stamp cvg__txn_stamp_get(const cvg_txn *t);
bool cvg__txn_stamp_valid(const cvg_txn *t, cvg__txn_stamp s);

/* Apply an op made by another replica: CVG_OK, CVG_DONE (a duplicate,
 * equal to the stored op: skipped), CVG_EEQUIVOCAL (another op under a dot
 * we have), CVG_EFORGED (an op in our name that we never made), CVG_EGAP
 * (an earlier op of its origin, or one it had seen, is missing),
 * CVG_ECLOCK (too far ahead, only with refuse_clock_ahead), CVG_ECORRUPT.
 * Nothing changes on error, except that a failure after the state changed
 * fails the transaction. */
int cvg__txn_apply_remote(cvg_txn *t, const cvg__op *op, bool *conflict);

/* A received block's ops may be stored in the log as the bytes that came,
 * instead of decoded and encoded again, when every one of them is new here
 * (the block starts right after what this replica has of its origin), the
 * block is in the current encoding and within the log's block limits.
 * Between keep_begin (true: keeping) and keep_end, cvg__txn_apply_remote()
 * applies the block's ops without logging them; keep_end logs the block
 * whole. Its bytes must stay valid until keep_end. */
bool cvg__txn_keep_begin(cvg_txn *t, const cvg__block_reader *rd,
                         cvg_bytes block);
int cvg__txn_keep_end(cvg_txn *t);

/* ---- Signed history (history.c) ----------------------------------------------
 * Every origin's ops are hashed in seq order as they are applied; an
 * origin signs the digest at a seq (a point) where its ops leave. */

/* The digest of @p origin's history at @p seq (which @p t must hold). */
int cvg__txn_history_digest(cvg_txn *t, const cvg_replica_id *origin,
                            uint64_t seq, uint8_t out[CVG__DIGEST_BYTES]);
/* The public key and extra bytes of @p origin: CVG_ENOTFOUND if unknown. */
int cvg__txn_origin_key(cvg_txn *t, const cvg_replica_id *origin,
                        uint8_t pk[32], uint8_t inc[CVG__INC_MAX],
                        uint8_t *inc_len);
/* Whether @p origin is one of ours (our key) and we hold the secret key:
 * then we sign its points ourselves. */
bool cvg__txn_signs_for(cvg_txn *t, const cvg_replica_id *origin);
/* The point of @p origin at @p seq: signed now if it is ours, else as
 * stored (CVG_ENOTFOUND if none); with its key if @p with_key. */
int cvg__txn_point(cvg_txn *t, const cvg_replica_id *origin, uint64_t seq,
                   bool with_key, cvg__point *out);
/* Whether @p p is its origin's signature over @p digest: CVG_OK or
 * CVG_EFORGED (also for an unknown key, or a key not the origin's). */
int cvg__txn_point_check(cvg_txn *t, const cvg__point *p,
                         const uint8_t digest[CVG__DIGEST_BYTES]);
/* Every origin whose ops @p t took from a peer must be covered, at its new
 * seq, by one of @p pts with a valid signature: else CVG_EFORGED (with a
 * message), and the transaction must be aborted. The points are stored
 * with the commit. */
int cvg__txn_check_points(cvg_txn *t, const cvg__point *pts, size_t n);

/* ---- Conflicts ---------------------------------------------------------------
 * Register writes from peers that meet concurrent ones are collected while
 * a page is applied; the collection's strategy settles them in the same
 * transaction (a resolver's value is written back as an op of it), and
 * their events fire once it is committed. */
typedef struct cvg__conflict_rec cvg__conflict_rec;
typedef struct cvg__conflicts {
    cvg__conflict_rec *recs;
    size_t n;
} cvg__conflicts;

/* From now on, @p t keeps the conflicts its remote ops meet. */
void cvg__txn_collect_conflicts(cvg_txn *t);
/* Run the resolvers of the conflicts met so far, writing their values back
 * as ops of @p t; then hand the conflicts over (the caller owns them). */
int cvg__txn_settle_conflicts(cvg_txn *t, cvg__conflicts *out);
/* Fire the conflict events of @p c (after its transaction committed). */
void cvg__conflicts_notify(cvg_replica *r, const cvg__conflicts *c);
void cvg__conflicts_release(cvg__conflicts *c);

#endif
