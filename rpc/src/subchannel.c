/*
 * subchannel.c — one address of a channel and its connection: a connection
 * attempt with a timeout, the TLS handshake's identity check, gRPC's
 * connection backoff after failures, keepalive pings on established
 * connections, what a closed connection does to its calls, and the
 * connectivity state the balancer (lb.c) reads.
 *
 * Design notes:
 * - A subchannel keeps at most one connection for new calls (|conn|);
 *   connections it gave up (a GOAWAY came) drain on their own, each
 *   holding a reference, and so does a subchannel the resolver dropped
 *   (orpc__sub_shutdown() sends our own GOAWAY so it ends with its calls).
 * - Each subchannel backs off on its own: a failed address does not delay
 *   the others, and an address that comes back is dialled again when its
 *   timer ends and the policy wants it.
 * - Every event that changes what the policy sees (a connection made,
 *   READY, lost, an attempt failed, a backoff over) ends in
 *   orpc__lb_update().
 *
 * All of it runs on the channel's IO thread.
 */
#include "channel_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <orpc/error.h>

#include "common/mem.h"

static void sub_unref(subchannel *sub)
{
    if (--sub->refs == 0)
        orpc__mem_free(&sub->ch->mem, sub);
}

static void timer_closed(uv_handle_t *h)
{
    sub_unref(h->data);
}

subchannel *orpc__sub_new(orpc_channel *ch, const orpc__addr *addr)
{
    subchannel *sub = orpc__mem_calloc(&ch->mem, 1, sizeof(*sub));
    if (sub == NULL)
        return NULL;
    sub->ch = ch;
    sub->refs = 3; /* the address list's, and one per timer until closed */
    sub->addr = *addr;
    if (addr->sa.ss_family == AF_UNIX)
        snprintf(sub->name, sizeof(sub->name), "unix:%.58s", ch->res.unix_path);
    else
        orpc__addr_name(addr, sub->name, sizeof(sub->name));
    uv_timer_init(&ch->io.loop, &sub->connect_timer);
    sub->connect_timer.data = sub;
    uv_unref((uv_handle_t *)&sub->connect_timer);
    uv_timer_init(&ch->io.loop, &sub->backoff_timer);
    sub->backoff_timer.data = sub;
    uv_unref((uv_handle_t *)&sub->backoff_timer);
    return sub;
}

orpc_channel_state orpc__sub_state(const subchannel *sub)
{
    if (sub->removed)
        return ORPC_CHANNEL_SHUTDOWN;
    if (sub->backing_off)
        return ORPC_CHANNEL_TRANSIENT_FAILURE;
    if (sub->conn != NULL)
        return ((cconn *)sub->conn->user_data)->established
                   ? ORPC_CHANNEL_READY
                   : ORPC_CHANNEL_CONNECTING;
    return sub->connecting ? ORPC_CHANNEL_CONNECTING : ORPC_CHANNEL_IDLE;
}

orpc__conn *orpc__sub_usable(subchannel *sub, int ready)
{
    orpc__conn *c = sub->conn;
    if (c == NULL)
        return NULL;
    /* Going away (a failed TLS handshake sending its alert, nghttp2 out
     * of memory ending the session): new calls go elsewhere.  It stays
     * |conn| until its close, which is on the way, so that cconn_closed()
     * still sees whether it was an attempt that failed (backoff) or a
     * connection lost. */
    if (c->closing || c->close_after_flush || c->session == NULL ||
        !nghttp2_session_want_read(c->session))
        return NULL;
    if (ready && !((cconn *)c->user_data)->established)
        return NULL;
    return c;
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
    sub->backing_off = 0; /* IDLE: the policy dials it if it wants */
    orpc__lb_update(sub->ch);
}

int64_t orpc__backoff_next(orpc_channel *ch, int64_t *backoff_ms)
{
    int64_t initial =
        ch->opts.initial_backoff_ms > 0 ? ch->opts.initial_backoff_ms : 1000;
    int64_t max =
        ch->opts.max_backoff_ms > 0 ? ch->opts.max_backoff_ms : 120000;
    if (max < initial)
        max = initial;
    int64_t b = *backoff_ms == 0 ? initial : *backoff_ms * 8 / 5;
    *backoff_ms = b > max ? max : b;
    ch->rng ^= ch->rng << 13;
    ch->rng ^= ch->rng >> 7;
    ch->rng ^= ch->rng << 17;
    int64_t span = *backoff_ms * 2 / 5; /* -20 % .. +20 % */
    return *backoff_ms - span / 2 +
           (span > 0 ? (int64_t)(ch->rng % (uint64_t)(span + 1)) : 0);
}

