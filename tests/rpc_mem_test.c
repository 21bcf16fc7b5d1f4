/*
 * rpc_mem_test.c — orpc_mem honoured end to end: a server and a channel on
 * loopback, each given a counting, failing allocator (test_alloc.h), run
 * one scenario (a blocking unary call with metadata both ways, an
 * asynchronous unary call, and a bidi stream of three messages each way).
 *
 * First the scenario runs clean, which counts each side's allocations and
 * checks that the hooks see them (nghttp2's among them, and hooks with
 * only malloc and free work).  Then it runs again with exactly one
 * allocation refused, for each index on the client's side and,
 * separately, on the server's; and again with every allocation refused
 * from each index on (memory that does not come back).  Every call must
 * end once, OK or with a clean status (never DEADLINE_EXCEEDED: nothing
 * may hang), a constructor may answer ORPC_ENOMEM, and once the objects
 * are freed neither allocator holds a block (and LeakSanitizer, in the
 * asan build, finds none).  Past a cap (MAX_RUNS) the indices are sampled
 * with a stride; the scenario's ~250 allocations are all covered.
 *
 * The handlers run on the server's threads, where cmocka cannot assert:
 * what they cannot do becomes the call's status, which the test checks.
 * Every wait is bounded; no assertion is about a duration.
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
#include <uv.h>

#include <orpc/orpc.h>

#include "grpc/testing/test.orpc.h"
#include "test_alloc.h"

typedef Grpc__Testing__SimpleRequest SimpleRequest;
typedef Grpc__Testing__SimpleResponse SimpleResponse;
typedef Grpc__Testing__StreamingOutputCallRequest OutReq;
typedef Grpc__Testing__StreamingOutputCallResponse OutResp;

/* A call's deadline: only a hang would reach it. */
#define DEADLINE_MS 20000
/* Most failing runs in all (both sides); beyond, indices are strided. */
#define MAX_RUNS 1200
#define UNARY_SIZE 100 /* bytes of the unary response's payload */
#define STREAM_MSGS 3

/* ---- the service ---- */

static orpc_status unary_call(orpc_ctx *ctx, const SimpleRequest *req,
                              SimpleResponse *resp, void *ud)
{
    (void)ud;
    const uint8_t *v;
    size_t len;
    if (orpc_metadata_get(orpc_ctx_metadata(ctx), "x-echo", &v, &len) != 0)
        return orpc_status_new(ORPC_INVALID_ARGUMENT, "no x-echo");
    if (orpc_ctx_add_header(ctx, "x-echo", v, len) != 0 ||
        orpc_ctx_add_trailer(ctx, "x-echo-trailer", v, len) != 0)
        return orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "echo: no memory");
    Grpc__Testing__Payload *p =
        orpc_arena_alloc(orpc_ctx_arena(ctx), sizeof(*p));
    uint8_t *body =
        orpc_arena_alloc(orpc_ctx_arena(ctx), (size_t)req->response_size + 1);
    if (p == NULL || body == NULL)
        return orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "arena: no memory");
    grpc__testing__payload__init(p);
    memset(body, 'r', (size_t)req->response_size);
    p->body.data = body;
    p->body.len = (size_t)req->response_size;
    resp->payload = p;
    return ORPC_STATUS_OK;
}

/* Each request is answered with one response per parameter. */
static orpc_status
full_duplex(orpc_ctx *ctx,
            Grpc__Testing__TestService_FullDuplexCall_ServerStream *s, void *ud)
{
    (void)ctx;
    (void)ud;
    const OutReq *m;
    int rc;
    while ((rc = grpc__testing__test_service__server__full_duplex_call__recv(
                s, &m)) == 1) {
        for (size_t i = 0; i < m->n_response_parameters; i++) {
            uint8_t body[64];
            size_t n = (size_t)m->response_parameters[i]->size;
            if (n > sizeof(body))
                return orpc_status_new(ORPC_INVALID_ARGUMENT, "too big");
            memset(body, 's', n);
            Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
            p.body.data = body;
            p.body.len = n;
            OutResp r = GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
            r.payload = &p;
            int src =
                grpc__testing__test_service__server__full_duplex_call__send(s,
                                                                            &r);
            if (src != 0)
                return orpc_status_errorf(src == ORPC_ENOMEM
                                              ? ORPC_RESOURCE_EXHAUSTED
                                              : ORPC_CANCELLED,
                                          "send: %s", orpc_strerror(src));
        }
    }
    return rc == 0 ? ORPC_STATUS_OK
                   : orpc_status_new(ORPC_CANCELLED, "recv failed");
}

