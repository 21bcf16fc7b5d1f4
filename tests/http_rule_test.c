/*
 * http_rule_test.c — every OpsConductor method's google.api.http rule
 * applied to a request (verb, path, query, body, headers exactly as the
 * legacy services expect them), the general forms (query parameters,
 * nested and repeated fields, percent-encoding, multi-segment variables),
 * and legacy replies mapped back to messages (response_body, wrong shapes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <orpc/compat/json.h>
#include <orpc/orpc.h>

#include "grpc/testing/test.orpc.h"
#include "http_rule.h"
#include "opsconductor/auth/v1/auth.orpc.h"
#include "opsconductor/credentials/v1/credentials.orpc.h"
#include "opsconductor/jobs/v1/jobs.orpc.h"
#include "opsconductor/notification/v1/notification.orpc.h"
#include "opsconductor/user/v1/user.orpc.h"

static const orpc_json_opts LEGACY = {.legacy = 1, .ignore_unknown = 1};

static orpc__http_request build_ok(const orpc_method_desc *m,
                                   const ProtobufCMessage *msg)
{
    orpc__http_request r;
    orpc_status st = orpc__http_build(m, NULL, msg, &LEGACY, &r);
    if (st.code != ORPC_OK)
        fail_msg("%s: %s", m->path, st.message ? st.message : "");
    orpc_status_clear(&st);
    return r;
}

static void expect(const orpc__http_request *r, const char *verb,
                   const char *path, const char *body)
{
    assert_string_equal(r->verb, verb);
    assert_string_equal(r->path, path);
    if (body == NULL)
        assert_null(r->body);
    else
        assert_string_equal(r->body, body);
}

static Google__Protobuf__Struct *struct_of(const char *json)
{
    ProtobufCMessage *m = NULL;
    assert_int_equal(orpc_json_decode(&m, &google__protobuf__struct__orpc_info,
                                      json, strlen(json), NULL, NULL, NULL),
                     0);
    return (Google__Protobuf__Struct *)m;
}

static void test_auth(void **state)
{
    (void)state;
    Opsconductor__Auth__V1__LoginRequest login =
        OPSCONDUCTOR__AUTH__V1__LOGIN_REQUEST__INIT;
    login.username = "scheduler-service";
    login.password = "s3cret";
    orpc__http_request r = build_ok(
        opsconductor__auth__v1__auth_service__method__login, &login.base);
    expect(&r, "POST", "/login",
           "{\"username\":\"scheduler-service\",\"password\":\"s3cret\"}");
    assert_int_equal(r.n_headers, 0);
    assert_true(
        opsconductor__auth__v1__auth_service__method__login->legacy_no_auth);
    orpc__http_request_clear(&r);

    Opsconductor__Auth__V1__VerifyRequest v =
        OPSCONDUCTOR__AUTH__V1__VERIFY_REQUEST__INIT;
    v.token = "tok.en";
    r = build_ok(opsconductor__auth__v1__auth_service__method__verify, &v.base);
    expect(&r, "GET", "/verify", NULL); /* the token is not a query param */
    assert_int_equal(r.n_headers, 1);
    assert_string_equal(r.headers[0], "Authorization: Bearer tok.en");
    orpc__http_request_clear(&r);
}

