/*
 * rpc_tls_test.c — the runtime over TLS and unix sockets, on loopback.
 *
 * Certificates come from scripts/gen-test-certs.sh (a test CA, a server
 * certificate for localhost/127.0.0.1, a client certificate whose URI SAN is
 * a SPIFFE ID), minted into a temporary directory when the test starts.
 * Checks that calls work with server-authenticated and mutual TLS, that the
 * handler sees the caller's SPIFFE ID and the channel the server's, and that
 * a wrong name, a missing client certificate, an unexpected SPIFFE ID and a
 * plaintext client all fail without reaching a handler, and that a TLS
 * channel to a unix: target (no host name to check) is refused unless it
 * names the server some other way.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include <orpc/orpc.h>

#include "grpc/testing/test.orpc.h"

#ifndef GEN_CERTS
#error "GEN_CERTS (path of scripts/gen-test-certs.sh) must be defined"
#endif

static char g_dir[256];
static char g_ca[300], g_cert[300], g_key[300], g_ccert[300], g_ckey[300];
static uv_mutex_t g_lock;
static int g_handled;
static char g_seen_identity[256];

static orpc_status unary_call(orpc_ctx *ctx,
                              const Grpc__Testing__SimpleRequest *req,
                              Grpc__Testing__SimpleResponse *resp, void *ud)
{
    (void)req;
    (void)ud;
    const char *id = orpc_ctx_peer_identity(ctx);
    uv_mutex_lock(&g_lock);
    g_handled++;
    snprintf(g_seen_identity, sizeof(g_seen_identity), "%s", id ? id : "");
    uv_mutex_unlock(&g_lock);
    resp->username = orpc_arena_strdup(orpc_ctx_arena(ctx), id ? id : "");
    return ORPC_STATUS_OK;
}

static const Grpc__Testing__TestService_Handlers handlers = {
    .unary_call = unary_call,
};

static int group_setup(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(g_dir, sizeof(g_dir), "/tmp/orpc-tls-test-XXXXXX");
    if (mkdtemp(g_dir) == NULL)
        return -1;
    snprintf(cmd, sizeof(cmd), "sh %s %s", GEN_CERTS, g_dir);
    if (system(cmd) != 0)
        return -1;
    snprintf(g_ca, sizeof(g_ca), "%s/ca.pem", g_dir);
    snprintf(g_cert, sizeof(g_cert), "%s/server.pem", g_dir);
    snprintf(g_key, sizeof(g_key), "%s/server.key", g_dir);
    snprintf(g_ccert, sizeof(g_ccert), "%s/client.pem", g_dir);
    snprintf(g_ckey, sizeof(g_ckey), "%s/client.key", g_dir);
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

static orpc_server *start_server(int mtls, int *port)
{
    orpc_server *srv;
    orpc_server_opts o = {.io_threads = 1};
    o.tls.cert_file = g_cert;
    o.tls.key_file = g_key;
    if (mtls) {
        o.tls.ca_file = g_ca;
        o.tls.require_client_cert = 1;
    }
    assert_int_equal(orpc_server_new(&srv, &o, NULL, NULL), 0);
    assert_int_equal(
        grpc__testing__test_service__server__register(srv, &handlers, NULL), 0);
    assert_int_equal(orpc_server_listen(srv, "127.0.0.1:0", port, NULL), 0);
    assert_int_equal(orpc_server_start(srv), 0);
    uv_mutex_lock(&g_lock);
    g_handled = 0;
    g_seen_identity[0] = '\0';
    uv_mutex_unlock(&g_lock);
    return srv;
}

static void stop_server(orpc_server *srv)
{
    assert_int_equal(orpc_server_shutdown(srv, 500), 0);
    assert_int_equal(orpc_server_wait(srv), 0);
    orpc_server_free(srv);
}

/* One unary call; returns its status (the response, if any, is checked
 * for the identity and freed). */
