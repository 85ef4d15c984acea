/*
 * What a replica remembers of who its peers are and where: the key a peer
 * proved, the address the transport gave, the time of last contact, kept
 * in its peer record and given by cvg_sync_status_get(). Sessions run in
 * memory here (the TCP address is tested in tests/net/test_peers_net.c).
 * Records are also written as raw bytes: one of the format before these
 * fields, which must still read, and damaged ones, which must read as
 * CVG_ECORRUPT and nothing else.
 */
#include <criterion/criterion.h>
#include <lmdb.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "converge.h"

#include "raw_record.h"
#include "sync/sync_int.h"
#include "testutil.h"

#define OK(call) cr_assert_eq((call), CVG_OK, "%s", #call)

typedef struct side {
    cvg_replica *r;
    uint64_t now;
    char dir[512];
} side;

static uint64_t
clock_of(void *ctx)
{
    return ((side *)ctx)->now;
}

static void
open_side(side *s)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = CVG_RELAXED;
    o.clock = clock_of;
    o.clock_ctx = s;
    cvg_replica_close(s->r);
    s->r = NULL;
    OK(cvg_replica_open(s->dir, &o, &s->r));
}

static void
new_side(side *s, const char *name)
{
    memset(s, 0, sizeof *s);
    s->now = 1700000000000ull;
    snprintf(s->dir, sizeof s->dir, "%s", cvg_test_dir(name));
    open_side(s);
}

static cvg_replica_id
id_of(const side *s)
{
    cvg_replica_id id;
    cvg_replica_id_get(s->r, &id);
    return id;
}

static cvg_sync_status
status_of(side *s, const side *peer)
{
    cvg_replica_id id = id_of(peer);
    cvg_sync_status st;
    OK(cvg_sync_status_get(s->r, &id, &st, sizeof st));
    return st;
}

static void
expect_key_of(const cvg_sync_status *st, const side *peer)
{
    uint8_t pk[CVG_PUBLIC_KEY_BYTES];
    OK(cvg_replica_public_key(peer->r, pk));
    cr_expect(st->has_key);
    cr_expect(memcmp(st->key, pk, sizeof pk) == 0, "not the peer's key");
}

/* Run two sessions against each other until both are done; every message
 * is delivered, in order. Bounded: a sync of a few ops takes a dozen. */
static void
run_pair(cvg_session *a, cvg_session *b)
{
    for (int round = 0; round < 100; round++) {
        bool moved = false;
        cvg_session *from[2] = {a, b}, *to[2] = {b, a};
        for (int i = 0; i < 2; i++) {
            cvg_bytes m;
            while (cvg_session_output(from[i], &m) == CVG_OK) {
                OK(cvg_session_input(to[i], m.data, m.len));
                moved = true;
            }
        }
        if (!moved) {
            break;
        }
    }
    cr_assert(cvg_session_done(a) && cvg_session_done(b));
}

Test(peer_records, a_sync_keeps_the_key_and_the_contact)
{
    side a, b;
    new_side(&a, "pr-a");
    new_side(&b, "pr-b");
    cvg_sync_status st = status_of(&a, &b);
    cr_expect(!st.has_key);
    cr_expect_eq(st.last_contact_ms, 0);
    cr_expect_str_eq(st.address, "");

    b.now += 5;
    OK(cvg_sync_local(a.r, b.r, NULL));
    st = status_of(&a, &b);
    expect_key_of(&st, &b);
    cr_expect_eq(st.last_contact_ms, a.now);
    cr_expect_str_eq(st.address, "", "in memory: no address");
    cr_expect_eq(st.state, CVG_SYNC_SYNCED);
    st = status_of(&b, &a);
    expect_key_of(&st, &a);
    cr_expect_eq(st.last_contact_ms, b.now, "each side's own clock");

    /* Stored, not only held in memory: a reopen reads it back. */
    a.now += 60000;
    open_side(&a);
    st = status_of(&a, &b);
    expect_key_of(&st, &b);
    cr_expect_eq(st.last_contact_ms, a.now - 60000);

    /* The next contact moves it. */
    OK(cvg_sync_local(a.r, b.r, NULL));
    cr_expect_eq(status_of(&a, &b).last_contact_ms, a.now);
    cvg_replica_close(a.r);
    cvg_replica_close(b.r);
}

