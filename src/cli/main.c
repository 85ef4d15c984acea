/*
 * The `converge` command: finds the subcommand in one table, which also
 * makes the usage text, so a command cannot be added without its help.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *args;
    const char *help;
    /* Whether run() takes its own options (cli_parse_opts); for the others
     * main() does it: "--" and names that start with '-'. */
    bool own_options;
    const char *more; /* what `converge help NAME` adds */
} command;

#define VALUE_FILES                                                        \
    "With --value-file FILE the value is FILE's text, read as a VALUE\n"   \
    "argument (one final newline dropped); with --bytes-file FILE it is\n" \
    "FILE's bytes. FILE - is stdin. Values may be up to 1 MiB.\n"

static const command commands[] = {
    {"demo", cmd_demo, "[DIR]", "a guided tour: start here", false,
     "Runs two tills and a server that go offline, change the same data\n"
     "and converge, in DIR (a new temporary directory by default).\n"},
    {"init", cmd_init, "DIR [--key FILE]", "create a replica, print its id",
     true,
     "Creates DIR and a new replica in it, with a new identity (an Ed25519\n"
     "key pair; the secret key in DIR/identity.key, mode 0600), or the\n"
     "secret key in FILE (made by keygen; then not copied into DIR).\n"
     "Refuses an existing replica.\n"},
    {"id", cmd_id, "DIR [--json]", "the replica's origin id and public key",
     true, "The origin id is derived from the public key.\n"},
    {"keygen", cmd_keygen, "FILE", "make a key pair, apart from a replica",
     false,
     "Writes a new secret key to FILE (mode 0600; never over a file) and\n"
     "prints its public key and origin id. Give it to init --key.\n"},
    {"inc", cmd_inc, "DIR COLL KEY FIELD [DELTA]", "add to a counter (1)",
     false, "DELTA is a non-zero int64; negative subtracts.\n"},
    {"set", cmd_set, "DIR COLL KEY FIELD VALUE", "set an LWW register", true,
     VALUE_FILES},
    {"mvset", cmd_mvset, "DIR COLL KEY FIELD VALUE",
     "set a multi-value register", true, VALUE_FILES},
    {"add", cmd_add, "DIR COLL KEY FIELD ELEMENT", "add to a set", true,
     VALUE_FILES},
    {"remove", cmd_remove, "DIR COLL KEY FIELD ELEMENT", "remove from a set",
     true, VALUE_FILES},
    {"del", cmd_del, "DIR COLL KEY", "delete a record", false,
     "Removes what this replica has seen of the record; concurrent writes\n"
     "elsewhere survive.\n"},
    {"get", cmd_get, "DIR COLL KEY [FIELD] [--json]",
     "a field, or a whole record", true,
     "A field that holds several types (written apart on different\n"
     "replicas) shows each, labelled with its type.\n"},
    {"keys", cmd_keys, "DIR [COLL] [--json]", "list the records", true,
     "Text lines are COLL/KEY with '\\', '/' and control bytes escaped\n"
     "(\\\\, \\/, \\xHH); --json gives the names exactly.\n"},
    {"log", cmd_log, "DIR [--json] [--from LSN]", "the operation log", true,
     "One line (or JSON line) per op, in log order, from LSN on.\n"},
    {"status", cmd_status, "DIR [--json]", "id, vector, sizes, sync per peer",
     true,
     "Per peer: its key (hex, as id prints it) and the address it was\n"
     "last seen at (the far end of the last TCP connection; unknown if\n"
     "never met over TCP), its last contact (and how long ago), and\n"
     "this replica's own ops pending, syncing, committed and failed\n"
     "there.\n"},
    {"check", cmd_check, "DIR [--json]", "check every page, block, record",
     true,
     "Reads every page of the data file by hand, then every record: its\n"
     "checksum, every log block decoded, the indexes and the version\n"
     "vector against the log, every state record against the log. Changes\n"
     "nothing. Exit 0 when sound; 1 with the first problem on stderr when\n"
     "damaged (then restore the replica from a peer: see the docs).\n"},
    {"compact", cmd_compact, "DIR [--json]",
     "give the data file's free pages back", true,
     "Rewrites the data file without the pages LMDB freed and kept, and\n"
     "puts the copy in its place. No process may have the replica open:\n"
     "exit 1 with CVG_EBUSY if one does; an open that comes meanwhile\n"
     "waits. Needs room for the copy (about the live pages) beside it.\n"},
    {"sync", cmd_sync, "DIR_A DIR_B | DIR tcp://HOST:PORT",
     "sync two replicas both ways", true,
     "Both replicas end with each other's ops. With tcp://HOST:PORT (an\n"
     "IPv6 address in brackets: tcp://[::1]:7000) the other is a server\n"
     "(see serve), over an encrypted channel; add --pin KEY (64 hex\n"
     "digits, as id prints it) to refuse a server with another key. A\n"
     "busy server (at its --max-clients) fails it with CVG_EAGAIN and\n"
     "the retry-after it asked for; exit 1.\n"},
    {"serve", cmd_serve, "DIR --listen HOST:PORT [--allow FILE] [OPTIONS]",
     "serve the replica to sync clients", true,
     "Serves sync clients over TCP (an encrypted channel) until SIGINT or\n"
     "SIGTERM, then lets the sessions under way end. Port 0 takes a free\n"
     "port; the line on stderr says which. --allow FILE: only the public\n"
     "keys in FILE (one of 64 hex digits a line, # comments) may sync.\n"
     "--max-clients N (default 64): a client past N is answered BUSY,\n"
     "before any handshake, with a retry-after of --busy-retry MS\n"
     "(default 5000), and closed; its sync fails at once with\n"
     "CVG_EAGAIN and the wait.\n"},
    {"connect", cmd_connect, "DIR tcp://HOST:PORT [OPTIONS]",
     "keep the replica in sync with a server", true,
     "Options: --pin KEY (as for sync), --interval MS, --for SECONDS.\n"
     "Syncs at once, then every MS ms (default 10000), and retries with a\n"
     "growing delay while the server cannot be reached. Prints a line per\n"
     "change of state: CONNECTING, SYNCING, SYNCED (with the ops in and\n"
     "out), OFFLINE or ERROR (with the reason). Runs until SIGINT or\n"
     "SIGTERM, or for SECONDS; exits 0 if the last round synced.\n"},
    {"forget", cmd_forget, "DIR PEER_HEX", "forget what we know of a peer",
     false,
     "Drops the peer's status, positions and refused ops; the next sync\n"
     "with it starts over (for a peer restored from an older copy).\n"},
    {"queue", cmd_queue, "DIR [PEER_HEX] [--json] [--retry] [--ops]",
     "pending and failed ops per peer", true,
     "--ops lists each queued op with its state; --retry offers the\n"
     "failed ones again at the next sync.\n"},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void
usage(FILE *f)
{
    fputs(
        "usage: converge COMMAND [ARGS]\n\n"
        "A CRDT replica in a directory: counters, registers and sets\n"
        "addressed as collection / key / field, with a durable op log.\n\n"
        "Commands:\n",
        f);
    for (size_t i = 0; i < N_COMMANDS; i++) {
        fprintf(f, "  %-7s %-41s %s\n", commands[i].name, commands[i].args,
                commands[i].help);
    }
    fputs(
        "  help                                              this text\n"
        "  --version                                         the version\n\n"
        "VALUE and ELEMENT: null, true, false, an integer or a double as\n"
        "JSON writes them (42, -7, 2.5, 1e3; not 007 or +5), x:HEX for\n"
        "bytes, s:TEXT to force a string; anything else is a string. Writes "
        "print the new op's id (origin:seq);\n"
        "they need an existing replica (see init).\n\n"
        "Sync: status shows, per peer, its key, address and last contact,\n"
        "and this replica's own ops as pending, syncing, committed or\n"
        "failed there. queue lists the failed ones\n"
        "and the pending seqs (log shows them as ID:SEQ); --ops lists\n"
        "each queued op with its state; --retry offers the failed ones\n"
        "again at the next sync. PEER_HEX is a replica id, 32 hex digits\n"
        "as init and status print it.\n\n"
        "Names and values that start with '-' come after --, as in\n"
        "converge set DIR c k f -- -5x. converge help COMMAND (or\n"
        "converge COMMAND --help) tells more of a command.\n\n"
        "Exit status: 0 ok, 1 error (name and message on stderr), 2 bad\n"
        "arguments, 3 not found (the replica, record, field or element).\n",
        f);
}

static void
command_help(const command *c)
{
    printf("usage: converge %s %s\n\n%s.\n%s", c->name, c->args, c->help,
           c->more);
}

static const command *
find(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(commands[i].name, name) == 0) {
            return &commands[i];
        }
    }
    return NULL;
}

