/*
 * subchannel.c — how a channel gets a connection: name resolution, one
 * connection attempt per resolved address in turn with a timeout, the TLS
 * handshake's identity check, gRPC's connection backoff after failures,
 * keepalive pings on established connections, and what a closed
 * connection does to its calls and to the calls waiting for one.
 *
 * All of it runs on the channel's IO thread.
 */
#include "channel_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <orpc/error.h>

#include "common/mem.h"

void orpc__sub_fail_waiting(subchannel *sub, const char *why)
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
            orpc__call_complete(
                w, orpc__status_errorf_mem(&sub->ch->mem, ORPC_UNAVAILABLE,
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
void orpc__sub_keepalive_fire(uv_timer_t *t)
{
    cconn *cc = t->data;
    orpc_channel *ch = cc->sub->ch;
    if (cc->ping_out) { /* the timeout ran out */
        orpc__ch_log(ch, ORPC_LOG_INFO, "keepalive: no PING ACK in %lld ms",
                     (long long)ch->opts.keepalive_timeout_ms);
        orpc__conn_close(cc->conn, "keepalive timeout");
        return;
    }
    if (cc->calls == NULL && !ch->opts.keepalive_without_calls) {
        uv_timer_start(t, orpc__sub_keepalive_fire,
                       (uint64_t)ch->opts.keepalive_time_ms, 0);
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
    uv_timer_start(t, orpc__sub_keepalive_fire, (uint64_t)to, 0);
}

void orpc__sub_keepalive_acked(cconn *cc)
{
    if (cc->keepalive == NULL || !cc->ping_out)
        return;
    cc->ping_out = 0;
    uv_timer_start(cc->keepalive, orpc__sub_keepalive_fire,
                   (uint64_t)cc->sub->ch->opts.keepalive_time_ms, 0);
}

/* Close callback of a handle allocated with the channel's hooks; its data
 * points at them by then. */
static void free_handle(uv_handle_t *h)
{
    orpc__mem_free(h->data, h);
}

static void backoff_done(uv_timer_t *t)
{
    subchannel *sub = t->data;
    sub->backing_off = 0;
    if (sub->waiting && !sub->connecting && !sub->ch->stopping)
        orpc__sub_connect(sub); /* wait_for_ready calls are waiting */
    else if (!sub->connecting)
        orpc__ch_set_state(sub->ch,
                           ORPC_CHANNEL_IDLE); /* the next call dials */
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
    orpc__ch_set_state(ch, ORPC_CHANNEL_TRANSIENT_FAILURE);
    uv_timer_start(&sub->backoff_timer, backoff_done, due > now ? due - now : 0,
                   0);
    orpc__ch_log(ch, ORPC_LOG_INFO,
                 "connect failed: %s; next attempt in %lld ms", why,
                 (long long)(due > now ? due - now : 0));
    orpc__sub_fail_waiting(sub, why);
}

static void cconn_closed(orpc__conn *conn, const char *reason, void *ud)
{
    cconn *cc = ud;
    subchannel *sub = cc->sub;
    int attempt_failed = sub->conn == conn && !cc->established;
    if (sub->conn == conn)
        sub->conn = NULL;
    if (cc->keepalive) {
        cc->keepalive->data = &sub->ch->mem;
        uv_close((uv_handle_t *)cc->keepalive, free_handle);
    }
    while (cc->calls) {
        orpc_call *c = cc->calls;
        c->stream_open = 0;
        c->conn = NULL;
        if (c->io_finished)
            orpc__call_io_release(c, NULL);
        else
            orpc__call_complete(
                c, orpc__status_errorf_mem(&sub->ch->mem, ORPC_UNAVAILABLE,
                                           "connection lost: %s", reason));
    }
    orpc__ch_log(sub->ch, ORPC_LOG_DEBUG, "connection closed: %s", reason);
    orpc__mem_free(&sub->ch->mem, cc);
    if (sub->ch->stopping || sub->connecting || sub->conn != NULL)
        return;
    if (attempt_failed) /* e.g. a TLS handshake that failed */
        connect_failed(sub, reason);
    else if (sub->waiting && !sub->backing_off)
        orpc__sub_connect(sub);
    else if (!sub->backing_off)
        orpc__ch_set_state(sub->ch, ORPC_CHANNEL_IDLE);
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
    /* (what orpc_channel_peer_identity() answers; without memory for it,
     * "none": the connection's own check above is done already) */
    char *id = orpc__mem_strdup(&ch->mem, conn->peer_identity);
    uv_mutex_lock(&ch->lock);
    orpc__mem_free(&ch->mem, ch->peer_identity);
    ch->peer_identity = id;
    uv_mutex_unlock(&ch->lock);
    return 0;
}

static const orpc__conn_hooks cconn_hooks = {cconn_handshake, cconn_closed};

static void try_next_addr(subchannel *sub);

/* A connect to one address failed: the next address, or, when none is
 * left, the subchannel's failure with |why|. */
static void next_addr_or_fail(subchannel *sub, const char *why)
{
    if (sub->next_addr) {
        try_next_addr(sub);
        return;
    }
    if (sub->addrs) {
        uv_freeaddrinfo(sub->addrs);
        sub->addrs = NULL;
    }
    connect_failed(sub, why);
}

static void connect_timeout(uv_timer_t *t)
{
    subchannel *sub = t->data;
    if (sub->dialing == NULL)
        return;
    /* uv_cancel() cancels no connect (only thread-pool requests): closing
     * the socket does, completing it with ECANCELED, which
     * orpc__sub_on_connected reports as a timeout (and frees). */
    sub->dialing->h.handle.data = sub->dialing;
    uv_close(&sub->dialing->h.handle, orpc__sub_pending_conn_closed);
}

void orpc__sub_pending_conn_closed(uv_handle_t *h)
{
    orpc__conn *conn = h->data;
    orpc__mem_free(conn->mem, conn);
}

void orpc__sub_on_connected(uv_connect_t *req, int status)
{
    orpc__conn *conn = req->data;
    subchannel *sub = ((cconn *)conn->user_data)->sub;
    orpc_channel *ch = sub->ch;
    sub->dialing = NULL;
    uv_timer_stop(&sub->connect_timer);
    if (status != 0 || ch->stopping) {
        orpc__mem_free(&ch->mem, conn->user_data);
        conn->user_data = NULL;
        conn->h.handle.data = conn;
        /* orpc__ch_io_stop() may have closed it already to cancel the
         * connect (that is how this callback came with ECANCELED) */
        if (!uv_is_closing(&conn->h.handle))
            uv_close(&conn->h.handle, orpc__sub_pending_conn_closed);
        if (ch->stopping) {
            sub->connecting = 0;
            orpc__sub_fail_waiting(sub, "channel closed");
            return;
        }
        orpc__ch_log(ch, ORPC_LOG_DEBUG, "connect failed: %s",
                     uv_strerror(status));
        next_addr_or_fail(sub, status == UV_ECANCELED ? "connect timed out"
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
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
         (uint32_t)ch->opts.max_header_list_size},
    };
    if (orpc__conn_start(conn, ch->ssl_ctx, 0, ch->server_name, ch->cbs,
                         ch->h2opt) != 0 ||
        nghttp2_submit_settings(conn->session, NGHTTP2_FLAG_NONE, iv, 3) != 0) {
        /* (out of memory, mostly) a failed attempt, as a refused connect
         * is: backoff, and the waiting calls hear why */
        orpc__conn_close(conn, "cannot start connection");
        connect_failed(sub, "cannot start connection");
        return;
    }
    nghttp2_session_set_local_window_size(conn->session, NGHTTP2_FLAG_NONE, 0,
                                          8 * WINDOW);
    sub->conn = conn;
    orpc_call *w = sub->waiting;
    sub->waiting = NULL;
    /* orpc__call_submit in arrival order: the list is newest first */
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
        orpc__call_submit(rev, conn);
        rev = n;
    }
}

static orpc__conn *new_conn(subchannel *sub, int is_pipe)
{
    const orpc_mem *mem = &sub->ch->mem;
    orpc__conn *conn = orpc__mem_malloc(mem, sizeof(*conn));
    cconn *cc = orpc__mem_calloc(mem, 1, sizeof(*cc));
    if (conn == NULL || cc == NULL ||
        orpc__conn_init(conn, mem, &sub->ch->io, is_pipe, &cconn_hooks, cc) !=
            0) {
        orpc__mem_free(mem, conn);
        orpc__mem_free(mem, cc);
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
    if (uv_tcp_connect(&sub->creq, &conn->h.tcp, a->ai_addr,
                       orpc__sub_on_connected) == 0) {
        sub->dialing = conn;
    } else {
        orpc__mem_free(&sub->ch->mem, conn->user_data);
        uv_close(&conn->h.handle, orpc__sub_pending_conn_closed);
        conn->h.handle.data = conn;
        next_addr_or_fail(sub, "connect failed");
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
            orpc__sub_fail_waiting(sub, "channel closed");
            return;
        }
        connect_failed(sub, status ? uv_strerror(status) : "no address");
        return;
    }
    sub->addrs = res;
    sub->next_addr = res;
    try_next_addr(sub);
}

void orpc__sub_connect(subchannel *sub)
{
    orpc_channel *ch = sub->ch;
    sub->connecting = 1;
    sub->attempt_ms = uv_now(&ch->io.loop);
    orpc__ch_set_state(ch, ORPC_CHANNEL_CONNECTING);
    if (ch->unix_path) {
        orpc__conn *conn = new_conn(sub, 1);
        if (conn == NULL) {
            connect_failed(sub, "out of memory");
            return;
        }
        sub->creq.data = conn;
        sub->dialing = conn;
        uv_pipe_connect(&sub->creq, &conn->h.pipe, ch->unix_path,
                        orpc__sub_on_connected);
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
