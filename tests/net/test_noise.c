/*
 * The Noise layer's edges, beyond the vectors: names and keys that do not
 * fit a pattern, calls out of turn, the 65,535-byte limit on both sides,
 * short buffers that leave the state as it was, low-order public keys, a
 * wrong psk, the reserved last nonce, and a failed decrypt that kills the
 * cipher. Wherever a state dies it must be wiped to zeros.
 */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "net/noise.h"

#define XX "Noise_XX_25519_ChaChaPoly_BLAKE2b"

static uint8_t msg[CVG__NOISE_MSG_MAX + 64], out[CVG__NOISE_MSG_MAX + 64];

typedef struct pair {
    cvg__noise_hs ini, resp;
    uint8_t si[32], sr[32];
} pair;

static bool
all_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        if (b[i] != 0) {
            return false;
        }
    }
    return true;
}

static void
pair_start(pair *p, const char *name)
{
    randombytes_buf(p->si, sizeof p->si);
    randombytes_buf(p->sr, sizeof p->sr);
    cvg__noise_config ci = {.s = p->si}, cr = {.s = p->sr};
    cr_assert_eq(cvg__noise_init(&p->ini, name, true, &ci), CVG_OK);
    cr_assert_eq(cvg__noise_init(&p->resp, name, false, &cr), CVG_OK);
}

/* One message from @p w to @p r with @p payload. */
static void
step(cvg__noise_hs *w, cvg__noise_hs *r, const char *payload)
{
    size_t n, got;
    size_t len = strlen(payload);
    cr_assert_eq(
        cvg__noise_write(w, (const uint8_t *)payload, len, msg, sizeof msg, &n),
        CVG_OK);
    cr_assert_eq(cvg__noise_read(r, msg, n, out, sizeof out, &got), CVG_OK);
    cr_assert_eq(got, len);
    cr_assert_eq(memcmp(out, payload, len), 0);
}

static void
pair_finish(pair *p, cvg__noise_transport *ti, cvg__noise_transport *tr)
{
    step(&p->ini, &p->resp, "one");
    step(&p->resp, &p->ini, "two");
    step(&p->ini, &p->resp, "three");
    cr_assert_eq(cvg__noise_split(&p->ini, ti), CVG_OK);
    cr_assert_eq(cvg__noise_split(&p->resp, tr), CVG_OK);
}

Test(noise, a_random_xx_handshake_agrees)
{
    pair p;
    cvg__noise_transport ti, tr, ti2, tr2;
    pair_start(&p, XX);
    pair_finish(&p, &ti, &tr);
    cr_expect_eq(memcmp(ti.hash, tr.hash, sizeof ti.hash), 0);
    uint8_t pub[32];
    crypto_scalarmult_base(pub, p.sr);
    cr_expect(ti.has_rs && memcmp(ti.rs, pub, 32) == 0);
    crypto_scalarmult_base(pub, p.si);
    cr_expect(tr.has_rs && memcmp(tr.rs, pub, 32) == 0);
    cr_expect_eq(memcmp(ti.tx.k, tr.rx.k, 32), 0);
    cr_expect_eq(memcmp(ti.rx.k, tr.tx.k, 32), 0);
    cr_expect_neq(memcmp(ti.tx.k, ti.rx.k, 32), 0);

    /* Fresh ephemeral keys: the same static keys give another session. */
    cvg__noise_config ci = {.s = p.si}, cr = {.s = p.sr};
    cr_assert_eq(cvg__noise_init(&p.ini, XX, true, &ci), CVG_OK);
    cr_assert_eq(cvg__noise_init(&p.resp, XX, false, &cr), CVG_OK);
    pair_finish(&p, &ti2, &tr2);
    cr_expect_neq(memcmp(ti.hash, ti2.hash, sizeof ti.hash), 0);
}

