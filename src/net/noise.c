/*
 * Noise_*_25519_ChaChaPoly_BLAKE2b (Noise Protocol Framework, revision 34),
 * built on libsodium's primitives only:
 *
 *   DH      X25519: crypto_scalarmult(_base); libsodium refuses a public
 *           key of low order (an all-zero output), which we pass on as an
 *           error rather than mixing a known value into the keys;
 *   cipher  ChaCha20-Poly1305 IETF; the 96-bit nonce is 4 zero bytes, then
 *           the 64-bit counter little-endian (spec 12.3);
 *   hash    BLAKE2b-512 unkeyed, HASHLEN 64, BLOCKLEN 128; HMAC (RFC 2104)
 *           and HKDF (spec 4.3) are written out here over it, since Noise
 *           defines them exactly and libsodium has no BLAKE2b HMAC.
 *
 * A protocol name is parsed into its pattern (a row of the table below,
 * copied from the spec's sections 7.4, 7.5 and 18.1) and psk modifiers,
 * which insert "psk" tokens (9.4). The handshake then only walks tokens:
 * write and read process each token of the next message in order, then
 * the payload, exactly as section 5.3 lists the steps. The sizes of a
 * message are worked out from its tokens before anything changes, so a
 * short buffer or message is refused with the state as it was.
 *
 * Every secret (private keys, psks, ck, cipher keys, HMAC pads and
 * intermediate outputs) is wiped with sodium_memzero when done, and the
 * whole state when the handshake fails or is split.
 */
#include "noise.h"

#include <sodium.h>

#define DHLEN CVG__NOISE_KEY_BYTES
#define HASHLEN CVG__NOISE_HASH_BYTES
#define BLOCKLEN 128
#define TAGLEN CVG__NOISE_TAG_BYTES

_Static_assert(crypto_scalarmult_BYTES == DHLEN, "X25519 key size");
_Static_assert(crypto_aead_chacha20poly1305_ietf_KEYBYTES ==
                   CVG__NOISE_KEY_BYTES,
               "cipher key size");
_Static_assert(crypto_aead_chacha20poly1305_ietf_ABYTES == TAGLEN, "tag");
_Static_assert(crypto_aead_chacha20poly1305_ietf_NPUBBYTES == 12, "nonce");

/* ---- Patterns ------------------------------------------------------------ */

enum {
    TOK_END = 0, /* ends a message's tokens */
    TOK_E,
    TOK_S,
    TOK_EE,
    TOK_ES,
    TOK_SE,
    TOK_SS,
    TOK_PSK
};

/* A handshake pattern as the spec writes it: the pre-messages ("s" when
 * that side's static key is known in advance) and the messages, the first
 * from the initiator, then alternating. */
typedef struct pattern {
    const char *name;
    const char *pre_i;
    const char *pre_r;
    const char *msgs[CVG__NOISE_MSGS_MAX];
} pattern;

static const pattern patterns[] = {
    /* One-way (7.4). */
    {"N", "", "s", {"e es"}},
    {"K", "s", "s", {"e es ss"}},
    {"X", "", "s", {"e es s ss"}},
    /* Fundamental (7.5). */
    {"NN", "", "", {"e", "e ee"}},
    {"NK", "", "s", {"e es", "e ee"}},
    {"NX", "", "", {"e", "e ee s es"}},
    {"KN", "s", "", {"e", "e ee se"}},
    {"KK", "s", "s", {"e es ss", "e ee se"}},
    {"KX", "s", "", {"e", "e ee se s es"}},
    {"XN", "", "", {"e", "e ee", "s se"}},
    {"XK", "", "s", {"e es", "e ee", "s se"}},
    {"XX", "", "", {"e", "e ee s es", "s se"}},
    {"IN", "", "", {"e s", "e ee se"}},
    {"IK", "", "s", {"e es s ss", "e ee se"}},
    {"IX", "", "", {"e s", "e ee se s es"}},
    /* Deferred (18.1). */
    {"NK1", "", "s", {"e", "e ee es"}},
    {"NX1", "", "", {"e", "e ee s", "es"}},
    {"X1N", "", "", {"e", "e ee", "s", "se"}},
    {"X1K", "", "s", {"e es", "e ee", "s", "se"}},
    {"XK1", "", "s", {"e", "e ee es", "s se"}},
    {"X1K1", "", "s", {"e", "e ee es", "s", "se"}},
    {"X1X", "", "", {"e", "e ee s es", "s", "se"}},
    {"XX1", "", "", {"e", "e ee s", "es s se"}},
    {"X1X1", "", "", {"e", "e ee s", "es s", "se"}},
    {"K1N", "s", "", {"e", "e ee", "se"}},
    {"K1K", "s", "s", {"e es", "e ee", "se"}},
    {"KK1", "s", "s", {"e", "e ee se es"}},
    {"K1K1", "s", "s", {"e", "e ee es", "se"}},
    {"K1X", "s", "", {"e", "e ee s es", "se"}},
    {"KX1", "s", "", {"e", "e ee se s", "es"}},
    {"K1X1", "s", "", {"e", "e ee s", "se es"}},
    {"I1N", "", "", {"e s", "e ee", "se"}},
    {"I1K", "", "s", {"e es s", "e ee", "se"}},
    {"IK1", "", "s", {"e s", "e ee se es"}},
    {"I1K1", "", "s", {"e s", "e ee es", "se"}},
    {"I1X", "", "", {"e s", "e ee s es", "se"}},
    {"IX1", "", "", {"e s", "e ee se s", "es"}},
    {"I1X1", "", "", {"e s", "e ee s", "se es"}},
};

