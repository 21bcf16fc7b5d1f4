/*
 * interop_client.c — orpc's gRPC interop test client (orpc-interop-client).
 *
 * Runs one of gRPC's interop test cases (doc/interop-test-descriptions.md)
 * per invocation against a grpc.testing.TestService server — a real gRPC
 * one (tests/interop/python/interop_server.py) or orpc's own
 * (orpc-interop-server) — through the generated grpc.testing stubs.  Exits 0
 * only when the case passed (printing "PASS <case>" on stdout); otherwise
 * prints one line "FAIL <case>: <reason>" on stderr and exits 1 (2 for bad
 * usage).
 *
 * Usage:
 *   orpc-interop-client --server_port=N --test_case=NAME
 *                       [--server_host=H (default localhost)]
 *                       [--use_tls=true|false [--ca=F]
 *                        [--server_host_override=NAME] [--cert=F --key=F]]
 *                       [--rpc_timeout_s=S (default 20)]
 *                       [--service_config=JSON | --service_config=@FILE]
 *
 * --service_config gives the channel a gRPC service config
 * (orpc_channel_opts.service_config: retry policies, throttling, timeouts,
 * loadBalancingConfig), as JSON text or, after "@", the file holding it.
 * A config the channel refuses ends the run at once with exit code 2 and
 * the channel's reason on stderr, which names the JSON path of the fault.
 *
 * --server_host_override names the host TLS must verify (and sends as SNI)
 * and is sent as :authority.  Every RPC carries a deadline and the whole run
 * is bounded by an alarm, so a misbehaving server fails the case instead of
 * hanging it.
 *
 * Cases: empty_unary large_unary client_streaming server_streaming
 * ping_pong empty_stream cancel_after_begin cancel_after_first_response
 * timeout_on_sleeping_server custom_metadata status_code_and_message
 * special_status_message unimplemented_method unimplemented_service
 * client_compressed_unary server_compressed_unary
 * client_compressed_streaming server_compressed_streaming.
 *
 * Where orpc's public client API cannot do exactly what the descriptions
 * ask, and what is done instead:
 *   * Per-message compression when sending (client_compressed_streaming):
 *     an orpc call compresses all its request messages or none
 *     (orpc_call_opts.compression); there is no per-message switch.  The
 *     runtime sends a message uncompressed, with the compressed flag clear,
 *     when gzip would not make it smaller.  So the stream is a gzip call;
 *     its first request (zeros) goes out compressed and its second, which
 *     must go out uncompressed, carries 45904 incompressible (pseudo-random)
 *     bytes instead of zeros.  The server only adds up payload sizes, so the
 *     expected total is still 73086.  (The Python peer does the same: see
 *     tests/interop/python/README.md.)  The uncompressed probes of both
 *     client_compressed_* cases, and client_compressed_unary's
 *     expect_compressed=false request, go on calls without compression.
 *   * The compressed flag of received responses (server_compressed_*): the
 *     client API decompresses transparently and does not report it, so the
 *     client checks the calls succeed with the right payloads; the flag
 *     itself is what the descriptions call "some languages may not have
 *     access to the message flags".  The orpc server's side of it is
 *     checked by the Python client, which does see the flag.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <orpc/orpc.h>

#include "grpc/testing/test.orpc.h"

typedef Grpc__Testing__SimpleRequest SimpleRequest;
typedef Grpc__Testing__SimpleResponse SimpleResponse;
typedef Grpc__Testing__StreamingOutputCallRequest OutRequest;
typedef Grpc__Testing__StreamingOutputCallResponse OutResponse;
typedef Grpc__Testing__StreamingInputCallRequest InRequest;
typedef Grpc__Testing__StreamingInputCallResponse InResponse;
typedef Grpc__Testing__ResponseParameters ResponseParameters;
typedef Grpc__Testing__Payload Payload;

#define ECHO_INITIAL_KEY "x-grpc-test-echo-initial"
#define ECHO_TRAILING_KEY "x-grpc-test-echo-trailing-bin"
#define ECHO_INITIAL_VALUE "test_initial_metadata_value"

static const char SPECIAL_STATUS_MESSAGE[] =
    "\t\ntest with whitespace\r\nand Unicode BMP \xe2\x98\xba and non-BMP "
    "\xf0\x9f\x98\x88\t\n";

/* ---- run-wide state ---- */

static const char *test_case = "?";
static orpc_client *client;       /* grpc.testing.TestService */
static orpc_client *unimpl;       /* grpc.testing.UnimplementedService */
static int64_t rpc_timeout_ms = 20000;
static unsigned overall_timeout_s = 70; /* 3 RPC deadlines + 10 s */

/* Prints the verdict line and ends the run: a failed case needs no
 * cleanup. */
static _Noreturn void fail(const char *fmt, ...) ORPC_PRINTF(1, 2);

static _Noreturn void fail(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    /* One line: fold control characters. */
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = ' ';
    fprintf(stderr, "FAIL %s: %s\n", test_case, buf);
    fflush(stderr);
    _exit(1);
}

