/*
 * What every command shares: reporting errors the same way, opening a
 * replica with the right access, and taking the options of the read
 * commands out of argv.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int
cli_fail(const char *what, int rc, const cvg_replica *r)
{
    fprintf(stderr, "converge: %s: %s: %s", what, cvg_errname(rc),
            cvg_strerror(rc));
    /* The detail is only worth printing when the library left one. */
    const char *detail = r != NULL ? cvg_replica_errmsg(r) : "no error";
    if (strcmp(detail, "no error") != 0) {
        fprintf(stderr, " (%s)", detail);
    }
    fputc('\n', stderr);
    return rc == CVG_ENOTFOUND ? CLI_EXIT_NOTFOUND : CLI_EXIT_ERR;
}

int
cli_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "converge: %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CLI_EXIT_USAGE;
}

/* A failed open has no handle: its detail is the thread's
 * (cvg_replica_errmsg(NULL)). */
static int
open_failed(const char *cmd, const char *dir, bool create, int rc)
{
    const char *why = cvg_replica_errmsg(NULL);
    if (strstr(why, dir) != NULL) {
        fprintf(stderr, "converge: %s: %s: %s\n", cmd, cvg_errname(rc), why);
    } else {
        fprintf(stderr, "converge: %s: %s: %s (replica directory '%s')\n", cmd,
                cvg_errname(rc), why, dir);
    }
    if (rc == CVG_ENOTFOUND && !create) {
        fprintf(stderr, "converge: create one with: converge init %s\n", dir);
    }
    return rc == CVG_ENOTFOUND ? CLI_EXIT_NOTFOUND : CLI_EXIT_ERR;
}

static int
open_with(const char *cmd, const char *dir, bool create, bool read_only,
          cvg_replica **out)
{
    cvg_replica_options o;
    cvg_replica_options_init(&o); /* durable commits by default */
    o.no_create = !create;
    o.read_only = read_only;
    int rc = cvg_replica_open(dir, &o, out);
    if (rc != CVG_OK) {
        return open_failed(cmd, dir, create, rc);
    }
    return CLI_EXIT_OK;
}

int
cli_open(const char *cmd, const char *dir, cli_access access, cvg_replica **out)
{
    *out = NULL;
    if (access == CLI_CREATE) {
        return open_with(cmd, dir, true, false, out);
    }
    if (access == CLI_READ) {
        return open_with(cmd, dir, false, true, out);
    }
    /* no_create only refuses a missing directory: a writable open of an
     * existing directory that holds no replica makes a new one there. A
     * read-only open creates nothing, so probe with one first, so that a
     * mistyped `converge inc /tmp ...` fails instead. */
    int code = open_with(cmd, dir, false, true, out);
    if (code != CLI_EXIT_OK) {
        return code;
    }
    cvg_replica_close(*out);
    *out = NULL;
    return open_with(cmd, dir, false, false, out);
}

/* The option at argv[*i], with its value if it takes one. */
static int
take_opt(int argc, char **argv, int *i, unsigned allowed, cli_opts *opts)
{
    const char *a = argv[*i];
    if ((allowed & CLI_OPT_JSON) && strcmp(a, "--json") == 0) {
        opts->json = true;
        return CLI_EXIT_OK;
    }
    if ((allowed & CLI_OPT_OPS) && strcmp(a, "--ops") == 0) {
        opts->ops = true;
        return CLI_EXIT_OK;
    }
    if ((allowed & CLI_OPT_RETRY) && strcmp(a, "--retry") == 0) {
        opts->retry = true;
        return CLI_EXIT_OK;
    }
    if ((allowed & CLI_OPT_VALUE_FILE) &&
        (strcmp(a, "--value-file") == 0 || strcmp(a, "--bytes-file") == 0)) {
        if (*i + 1 >= argc || opts->value_file != NULL) {
            return cli_usage(argv[0], "%s needs one FILE (- for stdin)", a);
        }
        opts->value_bytes = a[2] == 'b';
        *i += 1;
        opts->value_file = argv[*i];
        return CLI_EXIT_OK;
    }
    if ((allowed & CLI_OPT_KEY) && strcmp(a, "--key") == 0) {
        if (*i + 1 >= argc || opts->key_file != NULL) {
            return cli_usage(argv[0], "--key needs one FILE");
        }
        *i += 1;
        opts->key_file = argv[*i];
        return CLI_EXIT_OK;
    }
    if ((allowed & CLI_OPT_FROM) && strcmp(a, "--from") == 0) {
        if (*i + 1 >= argc) {
            return cli_usage(argv[0], "--from needs an LSN");
        }
        *i += 1;
        if (!cli_parse_u64(argv[*i], &opts->from) || opts->from == 0) {
            return cli_usage(argv[0], "--from: '%s' is not an LSN (1, 2, ...)",
                             argv[*i]);
        }
        return CLI_EXIT_OK;
    }
    return cli_usage(argv[0], "unknown option '%s'", a);
}

int
cli_parse_opts(int argc, char **argv, unsigned allowed, cli_opts *opts,
               char **pos, int cap, int *npos)
{
    opts->json = false;
    opts->from = 1;
    opts->retry = false;
    opts->ops = false;
    opts->value_file = NULL;
    opts->value_bytes = false;
    opts->key_file = NULL;
    *npos = 0;
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!options_done &&
            (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
            return CLI_EXIT_HELP;
        }
        /* A name or value that starts with '-' comes after "--": else
         * "init --help" would make a directory of that name. Negative
         * numbers (inc's DELTA) and "-" stay arguments. */
        bool dash =
            a[0] == '-' && a[1] != '\0' && !(a[1] >= '0' && a[1] <= '9');
        if (!options_done && dash && a[1] != '-') {
            return cli_usage(argv[0],
                             "unknown option '%s' (put -- before a name "
                             "that starts with '-')",
                             a);
        }
        if (options_done || !dash) {
            if (*npos == cap) {
                return cli_usage(argv[0], "too many arguments");
            }
            pos[(*npos)++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options_done = true;
            continue;
        }
        int code = take_opt(argc, argv, &i, allowed, opts);
        if (code != CLI_EXIT_OK) {
            return code;
        }
    }
    return CLI_EXIT_OK;
}

int
cli_read_file(const char *cmd, const char *path, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    bool std = strcmp(path, "-") == 0;
    FILE *f = std ? stdin : fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "converge: %s: cannot open '%s'\n", cmd, path);
        return CLI_EXIT_ERR;
    }
    /* A value's text is at most its hex form (x:HEX) of CVG_VALUE_MAX
     * bytes; read one byte more to tell a longer file. */
    size_t cap = 2 * (size_t)CVG_VALUE_MAX + 3;
    uint8_t *buf = malloc(cap + 1);
    size_t n = buf != NULL ? fread(buf, 1, cap, f) : 0;
    bool failed = buf == NULL || ferror(f);
    if (!std) {
        fclose(f);
    }
    if (failed) {
        free(buf);
        fprintf(stderr, "converge: %s: cannot read '%s'\n", cmd, path);
        return CLI_EXIT_ERR;
    }
    if (n == cap) {
        free(buf);
        return cli_usage(cmd, "'%s' is longer than a value can be (%u bytes)",
                         path, CVG_VALUE_MAX);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return CLI_EXIT_OK;
}
