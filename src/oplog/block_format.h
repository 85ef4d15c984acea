/*
 * The op block format, shared by the writer (block_write.c) and the reader
 * (block_read.c). A block is a run of ops of one origin with consecutive
 * seqs, as one flat sequence of msgpack items (no nested arrays or maps, so
 * decoding depth is bounded by construction).
 *
 *   header   version  origin (bin 16)  first_seq  count  hlc of op 1
 *   op       head  [run]  [target]  [hlc delta]  payload...
 *
 * Version 4 (written now): as version 3, with runs that repeat an op:
 *
 *   RUN      the uint that follows is 2c + R: the next c ops share the
 *            head and the target. With R = 0 each is only its time item
 *            (unless TICK) and its payload, as in version 3. With R = 1
 *            (a repeat, only for a counter add with TICK) each is nothing
 *            at all: the time of the op before + 1 and the head op's
 *            delta. A thousand increments of a counter in one commit cost
 *            a few bytes.
 *   count    a block holds at most OPS_PER_BYTE (64) ops per byte after its
 *            header, which bounds what a small block from a peer asks of
 *            its reader; the writer ends a repeat where one more op would
 *            pass that.
 *
 * Version 3 (still read):
 *
 *   head     a positive fixint: the kind in bits 0-2, then flags:
 *              SAME    the previous op's target (no target item)
 *              TICK    the previous op's time + 1 (no time item): local
 *                      ops in a burst, whose clocks tick by one
 *              NODOTS  a kind that carries dots has none (no count item)
 *              RUN     a uint c >= 1 follows: the next c ops share this
 *                      head and the target, and each is only its time
 *                      item (unless TICK) and its payload. A run of counter
 *                      increments costs one byte per op.
 *            The first op of a block has neither SAME nor TICK.
 *   target   t = 0: a new dictionary entry with the collection and field
 *                   of the last entry added, and the key after that
 *                   entry's key (block_key_next: "item-1041" after
 *                   "item-1040", "k10" after "k9"); nothing follows t.
 *                   Records numbered in order cost one byte of name each;
 *            t = 1: a new entry with the collection and field of the last
 *                   entry added; its key shares p bytes with that entry's
 *                   key: p (uint), the rest (str);
 *            t = 2: a new entry, three (p, rest) pairs against the last
 *                   entry's collection, key and field;
 *            t >= 3: entry t - 3.
 *   hlc      absent for the first op (its time is in the header); for the
 *            others the zigzag-encoded wrapping difference from the
 *            previous op's time, unless TICK.
 *   payload  counter add       delta (int)
 *            register set,     value, [n, n dots]
 *            mvregister set
 *            set add           value
 *            set remove        value, [n, n dots]
 *            record delete     [n, n dots] (the deleter's version vector,
 *                              strictly sorted by origin id), m, then m
 *                              times: field (str), k, k times: dot, sum (int)
 *            The bracketed count and dots are absent with NODOTS; with
 *            dots, n >= 1.
 *   dot      origin reference, seq. The reference indexes the block's origin
 *            dictionary, where 0 is the block's own origin; the index equal
 *            to the dictionary's size adds the origin (bin 16) inline. A dot
 *            of the block's own origin stores zigzag(op seq - seq), usually
 *            one byte (the dot just before this op); others store seq.
 *
 * Version 2 (still read): as version 3 without t = 0, every other t one
 * less (t = 0 and 1 the new entries, t >= 2 entry t - 2).
 *
 * Version 1 (still read): no head flags or runs: per op a kind item, a
 * target reference into the dictionary where the index equal to its size
 * adds (collection, key, field) whole, the time item for every op but the
 * first, and the payload with its dot count always present.
 *
 * The names of dictionary entries live in an arena of the reader's (and the
 * writer's, which mirrors it). A name equal to the last entry's shares its
 * bytes; others are copied. Prefix coding lets a small block name a lot of
 * bytes, so the arena may hold at most NAMES_PER_BYTE times the bytes of
 * the block read so far, plus NAMES_SLACK (what a block costs in memory).
 *
 * What it costs on disk is its entries' names in full: every entry may
 * become a state record keyed by its collection, key and field, even those
 * sharing the last entry's bytes (a 400-byte collection and keys "k1",
 * "k2", ... cost a few bytes an op in the block). So the whole names of a
 * block's entries, each counted once (an op naming an entry again costs
 * nothing), may total at most NAMES_WHOLE_PER_BYTE times the bytes of the
 * block read so far (header included). A block from a peer that passes it
 * is refused as malformed (cvg__block_open_received); blocks already in a
 * log are read without it, as older versions wrote them under the arena
 * bound alone. The writer falls back to whole names where prefix coding
 * would pass either bound: an entry written whole adds as many bytes to
 * the block as it names, so what it writes always reads.
 */
#ifndef CVG_OPLOG_BLOCK_FORMAT_H
#define CVG_OPLOG_BLOCK_FORMAT_H

#include <string.h>

#include "mpack.h"

#define BLOCK_VERSION_1 1u
#define BLOCK_VERSION_2 2u
#define BLOCK_VERSION_3 3u
#define BLOCK_VERSION 4u /* written */

/* Ops per byte after the header a block of version 4 may hold (version 3
 * and older: one, the smallest op). */
