/*
 * orpc/call.h — the client side of one RPC: call options, unary callbacks
 * and streaming call objects.
 *
 * A streaming call is started with orpc_channel_call_start() or
 * orpc_client_call_start() (orpc/client.h); the generated stubs wrap both in
 * typed functions.  Its life: send messages (client or bidi streaming), close
 * the send side, receive messages until orpc_call_recv() returns 0, then
 * orpc_call_finish() for the status, which also frees the call.
 *
 * A call is blocking or asynchronous, chosen when it starts.  A blocking
 * call's sends and receives block the calling thread, which must not be an
 * orpc IO thread: from one (a callback, an inline handler) they fail at once
 * with ORPC_EBLOCKING, and a blocking unary call ends FAILED_PRECONDITION,
 * because the thread would wait for work only it can do.  An asynchronous
 * call (orpc_channel_call_start_async()) delivers its headers, messages and
 * status to callbacks on the channel's IO thread and never blocks: a send
 * that finds the call's buffer full returns ORPC_EAGAIN and on_ready tells
 * when to try again; orpc_call_pause_recv() holds messages back, and with
 * them the HTTP/2 credit the server needs to send more.
 *
 * Thread-safety: a blocking call object belongs to one thread at a time,
 * except orpc_call_cancel(), which any thread may call while the call is
 * alive.  An asynchronous call may be used from any thread (sends from two
 * threads at once are not ordered) while the application holds its
 * reference (until orpc_call_unref()).
 */
#ifndef ORPC_CALL_H
#define ORPC_CALL_H

#include <protobuf-c/protobuf-c.h>

#include <orpc/common.h>
#include <orpc/metadata.h>
#include <orpc/method.h>
#include <orpc/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Which side carried a call (see orpc_call_opts.served_by). */
typedef enum orpc_served_by {
    /** Neither: the call was refused before it was handed to a transport
     *  (e.g. routed to gRPC by a client without a channel). */
    ORPC_SERVED_NONE = 0,
    /** The gRPC side carried it; its status says whether a server
     *  answered (UNAVAILABLE: none could be reached). */
    ORPC_SERVED_GRPC = 1,
    /** The legacy JSON/HTTP side carried it (orpc/compat/router.h). */
    ORPC_SERVED_LEGACY = 2
} orpc_served_by;

/**
 * How far a call's request got (see orpc_call_opts.reached): what a caller
 * needs to know before sending the same request somewhere else.
 */
typedef enum orpc_call_reach {
    /** It never left this process: no connection could be made, or the
     *  call ended before its stream was opened. */
    ORPC_REACH_NONE = 0,
    /** It was sent, and the server said it did not process it: the stream
     *  was refused (REFUSED_STREAM) or was above a GOAWAY's last stream. */
    ORPC_REACH_REFUSED = 1,
    /** It was sent, and a handler may have run: sending it again may do
     *  the work twice. */
    ORPC_REACH_SENT = 2
} orpc_call_reach;

/**
 * Per-call options.  Pass NULL for all defaults, or zero-initialise and set
 * what applies; fields are only ever appended.
 */
typedef struct orpc_call_opts {
    /** Deadline relative to the call's start, in milliseconds; 0 takes the
     *  channel's default (none unless set).  Sent as `grpc-timeout`. */
    int64_t timeout_ms;
    /** Request metadata; borrowed until the call starts (it is copied). */
    const orpc_metadata *metadata;
    /** Compress request messages: "gzip", or NULL/"identity" for none. */
    const char *compression;
    /** Wait for the channel to connect instead of failing fast with
     *  UNAVAILABLE while it cannot. */
    int wait_for_ready;
    /** When not NULL, receives the response headers (appended). */
    orpc_metadata *headers_out;
    /** When not NULL, receives the trailers (appended). */
    orpc_metadata *trailers_out;
    /** When not NULL, set to the side that answered the call; for an
     *  asynchronous call, before its callback runs (keep it valid until
     *  then).  A shadow call's mirror is not counted here. */
    orpc_served_by *served_by;
    /** When not NULL, set to how far the request got once the call ends
     *  (ORPC_REACH_NONE when it starts); for an asynchronous call, before
     *  its callback runs (keep it valid until then).  The routed client's
     *  `fallback` mode uses it to send only what provably did not run. */
    orpc_call_reach *reached;
    /** The server call this call is made on behalf of: its trace context
     *  (`traceparent`, `tracestate`) continues in this call.  NULL: the
     *  handler running on this thread, if any (orpc/observe.h).  Borrowed
     *  until the call starts. */
    const struct orpc_ctx *parent;
} orpc_call_opts;

