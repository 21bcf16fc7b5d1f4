/*
 * channel_internal.h — the client's objects (internal): the channel, its
 * subchannel and connections, and the call; and the functions the files of
 * the client (channel.c, subchannel.c, channel_h2.c, call.c) share.
 *
 * Threads: fields of a call marked "IO thread" belong to the channel's IO
 * thread; those marked "shared" are guarded by call->lock.  Subchannels and
 * connections belong to the IO thread.
 */
#ifndef ORPC_CHANNEL_INTERNAL_H
#define ORPC_CHANNEL_INTERNAL_H

#include <orpc/channel.h>

#include "conn.h"
#include "grpc.h"
#include "io.h"
#include "retry.h"
#include "service_config.h"
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
    size_t max_send;        /* request message limit (0: none) */
    size_t max_recv;        /* response message limit */
    orpc__retry_call retry; /* retry.h */

    /* IO thread */
    subchannel *sub;
    orpc__conn *conn;
    cconn *cc; /* the connection's list the call is on (listed == 2) */
    int32_t stream_id;
    struct orpc_call *next_io, *prev_io; /* on the list |listed| says */
    int listed; /* 1 waiting, 2 on a connection, 3 retry backoff */
    int resp_gzip;
    size_t header_bytes; /* of the header block being received */
    int headers_too_big;
    int retried;    /* the one transparent retry gRFC A6 allows is used */
    int reset_sent; /* this attempt's stream was reset */
    int http_status;
    int in_trailers;
    int got_status;
    int status_code;
    orpc__buf status_msg;
    orpc__buf status_details;
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
    int send_waiting;  /* senders blocked for room in |sendq| */
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

    /* asynchronous streaming calls (orpc_channel_call_start_async) */
    int is_async;             /* set before the call is posted */
    orpc_call_callbacks acbs; /* copied before the call is posted */
    int recv_paused;          /* shared: orpc_call_pause_recv() */
    int want_ready;           /* shared: a send returned ORPC_EAGAIN */
    int ready_due;            /* shared: on_ready is to run from the task */
    int delivering;           /* IO thread: orpc__call_deliver() runs */
    int async_over;           /* IO thread: on_done has run */
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
    /* The hooks of the channel, its strings, connections (and their
     * sessions) and calls.  Response messages and statuses handed to the
     * application are libc's: the application frees them. */
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
    /* opts.service_config, parsed (NULL: none); orpc__svc_config_lb() is
     * the load-balancing choice it makes */
    orpc__svc_config *svc_config;
    orpc__retry_chan retry; /* retry.h */
    int retry_ready;        /* |retry| is initialised */
};

/* ---- channel.c ---- */

/* Records the connectivity state (kept at SHUTDOWN once there). */
void orpc__ch_set_state(orpc_channel *ch, orpc_channel_state st);
/* Logs through the application's logger, if any. */
void orpc__ch_log(orpc_channel *ch, orpc_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The IO thread is stopping: fail waiting calls, close connections, cancel
 * a connect or resolution in progress. */
void orpc__ch_io_stop(orpc__io *io, void *ud);
/* orpc_channel_get_state(try_to_connect): dials an idle channel. */
void orpc__ch_connect_task(orpc__task *t, void *arg);
/* Frees the channel (the last of the application and its calls). */
void orpc__ch_destroy(orpc_channel *ch);

/* ---- subchannel.c (IO thread) ---- */

/* Completes (UNAVAILABLE, |why|) the calls waiting for a connection, but
 * wait_for_ready ones while the channel lives. */
void orpc__sub_fail_waiting(subchannel *sub, const char *why);
/* Keepalive timer of a connection; and a PING ACK that rearms it. */
void orpc__sub_keepalive_fire(uv_timer_t *t);
void orpc__sub_keepalive_acked(cconn *cc);
/* Close callback of a connection that never got a session. */
void orpc__sub_pending_conn_closed(uv_handle_t *h);
/* libuv's connect callback. */
void orpc__sub_on_connected(uv_connect_t *req, int status);
/* Starts a connection attempt (resolution first for host targets). */
void orpc__sub_connect(subchannel *sub);

/* ---- channel_h2.c ---- */

/* Creates the callbacks and options every connection's session shares.
 * 0 or -1. */
int orpc__ch_h2_setup(orpc_channel *ch);

/* ---- call.c (IO thread) ---- */

/* Takes the call off the list it is on (waiting, a connection's, or the
 * channel's retry backoff list). */
void orpc__call_unlist(orpc_call *c);
/* The IO side lets go, once nghttp2 has forgotten the stream (|s|: its
 * session, for credit still held; NULL when the connection is gone). */
void orpc__call_io_release(orpc_call *c, nghttp2_session *s);
/* The call is over with |st| (first one wins; takes |st|). */
void orpc__call_complete(orpc_call *c, orpc_status st);
/* Resets the call's open stream (RST_STREAM CANCEL); without memory for
 * that, closes the connection. */
void orpc__call_reset(orpc_call *c);
/* Resets the stream if open, then completes with |code|. */
void orpc__call_fail(orpc_call *c, orpc_code code, const char *msg);
/* Opens the call's stream on |conn|. */
void orpc__call_submit(orpc_call *c, orpc__conn *conn);
/* Submits the call, or queues it until a connection is ready. */
void orpc__call_enqueue(orpc_call *c);
/* Starts (or restarts) the call's one timer: the deadline, or a retry
 * backoff (orpc_call.retry.pending) that ends before it. */
void orpc__call_timer_arm(orpc_call *c, uint64_t ms);
/* An asynchronous call: hands queued messages to on_message (unless
 * paused), then on_done once the call is over; re-entry is a no-op. */
void orpc__call_deliver(orpc_call *c);

#endif /* ORPC_CHANNEL_INTERNAL_H */
