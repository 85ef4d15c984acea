/*
 * A sync session's state, shared by the files that do its jobs:
 *   session.c    lifecycle, the outgoing queue, dispatch of what comes in,
 *                the end of a session (well or badly) and its events
 *   handshake.c  HELLO: who the peer is, what it has, which way ops go
 *   serve.c      pages of our log for the peer: answers to PULL, and PUSH
 *   receive.c    the peer's pages applied here: PULL out, OPS and PUSH in,
 *                and its ERROR
 *   ack.c        ACK both ways: the results of a page we applied, and the
 *                peer's ACK of ours checked and recorded
 *   vv_sync.c    VV both ways: our version vector (what changed of it since
 *                the one the peer remembers), the peer's rebuilt and
 *                checked, and the memory of it kept for the next session
 * A message of a new type goes to the file of its job, plus one case in
 * session.c's dispatch.
 */
#ifndef CVG_SESSION_INT_H
#define CVG_SESSION_INT_H

#include "peer_vv.h"
#include "push_hold.h"
#include "sync_int.h"
#include "wire.h"

#define HELLO_PULLS 1u  /* flag: this side will pull */
#define HELLO_PUSHES 2u /* flag: this side will push its own ops */
#define HELLO_LIVE 4u   /* flag: this side asks for a live session */

/* Most ops in a PUSH page: the receiver never asked for a size, so both
 * sides hold to this one (the default page size). */
#define PUSH_PAGE_OPS 65536u
#define PUSH_PAGE_BYTES (1u << 20)

/* Most bytes of a channel binding (cvg_session_options.channel_binding). */
#define BINDING_MAX 64u

typedef struct cvg__vv_in cvg__vv_in; /* vv_sync.c */

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
    /* Serving (serve.c): one page at a time. A PULL while the page that
     * answered the last one waits for its ACK is a repeat (dropped) or
     * the next (held until that ACK); one more is a protocol error. */
    bool serve_unacked;      /* a page we served waits for its ACK */
    bool served_once;        /* ... and served_* below are set */
    uint64_t served_cursor;  /* the cursor of the last PULL served */
    uint64_t served_log_end; /* our log_end when it was served */
    bool pull_held;          /* a PULL waits for that ACK: */
    uint64_t held_cursor, held_max_ops, held_max_bytes;
    bool ended; /* the END or ERROR event was given */
    /* Status learned but not yet stored: it rides on the next page commit,
     * or, when the session ends, waits for the replica's next commit
     * (deferred.c), instead of a durable commit (an fsync) each time
     * something is learned. */
    cvg__peer_change change;
    bool change_dirty;
    bool acked_all; /* the peer acknowledged our last page */
    /* Push (cvg_session_options.push): our own ops go unasked. */
    bool peer_pushes;      /* the peer's HELLO said it pushes */
    bool push_in_done;     /* its last PUSH page is committed here */
    bool pushed;           /* our PUSH pages are queued */
    uint64_t push_own_max; /* the highest seq of ours in them */
    bool push_acked;       /* the peer confirmed them all */
    cvg__push_hold hold;   /* its PUSH pages held to commit together */
    /* The token our ACK of its last push round carried, which the HAVE
     * before its next round must carry back (live.c); and the token of
     * the peer's last such ACK of ours, for our next HAVE. */
    uint64_t push_token;
    uint64_t peer_token;
    cvg__peer_vv peer_vv;
    /* The peer's vector as its VV messages come (vv_sync.c): nothing of it
     * reaches peer_vv before it is whole and checked against its digest. */
    cvg__vv_in *vin;
    bool vv_ok;       /* the peer's vector is whole and checked */
    bool vv_wanted;   /* we asked for it whole (once at most) */
    bool vv_answered; /* we sent ours whole on its VV_WANT (once at most) */
    bool vv_stored;   /* what we remember of the peer is handed over */
    uint64_t vv_at;   /* the lsn of the vector we sent */
    /* The peer's history head of each origin in its HELLO (by the order
     * of peer_vv's entries as it sent them), checked against ours once it
     * has proved its key (fork.c). */
    cvg_dot *peer_heads_at;
    uint8_t *peer_heads;
    size_t n_peer_heads;
    cvg_dot fork_dot; /* the last fork found, for its event */
    cvg_session_stats stats;
    /* ACKs (ack.c). The results of the page being applied here, for
     * ours; what our pages carried, sorted and merged, to check the
     * peer's against; how far our own ops run confirmed there; and what
     * its ACKs said. */
    cvg__ack_range *acks;
    size_t nacks, capacks;
    cvg__ack_range *sent;
    size_t nsent, capsent;
    uint64_t acked_own;
    cvg_session_acks acks_got;
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

/* handshake.c */
int cvg__session_send_hello(cvg_session *s);
int cvg__session_on_hello(cvg_session *s, const cvg__msg *m);
int cvg__session_on_prove(cvg_session *s, const cvg__msg *m);

/* vv_sync.c */
/* Our vector, once the peer's HELLO said who it is: the entries changed
 * since the one it remembers of ours, or all of them. */
int cvg__session_send_vv(cvg_session *s);
int cvg__session_on_vv(cvg_session *s, const cvg__msg *m);
int cvg__session_on_vv_want(cvg_session *s, const cvg__msg *m);
/* Hand what we now remember of the peer's vector (and of what it has of
 * ours) to the replica, to be stored with the next commit. */
void cvg__session_store_vv(cvg_session *s);
void cvg__session_vv_free(cvg_session *s);

/* fork.c */
/* Keep the peer's heads of @p n entries at @p at, to compare once it has
 * proved its key (taking the arrays). */
void cvg__session_keep_heads(cvg_session *s, cvg_dot *at, uint8_t *heads,
                             size_t n);
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
/* The peer acknowledged a page: serve the PULL that waited for it. */
int cvg__session_served_acked(cvg_session *s);
int cvg__session_push_own(cvg_session *s);

/* receive.c */
int cvg__session_send_pull(cvg_session *s);
int cvg__session_on_ops(cvg_session *s, const cvg__msg *m);
int cvg__session_on_push(cvg_session *s, const cvg__msg *m);
int cvg__session_on_error(cvg_session *s, const cvg__msg *m);

/* ack.c */
/* Receiving a page: start its results, note one op's (CVG__ACK_TAKEN or
 * CVG__ACK_DUPLICATE), and put them in canonical form before the page
 * commits (CVG_ELIMIT, with s->why, if they would not fit an ACK). */
void cvg__ack_reset(cvg_session *s);
int cvg__ack_note(cvg_session *s, const cvg_dot *d, int32_t result);
int cvg__ack_finish(cvg_session *s);
/* Whether an op refused with @p rc is named in an ACK: a code about the op,
 * not about this replica (memory, disk). */
bool cvg__ack_refusal(int rc);
/* Queue the ACK of the page just committed (@p more: it said more follow),
 * or of a refused page, naming its op @p d refused with @p code. */
int cvg__session_send_ack(cvg_session *s, bool more);
/* The same for a PUSH page; the ACK of a push round's last page carries a
 * new token (push_token), which the pusher's next HAVE must carry back. */
int cvg__session_send_push_ack(cvg_session *s, bool more);
void cvg__session_send_refusal(cvg_session *s, const cvg_dot *d, int code);
/* Sending a page: our seqs lo..hi of @p origin are in it; then done, once
 * per page. */
int cvg__session_sent_add(cvg_session *s, const cvg_replica_id *origin,
                          uint64_t lo, uint64_t hi);
void cvg__session_sent_done(cvg_session *s);
int cvg__session_on_ack(cvg_session *s, const cvg__msg *m);

#endif
