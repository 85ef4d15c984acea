/*
 * The digest of a version vector, for peers that send each other only
 * what changed of theirs (src/sync/vv_sync.c): the receiver rebuilds the
 * whole vector from its memory and the change, and the digest tells
 * whether it rebuilt the one the sender has.
 *
 * It is a sum, mod 2^256, of one hash per entry, so a vector that changes
 * in k entries changes its digest in 2k hashes, and the replica keeps its
 * own up to date as it commits (no pass over 100,000 origins per sync).
 * The hash is BLAKE2b-256 of an 8-byte domain tag, the origin and the
 * big-endian seq: 32 bytes, one compression (a keyed BLAKE2b would take
 * two, its key filling a block of its own). A sum of hashes is not collision resistant
 * against someone who picks many entries (Wagner's generalized birthday
 * attack), and need not be here: the only vector a peer can get wrong
 * this way is its own, which it could simply lie about. Against stale or
 * damaged memory, a wrong vector passes with probability 2^-256.
 */
#include <sodium.h>

#include "crdt_int.h"

static const uint8_t SUM_TAG[8] = "cvg vv 1";

static void
add_limbs(cvg__vv_sum *s, const uint64_t x[4])
{
    unsigned carry = 0;
    for (int i = 0; i < 4; i++) {
        uint64_t a = s->w[i] + x[i];
        unsigned c1 = a < x[i];
        uint64_t b = a + carry;
        unsigned c2 = b < a;
        s->w[i] = b;
        carry = c1 | c2;
    }
}

void
cvg__vv_sum_entry(cvg__vv_sum *s, const cvg_replica_id *origin, uint64_t seq,
                  int sign)
{
    if (seq == 0) {
        return;
    }
    uint8_t in[32], h[32];
    memcpy(in, SUM_TAG, 8);
    memcpy(in + 8, origin->bytes, 16);
    cvg__put_be64(in + 24, seq);
    crypto_generichash(h, sizeof h, in, sizeof in, NULL, 0);
    uint64_t x[4];
    for (int i = 0; i < 4; i++) {
        x[i] = cvg__get_be64(h + 8 * i);
    }
    if (sign < 0) {
        /* Two's complement: ~x + 1, as limbs. */
        unsigned carry = 1;
        for (int i = 0; i < 4; i++) {
            x[i] = ~x[i] + carry;
            carry = carry && x[i] == 0;
        }
    }
    add_limbs(s, x);
}

void
cvg__vv_sum_of(const cvg_dot *e, size_t n, cvg__vv_sum *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < n; i++) {
        cvg__vv_sum_entry(out, &e[i].origin, e[i].seq, 1);
    }
}

void
cvg__vv_sum_on(cvg__vv *vv)
{
    if (!vv->summed) {
        cvg__vv_sum_of(vv->e, vv->n, &vv->sum);
        vv->summed = true;
    }
}

void
cvg__vv_sum_bytes(const cvg__vv_sum *s, uint8_t out[CVG__VV_SUM_BYTES])
{
    for (int i = 0; i < 4; i++) {
        cvg__put_be64(out + 8 * i, s->w[i]);
    }
}