static const char name_prefix[] = "Noise_";
static const char name_suffix[] = "_25519_ChaChaPoly_BLAKE2b";

static const pattern *
pattern_find(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++) {
        if (strlen(patterns[i].name) == len &&
            memcmp(patterns[i].name, name, len) == 0) {
            return &patterns[i];
        }
    }
    return NULL;
}

static size_t
pattern_msgs(const pattern *p)
{
    size_t n = 0;
    while (n < CVG__NOISE_MSGS_MAX && p->msgs[n] != NULL) {
        n++;
    }
    return n;
}

/* "psk0+psk2" into bit 0 and bit 2 of *mask. Each modifier once, in
 * increasing order, so that one protocol has one name. */
static int
parse_modifiers(const char *s, size_t len, size_t n_msgs, unsigned *mask)
{
    *mask = 0;
    size_t i = 0;
    int last = -1;
    while (i < len) {
        if (i > 0 && s[i++] != '+') {
            return CVG_EINVAL;
        }
        if (len - i < 4 || memcmp(s + i, "psk", 3) != 0 || s[i + 3] < '0' ||
            s[i + 3] > '9') {
            return CVG_EINVAL;
        }
        int n = s[i + 3] - '0';
        if ((size_t)n > n_msgs || n <= last) {
            return CVG_EINVAL;
        }
        *mask |= 1u << n;
        last = n;
        i += 4;
    }
    return CVG_OK;
}

/* Split "Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b" into its pattern and psk
 * modifiers; any other suite is refused. */
static int
parse_name(const char *name, const pattern **pat, unsigned *psk_mask)
{
    size_t len = strlen(name);
    size_t pre = sizeof name_prefix - 1, suf = sizeof name_suffix - 1;
    if (len <= pre + suf || memcmp(name, name_prefix, pre) != 0 ||
        memcmp(name + len - suf, name_suffix, suf) != 0) {
        return CVG_EINVAL;
    }
    const char *hs = name + pre;
    size_t hs_len = len - pre - suf;
    size_t base = strspn(hs, "NKXI1");
    if (base > hs_len) {
        base = hs_len;
    }
    *pat = pattern_find(hs, base);
    if (*pat == NULL) {
        return CVG_EINVAL;
    }
    return parse_modifiers(hs + base, hs_len - base, pattern_msgs(*pat),
                           psk_mask);
}

static uint8_t
token_of(const char *s, size_t len)
{
    static const char *const names[] = {"e", "s", "ee", "es", "se", "ss"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0) {
            return (uint8_t)(TOK_E + i);
        }
    }
    return TOK_END;
}

/* Message @p m's tokens, with the psk tokens of @p mask: psk0 first in
 * the first message, pskN last in message N (9.4). */
static void
build_msg(uint8_t *out, const char *spec, size_t m, unsigned mask)
{
    size_t n = 0;
    if (m == 0 && (mask & 1u)) {
        out[n++] = TOK_PSK;
    }
    while (*spec != '\0') {
        size_t len = strcspn(spec, " ");
        out[n++] = token_of(spec, len);
        spec += len;
        spec += *spec == ' ';
    }
    if (mask & (1u << (m + 1))) {
        out[n++] = TOK_PSK;
    }
    out[n] = TOK_END;
}

