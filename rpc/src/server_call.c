/*
 * server_call.c — the life of one server call (orpc_ctx) from dispatch to
 * trailers: the response queue nghttp2 pulls from, Trailers-Only for early
 * errors, the final status (first one wins), running the handler on the
 * worker pool or inline, re-running deferred non-blocking handlers, and
 * the two-sided reference count that frees the call.
 *
 * Design notes:
 * - A call is shared by its IO thread and, while the handler runs, a
 *   worker.  Fields marked "IO thread" in server_internal.h are touched only
 *   by the IO thread; the rest are guarded by ctx->lock.  The worker never
 *   calls nghttp2: it queues bytes or a status under the lock and posts
 *   ctx->task, which the IO thread turns into frames.
 * - A call is freed when both sides let go (ctx->refs): the IO side when the
 *   stream has closed and its deadline timer handle is closed, the handler
 *   side when the handler has returned (or finished, if deferred).  Each
 *   call holds a reference on its server.
 * - Response bytes wait in ctx->sendq, which blocks a worker's
 *   orpc_ctx_send() above ORPC__SENDQ_LIMIT, while nghttp2 pulls from it
 *   only as the peer's window allows: a client that never reads stalls its
 *   handler, not our memory.
 *
 * Locking theory: ctx->lock guards the shared fields of one call; it is
 * never held while calling nghttp2, a handler, or another lock.
 */
#include "server_internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <orpc/error.h>

#include "common/mem.h"

static void ctx_unref(orpc_ctx *ctx)
{
    uv_mutex_lock(&ctx->lock);
    int left = --ctx->refs;
    uv_mutex_unlock(&ctx->lock);
    if (left > 0)
        return;
    orpc_server *srv = ctx->srv;
    if (ctx->ci.started > 0 && !ctx->ci.ended) /* never settled */
        orpc__chain_end(&ctx->ci, &ctx->status);
    if (ctx->x != NULL)
        orpc__x_ctx_freed(ctx);
    orpc__in_free(&ctx->in);
    if (ctx->last_read) {
        protobuf_c_message_free_unpacked(ctx->last_read->msg, &srv->pb);
        orpc__mem_free(&srv->mem, ctx->last_read);
    }
    orpc__sendq_clear(&ctx->sendq);
    orpc__status_clear_mem(&srv->mem, &ctx->status);
    orpc_metadata_free(ctx->md);
    orpc_metadata_free(ctx->resp_headers);
    orpc_metadata_free(ctx->trailers);
    orpc_arena_free(ctx->arena);
    orpc__mem_free(&srv->mem, ctx->peer_identity);
    uv_mutex_destroy(&ctx->lock);
    uv_cond_destroy(&ctx->cond);
    orpc__mem_free(&srv->mem, ctx);
    orpc__srv_unref(srv);
}

static void io_task(orpc__task *t, void *arg);
static void post_task(orpc_ctx *ctx);

orpc_ctx *orpc__ctx_new(orpc__sconn *sc, int32_t stream_id)
{
    orpc_server *srv = sc->sio->srv;
    orpc_ctx *ctx = orpc__mem_calloc(&srv->mem, 1, sizeof(*ctx));
    if (ctx == NULL)
        return NULL;
    if (sc->conn->peer_identity) {
        /* (without its copy the caller would look anonymous) */
        ctx->peer_identity =
            orpc__mem_strdup(&srv->mem, sc->conn->peer_identity);
        if (ctx->peer_identity == NULL) {
            orpc__mem_free(&srv->mem, ctx);
            return NULL;
        }
    }
    if (orpc_arena_new(&ctx->arena, 0, &srv->mem) != 0 ||
        orpc_metadata_new(&ctx->md, &srv->mem) != 0 ||
        uv_mutex_init(&ctx->lock) != 0) {
        orpc_metadata_free(ctx->md);
        orpc_arena_free(ctx->arena);
        orpc__mem_free(&srv->mem, ctx->peer_identity);
        orpc__mem_free(&srv->mem, ctx);
        return NULL;
    }
    uv_cond_init(&ctx->cond);
    ctx->srv = srv;
    ctx->sc = sc;
    ctx->sio = sc->sio;
    ctx->stream_id = stream_id;
    ctx->deadline_ns = INT64_MAX;
    ctx->refs = 1; /* the IO side */
    orpc__in_init(&ctx->in, &ctx->lock, &ctx->cond, &srv->mem, &srv->pb,
                  srv->opts.max_recv_message_size, ORPC__WINDOW,
                  &sc->conn->in_partial, srv->opts.max_connection_buffer);
    ctx->sendq.mem = &srv->mem;
    orpc__task_init(&ctx->task, io_task, ctx);
    orpc__srv_ref(srv); /* a deferred call may outlive orpc_server_free() */
    memcpy(ctx->peer, sc->conn->peer, sizeof(ctx->peer));
    ctx->next = sc->calls;
    if (sc->calls)
        sc->calls->prev = ctx;
    sc->calls = ctx;
    atomic_fetch_add(&srv->calls, 1);
    return ctx;
}

