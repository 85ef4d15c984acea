/*
 * The demo's toolkit: write an op named by a "coll/key/field" path and print
 * it the way `converge log` shows ops, end a transaction, and show values.
 * It keeps the scenes in cmd_demo.c down to what they demonstrate.
 */
#include <string.h>

#include "cli.h"

/* Split "coll/key/field" (or "coll/key") into @p buf and @p key. A path
 * without a key gets an empty one, which the library refuses (EINVAL). */
static void
split_path(const char *path, char *buf, size_t size, cvg_key *key)
{
    snprintf(buf, size, "%s", path);
    key->collection = buf;
    key->key = "";
    key->field = NULL;
    char *slash = strchr(buf, '/');
    if (slash == NULL) {
        return;
    }
    *slash = '\0';
    key->key = slash + 1;
    slash = strchr(slash + 1, '/');
    if (slash != NULL) {
        *slash = '\0';
        key->field = slash + 1;
    }
}

/* Make one op and print it, with its dot, as the log will show it. */
int
demo_write(cvg_txn *txn, cvg_op_kind kind, const char *path, int64_t delta,
           cvg_value value)
{
    char buf[CVG_NAME_MAX + 3];
    cli_write w = {kind, {NULL, NULL, NULL}, delta, value};
    split_path(path, buf, sizeof buf, &w.key);
    cvg_dot dot;
    int rc = cli_apply(txn, &w, &dot);
    if (rc != CVG_OK) {
        return rc;
    }
    printf("  op ");
    cli_print_dot(stdout, &dot, true);
    printf("  %-14s  %s", cli_op_kind_name(kind), path);
    if (kind == CVG_OP_COUNTER_ADD) {
        printf("  %+lld", (long long)delta);
    } else if (kind != CVG_OP_RECORD_DELETE) {
        fputs("  ", stdout);
        cli_print_value(stdout, &value);
    }
    putchar('\n');
    return CVG_OK;
}

int
demo_inc(cvg_txn *txn, const char *path, int64_t delta)
{
    return demo_write(txn, CVG_OP_COUNTER_ADD, path, delta, cvg_value_nil());
}

int
demo_op(cvg_txn *txn, cvg_op_kind kind, const char *path, cvg_value value)
{
    return demo_write(txn, kind, path, 0, value);
}

/* Commit if every step so far succeeded, else abort; either way the
 * transaction ends here. */
int
demo_end(cvg_txn *txn, int rc)
{
    if (rc != CVG_OK) {
        cvg_txn_abort(txn);
        return rc;
    }
    rc = cvg_txn_commit(txn);
    if (rc == CVG_OK) {
        puts("  committed: one atomic, durable batch");
    }
    return rc;
}

/* Print "path = value" for a field of @p type, as @p txn sees it. */
int
demo_show(cvg_txn *txn, const char *path, cvg_type type)
{
    char buf[CVG_NAME_MAX + 3];
    cvg_key key;
    split_path(path, buf, sizeof buf, &key);
    printf("  %s = ", path);
    int rc = cli_print_field(stdout, txn, &key, type, CLI_STYLE_INLINE);
    if (rc == CVG_ENOTFOUND) {
        printf("(not found)");
        rc = CVG_OK;
    }
    putchar('\n');
    return rc;
}

/* Show fields in a fresh read transaction: what is committed. */
int
demo_show_committed(cvg_replica *r, const char *const *paths,
                    const cvg_type *types, size_t n)
{
    cvg_txn *txn;
    int rc = cvg_txn_begin(r, CVG_TXN_READ_ONLY, &txn);
    for (size_t i = 0; rc == CVG_OK && i < n; i++) {
        rc = demo_show(txn, paths[i], types[i]);
    }
    cvg_txn_abort(txn);
    return rc;
}

int
demo_show_one(cvg_replica *r, const char *path, cvg_type type)
{
    return demo_show_committed(r, &path, &type, 1);
}
