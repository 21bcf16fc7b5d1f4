/*
 * rpc_e2e_test.c — the runtime end to end on loopback: a real server and a
 * real channel in one process, talking gRPC over HTTP/2 (h2c and unix
 * sockets) through the generated grpc.testing stubs.
 *
 * Covers the four call kinds, metadata both ways, status codes and
 * messages, deadlines on both sides, cancellation, unknown methods, message
 * size limits, gzip both ways, and server shutdown.  Bad input on the wire
 * (raw sockets) lives in rpc_badinput_test.c.
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

typedef Grpc__Testing__SimpleRequest SimpleRequest;
typedef Grpc__Testing__SimpleResponse SimpleResponse;

/* ---- the service ---- */

static uint8_t *zeros(orpc_ctx *ctx, size_t n)
{
    uint8_t *p = orpc_arena_alloc(orpc_ctx_arena(ctx), n);
    if (p)
        memset(p, 0, n);
    return p;
}

static orpc_status empty_call(orpc_ctx *ctx, const Grpc__Testing__Empty *req,
                              Grpc__Testing__Empty *resp, void *ud)
{
    (void)ctx;
    (void)req;
    (void)resp;
    (void)ud;
    return ORPC_STATUS_OK;
}

static orpc_status unary_call(orpc_ctx *ctx, const SimpleRequest *req,
                              SimpleResponse *resp, void *ud)
{
    (void)ud;
    const uint8_t *v;
    size_t len;
    /* (a handler runs on a worker thread, where cmocka cannot assert: a
     * failure becomes the call's status, which the test checks) */
    if (orpc_metadata_get(orpc_ctx_metadata(ctx), "x-echo", &v, &len) == 0 &&
        (orpc_ctx_add_header(ctx, "x-echo", v, len) != 0 ||
         orpc_ctx_add_trailer(ctx, "x-echo-trailer-bin", v, len) != 0))
        return orpc_status_new(ORPC_INTERNAL, "echoing x-echo failed");
    if (req->response_status && req->response_status->code != 0)
        return orpc_status_new((orpc_code)req->response_status->code,
                               req->response_status->message);
    if (req->response_compressed && req->response_compressed->value &&
        orpc_ctx_set_compression(ctx, "gzip") != 0)
        return orpc_status_new(ORPC_INTERNAL, "set_compression failed");
    if (req->response_size > 0) {
        Grpc__Testing__Payload *p =
            orpc_arena_alloc(orpc_ctx_arena(ctx), sizeof(*p));
        if (p == NULL)
            return orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "arena");
        grpc__testing__payload__init(p);
        p->body.len = (size_t)req->response_size;
        p->body.data = zeros(ctx, p->body.len);
        if (p->body.data == NULL)
            return orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "arena");
        resp->payload = p;
    }
    if (req->fill_username) {
        const char *id = orpc_ctx_peer_identity(ctx);
        resp->username = orpc_arena_strdup(orpc_ctx_arena(ctx), id ? id : "");
    }
    return ORPC_STATUS_OK;
}

static orpc_status streaming_output(
    orpc_ctx *ctx, const Grpc__Testing__StreamingOutputCallRequest *req,
    Grpc__Testing__TestService_StreamingOutputCall_ServerWriter *w, void *ud)
{
    (void)ud;
    for (size_t i = 0; i < req->n_response_parameters; i++) {
        const Grpc__Testing__ResponseParameters *rp =
            req->response_parameters[i];
        if (rp->interval_us > 0)
            usleep((useconds_t)rp->interval_us);
        Grpc__Testing__StreamingOutputCallResponse r =
            GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
        Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
        uint8_t *body = calloc(1, (size_t)rp->size + 1);
        p.body.data = body;
        p.body.len = (size_t)rp->size;
        r.payload = &p;
        int rc =
            grpc__testing__test_service__server__streaming_output_call__send(
                w, &r);
        free(body);
        if (rc != 0)
            return orpc_status_new(ORPC_CANCELLED, "client went away");
    }
    if (orpc_ctx_is_cancelled(ctx))
        return orpc_status_new(ORPC_CANCELLED, "cancelled");
    return ORPC_STATUS_OK;
}

