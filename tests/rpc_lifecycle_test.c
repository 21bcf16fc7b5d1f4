/*
 * rpc_lifecycle_test.c — deadlines, cancellation and shutdown as the
 * handler and the caller see them, and streams beyond the peer's limit.
 *
 * The service's StreamingInputCall handler waits (bounded) until its call is
 * cancelled or a flag releases it, recording what it saw, so each test can
 * check both ends of one call.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include <orpc/orpc.h>

#include "grpc/testing/test.orpc.h"

static uv_mutex_t g_lock;
static int g_saw_cancel_flag;  /* handler saw orpc_ctx_is_cancelled() */
static int g_cancel_callbacks; /* orpc_ctx_on_cancel() fired */
static int g_handled;
static int g_sleep_ms = 0;      /* unary handler's work time */
static int g_wait_callback = 0; /* handler waits for the cancel callback
                                   instead of polling the flag */
static int g_running;           /* unary handlers at work now */
static int g_max_running;       /* the most that were at work at once */

static void bump(int *v)
{
    uv_mutex_lock(&g_lock);
    (*v)++;
    uv_mutex_unlock(&g_lock);
}

static int get(const int *v)
{
    uv_mutex_lock(&g_lock);
    int r = *v;
    uv_mutex_unlock(&g_lock);
    return r;
}

static orpc_ctx *g_current; /* the call whose handler waits (g_lock) */
static int g_current_cancelled;

/* Counts callbacks overall, and flags the waiting call's own cancellation
 * (a late callback of an earlier call must not wake a later handler). */
static void on_cancel(orpc_ctx *ctx, void *ud)
{
    (void)ud;
    uv_mutex_lock(&g_lock);
    g_cancel_callbacks++;
    if (ctx == g_current)
        g_current_cancelled = 1;
    uv_mutex_unlock(&g_lock);
}

static orpc_status unary_call(orpc_ctx *ctx,
                              const Grpc__Testing__SimpleRequest *req,
                              Grpc__Testing__SimpleResponse *resp, void *ud)
{
    (void)req;
    (void)resp;
    uv_mutex_lock(&g_lock);
    g_current = ctx;
    g_current_cancelled = 0;
    if (ud != NULL)
        (*(int *)ud)++; /* calls this server took */
    if (++g_running > g_max_running)
        g_max_running = g_running;
    uv_mutex_unlock(&g_lock);
    orpc_status st = ORPC_STATUS_OK;
    /* (cmocka's asserts belong to the test thread: count instead) */
    if (orpc_ctx_on_cancel(ctx, on_cancel, NULL) != 0) {
        st = orpc_status_new(ORPC_INTERNAL, "orpc_ctx_on_cancel failed");
        goto out;
    }
    int ms = get(&g_sleep_ms);
    int by_callback = get(&g_wait_callback);
    /* Work in small steps, giving up when the call is cancelled: told by
     * the callback, or by polling the flag. */
    for (int waited = 0; waited < ms; waited += 5) {
        if (by_callback ? get(&g_current_cancelled) > 0
                        : orpc_ctx_is_cancelled(ctx)) {
            if (orpc_ctx_is_cancelled(ctx))
                bump(&g_saw_cancel_flag);
            st = orpc_status_new(ORPC_CANCELLED, "gave up");
            goto out;
        }
        usleep(5000);
    }
    bump(&g_handled);
out:
    uv_mutex_lock(&g_lock);
    g_running--;
    uv_mutex_unlock(&g_lock);
    return st;
}

static const Grpc__Testing__TestService_Handlers handlers = {
    .unary_call = unary_call,
};

/* A server; the handler counts the calls it takes in |*served| (g_lock)
 * when that is not NULL. */
