/*
 * server_conn.c — the server's accepted connections: the connection limit
 * (checked before TLS costs anything), starting TLS and HTTP/2 with the
 * server's SETTINGS, one timer per connection for the handshake deadline
 * and keepalive pings, gRPC's ping policing, and what a lost connection
 * does to its calls.
 *
 * A connection belongs to the IO thread that accepted it.
 */
#include "server_internal.h"

#include <stdlib.h>

#include <orpc/error.h>

#include "common/mem.h"

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
    case ORPC__SC_H1:
        orpc__h1_timer(sc);
        return;
    default:
        orpc__conn_close(sc->conn, "keepalive timeout");
        return;
    }
}

void orpc__sconn_timer_start(orpc__sconn *sc, int64_t ms)
{
    if (sc->timer != NULL)
        uv_timer_start(sc->timer, sconn_timer_fire, (uint64_t)ms, 0);
}

/* The client's SETTINGS (its handshake is done) or a PING ACK: the next
 * keepalive period starts. */
void orpc__sconn_alive(orpc__sconn *sc, int settings)
{
    if (sc->timer == NULL || (settings && sc->phase != ORPC__SC_HANDSHAKE) ||
        (!settings && sc->phase != ORPC__SC_PING))
        return;
    sc->phase = ORPC__SC_IDLE;
    uv_timer_start(sc->timer, sconn_timer_fire,
                   (uint64_t)sc->sio->srv->opts.keepalive_time_ms, 0);
}

/* Close callback of a handle allocated with the server's hooks; its data
 * points at them by then. */
static void free_handle(uv_handle_t *h)
{
    orpc__mem_free(h->data, h);
}

/*
 * gRPC's ping policing: a PING that comes less than min_ping_interval_ms
 * after the previous one, with no HEADERS or DATA sent in between, is a
 * strike; more than max_ping_strikes of them end the connection with
 * GOAWAY ENHANCE_YOUR_CALM "too_many_pings".  Answering a ping costs a
 * write; a flood of them is a cheap way to keep a server busy.
 */
void orpc__sconn_ping_received(orpc__sconn *sc)
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

/* ====================================================================== */
/* connections                                                             */
/* ====================================================================== */

static void sconn_closed(orpc__conn *c, const char *reason, void *user_data)
{
    orpc__sconn *sc = user_data;
    orpc__srv_io *sio = sc->sio;
    (void)c;
    orpc__srv_log(sio->srv, ORPC_LOG_DEBUG, "connection %s closed: %s", c->peer,
                  reason);
    while (sc->calls) {
        orpc_ctx *ctx = sc->calls;
        orpc__ctx_unlink(ctx);
        ctx->stream_closed = 1;
        if (ctx->x != NULL)
            orpc__h2x_closed(ctx); /* (an HTTP/2 exchange's stream) */
        orpc__ctx_cancel(ctx);
        orpc__ctx_settle(ctx,
                         orpc__status_new_mem(&sio->srv->mem, ORPC_CANCELLED,
                                              "connection lost"));
        orpc__ctx_maybe_resume(ctx);
        orpc__ctx_io_release(ctx, NULL);
    }
    orpc__h1_closed(sc);
    if (sc->timer) {
        sc->timer->data = &sio->srv->mem;
        uv_close((uv_handle_t *)sc->timer, free_handle);
    }
    if (sc->prev)
        sc->prev->next = sc->next;
    else
        sio->conns = sc->next;
    if (sc->next)
        sc->next->prev = sc->prev;
    orpc__mem_free(&sio->srv->mem, sc);
    orpc_server *srv = sio->srv;
    uv_mutex_lock(&srv->lock);
    srv->live_conns--;
    uv_cond_broadcast(&srv->cond);
    uv_mutex_unlock(&srv->lock);
}

static const orpc__conn_hooks sconn_hooks = {NULL, sconn_closed};

static void reject(orpc__srv_io *sio, uv_stream_t *l);

static void reject_closed(uv_handle_t *h)
{
    orpc__srv_io *sio = h->data;
    sio->rejecting = 0;
    while (sio->n_reject_wait > 0) {
        uv_stream_t *l = sio->reject_wait[--sio->n_reject_wait];
        if (!uv_is_closing((uv_handle_t *)l)) {
            reject(sio, l);
            return;
        }
    }
}

/* Takes the connection |l| announced and closes it at once: there is no
 * memory for it.  Allocates nothing (sio->reject is the handle), so it
 * cannot fail for want of memory itself; a listener that announces one
 * while |reject| is still closing waits (libuv holds its connection and
 * stops accepting on it until then). */