static orpc_status
streaming_input(orpc_ctx *ctx,
                Grpc__Testing__TestService_StreamingInputCall_ServerReader *r,
                Grpc__Testing__StreamingInputCallResponse *resp, void *ud)
{
    (void)ctx;
    (void)ud;
    const Grpc__Testing__StreamingInputCallRequest *m;
    int rc;
    int32_t total = 0;
    while (
        (rc = grpc__testing__test_service__server__streaming_input_call__recv(
             r, &m)) == 1)
        total += m->payload ? (int32_t)m->payload->body.len : 0;
    if (rc < 0)
        return orpc_status_new(ORPC_CANCELLED, "cancelled");
    resp->aggregated_payload_size = total;
    return ORPC_STATUS_OK;
}

static orpc_status
full_duplex(orpc_ctx *ctx,
            Grpc__Testing__TestService_FullDuplexCall_ServerStream *s, void *ud)
{
    (void)ctx;
    (void)ud;
    const Grpc__Testing__StreamingOutputCallRequest *m;
    int rc;
    while ((rc = grpc__testing__test_service__server__full_duplex_call__recv(
                s, &m)) == 1) {
        if (m->response_status && m->response_status->code != 0)
            return orpc_status_new((orpc_code)m->response_status->code,
                                   m->response_status->message);
        for (size_t i = 0; i < m->n_response_parameters; i++) {
            Grpc__Testing__StreamingOutputCallResponse r =
                GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
            Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
            size_t n = (size_t)m->response_parameters[i]->size;
            uint8_t *body = calloc(1, n + 1);
            p.body.data = body;
            p.body.len = n;
            r.payload = &p;
            int src =
                grpc__testing__test_service__server__full_duplex_call__send(s,
                                                                            &r);
            free(body);
            if (src != 0)
                return orpc_status_new(ORPC_CANCELLED, "cancelled");
        }
    }
    if (rc < 0)
        return orpc_status_new(ORPC_CANCELLED, "cancelled");
    return ORPC_STATUS_OK;
}

static const Grpc__Testing__TestService_Handlers handlers = {
    .empty_call = empty_call,
    .unary_call = unary_call,
    .streaming_output_call = streaming_output,
    .streaming_input_call = streaming_input,
    .full_duplex_call = full_duplex,
};

/* ---- fixture ---- */

typedef struct fx {
    orpc_server *srv;
    orpc_channel *ch;
    orpc_client *client;
    int port;
} fx;

static int setup_with(void **state, const orpc_server_opts *so,
                      const orpc_channel_opts *co_in)
{
    fx *f = calloc(1, sizeof(*f));
    orpc_server_opts o = so ? *so : (orpc_server_opts){0};
    o.plaintext = 1;
    if (o.io_threads == 0)
        o.io_threads = 2;
    assert_int_equal(orpc_server_new(&f->srv, &o, NULL, NULL), 0);
    assert_int_equal(
        grpc__testing__test_service__server__register(f->srv, &handlers, NULL),
        0);
    assert_int_equal(orpc_server_listen(f->srv, "127.0.0.1:0", &f->port, NULL), 0);
    assert_true(f->port > 0);
    assert_int_equal(orpc_server_start(f->srv), 0);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", f->port);
    orpc_channel_opts co = co_in ? *co_in : (orpc_channel_opts){0};
    co.plaintext = 1;
    assert_int_equal(orpc_channel_new(&f->ch, target, &co, NULL, NULL), 0);
    assert_int_equal(orpc_client_new(&f->client,
                                     &grpc__testing__test_service__orpc_desc,
                                     f->ch, NULL, NULL),
                     0);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, NULL, NULL);
}

static int teardown(void **state)
{
    fx *f = *state;
    orpc_client_free(f->client);
    orpc_channel_unref(f->ch);
    assert_int_equal(orpc_server_shutdown(f->srv, 1000), 0);
    assert_int_equal(orpc_server_wait(f->srv), 0);
    orpc_server_free(f->srv);
    free(f);
    return 0;
}

/* ---- tests ---- */

static void test_empty_unary(void **state)
{
    fx *f = *state;
    Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT, *resp = NULL;
    orpc_status st = grpc__testing__test_service__client__empty_call(
        f->client, &req, &resp, NULL);
    assert_int_equal(st.code, ORPC_OK);
    assert_non_null(resp);
    grpc__testing__empty__free_unpacked(resp, NULL);
    orpc_status_clear(&st);
}

