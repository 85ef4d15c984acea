/*
 * converge: a CRDT engine with a durable operation log.
 *
 * One header is the whole public API. It includes only <stddef.h>,
 * <stdint.h> and <stdbool.h>; LMDB, libsodium and msgpack-c stay private.
 *
 * Data is addressed as collection / key / field. A field holds one CRDT
 * type, fixed by its first write: a PN-counter, a last-writer-wins register,
 * a multi-value register or an observed-remove (add-wins) set. Every change
 * is an operation (an op) that lands in the operation log and in the merged
 * state in the same LMDB transaction.
 *
 * Example: a sale of 3, committed durably with its op.
 *     cvg_replica *r;
 *     cvg_txn *t;
 *     cvg_key qty = {"stock", "sku-1", "qty"};
 *     if (cvg_replica_open("./till-1", NULL, &r) == CVG_OK) {
 *         if (cvg_txn_begin(r, 0, &t) == CVG_OK) {
 *             int rc = cvg_counter_add(t, &qty, -3, NULL);
 *             rc = rc == CVG_OK ? cvg_txn_commit(t) : (cvg_txn_abort(t), rc);
 *             if (rc != CVG_OK) {
 *                 // cvg_errname(rc) and cvg_replica_errmsg(r) say why
 *             }
 *         }
 *         cvg_replica_close(r);
 *     }
 *
 * Errors: every function that can fail returns CVG_OK (0) or a negative
 * CVG_E... code; CVG_DONE (1) ends an iteration. cvg_strerror() names every
 * code; cvg_replica_errmsg() gives detail for the last failure on a handle.
 * The library never aborts and never prints.
 *
 * Ownership: strings and values passed in are borrowed for the call only.
 * Values read out are views valid until the transaction ends or its next
 * write, unless a function says otherwise.
 *
 * Threads: a cvg_replica and everything opened from it must be used by one
 * thread at a time; the caller serializes access (cvg_replica_lock(), or a
 * mutex of its own). cvg_replica_write() is the exception: any number of
 * threads may call it at once, and their writes share commits and syncs
 * (group commit). A read transaction may move between threads between calls; a
 * write transaction must end (commit or abort) on the thread that began it,
 * as LMDB's writer lock belongs to that thread. Do not fork() with a
 * replica open. A process opens a replica directory once (a second open is
 * CVG_EBUSY): share the handle. Several processes may open one replica
 * directory at once: LMDB serializes their writers and readers never block
 * (see docs/architecture.md for the LMDB versions that are safe).
 */
#ifndef CONVERGE_H
#define CONVERGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Versions ---------------------------------------------------------- */

#define CVG_VERSION_MAJOR 0
#define CVG_VERSION_MINOR 2
#define CVG_VERSION_PATCH 0
#define CVG_VERSION_STRING "0.2.0"
#define CVG_VERSION_NUMBER \
    ((CVG_VERSION_MAJOR << 16) | (CVG_VERSION_MINOR << 8) | CVG_VERSION_PATCH)

/** Version of the on-disk layout, stored in every replica. Format 2 gives
 * every record a checksum; format 3 lets the log hold op blocks that name a
 * numbered record after the one before it in one byte; format 4 lets state
 * records wait in a journal before they reach the state table, and the log
 * hold op blocks whose runs repeat an op (a commit of increments of one
 * counter in a few bytes); format 5 lets the replica's own seq be kept
 * with the meta records instead of in the origin table (a commit of local
 * ops writes one page less). A writable open upgrades an older
 * replica in one transaction (format 2 to 3, 4 and 5 rewrite nothing:
 * what is stored stays as it is and is still read); a read-only open reads
 * it as it is. */
#define CVG_FORMAT_VERSION 5

#if defined(_WIN32)
#define CVG_API
#else
#define CVG_API __attribute__((visibility("default")))
#endif
#define CVG_NODISCARD __attribute__((warn_unused_result))

/** The library's CVG_VERSION_NUMBER, to compare with the header's. */
CVG_API unsigned cvg_version_number(void);
CVG_API const char *cvg_version_string(void);

/* ---- Errors -------------------------------------------------------------- */

/* One table makes the codes, cvg_strerror() and cvg_errname(). Numbers never
 * change once released. */
#define CVG_ERROR_TABLE(X)                                                \
    X(EINVAL, -1, "invalid argument")                                     \
    X(ETYPE, -2, "field already holds another CRDT type")                 \
    X(ECORRUPT, -3, "malformed or truncated encoded data")                \
    X(ENOMEM, -4, "out of memory")                                        \
    X(EFULL, -5, "storage full: the map size limit was reached")          \
    X(EIO, -6, "I/O error")                                               \
    X(EVERSION, -7, "written by a newer, unsupported version")            \
    X(ENOTFOUND, -8, "not found")                                         \
    X(EMISUSE, -9, "API misuse: call not allowed in this state")          \
    X(EREADONLY, -10, "write in a read-only transaction")                 \
    X(EOVERFLOW, -11, "counter would leave the int64 range")              \
    X(ECLOCK, -12, "clock out of range or too far ahead")                 \
    X(EGAP, -13, "op arrived before the ops it depends on")               \
    X(EBUSY, -14, "replica is busy: a write transaction is already open") \
    X(ETOOBIG, -15, "name or value longer than the limit")                \
    X(EACCES, -16, "permission denied")                                   \
    X(ELIMIT, -17, "a resource limit was reached")                        \
    X(EPEER, -18, "the peer ended the session with an error")             \
    X(EEQUIVOCAL, -19, "a peer sent another op under a dot already here") \
    X(EPROTO, -20, "the peer broke the sync protocol")                    \
    X(EFORGED, -21, "an op in this replica's name that it never made")    \
    X(EPOLICY, -22, "conflict strategies differ from the replica's own")  \
    X(EKEY, -23, "the secret key is not this replica's identity")         \
    X(EAGAIN, -24, "the peer is busy: try again later")                   \
    X(ENOSPC, -25, "no space left on the device")

typedef enum cvg_status {
    CVG_OK = 0,
    CVG_DONE = 1, /* an iteration has no more items */
#define CVG__ERR_ENUM(name, code, text) CVG_##name = (code),
    CVG_ERROR_TABLE(CVG__ERR_ENUM)
#undef CVG__ERR_ENUM
} cvg_status;

/** A sentence for @p code; never NULL, also for unknown codes. */
CVG_API const char *cvg_strerror(int code);
/** The code's name ("CVG_ETYPE"); never NULL. */
CVG_API const char *cvg_errname(int code);

/* ---- Limits ---------------------------------------------------------------*/

/** Most bytes in collection + key + field together (LMDB keys are small). */
#define CVG_NAME_MAX 448
/** Most bytes in one string or bytes value. */
#define CVG_VALUE_MAX (1u << 20)
/** Most ops in one transaction. */
#define CVG_TXN_OPS_MAX (1u << 20)

/* ---- Plain data --------------------------------------------------------- */

/** A borrowed view of bytes; never owns them. */
typedef struct cvg_bytes {
    const uint8_t *data;
    size_t len;
} cvg_bytes;

/** A replica's random 16-byte identity. */
typedef struct cvg_replica_id {
    uint8_t bytes[16];
} cvg_replica_id;

/** The unique id of an op: its origin replica and its sequence number there
 * (1, 2, 3, ... per origin). */
typedef struct cvg_dot {
    cvg_replica_id origin;
    uint64_t seq;
} cvg_dot;

/** Where a field lives. Names are NUL-terminated UTF-8 (or any bytes but
 * NUL), each non-empty; together at most CVG_NAME_MAX bytes. */
typedef struct cvg_key {
    const char *collection;
    const char *key;
    const char *field;
} cvg_key;

typedef enum cvg_type {
    CVG_TYPE_COUNTER = 1,    /* PN-counter of int64 */
    CVG_TYPE_REGISTER = 2,   /* last-writer-wins register */
    CVG_TYPE_MVREGISTER = 3, /* multi-value register: keeps concurrent writes */
    CVG_TYPE_SET = 4         /* observed-remove, add-wins set */
} cvg_type;

typedef enum cvg_value_kind {
    CVG_VALUE_NIL = 0,
    CVG_VALUE_BOOL = 1,
    CVG_VALUE_INT = 2,
    CVG_VALUE_DOUBLE = 3,
    CVG_VALUE_STRING = 4, /* bytes, by convention UTF-8; not NUL-terminated */
    CVG_VALUE_BYTES = 5
} cvg_value_kind;

/** A scalar value. For STRING and BYTES, @c as.bytes is a view. */
typedef struct cvg_value {
    cvg_value_kind kind;
    union {
        bool boolean;
        int64_t integer;
        double real;
        cvg_bytes bytes;
    } as;
} cvg_value;

static inline cvg_value
cvg_value_nil(void)
{
    cvg_value v = {CVG_VALUE_NIL, {0}};
    return v;
}
static inline cvg_value
cvg_value_bool(bool b)
{
    cvg_value v = {CVG_VALUE_BOOL, {0}};
    v.as.boolean = b;
    return v;
}
static inline cvg_value
cvg_value_int(int64_t i)
{
    cvg_value v = {CVG_VALUE_INT, {0}};
    v.as.integer = i;
    return v;
}
static inline cvg_value
cvg_value_double(double d)
{
    cvg_value v = {CVG_VALUE_DOUBLE, {0}};
    v.as.real = d;
    return v;
}
/** A string value viewing @p s (NUL-terminated; the NUL is not included). */
CVG_API cvg_value cvg_value_string(const char *s);
/** A bytes value viewing @p len bytes at @p data. */
CVG_API cvg_value cvg_value_bytes(const void *data, size_t len);

/* ---- Opaque handles ----------------------------------------------------- */

typedef struct cvg_replica cvg_replica;       /* one replica directory */
typedef struct cvg_txn cvg_txn;               /* a batch of reads or writes */
typedef struct cvg_log_cursor cvg_log_cursor; /* walks the op log */
typedef struct cvg_queue_cursor cvg_queue_cursor; /* ops a peer lacks */
typedef struct cvg_set_cursor cvg_set_cursor;     /* walks a set's elements */
typedef struct cvg_field_cursor cvg_field_cursor; /* walks a record */
typedef struct cvg_key_cursor cvg_key_cursor;     /* walks records */

/* ---- Replica ------------------------------------------------------------- */

typedef enum cvg_durability {
    /** Default. A commit returns after the data is synced to disk (one
     * fsync): an acknowledged write survives a crash or a power cut. */
    CVG_DURABLE = 0,
    /** Commits do not wait for the disk. A crash of the process loses
     * nothing, but a crash of the operating system or a power cut before
     * the next cvg_replica_flush() may lose the last commits or leave the
     * file damaged (LMDB gives no integrity guarantee for unsynced pages
     * written through its map). Opt in only where the data can be rebuilt,
     * e.g. a cache, or a bulk load followed by cvg_replica_flush(). */
    CVG_RELAXED = 1
} cvg_durability;

