/*
 * src/replica: the handle an app holds. A write transaction keeps the state
 * of every field it touches in a cache, decoded, and its new ops in encoded
 * blocks; both reach LMDB at commit (or earlier, when a scan of LMDB needs
 * them). The apply pipeline is shared by local writes and ops from peers.
 */
#ifndef CVG_REPLICA_INT_H
#define CVG_REPLICA_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "replica.h"

/* One cvg_replica_write() call waiting for its group's commit (group.c). */
typedef struct cvg__group_member {
    cvg_write_fn *fn;
    void *ctx;
    int rc;
    bool done;
    pthread_cond_t cv; /* signalled when done, or when it is to lead */
    struct cvg__group_member *next;
} cvg__group_member;

/* Group commit (group.c): the calls queued behind the group being
 * committed, and the replica's lock (cvg_replica_lock()). */
typedef struct cvg__group {
    pthread_mutex_t lock; /* the replica's: one user of the handle at a time */
    _Atomic(const char *) owner; /* the holder's mark (group.c), or NULL */
    pthread_mutex_t mu;          /* the queue, leading, and the figures below */
    cvg__group_member *head, *tail;
    bool leading;     /* a thread is committing a group */
    bool ready;       /* the mutexes and the condition were made */
    uint64_t commits; /* groups committed, and the calls they held */
    uint64_t members;
} cvg__group;

/* A collection's conflict strategy, with our own copy of its name. */
typedef struct cvg__policy {
    char *collection;
    size_t len;
    cvg_collection_policy p;
} cvg__policy;

/* A conflict met while applying a peer's op, kept (with copies of its
 * names and values) until the ops are committed and the event can fire. */
struct cvg__conflict_rec {
    char *names; /* collection NUL key NUL field NUL */
    size_t clen, klen, flen;
    cvg_type type;
    cvg_value local; /* owned copies */
    cvg_value remote;
    cvg_value resolved;
    uint32_t siblings; /* values the register holds after the page */
    cvg_dot dot;
};

struct cvg_replica {
    cvg__store store;
    cvg__policy *policies;
    size_t n_policies;
    cvg_replica_options opts;
    cvg_replica_id id;
    uint8_t pk[CVG_PUBLIC_KEY_BYTES]; /* the identity, if has_pk */
    bool has_pk;                      /* false: made by version 0.1 */
    /* The bytes the origin id is derived from with the public key: none
     * for the replica's first origin, random ones after it found itself
     * copied (home.c). */
    uint8_t inc[CVG__INC_MAX];
    size_t inc_len;
    /* The secret key, if the app supplied it or the key file holds it:
     * sodium_malloc'd, no access between signatures (identity.c). */
    uint8_t *sk;
    /* What is committed, as of generation gen (refreshed at the start of a
     * transaction when another process has committed since). */
    cvg__origins origins;
    cvg__vv vv;
    /* The origin the meta record "ahead" names, if any (oplog_int.h). */
    cvg__origins_ahead ahead;
    uint64_t clock; /* high-water mark of the hybrid logical clock */
    uint64_t last_lsn;
    uint64_t gen;           /* commit generation, stored in meta */
    struct cvg_txn *writer; /* the open write transaction, if any */
    cvg__commit_hook hook;  /* set by the floor above (sync) */
    bool has_hook;
    unsigned readers; /* open read transactions */
    /* The read transactions that look at vv itself instead of a copy of
     * their own; each gets its copy only if vv is about to change while it
     * is open (cvg__replica_vv_detach). */
    struct cvg_txn *vv_sharers;
    /* Each origin's history stream at its committed seq, by origin index
     * (history.c): built when first needed. */
    cvg__history **hist;
    size_t nhist;
    /* Our own origin's stream as it was before the last write transaction
     * extended it: a peer that syncs after each of our commits holds our
     * history there, and the fork check compares at its seq. */
    cvg__history *self_before;
    bool self_key_stored; /* the history database has our key */
    /* The writer of the log's last block, when a commit of this handle
     * appended it: the next commit's ops may extend that block instead of
     * starting one (txn_log.c). */
    cvg__block_writer tail;
    uint64_t tail_lsn;
    bool tail_valid;
    char errmsg[256];
    cvg__group group;
};

