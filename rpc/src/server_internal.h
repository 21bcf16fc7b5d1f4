/*
 * server_internal.h — the server's objects (internal).
 */
#ifndef ORPC_SERVER_INTERNAL_H
#define ORPC_SERVER_INTERNAL_H

#include <orpc/gateway.h>
#include <orpc/server.h>

#include "common/pool.h"
#include "conn.h"
#include "grpc.h"
#include "intercept.h"
#include "io.h"
#include "stream.h"

#include <stdatomic.h>

#include "authz.h"

typedef struct orpc__svc_entry {
    const orpc_service_desc *desc;
    const orpc_method_handler *handlers;
    const void *impl;
    void *user_data;
    int nonblocking;
} orpc__svc_entry;

typedef struct orpc__sconn orpc__sconn;

/* One request header of an HTTP/2 stream kept for a gateway (in the
 * call's arena). */
typedef struct orpc__rawhdr {
    struct orpc__rawhdr *next;
    char *name; /* lower-case, as HTTP/2 sends it */
    char *value;
    size_t len;
} orpc__rawhdr;
typedef struct orpc__srv_io orpc__srv_io;

struct orpc_ctx {
    orpc_server *srv;
    orpc__sconn *sc; /* NULL once the connection is gone (IO thread) */
    orpc__srv_io *sio;
    int32_t stream_id;
    struct orpc_ctx *prev, *next; /* in sc->calls */

    const orpc__svc_entry *svc;
    const orpc_method_desc *method;
    orpc_method_handler handler;
    orpc_arena *arena;
    orpc_metadata *md;
    orpc_metadata *resp_headers;
    orpc_metadata *trailers;
    char peer[72];
    char *peer_identity;
    int64_t deadline_ns;

    /* request headers (IO thread) */
    char *path;
    int is_post;
    int content_type_ok;
    int no_memory; /* a header could not be kept: RESOURCE_EXHAUSTED */
    int req_gzip;
    int bad_encoding;
    int accept_gzip;
    size_t header_bytes;
    int headers_too_big;
    int bad_metadata;
    int bad_timeout;
    int prev_attempts; /* grpc-previous-rpc-attempts (gRFC A6) */

    /* IO thread state */
    int dispatched;
    int remote_closed;
    int stream_closed;
    int response_started;
    int io_done; /* trailers submitted or stream reset */
    uv_timer_t timer;
    int timer_started;
    const ProtobufCMessage *request;
    ProtobufCMessage *response;

    /* shared with the handler's thread, under |lock| */
    uv_mutex_t lock;
    uv_cond_t cond;
    orpc__instream in; /* request messages (stream.h) */
    int recv_eos;
    orpc__inmsg *last_read; /* freed at the next read or at the end */
    orpc__sendq sendq;
    int finished; /* final status decided */
    orpc_status status;
    int cancelled;
    orpc_cancel_cb cancel_cb;
    void *cancel_ud;
    int cancel_cb_done;
    int deferred;
    int handler_running;
    int blocking_stream; /* counted in the server's blocking streams */
    int compress_resp;
    int refs;
    int resume_wanted;   /* non-blocking streaming handler: run again */
    int task_ref;        /* |task| is queued and holds a reference */
    int msg_nocompress;  /* orpc_ctx_set_message_compression(ctx, 0) */
    int last_compressed; /* flag of the last request message read */
    void *rt_state;      /* a service of the runtime's own (health.c): its
                            per-call state; the handler's thread */
    char pushback[24];   /* grpc-retry-pushback-ms to send, or "" */

    orpc__task task;
    orpc__job job;
    /* an exchange's call (server_exchange.c: HTTP/1.1, or an HTTP/2
     * stream that is not gRPC), or NULL for gRPC: its response goes to the
     * gateway, not to the gRPC framing */
    struct orpc_http_exchange *x;
    /* a stream's request head as received, for a gateway (IO thread):
     * recorded while it may not be gRPC (no gRPC content-type yet) and
     * only when a gateway is installed */
    struct orpc__rawhdr *raw;
    struct orpc__rawhdr **raw_tail;
    const char *method_name; /* :method ("POST" unless another was sent) */
    /* interceptors (intercept.h): started on the IO thread once the method
     * is known, ended when the status is settled */
    orpc_call_info ci;
};

