/*
 * server_h2x.c — HTTP/2 streams that are not gRPC, answered by the
 * server's gateway (orpc/gateway.h) as exchanges, like HTTP/1.1 requests:
 * Connect and JSON over h2c (prior knowledge) or TLS with ALPN h2, on the
 * same connection as gRPC calls.
 *
 * Design notes:
 * - A stream is an orpc_ctx from its first HEADERS, as for gRPC.  While
 *   its head arrives with no gRPC content-type, and only when a gateway is
 *   installed, server_h2.c keeps its headers as sent (a gRPC call's
 *   content-type comes early, so it keeps next to nothing).  When the head
 *   is complete and the stream is not gRPC (another content-type, or not
 *   POST), orpc__h2x_begin() makes it an exchange: ctx->x holds a
 *   reference on it, and the kept headers become the exchange's.  Without
 *   a gateway nothing changes: such a stream gets gRPC's 415.
 * - The stream's orpc_ctx becomes the exchange's call when the gateway
 *   starts one (server_exchange.c, start_call()): it is on the
 *   connection's list and counted in max_concurrent_calls from the stream's
 *   start, and RST_STREAM from the peer, a lost connection and the
 *   deadline end it as they end a gRPC call (the handler is cancelled).
 * - The request body is collected into x->body up to http1_max_body (413
 *   from Content-Length at once, or as DATA comes) and, until the request
 *   is whole, counted in the connection's buffer of incomplete requests
 *   (max_connection_buffer, shared with gRPC's partial messages; 503 past
 *   it).  Flow-control credit is given back as the bytes are taken.
 * - The answer goes out through one nghttp2 data provider over the stream:
 *   a whole answer (status, headers, content-length, body) once it is
 *   ready (answered by on_request, or the call's status settled and
 *   on_status run, see seal()); a server-streaming call's head with its
 *   first message, then its chunks from ctx->sendq, pulled only as the
 *   peer's window allows, and after the call's status the rest of the body
 *   (what on_status appended).  ctx->sendq is bounded
 *   (ORPC__SENDQ_LIMIT stalls the handler): a peer that never reads stalls
 *   its handler, not the server's memory.
 * - A request answered before it is whole (413, 431) has the rest of its
 *   body dropped, and a peer that sends more than
 *   H2X_DROP_BEFORE_RESET bytes of it gets RST_STREAM NO_ERROR (RFC 9113,
 *   8.1) so that it stops.
 * - The exchange's IO-side reference is held until the stream closes (or
 *   its connection is lost): orpc__h2x_closed().
 *
 * Every function here runs on the connection's IO thread.  The answer is
 * read under x->cb_lock as on HTTP/1.1 (server_exchange.c).
 */
#include "server_exchange.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <orpc/error.h>

#include "common/mem.h"
#include "metadata_internal.h"

/* Request body bytes dropped after an early answer before the stream is
 * reset (NO_ERROR): a peer's window's worth. */
#define H2X_DROP_BEFORE_RESET 65535u

