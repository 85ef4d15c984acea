/*
 * Keyed hashing for the in-memory tables whose keys a peer can choose (the
 * transaction cache, the block writer's name dictionary, the origin table).
 * An unkeyed hash lets a peer craft names that all land in one probe chain
 * and turn every lookup linear; SipHash-2-4 (libsodium's crypto_shorthash)
 * under a key drawn at random once per process leaves it nothing to aim
 * at. The key never leaves the process and no hash is ever stored, so
 * replicas need not agree on it.
 */
#ifndef CVG_HASH_H
#define CVG_HASH_H

#include <stddef.h>
#include <stdint.h>

/* SipHash-2-4 of @p n bytes under the process's key. Never 0, so callers
 * may keep 0 for "no hash". Thread-safe; the first call draws the key. */
uint64_t cvg__hash(const void *p, size_t n);

#endif /* CVG_HASH_H */
