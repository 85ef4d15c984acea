#include "faulty_pipe.h"

#include <stdlib.h>
#include <string.h>

#include "testutil.h"

typedef struct msg {
    uint8_t *p;
    size_t n;
} msg;

typedef struct queue {
    msg m[256];
    size_t n;
} queue;

static void
push(queue *q, cvg_bytes b)
{
    if (q->n == sizeof q->m / sizeof q->m[0]) {
        return; /* the link is full: the message is lost */
    }
    q->m[q->n].p = malloc(b.len ? b.len : 1);
    memcpy(q->m[q->n].p, b.data, b.len);
    q->m[q->n].n = b.len;
    q->n++;
}

static void
drain(cvg_session *s, queue *q)
{
    cvg_bytes b;
    while (cvg_session_output(s, &b) == CVG_OK) {
        push(q, b);
    }
}

static void
take(queue *q, size_t i, msg *out)
{
    *out = q->m[i];
    memmove(q->m + i, q->m + i + 1, (q->n - i - 1) * sizeof q->m[0]);
    q->n--;
}

static bool
roll(uint64_t *rng, unsigned pct)
{
    return pct > 0 && cvg_test_below(rng, 100) < pct;
}

void
cvg_test_faulty_sync(cvg_replica *a, cvg_replica *b, uint64_t *rng,
                     const cvg_test_faults *f, cvg_test_link_stats *st)
{
    memset(st, 0, sizeof *st);
    cvg_session *s[2] = {NULL, NULL};
    queue *q = calloc(2, sizeof *q); /* q[0]: a -> b, q[1]: b -> a */
    if (cvg_session_open(a, NULL, &s[0]) != CVG_OK ||
        cvg_session_open(b, NULL, &s[1]) != CVG_OK) {
        st->error_a = st->error_b = CVG_EIO;
        goto out;
    }
    for (unsigned step = 0; step < f->max_steps; step++) {
        drain(s[0], &q[0]);
        drain(s[1], &q[1]);
        if (q[0].n == 0 && q[1].n == 0) {
            break;
        }
        int d = q[0].n == 0 ? 1 : q[1].n == 0 ? 0 : (int)cvg_test_below(rng, 2);
        size_t i = 0;
        if (q[d].n > 1 && roll(rng, f->reorder_pct)) {
            i = 1 + cvg_test_below(rng, q[d].n - 1);
            st->reordered++;
        }
        msg m;
        take(&q[d], i, &m);
        if (roll(rng, f->drop_pct)) {
            st->dropped++;
            free(m.p);
            continue;
        }
        size_t len = m.n;
        if (m.n > 0 && roll(rng, f->cut_pct)) {
            len = cvg_test_below(rng, m.n);
            st->cut++;
        }
        if (roll(rng, f->dup_pct) && q[d].n < 256) {
            q[d].m[q[d].n].p = malloc(m.n ? m.n : 1);
            memcpy(q[d].m[q[d].n].p, m.p, m.n);
            q[d].m[q[d].n++].n = m.n;
            st->duplicated++;
        }
        st->delivered++;
        int rc = cvg_session_input(s[1 - d], m.p, len);
        (void)rc; /* a fault may end the session: that is allowed */
        free(m.p);
    }
out:
    st->error_a = s[0] ? cvg_session_error(s[0]) : st->error_a;
    st->error_b = s[1] ? cvg_session_error(s[1]) : st->error_b;
    st->done = s[0] && s[1] && cvg_session_done(s[0]) && cvg_session_done(s[1]);
    for (int k = 0; k < 2; k++) {
        for (size_t j = 0; j < q[k].n; j++) {
            free(q[k].m[j].p);
        }
    }
    free(q);
    cvg_session_close(s[0]);
    cvg_session_close(s[1]);
}