Test(noise, names_outside_the_suite_or_tables_are_refused)
{
    static const char *bad[] = {
        "Noise_YY_25519_ChaChaPoly_BLAKE2b",
        "Noise_XX_25519_AESGCM_SHA256",
        "Noise_XX_448_ChaChaPoly_BLAKE2b",
        "Noise_XX_25519_ChaChaPoly_BLAKE2s",
        "Noise__25519_ChaChaPoly_BLAKE2b",
        "Noise_XXpsk4_25519_ChaChaPoly_BLAKE2b", /* XX has 3 messages */
        "Noise_XXpsk2+psk2_25519_ChaChaPoly_BLAKE2b",
        "Noise_XXpsk3+psk0_25519_ChaChaPoly_BLAKE2b",
        "Noise_XXpsk_25519_ChaChaPoly_BLAKE2b",
        "Noise_XXfallback_25519_ChaChaPoly_BLAKE2b",
        "Noise_XX+psk0_25519_ChaChaPoly_BLAKE2b",
        "Noise_XX_25519_ChaChaPoly_BLAKE2b_",
        "noise_XX_25519_ChaChaPoly_BLAKE2b",
        "Noise_XX",
        "",
    };
    uint8_t s[32] = {1};
    cvg__noise_config cfg = {.s = s};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cvg__noise_hs hs;
        memset(&hs, 0xAA, sizeof hs);
        cr_expect_eq(cvg__noise_init(&hs, bad[i], true, &cfg), CVG_EINVAL, "%s",
                     bad[i]);
        cr_expect(all_zero(&hs, sizeof hs), "%s: state wiped", bad[i]);
    }
    cvg__noise_hs hs;
    cr_expect_eq(cvg__noise_init(&hs, NULL, true, &cfg), CVG_EINVAL);
    cr_expect_eq(cvg__noise_init(&hs, XX, true, NULL), CVG_EINVAL);
    cr_expect_eq(cvg__noise_init(NULL, XX, true, &cfg), CVG_EINVAL);
    /* Two psk modifiers are one protocol. */
    uint8_t psks[2][32] = {{2}, {3}};
    cvg__noise_config two = {.s = s, .psks = psks[0], .n_psks = 2};
    cr_expect_eq(cvg__noise_init(&hs,
                                 "Noise_XXpsk0+psk3_25519_ChaChaPoly_"
                                 "BLAKE2b",
                                 true, &two),
                 CVG_OK);
}

Test(noise, keys_must_fit_the_pattern)
{
    uint8_t s[32] = {1}, rs[32] = {9}, psk[1][32] = {{7}};
    cvg__noise_hs hs;
    cvg__noise_config none = {0}, with_s = {.s = s},
                      with_rs = {.s = s, .rs = rs}, nk_rs = {.rs = rs},
                      with_psk = {.s = s, .psks = psk[0], .n_psks = 1};
    cr_expect_eq(cvg__noise_init(&hs, XX, true, &none), CVG_EINVAL,
                 "XX needs a static key");
    cr_expect_eq(cvg__noise_init(&hs, "Noise_NN_25519_ChaChaPoly_BLAKE2b", true,
                                 &with_s),
                 CVG_EINVAL, "NN takes no static key");
    cr_expect_eq(cvg__noise_init(&hs, XX, true, &with_rs), CVG_EINVAL,
                 "XX takes no remote key in advance");
    cr_expect_eq(
        cvg__noise_init(&hs, "Noise_NK_25519_ChaChaPoly_BLAKE2b", true, &none),
        CVG_EINVAL, "NK needs the responder's key");
    cr_expect_eq(
        cvg__noise_init(&hs, "Noise_NK_25519_ChaChaPoly_BLAKE2b", true, &nk_rs),
        CVG_OK);
    cr_expect_eq(cvg__noise_init(&hs, XX, true, &with_psk), CVG_EINVAL,
                 "XX takes no psk");
    cr_expect_eq(cvg__noise_init(&hs, "Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b",
                                 true, &with_s),
                 CVG_EINVAL, "XXpsk3 needs its psk");
    cr_expect_eq(cvg__noise_init(&hs, "Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b",
                                 true, &with_psk),
                 CVG_OK);
    /* The responder of NX has a static key, its initiator none. */
    cr_expect_eq(cvg__noise_init(&hs, "Noise_NX_25519_ChaChaPoly_BLAKE2b",
                                 false, &with_s),
                 CVG_OK);
    cr_expect_eq(
        cvg__noise_init(&hs, "Noise_NX_25519_ChaChaPoly_BLAKE2b", true, &none),
        CVG_OK);
}

