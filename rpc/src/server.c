/*
 * server.c — the gRPC server: listeners, connections, and the life of each
 * call from its HEADERS to its trailers.
 *
 * Design notes:
 * - Threads.  N IO threads each run a loop with their own listening socket
 *   on the same port (SO_REUSEPORT: the kernel spreads connections) and
 *   their own connections; a connection never changes thread.  Unix-socket
 *   listeners live on IO thread 0.  Blocking handlers run on the worker
 *   pool; handlers of services registered non-blocking run inline.
 * - A call (orpc_ctx) is shared by its IO thread and, while the handler
 *   runs, a worker.  Fields marked "IO thread" in server_internal.h are
 *   touched only by the IO thread; the rest are guarded by ctx->lock.  The
 *   worker never calls nghttp2: it queues bytes or a status under the lock
 *   and posts ctx->task, which the IO thread turns into frames.
 * - A call is freed when both sides let go (ctx->refs): the IO side when the
 *   stream has closed and its deadline timer handle is closed, the handler
 *   side when the handler has returned (or finished, if deferred).
 * - Flow control end to end: request bytes of streaming calls are given
 *   back to HTTP/2 flow control only when the handler reads them; response
 *   bytes wait in ctx->sendq, which blocks a worker's orpc_ctx_send() above
 *   ORPC__SENDQ_LIMIT, while nghttp2 pulls from it only as the peer's window
 *   allows.  A client that never reads stalls its handler, not our memory.
 *
 * Locking theory: ctx->lock guards the shared fields of one call; it is
 * never held while calling nghttp2, a handler, or another lock.  The server's
 * own lock guards |state| and the shutdown bookkeeping.
 */
#include "server_internal.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <netinet/in.h>
#include <orpc/channel.h>
#include <orpc/error.h>

#include "authz.h"
#include "mem.h"
#include "tls_internal.h"

#define ORPC__SENDQ_LIMIT (64u * 1024u)
#define ORPC__DEFAULT_STREAMS 100u
#define ORPC__DEFAULT_MAX_CONNECTIONS 10000u
#define ORPC__DEFAULT_MAX_CALLS 10000u
#define ORPC__DEFAULT_MAX_WORKERS 1024u
#define ORPC__DEFAULT_MAX_QUEUED 1024u
#define ORPC__WINDOW (1u << 20)

enum { SRV_NEW, SRV_RUNNING, SRV_STOPPING, SRV_STOPPED };

typedef struct listener {
    int is_pipe;
    int fds[ORPC__MAX_LISTENERS]; /* one per IO thread (TCP) or one (pipe) */
    int n_fds;
    char path[108];
} listener;

/* A loaded policy, shared by the calls checking against it; a reload swaps
 * in a new one and the last call still using the old one frees it. */
typedef struct policy_ref {
    orpc__authz *authz;
    int refs; /* under the server's lock */
} policy_ref;

struct orpc_server {
    orpc_server_opts opts;
    orpc_mem mem;
    char *tls_strings[6];
    char *policy_file;
    SSL_CTX *ssl_ctx;   /* for new connections; swapped by reload (lock) */
    policy_ref *policy; /* or NULL; swapped by reload (lock) */
    orpc__svc_entry *svcs;
    size_t n_svcs;
    listener listeners[ORPC__MAX_LISTENERS];
    int n_listeners;
    orpc__srv_io *ios;
    unsigned n_io;
    orpc__pool pool;
    int pool_ok;
    nghttp2_session_callbacks *cbs;
    nghttp2_option *h2opt;
    uv_mutex_t lock;
    uv_cond_t cond;
    int state;
    int64_t grace_ms;
    unsigned live_conns; /* under |lock|: accepted and not yet closed */
    int lock_ok;
    int refs;                     /* |lock|: the application + each call */
    atomic_uint calls;            /* streams with a call, all IO threads */
    atomic_uint blocking_streams; /* streaming calls holding a worker */
};

static void srv_log(orpc_server *s, orpc_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void srv_log(orpc_server *s, orpc_log_level lvl, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    if (s->opts.log == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    s->opts.log(lvl, buf, s->opts.log_user_data);
}

static unsigned ncpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

/* ---- authorization and TLS material (any thread) ---- */

static policy_ref *policy_get(orpc_server *srv)
{
    uv_mutex_lock(&srv->lock);
    policy_ref *p = srv->policy;
    if (p)
        p->refs++;
    uv_mutex_unlock(&srv->lock);
    return p;
}

static void policy_put(orpc_server *srv, policy_ref *p)
{
    if (p == NULL)
        return;
    uv_mutex_lock(&srv->lock);
    int last = --p->refs == 0;
    uv_mutex_unlock(&srv->lock);
    if (last) {
        orpc__authz_free(p->authz);
        free(p);
    }
}

static SSL_CTX *ssl_ctx_get(orpc_server *srv)
{
    uv_mutex_lock(&srv->lock);
    SSL_CTX *c = srv->ssl_ctx;
    if (c)
        SSL_CTX_up_ref(c);
    uv_mutex_unlock(&srv->lock);
    return c;
}

/* Loads what reload swaps in: a TLS context and a policy.  0, or
 * ORPC_ECONFIG having logged why (never key material). */
static int load_material(orpc_server *srv, SSL_CTX **ctx, policy_ref **pol)
{
    char err[512];
    *ctx = NULL;
    *pol = NULL;
    if (!srv->opts.plaintext) {
        *ctx = orpc__tls_server_ctx(&srv->opts.tls, err, sizeof(err));
        if (*ctx == NULL) {
            srv_log(srv, ORPC_LOG_ERROR, "TLS: %s", err);
            return ORPC_ECONFIG;
        }
    }
    if (srv->policy_file != NULL) {
        orpc__authz *a = NULL;
        if (orpc__authz_load_file(srv->policy_file, &a, err, sizeof(err)) !=
            0) {
            srv_log(srv, ORPC_LOG_ERROR, "authorization policy: %s", err);
            if (*ctx)
                SSL_CTX_free(*ctx);
            *ctx = NULL;
            return ORPC_ECONFIG;
        }
        *pol = calloc(1, sizeof(**pol));
        if (*pol == NULL) {
            orpc__authz_free(a);
            if (*ctx)
                SSL_CTX_free(*ctx);
            *ctx = NULL;
            return ORPC_ENOMEM;
        }
        (*pol)->authz = a;
        (*pol)->refs = 1;
    }
    return 0;
}

/* ====================================================================== */
/* the server's own lifetime                                               */
/* ====================================================================== */

/*
 * The server's memory is reference-counted: the application holds one
 * reference (dropped by orpc_server_free()) and every call another, so a
 * handler that deferred its call and finishes it from its own thread after
 * orpc_server_free() touches live memory (its call was cancelled when its
 * connection closed; the IO thread it posts to answers ORPC_ECLOSED).
 */
static void srv_destroy(orpc_server *srv);

static void srv_ref(orpc_server *srv)
{
    uv_mutex_lock(&srv->lock);
    srv->refs++;
    uv_mutex_unlock(&srv->lock);
}

static void srv_unref(orpc_server *srv)
{
    uv_mutex_lock(&srv->lock);
    int last = --srv->refs == 0;
    uv_mutex_unlock(&srv->lock);
    if (last)
        srv_destroy(srv);
}

/* ====================================================================== */
/* call life                                                               */
/* ====================================================================== */

static void ctx_unref(orpc_ctx *ctx)
{
    uv_mutex_lock(&ctx->lock);
    int left = --ctx->refs;
    uv_mutex_unlock(&ctx->lock);
    if (left > 0)
        return;
    orpc__in_free(&ctx->in);
    if (ctx->last_read) {
        protobuf_c_message_free_unpacked(ctx->last_read->msg, NULL);
        free(ctx->last_read);
    }
    orpc__sendq_clear(&ctx->sendq);
    orpc_status_clear(&ctx->status);
    orpc_metadata_free(ctx->md);
    orpc_metadata_free(ctx->resp_headers);
    orpc_metadata_free(ctx->trailers);
    orpc_arena_free(ctx->arena);
    free(ctx->peer_identity);
    uv_mutex_destroy(&ctx->lock);
    uv_cond_destroy(&ctx->cond);
    orpc_server *srv = ctx->srv;
    free(ctx);
    srv_unref(srv);
}

static void io_task(orpc__task *t, void *arg);
static void post_task(orpc_ctx *ctx);

static orpc_ctx *ctx_new(orpc__sconn *sc, int32_t stream_id)
{
    orpc_server *srv = sc->sio->srv;
    orpc_ctx *ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL)
        return NULL;
    if (orpc_arena_new(&ctx->arena, 0, NULL) != 0 ||
        orpc_metadata_new(&ctx->md, NULL) != 0 ||
        uv_mutex_init(&ctx->lock) != 0) {
        orpc_metadata_free(ctx->md);
        orpc_arena_free(ctx->arena);
        free(ctx);
        return NULL;
    }
    uv_cond_init(&ctx->cond);
    ctx->srv = srv;
    ctx->sc = sc;
    ctx->sio = sc->sio;
    ctx->stream_id = stream_id;
    ctx->deadline_ns = INT64_MAX;
    ctx->refs = 1; /* the IO side */
    orpc__in_init(&ctx->in, &ctx->lock, srv->opts.max_recv_message_size,
                  ORPC__WINDOW, &sc->conn->in_partial,
                  srv->opts.max_connection_buffer);
    orpc__task_init(&ctx->task, io_task, ctx);
    srv_ref(srv); /* a deferred call may outlive orpc_server_free() */
    memcpy(ctx->peer, sc->conn->peer, sizeof(ctx->peer));
    if (sc->conn->peer_identity)
        ctx->peer_identity = strdup(sc->conn->peer_identity);
    ctx->next = sc->calls;
    if (sc->calls)
        sc->calls->prev = ctx;
    sc->calls = ctx;
    atomic_fetch_add(&srv->calls, 1);
    return ctx;
}

static void unlink_ctx(orpc_ctx *ctx)
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
static void io_release(orpc_ctx *ctx, nghttp2_session *s)
{
    orpc__in_release(&ctx->in, s);
    atomic_fetch_sub(&ctx->srv->calls, 1);
    unlink_ctx(ctx);
    if (ctx->timer_started) {
        ctx->timer_started = 0;
        uv_close((uv_handle_t *)&ctx->timer, timer_closed);
    } else {
        ctx_unref(ctx);
    }
}

/* Marks the call cancelled; runs the cancel callback once (IO thread). */
static void ctx_cancel(orpc_ctx *ctx)
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

static nghttp2_session *ctx_session(orpc_ctx *ctx)
{
    return ctx->sc ? ctx->sc->conn->session : NULL;
}

static void kick(orpc_ctx *ctx)
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
        orpc__hdrs_init(&h);
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
static void set_started(orpc_ctx *ctx)
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

/* Submits whatever the call has for the wire now. */
static void pump(orpc_ctx *ctx)
{
    nghttp2_session *s = ctx_session(ctx);
    if (s == NULL || ctx->stream_closed || ctx->io_done)
        return;
    orpc__in_give_back(&ctx->in, s, ctx->stream_id);
    uv_mutex_lock(&ctx->lock);
    int finished = ctx->finished;
    int have_data = ctx->sendq.bytes > 0;
    int started = ctx->response_started;
    uv_mutex_unlock(&ctx->lock);
    if (!started) {
        if (!have_data && !finished)
            goto out;
        orpc__hdrs h;
        orpc__hdrs_init(&h);
        int rc = add_response_headers(ctx, &h);
        if (!have_data && finished) {
            /* Trailers-Only: one HEADERS frame, END_STREAM. */
            if (rc == 0)
                rc = add_trailers(ctx, &h);
            orpc__hdrs_finish(&h);
            if (rc == 0)
                nghttp2_submit_response(s, ctx->stream_id, h.nv, h.n, NULL);
            else
                nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, ctx->stream_id,
                                          NGHTTP2_INTERNAL_ERROR);
            ctx->io_done = 1;
        } else {
            nghttp2_data_provider dp;
            dp.source.ptr = ctx;
            dp.read_callback = read_response;
            orpc__hdrs_finish(&h);
            if (rc == 0)
                nghttp2_submit_response(s, ctx->stream_id, h.nv, h.n, &dp);
            else
                nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, ctx->stream_id,
                                          NGHTTP2_INTERNAL_ERROR);
        }
        orpc__hdrs_free(&h);
        set_started(ctx);
    } else {
        nghttp2_session_resume_data(s, ctx->stream_id);
    }
