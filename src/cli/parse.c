/*
 * Parsing command-line arguments into numbers and values. The rules are
 * strict on purpose: a number that does not fit is an error, not silently a
 * string or a clamped value, and `s:` forces a string for the rare text that
 * looks like something else.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* strtoll's range check is the int64 range check. */
_Static_assert(LLONG_MIN == INT64_MIN && LLONG_MAX == INT64_MAX,
               "long long must be 64 bits");
_Static_assert(ULLONG_MAX == UINT64_MAX, "unsigned long long must be 64 bits");

/* Optional sign, then at least one digit and nothing else: strtoll alone
 * would accept leading blanks and trailing junk. */
static bool
is_decimal(const char *s, bool allow_minus)
{
    if (*s == '-' ? allow_minus : *s == '+') {
        s++;
    }
    if (*s == '\0') {
        return false;
    }
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9') {
            return false;
        }
    }
    return true;
}

bool
cli_parse_i64(const char *s, int64_t *out)
{
    if (!is_decimal(s, true)) {
        return false;
    }
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE) {
        return false;
    }
    *out = (int64_t)v;
    return true;
}

bool
cli_parse_u64(const char *s, uint64_t *out)
{
    if (!is_decimal(s, false)) {
        return false;
    }
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    if (errno == ERANGE) {
        return false;
    }
    *out = (uint64_t)v;
    return true;
}

static int
hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Exactly 2 * @p n hex digits (either case) into @p n bytes. */
static bool
hex_exact(const char *s, uint8_t *out, size_t n)
{
    if (strlen(s) != 2 * n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

bool
cli_parse_replica_id(const char *s, cvg_replica_id *out)
{
    /* Exactly the 32 digits cvg_replica_id_hex() writes (either case), so
     * a truncated copy and paste is an error, not a different replica. */
    return hex_exact(s, out->bytes, sizeof out->bytes);
}

bool
cli_parse_key(const char *s, uint8_t *out)
{
    return hex_exact(s, out, CVG_PUBLIC_KEY_BYTES);
}

static int
parse_hex(const char *cmd, const char *hex, cvg_value *out, uint8_t **buf_out)
{
    size_t n = strlen(hex);
    if (n % 2 != 0) {
        return cli_usage(cmd, "x:HEX needs an even number of hex digits");
    }
    /* One spare byte so an empty value still has a non-NULL pointer. */
    uint8_t *buf = malloc(n / 2 + 1);
    if (buf == NULL) {
        return cli_fail(cmd, CVG_ENOMEM, NULL);
    }
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(buf);
            return cli_usage(cmd, "x:HEX: '%s' is not hexadecimal", hex);
        }
        buf[i] = (uint8_t)(hi << 4 | lo);
    }
    *out = cvg_value_bytes(buf, n / 2);
    *buf_out = buf;
    return CLI_EXIT_OK;
}

/* Where the digits of a JSON-style integer part end: "0" or a non-zero
 * digit and more digits, after an optional '-'. NULL if there is none. */
static const char *
json_int_end(const char *s)
{
    if (*s == '-') {
        s++;
    }
    if (*s == '0') {
        return s + 1;
    }
    if (*s < '1' || *s > '9') {
        return NULL;
    }
    while (*s >= '0' && *s <= '9') {
        s++;
    }
    return s;
}

/* A VALUE is an integer only as JSON writes one: "-?(0|[1-9][0-9]*)", not
 * "-0". So "007", "+5" and "0x10" are text, as a user who typed them
 * meant, and "12" read back prints as "12". */
static bool
is_canonical_int(const char *s)
{
    const char *e = json_int_end(s);
    return e != NULL && *e == '\0' && strcmp(s, "-0") != 0;
}

/* A double is a JSON number with a fraction or an exponent ("2.5",
 * "1e3", "-0.0"), so "2" stays an integer and ".5", "5." or "inf" are
 * text. Returns 1 if @p s is a double, 0 if not, -1 if it overflows. */
static int
parse_double(const char *s, double *out)
{
    const char *p = json_int_end(s);
    if (p == NULL || (*p != '.' && *p != 'e' && *p != 'E')) {
        return 0;
    }
    if (*p == '.') {
        if (p[1] < '0' || p[1] > '9') {
            return 0;
        }
        for (p++; *p >= '0' && *p <= '9'; p++) {
        }
    }
    if (*p == 'e' || *p == 'E') {
        p += p[1] == '+' || p[1] == '-' ? 2 : 1;
        if (*p < '0' || *p > '9') {
            return 0;
        }
        while (*p >= '0' && *p <= '9') {
            p++;
        }
    }
    if (*p != '\0') {
        return 0;
    }
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (end == s || *end != '\0') {
        return 0; /* "1.2.3", "v1.0": plain text */
    }
    if (errno == ERANGE && isinf(d)) {
        return -1; /* underflow to a tiny or zero value is fine */
    }
    *out = d;
    return 1;
}

int
cli_parse_value(const char *cmd, const char *s, cvg_value *out,
                uint8_t **buf_out)
{
    *buf_out = NULL;
    int64_t i;
    double d;
    if (strncmp(s, "s:", 2) == 0) {
        *out = cvg_value_string(s + 2);
    } else if (strncmp(s, "x:", 2) == 0) {
        return parse_hex(cmd, s + 2, out, buf_out);
    } else if (strcmp(s, "null") == 0) {
        *out = cvg_value_nil();
    } else if (strcmp(s, "true") == 0 || strcmp(s, "false") == 0) {
        *out = cvg_value_bool(s[0] == 't');
    } else if (is_canonical_int(s)) {
        if (!cli_parse_i64(s, &i)) {
            return cli_usage(cmd,
                             "'%s' is out of the int64 range (use s:%s "
                             "for a string)",
                             s, s);
        }
        *out = cvg_value_int(i);
    } else {
        int kind = parse_double(s, &d);
        if (kind < 0) {
            return cli_usage(cmd,
                             "'%s' is out of the double range (use s:%s "
                             "for a string)",
                             s, s);
        }
        *out = kind == 1 ? cvg_value_double(d) : cvg_value_string(s);
    }
    return CLI_EXIT_OK;
}
