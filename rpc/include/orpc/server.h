/*
 * orpc/server.h — a gRPC server.
 *
 * A server listens on TCP (IPv4 and IPv6) and unix-socket addresses, speaks
 * HTTP/2 over TLS (ALPN "h2") or, only when asked for, cleartext h2c, and
 * dispatches each call to the handler its service registered.  It runs N IO
 * threads, each with its own libuv loop and connections.  Handlers run on a
 * worker pool so blocking code never stalls IO, or inline on the IO thread
 * for services registered as non-blocking.  Every server also answers gRPC
 * health checks (grpc.health.v1.Health) unless told not to; the
 * application reports its state with orpc_server_set_health().  It also
 * answers gRPC server reflection (grpc.reflection.v1 and v1alpha), from the
 * descriptors protoc-gen-orpc embeds, unless |disable_reflection|.
 *
 * The same listeners serve JSON over HTTP/1.1 to callers not yet migrated
 * (ALPN "http/1.1" on TLS; an HTTP/1.x request line instead of the HTTP/2
 * preface in cleartext), answered by the gateway of
 * orpc_server_set_gateway() (orpc/gateway.h), bounded by the http1_*
 * options below; orpc_server_listen_legacy() adds a cleartext HTTP/1.1-only
 * port beside TLS ones.  docs/runtime.md, "HTTP/1.1 on the same port".
 *
 * Life: orpc_server_new → register services → orpc_server_listen (one or
 * more) → orpc_server_start (or orpc_server_run) → orpc_server_shutdown →
 * orpc_server_free.
 *
 * Thread-safety: configure (register, listen) from one thread before
 * starting.  orpc_server_shutdown(), orpc_server_reload() and
 * orpc_server_set_health() may be called from any thread, including
 * handlers.
 */
#ifndef ORPC_SERVER_H
#define ORPC_SERVER_H

#include <orpc/common.h>
#include <orpc/context.h>
#include <orpc/error.h>
#include <orpc/interceptor.h>
#include <orpc/method.h>
#include <orpc/metrics.h>
#include <orpc/status.h>
#include <orpc/tls.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A server. */
typedef struct orpc_server orpc_server;

/**
 * Server options.  Pass NULL for defaults, or zero-initialise and set what
 * applies; fields are only ever appended.  Strings are borrowed until
 * orpc_server_new() returns (files are reread on reload).
 */
