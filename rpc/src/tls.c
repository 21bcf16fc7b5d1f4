/*
 * tls.c — OpenSSL contexts for servers and channels, ALPN, and the SPIFFE
 * identity in a peer certificate.
 *
 * Material comes from PEM files or PEM text; either way it is loaded into a
 * fresh SSL_CTX, so a reload (later) builds a new context and swaps it for
 * new connections while old ones keep theirs.  Errors name the file and the
 * problem, never the key's contents.
 *
 * Design notes (docs/tls.md says why at more length):
 * - TLS 1.2 is limited to ECDHE with AEAD suites on both sides, because
 *   RFC 9113 §9.2.2 forbids the rest for HTTP/2; TLS 1.3's suites are all
 *   AEAD with (EC)DHE and stay OpenSSL's defaults.
 * - Server contexts carry a session id context: with peer verification on,
 *   OpenSSL refuses to resume a session without one (the handshake fails).
 *   A session only ever resumes on the context that made it (its cache, its
 *   ticket keys), so after a reload every client verifies afresh.
 * - Private key files are read here, with a size bound, into a buffer that
 *   is wiped before it is freed (OpenSSL's file BIO would leave the text in
 *   a stdio buffer freed as it is); orpc__tls_wipe_free() does the same for
 *   the copies of key_pem that servers and channels keep.  Encrypted keys
 *   are refused rather than prompting for a passphrase on a terminal.
 * - A unix: target has no host name to check the certificate against, so a
 *   TLS channel to one must name the server (orpc__tls_check_client_target).
 */
#include "common/mem.h"
#include "tls_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <uv.h>

#include <orpc/error.h>

static const unsigned char alpn_h2[] = {2, 'h', '2'};
/* A server's: h2 first; http/1.1 for the JSON callers (server_h1.c). */
static const unsigned char alpn_server[] = {2,   'h', '2', 8,   'h', 't',
                                            't', 'p', '/', '1', '.', '1'};

/* The TLS 1.2 suites: ECDHE key exchange, AEAD ciphers (RFC 9113 §9.2.2 and
 * its Appendix A blocklist rule out static RSA, DHE, CBC and the rest).
 * AES-128-GCM first (fast with AES-NI, and the suite §9.2.2 requires),
 * ChaCha20-Poly1305 for peers without AES hardware. */
static const char tls12_ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

/* A constant is enough: sessions never leave the SSL_CTX that made them. */
static const unsigned char session_id_ctx[] = "orpc-server";

/* Largest private key file read (a 16384-bit RSA key is about 13 KiB). */
#define KEY_FILE_MAX ((size_t)256 * 1024)

static void set_err(char *err, size_t len, const char *what, const char *src)
{
    unsigned long e = ERR_peek_last_error();
    char ossl[128] = "";
    if (e != 0)
        ERR_error_string_n(e, ossl, sizeof(ossl));
    if (len > 0)
        snprintf(err, len, "%s%s%s%s%s", what, src ? " " : "", src ? src : "",
                 ossl[0] ? ": " : "", ossl);
    ERR_clear_error();
}

void orpc__tls_wipe_free_mem(const orpc_mem *mem, char *s)
{
    if (s == NULL)
        return;
    OPENSSL_cleanse(s, strlen(s));
    orpc__mem_free(mem, s);
}

void orpc__tls_wipe_free(char *s)
{
    orpc__tls_wipe_free_mem(NULL, s);
}

/* Encrypted keys are not supported (no option carries a passphrase): say so
 * at once instead of OpenSSL's default, a prompt on the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* Reads at most KEY_FILE_MAX bytes of |path| into |*out| (malloc'd; the
 * caller wipes and frees it).  read(2), not stdio: no buffer of someone
 * else's keeps a copy.  0, or -1 with a reason in |err|. */
static int read_key_file(const char *path, char **out, size_t *len, char *err,
                         size_t errlen)
{
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot load private key %s: %s", path,
                 uv_strerror(-errno));
        return -1;
    }
    char *buf = malloc(KEY_FILE_MAX + 1);
    size_t n = 0;
    int rc = 0;
    if (buf == NULL) {
        snprintf(err, errlen, "cannot load private key %s: out of memory",
                 path);
        rc = -1;
    }
    while (rc == 0 && n <= KEY_FILE_MAX) {
        ssize_t r = read(fd, buf + n, KEY_FILE_MAX + 1 - n);
        if (r == 0)
            break;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "cannot load private key %s: %s", path,
                     uv_strerror(-errno));
            rc = -1;
        } else {
            n += (size_t)r;
        }
    }
    close(fd);
    if (rc == 0 && n > KEY_FILE_MAX) {
        snprintf(err, errlen,
                 "cannot load private key %s: file too large (over %zu KiB)",
                 path, KEY_FILE_MAX / 1024);
        rc = -1;
    }
    if (rc != 0) {
        if (buf != NULL)
            OPENSSL_cleanse(buf, n);
        free(buf);
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
}

