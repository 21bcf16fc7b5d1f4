/*
 * fuzz_h2_server.c — libFuzzer target for the gRPC server's whole input
 * path: the input is what a client sends after its connection preface (the
 * magic and an empty SETTINGS frame), written over a loopback socket into a
 * real orpc server (HTTP/2 framing and HPACK in nghttp2, then orpc's
 * request headers, deadlines, deframing, decompression, decoding, dispatch,
 * streaming and cancellation).
 *
 * The server (started once, on 127.0.0.1:0, h2c, one IO thread) serves
 * grpc.testing.TestService: EmptyCall answers at once; UnaryCall blocks
 * until its call is cancelled (10 s at most); StreamingInputCall and
 * FullDuplexCall read (and echo) until the end of the requests;
 * StreamingOutputCall sends a few responses; the other methods are
 * unimplemented.
 *
 * Each input gets a fresh connection, written while the server's output is
 * read, until the server has been quiet for 10 ms after the last byte or
 * closed (200 ms at most); then the connection is closed.  Checked after
 * each input:
 *   - every handler it started has returned within 3 s (a call whose
 *     connection is gone is cancelled: none is left behind, blocked);
 *   - a fresh well-formed call (EmptyCall over an orpc channel) succeeds:
 *     nothing the input did broke the server for others.
 * At exit the server is shut down and freed, so that LeakSanitizer (the
 * libFuzzer and ASan builds) sees anything a connection left allocated.
 *
 * Built with -DORPC_FUZZ_STANDALONE it has a main() (standalone.h) that
 * replays the files named on the command line, or generated inputs (fixed
 * seed): well-formed calls of each kind, control frames, headers split
 * into CONTINUATION, and byte-flipped copies of those.  "-write-seeds DIR"
 * also saves them in DIR, a seed corpus for libFuzzer, which would
 * otherwise rarely produce valid HPACK.
 */
#include <arpa/inet.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <orpc/orpc.h>

#include "fuzz.h"
#include "grpc/testing/test.orpc.h"
#include "h2_peer.h"

/* ---- the server -------------------------------------------------------- */

static atomic_int g_active; /* handlers running */
static atomic_int g_calls;  /* handlers started, the fresh calls' included */
static atomic_int g_inputs; /* inputs run */

static orpc_status empty_call(orpc_ctx *ctx, const Grpc__Testing__Empty *req,
                              Grpc__Testing__Empty *resp, void *ud)
{
    (void)ctx;
    (void)req;
    (void)resp;
    (void)ud;
    atomic_fetch_add(&g_calls, 1);
    return ORPC_STATUS_OK;
}

/* The handler that blocks: until its call is cancelled (the connection
 * closes, a deadline passes, RST_STREAM), 10 s at most. */
static orpc_status unary_call(orpc_ctx *ctx,
                              const Grpc__Testing__SimpleRequest *req,
                              Grpc__Testing__SimpleResponse *resp, void *ud)
{
    (void)req;
    (void)resp;
    (void)ud;
    atomic_fetch_add(&g_active, 1);
    atomic_fetch_add(&g_calls, 1);
    int64_t end = h2_now_ms() + 10000;
    while (!orpc_ctx_is_cancelled(ctx) && h2_now_ms() < end) {
        usleep(1000);
    }
    atomic_fetch_sub(&g_active, 1);
    return orpc_status_new(ORPC_CANCELLED, "cancelled");
}

static orpc_status streaming_output(
    orpc_ctx *ctx, const Grpc__Testing__StreamingOutputCallRequest *req,
    Grpc__Testing__TestService_StreamingOutputCall_ServerWriter *w, void *ud)
{
    (void)ctx;
    (void)ud;
    atomic_fetch_add(&g_active, 1);
    atomic_fetch_add(&g_calls, 1);
    uint8_t body[256] = {0};
    for (size_t i = 0; i < req->n_response_parameters && i < 4; i++) {
        Grpc__Testing__StreamingOutputCallResponse r =
            GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
        Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
        int32_t size = req->response_parameters[i]->size;
        p.body.data = body;
        p.body.len = size < 0 ? 0 : size > 256 ? 256 : (size_t)size;
        r.payload = &p;
        if (grpc__testing__test_service__server__streaming_output_call__send(
                w, &r) != 0) {
            break;
        }
    }
    atomic_fetch_sub(&g_active, 1);
    return ORPC_STATUS_OK;
}

