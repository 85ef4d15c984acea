/*
 * The replica directories this process has open. LMDB forbids opening one
 * environment twice in a process: its locks are fcntl() locks, owned by the
 * process, so closing either handle would drop them for both, and its
 * writer mutex is not recursive, so a second handle's write transaction
 * would wait forever on the first's. A second open of a directory is
 * refused instead (CVG_EBUSY). Directories are told apart by device and
 * inode, so another path to the same one is caught too.
 */
#include <pthread.h>

#include "oplog_int.h"

typedef struct dir_id {
    dev_t dev;
    ino_t ino;
} dir_id;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static dir_id *open_dirs;
static size_t n_open;
static size_t cap_open;

int
cvg__store_claim(dev_t dev, ino_t ino)
{
    int rc = CVG_OK;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n_open; i++) {
        if (open_dirs[i].dev == dev && open_dirs[i].ino == ino) {
            rc = CVG_EBUSY;
            break;
        }
    }
    if (rc == CVG_OK) {
        void *arr = open_dirs;
        rc = cvg__grow(&arr, &cap_open, n_open + 1, sizeof *open_dirs);
        open_dirs = arr;
    }
    if (rc == CVG_OK) {
        open_dirs[n_open].dev = dev;
        open_dirs[n_open].ino = ino;
        n_open++;
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

void
cvg__store_release(dev_t dev, ino_t ino)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n_open; i++) {
        if (open_dirs[i].dev == dev && open_dirs[i].ino == ino) {
            open_dirs[i] = open_dirs[--n_open];
            break;
        }
    }
    if (n_open == 0) {
        cvg__free(open_dirs); /* nothing left behind at exit */
        open_dirs = NULL;
        cap_open = 0;
    }
    pthread_mutex_unlock(&lock);
}