Test(noise, calls_out_of_turn_are_misuse)
{
    pair p;
    size_t n;
    cvg__noise_transport t;
    pair_start(&p, XX);
    cr_expect_eq(cvg__noise_read(&p.ini, msg, 32, out, sizeof out, &n),
                 CVG_EMISUSE);
    cr_expect_eq(cvg__noise_write(&p.resp, NULL, 0, msg, sizeof msg, &n),
                 CVG_EMISUSE);
    cr_expect_eq(cvg__noise_split(&p.ini, &t), CVG_EMISUSE);
    uint8_t e[32] = {5};
    cr_expect_eq(cvg__noise_fix_ephemeral(&p.ini, e), CVG_OK);
    step(&p.ini, &p.resp, "");
    cr_expect_eq(cvg__noise_fix_ephemeral(&p.ini, e), CVG_EMISUSE,
                 "too late: e is sent");
    /* Nothing changed by the refusals: the handshake goes on. */
    step(&p.resp, &p.ini, "");
    step(&p.ini, &p.resp, "");
    cr_expect_eq(cvg__noise_write(&p.ini, NULL, 0, msg, sizeof msg, &n),
                 CVG_EMISUSE, "no fourth message");
    cr_expect_eq(cvg__noise_split(&p.ini, &t), CVG_OK);
    cr_expect_eq(cvg__noise_split(&p.ini, &t), CVG_EMISUSE, "split once");
}

Test(noise, the_message_limit_and_short_buffers)
{
    pair p;
    size_t n, got;
    pair_start(&p, XX);
    static uint8_t big[CVG__NOISE_MSG_MAX];
    /* Message 1 of XX is e (32 bytes) and the payload in clear. */
    cr_expect_eq(cvg__noise_write(&p.ini, big, CVG__NOISE_MSG_MAX - 31, msg,
                                  sizeof msg, &n),
                 CVG_ETOOBIG);
    cr_expect_eq(cvg__noise_write(&p.ini, big, 10, msg, 41, &n), CVG_EINVAL,
                 "a buffer one byte short");
    cr_expect_eq(n, 0);
    cr_assert_eq(cvg__noise_write(&p.ini, big, CVG__NOISE_MSG_MAX - 32, msg,
                                  sizeof msg, &n),
                 CVG_OK, "refusals left the state as it was");
    cr_assert_eq(n, CVG__NOISE_MSG_MAX);
    /* A payload larger than the reader's buffer waits for a larger one. */
    cr_expect_eq(cvg__noise_read(&p.resp, msg, n, out, 100, &got), CVG_ETOOBIG);
    cr_expect_eq(cvg__noise_turn_of(&p.resp), CVG__NOISE_READ);
    cr_assert_eq(cvg__noise_read(&p.resp, msg, n, out, sizeof out, &got),
                 CVG_OK);
    cr_expect_eq(got, CVG__NOISE_MSG_MAX - 32);
}

