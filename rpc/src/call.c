/*
 * call.c — a client call of any of the four kinds: created on the caller's
 * thread, handed to the channel's IO thread by its task, submitted on a
 * connection (or queued until one is ready), completed once with the
 * status the wire or the runtime decides, and freed when the caller and the
 * IO side both let go.  Also the call API (send, close, recv, cancel,
 * finish) and the blocking and asynchronous entry points.
 *
 * Design notes:
 * - Calls beyond the peer's SETTINGS_MAX_CONCURRENT_STREAMS are not failed:
 *   nghttp2 holds submitted requests until a stream slot frees.
 * - Unary and server-streaming calls keep a copy of their request, for the
 *   one transparent retry of a refused stream (channel_h2.c) and for the
 *   retries their service config asks for (retry.c); client- and
 *   bidi-streaming calls with a retry policy keep what they send until
 *   they commit (retry.c).
 * - The channel's service config (service_config.c) is applied when a call
 *   is made: the method's timeout (the smaller of it and the call's own),
 *   waitForReady, message limits (the smaller of them and the channel's),
 *   retry policy.
 * - A call has one timer: its deadline, or, between two attempts, the
 *   backoff (which ends before the deadline, or there is no retry).
 * - Outgoing messages wait in c->sendq; orpc_call_send() blocks above
 *   CALL_SENDQ_LIMIT while nghttp2 drains it as the server's window allows.
 *
 * Locking theory: call->lock guards the fields shared between the caller's
 * thread and the IO thread (queues, flags, status); it is never held while
 * calling nghttp2 or a user callback.
 */
#include "channel_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <orpc/context.h>
#include <orpc/error.h>

#include "common/mem.h"

static void channel_call_release(orpc_channel *ch);

static void call_unref(orpc_call *c)
{
    uv_mutex_lock(&c->lock);
    int left = --c->refs;
    uv_mutex_unlock(&c->lock);
    if (left > 0)
        return;
    orpc_channel *ch = c->ch;
    if (c->ci.started > 0 && !c->ci.ended) {
        /* (a call freed before it completed, e.g. its channel's IO thread
         * could not be reached) */
        orpc_status st = {.code = ORPC_CANCELLED,
                          .message = (char *)"call freed before it ended"};
        orpc__chain_end(&c->ci, &st);
    }
    orpc__sendq_clear(&c->sendq);
    orpc__in_free(&c->in);
    orpc__buf_free(&c->status_msg);
    orpc__buf_free(&c->status_details);
    orpc__status_clear_mem(&ch->mem, &c->status);
    orpc_metadata_free(c->md);
    orpc_metadata_free(c->headers);
    orpc_metadata_free(c->trailers);
    orpc__mem_free(&ch->mem, c->req_copy);
    orpc__retry_release(c);
    uv_mutex_destroy(&c->lock);
    uv_cond_destroy(&c->cond);
    orpc__mem_free(&ch->mem, c);
    channel_call_release(ch);
}

static void call_io_task(orpc__task *t, void *arg);

/* A call lets go of its channel; the last one out frees a channel whose
 * application references are gone (any thread, never joins a thread). */
static void channel_call_release(orpc_channel *ch)
{
    uv_mutex_lock(&ch->lock);
    int last = --ch->call_refs == 0 && ch->refs == 0 && ch->stopped;
    uv_mutex_unlock(&ch->lock);
    if (last)
        orpc__ch_destroy(ch);
}

