/*
 * rpc_interceptor_test.c — client and server interceptor chains
 * (orpc/interceptor.h), and the call-log and trace-context interceptors
 * built on them (orpc/observe.h), on loopback against an orpc server.
 *
 * A recording interceptor notes every hook it sees (order, side, codes,
 * counts, metadata) in a small journal; tests assert on the journal and on
 * what handlers saw.  Log lines go to a sink that keeps them.  Every wait
 * is bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include <orpc/observe.h>
#include <orpc/orpc.h>

#include "grpc/testing/test.orpc.h"

typedef Grpc__Testing__SimpleRequest SimpleReq;
typedef Grpc__Testing__SimpleResponse SimpleResp;
typedef Grpc__Testing__StreamingOutputCallRequest OutReq;
typedef Grpc__Testing__StreamingOutputCallResponse OutResp;

/* ---- a journal of hooks (g.lock) ---- */

#define MAX_EVENTS 64
#define MAX_LINES 16

typedef struct event {
    char what; /* 's' start, 'm' message, 'e' end */
    int who;   /* the recorder's id */
    orpc_call_side side;
    int outbound;
    size_t bytes;
    orpc_code code;
    uint64_t msgs[2], bytes_total[2];
    int saw_slot; /* on_message / on_end got the slot on_start set */
} event;

static struct {
    uv_mutex_t lock;
    event ev[MAX_EVENTS];
    int n_ev;
    char lines[MAX_LINES][2048];
    orpc_log_level line_level[MAX_LINES];
    int n_lines;
    /* what handlers saw */
    char handler_md[128]; /* the x-added value, or "" */
    char handler_tp[64];  /* the handler's traceparent */
    char nested_tp[64];   /* the nested call's traceparent */
    int handler_runs;
    char target[64];
} g;

typedef struct recorder {
    int id;
    orpc_code refuse; /* on_start answers this (ORPC_OK: go on) */
    const char *add_key, *add_value;
} recorder;

static void note(event e)
{
    uv_mutex_lock(&g.lock);
    if (g.n_ev < MAX_EVENTS)
        g.ev[g.n_ev++] = e;
    uv_mutex_unlock(&g.lock);
}

static orpc_code rec_start(orpc_call_info *ci, void **slot, const char **why,
                           void *ud)
{
    recorder *r = ud;
    event e = {.what = 's', .who = r->id, .side = orpc_call_info_side(ci)};
    *slot = r; /* any non-NULL pointer: later hooks check they get it */
    if (r->add_key != NULL)
        assert_int_equal(orpc_call_info_add_metadata(ci, r->add_key,
                                                     r->add_value,
                                                     strlen(r->add_value)),
                         0);
    note(e);
    if (r->refuse != ORPC_OK)
        *why = "refused by the test's interceptor";
    return r->refuse;
}

static void rec_message(orpc_call_info *ci, void *slot, int outbound,
                        size_t bytes, void *ud)
{
    recorder *r = ud;
    note((event){.what = 'm',
                 .who = r->id,
                 .side = orpc_call_info_side(ci),
                 .outbound = outbound,
                 .bytes = bytes,
                 .saw_slot = slot == r});
}

static void rec_end(orpc_call_info *ci, void *slot, const orpc_status *st,
                    void *ud)
{
    recorder *r = ud;
    event e = {.what = 'e',
               .who = r->id,
               .side = orpc_call_info_side(ci),
               .code = st->code,
               .saw_slot = slot == r};
    orpc_call_info_counts(ci, 0, &e.msgs[0], &e.bytes_total[0]);
    orpc_call_info_counts(ci, 1, &e.msgs[1], &e.bytes_total[1]);
    /* adding metadata is for on_start only */
    assert_int_equal(orpc_call_info_add_metadata(ci, "late", "x", 1),
                     ORPC_ESTATE);
    note(e);
}

static const orpc_interceptor_ops rec_ops = {
    .on_start = rec_start, .on_message = rec_message, .on_end = rec_end};

static orpc_interceptor *recorder_new(recorder *r)
{
    orpc_interceptor *ic = NULL;
    assert_int_equal(orpc_interceptor_new(&ic, &rec_ops, r), 0);
    return ic;
}