static char *x_strdup(orpc_http_exchange *x, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = orpc_arena_alloc(x->arena, n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

/* The body bytes counted in the connection's buffer are given back. */
static void uncount(orpc_http_exchange *x)
{
    if (x->h2_counted > 0 && x->sc != NULL) {
        size_t *p = &x->sc->conn->in_partial;
        *p = *p >= x->h2_counted ? *p - x->h2_counted : 0;
    }
    x->h2_counted = 0;
}

/* Answers now, before the request is whole (a limit); the gateway never
 * sees the exchange. */
static void answer_early(orpc_http_exchange *x, int status, const char *detail)
{
    uncount(x);
    orpc__buf_free(&x->body);
    orpc__x_error(x, status, detail);
    x->h2_early = 1;
    x->ready = 1;
    orpc__h2x_pump(x);
}

void orpc__h2x_begin(orpc_ctx *ctx)
{
    orpc_server *srv = ctx->srv;
    orpc_http_exchange *x = orpc__x_new(ctx->sc);
    if (x == NULL) {
        nghttp2_session *s = orpc__ctx_session(ctx);
        if (s != NULL &&
            nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, ctx->stream_id,
                                      NGHTTP2_INTERNAL_ERROR) != 0)
            orpc__conn_close(ctx->sc->conn, "out of memory");
        ctx->io_done = 1;
        orpc__ctx_kick(ctx);
        return;
    }
    /* the exchange's IO side is the stream's (orpc__h2x_closed()); the
     * call's reference is ctx's (orpc__x_ctx_freed()) */
    x->http2 = 1;
    x->sc = ctx->sc;
    x->ctx = ctx;
    orpc__x_ref(x);
    ctx->x = x;
    /* what server_h2.c made of the head for gRPC is not the call's: the
     * gateway gives the call its metadata and deadline */
    orpc_metadata_free(ctx->md);
    ctx->md = NULL;
    int nomem = orpc_metadata_new(&ctx->md, &srv->mem) != 0;
    ctx->deadline_ns = INT64_MAX;
    x->method = x_strdup(x, ctx->method_name ? ctx->method_name : "POST");
    x->target = ctx->path ? x_strdup(x, ctx->path) : NULL;
    nomem = nomem || x->method == NULL || (ctx->path && x->target == NULL);
    for (orpc__rawhdr *h = ctx->raw; h != NULL && !nomem; h = h->next) {
        char *k = x_strdup(x, h->name);
        char *v = orpc_arena_alloc(x->arena, h->len + 1);
        if (k == NULL || v == NULL) {
            nomem = 1;
            break;
        }
        memcpy(v, h->value, h->len + 1);
        for (char *q = k; *q; q++) /* (HTTP/2 sends lower case; be sure) */
            if (*q >= 'A' && *q <= 'Z')
                *q = (char)(*q - 'A' + 'a');
        nomem = orpc__md_add_borrowed(x->headers, k, (uint8_t *)v, h->len) != 0;
    }
    if (x->method != NULL)
        x->head_only = strcmp(x->method, "HEAD") == 0;
    if (ctx->headers_too_big) {
        answer_early(x, 431, "request header section too large");
        return;
    }
    if (nomem || ctx->no_memory) {
        answer_early(x, 503, "out of memory");
        return;
    }
    if (x->target == NULL || x->target[0] != '/') {
        answer_early(x, 400, "no request target");
        return;
    }
    const char *cl = orpc_http_header(x, "content-length");
    if (cl != NULL) {
        size_t n = strlen(cl);
        if (n == 0 || n > 19 || strspn(cl, "0123456789") != n) {
            answer_early(x, 400, "bad content-length");
            return;
        }
        if (strtoull(cl, NULL, 10) > srv->opts.http1_max_body) {
            answer_early(x, 413, "request body too large");
            return;
        }
    }
}

void orpc__h2x_data(orpc_ctx *ctx, nghttp2_session *s, int32_t id,
                    const uint8_t *data, size_t len)
{
    orpc_http_exchange *x = ctx->x;
    const orpc_server_opts *o = &ctx->srv->opts;
    orpc__in_discard(s, id, len); /* the credit goes back as bytes come */
    if (x->h2_early) {
        /* answered already (413): a peer that goes on sending past a
         * window's worth is asked to stop (not at once: a client that
         * sent its whole body with the head takes a reset of a stream it
         * is still writing for an error, libcurl 7.88 does) */
        x->h2_dropped += len;
        if (x->h2_dropped > H2X_DROP_BEFORE_RESET && !x->h2_reset) {
            x->h2_reset = 1;
            nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id,
                                      NGHTTP2_NO_ERROR);
            orpc__ctx_kick(ctx);
        }
        return;
    }
    if (x->to_gateway || x->ready || x->sc == NULL)
        return;
    if (x->body.len + len > o->http1_max_body) {
        answer_early(x, 413, "request body too large");
        return;
    }
    size_t *partial = &x->sc->conn->in_partial;
    if (*partial + len > o->max_connection_buffer) {
        answer_early(x, 503,
                     "the connection buffers more incomplete requests than "
                     "the server accepts (max_connection_buffer)");
        return;
    }
    if (orpc__buf_append(&x->body, data, len) != 0) {
        answer_early(x, 503, "out of memory");
        return;
    }
    *partial += len;
    x->h2_counted += len;
}

