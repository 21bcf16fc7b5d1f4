/*
 * legacy_serve_test.c — orpc's gateway core (compat/src/serve_*.c) without
 * HTTP: every legacy route of the five OpsConductor services matched and
 * decoded (path, query, body, headers), the general template forms
 * (additional bindings, custom verbs, '**', nested and repeated query
 * parameters), refused paths (dot segments, encoded slashes), 404 / 405 /
 * 400 / 415, responses in the legacy profile read back by the client side
 * (http_rule.c), the gRPC status ↔ HTTP table read back by the client side
 * (legacy_http.c), bearer tokens (none, bad, valid, cached, expired,
 * verifier down) and identities, the NDJSON error line, and the Connect
 * protocol's unary form (JSON, proto, GET, headers, errors).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cmocka.h>
#include <ctype.h>

#include <orpc/compat/json.h>
#include <orpc/orpc.h>

#include "common/base64.h"
#include "grpc/testing/test.orpc.h"
#include "http_rule.h"
#include "json_types.orpc.h"
#include "legacy_http.h"
#include "opsconductor/auth/v1/auth.orpc.h"
#include "opsconductor/credentials/v1/credentials.orpc.h"
#include "opsconductor/jobs/v1/jobs.orpc.h"
#include "opsconductor/notification/v1/notification.orpc.h"
#include "opsconductor/user/v1/user.orpc.h"
#include "serve_internal.h"

/* ---- helpers ---------------------------------------------------------- */

typedef struct hdrs {
    const char *kv[16]; /* name, value, ... NULL */
} hdrs;

static const char *hdr(void *ud, const char *name)
{
    const hdrs *h = ud;
    for (size_t i = 0; h && h->kv[i]; i += 2)
        if (strcasecmp(h->kv[i], name) == 0)
            return h->kv[i + 1];
    return NULL;
}

static orpc__lroutes g_rt;

static int setup(void **state)
{
    (void)state;
    const orpc_service_desc *svcs[] = {
        &opsconductor__auth__v1__auth_service__orpc_desc,
        &opsconductor__jobs__v1__jobs_service__orpc_desc,
        &opsconductor__notification__v1__notification_service__orpc_desc,
        &opsconductor__credentials__v1__credentials_service__orpc_desc,
        &opsconductor__user__v1__user_service__orpc_desc};
    char err[256];
    memset(&g_rt, 0, sizeof(g_rt));
    for (size_t i = 0; i < 5; i++)
        if (orpc__lroutes_add_service(&g_rt, svcs[i], err, sizeof(err)) != 0)
            return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    orpc__lroutes_free(&g_rt);
    return 0;
}

/* The request |verb| |target| decodes to, as legacy-profile JSON (with
 * |*m| the method), or fails the test. */
static char *request(const orpc__lroutes *rt, const char *verb,
                     const char *target, const hdrs *h, const char *body,
                     const orpc_method_desc **mout)
{
    const orpc__lroute *r = NULL;
    orpc__serve_err e;
    if (orpc__lroute_find(rt, verb, target, &r, &e) != 0)
        fail_msg("%s %s: %d %s", verb, target, e.status, e.detail);
    ProtobufCMessage *msg = NULL;
    if (orpc__lroute_decode(r, target, hdr, (void *)h, (const uint8_t *)body,
                            body ? strlen(body) : 0, &msg, &e) != 0)
        fail_msg("%s %s: %d %s", verb, target, e.status, e.detail);
    orpc_json_opts jo = {.legacy = 1};
    char *json = NULL;
    assert_int_equal(orpc_json_encode(&json, NULL, r->m->input, msg, &jo, NULL),
                     0);
    protobuf_c_message_free_unpacked(msg, NULL);
    if (mout)
        *mout = r->m;
    return json;
}

static void expect_request(const char *verb, const char *target, const hdrs *h,
                           const char *body, const orpc_method_desc *m,
                           const char *want)
{
    const orpc_method_desc *got = NULL;
    char *json = request(&g_rt, verb, target, h, body, &got);
    assert_ptr_equal(got, m);
    if (strcmp(json, want) != 0)
        fail_msg("%s %s: got %s, want %s", verb, target, json, want);
    free(json);
}

/* The error |verb| |target| (and |body|) is answered with. */
static orpc__serve_err refused(const orpc__lroutes *rt, const char *verb,
                               const char *target, const hdrs *h,
                               const char *body)
{
    const orpc__lroute *r = NULL;
    orpc__serve_err e;
    memset(&e, 0, sizeof(e));
    if (orpc__lroute_find(rt, verb, target, &r, &e) != 0)
        return e;
    ProtobufCMessage *msg = NULL;
    if (orpc__lroute_decode(r, target, hdr, (void *)h, (const uint8_t *)body,
                            body ? strlen(body) : 0, &msg, &e) != 0)
        return e;
    protobuf_c_message_free_unpacked(msg, NULL);
    fail_msg("%s %s was accepted", verb, target);
    return e;
}

static void expect_refused(const char *verb, const char *target,
                           const char *body, int status, const char *detail)
{
    hdrs h = {{"Content-Type", "application/json", NULL}};
    orpc__serve_err e = refused(&g_rt, verb, target, &h, body);
    if (e.status != status)
        fail_msg("%s %s: %d (%s), want %d", verb, target, e.status, e.detail,
                 status);
    if (detail != NULL && strstr(e.detail, detail) == NULL)
        fail_msg("%s %s: detail '%s' lacks '%s'", verb, target, e.detail,
                 detail);
}

/* ---- legacy routes ---------------------------------------------------- */

static void test_every_route(void **state)
{
    (void)state;
    hdrs auth = {{"Authorization", "Bearer tok-123", NULL}};
    expect_request("POST", "/login", NULL,
                   "{\"username\":\"scheduler-service\",\"password\":\"pw\"}",
                   opsconductor__auth__v1__auth_service__method__login,
                   "{\"username\":\"scheduler-service\",\"password\":\"pw\"}");
    /* the token travels in Authorization (orpc.legacy_header) */
    expect_request("GET", "/verify", &auth, NULL,
                   opsconductor__auth__v1__auth_service__method__verify,
                   "{\"token\":\"tok-123\"}");
    expect_request("POST", "/jobs/42/run", NULL, "{\"scheduled\":true}",
                   opsconductor__jobs__v1__jobs_service__method__run_job,
                   "{\"job_id\":42,\"payload\":{\"scheduled\":true}}");
    /* no body: the payload stays unset */
    expect_request("POST", "/jobs/42/run", NULL, NULL,
                   opsconductor__jobs__v1__jobs_service__method__run_job,
                   "{\"job_id\":42}");
    expect_request("GET", "/jobs/7", NULL, NULL,
                   opsconductor__jobs__v1__jobs_service__method__get_job,
                   "{\"job_id\":7}");
    expect_request("GET", "/jobs/7/status", NULL, NULL,
                   opsconductor__jobs__v1__jobs_service__method__get_job_status,
                   "{\"job_id\":7}");
    /* enums by legacy name, the optional template_id as a number */
    expect_request(
        "POST", "/notifications", NULL,
        "{\"type\":\"email\",\"destination\":\"ops@example.com\","
        "\"payload\":{\"subject\":\"s\",\"body\":\"b\"},\"template_id\":3}",
        opsconductor__notification__v1__notification_service__method__send_notification,
        "{\"type\":\"email\",\"destination\":\"ops@example.com\","
        "\"payload\":{\"subject\":\"s\",\"body\":\"b\"},\"template_id\":3}");
    /* the proto name of the enum value, and a null template_id (Python's
     * None) */
    expect_request(
        "POST", "/notifications", NULL,
        "{\"type\":\"NOTIFICATION_TYPE_SLACK\",\"destination\":\"#ops\","
        "\"payload\":{\"message\":\"m\"},\"template_id\":null}",
        opsconductor__notification__v1__notification_service__method__send_notification,
        "{\"type\":\"slack\",\"destination\":\"#ops\","
        "\"payload\":{\"message\":\"m\"}}");
    expect_request(
        "GET", "/credentials/5", NULL, NULL,
        opsconductor__credentials__v1__credentials_service__method__get_credential,
        "{\"credential_id\":5}");
    expect_request(
        "GET", "/targets/3/credentials", NULL, NULL,
        opsconductor__credentials__v1__credentials_service__method__list_target_credentials,
        "{\"target_id\":3}");
    expect_request("GET", "/users/9", NULL, NULL,
                   opsconductor__user__v1__user_service__method__get_user,
                   "{\"user_id\":9}");
    expect_request(
        "GET", "/users/9/preferences", NULL, NULL,
        opsconductor__user__v1__user_service__method__get_user_preferences,
        "{\"user_id\":9}");
    /* 64-bit ids beyond 2^53 survive the path */
    expect_request("GET", "/jobs/9223372036854775807", NULL, NULL,
                   opsconductor__jobs__v1__jobs_service__method__get_job,
                   "{\"job_id\":\"9223372036854775807\"}");
    /* a query parameter naming a path field does not override it; unknown
     * ones are ignored (as FastAPI does) */
    expect_request("GET", "/jobs/7?job_id=8&debug=1", NULL, NULL,
                   opsconductor__jobs__v1__jobs_service__method__get_job,
                   "{\"job_id\":7}");
    /* WatchJob (server streaming) is served as NDJSON */
    expect_request("GET", "/jobs/7/events", NULL, NULL,
                   opsconductor__jobs__v1__jobs_service__method__watch_job,
                   "{\"job_id\":7}");
    expect_refused("GET", "/jobs/7/watch", NULL, 404, "Not Found");
    expect_refused("POST", "/jobs/7/events", NULL, 405, NULL);
}

