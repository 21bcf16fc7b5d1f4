/*
 * rpc_health_test.c — the built-in health service (grpc.health.v1.Health)
 * on loopback: Check for "", a registered service and an unknown one;
 * orpc_server_set_health() before and after start; Watch's first status,
 * its changes and several watchers at once; the watcher bound; shutdown
 * telling watchers NOT_SERVING before the GOAWAY (through the client API,
 * and frame by frame with a raw HTTP/2 peer); disable_health and a service
 * of the application's own replacing it.
 *
 * Every wait is bounded: calls carry deadlines, polls a count.  No
 * assertion is about a duration.
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

#include "grpc/health/v1/health.orpc.h"
#include "grpc/testing/test.orpc.h"
#include "h2peer.h"

typedef Grpc__Health__V1__HealthCheckRequest HealthReq;
typedef Grpc__Health__V1__HealthCheckResponse HealthResp;
typedef Grpc__Health__V1__Health_Watch_Reader Watch;

#define TEST_SERVICE "grpc.testing.TestService"
#define CALL_MS 10000 /* a call's deadline: only a hang reaches it */

/* ---- a server with one blocking service ---- */

static orpc_status empty_call(orpc_ctx *ctx, const Grpc__Testing__Empty *req,
                              Grpc__Testing__Empty *resp, void *ud)
{
    (void)ctx;
    (void)req;
    (void)resp;
    (void)ud;
    return ORPC_STATUS_OK;
}

static const Grpc__Testing__TestService_Handlers test_handlers = {
    .empty_call = empty_call,
};

typedef struct fx {
    orpc_server *srv;
    int port;
    orpc_channel *ch;
    orpc_client *cl;
} fx;

/* A server from |o| (plaintext added), TestService registered unless
 * |bare|, |before| run before it starts; and a client of its health
 * service. */
static void fx_open(fx *f, orpc_server_opts o, int bare,
                    void (*before)(orpc_server *))
{
    memset(f, 0, sizeof(*f));
    o.plaintext = 1;
    assert_int_equal(orpc_server_new(&f->srv, &o, NULL, NULL), 0);
    if (!bare)
        assert_int_equal(grpc__testing__test_service__server__register(
                             f->srv, &test_handlers, NULL),
                         0);
    assert_int_equal(orpc_server_listen(f->srv, "127.0.0.1:0", &f->port, NULL),
                     0);
    if (before)
        before(f->srv);
    assert_int_equal(orpc_server_start(f->srv), 0);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", f->port);
    orpc_channel_opts co = {.plaintext = 1};
    assert_int_equal(orpc_channel_new(&f->ch, target, &co, NULL, NULL), 0);
    assert_int_equal(orpc_client_new(&f->cl,
                                     &grpc__health__v1__health__orpc_desc,
                                     f->ch, NULL, NULL),
                     0);
}

static void fx_close(fx *f)
{
    orpc_client_free(f->cl);
    orpc_channel_unref(f->ch);
    orpc_server_shutdown(f->srv, 2000); /* ORPC_ESTATE-free: started */
    orpc_server_wait(f->srv);
    orpc_server_free(f->srv);
}

/* Check(|name|): the call's code; the status in |*st| when OK. */
static orpc_code check(orpc_client *cl, const char *name, int *st)
{
    HealthReq req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    req.service = (char *)name;
    HealthResp *resp = NULL;
    orpc_call_opts o = {.timeout_ms = CALL_MS};
    orpc_status s =
        grpc__health__v1__health__client__check(cl, &req, &resp, &o);
    orpc_code code = s.code;
    *st = -1;
    if (code == ORPC_OK) {
        *st = (int)resp->status;
        grpc__health__v1__health_check_response__free_unpacked(resp, NULL);
    }
    orpc_status_clear(&s);
    return code;
}

static int check_ok(orpc_client *cl, const char *name)
{
    int st;
    assert_int_equal(check(cl, name, &st), ORPC_OK);
    return st;
}

static Watch *watch_start(orpc_client *cl, const char *name)
{
    HealthReq req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    req.service = (char *)name;
    Watch *w = NULL;
    orpc_call_opts o = {.timeout_ms = 3 * CALL_MS};
    assert_int_equal(grpc__health__v1__health__client__watch(cl, &req, &o, &w),
                     0);
    return w;
}