static _Noreturn void on_alarm(int sig)
{
    (void)sig;
    static const char a[] = "FAIL ";
    static const char b[] = ": no result in time (overall timeout)\n";
    if (write(2, a, sizeof(a) - 1) < 0 ||
        write(2, test_case, strlen(test_case)) < 0 ||
        write(2, b, sizeof(b) - 1) < 0) {
        /* nothing more to do */
    }
    _exit(1);
}

static const char *code_name(int code) { return orpc_code_name(code); }

/* Call options with the run's deadline. */
static orpc_call_opts opts_with(const char *compression)
{
    orpc_call_opts o = {0};
    o.timeout_ms = rpc_timeout_ms;
    o.compression = compression;
    return o;
}

static void check_ok(const orpc_status *st, const char *what)
{
    if (st->code != ORPC_OK)
        fail("%s: status %s (%s), expected OK", what, code_name(st->code),
             st->message ? st->message : "no message");
}

static void check_code(const orpc_status *st, orpc_code code,
                       const char *message, const char *what)
{
    if (st->code != code)
        fail("%s: status %s (%s), expected %s", what, code_name(st->code),
             st->message ? st->message : "no message", code_name(code));
    if (message != NULL &&
        (st->message == NULL || strcmp(st->message, message) != 0))
        fail("%s: status message \"%s\", expected \"%s\"", what,
             st->message ? st->message : "(none)", message);
}

/* Payload of |size| zero bytes; free with free_payload. */
static Payload *zeros(size_t size)
{
    Payload *p = malloc(sizeof(*p));
    uint8_t *body = calloc(1, size + 1);
    if (p == NULL || body == NULL)
        fail("out of memory");
    grpc__testing__payload__init(p);
    p->type = GRPC__TESTING__PAYLOAD_TYPE__COMPRESSABLE;
    p->body.data = body;
    p->body.len = size;
    return p;
}

/* Payload of |size| pseudo-random (incompressible) bytes. */
static Payload *noise(size_t size)
{
    Payload *p = zeros(size);
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < size; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p->body.data[i] = (uint8_t)(x >> 24);
    }
    return p;
}

static void free_payload(Payload *p)
{
    if (p) {
        free(p->body.data);
        free(p);
    }
}

static void check_payload(const Payload *p, size_t size, const char *what)
{
    if (p == NULL) {
        if (size == 0)
            return;
        fail("%s: no payload, expected %zu bytes", what, size);
    }
    if (p->type != GRPC__TESTING__PAYLOAD_TYPE__COMPRESSABLE)
        fail("%s: payload type %d, expected COMPRESSABLE", what,
             (int)p->type);
    if (p->body.len != size)
        fail("%s: payload of %zu bytes, expected %zu", what, p->body.len,
             size);
    for (size_t i = 0; i < size; i++)
        if (p->body.data[i] != 0)
            fail("%s: payload byte %zu is not zero", what, i);
}

/* The large_unary request: 271828 zeros, asking for 314159. */
static void large_request(SimpleRequest *req)
{
    grpc__testing__simple_request__init(req);
    req->response_type = GRPC__TESTING__PAYLOAD_TYPE__COMPRESSABLE;
    req->response_size = 314159;
    req->payload = zeros(271828);
}

/* A StreamingOutputCallRequest asking for responses of |sizes| (with
 * |compressed| flags when not NULL), with a payload of |payload_size| zeros
 * when nonzero.  Free with free_out_request. */
static OutRequest *out_request(const int32_t *sizes, const int *compressed,
                               size_t n, size_t payload_size)
{
    OutRequest *r = calloc(1, sizeof(*r));
    ResponseParameters **pp = calloc(n + 1, sizeof(*pp));
    if (r == NULL || pp == NULL)
        fail("out of memory");
    grpc__testing__streaming_output_call_request__init(r);
    r->response_type = GRPC__TESTING__PAYLOAD_TYPE__COMPRESSABLE;
    for (size_t i = 0; i < n; i++) {
        pp[i] = calloc(1, sizeof(*pp[i]));
        if (pp[i] == NULL)
            fail("out of memory");
        grpc__testing__response_parameters__init(pp[i]);
        pp[i]->size = sizes[i];
        if (compressed) {
            Grpc__Testing__BoolValue *b = calloc(1, sizeof(*b));
            if (b == NULL)
                fail("out of memory");
            grpc__testing__bool_value__init(b);
            b->value = compressed[i] != 0;
            pp[i]->compressed = b;
        }
    }
    r->n_response_parameters = n;
    r->response_parameters = pp;
    if (payload_size)
        r->payload = zeros(payload_size);
    return r;
}

static void free_out_request(OutRequest *r)
{
    for (size_t i = 0; i < r->n_response_parameters; i++) {
        free(r->response_parameters[i]->compressed);
        free(r->response_parameters[i]);
    }
    free(r->response_parameters);
    free_payload(r->payload);
    free(r);
}

/* ---- unary cases ---- */

static void empty_unary(void)
{
    Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT, *resp = NULL;
    orpc_call_opts o = opts_with(NULL);
    orpc_status st = grpc__testing__test_service__client__empty_call(
        client, &req, &resp, &o);
    check_ok(&st, "EmptyCall");
    if (resp == NULL)
        fail("EmptyCall: no response");
    grpc__testing__empty__free_unpacked(resp, NULL);
    orpc_status_clear(&st);
}

