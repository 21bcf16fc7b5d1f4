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
 * Returns 0, ORPC_EINVAL or ORPC_ENOMEM.  Ownership: takes a reference to
 * |channel|; |service| must outlive the client (generated descriptors are
 * static).  |mem| allocates the client object (copied); its calls use the
 * channel's.
 */
ORPC_EXTERN int orpc_client_new(orpc_client **out,
                                const orpc_service_desc *service,
                                orpc_channel *channel, const orpc_mem *mem);

/**
 * @function
 * Creates a client of |service| whose calls go through |invoker|.
 *
 * Returns 0, ORPC_EINVAL or ORPC_ENOMEM.  Ownership: copies |invoker|;
 * |user_data| is released through invoker->destroy when the client is freed
 * (also when this function fails after being given it).  |mem| allocates
 * the client object (copied).
 */
ORPC_EXTERN int orpc_client_new_with_invoker(orpc_client **out,
                                             const orpc_service_desc *service,
                                             const orpc_invoker *invoker,
                                             void *user_data,
                                             const orpc_mem *mem);

/**
 * @function
 * Frees the client and drops its channel reference.  Calls in flight must
 * have finished.  NULL is a no-op.
 */
ORPC_EXTERN void orpc_client_free(orpc_client *client);

/**
 * @function
 * The service |client| was made for.
 */
ORPC_EXTERN const orpc_service_desc *
orpc_client_service(const orpc_client *client);

/**
 * @function
 * A blocking unary call; see orpc_channel_invoke().  |method| must belong to
 * the client's service, else the status is INVALID_ARGUMENT.
 */
ORPC_EXTERN orpc_status orpc_client_invoke(orpc_client *client,
                                    const orpc_method_desc *method,
                                    const ProtobufCMessage *request,
                                    ProtobufCMessage **response,
                                    const orpc_call_opts *opts);

/**
 * @function
 * An asynchronous unary call; see orpc_channel_invoke_async().
 */
ORPC_EXTERN int orpc_client_invoke_async(orpc_client *client,
                                  const orpc_method_desc *method,
                                  const ProtobufCMessage *request,
                                  const orpc_call_opts *opts, orpc_unary_cb cb,
                                  void *user_data);

/**
 * @function
 * An asynchronous unary call for generated typed stubs; see
 * orpc_channel_invoke_async_typed().
 */
ORPC_EXTERN int orpc_client_invoke_async_typed(orpc_client *client,
                                        const orpc_method_desc *method,
                                        const ProtobufCMessage *request,
                                        const orpc_call_opts *opts,
                                        orpc_unary_trampoline done,
                                        orpc_fn typed_cb, void *user_data);

/**
 * @function
 * Starts a streaming call; see orpc_channel_call_start().
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
 * runs).  Any thread.
 */
ORPC_EXTERN int orpc_client_call_start_async(orpc_call **out, orpc_client *client,
                                      const orpc_method_desc *method,
                                      const ProtobufCMessage *request,
                                      const orpc_call_opts *opts,
                                      const orpc_call_callbacks *callbacks,
                                      void *user_data);

#ifdef __cplusplus
}
#endif

#endif /* ORPC_CLIENT_H */
