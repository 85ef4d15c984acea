/*
 * The Noise Protocol Framework (revision 34), sans-IO, for one suite only:
 * Noise_<pattern>_25519_ChaChaPoly_BLAKE2b. Bytes in, bytes out: no
 * socket, no allocation; every state is a struct the caller owns.
 *
 * A handshake state is driven by the pattern's tokens (e, s, ee, es, se,
 * ss, psk), so any pattern of the spec's tables (one-way, fundamental,
 * deferred) with any psk modifiers runs through the same code. The caller
 * alternates cvg__noise_write() and cvg__noise_read() as
 * cvg__noise_turn() says; after the last message cvg__noise_split() hands
 * over the two transport cipher states, the handshake hash and the remote
 * static key, and wipes the rest.
 *
 * Errors (negative CVG_E... codes):
 *   CVG_EINVAL    a bad argument, an unknown protocol name, keys or psks
 *                 that do not fit the pattern, an output buffer too small
 *                 (nothing changed);
 *   CVG_EMISUSE   a call out of turn, on a failed state or a cipher
 *                 without a key;
 *   CVG_ETOOBIG   a message to write over 65,535 bytes, or a payload read
 *                 larger than the buffer given for it (nothing changed);
 *   CVG_ECORRUPT  a message cut short, or one that fails to decrypt;
 *   CVG_EPROTO    a message over 65,535 bytes, or a public key of low
 *                 order (the DH output would be all zeros);
 *   CVG_ELIMIT    the nonce counter is exhausted (2^64-1 is reserved);
 *   CVG_EIO       libsodium cannot start.
 * Any error but EINVAL, EMISUSE and ETOOBIG wipes the state, which is then
 * dead: every later call fails.
 */
#ifndef CVG_NET_NOISE_H
#define CVG_NET_NOISE_H

#include <stdbool.h>

#include "../common.h"

#define CVG__NOISE_KEY_BYTES 32  /* X25519 keys, cipher keys, psks */
#define CVG__NOISE_HASH_BYTES 64 /* BLAKE2b-512: h, ck */
#define CVG__NOISE_TAG_BYTES 16  /* Poly1305 */
#define CVG__NOISE_MSG_MAX 65535u
/* The largest transport payload: a message with its tag fills 65,535. */
#define CVG__NOISE_PAYLOAD_MAX (CVG__NOISE_MSG_MAX - CVG__NOISE_TAG_BYTES)

/* Room for the longest patterns of the spec (X1X1 and the like have four
 * messages) and for psk modifiers on every message. */
#define CVG__NOISE_MSGS_MAX 4
#define CVG__NOISE_TOKENS_MAX 8 /* 5 tokens, 2 psks, a terminating 0 */
#define CVG__NOISE_PSKS_MAX (CVG__NOISE_MSGS_MAX + 1)

/* A CipherState: key and nonce counter. All zeros is "no key". */
typedef struct cvg__noise_cipher {
    uint8_t k[CVG__NOISE_KEY_BYTES];
    uint64_t n;
    bool has_key;
} cvg__noise_cipher;

/* Whose move it is. FAILED is 0, so a wiped state reads as dead. */
typedef enum cvg__noise_turn {
    CVG__NOISE_FAILED = 0,
    CVG__NOISE_WRITE = 1, /* cvg__noise_write() the next message */
    CVG__NOISE_READ = 2,  /* cvg__noise_read() the peer's next message */
    CVG__NOISE_SPLIT = 3  /* handshake done: cvg__noise_split() */
} cvg__noise_turn;

/* A HandshakeState, with its SymmetricState inline. Fields are private to
 * noise.c; tests may read them. */
