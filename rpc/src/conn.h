/*
 * conn.h — one HTTP/2 connection: a socket, optional TLS over memory BIOs
 * and an nghttp2 session, shared by servers and channels (internal).
 *
 * Data flow:
 *   socket read → [SSL_read via rbio] → nghttp2_session_mem_recv
 *   nghttp2_session_mem_send → [SSL_write via wbio] → one uv_write per turn
 * Output is never written from inside a callback: anything that may produce
 * frames marks the connection dirty, and the IO thread's end-of-turn check
 * flushes every dirty connection once, so a turn that answered 50 calls ends
 * in one encrypt-and-write (write coalescing).
 *
 * A connection belongs to its IO thread.  Its owner (a server or a
 * subchannel) supplies the nghttp2 callbacks and learns of its end through
 * on_close, after which the connection is freed.
 */
#ifndef ORPC_CONN_H
#define ORPC_CONN_H

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <uv.h>

#include "io.h"
#include "tls_internal.h"
#include "wire.h"

typedef struct orpc__conn orpc__conn;

#define ORPC__CONN_PAGES 3

/*
 * The layer between the socket and the session: plaintext (h2c) or TLS over
 * memory BIOs.  One handshake path serves servers and clients.
 */
typedef struct orpc__transport {
    /* Bytes read from the socket: whatever plaintext they carry goes to
     * the session.  0, or -1 when the connection is closing. */
    int (*input)(orpc__conn *c, const uint8_t *p, size_t n);
    /* Advances the handshake: 1 when done (and the peer accepted), 0 while
     * it needs the peer's bytes, -1 when the connection is closing. */
    int (*handshake)(orpc__conn *c);
    /* Frames from the session, to be written.  0 or -1 (closing). */
    int (*output)(orpc__conn *c, const uint8_t *p, size_t n);
    /* Moves what the transport has for the wire (TLS records) to c->out.
     * 0 or -1 (out of memory). */
    int (*drain)(orpc__conn *c);
} orpc__transport;

typedef struct orpc__conn_hooks {
    /* The TLS handshake finished (TLS only); return nonzero to refuse the
     * peer (the connection closes). */
    int (*on_handshake)(orpc__conn *c, void *user_data);
    /* The connection is gone: socket closed or failed.  |reason| is a short
     * text (static) saying why.  The owner must drop every stream; |c| is
     * freed right after this returns. */
    void (*on_close)(orpc__conn *c, const char *reason, void *user_data);
} orpc__conn_hooks;

struct orpc__conn {
    orpc__io *io;
    const orpc_mem *mem; /* the owner's: the connection and everything it
                            and its session allocate (conn.c) */
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
        uv_handle_t handle;
        uv_stream_t stream;
    } h;
    int is_pipe;
    nghttp2_session *session;
    const orpc__transport *tp; /* plaintext or TLS */
    SSL *ssl;                  /* NULL for h2c */
    int handshake_done;
    orpc__buf out;      /* bytes waiting for the next write */
    orpc__buf inflight; /* bytes of the write in progress */
    uv_write_t wreq;
    int writing;
    orpc__flush flush;     /* queued on the io for the end of the turn */
    int closing;           /* uv_close called or about to be */
    int close_after_flush; /* close once the output is written */
    int goaway_pull;       /* closing for a queued GOAWAY: pull it once */
    const char *close_reason;
    const orpc__conn_hooks *hooks;
    void *user_data;        /* the owner's; also nghttp2's user_data */
    char peer[72];          /* "ip:port" or "unix:" */
    char *peer_identity;    /* SPIFFE ID of a verified peer certificate */
    orpc__peer_names names; /* the verified certificate's names (TLS) */
    size_t max_out;         /* refuse to buffer more than this (flood guard) */
    nghttp2_mem h2mem;      /* the session's allocator (conn.c) */
    struct {
        void *ptr;
        size_t len;
        int scratch;           /* the frame buffer: dead between frames */
    } paged[ORPC__CONN_PAGES]; /* session allocations with pages of their own */
    int trimmed;               /* orpc__conn_trim() since the last input */
    size_t in_partial;         /* bytes of incomplete inbound messages held by
                                  this connection's streams (stream.h) */
    int64_t last_activity_ns;
    /* Server connections before (and instead of) a session: the owner's
     * handler of the plaintext (protocol sniffing, then HTTP/1.1), and what
     * it has for the wire when a flush finds no write in flight.  With
     * |in_hook| set, TLS accepts any ALPN and the owner decides. */
    int (*in_hook)(orpc__conn *c, const uint8_t *p, size_t n);
    void (*out_hook)(orpc__conn *c);
    int read_paused;
    /* Lingering close (orpc__conn_close_lingering()): once the answer is
     * written, half-close and read (discarding) until the peer's FIN, so
     * that a request the server did not read whole does not turn the close
     * into a reset that destroys the answer before the peer reads it. */
    int linger;
    int lingering;
    uv_shutdown_t shutdown_req;
};

