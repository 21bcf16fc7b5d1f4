/*
 * channel.c — the client: channel → subchannel → HTTP/2 connection →
 * stream, and client calls of all four kinds.
 *
 * Design notes:
 * - A channel owns one IO thread.  Calls are created on the caller's thread
 *   and handed to the IO thread through their embedded task; the IO thread
 *   alone touches connections, nghttp2 and timers.  A subchannel stands for
 *   one resolved address and keeps at most one usable connection; the shape
 *   (channel → subchannels) is where resolution to several addresses and
 *   load balancing go later.
 * - Calls beyond the peer's SETTINGS_MAX_CONCURRENT_STREAMS are not failed:
 *   nghttp2 holds submitted requests until a stream slot frees.
 * - GOAWAY: the connection stops taking new calls (the next call dials a new
 *   one); streams the server never processed come back as REFUSED_STREAM
 *   and are retried transparently on the new connection when their request
 *   is still at hand (unary and server-streaming calls keep it).
 * - Flow control: response bytes of streaming calls are given back to
 *   HTTP/2 only when the application reads them, so a slow reader slows the
 *   server instead of growing our queue.
 *
 * Locking theory: call->lock guards the fields shared between the caller's
 * thread and the IO thread (queues, flags, status); ch->lock guards the
 * reference count and the list of calls to start.  Neither is held while
 * calling nghttp2 or a user callback.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <orpc/channel.h>
#include <orpc/error.h>

#include "conn.h"
#include "grpc.h"
#include "io.h"
#include "stream.h"
#include "tls_internal.h"

#define CALL_SENDQ_LIMIT (64u * 1024u)
#define WINDOW (1u << 20)

typedef struct subchannel subchannel;
typedef struct cconn cconn;

struct orpc_call {
    orpc_channel *ch;
    const orpc_method_desc *method;
    int64_t deadline_ns;
    orpc_metadata *md;
    int gzip;
    int wait_for_ready;
    orpc_metadata *headers_out, *trailers_out;

    /* IO thread */
    subchannel *sub;
    orpc__conn *conn;
    cconn *cc; /* the connection's list the call is on (listed == 2) */
    int32_t stream_id;
    struct orpc_call *next_io, *prev_io; /* in sub->waiting or conn list */
    int listed;                          /* 1 waiting, 2 on a connection */
    int resp_gzip;
    size_t header_bytes; /* of the header block being received */
    int headers_too_big;
    int retried; /* the one transparent retry gRFC A6 allows is used */
    int http_status;
    int in_trailers;
    int got_status;
    int status_code;
    orpc__bytes status_msg;
    orpc__bytes status_details;
    uv_timer_t timer;
    int timer_started;
    int submitted;
    int stream_open; /* nghttp2 still has the stream (and our pointer) */
    int io_finished;
    int io_released;
    orpc__chunk *req_copy; /* the request, kept for transparent retry */
    int response_bytes;    /* any response frame seen */

    /* shared, under |lock| */
    uv_mutex_t lock;
    uv_cond_t cond;
    orpc__sendq sendq;
    int send_closed;
    orpc__instream in; /* response messages (stream.h) */
    int eos;
    int done;
    orpc_status status;
    orpc_metadata *headers;
    orpc_metadata *trailers;
    int headers_ready;
    int cancel_requested;
    int refs;
    int task_ref;

    orpc_unary_trampoline done_cb;
    orpc_fn typed_cb;
    orpc_unary_cb plain_cb;
    void *cb_user_data;

    orpc__task task;
};

struct subchannel {
    orpc_channel *ch;
    orpc__conn *conn; /* the connection new calls go to, or NULL */
    int connecting;
    orpc_call *waiting; /* calls waiting for a connection */
    uv_getaddrinfo_t gai;
    int resolving; /* |gai| is pending */
    uv_connect_t creq;
    orpc__conn *dialing; /* the connection |creq| is connecting, or NULL */
    uv_timer_t connect_timer;
    struct addrinfo *addrs, *next_addr;
    int closing;
    /* gRPC's connection backoff (see connect_failed()) */
    uv_timer_t backoff_timer;
    int backing_off;     /* no attempt until the timer fires */
    int64_t backoff_ms;  /* the last backoff; 0: none since the last success */
    uint64_t attempt_ms; /* when the current attempt started (loop time) */
    uint64_t rng;        /* jitter (xorshift64) */
    char last_error[160];
};

struct cconn {
    subchannel *sub;
    orpc__conn *conn;
    orpc_call *calls;
    int goaway;
    int established;       /* the server's SETTINGS arrived */
    uv_timer_t *keepalive; /* when keepalive pings are on; freed on close */
    int ping_out;          /* a keepalive PING awaits its ACK */
};

struct orpc_channel {
    uv_mutex_t lock;
    int refs;      /* the application's (orpc_channel_ref/free, clients) */
    int call_refs; /* calls not yet freed */
    int stopped;   /* the IO thread has ended */
    orpc_channel_opts opts;
    orpc_mem mem;
    char *host, *port, *unix_path;
    char *authority;
    char *server_name;
    char *expected_spiffe;
    char *user_agent;
    char *peer_identity; /* last connection's server identity */
    SSL_CTX *ssl_ctx;
    int is_tls;
    orpc__io io;
    subchannel sub;
    nghttp2_session_callbacks *cbs;
    nghttp2_option *h2opt;
    int stopping;
    orpc_channel_state state; /* |lock|; written on the IO thread */
    orpc__task connect_task;  /* orpc_channel_get_state(try_to_connect) */
};

static void set_state(orpc_channel *ch, orpc_channel_state st)
{
    uv_mutex_lock(&ch->lock);
    if (ch->state != ORPC_CHANNEL_SHUTDOWN)
        ch->state = st;
    uv_mutex_unlock(&ch->lock);
}