Test(noise, oversized_or_short_messages_kill_the_reader)
{
    pair p;
    size_t got;
    pair_start(&p, XX);
    cr_expect_eq(cvg__noise_read(&p.resp, msg, CVG__NOISE_MSG_MAX + 1, out,
                                 sizeof out, &got),
                 CVG_EPROTO);
    cr_expect_eq(cvg__noise_turn_of(&p.resp), CVG__NOISE_FAILED);
    cr_expect(all_zero(&p.resp, sizeof p.resp));

    pair_start(&p, XX);
    cr_expect_eq(cvg__noise_read(&p.resp, msg, 31, out, sizeof out, &got),
                 CVG_ECORRUPT, "shorter than e");
    cr_expect(all_zero(&p.resp, sizeof p.resp));
    cr_expect_eq(cvg__noise_read(&p.resp, msg, 40, out, sizeof out, &got),
                 CVG_EMISUSE, "dead");

    /* Message 2 cut short by one byte, and with one bit flipped. */
    for (int kind = 0; kind < 2; kind++) {
        size_t n;
        pair_start(&p, XX);
        step(&p.ini, &p.resp, "hello");
        cr_assert_eq(cvg__noise_write(&p.resp, (const uint8_t *)"x", 1, msg,
                                      sizeof msg, &n),
                     CVG_OK);
        if (kind == 0) {
            n--;
        } else {
            msg[40] ^= 0x01; /* inside the encrypted static key */
        }
        cr_expect_eq(cvg__noise_read(&p.ini, msg, n, out, sizeof out, &got),
                     CVG_ECORRUPT);
        cr_expect(all_zero(&p.ini, sizeof p.ini), "wiped");
    }
}

/* A public key whose DH output is all zeros, whatever the private key. */
Test(noise, low_order_public_keys_fail_the_handshake)
{
    static const char *points[] = {
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    };
    for (size_t i = 0; i < sizeof points / sizeof points[0]; i++) {
        pair p;
        size_t n, got;
        pair_start(&p, XX);
        cr_assert_eq(sodium_hex2bin(msg, 32, points[i], 64, NULL, NULL, NULL),
                     0);
        cr_assert_eq(cvg__noise_read(&p.resp, msg, 32, out, sizeof out, &got),
                     CVG_OK, "e is only stored");
        cr_expect_eq(cvg__noise_write(&p.resp, NULL, 0, msg, sizeof msg, &n),
                     CVG_EPROTO, "point %zu: ee", i);
        cr_expect(all_zero(&p.resp, sizeof p.resp));
    }
}

Test(noise, a_wrong_psk_fails_the_first_encrypted_read)
{
    uint8_t a[1][32] = {{1}}, b[1][32] = {{2}};
    cvg__noise_config ci = {.psks = a[0], .n_psks = 1},
                      cr = {.psks = b[0], .n_psks = 1};
    cvg__noise_hs ini, resp;
    size_t n, got;
    const char *name = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2b";
    cr_assert_eq(cvg__noise_init(&ini, name, true, &ci), CVG_OK);
    cr_assert_eq(cvg__noise_init(&resp, name, false, &cr), CVG_OK);
    cr_assert_eq(
        cvg__noise_write(&ini, (const uint8_t *)"hi", 2, msg, sizeof msg, &n),
        CVG_OK);
    cr_expect_eq(n, 32 + 2 + 16, "psk0 encrypts the first payload");
    cr_expect_eq(cvg__noise_read(&resp, msg, n, out, sizeof out, &got),
                 CVG_ECORRUPT);
}

static void
transport_pair(cvg__noise_transport *ti, cvg__noise_transport *tr)
{
    pair p;
    pair_start(&p, XX);
    pair_finish(&p, ti, tr);
}

Test(noise, the_last_nonce_is_reserved)
{
    cvg__noise_transport ti, tr;
    size_t n, got;
    transport_pair(&ti, &tr);
    ti.tx.n = UINT64_MAX - 1;
    tr.rx.n = UINT64_MAX - 1;
    cr_assert_eq(cvg__noise_encrypt(&ti.tx, (const uint8_t *)"a", 1, msg,
                                    sizeof msg, &n),
                 CVG_OK, "2^64-2 is the last usable nonce");
    cr_assert_eq(cvg__noise_decrypt(&tr.rx, msg, n, out, sizeof out, &got),
                 CVG_OK);
    cr_expect_eq(ti.tx.n, UINT64_MAX);
    cr_expect_eq(cvg__noise_encrypt(&ti.tx, (const uint8_t *)"b", 1, msg,
                                    sizeof msg, &n),
                 CVG_ELIMIT);
    cr_expect(all_zero(&ti.tx, sizeof ti.tx), "exhausted: wiped");
    cr_expect_eq(cvg__noise_decrypt(&tr.rx, msg, 17, out, sizeof out, &got),
                 CVG_ELIMIT);
    cr_expect(all_zero(&tr.rx, sizeof tr.rx));
}