Test(peer_records, the_transport_address_is_kept_with_the_record)
{
    side a, b;
    new_side(&a, "pa-a");
    new_side(&b, "pa-b");
    cvg_session *sa, *sb;
    OK(cvg_session_open(a.r, NULL, &sa));
    OK(cvg_session_open(b.r, NULL, &sb));
    cvg__session_set_address(sa, "10.1.2.3:7000");
    cvg__session_set_address(sb, "[2001:db8::1]:7001");
    /* What no record may hold is ignored: the good one stays. */
    char longest[CVG_SYNC_ADDRESS_MAX + 1];
    memset(longest, '1', CVG_SYNC_ADDRESS_MAX);
    longest[CVG_SYNC_ADDRESS_MAX] = '\0';
    cvg__session_set_address(sa, longest);
    cvg__session_set_address(sa, "10.0.0.1:1\n");
    cvg__session_set_address(sa, "10.0.0.1:\x1b[2J");
    cvg__session_set_address(sa, "");
    cvg__session_set_address(sa, NULL);
    cvg__session_set_address(NULL, "10.0.0.1:1");
    run_pair(sa, sb);
    cvg_session_close(sa);
    cvg_session_close(sb);
    cvg_sync_status st = status_of(&a, &b);
    cr_expect_str_eq(st.address, "10.1.2.3:7000");
    expect_key_of(&st, &b);
    st = status_of(&b, &a);
    cr_expect_str_eq(st.address, "[2001:db8::1]:7001");

    /* The longest address that fits is kept whole. */
    OK(cvg_session_open(a.r, NULL, &sa));
    OK(cvg_session_open(b.r, NULL, &sb));
    longest[CVG_SYNC_ADDRESS_MAX - 1] = '\0';
    cvg__session_set_address(sa, longest);
    run_pair(sa, sb);
    cvg_session_close(sa);
    cvg_session_close(sb);
    cr_expect_str_eq(status_of(&a, &b).address, longest);

    /* A session without an address leaves the last one seen, durably. */
    OK(cvg_sync_local(a.r, b.r, NULL));
    open_side(&a);
    cr_expect_str_eq(status_of(&a, &b).address, longest);
    cvg_replica_close(a.r);
    cvg_replica_close(b.r);
}

Test(peer_records, nothing_is_kept_before_the_peer_proves_its_key)
{
    side a, b;
    new_side(&a, "pp-a");
    new_side(&b, "pp-b");
    cvg_session *sa, *sb;
    OK(cvg_session_open(a.r, NULL, &sa));
    OK(cvg_session_open(b.r, NULL, &sb));
    cvg__session_set_address(sa, "10.1.2.3:7000");
    /* Only b's HELLO reaches a: its id and key, but never the proof. */
    cvg_bytes m;
    OK(cvg_session_output(sb, &m));
    OK(cvg_session_input(sa, m.data, m.len));
    cvg_session_close(sa);
    cvg_session_close(sb);
    size_t n = 1;
    OK(cvg_sync_peers(a.r, NULL, 0, &n));
    cr_expect_eq(n, 0, "a record of a peer that proved nothing");
    cvg_sync_status st = status_of(&a, &b);
    cr_expect(!st.has_key);
    cr_expect_str_eq(st.address, "");
    cr_expect_eq(st.last_contact_ms, 0);
    cvg_replica_close(a.r);
    cvg_replica_close(b.r);
}

/* ---- Records as bytes ---------------------------------------------------- */

static void
put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

/* Write the record of @p peer in the closed replica at @p dir as @p len
 * raw bytes. */
static void
put_record(const char *dir, const cvg_replica_id *peer, const uint8_t *rec,
           size_t len)
{
    cvg_test_raw_put(dir, "peers", peer->bytes, 16, rec, len, true);
}

/* The 48 bytes every record starts with (and all a record was before the
 * peer's key and address were kept). */
static void
rec_base(uint8_t b[48], uint64_t cursor, uint64_t acked, uint64_t ok_ms,
         uint64_t attempt_ms)
{
    put_be64(b, cursor);
    put_be64(b + 8, acked);
    put_be64(b + 16, acked); /* sent */
    put_be64(b + 24, ok_ms);
    put_be64(b + 32, attempt_ms);
    put_be64(b + 40, 0); /* last error */
}

/* A record of the longer format, as docs/architecture.md lays it out:
 * flags, key, last contact, address length and bytes; its length. */
static size_t
rec_long(uint8_t *b, uint8_t flags, const uint8_t *key, uint64_t contact,
         const char *addr, size_t addr_len)
{
    rec_base(b, 1, 0, 1700000000000ull, 1699999999000ull);
    b[48] = flags;
    memset(b + 49, 0, 32);
    if (key != NULL) {
        memcpy(b + 49, key, 32);
    }
    put_be64(b + 81, contact);
    b[89] = (uint8_t)addr_len;
    memcpy(b + 90, addr, addr_len);
    return 90 + addr_len;
}

