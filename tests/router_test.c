/*
 * router_test.c — routed clients end to end: the generated stubs of the
 * five OpsConductor services reaching the legacy fixture
 * (tests/legacy/legacy_server.py, started here on a loopback port) in
 * `legacy` mode, a real orpc server in `grpc` mode, and the legacy side in
 * `fallback` mode when gRPC is down or does not implement the method; the
 * routing table's file format, environment overrides and errors.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include <orpc/compat/json.h>
#include <orpc/compat/router.h>
#include <orpc/observe.h>
#include <orpc/orpc.h>

#include "opsconductor/auth/v1/auth.orpc.h"
#include "opsconductor/credentials/v1/credentials.orpc.h"
#include "opsconductor/jobs/v1/jobs.orpc.h"
#include "opsconductor/notification/v1/notification.orpc.h"
#include "opsconductor/user/v1/user.orpc.h"

#ifndef LEGACY_SERVER
#error "LEGACY_SERVER must name tests/legacy/legacy_server.py"
#endif

static pid_t g_fixture;
static char g_url[64];
static char g_dir[64];

static int group_setup(void **state)
{
    (void)state;
    int fds[2];
    snprintf(g_dir, sizeof(g_dir), "/tmp/orpc-router-XXXXXX");
    if (mkdtemp(g_dir) == NULL || pipe(fds) != 0)
        return -1;
    g_fixture = fork();
    if (g_fixture < 0)
        return -1;
    if (g_fixture == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        execl("/usr/bin/python3", "python3", LEGACY_SERVER, "--port=0",
              (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char line[128];
    int port = 0;
    if (f && fgets(line, sizeof(line), f))
        sscanf(line, "listening on %d", &port);
    if (f)
        fclose(f);
    if (port <= 0)
        return -1;
    snprintf(g_url, sizeof(g_url), "http://127.0.0.1:%d", port);
    if (setenv("AUTH_SERVICE_URL", g_url, 1) != 0 ||
        setenv("SCHEDULER_SERVICE_USERNAME", "scheduler-service", 1) != 0 ||
        setenv("SCHEDULER_SERVICE_PASSWORD", "scheduler-secret", 1) != 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    kill(g_fixture, SIGTERM);
    waitpid(g_fixture, NULL, 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static orpc_client *legacy_client(const orpc_service_desc *s,
                                  orpc_routes *routes, orpc_channel *ch)
{
    orpc_client *c = NULL;
    orpc_routed_opts o = {.routes = routes,
                          .channel = ch,
                          .legacy_url = g_url,
                          .identity = "scheduler-service"};
    int rc = orpc_routed_client_new(&c, s, &o, NULL);
    if (rc != 0)
        fail_msg("routed client: %s", orpc_strerror(rc));
    return c;
}

static void test_every_route_in_legacy_mode(void **state)
{
    (void)state;
    orpc_status st;
    /* auth */
    orpc_client *auth = legacy_client(
        &opsconductor__auth__v1__auth_service__orpc_desc, NULL, NULL);
    Opsconductor__Auth__V1__LoginRequest lr =
        OPSCONDUCTOR__AUTH__V1__LOGIN_REQUEST__INIT;
    lr.username = "test-user";
    lr.password = "test-password";
    Opsconductor__Auth__V1__LoginResponse *login = NULL;
    st = opsconductor__auth__v1__auth_service__client__login(auth, &lr, &login,
                                                             NULL);
    assert_int_equal(st.code, ORPC_OK);
    assert_true(strlen(login->access_token) > 0);
    Opsconductor__Auth__V1__VerifyRequest vr =
        OPSCONDUCTOR__AUTH__V1__VERIFY_REQUEST__INIT;
    vr.token = login->access_token;
    Opsconductor__Auth__V1__VerifyResponse *ver = NULL;
    st = opsconductor__auth__v1__auth_service__client__verify(auth, &vr, &ver,
                                                              NULL);
    assert_int_equal(st.code, ORPC_OK);
    assert_non_null(ver->user);
    opsconductor__auth__v1__verify_response__free_unpacked(ver, NULL);
    vr.token = "not-a-token";
    st = opsconductor__auth__v1__auth_service__client__verify(auth, &vr, &ver,
                                                              NULL);
    assert_int_equal(st.code, ORPC_UNAUTHENTICATED);
    orpc_status_clear(&st);
    lr.password = "wrong";
    opsconductor__auth__v1__login_response__free_unpacked(login, NULL);
    st = opsconductor__auth__v1__auth_service__client__login(auth, &lr, &login,
                                                             NULL);
    assert_int_equal(st.code, ORPC_UNAUTHENTICATED);
    assert_null(strstr(st.message ? st.message : "", "wrong"));
    orpc_status_clear(&st);
    orpc_client_free(auth);

    /* jobs */
    orpc_client *jobs = legacy_client(
        &opsconductor__jobs__v1__jobs_service__orpc_desc, NULL, NULL);
    Opsconductor__Jobs__V1__GetJobRequest g =
        OPSCONDUCTOR__JOBS__V1__GET_JOB_REQUEST__INIT;
    g.job_id = 7;
    Opsconductor__Jobs__V1__GetJobResponse *job = NULL;
    st = opsconductor__jobs__v1__jobs_service__client__get_job(jobs, &g, &job,
                                                               NULL);
    assert_int_equal(st.code, ORPC_OK);
    assert_non_null(job->job);
    assert_true(job->job->n_fields > 0);
    opsconductor__jobs__v1__get_job_response__free_unpacked(job, NULL);
    g.job_id = 100000; /* no such job: the service's own 404 */
    st = opsconductor__jobs__v1__jobs_service__client__get_job(jobs, &g, &job,
                                                               NULL);
    assert_int_equal(st.code, ORPC_NOT_FOUND);
    orpc_status_clear(&st);
    Opsconductor__Jobs__V1__GetJobStatusRequest gs =
        OPSCONDUCTOR__JOBS__V1__GET_JOB_STATUS_REQUEST__INIT;
    gs.job_id = 7;
    Opsconductor__Jobs__V1__GetJobStatusResponse *js = NULL;
    st = opsconductor__jobs__v1__jobs_service__client__get_job_status(
        jobs, &gs, &js, NULL);
    assert_int_equal(st.code, ORPC_OK);
    opsconductor__jobs__v1__get_job_status_response__free_unpacked(js, NULL);
    Opsconductor__Jobs__V1__RunJobRequest run =
        OPSCONDUCTOR__JOBS__V1__RUN_JOB_REQUEST__INIT;
    run.job_id = 7;
    ProtobufCMessage *payload = NULL;
    assert_int_equal(
        orpc_json_decode(&payload, &google__protobuf__struct__orpc_info,
                         "{\"scheduled\": true}", 19, NULL, NULL, NULL),
        0);
    run.payload = (Google__Protobuf__Struct *)payload;
    Opsconductor__Jobs__V1__RunJobResponse *rr = NULL;
    st = opsconductor__jobs__v1__jobs_service__client__run_job(jobs, &run, &rr,
                                                               NULL);
    assert_int_equal(st.code, ORPC_OK);
    assert_non_null(rr->result);
    opsconductor__jobs__v1__run_job_response__free_unpacked(rr, NULL);
    protobuf_c_message_free_unpacked(payload, NULL);
    orpc_client_free(jobs);

    /* notification: a validation error from the service is
     * INVALID_ARGUMENT with its detail */
    orpc_client *notif = legacy_client(
        &opsconductor__notification__v1__notification_service__orpc_desc, NULL,
        NULL);
    Opsconductor__Notification__V1__SendNotificationRequest n =
        OPSCONDUCTOR__NOTIFICATION__V1__SEND_NOTIFICATION_REQUEST__INIT;
    n.type =
        OPSCONDUCTOR__NOTIFICATION__V1__NOTIFICATION_TYPE__NOTIFICATION_TYPE_EMAIL;
    n.destination = "ops@example.org";
    const char *email = "{\"subject\": \"s\", \"body\": \"b\"}";
    assert_int_equal(orpc_json_decode(&payload,
                                      &google__protobuf__struct__orpc_info,
                                      email, strlen(email), NULL, NULL, NULL),
                     0);
    n.payload = (Google__Protobuf__Struct *)payload;
    Opsconductor__Notification__V1__SendNotificationResponse *nr = NULL;
    st =
        opsconductor__notification__v1__notification_service__client__send_notification(
            notif, &n, &nr, NULL);
    assert_int_equal(st.code, ORPC_OK);
    opsconductor__notification__v1__send_notification_response__free_unpacked(
        nr, NULL);
    protobuf_c_message_free_unpacked(payload, NULL);
    n.payload = NULL; /* an e-mail without subject and body */
    st =
        opsconductor__notification__v1__notification_service__client__send_notification(
            notif, &n, &nr, NULL);
    assert_int_equal(st.code, ORPC_INVALID_ARGUMENT);
    orpc_status_clear(&st);
    orpc_client_free(notif);

    /* credentials and users */
    orpc_client *cred = legacy_client(
        &opsconductor__credentials__v1__credentials_service__orpc_desc, NULL,
        NULL);
    Opsconductor__Credentials__V1__ListTargetCredentialsRequest lt =
        OPSCONDUCTOR__CREDENTIALS__V1__LIST_TARGET_CREDENTIALS_REQUEST__INIT;
    lt.target_id = 2;
    Opsconductor__Credentials__V1__ListTargetCredentialsResponse *ltr = NULL;
    st =
        opsconductor__credentials__v1__credentials_service__client__list_target_credentials(
            cred, &lt, &ltr, NULL);
    assert_int_equal(st.code, ORPC_OK);
    opsconductor__credentials__v1__list_target_credentials_response__free_unpacked(
        ltr, NULL);
    Opsconductor__Credentials__V1__GetCredentialRequest gc =
        OPSCONDUCTOR__CREDENTIALS__V1__GET_CREDENTIAL_REQUEST__INIT;
    gc.credential_id = 3;
    Opsconductor__Credentials__V1__GetCredentialResponse *gcr = NULL;
    st =
        opsconductor__credentials__v1__credentials_service__client__get_credential(
            cred, &gc, &gcr, NULL);
    assert_int_equal(st.code, ORPC_OK);
    opsconductor__credentials__v1__get_credential_response__free_unpacked(gcr,
                                                                          NULL);
    orpc_client_free(cred);
    orpc_client *users = legacy_client(
        &opsconductor__user__v1__user_service__orpc_desc, NULL, NULL);
    Opsconductor__User__V1__GetUserPreferencesRequest up =
        OPSCONDUCTOR__USER__V1__GET_USER_PREFERENCES_REQUEST__INIT;
    up.user_id = 9;
    Opsconductor__User__V1__GetUserPreferencesResponse *upr = NULL;
    st = opsconductor__user__v1__user_service__client__get_user_preferences(
        users, &up, &upr, NULL);
    assert_int_equal(st.code, ORPC_OK);
    opsconductor__user__v1__get_user_preferences_response__free_unpacked(upr,
                                                                         NULL);
    orpc_client_free(users);
}

