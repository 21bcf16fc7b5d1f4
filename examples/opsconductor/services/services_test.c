/*
 * services_test.c — the OpsConductor services of opsconductor-service,
 * end to end: real processes on 127.0.0.1 ephemeral ports, mutual TLS
 * with a PKI minted into a temporary directory by scripts/orpc-certs.sh,
 * the example policies of policies/, and the generated C clients.
 *
 *   opsconductor_services_test GROUP
 *
 * GROUP is one of auth, jobs, jobs_restart, notification, credentials,
 * user, policy, legacy_policy (one ctest test each).  Every service the group
 * starts is stopped with SIGTERM and must exit 0; services also die with the
 * test
 * (--die-with-parent).  The data the services answer is held against the
 * legacy fixture by check_legacy.py, which compares each answer, encoded
 * in compat's legacy JSON profile, with tests/legacy/legacy_server.py's own
 * handlers, byte for byte.  Every wait is bounded in time and count.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include <orpc/compat/json.h>
#include <orpc/orpc.h>

#include "opsconductor/auth/v1/auth.orpc.h"
#include "opsconductor/credentials/v1/credentials.orpc.h"
#include "opsconductor/jobs/v1/jobs.orpc.h"
#include "opsconductor/notification/v1/notification.orpc.h"
#include "opsconductor/user/v1/user.orpc.h"

extern char **environ;

#define TD "spiffe://opsconductor.local/service/"

static char dir[256];   /* the temporary directory of this run */
static char certs[300]; /* dir/certs */

typedef struct proc {
    pid_t pid;
    int port;
    int admin_port;
    int legacy_port; /* with --legacy-listen */
    char log[320];
} proc;

/* --- helpers ------------------------------------------------------------- */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs argv to the end (at most 60 s); returns its exit code or -1. */
static int run(char *const argv[])
{
    pid_t pid;
    if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) != 0)
        return -1;
    int st = 0;
    for (int i = 0; i < 6000; i++) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && strcmp(s + n - t, tail) == 0;
}

