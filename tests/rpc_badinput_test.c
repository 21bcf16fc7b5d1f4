/*
 * rpc_badinput_test.c — hostile and broken peers against orpc's server and
 * channel, on loopback.
 *
 * The peer here is hand-rolled: raw frames on a blocking socket (HPACK from
 * nghttp2's deflater/inflater), so it can do what no well-behaved library
 * would: skip the preface, declare oversized messages, cut a message short,
 * open more streams than allowed, never read, or vanish mid-call.  Every
 * read has a timeout, so a server that fails to answer fails the test
 * instead of hanging it, and a timeout is told apart from the server
 * closing the connection: "refused" means the server answered or closed,
 * never that nothing happened before the timeout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <nghttp2/nghttp2.h>
#include <uv.h>

#include <orpc/orpc.h>

#include "grpc/testing/test.orpc.h"

/* ---- a server with a few behaviours ---- */

static uv_mutex_t g_lock;
static int g_sent;      /* responses the streaming handler managed to send */
static int g_cancelled; /* handlers that saw their call cancelled */

static orpc_status unary_call(orpc_ctx *ctx,
                              const Grpc__Testing__SimpleRequest *req,
                              Grpc__Testing__SimpleResponse *resp, void *ud)
{
    (void)ctx;
    (void)req;
    (void)resp;
    (void)ud;
    return ORPC_STATUS_OK;
}

static orpc_status streaming_output(
    orpc_ctx *ctx, const Grpc__Testing__StreamingOutputCallRequest *req,
    Grpc__Testing__TestService_StreamingOutputCall_ServerWriter *w, void *ud)
{
    (void)ud;
    for (size_t i = 0; i < req->n_response_parameters; i++) {
        Grpc__Testing__StreamingOutputCallResponse r =
            GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
        Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
        size_t n = (size_t)req->response_parameters[i]->size;
        uint8_t *body = calloc(1, n + 1);
        p.body.data = body;
        p.body.len = n;
        r.payload = &p;
        int rc =
            grpc__testing__test_service__server__streaming_output_call__send(
                w, &r);
        free(body);
        if (rc != 0)
            break;
        uv_mutex_lock(&g_lock);
        g_sent++;
        uv_mutex_unlock(&g_lock);
    }
    if (orpc_ctx_is_cancelled(ctx)) {
        uv_mutex_lock(&g_lock);
        g_cancelled++;
        uv_mutex_unlock(&g_lock);
    }
    return ORPC_STATUS_OK;
}

static orpc_status
streaming_input(orpc_ctx *ctx,
                Grpc__Testing__TestService_StreamingInputCall_ServerReader *r,
                Grpc__Testing__StreamingInputCallResponse *resp, void *ud)
{
    (void)ud;
    (void)resp;
    const Grpc__Testing__StreamingInputCallRequest *m;
    int rc;
    while (
        (rc = grpc__testing__test_service__server__streaming_input_call__recv(
             r, &m)) == 1)
        ;
    if (rc < 0 || orpc_ctx_is_cancelled(ctx)) {
        uv_mutex_lock(&g_lock);
        g_cancelled++;
        uv_mutex_unlock(&g_lock);
        return orpc_status_new(ORPC_CANCELLED, "cancelled");
    }
    return ORPC_STATUS_OK;
}

static const Grpc__Testing__TestService_Handlers handlers = {
    .unary_call = unary_call,
    .streaming_output_call = streaming_output,
    .streaming_input_call = streaming_input,
};

typedef struct fx {
    orpc_server *srv;
    int port;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    orpc_server_opts o = {
        .plaintext = 1, .io_threads = 1, .max_concurrent_streams = 2};
    assert_int_equal(orpc_server_new(&f->srv, &o, NULL, NULL), 0);
    assert_int_equal(
        grpc__testing__test_service__server__register(f->srv, &handlers, NULL),
        0);
    assert_int_equal(orpc_server_listen(f->srv, "127.0.0.1:0", &f->port, NULL), 0);
    assert_int_equal(orpc_server_start(f->srv), 0);
    uv_mutex_lock(&g_lock);
    g_sent = g_cancelled = 0;
    uv_mutex_unlock(&g_lock);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    assert_int_equal(orpc_server_shutdown(f->srv, 500), 0);
    assert_int_equal(orpc_server_wait(f->srv), 0);
    orpc_server_free(f->srv);
    free(f);
    return 0;
}