static void test_no_credentials_refused(void **state)
{
    (void)state;
    orpc_client *c = NULL;
    orpc_error_detail detail = {0};
    orpc_routed_opts o = {.legacy_url = g_url, .identity = "nobody-service"};
    assert_int_equal(
        orpc_routed_client_new(
            &c, &opsconductor__jobs__v1__jobs_service__orpc_desc, &o, &detail),
        ORPC_ECONFIG);
    assert_null(c);
    assert_int_equal(detail.code, ORPC_ECONFIG);
    assert_string_equal(detail.message,
                        "opsconductor.jobs.v1.JobsService: no credentials for "
                        "legacy calls: set NOBODY_SERVICE_USERNAME and "
                        "NOBODY_SERVICE_PASSWORD (identity nobody-service), "
                        "or orpc_routed_opts.username and .password");
}

/* The gRPC side: a JobsService whose jobs are all called "from-grpc". */
static orpc_status
grpc_get_job(orpc_ctx *ctx, const Opsconductor__Jobs__V1__GetJobRequest *req,
             Opsconductor__Jobs__V1__GetJobResponse *resp, void *ud)
{
    (void)ud;
    ProtobufCMessage *s = NULL;
    orpc_error_detail jd;
    if (orpc_json_decode(&s, &google__protobuf__struct__orpc_info,
                         "{\"name\": \"from-grpc\"}", 21, NULL,
                         orpc_arena_allocator(orpc_ctx_arena(ctx)), &jd) != 0)
        return orpc_status_new(ORPC_INTERNAL, jd.message);
    (void)req;
    resp->job = (Google__Protobuf__Struct *)s;
    return ORPC_STATUS_OK;
}

/* The gRPC side of GetJobStatus agrees with the legacy one on job 7 but
 * for updated_at. */
static orpc_status grpc_get_job_status(
    orpc_ctx *ctx, const Opsconductor__Jobs__V1__GetJobStatusRequest *req,
    Opsconductor__Jobs__V1__GetJobStatusResponse *resp, void *ud)
{
    (void)ud;
    (void)req;
    const char *j = "{\"job_id\": 7, \"status\": \"failed\", "
                    "\"updated_at\": \"2030-01-01T00:00:00Z\"}";
    ProtobufCMessage *s = NULL;
    orpc_error_detail jd;
    if (orpc_json_decode(&s, &google__protobuf__struct__orpc_info, j, strlen(j),
                         NULL, orpc_arena_allocator(orpc_ctx_arena(ctx)),
                         &jd) != 0)
        return orpc_status_new(ORPC_INTERNAL, jd.message);
    resp->status = (Google__Protobuf__Struct *)s;
    return ORPC_STATUS_OK;
}

static const Opsconductor__Jobs__V1__JobsService_Handlers grpc_jobs = {
    .get_job = grpc_get_job, .get_job_status = grpc_get_job_status};

/* A gRPC JobsService (grpc_jobs) on an ephemeral loopback port, and a
 * plaintext channel to it. */
static void start_grpc_jobs(orpc_server **srv, orpc_channel **ch)
{
    int port;
    char target[64];
    orpc_server_opts so = {.plaintext = 1, .io_threads = 1};
    orpc_channel_opts co = {.plaintext = 1};
    assert_int_equal(orpc_server_new(srv, &so, NULL, NULL), 0);
    assert_int_equal(opsconductor__jobs__v1__jobs_service__server__register(
                         *srv, &grpc_jobs, NULL),
                     0);
    assert_int_equal(orpc_server_listen(*srv, "127.0.0.1:0", &port, NULL), 0);
    assert_int_equal(orpc_server_start(*srv), 0);
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    assert_int_equal(orpc_channel_new(ch, target, &co, NULL, NULL), 0);
}

static void stop_server(orpc_server *srv)
{
    assert_int_equal(orpc_server_shutdown(srv, 100), 0);
    assert_int_equal(orpc_server_wait(srv), 0);
    orpc_server_free(srv);
}

static orpc_served_by g_served; /* the side that served job_name()'s call */

static const char *job_name(orpc_client *c, orpc_code *code)
{
    static char name[64];
    Opsconductor__Jobs__V1__GetJobRequest g =
        OPSCONDUCTOR__JOBS__V1__GET_JOB_REQUEST__INIT;
    g.job_id = 7;
    Opsconductor__Jobs__V1__GetJobResponse *job = NULL;
    g_served = (orpc_served_by)-1;
    orpc_call_opts o = {.timeout_ms = 5000, .served_by = &g_served};
    orpc_status st =
        opsconductor__jobs__v1__jobs_service__client__get_job(c, &g, &job, &o);
    *code = st.code;
    name[0] = '\0';
    if (st.code == ORPC_OK && job->job) {
        for (size_t i = 0; i < job->job->n_fields; i++)
            if (strcmp(job->job->fields[i]->key, "name") == 0 &&
                job->job->fields[i]->value->kind_case ==
                    GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE)
                snprintf(name, sizeof(name), "%s",
                         job->job->fields[i]->value->string_value);
    }
    opsconductor__jobs__v1__get_job_response__free_unpacked(job, NULL);
    orpc_status_clear(&st);
    return name;
}