typedef struct orpc_server_opts {
    /** TLS material; a server without a certificate must set |plaintext|. */
    orpc_tls_opts tls;
    /** Nonzero to serve cleartext h2c (tests, benchmarks, a trusted hop). */
    int plaintext;
    /** IO threads; 0 for the number of cores. */
    unsigned io_threads;
    /** Worker threads for blocking handlers; 0 for twice the cores. */
    unsigned worker_threads;
    /** Largest request message accepted; 0 for 4 MiB. */
    size_t max_recv_message_size;
    /** Largest response message sent; 0 for no limit. */
    size_t max_send_message_size;
    /** SETTINGS_MAX_CONCURRENT_STREAMS per connection; 0 for 100. */
    uint32_t max_concurrent_streams;
    /** Largest request header list accepted; 0 for 16 KiB. */
    size_t max_header_list_size;
    /** A gRPC authorization policy (JSON file), or NULL for none. */
    const char *authz_policy_file;
    /** Logger, or NULL for silence. */
    orpc_log_fn log;
    /** Passed to |log|. */
    void *log_user_data;
    /** A client must finish its handshake (TLS, the HTTP/2 preface and its
     *  SETTINGS) within this many ms of connecting, or it is closed; 0 for
     *  20 s. */
    int64_t handshake_timeout_ms;
    /** Keepalive: a PING on each connection every this many ms; 0 for 2 h
     *  (gRPC's server default). */
    int64_t keepalive_time_ms;
    /** No PING ACK within this many ms closes the connection (its calls are
     *  cancelled); 0 for 20 s. */
    int64_t keepalive_timeout_ms;
    /** A client's PING sooner than this many ms after its previous one,
     *  with no HEADERS or DATA sent in between, is a strike; 0 for 5 min
     *  (gRPC's default: set it to the clients' keepalive_time_ms if they
     *  ping more often). */
    int64_t min_ping_interval_ms;
    /** More strikes than this end the connection with GOAWAY
     *  ENHANCE_YOUR_CALM "too_many_pings"; 0 for 2; negative for no
     *  limit. */
    int max_ping_strikes;
    /** Bytes of incomplete request messages one connection may hold (a
     *  message is received whole before its handler reads it, even when it
     *  is larger than the HTTP/2 window); the stream that would exceed it
     *  ends RESOURCE_EXHAUSTED.  0 for 4 × max_recv_message_size (16 MiB
     *  by default). */
    size_t max_connection_buffer;
    /** Connections open at once; past it new connections are closed as
     *  soon as they are accepted.  0 for 10000. */
    unsigned max_connections;
    /** Calls in progress at once on the whole server; past it new streams
     *  are refused (RST_STREAM REFUSED_STREAM: UNAVAILABLE at the client,
     *  which knows the call was not processed).  0 for 10000. */
    unsigned max_concurrent_calls;
    /** Most worker threads: the pool starts |worker_threads| and gives
     *  every call that finds no idle worker a new one, up to this; 0 for
     *  1024. */
    unsigned max_worker_threads;
    /** Calls waiting for a worker once all |max_worker_threads| are busy;
     *  past it new calls end RESOURCE_EXHAUSTED at once.  0 for 1024. */
    unsigned max_queued_calls;
    /** Streaming calls of blocking services running at once (each holds a
     *  worker while it waits for a message or for room to send); past it
     *  new ones are refused with REFUSED_STREAM, so idle streams can never
     *  take the workers unary calls need.  0 for half of
     *  |max_worker_threads|. */
    unsigned max_blocking_streams;
    /** Nonzero: other sockets may bind the same port and share its
     *  connections (SO_REUSEPORT: several processes behind one port).  By
     *  default orpc_server_listen() on a port already in use fails with
     *  ORPC_EADDR. */
    int reuse_port;
    /** Nonzero: no built-in health service (grpc.health.v1.Health, see
     *  orpc_server_set_health()); calls to it are UNIMPLEMENTED.  By default
     *  every server runs it. */
    int disable_health;
    /** Health Watch calls open at once; past it a new Watch ends
     *  RESOURCE_EXHAUSTED.  Each costs a little memory and no thread.  0 for
     *  1024. */
    unsigned max_health_watchers;
    /** Nonzero: no built-in server reflection (grpc.reflection.v1 and
     *  v1alpha ServerReflection, answered from the descriptors
     *  protoc-gen-orpc embeds); calls to it are UNIMPLEMENTED.  By default
     *  every server runs it. */
    int disable_reflection;
    /** The application's interceptors (orpc/interceptor.h), run after the
     *  default ones in this order; the server takes a reference to each.
     *  At most ORPC_MAX_INTERCEPTORS in all, or ORPC_EINVAL. */
    orpc_interceptor *const *interceptors;
    /** Entries in |interceptors|. */
    size_t n_interceptors;
    /** Where the default metrics interceptor records (orpc/metrics.h; the
     *  server takes a reference); NULL: the server makes its own registry
     *  (orpc_server_metrics()). */
    orpc_metrics *metrics;
    /** Nonzero: no default interceptors (trace context, metrics); only
     *  |interceptors| run. */
    int no_default_interceptors;
    /** host:port of the admin listener: plain HTTP/1.1 serving /metrics
     *  (the registry above, Prometheus text) and /healthz (200 while the
     *  health service says SERVING, else 503); NULL (the default) for
     *  none.  Port 0 picks one (orpc_server_admin_port()). */
    const char *admin_address;
    /*
     * HTTP/1.1 on the same listeners (orpc/gateway.h; docs/runtime.md,
     * "HTTP/1.1 on the same port").  Each limit, when crossed, is answered
     * with its status, a small JSON body {"detail": "..."} and
     * "Connection: close", then the connection closes.
     */
    /** Longest request target, bytes (414 URI Too Long).  0 for 8 KiB. */
    size_t http1_max_request_line;
    /** Largest header section, bytes of names and values (431 Request
     *  Header Fields Too Large).  0 for 32 KiB. */
    size_t http1_max_header_bytes;
    /** Most header fields in one request (431).  0 for 100. */
    unsigned http1_max_headers;
    /** Largest request body, bytes (413 Content Too Large; by its
     *  Content-Length before reading it, or as chunks arrive).  0 for
     *  |max_recv_message_size|. */
    size_t http1_max_body;
    /** The whole request head (request line and headers) must arrive
     *  within this many ms of its first byte, or 408 Request Timeout
     *  (slowloris).  0 for 10000. */
    int http1_header_timeout_ms;
    /** The body must arrive within this many ms after the head, or 408.
     *  0 for 30000. */
    int http1_body_timeout_ms;
    /** A kept-alive connection without a request for this many ms is
     *  closed (silently).  0 for 60000. */
    int http1_idle_timeout_ms;
    /** HTTP/1.1 requests at once, all connections, that wait for a worker
     *  or run the gateway's on_request there; past it 503 Service
     *  Unavailable, so a flood of them cannot take the workers and queue
     *  gRPC calls need.  0 for a quarter of |max_queued_calls| (at least
     *  1). */
    unsigned http1_max_pending;
} orpc_server_opts;

