/*
 * interop_server.c — orpc's gRPC interop test server (orpc-interop-server).
 *
 * Implements grpc.testing.TestService as gRPC's
 * doc/interop-test-descriptions.md describes it, so that real gRPC clients
 * (tests/interop/python/interop_client.py) and orpc's own interop client can
 * run the standard interop cases against orpc:
 *
 *   EmptyCall, UnaryCall, StreamingOutputCall, StreamingInputCall,
 *   FullDuplexCall, HalfDuplexCall; CompressedRequest (expect_compressed,
 *   checked per message), CompressedResponse (response_compressed and
 *   ResponseParameters.compressed, per message), Echo Status, Echo Metadata
 *   (x-grpc-test-echo-initial → response headers,
 *   x-grpc-test-echo-trailing-bin → trailers), interval_us, Echo
 *   Authenticated Username (the client certificate's SPIFFE ID under mTLS).
 *   UnimplementedCall has no handler (→ UNIMPLEMENTED) and
 *   UnimplementedService is not registered (→ UNIMPLEMENTED).
 *
 * Usage:
 *   orpc-interop-server --port=N [--use_tls=true --tls_cert=F --tls_key=F
 *                       [--tls_ca=F]] [--bind_host=H] [--verbose=true]
 *                       [--admin_port=N]
 *
 * --port=0 picks a free port.  The server listens on loopback (127.0.0.1 and
 * ::1, same port) unless --bind_host says otherwise, prints
 * "listening on <port>" on stdout once it serves, and runs until SIGTERM or
 * SIGINT.  --tls_ca requires and verifies client certificates.  Message
 * limits are the defaults, as gRPC's: 4 MiB received, no send limit.
 * --admin_port=N opens the admin listener (GET /metrics, /healthz;
 * docs/metrics.md) on 127.0.0.1:N, 0 picking a port, and prints
 * "admin on <port>" before the "listening on" line.
 *
 * The same port also answers the Connect protocol's unary calls as JSON or
 * binary over HTTP/1.1 (orpc's gateway, orpc/compat/serve.h), so curl or a
 * Connect client can call any TestService method: POST
 * /grpc.testing.TestService/UnaryCall with Content-Type: application/json.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <orpc/compat/serve.h>

#include <orpc/orpc.h>

#include "grpc/testing/test.orpc.h"

typedef Grpc__Testing__SimpleRequest SimpleRequest;
typedef Grpc__Testing__SimpleResponse SimpleResponse;
typedef Grpc__Testing__StreamingOutputCallRequest OutRequest;
typedef Grpc__Testing__StreamingOutputCallResponse OutResponse;
typedef Grpc__Testing__ResponseParameters ResponseParameters;

#define ECHO_INITIAL_KEY "x-grpc-test-echo-initial"
#define ECHO_TRAILING_KEY "x-grpc-test-echo-trailing-bin"

static int verbose;

static void logf_(const char *fmt, ...) ORPC_PRINTF(1, 2);

static void logf_(const char *fmt, ...)
{
    if (!verbose)
        return;
    /* One write per line: handlers log from several threads at once. */
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "orpc-interop-server: %s\n", line);
}

static void orpc_logger(orpc_log_level level, const char *msg, void *ud)
{
    (void)ud;
    static const char *names[] = {"error", "warn", "info", "debug"};
    logf_("[orpc %s] %s", names[level <= ORPC_LOG_DEBUG ? level : 0], msg);
}

/* ---- helpers shared by the handlers ---- */

/* Runs first in every handler, before anything can send the headers: logs
 * the call and does Echo Metadata, copying the two echo keys of the request
 * into the response headers and trailers. */
static void begin_call(orpc_ctx *ctx)
{
    const orpc_metadata *md = orpc_ctx_metadata(ctx);
    size_t n = orpc_metadata_count(md);
    int64_t left = orpc_ctx_remaining_ms(ctx);
    char deadline[48] = "no deadline";
    if (left != INT64_MAX)
        snprintf(deadline, sizeof(deadline), "%lld ms left", (long long)left);
    logf_("%s from %s (%s, %zu metadata entries%s)", orpc_ctx_method(ctx)->path,
          orpc_ctx_peer_address(ctx), deadline, n,
          orpc_ctx_peer_identity(ctx) ? ", client certificate" : "");
    for (size_t i = 0; i < n; i++) {
        const char *key;
        const uint8_t *v;
        size_t len;
        if (orpc_metadata_at(md, i, &key, &v, &len) != 0)
            continue;
        if (strcmp(key, ECHO_INITIAL_KEY) == 0) {
            if (orpc_ctx_add_header(ctx, key, v, len) != 0)
                logf_("cannot echo %s", key);
        } else if (strcmp(key, ECHO_TRAILING_KEY) == 0) {
            if (orpc_ctx_add_trailer(ctx, key, v, len) != 0)
                logf_("cannot echo %s", key);
        }
    }
}

