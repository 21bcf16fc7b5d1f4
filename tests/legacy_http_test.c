/*
 * legacy_http_test.c — the compat layer's legacy HTTP transport
 * (compat/src/legacy_http.c) and service-token flow (compat/src/tokens.c)
 * against tests/legacy/legacy_server.py, the fixture that behaves like the
 * OpsConductor FastAPI services.
 *
 * The group setup starts the fixture on an ephemeral port (fork/exec
 * /usr/bin/python3, read "listening on N") and the teardown stops it with
 * SIGTERM.  Each test starts from POST /_fixture/reset; the fixture is
 * driven through its control API (/_fixture/config, /requests, /stats) with
 * the transport under test itself.
 *
 * Covered: the HTTP status → gRPC code table on real replies and on
 * synthetic ones (FastAPI details, validation lists, non-service 404s);
 * deadlines (slow reply, waiting for a pooled connection); the reply size
 * limit with bounded memory; refused, closed, reset and truncated
 * connections; a connect timeout (UNAVAILABLE, not DEADLINE_EXCEEDED); TLS
 * failures; keep-alive reuse and the connection limit; the headers sent;
 * argument checks.  Tokens: one login reused, refresh 60 s
 * before expiry, expires_in absent, single flight under 50 callers (success
 * and failure), 401 → one refresh and one retry, forced refresh with a stale
 * token, bad and empty credentials, waiting for a login with a deadline.
 *
 * cmocka assertions run on the main thread only: worker threads record
 * their results for it to check.  LEGACY_HTTP_TEST_VERBOSE=1 in the
 * environment shows the fixture's stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>

#include <cmocka.h>
#include <jansson.h>

#include <orpc/error.h>
#include <orpc/status.h>

#include "legacy_http.h"
#include "tokens.h"

#ifndef LEGACY_SERVER
#error                                                                         \
    "LEGACY_SERVER (the path of tests/legacy/legacy_server.py) must be defined"
#endif

#define CTL_TIMEOUT_MS 10000

/* ---------------------------------------------------------------------- */
/* The fixture                                                             */

static pid_t server_pid = -1;
static int server_out = -1;
static int server_port;
static char base_url[64];
static orpc__legacy_http *ctl; /* the control API's client */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void stop_server(void)
{
    if (server_pid > 0) {
        kill(server_pid, SIGTERM);
        int status = 0;
        int gone = 0;
        for (int i = 0; i < 100 && !gone; i++) { /* 5 s */
            gone = waitpid(server_pid, &status, WNOHANG) == server_pid;
            if (!gone) {
                sleep_ms(50);
            }
        }
        if (!gone) {
            kill(server_pid, SIGKILL);
            waitpid(server_pid, &status, 0);
        }
        server_pid = -1;
    }
    if (server_out >= 0) {
        close(server_out);
        server_out = -1;
    }
}

