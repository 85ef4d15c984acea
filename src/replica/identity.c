/*
 * A replica's identity: an Ed25519 key pair (libsodium), made when the
 * replica is created. The origin id is derived from the public key (a keyed
 * BLAKE2b hash, cut to 16 bytes), so that anyone who learns an origin's
 * public key can check that the two belong together; the public key is
 * stored in the replica's meta records. The secret key is kept in the
 * directory (identity.key, mode 0600, written to a temporary file, synced,
 * then renamed, so a crash leaves the old state or the whole new file) or
 * supplied by the app, as bytes or through a callback (a key in an OS
 * keychain). A supplied key at a later open must be the replica's own.
 *
 * The same key pair is to authenticate the replica's sessions and sign its
 * ops: the network channel (Noise) uses the X25519 key libsodium derives
 * from it (crypto_sign_ed25519_sk_to_curve25519), so a replica has one
 * identity, one file and one thing to protect. Secret bytes live in
 * sodium_malloc'd memory and are wiped with sodium_memzero after use.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "replica_int.h"

#define KEY_FILE "identity.key"

_Static_assert(CVG_PUBLIC_KEY_BYTES == crypto_sign_PUBLICKEYBYTES,
               "public key size");
_Static_assert(CVG_SECRET_KEY_BYTES == crypto_sign_SECRETKEYBYTES,
               "secret key size");

void
cvg__identity_derive(const uint8_t *pk, const uint8_t *inc, size_t inc_len,
                     cvg_replica_id *out)
{
    static const uint8_t domain[] = "converge origin id v1";
    crypto_generichash_state st;
    crypto_generichash_init(&st, domain, sizeof domain - 1, sizeof out->bytes);
    crypto_generichash_update(&st, pk, CVG_PUBLIC_KEY_BYTES);
    if (inc_len > 0) {
        crypto_generichash_update(&st, inc, inc_len);
    }
    crypto_generichash_final(&st, out->bytes, sizeof out->bytes);
}

void
cvg_identity_origin(const uint8_t *pk, cvg_replica_id *out)
{
    cvg__identity_derive(pk, NULL, 0, out);
}

int
cvg_identity_generate(uint8_t *pk, uint8_t *sk)
{
    if (pk == NULL || sk == NULL) {
        return CVG_EINVAL;
    }
    if (sodium_init() < 0) {
        return CVG_EIO;
    }
    crypto_sign_keypair(pk, sk);
    return CVG_OK;
}

int
cvg_replica_public_key(const cvg_replica *r, uint8_t *out)
{
    if (r == NULL || out == NULL) {
        return CVG_EINVAL;
    }
    if (!r->has_pk) {
        return CVG_ENOTFOUND;
    }
    memcpy(out, r->pk, CVG_PUBLIC_KEY_BYTES);
    return CVG_OK;
}

static void
key_path(char *buf, size_t len, const char *dir, const char *suffix)
{
    snprintf(buf, len, "%s/%s%s", dir, KEY_FILE, suffix);
}

/* The key file in @p dir into @p sk: CVG_ENOTFOUND if there is none. */
static int
read_key_file(cvg_replica *r, const char *dir, uint8_t *sk)
{
    char path[4096];
    key_path(path, sizeof path, dir, "");
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        return errno == ENOENT
                   ? CVG_ENOTFOUND
                   : cvg__replica_fail(r, CVG_EACCES, "cannot read %s", path);
    }
    struct stat st;
    ssize_t n = -1;
    if (fstat(fd, &st) == 0 && st.st_size == CVG_SECRET_KEY_BYTES) {
        n = read(fd, sk, CVG_SECRET_KEY_BYTES);
    }
    close(fd);
    if (n != CVG_SECRET_KEY_BYTES) {
        return cvg__replica_fail(r, CVG_ECORRUPT,
                                 "%s is not a secret key of %d bytes", path,
                                 CVG_SECRET_KEY_BYTES);
    }
    return CVG_OK;
}

static int read_key_file(cvg_replica *r, const char *dir, uint8_t *sk);

/* Write @p sk to the key file in @p dir, mode 0600, all or nothing. If
 * another process made the file first (it creates the same replica now),
 * its key is the one: @p sk is replaced by it. */
static int
write_key_file(cvg_replica *r, const char *dir, uint8_t *sk)
{
    char tmp[4096], path[4096];
    key_path(tmp, sizeof tmp, dir, ".tmp");
    key_path(path, sizeof path, dir, "");
    (void)unlink(tmp); /* a leftover of a crash */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        return cvg__replica_fail(r, CVG_EACCES, "cannot create %s", tmp);
    }
    bool ok = write(fd, sk, CVG_SECRET_KEY_BYTES) == CVG_SECRET_KEY_BYTES &&
              fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    /* link, not rename: it never replaces a key file that exists. */
    bool taken = false;
    if (ok && link(tmp, path) != 0) {
        taken = errno == EEXIST;
        ok = false;
    }
    (void)unlink(tmp);
    if (taken) {
        return read_key_file(r, dir, sk);
    }
    int dfd = ok ? open(dir, O_RDONLY) : -1;
    if (dfd >= 0) {
        ok = fsync(dfd) == 0; /* the rename itself is durable */
        close(dfd);
    }
    if (!ok) {
        return cvg__replica_fail(r, CVG_EIO, "cannot write %s", path);
    }
    return CVG_OK;
}

