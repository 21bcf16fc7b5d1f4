/*
 * server_h1.c — HTTP/1.1 on the server's listeners: choosing the protocol
 * of a new connection (the HTTP/2 preface, an HTTP/1.x request line, or
 * ALPN), parsing requests with http-parser, and writing the answers of
 * their exchanges.  What an exchange is and does apart from its transport
 * (on_request, the call, the orpc_http_* functions) is
 * server_exchange.c's; HTTP/2 streams that are not gRPC are server_h2x.c's.
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
 * - An exchange's call is an orpc_ctx with |x| set, made when the call
 *   starts, on the connection's list of calls (a lost connection cancels
 *   it as it cancels HTTP/2 calls).  A streamed response's chunks wait on
 *   ctx->sendq and are taken while under H1_MAX_OUT bytes wait for the
 *   socket, so a peer that does not read stalls the handler.
 * - The exchange's IO-side reference is held from dispatch() until its
 *   answer is written (exchange_end()) or the connection is lost.
 * - Answers ready at once (inline) are coalesced: h1_pull() writes one and
 *   goes on with the next pipelined request while it is answered at once,
 *   up to H1_MAX_OUT bytes waiting, so a pipelined burst is one write.
 *
 * Why one file of this size: its one job is the HTTP/1.1 side of a server
 * connection, and the pieces are one state machine over one connection and
 * its current exchange (sniffing hands the connection to the parser, the
 * parser to the exchange, the exchange's answer back to the parser for the
 * next pipelined request).
 *
 * Locking: an exchange's answer is read under x->cb_lock (see
 * server_exchange.c).  Everything else of a connection belongs to its IO
 * thread.
 */
#include "server_exchange.h"

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
    h1->building = orpc__x_new(h1->sc);
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

/* A complete request: the built-in answer without a gateway, else the
 * gateway's exchange (server_exchange.c). */
static void dispatch(orpc__h1 *h1)
{
    orpc_http_exchange *x = h1->active;
    x->h1 = h1;
    x->sc = h1->sc;
    if (x->srv->gw == NULL) {
        builtin_answer(x);
        orpc__conn_kick(h1->sc->conn);
        return;
    }
    orpc__x_dispatch(x);
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
                orpc__x_unref(h1->building);
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
    x->sc = NULL;
    orpc__x_unref(x); /* the IO side's */
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
        if (!orpc__x_tchar(b[i]))
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
        orpc__x_unref(h1->building); /* never given to the gateway */
    if (h1->active != NULL) {
        orpc_http_exchange *x = h1->active;
        x->h1 = NULL;
        x->sc = NULL;
        x->ctx = NULL; /* cancelled and released with the connection */
        orpc__x_unref(x);
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
