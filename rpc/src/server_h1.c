/*
 * server_h1.c — HTTP/1.1 on the server's listeners: choosing the protocol
 * of a new connection (the HTTP/2 preface, an HTTP/1.x request line, or
 * ALPN), parsing requests with http-parser, and the exchanges of
 * orpc/gateway.h: the gateway's on_request (on the IO thread first for an
 * inline_first gateway, else or then on the worker pool), its answers,
 * and the calls it runs through the same path as gRPC calls (orpc_ctx,
 * interceptors, identity, policy, deadline, limits, handler).
 *
 * Design notes:
 * - A connection is a server connection like any other (orpc__sconn, its
 *   orpc__conn, TLS or not, counted in max_connections) that has no nghttp2
 *   session: its plaintext goes to h1_input() (orpc__conn.in_hook) and its
 *   answers are written by h1_pull() (orpc__conn.out_hook), which the
 *   connection calls when a flush finds no write in flight — the same
 *   end-of-turn coalescing and one-write-at-a-time back-pressure as HTTP/2.
 * - One exchange at a time per connection: when a request is complete the
 *   parser is paused, later bytes (pipelined requests) wait in |in|, and
 *   past H1_MAX_BUFFERED of them the socket is no longer read.  The next
 *   request is parsed only once the answer to this one is written, so
 *   answers go out in the order of the requests.
 * - The connection's timer (orpc__sconn.timer, phase ORPC__SC_H1) is the
 *   idle timeout between requests, the header timeout from a request's
 *   first byte to the end of its head, and the body timeout after it; none
 *   runs while an exchange is being answered.
 * - An exchange's call is an orpc_ctx with |x| set, on the connection's
 *   list of calls (a lost connection cancels it as it cancels HTTP/2
 *   calls).  Where the HTTP/2 path queues encoded messages for nghttp2, the
 *   call asks the gateway to encode (on_message, the handler's thread):
 *   a unary response into the exchange's body, a streamed one into a chunk
 *   on ctx->sendq, so ORPC__SENDQ_LIMIT stalls the handler of a peer that
 *   does not read, exactly as on HTTP/2.
 * - An exchange has three references: the IO side (until its answer is
 *   written or its connection lost), the worker running on_request, and
 *   its call.  The last one posts on_done to the IO thread.
 * - An inline_first gateway's on_request runs in dispatch(), on the IO
 *   thread, with no worker reference: an answer is written at the next
 *   flush, a call starts at once (start_call(), as after a worker's
 *   on_request).  ORPC_EBLOCKING with nothing answered hands the exchange
 *   to a worker as without the flag.  The hand-off (pool, post back) is
 *   what made a legacy request cost twice a gRPC one.
 * - Answers ready at once (inline) are coalesced: h1_pull() writes one and
 *   goes on with the next pipelined request while it is answered at once,
 *   up to H1_MAX_OUT bytes waiting, so a pipelined burst is one write.
 *
 * Why one file of this size: its one job is the HTTP/1.1 side of a server
 * connection, and the pieces are one state machine over one connection and
 * its current exchange (sniffing hands the connection to the parser, the
 * parser to the exchange, the exchange's answer back to the parser for the
 * next pipelined request); split, they would share orpc__h1 and the
 * exchange's fields across files.  About a fifth is the public
 * orpc_http_* accessors at the end, thin reads of the exchange.
 *
 * Locking theory: x->lock guards x->refs only.  x->cb_lock serialises the
 * gateway's callbacks that build the answer (on_message on the handler's
 * thread, on_status on the IO thread) and the exchange functions they call;
 * the IO thread reads the answer only after on_status returned, under it.
 * Neither is held while taking ctx->lock, nor the other way round.
 * Everything else of a connection belongs to its IO thread.
 */
#include "server_internal.h"

#include <http_parser.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <orpc/error.h>

#include "admin.h"
#include "common/buf.h"
#include "common/mem.h"
#include "metadata_internal.h"

/* Pipelined bytes held while an exchange is answered before the socket is
 * no longer read. */
#define H1_MAX_BUFFERED (64u * 1024u)
/* Encoded answer bytes waiting for the socket before a streaming answer
 * stops taking from its call's queue. */
#define H1_MAX_OUT (256u * 1024u)

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* How long an answered-and-closing connection keeps reading (and
 * dropping) what its peer still sends, so that the answer is read before
 * the close (lingering close). */
#define H1_LINGER_MS 2000

enum { H1_IDLE, H1_HEAD, H1_BODY, H1_BUSY, H1_LINGER };

typedef struct orpc__h1 {
    orpc__sconn *sc;
    http_parser parser;
    orpc__buf in; /* received, not yet parsed */
    size_t in_off;
    int phase;
    int closing;  /* answered an error or a last request: no more parsing */
    int draining; /* server shutdown: close after the answer in progress */
    /* the request being parsed */
    struct orpc_http_exchange *building;
    orpc__buf url, field, value;
    int in_value;
    size_t hdr_bytes;
    unsigned n_hdrs;
    int err_status; /* a limit crossed in a callback */
    const char *err_detail;
    /* the request being answered */
    struct orpc_http_exchange *active;
} orpc__h1;

struct orpc_http_exchange {
    orpc_server *srv;
    orpc__srv_io *sio;
    orpc__h1 *h1; /* IO thread; NULL once answered or the connection lost */
    orpc_arena *arena;
    char *method;
    char *target;
    orpc_metadata *headers;
    orpc__buf body;
    int minor; /* HTTP/1.minor */
    int keep_alive;
    int head_only;
    char peer[72];
    char *peer_identity;
    void *state;
    /* the answer (cb_lock) */
    uv_mutex_t cb_lock;
    int status;
    orpc__buf resp_head; /* "Name: value\r\n" lines */
    orpc__buf resp_body;
    char *resp_ctype;
    int responded;
    int call_pending;
    int in_request; /* on_request is running */
    char *call_path;
    const ProtobufCMessage *call_req;
    int64_t call_timeout_ms;
    char *call_identity;
    orpc_metadata *call_md;
    char *stream_ctype;
    atomic_int started;
    /* IO thread */
    int ready; /* the answer is complete: write it */
    orpc_ctx *ctx;
    int chunked;    /* a streaming answer's head went out chunked */
    int sealed;     /* cb_lock: on_status ran; late messages are dropped */
    int to_gateway; /* given to on_request: on_done is owed */
    /* references (lock) */
    uv_mutex_t lock;
    int refs;
    orpc__task task;
    orpc__job job;
};

/* ---- exchanges -------------------------------------------------------- */