/* Whether a message the local side writes carries its static key. */
static bool
writes_static(const cvg__noise_hs *hs)
{
    for (size_t m = hs->initiator ? 0 : 1; m < hs->n_msgs; m += 2) {
        if (memchr(hs->msgs[m], TOK_S, CVG__NOISE_TOKENS_MAX) != NULL) {
            return true;
        }
    }
    return false;
}

static size_t
count_psks(const cvg__noise_hs *hs)
{
    size_t n = 0;
    for (size_t m = 0; m < hs->n_msgs; m++) {
        for (const uint8_t *t = hs->msgs[m]; *t != TOK_END; t++) {
            n += *t == TOK_PSK;
        }
    }
    return n;
}

/* ---- Hash, HMAC, HKDF -------------------------------------------------- */

/* HASH(a || b). */
static void
hash2(uint8_t out[HASHLEN], const uint8_t *a, size_t alen, const uint8_t *b,
      size_t blen)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, HASHLEN);
    crypto_generichash_update(&st, a, alen);
    crypto_generichash_update(&st, b, blen);
    crypto_generichash_final(&st, out, HASHLEN);
    sodium_memzero(&st, sizeof st);
}

/* HMAC-HASH(key, a || b), RFC 2104 with B = BLOCKLEN. Noise only keys it
 * with HASHLEN bytes (a chaining key or HKDF's temp_key), shorter than a
 * block, so the key is zero-padded and never hashed first. */
static void
hmac(uint8_t out[HASHLEN], const uint8_t key[HASHLEN], const uint8_t *a,
     size_t alen, const uint8_t *b, size_t blen)
{
    uint8_t pad[BLOCKLEN], inner[HASHLEN];
    crypto_generichash_state st;

    memset(pad, 0x36, sizeof pad);
    for (size_t i = 0; i < HASHLEN; i++) {
        pad[i] ^= key[i];
    }
    crypto_generichash_init(&st, NULL, 0, HASHLEN);
    crypto_generichash_update(&st, pad, sizeof pad);
    crypto_generichash_update(&st, a, alen);
    crypto_generichash_update(&st, b, blen);
    crypto_generichash_final(&st, inner, sizeof inner);

    memset(pad, 0x5c, sizeof pad);
    for (size_t i = 0; i < HASHLEN; i++) {
        pad[i] ^= key[i];
    }
    hash2(out, pad, sizeof pad, inner, sizeof inner);

    sodium_memzero(pad, sizeof pad);
    sodium_memzero(inner, sizeof inner);
    sodium_memzero(&st, sizeof st);
}

/* HKDF(ck, ikm, 2 or 3) of section 4.3; @p out3 NULL for two outputs.
 * The outputs may not alias @p ck. */
static void
hkdf(const uint8_t ck[HASHLEN], const uint8_t *ikm, size_t ikm_len,
     uint8_t out1[HASHLEN], uint8_t out2[HASHLEN], uint8_t *out3)
{
    static const uint8_t one = 1, two = 2, three = 3;
    uint8_t temp_key[HASHLEN];
    hmac(temp_key, ck, ikm, ikm_len, NULL, 0);
    hmac(out1, temp_key, &one, 1, NULL, 0);
    hmac(out2, temp_key, out1, HASHLEN, &two, 1);
    if (out3 != NULL) {
        hmac(out3, temp_key, out2, HASHLEN, &three, 1);
    }
    sodium_memzero(temp_key, sizeof temp_key);
}

/* ---- CipherState --------------------------------------------------------- */

static void
cipher_init(cvg__noise_cipher *c, const uint8_t *key)
{
    memcpy(c->k, key, sizeof c->k);
    c->n = 0;
    c->has_key = true;
}

/* The counter as the ChaChaPoly nonce (spec 12.3). */
static void
nonce_of(uint8_t nonce[12], uint64_t n)
{
    memset(nonce, 0, 4);
    for (int i = 0; i < 8; i++) {
        nonce[4 + i] = (uint8_t)(n >> (8 * i));
    }
}

/* EncryptWithAd() with a key: out gets len + TAGLEN bytes. n = 2^64-1 is
 * reserved (5.1), so the last usable nonce is 2^64-2. */