static const Grpc__Testing__TestService_Handlers handlers = {
    .unary_call = unary_call,
    .full_duplex_call = full_duplex,
};

/* Out-of-memory warnings are expected by the hundred here. */
static void quiet(orpc_log_level level, const char *msg, void *ud)
{
    (void)ud;
    if (getenv("ORPC_MEM_TEST_VERBOSE"))
        fprintf(stderr, "  log %d: %s\n", (int)level, msg);
}

/* ---- one run of the scenario ---- */

/* Which allocations of the failing side are refused: the k-th alone, or
 * every one from the k-th on (memory that does not come back). */
typedef enum fail_mode { FAIL_ONE, FAIL_FROM } fail_mode;

/* What a run saw, for the report of a failure and the final tally. */
typedef struct outcome {
    int srv_rc, ch_rc;  /* constructors: 0 or ORPC_ENOMEM */
    orpc_code codes[3]; /* unary, async unary, bidi (OK if not run) */
    char msgs[3][96];   /* their messages */
    int ran[3];         /* the call was started */
} outcome;

/* The asynchronous unary call's completion (its lock guards the rest). */
typedef struct async_done {
    uv_mutex_t lock;
    int calls;
    orpc_code code;
    char msg[96];
    int payload_ok;
} async_done;

static void on_unary_done(const orpc_status *st, SimpleResponse *resp, void *ud)
{
    async_done *d = ud;
    uv_mutex_lock(&d->lock);
    d->calls++;
    d->code = st->code;
    snprintf(d->msg, sizeof(d->msg), "%s", st->message ? st->message : "");
    d->payload_ok = resp != NULL && resp->payload != NULL &&
                    resp->payload->body.len == UNARY_SIZE;
    uv_mutex_unlock(&d->lock);
    grpc__testing__simple_response__free_unpacked(resp, NULL);
}

static int done_calls(async_done *d)
{
    uv_mutex_lock(&d->lock);
    int n = d->calls;
    uv_mutex_unlock(&d->lock);
    return n;
}

/* A call's end: OK, or a status a failed allocation may explain.  Never
 * DEADLINE_EXCEEDED (a hang), never a code that blames the caller or the
 * method (an allocation failure turned into a wrong answer). */
static void check_code(orpc_code code, const char *msg, const char *what,
                       const char *where)
{
    if (code == ORPC_OK || code == ORPC_RESOURCE_EXHAUSTED ||
        code == ORPC_INTERNAL || code == ORPC_UNAVAILABLE)
        return;
    fail_msg("%s, %s: %s (%s)", what, where, orpc_code_name(code),
             msg ? msg : "");
}

static void record(outcome *o, int i, const orpc_status *st)
{
    o->ran[i] = 1;
    o->codes[i] = st->code;
    snprintf(o->msgs[i], sizeof(o->msgs[i]), "%s",
             st->message ? st->message : "");
}

static void run_unary(orpc_client *cl, outcome *o, const char *where)
{
    orpc_metadata *md = NULL, *hdrs = NULL, *trls = NULL;
    assert_int_equal(orpc_metadata_new(&md, NULL), 0);
    assert_int_equal(orpc_metadata_new(&hdrs, NULL), 0);
    assert_int_equal(orpc_metadata_new(&trls, NULL), 0);
    assert_int_equal(orpc_metadata_add_str(md, "x-echo", "hello"), 0);
    orpc_call_opts opts = {.timeout_ms = DEADLINE_MS,
                           .metadata = md,
                           .headers_out = hdrs,
                           .trailers_out = trls};
    SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    req.response_size = UNARY_SIZE;
    SimpleResponse *resp = NULL;
    orpc_status st =
        grpc__testing__test_service__client__unary_call(cl, &req, &resp, &opts);
    record(o, 0, &st);
    check_code(st.code, st.message, "unary call", where);
    if (st.code == ORPC_OK) {
        /* OK means everything arrived: the response and the echoes */
        const uint8_t *v;
        size_t len;
        assert_non_null(resp);
        assert_non_null(resp->payload);
        assert_int_equal(resp->payload->body.len, UNARY_SIZE);
        assert_int_equal(orpc_metadata_get(hdrs, "x-echo", &v, &len), 0);
        assert_int_equal(len, 5);
        assert_int_equal(orpc_metadata_get(trls, "x-echo-trailer", &v, &len),
                         0);
    } else {
        assert_null(resp);
    }
    grpc__testing__simple_response__free_unpacked(resp, NULL);
    orpc_status_clear(&st);
    orpc_metadata_free(md);
    orpc_metadata_free(hdrs);
    orpc_metadata_free(trls);
}