static orpc_http_exchange *x_new(orpc__h1 *h1)
{
    orpc__sconn *sc = h1->sc;
    orpc_server *srv = sc->sio->srv;
    orpc_http_exchange *x = orpc__mem_calloc(&srv->mem, 1, sizeof(*x));
    if (x == NULL)
        return NULL;
    if (orpc_arena_new(&x->arena, 0, &srv->mem) != 0 ||
        orpc_metadata_new(&x->headers, &srv->mem) != 0) {
        orpc_arena_free(x->arena);
        orpc__mem_free(&srv->mem, x);
        return NULL;
    }
    uv_mutex_init(&x->lock);
    uv_mutex_init(&x->cb_lock);
    x->srv = srv;
    x->sio = sc->sio;
    x->refs = 1; /* the IO side */
    x->status = 200;
    orpc__buf_init(&x->body, &srv->mem);
    orpc__buf_init(&x->resp_head, &srv->mem);
    orpc__buf_init(&x->resp_body, &srv->mem);
    memcpy(x->peer, sc->conn->peer, sizeof(x->peer));
    if (sc->conn->peer_identity != NULL) {
        size_t n = strlen(sc->conn->peer_identity) + 1;
        x->peer_identity = orpc_arena_alloc(x->arena, n);
        if (x->peer_identity != NULL)
            memcpy(x->peer_identity, sc->conn->peer_identity, n);
    }
    orpc__srv_ref(srv);
    return x;
}

static void x_free(orpc_http_exchange *x)
{
    orpc_server *srv = x->srv;
    orpc_metadata_free(x->headers);
    orpc_metadata_free(x->call_md);
    orpc__buf_free(&x->body);
    orpc__buf_free(&x->resp_head);
    orpc__buf_free(&x->resp_body);
    orpc__mem_free(&srv->mem, x->resp_ctype);
    orpc__mem_free(&srv->mem, x->call_path);
    orpc__mem_free(&srv->mem, x->call_identity);
    orpc__mem_free(&srv->mem, x->stream_ctype);
    orpc_arena_free(x->arena);
    uv_mutex_destroy(&x->lock);
    uv_mutex_destroy(&x->cb_lock);
    orpc__mem_free(&srv->mem, x);
    orpc__srv_unref(srv);
}

/* The exchange is over: the gateway frees its state (IO thread). */
static void done_task(orpc__task *t, void *arg)
{
    orpc_http_exchange *x = arg;
    (void)t;
    const orpc_gateway *gw = x->srv->gw;
    if (x->to_gateway && gw != NULL && gw->on_done != NULL)
        gw->on_done(x, x->srv->gw_ud);
    x_free(x);
}

static void x_ref(orpc_http_exchange *x)
{
    uv_mutex_lock(&x->lock);
    x->refs++;
    uv_mutex_unlock(&x->lock);
}

/* Drops a reference (any thread); the last posts on_done to the IO
 * thread (or runs it here when the thread has stopped). */
static void x_unref(orpc_http_exchange *x)
{
    uv_mutex_lock(&x->lock);
    int left = --x->refs;
    uv_mutex_unlock(&x->lock);
    if (left > 0)
        return;
    orpc__task_init(&x->task, done_task, x);
    if (orpc__io_post(&x->sio->io, &x->task) != 0)
        done_task(&x->task, x);
}

/* ---- writing answers (IO thread) -------------------------------------- */

static const char *reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 499:
        return "Client Closed Request";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}

/* Appends the decimal |v| (no printf on the answer's path). */
static void put_size(orpc__buf *b, size_t v)
{
    char d[24];
    size_t i = sizeof(d);
    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    orpc__buf_append(b, d + i, sizeof(d) - i);
}

/* "HTTP/1.1 <status> <reason>\r\n" */
static void put_status_line(orpc__buf *b, int status)
{
    char line[16] = "HTTP/1.1 000 ";
    line[9] = (char)('0' + status / 100 % 10);
    line[10] = (char)('0' + status / 10 % 10);
    line[11] = (char)('0' + status % 10);
    orpc__buf_append(b, line, 13);
    orpc__buf_puts(b, reason(status));
    orpc__buf_append(b, "\r\n", 2);
}

/* A whole answer with its Content-Length.  |close| adds Connection: close
 * (the caller closes after the flush).  Head and body are built in one
 * allocation, reserved up front, with no printf. */
static void write_answer(orpc__conn *c, int status, const char *ctype,
                         const orpc__buf *extra, const void *body, size_t len,
                         int close, int minor, int head_only)
{
    orpc__buf h;
    orpc__buf_init(&h, c->mem);
    int with_body = status != 204 && status != 304;
    if (orpc__buf_reserve(&h, 160 + (extra ? extra->len : 0) +
                                  (with_body && !head_only ? len : 0)) != 0) {
        orpc__conn_close(c, "out of memory");
        orpc__buf_free(&h);
        return;
    }
    put_status_line(&h, status);
    if (ctype != NULL) {
        orpc__buf_append(&h, "Content-Type: ", 14);
        orpc__buf_puts(&h, ctype);
        orpc__buf_append(&h, "\r\n", 2);
    }
    if (with_body) {
        orpc__buf_append(&h, "Content-Length: ", 16);
        put_size(&h, len);
        orpc__buf_append(&h, "\r\n", 2);
    }
    if (close)
        orpc__buf_puts(&h, "Connection: close\r\n");
    else if (minor == 0)
        orpc__buf_puts(&h, "Connection: keep-alive\r\n");
    if (extra != NULL && extra->len > 0)
        orpc__buf_append(&h, extra->data, extra->len);
    orpc__buf_append(&h, "\r\n", 2);
    if (!head_only && with_body)
        orpc__buf_append(&h, body, len);
    if (h.failed)
        orpc__conn_close(c, "out of memory");
    else
        orpc__conn_write_raw(c, h.data, h.len);
    orpc__buf_free(&h);
}

/* {"detail": |detail|} (|detail| is the runtime's own text: no escaping
 * needed beyond what it never contains). */
static void h1_error(orpc__h1 *h1, int status, const char *detail)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "{\"detail\":\"%s\"}", detail);
    orpc__conn *c = h1->sc->conn;
    if (h1->closing || c->closing)
        return;
    h1->closing = 1;
    write_answer(c, status, "application/json", NULL, body, (size_t)n, 1, 1, 0);
    if (h1->sc->timer == NULL) {
        orpc__conn_close_after_flush(c, detail);
        return;
    }
    /* The request may not have been read whole (a body over the limit, a
     * flood of headers): closing with its bytes unread would make the
     * kernel reset the connection, and a reset can destroy the answer
     * before the client reads it.  So: half-close after the answer, drop
     * what still comes, and close at the peer's FIN or H1_LINGER_MS. */
    h1->phase = H1_LINGER;
    orpc__sconn_timer_start(h1->sc, H1_LINGER_MS);
    orpc__conn_close_lingering(c, detail);
}

/* ---- parsing (IO thread) ---------------------------------------------- */