static int
cipher_encrypt(cvg__noise_cipher *c, const uint8_t *ad, size_t ad_len,
               const uint8_t *in, size_t len, uint8_t *out)
{
    if (c->n == UINT64_MAX) {
        return CVG_ELIMIT;
    }
    uint8_t nonce[12];
    nonce_of(nonce, c->n);
    crypto_aead_chacha20poly1305_ietf_encrypt(out, NULL, in, len, ad, ad_len,
                                              NULL, nonce, c->k);
    c->n++;
    return CVG_OK;
}

static int
cipher_decrypt(cvg__noise_cipher *c, const uint8_t *ad, size_t ad_len,
               const uint8_t *in, size_t len, uint8_t *out)
{
    if (c->n == UINT64_MAX) {
        return CVG_ELIMIT;
    }
    if (len < TAGLEN) {
        return CVG_ECORRUPT;
    }
    uint8_t nonce[12];
    nonce_of(nonce, c->n);
    if (crypto_aead_chacha20poly1305_ietf_decrypt(out, NULL, NULL, in, len, ad,
                                                  ad_len, nonce, c->k) != 0) {
        return CVG_ECORRUPT;
    }
    c->n++;
    return CVG_OK;
}

void
cvg__noise_cipher_wipe(cvg__noise_cipher *c)
{
    if (c != NULL) {
        sodium_memzero(c, sizeof *c);
    }
}

/* ---- SymmetricState ------------------------------------------------------ */

static void
mix_hash(cvg__noise_hs *hs, const uint8_t *data, size_t len)
{
    hash2(hs->h, hs->h, sizeof hs->h, data, len);
}

/* The first 32 bytes of a 64-byte HKDF output are the cipher key. */
static void
mix_key(cvg__noise_hs *hs, const uint8_t *ikm, size_t len)
{
    uint8_t ck[HASHLEN], temp_k[HASHLEN];
    hkdf(hs->ck, ikm, len, ck, temp_k, NULL);
    memcpy(hs->ck, ck, sizeof ck);
    cipher_init(&hs->cs, temp_k);
    sodium_memzero(ck, sizeof ck);
    sodium_memzero(temp_k, sizeof temp_k);
}

static void
mix_key_and_hash(cvg__noise_hs *hs, const uint8_t *ikm, size_t len)
{
    uint8_t ck[HASHLEN], temp_h[HASHLEN], temp_k[HASHLEN];
    hkdf(hs->ck, ikm, len, ck, temp_h, temp_k);
    memcpy(hs->ck, ck, sizeof ck);
    mix_hash(hs, temp_h, sizeof temp_h);
    cipher_init(&hs->cs, temp_k);
    sodium_memzero(ck, sizeof ck);
    sodium_memzero(temp_h, sizeof temp_h);
    sodium_memzero(temp_k, sizeof temp_k);
}

/* Without a key yet, the plaintext goes out as it is (5.2). */
static int
encrypt_and_hash(cvg__noise_hs *hs, const uint8_t *in, size_t len, uint8_t *out,
                 size_t *out_len)
{
    if (!hs->cs.has_key) {
        if (len > 0) {
            memmove(out, in, len);
        }
        *out_len = len;
    } else {
        int rc = cipher_encrypt(&hs->cs, hs->h, sizeof hs->h, in, len, out);
        if (rc != CVG_OK) {
            return rc;
        }
        *out_len = len + TAGLEN;
    }
    mix_hash(hs, out, *out_len);
    return CVG_OK;
}

/* @p in is hashed before @p out is written: they may be the same. */
static int
decrypt_and_hash(cvg__noise_hs *hs, const uint8_t *in, size_t len, uint8_t *out,
                 size_t *out_len)
{
    uint8_t h[HASHLEN];
    memcpy(h, hs->h, sizeof h);
    mix_hash(hs, in, len);
    if (!hs->cs.has_key) {
        if (len > 0) {
            memmove(out, in, len);
        }
        *out_len = len;
        return CVG_OK;
    }
    int rc = cipher_decrypt(&hs->cs, h, sizeof h, in, len, out);
    *out_len = rc == CVG_OK ? len - TAGLEN : 0;
    return rc;
}

/* ---- HandshakeState ---------------------------------------------------- */