/* The secret key the app supplies into @p sk: CVG_ENOTFOUND if none. */
static int
supplied_key(cvg_replica *r, const cvg_replica_options *o, uint8_t *sk)
{
    if (o->secret_key != NULL) {
        memcpy(sk, o->secret_key, CVG_SECRET_KEY_BYTES);
        return CVG_OK;
    }
    if (o->key_fn == NULL) {
        return CVG_ENOTFOUND;
    }
    if (o->key_fn(o->key_ctx, sk) != 0) {
        return cvg__replica_fail(r, CVG_EKEY,
                                 "the key callback gave no secret key");
    }
    return CVG_OK;
}

/* Whether @p sk is a well-formed Ed25519 secret key: its second half is
 * the public key of its first (the seed). */
static bool
key_consistent(const uint8_t *sk)
{
    uint8_t pk[crypto_sign_PUBLICKEYBYTES], skx[crypto_sign_SECRETKEYBYTES];
    crypto_sign_seed_keypair(pk, skx, sk);
    bool same = sodium_memcmp(skx, sk, sizeof skx) == 0;
    sodium_memzero(skx, sizeof skx);
    return same;
}

/* Keep @p sk (sodium_malloc'd) for signing, out of reach between uses:
 * no access but while a signature is made. */
static void
keep_key(cvg_replica *r, uint8_t *sk)
{
    sodium_free(r->sk);
    r->sk = sk;
    (void)sodium_mprotect_noaccess(sk);
}

void
cvg__identity_forget(cvg_replica *r)
{
    sodium_free(r->sk); /* accepts NULL; wipes the key */
    r->sk = NULL;
}

bool
cvg__replica_has_key(const cvg_replica *r)
{
    return r->sk != NULL;
}

int
cvg__replica_sign(cvg_replica *r, const uint8_t *msg, size_t len,
                  uint8_t sig[64])
{
    if (r->sk == NULL) {
        memset(sig, 0, 64);
        return cvg__replica_fail(r, CVG_EKEY,
                                 "no secret key to prove this replica's "
                                 "identity: open it with its key "
                                 "(secret_key or key_fn) or its key file");
    }
    (void)sodium_mprotect_readonly(r->sk);
    crypto_sign_detached(sig, NULL, msg, len, r->sk);
    (void)sodium_mprotect_noaccess(r->sk);
    return CVG_OK;
}

int
cvg__identity_create(cvg_replica *r, const char *dir)
{
    uint8_t *sk = sodium_malloc(CVG_SECRET_KEY_BYTES);
    if (sk == NULL) {
        return CVG_ENOMEM;
    }
    int rc = supplied_key(r, &r->opts, sk);
    bool write = false;
    if (rc == CVG_ENOTFOUND) {
        /* A key file left by a creation that crashed before its commit is
         * this replica's key: reuse it. */
        rc = read_key_file(r, dir, sk);
        if (rc == CVG_ENOTFOUND) {
            crypto_sign_keypair(r->pk, sk);
            rc = CVG_OK;
            write = true;
        }
    }
    if (rc == CVG_OK && !key_consistent(sk)) {
        rc = cvg__replica_fail(r, CVG_EKEY,
                               "the secret key is not an Ed25519 key pair");
    }
    if (rc == CVG_OK && write) {
        rc = write_key_file(r, dir, sk);
    }
    if (rc == CVG_OK) {
        crypto_sign_ed25519_sk_to_pk(r->pk, sk);
        cvg_identity_origin(r->pk, &r->id);
        r->has_pk = true;
        keep_key(r, sk);
        return CVG_OK;
    }
    sodium_free(sk); /* wipes it */
    return rc;
}

int
cvg__identity_check(cvg_replica *r, const char *dir)
{
    cvg_replica_id derived;
    if (r->has_pk) {
        cvg__identity_derive(r->pk, r->inc, r->inc_len, &derived);
        if (cvg__id_cmp(&derived, &r->id) != 0) {
            return cvg__replica_fail(r, CVG_ECORRUPT,
                                     "the replica's id is not its public "
                                     "key's");
        }
    }
    uint8_t *sk = sodium_malloc(CVG_SECRET_KEY_BYTES);
    if (sk == NULL) {
        return CVG_ENOMEM;
    }
    int rc = supplied_key(r, &r->opts, sk);
    if (rc == CVG_ENOTFOUND) {
        /* Nothing supplied: the key file, if there is one that fits. A
         * replica without it opens, but cannot prove who it is to peers
         * (cvg__replica_sign says so). */
        uint8_t pk[CVG_PUBLIC_KEY_BYTES];
        if (r->has_pk && read_key_file(r, dir, sk) == CVG_OK &&
            key_consistent(sk)) {
            crypto_sign_ed25519_sk_to_pk(pk, sk);
            if (sodium_memcmp(pk, r->pk, sizeof pk) == 0) {
                keep_key(r, sk);
                return CVG_OK;
            }
        }
        rc = CVG_OK;
    } else if (rc == CVG_OK) {
        uint8_t pk[CVG_PUBLIC_KEY_BYTES];
        crypto_sign_ed25519_sk_to_pk(pk, sk);
        if (!r->has_pk || !key_consistent(sk) ||
            sodium_memcmp(pk, r->pk, sizeof pk) != 0) {
            rc = cvg__replica_fail(r, CVG_EKEY,
                                   "the secret key given is not this "
                                   "replica's identity");
        } else {
            keep_key(r, sk);
            return CVG_OK;
        }
    }
    sodium_free(sk);
    return rc;
}
