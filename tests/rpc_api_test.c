/*
 * rpc_api_test.c — public functions of rpc/ that the other tests reach only
 * through generated stubs, or not at all, called directly on loopback:
 *
 * - the deferred path: a handler orpc_ctx_defer()s, another thread
 *   orpc_ctx_finish()es it exactly once, a second finish is refused;
 * - orpc_ctx_deadline_ns();
 * - the untyped client calls: orpc_channel_invoke(), orpc_client_invoke_async(),
 *   orpc_channel_invoke_async(), orpc_channel_invoke_async_typed(),
 *   orpc_channel_call_start() with orpc_call_headers();
 * - orpc_client_service(), orpc_client_new_with_invoker(),
 *   orpc_channel_ref().
 *
 * Results seen on other threads (handlers, callbacks, the finisher) are
 * recorded under g_lock and asserted on the test's thread; every wait is
 * bounded.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include <orpc/orpc.h>

#include "grpc/testing/test.orpc.h"

typedef Grpc__Testing__SimpleRequest SimpleRequest;
typedef Grpc__Testing__SimpleResponse SimpleResponse;

/* ---- what the handlers saw (g_lock) ---- */

static uv_mutex_t g_lock;
static orpc_ctx *g_deferred;  /* the call a handler deferred */
static int g_defer_rc;        /* orpc_ctx_defer() on it */
static int g_defer_again_rc;  /* a second orpc_ctx_defer() */
static int g_plain_finish_rc; /* orpc_ctx_finish() on a call not deferred */
static int g_probes;          /* non-deferred unary calls handled */
static int64_t g_deadline_ns; /* orpc_ctx_deadline_ns() in EmptyCall */
static int64_t g_handler_now; /* uv_hrtime() when EmptyCall read it */
static int g_empty_calls;     /* EmptyCall handled */

static int locked_get(const int *v)
{
    uv_mutex_lock(&g_lock);
    int r = *v;
    uv_mutex_unlock(&g_lock);
    return r;
}

static orpc_ctx *deferred_ctx(void)
{
    uv_mutex_lock(&g_lock);
    orpc_ctx *c = g_deferred;
    uv_mutex_unlock(&g_lock);
    return c;
}

static void reset(void)
{
    uv_mutex_lock(&g_lock);
    g_deferred = NULL;
    g_defer_rc = g_defer_again_rc = g_plain_finish_rc = 1;
    g_probes = g_empty_calls = 0;
    g_deadline_ns = g_handler_now = 0;
    uv_mutex_unlock(&g_lock);
}

/* Polls |*v| (g_lock) until it reaches |want|, 10 s at most. */
static int wait_int(const int *v, int want)
{
    for (int i = 0; i < 2000 && locked_get(v) < want; i++)
        usleep(5000);
    return locked_get(v);
}

static orpc_ctx *wait_deferred(void)
{
    for (int i = 0; i < 2000 && deferred_ctx() == NULL; i++)
        usleep(5000);
    return deferred_ctx();
}

/* ---- the service ---- */

static orpc_status empty_call(orpc_ctx *ctx, const Grpc__Testing__Empty *req,
                              Grpc__Testing__Empty *resp, void *ud)
{
    (void)req;
    (void)resp;
    (void)ud;
    int64_t deadline = orpc_ctx_deadline_ns(ctx);
    int64_t now = (int64_t)uv_hrtime();
    uv_mutex_lock(&g_lock);
    g_deadline_ns = deadline;
    g_handler_now = now;
    g_empty_calls++;
    uv_mutex_unlock(&g_lock);
    return ORPC_STATUS_OK;
}

/* fill_username: defer the call (the test finishes it on another thread);
 * otherwise answer at once, echoing x-echo as a response header and
 * response_size as the username's length. */