/* The next status a watch receives, or -1 when its stream ended. */
static int watch_next(Watch *w)
{
    HealthResp *resp = NULL;
    int rc = grpc__health__v1__health__client__watch__recv(w, &resp);
    if (rc != 1)
        return -1;
    int st = (int)resp->status;
    grpc__health__v1__health_check_response__free_unpacked(resp, NULL);
    return st;
}

/* Ends a watch: its status code (message in |msg| when given). */
static orpc_code watch_end(Watch *w, int cancel, char *msg, size_t len)
{
    if (cancel)
        grpc__health__v1__health__client__watch__cancel(w);
    orpc_status s = grpc__health__v1__health__client__watch__finish(w);
    if (msg)
        snprintf(msg, len, "%s", s.message ? s.message : "");
    orpc_code c = s.code;
    orpc_status_clear(&s);
    return c;
}

/* ====================================================================== */
/* Check and set_health                                                    */
/* ====================================================================== */

static void test_check(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, (orpc_server_opts){.io_threads = 2}, 0, NULL);
    assert_int_equal(check_ok(f.cl, ""), ORPC_HEALTH_SERVING);
    assert_int_equal(check_ok(f.cl, TEST_SERVICE), ORPC_HEALTH_SERVING);
    int st;
    assert_int_equal(check(f.cl, "no.such.Service", &st), ORPC_NOT_FOUND);
    fx_close(&f);
}

static void test_set_health(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, (orpc_server_opts){0}, 0, NULL);
    assert_int_equal(
        orpc_server_set_health(f.srv, TEST_SERVICE, ORPC_HEALTH_NOT_SERVING),
        0);
    assert_int_equal(check_ok(f.cl, TEST_SERVICE), ORPC_HEALTH_NOT_SERVING);
    assert_int_equal(check_ok(f.cl, ""), ORPC_HEALTH_SERVING);
    assert_int_equal(orpc_server_set_health(f.srv, "", ORPC_HEALTH_NOT_SERVING),
                     0);
    assert_int_equal(check_ok(f.cl, ""), ORPC_HEALTH_NOT_SERVING);
    /* any name, registered or not; SERVICE_UNKNOWN forgets it */
    assert_int_equal(
        orpc_server_set_health(f.srv, "app.Logical", ORPC_HEALTH_UNKNOWN), 0);
    assert_int_equal(check_ok(f.cl, "app.Logical"), ORPC_HEALTH_UNKNOWN);
    assert_int_equal(
        orpc_server_set_health(f.srv, "app.Logical", ORPC_HEALTH_SERVING), 0);
    assert_int_equal(check_ok(f.cl, "app.Logical"), ORPC_HEALTH_SERVING);
    assert_int_equal(orpc_server_set_health(f.srv, "app.Logical",
                                            ORPC_HEALTH_SERVICE_UNKNOWN),
                     0);
    int st;
    assert_int_equal(check(f.cl, "app.Logical", &st), ORPC_NOT_FOUND);
    assert_int_equal(orpc_server_set_health(f.srv, "never.Seen",
                                            ORPC_HEALTH_SERVICE_UNKNOWN),
                     0);
    /* misuse */
    assert_int_equal(orpc_server_set_health(NULL, "", ORPC_HEALTH_SERVING),
                     ORPC_EINVAL);
    assert_int_equal(orpc_server_set_health(f.srv, NULL, ORPC_HEALTH_SERVING),
                     ORPC_EINVAL);
    assert_int_equal(orpc_server_set_health(f.srv, "", (orpc_health_status)4),
                     ORPC_EINVAL);
    assert_int_equal(orpc_server_set_health(f.srv, "", (orpc_health_status)-1),
                     ORPC_EINVAL);
    fx_close(&f);
}

static void warming_up(orpc_server *srv)
{
    assert_int_equal(
        orpc_server_set_health(srv, TEST_SERVICE, ORPC_HEALTH_NOT_SERVING), 0);
}

/* A status set before orpc_server_start() is kept; the rest start
 * SERVING.  A server with no service of its own still answers. */