static orpc__h1 *h1_of(http_parser *p)
{
    return p->data;
}

static void set_timer(orpc__h1 *h1, int phase)
{
    const orpc_server_opts *o = &h1->sc->sio->srv->opts;
    h1->phase = phase;
    if (h1->sc->timer == NULL)
        return;
    switch (phase) {
    case H1_IDLE:
        orpc__sconn_timer_start(h1->sc, o->http1_idle_timeout_ms);
        break;
    case H1_HEAD:
        orpc__sconn_timer_start(h1->sc, o->http1_header_timeout_ms);
        break;
    case H1_BODY:
        orpc__sconn_timer_start(h1->sc, o->http1_body_timeout_ms);
        break;
    default:
        uv_timer_stop(h1->sc->timer);
        break;
    }
}

static int fail_cb(orpc__h1 *h1, int status, const char *detail)
{
    if (h1->err_status == 0) {
        h1->err_status = status;
        h1->err_detail = detail;
    }
    return -1;
}

static int on_message_begin(http_parser *p)
{
    orpc__h1 *h1 = h1_of(p);
    h1->building = x_new(h1);
    if (h1->building == NULL)
        return fail_cb(h1, 503, "out of memory");
    h1->url.len = 0;
    h1->field.len = 0;
    h1->value.len = 0;
    h1->in_value = 0;
    h1->hdr_bytes = 0;
    h1->n_hdrs = 0;
    if (h1->phase != H1_HEAD)
        set_timer(h1, H1_HEAD);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    orpc__h1 *h1 = h1_of(p);
    const orpc_server_opts *o = &h1->sc->sio->srv->opts;
    if (h1->url.len + len > o->http1_max_request_line)
        return fail_cb(h1, 414, "request target too long");
    if (orpc__buf_append(&h1->url, at, len) != 0)
        return fail_cb(h1, 503, "out of memory");
    return 0;
}

static char *arena_strndup(orpc_arena *a, const void *p, size_t n)
{
    char *s = orpc_arena_alloc(a, n + 1);
    if (s != NULL) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

/* The header whose name and value were collected goes on the list. */
static int commit_header(orpc__h1 *h1)
{
    orpc_http_exchange *x = h1->building;
    const orpc_server_opts *o = &h1->sc->sio->srv->opts;
    h1->in_value = 0;
    if (++h1->n_hdrs > o->http1_max_headers)
        return fail_cb(h1, 431, "too many header fields");
    char *k = arena_strndup(x->arena, h1->field.data, h1->field.len);
    /* (optional whitespace around the value is the parser's to drop; a
     * trailing one it leaves) */
    size_t vlen = h1->value.len;
    while (vlen > 0 && (h1->value.data[vlen - 1] == ' ' ||
                        h1->value.data[vlen - 1] == '\t'))
        vlen--;
    char *v = arena_strndup(x->arena, h1->value.data, vlen);
    if (k == NULL || v == NULL ||
        orpc__md_add_borrowed(x->headers, k, (uint8_t *)v, vlen) != 0)
        return fail_cb(h1, 503, "out of memory");
    for (char *q = k; *q; q++)
        if (*q >= 'A' && *q <= 'Z')
            *q = (char)(*q - 'A' + 'a');
    h1->field.len = 0;
    h1->value.len = 0;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    orpc__h1 *h1 = h1_of(p);
    const orpc_server_opts *o = &h1->sc->sio->srv->opts;
    if (h1->in_value && commit_header(h1) != 0)
        return -1;
    h1->hdr_bytes += len;
    if (h1->hdr_bytes > o->http1_max_header_bytes)
        return fail_cb(h1, 431, "request header section too large");
    if (orpc__buf_append(&h1->field, at, len) != 0)
        return fail_cb(h1, 503, "out of memory");
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    orpc__h1 *h1 = h1_of(p);
    const orpc_server_opts *o = &h1->sc->sio->srv->opts;
    h1->in_value = 1;
    h1->hdr_bytes += len;
    if (h1->hdr_bytes > o->http1_max_header_bytes)
        return fail_cb(h1, 431, "request header section too large");
    if (orpc__buf_append(&h1->value, at, len) != 0)
        return fail_cb(h1, 503, "out of memory");
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    orpc__h1 *h1 = h1_of(p);
    orpc_http_exchange *x = h1->building;
    const orpc_server_opts *o = &h1->sc->sio->srv->opts;
    if (h1->in_value && commit_header(h1) != 0)
        return -1;
    if (h1->url.len == 0)
        return fail_cb(h1, 400, "no request target");
    x->target = arena_strndup(x->arena, h1->url.data, h1->url.len);
    x->method = arena_strndup(x->arena, http_method_str(p->method),
                              strlen(http_method_str(p->method)));
    if (x->target == NULL || x->method == NULL)
        return fail_cb(h1, 503, "out of memory");
    x->minor = p->http_major == 1 ? p->http_minor : 0;
    x->keep_alive = http_should_keep_alive(p) && !h1->draining;
    x->head_only = p->method == HTTP_HEAD;
    if (p->http_major != 1)
        return fail_cb(h1, 400, "unsupported HTTP version");
    int has_body = (p->flags & F_CHUNKED) ||
                   ((p->flags & F_CONTENTLENGTH) && p->content_length > 0);
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > o->http1_max_body)
        return fail_cb(h1, 413, "request body too large");
    const uint8_t *ev;
    size_t elen;
    if (orpc_metadata_get(x->headers, "expect", &ev, &elen) == 0) {
        if (elen != 12 ||
            strncasecmp((const char *)ev, "100-continue", 12) != 0)
            return fail_cb(h1, 417, "unsupported expectation");
        if (has_body && x->minor >= 1) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            orpc__conn_write_raw(h1->sc->conn, cont, sizeof(cont) - 1);
            orpc__conn_kick(h1->sc->conn);
        }
    }
    set_timer(h1, has_body ? H1_BODY : H1_BUSY);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    orpc__h1 *h1 = h1_of(p);
    orpc_http_exchange *x = h1->building;
    const orpc_server_opts *o = &h1->sc->sio->srv->opts;
    if (x->body.len + len > o->http1_max_body)
        return fail_cb(h1, 413, "request body too large");
    if (orpc__buf_append(&x->body, at, len) != 0)
        return fail_cb(h1, 503, "out of memory");
    return 0;
}