static orpc_status unary_call(orpc_ctx *ctx, const SimpleRequest *req,
                              SimpleResponse *resp, void *ud)
{
    (void)ud;
    if (req->fill_username) {
        int rc = orpc_ctx_defer(ctx);
        int again = orpc_ctx_defer(ctx);
        uv_mutex_lock(&g_lock);
        g_defer_rc = rc;
        g_defer_again_rc = again;
        g_deferred = ctx;
        uv_mutex_unlock(&g_lock);
        /* ignored: the call ends with what orpc_ctx_finish() says */
        return orpc_status_new(ORPC_INTERNAL, "deferred: this is ignored");
    }
    /* not deferred: finishing is not this handler's to do */
    int rc = orpc_ctx_finish(ctx, orpc_status_new(ORPC_ABORTED, "no"));
    uv_mutex_lock(&g_lock);
    g_plain_finish_rc = rc;
    g_probes++;
    uv_mutex_unlock(&g_lock);
    resp->username = orpc_arena_strdup(orpc_ctx_arena(ctx), "answered");
    return ORPC_STATUS_OK;
}

/* Sends response_parameters[0].size one-byte-payload responses after a
 * response header x-stream-header: "yes". */
static orpc_status streaming_output(
    orpc_ctx *ctx, const Grpc__Testing__StreamingOutputCallRequest *req,
    Grpc__Testing__TestService_StreamingOutputCall_ServerWriter *w, void *ud)
{
    (void)ud;
    if (orpc_ctx_add_header(ctx, "x-stream-header", "yes", 3) != 0)
        return orpc_status_new(ORPC_INTERNAL, "orpc_ctx_add_header failed");
    int n =
        req->n_response_parameters > 0 ? req->response_parameters[0]->size : 0;
    for (int i = 0; i < n; i++) {
        Grpc__Testing__StreamingOutputCallResponse r =
            GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
        Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
        uint8_t b = (uint8_t)i;
        p.body.data = &b;
        p.body.len = 1;
        r.payload = &p;
        if (grpc__testing__test_service__server__streaming_output_call__send(
                w, &r) != 0)
            return orpc_status_new(ORPC_CANCELLED, "client went away");
    }
    return ORPC_STATUS_OK;
}

/* Defers at once, without reading: the test finishes it. */
static orpc_status
streaming_input(orpc_ctx *ctx,
                Grpc__Testing__TestService_StreamingInputCall_ServerReader *r,
                Grpc__Testing__StreamingInputCallResponse *resp, void *ud)
{
    (void)r;
    (void)resp;
    (void)ud;
    int rc = orpc_ctx_defer(ctx);
    uv_mutex_lock(&g_lock);
    g_defer_rc = rc;
    g_deferred = ctx;
    uv_mutex_unlock(&g_lock);
    return ORPC_STATUS_OK; /* ignored */
}

static const Grpc__Testing__TestService_Handlers handlers = {
    .empty_call = empty_call,
    .unary_call = unary_call,
    .streaming_output_call = streaming_output,
    .streaming_input_call = streaming_input,
};

/* ---- fixture: one server (one worker thread) and one client ---- */

typedef struct fx {
    orpc_server *srv;
    int port;
    orpc_channel *ch;
    orpc_client *cl;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    /* One worker: once a later call's handler has run, the worker is done
     * with every earlier handler (see test_defer_finish). */
    orpc_server_opts o = {.plaintext = 1, .io_threads = 1, .worker_threads = 1};
    assert_int_equal(orpc_server_new(&f->srv, &o, NULL, NULL), 0);
    assert_int_equal(
        grpc__testing__test_service__server__register(f->srv, &handlers, NULL),
        0);
    assert_int_equal(orpc_server_listen(f->srv, "127.0.0.1:0", &f->port, NULL), 0);
    assert_true(f->port > 0);
    assert_int_equal(orpc_server_start(f->srv), 0);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", f->port);
    orpc_channel_opts co = {.plaintext = 1};
    assert_int_equal(orpc_channel_new(&f->ch, target, &co, NULL, NULL), 0);
    assert_int_equal(orpc_client_new(&f->cl,
                                     &grpc__testing__test_service__orpc_desc,
                                     f->ch, NULL, NULL),
                     0);
    reset();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    orpc_client_free(f->cl);
    orpc_channel_unref(f->ch);
    assert_int_equal(orpc_server_shutdown(f->srv, 500), 0);
    assert_int_equal(orpc_server_wait(f->srv), 0);
    orpc_server_free(f->srv);
    free(f);
    return 0;
}