Test(peer_records, a_record_of_the_older_format_reads)
{
    side a, b;
    new_side(&a, "po-a");
    new_side(&b, "po-b");
    cvg_replica_id bid = id_of(&b);
    /* a made 3 ops, b has them all, as a record of 0.2.0 says. */
    for (int i = 0; i < 3; i++) {
        cvg_txn *t;
        OK(cvg_txn_begin(a.r, 0, &t));
        cvg_key k = {"c", "k", "n"};
        OK(cvg_counter_add(t, &k, 1, NULL));
        OK(cvg_txn_commit(t));
    }
    cvg_replica_close(a.r);
    a.r = NULL;
    uint8_t rec[48];
    rec_base(rec, 1, 3, 1690000000000ull, 1689999999000ull);
    put_record(a.dir, &bid, rec, sizeof rec);
    open_side(&a);

    cvg_replica_id ids[2];
    size_t n = 0;
    OK(cvg_sync_peers(a.r, ids, 2, &n));
    cr_assert_eq(n, 1);
    cvg_sync_status st;
    memset(&st, 0xAA, sizeof st);
    OK(cvg_sync_status_get(a.r, &bid, &st, sizeof st));
    cr_expect_eq(st.committed, 3);
    cr_expect_eq(st.pending, 0);
    cr_expect_eq(st.last_sync_ms, 1690000000000ull);
    cr_expect_eq(st.last_attempt_ms, 1689999999000ull);
    cr_expect_eq(st.state, CVG_SYNC_SYNCED);
    cr_expect(!st.has_key);
    cr_expect_str_eq(st.address, "");
    cr_expect_eq(st.last_contact_ms, 0);
    uint8_t zero[CVG_PUBLIC_KEY_BYTES] = {0};
    cr_expect(memcmp(st.key, zero, sizeof zero) == 0);

    /* The next session writes the longer record, which reads back. */
    OK(cvg_sync_local(a.r, b.r, NULL));
    open_side(&a);
    st = status_of(&a, &b);
    expect_key_of(&st, &b);
    cr_expect_eq(st.committed, 3);
    cr_expect_eq(st.last_contact_ms, a.now);
    cvg_replica_close(a.r);
    cvg_replica_close(b.r);
}

Test(peer_records, damaged_records_are_corrupt)
{
    side a;
    new_side(&a, "pd-a");
    cvg_replica_close(a.r);
    a.r = NULL;
    cvg_replica_id peer;
    memset(peer.bytes, 0x5c, sizeof peer.bytes);
    uint8_t key[32];
    memset(key, 0x42, sizeof key);
    char addr[300];
    memset(addr, '7', sizeof addr);

    /* Good ones first: the bounds are where the format says. */
    uint8_t rec[512];
    size_t len = rec_long(rec, 1, key, 1700000000123ull, "127.0.0.1:9", 11);
    put_record(a.dir, &peer, rec, len);
    open_side(&a);
    cvg_sync_status st;
    OK(cvg_sync_status_get(a.r, &peer, &st, sizeof st));
    cr_expect(st.has_key && memcmp(st.key, key, 32) == 0);
    cr_expect_str_eq(st.address, "127.0.0.1:9");
    cr_expect_eq(st.last_contact_ms, 1700000000123ull);
    cvg_replica_close(a.r);
    a.r = NULL;
    len = rec_long(rec, 0, NULL, 0, addr, CVG_SYNC_ADDRESS_MAX - 1);
    put_record(a.dir, &peer, rec, len);
    open_side(&a);
    OK(cvg_sync_status_get(a.r, &peer, &st, sizeof st));
    cr_expect_eq(strlen(st.address), CVG_SYNC_ADDRESS_MAX - 1);
    cr_expect(!st.has_key);

    typedef struct bad {
        const char *what;
        uint8_t bytes[512];
        size_t len;
    } bad;
    static bad cases[12];
    size_t nc = 0;
    cases[nc].what = "an address one byte too long";
    cases[nc].len =
        rec_long(cases[nc].bytes, 1, key, 1, addr, CVG_SYNC_ADDRESS_MAX);
    nc++;
    cases[nc].what = "an address of 255 bytes";
    cases[nc].len = rec_long(cases[nc].bytes, 1, key, 1, addr, 255);
    nc++;
    cases[nc].what = "a control byte in the address";
    cases[nc].len = rec_long(cases[nc].bytes, 1, key, 1, "1.2.3.4:\x1b", 9);
    nc++;
    cases[nc].what = "DEL in the address";
    cases[nc].len = rec_long(cases[nc].bytes, 1, key, 1, "1.2.3.4:\x7f", 9);
    nc++;
    cases[nc].what = "UTF-8 in the address";
    cases[nc].len = rec_long(cases[nc].bytes, 1, key, 1, "h\xc3\xa9:1", 5);
    nc++;
    cases[nc].what = "a NUL in the address";
    cases[nc].len = rec_long(cases[nc].bytes, 1, key, 1, "1.2\0.4:1", 8);
    nc++;
    cases[nc].what = "a length past the record's end";
    cases[nc].len = rec_long(cases[nc].bytes, 1, key, 1, "1.2.3.4:1", 9) - 4;
    nc++;
    cases[nc].what = "bytes after the address";
    cases[nc].len = rec_long(cases[nc].bytes, 1, key, 1, "1.2.3.4:1", 9) + 3;
    nc++;
    cases[nc].what = "an unknown flag";
    cases[nc].len = rec_long(cases[nc].bytes, 3, key, 1, "1.2.3.4:1", 9);
    nc++;
    cases[nc].what = "the flags byte alone";
    cases[nc].len = rec_long(cases[nc].bytes, 1, key, 1, "", 0) - 41;
    nc++;
    cases[nc].what = "a record shorter than the first format";
    cases[nc].len = 47;
    nc++;
    cases[nc].what = "an empty record";
    cases[nc].len = 0;
    nc++;
    for (size_t i = 0; i < nc; i++) {
        cvg_replica_close(a.r);
        a.r = NULL;
        put_record(a.dir, &peer, cases[i].bytes, cases[i].len);
        open_side(&a);
        memset(&st, 0xAA, sizeof st);
        cr_expect_eq(cvg_sync_status_get(a.r, &peer, &st, sizeof st),
                     CVG_ECORRUPT, "%s", cases[i].what);
        cr_expect_eq(st.state, 0, "%s: not zeroed", cases[i].what);
        cr_expect_eq(st.address[0], '\0', "%s", cases[i].what);
        cr_expect(!st.has_key, "%s", cases[i].what);
        cr_expect(strstr(cvg_replica_errmsg(a.r), "damaged") != NULL, "%s: %s",
                  cases[i].what, cvg_replica_errmsg(a.r));
        /* The list of peers does not decode records: it still answers. */
        size_t n = 0;
        OK(cvg_sync_peers(a.r, NULL, 0, &n));
        cr_expect_eq(n, 1);
    }
    cvg_replica_close(a.r);
}