static int on_message_complete(http_parser *p)
{
    orpc__h1 *h1 = h1_of(p);
    h1->active = h1->building;
    h1->building = NULL;
    set_timer(h1, H1_BUSY);
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- answering without a gateway (IO thread) -------------------------- */

static void builtin_answer(orpc_http_exchange *x)
{
    static const char nf[] = "{\"detail\":\"Not Found\"}";
    const char *path = x->target;
    size_t plen = strcspn(path, "?");
    if (strcmp(x->method, "GET") == 0 && plen == 7 &&
        memcmp(path, "/health", 7) == 0) {
        int ok = x->srv->health == NULL ||
                 orpc__health_get(x->srv, "") == ORPC_HEALTH_SERVING;
        const char *b =
            ok ? "{\"status\":\"SERVING\"}" : "{\"status\":\"NOT_SERVING\"}";
        x->status = ok ? 200 : 503;
        orpc__buf_puts(&x->resp_body, b);
    } else {
        x->status = 404;
        orpc__buf_puts(&x->resp_body, nf);
    }
    x->resp_ctype = orpc__mem_strdup(&x->srv->mem, "application/json");
    x->ready = 1;
}

/* ---- running on_request (IO thread or a worker) ----------------------- */

static void start_call(orpc_http_exchange *x);

static void after_request(orpc_http_exchange *x);

static void request_done_task(orpc__task *t, void *arg)
{
    orpc_http_exchange *x = arg;
    (void)t;
    if (x->h1 != NULL)
        after_request(x);
    x_unref(x); /* the worker's */
}

static void set_error_body(orpc_http_exchange *x, int status,
                           const char *detail)
{
    x->status = status;
    x->resp_body.len = 0;
    x->resp_body.failed = 0;
    orpc__buf_printf(&x->resp_body, "{\"detail\":\"%s\"}", detail);
    orpc__mem_free(&x->srv->mem, x->resp_ctype);
    x->resp_ctype = orpc__mem_strdup(&x->srv->mem, "application/json");
}

/* Runs the gateway's on_request and settles what it left: no answer and
 * no call (or an error) answers 500.  On the IO thread (|io|) an
 * ORPC_EBLOCKING before anything was answered or called returns 1: the
 * exchange goes to a worker. */
static int run_on_request(orpc_http_exchange *x, int io)
{
    orpc_server *srv = x->srv;
    uv_mutex_lock(&x->cb_lock);
    x->in_request = 1;
    uv_mutex_unlock(&x->cb_lock);
    int rc = srv->gw->on_request(x, srv->gw_ud);
    uv_mutex_lock(&x->cb_lock);
    x->in_request = 0;
    int handoff = io && rc == ORPC_EBLOCKING && !x->responded &&
                  !x->call_pending && x->resp_head.len == 0;
    if (!handoff && (rc < 0 || (!x->responded && !x->call_pending))) {
        x->call_pending = 0;
        x->responded = 1;
        set_error_body(x, 500, "the request was not answered");
    }
    uv_mutex_unlock(&x->cb_lock);
    return handoff;
}

/* What on_request left, acted on (IO thread): the call starts, or the
 * answer is written at the next flush. */
static void after_request(orpc_http_exchange *x)
{
    if (x->call_pending) {
        start_call(x);
    } else {
        x->ready = 1;
        orpc__conn_kick(x->h1->sc->conn);
    }
}

static void request_job(orpc__job *j)
{
    orpc_http_exchange *x =
        (orpc_http_exchange *)((char *)j - offsetof(orpc_http_exchange, job));
    orpc_server *srv = x->srv;
    run_on_request(x, 0);
    atomic_fetch_sub(&srv->h1_pending, 1);
    orpc__task_init(&x->task, request_done_task, x);
    if (orpc__io_post(&x->sio->io, &x->task) != 0)
        x_unref(x); /* shutting down: the connection goes too */
}

/* A complete request: answer it or hand it to the gateway (on this
 * thread first when it asks, then a worker). */
static void dispatch(orpc__h1 *h1)
{
    orpc_http_exchange *x = h1->active;
    orpc_server *srv = x->srv;
    x->h1 = h1;
    if (srv->gw == NULL) {
        builtin_answer(x);
        orpc__conn_kick(h1->sc->conn);
        return;
    }
    if (srv->gw->inline_first) {
        x->to_gateway = 1;
        if (!run_on_request(x, 1)) {
            after_request(x);
            return;
        }
    }
    if (atomic_fetch_add(&srv->h1_pending, 1) >= srv->opts.http1_max_pending) {
        atomic_fetch_sub(&srv->h1_pending, 1);
        set_error_body(x, 503,
                       "server overloaded: too many HTTP requests "
                       "wait for a worker");
        x->keep_alive = 0;
        x->ready = 1;
        orpc__conn_kick(h1->sc->conn);
        return;
    }
    x_ref(x);                  /* the worker's */
    int given = x->to_gateway; /* (on_request ran inline already) */
    x->to_gateway = 1;
    x->job.fn = request_job;
    if (orpc__pool_submit(&srv->pool, &x->job) != 0) {
        atomic_fetch_sub(&srv->h1_pending, 1);
        x->to_gateway = given;
        x_unref(x);
        set_error_body(x, 503, "server overloaded");
        x->keep_alive = 0;
        x->ready = 1;
        orpc__conn_kick(h1->sc->conn);
    }
}

/* Parses what is buffered while no exchange is being answered. */
static void h1_process(orpc__h1 *h1)
{
    orpc__conn *c = h1->sc->conn;
    while (h1->active == NULL && !h1->closing && !c->closing &&
           h1->in_off < h1->in.len) {
        const char *p = (const char *)h1->in.data + h1->in_off;
        size_t n = h1->in.len - h1->in_off;
        size_t used = http_parser_execute(&h1->parser, &settings, p, n);
        h1->in_off += used;
        enum http_errno e = HTTP_PARSER_ERRNO(&h1->parser);
        if (e == HPE_PAUSED) {
            http_parser_pause(&h1->parser, 0);
        } else if (e != HPE_OK) {
            if (h1->building != NULL) {
                x_unref(h1->building);
                h1->building = NULL;
            }
            if (h1->err_status != 0)
                h1_error(h1, h1->err_status, h1->err_detail);
            else if (e == HPE_HEADER_OVERFLOW)
                h1_error(h1, 431, "request header section too large");
            else
                h1_error(h1, 400, http_errno_description(e));
            return;
        }
        if (h1->parser.upgrade) {
            /* (Upgrade or CONNECT: not served; what follows is not
             * HTTP/1.1, so the connection ends with this answer) */
            h1->in_off = h1->in.len;
            if (h1->active == NULL) {
                h1_error(h1, 400, "upgrade not supported");
                return;
            }
            h1->closing = 1;
            h1->active->keep_alive = 0;
        }
        if (h1->active != NULL)
            dispatch(h1);
        else if (e == HPE_OK && used < n)
            break; /* (not expected: the parser stopped without a reason) */
    }
    if (h1->in_off == h1->in.len) {
        h1->in.len = 0;
        h1->in_off = 0;
        if (h1->in.cap > H1_MAX_BUFFERED)
            orpc__buf_free(&h1->in);
    } else if (h1->in_off > 0 && h1->active == NULL) {
        orpc__buf_consume(&h1->in, h1->in_off);
        h1->in_off = 0;
    }
    orpc__conn_pause_read(c, h1->in.len - h1->in_off > H1_MAX_BUFFERED);
}

static int h1_input(orpc__conn *c, const uint8_t *p, size_t n)
{
    orpc__sconn *sc = c->user_data;
    orpc__h1 *h1 = sc->h1;
    if (h1->closing)
        return 0;
    if (orpc__buf_append(&h1->in, p, n) != 0) {
        orpc__conn_close(c, "out of memory");
        return -1;
    }
    h1_process(h1);
    return 0;
}

/* ---- the answer of the exchange in progress (IO thread) --------------- */

/* The exchange is answered: the next request may be parsed. */
static void exchange_end(orpc__h1 *h1)
{
    orpc_http_exchange *x = h1->active;
    orpc__conn *c = h1->sc->conn;
    int keep = x->keep_alive && !h1->draining;
    h1->active = NULL;
    x->h1 = NULL;
    x_unref(x); /* the IO side's */
    if (!keep) {
        h1->closing = 1;
        orpc__conn_close_after_flush(c, "HTTP/1.1 connection done");
        return;
    }
    set_timer(h1, H1_IDLE);
    h1_process(h1);
}

static void write_full(orpc__h1 *h1, orpc_http_exchange *x)
{
    int close = !x->keep_alive || h1->draining;
    uv_mutex_lock(&x->cb_lock);
    x->sealed = 1;
    write_answer(h1->sc->conn, x->status, x->resp_ctype, &x->resp_head,
                 x->resp_body.data, x->resp_body.len, close, x->minor,
                 x->head_only);
    uv_mutex_unlock(&x->cb_lock);
}

/* The streaming answer's head, with its first message (IO thread). */
static void write_stream_head(orpc__h1 *h1, orpc_http_exchange *x)
{
    orpc__buf h;
    orpc__buf_init(&h, &x->srv->mem);
    uv_mutex_lock(&x->cb_lock);
    orpc__buf_printf(&h, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n", x->status,
                     reason(x->status),
                     x->stream_ctype ? x->stream_ctype
                                     : "application/x-ndjson");
    if (x->minor >= 1 && !h1->draining) {
        x->chunked = 1;
        orpc__buf_puts(&h, "Transfer-Encoding: chunked\r\n");
    } else {
        x->keep_alive = 0; /* HTTP/1.0: the body ends with the connection */
    }
    if (!x->keep_alive)
        orpc__buf_puts(&h, "Connection: close\r\n");
    orpc__buf_append(&h, x->resp_head.data, x->resp_head.len);
    orpc__buf_puts(&h, "\r\n");
    atomic_store(&x->started, 1);
    uv_mutex_unlock(&x->cb_lock);
    if (h.failed)
        orpc__conn_close(h1->sc->conn, "out of memory");
    else
        orpc__conn_write_raw(h1->sc->conn, h.data, h.len);
    orpc__buf_free(&h);
}

static void write_chunk(orpc__h1 *h1, orpc_http_exchange *x, const void *p,
                        size_t n)
{
    char len[24];
    if (n == 0)
        return;
    if (x->chunked) {
        int k = snprintf(len, sizeof(len), "%zx\r\n", n);
        orpc__conn_write_raw(h1->sc->conn, len, (size_t)k);
    }
    orpc__conn_write_raw(h1->sc->conn, p, n);
    if (x->chunked)
        orpc__conn_write_raw(h1->sc->conn, "\r\n", 2);
}

/* The call's status goes to the gateway; the call's IO side lets go. */
static void finish_call(orpc__h1 *h1, orpc_http_exchange *x, orpc_ctx *ctx,
                        int streaming_started)
{
    const orpc_gateway *gw = x->srv->gw;
    uv_mutex_lock(&x->cb_lock);
    x->sealed = 1;
    if (gw->on_status != NULL)
        gw->on_status(x, &ctx->status, x->srv->gw_ud);
    uv_mutex_unlock(&x->cb_lock);
    ctx->io_done = 1;
    x->ctx = NULL;
    orpc__ctx_io_release(ctx, NULL); /* may free |ctx| */
    if (streaming_started) {
        uv_mutex_lock(&x->cb_lock);
        write_chunk(h1, x, x->resp_body.data, x->resp_body.len);
        x->resp_body.len = 0;
        uv_mutex_unlock(&x->cb_lock);
        if (x->chunked)
            orpc__conn_write_raw(h1->sc->conn, "0\r\n\r\n", 5);
    } else {
        write_full(h1, x);
    }
    exchange_end(h1);
}

/* Writes what the exchange in progress has for the wire; 1 when it was
 * answered whole (the next request may be answered in the same write). */
static int pull_one(orpc__conn *c, orpc__h1 *h1, orpc_http_exchange *x)
{
    if (x->ctx == NULL) {
        if (!x->ready)
            return 0;
        write_full(h1, x);
        exchange_end(h1);
        return 1;
    }
    orpc_ctx *ctx = x->ctx;
    int streaming =
        ctx->method != NULL && ctx->method->kind == ORPC_CALL_SERVER_STREAMING;
    uint8_t buf[16 * 1024];
    for (;;) {
        uv_mutex_lock(&ctx->lock);
        int finished = ctx->finished;
        size_t have = ctx->sendq.bytes;
        uv_mutex_unlock(&ctx->lock);
        if (!streaming || (have == 0 && !atomic_load(&x->started))) {
            if (!finished)
                return 0;
            finish_call(h1, x, ctx, 0);
            return 1;
        }
        if (!atomic_load(&x->started))
            write_stream_head(h1, x);
        if (have == 0) {
            if (!finished)
                return 0;
            finish_call(h1, x, ctx, 1);
            return 1;
        }
        if (orpc__conn_pending_out(c) >= H1_MAX_OUT || c->closing)
            return 0; /* the next flush after this write takes more */
        uv_mutex_lock(&ctx->lock);
        size_t n = orpc__sendq_read(&ctx->sendq, buf, sizeof(buf));
        uv_cond_broadcast(&ctx->cond); /* room for a blocked sender */
        int resume = ctx->resume_wanted && ctx->svc->nonblocking;
        uv_mutex_unlock(&ctx->lock);
        if (resume)
            orpc__ctx_wake(ctx);
        write_chunk(h1, x, buf, n);
    }
}

static void h1_pull(orpc__conn *c)
{
    orpc__sconn *sc = c->user_data;
    /* answered exchanges end and the next pipelined one is parsed (and,
     * inline, perhaps answered) at once: their answers share this write */
    while (sc->h1 != NULL && sc->h1->active != NULL && !c->closing &&
           pull_one(c, sc->h1, sc->h1->active) &&
           orpc__conn_pending_out(c) < H1_MAX_OUT)
        ;
}

/* ---- protocol selection ----------------------------------------------- */

static int start_h1(orpc__sconn *sc, const uint8_t *p, size_t n)
{
    orpc__conn *c = sc->conn;
    orpc__h1 *h1 = orpc__mem_calloc(c->mem, 1, sizeof(*h1));
    if (h1 == NULL) {
        orpc__conn_close(c, "out of memory");
        return -1;
    }
    h1->sc = sc;
    http_parser_init(&h1->parser, HTTP_REQUEST);
    h1->parser.data = h1;
    orpc__buf_init(&h1->in, c->mem);
    orpc__buf_init(&h1->url, c->mem);
    orpc__buf_init(&h1->field, c->mem);
    orpc__buf_init(&h1->value, c->mem);
    sc->h1 = h1;
    sc->phase = ORPC__SC_H1;
    c->in_hook = h1_input;
    c->out_hook = h1_pull;
    set_timer(h1, H1_HEAD);
    return h1_input(c, p, n);
}

static int start_h2(orpc__sconn *sc, const uint8_t *p, size_t n)
{
    if (sc->legacy) {
        orpc__conn_close(sc->conn, "HTTP/2 on a legacy (HTTP/1.1) listener");
        return -1;
    }
    if (orpc__sconn_start_h2(sc) != 0)
        return -1;
    ssize_t rv = nghttp2_session_mem_recv(sc->conn->session, p, n);
    if (rv < 0) {
        orpc__conn_goaway_close(sc->conn, nghttp2_strerror((int)rv));
        return -1;
    }
    return 0;
}

static int is_tchar(uint8_t ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
           (ch >= '0' && ch <= '9') ||
           (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch));
}