/* ---- asynchronous results (g_lock) ---- */

typedef struct async_result {
    int done; /* times the callback ran */
    orpc_code code;
    char username[64];
    int typed_cb_seen; /* the typed callback reached the trampoline */
} async_result;

static void on_unary(const orpc_status *st, ProtobufCMessage *resp, void *ud)
{
    async_result *r = ud;
    uv_mutex_lock(&g_lock);
    r->done++;
    r->code = st->code;
    if (resp != NULL) {
        const SimpleResponse *s = (const SimpleResponse *)resp;
        snprintf(r->username, sizeof(r->username), "%s",
                 s->username ? s->username : "");
    }
    uv_mutex_unlock(&g_lock);
    protobuf_c_message_free_unpacked(resp, NULL);
}

static void typed_cb_marker(void)
{
}

static void trampoline(const orpc_status *st, ProtobufCMessage *resp,
                       orpc_fn typed_cb, void *ud)
{
    async_result *r = ud;
    uv_mutex_lock(&g_lock);
    r->typed_cb_seen = typed_cb == (orpc_fn)typed_cb_marker;
    uv_mutex_unlock(&g_lock);
    on_unary(st, resp, ud);
}

/* ---- the deferred path ---- */

typedef struct finisher {
    orpc_ctx *ctx;
    const char *username; /* NULL: a client-streaming response */
    int rc;               /* first orpc_ctx_finish() */
    int rc_again;         /* a second one, when |again| */
    int again;
} finisher;

static void finisher_main(void *arg)
{
    finisher *fin = arg;
    if (fin->username != NULL) {
        SimpleResponse *resp = (SimpleResponse *)orpc_ctx_response(fin->ctx);
        resp->username =
            orpc_arena_strdup(orpc_ctx_arena(fin->ctx), fin->username);
    } else {
        Grpc__Testing__StreamingInputCallResponse *resp =
            (Grpc__Testing__StreamingInputCallResponse *)orpc_ctx_response(
                fin->ctx);
        resp->aggregated_payload_size = 42;
    }
    fin->rc = orpc_ctx_finish(fin->ctx, ORPC_STATUS_OK);
    if (fin->again)
        fin->rc_again = orpc_ctx_finish(
            fin->ctx, orpc_status_new(ORPC_ABORTED, "finished twice"));
}

/* A handler defers; another thread finishes the call exactly once, with a
 * response the client receives; the handler's own return value is
 * ignored. */
static void test_defer_finish(void **state)
{
    fx *f = *state;
    async_result r = {0};
    SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    req.fill_username = 1; /* defer */
    orpc_call_opts o = {.timeout_ms = 10000};
    assert_int_equal(orpc_client_invoke_async(
                         f->cl, grpc__testing__test_service__method__unary_call,
                         &req.base, &o, on_unary, &r),
                     0);
    orpc_ctx *ctx = wait_deferred();
    assert_non_null(ctx);
    assert_int_equal(locked_get(&g_defer_rc), 0);
    assert_int_equal(locked_get(&g_defer_again_rc), ORPC_ESTATE);
    /* The handler returned, but the call is not over. */
    assert_int_equal(locked_get(&r.done), 0);
    /* A second call goes through the one worker, so the worker is done with
     * the deferred handler before anyone finishes it. */
    SimpleRequest probe = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    SimpleResponse *presp = NULL;
    orpc_status st = grpc__testing__test_service__client__unary_call(
        f->cl, &probe, &presp, &o);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
    assert_non_null(presp);
    assert_string_equal(presp->username, "answered");
    grpc__testing__simple_response__free_unpacked(presp, NULL);
    /* finishing a call that was not deferred is refused */
    assert_int_equal(locked_get(&g_plain_finish_rc), ORPC_ESTATE);
    assert_int_equal(locked_get(&r.done), 0); /* still waiting */

    finisher fin = {.ctx = ctx, .username = "finished later"};
    uv_thread_t t;
    assert_int_equal(uv_thread_create(&t, finisher_main, &fin), 0);
    assert_int_equal(uv_thread_join(&t), 0);
    assert_int_equal(fin.rc, 0);
    assert_int_equal(wait_int(&r.done, 1), 1);
    uv_mutex_lock(&g_lock);
    orpc_code code = r.code;
    char name[64];
    snprintf(name, sizeof(name), "%s", r.username);
    uv_mutex_unlock(&g_lock);
    assert_int_equal(code, ORPC_OK);
    assert_string_equal(name, "finished later");
    /* one completion: another call through the channel and the callback
     * has still run once */
    st = grpc__testing__test_service__client__unary_call(f->cl, &probe, &presp,
                                                         &o);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
    grpc__testing__simple_response__free_unpacked(presp, NULL);
    assert_int_equal(locked_get(&r.done), 1);
}

