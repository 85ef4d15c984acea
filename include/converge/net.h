/*
 * converge/net.h: sync sessions over TCP, on an encrypted channel.
 *
 * Each connection carries a Noise XX channel (X25519, ChaChaPoly,
 * BLAKE2b) and, inside it, one sync session (converge.h) whose identity
 * proofs are bound to the channel's handshake hash: a peer is who its
 * Ed25519 key says, and a proof cannot be replayed into another
 * connection. The channel's own X25519 keys are fresh per connection, so
 * they prove nothing; the session's signatures do.
 *
 * A client syncs once with cvg_net_sync(); a server (cvg_server_open())
 * serves any number of clients from one replica, on one thread: every
 * session runs on the thread in cvg_server_run(). A replica handle is used
 * by one thread at a time, so the server takes its lock for each turn of
 * work, and an app that uses the replica meanwhile takes it too
 * (cvg_server_lock()). Sessions are live for clients that ask (a syncer
 * does): a commit, from a client's page or the app's (cvg_server_notify()),
 * reaches every connected client and peer without polling. A server may
 * also connect to peers itself (cvg_server_connect()): peer to peer.
 *
 * A syncer (cvg_syncer_start()) keeps a live connection to a server from
 * a thread of its own, while the app goes on writing: the app and the
 * syncer share the replica through the syncer's lock (cvg_syncer_lock()),
 * which the syncer takes for each turn of its work, never while it waits
 * for the network.
 *
 * A peer that resets its connection makes the next write to it raise
 * SIGPIPE; cvg_net_sync(), cvg_server_run() and cvg_server_close() block
 * it on their thread while they run and take a pending one before they
 * return, so the connection ends (as cut) and the process does not. The
 * process's disposition of SIGPIPE is left as the app set it.
 *
 * Not included by converge.h; link the same library.
 */
#ifndef CONVERGE_NET_H
#define CONVERGE_NET_H

#include <converge.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- A client: one sync with a server ------------------------------------ */

#define CVG_NET_OPTIONS_VERSION 1

typedef struct cvg_net_options {
    uint32_t version; /* CVG_NET_OPTIONS_VERSION */
    /* Connect, handshake and each wait for the server: 0 for 10000 ms. */
    uint32_t timeout_ms;
    /* The server's Ed25519 public key (32 bytes), or NULL for any: the
     * session ends, before any op is taken or sent, if the key in the
     * server's HELLO is another. Borrowed for the call. */
    const uint8_t *server_key;
    /* The session's options; channel_binding is set by the call (version
     * 0: the defaults). */
    cvg_session_options session;
} cvg_net_options;

/** Fill @p o with the defaults. @since 0.2 */
CVG_API void cvg_net_options_init(cvg_net_options *o);

/**
 * Sync @p r with the server at @p url both ways, blocking: connect,
 * handshake, one session until both sides are done, a clean close.
 *
 * @param[in]  r          The replica; owned by this thread for the call.
 * @param[in]  url        "tcp://HOST:PORT"; an IPv6 address in brackets
 *                        ("tcp://[::1]:7000"); a name is resolved and each
 *                        of its addresses tried in turn.
 * @param[in]  o          NULL for the defaults (cvg_net_options_init()).
 * @param[out] stats_out  What the session moved, if not NULL.
 * @return CVG_OK when both sides are done, or:
 *   - CVG_EINVAL    NULL @p r or @p url, a malformed url, options of an
 *                   unknown version.
 *   - CVG_EIO       the name does not resolve, the connection is refused
 *                   or cut, the channel's handshake fails, or the server
 *                   is silent past the timeout; cvg_replica_errmsg() says
 *                   which.
 *   - CVG_EKEY      the server's key is not @p o->server_key.
 *   - CVG_EAGAIN    the server is at its max_clients and answered BUSY:
 *                   try again after the wait cvg_replica_errmsg() names
 *                   ("tcp://HOST:PORT is busy: retry after 5000 ms"). The
 *                   answer comes before the handshake and is not
 *                   authenticated, so the wait is capped at 300000 ms;
 *                   a forged one could delay a client, no more.
 *   - CVG_EPEER     the server ended the session (with an ERROR, or by
 *                   closing the channel before the sync was done: a
 *                   server that does not allow this replica's key).
 *   - CVG_ECORRUPT, CVG_EVERSION, CVG_EGAP, CVG_ECLOCK, CVG_EEQUIVOCAL,
 *     CVG_EFORGED, CVG_ELIMIT, CVG_EPROTO, CVG_EACCES, CVG_EBUSY,
 *     CVG_EFULL  the session failed, as cvg_session_input() says.
 *   - CVG_ENOMEM    out of memory.
 * @since 0.2
 */