/** Bytes of an identity's Ed25519 public and secret keys (libsodium's
 * crypto_sign format: the secret key holds the public key too). */
#define CVG_PUBLIC_KEY_BYTES 32
#define CVG_SECRET_KEY_BYTES 64

/** Gives a replica's secret key (for a key kept in an OS keychain, say):
 * write CVG_SECRET_KEY_BYTES into @p sk_out and return 0, or non-zero to
 * refuse (the open then fails with CVG_EKEY). Called during
 * cvg_replica_open(), on its thread; @p sk_out is wiped after use. */
typedef int (*cvg_key_fn)(void *ctx, uint8_t *sk_out);

/** Reads the wall clock in milliseconds since 1970. Tests plug in their own. */
typedef uint64_t (*cvg_clock_fn)(void *ctx);

/* ---- Conflict strategies and events -------------------------------------- */

/** How concurrent writes to a register are settled, per collection. Every
 * replica must use the same strategies to pick the same winners; each
 * replica stores its own (see cvg_replica_options.policies), so every
 * process that opens it reads the same. Counters and sets never conflict:
 * their concurrent writes all count. */
typedef enum cvg_strategy {
    /** Default: the write with the higher (hybrid clock, origin id) wins,
     * field by field. */
    CVG_STRATEGY_LWW = 0,
    /** One replica's writes (say, the server's) win over concurrent writes
     * by others (priority_wins), or lose to them (!priority_wins, "client
     * wins"); between writes of equal rank, LWW decides. */
    CVG_STRATEGY_PRIORITY = 1,
    /** For multi-value registers: concurrent values are handed to the
     * resolver, whose value is written back as an op that replaces them.
     * Without a resolver the siblings stay readable. LWW registers of the
     * collection use LWW. */
    CVG_STRATEGY_RESOLVER = 2
} cvg_strategy;

/**
 * Merge concurrent values of a multi-value register into one.
 * Called on the thread that fed the sync session, while the page that
 * brought the conflict is applied (its value commits with the page), with
 * every one of the @p n siblings in canonical order (valid for the call).
 * Write the result to @p out (a view that must stay valid until the
 * function returns to the library: point into @p siblings or into memory
 * of @p ctx). Return 0 to write it back, non-zero to leave the siblings.
 * It may not call the library.
 */
typedef int (*cvg_resolver_fn)(void *ctx, const cvg_key *key,
                               const cvg_value *siblings, size_t n,
                               cvg_value *out);

typedef struct cvg_collection_policy {
    const char *collection; /* copied at open */
    cvg_strategy strategy;
    cvg_replica_id priority_origin; /* PRIORITY: the ranked replica */
    bool priority_wins;             /* PRIORITY: its writes win (else lose) */
    cvg_resolver_fn resolver;       /* RESOLVER */
    void *resolver_ctx;
} cvg_collection_policy;

/** What a conflict event reports: a write from a peer met a concurrent
 * write to the same register here. Views valid for the call only. */
typedef struct cvg_conflict {
    cvg_bytes collection;
    cvg_bytes key;
    cvg_bytes field;
    cvg_type type;    /* CVG_TYPE_REGISTER or CVG_TYPE_MVREGISTER */
    cvg_value local;  /* the value read here before */
    cvg_value remote; /* the peer's value */
    /* The value read here now. For a multi-value register: the resolver's
     * value when this replica's resolver settled the conflict; else the
     * sibling the collection's strategy puts first (every sibling is kept:
     * read them with cvg_mvregister_get()). */
    cvg_value resolved;
    cvg_strategy strategy;
    cvg_dot remote_dot;
    /* How many values the register holds now: 1 for a LWW register or a
     * resolved one, 2 or more for siblings. */
    uint32_t siblings;
} cvg_conflict;

/** Called once per conflict, on the thread that fed the sync session,
 * after the ops that caused it were committed. It may read the replica
 * (begin a read transaction) but not write. */
typedef void (*cvg_conflict_fn)(void *ctx, const cvg_conflict *c);

/* Sync events (start, end, error) are described with the sessions below. */
typedef struct cvg_sync_event cvg_sync_event;
typedef void (*cvg_sync_fn)(void *ctx, const cvg_sync_event *e);

#define CVG_OPTIONS_VERSION 1

typedef struct cvg_replica_options {
    uint32_t version;            /* CVG_OPTIONS_VERSION */
    size_t map_size;             /* initial LMDB map size; default 64 MiB */
    size_t map_size_max;         /* grow the map up to this; default 16 GiB */
    cvg_durability durability;   /* default CVG_DURABLE */
    uint64_t max_clock_ahead_ms; /* the clock never runs further ahead
                                    of the wall clock: remote times past
                                    it are taken but not followed, and
                                    a clock found past it resumes from
                                    the wall; default 60000 (one minute) */
    bool no_create;              /* fail with CVG_ENOTFOUND if missing */
    bool read_only;              /* open for reading only */
    cvg_clock_fn clock;          /* wall clock; default CLOCK_REALTIME_COARSE
                                    (the last tick's time, 1-4 ms old) */
    void *clock_ctx;
    /* Conflict strategies by collection (copied at open); collections not
     * listed use CVG_STRATEGY_LWW. They decide what reads return, so the
     * replica stores them: the first open that gives them stores them; an
     * open that gives none adopts the stored ones (resolver callbacks
     * cannot be stored: without one, a RESOLVER collection keeps its
     * siblings); an open that gives others fails with CVG_EPOLICY unless
     * replace_policies is set, which stores the given ones instead. */
    const cvg_collection_policy *policies;
    size_t n_policies;
    bool replace_policies;
    cvg_conflict_fn on_conflict; /* NULL: no events */
    void *conflict_ctx;
    cvg_sync_fn on_sync; /* sync start, end and errors; NULL */
    void *sync_ctx;
    /* The replica's identity: an Ed25519 key pair, made when the replica
     * is created, its origin id derived from the public key. By default
     * the secret key is kept in the replica directory (identity.key, mode
     * 0600). An app may supply it instead, as bytes or through a callback
     * (then nothing is written): at creation it becomes the identity; at a
     * later open it must be that identity's (else CVG_EKEY). */
    const uint8_t *secret_key; /* CVG_SECRET_KEY_BYTES, or NULL */
    cvg_key_fn key_fn;         /* used when secret_key is NULL */
    void *key_ctx;
    /* Refuse remote ops stamped more than max_clock_ahead_ms ahead of the
     * wall clock (CVG_ECLOCK) instead of taking them: no stamp then claims
     * more than that, but a replica whose clock once jumped ahead is cut
     * off (its later ops wait behind the refused one) until this wall
     * clock catches up. Default false. */
    bool refuse_clock_ahead;
    /* Write state behind the log: a commit of many fields stores their new
     * state in a journal (a few pages in a row) and keeps it in memory,
     * and after every 65,536 values a checkpoint writes what the journal
     * holds into the state table in key order, spread over
     * journal_checkpoint_commits commits. Commits that change fields
     * spread over a large replica (random keys, set elements) then run
     * about 2x faster (measured durable), at a cost: up to 64 MiB of
     * memory for what waits in the journal, the checkpoint's rewrite of
     * the leaves it touches, a data file larger than without it until a
     * compaction (1.5x to 2x the pages in use in the bench, against about
     * 1.3x), and reads a little slower while the journal holds the field.
     * Commits whose fields the journal holds nothing of write the state
     * table directly when they are small (at most 64 fields) or their
     * fields lie together there (new keys in order, many fields of one
     * record), where the journal would not pay. Every open, of any
     * process, reads what a journal holds. Default false (see
     * docs/architecture.md, State written behind a journal). */
    bool journal_state;
    /* With journal_state: a checkpoint is spread over this many commits,
     * each writing a slice of the keys (in key order) besides its own
     * journal record, so that no one commit is slow and the file grows
     * less; fewer make the checkpoint cost less CPU in all and more in one
     * commit (1: all in one commit). 0 takes the default, 4. */
    uint32_t journal_checkpoint_commits;
} cvg_replica_options;

/** Fill @p opts with the defaults above. */
CVG_API void cvg_replica_options_init(cvg_replica_options *opts);

/**
 * Open the replica in directory @p path, creating the directory and a new
 * replica (with a fresh random id) if missing, unless opts->no_create.
 *
 * Opening reads a few meta records; it never replays the log. It also
 * settles the conflict strategies with those the replica stores (see
 * cvg_replica_options.policies).
 *
 * Ownership: @p path and @p opts are borrowed for the call (the policies
 * are copied). Close the handle with cvg_replica_close().
 * Thread safety: any thread; a failure's detail is the calling thread's
 * cvg_replica_errmsg(NULL). While cvg_replica_compact() runs on the
 * directory (in any process), the open waits for it to end.
 *
 * @param[in]  path  Directory.
 * @param[in]  opts  NULL for the defaults (cvg_replica_options_init()).
 * @param[out] out   The handle; NULL on error.
 * @return CVG_OK, or a negative code and no handle:
 *   - CVG_EINVAL    NULL @p out or @p path, options of an unknown version,
 *                   a bad durability or policy, one collection twice.
 *   - CVG_ENOTFOUND @p path is missing, or holds no replica, and
 *                   no_create or read_only is set.
 *   - CVG_EBUSY     this process has the directory open already.
 *   - CVG_EVERSION  written by a newer format of the library.
 *   - CVG_ECORRUPT  not a replica, its meta records are damaged, or its
 *                   data file is truncated or damaged where the open
 *                   checks it (LMDB's meta pages and root pages).
 *   - CVG_EKEY      the secret key supplied (opts->secret_key or key_fn)
 *                   is not this replica's identity, not a key pair, or the
 *                   callback refused.
 *   - CVG_EPOLICY   @p opts gives other conflict strategies than the ones
 *                   the replica stores, without replace_policies.
 *   - CVG_EACCES    no permission on the directory or its files.
 *   - CVG_EFULL, CVG_ELIMIT  no room to create it; LMDB's reader table is
 *                   full.
 *   - CVG_ENOSPC    no space left on the device to create the replica or
 *                   its lock file.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; an I/O error.
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_replica_open(const char *path,
                                           const cvg_replica_options *opts,
                                           cvg_replica **out);

/** Close @p r, storing what its sessions learned and not yet stored (best
 * effort: the next session learns it again). Accepts NULL. Every
 * transaction, cursor and session of @p r must be ended first. */
CVG_API void cvg_replica_close(cvg_replica *r);

/**
 * Detail on the last failure on @p r (which key, op, message or file), as
 * a sentence: valid until the next call on @p r. With @p r NULL, the detail
 * of the calling thread's last failed cvg_replica_open() (there is no
 * handle to ask then), valid until that thread's next open. Never NULL.
 * @since 0.1 (NULL since 0.2)
 */