void orpc__h2x_request_end(orpc_ctx *ctx)
{
    orpc_http_exchange *x = ctx->x;
    if (x->h2_early || x->to_gateway || x->ready || x->sc == NULL)
        return;
    uncount(x);
    orpc__x_dispatch(x);
}

void orpc__h2x_closed(orpc_ctx *ctx)
{
    orpc_http_exchange *x = ctx->x;
    if (!x->http2 || x->sc == NULL)
        return;
    uncount(x);
    x->sc = NULL;
    x->ctx = NULL;
    orpc__x_unref(x); /* the IO side's */
}

/* The answer is final: the call's status goes to the gateway (|call|, or
 * NULL for an answer without a call), and the body becomes what the data
 * provider sends after the streamed chunks.  Late messages are dropped. */
static void seal(orpc_http_exchange *x, orpc_ctx *call)
{
    const orpc_gateway *gw = x->srv->gw;
    uv_mutex_lock(&x->cb_lock);
    x->sealed = 1;
    if (call != NULL && gw->on_status != NULL)
        gw->on_status(x, &call->status, x->srv->gw_ud);
    orpc__buf_free(&x->h2_tail);
    x->h2_tail = x->resp_body;
    x->h2_tail_off = 0;
    orpc__buf_init(&x->resp_body, &x->srv->mem);
    uv_mutex_unlock(&x->cb_lock);
}

static ssize_t read_answer(nghttp2_session *s, int32_t id, uint8_t *buf,
                           size_t len, uint32_t *flags,
                           nghttp2_data_source *src, void *user_data)
{
    orpc_ctx *ctx = src->ptr;
    orpc_http_exchange *x = ctx->x;
    (void)s;
    (void)id;
    (void)user_data;
    if (!x->sealed) { /* a streaming answer: its chunks first */
        uv_mutex_lock(&ctx->lock);
        size_t n = orpc__sendq_read(&ctx->sendq, buf, len);
        int finished = ctx->finished;
        if (n > 0)
            uv_cond_broadcast(&ctx->cond); /* room for a blocked sender */
        int resume = n > 0 && ctx->resume_wanted && ctx->svc->nonblocking;
        uv_mutex_unlock(&ctx->lock);
        if (resume)
            orpc__ctx_wake(ctx); /* (posted: not from inside mem_send) */
        if (n > 0)
            return (ssize_t)n;
        if (!finished)
            return NGHTTP2_ERR_DEFERRED;
        seal(x, ctx); /* settled and drained: the status, then the rest */
    }
    size_t left = x->h2_tail.len - x->h2_tail_off;
    size_t n = left < len ? left : len;
    if (n > 0)
        memcpy(buf, x->h2_tail.data + x->h2_tail_off, n);
    x->h2_tail_off += n;
    if (x->h2_tail_off == x->h2_tail.len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        ctx->io_done = 1;
    }
    return (ssize_t)n;
}

/* Nonzero for a header HTTP/2 forbids (connection-specific, RFC 9113
 * 8.2.2) that a gateway written for HTTP/1.1 may add: left out. */
static int h1_only(const char *name)
{
    return strcmp(name, "keep-alive") == 0 ||
           strcmp(name, "proxy-connection") == 0 ||
           strcmp(name, "upgrade") == 0 || strcmp(name, "te") == 0;
}

/* Adds the gateway's "Name: value\r\n" lines, names in lower case as
 * HTTP/2 requires. */
