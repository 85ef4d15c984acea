/*
 * A secure channel over a byte stream (TCP), sans-IO: the caller moves the
 * bytes, the channel never touches a socket or a clock (timeouts are the
 * transport's; it can ask cvg__channel_state_of() how far the handshake
 * is).
 *
 * Handshake: Noise_XX_25519_ChaChaPoly_BLAKE2b (noise.h), each side with
 * its static X25519 key, the prologue CVG__CHANNEL_PROLOGUE, and an
 * optional pinned key the peer's static key must equal. Each of the three
 * handshake messages may carry a small payload from the side that writes
 * it (XX: 0 and 2 the initiator's, 1 the responder's), but they are not
 * equally private: payload 0 travels in clear, payload 1 goes to whoever
 * initiated (not yet authenticated), payload 2 only to the responder the
 * initiator has authenticated (and pinned, if it pins).
 *
 * Framing: every handshake and transport message is a frame, a 2-byte
 * big-endian length then that many bytes (at most 65,535). A transport
 * message's plaintext is a fragment of an application message followed by
 * one flag byte: more fragments follow, last fragment, or close. So an
 * application message of any size up to the channel's cap (16 MiB unless
 * set) takes one frame per 65,518 bytes, and a close is authenticated
 * (the peer can tell a clean end from a cut connection).
 *
 * BUSY: a server over its connection limit answers the initiator's first
 * message with one frame of exactly CVG__CHANNEL_BUSY_BODY bytes, the
 * magic "BUSY" then a retry-after in milliseconds (u32 big-endian), and
 * closes: before any Noise work, so an overloaded server spends no X25519
 * on it. Handshake message 1 (the responder's, in the place of which it
 * comes) is at least 96 bytes, so the two cannot be confused. Only an
 * initiator awaiting message 1 takes it; it ends the channel with CVG_EAGAIN and
 * cvg__channel_retry_after() gives the wait. It is not authenticated: the
 * wait honoured is capped (CVG__CHANNEL_BUSY_RETRY_MAX), for a forged
 * BUSY could then only delay the client, which anyone on the path can do
 * anyway by dropping its packets. To a responder, after the handshake,
 * or with another length or magic, such a frame is a bad frame like any
 * other (CVG_ECORRUPT).
 *
 * Errors are final: a frame that fails to decrypt (CVG_ECORRUPT), a
 * handshake frame too long or a frame after the peer's close
 * (CVG_EPROTO), a BUSY answer (CVG_EAGAIN), a peer key other than the
 * pinned one (CVG_EKEY), a message over the cap (CVG_ETOOBIG), a
 * low-order key (CVG_EPROTO), no memory to reassemble (CVG_ENOMEM), or
 * nonces exhausted (CVG_ELIMIT) wipe
 * the keys and kill the channel: every later call returns that code and
 * nothing more is output. Local refusals (CVG_EINVAL, CVG_EMISUSE, a send
 * over the cap: CVG_ETOOBIG, no memory to send: CVG_ENOMEM) leave it as
 * it was.
 */
#ifndef CVG_NET_CHANNEL_H
#define CVG_NET_CHANNEL_H

#include "noise.h"

#define CVG__CHANNEL_PROTOCOL "Noise_XX_25519_ChaChaPoly_BLAKE2b"
#define CVG__CHANNEL_PROLOGUE "converge channel 1"
/* The handshake messages of XX. */
#define CVG__CHANNEL_HS_MSGS 3
/* The most bytes of application payload one handshake message carries. */
#define CVG__CHANNEL_PAYLOAD_MAX 1024u
/* The longest handshake frame: message 2 (e, encrypted s, tag, payload). */
#define CVG__CHANNEL_HS_FRAME_MAX                          \
    (2 * CVG__NOISE_KEY_BYTES + 2 * CVG__NOISE_TAG_BYTES + \
     CVG__CHANNEL_PAYLOAD_MAX)
/* The BUSY answer: its body (magic, retry-after), its frame, and the
 * longest retry-after a client honours (5 minutes). */
#define CVG__CHANNEL_BUSY_MAGIC "BUSY"
#define CVG__CHANNEL_BUSY_BODY 8u
#define CVG__CHANNEL_BUSY_FRAME (2u + CVG__CHANNEL_BUSY_BODY)
#define CVG__CHANNEL_BUSY_RETRY_MAX 300000u
/* The default and the largest cap on an application message. */
#define CVG__CHANNEL_MESSAGE_MAX (16u << 20)
#define CVG__CHANNEL_MESSAGE_LIMIT (1u << 30)
/* Application bytes per frame: a full Noise message less tag and flag. */
#define CVG__CHANNEL_FRAGMENT_MAX (CVG__NOISE_PAYLOAD_MAX - 1)

typedef enum cvg__channel_state {
    CVG__CHANNEL_FAILED = 0,  /* dead: cvg__channel_error() says why */
    CVG__CHANNEL_WAITING = 1, /* handshake under way */
    CVG__CHANNEL_OPEN = 2     /* handshake done: messages flow */
} cvg__channel_state;

/* Zero it, then set what is needed; copied at init. */
typedef struct cvg__channel_options {
    bool initiator;
    const uint8_t *static_key; /* our X25519 private key (32 bytes) */
    const uint8_t *pinned;     /* the peer's X25519 public key, or NULL */
    /* The payload of each handshake message this side writes (at most
     * CVG__CHANNEL_PAYLOAD_MAX bytes); the others must be empty. */
    cvg_bytes payload[CVG__CHANNEL_HS_MSGS];
    size_t max_message; /* 0: CVG__CHANNEL_MESSAGE_MAX */
    /* Tests and fuzzing only: a fixed ephemeral private key, so that a
     * transcript replays. NULL in real use (a fixed one ends forward
     * secrecy). */
    const uint8_t *ephemeral;
} cvg__channel_options;

