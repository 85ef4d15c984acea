#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void
remove_tree(const char *path)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) {
        /* Nothing to do: the next mkdir reports the real problem. */
    }
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
