/*
 * legacy_serve_e2e_test.c — orpc's gateway (orpc/compat/serve.h) on a real
 * server: HTTP/1.1 requests over loopback to the legacy routes (with a
 * custom token verifier, the identity reaching the handler), NDJSON
 * streaming, Connect, /health, and orpc's own routed client in legacy mode
 * calling the server's legacy side (orpc talking to itself both ways).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>
#include <stdatomic.h>

#include <cmocka.h>

#include <orpc/compat/json.h>
#include <orpc/compat/router.h>
#include <orpc/compat/serve.h>
#include <orpc/orpc.h>

#include "opsconductor/auth/v1/auth.orpc.h"
#include "opsconductor/jobs/v1/jobs.orpc.h"

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

static orpc_status get_job(orpc_ctx *ctx,
                           const Opsconductor__Jobs__V1__GetJobRequest *req,
                           Opsconductor__Jobs__V1__GetJobResponse *resp,
                           void *ud)
{
    (void)ud;
    if (req->job_id != 7)
        return orpc_status_errorf(ORPC_NOT_FOUND, "Job %lld not found",
                                  (long long)req->job_id);
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
    snprintf(json, sizeof(json),
             "{\"job_id\":%lld,\"triggered_by\":\"%s\",\"scheduled\":%s}",
             (long long)req->job_id, who ? who : "",
             req->payload ? "true" : "false");
    return struct_into(ctx, json, &resp->result);
}

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

static orpc_status login(orpc_ctx *ctx,
                         const Opsconductor__Auth__V1__LoginRequest *req,
                         Opsconductor__Auth__V1__LoginResponse *resp, void *ud)
{
    (void)ctx;
    (void)ud;
    if (strcmp(req->username, "sleepy") == 0) /* holds a worker 1 s */
        usleep(1000000);
    if (strcmp(req->username, "scheduler-service") != 0 ||
        strcmp(req->password, "secret") != 0)
        return orpc_status_new(ORPC_UNAUTHENTICATED, "Invalid credentials");
    resp->access_token = "good";
    resp->token_type = "bearer";
    resp->_expires_in_case =
        OPSCONDUCTOR__AUTH__V1__LOGIN_RESPONSE___EXPIRES_IN_EXPIRES_IN;
    resp->expires_in = 3600;
    return ORPC_STATUS_OK;
}

static const Opsconductor__Auth__V1__AuthService_Handlers auth = {.login =
                                                                      login};

static atomic_int g_verifies;

static int verify(const char *token, char **identity, void *ud)
{
    (void)ud;
    atomic_fetch_add(&g_verifies, 1);
    if (strcmp(token, "good") != 0)
        return ORPC_EINVAL;
    *identity = strdup("legacy-service:scheduler-service");
    return 0;
}

static orpc_server *g_srv;
static orpc_legacy_serve *g_ls;
static int g_port;

static int setup(void **state)
{
    (void)state;
    orpc_server_opts so = {.plaintext = 1, .io_threads = 1};
    orpc_legacy_serve_opts lo = {.verify = verify};
    if (orpc_server_new(&g_srv, &so, NULL, NULL) != 0 ||
        opsconductor__jobs__v1__jobs_service__server__register(g_srv, &jobs,
                                                               NULL) != 0 ||
        opsconductor__auth__v1__auth_service__server__register(g_srv, &auth,
                                                               NULL) != 0 ||
        orpc_legacy_serve_new(&g_ls, &lo) != 0 ||
        orpc_legacy_serve_install(g_ls, g_srv) != 0 ||
        orpc_server_listen(g_srv, "127.0.0.1:0", &g_port, NULL) != 0 ||
        orpc_server_start(g_srv) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    orpc_server_shutdown(g_srv, 100);
    orpc_server_wait(g_srv);
    orpc_server_free(g_srv);
    orpc_legacy_serve_free(g_ls);
    return 0;
}

/* One request on its own connection (Connection: close); the whole reply
 * into |out| (NUL-terminated); its status. */
static int http(const char *req, char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)g_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    size_t n = strlen(req), off = 0;
    while (off < n) {
        ssize_t w = write(fd, req + off, n - off);
        assert_true(w > 0);
        off += (size_t)w;
    }
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, out + len, cap - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        assert_true(len < cap - 1);
    }
    close(fd);
    out[len] = '\0';
    int status = 0;
    assert_int_equal(sscanf(out, "HTTP/1.1 %d", &status), 1);
    return status;
}