/* Starts the asynchronous unary call; |d| records its completion. */
static int start_async(orpc_client *cl, async_done *d)
{
    orpc_metadata *md = NULL;
    assert_int_equal(orpc_metadata_new(&md, NULL), 0);
    assert_int_equal(orpc_metadata_add_str(md, "x-echo", "async"), 0);
    orpc_call_opts opts = {.timeout_ms = DEADLINE_MS, .metadata = md};
    SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    req.response_size = UNARY_SIZE;
    int rc = grpc__testing__test_service__client__unary_call__async(
        cl, &req, &opts, on_unary_done, d);
    orpc_metadata_free(md); /* copied when the call starts */
    return rc;
}

static void run_bidi(orpc_client *cl, outcome *o, const char *where)
{
    orpc_call_opts opts = {.timeout_ms = DEADLINE_MS};
    Grpc__Testing__TestService_FullDuplexCall_Stream *s = NULL;
    int rc =
        grpc__testing__test_service__client__full_duplex_call(cl, &opts, &s);
    if (rc != 0) {
        assert_int_equal(rc, ORPC_ENOMEM);
        return;
    }
    int received = 0, broken = 0, unsent = 0;
    for (int i = 0; i < STREAM_MSGS && !broken; i++) {
        uint8_t body[8];
        memset(body, 'q', sizeof(body));
        Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
        p.body.data = body;
        p.body.len = sizeof(body);
        Grpc__Testing__ResponseParameters rp =
            GRPC__TESTING__RESPONSE_PARAMETERS__INIT;
        Grpc__Testing__ResponseParameters *rpp = &rp;
        rp.size = 10 * (i + 1);
        OutReq m = GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
        m.payload = &p;
        m.n_response_parameters = 1;
        m.response_parameters = &rpp;
        rc = grpc__testing__test_service__client__full_duplex_call__send(s, &m);
        if (rc != 0) {
            /* the call is over (finish says why), or no memory for this
             * message (the call goes on without it) */
            if (rc != ORPC_ECLOSED)
                assert_int_equal(rc, ORPC_ENOMEM);
            unsent = rc == ORPC_ENOMEM;
            broken = 1;
            break;
        }
        OutResp *r = NULL;
        rc = grpc__testing__test_service__client__full_duplex_call__recv(s, &r);
        if (rc != 1) {
            assert_true(rc == 0 || rc == ORPC_ECLOSED);
            broken = 1;
            break;
        }
        assert_non_null(r->payload);
        assert_int_equal(r->payload->body.len, (size_t)(10 * (i + 1)));
        received++;
        grpc__testing__streaming_output_call_response__free_unpacked(r, NULL);
    }
    rc = grpc__testing__test_service__client__full_duplex_call__close_send(s);
    assert_true(rc == 0 || rc == ORPC_ECLOSED);
    /* whatever is left (nothing, unless the server misbehaves), then the
     * end; bounded: a stream of more messages than sent is a failure */
    int extra = 0;
    for (int i = 0; i < 4; i++) {
        OutResp *r = NULL;
        rc = grpc__testing__test_service__client__full_duplex_call__recv(s, &r);
        if (rc != 1)
            break;
        extra++;
        grpc__testing__streaming_output_call_response__free_unpacked(r, NULL);
    }
    orpc_status st =
        grpc__testing__test_service__client__full_duplex_call__finish(s);
    record(o, 2, &st);
    check_code(st.code, st.message, "bidi call", where);
    if (st.code == ORPC_OK) {
        /* every message sent was answered, and nothing more */
        assert_true(!broken || unsent);
        if (!unsent)
            assert_int_equal(received, STREAM_MSGS);
        assert_int_equal(extra, 0);
    }
    orpc_status_clear(&st);
}

/*
 * The scenario, with the server's allocation |srv_fail| and the client's
 * |cli_fail| refused (-1: none).  Both allocators are set up here and
 * checked empty once everything is freed.
 */
