/*
 * rpc_lb_test.c — name resolution and load balancing on channels, on
 * loopback: three servers on 127.0.0.2, .3 and .4 (one port), each
 * counting the calls it takes.
 *
 * - target forms, and the ones refused (ORPC_EADDR naming the target), an
 *   unknown lb_policy (ORPC_ECONFIG naming it);
 * - round_robin over an ipv4: list spreads calls evenly; a server freed
 *   costs at most the call in flight, then the others take every call; a
 *   server restarted on its address is used again;
 * - pick_first sticks to the first address, then to the next one when
 *   that fails; an address nobody answers is left after the connect
 *   timeout;
 * - dns:/// through the resolver's test seam (resolver_seam.h): three
 *   answers, and a changed answer picked up by the re-resolution a lost
 *   connection causes (not before);
 * - the channel's state aggregated from its subchannels'.
 *
 * Calls are sequential (at most one in flight); every wait is bounded;
 * nothing asserts a duration.
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
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <uv.h>

#include <orpc/orpc.h>

#include "grpc/testing/test.orpc.h"
#include "resolver_seam.h"

#define NSRV 3

static uv_mutex_t g_lock;

typedef struct server {
    orpc_server *srv;
    char ip[16]; /* 127.0.0.2 ... */
    int served;  /* calls this server took (g_lock) */
} server;

static server g_srv[NSRV];
static int g_port;          /* the servers' common port */
static int g_hold;          /* handlers wait while set (g_lock), 10 s at most */
static char g_log[1 << 15]; /* the channel's log lines (g_lock) */
static size_t g_log_len;

static void logger(orpc_log_level lvl, const char *msg, void *ud)
{
    (void)lvl;
    (void)ud;
    uv_mutex_lock(&g_lock);
    size_t n = strlen(msg);
    if (g_log_len + n + 2 < sizeof(g_log)) {
        memcpy(g_log + g_log_len, msg, n);
        g_log_len += n;
        g_log[g_log_len++] = '\n';
        g_log[g_log_len] = '\0';
    }
    uv_mutex_unlock(&g_lock);
}

static int logged(const char *what)
{
    uv_mutex_lock(&g_lock);
    int r = strstr(g_log, what) != NULL;
    uv_mutex_unlock(&g_lock);
    return r;
}

static int get(const int *v)
{
    uv_mutex_lock(&g_lock);
    int r = *v;
    uv_mutex_unlock(&g_lock);
    return r;
}

static void reset_counts(void)
{
    uv_mutex_lock(&g_lock);
    for (int i = 0; i < NSRV; i++)
        g_srv[i].served = 0;
    uv_mutex_unlock(&g_lock);
}

static orpc_status unary_call(orpc_ctx *ctx,
                              const Grpc__Testing__SimpleRequest *req,
                              Grpc__Testing__SimpleResponse *resp, void *ud)
{
    (void)req;
    (void)resp;
    server *s = ud;
    uv_mutex_lock(&g_lock);
    s->served++;
    uv_mutex_unlock(&g_lock);
    for (int i = 0; i < 2000 && get(&g_hold) && !orpc_ctx_is_cancelled(ctx);
         i++)
        usleep(5000);
    return ORPC_STATUS_OK;
}

static const Grpc__Testing__TestService_Handlers handlers = {
    .unary_call = unary_call,
};

/* Starts server |i| on its address and |*port| (0: any; set to the one
 * bound).  0, or the orpc_server_listen() error. */
static int server_start(int i, int *port)
{
    server *s = &g_srv[i];
    orpc_server_opts o = {.plaintext = 1, .io_threads = 1, .worker_threads = 1};
    assert_int_equal(orpc_server_new(&s->srv, &o, NULL, NULL), 0);
    assert_int_equal(
        grpc__testing__test_service__server__register(s->srv, &handlers, s), 0);
    char addr[48];
    snprintf(addr, sizeof(addr), "%s:%d", s->ip, *port);
    orpc_error_detail why;
    int rc = orpc_server_listen(s->srv, addr, port, &why);
    if (rc != 0) {
        orpc_server_free(s->srv);
        s->srv = NULL;
        return rc;
    }
    assert_int_equal(orpc_server_start(s->srv), 0);
    return 0;
}