/* ---- a raw HTTP/2 peer ---- */

typedef struct raw {
    int fd;
    nghttp2_hd_deflater *def;
    nghttp2_hd_inflater *inf;
    uint8_t buf[1 << 16];
    size_t have;
} raw;

static int raw_connect(raw *r, int port, int preface)
{
    struct sockaddr_in a;
    struct timeval tv = {3, 0};
    memset(r, 0, sizeof(*r));
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (r->fd < 0 || connect(r->fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        return -1;
    if (setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0)
        return -1;
    if (nghttp2_hd_deflate_new(&r->def, 4096) != 0 ||
        nghttp2_hd_inflate_new(&r->inf) != 0)
        return -1;
    if (preface) {
        const char *p = NGHTTP2_CLIENT_MAGIC;
        if (write(r->fd, p, strlen(p)) < 0)
            return -1;
        uint8_t settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
        if (write(r->fd, settings, 9) != 9)
            return -1;
    }
    return 0;
}

static void raw_close(raw *r)
{
    if (r->fd >= 0)
        close(r->fd);
    nghttp2_hd_deflate_del(r->def);
    nghttp2_hd_inflate_del(r->inf);
}

static void put_frame(raw *r, uint8_t type, uint8_t flags, uint32_t stream,
                      const void *payload, size_t len)
{
    uint8_t h[9] = {(uint8_t)(len >> 16),
                    (uint8_t)(len >> 8),
                    (uint8_t)len,
                    type,
                    flags,
                    (uint8_t)(stream >> 24),
                    (uint8_t)(stream >> 16),
                    (uint8_t)(stream >> 8),
                    (uint8_t)stream};
    assert_int_equal(write(r->fd, h, 9), 9);
    if (len > 0)
        assert_int_equal(write(r->fd, payload, len), (ssize_t)len);
}

#define MKNV(n, v)                                                             \
    {                                                                          \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v),              \
            NGHTTP2_NV_FLAG_NONE                                               \
    }

static void put_headers(raw *r, uint32_t stream, const char *path,
                        const char *ctype, const char *extra_name,
                        const char *extra_value, int end_stream)
{
    nghttp2_nv nv[8] = {
        MKNV(":method", "POST"), MKNV(":scheme", "http"),
        MKNV(":path", path),     MKNV(":authority", "localhost"),
        MKNV("te", "trailers"),  MKNV("content-type", ctype),
    };
    size_t n = 6;
    if (extra_name) {
        nv[n].name = (uint8_t *)extra_name;
        nv[n].namelen = strlen(extra_name);
        nv[n].value = (uint8_t *)extra_value;
        nv[n].valuelen = strlen(extra_value);
        nv[n].flags = NGHTTP2_NV_FLAG_NO_INDEX;
        n++;
    }
    size_t cap = nghttp2_hd_deflate_bound(r->def, nv, n);
    uint8_t *blk = malloc(cap);
    ssize_t len = nghttp2_hd_deflate_hd(r->def, blk, cap, nv, n);
    assert_true(len > 0);
    /* split into HEADERS + CONTINUATION frames of at most 16 KiB */
    size_t off = 0, max = 16384;
    uint8_t first_flags = end_stream ? 0x1 : 0;
    while (off < (size_t)len) {
        size_t chunk = (size_t)len - off < max ? (size_t)len - off : max;
        int last = off + chunk == (size_t)len;
        put_frame(r, off == 0 ? 0x1 : 0x9,
                  (uint8_t)((off == 0 ? first_flags : 0) | (last ? 0x4 : 0)),
                  stream, blk + off, chunk);
        off += chunk;
    }
    free(blk);
}

#define FRAME_CLOSED (-1)  /* the peer closed or reset the connection */
#define FRAME_TIMEOUT (-2) /* nothing complete arrived within the 3 s */

/* Reads one frame; returns its type, FRAME_CLOSED on EOF or a reset, or
 * FRAME_TIMEOUT when the read timed out (or the buffer filled up without a
 * whole frame). */
static int get_frame(raw *r, uint32_t *stream, uint8_t *flags,
                     uint8_t **payload, size_t *len)
{
    for (;;) {
        if (r->have >= 9) {
            size_t l = ((size_t)r->buf[0] << 16) | ((size_t)r->buf[1] << 8) |
                       r->buf[2];
            if (r->have >= 9 + l) {
                int type = r->buf[3];
                *flags = r->buf[4];
                *stream = ((uint32_t)(r->buf[5] & 0x7f) << 24) |
                          ((uint32_t)r->buf[6] << 16) |
                          ((uint32_t)r->buf[7] << 8) | r->buf[8];
                *payload = malloc(l + 1);
                memcpy(*payload, r->buf + 9, l);
                *len = l;
                memmove(r->buf, r->buf + 9 + l, r->have - 9 - l);
                r->have -= 9 + l;
                return type;
            }
        }
        if (r->have == sizeof(r->buf))
            return FRAME_TIMEOUT;
        ssize_t n = read(r->fd, r->buf + r->have, sizeof(r->buf) - r->have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE)))
            return FRAME_CLOSED;
        if (n < 0)
            return FRAME_TIMEOUT; /* EAGAIN: SO_RCVTIMEO ran out */
        r->have += (size_t)n;
    }
}