static orpc_server *start_counted(const char *addr, int *port,
                                  uint32_t max_streams, int *served)
{
    orpc_server *srv;
    /* reuse_port: test_goaway_moves_new_calls starts two on one port */
    orpc_server_opts o = {.plaintext = 1,
                          .io_threads = 1,
                          .max_concurrent_streams = max_streams,
                          .reuse_port = 1};
    assert_int_equal(orpc_server_new(&srv, &o, NULL, NULL), 0);
    assert_int_equal(
        grpc__testing__test_service__server__register(srv, &handlers, served),
        0);
    assert_int_equal(orpc_server_listen(srv, addr, port, NULL), 0);
    assert_int_equal(orpc_server_start(srv), 0);
    return srv;
}

static orpc_server *start(const char *addr, int *port, uint32_t max_streams)
{
    return start_counted(addr, port, max_streams, NULL);
}

static void reset(int sleep_ms)
{
    uv_mutex_lock(&g_lock);
    g_saw_cancel_flag = g_cancel_callbacks = g_handled = 0;
    g_max_running = g_running;
    g_wait_callback = 0;
    g_sleep_ms = sleep_ms;
    uv_mutex_unlock(&g_lock);
}

static void wait_for(const int *v, int want)
{
    for (int i = 0; i < 400 && get(v) < want; i++)
        usleep(5000);
}

typedef struct client {
    orpc_channel *ch;
    orpc_client *cl;
} client;

static void client_open_opts(client *c, int port, const orpc_channel_opts *co)
{
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    assert_int_equal(orpc_channel_new(&c->ch, target, co, NULL, NULL), 0);
    assert_int_equal(orpc_client_new(&c->cl,
                                     &grpc__testing__test_service__orpc_desc,
                                     c->ch, NULL, NULL),
                     0);
}

static void client_open(client *c, int port)
{
    orpc_channel_opts co = {.plaintext = 1};
    client_open_opts(c, port, &co);
}

static void client_close(client *c)
{
    orpc_client_free(c->cl);
    orpc_channel_unref(c->ch);
}

static orpc_code unary(client *c, int64_t timeout_ms)
{
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__SimpleResponse *resp = NULL;
    orpc_call_opts o = {.timeout_ms = timeout_ms};
    orpc_status st =
        grpc__testing__test_service__client__unary_call(c->cl, &req, &resp, &o);
    orpc_code code = st.code;
    grpc__testing__simple_response__free_unpacked(resp, NULL);
    orpc_status_clear(&st);
    return code;
}

static void stop(orpc_server *srv, int64_t grace)
{
    assert_int_equal(orpc_server_shutdown(srv, grace), 0);
    assert_int_equal(orpc_server_wait(srv), 0);
    orpc_server_free(srv);
}

/* Polls |ch|'s state (bounded: 5 s) until it is |want|. */
static orpc_channel_state wait_state(orpc_channel *ch, orpc_channel_state want)
{
    orpc_channel_state st = orpc_channel_get_state(ch, 0);
    for (int i = 0; i < 500 && st != want; i++) {
        usleep(10000);
        st = orpc_channel_get_state(ch, 0);
    }
    return st;
}

/* ---- tests ---- */

static void test_deadline_both_sides(void **state)
{
    (void)state;
    int port;
    reset(2000);
    orpc_server *srv = start("127.0.0.1:0", &port, 0);
    client c;
    client_open(&c, port);
    /* the handler polls orpc_ctx_is_cancelled() */
    assert_int_equal(unary(&c, 100), ORPC_DEADLINE_EXCEEDED);
    wait_for(&g_saw_cancel_flag, 1);
    assert_int_equal(get(&g_saw_cancel_flag), 1); /* the handler saw it */
    assert_int_equal(get(&g_handled), 0);
    /* the handler waits for its cancel callback alone */
    reset(2000);
    uv_mutex_lock(&g_lock);
    g_wait_callback = 1;
    uv_mutex_unlock(&g_lock);
    assert_int_equal(unary(&c, 100), ORPC_DEADLINE_EXCEEDED);
    wait_for(&g_saw_cancel_flag, 1);
    assert_int_equal(get(&g_cancel_callbacks), 1);
    assert_int_equal(get(&g_saw_cancel_flag), 1);
    assert_int_equal(get(&g_handled), 0);
    client_close(&c);
    stop(srv, 100);
}