Test(noise, a_failed_decrypt_kills_the_cipher)
{
    cvg__noise_transport ti, tr;
    size_t n, got;
    transport_pair(&ti, &tr);
    cr_assert_eq(cvg__noise_encrypt(&ti.tx, (const uint8_t *)"abc", 3, msg,
                                    sizeof msg, &n),
                 CVG_OK);
    msg[1] ^= 0x80;
    cr_expect_eq(cvg__noise_decrypt(&tr.rx, msg, n, out, sizeof out, &got),
                 CVG_ECORRUPT);
    cr_expect(all_zero(&tr.rx, sizeof tr.rx));
    msg[1] ^= 0x80;
    cr_expect_eq(cvg__noise_decrypt(&tr.rx, msg, n, out, sizeof out, &got),
                 CVG_EMISUSE, "dead, even for the right message");
}

Test(noise, transport_limits_and_in_place)
{
    cvg__noise_transport ti, tr;
    size_t n, got;
    transport_pair(&ti, &tr);
    static uint8_t big[CVG__NOISE_MSG_MAX + 1];
    cr_expect_eq(cvg__noise_encrypt(&ti.tx, big, CVG__NOISE_PAYLOAD_MAX + 1,
                                    msg, sizeof msg, &n),
                 CVG_ETOOBIG);
    cr_expect_eq(cvg__noise_encrypt(&ti.tx, big, 10, msg, 25, &n), CVG_EINVAL);
    cr_expect_eq(ti.tx.n, 0, "refusals use no nonce");
    cr_expect_eq(cvg__noise_decrypt(&tr.rx, big, CVG__NOISE_MSG_MAX + 1, out,
                                    sizeof out, &got),
                 CVG_EPROTO);

    transport_pair(&ti, &tr);
    memset(big, 'z', CVG__NOISE_PAYLOAD_MAX);
    cr_assert_eq(cvg__noise_encrypt(&ti.tx, big, CVG__NOISE_PAYLOAD_MAX, big,
                                    sizeof big, &n),
                 CVG_OK, "in place");
    cr_assert_eq(n, CVG__NOISE_MSG_MAX);
    cr_assert_eq(cvg__noise_decrypt(&tr.rx, big, n, big, sizeof big, &got),
                 CVG_OK);
    cr_assert_eq(got, CVG__NOISE_PAYLOAD_MAX);
    for (size_t i = 0; i < got; i++) {
        cr_assert_eq(big[i], 'z');
    }
    /* Without a key (one-way responder's send side) nothing is sent. */
    cvg__noise_cipher none;
    memset(&none, 0, sizeof none);
    cr_expect_eq(cvg__noise_encrypt(&none, big, 1, msg, sizeof msg, &n),
                 CVG_EMISUSE);
}

Test(noise, one_way_patterns_leave_the_reverse_without_a_key)
{
    uint8_t sr[32], pub[32];
    randombytes_buf(sr, sizeof sr);
    crypto_scalarmult_base(pub, sr);
    cvg__noise_config ci = {.rs = pub}, cr = {.s = sr};
    cvg__noise_hs ini, resp;
    cvg__noise_transport ti, tr;
    const char *name = "Noise_N_25519_ChaChaPoly_BLAKE2b";
    cr_assert_eq(cvg__noise_init(&ini, name, true, &ci), CVG_OK);
    cr_assert_eq(cvg__noise_init(&resp, name, false, &cr), CVG_OK);
    step(&ini, &resp, "sealed");
    cr_assert_eq(cvg__noise_split(&ini, &ti), CVG_OK);
    cr_assert_eq(cvg__noise_split(&resp, &tr), CVG_OK);
    cr_expect(ti.tx.has_key && !ti.rx.has_key);
    cr_expect(tr.rx.has_key && !tr.tx.has_key);
    cr_expect(all_zero(&tr.tx, sizeof tr.tx));
}
