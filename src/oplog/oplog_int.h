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

/* ---- Ops ------------------------------------------------------------------ */

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

/* Caps the decoder enforces on hostile bytes. */
#define CVG__BLOCK_OPS_MAX CVG_TXN_OPS_MAX
#define CVG__OBSERVED_MAX 65536u  /* dots in one op */
#define CVG__DICT_MAX 65536u      /* names or origins in one block */

/* ---- Op blocks --------------------------------------------------------------
 * A block is a run of ops of one origin with consecutive seqs, encoded
 * compactly: the origin, first seq and base time once, then per op a kind,
 * a reference into a dictionary of (collection, key, field) names built as
 * the block goes, the time as a delta from the previous op, and the
 * payload. The log stores blocks; a page on the wire is a list of blocks. */

typedef struct cvg__block_writer {
    cvg__buf out;           /* the encoded block so far (header last) */
    cvg_replica_id origin;
    uint64_t first_seq;
    uint64_t count;
    uint64_t first_hlc;
    uint64_t prev_hlc;
    void *dict;             /* the writer's private name dictionary */
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
    uint64_t index;    /* ops read so far */
    uint64_t hlc;      /* time of the last op read */
    void *scratch;     /* the reader's private dictionaries and arrays */
} cvg__block_reader;

/* Read the block header. CVG_ECORRUPT for malformed bytes, CVG_EVERSION for
 * a newer encoding. */
int cvg__block_open(cvg__block_reader *r, const uint8_t *data, size_t len);
/* The next op: CVG_OK, CVG_DONE after the last (and then the block must end
 * exactly: trailing bytes are CVG_ECORRUPT), CVG_ECORRUPT, CVG_ENOMEM. Views
 * in @p out point into the block bytes or the reader's scratch, valid until
 * the next call. out->pub.lsn is 0: the log fills it in. */
int cvg__block_next(cvg__block_reader *r, cvg__op *out);
void cvg__block_reader_destroy(cvg__block_reader *r);

/* ---- Origins ---------------------------------------------------------------
 * Every origin id this replica has seen gets a small local index, so state
 * records store 1 byte instead of 16. Index 0 is the replica itself. */
typedef struct cvg__origins {
    cvg_replica_id *ids;  /* by index */
    size_t n;
    size_t cap;
    uint32_t *slots;      /* open addressing: index + 1, 0 = empty */
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
int cvg__state_decode_counter(const uint8_t *p, size_t n,
                              const cvg__origins *o, cvg__counter *out);
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
 *   peers, queue  reserved for sync (created empty, so that a replica made
 *            now opens unchanged when sync needs them)
 * LMDB codes never leave this module: cvg__mdb_err() translates them. */
#include <lmdb.h>
#include <sys/types.h>

typedef struct cvg__store {
    MDB_env *env;
    MDB_dbi meta, log, dots, state, origins, peers, queue;
    size_t map_size;
    size_t map_max;
    bool read_only;
    bool claimed; /* dev, ino are in this process's registry */
    dev_t dev;
    ino_t ino;
} cvg__store;

/* One handle per replica directory per process (store_registry.c):
 * CVG_EBUSY if this process has the directory open already. */
int cvg__store_claim(dev_t dev, ino_t ino);
void cvg__store_release(dev_t dev, ino_t ino);

/* Translate an LMDB or errno code into a CVG_E... code. */
int cvg__mdb_err(int rc);

/* Open (creating if allowed) the environment in @p path. @p err receives a
 * sentence on failure. */
int cvg__store_open(cvg__store *s, const char *path,
                    const cvg_replica_options *o, char *err, size_t errlen);
void cvg__store_close(cvg__store *s);
/* Begin an LMDB transaction, adopting a map grown by another process. */
int cvg__store_begin(cvg__store *s, bool write, MDB_txn **out);
/* Double the map (up to map_max): CVG_EFULL when already there. Only call
 * with no transaction of this process open. */
int cvg__store_grow(cvg__store *s);

/* Meta records (keys are short strings). */
int cvg__meta_get_u64(cvg__store *s, MDB_txn *t, const char *name,
                      uint64_t *out);
int cvg__meta_put_u64(cvg__store *s, MDB_txn *t, const char *name,
                      uint64_t v);

/* Load the origin table and version vector as stored in @p t. */
int cvg__origins_load(cvg__store *s, MDB_txn *t, cvg__origins *o,
                      cvg__vv *vv);
/* Store origin @p idx with its VV seq. */
int cvg__origins_put(cvg__store *s, MDB_txn *t, uint32_t idx,
                     const cvg_replica_id *id, uint64_t seq);

/* Append one finished block whose ops are (origin, first_seq ..
 * last_seq) at lsns ending with @p last_lsn; also indexes it by dot. */
int cvg__log_append(cvg__store *s, MDB_txn *t, uint64_t last_lsn,
                    const cvg_replica_id *origin, uint64_t last_seq,
                    cvg_bytes block);

/* Walks ops in log order from an lsn. */
typedef struct cvg__log_iter {
    MDB_cursor *cur;
    cvg__block_reader rd;
    bool open;          /* rd holds a block */
    uint64_t next_lsn;  /* lsn of the next op rd gives */
    uint64_t from;      /* skip ops before this lsn */
    uint64_t last_lsn;  /* lsn of the last op in rd's block */
    bool skipped;       /* the rest of rd's block was skipped */
    bool only;          /* give only the ops of origin */
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

int cvg__log_iter_open(cvg__store *s, MDB_txn *t, uint64_t from,
                       cvg__log_iter *it);
/* CVG_OK with *op filled (views valid until the next call), CVG_DONE, or an
 * error. */
int cvg__log_iter_next(cvg__log_iter *it, cvg__op *op);
void cvg__log_iter_close(cvg__log_iter *it);
/* Open @p it on the ops of @p origin from seq @p from_seq on, found through
 * the dots index; other origins' blocks are skipped by their header, so a
 * walk costs what it gives. With no such op, next gives CVG_DONE. */
int cvg__log_iter_open_origin(cvg__store *s, MDB_txn *t,
                              const cvg_replica_id *origin, uint64_t from_seq,
                              cvg__log_iter *it);
/* The rest of the current block, moving to the next block first if this
 * one is used up: CVG_OK, CVG_DONE at the end of the log, or an error. Lets
 * a reader skip whole blocks by their header, without decoding their ops. */
int cvg__log_iter_span(cvg__log_iter *it, cvg__log_span *out);
/* Skip what cvg__log_iter_span() gave: the next op comes from the next
 * block. */
void cvg__log_iter_skip_span(cvg__log_iter *it);
/* The lsn of op @p dot, or CVG_ENOTFOUND. */
int cvg__log_find(cvg__store *s, MDB_txn *t, const cvg_dot *dot,
                  uint64_t *lsn_out);

#endif /* CVG_OPLOG_INT_H */
