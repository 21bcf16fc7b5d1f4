/*
 * clients_test.c — the OpsConductor clients configured from the environment
 * (clients/, orpc/clients.h) end to end: the five services through their
 * generated stubs against the legacy fixture (tests/legacy/legacy_server.py)
 * in the default legacy mode; JobsService routed to a real orpc server over
 * mutual TLS with certificates minted at start (scripts/orpc-certs.sh) and
 * over plaintext; channel sharing; configuration errors and their messages;
 * a slow and an oversized legacy reply through the stubs; and the routing
 * table's reload on SIGHUP, including after the env is gone.
 *
 * Everything listens on 127.0.0.1 with ephemeral ports; the fixture and the
 * temporary directory are removed by the group teardown.  Every wait is a
 * bounded poll.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <orpc/compat/json.h>
#include <orpc/opsconductor.h>
#include <orpc/orpc.h>

#ifndef LEGACY_SERVER
#error "LEGACY_SERVER must name tests/legacy/legacy_server.py"
#endif
#ifndef ORPC_CERTS
#error "ORPC_CERTS must name scripts/orpc-certs.sh"
#endif

#define JOBS (&opsconductor__jobs__v1__jobs_service__orpc_desc)
#define SPIFFE(name) "spiffe://opsconductor.local/service/" name

static pid_t g_fixture = -1;
static int g_legacy_port;
static char g_url[64];
static char g_dir[64];
static char g_plain_target[64]; /* a JobsService over h2c */
static char g_mtls_target[64];  /* the same over mutual TLS */
static orpc_server *g_plain, *g_mtls;

/* What the gRPC side saw (its handlers run on worker threads). */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_grpc_calls;
static char g_peer_id[256];
static char g_peer_addr[64];
static char g_log[8192];

static void logger(orpc_log_level lvl, const char *msg, void *ud)
{
    (void)lvl;
    (void)ud;
    pthread_mutex_lock(&g_lock);
    size_t n = strlen(g_log);
    snprintf(g_log + n, sizeof(g_log) - n, "%s\n", msg);
    pthread_mutex_unlock(&g_lock);
}

static int log_has(const char *s)
{
    pthread_mutex_lock(&g_lock);
    int found = strstr(g_log, s) != NULL;
    pthread_mutex_unlock(&g_lock);
    return found;
}

static void path_in_dir(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", g_dir, name);
}

/* ---- the gRPC side: jobs are called "from-grpc" ---- */

static orpc_status
grpc_get_job(orpc_ctx *ctx, const Opsconductor__Jobs__V1__GetJobRequest *req,
             Opsconductor__Jobs__V1__GetJobResponse *resp, void *ud)
{
    (void)ud;
    const char *id = orpc_ctx_peer_identity(ctx);
    const char *addr = orpc_ctx_peer_address(ctx);
    pthread_mutex_lock(&g_lock);
    g_grpc_calls++;
    snprintf(g_peer_id, sizeof(g_peer_id), "%s", id ? id : "");
    snprintf(g_peer_addr, sizeof(g_peer_addr), "%s", addr ? addr : "");
    pthread_mutex_unlock(&g_lock);
    char json[96];
    int n =
        snprintf(json, sizeof(json), "{\"name\": \"from-grpc\", \"id\": %lld}",
                 (long long)req->job_id);
    ProtobufCMessage *s = NULL;
    orpc_error_detail jd;
    if (orpc_json_decode(&s, &google__protobuf__struct__orpc_info, json,
                         (size_t)n, NULL,
                         orpc_arena_allocator(orpc_ctx_arena(ctx)), &jd) != 0)
        return orpc_status_new(ORPC_INTERNAL, jd.message);
    resp->job = (Google__Protobuf__Struct *)s;
    return ORPC_STATUS_OK;
}

static const Opsconductor__Jobs__V1__JobsService_Handlers grpc_jobs = {
    .get_job = grpc_get_job};

static int grpc_calls(void)
{
    pthread_mutex_lock(&g_lock);
    int n = g_grpc_calls;
    pthread_mutex_unlock(&g_lock);
    return n;
}

static int start_server(orpc_server **out, const orpc_server_opts *so,
                        char *target, size_t len)
{
    int port;
    if (orpc_server_new(out, so, NULL, NULL) != 0)
        return -1;
    if (opsconductor__jobs__v1__jobs_service__server__register(*out, &grpc_jobs,
                                                               NULL) != 0 ||
        orpc_server_listen(*out, "127.0.0.1:0", &port, NULL) != 0 ||
        orpc_server_start(*out) != 0) {
        orpc_server_free(*out);
        *out = NULL;
        return -1;
    }
    snprintf(target, len, "127.0.0.1:%d", port);
    return 0;
}

/* Stops and frees |srv|; -1 when the shutdown or the wait failed.  (No
 * assert: the group teardown calls it and must go on cleaning up.) */
static int stop_server(orpc_server *srv)
{
    if (srv == NULL)
        return 0;
    int rc = orpc_server_shutdown(srv, 100);
    int wrc = orpc_server_wait(srv);
    orpc_server_free(srv);
    if (rc != 0 || wrc != 0) {
        fprintf(stderr, "clients_test: stopping a server: %s / %s\n",
                orpc_strerror(rc), orpc_strerror(wrc));
        return -1;
    }
    return 0;
}

/* ---- the legacy fixture ---- */

