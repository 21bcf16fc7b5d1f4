/*
 * rpc_mtls_test.c — mutual TLS identities and per-method authorization,
 * end to end on loopback (issue: mTLS service identity).
 *
 * Material comes from tests/certs/mint-matrix.sh (a trusted CA, an unrelated
 * CA, valid client identities client-a and client-b, and broken
 * certificates: expired, not yet valid, no SAN, two SPIFFE IDs, ...).  Each
 * broken case must fail at the handshake or with the stated code, never
 * reach a handler, and leave the client an error naming the reason.  The
 * authorization half loads gRPC authorization policies (JSON), reloads them
 * while calls run, and checks that no log line carries key material.
 *
 * Raw OpenSSL peers (clients and a one-shot server on a thread) check what
 * orpc's contexts negotiate: TLS 1.2 only with ECDHE and AEAD suites, and
 * TLS 1.2 session resumption with a client certificate.  tls.c itself is
 * compiled into this test with its free() routed through a hook, to check
 * that orpc never frees a buffer still holding private key text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <malloc.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <uv.h>

#include <orpc/orpc.h>

#include "grpc/testing/test.orpc.h"

/* tls.c's own copy, with every free() it makes counted and checked for
 * private key text first (malloc_usable_size: ASan reports the requested
 * size, glibc a few bytes more, which never hold a whole marker).  Only the
 * test thread calls this copy; liborpc keeps its own (hidden) one. */
static int g_freed;          /* buffers tls.c freed */
static int g_freed_key_text; /* ... that still held "PRIVATE KEY" */

static void free_hook(void *p)
{
    if (p != NULL) {
        g_freed++;
        if (memmem(p, malloc_usable_size(p), "PRIVATE KEY", 11) != NULL)
            g_freed_key_text++;
    }
    free(p);
}

#define free(p) free_hook(p)
#include "tls.c"
#undef free

#ifndef MINT_MATRIX
#error "MINT_MATRIX (path of tests/certs/mint-matrix.sh) must be defined"
#endif

static char g_dir[256];
static uv_mutex_t g_lock;
static int g_handled;
static int g_sleep_ms;
static char g_log[1 << 16];
static size_t g_log_len;

/* |name| in the material directory; the result is good for the next seven
 * calls only (copy it to keep it). */
static const char *path_of(const char *name)
{
    static char buf[8][400];
    static int i;
    i = (i + 1) % 8;
    snprintf(buf[i], sizeof(buf[i]), "%s/%s", g_dir, name);
    return buf[i];
}

static void logger(orpc_log_level lvl, const char *msg, void *ud)
{
    (void)lvl;
    (void)ud;
    uv_mutex_lock(&g_lock);
    size_t n = strlen(msg);
    if (g_log_len + n + 2 < sizeof(g_log)) {
        memcpy(g_log + g_log_len, msg, n);
        g_log_len += n;
        g_log[g_log_len++] = '\n';
        g_log[g_log_len] = '\0';
    }
    uv_mutex_unlock(&g_lock);
}

static orpc_status unary_call(orpc_ctx *ctx,
                              const Grpc__Testing__SimpleRequest *req,
                              Grpc__Testing__SimpleResponse *resp, void *ud)
{
    (void)ud;
    uv_mutex_lock(&g_lock);
    g_handled++;
    int ms = g_sleep_ms;
    uv_mutex_unlock(&g_lock);
    if (ms > 0)
        usleep((useconds_t)ms * 1000);
    if (req->fill_username) {
        const char *id = orpc_ctx_peer_identity(ctx);
        resp->username = orpc_arena_strdup(orpc_ctx_arena(ctx), id ? id : "");
    }
    return ORPC_STATUS_OK;
}

static orpc_status empty_call(orpc_ctx *ctx, const Grpc__Testing__Empty *req,
                              Grpc__Testing__Empty *resp, void *ud)
{
    (void)ctx;
    (void)req;
    (void)resp;
    (void)ud;
    uv_mutex_lock(&g_lock);
    g_handled++;
    uv_mutex_unlock(&g_lock);
    return ORPC_STATUS_OK;
}

static const Grpc__Testing__TestService_Handlers handlers = {
    .unary_call = unary_call,
    .empty_call = empty_call,
};

static int handled(void)
{
    uv_mutex_lock(&g_lock);
    int n = g_handled;
    uv_mutex_unlock(&g_lock);
    return n;
}