/* A failed write to stdout (a full disk, a closed pipe) must not look like
 * success to a script. */
static int
finish(int code)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fputs("converge: cannot write the output\n", stderr);
        return code == CLI_EXIT_OK ? CLI_EXIT_ERR : code;
    }
    return code;
}

/* For a command without options of its own: take "--", -h and names that
 * start with '-' out of argv, so it sees only its arguments. */
static int
run_plain(const command *cmd, int argc, char **argv)
{
    char **pos = malloc((size_t)argc * sizeof *pos);
    if (pos == NULL) {
        return cli_fail(cmd->name, CVG_ENOMEM, NULL);
    }
    cli_opts o;
    int n;
    int code = cli_parse_opts(argc, argv, 0, &o, pos + 1, argc - 1, &n);
    if (code == CLI_EXIT_OK) {
        pos[0] = argv[0];
        code = cmd->run(n + 1, pos);
    }
    free(pos);
    return code;
}

int
main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0 ||
        (strcmp(argv[1], "help") == 0 && argc == 2)) {
        usage(stdout);
        return finish(CLI_EXIT_OK);
    }
    if (strcmp(argv[1], "help") == 0) {
        const command *c = find(argv[2]);
        if (c == NULL || argc > 3) {
            fprintf(stderr, "converge: help: no command '%s'\n\n", argv[2]);
            usage(stderr);
            return CLI_EXIT_USAGE;
        }
        command_help(c);
        return finish(CLI_EXIT_OK);
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("converge %s (library %s)\n", CVG_VERSION_STRING,
               cvg_version_string());
        return finish(CLI_EXIT_OK);
    }
    const command *cmd = find(argv[1]);
    if (cmd == NULL) {
        fprintf(stderr, "converge: unknown command '%s'\n\n", argv[1]);
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    int code = cmd->own_options ? cmd->run(argc - 1, argv + 1)
                                : run_plain(cmd, argc - 1, argv + 1);
    if (code == CLI_EXIT_HELP) {
        command_help(cmd);
        return finish(CLI_EXIT_OK);
    }
    if (code == CLI_EXIT_USAGE) {
        fprintf(stderr, "usage: converge %s %s\n", cmd->name, cmd->args);
    }
    return finish(code);
}
