/*
 * orpc_bench_server.c — orpc's benchmark server: grpc.testing.BenchmarkService
 * over h2c (or TLS), the peer of tests/bench/grpcpp/bench_server.cc.
 *
 *   orpc-bench-server --port=N [--threads=N] [--host=ADDR]
 *                     [--tls_cert=FILE --tls_key=FILE]
 *                     [--interceptors=default|none|trace|metrics]
 *
 * --interceptors=none runs without the default interceptor chain (trace
 * context, metrics): tests/bench/interceptors.sh measures what it costs.
 * The service is registered non-blocking: its handlers run inline on the IO
 * threads (orpc/context.h, "Non-blocking services"), as a server built for
 * throughput would do with handlers that never wait.
 *
 *   UnaryCall      answers with a payload of request.response_size zero
 *                  bytes, allocated in the call's arena.
 *   StreamingCall  ping-pong: one such response per request, in order; the
 *                  call ends with OK when the client half-closes.  The
 *                  handler never blocks: it answers every request that has
 *                  arrived, then defers until the next one (or room to send).
 *
 * Other methods answer UNIMPLEMENTED.  --threads sets the IO threads (default:
 * the number of cores); --host the address to bind (default 127.0.0.1, as the
 * gRPC peer).  Prints "listening on <port>" (the bound port, so --port=0
 * works) once it accepts calls, then serves until SIGTERM or SIGINT.
 * Exit status 0 after a clean shutdown, 1 on failure, 2 on bad usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <orpc/orpc.h>

#include "bench_chain.h"
#include "grpc/testing/benchmark_service.orpc.h"

typedef Grpc__Testing__SimpleRequest SimpleRequest;
typedef Grpc__Testing__SimpleResponse SimpleResponse;
typedef Grpc__Testing__BenchmarkService_StreamingCall_ServerStream PingPong;

/* Largest response_size honoured, as the gRPC peer (4 MiB receive limit). */
#define MAX_RESPONSE (4 * 1024 * 1024 - 64)

/* ---- responses ----------------------------------------------------------- */

/* Fills |resp| with a payload of |size| zero bytes from |ctx|'s arena.
 * Returns 0, or -1 when the arena is out of memory. */
static int fill_response(orpc_ctx *ctx, int32_t size, SimpleResponse *resp)
{
    if (size <= 0)
        return 0;
    orpc_arena *a = orpc_ctx_arena(ctx);
    Grpc__Testing__Payload *p = orpc_arena_alloc(a, sizeof(*p));
    uint8_t *body = orpc_arena_alloc(a, (size_t)size);
    if (p == NULL || body == NULL)
        return -1;
    grpc__testing__payload__init(p);
    memset(body, 0, (size_t)size);
    p->body.data = body;
    p->body.len = (size_t)size;
    resp->payload = p;
    return 0;
}

static orpc_status bad_size(void)
{
    return orpc_status_new(ORPC_INVALID_ARGUMENT, "response_size out of range");
}

static orpc_status unary_call(orpc_ctx *ctx, const SimpleRequest *req,
                              SimpleResponse *resp, void *ud)
{
    (void)ud;
    if (req->response_size < 0 || req->response_size > MAX_RESPONSE)
        return bad_size();
    if (fill_response(ctx, req->response_size, resp) != 0)
        return orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory");
    return ORPC_STATUS_OK;
}

/* ---- streaming: responses that could not be sent yet ---------------------
 *
 * A request is only valid until the next recv or the handler's return, and
 * orpc_ctx has no slot for a handler's own state, so when orpc_ctx_send()
 * says EAGAIN the size of the response still owed is parked here, keyed by
 * the context, until the handler is run again.  The handler of a call
 * always runs on the call's IO thread, so the table is per thread and needs
 * no lock.  With ping-pong clients it stays empty: the send buffer only
 * fills when a client stops reading. */
typedef struct owed {
    const orpc_ctx *ctx;
    int32_t size;
} owed;

static _Thread_local owed *owed_v;
static _Thread_local size_t owed_n, owed_cap;

static owed *owed_find(const orpc_ctx *ctx)
{
    for (size_t i = 0; i < owed_n; i++)
        if (owed_v[i].ctx == ctx)
            return &owed_v[i];
    return NULL;
}

static int owed_add(const orpc_ctx *ctx, int32_t size)
{
    if (owed_n == owed_cap) {
        size_t cap = owed_cap ? owed_cap * 2 : 16;
        owed *v = realloc(owed_v, cap * sizeof(*v));
        if (v == NULL)
            return -1;
        owed_v = v;
        owed_cap = cap;
    }
    owed_v[owed_n].ctx = ctx;
    owed_v[owed_n].size = size;
    owed_n++;
    return 0;
}

static void owed_remove(owed *o)
{
    *o = owed_v[--owed_n];
    if (owed_n == 0) {
        free(owed_v);
        owed_v = NULL;
        owed_cap = 0;
    }
}

/* Sends a response of |size| bytes: 0, ORPC_EAGAIN or another ORPC_E*.
 * The message is serialized before the send returns, so its body is
 * scratch memory: on the stack when small, else malloc'd for the moment
 * (not the call's arena, which a long stream would grow without bound). */
static int send_response(PingPong *s, int32_t size)
{
    SimpleResponse r = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
    Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
    uint8_t small[1024];
    uint8_t *big = NULL;
    if (size > 0) {
        if ((size_t)size <= sizeof(small)) {
            memset(small, 0, (size_t)size);
            p.body.data = small;
        } else {
            big = calloc(1, (size_t)size);
            if (big == NULL)
                return ORPC_ENOMEM;
            p.body.data = big;
        }
        p.body.len = (size_t)size;
        r.payload = &p;
    }
    int rc =
        grpc__testing__benchmark_service__server__streaming_call__send(s, &r);
    free(big);
    return rc;
}