/* The cached state of one state record. Its key is the state key, or, for
 * the type mask of a field, the field prefix alone (klen == plen). */
typedef struct cvg__entry {
    uint8_t *key;
    uint32_t klen;
    uint32_t plen; /* length of "collection NUL key NUL field NUL" */
    uint64_t hash;
    uint8_t type;   /* cvg_type; 0 for a type mask */
    uint8_t mask;   /* type mask entries: bit t = a live field of type t */
    uint8_t unsure; /* mask bits that may be stale (a set's) */
    bool mask_valid;
    bool present;  /* holds state; false: absent, or to be deleted */
    bool modified; /* differs from what is stored at the txn start */
    bool dirty;    /* modified since the last flush */
    union {
        cvg__counter c;
        cvg__reg r;
        struct {
            cvg_value elem; /* owned copy */
            cvg__tags tags;
        } s;
    } u;
} cvg__entry;

/* A finished block waiting for commit. */
typedef struct cvg__pending_block {
    cvg__buf bytes;
    uint64_t last_lsn;
    cvg_replica_id origin;
    uint64_t last_seq;
    /* The log's last block, which this one extends and replaces: its key
     * (0: none) and its last seq. */
    uint64_t replaces_lsn;
    uint64_t replaces_seq;
    bool stored; /* put into the current LMDB transaction */
} cvg__pending_block;

/* The history streams a write transaction extends (copies), the
 * segments that filled up, and the points a page brought (history.c). */
typedef struct cvg__txn_stream {
    cvg__history *h; /* taken from the replica's cache, or built */
} cvg__txn_stream;

typedef struct cvg__txn_seal {
    cvg_replica_id origin;
    cvg__history_seal seal;
} cvg__txn_seal;

typedef struct cvg__txn_history {
    cvg__txn_stream *streams;
    size_t n, cap, last;
    /* Streams by origin: open addressing over index + 1 (0 empty), at most
     * half full, so that a page of many origins costs linear time. */
    uint32_t *slots;
    size_t nslots;
    cvg__txn_seal *seals;
    size_t nseals, capseals;
    cvg__point *points;
    size_t npoints, cappoints;
    cvg__buf canon; /* an op's canonical bytes, to hash */
} cvg__txn_history;

struct cvg_txn {
    cvg_replica *r;
    cvg__store_txn *mt;
    cvg__state_cursor state_cur;
    bool write;
    int failed; /* sticky error: the transaction can only abort */
    uint64_t start_gen;
    uint64_t clock;
    uint64_t next_lsn;
    /* The version vector as of this transaction: a write transaction's
     * own copy (vv), which it changes; a read transaction's is the
     * replica's committed one, shared while that does not change. */
    cvg__vv vv;
    const cvg__vv *vvp;
    struct cvg_txn *next_sharer;
    /* The origins whose seq this transaction moved (in the order moved;
     * repeats of the last one left out), for the commit to store. */
    cvg_replica_id *moved;
    size_t nmoved, capmoved;
    size_t origins_at_begin;
    cvg__origins_ahead ahead; /* the replica's once this commits */
    uint64_t wgen;            /* bumped by every write: invalidates cursors */
    uint64_t epoch;           /* bumped when the LMDB transaction is replaced */
    size_t n_ops;
    bool grouped; /* run by group.c: commit and abort are its own */

    /* The cache: open addressing over entry pointers, plus insertion order
     * for flushing. */
    cvg__entry **slots;
    size_t nslots;
    cvg__entry **list;
    size_t nlist;
    size_t caplist;
    /* The last entries looked up: a run of writes to one field (a thousand
     * increments) compares a few bytes instead of hashing the key. */
    cvg__entry *memo[4];
    unsigned memo_next;

