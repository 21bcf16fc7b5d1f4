/*
 * rpc_log_test.c — failures that speak without a logger: a server or
 * channel that cannot load its TLS files says so on stderr, naming the
 * file, in the documented format; an installed logger gets the same line
 * instead and stderr stays quiet; a caller that passes an
 * orpc_error_detail gets the reason there, and nothing is printed or
 * logged (one place per failure).
 *
 * stderr is redirected to a temporary file around each case and read back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <orpc/orpc.h>

/* Runs |fn| with stderr going to a temporary file; returns what it wrote
 * (the caller frees it). */
static char *capture_stderr(void (*fn)(void *), void *arg)
{
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
    fn(arg);
    fflush(stderr);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    long n = ftell(tmp) >= 0 ? (fseek(tmp, 0, SEEK_END), ftell(tmp)) : 0;
    rewind(tmp);
    char *buf = calloc(1, (size_t)n + 1);
    assert_non_null(buf);
    size_t got = fread(buf, 1, (size_t)n, tmp);
    buf[got] = '\0';
    fclose(tmp);
    return buf;
}

typedef struct lines {
    int n;
    orpc_log_level level;
    char last[600];
} lines;

static void logger(orpc_log_level level, const char *msg, void *ud)
{
    lines *l = ud;
    l->n++;
    l->level = level;
    snprintf(l->last, sizeof(l->last), "%s", msg);
}

typedef struct srv_case {
    orpc_log_fn log;
    lines *seen;
    orpc_error_detail *detail;
    int rc;
} srv_case;

static void make_server(void *arg)
{
    srv_case *c = arg;
    orpc_server_opts o = {
        .tls = {.cert_file = "/nonexistent/orpc-test/server.pem",
                .key_file = "/nonexistent/orpc-test/server.key"},
        .log = c->log,
        .log_user_data = c->seen};
    orpc_server *srv = NULL;
    c->rc = orpc_server_new(&srv, &o, NULL, c->detail);
    orpc_server_free(srv);
}

static void make_channel(void *arg)
{
    srv_case *c = arg;
    orpc_tls_opts tls = {.ca_file = "/nonexistent/orpc-test/ca.pem"};
    orpc_channel_opts o = {
        .tls = &tls, .log = c->log, .log_user_data = c->seen};
    orpc_channel *ch = NULL;
    c->rc = orpc_channel_new(&ch, "127.0.0.1:1", &o, NULL, c->detail);
    orpc_channel_unref(ch);
}

static void test_server_without_logger_speaks(void **state)
{
    (void)state;
    srv_case c = {0};
    char *err = capture_stderr(make_server, &c);
    assert_int_equal(c.rc, ORPC_ECONFIG);
    assert_non_null(strstr(err, "orpc: error: server: "));
    assert_non_null(strstr(err, "/nonexistent/orpc-test/server.pem"));
    free(err);
}

static void test_channel_without_logger_speaks(void **state)
{
    (void)state;
    srv_case c = {0};
    char *err = capture_stderr(make_channel, &c);
    assert_int_equal(c.rc, ORPC_ECONFIG);
    assert_non_null(strstr(err, "orpc: error: channel: "));
    assert_non_null(strstr(err, "/nonexistent/orpc-test/ca.pem"));
    free(err);
}

static void test_logger_replaces_stderr(void **state)
{
    (void)state;
    lines seen = {0};
    srv_case c = {.log = logger, .seen = &seen};
    char *err = capture_stderr(make_server, &c);
    assert_int_equal(c.rc, ORPC_ECONFIG);
    assert_string_equal(err, "");
    assert_true(seen.n >= 1);
    assert_int_equal(seen.level, ORPC_LOG_ERROR);
    assert_non_null(strstr(seen.last, "/nonexistent/orpc-test/server.pem"));
    free(err);

    lines ch_seen = {0};
    srv_case cc = {.log = logger, .seen = &ch_seen};
    err = capture_stderr(make_channel, &cc);
    assert_int_equal(cc.rc, ORPC_ECONFIG);
    assert_string_equal(err, "");
    assert_non_null(strstr(ch_seen.last, "/nonexistent/orpc-test/ca.pem"));
    free(err);
}