static int group_setup(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(g_dir, sizeof(g_dir), "/tmp/orpc-mtls-test-XXXXXX");
    if (mkdtemp(g_dir) == NULL)
        return -1;
    snprintf(cmd, sizeof(cmd), "sh %s %s", MINT_MATRIX, g_dir);
    if (system(cmd) != 0)
        return -1;
    uv_mutex_init(&g_lock);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    uv_mutex_destroy(&g_lock);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static orpc_server *start(const char *policy_file, int *port)
{
    orpc_server *srv;
    orpc_server_opts o = {.io_threads = 1, .log = logger};
    o.tls.cert_file = path_of("server.pem");
    o.tls.key_file = path_of("server.key");
    o.tls.ca_file = path_of("ca.pem");
    o.tls.require_client_cert = 1;
    o.authz_policy_file = policy_file;
    int rc = orpc_server_new(&srv, &o, NULL, NULL);
    if (rc != 0)
        return NULL;
    assert_int_equal(
        grpc__testing__test_service__server__register(srv, &handlers, NULL), 0);
    assert_int_equal(orpc_server_listen(srv, "127.0.0.1:0", port, NULL), 0);
    assert_int_equal(orpc_server_start(srv), 0);
    uv_mutex_lock(&g_lock);
    g_handled = 0;
    g_sleep_ms = 0;
    uv_mutex_unlock(&g_lock);
    return srv;
}

static void stop(orpc_server *srv)
{
    assert_int_equal(orpc_server_shutdown(srv, 500), 0);
    assert_int_equal(orpc_server_wait(srv), 0);
    orpc_server_free(srv);
}

typedef struct peer {
    orpc_channel *ch;
    orpc_client *cl;
} peer;

/* A client presenting |who|.pem (NULL: no certificate). */
static int peer_open(peer *p, int port, const char *who)
{
    char target[64], cert[64], key[64];
    snprintf(target, sizeof(target), "localhost:%d", port);
    orpc_tls_opts t = {.ca_file = path_of("ca.pem")};
    if (who) {
        snprintf(cert, sizeof(cert), "%s.pem", who);
        snprintf(key, sizeof(key), "%s.key", who);
        t.cert_file = path_of(cert);
        t.key_file = path_of(key);
    }
    orpc_channel_opts co = {.tls = &t, .connect_timeout_ms = 3000};
    int rc = orpc_channel_new(&p->ch, target, &co, NULL, NULL);
    if (rc != 0)
        return rc;
    return orpc_client_new(&p->cl, &grpc__testing__test_service__orpc_desc,
                           p->ch, NULL, NULL);
}

static void peer_close(peer *p)
{
    orpc_client_free(p->cl);
    orpc_channel_unref(p->ch);
}

static orpc_status unary(peer *p, char *user, size_t ulen)
{
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__SimpleResponse *resp = NULL;
    req.fill_username = 1;
    orpc_call_opts o = {.timeout_ms = 5000};
    orpc_status st =
        grpc__testing__test_service__client__unary_call(p->cl, &req, &resp, &o);
    if (resp && user)
        snprintf(user, ulen, "%s", resp->username);
    grpc__testing__simple_response__free_unpacked(resp, NULL);
    return st;
}

static orpc_code empty(peer *p)
{
    Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT, *resp = NULL;
    orpc_call_opts o = {.timeout_ms = 5000};
    orpc_status st =
        grpc__testing__test_service__client__empty_call(p->cl, &req, &resp, &o);
    orpc_code c = st.code;
    grpc__testing__empty__free_unpacked(resp, NULL);
    orpc_status_clear(&st);
    return c;
}

/* ---- the negative matrix ---- */

/* |who| must be refused with |code| and a message containing |reason|. */
static void refused(const char *who, orpc_code code, const char *reason)
{
    int port;
    orpc_server *srv = start(NULL, &port);
    assert_non_null(srv);
    peer p;
    assert_int_equal(peer_open(&p, port, who), 0);
    orpc_status st = unary(&p, NULL, 0);
    if (st.code != code || st.message == NULL ||
        strstr(st.message, reason) == NULL)
        fail_msg("%s: got %s \"%s\", want %s containing \"%s\"",
                 who ? who : "(no cert)", orpc_code_name(st.code),
                 st.message ? st.message : "", orpc_code_name(code), reason);
    orpc_status_clear(&st);
    peer_close(&p);
    assert_int_equal(handled(), 0); /* never reached a handler */
    stop(srv);
}

static void test_valid_identity(void **state)
{
    (void)state;
    int port;
    char user[256] = "";
    orpc_server *srv = start(NULL, &port);
    peer p;
    assert_int_equal(peer_open(&p, port, "client"), 0);
    orpc_status st = unary(&p, user, sizeof(user));
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
    assert_string_equal(user, "spiffe://test.orpc/service/client-a");
    char sid[256];
    assert_int_equal(orpc_channel_peer_identity(p.ch, sid, sizeof(sid)), 0);
    assert_string_equal(sid, "spiffe://test.orpc/service/server");
    peer_close(&p);
    stop(srv);
}

static void test_no_client_cert(void **state)
{
    (void)state;
    refused(NULL, ORPC_UNAVAILABLE, "certificate required");
}

static void test_other_ca(void **state)
{
    (void)state;
    refused("other-client", ORPC_UNAVAILABLE, "unknown ca");
}

static void test_expired(void **state)
{
    (void)state;
    refused("expired", ORPC_UNAVAILABLE, "expired");
}

static void test_not_yet_valid(void **state)
{
    (void)state;
    /* OpenSSL reports a not-yet-valid client certificate with the alert
     * "bad certificate". */
    refused("notyet", ORPC_UNAVAILABLE, "bad certificate");
}

static void test_no_san(void **state)
{
    (void)state;
    refused("nosan", ORPC_UNAUTHENTICATED, "no valid SPIFFE ID");
}

static void test_two_spiffe_sans(void **state)
{
    (void)state;
    refused("twospiffe", ORPC_UNAUTHENTICATED, "no valid SPIFFE ID");
}

static void test_malformed_spiffe(void **state)
{
    (void)state;
    refused("badspiffe", ORPC_UNAUTHENTICATED, "no valid SPIFFE ID");
}

static void test_server_name_mismatch(void **state)
{
    (void)state;
    orpc_server *srv;
    int port;
    orpc_server_opts o = {.io_threads = 1};
    o.tls.cert_file = path_of("server-wrongname.pem");
    o.tls.key_file = path_of("server-wrongname.key");
    assert_int_equal(orpc_server_new(&srv, &o, NULL, NULL), 0);
    assert_int_equal(
        grpc__testing__test_service__server__register(srv, &handlers, NULL), 0);
    assert_int_equal(orpc_server_listen(srv, "127.0.0.1:0", &port, NULL), 0);
    assert_int_equal(orpc_server_start(srv), 0);
    uv_mutex_lock(&g_lock);
    g_handled = 0;
    uv_mutex_unlock(&g_lock);
    peer p;
    assert_int_equal(peer_open(&p, port, "client"), 0); /* expects localhost */
    orpc_status st = unary(&p, NULL, 0);
    assert_int_equal(st.code, ORPC_UNAVAILABLE);
    assert_non_null(strstr(st.message, "does not match"));
    orpc_status_clear(&st);
    peer_close(&p);
    assert_int_equal(handled(), 0);
    stop(srv);
}

static void test_expected_spiffe_id(void **state)
{
    (void)state;
    int port;
    orpc_server *srv = start(NULL, &port);
    char target[64];
    snprintf(target, sizeof(target), "localhost:%d", port);
    orpc_tls_opts t = {.ca_file = path_of("ca.pem"),
                       .cert_file = path_of("client.pem"),
                       .key_file = path_of("client.key"),
                       .expected_spiffe_id = "spiffe://test.orpc/service/jobs"};
    orpc_channel_opts co = {.tls = &t};
    peer p;
    assert_int_equal(orpc_channel_new(&p.ch, target, &co, NULL, NULL), 0);
    assert_int_equal(orpc_client_new(&p.cl,
                                     &grpc__testing__test_service__orpc_desc,
                                     p.ch, NULL, NULL),
                     0);
    orpc_status st = unary(&p, NULL, 0);
    assert_int_equal(st.code, ORPC_UNAVAILABLE);
    assert_non_null(strstr(st.message, "expected SPIFFE ID"));
    orpc_status_clear(&st);
    peer_close(&p);
    /* and the right one passes */
    t.expected_spiffe_id = "spiffe://test.orpc/service/server";
    assert_int_equal(orpc_channel_new(&p.ch, target, &co, NULL, NULL), 0);
    assert_int_equal(orpc_client_new(&p.cl,
                                     &grpc__testing__test_service__orpc_desc,
                                     p.ch, NULL, NULL),
                     0);
    st = unary(&p, NULL, 0);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
    peer_close(&p);
    assert_int_equal(handled(), 1);
    stop(srv);
}

static void test_tls11_only_client(void **state)
{
    (void)state;
    int port;
    orpc_server *srv = start(NULL, &port);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_1_VERSION);
    SSL_CTX_use_certificate_file(ctx, path_of("client.pem"), SSL_FILETYPE_PEM);
    SSL_CTX_use_PrivateKey_file(ctx, path_of("client.key"), SSL_FILETYPE_PEM);
    char hostport[64];
    snprintf(hostport, sizeof(hostport), "127.0.0.1:%d", port);
    BIO *b = BIO_new_ssl_connect(ctx);
    BIO_set_conn_hostname(b, hostport);
    int ok = BIO_do_connect(b) == 1 && BIO_do_handshake(b) == 1;
    assert_false(ok); /* the server speaks TLS 1.2 and up only */
    ERR_clear_error();
    BIO_free_all(b);
    SSL_CTX_free(ctx);
    assert_int_equal(handled(), 0);
    stop(srv);
}

