/*
 * rpc_h2json_test.c — JSON and Connect over HTTP/2 on the gRPC port: orpc's
 * gateway (orpc/compat/serve.h) answering HTTP/2 streams that are not gRPC
 * (server_h2x.c), over h2c with prior knowledge and over TLS with ALPN h2,
 * driven by libcurl and by the raw HTTP/2 peer (tests/h2peer.c): Connect
 * unary JSON and proto, Connect errors, Connect-Timeout-Ms, Connect GET, a
 * legacy route with a bearer token, NDJSON server streaming, a gRPC call
 * and a JSON call on one connection at once, the body limit (413), a peer
 * that stops reading and then resets its stream (the handler is stalled,
 * then cancelled), and 415 kept without a gateway.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <stdatomic.h>

#include <cmocka.h>
#include <curl/curl.h>

#include <orpc/compat/json.h>
#include <orpc/compat/serve.h>
#include <orpc/gateway.h>
#include <orpc/orpc.h>

#include "h2peer.h"
#include "opsconductor/auth/v1/auth.orpc.h"
#include "opsconductor/jobs/v1/jobs.orpc.h"

#ifndef GEN_CERTS
#error "GEN_CERTS (path of scripts/gen-test-certs.sh) must be defined"
#endif

#define MAX_BODY 4096 /* the servers' http1_max_body */

/* ---- the services ------------------------------------------------------ */

static atomic_int g_watch_sent;   /* events the endless watch sent */
static atomic_int g_watch_done;   /* the endless watch returned */
static atomic_int g_slow_cancels; /* the slow GetJob saw its cancellation */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static orpc_status struct_into(orpc_ctx *ctx, const char *json,
                               Google__Protobuf__Struct **out)
{
    ProtobufCMessage *s = NULL;
    if (orpc_json_decode(&s, &google__protobuf__struct__orpc_info, json,
                         strlen(json), NULL,
                         orpc_arena_allocator(orpc_ctx_arena(ctx)), NULL) != 0)
        return orpc_status_new(ORPC_INTERNAL, "struct");
    *out = (Google__Protobuf__Struct *)s;
    return ORPC_STATUS_OK;
}

/* 7: a job; 98: a job after 300 ms; 99: waits (up to 3 s) for its
 * cancellation; others: NOT_FOUND. */
static orpc_status get_job(orpc_ctx *ctx,
                           const Opsconductor__Jobs__V1__GetJobRequest *req,
                           Opsconductor__Jobs__V1__GetJobResponse *resp,
                           void *ud)
{
    (void)ud;
    if (req->job_id == 98) {
        usleep(300000);
        return struct_into(ctx, "{\"id\":98}", &resp->job);
    }
    if (req->job_id == 99) {
        for (int i = 0; i < 300 && !orpc_ctx_is_cancelled(ctx); i++)
            usleep(10000);
        if (orpc_ctx_is_cancelled(ctx))
            atomic_fetch_add(&g_slow_cancels, 1);
        return struct_into(ctx, "{\"id\":99}", &resp->job);
    }
    if (req->job_id != 7)
        return orpc_status_errorf(ORPC_NOT_FOUND, "Job %lld not found",
                                  (long long)req->job_id);
    orpc_ctx_add_header(ctx, "x-served", "h2json", 6);
    return struct_into(ctx, "{\"id\":7,\"name\":\"backup\",\"owner\":null}",
                       &resp->job);
}

static orpc_status run_job(orpc_ctx *ctx,
                           const Opsconductor__Jobs__V1__RunJobRequest *req,
                           Opsconductor__Jobs__V1__RunJobResponse *resp,
                           void *ud)
{
    (void)ud;
    const char *who = orpc_ctx_peer_identity(ctx);
    char json[256];
    snprintf(json, sizeof(json), "{\"job_id\":%lld,\"triggered_by\":\"%s\"}",
             (long long)req->job_id, who ? who : "");
    return struct_into(ctx, json, &resp->result);
}

/* 8: two events and DATA_LOSS; 100: events until the call is cancelled
 * (at most 10 million); others: two events. */
