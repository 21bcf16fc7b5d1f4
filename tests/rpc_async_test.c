/*
 * rpc_async_test.c — the asynchronous client streaming API
 * (orpc_channel_call_start_async(), orpc_client_call_start_async(),
 * pause/resume, ORPC_EAGAIN and on_ready) and the guard that refuses blocking
 * calls on an orpc IO thread, on loopback against an orpc server.
 *
 * Callbacks run on the channel's IO thread; what they see is recorded in an
 * `obs` under its lock and asserted on the test's thread.  Every wait is
 * bounded (count and time); no assertion is about a duration.
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

#include <cmocka.h>
#include <uv.h>

#include <orpc/orpc.h>

#include "grpc/testing/test.orpc.h"

typedef Grpc__Testing__StreamingOutputCallRequest OutReq;
typedef Grpc__Testing__StreamingOutputCallResponse OutResp;

/* ---- the server's side (g_lock) ---- */

static uv_mutex_t g_lock;
static int g_sent; /* StreamingOutputCall: responses sent so far */
static int g_gate; /* HalfDuplexCall reads once the test opens it */
static int g_read; /* HalfDuplexCall: requests read */

static int get(const int *v)
{
    uv_mutex_lock(&g_lock);
    int r = *v;
    uv_mutex_unlock(&g_lock);
    return r;
}

static void set(int *v, int x)
{
    uv_mutex_lock(&g_lock);
    *v = x;
    uv_mutex_unlock(&g_lock);
}

/* Polls until |*v| stops changing for 300 ms (10 s at most). */
static int wait_settled(const int *v)
{
    int last = get(v), same = 0;
    for (int i = 0; i < 2000 && same < 60; i++) {
        usleep(5000);
        int now = get(v);
        same = now == last ? same + 1 : 0;
        last = now;
    }
    return last;
}

static int send_payload(orpc_ctx *ctx, void *w, int size,
                        int (*fn)(void *, const OutResp *))
{
    (void)ctx;
    uint8_t *body = calloc(1, (size_t)size + 1);
    if (body == NULL)
        return ORPC_ENOMEM;
    Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
    p.body.data = body;
    p.body.len = (size_t)size;
    OutResp r = GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
    r.payload = &p;
    int rc = fn(w, &r);
    free(body);
    return rc;
}

static int send_out(void *w, const OutResp *r)
{
    return grpc__testing__test_service__server__streaming_output_call__send(w,
                                                                            r);
}

static int send_duplex(void *w, const OutResp *r)
{
    return grpc__testing__test_service__server__full_duplex_call__send(w, r);
}

/* One response per response_parameters entry, of that entry's size. */
static orpc_status
streaming_output(orpc_ctx *ctx, const OutReq *req,
                 Grpc__Testing__TestService_StreamingOutputCall_ServerWriter *w,
                 void *ud)
{
    (void)ud;
    for (size_t i = 0; i < req->n_response_parameters; i++) {
        if (send_payload(ctx, w, req->response_parameters[i]->size, send_out) !=
            0)
            return orpc_status_new(ORPC_CANCELLED, "client went away");
        uv_mutex_lock(&g_lock);
        g_sent++;
        uv_mutex_unlock(&g_lock);
    }
    return ORPC_STATUS_OK;
}

/* Echo: each request is answered with one response per parameter. */
static orpc_status
full_duplex(orpc_ctx *ctx,
            Grpc__Testing__TestService_FullDuplexCall_ServerStream *s, void *ud)
{
    (void)ud;
    const OutReq *req;
    int rc;
    while ((rc = grpc__testing__test_service__server__full_duplex_call__recv(
                s, &req)) == 1) {
        for (size_t i = 0; i < req->n_response_parameters; i++)
            if (send_payload(ctx, s, req->response_parameters[i]->size,
                             send_duplex) != 0)
                return orpc_status_new(ORPC_CANCELLED, "client went away");
    }
    return rc == 0 ? ORPC_STATUS_OK
                   : orpc_status_new(ORPC_CANCELLED, "client went away");
}

/* Reads nothing until the test opens g_gate, then everything. */
static orpc_status
half_duplex(orpc_ctx *ctx,
            Grpc__Testing__TestService_HalfDuplexCall_ServerStream *s, void *ud)
{
    (void)ctx;
    (void)ud;
    for (int i = 0; i < 4000 && !get(&g_gate) && !orpc_ctx_is_cancelled(ctx);
         i++)
        usleep(5000);
    const OutReq *req;
    int rc;
    while ((rc = grpc__testing__test_service__server__half_duplex_call__recv(
                s, &req)) == 1) {
        uv_mutex_lock(&g_lock);
        g_read++;
        uv_mutex_unlock(&g_lock);
    }
    return rc == 0 ? ORPC_STATUS_OK
                   : orpc_status_new(ORPC_CANCELLED, "client went away");
}