struct orpc__sconn {
    orpc__conn *conn;
    orpc__srv_io *sio;
    orpc__sconn *prev, *next;
    orpc_ctx *calls;
    int goaway;
    /* one timer, three phases: the handshake deadline until the client's
     * SETTINGS, then the keepalive period, then a PING's ACK deadline */
    uv_timer_t *timer; /* NULL when it could not be allocated */
    int phase;         /* ORPC__SC_HANDSHAKE, _IDLE or _PING */
    /* the client's pings: too many without data between them are strikes */
    uint64_t last_ping_ms; /* loop time of the last one; 0: none yet */
    int sent_data;         /* HEADERS or DATA sent since */
    int ping_strikes;
    /* protocol selection (server_h1.c): the first bytes, until they say */
    uint8_t sniff[24];
    size_t n_sniff;
    int legacy;          /* accepted on a legacy listener: HTTP/1 only */
    struct orpc__h1 *h1; /* HTTP/1.1 state, or NULL */
};

#define ORPC__SC_HANDSHAKE 0
#define ORPC__SC_IDLE 1
#define ORPC__SC_PING 2
#define ORPC__SC_H1 3 /* HTTP/1.1: server_h1.c runs the timer */

#define ORPC__MAX_LISTENERS 16

struct orpc__srv_io {
    orpc__io io;
    orpc_server *srv;
    uv_tcp_t tcp[ORPC__MAX_LISTENERS];
    uv_pipe_t pipe[ORPC__MAX_LISTENERS];
    int n_tcp, n_pipe;
    unsigned char tcp_legacy[ORPC__MAX_LISTENERS]; /* per tcp[]: legacy */
    orpc__sconn *conns;
    /* A connection that finds no memory for its objects is still accepted
     * (libuv stops accepting on a listener until the connection it
     * announced is taken), into |reject|, and closed; listeners that
     * announce one while |reject| is closing wait in |reject_wait|. */
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } reject;
    int rejecting;
    uv_stream_t *reject_wait[2 * ORPC__MAX_LISTENERS];
    int n_reject_wait;
    orpc__task shutdown_task;
    orpc__task kill_task;
    uv_timer_t grace_timer;
    uv_timer_t trim_timer; /* gives idle connections' buffers back */
};

/* ---- the server object (server.c) ---- */

#define ORPC__SENDQ_LIMIT (64u * 1024u)
#define ORPC__DEFAULT_STREAMS 100u
#define ORPC__DEFAULT_MAX_CONNECTIONS 10000u
#define ORPC__DEFAULT_MAX_CALLS 10000u
#define ORPC__DEFAULT_MAX_WORKERS 1024u
#define ORPC__DEFAULT_MAX_QUEUED 1024u
#define ORPC__DEFAULT_MAX_HEALTH_WATCHERS 1024u
#define ORPC__WINDOW (1u << 20)

enum { SRV_NEW, SRV_RUNNING, SRV_STOPPING, SRV_STOPPED };

typedef struct listener {
    int is_pipe;
    int legacy; /* orpc_server_listen_legacy(): cleartext HTTP/1.1 */
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
    orpc_mem mem;          /* everything below, and every call's objects */
    ProtobufCAllocator pb; /* unpacks streamed requests through |mem| */
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
    struct orpc__health *health;  /* NULL with |disable_health| (health.c) */
    struct orpc__reflection *reflection; /* reflection.c; NULL until start */
    orpc__chain chain;                   /* interceptors (intercept.h) */
    orpc_metrics *metrics;     /* the default chain's registry, or NULL */
    struct orpc__admin *admin; /* admin.c; NULL without admin_address */
    const orpc_gateway *gw;    /* orpc_server_set_gateway(), or NULL */
    void *gw_ud;
    atomic_uint h1_pending; /* exchanges waiting for or in on_request */
};

/* ---- server.c ---- */

