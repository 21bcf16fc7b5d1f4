/*
 * rpc_metrics_test.c — the metrics interceptor on real calls: a server and
 * a channel on loopback, each recording into its own registry, calls made
 * from several threads (N that succeed, M that fail NOT_FOUND), and both
 * pages counting exactly N and M with the messages and payload bytes each
 * way; the server's page read over its admin listener and checked by
 * promtool.  Then a server stream: every message counted, on both sides.
 *
 * The interceptors are given explicitly, without the default chain
 * (no_default_interceptors), so the counts are the metrics interceptor's
 * alone whatever the default chain holds.
 *
 * Every wait is bounded: calls carry deadlines, polls a count.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include <orpc/orpc.h>

#include "grpc/testing/test.orpc.h"
#include "tests/metrics_page.h"

typedef Grpc__Testing__SimpleRequest SimpleReq;
typedef Grpc__Testing__SimpleResponse SimpleResp;

#define THREADS 4
#define PER_THREAD 25
#define RESP_SIZE 10
#define METHOD "method=\"/grpc.testing.TestService/UnaryCall\""
#define SMETHOD "method=\"/grpc.testing.TestService/StreamingOutputCall\""

static orpc_status unary_call(orpc_ctx *ctx, const SimpleReq *req,
                              SimpleResp *resp, void *ud)
{
    (void)ud;
    if (req->response_status && req->response_status->code != 0)
        return orpc_status_new((orpc_code)req->response_status->code,
                               req->response_status->message);
    Grpc__Testing__Payload *p =
        orpc_arena_alloc(orpc_ctx_arena(ctx), sizeof(*p));
    uint8_t *body = orpc_arena_alloc(orpc_ctx_arena(ctx), RESP_SIZE);
    if (p == NULL || body == NULL)
        return orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "arena");
    grpc__testing__payload__init(p);
    memset(body, 'x', RESP_SIZE);
    p->body.data = body;
    p->body.len = RESP_SIZE;
    resp->payload = p;
    return ORPC_STATUS_OK;
}

/* One response of RESP_SIZE bytes per response parameter. */
static orpc_status streaming_output(
    orpc_ctx *ctx, const Grpc__Testing__StreamingOutputCallRequest *req,
    Grpc__Testing__TestService_StreamingOutputCall_ServerWriter *w, void *ud)
{
    (void)ctx, (void)ud;
    for (size_t i = 0; i < req->n_response_parameters; i++) {
        Grpc__Testing__StreamingOutputCallResponse r =
            GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
        Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
        uint8_t body[RESP_SIZE] = {0};
        p.body.data = body;
        p.body.len = RESP_SIZE;
        r.payload = &p;
        if (grpc__testing__test_service__server__streaming_output_call__send(
                w, &r) != 0)
            return orpc_status_new(ORPC_CANCELLED, "client went away");
    }
    return ORPC_STATUS_OK;
}

static const Grpc__Testing__TestService_Handlers handlers = {
    .unary_call = unary_call, .streaming_output_call = streaming_output};

/* The request of call |i|: every fifth asks for NOT_FOUND. */
static void make_request(int i, SimpleReq *req, Grpc__Testing__EchoStatus *es)
{
    grpc__testing__simple_request__init(req);
    grpc__testing__echo_status__init(es);
    req->response_size = RESP_SIZE;
    if (i % 5 == 0) {
        es->code = ORPC_NOT_FOUND;
        es->message = "nope";
        req->response_status = es;
    }
}

typedef struct worker {
    orpc_channel *ch;
    int ok, failed, other;
} worker;

static void calls(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        SimpleReq req;
        Grpc__Testing__EchoStatus es;
        make_request(i, &req, &es);
        ProtobufCMessage *resp = NULL;
        orpc_call_opts o = {.timeout_ms = 10000};
        orpc_status st = orpc_channel_invoke(
            w->ch, grpc__testing__test_service__method__unary_call, &req.base,
            &resp, &o);
        if (st.code == ORPC_OK)
            w->ok++;
        else if (st.code == ORPC_NOT_FOUND)
            w->failed++;
        else
            w->other++;
        orpc_status_clear(&st);
        if (resp)
            protobuf_c_message_free_unpacked(resp, NULL);
    }
}

/* GET /metrics from the admin listener at |port|: the body (malloc'd). */
static char *scrape(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    const char *req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL),
                     (ssize_t)strlen(req));
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    ssize_t n;
    while ((n = recv(fd, buf + len, cap - len - 1, 0)) > 0) {
        len += (size_t)n;
        if (cap - len < 4096) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    close(fd);
    buf[len] = '\0';
    assert_true(strncmp(buf, "HTTP/1.1 200 ", 13) == 0);
    char *body = strstr(buf, "\r\n\r\n");
    assert_non_null(body);
    char *out = strdup(body + 4);
    free(buf);
    return out;
}