static int start_fixture(void)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    g_fixture = fork();
    if (g_fixture < 0)
        return -1;
    if (g_fixture == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        execl("/usr/bin/python3", "python3", LEGACY_SERVER, "--port=0",
              "--host=127.0.0.1", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char line[128];
    if (f != NULL && fgets(line, sizeof(line), f) != NULL)
        sscanf(line, "listening on %d", &g_legacy_port);
    if (f != NULL)
        fclose(f);
    else
        close(fds[0]);
    if (g_legacy_port <= 0)
        return -1;
    snprintf(g_url, sizeof(g_url), "http://127.0.0.1:%d", g_legacy_port);
    return 0;
}

/* POSTs |body| to the fixture's control API; returns the HTTP status. */
static int fixture_post(const char *path, const char *body)
{
    char req[1024], reply[512];
    int n = snprintf(req, sizeof(req),
                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     path, strlen(body), body);
    if (n <= 0 || (size_t)n >= sizeof(req))
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = 5};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
        close(fd);
        return -1;
    }
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)g_legacy_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int status = -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        send(fd, req, (size_t)n, 0) == n) {
        size_t got = 0;
        while (got + 1 < sizeof(reply) && memchr(reply, '\n', got) == NULL) {
            ssize_t r = recv(fd, reply + got, sizeof(reply) - 1 - got, 0);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        reply[got] = '\0';
        if (sscanf(reply, "HTTP/1.%*d %d", &status) != 1)
            status = -1;
    }
    close(fd);
    return status;
}

/* ---- group set-up: certificates, fixture, servers, environment ---- */

static int group_teardown(void **state)
{
    (void)state;
    int failed = stop_server(g_plain) != 0;
    failed |= stop_server(g_mtls) != 0;
    g_plain = g_mtls = NULL;
    if (g_fixture > 0) {
        kill(g_fixture, SIGTERM);
        waitpid(g_fixture, NULL, 0);
        g_fixture = -1;
    }
    if (g_dir[0] == '\0')
        return failed ? -1 : 0;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    return system(cmd) == 0 && !failed ? 0 : -1;
}

/* cmocka skips the group teardown when the set-up fails: clean up here. */
static int setup_failed(const char *what)
{
    fprintf(stderr, "clients_test: set-up failed: %s\n", what);
    group_teardown(NULL);
    return -1;
}

static int group_setup(void **state)
{
    (void)state;
    char cmd[512], ca[128], cert[128], key[128];
    signal(SIGPIPE, SIG_IGN);
    snprintf(g_dir, sizeof(g_dir), "/tmp/orpc-clients-XXXXXX");
    if (mkdtemp(g_dir) == NULL) {
        g_dir[0] = '\0';
        return setup_failed("mkdtemp");
    }
    snprintf(cmd, sizeof(cmd), "sh %s all --out %s/pki >/dev/null", ORPC_CERTS,
             g_dir);
    if (system(cmd) != 0)
        return setup_failed(ORPC_CERTS);
    if (start_fixture() != 0)
        return setup_failed(LEGACY_SERVER);
    static const char *const urls[] = {
        "AUTH_SERVICE_URL", "JOBS_SERVICE_URL", "NOTIFICATION_SERVICE_URL",
        "CREDENTIALS_SERVICE_URL", "USER_SERVICE_URL"};
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++)
        if (setenv(urls[i], g_url, 1) != 0)
            return setup_failed("setenv");
    if (setenv("SCHEDULER_SERVICE_USERNAME", "scheduler-service", 1) != 0 ||
        setenv("SCHEDULER_SERVICE_PASSWORD", "scheduler-secret", 1) != 0)
        return setup_failed("setenv");

    orpc_server_opts plain = {.plaintext = 1, .io_threads = 1};
    path_in_dir(ca, sizeof(ca), "pki/ca.pem");
    path_in_dir(cert, sizeof(cert), "pki/jobs.pem");
    path_in_dir(key, sizeof(key), "pki/jobs.key");
    orpc_server_opts mtls = {.tls = {.ca_file = ca,
                                     .cert_file = cert,
                                     .key_file = key,
                                     .require_client_cert = 1},
                             .io_threads = 1};
    if (start_server(&g_plain, &plain, g_plain_target,
                     sizeof(g_plain_target)) != 0 ||
        start_server(&g_mtls, &mtls, g_mtls_target, sizeof(g_mtls_target)) != 0)
        return setup_failed("orpc servers");
    return 0;
}

/* Each test starts from the same environment: legacy routing, identity
 * scheduler-service, no gRPC settings; and a fixture without rules. */