static const char *body_of(const char *reply)
{
    const char *b = strstr(reply, "\r\n\r\n");
    assert_non_null(b);
    return b + 4;
}

static void test_legacy_routes(void **state)
{
    (void)state;
    char r[8192];
    assert_int_equal(http("GET /jobs/7 HTTP/1.1\r\nHost: x\r\nAuthorization: "
                          "Bearer good\r\nConnection: close\r\n\r\n",
                          r, sizeof(r)),
                     200);
    assert_non_null(strcasestr(r, "content-type: application/json"));
    assert_string_equal(body_of(r),
                        "{\"id\":7,\"name\":\"backup\",\"owner\":null}");
    /* a handler's NOT_FOUND */
    assert_int_equal(http("GET /jobs/9 HTTP/1.1\r\nHost: x\r\nAuthorization: "
                          "Bearer good\r\nConnection: close\r\n\r\n",
                          r, sizeof(r)),
                     404);
    assert_string_equal(body_of(r), "{\"detail\":\"Job 9 not found\"}");
    assert_non_null(strcasestr(r, "grpc-status: 5"));
    /* the token's identity reaches the handler */
    assert_int_equal(
        http("POST /jobs/3/run HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
             "good\r\nContent-Type: application/json\r\nContent-Length: 18\r\n"
             "Connection: close\r\n\r\n{\"scheduled\":true}",
             r, sizeof(r)),
        200);
    assert_string_equal(body_of(r),
                        "{\"job_id\":3,\"triggered_by\":\"legacy-service:"
                        "scheduler-service\",\"scheduled\":true}");
    /* refusals before the handler */
    assert_int_equal(http("GET /jobs/7 HTTP/1.1\r\nHost: x\r\nConnection: "
                          "close\r\n\r\n",
                          r, sizeof(r)),
                     401);
    assert_string_equal(body_of(r), "{\"detail\":\"Not authenticated\"}");
    assert_non_null(strcasestr(r, "www-authenticate: Bearer"));
    assert_int_equal(http("DELETE /jobs/7 HTTP/1.1\r\nHost: x\r\nConnection: "
                          "close\r\n\r\n",
                          r, sizeof(r)),
                     405);
    assert_non_null(strcasestr(r, "allow: GET"));
    assert_int_equal(http("GET /jobs/%2e%2e/users/1 HTTP/1.1\r\nHost: x\r\n"
                          "Connection: close\r\n\r\n",
                          r, sizeof(r)),
                     400);
    assert_int_equal(http("GET /nope HTTP/1.1\r\nHost: x\r\nConnection: "
                          "close\r\n\r\n",
                          r, sizeof(r)),
                     404);
    assert_string_equal(body_of(r), "{\"detail\":\"Not Found\"}");
}

static void test_ndjson(void **state)
{
    (void)state;
    char r[8192];
    assert_int_equal(http("GET /jobs/8/events HTTP/1.1\r\nHost: x\r\n"
                          "Authorization: Bearer good\r\nConnection: close\r\n"
                          "\r\n",
                          r, sizeof(r)),
                     200);
    assert_non_null(strcasestr(r, "content-type: application/x-ndjson"));
    assert_non_null(strstr(r, "{\"job_id\":8,\"status\":\"running\"}\n"));
    assert_non_null(strstr(r, "{\"job_id\":8,\"status\":\"failed\"}\n"));
    assert_non_null(strstr(r, "{\"error\":{\"code\":500,\"status\":"
                              "\"DATA_LOSS\",\"detail\":\"lost the log\"}}\n"));
}