static void test_set_before_start(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, (orpc_server_opts){0}, 0, warming_up);
    assert_int_equal(check_ok(f.cl, TEST_SERVICE), ORPC_HEALTH_NOT_SERVING);
    assert_int_equal(check_ok(f.cl, ""), ORPC_HEALTH_SERVING);
    fx_close(&f);

    fx_open(&f, (orpc_server_opts){0}, 1, NULL); /* health only */
    assert_int_equal(check_ok(f.cl, ""), ORPC_HEALTH_SERVING);
    int st;
    assert_int_equal(check(f.cl, TEST_SERVICE, &st), ORPC_NOT_FOUND);
    fx_close(&f);
}

/* ====================================================================== */
/* Watch                                                                   */
/* ====================================================================== */

static void test_watch_changes(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, (orpc_server_opts){0}, 0, NULL);
    Watch *w = watch_start(f.cl, TEST_SERVICE);
    assert_int_equal(watch_next(w), ORPC_HEALTH_SERVING);
    assert_int_equal(
        orpc_server_set_health(f.srv, TEST_SERVICE, ORPC_HEALTH_NOT_SERVING),
        0);
    assert_int_equal(watch_next(w), ORPC_HEALTH_NOT_SERVING);
    /* another service's change, and setting the same status again, send
     * nothing: the next message is the next change of this one */
    assert_int_equal(orpc_server_set_health(f.srv, "", ORPC_HEALTH_NOT_SERVING),
                     0);
    assert_int_equal(
        orpc_server_set_health(f.srv, TEST_SERVICE, ORPC_HEALTH_NOT_SERVING),
        0);
    assert_int_equal(
        orpc_server_set_health(f.srv, TEST_SERVICE, ORPC_HEALTH_SERVING), 0);
    assert_int_equal(watch_next(w), ORPC_HEALTH_SERVING);
    assert_int_equal(watch_end(w, 1, NULL, 0), ORPC_CANCELLED);

    /* an unknown service streams SERVICE_UNKNOWN, then its status once it
     * has one, then SERVICE_UNKNOWN again when forgotten */
    w = watch_start(f.cl, "later.Service");
    assert_int_equal(watch_next(w), ORPC_HEALTH_SERVICE_UNKNOWN);
    assert_int_equal(
        orpc_server_set_health(f.srv, "later.Service", ORPC_HEALTH_SERVING), 0);
    assert_int_equal(watch_next(w), ORPC_HEALTH_SERVING);
    assert_int_equal(orpc_server_set_health(f.srv, "later.Service",
                                            ORPC_HEALTH_SERVICE_UNKNOWN),
                     0);
    assert_int_equal(watch_next(w), ORPC_HEALTH_SERVICE_UNKNOWN);
    assert_int_equal(watch_end(w, 1, NULL, 0), ORPC_CANCELLED);
    fx_close(&f);
}

#define N_WATCHERS 6

/* Several watchers over two connections (and both IO threads) all see the
 * first status and every change. */
static void test_many_watchers(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, (orpc_server_opts){.io_threads = 2}, 0, NULL);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", f.port);
    orpc_channel *ch2;
    orpc_client *cl2;
    orpc_channel_opts co = {.plaintext = 1};
    assert_int_equal(orpc_channel_new(&ch2, target, &co, NULL, NULL), 0);
    assert_int_equal(orpc_client_new(&cl2, &grpc__health__v1__health__orpc_desc,
                                     ch2, NULL, NULL),
                     0);
    Watch *w[N_WATCHERS];
    for (int i = 0; i < N_WATCHERS; i++) {
        w[i] = watch_start(i % 2 ? cl2 : f.cl, "");
        assert_int_equal(watch_next(w[i]), ORPC_HEALTH_SERVING);
    }
    assert_int_equal(orpc_server_set_health(f.srv, "", ORPC_HEALTH_NOT_SERVING),
                     0);
    for (int i = 0; i < N_WATCHERS; i++)
        assert_int_equal(watch_next(w[i]), ORPC_HEALTH_NOT_SERVING);
    assert_int_equal(orpc_server_set_health(f.srv, "", ORPC_HEALTH_SERVING), 0);
    for (int i = 0; i < N_WATCHERS; i++)
        assert_int_equal(watch_next(w[i]), ORPC_HEALTH_SERVING);
    for (int i = 0; i < N_WATCHERS; i++)
        assert_int_equal(watch_end(w[i], 1, NULL, 0), ORPC_CANCELLED);
    orpc_client_free(cl2);
    orpc_channel_unref(ch2);
    fx_close(&f);
}