/**
 * The generic shape every generated handler trampoline has: it fetches the
 * typed request/response or stream from |ctx| and calls the typed handler in
 * |impl|.  Only generated code implements these.
 */
typedef orpc_status (*orpc_method_handler)(orpc_ctx *ctx, const void *impl,
                                           void *user_data);

/**
 * A serving status of the health service, as grpc.health.v1's
 * HealthCheckResponse.ServingStatus numbers them.
 */
typedef enum orpc_health_status {
    /** Known, but its state is not known (yet). */
    ORPC_HEALTH_UNKNOWN = 0,
    /** Ready for calls. */
    ORPC_HEALTH_SERVING = 1,
    /** Up, but send it no calls (draining, warming up, a backend down). */
    ORPC_HEALTH_NOT_SERVING = 2,
    /** Not a service the health service knows: Check answers NOT_FOUND,
     *  Watch streams this status.  Given to orpc_server_set_health(), it
     *  forgets the service. */
    ORPC_HEALTH_SERVICE_UNKNOWN = 3
} orpc_health_status;

/** Per-service registration options. */
typedef struct orpc_service_opts {
    /** Nonzero: the handlers never block, run them inline on the IO thread
     *  (orpc_ctx_recv/orpc_ctx_send then return ORPC_EAGAIN instead of
     *  waiting). */
    int nonblocking;
} orpc_service_opts;

/**
 * @function
 * Creates a server in |*out|.
 *
 * Returns 0; ORPC_EINVAL; ORPC_ECONFIG (TLS material or policy that does not
 * load: |detail| names the setting and file and says what is wrong);
 * ORPC_ENOMEM.  On failure |*out| is NULL and the reason goes to |detail|
 * when given (NULL: to the logger in |opts|, or stderr).
 *
 * Ownership: copies |opts| (and the strings it points to) and |mem|; the
 * caller owns the server and frees it with orpc_server_free().
 * Threads: any thread.
 *
 * Allocation: |mem| serves the server and what it makes: copies of its
 * options, the authorization policy, connections and their nghttp2
 * sessions, calls (orpc_ctx, its arena and metadata, streamed request
 * messages, queued responses, statuses).  Not through |mem|: OpenSSL's
 * and libuv's internal allocations (their allocator hooks are
 * process-wide, not per object), jansson's while a policy is parsed (the
 * same), nghttp2's callback and option tables (its API takes no allocator
 * for them), and the statuses handlers return (theirs, made with
 * orpc_status_new()).  A failed allocation ends the call it was for with a
 * status, or the function with ORPC_ENOMEM.
 */
ORPC_EXTERN int orpc_server_new(orpc_server **out, const orpc_server_opts *opts,
                                const orpc_mem *mem, orpc_error_detail *detail);

/**
 * @function
 * Stops the server if running (as orpc_server_shutdown() with no grace) and
 * frees it.  NULL is a no-op.  Returns once the IO and worker threads have
 * ended.  Calls whose handlers deferred them (orpc_ctx_defer()) and have not
 * finished them are cancelled (orpc_ctx_is_cancelled() is true, their
 * cancel callbacks run) and stay valid: orpc_ctx_finish() on them later
 * sends nothing and releases them, and the server's last memory is freed
 * with the last of them.  So a handler's thread may finish its call at any
 * time without racing orpc_server_free().
 *
 * Ownership: ends the caller's ownership of |srv|.
 * Threads: any thread but the server's own IO and worker threads (a handler
 * cannot free its server).
 */
ORPC_EXTERN void orpc_server_free(orpc_server *srv);