static const Grpc__Testing__TestService_Handlers handlers = {
    .streaming_output_call = streaming_output,
    .full_duplex_call = full_duplex,
    .half_duplex_call = half_duplex,
};

/* ---- fixture ---- */

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
    orpc_server_opts o = {.plaintext = 1, .io_threads = 1};
    assert_int_equal(orpc_server_new(&f->srv, &o, NULL, NULL), 0);
    assert_int_equal(
        grpc__testing__test_service__server__register(f->srv, &handlers, NULL),
        0);
    assert_int_equal(orpc_server_listen(f->srv, "127.0.0.1:0", &f->port, NULL),
                     0);
    assert_int_equal(orpc_server_start(f->srv), 0);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", f->port);
    orpc_channel_opts co = {.plaintext = 1};
    assert_int_equal(orpc_channel_new(&f->ch, target, &co, NULL, NULL), 0);
    assert_int_equal(orpc_client_new(&f->cl,
                                     &grpc__testing__test_service__orpc_desc,
                                     f->ch, NULL, NULL),
                     0);
    set(&g_sent, 0);
    set(&g_gate, 0);
    set(&g_read, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    set(&g_gate, 1);
    orpc_client_free(f->cl);
    orpc_channel_unref(f->ch);
    assert_int_equal(orpc_server_shutdown(f->srv, 2000), 0);
    assert_int_equal(orpc_server_wait(f->srv), 0);
    orpc_server_free(f->srv);
    free(f);
    return 0;
}

/* ---- what a call's callbacks saw (o->lock) ---- */

typedef struct obs {
    uv_mutex_t lock;
    orpc_call *call;
    int headers, messages, done, ready, bytes;
    int order_ok;     /* messages arrived with the sizes expected */
    int wrong_thread; /* a callback ran on another thread than the first */
    uv_thread_t io;   /* the thread of the first callback */
    int have_io;
    orpc_code code;
    char message[160];
    /* behaviour */
    int pingpong_left;  /* bidi: requests still to send after a response */
    int cancel_at;      /* cancel from on_message at this message (0: no) */
    int blocking_probe; /* try blocking calls from on_message */
    int probe_recv_rc, probe_send_rc;
    orpc_code probe_finish_code;
    char probe_finish_msg[200];
    orpc_call *blocking_call; /* a blocking call the probe uses */
    orpc_client *client;      /* the client a unary probe calls */
} obs;

static void obs_init(obs *o)
{
    memset(o, 0, sizeof(*o));
    uv_mutex_init(&o->lock);
    o->order_ok = 1;
}

static int obs_get(obs *o, const int *v)
{
    uv_mutex_lock(&o->lock);
    int r = *v;
    uv_mutex_unlock(&o->lock);
    return r;
}

static int obs_wait(obs *o, const int *v, int want)
{
    for (int i = 0; i < 2000 && obs_get(o, v) < want; i++)
        usleep(5000);
    return obs_get(o, v);
}

/* Polls until |*v| stops changing for 300 ms (10 s at most). */
static int obs_settled(obs *o, const int *v)
{
    int last = obs_get(o, v), same = 0;
    for (int i = 0; i < 2000 && same < 60; i++) {
        usleep(5000);
        int now = obs_get(o, v);
        same = now == last ? same + 1 : 0;
        last = now;
    }
    return last;
}

/* Records the callback's thread (o->lock held). */
static void note_thread(obs *o)
{
    uv_thread_t self = uv_thread_self();
    if (!o->have_io) {
        o->io = self;
        o->have_io = 1;
    } else if (!uv_thread_equal(&o->io, &self)) {
        o->wrong_thread = 1;
    }
}

static OutReq *request_of_sizes(const int *sizes, size_t n)
{
    OutReq *r = calloc(1, sizeof(*r));
    Grpc__Testing__ResponseParameters **ps = calloc(n + 1, sizeof(*ps));
    Grpc__Testing__ResponseParameters *p = calloc(n + 1, sizeof(*p));
    assert_true(r && ps && p);
    grpc__testing__streaming_output_call_request__init(r);
    for (size_t i = 0; i < n; i++) {
        grpc__testing__response_parameters__init(&p[i]);
        p[i].size = sizes[i];
        ps[i] = &p[i];
    }
    if (n == 0) { /* no parameters: the request carries none */
        free(ps);
        free(p);
        return r;
    }
    r->response_parameters = ps;
    r->n_response_parameters = n;
    return r;
}