void
cvg__noise_hs_wipe(cvg__noise_hs *hs)
{
    if (hs != NULL) {
        sodium_memzero(hs, sizeof *hs); /* turn becomes CVG__NOISE_FAILED */
    }
}

static int
fail(cvg__noise_hs *hs, int rc)
{
    cvg__noise_hs_wipe(hs);
    return rc;
}

/* MixKey(DH(priv, pub)). A low-order @p pub makes crypto_scalarmult fail:
 * the peer chose our shared secret, which is an attack, never an accident. */
static int
mix_dh(cvg__noise_hs *hs, bool have_priv, const uint8_t *priv, bool have_pub,
       const uint8_t *pub)
{
    if (!have_priv || !have_pub) {
        return CVG_EMISUSE; /* init checked the keys: not reached */
    }
    uint8_t shared[DHLEN];
    int rc = CVG_OK;
    if (crypto_scalarmult(shared, priv, pub) != 0) {
        rc = CVG_EPROTO;
    } else {
        mix_key(hs, shared, sizeof shared);
    }
    sodium_memzero(shared, sizeof shared);
    return rc;
}

/* The tokens that read and write alike: the DHs and psk. In "es" the
 * initiator's ephemeral meets the responder's static, whichever side we
 * are; likewise "se". */
static int
mix_token(cvg__noise_hs *hs, uint8_t tok)
{
    bool ini = hs->initiator;
    switch (tok) {
    case TOK_EE:
        return mix_dh(hs, hs->has_e, hs->e_priv, hs->has_re, hs->re);
    case TOK_ES:
        return ini ? mix_dh(hs, hs->has_e, hs->e_priv, hs->has_rs, hs->rs)
                   : mix_dh(hs, hs->has_s, hs->s_priv, hs->has_re, hs->re);
    case TOK_SE:
        return ini ? mix_dh(hs, hs->has_s, hs->s_priv, hs->has_re, hs->re)
                   : mix_dh(hs, hs->has_e, hs->e_priv, hs->has_rs, hs->rs);
    case TOK_SS:
        return mix_dh(hs, hs->has_s, hs->s_priv, hs->has_rs, hs->rs);
    case TOK_PSK:
        if (hs->next_psk >= hs->n_psks) {
            return CVG_EMISUSE; /* init counted them: not reached */
        }
        mix_key_and_hash(hs, hs->psks[hs->next_psk++], DHLEN);
        return CVG_OK;
    }
    return CVG_EMISUSE;
}

/* In a psk handshake every "e" is also mixed into the key (9.2). */
static void
mix_ephemeral(cvg__noise_hs *hs, const uint8_t *pub)
{
    mix_hash(hs, pub, DHLEN);
    if (hs->psk_mode) {
        mix_key(hs, pub, DHLEN);
    }
}

/* The bytes of message @p toks besides its payload, and in *keyed whether
 * the payload is encrypted: every DH and psk token (and "e" in psk mode)
 * calls MixKey, after which all is encrypted. */
static size_t
fixed_size(const cvg__noise_hs *hs, const uint8_t *toks, bool *keyed)
{
    bool k = hs->cs.has_key;
    size_t n = 0;
    for (; *toks != TOK_END; toks++) {
        if (*toks == TOK_E) {
            n += DHLEN;
            k = k || hs->psk_mode;
        } else if (*toks == TOK_S) {
            n += DHLEN + (k ? TAGLEN : 0);
        } else {
            k = true;
        }
    }
    *keyed = k;
    return n;
}

static void
advance(cvg__noise_hs *hs)
{
    hs->next_msg++;
    if (hs->next_msg == hs->n_msgs) {
        hs->turn = CVG__NOISE_SPLIT;
    } else {
        hs->turn =
            hs->turn == CVG__NOISE_WRITE ? CVG__NOISE_READ : CVG__NOISE_WRITE;
    }
}

static int
write_ephemeral(cvg__noise_hs *hs, uint8_t *out)
{
    if (hs->has_e) {
        return CVG_EMISUSE; /* one "e" per side in every pattern */
    }
    if (!hs->fixed_e) {
        randombytes_buf(hs->e_priv, sizeof hs->e_priv);
        if (crypto_scalarmult_base(hs->e_pub, hs->e_priv) != 0) {
            return CVG_EIO; /* a clamped random scalar: not reached */
        }
    }
    hs->has_e = true;
    memcpy(out, hs->e_pub, DHLEN);
    mix_ephemeral(hs, hs->e_pub);
    return CVG_OK;
}

