/*
 * `converge serve DIR --listen HOST:PORT [--allow KEYS_FILE]
 * [--max-clients N] [--busy-retry MS]` and `converge sync DIR
 * tcp://HOST:PORT [--pin HEXKEY]`: the replica as a server, and a
 * one-shot sync with one (converge/net.h). A server at N clients answers
 * the next one BUSY with MS; a sync that meets a busy server says so
 * (CVG_EAGAIN, with the wait) and exits 1.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "converge/net.h"

#include "cli.h"

/* For the signal handler: cvg_server_stop() is async-signal-safe. */
static cvg_server *volatile serving;

static void
on_signal(int sig)
{
    (void)sig;
    cvg_server_stop(serving);
}

/* One 64-hex key per line; blank lines and '#' comments skipped. */
static int
read_keys(const char *cmd, const char *path, uint8_t (**out)[32], size_t *n)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "converge: %s: cannot read %s: %s\n", cmd, path,
                strerror(errno));
        return CLI_EXIT_ERR;
    }
    uint8_t(*keys)[32] = NULL;
    size_t count = 0, lineno = 0;
    char line[256];
    int code = CLI_EXIT_OK;
    while (code == CLI_EXIT_OK && fgets(line, sizeof line, f) != NULL) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        char *p = line + strspn(line, " \t");
        p[strcspn(p, " \t")] = '\0';
        if (*p == '\0' || *p == '#') {
            continue;
        }
        uint8_t(*more)[32] = realloc(keys, (count + 1) * sizeof *keys);
        if (more == NULL) {
            code = cli_fail(cmd, CVG_ENOMEM, NULL);
        } else if (keys = more, !cli_parse_key(p, keys[count])) {
            code =
                cli_usage(cmd, "%s:%zu: not a 64-hex public key", path, lineno);
        } else {
            count++;
        }
    }
    fclose(f);
    if (code != CLI_EXIT_OK) {
        free(keys);
        return code;
    }
    *out = keys;
    *n = count;
    return CLI_EXIT_OK;
}

/* Options: --NAME VALUE for the names in @p names (values into @p vals),
 * -h/--help, "--"; the rest into pos. */
static int
parse_args(int argc, char **argv, const char *const *names, const char **vals,
           size_t nnames, char **pos, int *npos)
{
    bool opts = true;
    *npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (opts && strcmp(a, "--") == 0) {
            opts = false;
        } else if (opts && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
            return CLI_EXIT_HELP;
        } else if (opts && a[0] == '-' && a[1] != '\0') {
            size_t k = 0;
            while (k < nnames && strcmp(a, names[k]) != 0) {
                k++;
            }
            if (k == nnames) {
                return cli_usage(argv[0], "unknown option '%s'", a);
            }
            if (i + 1 >= argc) {
                return cli_usage(argv[0], "%s needs a value", a);
            }
            vals[k] = argv[++i];
        } else if (*npos < 2) {
            pos[(*npos)++] = argv[i];
        } else {
            return cli_usage(argv[0], "unexpected argument '%s'", a);
        }
    }
    return CLI_EXIT_OK;
}