static void reject(orpc__srv_io *sio, uv_stream_t *l)
{
    if (sio->rejecting) {
        for (int i = 0; i < sio->n_reject_wait; i++)
            if (sio->reject_wait[i] == l)
                return;
        if (sio->n_reject_wait < 2 * ORPC__MAX_LISTENERS)
            sio->reject_wait[sio->n_reject_wait++] = l;
        return;
    }
    int rc = l->type == UV_NAMED_PIPE
                 ? uv_pipe_init(&sio->io.loop, &sio->reject.pipe, 0)
                 : uv_tcp_init(&sio->io.loop, &sio->reject.tcp);
    if (rc != 0)
        return;
    sio->reject.handle.data = sio;
    sio->rejecting = 1;
    (void)uv_accept(l, &sio->reject.stream);
    uv_close(&sio->reject.handle, reject_closed);
}

void orpc__srv_on_connection(uv_stream_t *l, int status)
{
    orpc__srv_io *sio = l->data;
    orpc_server *srv = sio->srv;
    const orpc_mem *mem = &srv->mem;
    if (status < 0)
        return;
    orpc__sconn *sc = orpc__mem_calloc(mem, 1, sizeof(*sc));
    orpc__conn *c = orpc__mem_malloc(mem, sizeof(*c));
    int is_pipe = l->type == UV_NAMED_PIPE;
    if (sc == NULL || c == NULL ||
        orpc__conn_init(c, mem, &sio->io, is_pipe, &sconn_hooks, sc) != 0) {
        orpc__mem_free(mem, sc);
        orpc__mem_free(mem, c);
        orpc__srv_log(srv, ORPC_LOG_WARN, "connection refused: out of memory");
        reject(sio, l);
        return;
    }
    sc->conn = c;
    sc->sio = sio;
    sc->legacy = !is_pipe && sio->tcp_legacy[(uv_tcp_t *)l - sio->tcp];
    if (uv_accept(l, &c->h.stream) != 0) {
        sc->conn = c;
        c->hooks = NULL;
        orpc__conn_close(c, "accept failed");
        orpc__mem_free(mem, sc);
        return;
    }
    uv_mutex_lock(&srv->lock);
    int full = srv->live_conns >= srv->opts.max_connections;
    if (!full)
        srv->live_conns++;
    uv_mutex_unlock(&srv->lock);
    if (full) {
        /* Shed: close at once, before TLS or HTTP/2 cost anything. */
        orpc__srv_log(srv, ORPC_LOG_INFO,
                      "connection refused: max_connections (%u) reached",
                      srv->opts.max_connections);
        c->hooks = NULL;
        orpc__conn_close(c, "too many connections");
        orpc__mem_free(mem, sc);
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
    /* The protocol is not known yet: the first bytes (or ALPN) choose
     * HTTP/2 or HTTP/1.1 (orpc__sconn_sniff()). */
    SSL_CTX *ssl_ctx = sc->legacy ? NULL : orpc__srv_ssl_ctx_get(srv);
    c->in_hook = orpc__sconn_sniff;
    int started = orpc__conn_start(c, ssl_ctx, 1, NULL, NULL, NULL);
    if (ssl_ctx)
        SSL_CTX_free(ssl_ctx); /* the connection's SSL holds its own */
    if (started != 0) {
        orpc__conn_close(c, "cannot start connection");
        return;
    }
    sc->timer = orpc__mem_malloc(mem, sizeof(*sc->timer));
    if (sc->timer != NULL) { /* without it the connection still works */
        uv_timer_init(&sio->io.loop, sc->timer);
        sc->timer->data = sc;
        sc->phase = ORPC__SC_HANDSHAKE;
        uv_timer_start(sc->timer, sconn_timer_fire,
                       (uint64_t)srv->opts.handshake_timeout_ms, 0);
    }
}

int orpc__sconn_start_h2(orpc__sconn *sc)
{
    orpc__conn *c = sc->conn;
    orpc_server *srv = sc->sio->srv;
    if (orpc__conn_start_session(c, 1, srv->cbs, srv->h2opt) != 0) {
        orpc__conn_close(c, "out of memory");
        return -1;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
         srv->opts.max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, ORPC__WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
         (uint32_t)srv->opts.max_header_list_size},
    };
    /* (without its SETTINGS the client would wait for them until its
     * deadline) */
    if (nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, 3) != 0) {
        orpc__conn_close(c, "out of memory");
        return -1;
    }
    nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0,
                                          8 * ORPC__WINDOW);
    orpc__conn_kick(c);
    return 0;
}

/* Connections quiet for a while give back their frame buffer's pages (the
 * largest part of what an idle connection costs); the first frame after
 * that faults a zero page in.  A sweep per IO thread twice a second, not a
 * system call per call that ends: busy connections are never touched. */
void orpc__srv_trim_idle(uv_timer_t *t)
{
    orpc__srv_io *sio = t->data;
    int64_t quiet = orpc__now_ns() - (int64_t)ORPC__TRIM_MS * 1000000;
    for (orpc__sconn *sc = sio->conns; sc != NULL; sc = sc->next)
        if (sc->calls == NULL && sc->conn->last_activity_ns < quiet)
            orpc__conn_trim(sc->conn);
}
