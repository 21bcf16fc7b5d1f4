/*
 * fuzz_h2_client.c — libFuzzer target for an orpc channel's response path:
 * the input is what a server sends after its SETTINGS frame, in answer to
 * a unary call (grpc.testing.TestService/UnaryCall) that a real orpc
 * channel makes over loopback (HTTP/2 framing and HPACK in nghttp2, then
 * orpc's response headers, status and trailers, deframing, decompression,
 * decoding, GOAWAY and reset handling).
 *
 * A raw listener on 127.0.0.1:0 (this thread) plays the server.  Each input
 * gets a fresh channel and connection: the call starts (asynchronously, 0.5 s
 * deadline), the listener accepts, writes SETTINGS and the input while
 * reading what the channel sends, until the channel has been quiet for
 * 10 ms after the last byte or closed (200 ms at most), and closes.  (A
 * GOAWAY that says the call was not processed makes the channel retry it
 * on a new connection, which the listener leaves unaccepted: such a call
 * ends at its deadline.)
 * Checked: the call ends, within 3 s, with a code in 0-16, a message that
 * is NULL or UTF-8 (as status.h says; FUZZ_H2_CHECK_UTF8 below), and a
 * response exactly when the code is OK; then the channel is freed, which
 * must not hang; nothing leaks (LeakSanitizer in the libFuzzer and ASan
 * builds, per input in libFuzzer's case, since nothing outlives an input).
 *
 * Built with -DORPC_FUZZ_STANDALONE it has a main() (standalone.h) that
 * replays the files named on the command line, or generated inputs (fixed
 * seed): well-formed answers (headers, messages, trailers; trailers-only;
 * gzip; errors with details), control frames, and byte-flipped copies of
 * those.  "-write-seeds DIR" also saves them in DIR, a seed corpus for
 * libFuzzer.
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

/* A status message is UTF-8 (status.h): the channel repairs a grpc-message
 * that is not (regressions/fuzz_h2_client-1 once came out as bytes FF FE).
 * Defining FUZZ_H2_CHECK_UTF8 to 0 turns the check off. */
#ifndef FUZZ_H2_CHECK_UTF8
#define FUZZ_H2_CHECK_UTF8 1
#endif

static int g_listener = -1;
static int g_port;
static atomic_int g_ok; /* calls that ended OK (the standalone report) */

static void close_listener(void)
{
    close(g_listener);
}

static void start_listener(void)
{
    /* The library writes to sockets whose peer may be gone. */
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_listener = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(g_listener >= 0);
    CHECK(bind(g_listener, (struct sockaddr *)&a, sizeof(a)) == 0);
    CHECK(listen(g_listener, 16) == 0);
    CHECK(getsockname(g_listener, (struct sockaddr *)&a, &alen) == 0);
    g_port = ntohs(a.sin_port);
    h2_nonblock(g_listener);
    atexit(close_listener);
}

/* Accepts the next connection within |ms|, or returns -1. */
static int accept_within(int ms)
{
    int64_t end = h2_now_ms() + ms;
    for (;;) {
        int fd = accept(g_listener, NULL, NULL);
        if (fd >= 0) {
            return fd;
        }
        int64_t left = end - h2_now_ms();
        if (left <= 0) {
            return -1;
        }
        struct pollfd p = {.fd = g_listener, .events = POLLIN};
        poll(&p, 1, (int)left);
    }
}

typedef struct result {
    atomic_int done;
    orpc_code code;
    int message_ok; /* NULL, or UTF-8 (status.h) */
    int has_response;
} result;

