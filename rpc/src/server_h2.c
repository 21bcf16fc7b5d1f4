/*
 * server_h2.c — the HTTP/2 side of the server's calls: nghttp2's callbacks
 * for request headers (validated and bounded as they arrive), DATA (handed
 * to the stream engine), frames sent and received, and stream close; then
 * routing to a service and method, the mTLS identity check, the
 * authorization policy, the call's deadline, and dispatch.
 *
 * Every callback runs on the connection's IO thread.  Input is untrusted:
 * a request is refused with a gRPC status (or an HTTP status where gRPC
 * says so) before any handler sees it.  With a gateway installed, a stream
 * that is not gRPC (another content-type, or not POST) is the gateway's
 * (server_h2x.c): its headers are kept while it may be one, and its DATA,
 * end and close go there.
 */
#include "server_internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <orpc/error.h>

#include "authz.h"
#include "common/mem.h"

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
    orpc_ctx *ctx = orpc__ctx_new(sc, f->hd.stream_id);
    if (ctx == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST the stream */
    nghttp2_session_set_stream_user_data(s, f->hd.stream_id, ctx);
    return 0;
}

static char *arena_strndup(orpc_arena *a, const uint8_t *p, size_t n)
{
    char *d = orpc_arena_alloc(a, n + 1);
    if (d != NULL) {
        memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

static void keep_method(orpc_ctx *ctx, const uint8_t *value, size_t len)
{
    ctx->method_name = arena_strndup(ctx->arena, value, len);
    if (ctx->method_name == NULL)
        ctx->no_memory = 1;
}

static void keep_header(orpc_ctx *ctx, const uint8_t *name, size_t namelen,
                        const uint8_t *value, size_t valuelen)
{
    orpc__rawhdr *h = orpc_arena_alloc(ctx->arena, sizeof(*h));
    if (h == NULL ||
        (h->name = arena_strndup(ctx->arena, name, namelen)) == NULL ||
        (h->value = arena_strndup(ctx->arena, value, valuelen)) == NULL) {
        ctx->no_memory = 1;
        return;
    }
    h->len = valuelen;
    h->next = NULL;
    if (ctx->raw_tail == NULL)
        ctx->raw_tail = &ctx->raw;
    *ctx->raw_tail = h;
    ctx->raw_tail = &h->next;
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
        } else {
            ctx->no_memory = 1;
        }
    } else if (orpc__name_is(name, namelen, ":method")) {
        ctx->is_post = orpc__name_is(value, valuelen, "POST");
        if (!ctx->is_post && ctx->srv->gw != NULL) /* (a gateway's GET) */
            keep_method(ctx, value, valuelen);
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
    } else if (orpc__name_is(name, namelen, "grpc-previous-rpc-attempts")) {
        int n = 0, ok = valuelen > 0 && valuelen <= 9;
        for (size_t i = 0; ok && i < valuelen; i++) {
            ok = value[i] >= '0' && value[i] <= '9';
            n = n * 10 + (value[i] - '0');
        }
        ctx->prev_attempts = ok ? n : 0;
    } else if (orpc__name_is(name, namelen, "grpc-accept-encoding")) {
        for (size_t i = 0; i + 4 <= valuelen; i++)
            if (memcmp(value + i, "gzip", 4) == 0)
                ctx->accept_gzip = 1;
    } else {
        int rc = orpc__md_from_header_mem(ctx->md, &ctx->srv->mem, name,
                                          namelen, value, valuelen);
        if (rc == ORPC_ENOMEM)
            ctx->no_memory = 1;
        else if (rc != 0)
            ctx->bad_metadata = 1; /* never dropped: a policy may match it */
    }
    /* While the stream may yet be a gateway's (no gRPC content-type so
     * far: it comes early, so a gRPC call keeps next to nothing), its
     * headers are kept as sent (server_h2x.c) */
    if (ctx->srv->gw != NULL && !ctx->content_type_ok && namelen > 0 &&
        name[0] != ':')
        keep_header(ctx, name, namelen, value, valuelen);
    return 0;
}

