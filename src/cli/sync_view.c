/*
 * A replica's sync state per peer, as `status` and `queue` show it: the
 * peers it has synced with and, for each, its key, the address it was last
 * seen at and when, how many of our own ops are pending, syncing,
 * committed or failed there, with the times and the error of the last
 * session. Keys print as hex, as `id` prints them.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* The peer list, asked for twice: once for its size, once to fill. Another
 * process may sync with a new peer in between, so ask until it fits. */
static int
read_peer_ids(cvg_replica *r, cvg_replica_id **out, size_t *n)
{
    cvg_replica_id *ids = NULL;
    size_t cap = 0;
    for (;;) {
        size_t count;
        int rc = cvg_sync_peers(r, ids, cap, &count);
        if (rc != CVG_OK) {
            free(ids);
            return rc;
        }
        if (count <= cap) {
            *out = ids;
            *n = count;
            return CVG_OK;
        }
        free(ids);
        cap = count;
        ids = calloc(cap, sizeof *ids);
        if (ids == NULL) {
            return CVG_ENOMEM;
        }
    }
}

int
cli_sync_read(cvg_replica *r, cli_peer **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    cvg_replica_id *ids;
    size_t count;
    int rc = read_peer_ids(r, &ids, &count);
    if (rc != CVG_OK) {
        return rc;
    }
    /* One spare entry so that no peers is still a non-NULL array. */
    cli_peer *peers = calloc(count + 1, sizeof *peers);
    rc = peers == NULL ? CVG_ENOMEM : CVG_OK;
    for (size_t i = 0; rc == CVG_OK && i < count; i++) {
        peers[i].id = ids[i];
        rc = cvg_sync_status_get(r, &ids[i], &peers[i].status,
                                 sizeof peers[i].status);
    }
    free(ids);
    if (rc != CVG_OK) {
        free(peers);
        return rc;
    }
    *out = peers;
    *n = count;
    return CVG_OK;
}

const cli_peer *
cli_sync_find(const cli_peer *peers, size_t n, const cvg_replica_id *id)
{
    for (size_t i = 0; i < n; i++) {
        if (memcmp(peers[i].id.bytes, id->bytes, sizeof id->bytes) == 0) {
            return &peers[i];
        }
    }
    return NULL;
}

const char *
cli_sync_state_name(cvg_sync_state state)
{
    switch (state) {
    case CVG_SYNC_OFFLINE:
        return "offline";
    case CVG_SYNC_SYNCED:
        return "synced";
    case CVG_SYNC_SYNCING:
        return "syncing";
    case CVG_SYNC_ERROR:
        return "error";
    }
    return "unknown"; /* from a newer library */
}

/* Wall milliseconds as ISO-8601 UTC (2024-05-01T12:00:00.123Z) into @p buf;
 * false for 0, which the library uses for "never". A time too far off for
 * the calendar falls back to the raw number rather than failing. */
static bool
format_time(uint64_t ms, char *buf, size_t size)
{
    if (ms == 0) {
        snprintf(buf, size, "never");
        return false;
    }
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    size_t len = 0;
    if ((uint64_t)secs == ms / 1000 && gmtime_r(&secs, &tm) != NULL) {
        len = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    }
    if (len == 0) {
        snprintf(buf, size, "%" PRIu64 "ms", ms);
    } else {
        snprintf(buf + len, size - len, ".%03uZ", (unsigned)(ms % 1000));
    }
    return true;
}

/* The peer's address as bytes: the library's array holds a NUL, but
 * nothing past its size is read whatever it holds. */
static cvg_bytes
address_of(const cvg_sync_status *s)
{
    const char *nul = memchr(s->address, '\0', sizeof s->address);
    size_t len = nul != NULL ? (size_t)(nul - s->address) : sizeof s->address;
    return (cvg_bytes){(const uint8_t *)s->address, len};
}

/* Seconds from @p ms to now by this machine's clock: "12 s ago", or
 * "3 s ahead" for a time past now (a clock set back since, or a replica
 * directory brought from a machine whose clock ran ahead). */