/*
 * A connection attempt failed (refused, timed out, or the connection
 * closed before the server's SETTINGS, such as a failed TLS handshake):
 * gRPC's connection backoff (doc/connection-backoff.md).  The next attempt
 * starts INITIAL_BACKOFF after this one started, then ×1.6 each time up to
 * MAX_BACKOFF, each ±20 % jitter; meanwhile the subchannel is in
 * TRANSIENT_FAILURE and the policy uses the others (when every address is
 * backing off, fail-fast calls end UNAVAILABLE at once and wait_for_ready
 * calls wait).  SETTINGS from a server reset it.  Without this a down
 * server gets a connection attempt per call.
 */
static void connect_failed(subchannel *sub, const char *why)
{
    orpc_channel *ch = sub->ch;
    sub->connecting = 0;
    snprintf(sub->last_error, sizeof(sub->last_error), "%s", why);
    snprintf(ch->last_error, sizeof(ch->last_error), "%s: %s", sub->name, why);
    int64_t delay = orpc__backoff_next(ch, &sub->backoff_ms);
    uint64_t due = sub->attempt_ms + (uint64_t)delay;
    uint64_t now = uv_now(&ch->io.loop);
    sub->backing_off = 1;
    uv_timer_start(&sub->backoff_timer, backoff_done, due > now ? due - now : 0,
                   0);
    orpc__ch_log(ch, ORPC_LOG_INFO,
                 "connect to %s failed: %s; next attempt in %lld ms", sub->name,
                 why, (long long)(due > now ? due - now : 0));
    orpc__res_refresh(ch); /* the server may have moved */
    orpc__lb_update(ch);
}

static void cconn_closed(orpc__conn *conn, const char *reason, void *ud)
{
    cconn *cc = ud;
    subchannel *sub = cc->sub;
    orpc_channel *ch = sub->ch;
    int current = sub->conn == conn;
    int attempt_failed = current && !cc->established;
    if (current)
        sub->conn = NULL;
    if (cc->keepalive) {
        cc->keepalive->data = &ch->mem;
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
                c, orpc__status_errorf_mem(&ch->mem, ORPC_UNAVAILABLE,
                                           "connection lost: %s", reason));
    }
    orpc__ch_log(ch, ORPC_LOG_DEBUG, "connection to %s closed: %s", sub->name,
                 reason);
    orpc__mem_free(&ch->mem, cc);
    if (!ch->stopping && !sub->removed) {
        if (attempt_failed) { /* e.g. a TLS handshake that failed */
            connect_failed(sub, reason);
        } else {
            if (current) /* lost while in use: the server may have moved */
                orpc__res_refresh(ch);
            orpc__lb_update(ch);
        }
    }
    sub_unref(sub);
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

void orpc__sub_goaway(cconn *cc)
{
    subchannel *sub = cc->sub;
    cc->goaway = 1;
    if (sub->conn != cc->conn)
        return;
    sub->conn = NULL; /* new calls go to a new connection, or elsewhere */
    if (sub->ch->stopping || sub->removed)
        return;
    orpc__res_refresh(sub->ch); /* a server going away: it may have moved */
    orpc__lb_update(sub->ch);
}

void orpc__sub_established(cconn *cc)
{
    subchannel *sub = cc->sub;
    cc->established = 1; /* a server accepted us: the backoff resets */
    sub->backoff_ms = 0;
    if (sub->conn == cc->conn && !sub->removed && !sub->ch->stopping)
        orpc__lb_update(sub->ch); /* READY */
}

/* A connection that never got a session: its cconn goes (and with it the
 * subchannel reference) and its handle closes. */