static void on_deadline(uv_timer_t *t)
{
    orpc_ctx *ctx = t->data;
    /* The status first: a handler woken by the cancellation must not get
     * its own status in ahead of DEADLINE_EXCEEDED. */
    orpc__ctx_fail(ctx, ORPC_DEADLINE_EXCEEDED, "deadline exceeded");
    orpc__ctx_cancel(ctx);
    orpc__ctx_maybe_resume(ctx);
}

const orpc__svc_entry *orpc__srv_find_method(orpc_server *srv, const char *path,
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
            const orpc_method_desc *md = orpc_service_method(e->desc, m);
            if (md != NULL && strcmp(md->name, slash + 1) == 0) {
                *method = md;
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
    nghttp2_session *s = orpc__ctx_session(ctx);
    const orpc_mem *mem = &ctx->srv->mem;
    orpc__hdrs h;
    orpc_status st = ORPC_STATUS_OK;
    st.code = code;
    st.message = (char *)msg; /* borrowed: only encoded, never freed */
    orpc__hdrs_init(&h, mem);
    int rc =
        orpc__hdrs_add_static(&h, ":status", status) != 0 ||
        orpc__hdrs_add_static(&h, "content-type", "application/grpc") != 0 ||
        orpc__hdrs_add_status(&h, &st) != 0;
    orpc__hdrs_finish(&h);
    if ((rc != 0 ||
         nghttp2_submit_response(s, ctx->stream_id, h.nv, h.n, NULL) != 0) &&
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, ctx->stream_id,
                                  NGHTTP2_INTERNAL_ERROR) != 0)
        orpc__conn_close(ctx->sc->conn, "out of memory");
    orpc__hdrs_free(&h);
    orpc__ctx_settle(ctx, orpc__status_new_mem(mem, code, msg));
    orpc__ctx_set_started(ctx);
    ctx->io_done = 1;
    orpc__ctx_kick(ctx);
}

/* The checks between a call's request head and its handler (HTTP/2 and
 * HTTP/1.1 exchanges alike); see server_internal.h. */
int orpc__ctx_admit(orpc_ctx *ctx, const char *identity)
{
    orpc_server *srv = ctx->srv;
    const orpc_method_desc *m = NULL;
    orpc_method_handler h = NULL;
    const orpc__svc_entry *e = orpc__srv_find_method(srv, ctx->path, &m, &h);
    if (e == NULL || m == NULL) {
        char msg[300];
        snprintf(msg, sizeof(msg), "%s: %.200s",
                 e == NULL ? "unknown service" : "unknown method",
                 ctx->path ? ctx->path : "(no :path)");
        orpc__ctx_fail(ctx, ORPC_UNIMPLEMENTED, msg);
        return -1;
    }
    ctx->svc = e;
    ctx->method = m;
    ctx->handler = h;
    /* The interceptors start once the method is known and before the
     * caller's identity and the policy are checked: a refused caller is
     * logged and counted too. */
    orpc__call_info_init(&ctx->ci, &srv->chain, m, ORPC_SIDE_SERVER, &ctx->md,
                         &srv->mem,
                         ctx->peer_identity ? ctx->peer_identity : ctx->peer);
    if (ctx->x != NULL) /* arrived as HTTP/JSON through a gateway */
        ctx->ci.served_by = ORPC_SERVED_LEGACY;
    if (orpc__call_info_active(&ctx->ci)) {
        const char *why = NULL;
        orpc_code code = orpc__chain_start(&ctx->ci, &why);
        if (code != ORPC_OK) {
            orpc__ctx_fail(ctx, code, why);
            return -1;
        }
    }
    if (srv->opts.tls.require_client_cert && ctx->peer_identity == NULL) {
        /* mTLS: a verified certificate without exactly one valid SPIFFE
         * ID is no identity, and an anonymous caller goes no further. */
        orpc__ctx_fail(
            ctx, ORPC_UNAUTHENTICATED,
            "client certificate carries no valid SPIFFE ID (exactly one "
            "spiffe:// URI SAN is required)");
        return -1;
    }
    policy_ref *pol = orpc__srv_policy_get(srv);
    if (pol != NULL && ctx->sc == NULL) { /* the connection is gone */
        orpc__srv_policy_put(srv, pol);
        orpc__ctx_fail(ctx, ORPC_CANCELLED, "connection lost");
        return -1;
    }
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
        if (identity != NULL) {
            /* a gateway authenticated the caller (a bearer token): its
             * identity is the one principal the policy matches, as the
             * URI SAN of a verified certificate would be */
            peer.tls = 1;
            peer.has_cert = 1;
            peer.uri_sans = &identity;
            peer.n_uri_sans = 1;
            peer.dns_sans = NULL;
            peer.n_dns_sans = 0;
            peer.subject = NULL;
        }
        const char *rule = NULL;
        int allow =
            orpc__authz_check(pol->authz, &peer, ctx->path, ctx->md, &rule);
        if (!allow) {
            char msg[200];
            snprintf(msg, sizeof(msg), "%s is not allowed to call %s",
                     ctx->peer_identity ? ctx->peer_identity
                                        : "an unauthenticated caller",
                     ctx->path);
            orpc__srv_log(srv, ORPC_LOG_INFO, "denied %s%s%s", msg,
                          rule ? " by rule " : " (no rule allows it)",
                          rule ? rule : "");
            orpc__srv_policy_put(srv, pol);
            orpc__ctx_fail(ctx, ORPC_PERMISSION_DENIED, msg);
            return -1;
        }
        orpc__srv_policy_put(srv, pol);
    }
    if (h == NULL) {
        orpc__ctx_fail(ctx, ORPC_UNIMPLEMENTED, "method not implemented");
        return -1;
    }
    if (ctx->deadline_ns != INT64_MAX) {
        int64_t left = ctx->deadline_ns - orpc__now_ns();
        uint64_t ms = left <= 0 ? 0 : (uint64_t)(left + 999999) / 1000000;
        uv_timer_init(&ctx->sio->io.loop, &ctx->timer);
        ctx->timer.data = ctx;
        ctx->timer_started = 1;
        uv_timer_start(&ctx->timer, on_deadline, ms, 0);
    }
    return 0;
}