/* Whether the file at |path| contains |needle|. */
static int file_contains(const char *path, const char *needle)
{
    FILE *f = needle != NULL ? fopen(path, "r") : NULL;
    if (f == NULL)
        return 0;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

/*
 * Starts `opsconductor-service --service=NAME` with its certificate, the
 * CA, its example policy and |extra| flags (NULL-terminated), waits (10 s
 * at most) for "listening on <port>".  Returns 0, or -1 when it did not
 * start (its stderr stays in p->log).
 */
static int start_as(proc *p, const char *name, const char *cert_name,
                    const char *const *extra)
{
    static int seq;
    char a_service[64], a_cert[400], a_key[400], a_ca[400], a_policy[400];
    snprintf(a_service, sizeof(a_service), "--service=%s", name);
    snprintf(a_cert, sizeof(a_cert), "--tls-cert=%s/%s.pem", certs, cert_name);
    snprintf(a_key, sizeof(a_key), "--tls-key=%s/%s.key", certs, cert_name);
    snprintf(a_ca, sizeof(a_ca), "--tls-ca=%s/ca.pem", certs);
    snprintf(a_policy, sizeof(a_policy), "--policy=%s/policies/%s.json",
             SVC_DIR, name);
    const char *argv[32] = {SVC_BIN,
                            a_service,
                            "--listen=127.0.0.1:0",
                            a_cert,
                            a_key,
                            a_ca,
                            a_policy,
                            "--admin=127.0.0.1:0",
                            "--die-with-parent"};
    int argc = 9;
    for (int i = 0; extra != NULL && extra[i] != NULL && argc < 31; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;
    snprintf(p->log, sizeof(p->log), "%s/%s-%d.log", dir, name, ++seq);

    int out[2];
    if (pipe(out) != 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    posix_spawn_file_actions_addopen(&fa, 2, p->log,
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int rc =
        posix_spawn(&p->pid, SVC_BIN, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    if (rc != 0) {
        close(out[0]);
        return -1;
    }
    char buf[512];
    size_t len = 0;
    p->port = 0;
    p->admin_port = 0;
    p->legacy_port = 0;
    int64_t end = now_ms() + 10000;
    while (p->port == 0 && now_ms() < end && len + 1 < sizeof(buf)) {
        struct pollfd pf = {.fd = out[0], .events = POLLIN};
        if (poll(&pf, 1, 100) <= 0)
            continue;
        ssize_t n = read(out[0], buf + len, sizeof(buf) - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        const char *l = strstr(buf, "listening on ");
        if (l != NULL && strchr(l, '\n') != NULL)
            p->port = atoi(l + 13);
        const char *ad = strstr(buf, "admin on ");
        if (ad != NULL)
            p->admin_port = atoi(ad + 9);
        const char *lg = strstr(buf, "legacy on ");
        if (lg != NULL)
            p->legacy_port = atoi(lg + 10);
    }
    close(out[0]);
    if (p->port == 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        p->pid = 0;
        return -1;
    }
    return 0;
}

static int start(proc *p, const char *name, const char *const *extra)
{
    return start_as(p, name, name, extra);
}

/* Sends |sig| and waits (15 s at most); returns the exit code, 128+signal
 * for a death by signal, -1 when it would not end. */
static int stop(proc *p, int sig)
{
    if (p->pid <= 0)
        return -1;
    kill(p->pid, sig);
    int st = 0;
    for (int i = 0; i < 1500; i++) {
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            p->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        sleep_ms(10);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &st, 0);
    p->pid = 0;
    return -1;
}

/* A client of |svc| on |port| presenting |ident|'s certificate and
 * expecting the server to be |server|. */
static orpc_client *client_as(const orpc_service_desc *svc, int port,
                              const char *ident, const char *server)
{
    char target[64], ca[400], cert[400], key[400], want[128];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    snprintf(ca, sizeof(ca), "%s/ca.pem", certs);
    snprintf(cert, sizeof(cert), "%s/%s.pem", certs, ident);
    snprintf(key, sizeof(key), "%s/%s.key", certs, ident);
    snprintf(want, sizeof(want), TD "%s", server);
    orpc_tls_opts tls = {.ca_file = ca,
                         .cert_file = cert,
                         .key_file = key,
                         .expected_spiffe_id = want};
    orpc_channel *ch = NULL;
    orpc_client *c = NULL;
    orpc_error_detail why;
    if (orpc_channel_new(&ch, target, &(orpc_channel_opts){.tls = &tls}, NULL,
                         &why) != 0) {
        print_error("channel: %s\n", why.message);
        return NULL;
    }
    if (orpc_client_new(&c, svc, ch, NULL, &why) != 0)
        print_error("client: %s\n", why.message);
    orpc_channel_unref(ch);
    return c;
}

static const orpc_call_opts call_opts = {.timeout_ms = 10000};

/* |s| encoded in the legacy JSON profile (the caller frees it). */
static char *legacy_json(const orpc_message_info *info,
                         const ProtobufCMessage *m)
{
    char *out = NULL;
    orpc_json_opts o = {.legacy = 1};
    orpc_error_detail d;
    if (orpc_json_encode(&out, NULL, info, m, &o, &d) != 0)
        print_error("encode: %s\n", d.message);
    return out;
}

static char *struct_json(const Google__Protobuf__Struct *s)
{
    return legacy_json(&google__protobuf__struct__orpc_info, &s->base);
}

/* Appends "route id json" to the answers file. */
static void answer(FILE *f, const char *route, int64_t id, char *json)
{
    assert_non_null(json);
    fprintf(f, "%s %lld %s\n", route, (long long)id, json);
    free(json);
    json = NULL;
}

/* Runs check_legacy.py on |answers|; asserts it finds no difference. */
static void check_legacy(const char *answers)
{
    char script[512];
    snprintf(script, sizeof(script), "%s/check_legacy.py", SVC_DIR);
    char *argv[] = {PYTHON, script, LEGACY_PY, (char *)answers, NULL};
    assert_int_equal(run(argv), 0);
}

/* The Prometheus page of the admin listener (static buffer). */
static const char *metrics_page(int port)
{
    static char page[1 << 16];
    page[0] = '\0';
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return page;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n"
                       "Connection: close\r\n\r\n";
    size_t len = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        write(fd, req, sizeof(req) - 1) == (ssize_t)(sizeof(req) - 1)) {
        for (int i = 0; i < 1000 && len + 1 < sizeof(page); i++) {
            ssize_t n = read(fd, page + len, sizeof(page) - 1 - len);
            if (n <= 0)
                break;
            len += (size_t)n;
        }
    }
    page[len] = '\0';
    close(fd);
    return page;
}

/* --- the PKI, accounts and identities ------------------------------------ */

static int group_setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/opsc-svc-test-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(certs, sizeof(certs), "%s/certs", dir);
    char *all[] = {"/bin/sh", CERTS_SH, "all", "--out", certs, NULL};
    char *rogue[] = {"/bin/sh", CERTS_SH, "service", "--out",
                     certs,     "--name", "rogue",   NULL};
    if (run(all) != 0 || run(rogue) != 0)
        return -1;
    char path[400];
    snprintf(path, sizeof(path), "%s/accounts", dir);
    write_file(path,
               "# test accounts\n"
               "scheduler-service:scheduler-secret\n"
               "executor-service:executor-secret\n"
               "test-user:test:password with a colon\n",
               0600);
    snprintf(path, sizeof(path), "%s/identities", dir);
    write_file(path,
               "scheduler-service " TD "scheduler\n"
               "executor-service  " TD "executor\n",
               0644);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (getenv("OPSC_TEST_KEEP") != NULL) { /* debugging: keep the logs */
        fprintf(stderr, "kept %s\n", dir);
        return 0;
    }
    char *argv[] = {"/bin/rm", "-rf", dir, NULL};
    return run(argv) == 0 ? 0 : -1;
}

/* --- auth ---------------------------------------------------------------- */

static orpc_status login(orpc_client *c, const char *user, const char *pw,
                         char **token, int64_t *ttl)
{
    Opsconductor__Auth__V1__LoginRequest req =
        OPSCONDUCTOR__AUTH__V1__LOGIN_REQUEST__INIT;
    req.username = (char *)user;
    req.password = (char *)pw;
    Opsconductor__Auth__V1__LoginResponse *resp = NULL;
    orpc_status st = opsconductor__auth__v1__auth_service__client__login(
        c, &req, &resp, &call_opts);
    if (st.code == ORPC_OK) {
        if (token)
            *token = strdup(resp->access_token);
        if (ttl)
            *ttl = resp->_expires_in_case ? resp->expires_in : -1;
        assert_string_equal(resp->token_type, "bearer");
        opsconductor__auth__v1__login_response__free_unpacked(resp, NULL);
    }
    return st;
}

/* Verify's user as legacy JSON, or NULL with |*code| the failure. */
static char *verify(orpc_client *c, const char *token, orpc_code *code)
{
    Opsconductor__Auth__V1__VerifyRequest req =
        OPSCONDUCTOR__AUTH__V1__VERIFY_REQUEST__INIT;
    req.token = (char *)token;
    Opsconductor__Auth__V1__VerifyResponse *resp = NULL;
    orpc_status st = opsconductor__auth__v1__auth_service__client__verify(
        c, &req, &resp, &call_opts);
    *code = st.code;
    orpc_status_clear(&st);
    if (*code != ORPC_OK)
        return NULL;
    char *j = struct_json(resp->user);
    opsconductor__auth__v1__verify_response__free_unpacked(resp, NULL);
    return j;
}

static void expect(orpc_status st, orpc_code code)
{
    if (st.code != code)
        print_error("got %s (%s), want %s\n", orpc_code_name(st.code),
                    st.message ? st.message : "", orpc_code_name(code));
    assert_int_equal(st.code, code);
    orpc_status_clear(&st);
}

static void test_auth(void **state)
{
    (void)state;
    char acc[400], ids[400];
    snprintf(acc, sizeof(acc), "--accounts=%s/accounts", dir);
    snprintf(ids, sizeof(ids), "--identities=%s/identities", dir);
    proc p = {0};
    const char *extra[] = {acc, ids, NULL};
    assert_int_equal(start(&p, "auth", extra), 0);
    const orpc_service_desc *d =
        &opsconductor__auth__v1__auth_service__orpc_desc;
    orpc_client *sched = client_as(d, p.port, "scheduler", "auth");
    orpc_client *exec = client_as(d, p.port, "executor", "auth");
    assert_non_null(sched);
    assert_non_null(exec);

    /* Login and Verify: the token is opaque, 43 base64url characters */
    char *token = NULL;
    int64_t ttl = 0;
    expect(login(sched, "scheduler-service", "scheduler-secret", &token, &ttl),
           ORPC_OK);
    assert_int_equal(ttl, 3600);
    static const char base64url[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char *t = token != NULL ? token : "";
    assert_int_equal(strlen(t), 43);
    assert_int_equal(strspn(t, base64url), 43);
    orpc_code code;
    char *user = verify(exec, token, &code); /* anyone may verify */
    assert_int_equal(code, ORPC_OK);
    assert_string_equal(user, "{\"username\":\"scheduler-service\","
                              "\"service\":true}");
    free(user);
    char *token2 = NULL;
    expect(login(exec, "executor-service", "executor-secret", &token2, NULL),
           ORPC_OK);
    assert_string_not_equal(token, token2);
    /* a person's account (not in the identities map), password with ':',
     * from a tool's certificate (not in the map either) */
    orpc_client *cli = client_as(d, p.port, "orpc-cli", "auth");
    char *token3 = NULL;
    expect(login(cli, "test-user", "test:password with a colon", &token3, NULL),
           ORPC_OK);
    user = verify(cli, token3, &code);
    assert_string_equal(user, "{\"username\":\"test-user\",\"service\":true}");
    free(user);
    /* a mapped service identity logs into its own account only */
    expect(login(sched, "test-user", "test:password with a colon", NULL, NULL),
           ORPC_PERMISSION_DENIED);
    orpc_client_free(cli);

    /* errors */
    expect(login(sched, "scheduler-service", "wrong", NULL, NULL),
           ORPC_UNAUTHENTICATED);
    expect(login(sched, "nobody", "scheduler-secret", NULL, NULL),
           ORPC_UNAUTHENTICATED);
    expect(login(sched, "", "", NULL, NULL), ORPC_INVALID_ARGUMENT);
    /* the identity binding: the scheduler's certificate cannot log into
     * the executor's account, with the right password */
    expect(login(sched, "executor-service", "executor-secret", NULL, NULL),
           ORPC_PERMISSION_DENIED);
    assert_null(verify(sched, "not-a-token", &code));
    assert_int_equal(code, ORPC_UNAUTHENTICATED);
    assert_null(verify(sched, "", &code));
    assert_int_equal(code, ORPC_UNAUTHENTICATED);
    /* the policy: a rogue identity reaches neither method */
    orpc_client *rogue = client_as(d, p.port, "rogue", "auth");
    expect(login(rogue, "scheduler-service", "scheduler-secret", NULL, NULL),
           ORPC_PERMISSION_DENIED);
    assert_null(verify(rogue, token, &code));
    assert_int_equal(code, ORPC_PERMISSION_DENIED);
    orpc_client_free(rogue);

    const char *page = metrics_page(p.admin_port);
    assert_non_null(
        strstr(page, "opsconductor_auth_logins_total{outcome=\"issued\"} 3"));
    orpc_client_free(sched);
    orpc_client_free(exec);
    assert_int_equal(stop(&p, SIGTERM), 0);
    /* no secret reached the log */
    assert_false(file_contains(p.log, "scheduler-secret"));
    assert_false(file_contains(p.log, token));
    assert_false(file_contains(p.log, token2));
    free(token);
    free(token2);
    free(token3);
    token = NULL;

    /* tokens expire */
    const char *short_ttl[] = {acc, ids, "--token-ttl=1", NULL};
    assert_int_equal(start(&p, "auth", short_ttl), 0);
    sched = client_as(d, p.port, "scheduler", "auth");
    expect(login(sched, "scheduler-service", "scheduler-secret", &token, &ttl),
           ORPC_OK);
    assert_int_equal(ttl, 1);
    free(verify(sched, token, &code));
    assert_int_equal(code, ORPC_OK);
    sleep_ms(1300);
    assert_null(verify(sched, token, &code));
    assert_int_equal(code, ORPC_UNAUTHENTICATED);
    free(token);
    orpc_client_free(sched);
    assert_int_equal(stop(&p, SIGTERM), 0);

    /* no accounts file: auth refuses to start (no default account) */
    const char *none[] = {NULL};
    assert_int_equal(start(&p, "auth", none), -1);
    assert_true(file_contains(p.log, "no default account"));
}

/* --- credentials and user ------------------------------------------------ */

static void test_credentials(void **state)
{
    (void)state;
    proc p = {0};
    assert_int_equal(start(&p, "credentials", NULL), 0);
    orpc_client *c = client_as(
        &opsconductor__credentials__v1__credentials_service__orpc_desc, p.port,
        "executor", "credentials");
    assert_non_null(c);
    char path[400];
    snprintf(path, sizeof(path), "%s/credentials.answers", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int64_t id = 1; id <= 20; id++) {
        Opsconductor__Credentials__V1__GetCredentialRequest req =
            OPSCONDUCTOR__CREDENTIALS__V1__GET_CREDENTIAL_REQUEST__INIT;
        req.credential_id = id;
        Opsconductor__Credentials__V1__GetCredentialResponse *r = NULL;
        expect(
            opsconductor__credentials__v1__credentials_service__client__get_credential(
                c, &req, &r, &call_opts),
            ORPC_OK);
        answer(f, "credential", id, struct_json(r->credential));
        opsconductor__credentials__v1__get_credential_response__free_unpacked(
            r, NULL);
    }
    for (int64_t id = 1; id <= 5; id++) {
        Opsconductor__Credentials__V1__ListTargetCredentialsRequest req =
            OPSCONDUCTOR__CREDENTIALS__V1__LIST_TARGET_CREDENTIALS_REQUEST__INIT;
        req.target_id = id;
        Opsconductor__Credentials__V1__ListTargetCredentialsResponse *r = NULL;
        expect(
            opsconductor__credentials__v1__credentials_service__client__list_target_credentials(
                c, &req, &r, &call_opts),
            ORPC_OK);
        assert_int_equal(r->n_credentials, 4);
        answer(
            f, "target_credentials", id,
            legacy_json(
                &opsconductor__credentials__v1__list_target_credentials_response__orpc_info,
                &r->base));
        opsconductor__credentials__v1__list_target_credentials_response__free_unpacked(
            r, NULL);
    }
    fclose(f);
    check_legacy(path);

    int64_t missing[] = {0, 21, -1};
    for (int i = 0; i < 3; i++) {
        Opsconductor__Credentials__V1__GetCredentialRequest req =
            OPSCONDUCTOR__CREDENTIALS__V1__GET_CREDENTIAL_REQUEST__INIT;
        req.credential_id = missing[i];
        Opsconductor__Credentials__V1__GetCredentialResponse *r = NULL;
        expect(
            opsconductor__credentials__v1__credentials_service__client__get_credential(
                c, &req, &r, &call_opts),
            ORPC_NOT_FOUND);
    }
    Opsconductor__Credentials__V1__ListTargetCredentialsRequest lreq =
        OPSCONDUCTOR__CREDENTIALS__V1__LIST_TARGET_CREDENTIALS_REQUEST__INIT;
    lreq.target_id = 6;
    Opsconductor__Credentials__V1__ListTargetCredentialsResponse *lr = NULL;
    orpc_status st =
        opsconductor__credentials__v1__credentials_service__client__list_target_credentials(
            c, &lreq, &lr, &call_opts);
    assert_string_equal(st.message, "Target 6 not found");
    expect(st, ORPC_NOT_FOUND);
    orpc_client_free(c);

    /* the scheduler has no business here */
    c = client_as(
        &opsconductor__credentials__v1__credentials_service__orpc_desc, p.port,
        "scheduler", "credentials");
    lreq.target_id = 1;
    expect(
        opsconductor__credentials__v1__credentials_service__client__list_target_credentials(
            c, &lreq, &lr, &call_opts),
        ORPC_PERMISSION_DENIED);
    orpc_client_free(c);
    assert_int_equal(stop(&p, SIGTERM), 0);
    /* credentials are secrets: none in the log */
    assert_false(file_contains(p.log, "s3cret-"));
}

static void test_user(void **state)
{
    (void)state;
    proc p = {0};
    assert_int_equal(start(&p, "user", NULL), 0);
    orpc_client *c = client_as(&opsconductor__user__v1__user_service__orpc_desc,
                               p.port, "executor", "user");
    assert_non_null(c);
    char path[400];
    snprintf(path, sizeof(path), "%s/user.answers", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int64_t id = 1; id <= 50; id++) {
        Opsconductor__User__V1__GetUserRequest req =
            OPSCONDUCTOR__USER__V1__GET_USER_REQUEST__INIT;
        req.user_id = id;
        Opsconductor__User__V1__GetUserResponse *r = NULL;
        expect(opsconductor__user__v1__user_service__client__get_user(
                   c, &req, &r, &call_opts),
               ORPC_OK);
        answer(f, "user", id, struct_json(r->user));
        opsconductor__user__v1__get_user_response__free_unpacked(r, NULL);
        Opsconductor__User__V1__GetUserPreferencesRequest preq =
            OPSCONDUCTOR__USER__V1__GET_USER_PREFERENCES_REQUEST__INIT;
        preq.user_id = id;
        Opsconductor__User__V1__GetUserPreferencesResponse *pr = NULL;
        expect(
            opsconductor__user__v1__user_service__client__get_user_preferences(
                c, &preq, &pr, &call_opts),
            ORPC_OK);
        answer(f, "preferences", id, struct_json(pr->preferences));
        opsconductor__user__v1__get_user_preferences_response__free_unpacked(
            pr, NULL);
    }
    fclose(f);
    check_legacy(path);
    Opsconductor__User__V1__GetUserRequest req =
        OPSCONDUCTOR__USER__V1__GET_USER_REQUEST__INIT;
    req.user_id = 51;
    Opsconductor__User__V1__GetUserResponse *r = NULL;
    orpc_status st = opsconductor__user__v1__user_service__client__get_user(
        c, &req, &r, &call_opts);
    assert_string_equal(st.message, "User 51 not found");
    expect(st, ORPC_NOT_FOUND);
    Opsconductor__User__V1__GetUserPreferencesRequest preq =
        OPSCONDUCTOR__USER__V1__GET_USER_PREFERENCES_REQUEST__INIT;
    Opsconductor__User__V1__GetUserPreferencesResponse *pr = NULL;
    expect(opsconductor__user__v1__user_service__client__get_user_preferences(
               c, &preq, &pr, &call_opts),
           ORPC_NOT_FOUND);
    orpc_client_free(c);
    c = client_as(&opsconductor__user__v1__user_service__orpc_desc, p.port,
                  "rogue", "user");
    req.user_id = 1;
    expect(opsconductor__user__v1__user_service__client__get_user(c, &req, &r,
                                                                  &call_opts),
           ORPC_PERMISSION_DENIED);
    orpc_client_free(c);
    assert_int_equal(stop(&p, SIGTERM), 0);
}

/* --- notification -------------------------------------------------------- */

typedef Opsconductor__Notification__V1__SendNotificationRequest notify_req;

/* The Struct of the JSON object |json| (freed with
 * google__protobuf__struct__free_unpacked). */
static Google__Protobuf__Struct *payload(const char *json)
{
    ProtobufCMessage *m = NULL;
    assert_int_equal(orpc_json_decode(&m, &google__protobuf__struct__orpc_info,
                                      json, strlen(json), NULL, NULL, NULL),
                     0);
    return (Google__Protobuf__Struct *)m;
}

static orpc_status notify(orpc_client *c, const notify_req *req, char **json)
{
    Opsconductor__Notification__V1__SendNotificationResponse *r = NULL;
    orpc_status st =
        opsconductor__notification__v1__notification_service__client__send_notification(
            c, req, &r, &call_opts);
    if (st.code == ORPC_OK) {
        *json = struct_json(r->result);
        opsconductor__notification__v1__send_notification_response__free_unpacked(
            r, NULL);
    }
    return st;
}

#define EMAIL                                                                  \
    OPSCONDUCTOR__NOTIFICATION__V1__NOTIFICATION_TYPE__NOTIFICATION_TYPE_EMAIL
#define SLACK                                                                  \
    OPSCONDUCTOR__NOTIFICATION__V1__NOTIFICATION_TYPE__NOTIFICATION_TYPE_SLACK

/* Whether |json| is the legacy result of notification |id|. */
static void expect_result(const char *json, int id, const char *type,
                          const char *dest, const char *tmpl)
{
    char head[512];
    snprintf(head, sizeof(head),
             "{\"notification_id\":%d,\"status\":\"sent\",\"type\":\"%s\","
             "\"destination\":\"%s\",\"template_id\":%s,\"sent_at\":\"",
             id, type, dest, tmpl);
    if (json == NULL)
        json = "(none)";
    if (strncmp(json, head, strlen(head)) != 0)
        print_error("got %s\nwant %s...\n", json, head);
    assert_int_equal(strncmp(json, head, strlen(head)), 0);
    /* sent_at: 2026-12-07T01:02:03.456789Z"} */
    const char *at = json + strlen(head);
    assert_int_equal(strlen(at), 29);
    assert_string_equal(at + 26, "Z\"}");
}

static void test_notification(void **state)
{
    (void)state;
    proc p = {0};
    assert_int_equal(start(&p, "notification", NULL), 0);
    const orpc_service_desc *d =
        &opsconductor__notification__v1__notification_service__orpc_desc;
    orpc_client *c = client_as(d, p.port, "executor", "notification");
    assert_non_null(c);
    Google__Protobuf__Struct *mail =
        payload("{\"subject\":\"Job 7 failed\",\"body\":\"see logs\"}");
    Google__Protobuf__Struct *slack =
        payload("{\"message\":\"job 7 done\",\"color\":\"green\"}");
    Google__Protobuf__Struct *no_subject = payload("{\"body\":\"x\"}");
    Google__Protobuf__Struct *bad_msg = payload("{\"message\":7}");

    notify_req r =
        OPSCONDUCTOR__NOTIFICATION__V1__SEND_NOTIFICATION_REQUEST__INIT;
    char *json = NULL;
    r.type = EMAIL;
    r.destination = "ops@example.com";
    r.payload = mail;
    expect(notify(c, &r, &json), ORPC_OK);
    expect_result(json, 1, "email", "ops@example.com", "null");
    free(json);
    json = NULL;
    r.type = SLACK;
    r.destination = "#ops";
    r.payload = slack;
    r._template_id_case =
        OPSCONDUCTOR__NOTIFICATION__V1__SEND_NOTIFICATION_REQUEST___TEMPLATE_ID_TEMPLATE_ID;
    r.template_id = 3;
    expect(notify(c, &r, &json), ORPC_OK);
    expect_result(json, 2, "slack", "#ops", "3");
    free(json);
    json = NULL;

    /* the legacy validation */
    r.template_id = 11;
    orpc_status st = notify(c, &r, &json);
    assert_string_equal(st.message, "Template 11 not found");
    expect(st, ORPC_NOT_FOUND);
    r._template_id_case = 0;
    r.type = 0;
    st = notify(c, &r, &json);
    assert_non_null(strstr(st.message, "'email' or 'slack'"));
    expect(st, ORPC_INVALID_ARGUMENT);
    r.type = EMAIL;
    r.payload = no_subject;
    st = notify(c, &r, &json);
    assert_string_equal(st.message, "payload.subject: Field required");
    expect(st, ORPC_INVALID_ARGUMENT);
    r.type = SLACK;
    r.payload = bad_msg;
    expect(notify(c, &r, &json), ORPC_INVALID_ARGUMENT);
    r.payload = NULL;
    expect(notify(c, &r, &json), ORPC_INVALID_ARGUMENT);
    r.payload = slack;
    r.destination = "";
    expect(notify(c, &r, &json), ORPC_INVALID_ARGUMENT);

    /* SendBatch: 3 good, 2 bad */
    Opsconductor__Notification__V1__NotificationService_SendBatch_Writer *w =
        NULL;
    assert_int_equal(
        opsconductor__notification__v1__notification_service__client__send_batch(
            c, &call_opts, &w),
        0);
    notify_req good =
        OPSCONDUCTOR__NOTIFICATION__V1__SEND_NOTIFICATION_REQUEST__INIT;
    good.type = SLACK;
    good.destination = "#batch";
    good.payload = slack;
    notify_req bad = good;
    bad.type = 0;
    const notify_req *seq[] = {&good, &bad, &good, &bad, &good};
    for (int i = 0; i < 5; i++)
        assert_int_equal(
            opsconductor__notification__v1__notification_service__client__send_batch__send(
                w, seq[i]),
            0);
    Opsconductor__Notification__V1__SendBatchResponse *br = NULL;
    expect(
        opsconductor__notification__v1__notification_service__client__send_batch__finish(
            w, &br),
        ORPC_OK);
    assert_int_equal(br->accepted, 3);
    assert_int_equal(br->rejected, 2);
    opsconductor__notification__v1__send_batch_response__free_unpacked(br,
                                                                       NULL);
    /* ids go on after the batch */
    r.destination = "#ops";
    expect(notify(c, &r, &json), ORPC_OK);
    expect_result(json, 6, "slack", "#ops", "null");
    free(json);
    json = NULL;

    /* what was sent is recorded and counted */
    const char *page = metrics_page(p.admin_port);
    assert_non_null(strstr(
        page, "opsconductor_notifications_sent_total{type=\"slack\"} 5"));
    assert_non_null(strstr(
        page, "opsconductor_notifications_sent_total{type=\"email\"} 1"));
    orpc_client_free(c);

    /* the scheduler may not send */
    c = client_as(d, p.port, "scheduler", "notification");
    r.payload = slack;
    expect(notify(c, &r, &json), ORPC_PERMISSION_DENIED);
    orpc_client_free(c);
    google__protobuf__struct__free_unpacked(mail, NULL);
    google__protobuf__struct__free_unpacked(slack, NULL);
    google__protobuf__struct__free_unpacked(no_subject, NULL);
    google__protobuf__struct__free_unpacked(bad_msg, NULL);
    assert_int_equal(stop(&p, SIGTERM), 0);
}

/* --- jobs ---------------------------------------------------------------- */

static orpc_client *jobs_client(int port, const char *ident)
{
    return client_as(&opsconductor__jobs__v1__jobs_service__orpc_desc, port,
                     ident, "jobs");
}

/* RunJob; returns the execution id (0 on failure: |code| says why). */
static int64_t run_job(orpc_client *c, int64_t job, const char *payload_json,
                       char **result, orpc_code *code)
{
    Opsconductor__Jobs__V1__RunJobRequest req =
        OPSCONDUCTOR__JOBS__V1__RUN_JOB_REQUEST__INIT;
    req.job_id = job;
    ProtobufCMessage *pl = NULL;
    if (payload_json != NULL) {
        assert_int_equal(orpc_json_decode(&pl,
                                          &google__protobuf__struct__orpc_info,
                                          payload_json, strlen(payload_json),
                                          NULL, NULL, NULL),
                         0);
        req.payload = (Google__Protobuf__Struct *)pl;
    }
    Opsconductor__Jobs__V1__RunJobResponse *r = NULL;
    orpc_status st = opsconductor__jobs__v1__jobs_service__client__run_job(
        c, &req, &r, &call_opts);
    if (pl)
        protobuf_c_message_free_unpacked(pl, NULL);
    *code = st.code;
    orpc_status_clear(&st);
    if (*code != ORPC_OK)
        return 0;
    int64_t eid = 0;
    for (size_t i = 0; i < r->result->n_fields; i++)
        if (strcmp(r->result->fields[i]->key, "execution_id") == 0)
            eid = (int64_t)r->result->fields[i]->value->number_value;
    if (result)
        *result = struct_json(r->result);
    opsconductor__jobs__v1__run_job_response__free_unpacked(r, NULL);
    return eid;
}

/* GetJobStatus's status string into |out|; returns the code. */
static orpc_code job_status(orpc_client *c, int64_t job, char out[32])
{
    Opsconductor__Jobs__V1__GetJobStatusRequest req =
        OPSCONDUCTOR__JOBS__V1__GET_JOB_STATUS_REQUEST__INIT;
    req.job_id = job;
    Opsconductor__Jobs__V1__GetJobStatusResponse *r = NULL;
    orpc_status st =
        opsconductor__jobs__v1__jobs_service__client__get_job_status(
            c, &req, &r, &call_opts);
    orpc_code code = st.code;
    orpc_status_clear(&st);
    out[0] = '\0';
    if (code == ORPC_OK) {
        for (size_t i = 0; i < r->status->n_fields; i++)
            if (strcmp(r->status->fields[i]->key, "status") == 0)
                snprintf(out, 32, "%s",
                         r->status->fields[i]->value->string_value);
        opsconductor__jobs__v1__get_job_status_response__free_unpacked(r, NULL);
    }
    return code;
}

/*
 * Watches job |job| until the stream ends (at most |max| events, within
 * the call's deadline): the statuses, space-separated, into |seen|, the
 * last event's execution id into |*eid|.  Returns the final code.
 */
static orpc_code watch(orpc_client *c, int64_t job, char *seen, size_t cap,
                       int64_t *eid, int max)
{
    Opsconductor__Jobs__V1__WatchJobRequest req =
        OPSCONDUCTOR__JOBS__V1__WATCH_JOB_REQUEST__INIT;
    req.job_id = job;
    Opsconductor__Jobs__V1__JobsService_WatchJob_Reader *rd = NULL;
    seen[0] = '\0';
    if (opsconductor__jobs__v1__jobs_service__client__watch_job(
            c, &req, &(orpc_call_opts){.timeout_ms = 15000}, &rd) != 0)
        return ORPC_INTERNAL;
    for (int i = 0; i < max; i++) {
        Opsconductor__Jobs__V1__JobEvent *ev = NULL;
        int rc = opsconductor__jobs__v1__jobs_service__client__watch_job__recv(
            rd, &ev);
        if (rc != 1)
            break;
        assert_int_equal(ev->job_id, job);
        assert_non_null(ev->changed_at);
        assert_true(ev->changed_at->seconds > 1700000000);
        size_t n = strlen(seen);
        snprintf(seen + n, cap - n, "%s%s", n ? " " : "", ev->status);
        if (eid != NULL && ev->detail != NULL && ev->detail->n_fields == 1)
            *eid = (int64_t)ev->detail->fields[0]->value->number_value;
        opsconductor__jobs__v1__job_event__free_unpacked(ev, NULL);
    }
    orpc_status st =
        opsconductor__jobs__v1__jobs_service__client__watch_job__finish(rd);
    orpc_code code = st.code;
    orpc_status_clear(&st);
    return code;
}

static void jobs_answers(orpc_client *c, const char *path)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int64_t id = 1; id <= 100; id++) {
        Opsconductor__Jobs__V1__GetJobRequest req =
            OPSCONDUCTOR__JOBS__V1__GET_JOB_REQUEST__INIT;
        req.job_id = id;
        Opsconductor__Jobs__V1__GetJobResponse *r = NULL;
        expect(opsconductor__jobs__v1__jobs_service__client__get_job(
                   c, &req, &r, &call_opts),
               ORPC_OK);
        answer(f, "job", id, struct_json(r->job));
        opsconductor__jobs__v1__get_job_response__free_unpacked(r, NULL);
        Opsconductor__Jobs__V1__GetJobStatusRequest sreq =
            OPSCONDUCTOR__JOBS__V1__GET_JOB_STATUS_REQUEST__INIT;
        sreq.job_id = id;
        Opsconductor__Jobs__V1__GetJobStatusResponse *sr = NULL;
        expect(opsconductor__jobs__v1__jobs_service__client__get_job_status(
                   c, &sreq, &sr, &call_opts),
               ORPC_OK);
        answer(f, "job_status", id, struct_json(sr->status));
        opsconductor__jobs__v1__get_job_status_response__free_unpacked(sr,
                                                                       NULL);
    }
    fclose(f);
}

static void test_jobs(void **state)
{
    (void)state;
    char db[400], ids[400];
    snprintf(db, sizeof(db), "--db=%s/jobs.db", dir);
    snprintf(ids, sizeof(ids), "--identities=%s/identities", dir);
    const char *extra[] = {db,
                           ids,
                           "--run-delay-ms=1000",
                           "--finish-delay-ms=300",
                           "--max-watchers=3",
                           NULL};
    proc p = {0};
    assert_int_equal(start(&p, "jobs", extra), 0);
    orpc_client *c = jobs_client(p.port, "scheduler");
    assert_non_null(c);

    /* before any run: every job and status exactly as the legacy service */
    char path[400];
    snprintf(path, sizeof(path), "%s/jobs.answers", dir);
    jobs_answers(c, path);
    check_legacy(path);

    /* RunJob answers the legacy execution result */
    char *result = NULL;
    orpc_code code;
    int64_t eid = run_job(c, 7, "{\"scheduled\":true}", &result, &code);
    assert_int_equal(code, ORPC_OK);
    assert_int_equal(eid, 1);
    const char *head = "{\"execution_id\":1,\"job_id\":7,\"status\":\"queued\","
                       "\"payload\":{\"scheduled\":true},\"triggered_by\":"
                       "\"scheduler-service\",\"queued_at\":\"";
    if (strncmp(result, head, strlen(head)) != 0)
        print_error("RunJob: %s\n", result);
    assert_int_equal(strncmp(result, head, strlen(head)), 0);
    assert_int_equal(strlen(result + strlen(head)), 29);
    free(result);

    /* the lifecycle, watched: queued -> running -> succeeded (the run
     * waits 1 s in the queue, time enough for the watch to begin) */
    char seen[256];
    int64_t weid = 0;
    assert_int_equal(watch(c, 7, seen, sizeof(seen), &weid, 10), ORPC_OK);
    assert_string_equal(seen, "queued running succeeded");
    assert_int_equal(weid, 1);
    char st[32];
    assert_int_equal(job_status(c, 7, st), ORPC_OK);
    assert_string_equal(st, "succeeded");
    /* a watch of a finished job: its status, then OK */
    assert_int_equal(watch(c, 7, seen, sizeof(seen), &weid, 10), ORPC_OK);
    assert_string_equal(seen, "succeeded");
    /* a run asked to fail fails; no payload is JSON null */
    eid = run_job(c, 8, "{\"fail\":true}", NULL, &code);
    assert_int_equal(eid, 2);
    assert_int_equal(watch(c, 8, seen, sizeof(seen), &weid, 10), ORPC_OK);
    assert_string_equal(seen, "queued running failed");
    eid = run_job(c, 9, NULL, &result, &code);
    assert_int_equal(eid, 3);
    assert_non_null(strstr(result, "\"payload\":null,"));
    free(result);

    /* NOT_FOUND everywhere for jobs that do not exist */
    assert_int_equal(run_job(c, 101, NULL, NULL, &code), 0);
    assert_int_equal(code, ORPC_NOT_FOUND);
    assert_int_equal(job_status(c, 0, st), ORPC_NOT_FOUND);
    assert_int_equal(watch(c, 101, seen, sizeof(seen), NULL, 10),
                     ORPC_NOT_FOUND);
    Opsconductor__Jobs__V1__GetJobRequest greq =
        OPSCONDUCTOR__JOBS__V1__GET_JOB_REQUEST__INIT;
    greq.job_id = 101;
    Opsconductor__Jobs__V1__GetJobResponse *gr = NULL;
    orpc_status s = opsconductor__jobs__v1__jobs_service__client__get_job(
        c, &greq, &gr, &call_opts);
    assert_string_equal(s.message, "Job 101 not found");
    expect(s, ORPC_NOT_FOUND);

    /* watchers are bounded (3), and a cancelled watch ends at once; job 1
     * is "running" in the seed and never changes */
    Opsconductor__Jobs__V1__WatchJobRequest wreq =
        OPSCONDUCTOR__JOBS__V1__WATCH_JOB_REQUEST__INIT;
    wreq.job_id = 1;
    Opsconductor__Jobs__V1__JobsService_WatchJob_Reader *rd[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(
            opsconductor__jobs__v1__jobs_service__client__watch_job(
                c, &wreq, &call_opts, &rd[i]),
            0);
        Opsconductor__Jobs__V1__JobEvent *ev = NULL;
        assert_int_equal(
            opsconductor__jobs__v1__jobs_service__client__watch_job__recv(rd[i],
                                                                          &ev),
            1);
        assert_string_equal(ev->status, "running");
        opsconductor__jobs__v1__job_event__free_unpacked(ev, NULL);
    }
    assert_int_equal(watch(c, 1, seen, sizeof(seen), NULL, 10),
                     ORPC_RESOURCE_EXHAUSTED);
    int64_t t0 = now_ms();
    opsconductor__jobs__v1__jobs_service__client__watch_job__cancel(rd[0]);
    s = opsconductor__jobs__v1__jobs_service__client__watch_job__finish(rd[0]);
    expect(s, ORPC_CANCELLED);
    /* the server frees the slot within a wait step */
    int ok = 0;
    for (int i = 0; i < 50 && !ok; i++) {
        Opsconductor__Jobs__V1__JobsService_WatchJob_Reader *r2 = NULL;
        assert_int_equal(
            opsconductor__jobs__v1__jobs_service__client__watch_job(
                c, &wreq, &call_opts, &r2),
            0);
        Opsconductor__Jobs__V1__JobEvent *ev = NULL;
        ok = opsconductor__jobs__v1__jobs_service__client__watch_job__recv(
                 r2, &ev) == 1;
        opsconductor__jobs__v1__job_event__free_unpacked(ev, NULL);
        if (ok) {
            rd[0] = r2;
        } else {
            s = opsconductor__jobs__v1__jobs_service__client__watch_job__finish(
                r2);
            if (s.code != ORPC_RESOURCE_EXHAUSTED)
                print_error("watch %d: %s: %s\n", i, orpc_code_name(s.code),
                            s.message ? s.message : "");
            orpc_status_clear(&s);
            sleep_ms(50);
        }
    }
    assert_true(ok);
    assert_true(now_ms() - t0 < 5000);

    /* the policy: the executor may not touch jobs */
    orpc_client *ex = jobs_client(p.port, "executor");
    assert_int_equal(run_job(ex, 7, NULL, NULL, &code), 0);
    assert_int_equal(code, ORPC_PERMISSION_DENIED);
    assert_int_equal(job_status(ex, 7, st), ORPC_PERMISSION_DENIED);
    orpc_client_free(ex);

    /* SIGTERM with watchers open: they end UNAVAILABLE, the process 0 */
    assert_int_equal(stop(&p, SIGTERM), 0);
    for (int i = 0; i < 3; i++) {
        Opsconductor__Jobs__V1__JobEvent *ev = NULL;
        assert_true(
            opsconductor__jobs__v1__jobs_service__client__watch_job__recv(
                rd[i], &ev) != 1);
        s = opsconductor__jobs__v1__jobs_service__client__watch_job__finish(
            rd[i]);
        assert_int_equal(s.code, ORPC_UNAVAILABLE);
        orpc_status_clear(&s);
    }
    orpc_client_free(c);
    assert_true(file_contains(p.log, "signal 15: draining"));
}

/* The executions table of |db|: "id:job:status" space-separated. */
static void db_executions(const char *db, char *out, size_t cap)
{
    sqlite3 *h = NULL;
    out[0] = '\0';
    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL),
                     SQLITE_OK);
    sqlite3_busy_timeout(h, 5000);
    sqlite3_stmt *st = NULL;
    assert_int_equal(
        sqlite3_prepare_v2(h,
                           "SELECT id, job_id, status FROM executions"
                           " ORDER BY id",
                           -1, &st, NULL),
        SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%s%lld:%lld:%s", n ? " " : "",
                 (long long)sqlite3_column_int64(st, 0),
                 (long long)sqlite3_column_int64(st, 1),
                 (const char *)sqlite3_column_text(st, 2));
    }
    sqlite3_finalize(st);
    sqlite3_close(h);
}

