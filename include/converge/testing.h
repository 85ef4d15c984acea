/*
 * converge/testing.h: a faulty transport for tests of sync, shipped as its
 * own library (converge::testing, or pkg-config converge-testing) so that
 * the core library and its ABI carry no test harness.
 *
 * A link carries messages between two sessions of one process, as
 * cvg_sync_local() does, but like a bad network: it drops, duplicates,
 * reorders, delays and cuts messages, and can be partitioned. Apps use it
 * to test that their own code survives what sync survives: a sync cut at
 * any point, messages twice, late or never.
 *
 * Example:
 *     cvg_link_options o;
 *     cvg_link_options_init(&o);
 *     o.seed = 42;
 *     o.drop_pct = 10;
 *     cvg_link *l;
 *     if (cvg_link_new(&o, &l) == CVG_OK) {
 *         cvg_link_result res;
 *         if (cvg_link_sync(l, till, server, 1000, &res) == CVG_DONE) {
 *             // a message was lost: sync again
 *         }
 *         cvg_link_free(l);
 *     }
 *
 * Thread rules: a link and everything it holds belong to one thread at a
 * time, and it calls into both sessions, so it runs on the thread that
 * owns their replicas. It allocates with the C library's malloc.
 */
#ifndef CONVERGE_TESTING_H
#define CONVERGE_TESTING_H

#include <converge.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A link carries messages between two sessions of this process, as
 * cvg_sync_local() does, but like a bad network: it drops, duplicates,
 * reorders, delays and cuts messages, and can be partitioned. The faults
 * are drawn from a small PRNG seeded from the options, so a seed replays
 * the same faults for the same traffic. Meant for tests and demos of what
 * the protocol survives; an app's real transport replaces it.
 *
 * A link and everything it holds belong to one thread at a time, and
 * cvg_link_run() calls into both sessions, so it runs on the thread that
 * owns their replicas. */
typedef struct cvg_link cvg_link;

#define CVG_LINK_OPTIONS_VERSION 1

/** Fault rates are percents (0..100) per message. */
typedef struct cvg_link_options {
    uint32_t version;         /* CVG_LINK_OPTIONS_VERSION */
    uint64_t seed;            /* the faults are a function of the seed */
    unsigned drop_pct;        /* a message sent is lost */
    unsigned dup_pct;         /* a message sent arrives twice */
    unsigned reorder_pct;     /* a later message overtakes it */
    unsigned delay_pct;       /* a message sent is held back */
    unsigned cut_pct;         /* only a prefix (maybe empty) arrives */
    unsigned max_delay_steps; /* a held message waits 1 to this many
                                 deliveries; default 8 (also for 0) */
    unsigned queue_max;       /* messages in flight each way; a full queue
                                 drops; default 256 (also for 0) */
} cvg_link_options;

/** Fill @p o with the defaults: no faults, seed 0. */
CVG_API void cvg_link_options_init(cvg_link_options *o);

/** What a link did, counted in messages (bytes: delivered, after cuts) over
 * its whole life. Every message sent, and every copy made by dup_pct, is
 * delivered, dropped or still in flight. */
typedef struct cvg_link_stats {
    uint64_t delivered;  /* given to a session, whole or cut */
    uint64_t dropped;    /* lost: drop_pct, a down link, a full queue, or
                            left over when both sessions were done */
    uint64_t duplicated; /* copies added by dup_pct */
    uint64_t reordered;  /* delivered ahead of an older ready message */
    uint64_t delayed;    /* held back by delay_pct */
    uint64_t cut;        /* delivered with only a prefix */
    uint64_t bytes;      /* bytes delivered */
} cvg_link_stats;

/**
 * Create a link. Its queues are allocated here, so carrying a message
 * allocates only the message's copy.
 *
 * Ownership: @p o is copied. Free the link with cvg_link_free().
 *
 * @param[in]  o    NULL for the defaults (no faults).
 * @param[out] out  The link; NULL on error.
 * @return CVG_OK, or CVG_EINVAL (NULL @p out, unknown version, a percent
 *   above 100), CVG_ENOMEM.
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_link_new(const cvg_link_options *o,
                                       cvg_link **out);

/** Free @p l and the messages still in flight. Accepts NULL. The sessions
 * it carried for are not touched. */
CVG_API void cvg_link_free(cvg_link *l);

/**
 * Partition the link (@p down true) or heal it. While down, every message
 * sent is lost, and so is every message in flight when its turn comes:
 * nothing crosses. Accepts NULL (no-op).
 */