/* One UnaryCall with the large request (plus the optional fields given),
 * sent with |compression|, which must succeed with 314159 zeros.  The
 * metadata lists may be NULL. */
static void large_unary_with(const char *compression,
                             const Grpc__Testing__BoolValue *expect_compressed,
                             const Grpc__Testing__BoolValue *response_compressed,
                             const orpc_metadata *md, orpc_metadata *hdrs,
                             orpc_metadata *trls, const char *what)
{
    SimpleRequest req;
    large_request(&req);
    req.expect_compressed = (Grpc__Testing__BoolValue *)expect_compressed;
    req.response_compressed = (Grpc__Testing__BoolValue *)response_compressed;
    orpc_call_opts o = opts_with(compression);
    o.metadata = md;
    o.headers_out = hdrs;
    o.trailers_out = trls;
    SimpleResponse *resp = NULL;
    orpc_status st = grpc__testing__test_service__client__unary_call(
        client, &req, &resp, &o);
    check_ok(&st, what);
    if (resp == NULL)
        fail("%s: no response", what);
    check_payload(resp->payload, 314159, what);
    grpc__testing__simple_response__free_unpacked(resp, NULL);
    orpc_status_clear(&st);
    free_payload(req.payload);
}

static void large_unary(void)
{
    large_unary_with(NULL, NULL, NULL, NULL, NULL, NULL, "UnaryCall");
}

static void client_compressed_unary(void)
{
    Grpc__Testing__BoolValue yes = GRPC__TESTING__BOOL_VALUE__INIT;
    Grpc__Testing__BoolValue no = GRPC__TESTING__BOOL_VALUE__INIT;
    yes.value = 1;
    no.value = 0;
    /* 1. Feature probe: an uncompressed request claiming compression. */
    SimpleRequest req;
    large_request(&req);
    req.expect_compressed = &yes;
    orpc_call_opts o = opts_with(NULL);
    SimpleResponse *resp = NULL;
    orpc_status st = grpc__testing__test_service__client__unary_call(
        client, &req, &resp, &o);
    check_code(&st, ORPC_INVALID_ARGUMENT, NULL,
               "probe (uncompressed request, expect_compressed=true)");
    if (resp)
        grpc__testing__simple_response__free_unpacked(resp, NULL);
    orpc_status_clear(&st);
    free_payload(req.payload);
    /* 2. A compressed request, expect_compressed=true. */
    large_unary_with("gzip", &yes, NULL, NULL, NULL, NULL,
                     "compressed request (expect_compressed=true)");
    /* 3. An uncompressed request, expect_compressed=false. */
    large_unary_with(NULL, &no, NULL, NULL, NULL, NULL,
                     "uncompressed request (expect_compressed=false)");
}

static void server_compressed_unary(void)
{
    /* The compressed flag of the response is not visible through orpc's
     * client API (see the file comment); the server must still answer
     * both with the right payload. */
    Grpc__Testing__BoolValue yes = GRPC__TESTING__BOOL_VALUE__INIT;
    Grpc__Testing__BoolValue no = GRPC__TESTING__BOOL_VALUE__INIT;
    yes.value = 1;
    no.value = 0;
    large_unary_with(NULL, NULL, &yes, NULL, NULL, NULL,
                     "response_compressed=true");
    large_unary_with(NULL, NULL, &no, NULL, NULL, NULL,
                     "response_compressed=false");
}

static void status_cases(const char *message, int with_duplex)
{
    Grpc__Testing__EchoStatus es = GRPC__TESTING__ECHO_STATUS__INIT;
    es.code = 2;
    es.message = (char *)message;
    SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    req.response_status = &es;
    orpc_call_opts o = opts_with(NULL);
    SimpleResponse *resp = NULL;
    orpc_status st = grpc__testing__test_service__client__unary_call(
        client, &req, &resp, &o);
    check_code(&st, ORPC_UNKNOWN, message, "UnaryCall");
    if (resp)
        fail("UnaryCall: a response with a non-OK status");
    orpc_status_clear(&st);
    if (!with_duplex)
        return;
    Grpc__Testing__TestService_FullDuplexCall_Stream *s;
    int rc = grpc__testing__test_service__client__full_duplex_call(client, &o,
                                                                   &s);
    if (rc != 0)
        fail("FullDuplexCall: cannot start: %s", orpc_strerror(rc));
    OutRequest m = GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    m.response_status = &es;
    rc = grpc__testing__test_service__client__full_duplex_call__send(s, &m);
    if (rc != 0 && rc != ORPC_ECLOSED)
        fail("FullDuplexCall: send: %s", orpc_strerror(rc));
    grpc__testing__test_service__client__full_duplex_call__close_send(s);
    OutResponse *r;
    int n = 0;
    while ((rc = grpc__testing__test_service__client__full_duplex_call__recv(
                s, &r)) == 1) {
        grpc__testing__streaming_output_call_response__free_unpacked(r, NULL);
        n++;
    }
    if (n != 0)
        fail("FullDuplexCall: %d responses, expected none", n);
    st = grpc__testing__test_service__client__full_duplex_call__finish(s);
    check_code(&st, ORPC_UNKNOWN, message, "FullDuplexCall");
    orpc_status_clear(&st);
}

