/*
 * converge/testing.h: a faulty transport for tests of sync, shipped as its
 * own library (CMake converge::testing or converge::testing_static,
 * pkg-config converge-testing) so that the core library and its ABI carry
 * no test harness. It is written on the public API of converge.h alone.
 *
 * How it works: a link holds two queues of messages in flight, one per
 * direction. cvg_link_run() takes what each session has to send, decides
 * each message's fate when it is sent (lost, held back for a few
 * deliveries, sent twice), then delivers one ready message at a time,
 * sometimes not the oldest (reorder) and sometimes only a prefix of it
 * (cut). Time passes by deliveries, not by the clock. Every choice is drawn
 * from a small PRNG seeded from the options, so a seed replays the same
 * faults for the same traffic, and a failing test names its seed. A
 * partition (cvg_link_set_down()) loses everything without drawing.
 * cvg_link_sync() wraps one whole sync of two replicas: open a session on
 * each, run, close.
 *
 * Example:
 *     cvg_link_options o;
 *     cvg_link_options_init(&o);
 *     o.seed = 42;
 *     o.drop_pct = 10;
 *     cvg_link *l;
 *     if (cvg_link_new(&o, &l) == CVG_OK) {
 *         if (cvg_link_sync(l, till, server, 1000, NULL) == CVG_DONE) {
 *             // a message was lost or cut: sync again
 *         }
 *         cvg_link_free(l);
 *     }
 *
 * Thread rules, for every function here: a link is not locked. It and
 * everything it holds belong to one thread at a time, and since it calls
 * into the sessions (and cvg_link_sync() into the replicas), it runs on the
 * thread allowed to use them. Two links on two threads are independent.
 * Memory: the link allocates with the C library's malloc, not with the
 * core's allocator.
 */
#ifndef CONVERGE_TESTING_H
#define CONVERGE_TESTING_H

#include <converge.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A link between two sessions of this process. Opaque; made by
 * cvg_link_new(), freed by cvg_link_free(). */
typedef struct cvg_link cvg_link;

#define CVG_LINK_OPTIONS_VERSION 1

/** How a link misbehaves. Fault rates are percents (0..100), drawn per
 * message. Fill with cvg_link_options_init(), then change fields. */
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

/**
 * Fill @p o with the defaults: the current version, no faults, seed 0,
 * max_delay_steps 8, queue_max 256.
 *
 * @param[out] o  The options to fill; NULL does nothing.
 * @since 0.2
 */
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
 * Create a link. Its queues (2 x queue_max entries) are allocated here, so
 * carrying a message later allocates only the message's copy.
 *
 * Ownership: @p o is copied and may be freed after the call. The link is
 * the caller's until cvg_link_free(); it outlives any session it carries.
 *
 * @param[in]  o    The options; NULL for the defaults (no faults).
 * @param[out] out  The new link; set to NULL on error.
 * @return
 *   - CVG_OK      the link is in @p out.
 *   - CVG_EINVAL  @p out is NULL, @p o has version 0 or one newer than
 *                 CVG_LINK_OPTIONS_VERSION, or a percent above 100.
 *   - CVG_ENOMEM  the link or its queues could not be allocated.
 * @since 0.2
 */
CVG_API CVG_NODISCARD int cvg_link_new(const cvg_link_options *o,
                                       cvg_link **out);

/**
 * Free @p l and the messages still in flight. The sessions and replicas it
 * carried for are not touched.
 *
 * @param[in] l  The link; NULL does nothing. Invalid after the call.
 * @since 0.2
 */
CVG_API void cvg_link_free(cvg_link *l);

/**
 * Partition the link (@p down true) or heal it (false). While down, every
 * message sent is lost, and so is every message in flight when its turn
 * comes: nothing crosses. A partition draws nothing from the PRNG, so how
 * long it lasts does not change the faults after it heals.
 *
 * @param[in] l     The link; NULL does nothing.
 * @param[in] down  true to cut the link, false to heal it.
 * @since 0.2
 */
CVG_API void cvg_link_set_down(cvg_link *l, bool down);

