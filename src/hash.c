/*
 * The process's hash key (hash.h says why there is one). It is drawn on the
 * first call, once across threads (pthread_once), from libsodium's
 * generator; after that a call is one SipHash-2-4 over the bytes (the
 * once-check is a load and a compare).
 */
#include "hash.h"

#include <pthread.h>
#include <sodium.h>
#include <string.h>

static unsigned char hash_key[crypto_shorthash_KEYBYTES];
static pthread_once_t hash_once = PTHREAD_ONCE_INIT;

static void
hash_key_init(void)
{
    /* sodium_init() only picks implementations and seeds the generator;
     * randombytes_buf() works without it, so its result does not matter
     * here (opening a replica reports a failure). */
    if (sodium_init() < 0) {
        /* nothing to do: the key below is drawn all the same */
    }
    crypto_shorthash_keygen(hash_key);
}

uint64_t
cvg__hash(const void *p, size_t n)
{
    pthread_once(&hash_once, hash_key_init);
    unsigned char out[crypto_shorthash_BYTES];
    crypto_shorthash(out, p, n, hash_key);
    uint64_t h;
    memcpy(&h, out, sizeof h);
    return h ? h : 1;
}