/* Caller-owned; its fields are private to channel.c (tests may read
 * them). About 4 KiB; a frame cut across feeds is gathered in a buffer of
 * its own, taken for that frame only. */
typedef struct cvg__channel {
    cvg__channel_state state;
    int error; /* the code that killed it */
    bool initiator;
    bool has_pin;
    bool sent_close;  /* we sent a close: no more sends */
    bool peer_closed; /* the peer sent one: no more input */
    bool delivered;   /* msg holds the message the last feed gave out */
    bool out_taken;   /* out holds the bytes the last output gave out */
    size_t max_message;
    uint8_t pin[CVG__NOISE_KEY_BYTES];
    cvg__noise_hs hs;
    cvg__noise_transport t;
    size_t hs_msg;           /* handshake messages done */
    uint32_t retry_after_ms; /* a BUSY answer's, capped; else 0 */
    /* Transport frames decrypted so far: a connection's idle clock
     * restarts on whole frames, not on bytes (a peer trickling one frame
     * a byte at a time must still meet it). */
    uint64_t frames_in;
    uint8_t payload[CVG__CHANNEL_HS_MSGS][CVG__CHANNEL_PAYLOAD_MAX];
    size_t payload_len[CVG__CHANNEL_HS_MSGS];
    /* The frame being read: its header, then its body, kept here only
     * when it arrives in pieces. */
    uint8_t head[2];
    size_t head_len;
    size_t frame_len;
    size_t frame_have;
    /* CVG__NOISE_MSG_MAX bytes while a frame is gathered, else NULL. */
    uint8_t *frame;
    cvg__buf msg; /* the application message being reassembled */
    cvg__buf out; /* frames waiting for cvg__channel_output() */
} cvg__channel;

/* Start a channel; the initiator's first handshake message is the first
 * output. CVG_EINVAL (no static key, a payload for a message the other
 * side writes, a cap over CVG__CHANNEL_MESSAGE_LIMIT), CVG_ETOOBIG (a
 * payload over CVG__CHANNEL_PAYLOAD_MAX), CVG_ENOMEM, CVG_EIO; on error
 * the channel is dead and holds nothing to destroy. */
int cvg__channel_init(cvg__channel *ch, const cvg__channel_options *o);

/* Bytes from the peer, in any chunks. Consumes bytes until a whole
 * application message is in, then returns CVG_OK with it in *msg (a view
 * valid until the next feed or destroy) and the bytes consumed in *used:
 * feed the rest again. CVG_DONE: all @p len bytes consumed, no message
 * complete (a handshake message may have queued output, and the state may
 * have changed: the peer may have closed). Negative: the channel is dead. */
int cvg__channel_feed(cvg__channel *ch, const void *in, size_t len,
                      size_t *used, cvg_bytes *msg);

/* The bytes to send to the peer: CVG_OK with all of them in *out (a view
 * valid until the next feed, output, send, close or destroy; they count
 * as taken), CVG_DONE when there are none, or the error that killed the
 * channel. */
int cvg__channel_output(cvg__channel *ch, cvg_bytes *out);

/* Queue one application message of @p len bytes (at most the cap) as
 * frames. CVG_EMISUSE before the handshake is done or after our close. */
int cvg__channel_send(cvg__channel *ch, const void *msg, size_t len);

/* Queue an authenticated close; no sends after it. */
int cvg__channel_close(cvg__channel *ch);

cvg__channel_state cvg__channel_state_of(const cvg__channel *ch);
/* The code that killed the channel, or CVG_OK. */
int cvg__channel_error(const cvg__channel *ch);
/* The peer closed cleanly; any byte after that kills the channel. */
bool cvg__channel_peer_closed(const cvg__channel *ch);

/* Once open: the handshake hash (64 bytes; both sides have the same one,
 * for channel binding) and the peer's static public key (32 bytes).
 * CVG_EMISUSE before. */
int cvg__channel_handshake_hash(const cvg__channel *ch, uint8_t *out);
int cvg__channel_remote_static(const cvg__channel *ch, uint8_t *out);

/* The payload the peer put in handshake message @p i, once read;
 * CVG_ENOTFOUND for a message not read (yet) or written by this side. A
 * view valid until destroy. */
int cvg__channel_peer_payload(const cvg__channel *ch, size_t i, cvg_bytes *out);

/* The BUSY answer of a server over its limit, with @p retry_after_ms, as
 * the bytes to write in place of handshake message 1 (sans-IO: no channel
 * is made for it). */
void cvg__channel_busy_frame(uint8_t out[CVG__CHANNEL_BUSY_FRAME],
                             uint32_t retry_after_ms);

/* After the channel died with CVG_EAGAIN: the peer's retry-after, capped
 * at CVG__CHANNEL_BUSY_RETRY_MAX and at least 1 (a BUSY of 0 ms still
 * says busy); 0 otherwise. */
uint32_t cvg__channel_retry_after(const cvg__channel *ch);

/* Wipe every key and buffer and free what the channel holds. */
void cvg__channel_destroy(cvg__channel *ch);

#endif /* CVG_NET_CHANNEL_H */