static void test_route_errors(void **state)
{
    (void)state;
    /* FastAPI's texts */
    expect_refused("GET", "/nope", NULL, 404, "Not Found");
    expect_refused("GET", "/", NULL, 404, "Not Found");
    expect_refused("GET", "/jobs", NULL, 404, "Not Found");
    expect_refused("GET", "/jobs/7/", NULL, 404, "Not Found");
    expect_refused("GET", "/jobs//status", NULL, 404, NULL);
    /* a known path with another verb: 405 and Allow */
    hdrs none = {{NULL}};
    orpc__serve_err e = refused(&g_rt, "GET", "/jobs/7/run", &none, NULL);
    assert_int_equal(e.status, 405);
    assert_string_equal(e.detail, "Method Not Allowed");
    assert_string_equal(e.allow, "POST");
    e = refused(&g_rt, "DELETE", "/jobs/7", &none, NULL);
    assert_int_equal(e.status, 405);
    assert_string_equal(e.allow, "GET");
    e = refused(&g_rt, "GET", "/login", &none, NULL);
    assert_int_equal(e.status, 405);
    assert_string_equal(e.allow, "POST");
    /* bad values and bodies: 400 with the JSON mapping's reason */
    expect_refused("GET", "/jobs/abc", NULL, 400, "job_id");
    expect_refused("GET", "/jobs/1.5", NULL, 400, "job_id");
    expect_refused("POST", "/notifications", "{\"type\":", 400,
                   "JSON decode error");
    expect_refused("POST", "/notifications", "[1,2]", 400, "JSON object");
    expect_refused("POST", "/notifications", "{\"typo\":1}", 400, "typo");
    expect_refused("POST", "/notifications", "{\"type\":\"fax\"}", 400, "fax");
    expect_refused("POST", "/notifications", "{\"template_id\":\"x\"}", 400,
                   "template_id");
    expect_refused("POST", "/jobs/1/run", "[1]", 400, "payload");
    expect_refused("POST", "/login", "{\"username\":\"\\ud800\"}", 400, NULL);
    /* 10k-deep JSON is refused, not recursed into */
    char *deep = malloc(20002);
    for (int i = 0; i < 10000; i++) {
        deep[i] = '[';
        deep[10000 + i] = ']';
    }
    deep[20000] = '\0';
    expect_refused("POST", "/jobs/1/run", deep, 400, NULL);
    for (int i = 0; i < 10000; i++) {
        deep[2 * i] = '{';
        deep[2 * i + 1] = ' ';
    }
    expect_refused("POST", "/jobs/1/run", deep, 400, NULL);
    free(deep);
    /* not JSON */
    hdrs text = {{"Content-Type", "text/plain", NULL}};
    e = refused(&g_rt, "POST", "/login", &text, "username=a");
    assert_int_equal(e.status, 415);
    hdrs pj = {
        {"Content-Type", "application/problem+json; charset=utf-8", NULL}};
    char *json =
        request(&g_rt, "POST", "/login", &pj, "{\"username\":\"a\"}", NULL);
    assert_string_equal(json, "{\"username\":\"a\"}");
    free(json);
}

static void test_dot_segments(void **state)
{
    (void)state;
    static const char *const bad[] = {"/jobs/./7",        "/jobs/../jobs/7",
                                      "/jobs/7/..",       "/jobs/%2e/7",
                                      "/jobs/%2E%2e/7",   "/jobs/.%2E/7",
                                      "/jobs/7%2Fstatus", "/jobs%2f7",
                                      "/jobs/7%2fstatus", "/jobs/%zz",
                                      "/jobs/7%",         "/jobs/7%0",
                                      "/jobs/%00",        "/jobs/%0a7",
                                      "/./jobs/7",        "/..",
                                      "/jobs/7#frag",     "jobs/7"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        hdrs none = {{NULL}};
        orpc__serve_err e = refused(&g_rt, "GET", bad[i], &none, NULL);
        if (e.status != 400)
            fail_msg("%s: %d %s", bad[i], e.status, e.detail);
    }
    /* percent-encoded ordinary characters are fine */
    expect_request("GET", "/jobs/%34%32", NULL, NULL,
                   opsconductor__jobs__v1__jobs_service__method__get_job,
                   "{\"job_id\":42}");
    expect_request("GET", "/%75sers/1", NULL, NULL,
                   opsconductor__user__v1__user_service__method__get_user,
                   "{\"user_id\":1}");
    /* over the bounds */
    char *longp = malloc(ORPC__SERVE_MAX_PATH + 100);
    memset(longp, 'a', ORPC__SERVE_MAX_PATH + 50);
    longp[0] = '/';
    longp[ORPC__SERVE_MAX_PATH + 50] = '\0';
    expect_refused("GET", longp, NULL, 414, NULL);
    for (int i = 0; i < 200; i++) {
        longp[2 * i] = '/';
        longp[2 * i + 1] = 'a';
    }
    longp[400] = '\0';
    expect_refused("GET", longp, NULL, 400, "segments");
    free(longp);
}

/* The general forms, on a made-up method over AllTypes. */
static const orpc_http_rule extra_bindings[] = {
    {.verb = "GET", .path = "/v1/things/{f_nested.b=**}:list"},
    {.verb = "PATCH", .path = "/v1/things/{f_string}", .body = "f_nested"},
    {.verb = "POST", .path = "/v1/things/{f_int32}:run", .body = "*"},
    {.verb = "REPORT", .custom = 1, .path = "/v1/report/{f_enum}"},
};
static const orpc_http_rule all_rule = {.verb = "GET",
                                        .path = "/v1/things/{f_string}",
                                        .n_additional_bindings = 4,
                                        .additional_bindings = extra_bindings};

