/*
 * What the public functions returned, for tests/api/check_codes.c. Every
 * call of a status-returning function in a test goes through
 * cvg_test_rc_seen() (the macros of the generated rc_wrap.h). With
 * CVG_TEST_RC_DIR set, each (function, code) pair a process meets for the
 * first time is appended to a file of its own in that directory, in one
 * write(2) with O_APPEND, so that parallel tests and Criterion's forked
 * test processes never interleave lines.
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "converge.h"

int cvg_test_rc_seen(const char *fn, int rc);

#define SEEN_MAX 4096

static struct {
    const char *fn; /* a string literal of the macro */
    int rc;
} seen[SEEN_MAX];
static size_t nseen;
static pid_t seen_pid;

int
cvg_test_rc_seen(const char *fn, int rc)
{
    const char *dir = getenv("CVG_TEST_RC_DIR");
    if (dir == NULL || rc == CVG_OK) {
        return rc;
    }
    if (seen_pid != getpid()) { /* a forked test: its own set and file */
        seen_pid = getpid();
        nseen = 0;
    }
    for (size_t i = 0; i < nseen; i++) {
        if (seen[i].rc == rc && strcmp(seen[i].fn, fn) == 0) {
            return rc;
        }
    }
    if (nseen < SEEN_MAX) {
        seen[nseen].fn = fn;
        seen[nseen].rc = rc;
        nseen++;
    }
    char path[4096], line[256];
    snprintf(path, sizeof path, "%s/rc-%ld.txt", dir, (long)getpid());
    int n = snprintf(line, sizeof line, "%s %s\n", fn, cvg_errname(rc));
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0 && n > 0) {
        ssize_t w = write(fd, line, (size_t)n);
        (void)w;
    }
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}
