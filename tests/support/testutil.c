#define _XOPEN_SOURCE 700
#include "testutil.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