static void request_free(OutReq *r)
{
    if (r->n_response_parameters)
        free(r->response_parameters[0]);
    free(r->response_parameters);
    free(r);
}

static void on_headers(orpc_call *call, const orpc_metadata *md, void *ud)
{
    obs *o = ud;
    (void)call;
    (void)md;
    uv_mutex_lock(&o->lock);
    note_thread(o);
    o->headers++;
    uv_mutex_unlock(&o->lock);
}

static void on_message(orpc_call *call, ProtobufCMessage *msg, void *ud)
{
    obs *o = ud;
    OutResp *r = (OutResp *)msg;
    int size = r->payload ? (int)r->payload->body.len : 0;
    uv_mutex_lock(&o->lock);
    note_thread(o);
    o->messages++;
    o->bytes += size;
    if (o->pingpong_left > 0 && size != o->messages)
        o->order_ok = 0;
    int n = o->messages;
    int left = o->pingpong_left > 0 ? --o->pingpong_left : -1;
    int cancel = o->cancel_at == n;
    int probe = o->blocking_probe && n == 1;
    uv_mutex_unlock(&o->lock);
    protobuf_c_message_free_unpacked(msg, NULL);
    if (cancel)
        orpc_call_cancel(call);
    if (left > 0) {
        /* the next ping asks for one byte more */
        int want = n + 1;
        OutReq *next = request_of_sizes(&want, 1);
        int rc = orpc_call_send(call, &next->base);
        request_free(next);
        if (rc != 0)
            orpc_call_cancel(call);
    } else if (left == 0) {
        orpc_call_close_send(call);
    }
    if (probe) {
        ProtobufCMessage *m = NULL;
        int rrc = orpc_call_recv(o->blocking_call, &m);
        OutReq *q = request_of_sizes(NULL, 0);
        int src = orpc_call_send(o->blocking_call, &q->base);
        request_free(q);
        orpc_status st = orpc_call_finish(o->blocking_call);
        uv_mutex_lock(&o->lock);
        o->probe_recv_rc = rrc;
        o->probe_send_rc = src;
        o->probe_finish_code = st.code;
        snprintf(o->probe_finish_msg, sizeof(o->probe_finish_msg), "%s",
                 st.message ? st.message : "");
        uv_mutex_unlock(&o->lock);
        orpc_status_clear(&st);
    }
}

static void on_ready(orpc_call *call, void *ud)
{
    obs *o = ud;
    (void)call;
    uv_mutex_lock(&o->lock);
    note_thread(o);
    o->ready++;
    uv_mutex_unlock(&o->lock);
}

static void on_done(orpc_call *call, const orpc_status *st, void *ud)
{
    obs *o = ud;
    uv_mutex_lock(&o->lock);
    note_thread(o);
    if (call != o->call && o->call != NULL)
        o->order_ok = 0;
    o->done++;
    o->code = st->code;
    snprintf(o->message, sizeof(o->message), "%s",
             st->message ? st->message : "");
    uv_mutex_unlock(&o->lock);
}

static const orpc_call_callbacks cbs = {.on_headers = on_headers,
                                        .on_message = on_message,
                                        .on_ready = on_ready,
                                        .on_done = on_done};

static orpc_call *start(fx *f, const orpc_method_desc *m,
                        const ProtobufCMessage *req, obs *o)
{
    orpc_call *c = NULL;
    uv_mutex_lock(&o->lock); /* on_done compares with o->call */
    int rc = orpc_client_call_start_async(&c, f->cl, m, req, NULL, &cbs, o);
    o->call = c;
    uv_mutex_unlock(&o->lock);
    assert_int_equal(rc, 0);
    assert_non_null(c);
    return c;
}

/* ---- tests ---- */

/* Bidi ping-pong driven from on_message: 50 round trips, each response
 * the size asked for, every callback on one thread (not the test's), the
 * headers once, then OK. */