void orpc__ctx_unlink(orpc_ctx *ctx)
{
    if (ctx->sc == NULL)
        return;
    if (ctx->prev)
        ctx->prev->next = ctx->next;
    else
        ctx->sc->calls = ctx->next;
    if (ctx->next)
        ctx->next->prev = ctx->prev;
    ctx->prev = ctx->next = NULL;
    ctx->sc = NULL;
}

static void timer_closed(uv_handle_t *h)
{
    ctx_unref(h->data);
}

/* The IO side lets go: stream gone (closed, or connection lost: |s| is then
 * NULL).  Flow-control credit the call still holds goes back to |s|. */
void orpc__ctx_io_release(orpc_ctx *ctx, nghttp2_session *s)
{
    orpc__in_release(&ctx->in, s);
    atomic_fetch_sub(&ctx->srv->calls, 1);
    orpc__ctx_unlink(ctx);
    if (ctx->timer_started) {
        ctx->timer_started = 0;
        uv_close((uv_handle_t *)&ctx->timer, timer_closed);
    } else {
        ctx_unref(ctx);
    }
}

/* Marks the call cancelled; runs the cancel callback once (IO thread). */
void orpc__ctx_cancel(orpc_ctx *ctx)
{
    orpc_cancel_cb cb = NULL;
    void *ud = NULL;
    uv_mutex_lock(&ctx->lock);
    ctx->cancelled = 1;
    /* the callback is for a handler still at work, not after it is done */
    if (ctx->cancel_cb && !ctx->cancel_cb_done && ctx->handler_running) {
        ctx->cancel_cb_done = 1;
        cb = ctx->cancel_cb;
        ud = ctx->cancel_ud;
    }
    uv_cond_broadcast(&ctx->cond);
    uv_mutex_unlock(&ctx->lock);
    if (cb)
        cb(ctx, ud);
}

/* ---- responses (IO thread) --------------------------------------------- */

nghttp2_session *orpc__ctx_session(orpc_ctx *ctx)
{
    return ctx->sc ? ctx->sc->conn->session : NULL;
}

void orpc__ctx_kick(orpc_ctx *ctx)
{
    if (ctx->sc)
        orpc__conn_kick(ctx->sc->conn);
}

static int add_trailers(orpc_ctx *ctx, orpc__hdrs *h)
{
    if (orpc__hdrs_add_status(h, &ctx->status) != 0)
        return -1;
    if (ctx->trailers && orpc__hdrs_add_md(h, ctx->trailers) != 0)
        return -1;
    if (ctx->pushback[0] != '\0' &&
        orpc__hdrs_add(h, "grpc-retry-pushback-ms", ctx->pushback,
                       strlen(ctx->pushback)) != 0)
        return -1;
    return 0;
}