out:
    kick(ctx);
}

/* Decides the call's final status (first one wins) on any thread. */
static void ctx_finish(orpc_ctx *ctx, orpc_status st)
{
    uv_mutex_lock(&ctx->lock);
    if (ctx->finished) {
        uv_mutex_unlock(&ctx->lock);
        orpc_status_clear(&st);
        return;
    }
    ctx->finished = 1;
    ctx->status = st;
    uv_cond_broadcast(&ctx->cond);
    uv_mutex_unlock(&ctx->lock);
}

/* Ends the call now from the IO thread with |code| (before or instead of
 * the handler), e.g. for bad input or an expired deadline. */
static void maybe_resume(orpc_ctx *ctx);

static void fail_call(orpc_ctx *ctx, orpc_code code, const char *msg)
{
    ctx_finish(ctx, orpc_status_new(code, msg));
    uv_mutex_lock(&ctx->lock);
    orpc__sendq_clear(&ctx->sendq);
    int running = ctx->handler_running;
    uv_mutex_unlock(&ctx->lock);
    pump(ctx);
    if (running) {
        /* the handler must learn the call is over (and, deferred on an IO
         * thread, run once more to let go of it) */
        ctx_cancel(ctx);
        maybe_resume(ctx);
    }
}

static void io_task(orpc__task *t, void *arg)
{
    orpc_ctx *ctx = arg;
    (void)t;
    /* From here on a new post must queue the task again: work posted while
     * this run is under way would otherwise be lost. */
    orpc__task_clear_ref(&ctx->lock, &ctx->task_ref);
    pump(ctx);
    maybe_resume(ctx);
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

/* Posts a pump to the IO thread; from the IO thread pumps at once. */
static void request_pump(orpc_ctx *ctx)
{
    if (orpc__io_on_thread(&ctx->sio->io)) {
        pump(ctx);
        return;
    }
    post_task(ctx);
}

/* ---- running handlers ------------------------------------------------- */

static void complete_handler(orpc_ctx *ctx, orpc_status st)
{
    if (ctx->deadline_ns != INT64_MAX && orpc__now_ns() >= ctx->deadline_ns) {
        /* Past the deadline the call is over, whatever the handler says:
         * the client hears DEADLINE_EXCEEDED, as it would from its own
         * timer (which may not have fired yet). */
        orpc_status_clear(&st);
        st = orpc_status_new(ORPC_DEADLINE_EXCEEDED, "deadline exceeded");
    }
    int kind = ctx->method->kind;
    if (st.code == ORPC_OK &&
        (kind == ORPC_CALL_UNARY || kind == ORPC_CALL_CLIENT_STREAMING)) {
        int err = 0;
        uv_mutex_lock(&ctx->lock);
        int gz = ctx->compress_resp && !ctx->msg_nocompress;
        uv_mutex_unlock(&ctx->lock);
        orpc__chunk *c = orpc__encode_message(
            ctx->response, gz, ctx->srv->opts.max_send_message_size, &err);
        if (c == NULL) {
            orpc_status_clear(&st);
            st = err == ORPC_ETOOBIG
                     ? orpc_status_new(ORPC_RESOURCE_EXHAUSTED,
                                       "response larger than the send limit")
                     : orpc_status_new(ORPC_INTERNAL, "out of memory");
        } else {
            uv_mutex_lock(&ctx->lock);
            if (!ctx->finished)
                orpc__sendq_push(&ctx->sendq, c);
            else
                free(c);
            uv_mutex_unlock(&ctx->lock);
        }
    }
    ctx_finish(ctx, st);
    request_pump(ctx);
}

/* The handler side lets go of the call (its handler returned, or the
 * deferred call was finished). */
static void handler_release(orpc_ctx *ctx)
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
    /* The run holds its own reference: a handler that defers may have its
     * call finished by another thread, and the stream closed, before it
     * returns here. */
    uv_mutex_lock(&ctx->lock);
    ctx->refs++;
    uv_mutex_unlock(&ctx->lock);
    orpc_status st = ctx->handler(ctx, ctx->svc->impl, ctx->svc->user_data);
    uv_mutex_lock(&ctx->lock);
    int deferred = ctx->deferred;
    uv_mutex_unlock(&ctx->lock);
    if (deferred) {
        orpc_status_clear(&st); /* orpc_ctx_finish() completes the call */
    } else {
        complete_handler(ctx, st);
        handler_release(ctx);
    }
    ctx_unref(ctx);
}

