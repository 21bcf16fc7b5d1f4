/*
 * rpc_retry_test.c — the service config on channels (orpc_channel_opts.
 * service_config) and the retries of unary calls it asks for (gRFC A6), on
 * loopback against an orpc server whose handlers fail on purpose.
 *
 * The server counts the attempts it sees and records, per attempt, the
 * grpc-previous-rpc-attempts the client sent (orpc_ctx_previous_attempts()).
 * Assertions are about counts, order and statuses, never durations: where a
 * delay matters (pushback, backoff, the deadline), the test makes it
 * decisive by choosing values far apart (a pushback of a minute against a
 * deadline of seconds).  Every wait is bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <uv.h>

#include <orpc/interceptor.h>
#include <orpc/orpc.h>

#include "grpc/testing/test.orpc.h"
#include "h2peer.h"

typedef Grpc__Testing__SimpleRequest SimpleReq;
typedef Grpc__Testing__SimpleResponse SimpleResp;
typedef Grpc__Testing__StreamingOutputCallRequest OutReq;
typedef Grpc__Testing__StreamingOutputCallResponse OutResp;

#define MAX_SEEN 16
#define MAX_MSGS 8

/* ---- the server's side: what it does and what it saw (g.lock) ---- */

static struct {
    uv_mutex_t lock;
    /* behaviour */
    int fail_first;    /* UnaryCall: fail this many attempts ... */
    int fail_all;      /* ... or every one */
    orpc_code code;    /* with this code */
    char pushback[24]; /* and this grpc-retry-pushback-ms ("": none) */
    int stream_sends;  /* StreamingOutputCall: responses before failing */
    int fail_at_msg;   /* client/bidi streams: fail at this message (0:
                          at the end of the request stream) */
    int reply_first;   /* FullDuplexCall: a failing attempt answers its
                          messages before failing (headers: committed) */
    int hang_first;    /* UnaryCall: attempts up to this one hang until
                          cancelled (10 s at most) ... */
    int hang_all;      /* ... or every one */
    int stream_ok;     /* StreamingOutputCall: fail or hang as UnaryCall
                          does, else send |stream_sends| responses of the
                          attempt's number of bytes and end OK */
    int stream_size;   /* ... of this many bytes instead (16 KiB max) */
    /* seen */
    int attempts;         /* UnaryCall and StreamingOutputCall attempts */
    int prev[MAX_SEEN];   /* orpc_ctx_previous_attempts() per attempt */
    int64_t remaining_ms; /* EmptyCall: the deadline it was given */
    int empty_calls;
    int failed;          /* attempts that failed on purpose */
    int cancelled;       /* hanging attempts that saw their cancellation */
    int nmsgs[MAX_SEEN]; /* request messages per attempt ... */
    int sizes[MAX_SEEN][MAX_MSGS]; /* ... and their payload sizes */
    int bad;                       /* a handler's expectation failed */
} g;

static int get(const int *v)
{
    uv_mutex_lock(&g.lock);
    int r = *v;
    uv_mutex_unlock(&g.lock);
    return r;
}

static void reset_server_state(void)
{
    uv_mutex_lock(&g.lock);
    g.fail_first = g.fail_all = g.stream_sends = 0;
    g.fail_at_msg = g.reply_first = g.failed = 0;
    g.hang_first = g.hang_all = g.cancelled = g.stream_ok = 0;
    g.stream_size = 0;
    memset(g.nmsgs, 0, sizeof g.nmsgs);
    memset(g.sizes, 0, sizeof g.sizes);
    g.code = ORPC_UNAVAILABLE;
    g.pushback[0] = '\0';
    g.attempts = g.empty_calls = g.bad = 0;
    g.remaining_ms = -1;
    memset(g.prev, -1, sizeof g.prev);
    uv_mutex_unlock(&g.lock);
}

static void set_behaviour(int fail_first, int fail_all, orpc_code code,
                          const char *pushback)
{
    uv_mutex_lock(&g.lock);
    g.fail_first = fail_first;
    g.fail_all = fail_all;
    g.code = code;
    snprintf(g.pushback, sizeof g.pushback, "%s", pushback ? pushback : "");
    uv_mutex_unlock(&g.lock);
}

/* Counts the attempt; 1 when it is to fail (|pb| gets the pushback). */
static int note_attempt(orpc_ctx *ctx, int *n, orpc_code *code, char *pb)
{
    uv_mutex_lock(&g.lock);
    *n = ++g.attempts;
    if (*n <= MAX_SEEN)
        g.prev[*n - 1] = orpc_ctx_previous_attempts(ctx);
    int fail = g.fail_all || *n <= g.fail_first;
    *code = g.code;
    memcpy(pb, g.pushback, sizeof g.pushback);
    uv_mutex_unlock(&g.lock);
    return fail;
}

/* Notes a handler's broken expectation (asserted on the test's thread:
 * cmocka's assertions must not run on the server's threads). */
static void handler_bad(void)
{
    uv_mutex_lock(&g.lock);
    g.bad++;
    uv_mutex_unlock(&g.lock);
}

/* 1 when attempt |n| is to hang (hang_first, hang_all). */
static int hangs(int n)
{
    uv_mutex_lock(&g.lock);
    int hang = g.hang_all || n <= g.hang_first;
    uv_mutex_unlock(&g.lock);
    return hang;
}

/* Waits until the call is cancelled (10 s at most), counting it. */
static orpc_status hang_up(orpc_ctx *ctx)
{
    for (int i = 0; i < 2000 && !orpc_ctx_is_cancelled(ctx); i++)
        usleep(5000);
    uv_mutex_lock(&g.lock);
    g.cancelled += orpc_ctx_is_cancelled(ctx) != 0;
    uv_mutex_unlock(&g.lock);
    return orpc_status_new(ORPC_CANCELLED, "hung up");
}

/* Fails as told (Trailers-Only, with trailer "attempt: N"), else answers
 * with response_size bytes and header "attempt: N". */
static orpc_status unary_call(orpc_ctx *ctx, const SimpleReq *req,
                              SimpleResp *resp, void *ud)
{
    (void)ud;
    int n;
    orpc_code code;
    char pb[sizeof g.pushback];
    char v[16];
    int fail = note_attempt(ctx, &n, &code, pb);
    snprintf(v, sizeof v, "%d", n);
    if (hangs(n))
        return hang_up(ctx);
    if (fail) {
        /* the reserved keys a handler may not set, and pushback values
         * that are not 1-23 printable bytes, are refused */
        static const char *const bad_values[] = {"", "1\n",
                                                 "123456789012345678901234"};
        for (size_t i = 0; i < 3; i++)
            if (orpc_ctx_add_trailer(ctx, "grpc-retry-pushback-ms",
                                     bad_values[i],
                                     strlen(bad_values[i])) != ORPC_EINVAL)
                handler_bad();
        if (orpc_ctx_add_trailer(ctx, "grpc-retry-pushback", "1", 1) !=
            ORPC_EINVAL)
            handler_bad();
        if (orpc_ctx_add_trailer(ctx, "attempt", v, strlen(v)) != 0 ||
            (pb[0] != '\0' &&
             orpc_ctx_add_trailer(ctx, "grpc-retry-pushback-ms", pb,
                                  strlen(pb)) != 0))
            handler_bad();
        return orpc_status_errorf(code, "planned failure of attempt %d", n);
    }
    if (orpc_ctx_add_header(ctx, "attempt", v, strlen(v)) != 0)
        handler_bad();
    Grpc__Testing__Payload *p =
        orpc_arena_alloc(orpc_ctx_arena(ctx), sizeof(*p));
    size_t len = (size_t)(req->response_size > 0 ? req->response_size : 0);
    uint8_t *body = orpc_arena_alloc(orpc_ctx_arena(ctx), len + 1);
    if (p == NULL || body == NULL)
        return orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "arena");
    grpc__testing__payload__init(p);
    memset(body, 'x', len);
    p->body.data = body;
    p->body.len = len;
    resp->payload = p;
    return ORPC_STATUS_OK;
}

/* Waits for the call's end (cancellation or deadline), 10 s at most. */
static orpc_status empty_call(orpc_ctx *ctx, const Grpc__Testing__Empty *req,
                              Grpc__Testing__Empty *resp, void *ud)
{
    (void)req;
    (void)resp;
    (void)ud;
    uv_mutex_lock(&g.lock);
    g.empty_calls++;
    g.remaining_ms = orpc_ctx_remaining_ms(ctx);
    uv_mutex_unlock(&g.lock);
    for (int i = 0; i < 2000 && !orpc_ctx_is_cancelled(ctx); i++)
        usleep(5000);
    return orpc_status_new(ORPC_CANCELLED, "gone");
}

/* Sends |stream_sends| responses, then fails UNAVAILABLE; with
 * |stream_ok|, see there. */
static orpc_status
streaming_output(orpc_ctx *ctx, const OutReq *req,
                 Grpc__Testing__TestService_StreamingOutputCall_ServerWriter *w,
                 void *ud)
{
    (void)req;
    (void)ud;
    int n;
    orpc_code code;
    char pb[sizeof g.pushback];
    int fail = note_attempt(ctx, &n, &code, pb);
    int ok = get(&g.stream_ok), size = get(&g.stream_size);
    static const uint8_t body[16384];
    Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
    p.body.data = (uint8_t *)body;
    p.body.len = (size_t)(size > 0 ? size : n);
    if (ok) {
        char v[16];
        snprintf(v, sizeof v, "%d", n);
        if (hangs(n))
            return hang_up(ctx);
        if (fail)
            return orpc_status_errorf(code, "planned failure of attempt %d", n);
        if (orpc_ctx_add_header(ctx, "attempt", v, strlen(v)) != 0)
            handler_bad();
    }
    int sends = get(&g.stream_sends);
    for (int i = 0; i < sends; i++) {
        OutResp r = GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
        if (ok)
            r.payload = &p;
        if (grpc__testing__test_service__server__streaming_output_call__send(
                w, &r) != 0)
            return orpc_status_new(ORPC_CANCELLED, "client went away");
    }
    if (ok)
        return ORPC_STATUS_OK;
    return orpc_status_new(ORPC_UNAVAILABLE, "planned failure after sending");
}

/* Notes request message |i| (from 1) of attempt |n|; returns 1 when the
 * attempt (failing when |fail|) is to fail now: at message fail_at_msg,
 * or with |i| 0 (the end of the request stream) when that is 0. */
static int note_msg(int n, int i, size_t size, int fail)
{
    uv_mutex_lock(&g.lock);
    if (i > 0 && n <= MAX_SEEN) {
        g.nmsgs[n - 1] = i;
        if (i <= MAX_MSGS)
            g.sizes[n - 1][i - 1] = (int)size;
    }
    int now = fail && i == g.fail_at_msg;
    if (now)
        g.failed++;
    uv_mutex_unlock(&g.lock);
    return now;
}

/* Reads the request stream, failing as told (Trailers-Only, before any
 * response); else answers with the sum of the payload sizes. */
static orpc_status
streaming_input(orpc_ctx *ctx,
                Grpc__Testing__TestService_StreamingInputCall_ServerReader *rd,
                Grpc__Testing__StreamingInputCallResponse *resp, void *ud)
{
    (void)ud;
    int n;
    orpc_code code;
    char pb[sizeof g.pushback];
    int fail = note_attempt(ctx, &n, &code, pb);
    const Grpc__Testing__StreamingInputCallRequest *req;
    int i = 0, sum = 0, rc;
    while (
        (rc = grpc__testing__test_service__server__streaming_input_call__recv(
             rd, &req)) == 1) {
        size_t size = req->payload ? req->payload->body.len : 0;
        sum += (int)size;
        if (note_msg(n, ++i, size, fail))
            return orpc_status_errorf(code, "planned failure at message %d", i);
    }
    if (rc < 0)
        return orpc_status_new(ORPC_CANCELLED, "client went away");
    if (note_msg(n, 0, 0, fail))
        return orpc_status_errorf(code, "planned failure at the end");
    resp->aggregated_payload_size = sum;
    return ORPC_STATUS_OK;
}