static orpc_status
watch_job(orpc_ctx *ctx, const Opsconductor__Jobs__V1__WatchJobRequest *req,
          Opsconductor__Jobs__V1__JobsService_WatchJob_ServerWriter *call,
          void *ud)
{
    (void)ctx;
    (void)ud;
    Opsconductor__Jobs__V1__JobEvent ev =
        OPSCONDUCTOR__JOBS__V1__JOB_EVENT__INIT;
    ev.job_id = req->job_id;
    if (req->job_id == 100) {
        ev.status = "running";
        for (int i = 0; i < 10000000; i++) {
            if (opsconductor__jobs__v1__jobs_service__server__watch_job__send(
                    call, &ev) != 0)
                break;
            atomic_fetch_add(&g_watch_sent, 1);
        }
        atomic_store(&g_watch_done, 1);
        return ORPC_STATUS_OK;
    }
    ev.status = "running";
    opsconductor__jobs__v1__jobs_service__server__watch_job__send(call, &ev);
    ev.status = "failed";
    opsconductor__jobs__v1__jobs_service__server__watch_job__send(call, &ev);
    if (req->job_id == 8)
        return orpc_status_new(ORPC_DATA_LOSS, "lost the log");
    return ORPC_STATUS_OK;
}

static const Opsconductor__Jobs__V1__JobsService_Handlers jobs = {
    .get_job = get_job, .run_job = run_job, .watch_job = watch_job};

static int verify(const char *token, char **identity, void *ud)
{
    (void)ud;
    if (strcmp(token, "good") != 0)
        return ORPC_EINVAL;
    *identity = strdup("legacy-service:scheduler-service");
    return 0;
}

/* ---- servers ----------------------------------------------------------- */

static char g_dir[64], g_ca[300], g_cert[300], g_key[300];

typedef struct server {
    orpc_server *srv;
    orpc_legacy_serve *ls;
    int port;
} server;

/* A server with JobsService on 127.0.0.1; |tls|: with the test certificate;
 * |gateway|: orpc's gateway with the test verifier. */
static void start(server *s, int tls, int gateway)
{
    orpc_server_opts so = {
        .plaintext = !tls, .io_threads = 1, .http1_max_body = MAX_BODY};
    if (tls) {
        so.tls.cert_file = g_cert;
        so.tls.key_file = g_key;
    }
    orpc_legacy_serve_opts lo = {.verify = verify};
    memset(s, 0, sizeof(*s));
    assert_int_equal(orpc_server_new(&s->srv, &so, NULL, NULL), 0);
    assert_int_equal(opsconductor__jobs__v1__jobs_service__server__register(
                         s->srv, &jobs, NULL),
                     0);
    if (gateway) {
        assert_int_equal(orpc_legacy_serve_new(&s->ls, &lo), 0);
        assert_int_equal(orpc_legacy_serve_install(s->ls, s->srv), 0);
    }
    assert_int_equal(orpc_server_listen(s->srv, "127.0.0.1:0", &s->port, NULL),
                     0);
    assert_int_equal(orpc_server_start(s->srv), 0);
}

static void stop(server *s)
{
    orpc_server_shutdown(s->srv, 100);
    orpc_server_wait(s->srv);
    orpc_server_free(s->srv);
    orpc_legacy_serve_free(s->ls);
}

/* ---- libcurl ----------------------------------------------------------- */

typedef struct reply {
    long status;
    long version; /* CURL_HTTP_VERSION_2_0 over HTTP/2 */
    char body[32768];
    size_t len;
    char head[4096];
    size_t hlen;
} reply;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    reply *r = ud;
    size_t len = sz * n;
    if (r->len + len >= sizeof(r->body))
        return 0;
    memcpy(r->body + r->len, p, len);
    r->len += len;
    r->body[r->len] = '\0';
    return len;
}

static size_t on_head(char *p, size_t sz, size_t n, void *ud)
{
    reply *r = ud;
    size_t len = sz * n;
    if (r->hlen + len < sizeof(r->head)) {
        memcpy(r->head + r->hlen, p, len);
        r->hlen += len;
        r->head[r->hlen] = '\0';
    }
    return len;
}

