/* Deterministic replicas and end-of-run checks for the fuzz targets that
 * drive whole replicas (see fuzz_util.h). */
#define _XOPEN_SOURCE 700
#include "fuzz_util.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "digest.h"

uint64_t fuzz_now_ms = FUZZ_EPOCH_MS;

static char scratch[4096];
static uint64_t id_state;

void
fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

/* ---- Deterministic ids -------------------------------------------------
 * A replica's id is the only randomness in the library. Ids decide which
 * of two concurrent writes wins and the order of a version vector, so a
 * crash found with one id might not replay with another. libsodium lets
 * a program replace its random source before sodium_init(); the library
 * calls that at the first open, after fuzz_init(). */

static uint64_t
splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static const char *
det_name(void)
{
    return "converge-fuzz";
}

static uint32_t
det_random(void)
{
    return (uint32_t)splitmix(&id_state);
}

static void
det_stir(void)
{
}

static void
det_buf(void *const buf, const size_t size)
{
    uint8_t *p = buf;
    for (size_t i = 0; i < size; i += 8) {
        uint64_t v = splitmix(&id_state);
        size_t n = size - i < 8 ? size - i : 8;
        memcpy(p + i, &v, n);
    }
}

static int
det_close(void)
{
    return 0;
}

static randombytes_implementation det_random_source = {
    det_name, det_random, det_stir, NULL, det_buf, det_close,
};

void
fuzz_ids_from(uint64_t seed)
{
    id_state = seed;
}

/* ---- Scratch directory ------------------------------------------------ */