static int call_new(orpc_call **out, orpc_channel *ch,
                    const orpc_method_desc *m, const orpc_call_opts *opts)
{
    orpc_call *c = orpc__mem_calloc(&ch->mem, 1, sizeof(*c));
    if (c == NULL)
        return ORPC_ENOMEM;
    if (uv_mutex_init(&c->lock) != 0) {
        orpc__mem_free(&ch->mem, c);
        return ORPC_ENOMEM;
    }
    uv_cond_init(&c->cond);
    uv_mutex_lock(&ch->lock);
    ch->call_refs++;
    uv_mutex_unlock(&ch->lock);
    c->ch = ch;
    c->method = m;
    c->refs = 1; /* the caller */
    orpc__task_init(&c->task, call_io_task, c);
    /* What the service config says for the method, over the channel's
     * settings where it is stricter. */
    const orpc__method_config *mc =
        orpc__svc_config_method(ch->svc_config, m->path);
    c->max_send = ch->opts.max_send_message_size;
    c->max_recv = ch->opts.max_recv_message_size;
    if (mc != NULL && mc->has_max_request && mc->max_request_bytes > 0 &&
        (c->max_send == 0 || mc->max_request_bytes < c->max_send))
        c->max_send = mc->max_request_bytes;
    if (mc != NULL && mc->has_max_response && mc->max_response_bytes > 0 &&
        mc->max_response_bytes < c->max_recv)
        c->max_recv = mc->max_response_bytes;
    orpc__retry_call_init(c, mc);
    /* Response messages go to the application, which frees them with
     * protobuf_c_message_free_unpacked(msg, NULL): they are unpacked with
     * libc (pb NULL); the rest of the call with the channel's hooks. */
    orpc__in_init(&c->in, &c->lock, &c->cond, &ch->mem, NULL, c->max_recv,
                  WINDOW, NULL, 0);
    c->sendq.mem = &ch->mem;
    orpc__buf_init(&c->status_msg, &ch->mem);
    orpc__buf_init(&c->status_details, &ch->mem);
    int64_t timeout_ms = opts && opts->timeout_ms > 0
                             ? opts->timeout_ms
                             : ch->opts.default_timeout_ms;
    int64_t timeout_ns = timeout_ms <= 0 ? 0
                         : timeout_ms > INT64_MAX / 4000000
                             ? INT64_MAX / 4
                             : timeout_ms * 1000000;
    if (mc != NULL && mc->timeout_ns > 0 &&
        (timeout_ns == 0 || mc->timeout_ns < timeout_ns))
        timeout_ns = mc->timeout_ns;
    if (timeout_ns > INT64_MAX / 4)
        timeout_ns = 0; /* centuries: none */
    c->deadline_ns = timeout_ns > 0 ? orpc__now_ns() + timeout_ns : INT64_MAX;
    c->wait_for_ready = mc != NULL && mc->wait_for_ready == 1;
    if (opts) {
        if (opts->served_by)
            *opts->served_by = ORPC_SERVED_GRPC;
        if (opts->reached)
            *opts->reached = ORPC_REACH_NONE;
        c->reached_out = opts->reached;
        c->wait_for_ready |= opts->wait_for_ready != 0;
        c->headers_out = opts->headers_out;
        c->trailers_out = opts->trailers_out;
        if (opts->compression && strcmp(opts->compression, "gzip") == 0)
            c->gzip = 1;
        else if (opts->compression &&
                 strcmp(opts->compression, "identity") != 0) {
            call_unref(c);
            return ORPC_ENOTSUP;
        }
        if (opts->metadata && orpc_metadata_count(opts->metadata) > 0) {
            if (orpc_metadata_new(&c->md, &ch->mem) != 0) {
                call_unref(c);
                return ORPC_ENOMEM;
            }
            if (orpc_metadata_add_all(c->md, opts->metadata) != 0) {
                call_unref(c);
                return ORPC_ENOMEM;
            }
        }
    }
    orpc__call_info_init(&c->ci, &ch->chain, m, ORPC_SIDE_CLIENT, &c->md,
                         &ch->mem, ch->target);
    if (opts && opts->parent)
        c->ci.parent_md = orpc_ctx_metadata(opts->parent);
    else if (orpc__call_info_active(&c->ci)) {
        const orpc_ctx *cur = orpc__ctx_current();
        c->ci.parent_md = cur ? orpc_ctx_metadata(cur) : NULL;
    }
    *out = c;
    return 0;
}

orpc_call *orpc__call_attempt_new(orpc_call *parent)
{
    orpc_call *c;
    if (call_new(&c, parent->ch, parent->method, NULL) != 0)
        return NULL;
    c->retry.policy = NULL; /* (the config's, which the parent applies) */
    c->retry.hedging = NULL;
    c->retry.keep = 0; /* (the parent keeps what is sent, for all) */
    c->deadline_ns = parent->deadline_ns;
    c->wait_for_ready = parent->wait_for_ready;
    c->gzip = parent->gzip;
    c->send_closed = 1;
    const orpc_mem *mem = &c->ch->mem;
    if (parent->md != NULL && (orpc_metadata_new(&c->md, mem) != 0 ||
                               orpc_metadata_add_all(c->md, parent->md) != 0))
        goto fail;
    if (parent->method->kind == ORPC_CALL_CLIENT_STREAMING ||
        parent->method->kind == ORPC_CALL_BIDI_STREAMING) {
        /* what the application sent so far; the rest follows (retry.c) */
        if (orpc__retry_hedge_fill(c, parent) != 0)
            goto fail;
        return c;
    }
    const orpc__chunk *req = parent->req_copy;
    if (req == NULL) /* (no memory for it when the call was made) */
        goto fail;
    c->req_copy = orpc__mem_malloc(mem, sizeof(*req) + req->len);
    if (c->req_copy == NULL)
        goto fail;
    memcpy(c->req_copy, req, sizeof(*req) + req->len);
    if (orpc__retry_replay(c) != 0)
        goto fail;
    return c;
fail:
    call_unref(c);
    return NULL;
}

/*
 * Runs the interceptors' on_start (caller's thread, before the call is
 * posted; |first_len| the payload bytes of a request already queued, or
 * -1).  A refusal is kept for the IO thread, which ends the call with it
 * the way any other failure ends (callbacks, the blocking caller).
 */
static void call_begin(orpc_call *c, ssize_t first_len)
{
    if (!orpc__call_info_active(&c->ci))
        return;
    const char *why = NULL;
    orpc_code code = orpc__chain_start(&c->ci, &why);
    if (code != ORPC_OK) {
        c->refused = code;
        c->refused_why = why;
        return;
    }
    if (first_len >= 0)
        orpc__chain_message(&c->ci, 1, (size_t)first_len);
}

/* post_call() for a caller that holds c->lock: claims the task in the
 * same critical section, then unlocks (the common path of a streaming
 * send: one lock instead of two). */
static void post_call_locked(orpc_call *c)
{
    int claim = !c->task_ref;
    if (claim) {
        c->task_ref = 1;
        c->refs++;
    }
    uv_mutex_unlock(&c->lock);
    if (!claim)
        return; /* queued already: it will see the new message */
    if (orpc__io_on_thread(&c->ch->io)) {
        call_io_task(&c->task, c);
        return;
    }
    if (orpc__io_post(&c->ch->io, &c->task) != 0) {
        orpc__task_clear_ref(&c->lock, &c->task_ref);
        call_unref(c);
    }
}