static void test_general_forms(void **state)
{
    (void)state;
    orpc_method_desc m = {.name = "Thing",
                          .path = "/orpc.test.json.Things/Thing",
                          .kind = ORPC_CALL_UNARY,
                          .input = &orpc__test__json__all_types__orpc_info,
                          .output = &orpc__test__json__all_types__orpc_info,
                          .http = &all_rule};
    orpc_service_desc svc = {.magic = ORPC_SERVICE_DESC_MAGIC,
                             .method_size = sizeof(orpc_method_desc),
                             .name = "Things",
                             .full_name = "orpc.test.json.Things",
                             .package = "orpc.test.json",
                             .n_methods = 1,
                             .methods = &m};
    orpc__lroutes rt = {0};
    char err[256];
    assert_int_equal(orpc__lroutes_add_service(&rt, &svc, err, sizeof(err)), 0);
    assert_int_equal(rt.n, 5);
    /* query parameters: typed, repeated, nested, enums by legacy name or
     * number, JSON or proto names, '+' and %XX decoded */
    char *j = request(&rt, "GET",
                      "/v1/things/a%20b?f_int32=-5&fInt64=9007199254740993"
                      "&f_bool=true&f_double=1.5&r_int32=1&r_int32=2"
                      "&r_string=x+y&r_string=%C3%A9&f_enum=red&r_enum=2"
                      "&r_enum=COLOR_BLUE&f_nested.a=3&f_nested.child.b=z"
                      "&f_bytes=-_8%3D&unknown=1",
                      NULL, NULL, NULL);
    assert_string_equal(
        j, "{\"f_int32\":-5,\"f_int64\":\"9007199254740993\",\"f_double\":1.5,"
           "\"f_bool\":true,\"f_string\":\"a b\",\"f_bytes\":\"+/8=\","
           "\"f_enum\":\"red\",\"f_nested\":{\"a\":3,\"child\":{\"b\":\"z\"}},"
           "\"r_int32\":[1,2],\"r_string\":[\"x y\",\"é\"],"
           "\"r_enum\":[\"green\",\"COLOR_BLUE\"]}");
    free(j);
    /* '**' with a custom verb: the segments joined, the verb stripped */
    j = request(&rt, "GET", "/v1/things/a/b/c:list", NULL, NULL, NULL);
    assert_string_equal(j, "{\"f_nested\":{\"b\":\"a/b/c\"}}");
    free(j);
    /* a route with the custom verb wins over a plain one that also
     * matches */
    j = request(&rt, "GET", "/v1/things/x:list", NULL, NULL, NULL);
    assert_string_equal(j, "{\"f_nested\":{\"b\":\"x\"}}");
    free(j);
    /* body "f_nested" (a field): the body is that field's value */
    hdrs h = {{NULL}};
    j = request(&rt, "PATCH", "/v1/things/k?f_int32=4", &h,
                "{\"a\":1,\"b\":\"x\"}", NULL);
    assert_string_equal(j, "{\"f_int32\":4,\"f_string\":\"k\",\"f_nested\":{"
                           "\"a\":1,\"b\":\"x\"}}");
    free(j);
    /* body "*": the path variable wins over the body, query ignored */
    j = request(&rt, "POST", "/v1/things/7:run?f_string=q", &h,
                "{\"f_int32\":1,\"f_string\":\"s\"}", NULL);
    assert_string_equal(j, "{\"f_int32\":7,\"f_string\":\"s\"}");
    free(j);
    /* a custom verb pattern; an enum path value by number */
    j = request(&rt, "REPORT", "/v1/report/1", &h, NULL, NULL);
    assert_string_equal(j, "{\"f_enum\":\"red\"}");
    free(j);
    /* the plain route beside the ":list" one */
    j = request(&rt, "GET", "/v1/things/x:y", &h, NULL, NULL);
    assert_string_equal(j, "{\"f_string\":\"x:y\"}");
    free(j);
    /* errors */
    orpc__serve_err e =
        refused(&rt, "GET", "/v1/things/a?f_bool=yes", &h, NULL);
    assert_int_equal(e.status, 400);
    assert_non_null(strstr(e.detail, "f_bool"));
    e = refused(&rt, "GET", "/v1/things/a?f_int32=x", &h, NULL);
    assert_int_equal(e.status, 400);
    e = refused(&rt, "GET", "/v1/things/a?f_nested=1", &h, NULL);
    assert_int_equal(e.status, 400);
    e = refused(&rt, "GET", "/v1/things/a?r_string=%ff", &h, NULL);
    assert_int_equal(e.status, 400);
    e = refused(&rt, "GET", "/v1/things/a?r_string=%f", &h, NULL);
    assert_int_equal(e.status, 400);
    e = refused(&rt, "REPORT", "/v1/report/purple", &h, NULL);
    assert_int_equal(e.status, 400);
    /* bounds: parameter count and query length */
    char *q = malloc(ORPC__SERVE_MAX_QUERY + 64);
    strcpy(q, "/v1/things/a?");
    for (int i = 0; i < ORPC__SERVE_MAX_PARAMS + 1; i++)
        strcat(q, "r_int32=1&");
    e = refused(&rt, "GET", q, &h, NULL);
    assert_int_equal(e.status, 400);
    assert_non_null(strstr(e.detail, "query parameters"));
    strcpy(q, "/v1/things/a?f_string=");
    size_t n = strlen(q);
    memset(q + n, 'x', ORPC__SERVE_MAX_QUERY);
    q[n + ORPC__SERVE_MAX_QUERY] = '\0';
    e = refused(&rt, "GET", q, &h, NULL);
    assert_int_equal(e.status, 414);
    free(q);
    orpc__lroutes_free(&rt);
    /* two methods claiming one route are refused when the table is built */
    orpc_method_desc two[2] = {m, m};
    two[1].name = "Other";
    two[1].path = "/orpc.test.json.Things/Other";
    orpc_http_rule same = {.verb = "GET", .path = "/v1/things/{f_int32}"};
    two[1].http = &same;
    svc.methods = two;
    svc.n_methods = 2;
    memset(&rt, 0, sizeof(rt));
    assert_int_equal(orpc__lroutes_add_service(&rt, &svc, err, sizeof(err)),
                     ORPC_ECONFIG);
    assert_non_null(strstr(err, "both claim"));
    orpc__lroutes_free(&rt);
}

/* ---- responses -------------------------------------------------------- */

static Google__Protobuf__Struct *struct_of(const char *json)
{
    ProtobufCMessage *m = NULL;
    assert_int_equal(orpc_json_decode(&m, &google__protobuf__struct__orpc_info,
                                      json, strlen(json), NULL, NULL, NULL),
                     0);
    return (Google__Protobuf__Struct *)m;
}

/* Encodes |msg| as the gateway answers it, compares with |want|, and reads
 * it back the way the compat client does (http_rule.c). */
static void expect_response(const orpc_method_desc *m,
                            const ProtobufCMessage *msg, const char *want)
{
    char *body = NULL;
    size_t len = 0;
    assert_int_equal(orpc__serve_encode_legacy(m, NULL, msg, &body, &len), 0);
    if (strcmp(body, want) != 0)
        fail_msg("%s: got %s, want %s", m->path, body, want);
    orpc_json_opts client = {.legacy = 1, .ignore_unknown = 1};
    ProtobufCMessage *back = NULL;
    orpc_status st =
        orpc__http_decode_response(m, NULL, body, len, &client, &back);
    assert_int_equal(st.code, ORPC_OK);
    size_t a = protobuf_c_message_get_packed_size(msg);
    size_t b = protobuf_c_message_get_packed_size(back);
    uint8_t *pa = malloc(a + 1), *pb = malloc(b + 1);
    protobuf_c_message_pack(msg, pa);
    protobuf_c_message_pack(back, pb);
    assert_int_equal(a, b);
    assert_memory_equal(pa, pb, a);
    free(pa);
    free(pb);
    protobuf_c_message_free_unpacked(back, NULL);
    free(body);
}