static void on_done(const orpc_status *st, Grpc__Testing__SimpleResponse *resp,
                    void *ud)
{
    result *r = ud;
    r->code = st->code;
    r->message_ok = st->message == NULL ||
                    utf8_ok((const uint8_t *)st->message, strlen(st->message));
    r->has_response = resp != NULL;
    grpc__testing__simple_response__free_unpacked(resp, NULL);
    atomic_store(&r->done, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (g_listener < 0) {
        start_listener();
    }
    /* A connection left over from an earlier channel is not this one's. */
    int stale;
    while ((stale = accept(g_listener, NULL, NULL)) >= 0) {
        close(stale);
    }

    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", g_port);
    orpc_channel_opts co = {.plaintext = 1, .connect_timeout_ms = 2000};
    orpc_channel *ch;
    orpc_client *cl;
    CHECK(orpc_channel_new(&ch, target, &co, NULL, NULL) == 0);
    CHECK(orpc_client_new(&cl, &grpc__testing__test_service__orpc_desc, ch,
                          NULL, NULL) == 0);
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    req.response_size = 8;
    orpc_call_opts o = {.timeout_ms = 500};
    result r;
    memset(&r, 0, sizeof(r));
    atomic_init(&r.done, 0);
    CHECK(grpc__testing__test_service__client__unary_call__async(
              cl, &req, &o, on_done, &r) == 0);

    int64_t start = h2_now_ms();
    int fd = accept_within(2000);
    CHECK(fd >= 0);
    h2_nonblock(fd);
    static const uint8_t settings[9] = {0, 0, 0, H2_SETTINGS, 0, 0, 0, 0, 0};
    size_t n = sizeof(settings) + size;
    uint8_t *out = malloc(n);
    CHECK(out != NULL);
    memcpy(out, settings, sizeof(settings));
    if (size > 0) {
        memcpy(out + sizeof(settings), data, size);
    }
    h2_exchange(fd, out, n, NULL, 0, NULL, 10, 200);
    close(fd);
    free(out);

    /* The call ends (its deadline is 0.5 s), with a coherent result. */
    int64_t end = h2_now_ms() + 3000;
    while (!atomic_load(&r.done) && h2_now_ms() < end) {
        usleep(1000);
    }
    if (!atomic_load(&r.done)) {
        fprintf(stderr, "fuzz_h2_client: the call has not ended 3 s after "
                        "its connection closed\n");
    }
    CHECK(atomic_load(&r.done));
    if (getenv("FUZZ_H2_LOG") != NULL) { /* how each input ended */
        fprintf(stderr, "fuzz_h2_client: code %d after %lld ms\n", (int)r.code,
                (long long)(h2_now_ms() - start));
    }
    CHECK(r.has_response == (r.code == ORPC_OK));
    CHECK((int)r.code >= 0 && (int)r.code <= 16);
    CHECK(r.message_ok || !FUZZ_H2_CHECK_UTF8);
    if (r.code == ORPC_OK) {
        atomic_fetch_add(&g_ok, 1);
    }
    orpc_client_free(cl);
    orpc_channel_unref(ch);
    return 0;
}

#ifdef ORPC_FUZZ_STANDALONE

/* ---- regression runner: files, or generated inputs --------------------- */

#include "standalone.h"

/* HEADERS on stream 1 from |kv| (|n| pairs), split into CONTINUATION when
 * |split|. */
static void put_headers(nghttp2_hd_deflater *def, uint8_t *buf, size_t cap,
                        size_t *len, const char *const *kv, size_t n,
                        uint8_t flags, int split)
{
    uint8_t hb[1024];
    size_t hl = h2_hpack(def, kv, n, hb, sizeof(hb));
    CHECK(hl > 0);
    if (!split || hl < 2) {
        h2_put_frame(buf, cap, len, H2_HEADERS, flags | H2_END_HEADERS, 1, hb,
                     hl);
        return;
    }
    h2_put_frame(buf, cap, len, H2_HEADERS, flags, 1, hb, hl / 2);
    h2_put_frame(buf, cap, len, H2_CONTINUATION, H2_END_HEADERS, 1, hb + hl / 2,
                 hl - hl / 2);
}

/* A DATA frame on stream 1 with a SimpleResponse (or, with |garbage|,
 * random bytes) as one gRPC message, flagged compressed when |gz|. */
static void put_response(uint32_t *st, uint8_t *buf, size_t cap, size_t *len,
                         int garbage, int gz)
{
    uint8_t body[128], msg[160];
    size_t blen;
    if (garbage) {
        blen = rng_next(st) % 40;
        for (size_t i = 0; i < blen; i++) {
            body[i] = (uint8_t)rng_next(st);
        }
    } else {
        Grpc__Testing__SimpleResponse r = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
        Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
        uint8_t pb[8] = {0};
        p.body.data = pb;
        p.body.len = sizeof(pb);
        r.payload = &p;
        r.username = (char *)"fuzz";
        blen = grpc__testing__simple_response__pack(&r, body);
    }
    size_t ml = h2_grpc_msg(msg, sizeof(msg), gz, body, blen);
    h2_put_frame(buf, cap, len, H2_DATA, 0, 1, msg, ml);
}

/* One answer to the call on stream 1: the SETTINGS ACK, then response
 * headers, 0-2 messages and trailers (or trailers only), control frames
 * here and there. */
static size_t gen_input(uint32_t *st, uint8_t *buf, size_t cap)
{
    nghttp2_hd_deflater *def;
    CHECK(nghttp2_hd_deflate_new(&def, 4096) == 0);
    size_t len = 0;
    h2_put_frame(buf, cap, &len, H2_SETTINGS, H2_ACK, 0, NULL, 0);
    int kind = (int)(rng_next(st) % 6);
    int split = rng_next(st) % 4 == 0;
    int gz = kind == 3;
    static const char *const codes[] = {"0", "2", "4", "13", "14", "99"};
    const char *code = kind == 0 ? "0" : codes[rng_next(st) % 6];
    if (kind == 1) { /* trailers only */
        const char *kv[] = {
            ":status",     "200", "content-type", "application/grpc",
            "grpc-status", code,  "grpc-message", "fuzz%20says%20no"};
        put_headers(def, buf, cap, &len, kv, 4, H2_END_STREAM, split);
    } else if (kind == 2) { /* not gRPC at all */
        const char *kv[] = {":status", rng_next(st) % 2 ? "503" : "404",
                            "content-type", "text/html"};
        put_headers(def, buf, cap, &len, kv, 2, 0, split);
        h2_put_frame(buf, cap, &len, H2_DATA, H2_END_STREAM, 1, "<html>", 6);
    } else {
        const char *kv[] = {":status",       "200",
                            "content-type",  "application/grpc",
                            "grpc-encoding", gz ? "gzip" : "identity"};
        put_headers(def, buf, cap, &len, kv, 3, 0, split);
        int nmsg = (int)(rng_next(st) % 3);
        if (kind == 0) {
            nmsg = 1;
        }
        for (int i = 0; i < nmsg; i++) {
            put_response(st, buf, cap, &len, kind == 4, gz);
        }
        if (rng_next(st) % 4 == 0) {
            uint8_t p[8] = {0};
            h2_put_frame(buf, cap, &len, H2_PING, 0, 0, p, 8);
        }
        const char *tr[] = {
            "grpc-status", code, "grpc-message", "m", "grpc-status-details-bin",
            "CAISAW0"};
        put_headers(def, buf, cap, &len, tr, kind == 5 ? 3 : 2, H2_END_STREAM,
                    0);
    }
    if (rng_next(st) % 5 == 0) {
        uint8_t g[8];
        h2_put32(g, 1);
        h2_put32(g + 4, 0);
        h2_put_frame(buf, cap, &len, H2_GOAWAY, 0, 0, g, 8);
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
    /* 30 answers, each also run spoilt. */
    int rc = fuzz_standalone_main(argc, argv, "fuzz_h2_client",
                                  0x68326374u /* "h2ct" */, 2 * 30, next_input);
    int ok = atomic_load(&g_ok);
    printf("fuzz_h2_client: %d call(s) ended OK\n", ok);
    if (argc == 1 || (argc == 3 && strcmp(argv[1], "-write-seeds") == 0)) {
        CHECK(ok > 0); /* the well-formed answers were understood */
    }
    return rc;
}

#endif /* ORPC_FUZZ_STANDALONE */
