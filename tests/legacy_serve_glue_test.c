/*
 * legacy_serve_glue_test.c — the gateway's glue (compat/src/serve.c, built
 * with ORPC_HAVE_GATEWAY) against a stand-in for the runtime's side of
 * orpc/gateway.h: exchanges are plain structs, orpc_http_call() records the
 * call, and the test plays the runtime by calling on_message / on_status /
 * on_done itself.  Until liborpc implements orpc/gateway.h this is how the
 * glue runs at all; once it does, the end-to-end tests take over (the
 * stand-in's definitions then shadow liborpc's in this executable only).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <ctype.h>

#include <orpc/compat/json.h>
#include <orpc/compat/serve.h>
#include <orpc/gateway.h>
#include <orpc/orpc.h>

#include "grpc/testing/test.orpc.h"
#include "opsconductor/auth/v1/auth.orpc.h"
#include "opsconductor/jobs/v1/jobs.orpc.h"

/* ---- the stand-in runtime --------------------------------------------- */

struct orpc_http_exchange {
    const char *method, *target;
    const char *hdr[16]; /* name, value, ..., NULL */
    const char *body;
    void *state;
    int on_io; /* on_request "runs on the IO thread": may not block */
    /* the answer */
    int status;
    char content_type[64];
    char headers[512]; /* "Name: value\n"... */
    char out[4096];
    size_t out_len;
    int responded, started;
    orpc_metadata *resp_headers, *resp_trailers; /* the call's, if any */
    /* the call */
    int called;
    char path[128];
    const ProtobufCMessage *request;
    char identity[128];
    int64_t timeout_ms;
    char md_x_trace[32];
};

static const orpc_gateway *g_gw;
static void *g_ud;
static const orpc_service_desc *g_services[4];
static int g_srv; /* its address is the server */

int orpc_server_set_gateway(struct orpc_server *srv, const orpc_gateway *gw,
                            void *user_data)
{
    (void)srv;
    g_gw = gw;
    g_ud = user_data;
    return 0;
}

const struct orpc_service_desc *orpc_server_service(const struct orpc_server *s,
                                                    size_t i)
{
    (void)s;
    return i < 4 ? g_services[i] : NULL;
}