/* A raw HTTP/2 client: it opens a client-streaming call and never ends
 * its request stream, so the server's stream, and with it the call's
 * context, stays open after the status went out (orpc's own channel would
 * reset the stream when the status arrives, freeing the context). */
static int raw_open_streaming_input(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    static const char *const hdrs[][2] = {
        {":method", "POST"},
        {":scheme", "http"},
        {":path", "/grpc.testing.TestService/StreamingInputCall"},
        {":authority", "localhost"},
        {"content-type", "application/grpc"},
        {"te", "trailers"},
    };
    uint8_t buf[512];
    size_t n = 0;
    const char *magic = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    memcpy(buf, magic, strlen(magic));
    n += strlen(magic);
    static const uint8_t settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
    memcpy(buf + n, settings, sizeof(settings));
    n += sizeof(settings);
    /* HEADERS, END_HEADERS (no END_STREAM), stream 1; HPACK literals
     * without indexing, no Huffman (every string is under 127 bytes) */
    size_t hdr_at = n;
    n += 9;
    for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
        buf[n++] = 0x00;
        for (int k = 0; k < 2; k++) {
            size_t l = strlen(hdrs[i][k]);
            buf[n++] = (uint8_t)l;
            memcpy(buf + n, hdrs[i][k], l);
            n += l;
        }
    }
    size_t len = n - hdr_at - 9;
    const uint8_t fh[9] = {0, 0, (uint8_t)len, 1, 0x4, 0, 0, 0, 1};
    memcpy(buf + hdr_at, fh, sizeof(fh));
    if (write(fd, buf, n) != (ssize_t)n) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads frames from |fd| (5 s at most) until a HEADERS frame with
 * END_STREAM on stream 1; returns 1 when one came, 0 on timeout or EOF. */
static int raw_saw_trailers(int fd)
{
    static uint8_t b[1 << 16];
    size_t have = 0;
    for (int i = 0; i < 500; i++) {
        while (have >= 9) {
            size_t l = ((size_t)b[0] << 16) | ((size_t)b[1] << 8) | b[2];
            if (have < 9 + l)
                break;
            uint32_t sid = ((uint32_t)(b[5] & 0x7f) << 24) |
                           ((uint32_t)b[6] << 16) | ((uint32_t)b[7] << 8) |
                           b[8];
            if (b[3] == 1 && (b[4] & 0x1) && sid == 1)
                return 1;
            memmove(b, b + 9 + l, have - 9 - l);
            have -= 9 + l;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 10) != 1)
            continue;
        if (have == sizeof(b))
            return 0;
        ssize_t r = read(fd, b + have, sizeof(b) - have);
        if (r <= 0)
            return 0;
        have += (size_t)r;
    }
    return 0;
}

/* Finishing a deferred call twice: the second is refused with ORPC_ESTATE
 * and sends nothing more. */