static void test_plaintext_client(void **state)
{
    (void)state;
    int port;
    orpc_server *srv = start(NULL, &port);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    orpc_channel_opts co = {.plaintext = 1};
    peer p;
    assert_int_equal(orpc_channel_new(&p.ch, target, &co, NULL, NULL), 0);
    assert_int_equal(orpc_client_new(&p.cl,
                                     &grpc__testing__test_service__orpc_desc,
                                     p.ch, NULL, NULL),
                     0);
    orpc_status st = unary(&p, NULL, 0);
    assert_int_equal(st.code, ORPC_UNAVAILABLE);
    orpc_status_clear(&st);
    peer_close(&p);
    assert_int_equal(handled(), 0);
    stop(srv);
}

/* ---- TLS 1.2 suites and resumption, against raw OpenSSL peers ---- */

#define RAW_IO_TIMEOUT_S 5

static void raw_timeouts(int fd)
{
    struct timeval tv = {.tv_sec = RAW_IO_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* A TLS 1.2-only client context offering |ciphers| and ALPN h2, trusting
 * the test CA and presenting |who|.pem. */
static SSL_CTX *raw_client_ctx(const char *ciphers, const char *who)
{
    char cert[64], key[64];
    static const unsigned char h2[] = {2, 'h', '2'};
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    assert_int_equal(SSL_CTX_set_cipher_list(ctx, ciphers), 1);
    assert_int_equal(
        SSL_CTX_load_verify_locations(ctx, path_of("ca.pem"), NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    snprintf(cert, sizeof(cert), "%s.pem", who);
    snprintf(key, sizeof(key), "%s.key", who);
    assert_int_equal(
        SSL_CTX_use_certificate_file(ctx, path_of(cert), SSL_FILETYPE_PEM), 1);
    assert_int_equal(
        SSL_CTX_use_PrivateKey_file(ctx, path_of(key), SSL_FILETYPE_PEM), 1);
    assert_int_equal(SSL_CTX_set_alpn_protos(ctx, h2, sizeof(h2)), 0);
    return ctx;
}

typedef struct raw_result {
    int ok;               /* the handshake completed */
    int reused;           /* ... resuming the session offered */
    char cipher[64];      /* the suite negotiated */
    SSL_SESSION *session; /* when asked for: the session, to resume */
} raw_result;

/* One handshake with the server at 127.0.0.1:|port|, offering |resume|
 * when not NULL, then close_notify (so the session stays resumable). */
static void raw_handshake(SSL_CTX *ctx, int port, SSL_SESSION *resume,
                          int keep_session, raw_result *r)
{
    memset(r, 0, sizeof(*r));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    raw_timeouts(fd);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    SSL *ssl = SSL_new(ctx);
    assert_non_null(ssl);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "localhost");
    if (resume != NULL)
        assert_int_equal(SSL_set_session(ssl, resume), 1);
    r->ok = SSL_connect(ssl) == 1;
    if (r->ok) {
        r->reused = SSL_session_reused(ssl);
        snprintf(r->cipher, sizeof(r->cipher), "%s", SSL_get_cipher_name(ssl));
        if (keep_session)
            r->session = SSL_get1_session(ssl);
        SSL_shutdown(ssl);
    }
    ERR_clear_error();
    SSL_free(ssl);
    close(fd);
}

/* An orpc server must not let a TLS 1.2 client settle on a CBC suite
 * (RFC 9113 §9.2.2), and still accepts ECDHE with AES-GCM or ChaCha20. */
static void test_server_refuses_tls12_cbc(void **state)
{
    (void)state;
    int port;
    raw_result r;
    orpc_server *srv = start(NULL, &port);
    assert_non_null(srv);
    SSL_CTX *cbc =
        raw_client_ctx("ECDHE-ECDSA-AES128-SHA256:"
                       "ECDHE-ECDSA-AES256-SHA384:"
                       "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA",
                       "client");
    raw_handshake(cbc, port, NULL, 0, &r);
    assert_false(r.ok);
    SSL_CTX_free(cbc);
    const char *aead[] = {"ECDHE-ECDSA-AES128-GCM-SHA256",
                          "ECDHE-ECDSA-AES256-GCM-SHA384",
                          "ECDHE-ECDSA-CHACHA20-POLY1305"};
    for (size_t i = 0; i < sizeof(aead) / sizeof(aead[0]); i++) {
        SSL_CTX *ctx = raw_client_ctx(aead[i], "client");
        raw_handshake(ctx, port, NULL, 0, &r);
        assert_true(r.ok);
        assert_string_equal(r.cipher, aead[i]);
        SSL_CTX_free(ctx);
    }
    assert_int_equal(handled(), 0);
    stop(srv);
}

/* A TLS 1.2 server on a thread: accepts one connection (waiting at most
 * RAW_IO_TIMEOUT_S), handshakes offering only |ciphers|, and closes. */
typedef struct raw_server {
    int fd;
    int port;
    SSL_CTX *ctx;
    uv_thread_t thread;
    int connected; /* a client connected */
    int accepted;  /* ... and the handshake completed */
} raw_server;

static int raw_select_h2(SSL *ssl, const unsigned char **out,
                         unsigned char *outlen, const unsigned char *in,
                         unsigned int inlen, void *arg)
{
    static const unsigned char h2[] = {2, 'h', '2'};
    unsigned char *sel = NULL;
    (void)ssl;
    (void)arg;
    if (SSL_select_next_proto(&sel, outlen, h2, sizeof(h2), in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static void raw_server_run(void *arg)
{
    raw_server *s = arg;
    struct pollfd p = {.fd = s->fd, .events = POLLIN};
    if (poll(&p, 1, RAW_IO_TIMEOUT_S * 1000) == 1) {
        int c = accept(s->fd, NULL, NULL);
        if (c >= 0) {
            s->connected = 1;
            raw_timeouts(c);
            SSL *ssl = SSL_new(s->ctx);
            if (ssl != NULL && SSL_set_fd(ssl, c) == 1) {
                s->accepted = SSL_accept(ssl) == 1;
                if (s->accepted)
                    SSL_shutdown(ssl);
            }
            SSL_free(ssl);
            close(c);
        }
    }
    close(s->fd);
    ERR_clear_error();
    OPENSSL_thread_stop();
}

static void raw_server_start(raw_server *s, const char *ciphers)
{
    memset(s, 0, sizeof(*s));
    s->ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(s->ctx);
    SSL_CTX_set_min_proto_version(s->ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(s->ctx, TLS1_2_VERSION);
    assert_int_equal(SSL_CTX_set_cipher_list(s->ctx, ciphers), 1);
    assert_int_equal(SSL_CTX_use_certificate_file(s->ctx, path_of("server.pem"),
                                                  SSL_FILETYPE_PEM),
                     1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(s->ctx, path_of("server.key"),
                                                 SSL_FILETYPE_PEM),
                     1);
    SSL_CTX_set_alpn_select_cb(s->ctx, raw_select_h2, NULL);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->fd, 4), 0);
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &len), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(uv_thread_create(&s->thread, raw_server_run, s), 0);
}

/* An orpc channel must refuse a TLS 1.2 server that offers only a CBC
 * suite; the same server offering AES-GCM completes the handshake (and
 * then the call fails only because it is not an HTTP/2 server). */
static void test_channel_refuses_tls12_cbc(void **state)
{
    (void)state;
    const char *suites[] = {"ECDHE-ECDSA-AES128-GCM-SHA256",
                            "ECDHE-ECDSA-AES128-SHA256",
                            "ECDHE-ECDSA-AES128-SHA"};
    for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
        raw_server s;
        raw_server_start(&s, suites[i]);
        peer p;
        assert_int_equal(peer_open(&p, s.port, "client"), 0);
        orpc_status st = unary(&p, NULL, 0);
        assert_int_equal(st.code, ORPC_UNAVAILABLE);
        if (i > 0 && strstr(st.message, "handshake") == NULL)
            fail_msg("%s: \"%s\" does not name the handshake", suites[i],
                     st.message);
        orpc_status_clear(&st);
        peer_close(&p);
        assert_int_equal(uv_thread_join(&s.thread), 0);
        SSL_CTX_free(s.ctx);
        if (!s.connected)
            fail_msg("%s: the channel never connected", suites[i]);
        if (s.accepted != (i == 0))
            fail_msg("%s: handshake %s", suites[i],
                     s.accepted ? "completed" : "failed");
    }
}

/* A client that presented a certificate resumes its TLS 1.2 session (a
 * server that verifies peers needs a session id context for that). */
static void test_tls12_resumption_with_client_cert(void **state)
{
    (void)state;
    int port;
    raw_result r1, r2;
    orpc_server *srv = start(NULL, &port);
    assert_non_null(srv);
    SSL_CTX *ctx = raw_client_ctx("ECDHE-ECDSA-AES128-GCM-SHA256", "client");
    raw_handshake(ctx, port, NULL, 1, &r1);
    assert_true(r1.ok);
    assert_false(r1.reused);
    assert_non_null(r1.session);
    raw_handshake(ctx, port, r1.session, 0, &r2);
    assert_true(r2.ok);
    assert_true(r2.reused);
    SSL_SESSION_free(r1.session);
    SSL_CTX_free(ctx);
    assert_int_equal(handled(), 0);
    stop(srv);
}

/* ---- key text never left behind in freed memory ---- */

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *buf = calloc(1, 8192);
    assert_non_null(buf);
    size_t n = fread(buf, 1, 8191, f);
    fclose(f);
    assert_true(n > 0);
    return buf;
}

static void test_wipe_free(void **state)
{
    (void)state;
    char *key = read_text(path_of("client.key"));
    assert_non_null(strstr(key, "PRIVATE KEY"));
    /* the hook sees key text in a buffer freed as it is */
    char *copy = strdup(key);
    assert_non_null(copy);
    int freed = g_freed, dirty = g_freed_key_text;
    free_hook(copy);
    assert_int_equal(g_freed, freed + 1);
    assert_int_equal(g_freed_key_text, dirty + 1);
    /* orpc__tls_wipe_free() frees it with nothing left to see */
    copy = strdup(key);
    assert_non_null(copy);
    freed = g_freed;
    dirty = g_freed_key_text;
    orpc__tls_wipe_free(copy);
    assert_int_equal(g_freed, freed + 1);
    assert_int_equal(g_freed_key_text, dirty);
    orpc__tls_wipe_free(NULL); /* harmless */
    assert_int_equal(g_freed, freed + 1);
    free(key);
}

/* Loading keys from files and from PEM text, for servers and clients, on
 * success and on the error paths, frees no buffer holding key text. */
static void test_key_text_wiped_after_load(void **state)
{
    (void)state;
    char err[256];
    char *key = read_text(path_of("server.key"));
    int dirty = g_freed_key_text;
    int freed = g_freed;
    orpc_tls_opts o = {.cert_file = path_of("server.pem"),
                       .key_file = path_of("server.key"),
                       .ca_file = path_of("ca.pem"),
                       .require_client_cert = 1};
    SSL_CTX *ctx = orpc__tls_server_ctx(&o, err, sizeof(err));
    assert_non_null(ctx);
    SSL_CTX_free(ctx);
    /* the file was read into a buffer of tls.c's, then freed */
    assert_true(g_freed > freed);
    ctx = orpc__tls_client_ctx(&o, err, sizeof(err));
    assert_non_null(ctx);
    SSL_CTX_free(ctx);
    o.key_file = NULL;
    o.key_pem = key;
    ctx = orpc__tls_server_ctx(&o, err, sizeof(err));
    assert_non_null(ctx);
    SSL_CTX_free(ctx);
    /* a key that does not match the certificate */
    o.key_pem = NULL;
    o.key_file = path_of("client.key");
    assert_null(orpc__tls_server_ctx(&o, err, sizeof(err)));
    assert_null(strstr(err, "PRIVATE KEY"));
    assert_int_equal(g_freed_key_text, dirty);
    free(key);
}

/* A key file is read with a bound: an endless one is refused, naming the
 * file. */
static void test_key_file_bounded(void **state)
{
    (void)state;
    char err[256] = "";
    orpc_tls_opts o = {.cert_file = path_of("server.pem"),
                       .key_file = "/dev/zero"};
    assert_null(orpc__tls_server_ctx(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "/dev/zero"));
    assert_non_null(strstr(err, "too large"));
}

/* An encrypted key is refused with an error naming it, never a passphrase
 * prompt (which, on a terminal, would block). */
static void test_encrypted_key_refused(void **state)
{
    (void)state;
    char err[256] = "";
    char *key = read_text(path_of("server.key"));
    BIO *in = BIO_new_mem_buf(key, -1);
    EVP_PKEY *pk = PEM_read_bio_PrivateKey(in, NULL, NULL, NULL);
    BIO_free(in);
    assert_non_null(pk);
    BIO *out = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PKCS8PrivateKey(out, pk, EVP_aes_256_cbc(),
                                                   "secret", 6, NULL, NULL),
                     1);
    EVP_PKEY_free(pk);
    char *enc = NULL;
    long n = BIO_get_mem_data(out, &enc);
    assert_true(n > 0);
    char *text = strndup(enc, (size_t)n);
    BIO_free(out);
    assert_non_null(strstr(text, "ENCRYPTED PRIVATE KEY"));
    orpc_tls_opts o = {.cert_file = path_of("server.pem"), .key_pem = text};
    assert_null(orpc__tls_server_ctx(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "cannot load private key (PEM text)"));
    orpc__tls_wipe_free(text);
    orpc__tls_wipe_free(key);
}

/* ---- authorization ---- */

static const char *POLICY_A =
    "{\"name\": \"test\",\n"
    " \"deny_rules\": [{\"name\": \"no-empty-for-a\",\n"
    "   \"source\": {\"principals\": "
    "[\"spiffe://test.orpc/service/client-a\"]},\n"
    "   \"request\": {\"paths\": "
    "[\"/grpc.testing.TestService/EmptyCall\"]}}],\n"
    " \"allow_rules\": [{\"name\": \"a-may-call\",\n"
    "   \"source\": {\"principals\": "
    "[\"spiffe://test.orpc/service/client-a\"]},\n"
    "   \"request\": {\"paths\": [\"/grpc.testing.TestService/*\"]}}]}\n";

static const char *POLICY_B =
    "{\"name\": \"test2\",\n"
    " \"allow_rules\": [{\"name\": \"b-may-call\",\n"
    "   \"source\": {\"principals\": [\"*/client-b\"]},\n"
    "   \"request\": {\"paths\": "
    "[\"/grpc.testing.TestService/UnaryCall\"]}}]}\n";

static void test_policy_allow_and_deny(void **state)
{
    (void)state;
    int port;
    char pf[400];
    snprintf(pf, sizeof(pf), "%s", path_of("policy.json"));
    write_file(pf, POLICY_A);
    orpc_server *srv = start(pf, &port);
    assert_non_null(srv);
    peer a, b;
    assert_int_equal(peer_open(&a, port, "client"), 0);
    assert_int_equal(peer_open(&b, port, "client-b"), 0);
    orpc_status st = unary(&a, NULL, 0);
    assert_int_equal(st.code, ORPC_OK); /* allowed identity and method */
    orpc_status_clear(&st);
    /* same identity, another method: the deny rule wins over the allow */
    assert_int_equal(empty(&a), ORPC_PERMISSION_DENIED);
    /* another identity, same method: nothing allows it */
    st = unary(&b, NULL, 0);
    assert_int_equal(st.code, ORPC_PERMISSION_DENIED);
    assert_non_null(strstr(st.message, "client-b"));
    orpc_status_clear(&st);
    assert_int_equal(handled(), 1);
    peer_close(&a);
    peer_close(&b);
    stop(srv);
}

typedef struct async_state {
    uv_mutex_t lock;
    int done;
    orpc_code code;
} async_state;

static void async_done(const orpc_status *st,
                       Grpc__Testing__SimpleResponse *resp, void *ud)
{
    async_state *s = ud;
    uv_mutex_lock(&s->lock);
    s->done = 1;
    s->code = st->code;
    uv_mutex_unlock(&s->lock);
    grpc__testing__simple_response__free_unpacked(resp, NULL);
}

static void test_policy_reload(void **state)
{
    (void)state;
    int port;
    char pf[400];
    snprintf(pf, sizeof(pf), "%s", path_of("policy-reload.json"));
    write_file(pf, POLICY_A);
    orpc_server *srv = start(pf, &port);
    peer a, b;
    assert_int_equal(peer_open(&a, port, "client"), 0);
    assert_int_equal(peer_open(&b, port, "client-b"), 0);
    /* a slow call by A is in flight across the reload */
    uv_mutex_lock(&g_lock);
    g_sleep_ms = 300;
    int before = g_handled;
    uv_mutex_unlock(&g_lock);
    async_state s = {.done = 0};
    uv_mutex_init(&s.lock);
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    assert_int_equal(grpc__testing__test_service__client__unary_call__async(
                         a.cl, &req, NULL, async_done, &s),
                     0);
    /* the reload comes once A's handler is at work (bounded: 5 s) */
    for (int i = 0; i < 1000 && handled() == before; i++)
        usleep(5000);
    assert_int_equal(handled(), before + 1);
    write_file(pf, POLICY_B);
    assert_int_equal(orpc_server_reload(srv, NULL), 0);
    uv_mutex_lock(&g_lock);
    g_sleep_ms = 0;
    uv_mutex_unlock(&g_lock);
    orpc_status st = unary(&b, NULL, 0);
    if (st.code != ORPC_OK)
        fail_msg("B after reload: %s %s; log:\n%s", orpc_code_name(st.code),
                 st.message ? st.message : "", g_log);
    assert_int_equal(st.code, ORPC_OK); /* B is allowed now */
    orpc_status_clear(&st);
    st = unary(&a, NULL, 0);
    assert_int_equal(st.code, ORPC_PERMISSION_DENIED); /* A no longer */
    orpc_status_clear(&st);
    for (int i = 0; i < 400; i++) {
        uv_mutex_lock(&s.lock);
        int d = s.done;
        uv_mutex_unlock(&s.lock);
        if (d)
            break;
        usleep(5000);
    }
    assert_int_equal(s.done, 1);
    assert_int_equal(s.code, ORPC_OK); /* the call in flight did not fail */
    /* a broken policy is refused and the last good one stays */
    write_file(pf, "{\"name\": \"x\", \"allow_rules\": [{\"name\": 7}]}");
    assert_int_equal(orpc_server_reload(srv, NULL), ORPC_ECONFIG);
    st = unary(&b, NULL, 0);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
    uv_mutex_lock(&g_lock);
    assert_non_null(strstr(g_log, "allow_rules[0]"));
    uv_mutex_unlock(&g_lock);
    peer_close(&a);
    peer_close(&b);
    uv_mutex_destroy(&s.lock);
    stop(srv);
}

static int copy_file(const char *from, const char *to)
{
    char cmd[1000];
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
    return system(cmd);
}

/* Certificates rotate without a restart: after a reload new connections
 * get the new certificate, and a connection made before keeps working. */
static void test_certificate_reload(void **state)
{
    (void)state;
    char cert[400], key[400];
    snprintf(cert, sizeof(cert), "%s", path_of("rotating.pem"));
    snprintf(key, sizeof(key), "%s", path_of("rotating.key"));
    assert_int_equal(copy_file(path_of("server.pem"), cert), 0);
    assert_int_equal(copy_file(path_of("server.key"), key), 0);
    orpc_server *srv;
    int port;
    orpc_server_opts o = {.io_threads = 1, .log = logger};
    o.tls.cert_file = cert;
    o.tls.key_file = key;
    o.tls.ca_file = path_of("ca.pem");
    o.tls.require_client_cert = 1;
    assert_int_equal(orpc_server_new(&srv, &o, NULL, NULL), 0);
    assert_int_equal(
        grpc__testing__test_service__server__register(srv, &handlers, NULL), 0);
    assert_int_equal(orpc_server_listen(srv, "127.0.0.1:0", &port, NULL), 0);
    assert_int_equal(orpc_server_start(srv), 0);
    peer old;
    assert_int_equal(peer_open(&old, port, "client"), 0);
    orpc_status st = unary(&old, NULL, 0);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
    /* rotate to a certificate for another name */
    assert_int_equal(copy_file(path_of("server-wrongname.pem"), cert), 0);
    assert_int_equal(copy_file(path_of("server-wrongname.key"), key), 0);
    assert_int_equal(orpc_server_reload(srv, NULL), 0);
    /* the open connection keeps its material */
    st = unary(&old, NULL, 0);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
    /* a new connection gets the new certificate: a client expecting
     * "localhost" refuses it */
    peer fresh;
    assert_int_equal(peer_open(&fresh, port, "client"), 0);
    st = unary(&fresh, NULL, 0);
    assert_int_equal(st.code, ORPC_UNAVAILABLE);
    assert_non_null(strstr(st.message, "does not match"));
    orpc_status_clear(&st);
    peer_close(&fresh);
    /* a reload whose key does not match its certificate fails and keeps
     * the current material */
    assert_int_equal(copy_file(path_of("client.key"), key), 0);
    assert_int_equal(orpc_server_reload(srv, NULL), ORPC_ECONFIG);
    st = unary(&old, NULL, 0);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
    peer_close(&old);
    stop(srv);
}

static void test_bad_policy_stops_start(void **state)
{
    (void)state;
    int port;
    char pf[400];
    snprintf(pf, sizeof(pf), "%s", path_of("policy-bad.json"));
    write_file(pf, "{\"name\": \"p\", \"allow_rules\": [{\"name\": \"r1\", "
                   "\"request\": {\"paths\": [3]}}]}");
    uv_mutex_lock(&g_lock);
    g_log_len = 0;
    g_log[0] = '\0';
    uv_mutex_unlock(&g_lock);
    assert_null(start(pf, &port));
    uv_mutex_lock(&g_lock);
    /* the message names the rule and the problem */
    assert_non_null(strstr(g_log, "r1"));
    assert_non_null(strstr(g_log, "paths[0]"));
    uv_mutex_unlock(&g_lock);
}

static void test_no_key_material_in_logs(void **state)
{
    (void)state;
    /* Provoke every TLS error path that logs: a key that does not match,
     * a key file that is a certificate, a missing file. */
    orpc_server *srv;
    orpc_server_opts o = {.io_threads = 1, .log = logger};
    o.tls.cert_file = path_of("server.pem");
    o.tls.key_file = path_of("client.key"); /* wrong key */
    assert_int_equal(orpc_server_new(&srv, &o, NULL, NULL), ORPC_ECONFIG);
    o.tls.key_file = path_of("ca.pem");
    assert_int_equal(orpc_server_new(&srv, &o, NULL, NULL), ORPC_ECONFIG);
    o.tls.key_file = path_of("missing.key");
    assert_int_equal(orpc_server_new(&srv, &o, NULL, NULL), ORPC_ECONFIG);
    /* PEM text given inline, with a broken tail */
    FILE *f = fopen(path_of("client.key"), "r");
    char key[4096];
    size_t n = fread(key, 1, sizeof(key) - 1, f);
    fclose(f);
    key[n] = '\0';
    o.tls.key_file = NULL;
    o.tls.key_pem = key;
    assert_int_equal(orpc_server_new(&srv, &o, NULL, NULL), ORPC_ECONFIG);
    uv_mutex_lock(&g_lock);
    assert_true(g_log_len > 0);
    assert_null(strstr(g_log, "PRIVATE KEY"));
    /* no line of the key's base64 body appears either */
    char *line = strchr(key, '\n');
    while (line && line[1] != '-') {
        char piece[32];
        snprintf(piece, sizeof(piece), "%.24s", line + 1);
        if (strlen(piece) == 24)
            assert_null(strstr(g_log, piece));
        line = strchr(line + 1, '\n');
    }
    uv_mutex_unlock(&g_lock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_identity),
        cmocka_unit_test(test_no_client_cert),
        cmocka_unit_test(test_other_ca),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_not_yet_valid),
        cmocka_unit_test(test_no_san),
        cmocka_unit_test(test_two_spiffe_sans),
        cmocka_unit_test(test_malformed_spiffe),
        cmocka_unit_test(test_server_name_mismatch),
        cmocka_unit_test(test_expected_spiffe_id),
        cmocka_unit_test(test_tls11_only_client),
        cmocka_unit_test(test_plaintext_client),
        cmocka_unit_test(test_server_refuses_tls12_cbc),
        cmocka_unit_test(test_channel_refuses_tls12_cbc),
        cmocka_unit_test(test_tls12_resumption_with_client_cert),
        cmocka_unit_test(test_wipe_free),
        cmocka_unit_test(test_key_text_wiped_after_load),
        cmocka_unit_test(test_key_file_bounded),
        cmocka_unit_test(test_encrypted_key_refused),
        cmocka_unit_test(test_policy_allow_and_deny),
        cmocka_unit_test(test_policy_reload),
        cmocka_unit_test(test_certificate_reload),
        cmocka_unit_test(test_bad_policy_stops_start),
        cmocka_unit_test(test_no_key_material_in_logs),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
