/*
 * Opening and closing a replica: the LMDB environment, the meta records that
 * identify it (format version, id), and the in-memory copy of the committed
 * version vector, origin table and clock. Opening reads a few records and
 * never replays the log.
 */
#define _GNU_SOURCE /* CLOCK_REALTIME_COARSE */
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "replica_int.h"

/* Every write stamps its op, so the clock is read once per op. The coarse
 * clock is the time of the kernel's last tick (1 to 4 ms old, where the
 * stamp counts whole milliseconds anyway) and costs a third of a precise
 * read (10 ns against 33 here, a tenth of a relaxed increment's time).
 * Stamps only order concurrent writes, whose devices' clocks differ by
 * more than that; one replica's own stamps increase whatever the clock
 * does (crdt/hlc.c). */
#ifdef CLOCK_REALTIME_COARSE
#define WALL_CLOCK CLOCK_REALTIME_COARSE
#else
#define WALL_CLOCK CLOCK_REALTIME
#endif

static uint64_t
wall_clock_ms(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(WALL_CLOCK, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void
cvg_replica_options_init(cvg_replica_options *o)
{
    memset(o, 0, sizeof *o);
    o->version = CVG_OPTIONS_VERSION;
    o->map_size = (size_t)64 << 20;
    o->map_size_max = (size_t)16 << 30;
    o->durability = CVG_DURABLE;
    o->max_clock_ahead_ms = 60000;
}

int
cvg__replica_fail(cvg_replica *r, int rc, const char *fmt, ...)
{
    if (r != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->errmsg, sizeof r->errmsg, fmt, ap);
        va_end(ap);
        /* A full disk is the directory's device's: name it. */
        size_t n = strlen(r->errmsg);
        if (rc == CVG_ENOSPC && r->store.path != NULL && n < sizeof r->errmsg) {
            snprintf(r->errmsg + n, sizeof r->errmsg - n,
                     ": no space left on the device holding '%s'",
                     r->store.path);
        }
    }
    return rc;
}

/* A failed open has no handle to ask: its detail is kept per thread. */
static _Thread_local char open_errmsg[256];

const char *
cvg_replica_errmsg(const cvg_replica *r)
{
    if (r == NULL) {
        return open_errmsg[0] ? open_errmsg : "no error";
    }
    return r->errmsg[0] ? r->errmsg : "no error";
}

void
cvg_replica_id_get(const cvg_replica *r, cvg_replica_id *out)
{
    *out = r->id;
}

cvg__store *
cvg__replica_store(cvg_replica *r)
{
    return &r->store;
}

const cvg_replica_id *
cvg__replica_self(const cvg_replica *r)
{
    return &r->id;
}

const uint8_t *
cvg__replica_pk(const cvg_replica *r)
{
    return r->has_pk ? r->pk : NULL;
}

cvg_bytes
cvg__replica_inc(const cvg_replica *r)
{
    cvg_bytes b = {r->inc, r->inc_len};
    return b;
}

const cvg_replica_options *
cvg__replica_opts(const cvg_replica *r)
{
    return &r->opts;
}

uint64_t
cvg__replica_now_ms(const cvg_replica *r)
{
    return r->opts.clock(r->opts.clock_ctx);
}

int
cvg__replica_refresh(cvg_replica *r, cvg__store_txn *mt)
{
    uint64_t gen = 0;
    int rc = cvg__meta_get_u64(&r->store, mt, "gen", &gen);
    if (rc != CVG_OK) {
        return cvg__replica_fail(r, rc == CVG_ENOTFOUND ? CVG_ECORRUPT : rc,
                                 "meta record 'gen' unreadable");
    }
    if (gen == r->gen) {
        return CVG_OK;
    }
    uint64_t clock, lsn;
    rc = cvg__meta_get_u64(&r->store, mt, "hlc", &clock);
    if (rc == CVG_OK) {
        rc = cvg__meta_get_u64(&r->store, mt, "lsn", &lsn);
    }
    if (rc == CVG_OK) {
        rc = cvg__replica_vv_detach(r);
    }
    if (rc == CVG_OK) {
        rc = cvg__origins_load(&r->store, mt, &r->origins, &r->vv, &r->ahead);
    }
    uint32_t self_idx;
    if (rc == CVG_OK &&
        cvg__origins_find(&r->origins, &r->id, &self_idx) != CVG_OK) {
        rc = CVG_ECORRUPT; /* this replica's own origin must be there */
    }
    if (rc != CVG_OK) {
        r->gen = UINT64_MAX; /* force a reload next time */
        return cvg__replica_fail(r, rc == CVG_ENOTFOUND ? CVG_ECORRUPT : rc,
                                 "replica meta records are damaged");
    }
    r->clock = clock;
    r->last_lsn = lsn;
    r->gen = gen;
    return CVG_OK;
}

/* A new replica: format, a random id, and origin 0 = itself. */
static int
init_meta(void *ctx, cvg__store_txn *mt)
{
    cvg_replica *r = ctx;
    cvg__store *s = &r->store;
    s->checksummed = true; /* a new replica is of the current format */
    int rc = cvg__meta_put_id(s, mt, &r->id);
    if (rc == CVG_OK) {
        cvg_bytes pk = {r->pk, sizeof r->pk};
        rc = cvg__meta_put(s, mt, "pk", pk);
    }
    const char *names[] = {"hlc", "lsn", "gen"};
    for (size_t i = 0; rc == CVG_OK && i < 3; i++) {
        rc = cvg__meta_put_u64(s, mt, names[i], 0);
    }
    if (rc == CVG_OK) {
        rc = cvg__origins_put(s, mt, 0, &r->id, 0);
    }
    if (rc == CVG_OK) {
        rc = cvg__meta_put_u64(s, mt, "format", CVG_FORMAT_VERSION);
    }
    return rc;
}

/* Write a new replica's meta records, unless another process made them
 * first (then its id is the one read back). */
static int
create_if_missing(void *ctx, cvg__store_txn *mt)
{
    cvg_replica *r = ctx;
    uint64_t format = 0;
    int rc = cvg__meta_get_u64(&r->store, mt, "format", &format);
    if (rc == CVG_ENOTFOUND) {
        rc = init_meta(r, mt);
    }
    return rc;
}

/* Format 2 to 3, 4 or 5: nothing to rewrite (CVG_FORMAT_VERSION), only the
 * record that says blocks of version 3 or 4, a journal (src/oplog/journal.c)
 * or a seq in the meta record "ahead" (oplog_int.h) may follow, so that an
 * older library refuses the replica at open rather than meet a block it
 * cannot read, miss state the journal holds or give a new op a seq that
 * is taken. */
static int
raise_format(void *ctx, cvg__store_txn *mt)
{
    cvg_replica *r = ctx;
    uint64_t format = 0;
    int rc = cvg__meta_get_u64(&r->store, mt, "format", &format);
    if (rc != CVG_OK || format >= CVG_FORMAT_VERSION) {
        return rc; /* another process raised it first */
    }
    return cvg__meta_put_u64(&r->store, mt, "format", CVG_FORMAT_VERSION);
}

/* The stored public key, if the replica has one (made by 0.2 on). */
static int
load_pk(cvg_replica *r, cvg__store_txn *mt)
{
    cvg_bytes pk;
    int rc = cvg__meta_get(&r->store, mt, "pk", &pk);
    if (rc == CVG_ENOTFOUND) {
        r->has_pk = false;
        return CVG_OK;
    }
    if (rc == CVG_OK && pk.len != sizeof r->pk) {
        rc = CVG_ECORRUPT;
    }
    if (rc == CVG_OK) {
        memcpy(r->pk, pk.data, sizeof r->pk);
        r->has_pk = true;
    }
    /* The extra bytes of an origin taken by a copy (home.c). */
    cvg_bytes inc;
    int irc = rc == CVG_OK ? cvg__meta_get(&r->store, mt, "inc", &inc) : rc;
    if (irc == CVG_OK && inc.len == sizeof r->inc) {
        memcpy(r->inc, inc.data, sizeof r->inc);
        r->inc_len = sizeof r->inc;
    } else if (irc == CVG_OK) {
        rc = CVG_ECORRUPT;
    } else if (irc != CVG_ENOTFOUND) {
        rc = irc;
    }
    return rc;
}

static int
load_meta(cvg_replica *r, const char *dir)
{
    cvg__store *s = &r->store;
    cvg__store_txn *mt;
    int rc = cvg__store_begin(s, false, &mt);
    if (rc != CVG_OK) {
        return cvg__replica_fail(r, rc, "cannot begin a transaction");
    }
    uint64_t format = 0;
    rc = cvg__meta_get_u64(s, mt, "format", &format);
    if (rc == CVG_ENOTFOUND && !r->opts.read_only) {
        /* A new replica. Another process may be creating it at the same
         * time: the write transaction serializes us, and init_meta is only
         * written if the format record is still missing then. */
        cvg__store_abort(mt);
        rc = cvg__identity_create(r, dir);
        if (rc != CVG_OK) {
            return rc;
        }
        rc = cvg__store_write(s, false, create_if_missing, r);
        if (rc != CVG_OK) {
            return cvg__replica_fail(r, rc, "cannot create the replica");
        }
        rc = cvg__store_begin(s, false, &mt);
        if (rc != CVG_OK) {
            return cvg__replica_fail(r, rc, "cannot begin a transaction");
        }
        rc = cvg__meta_get_u64(s, mt, "format", &format);
    }
    if (rc != CVG_OK) {
        cvg__store_abort(mt);
        return cvg__replica_fail(r, rc == CVG_ENOTFOUND ? CVG_ECORRUPT : rc,
                                 "not a converge replica (no format record)");
    }
    if (format > CVG_FORMAT_VERSION) {
        cvg__store_abort(mt);
        return cvg__replica_fail(
            r, CVG_EVERSION,
            "replica format %llu is newer than this library's %d",
            (unsigned long long)format, CVG_FORMAT_VERSION);
    }
    if (format == 0) {
        cvg__store_abort(mt);
        return cvg__replica_fail(r, CVG_ECORRUPT, "bad format record");
    }
    if (format == 1 && !r->opts.read_only) {
        /* Made before records had checksums: give them theirs now. A
         * read-only open reads it as it is. */
        cvg__store_abort(mt);
        rc = cvg__ck_upgrade(s);
        if (rc != CVG_OK) {
            return cvg__replica_fail(r, rc,
                                     "cannot upgrade the replica from "
                                     "format 1");
        }
        rc = cvg__store_begin(s, false, &mt);
        if (rc != CVG_OK) {
            return cvg__replica_fail(r, rc, "cannot begin a transaction");
        }
        format = 2;
    }
    if (format < CVG_FORMAT_VERSION && !r->opts.read_only) {
        cvg__store_abort(mt);
        rc = cvg__store_write(s, false, raise_format, r);
        if (rc != CVG_OK) {
            return cvg__replica_fail(r, rc,
                                     "cannot upgrade the replica from "
                                     "format %llu",
                                     (unsigned long long)format);
        }
        rc = cvg__store_begin(s, false, &mt);
        if (rc != CVG_OK) {
            return cvg__replica_fail(r, rc, "cannot begin a transaction");
        }
    }
    rc = cvg__meta_get_id(s, mt, &r->id);
    if (rc != CVG_OK) {
        cvg__store_abort(mt);
        return cvg__replica_fail(r, rc, "replica id missing");
    }
    rc = load_pk(r, mt);
    if (rc != CVG_OK) {
        cvg__store_abort(mt);
        return cvg__replica_fail(r, rc,
                                 "the replica's public key record "
                                 "is damaged");
    }
    rc = cvg__identity_check(r, dir);
    if (rc != CVG_OK) {
        cvg__store_abort(mt);
        return rc;
    }
    r->gen = UINT64_MAX; /* nothing loaded yet */
    rc = cvg__replica_refresh(r, mt);
    cvg__store_abort(mt);
    return rc == CVG_OK ? cvg__home_check(r) : rc;
}

static int
open_fail(int rc, const char *why)
{
    snprintf(open_errmsg, sizeof open_errmsg, "%s", why);
    return rc;
}

int
cvg_replica_open(const char *path, const cvg_replica_options *opts,
                 cvg_replica **out)
{
    open_errmsg[0] = '\0';
    if (out == NULL) {
        return open_fail(CVG_EINVAL, "NULL out");
    }
    *out = NULL;
    cvg_replica_options defaults;
    if (opts == NULL) {
        cvg_replica_options_init(&defaults);
        opts = &defaults;
    }
    if (path == NULL || path[0] == '\0') {
        return open_fail(CVG_EINVAL, "no path");
    }
    if (opts->version == 0 || opts->version > CVG_OPTIONS_VERSION ||
        (opts->durability != CVG_DURABLE && opts->durability != CVG_RELAXED)) {
        return open_fail(CVG_EINVAL,
                         "options of an unknown version or "
                         "durability");
    }
    if (sodium_init() < 0) {
        return open_fail(CVG_EIO, "libsodium cannot start");
    }
    cvg_replica *r = cvg__calloc(1, sizeof *r);
    if (r == NULL) {
        return open_fail(CVG_ENOMEM, "out of memory");
    }
    if (cvg__group_init(r) != CVG_OK) {
        cvg__free(r);
        return open_fail(CVG_ENOMEM, "cannot make the replica's lock");
    }
    r->opts = *opts;
    if (r->opts.clock == NULL) {
        r->opts.clock = wall_clock_ms;
    }
    if (r->opts.max_clock_ahead_ms == 0) {
        r->opts.max_clock_ahead_ms = 60000;
    }
    r->opts.policies = NULL; /* ours are copied below; the caller's may go */
    int rc = cvg__policies_copy(r, opts);
    if (rc != CVG_OK) {
        cvg_replica_close(r);
        return rc;
    }
    rc =
        cvg__store_open(&r->store, path, &r->opts, r->errmsg, sizeof r->errmsg);
    if (rc == CVG_OK) {
        rc = load_meta(r, path);
    }
    if (rc == CVG_OK) {
        rc = cvg__policies_settle(r, opts->replace_policies);
    }
    if (rc != CVG_OK) {
        snprintf(open_errmsg, sizeof open_errmsg, "%s",
                 r->errmsg[0] ? r->errmsg : cvg_strerror(rc));
        cvg_replica_close(r);
        return rc;
    }
    r->errmsg[0] = '\0';
    r->store.checkpoint_at_close = true;
    *out = r;
    return CVG_OK;
}

void
cvg_replica_close(cvg_replica *r)
{
    if (r == NULL) {
        return;
    }
    cvg__hook_close(r);
    cvg__store_close(&r->store);
    cvg__identity_forget(r);
    cvg__policies_free(r);
    cvg__replica_history_free(r);
    cvg__origins_destroy(&r->origins);
    cvg__vv_destroy(&r->vv);
    cvg__block_writer_destroy(&r->tail);
    cvg__group_destroy(r);
    cvg__free(r);
}

int
cvg_replica_flush(cvg_replica *r)
{
    if (r == NULL) {
        return CVG_EINVAL;
    }
    int rc = cvg__replica_store_hook(r);
    if (rc != CVG_OK) {
        return cvg__replica_fail(r, rc, "cannot store the sync status: %s",
                                 cvg_strerror(rc));
    }
    rc = cvg__store_flush(&r->store);
    if (rc != CVG_OK) {
        return cvg__replica_fail(r, rc, "sync to disk failed");
    }
    return CVG_OK;
}

static int stats_fill(cvg_replica *r, cvg_replica_stats *out);

int
cvg_replica_stats_get(cvg_replica *r, cvg_replica_stats *out, size_t size)
{
    /* The caller's struct may be older (smaller) than ours: it gets the
     * fields it knows. */
    if (r == NULL || out == NULL || size < sizeof(cvg_replica_stats)) {
        return CVG_EINVAL;
    }
    cvg_replica_stats full;
    int rc = stats_fill(r, &full);
    memset(out, 0, size);
    if (rc == CVG_OK) {
        memcpy(out, &full, sizeof full);
    }
    return rc;
}

static int
stats_fill(cvg_replica *r, cvg_replica_stats *out)
{
    memset(out, 0, sizeof *out);
    cvg__store_txn *mt;
    int rc = cvg__store_begin(&r->store, false, &mt);
    if (rc != CVG_OK) {
        return cvg__replica_fail(r, rc, "cannot begin a read transaction");
    }
    if (r->writer == NULL) {
        rc = cvg__replica_refresh(r, mt);
    }
    uint64_t file_bytes, map_bytes;
    cvg__store_usage(&r->store, &file_bytes, &map_bytes);
    cvg__store_abort(mt);
    if (rc != CVG_OK) {
        return rc;
    }
    out->op_count = r->last_lsn;
    out->last_lsn = r->last_lsn;
    out->file_bytes = file_bytes;
    out->map_bytes = map_bytes;
    out->hlc = r->clock;
    out->origins = r->origins.n;
    return CVG_OK;
}