/* An easy handle for |method| |path| on |port|, HTTP/2 only: prior
 * knowledge in cleartext, ALPN h2 over TLS (verified against the test CA,
 * as "localhost" pinned to 127.0.0.1). */
static CURL *easy(reply *r, struct curl_slist **hl, struct curl_slist **res,
                  int port, int tls, const char *method, const char *path,
                  const char *const *headers, const void *body, size_t blen)
{
    char url[512], pin[64];
    CURL *c = curl_easy_init();
    assert_non_null(c);
    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "%s://localhost:%d%s", tls ? "https" : "http",
             port, path);
    snprintf(pin, sizeof(pin), "localhost:%d:127.0.0.1", port);
    *res = curl_slist_append(NULL, pin);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_RESOLVE, *res);
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION,
                     tls ? (long)CURL_HTTP_VERSION_2TLS
                         : (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
    if (tls)
        curl_easy_setopt(c, CURLOPT_CAINFO, g_ca);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)blen);
    }
    *hl = NULL;
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        *hl = curl_slist_append(*hl, headers[i]);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_head);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    return c;
}

/* One request; its status (the reply in |r|). */
static long req(reply *r, int port, int tls, const char *method,
                const char *path, const char *const *headers, const void *body,
                size_t blen)
{
    struct curl_slist *hl, *res;
    CURL *c = easy(r, &hl, &res, port, tls, method, path, headers, body, blen);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        fprintf(stderr, "curl: %s\n", curl_easy_strerror(rc));
    assert_int_equal(rc, CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(c, CURLINFO_HTTP_VERSION, &r->version);
    curl_easy_cleanup(c);
    curl_slist_free_all(hl);
    curl_slist_free_all(res);
    assert_int_equal(r->version, CURL_HTTP_VERSION_2_0);
    return r->status;
}

static const char *const connect_json[] = {"Content-Type: application/json",
                                           "Connect-Protocol-Version: 1", NULL};
static const char *const connect_proto[] = {"Content-Type: application/proto",
                                            NULL};

#define GET_JOB "/opsconductor.jobs.v1.JobsService/GetJob"

/* ---- Connect ----------------------------------------------------------- */

static void connect_unary(int port, int tls)
{
    reply r;
    const char *b = "{\"jobId\":\"7\"}";
    assert_int_equal(
        req(&r, port, tls, "POST", GET_JOB, connect_json, b, strlen(b)), 200);
    assert_string_equal(
        r.body, "{\"job\":{\"id\":7,\"name\":\"backup\",\"owner\":null}}");
    assert_non_null(strcasestr(r.head, "content-type: application/json"));
    assert_non_null(strcasestr(r.head, "x-served: h2json")); /* metadata */
    /* proto in, proto out */
    Opsconductor__Jobs__V1__GetJobRequest g =
        OPSCONDUCTOR__JOBS__V1__GET_JOB_REQUEST__INIT;
    uint8_t pb[32];
    g.job_id = 7;
    size_t n = opsconductor__jobs__v1__get_job_request__pack(&g, pb);
    assert_int_equal(req(&r, port, tls, "POST", GET_JOB, connect_proto, pb, n),
                     200);
    assert_non_null(strcasestr(r.head, "content-type: application/proto"));
    Opsconductor__Jobs__V1__GetJobResponse *resp =
        opsconductor__jobs__v1__get_job_response__unpack(
            NULL, r.len, (const uint8_t *)r.body);
    assert_non_null(resp);
    assert_non_null(resp->job);
    assert_int_equal(resp->job->n_fields, 3);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
}

static void test_connect_unary_h2c(void **state)
{
    server *s = *state;
    connect_unary(s[0].port, 0);
}

static void test_connect_unary_tls_h2(void **state)
{
    server *s = *state;
    connect_unary(s[1].port, 1);
}

static void test_connect_error(void **state)
{
    server *s = *state;
    reply r;
    const char *b = "{\"jobId\":\"9\"}";
    assert_int_equal(
        req(&r, s[0].port, 0, "POST", GET_JOB, connect_json, b, strlen(b)),
        404);
    assert_string_equal(
        r.body, "{\"code\":\"not_found\",\"message\":\"Job 9 not found\"}");
    /* no such method: Connect's 404 unimplemented; a bad body 400 */
    assert_int_equal(req(&r, s[0].port, 0, "POST",
                         "/opsconductor.jobs.v1.JobsService/Nope", connect_json,
                         "{}", 2),
                     404);
    assert_non_null(strstr(r.body, "\"code\":\"unimplemented\""));
    assert_int_equal(
        req(&r, s[0].port, 0, "POST", GET_JOB, connect_json, "{\"jobId\":", 9),
        400);
    assert_non_null(strstr(r.body, "\"code\":\"invalid_argument\""));
}

static void test_connect_timeout(void **state)
{
    server *s = *state;
    reply r;
    static const char *const h[] = {"Content-Type: application/json",
                                    "Connect-Timeout-Ms: 100", NULL};
    const char *b = "{\"jobId\":\"99\"}";
    int before = atomic_load(&g_slow_cancels);
    int64_t t0 = now_ms();
    assert_int_equal(req(&r, s[0].port, 0, "POST", GET_JOB, h, b, strlen(b)),
                     504);
    int64_t took = now_ms() - t0;
    assert_non_null(strstr(r.body, "\"code\":\"deadline_exceeded\""));
    assert_true(took >= 90 && took < 2000);
    /* the handler learnt it (bounded wait) */
    for (int i = 0; i < 200 && atomic_load(&g_slow_cancels) == before; i++)
        usleep(10000);
    assert_int_equal(atomic_load(&g_slow_cancels), before + 1);
}

static void test_connect_get(void **state)
{
    server *s = *state;
    reply r;
    assert_int_equal(req(&r, s[0].port, 0, "GET",
                         GET_JOB "?encoding=json&message=%7B%22jobId%22%3A7%7D",
                         NULL, NULL, 0),
                     200);
    assert_string_equal(
        r.body, "{\"job\":{\"id\":7,\"name\":\"backup\",\"owner\":null}}");
    /* RunJob has side effects: no GET */
    assert_int_equal(req(&r, s[0].port, 0, "GET",
                         "/opsconductor.jobs.v1.JobsService/RunJob?encoding="
                         "json&message=%7B%7D",
                         NULL, NULL, 0),
                     405);
}

/* ---- legacy routes and NDJSON ------------------------------------------ */

static void test_legacy_route_bearer(void **state)
{
    server *s = *state;
    reply r;
    static const char *const good[] = {"Authorization: Bearer good", NULL};
    static const char *const bad[] = {"Authorization: Bearer bad", NULL};
    for (int tls = 0; tls < 2; tls++) {
        int port = s[tls].port;
        assert_int_equal(req(&r, port, tls, "GET", "/jobs/7", good, NULL, 0),
                         200);
        assert_string_equal(r.body,
                            "{\"id\":7,\"name\":\"backup\",\"owner\":null}");
        assert_int_equal(req(&r, port, tls, "GET", "/jobs/7", NULL, NULL, 0),
                         401);
        assert_string_equal(r.body, "{\"detail\":\"Not authenticated\"}");
        assert_non_null(strcasestr(r.head, "www-authenticate: Bearer"));
        assert_int_equal(req(&r, port, tls, "GET", "/jobs/7", bad, NULL, 0),
                         401);
        /* the token's identity reaches the handler */
        static const char *const post[] = {"Authorization: Bearer good",
                                           "Content-Type: application/json",
                                           NULL};
        assert_int_equal(
            req(&r, port, tls, "POST", "/jobs/3/run", post, "{}", 2), 200);
        assert_string_equal(r.body, "{\"job_id\":3,\"triggered_by\":\"legacy-"
                                    "service:scheduler-service\"}");
        assert_int_equal(req(&r, port, tls, "GET", "/health", NULL, NULL, 0),
                         200);
    }
}

static void test_ndjson_stream(void **state)
{
    server *s = *state;
    reply r;
    static const char *const good[] = {"Authorization: Bearer good", NULL};
    for (int tls = 0; tls < 2; tls++) {
        assert_int_equal(
            req(&r, s[tls].port, tls, "GET", "/jobs/8/events", good, NULL, 0),
            200);
        assert_non_null(
            strcasestr(r.head, "content-type: application/x-ndjson"));
        assert_null(strcasestr(r.head, "content-length"));
        assert_string_equal(r.body,
                            "{\"job_id\":8,\"status\":\"running\"}\n"
                            "{\"job_id\":8,\"status\":\"failed\"}\n"
                            "{\"error\":{\"code\":500,\"status\":\"DATA_LOSS\","
                            "\"detail\":\"lost the log\"}}\n");
        assert_int_equal(
            req(&r, s[tls].port, tls, "GET", "/jobs/5/events", good, NULL, 0),
            200);
        assert_string_equal(r.body, "{\"job_id\":5,\"status\":\"running\"}\n"
                                    "{\"job_id\":5,\"status\":\"failed\"}\n");
    }
}

/* ---- one connection, both worlds (the raw peer) ------------------------ */

#define NV(n, v)                                                               \
    {                                                                          \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v),              \
            NGHTTP2_NV_FLAG_NONE                                               \
    }

