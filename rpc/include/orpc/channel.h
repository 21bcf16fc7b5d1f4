/*
 * orpc/channel.h — a client's connection to one gRPC target.
 *
 * A channel resolves its target to addresses and keeps one subchannel (one
 * HTTP/2 connection) per address, multiplexing every call made through it;
 * a load-balancing policy picks the subchannel of each call:
 *
 *     channel ──▶ subchannel per address ──▶ HTTP/2 connection ──▶ streams
 *
 * It connects lazily, on its first call; calls beyond the peer's
 * SETTINGS_MAX_CONCURRENT_STREAMS wait for a free stream instead of failing;
 * a GOAWAY moves new calls to a fresh connection.  The channel runs its own
 * IO thread with a libuv loop.
 *
 * Targets: "host:port", "[v6addr]:port", "dns:///host:port" and
 * "dns:host:port" (every A and AAAA address, resolved again when a
 * connection is lost, at most every 30 s); "ipv4:a.b.c.d:port,..." and
 * "ipv6:[v6addr]:port,..." (fixed addresses); "unix:/path".  Policies
 * (orpc_channel_opts.lb_policy): "pick_first" (the default) and
 * "round_robin".  docs/runtime.md tells how a call finds its subchannel.
 *
 * Thread-safety: a channel is thread-safe.  Any thread may start calls; a
 * blocking call blocks only its caller.  A channel is reference-counted:
 * orpc_channel_ref() takes a reference, orpc_channel_unref() drops one.
 */
#ifndef ORPC_CHANNEL_H
#define ORPC_CHANNEL_H

#include <protobuf-c/protobuf-c.h>

#include <orpc/call.h>
#include <orpc/common.h>
#include <orpc/error.h>
#include <orpc/interceptor.h>
#include <orpc/method.h>
#include <orpc/metrics.h>
#include <orpc/status.h>
#include <orpc/tls.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A channel to one target. */
typedef struct orpc_channel orpc_channel;

/** Default largest message a channel receives: 4 MiB, as gRPC's. */
#define ORPC_DEFAULT_MAX_RECV_MESSAGE (4u * 1024u * 1024u)
/** Default largest header list a channel or server accepts: 16 KiB. */
#define ORPC_DEFAULT_MAX_HEADER_LIST (16u * 1024u)

/**
 * Channel options.  Pass NULL for defaults, or zero-initialise and set what
 * applies; fields are only ever appended.  Strings are borrowed until
 * orpc_channel_new() returns.
 */