static void server_stop(int i)
{
    orpc_server_free(g_srv[i].srv); /* GOAWAY, then its connections close */
    g_srv[i].srv = NULL;
}

/* The three servers on one port: the first picks it, the others take it
 * on their own addresses (another process may hold it there: try again). */
static int setup(void **state)
{
    (void)state;
    for (int attempt = 0; attempt < 20; attempt++) {
        int port = 0, ok = 1;
        for (int i = 0; i < NSRV && ok; i++) {
            snprintf(g_srv[i].ip, sizeof(g_srv[i].ip), "127.0.0.%d", i + 2);
            if (server_start(i, &port) != 0) {
                ok = 0;
                for (int j = 0; j < i; j++)
                    server_stop(j);
            }
        }
        if (ok) {
            g_port = port;
            reset_counts();
            return 0;
        }
    }
    return -1;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < NSRV; i++)
        if (g_srv[i].srv != NULL)
            server_stop(i);
    return 0;
}

/* Server |i| again, on its address and the common port (the port was just
 * freed; something else may take it meanwhile, so a few tries). */
static void server_restart(int i)
{
    for (int attempt = 0; attempt < 50; attempt++) {
        int port = g_port;
        if (server_start(i, &port) == 0)
            return;
        usleep(20000);
    }
    fail_msg("cannot listen on %s:%d again", g_srv[i].ip, g_port);
}

typedef struct client {
    orpc_channel *ch;
    orpc_client *cl;
} client;

static void client_open(client *c, const char *target,
                        const orpc_channel_opts *co)
{
    orpc_error_detail why;
    int rc = orpc_channel_new(&c->ch, target, co, NULL, &why);
    if (rc != 0)
        fail_msg("orpc_channel_new(%s): %s", target, why.message);
    assert_int_equal(orpc_client_new(&c->cl,
                                     &grpc__testing__test_service__orpc_desc,
                                     c->ch, NULL, NULL),
                     0);
}

static void client_close(client *c)
{
    orpc_client_free(c->cl);
    orpc_channel_unref(c->ch);
}

static orpc_code unary_opts(client *c, int wait_for_ready)
{
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__SimpleResponse *resp = NULL;
    orpc_call_opts o = {.timeout_ms = 10000, .wait_for_ready = wait_for_ready};
    orpc_status st =
        grpc__testing__test_service__client__unary_call(c->cl, &req, &resp, &o);
    orpc_code code = st.code;
    grpc__testing__simple_response__free_unpacked(resp, NULL);
    orpc_status_clear(&st);
    return code;
}

static orpc_code unary(client *c)
{
    return unary_opts(c, 0);
}

/* "ipv4:127.0.0.2:P,127.0.0.3:P,127.0.0.4:P" */
static void ipv4_target(char *buf, size_t len)
{
    snprintf(buf, len, "ipv4:127.0.0.2:%d,127.0.0.3:%d,127.0.0.4:%d", g_port,
             g_port, g_port);
}

/* Short backoffs: a server that comes back is dialled again soon. */
static orpc_channel_opts lb_opts(const char *policy)
{
    orpc_channel_opts co = {.plaintext = 1,
                            .lb_policy = policy,
                            .initial_backoff_ms = 50,
                            .max_backoff_ms = 200};
    return co;
}

/* Calls until every server in |want| (a bit set) has taken one: each
 * subchannel is READY then (round_robin).  1 if so within the bound. */
static int warm_up(client *c, unsigned want)
{
    for (int i = 0; i < 500; i++) {
        unsigned have = 0;
        for (int k = 0; k < NSRV; k++)
            if (get(&g_srv[k].served) > 0)
                have |= 1u << k;
        if ((have & want) == want)
            return 1;
        (void)unary(c);
        usleep(2000);
    }
    return 0;
}

