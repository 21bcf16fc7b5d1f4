/*
 * channel_h2.c — the client's HTTP/2 callbacks, on the channel's IO thread:
 * response headers (bounded by max_header_list_size; nghttp2 does not hold
 * the server to it), response messages through the stream engine (one for
 * a unary call, flow-controlled for streams), trailers and the status they
 * carry, GOAWAY, SETTINGS, PING ACKs, and stream close with its one
 * transparent retry of a refused stream.  For retries (retry.c): response
 * headers commit a call, grpc-retry-pushback-ms is noted, and a
 * Trailers-Only response is judged before anything of it is published.
 *
 * Input is untrusted: whatever the server sends ends in a status, never in
 * unbounded memory.
 */
#include "channel_internal.h"

#include <stdlib.h>
#include <string.h>

#include <orpc/error.h>

#include "common/mem.h"

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
            orpc__call_fail(
                c, ORPC_RESOURCE_EXHAUSTED,
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
        /* orpc_status.message is UTF-8 (status.h), whatever was sent.
         * Out of memory, the message is dropped (freed: |failed| would
         * stick to a later grpc-message). */
        c->status_msg.len = 0;
        if (orpc__percent_decode((const char *)value, valuelen,
                                 &c->status_msg) != 0 ||
            orpc__utf8_repair(&c->status_msg) != 0)
            orpc__buf_free(&c->status_msg);
    } else if (orpc__name_is(name, namelen, "grpc-status-details-bin")) {
        c->status_details.len = 0;
        if (orpc__b64_decode((const char *)value, valuelen,
                             &c->status_details) != 0)
            orpc__buf_free(&c->status_details);
    } else if (orpc__name_is(name, namelen, "grpc-encoding")) {
        c->resp_gzip = orpc__name_is(value, valuelen, "gzip");
    } else if (orpc__name_is(name, namelen, "grpc-retry-pushback-ms")) {
        orpc__retry_pushback(c, value, valuelen);
    } else {
        uv_mutex_lock(&c->lock);
        orpc_metadata **md = c->in_trailers ? &c->trailers : &c->headers;
        int rc = *md == NULL ? orpc_metadata_new(md, &c->ch->mem) : 0;
        if (rc == 0)
            rc = orpc__md_from_header_mem(*md, &c->ch->mem, name, namelen,
                                          value, valuelen);
        uv_mutex_unlock(&c->lock);
        if (rc != 0)
            orpc__call_fail(
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
    const orpc_mem *mem = &c->ch->mem;
    orpc_status st;
    if (c->http_status != 200 && !c->got_status) {
        return orpc__status_errorf_mem(
            mem, orpc_code_from_grpc_http(c->http_status),
            "HTTP status %d without grpc-status", c->http_status);
    }
    if (!c->got_status)
        return orpc__status_new_mem(mem, ORPC_INTERNAL,
                                    "stream ended without grpc-status");
    int code = c->status_code < 0 ? ORPC_UNKNOWN : c->status_code;
    char *msg = c->status_msg.len ? (char *)c->status_msg.data : NULL;
    st = orpc__status_new_mem(mem, (orpc_code)code, msg);
    if (c->status_details.len)
        orpc__status_set_details_mem(mem, &st, c->status_details.data,
                                     c->status_details.len);
    return st;
}

static void keepalive_start(cconn *cc)
{
    orpc_channel *ch = cc->sub->ch;
    if (ch->opts.keepalive_time_ms <= 0 || cc->keepalive != NULL)
        return;
    cc->keepalive = orpc__mem_malloc(&ch->mem, sizeof(*cc->keepalive));
    if (cc->keepalive == NULL)
        return; /* no keepalive on this connection, which still works */
    uv_timer_init(&ch->io.loop, cc->keepalive);
    cc->keepalive->data = cc;
    uv_timer_start(cc->keepalive, orpc__sub_keepalive_fire,
                   (uint64_t)ch->opts.keepalive_time_ms, 0);
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f,
                         void *user_data)
{
    orpc__conn *conn = user_data;
    if (f->hd.type == NGHTTP2_GOAWAY) {
        orpc__sub_goaway(conn->user_data); /* new calls go elsewhere */
        return 0;
    }
    if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK)) {
        cconn *cc = conn->user_data;
        if (!cc->established) {
            keepalive_start(cc);
            orpc__sub_established(cc); /* READY; the backoff resets */
        }
        return 0;
    }
    if (f->hd.type == NGHTTP2_PING && (f->hd.flags & NGHTTP2_FLAG_ACK)) {
        orpc__sub_keepalive_acked(conn->user_data);
        return 0;
    }
    if (f->hd.type == NGHTTP2_DATA && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        /* A response ends with trailers: one that a DATA frame ends has no
         * status (a server that could not send its trailers, out of
         * memory, does that).  Without this the call would wait for them
         * until its deadline, or for ever: the stream stays half open
         * while our side is. */
        orpc_call *c = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
        if (c != NULL && !c->io_finished)
            orpc__call_complete(
                c, orpc__in_partial(&c->in)
                       ? orpc__status_new_mem(&c->ch->mem, ORPC_INTERNAL,
                                              "response message cut short")
                       : status_from_wire(c));
        return 0;
    }
    if (f->hd.type != NGHTTP2_HEADERS)
        return 0;
    orpc_call *c = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    /* A call already ended (a local failure, a deadline) has returned to
     * its caller, who may have freed the metadata it asked the headers
     * into: nothing more of the stream reaches it. */
    if (c == NULL || c->io_finished)
        return 0;
    if (!c->response_bytes) {
        if (!(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
            orpc__retry_commit(c); /* response headers (gRFC A6) */
        } else if (c->retry.policy != NULL) {
            /* Trailers-Only: an attempt that is retried publishes
             * nothing (its metadata, in c->headers, is dropped) */
            orpc_status st = status_from_wire(c);
            if (orpc__retry_check(c, &st))
                return 0;
            orpc__status_clear_mem(&c->ch->mem, &st);
        }
        c->response_bytes = 1;
        uv_mutex_lock(&c->lock);
        c->headers_ready = 1;
        (void)orpc_metadata_add_all(c->headers_out, c->headers);
        uv_cond_broadcast(&c->cond);
        uv_mutex_unlock(&c->lock);
        if (c->is_async && c->acbs.on_headers && c->http_status == 200 &&
            !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
            c->acbs.on_headers(c, c->headers, c->cb_user_data);
        if (c->retry.parent != NULL) /* a hedged attempt: to its call */
            orpc__retry_hedge_forward(
                c, c->http_status == 200 &&
                       !(f->hd.flags & NGHTTP2_FLAG_END_STREAM));
        if (c->http_status != 200 && !(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
            orpc__call_fail(c, orpc_code_from_grpc_http(c->http_status),
                            "HTTP error status");
            return 0;
        }
    }
    if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        if (orpc__in_partial(&c->in)) {
            orpc__call_complete(
                c, orpc__status_new_mem(&c->ch->mem, ORPC_INTERNAL,
                                        "response message cut short"));
            return 0;
        }
        orpc__call_complete(c, status_from_wire(c));
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
        orpc__call_fail(c, ORPC_INTERNAL, "server sent more than one response");
        return ORPC_ECALLBACK;
    }
    orpc_status st = ORPC_STATUS_OK;
    ProtobufCMessage *m =
        orpc__decode_message(c->method->output->descriptor, p, len, compressed,
                             c->resp_gzip, c->max_recv, NULL, &c->ch->mem, &st);
    if (m == NULL) {
        if (c->stream_open && c->conn && c->conn->session)
            orpc__call_reset(c);
        orpc__call_complete(c, st);
        return ORPC_ECALLBACK;
    }
    orpc__chain_message(&c->ci, 0, len);
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
        if (c->retry.parent != NULL) /* a hedged attempt: to its call */
            orpc__retry_hedge_forward(c, 0);
        orpc__call_deliver(c); /* asynchronous: to on_message */
        return 0;              /* else the engine woke the readers waiting */
    }
    switch (rc) {
    case 0:
    case ORPC_ECALLBACK: /* decode_response ended the call */
        break;
    case ORPC_ETOOBIG:
        orpc__call_fail(c, ORPC_RESOURCE_EXHAUSTED,
                        "response message larger than the channel accepts");
        break;
    case ORPC_ELIMIT:
        orpc__call_fail(
            c, ORPC_RESOURCE_EXHAUSTED,
            "the connection buffers more incomplete response messages "
            "than the channel accepts");
        break;
    case ORPC_ENOMEM:
        orpc__call_fail(c, ORPC_RESOURCE_EXHAUSTED, "out of memory");
        break;
    default:
        orpc__call_fail(c, ORPC_INTERNAL, "malformed response framing");
        break;
    }
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t error,
                           void *user_data)
{
    orpc__conn *conn = user_data;
    orpc_call *c = nghttp2_session_get_stream_user_data(s, id);
    if (c == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(s, id, NULL);
    c->stream_open = 0;
    if (c->io_finished) {
        orpc__call_io_release(c, s);
        return 0;
    }
    if (error == NGHTTP2_REFUSED_STREAM && !c->response_bytes)
        c->reach = ORPC_REACH_REFUSED; /* the server did not process it */
    if (error == NGHTTP2_REFUSED_STREAM && !c->response_bytes && !c->retried &&
        orpc__retry_can_replay(c)) {
        /* Never processed (refused, or above a GOAWAY's last stream id):
         * try again, once, on a connection that takes it (gRFC A6's
         * transparent retry, not counted as an attempt); a server that
         * refuses it again is answered UNAVAILABLE. */
        c->retried = 1; /* no response bytes came: c->in is untouched */
        orpc__call_unlist(c);
        c->submitted = 0;
        c->conn = NULL;
        c->stream_id = 0;
        /* (nor the connection, which may be freed before the retry is
         * submitted: its partial-bytes counter is not ours any more) */
        c->in.conn_partial = NULL;
        if (orpc__retry_replay(c) == 0) {
            orpc__retry_count(c->ch, ORPC__RETRY_N_TRANSPARENT);
            if (c->retry.policy == NULL)
                orpc__retry_release(c); /* (kept for this retry alone) */
            orpc__call_enqueue(c);
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
        /* (nghttp2 also refuses the requests it has not sent when a side
         * ends the session, ours too: out of memory, say) */
        msg = conn->closing || conn->close_after_flush ||
                      !nghttp2_session_want_read(s)
                  ? "connection going away before the request was processed"
                  : "stream refused by the server";
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
    orpc__call_complete(c, orpc__status_new_mem(&c->ch->mem, code, msg));
    return 0;
}

/* The nghttp2 callbacks and options every connection of |ch| shares.
 * 0 or -1 (out of memory). */
int orpc__ch_h2_setup(orpc_channel *ch)
{
    if (nghttp2_session_callbacks_new(&ch->cbs) != 0 ||
        nghttp2_option_new(&ch->h2opt) != 0)
        return -1;
    nghttp2_session_callbacks_set_on_header_callback(ch->cbs, on_header);
    nghttp2_session_callbacks_set_on_begin_headers_callback(ch->cbs,
                                                            on_begin_headers);
    nghttp2_session_callbacks_set_on_frame_recv_callback(ch->cbs,
                                                         on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(ch->cbs,
                                                              on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(ch->cbs,
                                                           on_stream_close);
    nghttp2_option_set_no_auto_window_update(ch->h2opt, 1);
    nghttp2_option_set_max_settings(ch->h2opt, 32);
    nghttp2_option_set_max_continuations(ch->h2opt, 8);
    nghttp2_option_set_peer_max_concurrent_streams(ch->h2opt, 100);
    return 0;
}
