/*
 * The `converge` command: finds the subcommand in one table, which also
 * makes the usage text, so a command cannot be added without its help.
 */
#include <string.h>

#include "cli.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *args;
    const char *help;
} command;

static const command commands[] = {
    {"demo", cmd_demo, "[DIR]", "a guided tour: start here"},
    {"init", cmd_init, "DIR", "create a replica, print its id"},
    {"inc", cmd_inc, "DIR COLL KEY FIELD [DELTA]", "add to a counter (1)"},
    {"set", cmd_set, "DIR COLL KEY FIELD VALUE", "set an LWW register"},
    {"mvset", cmd_mvset, "DIR COLL KEY FIELD VALUE",
     "set a multi-value register"},
    {"add", cmd_add, "DIR COLL KEY FIELD ELEMENT", "add to a set"},
    {"remove", cmd_remove, "DIR COLL KEY FIELD ELEMENT", "remove from a set"},
    {"del", cmd_del, "DIR COLL KEY", "delete a record"},
    {"get", cmd_get, "DIR COLL KEY [FIELD] [--json]",
     "a field, or a whole record"},
    {"keys", cmd_keys, "DIR [COLL] [--json]", "list the records"},
    {"log", cmd_log, "DIR [--json] [--from LSN]", "the operation log"},
    {"status", cmd_status, "DIR [--json]", "id, vector, sizes, sync per peer"},
    {"sync", cmd_sync, "DIR_A DIR_B", "sync two replicas both ways"},
    {"queue", cmd_queue, "DIR [PEER_HEX] [--json] [--retry] [--ops]",
     "pending and failed ops per peer"},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void
usage(FILE *f)
{
    fputs("usage: converge COMMAND [ARGS]\n\n"
          "A CRDT replica in a directory: counters, registers and sets\n"
          "addressed as collection / key / field, with a durable op log.\n\n"
          "Commands:\n",
          f);
    for (size_t i = 0; i < N_COMMANDS; i++) {
        fprintf(f, "  %-7s %-41s %s\n", commands[i].name, commands[i].args,
                commands[i].help);
    }
    fputs("  help                                              this text\n"
          "  --version                                         the version\n\n"
          "VALUE and ELEMENT: null, true, false, an integer (42), a double\n"
          "(2.5, 1e3), x:HEX for bytes, s:TEXT to force a string; anything\n"
          "else is a string. Writes print the new op's id (origin:seq);\n"
          "they need an existing replica (see init).\n\n"
          "Sync: status shows, per peer, this replica's own ops as pending,\n"
          "syncing, committed or failed there. queue lists the failed ones\n"
          "and the pending seqs (log shows them as ID:SEQ); --ops lists\n"
          "each queued op with its state; --retry offers the failed ones\n"
          "again at the next sync. PEER_HEX is a replica id, 32 hex digits\n"
          "as init and status print it.\n\n"
          "Exit status: 0 ok, 1 error (name and message on stderr), 2 bad\n"
          "arguments.\n",
          f);
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

int
main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "help") == 0 ||
        strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
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
    int code = cmd->run(argc - 1, argv + 1);
    if (code == CLI_EXIT_USAGE) {
        fprintf(stderr, "usage: converge %s %s\n", cmd->name, cmd->args);
    }
    return finish(code);
}