CVG_API CVG_NODISCARD int cvg_net_sync(cvg_replica *r, const char *url,
                                       const cvg_net_options *o,
                                       cvg_session_stats *stats_out);

/* ---- A server ------------------------------------------------------------ */

typedef struct cvg_server cvg_server;

/* 2 added busy_retry_ms; options of version 1 are still taken (their
 * busy_retry_ms is the default). */
#define CVG_SERVER_OPTIONS_VERSION 2

typedef struct cvg_server_options {
    uint32_t version; /* CVG_SERVER_OPTIONS_VERSION, or 1 */
    /* Connections at once: 0 for 64. One more is answered BUSY, before
     * any handshake, with busy_retry_ms, and closed (its cvg_net_sync()
     * fails with CVG_EAGAIN at once). */
    uint32_t max_clients;
    /* The Ed25519 public keys (32 bytes each) that may sync; a session
     * whose peer has another key is ended after its HELLO, before it takes
     * or sends any op. NULL (or 0 keys): any key may connect. Copied. */
    const uint8_t (*allow)[32];
    size_t allow_count;
    /* Time for a client's handshake, and for each later wait: 0 for 10000
     * ms and 60000 ms. */
    uint32_t handshake_timeout_ms;
    uint32_t idle_timeout_ms;
    /* The options of every session (version 0: the defaults). */
    cvg_session_options session;
    /* The retry-after of a BUSY answer, in ms: 0 for 5000. Clients honour
     * at most 300000 (the answer is not authenticated). Version 2. */
    uint32_t busy_retry_ms;
} cvg_server_options;

/** Fill @p o with the defaults (version CVG_SERVER_OPTIONS_VERSION).
 * @since 0.2 */
CVG_API void cvg_server_options_init(cvg_server_options *o);

/**
 * Listen on @p listen for clients of @p r; nothing is served until
 * cvg_server_run().
 *
 * @param[in]  r       The replica; the server's thread owns it from
 *                     cvg_server_run() until cvg_server_close().
 * @param[in]  listen  "HOST:PORT", "[IPV6]:PORT"; port 0 takes a free
 *                     one (cvg_server_port()).
 * @param[in]  o       NULL for the defaults (cvg_server_options_init()).
 * @param[out] out     The server; NULL on error.
 * @return CVG_OK, or:
 *   - CVG_EINVAL  NULL argument, a malformed address, options of an
 *                 unknown version.
 *   - CVG_EIO     the address does not resolve or cannot be bound
 *                 (cvg_replica_errmsg() says why).
 *   - CVG_ENOMEM  out of memory.
 * @since 0.2
 */
CVG_API CVG_NODISCARD int cvg_server_open(cvg_replica *r, const char *listen,
                                          const cvg_server_options *o,
                                          cvg_server **out);

/** The port @p s listens on (the one taken for port 0); 0 for NULL.
 * @since 0.2 */
CVG_API uint16_t cvg_server_port(const cvg_server *s);

