/*
 * `converge sync DIR_A DIR_B`: sync two local replicas both ways through the
 * same protocol a network peer speaks (for scripts, tests, and replicas
 * carried on removable media), and say what moved.
 */
#define _XOPEN_SOURCE 700
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* LMDB forbids opening one environment twice in a process. */
static bool
same_dir(const char *a, const char *b)
{
    char ra[PATH_MAX], rb[PATH_MAX];
    return realpath(a, ra) != NULL && realpath(b, rb) != NULL &&
           strcmp(ra, rb) == 0;
}

int
cmd_sync(int argc, char **argv)
{
    /* Options are the network form's (--pin); the local form has none
     * but -h and "--". */
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strncmp(argv[i], "tcp://", 6) == 0) {
            return cmd_sync_net(argc, argv);
        }
    }
    cli_opts o;
    char *pos[4];
    int n;
    int pc = cli_parse_opts(argc, argv, 0, &o, pos + 1, 3, &n);
    if (pc != CLI_EXIT_OK) {
        return pc;
    }
    pos[0] = argv[0];
    argv = pos;
    argc = n + 1;
    if (argc != 3) {
        return cli_usage(argv[0], "expected DIR_A DIR_B");
    }
    if (same_dir(argv[1], argv[2])) {
        return cli_usage(argv[0], "DIR_A and DIR_B are the same replica");
    }
    cvg_replica *a = NULL, *b = NULL;
    int code = cli_open(argv[0], argv[1], CLI_WRITE, &a);
    if (code == CLI_EXIT_OK) {
        code = cli_open(argv[0], argv[2], CLI_WRITE, &b);
    }
    if (code != CLI_EXIT_OK) {
        cvg_replica_close(a);
        return code;
    }
    cvg_session_stats st;
    int rc = cvg_sync_local(a, b, &st);
    if (rc != CVG_OK) {
        code = cli_fail(argv[0], rc, a);
    } else {
        printf("%s <- %s: %llu ops applied, %llu already here\n", argv[1],
               argv[2], (unsigned long long)st.ops_received,
               (unsigned long long)st.ops_duplicate);
        printf("%s -> %s: %llu ops sent\n", argv[1], argv[2],
               (unsigned long long)st.ops_sent);
        printf(
            "conflicts: %llu concurrent register write(s) met, "
            "resolved the same way on both\n",
            (unsigned long long)st.conflicts);
        printf("bytes: %llu\n",
               (unsigned long long)(st.bytes_sent + st.bytes_received));
    }
    cvg_replica_close(a);
    cvg_replica_close(b);
    return code;
}

int
cmd_forget(int argc, char **argv)
{
    if (argc != 3) {
        return cli_usage(argv[0], "expected DIR PEER_HEX");
    }
    cvg_replica_id peer;
    if (!cli_parse_replica_id(argv[2], &peer)) {
        return cli_usage(argv[0], "PEER_HEX '%s' is not 32 hex digits",
                         argv[2]);
    }
    cvg_replica *r;
    int code = cli_open(argv[0], argv[1], CLI_WRITE, &r);
    if (code != CLI_EXIT_OK) {
        return code;
    }
    int rc = cvg_sync_peer_forget(r, &peer);
    if (rc != CVG_OK) {
        code = cli_fail(argv[0], rc, r);
    } else {
        printf("forgot %s: the next sync with it starts over\n", argv[2]);
    }
    cvg_replica_close(r);
    return code;
}
