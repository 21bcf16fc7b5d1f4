/*
 * server_exchange.c — the part of an exchange (orpc/gateway.h) that does
 * not depend on its transport: its references and on_done, running the
 * gateway's on_request (on the IO thread first for an inline_first
 * gateway, else or then on the worker pool), the call it starts through
 * the same path as gRPC calls (orpc_ctx, interceptors, identity, policy,
 * deadline, limits, handler), the gateway's encoding of the call's
 * messages, and the public orpc_http_* functions.  The transports read
 * the request and write the answer: server_h1.c (HTTP/1.1) and
 * server_h2x.c (an HTTP/2 stream that is not gRPC).
 *
 * Design notes:
 * - An exchange has three references: the IO side (its transport, until
 *   the answer is written or the connection or stream lost), the worker
 *   running on_request, and its call.  The last one posts on_done to the
 *   IO thread.
 * - x->sc says the transport still wants the answer: a worker's
 *   on_request finishing after the connection (or HTTP/2 stream) went
 *   away starts no call and writes nothing.
 * - An exchange's call is an orpc_ctx with |x| set.  On HTTP/1.1 it is
 *   made when the call starts; on HTTP/2 it is the stream's own orpc_ctx,
 *   made with the stream, so a reset or lost stream cancels it as it
 *   cancels a gRPC call.  Where the gRPC path queues encoded messages, the
 *   call asks the gateway to encode (on_message, the handler's thread): a
 *   unary response into the exchange's body, a streamed one into a chunk
 *   on ctx->sendq, so ORPC__SENDQ_LIMIT stalls the handler of a peer that
 *   does not read, as on gRPC.
 *
 * Locking theory: x->lock guards x->refs only.  x->cb_lock serialises the
 * gateway's callbacks that build the answer (on_message on the handler's
 * thread, on_status on the IO thread) and the exchange functions they call;
 * the IO thread reads the answer only after on_status returned, under it.
 * Neither is held while taking ctx->lock, nor the other way round.
 */
#include "server_exchange.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <orpc/error.h>

#include "common/mem.h"
#include "metadata_internal.h"

/* ---- exchanges -------------------------------------------------------- */

orpc_http_exchange *orpc__x_new(orpc__sconn *sc)
{
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
    orpc__buf_init(&x->h2_tail, &srv->mem);
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
    orpc__buf_free(&x->h2_tail);
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

void orpc__x_ref(orpc_http_exchange *x)
{
    uv_mutex_lock(&x->lock);
    x->refs++;
    uv_mutex_unlock(&x->lock);
}

/* Drops a reference (any thread); the last posts on_done to the IO
 * thread (or runs it here when the thread has stopped). */
void orpc__x_unref(orpc_http_exchange *x)
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

/* ---- running on_request (IO thread or a worker) ----------------------- */

static void start_call(orpc_http_exchange *x);

static void after_request(orpc_http_exchange *x);

static void request_done_task(orpc__task *t, void *arg)
{
    orpc_http_exchange *x = arg;
    (void)t;
    if (x->sc != NULL)
        after_request(x);
    orpc__x_unref(x); /* the worker's */
}

void orpc__x_error(orpc_http_exchange *x, int status, const char *detail)
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
        orpc__x_error(x, 500, "the request was not answered");
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
        orpc__x_wake(x);
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
        orpc__x_unref(x); /* shutting down: the connection goes too */
}

/* A complete request: answer it or hand it to the gateway (on this
 * thread first when it asks, then a worker). */
void orpc__x_dispatch(orpc_http_exchange *x)
{
    orpc_server *srv = x->srv;
    if (srv->gw->inline_first) {
        x->to_gateway = 1;
        if (!run_on_request(x, 1)) {
            after_request(x);
            return;
        }
    }
    if (atomic_fetch_add(&srv->h1_pending, 1) >= srv->opts.http1_max_pending) {
        atomic_fetch_sub(&srv->h1_pending, 1);
        orpc__x_error(x, 503,
                      "server overloaded: too many HTTP requests "
                      "wait for a worker");
        x->keep_alive = 0;
        x->ready = 1;
        orpc__x_wake(x);
        return;
    }
    orpc__x_ref(x);            /* the worker's */
    int given = x->to_gateway; /* (on_request ran inline already) */
    x->to_gateway = 1;
    x->job.fn = request_job;
    if (orpc__pool_submit(&srv->pool, &x->job) != 0) {
        atomic_fetch_sub(&srv->h1_pending, 1);
        x->to_gateway = given;
        orpc__x_unref(x);
        orpc__x_error(x, 503, "server overloaded");
        x->keep_alive = 0;
        x->ready = 1;
        orpc__x_wake(x);
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
    orpc__x_wake(x);
}

/* The exchange's call starts (IO thread), as request_headers_done() starts
 * a gRPC one.  On HTTP/2 the stream's orpc_ctx becomes the call: it was
 * counted against max_concurrent_calls when the stream opened, and it
 * holds its reference on the exchange already. */
static void start_call(orpc_http_exchange *x)
{
    orpc__sconn *sc = x->sc;
    orpc_server *srv = x->srv;
    orpc_ctx *ctx = x->ctx;
    x->call_pending = 0;
    if (!x->http2) {
        if (atomic_load(&srv->calls) >= srv->opts.max_concurrent_calls) {
            fail_without_call(x, ORPC_UNAVAILABLE,
                              "server overloaded (max_concurrent_calls)");
            return;
        }
        ctx = orpc__ctx_new(sc, 0);
        if (ctx == NULL) {
            fail_without_call(x, ORPC_RESOURCE_EXHAUSTED, "out of memory");
            return;
        }
        orpc__x_ref(x); /* the call's */
        ctx->x = x;
        x->ctx = ctx;
    }
    x->call_started = 1;
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

void orpc__x_wake(orpc_http_exchange *x)
{
    if (x->sc == NULL)
        return;
    if (x->http2)
        orpc__h2x_pump(x);
    else
        orpc__conn_kick(x->sc->conn);
}

void orpc__x_ctx_pump(orpc_ctx *ctx)
{
    if (ctx->x->http2)
        orpc__x_wake(ctx->x);
    else if (ctx->sc != NULL)
        orpc__conn_kick(ctx->sc->conn);
}

int orpc__x_ctx_message(orpc_ctx *ctx, const ProtobufCMessage *msg)
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

int orpc__x_ctx_send(orpc_ctx *ctx, const ProtobufCMessage *msg)
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

void orpc__x_ctx_freed(orpc_ctx *ctx)
{
    orpc_http_exchange *x = ctx->x;
    ctx->x = NULL;
    ctx->path = NULL; /* the exchange's */
    orpc__x_unref(x);
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
    return x != NULL && x->http2 ? 2 : 1;
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

int orpc__x_tchar(uint8_t ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
           (ch >= '0' && ch <= '9') ||
           (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch));
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
        if (!orpc__x_tchar((uint8_t)*q))
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
