/* What fuzz_channel.c shares with its seed recorder (channel_seeds.c): the
 * fixed keys and payloads of both sides, and one run of the target. */
#ifndef CVG_FUZZ_CHANNEL_H
#define CVG_FUZZ_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/channel.h"

/* The first byte of an input. */
#define FUZZ_CHANNEL_INITIATOR 0x01u /* else the channel is a responder */
#define FUZZ_CHANNEL_PIN 0x02u       /* it pins the peer's key */
#define FUZZ_CHANNEL_CHUNK_SHIFT 2   /* bits 2-7: chunk size, 0 = whole */

/* The cap on a message in fuzzed channels: a little over one frame, so
 * that the seeds can cross it. */
#define FUZZ_CHANNEL_CAP 100000u

/* The options of the initiator or the responder: fixed static and
 * ephemeral keys and handshake payloads, so a recorded transcript
 * replays; @p pin: pin the other side's key. */
void fuzz_channel_options(cvg__channel_options *o, bool initiator, bool pin);

/* Run one input; the messages the channel delivered go to *delivered and
 * its final state to *state. Aborts when the channel breaks its
 * contract. */
void fuzz_channel_run(const uint8_t *data, size_t size, size_t *delivered,
                      cvg__channel_state *state);

#endif
