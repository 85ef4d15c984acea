/*
 * A replica's identity: an Ed25519 key pair made at creation, its origin id
 * derived from the public key, the secret key in identity.key (mode 0600)
 * or supplied by the app, and a wrong key refused with CVG_EKEY.
 */
#include <criterion/criterion.h>
#include <lmdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "converge.h"

#include "raw_record.h"
#include "testutil.h"

static int
open_with_key(const char *dir, const uint8_t *sk, cvg_replica **r)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.durability = CVG_RELAXED;
    o.secret_key = sk;
    *r = NULL;
    return cvg_replica_open(dir, &o, r);
}

static void
expect_bound(cvg_replica *r, const uint8_t *want_pk)
{
    uint8_t pk[CVG_PUBLIC_KEY_BYTES];
    cr_assert_eq(cvg_replica_public_key(r, pk), CVG_OK);
    if (want_pk != NULL) {
        cr_expect_eq(memcmp(pk, want_pk, sizeof pk), 0);
    }
    cvg_replica_id id, derived;
    cvg_replica_id_get(r, &id);
    cvg_identity_origin(pk, &derived);
    cr_expect_eq(memcmp(&id, &derived, sizeof id), 0,
                 "the origin id is the public key's");
}

Test(identity, a_new_replica_has_a_key_pair_kept_in_a_private_file)
{
    const char *d = cvg_test_dir("id-new");
    char dir[512], file[600];
    snprintf(dir, sizeof dir, "%s", d);
    cvg_replica *r;
    cr_assert_eq(open_with_key(dir, NULL, &r), CVG_OK);
    expect_bound(r, NULL);
    uint8_t pk[CVG_PUBLIC_KEY_BYTES];
    cr_assert_eq(cvg_replica_public_key(r, pk), CVG_OK);
    cvg_replica_close(r);
    snprintf(file, sizeof file, "%s/identity.key", dir);
    struct stat st;
    cr_assert_eq(stat(file, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0600);
    cr_expect_eq(st.st_size, CVG_SECRET_KEY_BYTES);
    /* The same identity after a reopen. */
    cr_assert_eq(open_with_key(dir, NULL, &r), CVG_OK);
    expect_bound(r, pk);
    cvg_replica_close(r);
    /* Two replicas, two identities. */
    char other[512];
    snprintf(other, sizeof other, "%s", cvg_test_dir("id-new-2"));
    cr_assert_eq(open_with_key(other, NULL, &r), CVG_OK);
    uint8_t pk2[CVG_PUBLIC_KEY_BYTES];
    cr_assert_eq(cvg_replica_public_key(r, pk2), CVG_OK);
    cr_expect_neq(memcmp(pk, pk2, sizeof pk), 0);
    cvg_replica_close(r);
}

Test(identity, a_supplied_key_is_the_identity_and_a_wrong_one_is_refused)
{
    const char *d = cvg_test_dir("id-supplied");
    char dir[512], file[600];
    snprintf(dir, sizeof dir, "%s", d);
    uint8_t pk[CVG_PUBLIC_KEY_BYTES], sk[CVG_SECRET_KEY_BYTES];
    cr_assert_eq(cvg_identity_generate(pk, sk), CVG_OK);
    cvg_replica *r;
    cr_assert_eq(open_with_key(dir, sk, &r), CVG_OK);
    expect_bound(r, pk);
    cvg_replica_close(r);
    snprintf(file, sizeof file, "%s/identity.key", dir);
    struct stat st;
    cr_expect_neq(stat(file, &st), 0, "a supplied key is not written");
    cr_assert_eq(open_with_key(dir, sk, &r), CVG_OK);
    cvg_replica_close(r);
    cr_assert_eq(open_with_key(dir, NULL, &r), CVG_OK, "reads need no key");
    expect_bound(r, pk);
    cvg_replica_close(r);
    uint8_t pk2[CVG_PUBLIC_KEY_BYTES], sk2[CVG_SECRET_KEY_BYTES];
    cr_assert_eq(cvg_identity_generate(pk2, sk2), CVG_OK);
    cr_expect_eq(open_with_key(dir, sk2, &r), CVG_EKEY);
    cr_expect_null(r);
    cr_expect(strstr(cvg_replica_errmsg(NULL), "not this replica") != NULL,
              "%s", cvg_replica_errmsg(NULL));
    /* A key whose halves do not belong together is no key. */
    sk[40] ^= 1;
    cr_expect_eq(open_with_key(dir, sk, &r), CVG_EKEY);
    const char *fresh = cvg_test_dir("id-bad-key");
    cr_expect_eq(open_with_key(fresh, sk, &r), CVG_EKEY);
}

static int
from_keychain(void *ctx, uint8_t *sk_out)
{
    const uint8_t *sk = ctx;
    if (sk == NULL) {
        return -1;
    }
    memcpy(sk_out, sk, CVG_SECRET_KEY_BYTES);
    return 0;
}

Test(identity, a_key_from_a_callback)
{
    const char *d = cvg_test_dir("id-callback");
    char dir[512];
    snprintf(dir, sizeof dir, "%s", d);
    uint8_t pk[CVG_PUBLIC_KEY_BYTES], sk[CVG_SECRET_KEY_BYTES];
    cr_assert_eq(cvg_identity_generate(pk, sk), CVG_OK);
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.key_fn = from_keychain;
    o.key_ctx = sk;
    cvg_replica *r;
    cr_assert_eq(cvg_replica_open(dir, &o, &r), CVG_OK);
    expect_bound(r, pk);
    cvg_replica_close(r);
    o.key_ctx = NULL; /* the keychain refuses */
    cr_expect_eq(cvg_replica_open(dir, &o, &r), CVG_EKEY);
}

/* A creation that crashed after writing its key file and before its
 * commit left the file: the next creation takes that key. */
Test(identity, a_key_file_left_by_a_crash_is_reused)
{
    const char *d = cvg_test_dir("id-leftover");
    char dir[512], file[600];
    snprintf(dir, sizeof dir, "%s", d);
    uint8_t pk[CVG_PUBLIC_KEY_BYTES], sk[CVG_SECRET_KEY_BYTES];
    cr_assert_eq(cvg_identity_generate(pk, sk), CVG_OK);
    snprintf(file, sizeof file, "%s/identity.key", dir);
    FILE *f = fopen(file, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(sk, 1, sizeof sk, f), sizeof sk);
    fclose(f);
    cvg_replica *r;
    cr_assert_eq(open_with_key(dir, NULL, &r), CVG_OK);
    expect_bound(r, pk);
    cvg_replica_close(r);
    /* A damaged one is refused, not replaced. */
    const char *d2 = cvg_test_dir("id-short");
    snprintf(file, sizeof file, "%s/identity.key", d2);
    f = fopen(file, "wb");
    cr_assert_not_null(f);
    fputs("short", f);
    fclose(f);
    cr_expect_eq(open_with_key(d2, NULL, &r), CVG_ECORRUPT);
}

/* Poke the meta record @p name of the replica in @p dir (NULL: delete). */
static void
poke_meta(const char *dir, const char *name, const void *v, size_t len)
{
    cvg_test_raw_put(dir, "meta", name, strlen(name), v, len, true);
}

Test(identity, an_older_replica_has_none_and_a_damaged_one_is_corrupt)
{
    const char *d = cvg_test_dir("id-legacy");
    char dir[512];
    snprintf(dir, sizeof dir, "%s", d);
    cvg_replica *r;
    cr_assert_eq(open_with_key(dir, NULL, &r), CVG_OK);
    cvg_replica_close(r);
    /* As a replica made by version 0.1: no public key record. */
    poke_meta(dir, "pk", NULL, 0);
    cr_assert_eq(open_with_key(dir, NULL, &r), CVG_OK);
    uint8_t pk[CVG_PUBLIC_KEY_BYTES];
    cr_expect_eq(cvg_replica_public_key(r, pk), CVG_ENOTFOUND);
    cvg_replica_close(r);
    /* A public key that is not the id's. */
    uint8_t other[CVG_PUBLIC_KEY_BYTES], sk[CVG_SECRET_KEY_BYTES];
    cr_assert_eq(cvg_identity_generate(other, sk), CVG_OK);
    poke_meta(dir, "pk", other, sizeof other);
    cr_expect_eq(open_with_key(dir, NULL, &r), CVG_ECORRUPT);
    poke_meta(dir, "pk", other, 5);
    cr_expect_eq(open_with_key(dir, NULL, &r), CVG_ECORRUPT);
    cr_expect_eq(cvg_replica_public_key(NULL, pk), CVG_EINVAL);
    cr_expect_eq(cvg_identity_generate(NULL, sk), CVG_EINVAL);
}
