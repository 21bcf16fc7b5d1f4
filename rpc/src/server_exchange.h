/*
 * server_exchange.h — the exchange of orpc/gateway.h (one non-gRPC HTTP
 * request answered through a gateway), shared by its two transports
 * (internal): HTTP/1.1 (server_h1.c) and an HTTP/2 stream whose request is
 * not gRPC (server_h2x.c).  server_exchange.c holds the part that does not
 * care which: references, running on_request, the call, and the public
 * orpc_http_* functions.
 *
 * Threads: as orpc/gateway.h says for the public part; the orpc__x_*
 * functions below run on the exchange's IO thread unless said.
 */
#ifndef ORPC_SERVER_EXCHANGE_H
#define ORPC_SERVER_EXCHANGE_H

#include "server_internal.h"

#include <stdatomic.h>

#include "common/buf.h"

struct orpc__h1;

struct orpc_http_exchange {
    orpc_server *srv;
    orpc__srv_io *sio;
    /* IO thread: the connection while its transport still wants the
     * answer; NULL once answered (HTTP/1.1), the stream closed (HTTP/2) or
     * the connection lost */
    orpc__sconn *sc;
    struct orpc__h1 *h1; /* HTTP/1.1 only: the connection's parser state */
    int http2;           /* 1: an HTTP/2 stream (server_h2x.c) */
    orpc_arena *arena;
    char *method;
    char *target;
    orpc_metadata *headers;
    orpc__buf body;
    int minor; /* HTTP/1.minor */
    int keep_alive;
    int head_only;
    char peer[72];
    char *peer_identity;
    void *state;
    /* the answer (cb_lock) */
    uv_mutex_t cb_lock;
    int status;
    orpc__buf resp_head; /* "Name: value\r\n" lines */
    orpc__buf resp_body;
    char *resp_ctype;
    int responded;
    int call_pending;
    int in_request; /* on_request is running */
    char *call_path;
    const ProtobufCMessage *call_req;
    int64_t call_timeout_ms;
    char *call_identity;
    orpc_metadata *call_md;
    char *stream_ctype;
    atomic_int started;
    /* IO thread */
    int ready; /* the answer is complete: write it */
    /* the call: HTTP/1.1, while it runs; HTTP/2, the stream's own orpc_ctx
     * (which becomes the call) until the stream closes */
    orpc_ctx *ctx;
    int call_started; /* start_call() gave the call its method */
    int chunked;      /* a streaming answer's head went out chunked */
    int sealed;       /* cb_lock: on_status ran; late messages are dropped */
    int to_gateway;   /* given to on_request: on_done is owed */
    /* HTTP/2 (server_h2x.c, IO thread) */
    int h2_submitted;   /* the response HEADERS are submitted */
    int h2_early;       /* answered before the request was whole (413) */
    size_t h2_dropped;  /* request bytes dropped after the early answer */
    int h2_reset;       /* ... and the stream reset for them */
    size_t h2_counted;  /* body bytes counted in the connection's buffer */
    orpc__buf h2_tail;  /* the sealed body, read by the data provider */
    size_t h2_tail_off; /* how much of it is sent */
    /* references (lock) */
    uv_mutex_t lock;
    int refs;
    orpc__task task;
    orpc__job job;
};

/* ---- server_exchange.c ---- */

/* A new exchange of a request arriving on |sc|, with the IO side's
 * reference; NULL without memory. */
orpc_http_exchange *orpc__x_new(orpc__sconn *sc);
/* Takes a reference (any thread). */
void orpc__x_ref(orpc_http_exchange *x);
/* Drops a reference (any thread); the last one posts on_done to the IO
 * thread and frees the exchange. */
void orpc__x_unref(orpc_http_exchange *x);
/* Replaces the answer with |status| and {"detail": |detail|} (|detail| is
 * the runtime's own text, with nothing to escape). */
void orpc__x_error(orpc_http_exchange *x, int status, const char *detail);
/* A complete request (x->sc set), a gateway installed: on_request inline
 * first when the gateway asks, else (or then) on a worker; its answer or
 * call follows (orpc__x_wake()). */
void orpc__x_dispatch(orpc_http_exchange *x);
/* The exchange has something new for its transport to write (its answer
 * is ready, or its call has news). */
void orpc__x_wake(orpc_http_exchange *x);
/* Nonzero when |ch| may be part of an HTTP token (a method, a header
 * name); any thread. */
int orpc__x_tchar(uint8_t ch);

/* ---- server_h2x.c (IO thread) ---- */

/* The response side of an HTTP/2 exchange: submits its head, resumes its
 * data, or runs on_status once its call is settled. */
void orpc__h2x_pump(orpc_http_exchange *x);

#endif /* ORPC_SERVER_EXCHANGE_H */