/* Reads frames (within 5 s each) until stream |id| ends; its :status, and
 * its DATA appended to |body|. */
static int read_until_end(h2p *p, uint32_t id, char *body, size_t cap,
                          int *order, int *seq)
{
    int status = 0;
    size_t len = 0;
    for (int i = 0; i < 10000; i++) {
        h2p_frame f;
        int t = h2p_read_frame(p, 5000, &f);
        if (t < 0)
            return -1;
        if (f.stream != id)
            continue;
        if (t == H2P_HEADERS) {
            h2p_head h;
            if (h2p_decode(p, f.payload, f.len, &h) == 0 && h.http_status)
                status = h.http_status;
        } else if (t == H2P_DATA && len + f.len < cap) {
            memcpy(body + len, f.payload, f.len);
            len += f.len;
            body[len] = '\0';
        } else if (t == H2P_RST) {
            return -2;
        }
        if ((t == H2P_HEADERS || t == H2P_DATA) && (f.flags & 1)) {
            if (order != NULL)
                *order = (*seq)++;
            return status;
        }
    }
    return -3;
}

/* A slow Connect call (300 ms) on stream 1 and a gRPC call on stream 3 of
 * one connection: the gRPC answer comes first, both are right. */
static void test_grpc_and_json_one_connection(void **state)
{
    server *s = *state;
    h2p *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    assert_int_equal(h2p_dial(p, s[0].port), 0);
    const char *jb = "{\"jobId\":\"98\"}";
    nghttp2_nv nv[] = {NV(":method", "POST"), NV(":scheme", "http"),
                       NV(":path", GET_JOB), NV(":authority", "localhost"),
                       NV("content-type", "application/json")};
    assert_int_equal(h2p_headers(p, 1, nv, 5, 0), 0);
    assert_int_equal(h2p_data(p, 1, jb, strlen(jb), 1), 0);
    /* the gRPC call: GetJob(7) */
    Opsconductor__Jobs__V1__GetJobRequest g =
        OPSCONDUCTOR__JOBS__V1__GET_JOB_REQUEST__INIT;
    uint8_t msg[64];
    g.job_id = 7;
    size_t n = opsconductor__jobs__v1__get_job_request__pack(&g, msg + 5);
    h2p_prefix(msg, (uint32_t)n);
    assert_int_equal(h2p_request(p, 3, GET_JOB, 0), 0);
    assert_int_equal(h2p_data(p, 3, msg, n + 5, 1), 0);
    /* both answers, in the order they end */
    char jbody[4096] = "", gbody[4096] = "";
    int seq = 0, jorder = -1, gorder = -1, jstatus = 0, gstatus = 0,
        grpc_status = -1;
    size_t glen = 0;
    for (int i = 0; i < 10000 && (jorder < 0 || gorder < 0); i++) {
        h2p_frame f;
        int t = h2p_read_frame(p, 5000, &f);
        assert_true(t >= 0);
        assert_int_not_equal(t, H2P_RST);
        if (f.stream != 1 && f.stream != 3)
            continue;
        int end = (t == H2P_HEADERS || t == H2P_DATA) && (f.flags & 1);
        if (t == H2P_HEADERS) {
            h2p_head h;
            assert_int_equal(h2p_decode(p, f.payload, f.len, &h), 0);
            if (h.http_status)
                *(f.stream == 1 ? &jstatus : &gstatus) = h.http_status;
            if (f.stream == 3 && h.grpc_status >= 0)
                grpc_status = h.grpc_status;
        } else if (t == H2P_DATA) {
            char *b = f.stream == 1 ? jbody : gbody;
            size_t have = f.stream == 1 ? strlen(jbody) : glen;
            assert_true(have + f.len < sizeof(jbody));
            memcpy(b + have, f.payload, f.len);
            if (f.stream == 1)
                jbody[have + f.len] = '\0';
            else
                glen += f.len;
        }
        if (end)
            *(f.stream == 1 ? &jorder : &gorder) = seq++;
    }
    assert_int_equal(gorder, 0); /* not behind the slow JSON call */
    assert_int_equal(jorder, 1);
    assert_int_equal(gstatus, 200);
    assert_int_equal(grpc_status, 0);
    assert_true(glen > 5);
    Opsconductor__Jobs__V1__GetJobResponse *resp =
        opsconductor__jobs__v1__get_job_response__unpack(
            NULL, glen - 5, (const uint8_t *)gbody + 5);
    assert_non_null(resp);
    assert_int_equal(resp->job->n_fields, 3);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    assert_int_equal(jstatus, 200);
    assert_string_equal(jbody, "{\"job\":{\"id\":98}}");
    h2p_close(p);
    free(p);
}