static void test_responses(void **state)
{
    (void)state;
    /* Login: every field (FastAPI's model writes them all), expires_in a
     * JSON number */
    Opsconductor__Auth__V1__LoginResponse lr =
        OPSCONDUCTOR__AUTH__V1__LOGIN_RESPONSE__INIT;
    lr.access_token = "tok";
    lr._expires_in_case =
        OPSCONDUCTOR__AUTH__V1__LOGIN_RESPONSE___EXPIRES_IN_EXPIRES_IN;
    lr.expires_in = 3600;
    lr.token_type = "bearer";
    expect_response(opsconductor__auth__v1__auth_service__method__login,
                    &lr.base,
                    "{\"access_token\":\"tok\",\"expires_in\":3600,"
                    "\"token_type\":\"bearer\"}");
    /* expires_in absent stays absent (the client then assumes 3600) */
    lr._expires_in_case =
        OPSCONDUCTOR__AUTH__V1__LOGIN_RESPONSE___EXPIRES_IN__NOT_SET;
    expect_response(opsconductor__auth__v1__auth_service__method__login,
                    &lr.base,
                    "{\"access_token\":\"tok\",\"token_type\":\"bearer\"}");
    /* Verify: {"user": {...}} */
    Opsconductor__Auth__V1__VerifyResponse vr =
        OPSCONDUCTOR__AUTH__V1__VERIFY_RESPONSE__INIT;
    vr.user =
        struct_of("{\"username\":\"scheduler-service\",\"service\":true}");
    expect_response(opsconductor__auth__v1__auth_service__method__verify,
                    &vr.base,
                    "{\"user\":{\"username\":\"scheduler-service\","
                    "\"service\":true}}");
    protobuf_c_message_free_unpacked(&vr.user->base, NULL);
    /* response_body: the field's value is the whole body; integers in a
     * Struct as JSON integers, nulls kept (what the FastAPI services
     * return, tests/legacy/legacy_server.py) */
    Opsconductor__Jobs__V1__RunJobResponse rr =
        OPSCONDUCTOR__JOBS__V1__RUN_JOB_RESPONSE__INIT;
    rr.result = struct_of("{\"execution_id\":1,\"job_id\":42,\"status\":"
                          "\"queued\",\"payload\":null,\"triggered_by\":"
                          "\"scheduler-service\",\"queued_at\":"
                          "\"2024-01-01T00:00:00Z\"}");
    expect_response(opsconductor__jobs__v1__jobs_service__method__run_job,
                    &rr.base,
                    "{\"execution_id\":1,\"job_id\":42,\"status\":\"queued\","
                    "\"payload\":null,\"triggered_by\":\"scheduler-service\","
                    "\"queued_at\":\"2024-01-01T00:00:00Z\"}");
    protobuf_c_message_free_unpacked(&rr.result->base, NULL);
    Opsconductor__Credentials__V1__ListTargetCredentialsResponse lc =
        OPSCONDUCTOR__CREDENTIALS__V1__LIST_TARGET_CREDENTIALS_RESPONSE__INIT;
    char *body = NULL;
    size_t len = 0;
    assert_int_equal(
        orpc__serve_encode_legacy(
            opsconductor__credentials__v1__credentials_service__method__list_target_credentials,
            NULL, &lc.base, &body, &len),
        0);
    /* an empty list is written (emit defaults): {"credentials": []} */
    assert_string_equal(body, "{\"credentials\":[]}");
    free(body);
    /* a stream's event, one line each (the glue appends the newline):
     * the Timestamp as RFC 3339, an unset Struct left out */
    Opsconductor__Jobs__V1__JobEvent ev =
        OPSCONDUCTOR__JOBS__V1__JOB_EVENT__INIT;
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    ts.seconds = 1704067200;
    ev.job_id = 7;
    ev.status = "running";
    ev.changed_at = &ts;
    assert_int_equal(
        orpc__serve_encode_legacy(
            opsconductor__jobs__v1__jobs_service__method__watch_job, NULL,
            &ev.base, &body, &len),
        0);
    assert_string_equal(body, "{\"job_id\":7,\"status\":\"running\","
                              "\"changed_at\":\"2024-01-01T00:00:00Z\"}");
    assert_null(memchr(body, '\n', len));
    free(body);
    /* an unset response_body field: null, read back as unset */
    Opsconductor__User__V1__GetUserResponse ur =
        OPSCONDUCTOR__USER__V1__GET_USER_RESPONSE__INIT;
    expect_response(opsconductor__user__v1__user_service__method__get_user,
                    &ur.base, "null");
    /* enums by legacy name, int64 as numbers (AllTypes through a rule with
     * no response_body) */
    orpc_method_desc m = {.name = "T",
                          .path = "/orpc.test.json.Things/T",
                          .input = &orpc__test__json__all_types__orpc_info,
                          .output = &orpc__test__json__all_types__orpc_info,
                          .http = &all_rule};
    Orpc__Test__Json__AllTypes at = ORPC__TEST__JSON__ALL_TYPES__INIT;
    at.f_int64 = 42;
    at.f_uint64 = UINT64_C(18446744073709551615);
    at.f_enum = ORPC__TEST__JSON__COLOR__COLOR_GREEN;
    assert_int_equal(orpc__serve_encode_legacy(&m, NULL, &at.base, &body, &len),
                     0);
    assert_non_null(strstr(body, "\"f_int64\":42,"));
    assert_non_null(strstr(body, "\"f_uint64\":\"18446744073709551615\""));
    assert_non_null(strstr(body, "\"f_enum\":\"green\""));
    free(body);
}

/* Every gRPC code: the HTTP status and {"detail"} the gateway answers, and
 * the code the compat client reads back from them: from the status alone
 * (what a FastAPI service would have said: codes sharing a status collapse)
 * and with the Grpc-Status header the gateway adds (exact). */
static void test_status_round_trip(void **state)
{
    (void)state;
    static const struct {
        orpc_code code;
        int http;
        orpc_code back;
    } table[] = {
        {ORPC_CANCELLED, 499, ORPC_CANCELLED},
        {ORPC_UNKNOWN, 500, ORPC_INTERNAL},
        {ORPC_INVALID_ARGUMENT, 400, ORPC_INVALID_ARGUMENT},
        {ORPC_DEADLINE_EXCEEDED, 504, ORPC_DEADLINE_EXCEEDED},
        {ORPC_NOT_FOUND, 404, ORPC_NOT_FOUND},
        {ORPC_ALREADY_EXISTS, 409, ORPC_ABORTED},
        {ORPC_PERMISSION_DENIED, 403, ORPC_PERMISSION_DENIED},
        {ORPC_RESOURCE_EXHAUSTED, 429, ORPC_RESOURCE_EXHAUSTED},
        {ORPC_FAILED_PRECONDITION, 400, ORPC_INVALID_ARGUMENT},
        {ORPC_ABORTED, 409, ORPC_ABORTED},
        {ORPC_OUT_OF_RANGE, 400, ORPC_INVALID_ARGUMENT},
        {ORPC_UNIMPLEMENTED, 501, ORPC_UNIMPLEMENTED},
        {ORPC_INTERNAL, 500, ORPC_INTERNAL},
        {ORPC_UNAVAILABLE, 503, ORPC_UNAVAILABLE},
        {ORPC_DATA_LOSS, 500, ORPC_INTERNAL},
        {ORPC_UNAUTHENTICATED, 401, ORPC_UNAUTHENTICATED},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        int http = orpc__serve_http_status(table[i].code);
        assert_int_equal(http, table[i].http);
        size_t len = 0;
        char *body = orpc__serve_detail_json("job 7 \"x\" not found", &len);
        assert_string_equal(body, "{\"detail\":\"job 7 \\\"x\\\" not found\"}");
        orpc__http_reply reply;
        memset(&reply, 0, sizeof(reply));
        reply.status = http;
        reply.body = body;
        reply.len = len;
        orpc_status st = orpc__legacy_status(&reply);
        if (st.code != table[i].back)
            fail_msg("%s -> %d -> %s", orpc_code_name(table[i].code), http,
                     orpc_code_name(st.code));
        assert_string_equal(st.message, "job 7 \"x\" not found");
        orpc_status_clear(&st);
        /* with the gateway's Grpc-Status header: exactly the code */
        reply.grpc_status = (int)table[i].code;
        st = orpc__legacy_status(&reply);
        assert_int_equal(st.code, table[i].code);
        orpc_status_clear(&st);
        free(body);
    }
    /* a detail that is not UTF-8 still makes JSON */
    size_t len = 0;
    char *body = orpc__serve_detail_json("bad \xff byte", &len);
    assert_string_equal(body, "{\"detail\":\"bad ? byte\"}");
    free(body);
    /* the NDJSON line ending a stream that failed after messages */
    orpc_status st = orpc_status_new(ORPC_NOT_FOUND, "job 7 is gone");
    body = orpc__serve_stream_error(&st, &len);
    assert_string_equal(body, "{\"error\":{\"code\":404,\"status\":"
                              "\"NOT_FOUND\",\"detail\":\"job 7 is gone\"}}\n");
    assert_int_equal(len, strlen(body));
    free(body);
    orpc_status_clear(&st);
}