static void test_jobs(void **state)
{
    (void)state;
    Opsconductor__Jobs__V1__RunJobRequest run =
        OPSCONDUCTOR__JOBS__V1__RUN_JOB_REQUEST__INIT;
    run.job_id = 42;
    run.payload = struct_of("{\"scheduled\": true}");
    orpc__http_request r = build_ok(
        opsconductor__jobs__v1__jobs_service__method__run_job, &run.base);
    expect(&r, "POST", "/jobs/42/run", "{\"scheduled\":true}");
    orpc__http_request_clear(&r);
    protobuf_c_message_free_unpacked(&run.payload->base, NULL);
    run.payload = NULL; /* the optional body left out */
    r = build_ok(opsconductor__jobs__v1__jobs_service__method__run_job,
                 &run.base);
    expect(&r, "POST", "/jobs/42/run", NULL);
    orpc__http_request_clear(&r);

    Opsconductor__Jobs__V1__GetJobRequest g =
        OPSCONDUCTOR__JOBS__V1__GET_JOB_REQUEST__INIT;
    g.job_id = 7;
    r = build_ok(opsconductor__jobs__v1__jobs_service__method__get_job,
                 &g.base);
    expect(&r, "GET", "/jobs/7", NULL);
    orpc__http_request_clear(&r);
    Opsconductor__Jobs__V1__GetJobStatusRequest s =
        OPSCONDUCTOR__JOBS__V1__GET_JOB_STATUS_REQUEST__INIT;
    s.job_id = 9000000000LL; /* int64 beyond 32 bits */
    r = build_ok(opsconductor__jobs__v1__jobs_service__method__get_job_status,
                 &s.base);
    expect(&r, "GET", "/jobs/9000000000/status", NULL);
    orpc__http_request_clear(&r);

    /* an unset path field is the caller's mistake */
    g.job_id = 0;
    orpc_status st =
        orpc__http_build(opsconductor__jobs__v1__jobs_service__method__get_job,
                         NULL, &g.base, &LEGACY, &r);
    assert_int_equal(st.code, ORPC_INVALID_ARGUMENT);
    assert_non_null(strstr(st.message, "job_id"));
    orpc_status_clear(&st);
}

static void test_notification(void **state)
{
    (void)state;
    Opsconductor__Notification__V1__SendNotificationRequest n =
        OPSCONDUCTOR__NOTIFICATION__V1__SEND_NOTIFICATION_REQUEST__INIT;
    n.type =
        OPSCONDUCTOR__NOTIFICATION__V1__NOTIFICATION_TYPE__NOTIFICATION_TYPE_EMAIL;
    n.destination = "ops@example.org";
    n.payload = struct_of("{\"subject\": \"s\", \"body\": \"b\"}");
    n._template_id_case =
        OPSCONDUCTOR__NOTIFICATION__V1__SEND_NOTIFICATION_REQUEST___TEMPLATE_ID_TEMPLATE_ID;
    n.template_id = 3;
    orpc__http_request r = build_ok(
        opsconductor__notification__v1__notification_service__method__send_notification,
        &n.base);
    assert_string_equal(r.verb, "POST");
    assert_string_equal(r.path, "/notifications");
    /* legacy spelling of the enum, integers as numbers, snake_case */
    assert_non_null(strstr(r.body, "\"type\":\"email\""));
    assert_non_null(strstr(r.body, "\"destination\":\"ops@example.org\""));
    assert_non_null(strstr(r.body, "\"template_id\":3"));
    assert_non_null(strstr(r.body, "\"payload\":{"));
    orpc__http_request_clear(&r);
    protobuf_c_message_free_unpacked(&n.payload->base, NULL);
}

static void test_credentials_and_users(void **state)
{
    (void)state;
    Opsconductor__Credentials__V1__GetCredentialRequest c =
        OPSCONDUCTOR__CREDENTIALS__V1__GET_CREDENTIAL_REQUEST__INIT;
    c.credential_id = 5;
    orpc__http_request r = build_ok(
        opsconductor__credentials__v1__credentials_service__method__get_credential,
        &c.base);
    expect(&r, "GET", "/credentials/5", NULL);
    orpc__http_request_clear(&r);
    Opsconductor__Credentials__V1__ListTargetCredentialsRequest l =
        OPSCONDUCTOR__CREDENTIALS__V1__LIST_TARGET_CREDENTIALS_REQUEST__INIT;
    l.target_id = 2;
    r = build_ok(
        opsconductor__credentials__v1__credentials_service__method__list_target_credentials,
        &l.base);
    expect(&r, "GET", "/targets/2/credentials", NULL);
    orpc__http_request_clear(&r);
    Opsconductor__User__V1__GetUserRequest u =
        OPSCONDUCTOR__USER__V1__GET_USER_REQUEST__INIT;
    u.user_id = 9;
    r = build_ok(opsconductor__user__v1__user_service__method__get_user,
                 &u.base);
    expect(&r, "GET", "/users/9", NULL);
    orpc__http_request_clear(&r);
    Opsconductor__User__V1__GetUserPreferencesRequest p =
        OPSCONDUCTOR__USER__V1__GET_USER_PREFERENCES_REQUEST__INIT;
    p.user_id = 9;
    r = build_ok(
        opsconductor__user__v1__user_service__method__get_user_preferences,
        &p.base);
    expect(&r, "GET", "/users/9/preferences", NULL);
    orpc__http_request_clear(&r);
}