/* With a detail: the reason is there, and nowhere else. */
static void test_detail_takes_the_reason(void **state)
{
    (void)state;
    lines seen = {0};
    orpc_error_detail d = {0};
    srv_case c = {.log = logger, .seen = &seen, .detail = &d};
    char *err = capture_stderr(make_server, &c);
    assert_int_equal(c.rc, ORPC_ECONFIG);
    assert_int_equal(d.code, ORPC_ECONFIG);
    assert_non_null(strstr(d.message, "/nonexistent/orpc-test/server.pem"));
    assert_non_null(strstr(d.message, "tls"));
    assert_string_equal(err, "");
    assert_int_equal(seen.n, 0);
    free(err);

    memset(&d, 0, sizeof d);
    srv_case cc = {.detail = &d};
    err = capture_stderr(make_channel, &cc);
    assert_int_equal(cc.rc, ORPC_ECONFIG);
    assert_int_equal(d.code, ORPC_ECONFIG);
    assert_non_null(strstr(d.message, "/nonexistent/orpc-test/ca.pem"));
    assert_string_equal(err, "");
    free(err);
}

/* Every other way to fail a constructor or listen names what is wrong. */
static void test_detail_names_the_fault(void **state)
{
    (void)state;
    orpc_error_detail d;
    orpc_channel *ch = NULL;
    assert_int_equal(
        orpc_channel_new(&ch, "127.0.0.1:1", &(orpc_channel_opts){0}, NULL, &d),
        ORPC_ECONFIG);
    assert_null(ch);
    assert_non_null(strstr(d.message, "plaintext"));
    assert_int_equal(orpc_channel_new(&ch, "no port here",
                                      &(orpc_channel_opts){.plaintext = 1},
                                      NULL, &d),
                     ORPC_EADDR);
    assert_int_equal(d.code, ORPC_EADDR);
    assert_non_null(strstr(d.message, "no port here"));
    assert_int_equal(orpc_channel_new(NULL, "x:1", NULL, NULL, &d),
                     ORPC_EINVAL);
    assert_non_null(strstr(d.message, "NULL"));

    orpc_server *srv = NULL;
    assert_int_equal(orpc_server_new(&srv,
                                     &(orpc_server_opts){
                                         .plaintext = 1,
                                         .authz_policy_file =
                                             "/nonexistent/orpc-test/p.json"},
                                     NULL, &d),
                     ORPC_ECONFIG);
    assert_null(srv);
    assert_non_null(strstr(d.message, "authz_policy_file"));
    assert_non_null(strstr(d.message, "/nonexistent/orpc-test/p.json"));

    assert_int_equal(
        orpc_server_new(&srv, &(orpc_server_opts){.plaintext = 1}, NULL, &d),
        0);
    int port = 0;
    assert_int_equal(orpc_server_listen(srv, "127.0.0.1:99999", NULL, &d),
                     ORPC_EADDR);
    assert_non_null(strstr(d.message, "127.0.0.1:99999"));
    assert_int_equal(orpc_server_listen(srv, "127.0.0.1:0", &port, &d), 0);
    char in_use[64];
    snprintf(in_use, sizeof in_use, "127.0.0.1:%d", port);
    assert_int_equal(orpc_server_listen(srv, in_use, NULL, &d), ORPC_EADDR);
    assert_non_null(strstr(d.message, "in use"));
    assert_non_null(strstr(d.message, in_use));
    /* a plaintext server has nothing to reload but its (absent) policy */
    assert_int_equal(orpc_server_reload(srv, &d), 0);
    orpc_server_free(srv);

    orpc_client *cl = NULL;
    assert_int_equal(orpc_client_new(&cl, NULL, NULL, NULL, &d), ORPC_EINVAL);
    assert_int_equal(d.code, ORPC_EINVAL);
    assert_non_null(strstr(d.message, "orpc_client_new"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_without_logger_speaks),
        cmocka_unit_test(test_channel_without_logger_speaks),
        cmocka_unit_test(test_logger_replaces_stderr),
        cmocka_unit_test(test_detail_takes_the_reason),
        cmocka_unit_test(test_detail_names_the_fault),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