/* ---- tokens ----------------------------------------------------------- */

static int verify_calls;

static int test_verify(const char *token, char **identity, void *ud)
{
    (void)ud;
    verify_calls++;
    if (strcmp(token, "down") == 0)
        return ORPC_EAGAIN;
    if (strncmp(token, "good", 4) != 0 && strncmp(token, "eyJ", 3) != 0)
        return ORPC_EINVAL;
    *identity = strdup("legacy-user:alice");
    return 0;
}

static char *jwt_with_exp(int64_t exp)
{
    char payload[64];
    snprintf(payload, sizeof(payload), "{\"sub\":\"a\",\"exp\":%lld}",
             (long long)exp);
    orpc__buf b = {0};
    orpc__base64_append(&b, payload, strlen(payload), ORPC__BASE64_URL);
    size_t n = b.len + 64;
    char *t = malloc(n);
    snprintf(t, n, "eyJhbGciOiJub25lIn0.%s.sig", (char *)b.data);
    orpc__buf_free(&b);
    return t;
}

static void test_auth(void **state)
{
    (void)state;
    orpc__token_cache cache;
    orpc__token_cache_init(&cache);
    orpc__auth a = {.verify = test_verify, .cache_ms = 0, .cache = &cache};
    orpc__serve_err e;
    char *id = NULL;
    /* FastAPI's answers */
    assert_int_equal(orpc__serve_authenticate(&a, NULL, &id, &e), -1);
    assert_int_equal(e.status, 401);
    assert_string_equal(e.detail, "Not authenticated");
    assert_true(e.www_auth);
    assert_int_equal(orpc__serve_authenticate(&a, "  ", &id, &e), -1);
    assert_string_equal(e.detail, "Not authenticated");
    assert_int_equal(orpc__serve_authenticate(&a, "Basic YTpi", &id, &e), -1);
    assert_string_equal(e.detail, "Invalid authentication credentials");
    assert_int_equal(orpc__serve_authenticate(&a, "Bearer", &id, &e), -1);
    assert_string_equal(e.detail, "Not authenticated");
    assert_int_equal(orpc__serve_authenticate(&a, "Bearer\tx", &id, &e), -1);
    assert_string_equal(e.detail, "Not authenticated");
    assert_int_equal(orpc__serve_authenticate(&a, "Token x", &id, &e), -1);
    assert_string_equal(e.detail, "Invalid authentication credentials");
    /* a credential with blanks inside is the verifier's to refuse */
    assert_int_equal(orpc__serve_authenticate(&a, "Bearer a b", &id, &e), -1);
    assert_string_equal(e.detail, "Invalid or expired token");
    verify_calls = 0;
    assert_int_equal(orpc__serve_authenticate(&a, "Bearer bad", &id, &e), -1);
    assert_int_equal(e.status, 401);
    assert_string_equal(e.detail, "Invalid or expired token");
    assert_int_equal(verify_calls, 1);
    /* a bad verdict is not cached */
    assert_int_equal(orpc__serve_authenticate(&a, "Bearer bad", &id, &e), -1);
    assert_int_equal(verify_calls, 2);
    /* the verifier cannot judge: 503 */
    assert_int_equal(orpc__serve_authenticate(&a, "Bearer down", &id, &e), -1);
    assert_int_equal(e.status, 503);
    assert_false(e.www_auth);
    /* valid, then from the cache */
    verify_calls = 0;
    assert_int_equal(orpc__serve_authenticate(&a, "bearer good1", &id, &e), 0);
    assert_string_equal(id, "legacy-user:alice");
    free(id);
    assert_int_equal(orpc__serve_authenticate(&a, "Bearer good1 ", &id, &e), 0);
    assert_string_equal(id, "legacy-user:alice");
    free(id);
    assert_int_equal(verify_calls, 1);
    assert_int_equal(cache.hits, 1);
    /* the cache keeps hashes, never the token */
    for (size_t i = 0; i < ORPC__SERVE_CACHE_SLOTS; i++)
        if (cache.slots[i].identity)
            assert_null(memmem(cache.slots[i].hash, 32, "good1", 5));
    /* an expired cache entry is asked again */
    assert_null(
        orpc__token_cache_get(&cache, "good1", orpc__serve_now_ms() + 31000));
    verify_calls = 0;
    assert_int_equal(orpc__serve_authenticate(&a, "Bearer good1", &id, &e), 0);
    free(id);
    assert_int_equal(verify_calls, 1);
    /* a JWT's exp bounds the cache: expiring in 1 s is cached < 2 s */
    int64_t now_s = (int64_t)time(NULL);
    char *jwt = jwt_with_exp(now_s + 1);
    assert_int_equal(orpc__jwt_exp(jwt), now_s + 1);
    char authz[256];
    snprintf(authz, sizeof(authz), "Bearer %s", jwt);
    assert_int_equal(orpc__serve_authenticate(&a, authz, &id, &e), 0);
    free(id);
    id = orpc__token_cache_get(&cache, jwt, orpc__serve_now_ms() + 2500);
    assert_null(id);
    free(jwt);
    /* an expired JWT the verifier still accepted is not cached */
    jwt = jwt_with_exp(now_s - 10);
    snprintf(authz, sizeof(authz), "Bearer %s", jwt);
    verify_calls = 0;
    assert_int_equal(orpc__serve_authenticate(&a, authz, &id, &e), 0);
    free(id);
    assert_int_equal(orpc__serve_authenticate(&a, authz, &id, &e), 0);
    free(id);
    assert_int_equal(verify_calls, 2);
    free(jwt);
    assert_int_equal(orpc__jwt_exp("not-a-jwt"), -1);
    assert_int_equal(orpc__jwt_exp("a.!!!.c"), -1);
    /* no cache */
    a.cache_ms = -1;
    verify_calls = 0;
    assert_int_equal(orpc__serve_authenticate(&a, "Bearer good2", &id, &e), 0);
    free(id);
    assert_int_equal(orpc__serve_authenticate(&a, "Bearer good2", &id, &e), 0);
    free(id);
    assert_int_equal(verify_calls, 2);
    /* no verifier at all: every token is refused */
    orpc__auth none = {.cache = &cache};
    assert_int_equal(orpc__serve_authenticate(&none, "Bearer good1x", &id, &e),
                     -1);
    assert_int_equal(e.status, 401);
    /* a full cache stays bounded: slots are overwritten */
    a.cache_ms = 0;
    for (int i = 0; i < 3000; i++) {
        char t[32];
        snprintf(t, sizeof(t), "Bearer good-%d", i);
        assert_int_equal(orpc__serve_authenticate(&a, t, &id, &e), 0);
        free(id);
    }
    orpc__token_cache_destroy(&cache);
}

/* on_request's legacy side whole: route, token (unless legacy_no_auth),
 * call kind, request. */