static int start_server(void)
{
    int pfd[2];
    if (pipe(pfd) != 0) {
        return -1;
    }
    server_pid = fork();
    if (server_pid < 0) {
        return -1;
    }
    if (server_pid == 0) {
        /* The fixture goes when the test does, even if it crashes. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        dup2(pfd[1], STDOUT_FILENO);
        close(pfd[0]);
        close(pfd[1]);
        /* The fixture prints a traceback for every connection the tests
         * cut short; show them only on request. */
        if (getenv("LEGACY_HTTP_TEST_VERBOSE") == NULL) {
            int null = open("/dev/null", O_WRONLY);
            if (null >= 0) {
                dup2(null, STDERR_FILENO);
                close(null);
            }
        }
        execl("/usr/bin/python3", "python3", LEGACY_SERVER, "--port=0",
              (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    server_out = pfd[0];
    char line[128];
    size_t n = 0;
    int64_t deadline = now_ms() + 20000;
    while (n < sizeof(line) - 1 && memchr(line, '\n', n) == NULL) {
        int64_t left = deadline - now_ms();
        struct pollfd p = {server_out, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
            return -1;
        }
        ssize_t got = read(server_out, line + n, sizeof(line) - 1 - n);
        if (got <= 0) {
            return -1;
        }
        n += (size_t)got;
    }
    line[n] = '\0';
    if (sscanf(line, "listening on %d", &server_port) != 1) {
        return -1;
    }
    snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%d", server_port);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    if (start_server() != 0) {
        fprintf(stderr, "cannot start %s\n", LEGACY_SERVER);
        stop_server();
        return -1;
    }
    if (orpc__legacy_http_new(&ctl, base_url, NULL) != 0) {
        stop_server();
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    orpc__legacy_http_free(ctl);
    ctl = NULL;
    stop_server();
    return 0;
}

/* Sends a control request; returns the parsed reply (a new reference). */
static json_t *fx(const char *method, const char *path, const char *body)
{
    orpc__http_reply r;
    orpc_status st = orpc__legacy_http_do(ctl, method, path, NULL, 0, body,
                                          body != NULL ? strlen(body) : 0,
                                          CTL_TIMEOUT_MS, &r);
    if (st.code != ORPC_OK) {
        fail_msg("fixture %s %s: %s", method, path, st.message);
    }
    if (r.status != 200) {
        fail_msg("fixture %s %s: HTTP %ld %s", method, path, r.status, r.body);
    }
    json_error_t err;
    json_t *doc = json_loadb(r.body, r.len, JSON_DECODE_ANY, &err);
    assert_non_null(doc);
    orpc__http_reply_clear(&r);
    return doc;
}

static void fx_config(const char *json)
{
    json_decref(fx("POST", "/_fixture/config", json));
}

static long fx_stat(const char *name)
{
    json_t *s = fx("GET", "/_fixture/stats", NULL);
    json_t *v = json_object_get(s, name);
    assert_true(json_is_integer(v));
    long n = (long)json_integer_value(v);
    json_decref(s);
    return n;
}

/* The requests the fixture recorded for |path| (a JSON list). */
static json_t *fx_requests(const char *path)
{
    char q[256];
    snprintf(q, sizeof(q), "/_fixture/requests?path=%s", path);
    json_t *l = fx("GET", q, NULL);
    assert_true(json_is_array(l));
    return l;
}

/* Waits (bounded: 5 s) until the fixture's counter |name| reaches |want|,
 * and fails if it does not. */
static void wait_stat(const char *name, long want)
{
    long n = fx_stat(name);
    for (int i = 0; i < 200 && n < want; i++) {
        sleep_ms(25);
        n = fx_stat(name);
    }
    if (n < want) {
        fail_msg("fixture stat %s: %ld after 5 s, want %ld", name, n, want);
    }
}

/* Waits (bounded: 5 s) until the fixture has recorded |want| requests for
 * |path| (it records a request before any delay a rule adds). */
static void wait_recorded(const char *path, size_t want)
{
    size_t n = 0;
    for (int i = 0; i < 200; i++) {
        json_t *l = fx_requests(path);
        n = json_array_size(l);
        json_decref(l);
        if (n >= want) {
            return;
        }
        sleep_ms(25);
    }
    fail_msg("fixture recorded %zu requests for %s after 5 s, want %zu", n,
             path, want);
}

static int reset(void **state)
{
    (void)state;
    json_decref(fx("POST", "/_fixture/reset", "{\"tokens\": true}"));
    return 0;
}

static orpc__legacy_http *client(const orpc__http_opts *o)
{
    orpc__legacy_http *h = NULL;
    assert_int_equal(orpc__legacy_http_new(&h, base_url, o), 0);
    return h;
}

static orpc__tokens *tokens(orpc__legacy_http *auth)
{
    orpc__tokens *t = NULL;
    assert_int_equal(
        orpc__tokens_new(&t, auth, "scheduler-service", "scheduler-secret"), 0);
    return t;
}

/* Expects |st| to have |code| (and a message containing |part| when not
 * NULL); clears it. */
static void expect_status(orpc_status st, orpc_code code, const char *part)
{
    if (st.code != code) {
        fail_msg("expected %s, got %s: %s", orpc_code_name((int)code),
                 orpc_code_name((int)st.code),
                 st.message != NULL ? st.message : "(no message)");
    }
    if (part != NULL &&
        (st.message == NULL || strstr(st.message, part) == NULL)) {
        fail_msg("expected a message with \"%s\", got \"%s\"", part,
                 st.message != NULL ? st.message : "(null)");
    }
    orpc_status_clear(&st);
}

static void expect_ok(orpc_status st)
{
    expect_status(st, ORPC_OK, NULL);
}

/* GET |path| on |h| with no timeout beyond |timeout_ms|. */
static orpc_status get(orpc__legacy_http *h, const char *path,
                       int64_t timeout_ms, orpc__http_reply *r)
{
    return orpc__legacy_http_do(h, "GET", path, NULL, 0, NULL, 0, timeout_ms,
                                r);
}

/* A header's value in a recorded request, or NULL. */
static const char *rec_header(json_t *req, const char *lname)
{
    return json_string_value(
        json_object_get(json_object_get(req, "headers"), lname));
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) {
            break;
        }
    }
    fclose(f);
    return kib;
}

/* ---------------------------------------------------------------------- */
/* Status mapping without a server                                        */

typedef struct map_case {
    long status;
    const char *body;
    orpc_code code;
    const char *message; /* exact */
} map_case;

static void test_status_table(void **state)
{
    (void)state;
    static const map_case cases[] = {
        {200, "{}", ORPC_OK, NULL},
        {204, "", ORPC_OK, NULL},
        {299, "not json", ORPC_OK, NULL},
        {400, "{\"detail\":\"bad\"}", ORPC_INVALID_ARGUMENT, "bad"},
        {422, "{\"detail\":\"x\"}", ORPC_INVALID_ARGUMENT, "x"},
        {401, "{\"detail\":\"Not authenticated\"}", ORPC_UNAUTHENTICATED,
         "Not authenticated"},
        {403, "{\"detail\":\"no\"}", ORPC_PERMISSION_DENIED, "no"},
        {404, "{\"detail\":\"Job 7 not found\"}", ORPC_NOT_FOUND,
         "Job 7 not found"},
        {404, "{\"detail\":null}", ORPC_NOT_FOUND, "HTTP 404"},
        {404, "404 page not found", ORPC_UNIMPLEMENTED,
         "HTTP 404: no such route"},
        {404, "", ORPC_UNIMPLEMENTED, "HTTP 404: no such route"},
        {404, "{\"error\":\"nope\"}", ORPC_UNIMPLEMENTED,
         "HTTP 404: no such route"},
        {404, "[\"detail\"]", ORPC_UNIMPLEMENTED, "HTTP 404: no such route"},
        {405, "{\"detail\":\"Method Not Allowed\"}", ORPC_UNIMPLEMENTED,
         "Method Not Allowed"},
        {408, "", ORPC_DEADLINE_EXCEEDED, "HTTP 408"},
        {409, "{\"detail\":\"busy\"}", ORPC_ABORTED, "busy"},
        {410, "", ORPC_FAILED_PRECONDITION, "HTTP 410"},
        {413, "", ORPC_RESOURCE_EXHAUSTED, "HTTP 413"},
        {418, "{\"detail\":\"teapot\"}", ORPC_FAILED_PRECONDITION, "teapot"},
        {429, "{\"detail\":\"slow down\"}", ORPC_RESOURCE_EXHAUSTED,
         "slow down"},
        {499, "", ORPC_CANCELLED, "HTTP 499"},
        {500, "{\"detail\":\"db down\"}", ORPC_INTERNAL, "db down"},
        {500, "Internal Server Error", ORPC_INTERNAL, "HTTP 500"},
        {501, "", ORPC_UNIMPLEMENTED, "HTTP 501"},
        {502, "<html>bad gateway</html>", ORPC_UNAVAILABLE, "HTTP 502"},
        {503, "{\"detail\":\"later\"}", ORPC_UNAVAILABLE, "later"},
        {504, "", ORPC_DEADLINE_EXCEEDED, "HTTP 504"},
        {507, "", ORPC_UNKNOWN, "HTTP 507"},
        {307, "", ORPC_UNKNOWN, "HTTP 307 (redirects are not followed)"},
        {100, "", ORPC_UNKNOWN, "HTTP 100"},
        /* detail of other shapes: compact JSON */
        {400, "{\"detail\":{\"a\": [1, 2]}}", ORPC_INVALID_ARGUMENT,
         "{\"a\":[1,2]}"},
        {400, "{\"detail\":42}", ORPC_INVALID_ARGUMENT, "42"},
        /* validation lists */
        {422,
         "{\"detail\":[{\"type\":\"missing\",\"loc\":[\"body\",\"payload\","
         "\"subject\"],\"msg\":\"Field required\",\"input\":{\"body\":"
         "\"secret\"}}]}",
         ORPC_INVALID_ARGUMENT, "body.payload.subject: Field required"},
        {422,
         "{\"detail\":[{\"loc\":[\"path\",\"job_id\"],\"msg\":\"bad int\"},"
         "{\"loc\":[\"body\",3],\"msg\":\"JSON decode error\",\"ctx\":"
         "{\"error\":\"Expecting value\"}}]}",
         ORPC_INVALID_ARGUMENT,
         "path.job_id: bad int; body.3: JSON decode error (Expecting value)"},
        {422, "{\"detail\":[{\"msg\":\"no loc\"}, \"odd\"]}",
         ORPC_INVALID_ARGUMENT, "no loc; \"odd\""},
        {422, "{\"detail\":[]}", ORPC_INVALID_ARGUMENT, "HTTP 422"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        orpc__http_reply r = {cases[i].status, (char *)cases[i].body,
                              strlen(cases[i].body), NULL, 0};
        orpc_status st = orpc__legacy_status(&r);
        if (st.code != cases[i].code) {
            fail_msg("HTTP %ld %s: expected %s, got %s", cases[i].status,
                     cases[i].body, orpc_code_name((int)cases[i].code),
                     orpc_code_name((int)st.code));
        }
        if (cases[i].message == NULL) {
            assert_null(st.message);
        } else if (st.message == NULL ||
                   strcmp(st.message, cases[i].message) != 0) {
            fail_msg("HTTP %ld %s: expected \"%s\", got \"%s\"",
                     cases[i].status, cases[i].body, cases[i].message,
                     st.message != NULL ? st.message : "(null)");
        }
        /* The validation item's "input" is never quoted. */
        assert_true(st.message == NULL || strstr(st.message, "secret") == NULL);
        orpc_status_clear(&st);
    }
    /* No reply at all. */
    expect_status(orpc__legacy_status(NULL), ORPC_INTERNAL, NULL);
}

static void test_status_long_details(void **state)
{
    (void)state;
    /* 20 items: 8 rendered, then "and 12 more". */
    json_t *list = json_array();
    for (int i = 0; i < 20; i++) {
        json_array_append_new(list,
                              json_pack("{s:[s,s,i],s:s}", "loc", "body",
                                        "items", i, "msg", "Field required"));
    }
    json_t *doc = json_pack("{s:o}", "detail", list);
    char *body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    orpc__http_reply r = {422, body, strlen(body), NULL, 0};
    orpc_status st = orpc__legacy_status(&r);
    assert_int_equal(st.code, ORPC_INVALID_ARGUMENT);
    assert_non_null(strstr(st.message, "body.items.0: Field required; "
                                       "body.items.1: Field required"));
    assert_non_null(strstr(st.message, "body.items.7: Field required; and 12 "
                                       "more"));
    assert_null(strstr(st.message, "items.8"));
    orpc_status_clear(&st);
    free(body);

    /* A 100 KiB string detail of multibyte characters is cut at 1 KiB on a
     * character boundary. */
    size_t n = 50000;
    char *big = malloc(2 * n + 32);
    assert_non_null(big);
    size_t at = 0;
    at += (size_t)sprintf(big, "{\"detail\":\"");
    for (size_t i = 0; i < n; i++) {
        big[at++] = (char)0xC3; /* é */
        big[at++] = (char)0xA9;
    }
    at += (size_t)sprintf(big + at, "\"}");
    orpc__http_reply r2 = {400, big, at, NULL, 0};
    st = orpc__legacy_status(&r2);
    assert_int_equal(st.code, ORPC_INVALID_ARGUMENT);
    size_t ml = strlen(st.message);
    assert_true(ml <= 1024 + 3);
    assert_string_equal(st.message + ml - 3, "...");
    assert_int_equal((ml - 3) % 2, 0); /* whole characters only */
    orpc_status_clear(&st);
    free(big);
}

/* ---------------------------------------------------------------------- */
/* Arguments                                                               */

static void test_new_arguments(void **state)
{
    (void)state;
    orpc__legacy_http *h = (orpc__legacy_http *)&h;
    assert_int_equal(orpc__legacy_http_new(NULL, "http://x", NULL),
                     ORPC_EINVAL);
    assert_int_equal(orpc__legacy_http_new(&h, NULL, NULL), ORPC_EINVAL);
    assert_null(h);
    static const char *const bad[] = {
        "",
        "ftp://host/",
        "file:///etc/passwd",
        "host:80",
        "http://",
        "http://user:pw@host:80",
        "http://host/a b",
        "http://host/?q=1",
        "http://host/#x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (orpc__legacy_http_new(&h, bad[i], NULL) != ORPC_ECONFIG) {
            fail_msg("\"%s\" should be refused", bad[i]);
        }
        assert_null(h);
    }
    orpc__http_opts o;
    memset(&o, 0, sizeof(o));
    o.ca_file = "/nonexistent/ca.pem";
    assert_int_equal(orpc__legacy_http_new(&h, "https://host", &o),
                     ORPC_ECONFIG);
    memset(&o, 0, sizeof(o));
    o.max_connections = -1;
    assert_int_equal(orpc__legacy_http_new(&h, "http://host", &o),
                     ORPC_ECONFIG);
    memset(&o, 0, sizeof(o));
    o.user_agent = "bad\r\nX-Injected: 1";
    assert_int_equal(orpc__legacy_http_new(&h, "http://host", &o),
                     ORPC_ECONFIG);
    /* Good ones, with a path prefix and trailing slashes. */
    assert_int_equal(orpc__legacy_http_new(&h, "HTTPS://host:1/api//", NULL),
                     0);
    orpc__legacy_http_free(h);
    orpc__legacy_http_free(NULL);
}

static void test_do_arguments(void **state)
{
    (void)state;
    orpc__legacy_http *h = client(NULL);
    orpc__http_reply r;
    const char *hdr_bad1[] = {"no colon here"};
    const char *hdr_bad2[] = {"Authorization: Bearer s3cr3t\r\nX-Evil: 1"};
    const char *hdr_bad3[] = {": empty name"};
    expect_status(
        orpc__legacy_http_do(h, "GE T", "/health", NULL, 0, NULL, 0, 0, &r),
        ORPC_INVALID_ARGUMENT, "method");
    expect_status(
        orpc__legacy_http_do(h, "", "/health", NULL, 0, NULL, 0, 0, &r),
        ORPC_INVALID_ARGUMENT, "method");
    expect_status(get(h, "health", 0, &r), ORPC_INVALID_ARGUMENT, "path");
    expect_status(get(h, "/a b", 0, &r), ORPC_INVALID_ARGUMENT, "path");
    expect_status(get(h, "/a\r\nb", 0, &r), ORPC_INVALID_ARGUMENT, "path");
    expect_status(get(h, "/h\xc3\xa9", 0, &r), ORPC_INVALID_ARGUMENT, "path");
    expect_status(
        orpc__legacy_http_do(h, "GET", "/health", hdr_bad1, 1, NULL, 0, 0, &r),
        ORPC_INVALID_ARGUMENT, "header 0");
    orpc_status st =
        orpc__legacy_http_do(h, "GET", "/health", hdr_bad2, 1, NULL, 0, 0, &r);
    assert_int_equal(st.code, ORPC_INVALID_ARGUMENT);
    assert_null(strstr(st.message, "s3cr3t")); /* never echoed */
    orpc_status_clear(&st);
    expect_status(
        orpc__legacy_http_do(h, "GET", "/health", hdr_bad3, 1, NULL, 0, 0, &r),
        ORPC_INVALID_ARGUMENT, NULL);
    expect_status(
        orpc__legacy_http_do(h, "GET", "/health", NULL, 1, NULL, 0, 0, &r),
        ORPC_INVALID_ARGUMENT, NULL);
    expect_status(
        orpc__legacy_http_do(h, "POST", "/health", NULL, 0, NULL, 3, 0, &r),
        ORPC_INVALID_ARGUMENT, NULL);
    expect_status(get(h, "/health", -1, &r), ORPC_INVALID_ARGUMENT, NULL);
    expect_status(get(NULL, "/health", 0, &r), ORPC_INVALID_ARGUMENT, NULL);
    expect_status(get(h, "/health", 0, NULL), ORPC_INVALID_ARGUMENT, NULL);
    assert_null(r.body);
    orpc__http_reply_clear(&r);
    orpc__http_reply_clear(NULL);
    orpc__legacy_http_free(h);
}

static void test_tokens_refuse_empty_credentials(void **state)
{
    (void)state;
    orpc__legacy_http *h = client(NULL);
    orpc__tokens *t = (orpc__tokens *)&t;
    assert_int_equal(orpc__tokens_new(&t, h, "", "pw"), ORPC_ECONFIG);
    assert_null(t);
    assert_int_equal(orpc__tokens_new(&t, h, "user", ""), ORPC_ECONFIG);
    assert_int_equal(orpc__tokens_new(&t, h, NULL, "pw"), ORPC_ECONFIG);
    assert_int_equal(orpc__tokens_new(&t, h, "user", NULL), ORPC_ECONFIG);
    assert_int_equal(orpc__tokens_new(&t, h, NULL, NULL), ORPC_ECONFIG);
    assert_int_equal(orpc__tokens_new(&t, h, "us\ner", "pw"), ORPC_ECONFIG);
    assert_int_equal(orpc__tokens_new(&t, NULL, "user", "pw"), ORPC_EINVAL);
    assert_int_equal(orpc__tokens_new(NULL, h, "user", "pw"), ORPC_EINVAL);
    assert_null(t);
    orpc__tokens_free(NULL);
    /* No login was attempted for any of them. */
    assert_int_equal(fx_stat("login_requests"), 0);
    orpc__legacy_http_free(h);
}

/* ---------------------------------------------------------------------- */
/* HTTP statuses from the fixture                                         */

static void test_error_statuses(void **state)
{
    (void)state;
    static const struct {
        int status;
        orpc_code code;
        const char *detail; /* NULL: the fixture's reason phrase */
        const char *want;
    } cases[] = {
        {400, ORPC_INVALID_ARGUMENT, "bad input", "bad input"},
        {401, ORPC_UNAUTHENTICATED, NULL, "Unauthorized"},
        {403, ORPC_PERMISSION_DENIED, "not yours", "not yours"},
        {404, ORPC_NOT_FOUND, "Job 7 not found", "Job 7 not found"},
        {405, ORPC_UNIMPLEMENTED, NULL, "Method Not Allowed"},
        {409, ORPC_ABORTED, "conflict", "conflict"},
        {418, ORPC_FAILED_PRECONDITION, NULL, "I'm a Teapot"},
        {422, ORPC_INVALID_ARGUMENT, NULL, "Unprocessable"},
        {429, ORPC_RESOURCE_EXHAUSTED, NULL, "Too Many Requests"},
        {500, ORPC_INTERNAL, "Database error", "Database error"},
        {501, ORPC_UNIMPLEMENTED, NULL, "Not Implemented"},
        {502, ORPC_UNAVAILABLE, NULL, "Bad Gateway"},
        {503, ORPC_UNAVAILABLE, NULL, "Service Unavailable"},
        {504, ORPC_DEADLINE_EXCEEDED, NULL, "Gateway Timeout"},
        {507, ORPC_UNKNOWN, NULL, "Insufficient Storage"},
    };
    orpc__legacy_http *h = client(NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char rule[256];
        if (cases[i].detail != NULL) {
            snprintf(rule, sizeof(rule),
                     "{\"rules\":[{\"route\":\"GET /jobs/7\",\"status\":%d,"
                     "\"detail\":\"%s\",\"times\":1}]}",
                     cases[i].status, cases[i].detail);
        } else {
            snprintf(rule, sizeof(rule),
                     "{\"rules\":[{\"route\":\"GET /jobs/7\",\"status\":%d,"
                     "\"times\":1}]}",
                     cases[i].status);
        }
        fx_config(rule);
        orpc__http_reply r;
        expect_ok(get(h, "/jobs/7", 5000, &r));
        assert_int_equal(r.status, cases[i].status);
        assert_non_null(r.content_type);
        assert_non_null(strstr(r.content_type, "application/json"));
        orpc_status st = orpc__legacy_status(&r);
        if (st.code != cases[i].code || st.message == NULL ||
            strstr(st.message, cases[i].want) == NULL) {
            fail_msg("HTTP %d: expected %s \"%s\", got %s \"%s\"",
                     cases[i].status, orpc_code_name((int)cases[i].code),
                     cases[i].want, orpc_code_name((int)st.code),
                     st.message != NULL ? st.message : "(null)");
        }
        orpc_status_clear(&st);
        orpc__http_reply_clear(&r);
    }
    orpc__legacy_http_free(h);
}

static void test_404_kinds(void **state)
{
    (void)state;
    orpc__legacy_http *h = client(NULL);
    orpc__tokens *t = tokens(h);
    orpc__http_reply r;

    /* The service's own 404: NOT_FOUND with its detail. */
    expect_ok(orpc__legacy_call_authed(h, t, "GET", "/users/999", NULL, 0, NULL,
                                       0, 5000, &r));
    assert_int_equal(r.status, 404);
    expect_status(orpc__legacy_status(&r), ORPC_NOT_FOUND,
                  "User 999 not found");
    orpc__http_reply_clear(&r);

    /* A service that is not there (a proxy's plain 404): UNIMPLEMENTED. */
    fx_config("{\"unknown_404\":\"plain\",\"disabled_services\":[\"user\"]}");
    expect_ok(orpc__legacy_call_authed(h, t, "GET", "/users/1", NULL, 0, NULL,
                                       0, 5000, &r));
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "404 page not found");
    assert_non_null(strstr(r.content_type, "text/plain"));
    expect_status(orpc__legacy_status(&r), ORPC_UNIMPLEMENTED, "HTTP 404");
    orpc__http_reply_clear(&r);

    /* An HTML 404 from a rule. */
    fx_config("{\"rules\":[{\"route\":\"GET /jobs/{job_id}\",\"status\":404,"
              "\"raw\":\"<html>Not Found</html>\",\"content_type\":"
              "\"text/html\",\"times\":1}]}");
    expect_ok(get(h, "/jobs/3", 5000, &r));
    assert_int_equal(r.status, 404);
    expect_status(orpc__legacy_status(&r), ORPC_UNIMPLEMENTED, NULL);
    orpc__http_reply_clear(&r);

    orpc__tokens_free(t);
    orpc__legacy_http_free(h);
}