CVG_API const char *cvg_replica_errmsg(const cvg_replica *r);

/** The replica's id into @p out (both non-NULL). */
CVG_API void cvg_replica_id_get(const cvg_replica *r, cvg_replica_id *out);

/** Write @p id as 32 lowercase hex digits and a NUL into @p buf (33 bytes). */
CVG_API void cvg_replica_id_hex(const cvg_replica_id *id, char buf[33]);

/**
 * The replica's public key (its identity) into @p out.
 *
 * @return CVG_OK, or:
 *   - CVG_EINVAL    NULL argument.
 *   - CVG_ENOTFOUND the replica was made by version 0.1, before replicas
 *                   had identities.
 * @since 0.2
 */
CVG_API CVG_NODISCARD int cvg_replica_public_key(const cvg_replica *r,
                                                 uint8_t *out);

/**
 * Make a new identity: an Ed25519 key pair from the system's random
 * source (libsodium), for a replica to be created with it
 * (cvg_replica_options.secret_key). Keep @p sk secret; wipe it after use.
 *
 * @param[out] pk  CVG_PUBLIC_KEY_BYTES.
 * @param[out] sk  CVG_SECRET_KEY_BYTES.
 * @return CVG_OK, or CVG_EINVAL (NULL argument), CVG_EIO (libsodium cannot
 *   start).
 * @since 0.2
 */
CVG_API CVG_NODISCARD int cvg_identity_generate(uint8_t *pk, uint8_t *sk);

/** The origin id of the identity with public key @p pk: the first 16 bytes
 * of its BLAKE2b hash (keyed for this use), so every replica can check that
 * an origin is bound to its key. */
CVG_API void cvg_identity_origin(const uint8_t *pk, cvg_replica_id *out);

/**
 * The origins this replica wrote under before it found itself copied.
 *
 * A replica remembers where it lives (device, inodes and birth times of
 * its directory and data file). A writable open that finds it elsewhere
 * (cp -r, a backup restored, a data file written over) keeps all it holds
 * but writes from then on under a new origin, derived from the same key,
 * so that the copy and the original never make two different ops under
 * one seq. The
 * replica's id (cvg_replica_id_get()) is then the new origin; the origins
 * left behind are listed here, oldest first, each with the last seq
 * written under it. A rename changes nothing.
 *
 * @param[in]  r          The replica.
 * @param[out] out        Up to @p cap entries (NULL with cap 0 to count).
 * @param[in]  cap        Room in @p out.
 * @param[out] count_out  How many there are in all.
 * @return CVG_OK, or:
 *   - CVG_EINVAL    NULL argument.
 *   - CVG_ECORRUPT  the record is damaged.
 *   - CVG_ELIMIT    LMDB's reader table is full.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; an I/O error.
 * @since 0.2
 */
CVG_API CVG_NODISCARD int cvg_replica_previous_origins(cvg_replica *r,
                                                       cvg_dot *out, size_t cap,
                                                       size_t *count_out);

/** A fork: two histories of one origin, both signed by its key. */
typedef struct cvg_fork {
    cvg_replica_id origin;
    uint64_t seq;      /* where the other history's signed head is */
    uint64_t our_seq;  /* where the signed head of ours is (0: none) */
    uint64_t found_ms; /* when it was found (the replica's clock) */
} cvg_fork;

/**
 * The origins found to have forked.
 *
 * Every sync compares the history heads of the origins both sides hold.
 * Where one origin's key signed two different histories (a cloned key, a
 * copy of a replica that was not noticed as one), the replica keeps the
 * two signed heads as proof, reports a CVG_SYNC_EVENT_FORK, and refuses
 * that origin's ops from then on (CVG_EEQUIVOCAL). What it holds of the
 * origin stays. See docs/architecture.md, "Forks", for recovery.
 *
 * @param[in]  r          The replica.
 * @param[out] out        Up to @p cap entries (NULL with cap 0 to count).
 * @param[in]  cap        Room in @p out.
 * @param[out] count_out  How many there are in all.
 * @return CVG_OK, or:
 *   - CVG_EINVAL    NULL argument.
 *   - CVG_ECORRUPT  a record is damaged.
 *   - CVG_ELIMIT    LMDB's reader table is full.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; an I/O error.
 * @since 0.2
 */
CVG_API CVG_NODISCARD int cvg_replica_forks(cvg_replica *r, cvg_fork *out,
                                            size_t cap, size_t *count_out);

/**
 * Force everything committed to disk (what a CVG_RELAXED replica's commits
 * did not wait for), after storing the sync status that waits for the next
 * commit (what sessions learned of their peers). A durable replica's
 * commits are on disk already; this then only stores that status.
 *
 * @param[in] r  The replica; no write transaction of it may be open
 *               (then its commit stores the status instead).
 * @return CVG_OK, or:
 *   - CVG_EINVAL  NULL @p r.
 *   - CVG_EFULL   no room left to store the status.
 *   - CVG_ENOSPC  no space left on the device to store it.
 *   - CVG_EBUSY   another process wrote while the map was being grown.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; the sync to disk failed.
 * @since 0.2 (named cvg_replica_sync in 0.1)
 */
CVG_API CVG_NODISCARD int cvg_replica_flush(cvg_replica *r);

/** Storage figures of a replica. */
typedef struct cvg_replica_stats {
    uint64_t op_count;   /* ops in the log */
    uint64_t last_lsn;   /* lsn of the newest op; 0 if none */
    uint64_t file_bytes; /* bytes the data file uses (pages in use) */
    uint64_t map_bytes;  /* current map size */
    uint64_t hlc;        /* the replica's clock */
    size_t origins;      /* replicas whose ops are here */
} cvg_replica_stats;

/**
 * Storage figures of @p r, as committed now.
 *
 * @param[in]  r     The replica.
 * @param[out] out   Filled in; zeroed on error.
 * @param[in]  size  sizeof *out as the caller was built: a struct of an
 *                   older release gets the fields it has, a newer one gets
 *                   zeros past ours.
 * @return CVG_OK, or:
 *   - CVG_EINVAL    NULL argument, or @p size smaller than this release's
 *                   struct of version 0.2.
 *   - CVG_ECORRUPT  the meta records are damaged.
 *   - CVG_ELIMIT    LMDB's reader table is full.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; an I/O error.
 * @since 0.1 (@p size since 0.2)
 */
CVG_API CVG_NODISCARD int cvg_replica_stats_get(cvg_replica *r,
                                                cvg_replica_stats *out,
                                                size_t size);

/** What cvg_replica_check() found. */
typedef struct cvg_check_report {
    uint64_t pages;         /* pages of the data file's trees, each checked */
    uint64_t records;       /* records, each with its checksum checked */
    uint64_t log_blocks;    /* op blocks of the log, each decoded whole */
    uint64_t log_ops;       /* ops in them */
    uint64_t state_records; /* state records, each decoded */
    uint64_t origins;       /* entries of the origin table */
    uint64_t snapshot;      /* the LMDB transaction checked */
    char problem[256];      /* the first damage found; "" when none */
} cvg_check_report;

/**
 * Check the replica in directory @p path from end to end (what
 * `converge check DIR` runs), without changing it.
 *
 * First every page of its data file is read and checked by hand, before
 * LMDB maps any of it, so a damaged page the open does not reach is found
 * here instead of faulting or aborting inside LMDB. Then, opened read-only,
 * in one transaction: every record's checksum (a replica of format 1, not
 * yet upgraded by a writable open, has none to check); every log block
 * decoded whole, lsns and each origin's seqs without holes; the dots index
 * and the version vector against the log; every state record decoded, and
 * every write it keeps found in the log as an op on that field (a
 * register's value and time, a set element, a counter's last add).
 * docs/architecture.md says what the check does not prove and the ways
 * back from a failed one.
 *
 * The replica must not be open in this process (LMDB allows one handle per
 * process); other processes may use it meanwhile.
 *
 * @param[in]  path  The replica directory.
 * @param[out] out   Counts, and on CVG_ECORRUPT the first problem in a
 *                   sentence.
 * @return CVG_OK when every check passed, or:
 *   - CVG_ECORRUPT  damage found: out->problem says where.
 *   - CVG_ENOTFOUND no replica in @p path.
 *   - CVG_EBUSY     this process has the replica open.
 *   - CVG_EVERSION  a newer format than this library's.
 *   - CVG_EINVAL    NULL argument.
 *   - CVG_ENOMEM, CVG_EIO, CVG_EACCES  out of memory; an I/O error; no
 *                   permission to read it.
 * @since 0.2
 */
CVG_API CVG_NODISCARD int cvg_replica_check(const char *path,
                                            cvg_check_report *out);

/**
 * The checks of cvg_replica_check() on a replica this process holds open,
 * for an app that cannot close it: the pages of the snapshot checked are
 * read by hand before any record of it is read. What the open itself read
 * through LMDB was read before any check (the open checks only the file's
 * meta and root pages), so to check a replica that may be damaged before
 * using it, call cvg_replica_check() before opening it.
 *
 * @param[in]  r    The replica; no write transaction open on it.
 * @param[out] out  As for cvg_replica_check().
 * @return CVG_OK when every check passed, or:
 *   - CVG_ECORRUPT  damage found: out->problem says where.
 *   - CVG_EBUSY     a write transaction is open on @p r.
 *   - CVG_EINVAL    NULL argument.
 *   - CVG_ELIMIT    LMDB's reader table is full.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; an I/O error.
 * @since 0.2
 */
CVG_API CVG_NODISCARD int cvg_replica_verify(cvg_replica *r,
                                             cvg_check_report *out);

/** What cvg_replica_compact() did. */
typedef struct cvg_compact_report {
    uint64_t bytes_before; /* the data file's size before */
    uint64_t bytes_after;  /* ... and after (0 when it failed) */
    uint64_t live_pages;   /* pages its trees used, found by the page walk */
    char problem[256];     /* why it failed; "" when it did not */
} cvg_compact_report;

/**
 * Rewrite the data file of the replica in directory @p path without its
 * free pages (what `converge compact DIR` runs). LMDB reuses the pages a
 * commit frees but never gives them back, so a file whose records were
 * rewritten many times stays at its largest; after a compaction it holds
 * the pages its trees use and two meta pages.
 *
 * No handle of any process may have the replica open meanwhile, and an
 * open that comes during the compaction waits until it is over. The pages
 * are first walked as cvg_replica_check() walks them; then a compacted copy
 * is written beside the file, synced, and renamed over it, so a crash at
 * any point leaves either the old file or the new one, whole. Nothing of
 * the replica changes but the file's size: every record, lsn and
 * checksum is copied as it is.
 *
 * @param[in]  path  The replica directory.
 * @param[out] out   The sizes, and on failure the reason in a sentence.
 * @return CVG_OK when the compacted file is in place, or:
 *   - CVG_EBUSY     the replica is open, in this process or another.
 *   - CVG_ECORRUPT  the page walk found damage: nothing was changed.
 *   - CVG_ENOTFOUND no replica in @p path.
 *   - CVG_ENOSPC    no room for the copy beside the file: nothing was
 *                   changed (the copy takes about the live pages' size).
 *   - CVG_EINVAL    NULL argument.
 *   - CVG_ENOMEM, CVG_EIO, CVG_EACCES  out of memory; an I/O error; no
 *                   permission.
 * @since 0.2
 */