/**
 * @function
 * Registers |service|: |handlers| has service->n_methods entries, one per
 * method in order; a NULL entry answers UNIMPLEMENTED.  Generated
 * `<service>__register()` functions call this.  A service named
 * grpc.health.v1.Health replaces the built-in health service
 * (orpc_server_set_health() then answers ORPC_ENOTSUP).
 *
 * Returns 0; ORPC_EINVAL; ORPC_EEXIST (a service of that name is already
 * registered); ORPC_ESTATE (server started); ORPC_ENOMEM.  Ownership:
 * borrows |service|, |handlers|, |impl| and |user_data| for the server's
 * life; copies |opts| (NULL for defaults).
 * Threads: any thread, before orpc_server_start(); not concurrently with
 * another call that configures the same server.
 */
ORPC_EXTERN int orpc_server_add_service(orpc_server *srv,
                                        const orpc_service_desc *service,
                                        const orpc_method_handler *handlers,
                                        const void *impl, void *user_data,
                                        const orpc_service_opts *opts);

/**
 * @function
 * Listens on |address|: "host:port" with an IPv4 literal, "[v6]:port",
 * "unix:/path", or a host name ("localhost" is 127.0.0.1; another name
 * listens on the first address getaddrinfo() gives for it, looked up
 * here, blocking).  An empty host or "*" is every IPv4 address.  Port 0
 * picks a free port, reported in |*bound_port| when it is not NULL.
 *
 * Returns 0; ORPC_EADDR (does not parse, address in use, or cannot bind:
 * |detail| says which); ORPC_ESTATE (started); ORPC_ELIMIT (too many
 * listeners); ORPC_ENOMEM.  The reason goes to |detail| when given, else
 * to the server's logger or stderr.
 *
 * Ownership: borrows |address| for the call.
 * Threads: any thread, before orpc_server_start(); not concurrently with
 * another call that configures the same server.
 */
ORPC_EXTERN int orpc_server_listen(orpc_server *srv, const char *address,
                                   int *bound_port, orpc_error_detail *detail);

/**
 * @function
 * Like orpc_server_listen(), for callers that speak only HTTP/1.1 (the
 * legacy side of a service during its migration, e.g. its old port 3006):
 * a cleartext listener even when the server's other listeners are TLS
 * (mutual or not).  It serves HTTP/1.1 only: a connection that opens with
 * the HTTP/2 preface is closed, so gRPC keeps its TLS port.  Requests on
 * it carry no TLS identity: only a gateway's orpc_http_call_opts.identity
 * gives them one, and |tls.require_client_cert| or the authorization
 * policy refuse calls without it as they would on the TLS port.  TCP
 * addresses only ("host:port").
 *
 * Returns what orpc_server_listen() returns; ORPC_EADDR for "unix:".
 *
 * Ownership: copies |address|; writes |bound_port| and |detail| (optional).
 * Threads: the thread that configures the server, before it starts.
 */
ORPC_EXTERN int orpc_server_listen_legacy(orpc_server *srv, const char *address,
                                          int *bound_port,
                                          orpc_error_detail *detail);

/**
 * @function
 * Starts the IO and worker threads and returns.  Unless
 * |disable_health| is set (or the application registered its own
 * grpc.health.v1.Health), the built-in health service is registered here:
 * "" (the server as a whole) and every registered service whose status was
 * not set before are SERVING from now on.
 *
 * Returns 0, ORPC_ESTATE (no listener, or already started), ORPC_ESYS.
 * Ownership: nothing changes hands.
 * Threads: any thread; once.
 */
ORPC_EXTERN int orpc_server_start(orpc_server *srv);

/**
 * @function
 * Starts the server if needed and serves until SIGTERM or SIGINT (then
 * shuts down with a 5 s grace period) or until orpc_server_shutdown() is
 * called from elsewhere.  SIGHUP reloads (orpc_server_reload()).
 *
 * Returns 0 after a clean shutdown, or a negative ORPC_E* code.
 * Ownership: nothing changes hands; free the server afterwards.
 * Threads: the thread that owns the server (usually main); it blocks.  The
 * signals are watched through libuv, which shares them among loops.
 */
ORPC_EXTERN int orpc_server_run(orpc_server *srv);

