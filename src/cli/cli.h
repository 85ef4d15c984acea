/*
 * Private interface of the `converge` command: exit codes, argument and
 * value parsing, printing, and one entry point per command. Everything here
 * is built on the public API in converge.h only, so the command doubles as
 * a worked example of that API.
 */
#ifndef CVG_CLI_H
#define CVG_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "converge.h"

/* Exit codes: results go to stdout, errors to stderr. */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_ERR = 1,      /* a runtime error: the library or the system */
    CLI_EXIT_USAGE = 2,    /* bad arguments; main() adds the synopsis */
    CLI_EXIT_NOTFOUND = 3, /* what was to be read or changed is not there */
    /* Not an exit code: -h or --help was given; main() prints the
     * command's help and exits 0. */
    CLI_EXIT_HELP = 100
};

/* ---- Errors and opening (util.c) --------------------------------------- */

/* Report library error @p rc of @p what (a command or call name) on stderr,
 * with the replica's detail message if @p r is not NULL. Returns
 * CLI_EXIT_ERR so callers can `return cli_fail(...)`. */
int cli_fail(const char *what, int rc, const cvg_replica *r);

/* Report a usage problem on stderr; returns CLI_EXIT_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* How a command opens its replica. */
typedef enum cli_access {
    CLI_CREATE, /* init: create the replica if missing */
    CLI_WRITE,  /* must already be a replica; opened for writing */
    CLI_READ    /* must already be a replica; opened read-only */
} cli_access;

/* Open the replica in @p dir, reporting any failure for @p cmd.
 * Returns CLI_EXIT_OK with *out set, or an exit code. */
int cli_open(const char *cmd, const char *dir, cli_access access,
             cvg_replica **out);

/* Open (creating) the replica in @p dir with the secret key in @p key_file
 * as its identity (cmd_id.c). */
int cli_open_with_key(const char *cmd, const char *dir, const char *key_file,
                      cvg_replica **out);

/* ---- Options of the read commands (util.c) ----------------------------- */

#define CLI_OPT_JSON 1u
#define CLI_OPT_FROM 2u
#define CLI_OPT_RETRY 4u
#define CLI_OPT_OPS 8u
#define CLI_OPT_VALUE_FILE 16u /* --value-file FILE, --bytes-file FILE */
#define CLI_OPT_KEY 32u        /* --key FILE: a secret key file (init) */

typedef struct cli_opts {
    bool json;
    uint64_t from;          /* --from LSN; 1 if absent */
    bool retry;             /* --retry (queue) */
    bool ops;               /* --ops (queue): list the queued ops */
    const char *value_file; /* the value is this file's text ("-": stdin) */
    bool value_bytes;       /* ... or its bytes (--bytes-file) */
    const char *key_file;   /* --key FILE */
} cli_opts;

/* Take the options in @p allowed out of argv[1..argc-1], keeping the other
 * arguments in order in @p pos (room for @p cap) and their number in *npos.
 * "--" ends the options; before it, an argument that starts with '-' (but
 * a negative number or "-" alone) is an option, so that a name such as
 * "-x" must come after "--", and "-h" or "--help" asks for help. Returns
 * CLI_EXIT_OK, CLI_EXIT_HELP or CLI_EXIT_USAGE. */
int cli_parse_opts(int argc, char **argv, unsigned allowed, cli_opts *opts,
                   char **pos, int cap, int *npos);

/* Read all of @p path ("-": stdin), at most twice CVG_VALUE_MAX bytes (a
 * value's hex form), into *out (malloc'd, NUL-terminated, free() it) and
 * its length into *len. Returns CLI_EXIT_OK or an exit code for @p cmd. */
int cli_read_file(const char *cmd, const char *path, uint8_t **out,
                  size_t *len);

/* ---- Parsing arguments (parse.c) ---------------------------------------- */

