/*
 * Who each side of a TCP sync remembers the other to be: after a client
 * syncs with a server on loopback, both sides' status for the other gives
 * its key, the address of the connection's far end, a last contact within
 * the sync, and SYNCED; kept across a reopen. Over IPv4 and, where the
 * machine has it, IPv6. Every wait is bounded by the connections'
 * timeouts and the server's stop.
 */
#define _GNU_SOURCE /* CLOCK_REALTIME_COARSE */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

/* The clock a replica reads by default (the kernel's last tick, up to a
 * few ms behind CLOCK_REALTIME): a contact is stamped by it, so the sync
 * is bracketed by it too. */
static uint64_t
wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static cvg_replica *
open_again(const char *dir)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = CVG_RELAXED;
    cvg_replica *r = NULL;
    OK(cvg_replica_open(dir, &o, &r));
    return r;
}

/* A replica in a fresh directory whose path is kept in @p dir, to open it
 * again later. */
static cvg_replica *
open_fresh(const char *name, char *dir, size_t cap)
{
    snprintf(dir, cap, "%s", cvg_test_dir(name));
    return open_again(dir);
}

static cvg_sync_status
status_for(cvg_replica *r, cvg_replica *peer)
{
    cvg_replica_id id;
    cvg_replica_id_get(peer, &id);
    cvg_sync_status st;
    OK(cvg_sync_status_get(r, &id, &st, sizeof st));
    return st;
}

/* The port of "HOST:PORT" after @p host, or 0 if @p addr is not that. */
static unsigned
port_after(const char *addr, const char *host)
{
    size_t n = strlen(host);
    if (strncmp(addr, host, n) != 0 || addr[n] != ':' || addr[n + 1] == '\0') {
        return 0;
    }
    char *end;
    unsigned long port = strtoul(addr + n + 1, &end, 10);
    return *end == '\0' && port <= 65535 ? (unsigned)port : 0;
}

typedef struct seen {
    bool has_key;
    uint8_t key[CVG_PUBLIC_KEY_BYTES];
    char address[CVG_SYNC_ADDRESS_MAX];
    uint64_t last_contact_ms;
} seen;

/* What @p r knows of @p peer: its key, its address on @p host (the port
 * into *port), a contact in [from, to], SYNCED. */
static seen
check_side(cvg_replica *r, cvg_replica *peer, const char *host, unsigned *port,
           uint64_t from, uint64_t to, const char *who)
{
    cvg_sync_status st = status_for(r, peer);
    uint8_t pk[CVG_PUBLIC_KEY_BYTES];
    OK(cvg_replica_public_key(peer, pk));
    cr_expect_eq(st.state, CVG_SYNC_SYNCED, "%s: state %d", who, st.state);
    cr_expect(st.has_key, "%s: no key", who);
    cr_expect(memcmp(st.key, pk, sizeof pk) == 0, "%s: not the peer's key",
              who);
    *port = port_after(st.address, host);
    cr_expect_neq(*port, 0, "%s: address '%s' is not %s:PORT", who, st.address,
                  host);
    cr_expect(st.last_contact_ms >= from && st.last_contact_ms <= to,
              "%s: last contact %llu not within the sync [%llu, %llu]", who,
              (unsigned long long)st.last_contact_ms, (unsigned long long)from,
              (unsigned long long)to);
    cr_expect_geq(st.last_contact_ms, st.last_attempt_ms, "%s", who);
    seen s = {st.has_key, {0}, {0}, st.last_contact_ms};
    memcpy(s.key, st.key, sizeof s.key);
    memcpy(s.address, st.address, sizeof s.address);
    return s;
}

static void
expect_same(cvg_replica *r, cvg_replica *peer, const seen *s, const char *who)
{
    cvg_sync_status st = status_for(r, peer);
    cr_expect_eq(st.has_key, s->has_key, "%s", who);
    cr_expect(memcmp(st.key, s->key, sizeof s->key) == 0, "%s", who);
    cr_expect_str_eq(st.address, s->address, "%s", who);
    cr_expect_eq(st.last_contact_ms, s->last_contact_ms, "%s", who);
}

static void
sync_and_look(const char *host)
{
    char sdir[512], cdir[512];
    server_box b;
    b.r = open_fresh("server", sdir, sizeof sdir);
    char listen[64];
    snprintf(listen, sizeof listen, "%s:0", host);
    if (start_at(&b, listen, NULL) != CVG_OK) {
        cvg_replica_close(b.r);
        cr_skip_test("cannot listen on %s", host);
    }
    unsigned server_port = cvg_server_port(b.srv);
    cvg_replica *c = open_fresh("client", cdir, sizeof cdir);
    add(c, "mine", 2);
    add(b.r, "theirs", 3);
    char url[96];
    url_at(&b, host, url, sizeof url);
    uint64_t from = wall_ms();
    int rc = cvg_net_sync(c, url, NULL, NULL);
    uint64_t to = wall_ms();
    cr_assert_eq(rc, CVG_OK, "%s (%s)", cvg_errname(rc), cvg_replica_errmsg(c));
    stop(&b); /* the server's replica is this thread's from here on */
    cr_assert_eq(get(c, "theirs"), 3);

    /* The client saw the server at the address it connected to. */
    unsigned port;
    seen at_client =
        check_side(c, b.r, host, &port, from, to, "the client's view");
    cr_expect_eq(port, server_port);
    /* The server saw the client at its end of that connection. */
    seen at_server =
        check_side(b.r, c, host, &port, from, to, "the server's view");
    cr_expect_neq(port, server_port, "the client's port, not ours");

    /* Stored: both read it back after a reopen. */
    cvg_replica_close(c);
    cvg_replica_close(b.r);
    c = open_again(cdir);
    b.r = open_again(sdir);
    expect_same(c, b.r, &at_client, "the client after a reopen");
    expect_same(b.r, c, &at_server, "the server after a reopen");
    cvg_replica_close(c);
    cvg_replica_close(b.r);
}

Test(peers_net, both_sides_know_key_address_and_contact_ipv4, .timeout = 60)
{
    sync_and_look("127.0.0.1");
}

Test(peers_net, both_sides_know_key_address_and_contact_ipv6, .timeout = 60)
{
    sync_and_look("[::1]");
}