static void test_pingpong(void **state)
{
    fx *f = *state;
    obs o;
    obs_init(&o);
    o.pingpong_left = 50;
    orpc_call *c = start(
        f, grpc__testing__test_service__method__full_duplex_call, NULL, &o);
    int one = 1;
    OutReq *first = request_of_sizes(&one, 1);
    assert_int_equal(orpc_call_send(c, &first->base), 0);
    assert_int_equal(obs_wait(&o, &o.done, 1), 1);
    assert_int_equal(o.code, ORPC_OK);
    assert_int_equal(o.messages, 50);
    assert_int_equal(o.bytes, 50 * 51 / 2);
    assert_true(o.order_ok);
    assert_int_equal(o.headers, 1);
    assert_false(o.wrong_thread);
    uv_thread_t self = uv_thread_self();
    assert_false(uv_thread_equal(&o.io, &self));
    /* The application still holds the call: it says it is over. */
    assert_int_equal(orpc_call_send(c, &first->base), ORPC_ECLOSED);
    request_free(first);
    ProtobufCMessage *m = NULL;
    assert_int_equal(orpc_call_recv(c, &m), ORPC_ESTATE);
    orpc_status st = orpc_call_finish(c);
    assert_int_equal(st.code, ORPC_FAILED_PRECONDITION);
    orpc_status_clear(&st);
    orpc_call_unref(c);
    usleep(20000);
    assert_int_equal(obs_get(&o, &o.done), 1); /* exactly once */
}

/* Server streaming: the request is given at the start; 200 messages of
 * growing size arrive in order. */
static void test_server_streaming(void **state)
{
    fx *f = *state;
    int sizes[200];
    int total = 0;
    for (int i = 0; i < 200; i++)
        total += sizes[i] = i * 7;
    OutReq *req = request_of_sizes(sizes, 200);
    obs o;
    obs_init(&o);
    orpc_call *c =
        start(f, grpc__testing__test_service__method__streaming_output_call,
              &req->base, &o);
    request_free(req);
    orpc_call_unref(c); /* callbacks go on without the application's ref */
    assert_int_equal(obs_wait(&o, &o.done, 1), 1);
    assert_int_equal(o.code, ORPC_OK);
    assert_int_equal(o.messages, 200);
    assert_int_equal(o.bytes, total);
}

/* A paused call holds its messages, and with them the HTTP/2 credit: the
 * server's 64 KiB sends stop after about one stream window (1 MiB) plus
 * what its own send buffer and the connection hold, far short of all 300
 * (19 MiB).  Resumed, everything arrives. */
static void test_pause_holds_credit(void **state)
{
    fx *f = *state;
    enum { N = 300, SIZE = 64 * 1024 };
    int sizes[N];
    for (int i = 0; i < N; i++)
        sizes[i] = SIZE;
    OutReq *req = request_of_sizes(sizes, N);
    obs o;
    obs_init(&o);
    orpc_call *c = NULL;
    uv_mutex_lock(&o.lock);
    /* paused before anything can arrive: started paused from the lock */
    assert_int_equal(
        orpc_client_call_start_async(
            &c, f->cl,
            grpc__testing__test_service__method__streaming_output_call,
            &req->base, NULL, &cbs, &o),
        0);
    assert_int_equal(orpc_call_pause_recv(c), 0);
    o.call = c;
    uv_mutex_unlock(&o.lock);
    request_free(req);
    int sent = wait_settled(&g_sent);
    int delivered = obs_get(&o, &o.messages);
    /* The pause may have come after a first delivery; nothing after it. */
    assert_true(delivered <= 2);
    assert_true(sent > 0);
    assert_true(sent < 64); /* 4 MiB: window + buffers, not 19 MiB */
    assert_int_equal(obs_get(&o, &o.done), 0);
    assert_int_equal(orpc_call_resume_recv(c), 0);
    assert_int_equal(obs_wait(&o, &o.done, 1), 1);
    assert_int_equal(o.code, ORPC_OK);
    assert_int_equal(o.messages, N);
    assert_int_equal(get(&g_sent), N);
    orpc_call_unref(c);
}

/* A send that finds the buffer full returns ORPC_EAGAIN instead of
 * blocking; once the server reads, on_ready says so and sends go on. */