static void test_422_validation_messages(void **state)
{
    (void)state;
    orpc__legacy_http *h = client(NULL);
    orpc__tokens *t = tokens(h);
    orpc__http_reply r;

    const char *email =
        "{\"type\":\"email\",\"destination\":\"ops@example.com\","
        "\"payload\":{\"body\":\"hello\"}}";
    expect_ok(orpc__legacy_call_authed(h, t, "POST", "/notifications", NULL, 0,
                                       email, strlen(email), 5000, &r));
    assert_int_equal(r.status, 422);
    orpc_status st = orpc__legacy_status(&r);
    assert_int_equal(st.code, ORPC_INVALID_ARGUMENT);
    assert_string_equal(st.message, "body.payload.subject: Field required");
    orpc_status_clear(&st);
    orpc__http_reply_clear(&r);

    expect_ok(orpc__legacy_call_authed(h, t, "GET", "/jobs/abc", NULL, 0, NULL,
                                       0, 5000, &r));
    assert_int_equal(r.status, 422);
    expect_status(orpc__legacy_status(&r), ORPC_INVALID_ARGUMENT,
                  "path.job_id: Input should be a valid integer");
    orpc__http_reply_clear(&r);

    const char *broken = "{bad";
    expect_ok(orpc__legacy_call_authed(h, t, "POST", "/jobs/1/run", NULL, 0,
                                       broken, strlen(broken), 5000, &r));
    assert_int_equal(r.status, 422);
    expect_status(orpc__legacy_status(&r), ORPC_INVALID_ARGUMENT,
                  "body.1: JSON decode error (Expecting property name");
    orpc__http_reply_clear(&r);

    orpc__tokens_free(t);
    orpc__legacy_http_free(h);
}

