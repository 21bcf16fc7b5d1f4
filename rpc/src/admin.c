/*
 * admin.c — a server's admin listener: a small HTTP/1.1 server on a libuv
 * loop of its own thread, answering GET /metrics with the Prometheus page
 * of the server's registry and GET /healthz with the server's overall
 * health, for scrapers and orchestrators that speak neither gRPC nor
 * HTTP/2.
 *
 * Why a thread of its own: the page is rendered on the listener's thread,
 * so a scrape never holds up an IO thread's calls, and the listener stays
 * up while those threads are busy; it costs one thread, idle between
 * scrapes.
 *
 * Design notes:
 * - One request per connection: the head is read (at most MAX_HEAD bytes,
 *   else 431), answered with Connection: close, the write side shut down,
 *   the connection closed.  Nothing after the head is read.
 * - At most MAX_CONNS connections are open.  At the bound the listener
 *   leaves the next connection unaccepted (libuv then stops polling the
 *   listening socket, and the kernel's backlog holds the rest); it is
 *   accepted when a connection closes (or, when memory ran out accepting
 *   it, 100 ms later).
 * - Each connection has one timer, READ_TIMEOUT_MS from its accept: a
 *   client that sends no complete head, or reads no response, by then is
 *   closed.  A slow client holds one of the MAX_CONNS places, never the
 *   loop.
 * - Stopping: the owner's thread sends the loop an async wake-up; the loop
 *   closes the listener and every connection, uv_run returns, the owner
 *   joins the thread.
 * - Memory comes from the C library: the listener is no per-call object
 *   and makes a handful of blocks per scrape.
 *
 * Threads: everything below runs on the listener's thread, except
 * orpc__admin_start() and orpc__admin_stop() (the owner's, before the
 * thread starts and after it is woken) and orpc__admin_port() (any; the
 * port is set before the thread starts and never changes).
 */
#include "admin.h"

#include "server_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "common/detail.h"

#define MAX_CONNS 32
#define MAX_HEAD 8192
#define READ_TIMEOUT_MS 10000

typedef struct aconn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    uv_shutdown_t sd;
    struct orpc__admin *a;
    struct aconn *prev, *next;
    int closing;
    int open_handles; /* freed when both are closed */
    int answered;
    char *resp;
    size_t len;
    char head[MAX_HEAD];
} aconn;

struct orpc__admin {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t wake;
    uv_timer_t retry; /* out of memory accepting: try again soon */
    uv_thread_t thread;
    orpc_server *srv;
    orpc_metrics *metrics;
    int port;
    unsigned n_conns;
    int pending;  /* a connection waits on the listener for a place */
    int stopping; /* set by the wake-up */
    aconn *conns;
};

/* ---- connections --------------------------------------------------------- */

static void accept_one(orpc__admin *a);

static void on_retry(uv_timer_t *t)
{
    orpc__admin *a = t->data;
    if (a->pending && !a->stopping && a->n_conns < MAX_CONNS) {
        a->pending = 0;
        accept_one(a);
    }
}

static void conn_closed(uv_handle_t *h)
{
    aconn *c = h->data;
    if (--c->open_handles > 0)
        return;
    orpc__admin *a = c->a;
    if (c->prev)
        c->prev->next = c->next;
    else
        a->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->resp);
    free(c);
    a->n_conns--;
    if (a->pending && !a->stopping) {
        a->pending = 0;
        accept_one(a);
    }
}

static void conn_close(aconn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->tcp, conn_closed);
    uv_close((uv_handle_t *)&c->timer, conn_closed);
}

static void on_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_shutdown(uv_shutdown_t *sd, int status)
{
    (void)status;
    conn_close(sd->data);
}

static void on_written(uv_write_t *wr, int status)
{
    aconn *c = wr->data;
    if (status != 0 || c->closing ||
        uv_shutdown(&c->sd, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        conn_close(c);
}

/* Sends one response and ends the connection after it. */
static void respond(aconn *c, int code, const char *reason,
                    const char *extra_headers, const char *ctype,
                    const char *body, size_t body_len, int head_only)
{
    c->answered = 1;
    uv_read_stop((uv_stream_t *)&c->tcp);
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\n%sConnection: close\r\n\r\n",
                     code, reason, ctype, body_len, extra_headers);
    size_t hl = (size_t)n < sizeof(head) ? (size_t)n : sizeof(head) - 1;
    size_t total = hl + (head_only ? 0 : body_len);
    c->resp = malloc(total ? total : 1);
    if (c->resp == NULL) {
        conn_close(c);
        return;
    }
    memcpy(c->resp, head, hl);
    if (!head_only && body_len)
        memcpy(c->resp + hl, body, body_len);
    uv_buf_t buf = uv_buf_init(c->resp, (unsigned)total);
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &buf, 1, on_written) != 0)
        conn_close(c);
}