static orpc_channel_state wait_state(orpc_channel *ch, orpc_channel_state want)
{
    orpc_channel_state st = orpc_channel_get_state(ch, 0);
    for (int i = 0; i < 1000 && st != want; i++) {
        usleep(5000);
        st = orpc_channel_get_state(ch, 0);
    }
    return st;
}

/* ====================================================================== */

static void expect_refused(const char *target, const char *policy, int rc,
                           const char *named)
{
    orpc_channel *ch = (orpc_channel *)1;
    orpc_error_detail why;
    orpc_channel_opts co = {.plaintext = 1, .lb_policy = policy};
    assert_int_equal(orpc_channel_new(&ch, target, &co, NULL, &why), rc);
    assert_null(ch);
    assert_int_equal(why.code, rc);
    if (strstr(why.message, named) == NULL)
        fail_msg("\"%s\" does not name \"%s\"", why.message, named);
}

static void test_targets(void **state)
{
    (void)state;
    static const char *bad[] = {
        "ipv4:",
        "ipv4:127.0.0.1",
        "ipv4:127.0.0.1:0",
        "ipv4:127.0.0.1:80,",
        "ipv4:127.0.0:80",
        "ipv4:[::1]:80",
        "ipv4:127.0.0.1:80,localhost:80",
        "ipv6:::1:80",
        "ipv6:[::1]",
        "ipv6:[127.0.0.1]:80",
        "ipv6:[::1]:80,[::2]:x",
        "dns://8.8.8.8/db.test:80",
        "dns:///db.test",
        "dns:///:80",
        "db.test:65536",
        "unix:",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_refused(bad[i], NULL, ORPC_EADDR, bad[i]);
    expect_refused("127.0.0.1:1", "random", ORPC_ECONFIG, "\"random\"");
    expect_refused("127.0.0.1:1", "grpclb", ORPC_ECONFIG, "lb_policy");

    static const struct {
        const char *target;
        int dns;
    } good[] = {
        {"ipv4:127.0.0.1:1", 0},
        {"ipv4:127.0.0.1:1,127.0.0.2:2,127.0.0.3:65535", 0},
        {"ipv4:///127.0.0.1:1", 0},
        {"ipv6:[::1]:1", 0},
        {"ipv6:[::1]:1,[fe80::1]:2", 0},
        {"dns:///db.test:1", 1},
        {"dns:db.test:1", 1},
        {"db.test:1", 1},
        {"[::1]:1", 1},
        {"unix:/tmp/nothing-here.sock", 0},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        orpc_channel *ch;
        orpc_error_detail why;
        orpc_channel_opts co = {.plaintext = 1, .lb_policy = "round_robin"};
        if (orpc_channel_new(&ch, good[i].target, &co, NULL, &why) != 0)
            fail_msg("%s: %s", good[i].target, why.message);
        /* the seam answers DNS targets only */
        assert_int_equal(orpc__resolver_override(ch, "127.0.0.1", 0),
                         good[i].dns ? 0 : ORPC_EINVAL);
        orpc_channel_unref(ch);
    }
    orpc_channel *ch;
    orpc_channel_opts co = {.plaintext = 1, .lb_policy = "pick_first"};
    assert_int_equal(orpc_channel_new(&ch, "dns:///db.test:1", &co, NULL, NULL),
                     0);
    assert_int_equal(orpc__resolver_override(ch, "127.0.0.1,db.test", 0),
                     ORPC_EINVAL); /* answers are addresses */
    assert_int_equal(orpc__resolver_override(ch, "127.0.0.1, [::1] ,::2", 0),
                     0);
    assert_int_equal(orpc__resolver_override(ch, NULL, 0), 0);
    orpc_channel_unref(ch);
}

/* round_robin spreads calls over every READY address: N calls, N/3 ± 1
 * each. */
static void test_round_robin_spreads(void **state)
{
    (void)state;
    char target[128];
    ipv4_target(target, sizeof(target));
    orpc_channel_opts co = lb_opts("round_robin");
    client c;
    client_open(&c, target, &co);
    assert_true(warm_up(&c, 7));
    assert_int_equal(orpc_channel_get_state(c.ch, 0), ORPC_CHANNEL_READY);
    reset_counts();
    const int n = 30;
    for (int i = 0; i < n; i++)
        assert_int_equal(unary(&c), ORPC_OK);
    for (int k = 0; k < NSRV; k++) {
        int got = get(&g_srv[k].served);
        if (got < n / 3 - 1 || got > n / 3 + 1)
            fail_msg("%s took %d of %d calls", g_srv[k].ip, got, n);
    }
    client_close(&c);
}

/* The service config's loadBalancingConfig chooses round_robin when the
 * options do not; the options win when they do. */
static void test_round_robin_from_service_config(void **state)
{
    (void)state;
    char target[128];
    ipv4_target(target, sizeof(target));
    orpc_channel_opts co = lb_opts(NULL);
    co.service_config = "{\"loadBalancingConfig\": [{\"round_robin\": {}}]}";
    client c;
    client_open(&c, target, &co);
    assert_true(warm_up(&c, 7));
    reset_counts();
    const int n = 30;
    for (int i = 0; i < n; i++)
        assert_int_equal(unary(&c), ORPC_OK);
    for (int k = 0; k < NSRV; k++) {
        int got = get(&g_srv[k].served);
        if (got < n / 3 - 1 || got > n / 3 + 1)
            fail_msg("%s took %d of %d calls", g_srv[k].ip, got, n);
    }
    client_close(&c);
    /* the options' pick_first wins over the config's round_robin */
    co = lb_opts("pick_first");
    co.service_config = "{\"loadBalancingConfig\": [{\"round_robin\": {}}]}";
    client_open(&c, target, &co);
    assert_true(warm_up(&c, 7));
    reset_counts();
    for (int i = 0; i < 9; i++)
        assert_int_equal(unary(&c), ORPC_OK);
    int busy = 0;
    for (int k = 0; k < NSRV; k++)
        busy += get(&g_srv[k].served) > 0;
    assert_int_equal(busy, 1);
    client_close(&c);
}

/* A server freed: at most the call in flight fails (sequential calls: one),
 * then the other two take every call; restarted on its address and port,
 * it is dialled again after its backoff and takes calls again. */
static void test_round_robin_failover(void **state)
{
    (void)state;
    char target[128];
    ipv4_target(target, sizeof(target));
    orpc_channel_opts co = lb_opts("round_robin");
    client c;
    client_open(&c, target, &co);
    assert_true(warm_up(&c, 7));

    server_stop(1);
    reset_counts();
    int failed = 0;
    const int n = 40;
    for (int i = 0; i < n; i++)
        failed += unary(&c) != ORPC_OK;
    assert_in_range(failed, 0, 1);
    assert_int_equal(get(&g_srv[1].served), 0);
    assert_int_equal(get(&g_srv[0].served) + get(&g_srv[2].served), n - failed);
    /* both took their share, evenly (the failure aside) */
    assert_in_range(get(&g_srv[0].served), n / 2 - 2, n / 2 + 1);
    /* after the switch: none fails */
    reset_counts();
    for (int i = 0; i < n; i++)
        assert_int_equal(unary(&c), ORPC_OK);
    assert_int_equal(get(&g_srv[0].served), n / 2);
    assert_int_equal(get(&g_srv[2].served), n / 2);
    assert_int_equal(orpc_channel_get_state(c.ch, 0), ORPC_CHANNEL_READY);

    server_restart(1);
    reset_counts();
    /* the restarted server is used again; no call fails meanwhile */
    for (int i = 0; i < 2000 && get(&g_srv[1].served) == 0; i++) {
        assert_int_equal(unary(&c), ORPC_OK);
        usleep(1000);
    }
    assert_true(get(&g_srv[1].served) > 0);
    reset_counts();
    for (int i = 0; i < 30; i++)
        assert_int_equal(unary(&c), ORPC_OK);
    for (int k = 0; k < NSRV; k++)
        assert_int_equal(get(&g_srv[k].served), 10);
    client_close(&c);
}

/* pick_first: every call goes to the first address; when that server goes,
 * to the next one (at most the call in flight fails), and stays there even
 * when the first comes back. */
static void test_pick_first_sticks(void **state)
{
    (void)state;
    char target[128];
    ipv4_target(target, sizeof(target));
    orpc_channel_opts co = lb_opts(NULL); /* the default */
    client c;
    client_open(&c, target, &co);
    for (int i = 0; i < 30; i++)
        assert_int_equal(unary(&c), ORPC_OK);
    assert_int_equal(get(&g_srv[0].served), 30);
    assert_int_equal(get(&g_srv[1].served), 0);
    assert_int_equal(get(&g_srv[2].served), 0);

    server_stop(0);
    reset_counts();
    int failed = 0;
    for (int i = 0; i < 30; i++)
        failed += unary(&c) != ORPC_OK;
    assert_in_range(failed, 0, 1);
    assert_int_equal(get(&g_srv[1].served), 30 - failed);
    assert_int_equal(get(&g_srv[2].served), 0);

    server_restart(0);
    usleep(300 * 1000); /* past its backoff: still not used */
    reset_counts();
    for (int i = 0; i < 30; i++)
        assert_int_equal(unary(&c), ORPC_OK);
    assert_int_equal(get(&g_srv[0].served), 0);
    assert_int_equal(get(&g_srv[1].served), 30);
    client_close(&c);
}

/* pick_first leaves an address whose connect nobody answers (a listener
 * whose accept queue is full drops the SYNs) after connect_timeout_ms,
 * for the next one. */
static void test_pick_first_connect_timeout(void **state)
{
    (void)state;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(0x7f000005); /* 127.0.0.5 */
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t alen = sizeof(a);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
    assert_int_equal(listen(lfd, 0), 0);
    int fill[4];
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        (void)!connect(fill[i], (struct sockaddr *)&a, sizeof(a));
    }
    usleep(100 * 1000); /* let the fillers' handshakes complete */
    char target[128];
    snprintf(target, sizeof(target), "ipv4:127.0.0.5:%d,127.0.0.3:%d",
             ntohs(a.sin_port), g_port);
    orpc_channel_opts co = {.plaintext = 1, .connect_timeout_ms = 200};
    client c;
    client_open(&c, target, &co);
    assert_int_equal(unary(&c), ORPC_OK); /* within its 10 s deadline */
    assert_int_equal(get(&g_srv[1].served), 1);
    client_close(&c);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(lfd);
}