static void post_call(orpc_call *c)
{
    if (orpc__io_on_thread(&c->ch->io)) {
        /* From a callback on the channel's own thread (an async completion
         * starting the next call): run the task now instead of waking the
         * loop through the eventfd. */
        if (orpc__task_take_ref(&c->lock, &c->task_ref, &c->refs))
            call_io_task(&c->task, c);
        return;
    }
    if (orpc__task_take_ref(&c->lock, &c->task_ref, &c->refs) &&
        orpc__io_post(&c->ch->io, &c->task) != 0) {
        orpc__task_clear_ref(&c->lock, &c->task_ref);
        call_unref(c);
    }
}

/* ====================================================================== */
/* completion (IO thread)                                                  */
/* ====================================================================== */

void orpc__call_unlist(orpc_call *c)
{
    if (c->listed == 1) {
        if (c->prev_io)
            c->prev_io->next_io = c->next_io;
        else
            c->ch->waiting = c->next_io;
    } else if (c->listed == 2) {
        cconn *cc = c->cc;
        if (c->prev_io)
            c->prev_io->next_io = c->next_io;
        else
            cc->calls = c->next_io;
    } else if (c->listed == 3) {
        if (c->prev_io)
            c->prev_io->next_io = c->next_io;
        else
            c->ch->retry.pending = c->next_io;
    }
    if (c->next_io)
        c->next_io->prev_io = c->prev_io;
    c->next_io = c->prev_io = NULL;
    c->listed = 0;
}

static void timer_closed(uv_handle_t *h)
{
    call_unref(h->data);
}

/* The IO side lets go of the call: only once nghttp2 has forgotten the
 * stream, since its data provider points at the call.  Connection credit
 * its unread messages hold goes back to |s| (NULL: the connection is
 * gone). */
void orpc__call_io_release(orpc_call *c, nghttp2_session *s)
{
    if (c->io_released)
        return;
    c->io_released = 1;
    orpc__in_release(&c->in, s);
    orpc__call_unlist(c);
    c->conn = NULL;
    if (c->timer_started) {
        c->timer_started = 0;
        uv_close((uv_handle_t *)&c->timer, timer_closed);
    } else {
        call_unref(c);
    }
}

/* The call is over: decide its status, wake the caller, run the async
 * callback; release the IO side now, or when the stream closes. */
void orpc__call_complete(orpc_call *c, orpc_status st)
{
    const orpc_mem *mem = &c->ch->mem;
    if (c->io_finished) {
        orpc__status_clear_mem(mem, &st);
        return;
    }
    /* how far the request got: the furthest any attempt went */
    if (c->reach > c->reach_max)
        c->reach_max = c->reach;
    if (orpc__retry_check(c, &st))
        return; /* another attempt follows (retry.c) */
    c->io_finished = 1;
    if (c->retry.policy == NULL && c->retry.hedging == NULL &&
        (c->method->kind == ORPC_CALL_CLIENT_STREAMING ||
         c->method->kind == ORPC_CALL_BIDI_STREAMING))
        orpc__retry_release(c); /* kept for a transparent retry only */
    if (c->reached_out != NULL) /* before the caller can wake up */
        *c->reached_out = c->reach_max;
    if (c->stream_open && c->conn && c->conn->session &&
        !nghttp2_session_get_stream_local_close(c->conn->session,
                                                c->stream_id)) {
        /* Our side still open (the server answered early): stop sending. */
        orpc__call_reset(c);
    }

    ProtobufCMessage *resp = NULL;
    uv_mutex_lock(&c->lock);
    if (c->cancel_requested && st.code != ORPC_DEADLINE_EXCEEDED &&
        st.code != ORPC_OK) {
        orpc__status_clear_mem(mem, &st);
        st = orpc__status_new_mem(mem, ORPC_CANCELLED,
                                  "cancelled by the client");
    }
    int single = c->method->kind == ORPC_CALL_UNARY ||
                 c->method->kind == ORPC_CALL_CLIENT_STREAMING;
    if (single && st.code == ORPC_OK && c->in.received != 1) {
        orpc__status_clear_mem(mem, &st);
        st = orpc__status_new_mem(mem, ORPC_INTERNAL,
                                  c->in.received == 0
                                      ? "server sent no response message"
                                      : "server sent more than one response");
    }
    /* The interceptors see the outcome before the caller does: a blocking
     * caller wakes at the broadcast below, so for its call they run first
     * (out of the lock); an asynchronous call's callbacks run after the
     * lock is let go, so there they run then, with no second lock. */
    int hooks = orpc__call_info_active(&c->ci) && !c->ci.ended;
    int callbacks = c->is_async || c->done_cb || c->plain_cb;
    if (hooks && !callbacks) {
        uv_mutex_unlock(&c->lock);
        orpc__chain_end(&c->ci, &st);
        uv_mutex_lock(&c->lock);
    }
    c->status = st;
    c->done = 1;
    c->eos = 1;
    if ((c->done_cb || c->plain_cb) && c->status.code == ORPC_OK) {
        orpc__inmsg *m = orpc__in_take_locked(&c->in);
        if (m != NULL) {
            resp = m->msg;
            orpc__mem_free(mem, m);
        }
    }
    uv_cond_broadcast(&c->cond);
    uv_mutex_unlock(&c->lock);
    if (hooks && callbacks) /* |c->status| no longer changes */
        orpc__chain_end(&c->ci, &c->status);

    if (c->is_async) {
        (void)orpc_metadata_add_all(c->trailers_out, c->trailers);
        orpc__call_deliver(c); /* what is queued, then on_done */
    } else if (c->done_cb || c->plain_cb) {
        (void)orpc_metadata_add_all(c->trailers_out, c->trailers);
        if (c->done_cb)
            c->done_cb(&c->status, resp, c->typed_cb, c->cb_user_data);
        else
            c->plain_cb(&c->status, resp, c->cb_user_data);
        call_unref(c); /* async calls have no caller reference */
    }
    if (c->timer_started) {
        /* the deadline no longer matters */
        uv_timer_stop(&c->timer);
    }
    if (!c->stream_open)
        orpc__call_io_release(c, NULL);
}