/* What the first bytes say: 2 (HTTP/2 preface), 1 (an HTTP/1.x request
 * line: a token method and a space), 0 (need more), -1 (neither). */
static int sniff(const uint8_t *b, size_t n)
{
    size_t m = n < sizeof(preface) - 1 ? n : sizeof(preface) - 1;
    if (memcmp(b, preface, m) == 0)
        return m == sizeof(preface) - 1 ? 2 : 0;
    for (size_t i = 0; i < n; i++) {
        if (b[i] == ' ')
            return i > 0 ? 1 : -1;
        if (!is_tchar(b[i]))
            return -1;
    }
    return n < sizeof(((orpc__sconn *)0)->sniff) ? 0 : -1;
}

int orpc__sconn_sniff(orpc__conn *c, const uint8_t *p, size_t n)
{
    orpc__sconn *sc = c->user_data;
    if (c->ssl != NULL && sc->n_sniff == 0) {
        const unsigned char *a = NULL;
        unsigned int alen = 0;
        SSL_get0_alpn_selected(c->ssl, &a, &alen);
        if (alen == 2 && memcmp(a, "h2", 2) == 0)
            return start_h2(sc, p, n);
        if (alen == 8 && memcmp(a, "http/1.1", 8) == 0)
            return start_h1(sc, p, n);
        /* no ALPN (a client that does not offer it): the bytes decide */
    }
    size_t room = sizeof(sc->sniff) - sc->n_sniff;
    size_t take = n < room ? n : room;
    memcpy(sc->sniff + sc->n_sniff, p, take);
    sc->n_sniff += take;
    int kind = sniff(sc->sniff, sc->n_sniff);
    if (kind == 0)
        return 0;
    if (kind < 0 && sc->legacy) {
        orpc__conn_close(c, "not HTTP/1.x");
        return -1;
    }
    /* (neither: HTTP/2 refuses it as it always did — SETTINGS, a GOAWAY
     * for the bad preface, close — which a TLS client that dialled a
     * cleartext port reports as a failed handshake, not a silent close) */
    /* the sniffed bytes, then the rest of this read */
    uint8_t first[sizeof(sc->sniff)];
    size_t nf = sc->n_sniff;
    memcpy(first, sc->sniff, nf);
    int rc = kind == 1 ? start_h1(sc, first, nf) : start_h2(sc, first, nf);
    if (rc != 0 || take == n || c->closing)
        return rc;
    if (c->in_hook != NULL)
        return c->in_hook(c, p + take, n - take);
    ssize_t rv = nghttp2_session_mem_recv(c->session, p + take, n - take);
    if (rv < 0) {
        orpc__conn_goaway_close(c, nghttp2_strerror((int)rv));
        return -1;
    }
    return 0;
}

