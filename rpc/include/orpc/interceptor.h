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
     *  (orpc_call_info_add_metadata()).  Server: once the method, caller
     *  identity and authorization are settled, before the handler runs.
     *  May set |*slot|.  Return ORPC_OK to go on, another code to end the
     *  call with it (|why| may be set to a static message); the
     *  interceptors after it do not start, those before it see on_end. */
    orpc_code (*on_start)(orpc_call_info *info, void **slot, const char **why,
                          void *user_data);
    /** One message went out (|outbound| nonzero) or came in, |bytes| on the
     *  wire (the gRPC frame's payload, compressed if it was).  Client: IO
     *  thread; server: the handler's thread for what it sends, the IO
     *  thread for what arrives (so the two directions may run at once).
     *  For streams this is the per-message hook. */
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
 * or the legacy identity of a legacy caller), a client call's target.
 * NULL when not known (a cleartext caller).
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
 * sent, zero for what it received.  Either pointer may be NULL.
 *
 * Ownership: nothing changes hands.
 * Threads: the hook's.
 */
ORPC_EXTERN void orpc_call_info_counts(const orpc_call_info *info, int out,
                                       uint64_t *messages, uint64_t *bytes);

#ifdef __cplusplus
}
#endif

#endif /* ORPC_INTERCEPTOR_H */