/* CompressedRequest: when |expect| is set, the request just received must
 * have arrived with the compressed flag exactly as it says.  Returns 0, or
 * fills |*st| with INVALID_ARGUMENT. */
static int check_expect_compressed(orpc_ctx *ctx,
                                   const Grpc__Testing__BoolValue *expect,
                                   orpc_status *st)
{
    if (expect == NULL)
        return 0;
    int got = orpc_ctx_request_compressed(ctx) != 0;
    int want = expect->value != 0;
    if (got == want)
        return 0;
    logf_("INVALID_ARGUMENT: expected a%s request, got a%s one",
          want ? " compressed" : "n uncompressed",
          got ? " compressed" : "n uncompressed");
    *st = orpc_status_errorf(ORPC_INVALID_ARGUMENT,
                             "expected a%s request, got a%s one",
                             want ? " compressed" : "n uncompressed",
                             got ? " compressed" : "n uncompressed");
    return -1;
}

/* Echo Status: when |es| is set, the status the call must end with. */
static int echo_status(const Grpc__Testing__EchoStatus *es, orpc_status *st)
{
    if (es == NULL)
        return 0;
    if (es->code < 0 || es->code > 16)
        logf_("echo status code %d is out of range; sends UNKNOWN",
              (int)es->code);
    /* orpc_status_new maps codes outside 0-16 to UNKNOWN. */
    *st = orpc_status_new((orpc_code)es->code,
                          es->message && *es->message ? es->message : NULL);
    return 1;
}

/* A payload of |size| zero bytes of |type|, allocated in the call's arena. */
static int make_payload(orpc_ctx *ctx, Grpc__Testing__PayloadType type,
                        int32_t size, Grpc__Testing__Payload **out,
                        orpc_status *st)
{
    if (type != GRPC__TESTING__PAYLOAD_TYPE__COMPRESSABLE) {
        *st = orpc_status_errorf(ORPC_INVALID_ARGUMENT,
                                 "unsupported response_type %d", (int)type);
        return -1;
    }
    if (size < 0) {
        *st = orpc_status_errorf(ORPC_INVALID_ARGUMENT,
                                 "negative response size %d", (int)size);
        return -1;
    }
    orpc_arena *a = orpc_ctx_arena(ctx);
    Grpc__Testing__Payload *p = orpc_arena_alloc(a, sizeof(*p));
    uint8_t *body = orpc_arena_alloc(a, (size_t)size + 1);
    if (p == NULL || body == NULL) {
        *st = orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory");
        return -1;
    }
    grpc__testing__payload__init(p);
    memset(body, 0, (size_t)size);
    p->type = type;
    p->body.data = body;
    p->body.len = (size_t)size;
    *out = p;
    return 0;
}

static int wants_compression(const OutRequest *req)
{
    for (size_t i = 0; i < req->n_response_parameters; i++)
        if (req->response_parameters[i]->compressed &&
            req->response_parameters[i]->compressed->value)
            return 1;
    return 0;
}