static ssize_t read_response(nghttp2_session *s, int32_t id, uint8_t *buf,
                             size_t len, uint32_t *flags,
                             nghttp2_data_source *src, void *user_data)
{
    orpc_ctx *ctx = src->ptr;
    (void)user_data;
    uv_mutex_lock(&ctx->lock);
    size_t n = orpc__sendq_read(&ctx->sendq, buf, len);
    int done = ctx->finished && ctx->sendq.bytes == 0;
    if (n > 0)
        uv_cond_broadcast(&ctx->cond); /* room for a blocked sender */
    int resume = n > 0 && ctx->resume_wanted && ctx->svc->nonblocking;
    uv_mutex_unlock(&ctx->lock);
    if (resume)
        post_task(ctx); /* not from inside mem_send */
    if (n == 0 && !done)
        return NGHTTP2_ERR_DEFERRED;
    if (done) {
        orpc__hdrs h;
        orpc__hdrs_init(&h, &ctx->srv->mem);
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (add_trailers(ctx, &h) == 0) {
            orpc__hdrs_finish(&h);
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            if (nghttp2_submit_trailer(s, id, h.nv, h.n) != 0)
                *flags &= ~(uint32_t)NGHTTP2_DATA_FLAG_NO_END_STREAM;
        }
        orpc__hdrs_free(&h);
        ctx->io_done = 1;
    }
    return (ssize_t)n;
}

/* The response HEADERS are out: metadata and compression are settled
 * (read by the handler's thread under the lock). */
void orpc__ctx_set_started(orpc_ctx *ctx)
{
    uv_mutex_lock(&ctx->lock);
    ctx->response_started = 1;
    uv_mutex_unlock(&ctx->lock);
}

static int add_response_headers(orpc_ctx *ctx, orpc__hdrs *h)
{
    if (orpc__hdrs_add_static(h, ":status", "200") != 0 ||
        orpc__hdrs_add_static(h, "content-type", "application/grpc") != 0 ||
        orpc__hdrs_add_static(h, "grpc-accept-encoding", "identity,gzip") != 0)
        return -1;
    uv_mutex_lock(&ctx->lock);
    int gz = ctx->compress_resp;
    uv_mutex_unlock(&ctx->lock);
    if (gz && orpc__hdrs_add_static(h, "grpc-encoding", "gzip") != 0)
        return -1;
    if (ctx->resp_headers && orpc__hdrs_add_md(h, ctx->resp_headers) != 0)
        return -1;
    return 0;
}

/* Resets the call's stream (its answer could not be built or submitted).
 * When nghttp2 has no memory even for that, the connection goes, ending
 * its calls, rather than leave the client waiting for an answer that
 * never comes. */
static void ctx_reset(orpc_ctx *ctx, nghttp2_session *s)
{
    if (nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, ctx->stream_id,
                                  NGHTTP2_INTERNAL_ERROR) != 0 &&
        ctx->sc != NULL)
        orpc__conn_close(ctx->sc->conn, "out of memory");
    ctx->io_done = 1;
}

/* Submits whatever the call has for the wire now. */
void orpc__ctx_pump(orpc_ctx *ctx)
{
    if (ctx->x != NULL) { /* an exchange's call (HTTP/1.1 or 2) */
        orpc__x_ctx_pump(ctx);
        return;
    }
    nghttp2_session *s = orpc__ctx_session(ctx);
    if (s == NULL || ctx->stream_closed || ctx->io_done)
        return;
    orpc__in_owed owed; /* credit of messages read, taken in the same lock */
    uv_mutex_lock(&ctx->lock);
    orpc__in_take_owed_locked(&ctx->in, &owed);
    int finished = ctx->finished;
    int have_data = ctx->sendq.bytes > 0;
    int started = ctx->response_started;
    uv_mutex_unlock(&ctx->lock);
    orpc__in_give_owed(&ctx->in, s, ctx->stream_id, &owed);
    if (!started) {
        if (!have_data && !finished)
            goto out;
        orpc__hdrs h;
        orpc__hdrs_init(&h, &ctx->srv->mem);
        int rc = add_response_headers(ctx, &h);
        /* Trailers-Only (one HEADERS frame, END_STREAM) when there is
         * nothing but the status. */
        int trailers_only = !have_data && finished;
        if (rc == 0 && trailers_only)
            rc = add_trailers(ctx, &h);
        orpc__hdrs_finish(&h);
        nghttp2_data_provider dp;
        dp.source.ptr = ctx;
        dp.read_callback = read_response;
        if (rc != 0 || nghttp2_submit_response(s, ctx->stream_id, h.nv, h.n,
                                               trailers_only ? NULL : &dp) != 0)
            ctx_reset(ctx, s);
        else if (trailers_only)
            ctx->io_done = 1;
        orpc__hdrs_free(&h);
        orpc__ctx_set_started(ctx);
    } else {
        nghttp2_session_resume_data(s, ctx->stream_id);
    }
out:
    orpc__ctx_kick(ctx);
}