void orpc__call_deliver(orpc_call *c)
{
    if (!c->is_async || c->delivering || c->async_over)
        return;
    c->delivering = 1;
    for (;;) {
        orpc__in_owed owed;
        uv_mutex_lock(&c->lock);
        int drop = c->done && c->cancel_requested;
        orpc__inmsg *m =
            c->recv_paused || drop ? NULL : orpc__in_take_locked(&c->in);
        orpc__in_take_owed_locked(&c->in, &owed);
        int over = m == NULL && c->done && (!c->recv_paused || drop);
        uv_mutex_unlock(&c->lock);
        if ((owed.stream || owed.conn) && c->conn && c->conn->session) {
            orpc__in_give_owed(&c->in, c->conn->session, c->stream_id, &owed);
            orpc__conn_kick(c->conn);
        } else if (c->retry.hedging != NULL) {
            orpc__retry_hedge_give(c, &owed); /* to the winning attempt */
        }
        if (m != NULL) {
            if (c->acbs.on_message)
                c->acbs.on_message(c, m->msg, c->cb_user_data);
            else
                protobuf_c_message_free_unpacked(m->msg, NULL);
            orpc__mem_free(&c->ch->mem, m);
            continue;
        }
        if (over) {
            c->async_over = 1;
            c->acbs.on_done(c, &c->status, c->cb_user_data);
            c->delivering = 0;
            call_unref(c); /* the callbacks' reference */
            return;
        }
        break;
    }
    c->delivering = 0;
}

void orpc__call_reset(orpc_call *c)
{
    c->reset_sent = 1;
    if (nghttp2_submit_rst_stream(c->conn->session, NGHTTP2_FLAG_NONE,
                                  c->stream_id, NGHTTP2_CANCEL) != 0) {
        /* No memory even for that: the stream would stay open (and the
         * call listed) until the server ends it, which it may never do. */
        orpc__conn_close(c->conn, "out of memory");
        return;
    }
    orpc__conn_kick(c->conn);
}

void orpc__call_fail(orpc_call *c, orpc_code code, const char *msg)
{
    if (c->stream_open && c->conn && c->conn->session && !c->io_finished)
        orpc__call_reset(c);
    orpc__call_complete(c, orpc__status_new_mem(&c->ch->mem, code, msg));
}

static void on_call_timer(uv_timer_t *t)
{
    orpc_call *c = t->data;
    if (c->retry.pending || c->retry.hedge_due) {
        orpc__retry_fire(c); /* the backoff is over, or a hedge is due */
        return;
    }
    c->retry.final = 1; /* the deadline covers every attempt */
    orpc__call_fail(c, ORPC_DEADLINE_EXCEEDED, "deadline exceeded");
}

void orpc__call_timer_arm(orpc_call *c, uint64_t ms)
{
    if (!c->timer_started) {
        uv_timer_init(&c->ch->io.loop, &c->timer);
        c->timer.data = c;
        c->timer_started = 1;
    }
    uv_timer_start(&c->timer, on_call_timer, ms, 0);
}

/* ====================================================================== */
/* requests (IO thread)                                                    */
/* ====================================================================== */