CVG_API CVG_NODISCARD int cvg_replica_compact(const char *path,
                                              cvg_compact_report *out);

/* ---- Transactions ------------------------------------------------------- */

#define CVG_TXN_READ_ONLY 1u

/**
 * Begin a transaction. A write transaction (flags 0) batches many writes:
 * they become visible to its own reads at once, and to everyone else, with
 * their ops in the log, at cvg_txn_commit(). Only one write transaction is
 * open per replica at a time (CVG_EBUSY for a second one in this process;
 * a writer of another process makes this call wait). A read transaction
 * (CVG_TXN_READ_ONLY) sees a snapshot and never blocks writers.
 *
 * Ownership: end @p *out with cvg_txn_commit() or cvg_txn_abort().
 * Thread safety: a write transaction must end on the thread that began it
 * (LMDB's writer lock belongs to that thread); a read transaction may move
 * between threads between calls.
 *
 * @param[in]  r      The replica.
 * @param[in]  flags  0, or CVG_TXN_READ_ONLY.
 * @param[out] out    The transaction; NULL on error.
 * @return CVG_OK, or:
 *   - CVG_EINVAL    NULL argument or unknown flags.
 *   - CVG_EBUSY     a write transaction of this replica is open, or other
 *                   processes kept growing the map while this one adopted
 *                   it (retry).
 *   - CVG_EREADONLY a write transaction on a replica opened read-only.
 *   - CVG_ECORRUPT  the meta records another process wrote are damaged.
 *   - CVG_ELIMIT    LMDB's reader table is full.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; an I/O error.
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_txn_begin(cvg_replica *r, unsigned flags,
                                        cvg_txn **out);

/**
 * Commit: append the transaction's ops to the log and store the merged
 * state, version vector and clock, atomically. On any error nothing of the
 * transaction is stored. The handle is freed either way. A read
 * transaction just ends.
 *
 * When the LMDB map is full, the map is grown (up to map_size_max) and the
 * commit written again; past that it fails with CVG_EFULL. A full disk is
 * CVG_ENOSPC at once: what was committed before stays, and commits work
 * again once space is freed.
 *
 * @param[in] txn  The transaction; freed by the call.
 * @return CVG_OK, or a negative code and nothing stored:
 *   - CVG_EINVAL    NULL @p txn.
 *   - CVG_EFULL     the map reached map_size_max, or read transactions of
 *                   this process keep it from growing.
 *   - CVG_ENOSPC    no space left on the device holding the replica.
 *   - CVG_EBUSY     another process committed while the map was being
 *                   grown: begin again and retry.
 *   - CVG_ECORRUPT, CVG_ENOMEM, CVG_EIO  the error that failed the
 *                   transaction earlier (see the writes), or one of the
 *                   commit itself.
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_txn_commit(cvg_txn *txn);

/** Abandon the transaction: nothing of it is stored. Accepts NULL. */
CVG_API void cvg_txn_abort(cvg_txn *txn);

/** The replica that @p txn belongs to. */
CVG_API cvg_replica *cvg_txn_replica(cvg_txn *txn);

/* ---- Writes from many threads: group commit ------------------------------ */

/** The work of one cvg_replica_write(): writes and reads through @p txn.
 * Return CVG_OK to keep them, any other code to undo them all (that code
 * is the call's result). It must not commit or abort @p txn (both are
 * refused), nor call cvg_replica_write() or cvg_replica_lock() on its
 * replica (CVG_EBUSY). */
typedef int cvg_write_fn(cvg_txn *txn, void *ctx);

/**
 * Run @p fn in a write transaction and commit it, sharing the commit, and
 * in durable mode its sync to disk, with the calls that other threads make
 * at the same time (group commit). Returns once the group is committed:
 * CVG_OK means the writes of @p fn are stored as a commit of their own
 * would be (durable, in CVG_DURABLE). The calls that arrive while a group
 * is being committed form the next one, so threads that each commit one op
 * share a sync instead of queueing for one each.
 *
 * Any number of threads may call this at once on one replica, and need no
 * lock of their own for it. Every other use of the replica while such
 * calls may be running goes between cvg_replica_lock() and
 * cvg_replica_unlock() (a group takes that lock while it runs).
 *
 * @p fn runs on whichever calling thread commits the group, inside the
 * replica's lock, between the other calls' functions. Each call is all or
 * nothing: when @p fn (or another call's) fails, the group is undone and
 * run again without it, so @p fn may run more than once and must act only
 * through @p txn (no side effects it cannot repeat). Calls of one thread
 * commit in the order made; calls of different threads, in some order.
 * cvg_replica_errmsg() is the handle's and may already hold the detail of
 * another call's failure; read it under the replica's lock.
 *
 * Calls of other processes on the same directory are not grouped with
 * these: each process commits its own groups, one at a time, as LMDB
 * serializes their writers.
 *
 * Example: threads each record sales through the app's function
 * int sell(cvg_txn *t, void *sku) { cvg_key k = {"stock", sku, "qty"};
 * return cvg_counter_add(t, &k, -1, NULL); }, from any thread:
 *     if (cvg_replica_write(r, sell, "sku-1") != CVG_OK) {
 *         // nothing of this sale was stored
 *     }
 *
 * @param[in] r    The replica.
 * @param[in] fn   The writes.
 * @param[in] ctx  Passed to @p fn.
 * @return CVG_OK, or a negative code and nothing of @p fn stored:
 *   - CVG_EINVAL   NULL @p r or @p fn.
 *   - CVG_EBUSY    this thread holds the replica's lock (or this is a
 *                  call from inside @p fn of another call); or the codes
 *                  of cvg_txn_begin().
 *   - CVG_EREADONLY the replica was opened read-only.
 *   - CVG_ELIMIT   @p fn alone wrote more than CVG_TXN_OPS_MAX ops.
 *   - what @p fn returned when it was not CVG_OK: usually the code of a
 *     write that failed (CVG_ETYPE, CVG_EOVERFLOW, CVG_ETOOBIG, ...).
 *   - CVG_EFULL, CVG_ENOSPC, CVG_EIO, CVG_ENOMEM, CVG_ECORRUPT  the
 *     commit failed (see cvg_txn_commit()): every call of that group
 *     gets the code.
 * @since 0.2
 */
CVG_API CVG_NODISCARD int cvg_replica_write(cvg_replica *r, cvg_write_fn *fn,
                                            void *ctx);

/**
 * Take the replica's lock, waiting for the group commit or syncer turn
 * under way to end. While cvg_replica_write() calls or a background syncer
 * may be running, the app holds this lock around all its other use of the
 * replica: each transaction from begin to end, its reads,
 * cvg_replica_errmsg() after a failure. A group commit and the syncer
 * take the same lock (cvg_syncer_lock() is this lock). Not recursive.
 *
 * @return CVG_OK, or:
 *   - CVG_EINVAL  NULL @p r.
 *   - CVG_EBUSY   this thread holds it already (it would wait for itself),
 *                 or runs a cvg_replica_write() function of @p r.
 * Thread safety: any thread; unlock on the thread that locked.
 * @since 0.2
 */
CVG_API int cvg_replica_lock(cvg_replica *r);

/** Give back the replica's lock taken by this thread (anything else,
 * NULL included, is ignored). @since 0.2 */
CVG_API void cvg_replica_unlock(cvg_replica *r);

/* Every write below, in a write transaction:
 *   - fixes the field's type at its first write (CVG_ETYPE if it holds
 *     another type);
 *   - stamps the op with the next dot and a tick of the hybrid logical clock;
 *   - writes nothing on error, and the transaction stays usable; except
 *     that a failure after the state changed (out of memory or storage while
 *     logging the op) fails the whole transaction: every later call returns
 *     that error and commit aborts, so a change without its op is never
 *     stored;
 *   - gives the new op's dot in @p dot_out if not NULL (zeroed on error).
 * Common codes: CVG_EINVAL (NULL or empty name), CVG_ETOOBIG (names longer
 * than CVG_NAME_MAX together, a value longer than CVG_VALUE_MAX),
 * CVG_EREADONLY, CVG_ETYPE, CVG_ELIMIT (more than CVG_TXN_OPS_MAX ops),
 * CVG_ENOMEM, CVG_EIO, CVG_ECORRUPT (stored state damaged). */

/* ---- Counter ------------------------------------------------------------ */

/**
 * Add @p delta (negative to subtract) to a PN-counter: a counter.add op
 * and the new value land together when @p txn commits. A first write fixes
 * the field's type.
 *
 * Ownership: @p key and the value are borrowed for the call.
 * Thread safety: that of @p txn.
 *
 * @param[in]  txn      A write transaction.
 * @param[in]  key      Collection, key and field.
 * @param[out] dot_out  If not NULL, the new op's dot; zeroed on error.
 * @return CVG_OK, or a negative code and nothing written:
 *   - CVG_EINVAL    NULL argument, an empty name, a delta of 0.
 *   - CVG_ETOOBIG   names longer than CVG_NAME_MAX together.
 *   - CVG_EREADONLY @p txn is a read transaction.
 *   - CVG_ETYPE     the field holds a live value of another type.
 *   - CVG_EOVERFLOW the value, or this replica's own total of adds to the
 *                   field, would leave the int64 range.
 *   - CVG_ECLOCK    the hybrid logical clock is exhausted, or the wall
 *                   clock is out of range.
 *   - CVG_ELIMIT    more than CVG_TXN_OPS_MAX ops in the transaction.
 *   - CVG_EFULL, CVG_ECORRUPT  no room to write the transaction's changes
 *                   where a check needs them; stored state is damaged.
 *   - CVG_ENOSPC    no space left on the device to write them.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; an I/O error. After the state
 *                   changed, these fail the whole transaction (every later
 *                   call returns the code, and commit stores nothing).
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_counter_add(cvg_txn *txn, const cvg_key *key,
                                          int64_t delta, cvg_dot *dot_out);

/**
 * The counter's value as @p txn sees it (with its own writes).
 *
 * The value is the exact sum of every replica's contributions, whatever
 * order they arrived in. Each replica's own adds keep the value in range
 * where they were made, but concurrent adds merged from several replicas can
 * sum past either end of int64: such a value reads as CVG_EOVERFLOW (the
 * same on every replica that has the same ops), and reads normally again
 * once later adds bring the sum back into range.
 *
 * Ownership: @p key is borrowed for the call; *out is set (0 when not found,
 * INT64_MAX or INT64_MIN on CVG_EOVERFLOW, the side the true sum lies on).
 * Thread safety: that of @p txn.
 *
 * @return CVG_OK, or:
 *   - CVG_EINVAL    NULL argument, an empty name.
 *   - CVG_ETOOBIG   names longer than CVG_NAME_MAX together.
 *   - CVG_ENOTFOUND the field holds no live value of this type.
 *   - CVG_ETYPE     the field holds a live value of another type.
 *   - CVG_EOVERFLOW the merged sum is outside the int64 range.
 *   - CVG_EFULL, CVG_ECORRUPT  no room to write the transaction's changes
 *                   where a read needs them; stored state is damaged.
 *   - CVG_ENOSPC    no space left on the device to write them.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; an I/O error.
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_counter_get(cvg_txn *txn, const cvg_key *key,
                                          int64_t *out);

/* ---- Last-writer-wins register ----------------------------------------- */

