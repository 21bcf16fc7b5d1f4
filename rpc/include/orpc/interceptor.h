/*
 * orpc/interceptor.h — the extension point around every call: client and
 * server interceptor chains.
 *
 * An interceptor is a set of hooks a channel or a server runs for each of
 * its calls: before the call (its method and metadata known; a client
 * interceptor may add request metadata, either side may refuse the call),
 * per message (direction and wire size, streams included), and after it
 * (its status, duration, byte counts).  orpc's call logging, metrics and
 * trace propagation are built on it (orpc_log_interceptor_new(),
 * orpc_metrics_interceptor_new(), orpc_trace_interceptor_new()); an
 * application adds its own the same way.
 *
 * Chains are set when a channel or server is made (orpc_channel_opts and
 * orpc_server_opts .interceptors / .n_interceptors) and run in order for
 * on_start, in reverse order for on_end.  An interceptor is a shared,
 * reference-counted object: the same one may serve many channels and
 * servers, which take references.
 *
 * Hooks observe; they do not wrap.  They cannot replace messages or delay a
 * call: they run inline on the thread the call's event happens on (a
 * caller's thread, an IO thread, a worker), so they must be quick and must
 * not block or call back into the call.  What a hook needs to carry from
 * on_start to later hooks goes in its per-call slot: a pointer, NULL when
 * the call starts, that on_start may set and the other hooks receive.
 */
#ifndef ORPC_INTERCEPTOR_H
#define ORPC_INTERCEPTOR_H

#include <stddef.h>
#include <stdint.h>

#include <orpc/call.h>
#include <orpc/common.h>
#include <orpc/metadata.h>
#include <orpc/method.h>
#include <orpc/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Which end of a call an interceptor runs at. */
typedef enum orpc_call_side {
    ORPC_SIDE_CLIENT = 0, /**< a channel's (or a routed client's) call */
    ORPC_SIDE_SERVER = 1  /**< a server's call, before/after its handler */
} orpc_call_side;

/** What the hooks see of one call; valid during the hook only. */
typedef struct orpc_call_info orpc_call_info;

/** Longest chain a channel or server accepts. */
#define ORPC_MAX_INTERCEPTORS 8

/**
 * The hooks.  Any may be NULL.  |user_data| is the interceptor's, given to
 * orpc_interceptor_new(); |slot| is this interceptor's per-call pointer.
 */
typedef struct orpc_interceptor_ops {
    /** Before the call.  Client: on the caller's thread, before the call is
     *  handed to the transport; the request metadata may still be added to
     *  (orpc_call_info_add_metadata()).  Server: on the IO thread once the
     *  method is known, before the caller's identity is checked against
     *  the authorization policy (refused callers are seen too) and before
     *  the request message arrives.
     *  May set |*slot|.  Return ORPC_OK to go on, another code to end the
     *  call with it (|why| may be set to a static message); the
     *  interceptors after it do not start, those before it see on_end. */
    orpc_code (*on_start)(orpc_call_info *info, void **slot, const char **why,
                          void *user_data);
    /** One message went out (|outbound| nonzero) or came in, |bytes| on the
     *  wire (the gRPC frame's payload, compressed if it was).  What goes out
     *  is seen on the thread that sends it (the caller's, the handler's),
     *  what comes in on the IO thread, so the two directions of a stream
     *  may run at once.  A message is counted once even when a retry sends
     *  it again.  For streams this is the per-message hook. */
    void (*on_message)(orpc_call_info *info, void *slot, int outbound,
                       size_t bytes, void *user_data);
    /** The call is over with |status| (borrowed): free what |slot| holds.
     *  Runs once for every call whose on_start returned ORPC_OK, on the
     *  thread that completed it. */
    void (*on_end)(orpc_call_info *info, void *slot, const orpc_status *status,
                   void *user_data);
    /** The interceptor's last reference went: release |user_data|. */
    void (*destroy)(void *user_data);
} orpc_interceptor_ops;

/** A shared, reference-counted interceptor. */
typedef struct orpc_interceptor orpc_interceptor;

/**
 * @function
 * Makes an interceptor from |ops| and |user_data|.
 *
 * Returns 0, ORPC_EINVAL (NULL |out| or |ops|) or ORPC_ENOMEM (then
 * ops->destroy has released |user_data|).
 *
 * Ownership: copies |ops|; takes |user_data| (released by ops->destroy with
 * the last reference); the caller owns one reference.
 * Threads: any thread.
 */
ORPC_EXTERN int orpc_interceptor_new(orpc_interceptor **out,
                                     const orpc_interceptor_ops *ops,
                                     void *user_data);

/**
 * @function
 * Takes one more reference to |ic| and returns it.
 *
 * Ownership: the caller owns the new reference.
 * Threads: any thread.
 */
ORPC_EXTERN orpc_interceptor *orpc_interceptor_ref(orpc_interceptor *ic);

/**
 * @function
 * Drops one reference; the last one runs ops->destroy.  NULL is a no-op.
 *
 * Ownership: ends the caller's reference.
 * Threads: any thread.
 */
ORPC_EXTERN void orpc_interceptor_unref(orpc_interceptor *ic);

/* ---- what a hook sees ------------------------------------------------- */

/**
 * @function
 * The call's method.
 *
 * Ownership: borrowed (generated descriptors are static).
 * Threads: the hook's.
 */
ORPC_EXTERN const orpc_method_desc *
orpc_call_info_method(const orpc_call_info *info);