static void status_code_and_message(void)
{
    status_cases("test status message", 1);
}

static void special_status_message(void)
{
    status_cases(SPECIAL_STATUS_MESSAGE, 0);
}

static void unimplemented_method(void)
{
    Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT, *resp = NULL;
    orpc_call_opts o = opts_with(NULL);
    orpc_status st = grpc__testing__test_service__client__unimplemented_call(
        client, &req, &resp, &o);
    check_code(&st, ORPC_UNIMPLEMENTED, NULL, "TestService/UnimplementedCall");
    if (resp)
        grpc__testing__empty__free_unpacked(resp, NULL);
    orpc_status_clear(&st);
}

static void unimplemented_service(void)
{
    Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT, *resp = NULL;
    orpc_call_opts o = opts_with(NULL);
    orpc_status st =
        grpc__testing__unimplemented_service__client__unimplemented_call(
            unimpl, &req, &resp, &o);
    check_code(&st, ORPC_UNIMPLEMENTED, NULL,
               "UnimplementedService/UnimplementedCall");
    if (resp)
        grpc__testing__empty__free_unpacked(resp, NULL);
    orpc_status_clear(&st);
}

/* ---- client streaming ---- */

/* One StreamingInputCall sending |n| requests; returns its status and sets
 * |*total| from the response on OK. */
static orpc_status input_call(const char *compression, Payload **payloads,
                              const Grpc__Testing__BoolValue **expect,
                              size_t n, int32_t *total)
{
    Grpc__Testing__TestService_StreamingInputCall_Writer *w;
    orpc_call_opts o = opts_with(compression);
    int rc = grpc__testing__test_service__client__streaming_input_call(
        client, &o, &w);
    if (rc != 0)
        fail("StreamingInputCall: cannot start: %s", orpc_strerror(rc));
    for (size_t i = 0; i < n; i++) {
        InRequest m = GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
        m.payload = payloads[i];
        m.expect_compressed =
            expect ? (Grpc__Testing__BoolValue *)expect[i] : NULL;
        rc = grpc__testing__test_service__client__streaming_input_call__send(
            w, &m);
        if (rc == ORPC_ECLOSED)
            break; /* the call ended early: finish says why */
        if (rc != 0)
            fail("StreamingInputCall: send %zu: %s", i, orpc_strerror(rc));
    }
    InResponse *resp = NULL;
    orpc_status st =
        grpc__testing__test_service__client__streaming_input_call__finish(
            w, &resp);
    if (st.code == ORPC_OK) {
        if (resp == NULL)
            fail("StreamingInputCall: OK without a response");
        *total = resp->aggregated_payload_size;
    }
    if (resp)
        grpc__testing__streaming_input_call_response__free_unpacked(resp,
                                                                    NULL);
    return st;
}

static void client_streaming(void)
{
    static const size_t sizes[] = {27182, 8, 1828, 45904};
    Payload *p[4];
    for (int i = 0; i < 4; i++)
        p[i] = zeros(sizes[i]);
    int32_t total = -1;
    orpc_status st = input_call(NULL, p, NULL, 4, &total);
    check_ok(&st, "StreamingInputCall");
    if (total != 74922)
        fail("aggregated_payload_size %d, expected 74922", (int)total);
    orpc_status_clear(&st);
    for (int i = 0; i < 4; i++)
        free_payload(p[i]);
}

static void client_compressed_streaming(void)
{
    Grpc__Testing__BoolValue yes = GRPC__TESTING__BOOL_VALUE__INIT;
    Grpc__Testing__BoolValue no = GRPC__TESTING__BOOL_VALUE__INIT;
    yes.value = 1;
    no.value = 0;
    /* 1. Feature probe: one uncompressed message claiming compression. */
    Payload *probe = zeros(27182);
    const Grpc__Testing__BoolValue *e1[] = {&yes};
    int32_t total = -1;
    orpc_status st = input_call(NULL, &probe, e1, 1, &total);
    check_code(&st, ORPC_INVALID_ARGUMENT, NULL,
               "probe (uncompressed message, expect_compressed=true)");
    orpc_status_clear(&st);
    /* 2. A gzip call: a compressed message, then an uncompressed one.  orpc
     * compresses per call, not per message, but leaves a message
     * uncompressed (flag clear) when gzip would not shrink it: the second
     * body is therefore incompressible noise of the specified size (see the
     * file comment). */
    Payload *p[2] = {probe, noise(45904)};
    const Grpc__Testing__BoolValue *e2[] = {&yes, &no};
    total = -1;
    st = input_call("gzip", p, e2, 2, &total);
    check_ok(&st, "compressed stream");
    if (total != 73086)
        fail("aggregated_payload_size %d, expected 73086", (int)total);
    orpc_status_clear(&st);
    free_payload(p[0]);
    free_payload(p[1]);
}