static int setup(void **state)
{
    (void)state;
    static const char *const vars[] = {"ORPC_ROUTE_JOBS",
                                       "ORPC_ROUTES_FILE",
                                       "ORPC_TLS_CA",
                                       "ORPC_TLS_CERT",
                                       "ORPC_TLS_KEY",
                                       "ORPC_PLAINTEXT",
                                       "ORPC_LEGACY_CA_FILE",
                                       "JOBS_SERVICE_GRPC_TARGET",
                                       "JOBS_SERVICE_GRPC_SPIFFE_ID",
                                       "JOBS_SERVICE_GRPC_SERVER_NAME",
                                       "JOBS_SERVICE_GRPC_SERVICE_CONFIG",
                                       "SERVICE_HTTP_TIMEOUT",
                                       "SERVICE_HTTP_MAX_RETRIES",
                                       "SERVICE_HTTP_RETRY_DELAY"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
    setenv("ORPC_IDENTITY", "scheduler-service", 1);
    setenv("JOBS_SERVICE_URL", g_url, 1);
    pthread_mutex_lock(&g_lock);
    g_log[0] = '\0';
    pthread_mutex_unlock(&g_lock);
    return fixture_post("/_fixture/reset", "{}") == 200 ? 0 : -1;
}

static void set_mtls_env(const char *client)
{
    char ca[128], cert[128], key[128], name[64];
    path_in_dir(ca, sizeof(ca), "pki/ca.pem");
    snprintf(name, sizeof(name), "pki/%s.pem", client);
    path_in_dir(cert, sizeof(cert), name);
    snprintf(name, sizeof(name), "pki/%s.key", client);
    path_in_dir(key, sizeof(key), name);
    setenv("ORPC_TLS_CA", ca, 1);
    setenv("ORPC_TLS_CERT", cert, 1);
    setenv("ORPC_TLS_KEY", key, 1);
}

/* ---- helpers ---- */

static const Google__Protobuf__Value *field(const Google__Protobuf__Struct *s,
                                            const char *key)
{
    for (size_t i = 0; s != NULL && i < s->n_fields; i++)
        if (strcmp(s->fields[i]->key, key) == 0)
            return s->fields[i]->value;
    return NULL;
}

static double number(const Google__Protobuf__Struct *s, const char *key)
{
    const Google__Protobuf__Value *v = field(s, key);
    return v && v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE
               ? v->number_value
               : -1;
}

static const char *string(const Google__Protobuf__Struct *s, const char *key)
{
    const Google__Protobuf__Value *v = field(s, key);
    return v && v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE
               ? v->string_value
               : "";
}

/* One GetJob through the generated stub. */
typedef struct outcome {
    orpc_code code;
    orpc_served_by by;
    char name[64];
    double id;
    char msg[512];
} outcome;

static outcome get_job(orpc_client *c, int64_t job_id, int64_t timeout_ms)
{
    outcome o = {.by = (orpc_served_by)-1, .id = -1};
    Opsconductor__Jobs__V1__GetJobRequest g =
        OPSCONDUCTOR__JOBS__V1__GET_JOB_REQUEST__INIT;
    g.job_id = job_id;
    Opsconductor__Jobs__V1__GetJobResponse *job = NULL;
    orpc_call_opts co = {.timeout_ms = timeout_ms, .served_by = &o.by};
    orpc_status st =
        opsconductor__jobs__v1__jobs_service__client__get_job(c, &g, &job, &co);
    o.code = st.code;
    snprintf(o.msg, sizeof(o.msg), "%s", st.message ? st.message : "");
    if (st.code == ORPC_OK) {
        assert_non_null(job);
        snprintf(o.name, sizeof(o.name), "%s", string(job->job, "name"));
        o.id = number(job->job, "id");
        opsconductor__jobs__v1__get_job_response__free_unpacked(job, NULL);
    }
    orpc_status_clear(&st);
    return o;
}

static orpc_client *client_of(orpc_env *env, const orpc_service_desc *svc)
{
    orpc_error_detail why;
    orpc_client *c = NULL;
    int rc = orpc_env_client_new(&c, env, svc, &why);
    if (rc != 0)
        fail_msg("%s: %s (%s)", svc->full_name, orpc_err_name(rc), why.message);
    assert_non_null(c);
    return c;
}

static orpc_env *env_of(const orpc_env_opts *opts)
{
    orpc_error_detail why;
    orpc_env *env = NULL;
    int rc = orpc_env_new(&env, opts, &why);
    if (rc != 0)
        fail_msg("orpc_env_new: %s (%s)", orpc_err_name(rc), why.message);
    return env;
}

static int sighup_caught(void)
{
    struct sigaction sa;
    sigaction(SIGHUP, NULL, &sa);
    return sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN;
}

/* ---- tests ---- */

static void test_five_services_legacy(void **state)
{
    (void)state;
    orpc_env *env = env_of(NULL); /* with its SIGHUP watcher */
    assert_non_null(orpc_env_routes(env));
    assert_true(sighup_caught());
    orpc_client *auth =
        client_of(env, &opsconductor__auth__v1__auth_service__orpc_desc);
    orpc_client *jobs = client_of(env, JOBS);
    orpc_client *notif = client_of(
        env, &opsconductor__notification__v1__notification_service__orpc_desc);
    orpc_client *cred = client_of(
        env, &opsconductor__credentials__v1__credentials_service__orpc_desc);
    orpc_client *users =
        client_of(env, &opsconductor__user__v1__user_service__orpc_desc);
    /* the table outlives the env with a reference */
    orpc_routes *routes = orpc_routes_ref(orpc_env_routes(env));
    orpc_route_stats rs;
    assert_int_equal(
        orpc_routes_stats(
            routes, opsconductor__jobs__v1__jobs_service__method__get_job, &rs),
        0);
    uint64_t legacy_before = rs.legacy;
    /* the clients keep what they use */
    orpc_env_free(env);
    orpc_served_by by;
    orpc_call_opts co = {.timeout_ms = 10000, .served_by = &by};
    orpc_status st;

    /* auth: Login */
    Opsconductor__Auth__V1__LoginRequest lr =
        OPSCONDUCTOR__AUTH__V1__LOGIN_REQUEST__INIT;
    lr.username = "test-user";
    lr.password = "test-password";
    Opsconductor__Auth__V1__LoginResponse *login = NULL;
    by = ORPC_SERVED_NONE;
    st = opsconductor__auth__v1__auth_service__client__login(auth, &lr, &login,
                                                             &co);
    assert_int_equal(st.code, ORPC_OK);
    assert_int_equal(by, ORPC_SERVED_LEGACY);
    assert_true(strlen(login->access_token) > 10);
    assert_string_equal(login->token_type, "bearer");
    opsconductor__auth__v1__login_response__free_unpacked(login, NULL);

    /* jobs: GetJob */
    outcome o = get_job(jobs, 7, 10000);
    assert_int_equal(o.code, ORPC_OK);
    assert_int_equal(o.by, ORPC_SERVED_LEGACY);
    assert_true(o.id == 7);
    assert_string_not_equal(o.name, "from-grpc");

    /* notification: SendNotification */
    Opsconductor__Notification__V1__SendNotificationRequest n =
        OPSCONDUCTOR__NOTIFICATION__V1__SEND_NOTIFICATION_REQUEST__INIT;
    n.type =
        OPSCONDUCTOR__NOTIFICATION__V1__NOTIFICATION_TYPE__NOTIFICATION_TYPE_EMAIL;
    n.destination = "ops@example.org";
    const char *email = "{\"subject\": \"s\", \"body\": \"b\"}";
    ProtobufCMessage *payload = NULL;
    assert_int_equal(orpc_json_decode(&payload,
                                      &google__protobuf__struct__orpc_info,
                                      email, strlen(email), NULL, NULL, NULL),
                     0);
    n.payload = (Google__Protobuf__Struct *)payload;
    Opsconductor__Notification__V1__SendNotificationResponse *nr = NULL;
    by = ORPC_SERVED_NONE;
    st =
        opsconductor__notification__v1__notification_service__client__send_notification(
            notif, &n, &nr, &co);
    assert_int_equal(st.code, ORPC_OK);
    assert_int_equal(by, ORPC_SERVED_LEGACY);
    assert_string_equal(string(nr->result, "status"), "sent");
    assert_string_equal(string(nr->result, "destination"), "ops@example.org");
    opsconductor__notification__v1__send_notification_response__free_unpacked(
        nr, NULL);
    protobuf_c_message_free_unpacked(payload, NULL);

    /* credentials: GetCredential */
    Opsconductor__Credentials__V1__GetCredentialRequest gc =
        OPSCONDUCTOR__CREDENTIALS__V1__GET_CREDENTIAL_REQUEST__INIT;
    gc.credential_id = 3;
    Opsconductor__Credentials__V1__GetCredentialResponse *gcr = NULL;
    by = ORPC_SERVED_NONE;
    st =
        opsconductor__credentials__v1__credentials_service__client__get_credential(
            cred, &gc, &gcr, &co);
    assert_int_equal(st.code, ORPC_OK);
    assert_int_equal(by, ORPC_SERVED_LEGACY);
    assert_true(number(gcr->credential, "id") == 3);
    opsconductor__credentials__v1__get_credential_response__free_unpacked(gcr,
                                                                          NULL);

    /* user: GetUser */
    Opsconductor__User__V1__GetUserRequest gu =
        OPSCONDUCTOR__USER__V1__GET_USER_REQUEST__INIT;
    gu.user_id = 9;
    Opsconductor__User__V1__GetUserResponse *gur = NULL;
    by = ORPC_SERVED_NONE;
    st = opsconductor__user__v1__user_service__client__get_user(users, &gu,
                                                                &gur, &co);
    assert_int_equal(st.code, ORPC_OK);
    assert_int_equal(by, ORPC_SERVED_LEGACY);
    assert_true(number(gur->user, "id") == 9);
    opsconductor__user__v1__get_user_response__free_unpacked(gur, NULL);

    /* none of it reached the gRPC servers; the table counted the call */
    assert_int_equal(grpc_calls(), 0);
    assert_int_equal(
        orpc_routes_stats(
            routes, opsconductor__jobs__v1__jobs_service__method__get_job, &rs),
        0);
    assert_int_equal(rs.legacy, legacy_before + 1);
    assert_int_equal(rs.grpc, 0);
    orpc_client_free(auth);
    orpc_client_free(notif);
    orpc_client_free(cred);
    orpc_client_free(users);
    orpc_client_free(jobs);
    assert_true(sighup_caught()); /* |routes| still holds the table */
    /* the last reference takes the watcher with it */
    orpc_routes_unref(routes);
    assert_false(sighup_caught());
}

static void test_client_new_from_env(void **state)
{
    (void)state;
    orpc_client *c = NULL;
    assert_int_equal(orpc_client_new_from_env(&c, JOBS, NULL), 0);
    outcome o = get_job(c, 11, 10000);
    assert_int_equal(o.code, ORPC_OK);
    assert_int_equal(o.by, ORPC_SERVED_LEGACY);
    assert_true(o.id == 11);
    orpc_client_free(c);
    /* a bad setting: no client, and the code says why */
    setenv("ORPC_PLAINTEXT", "yes", 1);
    c = (orpc_client *)&c; /* not NULL: the call must clear it */
    orpc_error_detail why = {0};
    assert_int_equal(orpc_client_new_from_env(&c, JOBS, &why), ORPC_ECONFIG);
    assert_null(c);
    assert_int_equal(why.code, ORPC_ECONFIG);
    assert_non_null(strstr(why.message, "ORPC_PLAINTEXT"));
    assert_int_equal(orpc_client_new_from_env(NULL, JOBS, &why), ORPC_EINVAL);
    assert_int_equal(why.code, ORPC_EINVAL);
    assert_int_equal(orpc_client_new_from_env(&c, NULL, NULL), ORPC_EINVAL);
}

static void test_grpc_over_mtls(void **state)
{
    (void)state;
    set_mtls_env("scheduler");
    setenv("ORPC_ROUTE_JOBS", "grpc", 1);
    setenv("JOBS_SERVICE_GRPC_TARGET", g_mtls_target, 1);
    setenv("JOBS_SERVICE_GRPC_SPIFFE_ID", SPIFFE("jobs"), 1);
    orpc_env_opts eo = {.no_watch = 1, .log = logger};
    orpc_env *env = env_of(&eo);
    orpc_client *a = client_of(env, JOBS);
    orpc_client *b = client_of(env, JOBS);
    int before = grpc_calls();
    outcome o = get_job(a, 5, 10000);
    assert_int_equal(o.code, ORPC_OK);
    assert_int_equal(o.by, ORPC_SERVED_GRPC);
    assert_string_equal(o.name, "from-grpc");
    assert_true(o.id == 5);
    assert_int_equal(grpc_calls(), before + 1);
    char addr_a[64];
    pthread_mutex_lock(&g_lock);
    assert_string_equal(g_peer_id, SPIFFE("scheduler"));
    snprintf(addr_a, sizeof(addr_a), "%s", g_peer_addr);
    pthread_mutex_unlock(&g_lock);
    /* clients of one env share the target's channel: same connection */
    o = get_job(b, 6, 10000);
    assert_int_equal(o.code, ORPC_OK);
    assert_int_equal(o.by, ORPC_SERVED_GRPC);
    pthread_mutex_lock(&g_lock);
    assert_string_equal(g_peer_addr, addr_a);
    pthread_mutex_unlock(&g_lock);
    orpc_client_free(a);
    orpc_client_free(b);
    /* another env has its own channel */
    orpc_env *env2 = env_of(&eo);
    orpc_client *c = client_of(env2, JOBS);
    orpc_env_free(env2);
    o = get_job(c, 7, 10000);
    assert_int_equal(o.code, ORPC_OK);
    pthread_mutex_lock(&g_lock);
    assert_string_not_equal(g_peer_addr, addr_a);
    pthread_mutex_unlock(&g_lock);
    orpc_client_free(c);
    orpc_env_free(env);

    /* a server that is not the expected identity is refused before any
     * call reaches it */
    setenv("JOBS_SERVICE_GRPC_SPIFFE_ID", SPIFFE("user"), 1);
    env = env_of(&eo);
    c = client_of(env, JOBS);
    before = grpc_calls();
    o = get_job(c, 7, 5000);
    assert_int_not_equal(o.code, ORPC_OK);
    assert_int_equal(grpc_calls(), before);
    orpc_client_free(c);
    orpc_env_free(env);
    /* server authentication only (CA, no client certificate): the server
     * wants one, so nothing is served */
    unsetenv("JOBS_SERVICE_GRPC_SPIFFE_ID");
    unsetenv("ORPC_TLS_CERT");
    unsetenv("ORPC_TLS_KEY");
    env = env_of(&eo);
    c = client_of(env, JOBS);
    o = get_job(c, 7, 5000);
    assert_int_not_equal(o.code, ORPC_OK);
    assert_int_equal(grpc_calls(), before);
    orpc_client_free(c);
    orpc_env_free(env);
}

static void test_grpc_plaintext_and_no_target(void **state)
{
    (void)state;
    setenv("ORPC_ROUTE_JOBS", "grpc", 1);
    /* no target: the client exists, gRPC-routed calls are UNAVAILABLE with
     * a message saying so, and nothing was served */
    orpc_env_opts eo = {.no_watch = 1};
    orpc_env *env = env_of(&eo);
    orpc_client *c = client_of(env, JOBS);
    outcome o = get_job(c, 7, 5000);
    assert_int_equal(o.code, ORPC_UNAVAILABLE);
    assert_int_equal(o.by, ORPC_SERVED_NONE);
    assert_non_null(strstr(o.msg, "no gRPC target"));
    orpc_client_free(c);
    orpc_env_free(env);
    /* plaintext, asked for explicitly; every JobsService method goes over
     * gRPC, so no service token (nor identity) is needed */
    unsetenv("ORPC_IDENTITY");
    setenv("ORPC_PLAINTEXT", "1", 1);
    setenv("JOBS_SERVICE_GRPC_TARGET", g_plain_target, 1);
    env = env_of(&eo);
    c = client_of(env, JOBS);
    o = get_job(c, 8, 5000);
    assert_int_equal(o.code, ORPC_OK);
    assert_int_equal(o.by, ORPC_SERVED_GRPC);
    assert_string_equal(o.name, "from-grpc");
    pthread_mutex_lock(&g_lock);
    assert_string_equal(g_peer_id, ""); /* no certificate, no identity */
    pthread_mutex_unlock(&g_lock);
    orpc_client_free(c);
    orpc_env_free(env);
}

/* orpc_env_new() with the current environment must fail with ECONFIG and
 * a message containing |want|. */
static void env_refused(const char *want)
{
    orpc_error_detail why = {0};
    orpc_env *env = (orpc_env *)&env; /* not NULL: must be cleared */
    assert_int_equal(orpc_env_new(&env, NULL, &why), ORPC_ECONFIG);
    assert_null(env);
    assert_int_equal(why.code, ORPC_ECONFIG);
    if (strstr(why.message, want) == NULL)
        fail_msg("expected \"%s\" in \"%s\"", want, why.message);
}

/* orpc_env_client_new() of |svc| must fail with ECONFIG and a message
 * containing |want| (and |want2| when not NULL). */
static void client_refused(const orpc_service_desc *svc, const char *want,
                           const char *want2)
{
    orpc_error_detail why = {0};
    char *err = why.message;
    orpc_env_opts eo = {.no_watch = 1};
    orpc_env *env = env_of(&eo);
    orpc_client *c = (orpc_client *)&c; /* not NULL: must be cleared */
    assert_int_equal(orpc_env_client_new(&c, env, svc, &why), ORPC_ECONFIG);
    assert_null(c);
    if (strstr(err, want) == NULL || (want2 && strstr(err, want2) == NULL))
        fail_msg("expected \"%s\" and \"%s\" in \"%s\"", want,
                 want2 ? want2 : "", err);
    orpc_env_free(env);
}

static void write_file(const char *path, const char *text)
{
    char tmp[160];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, path), 0);
}

