/*
 * admin_test.c — a server's admin listener (rpc/src/admin.c) through the
 * public API (orpc_server_opts.admin_address, orpc_server_admin_port()),
 * with a raw-socket HTTP/1.1 client on loopback: GET and HEAD /metrics,
 * /healthz following orpc_server_set_health(), 404, 405, 400, 431, the
 * 32-connection bound (the 33rd waits and is served when a place frees),
 * slow clients not holding up others, the read timeout, bad addresses and
 * the listener closing with its server.
 *
 * Every wait is bounded (poll with a deadline).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include <orpc/orpc.h>

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        assert_true(w > 0);
        p += w;
        n -= (size_t)w;
    }
}

/* Reads until the peer closes or |ms| pass; returns what came (malloc'd,
 * NUL-terminated), |*closed| whether the peer closed. */
static char *read_until_close(int fd, int ms, int *closed)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    *closed = 0;
    uint64_t deadline = uv_hrtime() / 1000000 + (uint64_t)ms;
    for (;;) {
        uint64_t now = uv_hrtime() / 1000000;
        if (now >= deadline)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, (int)(deadline - now));
        if (r <= 0)
            break;
        if (len + 1024 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n <= 0) {
            *closed = 1;
            break;
        }
        len += (size_t)n;
    }
    buf[len] = '\0';
    return buf;
}

typedef struct resp {
    int status;
    char *raw;  /* the whole response */
    char *body; /* in |raw| */
    long content_length;
} resp;

/* One request on a new connection; the whole response, the connection
 * closed by the server. */
static resp request(int port, const char *req)
{
    int fd = connect_to(port);
    assert_true(fd >= 0);
    send_all(fd, req, strlen(req));
    int closed = 0;
    resp r = {0};
    r.raw = read_until_close(fd, 10000, &closed);
    close(fd);
    assert_true(closed);
    assert_int_equal(sscanf(r.raw, "HTTP/1.1 %d", &r.status), 1);
    char *end = strstr(r.raw, "\r\n\r\n");
    assert_non_null(end);
    r.body = end + 4;
    const char *cl = strstr(r.raw, "Content-Length: ");
    assert_non_null(cl);
    r.content_length = strtol(cl + 16, NULL, 10);
    assert_true(strstr(r.raw, "Connection: close\r\n") != NULL);
    return r;
}

static orpc_server *server_with_admin(orpc_metrics *m, int *admin_port)
{
    orpc_server_opts o = {0};
    o.plaintext = 1;
    o.admin_address = "127.0.0.1:0";
    o.metrics = m;
    orpc_server *srv = NULL;
    assert_int_equal(orpc_server_new(&srv, &o, NULL, NULL), 0);
    *admin_port = orpc_server_admin_port(srv);
    assert_true(*admin_port > 0);
    return srv;
}

static void test_metrics_and_health(void **state)
{
    (void)state;
    orpc_metrics *m = NULL;
    assert_int_equal(orpc_metrics_new(&m, NULL, NULL), 0);
    const char *l[] = {"kind", "a\"b", NULL};
    assert_int_equal(
        orpc_metrics_counter_add(m, "app_events_total", "Events.", l, 42), 0);
    int port = 0;
    orpc_server *srv = server_with_admin(m, &port);

    resp r = request(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(r.status, 200);
    assert_non_null(
        strstr(r.raw, "Content-Type: text/plain; version=0.0.4\r\n"));
    assert_int_equal(r.content_length, (long)strlen(r.body));
    assert_non_null(strstr(r.body, "# TYPE app_events_total counter\n"));
    assert_non_null(strstr(r.body, "app_events_total{kind=\"a\\\"b\"} 42\n"));
    free(r.raw);

    /* a query string is ignored; HEAD has the length and no body */
    r = request(port, "HEAD /metrics?x=1 HTTP/1.0\r\n\r\n");
    assert_int_equal(r.status, 200);
    assert_true(r.content_length > 0);
    assert_string_equal(r.body, "");
    free(r.raw);

    /* not started: no overall health yet */
    r = request(port, "GET /healthz HTTP/1.1\r\n\r\n");
    assert_int_equal(r.status, 503);
    free(r.raw);

    int grpc_port = 0;
    assert_int_equal(orpc_server_listen(srv, "127.0.0.1:0", &grpc_port, NULL),
                     0);
    assert_int_equal(orpc_server_start(srv), 0);
    r = request(port, "GET /healthz HTTP/1.1\r\n\r\n");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "SERVING\n");
    free(r.raw);

    assert_int_equal(orpc_server_set_health(srv, "", ORPC_HEALTH_NOT_SERVING),
                     0);
    r = request(port, "GET /healthz HTTP/1.1\r\n\r\n");
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "NOT_SERVING\n");
    free(r.raw);

    /* another service's status is not the overall one */
    assert_int_equal(orpc_server_set_health(srv, "", ORPC_HEALTH_SERVING), 0);
    assert_int_equal(
        orpc_server_set_health(srv, "other.Svc", ORPC_HEALTH_NOT_SERVING), 0);
    r = request(port, "GET /healthz HTTP/1.1\r\n\r\n");
    assert_int_equal(r.status, 200);
    free(r.raw);

    orpc_server_free(srv);
    /* the listener went with its server */
    assert_int_equal(connect_to(port), -1);
    orpc_metrics_unref(m);
}