/**
 * Completion of an asynchronous unary call.  |status| is borrowed for the
 * duration of the callback.  |response| is NULL unless status->code is
 * ORPC_OK; the callback owns it and frees it with
 * protobuf_c_message_free_unpacked(response, NULL).  Runs on an orpc thread:
 * it must not block.
 */
typedef void (*orpc_unary_cb)(const orpc_status *status,
                              ProtobufCMessage *response, void *user_data);

/**
 * How generated code completes a typed asynchronous call: orpc calls |done|
 * with the typed callback the stub was given, converted back by the stub's
 * own trampoline.  Only generated code needs this.
 */
typedef void (*orpc_unary_trampoline)(const orpc_status *status,
                                      ProtobufCMessage *response,
                                      orpc_fn typed_cb, void *user_data);

/** A client call in progress. */
typedef struct orpc_call orpc_call;

/**
 * The callbacks of an asynchronous streaming call.  Each runs on the
 * channel's IO thread, must not block, and may use the call (send, close
 * the send side, cancel, pause or resume receiving).  Only on_done is
 * required.  Ownership: the struct is copied when the call starts.
 */
typedef struct orpc_call_callbacks {
    /** The response headers arrived: the server's custom metadata,
     *  borrowed during the callback (NULL when it sent none). */
    void (*on_headers)(orpc_call *call, const orpc_metadata *headers,
                       void *user_data);
    /** One response message; the callback takes it (free with
     *  protobuf_c_message_free_unpacked(msg, NULL)).  Its HTTP/2 credit
     *  goes back to the server when the callback returns. */
    void (*on_message)(orpc_call *call, ProtobufCMessage *msg, void *user_data);
    /** A send that returned ORPC_EAGAIN may be retried: the call's send
     *  buffer has room again. */
    void (*on_ready)(orpc_call *call, void *user_data);
    /** The call is over (|status| borrowed during the callback): the last
     *  callback.  Messages that arrived before the end are delivered first,
     *  unless the application cancelled the call. */
    void (*on_done)(orpc_call *call, const orpc_status *status,
                    void *user_data);
} orpc_call_callbacks;

/**
 * @function
 * Sends one request message.  A blocking call blocks while HTTP/2 flow
 * control or the call's send buffer holds it back, until the deadline at
 * most; an asynchronous call queues the message and returns ORPC_EAGAIN
 * instead of blocking once its buffer (64 KiB) is full (on_ready follows).
 *
 * Returns 0; ORPC_ESTATE when the send side was closed or the method's kind
 * sends only one request; ORPC_ECLOSED when the call has ended (call
 * orpc_call_finish() for why); ORPC_ETOOBIG when the message is over the
 * send limit; ORPC_EAGAIN (asynchronous, not sent); ORPC_EBLOCKING for a
 * blocking call on an orpc IO thread; ORPC_EINVAL (NULL, or a message of
 * another type than the method's request).
 *
 * Ownership: borrows |msg| until the function returns (it is serialized).
 * Threads: a blocking call's owner, never an orpc IO thread; for an
 * asynchronous call any thread, its callbacks included.
 */
ORPC_EXTERN int orpc_call_send(orpc_call *call, const ProtobufCMessage *msg);

/**
 * @function
 * Closes the send side (END_STREAM): the server sees the end of the request
 * stream.  Calling it twice is harmless.  It never blocks.
 *
 * Returns 0 or ORPC_ECLOSED.
 *
 * Ownership: nothing changes hands.
 * Threads: a blocking call's owner; for an asynchronous call any thread,
 * its callbacks included.
 */
ORPC_EXTERN int orpc_call_close_send(orpc_call *call);

