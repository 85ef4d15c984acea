/*
 * The hybrid logical clock: strictly increasing ticks whatever the wall
 * clock does within the bound, carry into the milliseconds under bursts,
 * remote times always taken but followed only up to the bound, a clock
 * past the bound resuming from the wall, and exhaustion at the top of the
 * range.
 */
#include <criterion/criterion.h>

#include "crdt/crdt_int.h"
#include "testutil.h"

#define MS(t) ((t) >> 16)
#define LOGICAL(t) ((t)&0xFFFFu)
#define BOUND 60000 /* ms: the default max_clock_ahead_ms */
#define YEAR (365ull * 24 * 3600 * 1000)

Test(hlc, first_tick_is_wall_time)
{
    uint64_t clock = 0;
    uint64_t t = 0;
    cr_assert_eq(cvg__hlc_tick(&clock, 1234, BOUND, &t), CVG_OK);
    cr_expect_eq(t, (uint64_t)1234 << 16);
    cr_expect_eq(clock, t);
}

Test(hlc, monotonic_with_frozen_clock)
{
    uint64_t clock = 0;
    uint64_t prev = 0;
    for (int i = 0; i < 5000; i++) {
        uint64_t t;
        cr_assert_eq(cvg__hlc_tick(&clock, 1000000, BOUND, &t), CVG_OK);
        if (i > 0) {
            cr_assert_gt(t, prev, "tick %d: %llu after %llu", i,
                         (unsigned long long)t, (unsigned long long)prev);
        }
        cr_assert_eq(clock, t);
        prev = t;
    }
    cr_expect_eq(MS(prev), 1000000);
    cr_expect_eq(LOGICAL(prev), 4999);
}

Test(hlc, monotonic_with_clock_going_backwards)
{
    uint64_t seed = cvg_test_seed(42);
    uint64_t rng = seed;
    uint64_t clock = 0;
    uint64_t prev = 0;
    uint64_t now = 5000000;
    for (int i = 0; i < 5000; i++) {
        /* Mostly backwards, sometimes a jump forward. */
        if (cvg_test_below(&rng, 4) == 0) {
            now += cvg_test_below(&rng, 1000);
        } else {
            now -= cvg_test_below(&rng, 100);
        }
        uint64_t t;
        cr_assert_eq(cvg__hlc_tick(&clock, now, BOUND, &t), CVG_OK);
        cr_assert_gt(t, prev,
                     "tick %d not increasing (replay with "
                     "CVG_TEST_SEED=%llu)",
                     i, (unsigned long long)seed);
        cr_assert_geq(MS(t), now, "tick %d behind the wall clock", i);
        prev = t;
    }
}

Test(hlc, burst_of_70000_carries_into_millis)
{
    const uint64_t now = 777777;
    uint64_t clock = 0;
    uint64_t prev = 0;
    for (int i = 0; i < 70000; i++) {
        uint64_t t;
        cr_assert_eq(cvg__hlc_tick(&clock, now, BOUND, &t), CVG_OK);
        if (i > 0) {
            cr_assert_eq(t, prev + 1, "tick %d", i);
        }
        prev = t;
    }
    /* 65,536 ticks fill ms `now`; the rest run in ms now + 1. */
    cr_expect_eq(MS(prev), now + 1);
    cr_expect_eq(LOGICAL(prev), 70000 - 65536 - 1);

    /* Once the wall clock passes the carried time it takes over again. */
    uint64_t t;
    cr_assert_eq(cvg__hlc_tick(&clock, now + 2, BOUND, &t), CVG_OK);
    cr_expect_eq(t, (now + 2) << 16);
}