typedef struct orpc_channel_opts {
    /** TLS settings; NULL means cleartext HTTP/2 (h2c), which must be asked
     *  for explicitly with |plaintext|. */
    const orpc_tls_opts *tls;
    /** Nonzero to allow h2c when |tls| is NULL. */
    int plaintext;
    /** Deadline for calls that set none, in ms; 0 for none. */
    int64_t default_timeout_ms;
    /** Connection attempt timeout in ms; 0 for 20 s. */
    int64_t connect_timeout_ms;
    /** Largest response message accepted; 0 for 4 MiB.  Larger →
     *  RESOURCE_EXHAUSTED. */
    size_t max_recv_message_size;
    /** Largest request message sent; 0 for no limit. */
    size_t max_send_message_size;
    /** Largest response header list accepted; 0 for 16 KiB. */
    size_t max_header_list_size;
    /** :authority to send; by default the target's host:port. */
    const char *authority;
    /** Prepended to orpc's own user-agent. */
    const char *user_agent;
    /** Logger, or NULL for silence. */
    orpc_log_fn log;
    /** Passed to |log|. */
    void *log_user_data;
    /** After a failed connection attempt, the next one waits this long
     *  (from the start of the failed one), in ms; 0 for 1 s.  Each further
     *  failure multiplies it by 1.6 up to |max_backoff_ms|, with ±20 %
     *  jitter (gRPC's connection backoff); a server's SETTINGS reset it.
     *  While backing off, calls fail at once with UNAVAILABLE, except
     *  wait_for_ready ones, which wait for the next attempt. */
    int64_t initial_backoff_ms;
    /** Largest reconnect backoff in ms; 0 for 120 s. */
    int64_t max_backoff_ms;
    /** Keepalive: a PING on each connection every this many ms while calls
     *  are open on it; 0 (the default, as in gRPC) for none.  Servers may
     *  refuse frequent pings (gRPC servers answer pings more often than
     *  every 5 minutes with GOAWAY "too_many_pings" unless configured). */
    int64_t keepalive_time_ms;
    /** No PING ACK within this many ms closes the connection, its calls
     *  ending UNAVAILABLE; 0 for 20 s. */
    int64_t keepalive_timeout_ms;
    /** Nonzero: keepalive pings also on connections without calls. */
    int keepalive_without_calls;
    /** How calls are spread over the target's addresses: "pick_first"
     *  (NULL or "", the default: the first address that connects, until
     *  it fails) or "round_robin" (every READY address in turn).  Another
     *  name is ORPC_ECONFIG. */
    const char *lb_policy;
    /** gRPC service config, as JSON text (grpc/service_config/
     *  service_config.proto): per-method timeout, waitForReady, message
     *  size limits, retryPolicy and hedgingPolicy (calls of every kind);
     *  retryThrottling; loadBalancingConfig.  NULL for none.  A config
     *  that does not parse or validate fails orpc_channel_new() with
     *  ORPC_ECONFIG, |detail| naming the JSON path of the fault.
     *  docs/runtime.md, "Service config and retries", says what is
     *  applied and what is not yet. */
    const char *service_config;
    /** Request bytes one call keeps for retries, hedges and the
     *  transparent retry of a client- or bidi-streaming call; 0 for
     *  256 KiB.  A unary call whose request is larger is never retried; a
     *  streaming call that sends more commits (a hedged one to its oldest
     *  attempt). */
    size_t per_call_retry_buffer_size;
    /** Request bytes the channel's calls keep for retries together; 0 for
     *  16 MiB.  A call that would go over it is never retried. */
    size_t retry_buffer_size;
    /** The application's interceptors (orpc/interceptor.h), run after the
     *  default ones in this order; the channel takes a reference to each.
     *  At most ORPC_MAX_INTERCEPTORS in all, or ORPC_EINVAL. */
    orpc_interceptor *const *interceptors;
    /** Entries in |interceptors|. */
    size_t n_interceptors;
    /** Where the default metrics interceptor records (orpc/metrics.h; the
     *  channel takes a reference); NULL: the channel makes its own
     *  registry (orpc_channel_metrics()). */
    orpc_metrics *metrics;
    /** Nonzero: no default interceptors (trace propagation, metrics); only
     *  |interceptors| run. */
    int no_default_interceptors;
} orpc_channel_opts;

/** A channel's connectivity, as gRPC names its states. */
typedef enum orpc_channel_state {
    /** No connection and none being made: the next call dials. */
    ORPC_CHANNEL_IDLE = 0,
    /** A connection attempt is under way. */
    ORPC_CHANNEL_CONNECTING = 1,
    /** Connected: a server accepted the connection (its SETTINGS came). */
    ORPC_CHANNEL_READY = 2,
    /** No address is connected or connecting, and the last attempt to
     *  one failed; while every address (or the resolution) waits for its
     *  backoff, calls fail fast with UNAVAILABLE (wait_for_ready ones
     *  wait). */
    ORPC_CHANNEL_TRANSIENT_FAILURE = 3,
    /** orpc_channel_unref() has begun closing it. */
    ORPC_CHANNEL_SHUTDOWN = 4
} orpc_channel_state;