static void sink(orpc_log_level level, const char *line, size_t len, void *ud)
{
    (void)ud;
    assert_int_equal(strlen(line), len);
    uv_mutex_lock(&g.lock);
    if (g.n_lines < MAX_LINES) {
        snprintf(g.lines[g.n_lines], sizeof g.lines[0], "%s", line);
        g.line_level[g.n_lines] = level;
        g.n_lines++;
    }
    uv_mutex_unlock(&g.lock);
}

/* ---- the server ---- */

static void copy_md(const orpc_metadata *md, const char *key, char *out,
                    size_t n)
{
    const uint8_t *v;
    size_t len;
    out[0] = '\0';
    if (orpc_metadata_get(md, key, &v, &len) == 0)
        snprintf(out, n, "%.*s", (int)len, (const char *)v);
}

static orpc_status unary_call(orpc_ctx *ctx, const SimpleReq *req,
                              SimpleResp *resp, void *ud)
{
    (void)ud;
    uv_mutex_lock(&g.lock);
    g.handler_runs++;
    copy_md(orpc_ctx_metadata(ctx), "x-added", g.handler_md,
            sizeof g.handler_md);
    copy_md(orpc_ctx_metadata(ctx), "traceparent", g.handler_tp,
            sizeof g.handler_tp);
    uv_mutex_unlock(&g.lock);
    if (req->response_status && req->response_status->code != 0)
        return orpc_status_new((orpc_code)req->response_status->code,
                               req->response_status->message);
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
    if (req->fill_username) {
        /* a call made from inside the handler continues its trace */
        orpc_channel_opts co = {.plaintext = 1};
        orpc_channel *ch = NULL;
        if (orpc_channel_new(&ch, g.target, &co, NULL, NULL) != 0)
            return orpc_status_new(ORPC_INTERNAL, "nested channel");
        orpc_metadata *seen = NULL;
        orpc_metadata_new(&seen, NULL);
        SimpleReq inner = GRPC__TESTING__SIMPLE_REQUEST__INIT;
        ProtobufCMessage *r = NULL;
        orpc_call_opts opts = {.headers_out = seen};
        orpc_status st = orpc_channel_invoke(
            ch, grpc__testing__test_service__method__unary_call, &inner.base,
            &r, &opts);
        if (r)
            protobuf_c_message_free_unpacked(r, NULL);
        orpc_metadata_free(seen);
        orpc_channel_unref(ch);
        if (st.code != ORPC_OK)
            return st;
        orpc_status_clear(&st);
        /* the inner handler overwrote handler_tp: keep it as nested_tp */
        uv_mutex_lock(&g.lock);
        memcpy(g.nested_tp, g.handler_tp, sizeof g.nested_tp);
        uv_mutex_unlock(&g.lock);
    }
    return ORPC_STATUS_OK;
}

static orpc_status
streaming_output(orpc_ctx *ctx, const OutReq *req,
                 Grpc__Testing__TestService_StreamingOutputCall_ServerWriter *w,
                 void *ud)
{
    (void)ctx;
    (void)ud;
    for (size_t i = 0; i < req->n_response_parameters; i++) {
        OutResp r = GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
        Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
        uint8_t body[64];
        size_t n = (size_t)req->response_parameters[i]->size;
        if (n > sizeof body)
            n = sizeof body;
        memset(body, 'y', n);
        p.body.data = body;
        p.body.len = n;
        r.payload = &p;
        if (grpc__testing__test_service__server__streaming_output_call__send(
                w, &r) != 0)
            return orpc_status_new(ORPC_CANCELLED, "client went away");
    }
    return ORPC_STATUS_OK;
}

static const Grpc__Testing__TestService_Handlers handlers = {
    .unary_call = unary_call,
    .streaming_output_call = streaming_output,
};

static orpc_server *server_with(orpc_interceptor *const *ics, size_t n,
                                int no_defaults)
{
    orpc_server_opts o = {.plaintext = 1,
                          .io_threads = 1,
                          .interceptors = ics,
                          .n_interceptors = n,
                          .no_default_interceptors = no_defaults};
    orpc_server *srv = NULL;
    assert_int_equal(orpc_server_new(&srv, &o, NULL, NULL), 0);
    assert_int_equal(
        grpc__testing__test_service__server__register(srv, &handlers, NULL), 0);
    int port;
    assert_int_equal(orpc_server_listen(srv, "127.0.0.1:0", &port, NULL), 0);
    assert_int_equal(orpc_server_start(srv), 0);
    snprintf(g.target, sizeof g.target, "127.0.0.1:%d", port);
    return srv;
}