static void sleep_us(int32_t us)
{
    if (us <= 0)
        return;
    struct timespec ts = {.tv_sec = us / 1000000,
                          .tv_nsec = (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* State of a streaming call's response compression. */
typedef struct out_state {
    int decided; /* the call's grpc-encoding has been chosen */
    int gzip;    /* ... and it is gzip */
} out_state;

/* Chooses the call's response compression from the first request that
 * carries response parameters (the headers go out with the first response
 * message, after which it is fixed). */
static void decide_compression(orpc_ctx *ctx, out_state *os,
                               const OutRequest *req)
{
    if (os->decided)
        return;
    os->decided = 1;
    if (wants_compression(req)) {
        int rc = orpc_ctx_set_compression(ctx, "gzip");
        if (rc != 0)
            logf_("orpc_ctx_set_compression: %s", orpc_strerror(rc));
        else
            os->gzip = 1;
    }
}

typedef int (*send_fn)(orpc_ctx *ctx, void *stream, const OutResponse *r);

/* Sends the responses one StreamingOutputCallRequest asks for, paced by
 * interval_us, each compressed or not as its parameters say.  Returns 0, or
 * -1 with |*st| set. */
static int send_responses(orpc_ctx *ctx, out_state *os, const OutRequest *req,
                          send_fn send, void *stream, orpc_status *st)
{
    decide_compression(ctx, os, req);
    for (size_t i = 0; i < req->n_response_parameters; i++) {
        const ResponseParameters *rp = req->response_parameters[i];
        sleep_us(rp->interval_us);
        int compress = rp->compressed && rp->compressed->value;
        if (compress && !os->gzip)
            logf_("response %zu asks for compression but the call is not "
                  "compressed (it started uncompressed)",
                  i);
        if (os->gzip)
            orpc_ctx_set_message_compression(ctx, compress);
        Grpc__Testing__Payload *p;
        if (make_payload(ctx, req->response_type, rp->size, &p, st) != 0)
            return -1;
        OutResponse r = GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
        r.payload = p;
        int rc = send(ctx, stream, &r);
        if (rc != 0) {
            *st = orpc_status_errorf(rc == ORPC_ECANCELLED ? ORPC_CANCELLED
                                                           : ORPC_INTERNAL,
                                     "send: %s", orpc_strerror(rc));
            return -1;
        }
    }
    return 0;
}

/* ---- the service ---- */

static orpc_status empty_call(orpc_ctx *ctx, const Grpc__Testing__Empty *req,
                              Grpc__Testing__Empty *resp, void *ud)
{
    (void)req;
    (void)resp;
    (void)ud;
    begin_call(ctx);
    return ORPC_STATUS_OK;
}

static orpc_status unary_call(orpc_ctx *ctx, const SimpleRequest *req,
                              SimpleResponse *resp, void *ud)
{
    (void)ud;
    orpc_status st = ORPC_STATUS_OK;
    begin_call(ctx);
    logf_("UnaryCall: response_size %d, payload %zu bytes%s",
          (int)req->response_size,
          req->payload ? req->payload->body.len : (size_t)0,
          orpc_ctx_request_compressed(ctx) ? " (compressed)" : "");
    if (check_expect_compressed(ctx, req->expect_compressed, &st) != 0)
        return st;
    if (req->response_compressed && req->response_compressed->value) {
        int rc = orpc_ctx_set_compression(ctx, "gzip");
        if (rc != 0)
            logf_("orpc_ctx_set_compression: %s", orpc_strerror(rc));
    }
    if (echo_status(req->response_status, &st))
        return st;
    if (make_payload(ctx, req->response_type, req->response_size,
                     &resp->payload, &st) != 0)
        return st;
    if (req->fill_username) {
        const char *id = orpc_ctx_peer_identity(ctx);
        resp->username = orpc_arena_strdup(orpc_ctx_arena(ctx), id ? id : "");
    }
    if (req->fill_server_id)
        resp->server_id = "orpc-interop-server";
    return ORPC_STATUS_OK;
}

static int send_output(orpc_ctx *ctx, void *stream, const OutResponse *r)
{
    (void)ctx;
    return grpc__testing__test_service__server__streaming_output_call__send(
        stream, r);
}

static orpc_status streaming_output_call(
    orpc_ctx *ctx, const OutRequest *req,
    Grpc__Testing__TestService_StreamingOutputCall_ServerWriter *w, void *ud)
{
    (void)ud;
    orpc_status st = ORPC_STATUS_OK;
    out_state os = {0, 0};
    begin_call(ctx);
    if (send_responses(ctx, &os, req, send_output, w, &st) != 0)
        return st;
    if (echo_status(req->response_status, &st))
        return st;
    return ORPC_STATUS_OK;
}

static orpc_status streaming_input_call(
    orpc_ctx *ctx,
    Grpc__Testing__TestService_StreamingInputCall_ServerReader *r,
    Grpc__Testing__StreamingInputCallResponse *resp, void *ud)
{
    (void)ud;
    orpc_status st = ORPC_STATUS_OK;
    const Grpc__Testing__StreamingInputCallRequest *m;
    int rc;
    int64_t total = 0;
    begin_call(ctx);
    while (
        (rc = grpc__testing__test_service__server__streaming_input_call__recv(
             r, &m)) == 1) {
        logf_("StreamingInputCall: request of %zu bytes%s",
              m->payload ? m->payload->body.len : (size_t)0,
              orpc_ctx_request_compressed(ctx) ? " (compressed)" : "");
        if (check_expect_compressed(ctx, m->expect_compressed, &st) != 0)
            return st;
        total += m->payload ? (int64_t)m->payload->body.len : 0;
    }
    if (rc < 0)
        return orpc_status_errorf(ORPC_CANCELLED, "recv: %s",
                                  orpc_strerror(rc));
    logf_("StreamingInputCall: end of requests, %lld bytes in all",
          (long long)total);
    if (total > INT32_MAX)
        return orpc_status_new(ORPC_OUT_OF_RANGE,
                               "aggregated payload size over 2^31");
    resp->aggregated_payload_size = (int32_t)total;
    return ORPC_STATUS_OK;
}

static int send_full(orpc_ctx *ctx, void *stream, const OutResponse *r)
{
    (void)ctx;
    return grpc__testing__test_service__server__full_duplex_call__send(stream,
                                                                       r);
}

static orpc_status
full_duplex_call(orpc_ctx *ctx,
                 Grpc__Testing__TestService_FullDuplexCall_ServerStream *s,
                 void *ud)
{
    (void)ud;
    orpc_status st = ORPC_STATUS_OK;
    out_state os = {0, 0};
    const OutRequest *m;
    int rc;
    begin_call(ctx);
    while ((rc = grpc__testing__test_service__server__full_duplex_call__recv(
                s, &m)) == 1) {
        logf_("FullDuplexCall: request with %zu response parameters",
              m->n_response_parameters);
        if (echo_status(m->response_status, &st))
            return st;
        if (send_responses(ctx, &os, m, send_full, s, &st) != 0)
            return st;
    }
    if (rc < 0)
        return orpc_status_errorf(ORPC_CANCELLED, "recv: %s",
                                  orpc_strerror(rc));
    return ORPC_STATUS_OK;
}

static int send_half(orpc_ctx *ctx, void *stream, const OutResponse *r)
{
    (void)ctx;
    return grpc__testing__test_service__server__half_duplex_call__send(stream,
                                                                       r);
}

/* One buffered HalfDuplexCall request, serialized (a received message is
 * only valid until the next recv). */
typedef struct packed_req {
    uint8_t *data;
    size_t len;
} packed_req;

static orpc_status
half_duplex_call(orpc_ctx *ctx,
                 Grpc__Testing__TestService_HalfDuplexCall_ServerStream *s,
                 void *ud)
{
    (void)ud;
    orpc_status st = ORPC_STATUS_OK;
    out_state os = {0, 0};
    orpc_arena *a = orpc_ctx_arena(ctx);
    packed_req *reqs = NULL;
    size_t n = 0, cap = 0;
    const OutRequest *m;
    int rc;
    begin_call(ctx);
    while ((rc = grpc__testing__test_service__server__half_duplex_call__recv(
                s, &m)) == 1) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            packed_req *nr = orpc_arena_alloc(a, ncap * sizeof(*nr));
            if (nr == NULL)
                return orpc_status_new(ORPC_RESOURCE_EXHAUSTED,
                                       "out of memory");
            if (n)
                memcpy(nr, reqs, n * sizeof(*nr));
            reqs = nr;
            cap = ncap;
        }
        size_t len =
            grpc__testing__streaming_output_call_request__get_packed_size(m);
        uint8_t *buf = orpc_arena_alloc(a, len + 1);
        if (buf == NULL)
            return orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory");
        grpc__testing__streaming_output_call_request__pack(m, buf);
        reqs[n].data = buf;
        reqs[n].len = len;
        n++;
    }
    if (rc < 0)
        return orpc_status_errorf(ORPC_CANCELLED, "recv: %s",
                                  orpc_strerror(rc));
    logf_("HalfDuplexCall: %zu requests buffered", n);
    /* The call's compression follows the first request asking for any. */
    for (size_t i = 0; i < n && !os.decided; i++) {
        OutRequest *r = grpc__testing__streaming_output_call_request__unpack(
            NULL, reqs[i].len, reqs[i].data);
        if (r && wants_compression(r))
            decide_compression(ctx, &os, r);
        if (r)
            grpc__testing__streaming_output_call_request__free_unpacked(r,
                                                                        NULL);
    }
    os.decided = 1;
    for (size_t i = 0; i < n; i++) {
        OutRequest *r = grpc__testing__streaming_output_call_request__unpack(
            NULL, reqs[i].len, reqs[i].data);
        if (r == NULL)
            return orpc_status_new(ORPC_INTERNAL, "cannot reparse a request");
        int done = echo_status(r->response_status, &st) ||
                   send_responses(ctx, &os, r, send_half, s, &st) != 0;
        grpc__testing__streaming_output_call_request__free_unpacked(r, NULL);
        if (done)
            return st;
    }
    return ORPC_STATUS_OK;
}

static const Grpc__Testing__TestService_Handlers handlers = {
    .empty_call = empty_call,
    .unary_call = unary_call,
    .streaming_output_call = streaming_output_call,
    .streaming_input_call = streaming_input_call,
    .full_duplex_call = full_duplex_call,
    .half_duplex_call = half_duplex_call,
    /* .cacheable_unary_call and .unimplemented_call left NULL:
     * UNIMPLEMENTED. */
};

/* ---- flags ---- */

static void usage(void)
{
    fprintf(stderr,
            "usage: orpc-interop-server --port=N [--use_tls=true|false]\n"
            "       [--tls_cert=FILE --tls_key=FILE [--tls_ca=FILE]]\n"
            "       [--authz_policy=FILE]\n"
            "       [--bind_host=HOST] [--verbose=true|false]\n"
            "       [--admin_port=N]\n");
}

static int parse_bool(const char *v, int *out)
{
    if (v == NULL || strcmp(v, "true") == 0 || strcmp(v, "1") == 0) {
        *out = 1;
        return 0;
    }
    if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0) {
        *out = 0;
        return 0;
    }
    return -1;
}