static void ch_log(orpc_channel *ch, orpc_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void ch_log(orpc_channel *ch, orpc_log_level lvl, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    if (ch->opts.log == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    ch->opts.log(lvl, buf, ch->opts.log_user_data);
}

/* ====================================================================== */
/* call objects                                                            */
/* ====================================================================== */

static void channel_call_release(orpc_channel *ch);

static void call_unref(orpc_call *c)
{
    uv_mutex_lock(&c->lock);
    int left = --c->refs;
    uv_mutex_unlock(&c->lock);
    if (left > 0)
        return;
    orpc__sendq_clear(&c->sendq);
    orpc__in_free(&c->in);
    orpc__bytes_free(&c->status_msg);
    orpc__bytes_free(&c->status_details);
    orpc_status_clear(&c->status);
    orpc_metadata_free(c->md);
    orpc_metadata_free(c->headers);
    orpc_metadata_free(c->trailers);
    free(c->req_copy);
    uv_mutex_destroy(&c->lock);
    uv_cond_destroy(&c->cond);
    orpc_channel *ch = c->ch;
    free(c);
    channel_call_release(ch);
}

static void call_io_task(orpc__task *t, void *arg);
static void channel_destroy(orpc_channel *ch);

/* A call lets go of its channel; the last one out frees a channel whose
 * application references are gone (any thread, never joins a thread). */
static void channel_call_release(orpc_channel *ch)
{
    uv_mutex_lock(&ch->lock);
    int last = --ch->call_refs == 0 && ch->refs == 0 && ch->stopped;
    uv_mutex_unlock(&ch->lock);
    if (last)
        channel_destroy(ch);
}

static int call_new(orpc_call **out, orpc_channel *ch,
                    const orpc_method_desc *m, const orpc_call_opts *opts)
{
    orpc_call *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return ORPC_ENOMEM;
    if (uv_mutex_init(&c->lock) != 0) {
        free(c);
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
    orpc__in_init(&c->in, &c->lock, ch->opts.max_recv_message_size, WINDOW,
                  NULL, 0);
    orpc__bytes_init(&c->status_msg, NULL);
    orpc__bytes_init(&c->status_details, NULL);
    int64_t timeout = opts && opts->timeout_ms > 0
                          ? opts->timeout_ms
                          : ch->opts.default_timeout_ms;
    c->deadline_ns =
        timeout > 0 ? orpc__now_ns() + timeout * 1000000 : INT64_MAX;
    if (opts) {
        if (opts->served_by)
            *opts->served_by = ORPC_SERVED_GRPC;
        c->wait_for_ready = opts->wait_for_ready;
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
            if (orpc_metadata_new(&c->md, NULL) != 0) {
                call_unref(c);
                return ORPC_ENOMEM;
            }
            for (size_t i = 0; i < orpc_metadata_count(opts->metadata); i++) {
                const char *k;
                const uint8_t *v;
                size_t len;
                orpc_metadata_at(opts->metadata, i, &k, &v, &len);
                if (orpc_metadata_add(c->md, k, v, len) != 0) {
                    call_unref(c);
                    return ORPC_ENOMEM;
                }
            }
        }
    }
    *out = c;
    return 0;
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

static void unlist(orpc_call *c)
{
    if (c->listed == 1) {
        if (c->prev_io)
            c->prev_io->next_io = c->next_io;
        else
            c->sub->waiting = c->next_io;
    } else if (c->listed == 2) {
        cconn *cc = c->cc;
        if (c->prev_io)
            c->prev_io->next_io = c->next_io;
        else
            cc->calls = c->next_io;
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
static void io_release(orpc_call *c, nghttp2_session *s)
{
    if (c->io_released)
        return;
    c->io_released = 1;
    orpc__in_release(&c->in, s);
    unlist(c);
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
static void call_complete(orpc_call *c, orpc_status st)
{
    if (c->io_finished) {
        orpc_status_clear(&st);
        return;
    }
    c->io_finished = 1;
    if (c->stream_open && c->conn && c->conn->session &&
        !nghttp2_session_get_stream_local_close(c->conn->session,
                                                c->stream_id)) {
        /* Our side still open (the server answered early): stop sending. */
        nghttp2_submit_rst_stream(c->conn->session, NGHTTP2_FLAG_NONE,
                                  c->stream_id, NGHTTP2_CANCEL);
        orpc__conn_kick(c->conn);
    }

    ProtobufCMessage *resp = NULL;
    uv_mutex_lock(&c->lock);
    if (c->cancel_requested && st.code != ORPC_DEADLINE_EXCEEDED &&
        st.code != ORPC_OK) {
        orpc_status_clear(&st);
        st = orpc_status_new(ORPC_CANCELLED, "cancelled by the client");
    }
    int single = c->method->kind == ORPC_CALL_UNARY ||
                 c->method->kind == ORPC_CALL_CLIENT_STREAMING;
    if (single && st.code == ORPC_OK && c->in.received != 1) {
        orpc_status_clear(&st);
        st = orpc_status_new(ORPC_INTERNAL,
                             c->in.received == 0
                                 ? "server sent no response message"
                                 : "server sent more than one response");
    }
    c->status = st;
    c->done = 1;
    c->eos = 1;
    if ((c->done_cb || c->plain_cb) && c->status.code == ORPC_OK) {
        orpc__inmsg *m = orpc__in_take_locked(&c->in);
        if (m != NULL) {
            resp = m->msg;
            free(m);
        }
    }
    uv_cond_broadcast(&c->cond);
    uv_mutex_unlock(&c->lock);

    if (c->done_cb || c->plain_cb) {
        if (c->trailers_out && c->trailers) {
            for (size_t i = 0; i < orpc_metadata_count(c->trailers); i++) {
                const char *k;
                const uint8_t *v;
                size_t len;
                orpc_metadata_at(c->trailers, i, &k, &v, &len);
                orpc_metadata_add(c->trailers_out, k, v, len);
            }
        }
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
        io_release(c, NULL);
}

static void fail_call(orpc_call *c, orpc_code code, const char *msg)
{
    if (c->stream_open && c->conn && c->conn->session && !c->io_finished) {
        nghttp2_submit_rst_stream(c->conn->session, NGHTTP2_FLAG_NONE,
                                  c->stream_id, NGHTTP2_CANCEL);
        orpc__conn_kick(c->conn);
    }
    call_complete(c, orpc_status_new(code, msg));
}

static void on_call_deadline(uv_timer_t *t)
{
    fail_call(t->data, ORPC_DEADLINE_EXCEEDED, "deadline exceeded");
}

/* ====================================================================== */
/* requests (IO thread)                                                    */
/* ====================================================================== */

static ssize_t read_request(nghttp2_session *s, int32_t id, uint8_t *buf,
                            size_t len, uint32_t *flags,
                            nghttp2_data_source *src, void *user_data)
{
    orpc_call *c = src->ptr;
    (void)s;
    (void)id;
    (void)user_data;
    uv_mutex_lock(&c->lock);
    size_t n = orpc__sendq_read(&c->sendq, buf, len);
    int eof = c->send_closed && c->sendq.bytes == 0;
    if (n > 0)
        uv_cond_broadcast(&c->cond);
    uv_mutex_unlock(&c->lock);
    if (n == 0 && !eof)
        return NGHTTP2_ERR_DEFERRED;
    if (eof)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static void submit(orpc_call *c, orpc__conn *conn)
{
    orpc_channel *ch = c->ch;
    orpc__hdrs h;
    char tbuf[16];
    orpc__hdrs_init(&h);
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
    if (c->md)
        rc |= orpc__hdrs_add_md(&h, c->md);
    if (rc != 0) {
        orpc__hdrs_free(&h);
        call_complete(c, orpc_status_new(ORPC_INTERNAL, "out of memory"));
        return;
    }
    orpc__hdrs_finish(&h);
    nghttp2_data_provider dp;
    dp.source.ptr = c;
    dp.read_callback = read_request;
    int32_t id = nghttp2_submit_request(conn->session, NULL, h.nv, h.n, &dp, c);
    orpc__hdrs_free(&h);
    if (id < 0) {
        call_complete(
            c, orpc_status_new(ORPC_UNAVAILABLE, "cannot open a stream"));
        return;
    }
    c->conn = conn;
    c->stream_id = id;
    c->submitted = 1;
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

static void sub_connect(subchannel *sub);
static void connect_task(orpc__task *t, void *arg);

static void enqueue(orpc_call *c)
{
    subchannel *sub = &c->ch->sub;
    c->sub = sub;
    if (sub->conn != NULL) {
        submit(c, sub->conn);
        return;
    }
    if (sub->backing_off && !c->wait_for_ready) {
        /* fail fast: the last attempt failed and the next is not due */
        call_complete(c, orpc_status_errorf(ORPC_UNAVAILABLE,
                                            "cannot connect: %s (next "
                                            "attempt after a backoff)",
                                            sub->last_error));
        return;
    }
    c->listed = 1;
    c->prev_io = NULL;
    c->next_io = sub->waiting;
    if (sub->waiting)
        sub->waiting->prev_io = c;
    sub->waiting = c;
    if (!sub->connecting && !sub->backing_off)
        sub_connect(sub);
}

static void call_io_task(orpc__task *t, void *arg)
{
    orpc_call *c = arg;
    (void)t;
    /* A post arriving while this runs must queue the task again. */
    orpc__task_clear_ref(&c->lock, &c->task_ref);
    if (!c->io_finished) {
        uv_mutex_lock(&c->lock);
        int cancel = c->cancel_requested;
        uv_mutex_unlock(&c->lock);
        if (cancel) {
            fail_call(c, ORPC_CANCELLED, "cancelled by the client");
        } else if (!c->submitted && c->listed == 0) {
            if (c->deadline_ns != INT64_MAX) {
                int64_t left = c->deadline_ns - orpc__now_ns();
                uv_timer_init(&c->ch->io.loop, &c->timer);
                c->timer.data = c;
                c->timer_started = 1;
                uv_timer_start(
                    &c->timer, on_call_deadline,
                    left > 0 ? (uint64_t)(left + 999999) / 1000000 : 0, 0);
            }
            enqueue(c);
        } else if (c->submitted && c->conn) {
            orpc__in_give_back(&c->in, c->conn->session, c->stream_id);
            nghttp2_session_resume_data(c->conn->session, c->stream_id);
            orpc__conn_kick(c->conn);
        }
    }
    call_unref(c);
}

/* ====================================================================== */
/* nghttp2 callbacks (IO thread)                                           */
/* ====================================================================== */

static int on_header(nghttp2_session *s, const nghttp2_frame *f,
                     const uint8_t *name, size_t namelen, const uint8_t *value,
                     size_t valuelen, uint8_t flags, void *user_data)
{
    (void)flags;
    (void)user_data;
    if (f->hd.type != NGHTTP2_HEADERS)
        return 0;
    orpc_call *c = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (c == NULL || c->io_finished)
        return 0;
    /* nghttp2 does not hold the server to our SETTINGS_MAX_HEADER_LIST_SIZE:
     * count what we keep (RFC 9113's size: name + value + 32 per field). */
    c->header_bytes += namelen + valuelen + 32;
    if (c->header_bytes > c->ch->opts.max_header_list_size) {
        if (!c->headers_too_big) {
            c->headers_too_big = 1;
            fail_call(c, ORPC_RESOURCE_EXHAUSTED,
                      "response header list larger than the channel accepts "
                      "(max_header_list_size)");
        }
        return 0;
    }
    if (orpc__name_is(name, namelen, ":status")) {
        int st = 0;
        for (size_t i = 0; i < valuelen && i < 3; i++)
            st = st * 10 + (value[i] - '0');
        c->http_status = st;
    } else if (orpc__name_is(name, namelen, "grpc-status")) {
        c->got_status = 1;
        c->status_code = orpc__parse_status_code(value, valuelen);
    } else if (orpc__name_is(name, namelen, "grpc-message")) {
        c->status_msg.len = 0;
        orpc__percent_decode((const char *)value, valuelen, &c->status_msg);
    } else if (orpc__name_is(name, namelen, "grpc-status-details-bin")) {
        c->status_details.len = 0;
        orpc__b64_decode((const char *)value, valuelen, &c->status_details);
    } else if (orpc__name_is(name, namelen, "grpc-encoding")) {
        c->resp_gzip = orpc__name_is(value, valuelen, "gzip");
    } else {
        uv_mutex_lock(&c->lock);
        orpc_metadata **md = c->in_trailers ? &c->trailers : &c->headers;
        int rc = *md == NULL ? orpc_metadata_new(md, NULL) : 0;
        if (rc == 0)
            rc = orpc__md_from_header(*md, name, namelen, value, valuelen);
        uv_mutex_unlock(&c->lock);
        if (rc != 0)
            fail_call(
                c, rc == ORPC_ENOMEM ? ORPC_RESOURCE_EXHAUSTED : ORPC_INTERNAL,
                rc == ORPC_ENOMEM ? "out of memory"
                                  : "malformed response metadata");
    }
    return 0;
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f,
                            void *user_data)
{
    (void)user_data;
    if (f->hd.type != NGHTTP2_HEADERS)
        return 0;
    orpc_call *c = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (c == NULL)
        return 0;
    c->header_bytes = 0; /* the limit is per header block */
    if (f->headers.cat == NGHTTP2_HCAT_HEADERS && c->response_bytes)
        c->in_trailers = 1;
    return 0;
}

static orpc_status status_from_wire(orpc_call *c)
{
    orpc_status st;
    if (c->http_status != 200 && !c->got_status) {
        return orpc_status_errorf(orpc_code_from_grpc_http(c->http_status),
                                  "HTTP status %d without grpc-status",
                                  c->http_status);
    }
    if (!c->got_status)
        return orpc_status_new(ORPC_INTERNAL,
                               "stream ended without grpc-status");
    int code = c->status_code < 0 ? ORPC_UNKNOWN : c->status_code;
    char *msg = c->status_msg.len ? (char *)c->status_msg.data : NULL;
    st = orpc_status_new((orpc_code)code, msg);
    if (c->status_details.len)
        orpc_status_set_details(&st, c->status_details.data,
                                c->status_details.len);
    return st;
}

static void keepalive_fire(uv_timer_t *t);
static void keepalive_acked(cconn *cc);

static void keepalive_start(cconn *cc)
{
    orpc_channel *ch = cc->sub->ch;
    if (ch->opts.keepalive_time_ms <= 0 || cc->keepalive != NULL)
        return;
    cc->keepalive = malloc(sizeof(*cc->keepalive));
    if (cc->keepalive == NULL)
        return; /* no keepalive on this connection, which still works */
    uv_timer_init(&ch->io.loop, cc->keepalive);
    cc->keepalive->data = cc;
    uv_timer_start(cc->keepalive, keepalive_fire,
                   (uint64_t)ch->opts.keepalive_time_ms, 0);
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f,
                         void *user_data)
{
    orpc__conn *conn = user_data;
    if (f->hd.type == NGHTTP2_GOAWAY) {
        cconn *cc = conn->user_data;
        cc->goaway = 1;
        if (cc->sub && cc->sub->conn == conn) {
            cc->sub->conn = NULL; /* new calls dial a new connection */
            if (!cc->sub->connecting)
                set_state(cc->sub->ch, ORPC_CHANNEL_IDLE);
        }
        return 0;
    }
    if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK)) {
        cconn *cc = conn->user_data;
        if (!cc->established && cc->sub) {
            cc->established = 1; /* a server accepted us: backoff resets */
            cc->sub->backoff_ms = 0;
            keepalive_start(cc);
            if (cc->sub->conn == conn)
                set_state(cc->sub->ch, ORPC_CHANNEL_READY);
        }
        return 0;
    }
    if (f->hd.type == NGHTTP2_PING && (f->hd.flags & NGHTTP2_FLAG_ACK)) {
        keepalive_acked(conn->user_data);
        return 0;
    }
    if (f->hd.type != NGHTTP2_HEADERS)
        return 0;
    orpc_call *c = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (c == NULL)
        return 0;
    if (!c->response_bytes) {
        c->response_bytes = 1;
        uv_mutex_lock(&c->lock);
        c->headers_ready = 1;
        if (c->headers_out && c->headers) {
            for (size_t i = 0; i < orpc_metadata_count(c->headers); i++) {
                const char *k;
                const uint8_t *v;
                size_t len;
                orpc_metadata_at(c->headers, i, &k, &v, &len);
                orpc_metadata_add(c->headers_out, k, v, len);
            }
        }
        uv_cond_broadcast(&c->cond);
        uv_mutex_unlock(&c->lock);
        if (c->http_status != 200 && !(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
            fail_call(c, orpc_code_from_grpc_http(c->http_status),
                      "HTTP error status");
            return 0;
        }
    }
    if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        if (orpc__in_partial(&c->in)) {
            call_complete(c, orpc_status_new(ORPC_INTERNAL,
                                             "response message cut short"));
            return 0;
        }
        call_complete(c, status_from_wire(c));
    }
    return 0;
}

/*
 * One complete response message, decoded for the stream engine.  A unary
 * or client-streaming call takes exactly one: a second ends the call
 * INTERNAL at once (as gRPC does) instead of queueing whatever a broken or
 * hostile server keeps sending until its trailers.
 */
static int decode_response(void *owner, const uint8_t *p, size_t len,
                           int compressed, ProtobufCMessage **out)
{
    orpc_call *c = owner;
    int single = c->method->kind == ORPC_CALL_UNARY ||
                 c->method->kind == ORPC_CALL_CLIENT_STREAMING;
    (void)compressed;
    if (single && c->in.received > 0) {
        fail_call(c, ORPC_INTERNAL, "server sent more than one response");
        return ORPC_ECALLBACK;
    }
    orpc_status st = ORPC_STATUS_OK;
    ProtobufCMessage *m = orpc__decode_message(
        c->method->output->descriptor, p, len, compressed, c->resp_gzip,
        c->ch->opts.max_recv_message_size, NULL, &st);
    if (m == NULL) {
        if (c->stream_open && c->conn && c->conn->session) {
            nghttp2_submit_rst_stream(c->conn->session, NGHTTP2_FLAG_NONE,
                                      c->stream_id, NGHTTP2_CANCEL);
            orpc__conn_kick(c->conn);
        }
        call_complete(c, st);
        return ORPC_ECALLBACK;
    }
    *out = m;
    return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id,
                         const uint8_t *data, size_t len, void *user_data)
{
    (void)flags;
    (void)user_data;
    orpc_call *c = nghttp2_session_get_stream_user_data(s, id);
    if (c == NULL || c->io_finished) {
        orpc__in_discard(s, id, len);
        return 0;
    }
    c->response_bytes = 1;
    int rc = orpc__in_data(&c->in, s, id, data, len, decode_response, c);
    if (rc > 0) {
        uv_mutex_lock(&c->lock);
        uv_cond_broadcast(&c->cond);
        uv_mutex_unlock(&c->lock);
        return 0;
    }
    switch (rc) {
    case 0:
    case ORPC_ECALLBACK: /* decode_response ended the call */
        break;
    case ORPC_ETOOBIG:
        fail_call(c, ORPC_RESOURCE_EXHAUSTED,
                  "response message larger than the channel accepts");
        break;
    case ORPC_ELIMIT:
        fail_call(c, ORPC_RESOURCE_EXHAUSTED,
                  "the connection buffers more incomplete response messages "
                  "than the channel accepts");
        break;
    case ORPC_ENOMEM:
        fail_call(c, ORPC_RESOURCE_EXHAUSTED, "out of memory");
        break;
    default:
        fail_call(c, ORPC_INTERNAL, "malformed response framing");
        break;
    }
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t error,
                           void *user_data)
{
    (void)user_data;
    orpc_call *c = nghttp2_session_get_stream_user_data(s, id);
    if (c == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(s, id, NULL);
    c->stream_open = 0;
    if (c->io_finished) {
        io_release(c, s);
        return 0;
    }
    if (error == NGHTTP2_REFUSED_STREAM && !c->response_bytes &&
        c->req_copy != NULL && !c->retried) {
        /* Never processed: try again, once (gRFC A6's transparent retry);
         * a server that refuses it again is answered UNAVAILABLE. */
        c->retried = 1; /* no response bytes came: c->in is untouched */
        unlist(c);
        c->submitted = 0;
        c->conn = NULL;
        c->stream_id = 0;
        uv_mutex_lock(&c->lock);
        orpc__sendq_clear(&c->sendq);
        orpc__chunk *copy = malloc(sizeof(*copy) + c->req_copy->len);
        if (copy != NULL) {
            memcpy(copy, c->req_copy, sizeof(*copy) + c->req_copy->len);
            copy->off = 0;
            orpc__sendq_push(&c->sendq, copy);
        }
        uv_mutex_unlock(&c->lock);
        if (copy != NULL) {
            enqueue(c);
            return 0;
        }
    }
    orpc_code code;
    const char *msg;
    switch (error) {
    case NGHTTP2_NO_ERROR:
        code = ORPC_INTERNAL;
        msg = "stream closed without a status";
        break;
    case NGHTTP2_REFUSED_STREAM:
        code = ORPC_UNAVAILABLE;
        msg = "stream refused by the server";
        break;
    case NGHTTP2_CANCEL:
        code = ORPC_CANCELLED;
        msg = "stream cancelled by the server";
        break;
    case NGHTTP2_ENHANCE_YOUR_CALM:
        code = ORPC_RESOURCE_EXHAUSTED;
        msg = "server asked to enhance your calm";
        break;
    case NGHTTP2_INADEQUATE_SECURITY:
        code = ORPC_PERMISSION_DENIED;
        msg = "inadequate security";
        break;
    default:
        code = ORPC_INTERNAL;
        msg = "stream reset by the server";
        break;
    }
    call_complete(c, orpc_status_new(code, msg));
    return 0;
}

/* ====================================================================== */
/* connections (IO thread)                                                 */
/* ====================================================================== */

static void fail_waiting(subchannel *sub, const char *why)
{
    orpc_call *w = sub->waiting;
    orpc_call *keep = NULL;
    sub->waiting = NULL;
    while (w) {
        orpc_call *next = w->next_io;
        w->listed = 0;
        w->next_io = w->prev_io = NULL;
        if (w->wait_for_ready && !sub->ch->stopping) {
            w->listed = 1;
            w->next_io = keep;
            if (keep)
                keep->prev_io = w;
            keep = w;
        } else {
            w->sub = sub;
            call_complete(w, orpc_status_errorf(ORPC_UNAVAILABLE,
                                                "cannot connect: %s", why));
        }
        w = next;
    }
    sub->waiting = keep;
}

/*
 * Keepalive (gRPC's client keepalive, off unless keepalive_time_ms is set):
 * every keepalive_time_ms of a connection's life, while calls are open on
 * it (or always, with keepalive_without_calls), a PING; no ACK within
 * keepalive_timeout_ms closes the connection, ending its calls UNAVAILABLE
 * instead of letting them wait for a peer that vanished without a FIN
 * (a half-open TCP connection).  The timer is rearmed by the ACK.
 */
static void keepalive_fire(uv_timer_t *t)
{
    cconn *cc = t->data;
    orpc_channel *ch = cc->sub->ch;
    if (cc->ping_out) { /* the timeout ran out */
        ch_log(ch, ORPC_LOG_INFO, "keepalive: no PING ACK in %lld ms",
               (long long)ch->opts.keepalive_timeout_ms);
        orpc__conn_close(cc->conn, "keepalive timeout");
        return;
    }
    if (cc->calls == NULL && !ch->opts.keepalive_without_calls) {
        uv_timer_start(t, keepalive_fire, (uint64_t)ch->opts.keepalive_time_ms,
                       0);
        return;
    }
    static const uint8_t payload[8] = {'o', 'r', 'p', 'c', 'k', 'a', 0, 0};
    if (nghttp2_submit_ping(cc->conn->session, NGHTTP2_FLAG_NONE, payload) !=
        0) {
        orpc__conn_close(cc->conn, "cannot send a keepalive PING");
        return;
    }
    cc->ping_out = 1;
    orpc__conn_kick(cc->conn);
    int64_t to = ch->opts.keepalive_timeout_ms > 0
                     ? ch->opts.keepalive_timeout_ms
                     : 20000;
    uv_timer_start(t, keepalive_fire, (uint64_t)to, 0);
}

static void keepalive_acked(cconn *cc)
{
    if (cc->keepalive == NULL || !cc->ping_out)
        return;
    cc->ping_out = 0;
    uv_timer_start(cc->keepalive, keepalive_fire,
                   (uint64_t)cc->sub->ch->opts.keepalive_time_ms, 0);
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static void backoff_done(uv_timer_t *t)
{
    subchannel *sub = t->data;
    sub->backing_off = 0;
    if (sub->waiting && !sub->connecting && !sub->ch->stopping)
        sub_connect(sub); /* wait_for_ready calls are waiting */
    else if (!sub->connecting)
        set_state(sub->ch, ORPC_CHANNEL_IDLE); /* the next call dials */
}

/*
 * A connection attempt failed (resolution, connect, timeout, or the
 * connection closed before the server's SETTINGS): gRPC's connection
 * backoff (doc/connection-backoff.md).  The next attempt starts
 * INITIAL_BACKOFF after this one started, then ×1.6 each time up to
 * MAX_BACKOFF, each ±20 % jitter; until then fail-fast calls end
 * UNAVAILABLE at once and wait_for_ready calls wait.  SETTINGS from a
 * server reset it.  Without this a down server gets a connection attempt
 * per call.
 */
static void connect_failed(subchannel *sub, const char *why)
{
    orpc_channel *ch = sub->ch;
    sub->connecting = 0;
    snprintf(sub->last_error, sizeof(sub->last_error), "%s", why);
    int64_t initial =
        ch->opts.initial_backoff_ms > 0 ? ch->opts.initial_backoff_ms : 1000;
    int64_t max =
        ch->opts.max_backoff_ms > 0 ? ch->opts.max_backoff_ms : 120000;
    if (max < initial)
        max = initial;
    int64_t b = sub->backoff_ms == 0 ? initial : sub->backoff_ms * 8 / 5;
    sub->backoff_ms = b > max ? max : b;
    sub->rng ^= sub->rng << 13;
    sub->rng ^= sub->rng >> 7;
    sub->rng ^= sub->rng << 17;
    int64_t span = sub->backoff_ms * 2 / 5; /* -20 % .. +20 % */
    int64_t delay = sub->backoff_ms - span / 2 +
                    (span > 0 ? (int64_t)(sub->rng % (uint64_t)(span + 1)) : 0);
    uint64_t due = sub->attempt_ms + (uint64_t)delay;
    uint64_t now = uv_now(&ch->io.loop);
    sub->backing_off = 1;
    set_state(ch, ORPC_CHANNEL_TRANSIENT_FAILURE);
    uv_timer_start(&sub->backoff_timer, backoff_done, due > now ? due - now : 0,
                   0);
    ch_log(ch, ORPC_LOG_INFO, "connect failed: %s; next attempt in %lld ms",
           why, (long long)(due > now ? due - now : 0));
    fail_waiting(sub, why);
}

static void cconn_closed(orpc__conn *conn, const char *reason, void *ud)
{
    cconn *cc = ud;
    subchannel *sub = cc->sub;
    int attempt_failed = sub->conn == conn && !cc->established;
    if (sub->conn == conn)
        sub->conn = NULL;
    if (cc->keepalive)
        uv_close((uv_handle_t *)cc->keepalive, free_handle);
    while (cc->calls) {
        orpc_call *c = cc->calls;
        c->stream_open = 0;
        c->conn = NULL;
        if (c->io_finished)
            io_release(c, NULL);
        else
            call_complete(c, orpc_status_errorf(ORPC_UNAVAILABLE,
                                                "connection lost: %s", reason));
    }
    ch_log(sub->ch, ORPC_LOG_DEBUG, "connection closed: %s", reason);
    free(cc);
    if (sub->ch->stopping || sub->connecting || sub->conn != NULL)
        return;
    if (attempt_failed) /* e.g. a TLS handshake that failed */
        connect_failed(sub, reason);
    else if (sub->waiting && !sub->backing_off)
        sub_connect(sub);
    else if (!sub->backing_off)
        set_state(sub->ch, ORPC_CHANNEL_IDLE);
}

static int cconn_handshake(orpc__conn *conn, void *ud)
{
    cconn *cc = ud;
    orpc_channel *ch = cc->sub->ch;
    if (ch->expected_spiffe &&
        (conn->peer_identity == NULL ||
         strcmp(conn->peer_identity, ch->expected_spiffe) != 0)) {
        conn->close_reason = "server identity is not the expected SPIFFE ID";
        return -1;
    }
    uv_mutex_lock(&ch->lock);
    free(ch->peer_identity);
    ch->peer_identity =
        conn->peer_identity ? strdup(conn->peer_identity) : NULL;
    uv_mutex_unlock(&ch->lock);
    return 0;
}

static const orpc__conn_hooks cconn_hooks = {cconn_handshake, cconn_closed};

static void try_next_addr(subchannel *sub);

static void connect_timeout(uv_timer_t *t)
{
    subchannel *sub = t->data;
    if (!sub->connecting)
        return;
    uv_cancel((uv_req_t *)&sub->creq); /* on_connected sees ECANCELED */
}

static void pending_conn_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_connected(uv_connect_t *req, int status)
{
    orpc__conn *conn = req->data;
    subchannel *sub = ((cconn *)conn->user_data)->sub;
    orpc_channel *ch = sub->ch;
    sub->dialing = NULL;
    uv_timer_stop(&sub->connect_timer);
    if (status != 0 || ch->stopping) {
        free(conn->user_data);
        conn->user_data = NULL;
        conn->h.handle.data = conn;
        /* channel_io_stop() may have closed it already to cancel the
         * connect (that is how this callback came with ECANCELED) */
        if (!uv_is_closing(&conn->h.handle))
            uv_close(&conn->h.handle, pending_conn_closed);
        if (ch->stopping) {
            sub->connecting = 0;
            fail_waiting(sub, "channel closed");
            return;
        }
        ch_log(ch, ORPC_LOG_DEBUG, "connect failed: %s", uv_strerror(status));
        if (sub->next_addr) {
            try_next_addr(sub);
            return;
        }
        if (sub->addrs) {
            uv_freeaddrinfo(sub->addrs);
            sub->addrs = NULL;
        }
        connect_failed(sub, status == UV_ECANCELED ? "connect timed out"
                                                   : uv_strerror(status));
        return;
    }
    sub->connecting = 0;
    if (sub->addrs) {
        uv_freeaddrinfo(sub->addrs);
        sub->addrs = NULL;
    }
    if (!conn->is_pipe) {
        uv_tcp_nodelay(&conn->h.tcp, 1);
        orpc__conn_set_peer_name(conn);
    }
    if (orpc__conn_start(conn, ch->ssl_ctx, 0, ch->server_name, ch->cbs,
                         ch->h2opt) != 0) {
        orpc__conn_close(conn, "cannot start connection");
        return;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
         (uint32_t)ch->opts.max_header_list_size},
    };
    nghttp2_submit_settings(conn->session, NGHTTP2_FLAG_NONE, iv, 3);
    nghttp2_session_set_local_window_size(conn->session, NGHTTP2_FLAG_NONE, 0,
                                          8 * WINDOW);
    sub->conn = conn;
    orpc_call *w = sub->waiting;
    sub->waiting = NULL;
    /* submit in arrival order: the list is newest first */
    orpc_call *rev = NULL;
    while (w) {
        orpc_call *n = w->next_io;
        w->next_io = rev;
        rev = w;
        w = n;
    }
    while (rev) {
        orpc_call *n = rev->next_io;
        rev->listed = 0;
        rev->next_io = rev->prev_io = NULL;
        submit(rev, conn);
        rev = n;
    }
}

static orpc__conn *new_conn(subchannel *sub, int is_pipe)
{
    orpc__conn *conn = malloc(sizeof(*conn));
    cconn *cc = calloc(1, sizeof(*cc));
    if (conn == NULL || cc == NULL ||
        orpc__conn_init(conn, &sub->ch->io, is_pipe, &cconn_hooks, cc) != 0) {
        free(conn);
        free(cc);
        return NULL;
    }
    cc->sub = sub;
    cc->conn = conn;
    return conn;
}

static void try_next_addr(subchannel *sub)
{
    struct addrinfo *a = sub->next_addr;
    sub->next_addr = a->ai_next;
    orpc__conn *conn = new_conn(sub, 0);
    if (conn == NULL) {
        connect_failed(sub, "out of memory");
        return;
    }
    sub->creq.data = conn;
    if (uv_tcp_connect(&sub->creq, &conn->h.tcp, a->ai_addr, on_connected) ==
        0) {
        sub->dialing = conn;
    } else {
        free(conn->user_data);
        uv_close(&conn->h.handle, pending_conn_closed);
        conn->h.handle.data = conn;
        if (sub->next_addr) {
            try_next_addr(sub);
            return;
        }
        if (sub->addrs) {
            uv_freeaddrinfo(sub->addrs);
            sub->addrs = NULL;
        }
        connect_failed(sub, "connect failed");
        return;
    }
    int64_t t = sub->ch->opts.connect_timeout_ms;
    uv_timer_start(&sub->connect_timer, connect_timeout,
                   (uint64_t)(t > 0 ? t : 20000), 0);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    subchannel *sub = req->data;
    sub->resolving = 0;
    if (status != 0 || res == NULL || sub->ch->stopping) {
        if (res)
            uv_freeaddrinfo(res);
        if (sub->ch->stopping) {
            sub->connecting = 0;
            fail_waiting(sub, "channel closed");
            return;
        }
        connect_failed(sub, status ? uv_strerror(status) : "no address");
        return;
    }
    sub->addrs = res;
    sub->next_addr = res;
    try_next_addr(sub);
}

static void sub_connect(subchannel *sub)
{
    orpc_channel *ch = sub->ch;
    sub->connecting = 1;
    sub->attempt_ms = uv_now(&ch->io.loop);
    set_state(ch, ORPC_CHANNEL_CONNECTING);
    if (ch->unix_path) {
        orpc__conn *conn = new_conn(sub, 1);
        if (conn == NULL) {
            connect_failed(sub, "out of memory");
            return;
        }
        sub->creq.data = conn;
        sub->dialing = conn;
        uv_pipe_connect(&sub->creq, &conn->h.pipe, ch->unix_path, on_connected);
        return;
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    sub->gai.data = sub;
    if (uv_getaddrinfo(&ch->io.loop, &sub->gai, on_resolved, ch->host, ch->port,
                       &hints) != 0)
        connect_failed(sub, "cannot resolve");
    else
        sub->resolving = 1;
}

/* ====================================================================== */
/* channel                                                                 */
/* ====================================================================== */

static int parse_target(orpc_channel *ch, const char *target)
{
    if (strncmp(target, "unix:", 5) == 0) {
        const char *p = target + 5;
        if (strncmp(p, "//", 2) == 0)
            p += 2;
        if (*p == '\0')
            return -1;
        ch->unix_path = strdup(p);
        ch->authority = strdup("localhost");
        return ch->unix_path && ch->authority ? 0 : -1;
    }
    if (strncmp(target, "dns:///", 7) == 0)
        target += 7;
    else if (strncmp(target, "dns:", 4) == 0)
        target += 4;
    const char *colon;
    if (target[0] == '[') {
        const char *end = strchr(target, ']');
        if (end == NULL || end[1] != ':')
            return -1;
        ch->host = strndup(target + 1, (size_t)(end - target - 1));
        colon = end + 1;
    } else {
        colon = strrchr(target, ':');
        if (colon == NULL || colon == target)
            return -1;
        ch->host = strndup(target, (size_t)(colon - target));
    }
    char *endp;
    long port = strtol(colon + 1, &endp, 10);
    if (colon[1] == '\0' || *endp != '\0' || port <= 0 || port > 65535)
        return -1;
    ch->port = strdup(colon + 1);
    ch->authority = strdup(target);
    return ch->host && ch->port && ch->authority ? 0 : -1;
}

static void channel_io_stop(orpc__io *io, void *ud)
{
    orpc_channel *ch = ud;
    subchannel *sub = &ch->sub;
    (void)io;
    ch->stopping = 1;
    set_state(ch, ORPC_CHANNEL_SHUTDOWN);
    fail_waiting(sub, "channel closed");
    if (sub->conn)
        orpc__conn_close(sub->conn, "channel closed");
    /* An attempt under way ends now, not when the kernel gives up on a
     * SYN nobody answers (minutes): closing the socket completes the
     * connect with ECANCELED (on_connected frees it); a resolution not yet
     * started is cancelled, one running in the thread pool is waited for. */
    if (sub->dialing != NULL) {
        sub->dialing->h.handle.data = sub->dialing;
        uv_close(&sub->dialing->h.handle, pending_conn_closed);
    }
    if (sub->resolving)
        uv_cancel((uv_req_t *)&sub->gai);
    /* Close every connection still draining too: walk the loop. */
    uv_timer_stop(&sub->connect_timer);
    uv_close((uv_handle_t *)&sub->connect_timer, NULL);
    uv_timer_stop(&sub->backoff_timer);
    uv_close((uv_handle_t *)&sub->backoff_timer, NULL);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (uv_is_closing(h))
        return;
    if (h->type == UV_TCP || h->type == UV_NAMED_PIPE) {
        orpc__conn *c = h->data;
        if (c != NULL && &c->h.handle == h && c->session != NULL) {
            orpc__conn_close(c, "channel closed");
            return;
        }
    }
}

static void channel_stop_task(orpc__task *t, void *arg)
{
    orpc_channel *ch = arg;
    (void)t;
    uv_walk(&ch->io.loop, close_walk, NULL);
}

int orpc_channel_new(orpc_channel **out, const char *target,
                     const orpc_channel_opts *opts, const orpc_mem *mem)
{
    char err[256];
    if (out == NULL || target == NULL)
        return ORPC_EINVAL;
    *out = NULL;
    orpc_channel *ch = calloc(1, sizeof(*ch));
    if (ch == NULL)
        return ORPC_ENOMEM;
    if (opts)
        ch->opts = *opts;
    if (mem)
        ch->mem = *mem;
    ch->refs = 1;
    uv_mutex_init(&ch->lock);
    orpc_channel_opts *o = &ch->opts;
    if (o->max_recv_message_size == 0)
        o->max_recv_message_size = ORPC_DEFAULT_MAX_RECV_MESSAGE;
    if (o->max_header_list_size == 0)
        o->max_header_list_size = ORPC_DEFAULT_MAX_HEADER_LIST;
    int rc = 0;
    if (parse_target(ch, target) != 0) {
        rc = ORPC_EADDR;
        goto fail;
    }
    if (o->authority) {
        free(ch->authority);
        ch->authority = strdup(o->authority);
    }
    ch->user_agent = o->user_agent ? (char *)NULL
                                   : strdup("grpc-c-orpc/" ORPC_VERSION_STRING);
    if (o->user_agent) {
        size_t n = strlen(o->user_agent) + 32;
        ch->user_agent = malloc(n);
        if (ch->user_agent)
            snprintf(ch->user_agent, n, "%s grpc-c-orpc/%s", o->user_agent,
                     ORPC_VERSION_STRING);
    }
    o->authority = NULL;
    o->user_agent = NULL;
    if (o->tls) {
        ch->is_tls = 1;
        rc = orpc__tls_check_client_target(o->tls, ch->unix_path != NULL, err,
                                           sizeof(err));
        if (rc != 0) {
            ch_log(ch, ORPC_LOG_ERROR, "TLS: %s", err);
            goto fail;
        }
        ch->ssl_ctx = orpc__tls_client_ctx(o->tls, err, sizeof(err));
        if (ch->ssl_ctx == NULL) {
            ch_log(ch, ORPC_LOG_ERROR, "TLS: %s", err);
            rc = ORPC_ECONFIG;
            goto fail;
        }
        const char *name = o->tls->server_name ? o->tls->server_name : ch->host;
        ch->server_name = name ? strdup(name) : NULL;
        if (o->tls->expected_spiffe_id)
            ch->expected_spiffe = strdup(o->tls->expected_spiffe_id);
        o->tls = NULL;
    } else if (!o->plaintext) {
        rc = ORPC_ECONFIG;
        goto fail;
    }
    nghttp2_session_callbacks_new(&ch->cbs);
    nghttp2_session_callbacks_set_on_header_callback(ch->cbs, on_header);
    nghttp2_session_callbacks_set_on_begin_headers_callback(ch->cbs,
                                                            on_begin_headers);
    nghttp2_session_callbacks_set_on_frame_recv_callback(ch->cbs,
                                                         on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(ch->cbs,
                                                              on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(ch->cbs,
                                                           on_stream_close);
    nghttp2_option_new(&ch->h2opt);
    nghttp2_option_set_no_auto_window_update(ch->h2opt, 1);
    nghttp2_option_set_max_settings(ch->h2opt, 32);
    nghttp2_option_set_max_continuations(ch->h2opt, 8);
    nghttp2_option_set_peer_max_concurrent_streams(ch->h2opt, 100);
    if (orpc__io_init(&ch->io, 0, channel_io_stop, ch) != 0) {
        rc = ORPC_ESYS;
        goto fail;
    }
    ch->sub.ch = ch;
    uv_timer_init(&ch->io.loop, &ch->sub.connect_timer);
    ch->sub.connect_timer.data = &ch->sub;
    uv_unref((uv_handle_t *)&ch->sub.connect_timer);
    uv_timer_init(&ch->io.loop, &ch->sub.backoff_timer);
    ch->sub.backoff_timer.data = &ch->sub;
    uv_unref((uv_handle_t *)&ch->sub.backoff_timer);
    ch->sub.rng = (uv_hrtime() ^ (uint64_t)(uintptr_t)ch) | 1;
    orpc__task_init(&ch->connect_task, connect_task, ch);
    if (orpc__io_start(&ch->io) != 0) {
        orpc__io_close_unstarted(&ch->io);
        orpc__io_destroy(&ch->io);
        rc = ORPC_ESYS;
        goto fail_io;
    }
    *out = ch;
    return 0;
fail:
fail_io:
    if (ch->cbs) {
        nghttp2_session_callbacks_del(ch->cbs);
        nghttp2_option_del(ch->h2opt);
    }
    if (ch->ssl_ctx)
        SSL_CTX_free(ch->ssl_ctx);
    free(ch->host);
    free(ch->port);
    free(ch->unix_path);
    free(ch->authority);
    free(ch->server_name);
    free(ch->expected_spiffe);
    free(ch->user_agent);
    uv_mutex_destroy(&ch->lock);
    free(ch);
    return rc;
}

orpc_channel *orpc_channel_ref(orpc_channel *ch)
{
    if (ch == NULL)
        return NULL;
    uv_mutex_lock(&ch->lock);
    ch->refs++;
    uv_mutex_unlock(&ch->lock);
    return ch;
}

static void connect_task(orpc__task *t, void *arg)
{
    orpc_channel *ch = arg;
    subchannel *sub = &ch->sub;
    (void)t;
    if (!ch->stopping && !sub->connecting && sub->conn == NULL &&
        !sub->backing_off)
        sub_connect(sub);
}

orpc_channel_state orpc_channel_get_state(orpc_channel *ch, int try_to_connect)
{
    if (ch == NULL)
        return ORPC_CHANNEL_SHUTDOWN;
    uv_mutex_lock(&ch->lock);
    orpc_channel_state st = ch->stopped ? ORPC_CHANNEL_SHUTDOWN : ch->state;
    uv_mutex_unlock(&ch->lock);
    if (st == ORPC_CHANNEL_IDLE && try_to_connect)
        orpc__io_post(&ch->io, &ch->connect_task); /* a no-op if queued */
    return st;
}

void orpc_channel_free(orpc_channel *ch)
{
    if (ch == NULL)
        return;
    uv_mutex_lock(&ch->lock);
    int left = --ch->refs;
    uv_mutex_unlock(&ch->lock);
    if (left > 0)
        return;
    /* Close connections first (their calls complete as UNAVAILABLE), then
     * stop the thread.  Calls the application still holds keep the memory
     * until they are finished. */
    orpc__task t;
    orpc__task_init(&t, channel_stop_task, ch);
    orpc__io_post(&ch->io, &t);
    orpc__io_stop(&ch->io);
    uv_mutex_lock(&ch->lock);
    ch->stopped = 1;
    int last = ch->call_refs == 0;
    uv_mutex_unlock(&ch->lock);
    if (last)
        channel_destroy(ch);
}

static void channel_destroy(orpc_channel *ch)
{
    orpc__io_destroy(&ch->io);
    nghttp2_session_callbacks_del(ch->cbs);
    nghttp2_option_del(ch->h2opt);
    if (ch->ssl_ctx)
        SSL_CTX_free(ch->ssl_ctx);
    if (ch->sub.addrs)
        uv_freeaddrinfo(ch->sub.addrs);
    free(ch->host);
    free(ch->port);
    free(ch->unix_path);
    free(ch->authority);
    free(ch->server_name);
    free(ch->expected_spiffe);
    free(ch->user_agent);
    free(ch->peer_identity);
    uv_mutex_destroy(&ch->lock);
    free(ch);
}

int orpc_channel_peer_identity(orpc_channel *ch, char *buf, size_t len)
{
    if (ch == NULL || buf == NULL)
        return ORPC_EINVAL;
    uv_mutex_lock(&ch->lock);
    int rc = 0;
    if (ch->peer_identity == NULL)
        rc = ORPC_ENOTFOUND;
    else if (strlen(ch->peer_identity) >= len)
        rc = ORPC_ETOOBIG;
    else
        strcpy(buf, ch->peer_identity);
    uv_mutex_unlock(&ch->lock);
    return rc;
}

/* ====================================================================== */
/* starting calls (any thread)                                             */
/* ====================================================================== */

static int queue_message(orpc_call *c, const ProtobufCMessage *msg,
                         int keep_copy)
{
    int err = 0;
    if (msg->descriptor != c->method->input->descriptor)
        return ORPC_EINVAL;
    orpc__chunk *ck = orpc__encode_message(
        msg, c->gzip, c->ch->opts.max_send_message_size, &err);
    if (ck == NULL)
        return err;
    if (keep_copy) {
        c->req_copy = malloc(sizeof(*ck) + ck->len);
        if (c->req_copy)
            memcpy(c->req_copy, ck, sizeof(*ck) + ck->len);
    }
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
    int rc = call_new(&c, ch, method, opts);
    if (rc != 0)
        return orpc_status_errorf(ORPC_INTERNAL, "cannot start call: %s",
                                  orpc_strerror(rc));
    rc = queue_message(c, request, 1);
    if (rc != 0) {
        call_unref(c);
        return orpc_status_new(rc == ORPC_ETOOBIG ? ORPC_RESOURCE_EXHAUSTED
                                                  : ORPC_INVALID_ARGUMENT,
                               rc == ORPC_ETOOBIG
                                   ? "request larger than the send limit"
                                   : "request is not the method's input type");
    }
    c->send_closed = 1;
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
    rc = queue_message(c, request, 1);
    if (rc != 0) {
        call_unref(c);
        return rc;
    }
    c->send_closed = 1;
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

int orpc_channel_call_start(orpc_call **out, orpc_channel *ch,
                            const orpc_method_desc *method,
                            const ProtobufCMessage *request,
                            const orpc_call_opts *opts)
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
    if (server_stream) {
        rc = queue_message(c, request, 1);
        if (rc != 0) {
            call_unref(c);
            return rc;
        }
        c->send_closed = 1;
    }
    uv_mutex_lock(&c->lock);
    c->refs++; /* the IO side */
    uv_mutex_unlock(&c->lock);
    post_call(c);
    *out = c;
    return 0;
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
    int err = 0;
    orpc__chunk *ck = orpc__encode_message(
        msg, c->gzip, c->ch->opts.max_send_message_size, &err);
    if (ck == NULL)
        return err;
    uv_mutex_lock(&c->lock);
    for (;;) {
        if (c->done) {
            uv_mutex_unlock(&c->lock);
            free(ck);
            return ORPC_ECLOSED;
        }
        if (c->send_closed) {
            uv_mutex_unlock(&c->lock);
            free(ck);
            return ORPC_ESTATE;
        }
        if (c->sendq.bytes < CALL_SENDQ_LIMIT)
            break;
        uv_cond_wait(&c->cond, &c->lock);
    }
    orpc__sendq_push(&c->sendq, ck);
    uv_mutex_unlock(&c->lock);
    post_call(c);
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
    uv_mutex_lock(&c->lock);
    for (;;) {
        orpc__inmsg *r = orpc__in_take_locked(&c->in);
        if (r != NULL) {
            int owed = orpc__in_owed_locked(&c->in);
            int done = c->done;
            uv_mutex_unlock(&c->lock);
            *msg = r->msg;
            free(r);
            if (owed && !done) /* its flow-control credit goes back */
                post_call(c);
            return 1;
        }
        if (c->done) {
            int ok = c->status.code == ORPC_OK;
            uv_mutex_unlock(&c->lock);
            return ok ? 0 : ORPC_ECLOSED;
        }
        uv_cond_wait(&c->cond, &c->lock);
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
    if (c->trailers_out && c->trailers) {
        for (size_t i = 0; i < orpc_metadata_count(c->trailers); i++) {
            const char *k;
            const uint8_t *v;
            size_t len;
            orpc_metadata_at(c->trailers, i, &k, &v, &len);
            orpc_metadata_add(c->trailers_out, k, v, len);
        }
    }
    uv_mutex_unlock(&c->lock);
    return st;
}

orpc_status orpc_call_finish(orpc_call *c)
{
    if (c == NULL)
        return orpc_status_new(ORPC_INVALID_ARGUMENT, "no call");
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
    orpc_call_close_send(c);
    orpc_status st = finish_common(c);
    if (st.code == ORPC_OK && response != NULL) {
        uv_mutex_lock(&c->lock);
        orpc__inmsg *r = orpc__in_take_locked(&c->in);
        uv_mutex_unlock(&c->lock);
        if (r) {
            *response = r->msg;
            free(r);
        }
    }
    call_unref(c);
    return st;
}