static void test_legacy_request(void **state)
{
    (void)state;
    orpc__token_cache cache;
    orpc__token_cache_init(&cache);
    orpc__auth a = {.verify = test_verify, .cache = &cache};
    orpc__legacy_call c;
    orpc__serve_err e;
    hdrs none = {{"Content-Type", "application/json", NULL}};
    hdrs good = {{"Authorization", "Bearer good-7", NULL}};
    hdrs bad = {{"Authorization", "Bearer nope", NULL}};
    /* Login needs no token, and gets no identity */
    const char *login = "{\"username\":\"a\",\"password\":\"b\"}";
    assert_int_equal(orpc__serve_legacy_request(
                         &g_rt, &a, "POST", "/login", hdr, &none,
                         (const uint8_t *)login, strlen(login), &c, &e),
                     0);
    assert_ptr_equal(c.route->m,
                     opsconductor__auth__v1__auth_service__method__login);
    assert_null(c.identity);
    orpc__legacy_call_clear(&c);
    /* everything else does, before the path is even parsed */
    assert_int_equal(orpc__serve_legacy_request(&g_rt, &a, "GET", "/jobs/abc",
                                                hdr, &none, NULL, 0, &c, &e),
                     -1);
    assert_int_equal(e.status, 401);
    assert_string_equal(e.detail, "Not authenticated");
    assert_int_equal(orpc__serve_legacy_request(&g_rt, &a, "GET", "/jobs/1",
                                                hdr, &bad, NULL, 0, &c, &e),
                     -1);
    assert_string_equal(e.detail, "Invalid or expired token");
    assert_int_equal(orpc__serve_legacy_request(&g_rt, &a, "GET", "/jobs/1",
                                                hdr, &good, NULL, 0, &c, &e),
                     0);
    assert_string_equal(c.identity, "legacy-user:alice");
    assert_int_equal(((Opsconductor__Jobs__V1__GetJobRequest *)c.msg)->job_id,
                     1);
    orpc__legacy_call_clear(&c);
    /* Verify: the token is checked, then also its request field */
    assert_int_equal(orpc__serve_legacy_request(&g_rt, &a, "GET", "/verify",
                                                hdr, &good, NULL, 0, &c, &e),
                     0);
    assert_string_equal(((Opsconductor__Auth__V1__VerifyRequest *)c.msg)->token,
                        "good-7");
    orpc__legacy_call_clear(&c);
    /* with a token, bad values are still 400; unknown routes 404 first */
    assert_int_equal(orpc__serve_legacy_request(&g_rt, &a, "GET", "/jobs/abc",
                                                hdr, &good, NULL, 0, &c, &e),
                     -1);
    assert_int_equal(e.status, 400);
    assert_int_equal(orpc__serve_legacy_request(&g_rt, &a, "GET", "/nope", hdr,
                                                &none, NULL, 0, &c, &e),
                     -1);
    assert_int_equal(e.status, 404);
    /* client and bidi streaming routes: 501 */
    orpc_http_rule rule = {.verb = "POST", .path = "/batch", .body = "*"};
    orpc_method_desc m =
        *opsconductor__notification__v1__notification_service__method__send_batch;
    m.http = &rule;
    orpc_service_desc svc = {.magic = ORPC_SERVICE_DESC_MAGIC,
                             .method_size = sizeof(orpc_method_desc),
                             .name = "B",
                             .full_name = "x.B",
                             .n_methods = 1,
                             .methods = &m};
    orpc__lroutes rt = {0};
    char err[128];
    assert_int_equal(orpc__lroutes_add_service(&rt, &svc, err, sizeof(err)), 0);
    assert_int_equal(orpc__serve_legacy_request(&rt, &a, "POST", "/batch", hdr,
                                                &good, (const uint8_t *)"{}", 2,
                                                &c, &e),
                     -1);
    assert_int_equal(e.status, 501);
    assert_non_null(strstr(e.detail, "streaming"));
    assert_non_null(strstr(e.detail, "HTTP/1.1"));
    orpc__lroutes_free(&rt);
    orpc__token_cache_destroy(&cache);
}

static void test_identities(void **state)
{
    (void)state;
    static const struct {
        const char *user;
        const char *id;
    } cases[] = {
        {"{\"username\":\"alice\",\"roles\":[\"admin\"]}", "legacy-user:alice"},
        {"{\"username\":\"scheduler-service\",\"service\":true}",
         "legacy-service:scheduler-service"},
        {"{\"username\":\"jobs\",\"type\":\"service\"}", "legacy-service:jobs"},
        {"{\"username\":\"bob\",\"service\":false}", "legacy-user:bob"},
        {"{\"name\":\"carol\"}", "legacy-user:carol"},
        {"{\"id\":7}", "legacy-user:7"},
        {"{\"id\":7.0}", "legacy-user:7"},
        {"{}", NULL},
        {"{\"username\":\"\"}", NULL},
        {"{\"username\":\"a\\nb\"}", NULL},
        {"[1]", NULL},
        {"nope", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *id =
            orpc__identity_from_user_json(cases[i].user, strlen(cases[i].user));
        if (cases[i].id == NULL)
            assert_null(id);
        else
            assert_string_equal(id, cases[i].id);
        free(id);
    }
}

/* ---- Connect ---------------------------------------------------------- */

static const orpc_method_desc *find_method(void *ud, const char *path)
{
    (void)ud;
    const orpc_service_desc *svcs[] = {
        &grpc__testing__test_service__orpc_desc,
        &opsconductor__jobs__v1__jobs_service__orpc_desc,
        &opsconductor__auth__v1__auth_service__orpc_desc};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(svcs[i]->full_name);
        if (strncmp(path + 1, svcs[i]->full_name, n) == 0 && path[n + 1] == '/')
            return orpc_service_find_method(svcs[i], path);
    }
    return NULL;
}

static orpc_metadata *headers_md(const hdrs *h)
{
    orpc_metadata *md = NULL;
    assert_int_equal(orpc_metadata_new(&md, NULL), 0);
    /* the runtime gives header names in lower case */
    for (size_t i = 0; h->kv[i]; i += 2) {
        char key[64];
        size_t n = strlen(h->kv[i]);
        assert_true(n < sizeof(key));
        for (size_t k = 0; k <= n; k++)
            key[k] = (char)tolower((unsigned char)h->kv[i][k]);
        /* orpc_metadata refuses the transport's own names (connection,
         * content-type...): the runtime's list may still hold them, the
         * gateway skips them either way */
        (void)orpc_metadata_add(md, key, h->kv[i + 1], strlen(h->kv[i + 1]));
    }
    return md;
}

/* Parses a Connect request: the return of orpc__connect_parse. */
static int connect(const char *verb, const char *target, const hdrs *h,
                   const void *body, size_t len, orpc__connect_req *r,
                   orpc_status *err, int *hs)
{
    orpc_metadata *md = headers_md(h);
    int rc = orpc__connect_parse(find_method, NULL, verb, target, md, hdr,
                                 (void *)h, body, len, r, err, hs);
    orpc_metadata_free(md);
    return rc;
}

static void expect_connect_error(const char *verb, const char *target,
                                 const hdrs *h, const char *body,
                                 orpc_code code, int http)
{
    orpc__connect_req r;
    orpc_status err;
    int hs = 0;
    int rc =
        connect(verb, target, h, body, body ? strlen(body) : 0, &r, &err, &hs);
    if (rc != -1)
        fail_msg("%s %s: %d", verb, target, rc);
    if (err.code != code)
        fail_msg("%s %s: %s (%s), want %s", verb, target,
                 orpc_code_name(err.code), err.message, orpc_code_name(code));
    assert_int_equal(hs ? hs : orpc_code_to_http(err.code), http);
    orpc_status_clear(&err);
}