static void test_finish_twice(void **state)
{
    fx *f = *state;
    int fd = raw_open_streaming_input(f->port);
    assert_true(fd >= 0);
    orpc_ctx *ctx = wait_deferred();
    assert_non_null(ctx);
    assert_int_equal(locked_get(&g_defer_rc), 0);
    finisher fin = {.ctx = ctx, .again = 1};
    uv_thread_t t;
    assert_int_equal(uv_thread_create(&t, finisher_main, &fin), 0);
    assert_int_equal(uv_thread_join(&t), 0);
    assert_int_equal(fin.rc, 0);
    assert_int_equal(fin.rc_again, ORPC_ESTATE);
    /* the first finish's status went out */
    assert_true(raw_saw_trailers(fd));
    close(fd);
}

/* ---- deadlines ---- */

static void test_ctx_deadline_ns(void **state)
{
    fx *f = *state;
    Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT;
    Grpc__Testing__Empty *resp = NULL;
    /* no deadline: INT64_MAX */
    orpc_status st = grpc__testing__test_service__client__empty_call(
        f->cl, &req, &resp, NULL);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
    grpc__testing__empty__free_unpacked(resp, NULL);
    assert_int_equal(locked_get(&g_empty_calls), 1);
    uv_mutex_lock(&g_lock);
    int64_t deadline = g_deadline_ns;
    uv_mutex_unlock(&g_lock);
    assert_true(deadline == INT64_MAX);
    /* 60 s: a point on the monotonic clock (uv_hrtime()) about 60 s on */
    int64_t before = (int64_t)uv_hrtime();
    orpc_call_opts o = {.timeout_ms = 60000};
    resp = NULL;
    st =
        grpc__testing__test_service__client__empty_call(f->cl, &req, &resp, &o);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
    grpc__testing__empty__free_unpacked(resp, NULL);
    assert_int_equal(locked_get(&g_empty_calls), 2);
    uv_mutex_lock(&g_lock);
    deadline = g_deadline_ns;
    int64_t now = g_handler_now;
    uv_mutex_unlock(&g_lock);
    /* the server's clock: the grpc-timeout it received (at most 60 s, the
     * time in flight taken off) from when the headers arrived, before the
     * handler ran */
    assert_true(deadline > now);
    assert_true(deadline <= now + (int64_t)60000 * 1000000);
    assert_true(deadline > before + (int64_t)59000 * 1000000);
}

/* ---- the untyped client calls ---- */

static void test_channel_invoke(void **state)
{
    fx *f = *state;
    SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    orpc_call_opts o = {.timeout_ms = 10000};
    orpc_status st = orpc_channel_invoke(
        f->ch, grpc__testing__test_service__method__unary_call, &req.base,
        &resp, &o);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
    assert_non_null(resp);
    assert_ptr_equal(resp->descriptor,
                     &grpc__testing__simple_response__descriptor);
    assert_string_equal(((SimpleResponse *)resp)->username, "answered");
    protobuf_c_message_free_unpacked(resp, NULL);
    assert_int_equal(locked_get(&g_probes), 1);
}

static void test_channel_invoke_async(void **state)
{
    fx *f = *state;
    SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    orpc_call_opts o = {.timeout_ms = 10000};
    async_result r = {0};
    assert_int_equal(orpc_channel_invoke_async(
                         f->ch, grpc__testing__test_service__method__unary_call,
                         &req.base, &o, on_unary, &r),
                     0);
    assert_int_equal(wait_int(&r.done, 1), 1);
    uv_mutex_lock(&g_lock);
    orpc_code code = r.code;
    int names_match = strcmp(r.username, "answered") == 0;
    uv_mutex_unlock(&g_lock);
    assert_int_equal(code, ORPC_OK);
    assert_true(names_match);

    /* the typed variant hands the typed callback to the trampoline */
    async_result t = {0};
    assert_int_equal(orpc_channel_invoke_async_typed(
                         f->ch, grpc__testing__test_service__method__unary_call,
                         &req.base, &o, trampoline, (orpc_fn)typed_cb_marker,
                         &t),
                     0);
    assert_int_equal(wait_int(&t.done, 1), 1);
    assert_int_equal(locked_get(&t.typed_cb_seen), 1);
    uv_mutex_lock(&g_lock);
    code = t.code;
    uv_mutex_unlock(&g_lock);
    assert_int_equal(code, ORPC_OK);
    assert_int_equal(locked_get(&g_probes), 2);
    /* each callback ran once */
    assert_int_equal(locked_get(&r.done), 1);
    assert_int_equal(locked_get(&t.done), 1);
}

