/*
 * `converge demo`: a guided tour for a new user, one scene per function and
 * the scenes in one table. It starts with two tills and a server that go
 * offline, change the same data and converge (demo_sync.c), then walks one
 * till through each type. Every op is printed the way `converge log` shows
 * it, so the log at the end reads as a recap.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

#define DEMO_PATH_MAX 4096

typedef struct demo {
    char dir[DEMO_PATH_MAX]; /* holds one directory per replica */
    char till1[DEMO_PATH_MAX];
    cvg_replica *r; /* till-1 */
} demo;

/* ---- Helpers ----------------------------------------------------------- */

static void
heading(const char *title)
{
    printf("\n== %s ==\n", title);
}

static int
show_stock(demo *d)
{
    static const char *const paths[] = {"stock/sku-1/qty", "stock/sku-2/qty"};
    static const cvg_type types[] = {CVG_TYPE_COUNTER, CVG_TYPE_COUNTER};
    return demo_show_committed(d->r, paths, types, 2);
}

/* ---- Scenes: each returns CVG_OK or the library code that stopped it ---- */

static int
scene_open(demo *d)
{
    int rc = cvg_replica_open(d->till1, NULL, &d->r);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg_replica_id id;
    char hex[33];
    cvg_replica_id_get(d->r, &id);
    cvg_replica_id_hex(&id, hex);
    printf("  replica till-1 in %s\n  id %s (from its Ed25519 public key)\n",
           d->till1, hex);
    puts(
        "  Every write is an op named by a dot, origin:seq (the origin\n"
        "  shortened to 8 hex digits here), stored in the op log and in the\n"
        "  merged state in one LMDB transaction.");
    return CVG_OK;
}

static int
scene_counters(demo *d)
{
    cvg_txn *txn;
    puts("  A delivery arrives (one transaction):");
    int rc = cvg_txn_begin(d->r, 0, &txn);
    if (rc != CVG_OK) {
        return rc;
    }
    rc = demo_inc(txn, "stock/sku-1/qty", 20);
    if (rc == CVG_OK) {
        rc = demo_inc(txn, "stock/sku-2/qty", 12);
    }
    if ((rc = demo_end(txn, rc)) != CVG_OK) {
        return rc;
    }
    puts("  A customer buys 2 of sku-1 and 1 of sku-2 (one transaction):");
    if ((rc = cvg_txn_begin(d->r, 0, &txn)) != CVG_OK) {
        return rc;
    }
    rc = demo_inc(txn, "stock/sku-1/qty", -2);
    if (rc == CVG_OK) {
        rc = demo_inc(txn, "stock/sku-2/qty", -1);
    }
    if (rc == CVG_OK) {
        rc = demo_inc(txn, "sales/till-1/items", 3);
    }
    if ((rc = demo_end(txn, rc)) != CVG_OK) {
        return rc;
    }
    puts(
        "  Counters add up deltas, so sales at many tills never overwrite\n"
        "  each other:");
    return show_stock(d);
}

static int
scene_registers(demo *d)
{
    cvg_txn *txn;
    int rc = cvg_txn_begin(d->r, 0, &txn);
    if (rc != CVG_OK) {
        return rc;
    }
    const cvg_op_kind lww = CVG_OP_REGISTER_SET, mv = CVG_OP_MVREGISTER_SET;
    rc = demo_op(txn, lww, "products/sku-1/price", cvg_value_double(2.5));
    if (rc == CVG_OK) {
        rc = demo_op(txn, lww, "products/sku-1/price", cvg_value_double(2.75));
    }
    if (rc == CVG_OK) {
        rc =
            demo_op(txn, mv, "products/sku-1/name", cvg_value_string("Coffee"));
    }
    if (rc == CVG_OK) {
        rc = demo_op(txn, mv, "products/sku-1/name",
                     cvg_value_string("Coffee beans"));
    }
    if ((rc = demo_end(txn, rc)) != CVG_OK) {
        return rc;
    }
    puts(
        "  The last-writer-wins register keeps one value; among concurrent\n"
        "  writes the highest (hybrid clock, origin) wins on every replica:");
    rc = demo_show_one(d->r, "products/sku-1/price", CVG_TYPE_REGISTER);
    if (rc != CVG_OK) {
        return rc;
    }
    puts(
        "  The multi-value register shows its siblings. A write replaces\n"
        "  every sibling this replica has seen, so here there is one;\n"
        "  writes made concurrently at other tills would stay side by side\n"
        "  after a sync:");
    return demo_show_one(d->r, "products/sku-1/name", CVG_TYPE_MVREGISTER);
}

