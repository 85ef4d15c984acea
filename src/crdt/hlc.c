/*
 * The hybrid logical clock: 48 bits of wall milliseconds and a 16-bit
 * logical counter in one uint64. A replica's clock never runs more than a
 * bound (max_clock_ahead_ms) ahead of its wall clock: within it, ticks are
 * strictly increasing whatever the wall clock does; a clock found beyond it
 * (the wall clock was wrong, then fixed) resumes from the wall. A remote
 * time is always accepted, so a replica whose clock once ran ahead is never
 * cut off, but it moves the local clock only up to the bound, so one bad
 * clock cannot drag the others along. Nothing here orders causally related
 * ops: an op names the dots it replaces, so stamps only break ties between
 * concurrent writes (docs/architecture.md, "Clock jumps").
 */
#include "crdt_int.h"

/* The wall part must fit 48 bits so that now << 16 does not lose bits. */
#define WALL_LIMIT ((uint64_t)1 << 48)

/* now_ms + max_ahead_ms, saturated: a huge bound means "no bound". */
static uint64_t
limit_ms(uint64_t now_ms, uint64_t max_ahead_ms)
{
    return now_ms > UINT64_MAX - max_ahead_ms ? UINT64_MAX
                                              : now_ms + max_ahead_ms;
}

int
cvg__hlc_tick(uint64_t *clock, uint64_t now_ms, uint64_t max_ahead_ms,
              uint64_t *out)
{
    if (now_ms >= WALL_LIMIT) {
        *out = 0;
        return CVG_ECLOCK;
    }
    uint64_t wall = now_ms << 16;
    uint64_t next;
    if ((*clock >> 16) > limit_ms(now_ms, max_ahead_ms)) {
        /* Beyond the bound only through this replica's own wall clock
         * having been ahead (received times never take it there): resume
         * from the wall rather than stamp every later write as far ahead. */
        next = wall;
    } else if (*clock == UINT64_MAX) {
        *out = 0;
        return CVG_ECLOCK;
    } else {
        /* *clock + 1 carries out of the logical counter into the
         * milliseconds when the counter is full, so a burst never wraps:
         * the clock runs a little ahead until the wall catches up. */
        next = *clock + 1;
    }
    uint64_t t = wall > next ? wall : next;
    *clock = t;
    *out = t;
    return CVG_OK;
}

bool
cvg__hlc_receive(uint64_t *clock, uint64_t remote, uint64_t now_ms,
                 uint64_t max_ahead_ms)
{
    uint64_t lim = limit_ms(now_ms, max_ahead_ms);
    /* The start of the bound's last millisecond: the logical counter keeps
     * that millisecond's room for local ticks, so a tick after a held time
     * stays within the bound (and increases) unless 65,536 of them come
     * within one millisecond of a frozen wall clock. */
    uint64_t ceiling = lim >= WALL_LIMIT ? UINT64_MAX : lim << 16;
    uint64_t seen = remote > ceiling ? ceiling : remote;
    if (seen > *clock) {
        *clock = seen;
    }
    return (remote >> 16) > lim;
}