static void test_large_unary(void **state)
{
    fx *f = *state;
    SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
    uint8_t *body = calloc(1, 271828);
    p.body.data = body;
    p.body.len = 271828;
    req.payload = &p;
    req.response_size = 314159;
    SimpleResponse *resp = NULL;
    orpc_status st = grpc__testing__test_service__client__unary_call(
        f->client, &req, &resp, NULL);
    assert_int_equal(st.code, ORPC_OK);
    assert_non_null(resp);
    assert_non_null(resp->payload);
    assert_int_equal(resp->payload->body.len, 314159);
    grpc__testing__simple_response__free_unpacked(resp, NULL);
    free(body);
    orpc_status_clear(&st);
}

/* Messages larger than the 1 MiB stream window (and many of them on one
 * connection, more than its 8 MiB window) must flow: flow control hands
 * back the bytes of incomplete messages as they arrive. */
static void test_bigger_than_window(void **state)
{
    fx *f = *state;
    size_t n = 3u * 1024 * 1024;
    uint8_t *body = calloc(1, n);
    for (int i = 0; i < 4; i++) {
        SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
        Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
        p.body.data = body;
        p.body.len = n;
        req.payload = &p;
        req.response_size = (int32_t)(n + 500000);
        SimpleResponse *resp = NULL;
        orpc_call_opts o = {.timeout_ms = 20000};
        orpc_status st = grpc__testing__test_service__client__unary_call(
            f->client, &req, &resp, &o);
        assert_int_equal(st.code, ORPC_OK);
        assert_int_equal(resp->payload->body.len, n + 500000);
        grpc__testing__simple_response__free_unpacked(resp, NULL);
        orpc_status_clear(&st);
    }
    free(body);
    /* a stream of big messages */
    Grpc__Testing__StreamingOutputCallRequest sreq =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    Grpc__Testing__ResponseParameters rp =
        GRPC__TESTING__RESPONSE_PARAMETERS__INIT;
    Grpc__Testing__ResponseParameters *rps[5] = {&rp, &rp, &rp, &rp, &rp};
    rp.size = 2 * 1024 * 1024;
    sreq.n_response_parameters = 5;
    sreq.response_parameters = rps;
    Grpc__Testing__TestService_StreamingOutputCall_Reader *r;
    assert_int_equal(grpc__testing__test_service__client__streaming_output_call(
                         f->client, &sreq, NULL, &r),
                     0);
    Grpc__Testing__StreamingOutputCallResponse *m;
    int got = 0;
    while (grpc__testing__test_service__client__streaming_output_call__recv(
               r, &m) == 1) {
        assert_int_equal(m->payload->body.len, (size_t)rp.size);
        grpc__testing__streaming_output_call_response__free_unpacked(m, NULL);
        got++;
    }
    assert_int_equal(got, 5);
    orpc_status st =
        grpc__testing__test_service__client__streaming_output_call__finish(r);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
}

static void test_many_sequential_and_metadata(void **state)
{
    fx *f = *state;
    for (int i = 0; i < 200; i++) {
        SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
        req.response_size = i;
        orpc_metadata *md, *hdrs, *trl;
        assert_int_equal(orpc_metadata_new(&md, NULL), 0);
        assert_int_equal(orpc_metadata_new(&hdrs, NULL), 0);
        assert_int_equal(orpc_metadata_new(&trl, NULL), 0);
        uint8_t bin[3] = {0xff, 0x00, (uint8_t)i};
        /* x-echo is not -bin: the non-ASCII value is refused locally... */
        assert_int_equal(orpc_metadata_add(md, "x-echo", bin, 3), ORPC_EINVAL);
        orpc_call_opts o = {.metadata = md,
                            .headers_out = hdrs,
                            .trailers_out = trl,
                            .timeout_ms = 5000};
        SimpleResponse *resp = NULL;
        orpc_metadata_free(md);
        assert_int_equal(orpc_metadata_new(&md, NULL), 0);
        char txt[16];
        snprintf(txt, sizeof(txt), "v%d", i);
        assert_int_equal(orpc_metadata_add_str(md, "x-echo", txt), 0);
        o.metadata = md;
        orpc_status st = grpc__testing__test_service__client__unary_call(
            f->client, &req, &resp, &o);
        assert_int_equal(st.code, ORPC_OK);
        assert_non_null(resp);
        if (i > 0) {
            assert_non_null(resp->payload);
            assert_int_equal(resp->payload->body.len, (size_t)i);
        }
        const uint8_t *v;
        size_t len;
        assert_int_equal(orpc_metadata_get(hdrs, "x-echo", &v, &len), 0);
        assert_memory_equal(v, txt, strlen(txt));
        assert_int_equal(orpc_metadata_get(trl, "x-echo-trailer-bin", &v, &len),
                         0);
        assert_int_equal(len, strlen(txt));
        grpc__testing__simple_response__free_unpacked(resp, NULL);
        orpc_status_clear(&st);
        orpc_metadata_free(md);
        orpc_metadata_free(hdrs);
        orpc_metadata_free(trl);
    }
}

