/*
 * server_internal.h — the server's objects (internal).
 */
#ifndef ORPC_SERVER_INTERNAL_H
#define ORPC_SERVER_INTERNAL_H

#include <orpc/server.h>

#include "conn.h"
#include "grpc.h"
#include "io.h"
#include "pool.h"
#include "stream.h"

typedef struct orpc__svc_entry {
    const orpc_service_desc *desc;
    const orpc_method_handler *handlers;
    const void *impl;
    void *user_data;
    int nonblocking;
} orpc__svc_entry;

typedef struct orpc__sconn orpc__sconn;
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
    int req_gzip;
    int bad_encoding;
    int accept_gzip;
    size_t header_bytes;
    int headers_too_big;
    int bad_metadata;
    int bad_timeout;

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

    orpc__task task;
    orpc__job job;
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
};

#define ORPC__SC_HANDSHAKE 0
#define ORPC__SC_IDLE 1
#define ORPC__SC_PING 2

#define ORPC__MAX_LISTENERS 16

struct orpc__srv_io {
    orpc__io io;
    orpc_server *srv;
    uv_tcp_t tcp[ORPC__MAX_LISTENERS];
    uv_pipe_t pipe[ORPC__MAX_LISTENERS];
    int n_tcp, n_pipe;
    orpc__sconn *conns;
    orpc__task shutdown_task;
    orpc__task kill_task;
    uv_timer_t grace_timer;
};

#endif
