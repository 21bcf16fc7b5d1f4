/*
 * orpc/context.h — the server side of one call, as its handler sees it.
 *
 * Every handler receives an orpc_ctx.  It carries the call's deadline, the
 * request metadata, the caller's verified identity, the call's arena (the
 * response and anything the handler allocates for it belong there) and, for
 * streaming methods, the means to read requests and write responses.  The
 * context lives until the call's status has been sent.
 *
 * Thread-safety: a context belongs to the thread running its handler, and
 * once the handler has deferred the call (orpc_ctx_defer()) and returned,
 * to the one thread that will finish it.  A context is valid until its
 * handler returns or, for a deferred call, until orpc_ctx_finish().  The
 * exceptions say so: orpc_ctx_is_cancelled(), orpc_ctx_finish() and the
 * getters of what never changes may be called from any thread.
 *
 * Non-blocking services (orpc_service_opts.nonblocking) run handlers on the
 * IO thread, where nothing may wait.  There orpc_ctx_recv() and
 * orpc_ctx_send() return ORPC_EAGAIN instead of blocking, and a streaming
 * handler that cannot go on calls orpc_ctx_defer() and returns: it is called
 * again (with the same context) when a message or the end of the requests
 * arrives, when there is room to send, or when the call is cancelled, and it
 * ends the call by returning without deferring (or with orpc_ctx_finish()).
 */
#ifndef ORPC_CONTEXT_H
#define ORPC_CONTEXT_H

#include <protobuf-c/protobuf-c.h>

#include <orpc/arena.h>
#include <orpc/common.h>
#include <orpc/metadata.h>
#include <orpc/method.h>
#include <orpc/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The server side of one call. */
typedef struct orpc_ctx orpc_ctx;

/** Called once when the call is cancelled or its deadline passes. */
typedef void (*orpc_cancel_cb)(orpc_ctx *ctx, void *user_data);

/**
 * @function
 * The method being called.
 *
 * Ownership: borrowed from the generated (static) descriptor.
 * Threads: any thread while |ctx| is valid (it never changes).
 */
ORPC_EXTERN const orpc_method_desc *orpc_ctx_method(const orpc_ctx *ctx);

/**
 * @function
 * The call's deadline on the monotonic clock (uv_hrtime() nanoseconds), or
 * INT64_MAX when the client set none.
 *
 * Ownership: nothing changes hands.
 * Threads: any thread while |ctx| is valid (it never changes).
 */
ORPC_EXTERN int64_t orpc_ctx_deadline_ns(const orpc_ctx *ctx);

/**
 * @function
 * Milliseconds left until the deadline (0 once passed), or INT64_MAX.
 *
 * Ownership: nothing changes hands.
 * Threads: any thread while |ctx| is valid.
 */
ORPC_EXTERN int64_t orpc_ctx_remaining_ms(const orpc_ctx *ctx);

/**
 * @function
 * Nonzero once the client cancelled, the connection dropped, the server is
 * shutting down past its grace period, or the deadline passed.
 *
 * Ownership: nothing changes hands.
 * Threads: any thread while |ctx| is valid.
 */
ORPC_EXTERN int orpc_ctx_is_cancelled(const orpc_ctx *ctx);

/**
 * @function
 * Registers |cb| to run once when the call is cancelled while its handler
 * is still at work (immediately, on this thread, if it already is).  A
 * second registration replaces the first.  |cb| runs on an IO thread and
 * must not block.
 *
 * Returns 0 or ORPC_EINVAL.
 *
 * Ownership: keeps |cb| and |user_data| until the call ends; |user_data|
 * stays the caller's.
 * Threads: the thread that owns the call.
 */
ORPC_EXTERN int orpc_ctx_on_cancel(orpc_ctx *ctx, orpc_cancel_cb cb,
                                   void *user_data);

/**
 * @function
 * The request metadata (custom keys only; `grpc-*` and pseudo-headers are
 * the runtime's).
 *
 * Ownership: borrowed from the call while |ctx| is valid; never change or
 * free it.
 * Threads: any thread while |ctx| is valid (it never changes).
 */
ORPC_EXTERN const orpc_metadata *orpc_ctx_metadata(const orpc_ctx *ctx);