/* A whole-string signed decimal integer in the int64_t range. */
bool cli_parse_i64(const char *s, int64_t *out);
/* A whole-string unsigned decimal integer. */
bool cli_parse_u64(const char *s, uint64_t *out);
/* A replica id: exactly 32 hex digits, as `init` and `status` print it. */
bool cli_parse_replica_id(const char *s, cvg_replica_id *out);

/* Parse a VALUE argument: null, true, false, an integer or a double as
 * JSON writes numbers ("42", "-1", "2.5", "1e3"; not "007", "+5", ".5"),
 * s:TEXT (a string), x:HEX (bytes), else a string. Bytes are
 * decoded into *buf_out (caller frees with free(); NULL otherwise); strings
 * view @p s. Returns CLI_EXIT_OK or a usage error for @p cmd. */
int cli_parse_value(const char *cmd, const char *s, cvg_value *out,
                    uint8_t **buf_out);

/* ---- Printing (print.c) ------------------------------------------------- */

/* @p len bytes as lowercase hex. */
void cli_print_hex(FILE *f, const uint8_t *p, size_t len);
/* A dot as origin-hex:seq; @p short_id prints the first 8 hex digits. */
void cli_print_dot(FILE *f, const cvg_dot *d, bool short_id);
/* A name as one part of a COLL/KEY path: a backslash before '\\' and '/',
 * control bytes as \xHH, so that a path splits back unambiguously. */
void cli_print_path_part(FILE *f, cvg_bytes name);
/* A name (collection, key or field) for humans: control bytes escaped. */
void cli_print_name(FILE *f, cvg_bytes name);
/* A hybrid clock value as wall-ms.logical. */
void cli_print_hlc(FILE *f, uint64_t hlc);
/* A value as the text commands show it: null, true, 42, 2.5, "text",
 * x:00ff (the VALUE syntax, with strings quoted). */
void cli_print_value(FILE *f, const cvg_value *v);

/* A JSON string holding @p len bytes; invalid UTF-8 becomes U+FFFD. */
void cli_json_string(FILE *f, const uint8_t *p, size_t len);
/* A JSON value: null, true, 42, 2.5, "text", or {"hex":"00ff"} for bytes.
 * Non-finite doubles, which JSON cannot hold, become null. */
void cli_json_value(FILE *f, const cvg_value *v);
/* A dot as {"origin":"hex","seq":N}. */
void cli_json_dot(FILE *f, const cvg_dot *d);

const char *cli_type_name(cvg_type type);
const char *cli_op_kind_name(cvg_op_kind kind);

/* ---- Writes and reads shared by commands and the demo ------------------ */

/* One op, as a command or the demo describes it. */
typedef struct cli_write {
    cvg_op_kind kind;
    cvg_key key;     /* field unused by CVG_OP_RECORD_DELETE */
    int64_t delta;   /* CVG_OP_COUNTER_ADD */
    cvg_value value; /* register and set ops */
} cli_write;

/* Make the op @p w in write transaction @p txn (cmd_write.c). */
int cli_apply(cvg_txn *txn, const cli_write *w, cvg_dot *dot_out);

/* These print to @p f and return CVG_OK or a library code, leaving the
 * report to the caller, which knows the command's name. */

/* The log from lsn @p from, as text or JSON lines (cmd_log.c). */
int cli_print_log(FILE *f, cvg_replica *r, uint64_t from, bool json);
/* One op as the log prints it: a text line, or a JSON object (no
 * newline). */
void cli_print_op_line(FILE *f, const cvg_op *op);
void cli_json_op(FILE *f, const cvg_op *op);
/* Id, version vector and storage figures (cmd_status.c). */
int cli_print_status(FILE *f, cvg_replica *r, bool json);

/* ---- Sync state per peer (sync_view.c) --------------------------------- */

/* A peer this replica has synced with, and where its own ops stand there. */
typedef struct cli_peer {
    cvg_replica_id id;
    cvg_sync_status status;
} cli_peer;

/* Every peer with its status, in the library's order, into *out (caller
 * frees with free(); never NULL on success, even for no peers). */