/* <PREFIX>_GRPC_SERVICE_CONFIG: a file the channel's service config comes
 * from.  Bad files are refused naming the variable, the file and (for a
 * config that does not validate) the JSON path; a good one is used. */
static void test_service_config_file(void **state)
{
    (void)state;
    char good[128], bad[128];
    path_in_dir(good, sizeof(good), "jobs-service-config.json");
    path_in_dir(bad, sizeof(bad), "bad-service-config.json");
    write_file(good,
               "{\"methodConfig\": [{\"name\": [{\"service\": "
               "\"opsconductor.jobs.v1.JobsService\"}], \"timeout\": \"30s\", "
               "\"retryPolicy\": {\"maxAttempts\": 3, \"initialBackoff\": "
               "\"0.1s\", \"maxBackoff\": \"1s\", \"backoffMultiplier\": 2, "
               "\"retryableStatusCodes\": [\"UNAVAILABLE\"]}}]}");
    write_file(bad, "{\"methodConfig\": [{\"retryPolicy\": {\"maxAttempts\": "
                    "1}}]}");
    setenv("JOBS_SERVICE_GRPC_SERVICE_CONFIG", good, 1);
    client_refused(JOBS,
                   "JOBS_SERVICE_GRPC_SERVICE_CONFIG is set but "
                   "JOBS_SERVICE_GRPC_TARGET is not",
                   NULL);
    setenv("ORPC_PLAINTEXT", "1", 1);
    setenv("JOBS_SERVICE_GRPC_TARGET", g_plain_target, 1);
    setenv("JOBS_SERVICE_GRPC_SERVICE_CONFIG", "/nonexistent/sc.json", 1);
    client_refused(JOBS,
                   "JOBS_SERVICE_GRPC_SERVICE_CONFIG=/nonexistent/sc.json: no "
                   "such file",
                   NULL);
    setenv("JOBS_SERVICE_GRPC_SERVICE_CONFIG", g_dir, 1);
    client_refused(JOBS, "JOBS_SERVICE_GRPC_SERVICE_CONFIG=", "not a regular");
    setenv("JOBS_SERVICE_GRPC_SERVICE_CONFIG", bad, 1);
    client_refused(JOBS, bad,
                   ": methodConfig[0].retryPolicy.maxAttempts: must be at "
                   "least 2");
    /* a good one: calls go through; and without one (another channel of
     * the same target: the file is part of a channel's settings) too */
    setenv("JOBS_SERVICE_GRPC_SERVICE_CONFIG", good, 1);
    setenv("ORPC_ROUTE_JOBS", "grpc", 1);
    orpc_env_opts eo = {.no_watch = 1};
    orpc_env *env = env_of(&eo);
    orpc_client *a = client_of(env, JOBS);
    outcome o = get_job(a, 9, 5000);
    assert_int_equal(o.code, ORPC_OK);
    assert_int_equal(o.by, ORPC_SERVED_GRPC);
    unsetenv("JOBS_SERVICE_GRPC_SERVICE_CONFIG");
    orpc_client *b = client_of(env, JOBS);
    o = get_job(b, 10, 5000);
    assert_int_equal(o.code, ORPC_OK);
    orpc_client_free(a);
    orpc_client_free(b);
    orpc_env_free(env);
}