/**
 * Set the last-writer-wins register to @p value. Among concurrent writes,
 * the one with the higher (hybrid clock, origin id) wins on every replica
 * (or the collection's strategy decides).
 *
 * Ownership: @p key and the value are borrowed for the call.
 * Thread safety: that of @p txn.
 *
 * @param[in]  txn      A write transaction.
 * @param[in]  key      Collection, key and field.
 * @param[out] dot_out  If not NULL, the new op's dot; zeroed on error.
 * @return CVG_OK, or a negative code and nothing written:
 *   - CVG_EINVAL    NULL argument, an empty name, a malformed value.
 *   - CVG_ETOOBIG   names longer than CVG_NAME_MAX together, a value longer
 *                   than CVG_VALUE_MAX.
 *   - CVG_EREADONLY @p txn is a read transaction.
 *   - CVG_ETYPE     the field holds a live value of another type.
 *   - CVG_ECLOCK    the hybrid logical clock is exhausted, or the wall
 *                   clock is out of range.
 *   - CVG_ELIMIT    more than CVG_TXN_OPS_MAX ops in the transaction.
 *   - CVG_EFULL, CVG_ECORRUPT  no room to write the transaction's changes
 *                   where a check needs them; stored state is damaged.
 *   - CVG_ENOSPC    no space left on the device to write them.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; an I/O error. After the state
 *                   changed, these fail the whole transaction (every later
 *                   call returns the code, and commit stores nothing).
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_register_set(cvg_txn *txn, const cvg_key *key,
                                           const cvg_value *value,
                                           cvg_dot *dot_out);

/**
 * The LWW register's value under the collection's strategy (LWW by
 * default), as @p txn sees it, with its own writes. A multi-value register
 * is read with cvg_mvregister_get() (here it is CVG_ETYPE).
 *
 * Ownership: @p key is borrowed for the call; *out is a view valid until @p txn
 * ends or its next write.
 * Thread safety: that of @p txn.
 *
 * @return CVG_OK, or:
 *   - CVG_EINVAL    NULL argument, an empty name.
 *   - CVG_ETOOBIG   names longer than CVG_NAME_MAX together.
 *   - CVG_ENOTFOUND the field holds no live value of this type.
 *   - CVG_ETYPE     the field holds a live value of another type.
 *   - CVG_EFULL, CVG_ECORRUPT  no room to write the transaction's changes
 *                   where a read needs them; stored state is damaged.
 *   - CVG_ENOSPC    no space left on the device to write them.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; an I/O error.
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_register_get(cvg_txn *txn, const cvg_key *key,
                                           cvg_value *out);

/* ---- Multi-value register --------------------------------------------- */

/**
 * Set the multi-value register to @p value, replacing every sibling this
 * replica has seen. Siblings written concurrently elsewhere stay beside
 * it.
 *
 * Ownership: @p key and the value are borrowed for the call.
 * Thread safety: that of @p txn.
 *
 * @param[in]  txn      A write transaction.
 * @param[in]  key      Collection, key and field.
 * @param[out] dot_out  If not NULL, the new op's dot; zeroed on error.
 * @return CVG_OK, or a negative code and nothing written:
 *   - CVG_EINVAL    NULL argument, an empty name, a malformed value.
 *   - CVG_ETOOBIG   names longer than CVG_NAME_MAX together, a value longer
 *                   than CVG_VALUE_MAX.
 *   - CVG_EREADONLY @p txn is a read transaction.
 *   - CVG_ETYPE     the field holds a live value of another type.
 *   - CVG_ECLOCK    the hybrid logical clock is exhausted, or the wall
 *                   clock is out of range.
 *   - CVG_ELIMIT    more than CVG_TXN_OPS_MAX ops in the transaction.
 *   - CVG_EFULL, CVG_ECORRUPT  no room to write the transaction's changes
 *                   where a check needs them; stored state is damaged.
 *   - CVG_ENOSPC    no space left on the device to write them.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; an I/O error. After the state
 *                   changed, these fail the whole transaction (every later
 *                   call returns the code, and commit stores nothing).
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_mvregister_set(cvg_txn *txn, const cvg_key *key,
                                             const cvg_value *value,
                                             cvg_dot *dot_out);

/**
 * The register's siblings, in a canonical order (by origin id, then seq)
 * that is the same on every replica. Writes up to @p cap values into
 * @p out and their dots into @p dots if not NULL; the total count goes to
 * @p count_out, which may be larger than @p cap (count 0 when not found).
 *
 * Ownership: @p key is borrowed for the call; the values are views valid until
 * @p txn ends or its next write.
 * Thread safety: that of @p txn.
 *
 * @return CVG_OK, or:
 *   - CVG_EINVAL    NULL argument, an empty name.
 *   - CVG_ETOOBIG   names longer than CVG_NAME_MAX together.
 *   - CVG_ENOTFOUND the field holds no live value of this type.
 *   - CVG_ETYPE     the field holds a live value of another type.
 *   - CVG_EFULL, CVG_ECORRUPT  no room to write the transaction's changes
 *                   where a read needs them; stored state is damaged.
 *   - CVG_ENOSPC    no space left on the device to write them.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; an I/O error.
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_mvregister_get(cvg_txn *txn, const cvg_key *key,
                                             cvg_value *out, cvg_dot *dots,
                                             size_t cap, size_t *count_out);

/* ---- Observed-remove set ----------------------------------------------- */

/**
 * Add @p element to the observed-remove set. An add concurrent with a
 * remove of the same element wins.
 *
 * Ownership: @p key and the value are borrowed for the call.
 * Thread safety: that of @p txn.
 *
 * @param[in]  txn      A write transaction.
 * @param[in]  key      Collection, key and field.
 * @param[out] dot_out  If not NULL, the new op's dot; zeroed on error.
 * @return CVG_OK, or a negative code and nothing written:
 *   - CVG_EINVAL    NULL argument, an empty name, a malformed element.
 *   - CVG_ETOOBIG   names longer than CVG_NAME_MAX together, an element longer
 *                   than CVG_VALUE_MAX.
 *   - CVG_EREADONLY @p txn is a read transaction.
 *   - CVG_ETYPE     the field holds a live value of another type.
 *   - CVG_ECLOCK    the hybrid logical clock is exhausted, or the wall
 *                   clock is out of range.
 *   - CVG_ELIMIT    more than CVG_TXN_OPS_MAX ops in the transaction.
 *   - CVG_EFULL, CVG_ECORRUPT  no room to write the transaction's changes
 *                   where a check needs them; stored state is damaged.
 *   - CVG_ENOSPC    no space left on the device to write them.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; an I/O error. After the state
 *                   changed, these fail the whole transaction (every later
 *                   call returns the code, and commit stores nothing).
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_set_add(cvg_txn *txn, const cvg_key *key,
                                      const cvg_value *element,
                                      cvg_dot *dot_out);

/**
 * Remove @p element as this replica has seen it: its adds that this
 * replica has are removed everywhere; adds made concurrently elsewhere stay.
 *
 * Ownership: @p key and the value are borrowed for the call.
 * Thread safety: that of @p txn.
 *
 * @param[in]  txn      A write transaction.
 * @param[in]  key      Collection, key and field.
 * @param[out] dot_out  If not NULL, the new op's dot; zeroed on error.
 * @return CVG_OK, or a negative code and nothing written:
 *   - CVG_EINVAL    NULL argument, an empty name, a malformed element.
 *   - CVG_ETOOBIG   names longer than CVG_NAME_MAX together, an element longer
 *                   than CVG_VALUE_MAX.
 *   - CVG_EREADONLY @p txn is a read transaction.
 *   - CVG_ETYPE     the field holds a live value of another type.
 *   - CVG_ENOTFOUND the element is not in the set (nothing written).
 *   - CVG_ECLOCK    the hybrid logical clock is exhausted, or the wall
 *                   clock is out of range.
 *   - CVG_ELIMIT    more than CVG_TXN_OPS_MAX ops in the transaction.
 *   - CVG_EFULL, CVG_ECORRUPT  no room to write the transaction's changes
 *                   where a check needs them; stored state is damaged.
 *   - CVG_ENOSPC    no space left on the device to write them.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; an I/O error. After the state
 *                   changed, these fail the whole transaction (every later
 *                   call returns the code, and commit stores nothing).
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_set_remove(cvg_txn *txn, const cvg_key *key,
                                         const cvg_value *element,
                                         cvg_dot *dot_out);

/**
 * Whether @p element is in the set; *out is false for a missing one.
 *
 * Ownership: @p key is borrowed for the call; *out is set. A missing set is
 * CVG_OK with false, not CVG_ENOTFOUND.
 * Thread safety: that of @p txn.
 *
 * @return CVG_OK, or:
 *   - CVG_EINVAL    NULL argument, an empty name.
 *   - CVG_ETOOBIG   names longer than CVG_NAME_MAX together.
 *   - CVG_ETYPE     the field holds a live value of another type.
 *   - CVG_ETOOBIG   an element longer than CVG_VALUE_MAX.
 *   - CVG_EFULL, CVG_ECORRUPT  no room to write the transaction's changes
 *                   where a read needs them; stored state is damaged.
 *   - CVG_ENOSPC    no space left on the device to write them.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; an I/O error.
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_set_contains(cvg_txn *txn, const cvg_key *key,
                                           const cvg_value *element, bool *out);

/**
 * Walk the set's elements, in an order that is the same on every replica
 * (by a hash of the element). A missing set walks nothing.
 *
 * In a write transaction it first writes the transaction's changes to its
 * store transaction, so the walk sees them; a later write in @p txn ends
 * the walk (CVG_EMISUSE from next).
 *
 * Ownership: @p key is borrowed for the call. Close the cursor with its close
 * function before @p txn
 * ends.
 * Thread safety: that of @p txn.
 *
 * @return CVG_OK, or:
 *   - CVG_EINVAL    NULL argument, an empty name.
 *   - CVG_ETOOBIG   names longer than CVG_NAME_MAX together.
 *   - CVG_ETYPE     the field holds a live value of another type.
 *   - CVG_EFULL, CVG_ECORRUPT  no room to write the transaction's changes;
 *                   stored state is damaged.
 *   - CVG_ENOSPC    no space left on the device to write them.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; an I/O error.
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_set_cursor_open(cvg_txn *txn, const cvg_key *key,
                                              cvg_set_cursor **out);
/**
 * The next element.
 *
 * Ownership: *out is a view valid until the next call or the end of the
 * transaction.
 *
 * @return CVG_OK, CVG_DONE after the last, or:
 *   - CVG_EINVAL    NULL argument.
 *   - CVG_EMISUSE   @p txn wrote, or replaced its store transaction, since
 *                   the cursor opened.
 *   - CVG_ECORRUPT  stored state is damaged.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; an I/O error.
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_set_cursor_next(cvg_set_cursor *cur,
                                              cvg_value *out);
CVG_API void cvg_set_cursor_close(cvg_set_cursor *cur);

/* ---- Records ------------------------------------------------------------ */

