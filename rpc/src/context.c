/*
 * context.c — the orpc_ctx API a handler uses: deadline, cancellation,
 * metadata in and out, compression, reading and writing streamed messages
 * (blocking on a worker, ORPC_EAGAIN inline), and deferring a call to
 * finish it later from any thread.
 *
 * Locking theory: every field shared with the IO thread is read and written
 * under ctx->lock (server_internal.h marks them).
 */
#include "server_internal.h"

#include <stdlib.h>
#include <string.h>

#include <orpc/error.h>

#include "common/mem.h"

/* The server call whose handler runs on this thread (per thread, as errno
 * is): the implicit parent of the calls the handler makes. */
static _Thread_local orpc_ctx *current_ctx;

struct orpc_ctx *orpc__ctx_current(void)
{
    return current_ctx;
}

struct orpc_ctx *orpc__ctx_swap_current(struct orpc_ctx *ctx)
{
    orpc_ctx *prev = current_ctx;
    current_ctx = ctx;
    return prev;
}

const orpc_method_desc *orpc_ctx_method(const orpc_ctx *ctx)
{
    return ctx ? ctx->method : NULL;
}

int64_t orpc_ctx_deadline_ns(const orpc_ctx *ctx)
{
    return ctx ? ctx->deadline_ns : INT64_MAX;
}

int64_t orpc_ctx_remaining_ms(const orpc_ctx *ctx)
{
    if (ctx == NULL || ctx->deadline_ns == INT64_MAX)
        return INT64_MAX;
    int64_t left = ctx->deadline_ns - orpc__now_ns();
    return left <= 0 ? 0 : left / 1000000;
}

int orpc_ctx_is_cancelled(const orpc_ctx *ctx)
{
    orpc_ctx *c = (orpc_ctx *)ctx;
    if (c == NULL)
        return 1;
    uv_mutex_lock(&c->lock);
    int r = c->cancelled;
    uv_mutex_unlock(&c->lock);
    return r ||
           (c->deadline_ns != INT64_MAX && orpc__now_ns() >= c->deadline_ns);
}

int orpc_ctx_on_cancel(orpc_ctx *ctx, orpc_cancel_cb cb, void *user_data)
{
    if (ctx == NULL || cb == NULL)
        return ORPC_EINVAL;
    uv_mutex_lock(&ctx->lock);
    ctx->cancel_cb = cb;
    ctx->cancel_ud = user_data;
    int now = ctx->cancelled && !ctx->cancel_cb_done;
    if (now)
        ctx->cancel_cb_done = 1;
    uv_mutex_unlock(&ctx->lock);
    if (now)
        cb(ctx, user_data);
    return 0;
}

const orpc_metadata *orpc_ctx_metadata(const orpc_ctx *ctx)
{
    return ctx ? ctx->md : NULL;
}

static int add_md(orpc_ctx *ctx, orpc_metadata **md, int need_unstarted,
                  const char *key, const void *value, size_t len)
{
    int rc;
    uv_mutex_lock(&ctx->lock);
    if ((need_unstarted && (ctx->sendq.bytes > 0 || ctx->response_started)) ||
        ctx->finished) {
        uv_mutex_unlock(&ctx->lock);
        return ORPC_ESTATE;
    }
    if (*md == NULL && orpc_metadata_new(md, &ctx->srv->mem) != 0) {
        uv_mutex_unlock(&ctx->lock);
        return ORPC_ENOMEM;
    }
    rc = orpc_metadata_add(*md, key, value, len);
    uv_mutex_unlock(&ctx->lock);
    return rc;
}

int orpc_ctx_add_header(orpc_ctx *ctx, const char *key, const void *value,
                        size_t len)
{
    if (ctx == NULL)
        return ORPC_EINVAL;
    return add_md(ctx, &ctx->resp_headers, 1, key, value, len);
}

/* grpc-retry-pushback-ms, the one reserved trailer a handler sets: kept
 * apart from the metadata (whose keys exclude grpc-*), sent by
 * add_trailers() in server_call.c. */