static void test_config_errors(void **state)
{
    (void)state;
    char ca[128], cert[128], key[128], long_value[700];
    path_in_dir(ca, sizeof(ca), "pki/ca.pem");
    path_in_dir(cert, sizeof(cert), "pki/scheduler.pem");
    path_in_dir(key, sizeof(key), "pki/scheduler.key");

    /* a target without TLS and without ORPC_PLAINTEXT: secure by default */
    setenv("JOBS_SERVICE_GRPC_TARGET", g_plain_target, 1);
    client_refused(JOBS, "JOBS_SERVICE_GRPC_TARGET is set but no TLS",
                   "ORPC_PLAINTEXT=1");
    client_refused(JOBS, "ORPC_TLS_CA", NULL);
    /* TLS-only settings with plaintext */
    setenv("ORPC_PLAINTEXT", "1", 1);
    setenv("JOBS_SERVICE_GRPC_SPIFFE_ID", SPIFFE("jobs"), 1);
    client_refused(JOBS, "JOBS_SERVICE_GRPC_SPIFFE_ID needs TLS", NULL);
    unsetenv("ORPC_PLAINTEXT");

    /* half-configured TLS names the missing variable */
    setenv("ORPC_TLS_CERT", cert, 1);
    env_refused("ORPC_TLS_KEY is not");
    unsetenv("ORPC_TLS_CERT");
    setenv("ORPC_TLS_KEY", key, 1);
    env_refused("ORPC_TLS_CERT is not");
    setenv("ORPC_TLS_CERT", cert, 1);
    env_refused("ORPC_TLS_CA is not");
    setenv("ORPC_TLS_CA", "/nonexistent/ca.pem", 1);
    env_refused("ORPC_TLS_CA=/nonexistent/ca.pem: no such file");
    /* TLS material that does not load: a key that is not a key */
    setenv("ORPC_TLS_CA", ca, 1);
    setenv("ORPC_TLS_KEY", ca, 1);
    client_refused(JOBS, "JOBS_SERVICE_GRPC_TARGET: the channel's TLS", NULL);
    setenv("ORPC_TLS_KEY", key, 1);
    /* a bad SPIFFE ID, a server name without a target, a bad target */
    setenv("JOBS_SERVICE_GRPC_SPIFFE_ID", "https://jobs", 1);
    client_refused(JOBS, "JOBS_SERVICE_GRPC_SPIFFE_ID: not a SPIFFE ID", NULL);
    unsetenv("JOBS_SERVICE_GRPC_SPIFFE_ID");
    setenv("JOBS_SERVICE_GRPC_SERVER_NAME", "jobs/..", 1);
    client_refused(JOBS, "JOBS_SERVICE_GRPC_SERVER_NAME: expected a DNS name",
                   NULL);
    unsetenv("JOBS_SERVICE_GRPC_TARGET");
    setenv("JOBS_SERVICE_GRPC_SERVER_NAME", "jobs", 1);
    client_refused(JOBS, "JOBS_SERVICE_GRPC_TARGET is not", NULL);
    unsetenv("JOBS_SERVICE_GRPC_SERVER_NAME");
    setenv("JOBS_SERVICE_GRPC_TARGET", "127.0.0.1 50051", 1);
    client_refused(JOBS, "JOBS_SERVICE_GRPC_TARGET: contains a space", NULL);
    setenv("JOBS_SERVICE_GRPC_TARGET", "bad\x01target", 1);
    client_refused(JOBS, "JOBS_SERVICE_GRPC_TARGET: contains a control", NULL);
    memset(long_value, 'a', sizeof(long_value) - 1);
    long_value[sizeof(long_value) - 1] = '\0';
    setenv("JOBS_SERVICE_GRPC_TARGET", long_value, 1);
    client_refused(JOBS, "JOBS_SERVICE_GRPC_TARGET: longer than 512 bytes",
                   NULL);
    setenv("JOBS_SERVICE_GRPC_TARGET", "[::1:50051", 1);
    client_refused(JOBS, "JOBS_SERVICE_GRPC_TARGET=[::1:50051: not a gRPC",
                   NULL);
    unsetenv("JOBS_SERVICE_GRPC_TARGET");
    unsetenv("ORPC_TLS_CA");
    unsetenv("ORPC_TLS_CERT");
    unsetenv("ORPC_TLS_KEY");

    /* missing credentials name the variables to set */
    setenv("ORPC_IDENTITY", "nobody-service", 1);
    client_refused(JOBS, "NOBODY_SERVICE_USERNAME", "NOBODY_SERVICE_PASSWORD");
    setenv("NOBODY_SERVICE_USERNAME", "nobody", 1);
    client_refused(JOBS, "the password is not set", NULL);
    unsetenv("NOBODY_SERVICE_USERNAME");
    unsetenv("ORPC_IDENTITY");
    client_refused(JOBS, "set ORPC_IDENTITY", NULL);
    /* ...but the auth service needs no token: no identity is fine */
    orpc_env_opts eo = {.no_watch = 1};
    orpc_env *env = env_of(&eo);
    orpc_client *c =
        client_of(env, &opsconductor__auth__v1__auth_service__orpc_desc);
    orpc_client_free(c);
    orpc_env_free(env);

    /* bad values */
    setenv("ORPC_IDENTITY", "scheduler service!", 1);
    env_refused("ORPC_IDENTITY: contains a space");
    setenv("ORPC_IDENTITY", "scheduler.service", 1);
    env_refused("ORPC_IDENTITY: only letters");
    setenv("ORPC_IDENTITY", long_value + 600, 1); /* 99 bytes */
    env_refused("ORPC_IDENTITY: longer than 64 bytes");
    setenv("ORPC_IDENTITY", "scheduler-service", 1);
    orpc_env_opts bad_id = {.identity = "../etc", .no_watch = 1};
    orpc_error_detail why;
    assert_int_equal(orpc_env_new(&env, &bad_id, &why), ORPC_ECONFIG);
    assert_non_null(strstr(why.message, "orpc_env_opts.identity"));
    setenv("ORPC_PLAINTEXT", "yes", 1);
    env_refused("ORPC_PLAINTEXT: expected 1");
    unsetenv("ORPC_PLAINTEXT");
    setenv("ORPC_LEGACY_CA_FILE", "/nonexistent/legacy-ca.pem", 1);
    env_refused("ORPC_LEGACY_CA_FILE=/nonexistent/legacy-ca.pem: no such");
    unsetenv("ORPC_LEGACY_CA_FILE");
    setenv("JOBS_SERVICE_URL", "ftp://jobs", 1);
    client_refused(JOBS, "JOBS_SERVICE_URL: expected an http:// or https://",
                   NULL);
    setenv("JOBS_SERVICE_URL", g_url, 1);
    setenv("SERVICE_HTTP_TIMEOUT", "30s", 1);
    client_refused(JOBS, "SERVICE_HTTP_TIMEOUT: expected whole seconds, 1 to",
                   NULL);
    unsetenv("SERVICE_HTTP_TIMEOUT");
    setenv("SERVICE_HTTP_MAX_RETRIES", "11", 1);
    client_refused(JOBS, "SERVICE_HTTP_MAX_RETRIES: expected a count, 0 to 10",
                   NULL);
    unsetenv("SERVICE_HTTP_MAX_RETRIES");
    setenv("SERVICE_HTTP_RETRY_DELAY", "0.5", 1); /* fractions are fine */
    env = env_of(&eo);
    c = client_of(env, JOBS);
    orpc_client_free(c);
    orpc_env_free(env);
    setenv("SERVICE_HTTP_RETRY_DELAY", "1e3", 1);
    client_refused(JOBS, "SERVICE_HTTP_RETRY_DELAY: expected seconds", NULL);
    unsetenv("SERVICE_HTTP_RETRY_DELAY");
    /* the routing table's own messages come through */
    setenv("ORPC_ROUTES_FILE", "/nonexistent/routes.conf", 1);
    env_refused("/nonexistent/routes.conf");
    unsetenv("ORPC_ROUTES_FILE");
    setenv("ORPC_ROUTE_JOBS", "sideways", 1);
    env_refused("ORPC_ROUTE_JOBS");
    unsetenv("ORPC_ROUTE_JOBS");

    /* misuse */
    assert_int_equal(orpc_env_new(NULL, NULL, &why), ORPC_EINVAL);
    env = env_of(&eo);
    assert_int_equal(orpc_env_client_new(&c, env, NULL, &why), ORPC_EINVAL);
    orpc_service_desc fake = *JOBS;
    fake.magic = 0;
    assert_int_equal(orpc_env_client_new(&c, env, &fake, &why), ORPC_EINVAL);
    assert_int_equal(orpc_env_client_new(&c, NULL, JOBS, &why), ORPC_EINVAL);
    orpc_env_free(env);
    orpc_env_free(NULL);
    assert_null(orpc_env_routes(NULL));
}