/**
 * @function
 * Client or server.
 *
 * Ownership: nothing changes hands.
 * Threads: the hook's.
 */
ORPC_EXTERN orpc_call_side orpc_call_info_side(const orpc_call_info *info);

/**
 * @function
 * The request metadata: what the client sends (on_start may still add to
 * it), what the server received.  NULL when there is none.
 *
 * Ownership: borrowed for the hook.
 * Threads: the hook's.
 */
ORPC_EXTERN const orpc_metadata *
orpc_call_info_metadata(const orpc_call_info *info);

/**
 * @function
 * Adds one entry to the request metadata (client on_start, and server
 * on_start, where the handler then sees it).  Keys as
 * orpc_metadata_add().
 *
 * Returns 0, ORPC_EINVAL (a bad key or value), ORPC_ESTATE (outside
 * on_start) or ORPC_ENOMEM.
 *
 * Ownership: copies |key| and |value|.
 * Threads: the hook's.
 */
ORPC_EXTERN int orpc_call_info_add_metadata(orpc_call_info *info,
                                            const char *key, const void *value,
                                            size_t len);

/**
 * @function
 * Who is at the other end: a server call's caller identity (its SPIFFE ID,
 * or the legacy identity of a legacy caller) or, without one, its address
 * ("127.0.0.1:51234"); a client call's target as the channel was given
 * it, or a routed client's legacy URL.
 *
 * Ownership: borrowed for the hook.
 * Threads: the hook's.
 */
ORPC_EXTERN const char *orpc_call_info_peer(const orpc_call_info *info);

/**
 * @function
 * The side that carried the call: ORPC_SERVED_GRPC, or ORPC_SERVED_LEGACY
 * for a routed client's call to a legacy endpoint (and a legacy caller's
 * call to a server).
 *
 * Ownership: nothing changes hands.
 * Threads: the hook's.
 */
ORPC_EXTERN orpc_served_by orpc_call_info_served_by(const orpc_call_info *info);

/**
 * @function
 * When the call started (uv_hrtime() nanoseconds, monotonic).
 *
 * Ownership: nothing changes hands.
 * Threads: the hook's.
 */
ORPC_EXTERN uint64_t orpc_call_info_start_ns(const orpc_call_info *info);

/**
 * @function
 * Messages and payload bytes so far: |out| nonzero for what this side
 * sent, zero for what it received.  Either pointer may be NULL.  Exact
 * unless the application sends on one call from several threads at the
 * same moment (then a message may go uncounted here; the metrics
 * interceptor counts its own).
 *
 * Ownership: nothing changes hands.
 * Threads: the hook's.
 */
ORPC_EXTERN void orpc_call_info_counts(const orpc_call_info *info, int out,
                                       uint64_t *messages, uint64_t *bytes);

/* ---- chains run by other transports ---------------------------------- */

/** What orpc_call_info_begin() needs to know of a call. */
typedef struct orpc_call_info_params {
    /** The chain, run in order (at most ORPC_MAX_INTERCEPTORS). */
    orpc_interceptor *const *interceptors;
    /** Entries in |interceptors|. */
    size_t n_interceptors;
    /** The call's method (static). */
    const orpc_method_desc *method;
    /** Client or server. */
    orpc_call_side side;
    /** The side that carries the call. */
    orpc_served_by served_by;
    /** As orpc_call_info_peer(); borrowed until orpc_call_info_end(). */
    const char *peer;
    /** The request metadata: on_start may add to it (made with |mem| if
     *  *metadata is NULL); borrowed until orpc_call_info_end(). */
    orpc_metadata **metadata;
    /** Allocates that metadata; NULL for libc. */
    const orpc_mem *mem;
    /** Client: the request metadata of the server call this one is made
     *  for (its trace continues), or NULL. */
    const orpc_metadata *parent_metadata;
} orpc_call_info_params;

/**
 * @function
 * Runs a chain's on_start for a call that a transport outside orpc's
 * channels and servers carries (the compat layer's legacy calls, issue
 * by issue more of them); the transport then reports messages with
 * orpc_call_info_message() and the end with orpc_call_info_end().
 *
 * Returns ORPC_OK with |*out| set; or the code the call must end with and
 * |*why| its message (static), |*out| NULL: an interceptor refused it
 * (those before it have seen on_end), ORPC_INVALID_ARGUMENT (bad
 * parameters), ORPC_RESOURCE_EXHAUSTED (out of memory).
 *
 * Ownership: takes references to the interceptors until
 * orpc_call_info_end(), which frees |*out|.
 * Threads: the call's; the three functions in order, from one thread at a
 * time.
 */
ORPC_EXTERN orpc_code orpc_call_info_begin(orpc_call_info **out,
                                           const orpc_call_info_params *p,
                                           const char **why);

/**
 * @function
 * Reports one message of a call begun with orpc_call_info_begin().  NULL
 * |info| is a no-op.
 *
 * Ownership: nothing changes hands.
 * Threads: the call's.
 */
ORPC_EXTERN void orpc_call_info_message(orpc_call_info *info, int outbound,
                                        size_t bytes);

/**
 * @function
 * Ends a call begun with orpc_call_info_begin(): runs on_end in reverse
 * order with |status|, then frees |info|.  NULL |info| is a no-op.
 *
 * Ownership: frees |info|; borrows |status| for the call.
 * Threads: the call's.
 */
ORPC_EXTERN void orpc_call_info_end(orpc_call_info *info,
                                    const orpc_status *status);

#ifdef __cplusplus
}
#endif

#endif /* ORPC_INTERCEPTOR_H */