static void cancel_after_begin(void)
{
    Grpc__Testing__TestService_StreamingInputCall_Writer *w;
    orpc_call_opts o = opts_with(NULL);
    int rc = grpc__testing__test_service__client__streaming_input_call(
        client, &o, &w);
    if (rc != 0)
        fail("StreamingInputCall: cannot start: %s", orpc_strerror(rc));
    grpc__testing__test_service__client__streaming_input_call__cancel(w);
    InResponse *resp = NULL;
    orpc_status st =
        grpc__testing__test_service__client__streaming_input_call__finish(
            w, &resp);
    check_code(&st, ORPC_CANCELLED, NULL, "cancelled StreamingInputCall");
    if (resp)
        fail("cancelled StreamingInputCall: got a response");
    orpc_status_clear(&st);
}

/* ---- server streaming ---- */

/* One StreamingOutputCall; checks the response sizes and OK status. */
static void output_call(const int32_t *sizes, const int *compressed,
                        size_t n)
{
    OutRequest *req = out_request(sizes, compressed, n, 0);
    Grpc__Testing__TestService_StreamingOutputCall_Reader *r;
    orpc_call_opts o = opts_with(NULL);
    int rc = grpc__testing__test_service__client__streaming_output_call(
        client, req, &o, &r);
    if (rc != 0)
        fail("StreamingOutputCall: cannot start: %s", orpc_strerror(rc));
    OutResponse *m;
    size_t got = 0;
    while ((rc = grpc__testing__test_service__client__streaming_output_call__recv(
                r, &m)) == 1) {
        if (got >= n)
            fail("more than %zu responses", n);
        char what[64];
        snprintf(what, sizeof(what), "response %zu", got);
        check_payload(m->payload, (size_t)sizes[got], what);
        grpc__testing__streaming_output_call_response__free_unpacked(m, NULL);
        got++;
    }
    orpc_status st =
        grpc__testing__test_service__client__streaming_output_call__finish(r);
    check_ok(&st, "StreamingOutputCall");
    if (rc != 0)
        fail("recv: %s", orpc_strerror(rc));
    if (got != n)
        fail("%zu responses, expected %zu", got, n);
    orpc_status_clear(&st);
    free_out_request(req);
}

static void server_streaming(void)
{
    static const int32_t sizes[] = {31415, 9, 2653, 58979};
    output_call(sizes, NULL, 4);
}

static void server_compressed_streaming(void)
{
    /* As server_compressed_unary: the per-message flags are not visible
     * here; the two responses must arrive intact. */
    static const int32_t sizes[] = {31415, 92653};
    static const int compressed[] = {1, 0};
    output_call(sizes, compressed, 2);
}

/* ---- bidi streaming ---- */

static Grpc__Testing__TestService_FullDuplexCall_Stream *
start_duplex(const orpc_call_opts *o)
{
    Grpc__Testing__TestService_FullDuplexCall_Stream *s;
    int rc = grpc__testing__test_service__client__full_duplex_call(client, o,
                                                                   &s);
    if (rc != 0)
        fail("FullDuplexCall: cannot start: %s", orpc_strerror(rc));
    return s;
}

static void ping_pong(void)
{
    static const int32_t resp_sizes[] = {31415, 9, 2653, 58979};
    static const size_t req_sizes[] = {27182, 8, 1828, 45904};
    orpc_call_opts o = opts_with(NULL);
    Grpc__Testing__TestService_FullDuplexCall_Stream *s = start_duplex(&o);
    for (int i = 0; i < 4; i++) {
        OutRequest *m = out_request(&resp_sizes[i], NULL, 1, req_sizes[i]);
        int rc = grpc__testing__test_service__client__full_duplex_call__send(
            s, m);
        free_out_request(m);
        if (rc != 0) {
            orpc_status st =
                grpc__testing__test_service__client__full_duplex_call__finish(
                    s);
            fail("send %d: %s (call status %s: %s)", i, orpc_strerror(rc),
                 code_name(st.code), st.message ? st.message : "");
        }
        OutResponse *r;
        rc = grpc__testing__test_service__client__full_duplex_call__recv(s,
                                                                         &r);
        if (rc != 1) {
            orpc_status st =
                grpc__testing__test_service__client__full_duplex_call__finish(
                    s);
            fail("stream ended after %d responses, expected 4 (recv %d, "
                 "status %s: %s)",
                 i, rc, code_name(st.code), st.message ? st.message : "");
        }
        char what[64];
        snprintf(what, sizeof(what), "response %d", i);
        check_payload(r->payload, (size_t)resp_sizes[i], what);
        grpc__testing__streaming_output_call_response__free_unpacked(r, NULL);
    }
    int rc = grpc__testing__test_service__client__full_duplex_call__close_send(s);
    if (rc != 0)
        fail("close_send: %s", orpc_strerror(rc));
    OutResponse *r;
    rc = grpc__testing__test_service__client__full_duplex_call__recv(s, &r);
    if (rc == 1)
        fail("more than 4 responses");
    orpc_status st = grpc__testing__test_service__client__full_duplex_call__finish(s);
    check_ok(&st, "FullDuplexCall");
    if (rc != 0)
        fail("recv after half-close: %s", orpc_strerror(rc));
    orpc_status_clear(&st);
}