static void test_jobs_restart(void **state)
{
    (void)state;
    char db[420], dbpath[400];
    snprintf(dbpath, sizeof(dbpath), "%s/restart.db", dir);
    snprintf(db, sizeof(db), "--db=%s", dbpath);
    /* runs wait 1.5 s in the queue, then finish 100 ms after starting */
    const char *extra[] = {db, "--run-delay-ms=1500", "--finish-delay-ms=100",
                           NULL};
    proc p = {0};
    assert_int_equal(start(&p, "jobs", extra), 0);
    orpc_client *c = jobs_client(p.port, "scheduler");
    orpc_code code;
    char seen[256], st[32];
    int64_t weid = 0;
    /* two finished executions: job 2 succeeded, job 3 failed */
    assert_int_equal(run_job(c, 2, NULL, NULL, &code), 1);
    assert_int_equal(run_job(c, 3, "{\"fail\":true}", NULL, &code), 2);
    assert_int_equal(watch(c, 2, seen, sizeof(seen), &weid, 10), ORPC_OK);
    assert_string_equal(seen, "queued running succeeded");
    /* (job 3 may be running by the time its watch starts) */
    assert_int_equal(watch(c, 3, seen, sizeof(seen), &weid, 10), ORPC_OK);
    assert_true(ends_with(seen, "failed"));
    /* four more, still queued when the process is killed */
    for (int64_t j = 4; j <= 7; j++)
        assert_int_equal(
            run_job(c, j, j == 6 ? "{\"fail\":true}" : NULL, NULL, &code),
            j - 1);
    orpc_client_free(c);
    assert_int_equal(stop(&p, SIGKILL), 128 + SIGKILL);
    char before[1024], after[1024];
    db_executions(dbpath, before, sizeof(before));
    assert_string_equal(before, "1:2:succeeded 2:3:failed 3:4:queued "
                                "4:5:queued 5:6:queued 6:7:queued");

    /* restarted on the same database and the same port (callers keep
     * their target): nothing lost, and what was under way goes on from
     * where it was */
    char same_port[64];
    snprintf(same_port, sizeof(same_port), "--listen=127.0.0.1:%d", p.port);
    const char *again[] = {db, "--run-delay-ms=1500", "--finish-delay-ms=100",
                           same_port, NULL};
    int old_port = p.port;
    assert_int_equal(start(&p, "jobs", again), 0);
    assert_int_equal(p.port, old_port);
    c = jobs_client(p.port, "scheduler");
    assert_int_equal(job_status(c, 2, st), ORPC_OK);
    assert_string_equal(st, "succeeded");
    assert_int_equal(job_status(c, 3, st), ORPC_OK);
    assert_string_equal(st, "failed");
    for (int64_t j = 4; j <= 7; j++) {
        weid = 0;
        assert_int_equal(watch(c, j, seen, sizeof(seen), &weid, 10), ORPC_OK);
        /* it may have moved on already while the others were watched */
        assert_true(ends_with(seen, j == 6 ? "failed" : "succeeded"));
        assert_int_equal(weid, j - 1);
    }
    db_executions(dbpath, after, sizeof(after));
    assert_string_equal(after, "1:2:succeeded 2:3:failed 3:4:succeeded "
                               "4:5:succeeded 5:6:failed 6:7:succeeded");
    /* ids are never reused */
    assert_int_equal(run_job(c, 8, NULL, NULL, &code), 7);
    /* every job answers; those never run still equal the legacy ones */
    char path[400];
    snprintf(path, sizeof(path), "%s/restart.answers", dir);
    jobs_answers(c, path);
    char *argv[] = {"/bin/sh", "-c",
                    "grep -v '^job[a-z_]* [2-8] ' \"$0\" > \"$0.untouched\"",
                    path, NULL};
    assert_int_equal(run(argv), 0);
    char untouched[420];
    snprintf(untouched, sizeof(untouched), "%s.untouched", path);
    check_legacy(untouched);
    orpc_client_free(c);
    assert_int_equal(stop(&p, SIGTERM), 0);
}

