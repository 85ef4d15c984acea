/*
 * src/oplog: durable storage. The op codec (msgpack-c for packing, a bounded
 * reader of our own for unpacking), the state record codec, the table of
 * origins, and the LMDB environment that holds the log, the dots index, the
 * merged state, the version vector and the meta records.
 */
#ifndef CVG_OPLOG_INT_H
#define CVG_OPLOG_INT_H

#include <stdbool.h>

#include "../crdt/crdt_int.h"

/* ---- Ops ----------------------------------------------------------------- */

/* The counter parts a record delete observed for one counter field. */
typedef struct cvg__delete_counter {
    cvg_bytes field;
    const cvg__counter_part *parts; /* sorted by origin */
    size_t n;
} cvg__delete_counter;

/* An op in full: the public view plus what only a record delete carries.
 * For a record delete, pub.observed holds the deleter's version vector as
 * dots (origin, seq), sorted by origin. */
typedef struct cvg__op {
    cvg_op pub;
    const cvg__delete_counter *counters;
    size_t n_counters;
} cvg__op;

/* Clear @p op, as every new op and every op read starts. Copied from a
 * zero op rather than memset: GCC clears a struct this size with `rep
 * stos`, whose start-up took two thirds of stamping a local op (perf,
 * relaxed increments), where a copy of known size is ten vector moves. */
static inline void
cvg__op_clear(cvg__op *op)
{
    static const cvg__op zero;
    memcpy(op, &zero, sizeof *op);
}

/* Caps the decoder enforces on hostile bytes. */
#define CVG__BLOCK_OPS_MAX CVG_TXN_OPS_MAX
/* Dots in one op. A record delete carries the deleter's whole version
 * vector, one dot per origin, so this must stay far above any origin count
 * a replica reaches; what bounds an op in practice is bytes: a dot takes at
 * least 2 bytes of its block (about 20 for an origin new to the block), and
 * a block travels in one message of at most 16 MiB. */
#define CVG__OBSERVED_MAX (1u << 24)
#define CVG__DICT_MAX 65536u /* names in one block */
/* Origins in one block's dictionary: one per dot of a record delete, so
 * bounded like CVG__OBSERVED_MAX (each new one costs 17 bytes or more). */
#define CVG__BLOCK_ORIGINS_MAX (1u << 24)
/* Counter fields in one record delete: no count a record reaches. A field
 * takes at least 3 bytes of its block, so the block's bytes bound them
 * first; the history's canonical bytes count them in 32 bits. */
#define CVG__DELETE_FIELDS_MAX UINT32_MAX

/* ---- Op blocks --------------------------------------------------------------
 * A block is a run of ops of one origin with consecutive seqs, encoded
 * compactly: the origin, first seq and base time once, then per op a kind,
 * a reference into a dictionary of (collection, key, field) names built as
 * the block goes, the time as a delta from the previous op, and the
 * payload. The log stores blocks; a page on the wire is a list of blocks. */

typedef struct cvg__block_writer {
    cvg__buf out; /* the encoded block so far (header last) */
    cvg_replica_id origin;
    uint64_t first_seq;
    uint64_t count;
    uint64_t first_hlc;
    uint64_t prev_hlc;
    void *dict; /* the writer's private name dictionary */
} cvg__block_writer;

/* Start a block for ops (origin, first_seq), (origin, first_seq + 1), ... */
int cvg__block_begin(cvg__block_writer *w, const cvg_replica_id *origin,
                     uint64_t first_seq);
/* Append @p op; its dot must be (origin, first_seq + count): else
 * CVG_EINVAL. */
int cvg__block_add(cvg__block_writer *w, const cvg__op *op);
/* The finished encoding; *bytes is valid until the writer is reset,
 * begun again or destroyed. */
int cvg__block_finish(cvg__block_writer *w, cvg_bytes *bytes);
/* Take a finished block up again: the ops added next continue it as if it
 * had never been finished (its dictionary, its open run), and finishing
 * gives the whole block. CVG_EMISUSE if it is not finished. */
int cvg__block_reopen(cvg__block_writer *w);
/* Whether the op of dot @p d would be the next of @p w's block: the same
 * origin, the next seq (blocks hold runs of one origin's ops). */
static inline bool
cvg__block_next_is(const cvg__block_writer *w, const cvg_dot *d)
{
    return cvg__id_cmp(&w->origin, &d->origin) == 0 &&
           w->first_seq + w->count == d->seq;
}
void cvg__block_writer_destroy(cvg__block_writer *w);

/* Ops into blocks, one run of an origin's consecutive seqs per block, each
 * block at most max_ops ops and about max_bytes bytes. A finished block is
 * handed to done (its bytes valid for the call; the run's writer still
 * says its origin, first seq and count). */
typedef struct cvg__block_run cvg__block_run;
struct cvg__block_run {
    cvg__block_writer w;
    bool open;
    size_t max_ops;
    size_t max_bytes;
    int (*done)(void *ctx, const cvg__block_run *r, cvg_bytes block);
    void *ctx;
};