static void respond_text(aconn *c, int code, const char *reason,
                         const char *body, int head_only)
{
    respond(c, code, reason, "", "text/plain; charset=utf-8", body,
            strlen(body), head_only);
}

static const char *health_name(orpc_health_status st)
{
    switch (st) {
    case ORPC_HEALTH_SERVING:
        return "SERVING\n";
    case ORPC_HEALTH_NOT_SERVING:
        return "NOT_SERVING\n";
    case ORPC_HEALTH_UNKNOWN:
        return "UNKNOWN\n";
    default:
        return "SERVICE_UNKNOWN\n";
    }
}

/* The head is complete (|c->head|, |end| bytes up to its blank line). */
static void serve(aconn *c, size_t end)
{
    orpc__admin *a = c->a;
    /* request line: METHOD SP target SP HTTP/1.x CRLF */
    char method[16], target[1024], version[16];
    char line[sizeof(method) + sizeof(target) + sizeof(version) + 4];
    const char *eol = memchr(c->head, '\n', end);
    size_t ll = eol ? (size_t)(eol - c->head) : end;
    if (ll > 0 && c->head[ll - 1] == '\r')
        ll--;
    if (ll >= sizeof(line)) {
        respond_text(c, 414, "URI Too Long", "URI too long\n", 0);
        return;
    }
    memcpy(line, c->head, ll);
    line[ll] = '\0';
    char extra;
    if (sscanf(line, "%15s %1023s %15s %c", method, target, version, &extra) !=
            3 ||
        strncmp(version, "HTTP/1.", 7) != 0) {
        respond_text(c, 400, "Bad Request", "bad request\n", 0);
        return;
    }
    int head_only = strcmp(method, "HEAD") == 0;
    int get = head_only || strcmp(method, "GET") == 0;
    char *q = strchr(target, '?');
    if (q)
        *q = '\0';
    int metrics = strcmp(target, "/metrics") == 0;
    int healthz = strcmp(target, "/healthz") == 0;
    if (!metrics && !healthz) {
        respond_text(c, 404, "Not Found", "not found\n", head_only);
    } else if (!get) {
        respond(c, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n",
                "text/plain; charset=utf-8", "method not allowed\n",
                strlen("method not allowed\n"), 0);
    } else if (healthz) {
        orpc_health_status st = orpc__health_get(a->srv, "");
        respond_text(c, st == ORPC_HEALTH_SERVING ? 200 : 503,
                     st == ORPC_HEALTH_SERVING ? "OK" : "Service Unavailable",
                     health_name(st), head_only);
    } else {
        char *page = NULL;
        size_t len = 0;
        if (a->metrics == NULL) {
            respond(c, 200, "OK", "", "text/plain; version=0.0.4", "", 0,
                    head_only);
        } else if (orpc_metrics_prometheus(a->metrics, &page, &len) != 0) {
            respond_text(c, 500, "Internal Server Error", "out of memory\n",
                         head_only);
        } else {
            respond(c, 200, "OK", "", "text/plain; version=0.0.4", page, len,
                    head_only);
        }
        free(page);
    }
}

/* The length of the head up to and including its blank line, or 0 while
 * it is not complete. */