static orpc_status call_once(int port, const orpc_tls_opts *tls, int plaintext,
                             char *username, size_t ulen)
{
    char target[64];
    orpc_channel *ch;
    orpc_client *cl;
    snprintf(target, sizeof(target), "localhost:%d", port);
    orpc_channel_opts co = {
        .tls = tls, .plaintext = plaintext, .connect_timeout_ms = 3000};
    int rc = orpc_channel_new(&ch, target, &co, NULL, NULL);
    if (rc != 0)
        return orpc_status_errorf(ORPC_INTERNAL, "channel: %s",
                                  orpc_strerror(rc));
    rc =
        orpc_client_new(&cl, &grpc__testing__test_service__orpc_desc, ch, NULL, NULL);
    if (rc != 0) {
        orpc_channel_unref(ch);
        return orpc_status_errorf(ORPC_INTERNAL, "client: %s",
                                  orpc_strerror(rc));
    }
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__SimpleResponse *resp = NULL;
    orpc_call_opts o = {.timeout_ms = 5000};
    orpc_status st =
        grpc__testing__test_service__client__unary_call(cl, &req, &resp, &o);
    if (resp != NULL && username != NULL)
        snprintf(username, ulen, "%s", resp->username ? resp->username : "");
    grpc__testing__simple_response__free_unpacked(resp, NULL);
    orpc_client_free(cl);
    orpc_channel_unref(ch);
    return st;
}

static int handled(void)
{
    uv_mutex_lock(&g_lock);
    int n = g_handled;
    uv_mutex_unlock(&g_lock);
    return n;
}

static void test_server_tls(void **state)
{
    (void)state;
    int port;
    orpc_server *srv = start_server(0, &port);
    orpc_tls_opts t = {.ca_file = g_ca};
    orpc_status st = call_once(port, &t, 0, NULL, 0);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
    assert_int_equal(handled(), 1);
    stop_server(srv);
}

static void test_wrong_server_name(void **state)
{
    (void)state;
    int port;
    orpc_server *srv = start_server(0, &port);
    orpc_tls_opts t = {.ca_file = g_ca, .server_name = "evil.example.org"};
    orpc_status st = call_once(port, &t, 0, NULL, 0);
    assert_int_equal(st.code, ORPC_UNAVAILABLE);
    assert_non_null(strstr(st.message, "expected name"));
    orpc_status_clear(&st);
    assert_int_equal(handled(), 0);
    stop_server(srv);
}

static void test_untrusted_server(void **state)
{
    (void)state;
    int port;
    orpc_server *srv = start_server(0, &port);
    /* trust only the client's own certificate: the server's CA is unknown */
    orpc_tls_opts t = {.ca_file = g_ccert};
    orpc_status st = call_once(port, &t, 0, NULL, 0);
    assert_int_equal(st.code, ORPC_UNAVAILABLE);
    assert_non_null(strstr(st.message, "trusted CA"));
    orpc_status_clear(&st);
    assert_int_equal(handled(), 0);
    stop_server(srv);
}

static void test_plaintext_client_on_tls_port(void **state)
{
    (void)state;
    int port;
    orpc_server *srv = start_server(0, &port);
    orpc_status st = call_once(port, NULL, 1, NULL, 0);
    assert_int_equal(st.code, ORPC_UNAVAILABLE);
    orpc_status_clear(&st);
    assert_int_equal(handled(), 0);
    stop_server(srv);
}

static void test_mtls_identity(void **state)
{
    (void)state;
    int port;
    char user[256] = "";
    orpc_server *srv = start_server(1, &port);
    orpc_tls_opts t = {
        .ca_file = g_ca, .cert_file = g_ccert, .key_file = g_ckey};
    orpc_status st = call_once(port, &t, 0, user, sizeof(user));
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
    assert_string_equal(user, "spiffe://test.orpc/service/interop-client");
    assert_string_equal(g_seen_identity,
                        "spiffe://test.orpc/service/interop-client");
    stop_server(srv);
}

static void test_mtls_no_client_cert(void **state)
{
    (void)state;
    int port;
    orpc_server *srv = start_server(1, &port);
    orpc_tls_opts t = {.ca_file = g_ca};
    orpc_status st = call_once(port, &t, 0, NULL, 0);
    assert_int_equal(st.code, ORPC_UNAVAILABLE);
    orpc_status_clear(&st);
    assert_int_equal(handled(), 0);
    stop_server(srv);
}

