/*
 * The handshake. Each side's first message is HELLO: its id and public
 * key, a fresh random challenge, the end of its log, and whether it will
 * pull and push. Its version vector (what it has of every origin) follows
 * once the peer's HELLO said who the peer is, as VV messages that carry
 * only what the peer does not know yet (vv_sync.c). The
 * id must be the key's (cvg__identity_derive), and the peer must then
 * prove it holds that key: its PROVE is a signature over our challenge,
 * its own, its id and the channel binding (cvg_session_options), which
 * nobody without the secret key can make and which is good for this
 * session only. Until it comes, nothing the session learns of the peer is
 * stored (cvg__session_store_peer) and its pages are refused, so a peer
 * that claims another's id can change nothing we believe about that one.
 *
 * From the peer's HELLO a session learns where its log ends (a page that
 * claims to end past it is refused), from its VV what the peer lacks (so
 * pages leave out what it has) and what it holds of our own ops. Once the peer has
 * proved its key, the key goes to the peer's record, with the address the
 * transport gave (cvg__session_set_address) and the time of contact.
 */
#include <sodium.h>
#include <stdio.h>

#include "session_int.h"

#define PROOF_DOMAIN "converge session proof v1"

/* What a PROVE signs: the verifier's challenge first, so that a proof is
 * never valid in the other direction, then the signer's, its id and the
 * channel binding. */
static size_t
proof_message(const cvg_session *s, const uint8_t *verifier_nonce,
              const uint8_t *signer_nonce, const cvg_replica_id *signer,
              uint8_t *out)
{
    size_t n = 0;
    memcpy(out, PROOF_DOMAIN, sizeof PROOF_DOMAIN - 1);
    n += sizeof PROOF_DOMAIN - 1;
    memcpy(out + n, verifier_nonce, CVG__NONCE_BYTES);
    n += CVG__NONCE_BYTES;
    memcpy(out + n, signer_nonce, CVG__NONCE_BYTES);
    n += CVG__NONCE_BYTES;
    memcpy(out + n, signer->bytes, sizeof signer->bytes);
    n += sizeof signer->bytes;
    memcpy(out + n, s->binding, s->binding_len);
    return n + s->binding_len;
}

#define PROOF_MAX \
    (sizeof PROOF_DOMAIN - 1 + 2 * CVG__NONCE_BYTES + 16 + BINDING_MAX)

int
cvg__session_send_hello(cvg_session *s)
{
    const uint8_t *pk = cvg__replica_pk(s->r);
    if (pk == NULL || !cvg__replica_has_key(s->r)) {
        return cvg__replica_fail(
            s->r, CVG_EKEY,
            pk == NULL ? "this replica has no identity key (made by "
                         "version 0.1): it cannot prove who it is to peers"
                       : "the replica was opened without its secret key "
                         "(secret_key, key_fn or its key file): it cannot "
                         "prove who it is to peers");
    }
    randombytes_buf(s->nonce, sizeof s->nonce);
    cvg_txn *t;
    int rc = cvg_txn_begin(s->r, CVG_TXN_READ_ONLY, &t);
    if (rc == CVG_OK) {
        s->log_end = cvg__txn_next_lsn(t) - 1;
        cvg_txn_abort(t);
        cvg__msg m;
        memset(&m, 0, sizeof m);
        m.type = CVG__MSG_HELLO;
        m.version = CVG_PROTOCOL_VERSION;
        m.id = *cvg__replica_self(s->r);
        m.pk = pk;
        m.inc = cvg__replica_inc(s->r);
        m.nonce = s->nonce;
        m.log_end = s->log_end;
        m.flags = (s->opts.no_pull ? 0 : HELLO_PULLS) |
                  (s->opts.push ? HELLO_PUSHES : 0) |
                  (s->opts.live ? HELLO_LIVE : 0);
        rc = cvg__session_enqueue(s, &m);
    }
    return rc;
}

/* Our answer to the peer's challenge. */
static int
send_prove(cvg_session *s)
{
    uint8_t msg[PROOF_MAX], sig[CVG__SIG_BYTES];
    size_t n =
        proof_message(s, s->peer_nonce, s->nonce, cvg__replica_self(s->r), msg);
    int rc = cvg__replica_sign(s->r, msg, n, sig);
    if (rc != CVG_OK) {
        return cvg__session_fail(s, rc, "cannot sign the identity proof");
    }
    cvg__msg m;
    memset(&m, 0, sizeof m);
    m.type = CVG__MSG_PROVE;
    m.version = CVG_PROTOCOL_VERSION;
    m.sig = sig;
    rc = cvg__session_enqueue(s, &m);
    return rc == CVG_OK ? CVG_OK
                        : cvg__session_fail(s, rc, "cannot queue a proof");
}