int cli_sync_read(cvg_replica *r, cli_peer **out, size_t *n);
/* The entry for @p id in @p peers, or NULL if never synced with. */
const cli_peer *cli_sync_find(const cli_peer *peers, size_t n,
                              const cvg_replica_id *id);
const char *cli_sync_state_name(cvg_sync_state state);
/* One peer as "name  value" lines, each starting with @p indent: its id,
 * key (hex) and address ("unknown" when not known), last contact (a time
 * and how long ago), state, the four counts, the last session's times and
 * error. */
void cli_print_peer(FILE *f, const char *indent, const cli_peer *p);
/* One peer as JSON members, without the braces, so callers can add more:
 * "peer", "state", the four counts, "key" (hex) and "address" (null when
 * not known), "last_contact", "last_sync" and "last_attempt" (ISO-8601 UTC
 * or null for never, with the raw "..._ms"), "last_error" (a CVG_E name or
 * null). */
void cli_json_peer(FILE *f, const cli_peer *p);

/* How cli_print_field() lays a field out (field.c). */
typedef enum cli_style {
    CLI_STYLE_LINES,  /* one value per line: `get DIR COLL KEY FIELD` */
    CLI_STYLE_INLINE, /* one line: 7, "a", ["a", "b"] siblings, {"a"} set */
    CLI_STYLE_JSON    /* JSON members: "type":"set","elements":[...] */
} cli_style;

/* The field @p key, of type @p type, in @p style; CVG_ENOTFOUND if it has
 * no value of that type. */
int cli_print_field(FILE *f, cvg_txn *txn, const cvg_key *key, cvg_type type,
                    cli_style style);

/* ---- The demo's toolkit (demo_kit.c) ----------------------------------- */

/* Each takes a "coll/key/field" path ("coll/key" for a delete), makes one op
 * and prints it with its dot; returns CVG_OK or the library code. */
int demo_write(cvg_txn *txn, cvg_op_kind kind, const char *path, int64_t delta,
               cvg_value value);
int demo_inc(cvg_txn *txn, const char *path, int64_t delta);
int demo_op(cvg_txn *txn, cvg_op_kind kind, const char *path, cvg_value value);
/* Commit if @p rc is CVG_OK, else abort; returns the outcome. */
int demo_end(cvg_txn *txn, int rc);
/* Print "  path = value" as @p txn sees it; "(not found)" is no error. */
int demo_show(cvg_txn *txn, const char *path, cvg_type type);
/* demo_show() for each path, in one fresh read transaction. */
int demo_show_committed(cvg_replica *r, const char *const *paths,
                        const cvg_type *types, size_t n);
int demo_show_one(cvg_replica *r, const char *path, cvg_type type);
/* The two-tills-and-a-server scene, in replicas under @p dir. */
int demo_sync_tour(const char *dir);
/* The network scene (demo_net.c): a server and two tills on loopback. */
int demo_net_tour(const char *dir);

/* ---- Commands: argv[0] is the command's name ----------------------------- */

int cmd_init(int argc, char **argv);
int cmd_id(int argc, char **argv);
int cmd_forget(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_inc(int argc, char **argv);
int cmd_set(int argc, char **argv);
int cmd_mvset(int argc, char **argv);
int cmd_add(int argc, char **argv);
int cmd_remove(int argc, char **argv);
int cmd_del(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_keys(int argc, char **argv);
int cmd_log(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_compact(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_sync(int argc, char **argv);
int cmd_queue(int argc, char **argv);
/* Network (cmd_serve.c): the server, and sync's tcp:// form. */
int cmd_serve(int argc, char **argv);
int cmd_sync_net(int argc, char **argv);
/* The background syncer in the foreground (cmd_connect.c). */
int cmd_connect(int argc, char **argv);
/* A public key: exactly 64 hex digits, into 32 bytes. */
bool cli_parse_key(const char *s, uint8_t *out);

#endif /* CVG_CLI_H */