/**
 * @function
 * Creates a channel to |target|.  Nothing connects until the first call.
 *
 * Returns 0; ORPC_EINVAL (|out| or |target| NULL); ORPC_EADDR (the target
 * does not parse: |detail| names it and says what is wrong); ORPC_ECONFIG
 * (neither TLS nor plaintext chosen, TLS material that does not load:
 * |detail| names the setting and the file; an unknown lb_policy; or
 * a service config that does not parse or validate: |detail| says
 * "service_config: " and the JSON path of the fault, as in
 * "service_config: methodConfig[0].retryPolicy.maxAttempts: must be at
 * least 2");
 * ORPC_ESYS; ORPC_ENOMEM.  On failure |*out| is NULL and the reason goes
 * to |detail| when given (NULL: to the logger in |opts|, or stderr).
 *
 * Ownership: copies |target|, |opts| (and what it points to) and |mem|;
 * the caller holds one reference, dropped with orpc_channel_unref().
 * Threads: any thread.
 *
 * Allocation: |mem| serves the channel and what it makes for its calls:
 * connections, their nghttp2 sessions, call objects, metadata, queued
 * messages, statuses it keeps.  Not through |mem|: what the application
 * receives and frees itself (response messages, freed with
 * protobuf_c_message_free_unpacked(msg, NULL), and returned statuses,
 * cleared with orpc_status_clear(), use the C library); OpenSSL's and
 * libuv's internal allocations (their allocator hooks are process-wide,
 * not per object); nghttp2's callback and option tables (its API takes no
 * allocator for them).  A failed allocation ends the call it was for with
 * a status, or the function with ORPC_ENOMEM.
 */
ORPC_EXTERN int orpc_channel_new(orpc_channel **out, const char *target,
                                 const orpc_channel_opts *opts,
                                 const orpc_mem *mem,
                                 orpc_error_detail *detail);

/**
 * @function
 * The channel's connectivity now (a snapshot: it may change at once),
 * from its addresses' own: READY if any is READY; else CONNECTING if any
 * is (or the target is being resolved for the first time); else
 * TRANSIENT_FAILURE if any is backing off; else IDLE.  With
 * |try_to_connect| nonzero an IDLE channel starts connecting, as a call
 * would, without one: a readiness probe or a warm-up at start.  NULL is
 * SHUTDOWN.
 *
 * Ownership: nothing changes hands.
 * Threads: any thread, the channel's callbacks included (it never blocks).
 */
ORPC_EXTERN orpc_channel_state orpc_channel_get_state(orpc_channel *ch,
                                                      int try_to_connect);

/**
 * @function
 * Takes a reference to |ch| and returns it (NULL for NULL).
 *
 * Ownership: the caller holds one more reference, dropped with
 * orpc_channel_unref().
 * Threads: any thread, the channel's callbacks included.
 */
ORPC_EXTERN orpc_channel *orpc_channel_ref(orpc_channel *ch);

/**
 * @function
 * Drops a reference.  The last one ends calls still running (UNAVAILABLE,
 * "channel closed"), closes the connections and joins the IO thread.  NULL is a
 * no-op.
 *
 * Ownership: ends one of the caller's references; calls the application
 * still holds stay valid until finished (or unreferenced).
 * Threads: any thread but the channel's own IO thread (a callback of the
 * same channel): the last reference joins that thread.
 */
ORPC_EXTERN void orpc_channel_unref(orpc_channel *ch);

/**
 * @function
 * A blocking unary call of |method| with |request|.  On ORPC_OK |*response|
 * is set and the caller frees it with protobuf_c_message_free_unpacked().
 *
 * Returns the call's status; the caller clears it.  |opts| may be NULL.
 *
 * Ownership: borrows |request| and |opts| until the function returns; the
 * caller frees |*response| and clears the status with orpc_status_clear().
 * Threads: any thread but an orpc IO thread (a callback or an inline
 * handler), where the call ends FAILED_PRECONDITION at once.
 */
ORPC_EXTERN orpc_status orpc_channel_invoke(orpc_channel *ch,
                                            const orpc_method_desc *method,
                                            const ProtobufCMessage *request,
                                            ProtobufCMessage **response,
                                            const orpc_call_opts *opts);

/**
 * @function
 * Starts an asynchronous unary call; |cb| fires once, on the channel's IO
 * thread, when it ends.
 *
 * Returns 0, or a negative ORPC_E* code, in which case |cb| never fires.
 *
 * Ownership: |request| and |opts| are read before the function returns,
 * except opts->headers_out and trailers_out, written until |cb| runs; |cb|
 * owns the response it is given.
 * Threads: any thread, callbacks included; on the channel's own IO thread
 * |cb| may run before this function returns.
 */