static void test_non_json_200_passes_through(void **state)
{
    (void)state;
    orpc__legacy_http *h = client(NULL);
    fx_config("{\"rules\":[{\"route\":\"GET /health\",\"raw\":\"plain "
              "text, not JSON\",\"times\":1}]}");
    orpc__http_reply r;
    expect_ok(get(h, "/health", 5000, &r));
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, strlen("plain text, not JSON"));
    assert_string_equal(r.body, "plain text, not JSON");
    assert_string_equal(r.content_type, "text/plain; charset=utf-8");
    expect_ok(orpc__legacy_status(&r));
    orpc__http_reply_clear(&r);

    /* An empty 200 body is "" (never NULL); no Content-Type is NULL. */
    fx_config("{\"rules\":[{\"route\":\"GET /health\",\"raw\":\"\","
              "\"status\":204,\"times\":1}]}");
    expect_ok(get(h, "/health", 5000, &r));
    assert_int_equal(r.status, 204);
    assert_non_null(r.body);
    assert_int_equal(r.len, 0);
    orpc__http_reply_clear(&r);

    /* The plain reply: JSON, normal. */
    expect_ok(get(h, "/health", 5000, &r));
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"healthy\""));
    orpc__http_reply_clear(&r);
    orpc__legacy_http_free(h);
}

static void test_redirect_not_followed(void **state)
{
    (void)state;
    orpc__legacy_http *h = client(NULL);
    orpc__http_reply r;
    expect_ok(get(h, "/health/", 5000, &r));
    assert_int_equal(r.status, 307);
    expect_status(orpc__legacy_status(&r), ORPC_UNKNOWN, "307");
    orpc__http_reply_clear(&r);
    json_t *l = fx_requests("/health");
    assert_int_equal(json_array_size(l), 0); /* never followed */
    json_decref(l);
    orpc__legacy_http_free(h);
}

/* ---------------------------------------------------------------------- */
/* Transport failures                                                      */

static void test_slow_reply_deadline(void **state)
{
    (void)state;
    orpc__legacy_http *h = client(NULL);
    fx_config("{\"rules\":[{\"route\":\"GET /health\",\"delay_ms\":3000,"
              "\"times\":1}]}");
    orpc__http_reply r;
    /* the reply would come, 200 OK, after 3 s: DEADLINE_EXCEEDED is the
     * deadline's doing (timings are for benchmarks, not tests) */
    orpc_status st = get(h, "/health", 300, &r);
    expect_status(st, ORPC_DEADLINE_EXCEEDED, "300 ms");
    assert_null(r.body);
    /* The pool still works afterwards. */
    expect_ok(get(h, "/health", 5000, &r));
    assert_int_equal(r.status, 200);
    orpc__http_reply_clear(&r);
    orpc__legacy_http_free(h);
}

typedef struct bg_call {
    orpc__legacy_http *h;
    const char *path;
    int64_t timeout_ms;
    orpc_status st;
    long http_status;
    pthread_barrier_t *start;
} bg_call;

static void *bg_get(void *arg)
{
    bg_call *c = arg;
    if (c->start != NULL) {
        pthread_barrier_wait(c->start);
    }
    orpc__http_reply r;
    c->st = get(c->h, c->path, c->timeout_ms, &r);
    c->http_status = r.status;
    orpc__http_reply_clear(&r);
    return NULL;
}

static void test_deadline_while_waiting_for_a_connection(void **state)
{
    (void)state;
    orpc__http_opts o;
    memset(&o, 0, sizeof(o));
    o.max_connections = 1;
    orpc__legacy_http *h = client(&o);
    fx_config("{\"rules\":[{\"route\":\"GET /health\",\"delay_ms\":1500,"
              "\"times\":1}]}");
    /* The one connection is busy for 1.5 s ... */
    bg_call slow = {h, "/health", 0, ORPC_STATUS_OK, 0, NULL};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, bg_get, &slow), 0);
    wait_recorded("/health", 1); /* the slow call has the connection */
    /* ... so this one waits in the pool, and its deadline still holds. */
    orpc__http_reply r;
    orpc_status st = get(h, "/jobs/1/status", 300, &r);
    expect_status(st, ORPC_DEADLINE_EXCEEDED, NULL);
    pthread_join(th, NULL);
    expect_ok(slow.st);
    assert_int_equal(slow.http_status, 200);
    orpc__legacy_http_free(h);
}