static void test_invoke_async_client(void **state)
{
    fx *f = *state;
    SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    orpc_call_opts o = {.timeout_ms = 10000};
    async_result r = {0};
    assert_int_equal(orpc_client_invoke_async(
                         f->cl, grpc__testing__test_service__method__unary_call,
                         &req.base, &o, on_unary, &r),
                     0);
    assert_int_equal(wait_int(&r.done, 1), 1);
    uv_mutex_lock(&g_lock);
    orpc_code code = r.code;
    int names_match = strcmp(r.username, "answered") == 0;
    uv_mutex_unlock(&g_lock);
    assert_int_equal(code, ORPC_OK);
    assert_true(names_match);
    /* a method of another service is refused at once (ORPC_EINVAL), and
     * its callback never fires */
    async_result bad = {0};
    Grpc__Testing__Empty e = GRPC__TESTING__EMPTY__INIT;
    assert_int_equal(
        orpc_client_invoke_async(
            f->cl,
            grpc__testing__unimplemented_service__method__unimplemented_call,
            &e.base, &o, on_unary, &bad),
        ORPC_EINVAL);
    /* (a later call's callback has run, so an earlier one would have) */
    async_result after = {0};
    assert_int_equal(orpc_client_invoke_async(
                         f->cl, grpc__testing__test_service__method__unary_call,
                         &req.base, &o, on_unary, &after),
                     0);
    assert_int_equal(wait_int(&after.done, 1), 1);
    assert_int_equal(locked_get(&bad.done), 0);
    assert_int_equal(locked_get(&g_probes), 2);
}