/* ---- limits and hostile peers ------------------------------------------ */

static void test_body_over_limit_413(void **state)
{
    server *s = *state;
    reply r;
    /* with a Content-Length (libcurl sends one): refused at the head */
    char *big = malloc(MAX_BODY + 100);
    assert_non_null(big);
    memset(big, ' ', MAX_BODY + 100);
    big[0] = '{';
    big[MAX_BODY + 99] = '}';
    assert_int_equal(req(&r, s[0].port, 0, "POST", GET_JOB, connect_json, big,
                         MAX_BODY + 100),
                     413);
    assert_string_equal(r.body, "{\"detail\":\"request body too large\"}");
    /* at the limit: served (the body is JSON whitespace around {}) */
    assert_int_equal(
        req(&r, s[0].port, 0, "POST", GET_JOB, connect_json, big, MAX_BODY),
        400); /* (an object cut short: the body reached the gateway) */
    free(big);
    /* without one: refused as the DATA comes, the stream reset after */
    h2p *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    assert_int_equal(h2p_dial(p, s[0].port), 0);
    nghttp2_nv nv[] = {NV(":method", "POST"), NV(":scheme", "http"),
                       NV(":path", GET_JOB), NV(":authority", "localhost"),
                       NV("content-type", "application/json")};
    assert_int_equal(h2p_headers(p, 1, nv, 5, 0), 0);
    char chunk[3000];
    memset(chunk, ' ', sizeof(chunk));
    assert_int_equal(h2p_data(p, 1, chunk, sizeof(chunk), 0), 0);
    assert_int_equal(h2p_data(p, 1, chunk, sizeof(chunk), 0), 0);
    char body[512] = "";
    assert_int_equal(read_until_end(p, 1, body, sizeof(body), NULL, NULL), 413);
    assert_string_equal(body, "{\"detail\":\"request body too large\"}");
    /* a peer that goes on sending is dropped, then told to stop (a window's
     * worth later: RST_STREAM NO_ERROR) */
    int reset = 0;
    size_t sent = 0;
    for (int i = 0; i < 200 && !reset; i++) {
        if (h2p_window(p, 1) >= (int64_t)sizeof(chunk)) {
            assert_int_equal(h2p_data(p, 1, chunk, sizeof(chunk), 0), 0);
            sent += sizeof(chunk);
        }
        h2p_frame f;
        int t = h2p_read_frame(p, 50, &f);
        assert_int_not_equal(t, -1);
        if (t == H2P_RST && f.stream == 1) {
            assert_int_equal(f.len, 4);
            assert_int_equal(f.payload[3], NGHTTP2_NO_ERROR);
            reset = 1;
        }
    }
    assert_true(reset);
    assert_true(sent > 60000);
    /* the connection goes on: the next stream is answered */
    const char *jb = "{\"jobId\":\"7\"}";
    assert_int_equal(h2p_headers(p, 3, nv, 5, 0), 0);
    assert_int_equal(h2p_data(p, 3, jb, strlen(jb), 1), 0);
    assert_int_equal(read_until_end(p, 3, body, sizeof(body), NULL, NULL), 200);
    h2p_close(p);
    free(p);
}