/* The admin listener's page once sample |key| reads |want| (the server
 * finishes a call after its client has the answer), or after 5 s. */
static char *scrape_until(int port, const char *key, double want)
{
    char *p = scrape(port);
    for (int i = 0; i < 500 && page_value(p, key) != want; i++) {
        usleep(10000);
        free(p);
        p = scrape(port);
    }
    return p;
}

static void check_promtool(const char *page)
{
    char path[] = "/tmp/orpc_rpc_metrics_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, page, strlen(page)), (ssize_t)strlen(page));
    close(fd);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
    int rc = system(cmd);
    unlink(path);
    assert_int_equal(rc, 0);
}

static void test_calls_counted_both_sides(void **state)
{
    (void)state;
    orpc_metrics *ms = NULL, *mc = NULL;
    assert_int_equal(orpc_metrics_new(&ms, NULL, NULL), 0);
    assert_int_equal(orpc_metrics_new(&mc, NULL, NULL), 0);
    orpc_interceptor *ics = NULL, *icc = NULL;
    assert_int_equal(orpc_metrics_interceptor_new(&ics, ms), 0);
    assert_int_equal(orpc_metrics_interceptor_new(&icc, mc), 0);

    orpc_server_opts so = {.plaintext = 1,
                           .io_threads = 2,
                           .interceptors = &ics,
                           .n_interceptors = 1,
                           .no_default_interceptors = 1,
                           .metrics = ms,
                           .admin_address = "127.0.0.1:0"};
    orpc_server *srv = NULL;
    assert_int_equal(orpc_server_new(&srv, &so, NULL, NULL), 0);
    assert_int_equal(
        grpc__testing__test_service__server__register(srv, &handlers, NULL), 0);
    int port = 0;
    assert_int_equal(orpc_server_listen(srv, "127.0.0.1:0", &port, NULL), 0);
    assert_int_equal(orpc_server_start(srv), 0);
    int admin = orpc_server_admin_port(srv);
    assert_true(admin > 0);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    orpc_channel_opts co = {.plaintext = 1,
                            .interceptors = &icc,
                            .n_interceptors = 1,
                            .no_default_interceptors = 1};
    orpc_channel *ch = NULL;
    assert_int_equal(orpc_channel_new(&ch, target, &co, NULL, NULL), 0);
    /* the server and the channel hold their own references */
    orpc_interceptor_unref(ics);
    orpc_interceptor_unref(icc);

    uv_thread_t t[THREADS];
    worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker){.ch = ch};
        assert_int_equal(uv_thread_create(&t[i], calls, &w[i]), 0);
    }
    int ok = 0, failed = 0;
    for (int i = 0; i < THREADS; i++) {
        uv_thread_join(&t[i]);
        assert_int_equal(w[i].other, 0);
        ok += w[i].ok;
        failed += w[i].failed;
    }
    const int N = THREADS * (PER_THREAD - (PER_THREAD + 4) / 5);
    const int M = THREADS * ((PER_THREAD + 4) / 5);
    assert_int_equal(ok, N);
    assert_int_equal(failed, M);

    /* the wire sizes of the messages */
    SimpleReq req;
    Grpc__Testing__EchoStatus es;
    make_request(1, &req, &es);
    size_t ok_req = protobuf_c_message_get_packed_size(&req.base);
    make_request(0, &req, &es);
    size_t bad_req = protobuf_c_message_get_packed_size(&req.base);
    SimpleResp resp = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
    Grpc__Testing__Payload pl = GRPC__TESTING__PAYLOAD__INIT;
    uint8_t body[RESP_SIZE] = {0};
    pl.body.data = body;
    pl.body.len = RESP_SIZE;
    resp.payload = &pl;
    size_t ok_resp = protobuf_c_message_get_packed_size(&resp.base);
    assert_true(ok_req != bad_req);

    /* the client's page: the calls are over when invoke returns */
    char *p = NULL;
    assert_int_equal(orpc_metrics_prometheus(mc, &p, NULL), 0);
    assert_int_equal(page_value(p, "orpc_client_started_total{" METHOD "}"),
                     N + M);
    assert_int_equal(page_value(p, "orpc_client_handled_total{" METHOD
                                   ",code=\"OK\",served_by=\"grpc\"}"),
                     N);
    assert_int_equal(page_value(p, "orpc_client_handled_total{" METHOD
                                   ",code=\"NOT_FOUND\",served_by=\"grpc\"}"),
                     M);
    assert_int_equal(page_value(p, "orpc_client_in_flight{" METHOD "}"), 0);
    assert_int_equal(
        page_value(p, "orpc_client_handling_seconds_count{" METHOD "}"), N + M);
    assert_int_equal(page_value(p, "orpc_client_handling_seconds_bucket{" METHOD
                                   ",le=\"+Inf\"}"),
                     N + M);
    assert_int_equal(page_value(p, "orpc_client_msg_sent_total{" METHOD "}"),
                     N + M);
    assert_int_equal(
        page_value(p, "orpc_client_msg_received_total{" METHOD "}"), N);
    assert_int_equal(page_value(p, "orpc_client_sent_bytes_total{" METHOD "}"),
                     (double)(N * ok_req + M * bad_req));
    assert_int_equal(
        page_value(p, "orpc_client_received_bytes_total{" METHOD "}"),
        (double)(N * ok_resp));
    /* no server series on the client's registry */
    assert_null(strstr(p, "orpc_server_"));
    free(p);

    /* the server's page over the admin listener; its last calls may still
     * be finishing their on_end when the client has its answer */
    p = scrape_until(admin, "orpc_server_handling_seconds_count{" METHOD "}",
                     N + M);
    assert_int_equal(page_value(p, "orpc_server_started_total{" METHOD "}"),
                     N + M);
    assert_int_equal(
        page_value(p, "orpc_server_handled_total{" METHOD ",code=\"OK\"}"), N);
    assert_int_equal(page_value(p, "orpc_server_handled_total{" METHOD
                                   ",code=\"NOT_FOUND\"}"),
                     M);
    assert_int_equal(page_value(p, "orpc_server_in_flight{" METHOD "}"), 0);
    assert_int_equal(
        page_value(p, "orpc_server_msg_received_total{" METHOD "}"), N + M);
    assert_int_equal(page_value(p, "orpc_server_msg_sent_total{" METHOD "}"),
                     N);
    assert_int_equal(
        page_value(p, "orpc_server_received_bytes_total{" METHOD "}"),
        (double)(N * ok_req + M * bad_req));
    assert_int_equal(page_value(p, "orpc_server_sent_bytes_total{" METHOD "}"),
                     (double)(N * ok_resp));
    assert_null(strstr(p, "orpc_client_"));
    check_promtool(p);
    free(p);

    /* a server stream: each message counted as it goes */
    enum { STREAM_MSGS = 7 };
    orpc_client *cl = NULL;
    assert_int_equal(orpc_client_new(&cl,
                                     &grpc__testing__test_service__orpc_desc,
                                     ch, NULL, NULL),
                     0);
    Grpc__Testing__StreamingOutputCallRequest sreq =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    Grpc__Testing__ResponseParameters rp =
        GRPC__TESTING__RESPONSE_PARAMETERS__INIT;
    Grpc__Testing__ResponseParameters *rps[STREAM_MSGS];
    for (int i = 0; i < STREAM_MSGS; i++)
        rps[i] = &rp;
    sreq.response_parameters = rps;
    sreq.n_response_parameters = STREAM_MSGS;
    Grpc__Testing__TestService_StreamingOutputCall_Reader *rd = NULL;
    orpc_call_opts so2 = {.timeout_ms = 10000};
    assert_int_equal(grpc__testing__test_service__client__streaming_output_call(
                         cl, &sreq, &so2, &rd),
                     0);
    int got = 0;
    Grpc__Testing__StreamingOutputCallResponse *r = NULL;
    while (grpc__testing__test_service__client__streaming_output_call__recv(
               rd, &r) == 1) {
        got++;
        grpc__testing__streaming_output_call_response__free_unpacked(r, NULL);
        if (got == 3) {
            /* mid-stream: at least the three read (the IO thread counts
             * them as they arrive, maybe ahead of the reader) */
            assert_int_equal(orpc_metrics_prometheus(mc, &p, NULL), 0);
            double n =
                page_value(p, "orpc_client_msg_received_total{" SMETHOD "}");
            assert_true(n >= 3 && n <= STREAM_MSGS);
            free(p);
        }
    }
    assert_int_equal(got, STREAM_MSGS);
    orpc_status sst =
        grpc__testing__test_service__client__streaming_output_call__finish(rd);
    assert_int_equal(sst.code, ORPC_OK);
    orpc_status_clear(&sst);
    orpc_client_free(cl);
    Grpc__Testing__StreamingOutputCallResponse one =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
    one.payload = &pl;
    size_t one_size = protobuf_c_message_get_packed_size(&one.base);
    assert_int_equal(orpc_metrics_prometheus(mc, &p, NULL), 0);
    assert_int_equal(
        page_value(p, "orpc_client_msg_received_total{" SMETHOD "}"),
        STREAM_MSGS);
    assert_int_equal(
        page_value(p, "orpc_client_received_bytes_total{" SMETHOD "}"),
        (double)(STREAM_MSGS * one_size));
    assert_int_equal(page_value(p, "orpc_client_msg_sent_total{" SMETHOD "}"),
                     1);
    assert_int_equal(page_value(p, "orpc_client_handled_total{" SMETHOD
                                   ",code=\"OK\",served_by=\"grpc\"}"),
                     1);
    assert_int_equal(page_value(p, "orpc_client_in_flight{" SMETHOD "}"), 0);
    free(p);
    p = scrape_until(admin, "orpc_server_handling_seconds_count{" SMETHOD "}",
                     1);
    assert_int_equal(page_value(p, "orpc_server_msg_sent_total{" SMETHOD "}"),
                     STREAM_MSGS);
    assert_int_equal(page_value(p, "orpc_server_sent_bytes_total{" SMETHOD "}"),
                     (double)(STREAM_MSGS * one_size));
    assert_int_equal(
        page_value(p, "orpc_server_handled_total{" SMETHOD ",code=\"OK\"}"), 1);
    free(p);

    orpc_channel_unref(ch);
    assert_int_equal(orpc_server_shutdown(srv, 2000), 0);
    assert_int_equal(orpc_server_wait(srv), 0);
    orpc_server_free(srv);
    orpc_metrics_unref(ms);
    orpc_metrics_unref(mc);
}