int cvg__block_run_add(cvg__block_run *r, const cvg__op *op);
/* Finish the open block, if any, and hand it over. */
int cvg__block_run_close(cvg__block_run *r);
void cvg__block_run_destroy(cvg__block_run *r);

/* A reader over one encoded block. It never reads past the given bytes and
 * never allocates from a size it has not checked against what remains. */
typedef struct cvg__block_reader {
    const uint8_t *p;
    const uint8_t *end;
    cvg_replica_id origin;
    uint64_t first_seq;
    uint64_t count;
    uint64_t index; /* ops read so far */
    uint64_t hlc;   /* time of the last op read */
    void *scratch;  /* the reader's private dictionaries and arrays */
} cvg__block_reader;

/* Read the block header. CVG_ECORRUPT for malformed bytes, CVG_EVERSION for
 * a newer encoding. */
int cvg__block_open(cvg__block_reader *r, const uint8_t *data, size_t len);
/* The same for a block from a peer: its dictionary's whole names are held
 * to NAMES_WHOLE_PER_BYTE times its bytes (block_format.h), so a page
 * cannot name much more than it weighs; a block past it is CVG_ECORRUPT at
 * the op that passes. */
int cvg__block_open_received(cvg__block_reader *r, const uint8_t *data,
                             size_t len);
/* The next op: CVG_OK, CVG_DONE after the last (and then the block must end
 * exactly: trailing bytes are CVG_ECORRUPT), CVG_ECORRUPT, CVG_ENOMEM. Views
 * in @p out point into the block bytes or the reader's scratch, valid until
 * the next call. out->pub.lsn is 0: the log fills it in. */
int cvg__block_next(cvg__block_reader *r, cvg__op *out);
void cvg__block_reader_destroy(cvg__block_reader *r);
/* Whether an opened block is in the encoding this version writes (so its
 * bytes can be stored and served again as they are). */
bool cvg__block_is_current(const cvg__block_reader *r);

/* ---- Origins ---------------------------------------------------------------
 * Every origin id this replica has seen gets a small local index, so state
 * records store 1 byte instead of 16. Index 0 is the replica itself. */
typedef struct cvg__origins {
    cvg_replica_id *ids; /* by index */
    size_t n;
    size_t cap;
    uint32_t *slots; /* open addressing: index + 1, 0 = empty */
    size_t nslots;
} cvg__origins;

/* The index of @p id, adding it if new (*added true). */
int cvg__origins_index(cvg__origins *o, const cvg_replica_id *id,
                       uint32_t *idx_out, bool *added);
/* Look up without adding: CVG_ENOTFOUND if absent. */
int cvg__origins_find(const cvg__origins *o, const cvg_replica_id *id,
                      uint32_t *idx_out);
/* NULL if idx >= n. */
const cvg_replica_id *cvg__origins_id(const cvg__origins *o, uint32_t idx);
/* Forget the entries from index @p n on (a transaction that added them was
 * aborted). */
void cvg__origins_truncate(cvg__origins *o, size_t n);
void cvg__origins_destroy(cvg__origins *o);

/* ---- State records -----------------------------------------------------------
 * The merged state of one field (or one set element) as stored in LMDB.
 * Origins are written as local indexes through @p o. Decoding copies what it
 * keeps (values are deep-copied), so the result outlives the LMDB page. An
 * index unknown to @p o, or any malformed byte, is CVG_ECORRUPT. */
int cvg__state_encode_counter(const cvg__counter *c, cvg__origins *o,
                              cvg__buf *out);
int cvg__state_decode_counter(const uint8_t *p, size_t n, const cvg__origins *o,
                              cvg__counter *out);
int cvg__state_encode_reg(const cvg__reg *r, cvg__origins *o, cvg__buf *out);
int cvg__state_decode_reg(const uint8_t *p, size_t n, const cvg__origins *o,
                          cvg__reg *out);
/* A set element: the element value and its tags. */
int cvg__state_encode_elem(const cvg_value *elem, const cvg__tags *t,
                           cvg__origins *o, cvg__buf *out);
/* @p elem_out views into @p p (not copied); tags are decoded into @p out. */
int cvg__state_decode_elem(const uint8_t *p, size_t n, const cvg__origins *o,
                           cvg_value *elem_out, cvg__tags *out);

/* The canonical bytes of a value (its msgpack encoding): what a set
 * element's identity and hash are computed from. */
int cvg__value_encode(const cvg_value *v, cvg__buf *out);