ORPC_EXTERN int orpc_channel_invoke_async(orpc_channel *ch,
                                          const orpc_method_desc *method,
                                          const ProtobufCMessage *request,
                                          const orpc_call_opts *opts,
                                          orpc_unary_cb cb, void *user_data);

/**
 * @function
 * As orpc_channel_invoke_async(), for generated typed stubs: |done| is called
 * with |typed_cb| and |user_data|.
 *
 * Ownership: as orpc_channel_invoke_async().
 * Threads: as orpc_channel_invoke_async().
 */
ORPC_EXTERN int orpc_channel_invoke_async_typed(
    orpc_channel *ch, const orpc_method_desc *method,
    const ProtobufCMessage *request, const orpc_call_opts *opts,
    orpc_unary_trampoline done, orpc_fn typed_cb, void *user_data);

/**
 * @function
 * Starts a streaming call of |method|.  For server streaming, pass the one
 * |request| here (it is sent and the send side closed); for client and bidi
 * streaming pass NULL and use orpc_call_send().
 *
 * Returns 0 with |*out| set, or a negative ORPC_E* code.
 *
 * Ownership: |request| and |opts| are read before the function returns,
 * except opts->headers_out and trailers_out, written until the call is
 * finished; the caller owns |*out| and ends it with orpc_call_finish() or
 * orpc_call_finish_response().
 * Threads: any thread; the call then belongs to one thread at a time, which
 * must not be an orpc IO thread when it sends or receives.
 */
ORPC_EXTERN int orpc_channel_call_start(orpc_call **out, orpc_channel *ch,
                                        const orpc_method_desc *method,
                                        const ProtobufCMessage *request,
                                        const orpc_call_opts *opts);

/**
 * @function
 * Starts an asynchronous streaming call of |method|: its headers, messages
 * and status go to |callbacks| on the channel's IO thread (orpc/call.h).
 * For server streaming pass the one |request| here; for client and bidi
 * streaming pass NULL and use orpc_call_send(), which never blocks.
 *
 * Returns 0 with |*out| set, or a negative ORPC_E* code (then no callback
 * runs).
 *
 * Ownership: the caller holds one reference to |*out| and drops it with
 * orpc_call_unref() (the call itself lives until on_done returns);
 * |callbacks| is copied; |request| and |opts| are borrowed until the
 * function returns, except opts->headers_out and trailers_out, written
 * until on_done runs.
 * Threads: any thread, including the channel's IO thread (from there the
 * callbacks, on_done included, may run before this function returns).
 */
ORPC_EXTERN int orpc_channel_call_start_async(
    orpc_call **out, orpc_channel *ch, const orpc_method_desc *method,
    const ProtobufCMessage *request, const orpc_call_opts *opts,
    const orpc_call_callbacks *callbacks, void *user_data);

/**
 * @function
 * Copies the SPIFFE ID of the server |ch| last completed a TLS handshake
 * with into |buf| (of |len| bytes); it stays after that connection closes,
 * until the next handshake replaces it.
 *
 * Returns 0; ORPC_ENOTFOUND when no TLS handshake has completed yet or the
 * server's certificate has no SPIFFE ID; ORPC_ETOOBIG when |buf| is too
 * small; ORPC_EINVAL.
 *
 * Ownership: copies into the caller's |buf|; nothing is allocated.
 * Threads: any thread, the channel's callbacks included.
 */
ORPC_EXTERN int orpc_channel_peer_identity(orpc_channel *ch, char *buf,
                                           size_t len);

/**
 * @function
 * The registry the channel's default metrics interceptor records into
 * (orpc_channel_opts.metrics, or the channel's own); NULL when the channel
 * runs without default interceptors.
 *
 * Ownership: borrowed while the caller holds its channel reference
 * (orpc_metrics_ref() to keep it longer).
 * Threads: any thread.
 */
ORPC_EXTERN orpc_metrics *orpc_channel_metrics(orpc_channel *ch);

#ifdef __cplusplus
}
#endif

#endif /* ORPC_CHANNEL_H */
