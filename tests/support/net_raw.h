/*
 * A raw client of a cvg_server for tests and the bench: a blocking POSIX
 * socket on 127.0.0.1 driving the sans-IO channel (src/net/channel.h) and,
 * if asked, a session of a replica of its own, one step at a time, so a
 * test can stop anywhere (after the handshake, after the proofs), send
 * bytes no honest client sends (garbage, replayed or reordered frames,
 * oversized messages) or stop reading. Every read and write is bounded by
 * the socket's SO_RCVTIMEO / SO_SNDTIMEO, so nothing waits for ever.
 */
#ifndef CVG_TEST_NET_RAW_H
#define CVG_TEST_NET_RAW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "converge.h"

typedef struct cvg_raw cvg_raw;

/* Connect to 127.0.0.1:@p port; each later read or write waits at most
 * @p timeout_ms. NULL if the connect fails. */
cvg_raw *cvg_raw_connect(uint16_t port, int timeout_ms);
int cvg_raw_fd(const cvg_raw *c);

/* Write all @p len bytes to the socket: 0, or -1 (cut, timed out). */
int cvg_raw_write(cvg_raw *c, const void *p, size_t len);

/* The channel's handshake as initiator: CVG_OK once it is open. */
int cvg_raw_handshake(cvg_raw *c);

/* Queue one application message on the channel and take its frames,
 * without writing them: *out is malloc'd (the caller writes it, perhaps
 * twice, perhaps later). */
int cvg_raw_seal(cvg_raw *c, const void *msg, size_t len, uint8_t **out,
                 size_t *out_len);
/* One frame carrying @p len bytes (at most 65,518) of an application
 * message, flagged "more follows" or "last", sealed with the channel's
 * next nonce into @p out (room for 65,537 bytes): how a peer streams a
 * message larger than any cap. */
int cvg_raw_fragment(cvg_raw *c, const void *frag, size_t len, bool last,
                     uint8_t *out, size_t *out_len);
/* Seal and write one application message. */
int cvg_raw_send(cvg_raw *c, const void *msg, size_t len);

/* Read until one whole application message is in: CVG_OK with a view
 * valid until the next call, CVG_EIO if the socket ends or times out
 * first, or the channel's error. */
int cvg_raw_recv(cvg_raw *c, cvg_bytes *msg);

/* After the handshake: open a session of @p r bound to this channel, send
 * its HELLO, take the server's HELLO, send our PROVE (the first message the
 * session says after that HELLO; the PULL after it is held back) and take
 * the server's PROVE. The server's session is then proven and waiting.
 * CVG_OK, or the first error. */
int cvg_raw_prove(cvg_raw *c, cvg_replica *r);
/* The messages the session queued and cvg_raw_prove() held back (the
 * PULL): the first one, or CVG_DONE. */
int cvg_raw_held(cvg_raw *c, cvg_bytes *msg);

/* The session cvg_raw_prove() opened (NULL before), to feed it by hand. */
cvg_session *cvg_raw_session(cvg_raw *c);

/* Send the channel's authenticated close (a clean end's last word). */
int cvg_raw_close(cvg_raw *c);

/* Read and drop until the server closes the socket, at most @p ms: true if
 * it did (EOF or reset), false if it was still open. */
bool cvg_raw_wait_closed(cvg_raw *c, int ms);

/* Free the channel and session but keep the socket open: its fd, which
 * the caller closes. */
int cvg_raw_detach(cvg_raw *c);
void cvg_raw_free(cvg_raw *c);

/* The resident set of this process in bytes (/proc/self/statm), and its
 * high-water mark (getrusage's ru_maxrss). */
size_t cvg_raw_rss_bytes(void);
size_t cvg_raw_peak_rss_bytes(void);

#endif
