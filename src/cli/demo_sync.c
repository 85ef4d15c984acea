/*
 * The demo's main scene: two tills and a server. The tills sync with the
 * server, go offline, sell the same item, edit different fields of one
 * record and the same field of another, then reconnect; every replica ends
 * with the same state, and the conflict is reported.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "cli.h"

enum { SERVER, TILL_A, TILL_B, N_REPLICAS };

static const char *const names[N_REPLICAS] = {"server", "till-a", "till-b"};

/* The fields the scene changes, and their types, for showing them. */
static const char *const paths[] = {
    "stock/sku-1/qty",      "products/sku-1/price", "products/sku-1/name",
    "products/sku-2/price", "products/sku-2/tags",
};
static const cvg_type types[] = {CVG_TYPE_COUNTER, CVG_TYPE_REGISTER,
                                 CVG_TYPE_REGISTER, CVG_TYPE_REGISTER,
                                 CVG_TYPE_SET};
#define N_PATHS (sizeof paths / sizeof paths[0])

static int
sync_pair(cvg_replica **r, int a, int b)
{
    cvg_session_stats st;
    int rc = cvg_sync_local(r[a], r[b], &st);
    if (rc != CVG_OK) {
        return rc;
    }
    printf(
        "  sync %-6s <-> %-6s  %llu ops in, %llu ops out, %llu "
        "conflict(s), %llu bytes\n",
        names[a], names[b], (unsigned long long)st.ops_received,
        (unsigned long long)st.ops_sent, (unsigned long long)st.conflicts,
        (unsigned long long)(st.bytes_sent + st.bytes_received));
    return CVG_OK;
}

static int
seed_catalogue(cvg_replica *server)
{
    cvg_txn *t;
    int rc = cvg_txn_begin(server, 0, &t);
    if (rc != CVG_OK) {
        return rc;
    }
    rc = demo_inc(t, "stock/sku-1/qty", 20);
    if (rc == CVG_OK) {
        rc = demo_op(t, CVG_OP_REGISTER_SET, "products/sku-1/price",
                     cvg_value_double(2.75));
    }
    if (rc == CVG_OK) {
        rc = demo_op(t, CVG_OP_REGISTER_SET, "products/sku-1/name",
                     cvg_value_string("Coffee"));
    }
    if (rc == CVG_OK) {
        rc = demo_op(t, CVG_OP_REGISTER_SET, "products/sku-2/price",
                     cvg_value_double(1.20));
    }
    return demo_end(t, rc);
}

/* Offline work at one till: a sale, an edit of its own field, an edit of
 * the field the other till edits too, and a tag. */
static int
offline_work(cvg_replica *till, int64_t sold, const char *own_path,
             cvg_value own, double sku2_price, const char *tag)
{
    cvg_txn *t;
    int rc = cvg_txn_begin(till, 0, &t);
    if (rc != CVG_OK) {
        return rc;
    }
    rc = demo_inc(t, "stock/sku-1/qty", -sold);
    if (rc == CVG_OK) {
        rc = demo_op(t, CVG_OP_REGISTER_SET, own_path, own);
    }
    if (rc == CVG_OK) {
        rc = demo_op(t, CVG_OP_REGISTER_SET, "products/sku-2/price",
                     cvg_value_double(sku2_price));
    }
    if (rc == CVG_OK) {
        rc = demo_op(t, CVG_OP_SET_ADD, "products/sku-2/tags",
                     cvg_value_string(tag));
    }
    return demo_end(t, rc);
}

/* Whether every replica shows the same text for every field. */
static int
show_all(cvg_replica **r, bool *same)
{
    *same = true;
    char first[N_PATHS][256];
    for (int i = 0; i < N_REPLICAS; i++) {
        printf("  %s:\n", names[i]);
        cvg_txn *t;
        int rc = cvg_txn_begin(r[i], CVG_TXN_READ_ONLY, &t);
        for (size_t p = 0; rc == CVG_OK && p < N_PATHS; p++) {
            char text[256] = "";
            FILE *f = fmemopen(text, sizeof text - 1, "w");
            char buf[CVG_NAME_MAX + 3];
            snprintf(buf, sizeof buf, "%s", paths[p]);
            cvg_key key = {strtok(buf, "/"), strtok(NULL, "/"),
                           strtok(NULL, "/")};
            rc = f ? cli_print_field(f, t, &key, types[p], CLI_STYLE_INLINE)
                   : CVG_ENOMEM;
            if (f != NULL) {
                fclose(f);
            }
            if (rc == CVG_ENOTFOUND) {
                snprintf(text, sizeof text, "(not found)");
                rc = CVG_OK;
            }
            printf("    %-22s %s\n", paths[p], text);
            if (i == 0) {
                memcpy(first[p], text, sizeof text);
            } else if (strcmp(first[p], text) != 0) {
                *same = false;
            }
        }
        cvg_txn_abort(t);
        if (rc != CVG_OK) {
            return rc;
        }
    }
    return CVG_OK;
}

int
demo_sync_tour(const char *dir)
{
    cvg_replica *r[N_REPLICAS] = {NULL, NULL, NULL};
    int rc = CVG_OK;
    for (int i = 0; rc == CVG_OK && i < N_REPLICAS; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        rc = cvg_replica_open(path, NULL, &r[i]);
    }
    if (rc == CVG_OK) {
        puts("  The server holds the catalogue:");
        rc = seed_catalogue(r[SERVER]);
    }
    if (rc == CVG_OK) {
        puts("  Both tills sync with the server, then lose the network:");
        rc = sync_pair(r, TILL_A, SERVER);
    }
    if (rc == CVG_OK) {
        rc = sync_pair(r, TILL_B, SERVER);
    }
    if (rc == CVG_OK) {
        puts(
            "  Offline, till-a sells 3 coffees, changes the coffee's price\n"
            "  and the tea's price, and tags the tea:");
        rc = offline_work(r[TILL_A], 3, "products/sku-1/price",
                          cvg_value_double(2.95), 1.30, "organic");
    }
    if (rc == CVG_OK) {
        puts(
            "  Offline, till-b sells 2 coffees, renames the coffee, and\n"
            "  changes the tea's price too, and tags the tea:");
        rc = offline_work(r[TILL_B], 2, "products/sku-1/name",
                          cvg_value_string("Coffee beans"), 1.25, "loose");
    }
    if (rc == CVG_OK) {
        puts(
            "  The network is back. Each till syncs with the server (till-a\n"
            "  twice, to fetch what till-b brought):");
        rc = sync_pair(r, TILL_A, SERVER);
    }
    if (rc == CVG_OK) {
        rc = sync_pair(r, TILL_B, SERVER);
    }
    if (rc == CVG_OK) {
        rc = sync_pair(r, TILL_A, SERVER);
    }
    bool same = false;
    if (rc == CVG_OK) {
        puts("  Every replica now holds:");
        rc = show_all(r, &same);
    }
    if (rc == CVG_OK) {
        printf("  %s\n",
               same ? "converged: all three replicas agree. Both sales "
                      "count (20 - 3 - 2 = 15),\n  both edits of "
                      "sku-1 stay (different fields), both tags stay, and "
                      "the\n  tea's price, written at both tills, is the "
                      "later write on every replica\n  (the conflict "
                      "counted above)."
                    : "NOT converged: this is a bug; please report it.");
        rc = same ? CVG_OK : CVG_ECORRUPT;
    }
    for (int i = 0; i < N_REPLICAS; i++) {
        cvg_replica_close(r[i]);
    }
    return rc;
}
