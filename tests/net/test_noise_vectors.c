/*
 * The Noise handshake against the cacophony test vectors
 * (tests/net/vectors/): for each of the 59 Noise_*_25519_ChaChaPoly_BLAKE2b
 * protocols, both sides are built from the vector's keys, prologue, psks
 * and fixed ephemeral keys; every handshake and transport message must be
 * the vector's ciphertext byte for byte and read back to its payload, and
 * both sides must reach the vector's handshake hash. The JSON is read at
 * test time by the small parser below (no new dependency); the test
 * counts what it replayed, so a file it cannot read fails it.
 */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/noise.h"

#define VECTORS_FILE "noise-cacophony-25519-chachapoly-blake2b.json"
#define VECTORS_EXPECTED 59
#define XX_EXPECTED 5 /* XX, XX1, X1X, X1X1, XXpsk3 */

/* ---- A small JSON reader ------------------------------------------------
 * Enough for the vector file: objects, arrays, strings with simple
 * escapes; numbers and literals are skipped over. */

typedef enum jtype { J_OTHER, J_STR, J_ARR, J_OBJ } jtype;

typedef struct jval {
    jtype type;
    char *str; /* J_STR, NUL-terminated */
    struct jval *items;
    char **keys; /* J_OBJ: the key of each item */
    size_t n;
} jval;

typedef struct jparser {
    const char *p;
    const char *end;
} jparser;

