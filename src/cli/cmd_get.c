/*
 * The commands that read state: `get` (one field, or a whole record through
 * the field cursor) and `keys` (records, through the key cursor). Both read
 * in one read-only transaction, so what they print is one snapshot.
 */
#include <string.h>

#include "cli.h"

/* The live types of a field, from the record's field cursor: a field
 * written apart on different replicas may hold several (one state per
 * type), and each is shown. CVG_ENOTFOUND if it holds none. */
static int
field_types(cvg_txn *txn, const cvg_key *key, cvg_type types[4], int *n)
{
    *n = 0;
    cvg_field_cursor *cur;
    int rc = cvg_field_cursor_open(txn, key, &cur);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg_bytes name;
    cvg_type type;
    while ((rc = cvg_field_cursor_next(cur, &name, &type)) == CVG_OK) {
        if (strcmp((const char *)name.data, key->field) == 0 && *n < 4) {
            types[(*n)++] = type;
        }
    }
    cvg_field_cursor_close(cur);
    if (rc != CVG_DONE) {
        return rc;
    }
    return *n > 0 ? CVG_OK : CVG_ENOTFOUND;
}

/* Opens a JSON object with the record's collection and key. */
static void
json_record_head(const cvg_key *key)
{
    fputs("{\"collection\":", stdout);
    cli_json_string(stdout, (const uint8_t *)key->collection,
                    strlen(key->collection));
    fputs(",\"key\":", stdout);
    cli_json_string(stdout, (const uint8_t *)key->key, strlen(key->key));
}

static int
get_field(cvg_txn *txn, const cvg_key *key, bool json)
{
    cvg_type types[4];
    int n;
    int rc = field_types(txn, key, types, &n);
    if (rc != CVG_OK) {
        return rc;
    }
    if (!json && n == 1) {
        return cli_print_field(stdout, txn, key, types[0], CLI_STYLE_LINES);
    }
    if (!json) {
        /* Say it on stderr too: a script reading one value must not take
         * the first of several for the field's only one. */
        fprintf(stderr,
                "converge: get: %s/%s/%s holds %d types, written apart on "
                "different replicas\n",
                key->collection, key->key, key->field, n);
        for (int i = 0; i < n && rc == CVG_OK; i++) {
            printf("%s\t", cli_type_name(types[i]));
            rc = cli_print_field(stdout, txn, key, types[i], CLI_STYLE_INLINE);
            putchar('\n');
        }
        return rc;
    }
    json_record_head(key);
    fputs(",\"field\":", stdout);
    cli_json_string(stdout, (const uint8_t *)key->field, strlen(key->field));
    fputc(',', stdout);
    if (n == 1) {
        rc = cli_print_field(stdout, txn, key, types[0], CLI_STYLE_JSON);
    } else {
        fputs("\"types\":[", stdout);
        for (int i = 0; i < n && rc == CVG_OK; i++) {
            fputs(i > 0 ? ",{" : "{", stdout);
            rc = cli_print_field(stdout, txn, key, types[i], CLI_STYLE_JSON);
            fputc('}', stdout);
        }
        fputc(']', stdout);
    }
    fputs("}\n", stdout);
    return rc;
}

/* One line of a record: FIELD TAB TYPE TAB VALUE, or a JSON object. */
static int
print_record_field(cvg_txn *txn, const cvg_key *rec, cvg_bytes name,
                   cvg_type type, bool json)
{
    /* Cursor names are views without a NUL; a cvg_key needs one. */
    char field[CVG_NAME_MAX + 1];
    if (name.len > CVG_NAME_MAX) {
        return CVG_ECORRUPT;
    }
    memcpy(field, name.data, name.len);
    field[name.len] = '\0';
    cvg_key key = {rec->collection, rec->key, field};
    if (json) {
        fputs("{\"field\":", stdout);
        cli_json_string(stdout, name.data, name.len);
        fputc(',', stdout);
        int rc = cli_print_field(stdout, txn, &key, type, CLI_STYLE_JSON);
        fputc('}', stdout);
        return rc;
    }
    cli_print_name(stdout, name);
    printf("\t%s\t", cli_type_name(type));
    int rc = cli_print_field(stdout, txn, &key, type, CLI_STYLE_INLINE);
    putchar('\n');
    return rc;
}