int
cmd_serve(int argc, char **argv)
{
    static const char *const names[] = {"--listen", "--allow", "--max-clients",
                                        "--busy-retry"};
    const char *vals[4] = {NULL, NULL, NULL, NULL};
    char *pos[2];
    int npos;
    int code = parse_args(argc, argv, names, vals, 4, pos, &npos);
    if (code != CLI_EXIT_OK) {
        return code;
    }
    if (npos != 1 || vals[0] == NULL) {
        return cli_usage(argv[0], "expected DIR --listen HOST:PORT");
    }
    cvg_server_options so;
    cvg_server_options_init(&so);
    uint64_t n;
    if (vals[2] != NULL) {
        if (!cli_parse_u64(vals[2], &n) || n == 0 || n > UINT32_MAX) {
            return cli_usage(argv[0], "--max-clients '%s' is not a number",
                             vals[2]);
        }
        so.max_clients = (uint32_t)n;
    }
    if (vals[3] != NULL) {
        if (!cli_parse_u64(vals[3], &n) || n == 0 || n > UINT32_MAX) {
            return cli_usage(argv[0], "--busy-retry '%s' is not a number of ms",
                             vals[3]);
        }
        so.busy_retry_ms = (uint32_t)n;
    }
    uint8_t(*keys)[32] = NULL;
    if (vals[1] != NULL) {
        code = read_keys(argv[0], vals[1], &keys, &so.allow_count);
        if (code != CLI_EXIT_OK) {
            return code;
        }
        if (so.allow_count == 0) {
            free(keys);
            return cli_usage(argv[0], "%s lists no key", vals[1]);
        }
        so.allow = (const uint8_t(*)[32])keys;
    }
    cvg_replica *r;
    code = cli_open(argv[0], pos[0], CLI_WRITE, &r);
    if (code != CLI_EXIT_OK) {
        free(keys);
        return code;
    }
    cvg_server *s;
    int rc = cvg_server_open(r, vals[0], &so, &s);
    free(keys); /* copied by the server */
    if (rc != CVG_OK) {
        code = cli_fail(argv[0], rc, r);
        cvg_replica_close(r);
        return code;
    }
    serving = s;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* The port is printed as bound, so that port 0 can be found. */
    const char *colon = strrchr(vals[0], ':');
    fprintf(stderr, "converge: serving %s on %.*s:%u; %s\n", pos[0],
            (int)(colon - vals[0]), vals[0], (unsigned)cvg_server_port(s),
            so.allow_count ? "only the listed keys may connect"
                           : "any key may connect");
    rc = cvg_server_run(s);
    /* The handlers stay: a second signal (timeout(1) sends its own to the
     * whole group) must not kill the process while it stores and closes. */
    serving = NULL;
    cvg_server_close(s);
    if (rc != CVG_OK) {
        code = cli_fail(argv[0], rc, r);
    } else {
        fputs("converge: stopped\n", stderr);
    }
    cvg_replica_close(r);
    return code;
}

int
cmd_sync_net(int argc, char **argv)
{
    static const char *const names[] = {"--pin"};
    const char *vals[1] = {NULL};
    char *pos[2];
    int npos;
    int code = parse_args(argc, argv, names, vals, 1, pos, &npos);
    if (code != CLI_EXIT_OK) {
        return code;
    }
    if (npos != 2) {
        return cli_usage(argv[0], "expected DIR tcp://HOST:PORT");
    }
    cvg_net_options o;
    cvg_net_options_init(&o);
    uint8_t pin[CVG_PUBLIC_KEY_BYTES];
    if (vals[0] != NULL) {
        if (!cli_parse_key(vals[0], pin)) {
            return cli_usage(argv[0], "--pin '%s' is not 64 hex digits",
                             vals[0]);
        }
        o.server_key = pin;
    }
    cvg_replica *r;
    code = cli_open(argv[0], pos[0], CLI_WRITE, &r);
    if (code != CLI_EXIT_OK) {
        return code;
    }
    cvg_session_stats st;
    int rc = cvg_net_sync(r, pos[1], &o, &st);
    if (rc != CVG_OK) {
        code = cli_fail(argv[0], rc, r);
    } else {
        char peer[33];
        cvg_replica_id_hex(&st.peer, peer);
        printf("%s <- %s (%s): %llu ops applied, %llu already here\n", pos[0],
               pos[1], peer, (unsigned long long)st.ops_received,
               (unsigned long long)st.ops_duplicate);
        printf("%s -> %s: %llu ops sent\n", pos[0], pos[1],
               (unsigned long long)st.ops_sent);
        printf("bytes: %llu\n",
               (unsigned long long)(st.bytes_sent + st.bytes_received));
    }
    cvg_replica_close(r);
    return code;
}