const char *orpc_http_method(const orpc_http_exchange *x)
{
    return x->method;
}
const char *orpc_http_target(const orpc_http_exchange *x)
{
    return x->target;
}
const char *orpc_http_header(const orpc_http_exchange *x, const char *name)
{
    for (size_t i = 0; x->hdr[i]; i += 2)
        if (strcasecmp(x->hdr[i], name) == 0)
            return x->hdr[i + 1];
    return NULL;
}
const orpc_metadata *orpc_http_headers(const orpc_http_exchange *x)
{
    static __thread orpc_metadata *md;
    orpc_metadata_free(md);
    orpc_metadata_new(&md, NULL);
    for (size_t i = 0; x->hdr[i]; i += 2) {
        char k[64];
        size_t n = strlen(x->hdr[i]);
        for (size_t j = 0; j <= n && j < sizeof(k); j++)
            k[j] = (char)tolower((unsigned char)x->hdr[i][j]);
        (void)orpc_metadata_add(md, k, x->hdr[i + 1], strlen(x->hdr[i + 1]));
    }
    return md;
}
const uint8_t *orpc_http_body(const orpc_http_exchange *x, size_t *len)
{
    if (len)
        *len = x->body ? strlen(x->body) : 0;
    return (const uint8_t *)(x->body ? x->body : "");
}
struct orpc_server *orpc_http_server(const orpc_http_exchange *x)
{
    (void)x;
    return (struct orpc_server *)&g_srv;
}
/* The built-in health service's status (-1: the server has none). */
static int g_health = -1;
int orpc_server_get_health(orpc_server *srv, const char *service,
                           orpc_health_status *out)
{
    assert_ptr_equal(srv, &g_srv);
    assert_string_equal(service, "");
    if (g_health < 0)
        return ORPC_ENOTSUP;
    *out = (orpc_health_status)g_health;
    return 0;
}
void orpc_http_set_state(orpc_http_exchange *x, void *state)
{
    x->state = state;
}
void *orpc_http_state(const orpc_http_exchange *x)
{
    return x->state;
}
int orpc_http_add_header(orpc_http_exchange *x, const char *name,
                         const char *value)
{
    if (strcasecmp(name, "Content-Type") == 0) {
        snprintf(x->content_type, sizeof(x->content_type), "%s", value);
        return 0;
    }
    size_t n = strlen(x->headers);
    snprintf(x->headers + n, sizeof(x->headers) - n, "%s: %s\n", name, value);
    return 0;
}
int orpc_http_may_block(const orpc_http_exchange *x)
{
    return !x->on_io;
}
int orpc_http_respond(orpc_http_exchange *x, int status,
                      const char *content_type, const void *body, size_t len)
{
    assert_false(x->responded);
    assert_false(x->called);
    x->responded = 1;
    x->status = status;
    snprintf(x->content_type, sizeof(x->content_type), "%s",
             content_type ? content_type : "");
    assert_true(len < sizeof(x->out));
    memcpy(x->out, body, len);
    x->out_len = len;
    x->out[len] = '\0';
    return 0;
}
int orpc_http_call(orpc_http_exchange *x, const char *path,
                   const ProtobufCMessage *request,
                   const orpc_http_call_opts *opts)
{
    int found = 0;
    for (size_t i = 0; i < 4 && g_services[i]; i++)
        if (orpc_service_find_method(g_services[i], path) != NULL)
            found = 1;
    if (!found)
        return ORPC_ENOTFOUND;
    x->called = 1;
    snprintf(x->path, sizeof(x->path), "%s", path);
    x->request = request;
    if (opts && opts->identity)
        snprintf(x->identity, sizeof(x->identity), "%s", opts->identity);
    x->timeout_ms = opts ? opts->timeout_ms : 0;
    const uint8_t *v;
    size_t vl;
    if (opts && opts->metadata &&
        orpc_metadata_get(opts->metadata, "x-trace", &v, &vl) == 0)
        snprintf(x->md_x_trace, sizeof(x->md_x_trace), "%.*s", (int)vl,
                 (const char *)v);
    return 0;
}
void orpc_http_set_status(orpc_http_exchange *x, int status)
{
    if (!x->started)
        x->status = status;
}
int orpc_http_body_append(orpc_http_exchange *x, const void *p, size_t len)
{
    assert_true(x->out_len + len < sizeof(x->out));
    memcpy(x->out + x->out_len, p, len);
    x->out_len += len;
    x->out[x->out_len] = '\0';
    return 0;
}
void orpc_http_body_reset(orpc_http_exchange *x)
{
    if (!x->started) {
        x->out_len = 0;
        x->out[0] = '\0';
    }
}
int orpc_http_started(const orpc_http_exchange *x)
{
    return x->started;
}

const orpc_metadata *orpc_http_response_headers(const orpc_http_exchange *x)
{
    return x->resp_headers;
}

const orpc_metadata *orpc_http_response_trailers(const orpc_http_exchange *x)
{
    return x->resp_trailers;
}

/* ---- helpers ---------------------------------------------------------- */

static orpc_legacy_serve *g_ls;

static int verify(const char *token, char **identity, void *ud)
{
    (void)ud;
    if (strcmp(token, "good") != 0)
        return ORPC_EINVAL;
    *identity = strdup("legacy-service:scheduler-service");
    return 0;
}