/* ---- The LMDB environment ----------------------------------------------------
 * One environment per replica directory, with named databases:
 *   meta     small records: format version, replica id, clock, last lsn,
 *            commit generation
 *   log      last lsn of a block (u64 big-endian) -> encoded op block
 *   dots     origin (16) + last seq of a block (u64 BE) -> block's log key
 *   state    collection NUL key NUL field NUL type [element hash (16)]
 *            -> state record
 *   origins  local origin index (u32 BE) -> origin id (16) + VV seq (u64 BE)
 *   peers    peer id (16) -> what this replica knows of that peer
 *   queue    peer id (16) + seq (u64 BE) -> the code the peer refused our op
 *            with
 * Every LMDB call of the library is in src/oplog, and LMDB codes never leave
 * it: cvg__mdb_err() translates them. Floors above see a store transaction
 * only as an opaque pointer (LMDB's own type, never dereferenced there). */
#include <sys/types.h>

#include "overlay.h"

struct MDB_env;
struct MDB_txn;
struct MDB_cursor;
typedef struct MDB_txn cvg__store_txn;

/* What one open store transaction sees of the journal (journal.c). */
typedef struct cvg__view {
    const struct MDB_txn *t;
    uint64_t lo; /* its snapshot's checkpoint: older values are in state */
    uint64_t hi; /* its snapshot's last journal id (a writer's: its own) */
    bool write;
    bool sealed; /* a writer that wrote its record or a checkpoint */
    bool direct; /* a writer that wrote its records into the state table */
    /* A writer that wrote a slice of a spread checkpoint (journal.c): the
     * first, a later one, or the last (or a whole checkpoint). */
    enum {
        CVG__SLICE_NONE,
        CVG__SLICE_FIRST,
        CVG__SLICE_NEXT,
        CVG__SLICE_LAST
    } slice;
} cvg__view;

typedef struct cvg__store {
    struct MDB_env *env;
    unsigned int meta, log, dots, state, origins, peers, queue; /* MDB_dbi */
    unsigned int history; /* MDB_dbi, if has_history */
    bool has_history;     /* false: a read-only open of an older replica */
    unsigned int journal; /* MDB_dbi, if has_journal */
    bool has_journal;     /* false: a read-only open of an older replica */
    /* State records newer than the checkpoint (journal.c), and what each
     * open transaction sees of them. */
    cvg__overlay ov;
    cvg__view *views;
    size_t nviews, capviews;
    uint64_t loaded; /* journal records up to this id are in ov */
    uint64_t ckpt;   /* the newest checkpoint seen */
    uint64_t pruned; /* values up to this id are gone from ov */
    /* A commit that finds more values than this in the overlay, or more
     * bytes, makes a checkpoint instead of a journal record; one of at
     * most direct_max keys the overlay has none of writes the state table
     * itself, and so does a larger one of such keys that lie together in
     * the table, unless direct_max is 0 (journal.c). */
    size_t ov_max_values, ov_max_bytes, direct_max;
    /* A checkpoint is spread over this many commits, a slice of the keys
     * each, in key order (journal.c); 1: all in one. While one is under
     * way, cycle_start is the id of its first slice, cycle_resume the last
     * key it wrote, cycle_per the keys a slice writes; cycle_next the key
     * the open writer's slice ends on, taken at its commit. */
    size_t ckpt_slices;
    uint64_t cycle_start;
    size_t cycle_per;
    cvg__buf cycle_resume, cycle_next;
    /* Set by the floor above once the replica is open in full: only then
     * may a close write a checkpoint (not after an open that refused the
     * replica, say of a newer format). */
    bool checkpoint_at_close;
    /* Records end in a checksum (checksum.h): false only for a replica of
     * format 1 not yet upgraded. */
    bool checksummed;
    size_t map_size;
    size_t map_max;
    bool read_only;
    bool claimed; /* dev, ino are in this process's registry */
    dev_t dev;
    ino_t ino;
    /* The data file, opened by the store itself besides LMDB, for the
     * checks at open. -1 when closed. */
    int fd;
    /* lock.mdb, holding a shared flock() for as long as the store is open,
     * which keeps a compaction out (store_compact.c). -1 when none. */
    int lock_fd;
    char *path; /* the replica directory, for messages */
    char *err;  /* where failures are described (the replica's errmsg) */
    size_t errlen;
} cvg__store;

/* One handle per replica directory per process (store_registry.c):
 * CVG_EBUSY if this process has the directory open already. */
int cvg__store_claim(dev_t dev, ino_t ino);
void cvg__store_release(dev_t dev, ino_t ino);

/* Translate an LMDB or errno code into a CVG_E... code. */
int cvg__mdb_err(int rc);

/* Open (creating if allowed) the environment in @p path. @p err receives a
 * sentence on failure, and later failures of the store are described
 * there too. */
int cvg__store_open(cvg__store *s, const char *path,
                    const cvg_replica_options *o, char *err, size_t errlen);
void cvg__store_close(cvg__store *s);
/* Begin a store transaction, adopting a map grown by another process. */
int cvg__store_begin(cvg__store *s, bool write, cvg__store_txn **out);
/* End a transaction without storing anything; accepts NULL. */
void cvg__store_abort(cvg__store_txn *t);
/* Double the map (up to map_max): CVG_EFULL when already there. Only call
 * with no transaction of this process open. */