/**
 * Keep a live connection to the peer at @p url from this server's thread
 * too, from cvg_server_run() on: peer to peer, with no server between. Its
 * session pulls both ways and stays open (so does one the peer opens to
 * us); each commit here reaches it, as it reaches clients. A connection
 * that ends is made again, after a backoff that doubles from 500 ms to
 * 30 s (with jitter); its errors show in the peer's sync status. Call
 * before cvg_server_run(), once per peer.
 *
 * @param[in] s         The server.
 * @param[in] url       "tcp://HOST:PORT" (copied).
 * @param[in] peer_key  The peer's Ed25519 public key (32 bytes, copied),
 *                      or NULL for any.
 * @return CVG_OK, or:
 *   - CVG_EINVAL   NULL @p s or @p url, or a url that is not
 *                  tcp://HOST:PORT.
 *   - CVG_EMISUSE  the server runs already.
 *   - CVG_ENOMEM   out of memory.
 * @since 0.2
 */
CVG_API CVG_NODISCARD int cvg_server_connect(cvg_server *s, const char *url,
                                             const uint8_t *peer_key);

/**
 * Serve clients on this thread until cvg_server_stop(), then until the
 * sessions under way end (each bounded by the timeouts; a live session
 * that is caught up ends at once, one receiving pages at their end).
 *
 * @return CVG_OK, or CVG_EINVAL (NULL @p s), CVG_EMISUSE (run twice).
 * @since 0.2
 */
CVG_API CVG_NODISCARD int cvg_server_run(cvg_server *s);

/** Stop accepting clients and let cvg_server_run() return once the
 * sessions under way end. Safe from any thread and from a signal handler,
 * at any time between open and close. @since 0.2 */
CVG_API void cvg_server_stop(cvg_server *s);

/** Close @p s (after cvg_server_run() returned, or if it never ran), and
 * free it. Accepts NULL. @since 0.2 */
CVG_API void cvg_server_close(cvg_server *s);

/**
 * Take the server's lock on its replica, for an app that uses the replica
 * while the server runs (its own writes, reads, status). The server's
 * thread holds the lock for each turn of its work on a connection (a
 * message in, a page out), never while it waits, so the app waits at
 * most one such turn. Hold it around a whole transaction, then, after a
 * commit, call cvg_server_notify() so that connected clients and peers
 * get it. Not recursive. Accepts NULL. It is the replica's own lock
 * (cvg_replica_lock()), which group commits (cvg_replica_write()) take
 * too: those calls need no lock around them.
 *
 * Example: a write while the server runs.
 *     cvg_server_lock(srv);
 *     cvg_txn *t;
 *     cvg_key k = {"stock", "sku-1", "qty"};
 *     int rc = cvg_txn_begin(r, 0, &t);
 *     if (rc == CVG_OK) {
 *         rc = cvg_counter_add(t, &k, 10, NULL);
 *         rc = rc == CVG_OK ? cvg_txn_commit(t) : (cvg_txn_abort(t), rc);
 *     }
 *     cvg_server_unlock(srv);
 *     cvg_server_notify(srv);
 * @since 0.2
 */
CVG_API void cvg_server_lock(cvg_server *s);

/** Give the server's lock back. Accepts NULL. @since 0.2 */
CVG_API void cvg_server_unlock(cvg_server *s);

/** Say that the app committed: every live session offers it, in the
 * server's next turn. Never blocks; any thread, from open until
 * cvg_server_stop(). Accepts NULL. @since 0.2 */
CVG_API void cvg_server_notify(cvg_server *s);

/* ---- A syncer: a live connection on a thread of its own ------------------ */

typedef struct cvg_syncer cvg_syncer;

/** What a syncer is doing, as its status callback reports it. */
typedef enum cvg_syncer_state {
    /* Resolving, connecting, the channel's handshake (at the start and
     * after each backoff). */
    CVG_SYNCER_CONNECTING = 0,
    /* Connected, the session open and not caught up: ops are moving. */
    CVG_SYNCER_SYNCING = 1,
    /* Connected and caught up both ways; again after each catch-up. */
    CVG_SYNCER_SYNCED = 2,
    /* Not connected: the server could not be reached, the connection was
     * cut, timed out or closed by the server (CVG_EIO), the server is at
     * its max_clients (CVG_EAGAIN: the next try waits at least its
     * retry-after, at most 300 s of it), or the replica was busy
     * (CVG_EBUSY). With CVG_OK: the syncer stopped, caught up. */
    CVG_SYNCER_OFFLINE = 3,
    /* The connection failed otherwise: a wrong server key (CVG_EKEY), the
     * server refused us or ended the session (CVG_EPEER), the protocol,
     * the data or memory (as cvg_net_sync() says). */
    CVG_SYNCER_ERROR = 4
} cvg_syncer_state;