static void test_expected_spiffe_mismatch(void **state)
{
    (void)state;
    int port;
    orpc_server *srv = start_server(0, &port);
    /* the test server certificate carries no SPIFFE ID at all */
    orpc_tls_opts t = {.ca_file = g_ca,
                       .expected_spiffe_id = "spiffe://test.orpc/service/jobs"};
    orpc_status st = call_once(port, &t, 0, NULL, 0);
    assert_int_equal(st.code, ORPC_UNAVAILABLE);
    assert_non_null(strstr(st.message, "SPIFFE"));
    orpc_status_clear(&st);
    assert_int_equal(handled(), 0);
    stop_server(srv);
}

static void test_unix_socket(void **state)
{
    (void)state;
    char path[300], target[320];
    orpc_server *srv;
    snprintf(path, sizeof(path), "%s/orpc.sock", g_dir);
    orpc_server_opts o = {.plaintext = 1, .io_threads = 2};
    assert_int_equal(orpc_server_new(&srv, &o, NULL, NULL), 0);
    assert_int_equal(
        grpc__testing__test_service__server__register(srv, &handlers, NULL), 0);
    snprintf(target, sizeof(target), "unix:%s", path);
    assert_int_equal(orpc_server_listen(srv, target, NULL, NULL), 0);
    assert_int_equal(orpc_server_start(srv), 0);
    orpc_channel *ch;
    orpc_client *cl;
    orpc_channel_opts co = {.plaintext = 1};
    assert_int_equal(orpc_channel_new(&ch, target, &co, NULL, NULL), 0);
    assert_int_equal(
        orpc_client_new(&cl, &grpc__testing__test_service__orpc_desc, ch, NULL, NULL),
        0);
    for (int i = 0; i < 20; i++) {
        Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
        Grpc__Testing__SimpleResponse *resp = NULL;
        orpc_status st = grpc__testing__test_service__client__unary_call(
            cl, &req, &resp, NULL);
        assert_int_equal(st.code, ORPC_OK);
        grpc__testing__simple_response__free_unpacked(resp, NULL);
        orpc_status_clear(&st);
    }
    orpc_client_free(cl);
    orpc_channel_unref(ch);
    stop_server(srv);
}

static char g_chan_log[1024];

static void chan_logger(orpc_log_level lvl, const char *msg, void *ud)
{
    (void)lvl;
    (void)ud;
    /* orpc_channel_new() logs on the caller's thread */
    snprintf(g_chan_log, sizeof(g_chan_log), "%s", msg);
}

/* One unary call over a unix socket; ORPC_ECONFIG etc. from
 * orpc_channel_new() come back as INTERNAL naming the error. */
static orpc_status unix_call(const char *target, const orpc_tls_opts *tls)
{
    orpc_channel *ch;
    orpc_client *cl;
    orpc_channel_opts co = {
        .tls = tls, .connect_timeout_ms = 3000, .log = chan_logger};
    int rc = orpc_channel_new(&ch, target, &co, NULL, NULL);
    if (rc != 0)
        return orpc_status_errorf(ORPC_INTERNAL, "channel: %s",
                                  orpc_err_name(rc));
    orpc_client_new(&cl, &grpc__testing__test_service__orpc_desc, ch, NULL, NULL);
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__SimpleResponse *resp = NULL;
    orpc_call_opts o = {.timeout_ms = 5000};
    orpc_status st =
        grpc__testing__test_service__client__unary_call(cl, &req, &resp, &o);
    grpc__testing__simple_response__free_unpacked(resp, NULL);
    orpc_client_free(cl);
    orpc_channel_unref(ch);
    return st;
}

/* A unix: target has no host: without server_name or expected_spiffe_id a
 * TLS channel would accept any certificate the CA ever signed, so
 * orpc_channel_new() refuses it; with server_name the name is checked. */