/* --- the policies: the whole call graph ---------------------------------- */

/* One call of service |svc| as |ident|: its code. */
static orpc_code call_one(const char *svc, int port, const char *ident)
{
    orpc_code code = ORPC_INTERNAL;
    orpc_status st = ORPC_STATUS_OK;
    if (strcmp(svc, "auth") == 0) {
        orpc_client *c = client_as(
            &opsconductor__auth__v1__auth_service__orpc_desc, port, ident, svc);
        free(verify(c, "no-such-token", &code));
        orpc_client_free(c);
        return code;
    }
    if (strcmp(svc, "jobs") == 0) {
        orpc_client *c = jobs_client(port, ident);
        char s[32];
        code = job_status(c, 3, s);
        orpc_client_free(c);
        return code;
    }
    if (strcmp(svc, "credentials") == 0) {
        orpc_client *c = client_as(
            &opsconductor__credentials__v1__credentials_service__orpc_desc,
            port, ident, svc);
        Opsconductor__Credentials__V1__GetCredentialRequest req =
            OPSCONDUCTOR__CREDENTIALS__V1__GET_CREDENTIAL_REQUEST__INIT;
        req.credential_id = 1;
        Opsconductor__Credentials__V1__GetCredentialResponse *r = NULL;
        st =
            opsconductor__credentials__v1__credentials_service__client__get_credential(
                c, &req, &r, &call_opts);
        if (r)
            opsconductor__credentials__v1__get_credential_response__free_unpacked(
                r, NULL);
        orpc_client_free(c);
    } else if (strcmp(svc, "notification") == 0) {
        orpc_client *c = client_as(
            &opsconductor__notification__v1__notification_service__orpc_desc,
            port, ident, svc);
        notify_req r =
            OPSCONDUCTOR__NOTIFICATION__V1__SEND_NOTIFICATION_REQUEST__INIT;
        char *json = NULL;
        st = notify(c, &r, &json); /* INVALID_ARGUMENT when allowed */
        free(json);
        json = NULL;
        orpc_client_free(c);
    } else {
        orpc_client *c = client_as(
            &opsconductor__user__v1__user_service__orpc_desc, port, ident, svc);
        Opsconductor__User__V1__GetUserPreferencesRequest req =
            OPSCONDUCTOR__USER__V1__GET_USER_PREFERENCES_REQUEST__INIT;
        req.user_id = 1;
        Opsconductor__User__V1__GetUserPreferencesResponse *r = NULL;
        st = opsconductor__user__v1__user_service__client__get_user_preferences(
            c, &req, &r, &call_opts);
        if (r)
            opsconductor__user__v1__get_user_preferences_response__free_unpacked(
                r, NULL);
        orpc_client_free(c);
    }
    code = st.code;
    orpc_status_clear(&st);
    return code;
}