/** How a retry delay is drawn from the backoff (libsodium's
 * randombytes_uniform()), so that clients cut off together do not come
 * back together. */
typedef enum cvg_syncer_jitter {
    CVG_SYNCER_JITTER_HALF = 0, /* between half the backoff and all of it */
    CVG_SYNCER_JITTER_FULL = 1, /* between 0 and the backoff */
    CVG_SYNCER_JITTER_NONE = 2  /* the backoff itself */
} cvg_syncer_jitter;

/** One change of state. Views valid for the callback only. */
typedef struct cvg_syncer_event {
    cvg_syncer_state state;
    int rc;                /* OFFLINE, ERROR: what ended it; else CVG_OK */
    const char *message;   /* OFFLINE, ERROR: what failed; else "" */
    uint64_t ops_received; /* SYNCED: ops applied here since the last one */
    uint64_t ops_sent;     /* SYNCED: ops sent since the last one */
    uint32_t failures;     /* failed connections in a row; 0 after SYNCED */
    /* SYNCED: the interval, until the session next offers what is new
     * unasked; OFFLINE, ERROR: the wait before the next connection,
     * jitter included (0 when stopping); else 0. */
    uint32_t next_ms;
} cvg_syncer_event;

/** Called on the syncer's thread at each change of state, without the
 * lock held: it may call cvg_syncer_lock(), _unlock(), _notify() and
 * _sync_now(), but not cvg_syncer_stop(). The connection waits for it. */
typedef void (*cvg_syncer_fn)(void *ctx, const cvg_syncer_event *e);

#define CVG_SYNCER_OPTIONS_VERSION 1

typedef struct cvg_syncer_options {
    uint32_t version; /* CVG_SYNCER_OPTIONS_VERSION */
    /* The server, "tcp://HOST:PORT" as for cvg_net_sync(). Copied. */
    const char *url;
    /* The connection's options (version 0: the defaults; the session is
     * made live whatever session.live says); server_key is copied. Its
     * timeout_ms bounds the handshake and each wait for the server (a
     * ping goes out after half of it with nothing sent). */
    cvg_net_options net;
    /* While connected, the session offers what is new this often even
     * unasked (commits the app did not notify): 0 for 10000 ms. */
    uint32_t interval_ms;
    /* From a cvg_syncer_notify() to the push it asks for, so that a
     * burst of commits goes in one push: 0 for 200 ms. */
    uint32_t debounce_ms;
    /* After the first failed connection in a row the backoff is
     * backoff_min_ms, doubled at each further one up to backoff_max_ms: 0
     * for 500 ms and 30000 ms. The wait is drawn from it by @c jitter. */
    uint32_t backoff_min_ms;
    uint32_t backoff_max_ms;
    cvg_syncer_jitter jitter; /* default CVG_SYNCER_JITTER_HALF */
    /* Told of each change of state, if not NULL. */
    cvg_syncer_fn on_status;
    void *ctx;
} cvg_syncer_options;

/** Fill @p o with the defaults (url NULL). @since 0.2 */
CVG_API void cvg_syncer_options_init(cvg_syncer_options *o);