static int setup(void **state)
{
    (void)state;
    g_services[0] = &opsconductor__jobs__v1__jobs_service__orpc_desc;
    g_services[1] = &opsconductor__auth__v1__auth_service__orpc_desc;
    g_services[2] = &grpc__testing__test_service__orpc_desc;
    g_services[3] = NULL;
    orpc_legacy_serve_opts o = {.verify = verify};
    if (orpc_legacy_serve_new(&g_ls, &o) != 0 ||
        orpc_legacy_serve_install(g_ls, (orpc_server *)&g_srv) != 0 ||
        g_gw == NULL || g_gw->on_start((orpc_server *)&g_srv, g_ud) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    orpc_legacy_serve_free(g_ls);
    return 0;
}

static void request(orpc_http_exchange *x)
{
    assert_int_equal(g_gw->on_request(x, g_ud), 0);
    assert_true(x->responded || x->called);
}

static void done(orpc_http_exchange *x)
{
    g_gw->on_done(x, g_ud);
    assert_null(x->state);
}

static Google__Protobuf__Struct *struct_of(const char *json)
{
    ProtobufCMessage *m = NULL;
    assert_int_equal(orpc_json_decode(&m, &google__protobuf__struct__orpc_info,
                                      json, strlen(json), NULL, NULL, NULL),
                     0);
    return (Google__Protobuf__Struct *)m;
}

/* ---- tests ------------------------------------------------------------ */

static void test_legacy_unary(void **state)
{
    (void)state;
    orpc_http_exchange x = {.method = "GET",
                            .target = "/jobs/7",
                            .hdr = {"Authorization", "Bearer good", NULL}};
    request(&x);
    assert_true(x.called);
    assert_string_equal(x.path, "/opsconductor.jobs.v1.JobsService/GetJob");
    assert_string_equal(x.identity, "legacy-service:scheduler-service");
    assert_int_equal(
        ((const Opsconductor__Jobs__V1__GetJobRequest *)x.request)->job_id, 7);
    Opsconductor__Jobs__V1__GetJobResponse r =
        OPSCONDUCTOR__JOBS__V1__GET_JOB_RESPONSE__INIT;
    r.job = struct_of("{\"id\":7,\"name\":\"backup\",\"owner\":null}");
    assert_int_equal(g_gw->on_message(&x, &r.base, g_ud), 0);
    orpc_status ok = ORPC_STATUS_OK;
    g_gw->on_status(&x, &ok, g_ud);
    assert_int_equal(x.status, 200);
    assert_string_equal(x.content_type, "application/json");
    assert_string_equal(x.out, "{\"id\":7,\"name\":\"backup\",\"owner\":null}");
    protobuf_c_message_free_unpacked(&r.job->base, NULL);
    done(&x);

    /* a handler's error: status, {"detail"}, Grpc-Status */
    orpc_http_exchange y = {.method = "GET",
                            .target = "/jobs/1000",
                            .hdr = {"Authorization", "Bearer good", NULL}};
    request(&y);
    orpc_status nf = orpc_status_new(ORPC_NOT_FOUND, "Job 1000 not found");
    g_gw->on_status(&y, &nf, g_ud);
    orpc_status_clear(&nf);
    assert_int_equal(y.status, 404);
    assert_string_equal(y.out, "{\"detail\":\"Job 1000 not found\"}");
    assert_string_equal(y.content_type, "application/json");
    assert_non_null(strstr(y.headers, "Grpc-Status: 5\n"));
    done(&y);

    /* refused by the policy after the handler ... UNAUTHENTICATED */
    orpc_http_exchange z = {.method = "POST",
                            .target = "/jobs/1/run",
                            .hdr = {"Authorization", "Bearer good", NULL},
                            .body = "{\"scheduled\":true}"};
    request(&z);
    orpc_status un = orpc_status_new(ORPC_UNAUTHENTICATED, "who are you");
    g_gw->on_status(&z, &un, g_ud);
    orpc_status_clear(&un);
    assert_int_equal(z.status, 401);
    assert_non_null(strstr(z.headers, "WWW-Authenticate: Bearer\n"));
    done(&z);
}

static void test_legacy_refusals(void **state)
{
    (void)state;
    orpc_http_exchange a = {.method = "GET", .target = "/jobs/7"};
    request(&a);
    assert_int_equal(a.status, 401);
    assert_string_equal(a.out, "{\"detail\":\"Not authenticated\"}");
    assert_non_null(strstr(a.headers, "WWW-Authenticate: Bearer"));
    done(&a);
    orpc_http_exchange b = {.method = "GET",
                            .target = "/jobs/7",
                            .hdr = {"Authorization", "Bearer forged", NULL}};
    request(&b);
    assert_int_equal(b.status, 401);
    assert_string_equal(b.out, "{\"detail\":\"Invalid or expired token\"}");
    done(&b);
    /* Login needs no token */
    orpc_http_exchange c = {.method = "POST",
                            .target = "/login",
                            .body = "{\"username\":\"u\",\"password\":\"p\"}"};
    request(&c);
    assert_true(c.called);
    assert_string_equal(c.identity, "");
    done(&c);
    orpc_http_exchange d = {.method = "DELETE", .target = "/jobs/7"};
    request(&d);
    assert_int_equal(d.status, 405);
    assert_non_null(strstr(d.headers, "Allow: GET"));
    assert_string_equal(d.out, "{\"detail\":\"Method Not Allowed\"}");
    done(&d);
    orpc_http_exchange e = {.method = "GET", .target = "/nope"};
    request(&e);
    assert_int_equal(e.status, 404);
    assert_string_equal(e.out, "{\"detail\":\"Not Found\"}");
    done(&e);
    orpc_http_exchange f = {.method = "GET", .target = "/jobs/%2e%2e/users/1"};
    request(&f);
    assert_int_equal(f.status, 400);
    done(&f);
}

static void test_ndjson(void **state)
{
    (void)state;
    orpc_http_exchange x = {.method = "GET",
                            .target = "/jobs/7/events",
                            .hdr = {"Authorization", "Bearer good", NULL}};
    request(&x);
    assert_string_equal(x.path, "/opsconductor.jobs.v1.JobsService/WatchJob");
    Opsconductor__Jobs__V1__JobEvent ev =
        OPSCONDUCTOR__JOBS__V1__JOB_EVENT__INIT;
    ev.job_id = 7;
    ev.status = "running";
    assert_int_equal(g_gw->on_message(&x, &ev.base, g_ud), 0);
    x.started = 1; /* the runtime sent the head with the first message */
    x.status = 200;
    ev.status = "failed";
    assert_int_equal(g_gw->on_message(&x, &ev.base, g_ud), 0);
    orpc_status st = orpc_status_new(ORPC_INTERNAL, "lost the job");
    g_gw->on_status(&x, &st, g_ud);
    orpc_status_clear(&st);
    assert_int_equal(x.status, 200);
    assert_string_equal(
        x.out,
        "{\"job_id\":7,\"status\":\"running\"}\n"
        "{\"job_id\":7,\"status\":\"failed\"}\n"
        "{\"error\":{\"code\":500,\"status\":\"INTERNAL\",\"detail\":\"lost "
        "the job\"}}\n");
    done(&x);
}

static void test_connect(void **state)
{
    (void)state;
    orpc_http_exchange x = {.method = "POST",
                            .target = "/grpc.testing.TestService/UnaryCall",
                            .hdr = {"Content-Type", "application/json",
                                    "Connect-Timeout-Ms", "250", "X-Trace",
                                    "t-1", NULL},
                            .body = "{\"responseSize\":3}"};
    request(&x);
    assert_true(x.called);
    assert_int_equal(x.timeout_ms, 250);
    assert_string_equal(x.md_x_trace, "t-1");
    assert_string_equal(x.identity, "");
    Grpc__Testing__SimpleResponse r = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
    r.username = "u";
    assert_int_equal(g_gw->on_message(&x, &r.base, g_ud), 0);
    /* the handler's metadata: headers as they are, trailers prefixed,
     * -bin values in unpadded base64 */
    assert_int_equal(orpc_metadata_new(&x.resp_headers, NULL), 0);
    assert_int_equal(orpc_metadata_new(&x.resp_trailers, NULL), 0);
    assert_int_equal(orpc_metadata_add_str(x.resp_headers, "x-served", "a"), 0);
    assert_int_equal(
        orpc_metadata_add(x.resp_trailers, "x-sum-bin", "\x01\x02", 2), 0);
    orpc_status ok = ORPC_STATUS_OK;
    g_gw->on_status(&x, &ok, g_ud);
    assert_int_equal(x.status, 200);
    assert_string_equal(x.content_type, "application/json");
    assert_string_equal(x.out, "{\"username\":\"u\"}");
    assert_non_null(strstr(x.headers, "x-served: a\n"));
    assert_non_null(strstr(x.headers, "trailer-x-sum-bin: AQI\n"));
    orpc_metadata_free(x.resp_headers);
    orpc_metadata_free(x.resp_trailers);
    done(&x);
    /* an error: Connect's body and status */
    orpc_http_exchange y = {.method = "POST",
                            .target = "/grpc.testing.TestService/UnaryCall",
                            .hdr = {"Content-Type", "application/proto", NULL},
                            .body = ""};
    request(&y);
    orpc_status st = orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "slow down");
    g_gw->on_status(&y, &st, g_ud);
    orpc_status_clear(&st);
    assert_int_equal(y.status, 429);
    assert_string_equal(y.out,
                        "{\"code\":\"resource_exhausted\",\"message\":\"slow "
                        "down\"}");
    done(&y);
    orpc_http_exchange z = {.method = "POST",
                            .target = "/grpc.testing.TestService/Nope",
                            .hdr = {"Content-Type", "application/json", NULL},
                            .body = "{}"};
    request(&z);
    assert_int_equal(z.status, 404);
    assert_non_null(strstr(z.out, "\"code\":\"unimplemented\""));
    done(&z);
}