/* dns:/// with three answers (the resolver's seam in DNS's place). */
static void test_dns_three_answers(void **state)
{
    (void)state;
    char target[64];
    snprintf(target, sizeof(target), "dns:///db.test:%d", g_port);
    orpc_channel_opts co = lb_opts("round_robin");
    client c;
    client_open(&c, target, &co);
    assert_int_equal(
        orpc__resolver_override(c.ch, "127.0.0.2,127.0.0.3,127.0.0.4", 0), 0);
    assert_true(warm_up(&c, 7));
    reset_counts();
    for (int i = 0; i < 30; i++)
        assert_int_equal(unary(&c), ORPC_OK);
    for (int k = 0; k < NSRV; k++)
        assert_int_equal(get(&g_srv[k].served), 10);
    assert_int_equal(orpc__resolver_resolutions(c.ch), 1);
    client_close(&c);

    /* a name that resolves to nothing: calls fail fast, naming it, and
     * the channel backs off (long enough to stay so) */
    co = lb_opts(NULL);
    co.initial_backoff_ms = co.max_backoff_ms = 60000;
    client_open(&c, target, &co);
    assert_int_equal(orpc__resolver_override(c.ch, "", 0), 0);
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__SimpleResponse *resp = NULL;
    orpc_call_opts o = {.timeout_ms = 10000};
    orpc_status st =
        grpc__testing__test_service__client__unary_call(c.cl, &req, &resp, &o);
    assert_int_equal(st.code, ORPC_UNAVAILABLE);
    assert_non_null(strstr(st.message, "db.test"));
    orpc_status_clear(&st);
    assert_int_equal(orpc_channel_get_state(c.ch, 0),
                     ORPC_CHANNEL_TRANSIENT_FAILURE);
    client_close(&c);

    /* the answer comes: a wait_for_ready call is carried by the next try */
    co = lb_opts(NULL);
    client_open(&c, target, &co);
    assert_int_equal(orpc__resolver_override(c.ch, "", 0), 0);
    assert_int_equal(unary(&c), ORPC_UNAVAILABLE);
    assert_int_equal(orpc__resolver_override(c.ch, "127.0.0.4", 0), 0);
    reset_counts();
    assert_int_equal(unary_opts(&c, 1), ORPC_OK);
    assert_int_equal(get(&g_srv[2].served), 1);
    client_close(&c);
}