/**
 * Start syncing @p r with the server at o->url on a new thread: connect
 * at once and keep a live session open. Both sides first send what the
 * other lacks; then the server's commits arrive as they happen, the app's
 * go out debounce_ms after a cvg_syncer_notify() (and at each interval
 * unasked), and a connection that ends is made again after a backoff.
 *
 * The connection takes the syncer's lock for each turn of its work (a
 * message in, a page out), never while it waits for the network, so the
 * app waits at most one turn, and while the server is down or slow not at
 * all. Writes made while offline go out when the next connection opens
 * (the op log keeps them).
 *
 * Ownership: @p o and its strings are copied. @p r stays the app's; from
 * now until cvg_syncer_stop() the app uses it only between
 * cvg_syncer_lock() and cvg_syncer_unlock(). The replica's own callbacks
 * (conflicts, sync events) run on the syncer's thread, in its turns.
 *
 * @param[in]  r    The replica.
 * @param[in]  o    The options; o->url is required.
 * @param[out] out  The syncer; NULL on error.
 * @return CVG_OK, or:
 *   - CVG_EINVAL  NULL @p r, @p o, @p out or o->url, a url that is not
 *                 tcp://HOST:PORT, options of an unknown version (o or
 *                 o->net), backoff_min_ms over backoff_max_ms, an unknown
 *                 jitter.
 *   - CVG_ELIMIT  the system cannot start another thread.
 *   - CVG_EIO     libsodium cannot start, or the syncer's wake-up pipe
 *                 cannot be made.
 *   - CVG_ENOMEM  out of memory.
 * @since 0.2
 */
CVG_API CVG_NODISCARD int cvg_syncer_start(cvg_replica *r,
                                           const cvg_syncer_options *o,
                                           cvg_syncer **out);

/** Say that the app committed: it goes out within debounce_ms while
 * connected (while backing off, the change waits for the next
 * connection). Never blocks. Thread safety: any thread, until
 * cvg_syncer_stop(). Accepts NULL. @since 0.2 */
CVG_API void cvg_syncer_notify(cvg_syncer *s);

/** Offer what is new now, or, while backing off, connect now (for an app
 * that learns the network is back). Never blocks. Thread safety: any
 * thread, until cvg_syncer_stop(). Accepts NULL. @since 0.2 */
CVG_API void cvg_syncer_sync_now(cvg_syncer *s);

/**
 * Take the syncer's lock on its replica, waiting for the syncer's turn
 * under way (one message or page) to end. It is the replica's own lock
 * (cvg_replica_lock()), which group commits (cvg_replica_write()) take
 * too: calls of cvg_replica_write() need no lock around them. While a syncer runs, a replica
 * handle is used by one thread at a time, so the app holds the lock
 * around all its own use of the replica: each transaction from begin to
 * commit or abort, its reads, and cvg_replica_errmsg() after a failure.
 * Not recursive: lock once, unlock once, on the same thread.
 *
 * Example: a write made while the syncer runs.
 *     cvg_syncer_lock(syncer);
 *     cvg_txn *t;
 *     cvg_key k = {"stock", "sku-1", "qty"};
 *     int rc = cvg_txn_begin(r, 0, &t);
 *     if (rc == CVG_OK) {
 *         rc = cvg_counter_add(t, &k, -1, NULL);
 *         rc = rc == CVG_OK ? cvg_txn_commit(t) : (cvg_txn_abort(t), rc);
 *     }
 *     cvg_syncer_unlock(syncer);
 *     if (rc == CVG_OK) {
 *         cvg_syncer_notify(syncer);
 *     }
 *
 * Thread safety: any thread, the status callback included. @since 0.2
 */
CVG_API void cvg_syncer_lock(cvg_syncer *s);

/** Give the lock back. @since 0.2 */
CVG_API void cvg_syncer_unlock(cvg_syncer *s);

/**
 * Stop the syncer, wait for its thread to end, and free it. A backoff
 * ends at once, a connection still in its handshake is cut, and an open
 * session ends at the end of the pages under way, which the timeouts of
 * o->net bound (and name resolution, for a host name). The app then has
 * the replica to itself again. Accepts NULL. Not from the status callback
 * (it would wait for itself): there it does nothing.
 * @since 0.2
 */
CVG_API void cvg_syncer_stop(cvg_syncer *s);

#ifdef __cplusplus
}
#endif

#endif /* CONVERGE_NET_H */