static void request_headers_done(orpc_ctx *ctx)
{
    if (ctx->srv->gw != NULL && (!ctx->is_post || !ctx->content_type_ok)) {
        orpc__h2x_begin(ctx); /* not gRPC: the gateway's */
        return;
    }
    if (ctx->headers_too_big) {
        orpc__ctx_fail(ctx, ORPC_RESOURCE_EXHAUSTED,
                       "request header list larger than the server accepts");
        return;
    }
    if (ctx->no_memory) {
        orpc__ctx_fail(ctx, ORPC_RESOURCE_EXHAUSTED,
                       "out of memory for the request headers");
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
        orpc__ctx_fail(ctx, ORPC_INTERNAL, "malformed grpc-timeout");
        return;
    }
    if (ctx->bad_metadata) {
        orpc__ctx_fail(ctx, ORPC_INTERNAL,
                       "malformed request metadata (a -bin value that is not "
                       "base64, or a value with forbidden characters)");
        return;
    }
    if (ctx->bad_encoding) {
        orpc__ctx_fail(ctx, ORPC_UNIMPLEMENTED,
                       "unsupported grpc-encoding (identity and gzip are)");
        return;
    }
    if (orpc__ctx_admit(ctx, NULL) != 0)
        return;
    int kind = ctx->method->kind;
    if (kind == ORPC_CALL_CLIENT_STREAMING || kind == ORPC_CALL_BIDI_STREAMING)
        orpc__ctx_dispatch(ctx);
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
        orpc__ctx_fail(ctx, ORPC_INTERNAL, "more than one request message");
        return ORPC_ECALLBACK;
    }
    ProtobufCMessage *m = orpc__decode_message(
        ctx->method->input->descriptor, p, len, compressed, ctx->req_gzip,
        ctx->srv->opts.max_recv_message_size,
        single ? orpc_arena_allocator(ctx->arena) : &ctx->srv->pb,
        &ctx->srv->mem, &st);
    if (m == NULL) {
        orpc__ctx_settle(ctx, st);
        uv_mutex_lock(&ctx->lock);
        orpc__sendq_clear(&ctx->sendq);
        uv_mutex_unlock(&ctx->lock);
        orpc__ctx_pump(ctx);
        return ORPC_ECALLBACK;
    }
    orpc__chain_message(&ctx->ci, 0, len);
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
    if (ctx != NULL && ctx->x != NULL) {
        orpc__h2x_data(ctx, s, id, data, len);
        return 0;
    }
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
    if (rc > 0) { /* the engine woke a blocked reader; resume a deferred one */
        orpc__ctx_maybe_resume(ctx);
        return 0;
    }
    switch (rc) {
    case 0:
    case ORPC_ECALLBACK: /* decode_request ended the call */
        break;
    case ORPC_ETOOBIG:
        orpc__ctx_fail(ctx, ORPC_RESOURCE_EXHAUSTED,
                       "request message larger than the server accepts");
        break;
    case ORPC_ELIMIT:
        orpc__ctx_fail(
            ctx, ORPC_RESOURCE_EXHAUSTED,
            "the connection buffers more incomplete request messages "
            "than the server accepts (max_connection_buffer)");
        break;
    case ORPC_ENOMEM:
        orpc__ctx_fail(ctx, ORPC_RESOURCE_EXHAUSTED, "out of memory");
        break;
    default:
        orpc__ctx_fail(ctx, ORPC_INTERNAL, "malformed message framing");
        break;
    }
    return 0;
}