static void test_tls_unix_target_needs_a_name(void **state)
{
    (void)state;
    char path[300], target[320];
    orpc_server *srv;
    snprintf(path, sizeof(path), "%s/tls.sock", g_dir);
    snprintf(target, sizeof(target), "unix:%s", path);
    orpc_server_opts o = {.io_threads = 1};
    o.tls.cert_file = g_cert;
    o.tls.key_file = g_key;
    assert_int_equal(orpc_server_new(&srv, &o, NULL, NULL), 0);
    assert_int_equal(
        grpc__testing__test_service__server__register(srv, &handlers, NULL), 0);
    assert_int_equal(orpc_server_listen(srv, target, NULL, NULL), 0);
    assert_int_equal(orpc_server_start(srv), 0);
    uv_mutex_lock(&g_lock);
    g_handled = 0;
    uv_mutex_unlock(&g_lock);

    /* no name at all (and an empty one): refused before any connection */
    orpc_tls_opts t = {.ca_file = g_ca};
    for (int i = 0; i < 2; i++) {
        t.server_name = i == 0 ? NULL : "";
        g_chan_log[0] = '\0';
        orpc_status st = unix_call(target, &t);
        assert_int_equal(st.code, ORPC_INTERNAL);
        assert_non_null(strstr(st.message, "ORPC_ECONFIG"));
        orpc_status_clear(&st);
        assert_non_null(strstr(g_chan_log, "server_name"));
    }
    /* the same refusal with "unix://" */
    snprintf(target, sizeof(target), "unix://%s", path);
    t.server_name = NULL;
    orpc_status st = unix_call(target, &t);
    assert_int_equal(st.code, ORPC_INTERNAL);
    orpc_status_clear(&st);
    assert_int_equal(handled(), 0);

    /* server_name is checked against the certificate */
    t.server_name = "evil.example.org";
    st = unix_call(target, &t);
    assert_int_equal(st.code, ORPC_UNAVAILABLE);
    assert_non_null(strstr(st.message, "expected name"));
    orpc_status_clear(&st);
    assert_int_equal(handled(), 0);
    t.server_name = "localhost";
    st = unix_call(target, &t);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
    assert_int_equal(handled(), 1);

    /* expected_spiffe_id alone is accepted as the check (this server's
     * certificate has no SPIFFE ID, so the call itself fails) */
    t.server_name = NULL;
    t.expected_spiffe_id = "spiffe://test.orpc/service/jobs";
    st = unix_call(target, &t);
    assert_int_equal(st.code, ORPC_UNAVAILABLE);
    assert_non_null(strstr(st.message, "SPIFFE"));
    orpc_status_clear(&st);
    assert_int_equal(handled(), 1);
    stop_server(srv);
}

static void test_ipv6(void **state)
{
    (void)state;
    orpc_server *srv;
    int port;
    orpc_server_opts o = {.plaintext = 1, .io_threads = 1};
    assert_int_equal(orpc_server_new(&srv, &o, NULL, NULL), 0);
    assert_int_equal(
        grpc__testing__test_service__server__register(srv, &handlers, NULL), 0);
    assert_int_equal(orpc_server_listen(srv, "[::1]:0", &port, NULL), 0);
    assert_int_equal(orpc_server_start(srv), 0);
    char target[64];
    snprintf(target, sizeof(target), "[::1]:%d", port);
    orpc_channel *ch;
    orpc_client *cl;
    orpc_channel_opts co = {.plaintext = 1};
    assert_int_equal(orpc_channel_new(&ch, target, &co, NULL, NULL), 0);
    assert_int_equal(
        orpc_client_new(&cl, &grpc__testing__test_service__orpc_desc, ch, NULL, NULL),
        0);
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__SimpleResponse *resp = NULL;
    orpc_status st =
        grpc__testing__test_service__client__unary_call(cl, &req, &resp, NULL);
    assert_int_equal(st.code, ORPC_OK);
    grpc__testing__simple_response__free_unpacked(resp, NULL);
    orpc_status_clear(&st);
    orpc_client_free(cl);
    orpc_channel_unref(ch);
    stop_server(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_tls),
        cmocka_unit_test(test_wrong_server_name),
        cmocka_unit_test(test_untrusted_server),
        cmocka_unit_test(test_plaintext_client_on_tls_port),
        cmocka_unit_test(test_mtls_identity),
        cmocka_unit_test(test_mtls_no_client_cert),
        cmocka_unit_test(test_expected_spiffe_mismatch),
        cmocka_unit_test(test_unix_socket),
        cmocka_unit_test(test_tls_unix_target_needs_a_name),
        cmocka_unit_test(test_ipv6),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