int cvg__store_grow(cvg__store *s);
/* Force what was committed to disk (the relaxed mode does not at commit). */
int cvg__store_flush(cvg__store *s);
/* Where the replica lives (home_mark.c): device, inode and birth time of
 * its directory, inode and birth time of its data file, as stored in the
 * meta record "home" to tell a copy or a restored backup from the replica
 * that wrote there. */
#define CVG__HOME_BYTES 40
int cvg__store_home(cvg__store *s, uint8_t out[CVG__HOME_BYTES]);
/* Bytes of the data file in use, and the map's size. */
void cvg__store_usage(cvg__store *s, uint64_t *file_bytes, uint64_t *map_bytes);

/* ---- The one commit path (commit.c) ---------------------------------------
 * Every write of the library ends here, so a full map, a full disk and every
 * LMDB code are handled in one place. A writer keeps what it writes in
 * memory until the commit succeeds; when the map fills, the transaction is
 * abandoned, the map grown, and the writer asked to write it all again into
 * a new one. */
typedef struct cvg__rewrite {
    /* Write everything again into @p t (a new transaction on a larger
     * map). */
    int (*fn)(void *ctx, cvg__store_txn *t);
    void *ctx;
    /* The commit generation the writer read its data at: if another
     * process committed meanwhile, what it holds is stale (CVG_EBUSY). */
    uint64_t gen;
    /* Read transactions of this process are open: the map cannot be
     * resized under them (CVG_EFULL). */
    bool readers_open;
} cvg__rewrite;

/* The map filled while writing into *t: abandon it, grow the map, begin
 * again and rewrite, until it fits. On success *t is the new transaction;
 * on error it is NULL and the store's message says why. */
int cvg__store_regrow(cvg__store *s, cvg__store_txn **t,
                      const cvg__rewrite *rw);
/* Commit *t, whose writes so far gave @p rc (CVG_OK, or CVG_EFULL to grow
 * first; any other code aborts). *t is NULL afterwards, committed or
 * not. */
int cvg__store_commit(cvg__store *s, cvg__store_txn **t, int rc,
                      const cvg__rewrite *rw);
/* Give every record of a replica of format 1 its checksum (checksum.h)
 * and make it format 2, in one write transaction; a replica another
 * process upgraded first is left as it is. Sets s->checksummed on
 * success. */
int cvg__ck_upgrade(cvg__store *s);
/* The full check (store_check.c). First, before LMDB opens the replica in
 * @p dir: every page of its data file read by hand and checked, so that
 * LMDB never meets a damaged page. Then, on the store opened read-only:
 * every record, block and index in one transaction. Both fill @p out and
 * return CVG_OK, CVG_ECORRUPT with out->problem saying what is damaged, or
 * the code that kept them from checking. */
int cvg__store_check_file(const char *dir, cvg_check_report *out);
/* cvg_replica_compact() (store_compact.c). */
int cvg__store_compact(const char *dir, cvg_compact_report *out);
int cvg__store_check(cvg__store *s, cvg_check_report *out);
/* A small write transaction of its own: begin, @p fn, commit, growing the
 * map as needed (fn is called again on a new transaction; not while
 * @p readers_open). */
int cvg__store_write(cvg__store *s, bool readers_open,
                     int (*fn)(void *ctx, cvg__store_txn *t), void *ctx);

/* Meta records (keys are short strings). */
int cvg__meta_get_u64(cvg__store *s, cvg__store_txn *t, const char *name,
                      uint64_t *out);
int cvg__meta_put_u64(cvg__store *s, cvg__store_txn *t, const char *name,
                      uint64_t v);
/* A meta record of any length: CVG_ENOTFOUND if absent. The view is valid
 * until the transaction ends or its next write. */
int cvg__meta_get(cvg__store *s, cvg__store_txn *t, const char *name,
                  cvg_bytes *out);
int cvg__meta_put(cvg__store *s, cvg__store_txn *t, const char *name,
                  cvg_bytes v);
/* The replica id record. */
int cvg__meta_get_id(cvg__store *s, cvg__store_txn *t, cvg_replica_id *out);
int cvg__meta_put_id(cvg__store *s, cvg__store_txn *t,
                     const cvg_replica_id *id);

/* Since format 5 one origin's seq may be stored in the meta record
 * "ahead" (its index and seq) instead of its record in the origin table,
 * which then lags: the vector holds the larger of the two. A commit writes
 * the meta records anyway, so the one origin most commits move (the
 * replica's own) costs no page of the origin table. */
typedef struct cvg__origins_ahead {
    bool set; /* "ahead" names origin id */
    cvg_replica_id id;
} cvg__origins_ahead;

/* Load the origin table and version vector as stored in @p t, the vector
 * raised by the "ahead" record; *ahead (if not NULL) says which origin
 * that names. CVG_ECORRUPT if it is malformed or names no origin. */
int cvg__origins_load(cvg__store *s, cvg__store_txn *t, cvg__origins *o,
                      cvg__vv *vv, cvg__origins_ahead *ahead);