static long maxrss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void test_slow_and_oversized_legacy_replies(void **state)
{
    (void)state;
    orpc_env_opts eo = {.no_watch = 1};
    orpc_env *env = env_of(&eo);
    orpc_client *c = client_of(env, JOBS);
    orpc_env_free(env);
    outcome o = get_job(c, 7, 10000); /* logs in; the token is cached */
    assert_int_equal(o.code, ORPC_OK);

    /* a reply 5 s late against a 300 ms deadline */
    assert_int_equal(
        fixture_post("/_fixture/config",
                     "{\"rules\": [{\"route\": \"GET /jobs/{job_id}\", "
                     "\"delay_ms\": 5000, \"times\": 1}]}"),
        200);
    o = get_job(c, 7, 300);
    /* the reply would come after 5 s, and OK: DEADLINE_EXCEEDED is the
     * deadline's doing (no timing asserted: that is for benchmarks) */
    assert_int_equal(o.code, ORPC_DEADLINE_EXCEEDED);
    assert_int_equal(o.by, ORPC_SERVED_LEGACY);

    /* 64 MiB replies, with and without a Content-Length, are refused
     * without being held */
    static const char *const rules[] = {
        "{\"rules\": [{\"route\": \"GET /jobs/{job_id}\", "
        "\"size\": 67108864, \"times\": 1}]}",
        "{\"rules\": [{\"route\": \"GET /jobs/{job_id}\", "
        "\"size\": 67108864, \"chunked\": true, \"times\": 1}]}"};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(fixture_post("/_fixture/config", rules[i]), 200);
        long before = maxrss_kib();
        o = get_job(c, 7, 30000);
        long grew = maxrss_kib() - before;
        assert_int_equal(o.code, ORPC_RESOURCE_EXHAUSTED);
        if (strstr(o.msg, "larger than the limit") == NULL)
            fail_msg("message: %s", o.msg);
        if (grew > 24 * 1024)
            fail_msg("max RSS grew by %ld KiB for a 64 MiB reply", grew);
    }
    /* and the client still works */
    o = get_job(c, 7, 10000);
    assert_int_equal(o.code, ORPC_OK);
    assert_true(o.id == 7);
    orpc_client_free(c);
}