static size_t head_end(const char *p, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (p[i] != '\n')
            continue;
        if (p[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && p[i + 1] == '\r' && p[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    aconn *c = h->data;
    *buf = uv_buf_init(c->head + c->len, (unsigned)(MAX_HEAD - c->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    aconn *c = s->data;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if (n == 0 || c->answered)
        return;
    size_t from = c->len > 2 ? c->len - 2 : 0;
    c->len += (size_t)n;
    size_t end = head_end(c->head + from, c->len - from);
    if (end > 0)
        serve(c, from + end);
    else if (c->len == MAX_HEAD)
        respond_text(c, 431, "Request Header Fields Too Large",
                     "request head too large\n", 0);
}

static void accept_one(orpc__admin *a)
{
    aconn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        /* try again when a connection closes, or in 100 ms */
        a->pending = 1;
        uv_timer_start(&a->retry, on_retry, 100, 0);
        return;
    }
    c->a = a;
    c->tcp.data = c;
    c->timer.data = c;
    c->sd.data = c;
    uv_tcp_init(&a->loop, &c->tcp);
    uv_timer_init(&a->loop, &c->timer);
    c->open_handles = 2;
    c->next = a->conns;
    if (a->conns)
        a->conns->prev = c;
    a->conns = c;
    a->n_conns++;
    if (uv_accept((uv_stream_t *)&a->listener, (uv_stream_t *)&c->tcp) != 0 ||
        uv_timer_start(&c->timer, on_timeout, READ_TIMEOUT_MS, 0) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        conn_close(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    orpc__admin *a = server->data;
    if (status != 0 || a->stopping)
        return;
    if (a->n_conns >= MAX_CONNS) {
        a->pending = 1; /* left on the listener: libuv stops polling it */
        return;
    }
    accept_one(a);
}

/* ---- the listener -------------------------------------------------------- */

static void on_wake(uv_async_t *h)
{
    orpc__admin *a = h->data;
    a->stopping = 1;
    uv_close((uv_handle_t *)&a->listener, NULL);
    uv_close((uv_handle_t *)&a->wake, NULL);
    uv_close((uv_handle_t *)&a->retry, NULL);
    for (aconn *c = a->conns; c; c = c->next)
        conn_close(c);
}

static void run(void *arg)
{
    orpc__admin *a = arg;
    uv_run(&a->loop, UV_RUN_DEFAULT);
}

/* Undoes a start that failed after the loop was made. */
static void abandon(orpc__admin *a)
{
    uv_close((uv_handle_t *)&a->listener, NULL);
    uv_close((uv_handle_t *)&a->wake, NULL);
    uv_close((uv_handle_t *)&a->retry, NULL);
    uv_run(&a->loop, UV_RUN_DEFAULT);
    uv_loop_close(&a->loop);
    orpc_metrics_unref(a->metrics);
    free(a);
}

int orpc__admin_start(orpc__admin **out, const char *address, orpc_server *srv,
                      orpc_metrics *metrics, orpc_error_detail *detail)
{
    if (out == NULL || address == NULL)
        return orpc__detail_set(detail, ORPC_EINVAL, "admin_address: missing");
    *out = NULL;
    struct sockaddr_storage ss;
    if (orpc__parse_hostport(address, &ss) != 0)
        return orpc__detail_set(detail, ORPC_EADDR,
                                "admin_address: %s: not a host:port", address);
    orpc__admin *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return orpc__detail_set(detail, ORPC_ENOMEM,
                                "out of memory creating the admin listener");
    a->srv = srv;
    a->metrics = orpc_metrics_ref(metrics);
    if (uv_loop_init(&a->loop) != 0) {
        orpc_metrics_unref(a->metrics);
        free(a);
        return orpc__detail_set(detail, ORPC_ESYS,
                                "admin listener: no event loop");
    }
    uv_tcp_init(&a->loop, &a->listener);
    uv_async_init(&a->loop, &a->wake, on_wake);
    uv_timer_init(&a->loop, &a->retry);
    a->retry.data = a;
    a->listener.data = a;
    a->wake.data = a;
    int rc = uv_tcp_bind(&a->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&a->listener, 64, on_connection);
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    if (rc == 0)
        rc = uv_tcp_getsockname(&a->listener, (struct sockaddr *)&bound, &blen);
    if (rc != 0) {
        abandon(a);
        return orpc__detail_set(detail, ORPC_EADDR, "admin_address: %s: %s",
                                address, uv_strerror(rc));
    }
    a->port = ntohs(bound.ss_family == AF_INET6
                        ? ((struct sockaddr_in6 *)&bound)->sin6_port
                        : ((struct sockaddr_in *)&bound)->sin_port);
    if (uv_thread_create(&a->thread, run, a) != 0) {
        abandon(a);
        return orpc__detail_set(detail, ORPC_ESYS,
                                "admin listener: cannot start its thread");
    }
    *out = a;
    return 0;
}

int orpc__admin_port(const orpc__admin *a)
{
    return a ? a->port : 0;
}

void orpc__admin_stop(orpc__admin *a)
{
    if (a == NULL)
        return;
    uv_async_send(&a->wake);
    uv_thread_join(&a->thread);
    uv_loop_close(&a->loop);
    orpc_metrics_unref(a->metrics);
    free(a);
}