/* Who the peer is and where: its key, its address if the transport gave
 * one, and this contact. Noted once it has proved the key, like all else
 * (cvg__session_store_peer keeps nothing before). */
static void
note_who(cvg_session *s)
{
    cvg__peer_change ch = {.contact_ms = cvg__replica_now_ms(s->r),
                           .has_key = true};
    memcpy(ch.key, s->peer_pk, sizeof ch.key);
    memcpy(ch.addr, s->peer_addr, sizeof ch.addr);
    cvg__session_note(s, &ch);
}

void
cvg__session_set_address(cvg_session *s, const char *addr)
{
    if (s == NULL || addr == NULL || !cvg__peer_addr_ok(addr, strlen(addr))) {
        return;
    }
    memcpy(s->peer_addr, addr, strlen(addr) + 1);
    if (s->proven) {
        note_who(s);
    }
}

int
cvg__session_on_prove(cvg_session *s, const cvg__msg *m)
{
    if (!s->got_hello) {
        return cvg__session_fail(s, CVG_EPROTO, "PROVE before HELLO");
    }
    uint8_t msg[PROOF_MAX];
    size_t n = proof_message(s, s->nonce, s->peer_nonce, &s->stats.peer, msg);
    if (crypto_sign_verify_detached(m->sig, msg, n, s->peer_pk) != 0) {
        return cvg__session_fail(s, CVG_EFORGED,
                                 "the peer's identity proof is not its "
                                 "key's signature over this session");
    }
    if (s->proven) {
        return CVG_OK; /* a repeat */
    }
    s->proven = true;
    note_who(s);
    cvg__peer_set_active(s->r, &s->stats.peer, true);
    cvg__session_event(s, CVG_SYNC_EVENT_START, CVG_OK);
    /* Now that we know who sent them, compare its heads with ours (or
     * once its vector is whole, vv_sync.c). */
    return s->vv_ok ? cvg__session_check_forks(s) : CVG_OK;
}

/* The peer's id must be its public key's. */
static int
check_identity(cvg_session *s, const cvg__msg *m)
{
    cvg_replica_id derived;
    cvg__identity_derive(m->pk, m->inc.data, m->inc.len, &derived);
    if (cvg__id_cmp(&derived, &m->id) != 0) {
        return cvg__session_fail(s, CVG_EFORGED,
                                 "the peer's id is not derived from its "
                                 "public key");
    }
    return CVG_OK;
}

int
cvg__session_on_hello(cvg_session *s, const cvg__msg *m)
{
    if (s->got_hello) {
        /* A transport that repeats a message is no reason to give up. */
        if (cvg__id_cmp(&m->id, &s->stats.peer) == 0 &&
            sodium_memcmp(m->nonce, s->peer_nonce, CVG__NONCE_BYTES) == 0) {
            return CVG_OK;
        }
        return cvg__session_fail(s, CVG_EPROTO, "a second HELLO");
    }
    if (cvg__id_cmp(&m->id, cvg__replica_self(s->r)) == 0) {
        return cvg__session_fail(s, CVG_EINVAL, "the peer is this replica");
    }
    int rc = check_identity(s, m);
    if (rc != CVG_OK) {
        return rc;
    }
    s->got_hello = true;
    s->stats.peer = m->id;
    memcpy(s->peer_pk, m->pk, sizeof s->peer_pk);
    memcpy(s->peer_nonce, m->nonce, sizeof s->peer_nonce);
    s->peer_log_end = m->log_end;
    /* A peer that we push to does not pull from us, and we do not pull
     * from a peer that pushes: its pushes are all it sends us. */
    s->peer_pulls = (m->flags & HELLO_PULLS) != 0 && !s->opts.push;
    s->peer_pushes = (m->flags & HELLO_PUSHES) != 0;
    s->live = s->opts.live && (m->flags & HELLO_LIVE) != 0;
    if (s->peer_pushes) {
        s->pull_done = false;
    }
    rc = send_prove(s);
    if (rc != CVG_OK) {
        return rc;
    }
    cvg__peer_change ch = {.attempt_ms = cvg__replica_now_ms(s->r)};
    cvg__session_note(s, &ch);
    /* Our vector, as the peer needs it: the rest of what depends on the
     * peer's (our pushes, the fork checks) waits for it (vv_sync.c). */
    rc = cvg__session_send_vv(s);
    if (rc != CVG_OK) {
        return rc;
    }
    if (!s->opts.no_pull && !s->peer_pushes) {
        rc = cvg__session_send_pull(s);
        if (rc != CVG_OK) {
            return rc;
        }
    }
    return CVG_OK;
}