static void
format_ago(uint64_t ms, char *buf, size_t size)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now =
        (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    if (now >= ms) {
        snprintf(buf, size, "%" PRIu64 " s ago", (now - ms) / 1000u);
    } else {
        snprintf(buf, size, "%" PRIu64 " s ahead", (ms - now) / 1000u);
    }
}

void
cli_print_peer(FILE *f, const char *indent, const cli_peer *p)
{
    const cvg_sync_status *s = &p->status;
    char hex[33], last_sync[48], last_attempt[48], contact[48], ago[48];
    cvg_replica_id_hex(&p->id, hex);
    format_time(s->last_sync_ms, last_sync, sizeof last_sync);
    format_time(s->last_attempt_ms, last_attempt, sizeof last_attempt);
    fprintf(f, "%speer          %s\n", indent, hex);
    fprintf(f, "%skey           ", indent);
    if (s->has_key) {
        cli_print_hex(f, s->key, sizeof s->key);
        fputc('\n', f);
    } else {
        fputs("unknown\n", f);
    }
    cvg_bytes addr = address_of(s);
    fprintf(f, "%saddress       ", indent);
    if (addr.len > 0) {
        cli_print_name(f, addr);
        fputc('\n', f);
    } else {
        fputs("unknown\n", f);
    }
    if (format_time(s->last_contact_ms, contact, sizeof contact)) {
        format_ago(s->last_contact_ms, ago, sizeof ago);
        fprintf(f, "%slast contact  %s (%s)\n", indent, contact, ago);
    } else {
        fprintf(f, "%slast contact  %s\n", indent, contact);
    }
    fprintf(f, "%sstate         %s\n", indent, cli_sync_state_name(s->state));
    fprintf(f, "%spending       %" PRIu64 "\n", indent, s->pending);
    fprintf(f, "%ssyncing       %" PRIu64 "\n", indent, s->syncing);
    fprintf(f, "%scommitted     %" PRIu64 "\n", indent, s->committed);
    fprintf(f, "%sfailed        %" PRIu64 "\n", indent, s->failed);
    fprintf(f, "%slast sync     %s\n", indent, last_sync);
    fprintf(f, "%slast attempt  %s\n", indent, last_attempt);
    fprintf(f, "%slast error    %s\n", indent,
            s->last_error == CVG_OK ? "none" : cvg_errname(s->last_error));
}

/* "name":"2024-...Z","name_ms":N, with null for never. */
static void
json_time(FILE *f, const char *name, uint64_t ms)
{
    char buf[48];
    if (format_time(ms, buf, sizeof buf)) {
        fprintf(f, ",\"%s\":\"%s\"", name, buf);
    } else {
        fprintf(f, ",\"%s\":null", name);
    }
    fprintf(f, ",\"%s_ms\":%" PRIu64, name, ms);
}

void
cli_json_peer(FILE *f, const cli_peer *p)
{
    const cvg_sync_status *s = &p->status;
    char hex[33];
    cvg_replica_id_hex(&p->id, hex);
    fprintf(f,
            "\"peer\":\"%s\",\"state\":\"%s\",\"pending\":%" PRIu64
            ",\"syncing\":%" PRIu64 ",\"committed\":%" PRIu64
            ",\"failed\":%" PRIu64,
            hex, cli_sync_state_name(s->state), s->pending, s->syncing,
            s->committed, s->failed);
    if (s->has_key) {
        fputs(",\"key\":\"", f);
        cli_print_hex(f, s->key, sizeof s->key);
        fputc('"', f);
    } else {
        fputs(",\"key\":null", f);
    }
    cvg_bytes addr = address_of(s);
    fputs(",\"address\":", f);
    if (addr.len > 0) {
        cli_json_string(f, addr.data, addr.len);
    } else {
        fputs("null", f);
    }
    json_time(f, "last_contact", s->last_contact_ms);
    json_time(f, "last_sync", s->last_sync_ms);
    json_time(f, "last_attempt", s->last_attempt_ms);
    if (s->last_error == CVG_OK) {
        fputs(",\"last_error\":null", f);
    } else {
        fprintf(f, ",\"last_error\":\"%s\"", cvg_errname(s->last_error));
    }
}
