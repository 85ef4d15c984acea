/*
 * One TCP connection carrying a channel (channel.h) and, once its
 * handshake is done, one sync session: the glue between libuv's sockets,
 * the sans-IO channel and the sans-IO session. The client (client.c) and
 * the server (server.c) each make connections and learn, through
 * on_closed, how each ended.
 */
#ifndef CVG_NET_TCP_H
#define CVG_NET_TCP_H

#include <signal.h>
#include <uv.h>

#include "converge/net.h"

#include "../sync/sync_int.h"
#include "channel.h"

/* Stop reading while more than this waits to be written, and take in no
 * more of what was read (backpressure: a peer that sends but does not read
 * cannot make us queue without end); read again under half of it. */
#define CVG__TCP_WRITE_HIGH (4u << 20)
/* A message whose answer leaves this much queued is the last one taken in
 * before those writes complete: the rest of the read waits a turn of the
 * loop, so one peer's PULLs cannot keep the loop building its pages. */
#define CVG__TCP_TURN (64u << 10)
#define CVG__TCP_TIMEOUT_MS 10000u
/* A live connection's ping after this long with nothing sent. */
#define CVG__TCP_KEEPALIVE_MS 10000u

typedef struct cvg__conn cvg__conn;

typedef struct cvg__conn_options {
    bool initiator;
    cvg_session_options session;
    uint32_t handshake_timeout_ms;
    uint32_t idle_timeout_ms;
    /* The peer's origin must be this one (a client's pin) ... */
    const cvg_replica_id *pin;
    /* ... or one of these (a server's allow list); neither: any. */
    const cvg_replica_id *allow;
    size_t allow_count;
    void (*on_closed)(cvg__conn *c);
    /* After a message from the peer committed a page here (a server
     * refreshes its other live sessions), and after each turn of the
     * connection's work (a syncer reports its state); both without the
     * lock. Either may be NULL. */
    void (*on_commit)(cvg__conn *c);
    void (*on_turn)(cvg__conn *c);
    /* Taken around every use of the replica (the session, its errors), if
     * set: a syncer shares its replica with the app. */
    void (*lock)(void *user);
    void (*unlock)(void *user);
    /* Live: an initiator sends an empty message (a ping) after this long
     * with nothing sent, and the responder answers with one, so each side
     * hears from the other within its idle timeout. 0: none. */
    uint32_t keepalive_ms;
    void *user;
    /* The dial that made the connection (client.c), if any. */
    struct cvg__dial *dial;
} cvg__conn_options;

struct cvg__conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_timer_t ping; /* keepalive_ms after the last send */
    cvg_replica *r;
    cvg__conn_options o;
    cvg__channel ch;
    bool ch_live;
    cvg_session *s;
    int rc;                  /* the first error, or CVG_OK */
    size_t queued;           /* bytes handed to uv_write, not yet written */
    bool reading;            /* uv_read_start in force */
    bool ending;             /* no more input: flush, then close */
    bool wait_peer;          /* ... after the peer's close too */
    bool checked;            /* the peer's id passed the pin or allow list */
    bool closing;            /* uv_close called */
    bool committed;          /* a page of the peer's committed this turn */
    bool finishing;          /* end once the session is done, live or not */
    int handles;             /* open libuv handles (tcp, timer) */
    cvg_session_stats stats; /* kept when the session closes */
    /* The server answered BUSY (CVG_EAGAIN): its retry-after, capped;
     * else 0. */
    uint32_t retry_after_ms;
    cvg__conn *next; /* the server's list */
    /* Input not yet fed to the channel, kept while the writes drain. */
    uint8_t *held;
    size_t held_len;
};

/* A connection on @p loop with its tcp and timer handles made (the caller
 * connects or accepts into c->tcp), or NULL for no memory. */
cvg__conn *cvg__conn_new(uv_loop_t *loop, cvg_replica *r,
                         const cvg__conn_options *o);