static int
write_token(cvg__noise_hs *hs, uint8_t tok, uint8_t *out, size_t *pos)
{
    size_t n;
    int rc;
    switch (tok) {
    case TOK_E:
        rc = write_ephemeral(hs, out + *pos);
        *pos += DHLEN;
        return rc;
    case TOK_S:
        if (!hs->has_s) {
            return CVG_EMISUSE; /* init checked it: not reached */
        }
        rc = encrypt_and_hash(hs, hs->s_pub, DHLEN, out + *pos, &n);
        *pos += n;
        return rc;
    default:
        return mix_token(hs, tok);
    }
}

int
cvg__noise_write(cvg__noise_hs *hs, const uint8_t *payload, size_t len,
                 uint8_t *out, size_t cap, size_t *out_len)
{
    if (hs == NULL || out_len == NULL || (len > 0 && payload == NULL) ||
        (out == NULL && cap > 0)) {
        return CVG_EINVAL;
    }
    *out_len = 0;
    if (hs->turn != CVG__NOISE_WRITE) {
        return CVG_EMISUSE;
    }
    const uint8_t *toks = hs->msgs[hs->next_msg];
    bool keyed;
    size_t fixed = fixed_size(hs, toks, &keyed);
    if (len > CVG__NOISE_MSG_MAX - fixed - (keyed ? TAGLEN : 0)) {
        return CVG_ETOOBIG;
    }
    if (cap < fixed + len + (keyed ? TAGLEN : 0)) {
        return CVG_EINVAL;
    }
    size_t pos = 0, n;
    for (; *toks != TOK_END; toks++) {
        int rc = write_token(hs, *toks, out, &pos);
        if (rc != CVG_OK) {
            return fail(hs, rc);
        }
    }
    int rc = encrypt_and_hash(hs, payload, len, out + pos, &n);
    if (rc != CVG_OK) {
        return fail(hs, rc);
    }
    *out_len = pos + n;
    advance(hs);
    return CVG_OK;
}

static int
read_token(cvg__noise_hs *hs, uint8_t tok, const uint8_t *msg, size_t *pos)
{
    size_t n;
    int rc;
    switch (tok) {
    case TOK_E:
        if (hs->has_re) {
            return CVG_EMISUSE; /* one "e" per side in every pattern */
        }
        memcpy(hs->re, msg + *pos, DHLEN);
        hs->has_re = true;
        *pos += DHLEN;
        mix_ephemeral(hs, hs->re);
        return CVG_OK;
    case TOK_S:
        if (hs->has_rs) {
            return CVG_EMISUSE; /* not with a pre-message: not reached */
        }
        n = DHLEN + (hs->cs.has_key ? TAGLEN : 0);
        rc = decrypt_and_hash(hs, msg + *pos, n, hs->rs, &n);
        *pos += DHLEN + (hs->cs.has_key ? TAGLEN : 0);
        hs->has_rs = rc == CVG_OK;
        return rc;
    default:
        return mix_token(hs, tok);
    }
}

int
cvg__noise_read(cvg__noise_hs *hs, const uint8_t *msg, size_t len,
                uint8_t *payload, size_t cap, size_t *payload_len)
{
    if (hs == NULL || payload_len == NULL || (msg == NULL && len > 0) ||
        (payload == NULL && cap > 0)) {
        return CVG_EINVAL;
    }
    *payload_len = 0;
    if (hs->turn != CVG__NOISE_READ) {
        return CVG_EMISUSE;
    }
    if (len > CVG__NOISE_MSG_MAX) {
        return fail(hs, CVG_EPROTO);
    }
    const uint8_t *toks = hs->msgs[hs->next_msg];
    bool keyed;
    size_t fixed = fixed_size(hs, toks, &keyed);
    size_t tag = keyed ? TAGLEN : 0;
    if (len < fixed + tag) {
        return fail(hs, CVG_ECORRUPT);
    }
    if (len - fixed - tag > cap) {
        return CVG_ETOOBIG;
    }
    size_t pos = 0;
    for (; *toks != TOK_END; toks++) {
        int rc = read_token(hs, *toks, msg, &pos);
        if (rc != CVG_OK) {
            return fail(hs, rc);
        }
    }
    int rc = decrypt_and_hash(hs, msg + pos, len - pos, payload, payload_len);
    if (rc != CVG_OK) {
        *payload_len = 0;
        return fail(hs, rc);
    }
    advance(hs);
    return CVG_OK;
}