/* Store origin @p idx with its VV seq. */
int cvg__origins_put(cvg__store *s, cvg__store_txn *t, uint32_t idx,
                     const cvg_replica_id *id, uint64_t seq);
/* Store @p seq as origin @p idx's in the "ahead" record. */
int cvg__origins_put_ahead(cvg__store *s, cvg__store_txn *t, uint32_t idx,
                           uint64_t seq);

/* ---- The journal (journal.c) ------------------------------------------------
 * State records written behind the log, in the overlay and the table
 * "journal", until a checkpoint writes them into the state table. */
#define CVG__OV_MAX_VALUES 65536
#define CVG__DIRECT_MAX 64
#define CVG__OV_MAX_BYTES ((size_t)64 << 20)
#define CVG__CKPT_SLICES 4
/* Register transaction @p t (just begun) and load what its snapshot has of
 * the journal and the handle not yet. */
int cvg__journal_begin(cvg__store *s, cvg__store_txn *t, bool write);
/* @p t ended (committed or not): forget it, and a writer's values if it
 * did not commit. */
void cvg__journal_end(cvg__store *s, const cvg__store_txn *t, bool committed);
/* What @p t sees of the overlay; NULL for a store without a journal or a
 * transaction not registered. */
const cvg__view *cvg__journal_view(cvg__store *s, const cvg__store_txn *t);
/* Just before writer @p t commits: its journal record, or a checkpoint. */
int cvg__journal_seal(cvg__store *s, cvg__store_txn *t);
/* A checkpoint by writer @p t, whatever the overlay holds. */
int cvg__journal_checkpoint(cvg__store *s, cvg__store_txn *t);
/* Whether the overlay holds anything (a checkpoint would write it). */
bool cvg__journal_pending(const cvg__store *s);
void cvg__journal_free(cvg__store *s);

/* ---- State records (state_store.c) ------------------------------------------
 * Views returned point into the map or the overlay: valid until the
 * transaction ends or its next write. */
int cvg__state_get(cvg__store *s, cvg__store_txn *t, const uint8_t *key,
                   size_t klen, cvg_bytes *out); /* CVG_ENOTFOUND */
int cvg__state_put(cvg__store *s, cvg__store_txn *t, const uint8_t *key,
                   size_t klen, cvg_bytes value);
/* Put @p val into the state table itself, or delete the record there when
 * @p val is NULL (an absent one is not an error): below the overlay, for
 * the journal's checkpoints. */
int cvg__state_table_write(cvg__store *s, cvg__store_txn *t, const uint8_t *key,
                           size_t klen, const uint8_t *val, size_t len);
/* Delete a record; an absent one is not an error. */
int cvg__state_del(cvg__store *s, cvg__store_txn *t, const uint8_t *key,
                   size_t klen);

/* The length of the field prefix "collection NUL key NUL field NUL" that
 * begins state key @p k, or 0 if it has none. */
static inline uint32_t
cvg__state_field_len(const uint8_t *k, size_t n)
{
    int nuls = 0;
    for (size_t i = 0; i < n; i++) {
        if (k[i] == 0 && ++nuls == 3) {
            return (uint32_t)(i + 1);
        }
    }
    return 0;
}

/* A cursor over the state records in key order: those of LMDB's state
 * table merged with the overlay's (state_store.c). */
#define CVG__STATE_KEY_MAX (CVG_NAME_MAX + 3 + 1 + 16)
typedef struct cvg__state_cursor {
    struct MDB_cursor *c;
    cvg__store *s;   /* for the records' checksums */
    uint64_t lo, hi; /* the transaction's view of the overlay */
    bool lm_has;     /* c is on lk, lv: not passed yet */
    cvg_bytes lk, lv;
    uint32_t last_len; /* the key returned last */
    uint8_t last[CVG__STATE_KEY_MAX];
    /* While a seek within a field the overlay holds one node of: that
     * node, which spares the search in key order. */
    const struct cvg__ov_node *only;
} cvg__state_cursor;

int cvg__state_cursor_open(cvg__store *s, cvg__store_txn *t,
                           cvg__state_cursor *c);
/* The first record at or after @p key (the first of all when klen is 0):
 * CVG_OK, CVG_DONE past the last, or an error. */
int cvg__state_cursor_seek(cvg__state_cursor *c, const uint8_t *key,
                           size_t klen, cvg_bytes *k, cvg_bytes *v);
int cvg__state_cursor_next(cvg__state_cursor *c, cvg_bytes *k, cvg_bytes *v);
/* As seek, for the first record at or after @p key whose key begins with
 * @p prefix[0..plen): CVG_DONE if there is none. Cheaper than a seek when
 * the prefix is a field's that the overlay holds nothing of. */
int cvg__state_cursor_seek_in(cvg__state_cursor *c, const uint8_t *key,
                              size_t klen, const uint8_t *prefix, size_t plen,
                              cvg_bytes *k, cvg_bytes *v);