/* The socket is connected: start the channel, reading and the clock. */
void cvg__conn_start(cvg__conn *c);
/* End the connection now with @p rc (kept if it is the first); on_closed
 * follows once libuv has closed the handles, then the caller frees @p c
 * with cvg__conn_free(). */
void cvg__conn_abort(cvg__conn *c, int rc, const char *why);
/* End once the session is done (now, if it is), even a live one: a
 * server or syncer that stops. Call with the lock held, if any. */
void cvg__conn_finish(cvg__conn *c);
/* The replica committed: a live session offers what is new (call with
 * the lock held, if the connection has one). */
void cvg__conn_refresh(cvg__conn *c);
/* The outcome: the session's error, else the connection's. */
int cvg__conn_result(const cvg__conn *c);
void cvg__conn_free(cvg__conn *c);

/* A connection made to tcp://HOST:PORT (client.c): each address the name
 * resolves to is tried in turn. cvg_net_sync() runs one on a loop of its
 * own; a syncer runs one live, beside handles of its own. */
typedef struct cvg__dial cvg__dial;
struct cvg__dial {
    uv_loop_t *loop;
    cvg_replica *r;
    /* Set before start to add to what the net options give (lock,
     * keepalive, on_turn, a longer idle_timeout_ms, user for the
     * callbacks: else the dial); start sets the rest. */
    cvg__conn_options co;
    cvg_replica_id pin;
    /* Set before start to skip resolving (the dial frees them). */
    struct addrinfo *addrs, *next;
    cvg__conn *c;
    uv_connect_t req;
    int last_err;
    const char *url;
    /* finish(): the replica's message for a failure, read under the lock
     * (a syncer's app may set another at once). */
    char msg[256];
    /* The server answered BUSY (the outcome is CVG_EAGAIN): the wait it
     * asked for, in ms, capped at CVG__CHANNEL_BUSY_RETRY_MAX (it is not
     * authenticated); 0: no BUSY. Set by cvg__dial_finish() and kept
     * after it, for a caller that schedules its next try. */
    uint32_t retry_after_ms;
    /* Once the last address was tried, or the connection ended. */
    void (*on_end)(cvg__dial *d);
    void *user;
};
/* Resolve @p url (unless d->addrs is set) and start connecting on
 * @p loop; CVG_OK, or an error set on @p r (then call cvg__dial_finish()
 * all the same, after the loop ran). Call with the lock, if any, not
 * held: it takes it where it touches the replica. */
int cvg__dial_start(cvg__dial *d, uv_loop_t *loop, cvg_replica *r,
                    const char *url, const cvg_net_options *o);
/* After the loop ran: the outcome (an error set on the replica), what
 * the session moved into @p st, and the connection freed. */
int cvg__dial_finish(cvg__dial *d, cvg_session_stats *st);

/* A write to a connection the peer has reset raises SIGPIPE, whose
 * default action ends the process, and libuv cannot write with
 * MSG_NOSIGNAL. So the thread that runs a loop blocks SIGPIPE for the run
 * (the write then fails with EPIPE, a cut connection like any other) and
 * takes the one that may be pending before it restores its mask. The
 * process's disposition stays the app's. */
typedef struct cvg__sigpipe {
    sigset_t old;
} cvg__sigpipe;
void cvg__sigpipe_block(cvg__sigpipe *g);
void cvg__sigpipe_unblock(const cvg__sigpipe *g);

/* Split "HOST:PORT" or "[V6]:PORT" into @p host (room for NI_MAXHOST) and
 * @p port (room for 6): false if malformed. */
bool cvg__net_split(const char *s, char *host, size_t host_cap, char *port);
/* The addresses of @p host : @p port (uv_freeaddrinfo() them), or an
 * error set on @p r (CVG_EIO). */
int cvg__net_resolve(uv_loop_t *loop, cvg_replica *r, const char *host,
                     const char *port, bool passive, struct addrinfo **out);

#endif /* CVG_NET_TCP_H */