static void oversized(orpc__legacy_http *h, const char *rule)
{
    fx_config(rule);
    orpc__http_reply r;
    expect_status(get(h, "/health", 10000, &r), ORPC_RESOURCE_EXHAUSTED,
                  "larger than the limit of 1048576 bytes");
    assert_null(r.body);
}

static void test_oversized_reply(void **state)
{
    (void)state;
    orpc__http_opts o;
    memset(&o, 0, sizeof(o));
    o.max_reply_bytes = 1 << 20;
    orpc__legacy_http *h = client(&o);
    orpc__http_reply r;

    /* Warm up (threads, TLS tables, the pool) before measuring. */
    oversized(h, "{\"rules\":[{\"route\":\"GET /health\",\"size\":2097152,"
                 "\"chunked\":true,\"times\":1}]}");
    long before = rss_kib();
    for (int i = 0; i < 3; i++) {
        /* Content-Length: refused before the body is read. */
        oversized(h, "{\"rules\":[{\"route\":\"GET /health\",\"size\":10485760,"
                     "\"times\":1}]}");
        /* Chunked, no length: the write callback stops at the limit. */
        oversized(h, "{\"rules\":[{\"route\":\"GET /health\",\"size\":67108864,"
                     "\"chunked\":true,\"times\":1}]}");
    }
    long after = rss_kib();
    print_message("RSS %ld KiB before and %ld KiB after 204 MiB of replies\n",
                  before, after);
    /* Three 10 MiB and three 64 MiB replies went by: memory grew by far
     * less than one of them (the slack is for ASan's quarantine, which
     * keeps the freed 1 MiB buffers). */
    if (before < 0 || after < 0 || after - before > 16 * 1024) {
        fail_msg("RSS grew from %ld KiB to %ld KiB", before, after);
    }

    /* Exactly the limit is fine; one byte more is not. */
    fx_config("{\"rules\":[{\"route\":\"GET /health\",\"size\":1048576,"
              "\"chunked\":true,\"times\":1}]}");
    expect_ok(get(h, "/health", 10000, &r));
    assert_int_equal(r.len, 1 << 20);
    assert_int_equal(r.body[r.len], '\0');
    assert_memory_equal(r.body, "{\"padding\":\"xxx", 15);
    orpc__http_reply_clear(&r);
    oversized(h, "{\"rules\":[{\"route\":\"GET /health\",\"size\":1048577,"
                 "\"chunked\":true,\"times\":1}]}");
    oversized(h, "{\"rules\":[{\"route\":\"GET /health\",\"size\":1048577,"
                 "\"times\":1}]}");
    /* The pool still works. */
    expect_ok(get(h, "/health", 5000, &r));
    assert_int_equal(r.status, 200);
    orpc__http_reply_clear(&r);
    orpc__legacy_http_free(h);
}

static void test_connection_refused(void **state)
{
    (void)state;
    /* A port that was just free: bound, then closed. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t al = sizeof(a);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &al), 0);
    close(s);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(a.sin_port));
    orpc__legacy_http *h = NULL;
    assert_int_equal(orpc__legacy_http_new(&h, url, NULL), 0);
    orpc__http_reply r;
    /* UNAVAILABLE, not DEADLINE_EXCEEDED: it did not wait out the 5 s */
    expect_status(get(h, "/health", 5000, &r), ORPC_UNAVAILABLE, "/health: ");

    /* A login through it fails the same way, named after the identity. */
    orpc__tokens *t = tokens(h);
    char *tok = NULL;
    expect_status(orpc__tokens_get(t, 0, NULL, 5000, &tok), ORPC_UNAVAILABLE,
                  "login for scheduler-service: ");
    assert_null(tok);
    orpc__tokens_free(t);
    orpc__legacy_http_free(h);
}

static void test_connect_timeout_is_unavailable(void **state)
{
    (void)state;
    /* A listener that never accepts, its queue full: a new connect gets no
     * answer to its SYN and hangs until the connect timeout. */
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(ls >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t al = sizeof(a);
    assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &al), 0);
    assert_int_equal(listen(ls, 0), 0);
    int fill[4];
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        assert_true(fill[i] >= 0);
        (void)connect(fill[i], (struct sockaddr *)&a, sizeof(a));
    }
    /* the first one is established (the queue holds it): wait for that
     * (bounded: 5 s) instead of a guessed time */
    struct pollfd pf = {.fd = fill[0], .events = POLLOUT};
    assert_int_equal(poll(&pf, 1, 5000), 1);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(a.sin_port));
    orpc__http_opts o;
    memset(&o, 0, sizeof(o));
    o.connect_timeout_ms = 300;
    orpc__legacy_http *h = NULL;
    assert_int_equal(orpc__legacy_http_new(&h, url, &o), 0);
    orpc__http_reply r;
    /* The connect timeout, before the call's deadline: the service is
     * unreachable (UNAVAILABLE), not slow (DEADLINE_EXCEEDED). */
    expect_status(get(h, "/health", 5000, &r), ORPC_UNAVAILABLE, NULL);
    /* With the deadline shorter than the connect timeout, the deadline
     * is what ran out. */
    expect_status(get(h, "/health", 150, &r), ORPC_DEADLINE_EXCEEDED, NULL);
    orpc__legacy_http_free(h);
    for (int i = 0; i < 4; i++) {
        close(fill[i]);
    }
    close(ls);
}

static void test_server_closes_without_reply(void **state)
{
    (void)state;
    orpc__legacy_http *h = client(NULL);
    orpc__http_reply r;
    static const char *const rules[] = {
        "{\"clear_rules\":true,\"rules\":[{\"route\":\"GET /health\","
        "\"close\":true}]}",
        "{\"clear_rules\":true,\"rules\":[{\"route\":\"GET /health\","
        "\"reset\":true}]}",
        "{\"clear_rules\":true,\"rules\":[{\"route\":\"GET /health\","
        "\"size\":100000,\"truncate\":true}]}",
        "{\"clear_rules\":true,\"rules\":[{\"route\":\"GET /health\","
        "\"size\":100000,\"truncate\":true,\"chunked\":true}]}",
    };
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        /* Once on a fresh connection, once on a reused one. */
        expect_ok(get(h, "/jobs/1/status", 5000, &r));
        orpc__http_reply_clear(&r);
        fx_config(rules[i]);
        for (int k = 0; k < 2; k++) {
            orpc_status st = get(h, "/health", 5000, &r);
            if (st.code != ORPC_UNAVAILABLE) {
                fail_msg("rule %zu: expected UNAVAILABLE, got %s: %s", i,
                         orpc_code_name((int)st.code),
                         st.message != NULL ? st.message : "");
            }
            orpc_status_clear(&st);
            assert_null(r.body);
        }
        fx_config("{\"clear_rules\":true}");
    }
    expect_ok(get(h, "/health", 5000, &r));
    orpc__http_reply_clear(&r);
    orpc__legacy_http_free(h);
}

static void test_tls_failure(void **state)
{
    (void)state;
    /* https:// to the fixture's plain HTTP port: the handshake fails. */
    char url[64];
    snprintf(url, sizeof(url), "https://127.0.0.1:%d", server_port);
    orpc__legacy_http *h = NULL;
    assert_int_equal(orpc__legacy_http_new(&h, url, NULL), 0);
    orpc__http_reply r;
    expect_status(get(h, "/health", 5000, &r), ORPC_UNAVAILABLE, "TLS: ");
    orpc__legacy_http_free(h);
}

/* ---------------------------------------------------------------------- */
/* The pool and the headers                                                */

static void test_keepalive_reuse(void **state)
{
    (void)state;
    orpc__legacy_http *h = client(NULL);
    orpc__http_reply r;
    for (int i = 0; i < 5; i++) {
        expect_ok(get(h, "/health", 5000, &r));
        assert_int_equal(r.status, 200);
        orpc__http_reply_clear(&r);
    }
    json_t *l = fx_requests("/health");
    assert_int_equal(json_array_size(l), 5);
    json_int_t conn =
        json_integer_value(json_object_get(json_array_get(l, 0), "conn"));
    for (size_t i = 0; i < 5; i++) {
        json_t *e = json_array_get(l, i);
        assert_int_equal(json_integer_value(json_object_get(e, "conn")), conn);
        assert_int_equal(json_integer_value(json_object_get(e, "conn_request")),
                         (json_int_t)i + 1);
        assert_string_equal(
            json_string_value(json_object_get(e, "http_version")), "HTTP/1.1");
    }
    json_decref(l);
    orpc__legacy_http_free(h);
}