/* Decides the call's final status (first one wins) on any thread. */
void orpc__ctx_settle(orpc_ctx *ctx, orpc_status st)
{
    uv_mutex_lock(&ctx->lock);
    if (ctx->finished) {
        uv_mutex_unlock(&ctx->lock);
        orpc__status_clear_mem(&ctx->srv->mem, &st);
        return;
    }
    ctx->finished = 1;
    ctx->status = st;
    uv_cond_broadcast(&ctx->cond);
    uv_mutex_unlock(&ctx->lock);
    /* the first status is the call's, and it never changes: the
     * interceptors see it now, once (the server's reference keeps them) */
    orpc__chain_end(&ctx->ci, &ctx->status);
}

/* Ends the call now from the IO thread with |code| (before or instead of
 * the handler), e.g. for bad input or an expired deadline. */

void orpc__ctx_fail(orpc_ctx *ctx, orpc_code code, const char *msg)
{
    orpc__ctx_settle(ctx, orpc__status_new_mem(&ctx->srv->mem, code, msg));
    uv_mutex_lock(&ctx->lock);
    orpc__sendq_clear(&ctx->sendq);
    int running = ctx->handler_running;
    uv_mutex_unlock(&ctx->lock);
    orpc__ctx_pump(ctx);
    if (running) {
        /* the handler must learn the call is over (and, deferred on an IO
         * thread, run once more to let go of it) */
        orpc__ctx_cancel(ctx);
        orpc__ctx_maybe_resume(ctx);
    }
}

static void io_task(orpc__task *t, void *arg)
{
    orpc_ctx *ctx = arg;
    (void)t;
    /* From here on a new post must queue the task again: work posted while
     * this run is under way would otherwise be lost. */
    orpc__task_clear_ref(&ctx->lock, &ctx->task_ref);
    orpc__ctx_pump(ctx);
    orpc__ctx_maybe_resume(ctx);
    ctx_unref(ctx); /* the reference the post took */
}

/* Runs io_task on the IO thread later; a queued task holds a reference so
 * the call outlives it. */
static void post_task(orpc_ctx *ctx)
{
    if (orpc__task_take_ref(&ctx->lock, &ctx->task_ref, &ctx->refs) &&
        orpc__io_post(&ctx->sio->io, &ctx->task) != 0) {
        orpc__task_clear_ref(&ctx->lock, &ctx->task_ref);
        ctx_unref(ctx);
    }
}

void orpc__ctx_wake(orpc_ctx *ctx)
{
    uv_mutex_lock(&ctx->lock);
    ctx->resume_wanted = 1;
    uv_mutex_unlock(&ctx->lock);
    post_task(ctx);
}

/* Posts a orpc__ctx_pump to the IO thread; from the IO thread pumps at once. */
void orpc__ctx_request_pump(orpc_ctx *ctx)
{
    if (orpc__io_on_thread(&ctx->sio->io)) {
        orpc__ctx_pump(ctx);
        return;
    }
    post_task(ctx);
}

/* ---- running handlers ------------------------------------------------- */