/* A peer that never reads the endless stream: the handler stalls once the
 * stream's window and the call's queue are full (its sends stop growing),
 * and RST_STREAM cancels it. */
static void test_stalled_reader_then_reset(void **state)
{
    server *s = *state;
    atomic_store(&g_watch_sent, 0);
    atomic_store(&g_watch_done, 0);
    h2p *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    assert_int_equal(h2p_dial(p, s[0].port), 0);
    nghttp2_nv nv[] = {NV(":method", "GET"), NV(":scheme", "http"),
                       NV(":path", "/jobs/100/events"),
                       NV(":authority", "localhost"),
                       NV("authorization", "Bearer good")};
    assert_int_equal(h2p_headers(p, 1, nv, 5, 1), 0);
    /* the head and a first DATA frame */
    int status = 0, data = 0;
    for (int i = 0; i < 100 && !data; i++) {
        h2p_frame f;
        int t = h2p_read_frame(p, 5000, &f);
        assert_true(t >= 0);
        if (t == H2P_HEADERS && f.stream == 1) {
            h2p_head h;
            assert_int_equal(h2p_decode(p, f.payload, f.len, &h), 0);
            status = h.http_status;
        }
        data = t == H2P_DATA && f.stream == 1;
    }
    assert_int_equal(status, 200);
    assert_true(data);
    /* no more reading: the sends stop (bounded wait for them to settle) */
    int a = -1, b = atomic_load(&g_watch_sent);
    for (int i = 0; i < 50 && a != b; i++) {
        usleep(100000);
        a = b;
        b = atomic_load(&g_watch_sent);
    }
    assert_int_equal(a, b);
    assert_false(atomic_load(&g_watch_done));
    /* ~40 bytes an event: the 64 KiB window and the 64 KiB queue hold a
     * few thousand; an unbounded server would have sent millions */
    assert_true(b < 20000);
    /* RST_STREAM (CANCEL): the handler learns at once */
    uint8_t code[4] = {0, 0, 0, NGHTTP2_CANCEL};
    assert_int_equal(h2p_write_frame(p, H2P_RST, 0, 1, code, 4), 0);
    for (int i = 0; i < 500 && !atomic_load(&g_watch_done); i++)
        usleep(10000);
    assert_true(atomic_load(&g_watch_done));
    h2p_close(p);
    free(p);
}

