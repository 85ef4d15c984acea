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
 * session runs on the thread in cvg_server_run(), which therefore owns
 * the replica while it runs (the replica handle is used by one thread at
 * a time). cvg_server_stop() is the only call for other threads and
 * signal handlers.
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

#define CVG_SERVER_OPTIONS_VERSION 1

typedef struct cvg_server_options {
    uint32_t version; /* CVG_SERVER_OPTIONS_VERSION */
    /* Connections at once; one more is closed as soon as accepted. 0: 64. */
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
} cvg_server_options;

/** Fill @p o with the defaults. @since 0.2 */
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
 * Serve clients on this thread until cvg_server_stop(), then until the
 * sessions under way end (each bounded by the timeouts).
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

#ifdef __cplusplus
}
#endif

#endif /* CONVERGE_NET_H */