static void server_stop(orpc_server *srv)
{
    assert_int_equal(orpc_server_shutdown(srv, 2000), 0);
    assert_int_equal(orpc_server_wait(srv), 0);
    orpc_server_free(srv);
}

static orpc_channel *channel_with(orpc_interceptor *const *ics, size_t n,
                                  int no_defaults)
{
    orpc_channel_opts co = {.plaintext = 1,
                            .interceptors = ics,
                            .n_interceptors = n,
                            .no_default_interceptors = no_defaults};
    orpc_channel *ch = NULL;
    assert_int_equal(orpc_channel_new(&ch, g.target, &co, NULL, NULL), 0);
    return ch;
}

static orpc_status unary(orpc_channel *ch, int size, orpc_code fail,
                         const char *msg, const orpc_call_opts *opts)
{
    SimpleReq req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__EchoStatus es = GRPC__TESTING__ECHO_STATUS__INIT;
    req.response_size = size;
    if (fail != ORPC_OK) {
        es.code = (int)fail;
        es.message = (char *)msg;
        req.response_status = &es;
    }
    ProtobufCMessage *resp = NULL;
    orpc_status st =
        orpc_channel_invoke(ch, grpc__testing__test_service__method__unary_call,
                            &req.base, &resp, opts);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    return st;
}

static void reset(void)
{
    uv_mutex_lock(&g.lock);
    g.n_ev = 0;
    g.n_lines = 0;
    g.handler_runs = 0;
    g.handler_md[0] = g.handler_tp[0] = g.nested_tp[0] = '\0';
    uv_mutex_unlock(&g.lock);
}

/* The events of |who| on |side|, in order, as a string of 's'/'m'/'e'. */
static void trail(int who, orpc_call_side side, char *out, size_t n)
{
    size_t k = 0;
    uv_mutex_lock(&g.lock);
    for (int i = 0; i < g.n_ev && k + 1 < n; i++)
        if (g.ev[i].who == who && g.ev[i].side == side)
            out[k++] = g.ev[i].what;
    uv_mutex_unlock(&g.lock);
    out[k] = '\0';
}

static void assert_trail(int who, orpc_call_side side, const char *want)
{
    char t[32];
    trail(who, side, t, sizeof t);
    assert_string_equal(t, want);
}

static const event *find(int who, char what)
{
    for (int i = 0; i < g.n_ev; i++)
        if (g.ev[i].who == who && g.ev[i].what == what)
            return &g.ev[i];
    return NULL;
}

/* Waits (2 s at most) until the journal holds |n| events. */
static void wait_events(int n)
{
    for (int i = 0; i < 400; i++) {
        uv_mutex_lock(&g.lock);
        int have = g.n_ev;
        uv_mutex_unlock(&g.lock);
        if (have >= n)
            return;
        usleep(5000);
    }
}

/* ---- tests ---- */

/* Both chains run in order around a unary call: start in chain order, end
 * in reverse, a message each way with its size, the client's metadata
 * reaching the handler, the slot carried from start to the later hooks. */