static void test_no_gateway_415(void **state)
{
    (void)state;
    server s;
    reply r;
    start(&s, 0, 0);
    const char *b = "{\"jobId\":\"7\"}";
    assert_int_equal(
        req(&r, s.port, 0, "POST", GET_JOB, connect_json, b, strlen(b)), 415);
    assert_non_null(strcasestr(r.head, "content-type: application/grpc"));
    stop(&s);
}

/* ---- the exchange API on HTTP/2, with a gateway of the test's own ------ */

/* Answers every request with what it saw: version, method, target, the
 * x-probe header, the body's length, how many headers it was given and how
 * many of them are pseudo-headers; adds a header HTTP/2 forbids
 * (Keep-Alive) beside one it allows. */
static int probe_request(orpc_http_exchange *x, void *ud)
{
    (void)ud;
    const orpc_metadata *md = orpc_http_headers(x);
    size_t pseudo = 0, n = orpc_metadata_count(md);
    for (size_t i = 0; i < n; i++) {
        const char *k;
        const uint8_t *v;
        size_t len;
        if (orpc_metadata_at(md, i, &k, &v, &len) == 0 && k[0] == ':')
            pseudo++;
    }
    size_t blen = 0;
    (void)orpc_http_body(x, &blen);
    const char *probe = orpc_http_header(x, "X-Probe");
    char out[512];
    int k = snprintf(out, sizeof(out), "v%d %s %s probe=%s body=%zu pseudo=%zu",
                     orpc_http_version(x), orpc_http_method(x),
                     orpc_http_target(x), probe ? probe : "-", blen, pseudo);
    orpc_http_add_header(x, "Keep-Alive", "timeout=5");
    orpc_http_add_header(x, "X-Custom", "Yes");
    return orpc_http_respond(x, 201, "text/plain", out, (size_t)k);
}