static void test_health(void **state)
{
    (void)state;
    /* no health service registered here: 200 */
    orpc_http_exchange x = {.method = "GET", .target = "/health"};
    request(&x);
    assert_int_equal(x.status, 200);
    assert_string_equal(x.out, "{\"status\":\"healthy\"}");
    assert_false(x.called);
    done(&x);
    /* the built-in health service is read without a call (a legacy port
     * has no identity a policy could allow) */
    g_health = ORPC_HEALTH_NOT_SERVING;
    orpc_http_exchange y = {.method = "GET", .target = "/health"};
    request(&y);
    assert_int_equal(y.status, 503);
    assert_string_equal(y.out, "{\"status\":\"unhealthy\"}");
    assert_false(y.called);
    done(&y);
    g_health = ORPC_HEALTH_SERVING;
    orpc_http_exchange z = {.method = "GET", .target = "/health"};
    request(&z);
    assert_int_equal(z.status, 200);
    assert_string_equal(z.out, "{\"status\":\"healthy\"}");
    assert_false(z.called);
    done(&z);
    g_health = -1;
}

/* inline_first: on the IO thread a token only the verifier can judge is
 * ORPC_EBLOCKING with nothing answered; cached, not needed, or judged by a
 * verify_nonblocking verifier, the request is answered there. */