static void test_headers_sent(void **state)
{
    (void)state;
    orpc__legacy_http *h = client(NULL);
    orpc__http_reply r;
    const char *extra[] = {"X-Request-Id: abc-123"};

    /* GET: User-Agent, no Content-Type. */
    expect_ok(
        orpc__legacy_http_do(h, "GET", "/health", extra, 1, NULL, 0, 5000, &r));
    orpc__http_reply_clear(&r);
    /* POST with a body: Content-Type: application/json. */
    const char *login = "{\"username\":\"test-user\",\"password\":\"test-"
                        "password\"}";
    expect_ok(orpc__legacy_http_do(h, "POST", "/login", NULL, 0, login,
                                   strlen(login), 5000, &r));
    assert_int_equal(r.status, 200);
    orpc__http_reply_clear(&r);
    /* POST without a body: Content-Length 0, no Content-Type. */
    expect_ok(orpc__legacy_http_do(h, "POST", "/jobs/1/run", NULL, 0, NULL, 0,
                                   5000, &r));
    assert_int_equal(r.status, 401); /* no token */
    orpc__http_reply_clear(&r);

    json_t *l = fx_requests("/health");
    json_t *e = json_array_get(l, 0);
    assert_string_equal(rec_header(e, "user-agent"), "OpsConductor-orpc/1.0.0");
    assert_null(rec_header(e, "content-type"));
    assert_string_equal(rec_header(e, "x-request-id"), "abc-123");
    assert_int_equal(json_array_size(json_object_get(e, "problems")), 0);
    json_decref(l);

    l = fx_requests("/login");
    e = json_array_get(l, 0);
    assert_string_equal(rec_header(e, "content-type"), "application/json");
    assert_string_equal(rec_header(e, "user-agent"), "OpsConductor-orpc/1.0.0");
    assert_int_equal(json_integer_value(json_object_get(e, "body_len")),
                     (json_int_t)strlen(login));
    assert_int_equal(json_array_size(json_object_get(e, "problems")), 0);
    json_decref(l);

    l = fx_requests("/jobs/1/run");
    e = json_array_get(l, 0);
    assert_null(rec_header(e, "content-type"));
    assert_string_equal(rec_header(e, "content-length"), "0");
    assert_string_equal(json_string_value(json_object_get(e, "method")),
                        "POST");
    json_decref(l);
    orpc__legacy_http_free(h);

    /* Options: another User-Agent; a caller's Content-Type replaces ours. */
    orpc__http_opts o;
    memset(&o, 0, sizeof(o));
    o.user_agent = "OpsConductor-scheduler/1.0.0";
    h = client(&o);
    fx_config("{\"expect_user_agent\":\"OpsConductor-scheduler/1.0.0\"}");
    const char *ct[] = {"content-type: application/json; charset=utf-8"};
    expect_ok(orpc__legacy_http_do(h, "POST", "/login", ct, 1, login,
                                   strlen(login), 5000, &r));
    assert_int_equal(r.status, 200);
    orpc__http_reply_clear(&r);
    l = fx_requests("/login");
    e = json_array_get(l, 1);
    assert_string_equal(rec_header(e, "user-agent"),
                        "OpsConductor-scheduler/1.0.0");
    assert_string_equal(rec_header(e, "content-type"),
                        "application/json; charset=utf-8");
    assert_int_equal(json_array_size(json_object_get(e, "problems")), 0);
    json_decref(l);
    orpc__legacy_http_free(h);
}

#define POOL_THREADS 12

