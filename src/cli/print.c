/*
 * Printing values, dots and names, as text for people and as JSON for
 * programs. Stored strings are bytes that are only by convention UTF-8, so
 * the JSON writer validates them: a JSON line must stay parseable whatever a
 * replica holds.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void
cli_print_hex(FILE *f, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        fprintf(f, "%02x", p[i]);
    }
}

void
cli_print_dot(FILE *f, const cvg_dot *d, bool short_id)
{
    char hex[33];
    cvg_replica_id_hex(&d->origin, hex);
    if (short_id) {
        hex[8] = '\0'; /* like a short git hash: enough to tell tills apart */
    }
    fprintf(f, "%s:%" PRIu64, hex, d->seq);
}

void
cli_print_name(FILE *f, cvg_bytes name)
{
    for (size_t i = 0; i < name.len; i++) {
        uint8_t c = name.data[i];
        /* Keep control bytes from driving the terminal. */
        if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\x%02x", c);
        } else {
            fputc(c, f);
        }
    }
}

void
cli_print_path_part(FILE *f, cvg_bytes name)
{
    for (size_t i = 0; i < name.len; i++) {
        uint8_t c = name.data[i];
        if (c == '\\' || c == '/') {
            fputc('\\', f);
            fputc(c, f);
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\x%02x", c);
        } else {
            fputc(c, f);
        }
    }
}

void
cli_print_hlc(FILE *f, uint64_t hlc)
{
    fprintf(f, "%" PRIu64 ".%u", cvg_hlc_millis(hlc),
            (unsigned)cvg_hlc_logical(hlc));
}

/* The shortest of %.15g..%.17g that reads back as @p d, always with a '.'
 * or an exponent so that it parses back as a double, not an integer. */
static void
format_double(char *buf, size_t size, double d)
{
    if (isnan(d)) {
        snprintf(buf, size, "nan");
        return;
    }
    if (isinf(d)) {
        snprintf(buf, size, d < 0 ? "-inf" : "inf");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, d);
        if (strtod(buf, NULL) == d) {
            break;
        }
    }
    if (strpbrk(buf, ".e") == NULL) {
        strncat(buf, ".0", size - strlen(buf) - 1);
    }
}

/* Length of the valid UTF-8 sequence at @p p, or 0: no overlong forms, no
 * surrogates, nothing past U+10FFFF (what JSON parsers accept). */
static size_t
utf8_len(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    size_t len;
    if (c < 0x80) {
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
    } else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    uint32_t cp = c & (0x7Fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            return 0;
        }
        cp = cp << 6 | (p[i] & 0x3Fu);
    }
    if (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) {
        return 0;
    }
    if (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) {
        return 0;
    }
    return len;
}

void
cli_json_string(FILE *f, const uint8_t *p, size_t len)
{
    fputc('"', f);
    for (size_t i = 0; i < len;) {
        uint8_t c = p[i];
        size_t n = utf8_len(p + i, len - i);
        if (n == 0) {
            fputs("\\ufffd", f); /* one replacement per bad byte */
            i++;
        } else if (c == '"' || c == '\\') {
            fprintf(f, "\\%c", c);
            i++;
        } else if (c == '\n') {
            fputs("\\n", f);
            i++;
        } else if (c == '\t') {
            fputs("\\t", f);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\u%04x", c);
            i++;
        } else {
            fwrite(p + i, 1, n, f);
            i += n;
        }
    }
    fputc('"', f);
}

void
cli_print_value(FILE *f, const cvg_value *v)
{
    char buf[64];
    switch (v->kind) {
    case CVG_VALUE_NIL:
        fputs("null", f);
        break;
    case CVG_VALUE_BOOL:
        fputs(v->as.boolean ? "true" : "false", f);
        break;
    case CVG_VALUE_INT:
        fprintf(f, "%" PRId64, v->as.integer);
        break;
    case CVG_VALUE_DOUBLE:
        format_double(buf, sizeof buf, v->as.real);
        fputs(buf, f);
        break;
    case CVG_VALUE_STRING:
        cli_json_string(f, v->as.bytes.data, v->as.bytes.len);
        break;
    case CVG_VALUE_BYTES:
        fputs("x:", f);
        cli_print_hex(f, v->as.bytes.data, v->as.bytes.len);
        break;
    default:
        fprintf(f, "<kind %d>", (int)v->kind); /* from a newer library */
        break;
    }
}

void
cli_json_value(FILE *f, const cvg_value *v)
{
    if (v->kind == CVG_VALUE_DOUBLE && !isfinite(v->as.real)) {
        /* JSON has no NaN or infinity, and null is a value of its own:
         * name the double, as bytes are named {"hex": ...}. */
        fprintf(f, "{\"double\":\"%s\"}",
                isnan(v->as.real) ? "NaN"
                : v->as.real > 0  ? "Infinity"
                                  : "-Infinity");
    } else if (v->kind == CVG_VALUE_BYTES) {
        fputs("{\"hex\":\"", f);
        cli_print_hex(f, v->as.bytes.data, v->as.bytes.len);
        fputs("\"}", f);
    } else if (v->kind > CVG_VALUE_BYTES) {
        fputs("null", f);
    } else {
        cli_print_value(f, v); /* the text form is JSON for the rest */
    }
}

void
cli_json_dot(FILE *f, const cvg_dot *d)
{
    char hex[33];
    cvg_replica_id_hex(&d->origin, hex);
    fprintf(f, "{\"origin\":\"%s\",\"seq\":%" PRIu64 "}", hex, d->seq);
}

const char *
cli_type_name(cvg_type type)
{
    switch (type) {
    case CVG_TYPE_COUNTER:
        return "counter";
    case CVG_TYPE_REGISTER:
        return "register";
    case CVG_TYPE_MVREGISTER:
        return "mvregister";
    case CVG_TYPE_SET:
        return "set";
    }
    return "unknown";
}

const char *
cli_op_kind_name(cvg_op_kind kind)
{
    switch (kind) {
    case CVG_OP_COUNTER_ADD:
        return "counter.add";
    case CVG_OP_REGISTER_SET:
        return "register.set";
    case CVG_OP_MVREGISTER_SET:
        return "mvregister.set";
    case CVG_OP_SET_ADD:
        return "set.add";
    case CVG_OP_SET_REMOVE:
        return "set.remove";
    case CVG_OP_RECORD_DELETE:
        return "record.delete";
    }
    return "unknown";
}