typedef struct outcome {
    int grpc_status; /* -1 when none seen */
    int http_status;
    int rst_code; /* -1 when none */
    int goaway;
    int closed;    /* the server closed the connection (EOF or reset) */
    int timed_out; /* nothing ended the stream within the read timeout */
    char message[256];
} outcome;

static void decode_headers(raw *r, const uint8_t *p, size_t len, outcome *o)
{
    while (len > 0) {
        nghttp2_nv nv;
        int fl = 0;
        ssize_t used = nghttp2_hd_inflate_hd2(r->inf, &nv, &fl, p, len, 1);
        assert_true(used >= 0);
        p += used;
        len -= (size_t)used;
        if (fl & NGHTTP2_HD_INFLATE_EMIT) {
            if (nv.namelen == 11 && memcmp(nv.name, "grpc-status", 11) == 0)
                o->grpc_status = atoi((const char *)nv.value);
            else if (nv.namelen == 7 && memcmp(nv.name, ":status", 7) == 0)
                o->http_status = atoi((const char *)nv.value);
            else if (nv.namelen == 12 &&
                     memcmp(nv.name, "grpc-message", 12) == 0)
                snprintf(o->message, sizeof(o->message), "%.*s",
                         (int)nv.valuelen, nv.value);
        }
        if (fl & NGHTTP2_HD_INFLATE_FINAL) {
            nghttp2_hd_inflate_end_headers(r->inf);
            break;
        }
        if (used == 0 && !(fl & NGHTTP2_HD_INFLATE_EMIT))
            break;
    }
}

/* Reads frames until stream |id| ends (END_STREAM or RST) or the
 * connection does. */
static outcome await_stream(raw *r, uint32_t id)
{
    outcome o = {-1, 0, -1, 0, 0, 0, ""};
    for (int i = 0; i < 10000; i++) {
        uint32_t s;
        uint8_t fl, *p;
        size_t len;
        int t = get_frame(r, &s, &fl, &p, &len);
        if (t == FRAME_TIMEOUT) {
            o.timed_out = 1;
            return o;
        }
        if (t < 0) {
            o.closed = 1;
            return o;
        }
        if (t == 0x4 && !(fl & 0x1)) /* SETTINGS: ack */
            put_frame(r, 0x4, 0x1, 0, NULL, 0);
        if (t == 0x7)
            o.goaway = 1;
        if (s == id && t == 0x1)
            decode_headers(r, p, len, &o);
        if (s == id && t == 0x3 && len == 4)
            o.rst_code = (int)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
                               ((uint32_t)p[2] << 8) | p[3]);
        free(p);
        if (s == id && ((t == 0x1 || t == 0x0) && (fl & 0x1)))
            return o;
        if (s == id && t == 0x3)
            return o;
        if (o.goaway && t == 0x7)
            return o;
    }
    return o;
}