static void test_connection_limit_and_concurrency(void **state)
{
    (void)state;
    orpc__http_opts o;
    memset(&o, 0, sizeof(o));
    o.max_connections = 2;
    orpc__legacy_http *h = client(&o);
    fx_config("{\"rules\":[{\"route\":\"GET /health\",\"delay_ms\":100}]}");
    bg_call calls[POOL_THREADS];
    pthread_t th[POOL_THREADS];
    pthread_barrier_t b;
    pthread_barrier_init(&b, NULL, POOL_THREADS);
    for (int i = 0; i < POOL_THREADS; i++) {
        bg_call c = {h, "/health", 10000, ORPC_STATUS_OK, 0, &b};
        calls[i] = c;
        assert_int_equal(pthread_create(&th[i], NULL, bg_get, &calls[i]), 0);
    }
    for (int i = 0; i < POOL_THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    pthread_barrier_destroy(&b);
    for (int i = 0; i < POOL_THREADS; i++) {
        expect_ok(calls[i].st);
        assert_int_equal(calls[i].http_status, 200);
    }
    /* Two at a time: every call on one of two connections. */
    json_t *l = fx_requests("/health");
    assert_int_equal(json_array_size(l), POOL_THREADS);
    json_int_t c1 = -1, c2 = -1;
    for (size_t i = 0; i < json_array_size(l); i++) {
        json_int_t c =
            json_integer_value(json_object_get(json_array_get(l, i), "conn"));
        if (c1 < 0 || c == c1) {
            c1 = c;
        } else if (c2 < 0 || c == c2) {
            c2 = c;
        } else {
            fail_msg("a third connection (%lld)", (long long)c);
        }
    }
    json_decref(l);
    orpc__legacy_http_free(h);
}

/* ---------------------------------------------------------------------- */
/* Tokens                                                                  */

typedef struct bg_token {
    orpc__tokens *t;
    orpc__legacy_http *h;
    int force;
    const char *stale;
    int64_t timeout_ms;
    int calls; /* authed calls to make instead of a get, when > 0 */
    pthread_barrier_t *start;
    orpc_status st;
    char *token;
    int bad_replies;
} bg_token;

static void *bg_tokens(void *arg)
{
    bg_token *c = arg;
    if (c->start != NULL) {
        pthread_barrier_wait(c->start);
    }
    if (c->calls == 0) {
        c->st = orpc__tokens_get(c->t, c->force, c->stale, c->timeout_ms,
                                 &c->token);
        return NULL;
    }
    for (int i = 0; i < c->calls; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/jobs/%d", 1 + i % 100);
        orpc__http_reply r;
        orpc_status st = orpc__legacy_call_authed(c->h, c->t, "GET", path, NULL,
                                                  0, NULL, 0, 10000, &r);
        if (st.code != ORPC_OK || r.status != 200) {
            c->bad_replies++;
        }
        orpc_status_clear(&st);
        orpc__http_reply_clear(&r);
    }
    return NULL;
}

static void test_login_once_and_reuse(void **state)
{
    (void)state;
    orpc__legacy_http *h = client(NULL);
    orpc__tokens *t = tokens(h);
    orpc__http_reply r;
    for (int i = 1; i <= 10; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/jobs/%d", i);
        expect_ok(orpc__legacy_call_authed(h, t, "GET", path, NULL, 0, NULL, 0,
                                           5000, &r));
        assert_int_equal(r.status, 200);
        orpc__http_reply_clear(&r);
    }
    assert_int_equal(fx_stat("login_requests"), 1);
    assert_int_equal(fx_stat("problems"), 0);

    /* The login: JSON credentials, no Authorization header. */
    json_t *l = fx_requests("/login");
    json_t *e = json_array_get(l, 0);
    assert_null(rec_header(e, "authorization"));
    assert_string_equal(rec_header(e, "content-type"), "application/json");
    json_t *body = json_object_get(e, "json");
    assert_string_equal(json_string_value(json_object_get(body, "username")),
                        "scheduler-service");
    assert_string_equal(json_string_value(json_object_get(body, "password")),
                        "scheduler-secret");
    assert_int_equal(json_object_size(body), 2);
    json_decref(l);

    /* The calls: one bearer token, the one tokens_get() gives. */
    char *tok = NULL;
    expect_ok(orpc__tokens_get(t, 0, NULL, 5000, &tok));
    char want[1024];
    snprintf(want, sizeof(want), "Bearer %s", tok);
    l = fx_requests("/jobs/10");
    assert_string_equal(rec_header(json_array_get(l, 0), "authorization"),
                        want);
    json_decref(l);
    free(tok);
    assert_int_equal(fx_stat("login_requests"), 1);

    /* Many threads, many calls: still the one login. */
    bg_token calls[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        memset(&calls[i], 0, sizeof(calls[i]));
        calls[i].t = t;
        calls[i].h = h;
        calls[i].calls = 25;
        assert_int_equal(pthread_create(&th[i], NULL, bg_tokens, &calls[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(calls[i].bad_replies, 0);
    }
    assert_int_equal(fx_stat("login_requests"), 1);
    orpc__tokens_free(t);
    orpc__legacy_http_free(h);
}

static void test_token_refresh_before_expiry(void **state)
{
    (void)state;
    orpc__legacy_http *h = client(NULL);
    char *a = NULL, *b = NULL, *c = NULL;

    /* expires_in <= 60: every call logs in. */
    fx_config("{\"token_ttl\":60}");
    orpc__tokens *t = tokens(h);
    for (int i = 0; i < 3; i++) {
        expect_ok(orpc__tokens_get(t, 0, NULL, 5000, &a));
        free(a);
    }
    assert_int_equal(fx_stat("login_requests"), 3);
    orpc__tokens_free(t);

    /* 61 s: kept for 1 s, then fetched again. */
    fx_config("{\"token_ttl\":61}");
    t = tokens(h);
    expect_ok(orpc__tokens_get(t, 0, NULL, 5000, &a));
    expect_ok(orpc__tokens_get(t, 0, NULL, 5000, &b));
    assert_string_equal(a, b);
    assert_int_equal(fx_stat("login_requests"), 4);
    /* the cached token serves until it expires (1 s), then a call logs in
     * again: poll (bounded: 200 calls, 5 s) until one did */
    for (int i = 0; i < 200; i++) {
        expect_ok(orpc__tokens_get(t, 0, NULL, 5000, &c));
        if (fx_stat("login_requests") > 4) {
            break;
        }
        assert_string_equal(a, c); /* still the cached one */
        free(c);
        c = NULL;
        sleep_ms(25);
    }
    assert_non_null(c);
    assert_string_not_equal(a, c);
    assert_int_equal(fx_stat("login_requests"), 5);
    free(a);
    free(b);
    free(c);
    orpc__tokens_free(t);

    /* A long lifetime: one login for many calls. */
    fx_config("{\"token_ttl\":3600}");
    t = tokens(h);
    for (int i = 0; i < 20; i++) {
        expect_ok(orpc__tokens_get(t, 0, NULL, 5000, &a));
        free(a);
    }
    assert_int_equal(fx_stat("login_requests"), 6);
    orpc__tokens_free(t);

    /* No expires_in at all: 3600 s. */
    fx_config("{\"rules\":[{\"route\":\"POST /login\",\"omit\":"
              "[\"expires_in\"]}]}");
    t = tokens(h);
    for (int i = 0; i < 5; i++) {
        expect_ok(orpc__tokens_get(t, 0, NULL, 5000, &a));
        free(a);
    }
    assert_int_equal(fx_stat("login_requests"), 7);
    orpc__tokens_free(t);
    orpc__legacy_http_free(h);
}

#define FLIGHT 50

static void run_flight(bg_token *calls, int n)
{
    pthread_t th[FLIGHT];
    pthread_barrier_t b;
    pthread_barrier_init(&b, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        calls[i].start = &b;
        assert_int_equal(pthread_create(&th[i], NULL, bg_tokens, &calls[i]), 0);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
    }
    pthread_barrier_destroy(&b);
}

static void test_single_flight(void **state)
{
    (void)state;
    orpc__legacy_http *h = client(NULL);
    orpc__tokens *t = tokens(h);
    /* A slow login, so that all 50 want it while it runs. */
    fx_config("{\"rules\":[{\"route\":\"POST /login\",\"delay_ms\":300,"
              "\"times\":1}]}");
    bg_token calls[FLIGHT];
    memset(calls, 0, sizeof(calls));
    for (int i = 0; i < FLIGHT; i++) {
        calls[i].t = t;
        calls[i].timeout_ms = 10000;
    }
    run_flight(calls, FLIGHT);
    for (int i = 0; i < FLIGHT; i++) {
        expect_ok(calls[i].st);
        assert_non_null(calls[i].token);
        assert_string_equal(calls[i].token, calls[0].token);
    }
    assert_int_equal(fx_stat("login_requests"), 1);

    /* 50 callers that got a 401 with that token force a refresh: one
     * login between them, and all get the new token. */
    char *old = calls[0].token;
    for (int i = 1; i < FLIGHT; i++) {
        free(calls[i].token);
    }
    fx_config("{\"rules\":[{\"route\":\"POST /login\",\"delay_ms\":300,"
              "\"times\":1}]}");
    memset(calls, 0, sizeof(calls));
    for (int i = 0; i < FLIGHT; i++) {
        calls[i].t = t;
        calls[i].force = 1;
        calls[i].stale = old;
        calls[i].timeout_ms = 10000;
    }
    run_flight(calls, FLIGHT);
    for (int i = 0; i < FLIGHT; i++) {
        expect_ok(calls[i].st);
        assert_string_equal(calls[i].token, calls[0].token);
    }
    assert_string_not_equal(calls[0].token, old);
    assert_int_equal(fx_stat("login_requests"), 2);
    /* A late one with the same stale token gets the new one, no login. */
    char *late = NULL;
    expect_ok(orpc__tokens_get(t, 1, old, 5000, &late));
    assert_string_equal(late, calls[0].token);
    assert_int_equal(fx_stat("login_requests"), 2);
    /* Forcing with no stale token always logs in again. */
    char *forced = NULL;
    expect_ok(orpc__tokens_get(t, 1, NULL, 5000, &forced));
    assert_string_not_equal(forced, late);
    assert_int_equal(fx_stat("login_requests"), 3);
    free(forced);
    free(late);
    free(old);
    for (int i = 0; i < FLIGHT; i++) {
        free(calls[i].token);
    }
    orpc__tokens_free(t);
    orpc__legacy_http_free(h);
}

static void test_single_flight_failure_is_shared(void **state)
{
    (void)state;
    orpc__legacy_http *h = client(NULL);
    orpc__tokens *t = tokens(h);
    fx_config("{\"rules\":[{\"route\":\"POST /login\",\"status\":503,"
              "\"delay_ms\":300,\"times\":1}]}");
    bg_token calls[20];
    memset(calls, 0, sizeof(calls));
    for (int i = 0; i < 20; i++) {
        calls[i].t = t;
        calls[i].timeout_ms = 10000;
    }
    run_flight(calls, 20);
    for (int i = 0; i < 20; i++) {
        expect_status(calls[i].st, ORPC_UNAVAILABLE,
                      "login for scheduler-service: Service Unavailable");
        assert_null(calls[i].token);
    }
    assert_int_equal(fx_stat("login_requests"), 1);
    /* The failure is not cached: the next call logs in. */
    char *tok = NULL;
    expect_ok(orpc__tokens_get(t, 0, NULL, 5000, &tok));
    free(tok);
    assert_int_equal(fx_stat("login_requests"), 2);
    orpc__tokens_free(t);
    orpc__legacy_http_free(h);
}

static void test_token_wait_deadline(void **state)
{
    (void)state;
    orpc__legacy_http *h = client(NULL);
    orpc__tokens *t = tokens(h);
    fx_config("{\"rules\":[{\"route\":\"POST /login\",\"delay_ms\":1200,"
              "\"times\":1}]}");
    bg_token leader;
    memset(&leader, 0, sizeof(leader));
    leader.t = t;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, bg_tokens, &leader), 0);
    wait_stat("login_requests", 1); /* the leader's login is in flight */
    char *tok = NULL;
    expect_status(orpc__tokens_get(t, 0, NULL, 200, &tok),
                  ORPC_DEADLINE_EXCEEDED, "scheduler-service");
    assert_null(tok);
    pthread_join(th, NULL);
    expect_ok(leader.st);
    free(leader.token);

    /* A leader whose own deadline runs out does not fail the waiters that
     * have more time: one of them logs in again. */
    fx_config("{\"rules\":[{\"route\":\"POST /login\",\"delay_ms\":600,"
              "\"times\":1}]}");
    orpc__tokens_free(t);
    t = tokens(h);
    memset(&leader, 0, sizeof(leader));
    leader.t = t;
    leader.timeout_ms = 200;
    assert_int_equal(pthread_create(&th, NULL, bg_tokens, &leader), 0);
    wait_stat("login_requests", 2); /* the leader's login is in flight */
    expect_ok(orpc__tokens_get(t, 0, NULL, 5000, &tok));
    pthread_join(th, NULL);
    expect_status(leader.st, ORPC_DEADLINE_EXCEEDED, NULL);
    assert_int_equal(fx_stat("login_requests"), 3);
    free(tok);
    orpc__tokens_free(t);
    orpc__legacy_http_free(h);
}

static void test_401_refresh_and_retry_once(void **state)
{
    (void)state;
    orpc__legacy_http *h = client(NULL);
    orpc__tokens *t = tokens(h);
    orpc__http_reply r;
    char *first = NULL;
    expect_ok(orpc__tokens_get(t, 0, NULL, 5000, &first));
    assert_int_equal(fx_stat("login_requests"), 1);

    /* One 401: one refresh, one retry, success. */
    fx_config("{\"rules\":[{\"route\":\"GET /jobs/7\",\"status\":401,"
              "\"times\":1}]}");
    expect_ok(orpc__legacy_call_authed(h, t, "GET", "/jobs/7", NULL, 0, NULL, 0,
                                       5000, &r));
    assert_int_equal(r.status, 200);
    expect_ok(orpc__legacy_status(&r));
    orpc__http_reply_clear(&r);
    assert_int_equal(fx_stat("login_requests"), 2);
    json_t *l = fx_requests("/jobs/7");
    assert_int_equal(json_array_size(l), 2);
    char want[1024];
    snprintf(want, sizeof(want), "Bearer %s", first);
    assert_string_equal(rec_header(json_array_get(l, 0), "authorization"),
                        want);
    assert_string_not_equal(rec_header(json_array_get(l, 1), "authorization"),
                            want);
    json_decref(l);

    /* 401 every time: one refresh, one retry, then the 401 is the answer. */
    fx_config("{\"rules\":[{\"route\":\"GET /jobs/8\",\"status\":401,"
              "\"detail\":\"Invalid or expired token\"}]}");
    expect_ok(orpc__legacy_call_authed(h, t, "GET", "/jobs/8", NULL, 0, NULL, 0,
                                       5000, &r));
    assert_int_equal(r.status, 401);
    expect_status(orpc__legacy_status(&r), ORPC_UNAUTHENTICATED,
                  "Invalid or expired token");
    orpc__http_reply_clear(&r);
    l = fx_requests("/jobs/8");
    assert_int_equal(json_array_size(l), 2);
    json_decref(l);
    assert_int_equal(fx_stat("login_requests"), 3);

    /* The service's own 401 for an expired token (expire_tokens). */
    fx_config("{\"clear_rules\":true,\"expire_tokens\":true}");
    const char *payload = "{\"scheduled\":true}";
    expect_ok(orpc__legacy_call_authed(h, t, "POST", "/jobs/5/run", NULL, 0,
                                       payload, strlen(payload), 5000, &r));
    assert_int_equal(r.status, 200);
    json_error_t jerr;
    json_t *doc = json_loadb(r.body, r.len, 0, &jerr);
    assert_true(json_is_true(
        json_object_get(json_object_get(doc, "payload"), "scheduled")));
    json_decref(doc);
    orpc__http_reply_clear(&r);
    assert_int_equal(fx_stat("login_requests"), 4);
    assert_int_equal(fx_stat("problems"), 0);
    free(first);
    orpc__tokens_free(t);
    orpc__legacy_http_free(h);
}

static void test_bad_credentials(void **state)
{
    (void)state;
    orpc__legacy_http *h = client(NULL);
    orpc__tokens *t = NULL;
    assert_int_equal(
        orpc__tokens_new(&t, h, "scheduler-service", "wrong-Pa55word"), 0);
    char *tok = NULL;
    orpc_status st = orpc__tokens_get(t, 0, NULL, 5000, &tok);
    assert_int_equal(st.code, ORPC_UNAUTHENTICATED);
    assert_string_equal(st.message, "login refused for scheduler-service");
    assert_null(strstr(st.message, "wrong-Pa55word"));
    orpc_status_clear(&st);
    assert_null(tok);

    /* An authed call fails the same way, without a request to the route. */
    orpc__http_reply r;
    st = orpc__legacy_call_authed(h, t, "GET", "/jobs/1", NULL, 0, NULL, 0,
                                  5000, &r);
    assert_int_equal(st.code, ORPC_UNAUTHENTICATED);
    assert_null(strstr(st.message, "wrong-Pa55word"));
    orpc_status_clear(&st);
    assert_null(r.body);
    json_t *l = fx_requests("/jobs/1");
    assert_int_equal(json_array_size(l), 0);
    json_decref(l);
    assert_int_equal(fx_stat("logins_rejected"), 2);
    orpc__tokens_free(t);

    /* A 200 without access_token also means bad credentials. */
    t = tokens(h);
    fx_config("{\"rules\":[{\"route\":\"POST /login\",\"json\":"
              "{\"token_type\":\"bearer\"},\"times\":1}]}");
    expect_status(orpc__tokens_get(t, 0, NULL, 5000, &tok),
                  ORPC_UNAUTHENTICATED, "login refused for scheduler-service");
    /* A 200 that is not JSON is the service's fault. */
    fx_config("{\"rules\":[{\"route\":\"POST /login\",\"raw\":\"ok\","
              "\"times\":1}]}");
    expect_status(orpc__tokens_get(t, 0, NULL, 5000, &tok), ORPC_INTERNAL,
                  "not a JSON object");
    /* A token with a line break cannot go into a header. */
    fx_config("{\"rules\":[{\"route\":\"POST /login\",\"json\":"
              "{\"access_token\":\"a\\r\\nX-Evil: 1\"},\"times\":1}]}");
    expect_status(orpc__tokens_get(t, 0, NULL, 5000, &tok), ORPC_INTERNAL,
                  "Authorization header");
    /* Then a good login. */
    expect_ok(orpc__tokens_get(t, 0, NULL, 5000, &tok));
    assert_non_null(tok);
    free(tok);
    orpc__tokens_free(t);
    orpc__legacy_http_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_table),
        cmocka_unit_test(test_status_long_details),
        cmocka_unit_test(test_new_arguments),
        cmocka_unit_test_setup(test_do_arguments, reset),
        cmocka_unit_test_setup(test_tokens_refuse_empty_credentials, reset),
        cmocka_unit_test_setup(test_error_statuses, reset),
        cmocka_unit_test_setup(test_404_kinds, reset),
        cmocka_unit_test_setup(test_422_validation_messages, reset),
        cmocka_unit_test_setup(test_non_json_200_passes_through, reset),
        cmocka_unit_test_setup(test_redirect_not_followed, reset),
        cmocka_unit_test_setup(test_slow_reply_deadline, reset),
        cmocka_unit_test_setup(test_deadline_while_waiting_for_a_connection,
                               reset),
        cmocka_unit_test_setup(test_oversized_reply, reset),
        cmocka_unit_test_setup(test_connection_refused, reset),
        cmocka_unit_test_setup(test_connect_timeout_is_unavailable, reset),
        cmocka_unit_test_setup(test_server_closes_without_reply, reset),
        cmocka_unit_test_setup(test_tls_failure, reset),
        cmocka_unit_test_setup(test_keepalive_reuse, reset),
        cmocka_unit_test_setup(test_headers_sent, reset),
        cmocka_unit_test_setup(test_connection_limit_and_concurrency, reset),
        cmocka_unit_test_setup(test_login_once_and_reuse, reset),
        cmocka_unit_test_setup(test_token_refresh_before_expiry, reset),
        cmocka_unit_test_setup(test_single_flight, reset),
        cmocka_unit_test_setup(test_single_flight_failure_is_shared, reset),
        cmocka_unit_test_setup(test_token_wait_deadline, reset),
        cmocka_unit_test_setup(test_401_refresh_and_retry_once, reset),
        cmocka_unit_test_setup(test_bad_credentials, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