#define OPS_PER_BYTE 64u

#define HEAD_KIND 0x07u
#define HEAD_SAME 0x08u
#define HEAD_TICK 0x10u
#define HEAD_NODOTS 0x20u
#define HEAD_RUN 0x40u
#define HEAD_MAX 0x7fu /* one byte: a positive fixint */

/* Target references of version 3 (version 2's are one less and have no
 * TARGET_NEXT_KEY). */
#define TARGET_NEXT_KEY 0u /* new entry: the key after the last one's */
#define TARGET_NEW_KEY 1u  /* new entry: only the key differs */
#define TARGET_NEW_ALL 2u  /* new entry: three prefix-coded names */
#define TARGET_OLD_BASE 3u /* entry t - 3 */

/* The key after @p key in a run of numbered keys, for TARGET_NEXT_KEY: its
 * trailing decimal digits read as a number plus one, at the same width, or
 * one digit wider when they were all nines ("item-1041" -> "item-1042",
 * "k0099" -> "k0100", "k9" -> "k10"). Writes it to @p out, which holds
 * CVG_NAME_MAX + 1 bytes, and returns its length; 0 when @p key is longer
 * than CVG_NAME_MAX or does not end in a digit (it has no next). The writer
 * and the reader both call this, so it is the whole of the rule. */
static inline size_t
block_key_next(const uint8_t *key, size_t len, uint8_t *out)
{
    size_t digits = len;
    while (digits > 0 && key[digits - 1] >= '0' && key[digits - 1] <= '9') {
        digits--;
    }
    if (digits == len || len > CVG_NAME_MAX) {
        return 0;
    }
    memcpy(out, key, len);
    size_t i = len;
    while (i > digits && out[i - 1] == '9') {
        out[--i] = '0';
    }
    if (i > digits) {
        out[i - 1]++;
        return len;
    }
    memmove(out + digits + 1, out + digits, len - digits);
    out[digits] = '1';
    return len + 1;
}

#define NAMES_PER_BYTE 16u
#define NAMES_SLACK 65536u

#define NAMES_WHOLE_PER_BYTE 4u

/* Whether the entries' whole names may total @p whole after @p block
 * bytes. */
static inline bool
block_whole_names_fit(size_t whole, size_t block)
{
    return block <= SIZE_MAX / NAMES_WHOLE_PER_BYTE &&
           whole <= block * NAMES_WHOLE_PER_BYTE;
}

/* Whether the arena may grow to @p arena bytes after @p block bytes. */
static inline bool
block_names_fit(size_t arena, size_t block)
{
    return block <= (SIZE_MAX - NAMES_SLACK) / NAMES_PER_BYTE &&
           arena <= block * NAMES_PER_BYTE + NAMES_SLACK;
}

/* What follows an op's head and names, by the shape of its kind's
 * payload. The one table of kinds in the codec: a new kind with one of
 * these shapes is one row (and HEAD_KIND leaves room for one more). */
typedef enum block_payload {
    PAYLOAD_NONE = 0,   /* not a kind */
    PAYLOAD_DELTA,      /* an int64, never 0 */
    PAYLOAD_VALUE,      /* a value */
    PAYLOAD_VALUE_DOTS, /* a value, then the dots its writer had seen */
    PAYLOAD_DELETE      /* a version vector, then counter parts per field */
} block_payload;

static inline block_payload
kind_payload(unsigned kind)
{
    static const block_payload shapes[] = {
        [CVG_OP_COUNTER_ADD] = PAYLOAD_DELTA,
        [CVG_OP_REGISTER_SET] = PAYLOAD_VALUE_DOTS,
        [CVG_OP_MVREGISTER_SET] = PAYLOAD_VALUE_DOTS,
        [CVG_OP_SET_ADD] = PAYLOAD_VALUE,
        [CVG_OP_SET_REMOVE] = PAYLOAD_VALUE_DOTS,
        [CVG_OP_RECORD_DELETE] = PAYLOAD_DELETE,
    };
    return kind < sizeof shapes / sizeof shapes[0] ? shapes[kind]
                                                   : PAYLOAD_NONE;
}

static inline bool
kind_has_dots(unsigned kind)
{
    block_payload p = kind_payload(kind);
    return p == PAYLOAD_VALUE_DOTS || p == PAYLOAD_DELETE;
}

static inline uint64_t
block_zigzag(uint64_t d)
{
    /* d holds a two's complement int64; the sign goes to bit 0. */
    return (d << 1) ^ (0 - (d >> 63));
}

static inline uint64_t
block_unzigzag(uint64_t z)
{
    return (z >> 1) ^ (0 - (z & 1));
}

static inline bool
block_has_nul(cvg_bytes b)
{
    return b.len > 0 && memchr(b.data, 0, b.len) != NULL;
}

static inline int
block_id_cmp(const cvg_replica_id *a, const cvg_replica_id *b)
{
    return cvg__cmp16(a->bytes, b->bytes);
}

/* A dictionary entry: its three names as (offset, length) in an arena.
 * Offsets, not pointers, because the arena moves as it grows. */
typedef struct block_name {
    size_t off[3];
    size_t len[3];
    uint64_t hash; /* the writer's; the reader leaves it 0 */
} block_name;

#endif /* CVG_OPLOG_BLOCK_FORMAT_H */