static void empty_stream(void)
{
    orpc_call_opts o = opts_with(NULL);
    Grpc__Testing__TestService_FullDuplexCall_Stream *s = start_duplex(&o);
    int rc = grpc__testing__test_service__client__full_duplex_call__close_send(s);
    if (rc != 0)
        fail("close_send: %s", orpc_strerror(rc));
    OutResponse *r;
    rc = grpc__testing__test_service__client__full_duplex_call__recv(s, &r);
    if (rc == 1)
        fail("got a response, expected none");
    orpc_status st = grpc__testing__test_service__client__full_duplex_call__finish(s);
    check_ok(&st, "FullDuplexCall");
    if (rc != 0)
        fail("recv: %s", orpc_strerror(rc));
    orpc_status_clear(&st);
}

static void cancel_after_first_response(void)
{
    static const int32_t size = 31415;
    orpc_call_opts o = opts_with(NULL);
    Grpc__Testing__TestService_FullDuplexCall_Stream *s = start_duplex(&o);
    OutRequest *m = out_request(&size, NULL, 1, 27182);
    int rc = grpc__testing__test_service__client__full_duplex_call__send(s, m);
    free_out_request(m);
    if (rc != 0)
        fail("send: %s", orpc_strerror(rc));
    OutResponse *r;
    rc = grpc__testing__test_service__client__full_duplex_call__recv(s, &r);
    if (rc != 1)
        fail("no response before cancelling (recv %d)", rc);
    check_payload(r->payload, 31415, "response");
    grpc__testing__streaming_output_call_response__free_unpacked(r, NULL);
    grpc__testing__test_service__client__full_duplex_call__cancel(s);
    rc = grpc__testing__test_service__client__full_duplex_call__recv(s, &r);
    if (rc == 1)
        fail("a response after cancelling");
    orpc_status st = grpc__testing__test_service__client__full_duplex_call__finish(s);
    check_code(&st, ORPC_CANCELLED, NULL, "cancelled FullDuplexCall");
    orpc_status_clear(&st);
}

static void timeout_on_sleeping_server(void)
{
    orpc_call_opts o = opts_with(NULL);
    o.timeout_ms = 1;
    Grpc__Testing__TestService_FullDuplexCall_Stream *s = start_duplex(&o);
    OutRequest m = GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    m.payload = zeros(27182);
    /* The deadline may already have passed: a failed send is expected. */
    (void)grpc__testing__test_service__client__full_duplex_call__send(s, &m);
    free_payload(m.payload);
    /* Not half-closed: the server keeps waiting for more requests. */
    OutResponse *r;
    int rc = grpc__testing__test_service__client__full_duplex_call__recv(s, &r);
    if (rc == 1)
        fail("got a response, expected DEADLINE_EXCEEDED");
    orpc_status st = grpc__testing__test_service__client__full_duplex_call__finish(s);
    check_code(&st, ORPC_DEADLINE_EXCEEDED, NULL, "FullDuplexCall (1 ms)");
    orpc_status_clear(&st);
}

/* ---- metadata ---- */

static void check_echo(const orpc_metadata *hdrs, const orpc_metadata *trls,
                       const char *what)
{
    const uint8_t *v;
    size_t len;
    if (orpc_metadata_get(hdrs, ECHO_INITIAL_KEY, &v, &len) != 0)
        fail("%s: no %s in the response headers", what, ECHO_INITIAL_KEY);
    if (len != strlen(ECHO_INITIAL_VALUE) ||
        memcmp(v, ECHO_INITIAL_VALUE, len) != 0)
        fail("%s: %s is \"%.*s\", expected \"%s\"", what, ECHO_INITIAL_KEY,
             (int)len, (const char *)v, ECHO_INITIAL_VALUE);
    if (orpc_metadata_get(trls, ECHO_TRAILING_KEY, &v, &len) != 0)
        fail("%s: no %s in the trailers", what, ECHO_TRAILING_KEY);
    if (len != 3 || v[0] != 0xab || v[1] != 0xab || v[2] != 0xab)
        fail("%s: %s is %zu bytes, not ab ab ab", what, ECHO_TRAILING_KEY,
             len);
}