/* A non-blocking streaming handler that deferred is run again when its call
 * has news: a message, the end of the requests, room to send, or a
 * cancellation (IO thread). */
static void maybe_resume(orpc_ctx *ctx)
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
    nghttp2_session *s = ctx_session(ctx);
    srv_log(ctx->srv, ORPC_LOG_INFO, "refused %s: %s",
            ctx->path ? ctx->path : "a call", why);
    ctx_finish(ctx, orpc_status_new(ORPC_UNAVAILABLE, why));
    if (s != NULL)
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, ctx->stream_id,
                                  NGHTTP2_REFUSED_STREAM);
    ctx->io_done = 1;
    kick(ctx);
}

static void dispatch(orpc_ctx *ctx)
{
    if (ctx->dispatched)
        return;
    ctx->dispatched = 1;
    int kind = ctx->method->kind;
    if (kind == ORPC_CALL_UNARY || kind == ORPC_CALL_CLIENT_STREAMING) {
        const ProtobufCMessageDescriptor *d = ctx->method->output->descriptor;
        ctx->response = orpc_arena_alloc(ctx->arena, d->sizeof_message);
        if (ctx->response == NULL) {
            fail_call(ctx, ORPC_RESOURCE_EXHAUSTED, "out of memory");
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
            fail_call(ctx, ORPC_RESOURCE_EXHAUSTED,
                      "server overloaded: too many calls wait for a worker "
                      "(max_queued_calls)");
        else
            fail_call(ctx, ORPC_UNAVAILABLE, "server is shutting down");
    }
}

/* ====================================================================== */
/* nghttp2 callbacks                                                       */
/* ====================================================================== */

static orpc__sconn *sconn_of(void *user_data)
{
    return ((orpc__conn *)user_data)->user_data;
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f,
                            void *user_data)
{
    orpc__sconn *sc = sconn_of(user_data);
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    orpc_server *srv = sc->sio->srv;
    if (atomic_load(&srv->calls) >= srv->opts.max_concurrent_calls) {
        /* Shed: the client may retry it (elsewhere); calls already
         * accepted go on. */
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id,
                                  NGHTTP2_REFUSED_STREAM);
        return 0;
    }
    orpc_ctx *ctx = ctx_new(sc, f->hd.stream_id);
    if (ctx == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST the stream */
    nghttp2_session_set_stream_user_data(s, f->hd.stream_id, ctx);
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f,
                     const uint8_t *name, size_t namelen, const uint8_t *value,
                     size_t valuelen, uint8_t flags, void *user_data)
{
    (void)flags;
    (void)user_data;
    if (f->hd.type != NGHTTP2_HEADERS)
        return 0;
    orpc_ctx *ctx = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (ctx == NULL || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* request trailers are ignored */
    ctx->header_bytes += namelen + valuelen + 32;
    size_t limit = ctx->srv->opts.max_header_list_size;
    if (ctx->header_bytes > limit) {
        ctx->headers_too_big = 1;
        return 0;
    }
    if (orpc__name_is(name, namelen, ":path")) {
        ctx->path = orpc_arena_alloc(ctx->arena, valuelen + 1);
        if (ctx->path) {
            memcpy(ctx->path, value, valuelen);
            ctx->path[valuelen] = '\0';
        }
    } else if (orpc__name_is(name, namelen, ":method")) {
        ctx->is_post = orpc__name_is(value, valuelen, "POST");
    } else if (orpc__name_is(name, namelen, "content-type")) {
        static const char ct[] = "application/grpc";
        size_t n = sizeof(ct) - 1;
        ctx->content_type_ok =
            valuelen >= n && memcmp(value, ct, n) == 0 &&
            (valuelen == n || value[n] == '+' || value[n] == ';');
    } else if (orpc__name_is(name, namelen, "grpc-timeout")) {
        int64_t ns;
        if (orpc__timeout_parse((const char *)value, valuelen, &ns) == 0) {
            int64_t now = orpc__now_ns();
            ctx->deadline_ns = ns > INT64_MAX - now ? INT64_MAX : now + ns;
        } else {
            ctx->bad_timeout = 1;
        }
    } else if (orpc__name_is(name, namelen, "grpc-encoding")) {
        if (orpc__name_is(value, valuelen, "gzip"))
            ctx->req_gzip = 1;
        else if (!orpc__name_is(value, valuelen, "identity"))
            ctx->bad_encoding = 1;
    } else if (orpc__name_is(name, namelen, "grpc-accept-encoding")) {
        for (size_t i = 0; i + 4 <= valuelen; i++)
            if (memcmp(value + i, "gzip", 4) == 0)
                ctx->accept_gzip = 1;
    } else {
        int rc = orpc__md_from_header(ctx->md, name, namelen, value, valuelen);
        if (rc == ORPC_ENOMEM)
            ctx->headers_too_big = 1;
        else if (rc != 0)
            ctx->bad_metadata = 1; /* never dropped: a policy may match it */
    }
    return 0;
}

static void on_deadline(uv_timer_t *t)
{
    orpc_ctx *ctx = t->data;
    /* The status first: a handler woken by the cancellation must not get
     * its own status in ahead of DEADLINE_EXCEEDED. */
    fail_call(ctx, ORPC_DEADLINE_EXCEEDED, "deadline exceeded");
    ctx_cancel(ctx);
    maybe_resume(ctx);
}

static const orpc__svc_entry *find_service(orpc_server *srv, const char *path,
                                           const orpc_method_desc **method,
                                           orpc_method_handler *handler)
{
    const char *slash;
    if (path == NULL || path[0] != '/' ||
        (slash = strchr(path + 1, '/')) == NULL)
        return NULL;
    size_t svc_len = (size_t)(slash - path - 1);
    for (size_t i = 0; i < srv->n_svcs; i++) {
        const orpc__svc_entry *e = &srv->svcs[i];
        if (strlen(e->desc->full_name) != svc_len ||
            memcmp(e->desc->full_name, path + 1, svc_len) != 0)
            continue;
        for (size_t m = 0; m < e->desc->n_methods; m++) {
            if (strcmp(e->desc->methods[m].name, slash + 1) == 0) {
                *method = &e->desc->methods[m];
                *handler = e->handlers[m];
                return e;
            }
        }
        *method = NULL;
        return e;
    }
    return NULL;
}

/* Sends a non-gRPC HTTP error response (bad content-type, bad method).
 * |status| must be a string literal (it is sent without copying). */
static void http_error(orpc_ctx *ctx, const char *status, orpc_code code,
                       const char *msg)
{
    nghttp2_session *s = ctx_session(ctx);
    orpc__hdrs h;
    orpc_status st = orpc_status_new(code, msg);
    orpc__hdrs_init(&h);
    if (orpc__hdrs_add_static(&h, ":status", status) == 0 &&
        orpc__hdrs_add_static(&h, "content-type", "application/grpc") == 0 &&
        orpc__hdrs_add_status(&h, &st) == 0) {
        orpc__hdrs_finish(&h);
        nghttp2_submit_response(s, ctx->stream_id, h.nv, h.n, NULL);
    } else {
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, ctx->stream_id,
                                  NGHTTP2_INTERNAL_ERROR);
    }
    orpc__hdrs_free(&h);
    orpc_status_clear(&st);
    ctx_finish(ctx, orpc_status_new(code, msg));
    set_started(ctx);
    ctx->io_done = 1;
    kick(ctx);
}

static void request_headers_done(orpc_ctx *ctx)
{
    orpc_server *srv = ctx->srv;
    if (ctx->headers_too_big) {
        fail_call(ctx, ORPC_RESOURCE_EXHAUSTED,
                  "request header list larger than the server accepts");
        return;
    }
    if (!ctx->is_post) {
        http_error(ctx, "405", ORPC_UNIMPLEMENTED, "gRPC requires POST");
        return;
    }
    if (!ctx->content_type_ok) {
        http_error(ctx, "415", ORPC_INTERNAL,
                   "invalid gRPC request content-type");
        return;
    }
    if (ctx->bad_timeout) {
        fail_call(ctx, ORPC_INTERNAL, "malformed grpc-timeout");
        return;
    }
    if (ctx->bad_metadata) {
        fail_call(ctx, ORPC_INTERNAL,
                  "malformed request metadata (a -bin value that is not "
                  "base64, or a value with forbidden characters)");
        return;
    }
    if (ctx->bad_encoding) {
        fail_call(ctx, ORPC_UNIMPLEMENTED,
                  "unsupported grpc-encoding (identity and gzip are)");
        return;
    }
    const orpc_method_desc *m = NULL;
    orpc_method_handler h = NULL;
    const orpc__svc_entry *e = find_service(srv, ctx->path, &m, &h);
    if (e == NULL || m == NULL) {
        char msg[300];
        snprintf(msg, sizeof(msg), "%s: %.200s",
                 e == NULL ? "unknown service" : "unknown method",
                 ctx->path ? ctx->path : "(no :path)");
        fail_call(ctx, ORPC_UNIMPLEMENTED, msg);
        return;
    }
    ctx->svc = e;
    ctx->method = m;
    ctx->handler = h;
    if (srv->opts.tls.require_client_cert && ctx->peer_identity == NULL) {
        /* mTLS: a verified certificate without exactly one valid SPIFFE
         * ID is no identity, and an anonymous caller goes no further. */
        fail_call(ctx, ORPC_UNAUTHENTICATED,
                  "client certificate carries no valid SPIFFE ID (exactly one "
                  "spiffe:// URI SAN is required)");
        return;
    }
    policy_ref *pol = policy_get(srv);
    if (pol != NULL) {
        const orpc__peer_names *n = &ctx->sc->conn->names;
        orpc__authz_peer peer = {
            .tls = ctx->sc->conn->ssl != NULL,
            .has_cert = n->has_cert,
            .uri_sans = (const char *const *)n->uri,
            .n_uri_sans = n->n_uri,
            .dns_sans = (const char *const *)n->dns,
            .n_dns_sans = n->n_dns,
            .subject = n->subject,
        };
        const char *rule = NULL;
        int allow =
            orpc__authz_check(pol->authz, &peer, ctx->path, ctx->md, &rule);
        if (!allow) {
            char msg[200];
            snprintf(msg, sizeof(msg), "%s is not allowed to call %s",
                     ctx->peer_identity ? ctx->peer_identity
                                        : "an unauthenticated caller",
                     ctx->path);
            srv_log(srv, ORPC_LOG_INFO, "denied %s%s%s", msg,
                    rule ? " by rule " : " (no rule allows it)",
                    rule ? rule : "");
            policy_put(srv, pol);
            fail_call(ctx, ORPC_PERMISSION_DENIED, msg);
            return;
        }
        policy_put(srv, pol);
    }
    if (h == NULL) {
        fail_call(ctx, ORPC_UNIMPLEMENTED, "method not implemented");
        return;
    }
    if (ctx->deadline_ns != INT64_MAX) {
        int64_t left = ctx->deadline_ns - orpc__now_ns();
        uint64_t ms = left <= 0 ? 0 : (uint64_t)(left + 999999) / 1000000;
        uv_timer_init(&ctx->sio->io.loop, &ctx->timer);
        ctx->timer.data = ctx;
        ctx->timer_started = 1;
        uv_timer_start(&ctx->timer, on_deadline, ms, 0);
    }
    if (m->kind == ORPC_CALL_CLIENT_STREAMING ||
        m->kind == ORPC_CALL_BIDI_STREAMING)
        dispatch(ctx);
}

/*
 * One complete request message (IO thread), decoded for the stream engine:
 * a unary or server-streaming call keeps its single request in the call's
 * arena (1: the engine gives its credit back at once), a streamed request
 * is queued for the handler (0), whose orpc_ctx_recv() gives it back.
 */
static int decode_request(void *owner, const uint8_t *p, size_t len,
                          int compressed, ProtobufCMessage **out)
{
    orpc_ctx *ctx = owner;
    orpc_status st = ORPC_STATUS_OK;
    int kind = ctx->method->kind;
    int single = kind == ORPC_CALL_UNARY || kind == ORPC_CALL_SERVER_STREAMING;
    if (single && ctx->request != NULL) {
        fail_call(ctx, ORPC_INTERNAL, "more than one request message");
        return ORPC_ECALLBACK;
    }
    ProtobufCMessage *m = orpc__decode_message(
        ctx->method->input->descriptor, p, len, compressed, ctx->req_gzip,
        ctx->srv->opts.max_recv_message_size,
        single ? orpc_arena_allocator(ctx->arena) : NULL, &st);
    if (m == NULL) {
        ctx_finish(ctx, st);
        uv_mutex_lock(&ctx->lock);
        orpc__sendq_clear(&ctx->sendq);
        uv_mutex_unlock(&ctx->lock);
        pump(ctx);
        return ORPC_ECALLBACK;
    }
    if (single) {
        ctx->request = m;
        uv_mutex_lock(&ctx->lock);
        ctx->last_compressed = compressed;
        uv_mutex_unlock(&ctx->lock);
        return 1;
    }
    *out = m;
    return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id,
                         const uint8_t *data, size_t len, void *user_data)
{
    (void)flags;
    (void)user_data;
    orpc_ctx *ctx = nghttp2_session_get_stream_user_data(s, id);
    if (ctx == NULL || ctx->method == NULL || ctx->io_done) {
        orpc__in_discard(s, id, len);
        return 0;
    }
    uv_mutex_lock(&ctx->lock);
    int finished = ctx->finished;
    uv_mutex_unlock(&ctx->lock);
    if (finished) {
        orpc__in_discard(s, id, len);
        return 0;
    }
    int rc = orpc__in_data(&ctx->in, s, id, data, len, decode_request, ctx);
    if (rc > 0) {
        uv_mutex_lock(&ctx->lock);
        uv_cond_broadcast(&ctx->cond);
        uv_mutex_unlock(&ctx->lock);
        maybe_resume(ctx);
        return 0;
    }
    switch (rc) {
    case 0:
    case ORPC_ECALLBACK: /* decode_request ended the call */
        break;
    case ORPC_ETOOBIG:
        fail_call(ctx, ORPC_RESOURCE_EXHAUSTED,
                  "request message larger than the server accepts");
        break;
    case ORPC_ELIMIT:
        fail_call(ctx, ORPC_RESOURCE_EXHAUSTED,
                  "the connection buffers more incomplete request messages "
                  "than the server accepts (max_connection_buffer)");
        break;
    case ORPC_ENOMEM:
        fail_call(ctx, ORPC_RESOURCE_EXHAUSTED, "out of memory");
        break;
    default:
        fail_call(ctx, ORPC_INTERNAL, "malformed message framing");
        break;
    }
    return 0;
}

static void end_of_request(orpc_ctx *ctx)
{
    ctx->remote_closed = 1;
    if (ctx->method == NULL || ctx->io_done)
        return;
    uv_mutex_lock(&ctx->lock);
    int finished = ctx->finished;
    uv_mutex_unlock(&ctx->lock);
    if (finished)
        return;
    if (orpc__in_partial(&ctx->in)) {
        ctx_cancel(ctx);
        fail_call(ctx, ORPC_INTERNAL, "request message cut short");
        return;
    }
    int kind = ctx->method->kind;
    if (kind == ORPC_CALL_UNARY || kind == ORPC_CALL_SERVER_STREAMING) {
        if (ctx->request == NULL) {
            fail_call(ctx, ORPC_INTERNAL, "missing request message");
            return;
        }
        dispatch(ctx);
        return;
    }
    uv_mutex_lock(&ctx->lock);
    ctx->recv_eos = 1;
    ctx->resume_wanted = 1;
    uv_cond_broadcast(&ctx->cond);
    uv_mutex_unlock(&ctx->lock);
    maybe_resume(ctx);
}

/*
 * A connection's timer: a client must finish its handshake (TLS, the
 * preface and its SETTINGS) within handshake_timeout_ms, or it is closed —
 * otherwise a peer that connects and sends nothing holds a descriptor and
 * memory for ever.  After that, every keepalive_time_ms a PING, which must
 * be answered within keepalive_timeout_ms (gRPC's server keepalive), so
 * connections to vanished clients (no FIN) are reaped with their calls.
 */
static void sconn_timer_fire(uv_timer_t *t)
{
    orpc__sconn *sc = t->data;
    const orpc_server_opts *o = &sc->sio->srv->opts;
    static const uint8_t payload[8] = {'o', 'r', 'p', 'c', 's', 'k', 'a', 0};
    switch (sc->phase) {
    case ORPC__SC_HANDSHAKE:
        orpc__conn_close(sc->conn, "handshake timeout");
        return;
    case ORPC__SC_IDLE:
        if (nghttp2_submit_ping(sc->conn->session, NGHTTP2_FLAG_NONE,
                                payload) != 0) {
            orpc__conn_close(sc->conn, "cannot send a keepalive PING");
            return;
        }
        sc->phase = ORPC__SC_PING;
        orpc__conn_kick(sc->conn);
        uv_timer_start(t, sconn_timer_fire, (uint64_t)o->keepalive_timeout_ms,
                       0);
        return;
    default:
        orpc__conn_close(sc->conn, "keepalive timeout");
        return;
    }
}

/* The client's SETTINGS (its handshake is done) or a PING ACK: the next
 * keepalive period starts. */
static void sconn_alive(orpc__sconn *sc, int settings)
{
    if (sc->timer == NULL || (settings && sc->phase != ORPC__SC_HANDSHAKE) ||
        (!settings && sc->phase != ORPC__SC_PING))
        return;
    sc->phase = ORPC__SC_IDLE;
    uv_timer_start(sc->timer, sconn_timer_fire,
                   (uint64_t)sc->sio->srv->opts.keepalive_time_ms, 0);
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

/*
 * gRPC's ping policing: a PING that comes less than min_ping_interval_ms
 * after the previous one, with no HEADERS or DATA sent in between, is a
 * strike; more than max_ping_strikes of them end the connection with
 * GOAWAY ENHANCE_YOUR_CALM "too_many_pings".  Answering a ping costs a
 * write; a flood of them is a cheap way to keep a server busy.
 */
static void ping_received(orpc__sconn *sc)
{
    const orpc_server_opts *o = &sc->sio->srv->opts;
    uint64_t now = uv_now(&sc->sio->io.loop);
    if (sc->last_ping_ms != 0 && !sc->sent_data &&
        now - sc->last_ping_ms < (uint64_t)o->min_ping_interval_ms)
        sc->ping_strikes++;
    sc->last_ping_ms = now;
    sc->sent_data = 0;
    if (o->max_ping_strikes >= 0 && sc->ping_strikes > o->max_ping_strikes &&
        !sc->goaway) {
        static const char why[] = "too_many_pings";
        sc->goaway = 1;
        nghttp2_submit_goaway(
            sc->conn->session, NGHTTP2_FLAG_NONE,
            nghttp2_session_get_last_proc_stream_id(sc->conn->session),
            NGHTTP2_ENHANCE_YOUR_CALM, (const uint8_t *)why, sizeof(why) - 1);
        orpc__conn_goaway_close(sc->conn, "too many pings");
    }
}

static int on_frame_send(nghttp2_session *s, const nghttp2_frame *f,
                         void *user_data)
{
    (void)s;
    if (f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) {
        orpc__sconn *sc = sconn_of(user_data);
        sc->sent_data = 1;
        sc->ping_strikes = 0;
    }
    return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f,
                         void *user_data)
{
    orpc_ctx *ctx;
    switch (f->hd.type) {
    case NGHTTP2_SETTINGS:
        if (!(f->hd.flags & NGHTTP2_FLAG_ACK))
            sconn_alive(sconn_of(user_data), 1);
        break;
    case NGHTTP2_PING:
        if (f->hd.flags & NGHTTP2_FLAG_ACK)
            sconn_alive(sconn_of(user_data), 0);
        else
            ping_received(sconn_of(user_data));
        break;
    case NGHTTP2_HEADERS:
        ctx = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
        if (ctx == NULL)
            return 0;
        if (f->headers.cat == NGHTTP2_HCAT_REQUEST)
            request_headers_done(ctx);
        if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
            end_of_request(ctx);
        break;
    case NGHTTP2_DATA:
        ctx = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
        if (ctx != NULL && (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
            end_of_request(ctx);
        break;
    default:
        break;
    }
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t error,
                           void *user_data)
{
    (void)error;
    (void)user_data;
    orpc_ctx *ctx = nghttp2_session_get_stream_user_data(s, id);
    if (ctx == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(s, id, NULL);
    ctx->stream_closed = 1;
    uv_mutex_lock(&ctx->lock);
    int done = ctx->finished && ctx->io_done;
    int running = ctx->handler_running;
    uv_mutex_unlock(&ctx->lock);
    if (!done || running) {
        ctx_cancel(ctx);
        ctx_finish(ctx, orpc_status_new(ORPC_CANCELLED, "call cancelled"));
        maybe_resume(ctx);
    }
    io_release(ctx, s);
    return 0;
}

/* ====================================================================== */
/* connections                                                             */
/* ====================================================================== */

static void sconn_closed(orpc__conn *c, const char *reason, void *user_data)
{
    orpc__sconn *sc = user_data;
    orpc__srv_io *sio = sc->sio;
    (void)c;
    srv_log(sio->srv, ORPC_LOG_DEBUG, "connection %s closed: %s", c->peer,
            reason);
    while (sc->calls) {
        orpc_ctx *ctx = sc->calls;
        unlink_ctx(ctx);
        ctx->stream_closed = 1;
        ctx_cancel(ctx);
        ctx_finish(ctx, orpc_status_new(ORPC_CANCELLED, "connection lost"));
        maybe_resume(ctx);
        io_release(ctx, NULL);
    }
    if (sc->timer)
        uv_close((uv_handle_t *)sc->timer, free_handle);
    if (sc->prev)
        sc->prev->next = sc->next;
    else
        sio->conns = sc->next;
    if (sc->next)
        sc->next->prev = sc->prev;
    free(sc);
    orpc_server *srv = sio->srv;
    uv_mutex_lock(&srv->lock);
    srv->live_conns--;
    uv_cond_broadcast(&srv->cond);
    uv_mutex_unlock(&srv->lock);
}

static const orpc__conn_hooks sconn_hooks = {NULL, sconn_closed};

static void on_connection(uv_stream_t *l, int status)
{
    orpc__srv_io *sio = l->data;
    orpc_server *srv = sio->srv;
    if (status < 0)
        return;
    orpc__sconn *sc = calloc(1, sizeof(*sc));
    orpc__conn *c = malloc(sizeof(*c));
    int is_pipe = l->type == UV_NAMED_PIPE;
    if (sc == NULL || c == NULL ||
        orpc__conn_init(c, &sio->io, is_pipe, &sconn_hooks, sc) != 0) {
        free(sc);
        free(c);
        return;
    }
    sc->conn = c;
    sc->sio = sio;
    if (uv_accept(l, &c->h.stream) != 0) {
        sc->conn = c;
        c->hooks = NULL;
        orpc__conn_close(c, "accept failed");
        free(sc);
        return;
    }
    uv_mutex_lock(&srv->lock);
    int full = srv->live_conns >= srv->opts.max_connections;
    if (!full)
        srv->live_conns++;
    uv_mutex_unlock(&srv->lock);
    if (full) {
        /* Shed: close at once, before TLS or HTTP/2 cost anything. */
        srv_log(srv, ORPC_LOG_INFO,
                "connection refused: max_connections (%u) reached",
                srv->opts.max_connections);
        c->hooks = NULL;
        orpc__conn_close(c, "too many connections");
        free(sc);
        return;
    }
    sc->next = sio->conns;
    if (sio->conns)
        sio->conns->prev = sc;
    sio->conns = sc;
    if (!is_pipe) {
        uv_tcp_nodelay(&c->h.tcp, 1);
        orpc__conn_set_peer_name(c);
    }
    SSL_CTX *ssl_ctx = ssl_ctx_get(srv);
    int started = orpc__conn_start(c, ssl_ctx, 1, NULL, srv->cbs, srv->h2opt);
    if (ssl_ctx)
        SSL_CTX_free(ssl_ctx); /* the connection's SSL holds its own */
    if (started != 0) {
        orpc__conn_close(c, "cannot start connection");
        return;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
         srv->opts.max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, ORPC__WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
         (uint32_t)srv->opts.max_header_list_size},
    };
    nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, 3);
    nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0,
                                          8 * ORPC__WINDOW);
    orpc__conn_kick(c);
    sc->timer = malloc(sizeof(*sc->timer));
    if (sc->timer != NULL) { /* without it the connection still works */
        uv_timer_init(&sio->io.loop, sc->timer);
        sc->timer->data = sc;
        sc->phase = ORPC__SC_HANDSHAKE;
        uv_timer_start(sc->timer, sconn_timer_fire,
                       (uint64_t)srv->opts.handshake_timeout_ms, 0);
    }
}

/* ====================================================================== */
/* listening                                                               */
/* ====================================================================== */

static int parse_hostport(const char *addr, struct sockaddr_storage *ss)
{
    char host[256];
    const char *colon;
    int port;
    memset(ss, 0, sizeof(*ss));
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (end == NULL || end[1] != ':' ||
            (size_t)(end - addr - 1) >= sizeof(host))
            return -1;
        memcpy(host, addr + 1, (size_t)(end - addr - 1));
        host[end - addr - 1] = '\0';
        colon = end + 1;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL || (size_t)(colon - addr) >= sizeof(host))
            return -1;
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = '\0';
    }
    char *endp;
    long p = strtol(colon + 1, &endp, 10);
    if (*endp != '\0' || p < 0 || p > 65535 || colon[1] == '\0')
        return -1;
    port = (int)p;
    if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 ||
        strcmp(host, "*") == 0)
        return uv_ip4_addr("0.0.0.0", port, (struct sockaddr_in *)ss) == 0 ? 0
                                                                           : -1;
    if (strcmp(host, "localhost") == 0)
        return uv_ip4_addr("127.0.0.1", port, (struct sockaddr_in *)ss) == 0
                   ? 0
                   : -1;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    return -1;
}