/**
 * @function
 * Adds an entry to the response headers.  Headers go out with the first
 * response message or the status, whichever is first; after that this
 * returns ORPC_ESTATE.
 *
 * Returns 0, ORPC_EINVAL (see orpc_metadata_add()), ORPC_ESTATE or
 * ORPC_ENOMEM.
 *
 * Ownership: copies |key| and |value|.
 * Threads: the thread that owns the call.
 */
ORPC_EXTERN int orpc_ctx_add_header(orpc_ctx *ctx, const char *key,
                                    const void *value, size_t len);

/**
 * @function
 * Adds an entry to the trailers, sent with the status.
 *
 * One reserved key is accepted besides the application's own:
 * `grpc-retry-pushback-ms`, gRFC A6's server pushback, for a client that
 * retries the call.  A non-negative number of milliseconds asks it to wait
 * that long before its next attempt; a negative number (or anything else)
 * asks it not to retry.  Its value is 1 to 23 printable ASCII bytes; a
 * second one replaces the first.
 *
 * Returns 0, ORPC_EINVAL, ORPC_ESTATE (status already sent) or ORPC_ENOMEM.
 *
 * Ownership: copies |key| and |value|.
 * Threads: the thread that owns the call.
 */
ORPC_EXTERN int orpc_ctx_add_trailer(orpc_ctx *ctx, const char *key,
                                     const void *value, size_t len);

/**
 * @function
 * How many attempts of this RPC the client made before this one, from its
 * `grpc-previous-rpc-attempts` header (gRFC A6: a client that retries sends
 * it on every attempt after the first).  0 on a first attempt, from a
 * client that does not retry, or when the header is malformed.
 *
 * Ownership: nothing changes hands.
 * Threads: any thread while |ctx| is valid (it never changes).
 */
ORPC_EXTERN int orpc_ctx_previous_attempts(const orpc_ctx *ctx);

/**
 * @function
 * The caller's SPIFFE ID from its verified client certificate, or NULL when
 * the connection is not mutually authenticated or the certificate carries
 * no valid SPIFFE ID.
 *
 * Ownership: borrowed from the call while |ctx| is valid.
 * Threads: any thread while |ctx| is valid (it never changes).
 */
ORPC_EXTERN const char *orpc_ctx_peer_identity(const orpc_ctx *ctx);

/**
 * @function
 * The caller's address, "ip:port", "[ip6]:port" or "unix:path".
 *
 * Ownership: borrowed from the call while |ctx| is valid.
 * Threads: any thread while |ctx| is valid (it never changes).
 */
ORPC_EXTERN const char *orpc_ctx_peer_address(const orpc_ctx *ctx);

/**
 * @function
 * The call's arena: allocate the response's strings, bytes and sub-messages
 * here and they are freed with the call.
 *
 * Ownership: borrowed: the call frees it; never free or reset it.
 * Threads: the thread that owns the call (an arena has one thread at a time).
 */
ORPC_EXTERN orpc_arena *orpc_ctx_arena(orpc_ctx *ctx);

/**
 * @function
 * Compress response messages with |algorithm| ("gzip" or "identity") if the
 * client accepts it; otherwise responses stay uncompressed.
 *
 * Returns 0, ORPC_ENOTSUP (unknown algorithm), ORPC_ESTATE (headers sent)
 * or ORPC_EINVAL (NULL).
 *
 * Ownership: borrows |algorithm| for the call.
 * Threads: the thread that owns the call.
 */
ORPC_EXTERN int orpc_ctx_set_compression(orpc_ctx *ctx, const char *algorithm);

/**
 * @function
 * Per-message control after orpc_ctx_set_compression(ctx, "gzip"): nonzero
 * |on| compresses the following response messages, zero sends them
 * uncompressed (the call's grpc-encoding stays gzip).  Default: on.
 *
 * Returns 0 or ORPC_EINVAL.
 *
 * Ownership: nothing changes hands.
 * Threads: the thread that owns the call.
 */
ORPC_EXTERN int orpc_ctx_set_message_compression(orpc_ctx *ctx, int on);