static int
scene_set(demo *d)
{
    static const char *const tags[] = {"hot", "drink", "sale"};
    const char *path = "products/sku-1/tags";
    cvg_txn *txn;
    int rc = cvg_txn_begin(d->r, 0, &txn);
    for (size_t i = 0; rc == CVG_OK && i < 3; i++) {
        rc = demo_op(txn, CVG_OP_SET_ADD, path, cvg_value_string(tags[i]));
    }
    if (rc == CVG_OK) {
        rc = demo_op(txn, CVG_OP_SET_REMOVE, path, cvg_value_string("sale"));
    }
    if ((rc = demo_end(txn, rc)) != CVG_OK) {
        return rc;
    }
    puts(
        "  A remove takes away the adds it has seen; an add made\n"
        "  concurrently elsewhere would win (add-wins):");
    return demo_show_one(d->r, path, CVG_TYPE_SET);
}

static int
scene_delete(demo *d)
{
    const char *price = "products/sku-2/price";
    cvg_txn *txn;
    int rc = cvg_txn_begin(d->r, 0, &txn);
    if (rc == CVG_OK) {
        rc = demo_op(txn, CVG_OP_REGISTER_SET, price, cvg_value_double(1.2));
        if (rc == CVG_OK) {
            rc = demo_op(txn, CVG_OP_MVREGISTER_SET, "products/sku-2/name",
                         cvg_value_string("Tea"));
        }
        rc = demo_end(txn, rc);
    }
    if (rc == CVG_OK && (rc = cvg_txn_begin(d->r, 0, &txn)) == CVG_OK) {
        rc = demo_op(txn, CVG_OP_RECORD_DELETE, "products/sku-2",
                     cvg_value_nil());
        rc = demo_end(txn, rc);
    }
    if (rc == CVG_OK) {
        rc = demo_show_one(d->r, price, CVG_TYPE_REGISTER);
    }
    if (rc != CVG_OK) {
        return rc;
    }
    puts(
        "  The delete removed what till-1 had seen. A write it had not\n"
        "  seen (made later here, or concurrently at another till) stays:");
    if ((rc = cvg_txn_begin(d->r, 0, &txn)) == CVG_OK) {
        rc = demo_op(txn, CVG_OP_REGISTER_SET, price, cvg_value_double(1.35));
        rc = demo_end(txn, rc);
    }
    static const char *const paths[] = {"products/sku-2/price",
                                        "products/sku-2/name"};
    static const cvg_type types[] = {CVG_TYPE_REGISTER, CVG_TYPE_MVREGISTER};
    return rc != CVG_OK ? rc : demo_show_committed(d->r, paths, types, 2);
}

static int
scene_abort(demo *d)
{
    cvg_replica_stats before, after;
    cvg_txn *txn;
    int rc = cvg_replica_stats_get(d->r, &before, sizeof before);
    if (rc != CVG_OK || (rc = cvg_txn_begin(d->r, 0, &txn)) != CVG_OK) {
        return rc;
    }
    rc = demo_inc(txn, "stock/sku-1/qty", -100);
    if (rc == CVG_OK) {
        puts("  Inside the transaction its own write is visible:");
        rc = demo_show(txn, "stock/sku-1/qty", CVG_TYPE_COUNTER);
    }
    cvg_txn_abort(txn);
    puts(
        "  aborted. Neither the value nor the op exists, and the next\n"
        "  write will reuse the op's seq:");
    if (rc != CVG_OK || (rc = show_stock(d)) != CVG_OK ||
        (rc = cvg_replica_stats_get(d->r, &after, sizeof after)) != CVG_OK) {
        return rc;
    }
    printf("  ops in the log: %llu before, %llu after\n",
           (unsigned long long)before.op_count,
           (unsigned long long)after.op_count);
    return CVG_OK;
}