/* Echoes each request's payload size as a response (a failing attempt
 * only with reply_first), failing as told. */
static orpc_status
full_duplex(orpc_ctx *ctx,
            Grpc__Testing__TestService_FullDuplexCall_ServerStream *st,
            void *ud)
{
    (void)ud;
    int n;
    orpc_code code;
    char pb[sizeof g.pushback];
    int fail = note_attempt(ctx, &n, &code, pb);
    int hang = hangs(n); /* reads what comes, answers nothing */
    int reply = !hang && (!fail || get(&g.reply_first));
    const OutReq *req;
    int i = 0, rc;
    while ((rc = grpc__testing__test_service__server__full_duplex_call__recv(
                st, &req)) == 1) {
        size_t size = req->payload ? req->payload->body.len : 0;
        if (reply) {
            OutResp r = GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
            Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
            uint8_t body[64] = {0};
            p.body.data = body;
            p.body.len = size < sizeof body ? size : sizeof body;
            r.payload = &p;
            if (grpc__testing__test_service__server__full_duplex_call__send(
                    st, &r) != 0)
                return orpc_status_new(ORPC_CANCELLED, "client went away");
        }
        if (note_msg(n, ++i, size, fail))
            return orpc_status_errorf(code, "planned failure at message %d", i);
    }
    if (hang)
        return hang_up(ctx); /* (at once when cancelled already) */
    if (rc < 0)
        return orpc_status_new(ORPC_CANCELLED, "client went away");
    if (note_msg(n, 0, 0, fail))
        return orpc_status_errorf(code, "planned failure at the end");
    return ORPC_STATUS_OK;
}

static const Grpc__Testing__TestService_Handlers handlers = {
    .unary_call = unary_call,
    .empty_call = empty_call,
    .streaming_output_call = streaming_output,
    .streaming_input_call = streaming_input,
    .full_duplex_call = full_duplex,
};

/* ---- fixture ---- */

typedef struct fx {
    orpc_server *srv;
    char target[64];
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    orpc_server_opts o = {.plaintext = 1, .io_threads = 1};
    assert_int_equal(orpc_server_new(&f->srv, &o, NULL, NULL), 0);
    assert_int_equal(
        grpc__testing__test_service__server__register(f->srv, &handlers, NULL),
        0);
    int port;
    assert_int_equal(orpc_server_listen(f->srv, "127.0.0.1:0", &port, NULL), 0);
    assert_int_equal(orpc_server_start(f->srv), 0);
    snprintf(f->target, sizeof(f->target), "127.0.0.1:%d", port);
    reset_server_state();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    assert_int_equal(get(&g.bad), 0);
    assert_int_equal(orpc_server_shutdown(f->srv, 2000), 0);
    assert_int_equal(orpc_server_wait(f->srv), 0);
    orpc_server_free(f->srv);
    free(f);
    return 0;
}

static orpc_channel *channel_to(const char *target, const char *config,
                                const orpc_channel_opts *base)
{
    orpc_channel_opts co = {.plaintext = 1};
    if (base != NULL)
        co = *base;
    co.plaintext = 1;
    co.service_config = config;
    orpc_channel *ch = NULL;
    orpc_error_detail d = {0};
    int rc = orpc_channel_new(&ch, target, &co, NULL, &d);
    if (rc != 0)
        fail_msg("channel refused: %s", d.message);
    return ch;
}

#define SERVICE "\"grpc.testing.TestService\""

/* A retry policy for every method of the test service, in a config. */
static const char *retry_config(char *buf, size_t len, int max_attempts,
                                const char *backoff, const char *codes,
                                const char *extra)
{
    snprintf(buf, len,
             "{\"methodConfig\": [{\"name\": [{\"service\": " SERVICE "}],"
             " \"retryPolicy\": {\"maxAttempts\": %d,"
             " \"initialBackoff\": \"%s\", \"maxBackoff\": \"%s\","
             " \"backoffMultiplier\": 2, \"retryableStatusCodes\": [%s]}}]%s}",
             max_attempts, backoff, backoff, codes, extra ? extra : "");
    return buf;
}

/* A blocking UnaryCall; returns its code (response checked and freed). */
static orpc_code unary(orpc_channel *ch, int response_size, int payload,
                       const orpc_call_opts *opts)
{
    SimpleReq req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
    uint8_t *body = NULL;
    req.response_size = response_size;
    if (payload > 0) {
        body = calloc(1, (size_t)payload);
        assert_non_null(body);
        p.body.data = body;
        p.body.len = (size_t)payload;
        req.payload = &p;
    }
    ProtobufCMessage *resp = NULL;
    orpc_status st =
        orpc_channel_invoke(ch, grpc__testing__test_service__method__unary_call,
                            &req.base, &resp, opts);
    orpc_code code = st.code;
    if (code == ORPC_OK) {
        SimpleResp *r = (SimpleResp *)resp;
        assert_non_null(r->payload);
        assert_int_equal(r->payload->body.len, (size_t)response_size);
        protobuf_c_message_free_unpacked(resp, NULL);
    }
    orpc_status_clear(&st);
    free(body);
    return code;
}

static const char *md_get(const orpc_metadata *md, const char *key)
{
    const uint8_t *v;
    size_t len;
    return orpc_metadata_get(md, key, &v, &len) == 0 ? (const char *)v : NULL;
}

static size_t md_count_key(const orpc_metadata *md, const char *key)
{
    size_t n = 0;
    for (size_t i = 0; i < orpc_metadata_count(md); i++) {
        const char *k;
        const uint8_t *v;
        size_t len;
        if (orpc_metadata_at(md, i, &k, &v, &len) == 0 && strcmp(k, key) == 0)
            n++;
    }
    return n;
}

/* An asynchronous unary call's outcome (lock). */
typedef struct async_res {
    uv_mutex_t lock;
    int done;
    orpc_code code;
    size_t len; /* response payload */
} async_res;

static void async_done(const orpc_status *st, ProtobufCMessage *resp, void *ud)
{
    async_res *r = ud;
    uv_mutex_lock(&r->lock);
    r->code = st->code;
    if (resp != NULL) {
        SimpleResp *sr = (SimpleResp *)resp;
        r->len = sr->payload ? sr->payload->body.len : 0;
        protobuf_c_message_free_unpacked(resp, NULL);
    }
    r->done = 1;
    uv_mutex_unlock(&r->lock);
}

/* Waits (10 s at most) for |r| to be done; returns done. */
static int async_wait(async_res *r)
{
    for (int i = 0; i < 2000; i++) {
        uv_mutex_lock(&r->lock);
        int done = r->done;
        uv_mutex_unlock(&r->lock);
        if (done)
            return 1;
        usleep(5000);
    }
    return 0;
}

/* ---- retries ---- */

/* Fails UNAVAILABLE three times, then answers: the caller sees OK, the
 * server four attempts with grpc-previous-rpc-attempts 0, 1, 2, 3, and the
 * caller only the last attempt's metadata. */