static void test_policy(void **state)
{
    (void)state;
    static const char *const services[] = {"auth", "jobs", "credentials",
                                           "notification", "user"};
    static const char *const callers[] = {
        "scheduler", "executor", "jobs",     "notification", "credentials",
        "user",      "auth",     "orpc-cli", "rogue"};
    /* who may call whom: the platform's call graph */
    static const char *const allowed[] = {"auth:scheduler",
                                          "auth:executor",
                                          "auth:jobs",
                                          "auth:notification",
                                          "auth:credentials",
                                          "auth:user",
                                          "auth:auth",
                                          "auth:orpc-cli",
                                          "jobs:scheduler",
                                          "credentials:executor",
                                          "notification:executor",
                                          "user:executor"};
    char acc[400], db[400];
    snprintf(acc, sizeof(acc), "--accounts=%s/accounts", dir);
    snprintf(db, sizeof(db), "--db=%s/policy.db", dir);
    for (size_t s = 0; s < 5; s++) {
        const char *extra[] = {strcmp(services[s], "auth") == 0   ? acc
                               : strcmp(services[s], "jobs") == 0 ? db
                                                                  : NULL,
                               NULL};
        proc p = {0};
        assert_int_equal(start(&p, services[s], extra), 0);
        for (size_t c = 0; c < sizeof(callers) / sizeof(callers[0]); c++) {
            char key[64];
            snprintf(key, sizeof(key), "%s:%s", services[s], callers[c]);
            int allow = 0;
            for (size_t a = 0; a < sizeof(allowed) / sizeof(allowed[0]); a++)
                allow |= strcmp(allowed[a], key) == 0;
            orpc_code code = call_one(services[s], p.port, callers[c]);
            if (allow != (code != ORPC_PERMISSION_DENIED))
                print_error("%s: %s\n", key, orpc_code_name(code));
            assert_int_equal(allow, code != ORPC_PERMISSION_DENIED);
            /* allowed calls reach the handler and get its answer */
            assert_true(code != ORPC_UNAVAILABLE && code != ORPC_INTERNAL);
        }
        assert_int_equal(stop(&p, SIGTERM), 0);
    }
}