static int
scene_reopen(demo *d)
{
    cvg_replica_close(d->r);
    d->r = NULL;
    puts(
        "  closed till-1 and opened it again (nothing is replayed: the\n"
        "  merged state is stored beside the log):");
    int rc = cvg_replica_open(d->till1, NULL, &d->r);
    return rc != CVG_OK ? rc : show_stock(d);
}

static int
scene_log(demo *d)
{
    puts(
        "lsn  origin:seq  hlc-ms.logical  kind  coll/key/field  payload"
        "  observed");
    return cli_print_log(stdout, d->r, 1, false);
}

static int
scene_status(demo *d)
{
    return cli_print_status(stdout, d->r, false);
}

typedef struct scene {
    const char *title;
    int (*run)(demo *d);
} scene;

static int
scene_offline(demo *d)
{
    return demo_sync_tour(d->dir);
}

static int
scene_network(demo *d)
{
    return demo_net_tour(d->dir);
}

/* The tour, in order. */
static const scene scenes[] = {
    {"1. Two tills and a server: offline, then converge", scene_offline},
    {"2. Open a replica: till-1", scene_open},
    {"3. Counters: a delivery, then a sale", scene_counters},
    {"4. Registers: last-writer-wins and multi-value", scene_registers},
    {"5. A set of tags: add and remove", scene_set},
    {"6. Deleting a record", scene_delete},
    {"7. An aborted transaction leaves nothing", scene_abort},
    {"8. Persistence: reopen", scene_reopen},
    {"9. The operation log", scene_log},
    {"10. Status", scene_status},
    {"11. Over the network: a server and two tills on loopback", scene_network},
};

/* ---- Driver ------------------------------------------------------------- */

/* A new directory for the tour: DIR if given (its till-1 must not exist),
 * else a fresh one under $TMPDIR. */
static int
make_dir(demo *d, const char *arg)
{
    if (arg == NULL) {
        const char *tmp = getenv("TMPDIR");
        snprintf(d->dir, sizeof d->dir, "%s/converge-demo-XXXXXX",
                 tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
        if (mkdtemp(d->dir) == NULL) {
            fprintf(stderr, "converge: demo: cannot create %s: %s\n", d->dir,
                    strerror(errno));
            return CLI_EXIT_ERR;
        }
    } else if (snprintf(d->dir, sizeof d->dir, "%s", arg) >=
                   (int)sizeof d->dir ||
               (mkdir(arg, 0700) != 0 && errno != EEXIST)) {
        fprintf(stderr, "converge: demo: cannot create %s\n", arg);
        return CLI_EXIT_ERR;
    }
    int n = snprintf(d->till1, sizeof d->till1, "%s/till-1", d->dir);
    struct stat st;
    if (n < 0 || (size_t)n >= sizeof d->till1) {
        fprintf(stderr, "converge: demo: path too long: %s\n", d->dir);
        return CLI_EXIT_ERR;
    }
    if (stat(d->till1, &st) == 0) {
        fprintf(stderr,
                "converge: demo: %s already exists; give the demo a "
                "new directory\n",
                d->till1);
        return CLI_EXIT_ERR;
    }
    return CLI_EXIT_OK;
}

int
cmd_demo(int argc, char **argv)
{
    if (argc > 2) {
        return cli_usage(argv[0], "expected at most one DIR");
    }
    demo d = {.r = NULL};
    int code = make_dir(&d, argc == 2 ? argv[1] : NULL);
    if (code != CLI_EXIT_OK) {
        return code;
    }
    printf("converge %s demo, in %s\n", cvg_version_string(), d.dir);
    for (size_t i = 0; i < sizeof scenes / sizeof scenes[0]; i++) {
        heading(scenes[i].title);
        fflush(stdout); /* keep the order if stderr reports a failure */
        int rc = scenes[i].run(&d);
        if (rc != CVG_OK) {
            code = cli_fail("demo", rc, d.r);
            break;
        }
    }
    cvg_replica_close(d.r);
    if (code == CLI_EXIT_OK) {
        printf(
            "\nThe replica stays in %s. Try:\n"
            "  converge get %s products sku-1\n"
            "  converge log %s --json\n",
            d.till1, d.till1, d.till1);
    }
    return code;
}