static void drop_pending(orpc__conn *conn)
{
    cconn *cc = conn->user_data;
    subchannel *sub = cc->sub;
    orpc__mem_free(&sub->ch->mem, cc);
    conn->user_data = NULL;
    conn->h.handle.data = conn;
    /* orpc__sub_shutdown() or the connect timeout may have closed it
     * already to cancel the connect (that is how ECANCELED came) */
    if (!uv_is_closing(&conn->h.handle))
        uv_close(&conn->h.handle, orpc__sub_pending_conn_closed);
    sub_unref(sub);
}

static void connect_timeout(uv_timer_t *t)
{
    subchannel *sub = t->data;
    if (sub->dialing == NULL || uv_is_closing(&sub->dialing->h.handle))
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
    if (status != 0 || ch->stopping || sub->removed) {
        sub->connecting = 0;
        sub->refs++; /* (drop_pending lets go of the connection's) */
        drop_pending(conn);
        if (!ch->stopping && !sub->removed) {
            uv_timer_stop(&sub->connect_timer);
            orpc__ch_log(ch, ORPC_LOG_DEBUG, "connect to %s failed: %s",
                         sub->name, uv_strerror(status));
            connect_failed(sub, status == UV_ECANCELED ? "connect timed out"
                                                       : uv_strerror(status));
        }
        sub_unref(sub);
        return;
    }
    uv_timer_stop(&sub->connect_timer);
    sub->connecting = 0;
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
    orpc__lb_update(ch); /* pick_first sends the waiting calls now */
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
    sub->refs++; /* the connection's, until its cconn goes */
    return conn;
}

void orpc__sub_connect(subchannel *sub)
{
    orpc_channel *ch = sub->ch;
    if (sub->removed || ch->stopping || sub->connecting || sub->conn != NULL ||
        sub->backing_off)
        return;
    sub->connecting = 1;
    sub->attempt_ms = uv_now(&ch->io.loop);
    int is_pipe = sub->addr.sa.ss_family == AF_UNIX;
    orpc__conn *conn = new_conn(sub, is_pipe);
    if (conn == NULL) {
        connect_failed(sub, "out of memory");
        return;
    }
    sub->creq.data = conn;
    if (is_pipe) {
        uv_pipe_connect(&sub->creq, &conn->h.pipe, ch->res.unix_path,
                        orpc__sub_on_connected);
    } else {
        int rc = uv_tcp_connect(&sub->creq, &conn->h.tcp,
                                (const struct sockaddr *)&sub->addr.sa,
                                orpc__sub_on_connected);
        if (rc != 0) {
            sub->refs++;
            drop_pending(conn);
            connect_failed(sub, uv_strerror(rc));
            sub_unref(sub);
            return;
        }
    }
    sub->dialing = conn;
    int64_t t = ch->opts.connect_timeout_ms;
    uv_timer_start(&sub->connect_timer, connect_timeout,
                   (uint64_t)(t > 0 ? t : 20000), 0);
}

void orpc__sub_shutdown(subchannel *sub, const char *why, int now)
{
    sub->removed = 1;
    sub->backing_off = 0;
    uv_timer_stop(&sub->connect_timer);
    uv_close((uv_handle_t *)&sub->connect_timer, timer_closed);
    uv_timer_stop(&sub->backoff_timer);
    uv_close((uv_handle_t *)&sub->backoff_timer, timer_closed);
    /* An attempt under way ends now, not when the kernel gives up on a
     * SYN nobody answers (minutes): closing the socket completes the
     * connect with ECANCELED (orpc__sub_on_connected frees it). */
    if (sub->dialing != NULL && !uv_is_closing(&sub->dialing->h.handle)) {
        sub->dialing->h.handle.data = sub->dialing;
        uv_close(&sub->dialing->h.handle, orpc__sub_pending_conn_closed);
    }
    orpc__conn *c = sub->conn;
    sub->conn = NULL;
    if (c != NULL) {
        cconn *cc = c->user_data;
        if (now || cc->calls == NULL || c->session == NULL) {
            orpc__conn_close(c, why);
        } else if (nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE, 0,
                                         NGHTTP2_NO_ERROR, NULL, 0) == 0) {
            orpc__conn_kick(c); /* ends once its calls have */
        } else {
            orpc__conn_close(c, why);
        }
    }
    sub_unref(sub); /* the address list's */
}
