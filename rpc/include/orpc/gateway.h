/*
 * orpc/gateway.h — answering requests that are not gRPC (JSON over
 * HTTP/1.1, or over HTTP/2 with another content type) from the same
 * handlers, on the same listeners.
 *
 * Every orpc listener takes both: on TLS the protocol is chosen by ALPN
 * ("h2" or "http/1.1"), in cleartext by the first bytes (the HTTP/2 preface
 * or an HTTP/1.x request line).  The runtime owns the HTTP: parsing,
 * keep-alive, pipelining (answered in order), Content-Length and chunked
 * bodies, Expect: 100-continue, limits and timeouts.  A *gateway* owns the
 * meaning: which method a request names and how JSON becomes a message and
 * back.  orpc's own gateway (orpc/compat/serve.h) serves the legacy routes
 * of the methods' google.api.http rules and the Connect protocol; an
 * application may install its own.
 *
 * One request is an *exchange*.  Its life:
 *
 *   on_request (a worker thread,   the gateway reads the request and either
 *    or first the IO thread when   answers it (orpc_http_respond()) or runs
 *    inline_first is set)          a method (orpc_http_call())
 *   on_message (the handler's      each response message of the call,
 *               thread)            encoded into the body
 *                                  (orpc_http_body_append())
 *   on_status  (any thread)        the call's final status: the gateway sets
 *                                  the HTTP status, headers and (for an
 *                                  error) the body
 *   on_done    (the IO thread)     the exchange is over: free its state
 *
 * A unary call's body is held until its status is known, then sent with a
 * Content-Length.  A server-streaming call's response starts (200, chunked
 * on HTTP/1.1) with its first message; what on_status appends after that is
 * the last chunk.  Exchange functions are called only from these callbacks,
 * on the thread running the callback.
 */
#ifndef ORPC_GATEWAY_H
#define ORPC_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include <orpc/common.h>
#include <orpc/metadata.h>
#include <orpc/status.h>