static void
jskip(jparser *j)
{
    while (j->p < j->end &&
           (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t')) {
        j->p++;
    }
}

static bool jvalue(jparser *j, jval *out);

static bool
jstring(jparser *j, char **out)
{
    if (j->p >= j->end || *j->p != '"') {
        return false;
    }
    j->p++;
    size_t cap = 16, n = 0;
    char *s = malloc(cap);
    while (j->p < j->end && *j->p != '"') {
        char c = *j->p++;
        if (c == '\\') {
            if (j->p >= j->end || strchr("\"\\/", *j->p) == NULL) {
                free(s);
                return false; /* the vector file needs no other escape */
            }
            c = *j->p++;
        }
        if (n + 2 > cap) {
            cap *= 2;
            s = realloc(s, cap);
        }
        s[n++] = c;
    }
    if (j->p >= j->end) {
        free(s);
        return false;
    }
    j->p++;
    s[n] = '\0';
    *out = s;
    return true;
}

static void
jpush(jval *v, char *key, const jval *item)
{
    v->items = realloc(v->items, (v->n + 1) * sizeof *v->items);
    v->keys = realloc(v->keys, (v->n + 1) * sizeof *v->keys);
    v->items[v->n] = *item;
    v->keys[v->n] = key;
    v->n++;
}

/* The items of an array or object, up to @p close. */
static bool
jlist(jparser *j, jval *v, char close)
{
    j->p++;
    jskip(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return true;
    }
    for (;;) {
        char *key = NULL;
        jval item;
        jskip(j);
        if (v->type == J_OBJ) {
            if (!jstring(j, &key)) {
                return false;
            }
            jskip(j);
            if (j->p >= j->end || *j->p++ != ':') {
                free(key);
                return false;
            }
        }
        if (!jvalue(j, &item)) {
            free(key);
            return false;
        }
        jpush(v, key, &item);
        jskip(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == close) {
            j->p++;
            return true;
        }
        return false;
    }
}

static bool
jvalue(jparser *j, jval *out)
{
    memset(out, 0, sizeof *out);
    jskip(j);
    if (j->p >= j->end) {
        return false;
    }
    switch (*j->p) {
    case '{':
        out->type = J_OBJ;
        return jlist(j, out, '}');
    case '[':
        out->type = J_ARR;
        return jlist(j, out, ']');
    case '"':
        out->type = J_STR;
        return jstring(j, &out->str);
    default:
        out->type = J_OTHER;
        while (j->p < j->end && strchr(",]} \n\r\t", *j->p) == NULL) {
            j->p++;
        }
        return true;
    }
}

static void
jfree(jval *v)
{
    for (size_t i = 0; i < v->n; i++) {
        jfree(&v->items[i]);
        free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
}

static const jval *
jget(const jval *obj, const char *key)
{
    for (size_t i = 0; obj->type == J_OBJ && i < obj->n; i++) {
        if (strcmp(obj->keys[i], key) == 0) {
            return &obj->items[i];
        }
    }
    return NULL;
}

static const char *
jstr(const jval *obj, const char *key)
{
    const jval *v = jget(obj, key);
    return v != NULL && v->type == J_STR ? v->str : NULL;
}

/* ---- Loading --------------------------------------------------------- */

/* The vector file: $CVG_NOISE_VECTORS, or vectors/ next to this source. */
static char *
read_vectors(size_t *len)
{
    char path[4096];
    const char *env = getenv("CVG_NOISE_VECTORS");
    if (env != NULL) {
        snprintf(path, sizeof path, "%s", env);
    } else {
        const char *slash = strrchr(__FILE__, '/');
        int dir = slash != NULL ? (int)(slash - __FILE__) : 1;
        snprintf(path, sizeof path, "%.*s/vectors/%s", dir,
                 slash != NULL ? __FILE__ : ".", VECTORS_FILE);
    }
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static int
hexval(char c)
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

/* Hex into a new buffer (never NULL, even for ""). */
static uint8_t *
unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex);
    cr_assert_eq(n % 2, 0, "odd hex length");
    uint8_t *out = malloc(n / 2 + 1);
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        cr_assert(hi >= 0 && lo >= 0, "bad hex digit");
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    *len = n / 2;
    return out;
}

/* A 32-byte key, or false if the vector has none. */
static bool
key_of(const jval *v, const char *field, uint8_t out[32])
{
    const char *hex = jstr(v, field);
    if (hex == NULL) {
        return false;
    }
    size_t n;
    uint8_t *k = unhex(hex, &n);
    cr_assert_eq(n, 32, "%s is not 32 bytes", field);
    memcpy(out, k, 32);
    free(k);
    return true;
}

/* ---- One side ------------------------------------------------------------ */

typedef struct side {
    cvg__noise_hs hs;
    cvg__noise_transport t;
    uint8_t s[32], rs[32], e[32];
    bool has_s, has_rs, has_e;
    uint8_t psks[CVG__NOISE_PSKS_MAX][32];
    size_t n_psks;
    uint8_t *prologue;
    size_t prologue_len;
} side;

static void
side_load(side *sd, const jval *v, const char *who)
{
    char field[64];
    memset(sd, 0, sizeof *sd);
    snprintf(field, sizeof field, "%s_static", who);
    sd->has_s = key_of(v, field, sd->s);
    snprintf(field, sizeof field, "%s_remote_static", who);
    sd->has_rs = key_of(v, field, sd->rs);
    snprintf(field, sizeof field, "%s_ephemeral", who);
    sd->has_e = key_of(v, field, sd->e);
    snprintf(field, sizeof field, "%s_prologue", who);
    sd->prologue =
        unhex(jstr(v, field) ? jstr(v, field) : "", &sd->prologue_len);
    snprintf(field, sizeof field, "%s_psks", who);
    const jval *psks = jget(v, field);
    for (size_t i = 0; psks != NULL && i < psks->n; i++) {
        cr_assert_lt(i, CVG__NOISE_PSKS_MAX);
        size_t n;
        uint8_t *k = unhex(psks->items[i].str, &n);
        cr_assert_eq(n, 32);
        memcpy(sd->psks[i], k, 32);
        free(k);
        sd->n_psks++;
    }
}

static void
side_start(side *sd, const char *name, bool initiator)
{
    cvg__noise_config cfg = {
        .prologue = sd->prologue,
        .prologue_len = sd->prologue_len,
        .s = sd->has_s ? sd->s : NULL,
        .rs = sd->has_rs ? sd->rs : NULL,
        .psks = sd->psks[0],
        .n_psks = sd->n_psks,
    };
    int rc = cvg__noise_init(&sd->hs, name, initiator, &cfg);
    cr_assert_eq(rc, CVG_OK, "%s: init (%s): %d", name,
                 initiator ? "initiator" : "responder", rc);
    if (sd->has_e) {
        cr_assert_eq(cvg__noise_fix_ephemeral(&sd->hs, sd->e), CVG_OK);
    }
}

static void
expect_bytes(const uint8_t *got, size_t got_len, const char *want_hex,
             const char *what, const char *name, size_t i)
{
    size_t n;
    uint8_t *want = unhex(want_hex, &n);
    cr_assert_eq(got_len, n, "%s: message %zu: %s length %zu != %zu", name, i,
                 what, got_len, n);
    cr_assert_eq(memcmp(got, want, n), 0, "%s: message %zu: %s differs", name,
                 i, what);
    free(want);
}

/* ---- Replay ---------------------------------------------------------- */

static uint8_t buf[CVG__NOISE_MSG_MAX], plain[CVG__NOISE_MSG_MAX];

static void
handshake_step(side *w, side *r, const jval *m, const char *name, size_t i)
{
    size_t plen, clen, got;
    uint8_t *payload = unhex(jstr(m, "payload"), &plen);
    cr_assert_eq(cvg__noise_turn_of(&w->hs), CVG__NOISE_WRITE,
                 "%s: message %zu: not the writer's turn", name, i);
    int rc = cvg__noise_write(&w->hs, payload, plen, buf, sizeof buf, &clen);
    cr_assert_eq(rc, CVG_OK, "%s: message %zu: write: %d", name, i, rc);
    expect_bytes(buf, clen, jstr(m, "ciphertext"), "ciphertext", name, i);
    rc = cvg__noise_read(&r->hs, buf, clen, plain, sizeof plain, &got);
    cr_assert_eq(rc, CVG_OK, "%s: message %zu: read: %d", name, i, rc);
    cr_assert_eq(got, plen);
    cr_assert_eq(memcmp(plain, payload, plen), 0, "%s: payload %zu", name, i);
    free(payload);
}

static void
transport_step(side *w, side *r, const jval *m, const char *name, size_t i)
{
    size_t plen, clen, got;
    uint8_t *payload = unhex(jstr(m, "payload"), &plen);
    int rc =
        cvg__noise_encrypt(&w->t.tx, payload, plen, buf, sizeof buf, &clen);
    cr_assert_eq(rc, CVG_OK, "%s: message %zu: encrypt: %d", name, i, rc);
    expect_bytes(buf, clen, jstr(m, "ciphertext"), "ciphertext", name, i);
    rc = cvg__noise_decrypt(&r->t.rx, buf, clen, plain, sizeof plain, &got);
    cr_assert_eq(rc, CVG_OK, "%s: message %zu: decrypt: %d", name, i, rc);
    cr_assert_eq(got, plen);
    cr_assert_eq(memcmp(plain, payload, plen), 0, "%s: payload %zu", name, i);
    free(payload);
}

/* The peer's static key as the split reports it: the other side's public
 * key whenever that side has a static key. */
static void
expect_remote_static(const side *sd, const side *peer, const char *name)
{
    cr_assert_eq(sd->t.has_rs, peer->has_s, "%s: remote static known", name);
    if (peer->has_s) {
        uint8_t pub[32];
        crypto_scalarmult_base(pub, peer->s);
        cr_assert_eq(memcmp(sd->t.rs, pub, 32), 0, "%s: remote static", name);
    }
}

static void
split_both(side *ini, side *resp, const jval *v, const char *name)
{
    cr_assert_eq(cvg__noise_split(&ini->hs, &ini->t), CVG_OK);
    cr_assert_eq(cvg__noise_split(&resp->hs, &resp->t), CVG_OK);
    expect_bytes(ini->t.hash, sizeof ini->t.hash, jstr(v, "handshake_hash"),
                 "initiator's handshake hash", name, 0);
    expect_bytes(resp->t.hash, sizeof resp->t.hash, jstr(v, "handshake_hash"),
                 "responder's handshake hash", name, 0);
    expect_remote_static(ini, resp, name);
    expect_remote_static(resp, ini, name);
    /* Split wiped the handshake states. */
    static const cvg__noise_hs zero;
    cr_assert_eq(memcmp(&ini->hs, &zero, sizeof zero), 0);
    cr_assert_eq(memcmp(&resp->hs, &zero, sizeof zero), 0);
}

/* Handshake messages alternate from the initiator; after them, transport
 * messages keep alternating by index, except that in a one-way pattern
 * only the initiator sends. Returns the number of messages replayed. */
static size_t
replay(const jval *v)
{
    const char *name = jstr(v, "protocol_name");
    const jval *msgs = jget(v, "messages");
    cr_assert(name != NULL && msgs != NULL && msgs->type == J_ARR);
    static side ini, resp;
    side_load(&ini, v, "init");
    side_load(&resp, v, "resp");
    side_start(&ini, name, true);
    side_start(&resp, name, false);
    bool one_way = ini.hs.n_msgs == 1, split = false;
    for (size_t i = 0; i < msgs->n; i++) {
        bool from_ini = one_way || i % 2 == 0;
        side *w = from_ini ? &ini : &resp, *r = from_ini ? &resp : &ini;
        if (!split) {
            handshake_step(w, r, &msgs->items[i], name, i);
            if (cvg__noise_turn_of(&ini.hs) == CVG__NOISE_SPLIT) {
                cr_assert_eq(cvg__noise_turn_of(&resp.hs), CVG__NOISE_SPLIT);
                split_both(&ini, &resp, v, name);
                split = true;
            }
        } else {
            transport_step(w, r, &msgs->items[i], name, i);
        }
    }
    cr_assert(split, "%s: the handshake did not finish", name);
    cvg__noise_transport_wipe(&ini.t);
    cvg__noise_transport_wipe(&resp.t);
    free(ini.prologue);
    free(resp.prologue);
    return msgs->n;
}

Test(noise_vectors, every_vector_byte_for_byte)
{
    size_t len;
    char *text = read_vectors(&len);
    jparser j = {text, text + len};
    jval root;
    cr_assert(jvalue(&j, &root), "the vector file is not JSON");
    const jval *vectors = jget(&root, "vectors");
    cr_assert(vectors != NULL && vectors->type == J_ARR);

    size_t n_vectors = 0, n_messages = 0, n_xx = 0;
    for (size_t i = 0; i < vectors->n; i++) {
        n_messages += replay(&vectors->items[i]);
        n_vectors++;
        const char *name = jstr(&vectors->items[i], "protocol_name");
        n_xx += strncmp(name, "Noise_XX_", 9) == 0 ||
                strncmp(name, "Noise_XX1_", 10) == 0 ||
                strncmp(name, "Noise_X1X_", 10) == 0 ||
                strncmp(name, "Noise_X1X1_", 11) == 0 ||
                strncmp(name, "Noise_XXpsk3_", 13) == 0;
    }
    cr_log_info("replayed %zu vectors, %zu messages", n_vectors, n_messages);
    cr_expect_eq(n_vectors, VECTORS_EXPECTED, "replayed %zu vectors of %d",
                 n_vectors, VECTORS_EXPECTED);
    cr_expect_eq(n_xx, XX_EXPECTED, "replayed %zu XX vectors of %d", n_xx,
                 XX_EXPECTED);
    cr_expect_geq(n_messages, 6 * VECTORS_EXPECTED);
    jfree(&root);
    free(text);
}