static void test_connect_and_health(void **state)
{
    (void)state;
    char r[8192];
    assert_int_equal(
        http("POST /opsconductor.jobs.v1.JobsService/GetJob HTTP/1.1\r\n"
             "Host: x\r\nContent-Type: application/json\r\n"
             "Connect-Protocol-Version: 1\r\nContent-Length: 13\r\n"
             "Connection: close\r\n\r\n{\"jobId\":\"7\"}",
             r, sizeof(r)),
        200);
    assert_string_equal(
        body_of(r), "{\"job\":{\"id\":7,\"name\":\"backup\",\"owner\":null}}");
    assert_int_equal(
        http("GET /opsconductor.jobs.v1.JobsService/GetJob?encoding=json&"
             "message=%7B%22jobId%22%3A9%7D HTTP/1.1\r\nHost: x\r\n"
             "Connection: close\r\n\r\n",
             r, sizeof(r)),
        404);
    assert_string_equal(
        body_of(r), "{\"code\":\"not_found\",\"message\":\"Job 9 not found\"}");
    assert_int_equal(http("GET /health HTTP/1.1\r\nHost: x\r\nConnection: "
                          "close\r\n\r\n",
                          r, sizeof(r)),
                     200);
    assert_string_equal(body_of(r), "{\"status\":\"healthy\"}");
}

/* orpc's routed client in legacy mode against the server's legacy side:
 * it logs in (POST /login, legacy_no_auth), sends the token, and reads the
 * replies and errors back to the same messages and codes. */