/* The general forms, on grpc.testing.SimpleRequest with rules made here. */
static void test_query_and_escaping(void **state)
{
    (void)state;
    const orpc_method_desc *m = grpc__testing__test_service__method__unary_call;
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__Payload pl = GRPC__TESTING__PAYLOAD__INIT;
    Grpc__Testing__EchoStatus es = GRPC__TESTING__ECHO_STATUS__INIT;
    req.response_size = 12;
    req.fill_username = 1;
    pl.body.data = (uint8_t *)"\xfb\xff";
    pl.body.len = 2;
    req.payload = &pl;
    es.message = "a b&c/d";
    req.response_status = &es;
    orpc_http_rule get = {.verb = "GET", .path = "/v1/sizes/{response_size}"};
    orpc__http_request r;
    orpc_status st = orpc__http_build(m, &get, &req.base, &LEGACY, &r);
    assert_int_equal(st.code, ORPC_OK);
    /* set fields not in the path become query parameters (in field-number
     * order), nested ones with dotted names, values percent-encoded, bytes
     * as URL-safe base64 */
    assert_string_equal(r.path, "/v1/sizes/12?payload.body=-_8%3D"
                                "&fill_username=true"
                                "&response_status.message=a%20b%26c%2Fd");
    assert_null(r.body);
    orpc__http_request_clear(&r);
    /* JSON names outside the legacy profile */
    orpc_json_opts plain = {0};
    st = orpc__http_build(m, &get, &req.base, &plain, &r);
    assert_int_equal(st.code, ORPC_OK);
    assert_non_null(strstr(r.path, "fillUsername=true"));
    assert_non_null(strstr(r.path, "responseStatus.message="));
    orpc__http_request_clear(&r);
    /* a single-segment variable escapes '/', a '**' one keeps it */
    orpc_http_rule one = {.verb = "GET",
                          .path = "/echo/{response_status.message}"};
    req.fill_username = 0;
    req.payload = NULL;
    req.response_size = 0;
    st = orpc__http_build(m, &one, &req.base, &LEGACY, &r);
    assert_int_equal(st.code, ORPC_OK);
    assert_string_equal(r.path, "/echo/a%20b%26c%2Fd");
    orpc__http_request_clear(&r);
    orpc_http_rule many = {.verb = "GET",
                           .path = "/echo/{response_status.message=**}:run"};
    st = orpc__http_build(m, &many, &req.base, &LEGACY, &r);
    assert_int_equal(st.code, ORPC_OK);
    assert_string_equal(r.path, "/echo/a%20b%26c/d:run");
    orpc__http_request_clear(&r);
    /* body "*": everything not in the path */
    req.response_size = 3;
    orpc_http_rule post = {
        .verb = "POST", .path = "/v1/{response_size}", .body = "*"};
    st = orpc__http_build(m, &post, &req.base, &LEGACY, &r);
    assert_int_equal(st.code, ORPC_OK);
    assert_string_equal(r.path, "/v1/3");
    assert_null(strstr(r.body, "response_size"));
    assert_non_null(strstr(r.body, "\"response_status\":{"));
    orpc__http_request_clear(&r);
    /* a message of another type is refused */
    Grpc__Testing__Empty e = GRPC__TESTING__EMPTY__INIT;
    st = orpc__http_build(m, &get, &e.base, &LEGACY, &r);
    assert_int_equal(st.code, ORPC_INVALID_ARGUMENT);
    orpc_status_clear(&st);
}

