/* libFuzzer target: any bytes as an op block. Decoding must end in an op
 * list or an error, never a crash, an over-read or a huge allocation; what
 * decodes must encode again and decode to the same ops. */
#include <stdlib.h>
#include <string.h>

#include "oplog/oplog_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cvg__block_reader rd;
    memset(&rd, 0, sizeof rd);
    cvg__block_writer w;
    memset(&w, 0, sizeof w);
    if (cvg__block_open(&rd, data, size) == CVG_OK) {
        bool writing = cvg__block_begin(&w, &rd.origin, rd.first_seq) == CVG_OK;
        cvg__op op;
        int rc;
        while ((rc = cvg__block_next(&rd, &op)) == CVG_OK) {
            /* An op the reader accepts is one the writer accepts. */
            if (writing && cvg__block_add(&w, &op) != CVG_OK) {
                abort();
            }
        }
        cvg_bytes again;
        if (rc == CVG_DONE && writing &&
            cvg__block_finish(&w, &again) == CVG_OK) {
            cvg__block_reader rd2;
            memset(&rd2, 0, sizeof rd2);
            if (cvg__block_open(&rd2, again.data, again.len) != CVG_OK) {
                abort();
            }
            while ((rc = cvg__block_next(&rd2, &op)) == CVG_OK) {
            }
            if (rc != CVG_DONE || rd2.count != rd.count) {
                abort();
            }
            cvg__block_reader_destroy(&rd2);
        }
    }
    cvg__block_writer_destroy(&w);
    cvg__block_reader_destroy(&rd);
    return 0;
}
