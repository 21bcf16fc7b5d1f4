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
#include "intercept.h"
#include "io.h"
#include "metrics_internal.h"
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
    orpc_call_reach *reached_out; /* the caller's, written at completion */
    size_t max_send;              /* request message limit (0: none) */
    size_t max_recv;              /* response message limit */
    orpc__retry_call retry;       /* retry.h */

    /* IO thread */
    orpc__conn *conn;
    cconn *cc; /* the connection's list the call is on (listed == 2) */
    int32_t stream_id;
    struct orpc_call *next_io, *prev_io; /* on the list |listed| says */
    int listed; /* 1 ch->waiting, 2 on a connection, 3 retry backoff */
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
    orpc_call_reach reach;     /* how far this attempt got (IO thread) */
    orpc_call_reach reach_max; /* ... and the furthest of all attempts */
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

    /* interceptors (intercept.h): set up and started on the caller's
     * thread before the call is posted; ended in orpc__call_complete() */
    orpc_call_info ci;
    orpc_code refused;       /* an interceptor refused the call ... */
    const char *refused_why; /* ... saying this (static) */
};

/* One address a target resolved to: IPv4 or IPv6 (with its port), or
 * AF_UNIX for the channel's unix: path (kept in the resolver). */
typedef struct orpc__addr {
    struct sockaddr_storage sa;
} orpc__addr;

/*
 * One address and its connection (subchannel.c).  Its state is derived
 * (orpc__sub_state): TRANSIENT_FAILURE while backing off, READY once the
 * server's SETTINGS came on |conn|, CONNECTING while dialing or waiting
 * for them, IDLE otherwise.  Reference-counted: the channel's address list,
 * each of its connections (cconn) and its two timers until closed hold
 * one, so a subchannel dropped from the list lives until its last
 * connection has drained.
 */