static int
get_record(cvg_txn *txn, const cvg_key *rec, bool json)
{
    cvg_field_cursor *cur;
    int rc = cvg_field_cursor_open(txn, rec, &cur);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg_bytes name;
    cvg_type type;
    /* A record without fields does not exist: say so, print nothing. */
    rc = cvg_field_cursor_next(cur, &name, &type);
    if (rc == CVG_DONE) {
        rc = CVG_ENOTFOUND;
    }
    if (rc == CVG_OK && json) {
        json_record_head(rec);
        fputs(",\"fields\":[", stdout);
    }
    for (size_t i = 0; rc == CVG_OK; i++) {
        fputs(json && i > 0 ? "," : "", stdout);
        rc = print_record_field(txn, rec, name, type, json);
        if (rc == CVG_OK) {
            rc = cvg_field_cursor_next(cur, &name, &type);
        }
    }
    cvg_field_cursor_close(cur);
    if (rc == CVG_DONE && json) {
        fputs("]}\n", stdout);
    }
    return rc == CVG_DONE ? CVG_OK : rc;
}

/* "Not found" is the common failure of get; say what was missing. */
static int
get_failed(const char *cmd, int rc, const cvg_key *key, cvg_replica *r)
{
    if (rc != CVG_ENOTFOUND) {
        return cli_fail(cmd, rc, r);
    }
    fprintf(stderr, "converge: %s: %s: %s (no %s %s/%s%s%s)\n", cmd,
            cvg_errname(rc), cvg_strerror(rc), key->field ? "field" : "record",
            key->collection, key->key, key->field ? "/" : "",
            key->field ? key->field : "");
    return CLI_EXIT_NOTFOUND;
}

int
cmd_get(int argc, char **argv)
{
    cli_opts o;
    char *pos[4];
    int n;
    int code = cli_parse_opts(argc, argv, CLI_OPT_JSON, &o, pos, 4, &n);
    if (code != CLI_EXIT_OK) {
        return code;
    }
    if (n < 3) {
        return cli_usage(argv[0], "expected DIR COLL KEY [FIELD]");
    }
    cvg_replica *r;
    code = cli_open(argv[0], pos[0], CLI_READ, &r);
    if (code != CLI_EXIT_OK) {
        return code;
    }
    cvg_key key = {pos[1], pos[2], n == 4 ? pos[3] : NULL};
    cvg_txn *txn;
    int rc = cvg_txn_begin(r, CVG_TXN_READ_ONLY, &txn);
    if (rc == CVG_OK) {
        rc = n == 4 ? get_field(txn, &key, o.json)
                    : get_record(txn, &key, o.json);
        cvg_txn_abort(txn); /* ends a read transaction */
    }
    if (rc != CVG_OK) {
        code = get_failed(argv[0], rc, &key, r);
    }
    cvg_replica_close(r);
    return code;
}

static int
list_keys(cvg_txn *txn, const char *collection, bool json)
{
    cvg_key_cursor *cur;
    int rc = cvg_key_cursor_open(txn, collection, &cur);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg_bytes coll, key;
    while ((rc = cvg_key_cursor_next(cur, &coll, &key)) == CVG_OK) {
        if (json) {
            fputs("{\"collection\":", stdout);
            cli_json_string(stdout, coll.data, coll.len);
            fputs(",\"key\":", stdout);
            cli_json_string(stdout, key.data, key.len);
            fputs("}\n", stdout);
        } else {
            /* COLL/KEY is unambiguous: the separator is escaped inside. */
            cli_print_path_part(stdout, coll);
            putchar('/');
            cli_print_path_part(stdout, key);
            putchar('\n');
        }
    }
    cvg_key_cursor_close(cur);
    return rc == CVG_DONE ? CVG_OK : rc;
}

int
cmd_keys(int argc, char **argv)
{
    cli_opts o;
    char *pos[2];
    int n;
    int code = cli_parse_opts(argc, argv, CLI_OPT_JSON, &o, pos, 2, &n);
    if (code != CLI_EXIT_OK) {
        return code;
    }
    if (n < 1) {
        return cli_usage(argv[0], "expected DIR [COLL]");
    }
    cvg_replica *r;
    code = cli_open(argv[0], pos[0], CLI_READ, &r);
    if (code != CLI_EXIT_OK) {
        return code;
    }
    cvg_txn *txn;
    int rc = cvg_txn_begin(r, CVG_TXN_READ_ONLY, &txn);
    if (rc == CVG_OK) {
        rc = list_keys(txn, n == 2 ? pos[1] : NULL, o.json);
        cvg_txn_abort(txn);
    }
    if (rc != CVG_OK) {
        code = cli_fail(argv[0], rc, r);
    }
    cvg_replica_close(r);
    return code;
}