cvg__noise_turn
cvg__noise_turn_of(const cvg__noise_hs *hs)
{
    return hs == NULL ? CVG__NOISE_FAILED : hs->turn;
}

const uint8_t *
cvg__noise_remote_static(const cvg__noise_hs *hs)
{
    return hs != NULL && hs->turn != CVG__NOISE_FAILED && hs->has_rs ? hs->rs
                                                                     : NULL;
}

/* The key to send with is the first output for the initiator, the second
 * for the responder. A one-way pattern's reverse direction must never be
 * used (7.4), so that cipher is left without a key. */
int
cvg__noise_split(cvg__noise_hs *hs, cvg__noise_transport *t)
{
    if (hs == NULL || t == NULL) {
        return CVG_EINVAL;
    }
    if (hs->turn != CVG__NOISE_SPLIT) {
        return CVG_EMISUSE;
    }
    uint8_t k1[HASHLEN], k2[HASHLEN];
    cvg__noise_transport_wipe(t);
    hkdf(hs->ck, NULL, 0, k1, k2, NULL);
    cipher_init(&t->tx, hs->initiator ? k1 : k2);
    cipher_init(&t->rx, hs->initiator ? k2 : k1);
    if (hs->n_msgs == 1) {
        cvg__noise_cipher_wipe(hs->initiator ? &t->rx : &t->tx);
    }
    memcpy(t->hash, hs->h, sizeof t->hash);
    t->has_rs = hs->has_rs;
    if (hs->has_rs) {
        memcpy(t->rs, hs->rs, sizeof t->rs);
    }
    sodium_memzero(k1, sizeof k1);
    sodium_memzero(k2, sizeof k2);
    cvg__noise_hs_wipe(hs);
    return CVG_OK;
}

void
cvg__noise_transport_wipe(cvg__noise_transport *t)
{
    if (t != NULL) {
        sodium_memzero(t, sizeof *t);
    }
}

/* ---- Init ------------------------------------------------------------------ */

/* The keys given must be exactly the ones the pattern takes: a remote key
 * given but never used would look pinned and be ignored. */
static int
check_keys(const cvg__noise_hs *hs, const pattern *p,
           const cvg__noise_config *cfg)
{
    const char *pre_local = hs->initiator ? p->pre_i : p->pre_r;
    const char *pre_remote = hs->initiator ? p->pre_r : p->pre_i;
    bool need_s = *pre_local != '\0' || writes_static(hs);
    bool need_rs = *pre_remote != '\0';
    if (need_s != (cfg->s != NULL) || need_rs != (cfg->rs != NULL) ||
        cfg->n_psks != count_psks(hs)) {
        return CVG_EINVAL;
    }
    return CVG_OK;
}

static int
load_keys(cvg__noise_hs *hs, const cvg__noise_config *cfg)
{
    if (cfg->s != NULL) {
        memcpy(hs->s_priv, cfg->s, DHLEN);
        if (crypto_scalarmult_base(hs->s_pub, hs->s_priv) != 0) {
            return CVG_EINVAL;
        }
        hs->has_s = true;
    }
    if (cfg->rs != NULL) {
        memcpy(hs->rs, cfg->rs, DHLEN);
        hs->has_rs = true;
    }
    for (size_t i = 0; i < cfg->n_psks; i++) {
        memcpy(hs->psks[i], cfg->psks + i * DHLEN, DHLEN);
    }
    hs->n_psks = cfg->n_psks;
    return CVG_OK;
}

/* InitializeSymmetric(), MixHash(prologue), then the pre-message keys,
 * the initiator's first (5.3). */
static void
start_symmetric(cvg__noise_hs *hs, const char *name, const pattern *p,
                const cvg__noise_config *cfg)
{
    size_t len = strlen(name);
    if (len <= HASHLEN) {
        memcpy(hs->h, name, len);
    } else {
        hash2(hs->h, (const uint8_t *)name, len, NULL, 0);
    }
    memcpy(hs->ck, hs->h, HASHLEN);
    mix_hash(hs, cfg->prologue, cfg->prologue_len);
    if (*p->pre_i != '\0') {
        mix_hash(hs, hs->initiator ? hs->s_pub : hs->rs, DHLEN);
    }
    if (*p->pre_r != '\0') {
        mix_hash(hs, hs->initiator ? hs->rs : hs->s_pub, DHLEN);
    }
}