Test(hlc, receive_takes_a_year_ahead_but_holds_the_clock_at_the_bound)
{
    const uint64_t now = 1700000000000ull;
    uint64_t clock = 0;
    uint64_t t;
    cr_assert_eq(cvg__hlc_tick(&clock, now, BOUND, &t), CVG_OK);
    uint64_t remote = (now + YEAR) << 16;
    cr_expect(cvg__hlc_receive(&clock, remote, now, BOUND),
              "a time past the bound is reported as held");
    cr_expect_eq(clock, (now + BOUND) << 16,
                 "the clock stops at the start of the bound's last ms");
    /* The next local tick follows the held clock, not the remote time. */
    cr_assert_eq(cvg__hlc_tick(&clock, now, BOUND, &t), CVG_OK);
    cr_expect_eq(t, ((now + BOUND) << 16) + 1);
    cr_expect_lt(t, remote);
    /* Another far time later on: still held, never past the bound. */
    cr_expect(cvg__hlc_receive(&clock, UINT64_MAX, now + 1, BOUND));
    cr_expect_eq(clock, (now + 1 + BOUND) << 16);
}

Test(hlc, receive_bound_is_inclusive)
{
    /* Ahead means the wall part past now + bound; the clock follows up to
     * the start of that last millisecond. */
    const uint64_t now = 1700000000000ull;
    uint64_t clock = now << 16;
    uint64_t at = (now + BOUND) << 16;
    cr_expect(!cvg__hlc_receive(&clock, at, now, BOUND));
    cr_expect_eq(clock, at);
    clock = now << 16;
    cr_expect(!cvg__hlc_receive(&clock, at | 0xFFFF, now, BOUND),
              "within the bound's last ms: not ahead");
    cr_expect_eq(clock, at, "but the clock stops at its start");
    clock = now << 16;
    cr_expect(cvg__hlc_receive(&clock, (now + BOUND + 1) << 16, now, BOUND));
    cr_expect_eq(clock, at);
}

Test(hlc, receive_accepts_within_bound_and_tick_follows)
{
    const uint64_t now = 1700000000000ull;
    uint64_t clock = 0;
    uint64_t remote = ((now + 30000) << 16) | 17;
    cr_expect(!cvg__hlc_receive(&clock, remote, now, BOUND));
    cr_expect_eq(clock, remote);
    uint64_t t;
    cr_assert_eq(cvg__hlc_tick(&clock, now, BOUND, &t), CVG_OK);
    cr_expect_gt(t, remote);
    cr_expect_eq(t, remote + 1);
}

Test(hlc, receive_older_time_keeps_clock)
{
    const uint64_t now = 5000;
    uint64_t clock = (now << 16) | 9;
    cr_expect(!cvg__hlc_receive(&clock, (now - 10) << 16, now, BOUND));
    cr_expect_eq(clock, (now << 16) | 9);
    /* A clock already past the bound (the wall went back) is not lowered
     * by receiving: only the next tick decides. */
    clock = (now + YEAR) << 16;
    cr_expect(cvg__hlc_receive(&clock, UINT64_MAX, now, BOUND));
    cr_expect_eq(clock, (now + YEAR) << 16);
}

Test(hlc, receive_huge_bound_does_not_overflow)
{
    /* now + max_ahead would wrap to a small limit if computed naively. */
    uint64_t clock = 0;
    uint64_t remote = ((uint64_t)1 << 63) | 5;
    cr_expect(!cvg__hlc_receive(&clock, remote, 1000, UINT64_MAX));
    cr_expect_eq(clock, remote);
    clock = 0;
    cr_expect(!cvg__hlc_receive(&clock, UINT64_MAX, UINT64_MAX - 5, 100));
    cr_expect_eq(clock, UINT64_MAX);
    /* A bound reaching past 48 bits of ms does not hold anything. */
    clock = 0;
    cr_expect(!cvg__hlc_receive(&clock, UINT64_MAX, 1000, (1ull << 48)));
    cr_expect_eq(clock, UINT64_MAX);
}

/* The wall clock a year ahead, then fixed: within the bound ticks go on
 * increasing; past it the clock resumes from the wall, and from there
 * increases again. */