static orpc_status streaming_call(orpc_ctx *ctx, PingPong *s, void *ud)
{
    (void)ud;
    owed *o = owed_find(ctx);
    if (o != NULL) {
        int rc = send_response(s, o->size);
        if (rc == ORPC_EAGAIN) {
            orpc_ctx_defer(ctx);
            return ORPC_STATUS_OK; /* ignored: deferred */
        }
        owed_remove(o);
        if (rc != 0)
            return orpc_status_new(ORPC_CANCELLED, "cannot send");
    }
    for (;;) {
        const SimpleRequest *req;
        int rc = grpc__testing__benchmark_service__server__streaming_call__recv(
            s, &req);
        if (rc == ORPC_EAGAIN) {
            orpc_ctx_defer(ctx);
            return ORPC_STATUS_OK; /* ignored: deferred */
        }
        if (rc == 0)
            return ORPC_STATUS_OK; /* the client half-closed */
        if (rc < 0)
            return orpc_status_new(ORPC_CANCELLED, "cancelled");
        int32_t size = req->response_size;
        if (size < 0 || size > MAX_RESPONSE)
            return bad_size();
        rc = send_response(s, size);
        if (rc == ORPC_EAGAIN) {
            if (owed_add(ctx, size) != 0)
                return orpc_status_new(ORPC_RESOURCE_EXHAUSTED,
                                       "out of memory");
            orpc_ctx_defer(ctx);
            return ORPC_STATUS_OK; /* ignored: deferred */
        }
        if (rc == ORPC_ENOMEM)
            return orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory");
        if (rc != 0)
            return orpc_status_new(ORPC_CANCELLED, "cannot send");
    }
}

static const Grpc__Testing__BenchmarkService_Handlers handlers = {
    .unary_call = unary_call,
    .streaming_call = streaming_call,
};

/* ---- main ---------------------------------------------------------------- */

static void usage(const char *msg)
{
    fprintf(stderr,
            "orpc-bench-server: %s\n"
            "usage: orpc-bench-server --port=N [--threads=N] [--host=ADDR] "
            "[--tls_cert=FILE --tls_key=FILE] "
            "[--interceptors=default|none|trace|metrics]\n",
            msg);
    exit(2);
}

static long parse_int(const char *s, const char *flag, long lo, long hi)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        char m[96];
        snprintf(m, sizeof(m), "bad value for %s", flag);
        usage(m);
    }
    return v;
}

static const char *flag(const char *arg, const char *name)
{
    size_t n = strlen(name);
    return strncmp(arg, name, n) == 0 && arg[n] == '=' ? arg + n + 1 : NULL;
}

static void log_stderr(orpc_log_level level, const char *msg, void *ud)
{
    (void)ud;
    if (level <= ORPC_LOG_WARN)
        fprintf(stderr, "orpc-bench-server: %s\n", msg);
}

int main(int argc, char **argv)
{
    long port = -1, threads = 0;
    const char *host = "127.0.0.1", *cert = NULL, *key = NULL, *v;
    bench_chain chain = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((v = flag(a, "--port")))
            port = parse_int(v, "--port", 0, 65535);
        else if ((v = flag(a, "--threads")))
            threads = parse_int(v, "--threads", 1, 1024);
        else if ((v = flag(a, "--host")))
            host = v;
        else if ((v = flag(a, "--tls_cert")))
            cert = v;
        else if ((v = flag(a, "--tls_key")))
            key = v;
        else if ((v = flag(a, "--interceptors"))) {
            if (bench_chain_parse(&chain, v) != 0)
                usage("--interceptors must be default, none, trace or "
                      "metrics");
        } else {
            char m[256];
            snprintf(m, sizeof(m), "unknown argument %s", a);
            usage(m);
        }
    }
    if (port < 0)
        usage("--port is required");
    if ((cert == NULL) != (key == NULL))
        usage("--tls_cert and --tls_key go together");

    orpc_server_opts o = {0};
    o.io_threads = (unsigned)threads;
    o.log = log_stderr;
    o.no_default_interceptors = chain.no_defaults;
    o.interceptors = &chain.ic;
    o.n_interceptors = chain.ic != NULL;
    if (cert) {
        o.tls.cert_file = cert;
        o.tls.key_file = key;
    } else {
        o.plaintext = 1;
    }
    orpc_server *srv;
    int rc = orpc_server_new(&srv, &o, NULL, NULL);
    if (rc != 0) {
        fprintf(stderr, "orpc-bench-server: cannot create the server: %s\n",
                orpc_strerror(rc));
        return 1;
    }
    orpc_service_opts so = {.nonblocking = 1};
    rc = grpc__testing__benchmark_service__server__register_with_opts(
        srv, &handlers, NULL, &so);
    char addr[300];
    snprintf(addr, sizeof(addr), strchr(host, ':') ? "[%s]:%ld" : "%s:%ld",
             host, port);
    int bound = 0;
    if (rc == 0)
        rc = orpc_server_listen(srv, addr, &bound, NULL);
    if (rc == 0)
        rc = orpc_server_start(srv);
    if (rc != 0) {
        fprintf(stderr, "orpc-bench-server: cannot serve on %s: %s\n", addr,
                orpc_strerror(rc));
        orpc_server_free(srv);
        return 1;
    }
    printf("listening on %d\n", bound);
    fflush(stdout);
    rc = orpc_server_run(srv);
    orpc_server_free(srv);
    return rc == 0 ? 0 : 1;
}