/* ---- a thread flipping a status while watchers read ---- */

typedef struct flipper {
    orpc_server *srv;
    int rounds;
    int failures;
} flipper;

static void flip(void *arg)
{
    flipper *fl = arg;
    for (int i = 0; i < fl->rounds; i++) {
        orpc_health_status s =
            i % 2 ? ORPC_HEALTH_SERVING : ORPC_HEALTH_NOT_SERVING;
        if (orpc_server_set_health(fl->srv, TEST_SERVICE, s) != 0)
            fl->failures++;
        if (i % 16 == 0)
            usleep(1000);
    }
    /* ends on a status no flip uses */
    if (orpc_server_set_health(fl->srv, TEST_SERVICE, ORPC_HEALTH_UNKNOWN) != 0)
        fl->failures++;
}

/* Changes faster than watchers read coalesce: a watcher sees statuses that
 * alternate (never the same one twice in a row: a later change may
 * replace one it has not taken yet, but nothing is repeated) and always
 * the last one. */
static void test_watch_coalesces(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, (orpc_server_opts){.io_threads = 2}, 0, NULL);
    Watch *w[3];
    for (int i = 0; i < 3; i++) {
        w[i] = watch_start(f.cl, TEST_SERVICE);
        assert_int_equal(watch_next(w[i]), ORPC_HEALTH_SERVING);
    }
    flipper fl = {.srv = f.srv, .rounds = 400};
    uv_thread_t t;
    assert_int_equal(uv_thread_create(&t, flip, &fl), 0);
    int last[3] = {ORPC_HEALTH_SERVING, ORPC_HEALTH_SERVING,
                   ORPC_HEALTH_SERVING};
    for (int i = 0; i < 3; i++) {
        /* at most one message per change, so bounded */
        for (int n = 0; n <= fl.rounds + 1 && last[i] != ORPC_HEALTH_UNKNOWN;
             n++) {
            int st = watch_next(w[i]);
            assert_true(st == ORPC_HEALTH_SERVING ||
                        st == ORPC_HEALTH_NOT_SERVING ||
                        st == ORPC_HEALTH_UNKNOWN);
            assert_int_not_equal(st, last[i]);
            last[i] = st;
        }
        assert_int_equal(last[i], ORPC_HEALTH_UNKNOWN);
    }
    uv_thread_join(&t);
    assert_int_equal(fl.failures, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(watch_end(w[i], 1, NULL, 0), ORPC_CANCELLED);
    fx_close(&f);
}

/* Past max_health_watchers a Watch ends RESOURCE_EXHAUSTED; a cancelled
 * watch gives its place back. */
static void test_watcher_bound(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, (orpc_server_opts){.max_health_watchers = 2}, 0, NULL);
    Watch *a = watch_start(f.cl, "");
    Watch *b = watch_start(f.cl, TEST_SERVICE);
    assert_int_equal(watch_next(a), ORPC_HEALTH_SERVING);
    assert_int_equal(watch_next(b), ORPC_HEALTH_SERVING);
    char msg[200];
    Watch *c = watch_start(f.cl, "");
    assert_int_equal(watch_next(c), -1);
    assert_int_equal(watch_end(c, 0, msg, sizeof(msg)),
                     ORPC_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(msg, "max_health_watchers"));
    /* Check is no watcher */
    assert_int_equal(check_ok(f.cl, ""), ORPC_HEALTH_SERVING);
    assert_int_equal(watch_end(a, 1, NULL, 0), ORPC_CANCELLED);
    /* the server learns of the cancellation in its own time */
    int got = -1;
    for (int i = 0; i < 200 && got != ORPC_HEALTH_SERVING; i++) {
        c = watch_start(f.cl, "");
        got = watch_next(c);
        if (got != ORPC_HEALTH_SERVING) {
            assert_int_equal(watch_end(c, 0, NULL, 0), ORPC_RESOURCE_EXHAUSTED);
            usleep(10000);
        }
    }
    assert_int_equal(got, ORPC_HEALTH_SERVING);
    assert_int_equal(watch_end(c, 1, NULL, 0), ORPC_CANCELLED);
    assert_int_equal(watch_end(b, 1, NULL, 0), ORPC_CANCELLED);
    fx_close(&f);
}