/**
 * Delete the record (collection, key): every field value, sibling, set
 * element and counter contribution that this replica has seen is removed.
 * Writes made concurrently elsewhere survive the delete. @p key->field is
 * ignored.
 *
 * Ownership: @p key and the value are borrowed for the call.
 * Thread safety: that of @p txn.
 *
 * @param[in]  txn      A write transaction.
 * @param[in]  key      Collection, key and field.
 * @param[out] dot_out  If not NULL, the new op's dot; zeroed on error.
 * @return CVG_OK, or a negative code and nothing written:
 *   - CVG_EINVAL    NULL argument, an empty name.
 *   - CVG_ETOOBIG   names longer than CVG_NAME_MAX together.
 *   - CVG_EREADONLY @p txn is a read transaction.
 *   - CVG_ENOTFOUND the record has no live field (nothing written).
 *   - CVG_ECLOCK    the hybrid logical clock is exhausted, or the wall
 *                   clock is out of range.
 *   - CVG_ELIMIT    more than CVG_TXN_OPS_MAX ops in the transaction.
 *   - CVG_EFULL, CVG_ECORRUPT  no room to write the transaction's changes
 *                   where a check needs them; stored state is damaged.
 *   - CVG_ENOSPC    no space left on the device to write them.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; an I/O error. After the state
 *                   changed, these fail the whole transaction (every later
 *                   call returns the code, and commit stores nothing).
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_record_delete(cvg_txn *txn, const cvg_key *key,
                                            cvg_dot *dot_out);

/**
 * Walk the live fields of record (key->collection, key->key) in byte order
 * of the field name, then type (a field may hold several types, written
 * apart on different replicas).
 *
 * In a write transaction it first writes the transaction's changes to its
 * store transaction, so the walk sees them; a later write in @p txn ends
 * the walk (CVG_EMISUSE from next).
 *
 * Ownership: @p key is borrowed for the call; key->field is ignored. Close the
 * cursor with its close function before @p txn
 * ends.
 * Thread safety: that of @p txn.
 *
 * @return CVG_OK, or:
 *   - CVG_EINVAL    NULL argument, an empty name.
 *   - CVG_ETOOBIG   names longer than CVG_NAME_MAX together.
 *   - CVG_EFULL, CVG_ECORRUPT  no room to write the transaction's changes;
 *                   stored state is damaged.
 *   - CVG_ENOSPC    no space left on the device to write them.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; an I/O error.
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_field_cursor_open(cvg_txn *txn,
                                                const cvg_key *key,
                                                cvg_field_cursor **out);
/**
 * The next field: its name and its type.
 *
 * Ownership: *field_out is a view valid until the next call; its bytes are
 * followed
 * by a NUL, so (const char *)field_out->data is the name as a C string.
 *
 * @return CVG_OK, CVG_DONE after the last, or:
 *   - CVG_EINVAL    NULL argument.
 *   - CVG_EMISUSE   @p txn wrote, or replaced its store transaction, since
 *                   the cursor opened.
 *   - CVG_ECORRUPT  stored state is damaged.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; an I/O error.
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_field_cursor_next(cvg_field_cursor *cur,
                                                cvg_bytes *field_out,
                                                cvg_type *type_out);
CVG_API void cvg_field_cursor_close(cvg_field_cursor *cur);

/**
 * Walk the records (collection, key) that have live fields, in byte order;
 * @p collection NULL for every collection.
 *
 * In a write transaction it first writes the transaction's changes to its
 * store transaction, so the walk sees them; a later write in @p txn ends
 * the walk (CVG_EMISUSE from next).
 *
 * Ownership: @p collection is borrowed for the call. Close the cursor with its
 * close function before @p txn
 * ends.
 * Thread safety: that of @p txn.
 *
 * @return CVG_OK, or:
 *   - CVG_EINVAL    NULL argument, an empty name.
 *   - CVG_ETOOBIG   a collection longer than CVG_NAME_MAX.
 *   - CVG_EFULL, CVG_ECORRUPT  no room to write the transaction's changes;
 *                   stored state is damaged.
 *   - CVG_ENOSPC    no space left on the device to write them.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; an I/O error.
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_key_cursor_open(cvg_txn *txn,
                                              const char *collection,
                                              cvg_key_cursor **out);
/**
 * The next record.
 *
 * Ownership: the views are valid until the next call; each is followed by a
 * NUL,
 * so (const char *)collection_out->data is a C string, and so is the key.
 *
 * @return CVG_OK, CVG_DONE after the last, or:
 *   - CVG_EINVAL    NULL argument.
 *   - CVG_EMISUSE   @p txn wrote, or replaced its store transaction, since
 *                   the cursor opened.
 *   - CVG_ECORRUPT  stored state is damaged.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; an I/O error.
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_key_cursor_next(cvg_key_cursor *cur,
                                              cvg_bytes *collection_out,
                                              cvg_bytes *key_out);
CVG_API void cvg_key_cursor_close(cvg_key_cursor *cur);

/* ---- The op log ---------------------------------------------------------- */

typedef enum cvg_op_kind {
    CVG_OP_COUNTER_ADD = 1,
    CVG_OP_REGISTER_SET = 2,
    CVG_OP_MVREGISTER_SET = 3,
    CVG_OP_SET_ADD = 4,
    CVG_OP_SET_REMOVE = 5,
    CVG_OP_RECORD_DELETE = 6
} cvg_op_kind;

/** A decoded op, as the log cursor gives it. Views are valid until the next
 * call on the cursor. */
typedef struct cvg_op {
    uint64_t lsn; /* position in this replica's log, from 1 */
    cvg_dot dot;
    uint64_t hlc; /* hybrid logical clock: ms << 16 | logical */
    cvg_op_kind kind;
    cvg_bytes collection;
    cvg_bytes key;
    cvg_bytes field; /* empty for CVG_OP_RECORD_DELETE */
    int64_t delta;   /* CVG_OP_COUNTER_ADD */
    cvg_value value; /* register and set ops */
    /* What the writer had seen and replaces: for register sets the dots of
     * the siblings it replaced, for set removes the element's tags, for a
     * record delete the writer's version vector. */
    const cvg_dot *observed;
    size_t observed_count;
} cvg_op;

/**
 * Walk the log from lsn @p from (1 or 0 for the start), in log order,
 * which is a causal order.
 *
 * In a write transaction it first writes the transaction's changes to its
 * store transaction, so the walk sees them; a later write in @p txn ends
 * the walk (CVG_EMISUSE from next).
 *
 * Ownership: nothing is borrowed. Close the cursor with its close function
 * before @p txn
 * ends.
 * Thread safety: that of @p txn.
 *
 * @return CVG_OK, or:
 *   - CVG_EINVAL    NULL argument, an empty name.
 *   - CVG_EFULL, CVG_ECORRUPT  no room to write the transaction's changes;
 *                   stored state is damaged.
 *   - CVG_ENOSPC    no space left on the device to write them.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; an I/O error.
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_log_cursor_open(cvg_txn *txn, uint64_t from,
                                              cvg_log_cursor **out);
/**
 * The next op.
 *
 * Ownership: the views in *out are valid until the next call; names are
 * followed
 * by a NUL (C strings).
 *
 * @return CVG_OK, CVG_DONE after the last, or:
 *   - CVG_EINVAL    NULL argument.
 *   - CVG_EMISUSE   @p txn wrote, or replaced its store transaction, since
 *                   the cursor opened.
 *   - CVG_ECORRUPT  stored state is damaged.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; an I/O error.
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_log_cursor_next(cvg_log_cursor *cur, cvg_op *out);
CVG_API void cvg_log_cursor_close(cvg_log_cursor *cur);

/** Split a hybrid logical clock value into wall milliseconds and counter. */
static inline uint64_t
cvg_hlc_millis(uint64_t hlc)
{
    return hlc >> 16;
}
static inline uint16_t
cvg_hlc_logical(uint64_t hlc)
{
    return (uint16_t)(hlc & 0xFFFFu);
}

/* ---- Version vector ----------------------------------------------------- */

/**
 * The version vector as the transaction sees it: for each origin, the
 * highest seq such that all its ops 1..seq are here. Writes up to @p cap
 * entries (as dots, sorted by origin id) into @p out; the total count goes
 * to @p count_out, which may be larger than @p cap.
 *
 * @return CVG_OK, or CVG_EINVAL (NULL @p txn or @p count_out, or NULL
 *   @p out with @p cap above 0).
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_txn_version_vector(cvg_txn *txn, cvg_dot *out,
                                                 size_t cap, size_t *count_out);

/* ---- Sync sessions (sans-IO) -------------------------------------------- */

/* A session exchanges ops with one peer through messages the app carries
 * (any transport: a socket, HTTP, a file on a USB stick). It never touches
 * the network itself: the app sends what cvg_session_output() gives and
 * feeds what arrives to cvg_session_input().
 *
 * Both sides send HELLO (id, version vector), then each pulls the other's
 * log in pages from where its last sync with that peer stopped. A page is a
 * causally closed prefix of the sender's log, applied in one transaction
 * together with the new position, so a sync cut off at any byte leaves both
 * replicas valid, and the next session resumes without sending everything
 * again. Each page is acknowledged: the receiver's ACK says, per origin and
 * seq range, which ops it took and which it had already, or names the op
 * it refused and why (then the session ends); the sender's sync status and
 * queue record it (see cvg_sync_status_get(), cvg_sync_failed()).
 *
 * A session belongs to its replica's thread; it opens and commits its own
 * transactions, so no write transaction of the replica may be open during
 * cvg_session_input(). */
typedef struct cvg_session cvg_session;

#define CVG_SESSION_OPTIONS_VERSION 4