/* --- legacy callers and the policy --------------------------------------- */

/*
 * One HTTP/1.1 exchange with 127.0.0.1:|port| (Connection: close; 10 s at
 * most): |req| is the request line and headers without the blank line,
 * |body| (or NULL) its JSON body.  Returns the status (0 when there was no
 * answer) with the whole answer in |out|.
 */
static int http1(int port, const char *req, const char *body, char *out,
                 size_t cap)
{
    char msg[2048];
    int n = snprintf(msg, sizeof(msg),
                     "%s\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     req, body ? strlen(body) : 0, body ? body : "");
    out[0] = '\0';
    if (n <= 0 || (size_t)n >= sizeof(msg))
        return 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    size_t len = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        write(fd, msg, (size_t)n) == n) {
        for (int i = 0; i < 1000 && len + 1 < cap; i++) {
            ssize_t k = read(fd, out + len, cap - 1 - len);
            if (k <= 0)
                break;
            len += (size_t)k;
        }
    }
    out[len] = '\0';
    close(fd);
    int status = 0;
    if (sscanf(out, "HTTP/1.1 %d", &status) != 1)
        return 0;
    return status;
}

/* POST /login on auth's legacy port; the token (malloc'd) or NULL. */
static char *legacy_login(int port, const char *user, const char *pw)
{
    char body[256], out[4096];
    snprintf(body, sizeof(body), "{\"username\": \"%s\", \"password\": \"%s\"}",
             user, pw);
    if (http1(port, "POST /login HTTP/1.1", body, out, sizeof(out)) != 200)
        return NULL;
    const char *t = strstr(out, "\"access_token\":\"");
    if (t == NULL)
        return NULL;
    t += 16;
    size_t n = strcspn(t, "\"");
    char *tok = malloc(n + 1);
    assert_non_null(tok);
    memcpy(tok, t, n);
    tok[n] = '\0';
    return tok;
}