/**
 * @function
 * Graceful shutdown: sets every health status to NOT_SERVING and tells the
 * health watchers (their NOT_SERVING goes out before the GOAWAY on their
 * connection, as far as the client's flow-control window lets it, and
 * their Watch calls then end UNAVAILABLE, so load balancers stop sending
 * before the connection drains), stops accepting, sends GOAWAY, lets calls
 * in flight finish for |grace_ms|, then cancels the rest.  Returns at once;
 * use orpc_server_wait() to wait for the end.
 *
 * Returns 0 or ORPC_ESTATE (not started).
 * Ownership: nothing changes hands.
 * Threads: any thread, including handlers and the server's IO threads.
 */
ORPC_EXTERN int orpc_server_shutdown(orpc_server *srv, int64_t grace_ms);

/**
 * @function
 * Waits until the server has shut down and its threads have ended.
 *
 * Returns 0 or ORPC_ESTATE (never started).
 * Ownership: nothing changes hands.
 * Threads: any thread but the server's own (it would wait on itself).
 */
ORPC_EXTERN int orpc_server_wait(orpc_server *srv);

/**
 * @function
 * Rereads the TLS material and the authorization policy from their files.
 * New connections use the new material; open ones keep theirs.  A reload
 * that fails keeps everything as it was and says why: in |detail| when
 * given, else through the logger or stderr.
 *
 * Returns 0 or ORPC_ECONFIG.
 * Ownership: nothing changes hands.
 * Threads: any thread.
 */
ORPC_EXTERN int orpc_server_reload(orpc_server *srv, orpc_error_detail *detail);

/**
 * @function
 * Sets the serving status the built-in health service (gRPC's
 * grpc.health.v1.Health: Check and Watch) reports for |service|: a
 * fully-qualified service name, or "" for the server as a whole.  Any
 * name may be given, registered or not; ORPC_HEALTH_SERVICE_UNKNOWN
 * forgets it.  Watch calls on |service| receive the new status (a watcher
 * that has not read the previous one yet gets only the latest).
 *
 * orpc_server_start() makes "" and every registered service whose status
 * was not set before SERVING; orpc_server_shutdown() (and the signals of
 * orpc_server_run()) makes every status NOT_SERVING for good.  Set a
 * status before starting to begin otherwise (NOT_SERVING while warming
 * up).
 *
 * Returns 0; ORPC_EINVAL (NULL, or |status| out of range); ORPC_ENOTSUP
 * (|disable_health|, or the application registered its own
 * grpc.health.v1.Health); ORPC_ESTATE (shutting down or stopped: the
 * statuses stay NOT_SERVING); ORPC_ENOMEM.
 *
 * Ownership: copies |service|.
 * Threads: any thread, handlers and IO threads included; it never blocks
 * on a call.
 */
ORPC_EXTERN int orpc_server_set_health(orpc_server *srv, const char *service,
                                       orpc_health_status status);

/**
 * @function
 * Reads the built-in health service's status of |service| ("" for the
 * server as a whole) into |*out|, as a Check would answer it
 * (ORPC_HEALTH_SERVICE_UNKNOWN for a service it does not know), without a
 * call: no identity, no policy.  For probes that are not RPC callers,
 * such as the gateway's GET /health.
 *
 * Returns 0; ORPC_EINVAL (a NULL argument); ORPC_ENOTSUP (|disable_health|,
 * or the application registered its own grpc.health.v1.Health: ask it with
 * a call).
 *
 * Ownership: borrows |service| for the call.
 * Threads: any thread, handlers and IO threads included; never blocks on
 * a call.
 */
ORPC_EXTERN int orpc_server_get_health(orpc_server *srv, const char *service,
                                       orpc_health_status *out);

/**
 * @function
 * The registry the server's default metrics interceptor records into
 * (orpc_server_opts.metrics, or the server's own); NULL when the server
 * runs without default interceptors.
 *
 * Ownership: borrowed while the server lives (orpc_metrics_ref() to keep
 * it longer).
 * Threads: any thread.
 */
ORPC_EXTERN orpc_metrics *orpc_server_metrics(orpc_server *srv);

/**
 * @function
 * The port the admin listener is bound to (after orpc_server_new(), which
 * binds it), or 0 when the server has none.
 *
 * Ownership: nothing changes hands.
 * Threads: any thread.
 */
ORPC_EXTERN int orpc_server_admin_port(const orpc_server *srv);

#ifdef __cplusplus
}
#endif

#endif /* ORPC_SERVER_H */