static void put_message(raw *r, uint32_t stream, uint32_t declared,
                        const uint8_t *body, size_t len, int end)
{
    uint8_t *b = malloc(5 + len);
    b[0] = 0;
    b[1] = (uint8_t)(declared >> 24);
    b[2] = (uint8_t)(declared >> 16);
    b[3] = (uint8_t)(declared >> 8);
    b[4] = (uint8_t)declared;
    if (len)
        memcpy(b + 5, body, len);
    put_frame(r, 0x0, end ? 0x1 : 0, stream, b, 5 + len);
    free(b);
}

static const char *UNARY = "/grpc.testing.TestService/UnaryCall";

/* The server still answers a well-formed call afterwards. */
static void assert_server_healthy(int port)
{
    raw r;
    assert_int_equal(raw_connect(&r, port, 1), 0);
    put_headers(&r, 1, UNARY, "application/grpc", NULL, NULL, 0);
    put_message(&r, 1, 0, NULL, 0, 1);
    outcome o = await_stream(&r, 1);
    assert_false(o.timed_out);
    assert_int_equal(o.grpc_status, 0);
    raw_close(&r);
}

/* ---- tests ---- */

static void test_no_preface_garbage(void **state)
{
    fx *f = *state;
    raw r;
    assert_int_equal(raw_connect(&r, f->port, 0), 0);
    /* (an HTTP/1.x request line is served as HTTP/1.1 now: rpc_h1_test.c;
     * bytes that are neither the preface nor a request line are refused) */
    const char junk[] = "\x16\x03\x01 hello, neither HTTP/2 nor HTTP/1\r\n\r\n";
    assert_int_equal(write(r.fd, junk, sizeof(junk) - 1),
                     (ssize_t)sizeof(junk) - 1);
    outcome o = await_stream(&r, 1);
    assert_false(o.timed_out);         /* not hung ... */
    assert_true(o.closed || o.goaway); /* ... but refused */
    raw_close(&r);
    assert_server_healthy(f->port);
}