static void test_unary_order_and_counts(void **state)
{
    (void)state;
    recorder s1 = {.id = 1},
             c1 = {.id = 11, .add_key = "x-added", .add_value = "by-c1"},
             c2 = {.id = 12};
    orpc_interceptor *sics[] = {recorder_new(&s1)};
    orpc_interceptor *cics[] = {recorder_new(&c1), recorder_new(&c2)};
    orpc_server *srv = server_with(sics, 1, 1);
    orpc_channel *ch = channel_with(cics, 2, 1);
    reset();
    orpc_status st = unary(ch, 100, ORPC_OK, NULL, NULL);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
    wait_events(12); /* server s,m,m,e; client 2 × (s,m,m,e) */
    assert_trail(11, ORPC_SIDE_CLIENT, "smme");
    assert_trail(12, ORPC_SIDE_CLIENT, "smme");
    assert_trail(1, ORPC_SIDE_SERVER, "smme");
    uv_mutex_lock(&g.lock);
    /* start order c1 then c2; end order c2 then c1 */
    int s11 = -1, s12 = -1, e11 = -1, e12 = -1;
    for (int i = 0; i < g.n_ev; i++) {
        if (g.ev[i].what == 's' && g.ev[i].who == 11)
            s11 = i;
        if (g.ev[i].what == 's' && g.ev[i].who == 12)
            s12 = i;
        if (g.ev[i].what == 'e' && g.ev[i].who == 11)
            e11 = i;
        if (g.ev[i].what == 'e' && g.ev[i].who == 12)
            e12 = i;
    }
    assert_true(s11 < s12);
    assert_true(e12 < e11);
    const event *ce = find(11, 'e'), *se = find(1, 'e');
    assert_int_equal(ce->code, ORPC_OK);
    assert_true(ce->saw_slot);
    assert_int_equal(ce->msgs[0], 1);
    assert_int_equal(ce->msgs[1], 1);
    /* the response: a payload of 100 bytes and its framing (> 100) */
    assert_true(ce->bytes_total[0] > 100 && ce->bytes_total[0] < 120);
    assert_int_equal(se->msgs[0], 1);
    assert_int_equal(se->msgs[1], 1);
    assert_int_equal(se->bytes_total[1], ce->bytes_total[0]);
    assert_int_equal(se->bytes_total[0], ce->bytes_total[1]);
    for (int i = 0; i < g.n_ev; i++)
        if (g.ev[i].what == 'm')
            assert_true(g.ev[i].saw_slot);
    assert_string_equal(g.handler_md, "by-c1");
    uv_mutex_unlock(&g.lock);
    orpc_channel_unref(ch);
    server_stop(srv);
    orpc_interceptor_unref(sics[0]);
    orpc_interceptor_unref(cics[0]);
    orpc_interceptor_unref(cics[1]);
}

/* Per-message hooks of a server-streaming call: 1 request, 3 responses
 * of known sizes, on both sides; the failed status reaches on_end. */
static void test_streaming_messages(void **state)
{
    (void)state;
    recorder s1 = {.id = 1}, c1 = {.id = 11};
    orpc_interceptor *sic = recorder_new(&s1), *cic = recorder_new(&c1);
    orpc_server *srv = server_with(&sic, 1, 1);
    orpc_channel *ch = channel_with(&cic, 1, 1);
    reset();
    OutReq req = GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    Grpc__Testing__ResponseParameters rp[3], *rpp[3];
    for (int i = 0; i < 3; i++) {
        grpc__testing__response_parameters__init(&rp[i]);
        rp[i].size = 10 * (i + 1);
        rpp[i] = &rp[i];
    }
    req.n_response_parameters = 3;
    req.response_parameters = rpp;
    orpc_call *call = NULL;
    assert_int_equal(
        orpc_channel_call_start(
            &call, ch,
            grpc__testing__test_service__method__streaming_output_call,
            &req.base, NULL),
        0);
    ProtobufCMessage *m;
    int got = 0;
    while (orpc_call_recv(call, &m) == 1) {
        protobuf_c_message_free_unpacked(m, NULL);
        got++;
    }
    orpc_status st = orpc_call_finish(call);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
    assert_int_equal(got, 3);
    wait_events(12);
    assert_trail(11, ORPC_SIDE_CLIENT, "smmmme");
    assert_trail(1, ORPC_SIDE_SERVER, "smmmme");
    uv_mutex_lock(&g.lock);
    size_t in_sizes[3];
    int k = 0;
    for (int i = 0; i < g.n_ev; i++)
        if (g.ev[i].who == 11 && g.ev[i].what == 'm' && !g.ev[i].outbound)
            in_sizes[k++] = g.ev[i].bytes;
    assert_int_equal(k, 3);
    /* each response is its payload plus a few bytes of protobuf framing */
    assert_true(in_sizes[0] < in_sizes[1] && in_sizes[1] < in_sizes[2]);
    assert_int_equal(find(11, 'e')->msgs[0], 3);
    assert_int_equal(find(1, 'e')->msgs[1], 3);
    uv_mutex_unlock(&g.lock);
    orpc_channel_unref(ch);
    server_stop(srv);
    orpc_interceptor_unref(sic);
    orpc_interceptor_unref(cic);
}

