/* The replica every input of fuzz_session starts from, and how an input's
 * first byte picks the session options. Shared with the program that
 * records the seed corpus, which must start from the very same replica for
 * its recorded sessions to replay. */
#ifndef CVG_FUZZ_SESSION_TEMPLATE_H
#define CVG_FUZZ_SESSION_TEMPLATE_H

#include "fuzz_util.h"

/* Id seeds: the fuzzed replica, the peer the seeds were recorded from,
 * and a third replica whose ops both have. */
#define SESSION_ID_LOCAL 1
#define SESSION_ID_PEER 2
#define SESSION_ID_THIRD 3
/* The random stream a fuzzed session's challenge is drawn from, fixed so
 * the proofs in recorded sessions hold when they are replayed. */
#define SESSION_CHALLENGE_SEED 77

/* The wall clock while a session runs: after every write of the template,
 * so the peer's honest ops are never "too far ahead". */
#define SESSION_NOW_MS (FUZZ_EPOCH_MS + 2000)

/* Build the replica under test ("local") and the third replica, and take
 * their data files (either out may be NULL). The local replica holds ops
 * of every type of its own and of the third replica, concurrent writes to
 * shared fields, and a sync position for the third. */
void session_template_build(fuzz_snapshot *local, fuzz_snapshot *third);

/* Session options from an input's first byte:
 *   bits 0-2  page_ops: 8, 1, 2, 3, 16, 64, 4096, 65536
 *   bit 3     no_pull
 *   bit 4     no_serve
 *   bit 5     page_bytes 256 (else the default, 1 MiB) */
void session_options_from(uint8_t b, cvg_session_options *o);

#endif