int
cvg__noise_init(cvg__noise_hs *hs, const char *protocol, bool initiator,
                const cvg__noise_config *cfg)
{
    if (hs == NULL) {
        return CVG_EINVAL;
    }
    cvg__noise_hs_wipe(hs);
    if (protocol == NULL || cfg == NULL ||
        (cfg->prologue == NULL && cfg->prologue_len > 0) ||
        (cfg->psks == NULL && cfg->n_psks > 0) ||
        cfg->n_psks > CVG__NOISE_PSKS_MAX) {
        return CVG_EINVAL;
    }
    if (sodium_init() < 0) {
        return CVG_EIO;
    }
    const pattern *p;
    unsigned mask;
    int rc = parse_name(protocol, &p, &mask);
    if (rc != CVG_OK) {
        return rc;
    }
    hs->initiator = initiator;
    hs->psk_mode = mask != 0;
    hs->n_msgs = pattern_msgs(p);
    for (size_t m = 0; m < hs->n_msgs; m++) {
        build_msg(hs->msgs[m], p->msgs[m], m, mask);
    }
    rc = check_keys(hs, p, cfg);
    if (rc == CVG_OK) {
        rc = load_keys(hs, cfg);
    }
    if (rc != CVG_OK) {
        return fail(hs, rc);
    }
    start_symmetric(hs, protocol, p, cfg);
    hs->turn = initiator ? CVG__NOISE_WRITE : CVG__NOISE_READ;
    return CVG_OK;
}

int
cvg__noise_fix_ephemeral(cvg__noise_hs *hs, const uint8_t *priv)
{
    if (hs == NULL || priv == NULL) {
        return CVG_EINVAL;
    }
    if (hs->turn == CVG__NOISE_FAILED || hs->has_e) {
        return CVG_EMISUSE;
    }
    memcpy(hs->e_priv, priv, DHLEN);
    if (crypto_scalarmult_base(hs->e_pub, hs->e_priv) != 0) {
        sodium_memzero(hs->e_priv, DHLEN);
        return CVG_EINVAL;
    }
    hs->fixed_e = true;
    return CVG_OK;
}

/* ---- Transport --------------------------------------------------------- */

int
cvg__noise_encrypt(cvg__noise_cipher *c, const uint8_t *in, size_t len,
                   uint8_t *out, size_t cap, size_t *out_len)
{
    if (c == NULL || out == NULL || out_len == NULL ||
        (in == NULL && len > 0)) {
        return CVG_EINVAL;
    }
    *out_len = 0;
    if (len > CVG__NOISE_PAYLOAD_MAX) {
        return CVG_ETOOBIG;
    }
    if (cap < len + TAGLEN) {
        return CVG_EINVAL;
    }
    if (!c->has_key) {
        return CVG_EMISUSE;
    }
    int rc = cipher_encrypt(c, NULL, 0, in, len, out);
    if (rc != CVG_OK) {
        cvg__noise_cipher_wipe(c);
        return rc;
    }
    *out_len = len + TAGLEN;
    return CVG_OK;
}

int
cvg__noise_decrypt(cvg__noise_cipher *c, const uint8_t *in, size_t len,
                   uint8_t *out, size_t cap, size_t *out_len)
{
    if (c == NULL || out_len == NULL || (in == NULL && len > 0) ||
        (out == NULL && cap > 0)) {
        return CVG_EINVAL;
    }
    *out_len = 0;
    if (!c->has_key) {
        return CVG_EMISUSE;
    }
    int rc = CVG_OK;
    if (len > CVG__NOISE_MSG_MAX) {
        rc = CVG_EPROTO;
    } else if (len < TAGLEN) {
        rc = CVG_ECORRUPT;
    } else if (len - TAGLEN > cap) {
        return CVG_EINVAL;
    } else {
        rc = cipher_decrypt(c, NULL, 0, in, len, out);
    }
    if (rc != CVG_OK) {
        cvg__noise_cipher_wipe(c);
        return rc;
    }
    *out_len = len - TAGLEN;
    return CVG_OK;
}
