/*
 * orpc/client.h — a service client: what generated stubs call.
 *
 * An orpc_client binds a service descriptor to a way of carrying its calls.
 * By default that is a gRPC channel.  The compat layer (orpc/compat/) plugs
 * in an invoker that routes each method to gRPC, to the legacy JSON/HTTP
 * endpoint, or to both (fallback, shadow), so a caller's code stays the same
 * when an endpoint moves.
 *
 * Thread-safety: a client is thread-safe; any thread may call through it.
 */
#ifndef ORPC_CLIENT_H
#define ORPC_CLIENT_H

#include <orpc/call.h>
#include <orpc/channel.h>
#include <orpc/common.h>
#include <orpc/method.h>
#include <orpc/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A client of one service. */
typedef struct orpc_client orpc_client;

/**
 * How a client carries calls, for layers that route them elsewhere than one
 * channel.  Every function gets the invoker's |user_data| last.
 */
typedef struct orpc_invoker {
    /** A blocking unary call, as orpc_channel_invoke(). */
    orpc_status (*invoke)(const orpc_method_desc *method,
                          const ProtobufCMessage *request,
                          ProtobufCMessage **response,
                          const orpc_call_opts *opts, void *user_data);
    /** An asynchronous unary call, as orpc_channel_invoke_async_typed(). */
    int (*invoke_async)(const orpc_method_desc *method,
                        const ProtobufCMessage *request,
                        const orpc_call_opts *opts, orpc_unary_trampoline done,
                        orpc_fn typed_cb, void *cb_user_data, void *user_data);
    /** A streaming call, as orpc_channel_call_start(); may be NULL when the
     *  invoker carries no streams (calls then fail with ORPC_ENOTSUP). */
    int (*call_start)(orpc_call **out, const orpc_method_desc *method,
                      const ProtobufCMessage *request,
                      const orpc_call_opts *opts, void *user_data);
    /** Called once when the client is freed; may be NULL. */
    void (*destroy)(void *user_data);
    /** An asynchronous streaming call, as orpc_channel_call_start_async();
     *  may be NULL (calls then fail with ORPC_ENOTSUP). */
    int (*call_start_async)(orpc_call **out, const orpc_method_desc *method,
                            const ProtobufCMessage *request,
                            const orpc_call_opts *opts,
                            const orpc_call_callbacks *callbacks,
                            void *cb_user_data, void *user_data);
} orpc_invoker;

/**
 * @function
 * Creates a client of |service| whose calls travel over |channel|.
 *
 * Returns 0, ORPC_EINVAL or ORPC_ENOMEM, the reason in |detail| when given
 * (else on stderr).
 *
 * Ownership: takes a reference to |channel|; |service| must outlive the
 * client (generated descriptors are static); copies |mem|; the caller owns
 * the client and frees it with orpc_client_free().
 * Threads: any thread.
 * Allocation: |mem| allocates the client object (copied); its calls use the
 * channel's.
 */
ORPC_EXTERN int orpc_client_new(orpc_client **out,
                                const orpc_service_desc *service,
                                orpc_channel *channel, const orpc_mem *mem,
                                orpc_error_detail *detail);

/**
 * @function
 * Creates a client of |service| whose calls go through |invoker|.
 *
 * Returns 0, ORPC_EINVAL or ORPC_ENOMEM, the reason in |detail| when given
 * (else on stderr).
 *
 * Ownership: copies |invoker| and |mem|; |user_data| is released through
 * invoker->destroy when the client is freed (also when this function fails
 * after being given it); the caller owns the client.
 * Threads: any thread.
 * Allocation: |mem| allocates the client object (copied).
 */
ORPC_EXTERN int orpc_client_new_with_invoker(orpc_client **out,
                                             const orpc_service_desc *service,
                                             const orpc_invoker *invoker,
                                             void *user_data,
                                             const orpc_mem *mem,
                                             orpc_error_detail *detail);

/**
 * @function
 * Frees the client and drops its channel reference.  Calls in flight must
 * have finished.  NULL is a no-op.
 *
 * Ownership: ends the caller's ownership of |client|; an invoker's
 * |user_data| is released through its destroy.
 * Threads: any thread but those its calls' callbacks run on: freeing may
 * join them (the channel's IO thread when its last reference goes).
 */
ORPC_EXTERN void orpc_client_free(orpc_client *client);

/**
 * @function
 * The service |client| was made for.
 *
 * Ownership: borrowed: the descriptor the client was made with (static).
 * Threads: any thread.
 */
ORPC_EXTERN const orpc_service_desc *
orpc_client_service(const orpc_client *client);

/**
 * @function
 * A blocking unary call; see orpc_channel_invoke().  |method| must belong to
 * the client's service, else the status is INVALID_ARGUMENT.
 *
 * Ownership: as orpc_channel_invoke().
 * Threads: as orpc_channel_invoke(): any thread but an orpc IO thread.
 */
ORPC_EXTERN orpc_status orpc_client_invoke(orpc_client *client,
                                           const orpc_method_desc *method,
                                           const ProtobufCMessage *request,
                                           ProtobufCMessage **response,
                                           const orpc_call_opts *opts);

/**
 * @function
 * An asynchronous unary call; see orpc_channel_invoke_async().
 *
 * Ownership: as orpc_channel_invoke_async().
 * Threads: as orpc_channel_invoke_async(); an invoker may run |cb| on a
 * thread of its own (a routed client does, for legacy calls).
 */
ORPC_EXTERN int orpc_client_invoke_async(orpc_client *client,
                                         const orpc_method_desc *method,
                                         const ProtobufCMessage *request,
                                         const orpc_call_opts *opts,
                                         orpc_unary_cb cb, void *user_data);

/**
 * @function
 * An asynchronous unary call for generated typed stubs; see
 * orpc_channel_invoke_async_typed().
 *
 * Ownership: as orpc_channel_invoke_async().
 * Threads: as orpc_client_invoke_async().
 */
ORPC_EXTERN int orpc_client_invoke_async_typed(
    orpc_client *client, const orpc_method_desc *method,
    const ProtobufCMessage *request, const orpc_call_opts *opts,
    orpc_unary_trampoline done, orpc_fn typed_cb, void *user_data);

/**
 * @function
 * Starts a streaming call; see orpc_channel_call_start().
 *
 * Ownership: as orpc_channel_call_start().
 * Threads: as orpc_channel_call_start().
 */
ORPC_EXTERN int orpc_client_call_start(orpc_call **out, orpc_client *client,
                                       const orpc_method_desc *method,
                                       const ProtobufCMessage *request,
                                       const orpc_call_opts *opts);

/**
 * @function
 * Starts an asynchronous streaming call of |method| through the client: as
 * orpc_channel_call_start_async() (callbacks on the IO thread, the caller's
 * reference dropped with orpc_call_unref()).  A client whose invoker
 * carries no asynchronous streams fails with ORPC_ENOTSUP.
 *
 * Returns 0 with |*out| set, or a negative ORPC_E* code (then no callback
 * runs).
 *
 * Ownership: as orpc_channel_call_start_async().
 * Threads: as orpc_channel_call_start_async().
 */
ORPC_EXTERN int orpc_client_call_start_async(
    orpc_call **out, orpc_client *client, const orpc_method_desc *method,
    const ProtobufCMessage *request, const orpc_call_opts *opts,
    const orpc_call_callbacks *callbacks, void *user_data);

#ifdef __cplusplus
}
#endif

#endif /* ORPC_CLIENT_H */