/* Without options, a server and a channel record into registries of their
 * own through the default chain: orpc_server_metrics() and
 * orpc_channel_metrics() render the calls made, the channel's state
 * changes, and the admin listener serves the server's; with
 * no_default_interceptors there is none. */
static void test_default_chain(void **state)
{
    (void)state;
    orpc_server_opts so = {
        .plaintext = 1, .io_threads = 1, .admin_address = "127.0.0.1:0"};
    orpc_server *srv = NULL;
    assert_int_equal(orpc_server_new(&srv, &so, NULL, NULL), 0);
    assert_non_null(orpc_server_metrics(srv));
    assert_int_equal(
        grpc__testing__test_service__server__register(srv, &handlers, NULL), 0);
    int port = 0;
    assert_int_equal(orpc_server_listen(srv, "127.0.0.1:0", &port, NULL), 0);
    assert_int_equal(orpc_server_start(srv), 0);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    orpc_channel_opts co = {.plaintext = 1};
    orpc_channel *ch = NULL;
    assert_int_equal(orpc_channel_new(&ch, target, &co, NULL, NULL), 0);
    assert_non_null(orpc_channel_metrics(ch));
    enum { CALLS = 7 };
    for (int i = 1; i <= CALLS; i++) {
        SimpleReq req;
        Grpc__Testing__EchoStatus es;
        make_request(1, &req, &es);
        ProtobufCMessage *resp = NULL;
        orpc_status st = orpc_channel_invoke(
            ch, grpc__testing__test_service__method__unary_call, &req.base,
            &resp, NULL);
        assert_int_equal(st.code, ORPC_OK);
        protobuf_c_message_free_unpacked(resp, NULL);
    }
    char *p = NULL;
    size_t len = 0;
    assert_int_equal(
        orpc_metrics_prometheus(orpc_channel_metrics(ch), &p, &len), 0);
    assert_int_equal(page_value(p, "orpc_client_handled_total{" METHOD
                                   ",code=\"OK\",served_by=\"grpc\"}"),
                     CALLS);
    char key[160];
    snprintf(key, sizeof key,
             "orpc_client_channel_state_changes_total{target=\"%s\","
             "state=\"READY\"}",
             target);
    assert_int_equal(page_value(p, key), 1);
    check_promtool(p);
    free(p);
    p = scrape_until(orpc_server_admin_port(srv),
                     "orpc_server_handled_total{" METHOD ",code=\"OK\"}",
                     CALLS);
    assert_int_equal(
        page_value(p, "orpc_server_handled_total{" METHOD ",code=\"OK\"}"),
        CALLS);
    free(p);
    orpc_channel_unref(ch);
    assert_int_equal(orpc_server_shutdown(srv, 2000), 0);
    assert_int_equal(orpc_server_wait(srv), 0);
    orpc_server_free(srv);

    co.no_default_interceptors = 1;
    assert_int_equal(orpc_channel_new(&ch, target, &co, NULL, NULL), 0);
    assert_null(orpc_channel_metrics(ch));
    orpc_channel_unref(ch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calls_counted_both_sides),
        cmocka_unit_test(test_default_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