/**
 * @function
 * Nonzero when the request message most recently received (the unary
 * request, or the last one orpc_ctx_recv() returned) arrived with the
 * compressed flag set.
 *
 * Ownership: nothing changes hands.
 * Threads: the thread that owns the call.
 */
ORPC_EXTERN int orpc_ctx_request_compressed(const orpc_ctx *ctx);

/**
 * @function
 * Receives the next request message of a client- or bidi-streaming call.
 * On a worker thread it blocks until a message, the end of the stream or a
 * cancellation.
 *
 * Returns 1 with |*msg| set (owned by the context, valid until the next
 * orpc_ctx_recv() or the handler's return); 0 at the end of the request
 * stream; ORPC_ECANCELLED; ORPC_ESTATE for a method whose requests are not
 * streamed; ORPC_EAGAIN on a non-blocking service when nothing has arrived
 * yet; ORPC_EBLOCKING when it would wait on an orpc IO thread (a deferred
 * call of a blocking service driven from a callback).
 *
 * Ownership: the context owns |*msg|: never free it.
 * Threads: the thread that owns the call; for a blocking service it waits
 * there, so not an orpc IO thread.
 */
ORPC_EXTERN int orpc_ctx_recv(orpc_ctx *ctx, ProtobufCMessage **msg);

/**
 * @function
 * Sends one response message of a server- or bidi-streaming call.  On a
 * worker thread it blocks while flow control holds the stream back, so a
 * handler that writes faster than its client reads is slowed down and its
 * memory stays bounded.
 *
 * Returns 0; ORPC_ECANCELLED; ORPC_ETOOBIG (over the send limit);
 * ORPC_ESTATE for a unary-response method; ORPC_EAGAIN on a non-blocking
 * service whose send buffer is full; ORPC_EBLOCKING when it would wait on
 * an orpc IO thread.
 *
 * Ownership: borrows |msg| until the function returns (it is serialized).
 * Threads: the thread that owns the call; for a blocking service it waits
 * there, so not an orpc IO thread.
 */
ORPC_EXTERN int orpc_ctx_send(orpc_ctx *ctx, const ProtobufCMessage *msg);

/**
 * @function
 * Tells the runtime that the handler will complete later: its return value
 * is then ignored and the call ends when orpc_ctx_finish() is called.
 *
 * Returns 0 or ORPC_ESTATE (already deferred).
 *
 * Ownership: |ctx| stays valid past the handler's return, until
 * orpc_ctx_finish(); the handler hands it to the thread that will finish it.
 * Threads: only the running handler, on its thread.
 */
ORPC_EXTERN int orpc_ctx_defer(orpc_ctx *ctx);

/**
 * @function
 * Completes a deferred call with |status| (and, for unary-response methods,
 * the response in orpc_ctx_response()).  Exactly once: once it returns,
 * |ctx| may be freed at any moment (when the status is sent), so a second
 * call is a use after free, not an error code.
 *
 * Valid even after orpc_server_free() (the call was cancelled then, and
 * finishing it only releases it).
 *
 * Returns 0 or ORPC_ESTATE (not deferred, or another thread finished it
 * first).
 *
 * Ownership: takes |status| (also on failure); on success |ctx| is no
 * longer the caller's.
 * Threads: any thread, the handler's own included (before it returns).
 */
ORPC_EXTERN int orpc_ctx_finish(orpc_ctx *ctx, orpc_status status);

/**
 * @function
 * For generated code: the decoded request of a method whose request is not
 * streamed (lives in the call's arena).
 *
 * Ownership: borrowed from the call while |ctx| is valid; never free it.
 * Threads: any thread while |ctx| is valid (it never changes).
 */
ORPC_EXTERN const ProtobufCMessage *orpc_ctx_request(const orpc_ctx *ctx);

/**
 * @function
 * For generated code: the response of a method whose response is not
 * streamed, initialised and living in the call's arena.
 *
 * Ownership: borrowed: the handler fills it (allocating from
 * orpc_ctx_arena()) and the runtime sends and frees it with the call.
 * Threads: the thread that owns the call.
 */
ORPC_EXTERN ProtobufCMessage *orpc_ctx_response(orpc_ctx *ctx);

#ifdef __cplusplus
}
#endif

#endif /* ORPC_CONTEXT_H */
