/*
 * src/sync: replication between replicas. Sessions (session.c and the files
 * of its jobs: handshake.c, serve.c, receive.c) exchange the messages of
 * wire.c; what a session learns of its peer is kept per replica in a
 * cvg__sync_state, hung on the replica through its commit hook
 * (deferred.c), and read back by the status and queue calls (status.c,
 * queue.c). Sync sees the replica only through src/replica/replica.h.
 */
#ifndef CVG_SYNC_INT_H
#define CVG_SYNC_INT_H

#include "../replica/replica.h"

/* A peer record change waiting in memory for the next commit. */
typedef struct cvg__peer_deferred {
    cvg_replica_id peer;
    bool has_ch;
    cvg__peer_change ch;
    bool has_cursor;
    uint64_t cursor;
    /* The memory of the peer's version vector (vv_sync.c), when it
     * changed: mem_len bytes, 0 to delete it. */
    bool has_mem;
    uint8_t *mem;
    size_t mem_len;
} cvg__peer_deferred;

/* What sync keeps per replica, in memory. */
typedef struct cvg__sync_state {
    cvg_replica *r;
    cvg_replica_id *active; /* peers with an open session */
    size_t n_active;
    size_t cap_active;
    cvg__peer_deferred *deferred; /* peer changes not yet stored */
    size_t n_deferred;
    size_t cap_deferred;
    /* A change told for the write transaction now open (a page's new
     * position): stored with its commit, dropped if it aborts, and left
     * waiting if it turns out to store nothing. */
    bool staged;
    cvg__peer_deferred stage;
} cvg__sync_state;

/* The sync state of @p r, made (and hooked to the replica's commits) the
 * first time: CVG_OK or CVG_ENOMEM. */
int cvg__sync_state_of(cvg_replica *r, cvg__sync_state **out);
/* The sync state of @p r, or NULL if no sync has touched it yet. */
cvg__sync_state *cvg__sync_state_find(const cvg_replica *r);

/* Record @p ch for @p peer: stored with the next commit (or at once when
 * it marks refused ops, which status reads count). */
int cvg__peer_update(cvg_replica *r, const cvg_replica_id *peer,
                     const cvg__peer_change *ch);
/* Tell @p ch (and a new pull position, if @p cursor) for the write
 * transaction about to commit. */
int cvg__peer_stage(cvg_replica *r, const cvg_replica_id *peer,
                    const cvg__peer_change *ch, const uint64_t *cursor);
/* Apply what waits for @p peer to @p p, as read from the store. */
void cvg__peer_overlay(const cvg_replica *r, const cvg_replica_id *peer,
                       cvg__peer_rec *p);
/* Keep @p len bytes (copied; 0 to forget it) as the memory of @p peer's
 * version vector, stored with the next commit like the rest. */
int cvg__peer_mem_defer(cvg_replica *r, const cvg_replica_id *peer,
                        const uint8_t *mem, size_t len);
/* The memory of @p peer's version vector: what waits for the next commit,
 * else what is stored, copied into @p out. CVG_ENOTFOUND without one. */
int cvg__peer_mem_read(cvg_replica *r, cvg_txn *t, const cvg_replica_id *peer,
                       cvg__buf *out);
/* Drop what waits in memory for @p peer. */
void cvg__peer_drop_deferred(cvg_replica *r, const cvg_replica_id *peer);
/* Whether a session with @p peer is open; mark one open or closed. */
bool cvg__peer_active(const cvg_replica *r, const cvg_replica_id *peer);
void cvg__peer_set_active(cvg_replica *r, const cvg_replica_id *peer, bool on);

/* ---- For the floor above (src/net) ----------------------------------------
 * The network reaches the replica only through sync: sessions by the
 * public API, and these two. The first describes a failure of its own (a
 * connection refused, a timeout) in the replica's message; printf-like,
 * returns @p rc. */
int cvg__sync_fail(cvg_replica *r, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Where the peer of @p s is, "IP:PORT" or "[IPv6]:PORT" (the far end of
 * the connection): kept with what the session learns of the peer, and
 * stored in its record once the peer has proved its key. An address that
 * is empty, longer than CVG_SYNC_ADDRESS_MAX - 1 or not printable ASCII is
 * ignored, as is a NULL argument. */
void cvg__session_set_address(cvg_session *s, const char *addr);

#endif