static void custom_metadata(void)
{
    static const uint8_t trailing[3] = {0xab, 0xab, 0xab};
    orpc_metadata *md, *hdrs, *trls;
    if (orpc_metadata_new(&md, NULL) != 0 ||
        orpc_metadata_new(&hdrs, NULL) != 0 ||
        orpc_metadata_new(&trls, NULL) != 0)
        fail("out of memory");
    if (orpc_metadata_add_str(md, ECHO_INITIAL_KEY, ECHO_INITIAL_VALUE) != 0 ||
        orpc_metadata_add(md, ECHO_TRAILING_KEY, trailing, 3) != 0)
        fail("cannot build the request metadata");

    /* 1. UnaryCall. */
    large_unary_with(NULL, NULL, NULL, md, hdrs, trls, "UnaryCall");
    check_echo(hdrs, trls, "UnaryCall");
    orpc_metadata_free(hdrs);
    orpc_metadata_free(trls);

    /* 2. FullDuplexCall, one request, then half-close. */
    if (orpc_metadata_new(&hdrs, NULL) != 0 ||
        orpc_metadata_new(&trls, NULL) != 0)
        fail("out of memory");
    orpc_call_opts o = opts_with(NULL);
    o.metadata = md;
    o.headers_out = hdrs;
    o.trailers_out = trls;
    Grpc__Testing__TestService_FullDuplexCall_Stream *s = start_duplex(&o);
    static const int32_t size = 314159;
    OutRequest *m = out_request(&size, NULL, 1, 271828);
    int rc = grpc__testing__test_service__client__full_duplex_call__send(s, m);
    free_out_request(m);
    if (rc != 0)
        fail("FullDuplexCall: send: %s", orpc_strerror(rc));
    rc = grpc__testing__test_service__client__full_duplex_call__close_send(s);
    if (rc != 0)
        fail("FullDuplexCall: close_send: %s", orpc_strerror(rc));
    OutResponse *r;
    int n = 0;
    while ((rc = grpc__testing__test_service__client__full_duplex_call__recv(
                s, &r)) == 1) {
        if (n == 0)
            check_payload(r->payload, 314159, "FullDuplexCall");
        grpc__testing__streaming_output_call_response__free_unpacked(r, NULL);
        n++;
    }
    orpc_status st = grpc__testing__test_service__client__full_duplex_call__finish(s);
    check_ok(&st, "FullDuplexCall");
    if (n != 1)
        fail("FullDuplexCall: %d responses, expected 1", n);
    check_echo(hdrs, trls, "FullDuplexCall");
    orpc_status_clear(&st);
    orpc_metadata_free(hdrs);
    orpc_metadata_free(trls);
    orpc_metadata_free(md);
}

/* ---- main ---- */

typedef struct test_entry {
    const char *name;
    void (*run)(void);
} test_entry;

static const test_entry cases[] = {
    {"empty_unary", empty_unary},
    {"large_unary", large_unary},
    {"client_streaming", client_streaming},
    {"server_streaming", server_streaming},
    {"ping_pong", ping_pong},
    {"empty_stream", empty_stream},
    {"cancel_after_begin", cancel_after_begin},
    {"cancel_after_first_response", cancel_after_first_response},
    {"timeout_on_sleeping_server", timeout_on_sleeping_server},
    {"custom_metadata", custom_metadata},
    {"status_code_and_message", status_code_and_message},
    {"special_status_message", special_status_message},
    {"unimplemented_method", unimplemented_method},
    {"unimplemented_service", unimplemented_service},
    {"client_compressed_unary", client_compressed_unary},
    {"server_compressed_unary", server_compressed_unary},
    {"client_compressed_streaming", client_compressed_streaming},
    {"server_compressed_streaming", server_compressed_streaming},
};

static void usage(void)
{
    fprintf(stderr,
            "usage: orpc-interop-client --server_port=N --test_case=NAME\n"
            "       [--server_host=HOST] [--use_tls=true|false] [--ca=FILE]\n"
            "       [--server_host_override=NAME] [--cert=FILE --key=FILE]\n"
            "       [--rpc_timeout_s=S] [--service_config=JSON|@FILE]\n"
            "cases:");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        fprintf(stderr, " %s", cases[i].name);
    fputc('\n', stderr);
}

static int parse_bool(const char *v, int *out)
{
    if (v == NULL || strcmp(v, "true") == 0 || strcmp(v, "1") == 0) {
        *out = 1;
        return 0;
    }
    if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0) {
        *out = 0;
        return 0;
    }
    return -1;
}

/* Matches "--name=value" (or a bare "--name", value NULL). */
static int flag(const char *arg, const char *name, const char **value)
{
    size_t n = strlen(name);
    if (strncmp(arg, "--", 2) != 0 || strncmp(arg + 2, name, n) != 0)
        return 0;
    if (arg[2 + n] == '=') {
        *value = arg + 3 + n;
        return 1;
    }
    if (arg[2 + n] == '\0') {
        *value = NULL;
        return 1;
    }
    return 0;
}

/* The text of --service_config: the flag's value, or the contents of the
 * file after "@" (NUL-terminated, the caller frees it).  NULL, with the
 * reason on stderr, when the file cannot be read. */
static char *service_config_text(const char *v)
{
    if (v[0] != '@')
        return strdup(v);
    FILE *f = fopen(v + 1, "rb");
    if (f == NULL) {
        fprintf(stderr, "orpc-interop-client: --service_config: %s: %s\n",
                v + 1, strerror(errno));
        return NULL;
    }
    char *text = NULL;
    size_t cap = 0;
    /* (the whole file: JSON holds no NUL) */
    if (getdelim(&text, &cap, '\0', f) < 0) {
        free(text);
        text = ferror(f) ? NULL : strdup("");
        if (text == NULL)
            fprintf(stderr,
                    "orpc-interop-client: --service_config: %s: cannot read "
                    "it\n",
                    v + 1);
    }
    fclose(f);
    return text;
}

static void on_channel_log(orpc_log_level level, const char *msg, void *ud)
{
    (void)ud;
    if (level <= ORPC_LOG_WARN || getenv("ORPC_INTEROP_VERBOSE"))
        fprintf(stderr, "orpc-interop-client: [orpc] %s\n", msg);
}