static int
remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void
remove_scratch(void)
{
    if (scratch[0] != '\0') {
        nftw(scratch, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
}

void
fuzz_init(void)
{
    static int done;
    if (done) {
        return;
    }
    done = 1;
    if (randombytes_set_implementation(&det_random_source) != 0) {
        fuzz_fail("cannot replace the random source");
    }
    /* tmpfs: the many small commits and file copies never touch a disk. */
    const char *base = getenv("CVG_FUZZ_TMP");
    struct stat st;
    if (base == NULL || base[0] == '\0') {
        base = stat("/dev/shm", &st) == 0 && access("/dev/shm", W_OK) == 0
                   ? "/dev/shm"
                   : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    }
    snprintf(scratch, sizeof scratch, "%s/cvg-fuzz-XXXXXX", base);
    if (mkdtemp(scratch) == NULL) {
        fuzz_fail("cannot create a scratch directory in %s: %s", base,
                  strerror(errno));
    }
    atexit(remove_scratch);
}

const char *
fuzz_path(const char *name)
{
    static char path[4200];
    snprintf(path, sizeof path, "%s/%s", scratch, name);
    return path;
}

static uint64_t
fuzz_clock(void *ctx)
{
    (void)ctx;
    return fuzz_now_ms;
}

void
fuzz_options(cvg_replica_options *o)
{
    cvg_replica_options_init(o);
    o->clock = fuzz_clock;
    o->durability = CVG_DURABLE;
}

cvg_replica *
fuzz_open(const char *name, uint64_t id_seed)
{
    cvg_replica_options o;
    fuzz_options(&o);
    fuzz_ids_from(id_seed);
    /* A key from the id seed alone, supplied rather than read from a key
     * file, so a replica rebuilt from a snapshot is the same identity. */
    static uint8_t keys[8][crypto_sign_SECRETKEYBYTES];
    uint8_t seed[crypto_sign_SEEDBYTES] = {0}, pk[crypto_sign_PUBLICKEYBYTES];
    memcpy(seed, &id_seed, sizeof id_seed);
    uint8_t *sk = keys[id_seed % 8];
    crypto_sign_seed_keypair(pk, sk, seed);
    o.secret_key = sk;
    cvg_replica *r;
    int rc = cvg_replica_open(fuzz_path(name), &o, &r);
    if (rc != CVG_OK) {
        fuzz_fail("cannot open replica %s: %s (%s)", name, cvg_errname(rc),
                  cvg_replica_errmsg(NULL));
    }
    return r;
}

void
fuzz_remove(const char *name)
{
    char file[4300];
    snprintf(file, sizeof file, "%s/data.mdb", fuzz_path(name));
    unlink(file);
    snprintf(file, sizeof file, "%s/lock.mdb", fuzz_path(name));
    unlink(file);
    rmdir(fuzz_path(name));
}

void
fuzz_snapshot_take(const char *name, fuzz_snapshot *out)
{
    char file[4300];
    snprintf(file, sizeof file, "%s/data.mdb", fuzz_path(name));
    FILE *f = fopen(file, "rb");
    if (f == NULL || fseek(f, 0, SEEK_END) != 0) {
        fuzz_fail("cannot read %s", file);
    }
    long len = ftell(f);
    rewind(f);
    out->data = malloc(len > 0 ? (size_t)len : 1);
    out->len = len > 0 ? (size_t)len : 0;
    if (out->data == NULL || fread(out->data, 1, out->len, f) != out->len) {
        fuzz_fail("cannot read %s", file);
    }
    fclose(f);
}

void
fuzz_snapshot_put(const char *name, const fuzz_snapshot *snap)
{
    /* The directory, its key file and the data file's inode stay: a
     * replica that finds its files replaced takes a new origin (it was
     * copied), and each run must start from the very same replica. */
    if (mkdir(fuzz_path(name), 0700) != 0 && errno != EEXIST) {
        fuzz_fail("cannot create %s: %s", fuzz_path(name), strerror(errno));
    }
    char file[4300];
    snprintf(file, sizeof file, "%s/lock.mdb", fuzz_path(name));
    (void)unlink(file);
    snprintf(file, sizeof file, "%s/data.mdb", fuzz_path(name));
    FILE *f = fopen(file, "wb");
    if (f == NULL || fwrite(snap->data, 1, snap->len, f) != snap->len ||
        fclose(f) != 0) {
        fuzz_fail("cannot write %s", file);
    }
}

/* ---- Writing and syncing ----------------------------------------------- */

static void
check(int rc, const char *what)
{
    if (rc != CVG_OK) {
        fuzz_fail("%s: %s", what, cvg_errname(rc));
    }
}

void
fuzz_write_every_type(cvg_replica *r, const char *tag)
{
    char k1[64], k2[64];
    snprintf(k1, sizeof k1, "%s-1", tag);
    snprintf(k2, sizeof k2, "%s-2", tag);
    cvg_txn *t;
    check(cvg_txn_begin(r, 0, &t), "begin");
    cvg_key n = {"c", k1, "n"}, name = {"c", k1, "name"};
    cvg_key mv = {"c", k1, "mv"}, tags = {"c", k1, "tags"};
    cvg_key gone = {"c", k2, "n"}, gone_reg = {"c", k2, "r"};
    cvg_key shared = {"c", "shared", "r"}, shared_mv = {"c", "shared", "mv"};
    cvg_key shared_n = {"c", "shared", "n"}, shared_s = {"c", "shared", "s"};
    cvg_value v_tag = cvg_value_string(tag), v_x = cvg_value_string("x");
    cvg_value v_i = cvg_value_int(-7), v_d = cvg_value_double(0.5);
    cvg_value v_b = cvg_value_bytes("\x00\x01\xff", 3);
    cvg_value v_nil = cvg_value_nil(), v_t = cvg_value_bool(true);
    check(cvg_counter_add(t, &n, 5, NULL), "counter");
    check(cvg_counter_add(t, &n, -2, NULL), "counter");
    check(cvg_register_set(t, &name, &v_tag, NULL), "register");
    check(cvg_mvregister_set(t, &mv, &v_i, NULL), "mvregister");
    check(cvg_set_add(t, &tags, &v_x, NULL), "set add");
    check(cvg_set_add(t, &tags, &v_d, NULL), "set add");
    check(cvg_set_add(t, &tags, &v_b, NULL), "set add");
    check(cvg_set_remove(t, &tags, &v_x, NULL), "set remove");
    check(cvg_counter_add(t, &gone, 3, NULL), "counter");
    check(cvg_register_set(t, &gone_reg, &v_nil, NULL), "register");
    check(cvg_record_delete(t, &gone, NULL), "delete");
    /* Fields every replica writes: concurrent writes meet here. */
    check(cvg_register_set(t, &shared, &v_tag, NULL), "register");
    check(cvg_mvregister_set(t, &shared_mv, &v_tag, NULL), "mvregister");
    check(cvg_counter_add(t, &shared_n, 1, NULL), "counter");
    check(cvg_set_add(t, &shared_s, &v_t, NULL), "set add");
    check(cvg_set_add(t, &shared_s, &v_tag, NULL), "set add");
    check(cvg_txn_commit(t), "commit");
}

void
fuzz_sync(cvg_replica *a, cvg_replica *b)
{
    check(cvg_sync_local(a, b, NULL), "sync");
}

/* ---- Checks -------------------------------------------------------------- */

/* Walk the whole log: every op must decode, lie within the version vector,
 * and the log must hold exactly as many ops as the vector counts (ops of
 * an origin are applied in seq order, each once). */
static void
check_log(cvg_txn *t, const cvg_dot *vv, size_t n)
{
    uint64_t want = 0;
    for (size_t i = 0; i < n; i++) {
        want += vv[i].seq;
    }
    cvg_log_cursor *c;
    check(cvg_log_cursor_open(t, 1, &c), "log cursor");
    cvg_op op;
    uint64_t count = 0;
    int rc;
    while ((rc = cvg_log_cursor_next(c, &op)) == CVG_OK) {
        count++;
        if (op.lsn != count) {
            fuzz_fail("log: op %" PRIu64 " has lsn %" PRIu64, count, op.lsn);
        }
        bool known = false;
        for (size_t i = 0; i < n; i++) {
            if (memcmp(&vv[i].origin, &op.dot.origin, 16) == 0) {
                known = op.dot.seq >= 1 && op.dot.seq <= vv[i].seq;
            }
        }
        if (!known) {
            fuzz_fail("log: op seq %" PRIu64 " outside the version vector",
                      op.dot.seq);
        }
    }
    cvg_log_cursor_close(c);
    if (rc != CVG_DONE) {
        fuzz_fail("log: reading op %" PRIu64 ": %s", count + 1,
                  cvg_errname(rc));
    }
    if (count != want) {
        fuzz_fail("log: %" PRIu64 " ops, version vector counts %" PRIu64, count,
                  want);
    }
}

char *
fuzz_digest(cvg_replica *r)
{
    cvg_txn *t;
    check(cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t), "read txn");
    size_t n = 0;
    check(cvg_txn_version_vector(t, NULL, 0, &n), "version vector");
    cvg_dot *vv = calloc(n ? n : 1, sizeof *vv);
    size_t n2 = 0;
    check(cvg_txn_version_vector(t, vv, n, &n2), "version vector");
    if (n2 != n) {
        fuzz_fail("version vector changed size in one transaction");
    }
    check_log(t, vv, n);
    cvg_txn_abort(t);

    char *state = NULL;
    int rc = cvg_test_digest(r, &state);
    if (rc != CVG_OK) {
        fuzz_fail("a record does not read: %s (%s)", cvg_errname(rc),
                  cvg_replica_errmsg(r));
    }
    size_t len = strlen(state);
    char *out = malloc(len + n * 64 + 1);
    memcpy(out, state, len);
    free(state);
    for (size_t i = 0; i < n; i++) {
        char hex[33];
        cvg_replica_id_hex(&vv[i].origin, hex);
        len +=
            (size_t)sprintf(out + len, "vv %s %" PRIu64 "\n", hex, vv[i].seq);
    }
    out[len] = '\0';
    free(vv);
    return out;
}