static void test_status_and_message(void **state)
{
    fx *f = *state;
    SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__EchoStatus es = GRPC__TESTING__ECHO_STATUS__INIT;
    es.code = 2;
    es.message =
        "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n";
    req.response_status = &es;
    SimpleResponse *resp = NULL;
    orpc_status st = grpc__testing__test_service__client__unary_call(
        f->client, &req, &resp, NULL);
    assert_int_equal(st.code, ORPC_UNKNOWN);
    assert_null(resp);
    assert_string_equal(st.message, es.message);
    orpc_status_clear(&st);
    for (int code = 1; code <= 16; code++) {
        es.code = code;
        es.message = "x";
        st = grpc__testing__test_service__client__unary_call(f->client, &req,
                                                             &resp, NULL);
        assert_int_equal(st.code, code);
        orpc_status_clear(&st);
    }
}

static void test_unimplemented(void **state)
{
    fx *f = *state;
    Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT, *resp = NULL;
    /* Registered but no handler. */
    orpc_status st = grpc__testing__test_service__client__unimplemented_call(
        f->client, &req, &resp, NULL);
    assert_int_equal(st.code, ORPC_UNIMPLEMENTED);
    orpc_status_clear(&st);
    /* A service the server does not have. */
    orpc_client *u;
    assert_int_equal(
        orpc_client_new(&u, &grpc__testing__unimplemented_service__orpc_desc,
                        f->ch, NULL, NULL),
        0);
    st = grpc__testing__unimplemented_service__client__unimplemented_call(
        u, &req, &resp, NULL);
    assert_int_equal(st.code, ORPC_UNIMPLEMENTED);
    assert_non_null(strstr(st.message, "unknown service"));
    orpc_status_clear(&st);
    orpc_client_free(u);
}