static int set_pushback(orpc_ctx *ctx, const void *value, size_t len)
{
    const char *v = value;
    if ((v == NULL && len > 0) || len == 0 || len >= sizeof(ctx->pushback))
        return ORPC_EINVAL;
    for (size_t i = 0; i < len; i++)
        if (v[i] < 0x20 || v[i] > 0x7e)
            return ORPC_EINVAL;
    uv_mutex_lock(&ctx->lock);
    int done = ctx->finished;
    if (!done) {
        memcpy(ctx->pushback, v, len);
        ctx->pushback[len] = '\0';
    }
    uv_mutex_unlock(&ctx->lock);
    return done ? ORPC_ESTATE : 0;
}

int orpc_ctx_add_trailer(orpc_ctx *ctx, const char *key, const void *value,
                         size_t len)
{
    if (ctx == NULL)
        return ORPC_EINVAL;
    if (key != NULL && strcmp(key, "grpc-retry-pushback-ms") == 0)
        return set_pushback(ctx, value, len);
    return add_md(ctx, &ctx->trailers, 0, key, value, len);
}

int orpc_ctx_previous_attempts(const orpc_ctx *ctx)
{
    return ctx ? ctx->prev_attempts : 0;
}

const char *orpc_ctx_peer_identity(const orpc_ctx *ctx)
{
    return ctx ? ctx->peer_identity : NULL;
}

const char *orpc_ctx_peer_address(const orpc_ctx *ctx)
{
    return ctx ? ctx->peer : NULL;
}

orpc_arena *orpc_ctx_arena(orpc_ctx *ctx)
{
    return ctx ? ctx->arena : NULL;
}

int orpc_ctx_set_compression(orpc_ctx *ctx, const char *algorithm)
{
    if (ctx == NULL || algorithm == NULL)
        return ORPC_EINVAL;
    int gz = strcmp(algorithm, "gzip") == 0;
    if (!gz && strcmp(algorithm, "identity") != 0)
        return ORPC_ENOTSUP;
    uv_mutex_lock(&ctx->lock);
    int started = ctx->response_started || ctx->sendq.bytes > 0;
    if (!started)
        ctx->compress_resp = gz && ctx->accept_gzip;
    uv_mutex_unlock(&ctx->lock);
    return started ? ORPC_ESTATE : 0;
}

int orpc_ctx_recv(orpc_ctx *ctx, ProtobufCMessage **msg)
{
    if (ctx == NULL || msg == NULL)
        return ORPC_EINVAL;
    *msg = NULL;
    int kind = ctx->method->kind;
    if (kind != ORPC_CALL_CLIENT_STREAMING && kind != ORPC_CALL_BIDI_STREAMING)
        return ORPC_ESTATE;
    uv_mutex_lock(&ctx->lock);
    if (ctx->last_read) {
        orpc__inmsg *old = ctx->last_read;
        ctx->last_read = NULL;
        uv_mutex_unlock(&ctx->lock);
        protobuf_c_message_free_unpacked(old->msg, &ctx->srv->pb);
        orpc__mem_free(&ctx->srv->mem, old);
        uv_mutex_lock(&ctx->lock);
    }
    for (;;) {
        orpc__inmsg *r = orpc__in_take_locked(&ctx->in);
        if (r != NULL) {
            ctx->last_read = r;
            ctx->last_compressed = r->compressed;
            int owed = orpc__in_owed_locked(&ctx->in);
            uv_mutex_unlock(&ctx->lock);
            *msg = r->msg;
            if (owed) /* its flow-control credit goes back */
                orpc__ctx_request_pump(ctx);
            return 1;
        }
        if (ctx->recv_eos) {
            uv_mutex_unlock(&ctx->lock);
            return 0;
        }
        if (ctx->cancelled || ctx->finished) {
            uv_mutex_unlock(&ctx->lock);
            return ORPC_ECANCELLED;
        }
        if (ctx->svc->nonblocking) {
            ctx->resume_wanted = 1;
            uv_mutex_unlock(&ctx->lock);
            return ORPC_EAGAIN;
        }
        if (orpc__io_on_any_thread()) { /* it would wait on itself */
            uv_mutex_unlock(&ctx->lock);
            return ORPC_EBLOCKING;
        }
        ctx->in.waiting++;
        uv_cond_wait(&ctx->cond, &ctx->lock);
        ctx->in.waiting--;
    }
}