/* Accepts a cursor never opened (zeroed). Must come before the end of its
 * transaction. */
void cvg__state_cursor_close(cvg__state_cursor *c);

/* ---- Peer records (peer_store.c) ---------------------------------------------
 * What this replica remembers of a peer: where our pulls from it stand and
 * how far its copy of our own ops goes. Refused ops each have a record of
 * their own, keyed by peer and seq. */
typedef struct cvg__peer_rec {
    uint64_t cursor; /* the first lsn of its log we lack */
    uint64_t acked;  /* it has our ops 1..acked */
    uint64_t sent;   /* we offered it our ops up to this seq */
    uint64_t last_ok_ms;
    uint64_t last_attempt_ms;
    int last_error;
    /* Who and where: the key it proved, its last contact, the address it
     * was last seen at ("" if unknown; printable, NUL-terminated). */
    bool has_key;
    uint8_t key[CVG_PUBLIC_KEY_BYTES];
    uint64_t last_contact_ms;
    char addr[CVG_SYNC_ADDRESS_MAX];
} cvg__peer_rec;

/* A change to a peer record: maxima for acked and sent, times when not 0,
 * and, with fail_code, our ops fail_lo..fail_hi that the peer refused with
 * it become failed (those sent and not acknowledged); the key and the
 * address replace the stored ones when given. */
typedef struct cvg__peer_change {
    uint64_t acked;
    uint64_t sent;
    uint64_t attempt_ms;
    uint64_t ok_ms;
    int error;
    int fail_code;
    uint64_t fail_lo, fail_hi;
    uint64_t contact_ms;
    bool has_key;
    uint8_t key[CVG_PUBLIC_KEY_BYTES];
    char addr[CVG_SYNC_ADDRESS_MAX]; /* "" for none */
} cvg__peer_change;

/* Whether @p s is an address a peer record may hold: 1 to
 * CVG_SYNC_ADDRESS_MAX - 1 printable ASCII characters. */
bool cvg__peer_addr_ok(const char *s, size_t len);
/* Fold the later change @p ch into @p into, so that applying the result
 * equals applying both in turn. */
void cvg__peer_change_merge(cvg__peer_change *into, const cvg__peer_change *ch);

/* The record of @p peer; a peer never met gives cursor 1 and zeros, and
 * *known false if @p known is not NULL. */
int cvg__peer_get(cvg__store *s, cvg__store_txn *t, const cvg_replica_id *peer,
                  cvg__peer_rec *out, bool *known);
int cvg__peer_put(cvg__store *s, cvg__store_txn *t, const cvg_replica_id *peer,
                  const cvg__peer_rec *p);
/* Apply @p ch to record @p p in memory (and a new pull position, if
 * @p cursor). */
void cvg__peer_rec_merge(cvg__peer_rec *p, const cvg__peer_change *ch,
                         const uint64_t *cursor);
/* Apply @p ch (and @p cursor) to the peer's stored record, and keep the
 * refused-op records in step with it. */
int cvg__peer_change_apply(cvg__store *s, cvg__store_txn *t,
                           const cvg_replica_id *peer,
                           const cvg__peer_change *ch, const uint64_t *cursor);
/* The ids of every peer with a record: up to @p cap into @p out, the total
 * in *count. */
int cvg__peers_list(cvg__store *s, cvg__store_txn *t, cvg_replica_id *out,
                    size_t cap, size_t *count);
/* Refused ops of @p peer above seq @p above, oldest first: up to @p cap
 * into @p out (may be NULL with cap 0), the total in *count. */
int cvg__failed_list(cvg__store *s, cvg__store_txn *t,
                     const cvg_replica_id *peer, uint64_t above,
                     cvg_failed_op *out, size_t cap, uint64_t *count);
/* The code @p peer refused our op @p seq with, or CVG_OK in *code. */
int cvg__failed_get(cvg__store *s, cvg__store_txn *t,
                    const cvg_replica_id *peer, uint64_t seq, int *code);
/* The memory of @p peer's version vector (src/sync/vv_sync.c), a view
 * valid for the transaction: CVG_ENOTFOUND without one. Put: an empty
 * @p mem deletes it. */
int cvg__peer_mem_get(cvg__store *s, cvg__store_txn *t,
                      const cvg_replica_id *peer, cvg_bytes *out);
int cvg__peer_mem_put(cvg__store *s, cvg__store_txn *t,
                      const cvg_replica_id *peer, cvg_bytes mem);
/* Forget everything stored of @p peer: its record, the memory of its
 * version vector and refused ops. */
int cvg__peer_forget(cvg__store *s, cvg__store_txn *t,
                     const cvg_replica_id *peer);
/* Forget the refused ops of @p peer with seq <= @p upto. */
int cvg__failed_clear(cvg__store *s, cvg__store_txn *t,
                      const cvg_replica_id *peer, uint64_t upto);