static orpc_status
streaming_input(orpc_ctx *ctx,
                Grpc__Testing__TestService_StreamingInputCall_ServerReader *r,
                Grpc__Testing__StreamingInputCallResponse *resp, void *ud)
{
    (void)ctx;
    (void)ud;
    atomic_fetch_add(&g_active, 1);
    atomic_fetch_add(&g_calls, 1);
    const Grpc__Testing__StreamingInputCallRequest *m;
    int32_t total = 0;
    int rc;
    while (
        (rc = grpc__testing__test_service__server__streaming_input_call__recv(
             r, &m)) == 1) {
        if (m->payload != NULL) {
            total += (int32_t)m->payload->body.len;
        }
    }
    resp->aggregated_payload_size = total;
    atomic_fetch_sub(&g_active, 1);
    return rc < 0 ? orpc_status_new(ORPC_CANCELLED, "cancelled")
                  : ORPC_STATUS_OK;
}

static orpc_status
full_duplex(orpc_ctx *ctx,
            Grpc__Testing__TestService_FullDuplexCall_ServerStream *s, void *ud)
{
    (void)ctx;
    (void)ud;
    atomic_fetch_add(&g_active, 1);
    atomic_fetch_add(&g_calls, 1);
    const Grpc__Testing__StreamingOutputCallRequest *m;
    uint8_t body[256] = {0};
    int rc;
    while ((rc = grpc__testing__test_service__server__full_duplex_call__recv(
                s, &m)) == 1) {
        Grpc__Testing__StreamingOutputCallResponse r =
            GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
        Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
        p.body.data = body;
        p.body.len = m->n_response_parameters;
        r.payload = &p;
        if (grpc__testing__test_service__server__full_duplex_call__send(
                s, &r) != 0) {
            break;
        }
    }
    atomic_fetch_sub(&g_active, 1);
    return rc < 0 ? orpc_status_new(ORPC_CANCELLED, "cancelled")
                  : ORPC_STATUS_OK;
}

static const Grpc__Testing__TestService_Handlers handlers = {
    .empty_call = empty_call,
    .unary_call = unary_call,
    .streaming_output_call = streaming_output,
    .streaming_input_call = streaming_input,
    .full_duplex_call = full_duplex,
};

static orpc_server *g_srv;
static int g_port;
static orpc_channel *g_ch;
static orpc_client *g_cl;

static void stop_server(void)
{
    orpc_client_free(g_cl);
    orpc_channel_unref(g_ch);
    CHECK(orpc_server_shutdown(g_srv, 1000) == 0);
    CHECK(orpc_server_wait(g_srv) == 0);
    orpc_server_free(g_srv);
    g_srv = NULL;
    CHECK(atomic_load(&g_active) == 0);
}

/* FUZZ_H2_LOG=1 in the environment: the server's log on stderr. */
static void log_stderr(orpc_log_level level, const char *msg, void *ud)
{
    (void)ud;
    fprintf(stderr, "server[%d]: %s\n", (int)level, msg);
}