/* A changed answer is not seen while the connection stays up; the
 * connection's loss re-resolves, and calls follow the new answer. */
static void test_reresolution(void **state)
{
    (void)state;
    char target[64];
    snprintf(target, sizeof(target), "dns:///db.test:%d", g_port);
    orpc_channel_opts co = lb_opts("round_robin");
    client c;
    client_open(&c, target, &co);
    assert_int_equal(orpc__resolver_override(c.ch, "127.0.0.2", 1), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(unary(&c), ORPC_OK);
    assert_int_equal(get(&g_srv[0].served), 10);
    unsigned before = orpc__resolver_resolutions(c.ch);

    assert_int_equal(orpc__resolver_override(c.ch, "127.0.0.3,127.0.0.4", 1),
                     0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(unary(&c), ORPC_OK);
    assert_int_equal(get(&g_srv[0].served), 20); /* nothing lost: no change */
    assert_int_equal(orpc__resolver_resolutions(c.ch), before);

    server_stop(0); /* the connection is lost */
    for (int i = 0; i < 1000 && orpc__resolver_resolutions(c.ch) == before; i++)
        usleep(5000);
    assert_true(orpc__resolver_resolutions(c.ch) > before);
    reset_counts();
    /* the new addresses take the calls (the switch may cost the one in
     * flight) */
    int failed = 0;
    for (int i = 0;
         i < 2000 && (get(&g_srv[1].served) == 0 || get(&g_srv[2].served) == 0);
         i++) {
        failed += unary(&c) != ORPC_OK;
        usleep(1000);
    }
    assert_in_range(failed, 0, 1);
    reset_counts();
    for (int i = 0; i < 20; i++)
        assert_int_equal(unary(&c), ORPC_OK);
    assert_int_equal(get(&g_srv[1].served), 10);
    assert_int_equal(get(&g_srv[2].served), 10);
    client_close(&c);
}

typedef struct async_state {
    uv_mutex_t lock;
    int done;
    orpc_code code;
} async_state;

static void async_done(const orpc_status *st,
                       Grpc__Testing__SimpleResponse *resp, void *ud)
{
    async_state *a = ud;
    uv_mutex_lock(&a->lock);
    a->done++;
    a->code = st->code;
    uv_mutex_unlock(&a->lock);
    grpc__testing__simple_response__free_unpacked(resp, NULL);
}

static int async_done_count(async_state *a)
{
    uv_mutex_lock(&a->lock);
    int n = a->done;
    uv_mutex_unlock(&a->lock);
    return n;
}

/* An address the resolver drops while a call runs on it: the call
 * finishes there (the connection drains behind our GOAWAY, then closes),
 * and no new call goes to it. */
static void test_dropped_address_drains(void **state)
{
    (void)state;
    char target[64];
    snprintf(target, sizeof(target), "dns:///db.test:%d", g_port);
    orpc_channel_opts co = lb_opts("round_robin");
    co.log = logger;
    co.log_user_data = NULL;
    uv_mutex_lock(&g_lock);
    g_log_len = 0;
    g_log[0] = '\0';
    uv_mutex_unlock(&g_lock);
    client c;
    client_open(&c, target, &co);
    assert_int_equal(orpc__resolver_override(c.ch, "127.0.0.2,127.0.0.3", 1),
                     0);
    assert_true(warm_up(&c, 3));
    reset_counts();
    /* a call held at work on 127.0.0.2 (round_robin alternates: at most
     * two calls to get one there) */
    uv_mutex_lock(&g_lock);
    g_hold = 1;
    uv_mutex_unlock(&g_lock);
    async_state a[2];
    int n = 0;
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    orpc_call_opts o = {.timeout_ms = 20000};
    while (n < 2 && get(&g_srv[0].served) == 0) {
        memset(&a[n], 0, sizeof(a[n]));
        uv_mutex_init(&a[n].lock);
        assert_int_equal(grpc__testing__test_service__client__unary_call__async(
                             c.cl, &req, &o, async_done, &a[n]),
                         0);
        n++;
        for (int i = 0;
             i < 1000 && get(&g_srv[0].served) + get(&g_srv[1].served) < n; i++)
            usleep(5000);
    }
    assert_int_equal(get(&g_srv[0].served), 1);
    /* the answer changes; a lost connection (127.0.0.3's server goes)
     * re-resolves, and 127.0.0.2 is dropped with its call at work */
    unsigned before = orpc__resolver_resolutions(c.ch);
    assert_int_equal(orpc__resolver_override(c.ch, "127.0.0.3,127.0.0.4", 1),
                     0);
    server_stop(1);
    for (int i = 0; i < 1000 && orpc__resolver_resolutions(c.ch) == before; i++)
        usleep(5000);
    assert_true(orpc__resolver_resolutions(c.ch) > before);
    char line[96];
    snprintf(line, sizeof(line),
             "127.0.0.2:%d is no longer an address of the target", g_port);
    for (int i = 0; i < 1000 && !logged(line); i++)
        usleep(5000);
    assert_true(logged(line));
    uv_mutex_lock(&g_lock);
    g_hold = 0;
    uv_mutex_unlock(&g_lock);
    /* the held call finishes on the dropped address */
    async_state *on2 = &a[n - 1];
    for (int i = 0; i < 2000 && async_done_count(on2) == 0; i++)
        usleep(5000);
    assert_int_equal(async_done_count(on2), 1);
    assert_int_equal(on2->code, ORPC_OK);
    /* then its connection ends */
    snprintf(line, sizeof(line), "connection to 127.0.0.2:%d closed", g_port);
    for (int i = 0; i < 1000 && !logged(line); i++)
        usleep(5000);
    assert_true(logged(line));
    /* new calls: 127.0.0.4 only (127.0.0.3 has no server) */
    reset_counts();
    for (int i = 0; i < 10; i++)
        assert_int_equal(unary_opts(&c, 1), ORPC_OK);
    assert_int_equal(get(&g_srv[0].served), 0);
    assert_int_equal(get(&g_srv[2].served), 10);
    for (int k = 0; k < n; k++) {
        for (int i = 0; i < 2000 && async_done_count(&a[k]) == 0; i++)
            usleep(5000);
        uv_mutex_destroy(&a[k].lock);
    }
    client_close(&c);
}

/* The channel's state from its subchannels': IDLE until asked; READY when
 * any is READY, whatever the others; TRANSIENT_FAILURE when every address
 * fails; a wait_for_ready call waits through it for an address that comes
 * up. */
static void test_state_aggregation(void **state)
{
    (void)state;
    /* one address up, two where nobody listens (127.0.0.5, .6) */
    char target[128];
    snprintf(target, sizeof(target),
             "ipv4:127.0.0.5:%d,127.0.0.6:%d,127.0.0.3:%d", g_port, g_port,
             g_port);
    orpc_channel_opts co = lb_opts("round_robin");
    client c;
    client_open(&c, target, &co);
    assert_int_equal(orpc_channel_get_state(c.ch, 0), ORPC_CHANNEL_IDLE);
    assert_int_equal(orpc_channel_get_state(c.ch, 1), ORPC_CHANNEL_IDLE);
    assert_int_equal(wait_state(c.ch, ORPC_CHANNEL_READY), ORPC_CHANNEL_READY);
    for (int i = 0; i < 10; i++)
        assert_int_equal(unary(&c), ORPC_OK); /* the failing ones skipped */
    assert_int_equal(get(&g_srv[1].served), 10);
    server_stop(1); /* none is left */
    assert_int_equal(wait_state(c.ch, ORPC_CHANNEL_TRANSIENT_FAILURE),
                     ORPC_CHANNEL_TRANSIENT_FAILURE);
    server_restart(1);
    assert_int_equal(wait_state(c.ch, ORPC_CHANNEL_READY), ORPC_CHANNEL_READY);
    client_close(&c);

    /* pick_first, nobody anywhere: fail fast, wait_for_ready waits */
    snprintf(target, sizeof(target), "ipv4:127.0.0.5:%d,127.0.0.6:%d", g_port,
             g_port);
    co = lb_opts(NULL);
    co.initial_backoff_ms = co.max_backoff_ms = 60000; /* no second try */
    client_open(&c, target, &co);
    assert_int_equal(orpc_channel_get_state(c.ch, 1), ORPC_CHANNEL_IDLE);
    assert_int_equal(wait_state(c.ch, ORPC_CHANNEL_TRANSIENT_FAILURE),
                     ORPC_CHANNEL_TRANSIENT_FAILURE);
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__SimpleResponse *resp = NULL;
    orpc_call_opts o = {.timeout_ms = 10000};
    orpc_status st =
        grpc__testing__test_service__client__unary_call(c.cl, &req, &resp, &o);
    assert_int_equal(st.code, ORPC_UNAVAILABLE);
    assert_non_null(strstr(st.message, "127.0.0.")); /* names the address */
    orpc_status_clear(&st);
    client_close(&c);

    /* IDLE again when the connection in use goes (pick_first) */
    snprintf(target, sizeof(target), "ipv4:127.0.0.4:%d", g_port);
    client_open(&c, target, &co);
    assert_int_equal(unary(&c), ORPC_OK);
    assert_int_equal(orpc_channel_get_state(c.ch, 0), ORPC_CHANNEL_READY);
    server_stop(2);
    assert_int_equal(wait_state(c.ch, ORPC_CHANNEL_IDLE), ORPC_CHANNEL_IDLE);
    server_restart(2);
    client_close(&c);
}

/* ipv6: lists, where the machine has ::1. */
static void test_ipv6_list(void **state)
{
    (void)state;
    orpc_server *srv;
    orpc_server_opts o = {.plaintext = 1, .io_threads = 1, .worker_threads = 1};
    assert_int_equal(orpc_server_new(&srv, &o, NULL, NULL), 0);
    server six = {.served = 0};
    assert_int_equal(
        grpc__testing__test_service__server__register(srv, &handlers, &six), 0);
    int port = 0;
    /* ::1 is there wherever the tests run (rpc_api_test listens on it) */
    assert_int_equal(orpc_server_listen(srv, "[::1]:0", &port, NULL), 0);
    assert_int_equal(orpc_server_start(srv), 0);
    char target[128];
    snprintf(target, sizeof(target), "ipv6:[::1]:%d,[::1]:%d", port, port);
    orpc_channel_opts co = lb_opts("round_robin");
    client c;
    client_open(&c, target, &co);
    for (int i = 0; i < 5; i++)
        assert_int_equal(unary(&c), ORPC_OK);
    assert_int_equal(get(&six.served), 5);
    client_close(&c);
    orpc_server_free(srv);
}

int main(void)
{
    uv_mutex_init(&g_lock);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_targets),
        cmocka_unit_test_setup_teardown(test_round_robin_spreads, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_round_robin_from_service_config,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_robin_failover, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pick_first_sticks, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pick_first_connect_timeout, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dns_three_answers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reresolution, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dropped_address_drains, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_state_aggregation, setup,
                                        teardown),
        cmocka_unit_test(test_ipv6_list),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    uv_mutex_destroy(&g_lock);
    return rc;
}
