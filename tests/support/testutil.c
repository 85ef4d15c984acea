#define _XOPEN_SOURCE 700
#include "testutil.h"

#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int
remove_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    remove(path);
    return 0; /* keep going: the next mkdir reports a real problem */
}

static void
remove_tree(const char *path)
{
    nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *
cvg_test_dir(const char *name)
{
    static char path[4096];
    const char *base = getenv("CVG_TEST_TMP");
    if (base == NULL || base[0] == '\0') {
        base = "/tmp/converge-tests";
    }
    mkdir(base, 0700);
    snprintf(path, sizeof path, "%s/%s-%ld", base, name, (long)getpid());
    remove_tree(path);
    mkdir(path, 0700);
    return path;
}

uint64_t
cvg_test_seed(uint64_t dflt)
{
    const char *s = getenv("CVG_TEST_SEED");
    if (s != NULL && s[0] != '\0') {
        return strtoull(s, NULL, 0);
    }
    return dflt;
}

void
cvg_test_sleep_us(uint64_t us)
{
    struct timespec ts = {(time_t)(us / 1000000u),
                          (long)(us % 1000000u) * 1000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int
cvg_test_read_full(int fd, void *buf, size_t n, int timeout_ms)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd p = {fd, POLLIN, 0};
        int prc = poll(&p, 1, timeout_ms);
        if (prc < 0 && errno == EINTR) {
            continue;
        }
        if (prc <= 0) {
            return -1;
        }
        ssize_t k = read(fd, (char *)buf + got, n - got);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0) {
            return -1;
        }
        if (k == 0) {
            return got == 0 ? 0 : -1;
        }
        got += (size_t)k;
    }
    return 1;
}
