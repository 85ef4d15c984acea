/*
 * Two replicas of one process synced both ways: two sessions run against
 * each other in memory (the protocol, not a shortcut). Also the one call
 * the network floor makes of the replica through sync: cvg__sync_fail.
 */
#include <stdarg.h>
#include <stdio.h>

#include "session_int.h"

int
cvg_sync_local(cvg_replica *a, cvg_replica *b, cvg_session_stats *stats_out)
{
    if (a == NULL || b == NULL || a == b) {
        return CVG_EINVAL;
    }
    cvg_session *sa = NULL, *sb = NULL;
    int rc = cvg_session_open(a, NULL, &sa);
    if (rc == CVG_OK) {
        rc = cvg_session_open(b, NULL, &sb);
    }
    /* Carry messages both ways until neither side has anything to say.
     * After an error too: the ACK naming a refused op, and the ERROR, must
     * reach the other side, which records why its op was refused. */
    bool moved = rc == CVG_OK;
    while (moved) {
        moved = false;
        cvg_bytes msg;
        while (cvg_session_output(sa, &msg) == CVG_OK) {
            moved = true;
            int irc = cvg_session_input(sb, msg.data, msg.len);
            rc = rc == CVG_OK ? irc : rc;
        }
        while (cvg_session_output(sb, &msg) == CVG_OK) {
            moved = true;
            int irc = cvg_session_input(sa, msg.data, msg.len);
            rc = rc == CVG_OK ? irc : rc;
        }
    }
    if (rc == CVG_OK && !(cvg_session_done(sa) && cvg_session_done(sb))) {
        rc = CVG_EMISUSE; /* cannot happen: the protocol stalled */
    }
    if (stats_out != NULL && sa != NULL) {
        cvg_session_stats_get(sa, stats_out, sizeof *stats_out);
    }
    cvg_session_close(sa);
    cvg_session_close(sb);
    return rc;
}

int
cvg__sync_fail(cvg_replica *r, int rc, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return cvg__replica_fail(r, rc, "%s", msg);
}