static void test_eagain_then_ready(void **state)
{
    fx *f = *state;
    obs o;
    obs_init(&o);
    orpc_call *c = start(
        f, grpc__testing__test_service__method__half_duplex_call, NULL, &o);
    OutReq *big = request_of_sizes(NULL, 0);
    Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
    uint8_t *body = calloc(1, 32 * 1024);
    assert_non_null(body);
    p.body.data = body;
    p.body.len = 32 * 1024;
    big->payload = &p;
    /* Send until ORPC_EAGAIN, again after each on_ready, until no on_ready
     * comes: the server's window is full and only its reading frees it. */
    int rc = 0, sent = 0, ready = 0;
    for (int round = 0; round < 200; round++) {
        while (sent < 2000 && (rc = orpc_call_send(c, &big->base)) == 0)
            sent++;
        assert_int_equal(rc, ORPC_EAGAIN); /* never blocked */
        int now = obs_settled(&o, &o.ready);
        if (now == ready)
            break;
        ready = now;
    }
    assert_true(sent > 2); /* more than the call's own 64 KiB buffer */
    set(&g_gate, 1);       /* the server starts reading */
    assert_true(obs_wait(&o, &o.ready, ready + 1) > ready);
    /* Room again: more sends are taken. */
    assert_int_equal(orpc_call_send(c, &big->base), 0);
    assert_int_equal(orpc_call_close_send(c), 0);
    assert_int_equal(obs_wait(&o, &o.done, 1), 1);
    assert_int_equal(o.code, ORPC_OK);
    assert_int_equal(get(&g_read), sent + 1);
    free(body);
    big->payload = NULL;
    request_free(big);
    orpc_call_unref(c);
}

/* Cancelled from its first on_message: on_done CANCELLED follows and no
 * further message is delivered. */
static void test_cancel_from_callback(void **state)
{
    fx *f = *state;
    int sizes[500];
    for (int i = 0; i < 500; i++)
        sizes[i] = 100;
    OutReq *req = request_of_sizes(sizes, 500);
    obs o;
    obs_init(&o);
    o.cancel_at = 1;
    orpc_call *c =
        start(f, grpc__testing__test_service__method__streaming_output_call,
              &req->base, &o);
    request_free(req);
    assert_int_equal(obs_wait(&o, &o.done, 1), 1);
    assert_int_equal(o.code, ORPC_CANCELLED);
    assert_int_equal(o.messages, 1);
    orpc_call_unref(c);
}

/* A call to a port nobody listens on: on_done UNAVAILABLE, once. */
static void test_unreachable(void **state)
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
    orpc_channel *ch;
    orpc_channel_opts co = {.plaintext = 1};
    assert_int_equal(orpc_channel_new(&ch, target, &co, NULL, NULL), 0);
    obs o;
    obs_init(&o);
    orpc_call *c = NULL;
    assert_int_equal(orpc_channel_call_start_async(
                         &c, ch,
                         grpc__testing__test_service__method__full_duplex_call,
                         NULL, NULL, &cbs, &o),
                     0);
    assert_int_equal(obs_wait(&o, &o.done, 1), 1);
    assert_int_equal(o.code, ORPC_UNAVAILABLE);
    assert_int_equal(o.messages, 0);
    orpc_call_unref(c);
    /* Bad arguments start nothing. */
    orpc_call_callbacks none = {0};
    assert_int_equal(orpc_channel_call_start_async(
                         &c, ch,
                         grpc__testing__test_service__method__full_duplex_call,
                         NULL, NULL, &none, &o),
                     ORPC_EINVAL);
    assert_null(c);
    orpc_channel_unref(ch);
}

/* Blocking calls from an IO thread fail at once, saying why: recv and send
 * of a blocking call (ORPC_EBLOCKING) and its finish (FAILED_PRECONDITION,
 * the call cancelled and let go); a blocking unary call likewise. */
static void unary_probe_done(const orpc_status *st, Grpc__Testing__Empty *resp,
                             void *ud)
{
    obs *o = ud;
    (void)st;
    if (resp)
        grpc__testing__empty__free_unpacked(resp, NULL);
    Grpc__Testing__Empty e = GRPC__TESTING__EMPTY__INIT;
    Grpc__Testing__Empty *out = NULL;
    orpc_status in = grpc__testing__test_service__client__empty_call(
        o->client, &e, &out, NULL);
    uv_mutex_lock(&o->lock);
    o->probe_finish_code = in.code;
    snprintf(o->probe_finish_msg, sizeof(o->probe_finish_msg), "%s",
             in.message ? in.message : "");
    o->done++;
    uv_mutex_unlock(&o->lock);
    orpc_status_clear(&in);
    if (out)
        grpc__testing__empty__free_unpacked(out, NULL);
}

/* An invoker that counts the calls it is asked to carry (a stand-in for
 * the router's legacy side, which would block on libcurl). */
static int g_invoked;