Test(hlc, a_clock_past_the_bound_resumes_from_the_wall)
{
    const uint64_t now = 1700000000000ull;
    uint64_t clock = 0;
    uint64_t t, ahead;
    cr_assert_eq(cvg__hlc_tick(&clock, now + YEAR, BOUND, &ahead), CVG_OK);
    cr_expect_eq(ahead, (now + YEAR) << 16);
    cr_assert_eq(cvg__hlc_tick(&clock, now, BOUND, &t), CVG_OK);
    cr_expect_eq(t, now << 16, "resumed from the wall");
    cr_expect_eq(clock, t);
    uint64_t prev = t;
    cr_assert_eq(cvg__hlc_tick(&clock, now, BOUND, &t), CVG_OK);
    cr_expect_eq(t, prev + 1, "and increasing from there");

    /* Exactly at the bound the clock is kept; one ms past, not. */
    clock = (now + BOUND) << 16 | 0xFFFF;
    cr_assert_eq(cvg__hlc_tick(&clock, now, BOUND, &t), CVG_OK);
    cr_expect_eq(t, (now + BOUND + 1) << 16, "kept: +1");
    cr_assert_eq(cvg__hlc_tick(&clock, now, BOUND, &t), CVG_OK);
    cr_expect_eq(t, now << 16, "now one ms past the bound: resumed");

    /* A huge bound keeps the old rule. */
    clock = (now + YEAR) << 16;
    cr_assert_eq(cvg__hlc_tick(&clock, now, UINT64_MAX, &t), CVG_OK);
    cr_expect_eq(t, ((now + YEAR) << 16) + 1);
}

/* A time received past the bound never makes a tick resume backwards:
 * held at the bound, the clock stays within it, so ticks increase. */
Test(hlc, received_times_never_make_ticks_go_back)
{
    uint64_t seed = cvg_test_seed(7);
    uint64_t rng = seed;
    uint64_t now = 1700000000000ull;
    uint64_t clock = 0, prev = 0;
    for (int i = 0; i < 5000; i++) {
        now += cvg_test_below(&rng, 3); /* a slow, steady wall */
        uint64_t remote = (now + cvg_test_below(&rng, 2 * BOUND)) << 16;
        if (cvg_test_below(&rng, 10) == 0) {
            remote = (now + YEAR) << 16;
        }
        (void)cvg__hlc_receive(&clock, remote, now, BOUND);
        cr_assert_leq(MS(clock), now + BOUND, "step %d (seed %llu)", i,
                      (unsigned long long)seed);
        uint64_t t;
        cr_assert_eq(cvg__hlc_tick(&clock, now, BOUND, &t), CVG_OK);
        cr_assert_gt(t, prev, "step %d (seed %llu)", i,
                     (unsigned long long)seed);
        prev = t;
    }
}

Test(hlc, exhaustion_at_uint64_max)
{
    /* Only reachable with no bound: within one, a clock that high is far
     * past the bound and resumes from the wall instead. */
    uint64_t clock = UINT64_MAX - 1;
    uint64_t t = 0;
    cr_assert_eq(cvg__hlc_tick(&clock, 1000, UINT64_MAX, &t), CVG_OK);
    cr_expect_eq(t, UINT64_MAX);
    cr_expect_eq(cvg__hlc_tick(&clock, 1000, UINT64_MAX, &t), CVG_ECLOCK);
    cr_expect_eq(clock, UINT64_MAX, "an exhausted clock stays put");
    cr_expect_eq(t, 0, "out-param zeroed on error");
}

Test(hlc, wall_time_must_fit_48_bits)
{
    uint64_t clock = 0;
    uint64_t t;
    cr_expect_eq(cvg__hlc_tick(&clock, (uint64_t)1 << 48, BOUND, &t),
                 CVG_ECLOCK);
    cr_expect_eq(clock, 0);
    cr_expect_eq(cvg__hlc_tick(&clock, ((uint64_t)1 << 48) - 1, BOUND, &t),
                 CVG_OK);
    cr_expect_eq(MS(t), ((uint64_t)1 << 48) - 1);
}