/* Append one finished block whose ops are (origin, first_seq ..
 * last_seq) at lsns ending with @p last_lsn; also indexes it by dot. */
int cvg__log_append(cvg__store *s, cvg__store_txn *t, uint64_t last_lsn,
                    const cvg_replica_id *origin, uint64_t last_seq,
                    cvg_bytes block);

/* Extending the log's last block. A writer that kept the last block it
 * appended may add the ops of its next commit to it, when they continue
 * it (the same origin, the next seqs and lsns), instead of appending a
 * block of their own: a commit of one op then costs its op's bytes in the
 * log, not a block header and two index entries. Whether the log's last
 * block is still @p block under @p last_lsn (nobody appended or replaced
 * it since, in this process or another); false also when it cannot be
 * read. */
bool cvg__log_last_is(cvg__store *s, cvg__store_txn *t, uint64_t last_lsn,
                      cvg_bytes block);
/* Remove the log's last block (key @p last_lsn, its ops of @p origin
 * ending at @p last_seq) and its dots entry, for the block that extends
 * it to be appended in the same transaction. CVG_ECORRUPT if either is
 * not there. */
int cvg__log_drop_last(cvg__store *s, cvg__store_txn *t, uint64_t last_lsn,
                       const cvg_replica_id *origin, uint64_t last_seq);

/* Walks ops in log order from an lsn. */
typedef struct cvg__log_iter {
    struct MDB_cursor *cur;
    cvg__store *s; /* for the records' checksums */
    cvg__block_reader rd;
    bool open;         /* rd holds a block */
    uint64_t next_lsn; /* lsn of the next op rd gives */
    uint64_t from;     /* skip ops before this lsn */
    uint64_t last_lsn; /* lsn of the last op in rd's block */
    bool skipped;      /* the rest of rd's block was skipped */
    bool only;         /* give only the ops of origin */
    cvg_replica_id origin;
} cvg__log_iter;

/* What is left of the block the iterator is in: ops of one origin with
 * consecutive seqs at consecutive lsns. */
typedef struct cvg__log_span {
    cvg_replica_id origin;
    uint64_t first_seq;
    uint64_t last_seq;
    uint64_t first_lsn;
    uint64_t last_lsn;
} cvg__log_span;

int cvg__log_iter_open(cvg__store *s, cvg__store_txn *t, uint64_t from,
                       cvg__log_iter *it);
/* CVG_OK with *op filled (views valid until the next call), CVG_DONE, or an
 * error. */
int cvg__log_iter_next(cvg__log_iter *it, cvg__op *op);
void cvg__log_iter_close(cvg__log_iter *it);
/* Open @p it on the ops of @p origin from seq @p from_seq on, found through
 * the dots index; other origins' blocks are skipped by their header, so a
 * walk costs what it gives. With no such op, next gives CVG_DONE. */
int cvg__log_iter_open_origin(cvg__store *s, cvg__store_txn *t,
                              const cvg_replica_id *origin, uint64_t from_seq,
                              cvg__log_iter *it);
/* The rest of the current block, moving to the next block first if this
 * one is used up: CVG_OK, CVG_DONE at the end of the log, or an error. Lets
 * a reader skip whole blocks by their header, without decoding their ops. */
int cvg__log_iter_span(cvg__log_iter *it, cvg__log_span *out);
/* Skip what cvg__log_iter_span() gave: the next op comes from the next
 * block. */
void cvg__log_iter_skip_span(cvg__log_iter *it);
/* Point @p op's names at NUL-terminated copies in @p buf (the block holds
 * them without terminators), so that names come out of the API as C
 * strings, as they go in. Valid until @p buf is reused. */
int cvg__op_names_terminate(cvg_op *op, cvg__buf *buf);

/* The lsn of op @p dot, or CVG_ENOTFOUND. */
int cvg__log_find(cvg__store *s, cvg__store_txn *t, const cvg_dot *dot,
                  uint64_t *lsn_out);

/* ---- Signed history (history.c, history_store.c) ----------------------------
 * Per origin, a running hash over its ops in seq order in a canonical
 * encoding; the origin signs its digest at a seq (a signature point). */
#include <sodium.h>

#define CVG__HISTORY_SEGMENT 4096u /* ops per segment of the stream */
#define CVG__DIGEST_BYTES 32
#define CVG__SIG_BYTES 64
#define CVG__INC_MAX 16 /* extra bytes of a derived origin id */
#define CVG__POINT_MSG_BYTES (23 + 16 + 8 + CVG__DIGEST_BYTES)

#define CVG__HISTORY_TARGET_MAX 64 /* a target this long is compared */

/* The hash of an origin's history up to seq, and what the canonical
 * encoding of the next op refers to: the previous op of the segment's
 * time and target (history.c). */
typedef struct cvg__history {
    crypto_generichash_state st;
    cvg_replica_id origin;
    uint64_t seq;    /* the ops hashed: 1..seq */
    uint32_t in_seg; /* of which in the current segment */
    uint64_t prev_hlc;
    uint16_t prev_len; /* 0: no previous target to refer to */
    uint8_t prev_target[CVG__HISTORY_TARGET_MAX];
} cvg__history;