typedef struct async_state {
    uv_mutex_t lock;
    int done;
    int ok;
    orpc_code last;
} async_state;

static void async_done(const orpc_status *st,
                       Grpc__Testing__SimpleResponse *resp, void *ud)
{
    async_state *a = ud;
    uv_mutex_lock(&a->lock);
    a->done++;
    a->last = st->code;
    if (st->code == ORPC_OK)
        a->ok++;
    uv_mutex_unlock(&a->lock);
    grpc__testing__simple_response__free_unpacked(resp, NULL);
}

static int async_count(async_state *a, int ok)
{
    uv_mutex_lock(&a->lock);
    int n = ok ? a->ok : a->done;
    uv_mutex_unlock(&a->lock);
    return n;
}

static void test_streams_beyond_limit_wait(void **state)
{
    (void)state;
    int port;
    reset(50);
    orpc_server *srv = start("127.0.0.1:0", &port, 2);
    client c;
    client_open(&c, port);
    async_state a = {.done = 0};
    uv_mutex_init(&a.lock);
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    for (int i = 0; i < 12; i++)
        assert_int_equal(grpc__testing__test_service__client__unary_call__async(
                             c.cl, &req, NULL, async_done, &a),
                         0);
    for (int i = 0; i < 600 && async_count(&a, 0) < 12; i++)
        usleep(5000);
    /* All twelve succeed ... */
    assert_int_equal(async_count(&a, 1), 12);
    /* ... though only two ran at once (the server's stream limit), and two
     * did: the limit, not a lack of parallelism, held the others back. */
    assert_int_equal(get(&g_max_running), 2);
    assert_int_equal(get(&g_handled), 12);
    client_close(&c);
    uv_mutex_destroy(&a.lock);
    stop(srv, 100);
}

static void test_shutdown_lets_calls_finish(void **state)
{
    (void)state;
    int port;
    reset(300);
    orpc_server *srv = start("127.0.0.1:0", &port, 0);
    client c;
    client_open(&c, port);
    async_state a = {.done = 0};
    uv_mutex_init(&a.lock);
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    assert_int_equal(grpc__testing__test_service__client__unary_call__async(
                         c.cl, &req, NULL, async_done, &a),
                     0);
    wait_for(&g_running, 1); /* the call is running */
    assert_int_equal(get(&g_running), 1);
    assert_int_equal(orpc_server_shutdown(srv, 5000), 0);
    assert_int_equal(orpc_server_wait(srv), 0);
    /* the client may still be reading the reply the server has sent */
    for (int i = 0; i < 1000 && async_count(&a, 0) < 1; i++)
        usleep(5000);
    assert_int_equal(async_count(&a, 1), 1); /* finished within the grace */
    orpc_server_free(srv);
    client_close(&c);
    uv_mutex_destroy(&a.lock);
}

static void test_shutdown_grace_cancels(void **state)
{
    (void)state;
    int port;
    reset(3000);
    orpc_server *srv = start("127.0.0.1:0", &port, 0);
    client c;
    client_open(&c, port);
    async_state a = {.done = 0};
    uv_mutex_init(&a.lock);
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    assert_int_equal(grpc__testing__test_service__client__unary_call__async(
                         c.cl, &req, NULL, async_done, &a),
                     0);
    wait_for(&g_running, 1); /* the call is running */
    assert_int_equal(get(&g_running), 1);
    assert_int_equal(orpc_server_shutdown(srv, 100), 0);
    assert_int_equal(orpc_server_wait(srv), 0);
    /* the grace period ended it: the 3 s handler would have answered OK */
    for (int i = 0; i < 400 && async_count(&a, 0) < 1; i++)
        usleep(5000);
    assert_int_equal(async_count(&a, 0), 1);
    assert_true(a.last == ORPC_UNAVAILABLE || a.last == ORPC_CANCELLED);
    wait_for(&g_saw_cancel_flag, 1);
    assert_true(get(&g_saw_cancel_flag) >= 1); /* the handler saw it */
    orpc_server_free(srv);
    client_close(&c);
    uv_mutex_destroy(&a.lock);
}