static void scenario_hooks(test_alloc *sa, long srv_fail, test_alloc *ca,
                           long cli_fail, fail_mode mode, int minimal,
                           outcome *o)
{
    char where[80];
    snprintf(where, sizeof(where), "allocation %ld of the %s failing%s",
             srv_fail >= 0 ? srv_fail : cli_fail,
             srv_fail >= 0 ? "server" : "client",
             mode == FAIL_FROM ? ", and every later one" : "");
    orpc_mem smem = ta_mem(sa, -1), cmem = ta_mem(ca, -1);
    if (mode == FAIL_FROM) { /* the budget: that many succeed, then none */
        sa->budget = srv_fail;
        ca->budget = cli_fail;
        srv_fail = cli_fail = -1;
    }
    if (minimal) { /* malloc and free only: the rest falls back on them */
        smem.calloc = cmem.calloc = NULL;
        smem.realloc = cmem.realloc = NULL;
    }
    sa->fail_at = srv_fail; /* (no other thread uses them yet) */
    ca->fail_at = cli_fail;
    memset(o, 0, sizeof(*o));

    orpc_server *srv = NULL;
    orpc_channel *ch = NULL;
    orpc_client *cl = NULL;
    async_done d;
    memset(&d, 0, sizeof(d));
    orpc_server_opts so = {
        .plaintext = 1, .io_threads = 1, .worker_threads = 1, .log = quiet};
    int rc = orpc_server_new(&srv, &so, &smem, NULL);
    o->srv_rc = rc;
    if (rc == 0)
        rc =
            grpc__testing__test_service__server__register(srv, &handlers, NULL);
    int port = 0;
    if (rc == 0)
        assert_int_equal(orpc_server_listen(srv, "127.0.0.1:0", &port, NULL),
                         0);
    if (rc == 0)
        rc = orpc_server_start(srv);
    if (rc != 0) {
        assert_int_equal(rc, ORPC_ENOMEM);
        o->srv_rc = rc;
        goto out;
    }

    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    orpc_channel_opts co = {.plaintext = 1, .log = quiet};
    rc = orpc_channel_new(&ch, target, &co, &cmem, NULL);
    if (rc == 0)
        rc = orpc_client_new(&cl, &grpc__testing__test_service__orpc_desc, ch,
                             &cmem, NULL);
    o->ch_rc = rc;
    if (rc != 0) {
        assert_int_equal(rc, ORPC_ENOMEM);
        goto out;
    }

    run_unary(cl, o, where);

    uv_mutex_init(&d.lock);
    rc = start_async(cl, &d);
    if (rc == 0) {
        /* bounded: the call's deadline ends it long before */
        for (int i = 0; i < 60000 && done_calls(&d) == 0; i++)
            usleep(1000);
        assert_int_equal(done_calls(&d), 1);
        uv_mutex_lock(&d.lock);
        o->ran[1] = 1;
        o->codes[1] = d.code;
        snprintf(o->msgs[1], sizeof(o->msgs[1]), "%s", d.msg);
        orpc_code code = d.code;
        int payload_ok = d.payload_ok;
        uv_mutex_unlock(&d.lock);
        check_code(code, o->msgs[1], "async unary call", where);
        if (code == ORPC_OK)
            assert_true(payload_ok);
    } else {
        assert_int_equal(rc, ORPC_ENOMEM);
        uv_mutex_destroy(&d.lock);
    }

    run_bidi(cl, o, where);

out:
    orpc_client_free(cl);
    orpc_channel_unref(ch);
    orpc_server_free(srv);
    if (o->ran[1]) {
        assert_int_equal(done_calls(&d), 1); /* exactly once */
        uv_mutex_destroy(&d.lock);
    }
    /* Everything either side allocated is back. */
    test_alloc s = ta_snapshot(sa), c = ta_snapshot(ca);
    if (s.live != 0 || c.live != 0)
        fail_msg("%s: %zu server and %zu client blocks (%zu and %zu "
                 "bytes) not freed",
                 where, s.live, c.live, s.live_bytes, c.live_bytes);
}

static void scenario(test_alloc *sa, long srv_fail, test_alloc *ca,
                     long cli_fail, fail_mode mode, outcome *o)
{
    scenario_hooks(sa, srv_fail, ca, cli_fail, mode, 0, o);
}

/* ---- tests ---- */

static test_alloc g_sa, g_ca;
static size_t g_srv_count, g_cli_count; /* allocations of a clean run */