/* ---- connection events (IO thread) ------------------------------------ */

void orpc__h1_timer(orpc__sconn *sc)
{
    orpc__h1 *h1 = sc->h1;
    if (h1 == NULL)
        return;
    switch (h1->phase) {
    case H1_HEAD:
        h1_error(h1, 408, "request head not received in time");
        break;
    case H1_BODY:
        h1_error(h1, 408, "request body not received in time");
        break;
    case H1_IDLE:
        h1->closing = 1;
        orpc__conn_close(sc->conn, "HTTP/1.1 idle timeout");
        break;
    case H1_LINGER:
        orpc__conn_close(sc->conn, sc->conn->close_reason);
        break;
    default:
        break;
    }
}

void orpc__h1_closed(orpc__sconn *sc)
{
    orpc__h1 *h1 = sc->h1;
    if (h1 == NULL)
        return;
    sc->h1 = NULL;
    if (h1->building != NULL)
        x_unref(h1->building); /* never given to the gateway */
    if (h1->active != NULL) {
        orpc_http_exchange *x = h1->active;
        x->h1 = NULL;
        x->ctx = NULL; /* cancelled and released with the connection */
        x_unref(x);
    }
    orpc__buf_free(&h1->in);
    orpc__buf_free(&h1->url);
    orpc__buf_free(&h1->field);
    orpc__buf_free(&h1->value);
    orpc__mem_free(sc->conn->mem, h1);
}

void orpc__h1_shutdown(orpc__sconn *sc)
{
    orpc__h1 *h1 = sc->h1;
    if (h1 == NULL) { /* the protocol not chosen yet */
        orpc__conn_close(sc->conn, "server shutting down");
        return;
    }
    h1->draining = 1;
    if (h1->active == NULL) {
        h1->closing = 1;
        orpc__conn_close(sc->conn, "server shutting down");
    }
}

/* ---- calls ------------------------------------------------------------ */

static void fail_without_call(orpc_http_exchange *x, orpc_code code,
                              const char *msg)
{
    const orpc_gateway *gw = x->srv->gw;
    orpc_status st = ORPC_STATUS_OK;
    st.code = code;
    st.message = (char *)msg; /* borrowed: never freed */
    uv_mutex_lock(&x->cb_lock);
    if (gw->on_status != NULL)
        gw->on_status(x, &st, x->srv->gw_ud);
    uv_mutex_unlock(&x->cb_lock);
    x->ready = 1;
    orpc__conn_kick(x->h1->sc->conn);
}