/**
 * Drop every message in flight (counted as dropped): before carrying new
 * sessions after cvg_link_run() stopped at its step budget, else those
 * messages arrive in the new sessions, as late packets would.
 * cvg_link_sync() does this itself.
 *
 * @param[in] l  The link; NULL does nothing.
 * @since 0.2
 */
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
 * the same sessions to go on, or cvg_link_clear() before new ones.
 *
 * Ownership: @p a and @p b are borrowed for the call; they stay open and
 * the caller closes them.
 *
 * @param[in] l          The link.
 * @param[in] a, b       Open sessions of two different replicas.
 * @param[in] max_steps  Most deliveries in this call (0: only take what the
 *                       sessions send, deliver nothing).
 * @return
 *   - CVG_OK      both sessions are done.
 *   - CVG_DONE    the link went quiet, or the budget ran out, and the
 *                 sessions are not both done: a message was lost, so an
 *                 app would time out, close both and open new sessions.
 *   - CVG_EINVAL  @p l, @p a or @p b is NULL, or @p a == @p b.
 *   - CVG_ENOMEM  a message could not be copied; that message is lost.
 *   - CVG_ECORRUPT, CVG_EPEER, CVG_EVERSION, CVG_EGAP, CVG_ECLOCK,
 *     CVG_EEQUIVOCAL, CVG_EFORGED, CVG_ELIMIT, CVG_EPROTO, CVG_EACCES,
 *     CVG_EBUSY, CVG_EFULL, CVG_EIO: a session failed (see
 *     cvg_session_input()). The first code cvg_session_input() gave in
 *     this call, else the error either session already had
 *     (cvg_session_error(), @p a's before @p b's). A cut message gives
 *     CVG_ECORRUPT; the peer of a failed session, CVG_EPEER.
 *   The faults themselves never make it fail; what they break shows up as
 *   CVG_DONE or as a session's error.
 * @since 0.2
 */
CVG_API CVG_NODISCARD int cvg_link_run(cvg_link *l, cvg_session *a,
                                       cvg_session *b, unsigned max_steps);

/**
 * Copy the link's counts so far into @p out.
 *
 * @param[in]  l     The link; NULL does nothing.
 * @param[out] out   Where to copy; NULL does nothing.
 * @param[in]  size  sizeof *out as the caller was built, so the struct can
 *                   grow; smaller than this struct of version 0.2 does
 *                   nothing.
 * @since 0.2
 */
CVG_API void cvg_link_stats_get(const cvg_link *l, cvg_link_stats *out,
                                size_t size);

/** How the two sessions of cvg_link_sync() ended. */
typedef struct cvg_link_result {
    int error_a;               /* CVG_OK, or the code that ended a's session */
    int error_b;               /* the same for b */
    bool done;                 /* both sessions were done */
    cvg_session_stats stats_a; /* what a's session moved */
    cvg_session_stats stats_b; /* what b's session moved */
} cvg_link_result;

/**
 * Sync two replicas over the link: open a session on each (default
 * session options), drop what the link still holds from earlier sessions,
 * carry messages with cvg_link_run() for at most @p max_steps deliveries,
 * and close both sessions. The faults may break the sessions; that is not
 * an error of this call, but CVG_DONE with the sessions' codes in @p out.
 * Whatever happened, both replicas stay valid, and the next sync resumes
 * from what this one stored.
 *
 * Ownership: @p a and @p b are borrowed; they stay open. @p out is the
 * caller's.
 *
 * @param[in]  l          The link.
 * @param[in]  a, b       Two different open replicas.
 * @param[in]  max_steps  Most deliveries, as for cvg_link_run().
 * @param[out] out        How the sessions ended; may be NULL. Zeroed first,
 *                        so it is all zero when no session was opened.
 * @return
 *   - CVG_OK      both sessions are done.
 *   - CVG_DONE    they are not: a message was lost or cut, the budget ran
 *                 out, or a session failed (its code in @p out).
 *   - CVG_EINVAL  @p l, @p a or @p b is NULL, or @p a == @p b.
 *   - CVG_ENOMEM  a session could not be opened, or a message could not be
 *                 copied (that message is lost).
 *   - CVG_ECORRUPT, CVG_ELIMIT, CVG_EIO  a session could not be opened
 *                 (see cvg_session_open()); nothing was sent.
 * @since 0.2
 */
CVG_API CVG_NODISCARD int cvg_link_sync(cvg_link *l, cvg_replica *a,
                                        cvg_replica *b, unsigned max_steps,
                                        cvg_link_result *out);

#ifdef __cplusplus
}
#endif
#endif /* CONVERGE_TESTING_H */