static void test_connect(void **state)
{
    (void)state;
    orpc__connect_req r;
    orpc_status err;
    int hs;
    /* JSON, the standard profile (JSON names, int64 as strings) */
    hdrs jh = {{"Content-Type", "application/json", "Connect-Protocol-Version",
                "1", "Connect-Timeout-Ms", "1500", "X-Trace", "abc",
                "Trace-Bin", "AAEC", "Connection", "keep-alive",
                "Content-Length", "40", NULL}};
    const char *body = "{\"responseSize\":12,\"fillUsername\":true,"
                       "\"newField\":1}";
    assert_int_equal(connect("POST", "/grpc.testing.TestService/UnaryCall", &jh,
                             body, strlen(body), &r, &err, &hs),
                     0);
    assert_ptr_equal(r.m, grpc__testing__test_service__method__unary_call);
    assert_int_equal(r.codec, ORPC__CONNECT_JSON);
    assert_int_equal(r.timeout_ms, 1500);
    Grpc__Testing__SimpleRequest *sr = (Grpc__Testing__SimpleRequest *)r.msg;
    assert_int_equal(sr->response_size, 12);
    assert_true(sr->fill_username);
    /* headers as metadata: custom ones kept, -bin decoded, hop-by-hop and
     * content-/connect- ones dropped */
    const uint8_t *v;
    size_t vl;
    assert_int_equal(orpc_metadata_get(r.md, "x-trace", &v, &vl), 0);
    assert_memory_equal(v, "abc", 3);
    assert_int_equal(orpc_metadata_get(r.md, "trace-bin", &v, &vl), 0);
    assert_int_equal(vl, 3);
    assert_memory_equal(v, "\x00\x01\x02", 3);
    assert_int_not_equal(orpc_metadata_get(r.md, "connection", &v, &vl), 0);
    assert_int_not_equal(orpc_metadata_get(r.md, "content-length", &v, &vl), 0);
    assert_int_not_equal(orpc_metadata_get(r.md, "connect-timeout-ms", &v, &vl),
                         0);
    /* the response in the same codec */
    Grpc__Testing__SimpleResponse resp = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
    resp.username = "u";
    uint8_t *out = NULL;
    size_t olen = 0;
    assert_int_equal(
        orpc__connect_encode(r.m, ORPC__CONNECT_JSON, &resp.base, &out, &olen),
        0);
    assert_string_equal((char *)out, "{\"username\":\"u\"}");
    free(out);
    orpc__connect_req_clear(&r);
    /* binary protobuf; an empty body is the empty message */
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    req.response_size = 77;
    uint8_t buf[64];
    size_t n = protobuf_c_message_pack(&req.base, buf);
    hdrs ph = {{"Content-Type", "application/proto", NULL}};
    assert_int_equal(connect("POST", "/grpc.testing.TestService/UnaryCall", &ph,
                             buf, n, &r, &err, &hs),
                     0);
    assert_int_equal(r.codec, ORPC__CONNECT_PROTO);
    assert_int_equal(r.timeout_ms, 0);
    assert_int_equal(((Grpc__Testing__SimpleRequest *)r.msg)->response_size,
                     77);
    assert_int_equal(
        orpc__connect_encode(r.m, ORPC__CONNECT_PROTO, &resp.base, &out, &olen),
        0);
    assert_int_equal(olen, protobuf_c_message_get_packed_size(&resp.base));
    free(out);
    orpc__connect_req_clear(&r);
    assert_int_equal(connect("POST", "/grpc.testing.TestService/UnaryCall", &jh,
                             "", 0, &r, &err, &hs),
                     0);
    orpc__connect_req_clear(&r);
    /* GET for a method without side effects: JSON, and base64 proto */
    hdrs none = {{NULL}};
    assert_int_equal(connect("GET",
                             "/opsconductor.jobs.v1.JobsService/GetJob?"
                             "encoding=json&message=%7B%22job_id%22%3A5%7D"
                             "&connect=v1&compression=identity",
                             &none, NULL, 0, &r, &err, &hs),
                     0);
    assert_int_equal(((Opsconductor__Jobs__V1__GetJobRequest *)r.msg)->job_id,
                     5);
    orpc__connect_req_clear(&r);
    Opsconductor__Jobs__V1__GetJobRequest gj =
        OPSCONDUCTOR__JOBS__V1__GET_JOB_REQUEST__INIT;
    gj.job_id = 6;
    n = protobuf_c_message_pack(&gj.base, buf);
    orpc__buf b64 = {0};
    orpc__base64_append(&b64, buf, n, ORPC__BASE64_URL | ORPC__BASE64_NOPAD);
    char target[256];
    snprintf(target, sizeof(target),
             "/opsconductor.jobs.v1.JobsService/GetJob?encoding=proto&base64=1"
             "&message=%s",
             (char *)b64.data);
    orpc__buf_free(&b64);
    assert_int_equal(connect("GET", target, &none, NULL, 0, &r, &err, &hs), 0);
    assert_int_equal(((Opsconductor__Jobs__V1__GetJobRequest *)r.msg)->job_id,
                     6);
    orpc__connect_req_clear(&r);
    /* not Connect paths: left to the legacy routes */
    assert_int_equal(connect("GET", "/jobs/7", &none, NULL, 0, &r, &err, &hs),
                     1);
    assert_int_equal(connect("POST", "/a.b/c/d", &jh, "{}", 2, &r, &err, &hs),
                     1);
    assert_int_equal(connect("GET", "/health", &none, NULL, 0, &r, &err, &hs),
                     1);
    /* errors, with Connect's codes and HTTP statuses */
    expect_connect_error("POST", "/grpc.testing.TestService/Nope", &jh, "{}",
                         ORPC_UNIMPLEMENTED, 404);
    expect_connect_error("POST", "/no.Such/Method", &jh, "{}",
                         ORPC_UNIMPLEMENTED, 404);
    expect_connect_error("GET",
                         "/opsconductor.jobs.v1.JobsService/RunJob?encoding="
                         "json&message=%7B%7D",
                         &none, NULL, ORPC_UNIMPLEMENTED, 405);
    expect_connect_error("GET",
                         "/opsconductor.jobs.v1.JobsService/GetJob?message=x",
                         &none, NULL, ORPC_INVALID_ARGUMENT, 400);
    expect_connect_error("GET",
                         "/opsconductor.jobs.v1.JobsService/GetJob?encoding="
                         "&message=",
                         &none, NULL, ORPC_UNIMPLEMENTED, 415);
    expect_connect_error("GET",
                         "/opsconductor.jobs.v1.JobsService/GetJob?encoding="
                         "json&message=%7",
                         &none, NULL, ORPC_INVALID_ARGUMENT, 400);
    expect_connect_error("GET",
                         "/opsconductor.jobs.v1.JobsService/GetJob?encoding="
                         "json&message=%7B&connect=v2",
                         &none, NULL, ORPC_INVALID_ARGUMENT, 400);
    expect_connect_error("GET",
                         "/opsconductor.jobs.v1.JobsService/GetJob?encoding="
                         "json&message=%7B%7D&compression=gzip",
                         &none, NULL, ORPC_INVALID_ARGUMENT, 400);
    expect_connect_error("GET",
                         "/opsconductor.jobs.v1.JobsService/GetJob?encoding="
                         "xml&message=x",
                         &none, NULL, ORPC_UNIMPLEMENTED, 415);
    expect_connect_error("GET",
                         "/opsconductor.jobs.v1.JobsService/GetJob?encoding="
                         "proto&base64=1&message=!!",
                         &none, NULL, ORPC_INVALID_ARGUMENT, 400);
    expect_connect_error("PUT", "/grpc.testing.TestService/UnaryCall", &jh,
                         "{}", ORPC_UNIMPLEMENTED, 405);
    hdrs tv = {{"Content-Type", "application/json", "Connect-Protocol-Version",
                "2", NULL}};
    expect_connect_error("POST", "/grpc.testing.TestService/UnaryCall", &tv,
                         "{}", ORPC_INVALID_ARGUMENT, 400);
    static const char *const bad_timeouts[] = {"", "-1", "1.5", "abc",
                                               "12345678901"};
    for (size_t i = 0; i < 5; i++) {
        hdrs th = {{"Content-Type", "application/json", "Connect-Timeout-Ms",
                    bad_timeouts[i], NULL}};
        expect_connect_error("POST", "/grpc.testing.TestService/UnaryCall", &th,
                             "{}", ORPC_INVALID_ARGUMENT, 400);
    }
    hdrs xml = {{"Content-Type", "text/xml", NULL}};
    expect_connect_error("POST", "/grpc.testing.TestService/UnaryCall", &xml,
                         "{}", ORPC_UNIMPLEMENTED, 415);
    hdrs gz = {
        {"Content-Type", "application/json", "Content-Encoding", "gzip", NULL}};
    expect_connect_error("POST", "/grpc.testing.TestService/UnaryCall", &gz,
                         "{}", ORPC_UNIMPLEMENTED, 501);
    expect_connect_error("POST", "/grpc.testing.TestService/UnaryCall", &jh,
                         "{\"responseSize\":\"x\"}", ORPC_INVALID_ARGUMENT,
                         400);
    expect_connect_error("POST", "/grpc.testing.TestService/UnaryCall", &jh,
                         "{", ORPC_INVALID_ARGUMENT, 400);
    expect_connect_error("POST", "/grpc.testing.TestService/UnaryCall", &ph,
                         "\xff\xff\xff", ORPC_INVALID_ARGUMENT, 400);
    hdrs badbin = {{"Content-Type", "application/json", "X-Bin", "!!!", NULL}};
    expect_connect_error("POST", "/grpc.testing.TestService/UnaryCall", &badbin,
                         "{}", ORPC_INVALID_ARGUMENT, 400);
    /* streaming methods are not served over Connect here */
    expect_connect_error("POST",
                         "/grpc.testing.TestService/StreamingOutputCall", &jh,
                         "{}", ORPC_UNIMPLEMENTED, 501);
    /* Connect's error body and code names */
    orpc_status st = orpc_status_new(ORPC_NOT_FOUND, "no job 7");
    size_t len = 0;
    char *e = orpc__connect_error_json(&st, &len);
    assert_string_equal(e, "{\"code\":\"not_found\",\"message\":\"no job 7\"}");
    free(e);
    orpc_status_clear(&st);
    static const char *const names[] = {"canceled",
                                        "unknown",
                                        "invalid_argument",
                                        "deadline_exceeded",
                                        "not_found",
                                        "already_exists",
                                        "permission_denied",
                                        "resource_exhausted",
                                        "failed_precondition",
                                        "aborted",
                                        "out_of_range",
                                        "unimplemented",
                                        "internal",
                                        "unavailable",
                                        "data_loss",
                                        "unauthenticated"};
    static const int http[] = {499, 500, 400, 504, 404, 409, 403, 429,
                               400, 409, 400, 501, 500, 503, 500, 401};
    for (int c = 1; c <= 16; c++) {
        assert_string_equal(orpc__connect_code_name((orpc_code)c),
                            names[c - 1]);
        assert_int_equal(orpc_code_to_http((orpc_code)c), http[c - 1]);
    }
}

