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
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <uv.h>

#include <orpc/orpc.h>

#include "grpc/testing/test.orpc.h"

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
    int rc = orpc_server_new(&srv, &o, NULL);
    if (rc != 0)
        return NULL;
    assert_int_equal(
        grpc__testing__test_service__server__register(srv, &handlers, NULL), 0);
    assert_int_equal(orpc_server_listen(srv, "127.0.0.1:0", port), 0);
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
    int rc = orpc_channel_new(&p->ch, target, &co, NULL);
    if (rc != 0)
        return rc;
    return orpc_client_new(&p->cl, &grpc__testing__test_service__orpc_desc,
                           p->ch, NULL);
}

static void peer_close(peer *p)
{
    orpc_client_free(p->cl);
    orpc_channel_free(p->ch);
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
    assert_int_equal(orpc_server_new(&srv, &o, NULL), 0);
    assert_int_equal(
        grpc__testing__test_service__server__register(srv, &handlers, NULL), 0);
    assert_int_equal(orpc_server_listen(srv, "127.0.0.1:0", &port), 0);
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
    assert_int_equal(orpc_channel_new(&p.ch, target, &co, NULL), 0);
    assert_int_equal(orpc_client_new(&p.cl,
                                     &grpc__testing__test_service__orpc_desc,
                                     p.ch, NULL),
                     0);
    orpc_status st = unary(&p, NULL, 0);
    assert_int_equal(st.code, ORPC_UNAVAILABLE);
    assert_non_null(strstr(st.message, "expected SPIFFE ID"));
    orpc_status_clear(&st);
    peer_close(&p);
    /* and the right one passes */
    t.expected_spiffe_id = "spiffe://test.orpc/service/server";
    assert_int_equal(orpc_channel_new(&p.ch, target, &co, NULL), 0);
    assert_int_equal(orpc_client_new(&p.cl,
                                     &grpc__testing__test_service__orpc_desc,
                                     p.ch, NULL),
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
    assert_int_equal(orpc_channel_new(&p.ch, target, &co, NULL), 0);
    assert_int_equal(orpc_client_new(&p.cl,
                                     &grpc__testing__test_service__orpc_desc,
                                     p.ch, NULL),
                     0);
    orpc_status st = unary(&p, NULL, 0);
    assert_int_equal(st.code, ORPC_UNAVAILABLE);
    orpc_status_clear(&st);
    peer_close(&p);
    assert_int_equal(handled(), 0);
    stop(srv);
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
    assert_int_equal(orpc_server_reload(srv), 0);
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
    assert_int_equal(orpc_server_reload(srv), ORPC_ECONFIG);
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
    assert_int_equal(orpc_server_new(&srv, &o, NULL), 0);
    assert_int_equal(
        grpc__testing__test_service__server__register(srv, &handlers, NULL), 0);
    assert_int_equal(orpc_server_listen(srv, "127.0.0.1:0", &port), 0);
    assert_int_equal(orpc_server_start(srv), 0);
    peer old;
    assert_int_equal(peer_open(&old, port, "client"), 0);
    orpc_status st = unary(&old, NULL, 0);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
    /* rotate to a certificate for another name */
    assert_int_equal(copy_file(path_of("server-wrongname.pem"), cert), 0);
    assert_int_equal(copy_file(path_of("server-wrongname.key"), key), 0);
    assert_int_equal(orpc_server_reload(srv), 0);
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
    assert_int_equal(orpc_server_reload(srv), ORPC_ECONFIG);
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
    assert_int_equal(orpc_server_new(&srv, &o, NULL), ORPC_ECONFIG);
    o.tls.key_file = path_of("ca.pem");
    assert_int_equal(orpc_server_new(&srv, &o, NULL), ORPC_ECONFIG);
    o.tls.key_file = path_of("missing.key");
    assert_int_equal(orpc_server_new(&srv, &o, NULL), ORPC_ECONFIG);
    /* PEM text given inline, with a broken tail */
    FILE *f = fopen(path_of("client.key"), "r");
    char key[4096];
    size_t n = fread(key, 1, sizeof(key) - 1, f);
    fclose(f);
    key[n] = '\0';
    o.tls.key_file = NULL;
    o.tls.key_pem = key;
    assert_int_equal(orpc_server_new(&srv, &o, NULL), ORPC_ECONFIG);
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
        cmocka_unit_test(test_policy_allow_and_deny),
        cmocka_unit_test(test_policy_reload),
        cmocka_unit_test(test_certificate_reload),
        cmocka_unit_test(test_bad_policy_stops_start),
        cmocka_unit_test(test_no_key_material_in_logs),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