/* A segment that filled up while adding an op: the digest at its end,
 * which the chain record of segment seg keeps. */
typedef struct cvg__history_seal {
    bool sealed;
    uint64_t seg;
    uint8_t digest[CVG__DIGEST_BYTES];
} cvg__history_seal;

/* An origin's signature over its history's digest at seq, with the key
 * that makes it checkable (when has_key: the origin id must be
 * cvg__identity_derive(pk, inc)). */
typedef struct cvg__point {
    cvg_replica_id origin;
    uint64_t seq;
    uint8_t sig[CVG__SIG_BYTES];
    bool has_key;
    uint8_t pk[32];
    uint8_t inc[CVG__INC_MAX];
    uint8_t inc_len;
} cvg__point;

/* Start segment @p seg of @p origin's stream from the digest before it. */
void cvg__history_begin(cvg__history *h, const cvg_replica_id *origin,
                        uint64_t seg, const uint8_t prev[CVG__DIGEST_BYTES]);
/* Hash the next op (its dot must be (origin, seq + 1): else CVG_EINVAL);
 * @p scratch is a buffer to encode into. */
int cvg__history_add(cvg__history *h, const cvg__op *op, cvg__buf *scratch,
                     cvg__history_seal *seal);
/* The digest at h->seq (zeros at seq 0). */
void cvg__history_digest(const cvg__history *h, uint8_t out[CVG__DIGEST_BYTES]);
/* The bytes an origin signs for the digest at @p seq. */
void cvg__history_message(const cvg_replica_id *origin, uint64_t seq,
                          const uint8_t digest[CVG__DIGEST_BYTES],
                          uint8_t out[CVG__POINT_MSG_BYTES]);
/* The stream of @p origin at @p seq, from the chain record and the log:
 * at most a segment's ops are read. CVG_ECORRUPT if they are not all
 * there. */
int cvg__history_build(cvg__store *s, cvg__store_txn *t,
                       const cvg_replica_id *origin, uint64_t seq,
                       cvg__history *out);

/* The history database: chain records (origin, segment) -> the digest at
 * the segment's end; points (origin, seq) -> signature; keys origin ->
 * public key and extra bytes; forks origin -> the evidence. Getters give
 * CVG_ENOTFOUND for an absent record. */
int cvg__chain_get(cvg__store *s, cvg__store_txn *t,
                   const cvg_replica_id *origin, uint64_t seg,
                   uint8_t out[CVG__DIGEST_BYTES]);
int cvg__chain_put(cvg__store *s, cvg__store_txn *t,
                   const cvg_replica_id *origin, uint64_t seg,
                   const uint8_t digest[CVG__DIGEST_BYTES]);
int cvg__point_get(cvg__store *s, cvg__store_txn *t,
                   const cvg_replica_id *origin, uint64_t seq,
                   uint8_t sig[CVG__SIG_BYTES]);
int cvg__point_put(cvg__store *s, cvg__store_txn *t,
                   const cvg_replica_id *origin, uint64_t seq,
                   const uint8_t sig[CVG__SIG_BYTES]);
/* The seq of @p origin's first point at or after @p from. */
int cvg__point_next(cvg__store *s, cvg__store_txn *t,
                    const cvg_replica_id *origin, uint64_t from,
                    uint64_t *seq_out);
int cvg__key_get(cvg__store *s, cvg__store_txn *t, const cvg_replica_id *origin,
                 uint8_t pk[32], uint8_t inc[CVG__INC_MAX], uint8_t *inc_len);
int cvg__key_put(cvg__store *s, cvg__store_txn *t, const cvg_replica_id *origin,
                 const uint8_t pk[32], const uint8_t *inc, uint8_t inc_len);

/* Two signed heads of one origin that cannot both be true. */
typedef struct cvg__fork_rec {
    uint64_t found_ms;
    uint64_t seq_a; /* the other history's signed head */
    uint8_t head_a[CVG__DIGEST_BYTES];
    uint8_t sig_a[CVG__SIG_BYTES];
    uint64_t seq_b; /* the head of the history held here, signed */
    uint8_t head_b[CVG__DIGEST_BYTES];
    uint8_t sig_b[CVG__SIG_BYTES];
} cvg__fork_rec;

int cvg__fork_get(cvg__store *s, cvg__store_txn *t,
                  const cvg_replica_id *origin, cvg__fork_rec *out);
int cvg__fork_put(cvg__store *s, cvg__store_txn *t,
                  const cvg_replica_id *origin, const cvg__fork_rec *f);
/* The forked origins: up to @p cap into @p out, the total in *count. */
int cvg__forks_list(cvg__store *s, cvg__store_txn *t, cvg_replica_id *out,
                    cvg__fork_rec *recs, size_t cap, size_t *count);

#endif /* CVG_OPLOG_INT_H */
