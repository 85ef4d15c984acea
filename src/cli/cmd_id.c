/*
 * Identities: `id` prints a replica's origin id and public key, `keygen`
 * makes a key pair apart from any replica (a secret key file, mode 0600,
 * that `init --key FILE` then gives to a new replica). A secret key passes
 * through this process's memory briefly and is wiped after use, with
 * volatile stores that the compiler cannot drop (the command uses the
 * public API only, which has no wipe call).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* Wipe @p n bytes so that the compiler cannot drop the stores. */
static void
wipe(uint8_t *p, size_t n)
{
    volatile uint8_t *v = p;
    while (n-- > 0) {
        *v++ = 0;
    }
}

int
cmd_id(int argc, char **argv)
{
    cli_opts o;
    char *dir;
    int n;
    int code = cli_parse_opts(argc, argv, CLI_OPT_JSON, &o, &dir, 1, &n);
    if (code != CLI_EXIT_OK) {
        return code;
    }
    if (n != 1) {
        return cli_usage(argv[0], "expected DIR");
    }
    cvg_replica *r;
    code = cli_open(argv[0], dir, CLI_READ, &r);
    if (code != CLI_EXIT_OK) {
        return code;
    }
    cvg_replica_id id;
    char hex[33];
    cvg_replica_id_get(r, &id);
    cvg_replica_id_hex(&id, hex);
    uint8_t pk[CVG_PUBLIC_KEY_BYTES];
    int rc = cvg_replica_public_key(r, pk);
    if (o.json) {
        printf("{\"origin\":\"%s\",\"public_key\":", hex);
        if (rc == CVG_OK) {
            putchar('"');
            cli_print_hex(stdout, pk, sizeof pk);
            putchar('"');
        } else {
            fputs("null", stdout);
        }
        puts("}");
    } else {
        printf("origin      %s\npublic key  ", hex);
        if (rc == CVG_OK) {
            cli_print_hex(stdout, pk, sizeof pk);
            putchar('\n');
        } else {
            puts("none (a replica made by version 0.1)");
        }
    }
    cvg_replica_close(r);
    return rc == CVG_OK || rc == CVG_ENOTFOUND ? CLI_EXIT_OK
                                               : cli_fail(argv[0], rc, NULL);
}

int
cmd_keygen(int argc, char **argv)
{
    if (argc != 2) {
        return cli_usage(argv[0], "expected FILE");
    }
    uint8_t pk[CVG_PUBLIC_KEY_BYTES], sk[CVG_SECRET_KEY_BYTES];
    int rc = cvg_identity_generate(pk, sk);
    if (rc != CVG_OK) {
        return cli_fail(argv[0], rc, NULL);
    }
    /* Never over another key: a lost secret key is a lost identity. */
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_EXCL, 0600);
    bool ok = fd >= 0 && write(fd, sk, sizeof sk) == (ssize_t)sizeof sk &&
              fsync(fd) == 0;
    int err = errno;
    if (fd >= 0) {
        ok = close(fd) == 0 && ok;
    }
    wipe(sk, sizeof sk);
    if (!ok) {
        fprintf(stderr, "converge: keygen: cannot write '%s': %s\n", argv[1],
                strerror(err));
        if (fd >= 0) {
            unlink(argv[1]);
        }
        return CLI_EXIT_ERR;
    }
    cvg_replica_id id;
    char hex[33];
    cvg_identity_origin(pk, &id);
    cvg_replica_id_hex(&id, hex);
    printf("origin      %s\npublic key  ", hex);
    cli_print_hex(stdout, pk, sizeof pk);
    putchar('\n');
    return CLI_EXIT_OK;
}

int
cli_open_with_key(const char *cmd, const char *dir, const char *key_file,
                  cvg_replica **out)
{
    *out = NULL;
    uint8_t *key;
    size_t len;
    int code = cli_read_file(cmd, key_file, &key, &len);
    if (code != CLI_EXIT_OK) {
        return code;
    }
    if (len != CVG_SECRET_KEY_BYTES) {
        wipe(key, len);
        free(key);
        fprintf(stderr,
                "converge: %s: '%s' is not a secret key (%d bytes, "
                "as keygen writes)\n",
                cmd, key_file, CVG_SECRET_KEY_BYTES);
        return CLI_EXIT_ERR;
    }
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.secret_key = key;
    int rc = cvg_replica_open(dir, &o, out);
    wipe(key, len);
    free(key);
    if (rc != CVG_OK) {
        fprintf(stderr, "converge: %s: %s: %s\n", cmd, cvg_errname(rc),
                cvg_replica_errmsg(NULL));
        return rc == CVG_ENOTFOUND ? CLI_EXIT_NOTFOUND : CLI_EXIT_ERR;
    }
    return CLI_EXIT_OK;
}