static ssize_t read_request(nghttp2_session *s, int32_t id, uint8_t *buf,
                            size_t len, uint32_t *flags,
                            nghttp2_data_source *src, void *user_data)
{
    orpc_call *c = src->ptr;
    (void)user_data;
    if (c->conn == NULL || c->conn->session != s || c->stream_id != id)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* a retried
                                                         attempt's stream */
    uv_mutex_lock(&c->lock);
    size_t n = orpc__sendq_read(&c->sendq, buf, len);
    int eof = c->send_closed && c->sendq.bytes == 0;
    if (n > 0 && c->send_waiting > 0)
        uv_cond_broadcast(&c->cond); /* room for a blocked sender */
    int ready = c->want_ready && c->sendq.bytes < CALL_SENDQ_LIMIT;
    if (ready) {
        c->want_ready = 0;
        c->ready_due = 1;
    }
    uv_mutex_unlock(&c->lock);
    if (ready)
        orpc__call_post(c); /* on_ready runs from the call's task, outside
                               nghttp2's send */
    if (n > 0 && c->retry.parent != NULL)
        orpc__retry_hedge_kick(c); /* a hedged attempt: room for more */
    if (n == 0 && !eof)
        return NGHTTP2_ERR_DEFERRED;
    if (eof)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

void orpc__call_submit(orpc_call *c, orpc__conn *conn)
{
    orpc_channel *ch = c->ch;
    orpc__hdrs h;
    char tbuf[16];
    orpc__hdrs_init(&h, &ch->mem);
    int rc = orpc__hdrs_add_static(&h, ":method", "POST");
    rc |= orpc__hdrs_add_static(&h, ":scheme", ch->is_tls ? "https" : "http");
    rc |= orpc__hdrs_add_str(&h, ":path", c->method->path);
    rc |= orpc__hdrs_add_str(&h, ":authority", ch->authority);
    rc |= orpc__hdrs_add_static(&h, "te", "trailers");
    if (c->deadline_ns != INT64_MAX) {
        int64_t left = c->deadline_ns - orpc__now_ns();
        size_t n = orpc__timeout_format(left > 0 ? left : 1, tbuf);
        rc |= orpc__hdrs_add(&h, "grpc-timeout", tbuf, n);
    }
    rc |= orpc__hdrs_add_static(&h, "content-type", "application/grpc");
    if (c->gzip)
        rc |= orpc__hdrs_add_static(&h, "grpc-encoding", "gzip");
    rc |= orpc__hdrs_add_static(&h, "grpc-accept-encoding", "identity,gzip");
    rc |= orpc__hdrs_add_str(&h, "user-agent", ch->user_agent);
    if (c->retry.attempts > 0) {
        char n[16];
        int len = snprintf(n, sizeof n, "%d", c->retry.attempts);
        rc |= orpc__hdrs_add(&h, "grpc-previous-rpc-attempts", n, (size_t)len);
    }
    if (c->md)
        rc |= orpc__hdrs_add_md(&h, c->md);
    if (rc != 0) {
        orpc__hdrs_free(&h);
        orpc__call_complete(c, orpc__status_new_mem(&ch->mem,
                                                    ORPC_RESOURCE_EXHAUSTED,
                                                    "out of memory"));
        return;
    }
    orpc__hdrs_finish(&h);
    nghttp2_data_provider dp;
    dp.source.ptr = c;
    dp.read_callback = read_request;
    int32_t id = nghttp2_submit_request(conn->session, NULL, h.nv, h.n, &dp, c);
    orpc__hdrs_free(&h);
    if (id < 0) {
        orpc__call_complete(
            c, id == NGHTTP2_ERR_NOMEM
                   ? orpc__status_new_mem(&ch->mem, ORPC_RESOURCE_EXHAUSTED,
                                          "out of memory")
                   : orpc__status_new_mem(&ch->mem, ORPC_UNAVAILABLE,
                                          "cannot open a stream"));
        return;
    }
    c->conn = conn;
    c->stream_id = id;
    c->submitted = 1;
    c->reach = ORPC_REACH_SENT; /* from here a handler may see it */
    c->stream_open = 1;
    c->in.conn_partial = &conn->in_partial;
    c->in.conn_budget = 4 * ch->opts.max_recv_message_size;
    cconn *cc = conn->user_data;
    c->cc = cc;
    c->listed = 2;
    c->prev_io = NULL;
    c->next_io = cc->calls;
    if (cc->calls)
        cc->calls->prev_io = c;
    cc->calls = c;
    orpc__conn_kick(conn);
}

void orpc__call_post(orpc_call *c)
{
    if (orpc__task_take_ref(&c->lock, &c->task_ref, &c->refs) &&
        orpc__io_post(&c->ch->io, &c->task) != 0) {
        orpc__task_clear_ref(&c->lock, &c->task_ref);
        call_unref(c);
    }
}

void orpc__call_enqueue(orpc_call *c)
{
    if (c->retry.hedging != NULL) {
        orpc__retry_hedge_start(c); /* its attempts are enqueued (retry.c) */
        return;
    }
    orpc__lb_enqueue(c); /* to a subchannel the policy picks (lb.c) */
}

static void call_io_task(orpc__task *t, void *arg)
{
    orpc_call *c = arg;
    (void)t;
    /* One critical section: a post arriving while this runs must queue the
     * task again (task_ref), and the credit of messages read so far is
     * collected for giving back. */
    orpc__in_owed owed;
    uv_mutex_lock(&c->lock);
    c->task_ref = 0;
    int cancel = c->cancel_requested;
    int ready = c->ready_due && !c->done;
    c->ready_due = 0;
    orpc__in_take_owed_locked(&c->in, &owed);
    uv_mutex_unlock(&c->lock);
    if (!c->io_finished) {
        if (c->refused != ORPC_OK) {
            orpc__call_fail(c, c->refused, c->refused_why);
        } else if (cancel) {
            orpc__call_fail(c, ORPC_CANCELLED, "cancelled by the client");
        } else if (!c->submitted && c->listed == 0 && !c->retry.pending) {
            if (c->deadline_ns != INT64_MAX) {
                int64_t left = c->deadline_ns - orpc__now_ns();
                orpc__call_timer_arm(
                    c, left > 0 ? (uint64_t)(left + 999999) / 1000000 : 0);
            }
            orpc__call_enqueue(c);
        } else if (c->submitted && c->conn) {
            orpc__in_give_owed(&c->in, c->conn->session, c->stream_id, &owed);
            nghttp2_session_resume_data(c->conn->session, c->stream_id);
            orpc__conn_kick(c->conn);
        } else if (c->retry.hedging != NULL && c->submitted) {
            orpc__retry_hedge_give(c, &owed); /* to the winning attempt */
        }
        /* a hedged call: what was sent goes to its attempts (retry.c) */
        if (c->retry.hedging != NULL && !c->io_finished &&
            orpc__retry_hedge_pump(c))
            ready = !c->done;
    }
    if (c->is_async) {
        orpc__call_deliver(c); /* after orpc_call_resume_recv() */
        if (ready && !c->async_over && c->acbs.on_ready)
            c->acbs.on_ready(c, c->cb_user_data);
    }
    call_unref(c);
}

/* ====================================================================== */
/* starting calls (any thread)                                             */
/* ====================================================================== */

static int queue_message(orpc_call *c, const ProtobufCMessage *msg,
                         int keep_copy, ssize_t *payload)
{
    int err = 0;
    if (msg->descriptor != c->method->input->descriptor)
        return ORPC_EINVAL;
    orpc__chunk *ck =
        orpc__encode_message(&c->ch->mem, msg, c->gzip, c->max_send, &err);
    if (ck == NULL)
        return err;
    if (keep_copy) {
        /* (without it, no transparent retry: not worth failing the call) */
        c->req_copy = orpc__mem_malloc(&c->ch->mem, sizeof(*ck) + ck->len);
        if (c->req_copy)
            memcpy(c->req_copy, ck, sizeof(*ck) + ck->len);
        /* counted for retries, when the call has a retry policy */
        orpc__retry_reserve(c, c->req_copy ? ck->len : SIZE_MAX);
    }
    *payload = (ssize_t)ck->len - 5;
    uv_mutex_lock(&c->lock);
    orpc__sendq_push(&c->sendq, ck);
    uv_mutex_unlock(&c->lock);
    return 0;
}

static int check_method(const orpc_method_desc *m, int want_kinds)
{
    if (m == NULL || m->input == NULL || m->output == NULL)
        return ORPC_EINVAL;
    return (want_kinds & (1 << m->kind)) ? 0 : ORPC_EINVAL;
}

#define KIND(k) (1 << (k))

orpc_status orpc_channel_invoke(orpc_channel *ch,
                                const orpc_method_desc *method,
                                const ProtobufCMessage *request,
                                ProtobufCMessage **response,
                                const orpc_call_opts *opts)
{
    orpc_call *c;
    if (response)
        *response = NULL;
    if (ch == NULL || request == NULL || response == NULL ||
        check_method(method, KIND(ORPC_CALL_UNARY)) != 0)
        return orpc_status_new(ORPC_INVALID_ARGUMENT,
                               "orpc_channel_invoke: bad argument");
    if (orpc__io_on_any_thread())
        return orpc__io_blocking_refused("orpc_channel_invoke");
    int rc = call_new(&c, ch, method, opts);
    if (rc != 0)
        return orpc_status_errorf(rc == ORPC_ENOMEM ? ORPC_RESOURCE_EXHAUSTED
                                                    : ORPC_INTERNAL,
                                  "cannot start call: %s", orpc_strerror(rc));
    ssize_t len;
    rc = queue_message(c, request, 1, &len);
    if (rc != 0) {
        call_unref(c);
        return orpc_status_new(
            rc == ORPC_EINVAL ? ORPC_INVALID_ARGUMENT : ORPC_RESOURCE_EXHAUSTED,
            rc == ORPC_ETOOBIG  ? "request larger than the send limit"
            : rc == ORPC_ENOMEM ? "out of memory"
                                : "request is not the method's input type");
    }
    c->send_closed = 1;
    call_begin(c, len);
    uv_mutex_lock(&c->lock);
    c->refs++; /* the IO side */
    uv_mutex_unlock(&c->lock);
    post_call(c);
    return orpc_call_finish_response(c, response);
}

static int start_async(orpc_channel *ch, const orpc_method_desc *method,
                       const ProtobufCMessage *request,
                       const orpc_call_opts *opts, orpc_unary_trampoline done,
                       orpc_fn typed, orpc_unary_cb plain, void *ud)
{
    orpc_call *c;
    if (ch == NULL || request == NULL ||
        check_method(method, KIND(ORPC_CALL_UNARY)) != 0)
        return ORPC_EINVAL;
    int rc = call_new(&c, ch, method, opts);
    if (rc != 0)
        return rc;
    ssize_t len;
    rc = queue_message(c, request, 1, &len);
    if (rc != 0) {
        call_unref(c);
        return rc;
    }
    c->send_closed = 1;
    call_begin(c, len);
    c->done_cb = done;
    c->typed_cb = typed;
    c->plain_cb = plain;
    c->cb_user_data = ud;
    /* The caller's reference becomes the callback's; plus the IO side. */
    uv_mutex_lock(&c->lock);
    c->refs++;
    uv_mutex_unlock(&c->lock);
    post_call(c);
    return 0;
}

int orpc_channel_invoke_async(orpc_channel *ch, const orpc_method_desc *method,
                              const ProtobufCMessage *request,
                              const orpc_call_opts *opts, orpc_unary_cb cb,
                              void *user_data)
{
    if (cb == NULL)
        return ORPC_EINVAL;
    return start_async(ch, method, request, opts, NULL, NULL, cb, user_data);
}

int orpc_channel_invoke_async_typed(orpc_channel *ch,
                                    const orpc_method_desc *method,
                                    const ProtobufCMessage *request,
                                    const orpc_call_opts *opts,
                                    orpc_unary_trampoline done,
                                    orpc_fn typed_cb, void *user_data)
{
    if (done == NULL)
        return ORPC_EINVAL;
    return start_async(ch, method, request, opts, done, typed_cb, NULL,
                       user_data);
}

static int stream_start(orpc_call **out, orpc_channel *ch,
                        const orpc_method_desc *method,
                        const ProtobufCMessage *request,
                        const orpc_call_opts *opts,
                        const orpc_call_callbacks *cbs, void *user_data)
{
    orpc_call *c;
    if (out == NULL || ch == NULL || method == NULL)
        return ORPC_EINVAL;
    *out = NULL;
    int server_stream = method->kind == ORPC_CALL_SERVER_STREAMING;
    if (check_method(method, KIND(ORPC_CALL_SERVER_STREAMING) |
                                 KIND(ORPC_CALL_CLIENT_STREAMING) |
                                 KIND(ORPC_CALL_BIDI_STREAMING)) != 0 ||
        (server_stream != (request != NULL)))
        return ORPC_EINVAL;
    int rc = call_new(&c, ch, method, opts);
    if (rc != 0)
        return rc;
    ssize_t len = -1;
    if (server_stream) {
        rc = queue_message(c, request, 1, &len);
        if (rc != 0) {
            call_unref(c);
            return rc;
        }
        c->send_closed = 1;
    }
    call_begin(c, len);
    uv_mutex_lock(&c->lock);
    c->refs++; /* the IO side */
    if (cbs != NULL) {
        c->is_async = 1;
        c->acbs = *cbs;
        c->cb_user_data = user_data;
        c->refs++; /* the callbacks', until on_done returns */
    }
    uv_mutex_unlock(&c->lock);
    *out = c;
    post_call(c);
    return 0;
}

int orpc_channel_call_start(orpc_call **out, orpc_channel *ch,
                            const orpc_method_desc *method,
                            const ProtobufCMessage *request,
                            const orpc_call_opts *opts)
{
    return stream_start(out, ch, method, request, opts, NULL, NULL);
}

int orpc_channel_call_start_async(orpc_call **out, orpc_channel *ch,
                                  const orpc_method_desc *method,
                                  const ProtobufCMessage *request,
                                  const orpc_call_opts *opts,
                                  const orpc_call_callbacks *callbacks,
                                  void *user_data)
{
    if (callbacks == NULL || callbacks->on_done == NULL) {
        if (out)
            *out = NULL;
        return ORPC_EINVAL;
    }
    return stream_start(out, ch, method, request, opts, callbacks, user_data);
}

static int set_paused(orpc_call *c, int paused)
{
    if (c == NULL)
        return ORPC_EINVAL;
    if (!c->is_async)
        return ORPC_ESTATE;
    uv_mutex_lock(&c->lock);
    c->recv_paused = paused;
    int done = c->done;
    uv_mutex_unlock(&c->lock);
    if (!paused) {
        /* Delivery resumes from the call's task on the IO thread (also for
         * a call already over, whose on_done may be waiting). */
        if (orpc__io_on_thread(&c->ch->io)) {
            orpc__call_deliver(c);
            if (!done)
                post_call(c); /* the credit of what was delivered */
        } else {
            post_call(c);
        }
    }
    return 0;
}

int orpc_call_pause_recv(orpc_call *c)
{
    return set_paused(c, 1);
}

int orpc_call_resume_recv(orpc_call *c)
{
    return set_paused(c, 0);
}

void orpc_call_unref(orpc_call *c)
{
    if (c != NULL)
        call_unref(c);
}

/* ====================================================================== */
/* call API (caller's thread)                                              */
/* ====================================================================== */

int orpc_call_send(orpc_call *c, const ProtobufCMessage *msg)
{
    if (c == NULL || msg == NULL)
        return ORPC_EINVAL;
    int k = c->method->kind;
    if (k != ORPC_CALL_CLIENT_STREAMING && k != ORPC_CALL_BIDI_STREAMING)
        return ORPC_ESTATE;
    if (msg->descriptor != c->method->input->descriptor)
        return ORPC_EINVAL;
    if (!c->is_async && orpc__io_on_any_thread())
        return ORPC_EBLOCKING;
    int err = 0;
    orpc__chunk *ck =
        orpc__encode_message(&c->ch->mem, msg, c->gzip, c->max_send, &err);
    if (ck == NULL)
        return err;
    uv_mutex_lock(&c->lock);
    for (;;) {
        if (c->done) {
            uv_mutex_unlock(&c->lock);
            orpc__mem_free(&c->ch->mem, ck);
            return ORPC_ECLOSED;
        }
        if (c->send_closed) {
            uv_mutex_unlock(&c->lock);
            orpc__mem_free(&c->ch->mem, ck);
            return ORPC_ESTATE;
        }
        if (c->sendq.bytes < CALL_SENDQ_LIMIT)
            break;
        if (c->is_async) {
            c->want_ready = 1;
            uv_mutex_unlock(&c->lock);
            orpc__mem_free(&c->ch->mem, ck);
            return ORPC_EAGAIN;
        }
        c->send_waiting++;
        uv_cond_wait(&c->cond, &c->lock);
        c->send_waiting--;
    }
    orpc__retry_keep_locked(c, ck); /* for replays, if retried (retry.c) */
    size_t payload = ck->len - 5;
    orpc__sendq_push(&c->sendq, ck);
    post_call_locked(c); /* unlocks */
    orpc__chain_message(&c->ci, 1, payload);
    return 0;
}

int orpc_call_close_send(orpc_call *c)
{
    if (c == NULL)
        return ORPC_EINVAL;
    uv_mutex_lock(&c->lock);
    int done = c->done;
    c->send_closed = 1;
    uv_mutex_unlock(&c->lock);
    if (done)
        return ORPC_ECLOSED;
    post_call(c);
    return 0;
}

int orpc_call_recv(orpc_call *c, ProtobufCMessage **msg)
{
    if (c == NULL || msg == NULL)
        return ORPC_EINVAL;
    *msg = NULL;
    if (c->is_async)
        return ORPC_ESTATE;
    if (orpc__io_on_any_thread())
        return ORPC_EBLOCKING;
    uv_mutex_lock(&c->lock);
    for (;;) {
        orpc__inmsg *r = orpc__in_take_locked(&c->in);
        if (r != NULL) {
            int owed = orpc__in_owed_locked(&c->in);
            int done = c->done;
            uv_mutex_unlock(&c->lock);
            *msg = r->msg;
            orpc__mem_free(&c->ch->mem, r);
            if (owed && !done) /* its flow-control credit goes back */
                post_call(c);
            return 1;
        }
        if (c->done) {
            int ok = c->status.code == ORPC_OK;
            uv_mutex_unlock(&c->lock);
            return ok ? 0 : ORPC_ECLOSED;
        }
        c->in.waiting++;
        uv_cond_wait(&c->cond, &c->lock);
        c->in.waiting--;
    }
}

void orpc_call_cancel(orpc_call *c)
{
    if (c == NULL)
        return;
    uv_mutex_lock(&c->lock);
    int done = c->done;
    c->cancel_requested = 1;
    uv_mutex_unlock(&c->lock);
    if (!done)
        post_call(c);
}

const orpc_metadata *orpc_call_headers(const orpc_call *c)
{
    if (c == NULL)
        return NULL;
    orpc_call *m = (orpc_call *)c;
    uv_mutex_lock(&m->lock);
    const orpc_metadata *h = m->headers_ready ? m->headers : NULL;
    uv_mutex_unlock(&m->lock);
    return h;
}

static orpc_status finish_common(orpc_call *c)
{
    uv_mutex_lock(&c->lock);
    while (!c->done)
        uv_cond_wait(&c->cond, &c->lock);
    orpc_status st = orpc_status_copy(&c->status);
    (void)orpc_metadata_add_all(c->trailers_out, c->trailers);
    uv_mutex_unlock(&c->lock);
    return st;
}

/* A finish that must not wait: an asynchronous call's (left untouched:
 * its status goes to on_done), or a blocking call's on an orpc IO thread
 * before the call has ended (cancelled and let go, as finish takes it).
 * Returns 1 with |*st| set when so. */
static int finish_refused(orpc_call *c, const char *fn, orpc_status *st)
{
    if (c->is_async) {
        *st = orpc_status_errorf(ORPC_FAILED_PRECONDITION,
                                 "%s: an asynchronous call's status goes to "
                                 "its on_done callback",
                                 fn);
        return 1;
    }
    if (!orpc__io_on_any_thread())
        return 0;
    uv_mutex_lock(&c->lock);
    int done = c->done;
    uv_mutex_unlock(&c->lock);
    if (done)
        return 0;
    orpc_call_cancel(c);
    call_unref(c);
    *st = orpc__io_blocking_refused(fn);
    return 1;
}

orpc_status orpc_call_finish(orpc_call *c)
{
    if (c == NULL)
        return orpc_status_new(ORPC_INVALID_ARGUMENT, "no call");
    orpc_status refused;
    if (finish_refused(c, "orpc_call_finish", &refused))
        return refused;
    uv_mutex_lock(&c->lock);
    int unread = c->in.head != NULL || !c->done;
    uv_mutex_unlock(&c->lock);
    if (unread) {
        /* Responses not all read: the call is abandoned. */
        uv_mutex_lock(&c->lock);
        int done = c->done;
        uv_mutex_unlock(&c->lock);
        if (!done)
            orpc_call_cancel(c);
    }
    orpc_status st = finish_common(c);
    call_unref(c);
    return st;
}

orpc_status orpc_call_finish_response(orpc_call *c, ProtobufCMessage **response)
{
    if (c == NULL)
        return orpc_status_new(ORPC_INVALID_ARGUMENT, "no call");
    if (response)
        *response = NULL;
    orpc_status st;
    if (finish_refused(c, "orpc_call_finish_response", &st))
        return st;
    orpc_call_close_send(c);
    st = finish_common(c);
    if (st.code == ORPC_OK && response != NULL) {
        uv_mutex_lock(&c->lock);
        orpc__inmsg *r = orpc__in_take_locked(&c->in);
        uv_mutex_unlock(&c->lock);
        if (r) {
            *response = r->msg;
            orpc__mem_free(&c->ch->mem, r);
        }
    }
    call_unref(c);
    return st;
}
