/*
 * A fault-injecting TCP proxy on 127.0.0.1, for the network tests: it
 * listens on one port per lane (a lane per client, so that the proxy
 * knows whose each connection is), connects each accepted connection to
 * the upstream port, and passes the bytes both ways through bounded
 * buffers, on a poll loop of its own thread.
 *
 * While faults are on, each connection gets a plan drawn from the seed,
 * its lane and its number on that lane (so a client's k-th connection
 * meets the same fault in every run of a seed, whatever the other lanes
 * do): pass cleanly; cut at a byte offset in one direction (a close or a
 * reset); stall one direction at a byte offset for a while, shorter or
 * longer than the clients' timeout; delay each direction's bytes and
 * trickle them in small writes; or a delay and a cut together. With
 * faults off, every new connection passes cleanly.
 *
 * The upstream can be changed at any time (a restarted server on a new
 * port); connections already open keep theirs. A connection whose
 * upstream refuses is closed at once.
 */
#ifndef CVG_TEST_PROXY_H
#define CVG_TEST_PROXY_H

#include <stdbool.h>
#include <stdint.h>

#define CVG_PROXY_LANES_MAX 32

typedef struct cvg_proxy cvg_proxy;

/* What the proxy did, since it started. */
typedef struct cvg_proxy_stats {
    uint64_t conns;   /* accepted */
    uint64_t refused; /* closed because the upstream refused */
    uint64_t cuts;    /* cut at their byte offset */
    uint64_t stalls;  /* stalled at their byte offset */
    uint64_t delayed; /* planned with delayed, trickled bytes */
    uint64_t bytes;   /* passed, both directions */
} cvg_proxy_stats;

/* Listen on @p lanes free ports of 127.0.0.1 (at most
 * CVG_PROXY_LANES_MAX) and pass to 127.0.0.1:@p upstream; stalls are
 * drawn around @p timeout_ms. Faults start off. NULL on failure. */
cvg_proxy *cvg_proxy_start(int lanes, uint16_t upstream, uint64_t seed,
                           uint32_t timeout_ms);

/* The port of @p lane. */
uint16_t cvg_proxy_port(const cvg_proxy *p, int lane);

/* New connections go to 127.0.0.1:@p port (0: refuse them all). */
void cvg_proxy_upstream(cvg_proxy *p, uint16_t port);

/* Plans for new connections: faults on, or all clean. */
void cvg_proxy_faults(cvg_proxy *p, bool on);

/* Bytes passed so far, both directions. */
uint64_t cvg_proxy_bytes(const cvg_proxy *p);

/* Connections open now. */
unsigned cvg_proxy_open_conns(const cvg_proxy *p);

void cvg_proxy_stats_get(const cvg_proxy *p, cvg_proxy_stats *out);

/* Close every connection and listener, end the thread, free @p p.
 * Accepts NULL. */
void cvg_proxy_stop(cvg_proxy *p);

#endif