/* A client interceptor that refuses ends the call with its code before
 * anything is sent; the interceptor before it sees on_end, the one after
 * never starts. */
static void test_client_refuses(void **state)
{
    (void)state;
    recorder c1 = {.id = 11}, c2 = {.id = 12, .refuse = ORPC_PERMISSION_DENIED},
             c3 = {.id = 13};
    orpc_interceptor *cics[] = {recorder_new(&c1), recorder_new(&c2),
                                recorder_new(&c3)};
    orpc_server *srv = server_with(NULL, 0, 1);
    orpc_channel *ch = channel_with(cics, 3, 1);
    reset();
    orpc_status st = unary(ch, 1, ORPC_OK, NULL, NULL);
    assert_int_equal(st.code, ORPC_PERMISSION_DENIED);
    assert_string_equal(st.message, "refused by the test's interceptor");
    orpc_status_clear(&st);
    assert_trail(11, ORPC_SIDE_CLIENT, "se");
    assert_trail(12, ORPC_SIDE_CLIENT, "s");
    assert_trail(13, ORPC_SIDE_CLIENT, "");
    uv_mutex_lock(&g.lock);
    assert_int_equal(find(11, 'e')->code, ORPC_PERMISSION_DENIED);
    assert_int_equal(g.handler_runs, 0);
    uv_mutex_unlock(&g.lock);
    /* the same for a streaming call */
    OutReq req = GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    orpc_call *call = NULL;
    assert_int_equal(
        orpc_channel_call_start(
            &call, ch,
            grpc__testing__test_service__method__streaming_output_call,
            &req.base, NULL),
        0);
    ProtobufCMessage *m;
    assert_int_equal(orpc_call_recv(call, &m), ORPC_ECLOSED);
    st = orpc_call_finish(call);
    assert_int_equal(st.code, ORPC_PERMISSION_DENIED);
    orpc_status_clear(&st);
    orpc_channel_unref(ch);
    server_stop(srv);
    for (int i = 0; i < 3; i++)
        orpc_interceptor_unref(cics[i]);
}

/* A server interceptor that refuses: the client gets the code, the
 * handler never runs; the failing status of a handler reaches on_end. */
static void test_server_refuses(void **state)
{
    (void)state;
    recorder s1 = {.id = 1}, s2 = {.id = 2, .refuse = ORPC_UNAUTHENTICATED};
    orpc_interceptor *sics[] = {recorder_new(&s1), recorder_new(&s2)};
    orpc_server *srv = server_with(sics, 2, 1);
    orpc_channel *ch = channel_with(NULL, 0, 1);
    reset();
    orpc_status st = unary(ch, 1, ORPC_OK, NULL, NULL);
    assert_int_equal(st.code, ORPC_UNAUTHENTICATED);
    assert_string_equal(st.message, "refused by the test's interceptor");
    orpc_status_clear(&st);
    wait_events(3);
    assert_trail(1, ORPC_SIDE_SERVER, "se");
    assert_trail(2, ORPC_SIDE_SERVER, "s");
    uv_mutex_lock(&g.lock);
    assert_int_equal(g.handler_runs, 0);
    assert_int_equal(find(1, 'e')->code, ORPC_UNAUTHENTICATED);
    uv_mutex_unlock(&g.lock);
    orpc_channel_unref(ch);
    server_stop(srv);
    orpc_interceptor_unref(sics[0]);
    orpc_interceptor_unref(sics[1]);
}