int main(int argc, char **argv)
{
    const char *host = "localhost", *override = NULL, *ca = NULL;
    const char *cert = NULL, *key = NULL, *name = NULL, *config = NULL;
    long port = -1;
    int use_tls = 0, use_test_ca = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (flag(argv[i], "server_host", &v) && v) {
            host = v;
        } else if (flag(argv[i], "server_port", &v) && v) {
            char *end;
            errno = 0;
            port = strtol(v, &end, 10);
            if (errno || *end || port <= 0 || port > 65535) {
                fprintf(stderr, "orpc-interop-client: bad --server_port=%s\n",
                        v);
                return 2;
            }
        } else if (flag(argv[i], "test_case", &v) && v) {
            name = v;
        } else if (flag(argv[i], "use_tls", &v)) {
            if (parse_bool(v, &use_tls) != 0) {
                fprintf(stderr, "orpc-interop-client: bad --use_tls\n");
                return 2;
            }
        } else if (flag(argv[i], "use_test_ca", &v)) {
            /* Accepted for compatibility; the CA comes from --ca. */
            if (parse_bool(v, &use_test_ca) != 0) {
                fprintf(stderr, "orpc-interop-client: bad --use_test_ca\n");
                return 2;
            }
        } else if (flag(argv[i], "ca", &v) && v) {
            ca = v;
        } else if (flag(argv[i], "server_host_override", &v) && v) {
            override = *v ? v : NULL;
        } else if (flag(argv[i], "cert", &v) && v) {
            cert = v;
        } else if (flag(argv[i], "key", &v) && v) {
            key = v;
        } else if (flag(argv[i], "service_config", &v) && v) {
            config = v;
        } else if (flag(argv[i], "rpc_timeout_s", &v) && v) {
            char *end;
            double s = strtod(v, &end);
            if (*end || s <= 0 || s > 3600) {
                fprintf(stderr,
                        "orpc-interop-client: bad --rpc_timeout_s=%s\n", v);
                return 2;
            }
            rpc_timeout_ms = (int64_t)(s * 1000);
            if (rpc_timeout_ms < 1)
                rpc_timeout_ms = 1;
            overall_timeout_s = (unsigned)(3 * s) + 10;
        } else {
            fprintf(stderr, "orpc-interop-client: unknown flag %s\n", argv[i]);
            usage();
            return 2;
        }
    }
    const test_entry *tc = NULL;
    for (size_t i = 0; name && i < sizeof(cases) / sizeof(cases[0]); i++)
        if (strcmp(cases[i].name, name) == 0)
            tc = &cases[i];
    if (port < 0 || tc == NULL) {
        if (name && tc == NULL)
            fprintf(stderr, "orpc-interop-client: unknown test case %s\n",
                    name);
        usage();
        return 2;
    }
    if (!use_tls && (ca || cert || key)) {
        fprintf(stderr,
                "orpc-interop-client: --ca/--cert/--key need --use_tls=true\n");
        return 2;
    }
    if ((cert == NULL) != (key == NULL)) {
        fprintf(stderr, "orpc-interop-client: --cert and --key go together\n");
        return 2;
    }
    if (use_test_ca && ca == NULL) {
        fprintf(stderr, "orpc-interop-client: --use_test_ca=true: give the "
                        "test CA with --ca=FILE\n");
        return 2;
    }
    test_case = tc->name;

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    alarm(overall_timeout_s);

    char target[512];
    if (strchr(host, ':') && host[0] != '[')
        snprintf(target, sizeof(target), "[%s]:%ld", host, port);
    else
        snprintf(target, sizeof(target), "%s:%ld", host, port);
    orpc_tls_opts tls = {0};
    orpc_channel_opts co = {0};
    co.log = on_channel_log;
    co.connect_timeout_ms = 10000;
    if (use_tls) {
        tls.ca_file = ca;
        tls.cert_file = cert;
        tls.key_file = key;
        tls.server_name = override;
        co.tls = &tls;
    } else {
        co.plaintext = 1;
    }
    /* gRPC's --server_host_override also names the :authority. */
    co.authority = override;
    char *config_text = NULL;
    if (config != NULL && (config_text = service_config_text(config)) == NULL)
        return 2;
    co.service_config = config_text;
    orpc_channel *ch;
    orpc_error_detail why = {0};
    int rc = orpc_channel_new(&ch, target, &co, NULL, &why);
    free(config_text); /* (copied by the channel) */
    if (rc == ORPC_ECONFIG && config != NULL &&
        strncmp(why.message, "service_config", 14) == 0) {
        fprintf(stderr, "orpc-interop-client: bad --service_config: %s\n",
                why.message);
        return 2;
    }
    if (rc != 0) {
        /* (what the channel's logger would have said without |why|) */
        fprintf(stderr, "orpc-interop-client: [orpc] %s\n", why.message);
        fail("cannot create a channel to %s: %s", target, orpc_strerror(rc));
    }
    if (orpc_client_new(&client, &grpc__testing__test_service__orpc_desc, ch,
                        NULL, NULL) != 0 ||
        orpc_client_new(&unimpl,
                        &grpc__testing__unimplemented_service__orpc_desc, ch,
                        NULL, NULL) != 0)
        fail("cannot create the clients");

    tc->run();

    alarm(0);
    orpc_client_free(unimpl);
    orpc_client_free(client);
    orpc_channel_unref(ch);
    printf("PASS %s\n", test_case);
    fflush(stdout);
    return 0;
}