/* Raises SIGHUP and polls (at most 200 x 10 ms) until GetJob is served by
 * |want|; returns the last outcome. */
static outcome reload_until(orpc_client *c, orpc_served_by want)
{
    assert_true(sighup_caught()); /* never kill ourselves */
    raise(SIGHUP);
    outcome o = {0};
    for (int i = 0; i < 200; i++) {
        o = get_job(c, 7, 5000);
        if (o.code == ORPC_OK && o.by == want)
            break;
        usleep(10000);
    }
    return o;
}

static void test_sighup_reload(void **state)
{
    (void)state;
    char file[128];
    path_in_dir(file, sizeof(file), "routes.conf");
    write_file(file, "opsconductor.jobs.v1.JobsService = legacy\n");
    setenv("ORPC_ROUTES_FILE", file, 1);
    setenv("ORPC_PLAINTEXT", "1", 1);
    setenv("JOBS_SERVICE_GRPC_TARGET", g_plain_target, 1);
    assert_false(sighup_caught());
    orpc_env_opts eo = {.log = logger};
    orpc_env *env = env_of(&eo);
    assert_true(sighup_caught());
    orpc_client *c = client_of(env, JOBS);
    outcome o = get_job(c, 7, 5000);
    assert_int_equal(o.code, ORPC_OK);
    assert_int_equal(o.by, ORPC_SERVED_LEGACY);

    /* to gRPC on SIGHUP */
    write_file(file, "opsconductor.jobs.v1.JobsService = grpc\n");
    o = reload_until(c, ORPC_SERVED_GRPC);
    assert_int_equal(o.code, ORPC_OK);
    assert_int_equal(o.by, ORPC_SERVED_GRPC);
    assert_string_equal(o.name, "from-grpc");
    assert_true(log_has("routes reloaded"));

    /* a broken file is refused and the table stays as it was */
    write_file(file, "opsconductor.jobs.v1.JobsService = sideways\n");
    raise(SIGHUP);
    for (int i = 0; i < 200 && !log_has("reload failed"); i++)
        usleep(10000);
    assert_true(log_has("reload failed"));
    assert_true(log_has("routes.conf:1"));
    o = get_job(c, 7, 5000);
    assert_int_equal(o.code, ORPC_OK);
    assert_int_equal(o.by, ORPC_SERVED_GRPC);

    /* the counters saw both sides */
    orpc_route_stats rs;
    assert_int_equal(
        orpc_routes_stats(orpc_env_routes(env),
                          opsconductor__jobs__v1__jobs_service__method__get_job,
                          &rs),
        0);
    assert_true(rs.legacy >= 1);
    assert_true(rs.grpc >= 2);

    /* the watcher outlives the env: its clients still reload */
    orpc_env_free(env);
    write_file(file, "opsconductor.jobs.v1.JobsService = legacy\n");
    o = reload_until(c, ORPC_SERVED_LEGACY);
    assert_int_equal(o.code, ORPC_OK);
    assert_int_equal(o.by, ORPC_SERVED_LEGACY);
    orpc_client_free(c);
    assert_false(sighup_caught());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_five_services_legacy, setup),
        cmocka_unit_test_setup(test_client_new_from_env, setup),
        cmocka_unit_test_setup(test_grpc_over_mtls, setup),
        cmocka_unit_test_setup(test_grpc_plaintext_and_no_target, setup),
        cmocka_unit_test_setup(test_config_errors, setup),
        cmocka_unit_test_setup(test_service_config_file, setup),
        cmocka_unit_test_setup(test_slow_and_oversized_legacy_replies, setup),
        cmocka_unit_test_setup(test_sighup_reload, setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
