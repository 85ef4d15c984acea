#define _POSIX_C_SOURCE 200809L
#include "digest.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
put_value(FILE *f, const cvg_value *v)
{
    switch (v->kind) {
    case CVG_VALUE_NIL:
        fputs("nil", f);
        break;
    case CVG_VALUE_BOOL:
        fputs(v->as.boolean ? "true" : "false", f);
        break;
    case CVG_VALUE_INT:
        fprintf(f, "%" PRId64, v->as.integer);
        break;
    case CVG_VALUE_DOUBLE:
        fprintf(f, "%.17g", v->as.real);
        break;
    default:
        fputc('"', f);
        fwrite(v->as.bytes.data, 1, v->as.bytes.len, f);
        fputc('"', f);
    }
}

static int
put_field(FILE *f, cvg_txn *t, const cvg_key *k, cvg_type type)
{
    int rc = CVG_OK;
    fprintf(f, "  %s:%d = ", k->field, (int)type);
    if (type == CVG_TYPE_COUNTER) {
        int64_t v;
        rc = cvg_counter_get(t, k, &v);
        if (rc == CVG_EOVERFLOW) {
            /* A merged sum outside int64 is a state like any other. */
            fprintf(f, "overflow%s", v > 0 ? "+" : "-");
            rc = CVG_OK;
        } else {
            fprintf(f, "%" PRId64, v);
        }
    } else if (type == CVG_TYPE_REGISTER) {
        cvg_value v;
        rc = cvg_register_get(t, k, &v);
        put_value(f, &v);
    } else if (type == CVG_TYPE_MVREGISTER) {
        cvg_value vs[64];
        size_t n;
        rc = cvg_mvregister_get(t, k, vs, NULL, 64, &n);
        for (size_t i = 0; rc == CVG_OK && i < n && i < 64; i++) {
            put_value(f, &vs[i]);
            fputc(' ', f);
        }
    } else {
        cvg_set_cursor *c;
        rc = cvg_set_cursor_open(t, k, &c);
        cvg_value v;
        while (rc == CVG_OK && (rc = cvg_set_cursor_next(c, &v)) == CVG_OK) {
            put_value(f, &v);
            fputc(' ', f);
        }
        cvg_set_cursor_close(c);
        rc = rc == CVG_DONE ? CVG_OK : rc;
    }
    fputc('\n', f);
    return rc;
}

int
cvg_test_digest(cvg_replica *r, char **out)
{
    size_t len;
    FILE *f = open_memstream(out, &len);
    cvg_txn *t;
    int rc = cvg_txn_begin(r, CVG_TXN_READ_ONLY, &t);
    cvg_key_cursor *kc = NULL;
    if (rc == CVG_OK) {
        rc = cvg_key_cursor_open(t, NULL, &kc);
    }
    cvg_bytes cb, kb;
    while (rc == CVG_OK && (rc = cvg_key_cursor_next(kc, &cb, &kb)) == 0) {
        char coll[512], key[512];
        snprintf(coll, sizeof coll, "%.*s", (int)cb.len, (const char *)cb.data);
        snprintf(key, sizeof key, "%.*s", (int)kb.len, (const char *)kb.data);
        fprintf(f, "%s/%s\n", coll, key);
        cvg_key rec = {coll, key, NULL};
        cvg_field_cursor *fc;
        rc = cvg_field_cursor_open(t, &rec, &fc);
        /* Collect the fields first: reading values does not write, so the
         * cursor stays valid, but keep the walk simple anyway. */
        cvg_bytes fb;
        cvg_type ty;
        while (rc == CVG_OK &&
               (rc = cvg_field_cursor_next(fc, &fb, &ty)) == 0) {
            char field[512];
            snprintf(field, sizeof field, "%.*s", (int)fb.len,
                     (const char *)fb.data);
            cvg_key k = {coll, key, field};
            rc = put_field(f, t, &k, ty);
        }
        cvg_field_cursor_close(fc);
        rc = rc == CVG_DONE ? CVG_OK : rc;
    }
    cvg_key_cursor_close(kc);
    cvg_txn_abort(t);
    fclose(f);
    return rc == CVG_DONE ? CVG_OK : rc;
}
