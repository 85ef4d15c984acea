/* libFuzzer target: any bytes as a sync message. A message that decodes
 * must encode to exactly the same bytes (the reader accepts one form
 * only), and its blocks go through the op decoder. */
#include <stdlib.h>
#include <string.h>

#include "sync/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cvg__msg_scratch s;
    memset(&s, 0, sizeof s);
    cvg__msg m;
    if (cvg__msg_decode(data, size, &m, &s) == CVG_OK) {
        cvg__buf out;
        memset(&out, 0, sizeof out);
        if (cvg__msg_encode(&m, &out) != CVG_OK || out.len != size ||
            memcmp(out.p, data, size) != 0) {
            abort();
        }
        cvg__buf_free(&out);
        for (size_t i = 0; i < m.n_blocks; i++) {
            cvg__block_reader rd;
            memset(&rd, 0, sizeof rd);
            cvg__op op;
            if (cvg__block_open(&rd, m.blocks[i].data, m.blocks[i].len) ==
                CVG_OK) {
                while (cvg__block_next(&rd, &op) == CVG_OK) {
                }
            }
            cvg__block_reader_destroy(&rd);
        }
    }
    cvg__msg_scratch_destroy(&s);
    return 0;
}
