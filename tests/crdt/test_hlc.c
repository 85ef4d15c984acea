/*
 * The hybrid logical clock: strictly increasing ticks whatever the wall
 * clock does, carry into the milliseconds under bursts, refusal of remote
 * times too far ahead, and exhaustion at the top of the range.
 */
#include <criterion/criterion.h>

#include "crdt/crdt_int.h"
#include "testutil.h"

#define MS(t) ((t) >> 16)
#define LOGICAL(t) ((t)&0xFFFFu)

Test(hlc, first_tick_is_wall_time)
{
    uint64_t clock = 0;
    uint64_t t = 0;
    cr_assert_eq(cvg__hlc_tick(&clock, 1234, &t), CVG_OK);
    cr_expect_eq(t, (uint64_t)1234 << 16);
    cr_expect_eq(clock, t);
}

Test(hlc, monotonic_with_frozen_clock)
{
    uint64_t clock = 0;
    uint64_t prev = 0;
    for (int i = 0; i < 5000; i++) {
        uint64_t t;
        cr_assert_eq(cvg__hlc_tick(&clock, 1000000, &t), CVG_OK);
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
        cr_assert_eq(cvg__hlc_tick(&clock, now, &t), CVG_OK);
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
        cr_assert_eq(cvg__hlc_tick(&clock, now, &t), CVG_OK);
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
    cr_assert_eq(cvg__hlc_tick(&clock, now + 2, &t), CVG_OK);
    cr_expect_eq(t, (now + 2) << 16);
}

Test(hlc, receive_refuses_ten_minutes_ahead)
{
    const uint64_t now = 1700000000000ull;
    uint64_t clock = 0;
    uint64_t t;
    cr_assert_eq(cvg__hlc_tick(&clock, now, &t), CVG_OK);
    uint64_t before = clock;
    uint64_t remote = (now + 10 * 60 * 1000) << 16;
    cr_expect_eq(cvg__hlc_receive(&clock, remote, now, 60000), CVG_ECLOCK);
    cr_expect_eq(clock, before, "a refused time must not move the clock");
}

Test(hlc, receive_bound_is_inclusive)
{
    const uint64_t now = 1700000000000ull;
    uint64_t clock = now << 16;
    uint64_t at = ((now + 60000) << 16) | 0xFFFF;
    uint64_t past = (now + 60001) << 16;
    cr_expect_eq(cvg__hlc_receive(&clock, past, now, 60000), CVG_ECLOCK);
    cr_expect_eq(clock, now << 16);
    cr_expect_eq(cvg__hlc_receive(&clock, at, now, 60000), CVG_OK);
    cr_expect_eq(clock, at);
}

Test(hlc, receive_accepts_within_bound_and_tick_follows)
{
    const uint64_t now = 1700000000000ull;
    uint64_t clock = 0;
    uint64_t remote = ((now + 30000) << 16) | 17;
    cr_assert_eq(cvg__hlc_receive(&clock, remote, now, 60000), CVG_OK);
    cr_expect_eq(clock, remote);
    uint64_t t;
    cr_assert_eq(cvg__hlc_tick(&clock, now, &t), CVG_OK);
    cr_expect_gt(t, remote);
    cr_expect_eq(t, remote + 1);
}

Test(hlc, receive_older_time_keeps_clock)
{
    const uint64_t now = 5000;
    uint64_t clock = (now << 16) | 9;
    cr_expect_eq(cvg__hlc_receive(&clock, (now - 10) << 16, now, 60000),
                 CVG_OK);
    cr_expect_eq(clock, (now << 16) | 9);
}

Test(hlc, receive_huge_bound_does_not_overflow)
{
    /* now + max_ahead would wrap to a small limit if computed naively. */
    uint64_t clock = 0;
    uint64_t remote = ((uint64_t)1 << 63) | 5;
    cr_expect_eq(cvg__hlc_receive(&clock, remote, 1000, UINT64_MAX), CVG_OK);
    cr_expect_eq(clock, remote);
    clock = 0;
    cr_expect_eq(cvg__hlc_receive(&clock, UINT64_MAX, UINT64_MAX - 5, 100),
                 CVG_OK);
}

Test(hlc, exhaustion_at_uint64_max)
{
    uint64_t clock = UINT64_MAX - 1;
    uint64_t t = 0;
    cr_assert_eq(cvg__hlc_tick(&clock, 1000, &t), CVG_OK);
    cr_expect_eq(t, UINT64_MAX);
    cr_expect_eq(cvg__hlc_tick(&clock, 1000, &t), CVG_ECLOCK);
    cr_expect_eq(clock, UINT64_MAX, "an exhausted clock stays put");
    cr_expect_eq(t, 0, "out-param zeroed on error");
}

Test(hlc, wall_time_must_fit_48_bits)
{
    uint64_t clock = 0;
    uint64_t t;
    cr_expect_eq(cvg__hlc_tick(&clock, (uint64_t)1 << 48, &t), CVG_ECLOCK);
    cr_expect_eq(clock, 0);
    cr_expect_eq(cvg__hlc_tick(&clock, ((uint64_t)1 << 48) - 1, &t), CVG_OK);
    cr_expect_eq(MS(t), ((uint64_t)1 << 48) - 1);
}