void orpc__ctx_complete(orpc_ctx *ctx, orpc_status st)
{
    const orpc_mem *mem = &ctx->srv->mem;
    /* the handler's status (libc's, orpc_status_new()) becomes the call's */
    st = orpc__status_adopt_mem(mem, st);
    if (ctx->deadline_ns != INT64_MAX && orpc__now_ns() >= ctx->deadline_ns) {
        /* Past the deadline the call is over, whatever the handler says:
         * the client hears DEADLINE_EXCEEDED, as it would from its own
         * timer (which may not have fired yet). */
        orpc__status_clear_mem(mem, &st);
        st = orpc__status_new_mem(mem, ORPC_DEADLINE_EXCEEDED,
                                  "deadline exceeded");
    }
    int kind = ctx->method->kind;
    if (st.code == ORPC_OK && ctx->x != NULL &&
        (kind == ORPC_CALL_UNARY || kind == ORPC_CALL_CLIENT_STREAMING)) {
        /* an exchange's call: the gateway encodes the response */
        if (orpc__x_ctx_message(ctx, ctx->response) != 0) {
            orpc__status_clear_mem(mem, &st);
            st = orpc__status_new_mem(mem, ORPC_INTERNAL,
                                      "the response could not be encoded");
        }
    } else if (st.code == ORPC_OK && (kind == ORPC_CALL_UNARY ||
                                      kind == ORPC_CALL_CLIENT_STREAMING)) {
        int err = 0;
        uv_mutex_lock(&ctx->lock);
        int gz = ctx->compress_resp && !ctx->msg_nocompress;
        uv_mutex_unlock(&ctx->lock);
        orpc__chunk *c = orpc__encode_message(
            mem, ctx->response, gz, ctx->srv->opts.max_send_message_size, &err);
        if (c == NULL) {
            orpc__status_clear_mem(mem, &st);
            st = orpc__status_new_mem(mem, ORPC_RESOURCE_EXHAUSTED,
                                      err == ORPC_ETOOBIG
                                          ? "response larger than the send "
                                            "limit"
                                          : "out of memory");
        } else {
            size_t payload = c->len - 5;
            uv_mutex_lock(&ctx->lock);
            int pushed = !ctx->finished;
            if (pushed)
                orpc__sendq_push(&ctx->sendq, c);
            else
                orpc__mem_free(mem, c);
            uv_mutex_unlock(&ctx->lock);
            if (pushed)
                orpc__chain_message(&ctx->ci, 1, payload);
        }
    }
    orpc__ctx_settle(ctx, st);
    orpc__ctx_request_pump(ctx);
}

/* The handler side lets go of the call (its handler returned, or the
 * deferred call was finished). */
void orpc__ctx_handler_release(orpc_ctx *ctx)
{
    uv_mutex_lock(&ctx->lock);
    ctx->handler_running = 0;
    int blocking = ctx->blocking_stream;
    ctx->blocking_stream = 0;
    uv_mutex_unlock(&ctx->lock);
    if (blocking)
        atomic_fetch_sub(&ctx->srv->blocking_streams, 1);
    ctx_unref(ctx);
}

static void run_handler(orpc_ctx *ctx)
{
    /* the calls the handler makes continue its trace (observe.c) */
    orpc_ctx *prev = orpc__ctx_swap_current(ctx);
    orpc_status st = ctx->handler(ctx, ctx->svc->impl, ctx->svc->user_data);
    orpc__ctx_swap_current(prev);
    uv_mutex_lock(&ctx->lock);
    int deferred = ctx->deferred;
    uv_mutex_unlock(&ctx->lock);
    if (deferred) {
        /* orpc_ctx_finish() completes the call, perhaps already has on
         * another thread: the reference orpc_ctx_defer() took for this run
         * kept |ctx| alive until here. */
        orpc_status_clear(&st);
        ctx_unref(ctx);
        return;
    }
    orpc__ctx_complete(ctx, st);
    orpc__ctx_handler_release(ctx);
}

/* A non-blocking streaming handler that deferred is run again when its call
 * has news: a message, the end of the requests, room to send, or a
 * cancellation (IO thread). */