/* The struct as 0.2.0 had it, for a caller built then. */
typedef struct status_020 {
    cvg_sync_state state;
    uint64_t pending;
    uint64_t syncing;
    uint64_t committed;
    uint64_t failed;
    uint64_t last_sync_ms;
    uint64_t last_attempt_ms;
    int last_error;
} status_020;

Test(peer_records, an_older_caller_gets_the_fields_it_knows)
{
    side a, b;
    new_side(&a, "ps-a");
    new_side(&b, "ps-b");
    OK(cvg_sync_local(a.r, b.r, NULL));
    cvg_replica_id bid = id_of(&b);
    cvg_sync_status full = status_of(&a, &b);

    status_020 old;
    memset(&old, 0xAA, sizeof old);
    OK(cvg_sync_status_get(a.r, &bid, (cvg_sync_status *)(void *)&old,
                           sizeof old));
    cr_expect_eq(old.state, full.state);
    cr_expect_eq(old.last_sync_ms, full.last_sync_ms);
    cr_expect_eq(old.last_error, CVG_OK);

    /* Exactly up to last_error works; a byte less does not. */
    size_t least = offsetof(cvg_sync_status, key);
    uint8_t buf[sizeof(cvg_sync_status) + 16];
    memset(buf, 0xAA, sizeof buf);
    OK(cvg_sync_status_get(a.r, &bid, (cvg_sync_status *)(void *)buf, least));
    cr_expect_eq(buf[least], 0xAA, "written past the caller's size");
    cr_expect_eq(cvg_sync_status_get(a.r, &bid, (cvg_sync_status *)(void *)buf,
                                     least - 1),
                 CVG_EINVAL);

    /* A newer, larger struct: ours, then zeros. */
    memset(buf, 0xAA, sizeof buf);
    OK(cvg_sync_status_get(a.r, &bid, (cvg_sync_status *)(void *)buf,
                           sizeof buf));
    cvg_sync_status got;
    memcpy(&got, buf, sizeof got);
    cr_expect(got.has_key && memcmp(got.key, full.key, sizeof got.key) == 0);
    cr_expect_eq(got.last_contact_ms, full.last_contact_ms);
    for (size_t i = sizeof(cvg_sync_status); i < sizeof buf; i++) {
        cr_expect_eq(buf[i], 0, "byte %zu past ours", i);
    }
    cvg_replica_close(a.r);
    cvg_replica_close(b.r);
}