int orpc_ctx_send(orpc_ctx *ctx, const ProtobufCMessage *msg)
{
    if (ctx == NULL || msg == NULL)
        return ORPC_EINVAL;
    int kind = ctx->method->kind;
    if (kind != ORPC_CALL_SERVER_STREAMING && kind != ORPC_CALL_BIDI_STREAMING)
        return ORPC_ESTATE;
    if (ctx->x != NULL) /* an exchange (orpc/gateway.h): the gateway encodes */
        return orpc__x_ctx_send(ctx, msg);
    int err = 0;
    uv_mutex_lock(&ctx->lock);
    int gz = ctx->compress_resp && !ctx->msg_nocompress;
    uv_mutex_unlock(&ctx->lock);
    orpc__chunk *c = orpc__encode_message(
        &ctx->srv->mem, msg, gz, ctx->srv->opts.max_send_message_size, &err);
    if (c == NULL)
        return err;
    uv_mutex_lock(&ctx->lock);
    for (;;) {
        if (ctx->cancelled || ctx->finished) {
            uv_mutex_unlock(&ctx->lock);
            orpc__mem_free(&ctx->srv->mem, c);
            return ORPC_ECANCELLED;
        }
        if (ctx->sendq.bytes < ORPC__SENDQ_LIMIT)
            break;
        if (ctx->svc->nonblocking) {
            ctx->resume_wanted = 1;
            uv_mutex_unlock(&ctx->lock);
            orpc__mem_free(&ctx->srv->mem, c);
            return ORPC_EAGAIN;
        }
        if (orpc__io_on_any_thread()) { /* it would wait on itself */
            uv_mutex_unlock(&ctx->lock);
            free(c);
            return ORPC_EBLOCKING;
        }
        uv_cond_wait(&ctx->cond, &ctx->lock);
    }
    size_t payload = c->len - 5;
    orpc__sendq_push(&ctx->sendq, c);
    uv_mutex_unlock(&ctx->lock);
    orpc__chain_message(&ctx->ci, 1, payload);
    orpc__ctx_request_pump(ctx);
    return 0;
}

int orpc_ctx_set_message_compression(orpc_ctx *ctx, int on)
{
    if (ctx == NULL)
        return ORPC_EINVAL;
    uv_mutex_lock(&ctx->lock);
    ctx->msg_nocompress = !on;
    uv_mutex_unlock(&ctx->lock);
    return 0;
}

int orpc_ctx_request_compressed(const orpc_ctx *ctx)
{
    return ctx ? ctx->last_compressed : 0;
}

int orpc_ctx_defer(orpc_ctx *ctx)
{
    if (ctx == NULL)
        return ORPC_EINVAL;
    uv_mutex_lock(&ctx->lock);
    int was = ctx->deferred;
    ctx->deferred = 1;
    if (!was) /* for the running handler: dropped when it returns, so
                 another thread finishing the call cannot free it first */
        ctx->refs++;
    uv_mutex_unlock(&ctx->lock);
    return was ? ORPC_ESTATE : 0;
}

int orpc_ctx_finish(orpc_ctx *ctx, orpc_status status)
{
    if (ctx == NULL) {
        orpc_status_clear(&status);
        return ORPC_EINVAL;
    }
    uv_mutex_lock(&ctx->lock);
    int ok = ctx->deferred && ctx->handler_running;
    if (ok) /* exactly once, whichever thread comes first */
        ctx->handler_running = 0;
    uv_mutex_unlock(&ctx->lock);
    if (!ok) {
        orpc_status_clear(&status);
        return ORPC_ESTATE;
    }
    orpc__ctx_complete(ctx, status);
    orpc__ctx_handler_release(ctx);
    return 0;
}

const ProtobufCMessage *orpc_ctx_request(const orpc_ctx *ctx)
{
    return ctx ? ctx->request : NULL;
}

ProtobufCMessage *orpc_ctx_response(orpc_ctx *ctx)
{
    return ctx ? ctx->response : NULL;
}