/* Bad chains are refused when the channel or server is made. */
static void test_bad_chains(void **state)
{
    (void)state;
    recorder r = {.id = 1};
    orpc_interceptor *ic = recorder_new(&r);
    orpc_interceptor *many[ORPC_MAX_INTERCEPTORS + 1];
    for (int i = 0; i <= ORPC_MAX_INTERCEPTORS; i++)
        many[i] = ic;
    orpc_channel_opts co = {.plaintext = 1,
                            .interceptors = many,
                            .n_interceptors = ORPC_MAX_INTERCEPTORS + 1};
    orpc_channel *ch = NULL;
    orpc_error_detail d = {0};
    assert_int_equal(orpc_channel_new(&ch, "127.0.0.1:1", &co, NULL, &d),
                     ORPC_EINVAL);
    assert_non_null(strstr(d.message, "ORPC_MAX_INTERCEPTORS"));
    /* eight of them fit only without the defaults */
    co.n_interceptors = ORPC_MAX_INTERCEPTORS;
    assert_int_equal(orpc_channel_new(&ch, "127.0.0.1:1", &co, NULL, &d),
                     ORPC_EINVAL);
    co.no_default_interceptors = 1;
    assert_int_equal(orpc_channel_new(&ch, "127.0.0.1:1", &co, NULL, &d), 0);
    orpc_channel_unref(ch);
    orpc_interceptor *holes[] = {ic, NULL};
    orpc_server_opts so = {
        .plaintext = 1, .interceptors = holes, .n_interceptors = 2};
    orpc_server *srv = NULL;
    assert_int_equal(orpc_server_new(&srv, &so, NULL, &d), ORPC_EINVAL);
    assert_non_null(strstr(d.message, "NULL entry"));
    assert_int_equal(orpc_interceptor_new(NULL, &rec_ops, NULL), ORPC_EINVAL);
    orpc_interceptor_unref(ic);
    orpc_interceptor_unref(NULL);
}

static int tp_ok(const char *tp)
{
    orpc_metadata *md = NULL;
    char id[33];
    orpc_metadata_new(&md, NULL);
    orpc_metadata_add_str(md, "traceparent", tp);
    int ok = orpc_trace_id(md, id) == 0;
    orpc_metadata_free(md);
    return ok;
}

/* W3C traceparent: a server call without one starts a trace its handler
 * sees; a call made inside the handler continues it (same trace id, new
 * span id, tracestate carried); one the client sets is kept; a malformed
 * one is replaced. */
static void test_trace_context(void **state)
{
    (void)state;
    orpc_server *srv = server_with(NULL, 0, 0);
    orpc_channel *plain = channel_with(NULL, 0, 1); /* sends no traceparent */
    reset();
    orpc_status st = unary(plain, 1, ORPC_OK, NULL, NULL);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
    uv_mutex_lock(&g.lock);
    assert_int_equal(strlen(g.handler_tp), 55);
    assert_true(tp_ok(g.handler_tp));
    uv_mutex_unlock(&g.lock);

    /* the client's own traceparent and tracestate arrive untouched */
    const char *mine =
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    orpc_channel *ch = channel_with(NULL, 0, 0);
    orpc_metadata *md = NULL;
    orpc_metadata_new(&md, NULL);
    orpc_metadata_add_str(md, "traceparent", mine);
    orpc_metadata_add_str(md, "tracestate", "vendor=abc");
    orpc_call_opts opts = {.metadata = md};
    st = unary(ch, 1, ORPC_OK, NULL, &opts);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
    uv_mutex_lock(&g.lock);
    assert_string_equal(g.handler_tp, mine);
    uv_mutex_unlock(&g.lock);

    /* nested: the handler's call carries the same trace id */
    SimpleReq req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    req.fill_username = 1;
    ProtobufCMessage *resp = NULL;
    st =
        orpc_channel_invoke(ch, grpc__testing__test_service__method__unary_call,
                            &req.base, &resp, &opts);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
    protobuf_c_message_free_unpacked(resp, NULL);
    uv_mutex_lock(&g.lock);
    assert_int_equal(strlen(g.nested_tp), 55);
    assert_memory_equal(g.nested_tp, mine, 35); /* version, trace id */
    assert_memory_not_equal(g.nested_tp + 36, mine + 36, 16); /* span */
    assert_string_equal(g.nested_tp + 52, "-01");
    uv_mutex_unlock(&g.lock);

    /* malformed: replaced by a valid one with a new trace */
    static const char *const bad[] = {
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "garbage"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(tp_ok(bad[i]));
        orpc_metadata *b = NULL;
        orpc_metadata_new(&b, NULL);
        orpc_metadata_add_str(b, "traceparent", bad[i]);
        orpc_call_opts bo = {.metadata = b};
        st = unary(plain, 1, ORPC_OK, NULL, &bo);
        assert_int_equal(st.code, ORPC_OK);
        orpc_status_clear(&st);
        orpc_metadata_free(b);
        uv_mutex_lock(&g.lock);
        assert_true(tp_ok(g.handler_tp));
        assert_string_not_equal(g.handler_tp, bad[i]);
        uv_mutex_unlock(&g.lock);
    }
    /* a later version with extra fields is accepted as is */
    assert_true(
        tp_ok("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"));
    orpc_metadata_free(md);
    orpc_channel_unref(ch);
    orpc_channel_unref(plain);
    server_stop(srv);
}