/* GetJobStatus of job 7 through |c|: the call's status code. */
static orpc_code job_status_code(orpc_client *c)
{
    Opsconductor__Jobs__V1__GetJobStatusRequest gs =
        OPSCONDUCTOR__JOBS__V1__GET_JOB_STATUS_REQUEST__INIT;
    gs.job_id = 7;
    Opsconductor__Jobs__V1__GetJobStatusResponse *js = NULL;
    orpc_status st =
        opsconductor__jobs__v1__jobs_service__client__get_job_status(c, &gs,
                                                                     &js, NULL);
    orpc_code code = st.code;
    orpc_status_clear(&st);
    opsconductor__jobs__v1__get_job_status_response__free_unpacked(js, NULL);
    return code;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static void test_modes(void **state)
{
    (void)state;
    orpc_server *srv;
    orpc_channel *ch;
    start_grpc_jobs(&srv, &ch);

    char file[128];
    orpc_error_detail detail = {0};
    snprintf(file, sizeof(file), "%s/routes.conf", g_dir);
    orpc_routes *routes;
    orpc_code code;
    /* legacy by default */
    write_file(file, "# nothing routed yet\n");
    assert_int_equal(orpc_routes_load(&routes, file, &detail), 0);
    orpc_client *c = legacy_client(
        &opsconductor__jobs__v1__jobs_service__orpc_desc, routes, ch);
    assert_string_not_equal(job_name(c, &code), "from-grpc");
    assert_int_equal(code, ORPC_OK);
    assert_int_equal(g_served, ORPC_SERVED_LEGACY);
    /* WatchJob has no legacy endpoint: gRPC whatever the table says */
    assert_int_equal(
        orpc_routes_mode(
            routes, opsconductor__jobs__v1__jobs_service__method__watch_job),
        ORPC_ROUTE_GRPC);
    orpc_client_free(c);
    orpc_routes_unref(routes);
    /* one method to gRPC, by the file */
    write_file(file, "opsconductor.jobs.v1.JobsService/GetJob = grpc\n");
    assert_int_equal(orpc_routes_load(&routes, file, &detail), 0);
    c = legacy_client(&opsconductor__jobs__v1__jobs_service__orpc_desc, routes,
                      ch);
    assert_string_equal(job_name(c, &code), "from-grpc");
    assert_int_equal(g_served, ORPC_SERVED_GRPC);
    /* a reload moves it back for calls that start afterwards */
    write_file(file, "opsconductor.jobs.v1.JobsService/GetJob = legacy\n");
    assert_int_equal(orpc_routes_reload(routes, &detail), 0);
    assert_string_not_equal(job_name(c, &code), "from-grpc");
    assert_int_equal(g_served, ORPC_SERVED_LEGACY);
    /* a broken file keeps the table as it was */
    write_file(file, "opsconductor.jobs.v1.JobsService/GetJob = grpc\n"
                     "oops\n");
    assert_int_equal(orpc_routes_reload(routes, &detail), ORPC_ECONFIG);
    assert_non_null(
        strstr(detail.message, ":2: \"oops\": expected `key = mode`"));
    assert_string_not_equal(job_name(c, &code), "from-grpc");
    assert_int_equal(g_served, ORPC_SERVED_LEGACY);
    orpc_route_stats rs;
    assert_int_equal(
        orpc_routes_stats(
            routes, opsconductor__jobs__v1__jobs_service__method__get_job, &rs),
        0);
    assert_int_equal(rs.grpc, 1);
    assert_int_equal(rs.legacy, 2);
    assert_int_equal(rs.fallbacks, 0);
    orpc_client_free(c);
    orpc_routes_unref(routes);
    /* the environment overrides the file, method over service */
    write_file(file, "opsconductor.jobs.v1.JobsService/GetJob = grpc\n");
    setenv("ORPC_ROUTE_JOBS", "grpc", 1);
    setenv("ORPC_ROUTE_JOBS_GET_JOB", "legacy", 1);
    assert_int_equal(orpc_routes_load(&routes, file, &detail), 0);
    assert_int_equal(
        orpc_routes_mode(routes,
                         opsconductor__jobs__v1__jobs_service__method__get_job),
        ORPC_ROUTE_LEGACY);
    assert_int_equal(
        orpc_routes_mode(routes,
                         opsconductor__jobs__v1__jobs_service__method__run_job),
        ORPC_ROUTE_GRPC);
    orpc_routes_unref(routes);
    unsetenv("ORPC_ROUTE_JOBS");
    unsetenv("ORPC_ROUTE_JOBS_GET_JOB");
    /* fallback: gRPC answers when it can... */
    write_file(file, "* = fallback\n");
    assert_int_equal(orpc_routes_load(&routes, file, &detail), 0);
    c = legacy_client(&opsconductor__jobs__v1__jobs_service__orpc_desc, routes,
                      ch);
    assert_string_equal(job_name(c, &code), "from-grpc");
    assert_int_equal(g_served, ORPC_SERVED_GRPC);
    /* ...the legacy side when gRPC does not implement the method */
    assert_int_equal(job_status_code(c), ORPC_OK);
    orpc_client_free(c);
    /* ...and when the gRPC server is down */
    stop_server(srv);
    c = legacy_client(&opsconductor__jobs__v1__jobs_service__orpc_desc, routes,
                      ch);
    const char *name = job_name(c, &code);
    assert_int_equal(code, ORPC_OK);
    assert_string_not_equal(name, "from-grpc");
    assert_int_equal(g_served, ORPC_SERVED_LEGACY);
    assert_int_equal(
        orpc_routes_stats(
            routes, opsconductor__jobs__v1__jobs_service__method__get_job, &rs),
        0);
    assert_int_equal(rs.grpc, 1);
    assert_int_equal(rs.fallbacks, 1);
    assert_int_equal(rs.legacy, 1);
    orpc_client_free(c);
    orpc_routes_unref(routes);
    orpc_channel_unref(ch);
    /* table errors name the line */
    write_file(file, "* = legacy\nfoo.Bar = sideways\n");
    assert_int_equal(orpc_routes_load(&routes, file, &detail), ORPC_ECONFIG);
    assert_non_null(
        strstr(detail.message, ":2: foo.Bar: unknown mode \"sideways\""));
    write_file(file, "no equals sign\n");
    assert_int_equal(orpc_routes_load(&routes, file, &detail), ORPC_ECONFIG);
    assert_non_null(strstr(detail.message, ":1:"));
}

/* ---- a gRPC server that fails after reading the request ---- */

/* What the raw peer does once a request's HEADERS frame has arrived. */
typedef enum {
    DROP_AFTER_REQUEST, /* read the whole request, then close: it "ran" */
    REFUSE_WITH_GOAWAY  /* GOAWAY with last stream 0: nothing processed */
} peer_mode;

typedef struct raw_peer {
    int fd; /* listening */
    int port;
    peer_mode mode;
    int requests; /* HEADERS frames seen */
    pthread_t thread;
} raw_peer;

/* Reads exactly |n| bytes within 5 s; 0, or -1 (closed, timed out). */
static int read_full(int fd, uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        struct timeval tv = {.tv_sec = 5};
        fd_set rs;
        FD_ZERO(&rs);
        FD_SET(fd, &rs);
        if (select(fd + 1, &rs, NULL, NULL, &tv) <= 0)
            return -1;
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

/* Serves up to 4 connections (bounded): SETTINGS, then frames until the
 * request is in, then what |mode| says. */
static void *raw_peer_main(void *arg)
{
    raw_peer *p = arg;
    static const uint8_t settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
    static const uint8_t settings_ack[9] = {0, 0, 0, 4, 1, 0, 0, 0, 0};
    /* GOAWAY: last stream 0, NO_ERROR: every stream is unprocessed */
    static const uint8_t goaway[17] = {0, 0, 8, 7, 0, 0, 0, 0, 0,
                                       0, 0, 0, 0, 0, 0, 0, 0};
    for (int n = 0; n < 4; n++) {
        struct timeval tv = {.tv_sec = 10};
        fd_set rs;
        FD_ZERO(&rs);
        FD_SET(p->fd, &rs);
        if (select(p->fd + 1, &rs, NULL, NULL, &tv) <= 0)
            break;
        int c = accept(p->fd, NULL, NULL);
        if (c < 0)
            break;
        uint8_t buf[16384 + 24];
        int ok = write(c, settings, sizeof settings) == sizeof settings &&
                 read_full(c, buf, 24) == 0; /* the client preface */
        /* frames until the request's END_STREAM (bounded by 64 frames) */
        for (int f = 0; ok && f < 64; f++) {
            if (read_full(c, buf, 9) != 0) {
                ok = 0;
                break;
            }
            size_t len = (size_t)buf[0] << 16 | (size_t)buf[1] << 8 | buf[2];
            uint8_t type = buf[3], flags = buf[4];
            if (len > 16384 || (len > 0 && read_full(c, buf, len) != 0)) {
                ok = 0;
                break;
            }
            if (type == 4 && !(flags & 1) && write(c, settings_ack, 9) != 9) {
                ok = 0;
                break;
            }
            if (type == 1) { /* HEADERS: a request */
                __atomic_add_fetch(&p->requests, 1, __ATOMIC_SEQ_CST);
                if (p->mode == REFUSE_WITH_GOAWAY) {
                    ok = write(c, goaway, sizeof goaway) == sizeof goaway;
                    /* a graceful close: unread bytes would turn it into a
                     * reset, which may overtake the GOAWAY */
                    shutdown(c, SHUT_WR);
                    for (int k = 0; k < 64 && read_full(c, buf, 1) == 0; k++)
                        ;
                    break;
                }
            }
            if ((type == 0 || type == 1) && (flags & 1))
                break; /* END_STREAM: the whole request is here */
        }
        close(c); /* the request was read: the connection drops */
    }
    return NULL;
}

static void raw_peer_start(raw_peer *p, peer_mode mode)
{
    memset(p, 0, sizeof *p);
    p->mode = mode;
    p->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(p->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    assert_int_equal(bind(p->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(p->fd, 8), 0);
    assert_int_equal(getsockname(p->fd, (struct sockaddr *)&a, &al), 0);
    p->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&p->thread, NULL, raw_peer_main, p), 0);
}

static void raw_peer_stop(raw_peer *p)
{
    shutdown(p->fd, SHUT_RDWR);
    pthread_join(p->thread, NULL);
    close(p->fd);
}

/* RunJob of job 7 through |c|: its code, the side and how far it got. */
static orpc_code run_job(orpc_client *c, orpc_served_by *by,
                         orpc_call_reach *reach)
{
    Opsconductor__Jobs__V1__RunJobRequest run =
        OPSCONDUCTOR__JOBS__V1__RUN_JOB_REQUEST__INIT;
    run.job_id = 7;
    Opsconductor__Jobs__V1__RunJobResponse *rr = NULL;
    *by = (orpc_served_by)-1;
    *reach = (orpc_call_reach)-1;
    orpc_call_opts o = {.timeout_ms = 5000, .served_by = by, .reached = reach};
    orpc_status st =
        opsconductor__jobs__v1__jobs_service__client__run_job(c, &run, &rr, &o);
    orpc_code code = st.code;
    if (rr != NULL)
        opsconductor__jobs__v1__run_job_response__free_unpacked(rr, NULL);
    orpc_status_clear(&st);
    return code;
}

/* Fallback sends to the legacy side only what provably ran nowhere: a
 * connection lost after RunJob's request went out is UNAVAILABLE, not a
 * second run; a refused stream, or a repeatable method, falls back. */
static void test_fallback_only_when_safe(void **state)
{
    (void)state;
    char file[128], target[64];
    orpc_error_detail detail = {0};
    snprintf(file, sizeof(file), "%s/routes.conf", g_dir);
    write_file(file, "* = fallback\n");
    orpc_routes *routes;
    assert_int_equal(orpc_routes_load(&routes, file, &detail), 0);

    raw_peer p;
    raw_peer_start(&p, DROP_AFTER_REQUEST);
    snprintf(target, sizeof target, "127.0.0.1:%d", p.port);
    orpc_channel *ch;
    assert_int_equal(orpc_channel_new(&ch, target,
                                      &(orpc_channel_opts){.plaintext = 1},
                                      NULL, NULL),
                     0);
    orpc_client *c = legacy_client(
        &opsconductor__jobs__v1__jobs_service__orpc_desc, routes, ch);
    orpc_served_by by;
    orpc_call_reach reach;
    /* RunJob reached the server, which then vanished: it may have run */
    assert_int_equal(run_job(c, &by, &reach), ORPC_UNAVAILABLE);
    assert_int_equal(by, ORPC_SERVED_GRPC);
    assert_int_equal(reach, ORPC_REACH_SENT);
    assert_int_equal(__atomic_load_n(&p.requests, __ATOMIC_SEQ_CST), 1);
    /* GetJob is a GET: doing it twice is doing it once, so it falls back */
    orpc_code code;
    (void)job_name(c, &code);
    assert_int_equal(code, ORPC_OK);
    assert_int_equal(g_served, ORPC_SERVED_LEGACY);
    orpc_route_stats rs;
    assert_int_equal(
        orpc_routes_stats(
            routes, opsconductor__jobs__v1__jobs_service__method__run_job, &rs),
        0);
    assert_int_equal(rs.fallbacks, 0);
    assert_int_equal(rs.grpc, 1);
    orpc_client_free(c);
    orpc_channel_unref(ch);
    raw_peer_stop(&p);

    /* A server that refuses the stream unprocessed (GOAWAY, last stream 0):
     * RunJob ran nowhere, so the legacy side may run it */
    raw_peer_start(&p, REFUSE_WITH_GOAWAY);
    snprintf(target, sizeof target, "127.0.0.1:%d", p.port);
    assert_int_equal(orpc_channel_new(&ch, target,
                                      &(orpc_channel_opts){.plaintext = 1},
                                      NULL, NULL),
                     0);
    c = legacy_client(&opsconductor__jobs__v1__jobs_service__orpc_desc, routes,
                      ch);
    assert_int_equal(run_job(c, &by, &reach), ORPC_OK);
    assert_int_equal(by, ORPC_SERVED_LEGACY);
    assert_int_equal(reach, ORPC_REACH_REFUSED);
    assert_true(__atomic_load_n(&p.requests, __ATOMIC_SEQ_CST) >= 1);
    assert_int_equal(
        orpc_routes_stats(
            routes, opsconductor__jobs__v1__jobs_service__method__run_job, &rs),
        0);
    assert_int_equal(rs.fallbacks, 1);
    orpc_client_free(c);
    orpc_channel_unref(ch);
    raw_peer_stop(&p);

    /* No server at all: nothing was sent, RunJob falls back */
    int dead = p.port; /* closed now */
    snprintf(target, sizeof target, "127.0.0.1:%d", dead);
    assert_int_equal(orpc_channel_new(&ch, target,
                                      &(orpc_channel_opts){.plaintext = 1},
                                      NULL, NULL),
                     0);
    c = legacy_client(&opsconductor__jobs__v1__jobs_service__orpc_desc, routes,
                      ch);
    assert_int_equal(run_job(c, &by, &reach), ORPC_OK);
    assert_int_equal(by, ORPC_SERVED_LEGACY);
    assert_int_equal(reach, ORPC_REACH_NONE);
    orpc_client_free(c);
    orpc_channel_unref(ch);
    orpc_routes_unref(routes);
}

static uv_mutex_t g_log_lock;
static char g_log[4096];

static void logger(orpc_log_level lvl, const char *msg, void *ud)
{
    (void)lvl;
    (void)ud;
    uv_mutex_lock(&g_log_lock);
    size_t n = strlen(g_log);
    snprintf(g_log + n, sizeof(g_log) - n, "%s\n", msg);
    uv_mutex_unlock(&g_log_lock);
}

/* A routed JobsService client of the fixture and |ch| that logs to g_log. */
static orpc_client *logged_jobs_client(orpc_routes *routes, orpc_channel *ch)
{
    orpc_client *c = NULL;
    orpc_routed_opts o = {.routes = routes,
                          .channel = ch,
                          .legacy_url = g_url,
                          .identity = "scheduler-service",
                          .log = logger};
    assert_int_equal(
        orpc_routed_client_new(
            &c, &opsconductor__jobs__v1__jobs_service__orpc_desc, &o, NULL),
        0);
    return c;
}

static void test_shadow(void **state)
{
    (void)state;
    orpc_server *srv;
    orpc_channel *ch;
    start_grpc_jobs(&srv, &ch);
    char file[128];
    orpc_error_detail detail = {0};
    snprintf(file, sizeof(file), "%s/shadow.conf", g_dir);
    write_file(file, "opsconductor.jobs.v1.JobsService = shadow\n"
                     "ignore opsconductor.jobs.v1.JobsService/GetJobStatus ="
                     " status.updated_at\n");
    orpc_routes *routes;
    assert_int_equal(orpc_routes_load(&routes, file, &detail), 0);
    uv_mutex_init(&g_log_lock);
    orpc_client *c = logged_jobs_client(routes, ch);
    /* the legacy side answers the caller... */
    orpc_code code;
    assert_string_not_equal(job_name(c, &code), "from-grpc");
    assert_int_equal(code, ORPC_OK);
    assert_int_equal(job_status_code(c), ORPC_OK);
    /* ...and the mirrors are compared off its path */
    orpc_route_stats a = {0}, b = {0};
    for (int i = 0; i < 500; i++) {
        orpc_routes_stats(
            routes, opsconductor__jobs__v1__jobs_service__method__get_job, &a);
        orpc_routes_stats(
            routes,
            opsconductor__jobs__v1__jobs_service__method__get_job_status, &b);
        if (a.mismatches + a.matches > 0 && b.mismatches + b.matches > 0)
            break;
        usleep(10000);
    }
    assert_int_equal(a.mismatches, 1); /* "from-grpc" is not the legacy job */
    assert_int_equal(a.matches, 0);
    assert_int_equal(b.matches, 1); /* equal but for an ignored field */
    assert_int_equal(b.mismatches, 0);
    uv_mutex_lock(&g_log_lock);
    assert_non_null(strstr(g_log, "shadow mismatch #1 on "
                                  "/opsconductor.jobs.v1.JobsService/GetJob"));
    uv_mutex_unlock(&g_log_lock);
    orpc_client_free(c);
    orpc_routes_unref(routes);
    orpc_channel_unref(ch);
    stop_server(srv);
    uv_mutex_destroy(&g_log_lock);
}

static int stat_of(json_t *root, const char *method, const char *key)
{
    json_t *m = json_object_get(json_object_get(root, "methods"), method);
    return (int)json_integer_value(json_object_get(m, key));
}

/* shadow-grpc (gRPC answers, legacy mirrored), writes not mirrored, the
 * watcher's SIGHUP reload and its stats file. */
static void test_shadow_grpc_watch_and_stats(void **state)
{
    (void)state;
    orpc_server *srv;
    orpc_channel *ch;
    start_grpc_jobs(&srv, &ch);
    char file[128], stats[160];
    orpc_error_detail detail = {0};
    snprintf(file, sizeof(file), "%s/watch.conf", g_dir);
    char text[512];
    snprintf(text, sizeof(text),
             "opsconductor.jobs.v1.JobsService = shadow-grpc\n"
             "stats_file = %s/stats-{pid}.json\n",
             g_dir);
    write_file(file, text);
    snprintf(stats, sizeof(stats), "%s/stats-%d.json", g_dir, (int)getpid());
    orpc_routes *routes;
    assert_int_equal(orpc_routes_load(&routes, file, &detail), 0);
    char got[PATH_MAX];
    assert_int_equal(orpc_routes_stats_file(routes, got, sizeof got), 0);
    assert_string_equal(got, stats);
    char tiny[4];
    assert_int_equal(orpc_routes_stats_file(routes, tiny, sizeof tiny),
                     ORPC_ETOOBIG);
    assert_int_equal(orpc_routes_stats_glob(routes, got, sizeof got), 0);
    assert_non_null(strstr(got, "stats-*.json"));
    uv_mutex_init(&g_log_lock);
    g_log[0] = '\0';
    assert_int_equal(orpc_routes_watch(routes, SIGHUP, logger, NULL), 0);
    assert_int_equal(orpc_routes_watch(routes, SIGHUP, logger, NULL),
                     ORPC_EINVAL);
    orpc_client *c = logged_jobs_client(routes, ch);
    /* gRPC answers; the legacy side is asked off the caller's path */
    orpc_code code;
    assert_string_equal(job_name(c, &code), "from-grpc");
    assert_int_equal(g_served, ORPC_SERVED_GRPC);
    orpc_route_stats a = {0};
    for (int i = 0; i < 500 && a.mismatches + a.matches == 0; i++) {
        usleep(10000);
        orpc_routes_stats(
            routes, opsconductor__jobs__v1__jobs_service__method__get_job, &a);
    }
    assert_int_equal(a.grpc, 1);
    assert_int_equal(a.legacy, 0);
    assert_int_equal(a.mismatches, 1);
    /* a write is served but never mirrored (it would happen twice) */
    Opsconductor__Jobs__V1__RunJobRequest rj =
        OPSCONDUCTOR__JOBS__V1__RUN_JOB_REQUEST__INIT;
    rj.job_id = 7;
    Opsconductor__Jobs__V1__RunJobResponse *rr = NULL;
    orpc_served_by by = ORPC_SERVED_NONE;
    orpc_call_opts co2 = {.timeout_ms = 5000, .served_by = &by};
    orpc_status st = opsconductor__jobs__v1__jobs_service__client__run_job(
        c, &rj, &rr, &co2);
    assert_int_equal(st.code, ORPC_UNIMPLEMENTED); /* the gRPC side's answer */
    assert_int_equal(by, ORPC_SERVED_GRPC);
    orpc_status_clear(&st);
    orpc_routes_stats(
        routes, opsconductor__jobs__v1__jobs_service__method__run_job, &a);
    assert_int_equal(a.unmirrored, 1);
    assert_int_equal(a.matches + a.mismatches + a.dropped, 0);
    /* the watcher writes the counters within a second or two */
    json_t *root = NULL;
    for (int i = 0; i < 300; i++) {
        json_decref(root);
        root = json_load_file(stats, 0, NULL);
        if (root && stat_of(root, "opsconductor.jobs.v1.JobsService/RunJob",
                            "unmirrored") == 1)
            break;
        usleep(10000);
    }
    assert_non_null(root);
    assert_int_equal(
        stat_of(root, "opsconductor.jobs.v1.JobsService/GetJob", "grpc"), 1);
    assert_int_equal(
        stat_of(root, "opsconductor.jobs.v1.JobsService/GetJob", "mismatches"),
        1);
    assert_int_equal(
        stat_of(root, "opsconductor.jobs.v1.JobsService/RunJob", "unmirrored"),
        1);
    json_decref(root);
    /* SIGHUP rereads the file */
    write_file(file, "opsconductor.jobs.v1.JobsService = legacy\n");
    raise(SIGHUP);
    for (int i = 0; i < 300; i++) {
        if (orpc_routes_mode(
                routes,
                opsconductor__jobs__v1__jobs_service__method__get_job) ==
            ORPC_ROUTE_LEGACY)
            break;
        usleep(10000);
    }
    assert_string_not_equal(job_name(c, &code), "from-grpc");
    assert_int_equal(g_served, ORPC_SERVED_LEGACY);
    /* a broken file on SIGHUP is logged and changes nothing */
    write_file(file, "opsconductor.jobs.v1.JobsService = sideways\n");
    raise(SIGHUP);
    int logged = 0;
    for (int i = 0; i < 300 && !logged; i++) {
        uv_mutex_lock(&g_log_lock);
        logged = strstr(g_log, "routes reload failed") != NULL;
        uv_mutex_unlock(&g_log_lock);
        if (!logged)
            usleep(10000);
    }
    assert_true(logged);
    assert_int_equal(
        orpc_routes_mode(routes,
                         opsconductor__jobs__v1__jobs_service__method__get_job),
        ORPC_ROUTE_LEGACY);
    uv_mutex_lock(&g_log_lock);
    assert_non_null(strstr(g_log, "routes reloaded from "));
    assert_non_null(strstr(g_log, ":1: opsconductor.jobs.v1.JobsService: "
                                  "unknown mode \"sideways\""));
    uv_mutex_unlock(&g_log_lock);
    orpc_client_free(c);
    orpc_routes_unref(routes);
    orpc_channel_unref(ch);
    stop_server(srv);
    uv_mutex_destroy(&g_log_lock);
}

/* One request to the fixture's control API over a plain socket (the
 * transport under test is not used to drive its own fixture); the reply's
 * body goes to |out|.  Returns the HTTP status, or -1. */
static int fx(const char *method, const char *path, const char *body, char *out,
              size_t outlen)
{
    int port = atoi(strrchr(g_url, ':') + 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char req[2048];
    int n =
        snprintf(req, sizeof(req),
                 "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                 "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                 "\r\n%s",
                 method, path, body ? strlen(body) : 0, body ? body : "");
    if (n <= 0 || (size_t)n >= sizeof(req) || write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    static char buf[1 << 16];
    size_t got = 0;
    ssize_t r;
    while (got + 1 < sizeof(buf) &&
           (r = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
        got += (size_t)r;
    close(fd);
    buf[got] = '\0';
    int status = -1;
    sscanf(buf, "HTTP/1.%*d %d", &status);
    const char *b = strstr(buf, "\r\n\r\n");
    snprintf(out, outlen, "%s", b ? b + 4 : "");
    return status;
}

/* How many requests the fixture recorded for |path| since its last reset. */
static int fx_count(const char *path)
{
    char q[256], out[1 << 15];
    snprintf(q, sizeof(q), "/_fixture/requests?path=%s", path);
    assert_int_equal(fx("GET", q, NULL, out, sizeof(out)), 200);
    json_t *l = json_loads(out, 0, NULL);
    assert_true(json_is_array(l));
    int n = (int)json_array_size(l);
    json_decref(l);
    return n;
}

/* Failed legacy calls are retried as today's clients do, but only where a
 * repeat is harmless. */
static void test_legacy_retries(void **state)
{
    (void)state;
    char out[4096];
    assert_int_equal(fx("POST", "/_fixture/reset", "{}", out, sizeof(out)),
                     200);
    orpc_client *c = NULL;
    orpc_routed_opts o = {.legacy_url = g_url,
                          .identity = "scheduler-service",
                          .legacy_retry_delay_ms = 10};
    assert_int_equal(
        orpc_routed_client_new(
            &c, &opsconductor__jobs__v1__jobs_service__orpc_desc, &o, NULL),
        0);
    /* a read: two 503s, then the answer */
    assert_int_equal(fx("POST", "/_fixture/config",
                        "{\"rules\":[{\"route\":\"GET /jobs/7\",\"status\":503,"
                        "\"detail\":\"busy\",\"times\":2}]}",
                        out, sizeof(out)),
                     200);
    orpc_code code;
    job_name(c, &code);
    assert_int_equal(code, ORPC_OK);
    assert_int_equal(fx_count("/jobs/7"), 3);
    /* at most SERVICE_HTTP_MAX_RETRIES (default 3) retries */
    assert_int_equal(fx("POST", "/_fixture/config",
                        "{\"rules\":[{\"route\":\"GET /jobs/7\",\"status\":503,"
                        "\"detail\":\"busy\",\"times\":10}]}",
                        out, sizeof(out)),
                     200);
    job_name(c, &code);
    assert_int_equal(code, ORPC_UNAVAILABLE);
    assert_int_equal(fx_count("/jobs/7"), 3 + 4);
    /* a write is sent once: a retry could run the job twice */
    assert_int_equal(
        fx("POST", "/_fixture/config",
           "{\"rules\":[{\"route\":\"POST /jobs/3/run\",\"status\":503,"
           "\"detail\":\"busy\",\"times\":1}]}",
           out, sizeof(out)),
        200);
    Opsconductor__Jobs__V1__RunJobRequest rj =
        OPSCONDUCTOR__JOBS__V1__RUN_JOB_REQUEST__INIT;
    rj.job_id = 3;
    Opsconductor__Jobs__V1__RunJobResponse *rr = NULL;
    orpc_status st = opsconductor__jobs__v1__jobs_service__client__run_job(
        c, &rj, &rr, NULL);
    assert_int_equal(st.code, ORPC_UNAVAILABLE);
    assert_non_null(strstr(st.message, "busy"));
    orpc_status_clear(&st);
    assert_int_equal(fx_count("/jobs/3/run"), 1);
    assert_int_equal(fx("POST", "/_fixture/reset", "{}", out, sizeof(out)),
                     200);
    orpc_client_free(c);
}

static long fx_connections(void)
{
    char out[1 << 15];
    assert_int_equal(fx("GET", "/_fixture/stats", NULL, out, sizeof(out)), 200);
    json_t *st = json_loads(out, 0, NULL);
    long n = (long)json_integer_value(json_object_get(st, "connections"));
    json_decref(st);
    return n;
}

static void *get_job_thread(void *arg)
{
    orpc_client *c = arg;
    Opsconductor__Jobs__V1__GetJobRequest g =
        OPSCONDUCTOR__JOBS__V1__GET_JOB_REQUEST__INIT;
    g.job_id = 7;
    Opsconductor__Jobs__V1__GetJobResponse *job = NULL;
    orpc_call_opts o = {.timeout_ms = 10000};
    orpc_status st =
        opsconductor__jobs__v1__jobs_service__client__get_job(c, &g, &job, &o);
    intptr_t code = st.code;
    opsconductor__jobs__v1__get_job_response__free_unpacked(job, NULL);
    orpc_status_clear(&st);
    return (void *)code;
}

/* Connections opened by 4 concurrent slow GetJob calls (plus the login). */
static long connections_for_4_calls(void)
{
    char out[4096];
    assert_int_equal(fx("POST", "/_fixture/reset", "{}", out, sizeof(out)),
                     200);
    assert_int_equal(
        fx("POST", "/_fixture/config",
           "{\"rules\":[{\"route\":\"GET /jobs/7\",\"delay_ms\":200,"
           "\"times\":4}]}",
           out, sizeof(out)),
        200);
    orpc_client *c = NULL;
    orpc_routed_opts o = {.legacy_url = g_url, .identity = "scheduler-service"};
    assert_int_equal(
        orpc_routed_client_new(
            &c, &opsconductor__jobs__v1__jobs_service__orpc_desc, &o, NULL),
        0);
    long before = fx_connections();
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, get_job_thread, c), 0);
    for (int i = 0; i < 4; i++) {
        void *code;
        pthread_join(t[i], &code);
        assert_int_equal((intptr_t)code, ORPC_OK);
    }
    long opened = fx_connections() - before - 1; /* the stats request */
    orpc_client_free(c);
    return opened;
}

/* The pool takes today's SERVICE_HTTP_MAX_CONNECTIONS. */
static void test_legacy_pool_from_env(void **state)
{
    (void)state;
    long dflt = connections_for_4_calls(); /* 4 + the login's */
    setenv("SERVICE_HTTP_MAX_CONNECTIONS", "1", 1);
    long one = connections_for_4_calls(); /* 1 + the login's */
    unsetenv("SERVICE_HTTP_MAX_CONNECTIONS");
    assert_int_equal(dflt, 5);
    assert_int_equal(one, 2);
}

static uv_mutex_t g_async_lock;
static uv_cond_t g_async_cond;
static int g_async_done, g_async_ok;

static void async_done(const orpc_status *st,
                       Opsconductor__Jobs__V1__GetJobResponse *resp, void *ud)
{
    (void)ud;
    uv_mutex_lock(&g_async_lock);
    g_async_done++;
    if (st->code == ORPC_OK && resp != NULL && resp->job != NULL)
        g_async_ok++;
    uv_cond_signal(&g_async_cond);
    uv_mutex_unlock(&g_async_lock);
    opsconductor__jobs__v1__get_job_response__free_unpacked(resp, NULL);
}

/* Asynchronous legacy calls, more than the client's threads at once: all
 * complete, each with its own callback and served_by record; past the
 * queue's bound they are refused, not dropped. */
static void test_legacy_async(void **state)
{
    (void)state;
    enum { N = 40 };
    char out[4096];
    assert_int_equal(fx("POST", "/_fixture/reset", "{}", out, sizeof(out)),
                     200);
    assert_int_equal(
        fx("POST", "/_fixture/config",
           "{\"rules\":[{\"route\":\"GET /jobs/7\",\"delay_ms\":50}]}", out,
           sizeof(out)),
        200);
    orpc_client *c = NULL;
    orpc_routed_opts o = {.legacy_url = g_url, .identity = "scheduler-service"};
    assert_int_equal(
        orpc_routed_client_new(
            &c, &opsconductor__jobs__v1__jobs_service__orpc_desc, &o, NULL),
        0);
    uv_mutex_init(&g_async_lock);
    uv_cond_init(&g_async_cond);
    g_async_done = g_async_ok = 0;
    orpc_served_by by[N];
    for (int i = 0; i < N; i++) {
        Opsconductor__Jobs__V1__GetJobRequest g =
            OPSCONDUCTOR__JOBS__V1__GET_JOB_REQUEST__INIT;
        g.job_id = 7;
        by[i] = ORPC_SERVED_NONE;
        orpc_call_opts co = {.timeout_ms = 20000, .served_by = &by[i]};
        assert_int_equal(
            opsconductor__jobs__v1__jobs_service__client__get_job__async(
                c, &g, &co, async_done, NULL),
            0);
    }
    uv_mutex_lock(&g_async_lock);
    for (int waits = 0; g_async_done < N && waits < 300; waits++)
        uv_cond_timedwait(&g_async_cond, &g_async_lock, 100 * 1000000ULL);
    int done = g_async_done, ok = g_async_ok;
    uv_mutex_unlock(&g_async_lock);
    assert_int_equal(done, N);
    assert_int_equal(ok, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(by[i], ORPC_SERVED_LEGACY);
    assert_int_equal(fx_count("/jobs/7"), N);
    orpc_client_free(c);

    /* The queue is bounded: with 16 threads busy on slow calls and room
     * for 2 more, further calls are refused at once with ORPC_ELIMIT
     * (nothing sent); every accepted one completes. */
    assert_int_equal(fx("POST", "/_fixture/reset", "{}", out, sizeof(out)),
                     200);
    assert_int_equal(
        fx("POST", "/_fixture/config",
           "{\"rules\":[{\"route\":\"GET /jobs/7\",\"delay_ms\":600}]}", out,
           sizeof(out)),
        200);
    o.max_queued_legacy_calls = 2;
    assert_int_equal(
        orpc_routed_client_new(
            &c, &opsconductor__jobs__v1__jobs_service__orpc_desc, &o, NULL),
        0);
    uv_mutex_lock(&g_async_lock);
    g_async_done = g_async_ok = 0;
    uv_mutex_unlock(&g_async_lock);
    int accepted = 0, refused = 0;
    for (int i = 0; i < N; i++) {
        Opsconductor__Jobs__V1__GetJobRequest g =
            OPSCONDUCTOR__JOBS__V1__GET_JOB_REQUEST__INIT;
        g.job_id = 7;
        orpc_call_opts co = {.timeout_ms = 20000};
        int rc = opsconductor__jobs__v1__jobs_service__client__get_job__async(
            c, &g, &co, async_done, NULL);
        if (rc == 0)
            accepted++;
        else if (rc == ORPC_ELIMIT)
            refused++;
        else
            fail_msg("unexpected %d", rc);
    }
    /* 16 running and 2 waiting at most (fewer if a thread was slow to
     * start: the pool starts one per call that finds none idle) */
    assert_true(accepted >= 2 && accepted <= 18);
    assert_int_equal(accepted + refused, N);
    uv_mutex_lock(&g_async_lock);
    for (int waits = 0; g_async_done < accepted && waits < 300; waits++)
        uv_cond_timedwait(&g_async_cond, &g_async_lock, 100 * 1000000ULL);
    assert_int_equal(g_async_done, accepted);
    assert_int_equal(g_async_ok, accepted);
    uv_mutex_unlock(&g_async_lock);
    orpc_client_free(c);
    assert_int_equal(fx_count("/jobs/7"), accepted);
    assert_int_equal(fx("POST", "/_fixture/reset", "{}", out, sizeof(out)),
                     200);
    uv_cond_destroy(&g_async_cond);
    uv_mutex_destroy(&g_async_lock);
}

/* Legacy calls run the routed client's chain (served_by legacy, the base
 * URL as peer, the request and response bodies counted) and carry the
 * trace context as the traceparent/tracestate headers; a chain that
 * refuses stops the call before anything is sent. */
static char g_ic_line[1024];
static orpc_served_by g_ic_by;
static const char *g_ic_peer;
static uint64_t g_ic_bytes[2];

static void ic_sink(orpc_log_level level, const char *line, size_t len,
                    void *ud)
{
    (void)level;
    (void)ud;
    snprintf(g_ic_line, sizeof g_ic_line, "%.*s", (int)len, line);
}

static void ic_end(orpc_call_info *ci, void *slot, const orpc_status *st,
                   void *ud)
{
    (void)slot;
    (void)st;
    (void)ud;
    g_ic_by = orpc_call_info_served_by(ci);
    g_ic_peer = orpc_call_info_peer(ci);
    orpc_call_info_counts(ci, 0, NULL, &g_ic_bytes[0]);
    orpc_call_info_counts(ci, 1, NULL, &g_ic_bytes[1]);
}

static orpc_code ic_refuse(orpc_call_info *ci, void **slot, const char **why,
                           void *ud)
{
    (void)ci;
    (void)slot;
    (void)ud;
    *why = "not today";
    return ORPC_FAILED_PRECONDITION;
}

static void test_legacy_interceptors(void **state)
{
    (void)state;
    char out[1 << 15];
    assert_int_equal(fx("POST", "/_fixture/reset", "{}", out, sizeof(out)),
                     200);
    orpc_call_log_opts lo = {.level = ORPC_LOG_INFO, .sink = ic_sink};
    orpc_interceptor *log = NULL, *rec = NULL, *no = NULL;
    assert_int_equal(orpc_call_log_interceptor_new(&log, &lo), 0);
    orpc_interceptor_ops ops = {.on_end = ic_end};
    assert_int_equal(orpc_interceptor_new(&rec, &ops, NULL), 0);
    orpc_interceptor_ops refuse = {.on_start = ic_refuse};
    assert_int_equal(orpc_interceptor_new(&no, &refuse, NULL), 0);
    orpc_interceptor *ics[] = {log, rec};
    orpc_client *c = NULL;
    orpc_routed_opts o = {.legacy_url = g_url,
                          .identity = "scheduler-service",
                          .interceptors = ics,
                          .n_interceptors = 2};
    assert_int_equal(
        orpc_routed_client_new(
            &c, &opsconductor__jobs__v1__jobs_service__orpc_desc, &o, NULL),
        0);
    Opsconductor__Jobs__V1__GetJobRequest g =
        OPSCONDUCTOR__JOBS__V1__GET_JOB_REQUEST__INIT;
    g.job_id = 7;
    Opsconductor__Jobs__V1__GetJobResponse *job = NULL;
    orpc_metadata *md = NULL;
    orpc_metadata_new(&md, NULL);
    const char *tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    orpc_metadata_add_str(md, "traceparent", tp);
    orpc_metadata_add_str(md, "tracestate", "congo=t61rcWkgMzE");
    orpc_call_opts co = {.metadata = md};
    orpc_status st =
        opsconductor__jobs__v1__jobs_service__client__get_job(c, &g, &job, &co);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
    protobuf_c_message_free_unpacked(&job->base, NULL);
    assert_int_equal(g_ic_by, ORPC_SERVED_LEGACY);
    assert_string_equal(g_ic_peer, g_url);
    assert_true(g_ic_bytes[0] > 0);
    assert_non_null(strstr(g_ic_line, " served_by=legacy "));
    assert_non_null(strstr(g_ic_line, " side=client "));
    assert_non_null(
        strstr(g_ic_line, " trace_id=0af7651916cd43dd8448eb211c80319c"));
    /* the headers reached the legacy service as sent */
    assert_int_equal(
        fx("GET", "/_fixture/requests?path=/jobs/7", NULL, out, sizeof(out)),
        200);
    json_t *l = json_loads(out, 0, NULL);
    assert_true(json_array_size(l) == 1);
    json_t *h = json_object_get(json_array_get(l, 0), "headers");
    assert_string_equal(json_string_value(json_object_get(h, "traceparent")),
                        tp);
    assert_string_equal(json_string_value(json_object_get(h, "tracestate")),
                        "congo=t61rcWkgMzE");
    json_decref(l);
    /* without one, the default chain sends none (the server starts the
     * trace); a trace interceptor told to start client traces does */
    co.metadata = NULL;
    st =
        opsconductor__jobs__v1__jobs_service__client__get_job(c, &g, &job, &co);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
    protobuf_c_message_free_unpacked(&job->base, NULL);
    orpc_client_free(c);
    orpc_trace_opts to = {.start_client_traces = 1};
    orpc_interceptor *starter = NULL;
    assert_int_equal(orpc_trace_interceptor_new(&starter, &to), 0);
    o.interceptors = &starter;
    o.n_interceptors = 1;
    assert_int_equal(
        orpc_routed_client_new(
            &c, &opsconductor__jobs__v1__jobs_service__orpc_desc, &o, NULL),
        0);
    orpc_interceptor_unref(starter);
    st =
        opsconductor__jobs__v1__jobs_service__client__get_job(c, &g, &job, &co);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
    protobuf_c_message_free_unpacked(&job->base, NULL);
    orpc_client_free(c);
    assert_int_equal(
        fx("GET", "/_fixture/requests?path=/jobs/7", NULL, out, sizeof(out)),
        200);
    l = json_loads(out, 0, NULL);
    assert_true(json_array_size(l) == 3);
    h = json_object_get(json_array_get(l, 1), "headers");
    assert_null(json_object_get(h, "traceparent"));
    h = json_object_get(json_array_get(l, 2), "headers");
    const char *fresh = json_string_value(json_object_get(h, "traceparent"));
    assert_non_null(fresh);
    assert_int_equal(strlen(fresh), 55);
    assert_memory_not_equal(fresh + 3, tp + 3, 32);
    json_decref(l);
    /* an interceptor that refuses: nothing is sent */
    o.interceptors = &no;
    o.n_interceptors = 1;
    assert_int_equal(
        orpc_routed_client_new(
            &c, &opsconductor__jobs__v1__jobs_service__orpc_desc, &o, NULL),
        0);
    st = opsconductor__jobs__v1__jobs_service__client__get_job(c, &g, &job,
                                                               NULL);
    assert_int_equal(st.code, ORPC_FAILED_PRECONDITION);
    assert_string_equal(st.message, "not today");
    orpc_status_clear(&st);
    assert_int_equal(fx_count("/jobs/7"), 3);
    orpc_client_free(c);
    orpc_metadata_free(md);
    orpc_interceptor_unref(log);
    orpc_interceptor_unref(rec);
    orpc_interceptor_unref(no);
    assert_int_equal(fx("POST", "/_fixture/reset", "{}", out, sizeof(out)),
                     200);
}

/* A client made while its service was routed to gRPC, then moved to the
 * legacy side by a reload: with credentials it logs in then; without, its
 * calls are refused before anything is sent. */
static void test_reload_to_legacy_credentials(void **state)
{
    (void)state;
    char file[128], out[4096];
    orpc_error_detail detail = {0};
    snprintf(file, sizeof(file), "%s/late.conf", g_dir);
    write_file(file, "opsconductor.jobs.v1.JobsService = grpc\n");
    orpc_routes *routes;
    assert_int_equal(orpc_routes_load(&routes, file, &detail), 0);
    orpc_client *with = NULL, *without = NULL;
    orpc_routed_opts o = {
        .routes = routes, .legacy_url = g_url, .identity = "scheduler-service"};
    assert_int_equal(
        orpc_routed_client_new(
            &with, &opsconductor__jobs__v1__jobs_service__orpc_desc, &o, NULL),
        0);
    o.identity = "nobody-service"; /* no credentials: fine while all is gRPC */
    assert_int_equal(
        orpc_routed_client_new(&without,
                               &opsconductor__jobs__v1__jobs_service__orpc_desc,
                               &o, NULL),
        0);
    write_file(file, "opsconductor.jobs.v1.JobsService = legacy\n");
    assert_int_equal(orpc_routes_reload(routes, &detail), 0);
    assert_int_equal(fx("POST", "/_fixture/reset", "{}", out, sizeof(out)),
                     200);
    orpc_code code;
    job_name(with, &code);
    assert_int_equal(code, ORPC_OK);
    assert_int_equal(fx_count("/jobs/7"), 1);
    Opsconductor__Jobs__V1__GetJobRequest g =
        OPSCONDUCTOR__JOBS__V1__GET_JOB_REQUEST__INIT;
    g.job_id = 7;
    Opsconductor__Jobs__V1__GetJobResponse *job = NULL;
    orpc_status st = opsconductor__jobs__v1__jobs_service__client__get_job(
        without, &g, &job, NULL);
    assert_int_equal(st.code, ORPC_UNAUTHENTICATED);
    assert_non_null(strstr(st.message, "no credentials"));
    orpc_status_clear(&st);
    assert_int_equal(fx_count("/jobs/7"), 1); /* nothing was sent */
    orpc_client_free(with);
    orpc_client_free(without);
    orpc_routes_unref(routes);
}

/* A table built in code: orpc_routes_new() routes everything to legacy,
 * orpc_routes_set() changes it (the most specific key wins, a later setting
 * of a key replaces it) and calls follow; such a table cannot be reloaded;
 * orpc_routes_write_stats() writes the counters at once when a stats file
 * is configured, and refuses when none is. */
static void test_routes_new_set_and_write_stats(void **state)
{
    (void)state;
    const orpc_method_desc *get_job =
        opsconductor__jobs__v1__jobs_service__method__get_job;
    const orpc_method_desc *get_status =
        opsconductor__jobs__v1__jobs_service__method__get_job_status;
    const orpc_method_desc *login =
        opsconductor__auth__v1__auth_service__method__login;
    orpc_routes *routes = NULL;
    assert_int_equal(orpc_routes_new(NULL), ORPC_EINVAL);
    assert_int_equal(orpc_routes_new(&routes), 0);
    assert_non_null(routes);
    assert_int_equal(orpc_routes_mode(routes, get_job), ORPC_ROUTE_LEGACY);
    assert_int_equal(orpc_routes_mode(routes, login), ORPC_ROUTE_LEGACY);
    assert_int_equal(orpc_routes_set(routes, "opsconductor.jobs.v1.JobsService",
                                     ORPC_ROUTE_GRPC),
                     0);
    assert_int_equal(orpc_routes_set(routes,
                                     "opsconductor.jobs.v1.JobsService/GetJob",
                                     ORPC_ROUTE_FALLBACK),
                     0);
    assert_int_equal(orpc_routes_set(routes, "*", ORPC_ROUTE_SHADOW), 0);
    assert_int_equal(orpc_routes_mode(routes, get_job), ORPC_ROUTE_FALLBACK);
    assert_int_equal(orpc_routes_mode(routes, get_status), ORPC_ROUTE_GRPC);
    assert_int_equal(orpc_routes_mode(routes, login), ORPC_ROUTE_SHADOW);
    /* a later setting of the same key wins */
    assert_int_equal(orpc_routes_set(routes,
                                     "opsconductor.jobs.v1.JobsService/GetJob",
                                     ORPC_ROUTE_GRPC),
                     0);
    assert_int_equal(orpc_routes_mode(routes, get_job), ORPC_ROUTE_GRPC);
    /* keys that are not proto names are refused, and change nothing */
    assert_int_equal(orpc_routes_set(routes, "not a key", ORPC_ROUTE_LEGACY),
                     ORPC_EINVAL);
    assert_int_equal(orpc_routes_set(NULL, "*", ORPC_ROUTE_LEGACY),
                     ORPC_EINVAL);
    assert_int_equal(orpc_routes_mode(routes, get_job), ORPC_ROUTE_GRPC);
    orpc_error_detail detail = {0};
    assert_int_equal(orpc_routes_reload(routes, &detail), ORPC_EINVAL);
    assert_int_equal(orpc_routes_write_stats(routes), ORPC_EINVAL);
    /* the table routes calls: GetJob reaches the gRPC side */
    orpc_server *srv;
    orpc_channel *ch;
    start_grpc_jobs(&srv, &ch);
    orpc_client *c = legacy_client(
        &opsconductor__jobs__v1__jobs_service__orpc_desc, routes, ch);
    orpc_code code;
    assert_string_equal(job_name(c, &code), "from-grpc");
    assert_int_equal(code, ORPC_OK);
    assert_int_equal(g_served, ORPC_SERVED_GRPC);
    orpc_client_free(c);
    orpc_routes_unref(routes);

    /* a loaded table with a stats file: written on demand, no watcher */
    char file[128], stats[160], text[512];
    snprintf(file, sizeof(file), "%s/now.conf", g_dir);
    snprintf(text, sizeof(text),
             "opsconductor.jobs.v1.JobsService = grpc\n"
             "stats_file = %s/now-{pid}.json\n",
             g_dir);
    write_file(file, text);
    snprintf(stats, sizeof(stats), "%s/now-%d.json", g_dir, (int)getpid());
    assert_int_equal(orpc_routes_load(&routes, file, &detail), 0);
    c = legacy_client(&opsconductor__jobs__v1__jobs_service__orpc_desc, routes,
                      ch);
    assert_string_equal(job_name(c, &code), "from-grpc");
    assert_int_equal(code, ORPC_OK);
    assert_null(json_load_file(stats, 0, NULL)); /* nothing written yet */
    assert_int_equal(orpc_routes_write_stats(routes), 0);
    json_t *root = json_load_file(stats, 0, NULL);
    assert_non_null(root);
    assert_int_equal(
        stat_of(root, "opsconductor.jobs.v1.JobsService/GetJob", "grpc"), 1);
    assert_int_equal(
        stat_of(root, "opsconductor.jobs.v1.JobsService/GetJob", "legacy"), 0);
    json_decref(root);
    orpc_client_free(c);
    orpc_routes_unref(routes);
    orpc_channel_unref(ch);
    stop_server(srv);
}

/* A bad routes file: orpc_routes_load() refuses it with ORPC_ECONFIG,
 * leaves |*out| alone, and its detail is the file's name then |want|. */
static void check_bad_file(const char *text, const char *want)
{
    char file[128], full[512];
    snprintf(file, sizeof(file), "%s/bad.conf", g_dir);
    write_file(file, text);
    orpc_routes *const untouched = (orpc_routes *)(uintptr_t)1;
    orpc_routes *routes = untouched;
    orpc_error_detail detail = {0};
    assert_int_equal(orpc_routes_load(&routes, file, &detail), ORPC_ECONFIG);
    assert_ptr_equal(routes, untouched);
    assert_int_equal(detail.code, ORPC_ECONFIG);
    snprintf(full, sizeof(full), "%s%s", file, want);
    assert_string_equal(detail.message, full);
}

/* Every refusal of a routes file names the file, the line, the setting and
 * what is wrong with it. */
static void test_routes_file_errors(void **state)
{
    (void)state;
    check_bad_file("# jobs\n\nopsconductor.jobs.v1.JobsService/RunJob = grcp\n",
                   ":3: opsconductor.jobs.v1.JobsService/RunJob: unknown mode "
                   "\"grcp\" (grpc, legacy, fallback, shadow, shadow-grpc)");
    check_bad_file("* = legacy\noops\n",
                   ":2: \"oops\": expected `key = mode` (or `ignore key = "
                   "fields`, `stats_file = path`)");
    check_bad_file("jobs v1 = grpc\n", ":1: \"jobs v1\": not a key (*, "
                                       "pkg.Service or pkg.Service/Method)");
    check_bad_file("  = grpc\n", ":1: no key before '=' (*, pkg.Service or "
                                 "pkg.Service/Method)");
    check_bad_file("jobs.v1.JobsService =  # later\n",
                   ":1: jobs.v1.JobsService: no mode after '=' (grpc, legacy, "
                   "fallback, shadow, shadow-grpc)");
    check_bad_file("* = grpc\nstats_file =\n",
                   ":2: stats_file: no path after '='");
    check_bad_file("ignore jobs..v1 = a.b\n",
                   ":1: ignore \"jobs..v1\": not a key (*, pkg.Service or "
                   "pkg.Service/Method)");
    /* raw bytes of the file never reach the message; long values are cut */
    check_bad_file("x\001y = grpc\n", ":1: \"x?y\": not a key (*, pkg.Service "
                                      "or pkg.Service/Method)");
    check_bad_file("* = ggggggggggggggggggggggggggggggggggggggggggggggggggg\n",
                   ":1: *: unknown mode \"gggggggggggggggggggggggggggggggggggg"
                   "gggg...\" (grpc, legacy, fallback, shadow, shadow-grpc)");
    char long_line[1200];
    memset(long_line, 'a', 1100);
    snprintf(long_line + 1100, 100, " = grpc\n");
    check_bad_file(long_line, ":1: line longer than 1022 bytes");

    char file[128], want[256];
    orpc_error_detail detail = {0};
    orpc_routes *routes = NULL;
    snprintf(file, sizeof(file), "%s/absent.conf", g_dir);
    assert_int_equal(orpc_routes_load(&routes, file, &detail), ORPC_ECONFIG);
    snprintf(want, sizeof(want), "%s: cannot open: no such file or directory",
             file);
    assert_string_equal(detail.message, want);
    /* the environment's overrides are named by their variable */
    setenv("ORPC_ROUTE_JOBS", "sideways", 1);
    assert_int_equal(orpc_routes_load(&routes, NULL, &detail), ORPC_ECONFIG);
    unsetenv("ORPC_ROUTE_JOBS");
    assert_string_equal(detail.message,
                        "ORPC_ROUTE_JOBS: unknown mode \"sideways\" (grpc, "
                        "legacy, fallback, shadow, shadow-grpc)");
    /* misuse says which argument */
    assert_int_equal(orpc_routes_load(NULL, NULL, &detail), ORPC_EINVAL);
    assert_int_equal(detail.code, ORPC_EINVAL);
    assert_string_equal(detail.message, "orpc_routes_load: |out| is NULL");
    assert_int_equal(orpc_routes_new(&routes), 0);
    assert_int_equal(orpc_routes_reload(routes, &detail), ORPC_EINVAL);
    assert_non_null(strstr(detail.message, "made with orpc_routes_new()"));
    orpc_routes_unref(routes);
    /* success leaves the detail alone */
    snprintf(file, sizeof(file), "%s/good.conf", g_dir);
    write_file(file, "* = grpc\n");
    orpc_error_detail kept = {.code = 7, .message = "kept"};
    assert_int_equal(orpc_routes_load(&routes, file, &kept), 0);
    assert_int_equal(orpc_routes_reload(routes, &kept), 0);
    assert_int_equal(kept.code, 7);
    assert_string_equal(kept.message, "kept");
    orpc_routes_unref(routes);
}

/* A routed client's refusals name the setting at fault. */
static void test_routed_client_errors(void **state)
{
    (void)state;
    const orpc_service_desc *jobs =
        &opsconductor__jobs__v1__jobs_service__orpc_desc;
    orpc_client *c = NULL;
    orpc_error_detail detail = {0};
    orpc_routed_opts o = {.legacy_url = "ftp://legacy",
                          .identity = "scheduler-service"};
    assert_int_equal(orpc_routed_client_new(&c, jobs, &o, &detail),
                     ORPC_ECONFIG);
    assert_null(c);
    assert_string_equal(detail.message,
                        "opsconductor.jobs.v1.JobsService: "
                        "orpc_routed_opts.legacy_url: not an http:// or "
                        "https:// base URL with a host (and no credentials, "
                        "query or fragment)");
    /* credentials in the URL are refused without being repeated */
    o.legacy_url = "http://user:secret@legacy";
    assert_int_equal(orpc_routed_client_new(&c, jobs, &o, &detail),
                     ORPC_ECONFIG);
    assert_null(strstr(detail.message, "secret"));
    o.legacy_url = g_url;
    o.ca_file = "/nonexistent/ca.pem";
    assert_int_equal(orpc_routed_client_new(&c, jobs, &o, &detail),
                     ORPC_ECONFIG);
    assert_string_equal(detail.message,
                        "opsconductor.jobs.v1.JobsService: "
                        "orpc_routed_opts.ca_file /nonexistent/ca.pem: no such "
                        "file or directory");
    o.ca_file = NULL;
    o.username = "";
    o.password = "pw";
    assert_int_equal(orpc_routed_client_new(&c, jobs, &o, &detail),
                     ORPC_ECONFIG);
    assert_string_equal(
        detail.message,
        "opsconductor.jobs.v1.JobsService: orpc_routed_opts.username: empty");
    o.username = NULL;
    o.identity = "nobody-service";
    assert_int_equal(orpc_routed_client_new(&c, jobs, &o, &detail),
                     ORPC_ECONFIG);
    assert_string_equal(detail.message,
                        "opsconductor.jobs.v1.JobsService: no credentials for "
                        "legacy calls: orpc_routed_opts.password is set, "
                        "NOBODY_SERVICE_USERNAME is not");
    o.identity = NULL;
    o.password = NULL;
    assert_int_equal(orpc_routed_client_new(&c, jobs, &o, &detail),
                     ORPC_ECONFIG);
    assert_non_null(strstr(detail.message, "set orpc_routed_opts.identity"));
    assert_int_equal(orpc_routed_client_new(NULL, jobs, &o, &detail),
                     ORPC_EINVAL);
    assert_string_equal(detail.message,
                        "orpc_routed_client_new: |out| is NULL");
    orpc_service_desc fake = {0};
    assert_int_equal(orpc_routed_client_new(&c, &fake, &o, &detail),
                     ORPC_EINVAL);
    assert_non_null(strstr(detail.message, "not a service descriptor"));
}

/* What a function given no detail writes to stderr, for check_no_detail. */
typedef struct no_detail {
    const char *file;
    orpc_routes *routes;
    const orpc_routed_opts *opts;
    int rc;
} no_detail;

static void load_no_detail(no_detail *nd)
{
    orpc_routes *r = NULL;
    nd->rc = orpc_routes_load(&r, nd->file, NULL);
    orpc_routes_unref(r);
}

static void reload_no_detail(no_detail *nd)
{
    nd->rc = orpc_routes_reload(nd->routes, NULL);
}

static void client_no_detail(no_detail *nd)
{
    orpc_client *c = NULL;
    nd->rc = orpc_routed_client_new(
        &c, &opsconductor__jobs__v1__jobs_service__orpc_desc, nd->opts, NULL);
    orpc_client_free(c);
}

/* Runs |fn| with stderr going to a file, and returns what it wrote there
 * in |out| (no cmocka assertion runs while stderr is redirected). */
static void stderr_of(void (*fn)(no_detail *), no_detail *nd, char *out,
                      size_t len)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/stderr.txt", g_dir);
    fflush(stderr);
    int saved = dup(2);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    close(fd);
    fn(nd);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, len - 1, f);
    out[n] = '\0';
    fclose(f);
}

/* Given no detail, a failure is still reported, once: through the logger
 * there is (the watcher's for a reload, the options' for a client), else
 * to stderr in the runtime's format. */
static void test_null_detail(void **state)
{
    (void)state;
    char file[128], out[1024], want[512];
    snprintf(file, sizeof(file), "%s/null.conf", g_dir);
    write_file(file, "* = legacy\noops\n");
    no_detail nd = {.file = file};
    stderr_of(load_no_detail, &nd, out, sizeof(out));
    assert_int_equal(nd.rc, ORPC_ECONFIG);
    snprintf(want, sizeof(want),
             "orpc: error: router: %s:2: \"oops\": expected `key = mode` (or "
             "`ignore key = fields`, `stats_file = path`)\n",
             file);
    assert_string_equal(out, want);
    /* a reload: to stderr while the table is not watched... */
    write_file(file, "* = legacy\n");
    assert_int_equal(orpc_routes_load(&nd.routes, file, NULL), 0);
    write_file(file, "* = sideways\n");
    stderr_of(reload_no_detail, &nd, out, sizeof(out));
    assert_int_equal(nd.rc, ORPC_ECONFIG);
    assert_non_null(strstr(out, "orpc: error: router: "));
    assert_non_null(strstr(out, ":1: *: unknown mode \"sideways\""));
    /* ...and through the watcher's logger once it is */
    uv_mutex_init(&g_log_lock);
    g_log[0] = '\0';
    assert_int_equal(orpc_routes_watch(nd.routes, 0, logger, NULL), 0);
    stderr_of(reload_no_detail, &nd, out, sizeof(out));
    assert_int_equal(nd.rc, ORPC_ECONFIG);
    assert_string_equal(out, "");
    uv_mutex_lock(&g_log_lock);
    assert_non_null(strstr(g_log, ":1: *: unknown mode \"sideways\""));
    uv_mutex_unlock(&g_log_lock);
    orpc_routes_unref(nd.routes);
    /* a routed client: its options' logger, else stderr */
    orpc_routed_opts o = {.legacy_url = g_url, .identity = "nobody-service"};
    nd.opts = &o;
    stderr_of(client_no_detail, &nd, out, sizeof(out));
    assert_int_equal(nd.rc, ORPC_ECONFIG);
    assert_non_null(strstr(out, "orpc: error: router: "
                                "opsconductor.jobs.v1.JobsService: no "
                                "credentials for legacy calls"));
    o.log = logger;
    g_log[0] = '\0';
    stderr_of(client_no_detail, &nd, out, sizeof(out));
    assert_int_equal(nd.rc, ORPC_ECONFIG);
    assert_string_equal(out, "");
    uv_mutex_lock(&g_log_lock);
    assert_non_null(strstr(g_log, "no credentials for legacy calls"));
    uv_mutex_unlock(&g_log_lock);
    uv_mutex_destroy(&g_log_lock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_route_in_legacy_mode),
        cmocka_unit_test(test_no_credentials_refused),
        cmocka_unit_test(test_modes),
        cmocka_unit_test(test_fallback_only_when_safe),
        cmocka_unit_test(test_shadow),
        cmocka_unit_test(test_shadow_grpc_watch_and_stats),
        cmocka_unit_test(test_legacy_retries),
        cmocka_unit_test(test_legacy_pool_from_env),
        cmocka_unit_test(test_legacy_async),
        cmocka_unit_test(test_legacy_interceptors),
        cmocka_unit_test(test_reload_to_legacy_credentials),
        cmocka_unit_test(test_routes_new_set_and_write_stats),
        cmocka_unit_test(test_routes_file_errors),
        cmocka_unit_test(test_routed_client_errors),
        cmocka_unit_test(test_null_detail),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
