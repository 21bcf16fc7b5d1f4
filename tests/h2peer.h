/*
 * h2peer.h — a hand-rolled HTTP/2 peer for tests that play a hostile client
 * or server against orpc (frames on a socket, HPACK from nghttp2).
 *
 * It does what no well-behaved library would: cut messages at any byte,
 * answer a unary call with endless messages, send header lists far past a
 * limit, refuse every stream.  It tracks the flow-control windows the other
 * side grants, so a test can send exactly as much as orpc allows and count
 * it.  Every read has a timeout; nothing here asserts (helpers may run on
 * threads other than cmocka's): failures are return codes.
 */
#ifndef ORPC_TEST_H2PEER_H
#define ORPC_TEST_H2PEER_H

#include <stddef.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>

#define H2P_MAX_STREAM 4096 /* stream ids tracked for flow control */

typedef struct h2p {
    int fd;
    nghttp2_hd_deflater *def;
    nghttp2_hd_inflater *inf;
    uint8_t buf[1 << 17]; /* bytes read, not yet framed */
    size_t have;
    uint8_t frame[1 << 17]; /* payload of the last frame read */
    /* what we may still send, as the other side granted it */
    int64_t conn_window;
    int64_t init_window;                  /* its SETTINGS_INITIAL_WINDOW_SIZE */
    int64_t stream_delta[H2P_MAX_STREAM]; /* updates minus bytes sent */
} h2p;

typedef struct h2p_frame {
    int type;
    uint8_t flags;
    uint32_t stream;
    const uint8_t *payload; /* valid until the next read */
    size_t len;
} h2p_frame;

/* What a HEADERS block said (the fields tests look at). */
typedef struct h2p_head {
    int http_status; /* 0: none */
    int grpc_status; /* -1: none */
    char message[256];
    size_t fields;
} h2p_head;

enum {
    H2P_DATA = 0,
    H2P_HEADERS = 1,
    H2P_RST = 3,
    H2P_SETTINGS = 4,
    H2P_PING = 6,
    H2P_GOAWAY = 7,
    H2P_WINDOW_UPDATE = 8,
    H2P_CONTINUATION = 9
};

/* Connects to 127.0.0.1:|port| as a client and sends the preface and an
 * empty SETTINGS.  0; -1 when the connection failed; -2 when it was made
 * but the server closed it before the preface was written. */
int h2p_dial(h2p *p, int port);

/* A listening socket on 127.0.0.1 (ephemeral port in |*port|), or -1. */
int h2p_listen(int *port);

/* Accepts one client on |lfd| within |timeout_ms|, reads its preface and
 * sends our (empty) SETTINGS.  0 or -1. */
int h2p_accept(h2p *p, int lfd, int timeout_ms);

void h2p_close(h2p *p);

int h2p_write_frame(h2p *p, int type, uint8_t flags, uint32_t stream,
                    const void *payload, size_t len);

/* Reads one frame within |timeout_ms|: returns its type, -1 when the
 * connection closed, -2 on timeout.  SETTINGS are acknowledged, PINGs
 * answered and WINDOW_UPDATEs applied before the frame is returned. */
int h2p_read_frame(h2p *p, int timeout_ms, h2p_frame *f);

/* Encodes |n| header fields and sends them as HEADERS (+ CONTINUATION). */
int h2p_headers(h2p *p, uint32_t stream, const nghttp2_nv *nv, size_t n,
                int end_stream);

/* The request headers of a gRPC call to |path| (application/grpc). */
int h2p_request(h2p *p, uint32_t stream, const char *path, int end_stream);

/* Decodes a HEADERS payload (no padding or priority) into |h|. */
int h2p_decode(h2p *p, const uint8_t *payload, size_t len, h2p_head *h);

/* Sends DATA and charges it to the windows. */
int h2p_data(h2p *p, uint32_t stream, const void *data, size_t len, int end);

/* How many bytes of DATA the other side lets us send on |stream| now. */
int64_t h2p_window(const h2p *p, uint32_t stream);

/* A gRPC message prefix (uncompressed, |len| bytes follow). */
void h2p_prefix(uint8_t out[5], uint32_t len);

/* Sends GOAWAY with |last_stream| and the error code |error|. */
int h2p_goaway(h2p *p, uint32_t last_stream, uint32_t error);

/* Answers |stream| as a gRPC server would: response headers, one message
 * of the |len| bytes at |msg| (the prefix is added), trailers with
 * grpc-status 0.  Within the windows for small messages only. */
int h2p_grpc_ok(h2p *p, uint32_t stream, const void *msg, size_t len);

/* Resident set size of this process in bytes (from /proc), or 0. */
size_t h2p_rss(void);

#endif