static void test_inline_first(void **state)
{
    (void)state;
    assert_true(g_gw->inline_first);
    const orpc_gateway *gw0 = g_gw;
    void *ud0 = g_ud;
    for (int nb = 0; nb < 2; nb++) {
        orpc_legacy_serve *ls = NULL;
        orpc_legacy_serve_opts o = {.verify = verify, .verify_nonblocking = nb};
        assert_int_equal(orpc_legacy_serve_new(&ls, &o), 0);
        assert_int_equal(orpc_legacy_serve_install(ls, (orpc_server *)&g_srv),
                         0);
        assert_int_equal(g_gw->on_start((orpc_server *)&g_srv, g_ud), 0);
        orpc_http_exchange a = {.method = "GET",
                                .target = "/jobs/7",
                                .hdr = {"Authorization", "Bearer good", NULL},
                                .on_io = 1};
        if (!nb) {
            /* a cache miss: to a worker, the exchange untouched */
            assert_int_equal(g_gw->on_request(&a, g_ud), ORPC_EBLOCKING);
            assert_false(a.responded || a.called);
            assert_null(a.state);
            assert_string_equal(a.headers, "");
            a.on_io = 0; /* the worker's pass verifies (and caches) */
        }
        request(&a);
        assert_true(a.called);
        assert_string_equal(a.identity, "legacy-service:scheduler-service");
        done(&a);
        /* now cached (or never blocking): inline */
        orpc_http_exchange b = {.method = "GET",
                                .target = "/jobs/7",
                                .hdr = {"Authorization", "Bearer good", NULL},
                                .on_io = 1};
        request(&b);
        assert_true(b.called);
        done(&b);
        /* a token not cached: blocking verifier, to a worker; a
         * non-blocking one judges it here (401) */
        orpc_http_exchange c = {.method = "GET",
                                .target = "/jobs/7",
                                .hdr = {"Authorization", "Bearer forged", NULL},
                                .on_io = 1};
        if (!nb) {
            assert_int_equal(g_gw->on_request(&c, g_ud), ORPC_EBLOCKING);
            assert_false(c.responded || c.called);
        } else {
            request(&c);
            assert_int_equal(c.status, 401);
            done(&c);
        }
        /* no token, a route needing none, /health, Connect: inline */
        orpc_http_exchange d = {
            .method = "GET", .target = "/jobs/7", .on_io = 1};
        request(&d);
        assert_int_equal(d.status, 401);
        done(&d);
        orpc_http_exchange e = {.method = "POST",
                                .target = "/login",
                                .body =
                                    "{\"username\":\"u\",\"password\":\"p\"}",
                                .on_io = 1};
        request(&e);
        assert_true(e.called);
        done(&e);
        orpc_http_exchange f = {
            .method = "GET", .target = "/health", .on_io = 1};
        request(&f);
        assert_int_equal(f.status, 200);
        done(&f);
        orpc_http_exchange g = {
            .method = "POST",
            .target = "/grpc.testing.TestService/UnaryCall",
            .hdr = {"Content-Type", "application/json", NULL},
            .body = "{}",
            .on_io = 1};
        request(&g);
        assert_true(g.called);
        done(&g);
        orpc_legacy_serve_free(ls);
    }
    g_gw = gw0;
    g_ud = ud0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_legacy_unary),
        cmocka_unit_test(test_legacy_refusals),
        cmocka_unit_test(test_ndjson),
        cmocka_unit_test(test_connect),
        cmocka_unit_test(test_health),
        cmocka_unit_test(test_inline_first),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