#ifdef __cplusplus
extern "C" {
#endif

struct orpc_server;

/** One HTTP request being answered. */
typedef struct orpc_http_exchange orpc_http_exchange;

/** What a gateway does with exchanges; every member may be NULL except
 *  |on_request|. */
typedef struct orpc_gateway {
    /**
     * The server starts (orpc_server_start()): its services are all
     * registered (orpc_server_service() lists them).  Nonzero refuses the
     * start with that error.
     */
    int (*on_start)(struct orpc_server *srv, void *user_data);
    /**
     * A request arrived, its body complete (a worker thread: the gateway may
     * block, e.g. to verify a token with another service; with
     * |inline_first|, first the connection's IO thread, see there).  Call
     * orpc_http_respond() or orpc_http_call() before returning; a negative
     * return (or neither call) answers 500.
     */
    int (*on_request)(orpc_http_exchange *x, void *user_data);
    /**
     * A response message of the method run by orpc_http_call(): append its
     * encoding with orpc_http_body_append().  Nonzero ends the call
     * INTERNAL (e.g. the message cannot be encoded).
     */
    int (*on_message)(orpc_http_exchange *x, const ProtobufCMessage *msg,
                      void *user_data);
    /**
     * The call ended with |st| (also when it never reached its handler:
     * refused by the policy or an interceptor, past its deadline, the
     * server overloaded).  Set the HTTP status (orpc_http_set_status(); 200
     * if not) and headers; for an error, replace the body
     * (orpc_http_body_reset()).  Once orpc_http_started() the head is out
     * and only appending remains.
     */
    void (*on_status)(orpc_http_exchange *x, const orpc_status *st,
                      void *user_data);
    /** The exchange is over (answered, or its connection lost). */
    void (*on_done)(orpc_http_exchange *x, void *user_data);
    /**
     * Nonzero: on_request is called first on the connection's IO thread,
     * with no hand-off to the worker pool (orpc_http_may_block() is 0
     * there).  On the IO thread it must not block: when answering would
     * (a token to verify with another service, a slow lookup), it returns
     * ORPC_EBLOCKING before calling orpc_http_respond() or orpc_http_call()
     * (no header added; a state it set stays the exchange's), and the
     * runtime calls on_request again on a worker, as without
     * this flag.  ORPC_EBLOCKING after an answer or a call answers 500.
     * A call it starts goes through the same admission and dispatch as one
     * started from a worker (a non-blocking service's handler runs inline,
     * a blocking one's on the pool).  0 (the default): on_request always
     * runs on a worker.
     */
    int inline_first;
} orpc_gateway;

/**
 * @function
 * Installs |gw| on |srv| before orpc_server_start().  Without a gateway,
 * HTTP/1.1 requests get `GET /health` (200 or 503 from the health
 * service) and 404 for the rest, and HTTP/2 streams that are not gRPC
 * the gRPC path's 415; with one, both are its exchanges.  Returns 0, or ORPC_EINVAL (NULL |srv|
 * or |gw|, no on_request, or the server has started).
 *
 * Ownership: borrows |gw| and |user_data| until orpc_server_free() (both
 * must outlive the server).
 * Threads: the thread that configures the server, before it starts.
 */
ORPC_EXTERN int orpc_server_set_gateway(struct orpc_server *srv,
                                        const orpc_gateway *gw,
                                        void *user_data);

/* ---- the request (valid until on_done) -------------------------------- */

/** "GET", "POST", ...
 * Ownership: the exchange's, valid until on_done.
 * Threads: the exchange's callbacks. */
ORPC_EXTERN const char *orpc_http_method(const orpc_http_exchange *x);
/** The request target as received: the path and any "?query", still
 *  percent-encoded.
 *  Ownership: the exchange's, valid until on_done.
 *  Threads: the exchange's callbacks. */
ORPC_EXTERN const char *orpc_http_target(const orpc_http_exchange *x);
/** The value of header |name| (case-insensitive; repeated headers: the
 *  first), or NULL.
 *  Ownership: borrows |name|; the value is the exchange's, valid until
 *  on_done.
 *  Threads: the exchange's callbacks. */
ORPC_EXTERN const char *orpc_http_header(const orpc_http_exchange *x,
                                         const char *name);
/** Every request header (names lower-case), in order.
 *  Ownership: the exchange's, valid until on_done.
 *  Threads: the exchange's callbacks. */
ORPC_EXTERN const orpc_metadata *orpc_http_headers(const orpc_http_exchange *x);
/** The body (possibly empty; never NULL) and its length (|len| may be
 *  NULL).
 *  Ownership: the exchange's, valid until on_done.
 *  Threads: the exchange's callbacks. */
ORPC_EXTERN const uint8_t *orpc_http_body(const orpc_http_exchange *x,
                                          size_t *len);
/** 1 for HTTP/1.x, 2 for HTTP/2.
 *  Ownership: nothing changes hands.
 *  Threads: the exchange's callbacks. */
ORPC_EXTERN int orpc_http_version(const orpc_http_exchange *x);
/** "ip:port" of the peer.
 *  Ownership: the exchange's, valid until on_done.
 *  Threads: the exchange's callbacks. */
ORPC_EXTERN const char *orpc_http_peer(const orpc_http_exchange *x);
/** The SPIFFE ID of the peer's verified certificate, or NULL.
 *  Ownership: the exchange's, valid until on_done.
 *  Threads: the exchange's callbacks. */
ORPC_EXTERN const char *orpc_http_peer_identity(const orpc_http_exchange *x);
/** The server.
 *  Ownership: borrowed; the server outlives its exchanges.
 *  Threads: the exchange's callbacks. */
ORPC_EXTERN struct orpc_server *orpc_http_server(const orpc_http_exchange *x);

/** Sets the gateway's own per-exchange pointer.
 *  Ownership: borrows |state|; the gateway frees it (on_done).
 *  Threads: the exchange's callbacks (one at a time). */
ORPC_EXTERN void orpc_http_set_state(orpc_http_exchange *x, void *state);
/** The gateway's own per-exchange pointer (NULL until set).
 *  Ownership: nothing changes hands.
 *  Threads: the exchange's callbacks. */
ORPC_EXTERN void *orpc_http_state(const orpc_http_exchange *x);

/** 0 when the calling callback runs on an orpc IO thread (on_request of
 *  an |inline_first| gateway before its hand-off, on_status, on_done, a
 *  non-blocking handler's on_message), where nothing may block; 1 on a
 *  worker thread, where on_request may block.
 *  Ownership: nothing changes hands.
 *  Threads: the exchange's callbacks. */
ORPC_EXTERN int orpc_http_may_block(const orpc_http_exchange *x);

/* ---- answers ---------------------------------------------------------- */

/**
 * @function
 * Answers without running a method (on_request only): |status| (100 to
 * 599 excluded 1xx) with |content_type| (NULL for none) and |len| bytes of
 * |body|.  Headers added with orpc_http_add_header() go with it.  Returns
 * 0, ORPC_EINVAL (a bad status or content type), ORPC_ESTATE (already
 * answered, or a call was started) or ORPC_ENOMEM.
 *
 * Ownership: copies |content_type| and |body|.
 * Threads: on_request's thread (a worker, or the IO thread with
 * inline_first).
 */
ORPC_EXTERN int orpc_http_respond(orpc_http_exchange *x, int status,
                                  const char *content_type, const void *body,
                                  size_t len);

/** Options of orpc_http_call(). */
typedef struct orpc_http_call_opts {
    /** The call's deadline, ms from now; 0 for none. */
    int64_t timeout_ms;
    /** The caller's identity when the gateway authenticated it (e.g.
     *  "legacy-user:alice" from a bearer token): what
     *  orpc_ctx_peer_identity() returns and the authorization policy
     *  matches as the principal.  NULL: the connection's (TLS) identity. */
    const char *identity;
    /** Request metadata the handler sees (copied); NULL for none. */
    const orpc_metadata *metadata;
    /** Content type of a server-streaming response ("application/x-ndjson"
     *  if NULL). */
    const char *stream_content_type;
} orpc_http_call_opts;

/**
 * @function
 * Runs the method at |path| ("/pkg.Service/Method", a registered one;
 * unary or server-streaming) with |request| (of its input type) through
 * the server's interceptors, policy and handler, exactly as a gRPC call
 * (on_request only).  The call starts once on_request has returned.
 * ORPC_ENOTFOUND when no such method is registered, ORPC_EINVAL for a
 * client- or bidi-streaming one (or NULL arguments), ORPC_ESTATE when the
 * exchange was answered or a call started already, ORPC_ENOMEM; the
 * exchange is then still the gateway's to answer.
 *
 * Ownership: borrows |request| until on_done; copies |path| and what
 * |opts| points to.
 * Threads: on_request's thread (a worker, or the IO thread with
 * inline_first).
 */
ORPC_EXTERN int orpc_http_call(orpc_http_exchange *x, const char *path,
                               const ProtobufCMessage *request,
                               const orpc_http_call_opts *opts);

/** Sets the response's HTTP status (on_request, on_status before the head
 *  is out; ignored after, or outside 200 to 599).
 *  Ownership: nothing changes hands.
 *  Threads: the exchange's callbacks. */
ORPC_EXTERN void orpc_http_set_status(orpc_http_exchange *x, int status);
/** Adds a response header.  ORPC_EINVAL for names or values with
 *  characters HTTP forbids, or after the head is out; ORPC_ENOMEM.
 *  Content-Length, Transfer-Encoding and Connection are the runtime's:
 *  ORPC_EINVAL.
 *  Ownership: copies |name| and |value|.
 *  Threads: the exchange's callbacks. */
ORPC_EXTERN int orpc_http_add_header(orpc_http_exchange *x, const char *name,
                                     const char *value);
/** Appends to the response body.  0 or ORPC_ENOMEM.
 *  Ownership: copies |p|.
 *  Threads: the exchange's callbacks. */
ORPC_EXTERN int orpc_http_body_append(orpc_http_exchange *x, const void *p,
                                      size_t len);
/** Drops the body appended so far (not what is already sent).
 *  Ownership: nothing changes hands.
 *  Threads: the exchange's callbacks. */
ORPC_EXTERN void orpc_http_body_reset(orpc_http_exchange *x);
/** Nonzero once the response head is on its way (a streaming response
 *  sent its first message).
 *  Ownership: nothing changes hands.
 *  Threads: the exchange's callbacks. */
ORPC_EXTERN int orpc_http_started(const orpc_http_exchange *x);
/** In on_status: the response metadata the call's handler set
 *  (orpc_ctx_add_header()), or NULL when none or when the call never
 *  reached a handler.  Keys are lower-case; "-bin" values are raw bytes.
 *  Ownership: borrowed until on_status returns.
 *  Threads: on_status only. */
ORPC_EXTERN const orpc_metadata *
orpc_http_response_headers(const orpc_http_exchange *x);
/** In on_status: the trailing metadata the call's handler set
 *  (orpc_ctx_add_trailer()), or NULL; as orpc_http_response_headers().
 *  Ownership: borrowed until on_status returns.
 *  Threads: on_status only. */
ORPC_EXTERN const orpc_metadata *
orpc_http_response_trailers(const orpc_http_exchange *x);

/* ---- what the gateway needs of the server ---------------------------- */

struct orpc_service_desc;
struct orpc_method_desc;

/** The |i|th registered service (the runtime's own included, once
 *  started), or NULL past the last.
 *  Ownership: the server's, valid until orpc_server_free().
 *  Threads: any thread once the server has started (on_start included);
 *  before, the thread configuring it. */
ORPC_EXTERN const struct orpc_service_desc *
orpc_server_service(const struct orpc_server *srv, size_t i);

#ifdef __cplusplus
}
#endif

#endif /* ORPC_GATEWAY_H */