/* The private key, from key_pem (read in place) or key_file (read into a
 * buffer wiped before it is freed). */
static int load_key(SSL_CTX *ctx, const orpc_tls_opts *o, char *err,
                    size_t errlen)
{
    const char *src = o->key_pem != NULL ? "(PEM text)" : o->key_file;
    char *text = NULL;
    size_t n = 0;
    BIO *b;
    if (o->key_pem != NULL) {
        b = BIO_new_mem_buf(o->key_pem, -1);
    } else if (o->key_file == NULL) {
        set_err(err, errlen, "cannot load private key", "(none given)");
        return -1;
    } else {
        if (read_key_file(o->key_file, &text, &n, err, errlen) != 0)
            return -1;
        b = BIO_new_mem_buf(text, (int)n);
    }
    EVP_PKEY *k =
        b ? PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL) : NULL;
    BIO_free(b);
    if (text != NULL) {
        OPENSSL_cleanse(text, n);
        free(text);
    }
    if (k == NULL || SSL_CTX_use_PrivateKey(ctx, k) != 1) {
        EVP_PKEY_free(k);
        set_err(err, errlen, "cannot load private key", src);
        return -1;
    }
    EVP_PKEY_free(k);
    return 0;
}

static int load_chain(SSL_CTX *ctx, const orpc_tls_opts *o, char *err,
                      size_t errlen)
{
    if (o->cert_pem != NULL) {
        BIO *b = BIO_new_mem_buf(o->cert_pem, -1);
        X509 *leaf = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
        if (leaf == NULL || SSL_CTX_use_certificate(ctx, leaf) != 1) {
            X509_free(leaf);
            BIO_free(b);
            set_err(err, errlen, "cannot load certificate", "(PEM text)");
            return -1;
        }
        X509_free(leaf);
        X509 *extra;
        while ((extra = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
            if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
                X509_free(extra);
                BIO_free(b);
                set_err(err, errlen, "cannot load chain", "(PEM text)");
                return -1;
            }
        }
        ERR_clear_error(); /* end of PEM data */
        BIO_free(b);
    } else if (o->cert_file != NULL) {
        if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1) {
            set_err(err, errlen, "cannot load certificate", o->cert_file);
            return -1;
        }
    } else {
        return 0;
    }
    if (load_key(ctx, o, err, errlen) != 0)
        return -1;
    if (SSL_CTX_check_private_key(ctx) != 1) {
        set_err(err, errlen, "private key does not match the certificate",
                NULL);
        return -1;
    }
    return 0;
}

static int load_ca(SSL_CTX *ctx, const orpc_tls_opts *o, char *err,
                   size_t errlen)
{
    if (o->ca_pem != NULL) {
        BIO *b = BIO_new_mem_buf(o->ca_pem, -1);
        X509_STORE *st = SSL_CTX_get_cert_store(ctx);
        X509 *x;
        int n = 0;
        while (b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
            X509_STORE_add_cert(st, x);
            X509_free(x);
            n++;
        }
        ERR_clear_error();
        BIO_free(b);
        if (n == 0) {
            set_err(err, errlen, "no certificate in CA bundle", "(PEM text)");
            return -1;
        }
        return 1;
    }
    if (o->ca_file != NULL) {
        if (SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1) {
            set_err(err, errlen, "cannot load CA bundle", o->ca_file);
            return -1;
        }
        return 1;
    }
    return 0;
}