typedef struct cvg__noise_hs {
    cvg__noise_turn turn;
    bool initiator;
    bool psk_mode; /* "e" also calls MixKey (spec 9.2) */
    bool has_s, has_e, has_rs, has_re, fixed_e;
    cvg__noise_cipher cs;
    uint8_t ck[CVG__NOISE_HASH_BYTES];
    uint8_t h[CVG__NOISE_HASH_BYTES];
    uint8_t s_priv[CVG__NOISE_KEY_BYTES], s_pub[CVG__NOISE_KEY_BYTES];
    uint8_t e_priv[CVG__NOISE_KEY_BYTES], e_pub[CVG__NOISE_KEY_BYTES];
    uint8_t rs[CVG__NOISE_KEY_BYTES];
    uint8_t re[CVG__NOISE_KEY_BYTES];
    uint8_t psks[CVG__NOISE_PSKS_MAX][CVG__NOISE_KEY_BYTES];
    size_t n_psks;
    size_t next_psk;
    uint8_t msgs[CVG__NOISE_MSGS_MAX][CVG__NOISE_TOKENS_MAX];
    size_t n_msgs;
    size_t next_msg;
} cvg__noise_hs;

/* What a finished handshake leaves: the cipher states by role (tx sends,
 * rx receives), the handshake hash for channel binding, and the peer's
 * static public key if the pattern gave one. */
typedef struct cvg__noise_transport {
    cvg__noise_cipher tx;
    cvg__noise_cipher rx;
    uint8_t hash[CVG__NOISE_HASH_BYTES];
    uint8_t rs[CVG__NOISE_KEY_BYTES];
    bool has_rs;
} cvg__noise_transport;

/* The keys of one side. Each must be given exactly when the pattern needs
 * it: s if this side has a static key, rs if the pattern's pre-message
 * gives the peer's in advance, one psk per psk token, in the order the
 * handshake uses them. Copied at init. */
typedef struct cvg__noise_config {
    const uint8_t *prologue;
    size_t prologue_len;
    const uint8_t *s;    /* local static private key, or NULL */
    const uint8_t *rs;   /* remote static public key, or NULL */
    const uint8_t *psks; /* n_psks keys of 32 bytes, one after another */
    size_t n_psks;
} cvg__noise_config;

/* Start a handshake of @p protocol ("Noise_XX_25519_ChaChaPoly_BLAKE2b",
 * "Noise_XXpsk3_...", "Noise_X1K1_..."). On error @p hs is wiped. */
int cvg__noise_init(cvg__noise_hs *hs, const char *protocol, bool initiator,
                    const cvg__noise_config *cfg);

/* Tests only (the spec's test vectors): use @p priv as the ephemeral
 * private key instead of a random one. Call before the "e" token. A fixed
 * ephemeral key gives up forward secrecy: never in real use. */
int cvg__noise_fix_ephemeral(cvg__noise_hs *hs, const uint8_t *priv);

cvg__noise_turn cvg__noise_turn_of(const cvg__noise_hs *hs);

/* The peer's static public key once known (pre-message or received), else
 * NULL. */
const uint8_t *cvg__noise_remote_static(const cvg__noise_hs *hs);

/* Write the next handshake message, carrying @p payload, into @p out (of
 * @p cap bytes); its length goes to *out_len. */
int cvg__noise_write(cvg__noise_hs *hs, const uint8_t *payload, size_t len,
                     uint8_t *out, size_t cap, size_t *out_len);

/* Read the peer's next handshake message; its payload goes to @p payload
 * (of @p cap bytes), its length to *payload_len. */
int cvg__noise_read(cvg__noise_hs *hs, const uint8_t *msg, size_t len,
                    uint8_t *payload, size_t cap, size_t *payload_len);

/* After the last message: fill @p t and wipe @p hs. */
int cvg__noise_split(cvg__noise_hs *hs, cvg__noise_transport *t);

/* A transport message: @p len bytes of plaintext (at most
 * CVG__NOISE_PAYLOAD_MAX) become len + 16 bytes in @p out. @p in may be
 * @p out (in place). */
int cvg__noise_encrypt(cvg__noise_cipher *c, const uint8_t *in, size_t len,
                       uint8_t *out, size_t cap, size_t *out_len);

/* The reverse; a failure wipes @p c, which is then dead. @p in may be
 * @p out. */
int cvg__noise_decrypt(cvg__noise_cipher *c, const uint8_t *in, size_t len,
                       uint8_t *out, size_t cap, size_t *out_len);

void cvg__noise_hs_wipe(cvg__noise_hs *hs);
void cvg__noise_cipher_wipe(cvg__noise_cipher *c);
void cvg__noise_transport_wipe(cvg__noise_transport *t);

#endif /* CVG_NET_NOISE_H */
