/*
 * A sync session's state, shared by the files that do its jobs:
 *   session.c    lifecycle, the outgoing queue, dispatch of what comes in,
 *                the end of a session (well or badly) and its events
 *   handshake.c  HELLO: who the peer is, what it has, which way ops go
 *   serve.c      pages of our log for the peer: answers to PULL, and PUSH
 *   receive.c    the peer's pages applied here: PULL out, OPS and PUSH in,
 *                ACK both ways
 * A message of a new type goes to the file of its job, plus one case in
 * session.c's dispatch.
 */
#ifndef CVG_SESSION_INT_H
#define CVG_SESSION_INT_H

#include "sync_int.h"
#include "wire.h"

#define HELLO_PULLS 1u  /* flag: this side will pull */
#define HELLO_PUSHES 2u /* flag: this side will push its own ops */
#define HELLO_LIVE 4u   /* flag: this side asks for a live session */

/* Most ops in a PUSH page: the receiver never asked for a size, so both
 * sides hold to this one (the default page size). */
#define PUSH_PAGE_OPS 65536u

/* A page we served: where it ended in our log, and the highest seq of our
 * own ops in it, to learn what the peer has when it pulls again. */
typedef struct cvg__served_page {
    uint64_t next_cursor;
    uint64_t own_max;
} cvg__served_page;

/* Most bytes of a channel binding (cvg_session_options.channel_binding). */
#define BINDING_MAX 64u

struct cvg_session {
    cvg_replica *r;
    cvg_session_options opts;
    /* Identity: our challenge, the peer's key and challenge from its HELLO,
     * and whether it proved that key (PROVE) over our challenge and the
     * channel binding. Nothing learned of the peer is stored before. */
    uint8_t nonce[CVG__NONCE_BYTES];
    uint8_t peer_pk[CVG_PUBLIC_KEY_BYTES];
    uint8_t peer_nonce[CVG__NONCE_BYTES];
    uint8_t binding[BINDING_MAX];
    size_t binding_len;
    bool proven;
    /* Where the transport says the peer is (cvg__session_set_address), ""
     * if it said nothing: stored, like the key, once the peer proved it. */
    char peer_addr[CVG_SYNC_ADDRESS_MAX];
    uint64_t log_end; /* our log's end as our HELLO said: pages stop there */
    uint64_t peer_log_end; /* the peer's, as its HELLO said */
    int error;
    bool got_hello;
    bool peer_pulls;
    bool pulling;         /* a PULL of ours is unanswered */
    bool pulled;          /* we sent a PULL: pages may come */
    uint64_t pull_cursor; /* where our last PULL starts */
    bool pull_done;       /* we have all the peer had when it answered */
    bool served;          /* the peer has pulled all we have */
    bool ended;           /* the END or ERROR event was given */
    /* Status learned but not yet stored: it rides on the next page commit,
     * or, when the session ends, waits for the replica's next commit
     * (deferred.c), instead of a durable commit (an fsync) each time
     * something is learned. */
    cvg__peer_change change;
    bool change_dirty;
    bool acked_all; /* the peer confirmed our last page */
    /* Push (cvg_session_options.push): our own ops go unasked. */
    bool peer_pushes;      /* the peer's HELLO said it pushes */
    bool push_in_done;     /* its last PUSH page is committed here */
    bool pushed;           /* our PUSH pages are queued */
    uint64_t push_own_max; /* the highest seq of ours in them */
    bool push_acked;       /* the peer confirmed them */
    cvg__vv peer_vv;
    /* The peer's history head of each origin in its HELLO (by the order
     * of peer_vv's entries as it sent them), checked against ours once it
     * has proved its key (fork.c). */
    cvg_dot *peer_heads_at;
    uint8_t *peer_heads;
    size_t n_peer_heads;
    cvg_dot fork_dot; /* the last fork found, for its event */
    cvg_session_stats stats;
    /* Pages served and not yet confirmed; confirmed_own is the highest own
     * seq of those confirmed and dropped (a live session serves pages
     * without end, so the list is pruned as the peer confirms them). */
    cvg__served_page *pages;
    size_t npages;
    size_t cappages;
    uint64_t confirmed_own;
    /* Live (both HELLOs asked for it): the session outlives being done,
     * and cvg_session_refresh() offers what the replica commits. */
    bool live;
    bool push_again;     /* a refresh came while a push waited for its ACK */
    bool refresh_wanted; /* a refresh came before the peer's HELLO */
    /* Outgoing messages, oldest first; out[0 .. out_head) were given out. */
    cvg__buf *out;
    size_t nout;
    size_t capout;
    size_t out_head;
    cvg__msg_scratch scratch;
    char why[256]; /* the detail of a refused page, for the ERROR */
};

/* session.c */
int cvg__session_enqueue(cvg_session *s, const cvg__msg *m);
/* End the session with @p rc, telling the peer why. Returns @p rc. */
int cvg__session_fail(cvg_session *s, int rc, const char *why);
/* Record what we learned of the peer, to be stored with the next commit. */
void cvg__session_note(cvg_session *s, const cvg__peer_change *ch);
/* Hand what is pending to the replica (the session ends): it is stored
 * with the next commit. */
void cvg__session_store_peer(cvg_session *s);
void cvg__session_event(cvg_session *s, cvg_sync_event_kind kind, int error);
/* The highest own seq in pages the peer has confirmed by pulling from
 * @p cursor on (or, with UINT64_MAX, by acknowledging the last page). */
uint64_t cvg__session_confirmed(const cvg_session *s, uint64_t cursor);

/* handshake.c */
int cvg__session_send_hello(cvg_session *s);
int cvg__session_on_hello(cvg_session *s, const cvg__msg *m);
int cvg__session_on_prove(cvg_session *s, const cvg__msg *m);

/* fork.c */
/* Our heads for the entries of @p vv (CVG__HEAD_BYTES each), allocated. */
int cvg__session_heads(cvg_session *s, cvg_txn *t, const cvg__vv *vv,
                       uint8_t **out);
int cvg__session_keep_heads(cvg_session *s, const cvg__msg *m);
int cvg__session_check_forks(cvg_session *s);
int cvg__session_on_fork(cvg_session *s, const cvg__msg *m);

/* live.c */
int cvg__session_on_have(cvg_session *s, const cvg__msg *m);
/* Something new flows again: the session is no longer done. */
void cvg__session_reopen(cvg_session *s);
/* HAVE, then PUSH pages of what is new of our own. */
int cvg__session_push_more(cvg_session *s);
/* A refresh that came before the peer's HELLO, done now. */
int cvg__session_after_hello(cvg_session *s);

/* serve.c */
int cvg__session_on_pull(cvg_session *s, const cvg__msg *m);
int cvg__session_push_own(cvg_session *s);

/* receive.c */
int cvg__session_send_pull(cvg_session *s);
int cvg__session_on_ops(cvg_session *s, const cvg__msg *m);
int cvg__session_on_push(cvg_session *s, const cvg__msg *m);
int cvg__session_on_ack(cvg_session *s);
int cvg__session_on_error(cvg_session *s, const cvg__msg *m);

#endif
