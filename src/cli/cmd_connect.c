/*
 * `converge connect DIR tcp://HOST:PORT [--pin KEY] [--interval MS]
 * [--for SECONDS]`: keep the replica in sync with a server, in the
 * foreground, through the background syncer of converge/net.h.
 *
 * The syncer keeps a live session with the server; its thread calls back
 * at each change of state and the callback prints one line. This thread
 * only waits for SIGINT, SIGTERM or the end of --for (a bounded run, for
 * scripts and tests), then stops the syncer, which ends the session at a
 * page boundary. The exit code says where it stood: 0 caught up with the
 * server when stopped, 1 not (or it never was).
 */
#define _XOPEN_SOURCE 700
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "converge/net.h"

#include "cli.h"

static volatile sig_atomic_t stop_asked;

static void
on_signal(int sig)
{
    (void)sig;
    stop_asked = 1;
}

/* What the callback saw last; main() reads it once the syncer stopped. */
typedef struct last_round {
    bool ran;                /* a connection got anywhere, or failed */
    bool synced;             /* caught up, as last reported */
    bool shown;              /* a line was printed ... */
    cvg_syncer_state status; /* ... for this state */
} last_round;

static const char *
state_name(cvg_syncer_state s)
{
    switch (s) {
    case CVG_SYNCER_CONNECTING:
        return "CONNECTING";
    case CVG_SYNCER_SYNCING:
        return "SYNCING";
    case CVG_SYNCER_SYNCED:
        return "SYNCED";
    case CVG_SYNCER_OFFLINE:
        return "OFFLINE";
    default:
        return "ERROR";
    }
}

/* On the syncer's thread: a line per change of state, and per catch-up
 * that moved ops; a catch-up that moves nothing (SYNCED, SYNCING, SYNCED)
 * prints nothing. The OFFLINE with no error that ends a stop while caught
 * up keeps the state synced. */
static void
on_status(void *ctx, const cvg_syncer_event *e)
{
    last_round *last = ctx;
    bool moved = e->ops_received + e->ops_sent > 0;
    bool again = last->shown && last->status == CVG_SYNCER_SYNCED &&
                 (e->state == CVG_SYNCER_SYNCING ||
                  (e->state == CVG_SYNCER_SYNCED && !moved));
    if (e->state == CVG_SYNCER_SYNCED) {
        last->ran = last->synced = true;
    } else if (e->state == CVG_SYNCER_OFFLINE && e->rc == CVG_OK) {
        /* stopped while caught up */
    } else if (e->state == CVG_SYNCER_OFFLINE || e->state == CVG_SYNCER_ERROR) {
        last->ran = true;
        last->synced = false;
    }
    if (again) {
        return;
    }
    last->shown = true;
    last->status = e->state;
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    printf("%02d:%02d:%02d.%03ld %s", tm.tm_hour, tm.tm_min, tm.tm_sec,
           ts.tv_nsec / 1000000, state_name(e->state));
    if (e->state == CVG_SYNCER_SYNCED) {
        printf(" ops in %llu, out %llu; next in %u ms",
               (unsigned long long)e->ops_received,
               (unsigned long long)e->ops_sent, e->next_ms);
    } else if (e->state == CVG_SYNCER_OFFLINE && e->rc == CVG_OK) {
        printf(" stopped, caught up");
    } else if (e->state == CVG_SYNCER_OFFLINE || e->state == CVG_SYNCER_ERROR) {
        printf(" %s: %s; failure %u, retry in %u ms", cvg_errname(e->rc),
               e->message, e->failures, e->next_ms);
    }
    putchar('\n');
    fflush(stdout); /* a line as it happens, also into a pipe */
}

