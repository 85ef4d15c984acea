/*
 * Printing a field's value whatever its type. Set elements are views valid
 * only until the next cursor step, so values are printed as they are read,
 * through a small printer that knows the layout (lines, one line or JSON)
 * and where separators go.
 */
#include <stdlib.h>

#include "cli.h"

typedef struct printer {
    FILE *f;
    cli_style style;
    size_t n; /* values printed so far */
} printer;

/* Open a list of values: mvregister siblings or set elements. */
static void
list_begin(printer *p, cvg_type type)
{
    bool set = type == CVG_TYPE_SET;
    if (p->style == CLI_STYLE_JSON) {
        fprintf(p->f, "\"type\":\"%s\",\"%s\":[", cli_type_name(type),
                set ? "elements" : "values");
    } else if (p->style == CLI_STYLE_INLINE) {
        fputc(set ? '{' : '[', p->f);
    }
}

static void
list_item(printer *p, const cvg_value *v)
{
    if (p->style == CLI_STYLE_JSON) {
        fputs(p->n > 0 ? "," : "", p->f);
        cli_json_value(p->f, v);
    } else if (p->style == CLI_STYLE_INLINE) {
        fputs(p->n > 0 ? ", " : "", p->f);
        cli_print_value(p->f, v);
    } else {
        cli_print_value(p->f, v);
        fputc('\n', p->f);
    }
    p->n++;
}

static void
list_end(printer *p, cvg_type type)
{
    if (p->style == CLI_STYLE_JSON) {
        fputc(']', p->f);
    } else if (p->style == CLI_STYLE_INLINE) {
        fputc(type == CVG_TYPE_SET ? '}' : ']', p->f);
    }
}

/* A counter or register: one value. */
static void
print_scalar(printer *p, cvg_type type, const cvg_value *v)
{
    if (p->style == CLI_STYLE_JSON) {
        fprintf(p->f, "\"type\":\"%s\",\"value\":", cli_type_name(type));
        cli_json_value(p->f, v);
    } else {
        cli_print_value(p->f, v);
        if (p->style == CLI_STYLE_LINES) {
            fputc('\n', p->f);
        }
    }
}

/* A counter whose merged sum is outside int64 has no value to print: say
 * on which side it lies, as a string, so JSON stays well formed. */
static void
print_overflow(printer *p, bool above)
{
    const char *what = above ? "above INT64_MAX" : "below INT64_MIN";
    if (p->style == CLI_STYLE_JSON) {
        fprintf(p->f, "\"type\":\"counter\",\"value\":null,\"overflow\":\"%s\"",
                what);
    } else {
        fprintf(p->f, "(overflow: %s)", what);
        if (p->style == CLI_STYLE_LINES) {
            fputc('\n', p->f);
        }
    }
}

/* Ask for the count first, then fetch exactly that many siblings. */
static int
print_siblings(printer *p, cvg_txn *txn, const cvg_key *key)
{
    size_t n;
    int rc = cvg_mvregister_get(txn, key, NULL, NULL, 0, &n);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg_value *vals = calloc(n + 1, sizeof *vals);
    if (vals == NULL) {
        return CVG_ENOMEM;
    }
    rc = cvg_mvregister_get(txn, key, vals, NULL, n, &n);
    if (rc == CVG_OK) {
        list_begin(p, CVG_TYPE_MVREGISTER);
        for (size_t i = 0; i < n; i++) {
            list_item(p, &vals[i]);
        }
        list_end(p, CVG_TYPE_MVREGISTER);
    }
    free(vals);
    return rc;
}

static int
print_elements(printer *p, cvg_txn *txn, const cvg_key *key)
{
    cvg_set_cursor *cur;
    int rc = cvg_set_cursor_open(txn, key, &cur);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg_value v;
    list_begin(p, CVG_TYPE_SET);
    while ((rc = cvg_set_cursor_next(cur, &v)) == CVG_OK) {
        list_item(p, &v);
    }
    list_end(p, CVG_TYPE_SET);
    cvg_set_cursor_close(cur);
    return rc == CVG_DONE ? CVG_OK : rc;
}

int
cli_print_field(FILE *f, cvg_txn *txn, const cvg_key *key, cvg_type type,
                cli_style style)
{
    printer p = {f, style, 0};
    cvg_value v;
    int64_t n;
    int rc;
    switch (type) {
    case CVG_TYPE_COUNTER:
        rc = cvg_counter_get(txn, key, &n);
        if (rc == CVG_EOVERFLOW) {
            print_overflow(&p, n > 0);
            return CVG_OK;
        }
        v = cvg_value_int(n);
        break;
    case CVG_TYPE_REGISTER:
        rc = cvg_register_get(txn, key, &v);
        break;
    case CVG_TYPE_MVREGISTER:
        return print_siblings(&p, txn, key);
    case CVG_TYPE_SET:
        return print_elements(&p, txn, key);
    default:
        return CVG_EINVAL;
    }
    if (rc == CVG_OK) {
        print_scalar(&p, type, &v);
    }
    return rc;
}