static const orpc_gateway probe_gw = {.on_request = probe_request};

static void test_exchange_api_on_h2(void **state)
{
    (void)state;
    server s;
    reply r;
    orpc_server_opts so = {.plaintext = 1, .io_threads = 1};
    memset(&s, 0, sizeof(s));
    assert_int_equal(orpc_server_new(&s.srv, &so, NULL, NULL), 0);
    assert_int_equal(orpc_server_set_gateway(s.srv, &probe_gw, NULL), 0);
    assert_int_equal(orpc_server_listen(s.srv, "127.0.0.1:0", &s.port, NULL),
                     0);
    assert_int_equal(orpc_server_start(s.srv), 0);
    static const char *const h[] = {"X-Probe: 42", "Content-Type: text/plain",
                                    NULL};
    assert_int_equal(req(&r, s.port, 0, "PUT", "/a/b?c=%20d", h, "hello", 5),
                     201);
    assert_string_equal(r.body, "v2 PUT /a/b?c=%20d probe=42 body=5 pseudo=0");
    assert_non_null(strcasestr(r.head, "x-custom: Yes"));
    assert_null(strcasestr(r.head, "keep-alive"));
    assert_non_null(strcasestr(r.head, "content-type: text/plain"));
    /* a gRPC content-type with another method is the gateway's too */
    static const char *const g[] = {"Content-Type: application/grpc", NULL};
    assert_int_equal(req(&r, s.port, 0, "GET", "/x", g, NULL, 0), 201);
    assert_string_equal(r.body, "v2 GET /x probe=- body=0 pseudo=0");
    stop(&s);
}

/* ---- setup ------------------------------------------------------------- */

static int group_setup(void **state)
{
    char cmd[600];
    snprintf(g_dir, sizeof(g_dir), "/tmp/orpc-h2json-test-XXXXXX");
    if (mkdtemp(g_dir) == NULL)
        return -1;
    snprintf(cmd, sizeof(cmd), "sh %s %s >/dev/null 2>&1", GEN_CERTS, g_dir);
    if (system(cmd) != 0)
        return -1;
    snprintf(g_ca, sizeof(g_ca), "%s/ca.pem", g_dir);
    snprintf(g_cert, sizeof(g_cert), "%s/server.pem", g_dir);
    snprintf(g_key, sizeof(g_key), "%s/server.key", g_dir);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -1;
    server *s = calloc(2, sizeof(*s));
    if (s == NULL)
        return -1;
    start(&s[0], 0, 1); /* h2c */
    start(&s[1], 1, 1); /* TLS */
    *state = s;
    return 0;
}

static int group_teardown(void **state)
{
    server *s = *state;
    char cmd[300];
    stop(&s[0]);
    stop(&s[1]);
    free(s);
    curl_global_cleanup();
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_unary_h2c),
        cmocka_unit_test(test_connect_unary_tls_h2),
        cmocka_unit_test(test_connect_error),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_connect_get),
        cmocka_unit_test(test_legacy_route_bearer),
        cmocka_unit_test(test_ndjson_stream),
        cmocka_unit_test(test_grpc_and_json_one_connection),
        cmocka_unit_test(test_body_over_limit_413),
        cmocka_unit_test(test_stalled_reader_then_reset),
        cmocka_unit_test(test_no_gateway_415),
        cmocka_unit_test(test_exchange_api_on_h2),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
