/*
 * stream.h — the inbound half of a gRPC stream, shared by the server and
 * the channel (internal): message assembly, the queue of messages waiting
 * for the application, and the HTTP/2 flow-control credit they hold.
 *
 * Where a message's memory is accounted, in one place:
 *
 *   - Stream level.  Every byte of a message, its 5-byte prefix included,
 *     is charged to the stream from the moment it arrives until the
 *     application takes the message (orpc__in_take_locked()); only then is
 *     it handed back to HTTP/2 (nghttp2_session_consume_stream), whatever
 *     DATA frames the peer cut it into.  So a peer can never have more than
 *     one stream window of messages buffered that the application has not
 *     read.  A message larger than the window would never complete under
 *     that rule, so when nothing is queued and the message in progress
 *     declares more than the window, the stream's window is raised to its
 *     length (bounded by the receive limit the deframer already checked).
 *     The window is never raised while messages wait to be read, so it
 *     cannot ratchet: per stream, buffered bytes stay under
 *     max(window, largest message) plus one message.
 *   - Connection level.  Bytes of a message still incomplete when a DATA
 *     frame has been processed go back to the connection window at once
 *     (otherwise two large messages in progress on two streams could each
 *     wait for connection credit the other holds); they are counted in the
 *     connection's |partial| counter instead, whose budget sheds the stream
 *     that would exceed it (ORPC_ELIMIT → RESOURCE_EXHAUSTED).  Bytes of a
 *     message completed in a frame hold connection credit until taken, so
 *     an application that stops reading stops the connection's senders at
 *     the connection window, not at the server's memory.
 *   - Hand-off.  A message that arrives while a reader is blocked waiting
 *     for it (more readers waiting than messages queued) is as good as
 *     taken: its credit goes back at once, from the IO thread.  That spares
 *     the reader a wake-up of the IO thread per message (ping-pong streams
 *     paid one per round trip), and bounds nothing less: a reader that is
 *     not waiting gets the rule above.
 *
 * Locking theory: the queue fields (marked "under *lock") are shared by the
 * IO thread and the application's thread and guarded by the owner's mutex,
 * |lock|; everything else belongs to the IO thread.  The engine never calls
 * nghttp2 with the lock held.
 */
#ifndef ORPC_STREAM_H
#define ORPC_STREAM_H

#include <nghttp2/nghttp2.h>
#include <protobuf-c/protobuf-c.h>
#include <uv.h>

#include "wire.h"

/* A received message waiting for the application. */
typedef struct orpc__inmsg {
    struct orpc__inmsg *next;
    ProtobufCMessage *msg;
    size_t stream_credit; /* prefix + body: stream credit held until taken */
    size_t conn_credit;   /* the part still held at connection level */
    int compressed;       /* arrived with the compressed flag */
    int credited;         /* handed to a waiting reader: credit went back */
} orpc__inmsg;

typedef struct orpc__instream {
    uv_mutex_t *lock;       /* the owner's */
    uv_cond_t *cond;        /* the owner's: readers wait on it */
    const orpc_mem *mem;    /* the owner's: queue entries, the deframer */
    ProtobufCAllocator *pb; /* what the messages were unpacked with */
    /* IO thread */
    orpc__deframer deframer;
    size_t *conn_partial; /* the connection's count of partial bytes */
    size_t conn_budget;   /* their limit */
    size_t partial;       /* this stream's share of *conn_partial */
    size_t partial_conn;  /* bytes of the partial message conn-returned */
    size_t conn_held;     /* connection credit not yet given back */
    int32_t window;       /* the stream's local window, as we set it */
    int dead;             /* no more messages: data is given back at once */
    /* under *lock */
    orpc__inmsg *head, *tail;
    size_t queued;     /* messages in the queue */
    size_t received;   /* messages ever delivered */
    size_t ret_stream; /* credit of taken messages, for the IO thread */
    size_t ret_conn;
    int waiting; /* readers blocked for a message */
} orpc__instream;

/*
 * Decodes one complete message for the owner.  Returns 0 with |*out| set
 * to queue it, 1 when the owner kept it itself (its credit is given back at
 * once), or a negative ORPC_E* code when the call must end (the owner has
 * already ended it; the engine gives back the rest of the bytes).
 */
typedef int (*orpc__in_decode_fn)(void *owner, const uint8_t *p, size_t len,
                                  int compressed, ProtobufCMessage **out);

/* |max_message| bounds a message's declared length, |window| is the stream
 * window announced in SETTINGS; |conn_partial| / |conn_budget| are the
 * connection's partial-byte counter and its limit (0: none).  |mem| (NULL:
 * libc) allocates the queue and the deframer's buffer; |pb| is the
 * allocator the owner's decode function unpacks messages with (NULL:
 * protobuf-c's default), which orpc__in_free() frees queued ones with.
 * Both must outlive the stream. */
void orpc__in_init(orpc__instream *in, uv_mutex_t *lock, uv_cond_t *cond,
                   const orpc_mem *mem, ProtobufCAllocator *pb,
                   size_t max_message, int32_t window, size_t *conn_partial,
                   size_t conn_budget);

/*
 * Feeds a DATA chunk (IO thread).  Returns the number of messages queued
 * (waiting readers are woken through |cond|), or a negative code when the call
 * must end: ORPC_ETOOBIG (a message over the limit), ORPC_EPROTO (bad framing),
 * ORPC_ELIMIT (the connection's partial budget), ORPC_ENOMEM, or what
 * |decode| returned.  After an error the stream is dead: later data is given
 * back at once.
 */
int orpc__in_data(orpc__instream *in, nghttp2_session *s, int32_t id,
                  const uint8_t *data, size_t len, orpc__in_decode_fn decode,
                  void *owner);

/* Gives back credit of bytes that will never reach the application (the
 * call is over) (IO thread). */
void orpc__in_discard(nghttp2_session *s, int32_t id, size_t len);

/* Takes the oldest queued message (caller holds *lock), or NULL.  Its credit
 * is owed to HTTP/2 from now on (unless it was handed off): when
 * orpc__in_owed_locked() says so, the caller makes the IO thread run
 * orpc__in_give_back().  A reader that waits for a message counts itself in
 * |waiting| (under the lock) while it waits. */
orpc__inmsg *orpc__in_take_locked(orpc__instream *in);

/* Nonzero when taken messages' credit waits for orpc__in_give_back()
 * (caller holds *lock). */
int orpc__in_owed_locked(const orpc__instream *in);

/* Hands the credit of taken messages back to HTTP/2 and raises the window
 * for a large message in progress when nothing is queued (IO thread). */
void orpc__in_give_back(orpc__instream *in, nghttp2_session *s, int32_t id);

/* The same in two steps, for an owner that holds its lock anyway: the
 * amounts are taken under the lock, then given back without it. */
typedef struct orpc__in_owed {
    size_t stream, conn, queued;
} orpc__in_owed;
void orpc__in_take_owed_locked(orpc__instream *in, orpc__in_owed *o);
void orpc__in_give_owed(orpc__instream *in, nghttp2_session *s, int32_t id,
                        const orpc__in_owed *o);

/* The stream is gone (IO thread): connection credit still held goes back
 * (|s| may be NULL when the connection is gone too); the stream is dead. */
void orpc__in_release(orpc__instream *in, nghttp2_session *s);

/* Nonzero when part of a message has arrived (a stream ending now was cut
 * short). */
int orpc__in_partial(const orpc__instream *in);

/* Frees queued messages and the deframer (any thread, last reference). */
void orpc__in_free(orpc__instream *in);

#endif /* ORPC_STREAM_H */
