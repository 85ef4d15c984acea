/*
 * The sync protocol's messages and their encoding. Pure bytes in, bytes out:
 * the session (session.c) decides what to send; this file only packs and
 * unpacks, and treats every received byte as hostile.
 *
 * A message is a flat run of msgpack items: the protocol version, the
 * message type, then the type's fields. Ops travel as op blocks (the log's
 * own encoding, see oplog_int.h), each a bin item.
 */
#ifndef CVG_WIRE_H
#define CVG_WIRE_H

#include <sodium.h>

#include "../oplog/oplog_int.h"

/* Version 2: HELLO carries the sender's public key, a challenge and the
 * end of its log, and PROVE answers the peer's challenge. Version 3: pages
 * carry their origins' signature points, HELLO a history head per origin,
 * and FORK the signed heads of two histories. Version 4: every page is
 * acknowledged, by an ACK that gives the result of its ops as seq ranges
 * per origin (taken, already there), and a refused page by an ACK naming
 * the op refused and its code, before the ERROR; the counts ACK carried
 * are gone. A peer of another version is refused (CVG_EVERSION). Live
 * sessions need no version of their own: HAVE is sent only to a peer
 * whose HELLO asked for a live session. Version 5: the version vector
 * leaves HELLO for VV messages, sent once the peer's HELLO said who it is:
 * only the entries changed since a vector the peer remembers, with a
 * digest of the whole one, and VV_WANT asks for the whole vector when the
 * peer's memory does not match (src/sync/vv_sync.c). Version 6: that
 * digest is a sum of one hash per entry, which either side updates entry
 * by entry, so a delta is checked without a pass over the whole vector.
 * Version 7: the ACK of a push round's last page carries a random token,
 * and the pusher's next HAVE must carry it back, so a new push round (and
 * the commit it costs) needs a round trip in which the pusher read the
 * ACK (src/sync/live.c). Version 8: pages may carry op blocks of version 3
 * (src/oplog/block_format.h), which a peer of version 7 cannot read.
 * Version 9: op blocks of version 4 (runs that repeat an op). */
#define CVG_PROTOCOL_VERSION 9

typedef enum cvg__msg_type {
    CVG__MSG_HELLO = 1, /* who I am and what I have */
    CVG__MSG_PULL = 2,  /* send me your ops from this cursor on */
    CVG__MSG_OPS = 3,   /* a page of ops, answering a PULL */
    CVG__MSG_PUSH = 4,  /* here are my own ops you lack, unasked */
    CVG__MSG_ACK = 5,   /* a page (OPS or PUSH) is committed here, or refused */
    CVG__MSG_ERROR = 6, /* the session ends, with a reason */
    CVG__MSG_PROVE = 7, /* my signature over your challenge */
    CVG__MSG_FORK = 8,  /* my signed head of an origin we disagree on */
    CVG__MSG_HAVE = 9, /* live: my log now ends here (pull, or pushes follow) */
    CVG__MSG_VV = 10,  /* my version vector, or what changed of it */
    CVG__MSG_VV_WANT = 11 /* your VV did not match: send it whole */
} cvg__msg_type;

/* What became of a run of ops of one origin, seqs lo..hi, in an ACK. */
#define CVG__ACK_TAKEN 0     /* applied here with the page */
#define CVG__ACK_DUPLICATE 1 /* here already */
typedef struct cvg__ack_range {
    cvg_replica_id origin;
    uint64_t lo, hi; /* 1 <= lo <= hi */
    int32_t result;  /* CVG__ACK_TAKEN, CVG__ACK_DUPLICATE, or the CVG_E...
                      * code the op was refused with */
} cvg__ack_range;

/* Caps the decoder enforces. None limits how many origins a replica may
 * have: a version vector takes as many VV messages as it needs, and the
 * caps on one message are far above what its bytes (at most 16 MiB on a
 * connection) can hold anyway. */
#define CVG__MSG_BLOCKS_MAX 65536u
#define CVG__MSG_VV_MAX 65536u /* entries in one VV message */
#define CVG__MSG_TEXT_MAX 1024u
#define CVG__NONCE_BYTES 32u
#define CVG__MSG_POINTS_MAX (1u << 18)
#define CVG__VV_DIGEST_BYTES 32u
/* An honest page's ACK holds at most two ranges per origin (those it had,
 * then those it took), and a page at most CVG__MSG_POINTS_MAX origins. */
#define CVG__MSG_RANGES_MAX (2 * CVG__MSG_POINTS_MAX)
/* A page of relayed ops can end only where every origin in it ends at a
 * signature point (src/sync/serve.c), so it may run past the page limits it was
 * asked for, to the next such place, but never past these. */
#define CVG__PAGE_OPS_HARD(soft) \
    CVG__MAX(2 * (uint64_t)(soft), (uint64_t)2 << 16)