CVG_API void cvg_link_set_down(cvg_link *l, bool down);

/** Drop every message in flight (counted as dropped), e.g. before carrying
 * new sessions after cvg_link_run() stopped at its step budget. Accepts
 * NULL. */
CVG_API void cvg_link_clear(cvg_link *l);

/**
 * Carry messages between two open sessions, @p a's output to @p b's input
 * and back, with the link's faults, until both sessions are done, the link
 * is quiet (nothing to send, nothing in flight), or @p max_steps deliveries
 * were made in this call.
 *
 * Messages in flight are copies owned by the link. After a session error
 * it goes on carrying until quiet, so the failing side's ERROR reaches the
 * other. When both sessions are done, what is still in flight (late
 * duplicates) is dropped, as a closed session would never read it. When
 * the budget runs out, messages in flight stay in the link: call again with
 * the same sessions to go on, or cvg_link_clear() before new ones (else
 * they arrive in the new sessions, as late packets would).
 *
 * Ownership: @p a and @p b are borrowed for the call; they stay open.
 * Thread safety: that of the sessions' replicas (see above).
 *
 * @param[in] l          The link.
 * @param[in] a, b       Open sessions of two different replicas.
 * @param[in] max_steps  Most deliveries in this call.
 * @return
 *   - CVG_OK      both sessions are done.
 *   - CVG_DONE    the link went quiet, or the budget ran out, and the
 *                 sessions are not both done: a message was lost, so the
 *                 app would time out, close both and open new sessions.
 *   - a negative code: the first error of a session (from
 *                 cvg_session_input(), or one it had already): CVG_ECORRUPT
 *                 (a cut message), CVG_EPEER (the peer of a failed
 *                 session), CVG_EVERSION, CVG_EGAP, CVG_ECLOCK,
 *                 CVG_EEQUIVOCAL, CVG_EFORGED, CVG_ELIMIT, CVG_EPROTO,
 *                 CVG_EACCES, CVG_EBUSY, CVG_EFULL, CVG_EIO; or CVG_EINVAL
 *                 (NULL argument, @p a == @p b), or CVG_ENOMEM (copying a
 *                 message; that message is lost).
 *   The faults themselves never make it fail; what they break shows up as
 *   CVG_DONE or as a session's error.
 * @since 0.1
 */
CVG_API CVG_NODISCARD int cvg_link_run(cvg_link *l, cvg_session *a,
                                       cvg_session *b, unsigned max_steps);

/** The link's counts so far into @p out; @p size is sizeof *out as the
 * caller was built. Does nothing for a NULL argument or a @p size smaller
 * than this struct of version 0.2. */
CVG_API void cvg_link_stats_get(const cvg_link *l, cvg_link_stats *out,
                                size_t size);

/** How the two sessions of cvg_link_sync() ended. */
typedef struct cvg_link_result {
    int error_a;  /* CVG_OK, or the code that ended a's session */
    int error_b;  /* the same for b */
    bool done;    /* both sessions were done */
    cvg_session_stats stats_a; /* what a's session moved */
} cvg_link_result;

/**
 * Sync two replicas over the link: open a session on each (default
 * options), clear what the link still holds from earlier sessions, carry
 * messages with cvg_link_run() for at most @p max_steps deliveries, and
 * close both sessions. The faults may break the sessions; that is not an
 * error of this call but is reported in @p out (a replica never is left
 * invalid by it: that is what a test checks next).
 *
 * Ownership: @p a and @p b are borrowed; they stay open. @p out may be
 * NULL.
 * Thread safety: that of the replicas.
 *
 * @return
 *   - CVG_OK     both sessions are done.
 *   - CVG_DONE   they are not: a message was lost or cut, the budget ran
 *                out, or a session failed (its code in @p out).
 *   - CVG_EINVAL a NULL link or replica, or @p a == @p b.
 *   - CVG_ENOMEM, CVG_ECORRUPT, CVG_ELIMIT, CVG_EIO  a session could
 *                not be opened (see cvg_session_open()); nothing was sent.
 * @since 0.2
 */
CVG_API CVG_NODISCARD int cvg_link_sync(cvg_link *l, cvg_replica *a,
                                        cvg_replica *b, unsigned max_steps,
                                        cvg_link_result *out);

#ifdef __cplusplus
}
#endif
#endif /* CONVERGE_TESTING_H */