/* The clean run: every call OK, and the counts the sweeps cover. */
static void test_clean_run(void **state)
{
    (void)state;
    outcome o;
    scenario(&g_sa, -1, &g_ca, -1, FAIL_ONE, &o);
    assert_int_equal(o.srv_rc, 0);
    assert_int_equal(o.ch_rc, 0);
    for (int i = 0; i < 3; i++) {
        assert_true(o.ran[i]);
        assert_int_equal(o.codes[i], ORPC_OK);
    }
    test_alloc s = ta_snapshot(&g_sa), c = ta_snapshot(&g_ca);
    assert_int_equal(s.failures, 0);
    assert_int_equal(c.failures, 0);
    g_srv_count = s.attempts;
    g_cli_count = c.attempts;
    print_message("clean run: %zu server allocations (peak %zu bytes), "
                  "%zu client allocations (peak %zu bytes)\n",
                  s.attempts, s.peak_bytes, c.attempts, c.peak_bytes);
}

/* Hooks with malloc and free only (mem.h's fallbacks; nghttp2 grows some
 * blocks, which such hooks cannot move without knowing their size): the
 * scenario works and frees everything. */
static void test_malloc_free_only(void **state)
{
    (void)state;
    test_alloc sa, ca;
    outcome o;
    scenario_hooks(&sa, -1, &ca, -1, FAIL_ONE, 1, &o);
    assert_int_equal(o.srv_rc, 0);
    assert_int_equal(o.ch_rc, 0);
    for (int i = 0; i < 3; i++) {
        assert_true(o.ran[i]);
        assert_int_equal(o.codes[i], ORPC_OK);
    }
    assert_true(ta_snapshot(&sa).attempts > 0);
    assert_true(ta_snapshot(&ca).attempts > 0);
}

/* nghttp2 allocates through the hooks: connecting (nothing else happens:
 * no call) costs each side a connection of orpc's and an nghttp2 session
 * (the session, its header tables, frame buffer, the queued SETTINGS...). */
static void test_sessions_use_the_hooks(void **state)
{
    (void)state;
    test_alloc sa, ca;
    orpc_mem smem = ta_mem(&sa, -1), cmem = ta_mem(&ca, -1);
    orpc_server *srv = NULL;
    orpc_channel *ch = NULL;
    orpc_server_opts so = {.plaintext = 1, .io_threads = 1, .log = quiet};
    assert_int_equal(orpc_server_new(&srv, &so, &smem, NULL), 0);
    assert_int_equal(
        grpc__testing__test_service__server__register(srv, &handlers, NULL), 0);
    int port = 0;
    assert_int_equal(orpc_server_listen(srv, "127.0.0.1:0", &port, NULL), 0);
    assert_int_equal(orpc_server_start(srv), 0);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    orpc_channel_opts co = {.plaintext = 1, .log = quiet};
    assert_int_equal(orpc_channel_new(&ch, target, &co, &cmem, NULL), 0);
    test_alloc s0 = ta_snapshot(&sa), c0 = ta_snapshot(&ca);
    orpc_channel_state st = orpc_channel_get_state(ch, 1);
    for (int i = 0; i < 10000 && st != ORPC_CHANNEL_READY; i++) {
        usleep(1000);
        st = orpc_channel_get_state(ch, 0);
    }
    assert_int_equal(st, ORPC_CHANNEL_READY);
    /* the server made its session before the client saw its SETTINGS;
     * let what it does on the client's SETTINGS finish too (its count
     * settles), so that the numbers printed mean the same run to run */
    test_alloc s1 = ta_snapshot(&sa);
    for (int i = 0, same = 0; i < 2000 && same < 50; i++) {
        usleep(1000);
        test_alloc now = ta_snapshot(&sa);
        same = now.attempts == s1.attempts ? same + 1 : 0;
        s1 = now;
    }
    test_alloc c1 = ta_snapshot(&ca);
    size_t ds = s1.attempts - s0.attempts, dc = c1.attempts - c0.attempts;
    print_message("connecting: %zu server and %zu client allocations\n", ds,
                  dc);
    /* orpc's own are 3 or 4 a side (connection, its owner's record, a
     * timer, the output buffer): the rest are nghttp2's */
    assert_true(ds >= 10);
    assert_true(dc >= 10);
    orpc_channel_unref(ch);
    orpc_server_free(srv);
    assert_int_equal(ta_snapshot(&sa).live, 0);
    assert_int_equal(ta_snapshot(&ca).live, 0);
}