typedef struct cvg_session_options {
    uint32_t version;  /* CVG_SESSION_OPTIONS_VERSION */
    uint32_t page_ops; /* most ops per page; default 65536 */
    /* Most bytes per page, roughly; default 1 MiB. A page received may
     * exceed what our PULL asked for only by what a sender adds to end at
     * a signature point and finish an op; past that it is CVG_ELIMIT. PUSH
     * pages hold at most 1 MiB (and 65536 ops) whatever this says. */
    uint32_t page_bytes;
    bool no_pull;  /* do not ask the peer for its ops */
    bool no_serve; /* refuse the peer's pulls */
    /* Version 2. Send our own ops unasked (PUSH), instead of having the
     * peer pull them: for clients of a server, which then keeps no
     * position in each client's log. Ops we relay from others are not
     * pushed (the server had them first); the peer does not pull from us. */
    bool push;
    /* Version 3. Bytes both ends' transport agrees on and no one else can
     * reuse, such as an encrypted channel's handshake hash (at most 64).
     * Each side proves its identity by signing the other's challenge
     * together with them, so a proof cannot be replayed into another
     * channel. Borrowed for the cvg_session_open() call. */
    cvg_bytes channel_binding;
    /* Version 4. Ask for a live session: once done it stays open, and
     * what either side commits later reaches the other when its app calls
     * cvg_session_refresh(). Live only if both sides ask
     * (cvg_session_live()); else the session is done as usual. */
    bool live;
} cvg_session_options;

CVG_API void cvg_session_options_init(cvg_session_options *o);

/** Counts of what a session moved. */
typedef struct cvg_session_stats {
    uint64_t ops_received;  /* applied here */
    uint64_t ops_duplicate; /* received but already here */
    uint64_t ops_sent;
    uint64_t conflicts; /* register writes that met concurrent ones */
    uint64_t bytes_received;
    uint64_t bytes_sent;
    uint64_t pages_received;
    uint64_t pages_sent;
    cvg_replica_id peer; /* zero until the peer's HELLO */
} cvg_session_stats;

/**
 * Start a session with one peer; its HELLO is the first output.
 *
 * Each side's HELLO carries its id, its public key and a fresh challenge;
 * each then proves its key with a signature over the other's challenge and
 * the channel binding (PROVE). A peer whose id is not its key's, or whose
 * proof fails, ends the session with CVG_EFORGED; until it has proved its
 * key, nothing it says is stored (status, positions) and its pages are
 * refused. The replica needs its secret key for this (the key file, or
 * cvg_replica_options.secret_key or key_fn).
 *
 * Ownership: @p opts is copied (a version 1 or 2 struct is read as such).
 * Close the session with cvg_session_close().
 * Thread safety: the session belongs to its replica's thread.
 *
 * @param[in]  r     The replica.
 * @param[in]  opts  NULL for the defaults (cvg_session_options_init()).
 * @param[out] out   The session; NULL on error.
 * @return CVG_OK, or:
 *   - CVG_EINVAL    NULL @p r or @p out, options of an unknown version, a
 *                   channel binding over 64 bytes.
 *   - CVG_EKEY      the replica has no secret key to prove its identity
 *                   with (opened without it, or made by version 0.1).
 *   - CVG_ECORRUPT  the replica's meta records are damaged.
 *   - CVG_ELIMIT    LMDB's reader table is full.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; an I/O error.
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_session_open(cvg_replica *r,
                                           const cvg_session_options *opts,
                                           cvg_session **out);

/**
 * The next message to send.
 *
 * Ownership: *msg_out is a view owned by the session, valid until the
 * next call on @p s.
 *
 * @return CVG_OK with a message, CVG_DONE when there is nothing to send
 *   until more input comes, or CVG_EINVAL (NULL argument).
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_session_output(cvg_session *s,
                                             cvg_bytes *msg_out);

/**
 * Feed one message from the peer. A page of ops is applied and committed,
 * with the new position and the settled conflicts, before this returns;
 * conflict and sync events fire on this thread.
 *
 * An error ends the session, and an ERROR message for the peer is queued
 * as output; later calls return the same code. A failed session changes no
 * data: a page is applied whole or not at all. cvg_replica_errmsg() names
 * the op or message at fault.
 *
 * Ownership: @p msg is borrowed for the call.
 *
 * @return CVG_OK, or:
 *   - CVG_EINVAL    NULL @p s (or NULL @p msg with a length), or the peer
 *                   is this replica.
 *   - CVG_ECORRUPT  a malformed message, or malformed ops in a page.
 *   - CVG_EVERSION  another protocol version (older ones lack the
 *                   identity proof), or a newer block encoding.
 *   - CVG_EGAP      ops whose dependencies are missing here.
 *   - CVG_ECLOCK    ops too far ahead of the local clock, with
 *                   refuse_clock_ahead set.
 *   - CVG_EEQUIVOCAL an op under a dot this replica has, with other
 *                   content.
 *   - CVG_EFORGED   an op in this replica's name that it never made, a
 *                   version vector claiming such ops (forged, or this replica was
 *                   restored in place from an older copy), a peer id not
 *                   derived from its key, or an identity proof that fails.
 *   - CVG_ELIMIT    a page larger than the PULL asked for, or whose
 *                   results would not fit an ACK.
 *   - CVG_EPROTO    a message out of turn or inconsistent with the
 *                   session: a page or ACK nobody asked for, a page before
 *                   the peer proved its key, a HELLO from a second peer, a
 *                   cursor past the end of the log, an ACK of ops our
 *                   pages never carried (or refusing more than one), a
 *                   version vector out of order or not matching its
 *                   digest, a second request for the whole vector.
 *   - CVG_EACCES    a PULL to a session opened with no_serve.
 *   - CVG_EPEER     the peer sent ERROR.
 *   - CVG_EBUSY     a write transaction of the replica is open.
 *   - CVG_EFULL, CVG_ENOMEM, CVG_EIO  storage full; out of memory; an I/O
 *                   error.
 *   - CVG_ENOSPC    no space left on the device to store what it got.
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_session_input(cvg_session *s, const void *msg,
                                            size_t len);

/** Whether both directions are complete: everything each side had at the
 * start has reached the other. In a live session, whether both sides are
 * caught up for now: it turns false again when either side's refresh
 * offers more. */
CVG_API bool cvg_session_done(const cvg_session *s);

/** Whether @p s is live: both sides asked for it (cvg_session_options.live)
 * and the peer's HELLO is in. False for NULL. @since 0.2 */
CVG_API bool cvg_session_live(const cvg_session *s);

/**
 * Say that the replica committed since the session opened (or since the
 * last refresh), so that a live session offers the new ops: to a peer
 * that pulls from us, a HAVE with our log's new end (it pulls on from
 * its position); as a pusher, PUSH pages of our new own ops (after the
 * ACK of a push under way). Then send what cvg_session_output() gives. A
 * refresh before the peer's HELLO is done once it comes; in a session
 * that is not live it does nothing. Cheap when nothing is new (one read
 * transaction), so a server may refresh every session after each commit.
 *
 * @return CVG_OK, or:
 *   - CVG_EINVAL    NULL @p s.
 *   - the error that ended the session, if one did.
 *   - CVG_ELIMIT    LMDB's reader table is full.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; an I/O error (the session ends
 *                   with it).
 * @since 0.2
 */
CVG_API CVG_NODISCARD int cvg_session_refresh(cvg_session *s);

/** The error that ended the session, or CVG_OK. */
CVG_API int cvg_session_error(const cvg_session *s);

/** What @p s moved so far into @p out; @p size is sizeof *out as the
 * caller was built (see cvg_replica_stats_get()). Does nothing for a NULL
 * argument or a @p size smaller than this struct of version 0.2. */
CVG_API void cvg_session_stats_get(const cvg_session *s, cvg_session_stats *out,
                                   size_t size);

/** What the peer's ACKs said of the ops of the pages @p s sent it (ops of
 * every origin: ours and those we relay). The peer answers every page it
 * commits with the seq ranges it took and those it had already, and a page
 * it refuses with the one op it refused and the code, then an ERROR. Our
 * own ops it confirms count as committed there (cvg_sync_status_get());
 * our own op it refuses is failed with that code (cvg_sync_failed()). An
 * ACK repeated by the transport counts again here. @since 0.2 */
typedef struct cvg_session_acks {
    uint64_t taken;     /* applied there */
    uint64_t duplicate; /* there already */
    uint64_t refused;   /* refused there (the page was not kept) */
} cvg_session_acks;

/** What the peer's ACKs said so far into @p out; @p size is sizeof *out as
 * the caller was built. Does nothing for a NULL argument or a @p size
 * smaller than this struct of version 0.2. @since 0.2 */
CVG_API void cvg_session_acks_get(const cvg_session *s, cvg_session_acks *out,
                                  size_t size);

/** End @p s and free it, handing what it learned of its peer to the
 * replica (stored with its next commit). Accepts NULL. */
CVG_API void cvg_session_close(cvg_session *s);

/**
 * Sync two replicas of this process both ways, by running two sessions
 * against each other in memory (the protocol, not a shortcut). Stats of
 * @p a's session go to @p stats_out if not NULL.
 *
 * @return CVG_OK when both sessions are done, or the first error of either
 *   side:
 *   - CVG_EINVAL    NULL @p s (or NULL @p msg with a length), or the peer
 *                   is this replica.
 *   - CVG_ECORRUPT  a malformed message, or malformed ops in a page.
 *   - CVG_EVERSION  another protocol version (older ones lack the
 *                   identity proof), or a newer block encoding.
 *   - CVG_EGAP      ops whose dependencies are missing here.
 *   - CVG_ECLOCK    ops too far ahead of the local clock, with
 *                   refuse_clock_ahead set.
 *   - CVG_EEQUIVOCAL an op under a dot this replica has, with other
 *                   content.
 *   - CVG_EFORGED   an op in this replica's name that it never made, a
 *                   version vector claiming such ops (forged, or this replica was
 *                   restored in place from an older copy), a peer id not
 *                   derived from its key, or an identity proof that fails.
 *   - CVG_ELIMIT    a page larger than the PULL asked for, or whose
 *                   results would not fit an ACK.
 *   - CVG_EPROTO    a message out of turn or inconsistent with the
 *                   session: a page or ACK nobody asked for, a page before
 *                   the peer proved its key, a HELLO from a second peer, a
 *                   cursor past the end of the log, an ACK of ops our
 *                   pages never carried (or refusing more than one), a
 *                   version vector out of order or not matching its
 *                   digest, a second request for the whole vector.
 *   - CVG_EACCES    a PULL to a session opened with no_serve.
 *   - CVG_EPEER     the peer sent ERROR.
 *   - CVG_EBUSY     a write transaction of the replica is open.
 *   - CVG_EFULL, CVG_ENOMEM, CVG_EIO  storage full; out of memory; an I/O
 *                   error.
 *   - CVG_ENOSPC    no space left on the device to store what it got.
 *   - CVG_EKEY      a replica has no secret key (see cvg_session_open()).
 *   - CVG_EMISUSE   the protocol stalled (a defect of the library).
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_sync_local(cvg_replica *a, cvg_replica *b,
                                         cvg_session_stats *stats_out);

/* ---- Sync status and queue ---------------------------------------------- */