/* --NAME VALUE options, -h, "--"; DIR and URL into pos. */
static int
parse(int argc, char **argv, const char **vals, char **pos)
{
    static const char *const names[] = {"--pin", "--interval", "--for"};
    int npos = 0;
    bool opts = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (opts && strcmp(a, "--") == 0) {
            opts = false;
        } else if (opts && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
            return CLI_EXIT_HELP;
        } else if (opts && a[0] == '-' && a[1] != '\0') {
            size_t k = 0;
            while (k < 3 && strcmp(a, names[k]) != 0) {
                k++;
            }
            if (k == 3) {
                return cli_usage(argv[0], "unknown option '%s'", a);
            }
            if (i + 1 >= argc) {
                return cli_usage(argv[0], "%s needs a value", a);
            }
            vals[k] = argv[++i];
        } else if (npos < 2) {
            pos[npos++] = argv[i];
        } else {
            return cli_usage(argv[0], "unexpected argument '%s'", a);
        }
    }
    if (npos != 2) {
        return cli_usage(argv[0], "expected DIR tcp://HOST:PORT");
    }
    return CLI_EXIT_OK;
}

static int
options(const char *cmd, const char **vals, cvg_syncer_options *o, uint8_t *pin,
        uint64_t *for_s)
{
    uint64_t n;
    if (vals[0] != NULL) {
        if (!cli_parse_key(vals[0], pin)) {
            return cli_usage(cmd, "--pin '%s' is not 64 hex digits", vals[0]);
        }
        o->net.server_key = pin;
    }
    if (vals[1] != NULL) {
        if (!cli_parse_u64(vals[1], &n) || n == 0 || n > UINT32_MAX) {
            return cli_usage(cmd, "--interval '%s' is not a number of ms",
                             vals[1]);
        }
        o->interval_ms = (uint32_t)n;
    }
    *for_s = 0;
    if (vals[2] != NULL) {
        if (!cli_parse_u64(vals[2], for_s) || *for_s == 0 ||
            *for_s > 100000000) {
            return cli_usage(cmd, "--for '%s' is not a number of seconds",
                             vals[2]);
        }
    }
    return CLI_EXIT_OK;
}

static double
mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
cmd_connect(int argc, char **argv)
{
    const char *vals[3] = {NULL, NULL, NULL};
    char *pos[2];
    int code = parse(argc, argv, vals, pos);
    if (code != CLI_EXIT_OK) {
        return code;
    }
    cvg_syncer_options o;
    cvg_syncer_options_init(&o);
    uint8_t pin[CVG_PUBLIC_KEY_BYTES];
    uint64_t for_s;
    code = options(argv[0], vals, &o, pin, &for_s);
    if (code != CLI_EXIT_OK) {
        return code;
    }
    last_round last = {false, false, false, CVG_SYNCER_CONNECTING};
    o.url = pos[1];
    o.on_status = on_status;
    o.ctx = &last;
    cvg_replica *r;
    code = cli_open(argv[0], pos[0], CLI_WRITE, &r);
    if (code != CLI_EXIT_OK) {
        return code;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    cvg_syncer *s;
    int rc = cvg_syncer_start(r, &o, &s);
    if (rc != CVG_OK) {
        code = rc == CVG_EINVAL
                   ? cli_usage(argv[0], "'%s' is not tcp://HOST:PORT", pos[1])
                   : cli_fail(argv[0], rc, NULL);
        cvg_replica_close(r);
        return code;
    }
    /* The syncer's thread takes no signals: they come here. */
    double end = mono_s() + (double)for_s;
    struct timespec tick = {0, 50 * 1000 * 1000};
    while (!stop_asked && (for_s == 0 || mono_s() < end)) {
        nanosleep(&tick, NULL);
    }
    cvg_syncer_stop(s);
    cvg_replica_close(r);
    if (!last.synced) {
        fprintf(stderr, "converge: %s: %s\n", argv[0],
                last.ran ? "not in sync with the server when stopped"
                         : "never reached the server");
        return CLI_EXIT_ERR;
    }
    return CLI_EXIT_OK;
}