#define CVG__PAGE_BYTES_HARD(soft) \
    CVG__MAX(2 * (uint64_t)(soft), (uint64_t)4 << 20)
/* The most block bytes a receiver takes in a page asked for @p soft bytes:
 * the hard limit, plus one op over it (the sender checks the limit before
 * each op), whose value may be CVG_VALUE_MAX bytes, and as many again for
 * its names and the block's header. */
#define CVG__PAGE_BYTES_ACCEPTED(soft) \
    (CVG__PAGE_BYTES_HARD(soft) + 2 * (uint64_t)CVG_VALUE_MAX)
#define CVG__HEAD_BYTES 16u /* a history head in HELLO: a digest's prefix */

typedef struct cvg__msg {
    cvg__msg_type type;
    uint32_t version; /* protocol version of the sender */
    /* HELLO */
    cvg_replica_id id;
    const uint8_t *pk;    /* CVG_PUBLIC_KEY_BYTES */
    cvg_bytes inc;        /* at most CVG__INC_MAX */
    const uint8_t *nonce; /* CVG__NONCE_BYTES: the challenge */
    uint64_t log_end;     /* the last lsn of the sender's log (and HAVE's) */
    uint32_t flags;
    /* VV: the sender's version vector at its lsn vv_at, whole (vv_base 0)
     * or as the entries changed since its vector at lsn vv_base; vv_total
     * entries and vv_digest (cvg__vv_digest) are the whole vector's, and
     * has_more says more VV messages of this vector follow. */
    uint64_t vv_at;
    uint64_t vv_base;
    uint64_t vv_total;
    const uint8_t *vv_digest; /* CVG__VV_DIGEST_BYTES */
    const cvg_dot *vv;        /* sorted by origin, seq > 0 */
    const uint8_t *heads;     /* per vv entry, CVG__HEAD_BYTES: the digest's
                               * prefix of that origin's history at that seq */
    size_t vv_n;
    /* PULL */
    uint64_t cursor;    /* the first lsn of the puller's interest */
    uint32_t max_ops;   /* 0: no limit; the server caps it at its own */
    uint32_t max_bytes; /* 0: no limit; the server caps it at its own */
    /* OPS and PUSH */
    const cvg_bytes *blocks;
    size_t n_blocks;
    uint64_t next_cursor;     /* OPS: where the next PULL starts */
    bool has_more;            /* OPS: the log goes on past next_cursor;
                               * PUSH: more PUSH pages follow; ACK: the
                               * page acknowledged said more follow; VV:
                               * more of the vector follows */
    const cvg__point *points; /* per origin in the page, at its last seq */
    size_t n_points;
    /* FORK: the sender's signed head of an origin (no key), the digest it
     * signs, and the seq of the receiver's head it asks for (0: none). */
    cvg__point fork;
    const uint8_t *fork_head; /* CVG__DIGEST_BYTES */
    uint64_t fork_want;
    /* ACK: sorted by origin, then lo; no two overlap, and an origin's
     * neighbouring ranges of one result are one range. */
    const cvg__ack_range *ranges;
    size_t n_ranges;
    /* ACK: for the last page of a push round, a random token (else 0);
     * HAVE: the token of the last such ACK the sender read (0: none). */
    uint64_t token;
    /* PROVE */
    const uint8_t *sig; /* CVG__SIG_BYTES */
    /* ERROR */
    int32_t code;
    cvg_bytes text;
} cvg__msg;

/* The digest of a whole version vector (sorted by origin): the sum of a
 * hash of each entry (src/crdt/vv_sum.c), so either side keeps its own up
 * to date entry by entry. */
void cvg__vv_digest(const cvg_dot *vv, size_t n,
                    uint8_t out[CVG__VV_DIGEST_BYTES]);

/* Append the encoding of @p m to @p out. CVG_EINVAL for a message that is
 * not well formed (unknown type, counts over the caps, unsorted VV or ACK
 * ranges). */
int cvg__msg_encode(const cvg__msg *m, cvg__buf *out);

/* Arrays a decoded message points into; reused between decodes. */
typedef struct cvg__msg_scratch {
    cvg_dot *vv;
    size_t vv_cap;
    cvg_bytes *blocks;
    size_t blocks_cap;
    cvg__ack_range *ranges;
    size_t ranges_cap;
    uint8_t *heads;
    size_t heads_cap;
    cvg__point *points;
    size_t points_cap;
} cvg__msg_scratch;

/* Decode one whole message (trailing bytes are an error). Views point into
 * @p data and @p s. CVG_ECORRUPT for malformed bytes, CVG_EVERSION for a
 * protocol version other than ours (with m->version set), CVG_ENOMEM. Block contents
 * are not decoded here, only delimited. */
int cvg__msg_decode(const uint8_t *data, size_t len, cvg__msg *m,
                    cvg__msg_scratch *s);
void cvg__msg_scratch_destroy(cvg__msg_scratch *s);

#endif