static orpc_status counting_invoke(const orpc_method_desc *m,
                                   const ProtobufCMessage *req,
                                   ProtobufCMessage **resp,
                                   const orpc_call_opts *opts, void *ud)
{
    (void)m;
    (void)req;
    (void)opts;
    (void)ud;
    *resp = NULL;
    uv_mutex_lock(&g_lock);
    g_invoked++;
    uv_mutex_unlock(&g_lock);
    return orpc_status_new(ORPC_UNIMPLEMENTED, "counting invoker");
}

static int counting_invoke_async(const orpc_method_desc *m,
                                 const ProtobufCMessage *req,
                                 const orpc_call_opts *opts,
                                 orpc_unary_trampoline done, orpc_fn cb,
                                 void *cb_ud, void *ud)
{
    (void)m, (void)req, (void)opts, (void)done, (void)cb, (void)cb_ud;
    (void)ud;
    return ORPC_ENOTSUP;
}

static void test_blocking_refused_on_io_thread(void **state)
{
    fx *f = *state;
    /* A blocking stream, then an async one whose callback probes it. */
    orpc_call *blocking = NULL;
    assert_int_equal(orpc_client_call_start(
                         &blocking, f->cl,
                         grpc__testing__test_service__method__full_duplex_call,
                         NULL, NULL),
                     0);
    obs o;
    obs_init(&o);
    o.blocking_probe = 1;
    o.blocking_call = blocking;
    int sizes[3] = {1, 1, 1};
    OutReq *req = request_of_sizes(sizes, 3);
    orpc_call *c =
        start(f, grpc__testing__test_service__method__streaming_output_call,
              &req->base, &o);
    request_free(req);
    assert_int_equal(obs_wait(&o, &o.done, 1), 1);
    assert_int_equal(o.code, ORPC_OK);
    assert_int_equal(o.probe_recv_rc, ORPC_EBLOCKING);
    assert_int_equal(o.probe_send_rc, ORPC_EBLOCKING);
    assert_int_equal(o.probe_finish_code, ORPC_FAILED_PRECONDITION);
    assert_non_null(strstr(o.probe_finish_msg, "IO thread"));
    orpc_call_unref(c);

    /* A blocking unary call from an async unary completion. */
    obs u;
    obs_init(&u);
    u.client = f->cl;
    Grpc__Testing__Empty e = GRPC__TESTING__EMPTY__INIT;
    assert_int_equal(grpc__testing__test_service__client__empty_call__async(
                         f->cl, &e, NULL, unary_probe_done, &u),
                     0);
    assert_int_equal(obs_wait(&u, &u.done, 1), 1);
    assert_int_equal(u.probe_finish_code, ORPC_FAILED_PRECONDITION);
    assert_non_null(strstr(u.probe_finish_msg, "orpc_client_invoke"));

    /* The same through a client whose calls an invoker carries: refused
     * before the invoker could block the loop. */
    orpc_invoker inv = {.invoke = counting_invoke,
                        .invoke_async = counting_invoke_async};
    orpc_client *via = NULL;
    assert_int_equal(orpc_client_new_with_invoker(
                         &via, &grpc__testing__test_service__orpc_desc, &inv,
                         NULL, NULL, NULL),
                     0);
    obs v;
    obs_init(&v);
    v.client = via;
    assert_int_equal(grpc__testing__test_service__client__empty_call__async(
                         f->cl, &e, NULL, unary_probe_done, &v),
                     0);
    assert_int_equal(obs_wait(&v, &v.done, 1), 1);
    assert_int_equal(v.probe_finish_code, ORPC_FAILED_PRECONDITION);
    uv_mutex_lock(&g_lock);
    assert_int_equal(g_invoked, 0);
    uv_mutex_unlock(&g_lock);
    /* and off the IO thread the invoker is used */
    Grpc__Testing__Empty *out = NULL;
    orpc_status st =
        grpc__testing__test_service__client__empty_call(via, &e, &out, NULL);
    assert_int_equal(st.code, ORPC_UNIMPLEMENTED);
    orpc_status_clear(&st);
    assert_int_equal(g_invoked, 1);
    orpc_client_free(via);
}

int main(void)
{
    uv_mutex_init(&g_lock);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pingpong, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_streaming, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_holds_credit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_eagain_then_ready, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cancel_from_callback, setup,
                                        teardown),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test_setup_teardown(test_blocking_refused_on_io_thread,
                                        setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    uv_mutex_destroy(&g_lock);
    return rc;
}