/* Failing indices of one side: every one up to the side's share of the
 * runs, then a stride that spreads the rest of the share over what is
 * left.  ORPC_MEM_TEST_ONLY=k runs index k alone, ORPC_MEM_TEST_VERBOSE=1
 * prints each failed call and the objects' logs (for debugging). */
static void sweep(int server_side, fail_mode mode, size_t count, size_t share)
{
    static const char *const names[3] = {"unary", "async", "bidi"};
    const char *side = server_side ? "server" : "client";
    size_t runs = 0, failed_calls = 0, enomem = 0;
    size_t per_code[ORPC_CODE_COUNT] = {0};
    size_t dense = count <= share ? count : share / 2;
    size_t stride = 1;
    if (count > dense) {
        size_t left = count - dense, budget = share - dense;
        stride = (left + budget - 1) / budget;
    }
    /* a little past the clean count: a failing run may allocate more (a
     * status message, a second connection) than the clean one */
    size_t end = count + count / 8 + 4;
    const char *only = getenv("ORPC_MEM_TEST_ONLY");
    size_t first = only ? (size_t)strtoul(only, NULL, 10) : 0;
    if (only)
        end = first + 1;
    for (size_t k = first; k < end; k += k < dense ? 1 : stride) {
        test_alloc sa, ca;
        outcome o;
        scenario(&sa, server_side ? (long)k : -1, &ca,
                 server_side ? -1 : (long)k, mode, &o);
        runs++;
        if (o.srv_rc != 0 || o.ch_rc != 0)
            enomem++;
        for (int i = 0; i < 3; i++) {
            if (!o.ran[i])
                continue;
            per_code[o.codes[i]]++;
            failed_calls += o.codes[i] != ORPC_OK;
            if (getenv("ORPC_MEM_TEST_VERBOSE") && o.codes[i] != ORPC_OK)
                print_message("%s %zu: %s %s: %s\n", side, k, names[i],
                              orpc_code_name(o.codes[i]), o.msgs[i]);
        }
    }
    print_message("%s side, %s: %zu runs (%zu allocations in a clean run), "
                  "%zu constructors said ORPC_ENOMEM, %zu calls failed "
                  "(%zu RESOURCE_EXHAUSTED, %zu INTERNAL, %zu "
                  "UNAVAILABLE)\n",
                  side,
                  mode == FAIL_ONE ? "one allocation failing"
                                   : "every allocation failing from one on",
                  runs, count, enomem, failed_calls,
                  per_code[ORPC_RESOURCE_EXHAUSTED], per_code[ORPC_INTERNAL],
                  per_code[ORPC_UNAVAILABLE]);
}

/* This side's share of MAX_RUNS (ORPC_MEM_TEST_MAX_RUNS overrides it). */
static size_t share_of(size_t count)
{
    const char *e = getenv("ORPC_MEM_TEST_MAX_RUNS");
    long cap = e ? strtol(e, NULL, 10) : 0;
    size_t total = g_cli_count + g_srv_count;
    size_t c = cap > 0 ? (size_t)cap : MAX_RUNS;
    size_t share = total <= c ? count : c * count / total;
    return share > 1 ? share : 2;
}

/* The k-th allocation of the client's side fails, for each k. */
static void test_client_failures(void **state)
{
    (void)state;
    assert_true(g_cli_count > 0);
    sweep(0, FAIL_ONE, g_cli_count, share_of(g_cli_count));
}

/* The k-th allocation of the server's side fails, for each k. */
static void test_server_failures(void **state)
{
    (void)state;
    assert_true(g_srv_count > 0);
    sweep(1, FAIL_ONE, g_srv_count, share_of(g_srv_count));
}

/* The client's memory runs out at its k-th allocation and stays out
 * until the objects are freed: still no hang, no leak. */
static void test_client_exhaustion(void **state)
{
    (void)state;
    assert_true(g_cli_count > 0);
    sweep(0, FAIL_FROM, g_cli_count, share_of(g_cli_count));
}

/* The same on the server's side. */
static void test_server_exhaustion(void **state)
{
    (void)state;
    assert_true(g_srv_count > 0);
    sweep(1, FAIL_FROM, g_srv_count, share_of(g_srv_count));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_run),
        cmocka_unit_test(test_sessions_use_the_hooks),
        cmocka_unit_test(test_malloc_free_only),
        cmocka_unit_test(test_client_failures),
        cmocka_unit_test(test_server_failures),
        cmocka_unit_test(test_client_exhaustion),
        cmocka_unit_test(test_server_exhaustion),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