/* Initialises the socket handle of |c| on |io| (TCP or pipe).  |c| was
 * allocated with |mem| (its owner's hooks, which must outlive it), which
 * frees it after on_close; the session allocates with |mem| too. */
int orpc__conn_init(orpc__conn *c, const orpc_mem *mem, orpc__io *io,
                    int is_pipe, const orpc__conn_hooks *hooks,
                    void *user_data);

/*
 * Sets up TLS (when |ssl_ctx| is not NULL; |server_side| picks the role,
 * |sni| is sent by clients) and the nghttp2 session with |cbs| and |opt|
 * (none when |cbs| is NULL: see orpc__conn_start_session()), then starts
 * reading.  For clients the session is created now; the
 * connection preface is written on the first flush.
 */
int orpc__conn_start(orpc__conn *c, SSL_CTX *ssl_ctx, int server_side,
                     const char *sni, nghttp2_session_callbacks *cbs,
                     nghttp2_option *opt);

/* Creates the nghttp2 session of a connection started without one
 * (orpc__conn_start() with NULL |cbs|: the owner sniffed the protocol) and
 * takes the plaintext from now on.  0 or ORPC_ENOMEM. */
int orpc__conn_start_session(orpc__conn *c, int server_side,
                             nghttp2_session_callbacks *cbs,
                             nghttp2_option *opt);

/* Plaintext bytes for the wire from the owner of a connection without a
 * session (HTTP/1.1), through TLS when there is TLS.  0 or -1 (closing). */
int orpc__conn_write_raw(orpc__conn *c, const void *p, size_t n);

/* Bytes encoded and not yet written (back-pressure for raw output). */
size_t orpc__conn_pending_out(const orpc__conn *c);

/* Stops (1) or resumes (0) reading from the socket. */
void orpc__conn_pause_read(orpc__conn *c, int pause);

/* Schedules a flush at the end of this turn. */
void orpc__conn_kick(orpc__conn *c);

/* Writes what nghttp2 has to send now (normally called from the io's
 * end-of-turn check). */
void orpc__conn_flush(orpc__conn *c);

/* Pulls what the session has to send into the output buffer now, even
 * while a write is in flight (up to the buffer's bound), and schedules the
 * write: frames submitted afterwards follow these on the wire.  nghttp2
 * sends control frames (a GOAWAY) ahead of DATA it has queued; pulling
 * first keeps them in the order they were made. */
void orpc__conn_pull(orpc__conn *c);

/* Closes now (pending output is dropped). */
void orpc__conn_close(orpc__conn *c, const char *reason);

/* Closes once what is already encoded (a TLS alert) has been written; no
 * more frames are taken from the session. */
void orpc__conn_close_after_flush(orpc__conn *c, const char *reason);

/* As orpc__conn_close_after_flush(), but once the output is written the
 * connection is half-closed and the peer's further bytes are read and
 * dropped until it closes too; the owner bounds how long (a timer that
 * calls orpc__conn_close()).  For HTTP/1.1 answers sent before the request
 * was read whole (RFC 9112, 9.6). */
void orpc__conn_close_lingering(orpc__conn *c, const char *reason);

/* Closes after one more batch of the session's frames, which carries the
 * GOAWAY just submitted (or queued by nghttp2 on a protocol error). */
void orpc__conn_goaway_close(orpc__conn *c, const char *reason);

/* Hands the pages of the session's frame buffer back to the kernel when
 * nothing waits to be sent (an idle connection).  Cheap, but a system
 * call: for connections that went idle, not per frame. */
void orpc__conn_trim(orpc__conn *c);

/* Fills c->peer from the socket. */
void orpc__conn_set_peer_name(orpc__conn *c);

#endif /* ORPC_CONN_H */