/* ====================================================================== */
/* shutdown                                                                */
/* ====================================================================== */

/* The client sees NOT_SERVING, then the watch ending UNAVAILABLE, then new
 * calls refused; the server's shutdown does not wait out the grace period
 * for the watch.  set_health is refused from then on. */
static void test_shutdown_tells_watchers(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, (orpc_server_opts){.io_threads = 2}, 0, NULL);
    Watch *w1 = watch_start(f.cl, "");
    Watch *w2 = watch_start(f.cl, TEST_SERVICE);
    Watch *w3 = watch_start(f.cl, "unknown.Service");
    assert_int_equal(watch_next(w1), ORPC_HEALTH_SERVING);
    assert_int_equal(watch_next(w2), ORPC_HEALTH_SERVING);
    assert_int_equal(watch_next(w3), ORPC_HEALTH_SERVICE_UNKNOWN);

    assert_int_equal(orpc_server_shutdown(f.srv, 20000), 0);
    assert_int_equal(watch_next(w1), ORPC_HEALTH_NOT_SERVING);
    assert_int_equal(watch_next(w2), ORPC_HEALTH_NOT_SERVING);
    char msg[200];
    assert_int_equal(watch_next(w1), -1);
    assert_int_equal(watch_end(w1, 0, msg, sizeof(msg)), ORPC_UNAVAILABLE);
    assert_non_null(strstr(msg, "shutting down"));
    assert_int_equal(watch_next(w2), -1);
    assert_int_equal(watch_end(w2, 0, NULL, 0), ORPC_UNAVAILABLE);
    /* nothing to tell an unknown service's watcher but the end */
    assert_int_equal(watch_next(w3), -1);
    assert_int_equal(watch_end(w3, 0, NULL, 0), ORPC_UNAVAILABLE);
    /* after the GOAWAY, with the listener closed, a new call is refused */
    int st;
    assert_int_equal(check(f.cl, "", &st), ORPC_UNAVAILABLE);
    assert_int_equal(orpc_server_set_health(f.srv, "", ORPC_HEALTH_SERVING),
                     ORPC_ESTATE);
    /* with its watches over, the connection drains and the server stops
     * (with a 20 s grace a hang would show as the test's timeout) */
    assert_int_equal(orpc_server_wait(f.srv), 0);
    orpc_client_free(f.cl);
    orpc_channel_unref(f.ch);
    orpc_server_free(f.srv);
}

/* One gRPC message of a HealthCheckResponse in a DATA payload: its status,
 * or -1. */
static int data_status(const h2p_frame *fr)
{
    if (fr->len < 5 || fr->payload[0] != 0)
        return -1;
    uint32_t len = (uint32_t)fr->payload[1] << 24 |
                   (uint32_t)fr->payload[2] << 16 |
                   (uint32_t)fr->payload[3] << 8 | fr->payload[4];
    if (len + 5 != fr->len)
        return -1;
    HealthResp *r = grpc__health__v1__health_check_response__unpack(
        NULL, len, fr->payload + 5);
    if (r == NULL)
        return -1;
    int st = (int)r->status;
    grpc__health__v1__health_check_response__free_unpacked(r, NULL);
    return st;
}

/* On the wire: each watch stream's NOT_SERVING DATA and its trailers come
 * before the connection's GOAWAY. */