static int add_head_lines(orpc__hdrs *h, const orpc__buf *lines)
{
    const char *p = (const char *)lines->data;
    const char *end = p + lines->len;
    while (p != NULL && p < end) {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        if (colon == NULL || eol == NULL || colon > eol)
            return 0; /* (not written that way by orpc_http_add_header) */
        char name[256];
        size_t nl = (size_t)(colon - p);
        const char *v = colon + 1;
        while (v < eol && *v == ' ')
            v++;
        if (nl > 0 && nl < sizeof(name)) {
            for (size_t i = 0; i < nl; i++)
                name[i] = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] - 'A' + 'a'
                                                            : p[i]);
            name[nl] = '\0';
            if (!h1_only(name) &&
                orpc__hdrs_add(h, name, v, (size_t)(eol - v)) != 0)
                return -1;
        }
        p = eol + 2;
    }
    return 0;
}

/* Submits the answer's HEADERS: a whole one (|streaming| 0, sealed) or a
 * streaming one's head. */
static void submit(orpc_http_exchange *x, orpc_ctx *ctx, nghttp2_session *s,
                   int streaming)
{
    orpc__hdrs h;
    orpc__hdrs_init(&h, &x->srv->mem);
    uv_mutex_lock(&x->cb_lock);
    int status = x->status;
    char st[4] = {(char)('0' + status / 100 % 10),
                  (char)('0' + status / 10 % 10), (char)('0' + status % 10),
                  '\0'};
    int rc = orpc__hdrs_add(&h, ":status", st, 3);
    const char *ct =
        streaming ? (x->stream_ctype ? x->stream_ctype : "application/x-ndjson")
                  : x->resp_ctype;
    if (rc == 0 && ct != NULL)
        rc = orpc__hdrs_add_str(&h, "content-type", ct);
    int with_body = status != 204 && status != 304;
    if (rc == 0 && !streaming && with_body) {
        char n[24];
        int k = snprintf(n, sizeof(n), "%zu", x->h2_tail.len);
        rc = orpc__hdrs_add(&h, "content-length", n, (size_t)k);
    }
    if (rc == 0)
        rc = add_head_lines(&h, &x->resp_head);
    if (streaming)
        atomic_store(&x->started, 1);
    uv_mutex_unlock(&x->cb_lock);
    orpc__hdrs_finish(&h);
    int nobody =
        !streaming && (x->head_only || !with_body || x->h2_tail.len == 0);
    nghttp2_data_provider dp;
    dp.source.ptr = ctx;
    dp.read_callback = read_answer;
    x->h2_submitted = 1;
    if (rc != 0 || nghttp2_submit_response(s, ctx->stream_id, h.nv, h.n,
                                           nobody ? NULL : &dp) != 0) {
        if (nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, ctx->stream_id,
                                      NGHTTP2_INTERNAL_ERROR) != 0)
            orpc__conn_close(x->sc->conn, "out of memory");
        ctx->io_done = 1;
    } else if (nobody) {
        ctx->io_done = 1;
    }
    orpc__hdrs_free(&h);
}

void orpc__h2x_pump(orpc_http_exchange *x)
{
    orpc_ctx *ctx = x->ctx;
    nghttp2_session *s;
    if (x->sc == NULL || ctx == NULL || ctx->stream_closed || ctx->io_done ||
        (s = orpc__ctx_session(ctx)) == NULL)
        return;
    if (x->h2_submitted) {
        /* a streaming answer: more chunks, or the status (read_answer()) */
        nghttp2_session_resume_data(s, ctx->stream_id);
    } else if (!x->call_started) {
        if (!x->ready)
            return;
        seal(x, NULL);
        submit(x, ctx, s, 0);
    } else {
        int streaming = ctx->method != NULL &&
                        ctx->method->kind == ORPC_CALL_SERVER_STREAMING;
        uv_mutex_lock(&ctx->lock);
        int finished = ctx->finished;
        size_t have = ctx->sendq.bytes;
        uv_mutex_unlock(&ctx->lock);
        if (streaming && have > 0) {
            submit(x, ctx, s, 1);
        } else if (finished) {
            seal(x, ctx);
            submit(x, ctx, s, 0);
        } else {
            return;
        }
    }
    orpc__ctx_kick(ctx);
}
