/*
 * The commands that change a replica: init, and one op per transaction for
 * inc, set, mvset, add, remove and del. Each prints the new op's dot, the
 * op's identity everywhere it will ever travel. cli_apply() maps an op
 * description to its library call for these commands and the demo.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* One op to make, as parsed from the command line. */
typedef struct write_req {
    const char *cmd;
    const char *dir;
    cli_write op;
} write_req;

int
cmd_init(int argc, char **argv)
{
    cli_opts opts;
    char *pos[1];
    int n;
    int code = cli_parse_opts(argc, argv, CLI_OPT_KEY, &opts, pos, 1, &n);
    if (code != CLI_EXIT_OK) {
        return code;
    }
    if (n != 1) {
        return cli_usage(argv[0], "expected DIR");
    }
    const char *dir = pos[0];
    /* A read-only open creates nothing: use it to refuse to "init" over an
     * existing replica, which would otherwise just be opened. */
    cvg_replica_options o;
    cvg_replica_options_init(&o);
    o.no_create = true;
    o.read_only = true;
    cvg_replica *r = NULL;
    if (cvg_replica_open(dir, &o, &r) == CVG_OK) {
        cvg_replica_close(r);
        fprintf(stderr, "converge: init: '%s' already holds a replica\n",
                dir);
        return CLI_EXIT_ERR;
    }
    if (opts.key_file != NULL) {
        code = cli_open_with_key(argv[0], dir, opts.key_file, &r);
    } else {
        code = cli_open(argv[0], dir, CLI_CREATE, &r);
    }
    if (code != CLI_EXIT_OK) {
        return code;
    }
    cvg_replica_id id;
    char hex[33];
    cvg_replica_id_get(r, &id);
    cvg_replica_id_hex(&id, hex);
    printf("%s\n", hex);
    cvg_replica_close(r);
    return CLI_EXIT_OK;
}

int
cli_apply(cvg_txn *txn, const cli_write *w, cvg_dot *dot)
{
    switch (w->kind) {
    case CVG_OP_COUNTER_ADD:
        return cvg_counter_add(txn, &w->key, w->delta, dot);
    case CVG_OP_REGISTER_SET:
        return cvg_register_set(txn, &w->key, &w->value, dot);
    case CVG_OP_MVREGISTER_SET:
        return cvg_mvregister_set(txn, &w->key, &w->value, dot);
    case CVG_OP_SET_ADD:
        return cvg_set_add(txn, &w->key, &w->value, dot);
    case CVG_OP_SET_REMOVE:
        return cvg_set_remove(txn, &w->key, &w->value, dot);
    case CVG_OP_RECORD_DELETE:
        return cvg_record_delete(txn, &w->key, dot);
    }
    return CVG_EINVAL;
}

/* Open, write the one op, commit, print its dot. */
static int
run_write(const write_req *w)
{
    cvg_replica *r;
    int code = cli_open(w->cmd, w->dir, CLI_WRITE, &r);
    if (code != CLI_EXIT_OK) {
        return code;
    }
    cvg_txn *txn;
    cvg_dot dot;
    int rc = cvg_txn_begin(r, 0, &txn);
    if (rc == CVG_OK) {
        rc = cli_apply(txn, &w->op, &dot);
        if (rc == CVG_OK) {
            rc = cvg_txn_commit(txn); /* frees txn, even on failure */
        } else {
            cvg_txn_abort(txn);
        }
    }
    if (rc != CVG_OK) {
        code = cli_fail(w->cmd, rc, r);
    } else {
        cli_print_dot(stdout, &dot, false);
        putchar('\n');
    }
    cvg_replica_close(r);
    return code;
}

/* The DIR COLL KEY FIELD prefix every field command starts with. */
static void
take_field(write_req *w, char **argv)
{
    w->cmd = argv[0];
    w->dir = argv[1];
    w->op.key.collection = argv[2];
    w->op.key.key = argv[3];
    w->op.key.field = argv[4];
}

int
cmd_inc(int argc, char **argv)
{
    if (argc != 5 && argc != 6) {
        return cli_usage(argv[0], "expected DIR COLL KEY FIELD [DELTA]");
    }
    write_req w = {.op = {.kind = CVG_OP_COUNTER_ADD, .delta = 1}};
    take_field(&w, argv);
    if (argc == 6 &&
        (!cli_parse_i64(argv[5], &w.op.delta) || w.op.delta == 0)) {
        return cli_usage(argv[0], "DELTA '%s' is not a non-zero int64",
                         argv[5]);
    }
    return run_write(&w);
}

/* set, mvset, add and remove: DIR COLL KEY FIELD VALUE, or the value
 * from a file (--value-file FILE: its text, parsed as a VALUE argument is;
 * --bytes-file FILE: its bytes), for values longer than a shell argument. */
static int
value_write(int argc, char **argv, cvg_op_kind kind, const char *what)
{
    cli_opts o;
    char *pos[6];
    int n;
    int code =
        cli_parse_opts(argc, argv, CLI_OPT_VALUE_FILE, &o, pos + 1, 5, &n);
    if (code != CLI_EXIT_OK) {
        return code;
    }
    if (n != (o.value_file ? 4 : 5)) {
        return cli_usage(argv[0], "expected DIR COLL KEY FIELD %s%s", what,
                         o.value_file ? " from the file only" : "");
    }
    pos[0] = argv[0];
    write_req w = {.op = {.kind = kind}};
    take_field(&w, pos);
    uint8_t *buf = NULL, *text = NULL;
    if (o.value_file == NULL) {
        code = cli_parse_value(argv[0], pos[5], &w.op.value, &buf);
    } else {
        size_t len;
        code = cli_read_file(argv[0], o.value_file, &text, &len);
        if (code == CLI_EXIT_OK && o.value_bytes) {
            w.op.value = cvg_value_bytes(text, len);
        } else if (code == CLI_EXIT_OK && memchr(text, 0, len) != NULL) {
            code = cli_usage(argv[0], "%s holds a NUL byte: use --bytes-file",
                             o.value_file);
        } else if (code == CLI_EXIT_OK) {
            /* One final newline is the file's, not the value's. */
            if (len > 0 && text[len - 1] == '\n') {
                text[len - 1] = '\0';
            }
            code =
                cli_parse_value(argv[0], (const char *)text, &w.op.value, &buf);
        }
    }
    if (code == CLI_EXIT_OK) {
        code = run_write(&w);
    }
    free(buf);
    free(text);
    return code;
}

int
cmd_set(int argc, char **argv)
{
    return value_write(argc, argv, CVG_OP_REGISTER_SET, "VALUE");
}

int
cmd_mvset(int argc, char **argv)
{
    return value_write(argc, argv, CVG_OP_MVREGISTER_SET, "VALUE");
}

int
cmd_add(int argc, char **argv)
{
    return value_write(argc, argv, CVG_OP_SET_ADD, "ELEMENT");
}

int
cmd_remove(int argc, char **argv)
{
    return value_write(argc, argv, CVG_OP_SET_REMOVE, "ELEMENT");
}

int
cmd_del(int argc, char **argv)
{
    if (argc != 4) {
        return cli_usage(argv[0], "expected DIR COLL KEY");
    }
    write_req w = {
        .cmd = argv[0], .dir = argv[1], .op = {.kind = CVG_OP_RECORD_DELETE}};
    w.op.key.collection = argv[2];
    w.op.key.key = argv[3];
    return run_write(&w);
}