static void start_server(void)
{
    /* The library writes to sockets whose peer may be gone. */
    signal(SIGPIPE, SIG_IGN);
    orpc_server_opts o = {.plaintext = 1,
                          .io_threads = 1,
                          .worker_threads = 4,
                          .max_concurrent_streams = 16,
                          .handshake_timeout_ms = 1000};
    if (getenv("FUZZ_H2_LOG") != NULL) {
        o.log = log_stderr;
    }
    CHECK(orpc_server_new(&g_srv, &o, NULL, NULL) == 0);
    CHECK(grpc__testing__test_service__server__register(g_srv, &handlers,
                                                        NULL) == 0);
    CHECK(orpc_server_listen(g_srv, "127.0.0.1:0", &g_port, NULL) == 0);
    CHECK(orpc_server_start(g_srv) == 0);

    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", g_port);
    orpc_channel_opts co = {.plaintext = 1};
    CHECK(orpc_channel_new(&g_ch, target, &co, NULL, NULL) == 0);
    CHECK(orpc_client_new(&g_cl, &grpc__testing__test_service__orpc_desc, g_ch,
                          NULL, NULL) == 0);
    atexit(stop_server);
}

/* The fresh well-formed call every input is followed by. */
static void check_server_answers(void)
{
    Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT;
    Grpc__Testing__Empty *resp = NULL;
    orpc_call_opts o = {.timeout_ms = 5000, .wait_for_ready = 1};
    orpc_status st =
        grpc__testing__test_service__client__empty_call(g_cl, &req, &resp, &o);
    if (st.code != ORPC_OK) {
        fprintf(stderr, "fuzz_h2_server: fresh call: %d %s\n", (int)st.code,
                st.message != NULL ? st.message : "");
    }
    CHECK(st.code == ORPC_OK && resp != NULL);
    grpc__testing__empty__free_unpacked(resp, NULL);
    orpc_status_clear(&st);
}

static int dial(void)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)g_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    h2_nonblock(fd);
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (g_srv == NULL) {
        start_server();
    }
    /* The preface, then the input. */
    static const uint8_t settings[9] = {0, 0, 0, H2_SETTINGS, 0, 0, 0, 0, 0};
    size_t plen = strlen(NGHTTP2_CLIENT_MAGIC);
    size_t n = plen + sizeof(settings) + size;
    uint8_t *out = malloc(n);
    CHECK(out != NULL);
    memcpy(out, NGHTTP2_CLIENT_MAGIC, plen);
    memcpy(out + plen, settings, sizeof(settings));
    if (size > 0) {
        memcpy(out + plen + sizeof(settings), data, size);
    }
    int fd = dial();
    h2_exchange(fd, out, n, NULL, 0, NULL, 10, 200);
    close(fd);
    free(out);

    /* No handler outlives its connection.  One that the server starts
     * only after this (a call queued for a worker) is cancelled at once,
     * or the next input's wait, or the one at exit, catches it. */
    int64_t end = h2_now_ms() + 3000;
    int active;
    while ((active = atomic_load(&g_active)) > 0 && h2_now_ms() < end) {
        usleep(1000);
    }
    if (active != 0) {
        fprintf(stderr,
                "fuzz_h2_server: %d handler(s) still running 3 s "
                "after their connection closed\n",
                active);
    }
    CHECK(active == 0);
    check_server_answers();
    atomic_fetch_add(&g_inputs, 1);
    return 0;
}

#ifdef ORPC_FUZZ_STANDALONE

/* ---- regression runner: files, or generated inputs --------------------- */

#include "standalone.h"

static const char *const k_methods[] = {
    "/grpc.testing.TestService/EmptyCall",
    "/grpc.testing.TestService/UnaryCall",
    "/grpc.testing.TestService/StreamingInputCall",
    "/grpc.testing.TestService/FullDuplexCall",
    "/grpc.testing.TestService/StreamingOutputCall",
    "/grpc.testing.TestService/HalfDuplexCall",
    "/grpc.testing.Nope/Nope",
};

/* HEADERS (split into CONTINUATION when |split|) opening |stream| for
 * method |m|, with a deadline and gzip when asked. */