/* Relative to a peer (typically the server), every op this replica made is
 * pending (the peer has not got it yet), syncing (sent in a page the peer
 * has not yet acknowledged), committed (the peer has it: its HELLO or its
 * ACK said so) or failed (the peer's ACK named it refused, with the error;
 * the other ops of that page were not kept there and stay pending). This
 * is stored with the replica, so it survives restarts. */

typedef enum cvg_sync_state {
    CVG_SYNC_OFFLINE = 0, /* no session now; ops may be pending */
    CVG_SYNC_SYNCED = 1,  /* the last session completed; nothing pending */
    CVG_SYNC_SYNCING = 2, /* a session with the peer is open */
    CVG_SYNC_ERROR = 3    /* the last session ended with an error */
} cvg_sync_state;

/** Bytes of cvg_sync_status.address, its NUL included: room for the
 * longest "[IPv6]:PORT" (53 characters). */
#define CVG_SYNC_ADDRESS_MAX 64

/** Where this replica's own ops stand with one peer, and what it knows of
 * that peer. Times are wall milliseconds of the replica's clock
 * (cvg_replica_options.clock), 0 for never. */
typedef struct cvg_sync_status {
    cvg_sync_state state;
    uint64_t pending;         /* our ops the peer has not got yet */
    uint64_t syncing;         /* ... sent in pages it has not confirmed yet */
    uint64_t committed;       /* ... it has (our seqs 1..committed) */
    uint64_t failed;          /* ... it refused (cvg_sync_failed() says why) */
    uint64_t last_sync_ms;    /* the last session that completed ended */
    uint64_t last_attempt_ms; /* the last session began (the peer's HELLO) */
    int last_error;           /* CVG_OK or the code that ended the last one */
    /* The fields below were appended after 0.2.0 (see the size parameter
     * of cvg_sync_status_get()). */
    /* The peer's Ed25519 public key, which its id is derived from; valid
     * when has_key, that is once the peer proved it holds the key in a
     * session (replicas that last met before this field was kept have
     * none until their next session). */
    uint8_t key[CVG_PUBLIC_KEY_BYTES];
    bool has_key;
    /* Where the peer was last seen: the far end of the last TCP connection
     * (made or accepted) of a session in which it proved its key, as
     * "IP:PORT" or "[IPv6]:PORT", NUL-terminated; for a client that
     * connected to us, the port is the one it connected from. "" if
     * unknown: it was only met in sessions of this process
     * (cvg_sync_local()) or over a transport of the app's own. At most
     * CVG_SYNC_ADDRESS_MAX - 1 characters, all printable ASCII. */
    char address[CVG_SYNC_ADDRESS_MAX];
    /* The last message of the peer in a session in which it had proved its
     * key (the proof itself included); 0 if never. */
    uint64_t last_contact_ms;
} cvg_sync_status;

/**
 * The sync status of this replica's own ops relative to @p peer. A peer
 * never synced with gives OFFLINE with everything pending. What sessions
 * learned and not yet stored is included.
 *
 * @param[in]  r     The replica.
 * @param[in]  peer  The peer's id.
 * @param[out] out   Filled in; zeroed on error.
 * @param[in]  size  sizeof *out as the caller was built: a struct of an
 *                   older release gets the fields it has (one built
 *                   before key was appended ends at last_error), a newer
 *                   one gets zeros past ours.
 * @return CVG_OK, or:
 *   - CVG_EINVAL    NULL argument, or @p size smaller than
 *                   offsetof(cvg_sync_status, key), the struct of 0.2.0.
 *   - CVG_ECORRUPT  a peer record is damaged (a length past its bytes, an
 *                   address too long or not printable).
 *   - CVG_ELIMIT    LMDB's reader table is full.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; an I/O error.
 * @since 0.1 (@p size since 0.2; key, address and last contact after
 *        0.2.0)
 */
CVG_API CVG_NODISCARD int cvg_sync_status_get(cvg_replica *r,
                                              const cvg_replica_id *peer,
                                              cvg_sync_status *out,
                                              size_t size);

/**
 * The peers this replica has synced with: up to @p cap ids into @p out, the
 * total in @p count_out (which may be larger than @p cap).
 *
 * @return CVG_OK, or:
 *   - CVG_EINVAL    NULL @p r or @p count_out, or NULL @p out with @p cap
 *                   above 0.
 *   - CVG_ECORRUPT  a peer record is damaged.
 *   - CVG_ELIMIT    LMDB's reader table is full.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; an I/O error.
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_sync_peers(cvg_replica *r, cvg_replica_id *out,
                                         size_t cap, size_t *count_out);

/** An op the peer refused. */
typedef struct cvg_failed_op {
    uint64_t seq; /* the op's dot is (this replica, seq) */
    int code;     /* why: CVG_ECLOCK, CVG_EGAP, ... */
} cvg_failed_op;

/**
 * The ops @p peer refused (its ACK named each, with the code), oldest
 * first: up to @p cap into @p out, the total in @p count_out. An op stays
 * failed until cvg_sync_retry_failed() or until the peer has it (a later
 * session offers it again all the same).
 *
 * @return CVG_OK, or:
 *   - CVG_EINVAL    NULL argument, or NULL @p out with @p cap above 0.
 *   - CVG_ECORRUPT  a peer or refused-op record is damaged.
 *   - CVG_ELIMIT    LMDB's reader table is full.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; an I/O error.
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_sync_failed(cvg_replica *r,
                                          const cvg_replica_id *peer,
                                          cvg_failed_op *out, size_t cap,
                                          size_t *count_out);

/**
 * Make the ops @p peer refused pending again: the next session offers
 * them again (after the cause, such as a clock far ahead, is fixed). It
 * commits at once, with what waited for a commit.
 *
 * @return CVG_OK, or:
 *   - CVG_EINVAL    NULL argument.
 *   - CVG_EBUSY     a write transaction of the replica is open, or another
 *                   process wrote while the map was being grown.
 *   - CVG_EREADONLY the replica was opened read-only.
 *   - CVG_ECORRUPT  a peer record is damaged.
 *   - CVG_EFULL, CVG_ENOMEM, CVG_EIO  storage full; out of memory; an I/O
 *                   error.
 *   - CVG_ENOSPC    no space left on the device to store what it got.
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_sync_retry_failed(cvg_replica *r,
                                                const cvg_replica_id *peer);

/**
 * Forget what this replica believes about @p peer: the pull position in
 * its log, how far it has our ops, its status and the ops it refused. The
 * next session with it starts as with a peer never met (what it sends
 * again that is here already is skipped as duplicates). For a peer that
 * gave wrong positions (a restored copy, a forged HELLO).
 *
 * @return CVG_OK, or:
 *   - CVG_EINVAL    NULL argument.
 *   - CVG_EBUSY     a session with @p peer, or a write transaction, is
 *                   open; or another process wrote while the map grew.
 *   - CVG_EREADONLY the replica was opened read-only.
 *   - CVG_EFULL, CVG_ENOMEM, CVG_EIO  storage full; out of memory; an I/O
 *                   error.
 *   - CVG_ENOSPC    no space left on the device to store what it got.
 * @since 0.2
 */
CVG_API CVG_NODISCARD int cvg_sync_peer_forget(cvg_replica *r,
                                               const cvg_replica_id *peer);

/* The queue op by op: this replica's own ops that the peer does not have
 * yet, oldest first, each with its state (committed ops are not listed). */
typedef enum cvg_op_sync_state {
    CVG_OP_PENDING = 0, /* not offered to the peer yet, or offered again, or
                         * in a page the peer refused for another op */
    CVG_OP_SYNCING = 1, /* in a page of the open session, unacknowledged */
    CVG_OP_FAILED = 2   /* the peer refused it: see code */
} cvg_op_sync_state;

typedef struct cvg_queued_op {
    cvg_op op; /* views valid until the next call */
    cvg_op_sync_state state;
    int code; /* why, for CVG_OP_FAILED; else CVG_OK */
} cvg_queued_op;

/**
 * Walk the ops queued for @p peer: this replica's own ops the peer does
 * not have yet, oldest first, each with its state. It costs what is
 * queued, not the size of the log.
 *
 * Ownership: @p peer is borrowed for the call. Close the cursor with
 * cvg_sync_queue_close() before @p txn ends.
 * Thread safety: that of @p txn (read-only or write; a write in @p txn
 * ends the walk with CVG_EMISUSE).
 *
 * @return CVG_OK, or:
 *   - CVG_EINVAL    NULL argument.
 *   - CVG_ECORRUPT  a peer record or the log is damaged.
 *   - CVG_EFULL, CVG_ENOMEM, CVG_EIO  no room to write the transaction's
 *                   changes first; out of memory; an I/O error, or the
 *                   error that failed @p txn earlier.
 *   - CVG_ENOSPC    no space left on the device to write them.
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_sync_queue_open(cvg_txn *txn,
                                              const cvg_replica_id *peer,
                                              cvg_queue_cursor **out);
/**
 * The next queued op.
 *
 * Ownership: the views in out->op are valid until the next call; names are
 * followed by a NUL (C strings).
 *
 * @return CVG_OK, CVG_DONE after the last, or:
 *   - CVG_EINVAL    NULL argument.
 *   - CVG_EMISUSE   @p txn wrote, or replaced its store transaction, since
 *                   the cursor opened.
 *   - CVG_ECORRUPT  stored state is damaged.
 *   - CVG_ENOMEM, CVG_EIO  out of memory; an I/O error.
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_sync_queue_next(cvg_queue_cursor *cur,
                                              cvg_queued_op *out);
CVG_API void cvg_sync_queue_close(cvg_queue_cursor *cur);

typedef enum cvg_sync_event_kind {
    CVG_SYNC_EVENT_START = 1, /* the peer said hello */
    CVG_SYNC_EVENT_END = 2,   /* both directions complete */
    CVG_SYNC_EVENT_ERROR = 3, /* the session ended with an error */
    /* Two histories of one origin met: its key signed both. Its ops are
     * refused from now on (cvg_replica_forks()). @since 0.2 */
    CVG_SYNC_EVENT_FORK = 4
} cvg_sync_event_kind;

/** A sync event; called on the thread feeding the session. It may read the
 * replica but not write. */
struct cvg_sync_event {
    cvg_sync_event_kind kind;
    cvg_replica_id peer;
    cvg_session_stats stats; /* so far */
    int error;               /* ERROR: the code */
    cvg_dot fork; /* FORK: the origin, and the seq where the histories
                   * were compared */
};

#ifdef __cplusplus
}
#endif
#endif /* CONVERGE_H */