/* Matches "--name=value" (or a bare "--name", value NULL). */
static int flag(const char *arg, const char *name, const char **value)
{
    size_t n = strlen(name);
    if (strncmp(arg, "--", 2) != 0 || strncmp(arg + 2, name, n) != 0)
        return 0;
    if (arg[2 + n] == '=') {
        *value = arg + 3 + n;
        return 1;
    }
    if (arg[2 + n] == '\0') {
        *value = NULL;
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    long port = -1;
    int use_tls = 0;
    const char *cert = NULL, *key = NULL, *ca = NULL, *bind_host = NULL;
    const char *policy = NULL;
    long admin_port = -1;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (flag(argv[i], "port", &v) && v) {
            char *end;
            errno = 0;
            port = strtol(v, &end, 10);
            if (errno || *end || port < 0 || port > 65535) {
                fprintf(stderr, "orpc-interop-server: bad --port=%s\n", v);
                return 2;
            }
        } else if (flag(argv[i], "use_tls", &v)) {
            if (parse_bool(v, &use_tls) != 0) {
                fprintf(stderr, "orpc-interop-server: bad --use_tls\n");
                return 2;
            }
        } else if (flag(argv[i], "verbose", &v)) {
            if (parse_bool(v, &verbose) != 0) {
                fprintf(stderr, "orpc-interop-server: bad --verbose\n");
                return 2;
            }
        } else if (flag(argv[i], "tls_cert", &v) && v) {
            cert = v;
        } else if (flag(argv[i], "tls_key", &v) && v) {
            key = v;
        } else if (flag(argv[i], "tls_ca", &v) && v) {
            ca = v;
        } else if (flag(argv[i], "authz_policy", &v) && v) {
            policy = v;
        } else if (flag(argv[i], "admin_port", &v) && v) {
            char *end;
            errno = 0;
            admin_port = strtol(v, &end, 10);
            if (errno || *end || admin_port < 0 || admin_port > 65535) {
                fprintf(stderr, "orpc-interop-server: bad --admin_port=%s\n",
                        v);
                return 2;
            }
        } else if (flag(argv[i], "bind_host", &v) && v) {
            bind_host = v;
        } else {
            fprintf(stderr, "orpc-interop-server: unknown flag %s\n", argv[i]);
            usage();
            return 2;
        }
    }
    if (port < 0) {
        usage();
        return 2;
    }
    if (use_tls && (cert == NULL || key == NULL)) {
        fprintf(stderr,
                "orpc-interop-server: --use_tls=true needs --tls_cert and "
                "--tls_key\n");
        return 2;
    }
    if (!use_tls && (cert || key || ca)) {
        fprintf(stderr,
                "orpc-interop-server: --tls_* flags need --use_tls=true\n");
        return 2;
    }

    orpc_server_opts o = {0};
    o.log = orpc_logger;
    o.authz_policy_file = policy; /* reread on SIGHUP */
    if (use_tls) {
        o.tls.cert_file = cert;
        o.tls.key_file = key;
        if (ca) {
            o.tls.ca_file = ca;
            o.tls.require_client_cert = 1;
        }
    } else {
        o.plaintext = 1;
    }
    char admin_addr[32];
    orpc_metrics *metrics = NULL; /* the calls' counts, for /metrics */
    if (admin_port >= 0) {
        snprintf(admin_addr, sizeof(admin_addr), "127.0.0.1:%ld", admin_port);
        o.admin_address = admin_addr;
        if (orpc_metrics_new(&metrics, NULL, NULL) != 0) {
            fprintf(stderr, "orpc-interop-server: out of memory\n");
            return 1;
        }
        o.metrics = metrics;
    }
    orpc_server *srv;
    int rc = orpc_server_new(&srv, &o, NULL, NULL);
    orpc_metrics_unref(metrics); /* the server holds its own reference */
    if (rc != 0) {
        fprintf(stderr, "orpc-interop-server: orpc_server_new: %s\n",
                orpc_strerror(rc));
        return 1;
    }
    rc = grpc__testing__test_service__server__register(srv, &handlers, NULL);
    if (rc != 0) {
        fprintf(stderr, "orpc-interop-server: register: %s\n",
                orpc_strerror(rc));
        orpc_server_free(srv);
        return 1;
    }

    /* Connect (no legacy routes: TestService has no HttpRules) */
    orpc_legacy_serve *gw = NULL;
    orpc_legacy_serve_opts go = {.no_legacy_routes = 1};
    rc = orpc_legacy_serve_new(&gw, &go);
    if (rc == 0)
        rc = orpc_legacy_serve_install(gw, srv);
    if (rc != 0) {
        fprintf(stderr, "orpc-interop-server: gateway: %s\n",
                orpc_strerror(rc));
        orpc_server_free(srv);
        orpc_legacy_serve_free(gw);
        return 1;
    }

    char addr[300];
    int bound = 0;
    if (bind_host) {
        if (strchr(bind_host, ':') && bind_host[0] != '[')
            snprintf(addr, sizeof(addr), "[%s]:%ld", bind_host, port);
        else
            snprintf(addr, sizeof(addr), "%s:%ld", bind_host, port);
        rc = orpc_server_listen(srv, addr, &bound, NULL);
    } else {
        /* Loopback only, on both families with the same port so that
         * "localhost" works whichever address a client tries first. */
        snprintf(addr, sizeof(addr), "127.0.0.1:%ld", port);
        rc = orpc_server_listen(srv, addr, &bound, NULL);
        if (rc == 0) {
            char addr6[64];
            snprintf(addr6, sizeof(addr6), "[::1]:%d", bound);
            if (orpc_server_listen(srv, addr6, NULL, NULL) != 0)
                logf_("cannot also listen on %s (no IPv6?)", addr6);
        }
    }
    if (rc != 0) {
        fprintf(stderr, "orpc-interop-server: cannot listen on %s: %s\n", addr,
                orpc_strerror(rc));
        orpc_server_free(srv);
        orpc_legacy_serve_free(gw);
        return 1;
    }
    rc = orpc_server_start(srv);
    if (rc != 0) {
        fprintf(stderr, "orpc-interop-server: orpc_server_start: %s\n",
                orpc_strerror(rc));
        orpc_server_free(srv);
        orpc_legacy_serve_free(gw);
        return 1;
    }
    if (admin_port >= 0)
        printf("admin on %d\n", orpc_server_admin_port(srv));
    printf("listening on %d\n", bound);
    fflush(stdout);
    rc = orpc_server_run(srv);
    orpc_server_free(srv);
    orpc_legacy_serve_free(gw);
    if (rc != 0) {
        fprintf(stderr, "orpc-interop-server: orpc_server_run: %s\n",
                orpc_strerror(rc));
        return 1;
    }
    return 0;
}
