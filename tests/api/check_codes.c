/*
 * Every code a public function returns is listed in its doc comment.
 *
 * Usage: check_codes RC_DIR HEADER...
 *
 * The headers are read for every status-returning function (declared
 * CVG_NODISCARD int) and the doc comment just above it; the codes it
 * names (CVG_E... and CVG_DONE) are what the function may return. RC_DIR
 * holds what the test suite saw (tests/support/rc_record.c): one line
 * "function CODE" per pair. The check fails, naming each, for a function
 * whose doc lists no code, and for a code a function returned that its
 * doc does not list. It runs after every other test (a ctest fixture).
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FNS_MAX 256
#define CODES_MAX 48

typedef struct fn_doc {
    char name[64];
    char codes[CODES_MAX][24];
    int ncodes;
    int seen; /* pairs seen in the tests */
} fn_doc;

static fn_doc fns[FNS_MAX];
static int nfns;

static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s != NULL && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s != NULL) {
        s[n] = '\0';
    }
    fclose(f);
    return s;
}

static int
is_code_char(char c)
{
    return (c >= 'A' && c <= 'Z') || c == '_';
}

/* The codes named in text[from, to). */
static void
codes_in(const char *text, const char *from, const char *to, fn_doc *d)
{
    for (const char *p = from; p + 4 < to; p++) {
        if (strncmp(p, "CVG_", 4) != 0 || (p > text && is_code_char(p[-1]))) {
            continue;
        }
        const char *e = p + 4;
        while (e < to && is_code_char(*e)) {
            e++;
        }
        size_t len = (size_t)(e - p);
        if ((p[4] == 'E' || strncmp(p, "CVG_DONE", 8) == 0) && len < 24 &&
            d->ncodes < CODES_MAX) {
            memcpy(d->codes[d->ncodes], p, len);
            d->codes[d->ncodes][len] = '\0';
            d->ncodes++;
        }
        p = e;
    }
}

static int
read_header(const char *path)
{
    char *text = slurp(path);
    if (text == NULL) {
        fprintf(stderr, "check_codes: cannot read %s\n", path);
        return 1;
    }
    const char *key = "CVG_NODISCARD int cvg_";
    for (char *p = strstr(text, key); p != NULL; p = strstr(p + 1, key)) {
        if (nfns == FNS_MAX) {
            break;
        }
        fn_doc *d = &fns[nfns++];
        memset(d, 0, sizeof *d);
        const char *name = p + strlen("CVG_NODISCARD int ");
        size_t n = strcspn(name, "(");
        snprintf(d->name, sizeof d->name, "%.*s", (int)n, name);
        /* The doc: the comment that ends just before this declaration's
         * line (only blank space between). */
        const char *line = p;
        while (line > text && line[-1] != '\n') {
            line--;
        }
        const char *q = line;
        while (q > text && (q[-1] == '\n' || q[-1] == ' ')) {
            q--;
        }
        if (q - text >= 2 && q[-1] == '/' && q[-2] == '*') {
            const char *end = q - 2;
            const char *start = end;
            while (start > text && strncmp(start, "/*", 2) != 0) {
                start--;
            }
            codes_in(text, start, end, d);
        }
    }
    free(text);
    return 0;
}

static fn_doc *
find_fn(const char *name)
{
    for (int i = 0; i < nfns; i++) {
        if (strcmp(fns[i].name, name) == 0) {
            return &fns[i];
        }
    }
    return NULL;
}

static int
listed(const fn_doc *d, const char *code)
{
    for (int i = 0; i < d->ncodes; i++) {
        if (strcmp(d->codes[i], code) == 0) {
            return 1;
        }
    }
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: check_codes RC_DIR HEADER...\n");
        return 2;
    }
    int bad = 0;
    for (int i = 2; i < argc; i++) {
        bad |= read_header(argv[i]);
    }
    for (int i = 0; i < nfns; i++) {
        if (fns[i].ncodes == 0) {
            printf("%s: its doc lists no code\n", fns[i].name);
            bad = 1;
        }
    }
    DIR *dir = opendir(argv[1]);
    if (dir == NULL) {
        fprintf(stderr, "check_codes: no record in %s: did the tests run?\n",
                argv[1]);
        return 1;
    }
    int pairs = 0, files = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (strncmp(e->d_name, "rc-", 3) != 0) {
            continue;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[1], e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }
        files++;
        char fn[128], code[64];
        while (fscanf(f, "%127s %63s", fn, code) == 2) {
            pairs++;
            fn_doc *d = find_fn(fn);
            if (d == NULL) {
                continue; /* not a status function of these headers */
            }
            d->seen++;
            if (!listed(d, code)) {
                printf("%s returned %s, which its doc does not list\n", fn,
                       code);
                bad = 1;
                /* Report each pair once. */
                if (d->ncodes < CODES_MAX) {
                    snprintf(d->codes[d->ncodes++], 24, "%.23s", code);
                }
            }
        }
        fclose(f);
    }
    closedir(dir);
    int tested = 0;
    for (int i = 0; i < nfns; i++) {
        tested += fns[i].seen > 0;
    }
    printf(
        "check_codes: %d functions, %d with an error code seen in the "
        "tests; %d records in %d files\n",
        nfns, tested, pairs, files);
    if (files == 0) {
        printf("check_codes: nothing was recorded: it checks what the other "
               "tests saw, so run it with them\n");
        bad = 1;
    }
    return bad;
}