static void put_request_headers(nghttp2_hd_deflater *def, uint8_t *buf,
                                size_t cap, size_t *len, uint32_t stream, int m,
                                int timeout, int gzip, int split, uint8_t flags)
{
    const char *kv[20] = {":method",      "POST",
                          ":scheme",      "http",
                          ":path",        k_methods[m],
                          ":authority",   "127.0.0.1",
                          "content-type", "application/grpc",
                          "te",           "trailers"};
    size_t n = 6;
    if (timeout) {
        kv[2 * n] = "grpc-timeout";
        kv[2 * n + 1] = "50m";
        n++;
    }
    if (gzip) {
        kv[2 * n] = "grpc-encoding";
        kv[2 * n + 1] = "gzip";
        n++;
    }
    uint8_t hb[512];
    size_t hl = h2_hpack(def, kv, n, hb, sizeof(hb));
    CHECK(hl > 0);
    if (!split || hl < 2) {
        h2_put_frame(buf, cap, len, H2_HEADERS, flags | H2_END_HEADERS, stream,
                     hb, hl);
        return;
    }
    h2_put_frame(buf, cap, len, H2_HEADERS, flags, stream, hb, hl / 2);
    h2_put_frame(buf, cap, len, H2_CONTINUATION, H2_END_HEADERS, stream,
                 hb + hl / 2, hl - hl / 2);
}

/* A DATA frame with one gRPC message of method |m|'s request type. */
static void put_request_message(uint32_t *st, uint8_t *buf, size_t cap,
                                size_t *len, uint32_t stream, int m,
                                uint8_t flags)
{
    uint8_t body[256], msg[300];
    size_t blen = 0;
    Grpc__Testing__ResponseParameters rp =
        GRPC__TESTING__RESPONSE_PARAMETERS__INIT;
    Grpc__Testing__ResponseParameters *rps[2] = {&rp, &rp};
    Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
    uint8_t pb[32];
    memset(pb, 'x', sizeof(pb));
    p.body.data = pb;
    p.body.len = rng_next(st) % sizeof(pb);
    rp.size = (int32_t)(rng_next(st) % 64);
    if (m == 1) {
        Grpc__Testing__SimpleRequest r = GRPC__TESTING__SIMPLE_REQUEST__INIT;
        r.response_size = (int32_t)(rng_next(st) % 64);
        r.payload = &p;
        blen = grpc__testing__simple_request__pack(&r, body);
    } else if (m == 2) {
        Grpc__Testing__StreamingInputCallRequest r =
            GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
        r.payload = &p;
        blen = grpc__testing__streaming_input_call_request__pack(&r, body);
    } else if (m == 3 || m == 4) {
        Grpc__Testing__StreamingOutputCallRequest r =
            GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
        r.n_response_parameters = 1 + rng_next(st) % 2;
        r.response_parameters = rps;
        r.payload = &p;
        blen = grpc__testing__streaming_output_call_request__pack(&r, body);
    }
    size_t ml = h2_grpc_msg(msg, sizeof(msg), 0, body, blen);
    h2_put_frame(buf, cap, len, H2_DATA, flags, stream, msg, ml);
}

/* One call on |stream|: headers, 0-3 messages, maybe the end. */
static void put_call(uint32_t *st, nghttp2_hd_deflater *def, uint8_t *buf,
                     size_t cap, size_t *len, uint32_t stream, int m)
{
    int timeout = rng_next(st) % 4 == 0;
    int split = rng_next(st) % 4 == 0;
    put_request_headers(def, buf, cap, len, stream, m, timeout, 0, split, 0);
    int nmsg = m == 0 || m == 1 || m == 4 ? 1 : (int)(rng_next(st) % 4);
    int end = rng_next(st) % 4 != 0;
    for (int i = 0; i < nmsg; i++) {
        uint8_t fl = end && i == nmsg - 1 ? H2_END_STREAM : 0;
        if (m == 0) {
            uint8_t msg[5];
            h2_grpc_msg(msg, sizeof(msg), 0, NULL, 0);
            h2_put_frame(buf, cap, len, H2_DATA, fl, stream, msg, 5);
        } else {
            put_request_message(st, buf, cap, len, stream, m, fl);
        }
    }
    if (end && nmsg == 0) {
        h2_put_frame(buf, cap, len, H2_DATA, H2_END_STREAM, stream, NULL, 0);
    }
}