/* |method| |path| with |token| on |port|; the status, the answer in |out|. */
static int legacy_call(int port, const char *method, const char *path,
                       const char *token, const char *body, char *out,
                       size_t cap)
{
    char req[512];
    snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nAuthorization: Bearer %s",
             method, path, token);
    return http1(port, req, body, out, cap);
}

/*
 * A legacy caller's identity is the policy's principal: the gateway makes
 * "legacy-service:<account>" of the token (auth's Verify over mutual TLS),
 * and policies/jobs.json allows only legacy-service:scheduler-service.
 * Other accounts get 403 (PERMISSION_DENIED) before the handler runs (no
 * execution is created); without --auth-target tokens cannot be judged
 * (503).
 */
static void test_legacy_policy(void **state)
{
    (void)state;
    char acc[400], ids[400], db[400], target[64], out[8192];
    snprintf(acc, sizeof(acc), "--accounts=%s/accounts", dir);
    snprintf(ids, sizeof(ids), "--identities=%s/identities", dir);
    snprintf(db, sizeof(db), "--db=%s/legacy.db", dir);
    proc a = {0}, j = {0}, c = {0};
    const char *aextra[] = {acc, ids, "--legacy-listen=127.0.0.1:0", NULL};
    assert_int_equal(start(&a, "auth", aextra), 0);
    assert_true(a.legacy_port > 0);
    snprintf(target, sizeof(target), "--auth-target=127.0.0.1:%d", a.port);
    const char *jextra[] = {db, target, "--legacy-listen=127.0.0.1:0", NULL};
    assert_int_equal(start(&j, "jobs", jextra), 0);
    assert_true(j.legacy_port > 0 && j.legacy_port != j.port);

    char *sched =
        legacy_login(a.legacy_port, "scheduler-service", "scheduler-secret");
    char *exec =
        legacy_login(a.legacy_port, "executor-service", "executor-secret");
    char *user =
        legacy_login(a.legacy_port, "test-user", "test:password with a colon");
    assert_non_null(sched);
    assert_non_null(exec);
    assert_non_null(user);

    /* accounts the policy does not name: 403, the identity in the detail */
    const struct {
        const char *tok, *who;
    } denied[] = {{exec, "executor-service"}, {user, "test-user"}};
    for (size_t i = 0; i < 2; i++) {
        char want[200];
        snprintf(want, sizeof(want),
                 "{\"detail\":\"legacy-service:%s is not allowed to call "
                 "/opsconductor.jobs.v1.JobsService/GetJob\"}",
                 denied[i].who);
        assert_int_equal(legacy_call(j.legacy_port, "GET", "/jobs/7",
                                     denied[i].tok, NULL, out, sizeof(out)),
                         403);
        assert_non_null(strstr(out, "\r\nGrpc-Status: 7\r\n"));
        assert_non_null(strstr(out, want));
        assert_int_equal(legacy_call(j.legacy_port, "POST", "/jobs/7/run",
                                     denied[i].tok, "{}", out, sizeof(out)),
                         403);
    }
    /* the scheduler is allowed, and its run is the first execution: the
     * refused runs above never reached the handler */
    assert_int_equal(legacy_call(j.legacy_port, "GET", "/jobs/7", sched, NULL,
                                 out, sizeof(out)),
                     200);
    assert_non_null(strstr(out, "{\"id\":7,\"name\":\"job-7\""));
    assert_int_equal(legacy_call(j.legacy_port, "POST", "/jobs/7/run", sched,
                                 "{\"scheduled\": true}", out, sizeof(out)),
                     200);
    assert_non_null(strstr(out, "{\"execution_id\":1,\"job_id\":7,"
                                "\"status\":\"queued\",\"payload\":{"
                                "\"scheduled\":true},\"triggered_by\":"
                                "\"scheduler-service\""));
    /* a token auth does not know: 401 from the gateway */
    assert_int_equal(legacy_call(j.legacy_port, "GET", "/jobs/7", "forged",
                                 NULL, out, sizeof(out)),
                     401);
    assert_non_null(strstr(out, "{\"detail\":\"Invalid or expired token\"}"));

    /* no --auth-target: no token can be judged, 503 (not 401: the token is
     * not at fault) */
    const char *cextra[] = {"--legacy-listen=127.0.0.1:0", NULL};
    assert_int_equal(start(&c, "credentials", cextra), 0);
    assert_int_equal(legacy_call(c.legacy_port, "GET", "/credentials/1", exec,
                                 NULL, out, sizeof(out)),
                     503);
    assert_non_null(strstr(out, "{\"detail\":\"Auth service unavailable\"}"));
    assert_true(file_contains(c.log, "no --auth-target"));

    free(sched);
    free(exec);
    free(user);
    assert_int_equal(stop(&c, SIGTERM), 0);
    assert_int_equal(stop(&j, SIGTERM), 0);
    assert_int_equal(stop(&a, SIGTERM), 0);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    const char *g = argc > 1 ? argv[1] : "";
    const struct CMUnitTest auth[] = {cmocka_unit_test(test_auth)};
    const struct CMUnitTest jobs[] = {cmocka_unit_test(test_jobs)};
    const struct CMUnitTest restart[] = {cmocka_unit_test(test_jobs_restart)};
    const struct CMUnitTest notification[] = {
        cmocka_unit_test(test_notification)};
    const struct CMUnitTest credentials[] = {
        cmocka_unit_test(test_credentials)};
    const struct CMUnitTest user[] = {cmocka_unit_test(test_user)};
    const struct CMUnitTest policy[] = {cmocka_unit_test(test_policy)};
    const struct CMUnitTest legacy_policy[] = {
        cmocka_unit_test(test_legacy_policy)};
#define GROUP(name, tests)                                                     \
    if (strcmp(g, name) == 0)                                                  \
    return cmocka_run_group_tests_name(name, tests, group_setup, group_teardown)
    GROUP("auth", auth);
    GROUP("jobs", jobs);
    GROUP("jobs_restart", restart);
    GROUP("notification", notification);
    GROUP("credentials", credentials);
    GROUP("user", user);
    GROUP("policy", policy);
    GROUP("legacy_policy", legacy_policy);
#undef GROUP
    fprintf(stderr, "usage: opsconductor_services_test auth|jobs|jobs_restart|"
                    "notification|credentials|user|policy|legacy_policy\n");
    return 2;
}
