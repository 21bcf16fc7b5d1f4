/*
 * tls_internal.h — OpenSSL contexts and peer identity (internal).
 */
#ifndef ORPC_TLS_INTERNAL_H
#define ORPC_TLS_INTERNAL_H

#include <stddef.h>

#include <openssl/ssl.h>

#include <orpc/tls.h>

/* A server context from |o|: certificate chain and key required, ALPN h2,
 * TLS 1.2 minimum (ECDHE with AEAD suites only), a session id context so
 * sessions resume with peer verification on; client certificates required
 * and verified against the CA bundle when o->require_client_cert.  NULL with
 * a reason in |err| (which never contains key material). */
SSL_CTX *orpc__tls_server_ctx(const orpc_tls_opts *o, char *err, size_t errlen);

/* A client context: verifies the server against o's CA bundle (or the
 * system's), offers ALPN h2 and, for TLS 1.2, ECDHE with AEAD suites only,
 * presents a client certificate when given. */
SSL_CTX *orpc__tls_client_ctx(const orpc_tls_opts *o, char *err, size_t errlen);

/* Whether a TLS channel with |tls| may use its target: a unix: target
 * (|is_unix| nonzero) has no host name to check the server's certificate
 * against, so |tls| must give a non-empty server_name or
 * expected_spiffe_id.  0, or ORPC_ECONFIG with a reason in |err|.  Any
 * thread. */
int orpc__tls_check_client_target(const orpc_tls_opts *tls, int is_unix,
                                  char *err, size_t errlen);

/* Wipes the NUL-terminated string |s| (OPENSSL_cleanse) and free()s it:
 * for copies of key_pem, which were strdup'd.  Nothing on NULL.  The _mem
 * twin frees with |mem| (NULL: libc). */
void orpc__tls_wipe_free(char *s);
void orpc__tls_wipe_free_mem(const orpc_mem *mem, char *s);

/* Per-connection client checks: the server's certificate must match |name|
 * (DNS name or IP address).  0 or -1. */
int orpc__tls_client_verify_setup(SSL *ssl, const char *name);

int orpc__tls_alpn_is_h2(SSL *ssl);

/* The peer certificate's SPIFFE ID when it has exactly one valid SPIFFE
 * URI SAN, allocated with |mem| (NULL: libc); or NULL. */
char *orpc__tls_peer_spiffe_id(SSL *ssl, const orpc_mem *mem);

/* Everything of a verified peer certificate an authorization policy may
 * match on (gRFC A43): URI SANs, then DNS SANs, then the subject. */
typedef struct orpc__peer_names {
    int has_cert;
    char **uri;
    size_t n_uri;
    char **dns;
    size_t n_dns;
    char *subject; /* RFC 2253 */
} orpc__peer_names;

/* Fills |out| from the peer certificate (zeroed when there is none),
 * allocating with |mem| (NULL: libc).  0 or ORPC_ENOMEM.  Free it with the
 * same |mem|. */
int orpc__tls_peer_names(SSL *ssl, const orpc_mem *mem, orpc__peer_names *out);
void orpc__peer_names_free(const orpc_mem *mem, orpc__peer_names *n);

/* A static description of why a handshake or record operation failed. */
const char *orpc__tls_error_reason(SSL *ssl, int rc);

/* Nonzero when |s| looks like a DNS name rather than an IP literal. */
int orpc__tls_is_dns_name(const char *s);

#endif