static void test_orpc_to_itself(void **state)
{
    (void)state;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", g_port);
    orpc_client *c = NULL;
    orpc_routed_opts o = {.legacy_url = url,
                          .auth_url = url,
                          .username = "scheduler-service",
                          .password = "secret"};
    orpc_error_detail d = {0};
    assert_int_equal(
        orpc_routed_client_new(
            &c, &opsconductor__jobs__v1__jobs_service__orpc_desc, &o, &d),
        0);
    Opsconductor__Jobs__V1__GetJobRequest g =
        OPSCONDUCTOR__JOBS__V1__GET_JOB_REQUEST__INIT;
    Opsconductor__Jobs__V1__GetJobResponse *job = NULL;
    g.job_id = 7;
    orpc_status st = opsconductor__jobs__v1__jobs_service__client__get_job(
        c, &g, &job, NULL);
    assert_int_equal(st.code, ORPC_OK);
    char *json = NULL;
    assert_int_equal(orpc_json_encode(&json, NULL,
                                      &google__protobuf__struct__orpc_info,
                                      &job->job->base, NULL, NULL),
                     0);
    assert_string_equal(json, "{\"id\":7,\"name\":\"backup\",\"owner\":null}");
    free(json);
    protobuf_c_message_free_unpacked(&job->base, NULL);
    /* a handler's error comes back as its code and message */
    g.job_id = 9;
    job = NULL;
    st = opsconductor__jobs__v1__jobs_service__client__get_job(c, &g, &job,
                                                               NULL);
    assert_int_equal(st.code, ORPC_NOT_FOUND);
    assert_string_equal(st.message, "Job 9 not found");
    orpc_status_clear(&st);
    /* the identity the server saw is the token's */
    Opsconductor__Jobs__V1__RunJobRequest rr =
        OPSCONDUCTOR__JOBS__V1__RUN_JOB_REQUEST__INIT;
    Opsconductor__Jobs__V1__RunJobResponse *res = NULL;
    rr.job_id = 4;
    st = opsconductor__jobs__v1__jobs_service__client__run_job(c, &rr, &res,
                                                               NULL);
    assert_int_equal(st.code, ORPC_OK);
    assert_int_equal(orpc_json_encode(&json, NULL,
                                      &google__protobuf__struct__orpc_info,
                                      &res->result->base, NULL, NULL),
                     0);
    assert_non_null(strstr(json, "legacy-service:scheduler-service"));
    free(json);
    protobuf_c_message_free_unpacked(&res->base, NULL);
    orpc_client_free(c);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *sleepy_login(void *arg)
{
    char r[4096];
    (void)arg;
    http("POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: "
         "application/json\r\nContent-Length: 36\r\nConnection: "
         "close\r\n\r\n{\"username\":\"sleepy\",\"password\":\"x\"}",
         r, sizeof(r));
    return NULL;
}

/* The gateway answers on the IO thread when nothing blocks: with the one
 * worker held by a slow (blocking) Login, a request whose token is cached
 * is still answered at once by the non-blocking JobsService, while a token
 * the verifier must judge (a cache miss) waits for the worker. */
static void test_cached_token_inline_miss_on_worker(void **state)
{
    (void)state;
    orpc_server *srv = NULL;
    orpc_legacy_serve *ls = NULL;
    int port = 0, port0 = g_port;
    orpc_server_opts so = {.plaintext = 1,
                           .io_threads = 1,
                           .worker_threads = 1,
                           .max_worker_threads = 1};
    orpc_service_opts nb = {.nonblocking = 1};
    orpc_legacy_serve_opts lo = {.verify = verify};
    assert_int_equal(orpc_server_new(&srv, &so, NULL, NULL), 0);
    assert_int_equal(
        opsconductor__jobs__v1__jobs_service__server__register_with_opts(
            srv, &jobs, NULL, &nb),
        0);
    assert_int_equal(opsconductor__auth__v1__auth_service__server__register(
                         srv, &auth, NULL),
                     0);
    assert_int_equal(orpc_legacy_serve_new(&ls, &lo), 0);
    assert_int_equal(orpc_legacy_serve_install(ls, srv), 0);
    assert_int_equal(orpc_server_listen(srv, "127.0.0.1:0", &port, NULL), 0);
    assert_int_equal(orpc_server_start(srv), 0);
    g_port = port;
    char r[8192];
    const char *get = "GET /jobs/7 HTTP/1.1\r\nHost: x\r\nAuthorization: "
                      "Bearer good\r\nConnection: close\r\n\r\n";
    /* first: a cache miss, verified on a worker, then cached */
    int v0 = atomic_load(&g_verifies);
    assert_int_equal(http(get, r, sizeof(r)), 200);
    assert_int_equal(atomic_load(&g_verifies), v0 + 1);
    /* the worker busy for 1 s */
    pthread_t t;
    int64_t t0 = now_ms();
    assert_int_equal(pthread_create(&t, NULL, sleepy_login, NULL), 0);
    usleep(150000);
    assert_int_equal(http(get, r, sizeof(r)), 200);
    assert_string_equal(body_of(r),
                        "{\"id\":7,\"name\":\"backup\",\"owner\":null}");
    int64_t inline_ms = now_ms() - t0;
    assert_int_equal(atomic_load(&g_verifies), v0 + 1); /* cached */
    /* a token not cached: the verifier runs, on the worker, after Login */
    assert_int_equal(http("GET /jobs/7 HTTP/1.1\r\nHost: x\r\n"
                          "Authorization: Bearer other\r\n"
                          "Connection: close\r\n\r\n",
                          r, sizeof(r)),
                     401);
    int64_t miss_ms = now_ms() - t0;
    assert_int_equal(atomic_load(&g_verifies), v0 + 2);
    pthread_join(t, NULL);
    assert_true(inline_ms < 800);
    assert_true(miss_ms >= 900);
    g_port = port0;
    orpc_server_shutdown(srv, 100);
    orpc_server_wait(srv);
    orpc_server_free(srv);
    orpc_legacy_serve_free(ls);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_legacy_routes),
        cmocka_unit_test(test_ndjson),
        cmocka_unit_test(test_connect_and_health),
        cmocka_unit_test(test_orpc_to_itself),
        cmocka_unit_test(test_cached_token_inline_miss_on_worker),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