void orpc__ctx_maybe_resume(orpc_ctx *ctx)
{
    if (ctx->svc == NULL || !ctx->svc->nonblocking)
        return;
    uv_mutex_lock(&ctx->lock);
    int go = ctx->handler_running && ctx->deferred &&
             (ctx->resume_wanted || ctx->cancelled);
    if (go) {
        ctx->resume_wanted = 0;
        ctx->deferred = 0;
    }
    uv_mutex_unlock(&ctx->lock);
    if (go)
        run_handler(ctx);
}

static void worker_job(orpc__job *j)
{
    orpc_ctx *ctx = (orpc_ctx *)((char *)j - offsetof(orpc_ctx, job));
    run_handler(ctx);
}

/* Sheds a call before its handler runs: RST_STREAM REFUSED_STREAM tells
 * the client nothing was processed, so it may retry (elsewhere). */
static void refuse_stream(orpc_ctx *ctx, const char *why)
{
    nghttp2_session *s = orpc__ctx_session(ctx);
    orpc__srv_log(ctx->srv, ORPC_LOG_INFO, "refused %s: %s",
                  ctx->path ? ctx->path : "a call", why);
    orpc__ctx_settle(
        ctx, orpc__status_new_mem(&ctx->srv->mem, ORPC_UNAVAILABLE, why));
    if (ctx->x != NULL) {
        /* an exchange's call: the gateway answers it (503), on HTTP/2 too */
        orpc__ctx_pump(ctx);
        return;
    }
    if (s != NULL &&
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, ctx->stream_id,
                                  NGHTTP2_REFUSED_STREAM) != 0)
        orpc__conn_close(ctx->sc->conn, "out of memory");
    ctx->io_done = 1;
    orpc__ctx_kick(ctx);
}

void orpc__ctx_dispatch(orpc_ctx *ctx)
{
    if (ctx->dispatched)
        return;
    ctx->dispatched = 1;
    int kind = ctx->method->kind;
    if (kind == ORPC_CALL_UNARY || kind == ORPC_CALL_CLIENT_STREAMING) {
        const ProtobufCMessageDescriptor *d = ctx->method->output->descriptor;
        ctx->response = orpc_arena_alloc(ctx->arena, d->sizeof_message);
        if (ctx->response == NULL) {
            orpc__ctx_fail(ctx, ORPC_RESOURCE_EXHAUSTED, "out of memory");
            return;
        }
        protobuf_c_message_init(d, ctx->response);
    }
    int blocking_stream = !ctx->svc->nonblocking && kind != ORPC_CALL_UNARY;
    if (blocking_stream) {
        /* A blocking streaming handler holds a worker while it waits for
         * messages or for room to send: past the cap new ones are refused,
         * so hundreds of idle streams never take the workers unary calls
         * need. */
        orpc_server *srv = ctx->srv;
        if (atomic_fetch_add(&srv->blocking_streams, 1) >=
            srv->opts.max_blocking_streams) {
            atomic_fetch_sub(&srv->blocking_streams, 1);
            refuse_stream(ctx, "too many streaming calls in progress "
                               "(max_blocking_streams)");
            return;
        }
    }
    uv_mutex_lock(&ctx->lock);
    ctx->refs++; /* the handler side */
    ctx->handler_running = 1;
    ctx->blocking_stream = blocking_stream;
    uv_mutex_unlock(&ctx->lock);
    if (ctx->svc->nonblocking) {
        run_handler(ctx);
        return;
    }
    ctx->job.fn = worker_job;
    int rc = orpc__pool_submit(&ctx->srv->pool, &ctx->job);
    if (rc != 0) {
        uv_mutex_lock(&ctx->lock);
        ctx->refs--;
        ctx->handler_running = 0;
        ctx->blocking_stream = 0;
        uv_mutex_unlock(&ctx->lock);
        if (blocking_stream)
            atomic_fetch_sub(&ctx->srv->blocking_streams, 1);
        if (rc == ORPC_ELIMIT)
            orpc__ctx_fail(
                ctx, ORPC_RESOURCE_EXHAUSTED,
                "server overloaded: too many calls wait for a worker "
                "(max_queued_calls)");
        else
            orpc__ctx_fail(ctx, ORPC_UNAVAILABLE, "server is shutting down");
    }
}