/* ---- the default verifier, against a real AuthService ------------------ */

static int auth_verify_calls;

static orpc_status auth_verify(orpc_ctx *ctx,
                               const Opsconductor__Auth__V1__VerifyRequest *req,
                               Opsconductor__Auth__V1__VerifyResponse *resp,
                               void *ud)
{
    (void)ud;
    __atomic_add_fetch(&auth_verify_calls, 1, __ATOMIC_SEQ_CST);
    const char *user = NULL;
    if (strcmp(req->token, "svc-token") == 0)
        user = "{\"username\":\"scheduler-service\",\"service\":true}";
    else if (strcmp(req->token, "user-token") == 0)
        user = "{\"username\":\"alice\",\"id\":3,\"roles\":[\"viewer\"]}";
    else if (strcmp(req->token, "nameless") == 0)
        user = "{\"roles\":[]}";
    else if (strcmp(req->token, "broken") == 0)
        return orpc_status_new(ORPC_INTERNAL, "database down");
    else
        return orpc_status_new(ORPC_UNAUTHENTICATED,
                               "Invalid or expired token");
    ProtobufCMessage *st = NULL;
    if (orpc_json_decode(&st, &google__protobuf__struct__orpc_info, user,
                         strlen(user), NULL,
                         orpc_arena_allocator(orpc_ctx_arena(ctx)), NULL) != 0)
        return orpc_status_new(ORPC_INTERNAL, "struct");
    resp->user = (Google__Protobuf__Struct *)st;
    return ORPC_STATUS_OK;
}

static const Opsconductor__Auth__V1__AuthService_Handlers auth_handlers = {
    .verify = auth_verify};

static void test_default_verifier(void **state)
{
    (void)state;
    orpc_server *srv = NULL;
    orpc_channel *ch = NULL;
    int port;
    char target[64];
    orpc_server_opts so = {.plaintext = 1, .io_threads = 1};
    orpc_channel_opts co = {.plaintext = 1};
    assert_int_equal(orpc_server_new(&srv, &so, NULL, NULL), 0);
    assert_int_equal(opsconductor__auth__v1__auth_service__server__register(
                         srv, &auth_handlers, NULL),
                     0);
    assert_int_equal(orpc_server_listen(srv, "127.0.0.1:0", &port, NULL), 0);
    assert_int_equal(orpc_server_start(srv), 0);
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    assert_int_equal(orpc_channel_new(&ch, target, &co, NULL, NULL), 0);

    orpc__verify_ctx vc = {.channel = ch, .timeout_ms = 5000};
    char *id = NULL;
    assert_int_equal(orpc__verify_over_channel("svc-token", &id, &vc), 0);
    assert_string_equal(id, "legacy-service:scheduler-service");
    free(id);
    assert_int_equal(orpc__verify_over_channel("user-token", &id, &vc), 0);
    assert_string_equal(id, "legacy-user:alice");
    free(id);
    /* the auth service says no: a bad token (401) */
    assert_int_equal(orpc__verify_over_channel("forged", &id, &vc),
                     ORPC_EINVAL);
    assert_null(id);
    /* a user without a name: the auth service's fault (503) */
    assert_int_equal(orpc__verify_over_channel("nameless", &id, &vc),
                     ORPC_EAGAIN);
    /* it cannot judge: 503 */
    assert_int_equal(orpc__verify_over_channel("broken", &id, &vc),
                     ORPC_EAGAIN);

    /* the public object: verdicts cached, the channel referenced */
    orpc_legacy_serve *ls = NULL;
    orpc_legacy_serve_opts lo = {.auth_channel = ch};
    assert_int_equal(orpc_legacy_serve_new(&ls, &lo), 0);
    orpc__auth a = {
        .verify = orpc__verify_over_channel, .verify_ud = &vc, .cache = NULL};
    orpc__token_cache cache;
    orpc__token_cache_init(&cache);
    a.cache = &cache;
    orpc__serve_err e;
    auth_verify_calls = 0;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(
            orpc__serve_authenticate(&a, "Bearer user-token", &id, &e), 0);
        assert_string_equal(id, "legacy-user:alice");
        free(id);
    }
    assert_int_equal(auth_verify_calls, 1);
    assert_int_equal(orpc__serve_authenticate(&a, "Bearer forged", &id, &e),
                     -1);
    assert_int_equal(e.status, 401);
    orpc__token_cache_destroy(&cache);
    orpc_channel_unref(ch); /* the gateway still holds one */
    assert_int_equal(orpc_legacy_serve_install(NULL, srv), ORPC_EINVAL);
    orpc_legacy_serve_free(ls);
    orpc_legacy_serve_free(NULL);
    assert_int_equal(orpc_legacy_serve_new(NULL, NULL), ORPC_EINVAL);

    /* the auth service gone: the verifier cannot judge (503, not 401) */
    assert_int_equal(orpc_server_shutdown(srv, 100), 0);
    assert_int_equal(orpc_server_wait(srv), 0);
    orpc_server_free(srv);
    assert_int_equal(orpc_channel_new(&ch, target, &co, NULL, NULL), 0);
    vc.channel = ch;
    vc.timeout_ms = 500;
    assert_int_equal(orpc__verify_over_channel("user-token", &id, &vc),
                     ORPC_EAGAIN);
    orpc_channel_unref(ch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_route),
        cmocka_unit_test(test_route_errors),
        cmocka_unit_test(test_dot_segments),
        cmocka_unit_test(test_general_forms),
        cmocka_unit_test(test_responses),
        cmocka_unit_test(test_status_round_trip),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_legacy_request),
        cmocka_unit_test(test_identities),
        cmocka_unit_test(test_connect),
        cmocka_unit_test(test_default_verifier),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