static void test_server_streaming(void **state)
{
    fx *f = *state;
    static const int sizes[] = {31415, 9, 2653, 58979};
    Grpc__Testing__StreamingOutputCallRequest req =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    Grpc__Testing__ResponseParameters rp[4], *rpp[4];
    for (int i = 0; i < 4; i++) {
        grpc__testing__response_parameters__init(&rp[i]);
        rp[i].size = sizes[i];
        rpp[i] = &rp[i];
    }
    req.n_response_parameters = 4;
    req.response_parameters = rpp;
    Grpc__Testing__TestService_StreamingOutputCall_Reader *r;
    assert_int_equal(grpc__testing__test_service__client__streaming_output_call(
                         f->client, &req, NULL, &r),
                     0);
    Grpc__Testing__StreamingOutputCallResponse *m;
    int n = 0, rc;
    while (
        (rc = grpc__testing__test_service__client__streaming_output_call__recv(
             r, &m)) == 1) {
        assert_true(n < 4);
        assert_int_equal(m->payload->body.len, (size_t)sizes[n]);
        grpc__testing__streaming_output_call_response__free_unpacked(m, NULL);
        n++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(n, 4);
    orpc_status st =
        grpc__testing__test_service__client__streaming_output_call__finish(r);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
}

static void test_client_streaming(void **state)
{
    fx *f = *state;
    static const int sizes[] = {27182, 8, 1828, 45904};
    Grpc__Testing__TestService_StreamingInputCall_Writer *w;
    assert_int_equal(grpc__testing__test_service__client__streaming_input_call(
                         f->client, NULL, &w),
                     0);
    for (int i = 0; i < 4; i++) {
        Grpc__Testing__StreamingInputCallRequest m =
            GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
        Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
        uint8_t *body = calloc(1, (size_t)sizes[i]);
        p.body.data = body;
        p.body.len = (size_t)sizes[i];
        m.payload = &p;
        assert_int_equal(
            grpc__testing__test_service__client__streaming_input_call__send(w,
                                                                            &m),
            0);
        free(body);
    }
    Grpc__Testing__StreamingInputCallResponse *resp = NULL;
    orpc_status st =
        grpc__testing__test_service__client__streaming_input_call__finish(
            w, &resp);
    assert_int_equal(st.code, ORPC_OK);
    assert_non_null(resp);
    assert_int_equal(resp->aggregated_payload_size, 74922);
    grpc__testing__streaming_input_call_response__free_unpacked(resp, NULL);
    orpc_status_clear(&st);
}

static void test_ping_pong(void **state)
{
    fx *f = *state;
    static const int req_sizes[] = {27182, 8, 1828, 45904};
    static const int resp_sizes[] = {31415, 9, 2653, 58979};
    Grpc__Testing__TestService_FullDuplexCall_Stream *s;
    assert_int_equal(grpc__testing__test_service__client__full_duplex_call(
                         f->client, NULL, &s),
                     0);
    for (int i = 0; i < 4; i++) {
        Grpc__Testing__StreamingOutputCallRequest m =
            GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
        Grpc__Testing__ResponseParameters rp =
            GRPC__TESTING__RESPONSE_PARAMETERS__INIT;
        Grpc__Testing__ResponseParameters *rpp = &rp;
        Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
        rp.size = resp_sizes[i];
        m.n_response_parameters = 1;
        m.response_parameters = &rpp;
        uint8_t *body = calloc(1, (size_t)req_sizes[i]);
        p.body.data = body;
        p.body.len = (size_t)req_sizes[i];
        m.payload = &p;
        assert_int_equal(
            grpc__testing__test_service__client__full_duplex_call__send(s, &m),
            0);
        free(body);
        Grpc__Testing__StreamingOutputCallResponse *r;
        assert_int_equal(
            grpc__testing__test_service__client__full_duplex_call__recv(s, &r),
            1);
        assert_int_equal(r->payload->body.len, (size_t)resp_sizes[i]);
        grpc__testing__streaming_output_call_response__free_unpacked(r, NULL);
    }
    assert_int_equal(
        grpc__testing__test_service__client__full_duplex_call__close_send(s),
        0);
    Grpc__Testing__StreamingOutputCallResponse *r;
    assert_int_equal(
        grpc__testing__test_service__client__full_duplex_call__recv(s, &r), 0);
    orpc_status st =
        grpc__testing__test_service__client__full_duplex_call__finish(s);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
}

static void test_empty_stream(void **state)
{
    fx *f = *state;
    Grpc__Testing__TestService_FullDuplexCall_Stream *s;
    assert_int_equal(grpc__testing__test_service__client__full_duplex_call(
                         f->client, NULL, &s),
                     0);
    assert_int_equal(
        grpc__testing__test_service__client__full_duplex_call__close_send(s),
        0);
    Grpc__Testing__StreamingOutputCallResponse *r;
    assert_int_equal(
        grpc__testing__test_service__client__full_duplex_call__recv(s, &r), 0);
    orpc_status st =
        grpc__testing__test_service__client__full_duplex_call__finish(s);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
}

static void test_cancel_after_begin(void **state)
{
    fx *f = *state;
    Grpc__Testing__TestService_StreamingInputCall_Writer *w;
    assert_int_equal(grpc__testing__test_service__client__streaming_input_call(
                         f->client, NULL, &w),
                     0);
    grpc__testing__test_service__client__streaming_input_call__cancel(w);
    Grpc__Testing__StreamingInputCallResponse *resp = NULL;
    orpc_status st =
        grpc__testing__test_service__client__streaming_input_call__finish(
            w, &resp);
    assert_int_equal(st.code, ORPC_CANCELLED);
    assert_null(resp);
    orpc_status_clear(&st);
}

static void test_timeout_on_sleeping_server(void **state)
{
    fx *f = *state;
    Grpc__Testing__TestService_FullDuplexCall_Stream *s;
    orpc_call_opts o = {.timeout_ms = 1};
    assert_int_equal(grpc__testing__test_service__client__full_duplex_call(
                         f->client, &o, &s),
                     0);
    Grpc__Testing__StreamingOutputCallRequest m =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    grpc__testing__test_service__client__full_duplex_call__send(s, &m);
    usleep(20000);
    Grpc__Testing__StreamingOutputCallResponse *r;
    assert_true(
        grpc__testing__test_service__client__full_duplex_call__recv(s, &r) < 0);
    orpc_status st =
        grpc__testing__test_service__client__full_duplex_call__finish(s);
    assert_int_equal(st.code, ORPC_DEADLINE_EXCEEDED);
    orpc_status_clear(&st);
}

static void test_compression_both_ways(void **state)
{
    fx *f = *state;
    SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__BoolValue yes = GRPC__TESTING__BOOL_VALUE__INIT;
    yes.value = 1;
    req.response_compressed = &yes;
    req.response_size = 100000;
    Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
    uint8_t *body = calloc(1, 50000);
    p.body.data = body;
    p.body.len = 50000;
    req.payload = &p;
    orpc_call_opts o = {.compression = "gzip"};
    SimpleResponse *resp = NULL;
    orpc_status st = grpc__testing__test_service__client__unary_call(
        f->client, &req, &resp, &o);
    assert_int_equal(st.code, ORPC_OK);
    assert_int_equal(resp->payload->body.len, 100000);
    grpc__testing__simple_response__free_unpacked(resp, NULL);
    orpc_status_clear(&st);
    free(body);
}

static void test_recv_limit(void **state)
{
    fx *f = *state;
    SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    req.response_size = 5 * 1024 * 1024; /* over the 4 MiB default */
    SimpleResponse *resp = NULL;
    orpc_status st = grpc__testing__test_service__client__unary_call(
        f->client, &req, &resp, NULL);
    assert_int_equal(st.code, ORPC_RESOURCE_EXHAUSTED);
    assert_null(resp);
    orpc_status_clear(&st);
    /* and the channel still works */
    req.response_size = 10;
    st = grpc__testing__test_service__client__unary_call(f->client, &req, &resp,
                                                         NULL);
    assert_int_equal(st.code, ORPC_OK);
    grpc__testing__simple_response__free_unpacked(resp, NULL);
    orpc_status_clear(&st);
}

static void test_server_recv_limit(void **state)
{
    fx *f = *state;
    SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
    size_t n = 4 * 1024 * 1024 + 10;
    uint8_t *body = calloc(1, n);
    p.body.data = body;
    p.body.len = n;
    req.payload = &p;
    SimpleResponse *resp = NULL;
    orpc_status st = grpc__testing__test_service__client__unary_call(
        f->client, &req, &resp, NULL);
    assert_int_equal(st.code, ORPC_RESOURCE_EXHAUSTED);
    orpc_status_clear(&st);
    free(body);
}

static int done_count;
static uv_mutex_t done_lock;

static void async_done(const orpc_status *st, SimpleResponse *resp, void *ud)
{
    (void)ud;
    uv_mutex_lock(&done_lock);
    if (st->code == ORPC_OK && resp && resp->payload &&
        resp->payload->body.len == 7)
        done_count++;
    uv_mutex_unlock(&done_lock);
    grpc__testing__simple_response__free_unpacked(resp, NULL);
}

static void test_async_many_concurrent(void **state)
{
    fx *f = *state;
    uv_mutex_init(&done_lock);
    done_count = 0;
    SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    req.response_size = 7;
    for (int i = 0; i < 500; i++)
        assert_int_equal(grpc__testing__test_service__client__unary_call__async(
                             f->client, &req, NULL, async_done, NULL),
                         0);
    for (int i = 0; i < 1000; i++) {
        uv_mutex_lock(&done_lock);
        int n = done_count;
        uv_mutex_unlock(&done_lock);
        if (n == 500)
            break;
        usleep(10000);
    }
    assert_int_equal(done_count, 500);
    uv_mutex_destroy(&done_lock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empty_unary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_unary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bigger_than_window, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_many_sequential_and_metadata,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_and_message, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unimplemented, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_streaming, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_streaming, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping_pong, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_after_begin, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_timeout_on_sleeping_server, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_compression_both_ways, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_recv_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_recv_limit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_async_many_concurrent, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