struct subchannel {
    orpc_channel *ch;
    int refs;
    int removed; /* no longer in the channel's address list */
    orpc__addr addr;
    char name[64];    /* "127.0.0.2:50051", "[::1]:50051", "unix:/p" */
    orpc__conn *conn; /* the connection new calls go to, or NULL */
    int connecting;
    uv_connect_t creq;
    orpc__conn *dialing; /* the connection |creq| is connecting, or NULL */
    uv_timer_t connect_timer;
    /* gRPC's connection backoff (see connect_failed()) */
    uv_timer_t backoff_timer;
    int backing_off;     /* no attempt until the timer fires */
    int64_t backoff_ms;  /* the last backoff; 0: none since the last success */
    uint64_t attempt_ms; /* when the current attempt started (loop time) */
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

typedef enum orpc__target_kind {
    ORPC__TARGET_DNS,  /* host:port, dns:///host:port: getaddrinfo */
    ORPC__TARGET_IP,   /* ipv4:a:p,b:p  ipv6:[a]:p,[b]:p: fixed */
    ORPC__TARGET_UNIX, /* unix:/path */
} orpc__target_kind;

/* The target and its resolution (resolver.c). */
typedef struct orpc__resolver {
    orpc__target_kind kind;
    char *host, *port; /* DNS */
    char *unix_path;   /* UNIX */
    orpc__addr *fixed; /* IP: the addresses, in order */
    size_t n_fixed;
    /* IO thread */
    uv_getaddrinfo_t gai;
    int resolving;    /* |gai| pending, or an override answer due */
    uv_timer_t timer; /* backoff, a re-resolution due, an override */
    int timer_for;    /* what |timer| runs for (resolver.c) */
    int backing_off;  /* no address yet; the next try waits */
    int64_t backoff_ms;
    uint64_t attempt_ms;
    uint64_t last_ms; /* when the last resolution started */
    int resolved;     /* one has completed */
    int again;        /* a re-resolution was asked for meanwhile */
    char last_error[160];
    /* |ch->lock| (resolver_seam.h) */
    char *override;          /* "a,b,c": answers replacing DNS, or NULL */
    int64_t min_interval_ms; /* between re-resolutions; 0 for 30 s */
    unsigned resolutions;    /* completed (answers delivered) */
} orpc__resolver;

typedef enum orpc__lb_kind {
    ORPC__LB_PICK_FIRST = 0,
    ORPC__LB_ROUND_ROBIN = 1,
} orpc__lb_kind;

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
    char *authority;
    char *server_name;
    char *expected_spiffe;
    char *user_agent;
    char *peer_identity; /* last connection's server identity */
    SSL_CTX *ssl_ctx;
    int is_tls;
    orpc__io io;
    orpc__resolver res;
    /* load balancing (lb.c; IO thread, but |lb_kind| is set before the
     * IO thread starts) */
    orpc__lb_kind lb_kind;
    subchannel **subs; /* the resolved addresses, in the resolver's order */
    size_t n_subs;
    subchannel *pf_selected; /* pick_first: the subchannel calls go to */
    size_t rr_next;          /* round_robin: where the next pick starts */
    int lb_active; /* connect without a call waiting: round_robin always once
                      started, pick_first for orpc_channel_get_state() */
    int lb_busy, lb_again; /* orpc__lb_update() runs / is to run again */
    orpc_call *waiting;    /* calls waiting for a subchannel, newest first */
    char last_error[200];  /* the last failure, "address: why" */
    uint64_t rng;          /* backoff jitter (xorshift64) */
    nghttp2_session_callbacks *cbs;
    nghttp2_option *h2opt;
    int stopping;
    orpc_channel_state state; /* |lock|; written on the IO thread */
    orpc__task connect_task;  /* orpc_channel_get_state(try_to_connect) */
    /* opts.service_config, parsed (NULL: none); orpc__svc_config_lb() is
     * the load-balancing choice it makes */
    orpc__svc_config *svc_config;
    orpc__retry_chan retry;       /* retry.h */
    int retry_ready;              /* |retry| is initialised */
    char *target;                 /* as given, for logs and metrics */
    orpc_metrics *metrics;        /* the default chain's registry, or NULL */
    orpc__chan_counters counters; /* for it (metrics_internal.h) */
    int counters_attached;
    int was_ready; /* |lock|: READY once already (a later READY reconnects) */
    orpc__chain chain; /* interceptors (intercept.h) */
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
/* Chooses the load-balancing policy by name ("pick_first",
 * "round_robin"; NULL or "" for pick_first): 0, or ORPC_ECONFIG with |why|
 * naming it.  For the service config: before the channel's first call
 * (orpc_channel_new), or on its IO thread. */
int orpc__ch_set_lb_policy(orpc_channel *ch, const char *name, char *why,
                           size_t whylen);

/* ---- resolver.c ---- */

/* Parses |target| into ch->res, with the default :authority and TLS server
 * name in |*authority| and |*host| (allocated with ch->mem).  0,
 * ORPC_EADDR with |why| saying what is wrong with it, or ORPC_ENOMEM. */
int orpc__res_parse(orpc_channel *ch, const char *target, char **authority,
                    char **host, char *why, size_t whylen);
/* Initialises the resolver's timer on the channel's loop. */
void orpc__res_init(orpc_channel *ch);
/* IO thread: resolves the target now if it never was (the first call), or
 * again after a failure's backoff; the answer goes to orpc__lb_set_addrs().
 * A no-op while resolving or backing off. */
void orpc__res_start(orpc_channel *ch);
/* IO thread: a connection was lost or an attempt failed; DNS targets
 * resolve again, at most once per 30 s (later, when sooner). */
void orpc__res_refresh(orpc_channel *ch);
/* IO thread: cancels a resolution, closes the timer (channel closing). */
void orpc__res_stop(orpc_channel *ch);
/* Frees what orpc__res_parse() made. */
void orpc__res_free(orpc_channel *ch);
/* Equal addresses (family, address, port). */
int orpc__addr_equal(const orpc__addr *a, const orpc__addr *b);
/* "127.0.0.2:50051", "[::1]:50051"; "unix:" for AF_UNIX. */
void orpc__addr_name(const orpc__addr *a, char *buf, size_t len);

/* ---- lb.c (IO thread) ---- */

/* A call to place: onto a subchannel the policy picks, else waiting for
 * one (the first call resolves the target), else, when every address is
 * backing off and the call does not wait for ready, UNAVAILABLE. */
void orpc__lb_enqueue(orpc_call *c);
/* Something changed (a subchannel's connection or state, the addresses,
 * a backoff ended): the policy connects what it wants connected, waiting
 * calls go where they now can (or fail when nothing can take them), and
 * the channel's state is recomputed.  Reentrant calls are folded into the
 * running one. */
void orpc__lb_update(orpc_channel *ch);
/* The resolver's answer, |n| > 0 addresses: one subchannel each (those
 * of addresses kept keep their connections; the others drain).  0, or
 * ORPC_ENOMEM when the channel has no address after all. */
int orpc__lb_set_addrs(orpc_channel *ch, const orpc__addr *addrs, size_t n);
/* The resolution failed (|why| names the target): the addresses the
 * channel has are kept. */
void orpc__lb_resolve_failed(orpc_channel *ch, const char *why);
/* Completes (UNAVAILABLE, "cannot connect: |why|") the calls waiting for a
 * subchannel, but wait_for_ready ones while the channel lives. */
void orpc__lb_fail_waiting(orpc_channel *ch, const char *why);
/* The channel is closing: every subchannel shuts down. */
void orpc__lb_stop(orpc_channel *ch);

/* ---- subchannel.c (IO thread) ---- */

/* A subchannel for |addr|, IDLE, holding the address list's reference;
 * NULL without memory. */
subchannel *orpc__sub_new(orpc_channel *ch, const orpc__addr *addr);
/* Takes the subchannel out of service (dropped from the address list, or
 * the channel closing): no more attempts; its connection closes now when
 * |now| or it carries no call, else once its calls are done (a GOAWAY
 * from our side).  Drops the list's reference. */
void orpc__sub_shutdown(subchannel *sub, const char *why, int now);
/* The state, as described at struct subchannel. */
orpc_channel_state orpc__sub_state(const subchannel *sub);
/* The connection new calls may go to, if it still takes streams; with
 * |ready|, only once SETTINGS came. */
orpc__conn *orpc__sub_usable(subchannel *sub, int ready);
/* Starts a connection attempt, unless one runs, a connection exists or a
 * backoff waits. */
void orpc__sub_connect(subchannel *sub);
/* A connection's GOAWAY (new calls go elsewhere) and SETTINGS (READY). */
void orpc__sub_goaway(cconn *cc);
void orpc__sub_established(cconn *cc);
/* Keepalive timer of a connection; and a PING ACK that rearms it. */
void orpc__sub_keepalive_fire(uv_timer_t *t);
void orpc__sub_keepalive_acked(cconn *cc);
/* Close callback of a connection that never got a session. */
void orpc__sub_pending_conn_closed(uv_handle_t *h);
/* libuv's connect callback. */
void orpc__sub_on_connected(uv_connect_t *req, int status);
/* The next backoff after a failure: |*backoff_ms| grows (gRPC's
 * connection backoff with the channel's settings); returns it with ±20 %
 * jitter. */
int64_t orpc__backoff_next(orpc_channel *ch, int64_t *backoff_ms);

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
/* Submits the call, or queues it until a connection is ready (a hedged
 * call starts its first attempt instead). */
void orpc__call_enqueue(orpc_call *c);
/* A hedged attempt of |parent| (retry.c): an internal call of the same
 * method, request, metadata and deadline, its request queued and its
 * send side closed (a client- or bidi-streaming call: what |parent| sent
 * so far queued, its send side closed if |parent|'s is), ready to
 * enqueue; its one reference is the IO side's and it arms no timer (its
 * call's deadline covers it).  NULL without memory. */
orpc_call *orpc__call_attempt_new(orpc_call *parent);
/* Runs the call's task later, from the loop (IO thread, where running it
 * now would reenter nghttp2). */
void orpc__call_post(orpc_call *c);
/* Starts (or restarts) the call's one timer: the deadline, or a retry
 * backoff (orpc_call.retry.pending) that ends before it. */
void orpc__call_timer_arm(orpc_call *c, uint64_t ms);
/* An asynchronous call: hands queued messages to on_message (unless
 * paused), then on_done once the call is over; re-entry is a no-op. */
void orpc__call_deliver(orpc_call *c);

#endif /* ORPC_CHANNEL_INTERNAL_H */
