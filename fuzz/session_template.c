/* The starting replica of fuzz_session (see session_template.h). */
#include "session_template.h"

#include <stdlib.h>

void
session_template_build(fuzz_snapshot *local, fuzz_snapshot *third)
{
    fuzz_now_ms = FUZZ_EPOCH_MS;
    fuzz_remove("template-local");
    fuzz_remove("template-third");
    cvg_replica *a = fuzz_open("template-local", SESSION_ID_LOCAL);
    cvg_replica *c = fuzz_open("template-third", SESSION_ID_THIRD);
    fuzz_write_every_type(a, "local");
    fuzz_write_every_type(c, "third");
    fuzz_sync(a, c);
    /* Written after the sync: the third replica has not seen these, so a
     * peer relaying its ops sends writes concurrent with them. */
    fuzz_now_ms += 1000;
    fuzz_write_every_type(c, "third-late");
    fuzz_write_every_type(a, "local-late");
    cvg_replica_close(a);
    cvg_replica_close(c);
    if (local != NULL) {
        fuzz_snapshot_take("template-local", local);
    }
    if (third != NULL) {
        fuzz_snapshot_take("template-third", third);
    }
    fuzz_remove("template-local");
    fuzz_remove("template-third");
    fuzz_now_ms = SESSION_NOW_MS;
}

void
session_options_from(uint8_t b, cvg_session_options *o)
{
    static const uint32_t page_ops[8] = {8, 1, 2, 3, 16, 64, 4096, 65536};
    cvg_session_options_init(o);
    o->page_ops = page_ops[b & 7];
    o->no_pull = (b & 8) != 0;
    o->no_serve = (b & 16) != 0;
    if (b & 32) {
        o->page_bytes = 256;
    }
    o->push = (b & 64) != 0;
}