static void test_retry_until_success(void **state)
{
    fx *f = *state;
    char cfg[512];
    orpc_channel *ch = channel_to(
        f->target,
        retry_config(cfg, sizeof cfg, 5, "0.01s", "\"UNAVAILABLE\"", NULL),
        NULL);
    set_behaviour(3, 0, ORPC_UNAVAILABLE, NULL);
    orpc_metadata *headers, *trailers;
    assert_int_equal(orpc_metadata_new(&headers, NULL), 0);
    assert_int_equal(orpc_metadata_new(&trailers, NULL), 0);
    orpc_call_opts opts = {
        .timeout_ms = 20000, .headers_out = headers, .trailers_out = trailers};
    assert_int_equal(unary(ch, 100, 10, &opts), ORPC_OK);
    assert_int_equal(get(&g.attempts), 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(get(&g.prev[i]), i);
    /* the failed attempts' "attempt" trailers never reach the caller */
    assert_int_equal(md_count_key(headers, "attempt"), 1);
    assert_string_equal(md_get(headers, "attempt"), "4");
    assert_int_equal(md_count_key(trailers, "attempt"), 0);
    orpc_metadata_free(headers);
    orpc_metadata_free(trailers);

    /* The same, asynchronously, without a deadline. */
    reset_server_state();
    set_behaviour(2, 0, ORPC_UNAVAILABLE, NULL);
    async_res res = {.code = ORPC_UNKNOWN};
    uv_mutex_init(&res.lock);
    SimpleReq req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    req.response_size = 7;
    assert_int_equal(orpc_channel_invoke_async(
                         ch, grpc__testing__test_service__method__unary_call,
                         &req.base, NULL, async_done, &res),
                     0);
    assert_true(async_wait(&res));
    assert_int_equal(res.code, ORPC_OK);
    assert_int_equal(res.len, 7);
    assert_int_equal(get(&g.attempts), 3);
    assert_int_equal(get(&g.prev[0]), 0);
    assert_int_equal(get(&g.prev[2]), 2);
    uv_mutex_destroy(&res.lock);
    orpc_channel_unref(ch);
}

/* A code not in retryableStatusCodes ends the call at once; a call of a
 * method without a policy is never retried. */
static void test_not_retryable(void **state)
{
    fx *f = *state;
    char cfg[512];
    orpc_channel *ch = channel_to(
        f->target,
        retry_config(cfg, sizeof cfg, 5, "0.01s", "\"UNAVAILABLE\", 10", NULL),
        NULL);
    set_behaviour(0, 1, ORPC_INTERNAL, NULL);
    assert_int_equal(unary(ch, 1, 0, NULL), ORPC_INTERNAL);
    assert_int_equal(get(&g.attempts), 1);
    assert_int_equal(get(&g.prev[0]), 0);
    orpc_channel_unref(ch);

    /* the policy names another service: none for this one */
    reset_server_state();
    ch = channel_to(f->target,
                    "{\"methodConfig\": [{\"name\": [{\"service\": \"x.Y\"}],"
                    " \"retryPolicy\": {\"maxAttempts\": 5,"
                    " \"initialBackoff\": \"0.01s\", \"maxBackoff\": \"0.01s\","
                    " \"backoffMultiplier\": 1,"
                    " \"retryableStatusCodes\": [\"UNAVAILABLE\"]}}]}",
                    NULL);
    set_behaviour(0, 1, ORPC_UNAVAILABLE, NULL);
    assert_int_equal(unary(ch, 1, 0, NULL), ORPC_UNAVAILABLE);
    assert_int_equal(get(&g.attempts), 1);
    orpc_channel_unref(ch);
}

/* maxAttempts bounds the attempts (and more than 5 counts as 5). */
static void test_max_attempts(void **state)
{
    fx *f = *state;
    static const struct {
        int max, want;
    } cases[] = {{2, 2}, {3, 3}, {9, 5}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char cfg[512];
        reset_server_state();
        orpc_channel *ch =
            channel_to(f->target,
                       retry_config(cfg, sizeof cfg, cases[k].max, "0.005s",
                                    "\"UNAVAILABLE\"", NULL),
                       NULL);
        set_behaviour(0, 1, ORPC_UNAVAILABLE, NULL);
        assert_int_equal(unary(ch, 1, 0, NULL), ORPC_UNAVAILABLE);
        assert_int_equal(get(&g.attempts), cases[k].want);
        for (int i = 0; i < cases[k].want; i++)
            assert_int_equal(get(&g.prev[i]), i);
        orpc_channel_unref(ch);
    }
}

/* Server pushback: a valid one sets the delay (a minute, against a
 * 5-second deadline: the retry cannot start in time, so the call ends
 * with the attempt's status at once); a small one overrides a long
 * backoff (every attempt is made well within the deadline); a negative or
 * malformed one stops the retries. */
static void test_pushback(void **state)
{
    fx *f = *state;
    char cfg[512];
    orpc_call_opts opts = {.timeout_ms = 5000};
    static const struct {
        const char *pushback;
        const char *backoff;
        int want;
    } cases[] = {
        {"60000", "0.001s", 1}, /* honoured: longer than the deadline */
        {"1", "100s", 4},       /* honoured: shorter than the backoff */
        {"0", "100s", 4},       {"-1", "0.001s", 1}, /* "do not retry" */
        {"-500", "0.001s", 1},  {"soon", "0.001s", 1},
        {"1.5", "0.001s", 1},   {"99999999999", "0.001s", 1}, /* not an int32 */
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        reset_server_state();
        orpc_channel *ch =
            channel_to(f->target,
                       retry_config(cfg, sizeof cfg, 4, cases[k].backoff,
                                    "\"UNAVAILABLE\"", NULL),
                       NULL);
        set_behaviour(0, 1, ORPC_UNAVAILABLE, cases[k].pushback);
        assert_int_equal(unary(ch, 1, 0, &opts), ORPC_UNAVAILABLE);
        if (get(&g.attempts) != cases[k].want)
            fail_msg("pushback \"%s\": %d attempts, want %d", cases[k].pushback,
                     get(&g.attempts), cases[k].want);
        orpc_channel_unref(ch);
    }
    /* a pushback on a success changes nothing */
    reset_server_state();
    orpc_channel *ch = channel_to(
        f->target,
        retry_config(cfg, sizeof cfg, 4, "0.001s", "\"UNAVAILABLE\"", NULL),
        NULL);
    set_behaviour(1, 0, ORPC_UNAVAILABLE, "2");
    assert_int_equal(unary(ch, 3, 0, &opts), ORPC_OK);
    assert_int_equal(get(&g.attempts), 2);
    orpc_channel_unref(ch);
}

/* The start of both throttling tests (maxTokens 10, maxAttempts 5):
 * calls failing UNAVAILABLE spend 5 tokens in 5 attempts, then 1 in 1. */
static void throttle_drain(orpc_channel *ch)
{
    for (int want = 5; want >= 1; want -= 4) {
        reset_server_state();
        set_behaviour(0, 1, ORPC_UNAVAILABLE, NULL);
        assert_int_equal(unary(ch, 1, 0, NULL), ORPC_UNAVAILABLE);
        assert_int_equal(get(&g.attempts), want); /* 10 -> 5, 5 -> 4 */
    }
}

/* Throttling (maxTokens 10, tokenRatio 1; a failed attempt takes a token,
 * a success gives one, retries only while more than 5 are left): a
 * failing call spends 5 tokens in 5 attempts, the next ones get no retry,
 * four successes earn four back, and the next failing call gets one
 * retry. */
static void test_throttling(void **state)
{
    fx *f = *state;
    char cfg[512];
    orpc_channel *ch =
        channel_to(f->target,
                   retry_config(cfg, sizeof cfg, 5, "0.001s", "\"UNAVAILABLE\"",
                                ", \"retryThrottling\": {\"maxTokens\": 10, "
                                "\"tokenRatio\": 1}"),
                   NULL);
    throttle_drain(ch);
    assert_int_equal(unary(ch, 1, 0, NULL), ORPC_UNAVAILABLE); /* 4 -> 3 */
    assert_int_equal(get(&g.attempts), 2);
    reset_server_state();
    for (int i = 0; i < 4; i++) /* 3 -> 7 */
        assert_int_equal(unary(ch, 1, 0, NULL), ORPC_OK);
    assert_int_equal(get(&g.attempts), 4);
    reset_server_state();
    set_behaviour(0, 1, ORPC_UNAVAILABLE, NULL);
    assert_int_equal(unary(ch, 1, 0, NULL), ORPC_UNAVAILABLE); /* 7 -> 5 */
    assert_int_equal(get(&g.attempts), 2);
    /* a code that is not retryable costs no token */
    reset_server_state();
    set_behaviour(0, 1, ORPC_INTERNAL, NULL);
    for (int i = 0; i < 3; i++)
        assert_int_equal(unary(ch, 1, 0, NULL), ORPC_INTERNAL);
    reset_server_state();
    for (int i = 0; i < 2; i++) /* 5 -> 7 */
        assert_int_equal(unary(ch, 1, 0, NULL), ORPC_OK);
    reset_server_state();
    set_behaviour(0, 1, ORPC_UNAVAILABLE, NULL);
    assert_int_equal(unary(ch, 1, 0, NULL), ORPC_UNAVAILABLE); /* 7 -> 5 */
    assert_int_equal(get(&g.attempts), 2);
    /* and the bucket never holds more than maxTokens */
    reset_server_state();
    for (int i = 0; i < 20; i++) /* 5 -> 10 */
        assert_int_equal(unary(ch, 1, 0, NULL), ORPC_OK);
    reset_server_state();
    set_behaviour(0, 1, ORPC_UNAVAILABLE, NULL);
    assert_int_equal(unary(ch, 1, 0, NULL), ORPC_UNAVAILABLE); /* 10 -> 5 */
    assert_int_equal(get(&g.attempts), 5);
    orpc_channel_unref(ch);
}

/* Reads a blocking call's responses to the end (|*got| of them) and
 * finishes it; returns its code (the last recv agreeing with it). */
static orpc_code drain_call(orpc_call *call, int *got)
{
    ProtobufCMessage *m;
    int rc;
    *got = 0;
    while ((rc = orpc_call_recv(call, &m)) == 1) {
        protobuf_c_message_free_unpacked(m, NULL);
        (*got)++;
    }
    orpc_status st = orpc_call_finish(call);
    orpc_code code = st.code;
    orpc_status_clear(&st);
    assert_int_equal(rc, code == ORPC_OK ? 0 : ORPC_ECLOSED);
    return code;
}

/* StreamingOutputCall as if it were unary: the server sends a response
 * (headers go out with it) and then fails: the call is committed and not
 * retried.  Without the response, the failure is Trailers-Only and the
 * call is retried. */
static const orpc_method_desc streaming_as_unary = {
    .name = "StreamingOutputCall",
    .path = "/grpc.testing.TestService/StreamingOutputCall",
    .kind = ORPC_CALL_UNARY,
    .input = &grpc__testing__streaming_output_call_request__orpc_info,
    .output = &grpc__testing__streaming_output_call_response__orpc_info,
    .service = &grpc__testing__test_service__orpc_desc,
};

static void test_committed_after_headers(void **state)
{
    fx *f = *state;
    char cfg[512];
    orpc_channel *ch = channel_to(
        f->target,
        retry_config(cfg, sizeof cfg, 3, "0.001s", "\"UNAVAILABLE\"", NULL),
        NULL);
    for (int sends = 1; sends >= 0; sends--) {
        reset_server_state();
        uv_mutex_lock(&g.lock);
        g.stream_sends = sends;
        uv_mutex_unlock(&g.lock);
        OutReq req = GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
        ProtobufCMessage *resp = NULL;
        orpc_status st = orpc_channel_invoke(ch, &streaming_as_unary, &req.base,
                                             &resp, NULL);
        assert_int_equal(st.code, ORPC_UNAVAILABLE);
        assert_null(resp);
        orpc_status_clear(&st);
        assert_int_equal(get(&g.attempts), sends ? 1 : 3);
    }
    /* Real server streaming: retried while nothing came (Trailers-Only),
     * committed by the response headers that come with a message. */
    for (int sends = 1; sends >= 0; sends--) {
        reset_server_state();
        uv_mutex_lock(&g.lock);
        g.stream_sends = sends;
        uv_mutex_unlock(&g.lock);
        OutReq req = GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
        orpc_call *call;
        assert_int_equal(
            orpc_channel_call_start(
                &call, ch,
                grpc__testing__test_service__method__streaming_output_call,
                &req.base, NULL),
            0);
        int got;
        assert_int_equal(drain_call(call, &got), ORPC_UNAVAILABLE);
        assert_int_equal(got, sends);
        assert_int_equal(get(&g.attempts), sends ? 1 : 3);
        assert_int_equal(get(&g.prev[0]), 0);
        if (!sends)
            assert_int_equal(get(&g.prev[2]), 2);
    }
    orpc_channel_unref(ch);
}

/* The request is kept for replays only within the buffer limits: over the
 * per-call limit (or the channel's total), no retry. */
static void test_buffer_limits(void **state)
{
    fx *f = *state;
    char cfg[512];
    retry_config(cfg, sizeof cfg, 3, "0.001s", "\"UNAVAILABLE\"", NULL);
    static const struct {
        size_t per_call, total;
        int payload, want;
    } cases[] = {
        {0, 0, 1000, 3},                       /* defaults: 256 KiB, 16 MiB */
        {0, 0, 300000, 1},                     /* over 256 KiB */
        {500, 0, 1000, 1},                     /* over the call's limit */
        {2000, 0, 1000, 3}, {0, 500, 1000, 1}, /* over the channel's */
        {0, 2000, 1000, 3},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        reset_server_state();
        orpc_channel_opts co = {.per_call_retry_buffer_size = cases[k].per_call,
                                .retry_buffer_size = cases[k].total};
        orpc_channel *ch = channel_to(f->target, cfg, &co);
        set_behaviour(0, 1, ORPC_UNAVAILABLE, NULL);
        assert_int_equal(unary(ch, 1, cases[k].payload, NULL),
                         ORPC_UNAVAILABLE);
        if (get(&g.attempts) != cases[k].want)
            fail_msg("case %zu: %d attempts, want %d", k, get(&g.attempts),
                     cases[k].want);
        /* the budget came back: the same call again retries the same */
        reset_server_state();
        set_behaviour(0, 1, ORPC_UNAVAILABLE, NULL);
        assert_int_equal(unary(ch, 1, cases[k].payload, NULL),
                         ORPC_UNAVAILABLE);
        assert_int_equal(get(&g.attempts), cases[k].want);
        orpc_channel_unref(ch);
    }
}

/* The channel closes while a call waits out a long backoff: the call ends
 * UNAVAILABLE and the channel's thread stops. */
static void test_close_during_backoff(void **state)
{
    fx *f = *state;
    char cfg[512];
    orpc_channel *ch = channel_to(
        f->target,
        retry_config(cfg, sizeof cfg, 2, "100s", "\"UNAVAILABLE\"", NULL),
        NULL);
    set_behaviour(0, 1, ORPC_UNAVAILABLE, NULL);
    async_res res = {.code = ORPC_UNKNOWN};
    uv_mutex_init(&res.lock);
    SimpleReq req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    assert_int_equal(orpc_channel_invoke_async(
                         ch, grpc__testing__test_service__method__unary_call,
                         &req.base, NULL, async_done, &res),
                     0);
    for (int i = 0; i < 2000 && get(&g.attempts) < 1; i++)
        usleep(5000);
    assert_true(get(&g.attempts) >= 1);
    orpc_channel_unref(ch);
    assert_true(async_wait(&res));
    assert_int_equal(res.code, ORPC_UNAVAILABLE);
    assert_true(get(&g.attempts) <= 2);
    uv_mutex_destroy(&res.lock);
}

/* ---- retries of streaming calls ---- */

static void set_stream_failure(int fail_at_msg, int reply_first)
{
    uv_mutex_lock(&g.lock);
    g.fail_at_msg = fail_at_msg;
    g.reply_first = reply_first;
    uv_mutex_unlock(&g.lock);
}

/* Waits (10 s at most) until |*v| is at least |want|; returns 1 if so. */
static int wait_at_least(const int *v, int want)
{
    for (int i = 0; i < 2000 && get(v) < want; i++)
        usleep(5000);
    return get(v) >= want;
}

/* Sends a StreamingInputCall message with |size| bytes of payload. */
static int send_input(orpc_call *call, int size)
{
    Grpc__Testing__StreamingInputCallRequest req =
        GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
    Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
    uint8_t *body = calloc(1, (size_t)size + 1);
    assert_non_null(body);
    p.body.data = body;
    p.body.len = (size_t)size;
    req.payload = &p;
    int rc = orpc_call_send(call, &req.base);
    free(body);
    return rc;
}

/* A FullDuplexCall request with |size| bytes of payload (body: 64 max). */
static int send_duplex(orpc_call *call, int size)
{
    static uint8_t body[64];
    OutReq req = GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
    p.body.data = body;
    p.body.len = (size_t)size;
    req.payload = &p;
    return orpc_call_send(call, &req.base);
}

/* A client-streaming call of the messages of |sizes|; its code, with the
 * server's sum in |*sum| when OK.  With |pause_after_first|, the second
 * message waits until the server has failed an attempt. */
static orpc_code client_stream(orpc_channel *ch, const int *sizes, int n,
                               int pause_after_first, int *sum)
{
    orpc_call *call;
    orpc_call_opts opts = {.timeout_ms = 20000};
    assert_int_equal(
        orpc_channel_call_start(
            &call, ch,
            grpc__testing__test_service__method__streaming_input_call, NULL,
            &opts),
        0);
    for (int i = 0; i < n; i++) {
        assert_int_equal(send_input(call, sizes[i]), 0);
        if (i == 0 && pause_after_first)
            assert_true(wait_at_least(&g.failed, 1));
    }
    ProtobufCMessage *resp = NULL;
    orpc_status st = orpc_call_finish_response(call, &resp);
    orpc_code code = st.code;
    orpc_status_clear(&st);
    *sum = -1;
    if (code == ORPC_OK) {
        assert_non_null(resp);
        *sum = ((Grpc__Testing__StreamingInputCallResponse *)resp)
                   ->aggregated_payload_size;
        protobuf_c_message_free_unpacked(resp, NULL);
    }
    return code;
}

/* A client-streaming call whose first attempt fails UNAVAILABLE before
 * any response (Trailers-Only) is retried with everything it sent: the
 * failure at the first message (the rest is sent after it, during the
 * backoff or the next attempt) or at the end of the stream (after the
 * half-close, which is replayed too).  The second attempt sees all four
 * messages in order, with grpc-previous-rpc-attempts 1; the caller sees
 * OK. */
static void test_stream_retry(void **state)
{
    fx *f = *state;
    char cfg[512];
    orpc_channel *ch = channel_to(
        f->target,
        retry_config(cfg, sizeof cfg, 3, "0.05s", "\"UNAVAILABLE\"", NULL),
        NULL);
    static const int sizes[] = {1, 2, 3, 4};
    for (int at = 1; at >= 0; at--) {
        reset_server_state();
        set_behaviour(1, 0, ORPC_UNAVAILABLE, NULL);
        set_stream_failure(at, 0);
        int sum;
        assert_int_equal(client_stream(ch, sizes, 4, at == 1, &sum), ORPC_OK);
        assert_int_equal(sum, 10);
        assert_int_equal(get(&g.attempts), 2);
        assert_int_equal(get(&g.failed), 1);
        assert_int_equal(get(&g.prev[0]), 0);
        assert_int_equal(get(&g.prev[1]), 1);
        assert_int_equal(get(&g.nmsgs[0]), at ? 1 : 4);
        assert_int_equal(get(&g.nmsgs[1]), 4);
        for (int i = 0; i < 4; i++)
            assert_int_equal(get(&g.sizes[1][i]), sizes[i]);
    }
    /* every attempt failing: maxAttempts (3) of them, then the status */
    reset_server_state();
    set_behaviour(0, 1, ORPC_UNAVAILABLE, NULL);
    int sum;
    assert_int_equal(client_stream(ch, sizes, 4, 0, &sum), ORPC_UNAVAILABLE);
    assert_int_equal(get(&g.attempts), 3);
    assert_int_equal(get(&g.nmsgs[2]), 4);
    assert_int_equal(get(&g.prev[2]), 2);
    orpc_channel_unref(ch);
}

/* A blocking bidi call: the first attempt fails at the first message
 * without answering; the second answers each of the three: the caller
 * reads three responses (never anything of the first attempt) and OK. */
static void test_bidi_retry(void **state)
{
    fx *f = *state;
    char cfg[512];
    orpc_channel *ch = channel_to(
        f->target,
        retry_config(cfg, sizeof cfg, 3, "0.05s", "\"UNAVAILABLE\"", NULL),
        NULL);
    set_behaviour(1, 0, ORPC_UNAVAILABLE, NULL);
    set_stream_failure(1, 0);
    orpc_metadata *headers;
    assert_int_equal(orpc_metadata_new(&headers, NULL), 0);
    orpc_call_opts opts = {.timeout_ms = 20000, .headers_out = headers};
    orpc_call *call;
    assert_int_equal(orpc_channel_call_start(
                         &call, ch,
                         grpc__testing__test_service__method__full_duplex_call,
                         NULL, &opts),
                     0);
    assert_int_equal(send_duplex(call, 5), 0);
    assert_true(wait_at_least(&g.failed, 1));
    assert_int_equal(send_duplex(call, 6), 0);
    assert_int_equal(send_duplex(call, 7), 0);
    assert_int_equal(orpc_call_close_send(call), 0);
    ProtobufCMessage *m;
    int got = 0, rc;
    while ((rc = orpc_call_recv(call, &m)) == 1) {
        OutResp *r = (OutResp *)m;
        assert_non_null(r->payload);
        assert_int_equal(r->payload->body.len, (size_t)(5 + got));
        protobuf_c_message_free_unpacked(m, NULL);
        got++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(got, 3);
    orpc_status st = orpc_call_finish(call);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
    assert_int_equal(get(&g.attempts), 2);
    assert_int_equal(get(&g.prev[1]), 1);
    assert_int_equal(get(&g.nmsgs[1]), 3);
    orpc_metadata_free(headers);
    orpc_channel_unref(ch);
}

/* An asynchronous bidi call's outcome (lock). */
typedef struct bidi_res {
    uv_mutex_t lock;
    int headers, done;
    int sizes[8], n;
    orpc_code code;
} bidi_res;

static void bidi_on_headers(orpc_call *call, const orpc_metadata *md, void *ud)
{
    (void)call;
    (void)md;
    bidi_res *r = ud;
    uv_mutex_lock(&r->lock);
    r->headers++;
    uv_mutex_unlock(&r->lock);
}

static void bidi_on_message(orpc_call *call, ProtobufCMessage *msg, void *ud)
{
    (void)call;
    bidi_res *r = ud;
    OutResp *resp = (OutResp *)msg;
    uv_mutex_lock(&r->lock);
    if (r->n < 8)
        r->sizes[r->n] = resp->payload ? (int)resp->payload->body.len : -1;
    r->n++;
    uv_mutex_unlock(&r->lock);
    protobuf_c_message_free_unpacked(msg, NULL);
}

static void bidi_on_done(orpc_call *call, const orpc_status *st, void *ud)
{
    (void)call;
    bidi_res *r = ud;
    uv_mutex_lock(&r->lock);
    r->code = st->code;
    r->done = 1;
    uv_mutex_unlock(&r->lock);
}

/* The same, asynchronously: one on_headers, three messages, OK. */
static void test_bidi_retry_async(void **state)
{
    fx *f = *state;
    char cfg[512];
    orpc_channel *ch = channel_to(
        f->target,
        retry_config(cfg, sizeof cfg, 3, "0.05s", "\"UNAVAILABLE\"", NULL),
        NULL);
    set_behaviour(1, 0, ORPC_UNAVAILABLE, NULL);
    set_stream_failure(1, 0);
    bidi_res res = {.code = ORPC_UNKNOWN};
    uv_mutex_init(&res.lock);
    orpc_call_callbacks cbs = {.on_headers = bidi_on_headers,
                               .on_message = bidi_on_message,
                               .on_done = bidi_on_done};
    orpc_call *call;
    assert_int_equal(orpc_channel_call_start_async(
                         &call, ch,
                         grpc__testing__test_service__method__full_duplex_call,
                         NULL, NULL, &cbs, &res),
                     0);
    assert_int_equal(send_duplex(call, 5), 0);
    assert_true(wait_at_least(&g.failed, 1));
    assert_int_equal(send_duplex(call, 6), 0);
    assert_int_equal(send_duplex(call, 7), 0);
    assert_int_equal(orpc_call_close_send(call), 0);
    for (int i = 0; i < 2000; i++) {
        uv_mutex_lock(&res.lock);
        int done = res.done;
        uv_mutex_unlock(&res.lock);
        if (done)
            break;
        usleep(5000);
    }
    uv_mutex_lock(&res.lock);
    assert_int_equal(res.done, 1);
    assert_int_equal(res.code, ORPC_OK);
    assert_int_equal(res.headers, 1);
    assert_int_equal(res.n, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(res.sizes[i], 5 + i);
    uv_mutex_unlock(&res.lock);
    orpc_call_unref(call);
    assert_int_equal(get(&g.attempts), 2);
    assert_int_equal(get(&g.prev[1]), 1);
    uv_mutex_destroy(&res.lock);
    orpc_channel_unref(ch);
}

/* A bidi attempt that answered (response headers: committed) and then
 * fails is not retried: the caller gets what it was sent, then the
 * status. */
static void test_stream_committed_after_headers(void **state)
{
    fx *f = *state;
    char cfg[512];
    orpc_channel *ch = channel_to(
        f->target,
        retry_config(cfg, sizeof cfg, 3, "0.001s", "\"UNAVAILABLE\"", NULL),
        NULL);
    set_behaviour(1, 0, ORPC_UNAVAILABLE, NULL);
    set_stream_failure(2, 1);
    orpc_call *call;
    assert_int_equal(orpc_channel_call_start(
                         &call, ch,
                         grpc__testing__test_service__method__full_duplex_call,
                         NULL, NULL),
                     0);
    assert_int_equal(send_duplex(call, 5), 0);
    assert_int_equal(send_duplex(call, 6), 0);
    assert_int_equal(orpc_call_close_send(call), 0);
    int got;
    assert_int_equal(drain_call(call, &got), ORPC_UNAVAILABLE);
    assert_int_equal(got, 2);
    assert_int_equal(get(&g.attempts), 1);
    orpc_channel_unref(ch);
}

/* What a streaming call keeps for replays is bounded: four messages of
 * about 108 bytes go over a budget of 300 (per call, or the channel's
 * total), which commits the call: the failure at the end of the stream is
 * not retried.  Within a budget of 2000 it is.  Each case runs twice: the
 * budget comes back when a call ends. */
static void test_stream_buffer_limits(void **state)
{
    fx *f = *state;
    char cfg[512];
    retry_config(cfg, sizeof cfg, 3, "0.001s", "\"UNAVAILABLE\"", NULL);
    static const struct {
        size_t per_call, total;
        orpc_code want;
        int attempts;
    } cases[] = {
        {300, 0, ORPC_UNAVAILABLE, 1},
        {0, 300, ORPC_UNAVAILABLE, 1},
        {2000, 0, ORPC_OK, 2},
        {0, 2000, ORPC_OK, 2},
    };
    static const int sizes[] = {100, 100, 100, 100};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        orpc_channel_opts co = {.per_call_retry_buffer_size = cases[k].per_call,
                                .retry_buffer_size = cases[k].total};
        orpc_channel *ch = channel_to(f->target, cfg, &co);
        for (int round = 0; round < 2; round++) {
            reset_server_state();
            set_behaviour(1, 0, ORPC_UNAVAILABLE, NULL);
            set_stream_failure(0, 0);
            int sum;
            orpc_code code = client_stream(ch, sizes, 4, 0, &sum);
            if (code != cases[k].want || get(&g.attempts) != cases[k].attempts)
                fail_msg("case %zu round %d: %s after %d attempts", k, round,
                         orpc_code_name(code), get(&g.attempts));
            if (code == ORPC_OK)
                assert_int_equal(sum, 400);
        }
        orpc_channel_unref(ch);
    }
}

/* ---- hedging ---- */

/* A channel to |target| whose config gives every method of the test
 * service a hedging policy. */
static orpc_channel *hedged_channel_opts(const char *target, int max_attempts,
                                         const char *delay, const char *codes,
                                         const char *extra,
                                         const orpc_channel_opts *base)
{
    char cfg[512];
    snprintf(cfg, sizeof cfg,
             "{\"methodConfig\": [{\"name\": [{\"service\": " SERVICE "}],"
             " \"hedgingPolicy\": {\"maxAttempts\": %d,"
             " \"hedgingDelay\": \"%s\", \"nonFatalStatusCodes\": [%s]}}]%s}",
             max_attempts, delay, codes, extra ? extra : "");
    return channel_to(target, cfg, base);
}

static orpc_channel *hedged_channel(const char *target, int max_attempts,
                                    const char *delay, const char *codes,
                                    const char *extra)
{
    return hedged_channel_opts(target, max_attempts, delay, codes, extra, NULL);
}

static void set_hang(int first, int all)
{
    uv_mutex_lock(&g.lock);
    g.hang_first = first;
    g.hang_all = all;
    uv_mutex_unlock(&g.lock);
}

/* The first attempt hangs; the hedge started after hedgingDelay answers
 * at once: its answer is the call's (its headers only), the first
 * attempt is cancelled (the server sees it) and no third starts.  Also
 * asynchronously. */
static void test_hedge_first_answer_wins(void **state)
{
    fx *f = *state;
    orpc_channel *ch = hedged_channel(f->target, 3, "0.1s", "", NULL);
    set_hang(1, 0);
    orpc_metadata *headers;
    assert_int_equal(orpc_metadata_new(&headers, NULL), 0);
    orpc_call_reach reach = ORPC_REACH_NONE;
    orpc_call_opts opts = {
        .timeout_ms = 20000, .headers_out = headers, .reached = &reach};
    assert_int_equal(unary(ch, 10, 0, &opts), ORPC_OK);
    assert_int_equal(reach, ORPC_REACH_SENT);
    assert_int_equal(md_count_key(headers, "attempt"), 1);
    assert_string_equal(md_get(headers, "attempt"), "2");
    orpc_metadata_free(headers);
    assert_true(wait_at_least(&g.cancelled, 1));
    usleep(300000); /* (a third attempt would have started by now) */
    assert_int_equal(get(&g.attempts), 2);
    assert_int_equal(get(&g.prev[0]), 0);
    assert_int_equal(get(&g.prev[1]), 1);

    reset_server_state();
    set_hang(1, 0);
    async_res res = {.code = ORPC_UNKNOWN};
    uv_mutex_init(&res.lock);
    SimpleReq req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    req.response_size = 7;
    assert_int_equal(orpc_channel_invoke_async(
                         ch, grpc__testing__test_service__method__unary_call,
                         &req.base, NULL, async_done, &res),
                     0);
    assert_true(async_wait(&res));
    assert_int_equal(res.code, ORPC_OK);
    assert_int_equal(res.len, 7);
    assert_true(wait_at_least(&g.cancelled, 1));
    assert_int_equal(get(&g.attempts), 2);
    uv_mutex_destroy(&res.lock);
    orpc_channel_unref(ch);
}

/* hedgingDelay is waited for: with 100 s, a hanging first attempt is the
 * only one before a 1-second deadline.  With 50 ms, attempts start until
 * maxAttempts are in flight (3; 9 counts as 5), all hanging until the
 * deadline cancels them. */
static void test_hedge_delay_and_max_attempts(void **state)
{
    fx *f = *state;
    static const struct {
        const char *delay;
        int max, want;
    } cases[] = {{"100s", 3, 1}, {"0.05s", 3, 3}, {"0.05s", 9, 5}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        reset_server_state();
        set_hang(0, 1);
        orpc_channel *ch =
            hedged_channel(f->target, cases[k].max, cases[k].delay, "", NULL);
        orpc_call_opts opts = {.timeout_ms = 1000};
        assert_int_equal(unary(ch, 1, 0, &opts), ORPC_DEADLINE_EXCEEDED);
        assert_true(wait_at_least(&g.cancelled, cases[k].want));
        if (get(&g.attempts) != cases[k].want)
            fail_msg("case %zu: %d attempts, want %d", k, get(&g.attempts),
                     cases[k].want);
        for (int i = 0; i < cases[k].want; i++)
            assert_int_equal(get(&g.prev[i]), i);
        orpc_channel_unref(ch);
    }
}

/* A request over per_call_retry_buffer_size is not kept for hedges: the
 * call is committed from the start and has its first attempt only. */
static void test_hedge_buffer_limit(void **state)
{
    fx *f = *state;
    char cfg[512];
    snprintf(cfg, sizeof cfg,
             "{\"methodConfig\": [{\"name\": [{\"service\": " SERVICE "}],"
             " \"hedgingPolicy\": {\"maxAttempts\": 3,"
             " \"hedgingDelay\": \"0.05s\"}}]}");
    for (int over = 0; over <= 1; over++) {
        reset_server_state();
        set_hang(0, 1);
        orpc_channel_opts co = {.per_call_retry_buffer_size = 500};
        orpc_channel *ch = channel_to(f->target, cfg, &co);
        orpc_call_opts opts = {.timeout_ms = 1000};
        assert_int_equal(unary(ch, 1, over ? 1000 : 10, &opts),
                         ORPC_DEADLINE_EXCEEDED);
        assert_true(wait_at_least(&g.cancelled, over ? 1 : 3));
        assert_int_equal(get(&g.attempts), over ? 1 : 3);
        orpc_channel_unref(ch);
    }
}

/* A status in nonFatalStatusCodes does not end the call while another
 * attempt may start: the next starts at once (not after the 100 s
 * delay); the last attempt's status is the call's.  A fatal status (and
 * OK) ends the call at once. */
static void test_hedge_non_fatal(void **state)
{
    fx *f = *state;
    orpc_channel *ch =
        hedged_channel(f->target, 3, "100s", "\"UNAVAILABLE\"", NULL);
    orpc_call_opts opts = {.timeout_ms = 20000};
    set_behaviour(0, 1, ORPC_UNAVAILABLE, NULL);
    assert_int_equal(unary(ch, 1, 0, &opts), ORPC_UNAVAILABLE);
    assert_int_equal(get(&g.attempts), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(get(&g.prev[i]), i);
    reset_server_state();
    set_behaviour(2, 0, ORPC_UNAVAILABLE, NULL);
    assert_int_equal(unary(ch, 4, 0, &opts), ORPC_OK);
    assert_int_equal(get(&g.attempts), 3);
    reset_server_state();
    set_behaviour(0, 1, ORPC_INTERNAL, NULL);
    assert_int_equal(unary(ch, 1, 0, &opts), ORPC_INTERNAL);
    assert_int_equal(get(&g.attempts), 1);
    orpc_channel_unref(ch);
}

/* Pushback on a non-fatal status: negative stops hedging; a minute
 * against a 3-second deadline means no next attempt (the call ends at
 * once); 1 ms lets the next start. */
static void test_hedge_pushback(void **state)
{
    fx *f = *state;
    orpc_channel *ch =
        hedged_channel(f->target, 3, "100s", "\"UNAVAILABLE\"", NULL);
    static const struct {
        const char *pushback;
        int want;
    } cases[] = {{"-1", 1}, {"60000", 1}, {"1", 3}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        reset_server_state();
        set_behaviour(0, 1, ORPC_UNAVAILABLE, cases[k].pushback);
        orpc_call_opts opts = {.timeout_ms = 3000};
        assert_int_equal(unary(ch, 1, 0, &opts), ORPC_UNAVAILABLE);
        if (get(&g.attempts) != cases[k].want)
            fail_msg("pushback \"%s\": %d attempts, want %d", cases[k].pushback,
                     get(&g.attempts), cases[k].want);
    }
    orpc_channel_unref(ch);
}

/* Throttling (maxTokens 10, tokenRatio 1): a non-fatal failure takes a
 * token, and no hedge starts unless more than 5 are left: a failing call
 * spends 5 tokens in 5 attempts, the next gets no hedge; two successes
 * earn two back, and the next failing call gets one hedge. */
static void test_hedge_throttled(void **state)
{
    fx *f = *state;
    orpc_channel *ch =
        hedged_channel(f->target, 5, "100s", "\"UNAVAILABLE\"",
                       ", \"retryThrottling\": {\"maxTokens\": 10, "
                       "\"tokenRatio\": 1}");
    throttle_drain(ch);
    reset_server_state();
    for (int i = 0; i < 3; i++) /* 4 -> 7 */
        assert_int_equal(unary(ch, 1, 0, NULL), ORPC_OK);
    reset_server_state();
    set_behaviour(0, 1, ORPC_UNAVAILABLE, NULL);
    assert_int_equal(unary(ch, 1, 0, NULL), ORPC_UNAVAILABLE); /* 7 -> 5 */
    assert_int_equal(get(&g.attempts), 2);
    orpc_channel_unref(ch);
}

/* The channel closes while a hedged call's attempt hangs (the next is
 * 100 s away): the call ends, not OK, the server sees the cancel and the
 * channel's thread stops. */
static void test_hedge_channel_close(void **state)
{
    fx *f = *state;
    orpc_channel *ch = hedged_channel(f->target, 3, "100s", "", NULL);
    set_hang(0, 1);
    async_res res = {.code = ORPC_OK};
    uv_mutex_init(&res.lock);
    SimpleReq req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    assert_int_equal(orpc_channel_invoke_async(
                         ch, grpc__testing__test_service__method__unary_call,
                         &req.base, NULL, async_done, &res),
                     0);
    assert_true(wait_at_least(&g.attempts, 1));
    orpc_channel_unref(ch);
    assert_true(async_wait(&res));
    assert_int_equal(res.code, ORPC_UNAVAILABLE);
    assert_true(wait_at_least(&g.cancelled, 1));
    assert_int_equal(get(&g.attempts), 1);
    uv_mutex_destroy(&res.lock);
}

/* ---- hedging of streaming calls ---- */

/* Starts a blocking call of |method| (|req| for a server stream) with a
 * 20 s deadline and |headers_out| (may be NULL). */
static orpc_call *start_call(orpc_channel *ch, const orpc_method_desc *method,
                             const ProtobufCMessage *req,
                             orpc_metadata *headers_out)
{
    orpc_call_opts opts = {.timeout_ms = 20000, .headers_out = headers_out};
    orpc_call *call = NULL;
    assert_int_equal(orpc_channel_call_start(&call, ch, method, req, &opts), 0);
    return call;
}

/* Reads a blocking call's responses to the end, their payload sizes in
 * |sizes| (|max|), |*got| of them; finishes it; returns its code. */
static orpc_code drain_sizes(orpc_call *call, int *sizes, int max, int *got)
{
    ProtobufCMessage *m;
    int rc;
    *got = 0;
    while ((rc = orpc_call_recv(call, &m)) == 1) {
        OutResp *r = (OutResp *)m;
        if (*got < max)
            sizes[*got] = r->payload ? (int)r->payload->body.len : -1;
        protobuf_c_message_free_unpacked(m, NULL);
        (*got)++;
    }
    orpc_status st = orpc_call_finish(call);
    orpc_code code = st.code;
    orpc_status_clear(&st);
    assert_int_equal(rc, code == ORPC_OK ? 0 : ORPC_ECLOSED);
    return code;
}

/* The channel's counter orpc_client_channel_|name|_total for |target|
 * (0 when not rendered). */
static long chan_counter(orpc_channel *ch, const char *target, const char *name)
{
    char *page = NULL, key[200];
    size_t len = 0;
    assert_int_equal(
        orpc_metrics_prometheus(orpc_channel_metrics(ch), &page, &len), 0);
    snprintf(key, sizeof key, "\norpc_client_channel_%s_total{target=\"%s\"} ",
             name, target);
    const char *at = strstr(page, key);
    long v = at ? strtol(at + strlen(key), NULL, 10) : 0;
    free(page);
    return v;
}

static void set_stream_ok(int sends)
{
    uv_mutex_lock(&g.lock);
    g.stream_ok = 1;
    g.stream_sends = sends;
    uv_mutex_unlock(&g.lock);
}

/* A hedged server-streaming call: the first attempt stalls before any
 * response; the hedge started after hedgingDelay answers three messages
 * (each of its attempt number's bytes): the caller reads those three
 * only, with the second attempt's headers, and OK; the first attempt's
 * handler sees its cancellation, and no third attempt starts.  Then the
 * winner sends 1.6 MB, beyond the 1 MiB stream window: what the caller
 * reads is credited back to the winner's stream, which goes on. */
static void test_hedge_server_stream(void **state)
{
    fx *f = *state;
    orpc_channel *ch = hedged_channel(f->target, 3, "0.5s", "", NULL);
    set_hang(1, 0);
    set_stream_ok(3);
    orpc_metadata *headers;
    assert_int_equal(orpc_metadata_new(&headers, NULL), 0);
    OutReq req = GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    orpc_call *call = start_call(
        ch, grpc__testing__test_service__method__streaming_output_call,
        &req.base, headers);
    int sizes[8], got;
    assert_int_equal(drain_sizes(call, sizes, 8, &got), ORPC_OK);
    assert_int_equal(got, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sizes[i], 2);
    assert_int_equal(md_count_key(headers, "attempt"), 1);
    assert_string_equal(md_get(headers, "attempt"), "2");
    orpc_metadata_free(headers);
    assert_true(wait_at_least(&g.cancelled, 1));
    usleep(700000); /* (a third attempt would have started by now) */
    assert_int_equal(get(&g.attempts), 2);
    assert_int_equal(get(&g.prev[0]), 0);
    assert_int_equal(get(&g.prev[1]), 1);
    assert_int_equal(chan_counter(ch, f->target, "hedges"), 1);

    reset_server_state();
    set_hang(1, 0);
    set_stream_ok(100);
    uv_mutex_lock(&g.lock);
    g.stream_size = 16384;
    uv_mutex_unlock(&g.lock);
    call = start_call(
        ch, grpc__testing__test_service__method__streaming_output_call,
        &req.base, NULL);
    assert_int_equal(drain_sizes(call, sizes, 8, &got), ORPC_OK);
    assert_int_equal(got, 100);
    assert_int_equal(sizes[7], 16384);
    assert_int_equal(get(&g.attempts), 2);
    orpc_channel_unref(ch);
}

/* test_hedge_bidi_replay's call, asynchronously: one on_headers (the
 * winner's), its four answers, OK. */
static void test_hedge_bidi_async(void **state)
{
    fx *f = *state;
    orpc_channel *ch = hedged_channel(f->target, 2, "0.2s", "", NULL);
    set_hang(1, 0);
    bidi_res res = {.code = ORPC_UNKNOWN};
    uv_mutex_init(&res.lock);
    orpc_call_callbacks cbs = {.on_headers = bidi_on_headers,
                               .on_message = bidi_on_message,
                               .on_done = bidi_on_done};
    orpc_call *call;
    assert_int_equal(orpc_channel_call_start_async(
                         &call, ch,
                         grpc__testing__test_service__method__full_duplex_call,
                         NULL, NULL, &cbs, &res),
                     0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(send_duplex(call, 5 + i), 0);
    assert_true(wait_at_least(&g.nmsgs[1], 3));
    assert_true(wait_at_least(&g.cancelled, 1));
    assert_int_equal(send_duplex(call, 8), 0);
    assert_int_equal(orpc_call_close_send(call), 0);
    for (int i = 0; i < 2000; i++) {
        uv_mutex_lock(&res.lock);
        int done = res.done;
        uv_mutex_unlock(&res.lock);
        if (done)
            break;
        usleep(5000);
    }
    uv_mutex_lock(&res.lock);
    assert_int_equal(res.done, 1);
    assert_int_equal(res.code, ORPC_OK);
    assert_int_equal(res.headers, 1);
    assert_int_equal(res.n, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(res.sizes[i], 5 + i);
    uv_mutex_unlock(&res.lock);
    orpc_call_unref(call);
    assert_int_equal(get(&g.attempts), 2);
    assert_int_equal(get(&g.nmsgs[0]), 3);
    uv_mutex_destroy(&res.lock);
    orpc_channel_unref(ch);
}

/* A hedged bidi call: the first attempt reads and stalls; the hedge,
 * started after the application sent three messages, gets those three
 * replayed (in order) and answers them, which commits the call to it and
 * cancels the first; a fourth message then goes to it alone.  The caller
 * reads the four answers of the second attempt and OK. */
static void test_hedge_bidi_replay(void **state)
{
    fx *f = *state;
    orpc_channel *ch = hedged_channel(f->target, 2, "0.2s", "", NULL);
    set_hang(1, 0);
    orpc_call *call = start_call(
        ch, grpc__testing__test_service__method__full_duplex_call, NULL, NULL);
    for (int i = 0; i < 3; i++)
        assert_int_equal(send_duplex(call, 5 + i), 0);
    assert_true(wait_at_least(&g.nmsgs[0], 3));
    assert_true(wait_at_least(&g.nmsgs[1], 3)); /* the replay */
    assert_true(wait_at_least(&g.cancelled, 1));
    assert_int_equal(send_duplex(call, 8), 0);
    assert_int_equal(orpc_call_close_send(call), 0);
    int sizes[8], got;
    assert_int_equal(drain_sizes(call, sizes, 8, &got), ORPC_OK);
    assert_int_equal(got, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(sizes[i], 5 + i);
        assert_int_equal(get(&g.sizes[1][i]), 5 + i);
    }
    assert_int_equal(get(&g.attempts), 2);
    assert_int_equal(get(&g.nmsgs[0]), 3);
    assert_int_equal(get(&g.nmsgs[1]), 4);
    assert_int_equal(get(&g.prev[1]), 1);
    orpc_channel_unref(ch);
}

/* A hedged bidi call whose messages go over per_call_retry_buffer_size
 * while two attempts are in flight (every attempt stalls) commits to the
 * first: the second is cancelled at once and gets nothing more, the first
 * gets the message, and no third attempt starts. */
static void test_hedge_stream_buffer_commit(void **state)
{
    fx *f = *state;
    orpc_channel_opts co = {.per_call_retry_buffer_size = 40};
    orpc_channel *ch = hedged_channel_opts(f->target, 3, "1s", "", NULL, &co);
    set_hang(0, 1);
    orpc_call *call = start_call(
        ch, grpc__testing__test_service__method__full_duplex_call, NULL, NULL);
    assert_int_equal(send_duplex(call, 10), 0);
    assert_true(wait_at_least(&g.nmsgs[1], 1)); /* two attempts, replayed */
    assert_int_equal(send_duplex(call, 64), 0); /* over the buffer */
    assert_true(wait_at_least(&g.cancelled, 1));
    assert_true(wait_at_least(&g.nmsgs[0], 2));
    usleep(1300000); /* (a third attempt would have started by now) */
    assert_int_equal(get(&g.attempts), 2);
    assert_int_equal(get(&g.nmsgs[1]), 1);
    assert_int_equal(get(&g.sizes[0][1]), 64);
    orpc_call_cancel(call);
    int sizes[8], got;
    assert_int_equal(drain_sizes(call, sizes, 8, &got), ORPC_CANCELLED);
    assert_int_equal(got, 0);
    assert_true(wait_at_least(&g.cancelled, 2));
    orpc_channel_unref(ch);
}

/* Streaming calls and nonFatalStatusCodes: a non-fatal failure (before
 * any response) starts the next hedge at once, not after the 100 s
 * delay, and the last attempt's status is the call's; a fatal one ends
 * the call at once.  A bidi call's next hedge gets what was sent before
 * and after the failure. */
static void test_hedge_stream_non_fatal(void **state)
{
    fx *f = *state;
    orpc_channel *ch =
        hedged_channel(f->target, 3, "100s", "\"UNAVAILABLE\"", NULL);
    static const struct {
        int fail_first, fail_all;
        orpc_code code, want;
        int attempts;
    } cases[] = {{0, 1, ORPC_UNAVAILABLE, ORPC_UNAVAILABLE, 3},
                 {2, 0, ORPC_UNAVAILABLE, ORPC_OK, 3},
                 {0, 1, ORPC_INTERNAL, ORPC_INTERNAL, 1}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        reset_server_state();
        set_stream_ok(2);
        set_behaviour(cases[k].fail_first, cases[k].fail_all, cases[k].code,
                      NULL);
        OutReq req = GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
        orpc_call *call = start_call(
            ch, grpc__testing__test_service__method__streaming_output_call,
            &req.base, NULL);
        int sizes[8], got;
        assert_int_equal(drain_sizes(call, sizes, 8, &got), cases[k].want);
        assert_int_equal(got, cases[k].want == ORPC_OK ? 2 : 0);
        if (got > 0)
            assert_int_equal(sizes[0], 3); /* the third attempt's */
        assert_int_equal(get(&g.attempts), cases[k].attempts);
        for (int i = 0; i < cases[k].attempts; i++)
            assert_int_equal(get(&g.prev[i]), i);
    }

    reset_server_state();
    set_behaviour(1, 0, ORPC_UNAVAILABLE, NULL);
    set_stream_failure(1, 0);
    orpc_call *call = start_call(
        ch, grpc__testing__test_service__method__full_duplex_call, NULL, NULL);
    assert_int_equal(send_duplex(call, 5), 0);
    assert_true(wait_at_least(&g.failed, 1));
    assert_int_equal(send_duplex(call, 6), 0);
    assert_int_equal(send_duplex(call, 7), 0);
    assert_int_equal(orpc_call_close_send(call), 0);
    int sizes[8], got;
    assert_int_equal(drain_sizes(call, sizes, 8, &got), ORPC_OK);
    assert_int_equal(got, 3);
    assert_int_equal(get(&g.attempts), 2);
    assert_int_equal(get(&g.nmsgs[1]), 3);
    assert_int_equal(get(&g.prev[1]), 1);

    reset_server_state();
    set_behaviour(0, 1, ORPC_INTERNAL, NULL);
    set_stream_failure(1, 0);
    call = start_call(ch, grpc__testing__test_service__method__full_duplex_call,
                      NULL, NULL);
    assert_int_equal(send_duplex(call, 5), 0);
    assert_int_equal(drain_sizes(call, sizes, 8, &got), ORPC_INTERNAL);
    assert_int_equal(get(&g.attempts), 1);
    orpc_channel_unref(ch);
}

/* ---- what interceptors see of retries and hedges ---- */

/* What a counting interceptor saw (g.lock). */
static struct {
    int starts, ends, in, out;
    int code;
} ics;

static orpc_code ic_start(orpc_call_info *info, void **slot, const char **why,
                          void *ud)
{
    (void)info, (void)slot, (void)why, (void)ud;
    uv_mutex_lock(&g.lock);
    ics.starts++;
    uv_mutex_unlock(&g.lock);
    return ORPC_OK;
}

static void ic_message(orpc_call_info *info, void *slot, int outbound,
                       size_t bytes, void *ud)
{
    (void)info, (void)slot, (void)bytes, (void)ud;
    uv_mutex_lock(&g.lock);
    if (outbound)
        ics.out++;
    else
        ics.in++;
    uv_mutex_unlock(&g.lock);
}

static void ic_end(orpc_call_info *info, void *slot, const orpc_status *st,
                   void *ud)
{
    (void)info, (void)slot, (void)ud;
    uv_mutex_lock(&g.lock);
    ics.ends++;
    ics.code = (int)st->code;
    uv_mutex_unlock(&g.lock);
}

/* A channel with the counting interceptor alone; |ics| cleared. */
static orpc_channel *counted_channel(const char *target, const char *cfg,
                                     orpc_interceptor **ic)
{
    static const orpc_interceptor_ops ops = {
        .on_start = ic_start, .on_message = ic_message, .on_end = ic_end};
    assert_int_equal(orpc_interceptor_new(ic, &ops, NULL), 0);
    uv_mutex_lock(&g.lock);
    memset(&ics, 0, sizeof ics);
    ics.code = ORPC_UNKNOWN;
    uv_mutex_unlock(&g.lock);
    orpc_channel_opts co = {
        .interceptors = ic, .n_interceptors = 1, .no_default_interceptors = 1};
    return channel_to(target, cfg, &co);
}

/* Interceptors see one call whatever its attempts: a hedged call whose
 * second attempt wins (unary, and server-streaming), a retried bidi call
 * (the messages the application sent and got, once each). */
static void test_interceptors_see_one_call(void **state)
{
    fx *f = *state;
    char cfg[512];
    snprintf(cfg, sizeof cfg,
             "{\"methodConfig\": [{\"name\": [{\"service\": " SERVICE "}],"
             " \"hedgingPolicy\": {\"maxAttempts\": 3,"
             " \"hedgingDelay\": \"0.05s\"}}]}");
    orpc_interceptor *ic;
    orpc_channel *ch = counted_channel(f->target, cfg, &ic);
    set_hang(1, 0);
    orpc_call_opts opts = {.timeout_ms = 20000};
    assert_int_equal(unary(ch, 10, 0, &opts), ORPC_OK);
    assert_int_equal(get(&g.attempts), 2);
    assert_int_equal(get(&ics.starts), 1);
    assert_int_equal(get(&ics.ends), 1);
    assert_int_equal(get(&ics.out), 1);
    assert_int_equal(get(&ics.in), 1);
    assert_int_equal(get(&ics.code), ORPC_OK);

    reset_server_state();
    uv_mutex_lock(&g.lock);
    memset(&ics, 0, sizeof ics);
    uv_mutex_unlock(&g.lock);
    set_hang(1, 0);
    set_stream_ok(3);
    OutReq oreq = GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    orpc_call *scall = start_call(
        ch, grpc__testing__test_service__method__streaming_output_call,
        &oreq.base, NULL);
    int sizes[8], sgot;
    assert_int_equal(drain_sizes(scall, sizes, 8, &sgot), ORPC_OK);
    assert_int_equal(sgot, 3);
    assert_true(get(&g.attempts) >= 2); /* (3 on a slow machine) */
    assert_int_equal(get(&ics.starts), 1);
    assert_int_equal(get(&ics.ends), 1);
    assert_int_equal(get(&ics.out), 1);
    assert_int_equal(get(&ics.in), 3);
    assert_int_equal(get(&ics.code), ORPC_OK);
    orpc_channel_unref(ch);
    orpc_interceptor_unref(ic);

    reset_server_state();
    ch = counted_channel(
        f->target,
        retry_config(cfg, sizeof cfg, 3, "0.01s", "\"UNAVAILABLE\"", NULL),
        &ic);
    set_behaviour(1, 0, ORPC_UNAVAILABLE, NULL);
    set_stream_failure(0, 0); /* at the end of the request stream */
    orpc_call *call;
    assert_int_equal(orpc_channel_call_start(
                         &call, ch,
                         grpc__testing__test_service__method__full_duplex_call,
                         NULL, &opts),
                     0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(send_duplex(call, 5 + i), 0);
    assert_int_equal(orpc_call_close_send(call), 0);
    int got;
    assert_int_equal(drain_call(call, &got), ORPC_OK);
    assert_int_equal(got, 3);
    assert_int_equal(get(&g.attempts), 2);
    assert_int_equal(get(&ics.starts), 1);
    assert_int_equal(get(&ics.ends), 1);
    assert_int_equal(get(&ics.out), 3);
    assert_int_equal(get(&ics.in), 3);
    orpc_channel_unref(ch);
    orpc_interceptor_unref(ic);
}

/* ---- the transparent retry of streams a GOAWAY left unprocessed ---- */

/* A raw HTTP/2 server (h2peer.c) that answers a connection's first
 * request with GOAWAY (last stream 0: nothing processed), on every
 * connection or on the first only; the others it answers with an empty
 * message and OK once the request stream ends.  Counts under g.lock. */
typedef struct goaway_peer {
    int lfd, port;
    int refuse_all;
    uv_thread_t thread;
    /* g.lock */
    int stop;
    int conns, streams; /* connections accepted, request HEADERS seen */
    int answered;
    size_t bytes; /* DATA of the request answered */
} goaway_peer;

/* Serves one connection until it closes, or (refused, or |stop|) a
 * short while after. */
static void goaway_conn(goaway_peer *r, h2p *p, int refuse)
{
    h2p_frame f;
    h2p_head h;
    uint32_t id = 0;
    size_t bytes = 0;
    int idle = 0;
    for (int i = 0; i < 10000; i++) {
        int t = h2p_read_frame(p, 50, &f);
        if (t == -2) {
            uv_mutex_lock(&g.lock);
            int stop = r->stop;
            uv_mutex_unlock(&g.lock);
            if (stop || (refuse && id != 0 && ++idle >= 4))
                break; /* (a refused one: the GOAWAY had time to land) */
            continue;
        }
        if (t < 0)
            break;
        int end = 0;
        if (t == H2P_HEADERS && id == 0) {
            h2p_decode(p, f.payload, f.len, &h);
            id = f.stream;
            uv_mutex_lock(&g.lock);
            r->streams++;
            uv_mutex_unlock(&g.lock);
            if (refuse) {
                h2p_goaway(p, 0, NGHTTP2_NO_ERROR);
                continue;
            }
            end = f.flags & 1;
        } else if (t == H2P_DATA && f.stream == id && id != 0 && !refuse) {
            bytes += f.len;
            end = f.flags & 1;
        }
        if (end) {
            uv_mutex_lock(&g.lock);
            r->answered++;
            r->bytes = bytes;
            uv_mutex_unlock(&g.lock);
            h2p_grpc_ok(p, id, NULL, 0);
        }
    }
}

static void goaway_peer_run(void *arg)
{
    goaway_peer *r = arg;
    h2p *p = malloc(sizeof(*p));
    if (p == NULL)
        return;
    for (;;) {
        uv_mutex_lock(&g.lock);
        int stop = r->stop;
        int first = r->conns == 0;
        uv_mutex_unlock(&g.lock);
        if (stop)
            break;
        memset(p, 0, sizeof(*p));
        p->fd = -1;
        if (h2p_accept(p, r->lfd, 50) != 0) {
            if (p->def != NULL)
                h2p_close(p);
            continue;
        }
        uv_mutex_lock(&g.lock);
        r->conns++;
        uv_mutex_unlock(&g.lock);
        goaway_conn(r, p, r->refuse_all || first);
        h2p_close(p);
    }
    free(p);
}

static void goaway_peer_start(goaway_peer *r, int refuse_all)
{
    memset(r, 0, sizeof(*r));
    r->refuse_all = refuse_all;
    r->lfd = h2p_listen(&r->port);
    assert_true(r->lfd >= 0);
    assert_int_equal(uv_thread_create(&r->thread, goaway_peer_run, r), 0);
}

static void goaway_peer_stop(goaway_peer *r)
{
    uv_mutex_lock(&g.lock);
    r->stop = 1;
    uv_mutex_unlock(&g.lock);
    uv_thread_join(&r->thread);
    close(r->lfd);
}

/* A unary call whose stream is above a GOAWAY's last stream id was never
 * processed: it goes again, once, on a new connection (not an attempt
 * of a retry policy: the channel has none), and succeeds there; the
 * request got to a server that may have run it (REACH_SENT).  When every
 * connection refuses it, the second refusal ends it UNAVAILABLE with
 * REACH_REFUSED.  A hedged call's attempt is retried the same way. */
static void test_goaway_transparent_retry(void **state)
{
    (void)state;
    for (int round = 0; round < 3; round++) {
        int refuse_all = round == 1;
        goaway_peer r;
        goaway_peer_start(&r, refuse_all);
        char target[64];
        snprintf(target, sizeof target, "127.0.0.1:%d", r.port);
        /* round 2: a hedged call (its next attempt 100 s away): its
         * attempt is retried transparently as any call */
        orpc_channel *ch = round == 2
                               ? hedged_channel(target, 3, "100s", "", NULL)
                               : channel_to(target, NULL, NULL);
        SimpleReq req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
        req.response_size = 3;
        ProtobufCMessage *resp = NULL;
        orpc_call_reach reach = ORPC_REACH_NONE;
        orpc_call_opts opts = {.timeout_ms = 10000, .reached = &reach};
        orpc_status st = orpc_channel_invoke(
            ch, grpc__testing__test_service__method__unary_call, &req.base,
            &resp, &opts);
        if (refuse_all) {
            assert_int_equal(st.code, ORPC_UNAVAILABLE);
            assert_int_equal(reach, ORPC_REACH_REFUSED);
        } else {
            assert_int_equal(st.code, ORPC_OK);
            assert_non_null(resp);
            protobuf_c_message_free_unpacked(resp, NULL);
            assert_int_equal(reach, ORPC_REACH_SENT);
        }
        orpc_status_clear(&st);
        orpc_channel_unref(ch);
        goaway_peer_stop(&r);
        assert_int_equal(r.streams, 2); /* one transparent retry, no more */
        assert_int_equal(r.conns, 2);   /* on a new connection */
        assert_int_equal(r.answered, refuse_all ? 0 : 1);
        if (!refuse_all) /* the whole request, framed */
            assert_int_equal(
                r.bytes,
                5 + grpc__testing__simple_request__get_packed_size(&req));
    }
}

/* The same for a client-streaming call with a retry policy (which keeps
 * what the call sends; its retryable codes leave UNAVAILABLE out, so only
 * the transparent retry can save the call): what it sent on the refused
 * stream (and after) goes again, whole, on the new connection. */
static void test_goaway_transparent_retry_stream(void **state)
{
    (void)state;
    goaway_peer r;
    goaway_peer_start(&r, 0);
    char target[64], cfg[512];
    snprintf(target, sizeof target, "127.0.0.1:%d", r.port);
    orpc_channel *ch = channel_to(
        target, retry_config(cfg, sizeof cfg, 2, "0.001s", "\"ABORTED\"", NULL),
        NULL);
    static const int sizes[] = {10, 20, 30};
    size_t want = 0;
    for (int i = 0; i < 3; i++) {
        Grpc__Testing__StreamingInputCallRequest q =
            GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
        Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
        p.body.len = (size_t)sizes[i];
        q.payload = &p;
        want +=
            5 +
            grpc__testing__streaming_input_call_request__get_packed_size(&q);
    }
    int sum;
    assert_int_equal(client_stream(ch, sizes, 3, 0, &sum), ORPC_OK);
    assert_int_equal(sum, 0); /* (the peer's empty answer) */
    orpc_channel_unref(ch);
    goaway_peer_stop(&r);
    assert_int_equal(r.streams, 2);
    assert_int_equal(r.conns, 2);
    assert_int_equal(r.answered, 1);
    assert_int_equal(r.bytes, want);
}

/* A bidi call without a retry policy keeps what it sends until it
 * commits, for the transparent retry: refused by a GOAWAY (never
 * processed), it goes again, whole, on a new connection, once.  Over
 * per_call_retry_buffer_size nothing is kept and the refusal is the
 * call's outcome (UNAVAILABLE, one stream). */
static void test_goaway_transparent_retry_bidi(void **state)
{
    (void)state;
    for (int over = 0; over <= 1; over++) {
        goaway_peer r;
        goaway_peer_start(&r, 0);
        char target[64];
        snprintf(target, sizeof target, "127.0.0.1:%d", r.port);
        /* (over: the first message already goes over it) */
        orpc_channel_opts co = {.per_call_retry_buffer_size = over ? 10 : 0};
        orpc_channel *ch = channel_to(target, NULL, &co);
        orpc_call *call = start_call(
            ch, grpc__testing__test_service__method__full_duplex_call, NULL,
            NULL);
        static const int sizes[] = {10, 20, 30};
        size_t want = 0;
        for (int i = 0; i < 3; i++) {
            OutReq q = GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
            Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
            p.body.len = (size_t)sizes[i];
            q.payload = &p;
            want +=
                5 +
                grpc__testing__streaming_output_call_request__get_packed_size(
                    &q);
            assert_int_equal(send_duplex(call, sizes[i]), 0);
        }
        assert_int_equal(orpc_call_close_send(call), 0);
        int got[8], n;
        assert_int_equal(drain_sizes(call, got, 8, &n),
                         over ? ORPC_UNAVAILABLE : ORPC_OK);
        orpc_channel_unref(ch);
        goaway_peer_stop(&r);
        assert_int_equal(r.streams, over ? 1 : 2);
        assert_int_equal(r.answered, over ? 0 : 1);
        if (!over)
            assert_int_equal(r.bytes, want);
    }
}

/* A bidi call without a retry policy that the server processed (it read
 * the first message, then failed UNAVAILABLE) is not retried. */
static void test_processed_stream_not_retried(void **state)
{
    fx *f = *state;
    orpc_channel *ch = channel_to(f->target, NULL, NULL);
    set_behaviour(0, 1, ORPC_UNAVAILABLE, NULL);
    set_stream_failure(1, 0);
    orpc_call *call = start_call(
        ch, grpc__testing__test_service__method__full_duplex_call, NULL, NULL);
    assert_int_equal(send_duplex(call, 5), 0);
    int sizes[8], got;
    assert_int_equal(drain_sizes(call, sizes, 8, &got), ORPC_UNAVAILABLE);
    usleep(100000);
    assert_int_equal(get(&g.attempts), 1);
    assert_int_equal(chan_counter(ch, f->target, "transparent_retries"), 0);
    orpc_channel_unref(ch);
}

/* ---- the other per-method settings ---- */

/* The method's timeout: the smaller of it and the call's own. */
static void test_method_timeout(void **state)
{
    fx *f = *state;
    orpc_channel *ch =
        channel_to(f->target,
                   "{\"methodConfig\": [{\"name\": [{\"service\": " SERVICE
                   ", \"method\": \"EmptyCall\"}], \"timeout\": \"0.2s\"}]}",
                   NULL);
    static const int64_t own[] = {0, 100000, 50};
    for (size_t k = 0; k < sizeof own / sizeof *own; k++) {
        reset_server_state();
        Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT;
        ProtobufCMessage *resp = NULL;
        orpc_call_opts opts = {.timeout_ms = own[k]};
        orpc_status st = orpc_channel_invoke(
            ch, grpc__testing__test_service__method__empty_call, &req.base,
            &resp, &opts);
        assert_int_equal(st.code, ORPC_DEADLINE_EXCEEDED);
        orpc_status_clear(&st);
        /* (the server heard of the deadline, if the call reached it) */
        uv_mutex_lock(&g.lock);
        int64_t left = g.remaining_ms;
        int calls = g.empty_calls;
        uv_mutex_unlock(&g.lock);
        assert_true(calls <= 1);
        if (calls == 1)
            assert_true(left >= 0 && left <= (own[k] == 50 ? 50 : 200));
    }
    /* other methods: no timeout from the config */
    reset_server_state();
    assert_int_equal(unary(ch, 5, 0, NULL), ORPC_OK);
    orpc_channel_unref(ch);
}

/* The smaller of the channel's and the config's message limits. */
static void test_message_limits(void **state)
{
    fx *f = *state;
    const char *cfg =
        "{\"methodConfig\": [{\"name\": [{\"service\": " SERVICE
        ", \"method\": \"UnaryCall\"}], \"maxRequestMessageBytes\": 100, "
        "\"maxResponseMessageBytes\": 100}]}";
    orpc_channel *ch = channel_to(f->target, cfg, NULL);
    assert_int_equal(unary(ch, 10, 10, NULL), ORPC_OK);
    assert_int_equal(unary(ch, 1000, 10, NULL), ORPC_RESOURCE_EXHAUSTED);
    assert_int_equal(get(&g.attempts), 2);
    assert_int_equal(unary(ch, 10, 1000, NULL), ORPC_RESOURCE_EXHAUSTED);
    assert_int_equal(get(&g.attempts), 2); /* refused before sending */
    orpc_channel_unref(ch);
    /* the channel's own limits, when smaller, still hold */
    orpc_channel_opts co = {.max_send_message_size = 40,
                            .max_recv_message_size = 40};
    ch = channel_to(f->target, cfg, &co);
    assert_int_equal(unary(ch, 10, 10, NULL), ORPC_OK);
    assert_int_equal(unary(ch, 80, 10, NULL), ORPC_RESOURCE_EXHAUSTED);
    assert_int_equal(unary(ch, 10, 80, NULL), ORPC_RESOURCE_EXHAUSTED);
    orpc_channel_unref(ch);
}

/* waitForReady from the config: against a port nobody listens on, a call
 * of that method waits for its deadline; another fails fast. */
static void test_wait_for_ready(void **state)
{
    (void)state;
    uv_tcp_t probe; /* a port that was free a moment ago */
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_tcp_init(&loop, &probe);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&probe, (const struct sockaddr *)&a, 0), 0);
    struct sockaddr_in got;
    int len = sizeof(got);
    uv_tcp_getsockname(&probe, (struct sockaddr *)&got, &len);
    uv_close((uv_handle_t *)&probe, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", ntohs(got.sin_port));
    orpc_channel *ch =
        channel_to(target,
                   "{\"methodConfig\": [{\"name\": [{\"service\": " SERVICE
                   ", \"method\": \"UnaryCall\"}], \"waitForReady\": true}, "
                   "{\"name\": [{\"service\": " SERVICE
                   ", \"method\": \"EmptyCall\"}], \"waitForReady\": false}]}",
                   NULL);
    orpc_call_opts opts = {.timeout_ms = 300};
    assert_int_equal(unary(ch, 1, 0, &opts), ORPC_DEADLINE_EXCEEDED);
    Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT;
    ProtobufCMessage *resp = NULL;
    orpc_status st =
        orpc_channel_invoke(ch, grpc__testing__test_service__method__empty_call,
                            &req.base, &resp, &opts);
    assert_int_equal(st.code, ORPC_UNAVAILABLE);
    orpc_status_clear(&st);
    /* the call's own wait_for_ready still works where the config is
     * silent or says false */
    opts.wait_for_ready = 1;
    st =
        orpc_channel_invoke(ch, grpc__testing__test_service__method__empty_call,
                            &req.base, &resp, &opts);
    assert_int_equal(st.code, ORPC_DEADLINE_EXCEEDED);
    orpc_status_clear(&st);
    orpc_channel_unref(ch);
}

/* Configs that do not validate: orpc_channel_new() refuses them with
 * ORPC_ECONFIG and the JSON path in the detail. */
static void test_invalid_configs(void **state)
{
    fx *f = *state;
    static const struct {
        const char *json, *want;
    } cases[] = {
        {"{\"methodConfig\": [{\"name\": [{}], \"retryPolicy\": "
         "{\"maxAttempts\": 1, \"initialBackoff\": \"1s\", "
         "\"maxBackoff\": \"1s\", \"backoffMultiplier\": 2, "
         "\"retryableStatusCodes\": [14]}}]}",
         "service_config: methodConfig[0].retryPolicy.maxAttempts: must be "
         "at least 2"},
        {"{\"methodConfig\": [{}, {\"timeout\": \"soon\"}]}",
         "service_config: methodConfig[1].timeout: must be a duration"},
        {"{\"retryThrottling\": {\"maxTokens\": 5000, \"tokenRatio\": 1}}",
         "service_config: retryThrottling.maxTokens: must be from 1 to 1000"},
        {"{\"loadBalancingConfig\": [{\"grpclb\": {}}]}",
         "service_config: loadBalancingConfig: no policy orpc supports"},
        {"not json", "service_config: line 1 column "},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        orpc_channel_opts co = {.plaintext = 1,
                                .service_config = cases[k].json};
        orpc_channel *ch = (orpc_channel *)1;
        orpc_error_detail d = {0};
        assert_int_equal(orpc_channel_new(&ch, f->target, &co, NULL, &d),
                         ORPC_ECONFIG);
        assert_null(ch);
        assert_int_equal(d.code, ORPC_ECONFIG);
        if (strstr(d.message, cases[k].want) == NULL)
            fail_msg("want \"%s\" in \"%s\"", cases[k].want, d.message);
    }
    /* a valid one works, load-balancing choice and all */
    orpc_channel *ch = channel_to(
        f->target, "{\"loadBalancingConfig\": [{\"round_robin\": {}}]}", NULL);
    assert_int_equal(unary(ch, 1, 0, NULL), ORPC_OK);
    orpc_channel_unref(ch);
}

int main(void)
{
    uv_mutex_init(&g.lock);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_retry_until_success, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_not_retryable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_attempts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pushback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_throttling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_committed_after_headers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_buffer_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_during_backoff, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stream_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bidi_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bidi_retry_async, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_committed_after_headers,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_buffer_limits, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hedge_first_answer_wins, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hedge_delay_and_max_attempts,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_hedge_buffer_limit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hedge_non_fatal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hedge_pushback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hedge_throttled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hedge_channel_close, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hedge_server_stream, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hedge_bidi_replay, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hedge_bidi_async, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hedge_stream_buffer_commit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hedge_stream_non_fatal, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_interceptors_see_one_call, setup,
                                        teardown),
        cmocka_unit_test(test_goaway_transparent_retry),
        cmocka_unit_test(test_goaway_transparent_retry_stream),
        cmocka_unit_test(test_goaway_transparent_retry_bidi),
        cmocka_unit_test_setup_teardown(test_processed_stream_not_retried,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_method_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_message_limits, setup, teardown),
        cmocka_unit_test(test_wait_for_ready),
        cmocka_unit_test_setup_teardown(test_invalid_configs, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    uv_mutex_destroy(&g.lock);
    return rc;
}