static void test_call_start_and_headers(void **state)
{
    fx *f = *state;
    Grpc__Testing__StreamingOutputCallRequest req =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    Grpc__Testing__ResponseParameters rp =
        GRPC__TESTING__RESPONSE_PARAMETERS__INIT;
    Grpc__Testing__ResponseParameters *rps[1] = {&rp};
    rp.size = 3; /* three responses */
    req.n_response_parameters = 1;
    req.response_parameters = rps;
    orpc_call_opts o = {.timeout_ms = 10000};
    orpc_call *call = NULL;
    assert_int_equal(
        orpc_channel_call_start(
            &call, f->ch,
            grpc__testing__test_service__method__streaming_output_call,
            &req.base, &o),
        0);
    assert_non_null(call);
    int got = 0;
    ProtobufCMessage *m = NULL;
    int rc;
    while ((rc = orpc_call_recv(call, &m)) == 1) {
        const Grpc__Testing__StreamingOutputCallResponse *r =
            (const Grpc__Testing__StreamingOutputCallResponse *)m;
        assert_non_null(r->payload);
        assert_int_equal(r->payload->body.len, 1);
        assert_int_equal(r->payload->body.data[0], got);
        got++;
        protobuf_c_message_free_unpacked(m, NULL);
        if (got == 1) {
            const orpc_metadata *h = orpc_call_headers(call);
            assert_non_null(h);
            const uint8_t *v = NULL;
            size_t len = 0;
            assert_int_equal(orpc_metadata_get(h, "x-stream-header", &v, &len),
                             0);
            assert_int_equal(len, 3);
            assert_memory_equal(v, "yes", 3);
        }
        assert_true(got <= 3);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(got, 3);
    orpc_status st = orpc_call_finish(call);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
}

/* ---- clients and channels ---- */

typedef struct counting_invoker {
    orpc_channel *ch;
    int invokes;   /* g_lock */
    int destroyed; /* g_lock */
} counting_invoker;

static orpc_status ci_invoke(const orpc_method_desc *method,
                             const ProtobufCMessage *request,
                             ProtobufCMessage **response,
                             const orpc_call_opts *opts, void *ud)
{
    counting_invoker *ci = ud;
    uv_mutex_lock(&g_lock);
    ci->invokes++;
    uv_mutex_unlock(&g_lock);
    return orpc_channel_invoke(ci->ch, method, request, response, opts);
}

static int ci_invoke_async(const orpc_method_desc *method,
                           const ProtobufCMessage *request,
                           const orpc_call_opts *opts,
                           orpc_unary_trampoline done, orpc_fn typed_cb,
                           void *cb_user_data, void *ud)
{
    counting_invoker *ci = ud;
    uv_mutex_lock(&g_lock);
    ci->invokes++;
    uv_mutex_unlock(&g_lock);
    return orpc_channel_invoke_async_typed(ci->ch, method, request, opts, done,
                                           typed_cb, cb_user_data);
}

static void ci_destroy(void *ud)
{
    counting_invoker *ci = ud;
    uv_mutex_lock(&g_lock);
    ci->destroyed++;
    uv_mutex_unlock(&g_lock);
}

static void test_client_with_invoker(void **state)
{
    fx *f = *state;
    assert_ptr_equal(orpc_client_service(f->cl),
                     &grpc__testing__test_service__orpc_desc);
    counting_invoker ci = {.ch = f->ch};
    orpc_invoker inv = {.invoke = ci_invoke,
                        .invoke_async = ci_invoke_async,
                        .destroy = ci_destroy};
    orpc_client *cl = NULL;
    assert_int_equal(
        orpc_client_new_with_invoker(
            &cl, &grpc__testing__test_service__orpc_desc, &inv, &ci, NULL, NULL),
        0);
    assert_non_null(cl);
    assert_ptr_equal(orpc_client_service(cl),
                     &grpc__testing__test_service__orpc_desc);
    /* a generated stub goes through the invoker */
    SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    SimpleResponse *resp = NULL;
    orpc_call_opts o = {.timeout_ms = 10000};
    orpc_status st =
        grpc__testing__test_service__client__unary_call(cl, &req, &resp, &o);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
    assert_non_null(resp);
    assert_string_equal(resp->username, "answered");
    grpc__testing__simple_response__free_unpacked(resp, NULL);
    assert_int_equal(locked_get(&ci.invokes), 1);
    /* and so does an asynchronous one */
    async_result r = {0};
    assert_int_equal(
        orpc_client_invoke_async(cl, grpc__testing__test_service__method__unary_call,
                          &req.base, &o, on_unary, &r),
        0);
    assert_int_equal(wait_int(&r.done, 1), 1);
    assert_int_equal(locked_get(&ci.invokes), 2);
    /* no call_start: streaming calls are refused, not crashed */
    orpc_call *call = NULL;
    assert_int_equal(
        orpc_client_call_start(&call, cl,
                        grpc__testing__test_service__method__full_duplex_call,
                        NULL, &o),
        ORPC_ENOTSUP);
    assert_int_equal(locked_get(&ci.destroyed), 0);
    orpc_client_free(cl);
    assert_int_equal(locked_get(&ci.destroyed), 1); /* exactly once */
    assert_int_equal(locked_get(&g_probes), 2);
}

static void test_channel_ref(void **state)
{
    fx *f = *state;
    orpc_channel *again = orpc_channel_ref(f->ch);
    assert_ptr_equal(again, f->ch);
    orpc_channel_unref(again); /* drops the extra reference only */
    SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    orpc_call_opts o = {.timeout_ms = 10000};
    orpc_status st = orpc_channel_invoke(
        f->ch, grpc__testing__test_service__method__unary_call, &req.base,
        &resp, &o);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
    protobuf_c_message_free_unpacked(resp, NULL);
    assert_int_equal(locked_get(&g_probes), 1);
}

/* A connection left idle long enough for the server's trim sweep (which
 * hands back its idle pages, the frame buffer and any all-zero page of the
 * session) serves calls afterwards on the same channel.  The sleep sets up
 * the idle state; nothing is asserted about time. */
static void test_calls_after_idle_trim(void **state)
{
    fx *f = *state;
    for (int round = 0; round < 3; round++) {
        SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
        ProtobufCMessage *resp = NULL;
        orpc_call_opts o = {.timeout_ms = 10000};
        orpc_status st = orpc_channel_invoke(
            f->ch, grpc__testing__test_service__method__unary_call, &req.base,
            &resp, &o);
        assert_int_equal(st.code, ORPC_OK);
        orpc_status_clear(&st);
        assert_string_equal(((SimpleResponse *)resp)->username, "answered");
        protobuf_c_message_free_unpacked(resp, NULL);
        usleep(1200 * 1000); /* > two sweeps of ORPC__TRIM_MS */
    }
    assert_int_equal(locked_get(&g_probes), 3);
}

/* One EmptyCall through a fresh channel to |target|: its status code. */
static orpc_code empty_call_to(const char *target)
{
    orpc_channel *ch = NULL;
    orpc_channel_opts co = {.plaintext = 1};
    assert_int_equal(orpc_channel_new(&ch, target, &co, NULL, NULL), 0);
    Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT;
    ProtobufCMessage *resp = NULL;
    orpc_call_opts o = {.timeout_ms = 10000};
    orpc_status st =
        orpc_channel_invoke(ch, grpc__testing__test_service__method__empty_call,
                            &req.base, &resp, &o);
    orpc_code code = st.code;
    orpc_status_clear(&st);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    orpc_channel_unref(ch);
    return code;
}

/* Listen addresses: a name that only the resolver understands ("127.1",
 * which no literal parser takes), an IPv6 literal, and malformed ones. */
static void test_listen_addresses(void **state)
{
    (void)state;
    orpc_server *srv = NULL;
    orpc_server_opts o = {.plaintext = 1, .io_threads = 1};
    assert_int_equal(orpc_server_new(&srv, &o, NULL, NULL), 0);
    assert_int_equal(
        grpc__testing__test_service__server__register(srv, &handlers, NULL), 0);
    int p4 = 0, p6 = 0, dummy = 0;
    assert_int_equal(orpc_server_listen(srv, "127.1:0", &p4, NULL), 0);
    assert_int_equal(orpc_server_listen(srv, "[::1]:0", &p6, NULL), 0);
    assert_int_equal(orpc_server_listen(srv, "no-port-here", &dummy, NULL),
                     ORPC_EADDR);
    assert_int_equal(orpc_server_listen(srv, "127.0.0.1:70000", &dummy, NULL),
                     ORPC_EADDR);
    assert_int_equal(orpc_server_listen(srv, "[::1:0", &dummy, NULL), ORPC_EADDR);
    assert_int_equal(orpc_server_start(srv), 0);
    char t[64];
    snprintf(t, sizeof(t), "127.0.0.1:%d", p4);
    assert_int_equal(empty_call_to(t), ORPC_OK);
    snprintf(t, sizeof(t), "[::1]:%d", p6);
    assert_int_equal(empty_call_to(t), ORPC_OK);
    assert_int_equal(orpc_server_shutdown(srv, 500), 0);
    assert_int_equal(orpc_server_wait(srv), 0);
    orpc_server_free(srv);
}

int main(void)
{
    uv_mutex_init(&g_lock);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defer_finish, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finish_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ctx_deadline_ns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_channel_invoke, setup, teardown),
        cmocka_unit_test_setup_teardown(test_channel_invoke_async, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_invoke_async_client, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_call_start_and_headers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_client_with_invoker, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_channel_ref, setup, teardown),
        cmocka_unit_test(test_listen_addresses),
        cmocka_unit_test_setup_teardown(test_calls_after_idle_trim, setup,
                                        teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    uv_mutex_destroy(&g_lock);
    return rc;
}