static SSL_CTX *base_ctx(const SSL_METHOD *m, const orpc_tls_opts *o)
{
    SSL_CTX *ctx = SSL_CTX_new(m);
    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(
        ctx, o->min_version == ORPC_TLS_1_3 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_cipher_list(ctx, tls12_ciphers) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static int select_h2(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                     const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, alpn_server, sizeof(alpn_server),
                              in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

SSL_CTX *orpc__tls_server_ctx(const orpc_tls_opts *o, char *err, size_t errlen)
{
    SSL_CTX *ctx = base_ctx(TLS_server_method(), o);
    if (ctx == NULL) {
        set_err(err, errlen, "cannot create TLS context", NULL);
        return NULL;
    }
    if (o->cert_file == NULL && o->cert_pem == NULL) {
        snprintf(err, errlen, "a TLS server needs a certificate and key");
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (load_chain(ctx, o, err, errlen) != 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    int has_ca = load_ca(ctx, o, err, errlen);
    if (has_ca < 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (o->require_client_cert) {
        if (has_ca == 0) {
            snprintf(err, errlen,
                     "require_client_cert needs a CA bundle to verify with");
            SSL_CTX_free(ctx);
            return NULL;
        }
        SSL_CTX_set_verify(
            ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    } else if (has_ca) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    /* Needed to resume sessions when verifying peers; harmless otherwise. */
    if (SSL_CTX_set_session_id_context(ctx, session_id_ctx,
                                       sizeof(session_id_ctx) - 1) != 1) {
        set_err(err, errlen, "cannot set the session id context", NULL);
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_alpn_select_cb(ctx, select_h2, NULL);
    return ctx;
}

SSL_CTX *orpc__tls_client_ctx(const orpc_tls_opts *o, char *err, size_t errlen)
{
    SSL_CTX *ctx = base_ctx(TLS_client_method(), o);
    if (ctx == NULL) {
        set_err(err, errlen, "cannot create TLS context", NULL);
        return NULL;
    }
    int has_ca = load_ca(ctx, o, err, errlen);
    if (has_ca < 0 || load_chain(ctx, o, err, errlen) != 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (has_ca == 0 && SSL_CTX_set_default_verify_paths(ctx) != 1) {
        set_err(err, errlen, "cannot load the system CA bundle", NULL);
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_alpn_protos(ctx, alpn_h2, sizeof(alpn_h2));
    return ctx;
}

int orpc__tls_check_client_target(const orpc_tls_opts *tls, int is_unix,
                                  char *err, size_t errlen)
{
    if (tls == NULL || !is_unix)
        return 0;
    if ((tls->server_name != NULL && tls->server_name[0] != '\0') ||
        (tls->expected_spiffe_id != NULL && tls->expected_spiffe_id[0] != '\0'))
        return 0;
    snprintf(err, errlen,
             "a unix: target has no host name to check the server's "
             "certificate against: set server_name or expected_spiffe_id");
    return ORPC_ECONFIG;
}

int orpc__tls_is_dns_name(const char *s)
{
    unsigned char buf[16];
    if (s == NULL || *s == '\0')
        return 0;
    /* An IP literal is not a name (and is never sent as SNI). */
    return uv_inet_pton(AF_INET, s, buf) != 0 &&
           uv_inet_pton(AF_INET6, s, buf) != 0;
}

int orpc__tls_client_verify_setup(SSL *ssl, const char *name)
{
    X509_VERIFY_PARAM *p = SSL_get0_param(ssl);
    if (name == NULL || *name == '\0')
        return 0;
    X509_VERIFY_PARAM_set_hostflags(p, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (orpc__tls_is_dns_name(name))
        return X509_VERIFY_PARAM_set1_host(p, name, 0) == 1 ? 0 : -1;
    return X509_VERIFY_PARAM_set1_ip_asc(p, name) == 1 ? 0 : -1;
}

int orpc__tls_alpn_is_h2(SSL *ssl)
{
    const unsigned char *p = NULL;
    unsigned int n = 0;
    SSL_get0_alpn_selected(ssl, &p, &n);
    return n == 2 && p[0] == 'h' && p[1] == '2';
}

/* A copy of |len| bytes at |s|, NUL-terminated, allocated with |mem|.
 * (Not orpc__mem_strndup(): rpc_mtls_test.c compiles this file without
 * common/mem.c; the inline malloc and free of common/mem.h are all it
 * uses.) */
static char *tls_strndup(const orpc_mem *mem, const char *s, size_t len)
{
    char *p = orpc__mem_malloc(mem, len + 1);
    if (p != NULL) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

char *orpc__tls_peer_spiffe_id(SSL *ssl, const orpc_mem *mem)
{
    X509 *cert = SSL_get1_peer_certificate(ssl);
    char *id = NULL;
    int found = 0;
    if (cert == NULL)
        return NULL;
    GENERAL_NAMES *names =
        X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type != GEN_URI)
            continue;
        const ASN1_IA5STRING *u = g->d.uniformResourceIdentifier;
        const char *s = (const char *)ASN1_STRING_get0_data(u);
        size_t len = (size_t)ASN1_STRING_length(u);
        if (len < 9 || strncmp(s, "spiffe://", 9) != 0)
            continue;
        found++;
        orpc__mem_free(mem, id);
        id = NULL;
        if (memchr(s, '\0', len) != NULL || len > ORPC_SPIFFE_ID_MAX)
            continue;
        char tmp[ORPC_SPIFFE_ID_MAX + 1];
        memcpy(tmp, s, len);
        tmp[len] = '\0';
        orpc_spiffe_id parsed;
        if (orpc_spiffe_id_parse(&parsed, tmp) == 0)
            id = tls_strndup(mem, tmp, len);
    }
    GENERAL_NAMES_free(names);
    X509_free(cert);
    if (found != 1) {
        orpc__mem_free(mem, id);
        return NULL;
    }
    return id;
}

static int push_name(const orpc_mem *mem, char ***arr, size_t *n, const char *s,
                     size_t len)
{
    char **a = orpc__mem_malloc(mem, (*n + 1) * sizeof(char *));
    if (a == NULL)
        return ORPC_ENOMEM;
    if (*n > 0)
        memcpy(a, *arr, *n * sizeof(char *));
    orpc__mem_free(mem, *arr);
    *arr = a;
    a[*n] = tls_strndup(mem, s, len);
    if (a[*n] == NULL)
        return ORPC_ENOMEM;
    (*n)++;
    return 0;
}

int orpc__tls_peer_names(SSL *ssl, const orpc_mem *mem, orpc__peer_names *out)
{
    memset(out, 0, sizeof(*out));
    X509 *cert = SSL_get1_peer_certificate(ssl);
    int rc = 0;
    if (cert == NULL)
        return 0;
    out->has_cert = 1;
    GENERAL_NAMES *names =
        X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; names && rc == 0 && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        const ASN1_IA5STRING *v;
        if (g->type == GEN_URI)
            v = g->d.uniformResourceIdentifier;
        else if (g->type == GEN_DNS)
            v = g->d.dNSName;
        else
            continue;
        const char *s = (const char *)ASN1_STRING_get0_data(v);
        size_t len = (size_t)ASN1_STRING_length(v);
        if (memchr(s, '\0', len) != NULL || len > 4096)
            continue; /* embedded NUL: never a principal */
        rc = g->type == GEN_URI
                 ? push_name(mem, &out->uri, &out->n_uri, s, len)
                 : push_name(mem, &out->dns, &out->n_dns, s, len);
    }
    GENERAL_NAMES_free(names);
    if (rc == 0) {
        BIO *b = BIO_new(BIO_s_mem());
        if (b != NULL && X509_NAME_print_ex(b, X509_get_subject_name(cert), 0,
                                            XN_FLAG_RFC2253) >= 0) {
            char *p;
            long n = BIO_get_mem_data(b, &p);
            out->subject = tls_strndup(mem, p, (size_t)n);
        }
        BIO_free(b);
    }
    X509_free(cert);
    if (rc != 0)
        orpc__peer_names_free(mem, out);
    return rc;
}

void orpc__peer_names_free(const orpc_mem *mem, orpc__peer_names *n)
{
    for (size_t i = 0; i < n->n_uri; i++)
        orpc__mem_free(mem, n->uri[i]);
    for (size_t i = 0; i < n->n_dns; i++)
        orpc__mem_free(mem, n->dns[i]);
    orpc__mem_free(mem, n->uri);
    orpc__mem_free(mem, n->dns);
    orpc__mem_free(mem, n->subject);
    memset(n, 0, sizeof(*n));
}

const char *orpc__tls_error_reason(SSL *ssl, int rc)
{
    long v = SSL_get_verify_result(ssl);
    (void)rc;
    if (v != X509_V_OK) {
        switch (v) {
        case X509_V_ERR_CERT_HAS_EXPIRED:
            return "peer certificate expired";
        case X509_V_ERR_CERT_NOT_YET_VALID:
            return "peer certificate not yet valid";
        case X509_V_ERR_HOSTNAME_MISMATCH:
        case X509_V_ERR_IP_ADDRESS_MISMATCH:
            return "peer certificate does not match the expected name";
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
        case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
            return "peer certificate not signed by a trusted CA";
        default:
            return "peer certificate verification failed";
        }
    }
    unsigned long e = ERR_peek_error();
    if (e != 0) {
        const char *r = ERR_reason_error_string(e);
        if (r != NULL)
            return r; /* static string inside OpenSSL */
    }
    return "TLS handshake failed";
}
