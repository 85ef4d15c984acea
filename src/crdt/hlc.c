/*
 * The hybrid logical clock: 48 bits of wall milliseconds and a 16-bit
 * logical counter in one uint64. Ticks are strictly increasing whatever the
 * wall clock does; remote times too far in the future are refused.
 */
#include "crdt_int.h"

/* The wall part must fit 48 bits so that now << 16 does not lose bits. */
#define WALL_LIMIT ((uint64_t)1 << 48)

int
cvg__hlc_tick(uint64_t *clock, uint64_t now_ms, uint64_t *out)
{
    if (*clock == UINT64_MAX || now_ms >= WALL_LIMIT) {
        *out = 0;
        return CVG_ECLOCK;
    }
    /* *clock + 1 carries out of the logical counter into the milliseconds
     * when the counter is full, so a burst never wraps: the clock simply
     * runs a little ahead of the wall until the wall catches up. */
    uint64_t wall = now_ms << 16;
    uint64_t next = *clock + 1;
    uint64_t t = wall > next ? wall : next;
    *clock = t;
    *out = t;
    return CVG_OK;
}

int
cvg__hlc_receive(uint64_t *clock, uint64_t remote, uint64_t now_ms,
                 uint64_t max_ahead_ms)
{
    /* now_ms + max_ahead_ms may overflow with a huge bound; saturate, since
     * such a bound means "accept anything". */
    uint64_t limit =
        now_ms > UINT64_MAX - max_ahead_ms ? UINT64_MAX : now_ms + max_ahead_ms;
    if ((remote >> 16) > limit) {
        /* Refused, never clamped: clamping would reorder the remote op
         * against others stamped with the true time. */
        return CVG_ECLOCK;
    }
    if (remote > *clock) {
        *clock = remote;
    }
    return CVG_OK;
}