/* One line per call: the fields, JSON that parses (with a hostile status
 * message), the level filter, the trace id. */
static void test_call_log(void **state)
{
    (void)state;
    orpc_call_log_opts lo = {
        .format = ORPC_CALL_LOG_JSON, .level = ORPC_LOG_INFO, .sink = sink};
    orpc_interceptor *log = NULL;
    assert_int_equal(orpc_call_log_interceptor_new(&log, &lo), 0);
    orpc_server *srv = server_with(&log, 1, 0);
    orpc_channel *ch = channel_with(NULL, 0, 0);
    reset();
    orpc_status st = unary(ch, 7, ORPC_OK, NULL, NULL);
    orpc_status_clear(&st);
    const char *evil = "bad \"quote\"\n level=error \xff\xfe end";
    st = unary(ch, 0, ORPC_NOT_FOUND, evil, NULL);
    assert_int_equal(st.code, ORPC_NOT_FOUND);
    orpc_status_clear(&st);
    for (int i = 0; i < 400 && g.n_lines < 2; i++)
        usleep(5000);
    uv_mutex_lock(&g.lock);
    assert_int_equal(g.n_lines, 2);
    json_error_t err;
    json_t *a = json_loads(g.lines[0], 0, &err);
    json_t *b = json_loads(g.lines[1], 0, &err);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(a, "method")),
                        "/grpc.testing.TestService/UnaryCall");
    assert_string_equal(json_string_value(json_object_get(a, "side")),
                        "server");
    assert_string_equal(json_string_value(json_object_get(a, "served_by")),
                        "grpc");
    assert_string_equal(json_string_value(json_object_get(a, "code")), "OK");
    assert_string_equal(json_string_value(json_object_get(a, "level")), "info");
    assert_int_equal(g.line_level[0], ORPC_LOG_INFO);
    assert_int_equal(json_integer_value(json_object_get(a, "msgs_in")), 1);
    assert_true(json_integer_value(json_object_get(a, "bytes_out")) >= 7);
    assert_true(json_is_number(json_object_get(a, "duration_ms")));
    assert_int_equal(strlen(json_string_value(json_object_get(a, "trace_id"))),
                     32);
    assert_null(json_object_get(a, "error"));
    assert_string_equal(json_string_value(json_object_get(b, "code")),
                        "NOT_FOUND");
    assert_int_equal(g.line_level[1], ORPC_LOG_WARN);
    const char *e = json_string_value(json_object_get(b, "error"));
    assert_non_null(e);
    assert_non_null(strstr(e, "bad \"quote\"\n level=error "));
    assert_non_null(strstr(e, "\xef\xbf\xbd")); /* the bad bytes, replaced */
    assert_null(strchr(g.lines[1], '\n'));
    json_decref(a);
    json_decref(b);
    uv_mutex_unlock(&g.lock);
    orpc_channel_unref(ch);
    server_stop(srv);
    orpc_interceptor_unref(log);

    /* logfmt, failed calls only, on the client side */
    lo.format = ORPC_CALL_LOG_LOGFMT;
    lo.level = ORPC_LOG_WARN;
    assert_int_equal(orpc_call_log_interceptor_new(&log, &lo), 0);
    orpc_trace_opts to = {.start_client_traces = 1};
    orpc_interceptor *starter = NULL;
    assert_int_equal(orpc_trace_interceptor_new(&starter, &to), 0);
    orpc_interceptor *cics[] = {starter, log};
    srv = server_with(NULL, 0, 0);
    ch = channel_with(cics, 2, 0);
    reset();
    st = unary(ch, 1, ORPC_OK, NULL, NULL);
    orpc_status_clear(&st);
    st = unary(ch, 1, ORPC_ABORTED, "a b=c", NULL);
    orpc_status_clear(&st);
    uv_mutex_lock(&g.lock);
    assert_int_equal(g.n_lines, 1);
    assert_non_null(strstr(g.lines[0], " side=client "));
    assert_non_null(strstr(g.lines[0], " code=ABORTED "));
    assert_non_null(strstr(g.lines[0], " peer=127.0.0.1:"));
    assert_non_null(strstr(g.lines[0], " error=\"a b=c\""));
    /* the client started the trace the handler saw */
    char want[64];
    snprintf(want, sizeof want, " trace_id=%.32s ", g.handler_tp + 3);
    assert_non_null(strstr(g.lines[0], want));
    uv_mutex_unlock(&g.lock);
    orpc_channel_unref(ch);
    /* with the default chain alone, a call with no parent carries no trace
     * (its server starts one): no trace id on the client's line */
    ch = channel_with(&log, 1, 0);
    reset();
    st = unary(ch, 1, ORPC_ABORTED, "again", NULL);
    orpc_status_clear(&st);
    uv_mutex_lock(&g.lock);
    assert_int_equal(g.n_lines, 1);
    assert_null(strstr(g.lines[0], "trace_id="));
    assert_int_equal(strlen(g.handler_tp), 55); /* started by the server */
    uv_mutex_unlock(&g.lock);
    orpc_channel_unref(ch);
    server_stop(srv);
    orpc_interceptor_unref(log);
    orpc_interceptor_unref(starter);
}

