/* What the replica-level fuzz targets share: replicas whose ids and clock
 * depend on nothing but the input (so a crash replays), a scratch
 * directory per process, copies of a replica file, and the checks that
 * end a run with an abort (the harness may abort; the library never). */
#ifndef CVG_FUZZ_UTIL_H
#define CVG_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "converge.h"

/* The wall clock every fuzzed replica reads (ms since 1970); targets may
 * move it. Fixed, so that "too far ahead" means the same in every run. */
#define FUZZ_EPOCH_MS 1700000000000ull
extern uint64_t fuzz_now_ms;

/* Once per process: make replica ids deterministic (libsodium's random
 * source is replaced before the library initializes it) and create the
 * scratch directory (in /dev/shm when it exists, removed at exit). */
void fuzz_init(void);

/* The ids of replicas created from now on derive from @p seed alone. */
void fuzz_ids_from(uint64_t seed);

/* The path of @p name in the scratch directory (static storage, valid
 * until the next call). */
const char *fuzz_path(const char *name);

/* Options for fuzzed replicas: the fuzz clock, durable mode (on tmpfs a
 * sync costs nothing, and the data file stays as small as its pages, so a
 * copy of it is cheap). */
void fuzz_options(cvg_replica_options *o);

/* Open (creating, with ids from @p id_seed) replica @p name; aborts on
 * failure. */
cvg_replica *fuzz_open(const char *name, uint64_t id_seed);

/* Delete replica @p name's files. */
void fuzz_remove(const char *name);

/* A replica's data file in memory, to start many runs from one state. */
typedef struct fuzz_snapshot {
    uint8_t *data;
    size_t len;
} fuzz_snapshot;

/* Read replica @p name's data file (it must be closed). */
void fuzz_snapshot_take(const char *name, fuzz_snapshot *out);
/* Make replica @p name a copy of @p snap (a fresh lock file too). */
void fuzz_snapshot_put(const char *name, const fuzz_snapshot *snap);

/* Write a few ops of every type (counter add, register and mvregister
 * set, set add and remove, record delete) into records of collection
 * "c" tagged @p tag, in one transaction; aborts on failure. */
void fuzz_write_every_type(cvg_replica *r, const char *tag);

/* Sync two replicas both ways; aborts on failure. */
void fuzz_sync(cvg_replica *a, cvg_replica *b);

/* The replica's whole state as canonical text (every record read, then the
 * version vector), after checking that its log reads to the end and holds
 * exactly the ops the version vector counts. Aborts on any error. Free
 * with free(). */
char *fuzz_digest(cvg_replica *r);

/* Print a reason and abort (a finding). */
void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)))
__attribute__((noreturn));

#endif