static void test_errors(void **state)
{
    (void)state;
    int port = 0;
    orpc_server *srv = server_with_admin(NULL, &port);
    resp r = request(port, "GET /nope HTTP/1.1\r\n\r\n");
    assert_int_equal(r.status, 404);
    free(r.raw);
    r = request(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_int_equal(r.status, 405);
    assert_non_null(strstr(r.raw, "Allow: GET, HEAD\r\n"));
    assert_int_equal(r.content_length, (long)strlen(r.body));
    free(r.raw);
    r = request(port, "DELETE /healthz HTTP/1.1\r\n\r\n");
    assert_int_equal(r.status, 405);
    free(r.raw);
    r = request(port, "garbage\r\n\r\n");
    assert_int_equal(r.status, 400);
    free(r.raw);
    r = request(port, "GET /metrics SPDY/3\r\n\r\n");
    assert_int_equal(r.status, 400);
    free(r.raw);
    /* no registry: an empty page */
    r = request(port, "GET /metrics HTTP/1.1\r\n\r\n");
    assert_int_equal(r.status, 200);
    assert_int_equal(r.content_length, 0);
    free(r.raw);

    /* a head of 8 KiB without its end: 431, the rest unread */
    size_t big = 9000;
    char *req = malloc(big + 1);
    assert_non_null(req);
    memcpy(req, "GET /metrics HTTP/1.1\r\nX-Long: ", 31);
    memset(req + 31, 'a', big - 31);
    req[big] = '\0';
    int fd = connect_to(port);
    assert_true(fd >= 0);
    send_all(fd, req, 8192); /* exactly the bound: no blank line in it */
    int closed = 0;
    char *raw = read_until_close(fd, 10000, &closed);
    assert_true(closed);
    assert_true(strncmp(raw, "HTTP/1.1 431 ", 13) == 0);
    free(raw);
    close(fd);
    /* just under the bound is fine */
    memcpy(req + 8192 - 4 - 20, "\r\n\r\n", 4);
    req[8192 - 20] = '\0';
    r = request(port, req);
    assert_int_equal(r.status, 200);
    free(r.raw);
    free(req);
    orpc_server_free(srv);
}

static int wait_readable(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) > 0;
}

static void test_connection_bound_and_slow_clients(void **state)
{
    (void)state;
    int port = 0;
    orpc_server *srv = server_with_admin(NULL, &port);
    /* 32 slow clients: connected, half a head each */
    int idle[32];
    for (int i = 0; i < 32; i++) {
        idle[i] = connect_to(port);
        assert_true(idle[i] >= 0);
        send_all(idle[i], "GET /metr", 9);
    }
    /* the 33rd waits in the backlog while the 32 hold their places */
    int fd = connect_to(port);
    assert_true(fd >= 0);
    send_all(fd, "GET /healthz HTTP/1.1\r\n\r\n", 25);
    assert_false(wait_readable(fd, 500));
    /* a slow client finishing its head is served at once */
    send_all(idle[0], "ics HTTP/1.1\r\n\r\n", 16);
    int closed = 0;
    char *raw = read_until_close(idle[0], 5000, &closed);
    assert_true(closed);
    assert_true(strncmp(raw, "HTTP/1.1 200 ", 13) == 0);
    free(raw);
    close(idle[0]);
    /* ... and its place goes to the 33rd */
    raw = read_until_close(fd, 5000, &closed);
    assert_true(closed);
    assert_true(strncmp(raw, "HTTP/1.1 503 ", 13) == 0);
    free(raw);
    close(fd);
    /* the other slow clients are still open, until the read timeout
     * (10 s from their accept) closes them */
    for (int i = 1; i < 32; i++)
        assert_false(wait_readable(idle[i], 0));
    uint64_t t0 = uv_hrtime();
    raw = read_until_close(idle[1], 15000, &closed);
    assert_true(closed);
    assert_string_equal(raw, "");
    free(raw);
    assert_true(uv_hrtime() - t0 > 5000000000ull); /* not closed early */
    for (int i = 2; i < 32; i++) {
        raw = read_until_close(idle[i], 5000, &closed);
        assert_true(closed);
        free(raw);
        close(idle[i]);
    }
    close(idle[1]);
    /* the listener still serves */
    resp r = request(port, "GET /metrics HTTP/1.1\r\n\r\n");
    assert_int_equal(r.status, 200);
    free(r.raw);
    orpc_server_free(srv);
}

static void test_addresses(void **state)
{
    (void)state;
    orpc_server_opts o = {0};
    o.plaintext = 1;
    orpc_server *srv = NULL;
    orpc_error_detail d;
    const char *bad[] = {
        "nohost",  "127.0.0.1:", "127.0.0.1:99999", "example.invalid:80",
        "[::1:80", "1.2.3.4.5:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        o.admin_address = bad[i];
        assert_int_equal(orpc_server_new(&srv, &o, NULL, &d), ORPC_EADDR);
        assert_null(srv);
        assert_non_null(strstr(d.message, "admin_address"));
    }
    /* a port in use */
    int port = 0;
    orpc_server *first = server_with_admin(NULL, &port);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    o.admin_address = addr;
    assert_int_equal(orpc_server_new(&srv, &o, NULL, &d), ORPC_EADDR);
    assert_null(srv);
    orpc_server_free(first);
    /* no admin_address: no listener */
    o.admin_address = NULL;
    assert_int_equal(orpc_server_new(&srv, &o, NULL, NULL), 0);
    assert_int_equal(orpc_server_admin_port(srv), 0);
    orpc_server_free(srv);
    assert_int_equal(orpc_server_admin_port(NULL), 0);
    /* localhost and a fixed port (the one just freed) */
    snprintf(addr, sizeof(addr), "localhost:%d", port);
    o.admin_address = addr;
    assert_int_equal(orpc_server_new(&srv, &o, NULL, NULL), 0);
    assert_int_equal(orpc_server_admin_port(srv), port);
    orpc_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_and_health),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_connection_bound_and_slow_clients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