/* LOG_LEVEL, SERVICE_COMM_LOG_ENABLED and ORPC_CALL_LOG_FORMAT. */
static void test_log_env(void **state)
{
    (void)state;
    orpc_call_log_opts o = {0};
    int on = -1;
    orpc_error_detail d = {0};
    unsetenv("LOG_LEVEL");
    unsetenv("SERVICE_COMM_LOG_ENABLED");
    unsetenv("ORPC_CALL_LOG_FORMAT");
    assert_int_equal(orpc_call_log_opts_from_env(&o, &on, &d), 0);
    assert_int_equal(on, 1);
    assert_int_equal(o.level, ORPC_LOG_INFO);
    assert_int_equal(o.format, ORPC_CALL_LOG_LOGFMT);
    setenv("LOG_LEVEL", "warning", 1);
    setenv("SERVICE_COMM_LOG_ENABLED", "False", 1);
    setenv("ORPC_CALL_LOG_FORMAT", "json", 1);
    assert_int_equal(orpc_call_log_opts_from_env(&o, &on, &d), 0);
    assert_int_equal(on, 0);
    assert_int_equal(o.level, ORPC_LOG_WARN);
    assert_int_equal(o.format, ORPC_CALL_LOG_JSON);
    setenv("LOG_LEVEL", "LOUD", 1);
    assert_int_equal(orpc_call_log_opts_from_env(&o, &on, &d), ORPC_ECONFIG);
    assert_non_null(strstr(d.message, "LOG_LEVEL=\"LOUD\""));
    setenv("LOG_LEVEL", "ERROR", 1);
    setenv("SERVICE_COMM_LOG_ENABLED", "maybe", 1);
    assert_int_equal(orpc_call_log_opts_from_env(&o, &on, &d), ORPC_ECONFIG);
    assert_non_null(strstr(d.message, "SERVICE_COMM_LOG_ENABLED"));
    unsetenv("LOG_LEVEL");
    unsetenv("SERVICE_COMM_LOG_ENABLED");
    unsetenv("ORPC_CALL_LOG_FORMAT");
}

int main(void)
{
    uv_mutex_init(&g.lock);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unary_order_and_counts),
        cmocka_unit_test(test_streaming_messages),
        cmocka_unit_test(test_client_refuses),
        cmocka_unit_test(test_server_refuses),
        cmocka_unit_test(test_bad_chains),
        cmocka_unit_test(test_trace_context),
        cmocka_unit_test(test_call_log),
        cmocka_unit_test(test_log_env),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    uv_mutex_destroy(&g.lock);
    return rc;
}