    /* The block being written, and the finished ones. */
    cvg__block_run run;
    cvg__pending_block *blocks;
    size_t nblocks;
    size_t capblocks;
    /* Which pending block the run finished last (index + 1; 0: none). */
    size_t run_last;
    /* The log's last block, when the run took it up again to extend it
     * (key 0: it did not), and whether the first op tried. */
    uint64_t extends_lsn;
    uint64_t extends_seq;
    bool extend_tried;

    /* Conflicts met by remote ops, when the caller collects them. */
    bool collect_conflicts;
    cvg__conflict_rec *conflicts;
    size_t nconflicts;
    size_t capconflicts;

    /* A received block kept as it came (cvg__txn_keep_begin). */
    bool keeping;
    cvg_bytes keep;
    cvg_replica_id keep_origin;
    uint64_t keep_last_seq;
    uint64_t keep_left; /* its ops not applied yet */

    /* Stored ops looked up to check duplicates from peers (remote.c). */
    struct cvg__op_lookup *dups;

    cvg__txn_history hist;

    cvg__buf kbuf; /* key under construction */
    /* The names of the key last given to cvg__key_prefix (write.c), so the
     * op stamped next need not measure them again. */
    cvg_bytes names[3];
    cvg__buf vbuf; /* state record under construction */
};

/* Make and free the group commit's mutexes (group.c). */
int cvg__group_init(cvg_replica *r);
void cvg__group_destroy(cvg_replica *r);

/* Adopt what another process committed, as seen by @p mt. */
int cvg__replica_refresh(cvg_replica *r, cvg__store_txn *mt);
/* Give each read transaction that shares r->vv a copy of its own, before
 * r->vv changes. CVG_ENOMEM and nothing changed if a copy fails. */
int cvg__replica_vv_detach(cvg_replica *r);
/* Raise @p origin to @p seq in @p t's vector, and note it moved. */
int cvg__txn_vv_raise(cvg_txn *t, const cvg_replica_id *origin, uint64_t seq);

/* Build "collection NUL key NUL field NUL" into t->kbuf from names that
 * may come from a peer; checks sizes and NULs. */
int cvg__txn_prefix(cvg_txn *t, cvg_bytes coll, cvg_bytes key, cvg_bytes field);
/* The same for names measured with strlen(), which hold no NUL: every
 * local write builds one, and the scan for NULs would read them twice. */
int cvg__txn_prefix_cstr(cvg_txn *t, cvg_bytes coll, cvg_bytes key,
                         cvg_bytes field);
/* The cache entry for state key t->kbuf[0..klen), loaded from LMDB if not
 * cached; a missing record gives an entry with present == false. */
int cvg__txn_entry(cvg_txn *t, uint32_t klen, uint32_t plen, uint8_t type,
                   cvg__entry **out);
/* Whether the field whose prefix is in t->kbuf[0..plen) holds live values
 * of other types and none of @p type (a write or read of @p type there is
 * CVG_ETYPE). Answered from the cache when it can be. */
int cvg__txn_type_clash(cvg_txn *t, uint32_t plen, uint8_t type, bool *clash);
/* Make sure the field at t->kbuf[0..plen) has a type mask entry (valid or
 * not): every write makes one before it changes an entry of the field, so
 * that cvg__txn_touch() cannot fail. */
int cvg__txn_mask_entry(cvg_txn *t, uint32_t plen, cvg__entry **out);
/* Mark @p e changed (to be written) and keep its field's mask exact. */
void cvg__txn_touch(cvg_txn *t, cvg__entry *e);
/* History (history.c): hash an op applied in @p t into its origin's
 * stream; store what the commit adds; hand the streams to the replica
 * once committed; free them. */