/* A few connection-level frames: PING, WINDOW_UPDATE, SETTINGS (and its
 * ACK), PRIORITY, RST_STREAM, GOAWAY. */
static void put_control(uint32_t *st, uint8_t *buf, size_t cap, size_t *len)
{
    uint8_t p[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    switch (rng_next(st) % 6) {
    case 0:
        h2_put_frame(buf, cap, len, H2_PING, 0, 0, p, 8);
        break;
    case 1:
        h2_put32(p, 1 + rng_next(st) % 100000);
        h2_put_frame(buf, cap, len, H2_WINDOW_UPDATE, 0, rng_next(st) % 2, p,
                     4);
        break;
    case 2: { /* SETTINGS_INITIAL_WINDOW_SIZE, then an ACK */
        uint8_t s[6] = {0, 4};
        h2_put32(s + 2, rng_next(st) % 70000);
        h2_put_frame(buf, cap, len, H2_SETTINGS, 0, 0, s, 6);
        h2_put_frame(buf, cap, len, H2_SETTINGS, H2_ACK, 0, NULL, 0);
        break;
    }
    case 3:
        h2_put32(p, 0);
        p[4] = 16;
        h2_put_frame(buf, cap, len, H2_PRIORITY, 0, 1, p, 5);
        break;
    case 4:
        h2_put32(p, 8); /* CANCEL */
        h2_put_frame(buf, cap, len, H2_RST_STREAM, 0, 1, p, 4);
        break;
    default:
        h2_put32(p, 0);
        h2_put32(p + 4, 0);
        h2_put_frame(buf, cap, len, H2_GOAWAY, 0, 0, p, 8);
        break;
    }
}

/* A well-formed conversation: 1-4 calls of random methods on streams 1, 3,
 * ..., control frames between them, some calls cancelled. */
static size_t gen_input(uint32_t *st, uint8_t *buf, size_t cap)
{
    nghttp2_hd_deflater *def;
    CHECK(nghttp2_hd_deflate_new(&def, 4096) == 0);
    size_t len = 0;
    int ncalls = 1 + (int)(rng_next(st) % 4);
    for (int i = 0; i < ncalls; i++) {
        uint32_t stream = 1 + 2 * (uint32_t)i;
        int m = (int)(rng_next(st) % (sizeof(k_methods) / sizeof(*k_methods)));
        put_call(st, def, buf, cap, &len, stream, m);
        if (rng_next(st) % 3 == 0) {
            put_control(st, buf, cap, &len);
        }
        if (rng_next(st) % 5 == 0) {
            uint8_t code[4];
            h2_put32(code, 8);
            h2_put_frame(buf, cap, &len, H2_RST_STREAM, 0, stream, code, 4);
        }
    }
    nghttp2_hd_deflate_del(def);
    return len;
}

/* Input |i|: fresh from gen_input(), or the one before it spoilt. */
static size_t next_input(uint32_t *st, int i, uint8_t *buf, size_t len,
                         size_t cap)
{
    return fuzz_fresh_or_spoilt(st, i, buf, len, cap, gen_input);
}

int main(int argc, char **argv)
{
    /* 30 conversations, each also run spoilt. */
    int rc = fuzz_standalone_main(argc, argv, "fuzz_h2_server",
                                  0x68327372u /* "h2sr" */, 2 * 30, next_input);
    /* Beyond the fresh call after each, the inputs started calls. */
    int inputs = atomic_load(&g_inputs), calls = atomic_load(&g_calls);
    printf("fuzz_h2_server: %d handler calls from %d inputs\n", calls - inputs,
           inputs);
    if (argc == 1 || (argc == 3 && strcmp(argv[1], "-write-seeds") == 0)) {
        CHECK(calls - inputs >= inputs / 2);
    }
    return rc;
}

#endif /* ORPC_FUZZ_STANDALONE */