/* The update pattern: a path variable inside the body field.  The path
 * carries the field's value, the body the whole field (the variable
 * included, with the same value), the query nothing of the body; decoding
 * the body back gives the field as it was sent. */
static void test_update_pattern(void **state)
{
    (void)state;
    const orpc_method_desc *m = grpc__testing__test_service__method__unary_call;
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__EchoStatus es = GRPC__TESTING__ECHO_STATUS__INIT;
    es.code = 7;
    es.message = "shelves/1/books/2";
    req.response_status = &es;
    req.response_size = 5;
    orpc_http_rule patch = {.verb = "PATCH",
                            .path = "/v1/{response_status.message=shelves/*/"
                                    "books/*}",
                            .body = "response_status"};
    orpc__http_request r;
    orpc_status st = orpc__http_build(m, &patch, &req.base, &LEGACY, &r);
    assert_int_equal(st.code, ORPC_OK);
    assert_string_equal(r.verb, "PATCH");
    assert_string_equal(r.path, "/v1/shelves/1/books/2?response_size=5");
    assert_non_null(r.body);
    /* round trip: the body decodes to the field that was sent */
    ProtobufCMessage *back = NULL;
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field_by_name(m->input->descriptor,
                                                        "response_status");
    assert_non_null(fd);
    const orpc_field_info *fi = orpc_message_info_field(m->input, fd->id);
    assert_non_null(fi);
    assert_non_null(fi->message);
    assert_int_equal(orpc_json_decode(&back, fi->message, r.body, r.body_len,
                                      &LEGACY, NULL, NULL),
                     0);
    Grpc__Testing__EchoStatus *b = (Grpc__Testing__EchoStatus *)back;
    assert_int_equal(b->code, 7);
    assert_string_equal(b->message, "shelves/1/books/2");
    protobuf_c_message_free_unpacked(back, NULL);
    orpc__http_request_clear(&r);
    /* the bare-variable form */
    orpc_http_rule put = {.verb = "PUT",
                          .path = "/v1/books/{response_status.message}",
                          .body = "response_status"};
    es.message = "moby dick";
    st = orpc__http_build(m, &put, &req.base, &LEGACY, &r);
    assert_int_equal(st.code, ORPC_OK);
    assert_string_equal(r.path, "/v1/books/moby%20dick?response_size=5");
    assert_non_null(strstr(r.body, "\"message\":\"moby dick\""));
    orpc__http_request_clear(&r);
}

/* Path values that would make an empty, "." or ".." segment are refused
 * before sending: libcurl (and any server) would collapse them, sending
 * GET /jobs/../users/1 as GET /users/1. */