static void test_random_bytes_after_preface(void **state)
{
    fx *f = *state;
    raw r;
    assert_int_equal(raw_connect(&r, f->port, 1), 0);
    uint8_t junk[512];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(i * 131 + 7);
    assert_int_equal(write(r.fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
    outcome o = await_stream(&r, 1);
    assert_false(o.timed_out);
    assert_true(o.closed || o.goaway);
    raw_close(&r);
    assert_server_healthy(f->port);
}

static void test_length_prefix_over_limit(void **state)
{
    fx *f = *state;
    raw r;
    assert_int_equal(raw_connect(&r, f->port, 1), 0);
    put_headers(&r, 1, UNARY, "application/grpc", NULL, NULL, 0);
    put_message(&r, 1, 5u * 1024 * 1024, (const uint8_t *)"abc", 3, 0);
    outcome o = await_stream(&r, 1);
    assert_int_equal(o.grpc_status, ORPC_RESOURCE_EXHAUSTED);
    raw_close(&r);
}

static void test_message_cut_short(void **state)
{
    fx *f = *state;
    raw r;
    assert_int_equal(raw_connect(&r, f->port, 1), 0);
    put_headers(&r, 1, UNARY, "application/grpc", NULL, NULL, 0);
    put_message(&r, 1, 100, (const uint8_t *)"0123456789", 10, 1);
    outcome o = await_stream(&r, 1);
    assert_int_equal(o.grpc_status, ORPC_INTERNAL);
    assert_non_null(strstr(o.message, "cut short"));
    raw_close(&r);
}

static void test_not_protobuf(void **state)
{
    fx *f = *state;
    raw r;
    static const uint8_t bad[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    assert_int_equal(raw_connect(&r, f->port, 1), 0);
    put_headers(&r, 1, UNARY, "application/grpc", NULL, NULL, 0);
    put_message(&r, 1, sizeof(bad), bad, sizeof(bad), 1);
    outcome o = await_stream(&r, 1);
    assert_int_equal(o.grpc_status, ORPC_INTERNAL);
    raw_close(&r);
}

static void test_wrong_content_type(void **state)
{
    fx *f = *state;
    raw r;
    assert_int_equal(raw_connect(&r, f->port, 1), 0);
    put_headers(&r, 1, UNARY, "application/json", NULL, NULL, 1);
    outcome o = await_stream(&r, 1);
    assert_int_equal(o.http_status, 415);
    raw_close(&r);
}

static void test_unknown_method_and_service(void **state)
{
    fx *f = *state;
    raw r;
    assert_int_equal(raw_connect(&r, f->port, 1), 0);
    put_headers(&r, 1, "/grpc.testing.TestService/Nope", "application/grpc",
                NULL, NULL, 0);
    put_message(&r, 1, 0, NULL, 0, 1);
    outcome o = await_stream(&r, 1);
    assert_int_equal(o.grpc_status, ORPC_UNIMPLEMENTED);
    put_headers(&r, 3, "/no.Such/Thing", "application/grpc+proto", NULL, NULL,
                0);
    put_message(&r, 3, 0, NULL, 0, 1);
    o = await_stream(&r, 3);
    assert_int_equal(o.grpc_status, ORPC_UNIMPLEMENTED);
    raw_close(&r);
}

static void test_header_list_over_limit(void **state)
{
    fx *f = *state;
    raw r;
    char *big = malloc(20000);
    memset(big, 'a', 19999);
    big[19999] = '\0';
    assert_int_equal(raw_connect(&r, f->port, 1), 0);
    put_headers(&r, 1, UNARY, "application/grpc", "x-big", big, 0);
    put_message(&r, 1, 0, NULL, 0, 1);
    outcome o = await_stream(&r, 1);
    /* refused with a status, as gRPC does (RESOURCE_EXHAUSTED), not by
     * resetting the stream or dropping the connection, and never accepted */
    assert_false(o.timed_out);
    assert_false(o.closed);
    assert_int_equal(o.rst_code, -1);
    assert_int_equal(o.grpc_status, ORPC_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(o.message, "header list"));
    raw_close(&r);
    free(big);
    assert_server_healthy(f->port);
}

static void test_too_many_streams_refused(void **state)
{
    fx *f = *state;
    raw r;
    const char *in = "/grpc.testing.TestService/StreamingInputCall";
    assert_int_equal(raw_connect(&r, f->port, 1), 0);
    /* max_concurrent_streams is 2: the third open stream is refused */
    put_headers(&r, 1, in, "application/grpc", NULL, NULL, 0);
    put_headers(&r, 3, in, "application/grpc", NULL, NULL, 0);
    put_headers(&r, 5, in, "application/grpc", NULL, NULL, 0);
    outcome o = await_stream(&r, 5);
    assert_int_equal(o.rst_code, NGHTTP2_REFUSED_STREAM);
    raw_close(&r); /* drops streams 1 and 3 mid-call */
    for (int i = 0; i < 200; i++) {
        uv_mutex_lock(&g_lock);
        int c = g_cancelled;
        uv_mutex_unlock(&g_lock);
        if (c == 2)
            break;
        usleep(10000);
    }
    uv_mutex_lock(&g_lock);
    assert_int_equal(g_cancelled, 2); /* both handlers saw the drop */
    uv_mutex_unlock(&g_lock);
}

static void test_client_never_reads(void **state)
{
    fx *f = *state;
    raw r;
    /* Ask for 2000 responses of 32 KiB (64 MB) and never read a byte. */
    Grpc__Testing__StreamingOutputCallRequest req =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    Grpc__Testing__ResponseParameters rp =
        GRPC__TESTING__RESPONSE_PARAMETERS__INIT;
    Grpc__Testing__ResponseParameters **rps = calloc(2000, sizeof(*rps));
    rp.size = 32768;
    for (int i = 0; i < 2000; i++)
        rps[i] = &rp;
    req.n_response_parameters = 2000;
    req.response_parameters = rps;
    size_t n =
        grpc__testing__streaming_output_call_request__get_packed_size(&req);
    uint8_t *buf = malloc(n);
    grpc__testing__streaming_output_call_request__pack(&req, buf);
    assert_int_equal(raw_connect(&r, f->port, 1), 0);
    int rcvbuf = 4096;
    assert_int_equal(
        setsockopt(r.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
    put_headers(&r, 1, "/grpc.testing.TestService/StreamingOutputCall",
                "application/grpc", NULL, NULL, 0);
    put_message(&r, 1, (uint32_t)n, buf, n, 1);
    /* The handler starts sending (bounded: 10 s) ... */
    int sent = 0;
    for (int i = 0; i < 1000 && sent == 0; i++) {
        usleep(10000);
        uv_mutex_lock(&g_lock);
        sent = g_sent;
        uv_mutex_unlock(&g_lock);
    }
    assert_true(sent > 0);
    /* ... and stops: wait until the count holds still for 300 ms (bounded:
     * 20 s), which a handler ignoring flow control reaches only at 2000. */
    int last = -1;
    for (int i = 0; i < 66 && sent != last; i++) {
        last = sent;
        usleep(300000);
        uv_mutex_lock(&g_lock);
        sent = g_sent;
        uv_mutex_unlock(&g_lock);
    }
    assert_int_equal(sent, last); /* it did stop */
    /* Flow control holds the handler back: the 64 KiB stream window, the
     * 64 KiB send queue, and the 1 MiB the connection buffers for writing
     * ... a few dozen messages at most, not 2000. */
    assert_true(sent > 0);
    assert_true(sent < 100);
    raw_close(&r);
    for (int i = 0; i < 300; i++) {
        uv_mutex_lock(&g_lock);
        int c = g_cancelled;
        uv_mutex_unlock(&g_lock);
        if (c == 1)
            break;
        usleep(10000);
    }
    uv_mutex_lock(&g_lock);
    assert_int_equal(g_cancelled, 1); /* dropping the connection frees it */
    assert_true(g_sent < 100);
    uv_mutex_unlock(&g_lock);
    free(buf);
    free(rps);
}

/* A "server" that accepts, reads a little, and hangs up mid-call. */
static void rude_server(void *arg)
{
    int lfd = *(int *)arg;
    int c = accept(lfd, NULL, NULL);
    if (c >= 0) {
        char b[256];
        struct timeval tv = {2, 0};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        (void)!read(c, b, sizeof(b));
        close(c);
    }
}

static void test_server_drops_connection(void **state)
{
    (void)state;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(lfd, 4), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &al), 0);
    uv_thread_t t;
    assert_int_equal(uv_thread_create(&t, rude_server, &lfd), 0);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", ntohs(a.sin_port));
    orpc_channel *ch;
    orpc_client *cl;
    orpc_channel_opts co = {.plaintext = 1};
    assert_int_equal(orpc_channel_new(&ch, target, &co, NULL, NULL), 0);
    assert_int_equal(
        orpc_client_new(&cl, &grpc__testing__test_service__orpc_desc, ch, NULL, NULL),
        0);
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__SimpleResponse *resp = NULL;
    orpc_call_opts o = {.timeout_ms = 5000};
    orpc_status st =
        grpc__testing__test_service__client__unary_call(cl, &req, &resp, &o);
    assert_int_equal(st.code, ORPC_UNAVAILABLE);
    assert_null(resp);
    orpc_status_clear(&st);
    uv_thread_join(&t);
    close(lfd);
    /* Nobody listening any more: UNAVAILABLE, promptly. */
    st = grpc__testing__test_service__client__unary_call(cl, &req, &resp, &o);
    assert_int_equal(st.code, ORPC_UNAVAILABLE);
    orpc_status_clear(&st);
    orpc_client_free(cl);
    orpc_channel_unref(ch);
}

/* A server with a handshake timeout of |handshake_ms| and a keepalive PING
 * every 100 ms (answered within 2 s, or the connection goes). */
static orpc_server *timed_server(int *port, int64_t handshake_ms)
{
    orpc_server *srv;
    orpc_server_opts o = {.plaintext = 1,
                          .io_threads = 1,
                          .handshake_timeout_ms = handshake_ms,
                          .keepalive_time_ms = 100,
                          .keepalive_timeout_ms = 2000};
    assert_int_equal(orpc_server_new(&srv, &o, NULL, NULL), 0);
    assert_int_equal(
        grpc__testing__test_service__server__register(srv, &handlers, NULL), 0);
    assert_int_equal(orpc_server_listen(srv, "127.0.0.1:0", port, NULL), 0);
    assert_int_equal(orpc_server_start(srv), 0);
    return srv;
}

/* Whether the server closed |fd| (EOF) within a bounded wait (10 s). */
static int server_closed(int fd)
{
    for (int i = 0; i < 1000; i++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 10) == 1) {
            char b[512];
            ssize_t n = read(fd, b, sizeof(b));
            if (n == 0 || (n < 0 && errno == ECONNRESET))
                return 1;
        }
    }
    return 0;
}

/* A client that connects and says nothing is closed after the handshake
 * timeout instead of holding its descriptor for ever. */
static void test_handshake_timeout(void **state)
{
    (void)state;
    int port;
    orpc_server *srv = timed_server(&port, 200);
    raw r;
    assert_int_equal(raw_connect(&r, port, 0), 0);
    assert_true(server_closed(r.fd));
    raw_close(&r);
    assert_server_healthy(port);
    assert_int_equal(orpc_server_shutdown(srv, 100), 0);
    assert_int_equal(orpc_server_wait(srv), 0);
    orpc_server_free(srv);
}

/* The server pings; a client that answers keeps its connection (three
 * pings here), one that stops answering loses it. */
static void test_server_keepalive(void **state)
{
    (void)state;
    int port;
    orpc_server *srv = timed_server(&port, 10000);
    raw r;
    assert_int_equal(raw_connect(&r, port, 1), 0);
    int pings = 0;
    for (int i = 0; i < 1000 && pings < 3; i++) {
        uint32_t sid;
        uint8_t fl, *p;
        size_t len;
        int t = get_frame(&r, &sid, &fl, &p, &len);
        assert_true(t >= 0); /* not closed while we answer */
        if (t == 0x4 && !(fl & 0x1))
            put_frame(&r, 0x4, 0x1, 0, NULL, 0);
        if (t == 0x6 && !(fl & 0x1) && len == 8) {
            put_frame(&r, 0x6, 0x1, 0, p, 8); /* PING ACK */
            pings++;
        }
        free(p);
    }
    assert_int_equal(pings, 3);
    /* now silent: the next PING goes unanswered */
    assert_true(server_closed(r.fd));
    raw_close(&r);
    assert_int_equal(orpc_server_shutdown(srv, 100), 0);
    assert_int_equal(orpc_server_wait(srv), 0);
    orpc_server_free(srv);
}

/* A client that floods PINGs (no data between them) is told
 * ENHANCE_YOUR_CALM "too_many_pings" and disconnected: the first ping is
 * fine, the next two are strikes, the third strike is one too many. */
static void test_ping_flood(void **state)
{
    fx *f = *state;
    raw r;
    assert_int_equal(raw_connect(&r, f->port, 1), 0);
    static const uint8_t data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    for (int i = 0; i < 4; i++)
        put_frame(&r, 0x6, 0, 0, data, 8);
    int acks = 0, goaway_code = -1;
    char debug[64] = "";
    for (int i = 0; i < 100; i++) {
        uint32_t sid;
        uint8_t fl, *p;
        size_t len;
        int t = get_frame(&r, &sid, &fl, &p, &len);
        if (t < 0)
            break;
        if (t == 0x6 && (fl & 0x1))
            acks++;
        if (t == 0x7 && len >= 8) {
            goaway_code = (p[4] << 24) | (p[5] << 16) | (p[6] << 8) | p[7];
            snprintf(debug, sizeof(debug), "%.*s", (int)(len - 8), p + 8);
        }
        free(p);
    }
    assert_int_equal(goaway_code, NGHTTP2_ENHANCE_YOUR_CALM);
    assert_string_equal(debug, "too_many_pings");
    assert_true(acks >= 3); /* the pings before the limit were answered */
    raw_close(&r);
    assert_server_healthy(f->port);
}

int main(void)
{
    /* a write to a connection the server closed fails an assertion
     * instead of killing the test */
    signal(SIGPIPE, SIG_IGN);
    uv_mutex_init(&g_lock);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_preface_garbage, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_random_bytes_after_preface, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_length_prefix_over_limit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_message_cut_short, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_not_protobuf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_content_type, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unknown_method_and_service, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_header_list_over_limit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_too_many_streams_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_client_never_reads, setup,
                                        teardown),
        cmocka_unit_test(test_server_drops_connection),
        cmocka_unit_test_setup_teardown(test_ping_flood, setup, teardown),
        cmocka_unit_test(test_handshake_timeout),
        cmocka_unit_test(test_server_keepalive),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    uv_mutex_destroy(&g_lock);
    return rc;
}