static void test_shutdown_frame_order(void **state)
{
    (void)state;
    orpc_server *srv;
    int port;
    orpc_server_opts o = {.plaintext = 1, .io_threads = 1};
    assert_int_equal(orpc_server_new(&srv, &o, NULL, NULL), 0);
    assert_int_equal(orpc_server_listen(srv, "127.0.0.1:0", &port, NULL), 0);
    assert_int_equal(orpc_server_start(srv), 0);
    h2p *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    assert_int_equal(h2p_dial(p, port), 0);
    uint8_t empty[5];
    h2p_prefix(empty, 0); /* HealthCheckRequest{service: ""} */
    for (uint32_t id = 1; id <= 3; id += 2) {
        assert_int_equal(h2p_request(p, id, "/grpc.health.v1.Health/Watch", 0),
                         0);
        assert_int_equal(h2p_data(p, id, empty, 5, 1), 0);
    }
    /* the first status of both */
    int serving = 0;
    h2p_frame fr;
    for (int i = 0; i < 50 && serving < 2; i++) {
        int t = h2p_read_frame(p, 5000, &fr);
        assert_true(t >= 0);
        if (t == H2P_DATA && data_status(&fr) == ORPC_HEALTH_SERVING)
            serving++;
    }
    assert_int_equal(serving, 2);

    assert_int_equal(orpc_server_shutdown(srv, 5000), 0);
    int not_serving = 0, trailers = 0, goaway = 0, ok = 1;
    for (int i = 0; i < 50 && !goaway; i++) {
        int t = h2p_read_frame(p, 5000, &fr);
        if (t < 0)
            break;
        if (t == H2P_DATA && data_status(&fr) == ORPC_HEALTH_NOT_SERVING)
            not_serving++;
        else if (t == H2P_HEADERS) {
            h2p_head h;
            assert_int_equal(h2p_decode(p, fr.payload, fr.len, &h), 0);
            if (h.grpc_status == ORPC_UNAVAILABLE)
                trailers++;
            else
                ok = 0;
        } else if (t == H2P_GOAWAY) {
            goaway = 1;
        } else if (t == H2P_RST) {
            ok = 0;
        }
    }
    assert_int_equal(not_serving, 2); /* both, before the GOAWAY */
    assert_int_equal(trailers, 2);
    assert_true(goaway);
    assert_true(ok);
    h2p_close(p);
    free(p);
    assert_int_equal(orpc_server_wait(srv), 0);
    orpc_server_free(srv);
}

/* ====================================================================== */
/* turned off, or replaced                                                 */
/* ====================================================================== */

static void test_disabled(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, (orpc_server_opts){.disable_health = 1}, 0, NULL);
    int st;
    assert_int_equal(check(f.cl, "", &st), ORPC_UNIMPLEMENTED);
    Watch *w = watch_start(f.cl, "");
    assert_int_equal(watch_next(w), -1);
    assert_int_equal(watch_end(w, 0, NULL, 0), ORPC_UNIMPLEMENTED);
    assert_int_equal(orpc_server_set_health(f.srv, "", ORPC_HEALTH_SERVING),
                     ORPC_ENOTSUP);
    fx_close(&f);
}

static orpc_status own_check(orpc_ctx *ctx, const HealthReq *req,
                             HealthResp *resp, void *ud)
{
    (void)ctx;
    (void)req;
    (void)ud;
    resp->status =
        GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    return ORPC_STATUS_OK;
}

static const Grpc__Health__V1__Health_Handlers own_handlers = {
    .check = own_check,
};

static void register_own(orpc_server *srv)
{
    assert_int_equal(
        grpc__health__v1__health__server__register(srv, &own_handlers, NULL),
        0);
}

/* The application's own grpc.health.v1.Health wins over the built-in one. */
static void test_replaced(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, (orpc_server_opts){0}, 0, register_own);
    assert_int_equal(check_ok(f.cl, ""), ORPC_HEALTH_NOT_SERVING);
    int st;
    assert_int_equal(check(f.cl, "anything", &st), ORPC_OK);
    Watch *w = watch_start(f.cl, "");
    assert_int_equal(watch_next(w), -1);
    assert_int_equal(watch_end(w, 0, NULL, 0), ORPC_UNIMPLEMENTED);
    assert_int_equal(orpc_server_set_health(f.srv, "", ORPC_HEALTH_SERVING),
                     ORPC_ENOTSUP);
    fx_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_set_health),
        cmocka_unit_test(test_set_before_start),
        cmocka_unit_test(test_watch_changes),
        cmocka_unit_test(test_many_watchers),
        cmocka_unit_test(test_watch_coalesces),
        cmocka_unit_test(test_watcher_bound),
        cmocka_unit_test(test_shutdown_tells_watchers),
        cmocka_unit_test(test_shutdown_frame_order),
        cmocka_unit_test(test_disabled),
        cmocka_unit_test(test_replaced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