static void test_goaway_moves_new_calls(void **state)
{
    (void)state;
    int port, port2;
    int served_a = 0, served_b = 0; /* g_lock */
    reset(0);
    /* Two servers share one port (SO_REUSEPORT): when the first goes away
     * the channel's next call must reach the second on a new connection. */
    orpc_server *a_srv = start_counted("127.0.0.1:0", &port, 0, &served_a);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    orpc_server *b_srv = NULL;
    client c;
    client_open(&c, port);
    /* pin the channel's connection to server A before B exists */
    assert_int_equal(unary(&c, 5000), ORPC_OK);
    b_srv = start_counted(addr, &port2, 0, &served_b);
    assert_int_equal(port2, port);
    /* the call in flight works 3 s: A's connection stays open meanwhile,
     * so it is the GOAWAY, not a closed connection, that moves calls */
    uv_mutex_lock(&g_lock);
    g_sleep_ms = 3000;
    uv_mutex_unlock(&g_lock);
    async_state a = {.done = 0};
    uv_mutex_init(&a.lock);
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    assert_int_equal(grpc__testing__test_service__client__unary_call__async(
                         c.cl, &req, NULL, async_done, &a),
                     0);
    wait_for(&g_running, 1); /* the call is running on A */
    assert_int_equal(get(&g_running), 1);
    /* GOAWAY; the call in flight goes on */
    assert_int_equal(orpc_server_shutdown(a_srv, 5000), 0);
    /* the channel saw the GOAWAY: its connection stops taking calls */
    assert_int_equal(wait_state(c.ch, ORPC_CHANNEL_IDLE), ORPC_CHANNEL_IDLE);
    reset(0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(unary(&c, 5000), ORPC_OK); /* none fails */
    /* A took the first call and the one in flight, B the ten after, while
     * the one in flight was still at work on A */
    assert_int_equal(get(&served_a), 2);
    assert_int_equal(get(&served_b), 10);
    assert_int_equal(get(&g_running), 1);
    assert_int_equal(orpc_server_wait(a_srv), 0);
    for (int i = 0; i < 400 && async_count(&a, 0) < 1; i++)
        usleep(5000);
    if (async_count(&a, 1) != 1)
        fail_msg("the call in flight across GOAWAY ended %s",
                 async_count(&a, 0) ? orpc_code_name(a.last) : "(not yet)");
    orpc_server_free(a_srv);
    client_close(&c);
    uv_mutex_destroy(&a.lock);
    stop(b_srv, 100);
}

/* A loopback listener that accepts and at once closes every connection,
 * counting them: each connection attempt of a channel fails before the
 * server's SETTINGS. */
typedef struct slammer {
    int fd;
    int accepted; /* g_lock */
    int stop;     /* g_lock */
    uv_thread_t thread;
    int hold;    /* instead: answer with SETTINGS, then go silent */
    int held[8]; /* the silent connections, closed at the stop */
    int n_held;
    int write_failed; /* the SETTINGS write fell short (asserted at stop) */
} slammer;

static void slammer_main(void *arg)
{
    slammer *sl = arg;
    for (int i = 0; i < 2000 && !get(&sl->stop); i++) { /* <= 20 s */
        struct pollfd p = {.fd = sl->fd, .events = POLLIN};
        if (poll(&p, 1, 10) == 1) {
            int c = accept(sl->fd, NULL, NULL);
            if (c >= 0 && sl->hold && sl->n_held < 8) {
                /* an empty SETTINGS and an ACK of the client's: a server
                 * that then vanishes without closing (a half-open peer) */
                static const unsigned char settings[18] = {
                    0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0};
                /* (no cmocka assert on this thread: record, and
                 * slammer_stop() asserts on the test's thread) */
                if (write(c, settings, sizeof(settings)) !=
                    (ssize_t)sizeof(settings))
                    sl->write_failed = 1;
                sl->held[sl->n_held++] = c;
                bump(&sl->accepted);
            } else if (c >= 0) {
                close(c);
                bump(&sl->accepted);
            }
        }
    }
}

static int slammer_start(slammer *sl, int hold)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    memset(sl, 0, sizeof(*sl));
    sl->hold = hold;
    sl->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(sl->fd >= 0);
    assert_int_equal(bind(sl->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(sl->fd, 16), 0);
    assert_int_equal(getsockname(sl->fd, (struct sockaddr *)&a, &len), 0);
    assert_int_equal(uv_thread_create(&sl->thread, slammer_main, sl), 0);
    return ntohs(a.sin_port);
}

static void slammer_stop(slammer *sl)
{
    uv_mutex_lock(&g_lock);
    sl->stop = 1;
    uv_mutex_unlock(&g_lock);
    uv_thread_join(&sl->thread);
    close(sl->fd);
    for (int i = 0; i < sl->n_held; i++)
        close(sl->held[i]);
    assert_false(sl->write_failed);
}

static void backoff_client(client *c, int port, int64_t initial_backoff_ms)
{
    orpc_channel_opts co = {.plaintext = 1,
                            .initial_backoff_ms = initial_backoff_ms};
    client_open_opts(c, port, &co);
}

/* A server that cannot be reached gets one connection attempt per backoff
 * period, not one per call; calls in between fail fast, and wait_for_ready
 * calls are carried by the next attempt. */
static void test_reconnect_backoff(void **state)
{
    (void)state;
    reset(0);
    slammer sl;
    int port = slammer_start(&sl, 0);
    client c;
    backoff_client(&c, port, 60000); /* no second attempt in this test */
    for (int i = 0; i < 20; i++)
        assert_int_equal(unary(&c, 5000), ORPC_UNAVAILABLE);
    wait_for(&sl.accepted, 1);
    assert_int_equal(get(&sl.accepted), 1);
    client_close(&c);
    slammer_stop(&sl);

    /* wait_for_ready: the server comes up during the backoff, and the
     * waiting call is carried by the attempt the backoff timer starts */
    port = slammer_start(&sl, 0);
    slammer_stop(&sl); /* the port is free again: connections are refused */
    backoff_client(&c, port, 200);
    assert_int_equal(unary(&c, 5000), ORPC_UNAVAILABLE);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    orpc_server *srv = start(addr, NULL, 0);
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__SimpleResponse *resp = NULL;
    orpc_call_opts o = {.timeout_ms = 10000, .wait_for_ready = 1};
    orpc_status st =
        grpc__testing__test_service__client__unary_call(c.cl, &req, &resp, &o);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
    grpc__testing__simple_response__free_unpacked(resp, NULL);
    /* connected: the backoff is reset, calls go straight through */
    assert_int_equal(unary(&c, 5000), ORPC_OK);
    client_close(&c);
    stop(srv, 100);
}

/* Keepalive: a peer that went silent (no FIN) ends the calls on it with
 * UNAVAILABLE, long before their deadline; a live server answers the
 * pings and a long call goes through. */
static void test_keepalive(void **state)
{
    (void)state;
    reset(0);
    slammer sl;
    int port = slammer_start(&sl, 1);
    client c;
    orpc_channel_opts co = {
        .plaintext = 1, .keepalive_time_ms = 100, .keepalive_timeout_ms = 200};
    client_open_opts(&c, port, &co);
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__SimpleResponse *resp = NULL;
    orpc_call_opts o = {.timeout_ms = 30000};
    orpc_status st =
        grpc__testing__test_service__client__unary_call(c.cl, &req, &resp, &o);
    /* UNAVAILABLE, not DEADLINE_EXCEEDED: the keepalive found it */
    assert_int_equal(st.code, ORPC_UNAVAILABLE);
    assert_non_null(strstr(st.message, "keepalive"));
    orpc_status_clear(&st);
    client_close(&c);
    slammer_stop(&sl);

    /* the handler works 600 ms: a PING every 50 ms meanwhile, and no data */
    reset(600);
    co.keepalive_time_ms = 50;
    co.keepalive_timeout_ms = 5000;
    /* a server with gRPC's ping policy (5 min between pings without data)
     * takes that for a flood: GOAWAY "too_many_pings" ends the call */
    int sport;
    orpc_server *srv = start("127.0.0.1:0", &sport, 0);
    client_open_opts(&c, sport, &co);
    assert_int_equal(unary(&c, 10000), ORPC_UNAVAILABLE);
    client_close(&c);
    stop(srv, 100);
    /* one configured for such clients answers the pings, and the call
     * goes through */
    orpc_server_opts so = {
        .plaintext = 1, .io_threads = 1, .min_ping_interval_ms = 10};
    assert_int_equal(orpc_server_new(&srv, &so, NULL, NULL), 0);
    assert_int_equal(
        grpc__testing__test_service__server__register(srv, &handlers, NULL), 0);
    assert_int_equal(orpc_server_listen(srv, "127.0.0.1:0", &sport, NULL), 0);
    assert_int_equal(orpc_server_start(srv), 0);
    client_open_opts(&c, sport, &co);
    assert_int_equal(unary(&c, 10000), ORPC_OK);
    client_close(&c);
    stop(srv, 100);
}

/* Connectivity: IDLE until asked, READY once a server accepted (without a
 * call), IDLE again when the server goes away, TRANSIENT_FAILURE when no
 * server answers. */
static void test_channel_state(void **state)
{
    (void)state;
    reset(0);
    int port;
    orpc_server *srv = start("127.0.0.1:0", &port, 0);
    client c;
    client_open(&c, port);
    assert_int_equal(orpc_channel_get_state(c.ch, 0), ORPC_CHANNEL_IDLE);
    assert_int_equal(orpc_channel_get_state(c.ch, 1), ORPC_CHANNEL_IDLE);
    assert_int_equal(wait_state(c.ch, ORPC_CHANNEL_READY), ORPC_CHANNEL_READY);
    assert_int_equal(unary(&c, 5000), ORPC_OK);
    stop(srv, 100);
    assert_int_equal(wait_state(c.ch, ORPC_CHANNEL_IDLE), ORPC_CHANNEL_IDLE);
    /* nobody listens there now: the attempt fails, and backs off */
    orpc_channel_get_state(c.ch, 1);
    assert_int_equal(wait_state(c.ch, ORPC_CHANNEL_TRANSIENT_FAILURE),
                     ORPC_CHANNEL_TRANSIENT_FAILURE);
    client_close(&c);
    assert_int_equal(orpc_channel_get_state(NULL, 0), ORPC_CHANNEL_SHUTDOWN);
}

int main(void)
{
    uv_mutex_init(&g_lock);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deadline_both_sides),
        cmocka_unit_test(test_streams_beyond_limit_wait),
        cmocka_unit_test(test_shutdown_lets_calls_finish),
        cmocka_unit_test(test_shutdown_grace_cancels),
        cmocka_unit_test(test_goaway_moves_new_calls),
        cmocka_unit_test(test_reconnect_backoff),
        cmocka_unit_test(test_keepalive),
        cmocka_unit_test(test_channel_state),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    uv_mutex_destroy(&g_lock);
    return rc;
}