/* The exchange's call starts (IO thread), as request_headers_done() starts
 * an HTTP/2 one. */
static void start_call(orpc_http_exchange *x)
{
    orpc__sconn *sc = x->h1->sc;
    orpc_server *srv = x->srv;
    x->call_pending = 0;
    if (atomic_load(&srv->calls) >= srv->opts.max_concurrent_calls) {
        fail_without_call(x, ORPC_UNAVAILABLE,
                          "server overloaded (max_concurrent_calls)");
        return;
    }
    orpc_ctx *ctx = orpc__ctx_new(sc, 0);
    if (ctx == NULL) {
        fail_without_call(x, ORPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    x_ref(x); /* the call's */
    ctx->x = x;
    x->ctx = ctx;
    ctx->path = x->call_path;
    ctx->request = x->call_req;
    if (x->call_identity != NULL) {
        orpc__mem_free(&srv->mem, ctx->peer_identity);
        ctx->peer_identity = orpc__mem_strdup(&srv->mem, x->call_identity);
    }
    if ((x->call_md != NULL && orpc_metadata_add_all(ctx->md, x->call_md)) ||
        (x->call_identity != NULL && ctx->peer_identity == NULL)) {
        orpc__ctx_fail(ctx, ORPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    if (x->call_timeout_ms > 0) {
        int64_t now = orpc__now_ns();
        int64_t ns = x->call_timeout_ms > INT64_MAX / 1000000
                         ? INT64_MAX
                         : x->call_timeout_ms * 1000000;
        ctx->deadline_ns = ns > INT64_MAX - now ? INT64_MAX : now + ns;
    }
    if (orpc__ctx_admit(ctx, x->call_identity) != 0)
        return;
    orpc__ctx_dispatch(ctx);
}

void orpc__h1_ctx_pump(orpc_ctx *ctx)
{
    if (ctx->sc != NULL)
        orpc__conn_kick(ctx->sc->conn);
}

int orpc__h1_ctx_message(orpc_ctx *ctx, const ProtobufCMessage *msg)
{
    orpc_http_exchange *x = ctx->x;
    const orpc_gateway *gw = x->srv->gw;
    if (gw->on_message == NULL)
        return 0;
    uv_mutex_lock(&x->cb_lock);
    int rc = x->sealed ? 0 : gw->on_message(x, msg, x->srv->gw_ud);
    uv_mutex_unlock(&x->cb_lock);
    return rc;
}

int orpc__h1_ctx_send(orpc_ctx *ctx, const ProtobufCMessage *msg)
{
    orpc_http_exchange *x = ctx->x;
    orpc_server *srv = ctx->srv;
    const orpc_gateway *gw = srv->gw;
    uv_mutex_lock(&ctx->lock);
    for (;;) {
        if (ctx->cancelled || ctx->finished) {
            uv_mutex_unlock(&ctx->lock);
            return ORPC_ECANCELLED;
        }
        if (ctx->sendq.bytes < ORPC__SENDQ_LIMIT)
            break;
        if (ctx->svc->nonblocking) {
            ctx->resume_wanted = 1;
            uv_mutex_unlock(&ctx->lock);
            return ORPC_EAGAIN;
        }
        if (orpc__io_on_any_thread()) {
            uv_mutex_unlock(&ctx->lock);
            return ORPC_EBLOCKING;
        }
        uv_cond_wait(&ctx->cond, &ctx->lock);
    }
    uv_mutex_unlock(&ctx->lock);
    /* the gateway encodes into the exchange's body; the bytes move to the
     * call's queue as one chunk */
    uv_mutex_lock(&x->cb_lock);
    int rc =
        gw->on_message && !x->sealed ? gw->on_message(x, msg, srv->gw_ud) : 0;
    size_t n = x->resp_body.len;
    orpc__chunk *c = NULL;
    if (rc == 0 && n > 0) {
        c = orpc__mem_malloc(&srv->mem, sizeof(*c) + n);
        if (c != NULL) {
            c->len = n;
            c->off = 0;
            memcpy(c->data, x->resp_body.data, n);
        }
    }
    x->resp_body.len = 0;
    uv_mutex_unlock(&x->cb_lock);
    if (rc != 0) {
        orpc__ctx_settle(
            ctx, orpc__status_new_mem(&srv->mem, ORPC_INTERNAL,
                                      "the response could not be encoded"));
        orpc__ctx_request_pump(ctx);
        return ORPC_ECALLBACK;
    }
    if (n == 0)
        return 0;
    if (c == NULL)
        return ORPC_ENOMEM;
    uv_mutex_lock(&ctx->lock);
    int pushed = !ctx->finished;
    if (pushed)
        orpc__sendq_push(&ctx->sendq, c);
    uv_mutex_unlock(&ctx->lock);
    if (!pushed) {
        orpc__mem_free(&srv->mem, c);
        return ORPC_ECANCELLED;
    }
    orpc__chain_message(&ctx->ci, 1, n);
    orpc__ctx_request_pump(ctx);
    return 0;
}

void orpc__h1_ctx_freed(orpc_ctx *ctx)
{
    orpc_http_exchange *x = ctx->x;
    ctx->x = NULL;
    ctx->path = NULL; /* the exchange's */
    x_unref(x);
}

/* ---- the exchange API (orpc/gateway.h) -------------------------------- */

const char *orpc_http_method(const orpc_http_exchange *x)
{
    return x ? x->method : NULL;
}

const char *orpc_http_target(const orpc_http_exchange *x)
{
    return x ? x->target : NULL;
}

const char *orpc_http_header(const orpc_http_exchange *x, const char *name)
{
    if (x == NULL || name == NULL)
        return NULL;
    size_t n = orpc_metadata_count(x->headers);
    for (size_t i = 0; i < n; i++) {
        const char *k;
        const uint8_t *v;
        size_t len;
        if (orpc_metadata_at(x->headers, i, &k, &v, &len) == 0 &&
            strcasecmp(k, name) == 0)
            return (const char *)v;
    }
    return NULL;
}

const orpc_metadata *orpc_http_headers(const orpc_http_exchange *x)
{
    return x ? x->headers : NULL;
}

const uint8_t *orpc_http_body(const orpc_http_exchange *x, size_t *len)
{
    static const uint8_t empty[1];
    if (len != NULL)
        *len = x && x->body.data ? x->body.len : 0;
    return x && x->body.data ? x->body.data : empty;
}

int orpc_http_version(const orpc_http_exchange *x)
{
    (void)x;
    return 1;
}

const char *orpc_http_peer(const orpc_http_exchange *x)
{
    return x ? x->peer : NULL;
}

const char *orpc_http_peer_identity(const orpc_http_exchange *x)
{
    return x ? x->peer_identity : NULL;
}

struct orpc_server *orpc_http_server(const orpc_http_exchange *x)
{
    return x ? x->srv : NULL;
}

void orpc_http_set_state(orpc_http_exchange *x, void *state)
{
    if (x != NULL)
        x->state = state;
}

void *orpc_http_state(const orpc_http_exchange *x)
{
    return x ? x->state : NULL;
}

int orpc_http_may_block(const orpc_http_exchange *x)
{
    (void)x;
    return !orpc__io_on_any_thread();
}

/* Nonzero when |s| has no CR, LF or other control byte (a header value). */
static int value_ok(const char *s)
{
    for (; *s; s++)
        if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
            return 0;
    return 1;
}

int orpc_http_respond(orpc_http_exchange *x, int status,
                      const char *content_type, const void *body, size_t len)
{
    if (x == NULL || status < 200 || status > 599 ||
        (body == NULL && len > 0) ||
        (content_type != NULL && !value_ok(content_type)))
        return ORPC_EINVAL;
    if (!x->in_request || x->responded || x->call_pending)
        return ORPC_ESTATE;
    char *ct = NULL;
    if (content_type != NULL &&
        (ct = orpc__mem_strdup(&x->srv->mem, content_type)) == NULL)
        return ORPC_ENOMEM;
    x->resp_body.len = 0;
    x->resp_body.failed = 0;
    if (orpc__buf_append(&x->resp_body, body, len) != 0 ||
        orpc__buf_reserve(&x->resp_body, 0) != 0) {
        orpc__mem_free(&x->srv->mem, ct);
        return ORPC_ENOMEM;
    }
    orpc__mem_free(&x->srv->mem, x->resp_ctype);
    x->resp_ctype = ct;
    x->status = status;
    x->responded = 1;
    return 0;
}

int orpc_http_call(orpc_http_exchange *x, const char *path,
                   const ProtobufCMessage *request,
                   const orpc_http_call_opts *opts)
{
    if (x == NULL || path == NULL || request == NULL)
        return ORPC_EINVAL;
    if (!x->in_request || x->responded || x->call_pending)
        return ORPC_ESTATE;
    const orpc_method_desc *m = NULL;
    orpc_method_handler h = NULL;
    if (orpc__srv_find_method(x->srv, path, &m, &h) == NULL || m == NULL)
        return ORPC_ENOTFOUND;
    if (m->kind != ORPC_CALL_UNARY && m->kind != ORPC_CALL_SERVER_STREAMING)
        return ORPC_EINVAL;
    if (request->descriptor != m->input->descriptor)
        return ORPC_EINVAL;
    const orpc_mem *mem = &x->srv->mem;
    char *p = orpc__mem_strdup(mem, path);
    char *id =
        opts && opts->identity ? orpc__mem_strdup(mem, opts->identity) : NULL;
    char *sct = opts && opts->stream_content_type
                    ? orpc__mem_strdup(mem, opts->stream_content_type)
                    : NULL;
    orpc_metadata *md = NULL;
    int bad = p == NULL || (opts && opts->identity && id == NULL) ||
              (opts && opts->stream_content_type && sct == NULL);
    if (!bad && opts && opts->metadata != NULL)
        bad = orpc_metadata_new(&md, mem) != 0 ||
              orpc_metadata_add_all(md, opts->metadata) != 0;
    if (sct != NULL && !value_ok(sct))
        bad = 2;
    if (bad) {
        orpc__mem_free(mem, p);
        orpc__mem_free(mem, id);
        orpc__mem_free(mem, sct);
        orpc_metadata_free(md);
        return bad == 2 ? ORPC_EINVAL : ORPC_ENOMEM;
    }
    x->call_path = p;
    x->call_identity = id;
    x->stream_ctype = sct;
    x->call_md = md;
    x->call_req = request;
    x->call_timeout_ms = opts ? opts->timeout_ms : 0;
    x->call_pending = 1;
    return 0;
}

void orpc_http_set_status(orpc_http_exchange *x, int status)
{
    if (x == NULL || status < 200 || status > 599 || atomic_load(&x->started))
        return;
    x->status = status;
}

int orpc_http_add_header(orpc_http_exchange *x, const char *name,
                         const char *value)
{
    if (x == NULL || name == NULL || value == NULL || *name == '\0' ||
        atomic_load(&x->started) || !value_ok(value))
        return ORPC_EINVAL;
    for (const char *q = name; *q; q++)
        if (!is_tchar((uint8_t)*q))
            return ORPC_EINVAL;
    if (strcasecmp(name, "content-length") == 0 ||
        strcasecmp(name, "transfer-encoding") == 0 ||
        strcasecmp(name, "connection") == 0)
        return ORPC_EINVAL;
    if (strcasecmp(name, "content-type") == 0) {
        char *ct = orpc__mem_strdup(&x->srv->mem, value);
        if (ct == NULL)
            return ORPC_ENOMEM;
        orpc__mem_free(&x->srv->mem, x->resp_ctype);
        x->resp_ctype = ct;
        return 0;
    }
    size_t before = x->resp_head.len;
    orpc__buf_puts(&x->resp_head, name);
    orpc__buf_append(&x->resp_head, ": ", 2);
    orpc__buf_puts(&x->resp_head, value);
    orpc__buf_append(&x->resp_head, "\r\n", 2);
    if (x->resp_head.failed) {
        orpc__buf_truncate(&x->resp_head, before);
        x->resp_head.failed = 0;
        return ORPC_ENOMEM;
    }
    return 0;
}

int orpc_http_body_append(orpc_http_exchange *x, const void *p, size_t len)
{
    if (x == NULL || (p == NULL && len > 0))
        return ORPC_EINVAL;
    if (orpc__buf_append(&x->resp_body, p, len) != 0) {
        x->resp_body.failed = 0;
        return ORPC_ENOMEM;
    }
    return 0;
}

void orpc_http_body_reset(orpc_http_exchange *x)
{
    if (x != NULL) {
        x->resp_body.len = 0;
        x->resp_body.failed = 0;
    }
}

int orpc_http_started(const orpc_http_exchange *x)
{
    return x ? atomic_load(&((orpc_http_exchange *)x)->started) : 0;
}

/* x->ctx is set while finish_call() runs on_status; the call's status is
 * settled, so its handler adds no more metadata (add_md() refuses). */
const orpc_metadata *orpc_http_response_headers(const orpc_http_exchange *x)
{
    return x != NULL && x->ctx != NULL ? x->ctx->resp_headers : NULL;
}

const orpc_metadata *orpc_http_response_trailers(const orpc_http_exchange *x)
{
    return x != NULL && x->ctx != NULL ? x->ctx->trailers : NULL;
}