static void test_dot_segments_refused(void **state)
{
    (void)state;
    const orpc_method_desc *m = grpc__testing__test_service__method__unary_call;
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__EchoStatus es = GRPC__TESTING__ECHO_STATUS__INIT;
    req.response_status = &es;
    orpc_http_rule one = {.verb = "GET",
                          .path = "/echo/{response_status.message}"};
    orpc_http_rule many = {.verb = "GET",
                           .path = "/echo/{response_status.message=**}"};
    static const char *const bad_one[] = {".", ".."};
    static const char *const bad_many[] = {".",    "..", "a/../b", "a/./b",
                                           "a//b", "a/", "/a",     "a/.."};
    static const char *const good_one[] = {"...", ".a", "a.", "a/..", "../a"};
    static const char *const good_many[] = {"...", "a/.b/c", "a..b/c"};
    orpc__http_request r;
    orpc_status st;
    for (size_t i = 0; i < sizeof(bad_one) / sizeof(bad_one[0]); i++) {
        es.message = (char *)bad_one[i];
        st = orpc__http_build(m, &one, &req.base, &LEGACY, &r);
        assert_int_equal(st.code, ORPC_INVALID_ARGUMENT);
        assert_non_null(strstr(st.message, "segment"));
        orpc_status_clear(&st);
    }
    for (size_t i = 0; i < sizeof(bad_many) / sizeof(bad_many[0]); i++) {
        es.message = (char *)bad_many[i];
        st = orpc__http_build(m, &many, &req.base, &LEGACY, &r);
        if (st.code != ORPC_INVALID_ARGUMENT)
            fail_msg("'%s' was not refused", bad_many[i]);
        orpc_status_clear(&st);
    }
    /* in a single-segment variable '/' is escaped: no segment is made */
    for (size_t i = 0; i < sizeof(good_one) / sizeof(good_one[0]); i++) {
        es.message = (char *)good_one[i];
        st = orpc__http_build(m, &one, &req.base, &LEGACY, &r);
        assert_int_equal(st.code, ORPC_OK);
        orpc__http_request_clear(&r);
    }
    for (size_t i = 0; i < sizeof(good_many) / sizeof(good_many[0]); i++) {
        es.message = (char *)good_many[i];
        st = orpc__http_build(m, &many, &req.base, &LEGACY, &r);
        assert_int_equal(st.code, ORPC_OK);
        orpc__http_request_clear(&r);
    }
    es.message = "../a";
    st = orpc__http_build(m, &one, &req.base, &LEGACY, &r);
    assert_int_equal(st.code, ORPC_OK);
    assert_string_equal(r.path, "/echo/..%2Fa");
    orpc__http_request_clear(&r);
}

static void test_responses(void **state)
{
    (void)state;
    ProtobufCMessage *out = NULL;
    const orpc_method_desc *get =
        opsconductor__jobs__v1__jobs_service__method__get_job;
    const char *job = "{\"id\": 7, \"name\": \"backup\", \"tags\": [\"a\"]}";
    orpc_status st =
        orpc__http_decode_response(get, NULL, job, strlen(job), &LEGACY, &out);
    assert_int_equal(st.code, ORPC_OK);
    Opsconductor__Jobs__V1__GetJobResponse *r =
        (Opsconductor__Jobs__V1__GetJobResponse *)out;
    assert_non_null(r->job); /* response_body "job": the reply is the job */
    assert_int_equal(r->job->n_fields, 3);
    protobuf_c_message_free_unpacked(out, NULL);
    /* a whole-message reply with keys the proto does not know */
    const char *login = "{\"access_token\": \"t\", \"token_type\": \"bearer\","
                        " \"expires_in\": 120, \"scope\": \"x\"}";
    st = orpc__http_decode_response(
        opsconductor__auth__v1__auth_service__method__login, NULL, login,
        strlen(login), &LEGACY, &out);
    assert_int_equal(st.code, ORPC_OK);
    Opsconductor__Auth__V1__LoginResponse *lr =
        (Opsconductor__Auth__V1__LoginResponse *)out;
    assert_string_equal(lr->access_token, "t");
    protobuf_c_message_free_unpacked(out, NULL);
    /* not JSON, and the wrong shape: INTERNAL naming the problem */
    st = orpc__http_decode_response(get, NULL, "<html>", 6, &LEGACY, &out);
    assert_int_equal(st.code, ORPC_INTERNAL);
    assert_non_null(strstr(st.message, "not JSON"));
    orpc_status_clear(&st);
    st = orpc__http_decode_response(
        opsconductor__auth__v1__auth_service__method__login, NULL,
        "{\"access_token\": [1]}", 21, &LEGACY, &out);
    assert_int_equal(st.code, ORPC_INTERNAL);
    assert_non_null(strstr(st.message, "the legacy reply has the wrong shape: "
                                       "$.access_token: expected a string"));
    orpc_status_clear(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_jobs),
        cmocka_unit_test(test_notification),
        cmocka_unit_test(test_credentials_and_users),
        cmocka_unit_test(test_query_and_escaping),
        cmocka_unit_test(test_update_pattern),
        cmocka_unit_test(test_responses),
        cmocka_unit_test(test_dot_segments_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