/*
 * The IO threads' listeners share their port through SO_REUSEPORT, which
 * would also let a second server (or process) bind the same port and
 * silently take a share of the connections.  Unless the application asked
 * for that (reuse_port), a socket without SO_REUSEPORT is bound first: the
 * kernel refuses it when anything holds the port.  It is closed again
 * before the real listeners bind (a process that binds in between wins the
 * race; orpc's servers do not, they probe too).
 */
static int port_in_use(const struct sockaddr_storage *ss)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0)
        return 0; /* the real bind will say what is wrong */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    socklen_t len = ss->ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                             : sizeof(struct sockaddr_in6);
    int busy =
        bind(fd, (const struct sockaddr *)ss, len) != 0 && errno == EADDRINUSE;
    close(fd);
    return busy;
}

static int tcp_socket(const struct sockaddr_storage *ss, int *port_io)
{
    int fam = ss->ss_family;
    int fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (fam == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    struct sockaddr_storage a = *ss;
    if (*port_io > 0) {
        if (fam == AF_INET)
            ((struct sockaddr_in *)&a)->sin_port = htons((uint16_t)*port_io);
        else
            ((struct sockaddr_in6 *)&a)->sin6_port = htons((uint16_t)*port_io);
    }
    socklen_t len = fam == AF_INET ? sizeof(struct sockaddr_in)
                                   : sizeof(struct sockaddr_in6);
    if (bind(fd, (struct sockaddr *)&a, len) != 0 || listen(fd, 1024) != 0) {
        close(fd);
        return -1;
    }
    if (*port_io <= 0) {
        struct sockaddr_storage got;
        socklen_t gl = sizeof(got);
        getsockname(fd, (struct sockaddr *)&got, &gl);
        *port_io =
            ntohs(fam == AF_INET ? ((struct sockaddr_in *)&got)->sin_port
                                 : ((struct sockaddr_in6 *)&got)->sin6_port);
    }
    return fd;
}

int orpc_server_listen(orpc_server *srv, const char *address, int *bound_port)
{
    if (srv == NULL || address == NULL)
        return ORPC_EINVAL;
    if (srv->state != SRV_NEW || srv->n_listeners == ORPC__MAX_LISTENERS)
        return ORPC_ESTATE;
    listener *l = &srv->listeners[srv->n_listeners];
    memset(l, 0, sizeof(*l));
    if (strncmp(address, "unix:", 5) == 0) {
        const char *path = address + 5;
        struct sockaddr_un un;
        if (*path == '\0' || strlen(path) >= sizeof(un.sun_path))
            return ORPC_EADDR;
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        memset(&un, 0, sizeof(un));
        un.sun_family = AF_UNIX;
        strcpy(un.sun_path, path);
        unlink(path);
        if (fd < 0 || bind(fd, (struct sockaddr *)&un, sizeof(un)) != 0 ||
            listen(fd, 1024) != 0) {
            if (fd >= 0)
                close(fd);
            return ORPC_EADDR;
        }
        l->is_pipe = 1;
        l->fds[0] = fd;
        l->n_fds = 1;
        snprintf(l->path, sizeof(l->path), "%s", path);
        srv->n_listeners++;
        if (bound_port)
            *bound_port = 0;
        return 0;
    }
    struct sockaddr_storage ss;
    if (parse_hostport(address, &ss) != 0)
        return ORPC_EADDR;
    int port = ss.ss_family == AF_INET
                   ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                   : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    if (port > 0 && !srv->opts.reuse_port && port_in_use(&ss)) {
        srv_log(srv, ORPC_LOG_ERROR, "listen %s: address in use", address);
        return ORPC_EADDR;
    }
    for (unsigned i = 0; i < srv->n_io; i++) {
        int fd = tcp_socket(&ss, &port);
        if (fd < 0) {
            for (int j = 0; j < l->n_fds; j++)
                close(l->fds[j]);
            return ORPC_EADDR;
        }
        l->fds[l->n_fds++] = fd;
    }
    srv->n_listeners++;
    if (bound_port)
        *bound_port = port;
    return 0;
}

/* ====================================================================== */
/* server object                                                           */
/* ====================================================================== */

/* Copies a TLS option; *failed is set when memory ran out (a NULL copy
 * would silently fall back to another source of the material). */
static char *dup_opt(orpc_server *srv, int slot, const char *s, int *failed)
{
    if (s == NULL)
        return NULL;
    srv->tls_strings[slot] = strdup(s);
    if (srv->tls_strings[slot] == NULL)
        *failed = 1;
    return srv->tls_strings[slot];
}

int orpc_server_new(orpc_server **out, const orpc_server_opts *opts,
                    const orpc_mem *mem)
{
    if (out == NULL)
        return ORPC_EINVAL;
    *out = NULL;
    orpc_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return ORPC_ENOMEM;
    if (opts)
        srv->opts = *opts;
    if (mem)
        srv->mem = *mem;
    orpc_server_opts *o = &srv->opts;
    int oom = 0;
    o->tls.ca_file = dup_opt(srv, 0, o->tls.ca_file, &oom);
    o->tls.ca_pem = dup_opt(srv, 1, o->tls.ca_pem, &oom);
    o->tls.cert_file = dup_opt(srv, 2, o->tls.cert_file, &oom);
    o->tls.cert_pem = dup_opt(srv, 3, o->tls.cert_pem, &oom);
    o->tls.key_file = dup_opt(srv, 4, o->tls.key_file, &oom);
    o->tls.key_pem = dup_opt(srv, 5, o->tls.key_pem, &oom);
    o->tls.server_name = NULL;
    o->tls.expected_spiffe_id = NULL;
    if (oom) {
        orpc_server_free(srv);
        return ORPC_ENOMEM;
    }
    if (o->authz_policy_file) {
        srv->policy_file = strdup(o->authz_policy_file);
        if (srv->policy_file == NULL) {
            orpc_server_free(srv);
            return ORPC_ENOMEM;
        }
    }
    o->authz_policy_file = srv->policy_file;
    if (o->io_threads == 0)
        o->io_threads = ncpus();
    if (o->io_threads > ORPC__MAX_LISTENERS)
        o->io_threads = ORPC__MAX_LISTENERS;
    if (o->worker_threads == 0)
        o->worker_threads = 2 * ncpus();
    if (o->max_recv_message_size == 0)
        o->max_recv_message_size = ORPC_DEFAULT_MAX_RECV_MESSAGE;
    if (o->max_concurrent_streams == 0)
        o->max_concurrent_streams = ORPC__DEFAULT_STREAMS;
    if (o->max_header_list_size == 0)
        o->max_header_list_size = 16 * 1024;
    if (o->handshake_timeout_ms <= 0)
        o->handshake_timeout_ms = 20000;
    if (o->keepalive_time_ms <= 0)
        o->keepalive_time_ms = 2 * 3600 * 1000;
    if (o->keepalive_timeout_ms <= 0)
        o->keepalive_timeout_ms = 20000;
    if (o->min_ping_interval_ms <= 0)
        o->min_ping_interval_ms = 5 * 60 * 1000;
    if (o->max_ping_strikes == 0)
        o->max_ping_strikes = 2;
    if (o->max_connection_buffer == 0)
        o->max_connection_buffer = 4 * o->max_recv_message_size;
    if (o->max_connections == 0)
        o->max_connections = ORPC__DEFAULT_MAX_CONNECTIONS;
    if (o->max_concurrent_calls == 0)
        o->max_concurrent_calls = ORPC__DEFAULT_MAX_CALLS;
    if (o->max_worker_threads == 0)
        o->max_worker_threads = ORPC__DEFAULT_MAX_WORKERS;
    if (o->max_worker_threads < o->worker_threads)
        o->max_worker_threads = o->worker_threads;
    if (o->max_queued_calls == 0)
        o->max_queued_calls = ORPC__DEFAULT_MAX_QUEUED;
    if (o->max_blocking_streams == 0)
        o->max_blocking_streams =
            o->max_worker_threads > 1 ? o->max_worker_threads / 2 : 1;
    srv->n_io = o->io_threads;
    uv_mutex_init(&srv->lock);
    uv_cond_init(&srv->cond);
    srv->lock_ok = 1;
    srv->refs = 1; /* the application's */
    int rc = load_material(srv, &srv->ssl_ctx, &srv->policy);
    if (rc != 0) {
        orpc_server_free(srv);
        return rc;
    }
    nghttp2_session_callbacks_new(&srv->cbs);
    nghttp2_session_callbacks_set_on_begin_headers_callback(srv->cbs,
                                                            on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(srv->cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_send_callback(srv->cbs,
                                                         on_frame_send);
    nghttp2_session_callbacks_set_on_frame_recv_callback(srv->cbs,
                                                         on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(srv->cbs,
                                                              on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(srv->cbs,
                                                           on_stream_close);
    nghttp2_option_new(&srv->h2opt);
    nghttp2_option_set_no_auto_window_update(srv->h2opt, 1);
    nghttp2_option_set_max_settings(srv->h2opt, 32);
    nghttp2_option_set_max_outbound_ack(srv->h2opt, 1000);
    nghttp2_option_set_stream_reset_rate_limit(srv->h2opt, 1000, 33);
    nghttp2_option_set_max_continuations(srv->h2opt, 8);
    *out = srv;
    return 0;
}

int orpc_server_add_service(orpc_server *srv, const orpc_service_desc *service,
                            const orpc_method_handler *handlers,
                            const void *impl, void *user_data,
                            const orpc_service_opts *opts)
{
    if (srv == NULL || service == NULL ||
        service->magic != ORPC_SERVICE_DESC_MAGIC ||
        (handlers == NULL && service->n_methods > 0))
        return ORPC_EINVAL;
    if (srv->state != SRV_NEW)
        return ORPC_ESTATE;
    for (size_t i = 0; i < srv->n_svcs; i++)
        if (strcmp(srv->svcs[i].desc->full_name, service->full_name) == 0)
            return ORPC_EEXIST;
    orpc__svc_entry *n =
        realloc(srv->svcs, (srv->n_svcs + 1) * sizeof(*srv->svcs));
    if (n == NULL)
        return ORPC_ENOMEM;
    srv->svcs = n;
    n[srv->n_svcs].desc = service;
    n[srv->n_svcs].handlers = handlers;
    n[srv->n_svcs].impl = impl;
    n[srv->n_svcs].user_data = user_data;
    n[srv->n_svcs].nonblocking = opts ? opts->nonblocking : 0;
    srv->n_svcs++;
    return 0;
}

/* ---- IO thread stop: close listeners, connections ---- */

static void close_all(orpc__srv_io *sio)
{
    for (int i = 0; i < sio->n_tcp; i++)
        if (!uv_is_closing((uv_handle_t *)&sio->tcp[i]))
            uv_close((uv_handle_t *)&sio->tcp[i], NULL);
    for (int i = 0; i < sio->n_pipe; i++)
        if (!uv_is_closing((uv_handle_t *)&sio->pipe[i]))
            uv_close((uv_handle_t *)&sio->pipe[i], NULL);
    for (orpc__sconn *sc = sio->conns; sc; sc = sc->next)
        orpc__conn_close(sc->conn, "server stopped");
    if (!uv_is_closing((uv_handle_t *)&sio->grace_timer))
        uv_close((uv_handle_t *)&sio->grace_timer, NULL);
}

static void on_io_stop(orpc__io *io, void *user_data)
{
    (void)io;
    close_all(user_data);
}

static void grace_expired(uv_timer_t *t)
{
    orpc__srv_io *sio = t->data;
    for (orpc__sconn *sc = sio->conns; sc; sc = sc->next)
        orpc__conn_close(sc->conn, "shutdown grace period over");
}

static void shutdown_task(orpc__task *t, void *arg)
{
    orpc__srv_io *sio = arg;
    (void)t;
    for (int i = 0; i < sio->n_tcp; i++)
        if (!uv_is_closing((uv_handle_t *)&sio->tcp[i]))
            uv_close((uv_handle_t *)&sio->tcp[i], NULL);
    for (int i = 0; i < sio->n_pipe; i++)
        if (!uv_is_closing((uv_handle_t *)&sio->pipe[i]))
            uv_close((uv_handle_t *)&sio->pipe[i], NULL);
    for (orpc__sconn *sc = sio->conns; sc; sc = sc->next) {
        nghttp2_session *s = sc->conn->session;
        if (s == NULL)
            continue;
        sc->goaway = 1;
        nghttp2_submit_goaway(s, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(s),
                              NGHTTP2_NO_ERROR, NULL, 0);
        orpc__conn_kick(sc->conn);
    }
    int64_t g = sio->srv->grace_ms;
    uv_timer_start(&sio->grace_timer, grace_expired, g > 0 ? (uint64_t)g : 0,
                   0);
    uv_unref((uv_handle_t *)&sio->grace_timer);
}

int orpc_server_start(orpc_server *srv)
{
    if (srv == NULL)
        return ORPC_EINVAL;
    if (srv->state != SRV_NEW || srv->n_listeners == 0)
        return ORPC_ESTATE;
    int blocking = 0;
    for (size_t i = 0; i < srv->n_svcs; i++)
        blocking |= !srv->svcs[i].nonblocking;
    if (blocking) { /* a server of non-blocking services needs no workers */
        if (orpc__pool_init(&srv->pool, srv->opts.worker_threads,
                            srv->opts.max_worker_threads,
                            srv->opts.max_queued_calls) != 0)
            return ORPC_ESYS;
        srv->pool_ok = 1;
    }
    srv->ios = calloc(srv->n_io, sizeof(*srv->ios));
    if (srv->ios == NULL)
        return ORPC_ENOMEM;
    for (unsigned i = 0; i < srv->n_io; i++) {
        orpc__srv_io *sio = &srv->ios[i];
        orpc__io_init(&sio->io, i, on_io_stop, sio);
        sio->srv = srv;
        orpc__task_init(&sio->shutdown_task, shutdown_task, sio);
        uv_timer_init(&sio->io.loop, &sio->grace_timer);
        sio->grace_timer.data = sio;
        uv_unref((uv_handle_t *)&sio->grace_timer);
        for (int l = 0; l < srv->n_listeners; l++) {
            listener *ls = &srv->listeners[l];
            if (ls->is_pipe) {
                if (i != 0)
                    continue;
                uv_pipe_t *p = &sio->pipe[sio->n_pipe++];
                uv_pipe_init(&sio->io.loop, p, 0);
                p->data = sio;
                uv_pipe_open(p, ls->fds[0]);
                ls->fds[0] = -1;
                uv_listen((uv_stream_t *)p, 1024, on_connection);
            } else {
                uv_tcp_t *t = &sio->tcp[sio->n_tcp++];
                uv_tcp_init(&sio->io.loop, t);
                t->data = sio;
                uv_tcp_open(t, ls->fds[i]);
                ls->fds[i] = -1;
                uv_listen((uv_stream_t *)t, 1024, on_connection);
            }
        }
    }
    for (unsigned i = 0; i < srv->n_io; i++)
        orpc__io_start(&srv->ios[i].io);
    uv_mutex_lock(&srv->lock);
    srv->state = SRV_RUNNING;
    uv_mutex_unlock(&srv->lock);
    return 0;
}

int orpc_server_shutdown(orpc_server *srv, int64_t grace_ms)
{
    if (srv == NULL)
        return ORPC_EINVAL;
    uv_mutex_lock(&srv->lock);
    if (srv->state != SRV_RUNNING) {
        int st = srv->state;
        uv_mutex_unlock(&srv->lock);
        return st == SRV_NEW ? ORPC_ESTATE : 0;
    }
    srv->state = SRV_STOPPING;
    srv->grace_ms = grace_ms;
    uv_cond_broadcast(&srv->cond);
    uv_mutex_unlock(&srv->lock);
    for (unsigned i = 0; i < srv->n_io; i++)
        orpc__io_post(&srv->ios[i].io, &srv->ios[i].shutdown_task);
    return 0;
}

int orpc_server_wait(orpc_server *srv)
{
    if (srv == NULL)
        return ORPC_EINVAL;
    uv_mutex_lock(&srv->lock);
    if (srv->state == SRV_NEW) {
        uv_mutex_unlock(&srv->lock);
        return ORPC_ESTATE;
    }
    while (srv->state == SRV_RUNNING)
        uv_cond_wait(&srv->cond, &srv->lock);
    int already = srv->state == SRV_STOPPED;
    uv_mutex_unlock(&srv->lock);
    if (already)
        return 0;
    /* Connections end by themselves once GOAWAY has drained them, or when
     * the grace timer closes them; wait for that (with a margin), then stop
     * the IO threads, which closes whatever is left. */
    uint64_t margin_ns = (uint64_t)(srv->grace_ms + 2000) * 1000000u;
    uint64_t end = uv_hrtime() + margin_ns;
    uv_mutex_lock(&srv->lock);
    while (srv->live_conns > 0) {
        uint64_t now = uv_hrtime();
        if (now >= end ||
            uv_cond_timedwait(&srv->cond, &srv->lock, end - now) != 0)
            break;
    }
    uv_mutex_unlock(&srv->lock);
    for (unsigned i = 0; i < srv->n_io; i++)
        orpc__io_stop(&srv->ios[i].io);
    if (srv->pool_ok) {
        orpc__pool_destroy(&srv->pool);
        srv->pool_ok = 0;
    }
    uv_mutex_lock(&srv->lock);
    srv->state = SRV_STOPPED;
    uv_cond_broadcast(&srv->cond);
    uv_mutex_unlock(&srv->lock);
    return 0;
}

int orpc_server_reload(orpc_server *srv)
{
    SSL_CTX *ctx;
    policy_ref *pol;
    if (srv == NULL)
        return ORPC_EINVAL;
    int rc = load_material(srv, &ctx, &pol);
    if (rc != 0) {
        srv_log(srv, ORPC_LOG_ERROR,
                "reload failed; keeping the current certificates and policy");
        return rc;
    }
    uv_mutex_lock(&srv->lock);
    SSL_CTX *old_ctx = srv->ssl_ctx;
    policy_ref *old_pol = srv->policy;
    srv->ssl_ctx = ctx;
    srv->policy = pol;
    uv_mutex_unlock(&srv->lock);
    if (old_ctx)
        SSL_CTX_free(old_ctx); /* open connections keep their own */
    policy_put(srv, old_pol);
    srv_log(srv, ORPC_LOG_INFO, "reloaded TLS material%s",
            pol ? " and authorization policy" : "");
    return 0;
}

static void on_signal(uv_signal_t *h, int signum)
{
    orpc_server *srv = h->data;
    if (signum == SIGHUP) {
        orpc_server_reload(srv);
        return;
    }
    orpc_server_shutdown(srv, 5000);
    uv_stop(h->loop);
}

int orpc_server_run(orpc_server *srv)
{
    if (srv == NULL)
        return ORPC_EINVAL;
    if (srv->state == SRV_NEW) {
        int rc = orpc_server_start(srv);
        if (rc != 0)
            return rc;
    }
    uv_loop_t loop;
    uv_signal_t sig[3];
    int signums[3] = {SIGTERM, SIGINT, SIGHUP};
    uv_loop_init(&loop);
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&loop, &sig[i]);
        sig[i].data = srv;
        uv_signal_start(&sig[i], on_signal, signums[i]);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 3; i++)
        uv_close((uv_handle_t *)&sig[i], NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return orpc_server_wait(srv);
}

void orpc_server_free(orpc_server *srv)
{
    if (srv == NULL)
        return;
    if (srv->state == SRV_RUNNING)
        orpc_server_shutdown(srv, 0);
    if (srv->state == SRV_STOPPING)
        orpc_server_wait(srv);
    for (int l = 0; l < srv->n_listeners; l++) {
        for (int i = 0; i < srv->listeners[l].n_fds; i++)
            if (srv->listeners[l].fds[i] > 0)
                close(srv->listeners[l].fds[i]);
        srv->listeners[l].n_fds = 0;
        if (srv->listeners[l].is_pipe && srv->listeners[l].path[0])
            unlink(srv->listeners[l].path);
    }
    if (!srv->lock_ok) { /* failed early in orpc_server_new() */
        srv_destroy(srv);
        return;
    }
    /* Calls still deferred by their handlers hold the rest until they are
     * finished (they were cancelled when their connections closed). */
    srv_unref(srv);
}

static void srv_destroy(orpc_server *srv)
{
    if (srv->cbs) {
        nghttp2_session_callbacks_del(srv->cbs);
        nghttp2_option_del(srv->h2opt);
    }
    if (srv->ssl_ctx)
        SSL_CTX_free(srv->ssl_ctx);
    if (srv->policy) {
        orpc__authz_free(srv->policy->authz);
        free(srv->policy);
    }
    free(srv->policy_file);
    if (srv->lock_ok) {
        uv_mutex_destroy(&srv->lock);
        uv_cond_destroy(&srv->cond);
    }
    for (unsigned i = 0; srv->ios && i < srv->n_io; i++)
        orpc__io_destroy(&srv->ios[i].io);
    for (int i = 0; i < 6; i++)
        orpc__tls_wipe_free(srv->tls_strings[i]); /* key_pem among them */
    free(srv->svcs);
    free(srv->ios);
    free(srv);
}

/* ====================================================================== */
/* orpc_ctx API                                                            */
/* ====================================================================== */

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
    if (*md == NULL && orpc_metadata_new(md, NULL) != 0) {
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

int orpc_ctx_add_trailer(orpc_ctx *ctx, const char *key, const void *value,
                         size_t len)
{
    if (ctx == NULL)
        return ORPC_EINVAL;
    return add_md(ctx, &ctx->trailers, 0, key, value, len);
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
        protobuf_c_message_free_unpacked(old->msg, NULL);
        free(old);
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
                request_pump(ctx);
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
        uv_cond_wait(&ctx->cond, &ctx->lock);
    }
}

int orpc_ctx_send(orpc_ctx *ctx, const ProtobufCMessage *msg)
{
    if (ctx == NULL || msg == NULL)
        return ORPC_EINVAL;
    int kind = ctx->method->kind;
    if (kind != ORPC_CALL_SERVER_STREAMING && kind != ORPC_CALL_BIDI_STREAMING)
        return ORPC_ESTATE;
    int err = 0;
    uv_mutex_lock(&ctx->lock);
    int gz = ctx->compress_resp && !ctx->msg_nocompress;
    uv_mutex_unlock(&ctx->lock);
    orpc__chunk *c = orpc__encode_message(
        msg, gz, ctx->srv->opts.max_send_message_size, &err);
    if (c == NULL)
        return err;
    uv_mutex_lock(&ctx->lock);
    for (;;) {
        if (ctx->cancelled || ctx->finished) {
            uv_mutex_unlock(&ctx->lock);
            free(c);
            return ORPC_ECANCELLED;
        }
        if (ctx->sendq.bytes < ORPC__SENDQ_LIMIT)
            break;
        if (ctx->svc->nonblocking) {
            ctx->resume_wanted = 1;
            uv_mutex_unlock(&ctx->lock);
            free(c);
            return ORPC_EAGAIN;
        }
        uv_cond_wait(&ctx->cond, &ctx->lock);
    }
    orpc__sendq_push(&ctx->sendq, c);
    uv_mutex_unlock(&ctx->lock);
    request_pump(ctx);
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
    complete_handler(ctx, status);
    handler_release(ctx);
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