/**
 * @function
 * Waits for the next response message.
 *
 * Returns 1 with |*msg| set (the caller owns it: free with
 * protobuf_c_message_free_unpacked(*msg, NULL)); 0 at the end of the
 * response stream; or a negative ORPC_E* code (ORPC_ECLOSED when the call
 * failed: orpc_call_finish() gives the status; ORPC_ESTATE for an
 * asynchronous call, whose messages go to on_message; ORPC_EBLOCKING on an
 * orpc IO thread).
 *
 * Ownership: the caller owns |*msg| and frees it with
 * protobuf_c_message_free_unpacked(*msg, NULL).
 * Threads: the thread that owns the call, never an orpc IO thread.
 */
ORPC_EXTERN int orpc_call_recv(orpc_call *call, ProtobufCMessage **msg);

/**
 * @function
 * Cancels the call (RST_STREAM CANCEL); its status becomes CANCELLED unless
 * it had already ended.  Harmless after the call ended.
 *
 * Ownership: nothing changes hands; the call stays the caller's.
 * Threads: any thread while the caller holds the call (until
 * orpc_call_finish() or orpc_call_unref()), and the call's callbacks.
 */
ORPC_EXTERN void orpc_call_cancel(orpc_call *call);

/**
 * @function
 * The response headers, once they have arrived (after the first
 * orpc_call_recv() returns), else NULL.
 *
 * Ownership: borrowed from the call until orpc_call_finish() (an
 * asynchronous call: while the caller holds its reference).
 * Threads: a blocking call's owner; for an asynchronous call any thread.
 */
ORPC_EXTERN const orpc_metadata *orpc_call_headers(const orpc_call *call);

/**
 * @function
 * Waits for the call to end, frees it and returns its status.  A call whose
 * responses were not all read is cancelled first.  Not for asynchronous
 * calls (FAILED_PRECONDITION, the call untouched: their status goes to
 * on_done).
 *
 * Ownership: takes |call|; the caller clears the returned status with
 * orpc_status_clear().
 * Threads: the thread that owns the call; on an orpc IO thread, only once
 * the call has ended (else FAILED_PRECONDITION, the call cancelled and freed).
 */
ORPC_EXTERN orpc_status orpc_call_finish(orpc_call *call);

/**
 * @function
 * Ends a client-streaming call: closes the send side, waits for the one
 * response message and the status, and frees the call.  On ORPC_OK
 * |*response| is set (the caller frees it with
 * protobuf_c_message_free_unpacked()); otherwise it is NULL.  A server that
 * ends with OK but no response, or with more than one, yields INTERNAL.
 * Not for asynchronous calls (FAILED_PRECONDITION, the call untouched).
 *
 * Ownership: takes |call|; the caller owns |*response| and clears the
 * returned status with orpc_status_clear().
 * Threads: as orpc_call_finish().
 */
ORPC_EXTERN orpc_status orpc_call_finish_response(orpc_call *call,
                                                  ProtobufCMessage **response);

/**
 * @function
 * Stops delivering response messages to on_message: they wait in the call,
 * holding their HTTP/2 credit, so a server that keeps sending is stopped by
 * flow control after one stream window.  Asynchronous calls only.  A
 * message already being delivered is not recalled.
 *
 * Returns 0, ORPC_EINVAL or ORPC_ESTATE (a blocking call).
 *
 * Ownership: nothing changes hands.
 * Threads: any thread, the call's callbacks included.
 */
ORPC_EXTERN int orpc_call_pause_recv(orpc_call *call);

/**
 * @function
 * Resumes delivery after orpc_call_pause_recv(): waiting messages, then
 * on_done if the call has ended, follow on the IO thread.
 *
 * Returns 0, ORPC_EINVAL or ORPC_ESTATE (a blocking call).
 *
 * Ownership: nothing changes hands.
 * Threads: any thread, the call's callbacks included; on the channel's IO
 * thread, outside this call's callbacks, it delivers before it returns.
 */
ORPC_EXTERN int orpc_call_resume_recv(orpc_call *call);

/**
 * @function
 * Drops the application's reference to an asynchronous call.  The call
 * goes on (cancel it first to stop it) and its callbacks still run until
 * on_done; the handle they receive stays valid while they run.  Does
 * nothing on NULL.
 *
 * Ownership: ends the caller's reference; the caller must not use |call|
 * afterwards (its callbacks still may, with the handle they receive).
 * Threads: any thread, the call's callbacks included.
 */
ORPC_EXTERN void orpc_call_unref(orpc_call *call);

#ifdef __cplusplus
}
#endif

#endif /* ORPC_CALL_H */