int cvg__txn_history_add(cvg_txn *t, const cvg__op *op);
int cvg__txn_history_write(cvg_txn *t);
void cvg__txn_history_publish(cvg_txn *t);
void cvg__txn_history_free(cvg_txn *t);
void cvg__replica_history_free(cvg_replica *r);
/* Add an op to the log blocks of the transaction, at lsn t->next_lsn. */
int cvg__txn_log(cvg_txn *t, const cvg__op *op);
/* After a commit: keep the writer of the log's last block for the next
 * commit to extend (txn_log.c). */
void cvg__txn_log_committed(cvg_txn *t);
/* Free every cached entry (txn_cache.c). */
void cvg__txn_cache_clear(cvg_txn *t);
/* Whether a counter entry still has something no delete observed. */
bool cvg__entry_live(const cvg__entry *e);

/* Apply a validated op (local or remote) to the cached state. *conflict
 * tells a register write met a concurrent one. */
int cvg__apply(cvg_txn *t, const cvg__op *op, bool *conflict);
/* The same, for an op whose entry the caller has found already (a local
 * write, which validated the key and found the entry to check the op):
 * nothing is validated, built, hashed or looked up twice. */
int cvg__apply_entry(cvg_txn *t, cvg__entry *e, const cvg__op *op,
                     bool *conflict);

/* Every record of (collection, key), whose prefix is in t->kbuf[0..rplen),
 * loaded into the cache (after a flush, so LMDB has them all). *out is
 * allocated; free it with cvg__free(). */
int cvg__record_entries(cvg_txn *t, uint32_t rplen, cvg__entry ***out,
                        size_t *n);
/* Validate a public key and build its prefix (with or without the field)
 * in t->kbuf. */
int cvg__key_prefix(cvg_txn *t, const cvg_key *key, bool with_field,
                    uint32_t *plen);

/* The identity (identity.c): made at creation, from the key the app
 * supplies, a key file left by a crash, or a new one (written to @p dir);
 * it sets r->pk and r->id. At a later open, check that the stored id is
 * the public key's and that a supplied key is the replica's (CVG_EKEY). */
int cvg__identity_create(cvg_replica *r, const char *dir);
int cvg__identity_check(cvg_replica *r, const char *dir);
/* Wipe and free the kept secret key (at close). */
void cvg__identity_forget(cvg_replica *r);
/* At a writable open: if the replica is not where it last wrote (a copy,
 * a restored backup), take a new origin for its writes (home.c). */
int cvg__home_check(cvg_replica *r);

/* Call the commit hook, if any (hook.c). */
int cvg__hook_write(cvg_replica *r, cvg__store_txn *mt);
void cvg__hook_committed(cvg_replica *r);
void cvg__hook_ended(cvg_replica *r, bool empty);
/* At close: store what the hook holds, then destroy it. */
void cvg__hook_close(cvg_replica *r);

/* The strategy of collection @p coll; NULL means LWW. */
const cvg_collection_policy *cvg__policy_for(const cvg_replica *r,
                                             cvg_bytes coll);
/* The sibling a register read returns under the collection's strategy;
 * NULL if the register is empty. */
const cvg__sibling *cvg__winner(const cvg_replica *r, cvg_bytes coll,
                                const cvg__reg *reg);
/* Copy the policies of @p o into @p r (at open); free them (at close). */
int cvg__policies_copy(cvg_replica *r, const cvg_replica_options *o);
void cvg__policies_free(cvg_replica *r);
/* After open: agree with the strategies the replica stores (adopt them,
 * store ours, or CVG_EPOLICY; policy_store.c). */
int cvg__policies_settle(cvg_replica *r, bool replace);
void cvg__conflicts_free(cvg__conflict_rec *c, size_t n);

/* The 16-byte element hash that orders a set's elements in LMDB. */
int cvg__elem_hash(cvg_txn *t, const cvg_value *v, uint8_t out[16]);

#endif