/* Logs through the application's logger, if any (any thread). */
void orpc__srv_log(orpc_server *s, orpc_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The current policy with a reference, or NULL; give it back with
 * orpc__srv_policy_put() (any thread). */
policy_ref *orpc__srv_policy_get(orpc_server *srv);
void orpc__srv_policy_put(orpc_server *srv, policy_ref *p);
/* The current TLS context with a reference (SSL_CTX_free it), or NULL. */
SSL_CTX *orpc__srv_ssl_ctx_get(orpc_server *srv);
/* The server's memory lives until the application and every call let go. */
void orpc__srv_ref(orpc_server *srv);
void orpc__srv_unref(orpc_server *srv);

/* ---- server_call.c (IO thread unless said) ---- */

/* A call for a new stream on |sc|, listed on the connection. */
orpc_ctx *orpc__ctx_new(orpc__sconn *sc, int32_t stream_id);
/* Takes the call off its connection's list. */
void orpc__ctx_unlink(orpc_ctx *ctx);
/* The IO side lets go (stream closed, or connection lost: |s| NULL). */
void orpc__ctx_io_release(orpc_ctx *ctx, nghttp2_session *s);
/* Marks the call cancelled; runs the cancel callback once. */
void orpc__ctx_cancel(orpc_ctx *ctx);
/* The session of the call's connection, or NULL once it is gone. */
nghttp2_session *orpc__ctx_session(orpc_ctx *ctx);
/* Flushes the call's connection at the end of this turn. */
void orpc__ctx_kick(orpc_ctx *ctx);
/* Records that the response HEADERS went out (under the lock). */
void orpc__ctx_set_started(orpc_ctx *ctx);
/* Submits whatever the call has for the wire now. */
void orpc__ctx_pump(orpc_ctx *ctx);
/* Decides the call's final status, first one wins (any thread; takes
 * |st|). */
void orpc__ctx_settle(orpc_ctx *ctx, orpc_status st);
/* Ends the call now with |code| (before or instead of the handler). */
void orpc__ctx_fail(orpc_ctx *ctx, orpc_code code, const char *msg);
/* Pumps now on the IO thread, or posts a pump from elsewhere (any
 * thread). */
void orpc__ctx_request_pump(orpc_ctx *ctx);
/* The handler's status (and unary response) becomes the call's (any
 * thread; takes |st|). */
void orpc__ctx_complete(orpc_ctx *ctx, orpc_status st);
/* The handler side lets go (any thread). */
void orpc__ctx_handler_release(orpc_ctx *ctx);
/* Runs a deferred non-blocking handler again when its call has news. */
void orpc__ctx_maybe_resume(orpc_ctx *ctx);
/* Starts the handler (once), on the pool or inline; sheds past limits. */
void orpc__ctx_dispatch(orpc_ctx *ctx);
/* Runs a deferred non-blocking handler again on its IO thread, as news of
 * its call would (any thread; a posted task, never inline). */
void orpc__ctx_wake(orpc_ctx *ctx);

/* ---- health.c: the built-in grpc.health.v1.Health ---- */

/* Creates the status table (orpc_server_new()).  0 or ORPC_ENOMEM. */
int orpc__health_new(orpc_server *srv);
/* Registers the service and makes "" and the registered services SERVING
 * unless set already (orpc_server_start(); again after a failed start it
 * does nothing).  0 or ORPC_ENOMEM. */
int orpc__health_start(orpc_server *srv);
/* Every status NOT_SERVING for good; each watcher's call is woken to send
 * it and end (orpc_server_shutdown(), before the IO threads' shutdown
 * tasks are posted, so each watcher's task runs ahead of its thread's). */
void orpc__health_shutdown(orpc_server *srv);
/* Frees the table (the server's last reference: no watcher is left). */
void orpc__health_free(orpc_server *srv);

/* ---- reflection.c: the built-in grpc.reflection.v1{,alpha} ---- */

/* Registers both versions of ServerReflection (those the application has
 * not registered itself) and gathers the registered services' files
 * (orpc_server_start(), after orpc__health_start(); again after a failed
 * start it does nothing).  Nothing with |disable_reflection|.  0 or
 * ORPC_ENOMEM. */
int orpc__reflection_start(orpc_server *srv);
/* Frees the file list (orpc_server_free()). */
void orpc__reflection_free(orpc_server *srv);

/* ---- server_listen.c ---- */

/* Parses "host:port" (an IPv4 or [IPv6] literal, localhost, "*" or an
 * empty host for any, or a name: its first address, a blocking lookup)
 * into |ss|.  0 or -1.  Any thread (the admin listener's too). */
int orpc__parse_hostport(const char *addr, struct sockaddr_storage *ss);

/* ---- server_h2.c ---- */

/* The service and method of |path|: the entry (NULL: no such service),
 * |*method| NULL when the service has no such method. */
const orpc__svc_entry *orpc__srv_find_method(orpc_server *srv, const char *path,
                                             const orpc_method_desc **method,
                                             orpc_method_handler *handler);
/* The checks between a call's request head and its handler, for HTTP/2
 * and HTTP/1.1 alike: method lookup, interceptors' start, the client
 * certificate requirement, the authorization policy (with |identity| as
 * the caller's one URI SAN when not NULL, else the connection's TLS
 * names), the method's handler, the deadline timer.  0 when the call may
 * go on to its handler; -1 when it was ended (orpc__ctx_fail()). */
int orpc__ctx_admit(orpc_ctx *ctx, const char *identity);

/* Creates the callbacks and options every connection's session shares.
 * 0 or -1. */
int orpc__srv_h2_setup(orpc_server *srv);

/* ---- server_conn.c (IO thread) ---- */

/* The client's SETTINGS (|settings|) or a PING ACK: the next keepalive
 * period starts. */
void orpc__sconn_alive(orpc__sconn *sc, int settings);
/* A client's PING: counted against the ping policy. */
void orpc__sconn_ping_received(orpc__sconn *sc);
/* Every ORPC__TRIM_MS: connections without input for that long hand their
 * frame buffer's pages back (orpc__conn_trim()). */
#define ORPC__TRIM_MS 500
void orpc__srv_trim_idle(uv_timer_t *t);
/* libuv's connection callback of every listener. */
void orpc__srv_on_connection(uv_stream_t *l, int status);
/* HTTP/2 chosen (by ALPN or the preface): creates the session, sends the
 * server's SETTINGS.  0 or -1 (the connection is closing). */
int orpc__sconn_start_h2(orpc__sconn *sc);
/* (Re)starts the connection's timer for |ms| in its current phase. */
void orpc__sconn_timer_start(orpc__sconn *sc, int64_t ms);

/* ---- server_h1.c (IO thread unless said) ---- */

/* The plaintext of a server connection until its protocol is known
 * (orpc__conn.in_hook): the HTTP/2 preface, an HTTP/1.x request line, or
 * ALPN on TLS decide. */
int orpc__sconn_sniff(orpc__conn *c, const uint8_t *p, size_t n);
/* The connection's timer fired in phase ORPC__SC_H1. */
void orpc__h1_timer(orpc__sconn *sc);
/* The connection is gone (after its calls were cancelled). */
void orpc__h1_closed(orpc__sconn *sc);
/* The server shuts down: close once the exchange in progress is answered. */
void orpc__h1_shutdown(orpc__sconn *sc);

/* ---- server_exchange.c: an exchange's call (ctx->x set) ---- */

/* The call of an exchange has news for the wire (IO thread). */
void orpc__x_ctx_pump(orpc_ctx *ctx);
/* A unary call's response message, to the gateway (the handler's thread).
 * 0, or nonzero when the gateway could not encode it. */
int orpc__x_ctx_message(orpc_ctx *ctx, const ProtobufCMessage *msg);
/* orpc_ctx_send() of an exchange's streaming call (the handler's thread). */
int orpc__x_ctx_send(orpc_ctx *ctx, const ProtobufCMessage *msg);
/* The call lets go of its exchange (its last reference; any thread). */
void orpc__x_ctx_freed(orpc_ctx *ctx);

/* ---- server_h2x.c: HTTP/2 streams that are not gRPC, given to the
 * gateway (IO thread) ---- */

/* The request head of a stream is complete and it is not gRPC (another
 * content-type, or not POST), a gateway installed: the stream becomes an
 * exchange (ctx->x set), or is answered at once (a limit crossed). */
void orpc__h2x_begin(orpc_ctx *ctx);
/* Request body bytes of an exchange's stream. */
void orpc__h2x_data(orpc_ctx *ctx, nghttp2_session *s, int32_t id,
                    const uint8_t *data, size_t len);
/* The request of an exchange's stream is complete (END_STREAM). */
void orpc__h2x_request_end(orpc_ctx *ctx);
/* The exchange's stream is closed or its connection lost: the exchange no
 * longer writes. */
void orpc__h2x_closed(orpc_ctx *ctx);

#endif
