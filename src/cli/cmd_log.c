/*
 * `converge log`: the operation log, one op per line, as text for people or
 * as JSON lines for programs. The log is the replica's history and what
 * sync will ship, so every op field is shown, observed dots included in
 * JSON.
 */
#include <inttypes.h>

#include "cli.h"

/* What the op carries besides its address: a delta or a value. */
static void
text_payload(FILE *f, const cvg_op *op)
{
    switch (op->kind) {
    case CVG_OP_COUNTER_ADD:
        fprintf(f, "%+" PRId64, op->delta);
        break;
    case CVG_OP_RECORD_DELETE:
        fputc('-', f);
        break;
    default:
        cli_print_value(f, &op->value);
        break;
    }
}

/* lsn  origin:seq  hlc-ms.logical  kind  coll/key/field  payload  observed=N */
void
cli_print_op_line(FILE *f, const cvg_op *op)
{
    fprintf(f, "%" PRIu64 "  ", op->lsn);
    cli_print_dot(f, &op->dot, true);
    fputs("  ", f);
    cli_print_hlc(f, op->hlc);
    fprintf(f, "  %-14s  ", cli_op_kind_name(op->kind));
    cli_print_name(f, op->collection);
    fputc('/', f);
    cli_print_name(f, op->key);
    if (op->field.len > 0) {
        fputc('/', f);
        cli_print_name(f, op->field);
    }
    fputs("  ", f);
    text_payload(f, op);
    fprintf(f, "  observed=%zu\n", op->observed_count);
}

void
cli_json_op(FILE *f, const cvg_op *op)
{
    fprintf(f, "{\"lsn\":%" PRIu64 ",\"dot\":", op->lsn);
    cli_json_dot(f, &op->dot);
    fprintf(f, ",\"hlc\":%" PRIu64 ",\"hlc_ms\":%" PRIu64 ",\"hlc_logical\":%u",
            op->hlc, cvg_hlc_millis(op->hlc),
            (unsigned)cvg_hlc_logical(op->hlc));
    fprintf(f, ",\"kind\":\"%s\",\"collection\":", cli_op_kind_name(op->kind));
    cli_json_string(f, op->collection.data, op->collection.len);
    fputs(",\"key\":", f);
    cli_json_string(f, op->key.data, op->key.len);
    if (op->kind != CVG_OP_RECORD_DELETE) {
        fputs(",\"field\":", f);
        cli_json_string(f, op->field.data, op->field.len);
    }
    if (op->kind == CVG_OP_COUNTER_ADD) {
        fprintf(f, ",\"delta\":%" PRId64, op->delta);
    } else if (op->kind != CVG_OP_RECORD_DELETE) {
        fputs(",\"value\":", f);
        cli_json_value(f, &op->value);
    }
    fputs(",\"observed\":[", f);
    for (size_t i = 0; i < op->observed_count; i++) {
        fputs(i > 0 ? "," : "", f);
        cli_json_dot(f, &op->observed[i]);
    }
    fputs("]}", f);
}

int
cli_print_log(FILE *f, cvg_replica *r, uint64_t from, bool json)
{
    cvg_txn *txn;
    int rc = cvg_txn_begin(r, CVG_TXN_READ_ONLY, &txn);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg_log_cursor *cur;
    rc = cvg_log_cursor_open(txn, from, &cur);
    if (rc == CVG_OK) {
        cvg_op op;
        while ((rc = cvg_log_cursor_next(cur, &op)) == CVG_OK) {
            if (json) {
                cli_json_op(f, &op);
                fputc('\n', f);
            } else {
                cli_print_op_line(f, &op);
            }
        }
        cvg_log_cursor_close(cur);
    }
    cvg_txn_abort(txn);
    return rc == CVG_DONE ? CVG_OK : rc;
}

int
cmd_log(int argc, char **argv)
{
    cli_opts o;
    char *dir;
    int n;
    int code = cli_parse_opts(argc, argv, CLI_OPT_JSON | CLI_OPT_FROM, &o, &dir,
                              1, &n);
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
    int rc = cli_print_log(stdout, r, o.from, o.json);
    if (rc != CVG_OK) {
        code = cli_fail(argv[0], rc, r);
    }
    cvg_replica_close(r);
    return code;
}