static void end_of_request(orpc_ctx *ctx)
{
    ctx->remote_closed = 1;
    if (ctx->x != NULL) {
        orpc__h2x_request_end(ctx);
        return;
    }
    if (ctx->method == NULL || ctx->io_done)
        return;
    uv_mutex_lock(&ctx->lock);
    int finished = ctx->finished;
    uv_mutex_unlock(&ctx->lock);
    if (finished)
        return;
    if (orpc__in_partial(&ctx->in)) {
        orpc__ctx_cancel(ctx);
        orpc__ctx_fail(ctx, ORPC_INTERNAL, "request message cut short");
        return;
    }
    int kind = ctx->method->kind;
    if (kind == ORPC_CALL_UNARY || kind == ORPC_CALL_SERVER_STREAMING) {
        if (ctx->request == NULL) {
            orpc__ctx_fail(ctx, ORPC_INTERNAL, "missing request message");
            return;
        }
        orpc__ctx_dispatch(ctx);
        return;
    }
    uv_mutex_lock(&ctx->lock);
    ctx->recv_eos = 1;
    ctx->resume_wanted = 1;
    uv_cond_broadcast(&ctx->cond);
    uv_mutex_unlock(&ctx->lock);
    orpc__ctx_maybe_resume(ctx);
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
            orpc__sconn_alive(sconn_of(user_data), 1);
        break;
    case NGHTTP2_PING:
        if (f->hd.flags & NGHTTP2_FLAG_ACK)
            orpc__sconn_alive(sconn_of(user_data), 0);
        else
            orpc__sconn_ping_received(sconn_of(user_data));
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
    if (ctx->x != NULL)
        orpc__h2x_closed(ctx);
    uv_mutex_lock(&ctx->lock);
    int done = ctx->finished && ctx->io_done;
    int running = ctx->handler_running;
    uv_mutex_unlock(&ctx->lock);
    if (!done || running) {
        orpc__ctx_cancel(ctx);
        orpc__ctx_settle(ctx,
                         orpc__status_new_mem(&ctx->srv->mem, ORPC_CANCELLED,
                                              "call cancelled"));
        orpc__ctx_maybe_resume(ctx);
    }
    orpc__ctx_io_release(ctx, s);
    return 0;
}

/* The nghttp2 callbacks and options every connection of |srv| shares.
 * 0 or -1 (out of memory). */
int orpc__srv_h2_setup(orpc_server *srv)
{
    if (nghttp2_session_callbacks_new(&srv->cbs) != 0 ||
        nghttp2_option_new(&srv->h2opt) != 0)
        return -1;
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
    nghttp2_option_set_no_auto_window_update(srv->h2opt, 1);
    nghttp2_option_set_max_settings(srv->h2opt, 32);
    nghttp2_option_set_max_outbound_ack(srv->h2opt, 1000);
    nghttp2_option_set_stream_reset_rate_limit(srv->h2opt, 1000, 33);
    nghttp2_option_set_max_continuations(srv->h2opt, 8);
    return 0;
}
